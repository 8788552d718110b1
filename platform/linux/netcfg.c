/* Network configuration on Linux over rtnetlink (libmnl) and /proc/sys/net: see platform/netcfg.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <libmnl/libmnl.h>
#include <linux/if_addr.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include "platform/netcfg.h"
#include "platform/netcfg_internal.h"

/* Room for one message of a dump, as the kernel sends them (at most 32 KiB). */
#define NETCFG_BUF_LEN 32768
/* The kernel answers at once; a silent one is a bug, not a reason to hang a start. */
#define NETCFG_TIMEOUT_S 5

struct netcfg {
	struct mnl_socket *nl;
	uint32_t portid;
	uint32_t seq;
	char why[256];
	char buf[NETCFG_BUF_LEN];
};

/* One request on its way: its sequence number and what its data messages go to. */
struct netcfg_call {
	struct netcfg *nc;
	uint32_t seq;
	mnl_cb_t cb;
	void *arg;
	bool interrupted; /* the dump saw the tables change (NLM_F_DUMP_INTR) */
};

static int netcfg_family_af(int family)
{
	return family == NET_IPV4 ? AF_INET : family == NET_IPV6 ? AF_INET6 : AF_UNSPEC;
}

int netcfg_fail(struct netcfg *nc, int err, const char *what)
{
	snprintf(nc->why, sizeof(nc->why), "%s%s%s", what ? what : "", what ? ": " : "",
		 strerror(-err));
	return err;
}

void netcfg_why_clear(struct netcfg *nc)
{
	nc->why[0] = '\0';
}

/* --- the socket and the request/answer exchange --- */

int netcfg_open(struct netcfg **out)
{
	struct timeval tv = {.tv_sec = NETCFG_TIMEOUT_S};
	struct netcfg *nc;
	int one = 1, ret;

	nc = calloc(1, sizeof(*nc));
	if (!nc)
		return -ENOMEM;
	nc->nl = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
	if (!nc->nl) {
		ret = -errno;
		free(nc);
		return ret;
	}
	if (mnl_socket_bind(nc->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		netcfg_close(nc);
		return ret;
	}
	/* Reasons with errors, and errors without a copy of our request; both optional. */
	mnl_socket_setsockopt(nc->nl, NETLINK_EXT_ACK, &one, sizeof(one));
	mnl_socket_setsockopt(nc->nl, NETLINK_CAP_ACK, &one, sizeof(one));
	setsockopt(mnl_socket_get_fd(nc->nl), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	nc->portid = mnl_socket_get_portid(nc->nl);
	nc->seq = (uint32_t)time(NULL);
	*out = nc;
	return 0;
}

void netcfg_close(struct netcfg *nc)
{
	if (!nc)
		return;
	mnl_socket_close(nc->nl);
	free(nc);
}

const char *netcfg_why(const struct netcfg *nc)
{
	return nc->why;
}

static int netcfg_ext_ack_attr(const struct nlattr *a, void *data)
{
	struct netcfg *nc = data;

	if (mnl_attr_get_type(a) == NLMSGERR_ATTR_MSG &&
	    mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
		snprintf(nc->why, sizeof(nc->why), "%s", mnl_attr_get_str(a));
	return MNL_CB_OK;
}

/* The kernel's reason for an error, from the attributes after struct nlmsgerr. */
static void netcfg_ext_ack(struct netcfg *nc, const struct nlmsghdr *nlh, const struct nlmsgerr *e)
{
	size_t off = sizeof(*e);

	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return;
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
		if (e->msg.nlmsg_len < sizeof(struct nlmsghdr))
			return;
		off += e->msg.nlmsg_len - sizeof(struct nlmsghdr);
	}
	if (off >= mnl_nlmsg_get_payload_len(nlh))
		return;
	mnl_attr_parse(nlh, (unsigned)off, netcfg_ext_ack_attr, nc);
}

/* NLMSG_ERROR: 0 for an acknowledgement, else the error, with the kernel's reason kept. */
static int netcfg_on_error(struct netcfg *nc, const struct nlmsghdr *nlh)
{
	const struct nlmsgerr *e = mnl_nlmsg_get_payload(nlh);
	int err;

	if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(int)))
		return netcfg_fail(nc, -EBADMSG, "rtnetlink answer");
	if (e->error == 0)
		return 0;
	err = e->error < 0 ? e->error : -EPROTO;
	if (nlh->nlmsg_len >= mnl_nlmsg_size(sizeof(*e)))
		netcfg_ext_ack(nc, nlh, e);
	return nc->why[0] ? err : netcfg_fail(nc, err, NULL);
}

