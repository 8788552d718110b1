/* Asynchronous name resolution on an event loop (c-ares), for the names guests ask the host for. */
#ifndef VB_PROXY_RESOLVE_H
#define VB_PROXY_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "platform/loop.h"
#include "platform/net.h"

/*
 * One resolver per loop, used only on that loop's thread. It reads the
 * system's configuration as the C library would (/etc/resolv.conf, which
 * `ip netns exec` replaces with /etc/netns/NS/resolv.conf, and /etc/hosts),
 * and waits for its sockets and timeouts with loop_poll() and loop_timer(),
 * so no loop ever blocks on DNS.
 *
 * Results: 0 and the addresses (IPv4 and IPv6, at most RESOLVE_ADDRS_MAX,
 * in the resolver's order: getaddrinfo()'s RFC 6724 sort, which keeps the
 * answer's order among equals, as for the A records of one name), or a
 * negative errno:
 *   -ENXIO      no such name, or no address for it (NXDOMAIN, NODATA; the
 *               project's code for a name that does not resolve, core/err.c)
 *   -ETIMEDOUT  no server answered in time
 *   -EAGAIN     a server failed (SERVFAIL, REFUSED) or none could be reached
 *   -EPROTO     a malformed answer
 *   -EINVAL     not a host name (checked before anything is sent)
 *   -ENOMEM, -ECANCELED (the resolver was closed), -EIO (anything else)
 * An IP literal ("192.0.2.1", "::1", "[::1]") is answered without DNS.
 */

#define RESOLVE_ADDRS_MAX   32
#define RESOLVE_PENDING_MAX 4096 /* requests in flight per resolver */

struct resolver;
struct resolve_req;

/*
 * A result for ctx: addrs (n of them, ports 0) is valid only during the
 * call. It runs on the loop, never inside resolve_start(), at most once.
 */
typedef void (*resolve_cb)(void *ctx, int res, const struct net_addr *addrs, int n);

struct resolve_opts {
	/* Servers instead of resolv.conf's: "127.0.0.1:5353,[::1]:53" (c-ares CSV form). */
	const char *servers;
	const char *resolv_conf; /* another resolv.conf; NULL: the system's */
	uint32_t timeout_ms;	 /* first try's timeout; 0: resolv.conf's (5 s by default) */
	int tries;		 /* tries per server; 0: resolv.conf's (attempts, 3 by default) */
	bool no_hosts_file;	 /* ask DNS only, not /etc/hosts */
};

/*
 * Calls the resolver library's process-wide set-up. Call once from main()
 * before starting threads. Returns 0 or -ENOMEM.
 */
int resolve_global_init(void);

/*
 * resolver_new() - a resolver for loop l.
 * @o: NULL for the system's configuration.
 * Return: 0 and *out (closed with resolver_close()), or a negative errno
 * with a one-line reason in why (a bad server list, say).
 */
int resolver_new(struct loop *l, const struct resolve_opts *o, struct resolver **out, char *why,
		 size_t whylen);

/*
 * resolver_close() - stops r. Every request not yet answered nor cancelled
 * gets its callback with -ECANCELED inside this call. The memory goes once
 * the loop has completed r's own polls and timers; then on_closed(arg) runs
 * on the loop (never inside this call), if given. Safe inside a resolve_cb.
 */
void resolver_close(struct resolver *r, void (*on_closed)(void *arg), void *arg);

/*
 * resolve_start() - resolves name on r's loop.
 * Return: 0, with *handle (may be NULL) valid until the callback runs or
 * resolve_cancel(); or a negative errno (-EINVAL for a name that is not a
 * host name, -EAGAIN past RESOLVE_PENDING_MAX, -ENOMEM, -ESHUTDOWN after
 * resolver_close()) and cb will not run.
 */
int resolve_start(struct resolver *r, const char *name, resolve_cb cb, void *ctx,
		  struct resolve_req **handle);

/*
 * resolve_cancel() - the owner gives up: cb will not run, and ctx is not
 * touched again. Only before cb has run. The query itself may go on inside
 * the resolver, which frees the request when it ends.
 */
void resolve_cancel(struct resolve_req *q);

/* The requests in flight (including cancelled ones the resolver still holds), for tests. */
size_t resolver_pending(const struct resolver *r);

#endif
