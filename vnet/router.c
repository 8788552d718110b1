/* The host's end of vnet: leases, the gateway's TUN, and switching packets between VMs. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vnet/router.h"
#include "core/kinds.h"
#include "core/list.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "platform/nat.h"
#include "platform/netcfg.h"
#include "platform/tun.h"
#include "vnet/dns.h"
#include "vnet/icmp.h"
#include "vnet/msg.h"
#include "vnet/pkt.h"

/*
 * Theory of operation
 *
 * Slots: one per host number of the subnet (the lease's), never freed while
 * the router lives. A slot names the loop of the VM's session and, on that
 * loop only, the port (the attached VNET stream). Attaching and detaching
 * change a slot under the router's lock and bump its generation, so a
 * packet handed across loops for an older attachment is dropped.
 *
 * From a VM (on its loop): every packet is checked (vnet_pkt_check: lengths,
 * the lease's source, unicast, the offload header). To another VM of the
 * subnet it is switched here: by reference onto that VM's stream when both
 * live on the same loop, else copied once and posted to that loop. Anything
 * else (the gateway, the outside) is written to the TUN from the receive
 * chunk; the host's kernel routes it and NAT takes it out.
 *
 * From the TUN (on the first loop): one read always in flight, into the free
 * end of a chunk; the destination picks the slot, and the packet goes on by
 * reference or by copy as above. Unknown destinations are dropped.
 *
 * Datagrams all the way: a full stream queue, too many TUN writes in
 * flight, a detached VM: the packet is dropped and counted, never queued
 * without bound.
 */

#define VNET_SLOTS_MAX	 4096
#define VNET_PORT_WRITES 256

struct vnet_port;

struct vnet_slot {
	struct rt_loop *rl;	/* the VM's loop (under the lock) */
	struct vnet_port *port; /* on rl only */
	uint32_t gen;		/* under the lock; read by rl */
	bool active;
	uint32_t mtu; /* the largest packet the VM takes */
	char vm[64];
	uint64_t rx_pkts, rx_bytes, tx_pkts, tx_bytes, drops; /* atomic */
};

struct vnet_port {
	struct vnet_router *r;
	struct rt_loop *rl;
	struct stream *st;
	uint32_t host, gen;
	struct vnet_src src;
	int writes; /* TUN writes in flight */
	bool dead;
};

struct vnet_router {
	struct runtime *rt;
	struct vnet_router_cfg cfg;
	struct vnet_leases leases;
	pthread_mutex_t lock;
	struct vnet_slot *slots;
	uint32_t nslots;
	struct tun tun;
	struct netcfg_fwd fwd;
	bool nat_up;
	struct vnet_dns *dns;
	uint8_t gw4[4], gw6[16];
	/* TUN reads, on the first loop */
	struct loop_req rd;
	struct chunk *rc;
	size_t roff;
	uint64_t tun_drops;
};

struct vnet_tun_wr {
	struct loop_req req;
	struct vnet_port *port;
	struct chunk *c;
};

struct vnet_xfer {
	struct vnet_router *r;
	uint32_t host, gen;
	size_t len;
	uint8_t data[];
};

static void vnet_count(uint64_t *v, uint64_t n)
{
	__atomic_add_fetch(v, n, __ATOMIC_RELAXED);
}

/* A counter another loop's vnet_count() may be adding to: read atomically too. */
static unsigned long long vnet_counter(const uint64_t *v)
{
	return (unsigned long long)__atomic_load_n(v, __ATOMIC_RELAXED);
}

/* ---- addresses ---- */

/* The host number of dst when it lies in the subnet (0: it does not). */
static uint32_t vnet_host_of(const struct vnet_router *r, int family, const uint8_t *dst)
{
	const struct vnet_net *n = &r->cfg.net;
	uint32_t a, net, mask;

	if (family == 4) {
		a = (uint32_t)dst[0] << 24 | (uint32_t)dst[1] << 16 | (uint32_t)dst[2] << 8 |
		    dst[3];
		net = (uint32_t)n->net4[0] << 24 | (uint32_t)n->net4[1] << 16 |
		      (uint32_t)n->net4[2] << 8 | n->net4[3];
		mask = n->prefix4 ? ~0u << (32 - n->prefix4) : 0;
		return (a & mask) == net ? a & ~mask : 0;
	}
	if (!n->has6 || memcmp(dst, n->net6, 12) != 0)
		return 0;
	return (uint32_t)dst[12] << 24 | (uint32_t)dst[13] << 16 | (uint32_t)dst[14] << 8 | dst[15];
}

