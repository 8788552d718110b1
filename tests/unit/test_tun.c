/* TUN devices with offload headers, for real in private network namespaces, once per loop backend.
 */
/* VB_TEST_BOTH_BACKENDS */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <setjmp.h>
#include <cmocka.h>
#include "platform/loop.h"
#include "platform/netcfg.h"
#include "platform/tun.h"
#include "tests/unit/nstest.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define MS		 1000000ull
#define TEST_DEADLINE_NS (10000 * MS)

/* Runs L until cond holds, failing the test after TEST_DEADLINE_NS. */
#define RUN_UNTIL(cond)                                                                            \
	do {                                                                                       \
		uint64_t dl_ = clock_now_ns() + TEST_DEADLINE_NS;                                  \
		while (!(cond)) {                                                                  \
			assert_true(clock_now_ns() < dl_);                                         \
			assert_true(loop_run_once(L, 50 * MS) >= 0);                               \
		}                                                                                  \
	} while (0)

/* The VM's side (written into the TUN) and the host's (the TUN's own address). */
static const uint8_t vm4[4] = {10, 9, 0, 2}, host4[4] = {10, 9, 0, 1};
static const uint8_t vm6[16] = {0xfd, 0, 0, 9, [15] = 2}, host6[16] = {0xfd, 0, 0, 9, [15] = 1};

static struct loop *L;
static struct tun T = {.fd = -1};
static int listener = -1, conn = -1; /* the host's TCP sockets of a test */
static uint8_t rbuf[TUN_FRAME_MAX];
static uint8_t wbuf[TUN_FRAME_MAX];

static int setup(void **state)
{
	if (nstest_setup(state) < 0)
		return -1;
	return loop_new(&L, LOOP_BACKEND_AUTO) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
	if (conn >= 0)
		close(conn);
	if (listener >= 0)
		close(listener);
	conn = listener = -1;
	tun_close(&T);
	loop_free(L);
	L = NULL;
	return 0;
}

