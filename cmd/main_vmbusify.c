/* vmbusify (and vmbusexec): the host's command-line tool. A table of subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "cmd/cli.h"
#include "platform/sys.h"
#include "core/log.h"

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} subcommands[] = {
    {"exec", cli_exec, "run a program in VMs (also installed as vmbusexec)"},
    {"cp", cli_cp, "copy files and directories between the host and a VM"},
    {"ls", cli_ls, "list the VMs the daemon holds"},
    {"forward", cli_forward, "port forwards: host to VM (-L) and VM to host (-R)"},
    {"proxy", cli_proxy, "proxy settings for a VM's tools (proxy env)"},
    {"vnet", cli_vnet, "the virtual subnet: each VM's addresses and traffic (vnet status)"},
    {"ping", cli_ping, "round-trip time to a VM, and its agent's version"},
    {"bench", cli_bench, "measure a VM's channel: RTT and throughput both ways"},
    {"lab", cli_lab, "the built-in lab: up, down, status"},
};

static void main_usage(FILE *f)
{
	fprintf(f, "usage: vmbusify [--control PATH] [--backend uring|epoll] COMMAND [ARGS]\n\n");
	for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++)
		fprintf(f, "  %-8s %s\n", subcommands[i].name, subcommands[i].help);
	fprintf(f, "\nA VM is a name known to vmbusifyd, a URI (unix:///path, vsock://CID:PORT,\n"
		   "hybrid:///path:PORT, serial:///dev/..., tcp://host:port, hvsock://VMID) or a "
		   "vsock CID.\n");
}

/* Global options come before the subcommand; returns the index of the subcommand. */
static int main_globals(int argc, char **argv)
{
	int i = 1;

	for (; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--control") && i + 1 < argc) {
			cli_global.control = argv[++i];
		} else if (!strcmp(argv[i], "--token-file") && i + 1 < argc) {
			cli_global.token_file = argv[++i];
		} else if (!strcmp(argv[i], "--backend") && i + 1 < argc) {
			if (loop_backend_parse(argv[++i], &cli_global.backend)) {
				cli_error("--backend", "expected uring or epoll, not '%s'",
					  argv[i]);
				exit(CLI_USAGE);
			}
		} else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose")) {
			log_setup("vmbusify", VB_LOG_DEBUG);
		} else if (!strcmp(argv[i], "--version")) {
			printf("vmbusify %s\n", VB_VERSION);
			exit(CLI_OK);
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			main_usage(stdout);
			exit(CLI_OK);
		} else {
			cli_error(argv[i], "unknown option (see vmbusify --help)");
			exit(CLI_USAGE);
		}
	}
	return i;
}

/* True when the program was started as vmbusexec (any directory; "vmbusexec.exe" on Windows). */
static bool main_is_vmbusexec(const char *argv0)
{
	const char *base = argv0;

	for (const char *p = argv0; *p; p++)
		if (*p == '/' || *p == '\\')
			base = p + 1;
	return !strcmp(base, "vmbusexec") || !strcasecmp(base, "vmbusexec.exe");
}

int main(int argc, char **argv)
{
	int i;

	sys_std_fds_open();
	log_setup("vmbusify", VB_LOG_WARN);
	if (argv[0] && main_is_vmbusexec(argv[0]))
		return cli_exec(argc, argv);
	i = main_globals(argc, argv);
	if (!cli_global.backend && getenv("VMBUSIFY_BACKEND") && *getenv("VMBUSIFY_BACKEND") &&
	    loop_backend_parse(getenv("VMBUSIFY_BACKEND"), &cli_global.backend)) {
		cli_error("VMBUSIFY_BACKEND", "expected uring, epoll or auto, not '%s'",
			  getenv("VMBUSIFY_BACKEND"));
		return CLI_USAGE;
	}
	if (i >= argc) {
		main_usage(stderr);
		return CLI_USAGE;
	}
	for (size_t k = 0; k < sizeof(subcommands) / sizeof(subcommands[0]); k++)
		if (!strcmp(argv[i], subcommands[k].name))
			return subcommands[k].fn(argc - i, argv + i);
	cli_error(argv[i], "unknown command (see vmbusify --help)");
	return CLI_USAGE;
}
