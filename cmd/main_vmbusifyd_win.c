/* vmbusifyd.exe: the host daemon on Windows: a console program, a service, and its (un)install. */
#include <windows.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "cmd/vmbusifyd.h"
#include "core/log.h"
#include "core/uri.h"
#include "platform/sys.h"
#include "platform/win/service.h"

/*
 * The daemon itself is cmd/vmbusifyd.c, as on Linux. What is Windows' own is
 * here: the defaults under %ProgramData%\vmbusify and the control channel on
 * a named pipe (sys_control_place(0), where vmbusify.exe looks first), and
 * three ways in:
 *   vmbusifyd [options]               a console daemon (Ctrl+C stops it)
 *   vmbusifyd install [options]       registers the service (its command line
 *                                     is this executable, --service, options)
 *                                     and the Hyper-V socket service GUID
 *   vmbusifyd uninstall               stops and deletes both
 *   vmbusifyd --service [options]     what the SCM starts: the daemon under
 *                                     the service dispatcher
 */

#define WDAEMON_SERVICE	   "vmbusifyd"
#define WDAEMON_HV_ELEMENT "VMBusify"

static char wdaemon_config[MAX_PATH], wdaemon_state[MAX_PATH], wdaemon_log[MAX_PATH];

static struct vmbusifyd_defaults wdaemon_defaults = {
    .config = wdaemon_config,
    .state_dir = wdaemon_state,
    .usage_extra = "       vmbusifyd install [options]   register the Windows service and the\n"
		   "                                     Hyper-V socket service GUID\n"
		   "       vmbusifyd uninstall           stop and remove both\n",
};

/* %ProgramData%\vmbusify: the configuration, the state (forwards) and a service's log. */
static void wdaemon_paths(void)
{
	char base[MAX_PATH];
	DWORD n = GetEnvironmentVariableA("ProgramData", base, sizeof(base));

	if (!n || n >= sizeof(base))
		snprintf(base, sizeof(base), "C:\\ProgramData");
	snprintf(wdaemon_state, sizeof(wdaemon_state), "%s\\vmbusify", base);
	snprintf(wdaemon_config, sizeof(wdaemon_config), "%s\\vmbusifyd.conf", wdaemon_state);
	snprintf(wdaemon_log, sizeof(wdaemon_log), "%s\\vmbusifyd.log", wdaemon_state);
	wdaemon_defaults.control = sys_control_place(0);
}

/* The vsock-template service GUID of the agent's default port (a Linux guest's hv_sock's). */
static void wdaemon_hv_guid(char *buf, size_t len)
{
	snprintf(buf, len, "%08X-FACB-11E6-BD58-64006A7986D3", VB_DEFAULT_PORT);
}

static int wdaemon_install(void)
{
	const struct service_spec spec = {
	    .name = WDAEMON_SERVICE,
	    .display = "VMBusify daemon",
	    .description = "Keeps sessions to the Hyper-V VMs' vmbusify agents: exec, cp, the "
			   "proxy port into the VMs, forwards, and the VMs' egress.",
	    .arg_skip = 2, /* vmbusifyd.exe install */
	};
	char msg[1200], guid[64];
	int ret = service_install(&spec, msg, sizeof(msg));

	fprintf(ret ? stderr : stdout, "vmbusifyd: %s\n", msg);
	if (ret)
		return 1;
	wdaemon_hv_guid(guid, sizeof(guid));
	ret = service_hv_register(guid, WDAEMON_HV_ELEMENT, msg, sizeof(msg));
	fprintf(ret ? stderr : stdout, "vmbusifyd: %s\n", msg);
	if (!ret)
		printf("vmbusifyd: start it with: sc start %s\n", WDAEMON_SERVICE);
	return ret ? 1 : 0;
}

/* Both removals are tried, so that a half-installed service can be cleaned up. */
static int wdaemon_uninstall(void)
{
	char msg[600], guid[64];
	int ret = service_uninstall(WDAEMON_SERVICE, msg, sizeof(msg)), ret2;

	fprintf(ret ? stderr : stdout, "vmbusifyd: %s\n", msg);
	wdaemon_hv_guid(guid, sizeof(guid));
	ret2 = service_hv_unregister(guid, msg, sizeof(msg));
	fprintf(ret2 ? stderr : stdout, "vmbusifyd: %s\n", msg);
	return ret || ret2 ? 1 : 0;
}

static int wdaemon_service_main(int argc, char **argv)
{
	return vmbusifyd_main(argc, argv, &wdaemon_defaults);
}

/*
 * Under the SCM there is no console and no standard handle: the C runtime's
 * stderr is bound to no descriptor at all (-2) and refuses every write, and
 * freopen() will not rebind it. The log lines go through a sink of core/log.c
 * instead, appended to %ProgramData%\vmbusify\vmbusifyd.log with a time.
 * One WriteFile per line on a FILE_APPEND_DATA handle: lines from the loop
 * threads never interleave. The service's exit code (in sc query) tells a
 * failed start; its reason line was for stderr and is lost.
 */
static HANDLE wdaemon_log_handle = INVALID_HANDLE_VALUE;

static void wdaemon_log_line(enum vb_log_level lvl, const char *line)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	char buf[1200];
	SYSTEMTIME t;
	DWORD done;
	int n;

	GetLocalTime(&t);
	n = snprintf(buf, sizeof(buf), "%04u-%02u-%02u %02u:%02u:%02u vmbusifyd: %s: %s\r\n",
		     t.wYear, t.wMonth, t.wDay, t.wHour, t.wMinute, t.wSecond,
		     (unsigned)lvl < 4 ? names[lvl] : "?", line);
	if (n > (int)sizeof(buf) - 1)
		n = (int)sizeof(buf) - 1;
	WriteFile(wdaemon_log_handle, buf, (DWORD)n, &done, NULL);
}

static void wdaemon_log_to_file(void)
{
	sys_mkdir_p(wdaemon_state);
	wdaemon_log_handle = CreateFileA(wdaemon_log, FILE_APPEND_DATA,
					 FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
					 NULL, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
	if (wdaemon_log_handle != INVALID_HANDLE_VALUE)
		log_set_sink(wdaemon_log_line);
}

static int wdaemon_service(int argc, char **argv)
{
	int ret;

	wdaemon_log_to_file();
	wdaemon_defaults.on_ready = service_ready;
	ret = service_run(WDAEMON_SERVICE, wdaemon_service_main, argc, argv);
	if (ret < 0) {
		fprintf(stderr, "vmbusifyd: --service: %s\n",
			ret == -ENOTSUP ? "not started by the Service Control Manager "
					  "(run vmbusifyd without --service in a console)"
					: sys_strerror(ret));
		return 1;
	}
	return ret;
}

int main(int argc, char **argv)
{
	sys_std_fds_open();
	wdaemon_paths();
	if (argc >= 2 && !strcmp(argv[1], "install"))
		return wdaemon_install();
	if (argc == 2 && !strcmp(argv[1], "uninstall"))
		return wdaemon_uninstall();
	if (argc >= 2 && !strcmp(argv[1], "--service")) {
		argv[1] = argv[0]; /* getopt starts after argv[0]: drop --service */
		return wdaemon_service(argc - 1, argv + 1);
	}
	return vmbusifyd_main(argc, argv, &wdaemon_defaults);
}
