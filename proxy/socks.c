/* The proxy port's handshake: detection, SOCKS5/4/4a messages, HTTP via http.c, replies. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "core/err.h"
#include "core/why.h"
#include "core/wire.h"
#include "proxy/socks.h"

/*
 * Theory of operation
 *
 * States, and the event that leaves each (every message is collected whole
 * into in[] before it is looked at, taking no byte past its end):
 *
 *   DETECT   first byte: 0x05 -> GREET5, 0x04 -> REQ4, 'A'..'Z' -> HTTP,
 *            anything else -> FAILED (nothing to send: we do not know the
 *            client's language)
 *   GREET5   VER NMETHODS METHODS: choose no-auth or user/password, send
 *            05 M -> AUTH5 or REQ5; no acceptable method: 05 FF -> FAILED
 *   AUTH5    VER ULEN UNAME PLEN PASSWD (RFC 1929): check, send 01 00 ->
 *            REQ5, or 01 01 -> FAILED
 *   REQ5     VER CMD RSV ATYP DST.ADDR DST.PORT -> REQUESTED, or a reply
 *            with the error's code -> FAILED
 *   REQ4     VN CD DSTPORT DSTIP USERID NUL [HOST NUL if DSTIP is 0.0.0.x,
 *            x != 0: SOCKS4a] -> REQUESTED, or 00 5B -> FAILED
 *   HTTP     bytes up to the blank line (http_scan), at most head_max ->
 *            REQUESTED, or an HTTP error response -> FAILED
 *   REQUESTED, FAILED   over: socks_hs_feed() takes nothing more
 *
 * A protocol that is not enabled is refused only once its first message is
 * in, in that protocol's own terms, so that the client reads a refusal
 * rather than a reset.
 */

enum socks_state {
	SOCKS_S_DETECT,
	SOCKS_S_GREET5,
	SOCKS_S_AUTH5,
	SOCKS_S_REQ5,
	SOCKS_S_REQ4,
	SOCKS_S_HTTP,
	SOCKS_S_REQUESTED,
	SOCKS_S_FAILED,
};

#define SOCKS_METHOD_NONE     0x00
#define SOCKS_METHOD_USERPASS 0x02
#define SOCKS_METHOD_REFUSED  0xff

/* ---- addresses and names ---- */

/* Dotted decimal, exactly four parts, no leading zeros (as inet_pton). */
static int socks_ip4_parse(const char *s, size_t n, uint8_t out[4])
{
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		size_t start = i;
		unsigned v = 0;

		while (i < n && s[i] >= '0' && s[i] <= '9' && i - start < 3)
			v = v * 10 + (unsigned)(s[i++] - '0');
		if (i == start || v > 255 || (i - start > 1 && s[start] == '0'))
			return -EINVAL;
		out[part] = (uint8_t)v;
		if (part < 3 && (i == n || s[i++] != '.'))
			return -EINVAL;
	}
	return i == n ? 0 : -EINVAL;
}

