/* vmbusify forward: port forwards between the host and VMs, held by the daemon. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"

static void cli_forward_usage(FILE *f)
{
	fprintf(f, "usage: vmbusify forward add -L [BIND:]PORT:VM:PORT\n"
		   "       vmbusify forward add -R VM:[BIND:]PORT:HOST:PORT\n"
		   "       vmbusify forward ls [--json]\n"
		   "       vmbusify forward rm ID\n"
		   "\n"
		   "-L: the host listens on BIND:PORT (default 127.0.0.1) and each connection\n"
		   "    goes to 127.0.0.1:PORT inside the VM.\n"
		   "-R: the VM listens on BIND:PORT (default 127.0.0.1) and each connection\n"
		   "    goes from the host to HOST:PORT.\n"
		   "Forwards live in vmbusifyd and come back whenever the VM's session does;\n"
		   "they end with the daemon.\n");
}

/* Sends one forward command to the daemon and prints its answer. */
static int cli_forward_send(const char *cmd)
{
	struct cli_conn c;
	int ret = cli_connect(&c, "-");

	if (!ret)
		ret = cli_control(&c, cmd, NULL, true);
	cli_close(&c);
	return ret;
}

int cli_forward(int argc, char **argv)
{
	char cmd[256];
	char *end;

	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		cli_forward_usage(stdout);
		return CLI_OK;
	}
	if (argc == 4 && !strcmp(argv[1], "add") &&
	    (!strcmp(argv[2], "-L") || !strcmp(argv[2], "-R")) && strlen(argv[3]) < 160 &&
	    !strchr(argv[3], ' ')) {
		snprintf(cmd, sizeof(cmd), "forward add %s %s", argv[2], argv[3]);
		return cli_forward_send(cmd);
	}
	if ((argc == 2 || argc == 3) && !strcmp(argv[1], "ls")) {
		if (argc == 3 && strcmp(argv[2], "--json")) {
			cli_forward_usage(stderr);
			return CLI_USAGE;
		}
		return cli_forward_send(argc == 3 ? "forward ls json" : "forward ls");
	}
	if (argc == 3 && !strcmp(argv[1], "rm")) {
		unsigned long id = strtoul(argv[2], &end, 10);

		if (!*argv[2] || *end || id == 0 || id > 0xffffffffu) {
			fprintf(stderr,
				"vmbusify: forward rm: '%s' is not a forward id (see: vmbusify "
				"forward ls)\n",
				argv[2]);
			return CLI_USAGE;
		}
		snprintf(cmd, sizeof(cmd), "forward rm %lu", id);
		return cli_forward_send(cmd);
	}
	cli_forward_usage(stderr);
	return CLI_USAGE;
}
