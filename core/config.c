/* The daemon's configuration file parser: sections, keys and checks, over a memory buffer. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/config.h"
#include "core/log.h"
#include "core/uri.h"
#include "core/why.h"
#include "platform/sys.h"

#define CONFIG_QUOTE_MAX 64  /* longest piece of user text quoted in a reason */
#define CONFIG_WHY_MAX	 512 /* a reason before its "line N: " prefix */

enum config_section {
	CONFIG_SEC_NONE,
	CONFIG_SEC_DAEMON,
	CONFIG_SEC_VM,
	CONFIG_SEC_PROXY,
	CONFIG_SEC_EGRESS,
	CONFIG_SEC_VNET,
};

/* The parser's position: the current section and the keys already set in it. */
struct config_parser {
	struct config *c;
	unsigned line;
	enum config_section sec;
	unsigned sec_line; /* where the current section started */
	size_t vm;	   /* index of the current [vm NAME] in c->vms */
	unsigned seen;	   /* bit i: key i of the section's table was set */
	bool daemon_seen;
	bool proxy_seen;
	bool egress_seen;
	bool vnet_seen;
};

/* A key of a section and the function that checks and stores its value. */
struct config_key {
	const char *name;
	int (*set)(struct config_parser *p, const char *val, char *why, size_t whylen);
};

void config_init(struct config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->control, sizeof(c->control), "%s", CONFIG_DEFAULT_CONTROL);
	snprintf(c->state_dir, sizeof(c->state_dir), "%s", CONFIG_DEFAULT_STATE_DIR);
	c->threads = CONFIG_THREADS_AUTO;
	snprintf(c->log_level, sizeof(c->log_level), "info");
	snprintf(c->backend, sizeof(c->backend), "auto");
	c->proxy.max_connections = CONFIG_DEFAULT_MAX_CONNECTIONS;
	c->proxy.connect_rate = CONFIG_DEFAULT_CONNECT_RATE;
	c->proxy.connect_burst = 2 * CONFIG_DEFAULT_CONNECT_RATE;
	snprintf(c->vnet.subnet, sizeof(c->vnet.subnet), "%s", CONFIG_VNET_SUBNET);
	snprintf(c->vnet.subnet6, sizeof(c->vnet.subnet6), "%s", CONFIG_VNET_SUBNET6);
	snprintf(c->vnet.tun, sizeof(c->vnet.tun), "%s", CONFIG_VNET_TUN);
	c->vnet.mtu = CONFIG_VNET_MTU;
	snprintf(c->vnet.leases, sizeof(c->vnet.leases), "%s", CONFIG_VNET_LEASES);
	c->vnet.dns = true;
}

void config_free(struct config *c)
{
	free(c->vms);
	c->vms = NULL;
	c->nvms = 0;
	free(c->egress);
	c->egress = NULL;
	c->negress = 0;
}

const struct config_vm *config_find_vm(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->nvms; i++) {
		if (!strcmp(c->vms[i].name, name))
			return &c->vms[i];
	}
	return NULL;
}

/* ---- values ---- */

static bool config_name_char(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       ch == '.' || ch == '_' || ch == '-';
}

/* Returns 0 for a valid VM name, or -EINVAL with the reason. */
static int config_check_name(const char *name, char *why, size_t whylen)
{
	size_t n = strlen(name);

	if (!n)
		return why_set(why, whylen, -EINVAL, "empty VM name");
	if (n > CONFIG_NAME_MAX)
		return why_set(why, whylen, -EINVAL,
			       "VM name '%.*s...' is longer than %d characters", CONFIG_QUOTE_MAX,
			       name, CONFIG_NAME_MAX);
	if (name[0] == '-' || name[0] == '.')
		return why_set(why, whylen, -EINVAL, "VM name '%s' starts with '%c'", name,
			       name[0]);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)name[i];

		if (config_name_char(name[i]))
			continue;
		if (ch >= 0x20 && ch < 0x7f)
			return why_set(why, whylen, -EINVAL,
				       "VM name '%s' has the character '%c' (allowed: A-Z a-z "
				       "0-9 . _ -)",
				       name, ch);
		return why_set(why, whylen, -EINVAL,
			       "VM name '%s' has the byte 0x%02x (allowed: A-Z a-z 0-9 . _ -)",
			       name, ch);
	}
	return 0;
}

