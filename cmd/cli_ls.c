/* vmbusify ls: the VMs the daemon holds and the state of each. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "cmd/cli.h"

static void cli_ls_usage(void)
{
	fprintf(stderr, "usage: vmbusify ls [--json]\n");
}

int cli_ls(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	struct cli_conn c;
	bool json = false;
	int opt, ret;

	while ((opt = getopt_long(argc, argv, "jh", opts, NULL)) != -1) {
		if (opt != 'j') {
			cli_ls_usage();
			return opt == 'h' ? CLI_OK : CLI_USAGE;
		}
		json = true;
	}
	if (optind != argc) {
		cli_ls_usage();
		return CLI_USAGE;
	}
	ret = cli_connect(&c, "-");
	if (!ret)
		ret = cli_control(&c, json ? "ls json" : "ls", NULL, true);
	cli_close(&c);
	return ret;
}
