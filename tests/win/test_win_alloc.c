/* Tests that the Windows build allocates through mimalloc (cmake/windows.cmake, malloc_mi.h). */
#include <winsock2.h>
#include <windows.h>
#include <ws2tcpip.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "platform/loop.h"

/*
 * A build without mimalloc (no VB_MIMALLOC_DIR: cmake run by hand) skips
 * every test with its reason; scripts/build-win.sh always has it. The
 * executables link the same way as these tests (link_libraries and the
 * -include in cmake/windows.cmake), so what holds here holds for them.
 */
#ifdef VB_MIMALLOC

static void test_mimalloc_is_linked(void **state)
{
	assert_int_equal(mi_version(), MI_MALLOC_VERSION);
	print_message("mimalloc %d (Debian's source package, built for mingw-w64)\n", mi_version());
}

static void test_malloc_in_a_test_file_comes_from_mimalloc(void **state)
{
	char *p = malloc(100), *q = calloc(4, 25), *s = strdup("vmbusify");

	assert_non_null(p);
	assert_true(mi_is_in_heap_region(p));
	assert_true(mi_usable_size(p) >= 100);
	assert_true(mi_is_in_heap_region(q));
	assert_true(mi_is_in_heap_region(s));
	p = realloc(p, 100000);
	assert_true(mi_is_in_heap_region(p));
	free(s);
	free(q);
	free(p);
}

static void test_the_project_libraries_allocate_from_mimalloc(void **state)
{
	struct loop *l = NULL;

	/* loop_new() is compiled into vbcore, apart from this file: its struct loop is mimalloc's.
	 */
	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_true(mi_is_in_heap_region(l));
	loop_free(l);
}

static void test_the_c_runtime_keeps_its_own_heap(void **state)
{
	/* (malloc) is the C runtime's function, not the macro: a different heap, freed by its own.
	 */
	void *crt = (malloc)(64);
	struct addrinfo hints = {.ai_family = AF_INET, .ai_flags = AI_NUMERICHOST}, *res = NULL;
	WSADATA wsa;

	assert_non_null(crt);
	assert_false(mi_is_in_heap_region(crt));
	(free)(crt);
	/* Memory Winsock allocates goes back through Winsock. */
	assert_int_equal(WSAStartup(MAKEWORD(2, 2), &wsa), 0);
	assert_int_equal(getaddrinfo("127.0.0.1", "80", &hints, &res), 0);
	assert_false(mi_is_in_heap_region(res));
	freeaddrinfo(res);
	WSACleanup();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_mimalloc_is_linked),
	    cmocka_unit_test(test_malloc_in_a_test_file_comes_from_mimalloc),
	    cmocka_unit_test(test_the_project_libraries_allocate_from_mimalloc),
	    cmocka_unit_test(test_the_c_runtime_keeps_its_own_heap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

#else

int main(void)
{
	printf("skipped: this build has no mimalloc (configure with -DVB_MIMALLOC_DIR, as "
	       "scripts/build-win.sh does)\n");
	return 77;
}

#endif
