/* The VM's end of a remote forward: listen while the host's LISTEN stream lives. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/rfwd.h"
#include "core/log.h"
#include "proxy/front.h"

/*
 * One rfwd per LISTEN stream. Its raw front accepts on the stream's loop;
 * each connection is routed to the same loop and opened as FORWARDED on
 * the stream's session. The stream ending (FIN or RESET, or its session's
 * end) closes the front; the rfwd is freed when the front is, since
 * connections in progress still ask it for the session (none, by then).
 */

struct rfwd {
	struct rt_loop *rl;
	struct stream *st; /* NULL once it ended */
	struct front *front;
	uint32_t id;
};

static int rfwd_route(void *arg, const struct socks_req *sr, const struct net_addr *client,
		      struct tcp_req *out, struct rt_loop **rl, char *why, size_t whylen)
{
	struct rfwd *r = arg;

	memset(out, 0, sizeof(*out));
	out->cmd = TCP_FORWARDED;
	out->id = r->id;
	out->to.addr = *client;
	out->to.port = client->port;
	*rl = r->rl;
	return 0;
}

static struct session *rfwd_session(void *arg, struct rt_loop *rl, const struct tcp_req *req)
{
	struct rfwd *r = arg;

	return r->st ? stream_session(r->st) : NULL;
}

static void rfwd_freed(void *arg)
{
	free(arg);
}

static const struct front_ops rfwd_front_ops = {
    .route = rfwd_route,
    .session = rfwd_session,
    .on_freed = rfwd_freed,
};

static void rfwd_end(struct rfwd *r)
{
	if (!r->st)
		return;
	vb_info("forward %u: the host closed it", r->id);
	stream_release(r->st);
	r->st = NULL;
	front_close(r->front);
}

static void rfwd_on_fin(struct stream *st)
{
	rfwd_end(stream_ctx(st));
}

static void rfwd_on_reset(struct stream *st, int err)
{
	rfwd_end(stream_ctx(st));
}

static void rfwd_on_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	/* A LISTEN stream carries no data: a peer that sends some is wrong. */
	stream_consumed(st, len);
	stream_reset(st, -EPROTO);
	rfwd_end(stream_ctx(st));
}

static const struct stream_ops rfwd_stream_ops = {
    .on_data = rfwd_on_data,
    .on_fin = rfwd_on_fin,
    .on_reset = rfwd_on_reset,
};

void rfwd_serve(struct runtime *rt, struct rt_loop *rl, struct stream *st,
		const struct tcp_req *req)
{
	struct front_config cfg = {.who = "forward", .home = rl, .raw = true, .nlisten = 1};
	uint8_t reply[TCP_REPLY_MAX];
	struct tcp_reply rep;
	struct rfwd *r;
	char why[200], text[NET_ADDR_STRLEN];
	int n, ret;

	if (req->cmd != TCP_LISTEN || !req->to.addr.family) {
		stream_refuse(st, -EOPNOTSUPP, "the agent takes LISTEN for forwards, not this");
		return;
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		stream_refuse(st, -ENOMEM, "out of memory");
		return;
	}
	r->rl = rl;
	r->id = req->id;
	cfg.listen[0] = req->to.addr;
	cfg.listen[0].port = req->to.port;
	ret = front_new(&r->front, rt, &cfg, &rfwd_front_ops, r, why, sizeof(why));
	if (ret) {
		stream_refuse(st, ret, why);
		free(r);
		return;
	}
	memset(&rep, 0, sizeof(rep));
	front_bound(r->front, 0, &rep.local);
	rep.peer.family = rep.local.family;
	n = tcp_reply_encode(&rep, reply);
	if (n < 0 || stream_accept(st, reply, (size_t)n, &rfwd_stream_ops, r)) {
		front_close(r->front); /* frees r */
		stream_refuse(st, -ECANCELED, "cancelled");
		return;
	}
	r->st = st;
	front_start(r->front);
	vb_info("forward %u: listening on %s", r->id, net_addr_format(&rep.local, true, text));
}
