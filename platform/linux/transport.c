/* Channel transports on Linux: AF_VSOCK, hybrid vsock, unix and tcp sockets, serial devices. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <linux/vm_sockets.h>
#include "core/list.h"
#include "platform/gate.h"
#include "platform/transport.h"
#include "core/why.h"

/*
 * Theory of operation.
 *
 * A dial is a short state machine on the loop, with a deadline timer beside it:
 *
 *   CONNECT --connected--> SEND (hybrid, tcp) --line sent--> REPLY (hybrid) --"OK n\n"--> DONE
 *      |  `--unix -EAGAIN (backlog full): wait TRANSPORT_RETRY_NS, connect again
 *      `--connected, nothing to send (unix, vsock)--------------------------------------> DONE
 *
 * Any failure, the deadline or transport_dial_cancel() sets result and moves
 * to DONE, cancelling whichever request is still submitted. The callback runs
 * once both requests (the step's and the timer) have completed, so the
 * descriptor is closed only after the loop is done with it. An accept of
 * unix and vsock is the kernel accept alone; of serial, a zero timer (and a
 * poll for the far end) around a duplicate of the device.
 *
 * A tcp accept does not read the token itself: platform/gate.c, shared with
 * Windows, runs every accepted connection's handshake on its own (its own
 * buffer and deadline) while the kernel accept goes on, bounds the handshakes
 * in progress (GATE_HANDSHAKES_MAX; past it the oldest is dropped) and
 * completes the accept only with a connection whose token was right. A
 * client that connects and sends nothing therefore costs one slot until its
 * deadline, not the listener; failed handshakes are logged there, not
 * reported to the caller.
 *
 * Handshakes never read past their own line: the bytes after it belong to
 * the session, so the hybrid reply is read one byte at a time and the token
 * line is read to its known length exactly.
 */

#define TRANSPORT_TIMEOUT_MS	 5000
#define TRANSPORT_RETRY_NS	 (10ull * 1000 * 1000)
#define TRANSPORT_BACKLOG	 128
#define TRANSPORT_TOKEN_MAX	 64
#define TRANSPORT_TOKEN_TAG	 "VMBUSIFY-TOKEN "
#define TRANSPORT_TOKEN_FILE_MAX 4096
#define TRANSPORT_BUSY_REQ	 1
#define TRANSPORT_BUSY_TIMER	 2
#define TRANSPORT_SERIAL_POLL_MS 100 /* how often an accept looks for a serial far end */

enum transport_dial_state {
	TRANSPORT_DIAL_CONNECT,
	TRANSPORT_DIAL_SEND,
	TRANSPORT_DIAL_REPLY,
	TRANSPORT_DIAL_DONE,
};

struct transport_listener {
	enum uri_kind kind;
	int fd;			 /* listening socket, or the serial device */
	char path[URI_PATH_MAX]; /* unix: the socket file this listener created */
	dev_t dev;		 /* unix: identity of that file, to unlink only our own */
	ino_t ino;
	char token[TRANSPORT_TOKEN_MAX + 1]; /* tcp */
	struct gate gate;		     /* tcp: the handshakes before the token is known */
};

/* A socket address of any family dialed or bound here. */
struct transport_addr {
	union {
		struct sockaddr sa;
		struct sockaddr_un un;
		struct sockaddr_vm vm;
		struct sockaddr_storage ss;
	} u;
	socklen_t len;
};

/* The canonical text of u for reasons; never fails. */
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
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void transport_close_fd(pl_fd fd)
{
	if (fd >= 0)
		close((int)fd);
}

void transport_info_get(const struct uri *u, struct transport_info *out)
{
	out->stream_oriented = true;
	out->single_connection = uri_is_single_connection(u);
	switch (u->kind) {
	case URI_UNIX:
	case URI_TCP:
		out->max_write = 256 * 1024;
		break;
	case URI_SERIAL:
		out->max_write = 4 * 1024;
		break;
	default:
		/* vsock, hvsock and hybrid end in hv_sock or virtio rings, which are small. */
		out->max_write = 64 * 1024;
		break;
	}
}

/* Return: a new non-blocking close-on-exec stream socket, or a negative errno. */
static int transport_socket(int family)
{
	int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	return fd < 0 ? -errno : fd;
}

/* A unix address: a path, or an abstract name written "@name". */
static void transport_addr_unix(const char *path, struct transport_addr *a)
{
	size_t n = strlen(path);

	memset(a, 0, sizeof(*a));
	a->u.un.sun_family = AF_UNIX;
	memcpy(a->u.un.sun_path, path, n);
	if (path[0] == '@') {
		a->u.un.sun_path[0] = '\0';
		a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
	} else {
		a->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
	}
}

static void transport_addr_vsock(uint32_t cid, uint32_t port, struct transport_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->u.vm.svm_family = AF_VSOCK;
	a->u.vm.svm_cid = cid;
	a->u.vm.svm_port = port;
	a->len = sizeof(a->u.vm);
}

