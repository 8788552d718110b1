/* A VM as the daemon sees it: its channel, its session, reconnects, and the CLI sessions bound to
 * it. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "daemon/daemon.h"
#include "core/err.h"
#include "core/kinds.h"
#include "core/link.h"
#include "core/log.h"
#include "core/relay.h"
#include "core/ping.h"
#include "core/uri.h"
#include "platform/sys.h"
#include "proxy/policy.h"
#include "proxy/resolve.h"
#include "proxy/tcp_srv.h"

/*
 * Theory of operation
 *
 * States of a VM's channel, all handled on the VM's own loop:
 *   DOWN        nothing in flight; a retry timer may be armed   -> CONNECTING
 *   CONNECTING  the transport is being dialed, or the session waits for the
 *               agent's HELLO                                   -> UP | DOWN
 *   UP          the session runs; CLI streams are relayed to it  -> DOWN
 * Every failure goes to DOWN with its reason kept for `vmbusify ls`, and a
 * retry after a backoff that doubles from 100 ms to 10 s and resets once a
 * session has stayed UP for VM_STABLE_MS: a guest that says HELLO and then
 * breaks the protocol is redialed ever more slowly, not ten times a second.
 * Other VMs are never affected: each has its own loop state, and errors
 * never leave the VM. The guest's sessions are limited (VM_OPEN_RATE and
 * the session's send cap, docs/protocol.md "Limits toward guests").
 *
 * CLI sessions bound to the VM (vm_attach_client) live on the same loop, so
 * their streams are relayed into the VM's session without locks or copies.
 */

#define VM_BACKOFF_MIN_MS 100
#define VM_BACKOFF_MAX_MS 10000
#define VM_STABLE_MS	  10000 /* a session this old resets the backoff when it ends */
#define VM_OPEN_RATE	  2000	/* streams a guest may open per second beyond connect-rate ... */
#define VM_OPEN_BURST	  4096	/* ... and at once after a pause, beyond its burst */
#define VM_STREAMS_SPARE  256	/* streams beyond max-connections: vnet, -R forwards */

enum vm_state { VM_DOWN, VM_CONNECTING, VM_UP };

static const char *const vm_state_names[] = {"down", "connecting", "up"};

struct vm {
	struct daemon *d;
	struct rt_loop *rl;
	char name[64];
	char uri_text[300];
	struct uri uri;
	enum vm_state state;
	struct link *link;
	struct transport_dial_req dial;
	struct loop_req retry;
	bool retry_armed;
	uint32_t backoff_ms;
	uint64_t since_ns;
	uint64_t connects;
	uint64_t rtt_ns;
	char last_error[200];
	struct vm_ping *pings;
	struct policy_limit limit;  /* the guest's egress connections */
	struct tcp_srv_env tcp_env; /* egress: how the host dials for this guest */
	struct tcp_srv_env fwd_env; /* -R forwards: the operator's targets, no policy */
	bool vnet_default_route;
	uint32_t vnet_metric;
};

/* A `ping` control request in progress. */
struct vm_ping {
	struct vm_ping *next;
	struct vm *vm;
	struct stream *st;
	struct loop_req timer;
	bool timer_armed;
	bool waiting;
	bool json;
	bool dead;
	uint32_t count, sent;
	uint64_t interval_ns;
	struct samples samples;
};

static void vm_connect(struct vm *vm);

static void vm_tcp_env(struct vm *vm);

int vm_new(struct daemon *d, const struct config_vm *cv, struct vm **out, char *why, size_t whylen)
{
	struct vm *vm = calloc(1, sizeof(*vm));
	const char *name = cv->name, *uri = cv->uri;
	struct policy_limits lim;

	if (!vm)
		return -ENOMEM;
	if (uri_parse(uri, &vm->uri, why, whylen)) {
		free(vm);
		return -EINVAL;
	}
	vm->d = d;
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	snprintf(vm->uri_text, sizeof(vm->uri_text), "%s", uri);
	vm->backoff_ms = VM_BACKOFF_MIN_MS;
	snprintf(vm->last_error, sizeof(vm->last_error), "not connected yet");
	vm->vnet_default_route = cv->vnet_default_route;
	vm->vnet_metric = cv->vnet_metric;
	policy_limits_from_config(cv, &lim);
	policy_limit_init(&vm->limit, &lim, clock_now_ns());
	vm_tcp_env(vm);
	*out = vm;
	return 0;
}

