/* The proxy front: accept, handshake, open a TCP stream, answer, then hand over to a pump. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/front.h"
#include "core/kinds.h"
#include "core/log.h"
#include "platform/sys.h"
#include "proxy/pump.h"
#include "proxy/udp.h"

/*
 * Theory of operation
 *
 * One front_client per accepted connection, in these states:
 *
 *   CHECKING   a front with a group only: the connecting socket's owner is
 *              looked up (net_peer_allowed()); refused, the socket is reset.
 *              An owner not known yet (-EAGAIN: Wine only, see
 *              platform/net.h) is looked up again on a loop timer, every
 *              FRONT_PEER_RETRY_MS up to FRONT_PEER_TRIES times, so the
 *              loop never waits for it. Linux and Windows answer at once.
 *   HANDSHAKE  on the accepting loop: read what the client sends and feed it
 *              to the handshake (proxy/socks.h); write its replies (SOCKS5
 *              method choice, authentication status). A deadline bounds it.
 *   ROUTED     the request is a TCP request now; the client moves to the
 *              loop of the session that will carry it (loop_post).
 *   OPENING    a TCP stream is open and waits for the far end to dial.
 *   answered   success: the protocol's answer and the client's early bytes
 *              go to a pump, which owns socket and stream from then on, and
 *              the client struct is freed. Failure: the answer (a SOCKS
 *              code, an HTTP status) is written, then the socket closed.
 *
 * The handshake state (about 34 KiB, for HTTP heads) lives only until the
 * answer: an established connection costs the pump and its stream only.
 * Every loop request is counted in pending; the client is freed when it is
 * done and nothing is in flight.
 */

#define FRONT_RD_SIZE	    4096
#define FRONT_PEER_RETRY_MS 10
#define FRONT_PEER_TRIES    20 /* 200 ms: Wine's table names the owner well within it */

struct front_listener {
	struct front *f;
	pl_fd fd;
	bool armed; /* acc is in flight */
	struct loop_req acc;
	struct net_addr addr;
};

struct front {
	struct runtime *rt;
	struct rt_loop *home;
	struct front_config cfg;
	const struct front_ops *ops;
	void *arg;
	struct front_listener l[FRONT_LISTEN_MAX];
	int n;
	int refs;     /* accepts in flight and clients alive; atomic: clients move between loops */
	bool closing; /* front_close(): no new connections */
};

struct front_client {
	struct front *f;
	struct net_addr client;
	struct loop *loop; /* the loop that owns the client now */
	pl_fd fd;
	struct socks_hs *hs;
	struct tcp_req req;
	struct rt_loop *rl;
	struct stream *st;
	struct loop_req rd, wr,
	    tmo; /* tmo: CHECKING's retry timer, then the handshake's deadline */
	int pending;
	int peer_tries; /* CHECKING's lookups so far */
	bool tmo_armed, routed, closing, done;
	uint8_t buf[FRONT_RD_SIZE];
	size_t early_len; /* bytes of buf[] after the request: the client's early data */
	const uint8_t *early;
	char target[300];
};

static void front_client_read(struct front_client *c);

static void front_put(struct front *f)
{
	if (__atomic_sub_fetch(&f->refs, 1, __ATOMIC_ACQ_REL) == 0 && f->closing) {
		for (int i = 0; i < f->n; i++)
			net_close(f->l[i].fd, false);
		if (f->ops->on_freed)
			f->ops->on_freed(f->arg);
		free(f);
	}
}
static void front_client_feed(struct front_client *c, const uint8_t *p, size_t n);

static void front_client_free_maybe(struct front_client *c)
{
	if (!c->done || c->pending)
		return;
	if (c->fd >= 0)
		net_close(c->fd, c->hs == NULL);
	free(c->hs);
	front_put(c->f);
	free(c);
}

/* Ends the client: the socket is closed once nothing is in flight. */
static void front_client_end(struct front_client *c)
{
	c->done = true;
	if (c->tmo_armed)
		loop_cancel(c->loop, &c->tmo);
	front_client_free_maybe(c);
}

