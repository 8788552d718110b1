/* Blocking I/O with deadlines on sockets and pipe handles, and the standard handles, on Windows. */
#include <winsock2.h>
#include <windows.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include "platform/fdio.h"
#include "platform/win/err.h"

/*
 * A socket is waited on with WSAPoll; any other handle (a named pipe, opened
 * overlapped by the transports) takes one overlapped ReadFile or WriteFile
 * with its own event, waited on until the deadline and cancelled past it.
 */

static bool fdio_is_socket(pl_fd fd)
{
	int type, len = sizeof(type);

	return !getsockopt((SOCKET)fd, SOL_SOCKET, SO_TYPE, (char *)&type, &len);
}

/* Milliseconds left until deadline (ns), or -ETIMEDOUT. */
static int fdio_left_ms(uint64_t deadline)
{
	uint64_t now = clock_now_ns();

	if (now >= deadline)
		return -ETIMEDOUT;
	return (int)((deadline - now) / 1000000 + 1);
}

static int fdio_sock_wait(SOCKET s, short events, uint64_t deadline)
{
	WSAPOLLFD p = {.fd = s, .events = events};
	int ms = fdio_left_ms(deadline), n;

	if (ms < 0)
		return ms;
	n = WSAPoll(&p, 1, ms);
	if (n < 0)
		return err_wsa_last();
	return n ? 0 : -ETIMEDOUT;
}

/* One send or recv on a non-blocking socket: bytes moved, 0 for "wait", or a negative errno. */
static int fdio_sock_io(SOCKET s, void *buf, size_t len, bool writing, uint64_t deadline)
{
	int n = writing ? send(s, buf, (int)len, 0) : recv(s, buf, (int)len, 0);

	if (n > 0)
		return n;
	if (n == 0)
		return -ECONNRESET; /* recv: end of stream */
	if (WSAGetLastError() != WSAEWOULDBLOCK)
		return err_wsa_last();
	n = fdio_sock_wait(s, writing ? POLLWRNORM : POLLRDNORM, deadline);
	return n < 0 ? n : 0;
}

/* One overlapped read or write on a handle, waited for until deadline; bytes moved or -errno. */
static int fdio_handle_io(HANDLE h, void *buf, size_t len, bool writing, uint64_t deadline)
{
	OVERLAPPED ov = {0};
	DWORD n = 0, e = 0;
	int ms = fdio_left_ms(deadline), ret;
	BOOL ok;

	if (ms < 0)
		return ms;
	ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
	if (!ov.hEvent)
		return err_win_last();
	ok = writing ? WriteFile(h, buf, (DWORD)len, NULL, &ov)
		     : ReadFile(h, buf, (DWORD)len, NULL, &ov);
	if (!ok && (e = GetLastError()) == ERROR_IO_PENDING &&
	    WaitForSingleObject(ov.hEvent, (DWORD)ms) == WAIT_TIMEOUT)
		CancelIoEx(h, &ov);
	if (ok || e == ERROR_IO_PENDING) {
		ok = GetOverlappedResult(h, &ov, &n, TRUE);
		e = ok ? 0 : GetLastError();
	}
	CloseHandle(ov.hEvent);
	if (e == ERROR_OPERATION_ABORTED)
		return -ETIMEDOUT;
	if (e == ERROR_BROKEN_PIPE || e == ERROR_HANDLE_EOF || (!e && !writing && !n))
		return writing ? -EPIPE : -ECONNRESET;
	ret = e ? err_from_win(e) : (int)n;
	return ret;
}

/* Moves up to len bytes: > 0 bytes moved, 0 when a socket must be waited for again, or -errno. */
static int fdio_io(pl_fd fd, void *buf, size_t len, bool writing, uint64_t deadline)
{
	if (len > INT_MAX / 2)
		len = INT_MAX / 2;
	if (fdio_is_socket(fd))
		return fdio_sock_io((SOCKET)fd, buf, len, writing, deadline);
	return fdio_handle_io((HANDLE)fd, buf, len, writing, deadline);
}

int fdio_write_all(pl_fd fd, const void *buf, size_t len, int timeout_ms)
{
	uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	const char *p = buf;

	while (len) {
		int n = fdio_io(fd, (void *)p, len, true, deadline);

		if (n < 0)
			return n == -ECONNRESET ? -EPIPE : n;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int fdio_read_line(pl_fd fd, char *buf, size_t len, int timeout_ms)
{
	uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	size_t have = 0;

	for (;;) {
		char c;
		int n = fdio_io(fd, &c, 1, false, deadline);

		if (n < 0)
			return n;
		if (n == 0)
			continue;
		if (c == '\n') {
			buf[have] = '\0';
			return (int)have;
		}
		if (have + 1 >= len)
			return -EMSGSIZE;
		buf[have++] = c;
	}
}

/* A socket is shut down for sending; a pipe has no half-close. */
int fdio_shutdown_write(pl_fd fd)
{
	if (!fdio_is_socket(fd))
		return -EOPNOTSUPP;
	return shutdown((SOCKET)fd, SD_SEND) ? err_wsa_last() : 0;
}

pl_fd fdio_std(int n)
{
	static const DWORD which[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
	HANDLE h = n >= 0 && n < 3 ? GetStdHandle(which[n]) : NULL;

	return h && h != INVALID_HANDLE_VALUE ? (pl_fd)h : -1;
}
