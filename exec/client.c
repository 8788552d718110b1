/* The EXEC stream, host side: local stdio and terminal to the remote program and back. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "exec/client.h"
#include "exec/msg.h"
#include "core/kinds.h"
#include "core/list.h"
#include "core/rec.h"
#include "core/strbuf.h"
#include "core/wire.h"
#include "platform/sys.h"

/*
 * Theory of operation
 *
 * States: OPENING (the request is out) -> RUNNING (accepted) -> ENDING (EXIT
 * came, or FIN) -> DONE (local writes drained). A REFUSE ends at once with
 * 127 for a missing program, 126 for one that cannot run, 255 otherwise; a
 * reset (the channel was lost, or the agent gave up) ends with 255.
 *
 * Local stdin is read one chunk at a time while the stream is writable and
 * sent as STDIN records by reference; end-of-file sends STDIN_EOF. Remote
 * STDOUT and STDERR pieces are written to fds 1 and 2 from the receive
 * chunk, in order per fd, and their credit returns when each write is done.
 * In prefix mode (several VMs at once) output is cut into lines, each
 * prefixed with the VM's name.
 *
 * Signals: SIGWINCH sends RESIZE (with -t); SIGINT, SIGTERM and SIGHUP are
 * sent to the remote process group as SIGNAL records, and a second SIGINT
 * within a second sends SIGKILL.
 */

#define EXEC_CLI_READ (32u << 10)
#define EXEC_LINE_MAX (64u << 10)

struct exec_piece {
	struct list node;
	struct chunk *c;
	const uint8_t *p;
	size_t len;
};

struct exec_wq {
	struct exec_cli *x;
	pl_fd fd;
	struct list q;
	struct loop_req req;
	bool busy;
	/* prefix mode: the current partial line */
	struct strbuf line;
	bool cont; /* the last part written ended mid-line */
};

struct exec_cli {
	struct loop *loop;
	struct stream *st;
	struct chunk_pool *pool;
	struct exec_cli_opts o;
	struct rec_rd rd;
	/* local stdin */
	struct loop_req in_req;
	struct chunk *in_c;
	bool in_busy, in_eof;
	/* local outputs */
	struct exec_wq wq[2];
	/* result */
	bool accepted, got_exit, fin, done, failed;
	struct exec_exit exit;
	int status;
	uint32_t pid;
	char why[300];
	int pending;
	size_t queued; /* output bytes waiting for local writes */
};

static void exec_cli_in_arm(struct exec_cli *x);
static void exec_cli_check_done(struct exec_cli *x);

static void exec_cli_fail(struct exec_cli *x, int status, const char *fmt, const char *arg)
{
	if (x->done)
		return;
	snprintf(x->why, sizeof(x->why), fmt, arg);
	x->status = status;
	x->failed = x->why[0] != '\0'; /* an empty reason fails quietly */
	x->done = true;
	if (x->st) {
		stream_release(x->st);
		x->st = NULL;
	}
}

/* ---- output ---- */

static void exec_wq_next(struct exec_wq *w);

static void exec_wq_cb(struct loop_req *r, int res)
{
	struct exec_wq *w = r->data;
	struct exec_cli *x = w->x;
	struct exec_piece *pc = list_first(&w->q, struct exec_piece, node);
	size_t n = res > 0 ? (size_t)res : pc->len;

	x->pending--;
	w->busy = false;
	if (res < 0 && res != -EAGAIN && res != -EINTR && res != -ECANCELED) {
		/*
		 * Our reader went away (`vmbusexec vm yes | head -1`): end the remote
		 * program as ssh does, quietly for a broken pipe.
		 */
		if (x->st)
			stream_reset(x->st, -EPIPE);
		exec_cli_fail(x, 255, res == -EPIPE ? "" : "cannot write output: %s",
			      sys_strerror(res));
	}
	pc->p += n;
	pc->len -= n;
	x->queued -= n;
	if (x->st)
		stream_consumed(x->st, n);
	if (!pc->len) {
		list_del(&pc->node);
		chunk_put(pc->c);
		free(pc);
	}
	exec_wq_next(w);
	exec_cli_check_done(x);
}

static void exec_wq_next(struct exec_wq *w)
{
	struct exec_piece *pc;

	if (w->busy || list_empty(&w->q))
		return;
	pc = list_first(&w->q, struct exec_piece, node);
	w->busy = true;
	w->x->pending++;
	w->req.data = w;
	if (loop_write(w->x->loop, &w->req, w->fd, pc->p, pc->len, exec_wq_cb)) {
		w->busy = false;
		w->x->pending--;
	}
}

/*
 * Prefix mode: whole lines, each behind "name: ", written at once so that
 * lines of several VMs never mix. A line longer than EXEC_LINE_MAX goes out
 * in parts, the later parts without a prefix. Bytes are written as they are,
 * NUL included.
 */
