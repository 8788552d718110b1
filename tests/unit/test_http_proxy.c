/* Unit tests for HTTP proxying on the proxy port: CONNECT, forwarding, credentials, refusals. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "proxy/http.h"
#include "proxy/socks.h"

/*
 * Vectors are what curl 7.88.1 sent to a capturing server: --proxy
 * http://... for forwarding, with -p for CONNECT, with and without
 * credentials. Every request is fed whole, one byte at a time, and cut in
 * two at every byte; all ways must agree.
 */

#define CURL_CONNECT                                                                               \
	"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n"                              \
	"User-Agent: curl/7.88.1\r\nProxy-Connection: Keep-Alive\r\n\r\n"
#define CURL_CONNECT6                                                                              \
	"CONNECT [2001:db8::1]:8443 HTTP/1.1\r\nHost: [2001:db8::1]:8443\r\n"                      \
	"User-Agent: curl/7.88.1\r\nProxy-Connection: Keep-Alive\r\n\r\n"
#define CURL_CONNECT10                                                                             \
	"CONNECT example.com:80 HTTP/1.0\r\nHost: example.com:80\r\n"                              \
	"User-Agent: curl/7.88.1\r\nProxy-Connection: Keep-Alive\r\n\r\n"
#define CURL_CONNECT_AUTH                                                                          \
	"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n"                            \
	"Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=\r\nUser-Agent: curl/7.88.1\r\n"               \
	"Proxy-Connection: Keep-Alive\r\n\r\n"
#define CURL_GET                                                                                   \
	"GET http://example.com:8080/a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\n"               \
	"User-Agent: curl/7.88.1\r\nAccept: */*\r\nProxy-Connection: Keep-Alive\r\n\r\n"
#define CURL_GET_AUTH                                                                              \
	"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n"                                \
	"Proxy-Authorization: Basic dTpw\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n"            \
	"Proxy-Connection: Keep-Alive\r\n\r\n"
#define CURL_POST                                                                                  \
	"POST http://example.com/form HTTP/1.1\r\nHost: example.com\r\n"                           \
	"User-Agent: curl/7.88.1\r\nAccept: */*\r\nProxy-Connection: Keep-Alive\r\n"               \
	"Content-Length: 7\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n"
#define CURL_POST_BODY "a=1&b=2"
/* What curl sends through a CONNECT tunnel next. */
#define TUNNEL_GET "GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n"

static struct socks_hs H, H2;

struct conv {
	int res;
	size_t used;
	uint8_t sent[2048];
	size_t sent_len;
};

static void conv_run(struct socks_hs *h, const struct socks_opts *o, const uint8_t *p, size_t n,
		     const size_t *cuts, size_t ncuts, struct conv *c)
{
	size_t off = 0;

	socks_hs_init(h, o);
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < ncuts; i++) {
		for (;;) {
			size_t used = 99999;
			int r = socks_hs_feed(h, p + off, cuts[i] - off, &used);

			assert_true(used <= cuts[i] - off);
			off += used;
			assert_true(c->sent_len + h->out_len <= sizeof(c->sent));
			memcpy(c->sent + c->sent_len, h->out, h->out_len);
			c->sent_len += h->out_len;
			c->res = r;
			c->used = off;
			if (r == SOCKS_HS_MORE) {
				assert_int_equal(off, cuts[i]);
				break;
			}
			if (r != SOCKS_HS_REPLY)
				return;
		}
	}
}

static void conv_same(const struct conv *a, const struct conv *b)
{
	assert_int_equal(a->res, b->res);
	assert_int_equal(a->used, b->used);
	assert_int_equal(a->sent_len, b->sent_len);
	assert_memory_equal(a->sent, b->sent, a->sent_len);
	if (a->res == SOCKS_HS_REQUEST) {
		assert_int_equal(H.req.proto, H2.req.proto);
		assert_memory_equal(&H.req.to, &H2.req.to, sizeof(H.req.to));
		assert_string_equal(H.req.user, H2.req.user);
		assert_int_equal(H.req.upstream_len, H2.req.upstream_len);
		if (H.req.upstream_len)
			assert_memory_equal(H.req.upstream, H2.req.upstream, H.req.upstream_len);
	} else if (a->res < 0) {
		assert_string_equal(H.why, H2.why);
	}
}

/* Runs p[0..n) every way; H holds the whole run afterwards. */
static struct conv conv_check_raw(const struct socks_opts *o, const uint8_t *p, size_t n)
{
	size_t *cuts = malloc((n + 1) * sizeof(*cuts));
	struct conv whole, split;

