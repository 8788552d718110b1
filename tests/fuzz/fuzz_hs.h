/*
 * The harness the proxy handshake's fuzz targets share (fuzz_socks4.c,
 * fuzz_socks5.c, fuzz_http.c): feed one input whole and in pieces, check
 * every call's contract, and compare the two runs. Included once per target.
 */
#ifndef VB_FUZZ_HS_H
#define VB_FUZZ_HS_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/socks.h"

#define FZ_CHECK(c)                                                                                \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

struct fz_run {
	int res;
	size_t used;
	uint8_t sent[4 * SOCKS_REPLY_MAX];
	size_t sent_len;
};

static struct socks_hs fz_whole, fz_split;

static int fz_auth(void *arg, const char *user, const char *pass)
{
	return strcmp(user, "user") || strcmp(pass, "pass");
}

static uint32_t fz_next(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 16;
}

/* Feeds the stream in pieces (seed 0: whole), as a caller does; checks every call. */
static void fz_feed(struct socks_hs *h, const struct socks_opts *o, const uint8_t *p, size_t n,
		    uint32_t seed, struct fz_run *r)
{
	size_t off = 0;

	socks_hs_init(h, o);
	r->sent_len = 0;
	r->res = SOCKS_HS_MORE;
	do {
		size_t piece = seed ? 1 + fz_next(&seed) % ((seed & 0x100) ? 4096 : 16) : n - off;
		size_t end = off + (piece < n - off ? piece : n - off);

		for (;;) {
			size_t used = (size_t)-1;
			int res = socks_hs_feed(h, p + off, end - off, &used);

			FZ_CHECK(used <= end - off);
			FZ_CHECK(h->out_len <= sizeof(h->out));
			FZ_CHECK(res != SOCKS_HS_MORE || used == end - off);
			FZ_CHECK(res != SOCKS_HS_REPLY || h->out_len);
			FZ_CHECK(r->sent_len + h->out_len <= sizeof(r->sent));
			memcpy(r->sent + r->sent_len, h->out, h->out_len);
			r->sent_len += h->out_len;
			off += used;
			r->res = res;
			r->used = off;
			if (res == SOCKS_HS_MORE)
				break;
			if (res != SOCKS_HS_REPLY)
				return;
		}
	} while (off < n);
}

/* What a request must look like, whatever the bytes were. */
static void fz_check_req(const struct socks_hs *h)
{
	const struct socks_target *t = &h->req.to;
	struct socks_target again;
	char buf[320];

	FZ_CHECK(t->atyp == SOCKS_ATYP_IPV4 || t->atyp == SOCKS_ATYP_IPV6 ||
		 t->atyp == SOCKS_ATYP_NAME);
	if (t->atyp == SOCKS_ATYP_NAME) {
		size_t n = strnlen(t->name, sizeof(t->name));

		FZ_CHECK(n >= 1 && n <= SOCKS_NAME_MAX);
		FZ_CHECK(!socks_target_host(&again, t->name, n, t->port));
		FZ_CHECK(!memcmp(&again, t, sizeof(again)));
	}
	FZ_CHECK(h->req.cmd != SOCKS_CMD_CONNECT || t->port);
	FZ_CHECK(strnlen(h->req.user, sizeof(h->req.user)) < sizeof(h->req.user));
	socks_target_format(t, buf, sizeof(buf));
}

static void fz_same(const struct fz_run *a, const struct fz_run *b)
{
	FZ_CHECK(a->res == b->res && a->used == b->used && a->sent_len == b->sent_len);
	FZ_CHECK(!memcmp(a->sent, b->sent, a->sent_len));
	if (a->res == SOCKS_HS_REQUEST) {
		FZ_CHECK(fz_whole.req.proto == fz_split.req.proto);
		FZ_CHECK(!memcmp(&fz_whole.req.to, &fz_split.req.to, sizeof(fz_whole.req.to)));
		FZ_CHECK(fz_whole.req.upstream_len == fz_split.req.upstream_len);
	}
}

#endif
