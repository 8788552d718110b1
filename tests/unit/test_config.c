/* Unit tests for the daemon's configuration file parser and --vm NAME=URI. */
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

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char config_example[] = "# comment\n"
				     "[daemon]\n"
				     "control = unix:///run/vmbusify/control.sock\n"
				     "threads = 2\n"
				     "log-level = info\n"
				     "backend = auto          # auto | uring | epoll\n"
				     "[vm lab1]\n"
				     "uri = unix:///run/vmbusify/lab/lab1.sock\n"
				     "[vm web-7]\n"
				     "uri = vsock://7\n";

/* Parses a NUL-terminated text, failing the test on an error. */
static void parse_ok(const char *text, struct config *c)
{
	char why[256] = "";
	int ret = config_parse(text, strlen(text), c, why, sizeof(why));

	if (ret)
		fail_msg("config_parse: %d: %s", ret, why);
}

static void test_example_file_parses(void **state)
{
	struct config c;

	parse_ok(config_example, &c);
	assert_string_equal(c.control, "unix:///run/vmbusify/control.sock");
	assert_int_equal(c.threads, 2);
	assert_string_equal(c.log_level, "info");
	assert_string_equal(c.backend, "auto");
	assert_int_equal(c.nvms, 2);
	assert_string_equal(c.vms[0].name, "lab1");
	assert_string_equal(c.vms[0].uri, "unix:///run/vmbusify/lab/lab1.sock");
	assert_string_equal(c.vms[1].name, "web-7");
	assert_string_equal(c.vms[1].uri, "vsock://7");
	config_free(&c);
	assert_null(c.vms);
	assert_int_equal(c.nvms, 0);
}

static void assert_defaults(const struct config *c)
{
	assert_string_equal(c->control, CONFIG_DEFAULT_CONTROL);
	assert_string_equal(c->state_dir, CONFIG_DEFAULT_STATE_DIR);
	assert_int_equal(c->threads, CONFIG_THREADS_AUTO);
	assert_string_equal(c->log_level, "info");
	assert_string_equal(c->backend, "auto");
	assert_int_equal(c->nvms, 0);
	assert_null(c->vms);
	assert_int_equal(c->proxy.max_connections, 1024);
	assert_int_equal(c->proxy.connect_rate, 200);
	assert_int_equal(c->proxy.connect_burst, 400);
	assert_int_equal(c->negress, 0);
	assert_null(c->egress);
	assert_false(c->egress_default_deny);
}

static void test_empty_file_gives_defaults(void **state)
{
	struct config c;
	char why[128];

	assert_int_equal(config_parse(NULL, 0, &c, why, sizeof(why)), 0);
	assert_defaults(&c);
	config_free(&c);
}

static void test_state_dir_takes_an_absolute_path_or_none(void **state)
{
	const char *bad[] = {"state-dir = var/lib\n", "state-dir = \n", "state-dir = ./x\n"};
	struct config c;
	char text[64], why[256];

	parse_ok("[daemon]\nstate-dir = /srv/vmbusify\n", &c);
	assert_string_equal(c.state_dir, "/srv/vmbusify");
	config_free(&c);
	parse_ok("[daemon]\nstate-dir = none\n", &c);
	assert_string_equal(c.state_dir, "");
	config_free(&c);
	for (size_t i = 0; i < NELEM(bad); i++) {
		snprintf(text, sizeof(text), "[daemon]\n%s", bad[i]);
		assert_int_equal(config_parse(text, strlen(text), &c, why, sizeof(why)), -EINVAL);
		assert_non_null(strstr(why, "state-dir"));
	}
}

static void test_comments_and_blank_lines_give_defaults(void **state)
{
	struct config c;

	parse_ok("# nothing here\n\n   \t\n  # indented comment\r\n", &c);
	assert_defaults(&c);
	config_free(&c);
}

static void test_crlf_line_endings_are_accepted(void **state)
{
	struct config c;

	parse_ok("[daemon]\r\nthreads = 3\r\nbackend = epoll\r\n[vm a]\r\nuri = vsock://3\r\n", &c);
	assert_int_equal(c.threads, 3);
	assert_string_equal(c.backend, "epoll");
	assert_int_equal(c.nvms, 1);
	assert_string_equal(c.vms[0].uri, "vsock://3");
	config_free(&c);
}