static int socks_hex(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* RFC 4291 2.2 text: groups of 1..4 hex digits, one "::", an IPv4 tail; no zone. */
static int socks_ip6_parse(const char *s, size_t n, uint8_t out[16])
{
	uint16_t w[8];
	int nw = 0, gap = -1;
	size_t i = 0;

	if (n >= 2 && s[0] == ':') {
		if (s[1] != ':')
			return -EINVAL;
		gap = 0;
		i = 2;
	}
	while (i < n) {
		size_t j = i;
		unsigned v = 0;

		while (j < n && j - i < 5 && socks_hex(s[j]) >= 0)
			v = v * 16 + (unsigned)socks_hex(s[j++]);
		if (j < n && s[j] == '.') {
			uint8_t v4[4];

			if (nw > 6 || socks_ip4_parse(s + i, n - i, v4))
				return -EINVAL;
			w[nw++] = (uint16_t)(v4[0] << 8 | v4[1]);
			w[nw++] = (uint16_t)(v4[2] << 8 | v4[3]);
			break;
		}
		if (j == i || j - i > 4 || nw == 8)
			return -EINVAL;
		w[nw++] = (uint16_t)v;
		if ((i = j) == n)
			break;
		if (s[i++] != ':' || i == n)
			return -EINVAL;
		if (s[i] == ':') {
			if (gap >= 0)
				return -EINVAL;
			gap = nw;
			i++;
		}
	}
	if ((gap < 0 && nw != 8) || (gap >= 0 && nw > 7))
		return -EINVAL;
	memset(out, 0, 16);
	for (int k = 0; k < nw; k++) {
		int at = (gap >= 0 && k >= gap) ? 8 - (nw - k) : k;

		out[2 * at] = (uint8_t)(w[k] >> 8);
		out[2 * at + 1] = (uint8_t)w[k];
	}
	return 0;
}

/* Letters, digits, '-', '_', '.'; not dots only; the last label not starting with a digit. */
static bool socks_name_ok(const char *s, size_t n)
{
	bool letter = false;
	size_t end = n, last = 0;

	if (!n || n > SOCKS_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_')
			letter = true;
		else if (c != '.')
			return false;
	}
	if (!letter)
		return false;
	if (s[end - 1] == '.')
		end--;
	for (size_t i = 0; i < end; i++) {
		if (s[i] == '.')
			last = i + 1;
	}
	return last < end && !(s[last] >= '0' && s[last] <= '9');
}

int socks_target_host(struct socks_target *t, const char *s, size_t n, uint16_t port)
{
	memset(t, 0, sizeof(*t));
	t->port = port;
	if (!socks_ip4_parse(s, n, t->ip)) {
		t->atyp = SOCKS_ATYP_IPV4;
		return 0;
	}
	if (!socks_ip6_parse(s, n, t->ip)) {
		t->atyp = SOCKS_ATYP_IPV6;
		return 0;
	}
	memset(t->ip, 0, sizeof(t->ip));
	if (!socks_name_ok(s, n))
		return -EINVAL;
	t->atyp = SOCKS_ATYP_NAME;
	memcpy(t->name, s, n);
	t->name[n] = '\0';
	return 0;
}

/* RFC 5952: lower case, no leading zeros, the longest run of two or more zero groups as "::". */
static void socks_ip6_format(const uint8_t ip[16], char *buf, size_t cap)
{
	int best = -1, best_len = 0, run = 0;
	size_t off = 0;

	for (int k = 0; k < 8; k++) {
		run = (ip[2 * k] | ip[2 * k + 1]) ? 0 : run + 1;
		if (run > best_len && run >= 2) {
			best_len = run;
			best = k - run + 1;
		}
	}
	buf[0] = '\0';
	for (int k = 0; k < 8 && off < cap; k++) {
		int len;

		if (k == best) {
			len = snprintf(buf + off, cap - off, "::");
			k += best_len - 1;
		} else {
			len = snprintf(buf + off, cap - off, "%s%x",
				       (k && k != best + best_len) ? ":" : "",
				       (unsigned)(ip[2 * k] << 8 | ip[2 * k + 1]));
		}
		off += len > 0 ? (size_t)len : 0;
	}
}

const char *socks_target_format(const struct socks_target *t, char *buf, size_t cap)
{
	char ip6[48];

	switch (t->atyp) {
	case SOCKS_ATYP_IPV4:
		snprintf(buf, cap, "%u.%u.%u.%u:%u", t->ip[0], t->ip[1], t->ip[2], t->ip[3],
			 t->port);
		break;
	case SOCKS_ATYP_IPV6:
		socks_ip6_format(t->ip, ip6, sizeof(ip6));
		snprintf(buf, cap, "[%s]:%u", ip6, t->port);
		break;
	case SOCKS_ATYP_NAME:
		snprintf(buf, cap, "%.255s:%u", t->name, t->port);
		break;
	default:
		snprintf(buf, cap, "(no address)");
	}
	return buf;
}

/* ATYP, address, port as in SOCKS5 requests, replies and datagrams. */
static int socks_rd_addr(struct wire_rd *r, struct socks_target *t)
{
	uint8_t atyp = wire_rd_u8(r), len;
	const uint8_t *a;
	uint16_t port;

	memset(t, 0, sizeof(*t));
	if (r->err)
		return -EPROTO;
	if (atyp == SOCKS_ATYP_IPV4 || atyp == SOCKS_ATYP_IPV6) {
		len = atyp == SOCKS_ATYP_IPV4 ? 4 : 16;
		a = wire_rd_bytes(r, len);
		t->port = wire_rd_u16(r);
		if (r->err)
			return -EPROTO;
		t->atyp = atyp;
		memcpy(t->ip, a, len);
		return 0;
	}
	if (atyp != SOCKS_ATYP_NAME)
		return -EAFNOSUPPORT;
	len = wire_rd_u8(r);
	a = wire_rd_bytes(r, len);
	port = wire_rd_u16(r);
	if (r->err)
		return -EPROTO;
	return socks_target_host(t, (const char *)a, len, port);
}

static void socks_wr_addr(struct wire_wr *w, const struct socks_target *t)
{
	static const struct socks_target zero = {.atyp = SOCKS_ATYP_IPV4};
	size_t len;

	if (!t || (t->atyp != SOCKS_ATYP_IPV4 && t->atyp != SOCKS_ATYP_IPV6 &&
		   t->atyp != SOCKS_ATYP_NAME))
		t = &zero;
	wire_wr_u8(w, t->atyp);
	if (t->atyp == SOCKS_ATYP_NAME) {
		len = strnlen(t->name, SOCKS_NAME_MAX + 1);
		if (!len || len > SOCKS_NAME_MAX) {
			w->err = true;
			return;
		}
		wire_wr_u8(w, (uint8_t)len);
		wire_wr_mem(w, t->name, len);
	} else {
		wire_wr_mem(w, t->ip, t->atyp == SOCKS_ATYP_IPV4 ? 4 : 16);
	}
	wire_wr_u16(w, t->port);
}

/* ---- replies and codes ---- */

uint8_t socks_rep5_code(int err)
{
	switch (err) {
	case 0:
		return SOCKS5_REP_OK;
	case -EPERM:
	case -EACCES:
		return SOCKS5_REP_NOT_ALLOWED;
	case -ENETUNREACH:
		return SOCKS5_REP_NET_UNREACH;
	case -EHOSTUNREACH:
#ifdef EHOSTDOWN
	case -EHOSTDOWN:
#endif
	case -EADDRNOTAVAIL:
	case -ETIMEDOUT:
	case -ENXIO:
		return SOCKS5_REP_HOST_UNREACH;
	case -ECONNREFUSED:
		return SOCKS5_REP_REFUSED;
	case -EOPNOTSUPP:
	case -EPROTONOSUPPORT:
		return SOCKS5_REP_CMD_UNSUPPORTED;
	case -EAFNOSUPPORT:
		return SOCKS5_REP_ATYP_UNSUPPORTED;
	default:
		return SOCKS5_REP_FAILURE;
	}
}

uint8_t socks_rep4_code(int err)
{
	return err ? SOCKS4_REP_REJECTED : SOCKS4_REP_GRANTED;
}

const char *socks_rep5_text(uint8_t code)
{
	static const char *const text[] = {
	    "succeeded",
	    "general SOCKS server failure",
	    "connection not allowed by ruleset",
	    "network unreachable",
	    "host unreachable",
	    "connection refused",
	    "TTL expired",
	    "command not supported",
	    "address type not supported",
	};

	return code < sizeof(text) / sizeof(text[0]) ? text[code] : "unassigned";
}

int socks_rep5_encode(uint8_t *out, size_t cap, uint8_t code, const struct socks_target *bound)
{
	struct wire_wr w;

	wire_wr_init(&w, out, cap);
	wire_wr_u8(&w, 5);
	wire_wr_u8(&w, code);
	wire_wr_u8(&w, 0);
	socks_wr_addr(&w, bound);
	return w.err ? -ENOSPC : (int)w.off;
}

void socks_rep4_encode(uint8_t out[8], uint8_t code, const struct socks_target *bound)
{
	memset(out, 0, 8);
	out[1] = code;
	if (bound && bound->atyp == SOCKS_ATYP_IPV4) {
		wire_put_u16(out + 2, bound->port);
		memcpy(out + 4, bound->ip, 4);
	}
}

/* ---- UDP ASSOCIATE datagrams ---- */

int socks_udp_parse(const uint8_t *p, size_t n, struct socks_target *to, size_t *hdr_len)
{
	struct wire_rd r;
	int ret;

	wire_rd_init(&r, p, n);
	wire_rd_u16(&r);
	if (wire_rd_u8(&r) != 0 && !r.err)
		return -EOPNOTSUPP;
	ret = socks_rd_addr(&r, to);
	if (ret)
		return ret;
	*hdr_len = r.off;
	return 0;
}

int socks_udp_build(uint8_t *out, size_t cap, const struct socks_target *from)
{
	struct wire_wr w;

	wire_wr_init(&w, out, cap);
	wire_wr_u16(&w, 0);
	wire_wr_u8(&w, 0);
	socks_wr_addr(&w, from);
	return w.err ? -ENOSPC : (int)w.off;
}

/* ---- the handshake ---- */

/* The realm goes into a quoted string: plain printable ASCII only. */
static bool socks_realm_ok(const char *s)
{
	size_t n = strnlen(s, 65);

	if (!n || n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] > 0x7e || s[i] == '"' || s[i] == '\\')
			return false;
	}
	return true;
}

