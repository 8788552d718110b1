/* Blocking I/O with deadlines on non-blocking descriptors. */
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include "platform/fdio.h"

/* Waits for events on fd until the deadline; returns 0, -ETIMEDOUT or a negative errno. */
static int fdio_wait(int fd, short events, uint64_t deadline)
{
	uint64_t now = clock_now_ns();
	struct pollfd p = {.fd = fd, .events = events};
	int n;

	if (now >= deadline)
		return -ETIMEDOUT;
	n = poll(&p, 1, (int)((deadline - now) / 1000000 + 1));
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	return n ? 0 : -ETIMEDOUT;
}

int fdio_write_all(pl_fd fd, const void *buf, size_t len, int timeout_ms)
{
	uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	const char *p = buf;

	while (len) {
		ssize_t n = write((int)fd, p, len);
		int ret;

		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		ret = fdio_wait((int)fd, POLLOUT, deadline);
		if (ret)
			return ret;
	}
	return 0;
}

int fdio_read_line(pl_fd fd, char *buf, size_t len, int timeout_ms)
{
	uint64_t deadline = clock_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	size_t have = 0;

	for (;;) {
		char c;
		ssize_t n = read((int)fd, &c, 1);
		int ret;

		if (n == 1) {
			if (c == '\n') {
				buf[have] = '\0';
				return (int)have;
			}
			if (have + 1 >= len)
				return -EMSGSIZE;
			buf[have++] = c;
			continue;
		}
		if (n == 0)
			return -ECONNRESET;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		ret = fdio_wait((int)fd, POLLIN, deadline);
		if (ret)
			return ret;
	}
}

int fdio_shutdown_write(pl_fd fd)
{
	return shutdown((int)fd, SHUT_WR) ? -errno : 0;
}

pl_fd fdio_std(int n)
{
	return n >= 0 && n < 3 ? n : -1;
}
