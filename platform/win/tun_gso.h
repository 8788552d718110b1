/* Private to platform/win: the offloads of a written frame done in software, for a TUN that takes
 * plain IP packets only (Wintun). */
#ifndef VB_PLATFORM_WIN_TUN_GSO_H
#define VB_PLATFORM_WIN_TUN_GSO_H

#include <stddef.h>
#include <stdint.h>

/* Called with each finished packet; returns 0 to go on, or a negative errno to stop. */
typedef int (*tun_gso_emit_fn)(void *arg, const uint8_t *pkt, size_t len);

/*
 * tun_gso_split() - turns one frame (the 12-byte offload header of
 * platform/tun.h and an IP packet) into the plain IP packets it stands for
 * @frame, @len: the frame, as a VM wrote it (checked here again: nothing in
 *	it is trusted)
 * @scratch: room for one packet (TUN_PACKET_MAX bytes), the caller's
 *
 * No offload: the packet as it is. NEEDS_CSUM alone: the checksum is
 * finished (the field holds the pseudo-header's sum, as Linux leaves it).
 * GSO (TCP over IPv4 or IPv6, USO): cut into segments of gso_size payload
 * bytes, each with its own IP length, IPv4 id and header checksum, TCP
 * sequence number (FIN and PSH on the last segment only, CWR on the first
 * only) or UDP length, and a full transport checksum. The transport header
 * is found at csum_start; IPv6 extension headers are not walked (such a
 * frame is -EOPNOTSUPP). emit is called once per packet, from inside.
 * Return: the packets emitted, or a negative errno (-EINVAL: a bad frame,
 * -EOPNOTSUPP, or emit's error).
 */
int tun_gso_split(const uint8_t *frame, size_t len, uint8_t *scratch, tun_gso_emit_fn emit,
		  void *arg);

#endif