void socks_hs_init(struct socks_hs *h, const struct socks_opts *o)
{
	/*
	 * Not in[] and up[] (32 KiB): only what have and upstream_len cover is
	 * ever read, and touching them all cost every accepted connection page
	 * faults in memory the allocator had handed back.
	 */
	memset(h, 0, offsetof(struct socks_hs, in));
	if (o)
		h->opts = *o;
	if (!h->opts.protos)
		h->opts.protos = SOCKS_P_ALL;
	if (!h->opts.cmds)
		h->opts.cmds = SOCKS_CMD_BIT(SOCKS_CMD_CONNECT);
	if (!h->opts.http_head_max || h->opts.http_head_max > HTTP_HEAD_MAX)
		h->opts.http_head_max = HTTP_HEAD_MAX;
	if (!h->opts.realm || !socks_realm_ok(h->opts.realm))
		h->opts.realm = "vmbusify";
	h->state = SOCKS_S_DETECT;
	http_scan_init(&h->scan);
}

/* Overwrites secrets where the compiler cannot prove nobody reads them again. */
static void socks_wipe(void *p, size_t n)
{
	volatile uint8_t *v = p;

	while (n--)
		*v++ = 0;
}

static bool socks_cmd_ok(const struct socks_hs *h, uint8_t cmd)
{
	return cmd >= SOCKS_CMD_CONNECT && cmd <= SOCKS_CMD_UDP_ASSOCIATE &&
	       (h->opts.cmds & SOCKS_CMD_BIT(cmd));
}

