/* The egress policy: rules by address, network, port and name, built-in denies, per-VM limits. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proxy/policy.h"
#include "core/why.h"

/*
 * Theory of operation
 *
 * A policy is three lists: the built-in denies (host-local networks and the
 * host's own addresses), the operator's rules in order, and a default.
 *
 * Checking an address a (IPv4-mapped IPv6 taken as IPv4) for port P and the
 * name it came from, if any:
 *   1. the operator's rules in order; the first that matches decides:
 *        deny  -> denied by it;
 *        allow -> denied by the first built-in containing a, unless the
 *                 rule's network lies inside that built-in network (an
 *                 explicit override); else allowed by it;
 *   2. no match: denied by the first built-in containing a, else the default.
 * So the built-ins come before every allow and the default, as DESIGN.md §7
 * asks, and an operator opens a host-local address only by naming it.
 *
 * Checking a name n for port P before resolving: the same walk, where an
 * address rule cannot be decided yet. A deny address rule can only deny more
 * addresses, so it is passed over; an allow address rule for P means that
 * the addresses will decide, so the name may be resolved. A name rule (or
 * "*") that matches decides now: deny refuses without resolving, allow lets
 * the name be resolved (its addresses then meet the built-ins). With no
 * match, a deny default refuses at once.
 */

enum policy_kind {
	POLICY_ANY = 1, /* "*" */
	POLICY_NET,	/* an address or network */
	POLICY_NAME,	/* one host name */
	POLICY_SUFFIX,	/* "*.suffix": names below suffix */
};

#define POLICY_NAME_MAX 253 /* characters of a host name, without its final dot */

struct policy_rule {
	bool deny;
	uint8_t kind;
	uint8_t family; /* POLICY_NET: NET_IPV4 or NET_IPV6 */
	uint8_t prefix; /* POLICY_NET: network bits */
	uint8_t ip[16];
	uint16_t port_lo, port_hi;
	unsigned line;
	const char *note; /* built-ins: what the network is */
	char name[POLICY_NAME_MAX + 1];
	char text[POLICY_TARGET_MAX + 8]; /* "deny 10.0.0.0/8" */
};

struct policy_list {
	struct policy_rule *v;
	size_t n, cap;
};

struct policy {
	struct policy_list builtin;
	struct policy_list rules;
	bool default_deny;
};

static const struct {
	const char *target;
	const char *note;
} policy_builtins[] = {
    {"127.0.0.0/8", "loopback"}, {"::1", "loopback"},	     {"169.254.0.0/16", "link-local"},
    {"fe80::/10", "link-local"}, {"0.0.0.0/8", "this host"}, {"::", "this host"},
};

/* ---- parsing targets ---- */

