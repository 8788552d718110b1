/* Links over real sockets: the receive path, batching, relays and the BENCH service, on both
 * backends. */
/* VB_TEST_BOTH_BACKENDS */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <fcntl.h>
#include <cmocka.h>
#include "core/bench.h"
#include "core/err.h"
#include "core/kinds.h"
#include "core/link.h"
#include "core/relay.h"
#include "core/runtime.h"
#include "core/wire.h"

/*
 * A "client" link and a "server" link over a socketpair on one loop. The
 * server serves BENCH streams (sink, source, echo), or relays every stream
 * to a third link (client -> relay -> server) to exercise core/relay.c.
 */

struct side {
	struct link *lk;
	bool ready, closed, freed;
	char reason[256];
	struct session *relay_to; /* relay streams the peer opens to this session */
};

struct flow {
	struct stream *st;
	uint8_t mode;
	uint64_t want, sent, got, count;
	uint32_t sum_sent, sum_got;
	bool accepted, fin, reset, done;
	char why[256]; /* stream_reset_reason() at the reset */
	struct chunk *pat;
};

static struct runtime rt;
static struct loop *L;

static void side_ready(struct link *lk)
{
	((struct side *)link_app(lk))->ready = true;
}

static void side_open(struct link *lk, struct stream *st, uint16_t kind, uint16_t flags,
		      const uint8_t *req, size_t len)
{
	struct side *s = link_app(lk);

	if (s->relay_to) {
		relay_open(st, s->relay_to, kind, flags, req, len);
		return;
	}
	if (kind == KIND_BENCH)
		bench_serve(st, req, len);
	else
		stream_refuse(st, -EOPNOTSUPP, "no");
}

static void side_close(struct link *lk, int err, const char *reason)
{
	struct side *s = link_app(lk);

	s->closed = true;
	snprintf(s->reason, sizeof(s->reason), "%s", reason);
}

static void side_freed(void *app)
{
	((struct side *)app)->freed = true;
}

static const struct link_ops side_ops = {
    .on_ready = side_ready,
    .on_open = side_open,
    .on_close = side_close,
    .on_freed = side_freed,
};

static void run_until(bool *flag, int seconds)
{
	uint64_t end = clock_now_ns() + (uint64_t)seconds * 1000000000ull;

	while (!*flag && clock_now_ns() < end)
		loop_run_once(L, 10000000ull);
	assert_true(*flag);
}

/* b joins set (NULL: none). */
static void make_pair_in(struct side *a, struct side *b, struct link_set *set)
{
	struct link_config cfg;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	link_config_defaults(&cfg);
	cfg.keepalive_ms = 0;
	cfg.session.dialer = true;
	assert_int_equal(link_new(&a->lk, L, &rt.loops[0].chunks, sv[0], &cfg, &side_ops, a), 0);
	cfg.session.dialer = false;
	cfg.set = set;
	assert_int_equal(link_new(&b->lk, L, &rt.loops[0].chunks, sv[1], &cfg, &side_ops, b), 0);
	run_until(&a->ready, 5);
	run_until(&b->ready, 5);
}

static void make_pair(struct side *a, struct side *b)
{
	make_pair_in(a, b, NULL);
}

static void close_side(struct side *s)
{
	if (!s->closed)
		link_shutdown(s->lk, 0, "test over");
	run_until(&s->freed, 5);
}

/* ---- a client flow ---- */

static uint32_t sum_bytes(uint32_t sum, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sum = sum * 31 + p[i];
	return sum;
}

static void flow_pump(struct flow *f)
{
	while (f->accepted && f->sent < f->want && stream_writable(f->st)) {
		size_t n = f->want - f->sent < 50000 ? (size_t)(f->want - f->sent) : 50000;

		/* Odd sizes so that frames and reads never line up with chunks. */
		if (n > 7)
			n -= f->sent % 7;
		assert_int_equal(stream_write(f->st, f->pat, f->pat->data + (f->sent % 1000), n),
				 0);
		f->sum_sent = sum_bytes(f->sum_sent, f->pat->data + (f->sent % 1000), n);
		f->sent += n;
	}
	if (f->accepted && f->sent == f->want && !f->fin) {
		f->fin = true;
		stream_shutdown(f->st);
	}
}