static void front_client_fail_written(struct loop_req *r, int res)
{
	struct front_client *c = r->data;

	c->pending--;
	front_client_end(c);
}

/* Writes the handshake's answer (may be empty) and closes. */
static void front_client_fail(struct front_client *c, int err, const char *why)
{
	vb_dbg("%s: %s: %s", c->f->cfg.who, c->target[0] ? c->target : "client", why);
	if (!c->hs || !c->hs->out_len) {
		/* A raw port has no words for failure: the client sees an RST. */
		front_client_end(c);
		return;
	}
	c->closing = true;
	c->wr.data = c;
	c->pending++;
	if (loop_write(c->loop, &c->wr, c->fd, c->hs->out, c->hs->out_len,
		       front_client_fail_written)) {
		c->pending--;
		front_client_end(c);
	}
}

static void front_reply_fail(struct front_client *c, int err, const char *why)
{
	if (c->hs)
		socks_hs_reply(c->hs, err, NULL, why);
	front_client_fail(c, err, why);
}

/* ---- OPENING: the far end's answer ---- */

static void front_target_from(struct socks_target *t, const struct net_addr *a)
{
	memset(t, 0, sizeof(*t));
	t->atyp = a->family == NET_IPV6 ? SOCKS_ATYP_IPV6 : SOCKS_ATYP_IPV4;
	t->port = a->port;
	memcpy(t->ip, a->ip, a->family == NET_IPV6 ? 16 : 4);
}

static void front_start_pump(struct front_client *c, struct stream *st)
{
	const struct socks_req *sr = c->hs ? &c->hs->req : NULL;
	struct pump_opts po = {0};
	uint8_t *up = NULL;
	size_t uplen = sr && sr->proto == SOCKS_P_HTTP_FORWARD ? sr->upstream_len : 0;

	if (c->hs) {
		po.to_sock = c->hs->out;
		po.to_sock_len = c->hs->out_len;
	}
	if (uplen + c->early_len) {
		up = malloc(uplen + c->early_len);
		if (!up) {
			stream_reset(st, -ENOMEM);
			stream_release(st);
			front_reply_fail(c, -ENOMEM, "out of memory");
			return;
		}
		if (uplen)
			memcpy(up, sr->upstream, uplen);
		memcpy(up + uplen, c->early, c->early_len);
		po.to_stream = up;
		po.to_stream_len = uplen + c->early_len;
	}
	/* The pump owns the socket and the stream now, whatever it returns. */
	pump_start(NULL, c->loop, c->fd, st, &po);
	free(up);
	c->fd = -1;
	front_client_end(c);
}

/* UDP ASSOCIATE: a UDP socket beside the client's own address, and the association. */
static void front_start_udp(struct front_client *c, struct stream *st)
{
	struct net_addr local, bound;
	struct socks_target t;
	pl_fd udp = -1;
	int ret;

	ret = net_local_addr(c->fd, &local);
	if (!ret) {
		local.port = 0;
		ret = net_udp_socket(&local, &udp);
	}
	if (!ret)
		ret = net_local_addr(udp, &bound);
	if (ret) {
		net_close(udp, false);
		stream_reset(st, ret);
		stream_release(st);
		front_reply_fail(c, ret, "cannot open the UDP relay's socket");
		return;
	}
	front_target_from(&t, &bound);
	socks_hs_reply(c->hs, 0, &t, NULL);
	/* The association owns the TCP connection, the UDP socket and the stream now. */
	udp_assoc_start(c->loop, c->fd, udp, st, c->hs->out, c->hs->out_len, &c->client);
	c->fd = -1;
	front_client_end(c);
}