/*
 * transport_addr_ip() - resolves host and port into *a; an empty host is
 * 127.0.0.1. numeric forbids name lookups, which may block.
 * Return: 0, or -EINVAL with a reason.
 */
static int transport_addr_ip(const char *host, uint32_t port, bool numeric, bool passive,
			     struct transport_addr *a, char *why, size_t whylen)
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
		why_set(why, whylen, 0, "tcp host '%s': %s%s", host, gai_strerror(r),
			numeric ? " (an asynchronous dial needs an IP address)" : "");
		return -EINVAL;
	}
	memset(a, 0, sizeof(*a));
	memcpy(&a->u.ss, res->ai_addr, res->ai_addrlen);
	a->len = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static bool transport_token_char(char c)
{
	return c > ' ' && c < 0x7f;
}

/* Reads at most cap - 1 bytes of fd into buf, NUL-terminated; returns the length or -errno. */
static ssize_t transport_read_small(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (!r)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	return (ssize_t)n;
}

/* Checks the token text: 1..64 printable, non-blank ASCII characters. */
static int transport_token_check(const char *file, const char *t, size_t n, char *why,
				 size_t whylen)
{
	if (!n) {
		why_set(why, whylen, 0, "token file %s is empty", file);
		return -EINVAL;
	}
	if (n > TRANSPORT_TOKEN_MAX) {
		why_set(why, whylen, 0,
			"token in %s is %zu characters long; at most %d are allowed", file, n,
			TRANSPORT_TOKEN_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!transport_token_char(t[i])) {
			why_set(why, whylen, 0,
				"token in %s may hold printable ASCII only, without blanks", file);
			return -EINVAL;
		}
	}
	return 0;
}

/*
 * transport_token_load() - reads the shared secret of file into token (65
 * bytes): the content without trailing whitespace. The file must be a
 * regular file that neither group nor others can access.
 * Return: 0, or a negative errno with a reason.
 */
static int transport_token_load(const char *file, char token[TRANSPORT_TOKEN_MAX + 1], char *why,
				size_t whylen)
{
	char buf[TRANSPORT_TOKEN_FILE_MAX + 1];
	struct stat st;
	ssize_t n;
	int fd, r;

	fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		r = -errno;
		why_set(why, whylen, 0, "token file %s: %s", file, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		r = -EINVAL;
		why_set(why, whylen, 0, "token file %s is not a regular file", file);
		goto out;
	}
	if (st.st_mode & 077) {
		r = -EACCES;
		why_set(why, whylen, 0,
			"token file %s is accessible by group or others (mode %04o); "
			"chmod 600 it",
			file, (unsigned)(st.st_mode & 07777));
		goto out;
	}
	n = transport_read_small(fd, buf, sizeof(buf));
	if (n < 0) {
		r = (int)n;
		why_set(why, whylen, 0, "token file %s: %s", file, strerror(-r));
		goto out;
	}
	while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\r' ||
			 buf[n - 1] == '\n'))
		n--;
	r = transport_token_check(file, buf, (size_t)n, why, whylen);
	if (!r) {
		memcpy(token, buf, (size_t)n);
		token[n] = '\0';
	}
out:
	close(fd);
	return r;
}

/* Writes the token line "VMBUSIFY-TOKEN <token>\n" (at most 80 bytes) into out; returns its length.
 */
static size_t transport_token_line(const char *token, uint8_t out[80])
{
	size_t tag = strlen(TRANSPORT_TOKEN_TAG), n = strlen(token);

	memcpy(out, TRANSPORT_TOKEN_TAG, tag);
	memcpy(out + tag, token, n);
	out[tag + n] = '\n';
	return tag + n + 1;
}

/*
 * transport_serial_open() - opens a serial device non-blocking, raw when it
 * is a terminal (a virtio-serial port is not).
 * Return: the descriptor, or a negative errno with a reason.
 */
static int transport_serial_open(const struct uri *u, char *why, size_t whylen)
{
	struct termios tio;
	int fd, r;

	fd = open(u->path, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		why_set(why, whylen, 0, "open serial://%s: %s", u->path, strerror(-r));
		return r;
	}
	if (isatty(fd)) {
		if (tcgetattr(fd, &tio) < 0)
			goto fail;
		cfmakeraw(&tio);
		if (tcsetattr(fd, TCSANOW, &tio) < 0)
			goto fail;
	}
	return fd;
fail:
	r = -errno;
	why_set(why, whylen, 0, "serial://%s: cannot make the terminal raw: %s", u->path,
		strerror(-r));
	close(fd);
	return r;
}

/* The hybrid vsock request line "CONNECT <port>\n" into out; returns its length. */
static size_t transport_hybrid_line(uint32_t port, uint8_t out[80])
{
	return (size_t)snprintf((char *)out, 80, "CONNECT %u\n", port);
}

