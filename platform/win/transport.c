/* Channel transports on Windows: tcp (with its token), named pipes and Hyper-V sockets. */
#include <winsock2.h>
#include <windows.h>
#include <ws2tcpip.h>
#include <sddl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/list.h"
#include "core/why.h"
#include "platform/gate.h"
#include "platform/sys.h"
#include "platform/transport.h"
#include "platform/win/acl.h"
#include "platform/win/err.h"
#include "platform/win/hvsock.h"
#include "platform/win/sys_internal.h"
#include "platform/win/vmid.h"

/*
 * Theory of operation.
 *
 * As on Linux (platform/linux/transport.c), a dial is a short state machine
 * on the loop with a deadline timer beside it, and the callback runs once
 * both the step's request and the timer have completed:
 *
 *   RESOLVE (hvsock://NAME) --the VM's VMID--> CONNECT
 *   CONNECT --connected--> SEND (tcp: the token line) --sent--> DONE
 *      `--connected, nothing to send (hvsock)-----------------> DONE
 *   OPEN (npipe) --opened--> DONE
 *      `--ERROR_PIPE_BUSY: every instance is taken; open again after
 *         TRANSPORT_RETRY_NS, until the deadline
 *
 * A VM given by name is looked up in WMI first (platform/win/vmid.c). WMI
 * calls block, for seconds when its service starts cold, so the lookup runs
 * on a thread of its own and the loop waits for that thread's handle with
 * loop_poll(), on its blocking-thread shim like a process exit: the loop's
 * other connections go on meanwhile. A cancel or the deadline ends the wait
 * at once; the lookup then finishes on its thread and frees itself.
 *
 * Opening a pipe does not block, so an npipe dial's first try happens in
 * transport_dial() itself and a zero timer carries the callback out of it.
 *
 * A tcp accept does not read the token line itself: platform/gate.c, shared
 * with Linux, runs each connection's handshake on its own once AcceptEx has
 * completed (its own buffer and deadline; the line read to its exact
 * length, nothing after it), submits the next AcceptEx at once, bounds the
 * handshakes in progress (GATE_HANDSHAKES_MAX; past it the oldest is
 * dropped) and completes the accept only with an authenticated connection.
 * A client that connects and sends nothing costs one slot until its
 * deadline, not the listener. A named pipe listener keeps one unconnected instance in
 * hand, created with FILE_FLAG_FIRST_PIPE_INSTANCE at listen time so that
 * nobody else owns the name; each accept hands that instance to
 * loop_accept() (ConnectNamedPipe) and creates the next one, so a client
 * always finds an instance to connect to. Pipe instances carry a DACL for
 * SYSTEM, Administrators, Hyper-V Administrators and the owner, and refuse
 * remote clients.
 */

#define TRANSPORT_TIMEOUT_MS	 5000
#define TRANSPORT_RETRY_NS	 (10ull * 1000 * 1000)
#define TRANSPORT_BACKLOG	 128
#define TRANSPORT_TOKEN_MAX	 64
#define TRANSPORT_TOKEN_TAG	 "VMBUSIFY-TOKEN "
#define TRANSPORT_TOKEN_FILE_MAX 4096
#define TRANSPORT_BUSY_REQ	 1
#define TRANSPORT_BUSY_TIMER	 2
#define TRANSPORT_PIPE_BUFFER	 (64 * 1024)
#define TRANSPORT_PIPE_PREFIX	 L"\\\\.\\pipe\\"
/* SYSTEM, Administrators, Hyper-V Administrators (S-1-5-32-578) and the owner: all access. */
#define TRANSPORT_PIPE_SDDL L"D:P(A;;GA;;;SY)(A;;GA;;;BA)(A;;GA;;;S-1-5-32-578)(A;;GA;;;OW)"

enum transport_dial_state {
	TRANSPORT_DIAL_RESOLVE,
	TRANSPORT_DIAL_CONNECT,
	TRANSPORT_DIAL_SEND,
	TRANSPORT_DIAL_OPEN,
	TRANSPORT_DIAL_DONE,
};

struct transport_listener {
	enum uri_kind kind;
	SOCKET sock;			 /* tcp, hvsock */
	HANDLE next;			 /* npipe: the unconnected instance the next accept takes */
	wchar_t pipe[URI_PATH_MAX + 16]; /* npipe: \\.\pipe\NAME */
	char token[TRANSPORT_TOKEN_MAX + 1]; /* tcp */
	struct gate gate;		     /* tcp: the handshakes before the token is known */
};

static const char *transport_uri_text(const struct uri *u, char *buf, size_t len)
{
	if (uri_format(u, buf, len) < 0)
		snprintf(buf, len, "(address too long)");
	return buf;
}

static uint32_t transport_timeout_ms(const struct transport_opts *o)
{
	return o && o->connect_timeout_ms ? o->connect_timeout_ms : TRANSPORT_TIMEOUT_MS;
}

static uint64_t transport_now_ms(void)
{
	return clock_now_ns() / 1000000;
}

