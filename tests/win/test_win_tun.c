/* Tests of the Wintun TUN (platform/win/tun.c) and its software offloads (tun_gso.c) under Wine. */
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
#include "platform/tun.h"
#include "platform/win/tun_gso.h"

/*
 * What Wine can check: that a missing wintun.dll (Wine has no Wintun) fails
 * tun_open() with one clear line and leaves nothing open, and the software
 * offloads every frame a VM writes goes through (OS-free): a plain packet
 * untouched, a checksum finished, TSO over IPv4 and IPv6 and USO cut into
 * segments whose lengths, ids, sequence numbers, flags and checksums are
 * right, and bad frames refused.
 *
 * What only a real Windows host with wintun.dll beside the executable (and
 * an administrator) checks: the adapter's creation and removal, its index
 * and MTU, the relay (a packet sent to the adapter's subnet read from the
 * pipe as one frame with an all-zero header; a frame written to the pipe
 * leaving by the adapter, segmented), a full ring dropping, tun_close()
 * ending both relay threads, and a wintun.dll of the wrong architecture or
 * too old refused with its line. On such a host the missing-DLL test skips.
 */

/* ---- the missing DLL ---- */

static bool wintun_beside_us(void)
{
	HMODULE m = LoadLibraryExW(L"wintun.dll", NULL, LOAD_LIBRARY_SEARCH_APPLICATION_DIR);

	if (m)
		FreeLibrary(m);
	return m != NULL;
}

static void test_open_without_wintun_dll_fails_with_one_clear_line(void **state)
{
	struct tun t;
	char why[300] = "";
	int r;

	if (wintun_beside_us()) {
		print_message("wintun.dll is beside the test: the missing-DLL path cannot run\n");
		skip();
	}
	r = tun_open(&t, "vmbusify-t0", TUN_OFFLOAD_ALL, why, sizeof(why));
	assert_int_equal(r, -ENOENT);
	assert_string_equal(why, "wintun.dll not found beside test_win_tun.exe (download it from "
				 "https://www.wintun.net and put the amd64 wintun.dll there)");
	assert_int_equal(t.fd, -1);
	assert_null(t.os);
	tun_close(&t); /* harmless on a device that never opened */
}

