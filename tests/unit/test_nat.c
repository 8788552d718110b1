/* NAT in its own nftables table, and forwarding through it end to end, in private network
 * namespaces. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <setjmp.h>
#include <cmocka.h>
#include <nftables/libnftables.h>
#include "platform/nat.h"
#include "platform/netcfg.h"
#include "platform/tun.h"
#include "tests/unit/nstest.h"

static struct tun T = {.fd = -1};
static pid_t far_pid; /* the far end's process, in a namespace of its own */

static int setup(void **state)
{
	return nstest_setup(state);
}

static int teardown(void **state)
{
	if (far_pid > 0) {
		kill(far_pid, SIGKILL);
		waitpid(far_pid, NULL, 0);
	}
	far_pid = 0;
	tun_close(&T);
	return 0;
}

static struct netcfg_prefix pfx(const char *s)
{
	struct netcfg_prefix p;

	if (netcfg_prefix_parse(s, &p) < 0)
		fail_msg("bad prefix in the test: %s", s);
	return p;
}

/* Runs an nft command; returns its status, and its output in out (static, may be NULL). */
static int nft(const char *cmd, const char **out)
{
	static char text[16384];
	struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
	int ret;

	assert_non_null(ctx);
	nft_ctx_buffer_output(ctx);
	nft_ctx_buffer_error(ctx);
	ret = nft_run_cmd_from_buffer(ctx, cmd);
	snprintf(text, sizeof(text), "%s", nft_ctx_get_output_buffer(ctx));
	nft_ctx_free(ctx);
	if (out)
		*out = text;
	return ret;
}

static const struct nat_config conf_both = {
    .tun = "vmbusify0",
    .v4 = {.addr = {.family = NET_IPV4, .ip = {10, 77, 0, 1}}, .len = 24},
    .v6 = {.addr = {.family = NET_IPV6, .ip = {0xfd, 0, 0, 0x77, [15] = 1}}, .len = 64},
};

/* --- the rules (no kernel) --- */

static void test_render_masquerades_both_families(void **state)
{
	char buf[2048], why[256];
	int n = nat_render(&conf_both, buf, sizeof(buf), why, sizeof(why));

	assert_true(n > 0);
	assert_int_equal((size_t)n, strlen(buf));
	assert_non_null(strstr(buf, "delete table inet vmbusify\n"));
	assert_non_null(strstr(buf, "ip saddr 10.77.0.0/24 oifname != \"vmbusify0\" masquerade\n"));
	assert_non_null(
	    strstr(buf, "ip6 saddr fd00:77::/64 oifname != \"vmbusify0\" masquerade\n"));
	assert_non_null(strstr(buf, "iifname \"vmbusify0\" accept\n"));
	assert_non_null(strstr(buf, "oifname \"vmbusify0\" ct state established,related accept\n"));
	assert_non_null(strstr(buf, "oifname \"vmbusify0\" drop\n"));
	/* The host itself: replies, ICMP and the gateway's DNS forwarder, nothing else. */
	assert_non_null(strstr(buf, "type filter hook input priority filter; policy accept;\n"));
	assert_non_null(strstr(buf, "iifname \"vmbusify0\" ct state established,related accept\n"));
	assert_non_null(strstr(buf, "iifname \"vmbusify0\" udp dport 53 accept\n"));
	assert_non_null(strstr(buf, "iifname \"vmbusify0\" drop\n"));
}

static void test_render_ipv4_only_and_inbound_allowed(void **state)
{
	struct nat_config c = conf_both;
	char buf[2048], why[256];

	c.v6.addr.family = 0;
	c.allow_inbound = true;
	assert_true(nat_render(&c, buf, sizeof(buf), why, sizeof(why)) > 0);
	assert_null(strstr(buf, "ip6 saddr"));
	assert_null(strstr(buf, "oifname \"vmbusify0\" drop"));
	assert_non_null(strstr(buf, "ip saddr 10.77.0.0/24"));
}

