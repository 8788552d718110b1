/* Windows services: the dispatcher and status of a running one, and the SCM and Hyper-V
 * registrations. */
#include <windows.h>
#include <shellapi.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include "core/why.h"
#include "platform/sys.h"
#include "platform/win/err.h"
#include "platform/win/proc_internal.h"
#include "platform/win/service.h"
#include "platform/win/sys_internal.h"

/*
 * Theory of operation (a running service)
 *
 * The SCM starts the executable with the command line `install` wrote
 * ("--service" and the daemon's arguments). service_run() calls
 * StartServiceCtrlDispatcherW, which connects to the SCM and calls
 * service_main on a thread of its own; that thread reports START_PENDING and
 * runs the daemon's main, which calls service_ready() once it serves
 * (RUNNING, accepting STOP and SHUTDOWN). The control handler runs on the
 * dispatcher's thread: STOP or SHUTDOWN reports STOP_PENDING and raises
 * SIGTERM through sys_term_raise(), the same wake-up as Ctrl+C in a
 * console, so the daemon stops the way it does there. When the daemon's
 * main returns, service_main reports STOPPED with its exit code (as a
 * service-specific error when it is not 0) and the dispatcher returns.
 */

#define SERVICE_HV_KEY                                                                             \
	L"SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\Virtualization\\"                       \
	L"GuestCommunicationServices"
#define SERVICE_STOP_WAIT_MS 30000

static struct {
	wchar_t name[64];
	int (*fn)(int argc, char **argv);
	int argc;
	char **argv;
	int rc;
	SERVICE_STATUS_HANDLE handle;
	SERVICE_STATUS status;
	CRITICAL_SECTION lock; /* status is reported from the service thread and the handler */
} service_self;

/* A new UTF-16 copy of s (the caller frees it), or NULL. */
static wchar_t *service_wide(const char *s)
{
	int n = MultiByteToWideChar(CP_UTF8, 0, s, -1, NULL, 0);
	wchar_t *w;

	if (n <= 0 || !(w = malloc((size_t)n * sizeof(*w))))
		return NULL;
	MultiByteToWideChar(CP_UTF8, 0, s, -1, w, n);
	return w;
}

/* Sets and reports the service's state; STOPPED carries the daemon's exit code. */
static void service_report(DWORD state, int rc, DWORD wait_hint)
{
	SERVICE_STATUS *st = &service_self.status;

	if (!service_self.handle)
		return;
	EnterCriticalSection(&service_self.lock);
	st->dwServiceType = SERVICE_WIN32_OWN_PROCESS;
	st->dwCurrentState = state;
	st->dwControlsAccepted =
	    state == SERVICE_RUNNING ? SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN : 0;
	st->dwWin32ExitCode = rc ? ERROR_SERVICE_SPECIFIC_ERROR : NO_ERROR;
	st->dwServiceSpecificExitCode = (DWORD)rc;
	st->dwWaitHint = wait_hint;
	st->dwCheckPoint =
	    state == SERVICE_RUNNING || state == SERVICE_STOPPED ? 0 : st->dwCheckPoint + 1;
	SetServiceStatus(service_self.handle, st);
	LeaveCriticalSection(&service_self.lock);
}

static DWORD WINAPI service_ctrl(DWORD ctrl, DWORD type, void *data, void *ctx)
{
	switch (ctrl) {
	case SERVICE_CONTROL_STOP:
	case SERVICE_CONTROL_SHUTDOWN:
		service_report(SERVICE_STOP_PENDING, 0, SERVICE_STOP_WAIT_MS);
		sys_term_raise(SIGTERM);
		return NO_ERROR;
	case SERVICE_CONTROL_INTERROGATE:
		return NO_ERROR;
	default:
		return ERROR_CALL_NOT_IMPLEMENTED;
	}
}

/* The service's thread: its arguments from the SCM are not used (the command line has them). */
static void WINAPI service_main(DWORD argc, wchar_t **argv)
{
	service_self.handle = RegisterServiceCtrlHandlerExW(service_self.name, service_ctrl, NULL);
	if (!service_self.handle) {
		service_self.rc = 1;
		return;
	}
	service_report(SERVICE_START_PENDING, 0, 10000);
	service_self.rc = service_self.fn(service_self.argc, service_self.argv);
	service_report(SERVICE_STOPPED, service_self.rc, 0);
}

