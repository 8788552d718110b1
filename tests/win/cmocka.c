/* The test runner and assertions behind tests/win/cmocka.h. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmocka.h"

enum vbt_outcome { VBT_PASSED, VBT_FAILED, VBT_SKIPPED };

static jmp_buf vbt_jump; /* where a failed assertion returns to: the running test */
static int vbt_running;

static void vbt_vreport(const char *file, int line, const char *fmt, va_list ap)
{
	fprintf(stderr, "%s:%d: ", file, line);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	fflush(stderr);
}

/* Ends the running test with outcome; outside a test (group setup), the process. */
static void vbt_end(enum vbt_outcome outcome) __attribute__((noreturn));
static void vbt_end(enum vbt_outcome outcome)
{
	if (!vbt_running)
		exit(1);
	longjmp(vbt_jump, (int)outcome);
}

void vbt_check(int cond, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	if (cond)
		return;
	va_start(ap, fmt);
	vbt_vreport(file, line, fmt, ap);
	va_end(ap);
	vbt_end(VBT_FAILED);
}

void vbt_int_equal(uintmax_t a, uintmax_t b, int want_equal, const char *ea, const char *eb,
		   const char *file, int line)
{
	if ((a == b) == !!want_equal)
		return;
	vbt_check(0, file, line, "%s %s %s: %jd (%#jx) %s %jd (%#jx)", ea,
		  want_equal ? "==" : "!=", eb, (intmax_t)a, a,
		  want_equal ? "!=" : "==", (intmax_t)b, b);
}

void vbt_string_equal(const char *a, const char *b, int want_equal, const char *file, int line)
{
	int equal = a && b && !strcmp(a, b);

	if (equal == !!want_equal)
		return;
	vbt_check(0, file, line, "\"%s\" %s \"%s\"", a ? a : "(null)",
		  want_equal ? "!=" : "==", b ? b : "(null)");
}

void vbt_memory_equal(const void *a, const void *b, size_t n, int want_equal, const char *file,
		      int line)
{
	const unsigned char *x = a, *y = b;
	size_t i = 0;

	while (i < n && x[i] == y[i])
		i++;
	if ((i == n) == !!want_equal)
		return;
	if (want_equal)
		vbt_check(0, file, line, "%zu bytes differ first at offset %zu: %#x != %#x", n, i,
			  x[i], y[i]);
	vbt_check(0, file, line, "%zu bytes are equal", n);
}

void vbt_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vbt_vreport(file, line, fmt, ap);
	va_end(ap);
	vbt_end(VBT_FAILED);
}

void vbt_skip(const char *file, int line)
{
	fprintf(stderr, "%s:%d: skipped\n", file, line);
	vbt_end(VBT_SKIPPED);
}

void print_message(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fflush(stdout);
}

void print_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fflush(stderr);
}

/* Runs one test with its fixtures; returns its outcome. */
static enum vbt_outcome vbt_run_one(const struct CMUnitTest *t, void *group_state)
{
	/* Static, so that longjmp() leaves them as the test left them. */
	static void *state;
	static enum vbt_outcome outcome;
	int jumped;

	state = t->initial_state ? t->initial_state : group_state;
	outcome = VBT_PASSED;
	vbt_running = 1;
	jumped = setjmp(vbt_jump);
	if (jumped) {
		outcome = (enum vbt_outcome)jumped;
	} else if (t->setup_func && t->setup_func(&state)) {
		fprintf(stderr, "setup of %s failed\n", t->name);
		outcome = VBT_FAILED;
	} else {
		t->test_func(&state);
	}
	/* A teardown runs once, even after a failure; one that fails fails the test. */
	if (t->teardown_func) {
		jumped = setjmp(vbt_jump);
		if (jumped || t->teardown_func(&state))
			outcome = VBT_FAILED;
	}
	vbt_running = 0;
	return outcome;
}

/*
 * vbt_run_group() - runs tests[0..n) between the group's setup and teardown,
 * printing cmocka's lines. Return: the number of tests that failed (or 1
 * when the group setup failed), as cmocka does.
 */
int vbt_run_group(const char *name, const struct CMUnitTest *tests, size_t n,
		  CMFixtureFunction setup, CMFixtureFunction teardown)
{
	static const char *const tag[] = {"       OK ", "  FAILED  ", "  SKIPPED "};
	size_t failed = 0, skipped = 0, i;
	void *group_state = NULL;

	printf("[==========] %s: Running %zu test(s).\n", name, n);
	if (setup && setup(&group_state)) {
		printf("[  ERROR   ] %s: group setup failed\n", name);
		return 1;
	}
	for (i = 0; i < n; i++) {
		enum vbt_outcome o;

		printf("[ RUN      ] %s\n", tests[i].name);
		fflush(stdout);
		o = vbt_run_one(&tests[i], group_state);
		failed += o == VBT_FAILED;
		skipped += o == VBT_SKIPPED;
		printf("[%s] %s\n", tag[o], tests[i].name);
		fflush(stdout);
	}
	if (teardown && teardown(&group_state))
		printf("[  ERROR   ] %s: group teardown failed\n", name);
	printf("[==========] %s: %zu test(s) run.\n", name, n);
	printf("[  PASSED  ] %zu test(s).\n", n - failed - skipped);
	if (skipped)
		printf("[  SKIPPED ] %zu test(s).\n", skipped);
	if (failed)
		printf("[  FAILED  ] %zu test(s).\n", failed);
	fflush(stdout);
	return (int)failed;
}
