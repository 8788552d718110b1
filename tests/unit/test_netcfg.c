/* Links, addresses, routes and forwarding over rtnetlink, for real in private network namespaces.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <setjmp.h>
#include <cmocka.h>
#include "platform/netcfg.h"
#include "platform/tun.h"
#include "tests/unit/nstest.h"

static struct netcfg *nc;
static struct tun A = {.fd = -1}, B = {.fd = -1};

static int setup(void **state)
{
	if (nstest_setup(state) < 0)
		return -1;
	return netcfg_open(&nc) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	tun_close(&A);
	tun_close(&B);
	netcfg_close(nc);
	nc = NULL;
	return 0;
}

static struct netcfg_prefix pfx(const char *s)
{
	struct netcfg_prefix p;

	if (netcfg_prefix_parse(s, &p) < 0)
		fail_msg("bad prefix in the test: %s", s);
	return p;
}

static struct net_addr ipa(const char *s)
{
	struct net_addr a;

	if (net_addr_parse_ip(s, &a) < 0)
		fail_msg("bad address in the test: %s", s);
	return a;
}

/* Opens t as a TUN named name and brings it up. */
static void tun_up(struct tun *t, const char *name)
{
	char why[256];

	if (tun_open(t, name, TUN_OFFLOAD_ALL, why, sizeof(why)) < 0)
		fail_msg("tun_open: %s", why);
	assert_int_equal(netcfg_link_set_up(nc, t->ifindex, true), 0);
}