static bool transport_is_socket(pl_fd fd)
{
	int type, len = sizeof(type);

	return !getsockopt((SOCKET)fd, SOL_SOCKET, SO_TYPE, (char *)&type, &len);
}

/* Closes a socket or a handle; -1 is ignored. */
void transport_close_fd(pl_fd fd)
{
	if (fd == -1 || fd == 0)
		return;
	if (transport_is_socket(fd))
		closesocket((SOCKET)fd);
	else
		CloseHandle((HANDLE)fd);
}

void transport_info_get(const struct uri *u, struct transport_info *out)
{
	out->stream_oriented = true;
	out->single_connection = uri_is_single_connection(u);
	switch (u->kind) {
	case URI_TCP:
		out->max_write = 256 * 1024;
		break;
	default:
		/* hvsock ends in the VMBus ring; a pipe write beyond its buffer waits. */
		out->max_write = 64 * 1024;
		break;
	}
}

/* ---- the tcp token ---- */

static bool transport_token_char(char c)
{
	return c > ' ' && c < 0x7f;
}

/*
 * transport_token_load() - reads the shared secret of file into token (65
 * bytes): its content without trailing whitespace, 1..64 printable ASCII
 * characters. As on Linux, where the file may have no group or other
 * permissions, only its owner, SYSTEM and the Administrators may read it
 * (acl_file_private()). Return: 0, or a negative errno with a reason.
 */
static int transport_token_load(const char *file, char token[TRANSPORT_TOKEN_MAX + 1], char *why,
				size_t whylen)
{
	char *buf = NULL, who[200];
	size_t n = 0;
	int r;

	r = acl_file_private(file, who, sizeof(who));
	if (r == -EACCES) {
		why_set(why, whylen, 0,
			"token file %s is readable by %s; allow only its owner (icacls %s "
			"/inheritance:r /grant:r %%USERNAME%%:F)",
			file, who, file);
		return r;
	}
	if (r == -ENOENT || r == -ENOTDIR) {
		why_set(why, whylen, 0, "token file %s: %s", file, sys_strerror(r));
		return r;
	}
	/* Other errors: a file system without ACLs (FAT) has nothing to check. */
	r = sys_read_file(file, TRANSPORT_TOKEN_FILE_MAX, &buf, &n);
	if (r < 0) {
		why_set(why, whylen, 0, "token file %s: %s", file, sys_strerror(r));
		return r;
	}
	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\r' ||
			 buf[n - 1] == '\n'))
		n--;
	r = -EINVAL;
	if (!n)
		why_set(why, whylen, 0, "token file %s is empty", file);
	else if (n > TRANSPORT_TOKEN_MAX)
		why_set(why, whylen, 0,
			"token in %s is too long; at most %d characters are allowed", file,
			TRANSPORT_TOKEN_MAX);
	else
		r = 0;
	for (size_t i = 0; !r && i < n; i++) {
		if (!transport_token_char(buf[i])) {
			why_set(why, whylen, 0,
				"token in %s may hold printable ASCII only, without blanks", file);
			r = -EINVAL;
		}
	}
	if (!r) {
		memcpy(token, buf, n);
		token[n] = '\0';
	}
	free(buf);
	return r;
}

/* "VMBUSIFY-TOKEN <token>\n" (at most 80 bytes) into out; returns its length. */
static size_t transport_token_line(const char *token, uint8_t out[80])
{
	size_t tag = strlen(TRANSPORT_TOKEN_TAG), n = strlen(token);

	memcpy(out, TRANSPORT_TOKEN_TAG, tag);
	memcpy(out + tag, token, n);
	out[tag + n] = '\n';
	return tag + n + 1;
}

/* ---- addresses and sockets ---- */

/*
 * transport_addr_ip() - resolves host and port into *ss; an empty host is
 * 127.0.0.1. numeric forbids name lookups, which block.
 */
