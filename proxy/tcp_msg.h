/* The TCP stream kind: its request (where to connect) and reply (what was connected). */
#ifndef VB_PROXY_TCP_MSG_H
#define VB_PROXY_TCP_MSG_H

#include <stddef.h>
#include <stdint.h>
#include "platform/net.h"

/*
 * Request (OPEN payload), big-endian (docs/protocol.md, TCP):
 *   cmd u8, atyp u8 (1 IPv4, 3 name, 4 IPv6, as in SOCKS5), port u16, then
 *   4 or 16 address bytes, or a name as u8 length and 1..255 bytes of
 *   letters, digits, '-', '_' and '.' (CONNECT only); LISTEN and FORWARDED
 *   add a forward id u32.
 *   CONNECT    dial the target.
 *   LISTEN     (host to agent) listen on the target address in the VM for
 *              forward id, as long as this stream stays open; no data.
 *   FORWARDED  (agent to host) a connection came to forward id's port; the
 *              target is the client's address. The host dials what it
 *              configured for that forward, never a target the guest names.
 *   UDP        (agent to host, DGRAM flag) a UDP association; the address is
 *              0.0.0.0:0. Each datagram is a header (atyp, port, 4 or 16
 *              address bytes or a name, as in the request) then the payload:
 *              toward the host the header names the destination, back the
 *              source.
 * Reply (ACCEPT payload): the connected (LISTEN: listening) socket's own
 * address then its peer's (LISTEN: zero), each atyp u8 (1 or 4), port u16,
 * 4 or 16 bytes.
 * A refusal carries the wire code of what failed (DENIED, REFUSED,
 * HOSTUNREACH, NETUNREACH, TIMEDOUT, NAME, LIMIT, INVAL) and a line of text.
 * Then the stream carries the connection's bytes both ways; FIN is the
 * TCP half-close, RESET an abort (the far end sends an RST).
 */

enum tcp_cmd {
	TCP_CONNECT = 1,
	TCP_FORWARDED = 2,
	TCP_LISTEN = 3,
	TCP_UDP = 4, /* a UDP association (SOCKS5 UDP ASSOCIATE) on a datagram stream */
};

enum tcp_atyp {
	TCP_ATYP_IPV4 = 1,
	TCP_ATYP_NAME = 3,
	TCP_ATYP_IPV6 = 4,
};

#define TCP_NAME_MAX  255u
#define TCP_REQ_MAX   (4u + 1u + TCP_NAME_MAX + 4u)
#define TCP_REPLY_MAX (2u * 19u)

/* A destination: an address (addr.family set) or a name (name[0] set) with a port. */
struct tcp_target {
	struct net_addr addr;
	char name[TCP_NAME_MAX + 1];
	uint16_t port;
};

struct tcp_req {
	uint8_t cmd;
	struct tcp_target to;
	uint32_t id;  /* LISTEN, FORWARDED: the forward */
	char via[64]; /* not on the wire: the opener's note of where it goes (a VM's name) */
};

struct tcp_reply {
	struct net_addr local, peer;
};

/* Returns the encoded length, or -EINVAL for a target with neither address nor valid name. */
int tcp_req_encode(const struct tcp_req *q, uint8_t out[TCP_REQ_MAX]);
/* Decodes and checks a request from a peer; returns 0 or -EINVAL. */
int tcp_req_decode(const uint8_t *p, size_t len, struct tcp_req *q);
int tcp_reply_encode(const struct tcp_reply *r, uint8_t out[TCP_REPLY_MAX]);
int tcp_reply_decode(const uint8_t *p, size_t len, struct tcp_reply *r);
#define TCP_DGRAM_HDR_MAX (4u + TCP_NAME_MAX)

/* A datagram's header; returns its length, or -EINVAL. */
int tcp_dgram_hdr_encode(const struct tcp_target *t, uint8_t *out, size_t cap);
/* Decodes a datagram's header from a peer; returns its length, or -EINVAL. */
int tcp_dgram_hdr_decode(const uint8_t *p, size_t len, struct tcp_target *t);
/* True for a host name a peer may ask for: 1..255 of [A-Za-z0-9-_.], not all dots. */
bool tcp_name_ok(const char *name, size_t n);
/* "name:port", "1.2.3.4:port" or "[::1]:port" into buf (cap bytes). */
const char *tcp_target_format(const struct tcp_target *t, char *buf, size_t cap);

#endif