/* The check of credentials: 0, or -EACCES with why. */
static int socks_check_cred(struct socks_hs *h, const char *user, const char *pass)
{
	if (h->opts.auth && h->opts.auth(h->opts.auth_arg, user, pass))
		return why_set(h->why, sizeof(h->why), -EACCES,
			       "credentials refused for user '%.64s'", user);
	snprintf(h->req.user, sizeof(h->req.user), "%s", user);
	h->req.authenticated = h->opts.auth != NULL;
	return 0;
}

/*
 * The length in[] must reach for the current SOCKS message, given the
 * bytes it has: more than have while incomplete, have once complete, or a
 * negative errno when the bytes so far are already wrong.
 */
static long socks_want(const struct socks_hs *h)
{
	const uint8_t *in = h->in, *nul;
	size_t have = h->have, at;

	switch (h->state) {
	case SOCKS_S_GREET5:
		return have < 2 ? 2 : 2 + (long)in[1];
	case SOCKS_S_AUTH5:
		if (have < 2)
			return 2;
		if (have < 3u + in[1])
			return 3 + (long)in[1];
		return 3 + (long)in[1] + in[2 + in[1]];
	case SOCKS_S_REQ5:
		if (have < 5)
			return 5;
		if (in[3] == SOCKS_ATYP_IPV4)
			return 10;
		if (in[3] == SOCKS_ATYP_IPV6)
			return 22;
		return in[3] == SOCKS_ATYP_NAME ? 7 + (long)in[4] : -EAFNOSUPPORT;
	case SOCKS_S_REQ4:
		if (have < 8)
			return 8;
		at = 8;
		nul = memchr(in + at, 0, have - at);
		if (nul && !in[4] && !in[5] && !in[6] && in[7]) {
			at = (size_t)(nul - in) + 1;
			nul = memchr(in + at, 0, have - at);
		}
		if (nul)
			return (long)have;
		return have - at > SOCKS_NAME_MAX ? -EMSGSIZE : (long)have + 1;
	default:
		return -EINVAL;
	}
}

/* Copies what the current message still needs; 1 when it is whole, 0 for more, or < 0. */
static int socks_collect(struct socks_hs *h, const uint8_t *p, size_t n, size_t *off)
{
	for (;;) {
		long want = socks_want(h);
		size_t k;

		if (want < 0)
			return (int)want;
		if ((size_t)want == h->have)
			return 1;
		k = (size_t)want - h->have;
		if (k > n - *off)
			k = n - *off;
		memcpy(h->in + h->have, p + *off, k);
		h->have += k;
		*off += k;
		if (h->have < (size_t)want)
			return 0;
	}
}

/* Refusals in each protocol's terms; each returns err. */
static int socks_refuse5(struct socks_hs *h, int err)
{
	int len = socks_rep5_encode(h->out, sizeof(h->out), socks_rep5_code(err), NULL);

	h->out_len = len > 0 ? (size_t)len : 0;
	return err;
}

