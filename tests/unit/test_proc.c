/* Child processes, ptys, the local terminal and signal watches, run once per loop backend. */
/* VB_TEST_BOTH_BACKENDS */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <setjmp.h>
#include <cmocka.h>
#include "platform/loop.h"
#include "platform/proc.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define MS		 1000000ull
#define TEST_DEADLINE_NS (10000 * MS)

/* The backend VMBUSIFY_BACKEND asked for (AUTO when unset). */
static enum loop_backend want_backend = LOOP_BACKEND_AUTO;
/* True when orphans of our children come back to us (PR_SET_CHILD_SUBREAPER). */
static bool subreaper;

/* Set around every submitting call: a callback that sees it ran inside one. */
static bool in_submit;

#define SUBMIT(call)                                                                               \
	({                                                                                         \
		int ret_;                                                                          \
		in_submit = true;                                                                  \
		ret_ = (call);                                                                     \
		in_submit = false;                                                                 \
		ret_;                                                                              \
	})

/* Runs l until cond holds, failing the test after TEST_DEADLINE_NS. */
#define RUN_UNTIL(l, cond)                                                                         \
	do {                                                                                       \
		uint64_t dl_ = clock_now_ns() + TEST_DEADLINE_NS;                                  \
		while (!(cond)) {                                                                  \
			assert_true(clock_now_ns() < dl_);                                         \
			assert_true(loop_run_once((l), 50 * MS) >= 0);                             \
		}                                                                                  \
	} while (0)

/* Everything a descriptor of the child said, read through the loop until end-of-file. */
struct sink {
	struct loop_req req;
	struct loop *l;
	char buf[8192];
	size_t len;
	bool eof;
	int err;
};

static void sink_cb(struct loop_req *r, int res)
{
	struct sink *s = container_of(r, struct sink, req);

	assert_false(in_submit);
	if (res > 0) {
		s->len += (size_t)res;
		s->buf[s->len] = '\0';
		if (s->len + 1 < sizeof(s->buf) &&
		    SUBMIT(loop_read(s->l, r, r->fd, s->buf + s->len, sizeof(s->buf) - 1 - s->len,
				     sink_cb)) == 0)
			return;
	}
	/* A pty master reads EIO once the last slave descriptor is closed: its end-of-file. */
	s->err = res == -EIO ? 0 : res;
	s->eof = true;
}

/* Starts reading fd into s; a descriptor of -1 is an end-of-file at once. */
static void sink_start(struct sink *s, struct loop *l, pl_fd fd)
{
	s->l = l;
	if (fd < 0) {
		s->eof = true;
		return;
	}
	assert_int_equal(SUBMIT(loop_read(l, &s->req, fd, s->buf, sizeof(s->buf) - 1, sink_cb)), 0);
}

/* One completion of any request. */
struct op {
	struct loop_req req;
	bool done;
	int res;
};

static void op_cb(struct loop_req *r, int res)
{
	struct op *o = container_of(r, struct op, req);

	assert_false(in_submit);
	o->done = true;
	o->res = res;
}

/* A spawned child with its outputs and exit watch. Zero it before use. */
struct run {
	struct proc p;
	struct sink out, err;
	struct op exit;
	struct proc_status st;
	char why[256];
};

/* Spawns spec into r; returns proc_spawn's result. */
static int run_spawn(struct run *r, const struct proc_spec *spec)
{
	return proc_spawn(spec, &r->p, r->why, sizeof(r->why));
}

/* Starts reading stdout and stderr and watching the exit of a spawned r. */
static void run_watch(struct loop *l, struct run *r)
{
	sink_start(&r->out, l, r->p.out);
	sink_start(&r->err, l, r->p.err);
	assert_int_equal(SUBMIT(proc_watch(l, &r->exit.req, &r->p, op_cb)), 0);
}

/* Runs until both outputs ended and the child exited, then reaps it and closes its descriptors. */
static void run_finish(struct loop *l, struct run *r)
{
	int ret;

	RUN_UNTIL(l, r->out.eof && r->err.eof && r->exit.done);
	assert_true(r->exit.res >= 0);
	assert_int_equal(r->out.err, 0);
	assert_int_equal(r->err.err, 0);
	while ((ret = proc_reap(&r->p, &r->st)) == -EAGAIN) {
		/* Only a kernel without pidfds wakes us before the exit. */
		assert_int_equal(r->p.pidfd, -1);
		r->exit.done = false;
		assert_int_equal(SUBMIT(proc_watch(l, &r->exit.req, &r->p, op_cb)), 0);
		RUN_UNTIL(l, r->exit.done);
	}
	assert_int_equal(ret, 0);
	proc_close(&r->p);
}

