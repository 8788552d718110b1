/* Unit tests for vnet's codecs, the host's packet check and the lease store. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>
#include "vnet/icmp.h"
#include "vnet/lease.h"
#include "vnet/msg.h"
#include "vnet/pkt.h"

static const struct vnet_src vm_src = {
    .addr4 = {10, 77, 0, 2},
    .has6 = true,
    .addr6 = {0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2},
};

/* A frame: offload header (when hdr) then an IPv4 packet of total bytes, proto, from src. */
static size_t ipv4_frame(uint8_t *f, bool hdr, size_t total, uint8_t proto, const uint8_t src[4],
			 const uint8_t dst[4])
{
	size_t h = hdr ? VNET_HDR_LEN : 0;

	memset(f, 0, h + total);
	f[h] = 0x45;
	f[h + 2] = (uint8_t)(total >> 8);
	f[h + 3] = (uint8_t)total;
	f[h + 8] = 64;
	f[h + 9] = proto;
	memcpy(f + h + 12, src, 4);
	memcpy(f + h + 16, dst, 4);
	return h + total;
}

static size_t ipv6_frame(uint8_t *f, size_t payload, uint8_t next, const uint8_t src[16],
			 const uint8_t dst[16])
{
	memset(f, 0, VNET_HDR_LEN + 40 + payload);
	f[VNET_HDR_LEN] = 0x60;
	f[VNET_HDR_LEN + 4] = (uint8_t)(payload >> 8);
	f[VNET_HDR_LEN + 5] = (uint8_t)payload;
	f[VNET_HDR_LEN + 6] = next;
	f[VNET_HDR_LEN + 7] = 64;
	memcpy(f + VNET_HDR_LEN + 8, src, 16);
	memcpy(f + VNET_HDR_LEN + 24, dst, 16);
	return VNET_HDR_LEN + 40 + payload;
}

static int check(const uint8_t *f, size_t n, bool hdr, struct vnet_pkt *k)
{
	char why[128];

	return vnet_pkt_check(f, n, hdr ? VNET_HDR_LEN : 0, 65520, &vm_src, k, why, sizeof(why));
}

static const uint8_t ext4[4] = {198, 51, 100, 80};

static void test_plain_packets_pass(void **state)
{
	static uint8_t f[70000];
	uint8_t dst6[16] = {0xfd, 0x77, [15] = 1};
	struct vnet_pkt k;
	size_t n;

	n = ipv4_frame(f, true, 60, 17, vm_src.addr4, ext4);
	assert_int_equal(check(f, n, true, &k), 0);
	assert_int_equal(k.family, 4);
	assert_int_equal(k.proto, 17);
	assert_memory_equal(k.dst, ext4, 4);
	n = ipv4_frame(f, false, 60, 1, vm_src.addr4, ext4);
	assert_int_equal(check(f, n, false, &k), 0);
	n = ipv6_frame(f, 8, 58, vm_src.addr6, dst6);
	assert_int_equal(check(f, n, true, &k), 0);
	assert_int_equal(k.family, 6);
	assert_memory_equal(k.dst, dst6, 16);
}

static void test_spoofed_and_malformed_packets_fail(void **state)
{
	static uint8_t f[70000];
	const uint8_t other[4] = {10, 77, 0, 3}, bcast[4] = {255, 255, 255, 255};
	const uint8_t mcast[4] = {224, 0, 0, 1}, zero[4] = {0};
	uint8_t other6[16] = {0xfd, 0x77, [15] = 9}, mcast6[16] = {0xff, 0x02, [15] = 1};
	struct vnet_pkt k;
	size_t n;

	n = ipv4_frame(f, true, 60, 17, other, ext4);
	assert_int_equal(check(f, n, true, &k), -EINVAL); /* spoofed source */
	n = ipv4_frame(f, true, 60, 17, vm_src.addr4, bcast);
	assert_int_equal(check(f, n, true, &k), -EINVAL);
	n = ipv4_frame(f, true, 60, 17, vm_src.addr4, mcast);
	assert_int_equal(check(f, n, true, &k), -EINVAL);
	n = ipv4_frame(f, true, 60, 17, vm_src.addr4, zero);
	assert_int_equal(check(f, n, true, &k), -EINVAL);
	n = ipv4_frame(f, true, 60, 17, vm_src.addr4, ext4);
	assert_int_equal(check(f, n - 1, true, &k), -EINVAL); /* total length != frame */
	f[VNET_HDR_LEN] = 0x44;				      /* IHL 4 */
	assert_int_equal(check(f, n, true, &k), -EINVAL);
	f[VNET_HDR_LEN] = 0x4f; /* IHL 15: 60 bytes, the whole packet */
	assert_int_equal(check(f, n, true, &k), 0);
	f[VNET_HDR_LEN] = 0x55; /* version 5 */
	assert_int_equal(check(f, n, true, &k), -EINVAL);
	assert_int_equal(check(f, VNET_HDR_LEN, true, &k), -EINVAL); /* no packet */
	n = ipv4_frame(f, false, 9000, 17, vm_src.addr4, ext4);
	assert_int_equal(vnet_pkt_check(f, n, 0, 1500, &vm_src, &k, (char[64]){0}, 64), -EINVAL);
	n = ipv6_frame(f, 8, 17, other6, other6);
	assert_int_equal(check(f, n, true, &k), -EINVAL);
	n = ipv6_frame(f, 8, 17, vm_src.addr6, mcast6);
	assert_int_equal(check(f, n, true, &k), -EINVAL);
	n = ipv6_frame(f, 8, 17, vm_src.addr6, other6);
	assert_int_equal(check(f, n + 1, true, &k), -EINVAL);
}

