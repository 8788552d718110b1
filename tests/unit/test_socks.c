/* Unit tests for the proxy port's handshake: SOCKS5, SOCKS4, SOCKS4a, replies, UDP headers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "proxy/socks.h"

/*
 * Vectors are the bytes curl 7.88.1 sent to a capturing server (one line
 * per message as read from the socket), and RFC 1928/1929 layouts. Every
 * conversation is fed whole, one byte at a time, and cut in two at every
 * byte, and all ways must agree on the outcome, the replies and the bytes
 * taken.
 */

/* curl --socks5-hostname 127.0.0.1:P http://example.vmbus/x */
#define CURL_S5H_GREET "05020001"
#define CURL_S5H_REQ   "050100030d6578616d706c652e766d6275730050"
/* curl --socks5 127.0.0.1:P http://127.0.0.1:8080/x */
#define CURL_S5_REQ "050100017f0000011f90"
/* curl --socks5 127.0.0.1:P http://[::1]:8080/ */
#define CURL_S56_REQ "05010004000000000000000000000000000000011f90"
/* curl --socks5-hostname user:pass@127.0.0.1:P http://example.com/ */
#define CURL_S5A_GREET "0503000102"
#define CURL_S5A_AUTH  "0104757365720470617373"
#define CURL_S5A_REQ   "050100030b6578616d706c652e636f6d0050"
/* curl --socks4 127.0.0.1:P http://127.0.0.1:8080/x */
#define CURL_S4_REQ "04011f907f00000100"
/* curl --socks4a 127.0.0.1:P http://example.com/x */
#define CURL_S4A_REQ "0401005000000001006578616d706c652e636f6d00"
/* What curl sends through the tunnel next: "GET /x HTTP/1.1\r\n" (early data here). */
#define EARLY "474554202f7820485454502f312e310d0a"

static struct socks_hs H, H2;

struct conv {
	int res;
	size_t used; /* bytes taken in all */
	uint8_t sent[4096];
	size_t sent_len;
};

