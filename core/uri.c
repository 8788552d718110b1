/* Channel URIs: parsing, canonical formatting and the hv_sock GUID mapping. OS-free. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "core/uri.h"
#include "core/why.h"

#define URI_QUOTE_MAX 80 /* longest piece of user text quoted in a reason */

/* The tail (Data2..Data4, in memory order) of "%08x-FACB-11E6-BD58-64006A7986D3". */
static const uint8_t uri_port_tail[12] = {0xCB, 0xFA, 0xE6, 0x11, 0xBD, 0x58,
					  0x64, 0x00, 0x6A, 0x79, 0x86, 0xD3};

/* The VM ids that Hyper-V gives a meaning, and whether each is a bind-only address. */
static const struct uri_wellknown {
	const char *name;
	const char *guid;
	bool listen;
} uri_wellknown[] = {
    {"wildcard", "00000000-0000-0000-0000-000000000000", true},
    {"children", "90db8b89-0d35-4f79-8ce9-49ea0ac8b7cd", true},
    {"loopback", "e0e16197-dd56-4a10-9195-5ee7a155a838", false},
    {"parent", "a42e7cda-d03f-480c-9cc2-a4de20abb878", false},
};
#define URI_NWELLKNOWN (sizeof(uri_wellknown) / sizeof(uri_wellknown[0]))

/* A piece of the input: not NUL-terminated. */
struct uri_span {
	const char *p;
	size_t n;
};

static int uri_quote_len(struct uri_span s)
{
	return (int)(s.n < URI_QUOTE_MAX ? s.n : URI_QUOTE_MAX);
}

static bool uri_span_eq(struct uri_span s, const char *lit)
{
	size_t n = strlen(lit);

	if (s.n != n)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s.p[i];

		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (c != lit[i])
			return false;
	}
	return true;
}

/* Returns the position of the first (or last) c in s, or -1. */
static long uri_span_find(struct uri_span s, char c, bool last)
{
	long found = -1;

	for (size_t i = 0; i < s.n; i++) {
		if (s.p[i] == c) {
			found = (long)i;
			if (!last)
				break;
		}
	}
	return found;
}

static struct uri_span uri_span_sub(struct uri_span s, size_t from, size_t to)
{
	struct uri_span r = {s.p + from, to - from};

	return r;
}

static void uri_span_strip_slash(struct uri_span *s)
{
	if (s->n && s->p[s->n - 1] == '/')
		s->n--;
}

/* Copies s into dst (cap bytes incl. NUL); returns false when it does not fit. */
static bool uri_span_copy(char *dst, size_t cap, struct uri_span s)
{
	if (s.n + 1 > cap)
		return false;
	memcpy(dst, s.p, s.n);
	dst[s.n] = '\0';
	return true;
}

/*
 * uri_number() - parses plain decimal digits (no sign, no spaces) into *out.
 * Return: 0, -EINVAL when s is empty or not digits, -ERANGE when above max.
 */
