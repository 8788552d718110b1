/* The session state machine: HELLO, streams, credit, scheduling, keepalive and GOAWAY. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/session.h"
#include "core/err.h"
#include "core/list.h"
#include "core/log.h"
#include "core/wire.h"

/*
 * Theory of operation
 *
 * Session states:
 *   HELLO    our HELLO is queued first in the output; the only frame accepted
 *            is the peer's HELLO, which chooses the version and tells us the
 *            peer's max_frame and max_streams.        -> OPEN, or -> CLOSING
 *   OPEN     streams are opened, accepted, fed and closed by either side.
 *   CLOSING  a GOAWAY went out (our protocol error, or session_goaway()) or
 *            came in. No stream is opened or accepted; after an error, input
 *            is no longer parsed. The driver flushes output and closes.
 *   CLOSED   on_close has run.
 *
 * Stream states:
 *   OPENING  we sent OPEN; writes queue up but are not sent.  ACCEPT -> OPEN,
 *            REFUSE -> DEAD
 *   PENDING  the peer sent OPEN; the app answers.  accept -> OPEN, refuse -> DEAD
 *   OPEN     data both ways. Each direction ends with a FIN (half-close);
 *            when both FINs are through, the stream is DEAD.
 *   DEAD     reset (either way), refused, or both FINs through. Freed when
 *            the app has released it and no frame of it is in flight.
 *
 * Events: frames from session_input(), app calls, batch completion.
 *
 * Flow control: every stream starts with FRAME_INITIAL_WINDOW of credit in
 * each direction. The receiver returns credit in WINDOW frames as its app
 * consumes bytes (once a quarter of the window is consumed), and doubles the
 * window, up to max_window and within the session's window budget, when the
 * sender had used more than half of it by then: the window was the limit.
 * Datagram streams take no credit; their send queue is bounded and drops.
 *
 * Scheduling: session_output() takes control frames first, then one frame
 * per turn from each ready interactive stream, then from each ready bulk
 * stream, round-robin, each frame at most max payload bytes.
 *
 * Send memory: a stream is writable while what its own queue pins is below
 * sendq_low and the session's below sendq_cap. The session counts what its
 * queues pin: a segment in a chunk the stream's previous segment does not
 * share is charged the whole chunk, so a writer that queues many small
 * reads cannot hold many large chunks, nor can one stream stuck without
 * credit fill the session's cap with them. A peer that grants huge windows and never reads
 * fills the cap; then every stream that asks stream_writable() waits on the
 * waiters list and gets on_writable, in order, once batches have gone out
 * and made room (or a stream that died made room: the next
 * session_output() tells them). One line serves them all, first come first
 * served: a stream whose own queue drained joins it too, and while anyone
 * is in line, every other stream asking joins the end of it; otherwise the
 * streams whose bytes just went out would take the room again and again.
 * The line is empty whenever the queues are under the cap and no wake is
 * under way, so a stream never waits below the cap for nothing. Datagrams
 * written to a full session are dropped, as to a full stream queue. A
 * writer about to read into a buffer it will queue (a socket read in
 * flight) reserves the buffer first (stream_reserve()), counted as queued
 * until stream_unreserve() or the stream's death: otherwise every stream
 * found writable just before the cap was reached could still queue a
 * whole chunk.
 *
 * Receive memory: a DATA payload is handed on inside the chunk it arrived
 * in, and whatever a consumer keeps of it keeps that whole chunk alive. A
 * payload under 1/SESSION_COPY_DIV of its chunk is handed on in a chunk of
 * its own instead (a copy of at most 32 KiB), so that however a peer
 * interleaves small frames of a stalled stream with traffic that moves the
 * link on to fresh chunks, what a consumer holds pins at most
 * SESSION_COPY_DIV times its bytes, and those are bounded by the windows.
 * Datagrams stay in place: their queues are bounded and charged per chunk.
 *
 * Peer opens: past max_streams open at once, or faster than open_rate per
 * second (a token bucket of open_burst), an OPEN is refused with LIMIT
 * before the application sees it.
 */

enum stream_state { ST_OPENING, ST_PENDING, ST_OPEN, ST_DEAD };

struct seg {
	struct list node;
	struct chunk *c;
	const uint8_t *p;
	uint32_t len;
	uint32_t charge; /* bytes counted in s->queued for this segment, >= len */
};

struct ctl {
	struct list node;
	uint32_t len;
	uint8_t bytes[]; /* header and payload */
};

struct stream {
	struct session *s;
	struct stream *hnext;
	struct list node;    /* s->streams */
	struct list ready;   /* s->ready_hi or s->ready_lo */
	struct list waiting; /* s->waiters: owed on_writable once the session has room */
	uint32_t id;
	uint16_t kind;
	uint16_t flags;
	enum stream_state state;
	bool local;
	bool released;
	bool fin_queued, fin_sent, fin_rcvd;
	bool want_writable;
	uint32_t inflight; /* frames of this stream in the batch */
	const struct stream_ops *ops;
	void *ctx;
	struct list sendq;
	size_t queued;
	size_t charged;	 /* the charges of its segments (>= queued): what it pins */
	size_t reserved; /* stream_reserve(): counted in s->queued, not yet written */
	uint32_t ndgram;
	uint32_t send_credit;
	uint32_t recv_avail; /* credit the peer still holds */
	uint32_t recv_win;
	uint64_t recv_unacked;
	uint64_t recv_buffered;
};

struct slot {
	struct ctl *ctl;
	struct chunk *c;
	struct stream *st;
	uint32_t payload;
	uint8_t hdr[FRAME_HDR_LEN];
};

struct session {
	struct session_config cfg;
	const struct session_ops *ops;
	void *app;
	enum session_state state;
	bool failed;
	bool close_notified;
	char close_reason[FRAME_TEXT_MAX + 64]; /* once close_notified */
	bool hello_rcvd; /* the peer's HELLO came (the state may be CLOSING meanwhile) */
	int depth;	 /* nesting of entry points: streams are freed at depth 0 */
	struct frame_hello peer;
	uint16_t version;
	uint32_t peer_max_frame;
	uint32_t peer_max_streams;
	uint32_t next_id;
	uint32_t last_peer_id;
	struct stream **buckets;
	size_t nbuckets;
	size_t nstreams;
	size_t n_local, n_remote;
	struct list streams;
	struct list dead;
	struct list ctlq;
	size_t ctl_bytes;
	struct list ready_hi, ready_lo;
	struct slot *slots;
	int nslots;
	int slot_cap;
	bool batch;
	bool building;
	uint64_t win_total;
	uint64_t buffered;
	uint64_t queued;       /* charges of every queued segment (see sendq_cap) */
	struct list waiters;   /* streams owed on_writable, first come first served */
	struct stream *waking; /* the waiter whose on_writable runs: its turn to write */
	bool sendq_full;       /* s->queued reached sendq_cap and has not dropped below since */
	bool open_bucket_set;  /* open_tokens has been filled once */
	size_t zombie;	       /* after session_free(): unanswered streams the app still holds */
	double open_tokens;
	uint64_t open_last_ns;
	struct session_stats stats;
};

