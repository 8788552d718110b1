/* Unit tests for channel URIs, the hv_sock GUID mapping and the wire error mapping. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "core/err.h"
#include "core/uri.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct uri_ok_case {
	const char *in;
	enum uri_kind kind;
	bool listen;
	uint32_t cid; /* vsock */
	uint32_t port;
	const char *text;    /* path (unix, hybrid, serial) or host (tcp, hvsock VM name) */
	const char *vm;	     /* hvsock: expected VMID, upper case */
	const char *service; /* hvsock: expected service GUID, upper case */
	const char *canon;   /* uri_format() of the result */
};

#define PARENT	  "A42E7CDA-D03F-480C-9CC2-A4DE20ABB878"
#define CHILDREN  "90DB8B89-0D35-4F79-8CE9-49EA0AC8B7CD"
#define LOOPBACK  "E0E16197-DD56-4A10-9195-5EE7A155A838"
#define WILDCARD  "00000000-0000-0000-0000-000000000000"
#define SVC80	  "00000050-FACB-11E6-BD58-64006A7986D3"
#define SVCVB	  "00005642-FACB-11E6-BD58-64006A7986D3"
#define VMID	  "5C9F3A8B-1D2E-4F60-A7B8-C9D0E1F2A3B4"
#define OTHER_SVC "3049197C-9A4E-4FBF-9367-97F792F16994"