static int socks_refuse4(struct socks_hs *h, int err)
{
	socks_rep4_encode(h->out, SOCKS4_REP_REJECTED, NULL);
	h->out_len = 8;
	return err;
}

static int socks_refuse_http(struct socks_hs *h, int err, int status, const char *extra)
{
	int len = http_reply(h->out, sizeof(h->out), status, extra, h->why);

	h->out_len = len > 0 ? (size_t)len : 0;
	return err;
}

static int socks_greet5(struct socks_hs *h)
{
	const uint8_t *m = h->in + 2;
	size_t n = h->in[1];
	bool none = memchr(m, SOCKS_METHOD_NONE, n), userpass = memchr(m, SOCKS_METHOD_USERPASS, n);
	int ret = SOCKS_HS_REPLY;

	if (!(h->opts.protos & SOCKS_P_SOCKS5)) {
		h->method = SOCKS_METHOD_REFUSED;
		ret = why_set(h->why, sizeof(h->why), -EPROTONOSUPPORT, "SOCKS5 is not enabled");
	} else if (h->opts.auth) {
		h->method = userpass ? SOCKS_METHOD_USERPASS : SOCKS_METHOD_REFUSED;
		if (!userpass)
			ret = why_set(h->why, sizeof(h->why), -EACCES,
				      "SOCKS5 client did not offer user/password, which is "
				      "required");
	} else {
		h->method = none       ? SOCKS_METHOD_NONE
			    : userpass ? SOCKS_METHOD_USERPASS
				       : SOCKS_METHOD_REFUSED;
		if (!none && !userpass)
			ret = why_set(h->why, sizeof(h->why), -EACCES,
				      "SOCKS5 client offered no usable method (%u offered)",
				      (unsigned)n);
	}
	h->out[0] = 5;
	h->out[1] = h->method;
	h->out_len = 2;
	h->have = 0;
	h->state = h->method == SOCKS_METHOD_USERPASS ? SOCKS_S_AUTH5 : SOCKS_S_REQ5;
	return ret;
}

static int socks_auth5(struct socks_hs *h)
{
	char user[SOCKS_USER_MAX + 1], pass[SOCKS_USER_MAX + 1];
	size_t ulen = h->in[1], plen = h->in[2 + ulen];
	const uint8_t *u = h->in + 2, *pw = h->in + 3 + ulen;
	int ret = 0;

	if (h->in[0] != 1)
		ret = why_set(h->why, sizeof(h->why), -EPROTO,
			      "SOCKS5 user/password version %u (not 1)", h->in[0]);
	else if (memchr(u, 0, ulen) || memchr(pw, 0, plen))
		ret = why_set(h->why, sizeof(h->why), -EACCES, "NUL byte in SOCKS5 credentials");
	if (!ret) {
		memcpy(user, u, ulen);
		user[ulen] = '\0';
		memcpy(pass, pw, plen);
		pass[plen] = '\0';
		ret = socks_check_cred(h, user, pass);
		socks_wipe(pass, sizeof(pass));
	}
	socks_wipe(h->in, h->have);
	h->have = 0;
	h->out[0] = 1;
	h->out[1] = ret ? 1 : 0;
	h->out_len = 2;
	h->state = SOCKS_S_REQ5;
	return ret ? ret : SOCKS_HS_REPLY;
}

/* A CONNECT to port 0 cannot succeed; BIND and UDP ASSOCIATE may name port 0. */
static int socks_check_target(struct socks_hs *h, uint8_t cmd, const struct socks_target *t)
{
	if (cmd == SOCKS_CMD_CONNECT && !t->port)
		return why_set(h->why, sizeof(h->why), -EINVAL, "CONNECT to port 0");
	return 0;
}

