/* The file system as cp needs it: walking and reading sources, creating entries under a target. */
#ifndef VB_EXEC_CP_FS_H
#define VB_EXEC_CP_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The only file of cp that calls the OS (POSIX *at() calls, Linux O_TMPFILE);
 * a Windows agent would bring its own. Descriptors are ints; every function
 * returns 0 (or a count) or a negative errno.
 *
 * Everything below a target directory is reached from a descriptor of it, one
 * component at a time with O_NOFOLLOW: a symbolic link that a peer created,
 * or that was there before, is never followed on the way down.
 */

struct cp_stat {
	uint8_t type;  /* CP_T_FILE, CP_T_DIR, CP_T_LINK, or 0 for anything else */
	uint32_t mode; /* permission bits, 07777 */
	uint64_t size;
	int64_t mtime_ns, atime_ns;
};

/* Times to set: access and modification, nanoseconds since the epoch. */
struct cp_times {
	int64_t atime_ns, mtime_ns;
};

/* stat(2) (follow) or lstat(2) of a path given by the user or found by the walk. */
int cp_fs_stat(const char *path, bool follow, struct cp_stat *st);
/* The target of a symbolic link into buf (cap bytes, NUL-terminated); returns its length. */
int cp_fs_readlink(const char *path, char *buf, size_t cap);
/*
 * The names in a directory, without "." and "..", sorted (a stable order for
 * the receiver and for tests). *names is an array of n strings the caller
 * frees with cp_fs_list_free().
 */
int cp_fs_list(const char *path, char ***names, size_t *n);
void cp_fs_list_free(char **names, size_t n);
/* Opens a regular file for reading, refusing anything else (-EOPNOTSUPP) and links (-ELOOP). */
int cp_fs_open_read(const char *path, int *fd);
/* The same for a source named on the command line without -r: a link to a file is followed. */
int cp_fs_open_read_named(const char *path, int *fd);
void cp_fs_close(int fd);
/* The current time, for a file made from a stream. */
int64_t cp_fs_now_ns(void);

/* Opens the user's own target directory (links followed: the user named it). */
int cp_fs_open_dir(const char *path, int *fd);
/* Opens directory name under dir, never through a symbolic link; returns -ELOOP for one. */
int cp_fs_open_sub(int dir, const char *name, int *fd);
/* True when path is a directory (following links); -ENOENT when nothing is there. */
int cp_fs_is_dir(const char *path, bool *is_dir);
/*
 * Creates directory name under dir (mode 0700 until its own mode is set at
 * the end). *created is false when a directory was already there; anything
 * else there is -ENOTDIR.
 */
int cp_fs_mkdir(int dir, const char *name, bool *created);
/* Sets the mode and, when times is not NULL, the times of an open file or directory. */
int cp_fs_set(int fd, uint32_t mode, const struct cp_times *times);
/* Replaces (or creates) name under dir with a symbolic link, through a temporary name. */
int cp_fs_symlink(int dir, const char *name, const char *target, const struct cp_times *times);

/*
 * A file being received. With O_TMPFILE it has no name until it is complete,
 * so a receiver that dies leaves nothing behind; elsewhere it is written as
 * ".<name>.vmbusify-XXXXXX" in the target's directory.
 */
struct cp_tmp {
	int fd;
	bool named;
	char name[256];
};

/* Creates the temporary file for name under dir, mode 0600. */
int cp_fs_tmp_open(int dir, const char *name, struct cp_tmp *t);
/*
 * Puts the complete file at name, atomically replacing what was there, and
 * closes it. On failure nothing is left of it (the target is untouched).
 */
int cp_fs_tmp_commit(int dir, const char *name, struct cp_tmp *t);
/* Closes and removes an incomplete file. */
void cp_fs_tmp_discard(int dir, struct cp_tmp *t);

#endif
