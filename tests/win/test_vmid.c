/* Tests of Hyper-V VM names for hvsock:// (platform/win/vmid.c) under Wine. */
#include <winsock2.h>
#include <windows.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "core/list.h"
#include "core/uri.h"
#include "platform/loop.h"
#include "platform/transport.h"
#include "platform/win/hvsock.h"
#include "platform/win/vmid.h"

/*
 * What Wine can check: the WQL escaping, reading the VMID out of the Name
 * property, and that a name fails with one clear line, through the blocking
 * lookup, the blocking dial and the dial on a loop (cancel included), without
 * crashing or hanging: Wine has WMI but no root\virtualization\v2.
 *
 * What only a real Hyper-V host checks: that Hyper-V's provider answers the
 * query (ElementName matched, the host's own Msvm_ComputerSystem left out by
 * its Name), one VM giving its VMID and a dial reaching it, two VMs of one
 * name giving the "N Hyper-V VMs are named" line, a missing name giving "no
 * Hyper-V VM named", access denied for a user outside Administrators and
 * Hyper-V Administrators, and the impersonation blanket the provider needs.
 * On such a host the tests below that expect the namespace to be missing
 * skip (a VM really named "vmbusify-test-no-such-vm" would make them skip too).
 */

#define MS	   1000000ull
#define NO_SUCH_VM "vmbusify-test-no-such-vm"

static bool under_wine(void)
{
	HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");

	return ntdll && GetProcAddress(ntdll, "wine_get_version");
}

/* Checks a lookup's failure: under Wine the namespace is missing; elsewhere skip unless Hyper-V
 * said no such VM. */
static void check_lookup_failed(int r, const char *why)
{
	assert_true(r < 0);
	assert_null(strchr(why, '\n'));
	if (under_wine()) {
		assert_int_equal(r, -ENOTSUP);
		assert_string_equal(why, "cannot resolve VM name '" NO_SUCH_VM
					 "': Hyper-V's WMI namespace root\\virtualization\\v2 is "
					 "not available (is Hyper-V installed, and are you an "
					 "administrator?)");
		return;
	}
	if (r != -ENXIO)
		skip(); /* a Windows host: the answer depends on its Hyper-V and rights */
	assert_string_equal(why, "no Hyper-V VM named '" NO_SUCH_VM "'");
}

/* ---- WQL string literals ---- */

static void test_wql_escape_puts_a_backslash_before_quotes_and_backslashes(void **state)
{
	char out[64];

	assert_int_equal(vmid_wql_escape("it's a\\b", out, sizeof(out)), 10);
	assert_string_equal(out, "it\\'s a\\\\b");
}

static void test_wql_escape_keeps_other_characters_and_utf8(void **state)
{
	char out[64];

	assert_int_equal(
	    vmid_wql_escape("Ubuntu 24.04 \"dev\" \xc3\xa9t\xc3\xa9", out, sizeof(out)), 24);
	assert_string_equal(out, "Ubuntu 24.04 \"dev\" \xc3\xa9t\xc3\xa9");
}

static void test_wql_escape_cannot_end_a_literal_early(void **state)
{
	char out[64];

	/* An injection attempt stays inside the literal: every quote is escaped. */
	assert_true(vmid_wql_escape("x' OR ElementName <> '", out, sizeof(out)) > 0);
	assert_string_equal(out, "x\\' OR ElementName <> \\'");
	assert_true(vmid_wql_escape("\\'", out, sizeof(out)) > 0);
	assert_string_equal(out, "\\\\\\'");
}

static void test_wql_escape_refuses_a_buffer_too_small(void **state)
{
	char out[4];

	assert_int_equal(vmid_wql_escape("abc", out, sizeof(out)), 3);
	assert_int_equal(vmid_wql_escape("abcd", out, sizeof(out)), -ENAMETOOLONG);
	assert_int_equal(vmid_wql_escape("ab'", out, sizeof(out)), -ENAMETOOLONG);
	assert_int_equal(vmid_wql_escape("", out, 1), 0);
}