static int uri_number(struct uri_span s, uint64_t max, uint32_t *out)
{
	uint64_t v = 0;

	if (!s.n)
		return -EINVAL;
	for (size_t i = 0; i < s.n; i++) {
		if (s.p[i] < '0' || s.p[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s.p[i] - '0');
		if (v > max)
			return -ERANGE;
	}
	*out = (uint32_t)v;
	return 0;
}

/* Parses a port or CID called what (e.g. "vsock port"); fills why on failure. */
static int uri_number_why(struct uri_span s, uint64_t max, uint32_t *out, const char *what,
			  char *why, size_t whylen)
{
	int r = uri_number(s, max, out);

	if (r == -ERANGE)
		return why_set(why, whylen, -EINVAL, "%s %.*s out of range (0-%llu)", what,
			       uri_quote_len(s), s.p, (unsigned long long)max);
	if (r < 0 && !s.n)
		return why_set(why, whylen, -EINVAL, "%s is empty", what);
	if (r < 0)
		return why_set(why, whylen, -EINVAL, "%s '%.*s' is not a decimal number", what,
			       uri_quote_len(s), s.p);
	return 0;
}

/* vsock://CID:PORT, vsock://:PORT, vsock://-1:PORT, vsock://CID; an optional trailing '/'. */
static int uri_parse_vsock(struct uri_span s, struct uri *u, char *why, size_t whylen)
{
	struct uri_span cid;
	long colon;
	int r;

	uri_span_strip_slash(&s);
	colon = uri_span_find(s, ':', false);
	u->port = VB_DEFAULT_PORT;
	cid = colon < 0 ? s : uri_span_sub(s, 0, (size_t)colon);
	if (colon >= 0) {
		r = uri_number_why(uri_span_sub(s, (size_t)colon + 1, s.n), UINT32_MAX - 1,
				   &u->port, "vsock port", why, whylen);
		if (r < 0)
			return r;
	}
	if (!cid.n || uri_span_eq(cid, "-1")) {
		u->cid = UINT32_MAX;
	} else {
		r = uri_number_why(cid, UINT32_MAX, &u->cid, "vsock CID", why, whylen);
		if (r < 0)
			return r;
	}
	u->any_cid = u->cid == UINT32_MAX;
	u->listen = u->any_cid;
	return 0;
}

/* An absolute path that fits URI_PATH_MAX; what names it in reasons. */
static int uri_parse_path(struct uri_span s, struct uri *u, const char *what, char *why,
			  size_t whylen)
{
	if (!s.n || s.p[0] != '/')
		return why_set(why, whylen, -EINVAL,
			       "%s path '%.*s' must be absolute (start with '/')", what,
			       uri_quote_len(s), s.p);
	if (!uri_span_copy(u->path, sizeof(u->path), s))
		return why_set(why, whylen, -EINVAL, "%s path is %zu bytes long; at most %d fit",
			       what, s.n, URI_PATH_MAX - 1);
	return 0;
}

/* hybrid:///path/to/socket:PORT, the port after the last ':'. */
static int uri_parse_hybrid(struct uri_span s, struct uri *u, char *why, size_t whylen)
{
	long colon = uri_span_find(s, ':', true);
	int r;

	if (colon < 0)
		return why_set(
		    why, whylen, -EINVAL,
		    "hybrid vsock '%.*s' has no port: expected hybrid:///path/to/socket:PORT",
		    uri_quote_len(s), s.p);
	r = uri_number_why(uri_span_sub(s, (size_t)colon + 1, s.n), UINT32_MAX - 1, &u->port,
			   "hybrid vsock port", why, whylen);
	if (r < 0)
		return r;
	return uri_parse_path(uri_span_sub(s, 0, (size_t)colon), u, "hybrid vsock socket", why,
			      whylen);
}

/* unix:///abs/path or the abstract unix://@name. */
static int uri_parse_unix(struct uri_span s, struct uri *u, char *why, size_t whylen)
{
	if (s.n && s.p[0] == '@') {
		if (s.n == 1)
			return why_set(why, whylen, -EINVAL, "abstract unix socket name is empty");
		if (!uri_span_copy(u->path, sizeof(u->path), s))
			return why_set(
			    why, whylen, -EINVAL,
			    "abstract unix socket name is %zu bytes long; at most %d fit", s.n - 1,
			    URI_PATH_MAX - 2);
		return 0;
	}
	if (!s.n || s.p[0] != '/')
		return why_set(
		    why, whylen, -EINVAL,
		    "unix socket path '%.*s' must be absolute (unix:///path) or abstract "
		    "(unix://@name)",
		    uri_quote_len(s), s.p);
	return uri_parse_path(s, u, "unix socket", why, whylen);
}

static int uri_parse_serial(struct uri_span s, struct uri *u, char *why, size_t whylen)
{
	return uri_parse_path(s, u, "serial device", why, whylen);
}

/*
 * npipe://NAME, the pipe \\.\pipe\NAME of the local machine; Docker's
 * npipe:////./pipe/NAME means the same. NAME is printable ASCII without '\\'.
 */
static int uri_parse_npipe(struct uri_span s, struct uri *u, char *why, size_t whylen)
{
	static const char docker[] = "//./pipe/";

	if (s.n >= sizeof(docker) - 1 && !memcmp(s.p, docker, sizeof(docker) - 1))
		s = uri_span_sub(s, sizeof(docker) - 1, s.n);
	if (!s.n)
		return why_set(why, whylen, -EINVAL, "named pipe name is empty");
	for (size_t i = 0; i < s.n; i++) {
		if (s.p[i] <= ' ' || s.p[i] == 0x7f || s.p[i] == '\\')
			return why_set(why, whylen, -EINVAL,
				       "named pipe name '%.*s' may hold printable ASCII only, "
				       "without blanks or '\\'",
				       uri_quote_len(s), s.p);
	}
	if (!uri_span_copy(u->path, sizeof(u->path), s))
		return why_set(why, whylen, -EINVAL,
			       "named pipe name is %zu bytes long; at most %d fit", s.n,
			       URI_PATH_MAX - 1);
	return 0;
}

static bool uri_hex(char c, uint8_t *v)
{
	if (c >= '0' && c <= '9')
		*v = (uint8_t)(c - '0');
	else if (c >= 'a' && c <= 'f')
		*v = (uint8_t)(c - 'a' + 10);
	else if (c >= 'A' && c <= 'F')
		*v = (uint8_t)(c - 'A' + 10);
	else
		return false;
	return true;
}

/*
 * uri_host_char() - whether c may appear in a host name or IPv4 address, or
 * (v6) in an IPv6 address: hex digits, ':' and '.' before a '%' zone, whose
 * name takes host name characters.
 */
static bool uri_host_char(char c, bool v6, bool in_zone)
{
	uint8_t hex;

	if (v6 && !in_zone)
		return uri_hex(c, &hex) || c == ':' || c == '.' || c == '%';
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c == '.' || c == '-' || c == '_';
}

/* A host name, IPv4 address or (v6) the inside of [brackets]; copied into u->host. */
static int uri_parse_host(struct uri_span h, bool v6, struct uri *u, char *why, size_t whylen)
{
	bool in_zone = false;

	if (v6 && !h.n)
		return why_set(why, whylen, -EINVAL, "tcp host '[]' is empty");
	for (size_t i = 0; i < h.n; i++) {
		if (!uri_host_char(h.p[i], v6, in_zone))
			return why_set(why, whylen, -EINVAL,
				       "tcp host '%.*s' has an invalid character '%c'",
				       uri_quote_len(h), h.p, h.p[i]);
		in_zone = in_zone || h.p[i] == '%';
	}
	/* Brackets hold IPv6 only: uri_format() brackets a host exactly when it has a ':'. */
	if (v6 && !memchr(h.p, ':', h.n))
		return why_set(why, whylen, -EINVAL, "tcp host '[%.*s]' is not an IPv6 address",
			       uri_quote_len(h), h.p);
	if (!uri_span_copy(u->host, sizeof(u->host), h))
		return why_set(why, whylen, -EINVAL, "tcp host is %zu bytes long; at most %d fit",
			       h.n, URI_HOST_MAX - 1);
	return 0;
}

/* tcp://host:PORT, tcp://[v6]:PORT, tcp://:PORT (listen); an optional trailing '/'. */
static int uri_parse_tcp(struct uri_span s, struct uri *u, char *why, size_t whylen)
{
	struct uri_span host;
	size_t hostend = 0, portat;
	bool v6 = s.n && s.p[0] == '[';
	long colon;
	int r;

	uri_span_strip_slash(&s);
	if (v6) {
		long rb = uri_span_find(s, ']', false);

		if (rb < 0)
			return why_set(why, whylen, -EINVAL,
				       "tcp host '%.*s' lacks its closing ']'", uri_quote_len(s),
				       s.p);
		hostend = (size_t)rb + 1;
		host = uri_span_sub(s, 1, (size_t)rb);
		colon = hostend < s.n && s.p[hostend] == ':' ? (long)hostend : -1;
	} else {
		colon = uri_span_find(s, ':', false);
		host = uri_span_sub(s, 0, colon < 0 ? s.n : (size_t)colon);
		if (colon >= 0 &&
		    uri_span_find(uri_span_sub(s, (size_t)colon + 1, s.n), ':', false) >= 0)
			return why_set(why, whylen, -EINVAL,
				       "tcp address '%.*s': IPv6 addresses need brackets, "
				       "tcp://[::1]:PORT",
				       uri_quote_len(s), s.p);
	}
	if (colon < 0)
		return why_set(why, whylen, -EINVAL,
			       "tcp address '%.*s' has no port: expected tcp://host:PORT",
			       uri_quote_len(s), s.p);
	portat = (size_t)colon + 1;
	r = uri_number_why(uri_span_sub(s, portat, s.n), 65535, &u->port, "tcp port", why, whylen);
	if (r < 0)
		return r;
	r = uri_parse_host(host, v6, u, why, whylen);
	u->listen = !host.n;
	return r;
}

/* Parses exactly 36 characters of xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx into text-order bytes. */
static int guid_parse_text(const char *s, uint8_t t[16])
{
	size_t k = 0;

	for (size_t i = 0; i < 36; i++) {
		uint8_t hi, lo;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -EINVAL;
			continue;
		}
		if (!uri_hex(s[i], &hi) || !uri_hex(s[i + 1], &lo))
			return -EINVAL;
		t[k++] = (uint8_t)(hi << 4 | lo);
		i++;
	}
	return 0;
}

