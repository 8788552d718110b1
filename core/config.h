/* The daemon's configuration file: an OS-free parser over a memory buffer (docs/config.md). */
#ifndef VB_CORE_CONFIG_H
#define VB_CORE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The format, line by line (LF or CRLF endings):
 *
 *   # comment
 *   [daemon]
 *   control = unix:///run/vmbusify/control.sock
 *   threads = 2
 *   log-level = info
 *   backend = auto          # auto | uring | epoll
 *   [vm lab1]
 *   uri = unix:///run/vmbusify/lab/lab1.sock
 *   [vm web-7]
 *   uri = vsock://7
 *
 * Blank lines are skipped. A '#' at the start of a line or after a space or
 * tab starts a comment that runs to the end of the line; a '#' inside a word
 * belongs to the value. Spaces and tabs around section names, keys and values
 * are ignored. Keys are lower case and appear at most once per section.
 *
 * [daemon] (at most once) takes control, threads (1-256), log-level (error,
 * warning, warn, info, debug) and backend (auto, uring, epoll). Each
 * [vm NAME] takes uri, which it must have. A VM name is 1-63 characters of
 * A-Z a-z 0-9 . _ - and starts with neither '-' nor '.'. URIs are checked by
 * uri_parse() and are at most 255 characters.
 *
 * [proxy] (at most once) and each [vm NAME] take max-connections (1-1048576,
 * default 1024) and connect-rate ("N", "N/s", either followed by "burst M";
 * N 1-1000000 per second, default 200; M 1-2000000, default 2 N). A VM
 * takes what it does not set from [proxy]; after parsing every VM's limits
 * are complete.
 *
 * [egress] (at most once) holds the egress rules, one a line, in order, as
 * "allow TARGET" or "deny TARGET" (no '=', and repeatable, unlike keys), and
 * "default = allow|deny" (allow when absent). The parser checks the form of
 * a rule line; proxy/policy.c checks the target (policy_from_config()) and
 * reports its errors with the rule's line in the same "line N: ..." form.
 *
 * Errors: unknown sections and keys, duplicate keys, sections and VM names,
 * a missing uri, a line over 1023 characters, a NUL or other control byte.
 */

#define CONFIG_LINE_MAX		 1023 /* characters per line, without its line ending */
#define CONFIG_NAME_MAX		 63   /* characters of a VM name */
#define CONFIG_THREADS_MAX	 256
#define CONFIG_THREADS_AUTO	 0 /* threads not set: the daemon runs one loop per core */
#define CONFIG_DEFAULT_CONTROL	 "unix:///run/vmbusify/control.sock"
#define CONFIG_DEFAULT_STATE_DIR "/var/lib/vmbusify" /* what the daemon keeps across restarts */

#define CONFIG_TARGET_MAX	       300 /* characters of an egress rule's target */
#define CONFIG_VNET_SUBNET	       "10.77.0.0/24"
#define CONFIG_VNET_SUBNET6	       "fd76:6d62::/64"
#define CONFIG_VNET_TUN		       "vmbusify0"
#define CONFIG_VNET_MTU		       65520u
#define CONFIG_VNET_LEASES	       "/var/lib/vmbusify/vnet.leases"
#define CONFIG_VNET_METRIC	       100u
#define CONFIG_DEFAULT_MAX_CONNECTIONS 1024u
#define CONFIG_DEFAULT_CONNECT_RATE    200u /* per second; the burst is twice the rate */
#define CONFIG_MAX_CONNECTIONS_MAX     1048576u
#define CONFIG_CONNECT_RATE_MAX	       1000000u
#define CONFIG_CONNECT_BURST_MAX       2000000u

/* A guest's proxy limits: concurrent connections, and new connections per second (token bucket). */
struct config_limits {
	uint32_t max_connections;
	uint32_t connect_rate;
	uint32_t connect_burst;
};

/* One [egress] rule line: "allow TARGET" or "deny TARGET". */
struct config_rule {
	bool deny;
	unsigned line;
	char target[CONFIG_TARGET_MAX + 1];
};

struct config_vm {
	char name[CONFIG_NAME_MAX + 1];
	char uri[256];
	struct config_limits limits; /* its own, else those of [proxy] */
	bool vnet_default_route;     /* vnet-default-route: the VM's default route goes via vnet */
	uint32_t vnet_metric;	     /* vnet-metric: that route's metric */
};

/* [vnet]: the virtual subnet; off unless the section is there. */
struct config_vnet {
	bool enabled;
	char subnet[64];  /* IPv4 network, checked by vnet/lease.c at start */
	char subnet6[64]; /* IPv6 network; "" for none */
	char tun[16];	  /* the host's TUN device */
	uint32_t mtu;
	char leases[256]; /* where leases are kept */
	bool dns;	  /* a DNS forwarder on the gateway address */
};

struct config {
	char control[256];
	char state_dir[256]; /* an absolute path, or "" for nothing kept */
	int threads;	     /* 1..256, or CONFIG_THREADS_AUTO */
	char log_level[16];
	char backend[16];
	struct config_vm *vms; /* owned; config_free() releases it */
	size_t nvms;
	struct config_limits proxy; /* [proxy]: every VM's defaults */
	struct config_rule *egress; /* owned: the [egress] rules in order */
	size_t negress;
	bool egress_default_deny;
	struct config_vnet vnet;
};

/*
 * Sets the defaults: the control socket above, threads auto, log-level info,
 * backend auto, no VMs, proxy limits 1024 connections and 200 per second
 * (burst 400), no egress rules and default allow.
 */
void config_init(struct config *c);

/*
 * Parses len bytes at buf (not NUL-terminated; buf may be NULL when len is 0)
 * into out, which starts from the defaults. Returns 0, -EINVAL with a one-line
 * reason in why ("line 7: unknown key 'uri2' in [vm lab1]"), or -ENOMEM. On
 * failure out holds the defaults and no memory. The caller owns out and
 * releases it with config_free().
 */
int config_parse(const char *buf, size_t len, struct config *out, char *why, size_t whylen);

/* Releases the VM and rule lists and leaves c without them; c itself is the caller's. */
void config_free(struct config *c);

/*
 * Appends a VM (from --vm NAME=URI) with the limits of [proxy]. Returns 0,
 * -EINVAL with a reason for a bad name, a bad or overlong URI or a name
 * already present, or -ENOMEM. The strings are copied.
 */
int config_add_vm(struct config *c, const char *name, const char *uri, char *why, size_t whylen);

/* Returns the VM called name, or NULL. The pointer lasts until the next config_add_vm(). */
const struct config_vm *config_find_vm(const struct config *c, const char *name);

#endif
