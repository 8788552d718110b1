/* Child processes on Linux: fork and exec with pipes or a pty, exit watch through a pidfd. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include "core/log.h"
#include "platform/proc.h"
#include "platform/sys.h"
#include "core/why.h"

/*
 * Theory of operation
 *
 * The agent is multi-threaded, so between fork() and exec the child may call
 * only async-signal-safe functions: no malloc, no NSS, no stdio. proc_spawn()
 * therefore prepares everything in the parent first, in a struct proc_plan:
 * the passwd entry and group list of the target user, the environment, the
 * child's stdio (pipes, a pty, or /dev/null) and an error pipe. Every
 * descriptor is opened close-on-exec, so that a spawn on another loop thread
 * never inherits one.
 *
 * The parent blocks every signal around fork(), so that none of its handlers
 * runs in the child. The child then makes only system calls:
 *
 *   reset signal dispositions, unblock all → setsid → (pty: TIOCSCTTY)
 *   → dup2 stdio → mark all else close-on-exec → setgroups, setgid, setuid
 *   → chdir → execve along PATH
 *
 * A step that fails writes a struct proc_report {step, errno} to the error
 * pipe and _exits. The parent reads that pipe to its end: end-of-file alone
 * means execve succeeded (it closed the child's end), a report means a step
 * failed, so the parent reaps the child and returns -errno with a reason
 * named after the step. A spawn thus fails synchronously, never as an exit
 * status 127, and when it succeeds the child has already called setsid(), so
 * proc_signal() can name its process group at once.
 *
 * Right after fork() the parent opens a pidfd on the child. It cannot name
 * another process: the child stays our zombie until we reap it. proc_watch()
 * polls the pidfd (readable once the child exited) and proc_reap() collects
 * the status with waitid(P_PIDFD). Kernels without pidfds fall back to a
 * polling timer and waitid(P_PID).
 *
 * A detached spawn forks twice: the intermediate child forks the real one,
 * reports its pid as a PROC_STEP_PID record and exits; the parent reaps the
 * intermediate, so the detached process belongs to init (or the nearest
 * subreaper) and never lingers as our zombie.
 */

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1u << 2)
#endif
#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO('T', 0x41)
#endif

/* How often proc_watch() looks again without a pidfd. */
#define PROC_POLL_NS (50 * 1000000ull)

static const char proc_default_path[] =
    "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/* The step of the child that failed, as carried on the error pipe. */
enum proc_step {
	PROC_STEP_NONE = 0,
	PROC_STEP_PID,	  /* not a failure: the detached grandchild's pid */
	PROC_STEP_FORK,	  /* the intermediate's fork of a detached child */
	PROC_STEP_SETSID, /* setsid */
	PROC_STEP_TTY,	  /* TIOCSCTTY */
	PROC_STEP_STDIO,  /* dup2 onto 0, 1, 2 */
	PROC_STEP_USER,	  /* setgroups, setgid or setuid */
	PROC_STEP_CHDIR,
	PROC_STEP_EXEC,
};

/* One record on the error pipe; smaller than PIPE_BUF, so written and read whole. */
struct proc_report {
	int step; /* enum proc_step */
	int val;  /* a positive errno, or the pid for PROC_STEP_PID */
};

/* What the child needs, prepared by the parent before fork(). */
struct proc_plan {
	const struct proc_spec *spec;
	/* identity */
	struct passwd pw;
	char *pwbuf;
	bool have_pw;	  /* pw holds the target (or our own) user */
	bool switch_user; /* change uid, gid and groups in the child */
	gid_t *groups;
	int ngroups;
	/* exec */
	char **envp;
	int nenv;
	const char *path;    /* PATH's value, inside envp */
	const char **shargv; /* "sh", the file, argv[1..]: for a script without #! */
	/* the child's descriptors, all close-on-exec; ctty is also stdio[*] */
	int stdio[3];
	int ctty;
	int errw;
	/* the parent's descriptors */
	int errr;
	int in, out, err;
	pid_t parent; /* the agent, whose death kills the child */
};

/*
 * Formatting the reason
 */

/* The text of a positive errno, in buf (thread-safe). */
static const char *proc_strerror(int err, char *buf, size_t len)
{
	return strerror_r(err, buf, len);
}

