/* The io_uring backend: one ring per loop, the struct loop_req pointer in each SQE's user_data. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <liburing.h>
#include "platform/linux/loop_internal.h"

/*
 * SQEs are queued as requests come and submitted once per iteration, by
 * uring_wait(), which is the only place that enters the kernel. A request
 * that finds the SQ full waits on a backlog, in order, until the next
 * iteration: keeping every io_uring_enter() on the loop thread is what lets
 * the ring be IORING_SETUP_SINGLE_ISSUER even though loops are created on
 * one thread and run on another (the ring starts disabled, and the first
 * wait enables it, which makes the loop thread its issuer).
 *
 * Callers' descriptors are usually O_NONBLOCK. io_uring waits for readiness
 * itself on files whose driver supports "nowait" I/O, but on the others
 * (depending on kernel and driver) it completes a read, write or accept
 * with -EAGAIN; such a request is then parked on an IORING_OP_POLL_ADD and
 * retried when ready, so the caller never sees that -EAGAIN.
 */

#define URING_ENTRIES 256

/* user_data values that are not requests (requests are aligned pointers). */
#define URING_UD_IGNORE 0 /* ASYNC_CANCEL's own completion */
#define URING_UD_WAKE	1 /* the read of the wake-up eventfd */

/* Backend bits of loop_req.flags. */
enum uring_req_flags {
	URING_F_BACKLOG = LOOP_RF_BACKEND << 0,	    /* on the backlog, needing an SQE for its op */
	URING_F_NEED_CANCEL = LOOP_RF_BACKEND << 1, /* on the backlog, needing a cancel SQE */
	URING_F_POLLING = LOOP_RF_BACKEND << 2,	    /* in flight as POLL_ADD, after -EAGAIN */
};

struct uring {
	struct io_uring ring;
	int wake_fd;
	bool enabled;	 /* false while the ring is still IORING_SETUP_R_DISABLED */
	bool wake_armed; /* the eventfd read is in flight */
	uint64_t wake_buf;
	struct loop_list backlog;
};

/* Creates the ring with the best flags this kernel takes; returns 0 or a negative errno. */
static int uring_setup(struct io_uring *ring)
{
	static const unsigned tries[] = {
	    IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_R_DISABLED,
	    IORING_SETUP_COOP_TASKRUN,
	    0,
	};
	int ret = -EINVAL;

	for (unsigned i = 0; i < sizeof(tries) / sizeof(tries[0]) && ret == -EINVAL; i++)
		ret = io_uring_queue_init(URING_ENTRIES, ring, tries[i]);
	return ret;
}

/* Returns 0 if the kernel has every opcode the backend uses, else -ENOSYS. */
static int uring_probe_ops(struct io_uring *ring)
{
	static const int ops[] = {
	    IORING_OP_READ,    IORING_OP_WRITE,	   IORING_OP_WRITEV,	   IORING_OP_ACCEPT,
	    IORING_OP_CONNECT, IORING_OP_POLL_ADD, IORING_OP_ASYNC_CANCEL,
	};
	struct io_uring_probe *probe = io_uring_get_probe_ring(ring);
	int ret = 0;

	if (!probe)
		return -ENOSYS;
	for (unsigned i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		if (!io_uring_opcode_supported(probe, ops[i]))
			ret = -ENOSYS;
	}
	io_uring_free_probe(probe);
	return ret;
}

/* Creates l->be; returns 0, or the kernel's negative errno (-ENOSYS, -EPERM, -ENOMEM...). */
static int uring_init(struct loop *l)
{
	struct uring *u = calloc(1, sizeof(*u));
	int ret;

	if (!u)
		return -ENOMEM;
	ret = uring_setup(&u->ring);
	if (ret < 0)
		goto fail;
	ret = uring_probe_ops(&u->ring);
	if (ret < 0) {
		io_uring_queue_exit(&u->ring);
		goto fail;
	}
	u->enabled = !(u->ring.flags & IORING_SETUP_R_DISABLED);
	u->wake_fd = l->wake_fd;
	l->be = u;
	return 0;
fail:
	free(u);
	return ret;
}

/* Closes the ring, which cancels whatever is still in flight. */
static void uring_fini(struct loop *l)
{
	struct uring *u = l->be;

	io_uring_queue_exit(&u->ring);
	free(u);
}

/* The POLL* events a request parked after -EAGAIN waits for. */
static unsigned uring_retry_events(const struct loop_req *r)
{
	return r->op == LOOP_OP_READ || r->op == LOOP_OP_ACCEPT ? POLLIN : POLLOUT;
}

