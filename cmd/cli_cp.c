/* vmbusify cp: copy files and directories between the host and a VM, as cp and scp do. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "exec/cp_cli.h"
#include "platform/proc.h"
#include "platform/sys.h"

#define CP_TICK_NS (200ull * 1000 * 1000) /* progress: at most 5 updates a second */

struct cp_cmd {
	bool recursive, preserve, quiet;
	struct cp_cli_opts o;
	char vm[256];
	const char **paths; /* the sources, as the peer that has them names them */
	struct cli_conn conn;
	struct cp_cli *x;
	/* progress */
	bool progress, shown;
	struct loop_req tick;
	bool ticking;
	uint64_t last_ns, last_bytes;
	double rate;
	/* signals */
	struct sigwatch *sw;
	struct loop_req sig_req;
	bool sig_busy;
	int signo;
};

static void cp_usage(FILE *f)
{
	fprintf(f, "usage: vmbusify cp [-r] [-p] [-q] SRC... VM:DST     host to VM\n"
		   "       vmbusify cp [-r] [-p] [-q] VM:SRC... DST     VM to host\n"
		   "\n"
		   "  -r, --recursive  copy directories\n"
		   "  -p, --preserve   keep modification and access times\n"
		   "  -q, --quiet      no progress line\n"
		   "\n"
		   "SRC '-' is standard input, copied to the file DST names; DST '-' is standard\n"
		   "output (one source file). Symbolic links are copied as links; modes always.\n"
		   "A remote path is VM:PATH, VM a name the daemon knows or a vsock CID, split at\n"
		   "the first ':' (a local path with ':' in it needs a '/' before it: ./a:b).\n"
		   "With a URI: [URI]:PATH, or URI:/PATH, split at the first ':/' after '://'\n"
		   "(e.g. unix:///run/vm.sock:/tmp). Relative VM paths start in the agent's\n"
		   "working directory.\n"
		   "Exit: 0 copied, 1 some files failed (one line each), 2 usage, 3 no such VM,\n"
		   "5 the VM cannot be reached or the connection was lost.\n");
}

/* ---- reporting ---- */

static void cp_clear_line(struct cp_cmd *c)
{
	if (c->shown)
		fputs("\r\033[K", stderr);
	c->shown = false;
}

/* One failed entry: "vmbusify: cp: lab1:/x/y: Permission denied". */
static void cp_report(void *arg, const char *vm, const char *path, const char *text)
{
	struct cp_cmd *c = arg;

	cp_clear_line(c);
	fprintf(stderr, "%s: cp: %s%s%s: %s\n", cli_global.prog, vm ? vm : "", vm ? ":" : "", path,
		text);
}

