/* The IOCP backend: each request becomes an overlapped operation, or a blocking call on a helper
 * thread. */
#include <winsock2.h>
#include <windows.h>
#include <mswsock.h>
#include <winternl.h>
#include <ws2tcpip.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include "platform/win/err.h"
#include "platform/win/loop_internal.h"

/*
 * Theory of operation
 *
 * A submitted request gets an operation record (struct iocp_op), which
 * embeds the OVERLAPPED the system writes to: a completion packet's
 * lpOverlapped is the record, and the record names its request and loop.
 * The record lives on the loop's list of held operations until its packet
 * has been handled, so the OVERLAPPED and the buffers outlive the system's
 * use of them. How a request is carried out depends on its handle:
 *
 *   socket          WSARecv, WSASend, AcceptEx (then SO_UPDATE_ACCEPT_CONTEXT),
 *                   ConnectEx after binding to the wildcard address (then
 *                   SO_UPDATE_CONNECT_CONTEXT); poll is IOCTL_AFD_POLL, the
 *                   readiness request of the socket driver, as libuv does.
 *   overlapped      named pipes and other handles opened with
 *   handle          FILE_FLAG_OVERLAPPED: ReadFile, WriteFile (the first
 *                   buffer of a writev: a short write), ConnectNamedPipe for
 *                   accept; poll for input is a zero-byte read, which
 *                   completes when data arrives; output is always reported
 *                   ready.
 *   anything else   synchronous pipes (CreatePipe), consoles, files, and
 *                   for poll waitable objects (a process: proc_watch()):
 *                   the blocking-thread shim. A helper thread makes the blocking
 *                   call, stores the result and posts a LOOP_KEY_SHIM packet
 *                   to the port.
 *   socket, on      reads, writes and polls of a socket whose provider
 *   the shim        refuses overlapped I/O or the port (the fallback kept for
 *                   AF_HYPERV on Windows builds where it would), or of every
 *                   socket with VMBUSIFY_IOCP_SOCKET_SHIM=1 (how the tests
 *                   reach this path under Wine): the helper thread waits with
 *                   WSAPoll in slices of IOCP_SOCK_SLICE_MS, checking for a
 *                   cancel between them, then makes one recv or send.
 *
 * A handle is associated with the port of the loop that first does
 * overlapped I/O on it (a handle takes one port for life). When a loop
 * dequeues the packet of an operation that another loop submitted (its
 * descriptor moved between loops), it forwards the packet to that loop's
 * port, so callbacks always run on the submitting loop's thread. The first
 * loop must therefore outlive the descriptor's use on the others.
 *
 * Results: the packet's status (OVERLAPPED.Internal, an NTSTATUS) goes
 * through err_from_ntstatus(); end of file on a pipe (broken pipe) is a
 * zero-byte read. An operation that fails at once queues no packet; its
 * result goes on the ready list, so that no callback runs inside a submit.
 *
 * Cancel: CancelIoEx() on the operation's OVERLAPPED; the packet then comes
 * with STATUS_CANCELLED, or with the real result if that won. A shim thread
 * is cancelled with CancelSynchronousIo() (and an event for waits); when the
 * thread had not yet entered its call, the loop retries every millisecond
 * until the call returns (the thread also checks the flag before the call).
 * Reads from pipes and consoles may block for ever and are not reliably
 * cancellable (a console read, or any read under Wine), so they are made
 * detachable: the helper thread reads into a bounce buffer of its own, and
 * a cancel that finds the call still running hands the record to the thread
 * (state RUNNING -> DETACHED) and completes the request with -ECANCELED at
 * once; the thread frees the record, and drops what it read, when its call
 * returns. A thread that finished first (RUNNING -> POSTED) has its packet
 * on the way, which the loop takes as usual (the bytes are copied out of the
 * bounce buffer; stdin's, so the copy is cheap).
 * loop_free() cancels what is still held and waits for every packet.
 */

/* The readiness request of the socket driver (AFD), as libuv and wepoll issue it. */
#define IOCP_IOCTL_AFD_POLL	   0x00012024
#define AFD_POLL_RECEIVE	   0x0001
#define AFD_POLL_RECEIVE_EXPEDITED 0x0002
#define AFD_POLL_SEND		   0x0004
#define AFD_POLL_DISCONNECT	   0x0008
#define AFD_POLL_ABORT		   0x0010
#define AFD_POLL_LOCAL_CLOSE	   0x0020
#define AFD_POLL_ACCEPT		   0x0080
#define AFD_POLL_CONNECT_FAIL	   0x0100

struct iocp_afd_poll {
	LARGE_INTEGER timeout;
	ULONG nhandles;
	ULONG exclusive;
	HANDLE handle;
	ULONG events;
	NTSTATUS status;
};

#ifndef FILE_SYNCHRONOUS_IO_ALERT
#define FILE_SYNCHRONOUS_IO_ALERT    0x10
#define FILE_SYNCHRONOUS_IO_NONALERT 0x20
#endif
#define IOCP_FILE_MODE_INFORMATION 16 /* FileModeInformation */

#define IOCP_ADDR_SPACE	   (sizeof(SOCKADDR_STORAGE) + 16) /* AcceptEx wants 16 bytes beyond */
#define IOCP_WSABUF_STACK  64
#define IOCP_BOUNCE_MAX	   (64 * 1024) /* the largest detachable read */
#define IOCP_SOCK_SLICE_MS 50	       /* a socket shim's wait between looks at its cancel flag */