void vm_free(struct vm *vm)
{
	free(vm);
}

const char *vm_name(const struct vm *vm)
{
	return vm->name;
}

void vm_assign_loop(struct vm *vm, struct rt_loop *rl)
{
	vm->rl = rl;
}

struct rt_loop *vm_loop(const struct vm *vm)
{
	return vm->rl;
}

static void vm_set_state(struct vm *vm, enum vm_state st)
{
	vm->state = st;
	vm->since_ns = clock_now_ns();
}

/* ---- reconnect ---- */

static void vm_retry_cb(struct loop_req *r, int res)
{
	struct vm *vm = r->data;

	vm->retry_armed = false;
	if (res == 0)
		vm_connect(vm);
}

/* Goes DOWN with reason and arms the next attempt. */
static void vm_down(struct vm *vm, const char *reason)
{
	bool was_up = vm->state == VM_UP;

	if (runtime_stopping(vm->rl->rt)) {
		vm_set_state(vm, VM_DOWN);
		vm->link = NULL;
		snprintf(vm->last_error, sizeof(vm->last_error), "%s", reason);
		vb_info("%s: session closed: %s", vm->name, reason);
		return;
	}
	if (was_up && clock_now_ns() - vm->since_ns >= VM_STABLE_MS * 1000000ull)
		vm->backoff_ms = VM_BACKOFF_MIN_MS;
	vm_set_state(vm, VM_DOWN);
	vm->link = NULL;
	if (strcmp(vm->last_error, reason) || was_up)
		vb_warn("%s: %s%s; retrying every %u ms or less", vm->name,
			was_up ? "session lost: " : "", reason, VM_BACKOFF_MAX_MS);
	snprintf(vm->last_error, sizeof(vm->last_error), "%s", reason);
	vm->retry.data = vm;
	vm->retry_armed = true;
	if (loop_timer(vm->rl->loop, &vm->retry, (uint64_t)vm->backoff_ms * 1000000ull,
		       vm_retry_cb))
		vm->retry_armed = false;
	vm->backoff_ms *= 2;
	if (vm->backoff_ms > VM_BACKOFF_MAX_MS)
		vm->backoff_ms = VM_BACKOFF_MAX_MS;
}

/* ---- the VM's session ---- */

static void vm_pings_on_pong(struct vm *vm, uint64_t rtt_ns);
static void vm_pings_fail(struct vm *vm, const char *why);

static void vm_link_ready(struct link *lk)
{
	struct vm *vm = link_app(lk);
	const struct frame_hello *peer = session_peer(link_session(lk));

	vm_set_state(vm, VM_UP);
	vm->connects++;
	vm->last_error[0] = '\0';
	vb_info("%s: connected to %s over %s", vm->name, peer->name, vm->uri_text);
	forward_vm_up(vm->d, vm);
}

/* A guest may open only what the host allows it: TCP, under the egress policy. */
static void vm_link_open(struct link *lk, struct stream *st, uint16_t kind, uint16_t flags,
			 const uint8_t *req, size_t len)
{
	struct vm *vm = link_app(lk);

	if (kind == KIND_TCP) {
		vm_serve_tcp(vm, st, req, len);
		return;
	}
	if (kind == KIND_VNET) {
		if (vm->d->vnet)
			vnet_router_attach(vm->d->vnet, vm->rl, vm->name, vm->vnet_default_route,
					   vm->vnet_metric, st, req, len);
		else
			stream_refuse(st, -EOPNOTSUPP, "vnet is off on this host");
		return;
	}
	vb_warn("%s: refused a guest-opened %s stream: guests may open TCP and VNET only", vm->name,
		kind_name(kind));
	stream_refuse(st, -EACCES, "the host serves no such stream to guests");
}

