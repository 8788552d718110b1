/* The host's end of vnet: the gateway's TUN, the leases, and the L3 switch between VMs. */
#ifndef VB_VNET_ROUTER_H
#define VB_VNET_ROUTER_H

#include <stdbool.h>
#include <stdint.h>
#include "core/runtime.h"
#include "core/session.h"
#include "vnet/lease.h"

struct vnet_router_cfg {
	struct vnet_net net;
	char tun[16];
	uint32_t mtu;
	const char *leases; /* the lease file; NULL or "": in memory only */
	bool nat;	    /* masquerade what leaves for the outside (nftables) */
	bool dns;	    /* a DNS forwarder on the gateway's addresses */
};

struct vnet_router;

/*
 * Sets up the host's side (the calling thread's network namespace): the
 * TUN with the gateway addresses (the subnets' first addresses), after
 * checking that no route of the host's overlaps the subnets; forwarding on
 * the TUN; NAT to the outside. Reads from the TUN run on the runtime's first
 * loop once it runs. Returns 0, or a negative errno with a one-line reason
 * (and nothing is left behind).
 */
int vnet_router_new(struct vnet_router **out, struct runtime *rt, const struct vnet_router_cfg *cfg,
		    char *why, size_t whylen);
/* Starts reading the TUN; call once, before or after runtime_start(). */
int vnet_router_start(struct vnet_router *r);
/* After runtime_stop(): removes the NAT table, restores forwarding, closes the TUN. */
void vnet_router_free(struct vnet_router *r);

/*
 * On the VM's loop rl: serves the VNET stream the guest of VM vm opened:
 * its lease (kept across restarts), the default route if the operator
 * asked for one, then packets. Every packet is checked (vnet/pkt.h); VM to
 * VM packets are switched here, never through the host's kernel; the rest
 * go to the TUN.
 */
void vnet_router_attach(struct vnet_router *r, struct rt_loop *rl, const char *vm,
			bool default_route, uint32_t metric, struct stream *st, const uint8_t *req,
			size_t len);

/* Packets and bytes, for `vmbusify vnet status`: one line of JSON per attached VM. */
struct strbuf;
void vnet_router_status(struct vnet_router *r, bool json, struct strbuf *out);

#endif
