/* Dialing out: connect to each address of a list in turn, with a deadline per attempt. */
#ifndef VB_PROXY_DIAL_H
#define VB_PROXY_DIAL_H

#include <stddef.h>
#include <stdint.h>
#include "platform/loop.h"
#include "platform/net.h"

#define DIAL_ADDRS_MAX 16

struct dial;
/* res 0 and a connected non-blocking fd the callee owns, or res < 0 (the last attempt's error). */
typedef void (*dial_cb)(struct dial *d, int res, pl_fd fd);

struct dial {
	dial_cb cb;
	void *data;
	/* private: */
	struct loop *loop;
	struct net_addr addrs[DIAL_ADDRS_MAX];
	int naddrs, next;
	uint32_t attempt_ms;
	pl_fd fd;
	struct loop_req conn, timer;
	int pending;
	int last_err;
	bool cancelled, timed_out, done, starting;
};

/*
 * Connects to addrs[0..n) in order (at most DIAL_ADDRS_MAX are tried), each
 * attempt bounded by attempt_ms; cb runs once, on the loop. The struct must
 * stay put until then. Returns 0, or a negative errno (cb will not run).
 */
int dial_start(struct loop *l, struct dial *d, const struct net_addr *addrs, int n,
	       uint32_t attempt_ms, dial_cb cb);
/* The owner gives up: cb runs soon with -ECANCELED (or the connection, if it won the race). */
void dial_cancel(struct dial *d);

#endif
