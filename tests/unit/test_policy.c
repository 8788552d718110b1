/* Unit tests for the egress policy: targets, matching, built-in denies, order, and limits. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "core/config.h"
#include "proxy/policy.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))
#define MS	 1000000ull
#define SEC	 1000000000ull

/* ---- helpers ---- */

static struct policy *pol_new(void)
{
	struct policy *p;

	assert_int_equal(policy_new(&p), 0);
	return p;
}

/* Adds "allow X" or "deny X" written as one string, failing the test on an error. */
static void pol_add(struct policy *p, const char *rule)
{
	bool deny = !strncmp(rule, "deny ", 5);
	const char *target = rule + (deny ? 5 : 6);
	char why[256] = "";

	if (!deny && strncmp(rule, "allow ", 6))
		fail_msg("bad test rule '%s'", rule);
	if (policy_add_rule(p, deny, target, 0, why, sizeof(why)))
		fail_msg("policy_add_rule(%s): %s", rule, why);
}

/* A policy from rules, NULL-terminated. */
static struct policy *pol_of(const char *const *rules)
{
	struct policy *p = pol_new();

	for (; *rules; rules++)
		pol_add(p, *rules);
	return p;
}

static struct net_addr addr(const char *ip, uint16_t port)
{
	struct net_addr a;

	if (net_addr_parse_ip(ip, &a))
		fail_msg("bad test address '%s'", ip);
	a.port = port;
	return a;
}

/* policy_check_addr() for "ip" and port, with no name. */
static int check_ip(const struct policy *p, const char *ip, uint16_t port, char *why, size_t len)
{
	struct net_addr a = addr(ip, port);

	return policy_check_addr(p, NULL, &a, why, len);
}

static void assert_allowed(const struct policy *p, const char *ip, uint16_t port)
{
	char why[256] = "";

	if (check_ip(p, ip, port, why, sizeof(why)))
		fail_msg("%s port %u: want allowed, got \"%s\"", ip, port, why);
}

/* Checks that ip:port is denied with a reason that starts with want. */
static void assert_denied(const struct policy *p, const char *ip, uint16_t port, const char *want)
{
	char why[256] = "";
	int ret = check_ip(p, ip, port, why, sizeof(why));

	if (ret != -POLICY_EDENIED)
		fail_msg("%s port %u: want denied, got %d", ip, port, ret);
	if (want && strncmp(why, want, strlen(want)))
		fail_msg("%s port %u: got \"%s\", want \"%s...\"", ip, port, why, want);
}

/* ---- targets that parse ---- */

static void test_every_target_form_parses(void **state)
{
	static const char *const ok[] = {
	    "*",
	    "*:443",
	    "*:1000-2000",
	    "*:0-65535",
	    "10.0.0.0/8",
	    "10.1.2.3",
	    "10.1.2.3/32",
	    "0.0.0.0/0",
	    "10.0.0.0/8:22",
	    "192.168.0.0/23:80-81",
	    "::1",
	    "::",
	    "fe80::/10",
	    "2001:db8::/32",
	    "[2001:db8::/32]:443",
	    "[::1]",
	    "[::1]:80-81",
	    "::ffff:10.0.0.0/104",
	    "example.com",
	    "Example.COM.",
	    "*.example.com",
	    "*.example.com:443",
	    "3com.com",
	    "localhost",
	    "a_b.example-1.org",
	};
	struct policy *p = pol_new();
	char why[256];

	for (size_t i = 0; i < NELEM(ok); i++) {
		why[0] = '\0';
		if (policy_add_rule(p, false, ok[i], 0, why, sizeof(why)))
			fail_msg("'%s': %s", ok[i], why);
	}
	policy_free(p);
}

/* ---- targets that do not: one test per mistake ---- */

struct target_err_case {
	const char *name;
	const char *target;
	const char *reason; /* the reason starts with this */
};