/* Explains the child's failure report rep in why. */
static void proc_why_report(const struct proc_plan *pl, const struct proc_report *rep, char *why,
			    size_t whylen)
{
	const char *prog = pl->spec->argv[0];
	char eb[128];
	const char *es = proc_strerror(rep->val, eb, sizeof(eb));

	switch (rep->step) {
	case PROC_STEP_EXEC:
		if (rep->val == ENOENT && !strchr(prog, '/'))
			why_set(why, whylen, 0, "%s: command not found", prog);
		else
			why_set(why, whylen, 0, "%s: %s", prog, es);
		break;
	case PROC_STEP_CHDIR:
		why_set(why, whylen, 0, "cannot cd to %s: %s", pl->spec->cwd ? pl->spec->cwd : "/",
			es);
		break;
	case PROC_STEP_USER:
		why_set(why, whylen, 0, "cannot switch to user %s: %s", pl->spec->user, es);
		break;
	case PROC_STEP_TTY:
		why_set(why, whylen, 0, "cannot set the controlling terminal: %s", es);
		break;
	case PROC_STEP_STDIO:
		why_set(why, whylen, 0, "cannot set up stdin, stdout and stderr: %s", es);
		break;
	case PROC_STEP_SETSID:
		why_set(why, whylen, 0, "setsid: %s", es);
		break;
	default:
		why_set(why, whylen, 0, "fork: %s", es);
		break;
	}
}

/*
 * The child (async-signal-safe calls only)
 */

/* Reports a failed step to the parent and exits; never returns. */
static _Noreturn void proc_child_fail(const struct proc_plan *pl, enum proc_step step, int err)
{
	struct proc_report rep = {.step = step, .val = err};
	ssize_t n;

	do
		n = write(pl->errw, &rep, sizeof(rep));
	while (n < 0 && errno == EINTR);
	_exit(127);
}

/* Gives every signal its default action and unblocks them all (we inherited the agent's). */
static void proc_child_signals(void)
{
	struct sigaction dfl;
	sigset_t none;

	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &dfl, NULL); /* EINVAL for KILL, STOP and libc's own: fine */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* Makes the planned descriptors 0, 1 and 2 (and the pty the controlling terminal). */
static void proc_child_stdio(const struct proc_plan *pl)
{
	if (pl->ctty >= 0 && ioctl(pl->ctty, TIOCSCTTY, 0) < 0)
		proc_child_fail(pl, PROC_STEP_TTY, errno);
	/* proc_fd_high() put the sources above 2, so no dup2 overwrites another's source. */
	for (int i = 0; i < 3; i++)
		if (dup2(pl->stdio[i], i) < 0)
			proc_child_fail(pl, PROC_STEP_STDIO, errno);
	/* Whatever someone opened without O_CLOEXEC stays with us (fails before Linux 5.11). */
	syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
}

/* Becomes the planned user: groups first, then gid, then uid (which drops the right to). */
static void proc_child_user(const struct proc_plan *pl)
{
	if (!pl->switch_user)
		return;
	if (setgroups((size_t)pl->ngroups, pl->groups) < 0 || setgid(pl->pw.pw_gid) < 0 ||
	    setuid(pl->pw.pw_uid) < 0)
		proc_child_fail(pl, PROC_STEP_USER, errno);
}

/*
 * A child the agent owns dies with the agent (SIGKILL on the parent's death),
 * so that a killed agent leaves nothing running that nobody owns. Set after
 * the user switch, which would clear it; a parent already gone means exit.
 */
static void proc_child_orphan_guard(const struct proc_plan *pl)
{
	if (pl->spec->detach)
		return;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != pl->parent)
		_exit(127);
}

/* Enters spec->cwd (failure is fatal), else the home directory, else "/". */
static void proc_child_chdir(const struct proc_plan *pl)
{
	if (pl->spec->cwd) {
		if (chdir(pl->spec->cwd) < 0)
			proc_child_fail(pl, PROC_STEP_CHDIR, errno);
		return;
	}
	if (pl->have_pw && pl->pw.pw_dir && chdir(pl->pw.pw_dir) == 0)
		return;
	if (chdir("/") < 0)
		proc_child_fail(pl, PROC_STEP_CHDIR, errno);
}

/* execve(file), and like execvp, a file without #! through /bin/sh. Returns with errno set. */
static void proc_child_execve(struct proc_plan *pl, const char *file)
{
	execve(file, (char *const *)pl->spec->argv, pl->envp);
	if (errno != ENOEXEC)
		return;
	pl->shargv[1] = file;
	execve("/bin/sh", (char *const *)pl->shargv, pl->envp);
	errno = ENOEXEC;
}