/* ---- delivery to a VM ---- */

static void vnet_deliver_here(struct vnet_router *r, uint32_t host, struct chunk *c,
			      const uint8_t *p, size_t len)
{
	struct vnet_slot *s = &r->slots[host];
	struct vnet_port *port = s->port;
	int ret;

	if (!port || port->dead) {
		vnet_count(&s->drops, 1);
		return;
	}
	ret = c ? stream_write(port->st, c, p, len) : stream_write_copy(port->st, p, len);
	if (ret) {
		vnet_count(&s->drops, 1);
		return;
	}
	vnet_count(&s->tx_pkts, 1);
	vnet_count(&s->tx_bytes, len);
}

static void vnet_xfer_run(void *arg)
{
	struct vnet_xfer *x = arg;
	struct vnet_router *r = x->r;
	uint32_t gen;

	pthread_mutex_lock(&r->lock);
	gen = r->slots[x->host].gen;
	pthread_mutex_unlock(&r->lock);
	if (gen == x->gen)
		vnet_deliver_here(r, x->host, NULL, x->data, x->len);
	else
		vnet_count(&r->slots[x->host].drops, 1);
	free(x);
}

/* True when the frame (offload header, packet) is larger than mtu once segmented. */
static bool vnet_too_big(const uint8_t *p, size_t len, uint32_t mtu)
{
	struct vnet_hdr h;

	vnet_hdr_decode(p, &h);
	if ((h.gso_type & ~VNET_GSO_ECN) != VNET_GSO_NONE)
		return (uint32_t)h.hdr_len + h.gso_size > mtu;
	return len - VNET_HDR_LEN > mtu;
}

/*
 * A packet for the VM of host, from loop here: by reference on the same
 * loop, else a copy. Returns 0, or the VM's MTU when the packet does not
 * fit it (the caller answers "too big").
 */
static uint32_t vnet_deliver(struct vnet_router *r, struct rt_loop *here, uint32_t host,
			     struct chunk *c, const uint8_t *p, size_t len)
{
	struct vnet_slot *s = &r->slots[host];
	struct rt_loop *rl;
	struct vnet_xfer *x;
	uint32_t gen, mtu;
	bool active;

	pthread_mutex_lock(&r->lock);
	rl = s->rl;
	gen = s->gen;
	active = s->active;
	mtu = s->mtu;
	pthread_mutex_unlock(&r->lock);
	if (!active) {
		vnet_count(&r->tun_drops, 1);
		return 0;
	}
	if (vnet_too_big(p, len, mtu)) {
		vnet_count(&s->drops, 1);
		return mtu;
	}
	if (rl == here) {
		vnet_deliver_here(r, host, c, p, len);
		return 0;
	}
	x = malloc(sizeof(*x) + len);
	if (!x) {
		vnet_count(&s->drops, 1);
		return 0;
	}
	x->r = r;
	x->host = host;
	x->gen = gen;
	x->len = len;
	memcpy(x->data, p, len);
	if (loop_post(rl->loop, vnet_xfer_run, x)) {
		free(x);
		vnet_count(&s->drops, 1);
	}
	return 0;
}

/* ---- from the TUN ---- */

static void vnet_tun_read(struct vnet_router *r);

struct vnet_tun_icmp {
	struct loop_req req;
	uint8_t buf[VNET_ICMP_MAX];
};

static void vnet_tun_icmp_done(struct loop_req *req, int res)
{
	free(req->data);
}

/* "Too big" to the host's side: written to the TUN, from the first loop. */
static void vnet_tun_too_big(struct vnet_router *r, const uint8_t *p, size_t len, uint32_t mtu)
{
	struct vnet_tun_icmp *t = calloc(1, sizeof(*t));
	int n;

	if (!t)
		return;
	n = vnet_icmp_too_big(p + VNET_HDR_LEN, len - VNET_HDR_LEN, mtu, r->gw4, r->gw6, t->buf);
	t->req.data = t;
	if (n < 0 || loop_write(r->rt->loops[0].loop, &t->req, r->tun.fd, t->buf, (size_t)n,
				vnet_tun_icmp_done))
		free(t);
}

