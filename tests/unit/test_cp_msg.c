/* Unit tests for the FILE stream codecs (exec/cp_msg.c) and cp's command-line path split. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#include <cmocka.h>
#include "core/wire.h"
#include "exec/cp_cli.h"
#include "exec/cp_msg.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#ifndef VB_SOURCE_DIR
#define VB_SOURCE_DIR "."
#endif
#define SPEC_PATH VB_SOURCE_DIR "/docs/protocol.md"

/* ---- helpers ---- */

/* Decodes a request that must be accepted; the caller frees *mem. */
static void req_ok(const uint8_t *p, size_t len, struct cp_req *q, void **mem)
{
	char why[256] = "";

	assert_int_equal(cp_req_decode(p, len, q, mem, why, sizeof(why)), 0);
	assert_non_null(*mem);
}

/* Decodes a request that must be refused with -EINVAL, a reason and nothing to free. */
static void req_bad(const uint8_t *p, size_t len)
{
	char why[256] = "";
	struct cp_req q;
	void *mem = (void *)1;

	assert_int_equal(cp_req_decode(p, len, &q, &mem, why, sizeof(why)), -EINVAL);
	assert_null(mem);
	assert_null(q.paths);
	assert_true(why[0] != '\0');
}

/* Appends a request header to out; returns its length (7). */
static size_t req_hdr(uint8_t *out, uint8_t dir, uint32_t flags, uint16_t count)
{
	out[0] = dir;
	wire_put_u32(out + 1, flags);
	wire_put_u16(out + 5, count);
	return 7;
}

/* Appends a str (u16 length, bytes) at out; returns its length. */
static size_t put_str(uint8_t *out, const void *s, size_t n)
{
	wire_put_u16(out, (uint16_t)n);
	memcpy(out + 2, s, n);
	return 2 + n;
}

/* Builds an ENTRY byte by byte (not through the encoder); returns its length. */
static size_t entry_raw(uint8_t *out, uint8_t type, uint8_t flags, uint32_t mode, uint64_t size,
			const void *path, size_t pn, const void *target, size_t tn)
{
	size_t off = 0;

	out[off++] = type;
	out[off++] = flags;
	wire_put_u32(out + off, mode);
	off += 4;
	wire_put_u64(out + off, size);
	off += 8;
	wire_put_u64(out + off, 1000);
	off += 8;
	wire_put_u64(out + off, 2000);
	off += 8;
	off += put_str(out + off, path, pn);
	off += put_str(out + off, target, tn);
	return off;
}

static int entry_dec(const uint8_t *p, size_t len)
{
	struct cp_entry e;

	return cp_entry_decode(p, len, &e);
}

/* An ENTRY with the given type, flags, mode, size, path and target decodes to want. */
static void entry_expect(int want, uint8_t type, uint8_t flags, uint32_t mode, uint64_t size,
			 const char *path, const char *target)
{
	uint8_t b[2048];
	size_t n =
	    entry_raw(b, type, flags, mode, size, path, strlen(path), target, strlen(target));

	assert_int_equal(entry_dec(b, n), want);
}

/* ---- the request ---- */

static void test_req_put_encodes_byte_exact(void **state)
{
	static const uint8_t want[] = {0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x01, 0x00,
				       0x06, '/',  't',	 'm',  'p',  '/',  'x'};
	const char *paths[] = {"/tmp/x", NULL};
	struct cp_req q = {
	    .dir = CP_PUT, .flags = CP_F_RECURSIVE | CP_F_PRESERVE, .count = 1, .paths = paths};
	uint8_t b[64];

	assert_int_equal(cp_req_encode(&q, b, sizeof(b)), sizeof(want));
	assert_memory_equal(b, want, sizeof(want));
}

static void test_req_get_round_trips(void **state)
{
	static const uint8_t want[] = {0x01, 0x00, 0x00, 0x00, 0x15, 0x00, 0x02, 0x00,
				       0x01, 'a',  0x00, 0x04, '/',  'b',  '/',	 'c'};
	const char *paths[] = {"a", "/b/c", NULL};
	struct cp_req q = {.dir = CP_GET,
			   .flags = CP_F_RECURSIVE | CP_F_INTO | CP_F_TOTAL,
			   .count = 2,
			   .paths = paths},
		      d;
	uint8_t b[64];
	void *mem;

	assert_int_equal(cp_req_encode(&q, b, sizeof(b)), sizeof(want));
	assert_memory_equal(b, want, sizeof(want));
	req_ok(b, sizeof(want), &d, &mem);
	assert_int_equal(d.dir, CP_GET);
	assert_int_equal(d.flags, q.flags);
	assert_int_equal(d.count, 2);
	assert_string_equal(d.paths[0], "a");
	assert_string_equal(d.paths[1], "/b/c");
	assert_null(d.paths[2]);
	free(mem);
}

static void test_req_takes_the_largest_path_and_most_sources(void **state)
{
	static uint8_t b[CP_REQ_MAX];
	static char big[CP_PATH_MAX + 1];
	size_t off;
	struct cp_req q;
	void *mem;

	memset(big, 'p', CP_PATH_MAX);
	off = req_hdr(b, CP_PUT, 0, 1);
	off += put_str(b + off, big, CP_PATH_MAX);
	req_ok(b, off, &q, &mem);
	assert_int_equal(strlen(q.paths[0]), CP_PATH_MAX);
	free(mem);

	off = req_hdr(b, CP_GET, CP_F_ALL, CP_REQ_PATHS_MAX);
	for (unsigned i = 0; i < CP_REQ_PATHS_MAX; i++)
		off += put_str(b + off, "s", 1);
	req_ok(b, off, &q, &mem);
	assert_int_equal(q.count, CP_REQ_PATHS_MAX);
	assert_string_equal(q.paths[CP_REQ_PATHS_MAX - 1], "s");
	assert_null(q.paths[CP_REQ_PATHS_MAX]);
	free(mem);
}

