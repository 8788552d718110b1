/* The FILE stream, agent side: write what the host sends (PUT), send what it asks for (GET). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "exec/cp.h"
#include "exec/cp_msg.h"
#include "exec/cp_recv.h"
#include "exec/cp_send.h"
#include "core/err.h"
#include "core/log.h"
#include "core/rec.h"
#include "platform/sys.h"

/*
 * Theory of operation
 *
 * One cp_srv per FILE stream. PUT: a receiver (exec/cp_recv.c) writes under
 * the destination; it is opened before the stream is accepted, so a missing
 * destination is a REFUSE with its reason. Its failures go back as RESULT
 * records; when the host's DONE came and every entry is settled, the
 * receiver's DONE and FIN follow. GET: a sender (exec/cp_send.c) walks the
 * sources and streams them; its failures go out as RESULT records in line,
 * and it ends with DONE and FIN itself. The host sends nothing on a GET
 * stream but its FIN.
 *
 * Events: stream data, FIN, reset (the host gave up, or the session is
 * gone: an unfinished file is removed), writable; the receiver's and the
 * sender's callbacks.
 *
 * The cp_srv is freed when its stream is released, as the last step of the
 * event handler that released it (or at once from a callback of the sender
 * or receiver, which guard their own memory).
 */

struct cp_srv {
	struct loop *loop;
	struct stream *st;
	struct cp_req req;
	void *req_mem;
	struct cp_send *snd;
	struct cp_recv *rcv;
	bool released;
	int depth;
};

static void cp_srv_free_maybe(struct cp_srv *x)
{
	if (!x->released || x->depth)
		return;
	free(x->req_mem);
	free(x);
}

/* Ends the copy: the sender or receiver stops (a receiver removes its unfinished file). */
static void cp_srv_release(struct cp_srv *x, int err)
{
	if (x->released)
		return;
	x->released = true;
	if (x->snd)
		cp_send_close(x->snd);
	if (x->rcv)
		cp_recv_close(x->rcv);
	x->snd = NULL;
	x->rcv = NULL;
	if (err)
		stream_reset(x->st, err);
	stream_release(x->st);
	x->st = NULL;
}

/* Tells the host about an entry that failed here. */
static void cp_srv_result(void *arg, const char *path, int err, const char *text)
{
	struct cp_srv *x = arg;
	uint8_t b[REC_CONTROL_MAX];
	int n;

	vb_dbg("cp: %s: %s", path, text ? text : sys_strerror(err));
	if (x->released)
		return;
	n = cp_result_encode(err_to_wire(err), path, text ? text : sys_strerror(err), b, sizeof(b));
	if (n > 0)
		rec_write_copy(x->st, CP_REC_RESULT, b, (size_t)n);
}

/* ---- PUT ---- */

static int cp_srv_record(void *arg, uint8_t type, const uint8_t *p, size_t n)
{
	struct cp_total t;

	return type == CP_REC_TOTAL ? cp_total_decode(p, n, &t) : -EPROTO;
}

static void cp_srv_recv_done(void *arg, const struct cp_done *sender)
{
	struct cp_srv *x = arg;
	uint8_t b[CP_DONE_LEN];
	struct cp_done d;

	cp_recv_stats(x->rcv, &d);
	vb_info("cp: wrote %llu entries, %llu bytes, %llu failed under %s",
		(unsigned long long)d.entries, (unsigned long long)d.bytes,
		(unsigned long long)d.failed, x->req.paths[0]);
	cp_done_encode(&d, b);
	rec_write_copy(x->st, CP_REC_DONE, b, sizeof(b));
	stream_shutdown(x->st);
	cp_srv_release(x, 0);
	cp_srv_free_maybe(x);
}

static const struct cp_recv_ops cp_srv_recv_ops = {
    .on_result = cp_srv_result,
    .on_record = cp_srv_record,
    .on_done = cp_srv_recv_done,
};

/* ---- GET ---- */

static void cp_srv_send_done(void *arg)
{
	struct cp_srv *x = arg;

	vb_dbg("cp: sent %u source(s) starting with %s", x->req.count, x->req.paths[0]);
	cp_srv_release(x, 0); /* FIN is queued: the stream drains on its own */
	cp_srv_free_maybe(x);
}

