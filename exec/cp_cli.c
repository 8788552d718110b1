/* The FILE stream, host side: local files to the VM (PUT) or the VM's files here (GET). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "exec/cp_cli.h"
#include "exec/cp_recv.h"
#include "exec/cp_send.h"
#include "core/err.h"
#include "core/kinds.h"
#include "core/rec.h"
#include "platform/fdio.h"
#include "platform/sys.h"

/*
 * Theory of operation
 *
 * States: OPENING (the request is out) -> COPYING (accepted) -> DONE.
 *
 * PUT: once accepted, the sender (exec/cp_send.c) streams the local sources;
 * the agent answers RESULT records for entries it could not write, then its
 * DONE and FIN. The copy is done when our sender finished and the agent's
 * DONE came: every file is then in place or reported.
 *
 * GET: the receiver (exec/cp_recv.c) is opened on the local target before
 * the request goes out; we half-close at once (nothing to send). The agent
 * streams TOTAL (asked for progress), the entries, RESULT records for
 * sources it could not read, DONE and FIN. Every top-level name must be one
 * of the sources asked for (a guest cannot choose where its files land).
 *
 * Failures of single entries are reported through o.report and counted
 * (exit 1); a refused request fails the copy (1); a reset or a lost session
 * fails it with CP_CLI_LOST (5), and the receiver removes its unfinished
 * file. An abort resets the stream: the agent removes its unfinished file.
 *
 * x is freed by cp_cli_free() from the loop's caller; stream callbacks stop
 * with the stream's release, the sender's and receiver's with their close.
 */

struct cp_cli {
	struct loop *loop;
	struct session *s;
	struct stream *st;
	struct cp_cli_opts o;
	char **names; /* GET: the names the sources arrive under */
	struct cp_send *snd;
	struct cp_recv *rcv;
	struct rec_rd rd; /* PUT: the agent's records */
	bool sent, remote_done, done, failed_whole;
	int status;
	uint64_t failed;
	uint64_t total;
	char why[600];
};

