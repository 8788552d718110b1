/* Latency samples: collected as they come, summarised once. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "core/stats.h"

int samples_add(struct samples *s, uint64_t v)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		uint64_t *nv = realloc(s->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n++] = v;
	return 0;
}

void samples_free(struct samples *s)
{
	free(s->v);
	memset(s, 0, sizeof(*s));
}

static int samples_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentiles over the sorted samples. */
void samples_summary(struct samples *s, struct summary *out)
{
	double sum = 0;

	memset(out, 0, sizeof(*out));
	if (!s->n)
		return;
	qsort(s->v, s->n, sizeof(*s->v), samples_cmp);
	for (size_t i = 0; i < s->n; i++)
		sum += (double)s->v[i];
	out->n = s->n;
	out->min = s->v[0];
	out->max = s->v[s->n - 1];
	out->median = s->v[(s->n - 1) / 2];
	out->p99 = s->v[(s->n * 99 + 99) / 100 - 1];
	out->mean = sum / (double)s->n;
}