	assert_non_null(cuts);
	cuts[0] = n;
	conv_run(&H, o, p, n, cuts, 1, &whole);
	for (size_t i = 0; i < n; i++)
		cuts[i] = i + 1;
	conv_run(&H2, o, p, n, cuts, n, &split);
	conv_same(&whole, &split);
	for (size_t k = 1; k < n; k++) {
		size_t two[2] = {k, n};

		conv_run(&H2, o, p, n, two, 2, &split);
		conv_same(&whole, &split);
	}
	free(cuts);
	return whole;
}

static struct conv conv_check(const struct socks_opts *o, const char *s)
{
	return conv_check_raw(o, (const uint8_t *)s, strlen(s));
}

static void expect_upstream(const char *want)
{
	assert_int_equal(H.req.upstream_len, strlen(want));
	assert_memory_equal(H.req.upstream, want, strlen(want));
}

static void expect_out_starts(const struct conv *c, const char *prefix)
{
	assert_true(c->sent_len >= strlen(prefix));
	assert_memory_equal(c->sent, prefix, strlen(prefix));
}

static bool sent_has(const struct conv *c, const char *s)
{
	char buf[sizeof(c->sent) + 1];

	memcpy(buf, c->sent, c->sent_len);
	buf[c->sent_len] = '\0';
	return strstr(buf, s) != NULL;
}

/* A refusal: the errno, the status line, and the whole request taken. */
static struct conv expect_refused(const struct socks_opts *o, const char *req, int err,
				  const char *status)
{
	struct conv c = conv_check(o, req);

	assert_int_equal(c.res, err);
	expect_out_starts(&c, status);
	assert_true(sent_has(&c, "Connection: close\r\n"));
	return c;
}

static int t_auth(void *arg, const char *user, const char *pass)
{
	return strcmp(user, "user") || strcmp(pass, "secret") ? -1 : 0;
}

static const struct socks_opts auth_opts = {.auth = t_auth, .realm = "lab"};

/* ---- CONNECT ---- */

static void test_connect_curl(void **state)
{
	struct conv c = conv_check(NULL, CURL_CONNECT TUNNEL_GET);
	static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_int_equal(c.sent_len, 0);
	assert_int_equal(c.used, strlen(CURL_CONNECT));
	assert_int_equal(H.req.proto, SOCKS_P_HTTP_CONNECT);
	assert_int_equal(H.req.cmd, SOCKS_CMD_CONNECT);
	assert_int_equal(H.req.to.atyp, SOCKS_ATYP_NAME);
	assert_string_equal(H.req.to.name, "example.com");
	assert_int_equal(H.req.to.port, 80);
	assert_int_equal(H.req.upstream_len, 0);
	assert_int_equal(socks_hs_reply(&H, 0, NULL, NULL), 0);
	assert_int_equal(H.out_len, strlen(ok));
	assert_memory_equal(H.out, ok, strlen(ok));
}

static void test_connect_curl_ipv6(void **state)
{
	static const uint8_t ip[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
	struct conv c = conv_check(NULL, CURL_CONNECT6);

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_int_equal(H.req.to.atyp, SOCKS_ATYP_IPV6);
	assert_memory_equal(H.req.to.ip, ip, 16);
	assert_int_equal(H.req.to.port, 8443);
}

static void test_connect_curl_http10(void **state)
{
	struct conv c = conv_check(NULL, CURL_CONNECT10);

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_string_equal(H.req.to.name, "example.com");
}

static void test_connect_curl_with_credentials(void **state)
{
	struct conv c = conv_check(&auth_opts, CURL_CONNECT_AUTH);

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_string_equal(H.req.user, "user");
	assert_true(H.req.authenticated);
	assert_int_equal(H.req.to.port, 443);
}

static void test_connect_without_credentials_gets_407(void **state)
{
	struct conv c = expect_refused(&auth_opts, CURL_CONNECT, -EACCES,
				       "HTTP/1.1 407 Proxy Authentication Required\r\n");

	assert_true(sent_has(&c, "Proxy-Authenticate: Basic realm=\"lab\"\r\n"));
}

static void test_connect_with_wrong_credentials_gets_407(void **state)
{
	/* user:wrong */
	expect_refused(&auth_opts,
		       "CONNECT example.com:443 HTTP/1.1\r\n"
		       "Proxy-Authorization: Basic dXNlcjp3cm9uZw==\r\n\r\n",
		       -EACCES, "HTTP/1.1 407 ");
	expect_refused(
	    &auth_opts,
	    "CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: Bearer abc\r\n\r\n", -EACCES,
	    "HTTP/1.1 407 ");
	expect_refused(&auth_opts,
		       "CONNECT example.com:443 HTTP/1.1\r\nProxy-Authorization: Basic !!!\r\n\r\n",
		       -EACCES, "HTTP/1.1 407 ");
	expect_refused(&auth_opts,
		       "CONNECT example.com:443 HTTP/1.1\r\n"
		       "Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=\r\n"
		       "Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=\r\n\r\n",
		       -EPROTO, "HTTP/1.1 400 ");
}

static void test_connect_bad_targets_get_400(void **state)
{
	static const char *const targets[] = {
	    "example.com",
	    "example.com:",
	    "example.com:0",
	    "example.com:65536",
	    "example.com:80a",
	    "example.com:-1",
	    "[::1",
	    "[::1]",
	    "::1:443",
	    "[example.com]:443",
	    "[::1]x:443",
	    "u@example.com:443",
	    ":443",
	    "exa%mple.com:443",
	    "10.0.0.1.2:80",
	    "[]:80",
	    "0x7f.1:80",
	    "example.com:080808",
	};

	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		char req[256];

		snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\n\r\n", targets[i]);
		expect_refused(NULL, req, -EINVAL, "HTTP/1.1 400 Bad Request\r\n");
	}
}