static const struct uri_ok_case uri_ok_cases[] = {
    /* vsock */
    {"vsock://3:1024", URI_VSOCK, false, 3, 1024, NULL, NULL, NULL, "vsock://3:1024"},
    {"vsock://2:80/", URI_VSOCK, false, 2, 80, NULL, NULL, NULL, "vsock://2:80"},
    {"vsock://:80", URI_VSOCK, true, UINT32_MAX, 80, NULL, NULL, NULL, "vsock://:80"},
    {"vsock://-1:80", URI_VSOCK, true, UINT32_MAX, 80, NULL, NULL, NULL, "vsock://:80"},
    {"vsock://4294967295:7", URI_VSOCK, true, UINT32_MAX, 7, NULL, NULL, NULL, "vsock://:7"},
    {"vsock://5", URI_VSOCK, false, 5, VB_DEFAULT_PORT, NULL, NULL, NULL, "vsock://5:22082"},
    {"vsock://", URI_VSOCK, true, UINT32_MAX, VB_DEFAULT_PORT, NULL, NULL, NULL, "vsock://:22082"},
    {"VSOCK://0:0", URI_VSOCK, false, 0, 0, NULL, NULL, NULL, "vsock://0:0"},
    {"vsock://4294967294:4294967294", URI_VSOCK, false, 4294967294u, 4294967294u, NULL, NULL, NULL,
     "vsock://4294967294:4294967294"},
    /* hybrid */
    {"hybrid:///run/fc/v.sock:1234", URI_HYBRID, false, 0, 1234, "/run/fc/v.sock", NULL, NULL,
     "hybrid:///run/fc/v.sock:1234"},
    {"hybrid:///odd:name.sock:52", URI_HYBRID, false, 0, 52, "/odd:name.sock", NULL, NULL,
     "hybrid:///odd:name.sock:52"},
    /* hvsock */
    {"hvsock://parent", URI_HVSOCK, false, 0, VB_DEFAULT_PORT, NULL, PARENT, SVCVB,
     "hvsock://parent:22082"},
    {"hvsock://parent:80", URI_HVSOCK, false, 0, 80, NULL, PARENT, SVC80, "hvsock://parent:80"},
    {"hvsock://Parent/" OTHER_SVC, URI_HVSOCK, false, 0, 0, NULL, PARENT, OTHER_SVC,
     "hvsock://parent/" OTHER_SVC},
    {"hvsock://loopback:1", URI_HVSOCK, false, 0, 1, NULL, LOOPBACK,
     "00000001-FACB-11E6-BD58-64006A7986D3", "hvsock://loopback:1"},
    {"hvsock://children:80", URI_HVSOCK, true, 0, 80, NULL, CHILDREN, SVC80,
     "hvsock://children:80"},
    {"hvsock://:80", URI_HVSOCK, true, 0, 80, NULL, WILDCARD, SVC80, "hvsock://:80"},
    {"hvsock://wildcard:80", URI_HVSOCK, true, 0, 80, NULL, WILDCARD, SVC80, "hvsock://:80"},
    {"hvsock://wildcard/" OTHER_SVC, URI_HVSOCK, true, 0, 0, NULL, WILDCARD, OTHER_SVC,
     "hvsock://wildcard/" OTHER_SVC},
    {"hvsock://" VMID, URI_HVSOCK, false, 0, VB_DEFAULT_PORT, NULL, VMID, SVCVB,
     "hvsock://" VMID ":22082"},
    {"hvsock://{5c9f3a8b-1d2e-4f60-a7b8-c9d0e1f2a3b4}:80", URI_HVSOCK, false, 0, 80, NULL, VMID,
     SVC80, "hvsock://" VMID ":80"},
    {"hvsock://" VMID "/" SVC80, URI_HVSOCK, false, 0, 80, NULL, VMID, SVC80,
     "hvsock://" VMID ":80"},
    {"hvsock://" VMID "/{" OTHER_SVC "}", URI_HVSOCK, false, 0, 0, NULL, VMID, OTHER_SVC,
     "hvsock://" VMID "/" OTHER_SVC},
    {"hvsock://MobyLinuxVM/" OTHER_SVC, URI_HVSOCK, false, 0, 0, "MobyLinuxVM", NULL, OTHER_SVC,
     "hvsock://MobyLinuxVM/" OTHER_SVC},
    {"hvsock://My VM:4294967295", URI_HVSOCK, false, 0, UINT32_MAX, "My VM", NULL,
     "FFFFFFFF-FACB-11E6-BD58-64006A7986D3", "hvsock://My VM:4294967295"},
    /* unix */
    {"unix:///run/vmbusify.sock", URI_UNIX, false, 0, 0, "/run/vmbusify.sock", NULL, NULL,
     "unix:///run/vmbusify.sock"},
    {"unix://@vmbusify", URI_UNIX, false, 0, 0, "@vmbusify", NULL, NULL, "unix://@vmbusify"},
    /* serial */
    {"serial:///dev/virtio-ports/vmbusify", URI_SERIAL, false, 0, 0, "/dev/virtio-ports/vmbusify",
     NULL, NULL, "serial:///dev/virtio-ports/vmbusify"},
    {"serial:///dev/ttyS1", URI_SERIAL, false, 0, 0, "/dev/ttyS1", NULL, NULL,
     "serial:///dev/ttyS1"},
    /* tcp */
    {"tcp://127.0.0.1:8022", URI_TCP, false, 0, 8022, "127.0.0.1", NULL, NULL,
     "tcp://127.0.0.1:8022"},
    {"tcp://example.org:65535/", URI_TCP, false, 0, 65535, "example.org", NULL, NULL,
     "tcp://example.org:65535"},
    {"tcp://[::1]:80", URI_TCP, false, 0, 80, "::1", NULL, NULL, "tcp://[::1]:80"},
    {"tcp://[fe80::1%eth0]:80", URI_TCP, false, 0, 80, "fe80::1%eth0", NULL, NULL,
     "tcp://[fe80::1%eth0]:80"},
    {"tcp://:8022", URI_TCP, true, 0, 8022, "", NULL, NULL, "tcp://:8022"},
    {"tcp://:0", URI_TCP, true, 0, 0, "", NULL, NULL, "tcp://:0"},
    /* npipe (Windows named pipes) */
    {"npipe://vmbusify-control", URI_NPIPE, false, 0, 0, "vmbusify-control", NULL, NULL,
     "npipe://vmbusify-control"},
    {"npipe:////./pipe/docker_engine", URI_NPIPE, false, 0, 0, "docker_engine", NULL, NULL,
     "npipe://docker_engine"},
    {"NPIPE://a/b", URI_NPIPE, false, 0, 0, "a/b", NULL, NULL, "npipe://a/b"},
};

static void uri_check_guid(const struct guid *g, const char *want)
{
	char text[37];

	guid_format(g, text);
	assert_string_equal(text, want);
}

