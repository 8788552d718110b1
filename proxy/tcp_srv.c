/* Serving TCP streams: the dialing end of a proxied connection. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/tcp_srv.h"
#include "proxy/dial.h"
#include "proxy/pump.h"
#include "proxy/tcp_msg.h"
#include "proxy/udp.h"
#include "core/log.h"
#include "platform/sys.h"

/*
 * Theory of operation
 *
 * One tcp_conn per TCP stream, through four steps, each of which may
 * refuse the stream with the code a SOCKS client will see:
 *   check    the request's form (INVAL), the limits (LIMIT), a name against
 *            the policy before it is resolved (DENIED);
 *   resolve  a name into addresses (NAME, TIMEDOUT), IP literals as given;
 *   filter   each address against the policy; none left is DENIED, with
 *            the reason of the first rule that matched;
 *   dial     the addresses in order (REFUSED, HOSTUNREACH, TIMEDOUT ...).
 * Then the stream is accepted with the connection's own and peer addresses
 * and handed to a pump, which owns the socket and the stream from then on;
 * the tcp_conn lives on until the pump ends, to release the limit.
 *
 * The opener may give up while we resolve or dial: nothing tells us, and
 * stream_accept() fails; the connection is closed and the stream released.
 */

struct tcp_conn {
	struct loop *loop;
	struct stream *st;
	const struct tcp_srv_env *env;
	struct tcp_req req;
	struct dial dial;
	void *resolving;
	bool counted;
	char target[TCP_NAME_MAX + 16];
};

static void tcp_conn_free(struct tcp_conn *c)
{
	if (c->counted && c->env->conn_end)
		c->env->conn_end(c->env->arg);
	free(c);
}

static void tcp_conn_refuse(struct tcp_conn *c, int err, const char *why)
{
	const char *who = c->env->who ? c->env->who : "tcp";

	/* What the host's policy and limits decide is the operator's to see (rate-limited). */
	if (err == -EPERM)
		vb_info("%s: denied %s: %s", who, c->target, why);
	else if (err == -EMFILE || err == -EAGAIN)
		vb_info("%s: refused %s: %s", who, c->target, why);
	else
		vb_dbg("%s: %s: %s", who, c->target, why);
	stream_refuse(c->st, err, why);
	tcp_conn_free(c);
}

static void tcp_pump_end(void *arg, int err, uint64_t to_stream, uint64_t to_sock)
{
	struct tcp_conn *c = arg;

	vb_dbg("%s: %s closed (%s): %llu bytes in, %llu out", c->env->who ? c->env->who : "tcp",
	       c->target, err ? sys_strerror(err) : "clean", (unsigned long long)to_sock,
	       (unsigned long long)to_stream);
	tcp_conn_free(c);
}

static const struct stream_ops tcp_noops;

static void tcp_conn_connected(struct tcp_conn *c, pl_fd fd)
{
	struct tcp_reply r;
	uint8_t reply[TCP_REPLY_MAX];
	struct pump_opts po = {.on_end = tcp_pump_end, .arg = c};
	int n;

	memset(&r, 0, sizeof(r));
	net_local_addr(fd, &r.local);
	net_peer_addr(fd, &r.peer);
	n = tcp_reply_encode(&r, reply);
	if (n < 0 || stream_accept(c->st, reply, (size_t)n, &tcp_noops, c)) {
		/* The opener gave up meanwhile. */
		net_close(fd, true);
		stream_refuse(c->st, -ECANCELED, "cancelled");
		tcp_conn_free(c);
		return;
	}
	/* pump_start() owns fd and the stream, failing or not; c goes with on_end. */
	pump_start(NULL, c->loop, fd, c->st, &po);
}

static void tcp_dial_cb(struct dial *d, int res, pl_fd fd)
{
	struct tcp_conn *c = d->data;
	char why[160];

	if (res) {
		snprintf(why, sizeof(why), "%s: %s", c->target, sys_strerror(res));
		tcp_conn_refuse(c, res, why);
		return;
	}
	tcp_conn_connected(c, fd);
}