/* Fails the test with the reason when ret is not 0. */
#define OK(call)                                                                                   \
	do {                                                                                       \
		int ret_ = (call);                                                                 \
		if (ret_ != 0)                                                                     \
			fail_msg("%s: %d %s", #call, ret_, netcfg_why(nc));                        \
	} while (0)

/* --- what the dumps find --- */

struct addr_find {
	int ifindex;
	struct netcfg_prefix want;
	int found;
	unsigned flags;
};

static void addr_find_cb(void *arg, const struct netcfg_addr *a)
{
	struct addr_find *f = arg;

	if (a->ifindex == f->ifindex && a->addr.len == f->want.len &&
	    net_addr_equal(&a->addr.addr, &f->want.addr)) {
		f->found++;
		f->flags = a->flags;
	}
}

/* How often the link has the address (0 or 1), and its flags. */
static int addr_count(int ifindex, const char *prefix, unsigned *flags)
{
	struct addr_find f = {.ifindex = ifindex, .want = pfx(prefix)};

	OK(netcfg_addr_dump(nc, 0, addr_find_cb, &f));
	if (flags)
		*flags = f.flags;
	return f.found;
}

struct route_find {
	struct netcfg_route want; /* dst, ifindex, gw, metric (0: any) compared */
	int found;
	struct netcfg_route got;
};

static void route_find_cb(void *arg, const struct netcfg_route *r)
{
	struct route_find *f = arg;
	struct netcfg_prefix dst = f->want.dst;

	netcfg_prefix_mask(&dst);
	if (r->dst.len != dst.len || !net_addr_equal(&r->dst.addr, &dst.addr))
		return;
	if (r->ifindex != f->want.ifindex || (f->want.metric && r->metric != f->want.metric))
		return;
	if (f->want.gw.family && !net_addr_equal(&r->gw, &f->want.gw))
		return;
	f->found++;
	f->got = *r;
}

/* How many routes match r in any table; *got is the last one. */
static int route_count(const struct netcfg_route *r, struct netcfg_route *got)
{
	struct route_find f = {.want = *r};

	OK(netcfg_route_dump(nc, 0, route_find_cb, &f));
	if (got)
		*got = f.got;
	return f.found;
}

/* --- prefixes (no kernel) --- */

static void test_prefix_parse(void **state)
{
	struct netcfg_prefix p;

	assert_int_equal(netcfg_prefix_parse("10.77.0.1/24", &p), 0);
	assert_int_equal(p.addr.family, NET_IPV4);
	assert_int_equal(p.len, 24);
	assert_int_equal(netcfg_prefix_parse("fd00:77::1/64", &p), 0);
	assert_int_equal(p.addr.family, NET_IPV6);
	assert_int_equal(p.len, 64);
	assert_int_equal(netcfg_prefix_parse("::/0", &p), 0);
	assert_int_equal(netcfg_prefix_parse("10.0.0.1", &p), -EINVAL);
	assert_int_equal(netcfg_prefix_parse("10.0.0.1/33", &p), -EINVAL);
	assert_int_equal(netcfg_prefix_parse("fd00::/129", &p), -EINVAL);
	assert_int_equal(netcfg_prefix_parse("10.0.0.1/", &p), -EINVAL);
	assert_int_equal(netcfg_prefix_parse("10.0.0.1/2x", &p), -EINVAL);
	assert_int_equal(netcfg_prefix_parse("host/24", &p), -EINVAL);
}

static void test_prefix_mask_clears_host_bits(void **state)
{
	struct netcfg_prefix p = pfx("10.77.200.255/17"), want = pfx("10.77.128.0/17");

	netcfg_prefix_mask(&p);
	assert_true(net_addr_equal(&p.addr, &want.addr));
	p = pfx("fd00:1:2:3:4:5:6:7/56");
	want = pfx("fd00:1:2::/56");
	netcfg_prefix_mask(&p);
	assert_true(net_addr_equal(&p.addr, &want.addr));
}

static void test_prefix_overlap(void **state)
{
	struct netcfg_prefix a = pfx("10.77.0.0/16"), b = pfx("10.77.5.0/24"),
			     c = pfx("10.78.0.0/24");
	struct netcfg_prefix d = pfx("0.0.0.0/0"), e = pfx("fd00::/8");

	assert_true(netcfg_prefix_overlap(&a, &b));
	assert_true(netcfg_prefix_overlap(&b, &a));
	assert_false(netcfg_prefix_overlap(&a, &c));
	assert_true(netcfg_prefix_overlap(&d, &c));
	assert_false(netcfg_prefix_overlap(&e, &a));
}

/* --- links --- */

static void test_link_up_down_and_mtu(void **state)
{
	struct netcfg_link l;
	char why[256];

	assert_int_equal(tun_open(&A, "vbt0", 0, why, sizeof(why)), 0);
	OK(netcfg_link_get(nc, 0, "vbt0", &l));
	assert_int_equal(l.ifindex, A.ifindex);
	assert_string_equal(l.name, "vbt0");
	assert_false(l.up);
	OK(netcfg_link_set_up(nc, A.ifindex, true));
	OK(netcfg_link_set_mtu(nc, A.ifindex, 65520));
	OK(netcfg_link_get(nc, A.ifindex, NULL, &l));
	assert_true(l.up);
	assert_true(l.running); /* a TUN has carrier while its descriptor is open */
	assert_int_equal(l.mtu, 65520);
	OK(netcfg_link_set_up(nc, A.ifindex, false));
	OK(netcfg_link_get(nc, A.ifindex, NULL, &l));
	assert_false(l.up);
}

static void test_unknown_link_is_enodev(void **state)
{
	struct netcfg_link l;

	assert_int_equal(netcfg_link_get(nc, 0, "nosuchlink", &l), -ENODEV);
	assert_int_equal(netcfg_link_get(nc, 9999, NULL, &l), -ENODEV);
	assert_int_equal(netcfg_link_set_up(nc, 9999, true), -ENODEV);
	assert_true(strlen(netcfg_why(nc)) > 0);
	assert_int_equal(netcfg_link_get(nc, 0, "a-name-too-long-0", &l), -EINVAL);
}

/* --- addresses --- */

static void test_ipv4_address_and_its_route_come_and_go(void **state)
{
	struct netcfg_prefix a = pfx("10.20.0.1/24");
	struct netcfg_route prefix_route = {.dst = pfx("10.20.0.0/24")};
	struct netcfg_route got;

	tun_up(&A, "vbt0");
	prefix_route.ifindex = A.ifindex;
	OK(netcfg_addr_add(nc, A.ifindex, &a, 0));
	assert_int_equal(addr_count(A.ifindex, "10.20.0.1/24", NULL), 1);
	assert_int_equal(route_count(&prefix_route, &got), 1);
	assert_int_equal(got.table, NETCFG_TABLE_MAIN);
	assert_int_equal(got.protocol, 2); /* kernel */
	/* Adding it again replaces it. */
	OK(netcfg_addr_add(nc, A.ifindex, &a, 0));
	assert_int_equal(addr_count(A.ifindex, "10.20.0.1/24", NULL), 1);
	OK(netcfg_addr_del(nc, A.ifindex, &a));
	assert_int_equal(addr_count(A.ifindex, "10.20.0.1/24", NULL), 0);
	assert_int_equal(route_count(&prefix_route, NULL), 0);
	assert_int_equal(netcfg_addr_del(nc, A.ifindex, &a), -EADDRNOTAVAIL);
}

static void test_address_without_prefix_route(void **state)
{
	struct netcfg_prefix a = pfx("10.21.0.1/24");
	struct netcfg_route prefix_route = {.dst = pfx("10.21.0.0/24")};

	tun_up(&A, "vbt0");
	prefix_route.ifindex = A.ifindex;
	OK(netcfg_addr_add(nc, A.ifindex, &a, NETCFG_ADDR_NOPREFIXROUTE));
	assert_int_equal(addr_count(A.ifindex, "10.21.0.1/24", NULL), 1);
	assert_int_equal(route_count(&prefix_route, NULL), 0);
}

static void test_ipv6_ula_with_nodad_is_usable_at_once(void **state)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
	struct netcfg_prefix dad = pfx("fd00:20::1/64"), nodad = pfx("fd00:21::1/64");
	int va, vb, s;
	unsigned flags;

	/* A veth pair, unlike a TUN, does duplicate address detection. */
	assert_int_equal(nstest_veth_add("vbva", "vbvb", 0), 0);
	va = (int)if_nametoindex("vbva");
	vb = (int)if_nametoindex("vbvb");
	OK(netcfg_link_set_up(nc, vb, true));
	OK(netcfg_link_set_up(nc, va, true));
	OK(netcfg_addr_add(nc, va, &dad, 0));
	OK(netcfg_addr_add(nc, va, &nodad, NETCFG_ADDR_NODAD));
	assert_int_equal(addr_count(va, "fd00:20::1/64", &flags), 1);
	assert_true(flags & NETCFG_ADDR_TENTATIVE);
	assert_int_equal(addr_count(va, "fd00:21::1/64", &flags), 1);
	assert_true(flags & NETCFG_ADDR_NODAD);
	assert_false(flags & NETCFG_ADDR_TENTATIVE);

	s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	memcpy(&sa.sin6_addr, nodad.addr.ip, 16);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);
	OK(netcfg_addr_del(nc, va, &nodad));
	assert_int_equal(addr_count(va, "fd00:21::1/64", NULL), 0);
}