static void test_whitespace_around_names_keys_and_values_is_ignored(void **state)
{
	struct config c;

	parse_ok("  [ daemon ]  \n"
		 "\tthreads\t=\t7\t\n"
		 "log-level=debug\n"
		 "[ vm \t lab_2.x ]\t# the second lab VM\n"
		 "   uri   =   vsock://9:1024   \n",
		 &c);
	assert_int_equal(c.threads, 7);
	assert_string_equal(c.log_level, "debug");
	assert_int_equal(c.nvms, 1);
	assert_string_equal(c.vms[0].name, "lab_2.x");
	assert_string_equal(c.vms[0].uri, "vsock://9:1024");
	config_free(&c);
}

static void test_hash_inside_a_value_is_not_a_comment(void **state)
{
	struct config c;

	parse_ok("[vm a]\nuri = unix:///run/a#1.sock # but this is\n", &c);
	assert_string_equal(c.vms[0].uri, "unix:///run/a#1.sock");
	config_free(&c);
}

static void test_last_line_needs_no_newline(void **state)
{
	struct config c;

	parse_ok("[daemon]\nthreads = 256", &c);
	assert_int_equal(c.threads, 256);
	config_free(&c);
}

static void test_utf8_byte_order_mark_is_skipped(void **state)
{
	struct config c;

	parse_ok("\xef\xbb\xbf[daemon]\nthreads = 1\n", &c);
	assert_int_equal(c.threads, 1);
	config_free(&c);
}

static void test_line_of_1023_characters_is_accepted(void **state)
{
	char text[2048];
	struct config c;
	int n = snprintf(text, sizeof(text), "[daemon]\n#");

	memset(text + n, 'x', CONFIG_LINE_MAX - 1);
	snprintf(text + n + CONFIG_LINE_MAX - 1, 16, "\r\nthreads = 4\n");
	parse_ok(text, &c);
	assert_int_equal(c.threads, 4);
	config_free(&c);
}

static void test_vm_name_of_63_characters_is_accepted(void **state)
{
	char text[256], name[64];
	struct config c;

	memset(name, 'n', 63);
	name[63] = '\0';
	snprintf(text, sizeof(text), "[vm %s]\nuri = vsock://5\n", name);
	parse_ok(text, &c);
	assert_string_equal(c.vms[0].name, name);
	config_free(&c);
}

/* ---- [proxy], per-VM limits and [egress] ---- */

static void test_vm_limits_default_to_1024_and_200_per_second(void **state)
{
	struct config c;

	parse_ok("[vm a]\nuri = vsock://3\n", &c);
	assert_int_equal(c.vms[0].limits.max_connections, 1024);
	assert_int_equal(c.vms[0].limits.connect_rate, 200);
	assert_int_equal(c.vms[0].limits.connect_burst, 400);
	config_free(&c);
}

static void test_vm_takes_proxy_limits_even_from_a_later_section(void **state)
{
	struct config c;

	parse_ok("[vm a]\nuri = vsock://3\n"
		 "[vm b]\nuri = vsock://4\nmax-connections = 7\n"
		 "[proxy]\nmax-connections = 50\nconnect-rate = 10/s burst 15\n",
		 &c);
	assert_int_equal(c.proxy.max_connections, 50);
	assert_int_equal(c.vms[0].limits.max_connections, 50);
	assert_int_equal(c.vms[0].limits.connect_rate, 10);
	assert_int_equal(c.vms[0].limits.connect_burst, 15);
	assert_int_equal(c.vms[1].limits.max_connections, 7);
	assert_int_equal(c.vms[1].limits.connect_rate, 10);
	config_free(&c);
}

static void test_connect_rate_forms(void **state)
{
	static const struct {
		const char *val;
		unsigned rate, burst;
	} forms[] = {
	    {"100", 100, 200},
	    {"100/s", 100, 200},
	    {"100 burst 5", 100, 5},
	    {"100/s burst 200", 100, 200},
	    {"100/s \t burst\t 7", 100, 7},
	    {"1", 1, 2},
	    {"1000000 burst 2000000", 1000000, 2000000},
	};
	char text[128];
	struct config c;

	for (size_t i = 0; i < NELEM(forms); i++) {
		snprintf(text, sizeof(text), "[proxy]\nconnect-rate = %s\n", forms[i].val);
		parse_ok(text, &c);
		assert_int_equal(c.proxy.connect_rate, forms[i].rate);
		assert_int_equal(c.proxy.connect_burst, forms[i].burst);
		config_free(&c);
	}
}

