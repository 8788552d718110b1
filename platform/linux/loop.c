/* The Linux event loop: backend choice, requests, timers, cross-thread posts and the loop pool. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include "core/log.h"
#include "platform/linux/loop_internal.h"

/* The backends hand vb_iov arrays to writev() and io_uring as struct iovec. */
_Static_assert(sizeof(struct vb_iov) == sizeof(struct iovec), "vb_iov size differs from iovec");
_Static_assert(offsetof(struct vb_iov, base) == offsetof(struct iovec, iov_base),
	       "vb_iov.base offset differs from iovec.iov_base");
_Static_assert(offsetof(struct vb_iov, len) == offsetof(struct iovec, iov_len),
	       "vb_iov.len offset differs from iovec.iov_len");
/* accept() writes the peer address and its length straight into the request. */
_Static_assert(sizeof(((struct loop_req *)0)->addr) >= sizeof(struct sockaddr_storage),
	       "loop_req.addr cannot hold a sockaddr_storage");
_Static_assert(sizeof(socklen_t) == sizeof(uint32_t), "socklen_t is not 32 bits");

/* The most one read or write moves, as the kernel's MAX_RW_COUNT; results fit in an int. */
#define LOOP_MAX_RW 0x7ffff000u

static const char *const loop_backend_names[] = {
    [LOOP_BACKEND_AUTO] = "auto",
    [LOOP_BACKEND_URING] = "uring",
    [LOOP_BACKEND_EPOLL] = "epoll",
    [LOOP_BACKEND_IOCP] = "iocp",
};

/* Returns the backend's short name ("uring", "epoll", ...), or "?" for an unknown value. */
const char *loop_backend_name(enum loop_backend b)
{
	if ((unsigned)b >= sizeof(loop_backend_names) / sizeof(loop_backend_names[0]))
		return "?";
	return loop_backend_names[b];
}

/* Accepts a name from loop_backend_name() (and "io_uring"); returns 0 or -EINVAL. */
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

/* Returns the backend a loop runs on (never LOOP_BACKEND_AUTO). */
enum loop_backend loop_backend(const struct loop *l)
{
	return l->backend;
}

/* Returns CLOCK_MONOTONIC in nanoseconds. */
uint64_t clock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Maps LOOP_POLL_* bits to POLL* bits (equal on Linux, mapped to say so). */
unsigned loop_poll_to_native(unsigned events)
{
	unsigned n = 0;

	n |= (events & LOOP_POLL_IN) ? POLLIN : 0;
	n |= (events & LOOP_POLL_OUT) ? POLLOUT : 0;
	n |= (events & LOOP_POLL_ERR) ? POLLERR : 0;
	n |= (events & LOOP_POLL_HUP) ? POLLHUP : 0;
	return n;
}

/* Maps POLL* bits to LOOP_POLL_* bits, dropping the ones the API does not have. */
unsigned loop_poll_from_native(unsigned revents)
{
	unsigned e = 0;

	e |= (revents & POLLIN) ? LOOP_POLL_IN : 0;
	e |= (revents & POLLOUT) ? LOOP_POLL_OUT : 0;
	e |= (revents & POLLERR) ? LOOP_POLL_ERR : 0;
	e |= (revents & POLLHUP) ? LOOP_POLL_HUP : 0;
	return e;
}

/*
 * Backend choice
 */

/* Resolves AUTO through VMBUSIFY_BACKEND (uring|epoll|auto); returns 0 or -EINVAL. */
static int loop_backend_from_env(enum loop_backend *b)
{
	const char *env = getenv("VMBUSIFY_BACKEND");

	if (*b != LOOP_BACKEND_AUTO || !env || !*env)
		return 0;
	if (loop_backend_parse(env, b) < 0) {
		vb_err("VMBUSIFY_BACKEND=%s: expected uring, epoll or auto", env);
		return -EINVAL;
	}
	return 0;
}