static void vnet_tun_read_cb(struct loop_req *req, int res)
{
	struct vnet_router *r = req->data;
	const uint8_t *p = r->rc->data + r->roff, *ip = p + TUN_HDR_LEN;
	uint32_t host = 0;

	if (res == -ECANCELED)
		return;
	if (res > (int)TUN_HDR_LEN + 20) {
		if ((ip[0] >> 4) == 4)
			host = vnet_host_of(r, 4, ip + 16);
		else if ((ip[0] >> 4) == 6 && res >= (int)TUN_HDR_LEN + 40)
			host = vnet_host_of(r, 6, ip + 24);
		if (host > 1 && host < r->nslots) {
			uint32_t mtu =
			    vnet_deliver(r, &r->rt->loops[0], host, r->rc, p, (size_t)res);

			if (mtu)
				vnet_tun_too_big(r, p, (size_t)res, mtu);
		} else {
			vnet_count(&r->tun_drops, 1);
		}
		r->roff += ((size_t)res + 7) & ~(size_t)7;
	} else if (res < 0 && res != -EAGAIN && res != -EINTR) {
		vb_warn("vnet: reading %s: %s", r->tun.name, strerror(-res));
	}
	vnet_tun_read(r);
}

static void vnet_tun_read(struct vnet_router *r)
{
	if (r->rc && r->rc->size - r->roff < TUN_FRAME_MAX) {
		chunk_put(r->rc);
		r->rc = NULL;
	}
	if (!r->rc) {
		r->rc = chunk_get(&r->rt->loops[0].chunks);
		r->roff = 0;
		if (!r->rc || r->rc->size < TUN_FRAME_MAX) {
			vb_err("vnet: no buffer to read %s; vnet stops", r->tun.name);
			return;
		}
	}
	r->rd.data = r;
	if (loop_read(r->rt->loops[0].loop, &r->rd, r->tun.fd, r->rc->data + r->roff, TUN_FRAME_MAX,
		      vnet_tun_read_cb))
		vb_err("vnet: cannot read %s; vnet stops", r->tun.name);
}

static void vnet_tun_start(void *arg)
{
	vnet_tun_read(arg);
}

/* ---- from a VM ---- */

static void vnet_port_free_maybe(struct vnet_port *port)
{
	if (port->dead && !port->writes)
		free(port);
}

static void vnet_tun_wrote(struct loop_req *req, int res)
{
	struct vnet_tun_wr *w = req->data;
	struct vnet_port *port = w->port;

	if (res < 0)
		vnet_count(&port->r->slots[port->host].drops, 1);
	port->writes--;
	chunk_put(w->c);
	free(w);
	vnet_port_free_maybe(port);
}

/* To the host's kernel: written from the receive chunk. */
static void vnet_to_tun(struct vnet_port *port, struct chunk *c, const uint8_t *p, size_t len)
{
	struct vnet_router *r = port->r;
	struct vnet_tun_wr *w;

	if (port->writes >= VNET_PORT_WRITES || !(w = calloc(1, sizeof(*w)))) {
		vnet_count(&r->slots[port->host].drops, 1);
		return;
	}
	w->port = port;
	w->c = c;
	w->req.data = w;
	chunk_ref(c);
	if (loop_write(port->rl->loop, &w->req, r->tun.fd, p, len, vnet_tun_wrote)) {
		chunk_put(c);
		free(w);
		vnet_count(&r->slots[port->host].drops, 1);
		return;
	}
	port->writes++;
}

static void vnet_port_on_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct vnet_port *port = stream_ctx(st);
	struct vnet_router *r = port->r;
	struct vnet_slot *s = &r->slots[port->host];
	struct vnet_pkt k;
	char why[128];
	uint32_t host;

	stream_consumed(st, len);
	if (vnet_pkt_check(p, len, VNET_HDR_LEN, r->cfg.mtu, &port->src, &k, why, sizeof(why))) {
		vnet_count(&s->drops, 1);
		vb_dbg("vnet: %s: dropped a packet: %s", s->vm, why);
		return;
	}
	vnet_count(&s->rx_pkts, 1);
	vnet_count(&s->rx_bytes, len);
	host = vnet_host_of(r, k.family, k.dst);
	if (host > 1 && host < r->nslots && host != port->host) {
		uint32_t mtu = vnet_deliver(r, port->rl, host, c, p, len);
		uint8_t icmp[VNET_ICMP_MAX];
		int n;

		/* Too big for the other VM: the sender hears so, as from a router. */
		if (mtu && (n = vnet_icmp_too_big(k.ip, k.ip_len, mtu, r->gw4, r->gw6, icmp)) > 0)
			stream_write_copy(st, icmp, (size_t)n);
	} else {
		vnet_to_tun(port, c, p, len);
	}
}

