/* The EXEC stream, agent side: run a program, stream its stdio, report how it ended. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "exec/exec.h"
#include "exec/msg.h"
#include "core/list.h"
#include "core/log.h"
#include "core/rec.h"
#include "core/wire.h"
#include "platform/proc.h"
#include "platform/transport.h"

/*
 * Theory of operation
 *
 * One exec_srv per EXEC stream, on the session's loop. Events: records from
 * the host (STDIN, STDIN_EOF, SIGNAL, RESIZE), readiness of the child's
 * stdout and stderr, the child's exit (pidfd), the timeout, and the stream's
 * end (reset by the host, or its session gone).
 *
 * Output: each of stdout and stderr waits for readiness, then reads once
 * into a fresh chunk and queues it as a record by reference, but only while
 * the stream is writable: a host that does not read stops the child at its
 * pipe, and nothing grows. Idle outputs hold no buffer.
 *
 * Input: STDIN pieces are written to the child's stdin in order, by
 * reference; their credit goes back to the host when each write completes.
 * STDIN_EOF closes the child's stdin once the queued pieces are written.
 *
 * End: when the child has exited and both outputs reached end-of-file (with
 * a pty: the child exited, and the pty has nothing more to read), EXIT is
 * sent, then FIN. If the stream ends first, the child's process group is
 * killed: nothing is left running that nobody owns. The timeout sends
 * SIGTERM, then SIGKILL two seconds later, and reports EXIT kind TIMEOUT.
 *
 * The exec_srv is freed when the stream is released, the child reaped, and
 * no loop request is in flight.
 */

#define EXEC_READ_MAX	   (64u << 10)
#define EXEC_KILL_GRACE_NS (2ull * 1000 * 1000 * 1000)
#define EXEC_TTY_DRAIN_NS  (100ull * 1000 * 1000)

struct exec_in {
	struct list node;
	struct chunk *c;
	const uint8_t *p;
	size_t len;
};

struct exec_out {
	struct exec_srv *x;
	pl_fd fd;
	uint8_t rec;
	struct loop_req poll, read;
	struct chunk *c;
	bool busy; /* a poll or read in flight */
	bool eof;
};

struct exec_srv {
	struct loop *loop;
	struct chunk_pool *pool;
	struct stream *st;
	struct proc proc;
	struct exec_req req;
	void *req_mem;
	struct rec_rd rd;
	int pending; /* loop requests in flight */
	bool released;
	/* stdin */
	struct list inq;
	size_t inq_bytes;
	struct loop_req in_req;
	bool in_busy, in_eof;
	/* stdout, stderr */
	struct exec_out out[2];
	/* exit */
	struct loop_req exit_req, drain_req;
	bool exited, reaped, exit_sent;
	struct proc_status status;
	/* timeout and kill */
	struct loop_req tmo_req;
	bool tmo_armed, timed_out, killing;
};

static void exec_out_arm(struct exec_out *o);
static void exec_try_finish(struct exec_srv *x);

/*
 * Frees x once the stream is released, the child reaped, and nothing is in
 * flight. Called only as the last step of an event handler, never from a
 * helper, so that no caller touches x after it is gone.
 */
static void exec_free_maybe(struct exec_srv *x)
{
	if (x->pending || !x->released || !x->reaped)
		return;
	for (int i = 0; i < 2; i++)
		if (x->out[i].c)
			chunk_put(x->out[i].c);
	while (!list_empty(&x->inq)) {
		struct exec_in *in = list_first(&x->inq, struct exec_in, node);

		list_del(&in->node);
		chunk_put(in->c);
		free(in);
	}
	proc_close(&x->proc);
	free(x->req_mem);
	free(x);
}

/* Drops the stream; the child goes on only when it was detached. */
static void exec_release(struct exec_srv *x)
{
	if (x->released)
		return;
	x->released = true;
	stream_release(x->st);
	x->st = NULL;
	if (!x->exited && !x->killing && !(x->req.flags & EXEC_F_DETACH)) {
		x->killing = true;
		proc_signal(&x->proc, SIGKILL);
	}
	if (x->tmo_armed)
		loop_cancel(x->loop, &x->tmo_req);
	for (int i = 0; i < 2; i++) {
		if (x->out[i].busy) {
			loop_cancel(x->loop, &x->out[i].poll);
			loop_cancel(x->loop, &x->out[i].read);
		}
	}
	if (x->in_busy)
		loop_cancel(x->loop, &x->in_req);
}