static void flow_reply(struct stream *st, int err, const uint8_t *r, size_t len)
{
	struct flow *f = stream_ctx(st);

	assert_int_equal(err, 0);
	f->accepted = true;
	flow_pump(f);
}

static void flow_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct flow *f = stream_ctx(st);

	if (f->mode == BENCH_SINK) {
		assert_int_equal(len, 8);
		f->count = wire_get_u64(p);
	} else {
		f->sum_got = sum_bytes(f->sum_got, p, len);
		f->got += len;
	}
	stream_consumed(st, len);
}

static void flow_fin(struct stream *st)
{
	struct flow *f = stream_ctx(st);

	f->done = true;
	stream_shutdown(st);
	stream_release(st);
}

static void flow_reset(struct stream *st, int err)
{
	struct flow *f = stream_ctx(st);
	const char *why = stream_reset_reason(st, err);

	f->reset = true;
	snprintf(f->why, sizeof(f->why), "%s", why ? why : "");
	f->done = true;
	stream_release(st);
}

static void flow_writable(struct stream *st)
{
	flow_pump(stream_ctx(st));
}

static const struct stream_ops flow_ops = {
    .on_reply = flow_reply,
    .on_data = flow_data,
    .on_fin = flow_fin,
    .on_reset = flow_reset,
    .on_writable = flow_writable,
};

static void flow_open(struct side *s, struct flow *f, uint8_t mode, uint64_t bytes)
{
	struct bench_req q = {.mode = mode, .bytes = mode == BENCH_SOURCE ? bytes : 0};
	uint8_t req[BENCH_REQ_LEN];

	memset(f, 0, sizeof(*f));
	f->mode = mode;
	f->want = mode == BENCH_SOURCE ? 0 : bytes;
	f->pat = chunk_get(&rt.loops[0].chunks);
	bench_fill(f->pat);
	bench_req_encode(req, &q);
	assert_int_equal(
	    stream_open(link_session(s->lk), KIND_BENCH, 0, req, sizeof(req), &flow_ops, f, &f->st),
	    0);
}

static void flow_done(struct flow *f)
{
	run_until(&f->done, 60);
	chunk_put(f->pat);
}

/* ---- tests ---- */

static void test_sink_counts_every_byte_sent(void **state)
{
	struct side a = {0}, b = {0};
	struct flow f;

	make_pair(&a, &b);
	flow_open(&a, &f, BENCH_SINK, 64u << 20);
	flow_done(&f);
	assert_false(f.reset);
	assert_int_equal(f.count, 64u << 20);
	close_side(&a);
	close_side(&b);
}

static void test_source_delivers_exact_bytes(void **state)
{
	struct side a = {0}, b = {0};
	struct flow f;

	make_pair(&a, &b);
	flow_open(&a, &f, BENCH_SOURCE, (48u << 20) + 12345);
	flow_done(&f);
	assert_false(f.reset);
	assert_int_equal(f.got, (48u << 20) + 12345);
	close_side(&a);
	close_side(&b);
}

static void test_echo_returns_the_same_bytes(void **state)
{
	struct side a = {0}, b = {0};
	struct flow f;

	make_pair(&a, &b);
	flow_open(&a, &f, BENCH_ECHO, 16u << 20);
	flow_done(&f);
	assert_int_equal(f.got, 16u << 20);
	assert_int_equal(f.sum_got, f.sum_sent);
	close_side(&a);
	close_side(&b);
}