/* Converts between text order and Windows' in-memory order; the swap is its own inverse. */
static void guid_swap(const uint8_t in[16], uint8_t out[16])
{
	static const uint8_t order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};

	for (int i = 0; i < 16; i++)
		out[i] = in[order[i]];
}

/*
 * guid_parse() - accepts a GUID in either case, with or without {braces}.
 * Return: 0, or -EINVAL when s is anything else.
 */
int guid_parse(const char *s, struct guid *out)
{
	size_t n = strlen(s);
	uint8_t t[16];

	if (n == 38 && s[0] == '{' && s[37] == '}') {
		s++;
		n = 36;
	}
	if (n != 36 || guid_parse_text(s, t) < 0)
		return -EINVAL;
	guid_swap(t, out->b);
	return 0;
}

static int guid_parse_span(struct uri_span s, struct guid *out)
{
	char tmp[40];

	if (!uri_span_copy(tmp, sizeof(tmp), s))
		return -EINVAL;
	return guid_parse(tmp, out);
}

void guid_format(const struct guid *g, char out[37])
{
	static const char hex[] = "0123456789ABCDEF";
	uint8_t t[16];
	size_t k = 0;

	guid_swap(g->b, t);
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[k++] = '-';
		out[k++] = hex[t[i] >> 4];
		out[k++] = hex[t[i] & 15];
	}
	out[k] = '\0';
}