static char policy_lower(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool policy_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Parses a decimal number of at most max at s (n characters); returns 0 or -EINVAL. */
static int policy_number(const char *s, size_t n, unsigned long max, unsigned long *out)
{
	unsigned long v = 0;

	if (!n || n > 7)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!policy_digit(s[i]))
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Parses "PORT" or "LOW-HIGH" into r; returns 0 or -EINVAL with the reason. */
static int policy_parse_ports(const char *s, struct policy_rule *r, char *why, size_t whylen)
{
	const char *dash = strchr(s, '-');
	size_t n = dash ? (size_t)(dash - s) : strlen(s);
	unsigned long lo, hi;

	if (policy_number(s, n, 65535, &lo))
		return why_set(
		    why, whylen, -EINVAL,
		    "port must be a number from 0 to 65535 or a range LOW-HIGH, not '%s'", s);
	hi = lo;
	if (dash && policy_number(dash + 1, strlen(dash + 1), 65535, &hi))
		return why_set(
		    why, whylen, -EINVAL,
		    "port must be a number from 0 to 65535 or a range LOW-HIGH, not '%s'", s);
	if (lo > hi)
		return why_set(why, whylen, -EINVAL, "port range %s runs backwards", s);
	r->port_lo = (uint16_t)lo;
	r->port_hi = (uint16_t)hi;
	return 0;
}

/* True when bit i (from the most significant of ip[0]) is set. */
static bool policy_bit(const uint8_t *ip, unsigned i)
{
	return ip[i / 8] & (0x80u >> (i % 8));
}

/* True when the first bits bits of a and b are equal. */
static bool policy_prefix_equal(const uint8_t *a, const uint8_t *b, unsigned bits)
{
	unsigned whole = bits / 8;

	if (memcmp(a, b, whole))
		return false;
	if (bits % 8 == 0)
		return true;
	return ((a[whole] ^ b[whole]) & (0xffu << (8 - bits % 8)) & 0xffu) == 0;
}

/* An IPv4-mapped IPv6 network (::ffff:0:0/96 or inside it) becomes the IPv4 network. */
static void policy_unmap_net(struct policy_rule *r)
{
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	if (r->family != NET_IPV6 || r->prefix < 96 || memcmp(r->ip, mapped, sizeof(mapped)))
		return;
	memmove(r->ip, r->ip + 12, 4);
	memset(r->ip + 4, 0, 12);
	r->family = NET_IPV4;
	r->prefix = (uint8_t)(r->prefix - 96);
}

/* Parses "ADDRESS" or "ADDRESS/BITS" (no brackets, no port) into r. */
static int policy_parse_net(const char *s, struct policy_rule *r, char *why, size_t whylen)
{
	char ip[64], fmt[NET_ADDR_STRLEN];
	const char *slash = strchr(s, '/');
	size_t n = slash ? (size_t)(slash - s) : strlen(s);
	struct net_addr a;
	unsigned long bits, max;

	if (n >= sizeof(ip))
		return why_set(why, whylen, -EINVAL, "'%.*s' is not an IP address", 64, s);
	memcpy(ip, s, n);
	ip[n] = '\0';
	if (net_addr_parse_ip(ip, &a) || ip[0] == '[')
		return why_set(why, whylen, -EINVAL, "'%s' is not an IP address", ip);
	max = a.family == NET_IPV4 ? 32 : 128;
	bits = max;
	if (slash && policy_number(slash + 1, strlen(slash + 1), max, &bits))
		return why_set(why, whylen, -EINVAL, "prefix length must be 0 to %lu, not '%s'",
			       max, slash + 1);
	for (unsigned i = (unsigned)bits; i < max; i++) {
		if (!policy_bit(a.ip, i))
			continue;
		memset(a.ip + (bits + 7) / 8, 0, 16 - (bits + 7) / 8);
		if (bits % 8)
			a.ip[bits / 8] &= (uint8_t)(0xffu << (8 - bits % 8));
		return why_set(why, whylen, -EINVAL, "%s has host bits set (the network is %s/%lu)",
			       s, net_addr_format(&a, false, fmt), bits);
	}
	r->kind = POLICY_NET;
	r->family = a.family;
	r->prefix = (uint8_t)bits;
	memcpy(r->ip, a.ip, sizeof(r->ip));
	policy_unmap_net(r);
	return 0;
}

/*
 * Lower-cases a host name into out[POLICY_NAME_MAX + 1] without its final dot.
 * Returns 0, or -EINVAL for anything but dot-separated labels of 1-63
 * letters, digits, '-' and '_', at most 253 characters in all.
 */
static int policy_name_norm(const char *s, char *out)
{
	size_t n = strlen(s), label = 0;

	if (n && s[n - 1] == '.')
		n--;
	if (!n || n > POLICY_NAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		char c = policy_lower(s[i]);

		if (c == '.') {
			if (!label)
				return -EINVAL;
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || policy_digit(c) || c == '-' || c == '_') {
			if (++label > 63)
				return -EINVAL;
		} else {
			return -EINVAL;
		}
		out[i] = c;
	}
	out[n] = '\0';
	return 0;
}

/* True when the last label of a normalised name is all digits: an address, not a name. */
static bool policy_name_numeric(const char *name)
{
	const char *last = strrchr(name, '.');

	last = last ? last + 1 : name;
	for (; *last; last++) {
		if (!policy_digit(*last))
			return false;
	}
	return true;
}

/* Parses a host name or "*.suffix" into r. */
static int policy_parse_name(const char *s, struct policy_rule *r, char *why, size_t whylen)
{
	bool suffix = s[0] == '*' && s[1] == '.';
	const char *name = suffix ? s + 2 : s;

	if (strchr(name, '*'))
		return why_set(why, whylen, -EINVAL,
			       "'%s': '*' stands alone or starts a pattern '*.suffix'", s);
	if (policy_name_norm(name, r->name))
		return why_set(why, whylen, -EINVAL,
			       "'%s' is neither an IP address nor a host name (labels of "
			       "1-63 letters, digits, '-' and '_', 253 characters in all)",
			       s);
	if (policy_name_numeric(r->name))
		return why_set(why, whylen, -EINVAL,
			       "'%s' is neither an IP address nor a host name", s);
	r->kind = suffix ? POLICY_SUFFIX : POLICY_NAME;
	return 0;
}

/* Splits "[HOST]:PORTS", "HOST:PORTS" or "HOST" into host (in buf) and ports (or NULL). */
static int policy_split_port(const char *s, char *buf, size_t cap, const char **ports,
			     bool *bracketed, char *why, size_t whylen)
{
	const char *colon = strchr(s, ':');
	const char *host = s;
	size_t n;

	*ports = NULL;
	*bracketed = s[0] == '[';
	if (*bracketed) {
		const char *close = strchr(s, ']');

		if (!close)
			return why_set(why, whylen, -EINVAL, "'%s' lacks its closing ']'", s);
		if (close[1] && close[1] != ':')
			return why_set(why, whylen, -EINVAL, "'%s': only ':PORT' may follow ']'",
				       s);
		host = s + 1;
		n = (size_t)(close - host);
		if (close[1])
			*ports = close + 2;
	} else if (colon && strchr(colon + 1, ':')) {
		n = strlen(s); /* a bare IPv6 address or network: no port */
	} else {
		n = colon ? (size_t)(colon - s) : strlen(s);
		if (colon)
			*ports = colon + 1;
	}
	if (n >= cap)
		return why_set(why, whylen, -EINVAL, "'%s' is too long", s);
	memcpy(buf, host, n);
	buf[n] = '\0';
	if (!n)
		return why_set(why, whylen, -EINVAL, "'%s' has no address or name", s);
	return 0;
}

/* Parses a target (see policy.h) into r; returns 0 or -EINVAL with the reason. */
static int policy_parse_target(const char *s, struct policy_rule *r, char *why, size_t whylen)
{
	char host[POLICY_TARGET_MAX + 1];
	const char *ports;
	bool bracketed;
	int ret;

	if (!*s)
		return why_set(why, whylen, -EINVAL, "empty target");
	if (strlen(s) > POLICY_TARGET_MAX)
		return why_set(why, whylen, -EINVAL, "target is longer than %d characters",
			       POLICY_TARGET_MAX);
	ret = policy_split_port(s, host, sizeof(host), &ports, &bracketed, why, whylen);
	if (ret)
		return ret;
	r->port_lo = 0;
	r->port_hi = 65535;
	if (ports) {
		ret = policy_parse_ports(ports, r, why, whylen);
		if (ret)
			return ret;
	}
	if (bracketed) {
		if (!strchr(host, ':'))
			return why_set(why, whylen, -EINVAL,
				       "'%s': brackets are for IPv6 addresses only", s);
		return policy_parse_net(host, r, why, whylen);
	}
	if (!strcmp(host, "*")) {
		r->kind = POLICY_ANY;
		return 0;
	}
	/* Names may start with a digit ("3com.com"); an address is what parses as one. */
	if (strchr(host, ':') || strchr(host, '/') ||
	    !net_addr_parse_ip(host, &(struct net_addr){0}))
		return policy_parse_net(host, r, why, whylen);
	return policy_parse_name(host, r, why, whylen);
}

/* ---- building ---- */

static int policy_list_push(struct policy_list *l, const struct policy_rule *r)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 8;
		struct policy_rule *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *r;
	return 0;
}

