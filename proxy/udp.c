/* UDP associations: the VM's SOCKS5 end and the host's relay, over one datagram stream. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/udp.h"
#include "core/log.h"
#include "platform/net.h"
#include "proxy/socks.h"

/*
 * Theory of operation
 *
 * A SOCKS5 client in the VM asks for UDP ASSOCIATE on its TCP connection;
 * the VM's proxy opens a datagram stream (TCP kind, cmd UDP) to the host,
 * binds a UDP socket next to the client, and answers with its address. From
 * then on:
 *
 *   VM:   client datagram (SOCKS5 UDP header + payload) -> stream datagram
 *         (our header: destination + payload); stream datagram (source +
 *         payload) -> client datagram (SOCKS5 header + payload).
 *   host: stream datagram -> sendto(destination) from a UDP socket of the
 *         destination's family, made on first use; replies from the
 *         destinations the association sent to -> stream datagrams.
 *
 * Datagrams are datagrams: a full stream queue, a full socket buffer, a
 * name still resolving with its queue full, a denied destination: each
 * drops the datagram, never the association. Names are resolved on the
 * host (and kept for a minute), under the policy like TCP destinations.
 * The association ends with the client's TCP connection, or the stream.
 */

#define UDP_PEERS_MAX	64
#define UDP_NAMES_MAX	8
#define UDP_NAME_QUEUE	4
#define UDP_NAME_TTL_NS (60ull * 1000000000ull)
#define UDP_BURST	64 /* datagrams per readiness */
#define UDP_DGRAM_MAX	65535u

/* ---- the host's relay ---- */

struct udp_relay;

struct udp_queued {
	uint8_t *p;
	size_t len;
};

struct udp_name {
	struct udp_relay *r;
	char name[TCP_NAME_MAX + 1];
	struct net_addr addr; /* family 0: did not resolve */
	uint64_t expires_ns;
	bool resolving;
	void *handle;
	uint16_t port[UDP_NAME_QUEUE];
	struct udp_queued q[UDP_NAME_QUEUE];
	int nq;
};

struct udp_relay {
	struct loop *loop;
	struct stream *st;
	const struct tcp_srv_env *env;
	pl_fd fd[2]; /* IPv4, IPv6; -1 until first used */
	struct loop_req poll[2];
	bool armed[2];
	int pending;
	bool dead, counted;
	struct net_addr peers[UDP_PEERS_MAX];
	int npeers, next_peer;
	struct udp_name names[UDP_NAMES_MAX];
	uint64_t sent, received, dropped;
	uint8_t buf[TCP_DGRAM_HDR_MAX + UDP_DGRAM_MAX];
};

static void udp_relay_arm(struct udp_relay *r, int i);

static void udp_name_drop_queue(struct udp_name *n)
{
	for (int i = 0; i < n->nq; i++)
		free(n->q[i].p);
	n->nq = 0;
}

static void udp_relay_free_maybe(struct udp_relay *r)
{
	if (!r->dead || r->pending)
		return;
	for (int i = 0; i < 2; i++)
		net_close(r->fd[i], false);
	for (int i = 0; i < UDP_NAMES_MAX; i++)
		udp_name_drop_queue(&r->names[i]);
	if (r->counted && r->env->conn_end)
		r->env->conn_end(r->env->arg);
	vb_dbg("%s: UDP association ended: %llu datagrams out, %llu in, %llu dropped",
	       r->env->who ? r->env->who : "udp", (unsigned long long)r->sent,
	       (unsigned long long)r->received, (unsigned long long)r->dropped);
	free(r);
}

static void udp_relay_end(struct udp_relay *r)
{
	if (r->dead)
		return;
	r->dead = true;
	if (r->st) {
		stream_release(r->st);
		r->st = NULL;
	}
	for (int i = 0; i < UDP_NAMES_MAX; i++) {
		struct udp_name *n = &r->names[i];

		if (n->resolving && r->env->resolve_cancel) {
			r->env->resolve_cancel(r->env->arg, n->handle);
			n->resolving = false;
			r->pending--;
		}
	}
	for (int i = 0; i < 2; i++)
		if (r->armed[i])
			loop_cancel(r->loop, &r->poll[i]);
	udp_relay_free_maybe(r);
}