static void test_req_encode_refuses_what_does_not_fit(void **state)
{
	static char big[CP_PATH_MAX + 2], mid[4001];
	const char *one[] = {big, NULL};
	const char *five[] = {mid, mid, mid, mid, mid, NULL};
	struct cp_req q = {.dir = CP_PUT, .count = 1, .paths = one};
	const char *small[] = {"abcdef", NULL};
	static uint8_t b[65536];

	memset(big, 'p', CP_PATH_MAX + 1);
	memset(mid, 'm', 4000);
	assert_int_equal(cp_req_encode(&q, b, sizeof(b)), -E2BIG);
	q = (struct cp_req){.dir = CP_GET, .count = 5, .paths = five};
	assert_int_equal(cp_req_encode(&q, b, sizeof(b)), -E2BIG); /* over CP_REQ_MAX */
	q = (struct cp_req){.dir = CP_PUT, .count = 1, .paths = small};
	assert_int_equal(cp_req_encode(&q, b, 10), -E2BIG);
}

static void test_req_decode_refuses_short_requests(void **state)
{
	uint8_t b[16];
	size_t n = req_hdr(b, CP_PUT, 0, 1);

	n += put_str(b + n, "d", 1);
	for (size_t len = 0; len < n; len++)
		req_bad(b, len);
}

static void test_req_decode_refuses_a_request_over_its_limit(void **state)
{
	static uint8_t b[CP_REQ_MAX + 1];
	size_t off = req_hdr(b, CP_GET, 0, 4);

	for (int i = 0; i < 4; i++)
		off += put_str(b + off, "x", 1);
	/* Every path is well formed; the size alone is refused. */
	memset(b + off, 0, sizeof(b) - off);
	req_bad(b, sizeof(b));
}

static void test_req_decode_refuses_bad_counts_dirs_and_flags(void **state)
{
	uint8_t b[64];
	size_t n;

	n = req_hdr(b, CP_GET, 0, 0);
	req_bad(b, n); /* no path */
	n = req_hdr(b, CP_GET, 0, CP_REQ_PATHS_MAX + 1);
	req_bad(b, n);
	n = req_hdr(b, CP_PUT, 0, 2);
	n += put_str(b + n, "a", 1);
	n += put_str(b + n, "b", 1);
	req_bad(b, n); /* PUT names one destination */
	n = req_hdr(b, 2, 0, 1);
	n += put_str(b + n, "a", 1);
	req_bad(b, n);
	n = req_hdr(b, CP_GET, CP_F_ALL + 1, 1);
	n += put_str(b + n, "a", 1);
	req_bad(b, n);
	n = req_hdr(b, CP_GET, 0x80000000u, 1);
	n += put_str(b + n, "a", 1);
	req_bad(b, n);
}

static void test_req_decode_refuses_bad_paths(void **state)
{
	static uint8_t b[CP_REQ_MAX];
	static char big[CP_PATH_MAX + 1];
	size_t n;

	n = req_hdr(b, CP_PUT, 0, 1);
	n += put_str(b + n, "", 0);
	req_bad(b, n); /* empty */
	n = req_hdr(b, CP_PUT, 0, 1);
	n += put_str(b + n, "a\0b", 3);
	req_bad(b, n); /* NUL */
	memset(big, 'p', sizeof(big));
	n = req_hdr(b, CP_PUT, 0, 1);
	n += put_str(b + n, big, CP_PATH_MAX + 1);
	req_bad(b, n); /* too long */
	n = req_hdr(b, CP_GET, 0, 2);
	n += put_str(b + n, "a", 1);
	req_bad(b, n); /* a path missing */
	n = req_hdr(b, CP_PUT, 0, 1);
	n += put_str(b + n, "a", 1);
	b[n++] = 0;
	req_bad(b, n); /* a byte after the last path */
	n = req_hdr(b, CP_PUT, 0, 1);
	wire_put_u16(b + n, 5);
	memcpy(b + n + 2, "abc", 3);
	req_bad(b, n + 5); /* a path cut short */
}

/* ---- ENTRY ---- */

static void test_entry_file_encodes_byte_exact(void **state)
{
	static const uint8_t want[] = {
	    0x01, 0x01, 0x00, 0x00, 0x01, 0xa4,			  /* FILE, TOP, 0644 */
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05,	  /* size 5 */
	    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,	  /* mtime */
	    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,	  /* atime -1 */
	    0x00, 0x05, 'f',  '.',  't',  'x',	'm',  0x00, 0x00, /* path, no target */
	};
	struct cp_entry e = {.type = CP_T_FILE,
			     .flags = CP_E_TOP,
			     .mode = 0644,
			     .size = 5,
			     .mtime_ns = 0x0102030405060708,
			     .atime_ns = -1,
			     .path = "f.txm"},
			d;
	uint8_t b[REC_CONTROL_MAX];

	assert_int_equal(cp_entry_encode(&e, b, sizeof(b)), sizeof(want));
	assert_memory_equal(b, want, sizeof(want));
	assert_int_equal(cp_entry_decode(b, sizeof(want), &d), 0);
	assert_int_equal(d.type, CP_T_FILE);
	assert_int_equal(d.flags, CP_E_TOP);
	assert_int_equal(d.mode, 0644);
	assert_int_equal(d.size, 5);
	assert_true(d.mtime_ns == 0x0102030405060708);
	assert_true(d.atime_ns == -1);
	assert_int_equal(d.path_len, 5);
	assert_string_equal(d.path, "f.txm");
	assert_int_equal(d.target_len, 0);
	assert_string_equal(d.target, "");
}