static void test_many_streams_finish_together(void **state)
{
	struct side a = {0}, b = {0};
	struct flow f[16];

	make_pair(&a, &b);
	for (int i = 0; i < 16; i++)
		flow_open(&a, &f[i], i % 2 ? BENCH_ECHO : BENCH_SINK,
			  (1u << 20) + (uint64_t)i * 977);
	for (int i = 0; i < 16; i++) {
		flow_done(&f[i]);
		if (i % 2)
			assert_int_equal(f[i].sum_got, f[i].sum_sent);
		else
			assert_int_equal(f[i].count, (1u << 20) + (uint64_t)i * 977);
	}
	close_side(&a);
	close_side(&b);
}

static void test_relay_passes_bytes_both_ways(void **state)
{
	struct side a = {0}, r1 = {0}, r2 = {0}, b = {0};
	struct flow f;

	make_pair(&a, &r1);
	make_pair(&r2, &b);
	r1.relay_to = link_session(r2.lk);
	flow_open(&a, &f, BENCH_ECHO, 24u << 20);
	flow_done(&f);
	assert_false(f.reset);
	assert_int_equal(f.sum_got, f.sum_sent);
	assert_int_equal(f.got, 24u << 20);
	close_side(&a);
	close_side(&r1);
	close_side(&r2);
	close_side(&b);
}

static void test_peer_closing_resets_open_streams(void **state)
{
	struct side a = {0}, b = {0};
	struct flow f;

	make_pair(&a, &b);
	flow_open(&a, &f, BENCH_SOURCE, 1ull << 40);
	while (f.got < (1u << 20))
		loop_run_once(L, 10000000ull);
	link_shutdown(b.lk, 0, "going away");
	flow_done(&f);
	assert_true(f.reset);
	run_until(&a.closed, 5);
	close_side(&a);
	close_side(&b);
}

/* A process stopping says GOAWAY on every link of its set; the peers hear why, streams too. */
static void test_set_shutdown_says_goodbye_on_every_link(void **state)
{
	struct side a1 = {0}, b1 = {0}, a2 = {0}, b2 = {0};
	struct link_set set;
	struct flow f;

	link_set_init(&set);
	make_pair_in(&a1, &b1, &set);
	make_pair_in(&a2, &b2, &set);
	assert_int_equal(link_set_count(&set), 2);
	flow_open(&a1, &f, BENCH_SOURCE, 1ull << 40);
	while (f.got < (1u << 20))
		loop_run_once(L, 10000000ull);

	link_set_shutdown(&set, VB_WERR_SHUTDOWN, "the test is stopping");
	flow_done(&f);
	assert_true(f.reset);
	assert_non_null(strstr(f.why, "the test is stopping"));
	run_until(&a1.closed, 5);
	run_until(&a2.closed, 5);
	assert_non_null(strstr(a1.reason, "peer is shutting down: the test is stopping"));
	assert_non_null(strstr(a2.reason, "peer is shutting down: the test is stopping"));
	run_until(&b1.freed, 5);
	run_until(&b2.freed, 5);
	assert_int_equal(link_set_count(&set), 0);
	assert_true(list_empty(&set.links));
	close_side(&a1);
	close_side(&a2);
}

/* A link made after the goodbye (a peer that dialled again at once) hears it too. */
static void test_link_made_in_a_closing_set_says_goodbye_at_once(void **state)
{
	struct side a = {0}, b = {0};
	struct link_config cfg;
	struct link_set set;
	int sv[2];

	link_set_init(&set);
	link_set_shutdown(&set, VB_WERR_SHUTDOWN, "the test is stopping");
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	link_config_defaults(&cfg);
	cfg.keepalive_ms = 0;
	cfg.session.dialer = true;
	assert_int_equal(link_new(&a.lk, L, &rt.loops[0].chunks, sv[0], &cfg, &side_ops, &a), 0);
	cfg.session.dialer = false;
	cfg.set = &set;
	assert_int_equal(link_new(&b.lk, L, &rt.loops[0].chunks, sv[1], &cfg, &side_ops, &b), 0);
	assert_true(b.closed); /* on_close ran inside link_new() */
	run_until(&a.closed, 5);
	assert_non_null(strstr(a.reason, "peer is shutting down: the test is stopping"));
	run_until(&b.freed, 5);
	assert_int_equal(link_set_count(&set), 0);
	close_side(&a);
}

