/* Small facts about a Linux system: CPUs, signals, control socket permissions, files. */
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>
#include "platform/sys.h"
#include "core/log.h"

int sys_ncpu(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);

	return n > 0 ? (int)n : 1;
}

void sys_ignore_sigpipe(void)
{
	signal(SIGPIPE, SIG_IGN);
}

/* The soft limit before sys_raise_nofile(), for the programs we start. */
static struct rlimit sys_nofile_orig;
static bool sys_nofile_raised;

long sys_raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	if (rl.rlim_cur < rl.rlim_max) {
		sys_nofile_orig = rl;
		sys_nofile_raised = true;
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl))
			return -errno;
	}
	return rl.rlim_cur == RLIM_INFINITY ? LONG_MAX : (long)rl.rlim_cur;
}

void sys_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

void sys_restore_nofile(void)
{
	if (sys_nofile_raised)
		setrlimit(RLIMIT_NOFILE, &sys_nofile_orig);
}

const char *sys_strerror(int neg_errno)
{
	return strerror(neg_errno < 0 ? -neg_errno : neg_errno);
}

static void sys_termination_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
}

void sys_block_termination(void)
{
	sigset_t set;

	sys_termination_set(&set);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int sys_wait_termination(void)
{
	sigset_t set;
	int sig = 0;

	sys_termination_set(&set);
	while (sigwait(&set, &sig))
		;
	return sig;
}

int sys_restrict_socket(const char *path)
{
	struct group *g = getgrnam("vmbusify");

	if (chmod(path, 0660))
		return -errno;
	if (g && chown(path, 0, g->gr_gid))
		return -errno;
	return 0;
}

int sys_mkdir_p(const char *path)
{
	char buf[4096];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

int sys_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	char tmp[4096];
	size_t off = 0;
	int fd, ret = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d", path, (int)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	while (off < len && !ret) {
		ssize_t n = write(fd, (const char *)data + off, len - off);

		if (n < 0 && errno != EINTR)
			ret = -errno;
		else if (n > 0)
			off += (size_t)n;
	}
	if (!ret && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path))
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

int sys_read_file(const char *path, size_t max, char **out, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char *buf = NULL;
	size_t have = 0;
	int ret = -errno;

	if (fd < 0)
		return ret;
	ret = -ENOMEM;
	buf = malloc(max + 1);
	if (!buf)
		goto out;
	for (;;) {
		ssize_t n = read(fd, buf + have, max - have);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			goto out;
		}
		if (!n)
			break;
		have += (size_t)n;
		if (have == max) {
			ret = -EFBIG;
			goto out;
		}
	}
	buf[have] = '\0';
	*out = buf;
	*len = have;
	buf = NULL;
	ret = 0;
out:
	free(buf);
	close(fd);
	return ret;
}

int sys_self_dir(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	char *slash;

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (slash)
		*slash = '\0';
	return 0;
}

int sys_exists(const char *path)
{
	struct stat st;

	return !stat(path, &st);
}

int sys_exec(const char *path, char *const argv[], const char *bin_dir)
{
	setenv("VB_BIN_DIR", bin_dir, 1);
	execv(path, argv);
	return -errno;
}

int sys_is_admin(void)
{
	return geteuid() == 0;
}

static void sys_syslog_sink(enum vb_log_level lvl, const char *line)
{
	static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

	syslog(prio[lvl], "%s", line);
}

void sys_log_to_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	log_set_sink(sys_syslog_sink);
}

int sys_isatty(int fd)
{
	return isatty(fd);
}

void sys_std_fds_open(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		/* open() returns the lowest free number: this fd. */
		if (open("/dev/null", fd ? O_WRONLY : O_RDONLY) < 0)
			_exit(255);
	}
}

const char *sys_control_place(int i)
{
	static const char *const places[] = {
	    "/run/vmbusify/control.sock",
	    "/run/vmbusify/lab/control.sock",
	};

	return i >= 0 && i < (int)(sizeof(places) / sizeof(places[0])) ? places[i] : NULL;
}

/* Linux paths have no form of their own beyond a '/' before the ':' (see cp_cli_split). */
int sys_path_is_local_form(const char *arg)
{
	return 0;
}

int sys_path_is_absolute(const char *path)
{
	return path[0] == '/';
}