static void test_entry_link_and_dir_round_trip(void **state)
{
	static const uint8_t want[] = {
	    0x03, 0x00, 0x00, 0x00, 0x01, 0xff,		    /* LINK, no flags, 0777 */
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* size 0 */
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* mtime 0 */
	    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* atime 0 */
	    0x00, 0x03, 'd',  '/',  'l',		    /* path */
	    0x00, 0x04, '.',  '.',  '/',  't',		    /* target */
	};
	struct cp_entry e = {.type = CP_T_LINK, .mode = 0777, .path = "d/l", .target = "../t"}, d;
	uint8_t b[REC_CONTROL_MAX];
	int n;

	assert_int_equal(cp_entry_encode(&e, b, sizeof(b)), sizeof(want));
	assert_memory_equal(b, want, sizeof(want));
	assert_int_equal(cp_entry_decode(b, sizeof(want), &d), 0);
	assert_int_equal(d.type, CP_T_LINK);
	assert_string_equal(d.path, "d/l");
	assert_string_equal(d.target, "../t");
	assert_int_equal(d.target_len, 4);

	/* A source's root that names a directory's contents is "." */
	e = (struct cp_entry){.type = CP_T_DIR,
			      .flags = CP_E_TOP,
			      .mode = 07777,
			      .mtime_ns = -5,
			      .atime_ns = INT64_MAX,
			      .path = "."};
	n = cp_entry_encode(&e, b, sizeof(b));
	assert_int_equal(n, CP_ENTRY_FIXED + 1);
	assert_int_equal(cp_entry_decode(b, (size_t)n, &d), 0);
	assert_int_equal(d.type, CP_T_DIR);
	assert_int_equal(d.mode, 07777);
	assert_true(d.mtime_ns == -5);
	assert_true(d.atime_ns == INT64_MAX);
	assert_string_equal(d.path, ".");
}

static void test_entry_fills_a_control_record_and_no_more(void **state)
{
	static char path[CP_NAME_MAX + 2], target[CP_NAME_MAX + 1];
	struct cp_entry e = {.type = CP_T_LINK};
	uint8_t b[REC_CONTROL_MAX + 64];
	struct cp_entry d;

	memset(path, 'p', 600);
	memset(target, 't', CP_NAME_MAX - 600);
	memcpy(e.path, path, 601);
	memcpy(e.target, target, CP_NAME_MAX - 600 + 1);
	assert_int_equal(cp_entry_encode(&e, b, sizeof(b)), REC_CONTROL_MAX);
	assert_int_equal(cp_entry_decode(b, REC_CONTROL_MAX, &d), 0);
	assert_int_equal(d.path_len + d.target_len, CP_NAME_MAX);
	strcat(e.target, "t");
	assert_int_equal(cp_entry_encode(&e, b, sizeof(b)), -ENAMETOOLONG);
	e = (struct cp_entry){.type = CP_T_FILE};
	memset(e.path, 'p', CP_NAME_MAX);
	assert_int_equal(cp_entry_encode(&e, b, sizeof(b)), REC_CONTROL_MAX);
	assert_int_equal(cp_entry_encode(&e, b, REC_CONTROL_MAX - 1), -ENAMETOOLONG);
}

static void test_entry_decode_refuses_short_and_long_records(void **state)
{
	static char big[CP_NAME_MAX + 1];
	uint8_t b[2048];
	size_t n = entry_raw(b, CP_T_LINK, 0, 0777, 0, "a/b", 3, "t", 1);

	assert_int_equal(entry_dec(b, n), 0);
	for (size_t len = 0; len < n; len++)
		assert_int_equal(entry_dec(b, len), -EPROTO);
	b[n] = 0;
	assert_int_equal(entry_dec(b, n + 1), -EPROTO); /* a trailing byte */

	/* A path one byte past what a control record holds; then one that just fits. */
	memset(big, 'p', sizeof(big));
	n = entry_raw(b, CP_T_FILE, 0, 0644, 0, big, CP_NAME_MAX + 1, "", 0);
	assert_int_equal(n, REC_CONTROL_MAX + 1);
	assert_int_equal(entry_dec(b, n), -EPROTO);
	n = entry_raw(b, CP_T_FILE, 0, 0644, 0, big, CP_NAME_MAX, "", 0);
	assert_int_equal(n, REC_CONTROL_MAX);
	assert_int_equal(entry_dec(b, n), 0);
}

static void test_entry_decode_refuses_bad_types_flags_and_modes(void **state)
{
	entry_expect(-EPROTO, 0, 0, 0644, 0, "a", "");
	entry_expect(-EPROTO, 4, 0, 0644, 0, "a", "");
	entry_expect(-EPROTO, 0xff, 0, 0644, 0, "a", "");
	entry_expect(-EPROTO, CP_T_FILE, 0x02, 0644, 0, "a", "");
	entry_expect(-EPROTO, CP_T_FILE, 0x80, 0644, 0, "a", "");
	entry_expect(0, CP_T_FILE, 0, 07777, 0, "a", "");
	entry_expect(-EPROTO, CP_T_FILE, 0, 010000, 0, "a", "");
	entry_expect(-EPROTO, CP_T_FILE, 0, 0100644, 0, "a", ""); /* st_mode's type bits */
	entry_expect(-EPROTO, CP_T_DIR, 0, 0xffffffffu, 0, "a", "");
}

