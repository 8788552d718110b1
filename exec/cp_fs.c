/* cp's file system calls (POSIX *at() and Linux O_TMPFILE): the one OS-facing file of cp. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/random.h>
#include <sys/stat.h>
#include "exec/cp_fs.h"
#include "exec/cp_msg.h"

#define CP_TMP_TRIES 16

static int64_t cp_fs_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static struct timespec cp_fs_ts(int64_t ns)
{
	struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};

	if (ts.tv_nsec < 0) {
		ts.tv_sec--;
		ts.tv_nsec += 1000000000;
	}
	return ts;
}

static void cp_fs_fill(const struct stat *sb, struct cp_stat *st)
{
	st->type = S_ISREG(sb->st_mode)	  ? CP_T_FILE
		   : S_ISDIR(sb->st_mode) ? CP_T_DIR
		   : S_ISLNK(sb->st_mode) ? CP_T_LINK
					  : 0;
	st->mode = sb->st_mode & 07777;
	st->size = st->type == CP_T_FILE ? (uint64_t)sb->st_size : 0;
	st->mtime_ns = cp_fs_ns(&sb->st_mtim);
	st->atime_ns = cp_fs_ns(&sb->st_atim);
}

int cp_fs_stat(const char *path, bool follow, struct cp_stat *st)
{
	struct stat sb;

	if ((follow ? stat(path, &sb) : lstat(path, &sb)) < 0)
		return -errno;
	cp_fs_fill(&sb, st);
	return 0;
}

int cp_fs_readlink(const char *path, char *buf, size_t cap)
{
	ssize_t n = readlink(path, buf, cap);

	if (n < 0)
		return -errno;
	if ((size_t)n >= cap)
		return -ENAMETOOLONG;
	buf[n] = '\0';
	return (int)n;
}

static int cp_fs_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void cp_fs_list_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Appends a copy of name to the growing array; returns 0 or -ENOMEM. */
static int cp_fs_list_add(char ***names, size_t *n, size_t *cap, const char *name)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		char **nn = realloc(*names, ncap * sizeof(*nn));

		if (!nn)
			return -ENOMEM;
		*names = nn;
		*cap = ncap;
	}
	(*names)[*n] = strdup(name);
	if (!(*names)[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

int cp_fs_list(const char *path, char ***names, size_t *n)
{
	DIR *d = opendir(path);
	size_t cap = 0;
	struct dirent *de;
	int ret = 0;

	*names = NULL;
	*n = 0;
	if (!d)
		return -errno;
	errno = 0;
	while (!ret && (de = readdir(d))) {
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			ret = cp_fs_list_add(names, n, &cap, de->d_name);
	}
	if (!ret && errno)
		ret = -errno;
	closedir(d);
	if (ret) {
		cp_fs_list_free(*names, *n);
		*names = NULL;
		*n = 0;
		return ret;
	}
	if (*n)
		qsort(*names, *n, sizeof(**names), cp_fs_cmp);
	return 0;
}

/* Opens path for reading with extra open flags, refusing anything but a regular file. */
static int cp_fs_open_reg(const char *path, int flags, int *fd)
{
	struct stat sb;

	/* O_NONBLOCK: a FIFO put in a file's place must not block the open. */
	*fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC | flags);
	if (*fd < 0)
		return -errno;
	if (fstat(*fd, &sb) < 0) {
		int ret = -errno;

		close(*fd);
		*fd = -1;
		return ret;
	}
	if (!S_ISREG(sb.st_mode)) {
		close(*fd);
		*fd = -1;
		return -EOPNOTSUPP;
	}
	return 0;
}

int cp_fs_open_read(const char *path, int *fd)
{
	return cp_fs_open_reg(path, O_NOFOLLOW, fd);
}

int cp_fs_open_read_named(const char *path, int *fd)
{
	return cp_fs_open_reg(path, 0, fd);
}

void cp_fs_close(int fd)
{
	if (fd >= 0)
		close(fd);
}

int64_t cp_fs_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return cp_fs_ns(&ts);
}

/* ---- the receiving side ---- */

int cp_fs_open_dir(const char *path, int *fd)
{
	*fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return *fd < 0 ? -errno : 0;
}

int cp_fs_open_sub(int dir, const char *name, int *fd)
{
	*fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd >= 0)
		return 0;
	/* O_DIRECTORY | O_NOFOLLOW on a link may say ENOTDIR: say what it is. */
	if (errno == ENOTDIR) {
		struct stat sb;

		if (!fstatat(dir, name, &sb, AT_SYMLINK_NOFOLLOW) && S_ISLNK(sb.st_mode))
			return -ELOOP;
		return -ENOTDIR;
	}
	return -errno;
}

int cp_fs_is_dir(const char *path, bool *is_dir)
{
	struct stat sb;

	if (stat(path, &sb) < 0)
		return -errno;
	*is_dir = S_ISDIR(sb.st_mode);
	return 0;
}

