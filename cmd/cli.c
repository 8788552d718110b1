/* The CLI's connection to a VM: directly over its channel, or through the daemon. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "core/kinds.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "core/uri.h"
#include "platform/fdio.h"
#include "platform/sys.h"
#include "platform/transport.h"

#define CLI_CONNECT_MS 5000
/* Longer than the link's own drain bound (a second), after which it cancels
 * what is in flight and frees itself as the cancellations complete. */
#define CLI_CLOSE_NS (3000ull * 1000 * 1000)

struct cli_global cli_global = {.prog = "vmbusify"};

void cli_error(const char *what, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s: %s\n", cli_global.prog, what, why);
}

const char *cli_control_path(void)
{
	const char *env = getenv("VMBUSIFY_CONTROL");
	char *buf;
	size_t len;

	if (cli_global.control)
		return cli_global.control;
	if (env && *env)
		return env;
	for (int i = 0; sys_control_place(i); i++) {
		/* The first that exists; reading it fails (it is a socket) but not with ENOENT. */
		if (sys_read_file(sys_control_place(i), 1, &buf, &len) != -ENOENT)
			return sys_control_place(i);
	}
	return sys_control_place(0);
}

static void cli_on_ready(struct link *lk)
{
	struct cli_conn *c = link_app(lk);

	c->ready = true;
}

static void cli_on_pong(struct link *lk, uint64_t rtt_ns)
{
	struct cli_conn *c = link_app(lk);

	if (c->on_pong)
		c->on_pong(c, rtt_ns);
}

static void cli_on_close(struct link *lk, int err, const char *reason)
{
	struct cli_conn *c = link_app(lk);

	c->closed = true;
	c->close_err = err;
	snprintf(c->close_reason, sizeof(c->close_reason), "%s", reason);
	c->link = NULL;
	c->s = NULL;
}

static void cli_on_freed(void *app)
{
	struct cli_conn *c = app;

	c->freed = true;
}

static const struct link_ops cli_link_ops = {
    .on_ready = cli_on_ready,
    .on_pong = cli_on_pong,
    .on_close = cli_on_close,
    .on_freed = cli_on_freed,
};

/* Dials the daemon and asks for target; returns a cli_exit code and the descriptor. */
static int cli_dial_daemon(const char *target, pl_fd *fd)
{
	const char *path = cli_control_path();
	const char *what = strcmp(target, "-") ? target : "daemon";
	char text[300], line[400], why[300];
	struct uri u;
	int ret;

	/* A path is a unix socket; a URI (npipe:// on Windows) is taken as it is. */
	snprintf(text, sizeof(text), strstr(path, "://") ? "%s" : "unix://%s", path);
	if (uri_parse(text, &u, why, sizeof(why))) {
		cli_error(what, "bad control socket path: %s", why);
		return CLI_USAGE;
	}
	ret = transport_dial_sync(&u, NULL, fd, why, sizeof(why));
	if (ret == -EACCES || ret == -EPERM) {
		cli_error(what,
			  "%s: permission denied: the control socket is for root and the "
			  "vmbusify group",
			  path);
		return CLI_PRIV;
	}
	if (ret) {
		cli_error(what, "cannot reach the daemon at %s (is vmbusifyd running?): %s", path,
			  why);
		return CLI_NOTFOUND;
	}
	snprintf(line, sizeof(line), "CONNECT %s\n", target);
	ret = fdio_write_all(*fd, line, strlen(line), CLI_CONNECT_MS);
	if (!ret)
		ret = fdio_read_line(*fd, line, sizeof(line), CLI_CONNECT_MS);
	if (ret < 0) {
		transport_close_fd(*fd);
		/* Closed before answering: a daemon on its way out, or a stale socket. */
		if (ret == -ECONNRESET || ret == -EPIPE) {
			cli_error(what, "cannot reach the daemon at %s (is vmbusifyd running?): %s",
				  path, sys_strerror(ret));
			return CLI_NOTFOUND;
		}
		cli_error(what, "the daemon at %s did not answer: %s", path, sys_strerror(ret));
		return CLI_CONNECT;
	}
	if (strncmp(line, "OK", 2)) {
		cli_error(what, "%s", strncmp(line, "ERR ", 4) ? line : line + 4);
		transport_close_fd(*fd);
		return strstr(line, "no VM named") ? CLI_NOTFOUND : CLI_CONNECT;
	}
	return CLI_OK;
}

/* Turns a bare CID into a vsock URI; leaves URIs alone; returns false for VM names. */
static bool cli_target_uri(const char *target, char *uri, size_t len)
{
	char *end;
	unsigned long cid;

	if (strstr(target, "://")) {
		snprintf(uri, len, "%s", target);
		return true;
	}
	cid = strtoul(target, &end, 10);
	if (*target && !*end && cid > 2 && cid < 0xffffffffu) {
		snprintf(uri, len, "vsock://%lu", cid);
		return true;
	}
	return false;
}

static int cli_dial(struct cli_conn *c, const char *target, pl_fd *fd)
{
	/* vmbusexec takes no global options: the token file may come from the environment. */
	const char *token =
	    cli_global.token_file ? cli_global.token_file : getenv("VMBUSIFY_TOKEN_FILE");
	struct transport_opts o = {.token_file = token, .connect_timeout_ms = CLI_CONNECT_MS};
	char text[300], why[300];
	struct uri u;

	if (!cli_target_uri(target, text, sizeof(text))) {
		c->via_daemon = true;
		return cli_dial_daemon(target, fd);
	}
	if (uri_parse(text, &u, why, sizeof(why))) {
		cli_error(target, "%s", why);
		return CLI_USAGE;
	}
	if (transport_dial_sync(&u, &o, fd, why, sizeof(why))) {
		cli_error(target, "%s", why);
		return CLI_CONNECT;
	}
	return CLI_OK;
}

