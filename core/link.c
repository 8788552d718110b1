/* A link: reads a channel descriptor into chunks, feeds its session, writes the session's batches.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/link.h"
#include "core/err.h"
#include "core/log.h"
#include "platform/transport.h"

/*
 * Theory of operation
 *
 * A link owns a descriptor and a session and keeps at most one read, one
 * write, one flush timer and one keepalive timer in flight.
 *
 * Receive: read into the free tail of the current chunk; hand the session
 * the unparsed bytes; DATA payloads are passed on inside the chunk (each user
 * takes its own reference). Read lengths are chosen so that frames never
 * straddle chunks (link_rx_room()): nothing is copied in user space.
 *
 * Send: when the session signals output, one batch is taken and written with
 * writev, short writes continuing where they stopped; the next batch is taken
 * when the write completes. Output signalled while no write runs is flushed
 * from a zero-length timer, so the session is never re-entered from its own
 * callback.
 *
 * States: RUN -> DRAIN (flush what is queued, e.g. a GOAWAY, for at most
 * LINK_DRAIN_NS: a peer that does not read cannot keep a finished session's
 * memory and descriptor) -> CLOSED (read cancelled, a write still stuck is
 * cancelled; when nothing is in flight the descriptor is closed and the link
 * freed).
 */

#define LINK_MAX_IOV  64
#define LINK_DRAIN_NS (1000ull * 1000 * 1000)

enum link_state { LINK_RUN, LINK_DRAIN, LINK_CLOSED };

struct link {
	struct list set_node; /* in cfg.set, when there is one */
	struct loop *loop;
	struct chunk_pool *pool;
	pl_fd fd;
	struct session *s;
	const struct link_ops *ops;
	void *app;
	struct link_config cfg;
	enum link_state state;
	int inflight;
	bool closed_cb;
	/* receive */
	struct loop_req rreq;
	struct chunk *rc;
	size_t rfill, rparsed, rwant;
	/* send */
	struct loop_req wreq;
	bool writing;
	struct vb_iov iov[LINK_MAX_IOV];
	int iovcnt, iovpos;
	/* timers */
	struct loop_req flush_req;
	bool flush_pending;
	struct loop_req ka_req;
	bool ka_armed;
	struct loop_req drain_req;
	uint64_t last_rx_ns;
};

static void link_read_start(struct link *lk);
static void link_flush(struct link *lk);
static void link_finish(struct link *lk);

void link_config_defaults(struct link_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	session_config_defaults(&cfg->session);
	cfg->session.now_ns = clock_now_ns;
	cfg->keepalive_ms = 5000;
	cfg->dead_ms = 30000;
	cfg->max_write = 1u << 20;
}

struct session *link_session(const struct link *lk)
{
	return lk->s;
}

struct loop *link_loop(const struct link *lk)
{
	return lk->loop;
}

void *link_app(const struct link *lk)
{
	return lk->app;
}

void link_set_app(struct link *lk, void *app)
{
	lk->app = app;
}

/* Frees the link once nothing is in flight. */
static void link_maybe_free(struct link *lk)
{
	if (lk->state != LINK_CLOSED || lk->inflight)
		return;
	transport_close_fd(lk->fd);
	if (lk->rc)
		chunk_put(lk->rc);
	session_free(lk->s);
	if (lk->cfg.set) {
		list_del(&lk->set_node);
		atomic_fetch_sub(&lk->cfg.set->n, 1);
	}
	if (lk->ops->on_freed)
		lk->ops->on_freed(lk->app);
	free(lk);
}

/* Stops all I/O; the link is freed when the last completion arrives. */
static void link_finish(struct link *lk)
{
	if (lk->state == LINK_CLOSED)
		return;
	lk->state = LINK_CLOSED;
	if (lk->inflight) {
		loop_cancel(lk->loop, &lk->rreq);
		loop_cancel(lk->loop, &lk->wreq);
		loop_cancel(lk->loop, &lk->flush_req);
		loop_cancel(lk->loop, &lk->ka_req);
		loop_cancel(lk->loop, &lk->drain_req);
	}
	link_maybe_free(lk);
}

/* DRAIN took too long: the peer does not take what is left; give it up. */
static void link_drain_cb(struct loop_req *r, int res)
{
	struct link *lk = r->data;

	lk->inflight--;
	if (lk->state == LINK_DRAIN)
		link_finish(lk);
	else
		link_maybe_free(lk);
}