static void exec_wq_emit(struct exec_wq *w, FILE *f)
{
	if (!w->cont)
		fprintf(f, "%s: ", w->x->o.prefix);
	fwrite(w->line.p, 1, w->line.len, f);
	w->cont = w->line.p[w->line.len - 1] != '\n';
	w->line.len = 0;
}

static void exec_wq_lines(struct exec_wq *w, const uint8_t *p, size_t n, bool flush)
{
	FILE *f = w == &w->x->wq[1] ? stderr : stdout;
	size_t start = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n' && w->line.len + (i - start) < EXEC_LINE_MAX)
			continue;
		strbuf_mem(&w->line, p + start, i + 1 - start);
		start = i + 1;
		exec_wq_emit(w, f);
	}
	if (start < n)
		strbuf_mem(&w->line, p + start, n - start);
	if (flush && w->line.len) {
		strbuf_mem(&w->line, "\n", 1);
		exec_wq_emit(w, f);
	}
	fflush(f);
}

static int exec_wq_put(struct exec_wq *w, struct chunk *c, const uint8_t *p, size_t n)
{
	struct exec_piece *pc;

	if (w->x->o.prefix) {
		exec_wq_lines(w, p, n, false);
		return 0;
	}
	pc = malloc(sizeof(*pc));
	if (!pc)
		return -ENOMEM;
	chunk_ref(c);
	pc->c = c;
	pc->p = p;
	pc->len = n;
	list_add_tail(&w->q, &pc->node);
	w->x->queued += n;
	exec_wq_next(w);
	return 0;
}

/* ---- records from the agent ---- */

static int exec_cli_record(void *arg, uint8_t type, struct chunk *c, const uint8_t *p, size_t n,
			   bool first, bool last)
{
	struct exec_cli *x = arg;

	switch (type) {
	case EXEC_REC_STDOUT:
		return n ? exec_wq_put(&x->wq[0], c, p, n) : 0;
	case EXEC_REC_STDERR:
		return n ? exec_wq_put(&x->wq[1], c, p, n) : 0;
	case EXEC_REC_EXIT:
		if (exec_exit_decode(p, n, &x->exit))
			return -EPROTO;
		x->got_exit = true;
		x->status = exec_exit_status(&x->exit);
		return 0;
	default:
		return -EPROTO;
	}
}

static void exec_cli_on_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct exec_cli *x = stream_ctx(st);
	size_t before = x->queued;
	int ret;

	ret = rec_rd_feed(&x->rd, c, p, len, exec_cli_record, x);
	if (ret) {
		exec_cli_fail(x, 255, "the agent sent a malformed exec record%s", "");
		return;
	}
	/* Bytes queued for local writes return their credit when written. */
	stream_consumed(st, len - (x->queued - before));
}

static void exec_cli_on_fin(struct stream *st)
{
	struct exec_cli *x = stream_ctx(st);

	x->fin = true;
	if (!x->got_exit)
		exec_cli_fail(x, 255,
			      "the agent ended the program's stream without its exit status%s", "");
	exec_cli_check_done(x);
}

static void exec_cli_on_reset(struct stream *st, int err)
{
	struct exec_cli *x = stream_ctx(st);
	const char *why = stream_reset_reason(st, err);

	exec_cli_fail(x, 255, "connection lost: %s", why ? why : sys_strerror(err));
}

static void exec_cli_on_writable(struct stream *st)
{
	exec_cli_in_arm(stream_ctx(st));
}

static void exec_cli_on_reply(struct stream *st, int err, const uint8_t *reply, size_t len)
{
	struct exec_cli *x = stream_ctx(st);
	char text[300];

	if (err) {
		snprintf(text, sizeof(text), "%.*s", (int)len, (const char *)reply);
		x->st = NULL;
		stream_release(st);
		exec_cli_fail(x,
			      err == -ENOENT			  ? 127
			      : (err == -EACCES || err == -EPERM) ? 126
								  : 255,
			      "%s", text);
		return;
	}
	if (len == 4)
		x->pid = wire_get_u32(reply);
	x->accepted = true;
	if (x->o.detach) {
		printf("%u\n", x->pid);
		fflush(stdout);
		x->status = 0;
		x->done = true;
		stream_shutdown(st);
		stream_release(st);
		x->st = NULL;
		return;
	}
	exec_cli_in_arm(x);
}

static const struct stream_ops exec_cli_ops = {
    .on_reply = exec_cli_on_reply,
    .on_data = exec_cli_on_data,
    .on_fin = exec_cli_on_fin,
    .on_reset = exec_cli_on_reset,
    .on_writable = exec_cli_on_writable,
};

static void exec_cli_check_done(struct exec_cli *x)
{
	if (x->done || !x->fin || x->wq[0].busy || x->wq[1].busy)
		return;
	if (!list_empty(&x->wq[0].q) || !list_empty(&x->wq[1].q))
		return;
	for (int i = 0; i < 2; i++)
		if (x->o.prefix)
			exec_wq_lines(&x->wq[i], NULL, 0, true);
	x->done = true;
	if (x->st) {
		stream_shutdown(x->st);
		stream_release(x->st);
		x->st = NULL;
	}
}