static int transport_addr_ip(const char *host, uint32_t port, bool numeric, bool passive,
			     struct sockaddr_storage *ss, int *len, char *why, size_t whylen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	char service[12];
	int r;

	hints.ai_flags =
	    AI_NUMERICSERV | (numeric ? AI_NUMERICHOST : 0) | (passive ? AI_PASSIVE : 0);
	if (!host[0] || (numeric && !strcmp(host, "localhost")))
		host = "127.0.0.1";
	snprintf(service, sizeof(service), "%u", port);
	r = getaddrinfo(host, service, &hints, &res);
	if (r) {
		why_set(why, whylen, 0, "tcp host '%s': %s%s", host, sys_strerror(err_from_win(r)),
			numeric ? " (an asynchronous dial needs an IP address)" : "");
		return -EINVAL;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = (int)res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* A new overlapped, non-inherited TCP socket of family; 0 or a negative errno. */
static int transport_tcp_socket(int family, SOCKET *out)
{
	*out = WSASocketW(family, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
			  WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
	return *out == INVALID_SOCKET ? err_wsa_last() : 0;
}

static int transport_nonblocking(SOCKET s)
{
	u_long one = 1;

	return ioctlsocket(s, FIONBIO, &one) ? err_wsa_last() : 0;
}

/* \\.\pipe\NAME of an npipe:// URI. */
static void transport_pipe_name(const struct uri *u, wchar_t *out, size_t cap)
{
	swprintf(out, cap, L"%ls%hs", TRANSPORT_PIPE_PREFIX, u->path);
}

/* Opens the client end of a named pipe, overlapped; the handle, or INVALID_HANDLE_VALUE. */
static HANDLE transport_pipe_open(const wchar_t *name)
{
	return CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
			   FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION,
			   NULL);
}

/* ---- listening ---- */

static int transport_bind_listen(SOCKET s, const void *addr, int len)
{
	if (bind(s, addr, len) || listen(s, TRANSPORT_BACKLOG))
		return err_wsa_last();
	return 0;
}

/* tcp: the token first, so that no IP socket ever listens without one. */
static int transport_listen_tcp(const struct uri *u, const struct transport_opts *o,
				struct transport_listener *tl, char *why, size_t whylen)
{
	char text[URI_PATH_MAX + URI_HOST_MAX + 32];
	struct sockaddr_storage ss;
	uint8_t line[80];
	int len, one = 1, r;

	if (!o || !o->token_file) {
		why_set(why, whylen, 0,
			"tcp:// needs --token-file: refusing to listen on an IP socket "
			"without a token");
		return -EINVAL;
	}
	r = transport_token_load(o->token_file, tl->token, why, whylen);
	if (r < 0)
		return r;
	r = transport_addr_ip(u->host, u->port, false, true, &ss, &len, why, whylen);
	if (r < 0)
		return r;
	r = transport_tcp_socket(ss.ss_family, &tl->sock);
	if (r < 0)
		return r;
	gate_configure(&tl->gate, (pl_fd)tl->sock, line, transport_token_line(tl->token, line),
		       transport_timeout_ms(o), transport_uri_text(u, text, sizeof(text)));
	/* Not SO_REUSEADDR, which on Windows lets another socket take the port over. */
	setsockopt(tl->sock, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&one, sizeof(one));
	return transport_bind_listen(tl->sock, &ss, len);
}

/* A VM name is resolved here, blocking: listening is a setup step, before any loop serves it. */
static int transport_listen_hvsock(const struct uri *u, struct transport_listener *tl, char *why,
				   size_t whylen)
{
	struct uri vm = *u;
	SOCKADDR_HV a;
	int r = hvsock_resolve(&vm, 0, why, whylen);

	if (!r)
		r = hvsock_addr(&vm, &a, why, whylen);
	if (r < 0)
		return r;
	r = hvsock_socket(&tl->sock);
	if (r < 0)
		return r;
	return transport_bind_listen(tl->sock, &a, sizeof(a));
}

/*
 * A new overlapped pipe instance of tl's name (first: claims the name), with
 * the DACL of TRANSPORT_PIPE_SDDL; INVALID_HANDLE_VALUE and GetLastError()
 * on failure. No instance is ever made with the default (wider) DACL.
 */
static HANDLE transport_pipe_instance(struct transport_listener *tl, bool first)
{
	SECURITY_ATTRIBUTES sa = {.nLength = sizeof(sa)};
	PSECURITY_DESCRIPTOR sd = NULL;
	DWORD err;
	HANDLE h;

	if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(TRANSPORT_PIPE_SDDL,
								  SDDL_REVISION_1, &sd, NULL))
		return INVALID_HANDLE_VALUE;
	sa.lpSecurityDescriptor = sd;
	h = CreateNamedPipeW(
	    tl->pipe,
	    PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
	    PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
	    PIPE_UNLIMITED_INSTANCES, TRANSPORT_PIPE_BUFFER, TRANSPORT_PIPE_BUFFER, 0, &sa);
	err = GetLastError();
	LocalFree(sd);
	SetLastError(err);
	return h;
}

static int transport_listen_npipe(const struct uri *u, struct transport_listener *tl, char *why,
				  size_t whylen)
{
	transport_pipe_name(u, tl->pipe, sizeof(tl->pipe) / sizeof(tl->pipe[0]));
	tl->next = transport_pipe_instance(tl, true);
	if (tl->next != INVALID_HANDLE_VALUE)
		return 0;
	if (GetLastError() == ERROR_ACCESS_DENIED) {
		why_set(why, whylen, 0, "listen npipe://%s: another server owns that pipe",
			u->path);
		return -EADDRINUSE;
	}
	return err_win_last();
}

static int transport_listen_kind(const struct uri *u, const struct transport_opts *o,
				 struct transport_listener *tl, char *why, size_t whylen)
{
	switch (u->kind) {
	case URI_TCP:
		return transport_listen_tcp(u, o, tl, why, whylen);
	case URI_HVSOCK:
		return transport_listen_hvsock(u, tl, why, whylen);
	case URI_NPIPE:
		return transport_listen_npipe(u, tl, why, whylen);
	case URI_UNIX:
		why_set(why, whylen, 0, "unix:// is not supported on Windows; use npipe://NAME");
		return -ENOTSUP;
	case URI_VSOCK:
	case URI_HYBRID:
	case URI_SERIAL:
		why_set(why, whylen, 0,
			"this address is for Linux; on Windows listen on hvsock://, npipe:// or "
			"tcp://");
		return -ENOTSUP;
	}
	why_set(why, whylen, 0, "not a listenable address");
	return -EINVAL;
}

/*
 * transport_listen() - binds and listens on u (npipe: claims the name).
 * Return: 0 and a listener the caller owns (transport_listener_close()), or
 * a negative errno with a one-line reason in why.
 */
int transport_listen(const struct uri *u, const struct transport_opts *o,
		     struct transport_listener **out, char *why, size_t whylen)
{
	struct transport_listener *tl = calloc(1, sizeof(*tl));
	char text[URI_PATH_MAX + URI_HOST_MAX + 32];
	int r;

	*out = NULL;
	if (!tl)
		return why_set(why, whylen, -ENOMEM, "out of memory");
	tl->kind = u->kind;
	tl->sock = INVALID_SOCKET;
	tl->next = INVALID_HANDLE_VALUE;
	gate_init(&tl->gate);
	if (why && whylen)
		why[0] = '\0';
	r = sys_wsa_start();
	if (!r)
		r = transport_listen_kind(u, o, tl, why, whylen);
	if (r < 0)
		goto fail;
	*out = tl;
	return 0;
fail:
	if (why && whylen && !why[0])
		why_set(why, whylen, 0, "listen %s: %s", transport_uri_text(u, text, sizeof(text)),
			sys_strerror(r));
	transport_listener_close(tl);
	return r;
}

/* tcp: the waiting connections are closed, the handshakes cancelled (platform/gate.c). */
void transport_listener_close(struct transport_listener *tl)
{
	if (!tl)
		return;
	if (tl->kind == URI_TCP)
		gate_close(&tl->gate);
	if (tl->sock != INVALID_SOCKET)
		closesocket(tl->sock);
	if (tl->next != INVALID_HANDLE_VALUE)
		CloseHandle(tl->next);
	free(tl);
}

pl_fd transport_listener_fd(const struct transport_listener *tl)
{
	return tl->kind == URI_NPIPE ? (pl_fd)tl->next : (pl_fd)tl->sock;
}

struct gate *transport_listener_gate(struct transport_listener *tl)
{
	return &tl->gate;
}

/* ---- accepting ---- */

static void transport_accept_finish(struct transport_accept_req *ar)
{
	int res = ar->result;
	pl_fd fd = ar->fd;

	if (ar->pending)
		return;
	ar->fd = -1;
	if (res < 0 && fd != -1) {
		transport_close_fd(fd);
		fd = -1;
	}
	ar->cb(ar, res, fd);
}

static void transport_accept_end(struct transport_accept_req *ar, int res)
{
	if (!ar->result)
		ar->result = res;
	if (ar->pending & TRANSPORT_BUSY_REQ)
		loop_cancel(ar->loop, &ar->req);
	if (ar->pending & TRANSPORT_BUSY_TIMER)
		loop_cancel(ar->loop, &ar->timer);
}

void transport_accept_cancel(struct transport_accept_req *ar)
{
	if (ar->tl->kind == URI_TCP)
		gate_cancel(&ar->tl->gate, ar);
	else
		transport_accept_end(ar, -ECANCELED);
}

static void transport_accept_done(struct loop_req *req, int res)
{
	struct transport_accept_req *ar = container_of(req, struct transport_accept_req, req);

	ar->pending &= ~TRANSPORT_BUSY_REQ;
	if (ar->tl->kind == URI_NPIPE)
		ar->fd = ar->req.fd; /* the instance: the caller's now, or closed on failure */
	else if (res >= 0)
		ar->fd = res;
	if (res < 0)
		transport_accept_end(ar, res);
	transport_accept_finish(ar);
}

/* npipe: hands the instance in hand to the accept and makes the next one. */
static int transport_accept_pipe(struct loop *l, struct transport_listener *tl,
				 struct transport_accept_req *ar)
{
	HANDLE h = tl->next;
	int r;

	if (h == INVALID_HANDLE_VALUE) {
		h = transport_pipe_instance(tl, false);
		if (h == INVALID_HANDLE_VALUE)
			return err_win_last();
	}
	tl->next = transport_pipe_instance(tl, false); /* on failure, the next accept retries */
	r = loop_accept(l, &ar->req, (pl_fd)h, transport_accept_done);
	if (r < 0) {
		CloseHandle(h);
		return r;
	}
	ar->pending = TRANSPORT_BUSY_REQ;
	return 0;
}

int transport_accept(struct loop *l, struct transport_listener *tl, struct transport_accept_req *ar,
		     transport_accept_cb cb)
{
	int r;

	ar->cb = cb;
	ar->tl = tl;
	ar->loop = l;
	ar->fd = -1;
	ar->pending = 0;
	ar->result = 0;
	if (tl->kind == URI_TCP)
		return gate_accept(&tl->gate, l, ar);
	if (tl->kind == URI_NPIPE)
		return transport_accept_pipe(l, tl, ar);
	r = loop_accept(l, &ar->req, (pl_fd)tl->sock, transport_accept_done);
	ar->pending = r < 0 ? 0 : TRANSPORT_BUSY_REQ;
	return r;
}

/* ---- dialing on a loop ---- */

static void transport_dial_finish(struct transport_dial_req *dr)
{
	int res = dr->result;
	pl_fd fd = dr->fd;

	if (dr->pending)
		return;
	dr->fd = -1;
	if (res < 0 && fd != -1) {
		transport_close_fd(fd);
		fd = -1;
	}
	dr->cb(dr, res, fd);
}

static void transport_dial_end(struct transport_dial_req *dr, int res)
{
	if (dr->state == TRANSPORT_DIAL_DONE)
		return;
	dr->state = TRANSPORT_DIAL_DONE;
	dr->result = res;
	if (dr->pending & TRANSPORT_BUSY_REQ)
		loop_cancel(dr->loop, &dr->req);
	if (dr->pending & TRANSPORT_BUSY_TIMER)
		loop_cancel(dr->loop, &dr->timer);
}

static void transport_dial_fail(struct transport_dial_req *dr, int res, const char *what)
{
	char text[URI_PATH_MAX + URI_HOST_MAX + 32];

	if (dr->state == TRANSPORT_DIAL_DONE)
		return;
	why_set(dr->why, sizeof(dr->why), 0, "%s %s: %s", what,
		transport_uri_text(&dr->uri, text, sizeof(text)), sys_strerror(res));
	transport_dial_end(dr, res);
}

void transport_dial_cancel(struct transport_dial_req *dr)
{
	transport_dial_fail(dr, -ECANCELED, "dial");
}

static void transport_dial_send_done(struct loop_req *req, int res);

static void transport_dial_submitted(struct transport_dial_req *dr, int r, const char *what)
{
	if (r < 0)
		transport_dial_fail(dr, r, what);
	else
		dr->pending |= TRANSPORT_BUSY_REQ;
}

static void transport_dial_send(struct transport_dial_req *dr)
{
	dr->state = TRANSPORT_DIAL_SEND;
	transport_dial_submitted(dr,
				 loop_write(dr->loop, &dr->req, dr->fd, dr->buf + dr->sent,
					    dr->want - dr->sent, transport_dial_send_done),
				 "handshake with");
}

static void transport_dial_connect_done(struct loop_req *req, int res)
{
	struct transport_dial_req *dr = container_of(req, struct transport_dial_req, req);
	int r;

	dr->pending &= ~TRANSPORT_BUSY_REQ;
	if (dr->state == TRANSPORT_DIAL_DONE)
		goto out;
	if (res < 0)
		transport_dial_fail(dr, res, "connect");
	else if ((r = transport_nonblocking((SOCKET)dr->fd)) < 0)
		transport_dial_fail(dr, r, "connect");
	else if (dr->want)
		transport_dial_send(dr);
	else
		transport_dial_end(dr, 0);
out:
	transport_dial_finish(dr);
}

static void transport_dial_send_done(struct loop_req *req, int res)
{
	struct transport_dial_req *dr = container_of(req, struct transport_dial_req, req);

	dr->pending &= ~TRANSPORT_BUSY_REQ;
	if (dr->state == TRANSPORT_DIAL_DONE)
		goto out;
	if (res <= 0) {
		transport_dial_fail(dr, res ? res : -EPIPE, "handshake with");
		goto out;
	}
	dr->sent += (size_t)res;
	if (dr->sent < dr->want)
		transport_dial_send(dr);
	else
		transport_dial_end(dr, 0);
out:
	transport_dial_finish(dr);
}

static void transport_dial_timer_done(struct loop_req *req, int res)
{
	struct transport_dial_req *dr = container_of(req, struct transport_dial_req, timer);
	char text[URI_PATH_MAX + URI_HOST_MAX + 32];

	dr->pending &= ~TRANSPORT_BUSY_TIMER;
	if (dr->state != TRANSPORT_DIAL_DONE && res >= 0) {
		why_set(dr->why, sizeof(dr->why), 0, "connect %s: timed out after %u ms",
			transport_uri_text(&dr->uri, text, sizeof(text)), dr->timeout_ms);
		transport_dial_end(dr, -ETIMEDOUT);
	} else if (dr->state != TRANSPORT_DIAL_DONE && res != -ECANCELED) {
		transport_dial_fail(dr, res, "timer for");
	}
	transport_dial_finish(dr);
}

/* npipe: one try to open the pipe; busy (every instance taken) tries again shortly. */
static void transport_dial_pipe_try(struct transport_dial_req *dr);

static void transport_dial_pipe_retry(struct loop_req *req, int res)
{
	struct transport_dial_req *dr = container_of(req, struct transport_dial_req, req);

	dr->pending &= ~TRANSPORT_BUSY_REQ;
	if (dr->state != TRANSPORT_DIAL_DONE)
		transport_dial_pipe_try(dr);
	transport_dial_finish(dr);
}

static void transport_dial_pipe_try(struct transport_dial_req *dr)
{
	wchar_t name[URI_PATH_MAX + 16];
	HANDLE h;

	transport_pipe_name(&dr->uri, name, sizeof(name) / sizeof(name[0]));
	h = transport_pipe_open(name);
	if (h != INVALID_HANDLE_VALUE) {
		dr->fd = (pl_fd)h;
		transport_dial_end(dr, 0);
	} else if (GetLastError() == ERROR_PIPE_BUSY) {
		transport_dial_submitted(
		    dr,
		    loop_timer(dr->loop, &dr->req, TRANSPORT_RETRY_NS, transport_dial_pipe_retry),
		    "connect");
	} else {
		transport_dial_fail(dr, err_win_last(), "connect");
	}
}

static void transport_dial_init(struct loop *l, const struct uri *u, const struct transport_opts *o,
				struct transport_dial_req *dr, transport_dial_cb cb)
{
	dr->cb = cb;
	dr->loop = l;
	dr->uri = *u;
	dr->fd = -1;
	dr->have = 0;
	dr->sent = 0;
	dr->want = 0;
	dr->state = TRANSPORT_DIAL_CONNECT;
	dr->pending = 0;
	dr->result = 0;
	dr->why[0] = '\0';
	dr->timeout_ms = transport_timeout_ms(o);
}

/*
 * transport_line() - checks that u can be dialed here and writes its
 * handshake line (tcp: the token) into buf, *want bytes (0 for none).
 */
static int transport_line(const struct uri *u, const struct transport_opts *o, uint8_t buf[80],
			  size_t *want, char *why, size_t whylen)
{
	char token[TRANSPORT_TOKEN_MAX + 1];
	int r;

	*want = 0;
	switch (u->kind) {
	case URI_HVSOCK:
	case URI_NPIPE:
		return 0;
	case URI_TCP:
		if (!u->port) {
			why_set(why, whylen, 0, "tcp port 0 cannot be dialed");
			return -EINVAL;
		}
		if (!o || !o->token_file) {
			why_set(why, whylen, 0, "tcp:// needs --token-file to dial");
			return -EINVAL;
		}
		r = transport_token_load(o->token_file, token, why, whylen);
		if (!r)
			*want = transport_token_line(token, buf);
		return r;
	case URI_UNIX:
		why_set(why, whylen, 0, "unix:// is not supported on Windows; use npipe://NAME");
		return -ENOTSUP;
	default:
		why_set(why, whylen, 0,
			"this address is for Linux; on Windows dial hvsock://, npipe:// or tcp://");
		return -ENOTSUP;
	}
}

/* tcp or hvsock: a new socket and its target address (tcp hosts numeric: no blocking lookup). */
static int transport_dial_socket(const struct uri *u, uint32_t timeout_ms, SOCKET *s,
				 struct sockaddr_storage *ss, int *len, char *why, size_t whylen)
{
	SOCKADDR_HV hv;
	int r;

	if (u->kind == URI_TCP) {
		r = transport_addr_ip(u->host, u->port, true, false, ss, len, why, whylen);
		return r < 0 ? r : transport_tcp_socket(ss->ss_family, s);
	}
	r = hvsock_addr(u, &hv, why, whylen);
	if (r < 0)
		return r;
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &hv, sizeof(hv));
	*len = sizeof(hv);
	r = hvsock_socket(s);
	if (r < 0)
		return r;
	/* The system's own deadline; the dial's timer covers the rest. */
	hvsock_set_connect_timeout(*s, timeout_ms);
	return 0;
}