/* ---- forwarding ---- */

static void test_forward_curl_get(void **state)
{
	struct conv c = conv_check(NULL, CURL_GET);

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_int_equal(c.sent_len, 0);
	assert_int_equal(H.req.proto, SOCKS_P_HTTP_FORWARD);
	assert_string_equal(H.req.to.name, "example.com");
	assert_int_equal(H.req.to.port, 8080);
	expect_upstream("GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\n"
			"User-Agent: curl/7.88.1\r\nAccept: */*\r\nConnection: close\r\n\r\n");
	assert_int_equal(socks_hs_reply(&H, 0, NULL, NULL), 0);
	assert_int_equal(H.out_len, 0);
}

static void test_forward_curl_get_with_credentials(void **state)
{
	struct socks_opts o = {.auth = t_auth};
	struct conv c = conv_check(&o, CURL_GET_AUTH);

	assert_int_equal(c.res, -EACCES);
	c = conv_check(NULL, CURL_GET_AUTH);
	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_string_equal(H.req.user, "");
	expect_upstream("GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\n"
			"Accept: */*\r\nConnection: close\r\n\r\n");
}

static int t_auth_up(void *arg, const char *user, const char *pass)
{
	return strcmp(user, "u") || strcmp(pass, "p") ? -1 : 0;
}

static void test_forward_credentials_are_not_sent_upstream(void **state)
{
	struct socks_opts o = {.auth = t_auth_up};
	struct conv c = conv_check(&o, CURL_GET_AUTH);

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_string_equal(H.req.user, "u");
	assert_true(H.req.authenticated);
	expect_upstream("GET / HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\n"
			"Accept: */*\r\nConnection: close\r\n\r\n");
}

static void test_forward_curl_post_body_is_early_data(void **state)
{
	struct conv c = conv_check(NULL, CURL_POST CURL_POST_BODY);

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_int_equal(c.used, strlen(CURL_POST));
	expect_upstream(
	    "POST /form HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/7.88.1\r\n"
	    "Accept: */*\r\nContent-Length: 7\r\n"
	    "Content-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n");
}

static void test_forward_drops_hop_by_hop_fields(void **state)
{
	struct conv c = conv_check(NULL, "GET http://example.com/ HTTP/1.1\r\n"
					 "Host: other.example\r\n"
					 "Connection: keep-alive, X-Hop\r\n"
					 "X-Hop: secret\r\n"
					 "Keep-Alive: timeout=5\r\n"
					 "TE: trailers\r\n"
					 "Upgrade: websocket\r\n"
					 "Proxy-Connection: keep-alive\r\n"
					 "X-End-To-End:   kept  \r\n\r\n");

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	expect_upstream("GET / HTTP/1.1\r\nHost: example.com\r\nX-End-To-End: kept\r\n"
			"Connection: close\r\n\r\n");
}

static void test_forward_keeps_http10_and_adds_host(void **state)
{
	struct conv c = conv_check(NULL, "GET http://10.0.0.1:8080 HTTP/1.0\r\n\r\n");

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_int_equal(H.req.to.atyp, SOCKS_ATYP_IPV4);
	expect_upstream("GET / HTTP/1.0\r\nHost: 10.0.0.1:8080\r\nConnection: close\r\n\r\n");
}