static void uri_check_ok_case(const struct uri_ok_case *c)
{
	struct uri u;
	char why[200] = "", out[400];

	print_message("  %s\n", c->in);
	assert_int_equal(uri_parse(c->in, &u, why, sizeof(why)), 0);
	assert_int_equal(u.kind, c->kind);
	assert_int_equal(u.listen, c->listen);
	assert_int_equal(u.port, c->port);
	if (c->kind == URI_VSOCK) {
		assert_int_equal(u.cid, c->cid);
		assert_int_equal(u.any_cid, c->cid == UINT32_MAX);
	}
	if (c->text)
		assert_string_equal(c->kind == URI_TCP || c->kind == URI_HVSOCK ? u.host : u.path,
				    c->text);
	assert_int_equal(u.vm_is_guid, c->vm != NULL);
	if (c->vm)
		uri_check_guid(&u.vm, c->vm);
	assert_int_equal(u.has_service, c->service != NULL);
	if (c->service)
		uri_check_guid(&u.service, c->service);
	assert_int_equal(uri_format(&u, out, sizeof(out)), (int)strlen(c->canon));
	assert_string_equal(out, c->canon);
}

static void test_parse_accepts_every_scheme(void **state)
{
	for (size_t i = 0; i < NELEM(uri_ok_cases); i++)
		uri_check_ok_case(&uri_ok_cases[i]);
}

/* A canonical form parses and formats back to itself. */
static void test_format_round_trips_canonical_forms(void **state)
{
	for (size_t i = 0; i < NELEM(uri_ok_cases); i++) {
		struct uri u, v;
		char a[400], b[400];

		assert_int_equal(uri_parse(uri_ok_cases[i].canon, &u, NULL, 0), 0);
		assert_true(uri_format(&u, a, sizeof(a)) > 0);
		assert_string_equal(a, uri_ok_cases[i].canon);
		assert_int_equal(uri_parse(a, &v, NULL, 0), 0);
		assert_true(uri_format(&v, b, sizeof(b)) > 0);
		assert_string_equal(a, b);
	}
}

struct uri_bad_case {
	const char *in;
	const char *why_has; /* a piece the reason must contain */
};

#define LONG50	"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define LONG107 "/" LONG50 LONG50 "aaaaaa"
#define LONG260 LONG50 LONG50 LONG50 LONG50 LONG50 "aaaaaaaaaa"