static void vm_link_pong(struct link *lk, uint64_t rtt_ns)
{
	struct vm *vm = link_app(lk);

	vm->rtt_ns = rtt_ns;
	vm_pings_on_pong(vm, rtt_ns);
}

static void vm_link_close(struct link *lk, int err, const char *reason)
{
	struct vm *vm = link_app(lk);

	vm_pings_fail(vm, reason);
	vm_down(vm, reason);
}

static const struct link_ops vm_link_ops = {
    .on_ready = vm_link_ready,
    .on_open = vm_link_open,
    .on_pong = vm_link_pong,
    .on_close = vm_link_close,
};

/* limit plus spare, saturated; 0 (no limit) stays 0. */
static uint32_t vm_over(uint32_t limit, uint32_t spare)
{
	if (!limit)
		return 0;
	return limit > UINT32_MAX - spare ? UINT32_MAX : limit + spare;
}

static void vm_dial_cb(struct transport_dial_req *dr, int res, pl_fd fd)
{
	struct vm *vm = dr->data;
	struct link_config cfg;
	int ret;

	if (res) {
		vm_down(vm, dr->why[0] ? dr->why : sys_strerror(res));
		return;
	}
	link_config_defaults(&cfg);
	cfg.session.dialer = true;
	cfg.session.role = FRAME_ROLE_DAEMON;
	cfg.session.name = "vmbusifyd " VB_VERSION;
	cfg.session.label = vm->name;
	/* Above the proxy's own limit, as max_streams is: raising connect-rate raises both. */
	cfg.session.open_rate = vm_over(vm->limit.cfg.rate, VM_OPEN_RATE);
	cfg.session.open_burst = vm_over(vm->limit.cfg.burst, VM_OPEN_BURST);
	/* The guest's proxied connections are streams, and so are vnet and the -R forwards. */
	cfg.session.max_streams = vm->limit.cfg.max_conns + VM_STREAMS_SPARE;
	cfg.set = &vm->rl->links;
	ret = link_new(&vm->link, vm->rl->loop, &vm->rl->chunks, fd, &cfg, &vm_link_ops, vm);
	if (ret)
		vm_down(vm, sys_strerror(ret));
}

static void vm_connect(struct vm *vm)
{
	int ret;

	if (runtime_stopping(vm->rl->rt))
		return; /* a retry timer that fired while the daemon says goodbye */
	vm_set_state(vm, VM_CONNECTING);
	vm->dial.data = vm;
	ret = transport_dial(vm->rl->loop, &vm->uri, &vm->d->topts, &vm->dial, vm_dial_cb);
	if (ret)
		vm_down(vm, vm->dial.why[0] ? vm->dial.why : sys_strerror(ret));
}

static void vm_start_cb(void *arg)
{
	vm_connect(arg);
}

void vm_start(struct vm *vm)
{
	loop_post(vm->rl->loop, vm_start_cb, vm);
}

/* ---- CLI sessions bound to the VM ---- */

/* "lab1 is not connected: <reason>", for the CLI's one-line error. */
static void vm_why_down(const struct vm *vm, char *buf, size_t len)
{
	snprintf(buf, len, "%s is not connected: %s", vm->name,
		 vm->state == VM_CONNECTING && !vm->connects ? "connecting" : vm->last_error);
}

struct vm_client {
	struct vm *vm;
	struct link *link;
	pl_fd fd;
	struct loop_req wreq;
	char line[340];
	char label[160]; /* "client of VM": its session's name in the log */
};