static void test_forward_target_forms(void **state)
{
	static const struct {
		const char *target, *line, *host;
		uint16_t port;
	} cases[] = {
	    {"http://example.com?x=1", "GET /?x=1 HTTP/1.1", "example.com", 80},
	    {"HTTP://Example.COM:81/p", "GET /p HTTP/1.1", "Example.COM:81", 81},
	    {"http://example.com:/p", "GET /p HTTP/1.1", "example.com", 80},
	    {"http://[::1]:8080/x?y#", NULL, NULL, 0},
	    {"http://[::1]:8080/x?y", "GET /x?y HTTP/1.1", "[::1]:8080", 8080},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char req[256], up[256];
		struct conv c;

		snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n\r\n", cases[i].target);
		c = conv_check(NULL, req);
		if (!cases[i].line) {
			assert_int_equal(c.res, -EINVAL);
			continue;
		}
		assert_int_equal(c.res, SOCKS_HS_REQUEST);
		assert_int_equal(H.req.to.port, cases[i].port);
		snprintf(up, sizeof(up), "%s\r\nHost: %s\r\nConnection: close\r\n\r\n",
			 cases[i].line, cases[i].host);
		expect_upstream(up);
	}
}

static void test_forward_accepts_bare_lf_and_writes_crlf(void **state)
{
	struct conv c = conv_check(NULL, "GET http://example.com/ HTTP/1.1\nAccept: */*\n\nbody");

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_int_equal(c.used, strlen("GET http://example.com/ HTTP/1.1\nAccept: */*\n\n"));
	expect_upstream("GET / HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n"
			"Connection: close\r\n\r\n");
}

static void test_forward_other_schemes_get_501(void **state)
{
	expect_refused(NULL, "GET https://example.com/ HTTP/1.1\r\n\r\n", -EOPNOTSUPP,
		       "HTTP/1.1 501 Not Implemented\r\n");
	expect_refused(NULL, "GET ftp://example.com/f HTTP/1.1\r\n\r\n", -EOPNOTSUPP,
		       "HTTP/1.1 501 ");
}

static void test_forward_non_proxy_targets_get_400(void **state)
{
	static const char *const reqs[] = {
	    "GET /index.html HTTP/1.1\r\nHost: example.com\r\n\r\n",
	    "OPTIONS * HTTP/1.1\r\n\r\n",
	    "GET http://u:p@example.com/ HTTP/1.1\r\n\r\n",
	    "GET http:///x HTTP/1.1\r\n\r\n",
	    "GET http://example.com:99999/ HTTP/1.1\r\n\r\n",
	    "GET http://example.com/#frag HTTP/1.1\r\n\r\n",
	    "GET http://exa%6dple.com/ HTTP/1.1\r\n\r\n",
	    "GET http://[example.com]/ HTTP/1.1\r\n\r\n",
	    "GET ://x/ HTTP/1.1\r\n\r\n",
	    "GET 1http://x/ HTTP/1.1\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
		expect_refused(NULL, reqs[i], -EINVAL, "HTTP/1.1 400 Bad Request\r\n");
}

static void test_forward_ambiguous_framing_gets_400(void **state)
{
	static const char *const fields[] = {
	    "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
	    "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
	    "Transfer-Encoding: gzip\r\n",
	    "Transfer-Encoding: chunked, gzip\r\n",
	    "Content-Length: 5\r\nContent-Length: 6\r\n",
	    "Content-Length: 5, 5\r\n",
	    "Content-Length: 1x\r\n",
	    "Content-Length: +5\r\n",
	    "Content-Length:\r\n",
	    "Connection: Content-Length\r\nContent-Length: 3\r\n",
	    "Connection: close, transfer-encoding\r\n",
	    "Connection: host\r\n",
	};

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
		char req[256];

		snprintf(req, sizeof(req), "POST http://example.com/ HTTP/1.1\r\n%s\r\n",
			 fields[i]);
		expect_refused(NULL, req, -EPROTO, "HTTP/1.1 400 Bad Request\r\n");
	}
}

static void test_forward_allowed_framing(void **state)
{
	struct conv c;

	c = conv_check(NULL, "POST http://example.com/ HTTP/1.1\r\n"
			     "Content-Length: 3\r\ncontent-length: 3\r\n\r\nabc");
	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	c = conv_check(NULL, "POST http://example.com/ HTTP/1.1\r\n"
			     "Transfer-Encoding: gzip, Chunked\r\n\r\n");
	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_non_null(
	    strstr((const char *)H.req.upstream, "Transfer-Encoding: gzip, Chunked\r\n"));
}

/* ---- enabling ---- */