/* Fills sqe with r's operation (or its readiness wait, when parked). */
static void uring_prep_op(struct io_uring_sqe *sqe, struct loop_req *r)
{
	int fd = (int)r->fd;

	if (r->flags & URING_F_POLLING) {
		io_uring_prep_poll_add(sqe, fd, uring_retry_events(r));
	} else if (r->op == LOOP_OP_READ) {
		io_uring_prep_read(sqe, fd, r->buf, (unsigned)r->len, (uint64_t)-1);
	} else if (r->op == LOOP_OP_WRITE) {
		io_uring_prep_write(sqe, fd, r->buf, (unsigned)r->len, (uint64_t)-1);
	} else if (r->op == LOOP_OP_WRITEV) {
		io_uring_prep_writev(sqe, fd, (const struct iovec *)r->iov, (unsigned)r->iovcnt,
				     (uint64_t)-1);
	} else if (r->op == LOOP_OP_ACCEPT) {
		io_uring_prep_accept(sqe, fd, (struct sockaddr *)r->addr, (socklen_t *)&r->addrlen,
				     SOCK_NONBLOCK | SOCK_CLOEXEC);
	} else if (r->op == LOOP_OP_CONNECT) {
		io_uring_prep_connect(sqe, fd, (const struct sockaddr *)r->addr, r->addrlen);
	} else {
		io_uring_prep_poll_add(sqe, fd, loop_poll_to_native(r->events));
	}
	io_uring_sqe_set_data(sqe, r);
}

/* Fills sqe with a cancel of r, whose own completion is ignored. */
static void uring_prep_cancel(struct io_uring_sqe *sqe, struct loop_req *r)
{
	io_uring_prep_cancel(sqe, r, 0);
	io_uring_sqe_set_data64(sqe, URING_UD_IGNORE);
}

/*
 * Queues an SQE for r: its operation (need = URING_F_BACKLOG) or a cancel of
 * it (URING_F_NEED_CANCEL). Without a free SQE, or behind earlier requests
 * still waiting for one, r goes on the backlog instead.
 */
static void uring_queue(struct uring *u, struct loop_req *r, unsigned need)
{
	struct io_uring_sqe *sqe = NULL;

	if (!u->backlog.head)
		sqe = io_uring_get_sqe(&u->ring);
	if (!sqe) {
		r->flags |= need;
		loop_list_append(&u->backlog, r);
	} else if (need == URING_F_NEED_CANCEL) {
		uring_prep_cancel(sqe, r);
	} else {
		uring_prep_op(sqe, r);
	}
}

/* Starts r; always returns 0 (errors arrive as completions). */
static int uring_submit(struct loop *l, struct loop_req *r)
{
	uring_queue(l->be, r, URING_F_BACKLOG);
	return 0;
}

/* Cancels r: at once if it never reached the ring, else through IORING_OP_ASYNC_CANCEL. */
static void uring_cancel(struct loop *l, struct loop_req *r)
{
	struct uring *u = l->be;

	if (r->flags & URING_F_BACKLOG) {
		loop_list_unlink(&u->backlog, r);
		r->flags &= ~(unsigned)(URING_F_BACKLOG | URING_F_POLLING);
		loop_complete(l, r, -ECANCELED);
		return;
	}
	uring_queue(u, r, URING_F_NEED_CANCEL);
}

/* Returns an SQE, submitting the queued ones to make room; NULL if the kernel took none. */
static struct io_uring_sqe *uring_sqe_or_submit(struct uring *u)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);

	if (!sqe && io_uring_submit(&u->ring) > 0)
		sqe = io_uring_get_sqe(&u->ring);
	return sqe;
}

/* Moves the backlog, and the wake-up read if it is not armed, into the SQ (submitting as needed).
 */
static void uring_flush(struct uring *u)
{
	struct io_uring_sqe *sqe;
	struct loop_req *r;

	if (!u->wake_armed && (sqe = uring_sqe_or_submit(u))) {
		io_uring_prep_read(sqe, u->wake_fd, &u->wake_buf, sizeof(u->wake_buf), 0);
		io_uring_sqe_set_data64(sqe, URING_UD_WAKE);
		u->wake_armed = true;
	}
	while (u->backlog.head && (sqe = uring_sqe_or_submit(u))) {
		r = loop_list_pop(&u->backlog);
		if (r->flags & URING_F_NEED_CANCEL)
			uring_prep_cancel(sqe, r);
		else
			uring_prep_op(sqe, r);
		r->flags &= ~(unsigned)(URING_F_BACKLOG | URING_F_NEED_CANCEL);
	}
}