static int socks_req5(struct socks_hs *h)
{
	struct wire_rd r;
	uint8_t ver, cmd;
	int ret;

	wire_rd_init(&r, h->in, h->have);
	ver = wire_rd_u8(&r);
	cmd = wire_rd_u8(&r);
	wire_rd_u8(&r);
	if (ver != 5)
		return socks_refuse5(h, why_set(h->why, sizeof(h->why), -EPROTO,
						"SOCKS5 request of version %u", ver));
	ret = socks_rd_addr(&r, &h->req.to);
	if (ret == -EINVAL)
		return socks_refuse5(h, why_set(h->why, sizeof(h->why), ret,
						"SOCKS5 request for a malformed host name"));
	if (ret)
		return socks_refuse5(
		    h, why_set(h->why, sizeof(h->why), ret, "malformed SOCKS5 request"));
	if (!socks_cmd_ok(h, cmd))
		return socks_refuse5(h, why_set(h->why, sizeof(h->why), -EOPNOTSUPP,
						"SOCKS5 command %u is not enabled", cmd));
	ret = socks_check_target(h, cmd, &h->req.to);
	if (ret)
		return socks_refuse5(h, ret);
	h->req.proto = SOCKS_P_SOCKS5;
	h->req.cmd = cmd;
	return SOCKS_HS_REQUEST;
}

static int socks_req4(struct socks_hs *h)
{
	const uint8_t *in = h->in;
	const char *uid = (const char *)in + 8, *host;
	bool is4a = !in[4] && !in[5] && !in[6] && in[7];
	enum socks_proto proto = is4a ? SOCKS_P_SOCKS4A : SOCKS_P_SOCKS4;
	uint16_t port = wire_get_u16(in + 2);
	size_t ulen = strlen(uid);

	if (!(h->opts.protos & proto))
		return socks_refuse4(h, why_set(h->why, sizeof(h->why), -EPROTONOSUPPORT,
						"SOCKS4%s is not enabled", is4a ? "a" : ""));
	if (h->opts.auth)
		return socks_refuse4(h, why_set(h->why, sizeof(h->why), -EACCES,
						"SOCKS4 carries no password, and credentials are "
						"required"));
	if (ulen > SOCKS_USER_MAX)
		return socks_refuse4(h, why_set(h->why, sizeof(h->why), -EMSGSIZE,
						"SOCKS4 user id of %u bytes", (unsigned)ulen));
	if (!socks_cmd_ok(h, in[1]) || in[1] == SOCKS_CMD_UDP_ASSOCIATE)
		return socks_refuse4(h, why_set(h->why, sizeof(h->why), -EOPNOTSUPP,
						"SOCKS4 command %u is not enabled", in[1]));
	if (is4a) {
		host = uid + ulen + 1;
		if (socks_target_host(&h->req.to, host, strlen(host), port))
			return socks_refuse4(h,
					     why_set(h->why, sizeof(h->why), -EINVAL,
						     "SOCKS4a request for a malformed host name"));
	} else {
		h->req.to.atyp = SOCKS_ATYP_IPV4;
		h->req.to.port = port;
		memcpy(h->req.to.ip, in + 4, 4);
	}
	if (socks_check_target(h, in[1], &h->req.to))
		return socks_refuse4(h, -EINVAL);
	/* The user id is not checked, only logged: keep it one printable line. */
	for (size_t i = 0; i < ulen; i++)
		h->req.user[i] = (uid[i] < 0x20 || uid[i] == 0x7f) ? '?' : uid[i];
	h->req.proto = proto;
	h->req.cmd = in[1];
	return SOCKS_HS_REQUEST;
}

static int socks_dispatch(struct socks_hs *h)
{
	switch (h->state) {
	case SOCKS_S_GREET5:
		return socks_greet5(h);
	case SOCKS_S_AUTH5:
		return socks_auth5(h);
	case SOCKS_S_REQ5:
		return socks_req5(h);
	default:
		return socks_req4(h);
	}
}

/* Failures found while collecting: an unknown address type, a field too long. */
static int socks_collect_failed(struct socks_hs *h, int err)
{
	if (h->state == SOCKS_S_REQ4)
		return socks_refuse4(h, why_set(h->why, sizeof(h->why), err,
						"SOCKS4 user id or host name longer than %u bytes",
						SOCKS_NAME_MAX));
	return socks_refuse5(h, why_set(h->why, sizeof(h->why), err,
					"SOCKS5 request with address type %u", h->in[3]));
}

/* ---- HTTP ---- */