static void set_hdr(uint8_t *f, uint8_t flags, uint8_t gso, uint16_t hdr_len, uint16_t gso_size,
		    uint16_t cstart, uint16_t coff)
{
	struct vnet_hdr h = {flags, gso, hdr_len, gso_size, cstart, coff, 0};

	vnet_hdr_encode(&h, f);
}

static void test_offload_header_must_describe_the_packet(void **state)
{
	static uint8_t f[70000];
	struct vnet_pkt k;
	size_t n = ipv4_frame(f, true, 65000, 6, vm_src.addr4, ext4);

	set_hdr(f, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 54, 1448, 20, 16);
	assert_int_equal(check(f, n, true, &k), 0);
	assert_int_equal(k.hdr.gso_size, 1448);
	set_hdr(f, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV6, 54, 1448, 20, 16); /* v6 type on v4 */
	assert_int_equal(check(f, n, true, &k), -EINVAL);
	set_hdr(f, VNET_F_NEEDS_CSUM, VNET_GSO_UDP_L4, 42, 1448, 20, 6); /* UDP type on TCP */
	assert_int_equal(check(f, n, true, &k), -EINVAL);
	set_hdr(f, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 54, 0, 20, 16); /* no segment size */
	assert_int_equal(check(f, n, true, &k), -EINVAL);
	set_hdr(f, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 54, 1448, 64990, 16); /* csum past the end */
	assert_int_equal(check(f, n, true, &k), -EINVAL);
	set_hdr(f, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4, 54, 1448, 8, 16); /* csum inside IP */
	assert_int_equal(check(f, n, true, &k), -EINVAL);
	set_hdr(f, 0x80, VNET_GSO_NONE, 0, 0, 0, 0); /* unknown flag */
	assert_int_equal(check(f, n, true, &k), -EINVAL);
	set_hdr(f, 0, VNET_GSO_NONE, 0, 0, 0, 0); /* 65000 bytes without GSO: past the MTU */
	assert_int_equal(vnet_pkt_check(f, n, VNET_HDR_LEN, 1500, &vm_src, &k, (char[64]){0}, 64),
			 -EINVAL);
	set_hdr(f, 0, 9, 0, 0, 0, 0); /* unknown GSO type */
	assert_int_equal(check(f, n, true, &k), -EINVAL);
}

static void test_attach_codecs(void **state)
{
	struct vnet_req q = {VNET_VERSION, VNET_REQ_IPV6, VNET_HDR_LEN, 65520}, q2;
	struct vnet_lease_msg m = {.flags = VNET_LEASE_IPV6,
				   .prefix4 = 24,
				   .prefix6 = 64,
				   .mtu = 65520,
				   .metric = 500},
			      m2;
	uint8_t b[VNET_LEASE_LEN];

	vnet_req_encode(&q, b);
	assert_int_equal(vnet_req_decode(b, VNET_REQ_LEN, &q2), 0);
	assert_int_equal(q2.mtu, 65520);
	assert_int_equal(vnet_req_decode(b, VNET_REQ_LEN - 1, &q2), -EINVAL);
	b[0] = 2;
	assert_int_equal(vnet_req_decode(b, VNET_REQ_LEN, &q2), -EINVAL);
	q.hdr_len = 10;
	vnet_req_encode(&q, b);
	assert_int_equal(vnet_req_decode(b, VNET_REQ_LEN, &q2), -EINVAL);
	q.hdr_len = 0;
	q.mtu = 576;
	vnet_req_encode(&q, b);
	assert_int_equal(vnet_req_decode(b, VNET_REQ_LEN, &q2), -EINVAL);

	m.addr4[0] = 10;
	m.addr6[0] = 0xfd;
	vnet_lease_encode(&m, b);
	assert_int_equal(vnet_lease_decode(b, VNET_LEASE_LEN, &m2), 0);
	assert_memory_equal(&m2.addr6, &m.addr6, 16);
	assert_int_equal(m2.metric, 500);
	b[1] = 31;
	assert_int_equal(vnet_lease_decode(b, VNET_LEASE_LEN, &m2), -EINVAL);
}