/* Keeps the addresses the policy allows and dials them. */
static void tcp_conn_dial(struct tcp_conn *c, const struct net_addr *addrs, int n)
{
	struct net_addr ok[DIAL_ADDRS_MAX];
	char why[160] = "", first[160] = "";
	int k = 0, ret;

	for (int i = 0; i < n && k < DIAL_ADDRS_MAX; i++) {
		struct net_addr a = addrs[i];

		net_addr_unmap(&a);
		a.port = c->req.to.port;
		if (c->env->check_addr &&
		    c->env->check_addr(c->env->arg, c->req.to.name[0] ? c->req.to.name : NULL, &a,
				       why, sizeof(why))) {
			if (!first[0])
				snprintf(first, sizeof(first), "%s", why);
			continue;
		}
		ok[k++] = a;
	}
	if (!k) {
		tcp_conn_refuse(c, -EPERM, first[0] ? first : "no address to dial");
		return;
	}
	c->dial.data = c;
	ret = dial_start(c->loop, &c->dial, ok, k, c->env->connect_timeout_ms, tcp_dial_cb);
	if (ret) {
		snprintf(why, sizeof(why), "%s: %s", c->target, sys_strerror(ret));
		tcp_conn_refuse(c, ret, why);
	}
}

static void tcp_resolved(void *ctx, int res, const struct net_addr *addrs, int n)
{
	struct tcp_conn *c = ctx;
	char why[160];

	c->resolving = NULL;
	if (res || n <= 0) {
		/*
		 * A client learns only that the name did not resolve (or not in
		 * time); the log keeps the resolver's own reason.
		 */
		snprintf(why, sizeof(why), "%s: %s", c->req.to.name,
			 res == -ENXIO || !res ? "name does not resolve" : sys_strerror(res));
		tcp_conn_refuse(c, res == -ETIMEDOUT ? -ETIMEDOUT : -ENXIO, why);
		return;
	}
	tcp_conn_dial(c, addrs, n);
}

/* The request is well formed: limits, then the name or the address. */
static void tcp_conn_begin(struct tcp_conn *c)
{
	const struct tcp_srv_env *env = c->env;
	char why[160] = "";
	int ret;

	if (env->conn_begin) {
		ret = env->conn_begin(env->arg);
		if (ret) {
			tcp_conn_refuse(
			    c, ret,
			    ret == -EMFILE
				? "too many connections from this VM (max-connections)"
				: "connections from this VM opened too fast (connect-rate)");
			return;
		}
		c->counted = true;
	}
	if (c->req.to.addr.family) {
		tcp_conn_dial(c, &c->req.to.addr, 1);
		return;
	}
	if (env->check_name &&
	    env->check_name(env->arg, c->req.to.name, c->req.to.port, why, sizeof(why))) {
		tcp_conn_refuse(c, -EPERM, why);
		return;
	}
	if (!env->resolve) {
		tcp_conn_refuse(c, -ENXIO, "names are not resolved here");
		return;
	}
	ret = env->resolve(env->arg, c->loop, c->req.to.name, tcp_resolved, c, &c->resolving);
	if (ret) {
		snprintf(why, sizeof(why), "%s: %s", c->req.to.name, sys_strerror(ret));
		tcp_conn_refuse(c, ret, why);
	}
}

static struct tcp_conn *tcp_conn_new(struct loop *l, struct stream *st,
				     const struct tcp_srv_env *env)
{
	struct tcp_conn *c = calloc(1, sizeof(*c));

	if (!c) {
		stream_refuse(st, -ENOMEM, "out of memory");
		return NULL;
	}
	c->loop = l;
	c->st = st;
	c->env = env;
	return c;
}

void tcp_serve_connect(struct loop *l, struct stream *st, const struct tcp_req *req,
		       const struct tcp_srv_env *env)
{
	struct tcp_conn *c = tcp_conn_new(l, st, env);

	if (!c)
		return;
	c->req = *req;
	tcp_target_format(&c->req.to, c->target, sizeof(c->target));
	tcp_conn_begin(c);
}

void tcp_serve(struct loop *l, struct stream *st, const uint8_t *req, size_t len,
	       const struct tcp_srv_env *env)
{
	struct tcp_req q;

	if (tcp_req_decode(req, len, &q)) {
		stream_refuse(st, -EINVAL, "malformed TCP request");
		return;
	}
	if (q.cmd == TCP_UDP) {
		if (env->check_addr) /* the egress side: the one that relays UDP */
			udp_serve(l, st, &q, env);
		else
			stream_refuse(st, -EOPNOTSUPP, "UDP is relayed by the host only");
		return;
	}
	if (q.cmd != TCP_CONNECT) {
		if (env->serve_forward)
			env->serve_forward(env->arg, l, st, &q);
		else
			stream_refuse(st, -EOPNOTSUPP, "no forwards are served here");
		return;
	}
	tcp_serve_connect(l, st, &q, env);
}