static void vm_client_open(struct link *lk, struct stream *st, uint16_t kind, uint16_t flags,
			   const uint8_t *req, size_t len)
{
	struct vm_client *c = link_app(lk);
	struct vm *vm = c->vm;
	char why[320];

	if (kind == KIND_CONTROL) {
		control_serve(vm->d, vm, st, req, len);
		return;
	}
	if (vm->state == VM_UP && vm->link) {
		relay_open(st, link_session(vm->link), kind, flags, req, len);
		return;
	}
	vm_why_down(vm, why, sizeof(why));
	stream_refuse(st, -ENOTCONN, why);
}

static void vm_client_close(struct link *lk, int err, const char *reason)
{
	free(link_app(lk));
}

static const struct link_ops vm_client_ops = {
    .on_open = vm_client_open,
    .on_close = vm_client_close,
};

/* The answer line went out: an OK starts the session, an ERR closes. */
static void vm_client_answered(struct loop_req *r, int res)
{
	struct vm_client *c = r->data;
	struct link_config cfg;

	if (res < 0 || c->line[0] != 'O') {
		transport_close_fd(c->fd);
		free(c);
		return;
	}
	link_config_defaults(&cfg);
	cfg.session.role = FRAME_ROLE_DAEMON;
	cfg.session.caps = FRAME_CAP_CONTROL;
	cfg.session.name = "vmbusifyd " VB_VERSION;
	cfg.keepalive_ms = 0; /* the CLI is local and short-lived */
	cfg.dead_ms = 0;
	snprintf(c->label, sizeof(c->label), "client of %s", c->vm->name);
	cfg.session.label = c->label;
	cfg.set = &c->vm->rl->links;
	if (link_new(&c->link, c->vm->rl->loop, &c->vm->rl->chunks, c->fd, &cfg, &vm_client_ops, c))
		free(c);
}

void vm_attach_client(struct vm *vm, pl_fd fd)
{
	struct vm_client *c = calloc(1, sizeof(*c));

	if (!c) {
		transport_close_fd(fd);
		return;
	}
	c->vm = vm;
	c->fd = fd;
	/* The CLI is told at once when the VM is down, in one line. */
	if (vm->state == VM_UP) {
		snprintf(c->line, sizeof(c->line), "OK\n");
	} else {
		char why[320];

		vm_why_down(vm, why, sizeof(why));
		snprintf(c->line, sizeof(c->line), "ERR %s\n", why);
	}
	c->wreq.data = c;
	if (loop_write(vm->rl->loop, &c->wreq, fd, c->line, strlen(c->line), vm_client_answered)) {
		transport_close_fd(fd);
		free(c);
	}
}

/* ---- describe ---- */

void vm_describe(struct vm *vm, struct strbuf *out, bool json)
{
	const struct frame_hello *peer = vm->link ? session_peer(link_session(vm->link)) : NULL;
	double age = (double)(clock_now_ns() - vm->since_ns) / 1e9;

	if (!json) {
		strbuf_printf(out, "%-16s %-11s %8.1fs %9.3f ms  %-40s %s\n", vm->name,
			      vm_state_names[vm->state], age, (double)vm->rtt_ns / 1e6,
			      vm->uri_text, vm->state == VM_UP ? peer->name : vm->last_error);
		return;
	}
	strbuf_printf(out, "{\"name\":");
	strbuf_json_str(out, vm->name);
	strbuf_printf(out, ",\"uri\":");
	strbuf_json_str(out, vm->uri_text);
	strbuf_printf(out, ",\"state\":\"%s\",\"since_s\":%.3f,\"connects\":%llu,\"rtt_ms\":%.3f",
		      vm_state_names[vm->state], age, (unsigned long long)vm->connects,
		      (double)vm->rtt_ns / 1e6);
	strbuf_printf(out, ",\"last_error\":");
	strbuf_json_str(out, vm->last_error);
	if (vm->state == VM_UP) {
		const struct session_stats *st = session_stats(link_session(vm->link));

		strbuf_printf(out, ",\"peer\":");
		strbuf_json_str(out, peer->name);
		strbuf_printf(out,
			      ",\"version\":%u,\"caps\":%llu,\"streams\":%zu,\"bytes_in\":%llu,"
			      "\"bytes_out\":%llu",
			      session_version(link_session(vm->link)),
			      (unsigned long long)peer->caps,
			      session_stream_count(link_session(vm->link)),
			      (unsigned long long)st->bytes_in, (unsigned long long)st->bytes_out);
	}
	strbuf_printf(out, "}");
}