static void test_disabled_methods_get_405(void **state)
{
	static const struct socks_opts connect_only = {.protos =
							   SOCKS_P_SOCKS5 | SOCKS_P_HTTP_CONNECT};
	static const struct socks_opts forward_only = {.protos = SOCKS_P_HTTP_FORWARD};
	static const struct socks_opts socks_only = {.protos = SOCKS_P_SOCKS5};
	struct conv c;

	c = expect_refused(&connect_only, CURL_GET, -EPROTONOSUPPORT,
			   "HTTP/1.1 405 Method Not Allowed\r\n");
	assert_true(sent_has(&c, "Allow: CONNECT\r\n"));
	c = conv_check(&connect_only, CURL_CONNECT);
	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	c = expect_refused(&forward_only, CURL_CONNECT, -EPROTONOSUPPORT, "HTTP/1.1 405 ");
	assert_true(sent_has(&c, "Allow: GET, HEAD"));
	c = expect_refused(&socks_only, CURL_CONNECT, -EPROTONOSUPPORT, "HTTP/1.1 405 ");
	assert_true(sent_has(&c, "Allow: \r\n"));
}

/* ---- malformed heads ---- */

static void test_malformed_heads_get_400(void **state)
{
	static const char *const reqs[] = {
	    "CONNECT example.com:80 HTTP/1.1\r\nHost: x\ry\r\n\r\n",  /* bare CR */
	    "CONNECT example.com:80 HTTP/1.1\r\nX: a\r\n b\r\n\r\n",  /* obs-fold */
	    "CONNECT example.com:80 HTTP/1.1\r\nX: a\r\n\tb\r\n\r\n", /* obs-fold */
	    "CONNECT example.com:80 HTTP/1.1\r\nHost : x\r\n\r\n",    /* space before colon */
	    "CONNECT example.com:80 HTTP/1.1\r\nno colon\r\n\r\n",
	    "CONNECT example.com:80 HTTP/1.1\r\n: empty\r\n\r\n",
	    "CONNECT example.com:80 HTTP/1.1\r\nX(y): z\r\n\r\n",
	    "CONNECT example.com:80 HTTP/1.1\r\nX: a\x01z\r\n\r\n", /* control in value */
	    "CONNECT example.com:80 HTTP/1.1\r\nX: a\x7fz\r\n\r\n",
	    "GE(T http://example.com/ HTTP/1.1\r\n\r\n", /* method */
	    "CONNECTXXXXXXXXXXXXXXXXXXXXXXXXXX example.com:80 HTTP/1.1\r\n\r\n",
	    "CONNECT  example.com:80 HTTP/1.1\r\n\r\n", /* two spaces */
	    "CONNECT example.com:80  HTTP/1.1\r\n\r\n",
	    "CONNECT example.com:80 HTTP/1.1 \r\n\r\n",
	    "CONNECT example.com:80 HTTP/1\r\n\r\n",
	    "CONNECT example.com:80 http/1.1\r\n\r\n",
	    "CONNECT example.com:80 HTTP/1.10\r\n\r\n",
	    "CONNECT example.com:80\r\n\r\n",
	    "CONNECT\r\n\r\n",
	    "GET http://example.com/\x7f HTTP/1.1\r\n\r\n", /* target bytes */
	    "GET http://example.com/\xc3\xa9 HTTP/1.1\r\n\r\n",
	    "GET http://example.com/\tx HTTP/1.1\r\n\r\n",
	};

	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++)
		expect_refused(NULL, reqs[i], -EPROTO, "HTTP/1.1 400 Bad Request\r\n");
}

static void test_nul_in_head_gets_400_at_once(void **state)
{
	static const char req[] = "CONNECT example.com:80 HTTP/1.1\r\nX: a\0b\r\n\r\n";
	struct conv c = conv_check_raw(NULL, (const uint8_t *)req, sizeof(req) - 1);

	assert_int_equal(c.res, -EPROTO);
	expect_out_starts(&c, "HTTP/1.1 400 ");
	assert_int_equal(c.used, strlen(req) + 1);
}

static void test_other_versions_get_505(void **state)
{
	expect_refused(NULL, "CONNECT example.com:80 HTTP/2.0\r\n\r\n", -EPROTONOSUPPORT,
		       "HTTP/1.1 505 HTTP Version Not Supported\r\n");
	expect_refused(NULL, "GET http://example.com/ HTTP/0.9\r\n\r\n", -EPROTONOSUPPORT,
		       "HTTP/1.1 505 ");
}

static void test_higher_minor_version_is_taken_as_1x(void **state)
{
	struct conv c = conv_check(NULL, "GET http://example.com/ HTTP/1.2\r\n\r\n");

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	expect_upstream("GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n");
}

