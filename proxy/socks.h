/* The proxy port's handshake without I/O: SOCKS5, SOCKS4, SOCKS4a and HTTP on one port; replies. */
#ifndef VB_PROXY_SOCKS_H
#define VB_PROXY_SOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "proxy/http.h"

/*
 * One listening port speaks SOCKS5 (RFC 1928, with RFC 1929 user and
 * password), SOCKS4, SOCKS4a and HTTP proxying (CONNECT, and absolute-form
 * requests for http:// URIs), told apart by the first byte: 0x05, 0x04, or
 * an upper-case letter (an HTTP method). Everything here is bytes in, bytes
 * out: the caller owns the socket, reads, writes, dials and closes.
 *
 *   struct socks_hs h;                          per accepted connection
 *   socks_hs_init(&h, &opts);
 *   on every read of p[0..n):
 *     while (n) {
 *       r = socks_hs_feed(&h, p, n, &used);  p += used; n -= used;
 *       MORE:    read again (all n were used)
 *       REPLY:   write h.out[0..h.out_len), then go on feeding what is left
 *       REQUEST: dial h.req.to; socks_hs_reply(&h, err, bound, NULL) puts
 *                the answer in h.out; write it; for HTTP_FORWARD on success
 *                h.out is empty and h.req.upstream goes to the server first;
 *                the bytes left in p[0..n) are the client's early data
 *                (a pipelined request body, a TLS ClientHello): forward them
 *       < 0:     write h.out[0..h.out_len) (may be empty), then close; h.why
 *                says why in one line
 *     }
 *
 * Bytes past a message are never taken: *used stops at its end, so nothing
 * a client pipelines is lost. The struct is about 35 KiB (an HTTP head is
 * buffered whole, up to HTTP_HEAD_MAX, and so is its rewrite); SOCKS needs
 * only a few hundred bytes of it. Nothing is allocated and there is nothing
 * to free.
 *
 * Keep-alive is out of scope: one request per connection. CONNECT becomes
 * a tunnel; a forwarded request goes upstream with "Connection: close", so
 * the origin ends the connection after its response (the body, and any
 * request a client pipelines behind it, are early data that reach the same
 * origin as sent: no second target is parsed). Domain names are
 * checked for their characters only: what a name means (a "<vm>.vmbus"
 * suffix, a policy) is the caller's business.
 */

enum socks_proto {
	SOCKS_P_SOCKS5 = 1u << 0,
	SOCKS_P_SOCKS4 = 1u << 1,
	SOCKS_P_SOCKS4A = 1u << 2,
	SOCKS_P_HTTP_CONNECT = 1u << 3,
	SOCKS_P_HTTP_FORWARD = 1u << 4,
};
#define SOCKS_P_ALL 0x1fu

/* Commands, numbered as in SOCKS5 (SOCKS4 has the first two with the same numbers). */
enum socks_cmd {
	SOCKS_CMD_CONNECT = 1,
	SOCKS_CMD_BIND = 2,
	SOCKS_CMD_UDP_ASSOCIATE = 3,
};
#define SOCKS_CMD_BIT(c) (1u << (c))

/* Address types, numbered as in SOCKS5 (and as in the TCP stream kind, proxy/tcp_msg.h). */
enum socks_atyp {
	SOCKS_ATYP_IPV4 = 1,
	SOCKS_ATYP_NAME = 3,
	SOCKS_ATYP_IPV6 = 4,
};

/* SOCKS5 reply codes (RFC 1928 6) and SOCKS4's two. */
enum socks_rep {
	SOCKS5_REP_OK = 0x00,
	SOCKS5_REP_FAILURE = 0x01,
	SOCKS5_REP_NOT_ALLOWED = 0x02,
	SOCKS5_REP_NET_UNREACH = 0x03,
	SOCKS5_REP_HOST_UNREACH = 0x04,
	SOCKS5_REP_REFUSED = 0x05,
	SOCKS5_REP_TTL_EXPIRED = 0x06,
	SOCKS5_REP_CMD_UNSUPPORTED = 0x07,
	SOCKS5_REP_ATYP_UNSUPPORTED = 0x08,
	SOCKS4_REP_GRANTED = 0x5a,
	SOCKS4_REP_REJECTED = 0x5b,
};