static bool udp_relay_is_peer(const struct udp_relay *r, const struct net_addr *a)
{
	for (int i = 0; i < r->npeers; i++)
		if (net_addr_equal(&r->peers[i], a))
			return true;
	return false;
}

static void udp_relay_add_peer(struct udp_relay *r, const struct net_addr *a)
{
	if (udp_relay_is_peer(r, a))
		return;
	if (r->npeers < UDP_PEERS_MAX) {
		r->peers[r->npeers++] = *a;
		return;
	}
	r->peers[r->next_peer] = *a; /* the oldest goes */
	r->next_peer = (r->next_peer + 1) % UDP_PEERS_MAX;
}

/* Sends one datagram to a, under the policy. */
static void udp_relay_send(struct udp_relay *r, const char *name, const struct net_addr *dst,
			   const uint8_t *p, size_t len)
{
	struct net_addr a = *dst;
	int i, ret;
	char why[200];

	net_addr_unmap(&a);
	if (r->env->check_addr && r->env->check_addr(r->env->arg, name, &a, why, sizeof(why))) {
		vb_dbg("%s: UDP datagram dropped: %s", r->env->who ? r->env->who : "udp", why);
		r->dropped++;
		return;
	}
	i = a.family == NET_IPV6;
	if (r->fd[i] < 0) {
		struct net_addr any = {.family = a.family};

		ret = net_udp_socket(&any, &r->fd[i]);
		if (ret) {
			r->fd[i] = -1;
			r->dropped++;
			return;
		}
		udp_relay_arm(r, i);
	}
	ret = net_sendto(r->fd[i], p, len, &a);
	if (ret < 0) {
		r->dropped++;
		return;
	}
	r->sent++;
	udp_relay_add_peer(r, &a);
}

static void udp_resolved(void *ctx, int res, const struct net_addr *addrs, int n)
{
	struct udp_name *nm = ctx;
	struct udp_relay *r = nm->r;

	nm->resolving = false;
	r->pending--;
	memset(&nm->addr, 0, sizeof(nm->addr));
	if (!res && n > 0)
		nm->addr = addrs[0];
	nm->expires_ns = clock_now_ns() + UDP_NAME_TTL_NS;
	for (int i = 0; i < nm->nq; i++) {
		struct net_addr a = nm->addr;

		a.port = nm->port[i];
		if (a.family && !r->dead)
			udp_relay_send(r, nm->name, &a, nm->q[i].p, nm->q[i].len);
		else
			r->dropped++;
	}
	udp_name_drop_queue(nm);
	udp_relay_free_maybe(r);
}

/* A datagram to a name: from the cache, or queued behind its resolution. */
static void udp_relay_send_name(struct udp_relay *r, const struct tcp_target *t, const uint8_t *p,
				size_t len)
{
	struct udp_name *nm = NULL, *lru = &r->names[0];
	uint64_t now = clock_now_ns();
	char why[200];

	for (int i = 0; i < UDP_NAMES_MAX; i++) {
		struct udp_name *x = &r->names[i];

		if (!strcmp(x->name, t->name) && (x->resolving || x->expires_ns > now))
			nm = x;
		if (!x->resolving && x->expires_ns < lru->expires_ns)
			lru = x;
	}
	if (nm && !nm->resolving) {
		struct net_addr a = nm->addr;

		a.port = t->port;
		if (a.family)
			udp_relay_send(r, nm->name, &a, p, len);
		else
			r->dropped++;
		return;
	}
	if (!nm) {
		if (lru->resolving || !r->env->resolve ||
		    (r->env->check_name &&
		     r->env->check_name(r->env->arg, t->name, t->port, why, sizeof(why)))) {
			r->dropped++;
			return;
		}
		nm = lru;
		memset(nm, 0, sizeof(*nm));
		nm->r = r;
		snprintf(nm->name, sizeof(nm->name), "%s", t->name);
		if (r->env->resolve(r->env->arg, r->loop, nm->name, udp_resolved, nm,
				    &nm->handle)) {
			nm->name[0] = '\0';
			r->dropped++;
			return;
		}
		nm->resolving = true;
		r->pending++;
	}
	if (nm->nq == UDP_NAME_QUEUE || !(nm->q[nm->nq].p = malloc(len))) {
		r->dropped++;
		return;
	}
	memcpy(nm->q[nm->nq].p, p, len);
	nm->q[nm->nq].len = len;
	nm->port[nm->nq++] = t->port;
}