/* Tries name in each directory of PATH, as execvp does; returns the errno to report. */
static int proc_child_search(struct proc_plan *pl, const char *name)
{
	size_t nlen = strlen(name), dlen;
	const char *dir, *end;
	char file[PATH_MAX];
	bool eacces = false;

	for (dir = pl->path;; dir = end + 1) {
		end = strchrnul(dir, ':');
		dlen = (size_t)(end - dir);
		if (dlen + nlen + 2 <= sizeof(file)) {
			/* An empty entry is the current directory. */
			memcpy(file, dlen ? dir : ".", dlen ? dlen : 1);
			dlen = dlen ? dlen : 1;
			file[dlen] = '/';
			memcpy(file + dlen + 1, name, nlen + 1);
			proc_child_execve(pl, file);
			if (errno == EACCES)
				eacces = true;
			else if (errno != ENOENT && errno != ENOTDIR && errno != ESTALE &&
				 errno != ELOOP && errno != ENAMETOOLONG && errno != ENODEV &&
				 errno != ETIMEDOUT)
				return errno;
		}
		if (!*end)
			return eacces ? EACCES : ENOENT;
	}
}

/* Runs argv[0], looked up in the new environment's PATH unless it has a '/'; never returns. */
static _Noreturn void proc_child_exec(struct proc_plan *pl)
{
	const char *name = pl->spec->argv[0];
	int err;

	if (strchr(name, '/')) {
		proc_child_execve(pl, name);
		err = errno;
	} else {
		err = proc_child_search(pl, name);
	}
	proc_child_fail(pl, PROC_STEP_EXEC, err);
}

/* The child after fork(): see the theory of operation. Never returns. */
static _Noreturn void proc_child(struct proc_plan *pl)
{
	proc_child_signals();
	sys_restore_nofile();
	if (setsid() < 0)
		proc_child_fail(pl, PROC_STEP_SETSID, errno);
	proc_child_stdio(pl);
	proc_child_user(pl);
	proc_child_orphan_guard(pl);
	proc_child_chdir(pl);
	proc_child_exec(pl);
}

/* A detached spawn's intermediate: forks the real child, reports its pid, exits. */
static _Noreturn void proc_child_detach(struct proc_plan *pl)
{
	struct proc_report rep = {.step = PROC_STEP_PID};
	pid_t pid = fork();
	ssize_t n;

	if (pid == 0)
		proc_child(pl);
	if (pid < 0)
		proc_child_fail(pl, PROC_STEP_FORK, errno);
	rep.val = pid;
	do
		n = write(pl->errw, &rep, sizeof(rep));
	while (n < 0 && errno == EINTR);
	_exit(0);
}

/*
 * The plan (parent side, before fork)
 */

/* Closes *fd if open and marks it closed. */
static void proc_fd_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Adds O_NONBLOCK to fd's file status flags; returns 0 or a negative errno. */
static int proc_fd_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/*
 * Moves a child-side descriptor above 2 (in case the agent runs with 0, 1 or
 * 2 closed), so that the child's dup2 onto 0..2 never clobbers a source.
 * Takes ownership of fd; returns the descriptor to use, or a negative errno.
 */
static int proc_fd_high(int fd)
{
	int nfd;

	if (fd < 0 || fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (nfd < 0)
		nfd = -errno;
	close(fd);
	return nfd;
}

/*
 * Opens a pty pair sized rows x cols: master non-blocking, both close-on-exec
 * from the start (openpty() sets neither, which would let a concurrent spawn
 * keep our slave open). Returns 0 or a negative errno.
 */
static int proc_pty_open(int *master, int *slave, uint16_t rows, uint16_t cols)
{
	struct winsize ws = {.ws_row = rows, .ws_col = cols};
	char name[64];
	int m, s, ret, unlock = 0;

	m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (m < 0)
		return -errno;
	if (ioctl(m, TIOCSPTLCK, &unlock) < 0 || ioctl(m, TIOCSWINSZ, &ws) < 0)
		goto fail;
	s = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (s < 0 && (errno == EINVAL || errno == ENOTTY)) { /* before Linux 4.13 */
		if (ptsname_r(m, name, sizeof(name)))
			goto fail;
		s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	}
	if (s < 0)
		goto fail;
	*master = m;
	*slave = s;
	return 0;
fail:
	ret = -errno;
	close(m);
	return ret;
}

/* A close-on-exec pipe whose parent end (p[pe]) is non-blocking; returns 0 or a negative errno. */
static int proc_pipe(int p[2], int pe)
{
	int ret;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	ret = proc_fd_nonblock(p[pe]);
	if (ret < 0) {
		proc_fd_close(&p[0]);
		proc_fd_close(&p[1]);
	}
	return ret;
}

/* The child's stdio with a pty; returns 0 or a negative errno. */
static int proc_plan_pty(struct proc_plan *pl)
{
	const struct proc_spec *spec = pl->spec;
	int m = -1, s = -1, ret;

	ret = proc_pty_open(&m, &s, spec->rows, spec->cols);
	if (ret < 0)
		return ret;
	s = proc_fd_high(s);
	if (s < 0) {
		close(m);
		return s;
	}
	/* As sshd does: the user owns its terminal, so that it may open /dev/tty. */
	if (pl->switch_user && (fchown(s, pl->pw.pw_uid, (gid_t)-1) < 0 || fchmod(s, 0620) < 0))
		vb_warn("cannot give the pty to user %s: errno %d", spec->user, errno);
	pl->in = pl->out = m;
	pl->ctty = pl->stdio[0] = pl->stdio[1] = pl->stdio[2] = s;
	return 0;
}

/* /dev/null for all of the child's stdio (detach) or stdin only; returns 0 or a negative errno. */
static int proc_plan_null(struct proc_plan *pl, int n)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	fd = fd < 0 ? -errno : proc_fd_high(fd);
	if (fd < 0)
		return fd;
	for (int i = 0; i < n; i++)
		pl->stdio[i] = fd;
	return 0;
}