/* Spawns spec, collects everything and reaps it; the spawn must succeed. */
static void run_cmd(struct loop *l, struct run *r, const struct proc_spec *spec)
{
	int ret = run_spawn(r, spec);

	if (ret)
		fail_msg("proc_spawn: %d (%s)", ret, r->why);
	run_watch(l, r);
	run_finish(l, r);
}

/* Asserts that r exited normally with code. */
static void assert_exited(const struct run *r, int code)
{
	assert_int_equal(r->st.kind, PROC_EXITED);
	assert_int_equal(r->st.code, code);
}

/* Asserts that every descriptor of p is -1 (after a failed spawn, or detached). */
static void assert_no_fds(const struct proc *p)
{
	assert_int_equal(p->in, -1);
	assert_int_equal(p->out, -1);
	assert_int_equal(p->err, -1);
	assert_int_equal(p->pidfd, -1);
}

/*
 * Reaps the detached child of a failed spawn, which exits 127 after its
 * report and is orphaned to us, the subreaper (to init in the agent).
 */
static void reap_failed_detached_child(void)
{
	int st;

	if (!subreaper)
		return;
	assert_true(waitpid(-1, &st, 0) > 0);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 127);
}

#define ARGV(...) ((const char *const[]){__VA_ARGS__, NULL})

static int setup(void **state)
{
	struct loop *l;

	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	if (want_backend != LOOP_BACKEND_AUTO)
		assert_int_equal(loop_backend(l), want_backend);
	*state = l;
	return 0;
}

static int teardown(void **state)
{
	loop_free(*state);
	return 0;
}

/*
 * Exit status
 */

static void test_true_exits_zero(void **state)
{
	struct proc_spec spec = {.argv = ARGV("true")};
	struct run r = {0};

	run_cmd(*state, &r, &spec);
	assert_exited(&r, 0);
	assert_false(r.st.core);
}

static void test_exit_code_is_reported(void **state)
{
	struct proc_spec spec = {.argv = ARGV("sh", "-c", "exit 7")};
	struct run r = {0};

	run_cmd(*state, &r, &spec);
	assert_exited(&r, 7);
}

static void test_death_by_signal_is_reported(void **state)
{
	/* SIGTERM is blocked in this process (see main): the child must have it unblocked. */
	struct proc_spec spec = {.argv = ARGV("sh", "-c", "kill -TERM $$")};
	struct run r = {0};

	run_cmd(*state, &r, &spec);
	assert_int_equal(r.st.kind, PROC_SIGNALED);
	assert_int_equal(r.st.code, SIGTERM);
}

/* The hexadecimal mask after "name:\t" in /proc/<pid>/status text. */
static unsigned long long status_mask(const char *text, const char *name)
{
	const char *at = strstr(text, name);

	assert_non_null(at);
	return strtoull(at + strlen(name), NULL, 16);
}

static void test_child_has_no_blocked_or_ignored_signals(void **state)
{
	/* This process blocks INT, TERM, HUP and ignores PIPE, as the agent does. */
	struct proc_spec spec = {.argv = ARGV("cat", "/proc/self/status")};
	struct run r = {0};

	run_cmd(*state, &r, &spec);
	assert_exited(&r, 0);
	assert_int_equal(status_mask(r.out.buf, "\nSigBlk:"), 0);
	assert_int_equal(status_mask(r.out.buf, "\nSigIgn:"), 0);
}

static void test_reap_of_running_child_is_eagain(void **state)
{
	struct proc_spec spec = {.argv = ARGV("sleep", "100")};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), 0);
	assert_int_equal(proc_reap(&r.p, &r.st), -EAGAIN);
	assert_int_equal(proc_signal(&r.p, SIGKILL), 0);
	run_watch(*state, &r);
	run_finish(*state, &r);
	assert_int_equal(r.st.kind, PROC_SIGNALED);
	assert_int_equal(r.st.code, SIGKILL);
}

static void test_signal_and_reap_after_reap_are_harmless(void **state)
{
	struct proc_spec spec = {.argv = ARGV("true")};
	struct run r = {0};

	run_cmd(*state, &r, &spec);
	assert_int_equal(proc_signal(&r.p, SIGKILL), 0);
	assert_int_equal(proc_reap(&r.p, &r.st), -ECHILD);
}

