/* Asynchronous name resolution: c-ares driven by the completion loop's polls and timers. */
#include <ares.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include "proxy/resolve.h"
#include "proxy/resolve_internal.h"
#include "core/list.h"
#include "core/log.h"
#include "core/why.h"

/*
 * Theory of operation
 *
 * c-ares owns its sockets and tells us, through its socket-state callback,
 * which of them it wants to read or write; each becomes a resolve_sock with
 * a one-shot loop_poll() that is re-armed after every ares_process_fd().
 * One loop_timer() follows ares_timeout(), the earliest retry or timeout.
 *
 * A resolve_sock:
 *   idle     want nothing polled (c-ares has not asked, or it was just served)
 *   polling  its loop_poll() is in flight; the loop owns sock->req
 *   closed   c-ares closed the descriptor (state callback with neither read
 *            nor write): the poll, if any, is cancelled, and the struct is
 *            freed once no poll is in flight, never inside c-ares.
 *
 * A resolve_req (one per resolve_start(), owned by the resolver):
 *   deferred  the answer is known inside resolve_start() (an IP literal, an
 *             /etc/hosts hit, a bad name c-ares refused at once): it waits
 *             for a zero timer, so that the callback never runs inside the
 *             submitting call;
 *   asking    c-ares holds it until its getaddrinfo callback;
 *   done      answered during ares_process_fd(): queued, and delivered after
 *             c-ares has returned, so that a callback may start, cancel or
 *             close anything;
 *   cancelled the owner gave up (or was told -ECANCELED by resolver_close()):
 *             nothing calls it again; the struct is freed when c-ares or the
 *             timer lets go of it.
 *
 * resolver_close() tells every live owner -ECANCELED, destroys the channel
 * (which closes the sockets and ends every query), cancels the timers, and
 * starts a zero timer of its own; the memory goes when the last of the
 * loop's requests has completed, and on_closed runs then.
 */

struct resolve_sock {
	struct list node; /* on resolver.socks */
	struct resolver *r;
	int fd;
	bool want_read, want_write;
	bool polling, closed;
	bool failed;	/* its poll failed: left to c-ares' timeouts until it asks again */
	unsigned armed; /* LOOP_POLL_* asked of the poll in flight */
	struct loop_req req;
};

struct resolve_req {
	struct list node; /* on resolver.reqs */
	struct resolver *r;
	resolve_cb cb;
	void *ctx;
	bool cancelled; /* nothing may call cb any more */
	bool asking;	/* c-ares holds it */
	bool deferred;	/* its timer is in flight */
	struct resolve_req *done_next;
	int res;
	int n;
	struct net_addr addrs[RESOLVE_ADDRS_MAX];
	struct loop_req timer;
};

struct resolver {
	struct loop *loop;
	ares_channel ch;
	struct list socks;
	struct list reqs;
	size_t nreqs;
	struct resolve_req *done_head, *done_tail;
	unsigned inflight; /* loop requests not yet completed */
	bool in_start;	   /* inside ares_getaddrinfo() for resolve_start() */
	bool flushing;
	bool closing;
	bool timer_armed;
	uint64_t timer_deadline;
	struct loop_req timer;
	struct loop_req close_timer;
	void (*on_closed)(void *arg);
	void *closed_arg;
};

static void resolver_after_ares(struct resolver *r);

/* ---- results ---- */

/* Maps a c-ares status to a negative errno (see resolve.h). */
static int resolve_errno(int status)
{
	switch (status) {
	case ARES_SUCCESS:
		return 0;
	case ARES_ENOTFOUND:
	case ARES_ENODATA:
	case ARES_ENONAME:
		return -ENXIO;
	case ARES_ETIMEOUT:
		return -ETIMEDOUT;
	case ARES_ESERVFAIL:
	case ARES_EREFUSED:
	case ARES_ECONNREFUSED:
		return -EAGAIN;
	case ARES_EFORMERR:
	case ARES_EBADRESP:
		return -EPROTO;
	case ARES_EBADNAME:
	case ARES_EBADQUERY:
	case ARES_EBADFAMILY:
	case ARES_EBADFLAGS:
		return -EINVAL;
	case ARES_ENOMEM:
		return -ENOMEM;
	case ARES_ECANCELLED:
	case ARES_EDESTRUCTION:
		return -ECANCELED;
	default:
		return -EIO;
	}
}

