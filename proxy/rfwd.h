/* The VM's end of a remote forward (-R): a port in the VM whose connections go to the host. */
#ifndef VB_PROXY_RFWD_H
#define VB_PROXY_RFWD_H

#include "core/runtime.h"
#include "core/session.h"
#include "proxy/tcp_msg.h"

/*
 * Serves a pending LISTEN stream on loop rl: listens on req's address in
 * the VM and accepts the stream with the bound address, or refuses it.
 * Every connection to the port becomes a FORWARDED stream with req's id on
 * the same session; the port closes when the stream ends (the host removed
 * the forward, or the session is gone).
 */
void rfwd_serve(struct runtime *rt, struct rt_loop *rl, struct stream *st,
		const struct tcp_req *req);

#endif