/* Parses and appends one rule to l. */
static int policy_list_add(struct policy_list *l, bool deny, const char *target, unsigned line,
			   const char *note, char *why, size_t whylen)
{
	struct policy_rule r;
	int ret;

	memset(&r, 0, sizeof(r));
	ret = policy_parse_target(target, &r, why, whylen);
	if (ret)
		return ret;
	r.deny = deny;
	r.line = line;
	r.note = note;
	snprintf(r.text, sizeof(r.text), "%s %s", deny ? "deny" : "allow", target);
	ret = policy_list_push(l, &r);
	if (ret)
		why_set(why, whylen, ret, "out of memory");
	return ret;
}

int policy_new(struct policy **out)
{
	struct policy *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < sizeof(policy_builtins) / sizeof(policy_builtins[0]); i++) {
		if (policy_list_add(&p->builtin, true, policy_builtins[i].target, 0,
				    policy_builtins[i].note, NULL, 0)) {
			policy_free(p);
			return -ENOMEM;
		}
	}
	*out = p;
	return 0;
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	free(p->builtin.v);
	free(p->rules.v);
	free(p);
}

int policy_add_rule(struct policy *p, bool deny, const char *target, unsigned line, char *why,
		    size_t whylen)
{
	return policy_list_add(&p->rules, deny, target, line, NULL, why, whylen);
}

