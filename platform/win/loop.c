/* The Windows event loop: requests, timers, cross-thread posts and the loop pool, over one IOCP
 * each. */
#include <winsock2.h>
#include <windows.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "platform/win/err.h"
#include "platform/win/loop_internal.h"
#include "platform/win/sys_internal.h"

/*
 * Theory of operation
 *
 * Each loop owns one I/O completion port, and everything that can finish
 * arrives on it as a packet:
 *
 *   LOOP_KEY_IO    an overlapped operation (loop_iocp.c) on a handle
 *                  associated with the port; lpOverlapped is the operation.
 *   LOOP_KEY_SHIM  a blocking-thread shim finished its call.
 *   LOOP_KEY_POST  loop_post(): lpOverlapped is the struct loop_post. The
 *                  port is FIFO, so posts run in the order they were made.
 *   LOOP_KEY_WAKE  loop_stop() wants loop_run() to look at its flag.
 *
 * One iteration (loop_run_once) waits in GetQueuedCompletionStatusEx for
 * at most the time to the next timer, turns each I/O packet into a result
 * on the ready list, runs posts as they come, fires the due timers, then
 * runs the ready callbacks, in order. Nothing calls a callback from inside
 * a submitting call: results known at once (an immediate error) go on the
 * ready list too. Timers are a deadline-sorted list, as on Linux (equal
 * deadlines fire in submission order; inserting from the tail is O(1) for
 * the common same-timeout case).
 */

/* The most one read or write moves, as on Linux; results fit in an int. */
#define LOOP_MAX_RW 0x7ffff000u
/* The most buffers one loop_writev() takes (IOV_MAX on Linux). */
#define LOOP_IOV_MAX 1024
/* Packets taken from the port per wait. */
#define LOOP_BATCH 64

static const char *const loop_backend_names[] = {
    [LOOP_BACKEND_AUTO] = "auto",
    [LOOP_BACKEND_URING] = "uring",
    [LOOP_BACKEND_EPOLL] = "epoll",
    [LOOP_BACKEND_IOCP] = "iocp",
};

const char *loop_backend_name(enum loop_backend b)
{
	if ((unsigned)b >= sizeof(loop_backend_names) / sizeof(loop_backend_names[0]))
		return "?";
	return loop_backend_names[b];
}

int loop_backend_parse(const char *name, enum loop_backend *out)
{
	for (unsigned i = 0; i < sizeof(loop_backend_names) / sizeof(loop_backend_names[0]); i++) {
		if (!strcmp(name, loop_backend_names[i])) {
			*out = (enum loop_backend)i;
			return 0;
		}
	}
	if (!strcmp(name, "io_uring")) {
		*out = LOOP_BACKEND_URING;
		return 0;
	}
	return -EINVAL;
}

enum loop_backend loop_backend(const struct loop *l)
{
	return LOOP_BACKEND_IOCP;
}

/* Returns the performance counter in nanoseconds (monotonic). */
uint64_t clock_now_ns(void)
{
	static LARGE_INTEGER freq;
	LARGE_INTEGER now;

	if (!freq.QuadPart)
		QueryPerformanceFrequency(&freq);
	QueryPerformanceCounter(&now);
	return (uint64_t)(now.QuadPart / freq.QuadPart) * 1000000000u +
	       (uint64_t)(now.QuadPart % freq.QuadPart) * 1000000000u / (uint64_t)freq.QuadPart;
}

/*
 * loop_new() - creates a loop on its own completion port.
 * @backend: AUTO or IOCP; VMBUSIFY_BACKEND may say "iocp" or "auto".
 * Return: 0 and the loop (owned by the caller, loop_free()), -EOPNOTSUPP for
 * the Linux backends, -EINVAL for a bad VMBUSIFY_BACKEND, or the system's error.
 */
/* VMBUSIFY_IOCP_SOCKET_SHIM=1, read from the process's environment block (not the CRT's copy). */
static bool loop_socket_shim_asked(void)
{
	char v[4];
	DWORD n = GetEnvironmentVariableA("VMBUSIFY_IOCP_SOCKET_SHIM", v, sizeof(v));

	return n == 1 && v[0] == '1';
}