/* ---- ping requests ---- */

/*
 * A ping request sends one PING, waits for its PONG, waits the interval and
 * sends the next, count times; at most one timer is in flight and it is
 * never reused before it completes. A VM that stops answering is caught by
 * the session's keepalive, which fails every request in progress.
 */

static const struct stream_ops vm_ping_ops;

static void vm_ping_unlink(struct vm_ping *p)
{
	struct vm_ping **pp = &p->vm->pings;

	while (*pp && *pp != p)
		pp = &(*pp)->next;
	if (*pp)
		*pp = p->next;
}

/* Writes the summary (or the error), ends the stream, and frees p when no timer holds it. */
static void vm_ping_finish(struct vm_ping *p, const char *error)
{
	struct session *s = p->vm->link ? link_session(p->vm->link) : NULL;
	struct strbuf b = {0};

	vm_ping_unlink(p);
	ping_report(&b, p->vm->name, p->sent, &p->samples, s ? session_peer(s) : NULL,
		    s ? session_version(s) : 0, error, p->json);
	if (p->st) {
		if (b.p)
			stream_write_copy(p->st, b.p, b.len);
		stream_shutdown(p->st);
		stream_release(p->st);
		p->st = NULL;
	}
	strbuf_free(&b);
	samples_free(&p->samples);
	p->dead = true;
	if (!p->timer_armed)
		free(p);
}

static void vm_ping_send(struct vm_ping *p)
{
	struct vm *vm = p->vm;

	if (vm->state != VM_UP || link_ping(vm->link)) {
		vm_ping_finish(p, "the VM's session is down");
		return;
	}
	p->sent++;
	p->waiting = true;
}

static void vm_ping_timer_cb(struct loop_req *r, int res)
{
	struct vm_ping *p = r->data;

	p->timer_armed = false;
	if (p->dead) {
		free(p);
		return;
	}
	vm_ping_send(p);
}

static void vm_pings_on_pong(struct vm *vm, uint64_t rtt_ns)
{
	for (struct vm_ping *p = vm->pings; p; p = p->next) {
		if (!p->waiting)
			continue;
		p->waiting = false;
		samples_add(&p->samples, rtt_ns);
		if (!p->json) {
			struct strbuf line = {0};

			ping_reply_line(&line, vm->name, p->sent, rtt_ns);
			if (line.p)
				stream_write_copy(p->st, line.p, line.len);
			strbuf_free(&line);
		}
		if (p->sent >= p->count) {
			vm_ping_finish(p, NULL);
		} else {
			p->timer.data = p;
			p->timer_armed =
			    !loop_timer(vm->rl->loop, &p->timer, p->interval_ns, vm_ping_timer_cb);
			if (!p->timer_armed)
				vm_ping_finish(p, "cannot arm a timer");
		}
		return;
	}
}

static void vm_pings_fail(struct vm *vm, const char *why)
{
	while (vm->pings)
		vm_ping_finish(vm->pings, why);
}

/* The CLI went away (Ctrl-C): stop quietly. */
static void vm_ping_on_reset(struct stream *st, int err)
{
	struct vm_ping *p = stream_ctx(st);

	stream_release(st);
	p->st = NULL;
	vm_ping_finish(p, NULL);
}

static void vm_ping_on_data(struct stream *st, struct chunk *c, const uint8_t *b, size_t len)
{
	stream_consumed(st, len);
}

static const struct stream_ops vm_ping_ops = {
    .on_data = vm_ping_on_data,
    .on_reset = vm_ping_on_reset,
};

