/* vmbusifyd.exe: the host daemon on Windows: a console program, a service, and its (un)install. */
#include <windows.h>
#include <knownfolders.h>
#include <shlobj.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "cmd/vmbusifyd.h"
#include "core/log.h"
#include "core/uri.h"
#include "platform/sys.h"
#include "platform/win/acl.h"
#include "platform/win/eventlog.h"
#include "platform/win/service.h"

/*
 * The daemon itself is cmd/vmbusifyd.c, as on Linux. What is Windows' own is
 * here: the defaults under %ProgramData%\vmbusify and the control channel on
 * a named pipe (sys_control_place(0), where vmbusify.exe looks first), and
 * three ways in:
 *   vmbusifyd [options]               a console daemon (Ctrl+C stops it)
 *   vmbusifyd install [options]       registers the service (its command line
 *                                     is this executable, --service, options),
 *                                     the Hyper-V socket service GUID and the
 *                                     event source, and makes the folder
 *                                     SYSTEM's and the Administrators' only
 *   vmbusifyd uninstall               stops and deletes the three (the folder
 *                                     and what is in it stay)
 *   vmbusifyd --service [options]     what the SCM starts: the daemon under
 *                                     the service dispatcher
 *
 * The folder: under %ProgramData% every user may create files and folders,
 * so a user could make %ProgramData%\vmbusify, or put a vmbusifyd.conf in
 * it, before the daemon is installed, and the service, running as
 * LocalSystem, would then obey it. install therefore makes the folder (or
 * resets an existing one) protected from inheritance, owned by
 * Administrators, with full control for SYSTEM and Administrators only; and
 * every start as a service, or in a console that uses the folder, refuses
 * to go on when the folder or the configuration file may be changed by
 * anyone else (acl_admin_only()). A configuration file someone else made
 * before install is not blessed by install: it stays refused until an
 * administrator has read it and fixed its owner and permissions.
 */

#define WDAEMON_SERVICE	   "vmbusifyd"
#define WDAEMON_HV_ELEMENT "VMBusify"
#define WDAEMON_FIX	   "run `vmbusifyd install` again or fix its permissions"
#define WDAEMON_FIX_CONF                                                                           \
	"check what it says, then make it SYSTEM's and the Administrators' only "                  \
	"(takeown /a /f FILE, icacls FILE /reset)"

static char wdaemon_config[MAX_PATH], wdaemon_state[MAX_PATH], wdaemon_log[MAX_PATH];

static int wdaemon_check_paths(const char *config, bool config_explicit, const char *state_dir,
			       char *why, size_t whylen);

static struct vmbusifyd_defaults wdaemon_defaults = {
    .config = wdaemon_config,
    .state_dir = wdaemon_state,
    .check_paths = wdaemon_check_paths,
    .usage_extra = "       vmbusifyd install [options]   register the Windows service, the\n"
		   "                                     Hyper-V socket service GUID and the\n"
		   "                                     event source; make the folder of the\n"
		   "                                     configuration Administrators' only\n"
		   "       vmbusifyd uninstall           stop and remove the three\n",
};