static const struct target_err_case target_err_cases[] = {
    {"target empty", "", "empty target"},
    {"prefix over 32", "10.0.0.0/33", "prefix length must be 0 to 32, not '33'"},
    {"prefix over 128", "::/129", "prefix length must be 0 to 128, not '129'"},
    {"prefix empty", "10.0.0.0/", "prefix length must be 0 to 32, not ''"},
    {"prefix not a number", "10.0.0.0/x", "prefix length must be 0 to 32, not 'x'"},
    {"prefix negative", "10.0.0.0/-1", "prefix length must be 0 to 32, not '-1'"},
    {"ipv4 host bits set", "10.1.0.0/8",
     "10.1.0.0/8 has host bits set (the network is 10.0.0.0/8)"},
    {"ipv6 host bits set", "fe80::1/10", "fe80::1/10 has host bits set (the network is fe80::/10)"},
    {"odd prefix host bits", "192.168.1.0/23",
     "192.168.1.0/23 has host bits set (the network is 192.168.0.0/23)"},
    {"port empty", "10.0.0.1:", "port must be a number from 0 to 65535"},
    {"port too big", "10.0.0.1:65536", "port must be a number from 0 to 65535"},
    {"port a name", "example.com:http", "port must be a number from 0 to 65535"},
    {"port range backwards", "*:90-80", "port range 90-80 runs backwards"},
    {"port range open", "*:80-", "port must be a number from 0 to 65535"},
    {"port range too big", "*:80-70000", "port must be a number from 0 to 65535"},
    {"bracket unclosed", "[::1", "'[::1' lacks its closing ']'"},
    {"junk after bracket", "[::1]x", "'[::1]x': only ':PORT' may follow ']'"},
    {"ipv4 in brackets", "[10.0.0.1]:80", "'[10.0.0.1]:80': brackets are for IPv6 addresses only"},
    {"name in brackets", "[example.com]", "'[example.com]': brackets are for IPv6"},
    {"brackets empty", "[]:80", "'[]:80' has no address or name"},
    {"port alone", ":80", "':80' has no address or name"},
    {"bad ipv6", "[fe80::zz]", "'fe80::zz' is not an IP address"},
    {"bad ipv6 network", "fe80::zz/10", "'fe80::zz' is not an IP address"},
    {"five numbers", "1.2.3.4.5", "'1.2.3.4.5' is neither an IP address nor a host name"},
    {"ipv4 out of range", "10.0.0.300", "'10.0.0.300' is neither an IP address nor a host name"},
    {"short ipv4", "127.1", "'127.1' is neither an IP address nor a host name"},
    {"empty label", "a..b", "'a..b' is neither an IP address nor a host name (labels"},
    {"space in name", "exa mple.com", "'exa mple.com' is neither"},
    {"bad character", "exa$mple.com", "'exa$mple.com' is neither"},
    {"label over 63", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
     "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com' is neither"},
    {"suffix empty", "*.", "'*.' is neither"},
    {"star inside a name", "a*.example.com", "'a*.example.com': '*' stands alone"},
    {"star without a dot", "*example.com", "'*example.com': '*' stands alone"},
    {"two stars", "*.*.example.com", "'*.*.example.com': '*' stands alone"},
    {"only dots", "..", "'..' is neither"},
};

static void test_target_error(void **state)
{
	const struct target_err_case *tc = *state;
	struct policy *p = pol_new();
	char why[512] = "";

	assert_int_equal(policy_add_rule(p, true, tc->target, 0, why, sizeof(why)), -EINVAL);
	if (strncmp(why, tc->reason, strlen(tc->reason)))
		fail_msg("%s: got \"%s\", want \"%s...\"", tc->name, why, tc->reason);
	assert_null(strchr(why, '\n'));
	/* A refused rule is not added: everything stays allowed. */
	assert_allowed(p, "192.0.2.1", 80);
	policy_free(p);
}