static void test_entry_decode_refuses_fields_a_type_does_not_carry(void **state)
{
	uint8_t b[256];
	size_t n;

	entry_expect(-EPROTO, CP_T_FILE, 0, 0644, 3, "a", "t");	    /* file with a target */
	entry_expect(-EPROTO, CP_T_DIR, 0, 0755, 0, "a", "t");	    /* directory with a target */
	entry_expect(-EPROTO, CP_T_DIR, 0, 0755, 1, "a", "");	    /* directory with a size */
	entry_expect(-EPROTO, CP_T_LINK, 0, 0777, 0, "a", "");	    /* link without a target */
	entry_expect(-EPROTO, CP_T_LINK, 0, 0777, 4, "a", "t");	    /* link with a size */
	entry_expect(0, CP_T_LINK, 0, 0777, 0, "a", "/etc/passwd"); /* a target is not followed */
	entry_expect(0, CP_T_FILE, 0, 0644, CP_SIZE_UNKNOWN, "a", "");
	n = entry_raw(b, CP_T_LINK, 0, 0777, 0, "a", 1, "t\0u", 3);
	assert_int_equal(entry_dec(b, n), -EPROTO); /* NUL in a target */
}

static void test_entry_decode_refuses_bad_paths(void **state)
{
	static const char *const bad[] = {"/etc/x", "..", "../x", "a/../../x", "a/..", "a//b",
					  "a/",	    "/",  "",	  ".",	       "./a",  "a/./b"};
	uint8_t b[256];
	size_t n;

	for (size_t i = 0; i < NELEM(bad); i++) {
		entry_expect(-EPROTO, CP_T_FILE, 0, 0644, 0, bad[i], "");
		entry_expect(-EPROTO, CP_T_DIR, 0, 0755, 0, bad[i], "");
	}
	n = entry_raw(b, CP_T_FILE, 0, 0644, 0, "a\0b", 3, "", 0);
	assert_int_equal(entry_dec(b, n), -EPROTO);
	entry_expect(0, CP_T_FILE, 0, 0644, 0, "..a/b../...", "");
}

static void test_entry_decode_allows_one_component_at_the_top(void **state)
{
	entry_expect(0, CP_T_FILE, CP_E_TOP, 0644, 0, "name", "");
	entry_expect(-EPROTO, CP_T_FILE, CP_E_TOP, 0644, 0, "a/b", "");
	entry_expect(-EPROTO, CP_T_DIR, CP_E_TOP, 0755, 0, "a/b", "");
	entry_expect(-EPROTO, CP_T_FILE, CP_E_TOP, 0644, 0, "a/", "");
	entry_expect(-EPROTO, CP_T_FILE, CP_E_TOP, 0644, 0, "/a", "");
	entry_expect(-EPROTO, CP_T_DIR, CP_E_TOP, 0755, 0, "..", "");
	/* "." only for a directory's contents, and only at the top. */
	entry_expect(0, CP_T_DIR, CP_E_TOP, 0755, 0, ".", "");
	entry_expect(-EPROTO, CP_T_FILE, CP_E_TOP, 0644, 0, ".", "");
	entry_expect(-EPROTO, CP_T_LINK, CP_E_TOP, 0777, 0, ".", "t");
	entry_expect(-EPROTO, CP_T_DIR, 0, 0755, 0, ".", "");
}

/* ---- END, TOTAL, RESULT, DONE ---- */

static void test_end_encodes_byte_exact_and_checks_its_length(void **state)
{
	static const uint8_t want[CP_END_LEN] = {
	    0x00, 0x00, 0x00, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x01,
	    0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	};
	struct cp_end e = {.code = 18, .bytes = 0x102}, d;
	uint8_t b[CP_END_LEN + 1];

	for (int i = 0; i < (int)CP_HASH_LEN; i++)
		e.hash[i] = (uint8_t)i;
	cp_end_encode(&e, b);
	assert_memory_equal(b, want, CP_END_LEN);
	assert_int_equal(cp_end_decode(b, CP_END_LEN, &d), 0);
	assert_int_equal(d.code, 18);
	assert_int_equal(d.bytes, 0x102);
	assert_memory_equal(d.hash, e.hash, CP_HASH_LEN);
	assert_int_equal(cp_end_decode(b, CP_END_LEN - 1, &d), -EPROTO);
	assert_int_equal(cp_end_decode(b, CP_END_LEN + 1, &d), -EPROTO);
	assert_int_equal(cp_end_decode(b, 0, &d), -EPROTO);
}

static void test_total_encodes_byte_exact_and_checks_its_length(void **state)
{
	static const uint8_t want[CP_TOTAL_LEN] = {0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 3};
	struct cp_total t = {.bytes = 1ull << 32, .entries = 3}, d;
	uint8_t b[CP_TOTAL_LEN + 1];

	cp_total_encode(&t, b);
	assert_memory_equal(b, want, CP_TOTAL_LEN);
	assert_int_equal(cp_total_decode(b, CP_TOTAL_LEN, &d), 0);
	assert_true(d.bytes == 1ull << 32);
	assert_int_equal(d.entries, 3);
	assert_int_equal(cp_total_decode(b, CP_TOTAL_LEN - 1, &d), -EPROTO);
	assert_int_equal(cp_total_decode(b, CP_TOTAL_LEN + 1, &d), -EPROTO);
}

