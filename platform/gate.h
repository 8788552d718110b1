/* Private to the transports: the tcp listener's token check, run for many connections at once. */
#ifndef VB_PLATFORM_GATE_H
#define VB_PLATFORM_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/list.h"
#include "platform/loop.h"
#include "platform/transport.h"

/*
 * The most connections one listener lets hold a handshake at once. Each one
 * costs a descriptor and a small object until its deadline, so an attacker
 * who can reach the port must not be able to make them grow without bound;
 * past this count the oldest is dropped (platform/gate.c says why the oldest).
 * 64 is far more than the honest clients that dial within one deadline.
 */
#define GATE_HANDSHAKES_MAX 64
#define GATE_LINE_MAX	    80 /* the token line "VMBUSIFY-TOKEN <token>\n" at its longest */
#define GATE_TEXT_MAX	    300

/* The pre-authentication side of one tcp listener; embedded in the platform's listener. */
struct gate {
	pl_fd lfd;		/* the listening socket */
	struct loop *loop;	/* the loop of the first accept; every accept must use it */
	struct list handshakes; /* reading their token line, the oldest first */
	struct list ending;	/* failed, dropped or done: waiting for their requests */
	struct list ready;	/* authenticated, waiting for the next accept */
	unsigned nhandshakes;	/* on handshakes: what GATE_HANDSHAKES_MAX bounds */
	unsigned nobjs;		/* on any of the three lists: not yet freed */
	struct transport_accept_req *waiter; /* the caller's pending accept, or NULL */
	bool draining;			     /* a cancel: free everything, then complete it */
	uint8_t line[GATE_LINE_MAX];	     /* the token line a client must send */
	size_t want;			     /* its length */
	uint32_t timeout_ms;		     /* how long a client has to send it */
	char text[GATE_TEXT_MAX];	     /* the listener's address, for log lines */
};

/* Makes g empty; before anything else, so that gate_close() works whenever the listener closes. */
void gate_init(struct gate *g);
/* Sets g to accept on lfd; line (want bytes) is the token line to expect, text names the listener.
 */
void gate_configure(struct gate *g, pl_fd lfd, const uint8_t *line, size_t want,
		    uint32_t timeout_ms, const char *text);
/* transport_accept() for tcp: see platform/transport.h. */
int gate_accept(struct gate *g, struct loop *l, struct transport_accept_req *ar);
/* transport_accept_cancel() for tcp. */
void gate_cancel(struct gate *g, struct transport_accept_req *ar);
/* Frees what transport_listener_close() finds; the loop must still exist. */
void gate_close(struct gate *g);

/* Written by each platform's transport.c: the gate of a tcp listener. */
struct gate *transport_listener_gate(struct transport_listener *tl);

#endif