/* Enters DRAIN: what is queued (a GOAWAY) still goes out, for at most LINK_DRAIN_NS. */
static void link_drain(struct link *lk)
{
	if (lk->state != LINK_RUN)
		return;
	lk->state = LINK_DRAIN;
	loop_cancel(lk->loop, &lk->rreq);
	if (lk->ka_armed)
		loop_cancel(lk->loop, &lk->ka_req);
	lk->inflight++;
	lk->drain_req.data = lk;
	if (loop_timer(lk->loop, &lk->drain_req, LINK_DRAIN_NS, link_drain_cb))
		lk->inflight--;
	link_flush(lk);
}

/* ---- session callbacks ---- */

static void link_on_ready(struct session *s)
{
	struct link *lk = session_app(s);

	if (lk->ops->on_ready)
		lk->ops->on_ready(lk);
}

static void link_on_open(struct session *s, struct stream *st, uint16_t kind, uint16_t flags,
			 const uint8_t *req, size_t len)
{
	struct link *lk = session_app(s);

	if (lk->ops->on_open)
		lk->ops->on_open(lk, st, kind, flags, req, len);
	else
		stream_refuse(st, -EOPNOTSUPP, "this side opens no streams");
}

static void link_flush_cb(struct loop_req *r, int res)
{
	struct link *lk = r->data;

	lk->inflight--;
	lk->flush_pending = false;
	if (lk->state != LINK_CLOSED)
		link_flush(lk);
	link_maybe_free(lk);
}

/* Output waits: flush soon, from the loop, never from inside the session. */
static void link_on_output(struct session *s)
{
	struct link *lk = session_app(s);

	if (lk->writing || lk->flush_pending || lk->state == LINK_CLOSED)
		return;
	lk->flush_pending = true;
	lk->inflight++;
	lk->flush_req.data = lk;
	if (loop_timer(lk->loop, &lk->flush_req, 0, link_flush_cb)) {
		lk->flush_pending = false;
		lk->inflight--;
	}
}

static void link_on_pong(struct session *s, uint64_t rtt_ns)
{
	struct link *lk = session_app(s);

	if (lk->ops->on_pong)
		lk->ops->on_pong(lk, rtt_ns);
}

static void link_on_close(struct session *s, int err, const char *reason)
{
	struct link *lk = session_app(s);

	if (lk->closed_cb)
		return;
	lk->closed_cb = true;
	if (lk->ops->on_close)
		lk->ops->on_close(lk, err, reason);
}

static const struct session_ops link_session_ops = {
    .on_ready = link_on_ready,
    .on_open = link_on_open,
    .on_output = link_on_output,
    .on_pong = link_on_pong,
    .on_close = link_on_close,
};

/* ---- send ---- */

static void link_write_cb(struct loop_req *r, int res);

static void link_write_more(struct link *lk)
{
	struct vb_iov *iov = &lk->iov[lk->iovpos];
	int n = lk->iovcnt - lk->iovpos;
	size_t budget = lk->cfg.max_write, total = 0;
	int k;

	/* Respect the transport's largest write by passing fewer elements. */
	for (k = 0; k < n && total < budget; k++)
		total += iov[k].len;
	lk->writing = true;
	lk->inflight++;
	lk->wreq.data = lk;
	if (loop_writev(lk->loop, &lk->wreq, lk->fd, iov, k, link_write_cb)) {
		lk->writing = false;
		lk->inflight--;
		session_abort(lk->s, -EIO, "cannot submit a write");
		link_finish(lk);
	}
}

/* Advances the iov past res written bytes; returns true when all is written. */
static bool link_iov_advance(struct link *lk, size_t res)
{
	while (lk->iovpos < lk->iovcnt && res >= lk->iov[lk->iovpos].len)
		res -= lk->iov[lk->iovpos++].len;
	if (lk->iovpos < lk->iovcnt) {
		lk->iov[lk->iovpos].base = (uint8_t *)lk->iov[lk->iovpos].base + res;
		lk->iov[lk->iovpos].len -= res;
		return false;
	}
	return true;
}

