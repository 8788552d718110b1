/* Unit tests for the frame codec: the test vectors of docs/protocol.md and hostile input. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "core/err.h"
#include "core/frame.h"
#include "core/wire.h"

#ifndef VB_SOURCE_DIR
#define VB_SOURCE_DIR "."
#endif
#define SPEC_PATH VB_SOURCE_DIR "/docs/protocol.md"

#define NELEM(a)  (sizeof(a) / sizeof((a)[0]))
#define VEC_MAX	  64
#define VEC_BYTES 1024

/* ---- the vectors, read from the spec ---- */

struct vec {
	char name[32];
	uint8_t b[VEC_BYTES];
	size_t len;
};

static struct vec vecs[VEC_MAX];
static int nvecs;

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parses "NAME: xx xx ..." (after "vector "); returns 0 or -1 for a malformed line. */
static int vec_parse(const char *s, struct vec *v)
{
	size_t n = strcspn(s, ":");

	if (!n || n >= sizeof(v->name) || s[n] != ':')
		return -1;
	memcpy(v->name, s, n);
	v->name[n] = '\0';
	s += n + 1;
	v->len = 0;
	for (;;) {
		while (*s == ' ')
			s++;
		if (!*s || *s == '\n' || *s == '\r')
			return v->len ? 0 : -1;
		if (hex_digit(s[0]) < 0 || hex_digit(s[1]) < 0 || v->len == sizeof(v->b))
			return -1;
		v->b[v->len++] = (uint8_t)(hex_digit(s[0]) << 4 | hex_digit(s[1]));
		s += 2;
		if (*s && *s != ' ' && *s != '\n' && *s != '\r')
			return -1;
	}
}

/* Group setup: every line of the spec that starts with "vector " is one vector. */
static int vectors_load(void **state)
{
	FILE *f = fopen(SPEC_PATH, "r");
	char line[8192];
	int lineno = 0;

	if (!f) {
		fprintf(stderr, "cannot open %s\n", SPEC_PATH);
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		const char *s = line;

		lineno++;
		while (*s == ' ' || *s == '\t')
			s++;
		if (strncmp(s, "vector ", 7))
			continue;
		if (nvecs == VEC_MAX || vec_parse(s + 7, &vecs[nvecs])) {
			fprintf(stderr, "%s:%d: malformed vector line\n", SPEC_PATH, lineno);
			fclose(f);
			return -1;
		}
		nvecs++;
	}
	fclose(f);
	return 0;
}

static const struct vec *vec_find(const char *name)
{
	const struct vec *found = NULL;

	for (int i = 0; i < nvecs; i++) {
		if (!strcmp(vecs[i].name, name)) {
			assert_null(found); /* each name once */
			found = &vecs[i];
		}
	}
	if (!found)
		fail_msg("vector %s is missing from %s", name, SPEC_PATH);
	return found;
}

/* ---- decoding each vector to its documented meaning ---- */

/*
 * A check asserts the decoded fields of one vector and encodes them again
 * into out (header and payload); it returns the length encoded.
 */
typedef size_t (*vec_check_fn)(const struct frame_hdr *h, const uint8_t *p, uint8_t *out);

static size_t encode_hdr(uint8_t *out, const struct frame_hdr *h, int payload_len)
{
	assert_true(payload_len >= 0);
	frame_hdr_encode(out, h->type, h->flags, h->stream, (uint32_t)payload_len);
	return FRAME_HDR_LEN + (size_t)payload_len;
}

static size_t encode_raw(uint8_t *out, const struct frame_hdr *h, const void *p, size_t len)
{
	memcpy(out + FRAME_HDR_LEN, p, len);
	return encode_hdr(out, h, (int)len);
}

static size_t check_hello(const struct frame_hdr *h, const uint8_t *p, uint8_t *out)
{
	struct frame_hello hello;

	assert_int_equal(h->type, FRAME_HELLO);
	assert_int_equal(h->flags, 0);
	assert_int_equal(h->stream, 0);
	assert_int_equal(h->len, 28);
	assert_int_equal(frame_hello_decode(p, h->len, &hello), 0);
	assert_int_equal(hello.min_version, 1);
	assert_int_equal(hello.max_version, 1);
	assert_int_equal(hello.max_frame, 65536);
	assert_int_equal(hello.max_streams, 1024);
	assert_int_equal(hello.caps, FRAME_CAP_CONTROL | FRAME_CAP_EXEC | FRAME_CAP_FILE |
					 FRAME_CAP_TCP | FRAME_CAP_VNET);
	assert_int_equal(hello.role, FRAME_ROLE_AGENT);
	assert_int_equal(hello.name_len, 2);
	assert_string_equal(hello.name, "vb");
	return encode_hdr(out, h, frame_hello_encode(out + FRAME_HDR_LEN, FRAME_HELLO_MAX, &hello));
}