/* Starts the connect (tcp, hvsock) or the first open (npipe); returns 0 or -errno with dr->why. */
static int transport_dial_resolve(struct transport_dial_req *dr);

static int transport_dial_start(struct transport_dial_req *dr)
{
	struct sockaddr_storage ss;
	SOCKET s = INVALID_SOCKET;
	int len, r;

	if (dr->uri.kind == URI_HVSOCK && !dr->uri.vm_is_guid)
		return transport_dial_resolve(dr);
	if (dr->uri.kind == URI_NPIPE) {
		dr->state = TRANSPORT_DIAL_OPEN;
		transport_dial_pipe_try(dr);
		return 0;
	}
	r = transport_dial_socket(&dr->uri, dr->timeout_ms, &s, &ss, &len, dr->why,
				  sizeof(dr->why));
	if (r < 0) {
		if (s != INVALID_SOCKET)
			closesocket(s);
		if (!dr->why[0])
			transport_dial_fail(dr, r, "socket for");
		return r;
	}
	dr->fd = (pl_fd)s;
	r = loop_connect(dr->loop, &dr->req, dr->fd, &ss, (size_t)len, transport_dial_connect_done);
	if (r < 0) {
		transport_dial_fail(dr, r, "connect");
		closesocket(s);
		dr->fd = -1;
		return r;
	}
	dr->pending = TRANSPORT_BUSY_REQ;
	return 0;
}