static size_t unhex(const char *s, uint8_t *out)
{
	size_t n = strlen(s) / 2;

	for (size_t i = 0; i < n; i++) {
		unsigned v;

		assert_int_equal(sscanf(s + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
	return n;
}

/* Feeds p[0..n) in pieces ending at cuts[] (ascending, the last is n), as a caller would. */
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
		assert_int_equal(H.req.cmd, H2.req.cmd);
		assert_memory_equal(&H.req.to, &H2.req.to, sizeof(H.req.to));
		assert_string_equal(H.req.user, H2.req.user);
		assert_int_equal(H.req.authenticated, H2.req.authenticated);
	} else if (a->res < 0) {
		assert_string_equal(H.why, H2.why);
	}
}

/* Runs the conversation every way; H holds the whole run's handshake afterwards. */
static struct conv conv_check(const struct socks_opts *o, const char *hex)
{
	static uint8_t p[2048];
	static size_t cuts[2048];
	size_t n = unhex(hex, p);
	struct conv whole, split;

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
	return whole;
}

static void expect_sent(const struct conv *c, const char *hex)
{
	uint8_t want[1024];
	size_t n = unhex(hex, want);

	assert_int_equal(c->sent_len, n);
	assert_memory_equal(c->sent, want, n);
}

static void expect_name(const char *name, uint16_t port)
{
	assert_int_equal(H.req.to.atyp, SOCKS_ATYP_NAME);
	assert_string_equal(H.req.to.name, name);
	assert_int_equal(H.req.to.port, port);
}

static void expect_ip(uint8_t atyp, const char *hexip, uint16_t port)
{
	uint8_t ip[16] = {0};

	unhex(hexip, ip);
	assert_int_equal(H.req.to.atyp, atyp);
	assert_memory_equal(H.req.to.ip, ip, 16);
	assert_int_equal(H.req.to.port, port);
}

static int t_auth(void *arg, const char *user, const char *pass)
{
	(*(int *)arg)++;
	return strcmp(user, "user") || strcmp(pass, "pass") ? -1 : 0;
}

static int auth_calls;
static const struct socks_opts auth_opts = {.auth = t_auth, .auth_arg = &auth_calls};

/* ---- SOCKS5, as curl speaks it ---- */

static void test_socks5_curl_hostname_connect(void **state)
{
	struct conv c = conv_check(NULL, CURL_S5H_GREET CURL_S5H_REQ);

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	expect_sent(&c, "0500");
	assert_int_equal(H.req.proto, SOCKS_P_SOCKS5);
	assert_int_equal(H.req.cmd, SOCKS_CMD_CONNECT);
	expect_name("example.vmbus", 80);
	assert_string_equal(H.req.user, "");
	assert_false(H.req.authenticated);
}

static void test_socks5_curl_ipv4_connect(void **state)
{
	struct conv c = conv_check(NULL, CURL_S5H_GREET CURL_S5_REQ);

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	expect_sent(&c, "0500");
	expect_ip(SOCKS_ATYP_IPV4, "7f000001", 8080);
}

static void test_socks5_curl_ipv6_connect(void **state)
{
	struct conv c = conv_check(NULL, CURL_S5H_GREET CURL_S56_REQ);

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	expect_ip(SOCKS_ATYP_IPV6, "00000000000000000000000000000001", 8080);
}

static void test_socks5_curl_user_password(void **state)
{
	struct conv c;

	auth_calls = 0;
	c = conv_check(&auth_opts, CURL_S5A_GREET CURL_S5A_AUTH CURL_S5A_REQ);
	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	expect_sent(&c, "0502"
			"0100");
	expect_name("example.com", 80);
	assert_string_equal(H.req.user, "user");
	assert_true(H.req.authenticated);
	assert_true(auth_calls > 0);
}

static void test_socks5_early_data_is_left_for_the_caller(void **state)
{
	struct conv c = conv_check(NULL, CURL_S5H_GREET CURL_S5H_REQ EARLY);

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_int_equal(c.used, 4 + 20);
}

static void test_socks5_pipelined_auth_and_request_take_one_message_each(void **state)
{
	uint8_t p[64];
	size_t n = unhex(CURL_S5A_GREET CURL_S5A_AUTH CURL_S5A_REQ, p), used;

	socks_hs_init(&H, &auth_opts);
	assert_int_equal(socks_hs_feed(&H, p, n, &used), SOCKS_HS_REPLY);
	assert_int_equal(used, 5);
	assert_int_equal(socks_hs_feed(&H, p + 5, n - 5, &used), SOCKS_HS_REPLY);
	assert_int_equal(used, 11);
	assert_int_equal(socks_hs_feed(&H, p + 16, n - 16, &used), SOCKS_HS_REQUEST);
	assert_int_equal(used, n - 16);
}

static void test_socks5_offering_only_userpass_without_auth_accepts_anyone(void **state)
{
	struct conv c = conv_check(NULL, "050102"
					 "01036a6f6503787878" CURL_S5H_REQ);

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	expect_sent(&c, "0502"
			"0100");
	assert_string_equal(H.req.user, "joe");
	assert_false(H.req.authenticated);
}

static void test_socks5_empty_password_reaches_the_checker(void **state)
{
	struct conv c = conv_check(&auth_opts, "050102"
					       "0104757365720000");

	assert_int_equal(c.res, -EACCES);
	expect_sent(&c, "0502"
			"0101");
}

static void test_socks5_udp_associate_when_enabled(void **state)
{
	struct socks_opts o = {.cmds = SOCKS_CMD_BIT(SOCKS_CMD_CONNECT) |
				       SOCKS_CMD_BIT(SOCKS_CMD_UDP_ASSOCIATE)};
	struct conv c = conv_check(&o, "050100"
				       "05030001000000000000");

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_int_equal(H.req.cmd, SOCKS_CMD_UDP_ASSOCIATE);
	expect_ip(SOCKS_ATYP_IPV4, "00000000", 0);
}

static void test_socks5_bind_when_enabled(void **state)
{
	struct socks_opts o = {.cmds = SOCKS_CMD_BIT(SOCKS_CMD_BIND)};
	struct conv c = conv_check(&o, "050100"
				       "050200010a0000010050");

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_int_equal(H.req.cmd, SOCKS_CMD_BIND);
}

static void test_socks5_name_that_is_an_ip_literal_becomes_an_address(void **state)
{
	/* "10.1.2.3" and "::1" sent as ATYP 3 */
	struct conv c;

	c = conv_check(NULL, "050100"
			     "05010003083130"
			     "2e312e322e330050");
	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	expect_ip(SOCKS_ATYP_IPV4, "0a010203", 80);
	c = conv_check(NULL, "050100"
			     "05010003033a3a310050");
	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	expect_ip(SOCKS_ATYP_IPV6, "00000000000000000000000000000001", 80);
}

/* ---- SOCKS5 refusals ---- */

static void test_socks5_refuses_unknown_first_byte_silently(void **state)
{
	static const char *const firsts[] = {"16030100", "00", "03", "06", "67", "7f", "ff"};

	for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
		struct conv c = conv_check(NULL, firsts[i]);

		assert_int_equal(c.res, -EPROTO);
		assert_int_equal(c.sent_len, 0);
		assert_int_equal(c.used, 0);
	}
	assert_non_null(strstr(H.why, "0xff"));
	conv_check(NULL, "16030100");
	assert_non_null(strstr(H.why, "TLS"));
}

