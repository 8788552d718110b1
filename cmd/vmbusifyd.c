/* vmbusifyd's life, on both systems: arguments and configuration in, a running daemon out. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/config.h"
#include "core/log.h"
#include "daemon/daemon.h"
#include "platform/net.h"
#include "platform/sys.h"
#include "proxy/resolve.h"
#include "cmd/vmbusifyd.h"

static void vmbusifyd_usage(FILE *f, const struct vmbusifyd_defaults *def)
{
	fprintf(f,
		"usage: vmbusifyd [--config FILE] [--vm NAME=URI]... [--control URI]\n"
		"                 [--threads N] [--backend NAME] [--log-level LEVEL]\n"
		"                 [--token-file FILE] [--syslog] [--state-dir DIR|none]\n"
		"                 [--proxy ADDR:PORT]... [--no-proxy]\n"
		"%s"
		"default: --config %s --control %s\n"
		"         --state-dir %s --proxy 127.0.0.1:1080 --proxy [::1]:1080\n"
		"(the proxy port: SOCKS5 and HTTP CONNECT to <vm>.vmbus:PORT and\n"
		"<address>.<vm>.vmbus:PORT)\n",
		def->usage_extra ? def->usage_extra : "", def->config, def->control,
		def->state_dir[0] ? def->state_dir : "none");
}

/* The running main's defaults: where vmbusifyd_die() sends its line. */
static const struct vmbusifyd_defaults *vmbusifyd_def;

/* "vmbusifyd: WHAT: WHY" (what NULL: "vmbusifyd: WHY") on stderr or to on_error; returns 1. */
static int vmbusifyd_die(const char *what, const char *why)
{
	char line[800];

	snprintf(line, sizeof(line), "vmbusifyd: %s%s%s", what ? what : "", what ? ": " : "", why);
	if (vmbusifyd_def && vmbusifyd_def->on_error)
		vmbusifyd_def->on_error(line);
	else
		fprintf(stderr, "%s\n", line);
	return 1;
}

/* Loads the configuration file; a missing default file is not an error. */
static int vmbusifyd_load(const char *path, bool explicit, struct config *cfg, char *why,
			  size_t len)
{
	char *buf;
	size_t n;
	int ret = sys_read_file(path, 1u << 20, &buf, &n);

	if (ret == -ENOENT && !explicit)
		return 0;
	if (ret) {
		snprintf(why, len, "%s", sys_strerror(ret));
		return ret;
	}
	ret = config_parse(buf, n, cfg, why, len);
	free(buf);
	return ret;
}

/* --vm NAME=URI (argv is left as it was: ps shows what was started). */
static int vmbusifyd_vm_arg(struct config *cfg, const char *arg, char *why, size_t len)
{
	const char *eq = strchr(arg, '=');
	char name[128];

	if (!eq || (size_t)(eq - arg) >= sizeof(name)) {
		snprintf(why, len, "expected NAME=URI, not '%s'", arg);
		return -EINVAL;
	}
	snprintf(name, sizeof(name), "%.*s", (int)(eq - arg), arg);
	return config_add_vm(cfg, name, eq + 1, why, len);
}

/*
 * vmbusifyd_main() - parses argv, reads the configuration, runs the daemon
 * until a termination signal (a console event or the service's stop on
 * Windows), then stops it.
 * Return: the process's exit code (0 after a clean stop, 1 on an error, 2
 * for a usage error), with one line on stderr for an error.
 */