void policy_set_default(struct policy *p, bool deny)
{
	p->default_deny = deny;
}

int policy_add_host_addr(struct policy *p, const struct net_addr *a)
{
	char text[NET_ADDR_STRLEN];
	struct net_addr u = *a;

	if (u.family != NET_IPV4 && u.family != NET_IPV6)
		return -EINVAL;
	net_addr_unmap(&u);
	net_addr_format(&u, false, text);
	return policy_list_add(&p->builtin, true, text, 0, "host address", NULL, 0);
}

int policy_from_config(const struct config *c, struct policy **out, char *why, size_t whylen)
{
	char reason[256];
	struct policy *p;
	int ret = policy_new(&p);

	if (ret)
		return why_set(why, whylen, ret, "out of memory");
	for (size_t i = 0; i < c->negress; i++) {
		const struct config_rule *cr = &c->egress[i];

		ret = policy_add_rule(p, cr->deny, cr->target, cr->line, reason, sizeof(reason));
		if (ret) {
			policy_free(p);
			return why_set(why, whylen, ret, "line %u: %s %s: %s", cr->line,
				       cr->deny ? "deny" : "allow", cr->target, reason);
		}
	}
	policy_set_default(p, c->egress_default_deny);
	*out = p;
	return 0;
}

/* ---- checking ---- */

static bool policy_port_in(const struct policy_rule *r, uint16_t port)
{
	return port >= r->port_lo && port <= r->port_hi;
}

/* True when address a (IPv4 already unmapped) is inside r's network. */
static bool policy_net_has(const struct policy_rule *r, const struct net_addr *a)
{
	return r->family == a->family && policy_prefix_equal(r->ip, a->ip, r->prefix);
}

/* True when name rule r matches the normalised name. */
static bool policy_name_has(const struct policy_rule *r, const char *name)
{
	size_t n, k;

	if (r->kind == POLICY_NAME)
		return !strcmp(r->name, name);
	n = strlen(name);
	k = strlen(r->name);
	return n > k + 1 && name[n - k - 1] == '.' && !strcmp(name + n - k, r->name);
}

/* True when r matches destination a (and name, if not NULL), whatever its port. */
static bool policy_rule_has(const struct policy_rule *r, const char *name, const struct net_addr *a)
{
	switch (r->kind) {
	case POLICY_ANY:
		return true;
	case POLICY_NET:
		return policy_net_has(r, a);
	default:
		return name && policy_name_has(r, name);
	}
}

/* The first built-in network holding a, or NULL. */
static const struct policy_rule *policy_builtin_of(const struct policy *p, const struct net_addr *a)
{
	for (size_t i = 0; i < p->builtin.n; i++) {
		if (policy_net_has(&p->builtin.v[i], a))
			return &p->builtin.v[i];
	}
	return NULL;
}

/* True when allow rule r names a network inside built-in b: an explicit override. */
static bool policy_overrides(const struct policy_rule *r, const struct policy_rule *b)
{
	return r->kind == POLICY_NET && r->family == b->family && r->prefix >= b->prefix &&
	       policy_prefix_equal(r->ip, b->ip, b->prefix);
}

/* Writes "DEST denied by RULE" into why; returns -POLICY_EDENIED. */
static int policy_deny(const char *dest, const struct policy_rule *r, char *why, size_t whylen)
{
	if (!r)
		return why_set(why, whylen, -POLICY_EDENIED, "%s denied by 'default = deny'", dest);
	if (r->note)
		return why_set(why, whylen, -POLICY_EDENIED, "%s denied by built-in '%s' (%s)",
			       dest, r->text, r->note);
	if (r->line)
		return why_set(why, whylen, -POLICY_EDENIED, "%s denied by '%s' (line %u)", dest,
			       r->text, r->line);
	return why_set(why, whylen, -POLICY_EDENIED, "%s denied by '%s'", dest, r->text);
}

/* The verdict on an allow rule r (NULL: the default allows) for address a. */
static int policy_allow(const struct policy *p, const struct policy_rule *r,
			const struct net_addr *a, const char *dest, char *why, size_t whylen)
{
	for (size_t i = 0; i < p->builtin.n; i++) {
		const struct policy_rule *b = &p->builtin.v[i];

		if (policy_net_has(b, a) && !(r && policy_overrides(r, b)))
			return policy_deny(dest, b, why, whylen);
	}
	return 0;
}

