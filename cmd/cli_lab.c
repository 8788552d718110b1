/* vmbusify lab: the built-in lab (network namespaces with the real agent and daemon). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "platform/sys.h"

/*
 * The lab is set up by scripts/lab.sh (namespaces, veth, servers); this
 * command finds the script that belongs to this binary (the source tree's
 * when run from a build tree, the installed one otherwise) and runs it with
 * VB_BIN_DIR pointing at this binary's directory.
 */
static int cli_lab_script(const char *bin_dir, char *out, size_t len)
{
	const char *env = getenv("VMBUSIFY_LAB_SCRIPT");
	char probe[4200];

	if (env && *env) {
		snprintf(out, len, "%s", env);
		return 0;
	}
	snprintf(probe, sizeof(probe), "%s/CMakeCache.txt", bin_dir);
	if (sys_exists(probe) && sys_exists(VB_SOURCE_DIR "/scripts/lab.sh")) {
		snprintf(out, len, "%s", VB_SOURCE_DIR "/scripts/lab.sh");
		return 0;
	}
	snprintf(out, len, "%s", VB_LIBEXECDIR "/lab.sh");
	return sys_exists(out) ? 0 : -1;
}

int cli_lab(int argc, char **argv)
{
	char bin_dir[4096], script[4300];
	char **args;
	int ret;

	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		fprintf(
		    stderr,
		    "usage: vmbusify lab up [--qemu] [--vms N] [--supervise] | down |\n"
		    "                    status [--json] | exec VM CMD... | exec-host CMD... |\n"
		    "                    reboot VM | cut VM\n");
		return argc < 2 ? CLI_USAGE : CLI_OK;
	}
	if (sys_self_dir(bin_dir, sizeof(bin_dir)) ||
	    cli_lab_script(bin_dir, script, sizeof(script))) {
		cli_error("lab", "cannot find the lab script (lab.sh)");
		return CLI_NOTFOUND;
	}
	args = calloc((size_t)argc + 2, sizeof(*args));
	if (!args)
		return CLI_FAIL;
	args[0] = "bash";
	args[1] = script;
	for (int i = 1; i < argc; i++)
		args[i + 1] = argv[i];
	ret = sys_exec("/bin/bash", args, bin_dir);
	cli_error("lab", "cannot run %s: %s", script, sys_strerror(ret));
	free(args);
	return CLI_FAIL;
}