/* Who owns a shim record while its helper thread runs (see the theory of operation). */
enum iocp_shim_state { IOCP_SHIM_RUNNING = 0, IOCP_SHIM_POSTED, IOCP_SHIM_DETACHED };

/* What kind of handle a request is on, which decides how it is carried out. */
enum iocp_kind {
	IOCP_KIND_SOCKET,
	IOCP_KIND_OVERLAPPED, /* opened with FILE_FLAG_OVERLAPPED: pipes */
	IOCP_KIND_SYNC,	      /* synchronous pipes and files: the shim */
	IOCP_KIND_CHAR,	      /* consoles and character devices: the shim */
	IOCP_KIND_WAIT,	      /* poll on a waitable object (a process): the shim waits */
	IOCP_KIND_SOCK_SHIM,  /* a socket's read, write or poll on the shim (see above) */
};

struct iocp_op {
	OVERLAPPED ov; /* first: a packet's lpOverlapped is the record */
	struct loop *loop;
	struct loop_req *req;
	enum iocp_kind kind;
	HANDLE h;		 /* the request's handle, for cancelling */
	SOCKET accepted;	 /* accept: the socket AcceptEx fills */
	HANDLE thread;		 /* shim: the helper thread */
	HANDLE cancel_event;	 /* shim: ends a wait on a character device */
	volatile LONG cancelled; /* shim: cancel asked; read by the helper thread */
	bool recancel;		 /* shim: counted in loop.recancel */
	bool abandoned;		 /* loop_free(): the request is no longer ours to touch */
	int shim_res;		 /* shim: the result, written before the packet is posted */
	void *bounce;		 /* shim: a detachable read's own buffer, or NULL */
	size_t bounce_len;
	volatile LONG state; /* shim: IOCP_SHIM_RUNNING, _POSTED or _DETACHED */
	struct iocp_op *next, *prev;
	union {
		struct iocp_afd_poll afd;
		unsigned char accept_addrs[2 * IOCP_ADDR_SPACE];
	} u;
};

/* ---- records ---- */

static struct iocp_op *iocp_op_new(struct loop *l, struct loop_req *r, enum iocp_kind kind)
{
	struct iocp_op *op = l->spare;

	if (op)
		l->spare = op->next;
	else if (!(op = malloc(sizeof(*op))))
		return NULL;
	memset(op, 0, sizeof(*op));
	op->loop = l;
	op->req = r;
	op->kind = kind;
	op->h = (HANDLE)r->fd;
	op->accepted = INVALID_SOCKET;
	r->backend = op;
	return op;
}

/* Puts op on the list of operations the system holds. */
static void iocp_op_hold(struct loop *l, struct iocp_op *op)
{
	op->prev = NULL;
	op->next = l->ops;
	if (l->ops)
		l->ops->prev = op;
	l->ops = op;
}

/* Takes op off the held list (if on it) and keeps the record for reuse. */
static void iocp_op_release(struct loop *l, struct iocp_op *op, bool held)
{
	if (held) {
		if (op->prev)
			op->prev->next = op->next;
		else
			l->ops = op->next;
		if (op->next)
			op->next->prev = op->prev;
	}
	if (op->recancel)
		l->recancel--;
	if (op->thread)
		CloseHandle(op->thread);
	if (op->cancel_event)
		CloseHandle(op->cancel_event);
	if (op->accepted != INVALID_SOCKET)
		closesocket(op->accepted);
	free(op->bounce);
	op->bounce = NULL;
	if (!op->abandoned)
		op->req->backend = NULL;
	op->next = l->spare;
	l->spare = op;
}

/* The operation failed or finished before the system held it: res goes on the ready list. */
static int iocp_op_now(struct loop *l, struct iocp_op *op, int res)
{
	struct loop_req *r = op->req;

	iocp_op_release(l, op, false);
	loop_complete(l, r, res);
	return 0;
}

/* ---- handles ---- */

/*
 * Tells a socket, an overlapped handle, a synchronous one and a character
 * device apart; for a poll, a handle that is no file at all (a process) is a
 * waitable object.
 */
static int iocp_classify(pl_fd fd, int op, enum iocp_kind *kind)
{
	HANDLE h = (HANDLE)fd;
	IO_STATUS_BLOCK iosb;
	ULONG mode = 0;
	DWORD type;
	int so, len = sizeof(so);

	if (!getsockopt((SOCKET)fd, SOL_SOCKET, SO_TYPE, (char *)&so, &len)) {
		*kind = IOCP_KIND_SOCKET;
		return 0;
	}
	type = GetFileType(h);
	if (type == FILE_TYPE_UNKNOWN && GetLastError() != NO_ERROR) {
		if (op != LOOP_OP_POLL)
			return -EBADF;
		*kind = IOCP_KIND_WAIT;
		return 0;
	}
	if (type == FILE_TYPE_CHAR) {
		*kind = IOCP_KIND_CHAR;
		return 0;
	}
	if (NtQueryInformationFile(h, &iosb, &mode, sizeof(mode),
				   (FILE_INFORMATION_CLASS)IOCP_FILE_MODE_INFORMATION) < 0)
		mode = FILE_SYNCHRONOUS_IO_NONALERT;
	if (mode & (FILE_SYNCHRONOUS_IO_ALERT | FILE_SYNCHRONOUS_IO_NONALERT)) {
		*kind = IOCP_KIND_SYNC;
		return 0;
	}
	/* An overlapped file has no position: every read and write would need an offset. */
	if (type == FILE_TYPE_DISK)
		return -EOPNOTSUPP;
	*kind = IOCP_KIND_OVERLAPPED;
	return 0;
}