/*
 * Spawn failures: synchronous, with a reason
 */

static void test_missing_program_is_enoent_not_found(void **state)
{
	struct proc_spec spec = {.argv = ARGV("vb-no-such-program", "x")};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), -ENOENT);
	assert_string_equal(r.why, "vb-no-such-program: command not found");
	assert_no_fds(&r.p);
}

static void test_missing_program_path_is_enoent(void **state)
{
	struct proc_spec spec = {.argv = ARGV("/nonexistent/prog")};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), -ENOENT);
	assert_string_equal(r.why, "/nonexistent/prog: No such file or directory");
	assert_no_fds(&r.p);
}

static void test_directory_as_program_is_eacces(void **state)
{
	struct proc_spec spec = {.argv = ARGV("/etc")};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), -EACCES);
	assert_string_equal(r.why, "/etc: Permission denied");
}

static void test_missing_cwd_fails(void **state)
{
	struct proc_spec spec = {.argv = ARGV("true"), .cwd = "/nonexistent-vb-dir"};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), -ENOENT);
	assert_string_equal(r.why, "cannot cd to /nonexistent-vb-dir: No such file or directory");
	assert_no_fds(&r.p);
}

static void test_unknown_user_is_enoent(void **state)
{
	struct proc_spec spec = {.argv = ARGV("true"), .user = "vb-no-such-user"};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), -ENOENT);
	assert_string_equal(r.why, "no such user: vb-no-such-user");
}

static void test_empty_argv_is_einval(void **state)
{
	struct proc_spec spec = {.argv = ARGV("")};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), -EINVAL);
	assert_no_fds(&r.p);
}

/*
 * Environment and directory
 */

static void test_env_entry_reaches_child(void **state)
{
	struct proc_spec spec = {.argv = ARGV("sh", "-c", "echo $FOO"), .env = ARGV("FOO=bar baz")};
	struct run r = {0};

	run_cmd(*state, &r, &spec);
	assert_exited(&r, 0);
	assert_string_equal(r.out.buf, "bar baz\n");
}

static void test_env_is_a_fresh_login_environment(void **state)
{
	struct proc_spec spec = {.argv = ARGV("env")};
	struct run r = {0};

	setenv("VB_TEST_LEAK", "1", 1);
	run_cmd(*state, &r, &spec);
	unsetenv("VB_TEST_LEAK");
	assert_exited(&r, 0);
	assert_non_null(strstr(
	    r.out.buf, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"));
	assert_non_null(strstr(r.out.buf, "HOME="));
	assert_non_null(strstr(r.out.buf, "SHELL="));
	assert_null(strstr(r.out.buf, "VB_TEST_LEAK"));
	assert_null(strstr(r.out.buf, "TERM="));
}

static void test_env_entry_overrides_base(void **state)
{
	struct proc_spec spec = {.argv = ARGV("sh", "-c", "echo $HOME"),
				 .env = ARGV("HOME=/vb-home", "HOME=/vb-home2")};
	struct run r = {0};

	run_cmd(*state, &r, &spec);
	assert_string_equal(r.out.buf, "/vb-home2\n");
}

static void test_env_path_is_used_for_lookup(void **state)
{
	/* No "true" in /nonexistent: the child's PATH, not ours, decides. */
	struct proc_spec spec = {.argv = ARGV("true"), .env = ARGV("PATH=/nonexistent")};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), -ENOENT);
}

/* Writes a file dir/name with text and mode; the path goes into path. */
static void write_file(char *path, size_t len, const char *dir, const char *name, const char *text,
		       mode_t mode)
{
	int fd;

	snprintf(path, len, "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_script_without_interpreter_runs_under_sh(void **state)
{
	char dir[] = "/tmp/vb-test-proc-XXXXXX", path[PATH_MAX];
	struct proc_spec spec = {.argv = ARGV("vbscript", "arg1")};
	char env_path[PATH_MAX + 8];
	struct run r = {0};

	assert_non_null(mkdtemp(dir));
	write_file(path, sizeof(path), dir, "vbscript", "echo ran with $1\n", 0755);
	snprintf(env_path, sizeof(env_path), "PATH=%s", dir);
	spec.env = ARGV(env_path);
	run_cmd(*state, &r, &spec);
	unlink(path);
	rmdir(dir);
	assert_exited(&r, 0);
	assert_string_equal(r.out.buf, "ran with arg1\n");
}

static void test_unexecutable_file_in_path_is_eacces(void **state)
{
	char dir[] = "/tmp/vb-test-proc-XXXXXX", path[PATH_MAX];
	struct proc_spec spec = {.argv = ARGV("vbprog")};
	char env_path[PATH_MAX + 32];
	struct run r = {0};
	int ret;

	assert_non_null(mkdtemp(dir));
	write_file(path, sizeof(path), dir, "vbprog", "echo no\n", 0644);
	/* The first match is not executable; the search goes on, then reports EACCES. */
	snprintf(env_path, sizeof(env_path), "PATH=%s:/nonexistent", dir);
	spec.env = ARGV(env_path);
	ret = run_spawn(&r, &spec);
	unlink(path);
	rmdir(dir);
	assert_int_equal(ret, -EACCES);
	assert_string_equal(r.why, "vbprog: Permission denied");
}

static void test_env_entry_without_equals_is_einval(void **state)
{
	struct proc_spec spec = {.argv = ARGV("true"), .env = ARGV("FOO")};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), -EINVAL);
	assert_non_null(strstr(r.why, "FOO"));
	assert_no_fds(&r.p);
}

