/* Latency samples and their summary (min, median, p99, max). */
#ifndef VB_CORE_STATS_H
#define VB_CORE_STATS_H

#include <stddef.h>
#include <stdint.h>

struct samples {
	uint64_t *v;
	size_t n, cap;
};

int samples_add(struct samples *s, uint64_t v);
void samples_free(struct samples *s);

struct summary {
	size_t n;
	uint64_t min, median, p99, max;
	double mean;
};

/* Sorts the samples in place and summarises them. */
void samples_summary(struct samples *s, struct summary *out);

#endif
