/* Asynchronous name resolution on Windows: getaddrinfo on the system thread pool, answers posted
 * to the loop. */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/resolve.h"
#include "proxy/resolve_internal.h"
#include "core/list.h"
#include "core/log.h"
#include "core/why.h"

/*
 * Theory of operation
 *
 * The twin of proxy/resolve.c (c-ares, which has no mingw-w64 build in
 * Debian), behind the same proxy/resolve.h. Each query is one getaddrinfo()
 * call on a thread of the system's thread pool (TrySubmitThreadpoolCallback),
 * which hands its answer back with loop_post(): the same shape as the
 * loop's blocking-thread shim (a helper thread, the result delivered on the
 * loop thread), so no loop ever blocks on DNS. The system's resolver
 * answers as for any other program (the DNS client service with its cache,
 * the hosts file, the adapters' servers). GetAddrInfoExW with an OVERLAPPED
 * was the other choice; it was not taken because its completion routine runs
 * on a thread of the system's choosing anyway (it would post to the loop all
 * the same), Wine implements it on a thread of its own too, and only
 * getaddrinfo() sorts its answer by RFC 6724 on every version, which is the
 * order this API promises.
 *
 * A resolve_req (one per resolve_start(), owned by the resolver):
 *   asking     a pool thread holds it (an IP literal skips the thread: its
 *              answer is posted at once, so that the callback never runs
 *              inside resolve_start());
 *   back       its answer reached the loop (resolve_back()): the callback
 *              runs unless cancelled, then the struct is freed;
 *   cancelled  the owner gave up, or resolver_close() told it -ECANCELED:
 *              the answer is dropped when it comes back. getaddrinfo() cannot
 *              be interrupted, so a cancelled query runs to its end on its
 *              thread (the system's own timeouts bound it).
 *
 * resolver_close() marks the resolver closing and tells every live owner
 * -ECANCELED; the memory goes when the last request is back, and on_closed
 * runs then, on the loop.
 */

struct resolve_req {
	struct list node; /* on resolver.reqs */
	struct resolver *r;
	resolve_cb cb;
	void *ctx;
	bool cancelled; /* nothing may call cb any more; read and written on the loop only */
	char name[256];
	/* Written by the pool thread before loop_post(), read on the loop after it. */
	int res;
	int n;
	struct net_addr addrs[RESOLVE_ADDRS_MAX];
};

struct resolver {
	struct loop *loop;
	struct list reqs;
	size_t nreqs; /* on reqs, cancelled ones included */
	bool closing;
	void (*on_closed)(void *arg);
	void *closed_arg;
};

/* getaddrinfo()'s error (a Winsock code) in this API's errno space (proxy/resolve.h). */
static int resolve_errno(int e)
{
	switch (e) {
	case 0:
		return 0;
	case WSAHOST_NOT_FOUND: /* EAI_NONAME */
	case WSANO_DATA:	/* EAI_NODATA */
		return -ENXIO;
	case WSATRY_AGAIN: /* EAI_AGAIN: the servers failed or could not be reached */
		return -EAGAIN;
	case WSA_NOT_ENOUGH_MEMORY: /* EAI_MEMORY */
		return -ENOMEM;
	case WSAEINVAL: /* EAI_BADFLAGS, or a name getaddrinfo refused */
		return -EINVAL;
	default:
		return -EIO;
	}
}

/* Copies getaddrinfo()'s addresses into q, in its order, at most RESOLVE_ADDRS_MAX. */
static void resolve_take_addrs(struct resolve_req *q, const struct addrinfo *ai)
{
	q->n = 0;
	for (; ai && q->n < RESOLVE_ADDRS_MAX; ai = ai->ai_next) {
		struct net_addr *a = &q->addrs[q->n];

		if (net_addr_from_sockaddr(ai->ai_addr, ai->ai_addrlen, a))
			continue;
		a->port = 0; /* the caller dials the port it was asked for */
		q->n++;
	}
	if (!q->n && !q->res)
		q->res = -ENXIO; /* answered, but with no address we can use */
}

static void resolver_free(struct resolver *r)
{
	void (*on_closed)(void *arg) = r->on_closed;
	void *arg = r->closed_arg;

	free(r);
	if (on_closed)
		on_closed(arg);
}

static void resolver_free_posted(void *arg)
{
	resolver_free(arg);
}