void vm_ping_start(struct vm *vm, struct stream *st, uint32_t count, uint32_t interval_ms,
		   bool json)
{
	struct vm_ping *p = calloc(1, sizeof(*p));

	if (!p) {
		stream_refuse(st, -ENOMEM, "out of memory");
		return;
	}
	if (vm->state != VM_UP) {
		char why[320];

		free(p);
		vm_why_down(vm, why, sizeof(why));
		stream_refuse(st, -ENOTCONN, why);
		return;
	}
	p->vm = vm;
	p->st = st;
	p->count = count;
	p->interval_ns = (uint64_t)interval_ms * 1000000ull;
	p->json = json;
	if (stream_accept(st, NULL, 0, &vm_ping_ops, p)) {
		free(p);
		return;
	}
	p->next = vm->pings;
	vm->pings = p;
	vm_ping_send(p);
}

/* ---- egress: the guest's TCP streams ---- */

static int vm_check_name(void *arg, const char *name, uint16_t port, char *why, size_t whylen)
{
	struct vm *vm = arg;

	return policy_check_name(vm->d->policy, name, port, why, whylen);
}

static int vm_check_addr(void *arg, const char *name, const struct net_addr *a, char *why,
			 size_t whylen)
{
	struct vm *vm = arg;

	return policy_check_addr(vm->d->policy, name, a, why, whylen);
}

static int vm_conn_begin(void *arg)
{
	struct vm *vm = arg;

	return policy_limit_acquire(&vm->limit, clock_now_ns());
}

static void vm_conn_end(void *arg)
{
	struct vm *vm = arg;

	policy_limit_release(&vm->limit);
}

static int vm_resolve(void *arg, struct loop *l, const char *name, tcp_resolved_fn done, void *ctx,
		      void **handle)
{
	struct vm *vm = arg;
	struct resolver *r = proxy_resolver(vm->d, vm->rl);
	struct resolve_req *q;
	int ret;

	if (!r)
		return -ENXIO;
	ret = resolve_start(r, name, done, ctx, &q);
	if (!ret)
		*handle = q;
	return ret;
}

static void vm_resolve_cancel(void *arg, void *handle)
{
	resolve_cancel(handle);
}

/* FORWARDED: a connection to an -R port in the VM; dial what the operator configured. */
static void vm_serve_forward(void *arg, struct loop *l, struct stream *st,
			     const struct tcp_req *req)
{
	struct vm *vm = arg;
	struct tcp_req q = {.cmd = TCP_CONNECT};

	if (req->cmd != TCP_FORWARDED || !forward_target(vm->d, vm, req->id, &q.to)) {
		stream_refuse(st, -EPERM, "no such forward");
		return;
	}
	tcp_serve_connect(l, st, &q, &vm->fwd_env);
}

static void vm_tcp_env(struct vm *vm)
{
	struct tcp_srv_env *e = &vm->tcp_env;

	e->who = vm->name;
	e->connect_timeout_ms = 10000;
	e->check_name = vm_check_name;
	e->check_addr = vm_check_addr;
	e->conn_begin = vm_conn_begin;
	e->conn_end = vm_conn_end;
	e->resolve = vm_resolve;
	e->resolve_cancel = vm_resolve_cancel;
	e->serve_forward = vm_serve_forward;
	e->arg = vm;
	vm->fwd_env = *e;
	vm->fwd_env.check_name = NULL;
	vm->fwd_env.check_addr = NULL;
	vm->fwd_env.serve_forward = NULL;
}

void vm_serve_tcp(struct vm *vm, struct stream *st, const uint8_t *req, size_t len)
{
	if (!vm->d->policy) {
		stream_refuse(st, -EPERM, "the host has no egress policy");
		return;
	}
	tcp_serve(vm->rl->loop, st, req, len, &vm->tcp_env);
}

struct session *vm_session(struct vm *vm)
{
	return vm->state == VM_UP && vm->link ? link_session(vm->link) : NULL;
}