static void test_socks5_disabled_answers_no_method(void **state)
{
	struct socks_opts o = {.protos = SOCKS_P_SOCKS4 | SOCKS_P_HTTP_CONNECT};
	struct conv c = conv_check(&o, CURL_S5H_GREET CURL_S5H_REQ);

	assert_int_equal(c.res, -EPROTONOSUPPORT);
	expect_sent(&c, "05ff");
	assert_int_equal(c.used, 4);
}

static void test_socks5_no_acceptable_method(void **state)
{
	struct conv c;

	c = conv_check(NULL, "0500");
	assert_int_equal(c.res, -EACCES);
	expect_sent(&c, "05ff");
	c = conv_check(NULL, "05020103");
	assert_int_equal(c.res, -EACCES);
	expect_sent(&c, "05ff");
	c = conv_check(&auth_opts, "050100");
	assert_int_equal(c.res, -EACCES);
	expect_sent(&c, "05ff");
	assert_non_null(strstr(H.why, "required"));
}

static void test_socks5_wrong_password_fails_the_subnegotiation(void **state)
{
	struct conv c =
	    conv_check(&auth_opts, CURL_S5A_GREET "010475736572046261646d" CURL_S5A_REQ);

	assert_int_equal(c.res, -EACCES);
	expect_sent(&c, "0502"
			"0101");
	assert_int_equal(c.used, 5 + 11);
	assert_non_null(strstr(H.why, "user"));
}

static void test_socks5_userpass_subnegotiation_must_be_version_1(void **state)
{
	struct conv c = conv_check(&auth_opts, CURL_S5A_GREET "0504757365720470617373");

	assert_int_equal(c.res, -EPROTO);
	expect_sent(&c, "0502"
			"0101");
}

static void test_socks5_nul_in_credentials_is_refused(void **state)
{
	struct conv c = conv_check(&auth_opts, CURL_S5A_GREET "010475730072047061737300");

	assert_int_equal(c.res, -EACCES);
	expect_sent(&c, "0502"
			"0101");
}

static void test_socks5_request_must_be_version_5(void **state)
{
	struct conv c = conv_check(NULL, "050100"
					 "040100017f0000010050");

	assert_int_equal(c.res, -EPROTO);
	expect_sent(&c, "0500"
			"05010001000000000000");
}

static void test_socks5_unknown_address_type(void **state)
{
	struct conv c = conv_check(NULL, "050100"
					 "050100027f0000010050");

	assert_int_equal(c.res, -EAFNOSUPPORT);
	expect_sent(&c, "0500"
			"05080001000000000000");
	assert_int_equal(c.used, 3 + 5);
}