int service_run(const char *name, int (*fn)(int argc, char **argv), int argc, char **argv)
{
	SERVICE_TABLE_ENTRYW table[2] = {{service_self.name, service_main}, {NULL, NULL}};

	MultiByteToWideChar(CP_UTF8, 0, name, -1, service_self.name,
			    (int)(sizeof(service_self.name) / sizeof(wchar_t)));
	InitializeCriticalSection(&service_self.lock);
	service_self.fn = fn;
	service_self.argc = argc;
	service_self.argv = argv;
	if (!StartServiceCtrlDispatcherW(table))
		return GetLastError() == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT ? -ENOTSUP
										 : err_win_last();
	return service_self.rc;
}

void service_ready(void)
{
	service_report(SERVICE_RUNNING, 0, 0);
}

/* "access denied: run as Administrator" for the errors that mean it, else the error's text. */
static int service_fail(int err, const char *what, char *msg, size_t msglen)
{
	if (err == -EACCES || err == -EPERM)
		return why_set(msg, msglen, err,
			       "%s: access denied: run as Administrator (elevated)", what);
	return why_set(msg, msglen, err, "%s: %s", what, sys_strerror(err));
}

/*
 * The service's command line: the executable, "--service", then the process's
 * own arguments after the first skip. A new string (the caller frees it), or NULL.
 */
static wchar_t *service_command_line(int skip)
{
	wchar_t exe[MAX_PATH], **args, *line = NULL;
	int nargs = 0;
	size_t cap, pos = 0;
	DWORD n = GetModuleFileNameW(NULL, exe, MAX_PATH);

	args = CommandLineToArgvW(GetCommandLineW(), &nargs);
	if (!n || n >= MAX_PATH || !args)
		goto out;
	cap = wcslen(exe) * 2 + 3 + 12;
	for (int i = skip; i < nargs; i++)
		cap += wcslen(args[i]) * 2 + 4;
	line = malloc(cap * sizeof(*line));
	if (!line)
		goto out;
	proc_quote(exe, line, &pos);
	wcscpy(line + pos, L" --service");
	pos += wcslen(L" --service");
	for (int i = skip; i < nargs; i++) {
		line[pos++] = L' ';
		proc_quote(args[i], line, &pos);
	}
	line[pos] = L'\0';
out:
	if (args)
		LocalFree(args);
	return line;
}

/* Sets the description; a failure only loses the description, so it is not an error. */
static void service_describe(SC_HANDLE svc, const char *description)
{
	SERVICE_DESCRIPTIONW sd = {service_wide(description)};

	if (sd.lpDescription)
		ChangeServiceConfig2W(svc, SERVICE_CONFIG_DESCRIPTION, &sd);
	free(sd.lpDescription);
}

int service_install(const struct service_spec *s, char *msg, size_t msglen)
{
	wchar_t *name = service_wide(s->name), *display = service_wide(s->display);
	wchar_t *line = service_command_line(s->arg_skip);
	SC_HANDLE scm = NULL, svc = NULL;
	bool updated = false;
	int ret = 0;

	if (!name || !display || !line) {
		ret = why_set(msg, msglen, -ENOMEM, "install: out of memory");
		goto out;
	}
	scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE);
	if (!scm) {
		ret = service_fail(err_win_last(), "install", msg, msglen);
		goto out;
	}
	svc = CreateServiceW(scm, name, display, SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
			     SERVICE_AUTO_START, SERVICE_ERROR_NORMAL, line, NULL, NULL, NULL, NULL,
			     NULL);
	if (!svc && GetLastError() == ERROR_SERVICE_EXISTS) {
		/* Installing again replaces the command line: how the arguments change. */
		svc = OpenServiceW(scm, name, SERVICE_CHANGE_CONFIG);
		updated = svc && ChangeServiceConfigW(svc, SERVICE_NO_CHANGE, SERVICE_AUTO_START,
						      SERVICE_NO_CHANGE, line, NULL, NULL, NULL,
						      NULL, NULL, display);
		if (svc && !updated) {
			CloseServiceHandle(svc);
			svc = NULL;
		}
	}
	if (!svc) {
		ret = service_fail(err_win_last(), "install", msg, msglen);
		goto out;
	}
	service_describe(svc, s->description);
	snprintf(msg, msglen, "%s the service %s (automatic start, LocalSystem): %ls",
		 updated ? "updated" : "installed", s->name, line);
out:
	if (svc)
		CloseServiceHandle(svc);
	if (scm)
		CloseServiceHandle(scm);
	free(name);
	free(display);
	free(line);
	return ret;
}

