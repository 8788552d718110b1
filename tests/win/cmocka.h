/* The subset of cmocka's API that the tests use, for the Windows build (Debian has no mingw
 * cmocka). */
#ifndef VB_TESTS_WIN_CMOCKA_H
#define VB_TESTS_WIN_CMOCKA_H

/*
 * Tests include <cmocka.h> and build unchanged against the real cmocka on
 * Linux and against this header on Windows. Same names, same output lines
 * ("[ RUN      ]", "[  PASSED  ] N test(s).") and the same meaning: a failed
 * assertion ends the test (longjmp back to the runner) and the group returns
 * how many tests failed. Not provided: mocks, expectations, test_malloc and
 * signal catching (a crash ends the process, which CTest reports).
 */
#include <stdint.h>
#include <stddef.h>

typedef void (*CMUnitTestFunction)(void **state);
typedef int (*CMFixtureFunction)(void **state);

struct CMUnitTest {
	const char *name;
	CMUnitTestFunction test_func;
	CMFixtureFunction setup_func;
	CMFixtureFunction teardown_func;
	void *initial_state;
};

#define cmocka_unit_test(f)                                                                        \
	{                                                                                          \
#f, f, NULL, NULL, NULL                                                            \
	}
#define cmocka_unit_test_setup(f, setup)                                                           \
	{                                                                                          \
#f, f, setup, NULL, NULL                                                           \
	}
#define cmocka_unit_test_teardown(f, teardown)                                                     \
	{                                                                                          \
#f, f, NULL, teardown, NULL                                                        \
	}
#define cmocka_unit_test_setup_teardown(f, setup, teardown)                                        \
	{                                                                                          \
#f, f, setup, teardown, NULL                                                       \
	}
#define cmocka_unit_test_prestate(f, state)                                                        \
	{                                                                                          \
#f, f, NULL, NULL, state                                                           \
	}
#define cmocka_unit_test_prestate_setup_teardown(f, setup, teardown, state)                        \
	{                                                                                          \
#f, f, setup, teardown, state                                                      \
	}

#define cmocka_run_group_tests(tests, setup, teardown)                                             \
	vbt_run_group(#tests, tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown)
#define cmocka_run_group_tests_name(name, tests, setup, teardown)                                  \
	vbt_run_group(name, tests, sizeof(tests) / sizeof((tests)[0]), setup, teardown)

int vbt_run_group(const char *name, const struct CMUnitTest *tests, size_t n,
		  CMFixtureFunction setup, CMFixtureFunction teardown);

/* Each check reports "file:line: what" and ends the test when cond is false. */
void vbt_check(int cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(gnu_printf, 4, 5)));
void vbt_int_equal(uintmax_t a, uintmax_t b, int want_equal, const char *ea, const char *eb,
		   const char *file, int line);
void vbt_string_equal(const char *a, const char *b, int want_equal, const char *file, int line);
void vbt_memory_equal(const void *a, const void *b, size_t n, int want_equal, const char *file,
		      int line);
void vbt_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(gnu_printf, 3, 4)));
void vbt_skip(const char *file, int line) __attribute__((noreturn));
void print_message(const char *fmt, ...) __attribute__((format(gnu_printf, 1, 2)));
void print_error(const char *fmt, ...) __attribute__((format(gnu_printf, 1, 2)));

#define assert_true(c)	   vbt_check(!!(c), __FILE__, __LINE__, "%s is not true", #c)
#define assert_false(c)	   vbt_check(!(c), __FILE__, __LINE__, "%s is not false", #c)
#define assert_non_null(p) vbt_check((p) != NULL, __FILE__, __LINE__, "%s is NULL", #p)
#define assert_null(p)	   vbt_check((p) == NULL, __FILE__, __LINE__, "%s is not NULL", #p)
#define assert_ptr_equal(a, b)                                                                     \
	vbt_check((const void *)(a) == (const void *)(b), __FILE__, __LINE__, "%p != %p",          \
		  (const void *)(a), (const void *)(b))
#define assert_ptr_not_equal(a, b)                                                                 \
	vbt_check((const void *)(a) != (const void *)(b), __FILE__, __LINE__, "%p == %p",          \
		  (const void *)(a), (const void *)(b))
#define assert_int_equal(a, b)                                                                     \
	vbt_int_equal((uintmax_t)(a), (uintmax_t)(b), 1, #a, #b, __FILE__, __LINE__)
#define assert_int_not_equal(a, b)                                                                 \
	vbt_int_equal((uintmax_t)(a), (uintmax_t)(b), 0, #a, #b, __FILE__, __LINE__)
#define assert_in_range(v, lo, hi)                                                                 \
	vbt_check((uintmax_t)(v) >= (uintmax_t)(lo) && (uintmax_t)(v) <= (uintmax_t)(hi),          \
		  __FILE__, __LINE__, "%s = %ju is not in [%ju, %ju]", #v, (uintmax_t)(v),         \
		  (uintmax_t)(lo), (uintmax_t)(hi))
#define assert_return_code(rc, err)                                                                \
	vbt_check((intmax_t)(rc) >= 0, __FILE__, __LINE__, "%s = %jd (error %d)", #rc,             \
		  (intmax_t)(rc), (int)(err))
#define assert_string_equal(a, b)	 vbt_string_equal((a), (b), 1, __FILE__, __LINE__)
#define assert_string_not_equal(a, b)	 vbt_string_equal((a), (b), 0, __FILE__, __LINE__)
#define assert_memory_equal(a, b, n)	 vbt_memory_equal((a), (b), (n), 1, __FILE__, __LINE__)
#define assert_memory_not_equal(a, b, n) vbt_memory_equal((a), (b), (n), 0, __FILE__, __LINE__)
#define fail()				 vbt_fail(__FILE__, __LINE__, "fail()")
#define fail_msg(...)			 vbt_fail(__FILE__, __LINE__, __VA_ARGS__)
#define skip()				 vbt_skip(__FILE__, __LINE__)

#endif
