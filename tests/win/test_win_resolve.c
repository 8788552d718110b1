/* Tests of proxy/win/resolve.c under Wine: getaddrinfo on the thread pool, answers on the loop. */
#include <winsock2.h>
#include <windows.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "platform/loop.h"
#include "platform/net.h"
#include "proxy/resolve.h"

#define MS	1000000ull
#define WAIT_MS 10000

struct answer {
	int calls;
	int res;
	int n;
	struct net_addr addrs[RESOLVE_ADDRS_MAX];
};

static void answer_cb(void *ctx, int res, const struct net_addr *addrs, int n)
{
	struct answer *a = ctx;

	a->calls++;
	a->res = res;
	a->n = n;
	for (int i = 0; i < n && i < RESOLVE_ADDRS_MAX; i++)
		a->addrs[i] = addrs[i];
}

static void closed_cb(void *arg)
{
	(*(int *)arg)++;
}

/* Runs l until *flag is set or WAIT_MS pass. */
static void run_until(struct loop *l, const int *flag)
{
	uint64_t end = clock_now_ns() + WAIT_MS * MS;

	while (!*flag && clock_now_ns() < end)
		assert_true(loop_run_once(l, 20 * MS) >= 0);
}

static void setup(struct loop **l, struct resolver **r)
{
	char why[200] = "";

	assert_int_equal(resolve_global_init(), 0);
	assert_int_equal(loop_new(l, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(resolver_new(*l, NULL, r, why, sizeof(why)), 0);
}

static void teardown(struct loop *l, struct resolver *r)
{
	int closed = 0;

	resolver_close(r, closed_cb, &closed);
	run_until(l, &closed);
	assert_int_equal(closed, 1);
	loop_free(l);
}

static void test_ip_literal_is_answered_on_the_loop_not_inside_start(void **state)
{
	struct answer a = {0};
	struct resolver *r;
	struct loop *l;
	char buf[NET_ADDR_STRLEN];

	setup(&l, &r);
	assert_int_equal(resolve_start(r, "192.0.2.7", answer_cb, &a, NULL), 0);
	assert_int_equal(a.calls, 0);
	run_until(l, &a.calls);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.res, 0);
	assert_int_equal(a.n, 1);
	assert_string_equal(net_addr_format(&a.addrs[0], false, buf), "192.0.2.7");
	teardown(l, r);
}

static void test_localhost_resolves_to_a_loopback_address(void **state)
{
	struct answer a = {0};
	struct resolver *r;
	struct loop *l;
	char buf[NET_ADDR_STRLEN];
	bool loopback = false;

	setup(&l, &r);
	assert_int_equal(resolve_start(r, "localhost", answer_cb, &a, NULL), 0);
	run_until(l, &a.calls);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.res, 0);
	assert_true(a.n >= 1);
	for (int i = 0; i < a.n; i++) {
		net_addr_format(&a.addrs[i], false, buf);
		loopback = loopback || !strcmp(buf, "127.0.0.1") || !strcmp(buf, "::1");
	}
	assert_true(loopback);
	assert_int_equal(resolver_pending(r), 0);
	teardown(l, r);
}

static void test_a_name_that_is_no_host_name_is_refused_at_once(void **state)
{
	struct answer a = {0};
	struct resolver *r;
	struct loop *l;

	setup(&l, &r);
	assert_int_equal(resolve_start(r, "not a name!", answer_cb, &a, NULL), -EINVAL);
	assert_int_equal(resolve_start(r, "", answer_cb, &a, NULL), -EINVAL);
	assert_int_equal(resolver_pending(r), 0);
	teardown(l, r);
	assert_int_equal(a.calls, 0);
}

static void test_a_cancelled_request_never_calls_back(void **state)
{
	struct answer a = {0};
	struct resolve_req *q = NULL;
	struct resolver *r;
	struct loop *l;
	uint64_t end = clock_now_ns() + WAIT_MS * MS;

	setup(&l, &r);
	assert_int_equal(resolve_start(r, "localhost", answer_cb, &a, &q), 0);
	resolve_cancel(q);
	/* The query runs to its end on its thread; the resolver frees it then. */
	while (resolver_pending(r) && clock_now_ns() < end)
		assert_true(loop_run_once(l, 20 * MS) >= 0);
	assert_int_equal(resolver_pending(r), 0);
	assert_int_equal(a.calls, 0);
	teardown(l, r);
}

static void test_close_tells_pending_owners_cancelled_and_frees_later(void **state)
{
	struct answer a = {0};
	struct resolver *r;
	struct loop *l;
	int closed = 0;

	setup(&l, &r);
	assert_int_equal(resolve_start(r, "localhost", answer_cb, &a, NULL), 0);
	resolver_close(r, closed_cb, &closed);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.res, -ECANCELED);
	assert_int_equal(closed, 0);
	run_until(l, &closed);
	assert_int_equal(closed, 1);
	assert_int_equal(a.calls, 1);
	loop_free(l);
}

static void test_other_servers_cannot_be_asked_of_the_system_resolver(void **state)
{
	struct resolve_opts o = {.servers = "127.0.0.1:5353"};
	struct resolver *r = NULL;
	struct loop *l;
	char why[200] = "";

	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(resolver_new(l, &o, &r, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "system's resolver"));
	loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ip_literal_is_answered_on_the_loop_not_inside_start),
	    cmocka_unit_test(test_localhost_resolves_to_a_loopback_address),
	    cmocka_unit_test(test_a_name_that_is_no_host_name_is_refused_at_once),
	    cmocka_unit_test(test_a_cancelled_request_never_calls_back),
	    cmocka_unit_test(test_close_tells_pending_owners_cancelled_and_frees_later),
	    cmocka_unit_test(test_other_servers_cannot_be_asked_of_the_system_resolver),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
