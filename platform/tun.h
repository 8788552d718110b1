/* TUN devices for vnet: IP packets with their offload header, read and written through the loop. */
#ifndef VB_PLATFORM_TUN_H
#define VB_PLATFORM_TUN_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include "platform/loop.h"

/*
 * The offload header that travels in front of every packet (Linux's struct
 * virtio_net_hdr_v1, the layout of virtio 1.0): 12 bytes, its 16-bit fields
 * little-endian on every machine (the device is switched to little-endian
 * headers where the kernel allows it). The 12-byte form rather than the
 * 10-byte legacy one keeps the IP header that follows 4-byte aligned, and
 * is what vnet's wire format (docs/protocol.md, VNET) carries. The last two
 * bytes (num_buffers) mean nothing here: written as zero, ignored on read.
 */
#define TUN_HDR_LEN 12u
/* The largest IP packet without jumbograms (IPv6: a 40-byte header and 65535 bytes). */
#define TUN_PACKET_MAX 65575u
/* A read buffer that holds any packet the device hands out, with its header. */
#define TUN_FRAME_MAX (TUN_HDR_LEN + TUN_PACKET_MAX)

enum vb_vnet_flags {
	VB_VNET_F_NEEDS_CSUM = 1, /* the checksum at csum_start + csum_offset is to be finished */
	VB_VNET_F_DATA_VALID = 2, /* the checksum was checked (read only) */
};

enum vb_vnet_gso {
	VB_VNET_GSO_NONE = 0,
	VB_VNET_GSO_TCPV4 = 1,
	VB_VNET_GSO_UDP = 3, /* UFO: never enabled here, refused by tun_hdr_check() */
	VB_VNET_GSO_TCPV6 = 4,
	VB_VNET_GSO_UDP_L4 = 5, /* USO, IPv4 or IPv6 */
	VB_VNET_GSO_ECN = 0x80, /* or-ed into a TCP type: the segments carry CWR */
};

struct vb_vnet_hdr {
	uint8_t flags;	      /* enum vb_vnet_flags */
	uint8_t gso_type;     /* enum vb_vnet_gso */
	uint16_t hdr_len;     /* GSO: the bytes of headers (IP and transport) in each segment */
	uint16_t gso_size;    /* GSO: the payload bytes of each segment but the last */
	uint16_t csum_start;  /* NEEDS_CSUM: where summing starts, from the IP header */
	uint16_t csum_offset; /* NEEDS_CSUM: where the sum goes, from csum_start */
};

/* tun_hdr_decode() - the header at p (TUN_HDR_LEN bytes) as plain fields. */
static inline void tun_hdr_decode(const uint8_t *p, struct vb_vnet_hdr *h)
{
	h->flags = p[0];
	h->gso_type = p[1];
	h->hdr_len = (uint16_t)(p[2] | p[3] << 8);
	h->gso_size = (uint16_t)(p[4] | p[5] << 8);
	h->csum_start = (uint16_t)(p[6] | p[7] << 8);
	h->csum_offset = (uint16_t)(p[8] | p[9] << 8);
}

/* tun_hdr_encode() - writes h as TUN_HDR_LEN bytes at out (num_buffers zero). */
static inline void tun_hdr_encode(const struct vb_vnet_hdr *h, uint8_t *out)
{
	const uint16_t v[4] = {h->hdr_len, h->gso_size, h->csum_start, h->csum_offset};

	out[0] = h->flags;
	out[1] = h->gso_type;
	for (int i = 0; i < 4; i++) {
		out[2 + 2 * i] = (uint8_t)v[i];
		out[3 + 2 * i] = (uint8_t)(v[i] >> 8);
	}
	out[10] = 0;
	out[11] = 0;
}

/*
 * tun_hdr_check() - does h make sense for a packet of pkt_len bytes?
 *
 * Only what the header says about itself: known flags and GSO types (UFO
 * refused, ECN only on TCP), a segment size with every GSO type, header and
 * checksum positions inside the packet. Whether they match the packet's own
 * headers is for the caller (vnet_pkt_check()). Return: 0 or -EINVAL.
 */
