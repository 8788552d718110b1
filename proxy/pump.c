/* The proxy's data path: socket to stream and stream to socket, by chunk reference. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/pump.h"
#include "core/list.h"
#include "core/log.h"
#include "platform/sys.h"
#include "platform/net.h"

/*
 * Theory of operation
 *
 * Two independent directions on one loop, and no copies:
 *
 * Socket to stream: wait for the socket to be readable, then read into a
 * fresh chunk from the session's pool and queue the bytes on the stream by
 * reference; the session frees the chunk once they are sent. A read that
 * filled the chunk is followed by another read at once (more is likely
 * waiting); otherwise the pump polls first, so an idle connection holds no
 * buffer. Reading stops while the stream's send queue is above its low-water
 * mark and resumes on on_writable: a slow peer slows the socket, and
 * nothing grows. End-of-file becomes the stream's FIN.
 *
 * Stream to socket: received pieces are kept by chunk reference and written
 * with one writev at a time; their credit goes back to the peer as each
 * write completes, so the peer can never have more in flight than the
 * window. The peer's FIN becomes shutdown(SHUT_WR) once the queue is
 * written.
 *
 * End: when both directions have ended with FIN the socket is closed
 * normally. Any error (a socket error, a RESET from the peer, the session's
 * end, pump_abort) aborts both: the stream is reset and the socket closed
 * with an RST, so each side sees what a direct TCP connection would show.
 * The pump frees itself once no loop request is in flight.
 */

#define PUMP_IOV_MAX 16

struct pump_piece {
	struct list node;
	struct chunk *c; /* NULL: p is owned (malloc'ed with the piece) */
	const uint8_t *p;
	size_t len;
};

struct pump {
	struct loop *loop;
	struct chunk_pool *pool;
	struct stream *st;
	pl_fd fd;
	int pending; /* loop requests in flight */
	int err;     /* why it was aborted; 0 while healthy */
	bool ended;  /* on_end is due */
	uint64_t to_stream, to_sock;
	void (*on_end)(void *arg, int err, uint64_t to_stream, uint64_t to_sock);
	void *arg;
	/* socket -> stream */
	struct loop_req rd_poll, rd_req;
	struct chunk *rc;
	bool rd_busy, rd_eof, rd_again;
	/* stream -> socket */
	struct list wq;
	struct loop_req wr_req;
	struct vb_iov iov[PUMP_IOV_MAX];
	bool wr_busy, fin_in, wr_shut;
};

static void pump_rd_arm(struct pump *p);
static void pump_wr_kick(struct pump *p);

static void pump_piece_free(struct pump_piece *pc)
{
	list_del(&pc->node);
	if (pc->c)
		chunk_put(pc->c);
	free(pc);
}

static void pump_free_maybe(struct pump *p)
{
	struct list *pos, *tmp;

	if (!p->ended || p->pending)
		return;
	net_close(p->fd, p->err != 0);
	list_for_each_safe (pos, tmp, &p->wq)
		pump_piece_free(list_entry(pos, struct pump_piece, node));
	if (p->rc)
		chunk_put(p->rc);
	if (p->on_end)
		p->on_end(p->arg, p->err, p->to_stream, p->to_sock);
	free(p);
}

/* Drops the stream: it is finished (FIN both ways) or already reset. */
static void pump_drop_stream(struct pump *p)
{
	if (!p->st)
		return;
	stream_unreserve(p->st); /* a read still in flight is the pump's alone now */
	stream_release(p->st);
	p->st = NULL;
}

void pump_abort(struct pump *p, int err)
{
	if (p->ended)
		return;
	p->err = err ? err : -ECONNABORTED;
	p->ended = true;
	if (p->st)
		stream_reset(p->st, p->err);
	pump_drop_stream(p);
	if (p->rd_busy) {
		loop_cancel(p->loop, &p->rd_poll);
		loop_cancel(p->loop, &p->rd_req);
	}
	if (p->wr_busy)
		loop_cancel(p->loop, &p->wr_req);
	pump_free_maybe(p);
}