static void front_on_reply(struct stream *st, int err, const uint8_t *r, size_t len)
{
	struct front_client *c = stream_ctx(st);
	struct socks_target bound;
	struct tcp_reply rep;
	char why[200];

	c->st = NULL;
	if (err) {
		stream_release(st);
		/* A refusal's reply is the far end's reason. */
		if (len)
			snprintf(why, sizeof(why), "%.*s", (int)len, (const char *)r);
		else
			snprintf(why, sizeof(why), "%s", sys_strerror(err));
		front_reply_fail(c, err, why);
		return;
	}
	if (c->req.cmd == TCP_UDP) {
		front_start_udp(c, st);
		return;
	}
	if (tcp_reply_decode(r, len, &rep)) {
		stream_reset(st, -EPROTO);
		stream_release(st);
		front_reply_fail(c, -EPROTO, "malformed TCP reply");
		return;
	}
	front_target_from(&bound, &rep.local);
	if (c->hs)
		socks_hs_reply(c->hs, 0, &bound, NULL);
	front_start_pump(c, st);
}

static void front_on_reset(struct stream *st, int err)
{
	struct front_client *c = stream_ctx(st);

	c->st = NULL;
	stream_release(st);
	front_reply_fail(c, err ? err : -ECONNRESET, "the channel went away");
}

static const struct stream_ops front_open_ops = {
    .on_reply = front_on_reply,
    .on_reset = front_on_reset,
};

/* ---- ROUTED: on the session's loop ---- */

static void front_client_open(void *arg);

/* Hands the client to the session's loop; nothing of it is in flight here. */
static void front_client_move(struct front_client *c)
{
	if (loop_post(c->rl->loop, front_client_open, c))
		front_reply_fail(c, -ENOMEM, "cannot reach the session's loop");
}

static void front_client_open(void *arg)
{
	struct front_client *c = arg;
	struct session *s = c->f->ops->session(c->f->arg, c->rl, &c->req);
	uint8_t req[TCP_REQ_MAX];
	int n, ret;

	c->loop = c->rl->loop;
	if (!s) {
		front_reply_fail(c, -ENETUNREACH, "the VM's channel is down");
		return;
	}
	n = tcp_req_encode(&c->req, req);
	ret = n < 0 ? n
		    : stream_open(s, KIND_TCP, c->req.cmd == TCP_UDP ? FRAME_OPEN_DGRAM : 0, req,
				  (size_t)n, &front_open_ops, c, &c->st);
	if (ret)
		front_reply_fail(c, ret, sys_strerror(ret));
}

static void front_client_route(struct front_client *c)
{
	const struct front *f = c->f;
	char why[200] = "";
	int ret;

	ret = f->ops->route(f->arg, c->hs ? &c->hs->req : NULL, &c->client, &c->req, &c->rl, why,
			    sizeof(why));
	if (ret) {
		front_reply_fail(c, ret, why[0] ? why : sys_strerror(ret));
		return;
	}
	if (c->hs && c->hs->req.cmd == SOCKS_CMD_UDP_ASSOCIATE) {
		/* The destinations come with each datagram: the stream names none. */
		memset(&c->req, 0, sizeof(c->req));
		c->req.cmd = TCP_UDP;
		c->req.to.addr.family = NET_IPV4;
	}
	c->routed = true;
	if (c->tmo_armed) {
		/* The timer's cancellation must come back before the client leaves this loop. */
		loop_cancel(c->loop, &c->tmo);
		return;
	}
	front_client_move(c);
}

/* ---- HANDSHAKE ---- */

static void front_client_wrote(struct loop_req *r, int res)
{
	struct front_client *c = r->data;

	c->pending--;
	if (res < 0 || c->done) {
		front_client_end(c);
		return;
	}
	/* Go on with what the client sent after the message just answered. */
	front_client_feed(c, c->early, c->early_len);
}