/* Associates h with l's port; a handle already associated (here or with another loop) is fine. */
static int iocp_associate(struct loop *l, HANDLE h)
{
	if (CreateIoCompletionPort(h, l->port, LOOP_KEY_IO, 0))
		return 0;
	return GetLastError() == ERROR_INVALID_PARAMETER ? 0 : err_win_last();
}

/* A Winsock extension function (AcceptEx, ConnectEx...) of s's provider, or NULL. */
static void *iocp_extension(SOCKET s, GUID id)
{
	void *fn = NULL;
	DWORD got;

	if (WSAIoctl(s, SIO_GET_EXTENSION_FUNCTION_POINTER, &id, sizeof(id), &fn, sizeof(fn), &got,
		     NULL, NULL))
		return NULL;
	return fn;
}

/* ---- sockets ---- */

/* The error of a Winsock call that returned failure: 1 when it is pending, else a negative errno.
 */
static int iocp_wsa_pending(void)
{
	int e = WSAGetLastError();

	return e == WSA_IO_PENDING ? 1 : err_from_win((unsigned long)e);
}

static int iocp_sock_read(struct loop *l, struct iocp_op *op)
{
	struct loop_req *r = op->req;
	WSABUF b = {.len = (ULONG)r->len, .buf = r->buf};
	DWORD flags = 0;

	if (!WSARecv((SOCKET)r->fd, &b, 1, NULL, &flags, &op->ov, NULL))
		return 1;
	return iocp_wsa_pending();
}

/* WSASend copies the WSABUF array before returning, so it may live on the stack. */
static int iocp_sock_write(struct loop *l, struct iocp_op *op)
{
	struct loop_req *r = op->req;
	WSABUF stack[IOCP_WSABUF_STACK], *b = stack;
	size_t total = 0;
	int n = 0, e;

	if (r->op == LOOP_OP_WRITE) {
		stack[0].len = (ULONG)r->len;
		stack[0].buf = r->buf;
		n = 1;
	} else {
		if (r->iovcnt > IOCP_WSABUF_STACK && !(b = malloc(sizeof(*b) * (size_t)r->iovcnt)))
			return -ENOMEM;
		/* The result is an int: stop before LOOP_MAX_RW-ish totals, a short write. */
		for (int i = 0; i < r->iovcnt && total < INT_MAX / 2; i++) {
			size_t len = r->iov[i].len;

			len = len < INT_MAX / 2 - total ? len : INT_MAX / 2 - total;
			b[n].len = (ULONG)len;
			b[n].buf = r->iov[i].base;
			total += len;
			n++;
		}
	}
	e = WSASend((SOCKET)r->fd, b, (DWORD)n, NULL, 0, &op->ov, NULL) ? iocp_wsa_pending() : 1;
	if (b != stack)
		free(b);
	return e;
}

