/* vnet leases: each VM's addresses, keyed by its name, kept across restarts. */
#ifndef VB_VNET_LEASE_H
#define VB_VNET_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vnet/pkt.h"

/* The subnet: the gateway is host 1, VMs get 2 and up; IPv6 takes the same host numbers. */
struct vnet_net {
	uint8_t net4[4];
	uint8_t prefix4; /* 8..30 */
	bool has6;
	uint8_t net6[16];
	uint8_t prefix6; /* 64..120 */
};

struct vnet_lease_ent {
	char vm[64];
	uint32_t host;
};

struct vnet_leases {
	struct vnet_net net;
	char path[256]; /* "" keeps them in memory only */
	struct vnet_lease_ent *v;
	size_t n, cap;
};

/*
 * Parses "10.77.0.0/24" (and "fd77::/64") into net; returns 0 or -EINVAL
 * with a reason (host bits set, prefix out of range).
 */
int vnet_net_parse4(const char *s, struct vnet_net *net, char *why, size_t whylen);
int vnet_net_parse6(const char *s, struct vnet_net *net, char *why, size_t whylen);
/* The address of host number h in net. */
void vnet_net_addr4(const struct vnet_net *net, uint32_t h, uint8_t out[4]);
void vnet_net_addr6(const struct vnet_net *net, uint32_t h, uint8_t out[16]);
/* The largest host number of net (the IPv4 broadcast address is not one). */
uint32_t vnet_net_hosts(const struct vnet_net *net);

/*
 * Opens the store at path (which may not exist yet): leases whose host
 * number does not fit net are dropped. Returns 0, or a negative errno with
 * a reason (a malformed file names its line).
 */
int vnet_leases_open(struct vnet_leases *l, const struct vnet_net *net, const char *path, char *why,
		     size_t whylen);
void vnet_leases_close(struct vnet_leases *l);
/*
 * The lease of vm: the one it had, or the lowest free host number from 2,
 * saved before it is returned. Returns 0, -ENOSPC when the subnet is full,
 * or the error of saving.
 */
int vnet_lease_for(struct vnet_leases *l, const char *vm, struct vnet_src *out);

#endif
