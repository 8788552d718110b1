/* HTTP/1.x proxy requests without I/O: head, targets, Basic credentials, rewrite, replies. */
#ifndef VB_PROXY_HTTP_H
#define VB_PROXY_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * What a proxy needs of RFC 9110 and RFC 9112, as pure functions over bytes
 * (no sockets, no OS header), for proxy/socks.c, which detects and drives
 * the protocols of the proxy port:
 *
 *   http_scan          finds the end of a request head as bytes arrive
 *   http_req_parse     request line and header fields, strictly
 *   http_authority_parse / http_uri_parse
 *                      CONNECT's host:port, a GET's http://host[:port]/path
 *   http_basic_decode  Proxy-Authorization: Basic
 *   http_forward_head  the head to send upstream, in origin-form
 *   http_reply         our own answers: 200 to CONNECT, errors with a body
 *
 * Strictness: a line ends with CRLF or a bare LF (RFC 9112 2.2 allows it;
 * the head is never forwarded as received, so no upstream sees the
 * difference); NUL, a CR not followed by LF, obs-fold, whitespace before a
 * field's colon, control characters in a value, and any version but
 * HTTP/1.x are refused.
 */

#define HTTP_HEAD_MAX	16384u /* request line, fields and the blank line */
#define HTTP_FIELDS_MAX 100u   /* header fields in one request */
#define HTTP_METHOD_MAX 32u
#define HTTP_CRED_MAX	255u /* user and password, each */
/*
 * http_forward_head() output never exceeds the head it came from by more
 * than this: each field may gain 2 bytes (": " for ":", CRLF for LF), the
 * request line 3 ("/", and Host's line for the URI's scheme and
 * authority), and "Connection: close" and the final CRLF come in.
 */
#define HTTP_FORWARD_SLACK (2u * HTTP_FIELDS_MAX + 64u)

/* ---- finding the end of the head ---- */

struct http_scan {
	uint8_t st;
};

void http_scan_init(struct http_scan *s);
/*
 * http_scan() - looks for the blank line that ends a head, from bytes as they come
 * @p, @n: the next bytes of the stream
 * @used: how many of them belong to the head
 *
 * Return: 1 when the head ended (*used counts up to and including the final
 * LF; the rest is a body or a tunnel's early data), 0 when all n were used
 * and more are needed, -EPROTO for a NUL or a CR not followed by LF.
 */
int http_scan(struct http_scan *s, const uint8_t *p, size_t n, size_t *used);

/* ---- the parsed request ---- */

/* A piece of the head: not NUL-terminated, valid while the head is. */
struct http_span {
	const char *p;
	size_t n;
};

struct http_field {
	struct http_span name, value; /* value without surrounding whitespace */
};

struct http_req {
	struct http_span method, target;
	uint8_t minor; /* HTTP/1.minor */
	uint16_t nfields;
	struct http_field fields[HTTP_FIELDS_MAX];
};

/*
 * http_req_parse() - parses a complete head (what http_scan() delimited)
 * @r: its spans point into head
 *
 * Return: 0; -EPROTO for a malformed head (answer 400),
 * -EPROTONOSUPPORT for a version other than HTTP/1.x (505), -EMSGSIZE for
 * more than HTTP_FIELDS_MAX fields (431); why says what was wrong.
 */
int http_req_parse(const char *head, size_t len, struct http_req *r, char *why, size_t whylen);
/* Case-insensitive comparison of a span with a C string. */
bool http_span_eq(struct http_span s, const char *str);
/* The number of fields called name (case-insensitive); *v is the first one's value. */
unsigned http_field_get(const struct http_req *r, const char *name, struct http_span *v);
/*
 * Checks a request's body framing before its head is forwarded: one
 * Content-Length value or none, a Transfer-Encoding only without
 * Content-Length and ending in chunked (RFC 9112 6.1, 6.3). Return: 0 or
 * -EPROTO with why.
 */
