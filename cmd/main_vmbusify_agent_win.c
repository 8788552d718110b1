/* vmbusify-agent.exe: the agent of a Windows guest, serving exec, cp and bench to the host. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/bench.h"
#include "core/frame.h"
#include "core/kinds.h"
#include "core/link.h"
#include "core/log.h"
#include "core/runtime.h"
#include "core/uri.h"
#include "exec/cp.h"
#include "exec/exec.h"
#include "platform/sys.h"
#include "platform/transport.h"

/*
 * The Linux agent's wiring (cmd/agent.c) also carries the VM's proxy port and
 * vnet, which need platform/win/net.c and Wintun; until those exist, this is
 * the Windows agent's own, smaller wiring: listeners accept on loop 0, each
 * session runs on a loop picked round-robin, and the streams the host opens
 * go to exec (exec/srv.c over platform/win/proc.c: pipes, or ConPTY for -t), cp (exec/cp_srv.c over
 * exec/win/cp_fs.c) and bench. Other kinds are refused, and the capabilities
 * sent in HELLO say so.
 */

#define WAGENT_MAX_LISTEN 8
#define WAGENT_CAPS	  (FRAME_CAP_BENCH | FRAME_CAP_EXEC | FRAME_CAP_FILE)

struct wagent;

struct wagent_listener {
	struct wagent *a;
	struct uri uri;
	char text[300];
	struct transport_listener *tl;
	struct transport_accept_req acc;
	struct rt_loop *home;
};

struct wagent {
	struct runtime rt;
	struct transport_opts topts;
	struct wagent_listener listeners[WAGENT_MAX_LISTEN];
	int n;
};

struct wagent_conn {
	struct wagent_listener *al;
	struct rt_loop *rl;
	pl_fd fd;
};

static void wagent_accept_next(struct wagent_listener *al);

static void wagent_on_open(struct link *lk, struct stream *st, uint16_t kind, uint16_t flags,
			   const uint8_t *req, size_t len)
{
	switch (kind) {
	case KIND_BENCH:
		bench_serve(st, req, len);
		return;
	case KIND_EXEC:
		exec_serve(link_loop(lk), st, req, len);
		return;
	case KIND_FILE:
		cp_serve(link_loop(lk), st, req, len);
		return;
	default:
		vb_dbg("refused a %s stream: not served by the Windows agent", kind_name(kind));
		stream_refuse(st, -EOPNOTSUPP,
			      "the Windows agent serves exec, cp and bench only (no proxy yet)");
	}
}

static void wagent_on_ready(struct link *lk)
{
	struct wagent_conn *ac = link_app(lk);
	const struct frame_hello *peer = session_peer(link_session(lk));

	vb_info("session from %s on %s (protocol %u)", peer->name, ac->al->text,
		session_version(link_session(lk)));
}

static void wagent_on_close(struct link *lk, int err, const char *reason)
{
	struct wagent_conn *ac = link_app(lk);

	vb_info("session on %s ended: %s", ac->al->text, reason);
}

static void wagent_on_freed(void *app)
{
	free(app);
}

static const struct link_ops wagent_link_ops = {
    .on_ready = wagent_on_ready,
    .on_open = wagent_on_open,
    .on_close = wagent_on_close,
    .on_freed = wagent_on_freed,
};

/* Runs on the session's loop: the accepted handle becomes a link there. */
static void wagent_start_session(void *arg)
{
	struct wagent_conn *ac = arg;
	struct transport_info ti;
	struct link_config cfg;
	struct link *lk;

	transport_info_get(&ac->al->uri, &ti);
	link_config_defaults(&cfg);
	cfg.session.role = FRAME_ROLE_AGENT;
	cfg.session.caps = WAGENT_CAPS;
	cfg.session.name = "vmbusify-agent " VB_VERSION " (windows)";
	cfg.max_write = ti.max_write;
	cfg.keepalive_ms = 0; /* the host may go quiet for long */
	cfg.dead_ms = 0;
	if (link_new(&lk, ac->rl->loop, &ac->rl->chunks, ac->fd, &cfg, &wagent_link_ops, ac)) {
		vb_err("cannot start a session on %s", ac->al->text);
		transport_close_fd(ac->fd);
		free(ac);
	}
}

/*
 * An accept that failed for one connection (a wrong or missing token, a
 * peer that went away) is logged and the listener goes on; only a broken
 * listener stops.
 */
static void wagent_accept_cb(struct transport_accept_req *ar, int res, pl_fd fd)
{
	struct wagent_listener *al = ar->data;
	struct wagent_conn *ac;

	if (res == -EBADF || res == -ENOTSOCK || res == -EINVAL) {
		vb_err("%s: the listener failed: %s; not accepting any more", al->text,
		       sys_strerror(res));
		return;
	}
	if (res) {
		vb_warn("%s: a connection failed: %s", al->text, sys_strerror(res));
	} else if (!(ac = calloc(1, sizeof(*ac)))) {
		transport_close_fd(fd);
	} else {
		ac->al = al;
		ac->fd = fd;
		ac->rl = runtime_pick(&al->a->rt);
		if (loop_post(ac->rl->loop, wagent_start_session, ac)) {
			transport_close_fd(fd);
			free(ac);
		}
	}
	wagent_accept_next(al);
}