static void test_done_encodes_byte_exact_and_checks_its_length(void **state)
{
	static const uint8_t want[CP_DONE_LEN] = {0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0,
						  0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2};
	struct cp_done x = {.entries = 2, .failed = 1, .bytes = 0x102}, d;
	uint8_t b[CP_DONE_LEN + 1];

	cp_done_encode(&x, b);
	assert_memory_equal(b, want, CP_DONE_LEN);
	assert_int_equal(cp_done_decode(b, CP_DONE_LEN, &d), 0);
	assert_int_equal(d.entries, 2);
	assert_int_equal(d.failed, 1);
	assert_int_equal(d.bytes, 0x102);
	assert_int_equal(cp_done_decode(b, CP_DONE_LEN - 1, &d), -EPROTO);
	assert_int_equal(cp_done_decode(b, CP_DONE_LEN + 1, &d), -EPROTO);
}

static void test_result_encodes_byte_exact(void **state)
{
	static const uint8_t want[] = {0x00, 0x00, 0x00, 0x0d, 0x00, 0x03, 'd', '/', 'f',
				       0x07, 'd',  'e',	 'n',  '?',  'i',  'e', 'd'};
	struct cp_result r;
	uint8_t b[REC_CONTROL_MAX];

	/* Text bytes outside printable ASCII go out as '?'. */
	assert_int_equal(cp_result_encode(13, "d/f", "den\nied", b, sizeof(b)), sizeof(want));
	assert_memory_equal(b, want, sizeof(want));
	assert_int_equal(cp_result_decode(b, sizeof(want), &r), 0);
	assert_int_equal(r.code, 13);
	assert_string_equal(r.path, "d/f");
	assert_string_equal(r.text, "den?ied");
}

static void test_result_shortens_a_long_path_to_fit(void **state)
{
	static char path[3000], text[400];
	uint8_t b[REC_CONTROL_MAX];
	struct cp_result r;
	int n;

	memset(path, 'p', sizeof(path) - 1);
	memset(text, 't', sizeof(text) - 1);
	n = cp_result_encode(18, path, text, b, sizeof(b));
	assert_int_equal(n, REC_CONTROL_MAX);
	assert_int_equal(wire_get_u16(b + 4), REC_CONTROL_MAX - 7 - CP_TEXT_MAX);
	assert_int_equal(cp_result_decode(b, (size_t)n, &r), 0);
	assert_int_equal(strlen(r.path), REC_CONTROL_MAX - 7 - CP_TEXT_MAX);
	assert_int_equal(strlen(r.text), CP_TEXT_MAX);
	assert_int_equal(cp_result_encode(18, "x", "y", b, 8), -E2BIG);
}

static void test_result_decode_refuses_bad_layouts_and_shows_only_printables(void **state)
{
	static uint8_t b[2048];
	struct cp_result r;
	size_t n;

	n = (size_t)cp_result_encode(12, "a", "no", b, sizeof(b));
	for (size_t len = 0; len < n; len++)
		assert_int_equal(cp_result_decode(b, len, &r), -EPROTO);
	b[n] = 0;
	assert_int_equal(cp_result_decode(b, n + 1, &r), -EPROTO); /* a trailing byte */
	wire_put_u32(b, 0);
	assert_int_equal(cp_result_decode(b, n, &r), -EPROTO); /* code 0 is no failure */

	/* A path as long as the whole record could be does not fit the decoded struct. */
	wire_put_u32(b, 18);
	wire_put_u16(b + 4, REC_CONTROL_MAX);
	memset(b + 6, 'p', REC_CONTROL_MAX);
	b[6 + REC_CONTROL_MAX] = 0;
	assert_int_equal(cp_result_decode(b, 7 + REC_CONTROL_MAX, &r), -EPROTO);

	n = 0;
	wire_put_u32(b, 13);
	n += 4;
	n += put_str(b + n, "a\033[2J\0\xff", 7);
	b[n++] = 2;
	b[n++] = '\n';
	b[n++] = 'x';
	assert_int_equal(cp_result_decode(b, n, &r), 0);
	assert_string_equal(r.path, "a?[2J??");
	assert_string_equal(r.text, "?x");
}

static void test_rec_hdr_is_type_and_u24_length(void **state)
{
	uint8_t b[REC_HDR_LEN];

	cp_rec_hdr(b, CP_REC_END, 0x010203);
	assert_memory_equal(b, "\x41\x01\x02\x03", REC_HDR_LEN);
	cp_rec_hdr(b, CP_REC_DATA, 0xffffff);
	assert_memory_equal(b, "\x01\xff\xff\xff", REC_HDR_LEN);
}

/* ---- paths ---- */