int policy_check_addr(const struct policy *p, const char *name, const struct net_addr *a, char *why,
		      size_t whylen)
{
	char norm[POLICY_NAME_MAX + 1], dest[NET_ADDR_STRLEN];
	struct net_addr u = *a;

	net_addr_unmap(&u);
	net_addr_format(&u, true, dest);
	if (u.family != NET_IPV4 && u.family != NET_IPV6)
		return why_set(why, whylen, -EINVAL, "not an IP address");
	if (name && policy_name_norm(name, norm))
		name = NULL; /* not a name: name rules cannot match it */
	else if (name)
		name = norm;
	for (size_t i = 0; i < p->rules.n; i++) {
		const struct policy_rule *r = &p->rules.v[i];

		if (!policy_port_in(r, u.port) || !policy_rule_has(r, name, &u))
			continue;
		if (r->deny)
			return policy_deny(dest, r, why, whylen);
		return policy_allow(p, r, &u, dest, why, whylen);
	}
	if (p->default_deny) {
		const struct policy_rule *b = policy_builtin_of(p, &u);

		return policy_deny(dest, b, why, whylen);
	}
	return policy_allow(p, NULL, &u, dest, why, whylen);
}

int policy_check_name(const struct policy *p, const char *name, uint16_t port, char *why,
		      size_t whylen)
{
	char norm[POLICY_NAME_MAX + 1], dest[POLICY_NAME_MAX + 8];
	struct net_addr a;

	if (!net_addr_parse_ip(name, &a)) {
		a.port = port;
		return policy_check_addr(p, NULL, &a, why, whylen);
	}
	if (policy_name_norm(name, norm) || policy_name_numeric(norm))
		return why_set(why, whylen, -EINVAL, "'%.64s' is not a host name", name);
	snprintf(dest, sizeof(dest), "%s:%u", norm, port);
	for (size_t i = 0; i < p->rules.n; i++) {
		const struct policy_rule *r = &p->rules.v[i];

		if (!policy_port_in(r, port))
			continue;
		if (r->kind == POLICY_NET) {
			if (r->deny)
				continue;
			return 0; /* the addresses decide */
		}
		if (r->kind != POLICY_ANY && !policy_name_has(r, norm))
			continue;
		return r->deny ? policy_deny(dest, r, why, whylen) : 0;
	}
	return p->default_deny ? policy_deny(dest, NULL, why, whylen) : 0;
}

/* ---- limits ---- */

#define POLICY_TOKEN 1000000000ull /* one token in the bucket's units */

void policy_limits_from_config(const struct config_vm *vm, struct policy_limits *out)
{
	out->max_conns = vm->limits.max_connections;
	out->rate = vm->limits.connect_rate;
	out->burst = vm->limits.connect_burst;
}

void policy_limit_init(struct policy_limit *l, const struct policy_limits *cfg, uint64_t now_ns)
{
	memset(l, 0, sizeof(*l));
	l->cfg = *cfg;
	if (l->cfg.rate && !l->cfg.burst)
		l->cfg.burst = 1;
	l->tokens = (uint64_t)l->cfg.burst * POLICY_TOKEN;
	l->last_ns = now_ns;
}

/* Adds the tokens earned since last_ns, up to the burst. */
static void policy_limit_refill(struct policy_limit *l, uint64_t now_ns)
{
	uint64_t full = (uint64_t)l->cfg.burst * POLICY_TOKEN;
	uint64_t dt = now_ns > l->last_ns ? now_ns - l->last_ns : 0;

	l->last_ns = now_ns > l->last_ns ? now_ns : l->last_ns;
	/* Past the time to fill the bucket from empty, it is full (and dt * rate cannot overflow).
	 */
	if (dt >= full / l->cfg.rate + 1) {
		l->tokens = full;
		return;
	}
	l->tokens += dt * l->cfg.rate;
	if (l->tokens > full)
		l->tokens = full;
}

int policy_limit_acquire(struct policy_limit *l, uint64_t now_ns)
{
	if (l->cfg.max_conns && l->active >= l->cfg.max_conns)
		return -EMFILE;
	if (l->cfg.rate) {
		policy_limit_refill(l, now_ns);
		if (l->tokens < POLICY_TOKEN)
			return -EAGAIN;
		l->tokens -= POLICY_TOKEN;
	}
	l->active++;
	return 0;
}

void policy_limit_release(struct policy_limit *l)
{
	if (l->active)
		l->active--;
}