static void test_address_flags_outside_the_api_are_refused(void **state)
{
	struct netcfg_prefix a = pfx("10.22.0.1/24");

	tun_up(&A, "vbt0");
	assert_int_equal(netcfg_addr_add(nc, A.ifindex, &a, 0x80), -EINVAL);
	a.addr.family = 0;
	assert_int_equal(netcfg_addr_add(nc, A.ifindex, &a, 0), -EINVAL);
}

/* --- routes --- */

static void test_ipv4_route_with_gateway_and_metric_comes_and_goes(void **state)
{
	struct netcfg_route r = {
	    .dst = pfx("192.168.77.0/24"), .gw = ipa("10.30.0.2"), .metric = 77};
	struct netcfg_route got;
	struct netcfg_prefix a = pfx("10.30.0.1/24");

	tun_up(&A, "vbt0");
	OK(netcfg_addr_add(nc, A.ifindex, &a, 0));
	r.ifindex = A.ifindex;
	OK(netcfg_route_add(nc, &r));
	assert_int_equal(route_count(&r, &got), 1);
	assert_int_equal(got.table, NETCFG_TABLE_MAIN);
	assert_int_equal(got.protocol, 4); /* static */
	assert_int_equal(got.type, 1);	   /* unicast */
	assert_int_equal(got.metric, 77);
	assert_true(net_addr_equal(&got.gw, &r.gw));
	assert_int_equal(netcfg_route_add(nc, &r), -EEXIST);
	OK(netcfg_route_del(nc, &r));
	assert_int_equal(route_count(&r, NULL), 0);
	assert_int_equal(netcfg_route_del(nc, &r), -ESRCH);
}