/* Ends the copy as a whole: status, one line, and no more I/O. */
static void cp_cli_fail(struct cp_cli *x, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void cp_cli_fail(struct cp_cli *x, int status, const char *fmt, ...)
{
	va_list ap;

	if (x->done)
		return;
	va_start(ap, fmt);
	vsnprintf(x->why, sizeof(x->why), fmt, ap);
	va_end(ap);
	x->status = status;
	x->failed_whole = true;
	x->done = true;
	if (x->snd)
		cp_send_close(x->snd);
	if (x->rcv)
		cp_recv_close(x->rcv);
	x->snd = NULL;
	x->rcv = NULL;
	if (x->st) {
		stream_reset(x->st, -ECANCELED);
		stream_release(x->st);
		x->st = NULL;
	}
}

/* The copy ran to its end; entries may have failed. */
static void cp_cli_finish(struct cp_cli *x)
{
	x->done = true;
	x->status = x->failed ? CP_CLI_FAILED : CP_CLI_OK;
	if (x->snd)
		cp_send_close(x->snd);
	if (x->rcv)
		cp_recv_close(x->rcv);
	x->snd = NULL;
	x->rcv = NULL;
	if (x->st) {
		stream_shutdown(x->st);
		stream_release(x->st); /* graceful: our FIN is out or queued */
		x->st = NULL;
	}
}

static void cp_cli_local_error(void *arg, const char *path, int err, const char *text)
{
	struct cp_cli *x = arg;

	x->failed++;
	x->o.report(x->o.arg, NULL, path, text ? text : sys_strerror(err));
}

/* A RESULT record: an entry failed in the VM. */
static int cp_cli_result(struct cp_cli *x, const uint8_t *p, size_t n)
{
	struct cp_result *res = malloc(sizeof(*res));

	if (!res)
		return -ENOMEM;
	if (cp_result_decode(p, n, res)) {
		free(res);
		return -EPROTO;
	}
	x->failed++;
	x->o.report(x->o.arg, x->o.vm, res->path, res->text);
	free(res);
	return 0;
}

static int cp_cli_total(struct cp_cli *x, const uint8_t *p, size_t n)
{
	struct cp_total t;

	if (cp_total_decode(p, n, &t))
		return -EPROTO;
	x->total = t.bytes;
	return 0;
}

/* ---- PUT ---- */

static void cp_cli_on_total(void *arg, uint64_t bytes, uint64_t entries)
{
	struct cp_cli *x = arg;

	x->total = bytes;
}

static void cp_cli_sent(void *arg)
{
	struct cp_cli *x = arg;

	x->sent = true;
	if (x->remote_done)
		cp_cli_finish(x);
}

static const struct cp_send_ops cp_cli_send_ops = {
    .on_error = cp_cli_local_error,
    .on_total = cp_cli_on_total,
    .on_done = cp_cli_sent,
};

static int cp_cli_put_record(void *arg, uint8_t type, struct chunk *c, const uint8_t *p, size_t n,
			     bool first, bool last)
{
	struct cp_cli *x = arg;
	struct cp_done d;

	if (x->remote_done)
		return -EPROTO;
	switch (type) {
	case CP_REC_RESULT:
		return cp_cli_result(x, p, n);
	case CP_REC_DONE:
		if (cp_done_decode(p, n, &d))
			return -EPROTO;
		x->remote_done = true;
		return 0;
	default:
		return -EPROTO;
	}
}

static int cp_cli_put_start(struct cp_cli *x)
{
	struct cp_send_opts so = {
	    .loop = x->loop,
	    .st = x->st,
	    .flags = x->o.flags | (x->o.total ? CP_F_TOTAL : 0),
	    .srcs = x->o.srcs,
	    .nsrc = x->o.nsrc,
	    .src_stdin = x->o.src_stdin,
	};

	return cp_send_start(&x->snd, &so, &cp_cli_send_ops, x);
}

/* ---- GET ---- */

static int cp_cli_get_record(void *arg, uint8_t type, const uint8_t *p, size_t n)
{
	struct cp_cli *x = arg;

	if (type == CP_REC_RESULT)
		return cp_cli_result(x, p, n);
	if (type == CP_REC_TOTAL)
		return cp_cli_total(x, p, n);
	return -EPROTO;
}

static void cp_cli_received(void *arg, const struct cp_done *sender)
{
	struct cp_cli *x = arg;
	struct cp_done d;

	cp_recv_stats(x->rcv, &d);
	x->total = x->total ? x->total : d.bytes;
	cp_cli_finish(x);
}

static const struct cp_recv_ops cp_cli_recv_ops = {
    .on_result = cp_cli_local_error,
    .on_record = cp_cli_get_record,
    .on_done = cp_cli_received,
};

/* The names the sources must arrive under, as the agent derives them (cp_top_name). */
static int cp_cli_names(struct cp_cli *x)
{
	char name[CP_NAME_MAX + 1];

	x->names = calloc((size_t)x->o.nsrc, sizeof(char *));
	if (!x->names)
		return -ENOMEM;
	for (int i = 0; i < x->o.nsrc; i++) {
		if (cp_top_name(x->o.srcs[i], name, sizeof(name)))
			return -ENAMETOOLONG;
		x->names[i] = strdup(name);
		if (!x->names[i])
			return -ENOMEM;
	}
	return 0;
}

static int cp_cli_get_open(struct cp_cli *x, uint32_t flags, char *why, size_t whylen)
{
	struct cp_recv_opts ro = {
	    .loop = x->loop,
	    .flags = flags,
	    .dst = x->o.dst,
	    .out_fd = fdio_std(1),
	    .mode_mask = 0777, /* never setuid or setgid from a guest */
	    .nexpect = x->o.nsrc,
	};
	int ret = cp_cli_names(x);

	if (ret) {
		snprintf(why, whylen, "%s", sys_strerror(ret));
		return ret;
	}
	ro.expect = (const char *const *)x->names;
	return cp_recv_new(&x->rcv, &ro, &cp_cli_recv_ops, x, why, whylen);
}

/* ---- the stream ---- */

static void cp_cli_on_reply(struct stream *st, int err, const uint8_t *reply, size_t len)
{
	struct cp_cli *x = stream_ctx(st);
	int ret;

	if (err) {
		x->st = NULL;
		stream_release(st);
		if (err == -EOPNOTSUPP)
			cp_cli_fail(x, CP_CLI_FAILED, "%s: the agent does not serve file copy",
				    x->o.vm);
		else
			cp_cli_fail(x, CP_CLI_FAILED, "%s:%.*s", x->o.vm, (int)len,
				    (const char *)reply);
		return;
	}
	if (x->o.dir == CP_GET)
		return;
	ret = cp_cli_put_start(x);
	if (ret)
		cp_cli_fail(x, CP_CLI_FAILED, "cannot start the copy: %s", sys_strerror(ret));
}

static void cp_cli_on_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct cp_cli *x = stream_ctx(st);
	int ret;

	if (x->rcv) {
		ret = cp_recv_feed(x->rcv, c, p, len);
	} else {
		ret = rec_rd_feed(&x->rd, c, p, len, cp_cli_put_record, x);
		stream_consumed(st, len);
	}
	if (ret == -EPROTO)
		cp_cli_fail(x, CP_CLI_FAILED, "%s: the agent broke the copy protocol", x->o.vm);
	else if (ret)
		cp_cli_fail(x, CP_CLI_FAILED, "%s: %s", x->o.vm, sys_strerror(ret));
	else if (x->remote_done && x->sent)
		cp_cli_finish(x);
}