/* Checks uri with uri_parse() and copies it into dst[256]; what names it in the reason. */
static int config_copy_uri(char *dst, const char *uri, const char *what, char *why, size_t whylen)
{
	char reason[256];
	struct uri u;
	size_t n = strlen(uri);

	if (n > 255)
		return why_set(why, whylen, -EINVAL, "%s is %zu characters long; at most 255 fit",
			       what, n);
	if (uri_parse(uri, &u, reason, sizeof(reason)))
		return why_set(why, whylen, -EINVAL, "%s: %s", what, reason);
	memcpy(dst, uri, n + 1);
	return 0;
}

/* Appends a VM with a valid, new name and an empty uri; returns its index in *idx. */
static int config_vm_append(struct config *c, const char *name, size_t *idx, char *why,
			    size_t whylen)
{
	struct config_vm *v;
	int ret = config_check_name(name, why, whylen);

	if (ret)
		return ret;
	if (config_find_vm(c, name))
		return why_set(why, whylen, -EINVAL, "duplicate VM name '%s'", name);
	v = realloc(c->vms, (c->nvms + 1) * sizeof(*v));
	if (!v) {
		why_set(why, whylen, -EINVAL, "out of memory");
		return -ENOMEM;
	}
	c->vms = v;
	v = &c->vms[c->nvms];
	memset(v, 0, sizeof(*v));
	memcpy(v->name, name, strlen(name) + 1);
	v->vnet_metric = CONFIG_VNET_METRIC;
	*idx = c->nvms++;
	return 0;
}

int config_add_vm(struct config *c, const char *name, const char *uri, char *why, size_t whylen)
{
	char tmp[256];
	size_t idx;
	int ret;

	ret = config_copy_uri(tmp, uri, "uri", why, whylen);
	if (ret)
		return ret;
	/* The file may already hold it (with its settings): the same URI is no conflict. */
	for (size_t i = 0; i < c->nvms; i++)
		if (!strcmp(c->vms[i].name, name) && !strcmp(c->vms[i].uri, tmp))
			return 0;
	ret = config_vm_append(c, name, &idx, why, whylen);
	if (ret)
		return ret;
	memcpy(c->vms[idx].uri, tmp, sizeof(tmp));
	c->vms[idx].limits = c->proxy;
	return 0;
}

/* ---- keys ---- */

static int config_set_control(struct config_parser *p, const char *val, char *why, size_t whylen)
{
	return config_copy_uri(p->c->control, val, "control", why, whylen);
}

/* state-dir: an absolute path, or "none" to keep nothing across restarts. */
static int config_set_state_dir(struct config_parser *p, const char *val, char *why, size_t whylen)
{
	size_t n = strlen(val);

	if (!strcmp(val, "none")) {
		p->c->state_dir[0] = '\0';
		return 0;
	}
	if (!sys_path_is_absolute(val) || n >= sizeof(p->c->state_dir))
		return why_set(why, whylen, -EINVAL,
			       "state-dir must be an absolute path of under %zu characters or "
			       "'none', not '%.*s'",
			       sizeof(p->c->state_dir), CONFIG_QUOTE_MAX, val);
	memcpy(p->c->state_dir, val, n + 1);
	return 0;
}

/* threads: a decimal number from 1 to CONFIG_THREADS_MAX. */
static int config_set_threads(struct config_parser *p, const char *val, char *why, size_t whylen)
{
	long n = 0;
	size_t i;

	for (i = 0; val[i] >= '0' && val[i] <= '9' && n <= CONFIG_THREADS_MAX; i++)
		n = n * 10 + (val[i] - '0');
	if (!i || val[i] || n < 1 || n > CONFIG_THREADS_MAX)
		return why_set(why, whylen, -EINVAL,
			       "threads must be a number from 1 to %d, not '%.*s'",
			       CONFIG_THREADS_MAX, CONFIG_QUOTE_MAX, val);
	p->c->threads = (int)n;
	return 0;
}

