/* libFuzzer target: a peer's arbitrary bytes into a session, driven by an app that acts at random.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/buf.h"
#include "core/err.h"
#include "core/frame.h"
#include "core/list.h"
#include "core/session.h"

/*
 * Input layout (tests/fuzz/gen_corpus.py writes seeds this way):
 *
 *   byte 0      bit 0: we are the dialer; bits 1-3: log2 of max_streams
 *   bytes 1-4   seed of the generator that cuts the rest into pieces and
 *               makes every choice of the app
 *   bytes 5..   what the peer sends, fed through session_input()
 *
 * After each piece the output is drained (sometimes leaving the last batch
 * in flight across the next piece, as a slow transport does), the app takes a
 * few random actions, and the invariants are checked:
 *   - session_buffered() equals the bytes the app holds unconsumed, and
 *     never exceeds the sum of the receive windows of the app's streams;
 *   - every frame the session emits has a valid header, HELLO first, DATA
 *     within the peer's max_frame;
 *   - at the end, once everything is released and the session freed, every
 *     chunk is back in the pool.
 */

#define FZ_PREFIX    5
#define FZ_MAX_FRAME FRAME_MIN_MAX_FRAME
#define FZ_CHUNK     (2 * (FZ_MAX_FRAME + FRAME_HDR_LEN))
#define FZ_MAX_HELD  8
#define FZ_MAX_IOV   64

struct fz;

/* The app's view of one stream. */
struct fz_stream {
	struct list node; /* fz->streams */
	struct fz *fz;
	struct stream *st;
	bool dgram;
	bool pending; /* opened by the peer, not answered yet */
	int nheld;
	struct chunk *held[FZ_MAX_HELD];
	size_t held_len[FZ_MAX_HELD];
};

/* The output checker: where the next frame header starts in the output stream. */
struct fz_out {
	uint8_t hdr[FRAME_HDR_LEN];
	size_t have;   /* header bytes collected */
	uint64_t skip; /* payload bytes still to pass */
	uint64_t frames;
};

struct fz {
	struct session *s;
	struct chunk_pool pool;
	struct list streams;
	size_t nstreams;
	uint64_t rng;
	uint64_t held_total;
	bool closed;
	bool batch; /* a batch is out and not yet completed */
	struct fz_out out;
	struct vb_iov iov[FZ_MAX_IOV];
};

static uint64_t fz_clock;

static uint64_t fz_now(void)
{
	return fz_clock += 1000;
}

/* xorshift64*: the app's choices, reproducible from the input's seed. */
static uint32_t fz_rand(struct fz *fz, uint32_t n)
{
	fz->rng ^= fz->rng >> 12;
	fz->rng ^= fz->rng << 25;
	fz->rng ^= fz->rng >> 27;
	return n ? (uint32_t)((fz->rng * 2685821657736338717ull) >> 33) % n : 0;
}

static void fz_fail(const char *what)
{
	fprintf(stderr, "fuzz_session: invariant broken: %s\n", what);
	abort();
}

/* ---- the app's streams ---- */

static const struct stream_ops fz_stream_ops;

static struct fz_stream *fz_stream_add(struct fz *fz, struct stream *st, bool dgram)
{
	struct fz_stream *fs = calloc(1, sizeof(*fs));

	if (!fs)
		abort();
	fs->fz = fz;
	fs->st = st;
	fs->dgram = dgram;
	list_add_tail(&fz->streams, &fs->node);
	fz->nstreams++;
	stream_set_ctx(st, fs);
	return fs;
}

/* Consumes the oldest held payload of fs. */
static void fz_stream_consume_one(struct fz_stream *fs)
{
	size_t len = fs->held_len[0];

	chunk_put(fs->held[0]);
	memmove(fs->held, fs->held + 1, (size_t)(fs->nheld - 1) * sizeof(fs->held[0]));
	memmove(fs->held_len, fs->held_len + 1, (size_t)(fs->nheld - 1) * sizeof(fs->held_len[0]));
	fs->nheld--;
	fs->fz->held_total -= len;
	stream_consumed(fs->st, len);
}

/* Drops what fs holds and releases its stream; fs is freed. */
static void fz_stream_drop(struct fz_stream *fs)
{
	struct fz *fz = fs->fz;

	for (int i = 0; i < fs->nheld; i++) {
		chunk_put(fs->held[i]);
		fz->held_total -= fs->held_len[i];
	}
	list_del(&fs->node);
	fz->nstreams--;
	stream_release(fs->st);
	free(fs);
}