/* True when the kernel.io_uring_disabled sysctl exists and is not 0. */
static bool loop_uring_disabled(void)
{
	char c = '0';
	int fd = open("/proc/sys/kernel/io_uring_disabled", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (read(fd, &c, 1) != 1)
		c = '0';
	close(fd);
	return c != '0';
}

/* Sets up backend b on l; returns 0 or a negative errno (l->ops stays NULL then). */
static int loop_init_backend(struct loop *l, enum loop_backend b)
{
	const struct loop_ops *ops;
	int ret;

	if (b == LOOP_BACKEND_URING)
		ops = &loop_uring_ops;
	else if (b == LOOP_BACKEND_EPOLL)
		ops = &loop_epoll_ops;
	else
		return -EOPNOTSUPP;
	ret = ops->init(l);
	if (ret < 0)
		return ret;
	l->ops = ops;
	l->backend = b;
	return 0;
}

/* io_uring when it works, else epoll; returns 0 or a negative errno. */
static int loop_init_auto(struct loop *l)
{
	static atomic_flag told = ATOMIC_FLAG_INIT;
	int ret;

	if (loop_uring_disabled()) {
		if (!atomic_flag_test_and_set(&told))
			vb_info("io_uring disabled by kernel.io_uring_disabled, using epoll");
		return loop_init_backend(l, LOOP_BACKEND_EPOLL);
	}
	ret = loop_init_backend(l, LOOP_BACKEND_URING);
	if (ret == -ENOSYS || ret == -EPERM || ret == -ENOMEM) {
		if (!atomic_flag_test_and_set(&told))
			vb_info("io_uring unavailable (errno %d), using epoll", -ret);
		ret = loop_init_backend(l, LOOP_BACKEND_EPOLL);
	}
	return ret;
}

/*
 * Loop life cycle
 */

/*
 * loop_new() - creates a loop on backend (AUTO: see loop.h).
 * @out: receives the loop, owned by the caller (loop_free()).
 * Return: 0, -EINVAL (bad VMBUSIFY_BACKEND), -EOPNOTSUPP (IOCP), or the
 * backend's error (a forced io_uring that the kernel refuses: -ENOSYS, -EPERM...).
 */
int loop_new(struct loop **out, enum loop_backend backend)
{
	struct loop *l;
	int ret;

	ret = loop_backend_from_env(&backend);
	if (ret < 0)
		return ret;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	ret = -pthread_mutex_init(&l->post_lock, NULL);
	if (ret) {
		free(l);
		return ret;
	}
	/* Blocking on purpose: only the loop thread reads it, after it reported readable. */
	l->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (l->wake_fd < 0) {
		ret = -errno;
		goto fail;
	}
	if (backend == LOOP_BACKEND_AUTO)
		ret = loop_init_auto(l);
	else
		ret = loop_init_backend(l, backend);
	if (ret < 0)
		goto fail;
	*out = l;
	return 0;
fail:
	loop_free(l);
	return ret;
}

/* Frees l and posts not yet run; requests still pending are abandoned, their callbacks never run.
 */
void loop_free(struct loop *l)
{
	struct loop_post *p, *next;

	if (!l)
		return;
	if (l->ops)
		l->ops->fini(l);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	for (p = l->post_head; p; p = next) {
		next = p->next;
		free(p);
	}
	pthread_mutex_destroy(&l->post_lock);
	free(l);
}

/* Any thread: makes the loop's wait return. */
static void loop_wake(struct loop *l)
{
	uint64_t one = 1;
	ssize_t n;

	do
		n = write(l->wake_fd, &one, sizeof(one));
	while (n < 0 && errno == EINTR);
}

/* Thread-safe: makes loop_run() return after its current iteration (or at once, if not running). */
void loop_stop(struct loop *l)
{
	atomic_store(&l->stop, 1);
	loop_wake(l);
}

/*
 * loop_post() - thread-safe: runs fn(arg) on the loop thread soon.
 * Return: 0, or -ENOMEM (fn will not run). Posts run in the order they were made.
 */
int loop_post(struct loop *l, void (*fn)(void *arg), void *arg)
{
	struct loop_post *p = malloc(sizeof(*p));
	bool was_empty;

	if (!p)
		return -ENOMEM;
	p->fn = fn;
	p->arg = arg;
	p->next = NULL;
	pthread_mutex_lock(&l->post_lock);
	was_empty = !l->post_head;
	if (l->post_tail)
		l->post_tail->next = p;
	else
		l->post_head = p;
	l->post_tail = p;
	pthread_mutex_unlock(&l->post_lock);
	/* A non-empty queue has a wake-up on its way: its first post sent one. */
	if (was_empty)
		loop_wake(l);
	return 0;
}

/* Runs and frees the posts queued so far; returns how many ran. */
static int loop_run_posts(struct loop *l)
{
	struct loop_post *p, *next;
	int n = 0;

	pthread_mutex_lock(&l->post_lock);
	p = l->post_head;
	l->post_head = l->post_tail = NULL;
	pthread_mutex_unlock(&l->post_lock);
	for (; p; p = next, n++) {
		next = p->next;
		p->fn(p->arg);
		free(p);
	}
	return n;
}

/*
 * Completions
 */

/* Queues r's callback with res; the callback runs from loop_run_once(), never from here. */
void loop_complete(struct loop *l, struct loop_req *r, int res)
{
	r->res = res;
	r->flags |= LOOP_RF_DONE;
	loop_list_append(&l->ready, r);
}

static void loop_in_flight_add(struct loop *l, struct loop_req *r)
{
	r->in_flight_prev = NULL;
	r->in_flight_next = l->in_flight;
	if (l->in_flight)
		l->in_flight->in_flight_prev = r;
	l->in_flight = r;
}

static void loop_in_flight_remove(struct loop *l, struct loop_req *r)
{
	if (r->in_flight_prev)
		r->in_flight_prev->in_flight_next = r->in_flight_next;
	else
		l->in_flight = r->in_flight_next;
	if (r->in_flight_next)
		r->in_flight_next->in_flight_prev = r->in_flight_prev;
}

/*
 * Runs the callbacks queued so far (not those their callbacks queue, which
 * wait for the next iteration); returns how many ran. The request is free
 * again, and may be resubmitted, when its callback starts.
 */
static int loop_run_ready(struct loop *l)
{
	struct loop_list q = l->ready;
	struct loop_req *r;
	int n = 0;

	l->ready.head = l->ready.tail = NULL;
	while ((r = loop_list_pop(&q))) {
		if (r->flags & LOOP_RF_IN_FLIGHT)
			loop_in_flight_remove(l, r);
		r->flags = 0;
		r->cb(r, r->res);
		n++;
	}
	return n;
}

/*
 * Timers
 */

/* Inserts r after the timers due no later than it: equal deadlines fire in submission order. */
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

/* Completes, with 0, every timer whose deadline has passed. */
static void loop_timer_fire(struct loop *l)
{
	uint64_t now;
	struct loop_req *r;

	if (!l->timers.head)
		return;
	now = clock_now_ns();
	while ((r = l->timers.head) && r->deadline_ns <= now) {
		loop_list_unlink(&l->timers, r);
		loop_complete(l, r, 0);
	}
}

/* How long the backend may wait: at most timeout_ns, until the next timer, 0 if work is queued. */
static uint64_t loop_wait_ns(struct loop *l, uint64_t timeout_ns)
{
	uint64_t now, left;

	if (l->ready.head)
		return 0;
	if (!l->timers.head)
		return timeout_ns;
	now = clock_now_ns();
	left = l->timers.head->deadline_ns > now ? l->timers.head->deadline_ns - now : 0;
	return left < timeout_ns ? left : timeout_ns;
}

/*
 * Running
 */

/*
 * loop_run_once() - one iteration: wait (at most timeout_ns; 0: poll;
 * UINT64_MAX: until something happens), then fire due timers, run posts and
 * run the callbacks that were ready. Return: callbacks and posts run, or a
 * negative errno from the backend.
 */
int loop_run_once(struct loop *l, uint64_t timeout_ns)
{
	int ret, n;

	ret = l->ops->wait(l, loop_wait_ns(l, timeout_ns));
	if (ret < 0)
		return ret;
	loop_timer_fire(l);
	n = loop_run_posts(l);
	return n + loop_run_ready(l);
}

/* Iterates until loop_stop() (which it consumes); returns 0 or the backend's negative errno. */
int loop_run(struct loop *l)
{
	int ret;

	while (!atomic_exchange(&l->stop, 0)) {
		ret = loop_run_once(l, LOOP_WAIT_FOREVER);
		if (ret < 0) {
			vb_err("event loop (%s): wait failed: errno %d",
			       loop_backend_name(l->backend), -ret);
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
	if (op != LOOP_OP_TIMER && (fd < 0 || fd > INT_MAX))
		return -EBADF;
	r->cb = cb;
	r->op = op;
	r->fd = fd;
	r->res = 0;
	r->next = r->prev = NULL;
	return 0;
}

/* Hands a prepared request to the backend; returns 0 (cb will run once) or -errno (it will not). */
static int loop_req_start(struct loop *l, struct loop_req *r)
{
	int ret;

	r->flags = LOOP_RF_PENDING;
	ret = l->ops->submit(l, r);
	if (ret < 0) {
		r->flags = 0;
		return ret;
	}
	/* The backend may have completed r already (flags changed): it is still in flight. */
	r->flags |= LOOP_RF_IN_FLIGHT;
	loop_in_flight_add(l, r);
	return ret;
}

/* Reads up to len bytes into buf; completes with the count (0 at end of file) or -errno. */
int loop_read(struct loop *l, struct loop_req *r, pl_fd fd, void *buf, size_t len, loop_cb cb)
{
	int ret = loop_req_prep(r, LOOP_OP_READ, fd, cb);

	if (ret < 0)
		return ret;
	r->buf = buf;
	r->len = len < LOOP_MAX_RW ? len : LOOP_MAX_RW;
	return loop_req_start(l, r);
}

/* Writes len bytes from buf; completes with the count written (maybe short) or -errno. */
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

/* Writes iovcnt (0..IOV_MAX) buffers; completes with the count written (maybe short) or -errno. */
int loop_writev(struct loop *l, struct loop_req *r, pl_fd fd, const struct vb_iov *iov, int iovcnt,
		loop_cb cb)
{
	int ret = loop_req_prep(r, LOOP_OP_WRITEV, fd, cb);

	if (ret < 0)
		return ret;
	if (iovcnt < 0 || iovcnt > IOV_MAX)
		return -EINVAL;
	r->iov = iov;
	r->iovcnt = iovcnt;
	return loop_req_start(l, r);
}

/*
 * Accepts a connection on listening socket lfd; completes with the new
 * descriptor (non-blocking, close-on-exec, owned by the callback) or -errno.
 * The peer address is left in r->addr, its length in r->addrlen.
 */
int loop_accept(struct loop *l, struct loop_req *r, pl_fd lfd, loop_cb cb)
{
	int ret = loop_req_prep(r, LOOP_OP_ACCEPT, lfd, cb);

	if (ret < 0)
		return ret;
	r->addrlen = sizeof(r->addr);
	return loop_req_start(l, r);
}

/* Connects fd to addr (copied; at most sizeof(r->addr) bytes); completes with 0 or -errno. */
int loop_connect(struct loop *l, struct loop_req *r, pl_fd fd, const void *addr, size_t addrlen,
		 loop_cb cb)
{
	int ret = loop_req_prep(r, LOOP_OP_CONNECT, fd, cb);

	if (ret < 0)
		return ret;
	if (addrlen > sizeof(r->addr))
		return -EINVAL;
	memcpy(r->addr, addr, addrlen);
	r->addrlen = (uint32_t)addrlen;
	return loop_req_start(l, r);
}

/* Waits once for any of events (LOOP_POLL_*; ERR and HUP always count); completes with them. */
int loop_poll(struct loop *l, struct loop_req *r, pl_fd fd, unsigned events, loop_cb cb)
{
	int ret = loop_req_prep(r, LOOP_OP_POLL, fd, cb);

	if (ret < 0)
		return ret;
	r->events = events;
	return loop_req_start(l, r);
}

/* Completes with 0 once ns nanoseconds have passed (on a later iteration, even for 0). */
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
 * Return: 0; -EALREADY if r's result is already in or a cancel is under
 * way; -ENOENT if r is not pending.
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
	l->ops->cancel(l, r);
	return 0;
}

/*
 * The pool
 */

struct loop_pool {
	int n;
	int nstarted; /* threads running, 0 when stopped */
	atomic_uint next;
	struct loop **loops;
	pthread_t *threads;
};

/*
 * pool_new() - creates nloops loops (0: one per online CPU) on backend.
 * @out: receives the pool, owned by the caller (pool_free()).
 * Return: 0 or a negative errno (-EINVAL for nloops < 0, loop_new()'s errors).
 */
int pool_new(struct loop_pool **out, int nloops, enum loop_backend backend)
{
	struct loop_pool *p;
	int i, ret = -ENOMEM;

	if (nloops == 0)
		nloops = (int)sysconf(_SC_NPROCESSORS_ONLN);
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

/* A pool thread: runs its loop until loop_stop(). */
static void *pool_thread(void *arg)
{
	loop_run(arg);
	return NULL;
}

/*
 * pool_start() - starts one thread per loop, with every signal blocked so that
 * signals go to the application's own threads. Return: 0, -EALREADY, or
 * pthread_create()'s negative errno (the threads already started are stopped).
 */
int pool_start(struct loop_pool *p)
{
	sigset_t all, old;
	int ret = 0;

	if (p->nstarted)
		return -EALREADY;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	while (p->nstarted < p->n) {
		ret = -pthread_create(&p->threads[p->nstarted], NULL, pool_thread,
				      p->loops[p->nstarted]);
		if (ret)
			break;
		p->nstarted++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret)
		pool_stop(p);
	return ret;
}

/*
 * Stops every loop and joins its thread; does nothing if the pool is not
 * running. Not from a pool thread, which would wait for itself.
 */
void pool_stop(struct loop_pool *p)
{
	int i;

	for (i = 0; i < p->nstarted; i++)
		loop_stop(p->loops[i]);
	for (i = 0; i < p->nstarted; i++)
		pthread_join(p->threads[i], NULL);
	p->nstarted = 0;
}

/* Stops the pool if running, then frees it and its loops. Accepts NULL. */
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

/* Returns the number of loops. */
int pool_size(const struct loop_pool *p)
{
	return p->n;
}

/* Returns loop i (0 <= i < pool_size()), or NULL. The pool keeps ownership. */
struct loop *pool_loop(struct loop_pool *p, int i)
{
	return i >= 0 && i < p->n ? p->loops[i] : NULL;
}

/* Thread-safe: returns the next loop, round-robin. The pool keeps ownership. */
struct loop *pool_pick(struct loop_pool *p)
{
	return p->loops[atomic_fetch_add(&p->next, 1) % (unsigned)p->n];
}
