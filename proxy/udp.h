/* UDP over the channel: SOCKS5 UDP ASSOCIATE in the VM, a UDP relay on the host. */
#ifndef VB_PROXY_UDP_H
#define VB_PROXY_UDP_H

#include <stddef.h>
#include <stdint.h>
#include "core/session.h"
#include "platform/loop.h"
#include "proxy/tcp_msg.h"
#include "proxy/tcp_srv.h"

/*
 * Serves a pending UDP stream (TCP kind, cmd UDP, DGRAM flag) on loop l:
 * the host's end of an association. Each datagram from the stream goes to
 * the destination its header names, under env's policy and limits (one
 * association counts as one connection); datagrams come back only from
 * destinations the association has sent to, as a port-restricted NAT does.
 */
void udp_serve(struct loop *l, struct stream *st, const struct tcp_req *req,
	       const struct tcp_srv_env *env);

/*
 * The VM's end, once the host accepted the stream: ctl is the client's
 * SOCKS5 TCP connection (the association lives as long as it does), udp the
 * socket the client was told to send to, reply the SOCKS5 answer still to
 * be written on ctl, client the client's address (datagrams from any other
 * IP are dropped). Takes ctl, udp and st; returns 0, or a negative errno
 * after closing everything.
 */
int udp_assoc_start(struct loop *l, pl_fd ctl, pl_fd udp, struct stream *st, const uint8_t *reply,
		    size_t reply_len, const struct net_addr *client);

#endif