/* One pipe for the child's descriptor i (0: stdin, else an output) into *parent. */
static int proc_plan_pipe(struct proc_plan *pl, int i, int *parent)
{
	int p[2], pe = i == 0 ? 1 : 0, ret;

	ret = proc_pipe(p, pe);
	if (ret < 0)
		return ret;
	*parent = p[pe];
	pl->stdio[i] = proc_fd_high(p[1 - pe]);
	return pl->stdio[i] < 0 ? pl->stdio[i] : 0;
}

/*
 * Prepares the child's stdio and the parent's ends in pl. Returns 0 or a
 * negative errno, with why set; what was opened is closed by proc_plan_free().
 */
static int proc_plan_stdio(struct proc_plan *pl, char *why, size_t whylen)
{
	const struct proc_spec *spec = pl->spec;
	char eb[128];
	int ret;

	if (spec->detach)
		ret = proc_plan_null(pl, 3);
	else if (spec->tty)
		ret = proc_plan_pty(pl);
	else
		ret = spec->stdin_null ? proc_plan_null(pl, 1) : proc_plan_pipe(pl, 0, &pl->in);
	if (!ret && !spec->detach && !spec->tty)
		ret = proc_plan_pipe(pl, 1, &pl->out);
	if (!ret && !spec->detach && !spec->tty)
		ret = proc_plan_pipe(pl, 2, &pl->err);
	if (ret < 0)
		why_set(why, whylen, 0, "cannot set up stdin, stdout and stderr: %s",
			proc_strerror(-ret, eb, sizeof(eb)));
	return ret;
}

/* Fills pl->pw for user (NULL: our own uid); returns 0, -ENOENT (no entry) or a negative errno. */
static int proc_plan_getpw(struct proc_plan *pl, const char *user)
{
	struct passwd *res = NULL;
	size_t len = 1024;
	char *buf;
	int ret;

	for (;;) {
		buf = realloc(pl->pwbuf, len);
		if (!buf)
			return -ENOMEM;
		pl->pwbuf = buf;
		if (user)
			ret = getpwnam_r(user, &pl->pw, buf, len, &res);
		else
			ret = getpwuid_r(geteuid(), &pl->pw, buf, len, &res);
		if (ret != ERANGE || len >= (1u << 20))
			break;
		len *= 2;
	}
	if (res)
		return 0;
	/* Not found comes back as 0 or, from some NSS modules, as one of these. */
	if (!ret || ret == ENOENT || ret == ESRCH || ret == EBADF || ret == EPERM)
		return -ENOENT;
	return -ret;
}

/* The supplementary groups of pl->pw, for setgroups() in the child; returns 0 or -ENOMEM. */
static int proc_plan_groups(struct proc_plan *pl)
{
	int n = 16;
	gid_t *g;

	for (int tries = 0; tries < 8; tries++) {
		g = realloc(pl->groups, (size_t)n * sizeof(*g));
		if (!g)
			return -ENOMEM;
		pl->groups = g;
		/* Too small: returns -1 and sets n to the count needed. */
		if (getgrouplist(pl->pw.pw_name, pl->pw.pw_gid, g, &n) >= 0) {
			pl->ngroups = n;
			return 0;
		}
	}
	return -ENOMEM;
}

