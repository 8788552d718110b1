/* Unit tests for the session state machine: two sessions wired back to back in memory. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "core/buf.h"
#include "core/err.h"
#include "core/frame.h"
#include "core/session.h"
#include "core/wire.h"

#define NELEM(a)       (sizeof(a) / sizeof((a)[0]))
#define KiB	       1024u
#define MiB	       (1024u * 1024u)
#define CHUNK_SIZE     (2u * MiB) /* a whole batch plus a partial frame fits in one receive */
#define MAX_IOV	       64
#define KEEP_MAX       (1u * MiB) /* received bytes a test stream keeps for comparison */
#define MAX_ROUNDS     100000
#define KIND_TEST      1
#define KIND_REFUSE_ME 99 /* the acceptor refuses this kind when its policy is OPEN_BY_KIND */

/* ---- harness: a fake clock, test streams, peers and the in-memory link ---- */

static uint64_t fake_now = 1000000;

static uint64_t fake_clock(void)
{
	return fake_now;
}

/* A small deterministic generator, so that a failing piece size can be reproduced. */
static uint32_t rng_state = 12345;

static uint32_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 17;
	rng_state ^= rng_state << 5;
	return rng_state;
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 131 + 7);
}

enum consume_mode {
	CONSUME_INLINE, /* stream_consumed() inside on_data */
	CONSUME_LATER,	/* everything received is consumed after each pump round */
	CONSUME_NEVER,
};

enum open_policy { OPEN_ACCEPT, OPEN_REFUSE, OPEN_HOLD, OPEN_BY_KIND };

struct peer;

/* One side's view of one stream, the ctx of every callback. */
struct tstream {
	struct peer *p;
	struct stream *st; /* NULL once released */
	enum consume_mode consume;
	uint16_t kind, flags;
	uint8_t req[64];
	size_t req_len;
	uint8_t *rx;
	size_t rx_len;	 /* bytes kept in rx, up to KEEP_MAX */
	size_t rx_total; /* bytes received */
	bool pattern_ok; /* every byte so far matches pattern() */
	size_t unconsumed;
	size_t tx_total; /* bytes written with write_pattern() or by on_writable */
	size_t
	    tx_budget; /* nonzero: on_writable writes up to this many bytes, like a bulk sender */
	int ndata;
	int nown; /* payloads handed on in a chunk of their own (a copy) */
	size_t last_len;
	bool replied;
	int reply_err;
	char reply[300]; /* its first bytes, NUL-terminated */
	size_t reply_len;
	bool fin, reset;
	int reset_err;
	int writable;
	size_t sent;
	bool autoclose; /* on_fin: shut down and release */
};

struct peer {
	const char *label;
	struct session *s;
	struct session_config cfg;
	enum open_policy policy;
	enum consume_mode consume; /* for the streams the peer opens */
	bool autoclose;
	struct chunk_pool *rxpool; /* receive buffers */
	struct tstream **ts;
	int nts, ts_cap;
	int nready, nclose, nopen, npong;
	size_t *first_done; /* each stream's tx_total when the first one spent its tx_budget */
	int close_err;
	char close_reason[FRAME_TEXT_MAX + 64];
	uint64_t rtt;
	uint8_t *pend; /* the partial frame left by the last session_input() */
	size_t pend_len;
	size_t piece_max; /* 0: feed whole batches; else pieces of 1..piece_max bytes */
	int input_err;
};

struct conn {
	struct chunk_pool pool;
	struct chunk_pool small; /* chunks smaller than a datagram */
	struct peer a;		 /* dials: odd stream ids */
	struct peer b;		 /* accepts: even stream ids */
};

static const struct stream_ops tstream_ops;

static struct tstream *ts_new(struct peer *p, enum consume_mode consume)
{
	struct tstream *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->p = p;
	t->consume = consume;
	t->pattern_ok = true;
	t->autoclose = p->autoclose;
	if (p->nts == p->ts_cap) {
		p->ts_cap = p->ts_cap ? p->ts_cap * 2 : 16;
		p->ts = realloc(p->ts, (size_t)p->ts_cap * sizeof(*p->ts));
		assert_non_null(p->ts);
	}
	p->ts[p->nts++] = t;
	return t;
}

static void ts_release(struct tstream *t)
{
	if (t->st)
		stream_release(t->st);
	t->st = NULL;
}

static void ts_on_reply(struct stream *st, int err, const uint8_t *reply, size_t len)
{
	struct tstream *t = stream_ctx(st);

	assert_false(t->replied);
	t->replied = true;
	t->reply_err = err;
	t->reply_len = len;
	if (len >= sizeof(t->reply))
		len = sizeof(t->reply) - 1;
	memcpy(t->reply, reply, len);
	t->reply[len] = '\0';
}

static void ts_on_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct tstream *t = stream_ctx(st);

	assert_non_null(c);
	for (size_t i = 0; i < len && t->pattern_ok; i++)
		t->pattern_ok = p[i] == pattern(t->rx_total + i);
	if (t->rx_len < KEEP_MAX) {
		size_t keep = len < KEEP_MAX - t->rx_len ? len : KEEP_MAX - t->rx_len;

		t->rx = realloc(t->rx, t->rx_len + keep + 1);
		assert_non_null(t->rx);
		memcpy(t->rx + t->rx_len, p, keep);
		t->rx_len += keep;
		t->rx[t->rx_len] = '\0';
	}
	t->rx_total += len;
	t->ndata++;
	t->nown += !c->pool;
	t->last_len = len;
	if (t->consume == CONSUME_INLINE)
		stream_consumed(st, len);
	else
		t->unconsumed += len;
}

static void ts_on_fin(struct stream *st)
{
	struct tstream *t = stream_ctx(st);

	assert_false(t->fin);
	t->fin = true;
	if (t->autoclose) {
		stream_shutdown(st);
		ts_release(t);
	}
}

static void ts_on_reset(struct stream *st, int err)
{
	struct tstream *t = stream_ctx(st);

	assert_false(t->reset);
	t->reset = true;
	t->reset_err = err;
	if (t->autoclose)
		ts_release(t);
}

static void ts_write_budget(struct tstream *t);

static void ts_on_writable(struct stream *st)
{
	struct tstream *t = stream_ctx(st);

	t->writable++;
	if (t->tx_budget)
		ts_write_budget(t);
}

static void ts_on_sent(struct stream *st, size_t n)
{
	struct tstream *t = stream_ctx(st);

	t->sent += n;
}

static const struct stream_ops tstream_ops = {
    .on_reply = ts_on_reply,
    .on_data = ts_on_data,
    .on_fin = ts_on_fin,
    .on_reset = ts_on_reset,
    .on_writable = ts_on_writable,
    .on_sent = ts_on_sent,
};

static void peer_on_ready(struct session *s)
{
	struct peer *p = session_app(s);

	p->nready++;
}

static void peer_on_open(struct session *s, struct stream *st, uint16_t kind, uint16_t flags,
			 const uint8_t *req, size_t len)
{
	struct peer *p = session_app(s);
	struct tstream *t = ts_new(p, p->consume);
	enum open_policy policy = p->policy;

	p->nopen++;
	t->kind = kind;
	t->flags = flags;
	t->req_len = len < sizeof(t->req) ? len : sizeof(t->req);
	memcpy(t->req, req, t->req_len);
	if (policy == OPEN_BY_KIND)
		policy = kind == KIND_REFUSE_ME ? OPEN_REFUSE : OPEN_ACCEPT;
	switch (policy) {
	case OPEN_ACCEPT:
		t->st = st;
		assert_int_equal(stream_accept(st, "ok", 2, &tstream_ops, t), 0);
		break;
	case OPEN_REFUSE:
		assert_int_equal(stream_refuse(st, -ENOENT, "no such program"), 0);
		break;
	case OPEN_HOLD:
		t->st = st;
		break;
	case OPEN_BY_KIND:
		break;
	}
}

static void peer_on_pong(struct session *s, uint64_t rtt_ns)
{
	struct peer *p = session_app(s);

	p->npong++;
	p->rtt = rtt_ns;
}

static void peer_on_close(struct session *s, int err, const char *reason)
{
	struct peer *p = session_app(s);

	p->nclose++;
	p->close_err = err;
	snprintf(p->close_reason, sizeof(p->close_reason), "%s", reason ? reason : "");
}

static const struct session_ops peer_ops = {
    .on_ready = peer_on_ready,
    .on_open = peer_on_open,
    .on_pong = peer_on_pong,
    .on_close = peer_on_close,
};

/* The same without on_open: a side that serves no stream kinds. */
static const struct session_ops peer_ops_no_open = {
    .on_ready = peer_on_ready,
    .on_pong = peer_on_pong,
    .on_close = peer_on_close,
};

static void peer_init(struct peer *p, struct conn *c, const char *label, bool dialer)
{
	p->label = label;
	session_config_defaults(&p->cfg);
	p->cfg.dialer = dialer;
	p->cfg.name = label;
	p->cfg.role = dialer ? FRAME_ROLE_CLIENT : FRAME_ROLE_AGENT;
	p->cfg.caps = dialer ? FRAME_CAP_CONTROL : FRAME_CAP_EXEC | FRAME_CAP_FILE | FRAME_CAP_TCP;
	p->cfg.pool = &c->pool;
	p->cfg.now_ns = fake_clock;
	p->rxpool = &c->pool;
	p->pend = malloc(CHUNK_SIZE);
	assert_non_null(p->pend);
}

static void peer_start_ops(struct peer *p, const struct session_ops *ops)
{
	assert_int_equal(session_new(&p->s, &p->cfg, ops, p), 0);
}

static void peer_start(struct peer *p)
{
	peer_start_ops(p, &peer_ops);
}

static void peer_fini(struct peer *p)
{
	session_free(p->s);
	for (int i = 0; i < p->nts; i++) {
		free(p->ts[i]->rx);
		free(p->ts[i]);
	}
	free(p->ts);
	free(p->pend);
}

/*
 * Hands len bytes to p's session the way a driver does: each piece lands in a
 * fresh chunk behind the partial frame the last call left over.
 */
static void peer_feed(struct peer *p, const uint8_t *b, size_t len)
{
	while (len && !p->input_err) {
		size_t k = p->piece_max ? 1 + rng() % p->piece_max : len;
		struct chunk *c = chunk_get(p->rxpool);
		size_t have, used;
		int ret;

		if (k > len)
			k = len;
		if (k > CHUNK_SIZE - p->pend_len)
			k = CHUNK_SIZE - p->pend_len;
		assert_non_null(c);
		memcpy(c->data, p->pend, p->pend_len);
		memcpy(c->data + p->pend_len, b, k);
		have = p->pend_len + k;
		ret = session_input(p->s, c, c->data, have, &used);
		assert_true(used <= have);
		p->pend_len = have - used;
		memcpy(p->pend, c->data + used, p->pend_len);
		chunk_put(c);
		b += k;
		len -= k;
		if (ret)
			p->input_err = ret;
	}
}