/* ---- local stdin ---- */

static void exec_cli_in_cb(struct loop_req *r, int res)
{
	struct exec_cli *x = r->data;

	x->pending--;
	x->in_busy = false;
	if (x->st && res > 0) {
		rec_write(x->st, EXEC_REC_STDIN, x->in_c, x->in_c->data, (size_t)res);
	} else if (x->st && res != -ECANCELED && res != -EAGAIN && res != -EINTR) {
		x->in_eof = true;
		rec_write_copy(x->st, EXEC_REC_STDIN_EOF, NULL, 0);
	}
	chunk_put(x->in_c);
	x->in_c = NULL;
	exec_cli_in_arm(x);
}

/* Reads local stdin while the stream has room. */
static void exec_cli_in_arm(struct exec_cli *x)
{
	if (x->in_busy || x->in_eof || !x->st || !x->accepted || x->o.stdin_null ||
	    !stream_writable(x->st))
		return;
	x->in_c = chunk_get(x->pool);
	if (!x->in_c)
		return;
	x->in_busy = true;
	x->pending++;
	x->in_req.data = x;
	if (loop_read(x->loop, &x->in_req, x->o.in_fd, x->in_c->data, EXEC_CLI_READ,
		      exec_cli_in_cb)) {
		x->in_busy = false;
		x->pending--;
		chunk_put(x->in_c);
		x->in_c = NULL;
	}
}

/* ---- public ---- */

int exec_cli_start(struct exec_cli **out, struct loop *l, struct session *s,
		   const struct exec_cli_opts *o)
{
	struct exec_cli *x = calloc(1, sizeof(*x));
	uint8_t *req = malloc(EXEC_REQ_MAX);
	int n, ret = -ENOMEM;

	if (!x || !req)
		goto fail;
	x->loop = l;
	x->pool = session_pool(s);
	x->o = *o;
	rec_rd_init(&x->rd);
	for (int i = 0; i < 2; i++) {
		x->wq[i].x = x;
		x->wq[i].fd = i ? o->err_fd : o->out_fd;
		list_init(&x->wq[i].q);
	}
	n = exec_req_encode(&o->req, req, EXEC_REQ_MAX);
	ret = n;
	if (n < 0)
		goto fail;
	ret = stream_open(s, KIND_EXEC, o->req.flags & EXEC_F_TTY ? FRAME_OPEN_INTERACTIVE : 0, req,
			  (size_t)n, &exec_cli_ops, x, &x->st);
	if (ret)
		goto fail;
	free(req);
	*out = x;
	return 0;
fail:
	free(req);
	free(x);
	return ret;
}

bool exec_cli_done(const struct exec_cli *x)
{
	return x->done;
}

int exec_cli_status(const struct exec_cli *x, const char **why)
{
	*why = x->failed ? x->why : NULL;
	return x->status;
}

int exec_cli_signal(struct exec_cli *x, int signo)
{
	uint8_t b = (uint8_t)signo;

	if (!x->st || !x->accepted)
		return -ENOTCONN;
	return rec_write_copy(x->st, EXEC_REC_SIGNAL, &b, 1);
}

int exec_cli_resize(struct exec_cli *x, uint16_t rows, uint16_t cols)
{
	uint8_t b[4];

	if (!x->st || !x->accepted)
		return -ENOTCONN;
	wire_put_u16(b, rows);
	wire_put_u16(b + 2, cols);
	return rec_write_copy(x->st, EXEC_REC_RESIZE, b, sizeof(b));
}

/* Stops local I/O; frees x once its requests completed (the caller runs the loop). */
bool exec_cli_free(struct exec_cli *x)
{
	if (x->in_busy)
		loop_cancel(x->loop, &x->in_req);
	for (int i = 0; i < 2; i++)
		if (x->wq[i].busy)
			loop_cancel(x->loop, &x->wq[i].req);
	if (x->pending)
		return false;
	for (int i = 0; i < 2; i++) {
		while (!list_empty(&x->wq[i].q)) {
			struct exec_piece *pc = list_first(&x->wq[i].q, struct exec_piece, node);

			list_del(&pc->node);
			chunk_put(pc->c);
			free(pc);
		}
	}
	if (x->st)
		stream_release(x->st);
	for (int i = 0; i < 2; i++)
		strbuf_free(&x->wq[i].line);
	free(x);
	return true;
}

/* Ends the program now: the agent kills it when the stream is reset. */
void exec_cli_abort(struct exec_cli *x, const char *why)
{
	if (x->st)
		stream_reset(x->st, -ECANCELED);
	exec_cli_fail(x, 255, "%s", why);
}