static void test_cwd_is_used(void **state)
{
	struct proc_spec spec = {.argv = ARGV("pwd"), .cwd = "/tmp"};
	struct run r = {0};

	run_cmd(*state, &r, &spec);
	assert_string_equal(r.out.buf, "/tmp\n");
}

static void test_default_cwd_is_home(void **state)
{
	struct proc_spec spec = {.argv = ARGV("pwd")};
	struct passwd *pw = getpwuid(geteuid());
	char want[PATH_MAX + 2];
	struct run r = {0};

	if (!pw || access(pw->pw_dir, X_OK) < 0)
		skip();
	snprintf(want, sizeof(want), "%s\n", pw->pw_dir);
	run_cmd(*state, &r, &spec);
	assert_string_equal(r.out.buf, want);
}

/*
 * Pipes
 */

static void test_stdout_and_stderr_arrive_separately(void **state)
{
	struct proc_spec spec = {.argv = ARGV("sh", "-c", "echo out; echo err >&2")};
	struct run r = {0};

	run_cmd(*state, &r, &spec);
	assert_exited(&r, 0);
	assert_string_equal(r.out.buf, "out\n");
	assert_string_equal(r.err.buf, "err\n");
}

static void test_stdin_reaches_child(void **state)
{
	static const char msg[] = "hello, child\n";
	struct proc_spec spec = {.argv = ARGV("cat")};
	struct op w = {0};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), 0);
	run_watch(*state, &r);
	assert_int_equal(SUBMIT(loop_write(*state, &w.req, r.p.in, msg, strlen(msg), op_cb)), 0);
	RUN_UNTIL(*state, w.done);
	assert_int_equal(w.res, (int)strlen(msg));
	close((int)r.p.in);
	r.p.in = -1;
	run_finish(*state, &r);
	assert_exited(&r, 0);
	assert_string_equal(r.out.buf, msg);
}

static void test_stdin_null_gives_eof_at_once(void **state)
{
	struct proc_spec spec = {.argv = ARGV("cat"), .stdin_null = true};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), 0);
	assert_int_equal(r.p.in, -1);
	run_watch(*state, &r);
	run_finish(*state, &r);
	assert_exited(&r, 0);
	assert_int_equal(r.out.len, 0);
}

/* Asserts that fd is open, non-blocking (when nonblock) and close-on-exec. */
static void assert_fd_flags(pl_fd fd, bool nonblock)
{
	int fl = fcntl((int)fd, F_GETFL), fdfl = fcntl((int)fd, F_GETFD);

	assert_true(fl >= 0 && fdfl >= 0);
	if (nonblock)
		assert_true(fl & O_NONBLOCK);
	assert_true(fdfl & FD_CLOEXEC);
}

static void test_parent_descriptors_are_nonblocking_and_cloexec(void **state)
{
	struct proc_spec spec = {.argv = ARGV("cat")};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), 0);
	assert_fd_flags(r.p.in, true);
	assert_fd_flags(r.p.out, true);
	assert_fd_flags(r.p.err, true);
	assert_fd_flags(r.p.pidfd, false);
	assert_false(r.p.tty);
	run_watch(*state, &r);
	close((int)r.p.in);
	r.p.in = -1;
	run_finish(*state, &r);
}