/* %ProgramData%\vmbusify: the configuration, the state (forwards) and a service's log. */
static void wdaemon_paths(void)
{
	char base[MAX_PATH] = "";
	wchar_t *known = NULL;

	/*
	 * The known folder, not the environment variable: Windows gives both
	 * the same, but Wine gives a service (its SYSTEM profile) another
	 * %ProgramData% (C:\users\Public) than the user who installs it, and
	 * install and the service must agree on the folder.
	 */
	if (FAILED(SHGetKnownFolderPath(&FOLDERID_ProgramData, 0, NULL, &known)) ||
	    !WideCharToMultiByte(CP_ACP, 0, known, -1, base, sizeof(base), NULL, NULL))
		snprintf(base, sizeof(base), "C:\\ProgramData");
	CoTaskMemFree(known);
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

/*
 * Makes the folder SYSTEM's and the Administrators' only (reset: also an
 * existing one); a configuration file already in it is only judged, and a
 * warning line says what to do about it.
 */
static int wdaemon_install_folder(void)
{
	char who[300];
	bool created;
	int ret = acl_dir_restrict(wdaemon_state, true, &created);

	if (ret) {
		fprintf(stderr,
			"vmbusifyd: %s: cannot make it SYSTEM's and the Administrators' only: %s\n",
			wdaemon_state,
			ret == -EACCES || ret == -EPERM
			    ? "access denied: run as Administrator (elevated)"
			    : sys_strerror(ret));
		return ret;
	}
	printf("vmbusifyd: %s %s (full control for SYSTEM and Administrators only)\n",
	       created ? "made" : "reset the permissions of", wdaemon_state);
	ret = acl_admin_only(wdaemon_config, who, sizeof(who));
	if (ret && ret != -ENOENT)
		fprintf(stderr, "vmbusifyd: warning: %s: %s, so the service will not start: %s\n",
			wdaemon_config, who, WDAEMON_FIX_CONF);
	return 0;
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
	if (wdaemon_install_folder())
		return 1;
	wdaemon_hv_guid(guid, sizeof(guid));
	ret = service_hv_register(guid, WDAEMON_HV_ELEMENT, msg, sizeof(msg));
	fprintf(ret ? stderr : stdout, "vmbusifyd: %s\n", msg);
	if (ret)
		return 1;
	ret = eventlog_register(WDAEMON_SERVICE, msg, sizeof(msg));
	fprintf(ret ? stderr : stdout, "vmbusifyd: %s\n", msg);
	if (!ret)
		printf("vmbusifyd: start it with: sc start %s\n", WDAEMON_SERVICE);
	return ret ? 1 : 0;
}

/* Every removal is tried, so that a half-installed service can be cleaned up. */
static int wdaemon_uninstall(void)
{
	char msg[600], guid[64];
	int ret = service_uninstall(WDAEMON_SERVICE, msg, sizeof(msg)), ret2, ret3;

	fprintf(ret ? stderr : stdout, "vmbusifyd: %s\n", msg);
	wdaemon_hv_guid(guid, sizeof(guid));
	ret2 = service_hv_unregister(guid, msg, sizeof(msg));
	fprintf(ret2 ? stderr : stdout, "vmbusifyd: %s\n", msg);
	ret3 = eventlog_unregister(WDAEMON_SERVICE, msg, sizeof(msg));
	fprintf(ret3 ? stderr : stdout, "vmbusifyd: %s\n", msg);
	return ret || ret2 || ret3 ? 1 : 0;
}

/*
 * The folder, made SYSTEM's and the Administrators' only when it is missing
 * (never reset when found: someone else's folder is judged, not blessed),
 * then judged. Return: 0, or a negative errno with the line's text in why.
 */
static int wdaemon_check_folder(char *why, size_t whylen)
{
	char who[300];
	bool created;
	int ret = acl_dir_restrict(wdaemon_state, false, &created);

	if (ret) {
		snprintf(why, whylen,
			 "%s: cannot make it SYSTEM's and the Administrators' only (%s): run "
			 "`vmbusifyd install` (elevated), or give --config and --state-dir",
			 wdaemon_state, sys_strerror(ret));
		return ret;
	}
	ret = acl_admin_only(wdaemon_state, who, sizeof(who));
	if (ret == -EACCES || ret == -EPERM)
		snprintf(why, whylen, "%s is writable by non-administrators (%s): %s",
			 wdaemon_state, who, WDAEMON_FIX);
	else if (ret == -ELOOP)
		snprintf(why, whylen, "%s: %s: remove it, then run `vmbusifyd install` again",
			 wdaemon_state, who);
	else if (ret)
		snprintf(why, whylen, "%s: cannot read its permissions: %s", wdaemon_state,
			 sys_strerror(ret));
	return ret;
}

/* A configuration file that anyone else may change is refused; a missing one is fine. */
static int wdaemon_check_config(const char *config, char *why, size_t whylen)
{
	char who[300];
	int ret = acl_admin_only(config, who, sizeof(who));

	if (ret == -ENOENT)
		return 0;
	if (ret == -EACCES || ret == -EPERM || ret == -ELOOP)
		snprintf(why, whylen, "%s may be changed by non-administrators (%s): %s", config,
			 who, WDAEMON_FIX_CONF);
	else if (ret)
		snprintf(why, whylen, "%s: cannot read its permissions: %s", config,
			 sys_strerror(ret));
	return ret;
}

static bool wdaemon_is_service;

/*
 * struct vmbusifyd_defaults' check_paths: as a service, the configuration
 * file wherever it is (the folder was judged before the log was opened); in
 * a console, the folder and the configuration file when the default ones
 * are used. What the service runs as LocalSystem must be no user's to
 * change; what an administrator runs in a console with files of their own
 * choosing is theirs.
 */
static int wdaemon_check_paths(const char *config, bool config_explicit, const char *state_dir,
			       char *why, size_t whylen)
{
	bool in_folder = !config_explicit || !strcmp(state_dir, wdaemon_state);
	int ret = 0;

	if (!wdaemon_is_service && in_folder)
		ret = wdaemon_check_folder(why, whylen);
	if (!ret && (wdaemon_is_service || !config_explicit))
		ret = wdaemon_check_config(config, why, whylen);
	return ret;
}

/*
 * Under the SCM there is no console and no standard handle: the C runtime's
 * stderr is bound to no descriptor at all (-2) and refuses every write, and
 * freopen() will not rebind it. The log lines go through a sink of core/log.c
 * instead, appended to %ProgramData%\vmbusify\vmbusifyd.log with a time.
 * One WriteFile per line on a FILE_APPEND_DATA handle: lines from the loop
 * threads never interleave. Errors, the line that ends a failed start or run,
 * and the service's start and stop go to the Application event log as well
 * (source "vmbusifyd", platform/win/eventlog.c): it needs no file, so the
 * reason is there even when the folder is refused (and the log never opened)
 * or the log cannot be opened. core/log.c's rate limit bounds the error
 * lines, so a flood of them does not fill the event log.
 */
static HANDLE wdaemon_log_handle = INVALID_HANDLE_VALUE;

/* One line in the log file, when it is open. */
static void wdaemon_log_write(const char *level, const char *line)
{
	char buf[1200];
	SYSTEMTIME t;
	DWORD done;
	int n;

	if (wdaemon_log_handle == INVALID_HANDLE_VALUE)
		return;
	GetLocalTime(&t);
	n = snprintf(buf, sizeof(buf), "%04u-%02u-%02u %02u:%02u:%02u vmbusifyd: %s: %s\r\n",
		     t.wYear, t.wMonth, t.wDay, t.wHour, t.wMinute, t.wSecond, level, line);
	if (n > (int)sizeof(buf) - 1)
		n = (int)sizeof(buf) - 1;
	WriteFile(wdaemon_log_handle, buf, (DWORD)n, &done, NULL);
}

static void wdaemon_log_line(enum vb_log_level lvl, const char *line)
{
	static const char *const names[] = {"error", "warning", "info", "debug"};
	char ev[1100];

	wdaemon_log_write((unsigned)lvl < 4 ? names[lvl] : "?", line);
	if (lvl == VB_LOG_ERROR) {
		snprintf(ev, sizeof(ev), "vmbusifyd: %s", line);
		eventlog_report(EVENTLOG_LINE_ERROR, ev);
	}
}

/* struct vmbusifyd_defaults' on_error: the line ("vmbusifyd: ...") to the log and the event log. */
static void wdaemon_error(const char *line)
{
	const char *p = "vmbusifyd: ";

	wdaemon_log_write("error", strncmp(line, p, strlen(p)) ? line : line + strlen(p));
	eventlog_report(EVENTLOG_LINE_ERROR, line);
}

/* struct vmbusifyd_defaults' on_ready: RUNNING, and the start line. */
static void wdaemon_ready(void)
{
	char line[200];

	service_ready();
	snprintf(line, sizeof(line),
		 "vmbusifyd: the service is running (vmbusifyd %s, process %lu)", VB_VERSION,
		 GetCurrentProcessId());
	wdaemon_log_write("info", line + strlen("vmbusifyd: "));
	eventlog_report(EVENTLOG_LINE_INFO, line);
}

static void wdaemon_log_to_file(void)
{
	wdaemon_log_handle = CreateFileA(wdaemon_log, FILE_APPEND_DATA,
					 FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE,
					 NULL, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
	log_set_sink(wdaemon_log_line);
}

/*
 * The service's main, on the dispatcher's service thread. The folder is
 * judged before the log file in it is opened: in someone else's folder,
 * vmbusifyd.log could be a link to a file that LocalSystem would then
 * append to.
 */
static int wdaemon_service_main(int argc, char **argv)
{
	char why[700], line[800];
	int ret;

	eventlog_open(WDAEMON_SERVICE);
	ret = wdaemon_check_folder(why, sizeof(why));
	if (ret) {
		snprintf(line, sizeof(line), "vmbusifyd: %s", why);
		wdaemon_error(line);
		ret = 1;
		goto out;
	}
	wdaemon_log_to_file();
	ret = vmbusifyd_main(argc, argv, &wdaemon_defaults);
out:
	snprintf(line, sizeof(line), "vmbusifyd: the service stopped%s",
		 ret ? " after an error" : "");
	wdaemon_log_write(ret ? "error" : "info", line + strlen("vmbusifyd: "));
	eventlog_report(ret ? EVENTLOG_LINE_ERROR : EVENTLOG_LINE_INFO, line);
	eventlog_close();
	return ret;
}

static int wdaemon_service(int argc, char **argv)
{
	int ret;

	wdaemon_is_service = true;
	wdaemon_defaults.on_ready = wdaemon_ready;
	wdaemon_defaults.on_error = wdaemon_error;
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