static void test_path_check_takes_relative_paths_only(void **state)
{
	static char big[CP_NAME_MAX + 2];

	assert_int_equal(cp_path_check("a", 1, false, false), 0);
	assert_int_equal(cp_path_check("a/b/c", 5, false, false), 0);
	assert_int_equal(cp_path_check(".hidden/..x/x..", 15, false, false), 0);
	assert_int_equal(cp_path_check("", 0, false, false), -EINVAL);
	assert_int_equal(cp_path_check("/a", 2, false, false), -EINVAL);
	assert_int_equal(cp_path_check("a/", 2, false, false), -EINVAL);
	assert_int_equal(cp_path_check("a//b", 4, false, false), -EINVAL);
	assert_int_equal(cp_path_check("..", 2, false, false), -EINVAL);
	assert_int_equal(cp_path_check("a/..", 4, false, false), -EINVAL);
	assert_int_equal(cp_path_check("../a", 4, false, false), -EINVAL);
	assert_int_equal(cp_path_check("a/../b", 6, false, false), -EINVAL);
	assert_int_equal(cp_path_check(".", 1, false, true), -EINVAL);
	assert_int_equal(cp_path_check("a/./b", 5, false, true), -EINVAL);
	assert_int_equal(cp_path_check("a\0b", 3, false, false), -EINVAL);
	/* The length is what counts, not a NUL: "a" followed by a NUL is two bytes. */
	assert_int_equal(cp_path_check("a", 2, false, false), -EINVAL);
	memset(big, 'p', sizeof(big) - 1);
	assert_int_equal(cp_path_check(big, CP_NAME_MAX, false, false), 0);
	assert_int_equal(cp_path_check(big, CP_NAME_MAX + 1, false, false), -EINVAL);
	assert_int_equal(cp_path_check(big, CP_NAME_MAX, true, false), 0);
	assert_int_equal(cp_path_check(big, CP_NAME_MAX + 1, true, false), -EINVAL);
}

static void test_path_check_top_is_one_component(void **state)
{
	assert_int_equal(cp_path_check("a", 1, true, false), 0);
	assert_int_equal(cp_path_check("a/b", 3, true, false), -EINVAL);
	assert_int_equal(cp_path_check("a/", 2, true, false), -EINVAL);
	assert_int_equal(cp_path_check("/", 1, true, true), -EINVAL);
	assert_int_equal(cp_path_check(".", 1, true, false), -EINVAL);
	assert_int_equal(cp_path_check(".", 1, true, true), 0);
	assert_int_equal(cp_path_check("..", 2, true, true), -EINVAL);
	assert_int_equal(cp_path_check("", 0, true, true), -EINVAL);
}

static void top_name_is(const char *src, const char *want)
{
	char out[CP_NAME_MAX + 1];

	assert_int_equal(cp_top_name(src, out, sizeof(out)), 0);
	assert_string_equal(out, want);
}

static void test_top_name_is_the_last_component(void **state)
{
	top_name_is("file", "file");
	top_name_is("/a/b/c.txt", "c.txt");
	top_name_is("./x", "x");
	top_name_is("a/b/", "b");
	top_name_is("a///", "a");
	top_name_is("/etc//", "etc");
	top_name_is("..a", "..a");
	top_name_is(".hidden", ".hidden");
}

static void test_top_name_of_a_directory_s_contents_is_dot(void **state)
{
	top_name_is("/", ".");
	top_name_is("///", ".");
	top_name_is(".", ".");
	top_name_is("./", ".");
	top_name_is("..", ".");
	top_name_is("../", ".");
	top_name_is("dir/.", ".");
	top_name_is("dir/./", ".");
	top_name_is("dir/..", ".");
	top_name_is("", ".");
}

static void test_top_name_refuses_what_does_not_fit(void **state)
{
	static char big[CP_NAME_MAX + 8];
	char out[8];
	static char out_big[CP_NAME_MAX + 8];

	assert_int_equal(cp_top_name("abcdefgh", out, sizeof(out)), -ENAMETOOLONG);
	assert_int_equal(cp_top_name("/x/abcdefg", out, sizeof(out)), 0);
	assert_string_equal(out, "abcdefg");
	memset(big, 'n', CP_NAME_MAX + 1);
	assert_int_equal(cp_top_name(big, out_big, sizeof(out_big)), -ENAMETOOLONG);
	big[CP_NAME_MAX] = '\0';
	assert_int_equal(cp_top_name(big, out_big, sizeof(out_big)), 0);
	assert_int_equal(strlen(out_big), CP_NAME_MAX);
}

/* ---- cp_cli_split ---- */

static void split_remote(const char *arg, const char *vm, const char *path)
{
	char got[256] = "";
	const char *p = NULL;

	assert_int_equal(cp_cli_split(arg, got, sizeof(got), &p), 1);
	assert_string_equal(got, vm);
	assert_non_null(p);
	assert_string_equal(p, path);
}

static void split_local(const char *arg)
{
	char got[256] = "";
	const char *p = NULL;

	assert_int_equal(cp_cli_split(arg, got, sizeof(got), &p), 0);
	assert_null(p);
}

static void test_split_vm_and_cid(void **state)
{
	split_remote("lab1:/tmp/x", "lab1", "/tmp/x");
	split_remote("lab1:rel/p", "lab1", "rel/p");
	split_remote("lab1:", "lab1", ".");
	split_remote("3:/etc/hosts", "3", "/etc/hosts");
	split_remote("web-7:a:b", "web-7", "a:b"); /* the first ':' splits */
}

static void test_split_uris(void **state)
{
	split_remote("[unix:///run/vm.sock]:/tmp", "unix:///run/vm.sock", "/tmp");
	split_remote("[vsock://3:1024]:", "vsock://3:1024", ".");
	split_remote("[vsock://3:1024]:rel", "vsock://3:1024", "rel");
	split_remote("unix:///run/vm.sock:/tmp/x", "unix:///run/vm.sock", "/tmp/x");
	split_remote("vsock://3:1024:/etc/hosts", "vsock://3:1024", "/etc/hosts");
	split_remote("hybrid:///run/fc/v.sock:1234:/x", "hybrid:///run/fc/v.sock:1234", "/x");
}

static void test_split_local_paths(void **state)
{
	split_local("-");
	split_local("./a:b");
	split_local("/x");
	split_local("/a/b:c");
	split_local("plain");
	split_local(":x");
	split_local("dir/x://y");
}

