/* vmbusexec / vmbusify exec: run a program in one or more VMs, PsExec-style. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "core/strbuf.h"
#include "exec/client.h"
#include "platform/fdio.h"
#include "platform/proc.h"
#include "platform/sys.h"

#define EXEC_MAX_VMS 64
#define EXEC_MAX_ENV 256
#define EXEC_FAIL    255

struct exec_target {
	char name[128];
	struct cli_conn conn;
	struct exec_cli *x;
	bool connected;
	int status;
	const char *why;
};

struct exec_cmd {
	struct exec_cli_opts o;
	const char *env[EXEC_MAX_ENV + 1];
	int envc;
	bool tty, all;
	double timeout;
	char *vms;
	struct exec_target *t;
	int nt;
	struct rt_loop *rl;
	struct runtime rt;
	struct term_state *term;
	struct sigwatch *sw;
	struct loop_req sig_req;
	bool sig_busy;
	uint64_t last_int_ns;
};

static struct term_state *exec_term_saved;

/* Restores the local terminal on every way out, including exit() from anywhere. */
static void exec_term_atexit(void)
{
	term_restore(exec_term_saved);
}

static void exec_usage(FILE *f)
{
	fprintf(f, "usage: vmbusexec VM[,VM...] [-i] [-t] [-n] [-d] [-e KEY=VALUE]... [-w DIR] "
		   "[-u USER]\n                 [--timeout SECONDS] PROGRAM [ARG...]\n"
		   "       vmbusexec --all [options] PROGRAM [ARG...]\n");
}