static void test_garbage_closes_with_a_reason(void **state)
{
	struct side a = {0};
	struct link_config cfg;
	int sv[2];
	static const char junk[] = "SSH-2.0-OpenSSH_9.2\r\nthis is not a session\n";

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	link_config_defaults(&cfg);
	cfg.keepalive_ms = 0;
	assert_int_equal(link_new(&a.lk, L, &rt.loops[0].chunks, sv[0], &cfg, &side_ops, &a), 0);
	assert_int_equal(write(sv[1], junk, sizeof(junk) - 1), (ssize_t)sizeof(junk) - 1);
	run_until(&a.closed, 5);
	assert_non_null(strstr(a.reason, "HELLO"));
	run_until(&a.freed, 5);
	close(sv[1]);
}

/*
 * A peer that floods PINGs and never reads: the session gives up on it
 * (GOAWAY LIMIT, which cannot be written), and the link must not wait for
 * that write forever: it is freed within its drain bound, peer or not.
 */
static void test_peer_that_never_reads_cannot_hold_a_closed_link(void **state)
{
	static uint8_t pings[20 * 1024];
	struct frame_hello h = {.min_version = 1, .max_version = 1, .max_frame = 65536};
	struct side a = {0};
	struct link_config cfg;
	uint8_t hello[FRAME_HDR_LEN + FRAME_HELLO_MAX];
	uint64_t end;
	size_t off = 0;
	int sv[2], n;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	link_config_defaults(&cfg);
	cfg.keepalive_ms = 0;
	assert_int_equal(link_new(&a.lk, L, &rt.loops[0].chunks, sv[0], &cfg, &side_ops, &a), 0);
	n = frame_hello_encode(hello + FRAME_HDR_LEN, FRAME_HELLO_MAX, &h);
	frame_hdr_encode(hello, FRAME_HELLO, 0, 0, (uint32_t)n);
	assert_int_equal(write(sv[1], hello, FRAME_HDR_LEN + (size_t)n), FRAME_HDR_LEN + n);
	for (size_t i = 0; i < sizeof(pings); i += 20)
		frame_hdr_encode(pings + i, FRAME_PING, 0, 0, 8);
	end = clock_now_ns() + 20000000000ull;
	while (!a.closed && clock_now_ns() < end) {
		ssize_t w = write(sv[1], pings + off, sizeof(pings) - off);

		if (w > 0)
			off = (off + (size_t)w) % sizeof(pings);
		loop_run_once(L, 1000000ull);
	}
	assert_true(a.closed);
	assert_non_null(strstr(a.reason, "PINGs"));
	run_until(&a.freed, 5); /* before the drain bound: it never would */
	close(sv[1]);
}

static int setup(void **state)
{
	signal(SIGPIPE, SIG_IGN);
	if (runtime_init_single(&rt, LOOP_BACKEND_AUTO))
		return -1;
	L = rt.loops[0].loop;
	return 0;
}

static int teardown(void **state)
{
	assert_int_equal(rt.loops[0].chunks.outstanding, 0);
	runtime_destroy(&rt);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sink_counts_every_byte_sent),
	    cmocka_unit_test(test_source_delivers_exact_bytes),
	    cmocka_unit_test(test_echo_returns_the_same_bytes),
	    cmocka_unit_test(test_many_streams_finish_together),
	    cmocka_unit_test(test_relay_passes_bytes_both_ways),
	    cmocka_unit_test(test_peer_closing_resets_open_streams),
	    cmocka_unit_test(test_set_shutdown_says_goodbye_on_every_link),
	    cmocka_unit_test(test_link_made_in_a_closing_set_says_goodbye_at_once),
	    cmocka_unit_test(test_garbage_closes_with_a_reason),
	    cmocka_unit_test(test_peer_that_never_reads_cannot_hold_a_closed_link),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