static void test_default_routes_with_a_metric_come_and_go(void **state)
{
	struct netcfg_route r4 = {.dst = pfx("0.0.0.0/0"), .metric = 500};
	struct netcfg_route r6 = {.dst = pfx("::/0"), .metric = 500};
	struct netcfg_route got;

	tun_up(&A, "vbt0");
	r4.ifindex = r6.ifindex = A.ifindex;
	OK(netcfg_route_add(nc, &r4));
	OK(netcfg_route_add(nc, &r6));
	assert_int_equal(route_count(&r4, &got), 1);
	assert_int_equal(got.dst.len, 0);
	assert_int_equal(got.scope, 253); /* link: no gateway on a point-to-point link */
	assert_int_equal(route_count(&r6, &got), 1);
	assert_int_equal(got.metric, 500);
	OK(netcfg_route_del(nc, &r4));
	OK(netcfg_route_del(nc, &r6));
	assert_int_equal(route_count(&r4, NULL), 0);
	assert_int_equal(route_count(&r6, NULL), 0);
}

static void test_ipv6_route_comes_and_goes(void **state)
{
	struct netcfg_route r = {.dst = pfx("fd00:30::/64"), .metric = 300};

	tun_up(&A, "vbt0");
	r.ifindex = A.ifindex;
	OK(netcfg_route_add(nc, &r));
	assert_int_equal(route_count(&r, NULL), 1);
	OK(netcfg_route_del(nc, &r));
	assert_int_equal(route_count(&r, NULL), 0);
}

static void count_in_table_cb(void *arg, const struct netcfg_route *r)
{
	int *n = arg;

	*n += r->table == 100;
}

static void test_dump_of_many_routes_sees_them_all(void **state)
{
	struct netcfg_route r = {.table = 100};
	char dst[32];
	int n = 0;

	tun_up(&A, "vbt0");
	r.ifindex = A.ifindex;
	for (int i = 0; i < 1000; i++) {
		snprintf(dst, sizeof(dst), "10.%d.%d.0/24", 100 + i / 256, i % 256);
		r.dst = pfx(dst);
		OK(netcfg_route_add(nc, &r));
	}
	/* Far more than one datagram of answers. */
	OK(netcfg_route_dump(nc, NET_IPV4, count_in_table_cb, &n));
	assert_int_equal(n, 1000);
}

static void test_route_host_bits_are_ignored(void **state)
{
	struct netcfg_route r = {.dst = pfx("10.31.0.77/24")};

	tun_up(&A, "vbt0");
	r.ifindex = A.ifindex;
	OK(netcfg_route_add(nc, &r));
	assert_int_equal(route_count(&r, NULL), 1);
	OK(netcfg_route_del(nc, &r));
}

static void test_route_through_a_link_that_is_down_is_refused(void **state)
{
	struct netcfg_route r = {.dst = pfx("10.32.0.0/24")};
	char why[256];

	assert_int_equal(tun_open(&A, "vbt0", 0, why, sizeof(why)), 0);
	r.ifindex = A.ifindex;
	assert_int_equal(netcfg_route_add(nc, &r), -ENETDOWN);
}

static void test_errors_carry_the_kernels_reason(void **state)
{
	struct netcfg_route r = {.dst = pfx("192.168.78.0/24"), .gw = ipa("10.99.0.1")};
	int ret;

	tun_up(&A, "vbt0");
	r.ifindex = A.ifindex;
	ret = netcfg_route_add(nc, &r); /* a gateway that is not on the link */
	assert_true(ret < 0);
	print_message("kernel says: %s\n", netcfg_why(nc));
	assert_true(strlen(netcfg_why(nc)) > 0);
	assert_string_not_equal(netcfg_why(nc), strerror(-ret));
	/* Success clears it. */
	r.gw.family = 0;
	OK(netcfg_route_add(nc, &r));
	assert_string_equal(netcfg_why(nc), "");
}

