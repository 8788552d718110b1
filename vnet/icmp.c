/* vnet's "packet too big" answers, built with their checksums. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include "vnet/icmp.h"
#include "core/wire.h"

#define VNET_HDR 12u

/* The Internet checksum's running sum over p[0..n). */
static uint32_t vnet_sum(uint32_t sum, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}

static uint16_t vnet_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static int vnet_icmp4(const uint8_t *ip, size_t len, uint32_t mtu, const uint8_t from[4],
		      uint8_t *out)
{
	size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
	size_t quote = len < ihl + 8 ? len : ihl + 8, total = 20 + 8 + quote;
	uint8_t *h = out + VNET_HDR, *icmp = h + 20;

	if (!(ip[6] & 0x40))
		return -EMSGSIZE; /* DF clear: a router would fragment; vnet drops */
	memset(out, 0, VNET_HDR + total);
	h[0] = 0x45;
	wire_put_u16(h + 2, (uint16_t)total);
	h[6] = 0x40; /* DF */
	h[8] = 64;
	h[9] = 1; /* ICMP */
	memcpy(h + 12, from, 4);
	memcpy(h + 16, ip + 12, 4); /* to the sender */
	wire_put_u16(h + 10, vnet_fold(vnet_sum(0, h, 20)));
	icmp[0] = 3; /* destination unreachable */
	icmp[1] = 4; /* fragmentation needed */
	wire_put_u16(icmp + 6, (uint16_t)(mtu > 0xffff ? 0xffff : mtu));
	memcpy(icmp + 8, ip, quote);
	wire_put_u16(icmp + 2, vnet_fold(vnet_sum(0, icmp, 8 + quote)));
	return (int)(VNET_HDR + total);
}

static int vnet_icmp6(const uint8_t *ip, size_t len, uint32_t mtu, const uint8_t from[16],
		      uint8_t *out)
{
	size_t quote = len < 1280 - 48 ? len : 1280 - 48, plen = 8 + quote;
	uint8_t *h = out + VNET_HDR, *icmp = h + 40;
	uint32_t sum;

	memset(out, 0, VNET_HDR + 40 + plen);
	h[0] = 0x60;
	wire_put_u16(h + 4, (uint16_t)plen);
	h[6] = 58; /* ICMPv6 */
	h[7] = 64;
	memcpy(h + 8, from, 16);
	memcpy(h + 24, ip + 8, 16); /* to the sender */
	icmp[0] = 2;		    /* packet too big */
	wire_put_u32(icmp + 4, mtu);
	memcpy(icmp + 8, ip, quote);
	/* The pseudo-header: source, destination, length, next header. */
	sum = vnet_sum(0, h + 8, 32);
	sum += (uint32_t)plen;
	sum += 58;
	wire_put_u16(icmp + 2, vnet_fold(vnet_sum(sum, icmp, plen)));
	return (int)(VNET_HDR + 40 + plen);
}

/* True for an ICMP error message: no error is ever sent about one (RFC 1122, RFC 4443). */
static bool vnet_icmp_is_error(const uint8_t *ip, size_t len)
{
	if ((ip[0] >> 4) == 4) {
		size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
		uint8_t type = len > ihl ? ip[ihl] : 0;

		return ip[9] == 1 &&
		       (type == 3 || type == 4 || type == 5 || type == 11 || type == 12);
	}
	return ip[6] == 58 && len > 40 && ip[40] < 128;
}

int vnet_icmp_too_big(const uint8_t *ip, size_t len, uint32_t mtu, const uint8_t from4[4],
		      const uint8_t from6[16], uint8_t out[VNET_ICMP_MAX])
{
	if (len < 20 || vnet_icmp_is_error(ip, len))
		return -EINVAL;
	if ((ip[0] >> 4) == 4)
		return vnet_icmp4(ip, len, mtu, from4, out);
	if (len >= 40 && (ip[0] >> 4) == 6)
		return vnet_icmp6(ip, len, mtu, from6, out);
	return -EINVAL;
}
