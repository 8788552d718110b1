/* Private to the Linux event loop: struct loop and the backend vtable (io_uring, epoll). */
#ifndef VB_PLATFORM_LINUX_LOOP_INTERNAL_H
#define VB_PLATFORM_LINUX_LOOP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include "platform/loop.h"

/* What a struct loop_req does (its op field). */
enum loop_op {
	LOOP_OP_NONE = 0,
	LOOP_OP_READ,
	LOOP_OP_WRITE,
	LOOP_OP_WRITEV,
	LOOP_OP_ACCEPT,
	LOOP_OP_CONNECT,
	LOOP_OP_POLL,
	LOOP_OP_TIMER,
};

/*
 * Bits of loop_req.flags. The low byte belongs to loop.c, the rest to the
 * backend that holds the request. All are cleared before the callback runs.
 */
enum loop_req_flags {
	LOOP_RF_PENDING = 0x1,	 /* submitted, callback not yet run */
	LOOP_RF_DONE = 0x2,	 /* result known, callback queued */
	LOOP_RF_CANCEL = 0x4,	 /* loop_cancel() was called */
	LOOP_RF_IN_FLIGHT = 0x8, /* on loop.in_flight: handed to the backend */
	LOOP_RF_BACKEND = 0x100,
};

/* Waiting forever, for loop_ops.wait. */
#define LOOP_WAIT_FOREVER UINT64_MAX

/* A FIFO of requests linked through loop_req.next/prev; a request is on one list at a time. */
struct loop_list {
	struct loop_req *head, *tail;
};

/* Posted work, a FIFO protected by loop.post_lock. */
struct loop_post {
	void (*fn)(void *arg);
	void *arg;
	struct loop_post *next;
};

struct loop_ops;

struct loop {
	const struct loop_ops *ops;
	enum loop_backend backend;
	void *be;    /* the backend's state */
	int wake_fd; /* eventfd (blocking): loop_post() and loop_stop() write it */
	atomic_int stop;
	struct loop_list ready;	 /* completions whose callbacks are due, in order */
	struct loop_list timers; /* pending timers sorted by deadline, then submission */
	/*
	 * Every request handed to the backend, until its callback runs. The
	 * kernel holds io_uring's requests in memory no leak checker scans: this
	 * list keeps what they own reachable, so that LeakSanitizer at exit
	 * reports only memory nothing points to.
	 */
	struct loop_req *in_flight;
	pthread_mutex_t post_lock;
	struct loop_post *post_head, *post_tail;
};

/*
 * A backend. loop.c fills in the request (op, fd, buffers, flags =
 * LOOP_RF_PENDING) before calling submit; the backend reports the result
 * with loop_complete(), never by calling the callback itself.
 */
struct loop_ops {
	/* Sets up l->be using l->wake_fd; returns 0 or a negative errno. */
	int (*init)(struct loop *l);
	/* Frees l->be; requests still in flight are abandoned. */
	void (*fini)(struct loop *l);
	/* Starts r; returns 0 (r will complete) or a negative errno (it will not). */
	int (*submit)(struct loop *l, struct loop_req *r);
	/* r is pending and not done: makes it complete soon, with -ECANCELED or its result. */
	void (*cancel)(struct loop *l, struct loop_req *r);
	/*
	 * Waits up to timeout_ns (0: not at all, LOOP_WAIT_FOREVER: until
	 * something happens) for completions or a wake-up, and hands them to
	 * loop_complete(); drains l->wake_fd. Returns 0 or a negative errno.
	 */
	int (*wait)(struct loop *l, uint64_t timeout_ns);
};

extern const struct loop_ops loop_uring_ops;
extern const struct loop_ops loop_epoll_ops;

/* Queues r's callback with res; r stays owned by the loop until the callback runs. */
void loop_complete(struct loop *l, struct loop_req *r, int res);
/* Appends r to q. */
static inline void loop_list_append(struct loop_list *q, struct loop_req *r)
{
	r->next = NULL;
	r->prev = q->tail;
	if (q->tail)
		q->tail->next = r;
	else
		q->head = r;
	q->tail = r;
}

/* Removes r, which must be on q. */
static inline void loop_list_unlink(struct loop_list *q, struct loop_req *r)
{
	if (r->prev)
		r->prev->next = r->next;
	else
		q->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		q->tail = r->prev;
	r->next = r->prev = NULL;
}

/* Removes and returns the first request of q, or NULL. */
static inline struct loop_req *loop_list_pop(struct loop_list *q)
{
	struct loop_req *r = q->head;

	if (r)
		loop_list_unlink(q, r);
	return r;
}

/* LOOP_POLL_* to POLL* bits and back. */
unsigned loop_poll_to_native(unsigned events);
unsigned loop_poll_from_native(unsigned revents);

#endif