static void test_target_over_300_characters_is_refused(void **state)
{
	char target[POLICY_TARGET_MAX + 2];
	struct policy *p = pol_new();
	char why[256] = "";

	memset(target, 'a', sizeof(target) - 1);
	target[sizeof(target) - 1] = '\0';
	assert_int_equal(policy_add_rule(p, true, target, 0, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "target is longer than 300 characters");
	policy_free(p);
}

static void test_null_reason_buffer_is_accepted(void **state)
{
	struct policy *p = pol_new();

	assert_int_equal(policy_add_rule(p, true, "10.0.0.0/33", 0, NULL, 0), -EINVAL);
	assert_int_equal(check_ip(p, "127.0.0.1", 1, NULL, 0), -POLICY_EDENIED);
	policy_free(p);
}

/* ---- built-in denies ---- */

static void test_builtins_deny_loopback_link_local_and_this_host(void **state)
{
	struct policy *p = pol_new();

	assert_denied(p, "127.0.0.1", 22,
		      "127.0.0.1:22 denied by built-in 'deny 127.0.0.0/8' (loopback)");
	assert_denied(p, "127.255.255.254", 80,
		      "127.255.255.254:80 denied by built-in 'deny 127.0.0.0/8'");
	assert_denied(p, "::1", 22, "[::1]:22 denied by built-in 'deny ::1' (loopback)");
	assert_denied(p, "169.254.169.254", 80,
		      "169.254.169.254:80 denied by built-in 'deny 169.254.0.0/16' (link-local)");
	assert_denied(p, "fe80::1", 80,
		      "[fe80::1]:80 denied by built-in 'deny fe80::/10' (link-local)");
	assert_denied(p, "febf:ffff::1", 80,
		      "[febf:ffff::1]:80 denied by built-in 'deny fe80::/10'");
	assert_denied(p, "0.0.0.0", 80,
		      "0.0.0.0:80 denied by built-in 'deny 0.0.0.0/8' (this host)");
	assert_denied(p, "0.1.2.3", 80, "0.1.2.3:80 denied by built-in 'deny 0.0.0.0/8'");
	assert_denied(p, "::", 80, "[::]:80 denied by built-in 'deny ::' (this host)");
	policy_free(p);
}

static void test_builtins_leave_everything_else_allowed(void **state)
{
	struct policy *p = pol_new();

	assert_allowed(p, "192.0.2.1", 80);
	assert_allowed(p, "128.0.0.1", 80);
	assert_allowed(p, "126.255.255.255", 80);
	assert_allowed(p, "169.253.255.255", 80);
	assert_allowed(p, "1.0.0.0", 80);
	assert_allowed(p, "::2", 80);
	assert_allowed(p, "fec0::1", 80);
	assert_allowed(p, "2001:db8::1", 80);
	policy_free(p);
}

static void test_ipv4_mapped_loopback_is_denied_as_loopback(void **state)
{
	struct policy *p = pol_new();

	assert_denied(p, "::ffff:127.0.0.1", 22,
		      "127.0.0.1:22 denied by built-in 'deny 127.0.0.0/8' (loopback)");
	assert_denied(p, "::ffff:169.254.169.254", 80, "169.254.169.254:80 denied by built-in");
	assert_denied(p, "::ffff:0.0.0.0", 80, "0.0.0.0:80 denied by built-in");
	assert_allowed(p, "::ffff:192.0.2.1", 80);
	policy_free(p);
}

static void test_allow_everything_does_not_open_the_builtins(void **state)
{
	static const char *const rules[] = {"allow *", "allow 0.0.0.0/0", "allow ::/0",
					    "allow localhost", NULL};
	struct policy *p = pol_of(rules);
	struct net_addr a = addr("127.0.0.1", 80);

	assert_denied(p, "127.0.0.1", 80, "127.0.0.1:80 denied by built-in");
	assert_denied(p, "::1", 80, "[::1]:80 denied by built-in");
	assert_int_equal(policy_check_addr(p, "localhost", &a, NULL, 0), -POLICY_EDENIED);
	assert_allowed(p, "192.0.2.1", 80);
	policy_free(p);
}

static void test_allow_naming_a_builtin_address_overrides_it(void **state)
{
	static const char *const rules[] = {"allow 127.0.0.1:5432", "allow [::1]:8080",
					    "allow 169.254.169.254/32", NULL};
	struct policy *p = pol_of(rules);

	assert_allowed(p, "127.0.0.1", 5432);
	assert_allowed(p, "::ffff:127.0.0.1", 5432);
	assert_denied(p, "127.0.0.1", 22, "127.0.0.1:22 denied by built-in");
	assert_denied(p, "127.0.0.2", 5432, "127.0.0.2:5432 denied by built-in");
	assert_allowed(p, "::1", 8080);
	assert_denied(p, "::1", 8081, "[::1]:8081 denied by built-in");
	assert_allowed(p, "169.254.169.254", 80);
	policy_free(p);
}

static void test_override_through_an_ipv4_mapped_rule(void **state)
{
	static const char *const rules[] = {"allow ::ffff:127.0.0.1", NULL};
	struct policy *p = pol_of(rules);

	assert_allowed(p, "127.0.0.1", 22);
	assert_denied(p, "127.0.0.2", 22, "127.0.0.2:22 denied by built-in");
	policy_free(p);
}

static void test_a_deny_before_an_override_still_denies(void **state)
{
	static const char *const rules[] = {"deny *", "allow 127.0.0.1", NULL};
	struct policy *p = pol_of(rules);

	assert_denied(p, "127.0.0.1", 80, "127.0.0.1:80 denied by 'deny *'");
	policy_free(p);
}

static void test_a_wider_network_does_not_override(void **state)
{
	static const char *const rules[] = {"allow 126.0.0.0/7", "allow fe80::/9", NULL};
	struct policy *p = pol_of(rules);

	assert_denied(p, "127.0.0.1", 80, "127.0.0.1:80 denied by built-in");
	assert_denied(p, "fe80::1", 80, "[fe80::1]:80 denied by built-in");
	assert_allowed(p, "126.0.0.1", 80);
	policy_free(p);
}

static void test_host_address_is_denied_unless_named(void **state)
{
	struct policy *p = pol_new();
	struct net_addr host = addr("192.0.2.10", 0), mapped = addr("::ffff:198.51.100.7", 0);
	struct net_addr none;

	memset(&none, 0, sizeof(none));
	assert_int_equal(policy_add_host_addr(p, &host), 0);
	assert_int_equal(policy_add_host_addr(p, &mapped), 0);
	assert_int_equal(policy_add_host_addr(p, &none), -EINVAL);
	assert_denied(p, "192.0.2.10", 22,
		      "192.0.2.10:22 denied by built-in 'deny 192.0.2.10' (host address)");
	assert_denied(p, "198.51.100.7", 22,
		      "198.51.100.7:22 denied by built-in 'deny 198.51.100.7'");
	assert_allowed(p, "192.0.2.11", 22);
	pol_add(p, "allow 192.0.2.10:80");
	assert_allowed(p, "192.0.2.10", 80);
	assert_denied(p, "192.0.2.10", 22, "192.0.2.10:22 denied by built-in");
	policy_free(p);
}

/* ---- defaults ---- */

static void test_default_deny_names_the_default_or_the_builtin(void **state)
{
	struct policy *p = pol_new();

	policy_set_default(p, true);
	assert_denied(p, "192.0.2.1", 80, "192.0.2.1:80 denied by 'default = deny'");
	assert_denied(p, "127.0.0.1", 80, "127.0.0.1:80 denied by built-in 'deny 127.0.0.0/8'");
	policy_free(p);
}

static void test_default_deny_with_allow_rules(void **state)
{
	static const char *const rules[] = {"allow 192.0.2.0/24:443", NULL};
	struct policy *p = pol_of(rules);

	policy_set_default(p, true);
	assert_allowed(p, "192.0.2.99", 443);
	assert_denied(p, "192.0.2.99", 80, "192.0.2.99:80 denied by 'default = deny'");
	assert_denied(p, "198.51.100.1", 443, "198.51.100.1:443 denied by 'default = deny'");
	policy_free(p);
}

/* ---- addresses and networks ---- */

static void test_ipv4_networks_match_by_prefix(void **state)
{
	static const char *const rules[] = {"deny 10.0.0.0/8", "deny 192.168.0.0/23",
					    "deny 203.0.113.7", NULL};
	struct policy *p = pol_of(rules);

	assert_denied(p, "10.0.0.0", 80, "10.0.0.0:80 denied by 'deny 10.0.0.0/8'");
	assert_denied(p, "10.255.255.255", 80, NULL);
	assert_allowed(p, "11.0.0.0", 80);
	assert_allowed(p, "9.255.255.255", 80);
	assert_denied(p, "192.168.1.255", 80, "192.168.1.255:80 denied by 'deny 192.168.0.0/23'");
	assert_allowed(p, "192.168.2.0", 80);
	assert_denied(p, "203.0.113.7", 80, NULL);
	assert_allowed(p, "203.0.113.8", 80);
	policy_free(p);
}

static void test_ipv6_networks_match_by_prefix(void **state)
{
	static const char *const rules[] = {"deny 2001:db8::/32", "deny 2001:db9::/127", NULL};
	struct policy *p = pol_of(rules);

	assert_denied(p, "2001:db8:ffff:ffff::1", 80,
		      "[2001:db8:ffff:ffff::1]:80 denied by 'deny 2001:db8::/32'");
	assert_allowed(p, "2001:db7:ffff::1", 80);
	assert_denied(p, "2001:db9::1", 80, NULL);
	assert_allowed(p, "2001:db9::2", 80);
	policy_free(p);
}

static void test_families_do_not_cross_except_mapped(void **state)
{
	static const char *const rules[] = {"deny 0.0.0.0/0", NULL};
	struct policy *p = pol_of(rules);

	assert_allowed(p, "2001:db8::1", 80);
	assert_denied(p, "::ffff:192.0.2.1", 80, "192.0.2.1:80 denied by 'deny 0.0.0.0/0'");
	policy_free(p);
	static const char *const v6[] = {"deny ::/0", NULL};
	p = pol_of(v6);
	assert_allowed(p, "192.0.2.1", 80);
	assert_allowed(p, "::ffff:192.0.2.1", 80);
	assert_denied(p, "2001:db8::1", 80, NULL);
	policy_free(p);
}

static void test_mapped_ipv6_rule_matches_ipv4_addresses(void **state)
{
	static const char *const rules[] = {"deny ::ffff:10.0.0.0/104", NULL};
	struct policy *p = pol_of(rules);

	assert_denied(p, "10.1.2.3", 80, "10.1.2.3:80 denied by 'deny ::ffff:10.0.0.0/104'");
	assert_denied(p, "::ffff:10.1.2.3", 80, NULL);
	assert_allowed(p, "11.1.2.3", 80);
	policy_free(p);
}

/* ---- ports ---- */

static void test_ports_and_ranges(void **state)
{
	static const char *const rules[] = {"deny *:25", "allow 192.0.2.0/24:80-443",
					    "allow [2001:db8::/32]:22", NULL};
	struct policy *p = pol_of(rules);

	policy_set_default(p, true);
	assert_denied(p, "198.51.100.1", 25, "198.51.100.1:25 denied by 'deny *:25'");
	assert_denied(p, "192.0.2.1", 79, "192.0.2.1:79 denied by 'default = deny'");
	assert_allowed(p, "192.0.2.1", 80);
	assert_allowed(p, "192.0.2.1", 443);
	assert_denied(p, "192.0.2.1", 444, NULL);
	assert_allowed(p, "2001:db8::5", 22);
	assert_denied(p, "2001:db8::5", 23, NULL);
	policy_free(p);
}

static void test_port_zero_and_65535_are_in_range(void **state)
{
	static const char *const rules[] = {"deny *:0", "deny *:65535", NULL};
	struct policy *p = pol_of(rules);

	assert_denied(p, "192.0.2.1", 0, NULL);
	assert_denied(p, "192.0.2.1", 65535, NULL);
	assert_allowed(p, "192.0.2.1", 1);
	policy_free(p);
}

/* ---- order ---- */

static void test_first_match_wins(void **state)
{
	static const char *const narrow_first[] = {"allow 10.1.0.0/16", "deny 10.0.0.0/8", NULL};
	static const char *const wide_first[] = {"deny 10.0.0.0/8", "allow 10.1.0.0/16", NULL};
	struct policy *p = pol_of(narrow_first);

	assert_allowed(p, "10.1.2.3", 80);
	assert_denied(p, "10.2.0.1", 80, "10.2.0.1:80 denied by 'deny 10.0.0.0/8'");
	policy_free(p);
	p = pol_of(wide_first);
	assert_denied(p, "10.1.2.3", 80, "10.1.2.3:80 denied by 'deny 10.0.0.0/8'");
	policy_free(p);
}

static void test_reason_names_the_line(void **state)
{
	struct policy *p = pol_new();
	char why[256] = "";

	assert_int_equal(policy_add_rule(p, true, "*.evil.example", 7, why, sizeof(why)), 0);
	assert_int_equal(policy_check_name(p, "www.evil.example", 443, why, sizeof(why)),
			 -POLICY_EDENIED);
	assert_string_equal(why, "www.evil.example:443 denied by 'deny *.evil.example' (line 7)");
	policy_free(p);
}

/* ---- names ---- */

static int check_name(const struct policy *p, const char *name, uint16_t port)
{
	return policy_check_name(p, name, port, NULL, 0);
}

static void test_names_match_case_insensitively_with_a_final_dot(void **state)
{
	static const char *const rules[] = {"deny Example.COM.", NULL};
	struct policy *p = pol_of(rules);
	char why[256];

	assert_int_equal(policy_check_name(p, "EXAMPLE.com.", 80, why, sizeof(why)),
			 -POLICY_EDENIED);
	assert_string_equal(why, "example.com:80 denied by 'deny Example.COM.'");
	assert_int_equal(check_name(p, "example.com", 80), -POLICY_EDENIED);
	assert_int_equal(check_name(p, "www.example.com", 80), 0);
	assert_int_equal(check_name(p, "example.co", 80), 0);
	assert_int_equal(check_name(p, "example.com.au", 80), 0);
	policy_free(p);
}

static void test_suffix_pattern_matches_names_below_only(void **state)
{
	static const char *const rules[] = {"deny *.Example.com", NULL};
	struct policy *p = pol_of(rules);

	assert_int_equal(check_name(p, "a.example.com", 80), -POLICY_EDENIED);
	assert_int_equal(check_name(p, "A.B.EXAMPLE.COM.", 80), -POLICY_EDENIED);
	assert_int_equal(check_name(p, "example.com", 80), 0);
	assert_int_equal(check_name(p, "badexample.com", 80), 0);
	assert_int_equal(check_name(p, "example.com.evil", 80), 0);
	policy_free(p);
}

static void test_name_rules_honour_ports(void **state)
{
	static const char *const rules[] = {"deny *.example.com:25", "deny example.org:1-1023",
					    NULL};
	struct policy *p = pol_of(rules);

	assert_int_equal(check_name(p, "mail.example.com", 25), -POLICY_EDENIED);
	assert_int_equal(check_name(p, "mail.example.com", 587), 0);
	assert_int_equal(check_name(p, "example.org", 1023), -POLICY_EDENIED);
	assert_int_equal(check_name(p, "example.org", 1024), 0);
	policy_free(p);
}

static void test_denied_name_is_refused_before_resolving(void **state)
{
	static const char *const rules[] = {"deny 10.0.0.0/8", "deny *.evil.example", NULL};
	struct policy *p = pol_of(rules);
	char why[256];

	/* An address deny cannot allow anything: it does not stop the name check. */
	assert_int_equal(policy_check_name(p, "x.evil.example", 80, why, sizeof(why)),
			 -POLICY_EDENIED);
	assert_string_equal(why, "x.evil.example:80 denied by 'deny *.evil.example'");
	policy_free(p);
}

static void test_allowed_name_lets_its_addresses_pass(void **state)
{
	static const char *const rules[] = {"allow *.corp.example", "deny *", NULL};
	struct policy *p = pol_of(rules);
	struct net_addr a = addr("10.1.1.1", 443);
	char why[256];

	assert_int_equal(check_name(p, "git.corp.example", 443), 0);
	assert_int_equal(policy_check_addr(p, "git.corp.example", &a, why, sizeof(why)), 0);
	/* The same address given by the guest without the name meets "deny *". */
	assert_int_equal(policy_check_addr(p, NULL, &a, why, sizeof(why)), -POLICY_EDENIED);
	assert_string_equal(why, "10.1.1.1:443 denied by 'deny *'");
	/* Other names are refused without being resolved. */
	assert_int_equal(policy_check_name(p, "other.example", 443, why, sizeof(why)),
			 -POLICY_EDENIED);
	assert_string_equal(why, "other.example:443 denied by 'deny *'");
	policy_free(p);
}

static void test_allowed_name_resolving_to_loopback_is_denied(void **state)
{
	static const char *const rules[] = {"allow *.corp.example", NULL};
	struct policy *p = pol_of(rules);
	struct net_addr lo = addr("127.0.0.1", 80), mapped = addr("::ffff:127.0.0.1", 80);
	char why[256];

	assert_int_equal(check_name(p, "rebind.corp.example", 80), 0);
	assert_int_equal(policy_check_addr(p, "rebind.corp.example", &lo, why, sizeof(why)),
			 -POLICY_EDENIED);
	assert_string_equal(why, "127.0.0.1:80 denied by built-in 'deny 127.0.0.0/8' (loopback)");
	assert_int_equal(policy_check_addr(p, "rebind.corp.example", &mapped, NULL, 0),
			 -POLICY_EDENIED);
	policy_free(p);
}

static void test_address_allow_before_a_deny_lets_names_resolve(void **state)
{
	static const char *const rules[] = {"allow 10.0.0.0/8", "deny *", NULL};
	struct policy *p = pol_of(rules);
	struct net_addr in = addr("10.1.2.3", 80), out = addr("192.0.2.1", 80);
	char why[256];

	assert_int_equal(check_name(p, "intranet.example", 80), 0);
	assert_int_equal(policy_check_addr(p, "intranet.example", &in, NULL, 0), 0);
	assert_int_equal(policy_check_addr(p, "intranet.example", &out, why, sizeof(why)),
			 -POLICY_EDENIED);
	assert_string_equal(why, "192.0.2.1:80 denied by 'deny *'");
	/* An address rule for another port does not help the name. */
	assert_int_equal(check_name(p, "intranet.example", 80), 0);
	policy_free(p);
	static const char *const other_port[] = {"allow 10.0.0.0/8:22", "deny *", NULL};
	p = pol_of(other_port);
	assert_int_equal(check_name(p, "intranet.example", 80), -POLICY_EDENIED);
	assert_int_equal(check_name(p, "intranet.example", 22), 0);
	policy_free(p);
}

static void test_default_deny_refuses_names_at_once(void **state)
{
	struct policy *p = pol_new();
	char why[256];

	policy_set_default(p, true);
	assert_int_equal(policy_check_name(p, "example.com", 80, why, sizeof(why)),
			 -POLICY_EDENIED);
	assert_string_equal(why, "example.com:80 denied by 'default = deny'");
	policy_free(p);
}

static void test_name_check_of_an_ip_literal_checks_the_address(void **state)
{
	struct policy *p = pol_new();
	char why[256];

	assert_int_equal(policy_check_name(p, "127.0.0.1", 22, why, sizeof(why)), -POLICY_EDENIED);
	assert_string_equal(why, "127.0.0.1:22 denied by built-in 'deny 127.0.0.0/8' (loopback)");
	assert_int_equal(check_name(p, "[::1]", 22), -POLICY_EDENIED);
	assert_int_equal(check_name(p, "::ffff:127.0.0.1", 22), -POLICY_EDENIED);
	assert_int_equal(check_name(p, "192.0.2.1", 22), 0);
	policy_free(p);
}

static void test_names_that_are_not_host_names_are_einval(void **state)
{
	static const char *const bad[] = {
	    "",
	    ".",
	    "a..b",
	    "a b",
	    "-\x01",
	    "127.1",
	    "1.2.3.4.5",
	    "x.123",
	    "a/b",
	    "a:b",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.com",
	};
	char long_name[300];
	struct policy *p = pol_new();
	char why[256];

	for (size_t i = 0; i < NELEM(bad); i++) {
		why[0] = '\0';
		if (policy_check_name(p, bad[i], 80, why, sizeof(why)) != -EINVAL)
			fail_msg("'%s' was taken for a host name", bad[i]);
		assert_null(strchr(why, '\x01'));
	}
	for (size_t i = 0; i < sizeof(long_name) - 1; i++)
		long_name[i] = i % 2 ? '.' : 'a';
	long_name[sizeof(long_name) - 1] = '\0';
	assert_int_equal(check_name(p, long_name, 80), -EINVAL);
	/* 253 characters are fine. */
	long_name[253] = '\0';
	assert_int_equal(check_name(p, long_name, 80), 0);
	policy_free(p);
}

static void test_bad_name_with_an_address_matches_no_name_rule(void **state)
{
	static const char *const rules[] = {"allow *.example.com", "deny *", NULL};
	struct policy *p = pol_of(rules);
	struct net_addr a = addr("192.0.2.1", 80);

	assert_int_equal(policy_check_addr(p, "x..example.com", &a, NULL, 0), -POLICY_EDENIED);
	assert_int_equal(policy_check_addr(p, "x.example.com", &a, NULL, 0), 0);
	policy_free(p);
}

/* ---- from the configuration ---- */

static void test_policy_from_config_keeps_order_and_default(void **state)
{
	static const char text[] = "[egress]\n"
				   "allow 192.0.2.0/24:443\n"
				   "deny 192.0.2.0/24\n"
				   "allow 127.0.0.1:5432\n"
				   "default = deny\n";
	struct config c;
	struct policy *p;
	char why[256] = "";

	assert_int_equal(config_parse(text, strlen(text), &c, why, sizeof(why)), 0);
	if (policy_from_config(&c, &p, why, sizeof(why)))
		fail_msg("policy_from_config: %s", why);
	assert_allowed(p, "192.0.2.1", 443);
	assert_denied(p, "192.0.2.1", 80, "192.0.2.1:80 denied by 'deny 192.0.2.0/24' (line 3)");
	assert_allowed(p, "127.0.0.1", 5432);
	assert_denied(p, "198.51.100.1", 443, "198.51.100.1:443 denied by 'default = deny'");
	policy_free(p);
	config_free(&c);
}

static void test_policy_from_config_reports_the_line(void **state)
{
	static const char text[] = "# egress\n[egress]\nallow *:443\n\ndeny 10.1.0.0/8\n";
	struct config c;
	struct policy *p = NULL;
	char why[256] = "";

	assert_int_equal(config_parse(text, strlen(text), &c, why, sizeof(why)), 0);
	assert_int_equal(policy_from_config(&c, &p, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "line 5: deny 10.1.0.0/8: 10.1.0.0/8 has host bits set (the "
				 "network is 10.0.0.0/8)");
	assert_null(p);
	config_free(&c);
}

/* ---- limits ---- */

static void test_concurrency_limit_counts_open_connections(void **state)
{
	struct policy_limits cfg = {.max_conns = 2};
	struct policy_limit l;

	policy_limit_init(&l, &cfg, 0);
	assert_int_equal(policy_limit_acquire(&l, 0), 0);
	assert_int_equal(policy_limit_acquire(&l, 0), 0);
	assert_int_equal(policy_limit_acquire(&l, 0), -EMFILE);
	policy_limit_release(&l);
	assert_int_equal(policy_limit_acquire(&l, 0), 0);
	assert_int_equal(policy_limit_acquire(&l, 0), -EMFILE);
	assert_int_equal(l.active, 2);
}

static void test_rate_limit_allows_the_burst_then_the_rate(void **state)
{
	struct policy_limits cfg = {.rate = 100, .burst = 200};
	struct policy_limit l;
	uint64_t t = 5 * SEC;

	policy_limit_init(&l, &cfg, t);
	for (int i = 0; i < 200; i++)
		assert_int_equal(policy_limit_acquire(&l, t), 0);
	assert_int_equal(policy_limit_acquire(&l, t), -EAGAIN);
	/* 100 per second: one more every 10 ms. */
	assert_int_equal(policy_limit_acquire(&l, t + 9 * MS), -EAGAIN);
	assert_int_equal(policy_limit_acquire(&l, t + 10 * MS), 0);
	assert_int_equal(policy_limit_acquire(&l, t + 10 * MS), -EAGAIN);
	/* After 30 ms more, three. */
	t += 40 * MS;
	for (int i = 0; i < 3; i++)
		assert_int_equal(policy_limit_acquire(&l, t), 0);
	assert_int_equal(policy_limit_acquire(&l, t), -EAGAIN);
	/* A long pause refills up to the burst, no further. */
	t += 3600 * SEC;
	for (int i = 0; i < 200; i++)
		assert_int_equal(policy_limit_acquire(&l, t), 0);
	assert_int_equal(policy_limit_acquire(&l, t), -EAGAIN);
}

static void test_rate_limit_survives_huge_gaps_and_a_clock_going_back(void **state)
{
	struct policy_limits cfg = {.rate = 1000000, .burst = 2000000};
	struct policy_limit l;

	policy_limit_init(&l, &cfg, 1000 * SEC);
	assert_int_equal(policy_limit_acquire(&l, 1000 * SEC), 0);
	/* Backwards: nothing is earned, nothing breaks. */
	assert_int_equal(policy_limit_acquire(&l, 1 * SEC), 0);
	/* Years later: the bucket is full, not overflowed. */
	assert_int_equal(policy_limit_acquire(&l, UINT64_MAX - 1), 0);
	assert_true(l.tokens <= 2000000ull * SEC);
}

static void test_refusal_by_concurrency_spends_no_token(void **state)
{
	struct policy_limits cfg = {.max_conns = 1, .rate = 1, .burst = 2};
	struct policy_limit l;

	policy_limit_init(&l, &cfg, 0);
	assert_int_equal(policy_limit_acquire(&l, 0), 0);
	for (int i = 0; i < 10; i++)
		assert_int_equal(policy_limit_acquire(&l, 0), -EMFILE);
	policy_limit_release(&l);
	assert_int_equal(policy_limit_acquire(&l, 0), 0); /* the second token is still there */
	policy_limit_release(&l);
	assert_int_equal(policy_limit_acquire(&l, 0), -EAGAIN);
}

static void test_zero_limits_mean_no_limit(void **state)
{
	struct policy_limits cfg = {0};
	struct policy_limit l;

	policy_limit_init(&l, &cfg, 0);
	for (int i = 0; i < 100000; i++)
		assert_int_equal(policy_limit_acquire(&l, 0), 0);
	policy_limit_release(&l);
	assert_int_equal(l.active, 99999);
}

static void test_release_without_acquire_does_not_underflow(void **state)
{
	struct policy_limits cfg = {.max_conns = 1};
	struct policy_limit l;

	policy_limit_init(&l, &cfg, 0);
	policy_limit_release(&l);
	assert_int_equal(l.active, 0);
	assert_int_equal(policy_limit_acquire(&l, 0), 0);
	assert_int_equal(policy_limit_acquire(&l, 0), -EMFILE);
}

static void test_limits_come_from_the_vm_config(void **state)
{
	static const char text[] = "[proxy]\nmax-connections = 10\nconnect-rate = 5\n"
				   "[vm a]\nuri = vsock://3\nconnect-rate = 100/s burst 150\n";
	struct policy_limits lim;
	struct config c;
	char why[256] = "";

	assert_int_equal(config_parse(text, strlen(text), &c, why, sizeof(why)), 0);
	policy_limits_from_config(&c.vms[0], &lim);
	assert_int_equal(lim.max_conns, 10);
	assert_int_equal(lim.rate, 100);
	assert_int_equal(lim.burst, 150);
	config_free(&c);
}

int main(void)
{
	const struct CMUnitTest fixed[] = {
	    cmocka_unit_test(test_every_target_form_parses),
	    cmocka_unit_test(test_target_over_300_characters_is_refused),
	    cmocka_unit_test(test_null_reason_buffer_is_accepted),
	    cmocka_unit_test(test_builtins_deny_loopback_link_local_and_this_host),
	    cmocka_unit_test(test_builtins_leave_everything_else_allowed),
	    cmocka_unit_test(test_ipv4_mapped_loopback_is_denied_as_loopback),
	    cmocka_unit_test(test_allow_everything_does_not_open_the_builtins),
	    cmocka_unit_test(test_allow_naming_a_builtin_address_overrides_it),
	    cmocka_unit_test(test_override_through_an_ipv4_mapped_rule),
	    cmocka_unit_test(test_a_deny_before_an_override_still_denies),
	    cmocka_unit_test(test_a_wider_network_does_not_override),
	    cmocka_unit_test(test_host_address_is_denied_unless_named),
	    cmocka_unit_test(test_default_deny_names_the_default_or_the_builtin),
	    cmocka_unit_test(test_default_deny_with_allow_rules),
	    cmocka_unit_test(test_ipv4_networks_match_by_prefix),
	    cmocka_unit_test(test_ipv6_networks_match_by_prefix),
	    cmocka_unit_test(test_families_do_not_cross_except_mapped),
	    cmocka_unit_test(test_mapped_ipv6_rule_matches_ipv4_addresses),
	    cmocka_unit_test(test_ports_and_ranges),
	    cmocka_unit_test(test_port_zero_and_65535_are_in_range),
	    cmocka_unit_test(test_first_match_wins),
	    cmocka_unit_test(test_reason_names_the_line),
	    cmocka_unit_test(test_names_match_case_insensitively_with_a_final_dot),
	    cmocka_unit_test(test_suffix_pattern_matches_names_below_only),
	    cmocka_unit_test(test_name_rules_honour_ports),
	    cmocka_unit_test(test_denied_name_is_refused_before_resolving),
	    cmocka_unit_test(test_allowed_name_lets_its_addresses_pass),
	    cmocka_unit_test(test_allowed_name_resolving_to_loopback_is_denied),
	    cmocka_unit_test(test_address_allow_before_a_deny_lets_names_resolve),
	    cmocka_unit_test(test_default_deny_refuses_names_at_once),
	    cmocka_unit_test(test_name_check_of_an_ip_literal_checks_the_address),
	    cmocka_unit_test(test_names_that_are_not_host_names_are_einval),
	    cmocka_unit_test(test_bad_name_with_an_address_matches_no_name_rule),
	    cmocka_unit_test(test_policy_from_config_keeps_order_and_default),
	    cmocka_unit_test(test_policy_from_config_reports_the_line),
	    cmocka_unit_test(test_concurrency_limit_counts_open_connections),
	    cmocka_unit_test(test_rate_limit_allows_the_burst_then_the_rate),
	    cmocka_unit_test(test_rate_limit_survives_huge_gaps_and_a_clock_going_back),
	    cmocka_unit_test(test_refusal_by_concurrency_spends_no_token),
	    cmocka_unit_test(test_zero_limits_mean_no_limit),
	    cmocka_unit_test(test_release_without_acquire_does_not_underflow),
	    cmocka_unit_test(test_limits_come_from_the_vm_config),
	};
	struct CMUnitTest tests[NELEM(fixed) + NELEM(target_err_cases)];
	size_t n = 0;

	for (size_t i = 0; i < NELEM(fixed); i++)
		tests[n++] = fixed[i];
	/* One test per malformed target, named for the mistake. */
	for (size_t i = 0; i < NELEM(target_err_cases); i++) {
		tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(
		    test_target_error, (void *)&target_err_cases[i]);
		tests[n++].name = target_err_cases[i].name;
	}
	return cmocka_run_group_tests_name("policy", tests, NULL, NULL);
}