static void test_child_gets_only_stdio(void **state)
{
	/* main() left a descriptor without O_CLOEXEC open; ls's own directory is 3. */
	struct proc_spec spec = {.argv = ARGV("ls", "/proc/self/fd")};
	struct run r = {0};

	run_cmd(*state, &r, &spec);
	assert_string_equal(r.out.buf, "0\n1\n2\n3\n");
}

/* The number of descriptors this process has open. */
static int count_fds(void)
{
	char path[64];
	int n = 0;

	for (int fd = 0; fd < 1024; fd++) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		n += access(path, F_OK) == 0;
	}
	return n;
}

static void test_spawns_leave_no_descriptor_behind(void **state)
{
	struct proc_spec bad[] = {
	    {.argv = ARGV("vb-no-such-program")},
	    {.argv = ARGV("vb-no-such-program"), .tty = true, .rows = 24, .cols = 80},
	    {.argv = ARGV("vb-no-such-program"), .detach = true},
	    {.argv = ARGV("true"), .cwd = "/nonexistent-vb-dir", .stdin_null = true},
	    {.argv = ARGV("true"), .env = ARGV("A=1", "B")},
	    {.argv = ARGV("true"), .user = "vb-no-such-user", .tty = true},
	};
	struct proc_spec good = {.argv = ARGV("true"), .tty = true, .rows = 24, .cols = 80};
	int before = count_fds();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct run r = {0};

		assert_true(run_spawn(&r, &bad[i]) < 0);
		proc_close(&r.p);
		if (bad[i].detach)
			reap_failed_detached_child();
	}
	for (int i = 0; i < 3; i++) {
		struct run r = {0};

		run_cmd(*state, &r, &good);
	}
	assert_int_equal(count_fds(), before);
}

/*
 * Ptys
 */

static void test_tty_is_a_pty(void **state)
{
	struct proc_spec spec = {.argv = ARGV("tty"), .tty = true, .rows = 24, .cols = 80};
	struct run r = {0};

	run_cmd(*state, &r, &spec);
	assert_exited(&r, 0);
	assert_true(r.p.tty);
	assert_int_equal(strncmp(r.out.buf, "/dev/pts/", 9), 0);
	assert_non_null(strstr(r.out.buf, "\r\n"));
}

static void test_tty_descriptors_share_the_master(void **state)
{
	struct proc_spec spec = {.argv = ARGV("true"), .tty = true, .rows = 24, .cols = 80};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), 0);
	assert_int_equal(r.p.in, r.p.out);
	assert_int_equal(r.p.err, -1);
	assert_fd_flags(r.p.in, true);
	run_watch(*state, &r);
	run_finish(*state, &r);
}

static void test_tty_has_the_given_size(void **state)
{
	struct proc_spec spec = {
	    .argv = ARGV("stty", "size"), .tty = true, .rows = 33, .cols = 101};
	struct run r = {0};

	run_cmd(*state, &r, &spec);
	assert_exited(&r, 0);
	assert_string_equal(r.out.buf, "33 101\r\n");
}

static void test_tty_is_the_controlling_terminal(void **state)
{
	struct proc_spec spec = {.argv = ARGV("sh", "-c", "echo via-dev-tty >/dev/tty"),
				 .tty = true,
				 .rows = 24,
				 .cols = 80};
	struct run r = {0};

	run_cmd(*state, &r, &spec);
	assert_exited(&r, 0);
	assert_string_equal(r.out.buf, "via-dev-tty\r\n");
}

static void test_tty_term_defaults_to_xterm_256color(void **state)
{
	struct proc_spec spec = {
	    .argv = ARGV("sh", "-c", "echo $TERM"), .tty = true, .rows = 24, .cols = 80};
	struct run r = {0};

	run_cmd(*state, &r, &spec);
	assert_string_equal(r.out.buf, "xterm-256color\r\n");
}

static void test_tty_term_is_taken_from_spec(void **state)
{
	struct proc_spec spec = {.argv = ARGV("sh", "-c", "echo $TERM"),
				 .tty = true,
				 .rows = 24,
				 .cols = 80,
				 .term = "vt100"};
	struct run r = {0};

	run_cmd(*state, &r, &spec);
	assert_string_equal(r.out.buf, "vt100\r\n");
}

