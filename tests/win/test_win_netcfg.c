/* Tests of network configuration over the IP Helper API (platform/win/netcfg.c) under Wine. */
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
#include "platform/netcfg.h"

/*
 * What Wine can check, reading only (nothing here changes the machine's
 * configuration, under Wine or on Windows): the shared prefix helpers, the
 * address table (127.0.0.1/8 on the loopback interface), the loopback link by
 * index and by name (its alias, or "ifN"), the route table with its
 * multicast routes typed apart, a subnet inside one of the host's routes colliding,
 * the uplinks leaving loopback out, and the refusals that come before any
 * change (a missing interface, a route without one, a bad address). Where
 * Wine's iphlpapi lacks a call the test skips and says which.
 *
 * What only a real Windows host, as an administrator, checks: adding and
 * removing addresses (NODAD preferred at once, a second add replacing the
 * first) and routes (-EEXIST, -ESRCH), setting the MTU of both families,
 * switching forwarding on per interface and family and restoring it only
 * where it still holds what was written, and whether IPv6 forwarding on an
 * uplink costs it router advertisements (it should not: that is
 * "Advertising", a separate switch).
 */

static struct netcfg *nc;

static int setup(void **state)
{
	return netcfg_open(&nc);
}

static int teardown(void **state)
{
	netcfg_close(nc);
	return 0;
}

/* ---- prefixes (platform/netcfg_common.c, shared with Linux) ---- */

static void test_prefix_parse_mask_and_overlap(void **state)
{
	struct netcfg_prefix a, b;

	assert_int_equal(netcfg_prefix_parse("10.77.0.1/24", &a), 0);
	assert_int_equal(a.len, 24);
	netcfg_prefix_mask(&a);
	assert_int_equal(a.addr.ip[3], 0);
	assert_int_equal(netcfg_prefix_parse("10.0.0.0/8", &b), 0);
	assert_true(netcfg_prefix_overlap(&a, &b));
	assert_int_equal(netcfg_prefix_parse("fd00:77::1/129", &b), -EINVAL);
	assert_int_equal(netcfg_prefix_parse("10.0.0.1", &b), -EINVAL);
}

/* ---- addresses ---- */

struct found {
	int ifindex;
	bool tentative;
};

static void find_loopback_addr(void *arg, const struct netcfg_addr *a)
{
	struct found *f = arg;

	if (a->addr.addr.family == NET_IPV4 && a->addr.addr.ip[0] == 127 &&
	    a->addr.addr.ip[3] == 1 && !f->ifindex)
		f->ifindex = a->ifindex;
}

/* The loopback interface's index, from the address table; skips when Wine cannot list it. */
static int loopback_index(void)
{
	struct found f = {0};
	int r = netcfg_addr_dump(nc, NET_IPV4, find_loopback_addr, &f);

	if (r < 0) {
		print_message("GetUnicastIpAddressTable: %s\n", netcfg_why(nc));
		skip();
	}
	if (!f.ifindex) {
		print_message("no 127.0.0.1 in the address table\n");
		skip();
	}
	return f.ifindex;
}

static void test_address_table_has_the_loopback_address(void **state)
{
	assert_true(loopback_index() > 0);
	assert_string_equal(netcfg_why(nc), "");
}

/* ---- links ---- */

static void test_loopback_link_by_index_and_by_name(void **state)
{
	struct netcfg_link l, m;
	char alt[16];
	int idx = loopback_index();

	if (netcfg_link_get(nc, idx, NULL, &l) < 0) {
		print_message("GetIfEntry2(%d): %s\n", idx, netcfg_why(nc));
		skip();
	}
	assert_int_equal(l.ifindex, idx);
	assert_true(l.loopback);
	assert_true(l.name[0] != '\0');
	assert_int_equal(netcfg_link_get(nc, 0, l.name, &m), 0);
	assert_int_equal(m.ifindex, idx);
	snprintf(alt, sizeof(alt), "if%d", idx);
	assert_int_equal(netcfg_link_get(nc, 0, alt, &m), 0);
	assert_int_equal(m.ifindex, idx);
}

static void test_missing_link_is_enodev(void **state)
{
	struct netcfg_link l;

	assert_int_equal(netcfg_link_get(nc, 0, "vmbusify-none", &l), -ENODEV);
	assert_int_equal(netcfg_link_get(nc, 0x7ffffff0, NULL, &l), -ENODEV);
	assert_int_equal(netcfg_link_set_up(nc, 0x7ffffff0, true), -ENODEV);
}

/* ---- routes ---- */

struct routes {
	int n, multicast_unicast;
};

static void count_route(void *arg, const struct netcfg_route *r)
{
	struct routes *c = arg;

	c->n++;
	if (r->dst.addr.family == NET_IPV4 && (r->dst.addr.ip[0] & 0xf0) == 0xe0 && r->type == 1)
		c->multicast_unicast++;
	assert_int_equal(r->table, NETCFG_TABLE_MAIN);
}