/* Copies c-ares' addresses into q, in order, at most RESOLVE_ADDRS_MAX. */
static void resolve_take_addrs(struct resolve_req *q, const struct ares_addrinfo *ai)
{
	const struct ares_addrinfo_node *nd;

	q->n = 0;
	for (nd = ai ? ai->nodes : NULL; nd && q->n < RESOLVE_ADDRS_MAX; nd = nd->ai_next) {
		struct net_addr *a = &q->addrs[q->n];

		if (net_addr_from_sockaddr(nd->ai_addr, nd->ai_addrlen, a))
			continue;
		a->port = 0; /* the caller dials the port it was asked for */
		q->n++;
	}
}

/* ---- requests ---- */

/* Forgets q; the caller has made sure no one holds it any more. */
static void resolve_req_free(struct resolve_req *q)
{
	list_del(&q->node);
	q->r->nreqs--;
	free(q);
}

/* Calls q's owner once with its result, unless cancelled. */
static void resolve_deliver(struct resolve_req *q)
{
	if (q->cancelled)
		return;
	q->cancelled = true;
	q->cb(q->ctx, q->res, q->n ? q->addrs : NULL, q->n);
}

/* Frees the resolver once closing and nothing is left in flight; must be the caller's last step. */
static void resolver_maybe_free(struct resolver *r)
{
	struct list *it, *next;
	void (*on_closed)(void *arg) = r->on_closed;
	void *arg = r->closed_arg;

	if (!r->closing || r->inflight || r->nreqs || r->flushing)
		return;
	for (it = r->socks.next; it != &r->socks; it = next) {
		next = it->next;
		free(list_entry(it, struct resolve_sock, node));
	}
	free(r);
	if (on_closed)
		on_closed(arg);
}

/* A deferred answer's zero timer: deliver it now that resolve_start() has returned. */
static void resolve_deferred_cb(struct loop_req *t, int res)
{
	struct resolve_req *q = container_of(t, struct resolve_req, timer);
	struct resolver *r = q->r;

	r->inflight--;
	q->deferred = false;
	resolve_deliver(q);
	resolve_req_free(q);
	resolver_maybe_free(r);
}

/* Arms q's zero timer; on failure (it cannot fail for a timer today) q is answered in a flush. */
static void resolve_defer(struct resolve_req *q)
{
	struct resolver *r = q->r;

	if (loop_timer(r->loop, &q->timer, 0, resolve_deferred_cb) == 0) {
		q->deferred = true;
		r->inflight++;
		return;
	}
	q->done_next = NULL;
	if (r->done_tail)
		r->done_tail->done_next = q;
	else
		r->done_head = q;
	r->done_tail = q;
}

/* c-ares' answer for q (inside ares_getaddrinfo(), ares_process_fd() or ares_destroy()). */
static void resolve_gai_cb(void *arg, int status, int timeouts, struct ares_addrinfo *ai)
{
	struct resolve_req *q = arg;
	struct resolver *r = q->r;

	q->asking = false;
	if (q->cancelled) {
		ares_freeaddrinfo(ai);
		resolve_req_free(q);
		return;
	}
	q->res = resolve_errno(status);
	if (!q->res) {
		resolve_take_addrs(q, ai);
		if (!q->n)
			q->res = -ENXIO;
	}
	ares_freeaddrinfo(ai);
	if (r->in_start) {
		resolve_defer(q);
		return;
	}
	q->done_next = NULL;
	if (r->done_tail)
		r->done_tail->done_next = q;
	else
		r->done_head = q;
	r->done_tail = q;
}

