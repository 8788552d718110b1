/* vmbusify ping: the session's round trip to a VM, and what the VM's agent is. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "core/ping.h"
#include "platform/sys.h"

struct cli_ping {
	struct cli_conn *c;
	struct samples samples;
	bool json;
	bool got;
	uint32_t sent;
};

static void cli_ping_usage(void)
{
	fprintf(stderr, "usage: vmbusify ping [-c COUNT] [-i SECONDS] [--json] VM\n");
}

static void cli_ping_pong(struct cli_conn *c, uint64_t rtt_ns)
{
	struct cli_ping *p = c->app;
	struct strbuf line = {0};

	p->got = true;
	samples_add(&p->samples, rtt_ns);
	if (p->json)
		return;
	ping_reply_line(&line, c->target, p->sent, rtt_ns);
	fputs(line.p ? line.p : "", stdout);
	fflush(stdout);
	strbuf_free(&line);
}

/* Runs the loop for ns nanoseconds, serving whatever comes meanwhile. */
static void cli_ping_sleep(struct cli_conn *c, uint64_t ns)
{
	uint64_t deadline = clock_now_ns() + ns, now;

	while (!c->closed && (now = clock_now_ns()) < deadline)
		loop_run_once(c->rl->loop, deadline - now);
}

/* Pings over our own session: the target was dialed directly. */
static int cli_ping_direct(struct cli_conn *c, uint32_t count, uint32_t interval_ms, bool json)
{
	struct cli_ping p = {.c = c, .json = json};
	struct strbuf out = {0};
	const char *error = NULL;

	c->app = &p;
	c->on_pong = cli_ping_pong;
	while (p.sent < count && !error) {
		p.got = false;
		if (c->closed) {
			error = c->close_reason;
			break;
		}
		if (session_ping(c->s)) {
			error = "the session is closed";
			break;
		}
		p.sent++;
		if (!cli_run_until(c, &p.got))
			error = c->close_reason;
		if (p.sent < count && interval_ms)
			cli_ping_sleep(c, (uint64_t)interval_ms * 1000000ull);
	}
	ping_report(&out, c->target, p.sent, &p.samples, c->s ? session_peer(c->s) : NULL,
		    c->s ? session_version(c->s) : 0, error, json);
	fputs(out.p ? out.p : "", stdout);
	strbuf_free(&out);
	samples_free(&p.samples);
	if (error)
		cli_error(c->target, "%s", error);
	return error || p.sent != count ? CLI_FAIL : CLI_OK;
}

/* Asks the daemon to ping the VM over the daemon's own session to it. */
static int cli_ping_daemon(struct cli_conn *c, uint32_t count, uint32_t interval_ms, bool json)
{
	char cmd[64];
	struct strbuf out = {0};
	int ret;

	snprintf(cmd, sizeof(cmd), "ping %u %u%s", count, interval_ms, json ? " json" : "");
	/* Replies show as they come; the daemon reports a lost VM in the summary. */
	ret = cli_control(c, cmd, &out, true);
	if (!ret && out.p &&
	    (json ? !strstr(out.p, "\"error\":\"\"") : !!strstr(out.p, "error: "))) {
		cli_error(c->target, "the VM stopped answering (see the summary)");
		ret = CLI_FAIL;
	}
	strbuf_free(&out);
	return ret;
}

int cli_ping(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"count", required_argument, NULL, 'c'},
	    {"interval", required_argument, NULL, 'i'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	unsigned long count = 5;
	double interval = 0.2;
	struct cli_conn c;
	bool json = false;
	char *end;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "c:i:jh", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			count = strtoul(optarg, &end, 10);
			if (*end || !count || count > 100000) {
				cli_error("ping", "count must be 1 to 100000, not '%s'", optarg);
				return CLI_USAGE;
			}
			break;
		case 'i':
			interval = strtod(optarg, &end);
			if (*end || interval < 0 || interval > 60) {
				cli_error("ping", "interval must be 0 to 60 seconds, not '%s'",
					  optarg);
				return CLI_USAGE;
			}
			break;
		case 'j':
			json = true;
			break;
		default:
			cli_ping_usage();
			return opt == 'h' ? CLI_OK : CLI_USAGE;
		}
	}
	if (optind + 1 != argc) {
		cli_ping_usage();
		return CLI_USAGE;
	}
	ret = cli_connect(&c, argv[optind]);
	if (!ret) {
		uint32_t ms = (uint32_t)(interval * 1000.0);

		ret = c.via_daemon ? cli_ping_daemon(&c, (uint32_t)count, ms, json)
				   : cli_ping_direct(&c, (uint32_t)count, ms, json);
	}
	cli_close(&c);
	return ret;
}