static int config_set_log_level(struct config_parser *p, const char *val, char *why, size_t whylen)
{
	enum vb_log_level lvl;

	if (strlen(val) >= sizeof(p->c->log_level) || log_level_parse(val, &lvl))
		return why_set(why, whylen, -EINVAL,
			       "log-level must be error, warning, info or debug, not '%.*s'",
			       CONFIG_QUOTE_MAX, val);
	memcpy(p->c->log_level, val, strlen(val) + 1);
	return 0;
}

static int config_set_backend(struct config_parser *p, const char *val, char *why, size_t whylen)
{
	if (strcmp(val, "auto") && strcmp(val, "uring") && strcmp(val, "epoll"))
		return why_set(why, whylen, -EINVAL,
			       "backend must be auto, uring or epoll, not '%.*s'", CONFIG_QUOTE_MAX,
			       val);
	memcpy(p->c->backend, val, strlen(val) + 1);
	return 0;
}

static int config_set_vm_uri(struct config_parser *p, const char *val, char *why, size_t whylen)
{
	return config_copy_uri(p->c->vms[p->vm].uri, val, "uri", why, whylen);
}

/*
 * Reads a decimal number from 1 to max at *s and moves *s past its digits.
 * Returns false for no digits, 0, or more than max.
 */
static bool config_u32(const char **s, uint32_t max, uint32_t *out)
{
	uint64_t n = 0;
	const char *p = *s;

	for (; *p >= '0' && *p <= '9'; p++) {
		n = n * 10 + (uint64_t)(*p - '0');
		if (n > max)
			return false;
	}
	if (p == *s || !n)
		return false;
	*s = p;
	*out = (uint32_t)n;
	return true;
}

/* The limits the current section sets: [proxy]'s or its VM's. */
static struct config_limits *config_limits_of(struct config_parser *p)
{
	return p->sec == CONFIG_SEC_VM ? &p->c->vms[p->vm].limits : &p->c->proxy;
}

static int config_set_max_conns(struct config_parser *p, const char *val, char *why, size_t whylen)
{
	const char *s = val;
	uint32_t n;

	if (!config_u32(&s, CONFIG_MAX_CONNECTIONS_MAX, &n) || *s)
		return why_set(why, whylen, -EINVAL,
			       "max-connections must be a number from 1 to %u, not '%.*s'",
			       CONFIG_MAX_CONNECTIONS_MAX, CONFIG_QUOTE_MAX, val);
	config_limits_of(p)->max_connections = n;
	return 0;
}

/* connect-rate: "N", "N/s", either followed by "burst M" (spaces or tabs between words). */
static int config_set_connect_rate(struct config_parser *p, const char *val, char *why,
				   size_t whylen)
{
	const char *s = val;
	uint32_t rate, burst;
	bool ok = config_u32(&s, CONFIG_CONNECT_RATE_MAX, &rate);

	if (ok && !strncmp(s, "/s", 2))
		s += 2;
	burst = ok ? 2 * rate : 0;
	if (ok && (*s == ' ' || *s == '\t')) {
		while (*s == ' ' || *s == '\t')
			s++;
		ok = !strncmp(s, "burst", 5) && (s[5] == ' ' || s[5] == '\t');
		for (s += ok ? 5 : 0; ok && (*s == ' ' || *s == '\t');)
			s++;
		ok = ok && config_u32(&s, CONFIG_CONNECT_BURST_MAX, &burst);
	}
	if (!ok || *s)
		return why_set(why, whylen, -EINVAL,
			       "connect-rate must be RATE or RATE/s, optionally followed by "
			       "'burst N' (RATE 1 to %u, N 1 to %u), not '%.*s'",
			       CONFIG_CONNECT_RATE_MAX, CONFIG_CONNECT_BURST_MAX, CONFIG_QUOTE_MAX,
			       val);
	config_limits_of(p)->connect_rate = rate;
	config_limits_of(p)->connect_burst = burst;
	return 0;
}

static int config_set_egress_default(struct config_parser *p, const char *val, char *why,
				     size_t whylen)
{
	if (strcmp(val, "allow") && strcmp(val, "deny"))
		return why_set(why, whylen, -EINVAL, "default must be allow or deny, not '%.*s'",
			       CONFIG_QUOTE_MAX, val);
	p->c->egress_default_deny = !strcmp(val, "deny");
	return 0;
}