static void vnet_port_detach(struct vnet_port *port)
{
	struct vnet_router *r = port->r;
	struct vnet_slot *s = &r->slots[port->host];

	if (port->dead)
		return;
	port->dead = true;
	pthread_mutex_lock(&r->lock);
	if (s->gen == port->gen) {
		s->active = false;
		s->gen++;
		s->port = NULL;
	}
	pthread_mutex_unlock(&r->lock);
	vb_info("vnet: %s detached", s->vm);
	stream_release(port->st);
	port->st = NULL;
	vnet_port_free_maybe(port);
}

static void vnet_port_on_reset(struct stream *st, int err)
{
	vnet_port_detach(stream_ctx(st));
}

static void vnet_port_on_fin(struct stream *st)
{
	vnet_port_detach(stream_ctx(st));
}

static const struct stream_ops vnet_port_ops = {
    .on_data = vnet_port_on_data,
    .on_fin = vnet_port_on_fin,
    .on_reset = vnet_port_on_reset,
};

static uint32_t vnet_host_number(const struct vnet_router *r, const struct vnet_src *src)
{
	return vnet_host_of(r, 4, src->addr4);
}

static void vnet_lease_msg_fill(const struct vnet_router *r, const struct vnet_src *src,
				bool default_route, uint32_t metric, struct vnet_lease_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->flags = default_route ? VNET_LEASE_DEFAULT_ROUTE : 0;
	m->prefix4 = r->cfg.net.prefix4;
	m->mtu = r->cfg.mtu;
	m->metric = metric;
	memcpy(m->addr4, src->addr4, 4);
	memcpy(m->gw4, r->gw4, 4);
	memcpy(m->dns4, r->gw4, 4);
	if (src->has6) {
		m->flags |= VNET_LEASE_IPV6;
		m->prefix6 = r->cfg.net.prefix6;
		memcpy(m->addr6, src->addr6, 16);
		memcpy(m->gw6, r->gw6, 16);
	}
}

void vnet_router_attach(struct vnet_router *r, struct rt_loop *rl, const char *vm,
			bool default_route, uint32_t metric, struct stream *st, const uint8_t *req,
			size_t len)
{
	uint8_t reply[VNET_LEASE_LEN];
	struct vnet_lease_msg m;
	struct vnet_port *port;
	struct vnet_slot *s;
	struct vnet_src src;
	struct vnet_req q;
	int ret;

	if (!(stream_flags(st) & FRAME_OPEN_DGRAM) || vnet_req_decode(req, len, &q)) {
		stream_refuse(st, -EINVAL, "malformed VNET request");
		return;
	}
	if (q.hdr_len != VNET_HDR_LEN) {
		stream_refuse(st, -EOPNOTSUPP,
			      "this host needs the offload header on every packet");
		return;
	}
	pthread_mutex_lock(&r->lock);
	ret = vnet_lease_for(&r->leases, vm, &src);
	pthread_mutex_unlock(&r->lock);
	if (!(q.flags & VNET_REQ_IPV6))
		src.has6 = false;
	if (ret || vnet_host_number(r, &src) >= r->nslots) {
		vb_warn("vnet: no lease for %s: %s", vm, ret ? strerror(-ret) : "subnet too large");
		stream_refuse(st, ret ? ret : -ENOSPC, "no address left in the subnet");
		return;
	}
	port = calloc(1, sizeof(*port));
	if (!port) {
		stream_refuse(st, -ENOMEM, "out of memory");
		return;
	}
	port->r = r;
	port->rl = rl;
	port->st = st;
	port->src = src;
	port->host = vnet_host_number(r, &src);
	vnet_lease_msg_fill(r, &src, default_route, metric, &m);
	if (q.mtu < m.mtu)
		m.mtu = q.mtu; /* the VM takes less: packets over it get "too big" */
	vnet_lease_encode(&m, reply);
	if (stream_accept(st, reply, sizeof(reply), &vnet_port_ops, port)) {
		stream_refuse(st, -ECANCELED, "cancelled");
		free(port);
		return;
	}
	s = &r->slots[port->host];
	pthread_mutex_lock(&r->lock);
	s->rl = rl;
	s->port = port; /* an older port of this VM (a session being replaced) stops receiving */
	s->active = true;
	s->mtu = m.mtu;
	port->gen = ++s->gen;
	snprintf(s->vm, sizeof(s->vm), "%s", vm);
	pthread_mutex_unlock(&r->lock);
	vb_info("vnet: %s attached as host %u of the subnet", vm, port->host);
}