static const struct uri_bad_case uri_bad_cases[] = {
    {"", "empty"},
    {"vsock:3:80", "not a channel URI"},
    {"foo://x",
     "unknown scheme 'foo' (expected vsock, hybrid, hvsock, unix, serial, tcp or npipe)"},
    {"://x", "unknown scheme ''"},
    {"vsock://3:99999999999", "vsock port 99999999999 out of range"},
    {"vsock://3:4294967295", "vsock port 4294967295 out of range"},
    {"vsock://3:", "vsock port is empty"},
    {"vsock://3:8x", "vsock port '8x' is not a decimal number"},
    {"vsock://3:-80", "vsock port '-80'"},
    {"vsock://3: 80", "not a decimal number"},
    {"vsock://4294967296:80", "vsock CID 4294967296 out of range"},
    {"vsock://-2:80", "vsock CID '-2' is not a decimal number"},
    {"vsock://host:80", "vsock CID 'host'"},
    {"vsock://3:80:81", "vsock port '80:81'"},
    {"vsock://3:80//", "vsock port"},
    {"hybrid:///run/fc.sock", "has no port"},
    {"hybrid:///run/fc.sock:", "hybrid vsock port is empty"},
    {"hybrid:///run/fc.sock:abc", "not a decimal number"},
    {"hybrid:///run/fc.sock:4294967295", "out of range"},
    {"hybrid://run/fc.sock:52", "must be absolute"},
    {"hybrid://:52", "must be absolute"},
    {"hybrid://" LONG107 "a:52", "at most 107 fit"},
    {"hvsock://parent:x", "hvsock port 'x' is not a decimal number"},
    {"hvsock://parent:4294967296", "hvsock port 4294967296 out of range"},
    {"hvsock://parent/80", "hvsock service '80' is not a GUID"},
    {"hvsock://parent/", "hvsock service '' is not a GUID"},
    {"hvsock://" VMID "/" OTHER_SVC "x", "is not a GUID"},
    {"hvsock://{5c9f3a8b-1d2e-4f60-a7b8-c9d0e1f2a3b4:80", "VMID"},
    {"hvsock://5c9f3a8b-1d2e-4f60-a7b8-c9d0e1f2a3bz:80", "not a valid GUID"},
    {"hvsock://bad\nname:80", "control character"},
    {"hvsock://" LONG260 ":80", "VM name is 260 bytes"},
    {"unix://", "must be absolute"},
    {"unix://run/x.sock", "must be absolute (unix:///path) or abstract"},
    {"unix://@", "abstract unix socket name is empty"},
    {"unix://" LONG107 "a", "at most 107 fit"},
    {"unix://@" LONG107, "at most 106 fit"},
    {"serial://", "must be absolute"},
    {"serial://dev/ttyS0", "serial device path 'dev/ttyS0' must be absolute"},
    {"tcp://127.0.0.1", "has no port"},
    {"tcp://127.0.0.1:", "tcp port is empty"},
    {"tcp://127.0.0.1:65536", "tcp port 65536 out of range"},
    {"tcp://127.0.0.1:http", "not a decimal number"},
    {"tcp://::1:80", "IPv6 addresses need brackets"},
    {"tcp://[::1:80", "lacks its closing ']'"},
    {"tcp://[::1]80", "has no port"},
    {"tcp://[]:80", "empty"},
    {"tcp://ho st:80", "invalid character ' '"},
    {"tcp://a/b:80", "invalid character '/'"},
    {"tcp://[::g]:80", "invalid character 'g'"},
    {"tcp://" LONG260 ":80", "tcp host is 260 bytes"},
    {"npipe://", "named pipe name is empty"},
    {"npipe:////./pipe/", "named pipe name is empty"},
    {"npipe://a\\b", "without blanks or '\\'"},
    {"npipe://a b", "printable ASCII only"},
    {"npipe://" LONG107 "a", "named pipe name is 108 bytes long; at most 107 fit"},
};

static void test_parse_rejects_bad_addresses_with_a_reason(void **state)
{
	for (size_t i = 0; i < NELEM(uri_bad_cases); i++) {
		const struct uri_bad_case *c = &uri_bad_cases[i];
		char why[200] = "";
		struct uri u;

		print_message("  %s\n", c->in);
		assert_int_equal(uri_parse(c->in, &u, why, sizeof(why)), -EINVAL);
		assert_true(why[0] != '\0');
		assert_null(strchr(why, '\n'));
		if (!strstr(why, c->why_has))
			fail_msg("reason '%s' lacks '%s'", why, c->why_has);
	}
}

static void test_parse_null_is_rejected_without_why(void **state)
{
	struct uri u;

	assert_int_equal(uri_parse(NULL, &u, NULL, 0), -EINVAL);
	assert_int_equal(uri_parse("nope", &u, NULL, 0), -EINVAL);
}

static void test_format_reports_short_buffer(void **state)
{
	struct uri u;
	char small[10];

	assert_int_equal(uri_parse("unix:///run/vmbusify.sock", &u, NULL, 0), 0);
	assert_int_equal(uri_format(&u, small, sizeof(small)), -ENOSPC);
	assert_int_equal(uri_format(&u, small, 0), -ENOSPC);
}

static void test_only_serial_is_single_connection(void **state)
{
	static const char *const multi[] = {"vsock://:1", "hybrid:///a:1", "hvsock://parent",
					    "unix:///a", "tcp://:1"};
	struct uri u;

	for (size_t i = 0; i < NELEM(multi); i++) {
		assert_int_equal(uri_parse(multi[i], &u, NULL, 0), 0);
		assert_false(uri_is_single_connection(&u));
	}
	assert_int_equal(uri_parse("serial:///dev/ttyS0", &u, NULL, 0), 0);
	assert_true(uri_is_single_connection(&u));
}