static void cp_cli_on_fin(struct stream *st)
{
	struct cp_cli *x = stream_ctx(st);

	if ((x->rcv && cp_recv_fin(x->rcv)) || (!x->rcv && !x->remote_done))
		cp_cli_fail(x, CP_CLI_LOST, "%s: the agent stopped before the end of the copy",
			    x->o.vm);
}

static void cp_cli_on_reset(struct stream *st, int err)
{
	struct cp_cli *x = stream_ctx(st);
	const char *why = stream_reset_reason(st, err);

	cp_cli_fail(x, CP_CLI_LOST, "%s: connection lost: %s", x->o.vm,
		    why ? why : sys_strerror(err));
}

static void cp_cli_on_writable(struct stream *st)
{
	struct cp_cli *x = stream_ctx(st);

	if (x->snd)
		cp_send_writable(x->snd);
}

static const struct stream_ops cp_cli_ops = {
    .on_reply = cp_cli_on_reply,
    .on_data = cp_cli_on_data,
    .on_fin = cp_cli_on_fin,
    .on_reset = cp_cli_on_reset,
    .on_writable = cp_cli_on_writable,
};

/* ---- public ---- */

/* The request's flags: what the paths say beyond -r and -p. */
static uint32_t cp_cli_flags(const struct cp_cli_opts *o)
{
	uint32_t f = o->flags & (CP_F_RECURSIVE | CP_F_PRESERVE);

	if (o->nsrc > 1)
		f |= CP_F_INTO;
	if (o->dir == CP_PUT && o->src_stdin)
		f |= CP_F_TARGET;
	if (o->dir == CP_GET && o->total)
		f |= CP_F_TOTAL;
	return f;
}

static int cp_cli_open(struct cp_cli *x, uint32_t flags, char *why, size_t whylen)
{
	const char *dst[1] = {x->o.dst};
	struct cp_req q = {.dir = x->o.dir, .flags = flags};
	uint8_t *req = malloc(CP_REQ_MAX);
	int n, ret = -ENOMEM;

	if (!req)
		goto out;
	q.paths = x->o.dir == CP_PUT ? dst : (const char **)x->o.srcs;
	q.count = (uint16_t)(x->o.dir == CP_PUT ? 1 : x->o.nsrc);
	ret = n = x->o.nsrc > (int)CP_REQ_PATHS_MAX ? -E2BIG : cp_req_encode(&q, req, CP_REQ_MAX);
	if (n >= 0)
		ret = stream_open(x->s, KIND_FILE, 0, req, (size_t)n, &cp_cli_ops, x, &x->st);
	if (ret == -E2BIG || ret == -EMSGSIZE)
		snprintf(why, whylen, "too many or too long paths for one copy");
	else if (ret)
		snprintf(why, whylen, "%s: cannot start the copy: %s", x->o.vm, sys_strerror(ret));
out:
	free(req);
	return ret;
}