static void test_socks5_commands_not_enabled(void **state)
{
	static const char *const reqs[] = {
	    "050100"
	    "050200010a0000010050", /* BIND */
	    "050100"
	    "050300010a0000010050", /* UDP ASSOCIATE */
	    "050100"
	    "050900010a0000010050", /* no such command */
	    "050100"
	    "050000010a0000010050",
	};

	for (size_t i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
		struct conv c = conv_check(NULL, reqs[i]);

		assert_int_equal(c.res, -EOPNOTSUPP);
		expect_sent(&c, "0500"
				"05070001000000000000");
	}
}

static void test_socks5_bad_host_names(void **state)
{
	static const char *const bad[] = {
	    "",
	    "exa mple.com",
	    ("a\x01"
	     "b"),
	    "evil/x",
	    "a%b",
	    "host:80",
	    "...",
	    "1.2.3.04",
	    "2130706433",
	    "0x7f.1",
	    "10.0.0.256",
	    "bücher.de",
	    "a@b",
	    "fe80::1%eth0",
	};
	char hex[1200];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		size_t n = strlen(bad[i]), off;
		struct conv c;

		off = (size_t)sprintf(hex,
				      "050100"
				      "05010003%02x",
				      (unsigned)n);
		for (size_t k = 0; k < n; k++)
			off += (size_t)sprintf(hex + off, "%02x", (uint8_t)bad[i][k]);
		sprintf(hex + off, "0050");
		c = conv_check(NULL, hex);
		assert_int_equal(c.res, -EINVAL);
		expect_sent(&c, "0500"
				"05010001000000000000");
	}
}

static void test_socks5_connect_to_port_zero(void **state)
{
	struct conv c = conv_check(NULL, "050100"
					 "050100010a0000010000");

	assert_int_equal(c.res, -EINVAL);
	expect_sent(&c, "0500"
			"05010001000000000000");
}

static void test_socks5_feed_after_the_end_takes_nothing(void **state)
{
	uint8_t p[64];
	size_t n = unhex(CURL_S5H_GREET CURL_S5H_REQ, p), used;

	assert_int_equal(conv_check(NULL, CURL_S5H_GREET CURL_S5H_REQ).res, SOCKS_HS_REQUEST);
	assert_int_equal(socks_hs_feed(&H, p, n, &used), -EALREADY);
	assert_int_equal(used, 0);
	assert_int_equal(conv_check(NULL, "00").res, -EPROTO);
	assert_int_equal(socks_hs_feed(&H, p, n, &used), -EALREADY);
}

static void test_socks5_empty_feed_needs_more(void **state)
{
	size_t used = 1;

	socks_hs_init(&H, NULL);
	assert_int_equal(socks_hs_feed(&H, NULL, 0, &used), SOCKS_HS_MORE);
	assert_int_equal(used, 0);
}

/* ---- SOCKS4 and SOCKS4a ---- */

static void test_socks4_curl_connect(void **state)
{
	struct conv c = conv_check(NULL, CURL_S4_REQ EARLY);

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_int_equal(c.sent_len, 0);
	assert_int_equal(c.used, 9);
	assert_int_equal(H.req.proto, SOCKS_P_SOCKS4);
	expect_ip(SOCKS_ATYP_IPV4, "7f000001", 8080);
}

static void test_socks4a_curl_connect(void **state)
{
	struct conv c = conv_check(NULL, CURL_S4A_REQ EARLY);

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_int_equal(c.used, 21);
	assert_int_equal(H.req.proto, SOCKS_P_SOCKS4A);
	expect_name("example.com", 80);
}

static void test_socks4_user_id_is_kept_printable(void **state)
{
	struct conv c = conv_check(NULL, "04010050"
					 "0a000001"
					 "626f0962"
					 "00");

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_string_equal(H.req.user, "bo?b");
	assert_false(H.req.authenticated);
}

