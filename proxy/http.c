/* HTTP/1.x proxy requests: scanning, parsing, targets, Basic credentials, the rewrite, replies. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "core/why.h"
#include "proxy/http.h"

/* ---- scanning ---- */

enum http_scan_state {
	HTTP_SCAN_BOL,	   /* at the beginning of a line */
	HTTP_SCAN_LINE,	   /* inside a line */
	HTTP_SCAN_BOL_CR,  /* a CR at the beginning of a line */
	HTTP_SCAN_LINE_CR, /* a CR inside a line */
};

void http_scan_init(struct http_scan *s)
{
	s->st = HTTP_SCAN_BOL;
}

int http_scan(struct http_scan *s, const uint8_t *p, size_t n, size_t *used)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];

		*used = i + 1;
		if (c == '\0')
			return -EPROTO;
		if (s->st == HTTP_SCAN_BOL_CR || s->st == HTTP_SCAN_LINE_CR) {
			if (c != '\n')
				return -EPROTO;
			if (s->st == HTTP_SCAN_BOL_CR)
				return 1;
			s->st = HTTP_SCAN_BOL;
		} else if (c == '\n') {
			if (s->st == HTTP_SCAN_BOL)
				return 1;
			s->st = HTTP_SCAN_BOL;
		} else if (c == '\r') {
			s->st = s->st == HTTP_SCAN_BOL ? HTTP_SCAN_BOL_CR : HTTP_SCAN_LINE_CR;
		} else {
			s->st = HTTP_SCAN_LINE;
		}
	}
	*used = n;
	return 0;
}

/* ---- parsing ---- */

/* tchar of RFC 9110 5.6.2: the characters of methods, field names and tokens. */
static bool http_tchar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

static char http_lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c + 'a' - 'A') : c;
}

bool http_span_eq(struct http_span s, const char *str)
{
	size_t n = strlen(str);

	if (s.n != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (http_lower(s.p[i]) != http_lower(str[i]))
			return false;
	}
	return true;
}

static bool http_ows(char c)
{
	return c == ' ' || c == '\t';
}

static struct http_span http_trim(const char *p, size_t n)
{
	while (n && http_ows(p[0])) {
		p++;
		n--;
	}
	while (n && http_ows(p[n - 1]))
		n--;
	return (struct http_span){p, n};
}

/*
 * Cuts the next line off the text at *p (*n bytes): returns its length without the line end
 * and skips past it, or -1 for a NUL, a bare CR or a missing LF.
 */
static long http_line(const char **p, size_t *n)
{
	const char *lf = memchr(*p, '\n', *n);
	size_t len, skip;

	if (!lf)
		return -1;
	skip = (size_t)(lf - *p) + 1;
	len = skip - 1;
	if (len && (*p)[len - 1] == '\r')
		len--;
	if (memchr(*p, '\0', len) || memchr(*p, '\r', len))
		return -1;
	*p += skip;
	*n -= skip;
	return (long)len;
}

/* "HTTP/1.x": the minor version; -EPROTONOSUPPORT for another major one, -EPROTO if malformed. */
static int http_version(const char *p, size_t n, uint8_t *minor)
{
	if (n != 8 || memcmp(p, "HTTP/", 5) || p[6] != '.' || p[5] < '0' || p[5] > '9' ||
	    p[7] < '0' || p[7] > '9')
		return -EPROTO;
	if (p[5] != '1')
		return -EPROTONOSUPPORT;
	*minor = (uint8_t)(p[7] - '0');
	return 0;
}