static int socks_http_auth(struct socks_hs *h, const struct http_req *r)
{
	char user[HTTP_CRED_MAX + 1], pass[HTTP_CRED_MAX + 1], extra[128];
	struct http_span v;
	unsigned count = http_field_get(r, "proxy-authorization", &v);
	int ret;

	if (!h->opts.auth)
		return 0;
	snprintf(extra, sizeof(extra), "Proxy-Authenticate: Basic realm=\"%s\"\r\n", h->opts.realm);
	if (count > 1)
		return socks_refuse_http(
		    h,
		    why_set(h->why, sizeof(h->why), -EPROTO, "more than one Proxy-Authorization"),
		    400, NULL);
	if (!count)
		return socks_refuse_http(
		    h, why_set(h->why, sizeof(h->why), -EACCES, "proxy credentials required"), 407,
		    extra);
	ret = http_basic_decode(v, user, pass);
	if (ret)
		return socks_refuse_http(h,
					 why_set(h->why, sizeof(h->why), -EACCES,
						 "Proxy-Authorization is not valid Basic "
						 "credentials"),
					 407, extra);
	ret = socks_check_cred(h, user, pass);
	socks_wipe(pass, sizeof(pass));
	return ret ? socks_refuse_http(h, ret, 407, extra) : 0;
}

/* The methods a 405 lists: what is enabled. */
static int socks_http_disabled(struct socks_hs *h, bool connect)
{
	bool c = h->opts.protos & SOCKS_P_HTTP_CONNECT, f = h->opts.protos & SOCKS_P_HTTP_FORWARD;
	char extra[128];

	if (!(h->opts.cmds & SOCKS_CMD_BIT(SOCKS_CMD_CONNECT)))
		c = f = false;
	snprintf(extra, sizeof(extra), "Allow: %s%s%s\r\n", c ? "CONNECT" : "", c && f ? ", " : "",
		 f ? "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH" : "");
	why_set(h->why, sizeof(h->why), -EPROTONOSUPPORT, "HTTP %s is not enabled",
		connect ? "CONNECT" : "forwarding");
	return socks_refuse_http(h, -EPROTONOSUPPORT, 405, extra);
}

/* Sets req.to from an HTTP host; an IPv6 literal comes in brackets and nothing else does. */
static int socks_http_target(struct socks_hs *h, const struct http_host *hh)
{
	if (socks_target_host(&h->req.to, hh->host.p, hh->host.n, hh->port) ||
	    hh->bracketed != (h->req.to.atyp == SOCKS_ATYP_IPV6))
		return socks_refuse_http(h,
					 why_set(h->why, sizeof(h->why), -EINVAL,
						 "malformed host in the HTTP request target"),
					 400, NULL);
	return 0;
}

static int socks_http_forward(struct socks_hs *h, const struct http_req *r)
{
	struct http_span authority, path;
	struct http_host hh;
	int ret;

	ret = http_uri_parse(r->target, &hh, &authority, &path);
	if (ret == -EOPNOTSUPP)
		return socks_refuse_http(h,
					 why_set(h->why, sizeof(h->why), ret,
						 "only http:// URIs are forwarded (use CONNECT)"),
					 501, NULL);
	if (ret)
		return socks_refuse_http(h,
					 why_set(h->why, sizeof(h->why), -EINVAL,
						 "not a proxy request: the target must be "
						 "http://host[:port]/path"),
					 400, NULL);
	ret = socks_http_target(h, &hh);
	if (!ret)
		ret = http_req_check_framing(r, h->why, sizeof(h->why));
	if (!ret) {
		ret = http_forward_head(r, authority, path, h->up, sizeof(h->up), h->why,
					sizeof(h->why));
		if (ret == -ENOSPC)
			ret = why_set(h->why, sizeof(h->why), -EMSGSIZE, "HTTP head too large");
	}
	if (ret == -EPROTO || ret == -EMSGSIZE)
		return socks_refuse_http(h, ret, ret == -EPROTO ? 400 : 431, NULL);
	if (ret < 0)
		return ret;
	h->req.upstream = h->up;
	h->req.upstream_len = (size_t)ret;
	return 0;
}

static int socks_http(struct socks_hs *h)
{
	struct http_req r;
	bool connect;
	int ret;

	ret = http_req_parse((const char *)h->in, h->have, &r, h->why, sizeof(h->why));
	if (ret)
		return socks_refuse_http(h, ret,
					 ret == -EPROTONOSUPPORT ? 505
					 : ret == -EMSGSIZE	 ? 431
								 : 400,
					 NULL);
	connect = r.method.n == 7 && !memcmp(r.method.p, "CONNECT", 7);
	if (!(h->opts.protos & (connect ? SOCKS_P_HTTP_CONNECT : SOCKS_P_HTTP_FORWARD)) ||
	    !(h->opts.cmds & SOCKS_CMD_BIT(SOCKS_CMD_CONNECT)))
		return socks_http_disabled(h, connect);
	ret = socks_http_auth(h, &r);
	if (ret)
		return ret;
	if (connect) {
		struct http_host hh;

		if (http_authority_parse(r.target, 0, &hh))
			return socks_refuse_http(h,
						 why_set(h->why, sizeof(h->why), -EINVAL,
							 "CONNECT target is not host:port"),
						 400, NULL);
		ret = socks_http_target(h, &hh);
	} else {
		ret = socks_http_forward(h, &r);
	}
	if (ret)
		return ret;
	h->req.proto = connect ? SOCKS_P_HTTP_CONNECT : SOCKS_P_HTTP_FORWARD;
	h->req.cmd = SOCKS_CMD_CONNECT;
	return SOCKS_HS_REQUEST;
}