static void test_render_refuses_what_nft_would_misread(void **state)
{
	const char *bad[] = {NULL, "", "a b", "eth*", "x\"y", "a\\b", "sixteen-chars-xx"};
	struct nat_config c = conf_both;
	char buf[2048], why[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c.tun = bad[i];
		why[0] = '\0';
		if (nat_render(&c, buf, sizeof(buf), why, sizeof(why)) != -EINVAL)
			fail_msg("name %zu accepted", i);
		assert_true(strlen(why) > 0);
	}
	c = conf_both;
	c.v4.addr.family = NET_IPV6;
	assert_int_equal(nat_render(&c, buf, sizeof(buf), why, sizeof(why)), -EINVAL);
	c = conf_both;
	c.v6.len = 129;
	assert_int_equal(nat_render(&c, buf, sizeof(buf), why, sizeof(why)), -EINVAL);
	assert_int_equal(nat_render(&conf_both, buf, 100, why, sizeof(why)), -ENOSPC);
}

/* --- the table --- */

static void test_setup_makes_the_table_and_teardown_removes_it(void **state)
{
	const char *out;
	char why[256] = "";

	if (nat_setup(&conf_both, why, sizeof(why)) < 0)
		fail_msg("nat_setup: %s", why);
	assert_int_equal(nft("list table inet vmbusify", &out), 0);
	assert_non_null(strstr(out, "type nat hook postrouting priority srcnat; policy accept;"));
	assert_non_null(strstr(out, "ip saddr 10.77.0.0/24 oifname != \"vmbusify0\" masquerade"));
	assert_non_null(strstr(out, "ip6 saddr fd00:77::/64 oifname != \"vmbusify0\" masquerade"));
	assert_non_null(strstr(out, "type filter hook forward priority filter; policy accept;"));
	assert_non_null(strstr(out, "type filter hook input priority filter; policy accept;"));
	assert_non_null(strstr(out, "iifname \"vmbusify0\" udp dport 53 accept"));
	assert_int_equal(nat_teardown(why, sizeof(why)), 0);
	assert_true(nft("list table inet vmbusify", NULL) != 0);
}

static void test_teardown_without_a_table_is_fine(void **state)
{
	char why[256] = "";

	assert_int_equal(nat_teardown(why, sizeof(why)), 0);
	assert_int_equal(nat_teardown(why, sizeof(why)), 0);
}

static void test_setup_replaces_a_table_left_by_a_crash(void **state)
{
	const char *out;
	char why[256] = "";

	assert_int_equal(
	    nft("add table inet vmbusify\n"
		"add chain inet vmbusify stale { type filter hook input priority 0; }\n",
		NULL),
	    0);
	assert_int_equal(nat_setup(&conf_both, why, sizeof(why)), 0);
	assert_int_equal(nat_setup(&conf_both, why, sizeof(why)), 0); /* and again */
	assert_int_equal(nft("list table inet vmbusify", &out), 0);
	assert_null(strstr(out, "stale"));
	assert_non_null(strstr(out, "masquerade"));
}

static void test_setup_and_teardown_touch_nothing_else(void **state)
{
	char before[16384], why[256] = "";
	const char *out;

	assert_int_equal(
	    nft("add table inet other\n"
		"add chain inet other filter_fwd { type filter hook forward priority 0; "
		"policy drop; }\n"
		"add rule inet other filter_fwd counter\n"
		"add table ip vmbusify\n",
		NULL),
	    0);
	assert_int_equal(nft("list ruleset", &out), 0);
	snprintf(before, sizeof(before), "%s", out);
	assert_int_equal(nat_setup(&conf_both, why, sizeof(why)), 0);
	assert_int_equal(nat_teardown(why, sizeof(why)), 0);
	assert_int_equal(nft("list ruleset", &out), 0);
	assert_string_equal(out, before);
}

/*
 * --- through it ---
 *
 * The test's namespace is the host: T (vbt0) holds the subnet's gateway,
 * veth vbta leads to a far end in a child of its own namespace (vbtb).
 * The VM is played by packets written into T and read from it.
 */

struct far_report {
	uint8_t src[16]; /* who the far end saw a datagram from */
};

/* Writes or reads a whole small message on a pipe; the child exits on failure. */
static void far_write(int fd, const void *p, size_t n)
{
	if (write(fd, p, n) != (ssize_t)n)
		_exit(20);
}

static void far_read(int fd, void *p, size_t n)
{
	if (read(fd, p, n) != (ssize_t)n)
		_exit(21);
}

static socklen_t far_sockaddr(const struct net_addr *a, uint16_t port, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == NET_IPV4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, a->ip, 4);
		return sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(port);
	memcpy(&sin6->sin6_addr, a->ip, 16);
	return sizeof(*sin6);
}