/*
 * On the loop: q's answer is back. The count drops only after the callback,
 * so a resolver_close() from inside it leaves the freeing to this function.
 */
static void resolve_back(void *arg)
{
	struct resolve_req *q = arg;
	struct resolver *r = q->r;

	list_del(&q->node);
	if (!q->cancelled) {
		q->cancelled = true;
		q->cb(q->ctx, q->res, q->addrs, q->n);
	}
	free(q);
	if (--r->nreqs == 0 && r->closing)
		resolver_free(r);
}

/* Hands q back to its loop; a post fails only without memory, so it is tried again. */
static void resolve_post_back(struct resolve_req *q)
{
	while (loop_post(q->r->loop, resolve_back, q))
		Sleep(10);
}

/* On a pool thread: the blocking call. */
static void CALLBACK resolve_work(PTP_CALLBACK_INSTANCE inst, void *arg)
{
	struct resolve_req *q = arg;
	struct addrinfo hints, *ai = NULL;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	q->res = resolve_errno(getaddrinfo(q->name, NULL, &hints, &ai));
	if (!q->res)
		resolve_take_addrs(q, ai);
	if (ai)
		freeaddrinfo(ai);
	resolve_post_back(q);
}

/* getaddrinfo() needs Winsock started in the process; the count it keeps is never dropped. */
int resolve_global_init(void)
{
	WSADATA wd;

	return WSAStartup(MAKEWORD(2, 2), &wd) ? -ENOMEM : 0;
}

/*
 * The system's resolver is the only one here: another server list, another
 * resolv.conf or skipping the hosts file cannot be asked of getaddrinfo(),
 * so they are refused rather than ignored. The timeouts and tries are the
 * system's (the DNS client's), so timeout_ms and tries are not used.
 */
int resolver_new(struct loop *l, const struct resolve_opts *o, struct resolver **out, char *why,
		 size_t whylen)
{
	struct resolver *r;

	if (o && (o->servers || o->resolv_conf || o->no_hosts_file))
		return why_set(why, whylen, -EOPNOTSUPP,
			       "on Windows the system's resolver answers: no server list, "
			       "resolv.conf or hosts-file option");
	r = calloc(1, sizeof(*r));
	if (!r)
		return why_set(why, whylen, -ENOMEM, "out of memory");
	r->loop = l;
	list_init(&r->reqs);
	*out = r;
	return 0;
}

void resolver_close(struct resolver *r, void (*on_closed)(void *arg), void *arg)
{
	struct list *it, *tmp;

	if (r->closing)
		return;
	r->closing = true;
	r->on_closed = on_closed;
	r->closed_arg = arg;
	list_for_each_safe (it, tmp, &r->reqs) {
		struct resolve_req *q = list_entry(it, struct resolve_req, node);

		if (!q->cancelled) {
			q->cancelled = true;
			q->cb(q->ctx, -ECANCELED, NULL, 0);
		}
	}
	/* Nothing out: the memory goes now, but on_closed never runs inside this call. */
	if (r->nreqs == 0 && loop_post(r->loop, resolver_free_posted, r))
		free(r); /* no memory to post with: on_closed is lost with it */
}

int resolve_start(struct resolver *r, const char *name, resolve_cb cb, void *ctx,
		  struct resolve_req **handle)
{
	struct resolve_req *q;
	struct net_addr a;
	bool literal = net_addr_parse_ip(name, &a) == 0;
	int ret = 0;

	if (r->closing)
		return -ESHUTDOWN;
	if (!literal && (!resolve_name_ok(name) || strlen(name) >= sizeof(q->name)))
		return -EINVAL;
	if (r->nreqs >= RESOLVE_PENDING_MAX)
		return -EAGAIN;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->r = r;
	q->cb = cb;
	q->ctx = ctx;
	snprintf(q->name, sizeof(q->name), "%s", name);
	if (literal) {
		a.port = 0;
		q->addrs[0] = a;
		q->n = 1;
		ret = loop_post(r->loop, resolve_back, q);
	} else if (!TrySubmitThreadpoolCallback(resolve_work, q, NULL)) {
		ret = -EAGAIN; /* the pool could not take it: like a server that failed */
	}
	if (ret) {
		free(q);
		return ret;
	}
	list_add_tail(&r->reqs, &q->node);
	r->nreqs++;
	if (handle)
		*handle = q;
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