/* True when the running kernel is at least major.minor. */
static bool kernel_at_least(int major, int minor)
{
	struct utsname u;
	int ma = 0, mi = 0;

	if (uname(&u) < 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
		return false;
	return ma > major || (ma == major && mi >= minor);
}

/* Opens T as vbt0 with mtu, 10.9.0.1/24 and fd00:9::1/64, and brings it up. */
static void tun_bring_up(unsigned mtu)
{
	struct netcfg_prefix a4 = {.addr.family = NET_IPV4, .len = 24};
	struct netcfg_prefix a6 = {.addr.family = NET_IPV6, .len = 64};
	struct netcfg *nc;
	char why[256] = "";
	int ret;

	ret = tun_open(&T, "vbt0", TUN_OFFLOAD_ALL, why, sizeof(why));
	if (ret < 0)
		fail_msg("tun_open: %s", why);
	assert_int_equal(tun_set_mtu(&T, mtu), 0);
	memcpy(a4.addr.ip, host4, 4);
	memcpy(a6.addr.ip, host6, 16);
	assert_int_equal(netcfg_open(&nc), 0);
	assert_int_equal(netcfg_addr_add(nc, T.ifindex, &a4, 0), 0);
	assert_int_equal(netcfg_addr_add(nc, T.ifindex, &a6, NETCFG_ADDR_NODAD), 0);
	assert_int_equal(netcfg_link_set_up(nc, T.ifindex, true), 0);
	netcfg_close(nc);
}

struct io {
	struct loop_req r;
	int res;
	bool done;
};

static void io_done(struct loop_req *r, int res)
{
	struct io *io = r->data;

	io->res = res;
	io->done = true;
}

/* One frame from T, through the loop. */
static int tun_read_frame(void)
{
	struct io io = {.r.data = &io};

	memset(rbuf, 0xa5, TUN_HDR_LEN);
	assert_int_equal(loop_read(L, &io.r, T.fd, rbuf, sizeof(rbuf), io_done), 0);
	RUN_UNTIL(io.done);
	return io.res;
}

/*
 * The next packet of family (4 or 6) and transport protocol proto from T,
 * skipping the kernel's own chatter (router solicitations, MLD reports).
 * Returns the IP packet's length; the frame is in rbuf, h its header.
 */
static size_t tun_read_match(int family, uint8_t proto, struct vb_vnet_hdr *h)
{
	uint64_t deadline = clock_now_ns() + TEST_DEADLINE_NS;
	const uint8_t *ip = rbuf + TUN_HDR_LEN;

	while (clock_now_ns() < deadline) {
		int n = tun_read_frame();

		assert_true(n > (int)TUN_HDR_LEN);
		if (family == 4 && (ip[0] >> 4) == 4 && ip[9] != proto)
			continue;
		if (family == 6 && (ip[0] >> 4) == 6 && ip[6] != proto)
			continue;
		if ((ip[0] >> 4) != family)
			continue;
		tun_hdr_decode(rbuf, h);
		return (size_t)n - TUN_HDR_LEN;
	}
	fail_msg("no IPv%d packet of protocol %u from the TUN", family, proto);
	return 0;
}

/* Writes one packet with header h to T through the loop, header and packet as two pieces. */
static void tun_write_frame(const struct vb_vnet_hdr *h, uint8_t *pkt, size_t len)
{
	uint8_t hdr[TUN_HDR_LEN];
	struct vb_iov iov[2] = {{hdr, sizeof(hdr)}, {pkt, len}};
	struct io io = {.r.data = &io};

	tun_hdr_encode(h, hdr);
	assert_int_equal(loop_writev(L, &io.r, T.fd, iov, 2, io_done), 0);
	RUN_UNTIL(io.done);
	assert_int_equal(io.res, (int)(TUN_HDR_LEN + len));
}

/* Waits for fd to be readable (or times out, failing the test). */
static void wait_readable(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	assert_int_equal(poll(&p, 1, 10000), 1);
}

/* --- the offload header, as plain fields --- */

static void test_hdr_round_trips_little_endian(void **state)
{
	struct vb_vnet_hdr h = {.flags = VB_VNET_F_NEEDS_CSUM,
				.gso_type = VB_VNET_GSO_TCPV4 | VB_VNET_GSO_ECN,
				.hdr_len = 0x0102,
				.gso_size = 0x0304,
				.csum_start = 0x0506,
				.csum_offset = 0x0708},
			   d;
	const uint8_t want[TUN_HDR_LEN] = {1, 0x81, 2, 1, 4, 3, 6, 5, 8, 7, 0, 0};
	uint8_t b[TUN_HDR_LEN];

	memset(b, 0xff, sizeof(b));
	tun_hdr_encode(&h, b);
	assert_memory_equal(b, want, sizeof(want));
	tun_hdr_decode(b, &d);
	assert_memory_equal(&d, &h, sizeof(h));
}

static void test_hdr_check_accepts_what_the_kernel_makes(void **state)
{
	struct vb_vnet_hdr none = {0};
	struct vb_vnet_hdr tso = {.flags = VB_VNET_F_NEEDS_CSUM,
				  .gso_type = VB_VNET_GSO_TCPV4,
				  .hdr_len = 52,
				  .gso_size = 1448,
				  .csum_start = 20,
				  .csum_offset = 16};
	struct vb_vnet_hdr uso = {.flags = VB_VNET_F_NEEDS_CSUM,
				  .gso_type = VB_VNET_GSO_UDP_L4,
				  .hdr_len = 48,
				  .gso_size = 1000,
				  .csum_start = 40,
				  .csum_offset = 6};
	struct vb_vnet_hdr valid = {.flags = VB_VNET_F_DATA_VALID};

	assert_int_equal(tun_hdr_check(&none, 20), 0);
	assert_int_equal(tun_hdr_check(&tso, 65000), 0);
	assert_int_equal(tun_hdr_check(&uso, 10048), 0);
	assert_int_equal(tun_hdr_check(&valid, 28), 0);
}

static void test_hdr_check_refuses_what_makes_no_sense(void **state)
{
	const struct vb_vnet_hdr bad[] = {
	    {.flags = 4},							  /* unknown flag */
	    {.gso_type = VB_VNET_GSO_UDP, .gso_size = 1000},			  /* UFO */
	    {.gso_type = 2, .gso_size = 1000},					  /* unknown type */
	    {.gso_type = VB_VNET_GSO_UDP_L4 | VB_VNET_GSO_ECN, .gso_size = 1000}, /* ECN on UDP */
	    {.gso_type = VB_VNET_GSO_ECN},					  /* ECN alone */
	    {.gso_type = VB_VNET_GSO_TCPV6, .gso_size = 0},		    /* no segment size */
	    {.gso_type = VB_VNET_GSO_TCPV4, .gso_size = 1, .hdr_len = 101}, /* headers too long */
	    {.flags = VB_VNET_F_NEEDS_CSUM, .csum_start = 90, .csum_offset = 9}, /* sum outside */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (tun_hdr_check(&bad[i], 100) != -EINVAL)
			fail_msg("case %zu accepted", i);
	}
}

/* --- the device --- */

static void test_open_makes_the_device_with_offloads(void **state)
{
	struct netcfg_link link;
	struct netcfg *nc;
	char why[256];
	unsigned want =
	    TUN_OFFLOAD_CSUM | TUN_OFFLOAD_TSO4 | TUN_OFFLOAD_TSO6 | TUN_OFFLOAD_TSO_ECN;

	assert_int_equal(tun_open(&T, "vbt0", TUN_OFFLOAD_ALL, why, sizeof(why)), 0);
	assert_string_equal(T.name, "vbt0");
	assert_true(T.ifindex > 0);
	if (kernel_at_least(6, 2))
		want |= TUN_OFFLOAD_USO4 | TUN_OFFLOAD_USO6;
	assert_int_equal(T.offloads, want);
	assert_int_equal(netcfg_open(&nc), 0);
	assert_int_equal(netcfg_link_get(nc, 0, "vbt0", &link), 0);
	assert_int_equal(link.ifindex, T.ifindex);
	assert_false(link.up);
	tun_close(&T);
	assert_int_equal(netcfg_link_get(nc, 0, "vbt0", &link), -ENODEV);
	netcfg_close(nc);
}

static void test_open_without_a_name_lets_the_kernel_pick(void **state)
{
	char why[256];

	assert_int_equal(tun_open(&T, NULL, 0, why, sizeof(why)), 0);
	assert_memory_equal(T.name, "tun", 3);
	assert_int_equal(T.offloads, 0);
}

static void test_open_refuses_a_name_in_use(void **state)
{
	struct tun other;
	char why[256] = "";

	assert_int_equal(tun_open(&T, "vbt0", TUN_OFFLOAD_ALL, why, sizeof(why)), 0);
	assert_int_equal(tun_open(&other, "vbt0", TUN_OFFLOAD_ALL, why, sizeof(why)), -EBUSY);
	assert_non_null(strstr(why, "vbt0"));
	assert_int_equal(other.fd, -1);
	assert_int_equal(tun_open(&other, "lo", 0, why, sizeof(why)), -EBUSY);
	assert_int_equal(tun_open(&other, "a-name-too-long-0", 0, why, sizeof(why)), -EINVAL);
}

static void test_offloads_the_kernel_cannot_combine_are_left_out(void **state)
{
	char why[256];

	/* Segmentation without checksum offload: nothing. */
	assert_int_equal(
	    tun_open(&T, "vbt0", TUN_OFFLOAD_TSO4 | TUN_OFFLOAD_TSO6, why, sizeof(why)), 0);
	assert_int_equal(T.offloads, 0);
	tun_close(&T);
	/* ECN without TSO, USO for one family only. */
	assert_int_equal(tun_open(&T, "vbt0",
				  TUN_OFFLOAD_CSUM | TUN_OFFLOAD_TSO_ECN | TUN_OFFLOAD_USO4, why,
				  sizeof(why)),
			 0);
	assert_int_equal(T.offloads, TUN_OFFLOAD_CSUM);
}

static void test_mtu_is_set(void **state)
{
	struct netcfg_link link;
	struct netcfg *nc;
	char why[256];

	assert_int_equal(tun_open(&T, "vbt0", TUN_OFFLOAD_ALL, why, sizeof(why)), 0);
	assert_int_equal(tun_set_mtu(&T, 65520), 0);
	assert_int_equal(netcfg_open(&nc), 0);
	assert_int_equal(netcfg_link_get(nc, T.ifindex, NULL, &link), 0);
	assert_int_equal(link.mtu, 65520);
	netcfg_close(nc);
	assert_int_equal(tun_set_mtu(&T, 67), -EINVAL);
	assert_int_equal(tun_set_mtu(&T, 65536), -EINVAL);
}

static void test_write_while_down_fails_eio(void **state)
{
	struct vb_vnet_hdr h = {0};
	uint8_t hdr[TUN_HDR_LEN];
	uint8_t pkt[64];
	size_t n;
	char why[256];

	assert_int_equal(tun_open(&T, "vbt0", TUN_OFFLOAD_ALL, why, sizeof(why)), 0);
	n = nstest_udp(pkt, vm4, host4, 4, 5555, 9, "x", 1);
	tun_hdr_encode(&h, hdr);
	memcpy(wbuf, hdr, sizeof(hdr));
	memcpy(wbuf + sizeof(hdr), pkt, n);
	assert_int_equal(write((int)T.fd, wbuf, sizeof(hdr) + n), -1);
	assert_int_equal(errno, EIO);
}

/* --- packets both ways --- */

static void test_udp_from_a_socket_arrives_with_its_header(void **state)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
	struct vb_vnet_hdr h;
	const uint8_t *ip = rbuf + TUN_HDR_LEN;
	size_t n;
	int s;

	tun_bring_up(65520);
	memcpy(&to.sin_addr, vm4, 4);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(sendto(s, "hello", 5, 0, (struct sockaddr *)&to, sizeof(to)), 5);
	close(s);
	n = tun_read_match(4, IPPROTO_UDP, &h);
	assert_int_equal(n, 20 + 8 + 5);
	assert_memory_equal(ip + 12, host4, 4);
	assert_memory_equal(ip + 16, vm4, 4);
	assert_int_equal(nstest_get16(ip + 22), 9);
	assert_memory_equal(ip + 28, "hello", 5);
	/* Checksum offload: the kernel leaves the UDP checksum to finish. */
	assert_int_equal(h.flags, VB_VNET_F_NEEDS_CSUM);
	assert_int_equal(h.gso_type, VB_VNET_GSO_NONE);
	assert_int_equal(h.csum_start, 20);
	assert_int_equal(h.csum_offset, 6);
	assert_int_equal(tun_hdr_check(&h, n), 0);
}