void guid_from_vsock_port(uint32_t port, struct guid *out)
{
	out->b[0] = (uint8_t)port;
	out->b[1] = (uint8_t)(port >> 8);
	out->b[2] = (uint8_t)(port >> 16);
	out->b[3] = (uint8_t)(port >> 24);
	memcpy(out->b + 4, uri_port_tail, sizeof(uri_port_tail));
}

bool guid_to_vsock_port(const struct guid *g, uint32_t *port)
{
	if (memcmp(g->b + 4, uri_port_tail, sizeof(uri_port_tail)))
		return false;
	*port = (uint32_t)g->b[0] | (uint32_t)g->b[1] << 8 | (uint32_t)g->b[2] << 16 |
		(uint32_t)g->b[3] << 24;
	return true;
}

/* Returns the well-known entry whose GUID is g, or NULL. */
static const struct uri_wellknown *uri_wellknown_by_guid(const struct guid *g)
{
	struct guid w;

	for (size_t i = 0; i < URI_NWELLKNOWN; i++) {
		guid_parse(uri_wellknown[i].guid, &w);
		if (!memcmp(w.b, g->b, sizeof(w.b)))
			return &uri_wellknown[i];
	}
	return NULL;
}

static const struct uri_wellknown *uri_wellknown_by_name(struct uri_span s)
{
	for (size_t i = 0; i < URI_NWELLKNOWN; i++) {
		if (uri_span_eq(s, uri_wellknown[i].name))
			return &uri_wellknown[i];
	}
	return NULL;
}

