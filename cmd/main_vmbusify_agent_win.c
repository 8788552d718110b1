/* vmbusify-agent.exe: the agent of a Windows guest: exec, cp, bench, TCP streams, the proxy port.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/agent.h"
#include "core/log.h"
#include "platform/net.h"
#include "platform/sys.h"

/*
 * The wiring is the Linux agent's (cmd/agent.c): listeners accept on loop 0,
 * each session runs on a loop picked round-robin, the host's streams go to
 * exec (exec/srv.c over platform/win/proc.c: pipes, or ConPTY for -t), cp
 * (exec/cp_srv.c over exec/win/cp_fs.c), bench and TCP (dialing inside the
 * VM, and -R forwards), and the VM's proxy port sends its connections out
 * over the latest session from a daemon. What differs is here: the default
 * channel (hvsock), and no vnet (no TUN device on Windows yet): the agent
 * never asks the host to attach one.
 */

#define WAGENT_PROXY_MAX FRONT_LISTEN_MAX

struct wagent_opts {
	const char *listen[AGENT_MAX_LISTEN];
	int nlisten;
	const char *token;
	int threads;
	enum vb_log_level lvl;
	struct net_addr proxy[WAGENT_PROXY_MAX];
	int nproxy;
	bool no_proxy;
};

static void wagent_usage(FILE *f)
{
	fprintf(f,
		"usage: vmbusify-agent [--listen URI]... [--token-file FILE] [--threads N]\n"
		"                      [--proxy ADDR:PORT]... [--no-proxy] [--log-level LEVEL]\n"
		"default: --listen hvsock://:%u (any partition, the vsock-template service\n"
		"GUID of port %u) --proxy 127.0.0.1:1080 --proxy [::1]:1080.\n"
		"tcp://ADDR:PORT needs --token-file. The proxy port speaks SOCKS5, SOCKS4/4a\n"
		"and HTTP; connections leave through the host, under its egress policy.\n"
		"exec -t runs programs on a pseudo console (ConPTY). vnet is not built for\n"
		"Windows yet.\n",
		VB_DEFAULT_PORT, VB_DEFAULT_PORT);
}

static int wagent_die(const char *what, const char *why)
{
	fprintf(stderr, "vmbusify-agent: %s: %s\n", what, why);
	return 1;
}

/* One option; returns -1 to go on, else the exit code. */
static int wagent_option(int opt, const char *arg, struct wagent_opts *o)
{
	switch (opt) {
	case 'l':
		if (o->nlisten == AGENT_MAX_LISTEN)
			return wagent_die("--listen", "too many addresses");
		o->listen[o->nlisten++] = arg;
		return -1;
	case 'k':
		o->token = arg;
		return -1;
	case 't':
		o->threads = atoi(arg);
		if (o->threads < 1 || o->threads > 256)
			return wagent_die("--threads", "expected 1 to 256");
		return -1;
	case 'L':
		if (log_level_parse(arg, &o->lvl))
			return wagent_die("--log-level", "expected error, warn, info or debug");
		return -1;
	case 'P':
		if (o->nproxy == WAGENT_PROXY_MAX)
			return wagent_die("--proxy", "too many addresses");
		if (net_addr_parse(arg, &o->proxy[o->nproxy++]))
			return wagent_die(arg,
					  "expected ADDR:PORT, e.g. 127.0.0.1:1080 or [::1]:1080");
		return -1;
	case 'N':
		o->no_proxy = true;
		return -1;
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

/* Parses the command line; returns -1 to go on, else the exit code. */
static int wagent_options(int argc, char **argv, struct wagent_opts *o)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"token-file", required_argument, NULL, 'k'},
	    {"threads", required_argument, NULL, 't'},
	    {"log-level", required_argument, NULL, 'L'},
	    {"proxy", required_argument, NULL, 'P'},
	    {"no-proxy", no_argument, NULL, 'N'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {0},
	};
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "l:k:t:L:P:NhV", opts, NULL)) != -1) {
		ret = wagent_option(opt, optarg, o);
		if (ret >= 0)
			return ret;
	}
	if (optind != argc) {
		wagent_usage(stderr);
		return 2;
	}
	if (o->no_proxy && o->nproxy)
		return wagent_die("--no-proxy", "cannot be given with --proxy");
	return -1;
}

/*
 * Opens the proxy port, as the Linux agent does: the addresses given must
 * all work; of the default ones, those that cannot be bound (no IPv6, a
 * port in use) are skipped with a warning, as the proxy is a convenience
 * there. Returns 0 or an exit code.
 */
static int wagent_start_proxy(struct agent *a, struct wagent_opts *o)
{
	bool dflt = o->nproxy == 0;
	char why[300];

	if (dflt) {
		net_addr_parse("127.0.0.1:1080", &o->proxy[o->nproxy++]);
		net_addr_parse("[::1]:1080", &o->proxy[o->nproxy++]);
	}
	if (agent_proxy(a, o->proxy, o->nproxy, dflt, why, sizeof(why)) == 0)
		return 0;
	if (!dflt)
		return wagent_die("--proxy", why);
	vb_warn("proxy port: %s; going on without it", why);
	return 0;
}

int main(int argc, char **argv)
{
	struct wagent_opts o = {.lvl = VB_LOG_INFO};
	/* Static, as on Linux: what is live at exit stays reachable. */
	static struct agent a;
	char why[300], dflt[64];
	int ret;

	sys_std_fds_open();
	ret = wagent_options(argc, argv, &o);
	if (ret >= 0)
		return ret;
	log_setup("vmbusify-agent", o.lvl);
	if (!o.nlisten) {
		snprintf(dflt, sizeof(dflt), "hvsock://:%u", VB_DEFAULT_PORT);
		o.listen[o.nlisten++] = dflt;
	}
	sys_block_termination();
	ret = agent_init(&a, o.threads, LOOP_BACKEND_AUTO, o.token);
	if (ret)
		return wagent_die("event loop", sys_strerror(ret));
	a.name = "vmbusify-agent " VB_VERSION " (windows)";
	a.vnet = false;
	for (int i = 0; i < o.nlisten; i++)
		if (agent_listen(&a, o.listen[i], why, sizeof(why)))
			return wagent_die(o.listen[i], why);
	if (!o.no_proxy && wagent_start_proxy(&a, &o))
		return 1;
	if (agent_start(&a, why, sizeof(why)))
		return wagent_die("start", why);
	vb_info("listening on %d address%s with %d loop%s (%s)", o.nlisten,
		o.nlisten == 1 ? "" : "es", a.rt.n, a.rt.n == 1 ? "" : "s",
		loop_backend_name(loop_backend(a.rt.loops[0].loop)));
	ret = sys_wait_termination();
	vb_info("stopping on signal %d", ret);
	agent_stop(&a);
	return 0;
}
