/* The VM's end of vnet: a TUN device whose packets travel on one VNET stream to the host. */
#ifndef VB_VNET_AGENT_H
#define VB_VNET_AGENT_H

#include <stdint.h>
#include "core/runtime.h"
#include "core/session.h"

struct vnet_agent_cfg {
	char tun[16]; /* the device's name: "vmbus0" */
	uint32_t mtu; /* the largest packet the VM takes: 65520 */
};

/*
 * On the session's loop: attaches the VM over session s (a daemon's). When
 * the host answers with a lease, the TUN device is made, given the lease's
 * addresses, routes and MTU, and brought up; packets then flow until the
 * stream ends (the session is lost, or the host detaches it), when the
 * device goes away with everything it held. A host without vnet refuses
 * the stream, and nothing happens. Returns 0 or a negative errno.
 */
int vnet_agent_attach(struct rt_loop *rl, struct session *s, const struct vnet_agent_cfg *cfg);

#endif