/* A growable byte buffer for frames made by hand and output captured. */
struct raw {
	uint8_t *b;
	size_t len, cap;
};

static void raw_put(struct raw *r, const void *p, size_t n)
{
	if (r->len + n > r->cap) {
		r->cap = (r->len + n) * 2;
		r->b = realloc(r->b, r->cap);
		assert_non_null(r->b);
	}
	if (n)
		memcpy(r->b + r->len, p, n);
	r->len += n;
}

/* Takes one output batch of p, appends its bytes to out and completes it; returns its bytes. */
static size_t batch_take(struct peer *p, struct raw *out)
{
	struct vb_iov iov[MAX_IOV];
	size_t before = out->len;
	int n = session_output(p->s, iov, MAX_IOV);

	assert_true(n >= 0);
	for (int i = 0; i < n; i++)
		raw_put(out, iov[i].base, iov[i].len);
	if (n)
		session_output_done(p->s);
	return out->len - before;
}

static void drain(struct peer *p, struct raw *out)
{
	while (batch_take(p, out))
		;
}

/* Moves every batch from one side to the other; returns the bytes moved. */
static size_t pump_dir(struct peer *from, struct peer *to)
{
	struct raw r = {0};

	drain(from, &r);
	peer_feed(to, r.b, r.len);
	free(r.b);
	return r.len;
}

static void consume_later(struct peer *p)
{
	for (int i = 0; i < p->nts; i++) {
		struct tstream *t = p->ts[i];

		if (t->st && t->consume == CONSUME_LATER && t->unconsumed) {
			stream_consumed(t->st, t->unconsumed);
			t->unconsumed = 0;
		}
	}
}

/* One round trip: a's output to b, b's output to a, then the deferred consumers run. */
static size_t pump_round(struct conn *c)
{
	size_t moved = pump_dir(&c->a, &c->b);

	moved += pump_dir(&c->b, &c->a);
	consume_later(&c->a);
	consume_later(&c->b);
	return moved;
}

/* Runs rounds until nothing moves. */
static void pump(struct conn *c)
{
	int rounds = 0;

	while (pump_round(c))
		assert_true(++rounds < MAX_ROUNDS);
}

static int conn_setup(void **state)
{
	struct conn *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	chunk_pool_init(&c->pool, CHUNK_SIZE, 4);
	chunk_pool_init(&c->small, 1024, 4);
	peer_init(&c->a, c, "test-a", true);
	peer_init(&c->b, c, "test-b", false);
	c->b.cfg.max_frame = 65536;
	rng_state = 12345;
	fake_now = 1000000;
	*state = c;
	return 0;
}

static int conn_teardown(void **state)
{
	struct conn *c = *state;

	peer_fini(&c->a);
	peer_fini(&c->b);
	assert_int_equal(c->pool.outstanding, 0);
	assert_int_equal(c->small.outstanding, 0);
	chunk_pool_destroy(&c->pool);
	chunk_pool_destroy(&c->small);
	free(c);
	return 0;
}

/* Starts both sessions with their configs as the test left them and lets the HELLOs cross. */
static void conn_start(struct conn *c)
{
	peer_start(&c->a);
	peer_start(&c->b);
	pump(c);
	assert_int_equal(session_state(c->a.s), SESSION_OPEN);
	assert_int_equal(session_state(c->b.s), SESSION_OPEN);
}

static struct tstream *ts_open(struct peer *p, uint16_t kind, uint16_t flags)
{
	struct tstream *t = ts_new(p, p->consume);

	t->kind = kind;
	t->flags = flags;
	assert_int_equal(stream_open(p->s, kind, flags, "req", 3, &tstream_ops, t, &t->st), 0);
	return t;
}

/* Opens a stream from a, lets b accept it and returns both ends. */
static struct tstream *ts_open_pair(struct conn *c, uint16_t flags, struct tstream **remote)
{
	struct tstream *t = ts_open(&c->a, KIND_TEST, flags);
	int before = c->b.nts;

	pump(c);
	assert_true(t->replied);
	assert_int_equal(t->reply_err, 0);
	assert_int_equal(c->b.nts, before + 1);
	*remote = c->b.ts[before];
	return t;
}

static void ts_write(struct tstream *t, const char *text)
{
	assert_int_equal(stream_write_copy(t->st, text, strlen(text)), 0);
}

/* Queues n more bytes of pattern() on t. */
static void write_pattern(struct tstream *t, size_t n)
{
	while (n) {
		struct chunk *c = chunk_get(t->p->cfg.pool);
		size_t k = n < c->size ? n : c->size;

		for (size_t i = 0; i < k; i++)
			c->data[i] = pattern(t->tx_total + i);
		assert_int_equal(stream_write(t->st, c, c->data, k), 0);
		chunk_put(c);
		t->tx_total += k;
		n -= k;
	}
}

/* Queues n bytes without filling them: many references to one chunk. */
static void write_bulk(struct tstream *t, size_t n)
{
	struct chunk *c = chunk_get(t->p->cfg.pool);

	memset(c->data, 'B', c->size);
	while (n) {
		size_t k = n < c->size ? n : c->size;

		assert_int_equal(stream_write(t->st, c, c->data, k), 0);
		n -= k;
	}
	chunk_put(c);
}

/* ---- reading frames back ---- */

struct wframe {
	struct frame_hdr h;
	const uint8_t *p;
};

/* Splits captured bytes into whole frames; returns the count. */
static int frames_split(const struct raw *r, struct wframe *out, int max)
{
	size_t off = 0;
	int n = 0;

	while (off < r->len) {
		assert_true(r->len - off >= FRAME_HDR_LEN);
		assert_int_equal(frame_hdr_decode(r->b + off, &out[n].h), 0);
		out[n].p = r->b + off + FRAME_HDR_LEN;
		off += FRAME_HDR_LEN + out[n].h.len;
		assert_true(off <= r->len);
		assert_true(++n < max);
	}
	return n;
}

/* Drains p and checks that its last frame is a GOAWAY with code and a reason. */
static void assert_goaway_last(struct peer *p, uint32_t code)
{
	struct raw out = {0};
	struct frame_reason r;
	struct frame_hdr h = {0};
	size_t off = 0, last = 0;

	drain(p, &out);
	while (off < out.len) {
		last = off;
		assert_int_equal(frame_hdr_decode(out.b + off, &h), 0);
		off += FRAME_HDR_LEN + h.len;
	}
	assert_int_equal(off, out.len);
	assert_int_equal(h.type, FRAME_GOAWAY);
	assert_int_equal(h.stream, 0);
	assert_int_equal(frame_reason_decode(out.b + last + FRAME_HDR_LEN, h.len, FRAME_GOAWAY, &r),
			 0);
	assert_int_equal(r.code, code);
	assert_true(r.text[0] != '\0');
	free(out.b);
}

/* ---- frames made by hand, for a peer that breaks the rules ---- */

static void raw_hdr(struct raw *r, uint8_t type, uint8_t flags, uint32_t id, uint32_t len)
{
	uint8_t h[FRAME_HDR_LEN];

	frame_hdr_encode(h, type, flags, id, len);
	raw_put(r, h, sizeof(h));
}

static void raw_frame(struct raw *r, uint8_t type, uint8_t flags, uint32_t id, const void *p,
		      size_t len)
{
	raw_hdr(r, type, flags, id, (uint32_t)len);
	raw_put(r, p, len);
}

static void raw_u32(struct raw *r, uint8_t type, uint32_t id, uint32_t v)
{
	uint8_t b[4];

	wire_put_u32(b, v);
	raw_frame(r, type, 0, id, b, sizeof(b));
}

static void raw_hello_full(struct raw *r, uint16_t min_version, uint16_t max_version,
			   uint32_t max_frame)
{
	struct frame_hello h = {
	    .min_version = min_version,
	    .max_version = max_version,
	    .max_frame = max_frame,
	    .max_streams = 1024,
	    .role = FRAME_ROLE_HOST,
	    .name = "raw",
	};
	uint8_t p[FRAME_HELLO_MAX];
	int n = frame_hello_encode(p, sizeof(p), &h);

	assert_true(n > 0);
	raw_frame(r, FRAME_HELLO, 0, 0, p, (size_t)n);
}

static void raw_hello(struct raw *r)
{
	raw_hello_full(r, FRAME_VERSION, FRAME_VERSION, 65536);
}

static void raw_open(struct raw *r, uint32_t id)
{
	uint8_t p[8];
	int n = frame_open_encode(p, sizeof(p), KIND_TEST, 0, "rq", 2);

	raw_frame(r, FRAME_OPEN, 0, id, p, (size_t)n);
}

static void raw_data(struct raw *r, uint32_t id, uint8_t flags, size_t len)
{
	raw_hdr(r, FRAME_DATA, flags, id, (uint32_t)len);
	for (size_t i = 0; i < len; i++)
		raw_put(r, "d", 1);
}

/* Starts b alone, as the acceptor, fed by hand instead of by a peer session. */
static void solo_start(struct conn *c)
{
	c->b.consume = CONSUME_NEVER;
	peer_start(&c->b);
}

/* ---- handshake ---- */

static void test_handshake_exchanges_names_caps_and_roles(void **state)
{
	struct conn *c = *state;

	c->b.cfg.max_frame = 32768;
	conn_start(c);
	assert_int_equal(c->a.nready, 1);
	assert_int_equal(c->b.nready, 1);
	assert_string_equal(session_peer(c->a.s)->name, "test-b");
	assert_string_equal(session_peer(c->b.s)->name, "test-a");
	assert_int_equal(session_peer(c->a.s)->caps,
			 FRAME_CAP_EXEC | FRAME_CAP_FILE | FRAME_CAP_TCP);
	assert_int_equal(session_peer(c->b.s)->caps, FRAME_CAP_CONTROL);
	assert_int_equal(session_peer(c->a.s)->role, FRAME_ROLE_AGENT);
	assert_int_equal(session_peer(c->b.s)->role, FRAME_ROLE_CLIENT);
	assert_int_equal(session_version(c->a.s), FRAME_VERSION);
	assert_int_equal(session_version(c->b.s), FRAME_VERSION);
	assert_int_equal(session_max_payload(c->a.s), 32768);
	assert_int_equal(session_max_payload(c->b.s), 65536 + 256);
}