int loop_new(struct loop **out, enum loop_backend backend)
{
	const char *env = getenv("VMBUSIFY_BACKEND");
	struct loop *l;
	int ret;

	if (backend == LOOP_BACKEND_AUTO && env && *env && loop_backend_parse(env, &backend) < 0) {
		vb_err("VMBUSIFY_BACKEND=%s: expected iocp or auto", env);
		return -EINVAL;
	}
	if (backend != LOOP_BACKEND_AUTO && backend != LOOP_BACKEND_IOCP)
		return -EOPNOTSUPP;
	ret = sys_wsa_start();
	if (ret < 0)
		return ret;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->sock_shim = loop_socket_shim_asked();
	l->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
	if (!l->port) {
		ret = err_win_last();
		free(l);
		return ret;
	}
	*out = l;
	return 0;
}

/* Frees l and the posts not yet run; pending requests are cancelled, their callbacks never run. */
void loop_free(struct loop *l)
{
	OVERLAPPED_ENTRY ev[LOOP_BATCH];
	ULONG n;

	if (!l)
		return;
	iocp_drain(l);
	while (GetQueuedCompletionStatusEx(l->port, ev, LOOP_BATCH, &n, 0, FALSE) && n) {
		for (ULONG i = 0; i < n; i++) {
			if (ev[i].lpCompletionKey == LOOP_KEY_POST)
				free(ev[i].lpOverlapped);
		}
	}
	CloseHandle(l->port);
	free(l);
}

void loop_stop(struct loop *l)
{
	atomic_store(&l->stop, 1);
	PostQueuedCompletionStatus(l->port, 0, LOOP_KEY_WAKE, NULL);
}