/* True when s was meant as a GUID ({...} or dashes where a GUID has them), not a VM name. */
static bool uri_looks_like_guid(struct uri_span s)
{
	if (s.n && s.p[0] == '{')
		return true;
	return s.n == 36 && s.p[8] == '-' && s.p[13] == '-' && s.p[18] == '-' && s.p[23] == '-';
}

/* The VM part of an hvsock URI: empty (wildcard), a well-known name, a VMID or a VM name. */
static int uri_parse_hvsock_vm(struct uri_span vm, struct uri *u, char *why, size_t whylen)
{
	const struct uri_wellknown *w = vm.n ? uri_wellknown_by_name(vm) : &uri_wellknown[0];

	if (w) {
		guid_parse(w->guid, &u->vm);
	} else if (guid_parse_span(vm, &u->vm) < 0) {
		if (uri_looks_like_guid(vm))
			return why_set(why, whylen, -EINVAL,
				       "hvsock VMID '%.*s' is not a valid GUID", uri_quote_len(vm),
				       vm.p);
		for (size_t i = 0; i < vm.n; i++) {
			if ((unsigned char)vm.p[i] < 0x20 || vm.p[i] == 0x7f)
				return why_set(why, whylen, -EINVAL,
					       "hvsock VM name has a control character");
		}
		if (!uri_span_copy(u->host, sizeof(u->host), vm))
			return why_set(why, whylen, -EINVAL,
				       "hvsock VM name is %zu bytes long; at most %d fit", vm.n,
				       URI_HOST_MAX - 1);
		return 0;
	}
	u->vm_is_guid = true;
	w = uri_wellknown_by_guid(&u->vm);
	u->listen = w && w->listen;
	return 0;
}

/* The service part: '/' and a GUID, ':' and a port, or nothing (the default port). */
static int uri_parse_hvsock_service(struct uri_span s, long sep, struct uri *u, char *why,
				    size_t whylen)
{
	struct uri_span rest = uri_span_sub(s, sep < 0 ? s.n : (size_t)sep + 1, s.n);
	int r;

	u->has_service = true;
	if (sep < 0 || s.p[sep] == ':') {
		u->port = VB_DEFAULT_PORT;
		if (sep >= 0) {
			r = uri_number_why(rest, UINT32_MAX, &u->port, "hvsock port", why, whylen);
			if (r < 0)
				return r;
		}
		guid_from_vsock_port(u->port, &u->service);
		return 0;
	}
	if (guid_parse_span(rest, &u->service) < 0)
		return why_set(why, whylen, -EINVAL, "hvsock service '%.*s' is not a GUID",
			       uri_quote_len(rest), rest.p);
	guid_to_vsock_port(&u->service, &u->port);
	return 0;
}

/* hvsock://VM[:PORT], hvsock://VM/SERVICE-GUID, hvsock://:PORT, hvsock://wildcard/... */
static int uri_parse_hvsock(struct uri_span s, struct uri *u, char *why, size_t whylen)
{
	long sep = uri_span_find(s, '/', false);
	int r;

	if (sep < 0)
		sep = uri_span_find(s, ':', true);
	r = uri_parse_hvsock_vm(uri_span_sub(s, 0, sep < 0 ? s.n : (size_t)sep), u, why, whylen);
	if (r < 0)
		return r;
	return uri_parse_hvsock_service(s, sep, u, why, whylen);
}

typedef int (*uri_parse_fn)(struct uri_span s, struct uri *u, char *why, size_t whylen);

static const struct uri_scheme {
	const char *name;
	enum uri_kind kind;
	uri_parse_fn parse;
} uri_schemes[] = {
    {"vsock", URI_VSOCK, uri_parse_vsock},    {"hybrid", URI_HYBRID, uri_parse_hybrid},
    {"hvsock", URI_HVSOCK, uri_parse_hvsock}, {"unix", URI_UNIX, uri_parse_unix},
    {"serial", URI_SERIAL, uri_parse_serial}, {"tcp", URI_TCP, uri_parse_tcp},
    {"npipe", URI_NPIPE, uri_parse_npipe},
};
#define URI_NSCHEMES (sizeof(uri_schemes) / sizeof(uri_schemes[0]))
#define URI_EXPECTED "vsock, hybrid, hvsock, unix, serial, tcp or npipe"