static const struct cp_send_ops cp_srv_send_ops = {
    .on_error = cp_srv_result,
    .on_done = cp_srv_send_done,
};

/* ---- the stream ---- */

static void cp_srv_on_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct cp_srv *x = stream_ctx(st);
	int ret = -EPROTO;

	x->depth++;
	if (x->rcv)
		ret = cp_recv_feed(x->rcv, c, p, len);
	if (ret) {
		vb_info("cp: the host broke the FILE protocol: %s", sys_strerror(ret));
		cp_srv_release(x, ret);
	}
	x->depth--;
	cp_srv_free_maybe(x);
}

static void cp_srv_on_fin(struct stream *st)
{
	struct cp_srv *x = stream_ctx(st);

	x->depth++;
	if (x->rcv && cp_recv_fin(x->rcv))
		cp_srv_release(x, -ECANCELED); /* the host stopped midway */
	x->depth--;
	cp_srv_free_maybe(x);
}

static void cp_srv_on_reset(struct stream *st, int err)
{
	struct cp_srv *x = stream_ctx(st);

	vb_dbg("cp: the stream was reset: %s", sys_strerror(err));
	cp_srv_release(x, 0);
	cp_srv_free_maybe(x);
}

static void cp_srv_on_writable(struct stream *st)
{
	struct cp_srv *x = stream_ctx(st);

	if (x->snd)
		cp_send_writable(x->snd);
}

static const struct stream_ops cp_srv_ops = {
    .on_data = cp_srv_on_data,
    .on_fin = cp_srv_on_fin,
    .on_reset = cp_srv_on_reset,
    .on_writable = cp_srv_on_writable,
};

/* PUT: the destination is opened first, so that a bad one is refused with its reason. */
static int cp_srv_put(struct cp_srv *x, char *why, size_t whylen)
{
	struct cp_recv_opts o = {
	    .loop = x->loop,
	    .flags = x->req.flags,
	    .dst = x->req.paths[0],
	    .mode_mask = x->req.flags & CP_F_PRESERVE ? 07777u : 0777u,
	};

	return cp_recv_new(&x->rcv, &o, &cp_srv_recv_ops, x, why, whylen);
}

static int cp_srv_get(struct cp_srv *x)
{
	struct cp_send_opts o = {
	    .loop = x->loop,
	    .st = x->st,
	    .flags = x->req.flags,
	    .srcs = x->req.paths,
	    .nsrc = x->req.count,
	};

	return cp_send_start(&x->snd, &o, &cp_srv_send_ops, x);
}

static const uint8_t cp_srv_no_reply[1];

void cp_serve(struct loop *l, struct stream *st, const uint8_t *req, size_t len)
{
	struct cp_srv *x = calloc(1, sizeof(*x));
	char why[300];
	int ret;

	if (!x) {
		stream_refuse(st, -ENOMEM, "out of memory");
		return;
	}
	x->loop = l;
	x->st = st;
	ret = cp_req_decode(req, len, &x->req, &x->req_mem, why, sizeof(why));
	if (!ret && x->req.dir == CP_PUT)
		ret = cp_srv_put(x, why, sizeof(why));
	if (ret) {
		vb_info("cp refused: %s", why);
		stream_refuse(st, ret, why);
		free(x->req_mem);
		free(x);
		return;
	}
	vb_dbg("cp: %s %s", x->req.dir == CP_PUT ? "writing under" : "sending", x->req.paths[0]);
	ret = stream_accept(st, cp_srv_no_reply, 0, &cp_srv_ops, x);
	if (!ret && x->req.dir == CP_GET)
		ret = cp_srv_get(x);
	if (ret) {
		/* Not accepted (the host gave up) or out of memory: nothing is left running. */
		if (x->rcv)
			cp_recv_close(x->rcv);
		x->rcv = NULL;
		x->released = true;
		if (stream_refuse(st, ret, "cannot start the copy") == -EINVAL) {
			stream_reset(st, ret);
			stream_release(st);
		}
		cp_srv_free_maybe(x);
		return;
	}
	if (x->rcv)
		cp_recv_attach(x->rcv, st);
}
