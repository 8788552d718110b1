/* Fuzz target: the TCP stream kind's request, reply and datagram header decoders (proxy/tcp_msg.c).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/tcp_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant that holds in every build (assert() is gone under NDEBUG). */
#define FUZZ_CHECK(c)                                                                              \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

/*
 * Byte 0 picks the decoder (mod 3); the rest is its input, as a guest would
 * send it. Beyond not crashing, whatever a decoder accepts must be something
 * the checks downstream rely on: a name passes tcp_name_ok and is
 * NUL-terminated, an address has a family, and it must survive a round trip:
 * encoding it and decoding the result gives the same thing back.
 */

static bool fuzz_target_same(const struct tcp_target *a, const struct tcp_target *b)
{
	if (a->port != b->port || strcmp(a->name, b->name) || a->addr.family != b->addr.family)
		return false;
	return a->name[0] || !memcmp(a->addr.ip, b->addr.ip, a->addr.family == NET_IPV4 ? 4 : 16);
}

static void fuzz_target_check(const struct tcp_target *t)
{
	size_t n = strnlen(t->name, sizeof(t->name));

	FUZZ_CHECK(n < sizeof(t->name));
	if (n)
		FUZZ_CHECK(tcp_name_ok(t->name, n));
	else
		FUZZ_CHECK(t->addr.family == NET_IPV4 || t->addr.family == NET_IPV6);
}

static void fuzz_tcp_req(const uint8_t *p, size_t n)
{
	static uint8_t out[TCP_REQ_MAX];
	struct tcp_req q, again;
	int len;

	memset(&q, 0, sizeof(q));
	if (tcp_req_decode(p, n, &q))
		return;
	FUZZ_CHECK(q.cmd >= TCP_CONNECT && q.cmd <= TCP_UDP);
	fuzz_target_check(&q.to);
	len = tcp_req_encode(&q, out);
	FUZZ_CHECK(len > 0 && (size_t)len <= sizeof(out));
	memset(&again, 0, sizeof(again));
	FUZZ_CHECK(!tcp_req_decode(out, (size_t)len, &again));
	FUZZ_CHECK(again.cmd == q.cmd && again.id == q.id && fuzz_target_same(&again.to, &q.to));
}

static void fuzz_tcp_reply(const uint8_t *p, size_t n)
{
	static uint8_t out[TCP_REPLY_MAX];
	struct tcp_reply r, again;
	int len;

	memset(&r, 0, sizeof(r));
	if (tcp_reply_decode(p, n, &r))
		return;
	len = tcp_reply_encode(&r, out);
	FUZZ_CHECK(len > 0 && (size_t)len <= sizeof(out));
	memset(&again, 0, sizeof(again));
	FUZZ_CHECK(!tcp_reply_decode(out, (size_t)len, &again));
	FUZZ_CHECK(again.local.family == r.local.family && again.local.port == r.local.port);
	FUZZ_CHECK(again.peer.family == r.peer.family && again.peer.port == r.peer.port);
}

static void fuzz_tcp_dgram(const uint8_t *p, size_t n)
{
	static uint8_t out[TCP_DGRAM_HDR_MAX];
	struct tcp_target t, again;
	int len, len2;

	memset(&t, 0, sizeof(t));
	len = tcp_dgram_hdr_decode(p, n, &t);
	if (len < 0)
		return;
	FUZZ_CHECK((size_t)len <= n);
	fuzz_target_check(&t);
	len2 = tcp_dgram_hdr_encode(&t, out, sizeof(out));
	FUZZ_CHECK(len2 == len);
	memset(&again, 0, sizeof(again));
	FUZZ_CHECK(tcp_dgram_hdr_decode(out, (size_t)len2, &again) == len2);
	FUZZ_CHECK(fuzz_target_same(&again, &t));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_tcp_req(data + 1, size - 1);
		break;
	case 1:
		fuzz_tcp_reply(data + 1, size - 1);
		break;
	default:
		fuzz_tcp_dgram(data + 1, size - 1);
	}
	return 0;
}