/* hvsock://NAME: the lookup's thread has ended (or the wait was cancelled); connect to its VMID. */
static void transport_dial_resolved(struct loop_req *req, int res)
{
	struct transport_dial_req *dr = container_of(req, struct transport_dial_req, req);
	struct vmid_job *job = req->data;
	int r;

	dr->pending &= ~TRANSPORT_BUSY_REQ;
	req->data = NULL;
	if (dr->state == TRANSPORT_DIAL_DONE)
		goto out;
	if (res < 0) {
		transport_dial_fail(dr, res, "resolve the VM of");
		goto out;
	}
	r = vmid_job_result(job, &dr->uri.vm, dr->why, sizeof(dr->why));
	if (!r) {
		dr->uri.vm_is_guid = true;
		dr->state = TRANSPORT_DIAL_CONNECT;
		r = transport_dial_start(dr);
	}
	if (r < 0 && !dr->why[0])
		transport_dial_fail(dr, r, "connect");
	else if (r < 0)
		transport_dial_end(dr, r);
out:
	vmid_job_release(job);
	transport_dial_finish(dr);
}

/* hvsock://NAME: starts the WMI lookup on its thread and waits for that thread on the loop. */
static int transport_dial_resolve(struct transport_dial_req *dr)
{
	struct vmid_job *job;
	int r = vmid_job_start(dr->uri.host, &job);

	if (r < 0) {
		transport_dial_fail(dr, r, "resolve the VM of");
		return r;
	}
	dr->state = TRANSPORT_DIAL_RESOLVE;
	dr->req.data = job;
	r = loop_poll(dr->loop, &dr->req, (pl_fd)vmid_job_handle(job), LOOP_POLL_IN,
		      transport_dial_resolved);
	if (r < 0) {
		dr->req.data = NULL;
		vmid_job_release(job);
		transport_dial_fail(dr, r, "resolve the VM of");
		return r;
	}
	dr->pending |= TRANSPORT_BUSY_REQ;
	return 0;
}