static void front_client_feed(struct front_client *c, const uint8_t *p, size_t n)
{
	size_t used = 0;
	int r = socks_hs_feed(c->hs, p, n, &used);

	c->early = p + used;
	c->early_len = n - used;
	if (r < 0) {
		front_client_fail(c, r, c->hs->why);
	} else if (r == SOCKS_HS_REPLY) {
		c->wr.data = c;
		c->pending++;
		if (loop_write(c->loop, &c->wr, c->fd, c->hs->out, c->hs->out_len,
			       front_client_wrote)) {
			c->pending--;
			front_client_end(c);
		}
	} else if (r == SOCKS_HS_REQUEST) {
		socks_target_format(&c->hs->req.to, c->target, sizeof(c->target));
		front_client_route(c);
	} else if (c->early_len) {
		front_client_feed(c, c->early, c->early_len);
	} else {
		front_client_read(c);
	}
}

static void front_client_read_cb(struct loop_req *r, int res)
{
	struct front_client *c = r->data;

	c->pending--;
	if (c->done) {
		front_client_free_maybe(c);
		return;
	}
	if (res <= 0) {
		front_client_end(c); /* the client left, or timed out (cancelled) */
		return;
	}
	front_client_feed(c, c->buf, (size_t)res);
}

static void front_client_read(struct front_client *c)
{
	c->rd.data = c;
	c->pending++;
	if (loop_read(c->loop, &c->rd, c->fd, c->buf, sizeof(c->buf), front_client_read_cb)) {
		c->pending--;
		front_client_end(c);
	}
}

static void front_client_tmo_cb(struct loop_req *r, int res)
{
	struct front_client *c = r->data;

	c->pending--;
	c->tmo_armed = false;
	if (c->routed && !c->done) {
		front_client_move(c);
		return;
	}
	if (res == 0 && !c->done) {
		vb_dbg("%s: a client sent no complete request in time", c->f->cfg.who);
		c->done = true;
		loop_cancel(c->loop, &c->rd);
		loop_cancel(c->loop, &c->wr);
	}
	front_client_free_maybe(c);
}

/* ---- CHECKING ---- */

static void front_client_check(struct front_client *c);

/* A refused or failed client: nothing of it is in flight; the socket gets an RST. */
static void front_client_refuse(struct front_client *c)
{
	struct front *f = c->f;

	net_close(c->fd, true);
	free(c->hs);
	free(c);
	front_put(f);
}

/* Out of CHECKING: the handshake (or, on a raw port, the route) begins. */
static void front_client_begin(struct front_client *c)
{
	struct front *f = c->f;
	uint32_t ms = f->cfg.handshake_timeout_ms ? f->cfg.handshake_timeout_ms : 30000;

	net_tcp_tune(c->fd);
	net_peer_addr(c->fd, &c->client);
	if (f->cfg.raw) {
		char text[NET_ADDR_STRLEN];

		snprintf(c->target, sizeof(c->target), "%s",
			 net_addr_format(&c->client, true, text));
		front_client_route(c);
		return;
	}
	socks_hs_init(c->hs, &f->cfg.socks);
	c->tmo.data = c;
	c->pending++;
	c->tmo_armed = true;
	if (loop_timer(c->loop, &c->tmo, (uint64_t)ms * 1000000ull, front_client_tmo_cb)) {
		c->pending--;
		c->tmo_armed = false;
	}
	front_client_read(c);
}

static void front_client_check_cb(struct loop_req *r, int res)
{
	struct front_client *c = r->data;

	c->pending--;
	/* A cancel (the loop stopping) or a front that closed meanwhile: no more clients. */
	if (res < 0 || c->f->closing) {
		front_client_refuse(c);
		return;
	}
	front_client_check(c);
}

/* The group check: the connecting socket's owner must be root or in the group (platform/net.h). */
static void front_client_check(struct front_client *c)
{
	char why[200];
	int ret = net_peer_allowed(c->fd, c->f->cfg.group, why, sizeof(why));

	if (!ret) {
		front_client_begin(c);
		return;
	}
	if (ret == -EAGAIN && ++c->peer_tries < FRONT_PEER_TRIES) {
		c->tmo.data = c;
		c->pending++;
		if (!loop_timer(c->loop, &c->tmo, FRONT_PEER_RETRY_MS * 1000000ull,
				front_client_check_cb))
			return;
		c->pending--;
	}
	vb_info("%s: refused a connection: %s", c->f->cfg.who, why);
	front_client_refuse(c);
}

