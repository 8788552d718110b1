/* vnet's DNS forwarder: queries to the gateway go to the host's own resolvers. */
#ifndef VB_VNET_DNS_H
#define VB_VNET_DNS_H

#include <stddef.h>
#include "core/runtime.h"
#include "platform/net.h"

struct vnet_dns;

/*
 * Listens on UDP port 53 of each address in listen (the gateway's) and
 * relays every query to the first nameserver of resolv_conf (a file in
 * resolv.conf's form; NULL: the host's, net_nameservers(); a local stub
 * such as 127.0.0.53 works, since the daemon runs on the host),
 * the next one after a second without an answer; answers go back to the
 * client with its own query id. Runs on loop rl. Returns 0, or a negative
 * errno with a reason (no nameserver, an address that cannot be bound).
 */
int vnet_dns_new(struct vnet_dns **out, struct rt_loop *rl, const struct net_addr *listen, int n,
		 const char *resolv_conf, char *why, size_t whylen);
/* Starts receiving; call once, from any thread. */
int vnet_dns_start(struct vnet_dns *d);
/* After the loops stopped: closes the sockets. */
void vnet_dns_free(struct vnet_dns *d);

#endif