static void test_resize_reaches_child(void **state)
{
	struct proc_spec spec = {.argv = ARGV("sh", "-c", "stty size; read x; stty size"),
				 .tty = true,
				 .rows = 33,
				 .cols = 101};
	struct op w = {0};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), 0);
	run_watch(*state, &r);
	RUN_UNTIL(*state, strstr(r.out.buf, "33 101\r\n") || r.out.eof);
	assert_int_equal(proc_resize(&r.p, 40, 120), 0);
	assert_int_equal(SUBMIT(loop_write(*state, &w.req, r.p.in, "\n", 1, op_cb)), 0);
	RUN_UNTIL(*state, w.done);
	assert_int_equal(w.res, 1);
	run_finish(*state, &r);
	assert_exited(&r, 0);
	assert_non_null(strstr(r.out.buf, "40 120\r\n"));
}

static void test_resize_without_tty_is_enotty(void **state)
{
	struct proc_spec spec = {.argv = ARGV("true")};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), 0);
	assert_int_equal(proc_resize(&r.p, 40, 120), -ENOTTY);
	run_watch(*state, &r);
	run_finish(*state, &r);
}

/*
 * Process groups
 */

/* Reaps the members of group pgid that were orphaned to us; returns how many SIGTERM killed. */
static int reap_orphans(pid_t pgid)
{
	int st, n = 0;

	while (waitpid(-pgid, &st, 0) > 0)
		n += WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM;
	return n;
}

static void test_signal_kills_the_whole_group(void **state)
{
	struct proc_spec spec = {.argv =
				     ARGV("sh", "-c", "sleep 100 & sleep 100 & echo ready; wait")};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), 0);
	run_watch(*state, &r);
	RUN_UNTIL(*state, strstr(r.out.buf, "ready") || r.out.eof);
	assert_int_equal(proc_signal(&r.p, SIGTERM), 0);
	/* Both sleeps hold stdout: its end-of-file says they are gone too. */
	run_finish(*state, &r);
	assert_int_equal(r.st.kind, PROC_SIGNALED);
	assert_int_equal(r.st.code, SIGTERM);
	if (subreaper)
		assert_int_equal(reap_orphans(r.p.pid), 2);
}

/*
 * Users
 */

static void test_user_switch_to_nobody(void **state)
{
	struct proc_spec spec = {.argv = ARGV("id", "-u"), .user = "nobody"};
	struct passwd *pw = getpwnam("nobody");
	char want[32];
	struct run r = {0};

	if (geteuid() != 0 || !pw)
		skip(); /* needs root and a "nobody" user */
	snprintf(want, sizeof(want), "%u\n", (unsigned)pw->pw_uid);
	run_cmd(*state, &r, &spec);
	assert_exited(&r, 0);
	assert_string_equal(r.out.buf, want);
}

static void test_user_switch_sets_groups_and_env(void **state)
{
	struct proc_spec spec = {
	    .argv = ARGV("sh", "-c", "id -g; id -G; echo $USER $LOGNAME $HOME"), .user = "nobody"};
	struct passwd *pw = getpwnam("nobody");
	char want[PATH_MAX + 128];
	struct run r = {0};

	if (geteuid() != 0 || !pw)
		skip(); /* needs root and a "nobody" user */
	snprintf(want, sizeof(want), "%u\n%u\nnobody nobody %s\n", (unsigned)pw->pw_gid,
		 (unsigned)pw->pw_gid, pw->pw_dir);
	run_cmd(*state, &r, &spec);
	assert_string_equal(r.out.buf, want);
}

static void test_unreachable_home_falls_back_to_root_dir(void **state)
{
	struct proc_spec spec = {.argv = ARGV("pwd"), .user = "nobody"};
	struct passwd *pw = getpwnam("nobody");
	struct run r = {0};

	if (geteuid() != 0 || !pw || access(pw->pw_dir, F_OK) == 0)
		skip(); /* needs root and a "nobody" whose home does not exist */
	run_cmd(*state, &r, &spec);
	assert_string_equal(r.out.buf, "/\n");
}

static void test_user_switch_without_privilege_is_eperm(void **state)
{
	struct proc_spec spec = {.argv = ARGV("true"), .user = "nobody"};
	struct passwd *pw = getpwnam("nobody");
	struct run r = {0};

	if (geteuid() == 0 || !pw || pw->pw_uid == geteuid())
		skip(); /* root may switch */
	assert_int_equal(run_spawn(&r, &spec), -EPERM);
	assert_string_equal(r.why, "cannot switch to user nobody: Operation not permitted");
}

/*
 * Detach
 */