/* ---- output ---- */

static void exec_out_read_cb(struct loop_req *r, int res)
{
	struct exec_out *o = r->data;
	struct exec_srv *x = o->x;

	x->pending--;
	o->busy = false;
	if (res > 0 && !x->released)
		rec_write(x->st, o->rec, o->c, o->c->data, (size_t)res);
	chunk_put(o->c);
	o->c = NULL;
	if (res == -EAGAIN || res == -EINTR || (res > 0 && !x->released)) {
		exec_out_arm(o);
	} else {
		/* End-of-file, or EIO from a pty whose last slave closed. */
		o->eof = true;
		exec_try_finish(x);
	}
	exec_free_maybe(x);
}

static void exec_out_poll_cb(struct loop_req *r, int res)
{
	struct exec_out *o = r->data;
	struct exec_srv *x = o->x;

	x->pending--;
	o->busy = false;
	if (x->released) {
		exec_free_maybe(x);
		return;
	}
	o->c = chunk_get(x->pool);
	if (!o->c) {
		exec_out_arm(o);
		return;
	}
	o->busy = true;
	x->pending++;
	o->read.data = o;
	if (loop_read(x->loop, &o->read, o->fd, o->c->data,
		      o->c->size < EXEC_READ_MAX ? o->c->size : EXEC_READ_MAX, exec_out_read_cb)) {
		x->pending--;
		o->busy = false;
		chunk_put(o->c);
		o->c = NULL;
		o->eof = true;
		exec_try_finish(x);
		exec_free_maybe(x);
	}
}

/* Waits for output when the stream has room for it. */
static void exec_out_arm(struct exec_out *o)
{
	struct exec_srv *x = o->x;

	if (o->busy || o->eof || o->fd < 0 || x->released || !stream_writable(x->st))
		return;
	o->busy = true;
	x->pending++;
	o->poll.data = o;
	if (loop_poll(x->loop, &o->poll, o->fd, LOOP_POLL_IN, exec_out_poll_cb)) {
		x->pending--;
		o->busy = false;
		o->eof = true;
	}
}

/* ---- the end ---- */

static void exec_send_exit(struct exec_srv *x)
{
	struct exec_exit e = {0};
	uint8_t b[3];

	if (x->timed_out) {
		e.kind = EXEC_TIMEOUT;
	} else if (x->status.kind == PROC_SIGNALED) {
		e.kind = EXEC_SIGNALED;
		e.code = (uint8_t)x->status.code;
		e.core = x->status.core;
	} else {
		e.code = (uint8_t)x->status.code;
	}
	exec_exit_encode(&e, b);
	rec_write_copy(x->st, EXEC_REC_EXIT, b, sizeof(b));
	stream_shutdown(x->st);
	x->exit_sent = true;
	vb_dbg("exec %s (pid %d): %s %d", x->req.argv[0], x->proc.pid,
	       e.kind == EXEC_EXITED	 ? "exited"
	       : e.kind == EXEC_SIGNALED ? "killed by"
					 : "timed out",
	       e.code);
	exec_release(x);
}

static void exec_try_finish(struct exec_srv *x)
{
	if (x->exit_sent || x->released || !x->reaped)
		return;
	/*
	 * With a pty, background children may hold it open forever: the drain
	 * timer ends the wait 100 ms after the exit (exec_tty_drain_cb).
	 */
	if (!x->out[0].eof || !x->out[1].eof)
		return;
	exec_send_exit(x);
}

static void exec_tty_drain_cb(struct loop_req *r, int res)
{
	struct exec_srv *x = r->data;

	x->pending--;
	x->out[0].eof = true;
	exec_try_finish(x);
	exec_free_maybe(x);
}

static void exec_exit_cb(struct loop_req *r, int res)
{
	struct exec_srv *x = r->data;

	x->pending--;
	if (proc_reap(&x->proc, &x->status)) {
		/* Spurious: watch again. */
		x->pending++;
		if (proc_watch(x->loop, &x->exit_req, &x->proc, exec_exit_cb))
			x->pending--;
		return;
	}
	x->exited = x->reaped = true;
	if (x->tmo_armed)
		loop_cancel(x->loop, &x->tmo_req);
	if (x->proc.tty && !x->released) {
		x->pending++;
		x->drain_req.data = x;
		if (loop_timer(x->loop, &x->drain_req, EXEC_TTY_DRAIN_NS, exec_tty_drain_cb))
			x->pending--;
	}
	exec_try_finish(x);
	exec_free_maybe(x);
}