static void udp_relay_on_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct udp_relay *r = stream_ctx(st);
	struct tcp_target t;
	int h = tcp_dgram_hdr_decode(p, len, &t);

	stream_consumed(st, len);
	if (h < 0) {
		r->dropped++;
		return;
	}
	if (t.addr.family)
		udp_relay_send(r, NULL, &t.addr, p + h, len - (size_t)h);
	else
		udp_relay_send_name(r, &t, p + h, len - (size_t)h);
}

static void udp_relay_on_gone(struct stream *st, int err)
{
	udp_relay_end(stream_ctx(st));
}

static void udp_relay_on_fin(struct stream *st)
{
	udp_relay_end(stream_ctx(st));
}

static const struct stream_ops udp_relay_ops = {
    .on_data = udp_relay_on_data,
    .on_fin = udp_relay_on_fin,
    .on_reset = udp_relay_on_gone,
};

/* Replies from the destinations, into the stream. */
static void udp_relay_recv(struct udp_relay *r, int i)
{
	uint8_t *payload = r->buf + TCP_DGRAM_HDR_MAX;

	for (int k = 0; k < UDP_BURST; k++) {
		struct tcp_target src = {0};
		struct net_addr from;
		int n = net_recvfrom(r->fd[i], payload, UDP_DGRAM_MAX, &from), h;
		uint8_t hdr[TCP_DGRAM_HDR_MAX];

		if (n == -EAGAIN)
			return;
		if (n < 0) {
			r->dropped++;
			continue;
		}
		net_addr_unmap(&from);
		if (!udp_relay_is_peer(r, &from)) {
			r->dropped++;
			continue;
		}
		src.addr = from;
		src.port = from.port;
		h = tcp_dgram_hdr_encode(&src, hdr, sizeof(hdr));
		memcpy(payload - h, hdr, (size_t)h);
		if (stream_write_copy(r->st, payload - h, (size_t)(h + n)))
			r->dropped++;
		else
			r->received++;
	}
}

static void udp_relay_poll_cb(struct loop_req *req, int res)
{
	struct udp_relay *r = req->data;
	int i = req == &r->poll[1];

	r->pending--;
	r->armed[i] = false;
	if (!r->dead && res >= 0)
		udp_relay_recv(r, i);
	if (!r->dead)
		udp_relay_arm(r, i);
	udp_relay_free_maybe(r);
}

static void udp_relay_arm(struct udp_relay *r, int i)
{
	if (r->armed[i] || r->dead || r->fd[i] < 0)
		return;
	r->poll[i].data = r;
	if (loop_poll(r->loop, &r->poll[i], r->fd[i], LOOP_POLL_IN, udp_relay_poll_cb))
		return;
	r->armed[i] = true;
	r->pending++;
}

