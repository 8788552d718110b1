/* The BENCH stream kind, server side: sink, source and echo without copies. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "core/bench.h"
#include "core/wire.h"

/*
 * Theory of operation
 *
 * SINK: every DATA is consumed at once and counted; at the opener's FIN the
 * count goes back as a u64 and our FIN follows.
 * SOURCE: one pattern chunk is written again and again by reference while
 * the stream is writable, until `bytes` are queued; then FIN.
 * ECHO: each DATA chunk is written back by reference and consumed when sent.
 * The stream is released after our FIN (graceful) or on reset.
 */

struct bench_srv {
	struct stream *st;
	struct chunk *pattern;
	struct bench_req req;
	uint64_t count;
};

void bench_req_encode(uint8_t out[BENCH_REQ_LEN], const struct bench_req *r)
{
	memset(out, 0, BENCH_REQ_LEN);
	out[0] = r->mode;
	wire_put_u64(out + 4, r->bytes);
}

int bench_req_decode(const uint8_t *p, size_t len, struct bench_req *r)
{
	if (len != BENCH_REQ_LEN || p[1] || p[2] || p[3])
		return -EINVAL;
	r->mode = p[0];
	r->bytes = wire_get_u64(p + 4);
	if (r->mode < BENCH_SINK || r->mode > BENCH_ECHO)
		return -EINVAL;
	return 0;
}

void bench_fill(struct chunk *c)
{
	for (uint32_t i = 0; i < c->size; i++)
		c->data[i] = (uint8_t)(i * 131u + 7u);
}

static void bench_srv_free(struct bench_srv *b)
{
	if (b->pattern)
		chunk_put(b->pattern);
	stream_release(b->st);
	free(b);
}

/* SOURCE: queues pattern bytes while writable; FIN once all are queued. */
static void bench_srv_pump(struct bench_srv *b)
{
	while (b->count < b->req.bytes && stream_writable(b->st)) {
		uint64_t left = b->req.bytes - b->count;
		size_t n = left < b->pattern->size ? (size_t)left : b->pattern->size;

		if (stream_write(b->st, b->pattern, b->pattern->data, n))
			return;
		b->count += n;
	}
	if (b->count == b->req.bytes) {
		stream_shutdown(b->st);
		bench_srv_free(b);
	}
}

static void bench_srv_on_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct bench_srv *b = stream_ctx(st);

	b->count += len;
	if (b->req.mode == BENCH_ECHO && !stream_write(st, c, p, len))
		return; /* consumed once sent */
	stream_consumed(st, len);
}

static void bench_srv_on_sent(struct stream *st, size_t n)
{
	struct bench_srv *b = stream_ctx(st);

	if (b->req.mode == BENCH_ECHO)
		stream_consumed(st, n);
}

static void bench_srv_on_fin(struct stream *st)
{
	struct bench_srv *b = stream_ctx(st);
	uint8_t count[8];

	if (b->req.mode == BENCH_SINK) {
		wire_put_u64(count, b->count);
		stream_write_copy(st, count, sizeof(count));
	}
	if (b->req.mode != BENCH_SOURCE) {
		stream_shutdown(st);
		bench_srv_free(b);
	}
}

static void bench_srv_on_reset(struct stream *st, int err)
{
	bench_srv_free(stream_ctx(st));
}

static void bench_srv_on_writable(struct stream *st)
{
	struct bench_srv *b = stream_ctx(st);

	if (b->req.mode == BENCH_SOURCE)
		bench_srv_pump(b);
}

static const struct stream_ops bench_srv_ops = {
    .on_data = bench_srv_on_data,
    .on_fin = bench_srv_on_fin,
    .on_reset = bench_srv_on_reset,
    .on_writable = bench_srv_on_writable,
    .on_sent = bench_srv_on_sent,
};

void bench_serve(struct stream *st, const uint8_t *req, size_t len)
{
	struct bench_srv *b;

	b = calloc(1, sizeof(*b));
	if (!b) {
		stream_refuse(st, -ENOMEM, "out of memory");
		return;
	}
	if (bench_req_decode(req, len, &b->req)) {
		free(b);
		stream_refuse(st, -EINVAL, "malformed bench request");
		return;
	}
	b->st = st;
	if (b->req.mode == BENCH_SOURCE) {
		b->pattern = chunk_get(session_pool(stream_session(st)));
		if (!b->pattern) {
			free(b);
			stream_refuse(st, -ENOMEM, "out of memory");
			return;
		}
		bench_fill(b->pattern);
	}
	if (stream_accept(st, NULL, 0, &bench_srv_ops, b)) {
		bench_srv_free(b);
		return;
	}
	if (b->req.mode == BENCH_SOURCE)
		bench_srv_pump(b);
}
