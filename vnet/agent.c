/* The VM's end of vnet: attach, configure the TUN from the lease, move packets both ways. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vnet/agent.h"
#include "core/kinds.h"
#include "core/list.h"
#include "core/log.h"
#include "platform/netcfg.h"
#include "platform/tun.h"
#include "vnet/msg.h"

/*
 * Theory of operation
 *
 * ATTACHING  the VNET stream is open; the host answers with the lease, or
 *            refuses (no vnet there: nothing more happens).
 * UP         the TUN exists with the lease's addresses and routes. One read
 *            is always in flight on it, into the free end of a chunk; each
 *            packet read goes on the stream by reference (a datagram: it is
 *            dropped when the stream's queue is full, as a NIC drops). Each
 *            packet from the host is written to the TUN from its receive
 *            chunk, up to VNET_AGENT_WRITES at once; more are dropped.
 * DOWN       the stream ended: I/O is cancelled, and once nothing is in
 *            flight the TUN is closed, which removes the device and every
 *            address and route on it.
 *
 * The configuration calls (rtnetlink) block for a few round trips to the
 * kernel, once per attach.
 */

#define VNET_AGENT_WRITES 256

struct vnet_agent;

struct vnet_agent_wr {
	struct list node;
	struct vnet_agent *a;
	struct loop_req req;
	struct chunk *c;
};

struct vnet_agent {
	struct rt_loop *rl;
	struct stream *st;
	struct vnet_agent_cfg cfg;
	struct tun tun;
	bool tun_open, dead;
	int pending;
	/* TUN -> stream */
	struct loop_req rd;
	struct chunk *rc;
	size_t roff;
	bool reading;
	/* stream -> TUN */
	struct list writes;
	int nwrites;
	uint64_t drops;
};

static void vnet_agent_read(struct vnet_agent *a);

static void vnet_agent_free_maybe(struct vnet_agent *a)
{
	if (!a->dead || a->pending)
		return;
	if (a->rc)
		chunk_put(a->rc);
	if (a->tun_open) {
		vb_info("vnet: detached; %s removed", a->tun.name);
		tun_close(&a->tun);
	}
	free(a);
}

static void vnet_agent_end(struct vnet_agent *a)
{
	struct list *pos;

	if (a->dead)
		return;
	a->dead = true;
	if (a->st) {
		stream_release(a->st);
		a->st = NULL;
	}
	if (a->reading)
		loop_cancel(a->rl->loop, &a->rd);
	for (pos = a->writes.next; pos != &a->writes; pos = pos->next)
		loop_cancel(a->rl->loop, &list_entry(pos, struct vnet_agent_wr, node)->req);
	vnet_agent_free_maybe(a);
}

/* ---- configuration ---- */

static int vnet_agent_prefix(struct netcfg_prefix *p, int family, const uint8_t *ip, uint8_t len)
{
	memset(p, 0, sizeof(*p));
	p->addr.family = (uint8_t)family;
	memcpy(p->addr.ip, ip, family == NET_IPV4 ? 4 : 16);
	p->len = len;
	return 0;
}

/* The default route of one family through the gateway, when the host asked for it. */
static int vnet_agent_default(struct netcfg *nc, int ifindex, int family, const uint8_t *gw,
			      uint32_t metric)
{
	struct netcfg_route r = {.ifindex = ifindex, .metric = metric};

	r.dst.addr.family = (uint8_t)family;
	r.gw.family = (uint8_t)family;
	memcpy(r.gw.ip, gw, family == NET_IPV4 ? 4 : 16);
	return netcfg_route_add(nc, &r);
}

static int vnet_agent_configure(struct vnet_agent *a, const struct vnet_lease_msg *m, char *why,
				size_t whylen)
{
	struct netcfg_prefix p;
	struct netcfg *nc = NULL;
	int ret;

	ret = tun_open(&a->tun, a->cfg.tun, TUN_OFFLOAD_ALL, why, whylen);
	if (ret)
		return ret;
	a->tun_open = true;
	ret = tun_set_mtu(&a->tun, m->mtu);
	if (!ret)
		ret = netcfg_open(&nc);
	if (ret) {
		snprintf(why, whylen, "%s: MTU or rtnetlink: %s", a->tun.name, strerror(-ret));
		return ret;
	}
	vnet_agent_prefix(&p, NET_IPV4, m->addr4, m->prefix4);
	ret = netcfg_addr_add(nc, a->tun.ifindex, &p, 0);
	if (!ret && (m->flags & VNET_LEASE_IPV6)) {
		vnet_agent_prefix(&p, NET_IPV6, m->addr6, m->prefix6);
		ret = netcfg_addr_add(nc, a->tun.ifindex, &p, NETCFG_ADDR_NODAD);
	}
	if (!ret)
		ret = netcfg_link_set_up(nc, a->tun.ifindex, true);
	if (!ret && (m->flags & VNET_LEASE_DEFAULT_ROUTE)) {
		ret = vnet_agent_default(nc, a->tun.ifindex, NET_IPV4, m->gw4, m->metric);
		if (!ret && (m->flags & VNET_LEASE_IPV6))
			ret = vnet_agent_default(nc, a->tun.ifindex, NET_IPV6, m->gw6, m->metric);
	}
	if (ret)
		snprintf(why, whylen, "%s: %s", a->tun.name, netcfg_why(nc));
	netcfg_close(nc);
	return ret;
}

/* ---- TUN -> stream ---- */

