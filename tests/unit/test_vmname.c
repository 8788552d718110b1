/* Unit tests for ingress destination names: "<vm>.vmbus" and "<address>.<vm>.vmbus". */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include "proxy/vmname.h"

static bool exists(void *arg, const char *name, size_t n)
{
	static const char *const vms[] = {"lab1", "web.prod", "prod", "a"};

	for (size_t i = 0; i < sizeof(vms) / sizeof(vms[0]); i++) {
		if (strlen(vms[i]) == n && memcmp(vms[i], name, n) == 0)
			return true;
	}
	return false;
}

static void check(const char *host, int want, const char *vm, const char *inner)
{
	char v[64] = "", in[256] = "";
	int ret = vmname_split(host, exists, NULL, v, sizeof(v), in, sizeof(in));

	assert_int_equal(ret, want);
	if (want != 1)
		return;
	assert_string_equal(v, vm);
	assert_string_equal(in, inner);
}

static void test_vm_loopback(void **state)
{
	check("lab1.vmbus", 1, "lab1", "127.0.0.1");
	check("LAB1.VMBUS.", -ENOENT, NULL, NULL); /* VM names are case-sensitive */
	check("lab1.VMBUS.", 1, "lab1", "127.0.0.1");
}

static void test_inner_addresses_and_names(void **state)
{
	check("10.0.0.5.lab1.vmbus", 1, "lab1", "10.0.0.5");
	check("db.internal.lab1.vmbus", 1, "lab1", "db.internal");
	check("fd00--1.lab1.vmbus", 1, "lab1", "fd00::1");
	check("my-host.lab1.vmbus", 1, "lab1", "my-host");
}

static void test_longest_vm_name_wins(void **state)
{
	check("web.prod.vmbus", 1, "web.prod", "127.0.0.1");
	check("x.web.prod.vmbus", 1, "web.prod", "x");
	check("x.prod.vmbus", 1, "prod", "x");
}

static void test_not_ours_or_unknown(void **state)
{
	check("example.com", 0, NULL, NULL);
	check("vmbus", 0, NULL, NULL);
	check(".vmbus", 0, NULL, NULL);
	check("nosuch.vmbus", -ENOENT, NULL, NULL);
	check(".lab1.vmbus", -EINVAL, NULL, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vm_loopback),
	    cmocka_unit_test(test_inner_addresses_and_names),
	    cmocka_unit_test(test_longest_vm_name_wins),
	    cmocka_unit_test(test_not_ours_or_unknown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
