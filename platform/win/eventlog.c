/* Lines in the Windows Application event log: the event source's registration and the reports. */
#include <windows.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <wchar.h>
#include "core/why.h"
#include "platform/sys.h"
#include "platform/win/err.h"
#include "platform/win/eventlog.h"

/*
 * The Event Viewer shows an event by looking its id up in the message table
 * of the source's EventMessageFile and putting the event's strings in. We
 * have no message table of our own: netmsg.dll's message 3299
 * (NELOG_OEM_Code) is "%1 %2 %3 %4 %5 %6 %7 %8 %9", so the event's first
 * string is shown as it is, and the other eight are given empty. It has
 * been in every Windows since NT, is what several projects do for the same
 * need, and spares the build a message compiler step (windmc, windres) and
 * a resource in vmbusifyd.exe that the registration would have to point at
 * (a path that breaks when the executable moves). The cost: the text is ours
 * alone, not localised, and every event has the same id.
 */
#define EVENTLOG_KEY	  L"SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application"
#define EVENTLOG_MSG_FILE L"%SystemRoot%\\System32\\netmsg.dll"
#define EVENTLOG_ID	  3299
#define EVENTLOG_STRINGS  9 /* %1 to %9 */

static HANDLE eventlog_handle;

/* The source's key path under the Application log's, into out. */
static void eventlog_path(const char *source, wchar_t *out, size_t n)
{
	_snwprintf(out, n, L"%ls\\%hs", EVENTLOG_KEY, source);
	out[n - 1] = L'\0';
}

static int eventlog_fail(LSTATUS e, const char *what, char *msg, size_t msglen)
{
	int err = err_from_win((unsigned long)e);

	if (err == -EACCES || err == -EPERM)
		return why_set(msg, msglen, err,
			       "%s: access denied: run as Administrator (elevated)", what);
	return why_set(msg, msglen, err, "%s: %s", what, sys_strerror(err));
}

int eventlog_register(const char *source, char *msg, size_t msglen)
{
	const DWORD types = EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE | EVENTLOG_INFORMATION_TYPE;
	wchar_t path[256];
	HKEY key = NULL;
	LSTATUS e;

	eventlog_path(source, path, sizeof(path) / sizeof(path[0]));
	e = RegCreateKeyExW(HKEY_LOCAL_MACHINE, path, 0, NULL, 0, KEY_SET_VALUE, NULL, &key, NULL);
	/* REG_EXPAND_SZ: the Event Viewer expands %SystemRoot% itself. */
	if (e == ERROR_SUCCESS)
		e = RegSetValueExW(key, L"EventMessageFile", 0, REG_EXPAND_SZ,
				   (const BYTE *)EVENTLOG_MSG_FILE, sizeof(EVENTLOG_MSG_FILE));
	if (e == ERROR_SUCCESS)
		e = RegSetValueExW(key, L"TypesSupported", 0, REG_DWORD, (const BYTE *)&types,
				   sizeof(types));
	if (key)
		RegCloseKey(key);
	if (e != ERROR_SUCCESS)
		return eventlog_fail(e, "register the event source", msg, msglen);
	snprintf(msg, msglen, "registered the event source %s in the Application event log",
		 source);
	return 0;
}

int eventlog_unregister(const char *source, char *msg, size_t msglen)
{
	wchar_t path[256];
	LSTATUS e;

	eventlog_path(source, path, sizeof(path) / sizeof(path[0]));
	e = RegDeleteKeyW(HKEY_LOCAL_MACHINE, path);
	if (e == ERROR_FILE_NOT_FOUND) {
		snprintf(msg, msglen, "the event source %s was not registered", source);
		return 0;
	}
	if (e != ERROR_SUCCESS)
		return eventlog_fail(e, "remove the event source", msg, msglen);
	snprintf(msg, msglen, "removed the event source %s", source);
	return 0;
}

int eventlog_open(const char *source)
{
	wchar_t name[128];

	if (eventlog_handle)
		return 0;
	if (!MultiByteToWideChar(CP_UTF8, 0, source, -1, name, sizeof(name) / sizeof(name[0])))
		return err_win_last();
	eventlog_handle = RegisterEventSourceW(NULL, name);
	return eventlog_handle ? 0 : err_win_last();
}

int eventlog_report(enum eventlog_type type, const char *line)
{
	static const WORD types[] = {
	    [EVENTLOG_LINE_ERROR] = EVENTLOG_ERROR_TYPE,
	    [EVENTLOG_LINE_WARNING] = EVENTLOG_WARNING_TYPE,
	    [EVENTLOG_LINE_INFO] = EVENTLOG_INFORMATION_TYPE,
	};
	const wchar_t *strings[EVENTLOG_STRINGS];
	wchar_t *text = NULL;
	int n, ret = 0;

	if (!eventlog_handle)
		return -ENOTCONN;
	n = MultiByteToWideChar(CP_UTF8, 0, line, -1, NULL, 0);
	if (n <= 0 || !(text = malloc((size_t)n * sizeof(*text)))) {
		ret = n <= 0 ? err_win_last() : -ENOMEM;
		goto out;
	}
	MultiByteToWideChar(CP_UTF8, 0, line, -1, text, n);
	strings[0] = text;
	for (int i = 1; i < EVENTLOG_STRINGS; i++)
		strings[i] = L"";
	if (!ReportEventW(eventlog_handle, types[(unsigned)type < 3 ? type : EVENTLOG_LINE_ERROR],
			  0, EVENTLOG_ID, NULL, EVENTLOG_STRINGS, 0, strings, NULL))
		ret = err_win_last();
out:
	free(text);
	return ret;
}

void eventlog_close(void)
{
	if (eventlog_handle)
		DeregisterEventSource(eventlog_handle);
	eventlog_handle = NULL;
}