static void test_lower_case_method_is_not_http(void **state)
{
	struct conv c = conv_check(NULL, "get http://example.com/ HTTP/1.1\r\n\r\n");

	assert_int_equal(c.res, -EPROTO);
	assert_int_equal(c.sent_len, 0);
}

static void test_too_many_fields_get_431(void **state)
{
	static char req[8192];
	size_t off = (size_t)sprintf(req, "CONNECT example.com:80 HTTP/1.1\r\n");

	for (unsigned i = 0; i < HTTP_FIELDS_MAX; i++)
		off += (size_t)sprintf(req + off, "X-%u: v\r\n", i);
	strcpy(req + off, "\r\n");
	assert_int_equal(conv_check(NULL, req).res, SOCKS_HS_REQUEST);
	strcpy(req + off, "X-last: v\r\n\r\n");
	expect_refused(NULL, req, -EMSGSIZE, "HTTP/1.1 431 Request Header Fields Too Large\r\n");
}

static void test_head_too_long_gets_431(void **state)
{
	static char req[HTTP_HEAD_MAX + 64];
	struct socks_opts small = {.http_head_max = 100};
	size_t off = (size_t)sprintf(req, "CONNECT example.com:80 HTTP/1.1\r\nX-Pad: ");
	struct conv c;

	memset(req + off, 'a', HTTP_HEAD_MAX);
	req[HTTP_HEAD_MAX + 32] = '\0';
	c = expect_refused(NULL, req, -EMSGSIZE, "HTTP/1.1 431 ");
	assert_int_equal(c.used, HTTP_HEAD_MAX);
	c = expect_refused(&small, req, -EMSGSIZE, "HTTP/1.1 431 ");
	assert_int_equal(c.used, 100);
	/* Exactly the limit is fine. */
	memset(req, 0, sizeof(req));
	off = (size_t)sprintf(req, "CONNECT example.com:80 HTTP/1.1\r\nX-Pad: ");
	memset(req + off, 'a', HTTP_HEAD_MAX - off - 4);
	memcpy(req + HTTP_HEAD_MAX - 4, "\r\n\r\n", 4);
	assert_int_equal(conv_check(NULL, req).res, SOCKS_HS_REQUEST);
}

/* ---- replies ---- */

static void test_reply_dial_failures(void **state)
{
	static const struct {
		int err;
		const char *status;
	} cases[] = {
	    {-ECONNREFUSED, "HTTP/1.1 502 Bad Gateway\r\n"},
	    {-ENXIO, "HTTP/1.1 502 "},
	    {-EHOSTUNREACH, "HTTP/1.1 502 "},
	    {-ETIMEDOUT, "HTTP/1.1 504 Gateway Timeout\r\n"},
	    {-EPERM, "HTTP/1.1 403 Forbidden\r\n"},
	    {-EACCES, "HTTP/1.1 403 "},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *proto[] = {CURL_CONNECT, CURL_GET};

		for (int k = 0; k < 2; k++) {
			conv_check(NULL, proto[k]);
			assert_int_equal(socks_hs_reply(&H, cases[i].err, NULL, NULL), 0);
			assert_true(H.out_len > strlen(cases[i].status));
			assert_memory_equal(H.out, cases[i].status, strlen(cases[i].status));
		}
	}
}

static void test_reply_body_names_the_target_and_reason(void **state)
{
	static const char want[] = "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
				   "Content-Length: 52\r\nConnection: close\r\n\r\n"
				   "502 Bad Gateway: example.com:80: connection refused\n";
	static const char detail[] = "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain\r\n"
				     "Content-Length: 31\r\nConnection: close\r\n\r\n"
				     "504 Gateway Timeout: no answer\n";

	conv_check(NULL, CURL_CONNECT);
	socks_hs_reply(&H, -ECONNREFUSED, NULL, NULL);
	assert_int_equal(H.out_len, strlen(want));
	assert_memory_equal(H.out, want, strlen(want));
	socks_hs_reply(&H, -ETIMEDOUT, NULL, "no answer");
	assert_int_equal(H.out_len, strlen(detail));
	assert_memory_equal(H.out, detail, strlen(detail));
}

static void test_http_reply_capacity(void **state)
{
	uint8_t out[64];

	assert_int_equal(http_reply(out, 40, 200, NULL, NULL), 39);
	assert_int_equal(http_reply(out, 39, 200, NULL, NULL), -ENOSPC);
	assert_int_equal(http_reply(out, sizeof(out), 502, NULL, NULL), -ENOSPC);
	assert_string_equal(http_status_text(599), "Error");
	assert_int_equal(http_status_for(-EIO), 502);
	assert_int_equal(http_status_for(-EINVAL), 400);
	assert_int_equal(http_status_for(-EOPNOTSUPP), 501);
}