#define SOCKS_NAME_MAX	  255u
#define SOCKS_USER_MAX	  255u
#define SOCKS_REPLY_MAX	  1024u			/* the longest answer to a client (an HTTP error) */
#define SOCKS_UDP_HDR_MAX (4u + 1u + 255u + 2u) /* RSV FRAG ATYP, a name, the port */

/* Where to: an IPv4 or IPv6 address, or a name, with a port. */
struct socks_target {
	uint8_t atyp;		       /* enum socks_atyp */
	uint16_t port;		       /* host order */
	uint8_t ip[16];		       /* IPv4: the first 4 bytes */
	char name[SOCKS_NAME_MAX + 1]; /* NUL-terminated, ATYP_NAME only */
};

/*
 * socks_target_host() - sets a target from text, as HTTP and SOCKS4a carry it
 * @s, @n: an IPv4 literal (dotted decimal), an IPv6 literal (no brackets,
 *         no zone), or a host name
 *
 * Literals become addresses. A name must be 1..255 bytes of letters,
 * digits, '-', '_' and '.', not dots only (what the TCP stream kind
 * carries), and its last label must not begin with a digit: no top-level
 * domain does, and resolvers read such names ("010.1", "0x7f.1",
 * "2130706433") as IPv4 numbers in forms that would slip past a check on
 * the text. Return: 0 or -EINVAL.
 */
int socks_target_host(struct socks_target *t, const char *s, size_t n, uint16_t port);
/* "name:port", "1.2.3.4:port" or "[2001:db8::1]:port" into buf; returns buf. */
const char *socks_target_format(const struct socks_target *t, char *buf, size_t cap);

/* ---- the handshake ---- */

struct socks_opts {
	unsigned protos; /* SOCKS_P_* accepted; 0: all */
	unsigned cmds;	 /* SOCKS_CMD_BIT()s accepted; 0: CONNECT only */
	/*
	 * Checks credentials (NUL-terminated, without NUL inside): 0 to accept.
	 * Called synchronously from socks_hs_feed(); compare in constant time.
	 * NULL: none are required. When set, a SOCKS5 client must choose
	 * user/password, an HTTP client must send Proxy-Authorization: Basic
	 * (else 407), and SOCKS4/4a, which carry no password, are refused.
	 * Without it, a SOCKS5 client offering only user/password gets it, and
	 * any credentials pass.
	 */
	int (*auth)(void *arg, const char *user, const char *pass);
	void *auth_arg;
	size_t http_head_max; /* 0: HTTP_HEAD_MAX, which is also the most */
	const char *realm;    /* the 407's Basic realm; NULL: "vmbusify" */
};

enum socks_hs_res {
	SOCKS_HS_MORE = 0,    /* every byte was taken; read more */
	SOCKS_HS_REPLY = 1,   /* send out, then feed the rest */
	SOCKS_HS_REQUEST = 2, /* req is ready; dial it, then socks_hs_reply() */
};

struct socks_req {
	enum socks_proto proto; /* one bit */
	enum socks_cmd cmd;	/* CONNECT for HTTP */
	struct socks_target to; /* UDP ASSOCIATE: where the client will send from (often 0:0) */
	char user[SOCKS_USER_MAX + 1]; /* "" when none; SOCKS4's user id is not checked */
	bool authenticated;	       /* auth accepted user */
	/* HTTP_FORWARD: the head to send the server, in this struct, before the early data. */
	const uint8_t *upstream;
	size_t upstream_len;
};

struct socks_hs {
	/* read-only for the caller: */
	struct socks_req req;
	uint8_t out[SOCKS_REPLY_MAX]; /* for the client */
	size_t out_len;
	char why[256];
	/* private: */
	struct socks_opts opts;
	uint8_t state;
	uint8_t method; /* SOCKS5 method chosen */
	size_t have;	/* bytes of the current message in in[] */
	struct http_scan scan;
	uint8_t in[HTTP_HEAD_MAX];
	uint8_t up[HTTP_HEAD_MAX + HTTP_FORWARD_SLACK];
};

