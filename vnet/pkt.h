/* What the host checks in every packet a VM sends, before it routes it anywhere. */
#ifndef VB_VNET_PKT_H
#define VB_VNET_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "vnet/msg.h"

/* The addresses a VM may send from: its lease. */
struct vnet_src {
	uint8_t addr4[4];
	bool has6;
	uint8_t addr6[16];
};

struct vnet_pkt {
	uint8_t family; /* 4 or 6 */
	uint8_t proto;	/* IPPROTO_* of the first header after IP (IPv6: the next header) */
	uint8_t src[16], dst[16];
	const uint8_t *ip; /* the IP packet */
	size_t ip_len;
	struct vnet_hdr hdr; /* zero when the stream carries no offload header */
};

/*
 * vnet_pkt_check() - checks one packet from a VM
 * @p, @len: the DATA frame: the offload header (hdr_len bytes) and the IP packet
 * @hdr_len: 0 or VNET_HDR_LEN, as the VM attached
 * @mtu: the largest IP packet without segmentation offload
 * @src: the VM's lease; a packet from any other address is spoofed
 *
 * Accepts IPv4 and IPv6 packets whose lengths agree exactly with the frame,
 * from the lease's address, to a unicast destination, with an offload
 * header that describes this packet (GSO type matching the protocol, sizes
 * and checksum offsets inside it). Nothing in the packet is trusted beyond
 * what is checked here. Return: 0 and *out, or -EINVAL with a one-line
 * reason (for a counter and a rate-limited log, never for the sender).
 */
int vnet_pkt_check(const uint8_t *p, size_t len, size_t hdr_len, size_t mtu,
		   const struct vnet_src *src, struct vnet_pkt *out, char *why, size_t whylen);

#endif