/* Delivers the answers queued during c-ares processing, in order. */
static void resolver_flush(struct resolver *r)
{
	struct resolve_req *q;

	if (r->flushing)
		return;
	r->flushing = true;
	while ((q = r->done_head)) {
		r->done_head = q->done_next;
		if (!r->done_head)
			r->done_tail = NULL;
		resolve_deliver(q);
		resolve_req_free(q);
	}
	r->flushing = false;
}

/* ---- sockets and the timer ---- */

static struct resolve_sock *resolver_sock_find(struct resolver *r, int fd)
{
	struct list *it;

	for (it = r->socks.next; it != &r->socks; it = it->next) {
		struct resolve_sock *s = list_entry(it, struct resolve_sock, node);

		if (s->fd == fd && !s->closed)
			return s;
	}
	return NULL;
}

static void resolve_sock_cb(struct loop_req *req, int res);

/* Polls s for what c-ares wants, or cancels a poll that asks for something else. */
static void resolve_sock_arm(struct resolve_sock *s)
{
	struct resolver *r = s->r;
	unsigned want = (s->want_read ? LOOP_POLL_IN : 0) | (s->want_write ? LOOP_POLL_OUT : 0);
	int ret;

	if (s->closed || s->failed || r->closing)
		return;
	if (s->polling) {
		if (s->armed != want)
			loop_cancel(r->loop, &s->req); /* its completion re-arms */
		return;
	}
	if (!want)
		return;
	ret = loop_poll(r->loop, &s->req, s->fd, want, resolve_sock_cb);
	if (ret) {
		/* c-ares' own timeout ends the queries on this socket. */
		vb_warn("resolver: cannot poll a DNS socket: %s", strerror(-ret));
		return;
	}
	s->polling = true;
	s->armed = want;
	r->inflight++;
}

/* c-ares opens, watches or closes a socket. */
static void resolve_sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
	struct resolver *r = data;
	struct resolve_sock *s = resolver_sock_find(r, fd);

	if (!readable && !writable) {
		if (!s)
			return;
		s->closed = true; /* c-ares closes fd right after this returns */
		if (s->polling)
			loop_cancel(r->loop, &s->req);
		return;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s) {
			vb_warn("resolver: out of memory for a DNS socket");
			return;
		}
		s->r = r;
		s->fd = fd;
		list_add_tail(&r->socks, &s->node);
	}
	s->want_read = readable;
	s->want_write = writable;
	s->failed = false;
	resolve_sock_arm(s);
}

/* A socket's poll completed: let c-ares read or write, then re-arm. */
static void resolve_sock_cb(struct loop_req *req, int res)
{
	struct resolve_sock *s = container_of(req, struct resolve_sock, req);
	struct resolver *r = s->r;
	ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;

	s->polling = false;
	r->inflight--;
	if (!r->closing && !s->closed && res != -ECANCELED) {
		/* An error is handed over as readiness: c-ares finds it and closes the socket. */
		unsigned ev = res < 0 ? LOOP_POLL_IN | LOOP_POLL_OUT : (unsigned)res;

		if (s->want_read && (ev & (LOOP_POLL_IN | LOOP_POLL_ERR | LOOP_POLL_HUP)))
			rfd = s->fd;
		if (s->want_write && (ev & (LOOP_POLL_OUT | LOOP_POLL_ERR | LOOP_POLL_HUP)))
			wfd = s->fd;
		if (rfd != ARES_SOCKET_BAD || wfd != ARES_SOCKET_BAD)
			ares_process_fd(r->ch, rfd, wfd);
		/* Re-polling a descriptor that fails would spin. */
		if (res < 0 && !s->closed) {
			vb_dbg("resolver: poll on a DNS socket failed: %s", strerror(-res));
			s->failed = true;
		}
	}
	resolver_after_ares(r);
}