static struct fz_stream *fz_stream_pick(struct fz *fz)
{
	struct list *pos = fz->streams.next;
	uint32_t i;

	if (!fz->nstreams)
		return NULL;
	for (i = fz_rand(fz, (uint32_t)fz->nstreams); i; i--)
		pos = pos->next;
	return list_entry(pos, struct fz_stream, node);
}

static void fz_on_reply(struct stream *st, int err, const uint8_t *reply, size_t len)
{
	struct fz_stream *fs = stream_ctx(st);

	if (err || fz_rand(fs->fz, 8) == 0)
		fz_stream_drop(fs);
}

static void fz_on_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct fz_stream *fs = stream_ctx(st);

	if (fs->dgram || fs->nheld == FZ_MAX_HELD || fz_rand(fs->fz, 3) == 0) {
		stream_consumed(st, len);
		return;
	}
	chunk_ref(c);
	fs->held[fs->nheld] = c;
	fs->held_len[fs->nheld++] = len;
	fs->fz->held_total += len;
}

static void fz_on_fin(struct stream *st)
{
	struct fz_stream *fs = stream_ctx(st);

	switch (fz_rand(fs->fz, 4)) {
	case 0:
		stream_shutdown(st);
		break;
	case 1:
		fz_stream_drop(fs);
		break;
	}
}

static void fz_on_reset(struct stream *st, int err)
{
	fz_stream_drop(stream_ctx(st));
}

static void fz_on_writable(struct stream *st)
{
}

static void fz_on_sent(struct stream *st, size_t n)
{
}

static const struct stream_ops fz_stream_ops = {
    .on_reply = fz_on_reply,
    .on_data = fz_on_data,
    .on_fin = fz_on_fin,
    .on_reset = fz_on_reset,
    .on_writable = fz_on_writable,
    .on_sent = fz_on_sent,
};

/* ---- the app's actions ---- */

static void fz_open(struct fz *fz)
{
	static const uint16_t flags[] = {0, FRAME_OPEN_INTERACTIVE, FRAME_OPEN_DGRAM};
	uint16_t f = flags[fz_rand(fz, 3)];
	uint8_t req[64];
	size_t len = fz_rand(fz, sizeof(req));
	struct stream *st;

	memset(req, 'q', len);
	if (!stream_open(fz->s, (uint16_t)fz_rand(fz, 8), f, req, len, &fz_stream_ops, NULL, &st))
		fz_stream_add(fz, st, f & FRAME_OPEN_DGRAM);
}

/* Answers the OPEN of a pending stream: accept, refuse, or reset. */
static void fz_answer(struct fz_stream *fs)
{
	struct fz *fz = fs->fz;

	fs->pending = false;
	switch (fz_rand(fz, 6)) {
	case 0:
		list_del(&fs->node);
		fz->nstreams--;
		/* -EINVAL: it died while pending (no callback says so) and is still ours. */
		if (stream_refuse(fs->st, -ECONNREFUSED, "no") == -EINVAL)
			stream_release(fs->st);
		free(fs);
		return;
	case 1:
		stream_reset(fs->st, -EIO);
		fz_stream_drop(fs);
		return;
	default:
		if (stream_accept(fs->st, "ok", fz_rand(fz, 3), &fz_stream_ops, fs))
			fz_stream_drop(fs); /* it died while pending */
	}
}

static void fz_write(struct fz *fz, struct fz_stream *fs)
{
	static const size_t sizes[] = {1, 100, 4096, FZ_MAX_FRAME + 1, 70000};
	size_t n = sizes[fz_rand(fz, 5)];
	struct chunk *c;
	uint8_t *buf;

	if (fz_rand(fz, 2)) {
		buf = malloc(n);
		if (!buf)
			abort();
		memset(buf, 'd', n);
		stream_write_copy(fs->st, buf, n);
		free(buf);
		return;
	}
	c = chunk_get(&fz->pool);
	if (!c)
		abort();
	n = n < c->size ? n : c->size;
	memset(c->data, 'z', n);
	stream_write(fs->st, c, c->data, n);
	chunk_put(c);
}