/*
 * Looks up spec->user (or, for HOME and friends, our own user) with the
 * reentrant NSS calls that the child may not make. Returns 0 or a negative
 * errno with why set. Our own uid without a passwd entry is not an error.
 */
static int proc_plan_user(struct proc_plan *pl, char *why, size_t whylen)
{
	const char *user = pl->spec->user;
	char eb[128];
	int ret;

	ret = proc_plan_getpw(pl, user);
	if (ret == -ENOENT && !user)
		return 0;
	if (ret == -ENOENT) {
		why_set(why, whylen, 0, "no such user: %s", user);
		return ret;
	}
	if (ret < 0) {
		why_set(why, whylen, 0, "cannot look up user %s: %s", user ? user : "(self)",
			proc_strerror(-ret, eb, sizeof(eb)));
		return ret;
	}
	pl->have_pw = true;
	if (!user || (pl->pw.pw_uid == geteuid() && pl->pw.pw_gid == getegid()))
		return 0;
	pl->switch_user = true;
	ret = proc_plan_groups(pl);
	if (ret < 0)
		why_set(why, whylen, 0, "cannot list the groups of %s: out of memory", user);
	return ret;
}

/* Sets entry ("KEY=VALUE", taken over) in pl->envp, replacing the same key; 0 or -ENOMEM. */
static int proc_env_put(struct proc_plan *pl, char *entry)
{
	size_t klen;

	if (!entry)
		return -ENOMEM;
	klen = (size_t)(strchr(entry, '=') - entry) + 1;
	for (int i = 0; i < pl->nenv; i++) {
		if (!strncmp(pl->envp[i], entry, klen)) {
			free(pl->envp[i]);
			pl->envp[i] = entry;
			return 0;
		}
	}
	pl->envp[pl->nenv++] = entry; /* proc_plan_env() sized envp for every entry */
	return 0;
}

/* Sets key=val in pl->envp; returns 0 or -ENOMEM. */
static int proc_env_set(struct proc_plan *pl, const char *key, const char *val)
{
	char *entry;

	if (asprintf(&entry, "%s=%s", key, val) < 0)
		return -ENOMEM;
	return proc_env_put(pl, entry);
}

/* The login-like base: PATH, HOME, USER, LOGNAME, SHELL, and TERM with a pty. */
static int proc_env_base(struct proc_plan *pl)
{
	const struct passwd *pw = pl->have_pw ? &pl->pw : NULL;
	const char *shell = pw && pw->pw_shell && *pw->pw_shell ? pw->pw_shell : "/bin/sh";
	const char *term = pl->spec->term && *pl->spec->term ? pl->spec->term : "xterm-256color";
	int ret;

	ret = proc_env_set(pl, "PATH", proc_default_path);
	if (!ret)
		ret = proc_env_set(pl, "HOME", pw && pw->pw_dir && *pw->pw_dir ? pw->pw_dir : "/");
	if (!ret && pw)
		ret = proc_env_set(pl, "USER", pw->pw_name);
	if (!ret && pw)
		ret = proc_env_set(pl, "LOGNAME", pw->pw_name);
	if (!ret)
		ret = proc_env_set(pl, "SHELL", shell);
	if (!ret && pl->spec->tty)
		ret = proc_env_set(pl, "TERM", term);
	return ret;
}

/* "KEY=VALUE" that every child not detached carries (proc_set_owner_mark), or NULL. */
static char *proc_owner_mark;

int proc_set_owner_mark(const char *mark)
{
	char *copy;

	if (!strchr(mark, '=') || *mark == '=')
		return -EINVAL;
	copy = strdup(mark);
	if (!copy)
		return -ENOMEM;
	free(proc_owner_mark);
	proc_owner_mark = copy;
	return 0;
}

/*
 * Builds the child's environment: the base, then spec->env on top. Returns 0,
 * -EINVAL (an entry without '=' or with an empty name) or -ENOMEM, with why set.
 */
