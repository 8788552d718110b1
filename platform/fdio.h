/* Blocking I/O with deadlines on non-blocking descriptors, for tools before their loop runs. */
#ifndef VB_PLATFORM_FDIO_H
#define VB_PLATFORM_FDIO_H

#include <stddef.h>
#include "platform/loop.h"

/* Writes all of buf within timeout_ms; returns 0 or a negative errno (-ETIMEDOUT). */
int fdio_write_all(pl_fd fd, const void *buf, size_t len, int timeout_ms);
/*
 * Reads one line (up to and without its '\n') into buf, a byte at a time so
 * nothing after the line is consumed. Returns its length, -ECONNRESET on
 * end-of-file, -EMSGSIZE when longer than len - 1, -ETIMEDOUT.
 */
int fdio_read_line(pl_fd fd, char *buf, size_t len, int timeout_ms);
/* Sends an end-of-file (shutdown for writing); returns 0 or a negative errno. */
int fdio_shutdown_write(pl_fd fd);
/*
 * The descriptor of standard input (n = 0), output (1) or error (2): the
 * number itself on Linux, the process's standard handle on Windows; -1 when
 * there is none. The caller does not own it.
 */
pl_fd fdio_std(int n);

#endif