static void test_guid_port_template_vectors(void **state)
{
	static const struct {
		uint32_t port;
		const char *text;
	} v[] = {
	    {80, "00000050-FACB-11E6-BD58-64006A7986D3"},
	    {0x5642, "00005642-FACB-11E6-BD58-64006A7986D3"},
	    {0, "00000000-FACB-11E6-BD58-64006A7986D3"},
	    {255, "000000FF-FACB-11E6-BD58-64006A7986D3"},
	    {0x12345678, "12345678-FACB-11E6-BD58-64006A7986D3"},
	    {UINT32_MAX, "FFFFFFFF-FACB-11E6-BD58-64006A7986D3"},
	};

	for (size_t i = 0; i < NELEM(v); i++) {
		struct guid g, h;
		uint32_t port = 0;

		guid_from_vsock_port(v[i].port, &g);
		uri_check_guid(&g, v[i].text);
		assert_int_equal(guid_parse(v[i].text, &h), 0);
		assert_memory_equal(g.b, h.b, sizeof(g.b));
		assert_true(guid_to_vsock_port(&h, &port));
		assert_int_equal(port, v[i].port);
	}
}

/* Data1..Data3 are stored little-endian, Data4 as written. */
static void test_guid_memory_order_is_windows(void **state)
{
	static const uint8_t want[16] = {0xDA, 0x7C, 0x2E, 0xA4, 0x3F, 0xD0, 0x0C, 0x48,
					 0x9C, 0xC2, 0xA4, 0xDE, 0x20, 0xAB, 0xB8, 0x78};
	struct guid g;

	assert_int_equal(guid_parse("a42e7cda-d03f-480c-9cc2-a4de20abb878", &g), 0);
	assert_memory_equal(g.b, want, sizeof(want));
	uri_check_guid(&g, PARENT);
	guid_from_vsock_port(80, &g);
	assert_int_equal(g.b[0], 0x50);
	assert_int_equal(g.b[4], 0xCB);
	assert_int_equal(g.b[5], 0xFA);
}

static void test_guid_to_vsock_port_rejects_other_guids(void **state)
{
	static const char *const other[] = {PARENT, OTHER_SVC, WILDCARD,
					    "00000050-FACB-11E6-BD58-64006A7986D4",
					    "00000050-FACA-11E6-BD58-64006A7986D3"};
	uint32_t port = 7;
	struct guid g;

	for (size_t i = 0; i < NELEM(other); i++) {
		assert_int_equal(guid_parse(other[i], &g), 0);
		assert_false(guid_to_vsock_port(&g, &port));
	}
	assert_int_equal(port, 7);
}

static void test_guid_parse_rejects_malformed_text(void **state)
{
	static const char *const bad[] = {
	    "",
	    "a42e7cda-d03f-480c-9cc2-a4de20abb87",
	    "a42e7cda-d03f-480c-9cc2-a4de20abb8788",
	    "a42e7cdad-03f-480c-9cc2-a4de20abb878",
	    "a42e7cda-d03f-480c-9cc2-a4de20abb87g",
	    "{a42e7cda-d03f-480c-9cc2-a4de20abb878",
	    "a42e7cda-d03f-480c-9cc2-a4de20abb878}",
	    "(a42e7cda-d03f-480c-9cc2-a4de20abb878)",
	    "a42e7cda d03f 480c 9cc2 a4de20abb878",
	};
	struct guid g;

	for (size_t i = 0; i < NELEM(bad); i++)
		assert_int_equal(guid_parse(bad[i], &g), -EINVAL);
	assert_int_equal(guid_parse("{A42E7CDA-D03F-480C-9CC2-A4DE20ABB878}", &g), 0);
	uri_check_guid(&g, PARENT);
}