/*
 * transport_dial() - see platform/transport.h. tcp hosts must be IP
 * addresses (or "localhost"); an hvsock VM given by name is looked up in
 * WMI on a thread of its own (see the theory of operation).
 */
int transport_dial(struct loop *l, const struct uri *u, const struct transport_opts *o,
		   struct transport_dial_req *dr, transport_dial_cb cb)
{
	int r;

	transport_dial_init(l, u, o, dr, cb);
	r = sys_wsa_start();
	if (r < 0)
		return why_set(dr->why, sizeof(dr->why), r, "Winsock: %s", sys_strerror(r));
	r = transport_line(u, o, dr->buf, &dr->want, dr->why, sizeof(dr->why));
	if (r < 0)
		return r;
	r = transport_dial_start(dr);
	if (r < 0)
		return r;
	/* The deadline, and for a dial already settled (npipe) the way out of this call. */
	r = loop_timer(l, &dr->timer,
		       dr->state == TRANSPORT_DIAL_DONE ? 0 : (uint64_t)dr->timeout_ms * 1000000,
		       transport_dial_timer_done);
	if (r < 0)
		transport_dial_fail(dr, r, "timer for");
	else
		dr->pending |= TRANSPORT_BUSY_TIMER;
	if (!dr->pending) {
		/* Nothing will call back: report here, as a dial that could not start. */
		r = dr->result;
		if (dr->fd != -1)
			transport_close_fd(dr->fd);
		dr->fd = -1;
		return r < 0 ? r : -EIO;
	}
	return 0;
}