static void test_bad_routes_are_refused_before_the_kernel(void **state)
{
	struct netcfg_route none = {.dst = pfx("10.33.0.0/24")}; /* no device, no gateway */
	struct netcfg_route mixed = {.dst = pfx("fd00::/64"), .gw = ipa("10.0.0.1"), .ifindex = 1};

	assert_int_equal(netcfg_route_add(nc, &none), -EINVAL);
	assert_int_equal(netcfg_route_add(nc, &mixed), -EINVAL);
}

/* --- collisions --- */

static void test_collision_with_a_narrower_route_is_found(void **state)
{
	struct netcfg_route r = {.dst = pfx("10.40.1.0/24")}, hit;
	struct netcfg_prefix p = pfx("10.40.0.0/16");

	tun_up(&A, "vbt0");
	tun_up(&B, "vbt1");
	r.ifindex = A.ifindex;
	OK(netcfg_route_add(nc, &r));
	assert_int_equal(netcfg_route_collides(nc, &p, B.ifindex, &hit), 1);
	assert_int_equal(hit.ifindex, A.ifindex);
	assert_int_equal(hit.dst.len, 24);
	assert_true(net_addr_equal(&hit.dst.addr, &r.dst.addr));
}

static void test_collision_with_a_wider_route_is_found(void **state)
{
	struct netcfg_route r = {.dst = pfx("10.0.0.0/8")};
	struct netcfg_prefix p = pfx("10.41.0.0/24");

	tun_up(&A, "vbt0");
	r.ifindex = A.ifindex;
	OK(netcfg_route_add(nc, &r));
	assert_int_equal(netcfg_route_collides(nc, &p, 0, NULL), 1);
}

static void test_default_route_is_no_collision(void **state)
{
	struct netcfg_route r4 = {.dst = pfx("0.0.0.0/0")}, r6 = {.dst = pfx("::/0")};
	struct netcfg_prefix p4 = pfx("10.42.0.0/24"), p6 = pfx("fd00:42::/64");

	tun_up(&A, "vbt0");
	r4.ifindex = r6.ifindex = A.ifindex;
	OK(netcfg_route_add(nc, &r4));
	OK(netcfg_route_add(nc, &r6));
	assert_int_equal(netcfg_route_collides(nc, &p4, 0, NULL), 0);
	assert_int_equal(netcfg_route_collides(nc, &p6, 0, NULL), 0);
}

static void test_our_own_routes_are_no_collision(void **state)
{
	struct netcfg_prefix a = pfx("10.43.0.1/24"), p = pfx("10.43.0.0/24");

	tun_up(&B, "vbt1");
	OK(netcfg_addr_add(nc, B.ifindex, &a, 0));
	assert_int_equal(netcfg_route_collides(nc, &p, B.ifindex, NULL), 0);
	assert_int_equal(netcfg_route_collides(nc, &p, 0, NULL), 1);
}

static void test_disjoint_and_other_tables_are_no_collision(void **state)
{
	struct netcfg_route other = {.dst = pfx("10.44.0.0/24"), .table = 100};
	struct netcfg_route near = {.dst = pfx("10.45.0.0/24")};
	struct netcfg_prefix p = pfx("10.44.0.0/24");

	tun_up(&A, "vbt0");
	other.ifindex = near.ifindex = A.ifindex;
	OK(netcfg_route_add(nc, &other));
	OK(netcfg_route_add(nc, &near));
	assert_int_equal(netcfg_route_collides(nc, &p, 0, NULL), 0);
}