static void test_leases_persist_and_fill(void **state)
{
	char path[] = "/tmp/vb-test-leases-XXXXXX", why[200];
	struct vnet_net net = {0};
	struct vnet_leases l;
	struct vnet_src a, b, c;
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	close(fd);
	unlink(path);
	assert_int_equal(vnet_net_parse4("10.77.0.0/30", &net, why, sizeof(why)), 0);
	assert_int_equal(vnet_net_parse6("fd77::/64", &net, why, sizeof(why)), 0);
	assert_int_equal(vnet_leases_open(&l, &net, path, why, sizeof(why)), 0);
	assert_int_equal(vnet_lease_for(&l, "lab1", &a), 0);
	assert_int_equal(a.addr4[3], 2);
	assert_int_equal(a.addr6[15], 2);
	assert_int_equal(vnet_lease_for(&l, "lab2", &b),
			 -ENOSPC); /* /30: .1 gateway, .2, .3 bcast */
	vnet_leases_close(&l);

	assert_int_equal(vnet_net_parse4("10.77.0.0/24", &net, why, sizeof(why)), 0);
	assert_int_equal(vnet_leases_open(&l, &net, path, why, sizeof(why)), 0);
	assert_int_equal(vnet_lease_for(&l, "lab2", &b), 0);
	assert_int_equal(b.addr4[3], 3);
	assert_int_equal(vnet_lease_for(&l, "lab1", &c), 0); /* kept across reopening */
	assert_memory_equal(&a, &c, sizeof(a));
	vnet_leases_close(&l);

	fd = open(path, O_WRONLY | O_APPEND);
	assert_true(write(fd, "garbage\n", 8) == 8);
	close(fd);
	assert_int_equal(vnet_leases_open(&l, &net, path, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "line 4"));
	unlink(path);

	assert_int_equal(vnet_net_parse4("10.77.0.1/24", &net, why, sizeof(why)), -EINVAL);
	assert_int_equal(vnet_net_parse4("10.77.0.0/31", &net, why, sizeof(why)), -EINVAL);
	assert_int_equal(vnet_net_parse4("fd77::/64", &net, why, sizeof(why)), -EINVAL);
}

/* The one's complement sum of p[0..n) folds to 0xffff when its checksum is right. */
static uint16_t fold_sum(uint32_t sum, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static void test_too_big_answers(void **state)
{
	static uint8_t f[70000], out[VNET_ICMP_MAX];
	const uint8_t gw4[4] = {10, 77, 0, 1}, gw6[16] = {0xfd, 0x77, [15] = 1};
	uint8_t dst6[16] = {0xfd, 0x77, [15] = 3};
	uint32_t sum;
	size_t n;
	int m;

	n = ipv4_frame(f, true, 9000, 17, vm_src.addr4, ext4);
	f[VNET_HDR_LEN + 6] = 0x40; /* DF */
	m = vnet_icmp_too_big(f + VNET_HDR_LEN, n - VNET_HDR_LEN, 1500, gw4, gw6, out);
	assert_int_equal(m, 12 + 20 + 8 + 28);
	assert_memory_equal(out + 12 + 12, gw4, 4);	     /* from the gateway */
	assert_memory_equal(out + 12 + 16, vm_src.addr4, 4); /* to the sender */
	assert_int_equal(out[12 + 20], 3);
	assert_int_equal(out[12 + 21], 4);
	assert_int_equal(out[12 + 26] << 8 | out[12 + 27], 1500);
	assert_int_equal(fold_sum(0, out + 12, 20), 0xffff);
	assert_int_equal(fold_sum(0, out + 12 + 20, 36), 0xffff);
	f[VNET_HDR_LEN + 6] = 0; /* without DF: dropped, not answered */
	assert_int_equal(vnet_icmp_too_big(f + VNET_HDR_LEN, n - VNET_HDR_LEN, 1500, gw4, gw6, out),
			 -EMSGSIZE);
	n = ipv4_frame(f, true, 9000, 1, vm_src.addr4, ext4);
	f[VNET_HDR_LEN + 6] = 0x40;
	f[VNET_HDR_LEN + 20] = 3; /* an ICMP error itself: never answered */
	assert_int_equal(vnet_icmp_too_big(f + VNET_HDR_LEN, n - VNET_HDR_LEN, 1500, gw4, gw6, out),
			 -EINVAL);

	n = ipv6_frame(f, 9000, 17, vm_src.addr6, dst6);
	m = vnet_icmp_too_big(f + VNET_HDR_LEN, n - VNET_HDR_LEN, 1280, gw4, gw6, out);
	assert_int_equal(m, 12 + 1280);
	assert_int_equal(out[12 + 40], 2);
	assert_memory_equal(out + 12 + 24, vm_src.addr6, 16);
	sum = fold_sum(0, out + 12 + 8, 32) + (1280 - 40) + 58;
	assert_int_equal(fold_sum(sum, out + 12 + 40, 1280 - 40), 0xffff);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plain_packets_pass),
	    cmocka_unit_test(test_spoofed_and_malformed_packets_fail),
	    cmocka_unit_test(test_offload_header_must_describe_the_packet),
	    cmocka_unit_test(test_attach_codecs),
	    cmocka_unit_test(test_leases_persist_and_fill),
	    cmocka_unit_test(test_too_big_answers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