static void resolve_timer_cb(struct loop_req *t, int res)
{
	struct resolver *r = container_of(t, struct resolver, timer);

	r->timer_armed = false;
	r->inflight--;
	if (!r->closing)
		ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* retries and timeouts */
	resolver_after_ares(r);
}

/* Keeps the timer at c-ares' next deadline while it has queries. */
static void resolver_timer_update(struct resolver *r)
{
	struct timeval tv, *tvp = ares_timeout(r->ch, NULL, &tv);
	uint64_t ns, deadline;

	if (!tvp)
		return; /* no query: an armed timer fires once for nothing */
	ns = (uint64_t)tvp->tv_sec * 1000000000ull + (uint64_t)tvp->tv_usec * 1000ull;
	deadline = clock_now_ns() + ns;
	if (r->timer_armed) {
		if (r->timer_deadline > deadline)
			loop_cancel(r->loop, &r->timer); /* its completion re-arms */
		return;
	}
	if (loop_timer(r->loop, &r->timer, ns, resolve_timer_cb))
		return;
	r->timer_armed = true;
	r->timer_deadline = deadline;
	r->inflight++;
}

/* Frees the sockets c-ares has closed and that no poll holds any more. */
static void resolver_sweep(struct resolver *r)
{
	struct list *it, *next;

	for (it = r->socks.next; it != &r->socks; it = next) {
		struct resolve_sock *s = list_entry(it, struct resolve_sock, node);

		next = it->next;
		if (s->closed && !s->polling) {
			list_del(&s->node);
			free(s);
		}
	}
}

/* After c-ares ran: re-arm polls and the timer, deliver answers, tidy up. */
static void resolver_after_ares(struct resolver *r)
{
	struct list *it;

	if (!r->closing) {
		for (it = r->socks.next; it != &r->socks; it = it->next)
			resolve_sock_arm(list_entry(it, struct resolve_sock, node));
		resolver_timer_update(r);
		resolver_flush(r);
	}
	resolver_sweep(r);
	resolver_maybe_free(r);
}

/* ---- the API ---- */

int resolve_global_init(void)
{
	return ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS ? 0 : -ENOMEM;
}

/* Opens r's channel with o's options; returns 0 or a negative errno with the reason. */
static int resolver_open(struct resolver *r, const struct resolve_opts *o, char *why, size_t whylen)
{
	struct ares_options ao;
	int mask = ARES_OPT_SOCK_STATE_CB, st;
	char lookups[] = "b";

	memset(&ao, 0, sizeof(ao));
	ao.sock_state_cb = resolve_sock_state_cb;
	ao.sock_state_cb_data = r;
	if (o && o->timeout_ms) {
		ao.timeout = o->timeout_ms > 3600000 ? 3600000 : (int)o->timeout_ms;
		mask |= ARES_OPT_TIMEOUTMS;
	}
	if (o && o->tries > 0) {
		ao.tries = o->tries;
		mask |= ARES_OPT_TRIES;
	}
	if (o && o->no_hosts_file) {
		ao.lookups = lookups;
		mask |= ARES_OPT_LOOKUPS;
	}
	if (o && o->resolv_conf) {
		ao.resolvconf_path = (char *)o->resolv_conf;
		mask |= ARES_OPT_RESOLVCONF;
	}
	st = ares_init_options(&r->ch, &ao, mask);
	if (st != ARES_SUCCESS)
		return why_set(why, whylen, st == ARES_ENOMEM ? -ENOMEM : -EIO, "resolver: %s",
			       ares_strerror(st));
	if (o && o->servers) {
		st = ares_set_servers_ports_csv(r->ch, o->servers);
		if (st != ARES_SUCCESS) {
			ares_destroy(r->ch);
			return why_set(why, whylen, -EINVAL, "resolver: servers '%.64s': %s",
				       o->servers, ares_strerror(st));
		}
	}
	return 0;
}

