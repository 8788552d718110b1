/* Fuzz target: the proxy handshake as a SOCKS5 client drives it, and SOCKS5 UDP headers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/socks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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

/* Byte 0 picks the options, as a listener could be configured. */
static void fz_opts(uint8_t b, struct socks_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->auth = (b & 1) ? fz_auth : NULL;
	o->cmds = (b >> 1) & 0x0e;
	o->protos = (b >> 4) & 7 ? ((b >> 4) & 7) | SOCKS_P_HTTP_CONNECT : 0;
	o->http_head_max = (b & 0x80) ? 200 : 0;
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
