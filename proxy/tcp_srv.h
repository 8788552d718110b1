/* Serving TCP streams: check, resolve and dial the destination, answer, then pump. */
#ifndef VB_PROXY_TCP_SRV_H
#define VB_PROXY_TCP_SRV_H

#include <stddef.h>
#include <stdint.h>
#include "core/session.h"
#include "platform/loop.h"
#include "platform/net.h"
#include "proxy/tcp_msg.h"

typedef void (*tcp_resolved_fn)(void *ctx, int res, const struct net_addr *addrs, int n);

/*
 * What the side that dials provides; every hook is optional. The agent
 * dials inside its VM for the host, which it trusts: no policy. The daemon
 * dials the outside for a guest, which it does not: every hook is set.
 * The env outlives every stream served with it.
 */
struct tcp_srv_env {
	const char *who; /* in log lines: the VM's name, or "agent" */
	uint32_t connect_timeout_ms;
	/* 0, or -EPERM with a one-line reason (name checks come before resolving). */
	int (*check_name)(void *arg, const char *name, uint16_t port, char *why, size_t whylen);
	/* name: what a resolved to, or NULL for an address the opener gave. */
	int (*check_addr)(void *arg, const char *name, const struct net_addr *a, char *why,
			  size_t whylen);
	/* A connection begins: 0, or a negative errno past a limit; each 0 is ended once. */
	int (*conn_begin)(void *arg);
	void (*conn_end)(void *arg);
	/*
	 * Resolves name on loop l: 0 and done(ctx, ...) runs later on the loop
	 * (res 0 with the addresses, or -ENXIO, -ETIMEDOUT ...), with *handle
	 * for cancelling; or a negative errno (done will not run). Without it
	 * only IP literals are served.
	 */
	int (*resolve)(void *arg, struct loop *l, const char *name, tcp_resolved_fn done, void *ctx,
		       void **handle);
	void (*resolve_cancel)(void *arg, void *handle);
	/*
	 * LISTEN and FORWARDED requests (forwards): the owner serves the
	 * pending stream. NULL: they are refused as UNSUPPORTED.
	 */
	void (*serve_forward)(void *arg, struct loop *l, struct stream *st,
			      const struct tcp_req *req);
	void *arg;
};

/* Serves a pending TCP stream on loop l: accepts it once connected, or refuses it. */
void tcp_serve(struct loop *l, struct stream *st, const uint8_t *req, size_t len,
	       const struct tcp_srv_env *env);
/* The same for a CONNECT request the caller decided itself (a forward's own target). */
void tcp_serve_connect(struct loop *l, struct stream *st, const struct tcp_req *req,
		       const struct tcp_srv_env *env);

#endif