static void test_hello_is_the_first_frame_each_side_sends(void **state)
{
	struct conn *c = *state;
	struct wframe f[8];
	struct raw out = {0};
	struct frame_hello h;
	struct tstream *t;

	peer_start(&c->a);
	t = ts_open(&c->a, KIND_TEST, 0); /* an OPEN may follow the HELLO at once */
	assert_non_null(t->st);
	drain(&c->a, &out);
	assert_int_equal(frames_split(&out, f, (int)NELEM(f)), 2);
	assert_int_equal(f[0].h.type, FRAME_HELLO);
	assert_int_equal(frame_hello_decode(f[0].p, f[0].h.len, &h), 0);
	assert_int_equal(h.max_frame, c->a.cfg.max_frame);
	assert_string_equal(h.name, "test-a");
	assert_int_equal(f[1].h.type, FRAME_OPEN);
	assert_int_equal(f[1].h.stream, 1);
	free(out.b);
}

static void test_goaway_before_the_peer_hello_still_accepts_that_hello(void **state)
{
	struct conn *c = *state;
	struct raw r = {0};

	solo_start(c);
	assert_int_equal(session_goaway(c->b.s, VB_WERR_SHUTDOWN, "going down"), 0);
	raw_hello(&r);
	peer_feed(&c->b, r.b, r.len);
	assert_int_equal(c->b.input_err, 0);
	assert_int_equal(c->b.nclose, 0);
	assert_int_equal(session_state(c->b.s), SESSION_CLOSING);
	free(r.b);
}

static void test_open_before_the_peer_hello_is_limited_to_16384_bytes(void **state)
{
	struct conn *c = *state;
	static uint8_t req[FRAME_MIN_MAX_FRAME];
	struct stream *st;

	c->a.cfg.max_frame = FRAME_MAX_MAX_FRAME;
	c->b.cfg.max_frame = FRAME_MAX_MAX_FRAME;
	peer_start(&c->a);
	assert_int_equal(stream_open(c->a.s, KIND_TEST, 0, req, FRAME_MIN_MAX_FRAME - 4 + 1,
				     &tstream_ops, NULL, &st),
			 -EMSGSIZE);
	peer_start(&c->b);
	pump(c);
	assert_int_equal(stream_open(c->a.s, KIND_TEST, 0, req, FRAME_MIN_MAX_FRAME - 4 + 1,
				     &tstream_ops, NULL, &st),
			 0);
	stream_release(st);
}

/* ---- opening streams ---- */

static void test_open_accept_data_fin_round_trip(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;

	conn_start(c);
	a = ts_open(&c->a, 4, 0);
	pump(c);
	assert_true(a->replied);
	assert_int_equal(a->reply_err, 0);
	assert_string_equal(a->reply, "ok");
	assert_int_equal(c->b.nts, 1);
	b = c->b.ts[0];
	assert_int_equal(b->kind, 4);
	assert_int_equal(b->req_len, 3);
	assert_memory_equal(b->req, "req", 3);
	assert_int_equal(stream_id(a->st), 1);
	assert_int_equal(stream_id(b->st), 1);

	write_pattern(a, 300000);
	assert_int_equal(stream_shutdown(a->st), 0);
	pump(c);
	assert_int_equal(b->rx_total, 300000);
	assert_true(b->pattern_ok);
	assert_true(b->fin);
	assert_false(b->reset);

	ts_write(b, "pong");
	assert_int_equal(stream_shutdown(b->st), 0);
	pump(c);
	assert_string_equal((char *)a->rx, "pong");
	assert_true(a->fin);
	assert_int_equal(a->sent, 300000);
	ts_release(a);
	ts_release(b);
	pump(c);
	assert_int_equal(session_stream_count(c->a.s), 0);
	assert_int_equal(session_stream_count(c->b.s), 0);
}

static void test_open_refused_gives_reply_with_errno_and_text(void **state)
{
	struct conn *c = *state;
	struct tstream *a;

	c->b.policy = OPEN_REFUSE;
	conn_start(c);
	a = ts_open(&c->a, KIND_TEST, 0);
	pump(c);
	assert_true(a->replied);
	assert_int_equal(a->reply_err, -ENOENT);
	assert_string_equal(a->reply, "no such program");
	assert_false(a->reset);
	assert_int_equal(stream_write_copy(a->st, "x", 1), -EPIPE);
	assert_int_equal(session_stream_count(c->b.s), 0);
	ts_release(a);
	assert_int_equal(session_stream_count(c->a.s), 0);
}

static void test_data_written_before_accept_is_held_then_delivered(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;

	c->b.policy = OPEN_HOLD;
	conn_start(c);
	a = ts_open(&c->a, KIND_TEST, 0);
	ts_write(a, "early bytes");
	assert_int_equal(stream_shutdown(a->st), 0);
	pump(c);
	b = c->b.ts[0];
	assert_int_equal(b->ndata, 0);
	assert_false(b->fin);
	assert_false(a->replied);

	assert_int_equal(stream_accept(b->st, NULL, 0, &tstream_ops, b), 0);
	pump(c);
	assert_true(a->replied);
	assert_string_equal((char *)b->rx, "early bytes");
	assert_true(b->fin);
}

static void test_acceptor_releasing_an_unanswered_open_refuses_it_as_cancelled(void **state)
{
	struct conn *c = *state;
	struct tstream *a;

	c->b.policy = OPEN_HOLD;
	conn_start(c);
	a = ts_open(&c->a, KIND_TEST, 0);
	pump(c);
	ts_release(c->b.ts[0]);
	pump(c);
	assert_true(a->replied);
	assert_int_equal(a->reply_err, -ECANCELED);
	assert_int_equal(session_stream_count(c->b.s), 0);
}

static void test_opener_releasing_before_the_answer_cancels_the_open(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;

	c->b.policy = OPEN_HOLD;
	conn_start(c);
	a = ts_open(&c->a, KIND_TEST, 0);
	pump(c);
	ts_release(a);
	assert_int_equal(session_stream_count(c->a.s), 0);
	pump(c);
	b = c->b.ts[0];
	assert_int_equal(stream_accept(b->st, NULL, 0, &tstream_ops, b), -EINVAL);
	ts_release(b);
	pump(c);
	assert_int_equal(session_stream_count(c->b.s), 0);
	assert_int_equal(c->a.input_err, 0);
	assert_int_equal(c->b.input_err, 0);
}

static void test_open_after_our_goaway_is_refused_with_shutdown(void **state)
{
	struct conn *c = *state;
	struct wframe f[8];
	struct raw r = {0}, out = {0};
	struct frame_reason why;
	int n;

	solo_start(c);
	raw_hello(&r);
	peer_feed(&c->b, r.b, r.len);
	assert_int_equal(session_goaway(c->b.s, VB_WERR_SHUTDOWN, "bye"), 0);
	r.len = 0;
	raw_open(&r, 1);
	peer_feed(&c->b, r.b, r.len);
	assert_int_equal(c->b.input_err, 0);
	assert_int_equal(c->b.nopen, 0);
	drain(&c->b, &out);
	n = frames_split(&out, f, (int)NELEM(f));
	assert_int_equal(f[n - 1].h.type, FRAME_REFUSE);
	assert_int_equal(frame_reason_decode(f[n - 1].p, f[n - 1].h.len, FRAME_REFUSE, &why), 0);
	assert_int_equal(why.code, VB_WERR_SHUTDOWN);
	free(r.b);
	free(out.b);
}

static void test_open_request_too_big_for_a_control_frame_fails_locally(void **state)
{
	struct conn *c = *state;
	static uint8_t big[FRAME_CTL_MAX];
	struct tstream *a, *b;
	struct stream *st = NULL;

	c->a.cfg.max_frame = FRAME_MAX_MAX_FRAME;
	c->b.cfg.max_frame = FRAME_MAX_MAX_FRAME;
	c->b.policy = OPEN_HOLD;
	conn_start(c);
	assert_int_equal(
	    stream_open(c->a.s, KIND_TEST, 0, big, FRAME_CTL_MAX - 4 + 1, &tstream_ops, NULL, &st),
	    -EMSGSIZE);
	assert_int_equal(
	    stream_open(c->a.s, KIND_TEST, 0, big, FRAME_CTL_MAX - 4, &tstream_ops, NULL, &st), 0);
	a = ts_new(&c->a, CONSUME_INLINE);
	a->st = st;
	stream_set_ctx(st, a);
	pump(c);
	assert_int_equal(c->b.input_err, 0);
	b = c->b.ts[0];
	assert_int_equal(stream_accept(b->st, big, FRAME_CTL_MAX + 1, &tstream_ops, b), -EMSGSIZE);
	assert_int_equal(stream_accept(b->st, big, FRAME_CTL_MAX, &tstream_ops, b), 0);
	pump(c);
	assert_int_equal(c->a.input_err, 0);
	assert_true(a->replied);
	assert_int_equal(a->reply_err, 0);
	assert_int_equal(a->reply_len, FRAME_CTL_MAX);
}

/* ---- flow control ---- */

static void test_receiver_that_never_consumes_gets_exactly_the_initial_window(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;

	c->b.consume = CONSUME_NEVER;
	conn_start(c);
	a = ts_open_pair(c, 0, &b);
	write_pattern(a, 1 * MiB);
	pump(c);
	assert_int_equal(b->rx_total, FRAME_INITIAL_WINDOW);
	assert_true(b->pattern_ok);
	assert_int_equal(stream_queued(a->st), 1 * MiB - FRAME_INITIAL_WINDOW);
	assert_int_equal(stream_send_credit(a->st), 0);
	assert_int_equal(session_buffered(c->b.s), FRAME_INITIAL_WINDOW);
}

static void test_consuming_a_quarter_of_the_window_releases_more(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;

	c->b.consume = CONSUME_NEVER;
	conn_start(c);
	a = ts_open_pair(c, 0, &b);
	write_pattern(a, 2 * MiB);
	pump(c);
	assert_int_equal(b->rx_total, FRAME_INITIAL_WINDOW);

	stream_consumed(b->st, FRAME_INITIAL_WINDOW / 4 - 1);
	pump(c);
	assert_int_equal(b->rx_total, FRAME_INITIAL_WINDOW); /* below a quarter: no WINDOW */

	stream_consumed(b->st, 1);
	pump(c);
	assert_true(b->rx_total > FRAME_INITIAL_WINDOW);
	assert_true(b->pattern_ok);
	/* A stalled receiver holds exactly one window of unconsumed bytes. */
	assert_int_equal(b->rx_total - FRAME_INITIAL_WINDOW / 4, stream_recv_window(b->st));
	assert_int_equal(session_buffered(c->b.s), stream_recv_window(b->st));
}

static void test_stalled_stream_does_not_stop_another_stream(void **state)
{
	struct conn *c = *state;
	struct tstream *a1, *b1, *a2, *b2;

	c->b.consume = CONSUME_NEVER;
	conn_start(c);
	a1 = ts_open_pair(c, 0, &b1);
	a2 = ts_open_pair(c, 0, &b2);
	b2->consume = CONSUME_INLINE;
	write_pattern(a1, 1 * MiB);
	write_pattern(a2, 4 * MiB);
	pump(c);
	assert_int_equal(b1->rx_total, FRAME_INITIAL_WINDOW);
	assert_int_equal(b2->rx_total, 4 * MiB);
	assert_true(b2->pattern_ok);
}

