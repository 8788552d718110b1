/* Unit tests for the log's rate limiter: a flood gives a few lines and a count, not a line each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "core/log.h"

#define CAUSE_BURST   3	 /* LOG_RL_CAUSE_BURST in core/log.c */
#define SUBJECT_BURST 20 /* LOG_RL_SUBJECT_BURST */
#define PERIOD_NS     (10ull * 1000 * 1000 * 1000)
#define LINES_MAX     256

static uint64_t fake_now;
static char lines[LINES_MAX][1100];
static int nlines;

static uint64_t fake_clock(void)
{
	return fake_now;
}

static void capture(enum vb_log_level lvl, const char *line)
{
	if (nlines < LINES_MAX)
		snprintf(lines[nlines], sizeof(lines[0]), "%s", line);
	nlines++;
}

static int count_with(const char *needle)
{
	int n = 0;

	for (int i = 0; i < nlines && i < LINES_MAX; i++)
		n += strstr(lines[i], needle) != NULL;
	return n;
}

static int setup(void **state)
{
	fake_now = 1000000000ull;
	nlines = 0;
	log_setup("test", VB_LOG_DEBUG);
	log_set_sink(capture);
	log_rate_limit(true, fake_clock);
	return 0;
}

static int teardown(void **state)
{
	log_set_sink(NULL);
	log_rate_limit(true, NULL);
	log_setup("test", VB_LOG_INFO);
	return 0;
}

/* One call site, as a flood from one peer would hit it. */
static void refused(const char *vm, unsigned id)
{
	vb_warn("%s: refused stream %u: not allowed", vm, id);
}

static void test_a_flood_of_one_cause_shows_a_few_lines_then_one_count(void **state)
{
	for (unsigned i = 0; i < 10000; i++)
		refused("evil", i);
	assert_int_equal(nlines, CAUSE_BURST);
	assert_int_equal(count_with("evil: refused stream"), CAUSE_BURST);
	fake_now += PERIOD_NS;
	log_tick();
	assert_int_equal(nlines, CAUSE_BURST + 1);
	assert_non_null(strstr(lines[CAUSE_BURST], "evil: refused stream 9999: not allowed"));
	assert_non_null(
	    strstr(lines[CAUSE_BURST], "[9997 more like this suppressed in the last 10 s]"));
	log_tick(); /* said once */
	assert_int_equal(nlines, CAUSE_BURST + 1);
}

static void test_the_next_period_shows_lines_again(void **state)
{
	for (unsigned i = 0; i < 5; i++)
		refused("evil", i);
	fake_now += PERIOD_NS;
	refused("evil", 100);
	/* The summary of the last period first, then the new line. */
	assert_int_equal(nlines, CAUSE_BURST + 2);
	assert_non_null(strstr(lines[CAUSE_BURST], "[2 more like this suppressed"));
	assert_non_null(strstr(lines[CAUSE_BURST + 1], "refused stream 100"));
}

static void test_another_subject_is_not_silenced_by_a_flood(void **state)
{
	for (unsigned i = 0; i < 1000; i++)
		refused("evil", i);
	refused("good", 1);
	assert_int_equal(count_with("good: refused stream 1: not allowed"), 1);
}

static void test_varying_text_under_one_subject_is_bounded_too(void **state)
{
	char name[32];

	for (unsigned i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "host-%c%c%c.example", 'a' + i % 26, 'a' + i / 26 % 26,
			 'a' + i / 676 % 26);
		vb_info("evil: denied %s:80: by a rule", name);
	}
	assert_int_equal(nlines, SUBJECT_BURST);
}

static void test_debug_lines_are_never_limited(void **state)
{
	for (unsigned i = 0; i < 100; i++)
		vb_dbg("evil: frame %u", i);
	assert_int_equal(nlines, 100);
}

static void test_switched_off_it_shows_every_line(void **state)
{
	log_rate_limit(false, fake_clock);
	for (unsigned i = 0; i < 50; i++)
		refused("evil", i);
	assert_int_equal(nlines, 50);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_a_flood_of_one_cause_shows_a_few_lines_then_one_count),
	    T(test_the_next_period_shows_lines_again),
	    T(test_another_subject_is_not_silenced_by_a_flood),
	    T(test_varying_text_under_one_subject_is_bounded_too),
	    T(test_debug_lines_are_never_limited),
	    T(test_switched_off_it_shows_every_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