/* ---- set-up ---- */

static int vnet_router_addrs(struct vnet_router *r, struct netcfg *nc, char *why, size_t whylen)
{
	struct netcfg_prefix p = {0}, hit_p;
	struct netcfg_route hit;
	int ret;

	p.addr.family = NET_IPV4;
	memcpy(p.addr.ip, r->cfg.net.net4, 4);
	p.len = r->cfg.net.prefix4;
	ret = netcfg_route_collides(nc, &p, r->tun.ifindex, &hit);
	if (ret == 1) {
		char t[NET_ADDR_STRLEN];

		hit_p = hit.dst;
		snprintf(why, whylen,
			 "the subnet overlaps the host's route to %s/%u; choose another",
			 net_addr_format(&hit_p.addr, false, t), hit_p.len);
		return -EADDRINUSE;
	}
	memcpy(p.addr.ip, r->gw4, 4);
	ret = netcfg_addr_add(nc, r->tun.ifindex, &p, 0);
	if (!ret && r->cfg.net.has6) {
		p.addr.family = NET_IPV6;
		memcpy(p.addr.ip, r->gw6, 16);
		p.len = r->cfg.net.prefix6;
		ret = netcfg_addr_add(nc, r->tun.ifindex, &p, NETCFG_ADDR_NODAD);
	}
	if (!ret)
		ret = netcfg_link_set_up(nc, r->tun.ifindex, true);
	if (ret)
		snprintf(why, whylen, "%s: %s", r->tun.name, netcfg_why(nc));
	return ret;
}

/*
 * Forwarding on the TUN and on the uplinks (IPv6 too where the kernel allows
 * it per interface), then the NAT table. Everything changed is undone by
 * vnet_router_free().
 */
static int vnet_router_nat(struct vnet_router *r, struct netcfg *nc, char *why, size_t whylen)
{
	struct nat_config nat = {.tun = r->tun.name};
	int up[16], n, ret;

	/* NAT-ed replies come back in through the uplinks: they forward too. */
	n = netcfg_egress_links(nc, 0, r->tun.ifindex, up, 16);
	for (int i = -1; i < n; i++) {
		struct netcfg_link l;
		const char *name = r->tun.name;

		if (i >= 0) {
			if (netcfg_link_get(nc, up[i], NULL, &l))
				continue;
			name = l.name;
		}
		ret = netcfg_fwd_enable(nc, &r->fwd, name, NETCFG_FWD_IPV4 | NETCFG_FWD_IPV6);
		if (ret == -EOPNOTSUPP)
			ret = netcfg_fwd_enable(nc, &r->fwd, name, NETCFG_FWD_IPV4);
		if (ret) {
			snprintf(why, whylen, "forwarding on %s: %s", name, netcfg_why(nc));
			return ret;
		}
	}
	if (!r->cfg.nat)
		return 0;
	nat.v4.addr.family = NET_IPV4;
	memcpy(nat.v4.addr.ip, r->cfg.net.net4, 4);
	nat.v4.len = r->cfg.net.prefix4;
	if (r->cfg.net.has6) {
		nat.v6.addr.family = NET_IPV6;
		memcpy(nat.v6.addr.ip, r->cfg.net.net6, 16);
		nat.v6.len = r->cfg.net.prefix6;
	}
	ret = nat_setup(&nat, why, whylen);
	r->nat_up = ret == 0;
	return ret;
}

static int vnet_router_dns(struct vnet_router *r, char *why, size_t whylen)
{
	struct net_addr gw[2] = {{.family = NET_IPV4}, {.family = NET_IPV6}};

	memcpy(gw[0].ip, r->gw4, 4);
	memcpy(gw[1].ip, r->gw6, 16);
	return vnet_dns_new(&r->dns, &r->rt->loops[0], gw, r->cfg.net.has6 ? 2 : 1, NULL, why,
			    whylen);
}

