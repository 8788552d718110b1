/* A proxy front: a local SOCKS5/SOCKS4/HTTP port whose connections become TCP streams. */
#ifndef VB_PROXY_FRONT_H
#define VB_PROXY_FRONT_H

#include <stddef.h>
#include <stdint.h>
#include "core/runtime.h"
#include "core/session.h"
#include "platform/net.h"
#include "proxy/socks.h"
#include "proxy/tcp_msg.h"

/*
 * Used on both ends: the agent's port carries a VM's programs out through
 * the host (egress), the daemon's port carries the host's programs into
 * VMs (ingress). What differs is where a request goes, which the owner
 * decides with two hooks.
 */
struct front_ops {
	/*
	 * On the accepting loop's thread: turns the client's request (NULL on a
	 * raw port) into a TCP request and names the loop whose session will
	 * carry it; client is the client's address. Returns 0, or a negative
	 * errno for the client (-EPERM: not allowed, -EHOSTUNREACH: no such VM)
	 * with a one-line reason.
	 */
	int (*route)(void *arg, const struct socks_req *sr, const struct net_addr *client,
		     struct tcp_req *out, struct rt_loop **rl, char *why, size_t whylen);
	/* On rl's thread: the session to open the stream on, or NULL when it is down. */
	struct session *(*session)(void *arg, struct rt_loop *rl, const struct tcp_req *req);
	/* Optional: the front is gone after front_close(); no hook runs any more. */
	void (*on_freed)(void *arg);
};

#define FRONT_LISTEN_MAX 4

struct front_config {
	const char *who;      /* in log lines: "egress", "ingress" */
	struct rt_loop *home; /* the accepting loop; NULL: the runtime's first */
	/*
	 * A raw port (a forward): no handshake, every connection goes where
	 * route says; a failure closes it with an RST.
	 */
	bool raw;
	struct net_addr listen[FRONT_LISTEN_MAX];
	int nlisten;
	struct socks_opts socks;
	uint32_t handshake_timeout_ms; /* 0: 30 s */
	bool optional; /* an address that cannot be bound is skipped with a warning */
	/*
	 * Only root and members of this group may connect (the connecting
	 * socket's owner, looked up in the kernel; on Windows its process's
	 * token: Administrators, Hyper-V Administrators or this group, see
	 * net_peer_allowed()); NULL: anyone who can reach the port.
	 */
	const char *group;
};

struct front;

/*
 * Binds the listeners now (so errors show at start) and accepts on the
 * runtime's first loop once it runs. Returns 0, or a negative errno with a
 * one-line reason (optional: when no address could be bound).
 */
int front_new(struct front **out, struct runtime *rt, const struct front_config *cfg,
	      const struct front_ops *ops, void *arg, char *why, size_t whylen);
/* Starts accepting; call before runtime_start() or from any thread after it. */
int front_start(struct front *f);
/*
 * On the home loop: stops accepting and closes the listeners; f is freed
 * once its last connection has been handed over or failed. No hook runs for
 * connections that arrive later; those in progress still call them.
 */
void front_close(struct front *f);
/* After runtime_stop(): closes the listeners and frees f (connections die with the loops). */
void front_free(struct front *f);
/* The address a listener is bound to (a port 0 made concrete). */
int front_bound(const struct front *f, int i, struct net_addr *out);

#endif
