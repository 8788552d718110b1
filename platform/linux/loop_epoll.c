/* The epoll backend: completions emulated by trying each operation when its descriptor is ready. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include "platform/linux/loop_internal.h"

/*
 * Theory of operation
 *
 * Every descriptor with requests on it has a wait list (struct ep_fd, in a
 * table indexed by descriptor number) holding them in submission order.
 * Its epoll registration is EPOLLONESHOT with the union of what the waiters
 * need (EPOLLIN for read and accept, EPOLLOUT for write, writev and
 * connect, the asked events for poll), so several requests on one fd, a
 * read and a write on one socket say, share one registration.
 *
 * A request goes through these states:
 *
 *   waiting  - on its fd's wait list; the fd is armed for the union.
 *   direct   - on the direct list: epoll refused the fd (EPERM: a regular
 *              file, a directory), whose operations never wait for
 *              readiness; the next iteration performs them.
 *   done     - handed to loop_complete(); loop.c runs the callback later.
 *
 * Events:
 *
 *   submit        connect() is started at once (EINPROGRESS leads to
 *                 waiting, any other result to done); every other
 *                 operation is put on the wait list and the fd is armed
 *                 (EPOLL_CTL_MOD, or ADD when not registered; EPERM means
 *                 direct; another error completes the request with it).
 *                 Nothing is tried here, so callbacks cannot run inside
 *                 the submitting call.
 *   fd ready      the one-shot registration is now disarmed. Each waiter
 *                 whose events fired (ERR and HUP count for all) tries its
 *                 non-blocking syscall: read, write, writev, accept4;
 *                 connect reads SO_ERROR and getpeername(); poll calls
 *                 poll() with no timeout. A result makes it done;
 *                 -EAGAIN keeps it waiting and skips the later waiters of
 *                 the same direction. Waiters left re-arm the fd.
 *   cancel        a waiting or direct request leaves its list and is done
 *                 with -ECANCELED.
 *   wait          epoll_wait() with the timeout loop.c asks for (0 when
 *                 direct requests are queued); the wake-up eventfd is
 *                 registered level-triggered and drained when it fires.
 *
 * The fd table keeps no state for an fd without waiters: "armed" is forgotten
 * when its list empties, because the caller may then close the fd and the
 * number come back as another file. Re-arming with MOD, falling back to ADD
 * on ENOENT, works whether or not the old registration survived; a stale
 * one-shot event only costs a syscall that finds -EAGAIN.
 */

#define EP_BATCH 64

/* Backend bit of loop_req.flags: the request is on the direct list. */
#define EP_F_DIRECT LOOP_RF_BACKEND

struct ep_fd {
	struct loop_list waiters; /* in submission order */
	uint32_t armed;		  /* the events armed, with EPOLLONESHOT; 0 when none may be */
};

struct ep {
	int epfd;
	int wake_fd;
	struct ep_fd *fds; /* indexed by descriptor */
	size_t nfds;
	struct loop_list direct;
	struct epoll_event ev[EP_BATCH];
};

/* Creates the epoll set with the wake-up eventfd in it; returns 0 or a negative errno. */
static int ep_init(struct loop *l)
{
	struct epoll_event ev = {.events = EPOLLIN};
	struct ep *e = calloc(1, sizeof(*e));
	int ret;

	if (!e)
		return -ENOMEM;
	e->wake_fd = l->wake_fd;
	e->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (e->epfd < 0) {
		ret = -errno;
		goto fail;
	}
	ev.data.u64 = (uint64_t)e->wake_fd;
	if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, e->wake_fd, &ev) < 0) {
		ret = -errno;
		goto fail;
	}
	l->be = e;
	return 0;
fail:
	if (e->epfd >= 0)
		close(e->epfd);
	free(e);
	return ret;
}

/* Closes the epoll set and frees the fd table; waiting requests are abandoned. */
static void ep_fini(struct loop *l)
{
	struct ep *e = l->be;

	close(e->epfd);
	free(e->fds);
	free(e);
}

/* Returns fd's wait list, growing the table as needed; 0 or -ENOMEM. */
static int ep_fd_get(struct ep *e, int fd, struct ep_fd **out)
{
	struct ep_fd *t;
	size_t n;

	if ((size_t)fd >= e->nfds) {
		for (n = e->nfds ? e->nfds : 64; n <= (size_t)fd; n *= 2)
			;
		t = realloc(e->fds, n * sizeof(*t));
		if (!t)
			return -ENOMEM;
		memset(t + e->nfds, 0, (n - e->nfds) * sizeof(*t));
		e->fds = t;
		e->nfds = n;
	}
	*out = &e->fds[fd];
	return 0;
}