/* NLMSG_DONE ends a dump; a dump that failed part way says so in its payload. */
static int netcfg_on_done(struct netcfg_call *c, const struct nlmsghdr *nlh)
{
	int err = 0;

	if (mnl_nlmsg_get_payload_len(nlh) >= sizeof(int))
		memcpy(&err, mnl_nlmsg_get_payload(nlh), sizeof(err));
	if (err < 0)
		return netcfg_fail(c->nc, err, "dump");
	if (c->interrupted)
		return netcfg_fail(c->nc, -EINTR, "dump interrupted by a change");
	return 0;
}

/*
 * Goes through one datagram of answers. Messages of other requests (late
 * answers to one that timed out) are passed over, so they never confuse
 * this one. Return: 1 while the request goes on, 0 when it ended well, or
 * its negative errno.
 */
static int netcfg_answers(struct netcfg_call *c, const void *buf, size_t len)
{
	const struct nlmsghdr *nlh = buf;
	int left = (int)len;

	for (; mnl_nlmsg_ok(nlh, left); nlh = mnl_nlmsg_next(nlh, &left)) {
		if (nlh->nlmsg_seq != c->seq || (nlh->nlmsg_pid && nlh->nlmsg_pid != c->nc->portid))
			continue;
		if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
			c->interrupted = true;
		switch (nlh->nlmsg_type) {
		case NLMSG_NOOP:
			break;
		case NLMSG_ERROR:
			return netcfg_on_error(c->nc, nlh);
		case NLMSG_DONE:
			return netcfg_on_done(c, nlh);
		case NLMSG_OVERRUN:
			return netcfg_fail(c->nc, -ENOBUFS, "rtnetlink overrun");
		default:
			if (nlh->nlmsg_type >= NLMSG_MIN_TYPE && c->cb)
				c->cb(nlh, c->arg);
		}
	}
	return 1;
}

static bool netcfg_is_dump(const struct nlmsghdr *nlh)
{
	bool get = nlh->nlmsg_type == RTM_GETLINK || nlh->nlmsg_type == RTM_GETADDR ||
		   nlh->nlmsg_type == RTM_GETROUTE;

	return get && (nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
}

/*
 * netcfg_talk() - sends the request built in nc->buf and waits for its end
 * @cb: called with each data message (a dump's entries, a GET's answer); may be NULL
 *
 * A dump ends with NLMSG_DONE; any other request asks for an
 * acknowledgement, which ends it. nc->buf is reused for the answers.
 */
static int netcfg_talk(struct netcfg *nc, struct nlmsghdr *nlh, mnl_cb_t cb, void *arg)
{
	struct netcfg_call c = {.nc = nc, .seq = ++nc->seq, .cb = cb, .arg = arg};
	ssize_t n;
	int ret;

	nc->why[0] = '\0';
	nlh->nlmsg_seq = c.seq;
	/* NLM_F_DUMP shares its bits with NLM_F_REPLACE and NLM_F_EXCL: only a GET dumps. */
	nlh->nlmsg_flags |= NLM_F_REQUEST;
	if (!netcfg_is_dump(nlh))
		nlh->nlmsg_flags |= NLM_F_ACK;
	if (mnl_socket_sendto(nc->nl, nlh, nlh->nlmsg_len) < 0)
		return netcfg_fail(nc, -errno, "rtnetlink send");
	do {
		n = mnl_socket_recvfrom(nc->nl, nc->buf, sizeof(nc->buf));
		if (n < 0)
			return netcfg_fail(nc, errno == EAGAIN ? -ETIMEDOUT : -errno,
					   "rtnetlink receive");
		ret = netcfg_answers(&c, nc->buf, (size_t)n);
	} while (ret > 0);
	return ret;
}

/* A new message in nc->buf. */
static struct nlmsghdr *netcfg_msg(struct netcfg *nc, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(nc->buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	return nlh;
}

/* --- links --- */

static int netcfg_link_attr(const struct nlattr *a, void *data)
{
	struct netcfg_link *l = data;

	if (mnl_attr_get_type(a) == IFLA_IFNAME && mnl_attr_validate(a, MNL_TYPE_NUL_STRING) == 0)
		snprintf(l->name, sizeof(l->name), "%s", mnl_attr_get_str(a));
	else if (mnl_attr_get_type(a) == IFLA_MTU && mnl_attr_validate(a, MNL_TYPE_U32) == 0)
		l->mtu = mnl_attr_get_u32(a);
	return MNL_CB_OK;
}

static int netcfg_link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct netcfg_link *l = data;
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_type != RTM_NEWLINK || mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifi))
		return MNL_CB_OK;
	l->ifindex = ifi->ifi_index;
	l->up = ifi->ifi_flags & IFF_UP;
	l->running = ifi->ifi_flags & IFF_RUNNING;
	l->loopback = ifi->ifi_flags & IFF_LOOPBACK;
	mnl_attr_parse(nlh, sizeof(*ifi), netcfg_link_attr, l);
	return MNL_CB_OK;
}