static void test_split_refuses_uris_without_a_path(void **state)
{
	char vm[256], small[4];
	const char *p;

	assert_int_equal(cp_cli_split("vsock://3:1024", vm, sizeof(vm), &p), -EINVAL);
	assert_int_equal(cp_cli_split("unix:///run/vm.sock", vm, sizeof(vm), &p), -EINVAL);
	assert_int_equal(cp_cli_split("[vsock://3:1024", vm, sizeof(vm), &p), -EINVAL);
	assert_int_equal(cp_cli_split("[vsock://3:1024]", vm, sizeof(vm), &p), -EINVAL);
	assert_int_equal(cp_cli_split("[]:/x", vm, sizeof(vm), &p), -EINVAL);
	assert_int_equal(cp_cli_split("long:/x", small, sizeof(small), &p), -EINVAL);
	assert_int_equal(cp_cli_split("abc:/x", small, sizeof(small), &p), 1);
	assert_string_equal(small, "abc");
}

/* ---- the FILE vectors of docs/protocol.md ---- */

struct cp_vec {
	char name[32];
	uint8_t b[512];
	size_t len;
};

static struct cp_vec cp_vecs[16];
static int cp_nvecs;

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Parses "NAME: xx xx ..." (after "cp-vector "); returns 0 or -1 for a malformed line. */
static int cp_vec_parse(const char *s, struct cp_vec *v)
{
	size_t n = strcspn(s, ":");

	if (!n || n >= sizeof(v->name) || s[n] != ':')
		return -1;
	memcpy(v->name, s, n);
	v->name[n] = '\0';
	v->len = 0;
	for (s += n + 1;;) {
		while (*s == ' ')
			s++;
		if (!*s || *s == '\n')
			return v->len ? 0 : -1;
		if (hex_digit(s[0]) < 0 || hex_digit(s[1]) < 0 || v->len == sizeof(v->b))
			return -1;
		v->b[v->len++] = (uint8_t)(hex_digit(s[0]) << 4 | hex_digit(s[1]));
		s += 2;
	}
}

static void cp_vecs_load(void)
{
	FILE *f = fopen(SPEC_PATH, "r");
	char line[4096];

	assert_non_null(f);
	cp_nvecs = 0;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "cp-vector ", 10))
			continue;
		assert_true(cp_nvecs < (int)NELEM(cp_vecs));
		assert_int_equal(cp_vec_parse(line + 10, &cp_vecs[cp_nvecs]), 0);
		cp_nvecs++;
	}
	fclose(f);
}

static const struct cp_vec *cp_vec(const char *name)
{
	for (int i = 0; i < cp_nvecs; i++)
		if (!strcmp(cp_vecs[i].name, name))
			return &cp_vecs[i];
	fail_msg("cp-vector %s is missing from %s", name, SPEC_PATH);
	return NULL;
}

/* A whole record: checks its header and returns its payload. */
static const uint8_t *cp_vec_rec(const char *name, uint8_t type, size_t *len)
{
	const struct cp_vec *v = cp_vec(name);

	assert_true(v->len >= REC_HDR_LEN);
	assert_int_equal(v->b[0], type);
	assert_int_equal((v->b[1] << 16) | (v->b[2] << 8) | v->b[3], v->len - REC_HDR_LEN);
	*len = v->len - REC_HDR_LEN;
	return v->b + REC_HDR_LEN;
}

/* Decodes a vector's ENTRY, checks it and encodes it again to the same bytes. */
static void cp_vec_entry(const char *name, const struct cp_entry *want)
{
	uint8_t out[REC_CONTROL_MAX];
	struct cp_entry e;
	size_t n;
	const uint8_t *p = cp_vec_rec(name, CP_REC_ENTRY, &n);

	assert_int_equal(cp_entry_decode(p, n, &e), 0);
	assert_int_equal(e.type, want->type);
	assert_int_equal(e.flags, want->flags);
	assert_int_equal(e.mode, want->mode);
	assert_true(e.size == want->size);
	assert_true(e.mtime_ns == want->mtime_ns);
	assert_true(e.atime_ns == want->atime_ns);
	assert_string_equal(e.path, want->path);
	assert_string_equal(e.target, want->target);
	assert_int_equal(cp_entry_encode(&e, out, sizeof(out)), n);
	assert_memory_equal(out, p, n);
}

static void test_spec_requests_decode_to_their_meaning(void **state)
{
	const struct cp_vec *v;
	uint8_t out[64];
	struct cp_req q;
	void *mem;

	cp_vecs_load();
	assert_int_equal(cp_nvecs, 10);
	v = cp_vec("req_get");
	req_ok(v->b, v->len, &q, &mem);
	assert_int_equal(q.dir, CP_GET);
	assert_int_equal(q.flags, CP_F_RECURSIVE | CP_F_TOTAL);
	assert_int_equal(q.count, 1);
	assert_string_equal(q.paths[0], "/srv/d");
	assert_int_equal(cp_req_encode(&q, out, sizeof(out)), v->len);
	assert_memory_equal(out, v->b, v->len);
	free(mem);
	v = cp_vec("req_put");
	req_ok(v->b, v->len, &q, &mem);
	assert_int_equal(q.dir, CP_PUT);
	assert_int_equal(q.flags, CP_F_RECURSIVE | CP_F_PRESERVE);
	assert_string_equal(q.paths[0], "/tmp/x");
	assert_int_equal(cp_req_encode(&q, out, sizeof(out)), v->len);
	assert_memory_equal(out, v->b, v->len);
	free(mem);
}

