/* Fuzz target: the proxy handshake as a SOCKS4 or SOCKS4a client drives it. */
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

/* Byte 0: options; byte 1: how to cut; the rest follows the version byte 0x04. */
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
	p[0] = 4;
	memcpy(p + 1, data + 2, n - 1);
	fz_opts(data[0], &o);
	fz_feed(&fz_whole, &o, p, n, 0, &whole);
	fz_feed(&fz_split, &o, p, n, data[1] | 0x100u << (data[1] & 1), &split);
	fz_same(&whole, &split);
	if (whole.res == SOCKS_HS_REQUEST) {
		fz_check_req(&fz_whole);
		FZ_CHECK(fz_whole.req.proto == SOCKS_P_SOCKS4 ||
			 fz_whole.req.proto == SOCKS_P_SOCKS4A);
		FZ_CHECK(fz_whole.req.proto == SOCKS_P_SOCKS4A ||
			 fz_whole.req.to.atyp == SOCKS_ATYP_IPV4);
		FZ_CHECK(!socks_hs_reply(&fz_whole, -(int)(data[1] % 120), &fz_whole.req.to, NULL));
		FZ_CHECK(fz_whole.out_len == 8 && fz_whole.out[0] == 0);
		FZ_CHECK(fz_whole.out[1] ==
			 (data[1] % 120 ? SOCKS4_REP_REJECTED : SOCKS4_REP_GRANTED));
	} else if (whole.res < 0) {
		/* A refusal, once the 8-byte header is in, is the 8-byte 0x5B reply. */
		FZ_CHECK(whole.sent_len == 0 || (whole.sent_len == 8 && whole.sent[1] == 0x5b));
	}
	free(p);
	return 0;
}
