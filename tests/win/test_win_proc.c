/* Tests of process spawn with redirected pipes on the IOCP loop, under Wine. The test is its own
 * child. */
#include <windows.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "platform/loop.h"
#include "platform/proc.h"

#define MS 1000000ull

/* ---- the child side: test_win_proc.exe --child MODE ... ---- */

static int child_main(int argc, char **argv)
{
	char buf[256];
	size_t n;

	if (!strcmp(argv[2], "cat")) {
		while ((n = fread(buf, 1, sizeof(buf), stdin)) > 0)
			fwrite(buf, 1, n, stdout);
		fputs("err", stderr);
		return 7;
	}
	if (!strcmp(argv[2], "args")) {
		for (int i = 3; i < argc; i++)
			printf("[%s]", argv[i]);
		return 0;
	}
	if (!strcmp(argv[2], "env")) {
		const char *v = getenv(argv[3]);

		printf("%s", v ? v : "(unset)");
		return 0;
	}
	if (!strcmp(argv[2], "exit"))
		return atoi(argv[3]);
	if (!strcmp(argv[2], "sleep")) {
		Sleep(60000);
		return 0;
	}
	return 99;
}

/* ---- the parent side ---- */

static char self[MAX_PATH];

struct seen {
	struct loop_req req;
	int calls, res;
};

static void seen_cb(struct loop_req *r, int res)
{
	struct seen *s = (struct seen *)r;

	s->calls++;
	s->res = res;
}

static void run_until(struct loop *l, struct seen *s)
{
	uint64_t end = clock_now_ns() + 10000 * MS;

	while (!s->calls && clock_now_ns() < end)
		assert_true(loop_run_once(l, 50 * MS) >= 0);
	assert_int_equal(s->calls, 1);
}

/* Reads fd on l until end of file; returns the bytes, NUL-terminated in buf. */
static size_t read_all(struct loop *l, pl_fd fd, char *buf, size_t cap)
{
	size_t got = 0;

	for (;;) {
		struct seen r = {0};

		assert_true(got < cap - 1);
		assert_int_equal(loop_read(l, &r.req, fd, buf + got, cap - 1 - got, seen_cb), 0);
		run_until(l, &r);
		assert_true(r.res >= 0);
		if (!r.res)
			break;
		got += (size_t)r.res;
	}
	buf[got] = '\0';
	return got;
}

static struct proc spawn(const char *const *argv, const char *const *env, bool stdin_null)
{
	struct proc_spec spec = {.argv = argv, .env = env, .stdin_null = stdin_null};
	char why[200] = "";
	struct proc p;

	if (proc_spawn(&spec, &p, why, sizeof(why)))
		fail_msg("spawn: %s", why);
	return p;
}

/* Waits for p's exit on l and returns its status. */
static struct proc_status wait_exit(struct loop *l, struct proc *p)
{
	struct proc_status st = {0};
	struct seen w = {0};

	assert_int_equal(proc_watch(l, &w.req, p, seen_cb), 0);
	run_until(l, &w);
	assert_true(w.res > 0);
	assert_int_equal(proc_reap(p, &st), 0);
	assert_int_equal(proc_reap(p, &st), -ECHILD);
	return st;
}