static void test_ipv6_collision_is_found(void **state)
{
	struct netcfg_route r = {.dst = pfx("fd00:46::/64")}, hit;
	struct netcfg_prefix p = pfx("fd00:46::/48"), q = pfx("fd00:47::/64");

	tun_up(&A, "vbt0");
	r.ifindex = A.ifindex;
	OK(netcfg_route_add(nc, &r));
	assert_int_equal(netcfg_route_collides(nc, &p, 0, &hit), 1);
	assert_int_equal(hit.dst.addr.family, NET_IPV6);
	assert_int_equal(netcfg_route_collides(nc, &q, 0, NULL), 0);
}

static void test_egress_links_are_those_with_routes_but_ours(void **state)
{
	struct netcfg_prefix a = pfx("10.50.0.1/24"), b = pfx("192.0.2.1/24");
	struct netcfg_route def = {.dst = pfx("0.0.0.0/0"), .gw = ipa("192.0.2.254")};
	struct netcfg_route to_lo = {.dst = pfx("10.51.0.0/24"), .ifindex = 1};
	int va, vb, out[8], n;

	tun_up(&A, "vbt0");
	OK(netcfg_addr_add(nc, A.ifindex, &a, 0));
	assert_int_equal(nstest_veth_add("vbva", "vbvb", 0), 0);
	va = (int)if_nametoindex("vbva");
	vb = (int)if_nametoindex("vbvb");
	OK(netcfg_link_set_up(nc, va, true));
	OK(netcfg_link_set_up(nc, vb, true));
	OK(netcfg_addr_add(nc, va, &b, 0));
	def.ifindex = va;
	OK(netcfg_route_add(nc, &def));
	OK(netcfg_route_add(nc, &to_lo));
	/* vbvb has no route of its own (IPv4), the TUN is excepted, lo is never one. */
	n = netcfg_egress_links(nc, NET_IPV4, A.ifindex, out, 8);
	assert_int_equal(n, 1);
	assert_int_equal(out[0], va);
	n = netcfg_egress_links(nc, NET_IPV4, 0, out, 8);
	assert_int_equal(n, 2);
	assert_int_equal(netcfg_egress_links(nc, NET_IPV4, 0, out, 1), 1);
	/* IPv6: vbvb has only its link-local route, which does not count. */
	n = netcfg_egress_links(nc, NET_IPV6, A.ifindex, out, 8);
	assert_int_equal(n, 0);
}

/* --- forwarding --- */

static const char *conf(int v, const char *ifname, const char *key)
{
	static char path[128];

	snprintf(path, sizeof(path), "/proc/sys/net/ipv%d/conf/%s/%s", v, ifname, key);
	return nstest_sysctl(path);
}

static void test_forwarding_is_per_interface_and_restored(void **state)
{
	struct netcfg_fwd f = {0};
	bool v6_per_if;

	tun_up(&A, "vbt0");
	v6_per_if = access("/proc/sys/net/ipv6/conf/vbt0/force_forwarding", F_OK) == 0;
	if (!v6_per_if) {
		assert_int_equal(netcfg_fwd_enable(nc, &f, "vbt0", NETCFG_FWD_IPV6), -EOPNOTSUPP);
		assert_true(strlen(netcfg_why(nc)) > 0);
	}
	OK(netcfg_fwd_enable(nc, &f, "vbt0", NETCFG_FWD_IPV4 | (v6_per_if ? NETCFG_FWD_IPV6 : 0)));
	assert_string_equal(conf(4, "vbt0", "forwarding"), "1");
	assert_string_equal(nstest_sysctl("/proc/sys/net/ipv4/ip_forward"), "0");
	assert_string_equal(conf(4, "all", "forwarding"), "0");
	assert_string_equal(conf(4, "lo", "forwarding"), "0");
	if (v6_per_if) {
		assert_string_equal(conf(6, "vbt0", "force_forwarding"), "1");
		assert_string_equal(conf(6, "vbt0", "forwarding"), "0"); /* not made a router */
		assert_string_equal(conf(6, "all", "forwarding"), "0");
		assert_string_equal(conf(6, "lo", "force_forwarding"), "0");
	}
	assert_int_equal(f.n, v6_per_if ? 2 : 1);
	OK(netcfg_fwd_restore(&f));
	assert_int_equal(f.n, 0);
	assert_string_equal(conf(4, "vbt0", "forwarding"), "0");
	if (v6_per_if)
		assert_string_equal(conf(6, "vbt0", "force_forwarding"), "0");
}