static void vnet_agent_read_cb(struct loop_req *r, int res)
{
	struct vnet_agent *a = r->data;

	a->pending--;
	a->reading = false;
	if (a->dead) {
		vnet_agent_free_maybe(a);
		return;
	}
	if (res < 0 && res != -EAGAIN && res != -EINTR) {
		vb_warn("vnet: reading %s: %s", a->tun.name, strerror(-res));
		stream_reset(a->st, res);
		vnet_agent_end(a);
		return;
	}
	if (res > (int)TUN_HDR_LEN) {
		/* The packet leaves by reference; the chunk's free end takes the next one. */
		if (stream_write(a->st, a->rc, a->rc->data + a->roff, (size_t)res))
			a->drops++;
		a->roff += ((size_t)res + 7) & ~(size_t)7;
	}
	vnet_agent_read(a);
}

static void vnet_agent_read(struct vnet_agent *a)
{
	if (a->rc && a->rc->size - a->roff < TUN_FRAME_MAX) {
		chunk_put(a->rc);
		a->rc = NULL;
	}
	if (!a->rc) {
		a->rc = chunk_get(&a->rl->chunks);
		a->roff = 0;
		if (!a->rc || a->rc->size < TUN_FRAME_MAX) {
			vb_err("vnet: no buffer for %s", a->tun.name);
			stream_reset(a->st, -ENOMEM);
			vnet_agent_end(a);
			return;
		}
	}
	a->rd.data = a;
	if (loop_read(a->rl->loop, &a->rd, a->tun.fd, a->rc->data + a->roff, TUN_FRAME_MAX,
		      vnet_agent_read_cb)) {
		stream_reset(a->st, -EIO);
		vnet_agent_end(a);
		return;
	}
	a->reading = true;
	a->pending++;
}

/* ---- stream -> TUN ---- */

static void vnet_agent_wrote(struct loop_req *r, int res)
{
	struct vnet_agent_wr *w = r->data;
	struct vnet_agent *a = w->a;

	a->pending--;
	a->nwrites--;
	list_del(&w->node);
	chunk_put(w->c);
	free(w);
	if (res < 0 && res != -ECANCELED)
		a->drops++;
	vnet_agent_free_maybe(a);
}

static void vnet_agent_on_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct vnet_agent *a = stream_ctx(st);
	struct vnet_agent_wr *w;

	stream_consumed(st, len);
	if (!a->tun_open || a->nwrites >= VNET_AGENT_WRITES || len <= TUN_HDR_LEN ||
	    !(w = malloc(sizeof(*w)))) {
		a->drops++;
		return;
	}
	memset(&w->req, 0, sizeof(w->req));
	w->a = a;
	w->c = c;
	w->req.data = w;
	chunk_ref(c);
	if (loop_write(a->rl->loop, &w->req, a->tun.fd, p, len, vnet_agent_wrote)) {
		chunk_put(c);
		free(w);
		a->drops++;
		return;
	}
	list_add_tail(&a->writes, &w->node);
	a->nwrites++;
	a->pending++;
}

static void vnet_agent_on_reply(struct stream *st, int err, const uint8_t *r, size_t len)
{
	struct vnet_agent *a = stream_ctx(st);
	struct vnet_lease_msg m;
	char why[300], a4[NET_ADDR_STRLEN];
	struct net_addr na = {.family = NET_IPV4};
	int ret;

	if (err) {
		if (err == -EOPNOTSUPP)
			vb_dbg("vnet: the host serves no vnet");
		else
			vb_warn("vnet: the host refused to attach: %.*s", (int)len,
				(const char *)r);
		vnet_agent_end(a);
		return;
	}
	ret = vnet_lease_decode(r, len, &m);
	if (ret) {
		vb_warn("vnet: the host's lease is malformed");
		stream_reset(st, -EPROTO);
		vnet_agent_end(a);
		return;
	}
	ret = vnet_agent_configure(a, &m, why, sizeof(why));
	if (ret) {
		vb_warn("vnet: %s", why);
		stream_reset(st, ret);
		vnet_agent_end(a);
		return;
	}
	memcpy(na.ip, m.addr4, 4);
	vb_info("vnet: %s up with %s/%u, MTU %u%s", a->tun.name, net_addr_format(&na, false, a4),
		m.prefix4, m.mtu, (m.flags & VNET_LEASE_DEFAULT_ROUTE) ? ", default route" : "");
	vnet_agent_read(a);
}

static void vnet_agent_on_gone(struct stream *st, int err)
{
	vnet_agent_end(stream_ctx(st));
}

static void vnet_agent_on_fin(struct stream *st)
{
	vnet_agent_end(stream_ctx(st));
}

static const struct stream_ops vnet_agent_ops = {
    .on_reply = vnet_agent_on_reply,
    .on_data = vnet_agent_on_data,
    .on_fin = vnet_agent_on_fin,
    .on_reset = vnet_agent_on_gone,
};

int vnet_agent_attach(struct rt_loop *rl, struct session *s, const struct vnet_agent_cfg *cfg)
{
	struct vnet_req q = {VNET_VERSION, VNET_REQ_IPV6, VNET_HDR_LEN, cfg->mtu};
	struct vnet_agent *a = calloc(1, sizeof(*a));
	uint8_t req[VNET_REQ_LEN];
	int ret;

	if (!a)
		return -ENOMEM;
	a->rl = rl;
	a->cfg = *cfg;
	a->tun.fd = -1;
	list_init(&a->writes);
	vnet_req_encode(&q, req);
	ret = stream_open(s, KIND_VNET, FRAME_OPEN_DGRAM, req, sizeof(req), &vnet_agent_ops, a,
			  &a->st);
	if (ret)
		free(a);
	return ret;
}