/* Thread-safe: runs fn(arg) on the loop thread soon, after the posts made before. 0 or -ENOMEM. */
int loop_post(struct loop *l, void (*fn)(void *arg), void *arg)
{
	struct loop_post *p = malloc(sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->fn = fn;
	p->arg = arg;
	if (!PostQueuedCompletionStatus(l->port, 0, LOOP_KEY_POST, (OVERLAPPED *)p)) {
		free(p);
		return -ENOMEM;
	}
	return 0;
}

void loop_complete(struct loop *l, struct loop_req *r, int res)
{
	r->res = res;
	r->flags |= LOOP_RF_DONE;
	loop_list_append(&l->ready, r);
}

/* Runs the callbacks queued so far (not those they queue); the request is free when its callback
 * starts. */
static int loop_run_ready(struct loop *l)
{
	struct loop_list q = l->ready;
	struct loop_req *r;
	int n = 0;

	l->ready.head = l->ready.tail = NULL;
	while ((r = loop_list_pop(&q))) {
		r->flags = 0;
		r->cb(r, r->res);
		n++;
	}
	return n;
}

/* Inserts r after the timers due no later than it. */
static void loop_timer_insert(struct loop *l, struct loop_req *r)
{
	struct loop_req *at = l->timers.tail;

	while (at && at->deadline_ns > r->deadline_ns)
		at = at->prev;
	r->prev = at;
	r->next = at ? at->next : l->timers.head;
	if (r->next)
		r->next->prev = r;
	else
		l->timers.tail = r;
	if (at)
		at->next = r;
	else
		l->timers.head = r;
}

static void loop_timer_fire(struct loop *l)
{
	struct loop_req *r;
	uint64_t now;

	if (!l->timers.head)
		return;
	now = clock_now_ns();
	while ((r = l->timers.head) && r->deadline_ns <= now) {
		loop_list_unlink(&l->timers, r);
		loop_complete(l, r, 0);
	}
}

/*
 * How long GetQueuedCompletionStatusEx may wait, in milliseconds rounded up
 * (so that a timer is not found early and spun on): at most timeout_ns,
 * until the next timer, 0 with callbacks queued, 1 while a shim cancel waits
 * to be retried.
 */
static DWORD loop_wait_ms(struct loop *l, uint64_t timeout_ns)
{
	uint64_t ns = timeout_ns, now, ms;

	if (l->ready.head)
		return 0;
	if (l->timers.head) {
		now = clock_now_ns();
		ns = l->timers.head->deadline_ns > now ? l->timers.head->deadline_ns - now : 0;
		ns = ns < timeout_ns ? ns : timeout_ns;
	}
	if (l->recancel && ns > 1000000)
		ns = 1000000;
	if (ns == LOOP_WAIT_FOREVER)
		return INFINITE;
	ms = ns / 1000000 + (ns % 1000000 != 0);
	return ms < INFINITE ? (DWORD)ms : INFINITE - 1;
}

/*
 * loop_run_once() - one iteration: wait (at most timeout_ns; 0: poll;
 * UINT64_MAX: until something happens), take the packets, fire due timers and
 * run the ready callbacks. Return: callbacks and posts run, or a negative errno.
 */
int loop_run_once(struct loop *l, uint64_t timeout_ns)
{
	OVERLAPPED_ENTRY ev[LOOP_BATCH];
	ULONG n = 0;
	int ran = 0;

	if (!GetQueuedCompletionStatusEx(l->port, ev, LOOP_BATCH, &n, loop_wait_ms(l, timeout_ns),
					 FALSE)) {
		if (GetLastError() != WAIT_TIMEOUT)
			return err_win_last();
		n = 0;
	}
	for (ULONG i = 0; i < n; i++) {
		struct loop_post *p;

		switch (ev[i].lpCompletionKey) {
		case LOOP_KEY_POST:
			p = (struct loop_post *)ev[i].lpOverlapped;
			p->fn(p->arg);
			free(p);
			ran++;
			break;
		case LOOP_KEY_WAKE:
			break;
		default:
			iocp_packet(l, ev[i].lpOverlapped, ev[i].dwNumberOfBytesTransferred,
				    ev[i].lpCompletionKey);
			break;
		}
	}
	if (l->recancel)
		iocp_recancel(l);
	loop_timer_fire(l);
	return ran + loop_run_ready(l);
}

int loop_run(struct loop *l)
{
	int ret;

	while (!atomic_exchange(&l->stop, 0)) {
		ret = loop_run_once(l, LOOP_WAIT_FOREVER);
		if (ret < 0) {
			vb_err("event loop (iocp): wait failed: errno %d", -ret);
			return ret;
		}
	}
	return 0;
}

/*
 * Submitting
 */

/* Checks that r is free and fd plausible, then fills the common fields; returns 0 or -errno. */
static int loop_req_prep(struct loop_req *r, int op, pl_fd fd, loop_cb cb)
{
	if (r->flags & LOOP_RF_PENDING)
		return -EBUSY;
	if (op != LOOP_OP_TIMER && (fd == (pl_fd)INVALID_SOCKET || fd == 0))
		return -EBADF;
	r->cb = cb;
	r->op = op;
	r->fd = fd;
	r->res = 0;
	r->backend = NULL;
	r->next = r->prev = NULL;
	return 0;
}

static int loop_req_start(struct loop *l, struct loop_req *r)
{
	int ret;

	r->flags = LOOP_RF_PENDING;
	ret = iocp_submit(l, r);
	if (ret < 0)
		r->flags = 0;
	return ret;
}

int loop_read(struct loop *l, struct loop_req *r, pl_fd fd, void *buf, size_t len, loop_cb cb)
{
	int ret = loop_req_prep(r, LOOP_OP_READ, fd, cb);

	if (ret < 0)
		return ret;
	r->buf = buf;
	r->len = len < LOOP_MAX_RW ? len : LOOP_MAX_RW;
	return loop_req_start(l, r);
}

int loop_write(struct loop *l, struct loop_req *r, pl_fd fd, const void *buf, size_t len,
	       loop_cb cb)
{
	int ret = loop_req_prep(r, LOOP_OP_WRITE, fd, cb);

	if (ret < 0)
		return ret;
	r->buf = (void *)buf;
	r->len = len < LOOP_MAX_RW ? len : LOOP_MAX_RW;
	return loop_req_start(l, r);
}

int loop_writev(struct loop *l, struct loop_req *r, pl_fd fd, const struct vb_iov *iov, int iovcnt,
		loop_cb cb)
{
	int ret = loop_req_prep(r, LOOP_OP_WRITEV, fd, cb);

	if (ret < 0)
		return ret;
	if (iovcnt < 0 || iovcnt > LOOP_IOV_MAX)
		return -EINVAL;
	r->iov = iov;
	r->iovcnt = iovcnt;
	return loop_req_start(l, r);
}

/*
 * Accepts a connection on listening socket lfd (the new socket is
 * non-blocking and not inherited; the peer address is left in r->addr), or,
 * when lfd is an overlapped named pipe instance, waits for a client to
 * connect to it (the result is lfd itself).
 */
int loop_accept(struct loop *l, struct loop_req *r, pl_fd lfd, loop_cb cb)
{
	int ret = loop_req_prep(r, LOOP_OP_ACCEPT, lfd, cb);

	if (ret < 0)
		return ret;
	r->addrlen = sizeof(r->addr);
	return loop_req_start(l, r);
}

int loop_connect(struct loop *l, struct loop_req *r, pl_fd fd, const void *addr, size_t addrlen,
		 loop_cb cb)
{
	int ret = loop_req_prep(r, LOOP_OP_CONNECT, fd, cb);

	if (ret < 0)
		return ret;
	if (addrlen > sizeof(r->addr) || addrlen < sizeof(unsigned short))
		return -EINVAL;
	memcpy(r->addr, addr, addrlen);
	r->addrlen = (uint32_t)addrlen;
	return loop_req_start(l, r);
}

int loop_poll(struct loop *l, struct loop_req *r, pl_fd fd, unsigned events, loop_cb cb)
{
	int ret = loop_req_prep(r, LOOP_OP_POLL, fd, cb);

	if (ret < 0)
		return ret;
	r->events = events;
	return loop_req_start(l, r);
}

int loop_timer(struct loop *l, struct loop_req *r, uint64_t ns, loop_cb cb)
{
	uint64_t now = clock_now_ns();
	int ret = loop_req_prep(r, LOOP_OP_TIMER, -1, cb);

	if (ret < 0)
		return ret;
	r->deadline_ns = ns < UINT64_MAX - now ? now + ns : UINT64_MAX;
	r->flags = LOOP_RF_PENDING;
	loop_timer_insert(l, r);
	return 0;
}

/*
 * loop_cancel() - makes pending request r complete soon with -ECANCELED (or
 * its real result, if that raced ahead); its callback still runs exactly once.
 * Return: 0; -EALREADY if r's result is in or a cancel is under way; -ENOENT
 * if r is not pending.
 */
int loop_cancel(struct loop *l, struct loop_req *r)
{
	if (!(r->flags & LOOP_RF_PENDING))
		return -ENOENT;
	if (r->flags & (LOOP_RF_DONE | LOOP_RF_CANCEL))
		return -EALREADY;
	r->flags |= LOOP_RF_CANCEL;
	if (r->op == LOOP_OP_TIMER) {
		loop_list_unlink(&l->timers, r);
		loop_complete(l, r, -ECANCELED);
		return 0;
	}
	iocp_cancel(l, r);
	return 0;
}

/*
 * The pool
 */

struct loop_pool {
	int n;
	int nstarted;
	atomic_uint next;
	struct loop **loops;
	HANDLE *threads;
};

int pool_new(struct loop_pool **out, int nloops, enum loop_backend backend)
{
	SYSTEM_INFO si;
	struct loop_pool *p;
	int i, ret = -ENOMEM;

	if (nloops == 0) {
		GetSystemInfo(&si);
		nloops = (int)si.dwNumberOfProcessors;
	}
	if (nloops <= 0)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->n = nloops;
	p->loops = calloc((size_t)nloops, sizeof(*p->loops));
	p->threads = calloc((size_t)nloops, sizeof(*p->threads));
	if (!p->loops || !p->threads)
		goto fail;
	for (i = 0; i < nloops; i++) {
		ret = loop_new(&p->loops[i], backend);
		if (ret < 0)
			goto fail;
	}
	*out = p;
	return 0;
fail:
	pool_free(p);
	return ret;
}

static DWORD WINAPI pool_thread(void *arg)
{
	loop_run(arg);
	return 0;
}

int pool_start(struct loop_pool *p)
{
	int ret = 0;

	if (p->nstarted)
		return -EALREADY;
	while (p->nstarted < p->n) {
		p->threads[p->nstarted] =
		    CreateThread(NULL, 0, pool_thread, p->loops[p->nstarted], 0, NULL);
		if (!p->threads[p->nstarted]) {
			ret = err_win_last();
			break;
		}
		p->nstarted++;
	}
	if (ret)
		pool_stop(p);
	return ret;
}

/* Stops every loop and joins its thread; not from a pool thread. */
void pool_stop(struct loop_pool *p)
{
	int i;

	for (i = 0; i < p->nstarted; i++)
		loop_stop(p->loops[i]);
	for (i = 0; i < p->nstarted; i++) {
		WaitForSingleObject(p->threads[i], INFINITE);
		CloseHandle(p->threads[i]);
	}
	p->nstarted = 0;
}

void pool_free(struct loop_pool *p)
{
	int i;

	if (!p)
		return;
	pool_stop(p);
	for (i = 0; p->loops && i < p->n; i++)
		loop_free(p->loops[i]);
	free(p->loops);
	free(p->threads);
	free(p);
}

int pool_size(const struct loop_pool *p)
{
	return p->n;
}

struct loop *pool_loop(struct loop_pool *p, int i)
{
	return i >= 0 && i < p->n ? p->loops[i] : NULL;
}

struct loop *pool_pick(struct loop_pool *p)
{
	return p->loops[atomic_fetch_add(&p->next, 1) % (unsigned)p->n];
}
