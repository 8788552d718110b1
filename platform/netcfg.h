/* Network configuration for vnet: links, addresses, routes and the forwarding switches. */
#ifndef VB_PLATFORM_NETCFG_H
#define VB_PLATFORM_NETCFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "platform/net.h"

/*
 * On Linux every request goes over rtnetlink and waits for the kernel's
 * answer (synchronous request and acknowledgement; nothing here may run on
 * a loop thread that serves traffic). Every function returns 0 or a
 * negative errno; after a failure netcfg_why() has a one-line reason: the
 * kernel's own (its extended acknowledgement, "Nexthop has invalid
 * gateway") when it gave one, else the errno's text.
 *
 * A handle works in the network namespace its creating thread was in when
 * netcfg_open() ran; the forwarding switches (files under /proc/sys/net)
 * are those of the calling thread's namespace. Keep the two the same.
 *
 * On Windows (platform/win/netcfg.c) every call is one IP Helper call,
 * synchronous too; how links, routes and forwarding map there is said in
 * its theory of operation. The prefix helpers and the route checks built
 * on the dumps (netcfg_route_collides, netcfg_egress_links) are shared:
 * platform/netcfg_common.c.
 */

/* An address with a prefix length: "10.77.0.1/24", "fd00:77::1/64". */
struct netcfg_prefix {
	struct net_addr addr; /* family and address (the port is unused) */
	uint8_t len;	      /* 0 to 32 for IPv4, 0 to 128 for IPv6 */
};

/* Parses "ADDRESS/LEN" (LEN required); returns 0 or -EINVAL. */
int netcfg_prefix_parse(const char *s, struct netcfg_prefix *p);
/* Clears the host bits: 10.77.0.1/24 becomes 10.77.0.0/24. */
void netcfg_prefix_mask(struct netcfg_prefix *p);
/* True when a and b share an address (same family, one contains the other's network). */
bool netcfg_prefix_overlap(const struct netcfg_prefix *a, const struct netcfg_prefix *b);

struct netcfg;

/* Opens an rtnetlink socket in the calling thread's network namespace. */
int netcfg_open(struct netcfg **out);
void netcfg_close(struct netcfg *nc);
/* The reason for the last failure of a call on nc ("" when it succeeded). */
const char *netcfg_why(const struct netcfg *nc);

/* Links. */
struct netcfg_link {
	int ifindex;
	char name[16];
	unsigned mtu;
	bool up;      /* administratively up (IFF_UP) */
	bool running; /* and operational (IFF_RUNNING) */
	bool loopback;
};

/* netcfg_link_get() - a link by index, or by name when ifindex is 0; -ENODEV when absent. */
int netcfg_link_get(struct netcfg *nc, int ifindex, const char *name, struct netcfg_link *out);
int netcfg_link_set_up(struct netcfg *nc, int ifindex, bool up);
int netcfg_link_set_mtu(struct netcfg *nc, int ifindex, unsigned mtu);

/* Addresses. The values are Linux's IFA_F_*. */
enum netcfg_addr_flags {
	NETCFG_ADDR_NODAD = 0x02,	   /* IPv6: usable at once, no duplicate detection */
	NETCFG_ADDR_TENTATIVE = 0x40,	   /* (dumps) IPv6 duplicate detection still running */
	NETCFG_ADDR_NOPREFIXROUTE = 0x200, /* no route to the prefix comes with the address */
};

struct netcfg_addr {
	int ifindex;
	struct netcfg_prefix addr;
	unsigned flags; /* enum netcfg_addr_flags and others of Linux's IFA_F_* */
};

/*
 * netcfg_addr_add() - puts address a/len on the link
 * @flags: NETCFG_ADDR_NODAD, NETCFG_ADDR_NOPREFIXROUTE
 *
 * Adding an address the link has already replaces it (a restart after a
 * crash finds its own addresses). Unless NOPREFIXROUTE, the kernel routes
 * the prefix through the link (main table, metric 0 for IPv4, 256 for
 * IPv6) and removes that route with the address.
 */
int netcfg_addr_add(struct netcfg *nc, int ifindex, const struct netcfg_prefix *a, unsigned flags);
/* netcfg_addr_del() - removes it again; -EADDRNOTAVAIL when the link does not have it. */
int netcfg_addr_del(struct netcfg *nc, int ifindex, const struct netcfg_prefix *a);
typedef void (*netcfg_addr_fn)(void *arg, const struct netcfg_addr *a);
/*
 * netcfg_addr_dump() - calls fn for every address of family (0: both) on
 * every link. -EINTR: the addresses changed while the kernel listed them;
 * fn may have missed some: dump again. The same holds for route dumps.
 */
int netcfg_addr_dump(struct netcfg *nc, int family, netcfg_addr_fn fn, void *arg);

/* Routes. */
#define NETCFG_TABLE_MAIN 254