/*
 * transport_hybrid_reply() - judges the hypervisor's answer (n bytes, the
 * last one '\n' unless the line was too long or cut by EOF).
 * Return: 0 for "OK <digits>\n", else -ECONNREFUSED with a reason quoting it.
 */
static int transport_hybrid_reply(const struct uri *u, const uint8_t *line, size_t n, bool eof,
				  char *why, size_t whylen)
{
	char text[URI_PATH_MAX + 32], quoted[81];
	size_t i, q = 0;

	if (n > 3 && !memcmp(line, "OK ", 3) && line[n - 1] == '\n') {
		for (i = 3; i < n - 1 && line[i] >= '0' && line[i] <= '9'; i++)
			;
		if (i > 3 && i == n - 1)
			return 0;
	}
	transport_uri_text(u, text, sizeof(text));
	if (eof && !n) {
		why_set(why, whylen, 0,
			"%s: closed without an answer (is anything listening on port %u in "
			"the guest?)",
			text, u->port);
		return -ECONNREFUSED;
	}
	for (i = 0; i < n && q + 1 < sizeof(quoted); i++) {
		if (line[i] == '\n' && i == n - 1)
			break;
		quoted[q++] = line[i] >= 0x20 && line[i] < 0x7f ? (char)line[i] : '?';
	}
	quoted[q] = '\0';
	why_set(why, whylen, 0, "%s: unexpected answer '%s'%s", text, quoted,
		eof ? " before the connection closed" : "");
	return -ECONNREFUSED;
}

/* hybrid: a hypervisor that drops the connection refuses it, whether we see EOF or a reset. */
static bool transport_hybrid_hangup(const struct uri *u, int res)
{
	return u->kind == URI_HYBRID && (res == -ECONNRESET || res == -EPIPE);
}

/*
 * transport_line() - checks that u can be dialed and writes its handshake
 * line into buf (*want bytes; 0 for none): hybrid "CONNECT <port>\n", tcp the
 * token line.
 * Return: 0, or a negative errno with a reason.
 */
static int transport_line(const struct uri *u, const struct transport_opts *o, uint8_t buf[80],
			  size_t *want, char *why, size_t whylen)
{
	char token[TRANSPORT_TOKEN_MAX + 1];
	int r;

	*want = 0;
	switch (u->kind) {
	case URI_VSOCK:
		if (!u->any_cid)
			return 0;
		why_set(why, whylen, 0, "vsock://:%u is a listening address; dial vsock://CID:%u",
			u->port, u->port);
		return -EINVAL;
	case URI_UNIX:
		return 0;
	case URI_HYBRID:
		*want = transport_hybrid_line(u->port, buf);
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
	case URI_HVSOCK:
		why_set(why, whylen, 0,
			"hvsock:// is dialable on Windows only; from a Linux guest on Hyper-V "
			"dial the host with vsock://2:PORT");
		return -ENOTSUP;
	case URI_NPIPE:
		why_set(why, whylen, 0, "npipe:// is a Windows named pipe; on Linux use unix://");
		return -ENOTSUP;
	default:
		why_set(why, whylen, 0, "not a dialable address");
		return -EINVAL;
	}
}

/* The address to connect to; tcp hosts must be numeric (or "localhost"). */
static int transport_target(const struct uri *u, struct transport_addr *a, char *why, size_t whylen)
{
	if (u->kind == URI_VSOCK)
		transport_addr_vsock(u->cid, u->port, a);
	else if (u->kind == URI_TCP)
		return transport_addr_ip(u->host, u->port, true, false, a, why, whylen);
	else
		transport_addr_unix(u->path, a);
	return 0;
}

/* ---- listening ---- */

static int transport_bind_listen(int fd, const struct transport_addr *a)
{
	if (bind(fd, &a->u.sa, a->len) < 0 || listen(fd, TRANSPORT_BACKLOG) < 0)
		return -errno;
	return 0;
}

/*
 * transport_unix_stale() - decides what to do about a path a bind found in
 * use: a socket nobody listens on is removed.
 * Return: 0 when the path is free now, -EADDRINUSE (with a reason) when a
 * server is live or the path is not a socket, another negative errno else.
 */