static inline int tun_hdr_check(const struct vb_vnet_hdr *h, size_t pkt_len)
{
	unsigned gso = h->gso_type & ~(unsigned)VB_VNET_GSO_ECN;

	if (h->flags & ~(unsigned)(VB_VNET_F_NEEDS_CSUM | VB_VNET_F_DATA_VALID))
		return -EINVAL;
	if (gso != VB_VNET_GSO_NONE && gso != VB_VNET_GSO_TCPV4 && gso != VB_VNET_GSO_TCPV6 &&
	    gso != VB_VNET_GSO_UDP_L4)
		return -EINVAL;
	if ((h->gso_type & VB_VNET_GSO_ECN) && gso != VB_VNET_GSO_TCPV4 && gso != VB_VNET_GSO_TCPV6)
		return -EINVAL;
	if (gso != VB_VNET_GSO_NONE && (h->gso_size == 0 || h->hdr_len > pkt_len))
		return -EINVAL;
	if ((h->flags & VB_VNET_F_NEEDS_CSUM) &&
	    (size_t)h->csum_start + h->csum_offset + 2 > pkt_len)
		return -EINVAL;
	return 0;
}

/* What the device may hand out (TUNSETOFFLOAD); writes take all of them always. */
enum tun_offload {
	TUN_OFFLOAD_CSUM = 1u << 0,    /* packets whose checksum is left to finish (NEEDS_CSUM) */
	TUN_OFFLOAD_TSO4 = 1u << 1,    /* TCP/IPv4 segments up to 64 KiB (needs CSUM) */
	TUN_OFFLOAD_TSO6 = 1u << 2,    /* TCP/IPv6 likewise */
	TUN_OFFLOAD_TSO_ECN = 1u << 3, /* TSO of flows that use ECN (GSO_ECN) */
	TUN_OFFLOAD_USO4 = 1u << 4,    /* UDP/IPv4 segmentation (GSO_UDP_L4; Linux 6.2 and later) */
	TUN_OFFLOAD_USO6 = 1u << 5,    /* UDP/IPv6 likewise */
};

#define TUN_OFFLOAD_ALL                                                                            \
	(TUN_OFFLOAD_CSUM | TUN_OFFLOAD_TSO4 | TUN_OFFLOAD_TSO6 | TUN_OFFLOAD_TSO_ECN |            \
	 TUN_OFFLOAD_USO4 | TUN_OFFLOAD_USO6)

#define TUN_NAME_MAX 16 /* IFNAMSIZ, with the NUL */

/*
 * An open TUN device: an IP device (no Ethernet), one queue, every packet
 * with its offload header in front. The descriptor is non-blocking and
 * close-on-exec; each loop_read() of at least TUN_FRAME_MAX bytes completes
 * with one whole frame (header and packet), each loop_write()/loop_writev()
 * takes one whole frame. A shorter read buffer truncates the packet. Writes
 * fail with -EIO while the link is down. The device is not persistent: it
 * goes away, with its addresses and routes, when the descriptor is closed.
 *
 * On Windows (platform/win/tun.c) the device is a Wintun adapter, which
 * carries plain IP packets: fd is our end of a message-mode pipe that two
 * threads relay to and from Wintun's rings, the same one-frame-per-read and
 * one-frame-per-write contract; reads hand out no offload (offloads is
 * always 0, every header all zero), and writes still take every offload
 * (checksums finished and segments cut in software before Wintun sees them).
 */
struct tun {
	pl_fd fd;
	int ifindex;
	unsigned offloads; /* enum tun_offload: what the kernel took */
	char name[TUN_NAME_MAX];
	void *os; /* the platform's own state (Windows: the Wintun adapter and its relay); Linux:
		     NULL */
};

/*
 * tun_open() - creates the TUN device @name and opens it
 * @t: filled on success
 * @name: the device's name (at most 15 bytes); NULL or "" lets the kernel pick "tunN"
 * @offloads: enum tun_offload wanted (TUN_OFFLOAD_ALL: everything there is).
 *	Left out rather than refused: what the kernel cannot combine (anything
 *	without CSUM, TSO_ECN without TSO, USO4 without USO6 or the other way:
 *	the kernel takes both or neither) and what it does not know (USO
 *	before Linux 6.2). t->offloads says what was taken.
 * @why: a one-line reason on failure
 *
 * Needs CAP_NET_ADMIN in the network namespace of the calling thread, where
 * the device is made. Only a new device is taken (IFF_TUN_EXCL), never one
 * that already exists, so that closing it always removes it. The link stays
 * down. Return: 0, or a negative errno (-EBUSY: a device of that name
 * exists, -EPERM, -ENOENT: no /dev/net/tun).
 */
int tun_open(struct tun *t, const char *name, unsigned offloads, char *why, size_t whylen);
/* tun_set_mtu() - the device's MTU (68 to 65535); returns 0 or a negative errno. */
int tun_set_mtu(const struct tun *t, unsigned mtu);
/* tun_close() - closes the descriptor (the device goes away); every request on it must be done. */
void tun_close(struct tun *t);

#endif
