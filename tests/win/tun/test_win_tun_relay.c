/* Tests of the Wintun relay (platform/win/tun.c) over a stand-in wintun.dll, under Wine. */
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
#include "platform/loop.h"
#include "platform/tun.h"

/*
 * This executable lives beside tests/win/tun/fake_wintun.c built as
 * wintun.dll (in the build's fake-wintun/ directory: tun.c loads the DLL
 * from the executable's directory only), so tun_open() succeeds and the
 * relay runs for real: the loop reads each packet "from the host" as one
 * frame with an all-zero offload header, a frame written on the loop leaves
 * as finished packets (a TSO frame as its segments), and tun_close() joins
 * both relay threads and ends the session and the adapter.
 *
 * What only a real Windows host with Wintun checks: the same against the
 * driver's rings (their wait event, a full ring, the adapter's removal),
 * at speed.
 */

#define MS 1000000ull

typedef BOOL(WINAPI *inject_fn)(const BYTE *pkt, DWORD len);
typedef BOOL(WINAPI *sent_fn)(int i, BYTE *out, DWORD *len);
typedef int(WINAPI *count_fn)(void);
typedef LONG(WINAPI *closed_fn)(void);

static struct tun t;
static struct loop *l;
static inject_fn inject;
static sent_fn sent;
static count_fn sent_count;
static closed_fn closed;

struct rd {
	struct loop_req req;
	int res;
	bool done;
	uint8_t buf[TUN_FRAME_MAX];
};

static void rd_done(struct loop_req *req, int res)
{
	struct rd *r = req->data;

	r->res = res;
	r->done = true;
}

/* Runs the loop until *done or 5 s have passed. */
static void run_until(bool *done)
{
	for (int i = 0; i < 100 && !*done; i++)
		assert_true(loop_run_once(l, 50 * MS) >= 0);
	assert_true(*done);
}

static uint8_t *ipv4(uint8_t *p, size_t len, uint8_t proto)
{
	memset(p, 0, len);
	p[0] = 0x45;
	p[2] = (uint8_t)(len >> 8), p[3] = (uint8_t)len;
	p[8] = 64, p[9] = proto;
	memcpy(p + 12, "\x0a\x4d\x00\x02\x5d\xb8\xd8\x22", 8);
	return p;
}

static void test_open_with_a_wintun_dll_beside_us(void **state)
{
	HMODULE m;
	char why[300] = "";

	assert_int_equal(tun_open(&t, "vmbusify-t1", TUN_OFFLOAD_ALL, why, sizeof(why)), 0);
	assert_string_equal(t.name, "vmbusify-t1");
	assert_true(t.ifindex > 0);
	assert_int_equal(t.offloads, 0); /* Wintun hands out finished packets only */
	assert_true(t.fd != -1);
	/* A reference of our own: tun_close() lets go of tun.c's, and the counters outlive it. */
	m = LoadLibraryExW(L"wintun.dll", NULL, LOAD_LIBRARY_SEARCH_APPLICATION_DIR);
	assert_non_null(m);
	assert_ptr_equal(m, GetModuleHandleW(L"wintun.dll")); /* the one tun.c loaded */
	inject = (inject_fn)(void *)GetProcAddress(m, "FakeWintunInject");
	sent = (sent_fn)(void *)GetProcAddress(m, "FakeWintunSent");
	sent_count = (count_fn)(void *)GetProcAddress(m, "FakeWintunSentCount");
	closed = (closed_fn)(void *)GetProcAddress(m, "FakeWintunClosed");
	assert_true(inject && sent && sent_count && closed);
	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
}

static void test_each_packet_from_the_host_is_one_frame_with_a_zero_header(void **state)
{
	static const uint8_t zero[TUN_HDR_LEN];
	static struct rd r;
	uint8_t a[60], b[1400];

	assert_true(inject(ipv4(a, sizeof(a), 17), sizeof(a)));
	assert_true(inject(ipv4(b, sizeof(b), 6), sizeof(b)));
	for (int i = 0; i < 2; i++) {
		size_t want = i ? sizeof(b) : sizeof(a);

		memset(&r, 0, sizeof(r));
		r.req.data = &r;
		assert_int_equal(loop_read(l, &r.req, t.fd, r.buf, sizeof(r.buf), rd_done), 0);
		run_until(&r.done);
		assert_int_equal(r.res, TUN_HDR_LEN + want);
		assert_memory_equal(r.buf, zero, TUN_HDR_LEN);
		assert_memory_equal(r.buf + TUN_HDR_LEN, i ? b : a, want);
	}
}

static void test_a_tso_frame_leaves_as_its_segments(void **state)
{
	static uint8_t f[TUN_HDR_LEN + 40 + 2500];
	struct vb_vnet_hdr h = {.flags = VB_VNET_F_NEEDS_CSUM,
				.gso_type = VB_VNET_GSO_TCPV4,
				.hdr_len = 40,
				.gso_size = 1000,
				.csum_start = 20,
				.csum_offset = 16};
	struct rd w = {0};
	uint8_t out[2048];
	DWORD len;

	ipv4(f + TUN_HDR_LEN, sizeof(f) - TUN_HDR_LEN, 6);
	f[TUN_HDR_LEN + 32] = 0x50; /* TCP header length 20 */
	tun_hdr_encode(&h, f);
	w.req.data = &w;
	assert_int_equal(loop_write(l, &w.req, t.fd, f, sizeof(f), rd_done), 0);
	run_until(&w.done);
	assert_int_equal(w.res, sizeof(f));
	for (int i = 0; i < 100 && sent_count() < 3; i++)
		Sleep(50);
	assert_int_equal(sent_count(), 3);
	for (int i = 0; i < 3; i++) {
		len = sizeof(out);
		assert_true(sent(i, out, &len));
		assert_int_equal(len, 40 + (i < 2 ? 1000 : 500));
		assert_int_equal(out[2] << 8 | out[3], len);
	}
}

static void test_a_bad_frame_is_dropped_and_the_relay_goes_on(void **state)
{
	static uint8_t f[TUN_HDR_LEN + 60];
	struct vb_vnet_hdr h = {.gso_type = 0x42};
	struct rd w = {0};

	ipv4(f + TUN_HDR_LEN, 60, 17);
	tun_hdr_encode(&h, f);
	w.req.data = &w;
	assert_int_equal(loop_write(l, &w.req, t.fd, f, sizeof(f), rd_done), 0);
	run_until(&w.done);
	memset(f, 0, TUN_HDR_LEN); /* the same packet, plain */
	memset(&w, 0, sizeof(w));
	w.req.data = &w;
	assert_int_equal(loop_write(l, &w.req, t.fd, f, sizeof(f), rd_done), 0);
	run_until(&w.done);
	for (int i = 0; i < 100 && sent_count() < 4; i++)
		Sleep(50);
	assert_int_equal(sent_count(), 4);
}

static void test_close_ends_the_relay_the_session_and_the_adapter(void **state)
{
	tun_close(&t);
	assert_int_equal(t.fd, -1);
	assert_null(t.os);
	assert_int_equal(closed(), 2);
	loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open_with_a_wintun_dll_beside_us),
	    cmocka_unit_test(test_each_packet_from_the_host_is_one_frame_with_a_zero_header),
	    cmocka_unit_test(test_a_tso_frame_leaves_as_its_segments),
	    cmocka_unit_test(test_a_bad_frame_is_dropped_and_the_relay_goes_on),
	    cmocka_unit_test(test_close_ends_the_relay_the_session_and_the_adapter),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