static void exec_tmo_cb(struct loop_req *r, int res)
{
	struct exec_srv *x = r->data;

	x->pending--;
	x->tmo_armed = false;
	if (res == 0 && !x->exited) {
		if (!x->timed_out) {
			x->timed_out = true;
			proc_signal(&x->proc, SIGTERM);
			x->tmo_armed = true;
			x->pending++;
			if (loop_timer(x->loop, &x->tmo_req, EXEC_KILL_GRACE_NS, exec_tmo_cb)) {
				x->tmo_armed = false;
				x->pending--;
			}
		} else {
			proc_signal(&x->proc, SIGKILL);
		}
	}
	exec_free_maybe(x);
}

/* ---- input ---- */

static void exec_in_next(struct exec_srv *x);

/* Drops n bytes of the head piece (written, or discarded) and gives back their credit. */
static void exec_in_done(struct exec_srv *x, size_t n)
{
	struct exec_in *in = list_first(&x->inq, struct exec_in, node);

	in->p += n;
	in->len -= n;
	x->inq_bytes -= n;
	if (!x->released)
		stream_consumed(x->st, n);
	if (in->len)
		return;
	list_del(&in->node);
	chunk_put(in->c);
	free(in);
}

static void exec_in_cb(struct loop_req *r, int res)
{
	struct exec_srv *x = r->data;

	x->pending--;
	x->in_busy = false;
	if (res > 0) {
		exec_in_done(x, (size_t)res);
	} else {
		/* The child closed its stdin (EPIPE): what else comes is dropped. */
		x->in_eof = true;
		while (!list_empty(&x->inq))
			exec_in_done(x, list_first(&x->inq, struct exec_in, node)->len);
	}
	exec_in_next(x);
	exec_free_maybe(x);
}

/* Writes the next queued piece to the child's stdin, or closes it after STDIN_EOF. */
static void exec_in_next(struct exec_srv *x)
{
	struct exec_in *in;

	if (x->in_busy || x->proc.in < 0)
		return;
	if (list_empty(&x->inq)) {
		if (x->in_eof && !x->proc.tty) {
			transport_close_fd(x->proc.in);
			x->proc.in = -1;
		}
		return;
	}
	in = list_first(&x->inq, struct exec_in, node);
	x->in_busy = true;
	x->pending++;
	x->in_req.data = x;
	if (loop_write(x->loop, &x->in_req, x->proc.in, in->p, in->len, exec_in_cb)) {
		x->in_busy = false;
		x->pending--;
	}
}

static int exec_on_record(void *arg, uint8_t type, struct chunk *c, const uint8_t *p, size_t n,
			  bool first, bool last)
{
	struct exec_srv *x = arg;
	struct exec_in *in;

	switch (type) {
	case EXEC_REC_STDIN:
		if (!n)
			return 0;
		if (x->in_eof || x->proc.in < 0)
			return 0; /* nowhere to go: consumed with the record */
		in = calloc(1, sizeof(*in));
		if (!in)
			return -ENOMEM;
		chunk_ref(c);
		in->c = c;
		in->p = p;
		in->len = n;
		list_add_tail(&x->inq, &in->node);
		x->inq_bytes += n;
		exec_in_next(x);
		return 0;
	case EXEC_REC_STDIN_EOF:
		x->in_eof = true;
		exec_in_next(x);
		return 0;
	case EXEC_REC_SIGNAL:
		return n == 1 ? proc_signal(&x->proc, p[0]) : -EPROTO;
	case EXEC_REC_RESIZE:
		if (n != 4)
			return -EPROTO;
		proc_resize(&x->proc, (uint16_t)(p[0] << 8 | p[1]), (uint16_t)(p[2] << 8 | p[3]));
		return 0;
	default:
		return -EPROTO;
	}
}

/* ---- the stream ---- */

static void exec_on_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct exec_srv *x = stream_ctx(st);
	size_t before = x->inq_bytes;
	int ret = rec_rd_feed(&x->rd, c, p, len, exec_on_record, x);

	if (ret) {
		stream_reset(st, ret);
		exec_release(x);
		exec_free_maybe(x);
		return;
	}
	/* What went to the stdin queue comes back as credit when it is written. */
	stream_consumed(st, len - (x->inq_bytes - before));
}