#define SESSION_CTL_CAP	   (4u << 20) /* control bytes queued before we call the peer stuck */
#define SESSION_MAX_WINDOW (1u << 30) /* keeps every credit below the peer's 2^31 limit */
#define SESSION_COPY_DIV   8	      /* payloads under chunk/8 are delivered as copies */

static void session_reap(struct session *s);
static void stream_free(struct stream *st);

void session_config_defaults(struct session_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->name = "vmbusify " VB_VERSION;
	cfg->max_frame = 65536 + 256; /* a 64 KiB packet with its headers, in one frame */
	cfg->max_streams = 1024;
	cfg->max_window = 16u << 20;
	cfg->session_window_cap = 64u << 20;
	cfg->max_batch = 512u << 10;
	cfg->sendq_low = 512u << 10;
	cfg->dgram_queue_max = 512;
	cfg->sendq_cap = 16u << 20;
}

/* ---- stream table ---- */

static size_t session_bucket(const struct session *s, uint32_t id)
{
	return (id * 2654435761u) & (s->nbuckets - 1);
}

static struct stream *session_find(const struct session *s, uint32_t id)
{
	struct stream *st = s->buckets[session_bucket(s, id)];

	while (st && st->id != id)
		st = st->hnext;
	return st;
}

/* Doubles the table when it is as full as it is wide; returns 0 or -ENOMEM. */
static int session_grow_table(struct session *s)
{
	size_t n = s->nbuckets * 2;
	struct stream **b = calloc(n, sizeof(*b));
	struct stream **old = s->buckets;
	size_t oldn = s->nbuckets;

	if (!b)
		return -ENOMEM;
	s->buckets = b;
	s->nbuckets = n;
	for (size_t i = 0; i < oldn; i++) {
		while (old[i]) {
			struct stream *st = old[i];
			size_t h = session_bucket(s, st->id);

			old[i] = st->hnext;
			st->hnext = b[h];
			b[h] = st;
		}
	}
	free(old);
	return 0;
}

static void session_unhash(struct session *s, struct stream *st)
{
	struct stream **pp = &s->buckets[session_bucket(s, st->id)];

	while (*pp && *pp != st)
		pp = &(*pp)->hnext;
	if (*pp)
		*pp = st->hnext;
}

/* Creates a stream with id; returns NULL when memory or the table cannot grow. */
static struct stream *stream_new(struct session *s, uint32_t id, bool local)
{
	struct stream *st;
	size_t h;

	if (s->nstreams + 1 > s->nbuckets && session_grow_table(s))
		return NULL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	st->s = s;
	st->id = id;
	st->local = local;
	st->send_credit = FRAME_INITIAL_WINDOW;
	st->recv_avail = FRAME_INITIAL_WINDOW;
	st->recv_win = FRAME_INITIAL_WINDOW;
	list_init(&st->sendq);
	list_init(&st->ready);
	list_init(&st->waiting);
	list_add_tail(&s->streams, &st->node);
	h = session_bucket(s, id);
	st->hnext = s->buckets[h];
	s->buckets[h] = st;
	s->nstreams++;
	s->win_total += st->recv_win;
	if (local)
		s->n_local++;
	else
		s->n_remote++;
	return st;
}

/* ---- output queues ---- */

/* Tells the driver that output waits, except while a batch is being built. */
static void session_notify_output(struct session *s)
{
	if (s->ops->on_output && s->state != SESSION_CLOSED && !s->building)
		s->ops->on_output(s);
}

/* Queues a control frame of type with payload; returns 0 or a negative errno. */
static int session_ctl(struct session *s, uint8_t type, uint8_t flags, uint32_t id,
		       const void *payload, size_t len)
{
	struct ctl *c;

	if (s->state == SESSION_CLOSED)
		return -EPIPE;
	if (type != FRAME_GOAWAY && s->ctl_bytes + len > SESSION_CTL_CAP)
		return -ENOBUFS;
	c = malloc(sizeof(*c) + FRAME_HDR_LEN + len);
	if (!c)
		return -ENOMEM;
	frame_hdr_encode(c->bytes, type, flags, id, (uint32_t)len);
	if (len)
		memcpy(c->bytes + FRAME_HDR_LEN, payload, len);
	c->len = (uint32_t)(FRAME_HDR_LEN + len);
	list_add_tail(&s->ctlq, &c->node);
	s->ctl_bytes += c->len;
	session_notify_output(s);
	return 0;
}

static int session_ctl_u32(struct session *s, uint8_t type, uint32_t id, uint32_t v)
{
	uint8_t b[4];

	wire_put_u32(b, v);
	return session_ctl(s, type, 0, id, b, sizeof(b));
}

static bool stream_ready(const struct stream *st)
{
	if (st->state != ST_OPEN || st->fin_sent)
		return false;
	if (!st->queued)
		return st->fin_queued;
	return (st->flags & FRAME_OPEN_DGRAM) || st->send_credit > 0;
}

/* Puts st on its ready list when it has something it may send now. */
static void stream_schedule(struct stream *st)
{
	struct session *s = st->s;

	if (list_linked(&st->ready) || !stream_ready(st))
		return;
	list_add_tail((st->flags & FRAME_OPEN_INTERACTIVE) ? &s->ready_hi : &s->ready_lo,
		      &st->ready);
	session_notify_output(s);
}

/* The peer's name in log lines. */
static const char *session_who(const struct session *s)
{
	return s->cfg.label ? s->cfg.label : "peer";
}

/*
 * What a new segment of c at len bytes pins: len when the stream's last
 * segment lies in the same chunk (a writer packing one chunk), else the
 * whole chunk, which the segment keeps alive however few bytes it holds.
 */
static uint32_t stream_charge(const struct stream *st, const struct chunk *c, uint32_t len)
{
	if (!list_empty(&st->sendq) && list_entry(st->sendq.prev, struct seg, node)->c == c)
		return len;
	return c->size > len ? (uint32_t)c->size : len;
}

/* take bytes of g, st's, went out: release as much of its charge, all of it once g is empty. */
static void session_uncharge(struct stream *st, struct seg *g, uint32_t take)
{
	uint32_t release = g->len ? take : g->charge;

	g->charge -= release;
	st->charged -= release;
	st->s->queued -= release;
}

/* The session's queues reached sendq_cap: say so once per episode of a stuck peer. */
static void session_note_full(struct session *s)
{
	if (s->sendq_full)
		return;
	s->sendq_full = true;
	s->stats.sendq_full++;
	if (s->stats.sendq_full == 1)
		vb_info("%s: the peer takes data slower than it comes: %llu MiB queued for it, its "
			"streams wait",
			session_who(s), (unsigned long long)(s->cfg.sendq_cap >> 20));
}

/* st asked for room the session does not have: it gets on_writable later. */
static void stream_wait_room(struct stream *st)
{
	if (!list_linked(&st->waiting))
		list_add_tail(&st->s->waiters, &st->waiting);
}

/*
 * While the queues are under the cap, tells the waiting streams, first
 * come first served, each in its turn (s->waking) to write; a stream that
 * fills the queues again waits anew, at the end of the line. A call from
 * inside a waiter's on_writable leaves that waiter its turn.
 */