static void wagent_accept_next(struct wagent_listener *al)
{
	al->acc.data = al;
	if (transport_accept(al->home->loop, al->tl, &al->acc, wagent_accept_cb))
		vb_err("%s: cannot accept", al->text);
}

static void wagent_accept_first(void *arg)
{
	wagent_accept_next(arg);
}

/* Parses and binds uri now, so that errors show at once. */
static int wagent_listen(struct wagent *a, const char *uri, char *why, size_t whylen)
{
	struct wagent_listener *al = &a->listeners[a->n];
	int ret;

	if (a->n == WAGENT_MAX_LISTEN) {
		snprintf(why, whylen, "at most %d --listen addresses", WAGENT_MAX_LISTEN);
		return -E2BIG;
	}
	if (uri_parse(uri, &al->uri, why, whylen))
		return -EINVAL;
	ret = transport_listen(&al->uri, &a->topts, &al->tl, why, whylen);
	if (ret)
		return ret;
	al->a = a;
	snprintf(al->text, sizeof(al->text), "%s", uri);
	a->n++;
	return 0;
}

static void wagent_usage(FILE *f)
{
	fprintf(f,
		"usage: vmbusify-agent [--listen URI]... [--token-file FILE] [--threads N]\n"
		"                      [--log-level LEVEL]\n"
		"default: --listen hvsock://:%u (any partition, the vsock-template service\n"
		"GUID of port %u). tcp://ADDR:PORT needs --token-file. This Windows agent\n"
		"serves exec (-t on ConPTY) and cp; the proxy port and vnet are not built\n"
		"for Windows yet.\n",
		VB_DEFAULT_PORT, VB_DEFAULT_PORT);
}

static int wagent_die(const char *what, const char *why)
{
	fprintf(stderr, "vmbusify-agent: %s: %s\n", what, why);
	return 1;
}

/* Parses the options; returns -1 to go on, else the exit code. */
static int wagent_options(int argc, char **argv, const char **listen, int *nlisten,
			  const char **token, int *threads, enum vb_log_level *lvl)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"token-file", required_argument, NULL, 'k'},
	    {"threads", required_argument, NULL, 't'},
	    {"log-level", required_argument, NULL, 'L'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {0},
	};
	int opt;

	while ((opt = getopt_long(argc, argv, "l:k:t:L:hV", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			if (*nlisten == WAGENT_MAX_LISTEN)
				return wagent_die("--listen", "too many addresses");
			listen[(*nlisten)++] = optarg;
			break;
		case 'k':
			*token = optarg;
			break;
		case 't':
			*threads = atoi(optarg);
			if (*threads < 1 || *threads > 256)
				return wagent_die("--threads", "expected 1 to 256");
			break;
		case 'L':
			if (log_level_parse(optarg, lvl))
				return wagent_die("--log-level",
						  "expected error, warn, info or debug");
			break;
		case 'V':
			printf("vmbusify-agent %s (windows)\n", VB_VERSION);
			return 0;
		case 'h':
			wagent_usage(stdout);
			return 0;
		default:
			wagent_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		wagent_usage(stderr);
		return 2;
	}
	return -1;
}

int main(int argc, char **argv)
{
	const char *listen[WAGENT_MAX_LISTEN], *token = NULL;
	enum vb_log_level lvl = VB_LOG_INFO;
	static struct wagent a;
	char why[300], dflt[64];
	int nlisten = 0, threads = 0, ret;

	sys_std_fds_open();
	ret = wagent_options(argc, argv, listen, &nlisten, &token, &threads, &lvl);
	if (ret >= 0)
		return ret;
	log_setup("vmbusify-agent", lvl);
	if (!nlisten) {
		snprintf(dflt, sizeof(dflt), "hvsock://:%u", VB_DEFAULT_PORT);
		listen[nlisten++] = dflt;
	}
	sys_block_termination();
	a.topts.token_file = token;
	a.topts.connect_timeout_ms = 5000;
	ret = runtime_init(&a.rt, threads, LOOP_BACKEND_AUTO);
	if (ret)
		return wagent_die("event loop", sys_strerror(ret));
	for (int i = 0; i < nlisten; i++)
		if (wagent_listen(&a, listen[i], why, sizeof(why)))
			return wagent_die(listen[i], why);
	for (int i = 0; i < a.n; i++) {
		a.listeners[i].home = &a.rt.loops[0];
		loop_post(a.listeners[i].home->loop, wagent_accept_first, &a.listeners[i]);
	}
	ret = runtime_start(&a.rt);
	if (ret)
		return wagent_die("start", sys_strerror(ret));
	vb_info("listening on %d address%s with %d loop%s (%s)", a.n, a.n == 1 ? "" : "es", a.rt.n,
		a.rt.n == 1 ? "" : "s", loop_backend_name(loop_backend(a.rt.loops[0].loop)));
	ret = sys_wait_termination();
	vb_info("stopping on signal %d", ret);
	runtime_stop(&a.rt);
	for (int i = 0; i < a.n; i++)
		transport_listener_close(a.listeners[i].tl);
	return 0;
}
