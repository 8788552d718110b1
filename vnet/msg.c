/* The VNET stream's attach request, lease and offload header codecs. */
#include <errno.h>
#include <string.h>
#include "vnet/msg.h"
#include "core/wire.h"

void vnet_req_encode(const struct vnet_req *q, uint8_t out[VNET_REQ_LEN])
{
	out[0] = q->version;
	out[1] = q->flags;
	out[2] = q->hdr_len;
	out[3] = 0;
	wire_put_u32(out + 4, q->mtu);
}

int vnet_req_decode(const uint8_t *p, size_t len, struct vnet_req *q)
{
	if (len != VNET_REQ_LEN || p[3] != 0)
		return -EINVAL;
	q->version = p[0];
	q->flags = p[1];
	q->hdr_len = p[2];
	q->mtu = wire_get_u32(p + 4);
	if (q->version != VNET_VERSION || (q->flags & ~VNET_REQ_IPV6) ||
	    (q->hdr_len != 0 && q->hdr_len != VNET_HDR_LEN) || q->mtu < VNET_MTU_MIN ||
	    q->mtu > VNET_MTU_MAX)
		return -EINVAL;
	return 0;
}

void vnet_lease_encode(const struct vnet_lease_msg *m, uint8_t out[VNET_LEASE_LEN])
{
	out[0] = m->flags;
	out[1] = m->prefix4;
	out[2] = m->prefix6;
	out[3] = 0;
	wire_put_u32(out + 4, m->mtu);
	wire_put_u32(out + 8, m->metric);
	memcpy(out + 12, m->addr4, 4);
	memcpy(out + 16, m->gw4, 4);
	memcpy(out + 20, m->dns4, 4);
	memcpy(out + 24, m->addr6, 16);
	memcpy(out + 40, m->gw6, 16);
}

int vnet_lease_decode(const uint8_t *p, size_t len, struct vnet_lease_msg *m)
{
	if (len != VNET_LEASE_LEN || p[3] != 0)
		return -EINVAL;
	m->flags = p[0];
	m->prefix4 = p[1];
	m->prefix6 = p[2];
	m->mtu = wire_get_u32(p + 4);
	m->metric = wire_get_u32(p + 8);
	memcpy(m->addr4, p + 12, 4);
	memcpy(m->gw4, p + 16, 4);
	memcpy(m->dns4, p + 20, 4);
	memcpy(m->addr6, p + 24, 16);
	memcpy(m->gw6, p + 40, 16);
	if ((m->flags & ~(VNET_LEASE_DEFAULT_ROUTE | VNET_LEASE_IPV6)) || m->prefix4 < 8 ||
	    m->prefix4 > 30 || m->mtu < VNET_MTU_MIN || m->mtu > VNET_MTU_MAX)
		return -EINVAL;
	if ((m->flags & VNET_LEASE_IPV6) && (m->prefix6 < 8 || m->prefix6 > 126))
		return -EINVAL;
	return 0;
}

static uint16_t vnet_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static void vnet_put_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void vnet_hdr_decode(const uint8_t p[VNET_HDR_LEN], struct vnet_hdr *h)
{
	h->flags = p[0];
	h->gso_type = p[1];
	h->hdr_len = vnet_le16(p + 2);
	h->gso_size = vnet_le16(p + 4);
	h->csum_start = vnet_le16(p + 6);
	h->csum_offset = vnet_le16(p + 8);
	h->num_buffers = vnet_le16(p + 10);
}

void vnet_hdr_encode(const struct vnet_hdr *h, uint8_t out[VNET_HDR_LEN])
{
	out[0] = h->flags;
	out[1] = h->gso_type;
	vnet_put_le16(out + 2, h->hdr_len);
	vnet_put_le16(out + 4, h->gso_size);
	vnet_put_le16(out + 6, h->csum_start);
	vnet_put_le16(out + 8, h->csum_offset);
	vnet_put_le16(out + 10, h->num_buffers);
}
