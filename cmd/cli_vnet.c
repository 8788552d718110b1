/* vmbusify vnet status: each VM's addresses, packets, bytes and drops on the virtual subnet. */
#include <stdio.h>
#include <string.h>
#include "cmd/cli.h"

int cli_vnet(int argc, char **argv)
{
	struct cli_conn c;
	bool json = argc == 3 && !strcmp(argv[2], "--json");
	int ret;

	if (argc < 2 || strcmp(argv[1], "status") || (argc == 3 && !json) || argc > 3) {
		fprintf(argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr,
			"usage: vmbusify vnet status [--json]\n");
		return argc >= 2 && !strcmp(argv[1], "--help") ? CLI_OK : CLI_USAGE;
	}
	ret = cli_connect(&c, "-");
	if (!ret)
		ret = cli_control(&c, json ? "vnet status json" : "vnet status", NULL, true);
	cli_close(&c);
	return ret;
}