struct netcfg_route {
	struct netcfg_prefix dst; /* its family picks IPv4 or IPv6; len 0: a default route */
	int ifindex;		  /* the device; 0: none (a gateway alone picks it) */
	struct net_addr gw;	  /* the gateway, of dst's family; family 0: none (on-link) */
	uint32_t metric;	  /* 0: the kernel's default (0 for IPv4, 1024 for IPv6) */
	uint32_t table;		  /* 0: main */
	/* filled by dumps, ignored by add and del: */
	uint8_t type;	  /* Linux's RTN_* (1 unicast, 2 local, 6 blackhole, 7 unreachable) */
	uint8_t protocol; /* Linux's RTPROT_* (2 kernel, 3 boot, 4 static) */
	uint8_t scope;	  /* Linux's RT_SCOPE_* (0 universe, 253 link, 254 host) */
};

/*
 * netcfg_route_add() - adds a unicast route (protocol static)
 *
 * dst's host bits are ignored. Refused with -EEXIST when the table has a
 * route to the same prefix with the same metric, whoever owns it: nothing
 * here replaces a route it did not make. A route through a link that is
 * down is refused with -ENETDOWN.
 */
int netcfg_route_add(struct netcfg *nc, const struct netcfg_route *r);
/* netcfg_route_del() - removes the route add made from the same r; -ESRCH when there is none. */
int netcfg_route_del(struct netcfg *nc, const struct netcfg_route *r);
typedef void (*netcfg_route_fn)(void *arg, const struct netcfg_route *r);
/* netcfg_route_dump() - calls fn for every route of family (0: both) in every table. */
int netcfg_route_dump(struct netcfg *nc, int family, netcfg_route_fn fn, void *arg);

/*
 * netcfg_route_collides() - would subnet p clash with the host's routes?
 * @own_ifindex: routes through this link are ours and never clash (0: none)
 * @hit: the first clashing route, when there is one (may be NULL)
 *
 * Looks at the main table: any route of p's family that shares an address
 * with p (a wider one that contains it, such as a VPN's 10.0.0.0/8, or a
 * narrower one inside it) clashes, except default routes, which contain
 * everything and give way to any more specific route. Return: 1 when a
 * route clashes, 0 when none does, or a negative errno.
 */
int netcfg_route_collides(struct netcfg *nc, const struct netcfg_prefix *p, int own_ifindex,
			  struct netcfg_route *hit);

/*
 * netcfg_egress_links() - the links traffic may leave by: the devices of the
 * main table's unicast routes of family (0: both), each once, without
 * except_ifindex (the TUN), without loopback, and without IPv6
 * link-local routes (every IPv6 link has one). NAT-ed flows come back in
 * by the link they left, so these are the links that need forwarding for
 * the answers (netcfg_fwd_enable()). Routes through multipath or nexthop
 * objects are not looked into; links that appear later are not known.
 * Return: how many ifindexes were put in out (at most max), or a negative
 * errno.
 */
int netcfg_egress_links(struct netcfg *nc, int family, int except_ifindex, int *out, int max);

/*
 * Forwarding, switched on per interface, as narrowly as the kernel allows.
 *
 * The kernel decides whether to forward a packet by the interface it came
 * in on, so the TUN and every interface that NAT-ed replies come back
 * through (the uplinks) need it:
 *  - IPv4: /proc/sys/net/ipv4/conf/<if>/forwarding = 1. This is the whole of
 *    it; net.ipv4.ip_forward (which is conf/all/forwarding and rewrites
 *    every interface's setting) stays as it is. Side effect: the kernel
 *    turns LRO off on that interface, as forwarding requires.
 *  - IPv6: /proc/sys/net/ipv6/conf/<if>/force_forwarding = 1 (Linux 6.17
 *    and later). conf/<if>/forwarding is not touched: for IPv6 it does not
 *    forward anything, it makes the interface a router that ignores router
 *    advertisements, which would cost an uplink its SLAAC address. Older
 *    kernels forward IPv6 only with net.ipv6.conf.all.forwarding = 1, which
 *    turns every interface into a router; that is done only when the caller
 *    allows it (NETCFG_FWD_IPV6_GLOBAL), else the call fails -EOPNOTSUPP.
 *
 * Each value changed is remembered in a struct netcfg_fwd with what it was;
 * values that are 1 already are left alone and not remembered, so a restore
 * never turns off forwarding somebody else had turned on.
 */
enum netcfg_fwd_flags {
	NETCFG_FWD_IPV4 = 1u << 0,
	NETCFG_FWD_IPV6 = 1u << 1,
	NETCFG_FWD_IPV6_GLOBAL = 1u << 2, /* may fall back to net.ipv6.conf.all.forwarding */
};

#define NETCFG_FWD_MAX 16

struct netcfg_fwd {
	int n;
	struct netcfg_fwd_saved {
		char path[80]; /* the file under /proc/sys/net (Windows: "ipv4 LUID") */
		char old[8];   /* its value before */
	} saved[NETCFG_FWD_MAX];
};

/*
 * netcfg_fwd_enable() - switches forwarding on for packets coming in on ifname
 * @f: the undo record (zeroed before its first use); -ENOSPC when full
 * @flags: enum netcfg_fwd_flags
 */
int netcfg_fwd_enable(struct netcfg *nc, struct netcfg_fwd *f, const char *ifname, unsigned flags);
/*
 * netcfg_fwd_restore() - puts back every value f remembers, newest first,
 * where it still holds what netcfg_fwd_enable() wrote (an interface gone
 * since then is skipped), and empties f. Returns 0 or the first error.
 */
int netcfg_fwd_restore(struct netcfg_fwd *f);

#endif