/* ---- dialing without a loop ---- */

/* Waits for s to become writable (connected) or fail, until deadline_ms. */
static int transport_wait_connected(SOCKET s, uint64_t deadline_ms)
{
	uint64_t now = transport_now_ms();
	WSAPOLLFD p = {.fd = s, .events = POLLOUT};
	int err = 0, len = sizeof(err), n;

	if (now >= deadline_ms)
		return -ETIMEDOUT;
	n = WSAPoll(&p, 1, (int)(deadline_ms - now));
	if (n < 0)
		return err_wsa_last();
	if (!n)
		return -ETIMEDOUT;
	if (getsockopt(s, SOL_SOCKET, SO_ERROR, (char *)&err, &len))
		return err_wsa_last();
	return err_from_win((unsigned long)err);
}

/* Sends all of p on the non-blocking socket s before deadline_ms. */
static int transport_send_sync(SOCKET s, const uint8_t *p, size_t n, uint64_t deadline_ms)
{
	while (n) {
		int w = send(s, (const char *)p, (int)n, 0);
		WSAPOLLFD pf = {.fd = s, .events = POLLOUT};
		uint64_t now;

		if (w >= 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (WSAGetLastError() != WSAEWOULDBLOCK)
			return err_wsa_last();
		now = transport_now_ms();
		if (now >= deadline_ms)
			return -ETIMEDOUT;
		if (WSAPoll(&pf, 1, (int)(deadline_ms - now)) < 0)
			return err_wsa_last();
	}
	return 0;
}

/* Connects a new non-blocking socket to ss before deadline_ms; 0 and *out, or -errno. */
static int transport_connect_sync(const struct uri *u, const struct sockaddr_storage *ss, int len,
				  SOCKET s, uint64_t deadline_ms)
{
	int r = transport_nonblocking(s);

	if (r < 0)
		return r;
	if (!connect(s, (const struct sockaddr *)ss, len))
		return 0;
	if (WSAGetLastError() != WSAEWOULDBLOCK)
		return err_wsa_last();
	return transport_wait_connected(s, deadline_ms);
}

/* tcp: resolves the host (which may block) and tries its addresses in turn. */
static int transport_dial_tcp_sync(const struct uri *u, uint64_t deadline_ms, SOCKET *out,
				   char *why, size_t whylen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL, *ai;
	const char *host = u->host[0] ? u->host : "127.0.0.1";
	struct sockaddr_storage ss;
	char service[12];
	int r = -EHOSTUNREACH;

	snprintf(service, sizeof(service), "%u", u->port);
	if (getaddrinfo(host, service, &hints, &res)) {
		why_set(why, whylen, 0, "resolve tcp host '%s': %s", host,
			sys_strerror(err_wsa_last()));
		return -ENXIO;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		r = transport_tcp_socket(ai->ai_family, out);
		if (r < 0)
			continue;
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		r = transport_connect_sync(u, &ss, (int)ai->ai_addrlen, *out, deadline_ms);
		if (!r)
			break;
		closesocket(*out);
		*out = INVALID_SOCKET;
		if (r == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return r;
}

/*
 * hvsock: the VM's name looked up (blocking, bounded by the timeout too),
 * then a blocking connect bounded by HVSOCKET_CONNECT_TIMEOUT, then
 * non-blocking.
 */
static int transport_dial_hvsock_sync(const struct uri *u, uint32_t timeout_ms, SOCKET *out,
				      char *why, size_t whylen)
{
	struct uri vm = *u;
	SOCKADDR_HV a;
	int r = hvsock_resolve(&vm, timeout_ms, why, whylen);

	if (!r)
		r = hvsock_addr(&vm, &a, why, whylen);
	if (r < 0)
		return r;
	r = hvsock_socket(out);
	if (r < 0)
		return r;
	hvsock_set_connect_timeout(*out, timeout_ms);
	if (connect(*out, (const struct sockaddr *)&a, sizeof(a)))
		r = err_wsa_last();
	else
		r = transport_nonblocking(*out);
	if (r < 0) {
		closesocket(*out);
		*out = INVALID_SOCKET;
	}
	return r;
}

/* npipe: opens the pipe, waiting for a free instance until deadline_ms. */
static int transport_dial_npipe_sync(const struct uri *u, uint64_t deadline_ms, HANDLE *out)
{
	wchar_t name[URI_PATH_MAX + 16];
	uint64_t now;

	transport_pipe_name(u, name, sizeof(name) / sizeof(name[0]));
	for (;;) {
		*out = transport_pipe_open(name);
		if (*out != INVALID_HANDLE_VALUE)
			return 0;
		if (GetLastError() != ERROR_PIPE_BUSY)
			return err_win_last();
		now = transport_now_ms();
		if (now >= deadline_ms)
			return -ETIMEDOUT;
		WaitNamedPipeW(name, (DWORD)(deadline_ms - now));
	}
}

/*
 * transport_dial_sync() - see platform/transport.h; tcp host names are
 * resolved here. Sockets come back non-blocking, pipes overlapped; neither
 * is inherited by child processes.
 */
int transport_dial_sync(const struct uri *u, const struct transport_opts *o, pl_fd *out, char *why,
			size_t whylen)
{
	uint64_t deadline = transport_now_ms() + transport_timeout_ms(o);
	char text[URI_PATH_MAX + URI_HOST_MAX + 32];
	SOCKET s = INVALID_SOCKET;
	HANDLE h = INVALID_HANDLE_VALUE;
	uint8_t line[80];
	size_t want = 0;
	int r;

	*out = -1;
	if (why && whylen)
		why[0] = '\0';
	r = sys_wsa_start();
	if (r < 0)
		return why_set(why, whylen, r, "Winsock: %s", sys_strerror(r));
	r = transport_line(u, o, line, &want, why, whylen);
	if (r < 0)
		return r;
	if (u->kind == URI_TCP)
		r = transport_dial_tcp_sync(u, deadline, &s, why, whylen);
	else if (u->kind == URI_HVSOCK)
		r = transport_dial_hvsock_sync(u, transport_timeout_ms(o), &s, why, whylen);
	else
		r = transport_dial_npipe_sync(u, deadline, &h);
	if (r < 0) {
		if (why && whylen && !why[0])
			why_set(why, whylen, 0, "connect %s: %s",
				transport_uri_text(u, text, sizeof(text)),
				r == -ETIMEDOUT ? "timed out" : sys_strerror(r));
		return r;
	}
	if (want) {
		r = transport_send_sync(s, line, want, deadline);
		if (r < 0) {
			why_set(why, whylen, 0, "handshake with %s: %s",
				transport_uri_text(u, text, sizeof(text)),
				r == -ETIMEDOUT ? "timed out" : sys_strerror(r));
			closesocket(s);
			return r;
		}
	}
	*out = s != INVALID_SOCKET ? (pl_fd)s : (pl_fd)h;
	return 0;
}