static int transport_unix_stale(const struct uri *u, const struct transport_addr *a, char *why,
				size_t whylen)
{
	struct stat st;
	int fd, r;

	if (lstat(u->path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(st.st_mode)) {
		why_set(why, whylen, 0, "listen unix://%s: the path exists and is not a socket",
			u->path);
		return -EADDRINUSE;
	}
	fd = transport_socket(AF_UNIX);
	if (fd < 0)
		return fd;
	r = connect(fd, &a->u.sa, a->len) < 0 ? -errno : 0;
	close(fd);
	if (r == -ECONNREFUSED)
		return unlink(u->path) < 0 && errno != ENOENT ? -errno : 0;
	if (r == -ENOENT)
		return 0;
	if (!r || r == -EAGAIN) {
		why_set(why, whylen, 0, "listen unix://%s: another server is listening there",
			u->path);
		return -EADDRINUSE;
	}
	return r;
}

static int transport_listen_unix(const struct uri *u, struct transport_listener *tl, char *why,
				 size_t whylen)
{
	struct transport_addr a;
	struct stat st;
	int r;

	transport_addr_unix(u->path, &a);
	tl->fd = transport_socket(AF_UNIX);
	if (tl->fd < 0)
		return tl->fd;
	r = transport_bind_listen(tl->fd, &a);
	if (r == -EADDRINUSE && u->path[0] == '/') {
		r = transport_unix_stale(u, &a, why, whylen);
		if (!r)
			r = transport_bind_listen(tl->fd, &a);
	}
	if (r < 0)
		return r;
	if (u->path[0] == '/' && !stat(u->path, &st)) {
		snprintf(tl->path, sizeof(tl->path), "%s", u->path);
		tl->dev = st.st_dev;
		tl->ino = st.st_ino;
	}
	return 0;
}

static int transport_listen_vsock(const struct uri *u, struct transport_listener *tl)
{
	struct transport_addr a;

	transport_addr_vsock(u->any_cid ? VMADDR_CID_ANY : u->cid, u->port, &a);
	tl->fd = transport_socket(AF_VSOCK);
	if (tl->fd < 0)
		return tl->fd;
	return transport_bind_listen(tl->fd, &a);
}

/* tcp: the token first, so that no IP socket ever listens without one. */
static int transport_listen_tcp(const struct uri *u, const struct transport_opts *o,
				struct transport_listener *tl, char *why, size_t whylen)
{
	char text[URI_PATH_MAX + URI_HOST_MAX + 32];
	struct transport_addr a;
	uint8_t line[80];
	int one = 1, r;

	if (!o || !o->token_file) {
		why_set(why, whylen, 0,
			"tcp:// needs --token-file: refusing to listen on an IP socket "
			"without a token");
		return -EINVAL;
	}
	r = transport_token_load(o->token_file, tl->token, why, whylen);
	if (r < 0)
		return r;
	r = transport_addr_ip(u->host, u->port, false, true, &a, why, whylen);
	if (r < 0)
		return r;
	tl->fd = transport_socket(a.u.sa.sa_family);
	if (tl->fd < 0)
		return tl->fd;
	gate_configure(&tl->gate, tl->fd, line, transport_token_line(tl->token, line),
		       transport_timeout_ms(o), transport_uri_text(u, text, sizeof(text)));
	setsockopt(tl->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	return transport_bind_listen(tl->fd, &a);
}

/* Dispatches on the kind; fills why only where it knows more than strerror. */
static int transport_listen_kind(const struct uri *u, const struct transport_opts *o,
				 struct transport_listener *tl, char *why, size_t whylen)
{
	switch (u->kind) {
	case URI_UNIX:
		return transport_listen_unix(u, tl, why, whylen);
	case URI_VSOCK:
		return transport_listen_vsock(u, tl);
	case URI_TCP:
		return transport_listen_tcp(u, o, tl, why, whylen);
	case URI_SERIAL:
		tl->fd = transport_serial_open(u, why, whylen);
		return tl->fd < 0 ? tl->fd : 0;
	case URI_HYBRID:
		why_set(why, whylen, 0,
			"hybrid:// cannot listen: the hypervisor owns the listening side "
			"(guest-initiated connections arrive on PATH_PORT)");
		return -ENOTSUP;
	case URI_HVSOCK:
		why_set(why, whylen, 0,
			"hvsock:// is dialable on Windows only; in a Linux guest on Hyper-V "
			"use vsock://:PORT");
		return -ENOTSUP;
	case URI_NPIPE:
		why_set(why, whylen, 0, "npipe:// is a Windows named pipe; on Linux use unix://");
		return -ENOTSUP;
	}
	why_set(why, whylen, 0, "not a listenable address");
	return -EINVAL;
}

/*
 * transport_listen() - binds and listens on u (serial: opens the device).
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
	if (!tl) {
		why_set(why, whylen, 0, "out of memory");
		return -ENOMEM;
	}
	tl->kind = u->kind;
	tl->fd = -1;
	gate_init(&tl->gate);
	if (why && whylen)
		why[0] = '\0';
	r = transport_listen_kind(u, o, tl, why, whylen);
	if (r < 0)
		goto fail;
	*out = tl;
	return 0;
fail:
	if (why && whylen && !why[0])
		why_set(why, whylen, 0, "listen %s: %s", transport_uri_text(u, text, sizeof(text)),
			strerror(-r));
	if (tl->fd >= 0)
		close(tl->fd);
	free(tl);
	return r;
}

/*
 * transport_listener_close() - closes the listener and removes its socket
 * file, unless someone replaced the file since. tcp: closes the connections
 * that wait for an accept and cancels the handshakes, which free themselves
 * when the loop completes their requests (platform/gate.c).
 */
void transport_listener_close(struct transport_listener *tl)
{
	struct stat st;

	if (!tl)
		return;
	if (tl->kind == URI_TCP)
		gate_close(&tl->gate);
	if (tl->path[0] && !lstat(tl->path, &st) && st.st_dev == tl->dev && st.st_ino == tl->ino)
		unlink(tl->path);
	if (tl->fd >= 0)
		close(tl->fd);
	free(tl);
}

pl_fd transport_listener_fd(const struct transport_listener *tl)
{
	return tl->fd;
}

struct gate *transport_listener_gate(struct transport_listener *tl)
{
	return &tl->gate;
}

/* ---- accepting ---- */

/* Calls the callback once nothing is submitted any more; ar may be reused inside it. */
static void transport_accept_finish(struct transport_accept_req *ar)
{
	int res = ar->result;
	pl_fd fd = ar->fd;

	if (ar->pending)
		return;
	ar->fd = -1;
	if (res < 0 && fd >= 0) {
		close((int)fd);
		fd = -1;
	}
	ar->cb(ar, res, fd);
}

/* Settles the accept with res (0: success) unless it has failed already; cancels what is submitted.
 */
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
	if (res < 0)
		transport_accept_end(ar, res);
	else if (!ar->result)
		ar->fd = res;
	else
		close(res);
	transport_accept_finish(ar);
}

/*
 * transport_serial_far_end_gone() - true while nobody holds the other end of a
 * serial device. A virtio-serial port whose host side is not connected (the
 * QEMU chardev socket has no client) polls as POLLHUP, reads return 0 and
 * writes block; so does a pty whose master is closed. A session started then
 * would end at once with "closed by the peer", again and again.
 */
static bool transport_serial_far_end_gone(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN | POLLOUT};

	return poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
}