static void pump_check_done(struct pump *p)
{
	if (p->ended || !p->rd_eof || !p->wr_shut)
		return;
	p->ended = true;
	pump_drop_stream(p);
	pump_free_maybe(p);
}

/* ---- socket -> stream ---- */

static void pump_rd_cb(struct loop_req *r, int res)
{
	struct pump *p = r->data;
	struct chunk *c = p->rc;
	size_t want = c->size;
	int ret;

	p->pending--;
	p->rd_busy = false;
	p->rc = NULL;
	if (p->ended) {
		chunk_put(c);
		pump_free_maybe(p);
		return;
	}
	stream_unreserve(p->st); /* what was read is charged by stream_write() below */
	if (res > 0) {
		ret = stream_write(p->st, c, c->data, (size_t)res);
		chunk_put(c);
		if (ret) {
			pump_abort(p, ret);
			return;
		}
		p->to_stream += (uint64_t)res;
		p->rd_again = (size_t)res == want;
		pump_rd_arm(p);
	} else if (res == 0) {
		chunk_put(c);
		p->rd_eof = true;
		stream_shutdown(p->st);
		pump_check_done(p);
	} else if (res == -EAGAIN || res == -EINTR) {
		chunk_put(c);
		p->rd_again = false;
		pump_rd_arm(p);
	} else {
		chunk_put(c);
		pump_abort(p, res);
	}
}

static void pump_rd_read(struct pump *p)
{
	int ret;

	p->rc = chunk_get(p->pool);
	if (!p->rc) {
		pump_abort(p, -ENOMEM);
		return;
	}
	p->rd_busy = true;
	p->pending++;
	p->rd_req.data = p;
	/* Counted against the session's send cap until the read completes (stream_reserve()). */
	stream_reserve(p->st, p->rc->size);
	ret = loop_read(p->loop, &p->rd_req, p->fd, p->rc->data, p->rc->size, pump_rd_cb);
	if (ret) {
		stream_unreserve(p->st);
		p->pending--;
		p->rd_busy = false;
		chunk_put(p->rc);
		p->rc = NULL;
		pump_abort(p, ret);
	}
}

static void pump_rd_poll_cb(struct loop_req *r, int res)
{
	struct pump *p = r->data;

	p->pending--;
	p->rd_busy = false;
	if (p->ended) {
		pump_free_maybe(p);
		return;
	}
	if (res < 0) {
		pump_abort(p, res);
		return;
	}
	/* The session may have filled while the socket was polled: then on_writable re-arms. */
	if (!stream_writable(p->st))
		return;
	pump_rd_read(p);
}

/* Reads more from the socket when the stream has room for it. */
static void pump_rd_arm(struct pump *p)
{
	int ret;

	if (p->rd_busy || p->rd_eof || p->ended || !stream_writable(p->st))
		return;
	if (p->rd_again) {
		pump_rd_read(p);
		return;
	}
	p->rd_busy = true;
	p->pending++;
	p->rd_poll.data = p;
	ret = loop_poll(p->loop, &p->rd_poll, p->fd, LOOP_POLL_IN, pump_rd_poll_cb);
	if (ret) {
		p->pending--;
		p->rd_busy = false;
		pump_abort(p, ret);
	}
}

/* ---- stream -> socket ---- */

/* n bytes of the queue's head were written: drop them and return their credit. */
static void pump_wr_advance(struct pump *p, size_t n)
{
	while (n) {
		struct pump_piece *pc = list_first(&p->wq, struct pump_piece, node);
		size_t k = n < pc->len ? n : pc->len;

		pc->p += k;
		pc->len -= k;
		n -= k;
		if (pc->c)
			stream_consumed(p->st, k);
		if (!pc->len)
			pump_piece_free(pc);
	}
}

static void pump_wr_cb(struct loop_req *r, int res)
{
	struct pump *p = r->data;

	p->pending--;
	p->wr_busy = false;
	if (p->ended) {
		pump_free_maybe(p);
		return;
	}
	if (res < 0 && res != -EAGAIN && res != -EINTR) {
		pump_abort(p, res);
		return;
	}
	if (res > 0) {
		p->to_sock += (uint64_t)res;
		pump_wr_advance(p, (size_t)res);
	}
	pump_wr_kick(p);
}