int netcfg_link_get(struct netcfg *nc, int ifindex, const char *name, struct netcfg_link *out)
{
	struct nlmsghdr *nlh = netcfg_msg(nc, RTM_GETLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	int ret;

	nc->why[0] = '\0';
	memset(out, 0, sizeof(*out));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	if (!ifindex) {
		if (!name || !*name || strlen(name) >= IFNAMSIZ)
			return netcfg_fail(nc, -EINVAL, "link name");
		mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	}
	ret = netcfg_talk(nc, nlh, netcfg_link_cb, out);
	if (ret == 0 && out->ifindex == 0)
		ret = netcfg_fail(nc, -ENODEV, "link");
	return ret;
}

/* RTM_NEWLINK on an existing link: flags (under change) and attributes. */
static struct nlmsghdr *netcfg_link_msg(struct netcfg *nc, int ifindex, unsigned flags,
					unsigned change)
{
	struct nlmsghdr *nlh = netcfg_msg(nc, RTM_NEWLINK, 0);
	struct ifinfomsg *ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));

	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = ifindex;
	ifi->ifi_flags = flags;
	ifi->ifi_change = change;
	return nlh;
}

int netcfg_link_set_up(struct netcfg *nc, int ifindex, bool up)
{
	return netcfg_talk(nc, netcfg_link_msg(nc, ifindex, up ? IFF_UP : 0, IFF_UP), NULL, NULL);
}

int netcfg_link_set_mtu(struct netcfg *nc, int ifindex, unsigned mtu)
{
	struct nlmsghdr *nlh = netcfg_link_msg(nc, ifindex, 0, 0);

	mnl_attr_put_u32(nlh, IFLA_MTU, mtu);
	return netcfg_talk(nc, nlh, NULL, NULL);
}

/* --- addresses --- */

static int netcfg_addr_msg(struct netcfg *nc, uint16_t type, uint16_t flags, int ifindex,
			   const struct netcfg_prefix *a, struct nlmsghdr **out)
{
	struct nlmsghdr *nlh;
	struct ifaddrmsg *ifa;

	if (!netcfg_family_ok(&a->addr) || a->len > netcfg_addr_len(a->addr.family) * 8)
		return netcfg_fail(nc, -EINVAL, "address");
	nlh = netcfg_msg(nc, type, flags);
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)netcfg_family_af(a->addr.family);
	ifa->ifa_prefixlen = a->len;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = (uint32_t)ifindex;
	/* As ip(8) does without a peer: local and "address" are the same. */
	mnl_attr_put(nlh, IFA_LOCAL, netcfg_addr_len(a->addr.family), a->addr.ip);
	mnl_attr_put(nlh, IFA_ADDRESS, netcfg_addr_len(a->addr.family), a->addr.ip);
	*out = nlh;
	return 0;
}