/* Sets up the far end's side of the veth: its address and a route to the vnet subnet. */
static void far_configure(int family)
{
	struct netcfg_prefix a = pfx(family == 4 ? "192.0.2.2/24" : "2001:db8:1::2/64");
	struct netcfg_route r = {.dst = pfx(family == 4 ? "10.9.0.0/24" : "fd00:9::/64")};
	struct netcfg_link link;
	struct netcfg *nc;

	if (net_addr_parse_ip(family == 4 ? "192.0.2.1" : "2001:db8:1::1", &r.gw) < 0)
		_exit(11);
	if (netcfg_open(&nc) < 0 || netcfg_link_get(nc, 0, "vbtb", &link) < 0 ||
	    netcfg_addr_add(nc, link.ifindex, &a, NETCFG_ADDR_NODAD) < 0 ||
	    netcfg_link_set_up(nc, link.ifindex, true) < 0)
		_exit(11);
	r.ifindex = link.ifindex;
	if (netcfg_route_add(nc, &r) < 0)
		_exit(12);
	netcfg_close(nc);
}

/*
 * The far end: answers every datagram on port 7777 with "pong" and reports
 * its source; told anything on its pipe, sends "hello" from 7777 to the
 * VM's port 5555: a new flow from outside.
 */
static void far_end(int family, int up, int down)
{
	struct net_addr me, vm;
	struct sockaddr_storage ss, from;
	socklen_t sl;
	char buf[64], c;
	int s;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	alarm(30);
	if (nstest_enter_new_ns() < 0)
		_exit(10);
	far_write(up, "r", 1);
	far_read(down, &c, 1); /* the veth end has arrived */
	far_configure(family);
	net_addr_parse_ip(family == 4 ? "192.0.2.2" : "2001:db8:1::2", &me);
	net_addr_parse_ip(family == 4 ? "10.9.0.2" : "fd00:9::2", &vm);
	sl = far_sockaddr(&me, 7777, &ss);
	s = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0 || bind(s, (struct sockaddr *)&ss, sl) < 0)
		_exit(13);
	far_write(up, "b", 1);
	for (;;) {
		struct pollfd p[2] = {{.fd = s, .events = POLLIN}, {.fd = down, .events = POLLIN}};
		struct far_report rep = {{0}};
		socklen_t fl = sizeof(from);

		if (poll(p, 2, -1) < 0)
			_exit(14);
		if (p[1].revents) {
			far_read(down, &c, 1);
			sl = far_sockaddr(&vm, 5555, &ss);
			sendto(s, "hello", 5, 0, (struct sockaddr *)&ss, sl);
		}
		if (!p[0].revents)
			continue;
		if (recvfrom(s, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl) < 0)
			_exit(15);
		if (family == 4)
			memcpy(rep.src, &((struct sockaddr_in *)&from)->sin_addr, 4);
		else
			memcpy(rep.src, &((struct sockaddr_in6 *)&from)->sin6_addr, 16);
		sendto(s, "pong", 4, 0, (struct sockaddr *)&from, fl);
		far_write(up, &rep, sizeof(rep));
	}
}

/* Waits up to ms for fd to be readable; true when it is. */
static bool readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, ms) == 1;
}

struct e2e {
	int family;
	size_t alen;
	unsigned fwd; /* NETCFG_FWD_IPV4 or _IPV6 */
	struct netcfg_prefix gw, vm, up, far;
	struct netcfg *nc;
	struct netcfg_fwd f;
	int from_far, to_far;
};