static int config_bool(const char *val, bool *out, const char *key, char *why, size_t whylen)
{
	if (!strcmp(val, "yes") || !strcmp(val, "true") || !strcmp(val, "on"))
		*out = true;
	else if (!strcmp(val, "no") || !strcmp(val, "false") || !strcmp(val, "off"))
		*out = false;
	else
		return why_set(why, whylen, -EINVAL, "%s must be yes or no, not '%.*s'", key,
			       CONFIG_QUOTE_MAX, val);
	return 0;
}

static int config_set_vm_vnet_route(struct config_parser *p, const char *val, char *why,
				    size_t whylen)
{
	return config_bool(val, &p->c->vms[p->vm].vnet_default_route, "vnet-default-route", why,
			   whylen);
}

static int config_set_vm_vnet_metric(struct config_parser *p, const char *val, char *why,
				     size_t whylen)
{
	const char *s = val;
	uint32_t v;

	if (!config_u32(&s, 0xffffffffu, &v) || *s)
		return why_set(why, whylen, -EINVAL, "vnet-metric must be a number, not '%.*s'",
			       CONFIG_QUOTE_MAX, val);
	p->c->vms[p->vm].vnet_metric = v;
	return 0;
}

/* Copies a [vnet] string; the vnet code checks what it means at start. */
static int config_vnet_str(char *dst, size_t cap, const char *val, const char *key, char *why,
			   size_t whylen)
{
	if (!*val || strlen(val) >= cap)
		return why_set(why, whylen, -EINVAL, "%s must be 1 to %zu characters", key,
			       cap - 1);
	snprintf(dst, cap, "%s", val);
	return 0;
}

static int config_set_vnet_subnet(struct config_parser *p, const char *val, char *why,
				  size_t whylen)
{
	return config_vnet_str(p->c->vnet.subnet, sizeof(p->c->vnet.subnet), val, "subnet", why,
			       whylen);
}

static int config_set_vnet_subnet6(struct config_parser *p, const char *val, char *why,
				   size_t whylen)
{
	if (!strcmp(val, "none")) {
		p->c->vnet.subnet6[0] = '\0';
		return 0;
	}
	return config_vnet_str(p->c->vnet.subnet6, sizeof(p->c->vnet.subnet6), val, "subnet6", why,
			       whylen);
}

static int config_set_vnet_tun(struct config_parser *p, const char *val, char *why, size_t whylen)
{
	for (const char *c = val; *c; c++)
		if (*c == '/' || *c == ':' || *c <= ' ')
			return why_set(why, whylen, -EINVAL, "tun: '%.*s' is not a device name",
				       CONFIG_QUOTE_MAX, val);
	return config_vnet_str(p->c->vnet.tun, sizeof(p->c->vnet.tun), val, "tun (a device name)",
			       why, whylen);
}

static int config_set_vnet_mtu(struct config_parser *p, const char *val, char *why, size_t whylen)
{
	const char *s = val;
	uint32_t v;

	if (!config_u32(&s, 65535, &v) || *s || v < 1280)
		return why_set(why, whylen, -EINVAL, "mtu must be 1280 to 65535, not '%.*s'",
			       CONFIG_QUOTE_MAX, val);
	p->c->vnet.mtu = v;
	return 0;
}

static int config_set_vnet_leases(struct config_parser *p, const char *val, char *why,
				  size_t whylen)
{
	if (val[0] != '/')
		return why_set(why, whylen, -EINVAL, "leases must be an absolute path");
	return config_vnet_str(p->c->vnet.leases, sizeof(p->c->vnet.leases), val, "leases", why,
			       whylen);
}

static int config_set_vnet_dns(struct config_parser *p, const char *val, char *why, size_t whylen)
{
	return config_bool(val, &p->c->vnet.dns, "dns", why, whylen);
}

static const struct config_key config_vnet_keys[] = {
    {"subnet", config_set_vnet_subnet}, {"subnet6", config_set_vnet_subnet6},
    {"tun", config_set_vnet_tun},	{"mtu", config_set_vnet_mtu},
    {"leases", config_set_vnet_leases}, {"dns", config_set_vnet_dns},
};