static void test_socks4_bind_when_enabled(void **state)
{
	struct socks_opts o = {.cmds = SOCKS_CMD_BIT(SOCKS_CMD_BIND)};
	struct conv c = conv_check(&o, "04020000"
				       "0a000001"
				       "00");

	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_int_equal(H.req.cmd, SOCKS_CMD_BIND);
}

static void test_socks4_refusals(void **state)
{
	static const struct socks_opts no4 = {.protos = SOCKS_P_SOCKS5 | SOCKS_P_SOCKS4A};
	static const struct socks_opts no4a = {.protos = SOCKS_P_SOCKS5 | SOCKS_P_SOCKS4};
	static const struct {
		const struct socks_opts *o;
		const char *in;
		int err;
	} cases[] = {
	    {&no4, CURL_S4_REQ, -EPROTONOSUPPORT},
	    {&no4a, CURL_S4A_REQ, -EPROTONOSUPPORT},
	    {&auth_opts, CURL_S4_REQ, -EACCES},
	    {NULL,
	     "04030050"
	     "0a000001"
	     "00",
	     -EOPNOTSUPP},
	    {NULL,
	     "04020050"
	     "0a000001"
	     "00",
	     -EOPNOTSUPP},
	    {NULL,
	     "04090050"
	     "0a000001"
	     "00",
	     -EOPNOTSUPP},
	    {NULL,
	     "04010000"
	     "0a000001"
	     "00",
	     -EINVAL},
	    {NULL,
	     "04010050"
	     "00000001"
	     "00"
	     "00",
	     -EINVAL},
	    {NULL,
	     "04010050"
	     "00000001"
	     "00"
	     "612062"
	     "00",
	     -EINVAL},
	    {NULL,
	     "04010050"
	     "00000001"
	     "00"
	     "31302e302e302e30303100",
	     -EINVAL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct conv c = conv_check(cases[i].o, cases[i].in);

		assert_int_equal(c.res, cases[i].err);
		expect_sent(&c, "005b000000000000");
		assert_int_equal(c.used, strlen(cases[i].in) / 2);
	}
}

static void test_socks4_overlong_fields(void **state)
{
	char hex[2 * 600 + 1];
	size_t off;
	struct conv c;

	off = (size_t)sprintf(hex, "04010050"
				   "0a000001");
	for (int i = 0; i < 256; i++)
		off += (size_t)sprintf(hex + off, "61");
	strcpy(hex + off, "00");
	c = conv_check(NULL, hex);
	assert_int_equal(c.res, -EMSGSIZE);
	expect_sent(&c, "005b000000000000");
	assert_int_equal(c.used, 8 + 256);

	off = (size_t)sprintf(hex, "04010050"
				   "00000001"
				   "00");
	for (int i = 0; i < 256; i++)
		off += (size_t)sprintf(hex + off, "61");
	strcpy(hex + off, "00");
	c = conv_check(NULL, hex);
	assert_int_equal(c.res, -EMSGSIZE);

	/* 255 of each is the most, and fine. */
	off = (size_t)sprintf(hex, "04010050"
				   "00000001");
	for (int i = 0; i < 255; i++)
		off += (size_t)sprintf(hex + off, "75");
	off += (size_t)sprintf(hex + off, "00");
	for (int i = 0; i < 255; i++)
		off += (size_t)sprintf(hex + off, "%s", i % 50 == 49 ? "2e" : "61");
	strcpy(hex + off, "00");
	c = conv_check(NULL, hex);
	assert_int_equal(c.res, SOCKS_HS_REQUEST);
	assert_int_equal(strlen(H.req.to.name), 255);
}

/* ---- replies after the dial ---- */

static void test_reply_socks5_success_with_bound_address(void **state)
{
	struct socks_target b4 = {.atyp = SOCKS_ATYP_IPV4, .port = 1234, .ip = {10, 0, 0, 1}};
	struct socks_target b6 = {
	    .atyp = SOCKS_ATYP_IPV6, .port = 443, .ip = {0x20, 0x01, 0x0d, 0xb8}};
	struct conv c = conv_check(NULL, CURL_S5H_GREET CURL_S5H_REQ);
	uint8_t want[32];
	size_t n;

	(void)c;
	assert_int_equal(socks_hs_reply(&H, 0, &b4, NULL), 0);
	n = unhex("050000010a00000104d2", want);
	assert_int_equal(H.out_len, n);
	assert_memory_equal(H.out, want, n);
	assert_int_equal(socks_hs_reply(&H, 0, &b6, NULL), 0);
	n = unhex("0500000420010db800000000000000000000000001bb", want);
	assert_int_equal(H.out_len, n);
	assert_memory_equal(H.out, want, n);
	assert_int_equal(socks_hs_reply(&H, -ECONNREFUSED, NULL, NULL), 0);
	n = unhex("05050001000000000000", want);
	assert_int_equal(H.out_len, n);
	assert_memory_equal(H.out, want, n);
}

static void test_reply_socks4(void **state)
{
	struct socks_target b = {.atyp = SOCKS_ATYP_IPV4, .port = 80, .ip = {1, 2, 3, 4}};
	uint8_t want[8];

	conv_check(NULL, CURL_S4A_REQ);
	assert_int_equal(socks_hs_reply(&H, 0, &b, NULL), 0);
	unhex("005a005001020304", want);
	assert_int_equal(H.out_len, 8);
	assert_memory_equal(H.out, want, 8);
	assert_int_equal(socks_hs_reply(&H, -ETIMEDOUT, &b, NULL), 0);
	assert_int_equal(H.out[1], SOCKS4_REP_REJECTED);
}

static void test_reply_before_a_request_is_refused(void **state)
{
	socks_hs_init(&H, NULL);
	assert_int_equal(socks_hs_reply(&H, 0, NULL, NULL), -EINVAL);
	conv_check(NULL, "0500");
	assert_int_equal(socks_hs_reply(&H, 0, NULL, NULL), -EINVAL);
}

static void test_reply_codes_from_errno(void **state)
{
	static const struct {
		int err;
		uint8_t code;
	} map[] = {
	    {0, 0x00},
	    {-EPERM, 0x02},
	    {-EACCES, 0x02},
	    {-ENETUNREACH, 0x03},
	    {-EHOSTUNREACH, 0x04},
	    {-ETIMEDOUT, 0x04},
	    {-ENXIO, 0x04},
	    {-EADDRNOTAVAIL, 0x04},
	    {-ECONNREFUSED, 0x05},
	    {-EOPNOTSUPP, 0x07},
	    {-EAFNOSUPPORT, 0x08},
	    {-EIO, 0x01},
	    {-ECONNRESET, 0x01},
	    {-ENOMEM, 0x01},
	    {-EINVAL, 0x01},
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		assert_int_equal(socks_rep5_code(map[i].err), map[i].code);
		assert_int_equal(socks_rep4_code(map[i].err), map[i].err ? 0x5b : 0x5a);
	}
	assert_string_equal(socks_rep5_text(0x05), "connection refused");
	assert_string_equal(socks_rep5_text(0x09), "unassigned");
}

static void test_reply_encoders_respect_capacity(void **state)
{
	struct socks_target name = {.atyp = SOCKS_ATYP_NAME, .port = 1, .name = "relay.example"};
	uint8_t out[32];

	assert_int_equal(socks_rep5_encode(out, 9, 0, NULL), -ENOSPC);
	assert_int_equal(socks_rep5_encode(out, 10, 0, NULL), 10);
	assert_int_equal(socks_rep5_encode(out, sizeof(out), 0, &name), 4 + 1 + 13 + 2);
	assert_int_equal(out[3], SOCKS_ATYP_NAME);
	assert_int_equal(out[4], 13);
}

/* ---- UDP ASSOCIATE datagrams ---- */

static void test_udp_header_round_trips(void **state)
{
	static const struct socks_target ts[] = {
	    {.atyp = SOCKS_ATYP_IPV4, .port = 53, .ip = {10, 0, 0, 1}},
	    {.atyp = SOCKS_ATYP_IPV6, .port = 5353, .ip = {0xfe, 0x80, [15] = 1}},
	    {.atyp = SOCKS_ATYP_NAME, .port = 123, .name = "ntp.example"},
	};
	static const size_t lens[] = {10, 22, 4 + 1 + 11 + 2};

	for (size_t i = 0; i < 3; i++) {
		uint8_t buf[SOCKS_UDP_HDR_MAX + 8];
		struct socks_target t;
		size_t hl;
		int n = socks_udp_build(buf, sizeof(buf), &ts[i]);

		assert_int_equal(n, (int)lens[i]);
		memcpy(buf + n, "data", 4);
		assert_int_equal(socks_udp_parse(buf, (size_t)n + 4, &t, &hl), 0);
		assert_int_equal(hl, (size_t)n);
		assert_memory_equal(&t, &ts[i], sizeof(t));
		assert_int_equal(socks_udp_build(buf, (size_t)n - 1, &ts[i]), -ENOSPC);
	}
}

static void test_udp_header_vector(void **state)
{
	uint8_t p[32];
	size_t n = unhex("000000010a0000010035"
			 "abcd",
			 p),
	       hl;
	struct socks_target t;

	assert_int_equal(socks_udp_parse(p, n, &t, &hl), 0);
	assert_int_equal(hl, 10);
	assert_int_equal(t.port, 53);
	for (size_t k = 0; k < 10; k++)
		assert_int_equal(socks_udp_parse(p, k, &t, &hl), -EPROTO);
}

static void test_udp_header_rejections(void **state)
{
	uint8_t p[32];
	struct socks_target t;
	size_t hl;

	assert_int_equal(socks_udp_parse(p, unhex("000001010a0000010035", p), &t, &hl),
			 -EOPNOTSUPP);
	assert_int_equal(socks_udp_parse(p, unhex("000000020a0000010035", p), &t, &hl),
			 -EAFNOSUPPORT);
	assert_int_equal(socks_udp_parse(p, unhex("00000003036120620035", p), &t, &hl), -EINVAL);
	assert_int_equal(socks_udp_parse(p, unhex("00000003000035", p), &t, &hl), -EINVAL);
}

/* ---- targets ---- */

static void test_target_host_literals_and_names(void **state)
{
	static const struct {
		const char *in, *fmt;
		uint8_t atyp;
	} ok[] = {
	    {"127.0.0.1", "127.0.0.1:80", SOCKS_ATYP_IPV4},
	    {"0.0.0.0", "0.0.0.0:80", SOCKS_ATYP_IPV4},
	    {"::", "[::]:80", SOCKS_ATYP_IPV6},
	    {"::1", "[::1]:80", SOCKS_ATYP_IPV6},
	    {"2001:DB8::1", "[2001:db8::1]:80", SOCKS_ATYP_IPV6},
	    {"2001:db8:0:0:1:0:0:1", "[2001:db8::1:0:0:1]:80", SOCKS_ATYP_IPV6},
	    {"1:0:0:2:0:0:0:3", "[1:0:0:2::3]:80", SOCKS_ATYP_IPV6},
	    {"2001:db8:0:1:1:1:1:1", "[2001:db8:0:1:1:1:1:1]:80", SOCKS_ATYP_IPV6},
	    {"1::", "[1::]:80", SOCKS_ATYP_IPV6},
	    {"1:2:3:4:5:6:7::", "[1:2:3:4:5:6:7:0]:80", SOCKS_ATYP_IPV6},
	    {"::ffff:10.1.2.3", "[::ffff:a01:203]:80", SOCKS_ATYP_IPV6},
	    {"example.com", "example.com:80", SOCKS_ATYP_NAME},
	    {"web.vm1.vmbus.", "web.vm1.vmbus.:80", SOCKS_ATYP_NAME},
	    {"_srv.x-y.Z9", "_srv.x-y.Z9:80", SOCKS_ATYP_NAME},
	    {"localhost", "localhost:80", SOCKS_ATYP_NAME},
	    {"10.0.0.1.example", "10.0.0.1.example:80", SOCKS_ATYP_NAME},
	};
	static const char *const bad[] = {
	    "",
	    ".",
	    "1.2.3",
	    "1.2.3.4.5",
	    "01.2.3.4",
	    "256.1.1.1",
	    "1:2",
	    ":::",
	    "1::2::3",
	    "12345::",
	    "::ffff:1.2.3",
	    "g::1",
	    "::1%1",
	    "[::1]",
	    "a b",
	    "a/b",
	    "123",
	    "a.0x10",
	    "a_b.9com",
	    "1:2:3:4:5:6:7:8:9",
	    "1::2:3:4:5:6:7:8",
	    ":1",
	    "1:",
	};
	struct socks_target t;
	char buf[300];

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(socks_target_host(&t, ok[i].in, strlen(ok[i].in), 80), 0);
		assert_int_equal(t.atyp, ok[i].atyp);
		assert_string_equal(socks_target_format(&t, buf, sizeof(buf)), ok[i].fmt);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(socks_target_host(&t, bad[i], strlen(bad[i]), 80), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_socks5_curl_hostname_connect),
	    cmocka_unit_test(test_socks5_curl_ipv4_connect),
	    cmocka_unit_test(test_socks5_curl_ipv6_connect),
	    cmocka_unit_test(test_socks5_curl_user_password),
	    cmocka_unit_test(test_socks5_early_data_is_left_for_the_caller),
	    cmocka_unit_test(test_socks5_pipelined_auth_and_request_take_one_message_each),
	    cmocka_unit_test(test_socks5_offering_only_userpass_without_auth_accepts_anyone),
	    cmocka_unit_test(test_socks5_empty_password_reaches_the_checker),
	    cmocka_unit_test(test_socks5_udp_associate_when_enabled),
	    cmocka_unit_test(test_socks5_bind_when_enabled),
	    cmocka_unit_test(test_socks5_name_that_is_an_ip_literal_becomes_an_address),
	    cmocka_unit_test(test_socks5_refuses_unknown_first_byte_silently),
	    cmocka_unit_test(test_socks5_disabled_answers_no_method),
	    cmocka_unit_test(test_socks5_no_acceptable_method),
	    cmocka_unit_test(test_socks5_wrong_password_fails_the_subnegotiation),
	    cmocka_unit_test(test_socks5_userpass_subnegotiation_must_be_version_1),
	    cmocka_unit_test(test_socks5_nul_in_credentials_is_refused),
	    cmocka_unit_test(test_socks5_request_must_be_version_5),
	    cmocka_unit_test(test_socks5_unknown_address_type),
	    cmocka_unit_test(test_socks5_commands_not_enabled),
	    cmocka_unit_test(test_socks5_bad_host_names),
	    cmocka_unit_test(test_socks5_connect_to_port_zero),
	    cmocka_unit_test(test_socks5_feed_after_the_end_takes_nothing),
	    cmocka_unit_test(test_socks5_empty_feed_needs_more),
	    cmocka_unit_test(test_socks4_curl_connect),
	    cmocka_unit_test(test_socks4a_curl_connect),
	    cmocka_unit_test(test_socks4_user_id_is_kept_printable),
	    cmocka_unit_test(test_socks4_bind_when_enabled),
	    cmocka_unit_test(test_socks4_refusals),
	    cmocka_unit_test(test_socks4_overlong_fields),
	    cmocka_unit_test(test_reply_socks5_success_with_bound_address),
	    cmocka_unit_test(test_reply_socks4),
	    cmocka_unit_test(test_reply_before_a_request_is_refused),
	    cmocka_unit_test(test_reply_codes_from_errno),
	    cmocka_unit_test(test_reply_encoders_respect_capacity),
	    cmocka_unit_test(test_udp_header_round_trips),
	    cmocka_unit_test(test_udp_header_vector),
	    cmocka_unit_test(test_udp_header_rejections),
	    cmocka_unit_test(test_target_host_literals_and_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
