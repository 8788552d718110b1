/* The host's end of vnet on Windows: not built yet (it needs Wintun); every entry point says so. */
#include <errno.h>
#include <stddef.h>
#include "vnet/router.h"
#include "core/strbuf.h"
#include "core/why.h"

/*
 * The router (vnet/router.c) needs a TUN device, addresses and routes, and
 * NAT: platform/tun.h, netcfg.h and nat.h, none of which platform/win has yet
 * (docs/architecture.md designs them over Wintun and WinNAT). Until then
 * vmbusifyd.exe refuses a configuration with a [vnet] section at start with
 * this one line, and the daemon's other callers never reach a router: they
 * look at d->vnet, which stays NULL.
 */

int vnet_router_new(struct vnet_router **out, struct runtime *rt, const struct vnet_router_cfg *cfg,
		    char *why, size_t whylen)
{
	*out = NULL;
	return why_set(why, whylen, -EOPNOTSUPP, "not available on Windows yet (needs Wintun)");
}

int vnet_router_start(struct vnet_router *r)
{
	return -EOPNOTSUPP;
}

void vnet_router_free(struct vnet_router *r)
{
}

/* Unreachable without a router; refuses the stream should a caller get here anyway. */
void vnet_router_attach(struct vnet_router *r, struct rt_loop *rl, const char *vm,
			bool default_route, uint32_t metric, struct stream *st, const uint8_t *req,
			size_t len)
{
	stream_refuse(st, -EOPNOTSUPP, "vnet is not available on Windows hosts yet");
}

void vnet_router_status(struct vnet_router *r, bool json, struct strbuf *out)
{
}