static void test_vm_connect_rate_without_burst_takes_twice_its_rate(void **state)
{
	struct config c;

	parse_ok(
	    "[proxy]\nconnect-rate = 10 burst 11\n[vm a]\nuri = vsock://3\nconnect-rate = 30\n",
	    &c);
	assert_int_equal(c.vms[0].limits.connect_rate, 30);
	assert_int_equal(c.vms[0].limits.connect_burst, 60);
	config_free(&c);
}

static void test_add_vm_takes_the_proxy_limits(void **state)
{
	struct config c;
	char why[256];

	parse_ok("[proxy]\nmax-connections = 3\n", &c);
	assert_int_equal(config_add_vm(&c, "x", "vsock://5", why, sizeof(why)), 0);
	assert_int_equal(c.vms[0].limits.max_connections, 3);
	assert_int_equal(c.vms[0].limits.connect_rate, 200);
	config_free(&c);
}

static void test_egress_rules_keep_their_order_and_lines(void **state)
{
	struct config c;

	parse_ok("[daemon]\n"
		 "[egress]\n"
		 "allow 10.0.0.0/8:443   # the office\n"
		 "\tdeny\t*.Example.com\t\n"
		 "\n"
		 "default = deny\n"
		 "allow [2001:db8::/32]:22\n"
		 "deny *\n",
		 &c);
	assert_int_equal(c.negress, 4);
	assert_false(c.egress[0].deny);
	assert_string_equal(c.egress[0].target, "10.0.0.0/8:443");
	assert_int_equal(c.egress[0].line, 3);
	assert_true(c.egress[1].deny);
	assert_string_equal(c.egress[1].target, "*.Example.com");
	assert_int_equal(c.egress[1].line, 4);
	assert_string_equal(c.egress[2].target, "[2001:db8::/32]:22");
	assert_int_equal(c.egress[2].line, 7);
	assert_string_equal(c.egress[3].target, "*");
	assert_true(c.egress_default_deny);
	config_free(&c);
	assert_null(c.egress);
	assert_int_equal(c.negress, 0);
}

static void test_egress_default_allow_is_accepted(void **state)
{
	struct config c;

	parse_ok("[egress]\ndefault = allow\n", &c);
	assert_false(c.egress_default_deny);
	assert_int_equal(c.negress, 0);
	config_free(&c);
}

static void test_egress_target_of_300_characters_is_kept(void **state)
{
	char text[400];
	struct config c;
	int n = snprintf(text, sizeof(text), "[egress]\ndeny ");

	memset(text + n, 'a', CONFIG_TARGET_MAX);
	text[n + CONFIG_TARGET_MAX] = '\0';
	parse_ok(text, &c);
	assert_int_equal(strlen(c.egress[0].target), CONFIG_TARGET_MAX);
	config_free(&c);
}

static void test_vnet_is_off_without_its_section_and_takes_defaults(void **state)
{
	static const char text[] = "[vnet]\nsubnet = 10.9.0.0/16\nsubnet6 = none\n"
				   "leases = /tmp/x.leases\ndns = no\n"
				   "[vm a]\nuri = vsock://3\nvnet-default-route = yes\n"
				   "vnet-metric = 5\n[vm b]\nuri = vsock://4\n";
	struct config c;
	char why[512];

	assert_int_equal(config_parse("", 0, &c, why, sizeof(why)), 0);
	assert_false(c.vnet.enabled);
	config_free(&c);
	assert_int_equal(config_parse(text, sizeof(text) - 1, &c, why, sizeof(why)), 0);
	assert_true(c.vnet.enabled);
	assert_string_equal(c.vnet.subnet, "10.9.0.0/16");
	assert_string_equal(c.vnet.subnet6, "");
	assert_string_equal(c.vnet.tun, "vmbusify0");
	assert_int_equal(c.vnet.mtu, 65520);
	assert_false(c.vnet.dns);
	assert_true(c.vms[0].vnet_default_route);
	assert_int_equal(c.vms[0].vnet_metric, 5);
	assert_false(c.vms[1].vnet_default_route);
	assert_int_equal(c.vms[1].vnet_metric, 100);
	config_free(&c);
}