static void test_detached_child_outlives_its_handle(void **state)
{
	struct proc_spec spec = {.argv = ARGV("sleep", "100"), .detach = true};
	struct run r = {0};
	int st;

	assert_int_equal(run_spawn(&r, &spec), 0);
	assert_true(r.p.pid > 0);
	assert_no_fds(&r.p);
	proc_close(&r.p);
	assert_int_equal(kill(r.p.pid, 0), 0);
	assert_int_equal(getsid(r.p.pid), r.p.pid);
	/* On its own: nothing to reap or signal through the handle. */
	assert_int_equal(proc_reap(&r.p, &r.st), -ECHILD);
	assert_int_equal(proc_signal(&r.p, SIGKILL), 0);
	assert_int_equal(kill(r.p.pid, 0), 0);
	assert_int_equal(kill(r.p.pid, SIGKILL), 0);
	if (subreaper) {
		assert_int_equal(waitpid(r.p.pid, &st, 0), r.p.pid);
		assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	}
}

static void test_detached_missing_program_fails_synchronously(void **state)
{
	struct proc_spec spec = {.argv = ARGV("vb-no-such-program"), .detach = true};
	struct run r = {0};

	assert_int_equal(run_spawn(&r, &spec), -ENOENT);
	assert_string_equal(r.why, "vb-no-such-program: command not found");
	assert_no_fds(&r.p);
	reap_failed_detached_child();
}

/*
 * Signal watches
 */

static void test_sigwatch_delivers_raised_signal(void **state)
{
	static const int sigs[] = {SIGUSR1, SIGUSR2};
	struct sigwatch *w;
	struct op o = {0};

	assert_int_equal(sigwatch_new(&w, sigs, 2), 0);
	assert_int_equal(SUBMIT(sigwatch_next(*state, w, &o.req, op_cb)), 0);
	assert_int_equal(raise(SIGUSR1), 0);
	RUN_UNTIL(*state, o.done);
	assert_true(o.res > 0);
	assert_int_equal(sigwatch_signo(w), SIGUSR1);
	sigwatch_free(w);
}

static void test_sigwatch_refuses_sigkill(void **state)
{
	static const int sigs[] = {SIGKILL};
	struct sigwatch *w = NULL;

	assert_int_equal(sigwatch_new(&w, sigs, 1), -EINVAL);
	assert_null(w);
}

/*
 * The local terminal
 */

/* Asserts that two termios are the same, field by field (the struct has padding). */
static void assert_termios_equal(const struct termios *a, const struct termios *b)
{
	assert_int_equal(a->c_iflag, b->c_iflag);
	assert_int_equal(a->c_oflag, b->c_oflag);
	assert_int_equal(a->c_cflag, b->c_cflag);
	assert_int_equal(a->c_lflag, b->c_lflag);
	assert_int_equal(a->c_line, b->c_line);
	assert_memory_equal(a->c_cc, b->c_cc, sizeof(a->c_cc));
	assert_int_equal(cfgetispeed(a), cfgetispeed(b));
	assert_int_equal(cfgetospeed(a), cfgetospeed(b));
}

static void test_term_raw_and_restore_round_trip(void **state)
{
	struct termios before, during, after;
	struct term_state *t = NULL;
	int m, s;

	assert_int_equal(openpty(&m, &s, NULL, NULL, NULL), 0);
	assert_int_equal(tcgetattr(s, &before), 0);
	assert_true(before.c_lflag & (ICANON | ECHO));
	assert_int_equal(term_raw(s, &t), 0);
	assert_int_equal(tcgetattr(s, &during), 0);
	assert_false(during.c_lflag & (ICANON | ECHO | ISIG));
	term_restore(t);
	term_restore(t); /* idempotent */
	assert_int_equal(tcgetattr(s, &after), 0);
	assert_termios_equal(&before, &after);
	term_free(t);
	assert_int_equal(tcgetattr(s, &after), 0);
	assert_termios_equal(&before, &after);
	close(s);
	close(m);
}

static void test_term_raw_on_a_pipe_is_enotty(void **state)
{
	struct term_state *t = NULL;
	int p[2];

	assert_int_equal(pipe(p), 0);
	assert_int_equal(term_raw(p[0], &t), -ENOTTY);
	assert_null(t);
	close(p[0]);
	close(p[1]);
}

static void test_term_size_reads_the_window(void **state)
{
	struct winsize ws = {.ws_row = 50, .ws_col = 132};
	uint16_t rows = 0, cols = 0;
	int m, s;

	assert_int_equal(openpty(&m, &s, NULL, NULL, &ws), 0);
	assert_int_equal(term_size(s, &rows, &cols), 0);
	assert_int_equal(rows, 50);
	assert_int_equal(cols, 132);
	close(s);
	close(m);
}