int netcfg_addr_add(struct netcfg *nc, int ifindex, const struct netcfg_prefix *a, unsigned flags)
{
	const unsigned allowed = NETCFG_ADDR_NODAD | NETCFG_ADDR_NOPREFIXROUTE;
	struct nlmsghdr *nlh;
	int ret;

	nc->why[0] = '\0';
	if (flags & ~allowed)
		return netcfg_fail(nc, -EINVAL, "address flags");
	ret = netcfg_addr_msg(nc, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, ifindex, a, &nlh);
	if (ret < 0)
		return ret;
	((struct ifaddrmsg *)mnl_nlmsg_get_payload(nlh))->ifa_flags = (uint8_t)(flags & 0xff);
	mnl_attr_put_u32(nlh, IFA_FLAGS, flags);
	return netcfg_talk(nc, nlh, NULL, NULL);
}

int netcfg_addr_del(struct netcfg *nc, int ifindex, const struct netcfg_prefix *a)
{
	struct nlmsghdr *nlh;
	int ret;

	nc->why[0] = '\0';
	ret = netcfg_addr_msg(nc, RTM_DELADDR, 0, ifindex, a, &nlh);
	if (ret < 0)
		return ret;
	return netcfg_talk(nc, nlh, NULL, NULL);
}

struct netcfg_addr_walk {
	netcfg_addr_fn fn;
	void *arg;
	struct netcfg_addr a;
	bool has_local;
};

static int netcfg_addr_attr(const struct nlattr *at, void *data)
{
	struct netcfg_addr_walk *w = data;
	size_t alen = netcfg_addr_len(w->a.addr.addr.family);
	uint16_t type = mnl_attr_get_type(at);

	if ((type == IFA_LOCAL || (type == IFA_ADDRESS && !w->has_local)) &&
	    mnl_attr_get_payload_len(at) == alen) {
		memcpy(w->a.addr.addr.ip, mnl_attr_get_payload(at), alen);
		w->has_local |= type == IFA_LOCAL;
	} else if (type == IFA_FLAGS && mnl_attr_validate(at, MNL_TYPE_U32) == 0) {
		w->a.flags = mnl_attr_get_u32(at);
	}
	return MNL_CB_OK;
}

static int netcfg_addr_cb(const struct nlmsghdr *nlh, void *data)
{
	struct netcfg_addr_walk *w = data;
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_type != RTM_NEWADDR || mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifa))
		return MNL_CB_OK;
	if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)
		return MNL_CB_OK;
	memset(&w->a, 0, sizeof(w->a));
	w->has_local = false;
	w->a.ifindex = (int)ifa->ifa_index;
	w->a.addr.addr.family = ifa->ifa_family == AF_INET ? NET_IPV4 : NET_IPV6;
	w->a.addr.len = ifa->ifa_prefixlen;
	w->a.flags = ifa->ifa_flags;
	mnl_attr_parse(nlh, sizeof(*ifa), netcfg_addr_attr, w);
	w->fn(w->arg, &w->a);
	return MNL_CB_OK;
}

int netcfg_addr_dump(struct netcfg *nc, int family, netcfg_addr_fn fn, void *arg)
{
	struct netcfg_addr_walk w = {.fn = fn, .arg = arg};
	struct nlmsghdr *nlh = netcfg_msg(nc, RTM_GETADDR, NLM_F_DUMP);
	struct ifaddrmsg *ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));

	ifa->ifa_family = (uint8_t)netcfg_family_af(family);
	return netcfg_talk(nc, nlh, netcfg_addr_cb, &w);
}

/* --- routes --- */