void udp_serve(struct loop *l, struct stream *st, const struct tcp_req *req,
	       const struct tcp_srv_env *env)
{
	struct udp_relay *r;
	int ret;

	if (!(stream_flags(st) & FRAME_OPEN_DGRAM)) {
		stream_refuse(st, -EINVAL, "a UDP association needs a datagram stream");
		return;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		stream_refuse(st, -ENOMEM, "out of memory");
		return;
	}
	if (env->conn_begin) {
		ret = env->conn_begin(env->arg);
		if (ret) {
			stream_refuse(st, ret, "too many connections from this VM");
			free(r);
			return;
		}
		r->counted = true;
	}
	r->loop = l;
	r->env = env;
	r->fd[0] = r->fd[1] = -1;
	if (stream_accept(st, NULL, 0, &udp_relay_ops, r)) {
		stream_refuse(st, -ECANCELED, "cancelled");
		r->dead = true;
		udp_relay_free_maybe(r);
		return;
	}
	r->st = st;
}

/* ---- the VM's end ---- */

struct udp_assoc {
	struct loop *loop;
	struct stream *st;
	pl_fd ctl, udp;
	struct net_addr client;	    /* the client's IP (port 0) */
	struct net_addr client_udp; /* where its datagrams come from; family 0 until one came */
	struct loop_req wr, rd, poll;
	bool armed, rd_armed;
	int pending;
	bool dead;
	uint64_t dropped;
	uint8_t reply[64];
	size_t reply_len;
	uint8_t ctlbuf[512];
	uint8_t buf[SOCKS_UDP_HDR_MAX + UDP_DGRAM_MAX];
};

static void udp_assoc_arm(struct udp_assoc *u);

static void udp_assoc_free_maybe(struct udp_assoc *u)
{
	if (!u->dead || u->pending)
		return;
	net_close(u->ctl, false);
	net_close(u->udp, false);
	free(u);
}

static void udp_assoc_end(struct udp_assoc *u)
{
	if (u->dead)
		return;
	u->dead = true;
	if (u->st) {
		stream_release(u->st);
		u->st = NULL;
	}
	if (u->rd_armed)
		loop_cancel(u->loop, &u->rd);
	if (u->armed)
		loop_cancel(u->loop, &u->poll);
	udp_assoc_free_maybe(u);
}

static void udp_assoc_ctl_cb(struct loop_req *r, int res);

/* The client's TCP connection: anything read is ignored; its end is the association's. */
static void udp_assoc_read_ctl(struct udp_assoc *u)
{
	u->rd.data = u;
	if (loop_read(u->loop, &u->rd, u->ctl, u->ctlbuf, sizeof(u->ctlbuf), udp_assoc_ctl_cb)) {
		udp_assoc_end(u);
		return;
	}
	u->rd_armed = true;
	u->pending++;
}

static void udp_assoc_ctl_cb(struct loop_req *r, int res)
{
	struct udp_assoc *u = r->data;

	u->pending--;
	u->rd_armed = false;
	if (u->dead)
		udp_assoc_free_maybe(u);
	else if (res <= 0)
		udp_assoc_end(u);
	else
		udp_assoc_read_ctl(u);
}

static void udp_assoc_wrote(struct loop_req *r, int res)
{
	struct udp_assoc *u = r->data;

	u->pending--;
	if (u->dead) {
		udp_assoc_free_maybe(u);
		return;
	}
	if (res < 0) {
		udp_assoc_end(u);
		return;
	}
	udp_assoc_read_ctl(u);
	udp_assoc_arm(u);
}

/* Datagrams from the client, to the host. */
static void udp_assoc_recv(struct udp_assoc *u)
{
	for (int k = 0; k < UDP_BURST; k++) {
		struct net_addr from;
		struct socks_target to;
		struct tcp_target t = {0};
		uint8_t hdr[TCP_DGRAM_HDR_MAX];
		size_t hl;
		int n = net_recvfrom(u->udp, u->buf, sizeof(u->buf), &from), h;

		if (n == -EAGAIN)
			return;
		if (n < 0 || from.family != u->client.family ||
		    memcmp(from.ip, u->client.ip, sizeof(from.ip)) != 0 ||
		    socks_udp_parse(u->buf, (size_t)n, &to, &hl)) {
			u->dropped++;
			continue;
		}
		u->client_udp = from;
		t.port = to.port;
		if (to.atyp == SOCKS_ATYP_NAME) {
			snprintf(t.name, sizeof(t.name), "%s", to.name);
		} else {
			t.addr.family = to.atyp == SOCKS_ATYP_IPV6 ? NET_IPV6 : NET_IPV4;
			memcpy(t.addr.ip, to.ip, 16);
		}
		h = tcp_dgram_hdr_encode(&t, hdr, sizeof(hdr));
		if (h < 0 || hl < (size_t)h) {
			u->dropped++;
			continue;
		}
		/* Our header replaces the client's in place: the payload is not copied here. */
		memcpy(u->buf + hl - (size_t)h, hdr, (size_t)h);
		if (stream_write_copy(u->st, u->buf + hl - (size_t)h, (size_t)n - hl + (size_t)h))
			u->dropped++;
	}
}