static void test_udp6_to_the_ula_arrives_with_its_header(void **state)
{
	struct sockaddr_in6 to = {.sin6_family = AF_INET6, .sin6_port = htons(9)};
	struct vb_vnet_hdr h;
	const uint8_t *ip = rbuf + TUN_HDR_LEN;
	size_t n;
	int s;

	tun_bring_up(65520);
	memcpy(&to.sin6_addr, vm6, 16);
	s = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(sendto(s, "hello6", 6, 0, (struct sockaddr *)&to, sizeof(to)), 6);
	close(s);
	n = tun_read_match(6, IPPROTO_UDP, &h);
	assert_int_equal(n, 40 + 8 + 6);
	assert_memory_equal(ip + 8, host6, 16);
	assert_memory_equal(ip + 24, vm6, 16);
	assert_memory_equal(ip + 48, "hello6", 6);
	assert_int_equal(h.flags, VB_VNET_F_NEEDS_CSUM);
	assert_int_equal(h.csum_start, 40);
	assert_int_equal(h.csum_offset, 6);
}

static void test_icmp_echo_written_is_answered(void **state)
{
	struct vb_vnet_hdr h = {0};
	const uint8_t *ip = rbuf + TUN_HDR_LEN;
	uint8_t pkt[20 + 8 + 56];
	uint8_t *icmp = pkt + 20;
	size_t n;

	tun_bring_up(65520);
	nstest_ip_header(pkt, vm4, host4, 4, IPPROTO_ICMP, 8 + 56);
	memset(icmp, 0, 8);
	icmp[0] = 8; /* echo request */
	nstest_put16(icmp + 4, 0x4242);
	nstest_put16(icmp + 6, 7);
	for (int i = 0; i < 56; i++)
		icmp[8 + i] = (uint8_t)i;
	nstest_put16(icmp + 2, (uint16_t)~nstest_fold(nstest_sum(0, icmp, 8 + 56)));
	tun_write_frame(&h, pkt, sizeof(pkt));

	n = tun_read_match(4, IPPROTO_ICMP, &h);
	assert_int_equal(n, sizeof(pkt));
	assert_memory_equal(ip + 12, host4, 4);
	assert_memory_equal(ip + 16, vm4, 4);
	assert_int_equal(ip[20], 0); /* echo reply */
	assert_int_equal(nstest_get16(ip + 24), 0x4242);
	assert_int_equal(nstest_get16(ip + 26), 7);
	assert_memory_equal(ip + 28, pkt + 28, 56);
	assert_int_equal(tun_hdr_check(&h, n), 0);
}