int resolver_new(struct loop *l, const struct resolve_opts *o, struct resolver **out, char *why,
		 size_t whylen)
{
	struct resolver *r = calloc(1, sizeof(*r));
	int ret;

	if (!r)
		return why_set(why, whylen, -ENOMEM, "resolver: out of memory");
	r->loop = l;
	list_init(&r->socks);
	list_init(&r->reqs);
	ret = resolver_open(r, o, why, whylen);
	if (ret) {
		free(r);
		return ret;
	}
	*out = r;
	return 0;
}

static void resolve_close_timer_cb(struct loop_req *t, int res)
{
	struct resolver *r = container_of(t, struct resolver, close_timer);

	r->inflight--;
	resolver_after_ares(r);
}

void resolver_close(struct resolver *r, void (*on_closed)(void *arg), void *arg)
{
	struct list *it;

	if (r->closing)
		return;
	r->closing = true;
	r->on_closed = on_closed;
	r->closed_arg = arg;
	/* The owners first, while everything they might touch is still whole. */
	for (it = r->reqs.next; it != &r->reqs; it = it->next) {
		struct resolve_req *q = list_entry(it, struct resolve_req, node);

		if (!q->cancelled) {
			q->cancelled = true;
			q->cb(q->ctx, -ECANCELED, NULL, 0);
		}
	}
	ares_destroy(r->ch); /* ends every query (freeing the cancelled) and closes the sockets */
	r->ch = NULL;
	for (it = r->reqs.next; it != &r->reqs; it = it->next) {
		struct resolve_req *q = list_entry(it, struct resolve_req, node);

		if (q->deferred)
			loop_cancel(r->loop, &q->timer);
	}
	for (it = r->socks.next; it != &r->socks; it = it->next) {
		struct resolve_sock *s = list_entry(it, struct resolve_sock, node);

		s->closed = true;
		if (s->polling)
			loop_cancel(r->loop, &s->req);
	}
	if (r->timer_armed)
		loop_cancel(r->loop, &r->timer);
	resolver_flush(r);
	/* on_closed must not run inside this call: a timer of our own holds the resolver. */
	if (loop_timer(r->loop, &r->close_timer, 0, resolve_close_timer_cb) == 0)
		r->inflight++;
}

int resolve_start(struct resolver *r, const char *name, resolve_cb cb, void *ctx,
		  struct resolve_req **handle)
{
	struct ares_addrinfo_hints hints;
	struct resolve_req *q;
	struct net_addr a;
	bool literal = net_addr_parse_ip(name, &a) == 0;

	if (r->closing)
		return -ESHUTDOWN;
	if (!literal && !resolve_name_ok(name))
		return -EINVAL;
	if (r->nreqs >= RESOLVE_PENDING_MAX)
		return -EAGAIN;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->r = r;
	q->cb = cb;
	q->ctx = ctx;
	list_add_tail(&r->reqs, &q->node);
	r->nreqs++;
	if (handle)
		*handle = q;
	if (literal) {
		a.port = 0;
		q->addrs[0] = a;
		q->n = 1;
		resolve_defer(q);
		return 0;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	q->asking = true;
	r->in_start = true;
	ares_getaddrinfo(r->ch, name, NULL, &hints, resolve_gai_cb, q);
	r->in_start = false;
	/* Sockets and the timer, but no flush: no answer is delivered inside this call. */
	for (struct list *it = r->socks.next; it != &r->socks; it = it->next)
		resolve_sock_arm(list_entry(it, struct resolve_sock, node));
	resolver_timer_update(r);
	return 0;
}

void resolve_cancel(struct resolve_req *q)
{
	if (q)
		q->cancelled = true;
}

size_t resolver_pending(const struct resolver *r)
{
	return r->nreqs;
}
