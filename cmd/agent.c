/* vmbusify-agent's wiring: accept sessions, spread them over the loops, hand streams to services.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/agent.h"
#include "core/bench.h"
#include "core/err.h"
#include "core/kinds.h"
#include "core/link.h"
#include "core/log.h"
#include "exec/cp.h"
#include "exec/exec.h"
#include "platform/sys.h"
#include "proxy/rfwd.h"

#define AGENT_ACCEPT_RETRY_MS 100

#define AGENT_CAPS (FRAME_CAP_BENCH | FRAME_CAP_EXEC | FRAME_CAP_FILE | FRAME_CAP_TCP)

struct agent_conn {
	struct agent_listener *al;
	struct rt_loop *rl;
	pl_fd fd;
	char peer[64];
};

static void agent_accept_next(struct agent_listener *al);

/* Streams the host opens, by kind. */
static void agent_on_open(struct link *lk, struct stream *st, uint16_t kind, uint16_t flags,
			  const uint8_t *req, size_t len)
{
	struct agent_conn *ac = link_app(lk);

	switch (kind) {
	case KIND_BENCH:
		bench_serve(st, req, len);
		return;
	case KIND_EXEC:
		exec_serve(link_loop(lk), st, req, len);
		return;
	case KIND_FILE:
		cp_serve(link_loop(lk), st, req, len);
		return;
	case KIND_TCP:
		tcp_serve(link_loop(lk), st, req, len, &ac->al->a->tcp_env);
		return;
	default:
		vb_dbg("refused a %s stream: not served by this agent", kind_name(kind));
		stream_refuse(st, -EOPNOTSUPP, "this agent does not serve that kind of stream");
	}
}

static void agent_on_ready(struct link *lk)
{
	struct agent_conn *ac = link_app(lk);
	const struct frame_hello *peer = session_peer(link_session(lk));

	vb_info("session from %s on %s (protocol %u)", peer->name, ac->al->text,
		session_version(link_session(lk)));
	if (peer->role == FRAME_ROLE_DAEMON) {
		struct agent_uplink *u = &ac->al->a->uplink;

		pthread_mutex_lock(&u->lock);
		u->rl = ac->rl;
		u->lk = lk;
		pthread_mutex_unlock(&u->lock);
		if (ac->al->a->vnet && ac->al->a->vnet_attach &&
		    ac->al->a->vnet_attach(ac->rl, link_session(lk), &ac->al->a->vnet_cfg))
			vb_warn("vnet: cannot ask the host to attach");
	}
}

static void agent_on_close(struct link *lk, int err, const char *reason)
{
	struct agent_conn *ac = link_app(lk);
	struct agent_uplink *u = &ac->al->a->uplink;

	vb_info("session on %s ended: %s", ac->al->text, reason);
	pthread_mutex_lock(&u->lock);
	if (u->lk == lk) {
		u->lk = NULL;
		u->rl = NULL;
	}
	pthread_mutex_unlock(&u->lock);
}

static void agent_rearm_cb(void *arg)
{
	agent_accept_next(arg);
}

/* A one-connection transport is accepted again once its session is gone. */
static void agent_on_freed(void *app)
{
	struct agent_conn *ac = app;

	if (ac->al->single)
		loop_post(ac->al->home->loop, agent_rearm_cb, ac->al);
	free(ac);
}

static const struct link_ops agent_link_ops = {
    .on_ready = agent_on_ready,
    .on_open = agent_on_open,
    .on_close = agent_on_close,
    .on_freed = agent_on_freed,
};

/* Runs on the session's loop: the descriptor becomes a link there. */
static void agent_start_session(void *arg)
{
	struct agent_conn *ac = arg;
	struct transport_info ti;
	struct link_config cfg;
	struct link *lk;

	transport_info_get(&ac->al->uri, &ti);
	link_config_defaults(&cfg);
	cfg.session.role = FRAME_ROLE_AGENT;
	cfg.session.caps = AGENT_CAPS;
	cfg.session.name = ac->al->a->name;
	cfg.max_write = ti.max_write;
	cfg.set = &ac->rl->links;
	/* The host may go quiet for long; the agent never gives up a session by itself. */
	cfg.keepalive_ms = 0;
	cfg.dead_ms = 0;
	if (link_new(&lk, ac->rl->loop, &ac->rl->chunks, ac->fd, &cfg, &agent_link_ops, ac)) {
		vb_err("cannot start a session on %s", ac->al->text);
		agent_on_freed(ac);
	}
}