static void test_open_refuses_a_name_too_long(void **state)
{
	struct tun t;
	char why[200] = "";

	assert_int_equal(tun_open(&t, "a-name-of-16-byt", 0, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "TUN name 'a-name-of-16-byt' is longer than 15 bytes");
}

/* ---- building packets ---- */

struct seen {
	int n;
	size_t len[8];
	uint8_t pkt[8][2048];
};

static int collect(void *arg, const uint8_t *pkt, size_t len)
{
	struct seen *s = arg;

	if (s->n >= 8 || len > sizeof(s->pkt[0]))
		return -ENOSPC;
	memcpy(s->pkt[s->n], pkt, len);
	s->len[s->n++] = len;
	return 0;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t sum(const uint8_t *p, size_t n, uint32_t s)
{
	for (; n > 1; p += 2, n -= 2)
		s += be16(p);
	if (n)
		s += (uint32_t)p[0] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return s;
}

/* True when the transport checksum of packet p (IP header of l3 bytes) verifies. */
static bool l4_ok(const uint8_t *p, size_t len, size_t l3, uint8_t proto)
{
	bool v4 = (p[0] >> 4) == 4;
	size_t l4len = len - l3;
	uint32_t s = proto + (uint32_t)l4len;

	s = v4 ? sum(p + 12, 8, s) : sum(p + 8, 32, s);
	return sum(p + l3, l4len, s) == 0xffff;
}

/* A frame: the offload header, then an IPv4 or IPv6 header, a TCP or UDP header, payload. */
static size_t frame(uint8_t *f, bool v4, uint8_t proto, size_t payload, uint8_t gso,
		    uint16_t gso_size)
{
	struct vb_vnet_hdr h = {0};
	uint8_t *p = f + TUN_HDR_LEN;
	size_t l3 = v4 ? 20 : 40, l4 = proto == 6 ? 20 : 8, n = l3 + l4 + payload;

	memset(p, 0, n);
	if (v4) {
		p[0] = 0x45;
		p[2] = (uint8_t)(n >> 8), p[3] = (uint8_t)n;
		p[4] = 0x12, p[5] = 0x34; /* id */
		p[8] = 64, p[9] = proto;
		memcpy(p + 12, "\x0a\x4d\x00\x02\x5d\xb8\xd8\x22", 8);
	} else {
		p[0] = 0x60;
		p[4] = (uint8_t)((n - 40) >> 8), p[5] = (uint8_t)(n - 40);
		p[6] = proto, p[7] = 64;
		p[8] = 0xfd, p[23] = 2, p[24] = 0x20, p[25] = 0x01, p[39] = 1;
	}
	p[l3] = 0x9c, p[l3 + 1] = 0x40, p[l3 + 2] = 0x01, p[l3 + 3] = 0xbb; /* ports */
	if (proto == 6) {
		p[l3 + 4] = 0x10, p[l3 + 7] = 0x01; /* seq 0x10000001 */
		p[l3 + 12] = 0x50;
		p[l3 + 13] = 0x80 | 0x18 | 0x01; /* CWR, ACK, PSH, FIN */
	} else {
		p[l3 + 4] = (uint8_t)((l4 + payload) >> 8), p[l3 + 5] = (uint8_t)(l4 + payload);
	}
	for (size_t i = 0; i < payload; i++)
		p[l3 + l4 + i] = (uint8_t)i;
	h.gso_type = gso;
	h.gso_size = gso_size;
	if (gso) {
		h.flags = VB_VNET_F_NEEDS_CSUM;
		h.hdr_len = (uint16_t)(l3 + l4);
		h.csum_start = (uint16_t)l3;
		h.csum_offset = proto == 6 ? 16 : 6;
	}
	tun_hdr_encode(&h, f);
	return TUN_HDR_LEN + n;
}

static uint8_t f[TUN_FRAME_MAX], scratch[TUN_PACKET_MAX];

/* ---- software offloads ---- */

static void test_plain_packet_goes_out_as_it_came(void **state)
{
	struct seen s = {0};
	size_t n = frame(f, true, 17, 100, 0, 0);

	assert_int_equal(tun_gso_split(f, n, scratch, collect, &s), 1);
	assert_int_equal(s.len[0], n - TUN_HDR_LEN);
	assert_memory_equal(s.pkt[0], f + TUN_HDR_LEN, n - TUN_HDR_LEN);
}

static void test_needs_csum_finishes_the_checksum_from_the_pseudo_header_sum(void **state)
{
	struct vb_vnet_hdr h = {.flags = VB_VNET_F_NEEDS_CSUM, .csum_start = 20, .csum_offset = 6};
	struct seen s = {0};
	size_t n = frame(f, true, 17, 101, 0, 0);
	uint8_t *p = f + TUN_HDR_LEN;
	uint32_t pseudo = sum(p + 12, 8, 17 + (uint32_t)(n - TUN_HDR_LEN - 20));

	/* As Linux leaves it: the pseudo-header's folded sum, not complemented, in the field. */
	p[26] = (uint8_t)(pseudo >> 8), p[27] = (uint8_t)pseudo;
	tun_hdr_encode(&h, f);
	assert_int_equal(tun_gso_split(f, n, scratch, collect, &s), 1);
	assert_true(l4_ok(s.pkt[0], s.len[0], 20, 17));
	assert_memory_equal(s.pkt[0], p, 26); /* nothing else changed */
}

static void test_tso4_cuts_segments_with_their_own_lengths_ids_seqs_and_checksums(void **state)
{
	struct seen s = {0};
	size_t n = frame(f, true, 6, 2500, VB_VNET_GSO_TCPV4 | VB_VNET_GSO_ECN, 1000);

	assert_int_equal(tun_gso_split(f, n, scratch, collect, &s), 3);
	for (int i = 0; i < 3; i++) {
		const uint8_t *p = s.pkt[i];
		size_t pay = i < 2 ? 1000 : 500;

		assert_int_equal(s.len[i], 40 + pay);
		assert_int_equal(be16(p + 2), 40 + pay);
		assert_int_equal(be16(p + 4), 0x1234 + i);
		assert_int_equal(sum(p, 20, 0), 0xffff); /* the IPv4 header checksum */
		assert_int_equal(be32(p + 24), 0x10000001u + 1000u * (uint32_t)i);
		assert_int_equal(p[33] & 0x80, i == 0 ? 0x80 : 0); /* CWR on the first */
		assert_int_equal(p[33] & 0x09, i == 2 ? 0x09 : 0); /* FIN, PSH on the last */
		assert_int_equal(p[33] & 0x10, 0x10);		   /* ACK on all */
		assert_int_equal(p[40], (uint8_t)(1000 * i));	   /* the payload's own bytes */
		assert_true(l4_ok(p, s.len[i], 20, 6));
	}
}

static void test_tso6_cuts_segments_with_their_payload_lengths(void **state)
{
	struct seen s = {0};
	size_t n = frame(f, false, 6, 1500, VB_VNET_GSO_TCPV6, 1200);

	assert_int_equal(tun_gso_split(f, n, scratch, collect, &s), 2);
	assert_int_equal(s.len[0], 60 + 1200);
	assert_int_equal(be16(s.pkt[0] + 4), 20 + 1200);
	assert_int_equal(be16(s.pkt[1] + 4), 20 + 300);
	assert_int_equal(be32(s.pkt[1] + 44), 0x10000001u + 1200u);
	assert_true(l4_ok(s.pkt[0], s.len[0], 40, 6));
	assert_true(l4_ok(s.pkt[1], s.len[1], 40, 6));
}

static void test_uso_cuts_datagrams_with_their_udp_lengths(void **state)
{
	struct seen s = {0};
	size_t n = frame(f, true, 17, 1000, VB_VNET_GSO_UDP_L4, 400);

	assert_int_equal(tun_gso_split(f, n, scratch, collect, &s), 3);
	assert_int_equal(be16(s.pkt[2] + 24), 8 + 200);
	assert_int_equal(be16(s.pkt[2] + 2), 28 + 200);
	for (int i = 0; i < 3; i++)
		assert_true(l4_ok(s.pkt[i], s.len[i], 20, 17));
}

static void test_bad_frames_are_refused(void **state)
{
	struct seen s = {0};
	size_t n = frame(f, true, 17, 100, VB_VNET_GSO_TCPV4, 40); /* TSO on a UDP packet */

	assert_int_equal(tun_gso_split(f, n, scratch, collect, &s), -EINVAL);
	n = frame(f, false, 6, 100, VB_VNET_GSO_TCPV4, 40); /* TCPV4 on IPv6 */
	assert_int_equal(tun_gso_split(f, n, scratch, collect, &s), -EINVAL);
	n = frame(f, true, 6, 100, VB_VNET_GSO_TCPV4, 0); /* no segment size */
	assert_int_equal(tun_gso_split(f, n, scratch, collect, &s), -EINVAL);
	assert_int_equal(tun_gso_split(f, TUN_HDR_LEN + 10, scratch, collect, &s), -EINVAL);
	n = frame(f, false, 6, 100, VB_VNET_GSO_TCPV6, 40);
	f[TUN_HDR_LEN + 6] = 0; /* a hop-by-hop extension header before TCP */
	assert_int_equal(tun_gso_split(f, n, scratch, collect, &s), -EINVAL);
	assert_int_equal(s.n, 0);
}

static void test_emit_failure_stops_the_cut(void **state)
{
	struct seen s = {.n = 7};
	size_t n = frame(f, true, 6, 3000, VB_VNET_GSO_TCPV4, 1000);

	assert_int_equal(tun_gso_split(f, n, scratch, collect, &s), -ENOSPC);
	assert_int_equal(s.n, 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open_without_wintun_dll_fails_with_one_clear_line),
	    cmocka_unit_test(test_open_refuses_a_name_too_long),
	    cmocka_unit_test(test_plain_packet_goes_out_as_it_came),
	    cmocka_unit_test(test_needs_csum_finishes_the_checksum_from_the_pseudo_header_sum),
	    cmocka_unit_test(test_tso4_cuts_segments_with_their_own_lengths_ids_seqs_and_checksums),
	    cmocka_unit_test(test_tso6_cuts_segments_with_their_payload_lengths),
	    cmocka_unit_test(test_uso_cuts_datagrams_with_their_udp_lengths),
	    cmocka_unit_test(test_bad_frames_are_refused),
	    cmocka_unit_test(test_emit_failure_stops_the_cut),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