/* One random action on a random stream, or on the session. */
static void fz_act(struct fz *fz)
{
	struct fz_stream *fs = fz_stream_pick(fz);
	uint32_t what = fz_rand(fz, 16);

	if (fs && fs->pending) {
		if (what < 8)
			fz_answer(fs);
		return;
	}
	if (what == 0) {
		fz_open(fz);
	} else if (what == 1) {
		session_ping(fz->s);
	} else if (what == 2 && fz_rand(fz, 8) == 0) {
		session_goaway(fz->s, VB_WERR_SHUTDOWN, "fuzz");
	} else if (!fs) {
		return;
	} else if (what < 7) {
		if (fs->nheld)
			fz_stream_consume_one(fs);
	} else if (what < 11) {
		fz_write(fz, fs);
	} else if (what == 11) {
		stream_shutdown(fs->st);
	} else if (what == 12) {
		stream_reset(fs->st, -ECONNRESET);
		fz_stream_drop(fs);
	} else if (what == 13) {
		fz_stream_drop(fs);
	}
}

/* ---- the session's callbacks ---- */

static void fz_on_ready(struct session *s)
{
	struct fz *fz = session_app(s);

	/* At least one: the seeds answer our first stream (id 1 as dialer, 2 as acceptor). */
	for (uint32_t n = 1 + fz_rand(fz, 2); n; n--)
		fz_open(fz);
}

static void fz_on_open(struct session *s, struct stream *st, uint16_t kind, uint16_t flags,
		       const uint8_t *req, size_t len)
{
	struct fz *fz = session_app(s);
	struct fz_stream *fs = fz_stream_add(fz, st, flags & FRAME_OPEN_DGRAM);

	fs->pending = true;
	if (fz_rand(fz, 4)) /* else: answer later, from fz_act() */
		fz_answer(fs);
}

static void fz_on_output(struct session *s)
{
}

static void fz_on_pong(struct session *s, uint64_t rtt_ns)
{
}

static void fz_on_close(struct session *s, int err, const char *reason)
{
	struct fz *fz = session_app(s);

	if (fz->closed || !reason)
		fz_fail("on_close twice, or without a reason");
	fz->closed = true;
}

static const struct session_ops fz_session_ops = {
    .on_ready = fz_on_ready,
    .on_open = fz_on_open,
    .on_output = fz_on_output,
    .on_pong = fz_on_pong,
    .on_close = fz_on_close,
};

/* ---- invariants ---- */

static void fz_check_buffered(struct fz *fz)
{
	uint64_t windows = 0;
	struct list *pos;

	for (pos = fz->streams.next; pos != &fz->streams; pos = pos->next) {
		struct fz_stream *fs = list_entry(pos, struct fz_stream, node);

		if (!fs->dgram)
			windows += stream_recv_window(fs->st);
	}
	if (session_buffered(fz->s) != fz->held_total)
		fz_fail("session_buffered() differs from the bytes the app holds");
	if (session_buffered(fz->s) > windows)
		fz_fail("session_buffered() exceeds the sum of the receive windows");
}

/* Walks n output bytes at p frame by frame, checking each header. */
static void fz_check_out(struct fz *fz, const uint8_t *p, size_t n)
{
	struct fz_out *o = &fz->out;
	struct frame_hdr h;

	while (n) {
		size_t k;

		if (o->skip) {
			k = n < o->skip ? n : (size_t)o->skip;
			o->skip -= k;
			p += k;
			n -= k;
			continue;
		}
		k = FRAME_HDR_LEN - o->have;
		k = n < k ? n : k;
		memcpy(o->hdr + o->have, p, k);
		o->have += k;
		p += k;
		n -= k;
		if (o->have < FRAME_HDR_LEN)
			break;
		o->have = 0;
		if (frame_hdr_decode(o->hdr, &h) || h.type >= FRAME_TYPE_COUNT)
			fz_fail("the session emitted a malformed header");
		if (!o->frames++ && h.type != FRAME_HELLO)
			fz_fail("the first frame out is not HELLO");
		if (h.type == FRAME_DATA && h.len > session_max_payload(fz->s))
			fz_fail("DATA larger than the peer's max_frame");
		o->skip = h.len;
	}
}

/* Takes every batch the session offers; the last may stay in flight. */
static void fz_drain(struct fz *fz, bool may_hold)
{
	int n;

	if (fz->batch) {
		session_output_done(fz->s);
		fz->batch = false;
	}
	while ((n = session_output(fz->s, fz->iov, FZ_MAX_IOV)) > 0) {
		for (int i = 0; i < n; i++)
			fz_check_out(fz, fz->iov[i].base, fz->iov[i].len);
		if (may_hold && fz_rand(fz, 4) == 0) {
			fz->batch = true;
			return;
		}
		session_output_done(fz->s);
	}
	if (n < 0)
		fz_fail("session_output() failed");
}

