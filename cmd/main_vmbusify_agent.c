/* vmbusify-agent: runs in each VM and serves the host's sessions on the hypervisor socket. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/agent.h"
#include "core/log.h"
#include "platform/net.h"
#include "platform/proc.h"
#include "platform/sys.h"

static void agent_usage(FILE *f)
{
	fprintf(f,
		"usage: vmbusify-agent [--listen URI]... [--token-file FILE] [--threads N]\n"
		"                      [--proxy ADDR:PORT]... [--no-proxy] [--vnet-tun NAME] "
		"[--no-vnet]\n"
		"                      [--backend uring|epoll] [--log-level LEVEL] [--syslog]\n"
		"default: --listen vsock://:%u --proxy 127.0.0.1:1080 --proxy [::1]:1080\n"
		"The proxy port speaks SOCKS5, SOCKS4/4a and HTTP; connections leave through\n"
		"the host, under its egress policy. vnet: when the host offers it, the VM\n"
		"joins its virtual subnet through a TUN device (default vmbus0).\n",
		VB_DEFAULT_PORT);
}

static int agent_die(const char *what, const char *why)
{
	fprintf(stderr, "vmbusify-agent: %s: %s\n", what, why);
	return 1;
}

/*
 * Opens the proxy port: the addresses given must all work; of the default
 * ones, those that cannot be bound (no IPv6, a port in use) are skipped
 * with a warning, as the proxy is a convenience there.
 */
static int agent_start_proxy(struct agent *a, struct net_addr *addrs, int n)
{
	char why[300];
	bool dflt = n == 0;

	if (dflt) {
		net_addr_parse("127.0.0.1:1080", &addrs[n++]);
		net_addr_parse("[::1]:1080", &addrs[n++]);
	}
	if (agent_proxy(a, addrs, n, dflt, why, sizeof(why)) == 0)
		return 0;
	if (!dflt)
		return agent_die("--proxy", why);
	vb_warn("proxy port: %s; going on without it", why);
	return 0;
}

/*
 * The programs exec'd for the host carry VMBUSIFY_AGENT=<first channel URI>.
 * A predecessor on the same channel that was killed (SIGKILL, a crash) took
 * its direct children with it (PR_SET_PDEATHSIG) but not what they started:
 * those go now, before this agent serves anyone. Returns 0 or -ENOMEM.
 */
static int agent_sweep(const char *uri)
{
	char mark[4200];
	int n;

	snprintf(mark, sizeof(mark), "VMBUSIFY_AGENT=%s", uri);
	n = proc_sweep_marked(mark);
	if (n > 0)
		vb_warn("killed what a previous agent on %s left running (%d process%s found)", uri,
			n, n == 1 ? "" : "es");
	return proc_set_owner_mark(mark);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"token-file", required_argument, NULL, 'k'},
	    {"threads", required_argument, NULL, 't'},
	    {"backend", required_argument, NULL, 'b'},
	    {"log-level", required_argument, NULL, 'L'},
	    {"syslog", no_argument, NULL, 's'},
	    {"proxy", required_argument, NULL, 'P'},
	    {"no-proxy", no_argument, NULL, 'N'},
	    {"vnet-tun", required_argument, NULL, 'T'},
	    {"no-vnet", no_argument, NULL, 'n'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {0},
	};
	const char *listen[AGENT_MAX_LISTEN + 1];
	enum loop_backend backend = LOOP_BACKEND_AUTO;
	enum vb_log_level lvl = VB_LOG_INFO;
	const char *token = NULL;
	char why[300], dflt[64];
	/* Static, as vmbusifyd's: what is live at exit stays reachable for LeakSanitizer. */
	static struct agent a;
	int nlisten = 0, threads = 0, opt, ret;
	struct net_addr proxy[FRONT_LISTEN_MAX + 2];
	int nproxy = 0;
	bool no_proxy = false, no_vnet = false;
	const char *vnet_tun = NULL;

	sys_std_fds_open();
	while ((opt = getopt_long(argc, argv, "l:k:t:b:L:shVP:NT:n", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			if (nlisten == AGENT_MAX_LISTEN)
				return agent_die("--listen", "too many addresses");
			listen[nlisten++] = optarg;
			break;
		case 'k':
			token = optarg;
			break;
		case 't':
			threads = atoi(optarg);
			if (threads < 1 || threads > 256)
				return agent_die("--threads", "expected 1 to 256");
			break;
		case 'b':
			if (loop_backend_parse(optarg, &backend))
				return agent_die("--backend", "expected uring or epoll");
			break;
		case 'L':
			if (log_level_parse(optarg, &lvl))
				return agent_die("--log-level",
						 "expected error, warn, info or debug");
			break;
		case 's':
			sys_log_to_syslog("vmbusify-agent");
			break;
		case 'P':
			if (nproxy == FRONT_LISTEN_MAX)
				return agent_die("--proxy", "too many addresses");
			if (net_addr_parse(optarg, &proxy[nproxy++]))
				return agent_die(optarg,
						 "expected ADDR:PORT, e.g. 127.0.0.1:1080 or "
						 "[::1]:1080");
			break;
		case 'N':
			no_proxy = true;
			break;
		case 'T':
			if (!*optarg || strlen(optarg) > 15 || strchr(optarg, '/'))
				return agent_die("--vnet-tun",
						 "expected a device name of 1 to 15 characters");
			vnet_tun = optarg;
			break;
		case 'n':
			no_vnet = true;
			break;
		case 'V':
			printf("vmbusify-agent %s\n", VB_VERSION);
			return 0;
		case 'h':
			agent_usage(stdout);
			return 0;
		default:
			agent_usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		agent_usage(stderr);
		return 2;
	}
	log_setup("vmbusify-agent", lvl);
	if (!nlisten) {
		snprintf(dflt, sizeof(dflt), "vsock://:%u", VB_DEFAULT_PORT);
		listen[nlisten++] = dflt;
	}
	sys_ignore_sigpipe();
	sys_raise_nofile();
	sys_block_termination();
	ret = agent_init(&a, threads, backend, token);
	if (ret)
		return agent_die("event loop", sys_strerror(ret));
	for (int i = 0; i < nlisten; i++)
		if (agent_listen(&a, listen[i], why, sizeof(why)))
			return agent_die(listen[i], why);
	ret = agent_sweep(listen[0]);
	if (ret)
		return agent_die("start", sys_strerror(ret));
	a.vnet = !no_vnet;
	a.vnet_attach = vnet_agent_attach;
	if (vnet_tun)
		snprintf(a.vnet_cfg.tun, sizeof(a.vnet_cfg.tun), "%s", vnet_tun);
	if (!no_proxy && agent_start_proxy(&a, proxy, nproxy))
		return 1;
	if (agent_start(&a, why, sizeof(why)))
		return agent_die("start", why);
	vb_info("listening on %d address%s with %d loop%s (%s)", nlisten, nlisten == 1 ? "" : "es",
		a.rt.n, a.rt.n == 1 ? "" : "s",
		loop_backend_name(loop_backend(a.rt.loops[0].loop)));
	ret = sys_wait_termination();
	vb_info("stopping on signal %d", ret);
	agent_stop(&a);
	return 0;
}