static size_t check_open_common(const struct frame_hdr *h, const uint8_t *p, uint8_t *out,
				uint32_t stream, uint16_t kind, uint16_t flags, const char *req)
{
	struct frame_open o;

	assert_int_equal(h->type, FRAME_OPEN);
	assert_int_equal(h->flags, 0);
	assert_int_equal(h->stream, stream);
	assert_int_equal(frame_open_decode(p, h->len, &o), 0);
	assert_int_equal(o.kind, kind);
	assert_int_equal(o.flags, flags);
	assert_int_equal(o.req_len, strlen(req));
	assert_memory_equal(o.req, req, o.req_len);
	return encode_hdr(out, h,
			  frame_open_encode(out + FRAME_HDR_LEN, FRAME_CTL_MAX, o.kind, o.flags,
					    o.req, o.req_len));
}

static size_t check_open(const struct frame_hdr *h, const uint8_t *p, uint8_t *out)
{
	return check_open_common(h, p, out, 1, 4, FRAME_OPEN_INTERACTIVE, "hi");
}

static size_t check_open_dgram(const struct frame_hdr *h, const uint8_t *p, uint8_t *out)
{
	return check_open_common(h, p, out, 2, 7, FRAME_OPEN_DGRAM, "");
}

static size_t check_accept(const struct frame_hdr *h, const uint8_t *p, uint8_t *out)
{
	assert_int_equal(h->type, FRAME_ACCEPT);
	assert_int_equal(h->flags, 0);
	assert_int_equal(h->stream, 1);
	assert_int_equal(h->len, 2);
	assert_memory_equal(p, "ok", 2);
	return encode_raw(out, h, p, h->len);
}

static size_t check_reason_common(const struct frame_hdr *h, const uint8_t *p, uint8_t *out,
				  uint32_t code, uint32_t last_stream, const char *text)
{
	struct frame_reason r;

	assert_int_equal(h->flags, 0);
	assert_int_equal(frame_reason_decode(p, h->len, h->type, &r), 0);
	assert_int_equal(r.code, code);
	assert_int_equal(r.last_stream, last_stream);
	assert_string_equal(r.text, text);
	return encode_hdr(
	    out, h,
	    frame_reason_encode(out + FRAME_HDR_LEN, 300, h->type, r.code, r.last_stream, r.text));
}

static size_t check_refuse(const struct frame_hdr *h, const uint8_t *p, uint8_t *out)
{
	assert_int_equal(h->type, FRAME_REFUSE);
	assert_int_equal(h->stream, 3);
	assert_int_equal(h->len, 20);
	return check_reason_common(h, p, out, VB_WERR_NOENT, 0, "no such program");
}

static size_t check_data_common(const struct frame_hdr *h, const uint8_t *p, uint8_t *out,
				uint8_t flags, uint32_t stream, const char *payload)
{
	assert_int_equal(h->type, FRAME_DATA);
	assert_int_equal(h->flags, flags);
	assert_int_equal(h->stream, stream);
	assert_int_equal(h->len, strlen(payload));
	assert_memory_equal(p, payload, h->len);
	return encode_raw(out, h, p, h->len);
}

static size_t check_data(const struct frame_hdr *h, const uint8_t *p, uint8_t *out)
{
	return check_data_common(h, p, out, 0, 1, "hello");
}

static size_t check_data_fin(const struct frame_hdr *h, const uint8_t *p, uint8_t *out)
{
	return check_data_common(h, p, out, FRAME_F_FIN, 1, "bye");
}

static size_t check_fin(const struct frame_hdr *h, const uint8_t *p, uint8_t *out)
{
	return check_data_common(h, p, out, FRAME_F_FIN, 2, "");
}

static size_t check_u32_common(const struct frame_hdr *h, const uint8_t *p, uint8_t *out,
			       uint8_t type, uint32_t stream, uint32_t value)
{
	uint32_t v;

	assert_int_equal(h->type, type);
	assert_int_equal(h->flags, 0);
	assert_int_equal(h->stream, stream);
	assert_int_equal(frame_u32_decode(p, h->len, &v), 0);
	assert_int_equal(v, value);
	wire_put_u32(out + FRAME_HDR_LEN, v);
	return encode_hdr(out, h, 4);
}