/* ---- the pieces ---- */

static void test_basic_credentials(void **state)
{
	static const struct {
		const char *in, *user, *pass;
		int ret;
	} cases[] = {
	    /* RFC 7617 2 */
	    {"Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "Aladdin", "open sesame", 0},
	    {"basic   QWxhZGRpbjpvcGVuIHNlc2FtZQ", "Aladdin", "open sesame", 0},
	    {"BASIC dTpw", "u", "p", 0},
	    {"Basic OnB3", "", "pw", 0},
	    {"Basic YTpiOmM=", "a", "b:c", 0},
	    {"Basic dTo=", "u", "", 0},
	    {"Bearer dTpw", NULL, NULL, -EOPNOTSUPP},
	    {"Basicx dTpw", NULL, NULL, -EOPNOTSUPP},
	    {"Basic", NULL, NULL, -EINVAL},
	    {"Basic ", NULL, NULL, -EINVAL},
	    {"Basic dXNlcg==", NULL, NULL, -EINVAL}, /* "user": no colon */
	    {"Basic dT pw", NULL, NULL, -EINVAL},
	    {"Basic d", NULL, NULL, -EINVAL},
	    {"Basic dT=w", NULL, NULL, -EINVAL},
	    {"Basic dToAcA==", NULL, NULL, -EINVAL}, /* "u:\0p" */
	    {"Basic dToKcA==", NULL, NULL, -EINVAL}, /* "u:\np" */
	};
	char user[HTTP_CRED_MAX + 1], pass[HTTP_CRED_MAX + 1];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_span v = {cases[i].in, strlen(cases[i].in)};

		assert_int_equal(http_basic_decode(v, user, pass), cases[i].ret);
		if (!cases[i].ret) {
			assert_string_equal(user, cases[i].user);
			assert_string_equal(pass, cases[i].pass);
		}
	}
}

static void test_basic_credentials_length_limits(void **state)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char user[HTTP_CRED_MAX + 1], pass[HTTP_CRED_MAX + 1], in[1400];
	uint8_t raw[1024];
	size_t len, off;

	for (int variant = 0; variant < 3; variant++) {
		/* 255:255 fits; 256 of user, or 600 in all, does not. */
		size_t ulen = variant == 1 ? 256 : 255, plen = variant == 2 ? 400 : 255;

		memset(raw, 'a', ulen);
		raw[ulen] = ':';
		memset(raw + ulen + 1, 'b', plen);
		len = ulen + 1 + plen;
		off = (size_t)sprintf(in, "Basic ");
		for (size_t i = 0; i < len; i += 3) {
			uint32_t v = (uint32_t)raw[i] << 16 |
				     (i + 1 < len ? (uint32_t)raw[i + 1] << 8 : 0) |
				     (i + 2 < len ? raw[i + 2] : 0);

			in[off++] = b64[v >> 18 & 63];
			in[off++] = b64[v >> 12 & 63];
			in[off++] = i + 1 < len ? b64[v >> 6 & 63] : '=';
			in[off++] = i + 2 < len ? b64[v & 63] : '=';
		}
		assert_int_equal(http_basic_decode((struct http_span){in, off}, user, pass),
				 variant ? -EMSGSIZE : 0);
	}
	assert_int_equal(strlen(user), 255);
	assert_int_equal(strlen(pass), 255);
}