#define PROC_TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

/* Makes this process look like the agent to its children: signals blocked and ignored. */
static void act_like_the_agent(void)
{
	sigset_t set;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	/* A descriptor someone forgot to make close-on-exec; children must not get it. */
	if (open("/dev/null", O_RDONLY) < 0)
		perror("/dev/null");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    PROC_TEST(test_true_exits_zero),
	    PROC_TEST(test_exit_code_is_reported),
	    PROC_TEST(test_death_by_signal_is_reported),
	    PROC_TEST(test_child_has_no_blocked_or_ignored_signals),
	    PROC_TEST(test_reap_of_running_child_is_eagain),
	    PROC_TEST(test_signal_and_reap_after_reap_are_harmless),
	    PROC_TEST(test_missing_program_is_enoent_not_found),
	    PROC_TEST(test_missing_program_path_is_enoent),
	    PROC_TEST(test_directory_as_program_is_eacces),
	    PROC_TEST(test_missing_cwd_fails),
	    PROC_TEST(test_unknown_user_is_enoent),
	    PROC_TEST(test_empty_argv_is_einval),
	    PROC_TEST(test_env_entry_reaches_child),
	    PROC_TEST(test_env_is_a_fresh_login_environment),
	    PROC_TEST(test_env_entry_overrides_base),
	    PROC_TEST(test_env_path_is_used_for_lookup),
	    PROC_TEST(test_script_without_interpreter_runs_under_sh),
	    PROC_TEST(test_unexecutable_file_in_path_is_eacces),
	    PROC_TEST(test_env_entry_without_equals_is_einval),
	    PROC_TEST(test_cwd_is_used),
	    PROC_TEST(test_default_cwd_is_home),
	    PROC_TEST(test_stdout_and_stderr_arrive_separately),
	    PROC_TEST(test_stdin_reaches_child),
	    PROC_TEST(test_stdin_null_gives_eof_at_once),
	    PROC_TEST(test_parent_descriptors_are_nonblocking_and_cloexec),
	    PROC_TEST(test_child_gets_only_stdio),
	    PROC_TEST(test_spawns_leave_no_descriptor_behind),
	    PROC_TEST(test_tty_is_a_pty),
	    PROC_TEST(test_tty_descriptors_share_the_master),
	    PROC_TEST(test_tty_has_the_given_size),
	    PROC_TEST(test_tty_is_the_controlling_terminal),
	    PROC_TEST(test_tty_term_defaults_to_xterm_256color),
	    PROC_TEST(test_tty_term_is_taken_from_spec),
	    PROC_TEST(test_resize_reaches_child),
	    PROC_TEST(test_resize_without_tty_is_enotty),
	    PROC_TEST(test_signal_kills_the_whole_group),
	    PROC_TEST(test_user_switch_to_nobody),
	    PROC_TEST(test_user_switch_sets_groups_and_env),
	    PROC_TEST(test_unreachable_home_falls_back_to_root_dir),
	    PROC_TEST(test_user_switch_without_privilege_is_eperm),
	    PROC_TEST(test_detached_child_outlives_its_handle),
	    PROC_TEST(test_detached_missing_program_fails_synchronously),
	    PROC_TEST(test_sigwatch_delivers_raised_signal),
	    PROC_TEST(test_sigwatch_refuses_sigkill),
	    cmocka_unit_test(test_term_raw_and_restore_round_trip),
	    cmocka_unit_test(test_term_raw_on_a_pipe_is_enotty),
	    cmocka_unit_test(test_term_size_reads_the_window),
	};
	const char *env = getenv("VMBUSIFY_BACKEND");
	struct loop *probe;
	int ret;

	act_like_the_agent();
	/* Detached and orphaned grandchildren come back to us, to be checked and reaped. */
	subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1) == 0;
	if (env && *env && loop_backend_parse(env, &want_backend) < 0) {
		fprintf(stderr, "VMBUSIFY_BACKEND=%s is not a backend\n", env);
		return 1;
	}
	ret = loop_new(&probe, LOOP_BACKEND_AUTO);
	if (ret < 0 && want_backend == LOOP_BACKEND_URING) {
		printf("SKIP: io_uring was requested but is unavailable here: %s\n",
		       strerror(-ret));
		return 77;
	}
	if (ret < 0) {
		fprintf(stderr, "loop_new: %s\n", strerror(-ret));
		return 1;
	}
	printf("backend: %s\n", loop_backend_name(loop_backend(probe)));
	loop_free(probe);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