int cp_cli_start(struct cp_cli **out, struct loop *l, struct session *s,
		 const struct cp_cli_opts *o, char *why, size_t whylen)
{
	struct cp_cli *x = calloc(1, sizeof(*x));
	uint32_t flags = cp_cli_flags(o);
	int ret = -ENOMEM;

	snprintf(why, whylen, "out of memory");
	if (!x)
		return ret;
	x->loop = l;
	x->s = s;
	x->o = *o;
	rec_rd_init(&x->rd);
	ret = o->dir == CP_GET ? cp_cli_get_open(x, flags, why, whylen) : 0;
	if (!ret)
		ret = cp_cli_open(x, flags, why, whylen);
	if (ret) {
		x->done = true;
		cp_cli_free(x);
		return ret;
	}
	if (x->rcv) {
		cp_recv_attach(x->rcv, x->st);
		stream_shutdown(x->st); /* a GET sends nothing */
	}
	*out = x;
	return 0;
}

bool cp_cli_done(const struct cp_cli *x)
{
	return x->done;
}

int cp_cli_status(const struct cp_cli *x, const char **why)
{
	*why = x->failed_whole ? x->why : NULL;
	return x->status;
}

void cp_cli_progress(const struct cp_cli *x, uint64_t *done, uint64_t *total)
{
	struct cp_done d = {0};

	if (x->rcv)
		cp_recv_stats(x->rcv, &d);
	else if (x->snd)
		d.bytes = cp_send_bytes(x->snd);
	*done = d.bytes;
	*total = x->total;
}

void cp_cli_abort(struct cp_cli *x)
{
	cp_cli_fail(x, CP_CLI_FAILED, "interrupted");
}

void cp_cli_free(struct cp_cli *x)
{
	if (!x)
		return;
	if (!x->done)
		cp_cli_abort(x);
	for (int i = 0; x->names && i < x->o.nsrc; i++)
		free(x->names[i]);
	free(x->names);
	if (x->snd)
		cp_send_close(x->snd);
	if (x->rcv)
		cp_recv_close(x->rcv);
	if (x->st)
		stream_release(x->st);
	free(x);
}

/* ---- command-line paths ---- */

static int cp_cli_copy_vm(const char *p, size_t n, char *vm, size_t vmlen)
{
	if (!n || n >= vmlen)
		return -EINVAL;
	memcpy(vm, p, n);
	vm[n] = '\0';
	return 1;
}

int cp_cli_split(const char *arg, char *vm, size_t vmlen, const char **path)
{
	const char *scheme = strstr(arg, "://"), *colon, *slash;

	if (!strcmp(arg, "-") || sys_path_is_local_form(arg))
		return 0;
	if (arg[0] == '[') {
		colon = strstr(arg, "]:");
		if (!colon)
			return -EINVAL;
		*path = colon[2] ? colon + 2 : ".";
		return cp_cli_copy_vm(arg + 1, (size_t)(colon - arg - 1), vm, vmlen);
	}
	slash = strchr(arg, '/');
	if (scheme && (!slash || slash > scheme)) {
		colon = strstr(scheme + 3, ":/");
		if (!colon)
			return -EINVAL;
		*path = colon + 1;
		return cp_cli_copy_vm(arg, (size_t)(colon - arg), vm, vmlen);
	}
	colon = strchr(arg, ':');
	if (!colon || colon == arg || (slash && slash < colon))
		return 0;
	*path = colon[1] ? colon + 1 : ".";
	return cp_cli_copy_vm(arg, (size_t)(colon - arg), vm, vmlen);
}