/* ---- input ---- */

/* The receive buffer: frames never straddle chunks, as in core/link.c. */
struct fz_rx {
	struct chunk *c;
	size_t fill;
	size_t parsed;
	bool failed;
};

/* Appends n bytes and lets the session parse what is complete. */
static void fz_feed(struct fz *fz, struct fz_rx *rx, const uint8_t *p, size_t n)
{
	while (n && !rx->failed) {
		size_t k, used = 0;

		if (rx->fill == rx->c->size) {
			struct chunk *c = chunk_get(&fz->pool);

			if (!c)
				abort();
			rx->fill -= rx->parsed;
			memcpy(c->data, rx->c->data + rx->parsed, rx->fill);
			chunk_put(rx->c);
			rx->c = c;
			rx->parsed = 0;
		}
		k = rx->c->size - rx->fill;
		k = n < k ? n : k;
		memcpy(rx->c->data + rx->fill, p, k);
		rx->fill += k;
		p += k;
		n -= k;
		if (session_input(fz->s, rx->c, rx->c->data + rx->parsed, rx->fill - rx->parsed,
				  &used))
			rx->failed = true;
		rx->parsed += used;
		if (rx->fill - rx->parsed >= FZ_CHUNK / 2 && !rx->failed)
			fz_fail("a partial frame larger than max_frame was left unparsed");
	}
}

static size_t fz_piece(struct fz *fz, size_t left)
{
	static const uint32_t caps[] = {1, 16, 512, 8192};
	size_t n = 1 + fz_rand(fz, caps[fz_rand(fz, 4)]);

	return n < left ? n : left;
}

static void fz_setup(struct fz *fz, const uint8_t *data)
{
	struct session_config cfg;

	memset(fz, 0, sizeof(*fz));
	list_init(&fz->streams);
	chunk_pool_init(&fz->pool, FZ_CHUNK, 4);
	fz->rng =
	    ((uint64_t)data[1] << 24 | (uint64_t)data[2] << 16 | (uint64_t)data[3] << 8 | data[4]) *
		0x9E3779B97F4A7C15ull |
	    1;
	session_config_defaults(&cfg);
	cfg.dialer = data[0] & 1;
	cfg.role = cfg.dialer ? FRAME_ROLE_HOST : FRAME_ROLE_AGENT;
	cfg.caps = FRAME_CAP_EXEC | FRAME_CAP_TCP;
	cfg.max_frame = FZ_MAX_FRAME;
	cfg.max_streams = 1u << ((data[0] >> 1) & 7);
	cfg.max_window = 1u << 20;
	cfg.session_window_cap = 2u << 20;
	cfg.max_batch = 64u << 10;
	cfg.sendq_low = 32u << 10;
	cfg.dgram_queue_max = 4;
	cfg.pool = &fz->pool;
	cfg.now_ns = fz_now;
	if (session_new(&fz->s, &cfg, &fz_session_ops, fz))
		abort();
}

/* Ends the session, releases every stream and checks that no chunk leaked. */
static void fz_teardown(struct fz *fz, struct fz_rx *rx)
{
	if (fz_rand(fz, 2))
		fz_drain(fz, false);
	session_abort(fz->s, -ECONNRESET, "fuzz input ended");
	while (!list_empty(&fz->streams))
		fz_stream_drop(list_first(&fz->streams, struct fz_stream, node));
	if (fz->held_total)
		fz_fail("held bytes left after every stream was dropped");
	session_free(fz->s);
	chunk_put(rx->c);
	if (fz->pool.outstanding)
		fz_fail("chunks leaked");
	chunk_pool_destroy(&fz->pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz fz;
	struct fz_rx rx = {0};
	size_t off = FZ_PREFIX;

	if (size < FZ_PREFIX)
		return 0;
	fz_setup(&fz, data);
	rx.c = chunk_get(&fz.pool);
	if (!rx.c)
		abort();
	fz_drain(&fz, true);
	while (off < size && !rx.failed) {
		size_t n = fz_piece(&fz, size - off);

		fz_feed(&fz, &rx, data + off, n);
		off += n;
		fz_drain(&fz, true);
		for (uint32_t k = fz_rand(&fz, 4); k; k--)
			fz_act(&fz);
		fz_check_buffered(&fz);
		fz_drain(&fz, true);
	}
	fz_teardown(&fz, &rx);
	return 0;
}
