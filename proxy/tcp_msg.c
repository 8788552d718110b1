/* The TCP stream kind's request and reply codecs. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "proxy/tcp_msg.h"
#include "core/wire.h"

bool tcp_name_ok(const char *name, size_t n)
{
	bool letter = false;

	if (n == 0 || n > TCP_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '_')
			letter = true;
		else if (c != '.')
			return false;
	}
	return letter;
}

static void tcp_wr_addr(struct wire_wr *w, const struct net_addr *a)
{
	wire_wr_u8(w, a->family == NET_IPV6 ? TCP_ATYP_IPV6 : TCP_ATYP_IPV4);
	wire_wr_u16(w, a->port);
	wire_wr_mem(w, a->ip, a->family == NET_IPV6 ? 16 : 4);
}

/* Reads an IP address (atyp 1 or 4) with its port; sets r->err for anything else. */
static void tcp_rd_ip(struct wire_rd *r, uint8_t atyp, struct net_addr *a)
{
	size_t n = atyp == TCP_ATYP_IPV4 ? 4 : 16;
	const uint8_t *p;

	memset(a, 0, sizeof(*a));
	if (atyp != TCP_ATYP_IPV4 && atyp != TCP_ATYP_IPV6) {
		r->err = true;
		return;
	}
	a->family = atyp == TCP_ATYP_IPV4 ? NET_IPV4 : NET_IPV6;
	a->port = wire_rd_u16(r);
	p = wire_rd_bytes(r, n);
	if (p)
		memcpy(a->ip, p, n);
}

int tcp_req_encode(const struct tcp_req *q, uint8_t out[TCP_REQ_MAX])
{
	struct wire_wr w;
	size_t n = strlen(q->to.name);

	wire_wr_init(&w, out, TCP_REQ_MAX);
	wire_wr_u8(&w, q->cmd);
	if (q->to.addr.family) {
		struct net_addr a = q->to.addr;

		a.port = q->to.port;
		tcp_wr_addr(&w, &a);
	} else if (q->cmd != TCP_CONNECT) {
		return -EINVAL;
	} else {
		if (!tcp_name_ok(q->to.name, n))
			return -EINVAL;
		wire_wr_u8(&w, TCP_ATYP_NAME);
		wire_wr_u16(&w, q->to.port);
		wire_wr_u8(&w, (uint8_t)n);
		wire_wr_mem(&w, q->to.name, n);
	}
	if (q->cmd == TCP_LISTEN || q->cmd == TCP_FORWARDED)
		wire_wr_u32(&w, q->id);
	return w.err ? -EINVAL : (int)w.off;
}

int tcp_req_decode(const uint8_t *p, size_t len, struct tcp_req *q)
{
	struct wire_rd r;
	uint8_t atyp;

	memset(q, 0, sizeof(*q));
	wire_rd_init(&r, p, len);
	q->cmd = wire_rd_u8(&r);
	atyp = wire_rd_u8(&r);
	if (atyp == TCP_ATYP_NAME && q->cmd == TCP_CONNECT) {
		const uint8_t *name;
		uint8_t n;

		q->to.port = wire_rd_u16(&r);
		n = wire_rd_u8(&r);
		name = wire_rd_bytes(&r, n);
		if (!name || !tcp_name_ok((const char *)name, n))
			return -EINVAL;
		memcpy(q->to.name, name, n);
	} else {
		tcp_rd_ip(&r, atyp, &q->to.addr);
		q->to.port = q->to.addr.port;
	}
	if (q->cmd == TCP_LISTEN || q->cmd == TCP_FORWARDED)
		q->id = wire_rd_u32(&r);
	else if (q->cmd != TCP_CONNECT && q->cmd != TCP_UDP)
		return -EINVAL;
	/* A listener may take any free port (0); a connection goes to one. */
	if (r.err || wire_rd_left(&r) || (q->to.port == 0 && q->cmd == TCP_CONNECT) ||
	    (q->cmd == TCP_UDP && !q->to.addr.family))
		return -EINVAL;
	return 0;
}

int tcp_reply_encode(const struct tcp_reply *r, uint8_t out[TCP_REPLY_MAX])
{
	struct wire_wr w;

	wire_wr_init(&w, out, TCP_REPLY_MAX);
	tcp_wr_addr(&w, &r->local);
	tcp_wr_addr(&w, &r->peer);
	return w.err ? -EINVAL : (int)w.off;
}

int tcp_reply_decode(const uint8_t *p, size_t len, struct tcp_reply *r)
{
	struct wire_rd rd;

	wire_rd_init(&rd, p, len);
	tcp_rd_ip(&rd, wire_rd_u8(&rd), &r->local);
	tcp_rd_ip(&rd, wire_rd_u8(&rd), &r->peer);
	return rd.err || wire_rd_left(&rd) ? -EINVAL : 0;
}

const char *tcp_target_format(const struct tcp_target *t, char *buf, size_t cap)
{
	char text[NET_ADDR_STRLEN];

	if (t->addr.family) {
		struct net_addr a = t->addr;

		a.port = t->port;
		snprintf(buf, cap, "%s", net_addr_format(&a, true, text));
	} else {
		snprintf(buf, cap, "%s:%u", t->name, t->port);
	}
	return buf;
}

int tcp_dgram_hdr_encode(const struct tcp_target *t, uint8_t *out, size_t cap)
{
	struct wire_wr w;
	size_t n = strlen(t->name);

	wire_wr_init(&w, out, cap);
	if (t->addr.family) {
		struct net_addr a = t->addr;

		a.port = t->port;
		tcp_wr_addr(&w, &a);
	} else {
		if (!tcp_name_ok(t->name, n))
			return -EINVAL;
		wire_wr_u8(&w, TCP_ATYP_NAME);
		wire_wr_u16(&w, t->port);
		wire_wr_u8(&w, (uint8_t)n);
		wire_wr_mem(&w, t->name, n);
	}
	return w.err ? -EINVAL : (int)w.off;
}

int tcp_dgram_hdr_decode(const uint8_t *p, size_t len, struct tcp_target *t)
{
	struct wire_rd r;
	uint8_t atyp;

	memset(t, 0, sizeof(*t));
	wire_rd_init(&r, p, len);
	atyp = wire_rd_u8(&r);
	if (atyp == TCP_ATYP_NAME) {
		const uint8_t *name;
		uint8_t n;

		t->port = wire_rd_u16(&r);
		n = wire_rd_u8(&r);
		name = wire_rd_bytes(&r, n);
		if (!name || !tcp_name_ok((const char *)name, n))
			return -EINVAL;
		memcpy(t->name, name, n);
	} else {
		tcp_rd_ip(&r, atyp, &t->addr);
		t->port = t->addr.port;
	}
	return r.err || t->port == 0 ? -EINVAL : (int)r.off;
}