static int netcfg_route_msg(struct netcfg *nc, uint16_t type, uint16_t flags,
			    const struct netcfg_route *r, struct nlmsghdr **out)
{
	struct netcfg_prefix dst = r->dst;
	uint32_t table = r->table ? r->table : NETCFG_TABLE_MAIN;
	struct nlmsghdr *nlh;
	struct rtmsg *rtm;
	size_t alen;

	if (!netcfg_family_ok(&dst.addr) || dst.len > netcfg_addr_len(dst.addr.family) * 8 ||
	    (r->gw.family && r->gw.family != dst.addr.family) || (!r->ifindex && !r->gw.family))
		return netcfg_fail(nc, -EINVAL, "route");
	alen = netcfg_addr_len(dst.addr.family);
	netcfg_prefix_mask(&dst);
	nlh = netcfg_msg(nc, type, flags);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)netcfg_family_af(dst.addr.family);
	rtm->rtm_dst_len = dst.len;
	rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
	if (type == RTM_NEWROUTE) {
		rtm->rtm_protocol = RTPROT_STATIC;
		rtm->rtm_scope = r->gw.family ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
		rtm->rtm_type = RTN_UNICAST;
	} else {
		rtm->rtm_scope = RT_SCOPE_NOWHERE; /* any scope, protocol and type */
	}
	mnl_attr_put_u32(nlh, RTA_TABLE, table);
	if (dst.len)
		mnl_attr_put(nlh, RTA_DST, alen, dst.addr.ip);
	if (r->ifindex)
		mnl_attr_put_u32(nlh, RTA_OIF, (uint32_t)r->ifindex);
	if (r->gw.family)
		mnl_attr_put(nlh, RTA_GATEWAY, alen, r->gw.ip);
	if (r->metric)
		mnl_attr_put_u32(nlh, RTA_PRIORITY, r->metric);
	*out = nlh;
	return 0;
}

int netcfg_route_add(struct netcfg *nc, const struct netcfg_route *r)
{
	struct nlmsghdr *nlh;
	int ret;

	nc->why[0] = '\0';
	ret = netcfg_route_msg(nc, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, r, &nlh);
	return ret < 0 ? ret : netcfg_talk(nc, nlh, NULL, NULL);
}

int netcfg_route_del(struct netcfg *nc, const struct netcfg_route *r)
{
	struct nlmsghdr *nlh;
	int ret;

	nc->why[0] = '\0';
	ret = netcfg_route_msg(nc, RTM_DELROUTE, 0, r, &nlh);
	return ret < 0 ? ret : netcfg_talk(nc, nlh, NULL, NULL);
}

struct netcfg_route_walk {
	netcfg_route_fn fn;
	void *arg;
	struct netcfg_route r;
};

static int netcfg_route_attr(const struct nlattr *a, void *data)
{
	struct netcfg_route *r = data;
	size_t alen = netcfg_addr_len(r->dst.addr.family);

	switch (mnl_attr_get_type(a)) {
	case RTA_DST:
		if (mnl_attr_get_payload_len(a) == alen)
			memcpy(r->dst.addr.ip, mnl_attr_get_payload(a), alen);
		break;
	case RTA_GATEWAY:
		if (mnl_attr_get_payload_len(a) == alen) {
			r->gw.family = r->dst.addr.family;
			memcpy(r->gw.ip, mnl_attr_get_payload(a), alen);
		}
		break;
	case RTA_OIF:
		if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			r->ifindex = (int)mnl_attr_get_u32(a);
		break;
	case RTA_PRIORITY:
		if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			r->metric = mnl_attr_get_u32(a);
		break;
	case RTA_TABLE:
		if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
			r->table = mnl_attr_get_u32(a);
		break;
	}
	return MNL_CB_OK;
}

static int netcfg_route_cb(const struct nlmsghdr *nlh, void *data)
{
	struct netcfg_route_walk *w = data;
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_type != RTM_NEWROUTE || mnl_nlmsg_get_payload_len(nlh) < sizeof(*rtm))
		return MNL_CB_OK;
	if ((rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6) ||
	    (rtm->rtm_flags & RTM_F_CLONED))
		return MNL_CB_OK;
	memset(&w->r, 0, sizeof(w->r));
	w->r.dst.addr.family = rtm->rtm_family == AF_INET ? NET_IPV4 : NET_IPV6;
	w->r.dst.len = rtm->rtm_dst_len;
	w->r.table = rtm->rtm_table;
	w->r.type = rtm->rtm_type;
	w->r.protocol = rtm->rtm_protocol;
	w->r.scope = rtm->rtm_scope;
	mnl_attr_parse(nlh, sizeof(*rtm), netcfg_route_attr, &w->r);
	w->fn(w->arg, &w->r);
	return MNL_CB_OK;
}

int netcfg_route_dump(struct netcfg *nc, int family, netcfg_route_fn fn, void *arg)
{
	struct netcfg_route_walk w = {.fn = fn, .arg = arg};
	struct nlmsghdr *nlh = netcfg_msg(nc, RTM_GETROUTE, NLM_F_DUMP);
	struct rtmsg *rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));

	rtm->rtm_family = (uint8_t)netcfg_family_af(family);
	return netcfg_talk(nc, nlh, netcfg_route_cb, &w);
}