/* --- TCP through the TUN, the VM's end written by hand --- */

struct tcp_peer {
	uint16_t sport, dport;
	uint32_t seq, ack; /* the next byte we send, the next we expect */
};

#define TCP_ACK 0x10
#define TCP_PSH 0x08
#define TCP_SYN 0x02

/*
 * A TCP/IPv4 segment from the VM into p; partial: the checksum is left as
 * the pseudo-header's sum for the device to finish (NEEDS_CSUM).
 */
static size_t tcp_segment(uint8_t *p, const struct tcp_peer *t, uint8_t flags, const uint8_t *opt,
			  size_t optlen, const uint8_t *data, size_t len, bool partial)
{
	size_t thl = 20 + optlen;
	size_t ip = nstest_ip_header(p, vm4, host4, 4, IPPROTO_TCP, thl + len);
	uint8_t *th = p + ip;
	uint32_t sum = nstest_pseudo(vm4, host4, 4, IPPROTO_TCP, thl + len);

	memset(th, 0, 20);
	nstest_put16(th, t->sport);
	nstest_put16(th + 2, t->dport);
	nstest_put32(th + 4, t->seq);
	nstest_put32(th + 8, t->ack);
	th[12] = (uint8_t)(thl / 4) << 4;
	th[13] = flags;
	nstest_put16(th + 14, 65535);
	if (optlen)
		memcpy(th + 20, opt, optlen);
	if (len)
		memcpy(th + thl, data, len);
	if (partial)
		nstest_put16(th + 16, nstest_fold(sum));
	else
		nstest_put16(th + 16, (uint16_t)~nstest_fold(nstest_sum(sum, th, thl + len)));
	return ip + thl + len;
}