static void pump_wr_shutdown(struct pump *p)
{
	int ret = net_shutdown_write(p->fd);

	p->wr_shut = true;
	/* The client may have closed already: not an error for the other direction. */
	if (ret && ret != -ENOTCONN)
		vb_dbg("pump: shutdown: %s", sys_strerror(ret));
	pump_check_done(p);
}

static void pump_wr_kick(struct pump *p)
{
	struct list *pos;
	int n = 0, ret;

	if (p->wr_busy || p->ended || p->wr_shut)
		return;
	if (list_empty(&p->wq)) {
		if (p->fin_in)
			pump_wr_shutdown(p);
		return;
	}
	for (pos = p->wq.next; pos != &p->wq && n < PUMP_IOV_MAX; pos = pos->next, n++) {
		struct pump_piece *pc = list_entry(pos, struct pump_piece, node);

		p->iov[n].base = (void *)pc->p;
		p->iov[n].len = pc->len;
	}
	p->wr_busy = true;
	p->pending++;
	p->wr_req.data = p;
	ret = loop_writev(p->loop, &p->wr_req, p->fd, p->iov, n, pump_wr_cb);
	if (ret) {
		p->pending--;
		p->wr_busy = false;
		pump_abort(p, ret);
	}
}

static int pump_wr_queue(struct pump *p, struct chunk *c, const uint8_t *data, size_t len)
{
	struct pump_piece *pc = malloc(sizeof(*pc) + (c ? 0 : len));

	if (!pc)
		return -ENOMEM;
	pc->c = c;
	if (c) {
		chunk_ref(c);
		pc->p = data;
	} else {
		memcpy(pc + 1, data, len);
		pc->p = (const uint8_t *)(pc + 1);
	}
	pc->len = len;
	list_add_tail(&p->wq, &pc->node);
	return 0;
}

/* ---- stream callbacks ---- */

static void pump_on_data(struct stream *st, struct chunk *c, const uint8_t *data, size_t len)
{
	struct pump *p = stream_ctx(st);
	int ret;

	if (p->ended || p->wr_shut) {
		stream_consumed(st, len);
		return;
	}
	ret = pump_wr_queue(p, c, data, len);
	if (ret) {
		stream_consumed(st, len);
		pump_abort(p, ret);
		return;
	}
	pump_wr_kick(p);
}

static void pump_on_fin(struct stream *st)
{
	struct pump *p = stream_ctx(st);

	p->fin_in = true;
	pump_wr_kick(p);
}

static void pump_on_reset(struct stream *st, int err)
{
	struct pump *p = stream_ctx(st);

	pump_abort(p, err ? err : -ECONNRESET);
}

static void pump_on_writable(struct stream *st)
{
	pump_rd_arm(stream_ctx(st));
}

static const struct stream_ops pump_stream_ops = {
    .on_data = pump_on_data,
    .on_fin = pump_on_fin,
    .on_reset = pump_on_reset,
    .on_writable = pump_on_writable,
};

int pump_start(struct pump **out, struct loop *l, pl_fd fd, struct stream *st,
	       const struct pump_opts *o)
{
	struct pump *p = calloc(1, sizeof(*p));
	int ret = 0;

	if (!p) {
		net_close(fd, true);
		stream_reset(st, -ENOMEM);
		stream_release(st);
		return -ENOMEM;
	}
	p->loop = l;
	p->pool = session_pool(stream_session(st));
	p->fd = fd;
	p->st = st;
	list_init(&p->wq);
	if (o) {
		p->on_end = o->on_end;
		p->arg = o->arg;
		if (o->to_sock_len)
			ret = pump_wr_queue(p, NULL, o->to_sock, o->to_sock_len);
		if (!ret && o->to_stream_len)
			ret = stream_write_copy(st, o->to_stream, o->to_stream_len);
	}
	stream_set_ops(st, &pump_stream_ops, p);
	if (ret) {
		p->on_end = NULL;
		pump_abort(p, ret);
		return ret;
	}
	if (out)
		*out = p;
	pump_wr_kick(p);
	pump_rd_arm(p);
	return 0;
}