/*
 * uri_parse() - parses a channel address into *out (zeroed first).
 * Return: 0, or -EINVAL with a one-line reason in why (which may be NULL).
 */
int uri_parse(const char *s, struct uri *out, char *why, size_t whylen)
{
	const char *sep = s ? strstr(s, "://") : NULL;
	struct uri_span scheme, rest;

	memset(out, 0, sizeof(*out));
	if (!s || !*s)
		return why_set(why, whylen, -EINVAL,
			       "empty channel address (expected scheme://address with "
			       "scheme " URI_EXPECTED ")");
	if (!sep)
		return why_set(why, whylen, -EINVAL,
			       "'%.*s' is not a channel URI (expected scheme://address with "
			       "scheme " URI_EXPECTED ")",
			       URI_QUOTE_MAX, s);
	scheme.p = s;
	scheme.n = (size_t)(sep - s);
	rest.p = sep + 3;
	rest.n = strlen(rest.p);
	for (size_t i = 0; i < URI_NSCHEMES; i++) {
		if (uri_span_eq(scheme, uri_schemes[i].name)) {
			out->kind = uri_schemes[i].kind;
			return uri_schemes[i].parse(rest, out, why, whylen);
		}
	}
	return why_set(why, whylen, -EINVAL, "unknown scheme '%.*s' (expected " URI_EXPECTED ")",
		       uri_quote_len(scheme), scheme.p);
}

static int uri_format_vsock(const struct uri *u, char *buf, size_t len)
{
	if (u->any_cid)
		return snprintf(buf, len, "vsock://:%u", u->port);
	return snprintf(buf, len, "vsock://%u:%u", u->cid, u->port);
}

static int uri_format_hvsock(const struct uri *u, char *buf, size_t len)
{
	const struct uri_wellknown *w = u->vm_is_guid ? uri_wellknown_by_guid(&u->vm) : NULL;
	char vm[37], svc[37];
	const char *vmtext = u->host;
	uint32_t port;
	bool is_port = guid_to_vsock_port(&u->service, &port);

	guid_format(&u->vm, vm);
	if (w == &uri_wellknown[0] && is_port)
		vmtext = "";
	else if (w)
		vmtext = w->name;
	else if (u->vm_is_guid)
		vmtext = vm;
	if (is_port)
		return snprintf(buf, len, "hvsock://%s:%u", vmtext, port);
	guid_format(&u->service, svc);
	return snprintf(buf, len, "hvsock://%s/%s", vmtext, svc);
}

static int uri_format_tcp(const struct uri *u, char *buf, size_t len)
{
	if (strchr(u->host, ':'))
		return snprintf(buf, len, "tcp://[%s]:%u", u->host, u->port);
	return snprintf(buf, len, "tcp://%s:%u", u->host, u->port);
}

/*
 * uri_format() - writes the canonical text of u, which uri_parse() reads back
 * into the same address.
 * Return: its length, or -ENOSPC when buf (len bytes) is too small, -EINVAL
 * for an unknown kind.
 */
int uri_format(const struct uri *u, char *buf, size_t len)
{
	int n;

	switch (u->kind) {
	case URI_VSOCK:
		n = uri_format_vsock(u, buf, len);
		break;
	case URI_HYBRID:
		n = snprintf(buf, len, "hybrid://%s:%u", u->path, u->port);
		break;
	case URI_HVSOCK:
		n = uri_format_hvsock(u, buf, len);
		break;
	case URI_UNIX:
		n = snprintf(buf, len, "unix://%s", u->path);
		break;
	case URI_SERIAL:
		n = snprintf(buf, len, "serial://%s", u->path);
		break;
	case URI_TCP:
		n = uri_format_tcp(u, buf, len);
		break;
	case URI_NPIPE:
		n = snprintf(buf, len, "npipe://%s", u->path);
		break;
	default:
		return -EINVAL;
	}
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return n;
}

bool uri_is_single_connection(const struct uri *u)
{
	return u->kind == URI_SERIAL;
}
