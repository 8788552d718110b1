/* The BENCH stream kind: a sink, a source and an echo for measuring the channel. */
#ifndef VB_CORE_BENCH_H
#define VB_CORE_BENCH_H

#include <stdint.h>
#include <stddef.h>
#include "core/session.h"

enum bench_mode {
	BENCH_SINK = 1,	  /* the opener sends; at its FIN the server answers the byte count */
	BENCH_SOURCE = 2, /* the server sends `bytes` bytes, then FIN */
	BENCH_ECHO = 3,	  /* the server sends back what it receives */
};

#define BENCH_REQ_LEN 12

struct bench_req {
	uint8_t mode;
	uint64_t bytes;
};

/* Request: mode u8, reserved u8[3] (zero), bytes u64. */
void bench_req_encode(uint8_t out[BENCH_REQ_LEN], const struct bench_req *r);
int bench_req_decode(const uint8_t *p, size_t len, struct bench_req *r);

/* Serves a BENCH stream the peer opened: accepts it or refuses a bad request. */
void bench_serve(struct stream *st, const uint8_t *req, size_t len);

/* Fills a chunk with the benchmark's byte pattern (for sources on both ends). */
void bench_fill(struct chunk *c);

#endif
