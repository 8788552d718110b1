/* The OS-free half of platform/netcfg.h: prefixes, and the route checks built on
 * netcfg_route_dump() and netcfg_link_get(), shared by platform/linux and platform/win. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "platform/netcfg.h"
#include "platform/netcfg_internal.h"

/* --- prefixes --- */

int netcfg_prefix_parse(const char *s, struct netcfg_prefix *p)
{
	char buf[NET_ADDR_STRLEN + 8];
	const char *slash = strrchr(s, '/');
	char *end;
	unsigned long len;
	size_t n;

	memset(p, 0, sizeof(*p));
	if (!slash || slash[1] < '0' || slash[1] > '9')
		return -EINVAL;
	n = (size_t)(slash - s);
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	len = strtoul(slash + 1, &end, 10);
	if (*end || net_addr_parse_ip(buf, &p->addr) < 0)
		return -EINVAL;
	if (len > netcfg_addr_len(p->addr.family) * 8)
		return -EINVAL;
	p->len = (uint8_t)len;
	return 0;
}

void netcfg_prefix_mask(struct netcfg_prefix *p)
{
	size_t bytes = netcfg_addr_len(p->addr.family);

	for (size_t i = 0; i < bytes; i++) {
		unsigned keep = p->len >= (i + 1) * 8 ? 8 : p->len > i * 8 ? p->len - i * 8 : 0;

		p->addr.ip[i] &= (uint8_t)(0xff00u >> keep);
	}
	memset(p->addr.ip + bytes, 0, sizeof(p->addr.ip) - bytes);
	p->addr.port = 0;
}

bool netcfg_prefix_overlap(const struct netcfg_prefix *a, const struct netcfg_prefix *b)
{
	struct netcfg_prefix x = *a, y = *b;

	if (a->addr.family != b->addr.family)
		return false;
	x.len = y.len = a->len < b->len ? a->len : b->len;
	netcfg_prefix_mask(&x);
	netcfg_prefix_mask(&y);
	return memcmp(x.addr.ip, y.addr.ip, sizeof(x.addr.ip)) == 0;
}

struct netcfg_collision {
	const struct netcfg_prefix *p;
	int own_ifindex;
	bool found;
	struct netcfg_route hit;
};

static void netcfg_collision_cb(void *arg, const struct netcfg_route *r)
{
	struct netcfg_collision *c = arg;

	if (c->found || r->table != NETCFG_TABLE_MAIN || r->dst.len == 0)
		return;
	if (c->own_ifindex && r->ifindex == c->own_ifindex)
		return;
	if (!netcfg_prefix_overlap(&r->dst, c->p))
		return;
	c->found = true;
	c->hit = *r;
}

int netcfg_route_collides(struct netcfg *nc, const struct netcfg_prefix *p, int own_ifindex,
			  struct netcfg_route *hit)
{
	struct netcfg_collision c = {.p = p, .own_ifindex = own_ifindex};
	int ret, tries = 3;

	netcfg_why_clear(nc);
	if (!netcfg_family_ok(&p->addr))
		return netcfg_fail(nc, -EINVAL, "prefix");
	do {
		c.found = false;
		ret = netcfg_route_dump(nc, p->addr.family, netcfg_collision_cb, &c);
	} while (ret == -EINTR && --tries > 0);
	if (ret < 0)
		return ret;
	if (c.found && hit)
		*hit = c.hit;
	return c.found;
}

struct netcfg_egress {
	int except;
	int *out;
	int max, n;
};

static void netcfg_egress_cb(void *arg, const struct netcfg_route *r)
{
	struct netcfg_egress *e = arg;

	static const struct netcfg_prefix link_local = {
	    .addr = {.family = NET_IPV6, .ip = {0xfe, 0x80}}, .len = 10};

	if (r->table != NETCFG_TABLE_MAIN || r->type != NETCFG_RTN_UNICAST || r->ifindex <= 0 ||
	    r->ifindex == e->except || e->n >= e->max)
		return;
	/* Every IPv6 link routes fe80::/64; nothing NAT-ed goes there. */
	if (r->dst.len >= 10 && netcfg_prefix_overlap(&r->dst, &link_local))
		return;
	for (int i = 0; i < e->n; i++) {
		if (e->out[i] == r->ifindex)
			return;
	}
	e->out[e->n++] = r->ifindex;
}

int netcfg_egress_links(struct netcfg *nc, int family, int except_ifindex, int *out, int max)
{
	struct netcfg_egress e = {.except = except_ifindex, .out = out, .max = max};
	struct netcfg_link l;
	int ret, n = 0;

	netcfg_why_clear(nc);
	ret = netcfg_route_dump(nc, family, netcfg_egress_cb, &e);
	if (ret < 0)
		return ret;
	/* Loopback carries main-table routes only when someone put them there. */
	for (int i = 0; i < e.n; i++) {
		if (netcfg_link_get(nc, out[i], NULL, &l) == 0 && l.loopback)
			continue;
		out[n++] = out[i];
	}
	netcfg_why_clear(nc);
	return n;
}
