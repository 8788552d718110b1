/*
 * vmbusify-agent's wiring: listeners on the channel, sessions on the loops,
 * streams to services, the VM's proxy port. Shared by the Linux agent
 * (cmd/main_vmbusify_agent.c) and the Windows one (main_vmbusify_agent_win.c).
 */
#ifndef VB_CMD_AGENT_H
#define VB_CMD_AGENT_H

#include <pthread.h>
#include "core/runtime.h"
#include "platform/transport.h"
#include "proxy/front.h"
#include "proxy/tcp_srv.h"
#include "vnet/agent.h"

#define AGENT_MAX_LISTEN 8

struct agent_listener {
	struct agent *a;
	struct uri uri;
	char text[300];
	struct transport_listener *tl;
	struct transport_accept_req acc;
	struct rt_loop *home;
	struct loop_req retry; /* accepting again after running out of descriptors */
	bool single;	       /* serial: accept again only after the session ended */
};

/*
 * The host's session that egress connections go out on: the latest session
 * from a daemon. Set and cleared on that session's loop; read from the
 * proxy's accepting loop, hence the lock.
 */
struct agent_uplink {
	pthread_mutex_t lock;
	struct rt_loop *rl;
	struct link *lk;
};

struct agent {
	struct runtime rt;
	struct transport_opts topts;
	struct agent_listener listeners[AGENT_MAX_LISTEN];
	int nlisteners;
	struct tcp_srv_env tcp_env; /* ingress: the host has the agent dial inside the VM */
	struct agent_uplink uplink;
	struct front *proxy; /* egress: the VM's programs reach out through the host */
	const char *name;    /* in HELLO: "vmbusify-agent <version>" unless the main says more */
	bool vnet;	     /* attach to the host's vnet when a daemon's session comes */
	struct vnet_agent_cfg vnet_cfg;
	/*
	 * How to attach (vnet_agent_attach); NULL where the agent has no vnet
	 * (Windows: no TUN device yet), and then vnet is never tried.
	 */
	int (*vnet_attach)(struct rt_loop *rl, struct session *s, const struct vnet_agent_cfg *cfg);
};

/* Zeroes a and makes its loops (not started); returns 0 or a negative errno. */
int agent_init(struct agent *a, int threads, enum loop_backend backend, const char *token_file);
/* Parses and binds uri now, so that errors show before the agent goes to the background. */
int agent_listen(struct agent *a, const char *uri, char *why, size_t whylen);
/*
 * Opens the VM's proxy port on each of addrs (SOCKS5, SOCKS4/4a, HTTP); with
 * optional, addresses that cannot be bound are skipped with a warning.
 * Returns 0, or a negative errno with a reason.
 */
int agent_proxy(struct agent *a, const struct net_addr *addrs, int n, bool optional, char *why,
		size_t whylen);
int agent_start(struct agent *a, char *why, size_t whylen);
void agent_stop(struct agent *a);

#endif