/* Makes the far end and the host's side of the link, and T; no NAT, no forwarding yet. */
static void e2e_start(struct e2e *e, int family)
{
	struct netcfg_link link;
	int to_parent[2], to_child[2];
	char why[256] = "", ch;

	memset(e, 0, sizeof(*e));
	e->family = family;
	e->alen = family == 4 ? 4 : 16;
	e->fwd = family == 4 ? NETCFG_FWD_IPV4 : NETCFG_FWD_IPV6;
	e->gw = pfx(family == 4 ? "10.9.0.1/24" : "fd00:9::1/64");
	e->vm = pfx(family == 4 ? "10.9.0.2/32" : "fd00:9::2/128");
	e->up = pfx(family == 4 ? "192.0.2.1/24" : "2001:db8:1::1/64");
	e->far = pfx(family == 4 ? "192.0.2.2/32" : "2001:db8:1::2/128");
	assert_int_equal(pipe2(to_parent, O_CLOEXEC), 0);
	assert_int_equal(pipe2(to_child, O_CLOEXEC), 0);
	far_pid = fork();
	assert_true(far_pid >= 0);
	if (far_pid == 0)
		far_end(family, to_parent[1], to_child[0]);
	close(to_parent[1]);
	close(to_child[0]);
	e->from_far = to_parent[0];
	e->to_far = to_child[1];
	assert_true(readable(e->from_far, 10000));
	assert_int_equal(read(e->from_far, &ch, 1), 1);
	assert_int_equal(nstest_veth_add("vbta", "vbtb", far_pid), 0);
	assert_int_equal(write(e->to_far, "g", 1), 1);

	assert_int_equal(netcfg_open(&e->nc), 0);
	assert_int_equal(netcfg_link_get(e->nc, 0, "vbta", &link), 0);
	assert_int_equal(netcfg_addr_add(e->nc, link.ifindex, &e->up, NETCFG_ADDR_NODAD), 0);
	assert_int_equal(netcfg_link_set_up(e->nc, link.ifindex, true), 0);
	if (tun_open(&T, "vbt0", TUN_OFFLOAD_ALL, why, sizeof(why)) < 0)
		fail_msg("tun_open: %s", why);
	assert_int_equal(netcfg_addr_add(e->nc, T.ifindex, &e->gw, NETCFG_ADDR_NODAD), 0);
	assert_int_equal(netcfg_link_set_up(e->nc, T.ifindex, true), 0);
	assert_true(readable(e->from_far, 10000));
	assert_int_equal(read(e->from_far, &ch, 1), 1); /* the far end listens */
}

static void e2e_stop(struct e2e *e)
{
	char why[256];

	assert_int_equal(netcfg_fwd_restore(&e->f), 0);
	assert_int_equal(nat_teardown(why, sizeof(why)), 0);
	netcfg_close(e->nc);
	close(e->from_far);
	close(e->to_far);
}

static void e2e_nat(struct e2e *e, bool allow_inbound)
{
	struct nat_config c = {.tun = "vbt0", .allow_inbound = allow_inbound};
	char why[256] = "";

	if (e->family == 4)
		c.v4 = e->gw;
	else
		c.v6 = e->gw;
	if (nat_setup(&c, why, sizeof(why)) < 0)
		fail_msg("nat_setup: %s", why);
}

static void e2e_forward(struct e2e *e, const char *ifname)
{
	if (netcfg_fwd_enable(e->nc, &e->f, ifname, e->fwd) < 0)
		fail_msg("forwarding on %s: %s", ifname, netcfg_why(e->nc));
}

/* A datagram "ping" from the VM (port 5555) to the far end's port 7777, into T. */
static void e2e_vm_send(struct e2e *e)
{
	uint8_t frame[TUN_HDR_LEN + 128];
	struct vb_vnet_hdr h = {0};
	size_t n;

	tun_hdr_encode(&h, frame);
	n = nstest_udp(frame + TUN_HDR_LEN, e->vm.addr.ip, e->far.addr.ip, e->alen, 5555, 7777,
		       "ping", 4);
	assert_int_equal(write((int)T.fd, frame, TUN_HDR_LEN + n), (ssize_t)(TUN_HDR_LEN + n));
}

/* The source the far end saw its datagram come from. */
static void e2e_far_saw(struct e2e *e, uint8_t src[16])
{
	struct far_report rep;

	assert_true(readable(e->from_far, 10000));
	assert_int_equal(read(e->from_far, &rep, sizeof(rep)), sizeof(rep));
	memcpy(src, rep.src, 16);
}

/* Whether a datagram with text from far:7777 to vm:5555 comes out of T within ms. */
static bool e2e_vm_got(struct e2e *e, const char *text, int ms)
{
	static uint8_t frame[TUN_FRAME_MAX];
	const uint8_t *ip = frame + TUN_HDR_LEN;
	size_t hl = e->alen == 4 ? 20 : 40, tl = strlen(text);

	while (readable((int)T.fd, ms)) {
		ssize_t n = read((int)T.fd, frame, sizeof(frame));

		if (n < (ssize_t)(TUN_HDR_LEN + hl + 8 + tl) || (ip[0] >> 4) != e->family)
			continue;
		if (ip[e->alen == 4 ? 9 : 6] != IPPROTO_UDP)
			continue;
		assert_memory_equal(ip + (e->alen == 4 ? 12 : 8), e->far.addr.ip, e->alen);
		assert_memory_equal(ip + (e->alen == 4 ? 16 : 24), e->vm.addr.ip, e->alen);
		assert_int_equal(nstest_get16(ip + hl), 7777);
		assert_int_equal(nstest_get16(ip + hl + 2), 5555);
		assert_memory_equal(ip + hl + 8, text, tl);
		return true;
	}
	return false;
}

