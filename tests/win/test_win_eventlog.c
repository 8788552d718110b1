/* Tests of the event log's source (platform/win/eventlog.c): registration, reports, removal.
 *
 * Under Wine the registry is real but the event log is a stub: RegisterEventSourceW
 * gives a handle and ReportEventW accepts the event and keeps nothing, so what an
 * event looks like in the Event Viewer (netmsg.dll's message 3299 with our line as
 * %1) is for a Windows host. Each test uses a source of its own name, so that the
 * daemon's own ("vmbusifyd", which the interop test installs) is not touched.
 */
#include <windows.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "platform/win/eventlog.h"

#define KEY "SYSTEM\\CurrentControlSet\\Services\\EventLog\\Application\\"

static char source[64], key[200];

static int setup(void **state)
{
	static int n;

	snprintf(source, sizeof(source), "vmbusifyd-test-%lu-%d", GetCurrentProcessId(), n++);
	snprintf(key, sizeof(key), KEY "%s", source);
	return 0;
}

static int teardown(void **state)
{
	char msg[300];

	eventlog_close();
	eventlog_unregister(source, msg, sizeof(msg));
	return 0;
}

static void test_register_writes_the_message_file_and_the_types(void **state)
{
	char msg[300], file[MAX_PATH];
	DWORD types = 0, n = sizeof(types), t;

	assert_int_equal(eventlog_register(source, msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "registered the event source"));
	assert_int_equal(RegGetValueA(HKEY_LOCAL_MACHINE, key, "TypesSupported", RRF_RT_REG_DWORD,
				      NULL, &types, &n),
			 ERROR_SUCCESS);
	assert_int_equal(types,
			 EVENTLOG_ERROR_TYPE | EVENTLOG_WARNING_TYPE | EVENTLOG_INFORMATION_TYPE);
	/* Not expanded: the Event Viewer expands %SystemRoot% itself. */
	n = sizeof(file);
	assert_int_equal(RegGetValueA(HKEY_LOCAL_MACHINE, key, "EventMessageFile",
				      RRF_RT_ANY | RRF_NOEXPAND, &t, file, &n),
			 ERROR_SUCCESS);
	assert_int_equal(t, REG_EXPAND_SZ);
	assert_string_equal(file, "%SystemRoot%\\System32\\netmsg.dll");
}

static void test_register_twice_is_fine(void **state)
{
	char msg[300];

	assert_int_equal(eventlog_register(source, msg, sizeof(msg)), 0);
	assert_int_equal(eventlog_register(source, msg, sizeof(msg)), 0);
}

static void test_unregister_removes_the_key_and_says_when_it_was_not_there(void **state)
{
	char msg[300];
	HKEY k;

	assert_int_equal(eventlog_register(source, msg, sizeof(msg)), 0);
	assert_int_equal(eventlog_unregister(source, msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "removed the event source"));
	assert_int_equal(RegOpenKeyExA(HKEY_LOCAL_MACHINE, key, 0, KEY_READ, &k),
			 ERROR_FILE_NOT_FOUND);
	assert_int_equal(eventlog_unregister(source, msg, sizeof(msg)), 0);
	assert_non_null(strstr(msg, "was not registered"));
}

static void test_reports_of_every_type_are_accepted(void **state)
{
	char msg[300];

	assert_int_equal(eventlog_register(source, msg, sizeof(msg)), 0);
	assert_int_equal(eventlog_open(source), 0);
	assert_int_equal(eventlog_report(EVENTLOG_LINE_ERROR, "vmbusifyd: start: a test error"), 0);
	assert_int_equal(eventlog_report(EVENTLOG_LINE_WARNING, "vmbusifyd: a test warning"), 0);
	assert_int_equal(eventlog_report(EVENTLOG_LINE_INFO, "vmbusifyd: caf\xc3\xa9 started"), 0);
}

static void test_a_report_without_an_open_source_is_enotconn(void **state)
{
	assert_int_equal(eventlog_report(EVENTLOG_LINE_ERROR, "nobody hears this"), -ENOTCONN);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_register_writes_the_message_file_and_the_types),
	    T(test_register_twice_is_fine),
	    T(test_unregister_removes_the_key_and_says_when_it_was_not_there),
	    T(test_reports_of_every_type_are_accepted),
	    T(test_a_report_without_an_open_source_is_enotconn),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