static void test_forwarding_already_on_is_left_on(void **state)
{
	struct netcfg_fwd f = {0};
	char path[] = "/proc/sys/net/ipv4/conf/lo/forwarding";

	assert_int_equal(nstest_sysctl_set(path, "1"), 0);
	OK(netcfg_fwd_enable(nc, &f, "lo", NETCFG_FWD_IPV4));
	assert_int_equal(f.n, 0);
	OK(netcfg_fwd_restore(&f));
	assert_string_equal(nstest_sysctl(path), "1");
}

static void test_forwarding_of_a_link_gone_is_skipped(void **state)
{
	struct netcfg_fwd f = {0};

	tun_up(&A, "vbt0");
	OK(netcfg_fwd_enable(nc, &f, "vbt0", NETCFG_FWD_IPV4));
	tun_close(&A);
	OK(netcfg_fwd_restore(&f));
}

static void test_forwarding_names_are_checked(void **state)
{
	struct netcfg_fwd f = {0};

	assert_int_equal(netcfg_fwd_enable(nc, &f, "../all", NETCFG_FWD_IPV4), -EINVAL);
	assert_int_equal(netcfg_fwd_enable(nc, &f, "..", NETCFG_FWD_IPV4), -EINVAL);
	assert_int_equal(netcfg_fwd_enable(nc, &f, "", NETCFG_FWD_IPV4), -EINVAL);
	assert_int_equal(netcfg_fwd_enable(nc, &f, "nosuchlink", NETCFG_FWD_IPV4), -ENOENT);
	assert_int_equal(f.n, 0);
}

#define NS_TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest pure[] = {
	    cmocka_unit_test(test_prefix_parse),
	    cmocka_unit_test(test_prefix_mask_clears_host_bits),
	    cmocka_unit_test(test_prefix_overlap),
	};
	const struct CMUnitTest kernel[] = {
	    NS_TEST(test_link_up_down_and_mtu),
	    NS_TEST(test_unknown_link_is_enodev),
	    NS_TEST(test_ipv4_address_and_its_route_come_and_go),
	    NS_TEST(test_address_without_prefix_route),
	    NS_TEST(test_ipv6_ula_with_nodad_is_usable_at_once),
	    NS_TEST(test_address_flags_outside_the_api_are_refused),
	    NS_TEST(test_ipv4_route_with_gateway_and_metric_comes_and_goes),
	    NS_TEST(test_default_routes_with_a_metric_come_and_go),
	    NS_TEST(test_ipv6_route_comes_and_goes),
	    NS_TEST(test_dump_of_many_routes_sees_them_all),
	    NS_TEST(test_route_host_bits_are_ignored),
	    NS_TEST(test_route_through_a_link_that_is_down_is_refused),
	    NS_TEST(test_errors_carry_the_kernels_reason),
	    NS_TEST(test_bad_routes_are_refused_before_the_kernel),
	    NS_TEST(test_collision_with_a_narrower_route_is_found),
	    NS_TEST(test_collision_with_a_wider_route_is_found),
	    NS_TEST(test_default_route_is_no_collision),
	    NS_TEST(test_our_own_routes_are_no_collision),
	    NS_TEST(test_disjoint_and_other_tables_are_no_collision),
	    NS_TEST(test_ipv6_collision_is_found),
	    NS_TEST(test_egress_links_are_those_with_routes_but_ours),
	    NS_TEST(test_forwarding_is_per_interface_and_restored),
	    NS_TEST(test_forwarding_already_on_is_left_on),
	    NS_TEST(test_forwarding_of_a_link_gone_is_skipped),
	    NS_TEST(test_forwarding_names_are_checked),
	};
	int failed = cmocka_run_group_tests_name("netcfg_prefix", pure, NULL, NULL);

	if (nstest_probe("test_netcfg") != 0)
		return failed ? 1 : 77;
	return failed + cmocka_run_group_tests_name("netcfg", kernel, NULL, NULL) ? 1 : 0;
}