static void front_client_start(struct front *f, struct loop *l, pl_fd fd)
{
	struct front_client *c = calloc(1, sizeof(*c));

	if (c && !f->cfg.raw)
		c->hs = malloc(sizeof(*c->hs));
	if (!c || (!f->cfg.raw && !c->hs)) {
		free(c);
		net_close(fd, true);
		return;
	}
	__atomic_add_fetch(&f->refs, 1, __ATOMIC_ACQ_REL);
	c->f = f;
	c->loop = l;
	c->fd = fd;
	if (f->cfg.group)
		front_client_check(c);
	else
		front_client_begin(c);
}

/* ---- accepting ---- */

static void front_accept(struct front_listener *fl);

static void front_accept_cb(struct loop_req *r, int res)
{
	struct front_listener *fl = r->data;
	struct front *f = fl->f;

	fl->armed = false;
	if (f->closing) {
		if (res >= 0)
			net_close((pl_fd)res, true);
	} else if (res >= 0) {
		front_client_start(f, f->home->loop, (pl_fd)res);
		front_accept(fl);
	} else {
		/* EMFILE and friends: try again rather than stop serving. */
		vb_warn("%s: accept: %s", f->cfg.who, sys_strerror(res));
		front_accept(fl);
	}
	front_put(f);
}

static void front_accept(struct front_listener *fl)
{
	struct front *f = fl->f;

	memset(&fl->acc, 0, sizeof(fl->acc));
	fl->acc.data = fl;
	__atomic_add_fetch(&f->refs, 1, __ATOMIC_ACQ_REL);
	if (loop_accept(f->home->loop, &fl->acc, fl->fd, front_accept_cb)) {
		vb_err("%s: cannot accept", f->cfg.who);
		front_put(f);
		return;
	}
	fl->armed = true;
}

static void front_accept_first(void *arg)
{
	struct front *f = arg;

	for (int i = 0; i < f->n; i++)
		front_accept(&f->l[i]);
}

int front_new(struct front **out, struct runtime *rt, const struct front_config *cfg,
	      const struct front_ops *ops, void *arg, char *why, size_t whylen)
{
	struct front *f = calloc(1, sizeof(*f));
	int ret = 0;

	if (!f)
		return -ENOMEM;
	f->rt = rt;
	f->home = cfg->home ? cfg->home : &rt->loops[0];
	f->refs = 1; /* the owner's, until front_close() or front_free() */
	f->cfg = *cfg;
	f->ops = ops;
	f->arg = arg;
	for (int i = 0; i < cfg->nlisten && !ret; i++) {
		struct front_listener *fl = &f->l[f->n];

		fl->f = f;
		fl->addr = cfg->listen[i];
		ret = net_tcp_listen(&cfg->listen[i], 1024, &fl->fd, why, whylen);
		if (!ret) {
			f->n++;
		} else if (cfg->optional) {
			vb_warn("%s: %s; skipped", cfg->who, why);
			ret = 0;
		}
	}
	if (!ret && !f->n) {
		snprintf(why, whylen, "no address to listen on");
		ret = -EADDRNOTAVAIL;
	}
	if (ret) {
		front_free(f);
		return ret;
	}
	*out = f;
	return 0;
}

int front_start(struct front *f)
{
	return loop_post(f->home->loop, front_accept_first, f);
}

void front_close(struct front *f)
{
	f->closing = true;
	for (int i = 0; i < f->n; i++)
		if (f->l[i].armed)
			loop_cancel(f->home->loop, &f->l[i].acc);
	front_put(f);
}

int front_bound(const struct front *f, int i, struct net_addr *out)
{
	return i < f->n ? net_local_addr(f->l[i].fd, out) : -ENOENT;
}

void front_free(struct front *f)
{
	if (!f)
		return;
	for (int i = 0; i < f->n; i++)
		net_close(f->l[i].fd, false);
	free(f);
}