static void test_spawn_pipes_stdin_to_stdout_and_stderr_apart(void **state)
{
	const char *argv[] = {self, "--child", "cat", NULL};
	struct proc p = spawn(argv, NULL, false);
	struct loop *l = NULL;
	struct seen w = {0};
	struct proc_status st;
	char out[64], err[64];

	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_true(p.pid > 0);
	assert_int_equal(loop_write(l, &w.req, p.in, "abc", 3, seen_cb), 0);
	run_until(l, &w);
	assert_int_equal(w.res, 3);
	CloseHandle((HANDLE)p.in); /* end of file for the child */
	p.in = -1;
	assert_int_equal(read_all(l, p.out, out, sizeof(out)), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(read_all(l, p.err, err, sizeof(err)), 3);
	assert_string_equal(err, "err");
	st = wait_exit(l, &p);
	assert_int_equal(st.kind, PROC_EXITED);
	assert_int_equal(st.code, 7);
	proc_close(&p);
	loop_free(l);
}

static void test_arguments_reach_the_child_as_given(void **state)
{
	const char *argv[] = {self,	  "--child", "args", "a b",  "q\"x",
			      "back\\\\", "tr\\",    "",     "\\\"", NULL};
	struct proc p = spawn(argv, NULL, true);
	struct loop *l = NULL;
	char out[256];

	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(p.in, -1);
	read_all(l, p.out, out, sizeof(out));
	assert_string_equal(out, "[a b][q\"x][back\\\\][tr\\][][\\\"]");
	assert_int_equal(wait_exit(l, &p).code, 0);
	proc_close(&p);
	loop_free(l);
}

static void test_environment_entries_are_laid_over_the_agents(void **state)
{
	const char *argv[] = {self, "--child", "env", "VB_TEST_VALUE", NULL};
	const char *env[] = {"VB_TEST_VALUE=forty two", NULL};
	struct proc p = spawn(argv, env, true);
	struct loop *l = NULL;
	char out[64];

	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	read_all(l, p.out, out, sizeof(out));
	assert_string_equal(out, "forty two");
	wait_exit(l, &p);
	proc_close(&p);
	loop_free(l);
}

static void test_missing_program_fails_the_spawn_itself(void **state)
{
	const char *argv[] = {"no-such-program-vmbusify.exe", NULL};
	struct proc_spec spec = {.argv = argv};
	char why[200] = "";
	struct proc p;

	assert_int_equal(proc_spawn(&spec, &p, why, sizeof(why)), -ENOENT);
	assert_true(p.exec_failed);
	assert_int_equal(p.in, -1);
	assert_int_equal(p.out, -1);
	assert_int_equal(p.pidfd, -1);
	assert_non_null(strstr(why, "no such program"));
}

static void test_kill_ends_the_program_with_128_plus_the_signal(void **state)
{
	const char *argv[] = {self, "--child", "sleep", NULL};
	struct proc p = spawn(argv, NULL, true);
	struct loop *l = NULL;
	struct seen w = {0};
	struct proc_status st;

	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(proc_watch(l, &w.req, &p, seen_cb), 0);
	assert_true(loop_run_once(l, 20 * MS) >= 0);
	assert_int_equal(w.calls, 0); /* still sleeping */
	assert_int_equal(proc_reap(&p, &st), -EAGAIN);
	assert_int_equal(proc_signal(&p, 9), 0);
	run_until(l, &w);
	assert_int_equal(proc_reap(&p, &st), 0);
	assert_int_equal(st.code, 137);
	assert_int_equal(proc_signal(&p, 9), 0); /* reaped: nothing to signal */
	proc_close(&p);
	loop_free(l);
}

/*
 * A pty is a pseudo console: the child runs attached to it, its output pipe
 * reaches end of file after the exit, and resizes reach it. What the child
 * draws there is left to a real Windows host (Wine's pseudo console differs).
 */
static void test_tty_runs_on_a_pseudo_console_and_ends_cleanly(void **state)
{
	const char *argv[] = {self, "--child", "exit", "5", NULL};
	struct proc_spec spec = {.argv = argv, .tty = true, .rows = 30, .cols = 100};
	struct proc_status st;
	struct loop *l = NULL;
	char why[200] = "", out[4096];
	struct proc p;
	int ret;

	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	ret = proc_spawn(&spec, &p, why, sizeof(why));
	if (ret == -EOPNOTSUPP) {
		print_message("no ConPTY here: %s\n", why);
		loop_free(l);
		skip();
	}
	assert_int_equal(ret, 0);
	assert_true(p.tty);
	assert_true(p.pty != 0);
	assert_int_equal(p.err, -1);
	ret = proc_resize(&p, 40, 120);
	if (ret == -ENOSYS)
		print_message("this pseudo console cannot be resized (Wine)\n");
	else
		assert_int_equal(ret, 0);
	st = wait_exit(l, &p);
	assert_int_equal(st.code, 5);
	read_all(l, p.out, out, sizeof(out)); /* ends: the pseudo console closed */
	proc_close(&p);
	loop_free(l);
}

static void test_tty_with_detach_is_refused(void **state)
{
	const char *argv[] = {self, "--child", "exit", "0", NULL};
	struct proc_spec spec = {.argv = argv, .tty = true, .detach = true};
	char why[200] = "";
	struct proc p;

	assert_int_equal(proc_spawn(&spec, &p, why, sizeof(why)), -EINVAL);
	assert_true(why[0] != '\0');
	assert_int_equal(p.in, -1);
}

static void test_cancelled_watch_completes_with_ecanceled(void **state)
{
	const char *argv[] = {self, "--child", "sleep", NULL};
	struct proc p = spawn(argv, NULL, true);
	struct loop *l = NULL;
	struct seen w = {0};

	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(proc_watch(l, &w.req, &p, seen_cb), 0);
	assert_int_equal(loop_cancel(l, &w.req), 0);
	run_until(l, &w);
	assert_int_equal(w.res, -ECANCELED);
	proc_signal(&p, 9);
	wait_exit(l, &p);
	proc_close(&p);
	loop_free(l);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spawn_pipes_stdin_to_stdout_and_stderr_apart),
	    cmocka_unit_test(test_arguments_reach_the_child_as_given),
	    cmocka_unit_test(test_environment_entries_are_laid_over_the_agents),
	    cmocka_unit_test(test_missing_program_fails_the_spawn_itself),
	    cmocka_unit_test(test_kill_ends_the_program_with_128_plus_the_signal),
	    cmocka_unit_test(test_cancelled_watch_completes_with_ecanceled),
	    cmocka_unit_test(test_tty_runs_on_a_pseudo_console_and_ends_cleanly),
	    cmocka_unit_test(test_tty_with_detach_is_refused),
	};

	if (argc >= 3 && !strcmp(argv[1], "--child"))
		return child_main(argc, argv);
	GetModuleFileNameA(NULL, self, sizeof(self));
	return cmocka_run_group_tests(tests, NULL, NULL);
}