/*
 * A failed accept is one client's doing (a wrong token, a token never sent,
 * a connection reset before it was taken) or the host's (out of descriptors
 * or memory: try again shortly), unless the listener itself is gone.
 */
static bool agent_listener_broken(int res)
{
	return res == -EBADF || res == -EINVAL || res == -ENOTSOCK || res == -EOPNOTSUPP;
}

static bool agent_accept_later(int res)
{
	return res == -EMFILE || res == -ENFILE || res == -ENOBUFS || res == -ENOMEM;
}

static void agent_accept_retry_cb(struct loop_req *req, int res)
{
	agent_accept_next(req->data);
}

/* Out of descriptors or memory: accept again in AGENT_ACCEPT_RETRY_MS, not at once. */
static void agent_accept_retry(struct agent_listener *al)
{
	al->retry.data = al;
	if (loop_timer(al->home->loop, &al->retry, AGENT_ACCEPT_RETRY_MS * 1000000ull,
		       agent_accept_retry_cb))
		vb_err("%s: cannot accept again", al->text);
}

static void agent_accept_cb(struct transport_accept_req *ar, int res, pl_fd fd)
{
	struct agent_listener *al = ar->data;
	struct agent_conn *ac;

	if (res) {
		vb_warn("%s: accept failed: %s", al->text, sys_strerror(res));
		if (agent_listener_broken(res) && !al->single)
			return; /* stop here rather than spin */
		if (agent_accept_later(res))
			agent_accept_retry(al);
		else
			agent_accept_next(al);
		return;
	}
	ac = calloc(1, sizeof(*ac));
	if (!ac) {
		transport_close_fd(fd);
	} else {
		ac->al = al;
		ac->fd = fd;
		ac->rl = runtime_pick(&al->a->rt);
		if (loop_post(ac->rl->loop, agent_start_session, ac)) {
			transport_close_fd(fd);
			free(ac);
		}
	}
	if (!al->single)
		agent_accept_next(al);
}

static void agent_accept_next(struct agent_listener *al)
{
	al->acc.data = al;
	if (transport_accept(al->home->loop, al->tl, &al->acc, agent_accept_cb))
		vb_err("%s: cannot accept", al->text);
}

static void agent_accept_first(void *arg)
{
	agent_accept_next(arg);
}

/* ---- the VM's proxy port: egress through the daemon's session ---- */

static int agent_proxy_route(void *arg, const struct socks_req *sr, const struct net_addr *client,
			     struct tcp_req *out, struct rt_loop **rl, char *why, size_t whylen)
{
	struct agent *a = arg;

	memset(out, 0, sizeof(*out));
	out->cmd = TCP_CONNECT;
	out->to.port = sr->to.port;
	if (sr->to.atyp == SOCKS_ATYP_NAME) {
		snprintf(out->to.name, sizeof(out->to.name), "%s", sr->to.name);
	} else {
		out->to.addr.family = sr->to.atyp == SOCKS_ATYP_IPV6 ? NET_IPV6 : NET_IPV4;
		memcpy(out->to.addr.ip, sr->to.ip, 16);
	}
	pthread_mutex_lock(&a->uplink.lock);
	*rl = a->uplink.rl;
	pthread_mutex_unlock(&a->uplink.lock);
	if (!*rl) {
		snprintf(why, whylen, "no session with the host's daemon");
		return -ENETUNREACH;
	}
	return 0;
}

static struct session *agent_proxy_session(void *arg, struct rt_loop *rl, const struct tcp_req *req)
{
	struct agent *a = arg;
	struct session *s = NULL;