static void test_route_table_is_read_with_multicast_typed_apart(void **state)
{
	struct routes c = {0};

	if (netcfg_route_dump(nc, 0, count_route, &c) < 0) {
		print_message("GetIpForwardTable2: %s\n", netcfg_why(nc));
		skip();
	}
	if (c.n == 0) {
		print_message("GetIpForwardTable2 lists no routes here\n");
		skip();
	}
	assert_int_equal(c.multicast_unicast, 0);
}

/* The first IPv4 unicast route that is neither a default route nor a host route. */
static void find_subnet_route(void *arg, const struct netcfg_route *r)
{
	struct netcfg_route *out = arg;

	if (!out->dst.addr.family && r->dst.addr.family == NET_IPV4 && r->type == 1 &&
	    r->dst.len >= 8 && r->dst.len <= 30)
		*out = *r;
}

static void test_subnet_inside_a_host_route_collides(void **state)
{
	struct netcfg_route found = {0}, hit;
	struct netcfg_prefix p;

	if (netcfg_route_dump(nc, NET_IPV4, find_subnet_route, &found) < 0 ||
	    !found.dst.addr.family) {
		print_message("no IPv4 subnet route listed here\n");
		skip();
	}
	p = found.dst;
	p.len++; /* a narrower subnet inside it */
	assert_int_equal(netcfg_route_collides(nc, &p, 0, &hit), 1);
	assert_true(netcfg_prefix_overlap(&hit.dst, &p));
	assert_string_equal(netcfg_why(nc), "");
}

static void test_uplinks_leave_loopback_out(void **state)
{
	int up[16], n, idx = loopback_index();

	n = netcfg_egress_links(nc, 0, 0, up, 16);
	assert_true(n >= 0);
	for (int i = 0; i < n; i++)
		assert_int_not_equal(up[i], idx);
}

/* ---- refusals before any change ---- */

static void test_changes_are_refused_before_reaching_windows(void **state)
{
	struct netcfg_route r = {0};
	struct netcfg_prefix p;
	struct netcfg_fwd fwd = {0};

	assert_int_equal(netcfg_prefix_parse("10.77.0.0/24", &r.dst), 0);
	assert_int_equal(netcfg_route_add(nc, &r), -EINVAL); /* no interface */
	assert_string_equal(netcfg_why(nc),
			    "route (Windows needs its interface): Invalid argument");
	r.ifindex = 1;
	r.table = 100;
	assert_int_equal(netcfg_route_add(nc, &r), -EOPNOTSUPP);
	memset(&p, 0, sizeof(p));
	assert_int_equal(netcfg_addr_add(nc, 1, &p, 0), -EINVAL);
	assert_int_equal(netcfg_fwd_enable(nc, &fwd, "vmbusify-none", NETCFG_FWD_IPV4), -ENODEV);
	assert_int_equal(fwd.n, 0);
	assert_int_equal(netcfg_link_set_mtu(nc, 1, 67), -EINVAL);
	assert_int_equal(netcfg_fwd_restore(&fwd), 0);
}

static bool under_wine(void)
{
	HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");

	return ntdll && GetProcAddress(ntdll, "wine_get_version");
}

/* Wine's iphlpapi has no call that changes anything: each fails with its name, never aborts. */
static void test_changes_wine_lacks_fail_cleanly_with_the_call_named(void **state)
{
	struct netcfg_route r = {.ifindex = 0x7ffffff0};
	struct netcfg_prefix p;

	if (!under_wine()) {
		print_message("not Wine: these calls exist, and this test changes nothing\n");
		skip();
	}
	assert_int_equal(netcfg_prefix_parse("10.77.0.1/24", &p), 0);
	assert_int_equal(netcfg_addr_add(nc, 0x7ffffff0, &p, 0), -ENOSYS);
	assert_string_equal(netcfg_why(nc), "CreateUnicastIpAddressEntry: not available on this "
					    "Windows (Wine lacks it)");
	r.dst = p;
	assert_int_equal(netcfg_route_add(nc, &r), -ENOSYS);
	assert_int_equal(netcfg_link_set_mtu(nc, 0x7ffffff0, 1500), -ENOSYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prefix_parse_mask_and_overlap),
	    cmocka_unit_test(test_address_table_has_the_loopback_address),
	    cmocka_unit_test(test_loopback_link_by_index_and_by_name),
	    cmocka_unit_test(test_missing_link_is_enodev),
	    cmocka_unit_test(test_route_table_is_read_with_multicast_typed_apart),
	    cmocka_unit_test(test_subnet_inside_a_host_route_collides),
	    cmocka_unit_test(test_uplinks_leave_loopback_out),
	    cmocka_unit_test(test_changes_are_refused_before_reaching_windows),
	    cmocka_unit_test(test_changes_wine_lacks_fail_cleanly_with_the_call_named),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