/* Removes r from f's waiters, forgetting the arming when none are left. */
static void ep_fd_unlink(struct ep_fd *f, struct loop_req *r)
{
	loop_list_unlink(&f->waiters, r);
	if (!f->waiters.head)
		f->armed = 0;
}

/* The epoll events r waits for (ERR and HUP are always reported). */
static uint32_t ep_req_events(const struct loop_req *r)
{
	switch (r->op) {
	case LOOP_OP_READ:
	case LOOP_OP_ACCEPT:
		return EPOLLIN;
	case LOOP_OP_POLL:
		return loop_poll_to_native(r->events) & (EPOLLIN | EPOLLOUT);
	default:
		return EPOLLOUT;
	}
}

/* Arms f (descriptor fd) one-shot for what its waiters need; returns 0 or a negative errno. */
static int ep_arm(struct ep *e, struct ep_fd *f, int fd)
{
	struct epoll_event ev = {.events = EPOLLONESHOT, .data.u64 = (uint64_t)fd};
	struct loop_req *r;

	for (r = f->waiters.head; r; r = r->next)
		ev.events |= ep_req_events(r);
	if (f->armed && (f->armed & ev.events) == ev.events)
		return 0;
	if (epoll_ctl(e->epfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
		if (errno != ENOENT)
			return -errno;
		if (epoll_ctl(e->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			return -errno;
	}
	f->armed = ev.events;
	return 0;
}

/* Returns a syscall's result as a count or a negative errno. */
static int ep_sys(ssize_t n)
{
	return n < 0 ? -errno : (int)n;
}

/* Starts connect(); returns -EINPROGRESS while under way, else its final result. */
static int ep_connect_start(struct loop_req *r)
{
	int ret = ep_sys(connect((int)r->fd, (const struct sockaddr *)r->addr, r->addrlen));

	/* Interrupted, a non-blocking connect carries on in the background. */
	return ret == -EINTR ? -EINPROGRESS : ret;
}

/* The outcome of a connect that was in progress: 0, -errno, or -EAGAIN if still under way. */
static int ep_connect_result(int fd)
{
	struct sockaddr_storage peer;
	socklen_t len = sizeof(int);
	int err = 0;

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	if (err)
		return -err;
	len = sizeof(peer);
	if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0)
		return errno == ENOTCONN ? -EAGAIN : -errno;
	return 0;
}

/* Which of events (LOOP_POLL_*) fd has now: the set, -EAGAIN for none, -EBADF. */
static int ep_poll_now(int fd, unsigned events)
{
	struct pollfd p = {.fd = fd, .events = (short)loop_poll_to_native(events)};
	int n = poll(&p, 1, 0);

	if (n < 0)
		return -errno;
	if (n == 0)
		return -EAGAIN;
	if (p.revents & POLLNVAL)
		return -EBADF;
	return (int)loop_poll_from_native((unsigned)p.revents);
}

/* Tries r's operation once, without blocking; returns its result, -EAGAIN if not ready. */
static int ep_try_once(struct loop_req *r)
{
	int fd = (int)r->fd;

	switch (r->op) {
	case LOOP_OP_READ:
		return ep_sys(read(fd, r->buf, r->len));
	case LOOP_OP_WRITE:
		return ep_sys(write(fd, r->buf, r->len));
	case LOOP_OP_WRITEV:
		return ep_sys(writev(fd, (const struct iovec *)r->iov, r->iovcnt));
	case LOOP_OP_ACCEPT:
		r->addrlen = sizeof(r->addr);
		return ep_sys(accept4(fd, (struct sockaddr *)r->addr, (socklen_t *)&r->addrlen,
				      SOCK_NONBLOCK | SOCK_CLOEXEC));
	case LOOP_OP_CONNECT:
		return ep_connect_result(fd);
	case LOOP_OP_POLL:
		return ep_poll_now(fd, r->events);
	default:
		return -EINVAL;
	}
}

/* Tries r's operation, retrying when a signal interrupted it. */
static int ep_try(struct loop_req *r)
{
	int ret;

	do
		ret = ep_try_once(r);
	while (ret == -EINTR);
	return ret;
}

/* Puts r on its fd's wait list and arms the fd; returns 0 or -ENOMEM (r not started). */
static int ep_wait_ready(struct loop *l, struct ep *e, struct loop_req *r)
{
	int fd = (int)r->fd;
	struct ep_fd *f;
	int ret;

	ret = ep_fd_get(e, fd, &f);
	if (ret < 0)
		return ret;
	loop_list_append(&f->waiters, r);
	ret = ep_arm(e, f, fd);
	if (ret == 0)
		return 0;
	ep_fd_unlink(f, r);
	if (ret == -EPERM) {
		r->flags |= EP_F_DIRECT;
		loop_list_append(&e->direct, r);
	} else {
		loop_complete(l, r, ret);
	}
	return 0;
}

/* Starts r (see the theory of operation); returns 0 or -ENOMEM. */
static int ep_submit(struct loop *l, struct loop_req *r)
{
	int ret;

	if (r->op == LOOP_OP_CONNECT) {
		ret = ep_connect_start(r);
		if (ret != -EINPROGRESS) {
			loop_complete(l, r, ret);
			return 0;
		}
	}
	return ep_wait_ready(l, l->be, r);
}

/* Takes r off whichever list holds it and completes it with -ECANCELED. */
static void ep_cancel(struct loop *l, struct loop_req *r)
{
	struct ep *e = l->be;

	if (r->flags & EP_F_DIRECT) {
		loop_list_unlink(&e->direct, r);
		r->flags &= ~(unsigned)EP_F_DIRECT;
	} else {
		ep_fd_unlink(&e->fds[r->fd], r);
	}
	loop_complete(l, r, -ECANCELED);
}

/* Completes the waiters of fd that revents lets finish; the rest re-arm the fd. */
static void ep_fd_ready(struct loop *l, struct ep *e, int fd, uint32_t revents)
{
	uint32_t need, blocked = 0;
	struct loop_req *r, *next;
	struct ep_fd *f;
	int ret;

	if ((size_t)fd >= e->nfds)
		return;
	f = &e->fds[fd];
	f->armed = 0;
	for (r = f->waiters.head; r; r = next) {
		next = r->next;
		need = ep_req_events(r);
		if (!(revents & (need | EPOLLERR | EPOLLHUP)) || (need && !(need & ~blocked)))
			continue;
		ret = ep_try(r);
		if (ret == -EAGAIN) {
			blocked |= need;
			continue;
		}
		ep_fd_unlink(f, r);
		loop_complete(l, r, ret);
	}
	if (!f->waiters.head)
		return;
	ret = ep_arm(e, f, fd);
	/* Without an armed fd nothing would wake the waiters: fail them all. */
	while (ret < 0 && (r = f->waiters.head)) {
		ep_fd_unlink(f, r);
		loop_complete(l, r, ret);
	}
}

/* Performs the direct requests queued so far and completes them. */
static void ep_run_direct(struct loop *l, struct ep *e)
{
	struct loop_list q = e->direct;
	struct loop_req *r;

	e->direct.head = e->direct.tail = NULL;
	while ((r = loop_list_pop(&q))) {
		r->flags &= ~(unsigned)EP_F_DIRECT;
		loop_complete(l, r, ep_try(r));
	}
}

/* Empties the wake-up eventfd, which epoll reported readable (so the read does not block). */
static void ep_drain_wake(struct ep *e)
{
	uint64_t v;

	if (read(e->wake_fd, &v, sizeof(v)) < 0)
		return;
}

/* Converts a wait in nanoseconds to epoll_wait()'s milliseconds, rounding up. */
static int ep_timeout_ms(uint64_t ns)
{
	uint64_t ms;

	if (ns == LOOP_WAIT_FOREVER)
		return -1;
	ms = ns / 1000000u + (ns % 1000000u != 0);
	return ms < INT_MAX ? (int)ms : INT_MAX;
}

/* One iteration: wait for readiness, try the ready requests, perform the direct ones. */
static int ep_wait(struct loop *l, uint64_t timeout_ns)
{
	struct ep *e = l->be;
	int i, n;

	n = epoll_wait(e->epfd, e->ev, EP_BATCH, e->direct.head ? 0 : ep_timeout_ms(timeout_ns));
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < n; i++) {
		if (e->ev[i].data.u64 == (uint64_t)e->wake_fd)
			ep_drain_wake(e);
		else
			ep_fd_ready(l, e, (int)e->ev[i].data.u64, e->ev[i].events);
	}
	ep_run_direct(l, e);
	return 0;
}

const struct loop_ops loop_epoll_ops = {
    .init = ep_init,
    .fini = ep_fini,
    .submit = ep_submit,
    .cancel = ep_cancel,
    .wait = ep_wait,
};