static size_t check_window(const struct frame_hdr *h, const uint8_t *p, uint8_t *out)
{
	return check_u32_common(h, p, out, FRAME_WINDOW, 2, 65536);
}

static size_t check_reset(const struct frame_hdr *h, const uint8_t *p, uint8_t *out)
{
	return check_u32_common(h, p, out, FRAME_RESET, 1, VB_WERR_CANCELLED);
}

static size_t check_ping_common(const struct frame_hdr *h, const uint8_t *p, uint8_t *out,
				uint8_t flags)
{
	uint64_t stamp;

	assert_int_equal(h->type, FRAME_PING);
	assert_int_equal(h->flags, flags);
	assert_int_equal(h->stream, 0);
	assert_int_equal(frame_u64_decode(p, h->len, &stamp), 0);
	assert_int_equal(stamp, 0x0000000123456789ull);
	wire_put_u64(out + FRAME_HDR_LEN, stamp);
	return encode_hdr(out, h, 8);
}

static size_t check_ping(const struct frame_hdr *h, const uint8_t *p, uint8_t *out)
{
	return check_ping_common(h, p, out, 0);
}

static size_t check_pong(const struct frame_hdr *h, const uint8_t *p, uint8_t *out)
{
	return check_ping_common(h, p, out, FRAME_F_ACK);
}

static size_t check_goaway(const struct frame_hdr *h, const uint8_t *p, uint8_t *out)
{
	assert_int_equal(h->type, FRAME_GOAWAY);
	assert_int_equal(h->stream, 0);
	assert_int_equal(h->len, 12);
	return check_reason_common(h, p, out, VB_WERR_SHUTDOWN, 7, "bye");
}

static const struct {
	const char *name;
	vec_check_fn check;
} vec_checks[] = {
    {"hello", check_hello},	  {"open", check_open},	    {"open_dgram", check_open_dgram},
    {"accept", check_accept},	  {"refuse", check_refuse}, {"data", check_data},
    {"data_fin", check_data_fin}, {"fin", check_fin},	    {"window", check_window},
    {"reset", check_reset},	  {"ping", check_ping},	    {"pong", check_pong},
    {"goaway", check_goaway},
};

/* Decodes vector name, checks its meaning, encodes it again and compares the bytes. */
static void vector_check(const char *name, vec_check_fn check)
{
	const struct vec *v = vec_find(name);
	struct frame_hdr h;
	uint8_t out[VEC_BYTES + FRAME_HDR_LEN];
	uint8_t *payload;
	size_t n;

	assert_true(v->len >= FRAME_HDR_LEN);
	assert_int_equal(frame_hdr_decode(v->b, &h), 0);
	assert_int_equal(v->len, FRAME_HDR_LEN + h.len); /* one whole frame, nothing after it */
	payload = malloc(h.len + 1);			 /* exactly sized, for ASan */
	assert_non_null(payload);
	memcpy(payload, v->b + FRAME_HDR_LEN, h.len);
	n = check(&h, payload, out);
	free(payload);
	assert_int_equal(n, v->len);
	assert_memory_equal(out, v->b, v->len);
}

static void test_spec_lists_exactly_the_vectors_this_test_knows(void **state)
{
	assert_int_equal(nvecs, NELEM(vec_checks));
	for (size_t i = 0; i < NELEM(vec_checks); i++)
		vec_find(vec_checks[i].name);
}