/* method SP request-target SP HTTP-version, with exactly one space each. */
static int http_request_line(const char *p, size_t n, struct http_req *r, char *why, size_t wl)
{
	const char *sp1 = memchr(p, ' ', n), *sp2;
	size_t mlen, tlen;
	int ret;

	if (!sp1)
		return why_set(why, wl, -EPROTO, "HTTP request line without a space");
	mlen = (size_t)(sp1 - p);
	sp2 = memchr(sp1 + 1, ' ', n - mlen - 1);
	if (!sp2)
		return why_set(why, wl, -EPROTO, "HTTP request line without a version");
	tlen = (size_t)(sp2 - sp1 - 1);
	if (!mlen || mlen > HTTP_METHOD_MAX)
		return why_set(why, wl, -EPROTO, "HTTP method of %u bytes", (unsigned)mlen);
	for (size_t i = 0; i < mlen; i++) {
		if (!http_tchar(p[i]))
			return why_set(why, wl, -EPROTO, "HTTP method with byte 0x%02x",
				       (unsigned char)p[i]);
	}
	if (!tlen)
		return why_set(why, wl, -EPROTO, "HTTP request without a target");
	for (size_t i = 0; i < tlen; i++) {
		unsigned char c = (unsigned char)sp1[1 + i];

		if (c <= 0x20 || c >= 0x7f)
			return why_set(why, wl, -EPROTO, "HTTP request target with byte 0x%02x", c);
	}
	ret = http_version(sp2 + 1, n - mlen - tlen - 2, &r->minor);
	if (ret == -EPROTONOSUPPORT)
		return why_set(why, wl, ret, "HTTP version %.8s is not supported", sp2 + 1);
	if (ret)
		return why_set(why, wl, ret, "malformed HTTP version");
	r->method = (struct http_span){p, mlen};
	r->target = (struct http_span){sp1 + 1, tlen};
	return 0;
}