/* AcceptEx with a new socket of the listener's family, type and protocol. */
static int iocp_sock_accept(struct loop *l, struct iocp_op *op)
{
	static const GUID id = WSAID_ACCEPTEX;
	SOCKET ls = (SOCKET)op->req->fd;
	WSAPROTOCOL_INFOW pi;
	LPFN_ACCEPTEX accept_ex;
	int len = sizeof(pi);
	DWORD got;

	if (getsockopt(ls, SOL_SOCKET, SO_PROTOCOL_INFOW, (char *)&pi, &len))
		return err_wsa_last();
	accept_ex = (LPFN_ACCEPTEX)iocp_extension(ls, id);
	if (!accept_ex)
		return err_wsa_last();
	op->accepted = WSASocketW(pi.iAddressFamily, pi.iSocketType, pi.iProtocol, NULL, 0,
				  WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
	if (op->accepted == INVALID_SOCKET)
		return err_wsa_last();
	if (accept_ex(ls, op->accepted, op->u.accept_addrs, 0, IOCP_ADDR_SPACE, IOCP_ADDR_SPACE,
		      &got, &op->ov))
		return 1;
	return iocp_wsa_pending();
}

/* ConnectEx needs a bound socket: the wildcard address of the target's family. */
static int iocp_sock_bind_any(SOCKET s, const struct loop_req *r)
{
	unsigned char any[sizeof(r->addr)] = {0};
	int len;

	memcpy(any, r->addr, sizeof(unsigned short)); /* the family */
	switch (((const struct sockaddr *)r->addr)->sa_family) {
	case AF_INET:
		len = sizeof(struct sockaddr_in);
		break;
	case AF_INET6:
		len = sizeof(struct sockaddr_in6);
		break;
	default:
		len = (int)r->addrlen; /* AF_HYPERV: the all-zero VM and service are the wildcard */
		break;
	}
	if (!bind(s, (struct sockaddr *)any, len) || WSAGetLastError() == WSAEINVAL)
		return 0; /* WSAEINVAL: bound already */
	return err_wsa_last();
}

static int iocp_sock_connect(struct loop *l, struct iocp_op *op)
{
	static const GUID id = WSAID_CONNECTEX;
	struct loop_req *r = op->req;
	SOCKET s = (SOCKET)r->fd;
	LPFN_CONNECTEX connect_ex;
	int ret;

	ret = iocp_sock_bind_any(s, r);
	if (ret < 0)
		return ret;
	connect_ex = (LPFN_CONNECTEX)iocp_extension(s, id);
	if (!connect_ex)
		return err_wsa_last();
	if (connect_ex(s, (const struct sockaddr *)r->addr, (int)r->addrlen, NULL, 0, NULL,
		       &op->ov))
		return 1;
	return iocp_wsa_pending();
}

/* The AFD events that answer LOOP_POLL_* events (errors and hang-ups always). */
static ULONG iocp_afd_events(unsigned events)
{
	ULONG e = AFD_POLL_ABORT | AFD_POLL_LOCAL_CLOSE | AFD_POLL_CONNECT_FAIL;

	if (events & LOOP_POLL_IN)
		e |= AFD_POLL_RECEIVE | AFD_POLL_RECEIVE_EXPEDITED | AFD_POLL_ACCEPT |
		     AFD_POLL_DISCONNECT;
	if (events & LOOP_POLL_OUT)
		e |= AFD_POLL_SEND;
	return e;
}

static unsigned iocp_afd_revents(ULONG e)
{
	unsigned ev = 0;

	if (e &
	    (AFD_POLL_RECEIVE | AFD_POLL_RECEIVE_EXPEDITED | AFD_POLL_ACCEPT | AFD_POLL_DISCONNECT))
		ev |= LOOP_POLL_IN;
	if (e & AFD_POLL_SEND)
		ev |= LOOP_POLL_OUT;
	if (e & (AFD_POLL_ABORT | AFD_POLL_CONNECT_FAIL | AFD_POLL_LOCAL_CLOSE))
		ev |= LOOP_POLL_ERR | LOOP_POLL_HUP;
	if (e & AFD_POLL_ABORT)
		ev |= LOOP_POLL_IN;
	return ev;
}

/* Polls the socket's base handle (below any layered provider) through the AFD driver. */
static int iocp_sock_poll(struct loop *l, struct iocp_op *op)
{
	struct loop_req *r = op->req;
	SOCKET base = (SOCKET)r->fd;
	DWORD got;

	if (WSAIoctl((SOCKET)r->fd, SIO_BASE_HANDLE, NULL, 0, &base, sizeof(base), &got, NULL,
		     NULL))
		base = (SOCKET)r->fd;
	op->u.afd.timeout.QuadPart = INT64_MAX;
	op->u.afd.nhandles = 1;
	op->u.afd.exclusive = FALSE;
	op->u.afd.handle = (HANDLE)base;
	op->u.afd.events = iocp_afd_events(r->events);
	if (DeviceIoControl((HANDLE)base, IOCP_IOCTL_AFD_POLL, &op->u.afd, sizeof(op->u.afd),
			    &op->u.afd, sizeof(op->u.afd), NULL, &op->ov))
		return 1;
	return GetLastError() == ERROR_IO_PENDING ? 1 : err_win_last();
}

/* ---- overlapped handles (named pipes) ---- */

/* The error of a file call that returned failure: 1 when pending, 0 for end of file, else -errno.
 */
static int iocp_file_pending(bool reading)
{
	DWORD e = GetLastError();

	if (e == ERROR_IO_PENDING || (reading && e == ERROR_MORE_DATA))
		return 1;
	if (reading && (e == ERROR_BROKEN_PIPE || e == ERROR_HANDLE_EOF))
		return 0;
	return err_from_win(e);
}

/* The first non-empty buffer of a request: a pipe write moves one buffer (a short writev). */
static void iocp_first_buffer(const struct loop_req *r, void **buf, size_t *len)
{
	*buf = r->buf;
	*len = r->len;
	if (r->op != LOOP_OP_WRITEV)
		return;
	*len = 0;
	for (int i = 0; i < r->iovcnt && !*len; i++) {
		*buf = r->iov[i].base;
		*len = r->iov[i].len;
	}
	if (*len > INT_MAX / 2)
		*len = INT_MAX / 2;
}

static int iocp_file_start(struct loop *l, struct iocp_op *op)
{
	struct loop_req *r = op->req;
	HANDLE h = (HANDLE)r->fd;
	static char zero;
	void *buf;
	size_t len;

	switch (r->op) {
	case LOOP_OP_READ:
		if (ReadFile(h, r->buf, (DWORD)r->len, NULL, &op->ov))
			return 1;
		return iocp_file_pending(true);
	case LOOP_OP_WRITE:
	case LOOP_OP_WRITEV:
		iocp_first_buffer(r, &buf, &len);
		if (!len)
			return 0;
		if (WriteFile(h, buf, (DWORD)len, NULL, &op->ov))
			return 1;
		return iocp_file_pending(false);
	case LOOP_OP_ACCEPT:
		if (ConnectNamedPipe(h, &op->ov))
			return 1;
		if (GetLastError() == ERROR_PIPE_CONNECTED || GetLastError() == ERROR_NO_DATA)
			return 0; /* a client came first (and maybe left): no packet follows */
		return iocp_file_pending(false);
	case LOOP_OP_POLL:
		if (!(r->events & LOOP_POLL_IN))
			return 0;
		if (ReadFile(h, &zero, 0, NULL, &op->ov))
			return 1;
		return iocp_file_pending(true);
	default:
		return -EOPNOTSUPP;
	}
}

/* An overlapped pipe operation that ended at once (ret 0): its result without a packet. */
static int iocp_file_now(const struct loop_req *r)
{
	switch (r->op) {
	case LOOP_OP_ACCEPT:
		return r->fd <= INT_MAX ? (int)r->fd : -EMFILE;
	case LOOP_OP_POLL:
		return r->events & LOOP_POLL_IN ? LOOP_POLL_IN | LOOP_POLL_HUP : LOOP_POLL_OUT;
	default:
		return 0; /* end of file, or nothing to write */
	}
}

/* ---- the blocking-thread shim ---- */

static int iocp_shim_rw(struct iocp_op *op)
{
	struct loop_req *r = op->req;
	HANDLE h = (HANDLE)r->fd;
	DWORD n = 0, e;
	void *buf;
	size_t len;
	BOOL ok;

	if (r->op == LOOP_OP_READ && op->bounce) {
		ok = ReadFile(h, op->bounce, (DWORD)op->bounce_len, &n, NULL);
	} else if (r->op == LOOP_OP_READ) {
		ok = ReadFile(h, r->buf, (DWORD)r->len, &n, NULL);
	} else {
		iocp_first_buffer(r, &buf, &len);
		ok = !len || WriteFile(h, buf, (DWORD)len, &n, NULL);
	}
	if (ok)
		return (int)n;
	e = GetLastError();
	if (r->op == LOOP_OP_READ && (e == ERROR_BROKEN_PIPE || e == ERROR_HANDLE_EOF))
		return 0;
	return err_from_win(e);
}

/* Readiness without an asynchronous form: a blocking zero-byte read, or a wait on the handle. */
static int iocp_shim_poll(struct iocp_op *op)
{
	struct loop_req *r = op->req;
	HANDLE h = (HANDLE)r->fd, both[2] = {h, op->cancel_event};
	char zero;
	DWORD n;

	if (!(r->events & LOOP_POLL_IN))
		return LOOP_POLL_OUT;
	if (op->kind == IOCP_KIND_CHAR || op->kind == IOCP_KIND_WAIT) {
		switch (WaitForMultipleObjects(2, both, FALSE, INFINITE)) {
		case WAIT_OBJECT_0:
			return LOOP_POLL_IN;
		case WAIT_OBJECT_0 + 1:
			return -ECANCELED;
		default:
			return err_win_last();
		}
	}
	if (ReadFile(h, &zero, 0, &n, NULL))
		return LOOP_POLL_IN;
	if (GetLastError() == ERROR_BROKEN_PIPE)
		return LOOP_POLL_IN | LOOP_POLL_HUP;
	return err_win_last();
}

/* The WSAPoll events for a request on the socket shim. */
static short iocp_sock_shim_events(const struct loop_req *r)
{
	if (r->op == LOOP_OP_POLL)
		return (short)((r->events & LOOP_POLL_IN ? POLLRDNORM : 0) |
			       (r->events & LOOP_POLL_OUT ? POLLWRNORM : 0));
	return r->op == LOOP_OP_READ ? POLLRDNORM : POLLWRNORM;
}

static int iocp_sock_shim_revents(const struct loop_req *r, short re)
{
	unsigned ev = 0;

	if (re & (POLLRDNORM | POLLHUP))
		ev |= LOOP_POLL_IN;
	if (re & POLLWRNORM)
		ev |= LOOP_POLL_OUT;
	if (re & POLLHUP)
		ev |= LOOP_POLL_HUP;
	if (re & (POLLERR | POLLNVAL))
		ev |= LOOP_POLL_ERR | LOOP_POLL_HUP;
	return (int)(ev & (r->events | LOOP_POLL_ERR | LOOP_POLL_HUP));
}

/* Sends every buffer of a write or writev at once (WSASend, no OVERLAPPED); bytes or -1. */
static int iocp_sock_shim_send(struct loop_req *r)
{
	WSABUF stack[IOCP_WSABUF_STACK], *b = stack;
	DWORD sent = 0;
	int n = 0, ret;

	if (r->op == LOOP_OP_WRITE) {
		stack[0].len = (ULONG)(r->len < INT_MAX / 2 ? r->len : INT_MAX / 2);
		stack[0].buf = r->buf;
		n = 1;
	} else {
		if (r->iovcnt > IOCP_WSABUF_STACK &&
		    !(b = malloc(sizeof(*b) * (size_t)r->iovcnt))) {
			WSASetLastError(WSAENOBUFS);
			return -1;
		}
		/* The result is an int: stop before INT_MAX / 2, a short write. */
		for (size_t total = 0; n < r->iovcnt && total < INT_MAX / 2; n++) {
			size_t len = r->iov[n].len;

			len = len < INT_MAX / 2 - total ? len : INT_MAX / 2 - total;
			b[n].len = (ULONG)len;
			b[n].buf = r->iov[n].base;
			total += len;
		}
	}
	ret = WSASend((SOCKET)r->fd, b, (DWORD)n, &sent, 0, NULL, NULL) ? -1 : (int)sent;
	if (b != stack)
		free(b);
	return ret;
}

/* One recv or send on a non-blocking socket; 1 + bytes, 0 to wait again, or a negative errno. */
static int iocp_sock_shim_io(struct loop_req *r)
{
	int n;

	if (r->op == LOOP_OP_READ)
		n = recv((SOCKET)r->fd, r->buf, (int)(r->len < INT_MAX / 2 ? r->len : INT_MAX / 2),
			 0);
	else
		n = iocp_sock_shim_send(r);
	if (n >= 0)
		return n + 1;
	return WSAGetLastError() == WSAEWOULDBLOCK ? 0 : err_wsa_last();
}

/* A socket's read, write or poll on the helper thread, in cancellable slices. */
static int iocp_sock_shim(struct iocp_op *op)
{
	struct loop_req *r = op->req;
	WSAPOLLFD p = {.fd = (SOCKET)r->fd, .events = iocp_sock_shim_events(r)};
	int n;

	for (;;) {
		if (op->cancelled)
			return -ECANCELED;
		p.revents = 0;
		n = WSAPoll(&p, 1, IOCP_SOCK_SLICE_MS);
		if (n < 0)
			return err_wsa_last();
		if (!n)
			continue;
		if (r->op == LOOP_OP_POLL)
			return iocp_sock_shim_revents(r, p.revents);
		n = iocp_sock_shim_io(r);
		if (n)
			return n > 0 ? n - 1 : n;
	}
}

/* The helper thread: one blocking call, then the result to the loop's port. */
static DWORD WINAPI iocp_shim_main(void *arg)
{
	struct iocp_op *op = arg;
	int res;

	if (op->cancelled)
		res = -ECANCELED;
	else if (op->kind == IOCP_KIND_SOCK_SHIM)
		res = iocp_sock_shim(op);
	else if (op->req->op == LOOP_OP_POLL)
		res = iocp_shim_poll(op);
	else
		res = iocp_shim_rw(op);
	op->shim_res = res;
	if (InterlockedCompareExchange(&op->state, IOCP_SHIM_POSTED, IOCP_SHIM_RUNNING) ==
	    IOCP_SHIM_DETACHED) {
		/* The loop gave the record up: nobody waits for this result. */
		free(op->bounce);
		free(op);
		return 0;
	}
	/* op belongs to the loop again from here on. */
	PostQueuedCompletionStatus(op->loop->port, 0, LOOP_KEY_SHIM, &op->ov);
	return 0;
}

/* A read that may block for ever: from a pipe or a console (not from a file on disk). */
static bool iocp_shim_detachable(const struct iocp_op *op)
{
	if (op->req->op != LOOP_OP_READ || op->kind == IOCP_KIND_SOCK_SHIM)
		return false;
	return op->kind == IOCP_KIND_CHAR || GetFileType(op->h) == FILE_TYPE_PIPE;
}

static int iocp_shim_start(struct loop *l, struct iocp_op *op)
{
	struct loop_req *r = op->req;

	if (r->op == LOOP_OP_ACCEPT || r->op == LOOP_OP_CONNECT)
		return -EOPNOTSUPP;
	if (r->op == LOOP_OP_POLL && !(r->events & LOOP_POLL_IN) && op->kind != IOCP_KIND_SOCK_SHIM)
		return iocp_op_now(l, op, LOOP_POLL_OUT);
	if (r->op == LOOP_OP_POLL && (op->kind == IOCP_KIND_CHAR || op->kind == IOCP_KIND_WAIT) &&
	    !(op->cancel_event = CreateEventW(NULL, TRUE, FALSE, NULL)))
		return err_win_last();
	if (iocp_shim_detachable(op)) {
		op->bounce_len = r->len < IOCP_BOUNCE_MAX ? r->len : IOCP_BOUNCE_MAX;
		op->bounce = malloc(op->bounce_len ? op->bounce_len : 1);
		if (!op->bounce)
			return -ENOMEM;
	}
	iocp_op_hold(l, op);
	l->shim_calls++;
	op->thread = CreateThread(NULL, 64 * 1024, iocp_shim_main, op,
				  STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
	if (!op->thread) {
		int ret = err_win_last();

		iocp_op_release(l, op, true);
		return ret;
	}
	return 0;
}

/* ---- submitting ---- */

/* Starts r's operation on a socket; 1 pending (a packet follows), 0 or -errno: done now. */
static int iocp_sock_start(struct loop *l, struct iocp_op *op)
{
	switch (op->req->op) {
	case LOOP_OP_READ:
		return iocp_sock_read(l, op);
	case LOOP_OP_WRITE:
	case LOOP_OP_WRITEV:
		return iocp_sock_write(l, op);
	case LOOP_OP_ACCEPT:
		return iocp_sock_accept(l, op);
	case LOOP_OP_CONNECT:
		return iocp_sock_connect(l, op);
	case LOOP_OP_POLL:
		return iocp_sock_poll(l, op);
	default:
		return -EOPNOTSUPP;
	}
}

/*
 * iocp_submit() - starts r. Return: 0 when r's callback will run (maybe with
 * an error that showed at once), or a negative errno when the request could
 * not be made at all (a bad handle, no memory) and the callback will not run.
 */
/* True for a socket request that the socket shim can carry (not accept, not connect). */
static bool iocp_sock_shimmable(const struct loop_req *r)
{
	return r->op == LOOP_OP_READ || r->op == LOOP_OP_WRITE || r->op == LOOP_OP_WRITEV ||
	       r->op == LOOP_OP_POLL;
}

/* The errors of a provider that has no overlapped form of an operation. */
static bool iocp_sock_refused(int ret)
{
	return ret == -EOPNOTSUPP || ret == -ENOTSUP || ret == -EINVAL || ret == -ENOSYS;
}

/* Starts op on the shim; on failure releases it. Returns 0 or a negative errno. */
static int iocp_shim_submit(struct loop *l, struct iocp_op *op)
{
	struct loop_req *r = op->req;
	int ret = iocp_shim_start(l, op);

	if (ret < 0 && r->backend)
		iocp_op_release(l, op, false);
	return ret;
}

int iocp_submit(struct loop *l, struct loop_req *r)
{
	enum iocp_kind kind;
	struct iocp_op *op;
	int ret;

	ret = iocp_classify(r->fd, r->op, &kind);
	if (ret < 0)
		return ret;
	if (r->op == LOOP_OP_CONNECT && kind != IOCP_KIND_SOCKET)
		return -ENOTSOCK;
	if (kind == IOCP_KIND_SOCKET && l->sock_shim && iocp_sock_shimmable(r))
		kind = IOCP_KIND_SOCK_SHIM;
	if (kind == IOCP_KIND_SOCKET || kind == IOCP_KIND_OVERLAPPED) {
		ret = iocp_associate(l, (HANDLE)r->fd);
		if (ret < 0 && kind == IOCP_KIND_SOCKET && iocp_sock_shimmable(r))
			kind = IOCP_KIND_SOCK_SHIM; /* a provider the port refuses */
		else if (ret < 0)
			return ret;
	}
	op = iocp_op_new(l, r, kind);
	if (!op)
		return -ENOMEM;
	if (kind == IOCP_KIND_SYNC || kind == IOCP_KIND_CHAR || kind == IOCP_KIND_WAIT ||
	    kind == IOCP_KIND_SOCK_SHIM)
		return iocp_shim_submit(l, op);
	ret = kind == IOCP_KIND_SOCKET ? iocp_sock_start(l, op) : iocp_file_start(l, op);
	if (kind == IOCP_KIND_SOCKET && iocp_sock_refused(ret) && iocp_sock_shimmable(r)) {
		/* No overlapped form from this provider: the shim carries it instead. */
		op->kind = IOCP_KIND_SOCK_SHIM;
		return iocp_shim_submit(l, op);
	}
	if (ret == 1) {
		iocp_op_hold(l, op);
		return 0;
	}
	if (ret == 0 && kind == IOCP_KIND_OVERLAPPED)
		ret = iocp_file_now(r);
	return iocp_op_now(l, op, ret);
}

/* ---- completing ---- */

/* Finishes an AcceptEx: inherits the listener's properties, non-blocking, the peer address. */
static int iocp_accept_done(struct iocp_op *op)
{
	static const GUID id = WSAID_GETACCEPTEXSOCKADDRS;
	struct loop_req *r = op->req;
	SOCKET ls = (SOCKET)r->fd, s = op->accepted;
	LPFN_GETACCEPTEXSOCKADDRS addrs;
	struct sockaddr *local, *peer;
	int llen, plen;
	u_long one = 1;

	if (setsockopt(s, SOL_SOCKET, SO_UPDATE_ACCEPT_CONTEXT, (char *)&ls, sizeof(ls)) ||
	    ioctlsocket(s, FIONBIO, &one))
		return err_wsa_last();
	if (s > INT_MAX)
		return -EMFILE;
	r->addrlen = 0;
	addrs = (LPFN_GETACCEPTEXSOCKADDRS)iocp_extension(ls, id);
	if (addrs) {
		addrs(op->u.accept_addrs, 0, IOCP_ADDR_SPACE, IOCP_ADDR_SPACE, &local, &llen, &peer,
		      &plen);
		if (plen > 0 && (size_t)plen <= sizeof(r->addr)) {
			memcpy(r->addr, peer, (size_t)plen);
			r->addrlen = (uint32_t)plen;
		}
	}
	op->accepted = INVALID_SOCKET; /* the callback owns it now */
	return (int)s;
}

/* The result of an overlapped operation whose packet came with status and bytes. */
static int iocp_result(struct iocp_op *op, DWORD bytes)
{
	struct loop_req *r = op->req;
	NTSTATUS st = (NTSTATUS)op->ov.Internal;
	int err = err_from_ntstatus(st);
	bool more =
	    st == (NTSTATUS)0x80000005L; /* STATUS_BUFFER_OVERFLOW: a message read in part */
	unsigned ev;

	switch (r->op) {
	case LOOP_OP_READ:
		if (!err || more)
			return (int)bytes;
		return err == -EPIPE ? 0 : err; /* a broken pipe is the end of the stream */
	case LOOP_OP_WRITE:
	case LOOP_OP_WRITEV:
		return err ? err : (int)bytes;
	case LOOP_OP_ACCEPT:
		if (op->kind != IOCP_KIND_SOCKET)
			return err ? err : iocp_file_now(r);
		return err ? err : iocp_accept_done(op);
	case LOOP_OP_CONNECT:
		if (err)
			return err;
		if (setsockopt((SOCKET)r->fd, SOL_SOCKET, SO_UPDATE_CONNECT_CONTEXT, NULL, 0))
			return err_wsa_last();
		return 0;
	case LOOP_OP_POLL:
		if (op->kind != IOCP_KIND_SOCKET) {
			if (err == -EPIPE)
				return LOOP_POLL_IN | LOOP_POLL_HUP;
			return err ? err : LOOP_POLL_IN;
		}
		if (err)
			return err;
		ev = op->u.afd.nhandles ? iocp_afd_revents(op->u.afd.events) : 0;
		return (int)(ev & (r->events | LOOP_POLL_ERR | LOOP_POLL_HUP));
	default:
		return -EINVAL;
	}
}

/*
 * iocp_packet() - handles the packet of operation ov: forwards it when
 * another loop submitted the operation, else turns it into the request's
 * result on the ready list.
 */
void iocp_packet(struct loop *l, OVERLAPPED *ov, DWORD bytes, ULONG_PTR key)
{
	struct iocp_op *op = (struct iocp_op *)ov;
	struct loop_req *r;
	int res;

	if (!ov)
		return;
	if (op->loop != l) {
		PostQueuedCompletionStatus(op->loop->port, bytes, key, ov);
		return;
	}
	r = op->req;
	res = key == LOOP_KEY_SHIM ? op->shim_res : iocp_result(op, bytes);
	if (key == LOOP_KEY_SHIM && op->bounce && res > 0)
		memcpy(r->buf, op->bounce, (size_t)res);
	iocp_op_release(l, op, true);
	loop_complete(l, r, res);
}

/* ---- cancelling ---- */

/* Asks a shim thread to give up; false when its call has not started (or has ended) yet. */
static bool iocp_shim_cancel(struct iocp_op *op)
{
	InterlockedExchange(&op->cancelled, 1);
	if (op->cancel_event)
		SetEvent(op->cancel_event);
	/* The socket shim looks at the flag between its slices. */
	return op->cancel_event || op->kind == IOCP_KIND_SOCK_SHIM ||
	       CancelSynchronousIo(op->thread);
}

/*
 * Hands a running detachable read to its helper thread: takes the record off
 * the loop's lists. Returns false when the thread finished first (its packet
 * is on the way) or the record is not detachable.
 */
static bool iocp_shim_detach(struct loop *l, struct iocp_op *op)
{
	struct loop_req *r = op->abandoned ? NULL : op->req;
	HANDLE thread = op->thread;
	bool recancel = op->recancel;

	if (!op->bounce)
		return false;
	/* Off the list first: once detached, the thread may free op at any moment. */
	if (op->prev)
		op->prev->next = op->next;
	else
		l->ops = op->next;
	if (op->next)
		op->next->prev = op->prev;
	if (InterlockedCompareExchange(&op->state, IOCP_SHIM_DETACHED, IOCP_SHIM_RUNNING) !=
	    IOCP_SHIM_RUNNING) {
		iocp_op_hold(l, op); /* posted first: its packet is on the way */
		return false;
	}
	if (recancel)
		l->recancel--;
	CloseHandle(thread);
	if (r)
		r->backend = NULL;
	return true;
}

void iocp_cancel(struct loop *l, struct loop_req *r)
{
	struct iocp_op *op = r->backend;

	if (!op)
		return;
	if (op->thread && op->bounce) {
		iocp_shim_cancel(
		    op); /* ends the call when the system can; the record goes anyway */
		if (iocp_shim_detach(l, op))
			loop_complete(l, r, -ECANCELED);
		return;
	}
	if (op->thread) {
		if (!iocp_shim_cancel(op) && !op->recancel) {
			op->recancel = true;
			l->recancel++;
		}
		return;
	}
	/* ERROR_NOT_FOUND: the packet is on its way with the real result. */
	CancelIoEx(op->h, &op->ov);
}

/* Retries the shim cancels whose thread had not yet entered its blocking call. */
void iocp_recancel(struct loop *l)
{
	for (struct iocp_op *op = l->ops; op; op = op->next) {
		if (op->recancel && iocp_shim_cancel(op)) {
			op->recancel = false;
			l->recancel--;
		}
	}
}

/* Cancels every held operation, without touching the requests (their owners may be gone). */
static void iocp_cancel_all(struct loop *l)
{
	for (struct iocp_op *op = l->ops, *next; op; op = next) {
		next = op->next;
		op->abandoned = true;
		if (op->thread && op->bounce) {
			iocp_shim_cancel(op);
			iocp_shim_detach(l, op);
		} else if (op->thread)
			iocp_shim_cancel(op);
		else
			CancelIoEx(op->h, &op->ov);
	}
}

/* Takes the packets of a draining loop: forwards other loops', frees posts, releases the rest. */
static void iocp_drain_packets(struct loop *l, const OVERLAPPED_ENTRY *ev, ULONG n)
{
	for (ULONG i = 0; i < n; i++) {
		struct iocp_op *op = (struct iocp_op *)ev[i].lpOverlapped;

		if (ev[i].lpCompletionKey == LOOP_KEY_POST)
			free(ev[i].lpOverlapped);
		else if (op && op->loop != l)
			PostQueuedCompletionStatus(op->loop->port, ev[i].dwNumberOfBytesTransferred,
						   ev[i].lpCompletionKey, ev[i].lpOverlapped);
		else if (op)
			iocp_op_release(l, op, true);
	}
}

/*
 * iocp_drain() - for loop_free(): cancels every held operation and takes
 * packets until none is held, so that nothing writes to a record after the
 * loop is gone; callbacks do not run. A shim thread stuck in a call that
 * cannot be cancelled (a console read) is given IOCP_DRAIN_MS, then its
 * record is left to it (leaked) rather than freed under it.
 */
#define IOCP_DRAIN_MS 2000

void iocp_drain(struct loop *l)
{
	uint64_t deadline = clock_now_ns() + (uint64_t)IOCP_DRAIN_MS * 1000000;
	OVERLAPPED_ENTRY ev[16];
	struct iocp_op *op;
	ULONG n;

	iocp_cancel_all(l);
	while (l->ops && clock_now_ns() < deadline) {
		if (GetQueuedCompletionStatusEx(l->port, ev, 16, &n, 10, FALSE))
			iocp_drain_packets(l, ev, n);
		for (op = l->ops; op; op = op->next)
			if (op->thread)
				iocp_shim_cancel(op);
	}
	while ((op = l->spare)) {
		l->spare = op->next;
		free(op);
	}
}
