/* A pump splices a connected socket and a session stream on one loop: the proxy's data path. */
#ifndef VB_PROXY_PUMP_H
#define VB_PROXY_PUMP_H

#include <stddef.h>
#include <stdint.h>
#include "core/session.h"
#include "platform/loop.h"

struct pump;

struct pump_opts {
	/* Bytes for the socket before anything from the stream (a SOCKS or HTTP reply); copied. */
	const void *to_sock;
	size_t to_sock_len;
	/* Bytes for the stream before anything from the socket (a client's early data); copied. */
	const void *to_stream;
	size_t to_stream_len;
	/*
	 * The pump is over and freed: err 0 when both directions ended with
	 * FIN, else why it was aborted. Optional; runs on the loop.
	 */
	void (*on_end)(void *arg, int err, uint64_t to_stream, uint64_t to_sock);
	void *arg;
};

/*
 * Takes fd (connected, non-blocking) and st (open: accepted, or answered)
 * and moves bytes both ways until both ends said FIN, or either aborted:
 * an RST from the socket resets the stream, a RESET from the stream closes
 * the socket with an RST. From now on the pump owns both; st's callbacks
 * come to the pump, so call this before returning to the loop after the
 * stream was answered. Returns 0, or a negative errno (fd is closed and st
 * reset and released).
 */
int pump_start(struct pump **out, struct loop *l, pl_fd fd, struct stream *st,
	       const struct pump_opts *o);
/* Aborts: the stream is reset, the socket closed with an RST; on_end follows. */
void pump_abort(struct pump *p, int err);

#endif