static void test_small_payloads_arrive_copied_and_large_ones_in_place(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;

	c->b.cfg.max_frame = 512 * KiB; /* frames of 512 KiB: over an eighth of a 2 MiB chunk */
	c->b.consume = CONSUME_NEVER;	/* held, as by a consumer that waits */
	conn_start(c);
	a = ts_open_pair(c, 0, &b);
	write_pattern(a, 100);
	pump(c);
	assert_int_equal(b->ndata, 1);
	assert_int_equal(b->nown, 1); /* 100 bytes must not pin a 2 MiB receive chunk */

	stream_consumed(b->st, b->unconsumed);
	b->unconsumed = 0;
	b->consume = CONSUME_INLINE;
	write_pattern(a, 2 * MiB);
	pump(c);
	assert_int_equal(b->rx_total, 100 + 2 * MiB);
	assert_true(b->pattern_ok);
	assert_true(b->ndata - b->nown >=
		    3); /* the 512 KiB frames stay in the chunk they came in */
}

static void test_window_grows_up_to_max_window_and_never_past_it(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;
	uint32_t max_window = 3 * MiB; /* not a power-of-two multiple of the initial window */
	int rounds = 0;

	c->b.cfg.max_window = max_window;
	c->b.consume = CONSUME_LATER;
	conn_start(c);
	a = ts_open_pair(c, 0, &b);
	write_pattern(a, 48 * MiB);
	while (pump_round(c)) {
		assert_true(stream_recv_window(b->st) <= max_window);
		assert_true(stream_send_credit(a->st) <= max_window);
		assert_true(++rounds < MAX_ROUNDS);
	}
	assert_int_equal(b->rx_total, 48 * MiB);
	assert_true(b->pattern_ok);
	assert_int_equal(stream_recv_window(b->st), max_window);
}

static void test_session_window_cap_limits_growth_over_all_streams(void **state)
{
	struct conn *c = *state;
	struct tstream *a1, *b1, *a2, *b2;
	uint64_t cap = 1 * MiB;

	c->b.cfg.session_window_cap = cap;
	c->b.consume = CONSUME_LATER;
	conn_start(c);
	a1 = ts_open_pair(c, 0, &b1);
	a2 = ts_open_pair(c, 0, &b2);
	write_pattern(a1, 16 * MiB);
	write_pattern(a2, 16 * MiB);
	while (pump_round(c))
		assert_true(stream_recv_window(b1->st) + stream_recv_window(b2->st) <= cap);
	assert_int_equal(b1->rx_total, 16 * MiB);
	assert_int_equal(b2->rx_total, 16 * MiB);
	assert_int_equal(stream_recv_window(b1->st), 512 * KiB);
	assert_int_equal(stream_recv_window(b2->st), 512 * KiB);
}

static void test_writable_fires_once_the_queue_drains_below_low_water(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;

	c->a.cfg.sendq_low = 64 * KiB;
	conn_start(c);
	a = ts_open_pair(c, 0, &b);
	write_pattern(a, 1 * MiB);
	assert_false(stream_writable(a->st));
	pump(c);
	assert_int_equal(b->rx_total, 1 * MiB);
	assert_true(stream_writable(a->st));
	assert_int_equal(a->writable, 1);
	assert_int_equal(a->sent, 1 * MiB);
}

/* ---- scheduling ---- */

static void test_interactive_frame_goes_before_queued_bulk_bytes(void **state)
{
	struct conn *c = *state;
	struct tstream *bulk, *inter, *rb, *ri;
	struct wframe f[MAX_IOV];
	struct raw out = {0};
	uint8_t keys[100];
	size_t bulk_before = 0;
	int n, i;

	conn_start(c);
	bulk = ts_open_pair(c, 0, &rb);
	inter = ts_open_pair(c, FRAME_OPEN_INTERACTIVE, &ri);
	write_bulk(bulk, 64 * MiB);
	pump_round(c); /* the bulk copy is under way and its credit refilled */
	assert_true(rb->rx_total > 0);
	assert_true(stream_send_credit(bulk->st) > 0);

	memset(keys, 'k', sizeof(keys));
	assert_int_equal(stream_write_copy(inter->st, keys, sizeof(keys)), 0);
	assert_int_equal(stream_queued(inter->st), 100);
	batch_take(&c->a, &out);
	n = frames_split(&out, f, (int)NELEM(f));
	for (i = 0; i < n && f[i].h.stream != stream_id(inter->st); i++)
		if (f[i].h.type == FRAME_DATA)
			bulk_before += f[i].h.len;
	assert_true(i < n);
	assert_int_equal(f[i].h.type, FRAME_DATA);
	assert_int_equal(f[i].h.len, 100);
	assert_int_equal(bulk_before, 0);
	assert_true(i + 1 < n); /* bulk frames follow in the same batch */
	free(out.b);
}

static void test_bulk_streams_alternate_frames_round_robin(void **state)
{
	struct conn *c = *state;
	struct tstream *a1, *b1, *a2, *b2;
	struct wframe f[MAX_IOV];
	struct raw out = {0};
	int n;

	conn_start(c);
	a1 = ts_open_pair(c, 0, &b1);
	a2 = ts_open_pair(c, 0, &b2);
	write_bulk(a1, 1 * MiB);
	write_bulk(a2, 1 * MiB);
	batch_take(&c->a, &out);
	n = frames_split(&out, f, (int)NELEM(f));
	assert_true(n >= 4);
	for (int i = 0; i < n; i++) {
		assert_int_equal(f[i].h.type, FRAME_DATA);
		assert_int_equal(f[i].h.stream, stream_id(i % 2 ? a2->st : a1->st));
		assert_true(f[i].h.len <= session_max_payload(c->a.s));
	}
	free(out.b);
}

static void test_ping_goes_before_queued_bulk_bytes(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;
	struct wframe f[MAX_IOV];
	struct raw out = {0};

	conn_start(c);
	a = ts_open_pair(c, 0, &b);
	write_bulk(a, 8 * MiB);
	assert_int_equal(session_ping(c->a.s), 0);
	batch_take(&c->a, &out);
	assert_true(frames_split(&out, f, (int)NELEM(f)) > 1);
	assert_int_equal(f[0].h.type, FRAME_PING);
	free(out.b);
}

/* ---- closing streams ---- */

static void test_half_close_lets_the_peer_keep_sending(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;

	conn_start(c);
	a = ts_open_pair(c, 0, &b);
	assert_int_equal(stream_shutdown(a->st), 0);
	pump(c);
	assert_true(b->fin);
	assert_false(b->reset);
	assert_int_equal(stream_write_copy(a->st, "x", 1), -EPIPE);

	ts_write(b, "still talking");
	pump(c);
	assert_string_equal((char *)a->rx, "still talking");
	assert_false(a->fin);
	assert_int_equal(stream_shutdown(b->st), 0);
	pump(c);
	assert_true(a->fin);
	assert_false(a->reset);
}

static void test_reset_gives_on_reset_with_the_errno_not_on_fin(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;

	conn_start(c);
	a = ts_open_pair(c, 0, &b);
	assert_int_equal(stream_reset(a->st, -ECONNREFUSED), 0);
	pump(c);
	assert_true(b->reset);
	assert_int_equal(b->reset_err, -ECONNREFUSED);
	assert_false(b->fin);
	assert_int_equal(stream_write_copy(b->st, "x", 1), -EPIPE);
	assert_false(a->reset); /* the side that resets gets no callback */
	ts_release(a);
	ts_release(b);
	pump(c);
	assert_int_equal(session_stream_count(c->a.s), 0);
	assert_int_equal(session_stream_count(c->b.s), 0);
}

static void test_release_after_shutdown_drains_queued_data_before_fin(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;

	conn_start(c);
	a = ts_open_pair(c, 0, &b);
	write_pattern(a, 1 * MiB);
	assert_int_equal(stream_shutdown(a->st), 0);
	ts_release(a);
	pump(c);
	assert_int_equal(b->rx_total, 1 * MiB);
	assert_true(b->pattern_ok);
	assert_true(b->fin);
	assert_false(b->reset);
	assert_int_equal(session_stream_count(c->a.s), 1); /* lingers for the peer's FIN */

	ts_write(b, "discarded");
	assert_int_equal(stream_shutdown(b->st), 0);
	ts_release(b);
	pump(c);
	assert_int_equal(session_stream_count(c->a.s), 0);
	assert_int_equal(session_stream_count(c->b.s), 0);
}

static void test_release_without_shutdown_resets_with_ecanceled(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;

	conn_start(c);
	a = ts_open_pair(c, 0, &b);
	write_pattern(a, 1 * MiB);
	ts_release(a);
	pump(c);
	assert_true(b->reset);
	assert_int_equal(b->reset_err, -ECANCELED);
	assert_int_equal(session_stream_count(c->a.s), 0);
}

/* ---- limits ---- */

static void test_opening_past_the_peer_limit_fails_with_emfile(void **state)
{
	struct conn *c = *state;
	struct tstream *t[4];
	struct stream *st;

	c->b.cfg.max_streams = 4;
	conn_start(c);
	for (int i = 0; i < 4; i++)
		t[i] = ts_open(&c->a, KIND_TEST, 0);
	assert_int_equal(stream_open(c->a.s, KIND_TEST, 0, NULL, 0, &tstream_ops, NULL, &st),
			 -EMFILE);
	pump(c);
	assert_int_equal(c->b.nopen, 4);

	assert_int_equal(stream_reset(t[0]->st, -ECANCELED), 0);
	ts_release(t[0]);
	pump(c);
	t[0] = ts_open(&c->a, KIND_TEST, 0);
	pump(c);
	assert_true(t[0]->replied);
	assert_int_equal(t[0]->reply_err, 0);
}

static void test_peer_that_ignores_the_stream_limit_gets_refuse_limit(void **state)
{
	struct conn *c = *state;
	struct wframe f[16];
	struct raw r = {0}, out = {0};
	struct frame_reason why;
	int n, refused = 0;

	c->b.cfg.max_streams = 2;
	solo_start(c);
	raw_hello(&r);
	raw_open(&r, 1);
	raw_open(&r, 3);
	raw_open(&r, 5);
	peer_feed(&c->b, r.b, r.len);
	assert_int_equal(c->b.input_err, 0);
	assert_int_equal(c->b.nopen, 2);
	drain(&c->b, &out);
	n = frames_split(&out, f, (int)NELEM(f));
	for (int i = 0; i < n; i++) {
		if (f[i].h.type != FRAME_REFUSE)
			continue;
		assert_int_equal(f[i].h.stream, 5);
		assert_int_equal(frame_reason_decode(f[i].p, f[i].h.len, FRAME_REFUSE, &why), 0);
		assert_int_equal(why.code, VB_WERR_LIMIT);
		refused++;
	}
	assert_int_equal(refused, 1);
	assert_int_equal(c->b.nclose, 0);
	free(r.b);
	free(out.b);
}