static const struct config_key config_daemon_keys[] = {
    {"control", config_set_control}, {"state-dir", config_set_state_dir},
    {"threads", config_set_threads}, {"log-level", config_set_log_level},
    {"backend", config_set_backend},
};

static const struct config_key config_vm_keys[] = {
    {"uri", config_set_vm_uri},
    {"max-connections", config_set_max_conns},
    {"connect-rate", config_set_connect_rate},
    {"vnet-default-route", config_set_vm_vnet_route},
    {"vnet-metric", config_set_vm_vnet_metric},
};

static const struct config_key config_proxy_keys[] = {
    {"max-connections", config_set_max_conns},
    {"connect-rate", config_set_connect_rate},
};

static const struct config_key config_egress_keys[] = {
    {"default", config_set_egress_default},
};

#define CONFIG_NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Writes the current section as it appears in the file, for reasons. */
static void config_section_text(const struct config_parser *p, char *buf, size_t len)
{
	if (p->sec == CONFIG_SEC_VM)
		snprintf(buf, len, "[vm %s]", p->c->vms[p->vm].name);
	else if (p->sec == CONFIG_SEC_PROXY)
		snprintf(buf, len, "[proxy]");
	else if (p->sec == CONFIG_SEC_EGRESS)
		snprintf(buf, len, "[egress]");
	else if (p->sec == CONFIG_SEC_VNET)
		snprintf(buf, len, "[vnet]");
	else
		snprintf(buf, len, "[daemon]");
}

/* Sets key to val in the current section; rejects unknown and repeated keys. */
static int config_key_value(struct config_parser *p, const char *key, const char *val, char *why,
			    size_t whylen)
{
	const struct config_key *keys = config_daemon_keys;
	size_t n = CONFIG_NELEM(config_daemon_keys);
	char sec[CONFIG_NAME_MAX + 8];

	if (p->sec == CONFIG_SEC_NONE)
		return why_set(why, whylen, -EINVAL, "key '%.*s' before any section",
			       CONFIG_QUOTE_MAX, key);
	if (p->sec == CONFIG_SEC_VM) {
		keys = config_vm_keys;
		n = CONFIG_NELEM(config_vm_keys);
	} else if (p->sec == CONFIG_SEC_PROXY) {
		keys = config_proxy_keys;
		n = CONFIG_NELEM(config_proxy_keys);
	} else if (p->sec == CONFIG_SEC_EGRESS) {
		keys = config_egress_keys;
		n = CONFIG_NELEM(config_egress_keys);
	} else if (p->sec == CONFIG_SEC_VNET) {
		keys = config_vnet_keys;
		n = CONFIG_NELEM(config_vnet_keys);
	}
	config_section_text(p, sec, sizeof(sec));
	for (size_t i = 0; i < n; i++) {
		if (strcmp(key, keys[i].name))
			continue;
		if (p->seen & (1u << i))
			return why_set(why, whylen, -EINVAL, "duplicate key '%s' in %s", key, sec);
		p->seen |= 1u << i;
		return keys[i].set(p, val, why, whylen);
	}
	return why_set(why, whylen, -EINVAL, "unknown key '%.*s' in %s", CONFIG_QUOTE_MAX, key,
		       sec);
}

/* ---- sections ---- */

/* Closes the current section: a [vm NAME] must have had its uri. */
static int config_section_end(struct config_parser *p, char *why, size_t whylen)
{
	if (p->sec != CONFIG_SEC_VM || p->c->vms[p->vm].uri[0])
		return 0;
	p->line = p->sec_line;
	return why_set(why, whylen, -EINVAL, "[vm %s] has no uri", p->c->vms[p->vm].name);
}