static void link_write_cb(struct loop_req *r, int res)
{
	struct link *lk = r->data;

	lk->inflight--;
	lk->writing = false;
	if (lk->state == LINK_CLOSED) {
		link_maybe_free(lk);
		return;
	}
	if (res <= 0) {
		char why[96];

		snprintf(why, sizeof(why), "channel write failed: %s",
			 res ? strerror(-res) : "no progress");
		session_abort(lk->s, res ? res : -EIO, why);
		link_finish(lk);
		return;
	}
	if (!link_iov_advance(lk, (size_t)res)) {
		link_write_more(lk);
		return;
	}
	session_output_done(lk->s);
	lk->iovcnt = 0;
	link_flush(lk);
}

/* Starts writing the next batch unless a write is in flight. */
static void link_flush(struct link *lk)
{
	int n;

	if (lk->writing || lk->state == LINK_CLOSED)
		return;
	n = session_output(lk->s, lk->iov, LINK_MAX_IOV);
	if (n <= 0) {
		if (lk->state == LINK_DRAIN)
			link_finish(lk);
		return;
	}
	lk->iovcnt = n;
	lk->iovpos = 0;
	link_write_more(lk);
}

/* ---- receive ---- */

/*
 * Chooses where the next read goes and how long it may be, so that no frame
 * ever straddles two chunks. A frame that starts at or before limit (the
 * chunk's size less the largest frame) always fits, so free reads stop at
 * limit; past it, a read takes exactly the rest of the current frame, and
 * the next frame starts in a fresh chunk. Returns 0 or -ENOMEM.
 */
static int link_rx_room(struct link *lk)
{
	struct chunk *c = lk->rc;
	size_t rem = lk->rfill - lk->rparsed;
	size_t limit = c->size - ((size_t)lk->cfg.session.max_frame + FRAME_HDR_LEN);

	if (!rem && (c->refs == 1 || lk->rfill >= limit)) {
		if (c->refs > 1) { /* payloads here are still held downstream */
			c = chunk_get(lk->pool);
			if (!c)
				return -ENOMEM;
			chunk_put(lk->rc);
			lk->rc = c;
		}
		lk->rfill = lk->rparsed = 0;
	}
	if (lk->rfill < limit)
		lk->rwant = limit - lk->rfill;
	else
		lk->rwant =
		    lk->rparsed + session_input_need(c->data + lk->rparsed, rem) - lk->rfill;
	return 0;
}

static void link_read_cb(struct loop_req *r, int res)
{
	struct link *lk = r->data;
	size_t used = 0;
	int ret;

	lk->inflight--;
	if (lk->state != LINK_RUN) {
		if (lk->state == LINK_CLOSED)
			link_maybe_free(lk);
		return;
	}
	if (res <= 0) {
		char why[96];

		snprintf(why, sizeof(why), "channel read failed: %s", strerror(-res));
		session_abort(lk->s, res ? res : -ECONNRESET,
			      res ? why : "channel closed by the peer");
		link_finish(lk);
		return;
	}
	lk->last_rx_ns = clock_now_ns();
	lk->rfill += (size_t)res;
	ret = session_input(lk->s, lk->rc, lk->rc->data + lk->rparsed, lk->rfill - lk->rparsed,
			    &used);
	lk->rparsed += used;
	if (ret) {
		/* A protocol error or the peer's GOAWAY: on_close has run. Flush, then close. */
		link_drain(lk);
		return;
	}
	if (link_rx_room(lk)) {
		session_abort(lk->s, -ENOMEM, "out of memory for receive buffers");
		link_finish(lk);
		return;
	}
	link_read_start(lk);
}

static void link_read_start(struct link *lk)
{
	lk->inflight++;
	lk->rreq.data = lk;
	if (loop_read(lk->loop, &lk->rreq, lk->fd, lk->rc->data + lk->rfill, lk->rwant,
		      link_read_cb)) {
		lk->inflight--;
		session_abort(lk->s, -EIO, "cannot submit a read");
		link_finish(lk);
	}
}

/* ---- keepalive ---- */

static void link_ka_arm(struct link *lk);

