/* The offloads of a written frame, done in software for Wintun (which takes plain IP packets): see
 * tun_gso.h. OS-free. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include "platform/tun.h"
#include "platform/win/tun_gso.h"

/*
 * Why this exists: a VM's agent opens its TUN with every offload the guest
 * kernel has (vnet/agent.c), so its frames arrive with NEEDS_CSUM and as TSO
 * or USO super-packets, and the VNET protocol has no way to ask it not to.
 * Linux's TUN finishes and cuts them itself; Wintun takes finished IP
 * packets of at most 64 KiB only, so the host does that work here before a
 * packet enters Wintun's ring.
 */

#define TUN_GSO_TCP	       6
#define TUN_GSO_UDP	       17
#define TUN_GSO_FIN	       0x01
#define TUN_GSO_PSH	       0x08
#define TUN_GSO_CWR	       0x80
#define TUN_GSO_CSUM_MANGLED_0 0xffff /* a computed 0 is sent as this (UDP: 0 means "none") */

/* One's-complement sum of n bytes (big-endian words; an odd last byte padded with zero). */
static uint32_t tun_gso_sum(const uint8_t *p, size_t n, uint32_t sum)
{
	for (; n > 1; p += 2, n -= 2)
		sum += (uint32_t)p[0] << 8 | p[1];
	if (n)
		sum += (uint32_t)p[0] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

static uint16_t tun_gso_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void tun_gso_put16(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Writes the complement of sum at p, never 0 (as Linux's skb_checksum_help does). */
static void tun_gso_put_csum(uint8_t *p, uint32_t sum)
{
	uint16_t c = (uint16_t)~tun_gso_sum(NULL, 0, sum);

	tun_gso_put16(p, c ? c : TUN_GSO_CSUM_MANGLED_0);
}

/* The sum of the pseudo-header for a transport segment of l4len bytes of packet p. */
static uint32_t tun_gso_pseudo(const uint8_t *p, bool v4, uint8_t proto, size_t l4len)
{
	uint32_t sum = proto + (uint32_t)(l4len >> 16) + (uint32_t)(l4len & 0xffff);

	return v4 ? tun_gso_sum(p + 12, 8, sum) : tun_gso_sum(p + 8, 32, sum);
}

/* The layout of a packet to be cut: where its transport header is and how long the headers are. */
struct tun_gso_pkt {
	bool v4;
	uint8_t proto;
	size_t l4, hdrs;
};

/* Checks a GSO packet against its header and finds its layout; 0 or a negative errno. */
static int tun_gso_layout(const struct vb_vnet_hdr *h, const uint8_t *p, size_t n,
			  struct tun_gso_pkt *k)
{
	unsigned gso = h->gso_type & ~(unsigned)VB_VNET_GSO_ECN;

	k->v4 = (p[0] >> 4) == 4;
	if (k->v4) {
		k->l4 = (size_t)(p[0] & 15) * 4;
		k->proto = p[9];
	} else if ((p[0] >> 4) == 6 && n >= 40) {
		k->l4 = 40;
		k->proto = p[6];
	} else {
		return -EINVAL;
	}
	if (k->l4 < 20 || (gso == VB_VNET_GSO_TCPV4 && !k->v4) ||
	    (gso == VB_VNET_GSO_TCPV6 && k->v4) ||
	    k->proto != (gso == VB_VNET_GSO_UDP_L4 ? TUN_GSO_UDP : TUN_GSO_TCP))
		return -EINVAL;
	if ((h->flags & VB_VNET_F_NEEDS_CSUM) && h->csum_start != k->l4)
		return -EOPNOTSUPP; /* IPv6 extension headers, or options we would misread */
	if (k->proto == TUN_GSO_TCP)
		k->hdrs = n >= k->l4 + 20 ? k->l4 + (size_t)(p[k->l4 + 12] >> 4) * 4 : 0;
	else
		k->hdrs = k->l4 + 8;
	if (k->hdrs < k->l4 + 8 || k->hdrs > n)
		return -EINVAL;
	return 0;
}

/* Fixes the headers of segment i (payload bytes off to off + n of the original) in s. */
static void tun_gso_fix(const struct tun_gso_pkt *k, uint8_t *s, size_t seglen, unsigned i,
			size_t off, bool last)
{
	size_t l4len = seglen - k->l4;
	uint8_t *t = s + k->l4;

	if (k->v4) {
		tun_gso_put16(s + 2, (uint32_t)seglen);
		tun_gso_put16(s + 4, tun_gso_be16(s + 4) + i); /* each segment its own id */
		tun_gso_put16(s + 10, 0);
		tun_gso_put16(s + 10, (uint16_t)~tun_gso_sum(s, k->l4, 0));
	} else {
		tun_gso_put16(s + 4, (uint32_t)(seglen - 40));
	}
	if (k->proto == TUN_GSO_TCP) {
		uint32_t seq =
		    (uint32_t)t[4] << 24 | (uint32_t)t[5] << 16 | (uint32_t)t[6] << 8 | t[7];

		seq += (uint32_t)off;
		t[4] = (uint8_t)(seq >> 24);
		t[5] = (uint8_t)(seq >> 16);
		t[6] = (uint8_t)(seq >> 8);
		t[7] = (uint8_t)seq;
		if (!last)
			t[13] &= (uint8_t) ~(TUN_GSO_FIN | TUN_GSO_PSH);
		if (i)
			t[13] &= (uint8_t)~TUN_GSO_CWR;
		tun_gso_put16(t + 16, 0);
		tun_gso_put_csum(t + 16,
				 tun_gso_sum(t, l4len, tun_gso_pseudo(s, k->v4, k->proto, l4len)));
	} else {
		tun_gso_put16(t + 4, (uint32_t)l4len);
		tun_gso_put16(t + 6, 0);
		tun_gso_put_csum(t + 6,
				 tun_gso_sum(t, l4len, tun_gso_pseudo(s, k->v4, k->proto, l4len)));
	}
}

/* Cuts a GSO packet into segments of h->gso_size payload bytes, each passed to emit. */
static int tun_gso_segment(const struct vb_vnet_hdr *h, const uint8_t *p, size_t n,
			   uint8_t *scratch, tun_gso_emit_fn emit, void *arg)
{
	struct tun_gso_pkt k;
	size_t payload, off = 0;
	unsigned i = 0;
	int ret = tun_gso_layout(h, p, n, &k);

	if (ret < 0)
		return ret;
	payload = n - k.hdrs;
	do {
		size_t seg = payload - off < h->gso_size ? payload - off : h->gso_size;

		memcpy(scratch, p, k.hdrs);
		memcpy(scratch + k.hdrs, p + k.hdrs + off, seg);
		tun_gso_fix(&k, scratch, k.hdrs + seg, i, off, off + seg == payload);
		ret = emit(arg, scratch, k.hdrs + seg);
		off += seg;
		i++;
	} while (!ret && off < payload);
	return ret < 0 ? ret : (int)i;
}

int tun_gso_split(const uint8_t *frame, size_t len, uint8_t *scratch, tun_gso_emit_fn emit,
		  void *arg)
{
	const uint8_t *p = frame + TUN_HDR_LEN;
	struct vb_vnet_hdr h;
	size_t n;
	int ret;

	if (len < TUN_HDR_LEN + 20 || len > TUN_FRAME_MAX)
		return -EINVAL;
	n = len - TUN_HDR_LEN;
	tun_hdr_decode(frame, &h);
	if (tun_hdr_check(&h, n))
		return -EINVAL;
	if ((h.gso_type & ~(unsigned)VB_VNET_GSO_ECN) != VB_VNET_GSO_NONE)
		return tun_gso_segment(&h, p, n, scratch, emit, arg);
	if (!(h.flags & VB_VNET_F_NEEDS_CSUM)) {
		ret = emit(arg, p, n);
		return ret < 0 ? ret : 1;
	}
	/* The field holds the pseudo-header's sum: summing from csum_start over it finishes it. */
	memcpy(scratch, p, n);
	tun_gso_put_csum(scratch + h.csum_start + h.csum_offset,
			 tun_gso_sum(scratch + h.csum_start, n - h.csum_start, 0));
	ret = emit(arg, scratch, n);
	return ret < 0 ? ret : 1;
}