static void exec_on_fin(struct stream *st)
{
	struct exec_srv *x = stream_ctx(st);

	x->in_eof = true;
	exec_in_next(x);
}

static void exec_on_reset(struct stream *st, int err)
{
	struct exec_srv *x = stream_ctx(st);

	exec_release(x);
	exec_free_maybe(x);
}

static void exec_on_writable(struct stream *st)
{
	struct exec_srv *x = stream_ctx(st);

	exec_out_arm(&x->out[0]);
	exec_out_arm(&x->out[1]);
}

static const struct stream_ops exec_srv_ops = {
    .on_data = exec_on_data,
    .on_fin = exec_on_fin,
    .on_reset = exec_on_reset,
    .on_writable = exec_on_writable,
};

/* Answers a request that cannot run: 127 for a missing program, as shells do. */
static void exec_refuse(struct stream *st, int err, const char *why)
{
	vb_info("exec refused: %s", why);
	stream_refuse(st, err, why);
}

/* Starts the child's watchers: outputs, exit, timeout. */
static void exec_start(struct exec_srv *x)
{
	x->out[0] = (struct exec_out){.x = x, .fd = x->proc.out, .rec = EXEC_REC_STDOUT};
	x->out[1] = (struct exec_out){.x = x, .fd = x->proc.err, .rec = EXEC_REC_STDERR};
	x->out[1].eof = x->proc.err < 0;
	exec_out_arm(&x->out[0]);
	exec_out_arm(&x->out[1]);
	x->pending++;
	x->exit_req.data = x;
	if (proc_watch(x->loop, &x->exit_req, &x->proc, exec_exit_cb))
		x->pending--;
	if (x->req.timeout_ms) {
		x->tmo_armed = true;
		x->pending++;
		x->tmo_req.data = x;
		if (loop_timer(x->loop, &x->tmo_req, (uint64_t)x->req.timeout_ms * 1000000ull,
			       exec_tmo_cb)) {
			x->tmo_armed = false;
			x->pending--;
		}
	}
}

static void exec_spec(const struct exec_req *q, struct proc_spec *sp)
{
	memset(sp, 0, sizeof(*sp));
	sp->argv = q->argv;
	sp->env = q->env;
	sp->cwd = q->cwd;
	sp->user = q->user;
	sp->tty = q->flags & EXEC_F_TTY;
	sp->rows = q->rows ? q->rows : 24;
	sp->cols = q->cols ? q->cols : 80;
	sp->term = q->term;
	sp->stdin_null = q->flags & EXEC_F_STDIN_NULL;
	sp->detach = q->flags & EXEC_F_DETACH;
}

void exec_serve(struct loop *l, struct stream *st, const uint8_t *req, size_t len)
{
	struct exec_srv *x = calloc(1, sizeof(*x));
	struct proc_spec sp;
	uint8_t pid[4];
	char why[256];
	int ret;

	if (!x) {
		stream_refuse(st, -ENOMEM, "out of memory");
		return;
	}
	x->loop = l;
	x->pool = session_pool(stream_session(st));
	x->st = st;
	list_init(&x->inq);
	rec_rd_init(&x->rd);
	ret = exec_req_decode(req, len, &x->req, &x->req_mem, why, sizeof(why));
	if (!ret) {
		exec_spec(&x->req, &sp);
		ret = proc_spawn(&sp, &x->proc, why, sizeof(why));
	}
	if (ret) {
		/* Only a failed execve is the program's (127/126); a bad cwd or user is ours. */
		if (!x->proc.exec_failed && ret != -ENOMEM)
			ret = -EINVAL;
		exec_refuse(st, ret, why);
		free(x->req_mem);
		free(x);
		return;
	}
	vb_dbg("exec %s: pid %d%s", x->req.argv[0], x->proc.pid, sp.tty ? " with a pty" : "");
	wire_put_u32(pid, (uint32_t)x->proc.pid);
	if (stream_accept(st, pid, sizeof(pid), &exec_srv_ops, x)) {
		x->st = NULL;
		x->released = true;
		proc_signal(&x->proc, SIGKILL);
	}
	if (sp.detach) {
		/* Nobody waits for it: the pid was the answer. */
		x->reaped = true;
		if (x->st) {
			stream_shutdown(x->st);
			stream_release(x->st);
		}
		x->st = NULL;
		x->released = true;
		exec_free_maybe(x);
		return;
	}
	exec_start(x);
}
