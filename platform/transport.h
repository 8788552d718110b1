/* Channel transports: listen, accept and dial the addresses of core/uri.h on a loop. */
#ifndef VB_PLATFORM_TRANSPORT_H
#define VB_PLATFORM_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>
#include "core/uri.h"
#include "platform/loop.h"

/* What a transport promises; the session's framing respects it. */
struct transport_info {
	size_t max_write;	/* largest single write the transport takes reliably */
	bool single_connection; /* serial: one byte stream, no accept */
	bool stream_oriented;	/* always true today */
};

void transport_info_get(const struct uri *u, struct transport_info *out);

/* Options that some transports need. */
struct transport_opts {
	const char *token_file; /* tcp: a file holding the shared secret (required) */
	uint32_t connect_timeout_ms;
};

/*
 * A listener. For stream transports it accepts connections; for a single
 * connection transport (serial) "accepting" opens the device once and hands
 * it out, and again after the previous connection was closed.
 */
struct transport_listener;

/* Binds and listens; for unix, an existing stale socket file is replaced. */
int transport_listen(const struct uri *u, const struct transport_opts *o,
		     struct transport_listener **out, char *why, size_t whylen);
/*
 * Closes the listener. Call it when no accept is pending (its callback has
 * run), or once its loop runs no more; the loop must still exist. tcp:
 * authenticated connections that wait for an accept are closed, and the
 * handshakes in progress are cancelled and free themselves as their
 * requests complete on the loop.
 */
void transport_listener_close(struct transport_listener *tl);
pl_fd transport_listener_fd(const struct transport_listener *tl);

struct transport_accept_req;
typedef void (*transport_accept_cb)(struct transport_accept_req *ar, int res, pl_fd fd);
struct transport_accept_req {
	transport_accept_cb cb;
	void *data;
	/* private: */
	struct loop_req req;
	struct transport_listener *tl;
	struct loop *loop;
	pl_fd fd;
	struct loop_req timer; /* serial: the far end's poll; tcp: hands over a ready connection */
	int pending;	       /* bitmask: which of req and timer are submitted */
	int result;
};
/*
 * Accepts one connection and calls cb on the loop with res 0 and a connected
 * non-blocking descriptor the caller owns, or res < 0 (the kernel accept
 * failed, or the accept was cancelled). Returns 0 when cb will run, or a
 * negative errno (and cb will not run).
 *
 * tcp: cb gets only connections that sent the right token. Each connection
 * sends it on its own, under its own deadline, while the listener accepts
 * the next; failed ones are closed and logged, never reported here, and
 * connections authenticated while no accept is pending wait for the next
 * one. Every accept of a tcp listener must use the same loop, one at a time.
 */
int transport_accept(struct loop *l, struct transport_listener *tl, struct transport_accept_req *ar,
		     transport_accept_cb cb);
/*
 * Makes a pending accept complete soon with -ECANCELED (or its real result,
 * if that won). tcp: every handshake in progress and every connection
 * waiting for an accept is closed and freed before cb runs.
 */
void transport_accept_cancel(struct transport_accept_req *ar);

struct transport_dial_req;
typedef void (*transport_dial_cb)(struct transport_dial_req *dr, int res, pl_fd fd);
struct transport_dial_req {
	transport_dial_cb cb;
	void *data;
	/* private: */
	struct loop_req req;
	struct loop_req timer;
	struct loop *loop;
	struct uri uri;
	pl_fd fd;
	uint8_t buf[80];
	size_t have;
	size_t sent;
	int state;
	int pending;
	int result;
	char why[256];	     /* room for hvsock://NAME lookups, whose reasons are long */
	size_t want;	     /* length of the handshake line to send */
	uint32_t timeout_ms; /* the whole dial's deadline */
};
/*
 * Dials u asynchronously: connect, then the transport's own handshake (hybrid:
 * "CONNECT <port>\n" answered by "OK <n>\n"; tcp: the token). cb gets res 0
 * and a connected non-blocking descriptor the caller owns, or res < 0 with a
 * one-line reason in dr->why. Returns 0 when cb will run, or a negative errno
 * with the reason in dr->why when the dial could not start (cb will not run).
 */
int transport_dial(struct loop *l, const struct uri *u, const struct transport_opts *o,
		   struct transport_dial_req *dr, transport_dial_cb cb);
/* Makes a pending dial complete soon with -ECANCELED (or its real result, if that won). */
void transport_dial_cancel(struct transport_dial_req *dr);
/* The same, blocking, for command-line tools before any loop runs. */
int transport_dial_sync(const struct uri *u, const struct transport_opts *o, pl_fd *out, char *why,
			size_t whylen);

void transport_close_fd(pl_fd fd);

#endif