/* Parses options up to the first non-option; returns 0 or a cli_exit code. */
static int exec_parse_opts(struct exec_cmd *e, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"interactive", no_argument, NULL, 'i'},
	    {"tty", no_argument, NULL, 't'},
	    {"null-stdin", no_argument, NULL, 'n'},
	    {"detach", no_argument, NULL, 'd'},
	    {"env", required_argument, NULL, 'e'},
	    {"workdir", required_argument, NULL, 'w'},
	    {"user", required_argument, NULL, 'u'},
	    {"timeout", required_argument, NULL, 'T'},
	    {"all", no_argument, NULL, 'A'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	char *end;
	int opt;

	while ((opt = getopt_long(argc, argv, "+itnde:w:u:h", opts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			break; /* stdin is attached unless -n */
		case 't':
			e->tty = true;
			break;
		case 'n':
			e->o.stdin_null = true;
			break;
		case 'd':
			e->o.detach = true;
			break;
		case 'e':
			if (!strchr(optarg, '=') || optarg[0] == '=' || e->envc == EXEC_MAX_ENV) {
				cli_error("-e", "expected KEY=VALUE, not '%s'", optarg);
				return CLI_USAGE;
			}
			e->env[e->envc++] = optarg;
			break;
		case 'w':
			e->o.req.cwd = optarg;
			break;
		case 'u':
			e->o.req.user = optarg;
			break;
		case 'T':
			e->timeout = strtod(optarg, &end);
			if (*end || e->timeout <= 0 || e->timeout > 4e6) {
				cli_error("--timeout", "expected seconds, not '%s'", optarg);
				return CLI_USAGE;
			}
			break;
		case 'A':
			e->all = true;
			break;
		case 'h':
			exec_usage(stdout);
			return -1;
		default:
			exec_usage(stderr);
			return CLI_USAGE;
		}
	}
	return 0;
}

/* vmbusexec [opts] VM [opts] PROGRAM ARGS: options may stand on either side of VM. */
static int exec_parse(struct exec_cmd *e, int argc, char **argv)
{
	int ret;

	optind = 1;
	ret = exec_parse_opts(e, argc, argv);
	if (ret)
		return ret;
	if (!e->all) {
		if (optind >= argc) {
			exec_usage(stderr);
			return CLI_USAGE;
		}
		e->vms = argv[optind++];
		argc -= optind - 1;
		argv += optind - 1;
		optind = 1;
		ret = exec_parse_opts(e, argc, argv);
		if (ret)
			return ret;
	}
	if (optind >= argc) {
		cli_error("exec", "no program to run");
		return CLI_USAGE;
	}
	e->o.req.argv = (const char **)argv + optind;
	e->o.req.argc = (uint16_t)(argc - optind);
	e->env[e->envc] = NULL;
	e->o.req.env = e->env;
	e->o.req.envc = (uint16_t)e->envc;
	return 0;
}

/* --all: the daemon's VM names, one per line. */
static int exec_all_names(struct exec_cmd *e, struct strbuf *names)
{
	struct cli_conn c;
	int ret = cli_connect(&c, "-");

	if (!ret)
		ret = cli_control(&c, "ls names", names, false);
	cli_close(&c);
	if (!ret && names->p) {
		e->vms = names->p;
		for (char *p = names->p; *p; p++)
			if (*p == '\n')
				*p = ',';
	}
	return ret;
}

static int exec_targets(struct exec_cmd *e)
{
	char *save = NULL;

	e->t = calloc(EXEC_MAX_VMS, sizeof(*e->t));
	if (!e->t)
		return CLI_FAIL;
	for (char *tok = strtok_r(e->vms, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (!*tok)
			continue;
		if (e->nt == EXEC_MAX_VMS) {
			cli_error("exec", "at most %d VMs at once", EXEC_MAX_VMS);
			return CLI_USAGE;
		}
		snprintf(e->t[e->nt++].name, sizeof(e->t[0].name), "%s", tok);
	}
	if (!e->nt) {
		cli_error("exec", "no VM to run on");
		return CLI_USAGE;
	}
	return 0;
}

/* The terminal goes raw for -t when stdin is one; its size goes with the request. */
static void exec_tty_setup(struct exec_cmd *e)
{
	uint16_t rows = 24, cols = 80;

	e->o.req.flags |= EXEC_F_TTY;
	e->o.req.term = getenv("TERM");
	if (sys_isatty(0) && !term_size(0, &rows, &cols) && !term_raw(0, &e->term)) {
		exec_term_saved = e->term;
		atexit(exec_term_atexit);
	}
	e->o.req.rows = rows;
	e->o.req.cols = cols;
}

static void exec_signal_all(struct exec_cmd *e, int signo)
{
	for (int i = 0; i < e->nt; i++)
		if (e->t[i].x)
			exec_cli_signal(e->t[i].x, signo);
}

static void exec_sig_arm(struct exec_cmd *e);

static void exec_sig_cb(struct loop_req *r, int res)
{
	struct exec_cmd *e = r->data;
	int signo = res > 0 ? sigwatch_signo(e->sw) : 0;
	uint64_t now = clock_now_ns();
	uint16_t rows, cols;

	e->sig_busy = false;
	if (signo == SIGWINCH && !term_size(0, &rows, &cols)) {
		for (int i = 0; i < e->nt; i++)
			if (e->t[i].x)
				exec_cli_resize(e->t[i].x, rows, cols);
	} else if (signo == SIGINT) {
		/* A second Ctrl-C within a second means it. */
		exec_signal_all(e, now - e->last_int_ns < 1000000000ull ? SIGKILL : SIGINT);
		e->last_int_ns = now;
	} else if (signo && e->tty && signo != SIGINT) {
		/* With -t, SIGTERM and SIGHUP end the session, as they end ssh -t. */
		for (int i = 0; i < e->nt; i++)
			if (e->t[i].x)
				exec_cli_abort(e->t[i].x,
					       signo == SIGHUP ? "hangup" : "terminated");
	} else if (signo) {
		exec_signal_all(e, signo);
	}
	if (res >= 0 && res != -ECANCELED)
		exec_sig_arm(e);
}

static void exec_sig_arm(struct exec_cmd *e)
{
	e->sig_req.data = e;
	e->sig_busy = !sigwatch_next(e->rl->loop, e->sw, &e->sig_req, exec_sig_cb);
}

static bool exec_all_done(struct exec_cmd *e)
{
	for (int i = 0; i < e->nt; i++)
		if (e->t[i].x && !exec_cli_done(e->t[i].x))
			return false;
	return true;
}

/* Connects to every VM and starts the program there. */
static void exec_start_all(struct exec_cmd *e)
{
	for (int i = 0; i < e->nt; i++) {
		struct exec_target *t = &e->t[i];
		int ret = cli_connect_on(&t->conn, t->name, e->rl);

		t->status = EXEC_FAIL;
		if (ret)
			continue;
		t->connected = true;
		e->o.prefix = e->nt > 1 ? t->name : NULL;
		ret = exec_cli_start(&t->x, e->rl->loop, t->conn.s, &e->o);
		if (ret == -EMSGSIZE || ret == -E2BIG) {
			cli_error(t->name,
				  "the command line and environment are too long for one "
				  "request (at most about %u bytes)",
				  session_max_payload(t->conn.s) - 4);
			t->x = NULL;
		} else if (ret) {
			cli_error(t->name, "cannot start the program: %s", sys_strerror(ret));
			t->x = NULL;
		}
	}
}

/* Collects statuses, prints failures and, for several VMs, a summary; returns the highest. */
static int exec_finish(struct exec_cmd *e)
{
	int worst = 0;

	term_restore(e->term);
	for (int i = 0; i < e->nt; i++) {
		struct exec_target *t = &e->t[i];

		if (t->x) {
			t->status = exec_cli_status(t->x, &t->why);
			if (t->why)
				cli_error(t->name, "%s", t->why);
			while (!exec_cli_free(t->x))
				loop_run_once(e->rl->loop, 10000000ull);
		}
		if (t->connected)
			cli_close(&t->conn);
		if (e->nt > 1)
			fprintf(stderr, "%s: exit %d\n", t->name, t->status);
		worst = t->status > worst ? t->status : worst;
	}
	return worst;
}

int cli_exec(int argc, char **argv)
{
	static const int signos[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH};
	struct exec_cmd e = {0};
	struct strbuf names = {0};
	int ret;

	cli_global.prog = "vmbusexec";
	e.o.in_fd = fdio_std(0);
	e.o.out_fd = fdio_std(1);
	e.o.err_fd = fdio_std(2);
	ret = exec_parse(&e, argc, argv);
	if (ret)
		return ret < 0 ? 0 : EXEC_FAIL;
	if (e.all && exec_all_names(&e, &names))
		return EXEC_FAIL;
	if (exec_targets(&e))
		return EXEC_FAIL;
	e.o.req.timeout_ms = (uint32_t)(e.timeout * 1000.0);
	e.o.req.flags |=
	    (e.o.stdin_null ? EXEC_F_STDIN_NULL : 0) | (e.o.detach ? EXEC_F_DETACH : 0);
	/* Several VMs cannot share one stdin. */
	if (e.nt > 1)
		e.o.stdin_null = true, e.o.req.flags |= EXEC_F_STDIN_NULL;
	sys_ignore_sigpipe();
	if (runtime_init_single(&e.rt, cli_global.backend)) {
		cli_error("exec", "cannot start an event loop");
		return EXEC_FAIL;
	}
	e.rl = &e.rt.loops[0];
	if (!sigwatch_new(&e.sw, signos, 4))
		exec_sig_arm(&e);
	if (e.tty)
		exec_tty_setup(&e);
	exec_start_all(&e);
	while (!exec_all_done(&e))
		loop_run_once(e.rl->loop, 1000000000ull);
	ret = exec_finish(&e);
	if (e.sig_busy) {
		loop_cancel(e.rl->loop, &e.sig_req);
		while (e.sig_busy)
			loop_run_once(e.rl->loop, 10000000ull);
	}
	sigwatch_free(e.sw);
	exec_term_saved = NULL;
	term_free(e.term);
	runtime_destroy(&e.rt);
	free(e.t);
	strbuf_free(&names);
	return ret;
}
