/* The VNET stream kind: attaching a VM to the virtual subnet, and the packets it carries. */
#ifndef VB_VNET_MSG_H
#define VB_VNET_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The agent opens one VNET stream (DGRAM) to attach its VM (docs/protocol.md,
 * VNET). Request, big-endian: version u8 (1), flags u8 (VNET_REQ_*),
 * hdr_len u8 (VNET_HDR_LEN: packets carry the offload header; 0: plain IP
 * packets), a zero byte, mtu u32 (the largest IP packet the VM takes).
 * Reply (ACCEPT), the lease: flags u8 (VNET_LEASE_*), prefix4 u8, prefix6
 * u8, a zero byte, mtu u32, metric u32 (of the default route), addr4,
 * gw4, dns4 (4 bytes each), addr6, gw6 (16 bytes each; zero without IPv6).
 * Then each DATA frame is one packet: the offload header (when hdr_len is
 * not 0) and the IP packet.
 */

#define VNET_VERSION	 1
#define VNET_REQ_LEN	 8u
#define VNET_LEASE_LEN	 56u
#define VNET_HDR_LEN	 12u /* struct virtio_net_hdr_v1, little-endian, as Linux TUN takes it */
#define VNET_MTU_DEFAULT 65520u
#define VNET_MTU_MIN	 1280u /* IPv6's minimum */
#define VNET_MTU_MAX	 65535u

enum vnet_req_flags {
	VNET_REQ_IPV6 = 1u << 0, /* the VM wants an IPv6 address too */
};

enum vnet_lease_flags {
	VNET_LEASE_DEFAULT_ROUTE = 1u << 0, /* route everything through vnet (with metric) */
	VNET_LEASE_IPV6 = 1u << 1,	    /* addr6 and gw6 are set */
};

struct vnet_req {
	uint8_t version;
	uint8_t flags;
	uint8_t hdr_len;
	uint32_t mtu;
};

struct vnet_lease_msg {
	uint8_t flags;
	uint8_t prefix4, prefix6;
	uint32_t mtu, metric;
	uint8_t addr4[4], gw4[4], dns4[4];
	uint8_t addr6[16], gw6[16];
};

void vnet_req_encode(const struct vnet_req *q, uint8_t out[VNET_REQ_LEN]);
/* Decodes and checks a request from a peer; returns 0 or -EINVAL. */
int vnet_req_decode(const uint8_t *p, size_t len, struct vnet_req *q);
void vnet_lease_encode(const struct vnet_lease_msg *m, uint8_t out[VNET_LEASE_LEN]);
/* Decodes and checks a lease; returns 0 or -EINVAL. */
int vnet_lease_decode(const uint8_t *p, size_t len, struct vnet_lease_msg *m);

/*
 * The offload header (virtio_net_hdr_v1), as plain fields. On the wire its
 * 16-bit fields are little-endian, as the Linux TUN driver reads and writes
 * them on every machine this runs on.
 */
enum vnet_hdr_flags {
	VNET_F_NEEDS_CSUM = 1,
	VNET_F_DATA_VALID = 2,
};

enum vnet_gso {
	VNET_GSO_NONE = 0,
	VNET_GSO_TCPV4 = 1,
	VNET_GSO_UDP = 3,
	VNET_GSO_TCPV6 = 4,
	VNET_GSO_UDP_L4 = 5,
	VNET_GSO_ECN = 0x80,
};

struct vnet_hdr {
	uint8_t flags, gso_type;
	uint16_t hdr_len, gso_size, csum_start, csum_offset, num_buffers;
};

void vnet_hdr_decode(const uint8_t p[VNET_HDR_LEN], struct vnet_hdr *h);
void vnet_hdr_encode(const struct vnet_hdr *h, uint8_t out[VNET_HDR_LEN]);

#endif