/*
 * Opens a connection from the VM's side to a listener at 10.9.0.1:5001:
 * SYN (announcing mss and window scale 7, nothing else) written to T, the
 * SYN-ACK read back, the ACK written; conn is the host's accepted socket.
 */
static void tcp_handshake(struct tcp_peer *t, uint16_t mss)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(5001)};
	const uint8_t opt[8] = {2, 4, (uint8_t)(mss >> 8), (uint8_t)mss, 1, 3, 3, 7};
	const uint8_t *ip = rbuf + TUN_HDR_LEN;
	struct vb_vnet_hdr h = {0};
	struct timeval tv = {.tv_sec = 10};
	int one = 1, big = 8 << 20;
	uint8_t pkt[128];
	size_t n;

	memcpy(&a.sin_addr, host4, 4);
	listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(listener >= 0);
	setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	assert_int_equal(bind(listener, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(listener, 4), 0);

	*t = (struct tcp_peer){.sport = 40000, .dport = 5001, .seq = 1000};
	n = tcp_segment(pkt, t, TCP_SYN, opt, sizeof(opt), NULL, 0, false);
	tun_write_frame(&h, pkt, n);
	n = tun_read_match(4, IPPROTO_TCP, &h);
	assert_int_equal(ip[20 + 13] & (TCP_SYN | TCP_ACK), TCP_SYN | TCP_ACK);
	assert_int_equal(nstest_get32(ip + 20 + 8), t->seq + 1);
	t->seq++;
	t->ack = nstest_get32(ip + 20 + 4) + 1;
	n = tcp_segment(pkt, t, TCP_ACK, NULL, 0, NULL, 0, false);
	h = (struct vb_vnet_hdr){0};
	tun_write_frame(&h, pkt, n);

	wait_readable(listener);
	conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
	assert_true(conn >= 0);
	setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(conn, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
}

static void test_gso_segment_written_reaches_the_socket_whole(void **state)
{
	static uint8_t data[60000];
	static uint8_t got[sizeof(data)];
	struct vb_vnet_hdr h = {.flags = VB_VNET_F_NEEDS_CSUM,
				.gso_type = VB_VNET_GSO_TCPV4,
				.hdr_len = 40,
				.gso_size = 1400,
				.csum_start = 20,
				.csum_offset = 16};
	struct tcp_peer t;
	size_t n, have = 0;

	tun_bring_up(1500); /* so that 60000 bytes are a GSO packet, not one big segment */
	tcp_handshake(&t, 1400);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + i / 251);
	n = tcp_segment(wbuf, &t, TCP_ACK | TCP_PSH, NULL, 0, data, sizeof(data), true);
	assert_int_equal(tun_hdr_check(&h, n), 0);
	tun_write_frame(&h, wbuf, n);
	while (have < sizeof(got)) {
		ssize_t r = read(conn, got + have, sizeof(got) - have);

		assert_true(r > 0);
		have += (size_t)r;
	}
	assert_memory_equal(got, data, sizeof(data));
}