static void test_stream_refuse_after_the_peer_reset_releases_the_stream(void **state)
{
	struct conn *c = *state;
	struct raw r = {0};

	c->b.policy = OPEN_HOLD;
	solo_start(c);
	raw_hello(&r);
	raw_open(&r, 1);
	raw_u32(&r, FRAME_RESET, 1, VB_WERR_CANCELLED);
	peer_feed(&c->b, r.b, r.len);
	assert_int_equal(c->b.input_err, 0);
	assert_int_equal(session_stream_count(c->b.s), 1);
	stream_refuse(c->b.ts[0]->st, -ENOENT, "too late");
	c->b.ts[0]->st = NULL;
	assert_int_equal(session_stream_count(c->b.s), 0);
	free(r.b);
}

static void test_side_without_on_open_refuses_as_unsupported(void **state)
{
	struct conn *c = *state;
	struct wframe f[8];
	struct raw r = {0}, out = {0};
	struct frame_reason why;
	int n;

	peer_start_ops(&c->b, &peer_ops_no_open);
	raw_hello(&r);
	raw_open(&r, 1);
	peer_feed(&c->b, r.b, r.len);
	assert_int_equal(c->b.input_err, 0);
	drain(&c->b, &out);
	n = frames_split(&out, f, (int)NELEM(f));
	assert_int_equal(f[n - 1].h.type, FRAME_REFUSE);
	assert_int_equal(f[n - 1].h.stream, 1);
	assert_int_equal(frame_reason_decode(f[n - 1].p, f[n - 1].h.len, FRAME_REFUSE, &why), 0);
	assert_int_equal(why.code, VB_WERR_UNSUPPORTED);
	assert_int_equal(session_stream_count(c->b.s), 0);
	free(r.b);
	free(out.b);
}

/* ---- datagram streams ---- */

static void test_datagram_stream_needs_no_credit_and_keeps_boundaries(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;
	uint8_t dgram[1000];

	c->b.consume = CONSUME_NEVER;
	c->a.cfg.sendq_cap = 1024u * MiB; /* 300 copies, each in a 2 MiB test chunk */
	conn_start(c);
	a = ts_open_pair(c, FRAME_OPEN_DGRAM, &b);
	assert_int_equal(b->flags, FRAME_OPEN_DGRAM);
	memset(dgram, 'v', sizeof(dgram));
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < 300; i++)
			assert_int_equal(stream_write_copy(a->st, dgram, sizeof(dgram)), 0);
		pump(c);
	}
	assert_int_equal(c->b.input_err, 0);
	assert_int_equal(b->ndata, 600);
	assert_int_equal(b->last_len, sizeof(dgram));
	assert_int_equal(b->rx_total, 600 * sizeof(dgram));
	assert_true(b->rx_total > FRAME_INITIAL_WINDOW);
}

static void test_datagram_queue_full_drops_with_enobufs(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;

	c->a.cfg.dgram_queue_max = 8;
	conn_start(c);
	a = ts_open_pair(c, FRAME_OPEN_DGRAM, &b);
	for (int i = 0; i < 8; i++)
		assert_int_equal(stream_write_copy(a->st, "packet", 6), 0);
	assert_int_equal(stream_write_copy(a->st, "packet", 6), -ENOBUFS);
	assert_int_equal(stream_write_copy(a->st, "packet", 6), -ENOBUFS);
	assert_int_equal(session_stats(c->a.s)->dgrams_dropped, 2);
	pump(c);
	assert_int_equal(b->ndata, 8);
	assert_int_equal(stream_write_copy(a->st, "packet", 6), 0); /* room again */
}

static void test_datagram_larger_than_a_chunk_fails_instead_of_splitting(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;
	uint8_t dgram[1025];

	c->a.cfg.pool = &c->small; /* stream_write_copy() copies into 1024-byte chunks */
	conn_start(c);
	a = ts_open_pair(c, FRAME_OPEN_DGRAM, &b);
	memset(dgram, 'v', sizeof(dgram));
	assert_int_equal(stream_write_copy(a->st, dgram, 1025), -EMSGSIZE);
	assert_int_equal(stream_write_copy(a->st, dgram, 1024), 0);
	pump(c);
	assert_int_equal(b->ndata, 1);
	assert_int_equal(b->last_len, 1024);
}

/* ---- session limits: the send cap and the open rate ---- */

/* Queues len bytes of a fresh chunk on t (the chunk is charged whole). */
static void write_fresh(struct tstream *t, size_t len)
{
	struct chunk *ch = chunk_get(t->p->cfg.pool);

	memset(ch->data, 'F', len);
	assert_int_equal(stream_write(t->st, ch, ch->data, len), 0);
	chunk_put(ch);
}

static void test_session_send_cap_makes_every_stream_wait_until_batches_go_out(void **state)
{
	struct conn *c = *state;
	struct tstream *a1, *b1, *a2, *b2;

	c->a.cfg.sendq_cap = 2 * CHUNK_SIZE;
	c->a.cfg.sendq_low = 8 * MiB; /* so that only the session's cap is in the way */
	conn_start(c);
	a1 = ts_open_pair(c, 0, &b1);
	a2 = ts_open_pair(c, 0, &b2);
	write_fresh(a1, 100 * KiB);
	assert_true(stream_writable(a1->st));
	assert_true(stream_writable(a2->st));
	write_fresh(a2, 100 * KiB);
	assert_int_equal(session_queued(c->a.s), 2 * CHUNK_SIZE);
	assert_false(stream_writable(a1->st));
	assert_false(stream_writable(a2->st));
	assert_int_equal(session_stats(c->a.s)->sendq_full, 1);
	pump(c);
	assert_int_equal(b1->rx_total + b2->rx_total, 200 * KiB);
	assert_int_equal(session_queued(c->a.s), 0);
	assert_int_equal(a1->writable, 1);
	assert_int_equal(a2->writable, 1);
	assert_true(stream_writable(a1->st));
	assert_true(stream_writable(a2->st));
}

/* A bulk sender: 64 KiB at a time while writable, until its budget is spent. */
static void ts_write_budget(struct tstream *t)
{
	struct peer *p = t->p;

	while (t->tx_total < t->tx_budget && stream_writable(t->st)) {
		write_fresh(t, 64 * KiB);
		t->tx_total += 64 * KiB;
	}
	if (t->tx_total < t->tx_budget || p->first_done)
		return;
	p->first_done = calloc((size_t)p->nts, sizeof(size_t));
	assert_non_null(p->first_done);
	for (int i = 0; i < p->nts; i++)
		p->first_done[i] = p->ts[i]->tx_total;
}

static void test_streams_share_a_full_send_cap_in_turn(void **state)
{
	struct conn *c = *state;
	struct tstream *a[8], *b[8];
	size_t lo = SIZE_MAX, hi = 0;

	c->a.cfg.sendq_cap = 8 * CHUNK_SIZE; /* each 64 KiB write pins a fresh chunk: 8 in all */
	c->a.cfg.sendq_low = 128 * KiB;	     /* two writes: then its own on_writable too */
	conn_start(c);
	for (int i = 0; i < 8; i++) {
		a[i] = ts_open_pair(c, 0, &b[i]);
		b[i]->consume = CONSUME_INLINE;
		a[i]->tx_budget = 16 * MiB;
	}
	for (int i = 0; i < 8; i++)
		ts_write_budget(a[i]);
	pump(c);
	for (int i = 0; i < 8; i++)
		assert_int_equal(b[i]->rx_total, 16 * MiB);
	/* When the first stream was done, every other had written a fair share too. */
	assert_non_null(c->a.first_done);
	for (int i = 0; i < c->a.nts; i++) {
		lo = c->a.first_done[i] < lo ? c->a.first_done[i] : lo;
		hi = c->a.first_done[i] > hi ? c->a.first_done[i] : hi;
	}
	free(c->a.first_done);
	c->a.first_done = NULL;
	assert_true(lo * 3 >= hi * 2); /* max/min at most 1.5 */
}

/* Streams stuck without credit hold most of the cap: another stream still writes below it. */
static void test_stuck_streams_under_the_cap_do_not_hold_up_another(void **state)
{
	struct conn *c = *state;
	struct tstream *as[7], *bs[7], *a, *b;

	c->a.cfg.sendq_cap = 16 * MiB;
	c->a.cfg.sendq_low = 512 * KiB;
	conn_start(c);
	for (int i = 0; i < 7; i++) {
		as[i] = ts_open_pair(c, 0, &bs[i]);
		bs[i]->consume = CONSUME_NEVER;
		write_bulk(as[i], FRAME_INITIAL_WINDOW + 512 * KiB - 1);
	}
	a = ts_open_pair(c, 0, &b);
	b->consume = CONSUME_INLINE;
	pump(c);
	/* Each stuck stream went under its low water and asked to be told: over 3/4 of the cap. */
	assert_true(session_queued(c->a.s) > 12 * MiB);
	assert_true(session_queued(c->a.s) < 16 * MiB);
	assert_true(stream_writable(a->st));
	write_bulk(a, 600 * KiB);
	pump(c);
	assert_int_equal(b->rx_total, 600 * KiB);
	assert_int_equal(a->writable, 1);
}

/* Small writes each in a chunk of its own: the stream stops at its own low water in charges. */
static void test_one_stream_of_small_reads_cannot_fill_the_session_cap(void **state)
{
	struct conn *c = *state;
	struct tstream *a1, *b1, *a2, *b2;
	int writes = 0;

	c->a.cfg.sendq_cap = 16 * MiB;
	c->a.cfg.sendq_low = 512 * KiB;
	conn_start(c);
	a1 = ts_open_pair(c, 0, &b1);
	a2 = ts_open_pair(c, 0, &b2);
	while (stream_writable(a1->st) && writes < 100) {
		write_fresh(a1, 1 * KiB); /* a socket read of 1 KiB into a fresh chunk */
		writes++;
	}
	assert_int_equal(writes, 1); /* its one chunk already pins more than its low water */
	assert_int_equal(stream_queued(a1->st), 1 * KiB);
	assert_int_equal(session_queued(c->a.s), CHUNK_SIZE);
	assert_true(stream_writable(a2->st));
	pump(c);
	assert_int_equal(b1->rx_total, 1 * KiB);
	assert_int_equal(a1->writable, 1); /* told once its chunk went out */
}

