/* Tests of NAT over WinNAT (platform/win/nat.c) under Wine. */
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
#include "platform/nat.h"

/*
 * What Wine can check: the rendering (the PowerShell equivalent, the prefix's
 * host bits cleared, IPv6 and the firewall named as left to others), the
 * refusals before any WMI call, and that setup and teardown fail with one
 * clear line and no hang where WinNAT's namespace is missing: Wine has WMI
 * but no ROOT\StandardCimv2.
 *
 * What only a real Windows host, as an administrator, with Hyper-V or
 * Containers (WinNAT) checks: the MSFT_NetNat object created with the
 * subnet's prefix (Get-NetNat vmbusify), an old one of that name replaced,
 * teardown removing it and succeeding when there is none, a prefix that
 * overlaps another NAT refused with its line, access denied for a user
 * that is not an administrator, and VMs' IPv4 traffic leaving NAT-ed. On
 * such a host the tests that expect the namespace to be missing skip.
 */

static bool under_wine(void)
{
	HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");

	return ntdll && GetProcAddress(ntdll, "wine_get_version");
}

static struct nat_config conf(const char *v4, const char *v6)
{
	struct nat_config c = {.tun = "vmbusify0"};

	if (v4)
		assert_int_equal(netcfg_prefix_parse(v4, &c.v4), 0);
	if (v6)
		assert_int_equal(netcfg_prefix_parse(v6, &c.v6), 0);
	return c;
}

static void test_render_gives_the_powershell_that_does_the_same(void **state)
{
	struct nat_config c = conf("10.77.0.1/24", "fd00:77::1/64");
	char buf[512], why[200] = "";
	int n = nat_render(&c, buf, sizeof(buf), why, sizeof(why));

	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(buf));
	assert_string_equal(buf,
			    "Get-NetNat -Name vmbusify -ErrorAction SilentlyContinue | "
			    "Remove-NetNat -Confirm:$false\n"
			    "New-NetNat -Name vmbusify -InternalIPInterfaceAddressPrefix "
			    "10.77.0.0/24\n"
			    "# fd00:77::/64: not NAT-ed (WinNAT is IPv4 only)\n"
			    "# the host's own services: the firewall's rules for 'vmbusify0'\n");
}

static void test_render_refuses_what_winnat_cannot_do(void **state)
{
	struct nat_config c = conf(NULL, "fd00:77::1/64");
	char buf[512], why[200] = "";

	assert_int_equal(nat_render(&c, buf, sizeof(buf), why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "NAT: WinNAT needs the subnet's IPv4 prefix");
	c = conf("10.77.0.1/24", NULL);
	c.allow_inbound = true;
	assert_int_equal(nat_render(&c, buf, sizeof(buf), why, sizeof(why)), -EOPNOTSUPP);
	c = conf("fd00:77::1/64", NULL);
	assert_int_equal(nat_render(&c, buf, sizeof(buf), why, sizeof(why)), -EINVAL);
	c = conf("10.77.0.1/24", NULL);
	assert_int_equal(nat_render(&c, buf, 40, why, sizeof(why)), -ENOSPC);
	assert_int_equal(nat_setup(&(struct nat_config){.tun = "vmbusify0"}, why, sizeof(why)),
			 -EINVAL);
}

/* Under Wine the namespace is missing; on Windows skip (the answer depends on the host). */
static void check_namespace_missing(int r, const char *why)
{
	if (!under_wine()) {
		print_message("not Wine: WinNAT's answer depends on this host (got %d: %s)\n", r,
			      why);
		skip();
	}
	assert_int_equal(r, -ENOTSUP);
	assert_string_equal(why, "NAT: WinNAT's WMI namespace ROOT\\StandardCimv2 is not "
				 "available (Windows 10 or Server 2016 and later have it)");
}

static void test_setup_without_winnat_fails_with_one_clear_line(void **state)
{
	struct nat_config c = conf("10.77.0.1/24", NULL);
	char why[300] = "";

	if (!under_wine()) {
		print_message("not Wine: this would create a real WinNAT object\n");
		skip();
	}
	check_namespace_missing(nat_setup(&c, why, sizeof(why)), why);
}

static void test_teardown_without_winnat_fails_with_one_clear_line(void **state)
{
	char why[300] = "";

	if (!under_wine()) {
		print_message("not Wine: this would remove a real WinNAT object\n");
		skip();
	}
	check_namespace_missing(nat_teardown(why, sizeof(why)), why);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_render_gives_the_powershell_that_does_the_same),
	    cmocka_unit_test(test_render_refuses_what_winnat_cannot_do),
	    cmocka_unit_test(test_setup_without_winnat_fails_with_one_clear_line),
	    cmocka_unit_test(test_teardown_without_winnat_fails_with_one_clear_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
