/* Fuzz target: what the host applies to a VM's vnet packets, and the attach codecs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "vnet/icmp.h"
#include "vnet/msg.h"
#include "vnet/pkt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct vnet_src fuzz_src = {
    .addr4 = {10, 77, 0, 2},
    .has6 = true,
    .addr6 = {0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2},
};

/*
 * Byte 0 picks: 0 a packet with the offload header, 1 without, 2 the attach
 * request, 3 the lease. An accepted packet must hold what the check promises.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vnet_pkt k;
	struct vnet_req q;
	struct vnet_lease_msg m;
	uint8_t out[VNET_LEASE_LEN];
	static uint8_t icmp[VNET_ICMP_MAX];
	char why[128];
	size_t hdr;

	if (size < 1)
		return 0;
	switch (data[0] & 3) {
	case 0:
	case 1:
		hdr = (data[0] & 3) == 0 ? VNET_HDR_LEN : 0;
		if (vnet_pkt_check(data + 1, size - 1, hdr, 1500 + (data[0] >> 2) * 1000, &fuzz_src,
				   &k, why, sizeof(why)) == 0) {
			if (k.ip != data + 1 + hdr || k.ip_len != size - 1 - hdr)
				abort();
			if (k.family == 4 && memcmp(k.src, fuzz_src.addr4, 4))
				abort();
			if (k.family == 6 && memcmp(k.src, fuzz_src.addr6, 16))
				abort();
			/* Any accepted packet may meet a smaller MTU on its way. */
			int n = vnet_icmp_too_big(k.ip, k.ip_len, 1280, fuzz_src.addr4,
						  fuzz_src.addr6, icmp);
			if (n > (int)VNET_ICMP_MAX)
				abort();
		}
		break;
	case 2:
		if (vnet_req_decode(data + 1, size - 1, &q) == 0) {
			vnet_req_encode(&q, out);
			if (memcmp(out, data + 1, VNET_REQ_LEN))
				abort();
		}
		break;
	default:
		if (vnet_lease_decode(data + 1, size - 1, &m) == 0) {
			vnet_lease_encode(&m, out);
			if (memcmp(out, data + 1, VNET_LEASE_LEN))
				abort();
		}
	}
	return 0;
}