static int proc_plan_env(struct proc_plan *pl, char *why, size_t whylen)
{
	const char *const *env = pl->spec->env;
	const char *const *e;
	size_t n = 8;
	int ret;

	for (e = env; e && *e; e++)
		n++;
	pl->envp = calloc(n, sizeof(*pl->envp));
	if (!pl->envp)
		goto nomem;
	if (proc_env_base(pl) < 0)
		goto nomem;
	for (e = env; e && *e; e++) {
		if (!strchr(*e, '=') || **e == '=') {
			why_set(why, whylen, 0, "bad environment entry (want NAME=VALUE): %s", *e);
			return -EINVAL;
		}
		ret = proc_env_put(pl, strdup(*e));
		if (ret < 0)
			goto nomem;
	}
	/* Last, so that no request can take the mark off. */
	if (proc_owner_mark && !pl->spec->detach && proc_env_put(pl, strdup(proc_owner_mark)) < 0)
		goto nomem;
	for (int i = 0; i < pl->nenv; i++)
		if (!strncmp(pl->envp[i], "PATH=", 5))
			pl->path = pl->envp[i] + 5;
	return 0;
nomem:
	why_set(why, whylen, 0, "out of memory");
	return -ENOMEM;
}

/* The argument vector for a script without #!: "/bin/sh", the file (set later), argv[1..]. */
static int proc_plan_shargv(struct proc_plan *pl, char *why, size_t whylen)
{
	const char *const *argv = pl->spec->argv;
	size_t n = 0;

	while (argv[n])
		n++;
	pl->shargv = calloc(n + 2, sizeof(*pl->shargv));
	if (!pl->shargv) {
		why_set(why, whylen, 0, "out of memory");
		return -ENOMEM;
	}
	pl->shargv[0] = "/bin/sh";
	for (size_t i = 1; i < n; i++)
		pl->shargv[i + 1] = argv[i];
	return 0;
}

/* Closes the child's descriptors (each once: stdio[*] may repeat /dev/null or the pty slave). */
static void proc_plan_close_child(struct proc_plan *pl)
{
	for (int i = 0; i < 3; i++) {
		for (int j = i + 1; j < 3; j++)
			if (pl->stdio[j] == pl->stdio[i])
				pl->stdio[j] = -1;
		proc_fd_close(&pl->stdio[i]);
	}
	pl->ctty = -1;
}

/* Releases everything pl holds; the parent's ends only if still there (not handed over). */
static void proc_plan_free(struct proc_plan *pl)
{
	proc_fd_close(&pl->errw);
	proc_fd_close(&pl->errr);
	proc_plan_close_child(pl);
	if (pl->out == pl->in)
		pl->out = -1;
	proc_fd_close(&pl->in);
	proc_fd_close(&pl->out);
	proc_fd_close(&pl->err);
	for (int i = 0; i < pl->nenv; i++)
		free(pl->envp[i]);
	free(pl->envp);
	free(pl->shargv);
	free(pl->groups);
	free(pl->pwbuf);
}

/* Checks spec and prepares everything for fork(); returns 0 or a negative errno with why set. */
static int proc_plan_init(struct proc_plan *pl, const struct proc_spec *spec, char *why,
			  size_t whylen)
{
	char eb[128];
	int p[2], ret;

	memset(pl, 0, sizeof(*pl));
	pl->spec = spec;
	pl->parent = getpid();
	pl->stdio[0] = pl->stdio[1] = pl->stdio[2] = -1;
	pl->ctty = pl->errw = pl->errr = pl->in = pl->out = pl->err = -1;
	if (!spec->argv || !spec->argv[0] || !*spec->argv[0]) {
		why_set(why, whylen, 0, "no program to run");
		return -EINVAL;
	}
	ret = proc_plan_user(pl, why, whylen);
	if (!ret)
		ret = proc_plan_env(pl, why, whylen);
	if (!ret)
		ret = proc_plan_shargv(pl, why, whylen);
	if (!ret)
		ret = proc_plan_stdio(pl, why, whylen);
	if (ret)
		return ret;
	/* Blocking: the parent waits on it for the verdict. */
	if (pipe2(p, O_CLOEXEC) < 0) {
		ret = -errno;
		why_set(why, whylen, 0, "cannot open a pipe: %s",
			proc_strerror(-ret, eb, sizeof(eb)));
		return ret;
	}
	pl->errr = p[0];
	pl->errw = p[1];
	return 0;
}

/*
 * Spawning
 */

/* Forks with all signals blocked; the child runs pl and never returns. Returns pid or -errno. */
static pid_t proc_fork(struct proc_plan *pl)
{
	sigset_t all, old;
	pid_t pid;
	int err;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pid = fork();
	if (pid == 0) {
		if (pl->spec->detach)
			proc_child_detach(pl);
		proc_child(pl);
	}
	err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return pid < 0 ? -err : pid;
}