#define VECTOR_TEST(name)                                                                          \
	static void test_vector_##name##_decodes_to_its_meaning_and_encodes_back(void **state)     \
	{                                                                                          \
		vector_check(#name, check_##name);                                                 \
	}

VECTOR_TEST(hello)
VECTOR_TEST(open)
VECTOR_TEST(open_dgram)
VECTOR_TEST(accept)
VECTOR_TEST(refuse)
VECTOR_TEST(data)
VECTOR_TEST(data_fin)
VECTOR_TEST(fin)
VECTOR_TEST(window)
VECTOR_TEST(reset)
VECTOR_TEST(ping)
VECTOR_TEST(pong)
VECTOR_TEST(goaway)

/* ---- the header ---- */

static void test_header_round_trips_extreme_values(void **state)
{
	uint8_t b[FRAME_HDR_LEN];
	struct frame_hdr h;

	frame_hdr_encode(b, 0xff, 0xff, 0xffffffffu, 0xffffffffu);
	assert_int_equal(b[2], 0);
	assert_int_equal(b[3], 0);
	assert_int_equal(frame_hdr_decode(b, &h), 0);
	assert_int_equal(h.type, 0xff);
	assert_int_equal(h.flags, 0xff);
	assert_int_equal(h.stream, 0xffffffffu);
	assert_int_equal(h.len, 0xffffffffu);
}

static void test_header_is_big_endian(void **state)
{
	static const uint8_t want[FRAME_HDR_LEN] = {4,	  1,	0,    0,    0x12, 0x34,
						    0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0};
	uint8_t b[FRAME_HDR_LEN];

	frame_hdr_encode(b, FRAME_DATA, FRAME_F_FIN, 0x12345678u, 0x9abcdef0u);
	assert_memory_equal(b, want, sizeof(want));
}

static void test_header_with_any_reserved_bit_set_is_rejected(void **state)
{
	for (int bit = 0; bit < 16; bit++) {
		uint8_t b[FRAME_HDR_LEN];
		struct frame_hdr h;

		frame_hdr_encode(b, FRAME_PING, 0, 0, 8);
		b[2 + bit / 8] |= (uint8_t)(1u << (bit % 8));
		assert_int_equal(frame_hdr_decode(b, &h), -EPROTO);
	}
}

static void test_frame_type_names(void **state)
{
	static const char *const names[] = {"HELLO",  "OPEN",  "ACCEPT", "REFUSE", "DATA",
					    "WINDOW", "RESET", "PING",	 "GOAWAY"};

	assert_int_equal(NELEM(names), FRAME_TYPE_COUNT);
	for (int t = 0; t < FRAME_TYPE_COUNT; t++)
		assert_string_equal(frame_type_name((uint8_t)t), names[t]);
	assert_string_equal(frame_type_name(FRAME_TYPE_COUNT), "unknown");
	assert_string_equal(frame_type_name(0xff), "unknown");
}

/* ---- truncation: every decoder, every shorter length ---- */

/* Copies n bytes into an exactly sized buffer, so that ASan sees any read past n. */
static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
	uint8_t *b = malloc(n ? n : 1);

	assert_non_null(b);
	memcpy(b, p, n);
	return b;
}

static const uint8_t *vec_payload(const char *name, size_t *len)
{
	const struct vec *v = vec_find(name);

	*len = v->len - FRAME_HDR_LEN;
	return v->b + FRAME_HDR_LEN;
}

static void test_hello_decoder_rejects_every_truncation(void **state)
{
	size_t len;
	const uint8_t *p = vec_payload("hello", &len);

	for (size_t n = 0; n < len; n++) {
		uint8_t *b = exact_copy(p, n);
		struct frame_hello h;

		assert_int_equal(frame_hello_decode(b, n, &h), -EPROTO);
		free(b);
	}
}

static void test_hello_with_bad_magic_is_rejected(void **state)
{
	size_t len;
	const uint8_t *p = vec_payload("hello", &len);

	for (int i = 0; i < 4; i++) {
		uint8_t *b = exact_copy(p, len);
		struct frame_hello h;

		b[i] ^= 0x20; /* "vMBF", "VmBF", ...: close but wrong */
		assert_int_equal(frame_hello_decode(b, len, &h), -EPROTO);
		free(b);
	}
}

static void test_hello_accepts_trailing_bytes_for_later_versions(void **state)
{
	size_t len;
	const uint8_t *p = vec_payload("hello", &len);
	uint8_t b[64];
	struct frame_hello h;

	memcpy(b, p, len);
	memset(b + len, 0xee, 10);
	assert_int_equal(frame_hello_decode(b, len + 10, &h), 0);
	assert_string_equal(h.name, "vb");
}

static void test_hello_name_with_nonprintable_bytes_is_sanitized(void **state)
{
	static const uint8_t name[] = {'a', 0x00, 0x1b, '\n', 0x7f, 0x80, 0xff, ' ', '~', 'z'};
	size_t len;
	const uint8_t *p = vec_payload("hello", &len);
	uint8_t b[64];
	struct frame_hello h;

	memcpy(b, p, 25);
	b[25] = sizeof(name);
	memcpy(b + 26, name, sizeof(name));
	assert_int_equal(frame_hello_decode(b, 26 + sizeof(name), &h), 0);
	assert_int_equal(h.name_len, sizeof(name));
	assert_string_equal(h.name, "a?????? ~z");
}

