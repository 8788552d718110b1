/* vmbusify proxy env: the settings that point a VM's tools at its agent's proxy port. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "cmd/cli.h"

static void cli_proxy_usage(FILE *f)
{
	fprintf(f, "usage: vmbusify proxy env [--port PORT] [VM]\n"
		   "Prints, for a shell in the VM, the lines that send apt, pip, curl, git and\n"
		   "friends through the agent's proxy port (127.0.0.1:1080 unless the agent\n"
		   "was started with another --proxy). For example:\n"
		   "  vmbusify proxy env lab1 | vmbusexec lab1 sh -c 'cat >> "
		   "/etc/profile.d/vmbusify.sh'\n");
}

static void cli_proxy_env(unsigned port)
{
	printf("# VMBusify: this VM's traffic leaves through the host (vmbusify-agent --proxy).\n"
	       "export ALL_PROXY=socks5h://127.0.0.1:%u all_proxy=socks5h://127.0.0.1:%u\n"
	       "export HTTP_PROXY=http://127.0.0.1:%u http_proxy=http://127.0.0.1:%u\n"
	       "export HTTPS_PROXY=http://127.0.0.1:%u https_proxy=http://127.0.0.1:%u\n"
	       "export NO_PROXY=localhost,127.0.0.1,::1 no_proxy=localhost,127.0.0.1,::1\n"
	       "# apt (as root): echo 'Acquire::http::Proxy \"socks5h://127.0.0.1:%u\";' "
	       "> /etc/apt/apt.conf.d/99vmbusify-proxy\n"
	       "# git: git config --global http.proxy socks5h://127.0.0.1:%u\n"
	       "# pip: pip install --proxy http://127.0.0.1:%u PACKAGE (or HTTPS_PROXY above)\n",
	       port, port, port, port, port, port, port, port, port);
}

int cli_proxy(int argc, char **argv)
{
	unsigned port = 1080;
	int i = 1;

	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		cli_proxy_usage(stdout);
		return CLI_OK;
	}
	if (argc < 2 || strcmp(argv[1], "env")) {
		cli_proxy_usage(stderr);
		return CLI_USAGE;
	}
	for (i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "--port") && i + 1 < argc) {
			if (sscanf(argv[++i], "%u", &port) != 1 || !port || port > 65535) {
				fprintf(stderr, "vmbusify: proxy env: --port takes 1 to 65535\n");
				return CLI_USAGE;
			}
		} else if (argv[i][0] == '-') {
			cli_proxy_usage(stderr);
			return CLI_USAGE;
		}
		/* A VM name is accepted for symmetry: every agent uses the same port. */
	}
	cli_proxy_env(port);
	return CLI_OK;
}