/* The first packet from the host's end of the connection that carries data. */
static size_t tcp_read_data(struct vb_vnet_hdr *h)
{
	const uint8_t *ip = rbuf + TUN_HDR_LEN;

	for (int i = 0; i < 16; i++) {
		size_t n = tun_read_match(4, IPPROTO_TCP, h);
		size_t thl = (size_t)(ip[20 + 12] >> 4) * 4;

		if (n > 20 + thl)
			return n;
	}
	fail_msg("no data from the host's socket");
	return 0;
}

static void test_tso_hands_out_large_segments_with_their_size(void **state)
{
	static uint8_t data[64 << 10];
	struct vb_vnet_hdr h;
	struct tcp_peer t;
	size_t n;

	tun_bring_up(1500);
	tcp_handshake(&t, 1400);
	memset(data, 'd', sizeof(data));
	assert_true(send(conn, data, sizeof(data), MSG_DONTWAIT) > 0);
	n = tcp_read_data(&h);
	/* Several 1400-byte segments in one packet, the checksum left partial. */
	assert_int_equal(h.gso_type, VB_VNET_GSO_TCPV4);
	assert_int_equal(h.gso_size, 1400);
	assert_true(n > 40 + 1400);
	assert_int_equal(h.flags, VB_VNET_F_NEEDS_CSUM);
	assert_int_equal(h.csum_start, 20);
	assert_int_equal(h.csum_offset, 16);
	assert_int_equal(tun_hdr_check(&h, n), 0);
}

static void test_large_mtu_moves_64k_segments(void **state)
{
	static uint8_t data[256 << 10];
	struct vb_vnet_hdr h;
	struct tcp_peer t;
	size_t n;

	tun_bring_up(65520);
	tcp_handshake(&t, 65480);
	memset(data, 'D', sizeof(data));
	assert_true(send(conn, data, sizeof(data), MSG_DONTWAIT) > 0);
	n = tcp_read_data(&h);
	/* One segment as large as the MTU: no segmentation needed anywhere. */
	assert_int_equal(n, 65520);
	assert_int_equal(nstest_get16(rbuf + TUN_HDR_LEN + 2), 65520);
	assert_int_equal(h.flags, VB_VNET_F_NEEDS_CSUM);
}

