/* Small facts about the system that feature code needs. */
#ifndef VB_PLATFORM_SYS_H
#define VB_PLATFORM_SYS_H

#include <stddef.h>

/* Online CPUs, at least 1. */
int sys_ncpu(void);
/* Ignores SIGPIPE so that writes to closed peers fail with EPIPE. */
void sys_ignore_sigpipe(void);
/*
 * Raises the soft limit of open descriptors to the hard limit (a daemon
 * holds one or two per connection; the default soft limit of 1024 would
 * cap it far below its own limits). Returns the limit now in force.
 */
long sys_raise_nofile(void);
/* Sleeps the calling thread for ms milliseconds (start-up paths only, never on a loop). */
void sys_sleep_ms(unsigned ms);
/*
 * In a child between fork and exec: puts back the soft limit that
 * sys_raise_nofile() raised, since programs may use select() or loop up to
 * the limit. Async-signal-safe.
 */
void sys_restore_nofile(void);
/* The text for a negative errno. */
const char *sys_strerror(int neg_errno);
/*
 * Blocks the termination signals (INT, TERM, HUP) in the calling thread and
 * every thread it starts afterwards, so that only sys_wait_termination() sees
 * them. Call before starting loops.
 */
void sys_block_termination(void);
/* Waits for a termination signal and returns its number. */
int sys_wait_termination(void);
/*
 * Limits a control socket to root and the "vmbusify" group: mode 0660 and,
 * when that group exists, its group. Returns 0 or a negative errno.
 */
int sys_restrict_socket(const char *path);
/* Creates a directory and its parents with mode 0755; returns 0 or a negative errno. */
int sys_mkdir_p(const char *path);
/* Reads a whole file (at most max bytes) into a new NUL-terminated buffer. */
int sys_read_file(const char *path, size_t max, char **out, size_t *len);
/*
 * Replaces path with data, atomically (a temporary beside it, flushed to
 * disk, then renamed over it): a crash leaves the old file or the new one.
 * Returns 0 or a negative errno.
 */
int sys_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode);

/* Sends log lines to syslog (journald) instead of stderr. */
void sys_log_to_syslog(const char *ident);
/* The directory holding the running executable; returns 0 or a negative errno. */
int sys_self_dir(char *buf, size_t len);
/* True when path exists (any type). */
int sys_exists(const char *path);
/* Replaces the process with argv[0] run with argv, VB_BIN_DIR set; returns only on error. */
int sys_exec(const char *path, char *const argv[], const char *bin_dir);
/* True when descriptor fd is a terminal. */
int sys_isatty(int fd);
/*
 * Opens /dev/null on any of descriptors 0, 1 and 2 that is closed, so that no
 * socket or eventfd the program opens later takes a standard number (ssh
 * does the same). Call first thing in main().
 */
void sys_std_fds_open(void);
/*
 * The i-th known place of the daemon's control socket, most likely first: a
 * path (a unix socket) or a URI (npipe:// on Windows); NULL past the last.
 */
const char *sys_control_place(int i);
/*
 * True when a command-line argument can only be a local path on this
 * system, whatever ':' it holds: on Windows a drive (C:\data, C:x), a UNC or
 * device path (\\server\share) or a backslash before the first ':'; on
 * Linux never (there, a '/' before the ':' says it, in feature code).
 */
int sys_path_is_local_form(const char *arg);
/*
 * True when path does not depend on the current directory: "/..." on Linux;
 * "C:\...", "C:/...", "\..." or "/..." (the current drive's root) or UNC on Windows.
 */
int sys_path_is_absolute(const char *path);
/* True when running as root (or an Administrator). */
int sys_is_admin(void);

#endif