static bool config_is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Trims spaces and tabs at both ends of s, in place; returns the first kept character. */
static char *config_trim(char *s)
{
	size_t n;

	while (config_is_space(*s))
		s++;
	n = strlen(s);
	while (n && config_is_space(s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* Enters a section that may appear only once; *seen records that it has. */
static int config_section_once(struct config_parser *p, enum config_section sec, bool *seen,
			       const char *name, char *why, size_t whylen)
{
	if (*seen)
		return why_set(why, whylen, -EINVAL, "duplicate section [%s]", name);
	*seen = true;
	p->sec = sec;
	return 0;
}

/* Starts the section named by the text between '[' and ']' (already trimmed). */
static int config_section_start(struct config_parser *p, char *name, char *why, size_t whylen)
{
	int ret = config_section_end(p, why, whylen);

	if (ret)
		return ret;
	p->sec_line = p->line;
	p->seen = 0;
	if (!strcmp(name, "daemon"))
		return config_section_once(p, CONFIG_SEC_DAEMON, &p->daemon_seen, name, why,
					   whylen);
	if (!strcmp(name, "proxy"))
		return config_section_once(p, CONFIG_SEC_PROXY, &p->proxy_seen, name, why, whylen);
	if (!strcmp(name, "egress"))
		return config_section_once(p, CONFIG_SEC_EGRESS, &p->egress_seen, name, why,
					   whylen);
	if (!strcmp(name, "vnet")) {
		p->c->vnet.enabled = true;
		return config_section_once(p, CONFIG_SEC_VNET, &p->vnet_seen, name, why, whylen);
	}
	if (!strcmp(name, "vm"))
		return why_set(why, whylen, -EINVAL, "section [vm] needs a name: [vm NAME]");
	if (strncmp(name, "vm", 2) || !config_is_space(name[2]))
		return why_set(
		    why, whylen, -EINVAL,
		    "unknown section [%.*s] (expected [daemon], [proxy], [egress], [vnet] "
		    "or [vm NAME])",
		    CONFIG_QUOTE_MAX, name);
	p->sec = CONFIG_SEC_VM;
	return config_vm_append(p->c, config_trim(name + 3), &p->vm, why, whylen);
}

/* Cuts a comment: '#' at the start or after a space or tab runs to the end. */
static void config_strip_comment(char *s)
{
	for (size_t i = 0; s[i]; i++) {
		if (s[i] == '#' && (!i || config_is_space(s[i - 1]))) {
			s[i] = '\0';
			return;
		}
	}
}

/*
 * An [egress] line that starts with the word "allow" or "deny": a rule with
 * one target. Returns 1 when s is not such a line, else 0 or an error.
 */
static int config_egress_rule(struct config_parser *p, char *s, char *why, size_t whylen)
{
	size_t w = strcspn(s, " \t=");
	struct config_rule *v, *r;
	const char *action = s;
	char *target;
	bool end = !s[w];

	if (!(w == 5 && !strncmp(s, "allow", 5)) && !(w == 4 && !strncmp(s, "deny", 4)))
		return 1;
	target = config_trim(s + w + !end);
	if (s[w] == '=' || *target == '=')
		return why_set(why, whylen, -EINVAL, "egress rules take no '=': %.*s TARGET",
			       (int)w, action);
	s[w] = '\0';
	if (!*target)
		return why_set(why, whylen, -EINVAL, "'%s' needs a target: %s TARGET", action,
			       action);
	if (target[strcspn(target, " \t")])
		return why_set(why, whylen, -EINVAL, "'%s' takes one target, not '%.*s'", action,
			       CONFIG_QUOTE_MAX, target);
	if (strlen(target) > CONFIG_TARGET_MAX)
		return why_set(why, whylen, -EINVAL, "target is longer than %d characters",
			       CONFIG_TARGET_MAX);
	v = realloc(p->c->egress, (p->c->negress + 1) * sizeof(*v));
	if (!v) {
		why_set(why, whylen, -EINVAL, "out of memory");
		return -ENOMEM;
	}
	p->c->egress = v;
	r = &v[p->c->negress++];
	memset(r, 0, sizeof(*r));
	r->deny = action[0] == 'd';
	r->line = p->line;
	memcpy(r->target, target, strlen(target) + 1);
	return 0;
}

/* Parses one line (NUL-terminated, without its ending), modifying it in place. */
static int config_line(struct config_parser *p, char *line, char *why, size_t whylen)
{
	char *s, *eq;
	size_t n;

	config_strip_comment(line);
	s = config_trim(line);
	n = strlen(s);
	if (!n)
		return 0;
	if (s[0] == '[') {
		if (s[n - 1] != ']')
			return why_set(why, whylen, -EINVAL,
				       "section header lacks its closing ']'");
		s[n - 1] = '\0';
		return config_section_start(p, config_trim(s + 1), why, whylen);
	}
	if (p->sec == CONFIG_SEC_EGRESS) {
		int ret = config_egress_rule(p, s, why, whylen);

		if (ret <= 0)
			return ret;
	}
	eq = strchr(s, '=');
	if (!eq && p->sec == CONFIG_SEC_EGRESS)
		return why_set(why, whylen, -EINVAL,
			       "expected 'allow TARGET', 'deny TARGET' or 'default = allow|deny', "
			       "got '%.*s'",
			       CONFIG_QUOTE_MAX, s);
	if (!eq)
		return why_set(why, whylen, -EINVAL,
			       "expected 'key = value' or '[section]', got '%.*s'",
			       CONFIG_QUOTE_MAX, s);
	*eq = '\0';
	if (!*config_trim(s))
		return why_set(why, whylen, -EINVAL, "a key is missing before '='");
	return config_key_value(p, config_trim(s), config_trim(eq + 1), why, whylen);
}

/*
 * Copies the raw line of n bytes at src into dst[CONFIG_LINE_MAX + 1], without
 * its CR, after checking its length and bytes. Returns 0 or -EINVAL.
 */
static int config_take_line(char *dst, const char *src, size_t n, char *why, size_t whylen)
{
	if (n && src[n - 1] == '\r')
		n--;
	if (n > CONFIG_LINE_MAX)
		return why_set(why, whylen, -EINVAL, "line is longer than %d characters",
			       CONFIG_LINE_MAX);
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)src[i];

		if (!ch)
			return why_set(why, whylen, -EINVAL, "NUL byte in column %zu", i + 1);
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return why_set(why, whylen, -EINVAL,
				       "control character 0x%02x in column %zu", ch, i + 1);
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
	return 0;
}

/* Runs every line of buf through the parser; stops at the first error. */
static int config_lines(struct config_parser *p, const char *buf, size_t len, char *why,
			size_t whylen)
{
	char line[CONFIG_LINE_MAX + 1];
	size_t off = 0;
	int ret;

	if (len >= 3 && !memcmp(buf, "\xef\xbb\xbf", 3))
		off = 3; /* the UTF-8 byte order mark some Windows editors write */
	while (off < len) {
		const char *nl = memchr(buf + off, '\n', len - off);
		size_t n = nl ? (size_t)(nl - (buf + off)) : len - off;

		p->line++;
		ret = config_take_line(line, buf + off, n, why, whylen);
		if (!ret)
			ret = config_line(p, line, why, whylen);
		if (ret)
			return ret;
		off += n + (nl ? 1 : 0);
	}
	return config_section_end(p, why, whylen);
}

/* Gives every VM the [proxy] limits it did not set itself (0 means not set). */
static void config_inherit_limits(struct config *c)
{
	for (size_t i = 0; i < c->nvms; i++) {
		struct config_limits *l = &c->vms[i].limits;

		if (!l->max_connections)
			l->max_connections = c->proxy.max_connections;
		if (!l->connect_rate) {
			l->connect_rate = c->proxy.connect_rate;
			l->connect_burst = c->proxy.connect_burst;
		}
	}
}

/**
 * config_parse() - parse a configuration file held in memory
 * @buf: len bytes, not NUL-terminated; NULL when len is 0
 * @out: filled from the defaults on; owned by the caller (config_free())
 * @why: receives "line N: reason" on failure
 *
 * Return: 0, -EINVAL for a bad file, -ENOMEM. On failure *out holds the defaults.
 */
int config_parse(const char *buf, size_t len, struct config *out, char *why, size_t whylen)
{
	struct config_parser p = {.c = out};
	char reason[CONFIG_WHY_MAX];
	int ret;

	config_init(out);
	ret = config_lines(&p, buf, len, reason, sizeof(reason));
	if (!ret) {
		config_inherit_limits(out);
		return 0;
	}
	if (why && whylen)
		snprintf(why, whylen, "line %u: %s", p.line, reason);
	config_free(out);
	config_init(out);
	return ret;
}
