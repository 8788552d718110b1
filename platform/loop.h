/* The completion-based event loop: submit an operation, get its completion on the loop thread. */
#ifndef VB_PLATFORM_LOOP_H
#define VB_PLATFORM_LOOP_H

#include <stddef.h>
#include <stdint.h>
#include "core/iov.h"

/*
 * Both io_uring and IOCP complete operations rather than signal readiness, so
 * this API does too; the epoll backend emulates it by trying the operation
 * when the descriptor becomes ready.
 *
 * Rules every caller relies on:
 *  - A request is a struct loop_req embedded in the caller's object. It is
 *    owned by the loop from submission until its callback runs; buffers and
 *    iov arrays it names must stay valid until then.
 *  - Callbacks run on the loop thread, never inside the submitting call
 *    (no re-entrancy), with res >= 0 on success (bytes, new descriptor,
 *    revents) or a negative errno.
 *  - A loop and everything submitted to it belong to one thread. Other
 *    threads talk to a loop only through loop_post() and loop_stop().
 *  - loop_cancel() makes a pending request complete soon with -ECANCELED
 *    (or with its real result, if that raced ahead). Close a descriptor only
 *    after every request on it has completed.
 */

typedef intptr_t pl_fd; /* a socket, pipe or device: an int on Linux, SOCKET/HANDLE on Windows */

enum loop_backend {
	LOOP_BACKEND_AUTO = 0, /* io_uring when it works, else epoll; VMBUSIFY_BACKEND overrides */
	LOOP_BACKEND_URING,
	LOOP_BACKEND_EPOLL,
	LOOP_BACKEND_IOCP,
};

enum loop_poll_events {
	LOOP_POLL_IN = 0x1,
	LOOP_POLL_OUT = 0x4,
	LOOP_POLL_ERR = 0x8,
	LOOP_POLL_HUP = 0x10,
};

struct loop;
struct loop_req;
typedef void (*loop_cb)(struct loop_req *req, int res);

struct loop_req {
	loop_cb cb;
	void *data; /* for the caller */
	/* private to the backend: */
	int op;
	pl_fd fd;
	void *buf;
	size_t len;
	const struct vb_iov *iov;
	int iovcnt;
	uint64_t deadline_ns;
	unsigned events;
	unsigned flags;
	int res;
	struct loop_req *next;
	struct loop_req *prev;
	struct loop_req *in_flight_next; /* on the loop's in-flight list (Linux) */
	struct loop_req *in_flight_prev;
	unsigned char addr[128]; /* connect address, or accept peer address */
	uint32_t addrlen;
	void *backend; /* per-backend extra state, e.g. an OVERLAPPED on Windows */
};

int loop_new(struct loop **out, enum loop_backend backend);
void loop_free(struct loop *l);
enum loop_backend loop_backend(const struct loop *l);
const char *loop_backend_name(enum loop_backend b);
int loop_backend_parse(const char *name, enum loop_backend *out);

/* Runs completions until loop_stop(); returns 0 or a negative errno. */
int loop_run(struct loop *l);
/* Runs what is ready, waiting at most timeout_ns (0: do not wait); returns completions run. */
int loop_run_once(struct loop *l, uint64_t timeout_ns);
/* Thread-safe: makes loop_run() return after the current iteration. */
void loop_stop(struct loop *l);
/* Thread-safe: runs fn(arg) on the loop thread soon. Returns 0 or -ENOMEM. */
int loop_post(struct loop *l, void (*fn)(void *arg), void *arg);

int loop_read(struct loop *l, struct loop_req *r, pl_fd fd, void *buf, size_t len, loop_cb cb);
int loop_writev(struct loop *l, struct loop_req *r, pl_fd fd, const struct vb_iov *iov, int iovcnt,
		loop_cb cb);
int loop_write(struct loop *l, struct loop_req *r, pl_fd fd, const void *buf, size_t len,
	       loop_cb cb);
/* Completes with a new non-blocking, close-on-exec descriptor. */
int loop_accept(struct loop *l, struct loop_req *r, pl_fd lfd, loop_cb cb);
/* addr is copied into the request. */
int loop_connect(struct loop *l, struct loop_req *r, pl_fd fd, const void *addr, size_t addrlen,
		 loop_cb cb);
/* One-shot readiness; completes with the LOOP_POLL_* events that are set. */
int loop_poll(struct loop *l, struct loop_req *r, pl_fd fd, unsigned events, loop_cb cb);
/* One-shot timer; completes with 0 after ns nanoseconds. */
int loop_timer(struct loop *l, struct loop_req *r, uint64_t ns, loop_cb cb);
int loop_cancel(struct loop *l, struct loop_req *r);

/* Monotonic clock in nanoseconds. */
uint64_t clock_now_ns(void);

/*
 * A fixed pool of loops, one thread each. Sessions are pinned to one loop;
 * pool_pick() spreads them round-robin.
 */
struct loop_pool;
int pool_new(struct loop_pool **out, int nloops, enum loop_backend backend);
/* Starts one thread per loop. */
int pool_start(struct loop_pool *p);
/* Stops every loop and joins its thread. */
void pool_stop(struct loop_pool *p);
void pool_free(struct loop_pool *p);
int pool_size(const struct loop_pool *p);
struct loop *pool_loop(struct loop_pool *p, int i);
struct loop *pool_pick(struct loop_pool *p);

#endif