/* A pidfd for child pid, or -1 when the kernel has none (before 5.3). */
static int proc_pidfd_open(pid_t pid)
{
	long fd = syscall(SYS_pidfd_open, pid, 0);

	return fd < 0 ? -1 : (int)fd;
}

/*
 * Reads the error pipe to its end (every copy of its write end is closed).
 * Fills *fail with the failure reported, if any, and *detached with a
 * detached grandchild's pid. Returns 0 or a negative errno of the read.
 */
static int proc_read_reports(int fd, struct proc_report *fail, pid_t *detached)
{
	struct proc_report rep;
	ssize_t n;

	for (;;) {
		n = read(fd, &rep, sizeof(rep));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		if (n != sizeof(rep))
			return -EIO;
		if (rep.step == PROC_STEP_PID)
			*detached = rep.val;
		else
			*fail = rep;
	}
}

/* Waits for child pid to end, for a child that failed or the detach intermediate. */
static void proc_wait_child(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

/*
 * After fork(): waits for the child's verdict on the error pipe. Returns 0
 * with p's pid and pidfd set, or a negative errno with why set (the child is
 * then reaped).
 */
static int proc_spawn_verdict(struct proc_plan *pl, pid_t pid, struct proc *p, char *why,
			      size_t whylen)
{
	struct proc_report fail = {0};
	pid_t detached = -1;
	char eb[128];
	int ret;

	if (!pl->spec->detach)
		p->pidfd = proc_pidfd_open(pid);
	proc_fd_close(&pl->errw); /* or the read below never sees end-of-file */
	ret = proc_read_reports(pl->errr, &fail, &detached);
	if (!ret && fail.step)
		ret = -fail.val;
	if (!ret && pl->spec->detach && detached <= 0)
		ret = -ECHILD;
	if (ret < 0 && !fail.step)
		kill(pid, SIGKILL); /* no verdict: it may be running */
	if (ret < 0 || pl->spec->detach)
		proc_wait_child(pid);
	if (ret < 0) {
		if (p->pidfd >= 0)
			close((int)p->pidfd);
		p->pidfd = -1;
		p->exec_failed = fail.step == PROC_STEP_EXEC;
		if (fail.step)
			proc_why_report(pl, &fail, why, whylen);
		else
			why_set(why, whylen, 0, "cannot start %s: %s", pl->spec->argv[0],
				proc_strerror(-ret, eb, sizeof(eb)));
		return ret;
	}
	p->pid = pl->spec->detach ? detached : pid;
	p->unowned = pl->spec->detach; /* init reaps it; its pid may be reused any time */
	return 0;
}

/* Hands the parent's ends over to p (pl no longer closes them). */
static void proc_take_fds(struct proc_plan *pl, struct proc *p)
{
	p->in = pl->in;
	p->out = pl->out;
	p->err = pl->err;
	pl->in = pl->out = pl->err = -1;
}

/*
 * proc_spawn() - starts spec; see proc.h and the theory of operation above.
 * @why: receives a one-line reason on failure (may be NULL).
 * Return: 0 with *p filled (its descriptors owned by the caller, proc_close()),
 * or a negative errno with every descriptor of *p -1.
 */
int proc_spawn(const struct proc_spec *spec, struct proc *p, char *why, size_t whylen)
{
	struct proc_plan pl;
	pid_t pid;
	char eb[128];
	int ret;

	memset(p, 0, sizeof(*p));
	p->pid = -1;
	p->in = p->out = p->err = p->pidfd = -1;
	p->tty = spec->tty && !spec->detach;
	why_set(why, whylen, 0, "%s", "");
	ret = proc_plan_init(&pl, spec, why, whylen);
	if (ret < 0)
		goto out;
	pid = proc_fork(&pl);
	if (pid < 0) {
		ret = pid;
		why_set(why, whylen, 0, "fork: %s", proc_strerror(-ret, eb, sizeof(eb)));
		goto out;
	}
	/* The child has its copies; the parent's go now (the pty's EOF depends on it). */
	proc_plan_close_child(&pl);
	ret = proc_spawn_verdict(&pl, pid, p, why, whylen);
	if (!ret)
		proc_take_fds(&pl, p);
out:
	proc_plan_free(&pl);
	return ret;
}

/*
 * Exit, signals, size
 */

/* Polls p's pidfd (or, without one, a timer); see proc.h. Returns 0 or a negative errno. */
int proc_watch(struct loop *l, struct loop_req *r, struct proc *p, loop_cb cb)
{
	if (p->pidfd >= 0)
		return loop_poll(l, r, p->pidfd, LOOP_POLL_IN, cb);
	if (p->pid <= 0 || p->unowned)
		return -ECHILD;
	return loop_timer(l, r, PROC_POLL_NS, cb);
}

/* waitid() without blocking on p: the pidfd when the kernel takes it, else the pid. */
static int proc_waitid(struct proc *p, siginfo_t *si)
{
	int ret;

	memset(si, 0, sizeof(*si));
	if (p->pidfd >= 0) {
		do
			ret = waitid(P_PIDFD, (id_t)p->pidfd, si, WEXITED | WNOHANG);
		while (ret < 0 && errno == EINTR);
		if (ret == 0 || errno != EINVAL) /* EINVAL: no P_PIDFD before Linux 5.4 */
			return ret < 0 ? -errno : 0;
	}
	do
		ret = waitid(P_PID, (id_t)p->pid, si, WEXITED | WNOHANG);
	while (ret < 0 && errno == EINTR);
	return ret < 0 ? -errno : 0;
}

/*
 * proc_reap() - collects p's exit status into *st without blocking.
 * Return: 0; -EAGAIN while p runs; -ECHILD once reaped or for a detached p.
 */
int proc_reap(struct proc *p, struct proc_status *st)
{
	siginfo_t si;
	int ret;

	if (p->unowned || p->pid <= 0)
		return -ECHILD;
	ret = proc_waitid(p, &si);
	if (ret < 0)
		return ret;
	if (si.si_pid == 0)
		return -EAGAIN;
	p->unowned = true;
	st->kind = si.si_code == CLD_EXITED ? PROC_EXITED : PROC_SIGNALED;
	st->code = si.si_status;
	st->core = si.si_code == CLD_DUMPED;
	return 0;
}

/* kill() for a process group; a group that is gone is not an error. */
static int proc_kill_group(pid_t pgid, int signo)
{
	if (kill(-pgid, signo) == 0 || errno == ESRCH)
		return 0;
	return -errno;
}

/* Signals p's group and, with a pty, its foreground group; see proc.h. */
int proc_signal(struct proc *p, int signo)
{
	pid_t fg;
	int ret;

	if (p->pid <= 0 || p->unowned)
		return 0;
	ret = proc_kill_group(p->pid, signo);
	/* The master reports the foreground group of the slave's session: always ours. */
	if (!ret && p->tty && p->in >= 0 && ioctl((int)p->in, TIOCGPGRP, &fg) == 0 && fg > 0 &&
	    fg != p->pid)
		ret = proc_kill_group(fg, signo);
	return ret;
}

/* Sets the pty's window size (the kernel sends SIGWINCH); returns 0, -ENOTTY or -errno. */
int proc_resize(struct proc *p, uint16_t rows, uint16_t cols)
{
	struct winsize ws = {.ws_row = rows, .ws_col = cols};

	if (!p->tty || p->in < 0)
		return -ENOTTY;
	if (ioctl((int)p->in, TIOCSWINSZ, &ws) < 0)
		return -errno;
	return 0;
}

/* Closes p's descriptors (the pty master once) and marks them -1; the process is left alone. */
void proc_close(struct proc *p)
{
	if (p->out >= 0 && p->out != p->in)
		close((int)p->out);
	if (p->in >= 0)
		close((int)p->in);
	if (p->err >= 0)
		close((int)p->err);
	if (p->pidfd >= 0)
		close((int)p->pidfd);
	p->in = p->out = p->err = p->pidfd = -1;
}

/* True when /proc/PID/environ holds the entry mark, exactly. */
static bool proc_environ_has(const char *pid, const char *mark)
{
	char path[64], buf[65536];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/environ", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0'; /* entries are NUL-separated: each p below is a C string */
	for (const char *p = buf; p < buf + n; p += strlen(p) + 1)
		if (!strcmp(p, mark))
			return true;
	return false;
}

int proc_sweep_marked(const char *mark)
{
	struct dirent *de;
	int count = 0;
	DIR *d;

	if (!strchr(mark, '='))
		return -EINVAL;
	d = opendir("/proc");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		pid_t pgid;

		if (*end || pid <= 1 || pid == getpid() || !proc_environ_has(de->d_name, mark))
			continue;
		/* Its whole process group (the exec's session, pipes and all), then itself. */
		pgid = getpgid((pid_t)pid);
		if (pgid > 1 && pgid != getpgrp())
			kill(-pgid, SIGKILL);
		kill((pid_t)pid, SIGKILL);
		count++;
	}
	closedir(d);
	return count;
}
