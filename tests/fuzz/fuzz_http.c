/* Fuzz target: the proxy handshake as an HTTP proxy client drives it, and the HTTP parsers. */
#include <errno.h>
#include <stdbool.h>
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
	o->protos = (b >> 4) & 7 ? ((b >> 4) & 7) << 2 : 0;
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

/* Our own head for the origin must be one we would parse, with one Host and no NUL. */
static void fz_check_upstream(const struct socks_hs *hs)
{
	static struct http_req r;
	const char *up = (const char *)hs->req.upstream;
	size_t n = hs->req.upstream_len;
	struct http_span v;
	int ret;

	FZ_CHECK(n >= 4 && n <= HTTP_HEAD_MAX + HTTP_FORWARD_SLACK);
	FZ_CHECK(!memchr(up, '\0', n) && !memcmp(up + n - 4, "\r\n\r\n", 4));
	/* Host and Connection come in: a head of HTTP_FIELDS_MAX fields goes on with more. */
	ret = http_req_parse(up, n, &r, NULL, 0);
	FZ_CHECK(!ret || ret == -EMSGSIZE);
	if (ret)
		return;
	FZ_CHECK(http_field_get(&r, "host", &v) == 1);
	FZ_CHECK(http_field_get(&r, "connection", &v) == 1 && http_span_eq(v, "close"));
	FZ_CHECK(!http_field_get(&r, "proxy-authorization", NULL));
	FZ_CHECK(r.target.n && r.target.p[0] == '/');
}

static bool fz_in(struct http_span s, const char *p, size_t n)
{
	return s.p >= p && s.n <= n && s.p + s.n <= p + n;
}

/* The parsers alone, on the raw bytes: spans stay inside, the rewrite fits its bound. */
static void fz_parsers(const char *p, size_t n)
{
	static struct http_req r;
	static uint8_t out[HTTP_HEAD_MAX + HTTP_FORWARD_SLACK];
	char user[HTTP_CRED_MAX + 1], pass[HTTP_CRED_MAX + 1];
	struct http_span a, path;
	struct http_host hh;
	struct http_scan sc;
	size_t used;

	if (!http_basic_decode((struct http_span){p, n}, user, pass))
		FZ_CHECK(strlen(user) <= HTTP_CRED_MAX && strlen(pass) <= HTTP_CRED_MAX);
	if (!http_authority_parse((struct http_span){p, n}, 0, &hh))
		FZ_CHECK(hh.port && fz_in(hh.host, p, n));
	http_scan_init(&sc);
	if (http_scan(&sc, (const uint8_t *)p, n, &used) == 1)
		n = used;
	if (n > HTTP_HEAD_MAX || http_req_parse(p, n, &r, NULL, 0))
		return;
	FZ_CHECK(fz_in(r.method, p, n) && fz_in(r.target, p, n) && r.nfields <= HTTP_FIELDS_MAX);
	for (uint16_t i = 0; i < r.nfields; i++)
		FZ_CHECK(fz_in(r.fields[i].name, p, n) && fz_in(r.fields[i].value, p, n));
	if (http_uri_parse(r.target, &hh, &a, &path))
		return;
	FZ_CHECK(fz_in(a, p, n) && fz_in(path, p, n) && fz_in(hh.host, p, n));
	FZ_CHECK(http_forward_head(&r, a, path, out, n + HTTP_FORWARD_SLACK, NULL, 0) != -ENOSPC);
}

/* Byte 0: options; byte 1: how to cut; the rest is what the client sends. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_run whole, split;
	struct socks_opts o;
	uint8_t *p;
	size_t n;

	if (size < 2)
		return 0;
	n = size - 2;
	p = malloc(n ? n : 1);
	if (!p)
		return 0;
	memcpy(p, data + 2, n);
	fz_parsers((const char *)p, n);
	/* Other first bytes are SOCKS: fuzz_socks5 and fuzz_socks4 cover them. */
	if (!n || p[0] < 'A' || p[0] > 'Z') {
		free(p);
		return 0;
	}
	fz_opts(data[0], &o);
	fz_feed(&fz_whole, &o, p, n, 0, &whole);
	fz_feed(&fz_split, &o, p, n, data[1] | 0x100u << (data[1] & 1), &split);
	fz_same(&whole, &split);
	if (whole.res == SOCKS_HS_REQUEST) {
		fz_check_req(&fz_whole);
		FZ_CHECK(fz_whole.req.proto == SOCKS_P_HTTP_CONNECT ||
			 fz_whole.req.proto == SOCKS_P_HTTP_FORWARD);
		if (fz_whole.req.proto == SOCKS_P_HTTP_FORWARD)
			fz_check_upstream(&fz_whole);
		FZ_CHECK(!socks_hs_reply(&fz_whole, -(int)(data[1] % 120), NULL, NULL));
		FZ_CHECK(fz_whole.out_len || fz_whole.req.proto == SOCKS_P_HTTP_FORWARD);
	} else if (whole.res < 0) {
		/* Every refusal of an HTTP client is an HTTP response. */
		FZ_CHECK(whole.sent_len > 9 && !memcmp(whole.sent, "HTTP/1.1 ", 9));
	}
	free(p);
	return 0;
}