int vmbusifyd_main(int argc, char **argv, const struct vmbusifyd_defaults *def)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"vm", required_argument, NULL, 'm'},
	    {"control", required_argument, NULL, 'C'},
	    {"threads", required_argument, NULL, 't'},
	    {"backend", required_argument, NULL, 'b'},
	    {"log-level", required_argument, NULL, 'L'},
	    {"token-file", required_argument, NULL, 'k'},
	    {"syslog", no_argument, NULL, 's'},
	    {"proxy", required_argument, NULL, 'P'},
	    {"no-proxy", no_argument, NULL, 'N'},
	    {"state-dir", required_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {0},
	};
	const char *conf = def->config, *control = NULL, *token = NULL, *state = NULL;
	const char *backend_name = NULL, *level_name = NULL;
	struct daemon_config dc = {0};
	char *vm_args[256];
	int nvm_args = 0, threads = 0, opt;
	bool conf_explicit = false;
	enum vb_log_level lvl;
	/* Static like d: the error exits below end the process with it still reachable. */
	static struct config cfg;
	/*
	 * Static: at exit, live sessions are not torn down but stay reachable
	 * from here (and from the loops' in-flight lists), so LeakSanitizer
	 * reports only memory that was really lost.
	 */
	static struct daemon d;
	char why[400];

	vmbusifyd_def = def;
	while ((opt = getopt_long(argc, argv, "c:m:C:t:b:L:k:shVP:NS:", opts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			conf = optarg;
			conf_explicit = true;
			break;
		case 'm':
			if (nvm_args == 256)
				return vmbusifyd_die("--vm", "too many VMs on the command line");
			vm_args[nvm_args++] = optarg;
			break;
		case 'C':
			control = optarg;
			break;
		case 't':
			threads = atoi(optarg);
			if (threads < 1 || threads > 256)
				return vmbusifyd_die("--threads", "expected 1 to 256");
			break;
		case 'b':
			backend_name = optarg;
			break;
		case 'L':
			level_name = optarg;
			break;
		case 'k':
			token = optarg;
			break;
		case 's':
			sys_log_to_syslog("vmbusifyd");
			break;
		case 'P':
			if (dc.nproxy == FRONT_LISTEN_MAX)
				return vmbusifyd_die("--proxy", "too many addresses");
			if (net_addr_parse(optarg, &dc.proxy[dc.nproxy++]))
				return vmbusifyd_die(optarg,
						     "expected ADDR:PORT, e.g. 127.0.0.1:1080 or "
						     "[::1]:1080");
			break;
		case 'N':
			dc.no_proxy = true;
			break;
		case 'S':
			if (strcmp(optarg, "none") && !sys_path_is_absolute(optarg))
				return vmbusifyd_die("--state-dir",
						     "expected an absolute path or 'none'");
			state = optarg;
			break;
		case 'V':
			printf("vmbusifyd %s\n", VB_VERSION);
			return 0;
		case 'h':
			vmbusifyd_usage(stdout, def);
			return 0;
		default:
			vmbusifyd_usage(stderr, def);
			return 2;
		}
	}
	if (optind != argc) {
		vmbusifyd_usage(stderr, def);
		return 2;
	}
	config_init(&cfg);
	if (vmbusifyd_load(conf, conf_explicit, &cfg, why, sizeof(why)))
		return vmbusifyd_die(conf, why);
	/*
	 * This system's defaults: the configuration starts from core's (Linux's),
	 * so a value still equal to those was not set by the file.
	 */
	if (!strcmp(cfg.control, CONFIG_DEFAULT_CONTROL))
		snprintf(cfg.control, sizeof(cfg.control), "%s", def->control);
	if (!strcmp(cfg.state_dir, CONFIG_DEFAULT_STATE_DIR))
		snprintf(cfg.state_dir, sizeof(cfg.state_dir), "%s", def->state_dir);
	/* The lease file follows: Windows keeps it in %ProgramData%\vmbusify, Linux where it was.
	 */
	if (!strcmp(cfg.vnet.leases, CONFIG_VNET_LEASES) && def->state_dir[0] &&
	    strcmp(def->state_dir, CONFIG_DEFAULT_STATE_DIR))
		snprintf(cfg.vnet.leases, sizeof(cfg.vnet.leases), "%s/vnet.leases",
			 def->state_dir);
	for (int i = 0; i < nvm_args; i++)
		if (vmbusifyd_vm_arg(&cfg, vm_args[i], why, sizeof(why)))
			return vmbusifyd_die("--vm", why);
	/* The command line wins over the file. */
	if (log_level_parse(level_name ? level_name : cfg.log_level, &lvl))
		return vmbusifyd_die("log-level", "expected error, warn, info or debug");
	log_setup("vmbusifyd", lvl);
	dc.control = control ? control : cfg.control;
	dc.threads = threads ? threads : cfg.threads;
	dc.token_file = token;
	if (state)
		dc.state_dir = strcmp(state, "none") ? state : "";
	else
		dc.state_dir = cfg.state_dir;
	if (def->check_paths &&
	    def->check_paths(conf, conf_explicit, dc.state_dir, why, sizeof(why)) < 0)
		return vmbusifyd_die(NULL, why);
	if (strcmp(backend_name ? backend_name : cfg.backend, "auto") &&
	    loop_backend_parse(backend_name ? backend_name : cfg.backend, &dc.backend))
		return vmbusifyd_die("backend", "expected auto, uring or epoll");
	sys_ignore_sigpipe();
	sys_raise_nofile();
	sys_block_termination();
	if (resolve_global_init())
		return vmbusifyd_die("start", "cannot set up the resolver library");
	if (daemon_init(&d, &dc, why, sizeof(why)))
		return vmbusifyd_die("start", why);
	if (daemon_set_egress(&d, &cfg, why, sizeof(why)))
		return vmbusifyd_die(conf, why);
	if (daemon_set_vnet(&d, &cfg, why, sizeof(why)))
		return vmbusifyd_die("vnet", why);
	for (size_t i = 0; i < cfg.nvms; i++)
		if (daemon_add_vm(&d, &cfg.vms[i], why, sizeof(why)))
			return vmbusifyd_die(cfg.vms[i].name, why);
	config_free(&cfg);
	if (daemon_start(&d, &dc, why, sizeof(why))) {
		daemon_stop(&d);
		return vmbusifyd_die("start", why);
	}
	if (def->on_ready)
		def->on_ready();
	opt = sys_wait_termination();
	vb_info("stopping on signal %d", opt);
	daemon_stop(&d);
	return 0;
}