/* Starts a handshake; o may be NULL (all protocols, CONNECT, no credentials); o is copied. */
void socks_hs_init(struct socks_hs *h, const struct socks_opts *o);
/*
 * socks_hs_feed() - takes bytes from the client
 * @p, @n: bytes read (n may be 0)
 * @used: how many were taken; the rest belongs to what comes next
 *
 * Return: SOCKS_HS_MORE, SOCKS_HS_REPLY or SOCKS_HS_REQUEST (see above),
 * or a negative errno with out holding the refusal to send before closing:
 * -EPROTO (not a proxy protocol, or malformed), -EPROTONOSUPPORT (the
 * protocol is not enabled, or an HTTP version other than 1.x),
 * -EOPNOTSUPP (command or URI scheme not enabled), -EACCES (credentials
 * missing or refused), -EINVAL (a bad destination), -EAFNOSUPPORT (an
 * unknown address type), -EMSGSIZE (a field or head too long). Once the
 * handshake has ended, it returns -EALREADY and takes nothing.
 */
int socks_hs_feed(struct socks_hs *h, const uint8_t *p, size_t n, size_t *used);
/*
 * socks_hs_reply() - the answer to the request, once dialed
 * @err: 0, or the dial's negative errno (mapped as socks_rep5_code(),
 *       socks_rep4_code() and http_status_for() say)
 * @bound: SOCKS: the address the connection is bound to (or, for UDP
 *         ASSOCIATE, the relay's address); NULL for 0.0.0.0:0
 * @detail: HTTP errors: a line for the body; may be NULL
 *
 * Sets out and out_len; may be called again (BIND's second reply).
 * Return: 0, or -EINVAL before a request.
 */
int socks_hs_reply(struct socks_hs *h, int err, const struct socks_target *bound,
		   const char *detail);

/* ---- replies and codes ---- */

/*
 * The SOCKS5 code for a negative errno: 0 OK; -EPERM, -EACCES (policy)
 * NOT_ALLOWED; -ENETUNREACH NET_UNREACH; -EHOSTUNREACH, -EHOSTDOWN,
 * -EADDRNOTAVAIL, -ETIMEDOUT, -ENXIO (a name that did not resolve)
 * HOST_UNREACH; -ECONNREFUSED REFUSED; -EOPNOTSUPP, -EPROTONOSUPPORT
 * CMD_UNSUPPORTED; -EAFNOSUPPORT ATYP_UNSUPPORTED; anything else FAILURE.
 */
uint8_t socks_rep5_code(int err);
/* SOCKS4: 0 GRANTED, anything else REJECTED. */
uint8_t socks_rep4_code(int err);
/* A short text for a SOCKS5 reply code, for logs. */
const char *socks_rep5_text(uint8_t code);
/* VER 5, REP, RSV, the bound address (NULL: 0.0.0.0:0); returns the length or -ENOSPC. */
int socks_rep5_encode(uint8_t *out, size_t cap, uint8_t code, const struct socks_target *bound);
/* VN 0, CD, port, IPv4 (NULL or not IPv4: zeros); always 8 bytes. */
void socks_rep4_encode(uint8_t out[8], uint8_t code, const struct socks_target *bound);

/* ---- SOCKS5 UDP ASSOCIATE datagrams ---- */

/*
 * socks_udp_parse() - the header of a datagram from the client (RFC 1928 7)
 * @to: the destination it names
 * @hdr_len: where the payload starts
 *
 * Return: 0; -EOPNOTSUPP for a fragment (FRAG != 0: drop it, as the RFC
 * allows); -EPROTO for a short or malformed header; -EAFNOSUPPORT for an
 * unknown address type; -EINVAL for a bad name. RSV is not checked.
 */
int socks_udp_parse(const uint8_t *p, size_t n, struct socks_target *to, size_t *hdr_len);
/* The header of a datagram to the client, from: who sent it. Returns the length or -ENOSPC. */
int socks_udp_build(uint8_t *out, size_t cap, const struct socks_target *from);

#endif