/* field-name ":" OWS field-value OWS; no obs-fold, no space before the colon. */
static int http_field_line(const char *p, size_t n, struct http_field *f, char *why, size_t wl)
{
	const char *colon = memchr(p, ':', n);
	size_t nlen;

	if (http_ows(p[0]))
		return why_set(why, wl, -EPROTO, "HTTP header folded over lines (obs-fold)");
	if (!colon)
		return why_set(why, wl, -EPROTO, "HTTP header line without a colon");
	nlen = (size_t)(colon - p);
	if (!nlen)
		return why_set(why, wl, -EPROTO, "HTTP header with an empty name");
	if (http_ows(p[nlen - 1]))
		return why_set(why, wl, -EPROTO, "whitespace before an HTTP header's colon");
	for (size_t i = 0; i < nlen; i++) {
		if (!http_tchar(p[i]))
			return why_set(why, wl, -EPROTO, "HTTP header name with byte 0x%02x",
				       (unsigned char)p[i]);
	}
	f->name = (struct http_span){p, nlen};
	f->value = http_trim(colon + 1, n - nlen - 1);
	for (size_t i = 0; i < f->value.n; i++) {
		unsigned char c = (unsigned char)f->value.p[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return why_set(why, wl, -EPROTO, "HTTP header %.*s with byte 0x%02x",
				       (int)(nlen > 64 ? 64 : nlen), p, c);
	}
	return 0;
}

int http_req_parse(const char *head, size_t len, struct http_req *r, char *why, size_t whylen)
{
	const char *p = head;
	size_t n = len;
	long l = http_line(&p, &n);
	int ret;

	memset(r, 0, sizeof(*r));
	if (l < 0)
		return why_set(why, whylen, -EPROTO, "malformed HTTP request line");
	ret = http_request_line(head, (size_t)l, r, why, whylen);
	if (ret)
		return ret;
	for (;;) {
		const char *line = p;

		l = http_line(&p, &n);
		if (l < 0)
			return why_set(why, whylen, -EPROTO, "malformed HTTP header line");
		if (l == 0)
			break;
		if (r->nfields == HTTP_FIELDS_MAX)
			return why_set(why, whylen, -EMSGSIZE, "more than %u HTTP header fields",
				       HTTP_FIELDS_MAX);
		ret = http_field_line(line, (size_t)l, &r->fields[r->nfields], why, whylen);
		if (ret)
			return ret;
		r->nfields++;
	}
	if (n)
		return why_set(why, whylen, -EPROTO, "bytes after the end of the HTTP head");
	return 0;
}

unsigned http_field_get(const struct http_req *r, const char *name, struct http_span *v)
{
	unsigned count = 0;

	for (uint16_t i = 0; i < r->nfields; i++) {
		if (!http_span_eq(r->fields[i].name, name))
			continue;
		if (!count && v)
			*v = r->fields[i].value;
		count++;
	}
	return count;
}

/* Content-Length: digits only, every occurrence the same (a list "5, 5" is refused). */
static int http_content_length(const struct http_req *r, bool *has, char *why, size_t wl)
{
	struct http_span first = {NULL, 0};

	*has = false;
	for (uint16_t i = 0; i < r->nfields; i++) {
		struct http_span v = r->fields[i].value;

		if (!http_span_eq(r->fields[i].name, "content-length"))
			continue;
		if (!v.n || v.n > 18)
			return why_set(why, wl, -EPROTO, "bad Content-Length");
		for (size_t k = 0; k < v.n; k++) {
			if (v.p[k] < '0' || v.p[k] > '9')
				return why_set(why, wl, -EPROTO, "bad Content-Length");
		}
		if (*has && (first.n != v.n || memcmp(first.p, v.p, v.n)))
			return why_set(why, wl, -EPROTO, "conflicting Content-Length fields");
		first = v;
		*has = true;
	}
	return 0;
}

/* The last comma-separated element of a list value, trimmed. */
static struct http_span http_last_elem(struct http_span v)
{
	size_t i = v.n;

	while (i && v.p[i - 1] != ',')
		i--;
	return http_trim(v.p + i, v.n - i);
}

int http_req_check_framing(const struct http_req *r, char *why, size_t whylen)
{
	struct http_span te = {NULL, 0};
	unsigned nte = 0;
	bool has_cl;
	int ret;

	ret = http_content_length(r, &has_cl, why, whylen);
	if (ret)
		return ret;
	for (uint16_t i = 0; i < r->nfields; i++) {
		if (http_span_eq(r->fields[i].name, "transfer-encoding")) {
			te = r->fields[i].value;
			nte++;
		}
	}
	if (!nte)
		return 0;
	if (has_cl)
		return why_set(why, whylen, -EPROTO,
			       "both Transfer-Encoding and Content-Length (RFC 9112 6.1)");
	if (!http_span_eq(http_last_elem(te), "chunked"))
		return why_set(why, whylen, -EPROTO,
			       "Transfer-Encoding of a request must end in chunked");
	return 0;
}

/* ---- targets ---- */

static int http_port(const char *p, size_t n, uint16_t *port)
{
	uint32_t v = 0;

	if (!n || n > 5)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint32_t)(p[i] - '0');
	}
	if (!v || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int http_authority_parse(struct http_span a, uint16_t dflt_port, struct http_host *h)
{
	const char *rest;
	size_t rlen;

	memset(h, 0, sizeof(*h));
	if (!a.n || memchr(a.p, '@', a.n))
		return -EINVAL;
	if (a.p[0] == '[') {
		const char *close = memchr(a.p, ']', a.n);

		if (!close || close == a.p + 1)
			return -EINVAL;
		h->host = (struct http_span){a.p + 1, (size_t)(close - a.p - 1)};
		h->bracketed = true;
		rest = close + 1;
		rlen = a.n - (size_t)(rest - a.p);
		if (rlen && rest[0] != ':')
			return -EINVAL;
	} else {
		const char *colon = memchr(a.p, ':', a.n);

		h->host = (struct http_span){a.p, colon ? (size_t)(colon - a.p) : a.n};
		rest = a.p + h->host.n;
		rlen = a.n - h->host.n;
		if (!h->host.n)
			return -EINVAL;
	}
	/* rest is "" or ":port"; an empty port means the default (RFC 3986 3.2.3). */
	if (rlen > 1)
		return http_port(rest + 1, rlen - 1, &h->port);
	if (!dflt_port)
		return -EINVAL;
	h->port = dflt_port;
	return 0;
}

int http_uri_parse(struct http_span t, struct http_host *h, struct http_span *authority,
		   struct http_span *path)
{
	static const char sep[] = "://";
	const char *s = NULL;
	size_t i, alen;
	int ret;

	for (i = 0; i + 3 <= t.n; i++) {
		char c = t.p[i];

		if (!memcmp(t.p + i, sep, 3)) {
			s = t.p + i;
			break;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (i && ((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.'))))
			break;
	}
	if (!s || s == t.p)
		return -EINVAL;
	if (!http_span_eq((struct http_span){t.p, i}, "http"))
		return -EOPNOTSUPP;
	if (memchr(t.p, '#', t.n))
		return -EINVAL;
	s += 3;
	for (alen = 0; s + alen < t.p + t.n; alen++) {
		if (s[alen] == '/' || s[alen] == '?')
			break;
	}
	*path = (struct http_span){s + alen, t.n - (size_t)(s - t.p) - alen};
	ret = http_authority_parse((struct http_span){s, alen}, 80, h);
	/* "host:" means the default port: the Host field says "host". */
	if (alen && s[alen - 1] == ':')
		alen--;
	*authority = (struct http_span){s, alen};
	return ret;
}

/* ---- credentials ---- */

static int http_b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Standard base64, padded or not; returns the decoded length or -1. */
static long http_b64_decode(const char *p, size_t n, uint8_t *out, size_t cap)
{
	uint32_t acc = 0;
	size_t len = 0, bits = 0;

	while (n && p[n - 1] == '=')
		n--;
	if (n % 4 == 1)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int v = http_b64_val(p[i]);

		if (v < 0)
			return -1;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (len == cap)
				return -2;
			out[len++] = (uint8_t)(acc >> bits);
		}
	}
	return (long)len;
}

static bool http_cred_ok(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] == 0x7f)
			return false;
	}
	return true;
}