/* Bytes for humans: "512 B", "12.3 MiB". */
static void cp_size(char *out, size_t len, double v)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(out, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void cp_draw(struct cp_cmd *c, uint64_t done, uint64_t total)
{
	char d[32], t[32], r[32];
	double left;

	cp_size(d, sizeof(d), (double)done);
	cp_size(r, sizeof(r), c->rate);
	if (!total || done > total) {
		fprintf(stderr, "\r  %s  %s/s\033[K", d, r);
	} else {
		cp_size(t, sizeof(t), (double)total);
		left = c->rate > 1 ? (double)(total - done) / c->rate : 0;
		fprintf(stderr, "\r  %s / %s  %3d%%  %s/s  %d:%02d left\033[K", d, t,
			(int)(done * 100 / (total ? total : 1)), r, (int)left / 60, (int)left % 60);
	}
	fflush(stderr);
	c->shown = true;
}

static void cp_tick_arm(struct cp_cmd *c);

static void cp_tick_cb(struct loop_req *r, int res)
{
	struct cp_cmd *c = r->data;
	uint64_t now = clock_now_ns(), done, total;
	double inst;

	c->ticking = false;
	if (res || !c->x || cp_cli_done(c->x))
		return;
	cp_cli_progress(c->x, &done, &total);
	inst = (double)(done - c->last_bytes) * 1e9 / (double)(now - c->last_ns + 1);
	c->rate = c->last_ns && c->rate > 0 ? 0.7 * c->rate + 0.3 * inst : inst;
	c->last_ns = now;
	c->last_bytes = done;
	cp_draw(c, done, total);
	cp_tick_arm(c);
}

static void cp_tick_arm(struct cp_cmd *c)
{
	c->tick.data = c;
	c->ticking = !loop_timer(c->conn.rl->loop, &c->tick, CP_TICK_NS, cp_tick_cb);
}

/* ---- signals ---- */

static void cp_sig_cb(struct loop_req *r, int res)
{
	struct cp_cmd *c = r->data;

	c->sig_busy = false;
	if (res <= 0)
		return;
	c->signo = sigwatch_signo(c->sw);
	if (c->x)
		cp_cli_abort(c->x);
}

static void cp_sig_arm(struct cp_cmd *c)
{
	static const int signos[] = {SIGINT, SIGTERM, SIGHUP};

	if (!c->sw && sigwatch_new(&c->sw, signos, 3))
		return;
	c->sig_req.data = c;
	c->sig_busy = !sigwatch_next(c->conn.rl->loop, c->sw, &c->sig_req, cp_sig_cb);
}

/* Waits for the loop requests of the command itself to end. */
static void cp_quiesce(struct cp_cmd *c)
{
	if (c->ticking)
		loop_cancel(c->conn.rl->loop, &c->tick);
	if (c->sig_busy)
		loop_cancel(c->conn.rl->loop, &c->sig_req);
	while (c->ticking || c->sig_busy)
		loop_run_once(c->conn.rl->loop, 10000000ull);
	sigwatch_free(c->sw);
	c->sw = NULL;
}

/* ---- arguments ---- */

static int cp_parse_opts(struct cp_cmd *c, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"recursive", no_argument, NULL, 'r'},
	    {"preserve", no_argument, NULL, 'p'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "rRpqh", opts, NULL)) != -1) {
		switch (opt) {
		case 'r':
		case 'R':
			c->recursive = true;
			break;
		case 'p':
			c->preserve = true;
			break;
		case 'q':
			c->quiet = true;
			break;
		case 'h':
			cp_usage(stdout);
			return -1;
		default:
			cp_usage(stderr);
			return CLI_USAGE;
		}
	}
	if (argc - optind < 2) {
		cp_usage(stderr);
		return CLI_USAGE;
	}
	return 0;
}

/* Splits one argument; remote ones must all name the same VM. Returns 1, 0, or CLI_USAGE. */
static int cp_classify(struct cp_cmd *c, const char *arg, const char **path)
{
	char vm[sizeof(c->vm)];
	int ret = cp_cli_split(arg, vm, sizeof(vm), path);

	if (ret < 0) {
		cli_error("cp", "%s: a URI takes a path as [URI]:PATH or URI:/PATH", arg);
		return -CLI_USAGE;
	}
	if (!ret) {
		*path = arg;
		return 0;
	}
	if (c->vm[0] && strcmp(c->vm, vm)) {
		cli_error("cp", "every remote path must be in the same VM (%s, %s)", c->vm, vm);
		return -CLI_USAGE;
	}
	snprintf(c->vm, sizeof(c->vm), "%s", vm);
	return 1;
}

/* Which way the copy goes, from where the paths are. Returns 0 or CLI_USAGE. */
static int cp_direction(struct cp_cmd *c, int nsrc, char **srcs, const char *dst)
{
	int remote = 0, r;

	for (int i = 0; i < nsrc; i++) {
		r = cp_classify(c, srcs[i], &c->paths[i]);
		if (r < 0)
			return CLI_USAGE;
		remote += r;
	}
	r = cp_classify(c, dst, &c->o.dst);
	if (r < 0)
		return CLI_USAGE;
	if (r == 1 && !remote) {
		c->o.dir = CP_PUT;
	} else if (r == 0 && remote == nsrc) {
		c->o.dir = CP_GET;
	} else {
		cli_error("cp", "one side must be in a VM (VM:PATH), the other local");
		return CLI_USAGE;
	}
	return 0;
}

