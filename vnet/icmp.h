/* vnet's "packet too big" answers: ICMPv4 fragmentation needed and ICMPv6 packet too big. */
#ifndef VB_VNET_ICMP_H
#define VB_VNET_ICMP_H

#include <stddef.h>
#include <stdint.h>

/* Room for an answer: the offload header and a packet of IPv6's minimum MTU. */
#define VNET_ICMP_MAX (12u + 1280u)

/*
 * vnet_icmp_too_big() - the answer to a packet that does not fit the next hop
 * @ip, @len: the packet that was too big (IPv4 or IPv6, checked already)
 * @mtu: the next hop's MTU, the answer's figure
 * @from4, @from6: the gateway's addresses, the answer's source
 * @out: VNET_ICMP_MAX bytes: a zero offload header, then the answer,
 *	addressed to the packet's source, with every checksum computed
 *
 * IPv4 answers "fragmentation needed" (type 3, code 4) only when the packet
 * has DF set; without DF the router may fragment, which vnet does not, and
 * -EMSGSIZE says to drop it instead. Return: the answer's length (header
 * included), or a negative errno.
 */
int vnet_icmp_too_big(const uint8_t *ip, size_t len, uint32_t mtu, const uint8_t from4[4],
		      const uint8_t from6[16], uint8_t out[VNET_ICMP_MAX]);

#endif