int http_basic_decode(struct http_span v, char user[HTTP_CRED_MAX + 1],
		      char pass[HTTP_CRED_MAX + 1])
{
	uint8_t buf[2 * HTTP_CRED_MAX + 1];
	const uint8_t *colon;
	size_t i = 0, ulen, plen;
	long len;

	while (i < v.n && !http_ows(v.p[i]))
		i++;
	if (!http_span_eq((struct http_span){v.p, i}, "basic"))
		return -EOPNOTSUPP;
	while (i < v.n && http_ows(v.p[i]))
		i++;
	if (i == v.n)
		return -EINVAL;
	len = http_b64_decode(v.p + i, v.n - i, buf, sizeof(buf));
	if (len == -2)
		return -EMSGSIZE;
	if (len < 0 || !http_cred_ok(buf, (size_t)len))
		return -EINVAL;
	colon = memchr(buf, ':', (size_t)len);
	if (!colon)
		return -EINVAL;
	ulen = (size_t)(colon - buf);
	plen = (size_t)len - ulen - 1;
	if (ulen > HTTP_CRED_MAX || plen > HTTP_CRED_MAX)
		return -EMSGSIZE;
	memcpy(user, buf, ulen);
	user[ulen] = '\0';
	memcpy(pass, colon + 1, plen);
	pass[plen] = '\0';
	return 0;
}

/* ---- the forwarded head ---- */

struct http_out {
	uint8_t *p;
	size_t cap, len;
	bool err;
};

static void http_put(struct http_out *o, const void *p, size_t n)
{
	if (o->err || n > o->cap - o->len) {
		o->err = true;
		return;
	}
	memcpy(o->p + o->len, p, n);
	o->len += n;
}

static void http_puts(struct http_out *o, const char *s)
{
	http_put(o, s, strlen(s));
}

static void http_put_span(struct http_out *o, struct http_span s)
{
	http_put(o, s.p, s.n);
}

/* Fields that concern this hop only (RFC 9110 7.6.1), and Host, which we write ourselves. */
static bool http_hop_field(struct http_span name)
{
	static const char *const hop[] = {
	    "host", "connection", "proxy-connection",	"keep-alive", "proxy-authorization",
	    "te",   "upgrade",	  "proxy-authenticate",
	};

	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++) {
		if (http_span_eq(name, hop[i]))
			return true;
	}
	return false;
}