static void test_session_charges_a_chunk_once_for_a_writer_packing_it(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;
	struct chunk *ch;

	conn_start(c);
	a = ts_open_pair(c, 0, &b);
	ch = chunk_get(c->a.cfg.pool);
	memset(ch->data, 'P', 30 * KiB);
	for (int i = 0; i < 3; i++)
		assert_int_equal(stream_write(a->st, ch, ch->data + i * 10 * KiB, 10 * KiB), 0);
	chunk_put(ch);
	assert_int_equal(session_queued(c->a.s), CHUNK_SIZE + 20 * KiB);
	ts_write(a, "x"); /* a copy in a chunk of its own */
	assert_int_equal(session_queued(c->a.s), 2 * CHUNK_SIZE + 20 * KiB);
	pump(c);
	assert_int_equal(session_queued(c->a.s), 0);
	assert_int_equal(b->rx_total, 30 * KiB + 1);
}

static void test_datagrams_written_to_a_full_session_are_dropped(void **state)
{
	struct conn *c = *state;
	struct tstream *a, *b;

	c->a.cfg.sendq_cap = 2 * CHUNK_SIZE;
	conn_start(c);
	a = ts_open_pair(c, FRAME_OPEN_DGRAM, &b);
	assert_int_equal(stream_write_copy(a->st, "packet", 6), 0);
	assert_int_equal(stream_write_copy(a->st, "packet", 6), 0);
	assert_int_equal(stream_write_copy(a->st, "packet", 6), -ENOBUFS);
	assert_int_equal(session_stats(c->a.s)->dgrams_dropped, 1);
	pump(c);
	assert_int_equal(b->ndata, 2);
	assert_int_equal(stream_write_copy(a->st, "packet", 6), 0);
}

/* Reads in flight count against the cap: many streams reading at once cannot pass it. */
static void test_reservations_count_against_the_send_cap(void **state)
{
	struct conn *c = *state;
	struct tstream *a1, *b1, *a2, *b2;

	c->a.cfg.sendq_cap = 2 * CHUNK_SIZE;
	c->a.cfg.sendq_low = 8 * MiB;
	conn_start(c);
	a1 = ts_open_pair(c, 0, &b1);
	a2 = ts_open_pair(c, 0, &b2);
	stream_reserve(a1->st, CHUNK_SIZE);
	assert_true(stream_writable(a2->st));
	stream_reserve(a2->st, CHUNK_SIZE);
	assert_int_equal(session_queued(c->a.s), 2 * CHUNK_SIZE);
	assert_false(stream_writable(a1->st)); /* a third read would pass the cap */
	/* The read came back short: the reservation goes (room: a1, waiting, is told), the write
	 * is charged and fills the cap again. */
	stream_unreserve(a1->st);
	assert_int_equal(a1->writable, 1);
	write_fresh(a1, 10 * KiB);
	assert_int_equal(session_queued(c->a.s), 2 * CHUNK_SIZE);
	/* A stream that dies with a read in flight drops its reservation with its queue. */
	assert_int_equal(stream_reset(a2->st, -ECANCELED), 0);
	assert_int_equal(session_queued(c->a.s), CHUNK_SIZE);
	stream_unreserve(a2->st); /* its reader comes back later: nothing more to give */
	assert_int_equal(session_queued(c->a.s), CHUNK_SIZE);
	pump(c);
	assert_int_equal(session_queued(c->a.s), 0);
	assert_int_equal(b1->rx_total, 10 * KiB);
	assert_int_equal(a1->writable, 2); /* it waited in line again and was told again */
}

static void test_released_stream_leaves_the_waiters_and_the_count(void **state)
{
	struct conn *c = *state;
	struct tstream *a1, *b1, *a2, *b2;

	c->a.cfg.sendq_cap = CHUNK_SIZE;
	conn_start(c);
	a1 = ts_open_pair(c, 0, &b1);
	a2 = ts_open_pair(c, 0, &b2);
	write_fresh(a1, 10 * KiB);
	assert_false(stream_writable(a2->st));
	ts_release(a2);
	ts_release(a1); /* reset: its queue is dropped, and its charge with it */
	assert_int_equal(session_queued(c->a.s), 0);
	pump(c);
	assert_int_equal(a1->writable + a2->writable, 0);
	assert_true(b1->reset);
	assert_true(b2->reset);
}

static void test_room_made_by_a_reset_stream_wakes_the_waiters(void **state)
{
	struct conn *c = *state;
	struct tstream *a1, *b1, *a2, *b2;

	c->a.cfg.sendq_cap = CHUNK_SIZE;
	conn_start(c);
	a1 = ts_open_pair(c, 0, &b1);
	a2 = ts_open_pair(c, 0, &b2);
	write_fresh(a1, 10 * KiB);
	assert_false(stream_writable(a2->st));
	assert_int_equal(stream_reset(a1->st, -ECANCELED), 0);
	assert_int_equal(session_queued(c->a.s), 0);
	assert_int_equal(a2->writable, 0);
	assert_true(session_has_output(c->a.s)); /* the RESET */
	pump(c);
	assert_int_equal(a2->writable, 1);
	assert_true(stream_writable(a2->st));
	assert_true(b1->reset);
}

static void test_unanswered_stream_outlives_the_freed_session_until_refused(void **state)
{
	struct conn *c = *state;
	struct tstream *held;

	c->b.policy = OPEN_HOLD; /* as a dial in progress holds it */
	conn_start(c);
	ts_open(&c->a, KIND_TEST, 0);
	pump(c);
	assert_int_equal(c->b.nts, 1);
	held = c->b.ts[0];
	session_abort(c->b.s, -ECONNRESET, "channel closed by the peer");
	session_free(c->b.s);
	c->b.s = NULL;
	assert_int_equal(stream_accept(held->st, "ok", 2, &tstream_ops, held), -EINVAL);
	assert_int_equal(stream_refuse(held->st, -ECANCELED, "cancelled"), 0);
	held->st = NULL; /* released: the session's last memory went with it */
}

static void test_peer_opening_faster_than_open_rate_gets_refuse_limit(void **state)
{
	struct conn *c = *state;
	struct tstream *t[13];

	c->b.cfg.open_rate = 10;
	c->b.cfg.open_burst = 5;
	conn_start(c);
	for (int i = 0; i < 8; i++)
		t[i] = ts_open(&c->a, KIND_TEST, 0);
	pump(c);
	for (int i = 0; i < 8; i++) {
		assert_true(t[i]->replied);
		assert_int_equal(t[i]->reply_err, i < 5 ? 0 : -ENOBUFS);
	}
	assert_int_equal(c->b.nopen, 5);
	assert_int_equal(session_stats(c->b.s)->opens_refused, 3);
	fake_now += 1000000000ull; /* a second: 10 tokens, capped at the burst of 5 */
	for (int i = 8; i < 13; i++)
		t[i] = ts_open(&c->a, KIND_TEST, 0);
	pump(c);
	for (int i = 8; i < 13; i++)
		assert_int_equal(t[i]->reply_err, 0);
	assert_int_equal(c->b.nopen, 10);
	assert_int_equal(c->b.nclose, 0);
}

/* ---- keepalive and GOAWAY ---- */

static void test_ping_reports_the_round_trip_time_on_pong(void **state)
{
	struct conn *c = *state;

	conn_start(c);
	fake_now = 5000000;
	assert_int_equal(session_ping(c->a.s), 0);
	pump_dir(&c->a, &c->b);
	fake_now += 7500;
	pump_dir(&c->b, &c->a);
	assert_int_equal(c->a.npong, 1);
	assert_int_equal(c->a.rtt, 7500);
	assert_int_equal(session_stats(c->a.s)->rtt_last_ns, 7500);
	assert_int_equal(c->b.npong, 0);
}

static void test_goaway_from_the_peer_closes_with_reason_and_resets_streams(void **state)
{
	struct conn *c = *state;
	struct tstream *a1, *b1, *a2, *b2;
	struct stream *st;

	conn_start(c);
	a1 = ts_open_pair(c, 0, &b1);
	a2 = ts_open_pair(c, FRAME_OPEN_INTERACTIVE, &b2);
	assert_int_equal(session_goaway(c->b.s, VB_WERR_SHUTDOWN, "maintenance"), 0);
	assert_int_equal(stream_open(c->b.s, KIND_TEST, 0, NULL, 0, &tstream_ops, NULL, &st),
			 -EPIPE);
	pump(c);
	assert_int_equal(c->a.nclose, 1);
	assert_int_equal(c->a.close_err, -ESHUTDOWN);
	assert_non_null(strstr(c->a.close_reason, "maintenance"));
	assert_true(a1->reset);
	assert_true(a2->reset);
	assert_int_equal(a1->reset_err, -ESHUTDOWN);
	assert_false(a1->fin);
	assert_int_equal(stream_open(c->a.s, KIND_TEST, 0, NULL, 0, &tstream_ops, NULL, &st),
			 -EPIPE);
	assert_int_equal(c->b.nclose, 0);
	(void)b1;
	(void)b2;
}

static void test_transport_loss_resets_every_stream_and_closes_once(void **state)
{
	struct conn *c = *state;
	struct tstream *a1, *b1, *a2, *b2;

	conn_start(c);
	a1 = ts_open_pair(c, 0, &b1);
	a2 = ts_open_pair(c, FRAME_OPEN_DGRAM, &b2);
	write_pattern(a1, 1 * MiB);
	session_abort(c->a.s, -ECONNRESET, "connection lost");
	assert_int_equal(c->a.nclose, 1);
	assert_int_equal(c->a.close_err, -ECONNRESET);
	assert_string_equal(c->a.close_reason, "connection lost");
	assert_true(a1->reset);
	assert_int_equal(a1->reset_err, -ECONNRESET);
	assert_true(a2->reset);
	assert_int_equal(session_state(c->a.s), SESSION_CLOSED);
	assert_int_equal(stream_write_copy(a1->st, "x", 1), -EPIPE);
	assert_false(session_has_output(c->a.s));
	session_abort(c->a.s, -ECONNRESET, "again");
	assert_int_equal(c->a.nclose, 1);
	ts_release(a1);
	ts_release(a2);
	assert_int_equal(session_stream_count(c->a.s), 0);
	(void)b1;
	(void)b2;
}