/* Scans for the end of the head, keeping what belongs to it. */
static int socks_http_feed(struct socks_hs *h, const uint8_t *p, size_t n, size_t *off)
{
	size_t room = h->opts.http_head_max - h->have, k = 0;
	int ret;

	ret = http_scan(&h->scan, p + *off, n - *off < room ? n - *off : room, &k);
	memcpy(h->in + h->have, p + *off, k);
	h->have += k;
	*off += k;
	if (ret < 0)
		return socks_refuse_http(
		    h, why_set(h->why, sizeof(h->why), -EPROTO, "NUL or bare CR in the HTTP head"),
		    400, NULL);
	if (ret == 0 && h->have == h->opts.http_head_max)
		return socks_refuse_http(h,
					 why_set(h->why, sizeof(h->why), -EMSGSIZE,
						 "HTTP head longer than %u bytes",
						 (unsigned)h->opts.http_head_max),
					 431, NULL);
	return ret ? socks_http(h) : SOCKS_HS_MORE;
}

static int socks_detect(struct socks_hs *h, uint8_t c)
{
	if (c == 5)
		h->state = SOCKS_S_GREET5;
	else if (c == 4)
		h->state = SOCKS_S_REQ4;
	else if (c >= 'A' && c <= 'Z')
		h->state = SOCKS_S_HTTP;
	else
		return why_set(h->why, sizeof(h->why), -EPROTO,
			       "not SOCKS or HTTP: first byte 0x%02x%s", c,
			       c == 0x16 ? " (TLS? this is a plain proxy)" : "");
	return 0;
}

int socks_hs_feed(struct socks_hs *h, const uint8_t *p, size_t n, size_t *used)
{
	size_t off = 0;
	int ret;

	*used = 0;
	h->out_len = 0;
	if (h->state == SOCKS_S_REQUESTED || h->state == SOCKS_S_FAILED)
		return -EALREADY;
	if (h->state == SOCKS_S_DETECT) {
		if (!n)
			return SOCKS_HS_MORE;
		ret = socks_detect(h, p[0]);
		if (ret) {
			h->state = SOCKS_S_FAILED;
			return ret;
		}
	}
	if (h->state == SOCKS_S_HTTP) {
		ret = socks_http_feed(h, p, n, &off);
	} else {
		ret = socks_collect(h, p, n, &off);
		if (ret < 0)
			ret = socks_collect_failed(h, ret);
		else
			ret = ret ? socks_dispatch(h) : SOCKS_HS_MORE;
	}
	*used = off;
	if (ret < 0)
		h->state = SOCKS_S_FAILED;
	else if (ret == SOCKS_HS_REQUEST)
		h->state = SOCKS_S_REQUESTED;
	return ret;
}

int socks_hs_reply(struct socks_hs *h, int err, const struct socks_target *bound,
		   const char *detail)
{
	char line[320], to[300];
	int len;

	if (h->state != SOCKS_S_REQUESTED)
		return -EINVAL;
	switch (h->req.proto) {
	case SOCKS_P_SOCKS5:
		len = socks_rep5_encode(h->out, sizeof(h->out), socks_rep5_code(err), bound);
		break;
	case SOCKS_P_SOCKS4:
	case SOCKS_P_SOCKS4A:
		socks_rep4_encode(h->out, socks_rep4_code(err), bound);
		len = 8;
		break;
	default:
		if (!err && h->req.proto == SOCKS_P_HTTP_FORWARD) {
			len = 0;
			break;
		}
		if (err && !detail) {
			snprintf(line, sizeof(line), "%s: %s",
				 socks_target_format(&h->req.to, to, sizeof(to)),
				 err_wire_str(err_to_wire(err)));
			detail = line;
		}
		len = http_reply(h->out, sizeof(h->out), http_status_for(err), NULL, detail);
	}
	h->out_len = len > 0 ? (size_t)len : 0;
	return 0;
}