int vnet_router_new(struct vnet_router **out, struct runtime *rt, const struct vnet_router_cfg *cfg,
		    char *why, size_t whylen)
{
	struct vnet_router *r = calloc(1, sizeof(*r));
	struct netcfg *nc = NULL;
	int ret;

	if (!r)
		return -ENOMEM;
	r->rt = rt;
	r->cfg = *cfg;
	r->tun.fd = -1;
	pthread_mutex_init(&r->lock, NULL);
	r->nslots = vnet_net_hosts(&cfg->net) + 1;
	if (r->nslots > VNET_SLOTS_MAX)
		r->nslots = VNET_SLOTS_MAX;
	r->slots = calloc(r->nslots, sizeof(*r->slots));
	vnet_net_addr4(&cfg->net, 1, r->gw4);
	if (cfg->net.has6)
		vnet_net_addr6(&cfg->net, 1, r->gw6);
	ret =
	    r->slots ? vnet_leases_open(&r->leases, &cfg->net, cfg->leases, why, whylen) : -ENOMEM;
	if (!ret)
		ret = tun_open(&r->tun, cfg->tun, TUN_OFFLOAD_ALL, why, whylen);
	if (!ret && (ret = tun_set_mtu(&r->tun, cfg->mtu)))
		snprintf(why, whylen, "%s: MTU %u: %s", r->tun.name, cfg->mtu, strerror(-ret));
	if (!ret && (ret = netcfg_open(&nc)))
		snprintf(why, whylen, "rtnetlink: %s", strerror(-ret));
	if (!ret)
		ret = vnet_router_addrs(r, nc, why, whylen);
	if (!ret)
		ret = vnet_router_nat(r, nc, why, whylen);
	if (ret && !why[0])
		snprintf(why, whylen, "%s", nc ? netcfg_why(nc) : strerror(-ret));
	netcfg_close(nc);
	if (!ret && cfg->dns)
		ret = vnet_router_dns(r, why, whylen);
	if (ret) {
		vnet_router_free(r);
		return ret;
	}
	*out = r;
	return 0;
}

int vnet_router_start(struct vnet_router *r)
{
	if (r->dns)
		vnet_dns_start(r->dns);
	return loop_post(r->rt->loops[0].loop, vnet_tun_start, r);
}

void vnet_router_free(struct vnet_router *r)
{
	if (!r)
		return;
	vnet_dns_free(r->dns);
	if (r->nat_up) {
		char why[200];

		if (nat_teardown(why, sizeof(why)))
			vb_warn("vnet: removing the NAT table: %s", why);
	}
	netcfg_fwd_restore(&r->fwd);
	if (r->tun.fd >= 0)
		tun_close(&r->tun);
	/*
	 * The loops have stopped, so the TUN read still pending never completes to
	 * us: its chunk goes back to the first loop's pool (and the process ends).
	 */
	chunk_put(r->rc);
	vnet_leases_close(&r->leases);
	free(r->slots);
	free(r);
}

void vnet_router_status(struct vnet_router *r, bool json, struct strbuf *out)
{
	bool first = true;

	if (json)
		strbuf_printf(out, "{\"tun\":\"%s\",\"drops\":%llu,\"vms\":[", r->tun.name,
			      vnet_counter(&r->tun_drops));
	else
		strbuf_printf(out, "%-16s %-16s %12s %14s %12s %14s %8s\n", "VM", "ADDRESS",
			      "RX PACKETS", "RX BYTES", "TX PACKETS", "TX BYTES", "DROPS");
	pthread_mutex_lock(&r->lock);
	for (uint32_t h = 2; h < r->nslots; h++) {
		struct vnet_slot *s = &r->slots[h];
		struct net_addr a = {.family = NET_IPV4};
		char text[NET_ADDR_STRLEN];

		if (!s->vm[0])
			continue;
		vnet_net_addr4(&r->cfg.net, h, a.ip);
		net_addr_format(&a, false, text);
		if (json)
			strbuf_printf(out,
				      "%s{\"vm\":\"%s\",\"address\":\"%s\",\"attached\":%s,"
				      "\"rx_packets\":%llu,\"rx_bytes\":%llu,\"tx_packets\":%llu,"
				      "\"tx_bytes\":%llu,\"drops\":%llu}",
				      first ? "" : ",", s->vm, text, s->active ? "true" : "false",
				      vnet_counter(&s->rx_pkts), vnet_counter(&s->rx_bytes),
				      vnet_counter(&s->tx_pkts), vnet_counter(&s->tx_bytes),
				      vnet_counter(&s->drops));
		else
			strbuf_printf(out, "%-16s %-16s %12llu %14llu %12llu %14llu %8llu%s\n",
				      s->vm, text, vnet_counter(&s->rx_pkts),
				      vnet_counter(&s->rx_bytes), vnet_counter(&s->tx_pkts),
				      vnet_counter(&s->tx_bytes), vnet_counter(&s->drops),
				      s->active ? "" : "  (detached)");
		first = false;
	}
	pthread_mutex_unlock(&r->lock);
	if (json)
		strbuf_printf(out, "]}\n");
}