static void test_spec_records_decode_to_their_meaning(void **state)
{
	const struct cp_entry dir = {.type = CP_T_DIR,
				     .flags = CP_E_TOP,
				     .mode = 0755,
				     .mtime_ns = 1000000000,
				     .atime_ns = -1,
				     .path = "d"};
	const struct cp_entry file = {.type = CP_T_FILE,
				      .mode = 0644,
				      .size = 5,
				      .mtime_ns = 1000000000,
				      .atime_ns = 1000000000,
				      .path = "f"};
	const struct cp_entry link = {.type = CP_T_LINK,
				      .mode = 0777,
				      .mtime_ns = 1000000000,
				      .atime_ns = 1000000000,
				      .path = "l",
				      .target = "f"};
	uint8_t out[REC_CONTROL_MAX];
	XXH128_canonical_t hello;
	struct cp_result res;
	struct cp_total t;
	struct cp_done d;
	struct cp_end e;
	const uint8_t *p;
	size_t n;

	cp_vecs_load();
	p = cp_vec_rec("total", CP_REC_TOTAL, &n);
	assert_int_equal(cp_total_decode(p, n, &t), 0);
	assert_int_equal(t.bytes, 5);
	assert_int_equal(t.entries, 3);
	cp_vec_entry("entry_dir", &dir);
	cp_vec_entry("entry_file", &file);
	p = cp_vec_rec("data", CP_REC_DATA, &n);
	assert_int_equal(n, 5);
	assert_memory_equal(p, "hello", 5);

	/* The hash is XXH3-128 in canonical form, as xxh128sum prints it. */
	p = cp_vec_rec("end", CP_REC_END, &n);
	assert_int_equal(cp_end_decode(p, n, &e), 0);
	assert_int_equal(e.code, 0);
	assert_int_equal(e.bytes, 5);
	XXH128_canonicalFromHash(&hello, XXH3_128bits("hello", 5));
	assert_memory_equal(e.hash, hello.digest, CP_HASH_LEN);
	cp_end_encode(&e, out);
	assert_memory_equal(out, p, n);

	cp_vec_entry("entry_link", &link);
	p = cp_vec_rec("result", CP_REC_RESULT, &n);
	assert_int_equal(cp_result_decode(p, n, &res), 0);
	assert_int_equal(res.code, 4);
	assert_string_equal(res.path, "/srv/d/p");
	assert_string_equal(res.text, "not a regular file, directory or symbolic link: skipped");
	assert_int_equal(cp_result_encode(res.code, res.path, res.text, out, sizeof(out)), n);
	assert_memory_equal(out, p, n);
	p = cp_vec_rec("done", CP_REC_DONE, &n);
	assert_int_equal(cp_done_decode(p, n, &d), 0);
	assert_int_equal(d.entries, 3);
	assert_int_equal(d.failed, 1);
	assert_int_equal(d.bytes, 5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_req_put_encodes_byte_exact),
	    cmocka_unit_test(test_req_get_round_trips),
	    cmocka_unit_test(test_req_takes_the_largest_path_and_most_sources),
	    cmocka_unit_test(test_req_encode_refuses_what_does_not_fit),
	    cmocka_unit_test(test_req_decode_refuses_short_requests),
	    cmocka_unit_test(test_req_decode_refuses_a_request_over_its_limit),
	    cmocka_unit_test(test_req_decode_refuses_bad_counts_dirs_and_flags),
	    cmocka_unit_test(test_req_decode_refuses_bad_paths),
	    cmocka_unit_test(test_entry_file_encodes_byte_exact),
	    cmocka_unit_test(test_entry_link_and_dir_round_trip),
	    cmocka_unit_test(test_entry_fills_a_control_record_and_no_more),
	    cmocka_unit_test(test_entry_decode_refuses_short_and_long_records),
	    cmocka_unit_test(test_entry_decode_refuses_bad_types_flags_and_modes),
	    cmocka_unit_test(test_entry_decode_refuses_fields_a_type_does_not_carry),
	    cmocka_unit_test(test_entry_decode_refuses_bad_paths),
	    cmocka_unit_test(test_entry_decode_allows_one_component_at_the_top),
	    cmocka_unit_test(test_end_encodes_byte_exact_and_checks_its_length),
	    cmocka_unit_test(test_total_encodes_byte_exact_and_checks_its_length),
	    cmocka_unit_test(test_done_encodes_byte_exact_and_checks_its_length),
	    cmocka_unit_test(test_result_encodes_byte_exact),
	    cmocka_unit_test(test_result_shortens_a_long_path_to_fit),
	    cmocka_unit_test(test_result_decode_refuses_bad_layouts_and_shows_only_printables),
	    cmocka_unit_test(test_rec_hdr_is_type_and_u24_length),
	    cmocka_unit_test(test_path_check_takes_relative_paths_only),
	    cmocka_unit_test(test_path_check_top_is_one_component),
	    cmocka_unit_test(test_top_name_is_the_last_component),
	    cmocka_unit_test(test_top_name_of_a_directory_s_contents_is_dot),
	    cmocka_unit_test(test_top_name_refuses_what_does_not_fit),
	    cmocka_unit_test(test_split_vm_and_cid),
	    cmocka_unit_test(test_split_uris),
	    cmocka_unit_test(test_split_local_paths),
	    cmocka_unit_test(test_split_refuses_uris_without_a_path),
	    cmocka_unit_test(test_spec_requests_decode_to_their_meaning),
	    cmocka_unit_test(test_spec_records_decode_to_their_meaning),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