/*
 * A VM's datagram leaves masqueraded once forwarding is on for the TUN; the
 * answer comes back only once it is on for the uplink too (the kernel asks
 * the interface a packet came in on); the global switches stay off.
 */
static void nat_end_to_end(int family)
{
	struct netcfg_link link;
	struct e2e e;
	uint8_t src[16];
	int links[8], n;

	if (family == 6 && access("/proc/sys/net/ipv6/conf/lo/force_forwarding", F_OK) != 0)
		skip(); /* IPv6 forwarding per interface needs Linux 6.17 */
	e2e_start(&e, family);
	e2e_nat(&e, false);
	e2e_forward(&e, "vbt0");
	e2e_vm_send(&e);
	e2e_far_saw(&e, src);
	assert_memory_equal(src, e.up.addr.ip, e.alen);
	assert_false(e2e_vm_got(&e, "pong", 500));

	/* The uplinks, found as vmbusifyd would find them: here, vbta alone. */
	n = netcfg_egress_links(e.nc, family, T.ifindex, links, 8);
	assert_int_equal(n, 1);
	assert_int_equal(netcfg_link_get(e.nc, links[0], NULL, &link), 0);
	assert_string_equal(link.name, "vbta");
	e2e_forward(&e, link.name);
	e2e_vm_send(&e);
	e2e_far_saw(&e, src);
	assert_memory_equal(src, e.up.addr.ip, e.alen);
	assert_true(e2e_vm_got(&e, "pong", 5000));

	assert_string_equal(nstest_sysctl("/proc/sys/net/ipv4/ip_forward"), "0");
	assert_string_equal(nstest_sysctl("/proc/sys/net/ipv6/conf/all/forwarding"), "0");
	e2e_stop(&e);
}

static void test_vm_ipv4_reaches_outside_masqueraded_and_back(void **state)
{
	nat_end_to_end(4);
}

static void test_vm_ipv6_reaches_outside_masqueraded_and_back(void **state)
{
	nat_end_to_end(6);
}

static void test_new_flows_from_outside_are_kept_from_the_vms(void **state)
{
	struct e2e e;

	e2e_start(&e, 4);
	e2e_forward(&e, "vbt0");
	e2e_forward(&e, "vbta");
	e2e_nat(&e, false);
	assert_int_equal(write(e.to_far, "s", 1), 1);
	assert_false(e2e_vm_got(&e, "hello", 500));
	/* Replacing the table lets them in. */
	e2e_nat(&e, true);
	assert_int_equal(write(e.to_far, "s", 1), 1);
	assert_true(e2e_vm_got(&e, "hello", 5000));
	e2e_stop(&e);
}

#define NS_TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest pure[] = {
	    cmocka_unit_test(test_render_masquerades_both_families),
	    cmocka_unit_test(test_render_ipv4_only_and_inbound_allowed),
	    cmocka_unit_test(test_render_refuses_what_nft_would_misread),
	};
	const struct CMUnitTest kernel[] = {
	    NS_TEST(test_setup_makes_the_table_and_teardown_removes_it),
	    NS_TEST(test_teardown_without_a_table_is_fine),
	    NS_TEST(test_setup_replaces_a_table_left_by_a_crash),
	    NS_TEST(test_setup_and_teardown_touch_nothing_else),
	    NS_TEST(test_vm_ipv4_reaches_outside_masqueraded_and_back),
	    NS_TEST(test_vm_ipv6_reaches_outside_masqueraded_and_back),
	    NS_TEST(test_new_flows_from_outside_are_kept_from_the_vms),
	};
	int failed = cmocka_run_group_tests_name("nat_render", pure, NULL, NULL);

	if (nstest_probe("test_nat") != 0)
		return failed ? 1 : 77;
	return failed + cmocka_run_group_tests_name("nat", kernel, NULL, NULL) ? 1 : 0;
}