static void test_hello_name_of_255_bytes_round_trips(void **state)
{
	struct frame_hello in = {.min_version = 1, .max_version = 3, .max_frame = 16384};
	struct frame_hello out;
	uint8_t b[FRAME_HELLO_MAX];
	int n;

	memset(in.name, 'n', FRAME_TEXT_MAX);
	n = frame_hello_encode(b, sizeof(b), &in);
	assert_int_equal(n, 26 + FRAME_TEXT_MAX);
	assert_int_equal(b[25], FRAME_TEXT_MAX);
	assert_int_equal(frame_hello_decode(b, (size_t)n, &out), 0);
	assert_int_equal(out.name_len, FRAME_TEXT_MAX);
	assert_string_equal(out.name, in.name);
	assert_int_equal(out.max_version, 3);
}

static void test_open_decoder_rejects_fewer_than_four_bytes(void **state)
{
	size_t len;
	const uint8_t *p = vec_payload("open", &len);
	struct frame_open o;

	for (size_t n = 0; n < 4; n++) {
		uint8_t *b = exact_copy(p, n);

		assert_int_equal(frame_open_decode(b, n, &o), -EPROTO);
		free(b);
	}
	assert_int_equal(frame_open_decode(p, 4, &o), 0); /* kind and flags, empty request */
	assert_int_equal(o.req_len, 0);
	assert_ptr_equal(o.req, p + 4);
}

static void reason_truncations(const char *name, uint8_t type)
{
	size_t len;
	const uint8_t *p = vec_payload(name, &len);
	struct frame_reason r;
	uint8_t *b;

	for (size_t n = 0; n < len; n++) {
		b = exact_copy(p, n);
		assert_int_equal(frame_reason_decode(b, n, type, &r), -EPROTO);
		free(b);
	}
	b = malloc(len + 1); /* a trailing byte is as wrong as a missing one */
	assert_non_null(b);
	memcpy(b, p, len);
	b[len] = 'x';
	assert_int_equal(frame_reason_decode(b, len + 1, type, &r), -EPROTO);
	free(b);
}

static void test_refuse_decoder_rejects_every_truncation_and_trailing_bytes(void **state)
{
	reason_truncations("refuse", FRAME_REFUSE);
}

static void test_goaway_decoder_rejects_every_truncation_and_trailing_bytes(void **state)
{
	reason_truncations("goaway", FRAME_GOAWAY);
}

static void test_reason_text_with_nonprintable_bytes_is_sanitized(void **state)
{
	static const uint8_t p[] = {0, 0, 0, 1, 0, 0, 0, 0, 6, 'o', 0x07, 'k', 0x00, 0xc3, '!'};
	struct frame_reason r;

	assert_int_equal(frame_reason_decode(p, sizeof(p), FRAME_GOAWAY, &r), 0);
	assert_string_equal(r.text, "o?k?"
				    "?!"); /* split: not a trigraph */
}

static void test_reason_encoder_truncates_text_to_255_bytes(void **state)
{
	char text[300];
	uint8_t b[400];
	struct frame_reason r;
	int n;

	memset(text, 't', sizeof(text) - 1);
	text[sizeof(text) - 1] = '\0';
	n = frame_reason_encode(b, sizeof(b), FRAME_REFUSE, VB_WERR_LIMIT, 0, text);
	assert_int_equal(n, 4 + 1 + FRAME_TEXT_MAX);
	assert_int_equal(frame_reason_decode(b, (size_t)n, FRAME_REFUSE, &r), 0);
	assert_int_equal(strlen(r.text), FRAME_TEXT_MAX);
}

static void test_reason_encoder_takes_a_null_text_as_empty(void **state)
{
	uint8_t b[16];
	struct frame_reason r;
	int n = frame_reason_encode(b, sizeof(b), FRAME_GOAWAY, VB_WERR_NONE, 9, NULL);

	assert_int_equal(n, 9);
	assert_int_equal(frame_reason_decode(b, (size_t)n, FRAME_GOAWAY, &r), 0);
	assert_int_equal(r.last_stream, 9);
	assert_string_equal(r.text, "");
}

