/* The host's check of what a VM sends: lengths, addresses and the offload header. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "vnet/pkt.h"
#include "core/wire.h"

#define VNET_IPPROTO_TCP 6
#define VNET_IPPROTO_UDP 17

static int vnet_fail(char *why, size_t n, const char *text)
{
	snprintf(why, n, "%s", text);
	return -EINVAL;
}

static int vnet_pkt_ipv4(struct vnet_pkt *k, const struct vnet_src *src, char *why, size_t n)
{
	const uint8_t *ip = k->ip;
	size_t ihl = (size_t)(ip[0] & 0x0f) * 4;

	if (k->ip_len < 20 || ihl < 20 || ihl > k->ip_len)
		return vnet_fail(why, n, "IPv4 header length");
	if (wire_get_u16(ip + 2) != k->ip_len)
		return vnet_fail(why, n, "IPv4 total length does not match the frame");
	if (memcmp(ip + 12, src->addr4, 4) != 0)
		return vnet_fail(why, n, "IPv4 source is not the VM's address");
	if (ip[16] == 0 || ip[16] >= 224 || (ip[16] == 255 && ip[17] == 255))
		return vnet_fail(why, n, "IPv4 destination is not unicast");
	k->family = 4;
	k->proto = ip[9];
	memcpy(k->src, ip + 12, 4);
	memcpy(k->dst, ip + 16, 4);
	return (int)ihl;
}

static int vnet_pkt_ipv6(struct vnet_pkt *k, const struct vnet_src *src, char *why, size_t n)
{
	const uint8_t *ip = k->ip;

	if (k->ip_len < 40)
		return vnet_fail(why, n, "IPv6 header length");
	if ((size_t)wire_get_u16(ip + 4) + 40 != k->ip_len)
		return vnet_fail(why, n, "IPv6 payload length does not match the frame");
	if (!src->has6 || memcmp(ip + 8, src->addr6, 16) != 0)
		return vnet_fail(why, n, "IPv6 source is not the VM's address");
	if (ip[24] == 0xff)
		return vnet_fail(why, n, "IPv6 destination is multicast");
	k->family = 6;
	k->proto = ip[6];
	memcpy(k->src, ip + 8, 16);
	memcpy(k->dst, ip + 24, 16);
	return 40;
}

/* The offload header must describe this very packet. */
static int vnet_pkt_hdr(const struct vnet_pkt *k, size_t l3len, size_t mtu, char *why, size_t n)
{
	const struct vnet_hdr *h = &k->hdr;
	uint8_t gso = h->gso_type & (uint8_t)~VNET_GSO_ECN;

	if (h->flags & ~(VNET_F_NEEDS_CSUM | VNET_F_DATA_VALID))
		return vnet_fail(why, n, "unknown offload flags");
	if (h->flags & VNET_F_NEEDS_CSUM &&
	    ((size_t)h->csum_start < l3len ||
	     (size_t)h->csum_start + h->csum_offset + 2 > k->ip_len))
		return vnet_fail(why, n, "checksum offsets outside the packet");
	if (gso == VNET_GSO_NONE) {
		if (h->gso_type & VNET_GSO_ECN)
			return vnet_fail(why, n, "ECN without segmentation");
		return k->ip_len > mtu ? vnet_fail(why, n, "packet larger than the MTU") : 0;
	}
	if ((gso == VNET_GSO_TCPV4 && !(k->family == 4 && k->proto == VNET_IPPROTO_TCP)) ||
	    (gso == VNET_GSO_TCPV6 && !(k->family == 6 && k->proto == VNET_IPPROTO_TCP)) ||
	    ((gso == VNET_GSO_UDP || gso == VNET_GSO_UDP_L4) && k->proto != VNET_IPPROTO_UDP) ||
	    (gso != VNET_GSO_TCPV4 && gso != VNET_GSO_TCPV6 && gso != VNET_GSO_UDP &&
	     gso != VNET_GSO_UDP_L4))
		return vnet_fail(why, n, "segmentation type does not match the packet");
	if (!h->gso_size || h->gso_size > mtu || (size_t)h->hdr_len > k->ip_len ||
	    !(h->flags & VNET_F_NEEDS_CSUM))
		return vnet_fail(why, n, "segmentation sizes");
	return 0;
}

int vnet_pkt_check(const uint8_t *p, size_t len, size_t hdr_len, size_t mtu,
		   const struct vnet_src *src, struct vnet_pkt *out, char *why, size_t whylen)
{
	int l3;

	memset(out, 0, sizeof(*out));
	if (hdr_len != 0 && hdr_len != VNET_HDR_LEN)
		return vnet_fail(why, whylen, "bad offload header length");
	if (len < hdr_len + 1 || len - hdr_len > VNET_MTU_MAX)
		return vnet_fail(why, whylen, "frame length");
	if (hdr_len)
		vnet_hdr_decode(p, &out->hdr);
	out->ip = p + hdr_len;
	out->ip_len = len - hdr_len;
	switch (out->ip[0] >> 4) {
	case 4:
		l3 = vnet_pkt_ipv4(out, src, why, whylen);
		break;
	case 6:
		l3 = vnet_pkt_ipv6(out, src, why, whylen);
		break;
	default:
		return vnet_fail(why, whylen, "not an IP packet");
	}
	if (l3 < 0)
		return l3;
	return vnet_pkt_hdr(out, (size_t)l3, mtu, why, whylen);
}
