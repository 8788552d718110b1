/* Windows only: lines in the Application event log under an event source of our own. */
#ifndef VB_PLATFORM_WIN_EVENTLOG_H
#define VB_PLATFORM_WIN_EVENTLOG_H

#include <stddef.h>

enum eventlog_type {
	EVENTLOG_LINE_ERROR,
	EVENTLOG_LINE_WARNING,
	EVENTLOG_LINE_INFO,
};

/*
 * eventlog_register() - registers event source source in the Application log
 * (HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\source, with
 * EventMessageFile and TypesSupported; see eventlog.c for the message file).
 * Needs an elevated Administrator.
 * Return: 0 with what was done in msg, or a negative errno with a one-line
 * reason in msg.
 */
int eventlog_register(const char *source, char *msg, size_t msglen);
/*
 * eventlog_unregister() - removes that key.
 * Return: 0 (msg says whether it was there), or a negative errno with a reason in msg.
 */
int eventlog_unregister(const char *source, char *msg, size_t msglen);

/*
 * eventlog_open() - opens source for eventlog_report() in this process (once,
 * before the threads that report start). A source that was never registered
 * still logs: the Event Viewer then says it has no description for the id.
 * Return: 0, or a negative errno (nothing is reported then).
 */
int eventlog_open(const char *source);
/*
 * eventlog_report() - writes line as one event of type; any thread. Without
 * eventlog_open() it does nothing.
 * Return: 0, -ENOTCONN when the source is not open, or another negative errno.
 */
int eventlog_report(enum eventlog_type type, const char *line);
/* eventlog_close() - closes the source (eventlog_report() then does nothing). */
void eventlog_close(void);

#endif