static void test_err_errno_to_wire_table(void **state)
{
	static const struct {
		int e;
		uint32_t code;
	} v[] = {
	    {0, VB_WERR_NONE},
	    {-ECONNREFUSED, VB_WERR_REFUSED},
	    {-EHOSTUNREACH, VB_WERR_HOSTUNREACH},
	    {-EADDRNOTAVAIL, VB_WERR_HOSTUNREACH},
	    {-EHOSTDOWN, VB_WERR_HOSTUNREACH},
	    {-ENETUNREACH, VB_WERR_NETUNREACH},
	    {-ETIMEDOUT, VB_WERR_TIMEDOUT},
	    {-ENOENT, VB_WERR_NOENT},
	    {-EACCES, VB_WERR_ACCESS},
	    {-EPERM, VB_WERR_DENIED},
	    {-ENXIO, VB_WERR_NAME},
	    {-ECANCELED, VB_WERR_CANCELLED},
	    {-EPROTO, VB_WERR_PROTOCOL},
	    {-ENOTSUP, VB_WERR_UNSUPPORTED},
	    {-EOPNOTSUPP, VB_WERR_UNSUPPORTED},
	    {-EPROTONOSUPPORT, VB_WERR_UNSUPPORTED},
	    {-EMFILE, VB_WERR_LIMIT},
	    {-ENFILE, VB_WERR_LIMIT},
	    {-EAGAIN, VB_WERR_LIMIT},
	    {-ENOBUFS, VB_WERR_LIMIT},
	    {-EMSGSIZE, VB_WERR_TOOBIG},
	    {-E2BIG, VB_WERR_TOOBIG},
	    {-EIO, VB_WERR_IO},
	    {-ECONNRESET, VB_WERR_RESET},
	    {-EPIPE, VB_WERR_RESET},
	    {-EEXIST, VB_WERR_EXISTS},
	    {-EINVAL, VB_WERR_INVAL},
	    {-ENOMEM, VB_WERR_NOMEM},
	    {-ESHUTDOWN, VB_WERR_SHUTDOWN},
	    {-EBADF, VB_WERR_INTERNAL},
	    {-EDOM, VB_WERR_INTERNAL},
	    {ECONNREFUSED, VB_WERR_REFUSED},
	};

	for (size_t i = 0; i < NELEM(v); i++)
		assert_int_equal(err_to_wire(v[i].e), v[i].code);
}

/* Every code comes back as an errno; the codes that have an errno of their own round trip. */
static void test_err_wire_round_trips(void **state)
{
	for (uint32_t c = 0; c < VB_WERR_MAX; c++) {
		int e = err_from_wire(c);
		bool nearest = c == VB_WERR_VERSION || c == VB_WERR_FLOW;

		assert_true(c == VB_WERR_NONE ? e == 0 : e < 0);
		if (!nearest)
			assert_int_equal(err_to_wire(e), c);
		assert_true(strlen(err_wire_str(c)) > 0);
		assert_string_not_equal(err_wire_str(c), "unknown error");
	}
	assert_int_equal(err_from_wire(VB_WERR_REFUSED), -ECONNREFUSED);
	assert_int_equal(err_from_wire(VB_WERR_TIMEDOUT), -ETIMEDOUT);
	assert_string_equal(err_wire_str(VB_WERR_REFUSED), "connection refused");
}

static void test_err_unknown_wire_code_is_a_protocol_error(void **state)
{
	assert_int_equal(err_from_wire(VB_WERR_MAX), -EPROTO);
	assert_int_equal(err_from_wire(UINT32_MAX), -EPROTO);
	assert_string_equal(err_wire_str(1000), "unknown error");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_accepts_every_scheme),
	    cmocka_unit_test(test_format_round_trips_canonical_forms),
	    cmocka_unit_test(test_parse_rejects_bad_addresses_with_a_reason),
	    cmocka_unit_test(test_parse_null_is_rejected_without_why),
	    cmocka_unit_test(test_format_reports_short_buffer),
	    cmocka_unit_test(test_only_serial_is_single_connection),
	    cmocka_unit_test(test_guid_port_template_vectors),
	    cmocka_unit_test(test_guid_memory_order_is_windows),
	    cmocka_unit_test(test_guid_to_vsock_port_rejects_other_guids),
	    cmocka_unit_test(test_guid_parse_rejects_malformed_text),
	    cmocka_unit_test(test_err_errno_to_wire_table),
	    cmocka_unit_test(test_err_wire_round_trips),
	    cmocka_unit_test(test_err_unknown_wire_code_is_a_protocol_error),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
