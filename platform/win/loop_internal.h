/* Private to the Windows event loop: struct loop, the per-operation state and the IOCP backend. */
#ifndef VB_PLATFORM_WIN_LOOP_INTERNAL_H
#define VB_PLATFORM_WIN_LOOP_INTERNAL_H

#include <winsock2.h>
#include <windows.h>
#include <stdatomic.h>
#include <stdbool.h>
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

/* Bits of loop_req.flags, cleared before the callback runs. */
enum loop_req_flags {
	LOOP_RF_PENDING = 0x1, /* submitted, callback not yet run */
	LOOP_RF_DONE = 0x2,    /* result known, callback queued */
	LOOP_RF_CANCEL = 0x4,  /* loop_cancel() was called */
};

#define LOOP_WAIT_FOREVER UINT64_MAX

/* The completion keys of the packets on a loop's port. */
enum loop_key {
	LOOP_KEY_IO = 1, /* an OVERLAPPED operation on an associated handle */
	LOOP_KEY_SHIM,	 /* a blocking-thread shim finished its call */
	LOOP_KEY_POST,	 /* loop_post(): lpOverlapped is the struct loop_post */
	LOOP_KEY_WAKE,	 /* loop_stop(): no payload */
};

/* A FIFO of requests linked through loop_req.next/prev. */
struct loop_list {
	struct loop_req *head, *tail;
};

/* Posted work: travels through the port itself, which keeps the order. */
struct loop_post {
	void (*fn)(void *arg);
	void *arg;
};

struct iocp_op;

struct loop {
	HANDLE port;
	atomic_int stop;
	struct loop_list ready;	  /* completions whose callbacks are due, in order */
	struct loop_list timers;  /* pending timers sorted by deadline, then submission */
	struct iocp_op *ops;	  /* operations the OS (or a shim thread) still holds */
	struct iocp_op *spare;	  /* freed operation records, for reuse */
	unsigned recancel;	  /* shim operations whose cancel must be retried */
	bool sock_shim;		  /* VMBUSIFY_IOCP_SOCKET_SHIM=1: socket I/O on the shim */
	unsigned long shim_calls; /* shim threads started (diagnostics and tests) */
};

/* Queues r's callback with res; r stays owned by the loop until the callback runs. */
void loop_complete(struct loop *l, struct loop_req *r, int res);

/* The IOCP backend (loop_iocp.c). */
int iocp_submit(struct loop *l, struct loop_req *r);
void iocp_cancel(struct loop *l, struct loop_req *r);
/* Handles one dequeued I/O or shim packet (forwarding it when another loop owns it). */
void iocp_packet(struct loop *l, OVERLAPPED *ov, DWORD bytes, ULONG_PTR key);
/* Retries the cancels of shim threads that had not yet entered their call. */
void iocp_recancel(struct loop *l);
/* Cancels everything still held and waits until the OS and shim threads let go. */
void iocp_drain(struct loop *l);

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

static inline struct loop_req *loop_list_pop(struct loop_list *q)
{
	struct loop_req *r = q->head;

	if (r)
		loop_list_unlink(q, r);
	return r;
}

#endif
