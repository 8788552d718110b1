/* Fuzz target: the proxy handshake as a SOCKS5 client drives it, and SOCKS5 UDP headers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/socks.h"
#include "tests/fuzz/fuzz_hs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Byte 0 picks the options, as a listener could be configured. */
static void fz_opts(uint8_t b, struct socks_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->auth = (b & 1) ? fz_auth : NULL;
	o->cmds = (b >> 1) & 0x0e;
	o->protos = (b >> 4) & 7 ? ((b >> 4) & 7) | SOCKS_P_HTTP_CONNECT : 0;
	o->http_head_max = (b & 0x80) ? 200 : 0;
}

/* A UDP header that parses builds back into one that parses the same. */
static void fz_udp(const uint8_t *p, size_t n)
{
	uint8_t out[SOCKS_UDP_HDR_MAX];
	struct socks_target t, t2;
	size_t hl, hl2;
	int len;

	if (socks_udp_parse(p, n, &t, &hl))
		return;
	FZ_CHECK(hl <= n && hl <= SOCKS_UDP_HDR_MAX);
	len = socks_udp_build(out, sizeof(out), &t);
	FZ_CHECK(len > 0);
	FZ_CHECK(!socks_udp_parse(out, (size_t)len, &t2, &hl2));
	FZ_CHECK(hl2 == (size_t)len && !memcmp(&t, &t2, sizeof(t)));
}

/* Byte 0: options; byte 1: how to cut; the rest follows the version byte 0x05. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_run whole, split;
	struct socks_opts o;
	uint8_t *p;
	size_t n;

	if (size < 2)
		return 0;
	n = size - 1;
	p = malloc(n);
	if (!p)
		return 0;
	p[0] = 5;
	memcpy(p + 1, data + 2, n - 1);
	fz_opts(data[0], &o);
	fz_feed(&fz_whole, &o, p, n, 0, &whole);
	fz_feed(&fz_split, &o, p, n, data[1] | 0x100u << (data[1] & 1), &split);
	fz_same(&whole, &split);
	if (whole.res == SOCKS_HS_REQUEST) {
		fz_check_req(&fz_whole);
		FZ_CHECK(!socks_hs_reply(&fz_whole, -(int)(data[1] % 120), &fz_whole.req.to, NULL));
		FZ_CHECK(fz_whole.out_len >= 8 && fz_whole.out[0] == 5);
	}
	fz_udp(data + 2, size - 2);
	free(p);
	return 0;
}