static void test_scan_finds_the_end_of_the_head(void **state)
{
	static const struct {
		const char *in;
		int ret;
		size_t used;
	} cases[] = {
	    {"A\r\n\r\nrest", 1, 5}, {"A\n\nrest", 1, 3},      {"A\r\n\nrest", 1, 4},
	    {"A\n\r\nrest", 1, 4},   {"\r\n", 1, 2},	       {"A\r\nB\r\n", 0, 6},
	    {"A\rB", -EPROTO, 3},    {"A\r\n\rB", -EPROTO, 5}, {"", 0, 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct http_scan s;
		size_t used = 12345;

		http_scan_init(&s);
		assert_int_equal(
		    http_scan(&s, (const uint8_t *)cases[i].in, strlen(cases[i].in), &used),
		    cases[i].ret);
		assert_int_equal(used, cases[i].used);
	}
}

static void test_forward_head_worst_growth_fits_the_slack(void **state)
{
	static char head[2048];
	static uint8_t out[2048 + HTTP_FORWARD_SLACK];
	struct http_span a, path;
	struct http_host hh;
	struct http_req r;
	size_t n = (size_t)sprintf(head, "GET http://h HTTP/1.0\n");
	int len;

	/* Every field grows by 2 bytes: ": " for ":", CRLF for LF. */
	for (unsigned i = 0; i < HTTP_FIELDS_MAX; i++)
		n += (size_t)sprintf(head + n, "a:b\n");
	n += (size_t)sprintf(head + n, "\n");
	assert_int_equal(http_req_parse(head, n, &r, NULL, 0), 0);
	assert_int_equal(http_uri_parse(r.target, &hh, &a, &path), 0);
	len = http_forward_head(&r, a, path, out, n + HTTP_FORWARD_SLACK, NULL, 0);
	assert_true(len > (int)(n + 2 * HTTP_FIELDS_MAX));
	assert_true(len <= (int)(n + HTTP_FORWARD_SLACK));
	assert_int_equal(http_forward_head(&r, a, path, out, (size_t)len - 1, NULL, 0), -ENOSPC);
}

static void test_authority_and_uri_pieces(void **state)
{
	struct http_span a, p;
	struct http_host h;

	assert_int_equal(http_authority_parse((struct http_span){"[::1]:443", 9}, 0, &h), 0);
	assert_true(h.bracketed);
	assert_int_equal(h.host.n, 3);
	assert_int_equal(h.port, 443);
	assert_int_equal(http_authority_parse((struct http_span){"host", 4}, 80, &h), 0);
	assert_int_equal(h.port, 80);
	assert_int_equal(http_authority_parse((struct http_span){"host", 4}, 0, &h), -EINVAL);
	assert_int_equal(http_uri_parse((struct http_span){"http://h:1/x?q", 14}, &h, &a, &p), 0);
	assert_int_equal(a.n, 3);
	assert_int_equal(p.n, 4);
	assert_int_equal(h.port, 1);
	assert_int_equal(http_uri_parse((struct http_span){"/x", 2}, &h, &a, &p), -EINVAL);
	assert_int_equal(http_uri_parse((struct http_span){"https://h/", 10}, &h, &a, &p),
			 -EOPNOTSUPP);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_connect_curl),
	    cmocka_unit_test(test_connect_curl_ipv6),
	    cmocka_unit_test(test_connect_curl_http10),
	    cmocka_unit_test(test_connect_curl_with_credentials),
	    cmocka_unit_test(test_connect_without_credentials_gets_407),
	    cmocka_unit_test(test_connect_with_wrong_credentials_gets_407),
	    cmocka_unit_test(test_connect_bad_targets_get_400),
	    cmocka_unit_test(test_forward_curl_get),
	    cmocka_unit_test(test_forward_curl_get_with_credentials),
	    cmocka_unit_test(test_forward_credentials_are_not_sent_upstream),
	    cmocka_unit_test(test_forward_curl_post_body_is_early_data),
	    cmocka_unit_test(test_forward_drops_hop_by_hop_fields),
	    cmocka_unit_test(test_forward_keeps_http10_and_adds_host),
	    cmocka_unit_test(test_forward_target_forms),
	    cmocka_unit_test(test_forward_accepts_bare_lf_and_writes_crlf),
	    cmocka_unit_test(test_forward_other_schemes_get_501),
	    cmocka_unit_test(test_forward_non_proxy_targets_get_400),
	    cmocka_unit_test(test_forward_ambiguous_framing_gets_400),
	    cmocka_unit_test(test_forward_allowed_framing),
	    cmocka_unit_test(test_disabled_methods_get_405),
	    cmocka_unit_test(test_malformed_heads_get_400),
	    cmocka_unit_test(test_nul_in_head_gets_400_at_once),
	    cmocka_unit_test(test_other_versions_get_505),
	    cmocka_unit_test(test_higher_minor_version_is_taken_as_1x),
	    cmocka_unit_test(test_lower_case_method_is_not_http),
	    cmocka_unit_test(test_too_many_fields_get_431),
	    cmocka_unit_test(test_head_too_long_gets_431),
	    cmocka_unit_test(test_reply_dial_failures),
	    cmocka_unit_test(test_reply_body_names_the_target_and_reason),
	    cmocka_unit_test(test_http_reply_capacity),
	    cmocka_unit_test(test_basic_credentials),
	    cmocka_unit_test(test_basic_credentials_length_limits),
	    cmocka_unit_test(test_scan_finds_the_end_of_the_head),
	    cmocka_unit_test(test_forward_head_worst_growth_fits_the_slack),
	    cmocka_unit_test(test_authority_and_uri_pieces),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