static void test_u32_decoder_takes_exactly_four_bytes(void **state)
{
	static const uint8_t p[8] = {0x01, 0x02, 0x03, 0x04, 5, 6, 7, 8};
	uint32_t v;

	for (size_t n = 0; n <= sizeof(p); n++) {
		uint8_t *b = exact_copy(p, n);

		assert_int_equal(frame_u32_decode(b, n, &v), n == 4 ? 0 : -EPROTO);
		free(b);
	}
	assert_int_equal(frame_u32_decode(p, 4, &v), 0);
	assert_int_equal(v, 0x01020304u);
}

static void test_u64_decoder_takes_exactly_eight_bytes(void **state)
{
	static const uint8_t p[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
	uint64_t v;

	for (size_t n = 0; n <= sizeof(p); n++) {
		uint8_t *b = exact_copy(p, n);

		assert_int_equal(frame_u64_decode(b, n, &v), n == 8 ? 0 : -EPROTO);
		free(b);
	}
	assert_int_equal(frame_u64_decode(p, 8, &v), 0);
	assert_int_equal(v, 0x0102030405060708ull);
}

/* ---- encoders and short buffers ---- */

static void test_encoders_report_enospc_for_every_short_buffer(void **state)
{
	struct frame_hello h = {.min_version = 1, .max_version = 1, .name = "vb"};
	uint8_t b[64];

	for (size_t cap = 0; cap < 28; cap++)
		assert_int_equal(frame_hello_encode(b, cap, &h), -ENOSPC);
	assert_int_equal(frame_hello_encode(b, 28, &h), 28);
	for (size_t cap = 0; cap < 6; cap++)
		assert_int_equal(frame_open_encode(b, cap, 4, 0, "hi", 2), -ENOSPC);
	assert_int_equal(frame_open_encode(b, 6, 4, 0, "hi", 2), 6);
	for (size_t cap = 0; cap < 8; cap++)
		assert_int_equal(frame_reason_encode(b, cap, FRAME_REFUSE, 1, 0, "abc"), -ENOSPC);
	assert_int_equal(frame_reason_encode(b, 8, FRAME_REFUSE, 1, 0, "abc"), 8);
	for (size_t cap = 0; cap < 12; cap++)
		assert_int_equal(frame_reason_encode(b, cap, FRAME_GOAWAY, 1, 0, "abc"), -ENOSPC);
	assert_int_equal(frame_reason_encode(b, 12, FRAME_GOAWAY, 1, 0, "abc"), 12);
}

#define VT(name) cmocka_unit_test(test_vector_##name##_decodes_to_its_meaning_and_encodes_back)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spec_lists_exactly_the_vectors_this_test_knows),
	    VT(hello),
	    VT(open),
	    VT(open_dgram),
	    VT(accept),
	    VT(refuse),
	    VT(data),
	    VT(data_fin),
	    VT(fin),
	    VT(window),
	    VT(reset),
	    VT(ping),
	    VT(pong),
	    VT(goaway),
	    cmocka_unit_test(test_header_round_trips_extreme_values),
	    cmocka_unit_test(test_header_is_big_endian),
	    cmocka_unit_test(test_header_with_any_reserved_bit_set_is_rejected),
	    cmocka_unit_test(test_frame_type_names),
	    cmocka_unit_test(test_hello_decoder_rejects_every_truncation),
	    cmocka_unit_test(test_hello_with_bad_magic_is_rejected),
	    cmocka_unit_test(test_hello_accepts_trailing_bytes_for_later_versions),
	    cmocka_unit_test(test_hello_name_with_nonprintable_bytes_is_sanitized),
	    cmocka_unit_test(test_hello_name_of_255_bytes_round_trips),
	    cmocka_unit_test(test_open_decoder_rejects_fewer_than_four_bytes),
	    cmocka_unit_test(test_refuse_decoder_rejects_every_truncation_and_trailing_bytes),
	    cmocka_unit_test(test_goaway_decoder_rejects_every_truncation_and_trailing_bytes),
	    cmocka_unit_test(test_reason_text_with_nonprintable_bytes_is_sanitized),
	    cmocka_unit_test(test_reason_encoder_truncates_text_to_255_bytes),
	    cmocka_unit_test(test_reason_encoder_takes_a_null_text_as_empty),
	    cmocka_unit_test(test_u32_decoder_takes_exactly_four_bytes),
	    cmocka_unit_test(test_u64_decoder_takes_exactly_eight_bytes),
	    cmocka_unit_test(test_encoders_report_enospc_for_every_short_buffer),
	};

	return cmocka_run_group_tests(tests, vectors_load, NULL);
}