/* A parked request's readiness wait finished with res: retry the operation or complete. */
static void uring_poll_done(struct loop *l, struct uring *u, struct loop_req *r, int res)
{
	r->flags &= ~(unsigned)URING_F_POLLING;
	if (res >= 0 && !(r->flags & LOOP_RF_CANCEL))
		uring_queue(u, r, URING_F_BACKLOG);
	else
		loop_complete(l, r, res < 0 ? res : -ECANCELED);
}

/* Handles one CQE: the wake-up read, a cancel's own result, or a request's result. */
static void uring_cqe(struct loop *l, struct uring *u, uint64_t ud, int res)
{
	struct loop_req *r = (struct loop_req *)(uintptr_t)ud;

	if (ud == URING_UD_WAKE) {
		u->wake_armed = false;
		return;
	}
	if (ud == URING_UD_IGNORE || ud == LIBURING_UDATA_TIMEOUT)
		return;
	if (r->flags & URING_F_NEED_CANCEL) {
		/* Finished before its cancel could be sent: no need to send it. */
		loop_list_unlink(&u->backlog, r);
		r->flags &= ~(unsigned)URING_F_NEED_CANCEL;
	}
	if (r->flags & URING_F_POLLING) {
		uring_poll_done(l, u, r, res);
	} else if (res == -EAGAIN && r->op != LOOP_OP_CONNECT && r->op != LOOP_OP_POLL) {
		if (r->flags & LOOP_RF_CANCEL) {
			loop_complete(l, r, -ECANCELED);
		} else {
			r->flags |= URING_F_POLLING;
			uring_queue(u, r, URING_F_BACKLOG);
		}
	} else {
		if (r->op == LOOP_OP_POLL && res >= 0)
			res = (int)loop_poll_from_native((unsigned)res);
		loop_complete(l, r, res);
	}
}

/* Handles every CQE in the ring, a batch at a time. */
static void uring_reap(struct loop *l, struct uring *u)
{
	struct io_uring_cqe *cqes[64];
	unsigned i, n;

	do {
		n = io_uring_peek_batch_cqe(&u->ring, cqes, sizeof(cqes) / sizeof(cqes[0]));
		for (i = 0; i < n; i++)
			uring_cqe(l, u, cqes[i]->user_data, cqes[i]->res);
		io_uring_cq_advance(&u->ring, n);
	} while (n == sizeof(cqes) / sizeof(cqes[0]));
}

/* Submits what is queued and waits up to timeout_ns for a completion; 0 or a negative errno. */
static int uring_submit_wait(struct uring *u, uint64_t timeout_ns)
{
	struct __kernel_timespec ts;
	struct io_uring_cqe *cqe;

	if (timeout_ns == 0)
		return io_uring_submit_and_get_events(&u->ring);
	if (timeout_ns == LOOP_WAIT_FOREVER)
		return io_uring_submit_and_wait(&u->ring, 1);
	ts.tv_sec = (long long)(timeout_ns / 1000000000u);
	ts.tv_nsec = (long long)(timeout_ns % 1000000000u);
	return io_uring_submit_and_wait_timeout(&u->ring, &cqe, 1, &ts, NULL);
}

/*
 * Enables a ring created disabled, making the calling thread its single
 * issuer; returns 0 or a negative errno. A raw syscall, because liburing 2.3
 * declares io_uring_enable_rings() but does not export it.
 */
static int uring_enable(struct uring *u)
{
	if (u->enabled)
		return 0;
	if (syscall(__NR_io_uring_register, u->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS, NULL,
		    0) < 0)
		return -errno;
	u->enabled = true;
	return 0;
}

/* One iteration: enable the ring (first time), flush the backlog, submit, wait, reap. */
static int uring_wait(struct loop *l, uint64_t timeout_ns)
{
	struct uring *u = l->be;
	int ret;

	ret = uring_enable(u);
	if (ret < 0)
		return ret;
	uring_flush(u);
	ret = uring_submit_wait(u, timeout_ns);
	/* A timeout, a signal or a short-lived kernel shortage are not errors of the loop. */
	if (ret < 0 && ret != -ETIME && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY)
		return ret;
	uring_reap(l, u);
	return 0;
}

const struct loop_ops loop_uring_ops = {
    .init = uring_init,
    .fini = uring_fini,
    .submit = uring_submit,
    .cancel = uring_cancel,
    .wait = uring_wait,
};