/*
 * serial: the timer moves the callback out of transport_accept() and, while
 * the far end is gone, polls for it every TRANSPORT_SERIAL_POLL_MS: the
 * device gives no event when the host connects (POLLHUP stays set until then).
 */
static void transport_accept_serial_done(struct loop_req *req, int res)
{
	struct transport_accept_req *ar = container_of(req, struct transport_accept_req, timer);

	ar->pending &= ~TRANSPORT_BUSY_TIMER;
	if (res != -ECANCELED && !ar->result && transport_serial_far_end_gone((int)ar->fd)) {
		res = loop_timer(ar->loop, &ar->timer, TRANSPORT_SERIAL_POLL_MS * 1000000ull,
				 transport_accept_serial_done);
		if (!res) {
			ar->pending |= TRANSPORT_BUSY_TIMER;
			return;
		}
		transport_accept_end(ar, res);
	}
	transport_accept_finish(ar);
}

/*
 * transport_accept() - see platform/transport.h. The listener must outlive
 * the request. For serial, an accept completes with a duplicate of the device
 * descriptor as soon as the far end is connected (at once if it is): the
 * caller accepts again only after the previous session over it has ended,
 * which is what single_connection promises, and so a host that disconnects
 * and comes back (a restarted daemon) gets a fresh session.
 */
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
	if (tl->kind != URI_SERIAL) {
		r = loop_accept(l, &ar->req, tl->fd, transport_accept_done);
		ar->pending = r < 0 ? 0 : TRANSPORT_BUSY_REQ;
		return r;
	}
	ar->fd = fcntl(tl->fd, F_DUPFD_CLOEXEC, 0);
	if (ar->fd < 0)
		return -errno;
	r = loop_timer(l, &ar->timer, 0, transport_accept_serial_done);
	if (r < 0) {
		close((int)ar->fd);
		ar->fd = -1;
		return r;
	}
	ar->pending = TRANSPORT_BUSY_TIMER;
	return 0;
}

/* ---- dialing on a loop ---- */

static void transport_dial_finish(struct transport_dial_req *dr)
{
	int res = dr->result;
	pl_fd fd = dr->fd;

	if (dr->pending)
		return;
	dr->fd = -1;
	if (res < 0 && fd >= 0) {
		close((int)fd);
		fd = -1;
	}
	dr->cb(dr, res, fd);
}

/* Ends the dial with res (0: success) unless it has ended already; cancels what is submitted. */
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

/* Ends the dial with res and the reason "<what> <uri>: <strerror>". */
static void transport_dial_fail(struct transport_dial_req *dr, int res, const char *what)
{
	char text[URI_PATH_MAX + URI_HOST_MAX + 32];

	if (dr->state == TRANSPORT_DIAL_DONE)
		return;
	why_set(dr->why, sizeof(dr->why), 0, "%s %s: %s", what,
		transport_uri_text(&dr->uri, text, sizeof(text)), strerror(-res));
	transport_dial_end(dr, res);
}

void transport_dial_cancel(struct transport_dial_req *dr)
{
	transport_dial_fail(dr, -ECANCELED, "dial");
}