int cp_fs_mkdir(int dir, const char *name, bool *created)
{
	struct stat sb;

	*created = false;
	if (!mkdirat(dir, name, 0700)) {
		*created = true;
		return 0;
	}
	if (errno != EEXIST)
		return -errno;
	if (fstatat(dir, name, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return S_ISDIR(sb.st_mode) ? 0 : -ENOTDIR;
}

int cp_fs_set(int fd, uint32_t mode, const struct cp_times *times)
{
	struct timespec ts[2];

	if (fchmod(fd, mode) < 0)
		return -errno;
	if (!times)
		return 0;
	ts[0] = cp_fs_ts(times->atime_ns);
	ts[1] = cp_fs_ts(times->mtime_ns);
	return futimens(fd, ts) < 0 ? -errno : 0;
}

/*
 * Writes ".<name>.vmbusify-XXXXXX" into out (256 bytes), the name cut to
 * fit NAME_MAX, with a random suffix.
 */
static void cp_fs_tmp_name(const char *name, char out[256])
{
	static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	uint8_t rnd[6];
	char sfx[7];

	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
		uint64_t t = (uint64_t)cp_fs_now_ns() ^ ((uint64_t)getpid() << 20);

		for (size_t i = 0; i < sizeof(rnd); i++)
			rnd[i] = (uint8_t)(t >> (8 * i));
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		sfx[i] = abc[rnd[i] % (sizeof(abc) - 1)];
	sfx[6] = '\0';
	snprintf(out, 256, ".%.200s.vmbusify-%s", name, sfx);
}

int cp_fs_symlink(int dir, const char *name, const char *target, const struct cp_times *times)
{
	struct timespec ts[2];
	char tmp[256];
	int ret = -EEXIST;

	for (int i = 0; i < CP_TMP_TRIES && ret == -EEXIST; i++) {
		cp_fs_tmp_name(name, tmp);
		ret = symlinkat(target, dir, tmp) < 0 ? -errno : 0;
	}
	if (ret)
		return ret;
	if (times) {
		ts[0] = cp_fs_ts(times->atime_ns);
		ts[1] = cp_fs_ts(times->mtime_ns);
		utimensat(dir, tmp, ts, AT_SYMLINK_NOFOLLOW); /* best effort, as cp -p */
	}
	if (renameat(dir, tmp, dir, name) < 0) {
		ret = -errno;
		unlinkat(dir, tmp, 0);
	}
	return ret;
}

/* Creates a named temporary file beside name; the fallback where O_TMPFILE is missing. */
static int cp_fs_tmp_named(int dir, const char *name, struct cp_tmp *t)
{
	for (int i = 0; i < CP_TMP_TRIES; i++) {
		cp_fs_tmp_name(name, t->name);
		t->fd = openat(dir, t->name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			       0600);
		if (t->fd >= 0) {
			t->named = true;
			return 0;
		}
		if (errno != EEXIST)
			return -errno;
	}
	return -EEXIST;
}

int cp_fs_tmp_open(int dir, const char *name, struct cp_tmp *t)
{
	memset(t, 0, sizeof(*t));
	t->fd = openat(dir, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
	if (t->fd >= 0)
		return 0;
	/* Kernels and file systems without O_TMPFILE answer one of these. */
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL && errno != ENOENT)
		return -errno;
	return cp_fs_tmp_named(dir, name, t);
}

/* Gives the unnamed file t the name dst under dir; -EEXIST when dst is taken. */
static int cp_fs_tmp_link(int dir, const char *dst, const struct cp_tmp *t)
{
	char proc[64];

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", t->fd);
	if (!linkat(AT_FDCWD, proc, dir, dst, AT_SYMLINK_FOLLOW))
		return 0;
	if (errno != ENOENT)
		return -errno;
	/* No /proc: AT_EMPTY_PATH, which needs CAP_DAC_READ_SEARCH on older kernels. */
	return linkat(t->fd, "", dir, dst, AT_EMPTY_PATH) < 0 ? -errno : 0;
}

/* Links an unnamed file under a temporary name, then renames it over name. */
static int cp_fs_tmp_replace(int dir, const char *name, struct cp_tmp *t)
{
	int ret = -EEXIST;

	for (int i = 0; i < CP_TMP_TRIES && ret == -EEXIST; i++) {
		cp_fs_tmp_name(name, t->name);
		ret = cp_fs_tmp_link(dir, t->name, t);
	}
	if (ret)
		return ret;
	if (renameat(dir, t->name, dir, name) < 0) {
		ret = -errno;
		unlinkat(dir, t->name, 0);
	}
	return ret;
}

int cp_fs_tmp_commit(int dir, const char *name, struct cp_tmp *t)
{
	int ret;

	if (t->named) {
		ret = renameat(dir, t->name, dir, name) < 0 ? -errno : 0;
		if (ret)
			unlinkat(dir, t->name, 0);
	} else {
		/* A new name is linked at once; an existing one is replaced atomically. */
		ret = cp_fs_tmp_link(dir, name, t);
		if (ret == -EEXIST)
			ret = cp_fs_tmp_replace(dir, name, t);
	}
	close(t->fd);
	t->fd = -1;
	return ret;
}

void cp_fs_tmp_discard(int dir, struct cp_tmp *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	if (t->named)
		unlinkat(dir, t->name, 0);
	t->named = false;
}