static void session_wake_waiters(struct session *s)
{
	struct stream *outer = s->waking;
	size_t n = 0;
	struct list *pos;

	if (s->queued <= s->cfg.sendq_cap / 4 * 3)
		s->sendq_full = false; /* the episode is over: the next is logged anew */
	for (pos = s->waiters.next; pos != &s->waiters; pos = pos->next)
		n++;
	while (n-- && !list_empty(&s->waiters) && s->queued < s->cfg.sendq_cap) {
		struct stream *st = list_first(&s->waiters, struct stream, waiting);

		list_del(&st->waiting);
		if (st->state != ST_DEAD && !st->released && st->ops && st->ops->on_writable) {
			s->waking = st;
			st->ops->on_writable(st);
		}
	}
	s->waking = outer;
}

static void stream_drop_sendq(struct stream *st)
{
	struct list *pos, *tmp;

	list_for_each_safe (pos, tmp, &st->sendq) {
		struct seg *g = list_entry(pos, struct seg, node);

		list_del(&g->node);
		st->s->queued -= g->charge;
		chunk_put(g->c);
		free(g);
	}
	st->s->queued -= st->reserved;
	st->reserved = 0;
	st->queued = 0;
	st->charged = 0;
	st->ndgram = 0;
	if (list_linked(&st->ready))
		list_del(&st->ready);
	if (list_linked(&st->waiting))
		list_del(&st->waiting);
}

/* Moves st to DEAD: no more frames go out for it and its open slot is freed. */
static void stream_kill(struct stream *st)
{
	struct session *s = st->s;

	if (st->state == ST_DEAD)
		return;
	st->state = ST_DEAD;
	stream_drop_sendq(st);
	/* The room it made reaches the waiters from the next session_output(). */
	if (!list_empty(&s->waiters))
		session_notify_output(s);
	if (st->local)
		s->n_local--;
	else
		s->n_remote--;
	if (st->released) {
		list_del(&st->node);
		list_add_tail(&s->dead, &st->node);
	}
}

/* A stream whose FINs both went through is done. */
static void stream_check_done(struct stream *st)
{
	if (st->state == ST_OPEN && st->fin_sent && st->fin_rcvd && !st->queued)
		stream_kill(st);
}

static void stream_free(struct stream *st)
{
	struct session *s = st->s;

	stream_drop_sendq(st);
	session_unhash(s, st);
	list_del(&st->node);
	s->nstreams--;
	s->win_total -= st->recv_win;
	s->buffered -= st->recv_buffered;
	free(st);
}

/* Frees dead, released streams that no batch refers to; only at depth 0. */
static void session_reap(struct session *s)
{
	struct list *pos, *tmp;

	if (s->depth)
		return;
	list_for_each_safe (pos, tmp, &s->dead) {
		struct stream *st = list_entry(pos, struct stream, node);

		if (!st->inflight)
			stream_free(st);
	}
}

/* ---- failure ---- */

/*
 * Resets every stream that the app still holds, with err. Works on a snapshot:
 * an on_reset callback may release other streams, which moves them between
 * lists; streams are not freed meanwhile because depth > 0.
 */
static void session_reset_all(struct session *s, int err)
{
	struct stream **snap = calloc(s->nstreams + 1, sizeof(*snap));
	struct list *pos;
	size_t n = 0;

	s->depth++;
	for (pos = s->streams.next; pos != &s->streams && snap; pos = pos->next)
		snap[n++] = list_entry(pos, struct stream, node);
	for (size_t i = 0; i < n; i++) {
		struct stream *st = snap[i];
		bool notify = st->state != ST_DEAD && !st->released;

		stream_kill(st);
		if (notify && st->ops && st->ops->on_reset)
			st->ops->on_reset(st, err);
	}
	if (!snap) { /* no memory for a snapshot: reset without telling the app */
		struct list *tmp;

		list_for_each_safe (pos, tmp, &s->streams) {
			stream_kill(list_entry(pos, struct stream, node));
		}
	}
	free(snap);
	s->depth--;
}

static void session_close(struct session *s, int err, const char *reason)
{
	if (s->close_notified)
		return;
	s->close_notified = true;
	snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
	session_reset_all(s, err);
	if (s->ops->on_close)
		s->ops->on_close(s, err, reason);
}

/*
 * A protocol violation by the peer: queue GOAWAY with the reason, stop
 * parsing, reset every stream. Returns -EPROTO for the caller to pass up.
 */