static void test_version_mismatch_closes_with_eprotonosupport_and_goaway_version(void **state)
{
	struct conn *c = *state;
	struct raw r = {0}, out = {0};
	struct wframe f[8];
	int n;

	solo_start(c);
	raw_hello_full(&r, 5, 6, 65536);
	peer_feed(&c->b, r.b, r.len);
	assert_true(c->b.input_err < 0);
	assert_int_equal(c->b.nclose, 1);
	assert_int_equal(c->b.close_err, -EPROTONOSUPPORT);
	assert_non_null(strstr(c->b.close_reason, "5-6"));
	drain(&c->b, &out);
	n = frames_split(&out, f, (int)NELEM(f));
	assert_int_equal(n, 2);
	assert_int_equal(f[0].h.type, FRAME_HELLO);
	assert_int_equal(f[1].h.type, FRAME_GOAWAY);

	/* What the peer sees: the HELLO, then the GOAWAY with its reason. */
	peer_start(&c->a);
	peer_feed(&c->a, out.b, out.len);
	assert_int_equal(c->a.nclose, 1);
	assert_int_equal(c->a.close_err, -EPROTONOSUPPORT);
	assert_non_null(strstr(c->a.close_reason, "no common protocol version"));
	free(r.b);
	free(out.b);
}

/* ---- malformed input ---- */

static void bad_unknown_frame_type(struct raw *r)
{
	raw_hello(r);
	raw_hdr(r, FRAME_TYPE_COUNT, 0, 0, 0);
}

static void bad_nonzero_reserved_bits(struct raw *r)
{
	static const uint8_t h[FRAME_HDR_LEN] = {FRAME_PING, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 8};

	raw_hello(r);
	raw_put(r, h, sizeof(h));
	raw_put(r, "12345678", 8);
}

static void bad_frame_larger_than_max_frame(struct raw *r)
{
	raw_hello(r);
	raw_hdr(r, FRAME_DATA, 0, 1, 0xfffffff0u); /* only the header: it must fail at once */
}

static void bad_data_larger_than_max_frame_by_one(struct raw *r)
{
	raw_hello(r);
	raw_hdr(r, FRAME_DATA, 0, 1, 65536 + 1);
}

static void bad_open_larger_than_control_limit(struct raw *r)
{
	raw_hello(r);
	raw_hdr(r, FRAME_OPEN, 0, 1, 65536 + 1);
}

static void bad_hello_larger_than_hello_limit(struct raw *r)
{
	raw_hdr(r, FRAME_HELLO, 0, 0, FRAME_HELLO_MAX + 1);
}

static void bad_data_before_hello(struct raw *r)
{
	raw_data(r, 1, 0, 4);
}

static void bad_data_header_before_hello(struct raw *r)
{
	raw_hdr(r, FRAME_DATA, 0, 1, 60000); /* fails before its payload arrives */
}

static void bad_ping_before_hello(struct raw *r)
{
	raw_put(r,
		"\x07\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x08"
		"12345678",
		20);
}

static void bad_second_hello(struct raw *r)
{
	raw_hello(r);
	raw_hello(r);
}

static void bad_truncated_hello(struct raw *r)
{
	static const uint8_t p[10] = {0x56, 0x4d, 0x42, 0x46, 0, 1, 0, 1, 0, 1};

	raw_frame(r, FRAME_HELLO, 0, 0, p, sizeof(p));
}

static void bad_hello_magic(struct raw *r)
{
	struct raw good = {0};

	raw_hello(&good);
	good.b[FRAME_HDR_LEN] = 'X';
	raw_put(r, good.b, good.len);
	free(good.b);
}

static void bad_hello_on_a_stream(struct raw *r)
{
	struct raw good = {0};

	raw_hello(&good);
	good.b[7] = 1;
	raw_put(r, good.b, good.len);
	free(good.b);
}

static void bad_hello_max_frame_too_small(struct raw *r)
{
	raw_hello_full(r, 1, 1, FRAME_MIN_MAX_FRAME - 1);
}

static void bad_hello_max_frame_too_large(struct raw *r)
{
	raw_hello_full(r, 1, 1, FRAME_MAX_MAX_FRAME + 1);
}

static void bad_hello_versions(struct raw *r)
{
	raw_hello_full(r, 5, 6, 65536);
}

static void bad_open_even_id_from_dialer(struct raw *r)
{
	raw_hello(r);
	raw_open(r, 2);
}

static void bad_open_reused_id(struct raw *r)
{
	raw_hello(r);
	raw_open(r, 1);
	raw_open(r, 1);
}

static void bad_open_lower_id(struct raw *r)
{
	raw_hello(r);
	raw_open(r, 5);
	raw_open(r, 3);
}

static void bad_open_id_zero(struct raw *r)
{
	raw_hello(r);
	raw_open(r, 0);
}

static void bad_open_without_kind(struct raw *r)
{
	raw_hello(r);
	raw_frame(r, FRAME_OPEN, 0, 1, "\x00\x01", 2);
}

static void bad_data_on_never_opened_stream(struct raw *r)
{
	raw_hello(r);
	raw_data(r, 5, 0, 1);
}

static void bad_data_on_stream_zero(struct raw *r)
{
	raw_hello(r);
	raw_data(r, 0, 0, 1);
}

static void bad_data_past_the_window(struct raw *r)
{
	raw_hello(r);
	raw_open(r, 1);
	for (int i = 0; i < 5; i++) /* 5 x 64 KiB > 256 KiB */
		raw_data(r, 1, 0, 65536);
}

static void bad_data_after_fin(struct raw *r)
{
	raw_hello(r);
	raw_open(r, 1);
	raw_data(r, 1, FRAME_F_FIN, 1);
	raw_data(r, 1, 0, 1);
}

static void bad_window_of_zero(struct raw *r)
{
	raw_hello(r);
	raw_open(r, 1);
	raw_u32(r, FRAME_WINDOW, 1, 0);
}

static void bad_window_overflow(struct raw *r)
{
	raw_hello(r);
	raw_open(r, 1);
	raw_u32(r, FRAME_WINDOW, 1, 0x7fffffffu);
}

static void bad_window_of_wrong_length(struct raw *r)
{
	raw_hello(r);
	raw_open(r, 1);
	raw_frame(r, FRAME_WINDOW, 0, 1, "\x00\x00\x01", 3);
}

static void bad_reset_of_wrong_length(struct raw *r)
{
	raw_hello(r);
	raw_open(r, 1);
	raw_frame(r, FRAME_RESET, 0, 1, "\x00\x00\x00\x01\x00", 5);
}

static void bad_refuse_for_stream_not_opening(struct raw *r)
{
	static const uint8_t p[5] = {0, 0, 0, VB_WERR_NOENT, 0};

	raw_hello(r);
	raw_open(r, 1);
	raw_frame(r, FRAME_REFUSE, 0, 1, p, sizeof(p));
}

static void bad_accept_for_stream_not_opening(struct raw *r)
{
	raw_hello(r);
	raw_open(r, 1);
	raw_frame(r, FRAME_ACCEPT, 0, 1, NULL, 0);
}

static void bad_refuse_for_never_opened_stream(struct raw *r)
{
	static const uint8_t p[5] = {0, 0, 0, VB_WERR_NOENT, 0};

	raw_hello(r);
	raw_frame(r, FRAME_REFUSE, 0, 2, p, sizeof(p));
}

static void bad_ping_on_a_stream(struct raw *r)
{
	raw_hello(r);
	raw_frame(r, FRAME_PING, 0, 1, "12345678", 8);
}

static void bad_ping_of_wrong_length(struct raw *r)
{
	raw_hello(r);
	raw_frame(r, FRAME_PING, 0, 0, "1234", 4);
}

static void bad_goaway_with_trailing_bytes(struct raw *r)
{
	static const uint8_t p[10] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 'x'};

	raw_hello(r);
	raw_frame(r, FRAME_GOAWAY, 0, 0, p, sizeof(p));
}

static void bad_ssh_banner(struct raw *r)
{
	raw_put(r, "SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", 32);
}

static void bad_http_request(struct raw *r)
{
	raw_put(r, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27);
}

static void bad_tls_client_hello(struct raw *r)
{
	static const uint8_t p[16] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01,
				      0xfc, 0x03, 0x03, 0xaa, 0xbb, 0xcc, 0xdd, 0xee};

	raw_put(r, p, sizeof(p));
}

struct bad_case {
	const char *name;
	void (*build)(struct raw *r);
	uint32_t goaway_code;
	int close_err;
};

static const struct bad_case bad_cases[] = {
    {"unknown frame type", bad_unknown_frame_type, VB_WERR_PROTOCOL, -EPROTO},
    {"nonzero reserved bits", bad_nonzero_reserved_bits, VB_WERR_PROTOCOL, -EPROTO},
    {"frame larger than max_frame", bad_frame_larger_than_max_frame, VB_WERR_TOOBIG, -EPROTO},
    {"DATA of max_frame + 1", bad_data_larger_than_max_frame_by_one, VB_WERR_TOOBIG, -EPROTO},
    {"OPEN over the control limit", bad_open_larger_than_control_limit, VB_WERR_TOOBIG, -EPROTO},
    {"HELLO over its limit", bad_hello_larger_than_hello_limit, VB_WERR_TOOBIG, -EPROTO},
    {"DATA before HELLO", bad_data_before_hello, VB_WERR_PROTOCOL, -EPROTO},
    {"DATA header before HELLO", bad_data_header_before_hello, VB_WERR_PROTOCOL, -EPROTO},
    {"PING before HELLO", bad_ping_before_hello, VB_WERR_PROTOCOL, -EPROTO},
    {"second HELLO", bad_second_hello, VB_WERR_PROTOCOL, -EPROTO},
    {"truncated HELLO", bad_truncated_hello, VB_WERR_PROTOCOL, -EPROTO},
    {"HELLO with bad magic", bad_hello_magic, VB_WERR_PROTOCOL, -EPROTO},
    {"HELLO on a stream", bad_hello_on_a_stream, VB_WERR_PROTOCOL, -EPROTO},
    {"HELLO max_frame too small", bad_hello_max_frame_too_small, VB_WERR_PROTOCOL, -EPROTO},
    {"HELLO max_frame too large", bad_hello_max_frame_too_large, VB_WERR_PROTOCOL, -EPROTO},
    {"HELLO without a common version", bad_hello_versions, VB_WERR_VERSION, -EPROTONOSUPPORT},
    {"OPEN with an even id from the dialer", bad_open_even_id_from_dialer, VB_WERR_PROTOCOL,
     -EPROTO},
    {"OPEN with a reused id", bad_open_reused_id, VB_WERR_PROTOCOL, -EPROTO},
    {"OPEN with a lower id", bad_open_lower_id, VB_WERR_PROTOCOL, -EPROTO},
    {"OPEN with id 0", bad_open_id_zero, VB_WERR_PROTOCOL, -EPROTO},
    {"OPEN without kind and flags", bad_open_without_kind, VB_WERR_PROTOCOL, -EPROTO},
    {"DATA on a never-opened stream", bad_data_on_never_opened_stream, VB_WERR_PROTOCOL, -EPROTO},
    {"DATA on stream 0", bad_data_on_stream_zero, VB_WERR_PROTOCOL, -EPROTO},
    {"DATA past the window", bad_data_past_the_window, VB_WERR_FLOW, -EPROTO},
    {"DATA after FIN", bad_data_after_fin, VB_WERR_PROTOCOL, -EPROTO},
    {"WINDOW of 0", bad_window_of_zero, VB_WERR_PROTOCOL, -EPROTO},
    {"WINDOW overflow", bad_window_overflow, VB_WERR_FLOW, -EPROTO},
    {"WINDOW of 3 bytes", bad_window_of_wrong_length, VB_WERR_PROTOCOL, -EPROTO},
    {"RESET of 5 bytes", bad_reset_of_wrong_length, VB_WERR_PROTOCOL, -EPROTO},
    {"REFUSE for a stream not opening", bad_refuse_for_stream_not_opening, VB_WERR_PROTOCOL,
     -EPROTO},
    {"ACCEPT for a stream not opening", bad_accept_for_stream_not_opening, VB_WERR_PROTOCOL,
     -EPROTO},
    {"REFUSE for a never-opened stream", bad_refuse_for_never_opened_stream, VB_WERR_PROTOCOL,
     -EPROTO},
    {"PING on a stream", bad_ping_on_a_stream, VB_WERR_PROTOCOL, -EPROTO},
    {"PING of 4 bytes", bad_ping_of_wrong_length, VB_WERR_PROTOCOL, -EPROTO},
    {"GOAWAY with trailing bytes", bad_goaway_with_trailing_bytes, VB_WERR_PROTOCOL, -EPROTO},
    {"SSH banner", bad_ssh_banner, VB_WERR_PROTOCOL, -EPROTO},
    {"HTTP request", bad_http_request, VB_WERR_PROTOCOL, -EPROTO},
    {"TLS ClientHello", bad_tls_client_hello, VB_WERR_PROTOCOL, -EPROTO},
};