/* --- forwarding --- */

/* A name the kernel could have given an interface, safe to put in a path. */
static bool netcfg_ifname_ok(const char *ifname)
{
	size_t n = ifname ? strlen(ifname) : 0;

	return n > 0 && n < IFNAMSIZ && !strchr(ifname, '/') && strcmp(ifname, ".") != 0 &&
	       strcmp(ifname, "..") != 0;
}

/* Reads a small sysctl value without its newline. */
static int netcfg_sysctl_read(const char *path, char *buf, size_t len)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0) {
		n = -errno;
		close(fd);
		return (int)n;
	}
	close(fd);
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

static int netcfg_sysctl_write(const char *path, const char *value)
{
	size_t len = strlen(value);
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, value, len) != (ssize_t)len)
		ret = errno ? -errno : -EIO;
	close(fd);
	return ret;
}

/* Sets one switch to 1, remembering its old value in f unless it was 1 already. */
static int netcfg_fwd_set(struct netcfg *nc, struct netcfg_fwd *f, const char *path)
{
	struct netcfg_fwd_saved *s;
	char old[sizeof(s->old)];
	int ret;

	ret = netcfg_sysctl_read(path, old, sizeof(old));
	if (ret < 0)
		return netcfg_fail(nc, ret, path);
	if (strcmp(old, "1") == 0)
		return 0;
	if (f->n >= NETCFG_FWD_MAX)
		return netcfg_fail(nc, -ENOSPC, "too many forwarding switches to remember");
	ret = netcfg_sysctl_write(path, "1");
	if (ret < 0)
		return netcfg_fail(nc, ret, path);
	s = &f->saved[f->n++];
	snprintf(s->path, sizeof(s->path), "%s", path);
	memcpy(s->old, old, sizeof(s->old));
	return 0;
}

static int netcfg_fwd_ipv6(struct netcfg *nc, struct netcfg_fwd *f, const char *ifname,
			   unsigned flags)
{
	char path[sizeof(f->saved[0].path)];

	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/force_forwarding", ifname);
	if (access(path, F_OK) == 0)
		return netcfg_fwd_set(nc, f, path);
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s", ifname);
	if (access(path, F_OK) != 0)
		return netcfg_fail(nc, -ENODEV, path);
	if (!(flags & NETCFG_FWD_IPV6_GLOBAL)) {
		snprintf(nc->why, sizeof(nc->why),
			 "IPv6 forwarding on %s alone needs Linux 6.17 (force_forwarding); "
			 "before, only net.ipv6.conf.all.forwarding, which is not allowed here",
			 ifname);
		return -EOPNOTSUPP;
	}
	return netcfg_fwd_set(nc, f, "/proc/sys/net/ipv6/conf/all/forwarding");
}

int netcfg_fwd_enable(struct netcfg *nc, struct netcfg_fwd *f, const char *ifname, unsigned flags)
{
	char path[sizeof(f->saved[0].path)];
	int ret;

	nc->why[0] = '\0';
	if (!netcfg_ifname_ok(ifname))
		return netcfg_fail(nc, -EINVAL, "interface name");
	if (flags & NETCFG_FWD_IPV4) {
		snprintf(path, sizeof(path), "/proc/sys/net/ipv4/conf/%s/forwarding", ifname);
		ret = netcfg_fwd_set(nc, f, path);
		if (ret < 0)
			return ret;
	}
	if (flags & NETCFG_FWD_IPV6)
		return netcfg_fwd_ipv6(nc, f, ifname, flags);
	return 0;
}

int netcfg_fwd_restore(struct netcfg_fwd *f)
{
	char now[sizeof(f->saved[0].old)];
	int ret = 0, r;

	while (f->n > 0) {
		struct netcfg_fwd_saved *s = &f->saved[--f->n];

		if (netcfg_sysctl_read(s->path, now, sizeof(now)) < 0 || strcmp(now, "1") != 0)
			continue; /* gone with its interface, or changed by someone else since */
		r = netcfg_sysctl_write(s->path, s->old);
		if (r < 0 && ret == 0)
			ret = r;
	}
	return ret;
}