int cli_connect(struct cli_conn *c, const char *target)
{
	struct runtime *rt = calloc(1, sizeof(*rt));
	int ret = rt ? runtime_init_single(rt, cli_global.backend) : -ENOMEM;

	sys_ignore_sigpipe();
	if (ret) {
		memset(c, 0, sizeof(*c));
		free(rt);
		cli_error(target, "cannot start an event loop: %s", sys_strerror(ret));
		return CLI_FAIL;
	}
	ret = cli_connect_on(c, target, &rt->loops[0]);
	c->own = rt;
	return ret;
}

int cli_connect_on(struct cli_conn *c, const char *target, struct rt_loop *rl)
{
	struct link_config cfg;
	pl_fd fd;
	int ret;

	memset(c, 0, sizeof(*c));
	snprintf(c->target, sizeof(c->target), "%s", target);
	c->rl = rl;
	ret = cli_dial(c, target, &fd);
	if (ret)
		return ret;
	link_config_defaults(&cfg);
	cfg.session.dialer = true;
	cfg.session.role = FRAME_ROLE_CLIENT;
	cfg.session.name = "vmbusify " VB_VERSION;
	cfg.keepalive_ms = 0;
	cfg.dead_ms = 0;
	ret = link_new(&c->link, c->rl->loop, &c->rl->chunks, fd, &cfg, &cli_link_ops, c);
	if (ret) {
		cli_error(target, "cannot start a session: %s", sys_strerror(ret));
		return CLI_FAIL;
	}
	c->started = true;
	c->s = link_session(c->link);
	if (!cli_run_until_ns(c, &c->ready, (uint64_t)CLI_CONNECT_MS * 1000000ull)) {
		cli_error(target, "%s",
			  c->closed ? c->close_reason
				    : "no answer to HELLO within 5 s (is a vmbusify-agent "
				      "listening there?)");
		return CLI_CONNECT;
	}
	return CLI_OK;
}

bool cli_run_until(struct cli_conn *c, const bool *done)
{
	while (!*done && !c->closed)
		loop_run_once(c->rl->loop, 1000000000ull);
	return *done;
}

bool cli_run_until_ns(struct cli_conn *c, const bool *done, uint64_t ns)
{
	uint64_t deadline = clock_now_ns() + ns, now;

	while (!*done && !c->closed && (now = clock_now_ns()) < deadline)
		loop_run_once(c->rl->loop, deadline - now);
	return *done;
}

void cli_close(struct cli_conn *c)
{
	uint64_t deadline = clock_now_ns() + CLI_CLOSE_NS;

	if (c->link)
		link_shutdown(c->link, 0, "done");
	/* Let the GOAWAY go out and the link free itself. Waited on the clock,
	 * not on a count of loop turns: a link still receiving turns the loop
	 * fast, and the runtime must not be destroyed under a live link. */
	while (c->started && !c->freed && clock_now_ns() < deadline)
		loop_run_once(c->rl->loop, 10000000ull);
	if (c->own) {
		runtime_destroy(c->own);
		free(c->own);
		c->own = NULL;
	}
}

/* ---- CONTROL requests ---- */

struct cli_ctl {
	struct strbuf *out;
	bool echo;
	bool done;
	int err;
	char why[256];
};

static void cli_ctl_reply(struct stream *st, int err, const uint8_t *reply, size_t len)
{
	struct cli_ctl *q = stream_ctx(st);

	if (!err)
		return;
	q->err = err;
	snprintf(q->why, sizeof(q->why), "%.*s", (int)len, (const char *)reply);
	q->done = true;
	stream_release(st);
}

static void cli_ctl_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct cli_ctl *q = stream_ctx(st);

	if (q->out)
		strbuf_printf(q->out, "%.*s", (int)len, (const char *)p);
	if (q->echo) {
		fwrite(p, 1, len, stdout);
		fflush(stdout);
	}
	stream_consumed(st, len);
}

static void cli_ctl_fin(struct stream *st)
{
	struct cli_ctl *q = stream_ctx(st);

	q->done = true;
	stream_shutdown(st);
	stream_release(st);
}

static void cli_ctl_reset(struct stream *st, int err)
{
	struct cli_ctl *q = stream_ctx(st);

	q->err = err;
	snprintf(q->why, sizeof(q->why), "%s", sys_strerror(err));
	q->done = true;
	stream_release(st);
}

static const struct stream_ops cli_ctl_ops = {
    .on_reply = cli_ctl_reply,
    .on_data = cli_ctl_data,
    .on_fin = cli_ctl_fin,
    .on_reset = cli_ctl_reset,
};

int cli_control(struct cli_conn *c, const char *cmd, struct strbuf *out, bool echo)
{
	struct cli_ctl q = {.out = out, .echo = echo};
	struct stream *st;
	int ret;

	ret = stream_open(c->s, KIND_CONTROL, FRAME_OPEN_INTERACTIVE, cmd, strlen(cmd),
			  &cli_ctl_ops, &q, &st);
	if (ret) {
		cli_error(strcmp(c->target, "-") ? c->target : "vmbusifyd",
			  "cannot send a control request: %s", sys_strerror(ret));
		return CLI_FAIL;
	}
	if (!cli_run_until(c, &q.done)) {
		cli_error(strcmp(c->target, "-") ? c->target : "vmbusifyd", "%s", c->close_reason);
		return CLI_CONNECT;
	}
	if (q.err) {
		cli_error(strcmp(c->target, "-") ? c->target : "vmbusifyd", "%s", q.why);
		return q.err == -ENOTCONN ? CLI_CONNECT : CLI_FAIL;
	}
	return CLI_OK;
}