/* Feeds one bad case to a fresh acceptor and checks how it fails. */
static void bad_case_run(const struct bad_case *bc, size_t piece_max)
{
	struct conn *c;
	struct raw r = {0};
	struct chunk *ch;
	size_t used;

	print_message("  %s\n", bc->name);
	conn_setup((void **)&c);
	solo_start(c);
	c->b.piece_max = piece_max;
	bc->build(&r);
	peer_feed(&c->b, r.b, r.len);
	assert_true(c->b.input_err < 0);
	assert_int_equal(c->b.nclose, 1);
	assert_int_equal(c->b.close_err, bc->close_err);
	assert_true(c->b.close_reason[0] != '\0');
	assert_goaway_last(&c->b, bc->goaway_code);

	/* Later input is refused and changes nothing. */
	ch = chunk_get(&c->pool);
	memcpy(ch->data, r.b, r.len < ch->size ? r.len : ch->size);
	assert_true(
	    session_input(c->b.s, ch, ch->data, r.len < ch->size ? r.len : ch->size, &used) < 0);
	chunk_put(ch);
	assert_int_equal(c->b.nclose, 1);
	assert_false(session_has_output(c->b.s));
	free(r.b);
	conn_teardown((void **)&c);
}

static void test_malformed_input_closes_the_session_with_goaway(void **state)
{
	for (size_t i = 0; i < NELEM(bad_cases); i++)
		bad_case_run(&bad_cases[i], 0);
}

static void test_malformed_input_fails_the_same_when_fed_in_pieces(void **state)
{
	for (size_t i = 0; i < NELEM(bad_cases); i++)
		bad_case_run(&bad_cases[i], 1 + i % 7);
}

static void test_peer_that_floods_pings_without_reading_is_cut_off(void **state)
{
	struct conn *c = *state;
	struct raw r = {0};

	solo_start(c);
	raw_hello(&r);
	for (int i = 0; i < 250000; i++) /* 5 MB of PONGs to queue, over the control cap */
		raw_frame(&r, FRAME_PING, 0, 0, "12345678", 8);
	peer_feed(&c->b, r.b, r.len);
	assert_true(c->b.input_err < 0);
	assert_int_equal(c->b.nclose, 1);
	assert_goaway_last(&c->b, VB_WERR_LIMIT);
	free(r.b);
}

static void test_goaway_from_the_peer_is_reported_once(void **state)
{
	struct conn *c = *state;
	struct raw r = {0}, out = {0};
	struct wframe f[8];
	uint8_t p[64];
	int n = frame_reason_encode(p, sizeof(p), FRAME_GOAWAY, VB_WERR_NONE, 0, "done");

	solo_start(c);
	raw_hello(&r);
	raw_frame(&r, FRAME_GOAWAY, 0, 0, p, (size_t)n);
	raw_frame(&r, FRAME_PING, 0, 0, "12345678", 8);
	peer_feed(&c->b, r.b, r.len);
	assert_true(c->b.input_err < 0);
	assert_int_equal(c->b.nclose, 1);
	assert_int_equal(c->b.close_err, 0);
	assert_non_null(strstr(c->b.close_reason, "done"));
	drain(&c->b, &out); /* nothing answers a GOAWAY, not even the PING */
	assert_int_equal(frames_split(&out, f, (int)NELEM(f)), 1);
	assert_int_equal(f[0].h.type, FRAME_HELLO);
	free(r.b);
	free(out.b);
}

/* ---- memory ---- */

static void test_many_streams_opened_and_closed_leave_nothing_behind(void **state)
{
	struct conn *c = *state;
	int opened = 0;

	c->b.policy = OPEN_BY_KIND;
	c->b.autoclose = true;
	c->b.cfg.max_streams = 64;
	conn_start(c);
	for (int round = 0; round < 20; round++) {
		for (int i = 0; i < 50; i++, opened++) {
			struct tstream *t =
			    ts_open(&c->a, opened % 5 == 4 ? KIND_REFUSE_ME : KIND_TEST,
				    opened % 3 ? 0 : FRAME_OPEN_INTERACTIVE);

			write_pattern(t, 1000 + (size_t)opened * 37 % 70000);
			if (opened % 7 == 6)
				ts_release(t); /* before the reply: reset with ECANCELED */
			else if (opened % 11 == 10) {
				assert_int_equal(stream_reset(t->st, -EIO), 0);
				ts_release(t);
			} else
				assert_int_equal(stream_shutdown(t->st), 0);
		}
		c->b.piece_max = round % 2 ? 3000 : 0;
		pump(c);
		for (int i = 0; i < c->a.nts; i++) {
			struct tstream *t = c->a.ts[i];

			if (t->st && (t->fin || (t->replied && t->reply_err)))
				ts_release(t);
		}
		pump(c);
		assert_int_equal(session_stream_count(c->a.s), 0);
		assert_int_equal(session_stream_count(c->b.s), 0);
		assert_int_equal(c->pool.outstanding, 0);
	}
	assert_int_equal(session_stats(c->a.s)->streams_opened, 1000);
	assert_int_equal(c->a.input_err, 0);
	assert_int_equal(c->b.input_err, 0);
}

#define T(f) cmocka_unit_test_setup_teardown(f, conn_setup, conn_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_handshake_exchanges_names_caps_and_roles),
	    T(test_hello_is_the_first_frame_each_side_sends),
	    T(test_goaway_before_the_peer_hello_still_accepts_that_hello),
	    T(test_open_before_the_peer_hello_is_limited_to_16384_bytes),
	    T(test_open_accept_data_fin_round_trip),
	    T(test_open_refused_gives_reply_with_errno_and_text),
	    T(test_data_written_before_accept_is_held_then_delivered),
	    T(test_acceptor_releasing_an_unanswered_open_refuses_it_as_cancelled),
	    T(test_opener_releasing_before_the_answer_cancels_the_open),
	    T(test_open_after_our_goaway_is_refused_with_shutdown),
	    T(test_open_request_too_big_for_a_control_frame_fails_locally),
	    T(test_receiver_that_never_consumes_gets_exactly_the_initial_window),
	    T(test_consuming_a_quarter_of_the_window_releases_more),
	    T(test_stalled_stream_does_not_stop_another_stream),
	    T(test_small_payloads_arrive_copied_and_large_ones_in_place),
	    T(test_window_grows_up_to_max_window_and_never_past_it),
	    T(test_session_window_cap_limits_growth_over_all_streams),
	    T(test_writable_fires_once_the_queue_drains_below_low_water),
	    T(test_interactive_frame_goes_before_queued_bulk_bytes),
	    T(test_bulk_streams_alternate_frames_round_robin),
	    T(test_ping_goes_before_queued_bulk_bytes),
	    T(test_half_close_lets_the_peer_keep_sending),
	    T(test_reset_gives_on_reset_with_the_errno_not_on_fin),
	    T(test_release_after_shutdown_drains_queued_data_before_fin),
	    T(test_release_without_shutdown_resets_with_ecanceled),
	    T(test_opening_past_the_peer_limit_fails_with_emfile),
	    T(test_peer_that_ignores_the_stream_limit_gets_refuse_limit),
	    T(test_stream_refuse_after_the_peer_reset_releases_the_stream),
	    T(test_side_without_on_open_refuses_as_unsupported),
	    T(test_datagram_stream_needs_no_credit_and_keeps_boundaries),
	    T(test_datagram_queue_full_drops_with_enobufs),
	    T(test_datagram_larger_than_a_chunk_fails_instead_of_splitting),
	    T(test_session_send_cap_makes_every_stream_wait_until_batches_go_out),
	    T(test_streams_share_a_full_send_cap_in_turn),
	    T(test_stuck_streams_under_the_cap_do_not_hold_up_another),
	    T(test_one_stream_of_small_reads_cannot_fill_the_session_cap),
	    T(test_session_charges_a_chunk_once_for_a_writer_packing_it),
	    T(test_datagrams_written_to_a_full_session_are_dropped),
	    T(test_reservations_count_against_the_send_cap),
	    T(test_released_stream_leaves_the_waiters_and_the_count),
	    T(test_room_made_by_a_reset_stream_wakes_the_waiters),
	    T(test_peer_opening_faster_than_open_rate_gets_refuse_limit),
	    T(test_unanswered_stream_outlives_the_freed_session_until_refused),
	    T(test_ping_reports_the_round_trip_time_on_pong),
	    T(test_goaway_from_the_peer_closes_with_reason_and_resets_streams),
	    T(test_transport_loss_resets_every_stream_and_closes_once),
	    T(test_version_mismatch_closes_with_eprotonosupport_and_goaway_version),
	    T(test_malformed_input_closes_the_session_with_goaway),
	    T(test_malformed_input_fails_the_same_when_fed_in_pieces),
	    T(test_peer_that_floods_pings_without_reading_is_cut_off),
	    T(test_goaway_from_the_peer_is_reported_once),
	    T(test_many_streams_opened_and_closed_leave_nothing_behind),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