/* ---- the Name property ---- */

static void test_name_property_gives_the_vmid(void **state)
{
	struct guid want, got;

	assert_int_equal(guid_parse("5B3F7A8E-1C2D-4E5F-8A9B-0C1D2E3F4A5B", &want), 0);
	assert_int_equal(vmid_from_name(L"5B3F7A8E-1C2D-4E5F-8A9B-0C1D2E3F4A5B", &got), 0);
	assert_memory_equal(got.b, want.b, sizeof(want.b));
	assert_int_equal(vmid_from_name(L"5b3f7a8e-1c2d-4e5f-8a9b-0c1d2e3f4a5b", &got), 0);
	assert_memory_equal(got.b, want.b, sizeof(want.b));
	assert_int_equal(vmid_from_name(L"{5B3F7A8E-1C2D-4E5F-8A9B-0C1D2E3F4A5B}", &got), 0);
	assert_memory_equal(got.b, want.b, sizeof(want.b));
	/* Windows' in-memory order: Data1 little-endian. */
	assert_int_equal(got.b[0], 0x8E);
	assert_int_equal(got.b[3], 0x5B);
}

static void test_name_property_of_the_host_is_not_a_vmid(void **state)
{
	struct guid g;

	assert_int_equal(vmid_from_name(L"HYPERV-HOST01", &g), -EINVAL);
	assert_int_equal(vmid_from_name(L"", &g), -EINVAL);
	assert_int_equal(vmid_from_name(L"5B3F7A8E-1C2D-4E5F-8A9B-0C1D2E3F4A5B-00", &g), -EINVAL);
	assert_int_equal(vmid_from_name(L"5B3F7A8E-1C2D-4E5F-8A9B-0C1D2E3F4A5\x00e9", &g), -EINVAL);
	assert_int_equal(vmid_from_name(L"5B3F7A8E-1C2D-4E5F-8A9B-0C1D2E3F4A5G", &g), -EINVAL);
}

/* ---- looking a name up without Hyper-V ---- */

static void test_resolve_without_hyper_v_fails_with_one_clear_line(void **state)
{
	struct guid g;
	char why[300] = "";
	int r = vmid_resolve(NO_SUCH_VM, 60000, &g, why, sizeof(why));

	check_lookup_failed(r, why);
}

static void test_hvsock_resolve_leaves_a_vmid_alone(void **state)
{
	struct uri u;
	char why[200] = "";

	assert_int_equal(uri_parse("hvsock://parent:80", &u, why, sizeof(why)), 0);
	assert_int_equal(hvsock_resolve(&u, 1, why, sizeof(why)), 0); /* no WMI involved */
	assert_true(u.vm_is_guid);
}

static void test_dial_sync_by_name_fails_with_the_lookup_reason(void **state)
{
	struct transport_opts o = {.connect_timeout_ms = 60000};
	struct uri u;
	char why[300] = "";
	pl_fd fd = 0;

	assert_int_equal(uri_parse("hvsock://" NO_SUCH_VM ":80", &u, why, sizeof(why)), 0);
	assert_false(u.vm_is_guid);
	check_lookup_failed(transport_dial_sync(&u, &o, &fd, why, sizeof(why)), why);
	assert_int_equal(fd, -1);
}

static void test_listen_by_name_fails_with_the_lookup_reason(void **state)
{
	struct transport_listener *tl = NULL;
	struct uri u;
	char why[300] = "";

	assert_int_equal(uri_parse("hvsock://" NO_SUCH_VM ":80", &u, why, sizeof(why)), 0);
	check_lookup_failed(transport_listen(&u, NULL, &tl, why, sizeof(why)), why);
	assert_null(tl);
}

struct dialed {
	struct transport_dial_req dr;
	int calls;
	int res;
	pl_fd fd;
};