static void transport_dial_connect_done(struct loop_req *req, int res);
static void transport_dial_send_done(struct loop_req *req, int res);
static void transport_dial_reply_done(struct loop_req *req, int res);

/* Notes a step's request as submitted (r == 0), or ends the dial when submitting failed (r < 0). */
static void transport_dial_submitted(struct transport_dial_req *dr, int r, const char *what)
{
	if (r < 0)
		transport_dial_fail(dr, r, what);
	else
		dr->pending |= TRANSPORT_BUSY_REQ;
}

/* unix and hybrid: connects again after the listener's backlog was full. */
static void transport_dial_connect_again(struct transport_dial_req *dr)
{
	struct transport_addr a;

	transport_addr_unix(dr->uri.path, &a);
	transport_dial_submitted(
	    dr,
	    loop_connect(dr->loop, &dr->req, dr->fd, &a.u.ss, a.len, transport_dial_connect_done),
	    "connect");
}

static void transport_dial_retry_done(struct loop_req *req, int res)
{
	struct transport_dial_req *dr = container_of(req, struct transport_dial_req, req);

	dr->pending &= ~TRANSPORT_BUSY_REQ;
	if (dr->state != TRANSPORT_DIAL_DONE)
		transport_dial_connect_again(dr);
	transport_dial_finish(dr);
}

static void transport_dial_send(struct transport_dial_req *dr)
{
	dr->state = TRANSPORT_DIAL_SEND;
	transport_dial_submitted(dr,
				 loop_write(dr->loop, &dr->req, dr->fd, dr->buf + dr->sent,
					    dr->want - dr->sent, transport_dial_send_done),
				 "handshake with");
}

static void transport_dial_read_byte(struct transport_dial_req *dr)
{
	dr->state = TRANSPORT_DIAL_REPLY;
	transport_dial_submitted(
	    dr,
	    loop_read(dr->loop, &dr->req, dr->fd, dr->buf + dr->have, 1, transport_dial_reply_done),
	    "handshake with");
}

static void transport_dial_connect_done(struct loop_req *req, int res)
{
	struct transport_dial_req *dr = container_of(req, struct transport_dial_req, req);
	bool unix_like = dr->uri.kind == URI_UNIX || dr->uri.kind == URI_HYBRID;

	dr->pending &= ~TRANSPORT_BUSY_REQ;
	if (dr->state == TRANSPORT_DIAL_DONE)
		goto out;
	if (res == -EAGAIN && unix_like) {
		/* The listener's backlog is full; the deadline timer bounds the retries. */
		transport_dial_submitted(
		    dr,
		    loop_timer(dr->loop, &dr->req, TRANSPORT_RETRY_NS, transport_dial_retry_done),
		    "connect");
	} else if (res < 0) {
		transport_dial_fail(dr, res, "connect");
	} else if (dr->want) {
		transport_dial_send(dr);
	} else {
		transport_dial_end(dr, 0);
	}
out:
	transport_dial_finish(dr);
}

/* A send that failed, or wrote nothing (hybrid: the hypervisor hung up). */
static void transport_dial_handshake_error(struct transport_dial_req *dr, int res)
{
	if (dr->uri.kind == URI_HYBRID && !res)
		transport_dial_end(dr, transport_hybrid_reply(&dr->uri, dr->buf, 0, true, dr->why,
							      sizeof(dr->why)));
	else
		transport_dial_fail(dr, res ? res : -EPIPE, "handshake with");
}

static void transport_dial_send_done(struct loop_req *req, int res)
{
	struct transport_dial_req *dr = container_of(req, struct transport_dial_req, req);

	dr->pending &= ~TRANSPORT_BUSY_REQ;
	if (dr->state == TRANSPORT_DIAL_DONE)
		goto out;
	if (transport_hybrid_hangup(&dr->uri, res))
		res = 0;
	if (res <= 0) {
		transport_dial_handshake_error(dr, res);
		goto out;
	}
	dr->sent += (size_t)res;
	if (dr->sent < dr->want)
		transport_dial_send(dr);
	else if (dr->uri.kind == URI_HYBRID)
		transport_dial_read_byte(dr);
	else
		transport_dial_end(dr, 0);
out:
	transport_dial_finish(dr);
}