int http_req_check_framing(const struct http_req *r, char *why, size_t whylen);

/* ---- targets ---- */

struct http_host {
	struct http_span host; /* without an IPv6 literal's brackets */
	uint16_t port;
	bool bracketed; /* an IP literal in [ ] */
};

/*
 * http_authority_parse() - host[:port] or [v6]:port, as in CONNECT's target or a URI
 * @dflt_port: the port when none is given; 0 when the port is required
 *
 * Return: 0, or -EINVAL for userinfo (user@), an empty host, brackets
 * around nothing or not closed, or a port outside 1..65535. The host's
 * characters are the caller's to check.
 */
int http_authority_parse(struct http_span a, uint16_t dflt_port, struct http_host *h);
/*
 * http_uri_parse() - an absolute-form target: http://authority[/path][?query]
 * @authority: the host and port as written (for the Host field)
 * @path: the rest, possibly empty or starting with '?'
 *
 * Return: 0; -EOPNOTSUPP for another scheme (https, ftp: answer 501);
 * -EINVAL for origin-form ("/x", the client took us for the server),
 * a fragment, or a malformed authority (400).
 */
int http_uri_parse(struct http_span target, struct http_host *h, struct http_span *authority,
		   struct http_span *path);

/*
 * http_basic_decode() - a Proxy-Authorization value: Basic base64(user:password)
 * @user, @pass: NUL-terminated copies, each at most HTTP_CRED_MAX bytes
 *
 * Return: 0; -EOPNOTSUPP for another scheme; -EINVAL for bad base64, no
 * colon, or a NUL or control character in the credentials; -EMSGSIZE when
 * either is too long.
 */
int http_basic_decode(struct http_span v, char user[HTTP_CRED_MAX + 1],
		      char pass[HTTP_CRED_MAX + 1]);

/*
 * http_forward_head() - the head to send to the origin for an absolute-form request
 * @authority, @path: from http_uri_parse()
 *
 * Writes "METHOD path HTTP/1.minor", then Host: authority, then the
 * client's fields without the hop-by-hop ones (Host, Connection,
 * Proxy-Connection, Keep-Alive, Proxy-Authorization, TE, Upgrade, and
 * those Connection names), then "Connection: close" and the blank line.
 * One request per connection: the body, if any, follows as the client
 * sends it, and the origin closes after its response, which goes to the
 * client unchanged. An HTTP/1.0 request goes on as 1.0 rather than in
 * our own version, so that the client gets no chunked response it cannot
 * read; later minor versions go on as 1.1.
 *
 * Return: the length, -ENOSPC when cap is too small (head length plus
 * HTTP_FORWARD_SLACK always suffices), or -EPROTO when Connection names
 * Host, Content-Length or Transfer-Encoding (why says so).
 */
int http_forward_head(const struct http_req *r, struct http_span authority, struct http_span path,
		      uint8_t *out, size_t cap, char *why, size_t whylen);

/* ---- replies ---- */

/* A status's reason phrase ("Bad Gateway"), or "Error". */
const char *http_status_text(int status);
/*
 * The status for how a CONNECT or forward ended, err a negative errno of
 * the dial: 0 200; -EPERM, -EACCES (policy) 403; -ETIMEDOUT 504;
 * -EINVAL 400; -EOPNOTSUPP 501; anything else (refused, unreachable, a
 * name that did not resolve) 502.
 */
int http_status_for(int err);
/*
 * http_reply() - our own response
 * @extra: header lines (each ending CRLF) to add, e.g. Proxy-Authenticate, or NULL
 * @detail: a line for the body after the status, or NULL
 *
 * 200 is "HTTP/1.1 200 Connection established" and nothing else (the
 * tunnel follows). Others carry Content-Type text/plain, Content-Length,
 * Connection: close and a one-line body. Return: the length, or -ENOSPC.
 */
int http_reply(uint8_t *out, size_t cap, int status, const char *extra, const char *detail);

#endif