static void test_error_after_egress_rules_frees_them(void **state)
{
	static const char text[] = "[egress]\nallow *\ndeny x\n[vm a]\n";
	struct config c;
	char why[256];

	assert_int_equal(config_parse(text, strlen(text), &c, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "line 4: [vm a] has no uri");
	assert_defaults(&c);
}

/* ---- errors: each case is its own test, named for the rule it breaks ---- */

struct config_err_case {
	const char *name;
	const char *text;
	size_t len;	    /* 0: strlen(text) */
	const char *reason; /* the reason starts with this */
};

static const struct config_err_case config_err_cases[] = {
    {"unknown key in a vm section", "[vm lab1]\nuri = vsock://3\nuri2 = vsock://4\n", 0,
     "line 3: unknown key 'uri2' in [vm lab1]"},
    {"unknown key in the daemon section", "# c\n[daemon]\nthread = 2\n", 0,
     "line 3: unknown key 'thread' in [daemon]"},
    {"unknown section", "\n[vms a]\n", 0, "line 2: unknown section [vms a]"},
    {"vm section without a name", "[vm]\n", 0, "line 1: section [vm] needs a name"},
    {"key before any section", "threads = 2\n", 0, "line 1: key 'threads' before any section"},
    {"duplicate key", "[daemon]\nthreads = 2\nthreads = 3\n", 0,
     "line 3: duplicate key 'threads' in [daemon]"},
    {"duplicate vm uri", "[vm a]\nuri = vsock://3\nuri = vsock://4\n", 0,
     "line 3: duplicate key 'uri' in [vm a]"},
    {"duplicate daemon section", "[daemon]\n[vm a]\nuri = vsock://3\n[daemon]\n", 0,
     "line 4: duplicate section [daemon]"},
    {"duplicate vm name", "[vm a]\nuri = vsock://3\n\n[vm b]\nuri = vsock://4\n[vm a]\n", 0,
     "line 6: duplicate VM name 'a'"},
    {"missing uri before the next section", "[vm a]\n# no uri\n[vm b]\nuri = vsock://4\n", 0,
     "line 1: [vm a] has no uri"},
    {"missing uri at the end", "[vm a]\nuri = vsock://3\n[vm b]\n\n", 0,
     "line 3: [vm b] has no uri"},
    {"vm name starting with a dash", "[vm -a]\nuri = vsock://3\n", 0,
     "line 1: VM name '-a' starts with '-'"},
    {"vm name starting with a dot", "[vm .a]\nuri = vsock://3\n", 0,
     "line 1: VM name '.a' starts with '.'"},
    {"vm name with a space", "[vm a b]\n", 0, "line 1: VM name 'a b' has the character ' '"},
    {"vm name with a slash", "[daemon]\n[vm a/b]\n", 0,
     "line 2: VM name 'a/b' has the character '/'"},
    {"vm name of 64 characters",
     "[vm 0123456789012345678901234567890123456789012345678901234567890123]\n", 0,
     "line 1: VM name '0123456789012345678901234567890123456789012345678901234567890123...' "
     "is longer than 63 characters"},
    {"nul byte", "[daemon]\nthreads = 2\0\n", 22, "line 2: NUL byte in column 12"},
    {"control character", "[daemon]\n\x1b[0m\n", 0, "line 2: control character 0x1b"},
    {"threads not a number", "[daemon]\nthreads = two\n", 0,
     "line 2: threads must be a number from 1 to 256, not 'two'"},
    {"threads zero", "[daemon]\nthreads = 0\n", 0,
     "line 2: threads must be a number from 1 to 256, not '0'"},
    {"threads above 256", "[daemon]\nthreads = 257\n", 0,
     "line 2: threads must be a number from 1 to 256, not '257'"},
    {"threads negative", "[daemon]\nthreads = -1\n", 0,
     "line 2: threads must be a number from 1 to 256, not '-1'"},
    {"threads with a suffix", "[daemon]\nthreads = 2x\n", 0,
     "line 2: threads must be a number from 1 to 256, not '2x'"},
    {"threads overflowing", "[daemon]\nthreads = 99999999999999999999999\n", 0,
     "line 2: threads must be a number from 1 to 256"},
    {"threads empty", "[daemon]\nthreads =\n", 0,
     "line 2: threads must be a number from 1 to 256, not ''"},
    {"bad vm uri", "[vm a]\nuri = ftp://x\n", 0, "line 2: uri: unknown scheme 'ftp'"},
    {"empty vm uri", "[vm a]\nuri =\n", 0, "line 2: uri: empty channel address"},
    {"bad control uri", "[daemon]\ncontrol = /run/x.sock\n", 0,
     "line 2: control: '/run/x.sock' is not a channel URI"},
    {"bad log level", "[daemon]\nlog-level = loud\n", 0,
     "line 2: log-level must be error, warning, info or debug, not 'loud'"},
    {"bad backend", "[daemon]\nbackend = iocp\n", 0,
     "line 2: backend must be auto, uring or epoll, not 'iocp'"},
    {"line without an equals sign", "[daemon]\nthreads 2\n", 0,
     "line 2: expected 'key = value' or '[section]', got 'threads 2'"},
    {"key missing before equals", "[daemon]\n = 2\n", 0, "line 2: a key is missing before '='"},
    {"section header without its bracket", "[daemon\n", 0,
     "line 1: section header lacks its closing ']'"},
    {"crlf file with an error", "[daemon]\r\n\r\nbackend = x\r\n", 0,
     "line 3: backend must be auto, uring or epoll, not 'x'"},
    {"unknown section names the new ones", "[proxies]\n", 0,
     "line 1: unknown section [proxies] (expected [daemon], [proxy], [egress], [vnet] or "
     "[vm NAME])"},
    {"duplicate proxy section", "[proxy]\n[vm a]\nuri = vsock://3\n[proxy]\n", 0,
     "line 4: duplicate section [proxy]"},
    {"duplicate egress section", "[egress]\nallow *\n[egress]\n", 0,
     "line 3: duplicate section [egress]"},
    {"unknown key in proxy", "[proxy]\nuri = vsock://3\n", 0,
     "line 2: unknown key 'uri' in [proxy]"},
    {"duplicate max-connections in a vm",
     "[vm a]\nuri = vsock://3\nmax-connections = 1\nmax-connections = 2\n", 0,
     "line 4: duplicate key 'max-connections' in [vm a]"},
    {"duplicate connect-rate in proxy", "[proxy]\nconnect-rate = 1\nconnect-rate = 2\n", 0,
     "line 3: duplicate key 'connect-rate' in [proxy]"},
    {"max-connections zero", "[proxy]\nmax-connections = 0\n", 0,
     "line 2: max-connections must be a number from 1 to 1048576, not '0'"},
    {"max-connections too big", "[proxy]\nmax-connections = 1048577\n", 0,
     "line 2: max-connections must be a number from 1 to 1048576, not '1048577'"},
    {"max-connections overflowing", "[proxy]\nmax-connections = 99999999999999999999\n", 0,
     "line 2: max-connections must be a number from 1 to 1048576"},
    {"max-connections not a number", "[vm a]\nuri = vsock://3\nmax-connections = many\n", 0,
     "line 3: max-connections must be a number from 1 to 1048576, not 'many'"},
    {"max-connections empty", "[proxy]\nmax-connections =\n", 0,
     "line 2: max-connections must be a number from 1 to 1048576, not ''"},
    {"connect-rate zero", "[proxy]\nconnect-rate = 0\n", 0,
     "line 2: connect-rate must be RATE or RATE/s, optionally followed by 'burst N' (RATE 1 "
     "to 1000000, N 1 to 2000000), not '0'"},
    {"connect-rate too big", "[proxy]\nconnect-rate = 1000001\n", 0,
     "line 2: connect-rate must be RATE or RATE/s"},
    {"connect-rate per minute", "[proxy]\nconnect-rate = 100/m\n", 0,
     "line 2: connect-rate must be RATE or RATE/s"},
    {"connect-rate a word", "[proxy]\nconnect-rate = fast\n", 0,
     "line 2: connect-rate must be RATE or RATE/s"},
    {"connect-rate burst missing", "[proxy]\nconnect-rate = 100 burst\n", 0,
     "line 2: connect-rate must be RATE or RATE/s"},
    {"connect-rate burst zero", "[proxy]\nconnect-rate = 100 burst 0\n", 0,
     "line 2: connect-rate must be RATE or RATE/s"},
    {"connect-rate burst too big", "[proxy]\nconnect-rate = 100 burst 2000001\n", 0,
     "line 2: connect-rate must be RATE or RATE/s"},
    {"connect-rate burst misspelt", "[proxy]\nconnect-rate = 100 bursts 5\n", 0,
     "line 2: connect-rate must be RATE or RATE/s"},
    {"connect-rate trailing junk", "[proxy]\nconnect-rate = 100/s burst 5x\n", 0,
     "line 2: connect-rate must be RATE or RATE/s"},
    {"egress rule outside egress", "[daemon]\nallow *\n", 0,
     "line 2: expected 'key = value' or '[section]', got 'allow *'"},
    {"egress rule before any section", "deny *\n", 0,
     "line 1: expected 'key = value' or '[section]', got 'deny *'"},
    {"egress rule without a target", "[egress]\nallow\n", 0,
     "line 2: 'allow' needs a target: allow TARGET"},
    {"egress rule without a target but spaces", "[egress]\ndeny   # nothing\n", 0,
     "line 2: 'deny' needs a target: deny TARGET"},
    {"egress rule with two targets", "[egress]\ndeny a.example b.example\n", 0,
     "line 2: 'deny' takes one target, not 'a.example b.example'"},
    {"egress rule with an equals sign", "[egress]\nallow = *\n", 0,
     "line 2: egress rules take no '=': allow TARGET"},
    {"egress rule glued to an equals sign", "[egress]\ndeny= *\n", 0,
     "line 2: egress rules take no '=': deny TARGET"},
    {"egress rule with another verb", "[egress]\npermit *\n", 0,
     "line 2: expected 'allow TARGET', 'deny TARGET' or 'default = allow|deny', got "
     "'permit *'"},
    {"egress verb in capitals", "[egress]\nALLOW *\n", 0,
     "line 2: expected 'allow TARGET', 'deny TARGET' or 'default = allow|deny', got 'ALLOW *'"},
    {"egress default not allow or deny", "[egress]\ndefault = maybe\n", 0,
     "line 2: default must be allow or deny, not 'maybe'"},
    {"egress default twice", "[egress]\ndefault = deny\ndefault = allow\n", 0,
     "line 3: duplicate key 'default' in [egress]"},
    {"egress unknown key", "[egress]\nrules = *\n", 0, "line 2: unknown key 'rules' in [egress]"},
    {"egress default without equals", "[egress]\ndefault deny\n", 0,
     "line 2: expected 'allow TARGET', 'deny TARGET' or 'default = allow|deny', got "
     "'default deny'"},
    {"vnet twice", "[vnet]\n[vnet]\n", 0, "line 2: duplicate section [vnet]"},
    {"vnet mtu small", "[vnet]\nmtu = 576\n", 0, "line 2: mtu must be 1280 to 65535, not '576'"},
    {"vnet mtu big", "[vnet]\nmtu = 65536\n", 0, "line 2: mtu must be 1280 to 65535, not '65536'"},
    {"vnet tun slash", "[vnet]\ntun = a/b\n", 0, "line 2: tun: 'a/b' is not a device name"},
    {"vnet tun long", "[vnet]\ntun = abcdefghijklmnop\n", 0,
     "line 2: tun (a device name) must be 1 to 15 characters"},
    {"vnet relative leases", "[vnet]\nleases = x.leases\n", 0,
     "line 2: leases must be an absolute path"},
    {"vnet dns maybe", "[vnet]\ndns = maybe\n", 0, "line 2: dns must be yes or no, not 'maybe'"},
    {"vnet unknown key", "[vnet]\nsubnet4 = 10.0.0.0/8\n", 0,
     "line 2: unknown key 'subnet4' in [vnet]"},
    {"vm vnet route", "[vm a]\nuri = vsock://3\nvnet-default-route = sometimes\n", 0,
     "line 3: vnet-default-route must be yes or no, not 'sometimes'"},
    {"vm vnet metric", "[vm a]\nuri = vsock://3\nvnet-metric = -1\n", 0,
     "line 3: vnet-metric must be a number, not '-1'"},
};

static void test_error_case(void **state)
{
	const struct config_err_case *tc = *state;
	size_t len = tc->len ? tc->len : strlen(tc->text);
	struct config c;
	char why[512] = "";

	assert_int_equal(config_parse(tc->text, len, &c, why, sizeof(why)), -EINVAL);
	if (strncmp(why, tc->reason, strlen(tc->reason)))
		fail_msg("%s: got \"%s\", want \"%s...\"", tc->name, why, tc->reason);
	assert_null(strchr(why, '\n'));
	assert_defaults(&c);
}

static void test_line_over_1023_characters_is_refused(void **state)
{
	char text[2048];
	struct config c;
	char why[256] = "";
	int n = snprintf(text, sizeof(text), "[daemon]\n#");

	memset(text + n, 'x', CONFIG_LINE_MAX);
	text[n + CONFIG_LINE_MAX] = '\n';
	assert_int_equal(config_parse(text, (size_t)n + CONFIG_LINE_MAX + 1, &c, why, sizeof(why)),
			 -EINVAL);
	assert_string_equal(why, "line 2: line is longer than 1023 characters");
	assert_defaults(&c);
}

static void test_egress_target_over_300_characters_is_refused(void **state)
{
	char text[400];
	struct config c;
	char why[256] = "";
	int n = snprintf(text, sizeof(text), "[egress]\nallow ");

	memset(text + n, 'a', CONFIG_TARGET_MAX + 1);
	text[n + CONFIG_TARGET_MAX + 1] = '\0';
	assert_int_equal(config_parse(text, strlen(text), &c, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "line 2: target is longer than 300 characters");
	assert_defaults(&c);
}

static void test_error_after_vms_frees_them(void **state)
{
	static const char text[] = "[vm a]\nuri = vsock://3\n[vm b]\nuri = vsock://4\nbad\n";
	struct config c;
	char why[256];

	assert_int_equal(config_parse(text, strlen(text), &c, why, sizeof(why)), -EINVAL);
	assert_defaults(&c);
}

/* ---- config_add_vm ---- */

static void test_add_vm_appends_and_finds(void **state)
{
	struct config c;
	char why[256];

	parse_ok(config_example, &c);
	assert_int_equal(config_add_vm(&c, "extra.1", "hvsock://parent", why, sizeof(why)), 0);
	assert_int_equal(c.nvms, 3);
	assert_string_equal(config_find_vm(&c, "extra.1")->uri, "hvsock://parent");
	assert_string_equal(config_find_vm(&c, "lab1")->uri, "unix:///run/vmbusify/lab/lab1.sock");
	assert_null(config_find_vm(&c, "nope"));
	config_free(&c);
}

static void test_add_vm_refuses_a_duplicate(void **state)
{
	struct config c;
	char why[256];

	parse_ok(config_example, &c);
	assert_int_equal(config_add_vm(&c, "lab1", "vsock://3", why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "duplicate VM name 'lab1'");
	assert_int_equal(c.nvms, 2);
	config_free(&c);
}

/* --vm NAME=URI for a VM the file holds with the same URI keeps the file's settings. */
static void test_add_vm_of_the_same_uri_keeps_the_file_entry(void **state)
{
	static const char text[] = "[vm a]\nuri = vsock://3\nvnet-default-route = yes\n";
	struct config c;
	char why[256];

	parse_ok(text, &c);
	assert_int_equal(config_add_vm(&c, "a", "vsock://3", why, sizeof(why)), 0);
	assert_int_equal(c.nvms, 1);
	assert_true(c.vms[0].vnet_default_route);
	assert_int_equal(config_add_vm(&c, "a", "vsock://4", why, sizeof(why)), -EINVAL);
	config_free(&c);
}

static void test_add_vm_refuses_bad_names(void **state)
{
	static const char *const bad[] = {
	    "",
	    "-x",
	    ".x",
	    "a=b",
	    "a b",
	    "é",
	    "0123456789012345678901234567890123456789012345678901234567890123"};
	struct config c;
	char why[256];

	config_init(&c);
	for (size_t i = 0; i < NELEM(bad); i++) {
		why[0] = '\0';
		assert_int_equal(config_add_vm(&c, bad[i], "vsock://3", why, sizeof(why)), -EINVAL);
		assert_non_null(strstr(why, "VM name"));
	}
	assert_int_equal(c.nvms, 0);
	config_free(&c);
}

static void test_add_vm_refuses_a_bad_uri_with_its_reason(void **state)
{
	struct config c;
	char why[256];

	config_init(&c);
	assert_int_equal(config_add_vm(&c, "a", "vsock://x", why, sizeof(why)), -EINVAL);
	assert_memory_equal(why, "uri: ", 5);
	assert_int_equal(c.nvms, 0);
	config_free(&c);
}

static void test_add_vm_refuses_an_overlong_uri(void **state)
{
	char uri[400];
	struct config c;
	char why[256];

	config_init(&c);
	memcpy(uri, "unix:///", 8);
	memset(uri + 8, 'p', sizeof(uri) - 9);
	uri[sizeof(uri) - 1] = '\0';
	assert_int_equal(config_add_vm(&c, "a", uri, why, sizeof(why)), -EINVAL);
	assert_string_equal(why, "uri is 399 characters long; at most 255 fit");
	config_free(&c);
}

static void test_add_vm_accepts_a_null_reason_buffer(void **state)
{
	struct config c;

	config_init(&c);
	assert_int_equal(config_add_vm(&c, "-", "vsock://3", NULL, 0), -EINVAL);
	assert_int_equal(config_add_vm(&c, "ok", "vsock://3", NULL, 0), 0);
	config_free(&c);
}

int main(void)
{
	const struct CMUnitTest fixed[] = {
	    cmocka_unit_test(test_example_file_parses),
	    cmocka_unit_test(test_empty_file_gives_defaults),
	    cmocka_unit_test(test_comments_and_blank_lines_give_defaults),
	    cmocka_unit_test(test_state_dir_takes_an_absolute_path_or_none),
	    cmocka_unit_test(test_crlf_line_endings_are_accepted),
	    cmocka_unit_test(test_whitespace_around_names_keys_and_values_is_ignored),
	    cmocka_unit_test(test_hash_inside_a_value_is_not_a_comment),
	    cmocka_unit_test(test_last_line_needs_no_newline),
	    cmocka_unit_test(test_utf8_byte_order_mark_is_skipped),
	    cmocka_unit_test(test_line_of_1023_characters_is_accepted),
	    cmocka_unit_test(test_vm_name_of_63_characters_is_accepted),
	    cmocka_unit_test(test_line_over_1023_characters_is_refused),
	    cmocka_unit_test(test_error_after_vms_frees_them),
	    cmocka_unit_test(test_add_vm_appends_and_finds),
	    cmocka_unit_test(test_add_vm_refuses_a_duplicate),
	    cmocka_unit_test(test_add_vm_of_the_same_uri_keeps_the_file_entry),
	    cmocka_unit_test(test_add_vm_refuses_bad_names),
	    cmocka_unit_test(test_add_vm_refuses_a_bad_uri_with_its_reason),
	    cmocka_unit_test(test_add_vm_refuses_an_overlong_uri),
	    cmocka_unit_test(test_add_vm_accepts_a_null_reason_buffer),
	    cmocka_unit_test(test_vm_limits_default_to_1024_and_200_per_second),
	    cmocka_unit_test(test_vm_takes_proxy_limits_even_from_a_later_section),
	    cmocka_unit_test(test_connect_rate_forms),
	    cmocka_unit_test(test_vm_connect_rate_without_burst_takes_twice_its_rate),
	    cmocka_unit_test(test_add_vm_takes_the_proxy_limits),
	    cmocka_unit_test(test_egress_rules_keep_their_order_and_lines),
	    cmocka_unit_test(test_egress_default_allow_is_accepted),
	    cmocka_unit_test(test_egress_target_of_300_characters_is_kept),
	    cmocka_unit_test(test_error_after_egress_rules_frees_them),
	    cmocka_unit_test(test_vnet_is_off_without_its_section_and_takes_defaults),
	    cmocka_unit_test(test_egress_target_over_300_characters_is_refused),
	};
	struct CMUnitTest tests[NELEM(fixed) + NELEM(config_err_cases)];
	size_t n = 0;

	for (size_t i = 0; i < NELEM(fixed); i++)
		tests[n++] = fixed[i];
	/* One test per malformed file, named for the rule it breaks. */
	for (size_t i = 0; i < NELEM(config_err_cases); i++) {
		tests[n] = (struct CMUnitTest)cmocka_unit_test_prestate(
		    test_error_case, (void *)&config_err_cases[i]);
		tests[n++].name = config_err_cases[i].name;
	}
	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