/* hybrid: one byte of "OK <n>\n" at a time, so that nothing after the line is consumed. */
static void transport_dial_reply_done(struct loop_req *req, int res)
{
	struct transport_dial_req *dr = container_of(req, struct transport_dial_req, req);
	bool eof;

	dr->pending &= ~TRANSPORT_BUSY_REQ;
	if (dr->state == TRANSPORT_DIAL_DONE)
		goto out;
	if (transport_hybrid_hangup(&dr->uri, res))
		res = 0;
	if (res < 0) {
		transport_dial_fail(dr, res, "handshake with");
		goto out;
	}
	eof = res == 0;
	dr->have += (size_t)res;
	if (!eof && dr->buf[dr->have - 1] != '\n' && dr->have < sizeof(dr->buf)) {
		transport_dial_read_byte(dr);
		goto out;
	}
	transport_dial_end(
	    dr, transport_hybrid_reply(&dr->uri, dr->buf, dr->have, eof, dr->why, sizeof(dr->why)));
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

/* serial: the zero timer only moves the callback out of transport_dial(). */
static void transport_dial_serial_done(struct loop_req *req, int res)
{
	struct transport_dial_req *dr = container_of(req, struct transport_dial_req, timer);

	dr->pending &= ~TRANSPORT_BUSY_TIMER;
	transport_dial_finish(dr);
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

/* serial: opening the device does not block; only the callback is deferred. */
static int transport_dial_serial(struct transport_dial_req *dr)
{
	int r = transport_serial_open(&dr->uri, dr->why, sizeof(dr->why));

	if (r < 0)
		return r;
	dr->fd = r;
	dr->state = TRANSPORT_DIAL_DONE;
	r = loop_timer(dr->loop, &dr->timer, 0, transport_dial_serial_done);
	if (r < 0) {
		why_set(dr->why, sizeof(dr->why), 0, "loop timer: %s", strerror(-r));
		close((int)dr->fd);
		dr->fd = -1;
		return r;
	}
	dr->pending = TRANSPORT_BUSY_TIMER;
	return 0;
}

/*
 * transport_dial() - see platform/transport.h. tcp hosts must be IP
 * addresses (or "localhost") here, because name lookups block.
 */
int transport_dial(struct loop *l, const struct uri *u, const struct transport_opts *o,
		   struct transport_dial_req *dr, transport_dial_cb cb)
{
	struct transport_addr a;
	int r;

	transport_dial_init(l, u, o, dr, cb);
	if (u->kind == URI_SERIAL)
		return transport_dial_serial(dr);
	r = transport_line(u, o, dr->buf, &dr->want, dr->why, sizeof(dr->why));
	if (r < 0)
		return r;
	r = transport_target(u, &a, dr->why, sizeof(dr->why));
	if (r < 0)
		return r;
	r = transport_socket(a.u.sa.sa_family);
	if (r < 0) {
		transport_dial_fail(dr, r, "socket for");
		return r;
	}
	dr->fd = r;
	r = loop_connect(l, &dr->req, dr->fd, &a.u.ss, a.len, transport_dial_connect_done);
	if (r < 0) {
		transport_dial_fail(dr, r, "connect");
		close((int)dr->fd);
		dr->fd = -1;
		return r;
	}
	dr->pending = TRANSPORT_BUSY_REQ;
	r = loop_timer(l, &dr->timer, (uint64_t)dr->timeout_ms * 1000000,
		       transport_dial_timer_done);
	if (r < 0)
		transport_dial_fail(dr, r, "timer for");
	else
		dr->pending |= TRANSPORT_BUSY_TIMER;
	return 0;
}

/* ---- dialing without a loop ---- */

/* Waits for events on fd until deadline_ms; returns 0, -ETIMEDOUT or a negative errno. */
static int transport_wait(int fd, short events, uint64_t deadline_ms)
{
	struct pollfd p = {.fd = fd, .events = events};

	for (;;) {
		uint64_t now = transport_now_ms();
		int r;

		if (now >= deadline_ms)
			return -ETIMEDOUT;
		r = poll(&p, 1, (int)(deadline_ms - now));
		if (r > 0)
			return 0;
		if (r < 0 && errno != EINTR)
			return -errno;
	}
}

/* Connects the non-blocking socket fd before deadline_ms; returns 0 or a negative errno. */
static int transport_connect_sync(int fd, const struct transport_addr *a, uint64_t deadline_ms)
{
	int err = 0, r;
	socklen_t len = sizeof(err);

	for (;;) {
		if (!connect(fd, &a->u.sa, a->len))
			return 0;
		if (errno == EINPROGRESS || errno == EINTR)
			break;
		if (errno != EAGAIN)
			return -errno;
		/* A unix listener's backlog is full: try again shortly. */
		if (transport_now_ms() >= deadline_ms)
			return -ETIMEDOUT;
		poll(NULL, 0, TRANSPORT_RETRY_NS / 1000000);
	}
	r = transport_wait(fd, POLLOUT, deadline_ms);
	if (r < 0)
		return r;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		return -errno;
	return -err;
}

static int transport_send_sync(int fd, const uint8_t *p, size_t n, uint64_t deadline_ms)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		int r;

		if (w < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (w < 0) {
			r = transport_wait(fd, POLLOUT, deadline_ms);
			if (r < 0)
				return r;
			continue;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * transport_line_sync() - reads one byte at a time until '\n', EOF or cap
 * bytes. Return: the bytes read (0 and *eof on a closed connection), or a
 * negative errno.
 */
static int transport_line_sync(int fd, uint8_t *buf, size_t cap, bool *eof, uint64_t deadline_ms)
{
	size_t have = 0;

	*eof = false;
	while (have < cap && (!have || buf[have - 1] != '\n')) {
		ssize_t n = recv(fd, buf + have, 1, 0);
		int r;

		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (n < 0) {
			r = transport_wait(fd, POLLIN, deadline_ms);
			if (r < 0)
				return r;
			continue;
		}
		if (!n) {
			*eof = true;
			break;
		}
		have++;
	}
	return (int)have;
}

/* The handshake of hybrid and tcp after connect; fills why on failure. */
static int transport_handshake_sync(const struct uri *u, int fd, const uint8_t *line, size_t want,
				    uint64_t deadline_ms, char *why, size_t whylen)
{
	char text[URI_PATH_MAX + URI_HOST_MAX + 32];
	uint8_t reply[80];
	bool eof;
	int r;

	r = transport_send_sync(fd, line, want, deadline_ms);
	if (r >= 0 && u->kind == URI_HYBRID) {
		r = transport_line_sync(fd, reply, sizeof(reply), &eof, deadline_ms);
		if (r >= 0)
			return transport_hybrid_reply(u, reply, (size_t)r, eof, why, whylen);
	}
	if (transport_hybrid_hangup(u, r))
		return transport_hybrid_reply(u, reply, 0, true, why, whylen);
	if (r < 0)
		why_set(why, whylen, 0, "handshake with %s: %s",
			transport_uri_text(u, text, sizeof(text)),
			r == -ETIMEDOUT ? "timed out" : strerror(-r));
	return r;
}

/* Connects a new socket to a before deadline_ms; returns it or a negative errno. */
static int transport_connect_new_sync(const struct transport_addr *a, uint64_t deadline_ms)
{
	int fd = transport_socket(a->u.sa.sa_family), r;

	if (fd < 0)
		return fd;
	r = transport_connect_sync(fd, a, deadline_ms);
	if (r < 0) {
		close(fd);
		return r;
	}
	return fd;
}

/*
 * transport_connect_ip_sync() - resolves the tcp host (which may block) and
 * tries its addresses in turn.
 * Return: a connected socket, or a negative errno (-ENXIO with a reason when
 * the name does not resolve).
 */
static int transport_connect_ip_sync(const struct uri *u, uint64_t deadline_ms, char *why,
				     size_t whylen)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
	struct addrinfo *res = NULL, *ai;
	const char *host = u->host[0] ? u->host : "127.0.0.1";
	struct transport_addr a;
	char service[12];
	int fd = -EHOSTUNREACH, r;

	snprintf(service, sizeof(service), "%u", u->port);
	r = getaddrinfo(host, service, &hints, &res);
	if (r) {
		why_set(why, whylen, 0, "resolve tcp host '%s': %s", host, gai_strerror(r));
		return -ENXIO;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		memset(&a, 0, sizeof(a));
		memcpy(&a.u.ss, ai->ai_addr, ai->ai_addrlen);
		a.len = ai->ai_addrlen;
		fd = transport_connect_new_sync(&a, deadline_ms);
		if (fd >= 0 || fd == -ETIMEDOUT)
			break;
	}
	freeaddrinfo(res);
	return fd;
}

/*
 * transport_dial_sync() - see platform/transport.h; tcp host names are
 * resolved here. The descriptor is non-blocking and close-on-exec.
 */
int transport_dial_sync(const struct uri *u, const struct transport_opts *o, pl_fd *out, char *why,
			size_t whylen)
{
	uint64_t deadline = transport_now_ms() + transport_timeout_ms(o);
	char text[URI_PATH_MAX + URI_HOST_MAX + 32];
	struct transport_addr a;
	uint8_t line[80];
	size_t want = 0;
	int fd, r;

	*out = -1;
	if (why && whylen)
		why[0] = '\0';
	if (u->kind == URI_SERIAL)
		fd = transport_serial_open(u, why, whylen);
	else if ((r = transport_line(u, o, line, &want, why, whylen)) < 0)
		return r;
	else if (u->kind == URI_TCP)
		fd = transport_connect_ip_sync(u, deadline, why, whylen);
	else if (!transport_target(u, &a, why, whylen))
		fd = transport_connect_new_sync(&a, deadline);
	else
		fd = -EINVAL;
	if (fd < 0) {
		if (why && whylen && !why[0])
			why_set(why, whylen, 0, "connect %s: %s",
				transport_uri_text(u, text, sizeof(text)),
				fd == -ETIMEDOUT ? "timed out" : strerror(-fd));
		return fd;
	}
	if (u->kind != URI_SERIAL && want) {
		r = transport_handshake_sync(u, fd, line, want, deadline, why, whylen);
		if (r < 0)
			goto fail;
	}
	*out = fd;
	return 0;
fail:
	close(fd);
	return r;
}
