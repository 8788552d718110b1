/* libFuzzer target: every payload decoder of core/frame.c, with decode-encode-decode round trips.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/frame.h"

/*
 * Input layout: byte 0 selects the decoder (modulo 7: header, HELLO, OPEN,
 * REFUSE, GOAWAY, u32, u64); the rest is its input. A decoder must never
 * read past its length (AddressSanitizer watches a heap copy of exactly that
 * size), and whatever it accepts must encode and decode back to the same.
 */

static void fuzz_frame_fail(const char *what)
{
	fprintf(stderr, "fuzz_frame: %s\n", what);
	abort();
}

static void fuzz_frame_hdr(const uint8_t *p, size_t len)
{
	struct frame_hdr h, h2;
	uint8_t out[FRAME_HDR_LEN];

	if (len < FRAME_HDR_LEN || frame_hdr_decode(p, &h))
		return;
	frame_hdr_encode(out, h.type, h.flags, h.stream, h.len);
	if (memcmp(out, p, FRAME_HDR_LEN))
		fuzz_frame_fail("header does not encode back to its bytes");
	if (frame_hdr_decode(out, &h2) || h.type != h2.type || h.flags != h2.flags ||
	    h.stream != h2.stream || h.len != h2.len)
		fuzz_frame_fail("header round trip differs");
	(void)frame_type_name(h.type);
}

static void fuzz_frame_hello(const uint8_t *p, size_t len)
{
	struct frame_hello h, h2;
	uint8_t out[FRAME_HELLO_MAX];
	int n;

	memset(&h, 0, sizeof(h)); /* zero padding and name tails: compared with memcmp */
	memset(&h2, 0, sizeof(h2));
	if (frame_hello_decode(p, len, &h))
		return;
	if (strlen(h.name) != h.name_len)
		fuzz_frame_fail("HELLO name length and text disagree");
	n = frame_hello_encode(out, sizeof(out), &h);
	if (n < 0)
		fuzz_frame_fail("a decoded HELLO does not encode");
	if (frame_hello_decode(out, (size_t)n, &h2) || memcmp(&h, &h2, sizeof(h)))
		fuzz_frame_fail("HELLO round trip differs");
}

static void fuzz_frame_open(const uint8_t *p, size_t len)
{
	struct frame_open o;
	uint8_t *out;
	int n;

	if (frame_open_decode(p, len, &o))
		return;
	if (o.req < p || o.req + o.req_len != p + len)
		fuzz_frame_fail("OPEN request is not the rest of the payload");
	out = malloc(len ? len : 1);
	if (!out)
		abort();
	n = frame_open_encode(out, len, o.kind, o.flags, o.req, o.req_len);
	if (n != (int)len || memcmp(out, p, len))
		fuzz_frame_fail("OPEN does not encode back to its bytes");
	free(out);
}

static void fuzz_frame_reason(const uint8_t *p, size_t len, uint8_t type)
{
	struct frame_reason r, r2;
	uint8_t out[4 + 4 + 1 + FRAME_TEXT_MAX];
	int n;

	memset(&r, 0, sizeof(r)); /* zero text tails: compared with memcmp */
	memset(&r2, 0, sizeof(r2));
	if (frame_reason_decode(p, len, type, &r))
		return;
	n = frame_reason_encode(out, sizeof(out), type, r.code, r.last_stream, r.text);
	if (n < 0)
		fuzz_frame_fail("a decoded reason does not encode");
	if (frame_reason_decode(out, (size_t)n, type, &r2) || memcmp(&r, &r2, sizeof(r)))
		fuzz_frame_fail("reason round trip differs");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *p;
	size_t len;
	uint32_t v32;
	uint64_t v64;

	if (!size)
		return 0;
	len = size - 1;
	p = malloc(len ? len : 1); /* exactly len bytes: any overread is caught */
	if (!p)
		abort();
	memcpy(p, data + 1, len);
	switch (data[0] % 7) {
	case 0:
		fuzz_frame_hdr(p, len);
		break;
	case 1:
		fuzz_frame_hello(p, len);
		break;
	case 2:
		fuzz_frame_open(p, len);
		break;
	case 3:
		fuzz_frame_reason(p, len, FRAME_REFUSE);
		break;
	case 4:
		fuzz_frame_reason(p, len, FRAME_GOAWAY);
		break;
	case 5:
		if (!frame_u32_decode(p, len, &v32) && len != 4)
			fuzz_frame_fail("u32 accepted a wrong length");
		break;
	case 6:
		if (!frame_u64_decode(p, len, &v64) && len != 8)
			fuzz_frame_fail("u64 accepted a wrong length");
		break;
	}
	free(p);
	return 0;
}