static void dialed_cb(struct transport_dial_req *dr, int res, pl_fd fd)
{
	struct dialed *d = container_of(dr, struct dialed, dr);

	d->calls++;
	d->res = res;
	d->fd = fd;
}

struct ticks {
	struct loop_req timer;
	int n;
};

/* A 1 ms timer that submits itself again: counts the loop's turns while the lookup runs. */
static void tick_cb(struct loop_req *r, int res)
{
	struct ticks *t = container_of(r, struct ticks, timer);

	if (res < 0)
		return;
	t->n++;
	assert_int_equal(loop_timer(r->data, r, MS, tick_cb), 0);
}

static void test_dial_by_name_on_a_loop_fails_through_its_callback(void **state)
{
	struct transport_opts o = {.connect_timeout_ms = 60000};
	struct ticks t = {0};
	struct dialed d = {0};
	struct loop *l = NULL;
	uint64_t start, end;
	struct uri u;
	char why[200] = "";

	assert_int_equal(uri_parse("hvsock://" NO_SUCH_VM ":80", &u, why, sizeof(why)), 0);
	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	t.timer.data = l;
	assert_int_equal(loop_timer(l, &t.timer, MS, tick_cb), 0);
	start = clock_now_ns();
	assert_int_equal(transport_dial(l, &u, &o, &d.dr, dialed_cb), 0);
	/* The lookup is on its own thread: starting the dial does not wait for WMI. */
	assert_true(clock_now_ns() - start < 1000 * MS);
	assert_int_equal(d.calls, 0);
	end = clock_now_ns() + 60000 * MS;
	while (!d.calls && clock_now_ns() < end)
		assert_true(loop_run_once(l, 50 * MS) >= 0);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.fd, -1);
	print_message("lookup took %llu ms, %d timer turns meanwhile\n",
		      (unsigned long long)((clock_now_ns() - start) / MS), t.n);
	check_lookup_failed(d.res, d.dr.why);
	loop_cancel(l, &t.timer);
	loop_run_once(l, 0);
	loop_free(l);
}

static void test_dial_by_name_cancelled_during_the_lookup_ends_at_once(void **state)
{
	struct dialed d = {0};
	struct loop *l = NULL;
	uint64_t end;
	struct uri u;
	char why[200] = "";

	assert_int_equal(uri_parse("hvsock://" NO_SUCH_VM ":80", &u, why, sizeof(why)), 0);
	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(transport_dial(l, &u, NULL, &d.dr, dialed_cb), 0);
	transport_dial_cancel(&d.dr);
	end = clock_now_ns() + 5000 * MS;
	while (!d.calls && clock_now_ns() < end)
		assert_true(loop_run_once(l, 50 * MS) >= 0);
	assert_int_equal(d.calls, 1);
	assert_int_equal(d.res, -ECANCELED);
	assert_int_equal(d.fd, -1);
	/* The lookup's thread finishes on its own and frees its job; the loop does not wait. */
	loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_wql_escape_puts_a_backslash_before_quotes_and_backslashes),
	    cmocka_unit_test(test_wql_escape_keeps_other_characters_and_utf8),
	    cmocka_unit_test(test_wql_escape_cannot_end_a_literal_early),
	    cmocka_unit_test(test_wql_escape_refuses_a_buffer_too_small),
	    cmocka_unit_test(test_name_property_gives_the_vmid),
	    cmocka_unit_test(test_name_property_of_the_host_is_not_a_vmid),
	    cmocka_unit_test(test_resolve_without_hyper_v_fails_with_one_clear_line),
	    cmocka_unit_test(test_hvsock_resolve_leaves_a_vmid_alone),
	    cmocka_unit_test(test_dial_sync_by_name_fails_with_the_lookup_reason),
	    cmocka_unit_test(test_listen_by_name_fails_with_the_lookup_reason),
	    cmocka_unit_test(test_dial_by_name_on_a_loop_fails_through_its_callback),
	    cmocka_unit_test(test_dial_by_name_cancelled_during_the_lookup_ends_at_once),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
