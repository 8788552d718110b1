/* Fuzz target: the proxy handshake as an HTTP proxy client drives it, and the HTTP parsers. */
#include <errno.h>
#include <stdbool.h>
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
	o->protos = (b >> 4) & 7 ? ((b >> 4) & 7) << 2 : 0;
	o->http_head_max = (b & 0x80) ? 200 : 0;
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