static void udp_assoc_poll_cb(struct loop_req *r, int res)
{
	struct udp_assoc *u = r->data;

	u->pending--;
	u->armed = false;
	if (!u->dead && res >= 0)
		udp_assoc_recv(u);
	udp_assoc_arm(u);
	udp_assoc_free_maybe(u);
}

static void udp_assoc_arm(struct udp_assoc *u)
{
	if (u->armed || u->dead)
		return;
	u->poll.data = u;
	if (loop_poll(u->loop, &u->poll, u->udp, LOOP_POLL_IN, udp_assoc_poll_cb))
		return;
	u->armed = true;
	u->pending++;
}

/* A datagram from the host: to the client, with a SOCKS5 header naming its source. */
static void udp_assoc_on_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct udp_assoc *u = stream_ctx(st);
	struct socks_target src = {0};
	struct tcp_target t;
	int h = tcp_dgram_hdr_decode(p, len, &t), sh;

	stream_consumed(st, len);
	if (h < 0 || !t.addr.family || !u->client_udp.family) {
		u->dropped++;
		return;
	}
	src.atyp = t.addr.family == NET_IPV6 ? SOCKS_ATYP_IPV6 : SOCKS_ATYP_IPV4;
	src.port = t.port;
	memcpy(src.ip, t.addr.ip, 16);
	sh = socks_udp_build(u->buf, SOCKS_UDP_HDR_MAX, &src);
	if (sh < 0 || len - (size_t)h > UDP_DGRAM_MAX) {
		u->dropped++;
		return;
	}
	memcpy(u->buf + sh, p + h, len - (size_t)h);
	if (net_sendto(u->udp, u->buf, (size_t)sh + len - (size_t)h, &u->client_udp) < 0)
		u->dropped++;
}

static void udp_assoc_on_gone(struct stream *st, int err)
{
	udp_assoc_end(stream_ctx(st));
}

static void udp_assoc_on_fin(struct stream *st)
{
	udp_assoc_end(stream_ctx(st));
}

static const struct stream_ops udp_assoc_ops = {
    .on_data = udp_assoc_on_data,
    .on_fin = udp_assoc_on_fin,
    .on_reset = udp_assoc_on_gone,
};

int udp_assoc_start(struct loop *l, pl_fd ctl, pl_fd udp, struct stream *st, const uint8_t *reply,
		    size_t reply_len, const struct net_addr *client)
{
	struct udp_assoc *u = calloc(1, sizeof(*u));

	if (!u || reply_len > sizeof(u->reply)) {
		free(u);
		net_close(ctl, true);
		net_close(udp, false);
		stream_reset(st, -ENOMEM);
		stream_release(st);
		return -ENOMEM;
	}
	u->loop = l;
	u->st = st;
	u->ctl = ctl;
	u->udp = udp;
	u->client = *client;
	u->client.port = 0;
	memcpy(u->reply, reply, reply_len);
	u->reply_len = reply_len;
	stream_set_ops(st, &udp_assoc_ops, u);
	u->wr.data = u;
	if (loop_write(l, &u->wr, ctl, u->reply, u->reply_len, udp_assoc_wrote)) {
		udp_assoc_end(u);
		return -EIO;
	}
	u->pending++;
	return 0;
}