static void link_ka_cb(struct loop_req *r, int res)
{
	struct link *lk = r->data;
	uint64_t idle;

	lk->inflight--;
	lk->ka_armed = false;
	if (lk->state != LINK_RUN) {
		link_maybe_free(lk);
		return;
	}
	idle = clock_now_ns() - lk->last_rx_ns;
	if (lk->cfg.dead_ms && idle > (uint64_t)lk->cfg.dead_ms * 1000000ull) {
		session_abort(lk->s, -ETIMEDOUT, "peer not responding (keepalive timeout)");
		link_finish(lk);
		return;
	}
	session_ping(lk->s);
	log_tick(); /* a flood that stopped still gets its "N more suppressed" line */
	link_ka_arm(lk);
}

static void link_ka_arm(struct link *lk)
{
	if (!lk->cfg.keepalive_ms)
		return;
	lk->inflight++;
	lk->ka_armed = true;
	lk->ka_req.data = lk;
	if (loop_timer(lk->loop, &lk->ka_req, (uint64_t)lk->cfg.keepalive_ms * 1000000ull,
		       link_ka_cb)) {
		lk->inflight--;
		lk->ka_armed = false;
	}
}

/* ---- public ---- */

int link_new(struct link **out, struct loop *l, struct chunk_pool *pool, pl_fd fd,
	     const struct link_config *cfg, const struct link_ops *ops, void *app)
{
	struct link *lk = calloc(1, sizeof(*lk));
	int ret = -ENOMEM;

	if (!lk)
		goto fail;
	lk->loop = l;
	lk->pool = pool;
	lk->fd = fd;
	lk->ops = ops;
	lk->app = app;
	lk->cfg = *cfg;
	lk->cfg.session.pool = pool;
	/* Frames of at most a third of a chunk keep reads long (see link_rx_room()). */
	if (lk->cfg.session.max_frame > pool->chunk_size / 3)
		lk->cfg.session.max_frame = (uint32_t)(pool->chunk_size / 3);
	lk->rc = chunk_get(pool);
	if (!lk->rc)
		goto fail;
	lk->rwant = lk->rc->size - (lk->cfg.session.max_frame + FRAME_HDR_LEN);
	ret = session_new(&lk->s, &lk->cfg.session, &link_session_ops, lk);
	if (ret)
		goto fail;
	lk->last_rx_ns = clock_now_ns();
	if (lk->cfg.set) {
		list_add_tail(&lk->cfg.set->links, &lk->set_node);
		atomic_fetch_add(&lk->cfg.set->n, 1);
	}
	link_read_start(lk);
	link_ka_arm(lk);
	link_on_output(lk->s);
	*out = lk;
	/* Accepted or dialled while its process says goodbye: it hears the same. */
	if (lk->cfg.set && lk->cfg.set->closing)
		link_shutdown(lk, lk->cfg.set->bye_code, lk->cfg.set->bye_reason);
	return 0;
fail:
	if (lk && lk->rc)
		chunk_put(lk->rc);
	free(lk);
	transport_close_fd(fd);
	return ret;
}

int link_ping(struct link *lk)
{
	return session_ping(lk->s);
}

void link_shutdown(struct link *lk, uint32_t wire_code, const char *reason)
{
	if (lk->state != LINK_RUN)
		return;
	session_goaway(lk->s, wire_code, reason);
	session_abort(lk->s, -ESHUTDOWN, reason);
	link_drain(lk);
}

void link_set_init(struct link_set *set)
{
	list_init(&set->links);
	atomic_init(&set->n, 0);
	set->closing = false;
}

void link_set_shutdown(struct link_set *set, uint32_t wire_code, const char *reason)
{
	struct list todo;

	/*
	 * A shutdown runs on_close, which may free links, this one or others.
	 * Each link is moved back to the set just before its own shutdown: a
	 * link freed meanwhile leaves whichever list it is on, and a link made
	 * meanwhile is shut down by link_new() (set->closing). Newest first:
	 * the daemon's CLI clients hear the GOAWAY's reason before their VM's
	 * session ends under their streams.
	 */
	set->closing = true;
	set->bye_code = wire_code;
	snprintf(set->bye_reason, sizeof(set->bye_reason), "%s", reason);
	list_init(&todo);
	while (!list_empty(&set->links)) {
		struct list *n = set->links.next;

		list_del(n);
		list_add_tail(&todo, n);
	}
	while (!list_empty(&todo)) {
		struct list *n = todo.prev;

		list_del(n);
		list_add_tail(&set->links, n);
		link_shutdown(list_entry(n, struct link, set_node), wire_code, reason);
	}
}