/* Does any Connection field list name as a token? */
static bool http_conn_lists(const struct http_req *r, struct http_span name)
{
	for (uint16_t i = 0; i < r->nfields; i++) {
		struct http_span v = r->fields[i].value;
		size_t start = 0;

		if (!http_span_eq(r->fields[i].name, "connection"))
			continue;
		for (size_t k = 0; k <= v.n; k++) {
			struct http_span tok;

			if (k < v.n && v.p[k] != ',')
				continue;
			tok = http_trim(v.p + start, k - start);
			if (tok.n == name.n && tok.n) {
				bool eq = true;

				for (size_t j = 0; j < tok.n && eq; j++)
					eq = http_lower(tok.p[j]) == http_lower(name.p[j]);
				if (eq)
					return true;
			}
			start = k + 1;
		}
	}
	return false;
}

int http_forward_head(const struct http_req *r, struct http_span authority, struct http_span path,
		      uint8_t *out, size_t cap, char *why, size_t whylen)
{
	static const char *const framing[] = {"host", "content-length", "transfer-encoding"};
	struct http_out o = {out, cap, 0, false};
	char version[] = "HTTP/1.x";

	for (size_t i = 0; i < sizeof(framing) / sizeof(framing[0]); i++) {
		struct http_span f = {framing[i], strlen(framing[i])};

		if (http_conn_lists(r, f))
			return why_set(why, whylen, -EPROTO, "Connection names %s", framing[i]);
	}
	/* HTTP/1.2 and later minors are 1.1 to us (RFC 9110 6.2: we send our own version). */
	version[7] = (char)('0' + (r->minor > 1 ? 1 : r->minor));
	http_put_span(&o, r->method);
	http_puts(&o, " ");
	if (!path.n || path.p[0] == '?')
		http_puts(&o, "/");
	http_put_span(&o, path);
	http_puts(&o, " ");
	http_puts(&o, version);
	http_puts(&o, "\r\nHost: ");
	http_put_span(&o, authority);
	http_puts(&o, "\r\n");
	for (uint16_t i = 0; i < r->nfields; i++) {
		const struct http_field *f = &r->fields[i];

		if (http_hop_field(f->name) || http_conn_lists(r, f->name))
			continue;
		http_put_span(&o, f->name);
		http_puts(&o, ": ");
		http_put_span(&o, f->value);
		http_puts(&o, "\r\n");
	}
	http_puts(&o, "Connection: close\r\n\r\n");
	return o.err ? -ENOSPC : (int)o.len;
}

/* ---- replies ---- */

const char *http_status_text(int status)
{
	switch (status) {
	case 200:
		return "Connection established";
	case 400:
		return "Bad Request";
	case 403:
		return "Forbidden";
	case 405:
		return "Method Not Allowed";
	case 407:
		return "Proxy Authentication Required";
	case 431:
		return "Request Header Fields Too Large";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}

int http_status_for(int err)
{
	switch (err) {
	case 0:
		return 200;
	case -EPERM:
	case -EACCES:
		return 403;
	case -ETIMEDOUT:
		return 504;
	case -EINVAL:
		return 400;
	case -EOPNOTSUPP:
		return 501;
	default:
		return 502;
	}
}

int http_reply(uint8_t *out, size_t cap, int status, const char *extra, const char *detail)
{
	const char *text = http_status_text(status);
	char body[512];
	int blen, len;

	if (status == 200)
		len = snprintf((char *)out, cap, "HTTP/1.1 200 %s\r\n\r\n", text);
	else {
		if (detail && *detail)
			blen = snprintf(body, sizeof(body), "%d %s: %s\n", status, text, detail);
		else
			blen = snprintf(body, sizeof(body), "%d %s\n", status, text);
		if (blen >= (int)sizeof(body)) {
			blen = (int)sizeof(body) - 1;
			body[blen - 1] = '\n';
		}
		len = snprintf((char *)out, cap,
			       "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
			       "Content-Length: %d\r\nConnection: close\r\n%s\r\n%s",
			       status, text, blen, extra ? extra : "", body);
	}
	if (len < 0 || (size_t)len >= cap)
		return -ENOSPC;
	return len;
}