static int session_fail(struct session *s, uint32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int session_fail(struct session *s, uint32_t code, const char *fmt, ...)
{
	char reason[FRAME_TEXT_MAX + 1];
	uint8_t p[4 + 4 + 1 + FRAME_TEXT_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (s->failed)
		return -EPROTO;
	s->failed = true;
	n = frame_reason_encode(p, sizeof(p), FRAME_GOAWAY, code, s->last_peer_id, reason);
	session_ctl(s, FRAME_GOAWAY, 0, 0, p, (size_t)n);
	s->state = SESSION_CLOSING;
	session_close(s, code == VB_WERR_VERSION ? -EPROTONOSUPPORT : -EPROTO, reason);
	return -EPROTO;
}

/* ---- session life ---- */

static int session_send_hello(struct session *s)
{
	struct frame_hello h = {
	    .min_version = FRAME_VERSION,
	    .max_version = FRAME_VERSION,
	    .max_frame = s->cfg.max_frame,
	    .max_streams = s->cfg.max_streams,
	    .caps = s->cfg.caps,
	    .role = s->cfg.role,
	};
	uint8_t p[FRAME_HELLO_MAX];
	int n;

	snprintf(h.name, sizeof(h.name), "%s", s->cfg.name ? s->cfg.name : "vmbusify");
	n = frame_hello_encode(p, sizeof(p), &h);
	if (n < 0)
		return n;
	return session_ctl(s, FRAME_HELLO, 0, 0, p, (size_t)n);
}

/**
 * session_new() - create a session and queue its HELLO
 * @cfg: copied; max_frame is clamped to the protocol's bounds
 * @ops: callbacks, kept by reference
 * @app: returned by session_app()
 *
 * Return: 0 and the session in *out, or -ENOMEM.
 */
int session_new(struct session **out, const struct session_config *cfg,
		const struct session_ops *ops, void *app)
{
	struct session *s = calloc(1, sizeof(*s));
	int ret = -ENOMEM;

	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	if (s->cfg.max_frame < FRAME_MIN_MAX_FRAME)
		s->cfg.max_frame = FRAME_MIN_MAX_FRAME;
	if (s->cfg.max_frame > FRAME_MAX_MAX_FRAME)
		s->cfg.max_frame = FRAME_MAX_MAX_FRAME;
	if (s->cfg.max_window > SESSION_MAX_WINDOW)
		s->cfg.max_window = SESSION_MAX_WINDOW;
	s->ops = ops;
	s->app = app;
	s->state = SESSION_HELLO;
	s->peer_max_frame = FRAME_MIN_MAX_FRAME;
	s->peer_max_streams = 64;
	s->next_id = cfg->dialer ? 1 : 2;
	list_init(&s->streams);
	list_init(&s->dead);
	list_init(&s->ctlq);
	list_init(&s->ready_hi);
	list_init(&s->ready_lo);
	list_init(&s->waiters);
	s->nbuckets = 16;
	s->buckets = calloc(s->nbuckets, sizeof(*s->buckets));
	if (!s->buckets)
		goto fail;
	ret = session_send_hello(s);
	if (ret)
		goto fail;
	*out = s;
	return 0;
fail:
	session_free(s);
	return ret;
}

static void session_drop_batch(struct session *s)
{
	for (int i = 0; i < s->nslots; i++) {
		free(s->slots[i].ctl);
		if (s->slots[i].c)
			chunk_put(s->slots[i].c);
		if (s->slots[i].st)
			s->slots[i].st->inflight--;
	}
	s->nslots = 0;
	s->batch = false;
}

/* A peer-opened stream the app has not answered: the app holds it until stream_refuse(). */
static bool stream_held_unanswered(const struct stream *st)
{
	return !st->released && !st->local && !st->ops;
}

static void session_destroy(struct session *s)
{
	free(s->slots);
	free(s->buckets);
	free(s);
}

/*
 * Frees the session and its streams. A stream the app was given in on_open
 * and has not answered yet (a dial in progress, say) stays, dead, with the
 * session's memory around it, so that the app's later stream_accept() fails
 * with -EINVAL and its stream_refuse() releases it, as on_open promises; the
 * last such release frees what is left (s->zombie).
 */
void session_free(struct session *s)
{
	struct list *pos, *tmp;

	if (!s)
		return;
	s->state = SESSION_CLOSED; /* no callbacks from here on */
	session_drop_batch(s);
	list_for_each_safe (pos, tmp, &s->ctlq) {
		list_del(pos);
		free(list_entry(pos, struct ctl, node));
	}
	list_for_each_safe (pos, tmp, &s->streams) {
		struct stream *st = list_entry(pos, struct stream, node);

		if (stream_held_unanswered(st)) {
			stream_kill(st);
			s->zombie++;
			continue;
		}
		stream_free(st);
	}
	list_for_each_safe (pos, tmp, &s->dead)
		stream_free(list_entry(pos, struct stream, node));
	if (!s->zombie)
		session_destroy(s);
}

void *session_app(const struct session *s)
{
	return s->app;
}

enum session_state session_state(const struct session *s)
{
	return s->state;
}

const struct frame_hello *session_peer(const struct session *s)
{
	return &s->peer;
}

uint16_t session_version(const struct session *s)
{
	return s->version;
}

const struct session_stats *session_stats(const struct session *s)
{
	return &s->stats;
}

/* The largest DATA payload we may send: the peer's limit. */
uint32_t session_max_payload(const struct session *s)
{
	return s->peer_max_frame;
}

size_t session_stream_count(const struct session *s)
{
	return s->nstreams;
}

struct chunk_pool *session_pool(const struct session *s)
{
	return s->cfg.pool;
}

uint64_t session_buffered(const struct session *s)
{
	return s->buffered;
}

uint64_t session_queued(const struct session *s)
{
	return s->queued;
}

int session_ping(struct session *s)
{
	uint8_t p[8];

	if (s->state == SESSION_CLOSED || s->failed)
		return -EPIPE;
	wire_put_u64(p, s->cfg.now_ns ? s->cfg.now_ns() : 0);
	return session_ctl(s, FRAME_PING, 0, 0, p, sizeof(p));
}

int session_goaway(struct session *s, uint32_t wire_code, const char *reason)
{
	uint8_t p[4 + 4 + 1 + FRAME_TEXT_MAX];
	int n;

	if (s->state == SESSION_CLOSING || s->state == SESSION_CLOSED)
		return 0;
	n = frame_reason_encode(p, sizeof(p), FRAME_GOAWAY, wire_code, s->last_peer_id, reason);
	s->state = SESSION_CLOSING;
	return session_ctl(s, FRAME_GOAWAY, 0, 0, p, (size_t)n);
}

void session_abort(struct session *s, int err, const char *reason)
{
	s->depth++;
	session_close(s, err, reason);
	s->state = SESSION_CLOSED;
	s->depth--;
	session_reap(s);
}

/* ---- input ---- */

static int session_on_hello(struct session *s, const struct frame_hdr *h, const uint8_t *p)
{
	uint16_t lo, hi;

	if (s->hello_rcvd)
		return session_fail(s, VB_WERR_PROTOCOL, "second HELLO");
	if (h->stream || frame_hello_decode(p, h->len, &s->peer))
		return session_fail(s, VB_WERR_PROTOCOL, "malformed HELLO");
	lo = s->peer.min_version > FRAME_VERSION ? s->peer.min_version : FRAME_VERSION;
	hi = s->peer.max_version < FRAME_VERSION ? s->peer.max_version : FRAME_VERSION;
	if (lo > hi)
		return session_fail(s, VB_WERR_VERSION,
				    "no common protocol version: peer speaks %u-%u, we speak %u-%u",
				    s->peer.min_version, s->peer.max_version, FRAME_VERSION,
				    FRAME_VERSION);
	if (s->peer.max_frame < FRAME_MIN_MAX_FRAME || s->peer.max_frame > FRAME_MAX_MAX_FRAME)
		return session_fail(s, VB_WERR_PROTOCOL, "HELLO max_frame %u out of range",
				    s->peer.max_frame);
	s->version = hi;
	s->peer_max_frame = s->peer.max_frame;
	s->peer_max_streams = s->peer.max_streams;
	s->hello_rcvd = true;
	if (s->state == SESSION_HELLO) /* a GOAWAY of ours may have gone out meanwhile */
		s->state = SESSION_OPEN;
	if (s->ops->on_ready)
		s->ops->on_ready(s);
	return 0;
}

/* Refuses an OPEN without creating a stream; a peer that never reads is cut off. */
static int session_refuse_id(struct session *s, uint32_t id, uint32_t code, const char *text)
{
	uint8_t b[4 + 1 + FRAME_TEXT_MAX];
	int n = frame_reason_encode(b, sizeof(b), FRAME_REFUSE, code, 0, text);

	if (session_ctl(s, FRAME_REFUSE, 0, id, b, (size_t)n))
		return session_fail(s, VB_WERR_LIMIT, "peer floods stream opens");
	return 0;
}

/* Peer-opened ids have the peer's parity and increase; returns true when id is fresh. */
static bool session_peer_id_ok(const struct session *s, uint32_t id)
{
	bool peer_odd = !s->cfg.dialer;

	return id && ((id & 1) == peer_odd) && id > s->last_peer_id;
}

/* Takes a token for a peer OPEN; false when the peer opens faster than open_rate. */
static bool session_open_token(struct session *s)
{
	double burst = s->cfg.open_burst ? s->cfg.open_burst : 2.0 * s->cfg.open_rate;
	uint64_t now;

	if (!s->cfg.open_rate || !s->cfg.now_ns)
		return true;
	now = s->cfg.now_ns();
	if (!s->open_bucket_set) {
		s->open_bucket_set = true;
		s->open_tokens = burst;
	} else if (now > s->open_last_ns) {
		s->open_tokens += (double)(now - s->open_last_ns) * s->cfg.open_rate / 1e9;
		if (s->open_tokens > burst)
			s->open_tokens = burst;
	}
	s->open_last_ns = now;
	if (s->open_tokens < 1.0)
		return false;
	s->open_tokens -= 1.0;
	return true;
}

/* An OPEN past the session's own limits: refused with LIMIT, counted and logged. */
static int session_refuse_limit(struct session *s, uint32_t id, const char *why)
{
	s->stats.opens_refused++;
	vb_warn("%s: refused a stream the peer opened: %s", session_who(s), why);
	return session_refuse_id(s, id, VB_WERR_LIMIT, why);
}

static int session_on_open(struct session *s, const struct frame_hdr *h, const uint8_t *p)
{
	struct frame_open o;
	struct stream *st;

	if (!session_peer_id_ok(s, h->stream))
		return session_fail(s, VB_WERR_PROTOCOL, "OPEN with bad or reused stream id %u",
				    h->stream);
	if (frame_open_decode(p, h->len, &o))
		return session_fail(s, VB_WERR_PROTOCOL, "malformed OPEN");
	s->last_peer_id = h->stream;
	if (s->state != SESSION_OPEN)
		return session_refuse_id(s, h->stream, VB_WERR_SHUTDOWN, "session is closing");
	if (s->n_remote >= s->cfg.max_streams)
		return session_refuse_limit(s, h->stream, "too many streams open at once");
	if (!session_open_token(s))
		return session_refuse_limit(s, h->stream, "stream opens too fast");
	if (!s->ops->on_open)
		return session_refuse_id(s, h->stream, VB_WERR_UNSUPPORTED,
					 "no stream kinds served");
	st = stream_new(s, h->stream, false);
	if (!st)
		return session_fail(s, VB_WERR_NOMEM, "out of memory for a stream");
	st->kind = o.kind;
	st->flags = o.flags;
	st->state = ST_PENDING;
	s->stats.streams_accepted++;
	s->ops->on_open(s, st, o.kind, o.flags, o.req, o.req_len);
	return 0;
}

/*
 * Looks up the stream a frame is for. Returns it, or NULL for a stream that
 * existed and is gone (the frame is ignored); a stream that never existed is
 * a protocol error, reported through *err.
 */
static struct stream *session_frame_stream(struct session *s, const struct frame_hdr *h, int *err)
{
	struct stream *st = session_find(s, h->stream);
	bool ours = (h->stream & 1) == (s->cfg.dialer ? 1u : 0u);

	*err = 0;
	if (st)
		return st;
	if (!h->stream || (ours && h->stream >= s->next_id) ||
	    (!ours && h->stream > s->last_peer_id))
		*err = session_fail(s, VB_WERR_PROTOCOL, "%s for stream %u that was never opened",
				    frame_type_name(h->type), h->stream);
	return NULL;
}

static int session_on_reply(struct session *s, const struct frame_hdr *h, const uint8_t *p)
{
	struct frame_reason r;
	struct stream *st;
	int err;

	st = session_frame_stream(s, h, &err);
	if (!st)
		return err;
	if (!st->local || st->state != ST_OPENING) {
		if (st->state == ST_DEAD)
			return 0; /* we reset it meanwhile */
		return session_fail(s, VB_WERR_PROTOCOL, "%s for stream %u in the wrong state",
				    frame_type_name(h->type), h->stream);
	}
	if (h->type == FRAME_ACCEPT) {
		st->state = ST_OPEN;
		if (!st->released)
			st->ops->on_reply(st, 0, p, h->len);
		stream_schedule(st);
		return 0;
	}
	if (frame_reason_decode(p, h->len, FRAME_REFUSE, &r))
		return session_fail(s, VB_WERR_PROTOCOL, "malformed REFUSE");
	stream_kill(st);
	if (!st->released)
		st->ops->on_reply(st, err_from_wire(r.code), (const uint8_t *)r.text,
				  strlen(r.text));
	return 0;
}

/* Hands len bytes at p of c to st's application: in place, or copied when few (see the top). */
static void session_deliver(struct stream *st, struct chunk *c, const uint8_t *p, uint32_t len)
{
	struct chunk *own = NULL;

	/* When even that allocation fails: in place, which frees later but loses nothing. */
	if (c->pool && !(st->flags & FRAME_OPEN_DGRAM) && len < c->size / SESSION_COPY_DIV)
		own = chunk_alloc(len);
	if (!own) {
		st->ops->on_data(st, c, p, len);
		return;
	}
	memcpy(own->data, p, len);
	st->ops->on_data(st, own, own->data, len);
	chunk_put(own);
}

static int session_on_data(struct session *s, struct chunk *c, const struct frame_hdr *h,
			   const uint8_t *p)
{
	struct stream *st;
	int err;

	st = session_frame_stream(s, h, &err);
	if (!st)
		return err;
	if (st->state == ST_DEAD)
		return 0;
	if (st->state != ST_OPEN)
		return session_fail(s, VB_WERR_PROTOCOL, "DATA on stream %u before ACCEPT", st->id);
	if (st->fin_rcvd)
		return session_fail(s, VB_WERR_PROTOCOL, "DATA on stream %u after FIN", st->id);
	if (!(st->flags & FRAME_OPEN_DGRAM)) {
		if (h->len > st->recv_avail)
			return session_fail(s, VB_WERR_FLOW,
					    "stream %u sent %u bytes with %u bytes of credit",
					    st->id, h->len, st->recv_avail);
		st->recv_avail -= h->len;
	}
	st->recv_buffered += h->len;
	s->buffered += h->len;
	if (h->len) {
		if (st->released)
			stream_consumed(st, h->len);
		else
			session_deliver(st, c, p, h->len);
	}
	if (h->flags & FRAME_F_FIN && st->state == ST_OPEN) {
		st->fin_rcvd = true;
		if (!st->released && st->ops->on_fin)
			st->ops->on_fin(st);
		stream_check_done(st);
	}
	return 0;
}

static int session_on_window(struct session *s, const struct frame_hdr *h, const uint8_t *p)
{
	struct stream *st;
	uint32_t inc;
	int err;

	if (frame_u32_decode(p, h->len, &inc) || !inc)
		return session_fail(s, VB_WERR_PROTOCOL, "malformed WINDOW");
	st = session_frame_stream(s, h, &err);
	if (!st || st->state == ST_DEAD)
		return err;
	if ((uint64_t)st->send_credit + inc > 0x7fffffffu)
		return session_fail(s, VB_WERR_FLOW, "WINDOW overflows the credit of stream %u",
				    st->id);
	st->send_credit += inc;
	stream_schedule(st);
	return 0;
}

static int session_on_reset(struct session *s, const struct frame_hdr *h, const uint8_t *p)
{
	struct stream *st;
	uint32_t code;
	int err;

	if (frame_u32_decode(p, h->len, &code))
		return session_fail(s, VB_WERR_PROTOCOL, "malformed RESET");
	st = session_frame_stream(s, h, &err);
	if (!st || st->state == ST_DEAD)
		return err;
	stream_kill(st);
	if (!st->released && st->ops && st->ops->on_reset)
		st->ops->on_reset(st, err_from_wire(code));
	return 0;
}

static int session_on_ping(struct session *s, const struct frame_hdr *h, const uint8_t *p)
{
	uint64_t stamp;

	if (h->stream || frame_u64_decode(p, h->len, &stamp))
		return session_fail(s, VB_WERR_PROTOCOL, "malformed PING");
	if (!(h->flags & FRAME_F_ACK)) {
		if (session_ctl(s, FRAME_PING, FRAME_F_ACK, 0, p, 8))
			return session_fail(s, VB_WERR_LIMIT, "peer floods PINGs");
		return 0;
	}
	if (s->cfg.now_ns) {
		uint64_t now = s->cfg.now_ns();

		s->stats.rtt_last_ns = now > stamp ? now - stamp : 0;
		if (s->ops->on_pong)
			s->ops->on_pong(s, s->stats.rtt_last_ns);
	}
	return 0;
}

static int session_on_goaway(struct session *s, const struct frame_hdr *h, const uint8_t *p)
{
	struct frame_reason r;
	char why[FRAME_TEXT_MAX + 64];

	if (h->stream || frame_reason_decode(p, h->len, FRAME_GOAWAY, &r))
		return session_fail(s, VB_WERR_PROTOCOL, "malformed GOAWAY");
	snprintf(why, sizeof(why), "peer said goodbye: %s%s%s", err_wire_str(r.code),
		 r.text[0] ? ": " : "", r.text);
	s->state = SESSION_CLOSING;
	s->failed = true;
	session_close(s, r.code == VB_WERR_SHUTDOWN ? -ESHUTDOWN : err_from_wire(r.code), why);
	return -ECONNRESET;
}

/* The largest payload we take for a frame type; headers beyond it are errors. */
static uint32_t session_len_limit(const struct session *s, uint8_t type)
{
	switch (type) {
	case FRAME_HELLO:
		return FRAME_HELLO_MAX;
	case FRAME_OPEN:
	case FRAME_ACCEPT:
		return FRAME_CTL_MAX < s->cfg.max_frame ? FRAME_CTL_MAX : s->cfg.max_frame;
	case FRAME_REFUSE:
	case FRAME_GOAWAY:
		return 4 + 4 + 1 + FRAME_TEXT_MAX;
	default:
		return s->cfg.max_frame;
	}
}

static int session_dispatch(struct session *s, struct chunk *c, const struct frame_hdr *h,
			    const uint8_t *p)
{
	switch (h->type) {
	case FRAME_HELLO:
		return session_on_hello(s, h, p);
	case FRAME_OPEN:
		return session_on_open(s, h, p);
	case FRAME_ACCEPT:
	case FRAME_REFUSE:
		return session_on_reply(s, h, p);
	case FRAME_DATA:
		return session_on_data(s, c, h, p);
	case FRAME_WINDOW:
		return session_on_window(s, h, p);
	case FRAME_RESET:
		return session_on_reset(s, h, p);
	case FRAME_PING:
		return session_on_ping(s, h, p);
	case FRAME_GOAWAY:
		return session_on_goaway(s, h, p);
	}
	return session_fail(s, VB_WERR_PROTOCOL, "unknown frame type 0x%02x", h->type);
}

static char session_printable(uint8_t c)
{
	return c >= 0x20 && c < 0x7f ? (char)c : '.';
}

/*
 * Checks a header before its payload is awaited, so a huge length fails at
 * once. Before the peer's HELLO, anything else means the peer does not speak
 * this protocol at all (an SSH server, a shell on a serial port): say so,
 * with the first bytes, rather than name a field.
 */
static int session_check_hdr(struct session *s, const struct frame_hdr *h, const uint8_t *raw,
			     int dec)
{
	if (!s->hello_rcvd && (dec || h->type != FRAME_HELLO))
		return session_fail(
		    s, VB_WERR_PROTOCOL,
		    "the peer does not speak the VMBusify protocol (expected HELLO, "
		    "got bytes %02x %02x %02x %02x \"%c%c%c%c\")",
		    raw[0], raw[1], raw[2], raw[3], session_printable(raw[0]),
		    session_printable(raw[1]), session_printable(raw[2]),
		    session_printable(raw[3]));
	if (dec)
		return session_fail(s, VB_WERR_PROTOCOL, "nonzero reserved header bits");
	if (h->type >= FRAME_TYPE_COUNT)
		return session_fail(s, VB_WERR_PROTOCOL, "unknown frame type 0x%02x", h->type);
	if (h->len > session_len_limit(s, h->type))
		return session_fail(s, VB_WERR_TOOBIG, "%s of %u bytes exceeds the limit of %u",
				    frame_type_name(h->type), h->len,
				    session_len_limit(s, h->type));
	return 0;
}

size_t session_input_need(const uint8_t *p, size_t len)
{
	if (len < FRAME_HDR_LEN)
		return FRAME_HDR_LEN;
	return FRAME_HDR_LEN + (size_t)wire_get_u32(p + 8);
}

int session_input(struct session *s, struct chunk *c, const uint8_t *p, size_t len,
		  size_t *consumed)
{
	size_t off = 0;
	int ret = 0;

	*consumed = 0;
	if (s->failed || s->state == SESSION_CLOSED)
		return -EPIPE;
	s->depth++;
	while (len - off >= FRAME_HDR_LEN) {
		struct frame_hdr h;

		ret = session_check_hdr(s, &h, p + off, frame_hdr_decode(p + off, &h));
		if (ret || len - off - FRAME_HDR_LEN < h.len)
			break;
		ret = session_dispatch(s, c, &h, p + off + FRAME_HDR_LEN);
		off += FRAME_HDR_LEN + h.len;
		s->stats.frames_in++;
		if (ret || s->failed || s->state == SESSION_CLOSED)
			break;
	}
	s->stats.bytes_in += off;
	*consumed = off;
	s->depth--;
	session_reap(s);
	if (!ret && s->failed)
		ret = -EPROTO;
	return ret;
}

/* ---- output ---- */

static struct slot *session_slot(struct session *s)
{
	struct slot *sl = &s->slots[s->nslots++];

	memset(sl, 0, sizeof(*sl));
	return sl;
}

/* Emits one DATA frame of st into the batch; returns the bytes it adds. */
static size_t session_emit_data(struct session *s, struct stream *st, struct vb_iov *iov, int *n)
{
	struct slot *sl = session_slot(s);
	uint32_t take = 0;
	uint8_t flags = 0;

	if (st->queued) {
		struct seg *g = list_first(&st->sendq, struct seg, node);
		bool dgram = st->flags & FRAME_OPEN_DGRAM;

		take = g->len;
		if (!dgram) {
			if (take > st->send_credit)
				take = st->send_credit;
			if (take > s->peer_max_frame)
				take = s->peer_max_frame;
			st->send_credit -= take;
		}
		sl->c = g->c;
		chunk_ref(g->c);
		iov[*n + 1].base = (void *)g->p;
		iov[*n + 1].len = take;
		g->p += take;
		g->len -= take;
		st->queued -= take;
		session_uncharge(st, g, take);
		if (!g->len) {
			list_del(&g->node);
			chunk_put(g->c);
			free(g);
			if (dgram)
				st->ndgram--;
		}
	}
	if (!st->queued && st->fin_queued) {
		flags |= FRAME_F_FIN;
		st->fin_sent = true;
	}
	frame_hdr_encode(sl->hdr, FRAME_DATA, flags, st->id, take);
	sl->st = st;
	sl->payload = take;
	st->inflight++;
	iov[*n].base = sl->hdr;
	iov[*n].len = FRAME_HDR_LEN;
	*n += take ? 2 : 1;
	return FRAME_HDR_LEN + take;
}

static struct stream *session_next_ready(struct session *s)
{
	if (!list_empty(&s->ready_hi))
		return list_first(&s->ready_hi, struct stream, ready);
	if (!list_empty(&s->ready_lo))
		return list_first(&s->ready_lo, struct stream, ready);
	return NULL;
}

int session_output(struct session *s, struct vb_iov *iov, int max_iov)
{
	size_t bytes = 0;
	int n = 0;

	if (s->batch || max_iov < 2)
		return 0;
	if (s->slot_cap < max_iov) {
		struct slot *sl = realloc(s->slots, (size_t)max_iov * sizeof(*sl));

		if (!sl)
			return -ENOMEM;
		s->slots = sl;
		s->slot_cap = max_iov;
	}
	s->depth++; /* no stream is freed and no on_output runs while building */
	/* Room made by streams that died: the waiters' writes go into this batch. */
	session_wake_waiters(s);
	s->building = true;
	while (!list_empty(&s->ctlq) && n < max_iov && bytes < s->cfg.max_batch) {
		struct ctl *c = list_first(&s->ctlq, struct ctl, node);
		struct slot *sl = session_slot(s);

		list_del(&c->node);
		s->ctl_bytes -= c->len;
		sl->ctl = c;
		iov[n].base = c->bytes;
		iov[n++].len = c->len;
		bytes += c->len;
	}
	while (s->state != SESSION_HELLO && n + 2 <= max_iov && bytes < s->cfg.max_batch) {
		struct stream *st = session_next_ready(s);

		if (!st)
			break;
		list_del(&st->ready);
		bytes += session_emit_data(s, st, iov, &n);
		stream_schedule(st);
	}
	if (n) {
		s->batch = true;
		s->stats.frames_out += (uint64_t)s->nslots;
		s->stats.bytes_out += bytes;
	}
	s->building = false;
	s->depth--;
	return n;
}

/* Tells each stream in the finished batch how much of it went out. */
static void session_batch_sent(struct session *s)
{
	for (int i = 0; i < s->nslots; i++) {
		struct stream *st = s->slots[i].st;

		if (!st)
			continue;
		if (s->slots[i].payload && !st->released && st->ops && st->ops->on_sent)
			st->ops->on_sent(st, s->slots[i].payload);
		/* Its on_writable comes in turn with the session's waiters (the caller wakes them).
		 */
		if (st->want_writable && st->charged < s->cfg.sendq_low && !st->released &&
		    st->state != ST_DEAD) {
			st->want_writable = false;
			stream_wait_room(st);
		}
		stream_check_done(st);
	}
}

void session_output_done(struct session *s)
{
	if (!s->batch)
		return;
	s->depth++;
	session_batch_sent(s);
	session_drop_batch(s);
	session_wake_waiters(s);
	s->depth--;
	session_reap(s);
}

bool session_has_output(const struct session *s)
{
	if (!list_empty(&s->ctlq))
		return true;
	if (s->state == SESSION_HELLO || s->state == SESSION_CLOSED)
		return false;
	return !list_empty(&s->ready_hi) || !list_empty(&s->ready_lo);
}

/* ---- streams ---- */

/* The largest OPEN or ACCEPT payload the peer takes (its session_len_limit()). */
static uint32_t session_peer_ctl_max(const struct session *s)
{
	return FRAME_CTL_MAX < s->peer_max_frame ? FRAME_CTL_MAX : s->peer_max_frame;
}

int stream_open(struct session *s, uint16_t kind, uint16_t flags, const void *req, size_t len,
		const struct stream_ops *ops, void *ctx, struct stream **out)
{
	uint8_t *p;
	struct stream *st;
	int n, ret;

	if (s->state == SESSION_CLOSING || s->state == SESSION_CLOSED || s->failed)
		return -EPIPE;
	if (s->n_local >= s->peer_max_streams)
		return -EMFILE;
	if (len > session_peer_ctl_max(s) - 4)
		return -EMSGSIZE;
	if (s->next_id > 0xfffffffdu)
		return -EMFILE;
	p = malloc(len + 4);
	if (!p)
		return -ENOMEM;
	st = stream_new(s, s->next_id, true);
	ret = -ENOMEM;
	if (!st)
		goto out;
	s->next_id += 2;
	st->kind = kind;
	st->flags = flags;
	st->state = ST_OPENING;
	st->ops = ops;
	st->ctx = ctx;
	n = frame_open_encode(p, len + 4, kind, flags, req, len);
	ret = session_ctl(s, FRAME_OPEN, 0, st->id, p, (size_t)n);
	if (ret) {
		st->released = true;
		stream_kill(st);
		goto out;
	}
	s->stats.streams_opened++;
	*out = st;
out:
	free(p);
	session_reap(s);
	return ret;
}

int stream_accept(struct stream *st, const void *reply, size_t len, const struct stream_ops *ops,
		  void *ctx)
{
	int ret;

	if (st->state != ST_PENDING)
		return -EINVAL;
	if (len > session_peer_ctl_max(st->s))
		return -EMSGSIZE;
	st->ops = ops;
	st->ctx = ctx;
	ret = session_ctl(st->s, FRAME_ACCEPT, 0, st->id, reply, len);
	if (ret)
		return ret;
	st->state = ST_OPEN;
	stream_schedule(st);
	return 0;
}

/* Sends REFUSE for a pending stream and kills it; the caller releases it. */
static int stream_refuse_frame(struct stream *st, int err, const char *text)
{
	uint8_t p[4 + 1 + FRAME_TEXT_MAX];
	int n;

	n = frame_reason_encode(p, sizeof(p), FRAME_REFUSE, err_to_wire(err), 0, text);
	stream_kill(st);
	return session_ctl(st->s, FRAME_REFUSE, 0, st->id, p, (size_t)n);
}

int stream_refuse(struct stream *st, int err, const char *text)
{
	int ret = 0;

	if (st->state == ST_PENDING)
		ret = stream_refuse_frame(st, err, text);
	else if (st->state != ST_DEAD) /* accepted: not ours to refuse */
		return -EINVAL;
	stream_release(st); /* a dead one (the peer reset it) is released all the same */
	return ret;
}

int stream_write(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct session *s = st->s;
	struct seg *g;

	if (st->state == ST_DEAD || st->fin_queued)
		return -EPIPE;
	if (!len)
		return 0;
	if (st->flags & FRAME_OPEN_DGRAM) {
		if (len > s->peer_max_frame)
			return -EMSGSIZE;
		if (st->ndgram >= s->cfg.dgram_queue_max || s->queued >= s->cfg.sendq_cap) {
			s->stats.dgrams_dropped++;
			return -ENOBUFS;
		}
	} else if (len > UINT32_MAX) {
		return -EMSGSIZE;
	}
	g = malloc(sizeof(*g));
	if (!g)
		return -ENOMEM;
	chunk_ref(c);
	g->c = c;
	g->p = p;
	g->len = (uint32_t)len;
	g->charge = stream_charge(st, c, g->len);
	list_add_tail(&st->sendq, &g->node);
	st->queued += len;
	st->charged += g->charge;
	s->queued += g->charge;
	if (st->flags & FRAME_OPEN_DGRAM)
		st->ndgram++;
	if (st->charged >= s->cfg.sendq_low)
		st->want_writable = true;
	if (s->queued >= s->cfg.sendq_cap) {
		session_note_full(s);
		stream_wait_room(st);
	}
	stream_schedule(st);
	return 0;
}

int stream_write_copy(struct stream *st, const void *p, size_t len)
{
	const uint8_t *b = p;

	if ((st->flags & FRAME_OPEN_DGRAM) && len > st->s->cfg.pool->chunk_size)
		return -EMSGSIZE;
	while (len) {
		struct chunk *c = chunk_get(st->s->cfg.pool);
		size_t n;
		int ret;

		if (!c)
			return -ENOMEM;
		n = len < c->size ? len : c->size;
		memcpy(c->data, b, n);
		ret = stream_write(st, c, c->data, n);
		chunk_put(c);
		if (ret)
			return ret;
		b += n;
		len -= n;
	}
	return 0;
}

int stream_shutdown(struct stream *st)
{
	if (st->state == ST_DEAD)
		return -EPIPE;
	if (st->fin_queued)
		return 0;
	st->fin_queued = true;
	stream_schedule(st);
	return 0;
}

int stream_reset(struct stream *st, int err)
{
	struct session *s = st->s;
	int ret;

	if (st->state == ST_DEAD)
		return 0;
	ret = session_ctl_u32(s, FRAME_RESET, st->id, err_to_wire(err));
	stream_kill(st);
	return ret;
}

/**
 * stream_consumed() - n received bytes of st have gone on
 *
 * Returns credit to the peer in a WINDOW once a quarter of the window is
 * consumed, growing the window when the peer had used more than half of it.
 */
void stream_consumed(struct stream *st, size_t n)
{
	struct session *s = st->s;
	uint64_t grant, grow = 0;

	if (n > st->recv_buffered)
		n = (size_t)st->recv_buffered;
	st->recv_buffered -= n;
	s->buffered -= n;
	if (st->state == ST_DEAD || st->fin_rcvd || (st->flags & FRAME_OPEN_DGRAM))
		return;
	st->recv_unacked += n;
	if (st->recv_unacked < st->recv_win / 4)
		return;
	grant = st->recv_unacked;
	if (st->recv_avail < st->recv_win / 2 && st->recv_win < s->cfg.max_window) {
		grow = s->cfg.max_window - st->recv_win;
		if (grow > st->recv_win)
			grow = st->recv_win;
		if (s->win_total + grow > s->cfg.session_window_cap)
			grow = 0;
	}
	if (session_ctl_u32(s, FRAME_WINDOW, st->id, (uint32_t)(grant + grow)))
		return; /* the credit stays unacked and goes with the next update */
	s->win_total += grow;
	st->recv_win += (uint32_t)grow;
	st->recv_avail += (uint32_t)(grant + grow);
	st->recv_unacked = 0;
}

/*
 * A stream released after stream_shutdown() lingers until its queue has
 * drained and the peer's FIN came (its data is discarded), as a socket closed
 * after shutdown does; any other open stream is reset at once.
 */
void stream_release(struct stream *st)
{
	struct session *s = st->s;
	bool graceful = st->fin_queued && (st->state == ST_OPEN || st->state == ST_OPENING);

	if (st->released)
		return;
	if (s->zombie) { /* session_free() ran: this was one of the streams it left to the app */
		stream_free(st);
		if (!--s->zombie)
			session_destroy(s);
		return;
	}
	if (st->state == ST_PENDING)
		stream_refuse_frame(st, -ECANCELED, "cancelled");
	else if (st->state != ST_DEAD && !graceful)
		stream_reset(st, -ECANCELED);
	st->released = true;
	/* Bytes still buffered are dropped: give their credit back. */
	if (st->recv_buffered)
		stream_consumed(st, (size_t)st->recv_buffered);
	if (st->state == ST_DEAD) {
		list_del(&st->node);
		list_add_tail(&s->dead, &st->node);
	}
	session_reap(s);
}

uint32_t stream_id(const struct stream *st)
{
	return st->id;
}

uint16_t stream_flags(const struct stream *st)
{
	return st->flags;
}

uint16_t stream_kind(const struct stream *st)
{
	return st->kind;
}

const char *stream_reset_reason(const struct stream *st, int err)
{
	if (st->s->close_notified)
		return st->s->close_reason;
	/* A relay passes on its other session's end as SHUTDOWN (the agent's stop). */
	if (err_to_wire(err) == VB_WERR_SHUTDOWN)
		return "the far end is shutting down";
	return NULL;
}

struct session *stream_session(const struct stream *st)
{
	return st->s;
}

void *stream_ctx(const struct stream *st)
{
	return st->ctx;
}

void stream_set_ctx(struct stream *st, void *ctx)
{
	st->ctx = ctx;
}

void stream_set_ops(struct stream *st, const struct stream_ops *ops, void *ctx)
{
	st->ops = ops;
	st->ctx = ctx;
}

size_t stream_queued(const struct stream *st)
{
	return st->queued;
}

bool stream_writable(struct stream *st)
{
	struct session *s = st->s;

	if (st->state == ST_DEAD || st->charged >= s->cfg.sendq_low)
		return false;
	/*
	 * Room, and no stream in line for it ahead of st: otherwise the streams
	 * whose writes just went out would take the room again and again.
	 */
	if (s->queued < s->cfg.sendq_cap && (list_empty(&s->waiters) || s->waking == st))
		return true;
	stream_wait_room(st);
	return false;
}

void stream_reserve(struct stream *st, size_t n)
{
	if (st->state == ST_DEAD)
		return;
	st->reserved += n;
	st->s->queued += n;
}

void stream_unreserve(struct stream *st)
{
	struct session *s = st->s;

	if (!st->reserved)
		return;
	s->queued -= st->reserved;
	st->reserved = 0;
	session_wake_waiters(s);
}

uint32_t stream_send_credit(const struct stream *st)
{
	return st->send_credit;
}

uint32_t stream_recv_window(const struct stream *st)
{
	return st->recv_win;
}