/* '-' stands for stdin (one local source) or stdout (the local target of one source). */
static int cp_dashes(struct cp_cmd *c, int nsrc)
{
	for (int i = 0; i < nsrc; i++) {
		if (c->o.dir == CP_PUT && !strcmp(c->paths[i], "-")) {
			if (nsrc > 1) {
				cli_error("cp", "'-' (standard input) must be the only source");
				return CLI_USAGE;
			}
			c->o.src_stdin = true;
		}
	}
	if (c->o.dir == CP_GET && !strcmp(c->o.dst, "-")) {
		if (nsrc > 1) {
			cli_error("cp", "'-' (standard output) takes a single source");
			return CLI_USAGE;
		}
		c->o.dst = NULL;
	}
	return 0;
}

static int cp_parse(struct cp_cmd *c, int argc, char **argv)
{
	int ret = cp_parse_opts(c, argc, argv), nsrc;

	if (ret)
		return ret;
	nsrc = argc - optind - 1;
	c->paths = calloc((size_t)nsrc, sizeof(char *));
	if (!c->paths)
		return CLI_FAIL;
	ret = cp_direction(c, nsrc, argv + optind, argv[argc - 1]);
	if (!ret)
		ret = cp_dashes(c, nsrc);
	if (ret)
		return ret;
	c->o.srcs = c->paths;
	c->o.nsrc = nsrc;
	c->o.flags = (c->recursive ? CP_F_RECURSIVE : 0) | (c->preserve ? CP_F_PRESERVE : 0);
	c->o.vm = c->vm;
	c->o.report = cp_report;
	c->o.arg = c;
	/* A progress line where someone watches, and not into what stdout shows. */
	c->progress =
	    !c->quiet && sys_isatty(2) && !(c->o.dir == CP_GET && !c->o.dst && sys_isatty(1));
	c->o.total = c->progress;
	return 0;
}

/* ---- the copy ---- */

static int cp_run(struct cp_cmd *c)
{
	const char *why;
	char text[600];
	int ret;

	ret = cp_cli_start(&c->x, c->conn.rl->loop, c->conn.s, &c->o, text, sizeof(text));
	if (ret) {
		cli_error("cp", "%s", text);
		return CLI_FAIL;
	}
	cp_sig_arm(c);
	if (c->progress) {
		c->last_ns = clock_now_ns();
		cp_tick_arm(c);
	}
	while (!cp_cli_done(c->x) && !c->conn.closed)
		loop_run_once(c->conn.rl->loop, 1000000000ull);
	cp_clear_line(c);
	if (!cp_cli_done(c->x)) {
		cli_error("cp", "%s: %s", c->vm, c->conn.close_reason);
		return CLI_CONNECT;
	}
	ret = cp_cli_status(c->x, &why);
	if (c->signo)
		return 128 + c->signo;
	if (why)
		cli_error("cp", "%s", why);
	return ret;
}

int cli_cp(int argc, char **argv)
{
	struct cp_cmd c = {0};
	int ret;

	ret = cp_parse(&c, argc, argv);
	if (ret) {
		free(c.paths);
		return ret < 0 ? CLI_OK : ret;
	}
	ret = cli_connect(&c.conn, c.vm);
	if (ret) {
		cli_close(&c.conn);
		free(c.paths);
		return ret;
	}
	ret = cp_run(&c);
	cp_cli_free(c.x);
	c.x = NULL;
	cp_quiesce(&c);
	cli_close(&c.conn);
	free(c.paths);
	return ret;
}