/* Asks svc to stop and waits until it has, up to SERVICE_STOP_WAIT_MS; true when it stopped. */
static bool service_stop_wait(SC_HANDLE svc)
{
	SERVICE_STATUS st;

	if (!ControlService(svc, SERVICE_CONTROL_STOP, &st) &&
	    GetLastError() != ERROR_SERVICE_CANNOT_ACCEPT_CTRL)
		return false;
	for (int waited = 0; waited < SERVICE_STOP_WAIT_MS; waited += 200) {
		if (!QueryServiceStatus(svc, &st) || st.dwCurrentState == SERVICE_STOPPED)
			return true;
		Sleep(200);
	}
	return false;
}

int service_uninstall(const char *name, char *msg, size_t msglen)
{
	wchar_t *wname = service_wide(name);
	SC_HANDLE scm = NULL, svc = NULL;
	SERVICE_STATUS st;
	bool stopped = false;
	int ret = 0;

	if (!wname) {
		ret = why_set(msg, msglen, -ENOMEM, "uninstall: out of memory");
		goto out;
	}
	scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
	if (scm)
		svc = OpenServiceW(scm, wname, SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE);
	if (!svc && scm && GetLastError() == ERROR_SERVICE_DOES_NOT_EXIST) {
		snprintf(msg, msglen, "no service %s was installed", name);
		goto out;
	}
	if (!svc) {
		ret = service_fail(err_win_last(), "uninstall", msg, msglen);
		goto out;
	}
	if (QueryServiceStatus(svc, &st) && st.dwCurrentState != SERVICE_STOPPED) {
		stopped = service_stop_wait(svc);
		if (!stopped) {
			ret = service_fail(err_win_last(), "uninstall: stop", msg, msglen);
			goto out;
		}
	}
	if (!DeleteService(svc) && GetLastError() != ERROR_SERVICE_MARKED_FOR_DELETE) {
		ret = service_fail(err_win_last(), "uninstall", msg, msglen);
		goto out;
	}
	snprintf(msg, msglen, "%sdeleted the service %s", stopped ? "stopped and " : "", name);
out:
	if (svc)
		CloseServiceHandle(svc);
	if (scm)
		CloseServiceHandle(scm);
	free(wname);
	return ret;
}

/* The key path of guid under the GuestCommunicationServices key, into out. */
static void service_hv_path(const char *guid, wchar_t *out, size_t n)
{
	_snwprintf(out, n, L"%ls\\%hs", SERVICE_HV_KEY, guid);
	out[n - 1] = L'\0';
}

int service_hv_register(const char *guid, const char *element, char *msg, size_t msglen)
{
	wchar_t path[256], *value = service_wide(element);
	HKEY key = NULL;
	LSTATUS e;
	int ret = 0;

	if (!value)
		return why_set(msg, msglen, -ENOMEM, "register: out of memory");
	service_hv_path(guid, path, sizeof(path) / sizeof(path[0]));
	e = RegCreateKeyExW(HKEY_LOCAL_MACHINE, path, 0, NULL, 0, KEY_SET_VALUE, NULL, &key, NULL);
	if (e == ERROR_SUCCESS)
		e = RegSetValueExW(key, L"ElementName", 0, REG_SZ, (const BYTE *)value,
				   (DWORD)((wcslen(value) + 1) * sizeof(wchar_t)));
	if (e != ERROR_SUCCESS)
		ret = service_fail(err_from_win((unsigned long)e),
				   "register the Hyper-V socket service", msg, msglen);
	else
		snprintf(
		    msg, msglen,
		    "registered the Hyper-V socket service %s (ElementName %s) under HKLM\\%ls",
		    guid, element, SERVICE_HV_KEY);
	if (key)
		RegCloseKey(key);
	free(value);
	return ret;
}

int service_hv_unregister(const char *guid, char *msg, size_t msglen)
{
	wchar_t path[256];
	LSTATUS e;

	service_hv_path(guid, path, sizeof(path) / sizeof(path[0]));
	e = RegDeleteKeyW(HKEY_LOCAL_MACHINE, path);
	if (e == ERROR_FILE_NOT_FOUND) {
		snprintf(msg, msglen, "the Hyper-V socket service %s was not registered", guid);
		return 0;
	}
	if (e != ERROR_SUCCESS)
		return service_fail(err_from_win((unsigned long)e),
				    "remove the Hyper-V socket service", msg, msglen);
	snprintf(msg, msglen, "removed the Hyper-V socket service %s", guid);
	return 0;
}