static void test_uso_hands_out_udp_super_packets(void **state)
{
	static uint8_t data[10000];
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
	struct vb_vnet_hdr h;
	int s, seg = 1000;
	size_t n;

	tun_bring_up(1500);
	if (!(T.offloads & TUN_OFFLOAD_USO4))
		skip();
	memcpy(&to.sin_addr, vm4, 4);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(setsockopt(s, IPPROTO_UDP, UDP_SEGMENT, &seg, sizeof(seg)), 0);
	memset(data, 'u', sizeof(data));
	assert_int_equal(sendto(s, data, sizeof(data), 0, (struct sockaddr *)&to, sizeof(to)),
			 sizeof(data));
	close(s);
	n = tun_read_match(4, IPPROTO_UDP, &h);
	assert_int_equal(h.gso_type, VB_VNET_GSO_UDP_L4);
	assert_int_equal(h.gso_size, 1000);
	assert_int_equal(n, 20 + 8 + sizeof(data));
	assert_int_equal(tun_hdr_check(&h, n), 0);
}

static void test_uso_packet_written_reaches_the_socket_as_datagrams(void **state)
{
	static uint8_t data[10000];
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(6000)};
	struct vb_vnet_hdr h = {.flags = VB_VNET_F_NEEDS_CSUM,
				.gso_type = VB_VNET_GSO_UDP_L4,
				.hdr_len = 28,
				.gso_size = 1000,
				.csum_start = 20,
				.csum_offset = 6};
	char got[2000];
	size_t n;
	int s;

	tun_bring_up(1500);
	memcpy(&a.sin_addr, host4, 4);
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	n = nstest_udp(wbuf, vm4, host4, 4, 5555, 6000, data, sizeof(data));
	/* Leave the checksum partial, as a sender with USO does. */
	nstest_put16(wbuf + 26,
		     nstest_fold(nstest_pseudo(vm4, host4, 4, IPPROTO_UDP, 8 + sizeof(data))));
	tun_write_frame(&h, wbuf, n);
	for (int i = 0; i < 10; i++) {
		wait_readable(s);
		assert_int_equal(recv(s, got, sizeof(got), 0), 1000);
		assert_memory_equal(got, data + i * 1000, 1000);
	}
	close(s);
}

#define NS_TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest codec[] = {
	    cmocka_unit_test(test_hdr_round_trips_little_endian),
	    cmocka_unit_test(test_hdr_check_accepts_what_the_kernel_makes),
	    cmocka_unit_test(test_hdr_check_refuses_what_makes_no_sense),
	};
	const struct CMUnitTest device[] = {
	    NS_TEST(test_open_makes_the_device_with_offloads),
	    NS_TEST(test_open_without_a_name_lets_the_kernel_pick),
	    NS_TEST(test_open_refuses_a_name_in_use),
	    NS_TEST(test_offloads_the_kernel_cannot_combine_are_left_out),
	    NS_TEST(test_mtu_is_set),
	    NS_TEST(test_write_while_down_fails_eio),
	    NS_TEST(test_udp_from_a_socket_arrives_with_its_header),
	    NS_TEST(test_udp6_to_the_ula_arrives_with_its_header),
	    NS_TEST(test_icmp_echo_written_is_answered),
	    NS_TEST(test_gso_segment_written_reaches_the_socket_whole),
	    NS_TEST(test_tso_hands_out_large_segments_with_their_size),
	    NS_TEST(test_large_mtu_moves_64k_segments),
	    NS_TEST(test_uso_hands_out_udp_super_packets),
	    NS_TEST(test_uso_packet_written_reaches_the_socket_as_datagrams),
	};
	int failed = cmocka_run_group_tests_name("tun_hdr", codec, NULL, NULL);

	if (nstest_probe("test_tun") != 0)
		return failed ? 1 : 77;
	return failed + cmocka_run_group_tests_name("tun", device, NULL, NULL) ? 1 : 0;
}
