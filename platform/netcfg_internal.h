/* Private to platform/: what the shared half of netcfg (platform/netcfg_common.c) needs from each
 * port's netcfg.c. */
#ifndef VB_PLATFORM_NETCFG_INTERNAL_H
#define VB_PLATFORM_NETCFG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include "platform/netcfg.h"

/* The route types of struct netcfg_route that the shared half looks at (Linux's RTN_*). */
#define NETCFG_RTN_UNICAST 1

/* Records err's reason ("what: text") for netcfg_why() and returns err. */
int netcfg_fail(struct netcfg *nc, int err, const char *what);
/* Empties the reason: the call succeeded. */
void netcfg_why_clear(struct netcfg *nc);

static inline bool netcfg_family_ok(const struct net_addr *a)
{
	return a->family == NET_IPV4 || a->family == NET_IPV6;
}

static inline size_t netcfg_addr_len(int family)
{
	return family == NET_IPV4 ? 4 : 16;
}

#endif