	/* On rl's thread: the uplink cannot be freed under us, only replaced. */
	pthread_mutex_lock(&a->uplink.lock);
	if (a->uplink.lk && a->uplink.rl == rl)
		s = link_session(a->uplink.lk);
	pthread_mutex_unlock(&a->uplink.lock);
	return s;
}

static const struct front_ops agent_proxy_ops = {
    .route = agent_proxy_route,
    .session = agent_proxy_session,
};

int agent_proxy(struct agent *a, const struct net_addr *addrs, int n, bool optional, char *why,
		size_t whylen)
{
	struct front_config cfg = {.who = "proxy", .optional = optional};

	cfg.socks.cmds = SOCKS_CMD_BIT(SOCKS_CMD_CONNECT) | SOCKS_CMD_BIT(SOCKS_CMD_UDP_ASSOCIATE);

	for (int i = 0; i < n && i < FRONT_LISTEN_MAX; i++)
		cfg.listen[cfg.nlisten++] = addrs[i];
	return front_new(&a->proxy, &a->rt, &cfg, &agent_proxy_ops, a, why, whylen);
}

/* LISTEN: the host asks for a port in the VM whose connections come back to it (-R). */
static void agent_serve_forward(void *arg, struct loop *l, struct stream *st,
				const struct tcp_req *req)
{
	struct agent *a = arg;

	for (int i = 0; i < a->rt.n; i++) {
		if (a->rt.loops[i].loop == l) {
			rfwd_serve(&a->rt, &a->rt.loops[i], st, req);
			return;
		}
	}
	stream_refuse(st, -EINVAL, "no such loop");
}

int agent_init(struct agent *a, int threads, enum loop_backend backend, const char *token_file)
{
	memset(a, 0, sizeof(*a));
	a->name = "vmbusify-agent " VB_VERSION;
	a->topts.token_file = token_file;
	a->topts.connect_timeout_ms = 5000;
	pthread_mutex_init(&a->uplink.lock, NULL);
	a->tcp_env.who = "agent";
	a->tcp_env.connect_timeout_ms = 10000;
	a->tcp_env.serve_forward = agent_serve_forward;
	a->vnet = true;
	snprintf(a->vnet_cfg.tun, sizeof(a->vnet_cfg.tun), "vmbus0");
	a->vnet_cfg.mtu = 65520;
	a->tcp_env.arg = a;
	return runtime_init(&a->rt, threads, backend);
}

int agent_listen(struct agent *a, const char *uri, char *why, size_t whylen)
{
	struct agent_listener *al;
	struct transport_info ti;
	int ret;

	if (a->nlisteners == AGENT_MAX_LISTEN) {
		snprintf(why, whylen, "at most %d --listen addresses", AGENT_MAX_LISTEN);
		return -E2BIG;
	}
	al = &a->listeners[a->nlisteners];
	if (uri_parse(uri, &al->uri, why, whylen))
		return -EINVAL;
	ret = transport_listen(&al->uri, &a->topts, &al->tl, why, whylen);
	if (ret)
		return ret;
	transport_info_get(&al->uri, &ti);
	al->single = ti.single_connection;
	al->a = a;
	snprintf(al->text, sizeof(al->text), "%s", uri);
	a->nlisteners++;
	return 0;
}

int agent_start(struct agent *a, char *why, size_t whylen)
{
	int ret;

	for (int i = 0; i < a->nlisteners; i++) {
		a->listeners[i].home = &a->rt.loops[0];
		loop_post(a->listeners[i].home->loop, agent_accept_first, &a->listeners[i]);
	}
	if (a->proxy)
		front_start(a->proxy);
	ret = runtime_start(&a->rt);
	if (ret)
		snprintf(why, whylen, "cannot start the loop threads: %s", sys_strerror(ret));
	return ret;
}

void agent_stop(struct agent *a)
{
	/* The daemon is told why, and waits its backoff instead of calling it a crash. */
	runtime_goodbye(&a->rt, VB_WERR_SHUTDOWN, "the agent is stopping", RT_GOODBYE_MS);
	runtime_stop(&a->rt);
	for (int i = 0; i < a->nlisteners; i++)
		transport_listener_close(a->listeners[i].tl);
	front_free(a->proxy);
}
