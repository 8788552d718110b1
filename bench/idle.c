/* vb-idle: opens K real sessions to an agent, lets them sit idle and reports the memory they cost.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/kinds.h"
#include "core/link.h"
#include "core/log.h"
#include "core/runtime.h"
#include "core/uri.h"
#include "platform/sys.h"
#include "platform/transport.h"

/*
 * Each session is made as the CLI makes one (a blocking dial, then a link
 * with the CLI's settings: HELLO both ways, no keepalive), all on one loop
 * and its chunk pool, and none opens a stream. Once all are ready and the
 * loop has settled, one JSON line goes to stdout: the process's VmRSS before
 * the first dial and after the last, and the growth per session. The
 * sessions then stay open until SIGTERM or SIGINT (or --hold seconds), so
 * that the caller can read the agent's memory meanwhile.
 */

#define IDLE_MAX	  10000
#define IDLE_READY_NS	  (5000ull * 1000 * 1000)
#define IDLE_SETTLE_NS	  (200ull * 1000 * 1000)
#define IDLE_TICK_NS	  (100ull * 1000 * 1000)
#define IDLE_DRAIN_ROUNDS 100

struct idle_conn {
	struct link *link;
	bool started; /* link_new() succeeded: on_freed will come */
	bool ready, closed, freed;
};

static volatile sig_atomic_t idle_stop;

static void idle_on_signal(int sig)
{
	idle_stop = sig;
}

static void idle_on_ready(struct link *lk)
{
	struct idle_conn *c = link_app(lk);

	c->ready = true;
}

static void idle_on_close(struct link *lk, int err, const char *reason)
{
	struct idle_conn *c = link_app(lk);

	c->closed = true;
	c->link = NULL;
}

static void idle_on_freed(void *app)
{
	struct idle_conn *c = app;

	c->freed = true;
}

static const struct link_ops idle_link_ops = {
    .on_ready = idle_on_ready,
    .on_close = idle_on_close,
    .on_freed = idle_on_freed,
};

/* The process's resident set in KiB, from /proc/self/status; -errno on failure. */
static long idle_rss_kib(void)
{
	char line[256];
	long kib = -ENOENT;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Runs the loop for ns nanoseconds, or until a termination signal. */
static void idle_run_for(struct rt_loop *rl, uint64_t ns)
{
	uint64_t end = clock_now_ns() + ns;

	while (!idle_stop && clock_now_ns() < end)
		loop_run_once(rl->loop, IDLE_TICK_NS);
}

/*
 * Dials u and starts a session on rl with the CLI's settings, then runs the
 * loop until it is ready. Returns 0 or a negative errno; why says what failed.
 */
static int idle_connect(struct idle_conn *c, const struct uri *u, struct rt_loop *rl, char *why,
			size_t whylen)
{
	struct transport_opts o = {.connect_timeout_ms = 5000};
	struct link_config cfg;
	uint64_t end;
	pl_fd fd;
	int ret;

	ret = transport_dial_sync(u, &o, &fd, why, whylen);
	if (ret)
		return ret;
	link_config_defaults(&cfg);
	cfg.session.dialer = true;
	cfg.session.role = FRAME_ROLE_CLIENT;
	cfg.session.name = "vb-idle " VB_VERSION;
	cfg.keepalive_ms = 0;
	cfg.dead_ms = 0;
	ret = link_new(&c->link, rl->loop, &rl->chunks, fd, &cfg, &idle_link_ops, c);
	if (ret) {
		snprintf(why, whylen, "cannot start a session: %s", sys_strerror(ret));
		return ret;
	}
	c->started = true;
	end = clock_now_ns() + IDLE_READY_NS;
	while (!c->ready && !c->closed && !idle_stop && clock_now_ns() < end)
		loop_run_once(rl->loop, IDLE_TICK_NS);
	if (c->ready)
		return 0;
	snprintf(why, whylen, "the session did not become ready");
	return -ETIMEDOUT;
}

/* Opens n sessions to u on rl; returns how many are ready (stops at the first failure). */
static int idle_open(struct idle_conn *conns, int n, const struct uri *u, struct rt_loop *rl)
{
	char why[300];

	for (int i = 0; i < n; i++) {
		if (idle_stop || idle_connect(&conns[i], u, rl, why, sizeof(why))) {
			if (!idle_stop)
				fprintf(stderr, "vb-idle: session %d: %s\n", i + 1, why);
			return i;
		}
	}
	return n;
}

/* Says GOAWAY on every session and waits (a second at most) until all are freed. */
static void idle_close(struct idle_conn *conns, int n, struct rt_loop *rl)
{
	bool all;

	for (int i = 0; i < n; i++)
		if (conns[i].link)
			link_shutdown(conns[i].link, 0, "done");
	for (int round = 0; round < IDLE_DRAIN_ROUNDS; round++) {
		all = true;
		for (int i = 0; i < n; i++)
			all = all && (conns[i].freed || !conns[i].started);
		if (all)
			return;
		loop_run_once(rl->loop, 10000000ull);
	}
}

static int idle_usage(void)
{
	fprintf(stderr, "usage: vb-idle URI SESSIONS [--hold SECONDS]\n");
	return 2;
}

/* Reports the memory once every session is ready; then holds them. */
static void idle_report(int n, long before, long after, struct rt_loop *rl, double hold)
{
	printf("{\"sessions\":%d,\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,"
	       "\"kib_per_session\":%.2f}\n",
	       n, before, after, (double)(after - before) / n);
	fflush(stdout);
	idle_run_for(rl, (uint64_t)(hold * 1e9));
}

int main(int argc, char **argv)
{
	struct idle_conn *conns = NULL;
	double hold = 1e9;
	struct runtime rt;
	long before, after;
	char why[300];
	struct uri u;
	int n, opened, ret;

	if (argc == 5 && !strcmp(argv[3], "--hold"))
		hold = strtod(argv[4], NULL);
	else if (argc != 3)
		return idle_usage();
	n = atoi(argv[2]);
	if (n < 1 || n > IDLE_MAX || hold <= 0 || hold > 1e9)
		return idle_usage();
	if (uri_parse(argv[1], &u, why, sizeof(why))) {
		fprintf(stderr, "vb-idle: %s: %s\n", argv[1], why);
		return 2;
	}
	log_setup("vb-idle", VB_LOG_WARN);
	sys_ignore_sigpipe();
	signal(SIGTERM, idle_on_signal);
	signal(SIGINT, idle_on_signal);
	conns = calloc((size_t)n, sizeof(*conns));
	ret = conns ? runtime_init_single(&rt, LOOP_BACKEND_AUTO) : -ENOMEM;
	if (ret) {
		fprintf(stderr, "vb-idle: cannot start: %s\n", sys_strerror(ret));
		free(conns);
		return 1;
	}
	before = idle_rss_kib();
	opened = idle_open(conns, n, &u, &rt.loops[0]);
	idle_run_for(&rt.loops[0], IDLE_SETTLE_NS);
	after = idle_rss_kib();
	if (opened == n)
		idle_report(n, before, after, &rt.loops[0], hold);
	/* A session that failed half-way may still hold a link: close it too. */
	idle_close(conns, opened < n ? opened + 1 : n, &rt.loops[0]);
	runtime_destroy(&rt);
	free(conns);
	return opened == n ? 0 : 1;
}
