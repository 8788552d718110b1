/* The egress policy: which destinations a guest may reach through the host, and how fast. */
#ifndef VB_PROXY_POLICY_H
#define VB_PROXY_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/config.h"
#include "platform/net.h"

/*
 * Rules are "allow TARGET" or "deny TARGET", tried in order; the first that
 * matches decides, and the default decides when none does. A TARGET is
 *
 *   *                     every destination
 *   10.1.2.3, ::1         one address (an IPv4-mapped IPv6 address is IPv4)
 *   10.0.0.0/8, fe80::/10 a network (host bits must be zero)
 *   example.com           one host name, any case, with or without a final dot
 *   *.example.com         every name below example.com (not example.com itself)
 *
 * each optionally followed by ":PORT" or ":LOW-HIGH"; an IPv6 address or
 * network with a port goes in brackets: "[2001:db8::/32]:443".
 *
 * Built-in denies protect the host itself: 127.0.0.0/8, ::1, 169.254.0.0/16,
 * fe80::/10, 0.0.0.0/8 and :: (0.0.0.0 and :: reach the host's own services),
 * plus any address given to policy_add_host_addr(). They are checked before
 * every allow rule and before the default, except that an allow rule whose
 * network lies entirely inside a built-in network ("allow 127.0.0.1:5432")
 * overrides it: naming such an address is the operator's explicit choice.
 * Deny rules keep their place in the order.
 *
 * A destination is checked twice: by the name the guest asked for, before it
 * is resolved (policy_check_name: a name that every rule would deny is never
 * resolved), then by each address it resolved to, or the address the guest
 * gave (policy_check_addr). An address rule can only be decided once the
 * address is known: a name that meets an allow rule for addresses before any
 * rule that decides it is resolved, and its addresses decide.
 *
 * A policy is built once, then only read: one policy may serve every loop.
 */

/*
 * The error of a denial. DESIGN.md speaks of denials generally; this project
 * maps EPERM to the DENIED wire code (core/err.c) and proxy/tcp_srv.h expects
 * it from its check hooks.
 */
#define POLICY_EDENIED EPERM

#define POLICY_TARGET_MAX 300 /* characters of a target as written */

struct policy;

/* A new policy with the built-in denies, no rules, and default allow. Returns 0 or -ENOMEM. */
int policy_new(struct policy **out);
/* Frees p; NULL is accepted. */
void policy_free(struct policy *p);

/*
 * policy_add_rule() - appends "allow target" (deny false) or "deny target".
 * @line: the configuration line it came from, named in reasons; 0 for none.
 * Return: 0, -EINVAL with a one-line reason in why ("prefix length must be
 * 0 to 32, not 33"), -ENOMEM. The string is copied.
 */
int policy_add_rule(struct policy *p, bool deny, const char *target, unsigned line, char *why,
		    size_t whylen);
/* What happens when no rule matches (built-in denies still apply before an allow). */
void policy_set_default(struct policy *p, bool deny);
/*
 * Adds one of the host's own addresses to the built-in denies (the daemon
 * lists its interfaces; see docs/config.md for what is not covered).
 * Return: 0, -EINVAL for an address without a family, -ENOMEM.
 */
int policy_add_host_addr(struct policy *p, const struct net_addr *a);

/*
 * policy_check_name() - checks a name a guest asked for, before resolving it.
 * @name: as the guest sent it (trusted for nothing); an IP literal is
 *        checked as that address.
 * Return: 0 when it may be resolved (each address is still checked),
 * -POLICY_EDENIED with a reason naming the rule that matched
 * ("evil.com:443 denied by 'deny *.evil.com' (line 7)"), or -EINVAL for
 * something that is not a host name.
 */
int policy_check_name(const struct policy *p, const char *name, uint16_t port, char *why,
		      size_t whylen);
/*
 * policy_check_addr() - checks one destination address.
 * @name: the name a resolved to, for name rules; NULL for an address the
 *        guest gave.
 * @a: the address, with the destination port in a->port.
 * Return: 0 when allowed, -POLICY_EDENIED with a reason naming the rule
 * ("127.0.0.1:22 denied by built-in 'deny 127.0.0.0/8' (loopback)").
 */
int policy_check_addr(const struct policy *p, const char *name, const struct net_addr *a, char *why,
		      size_t whylen);

/*
 * policy_from_config() - the policy of a configuration's [egress] section.
 * Return: 0 and *out (the caller's, policy_free()), -EINVAL with
 * "line N: reason" in why for a bad target, -ENOMEM.
 */
int policy_from_config(const struct config *c, struct policy **out, char *why, size_t whylen);

/*
 * Per-VM limits: at most max_conns connections at once, and new connections
 * at rate per second on average, up to burst at once (a token bucket that
 * starts full). A value of 0 means no limit of that kind.
 */
struct policy_limits {
	uint32_t max_conns;
	uint32_t rate;
	uint32_t burst;
};

/* One VM's counters; used on that VM's loop only. */
struct policy_limit {
	struct policy_limits cfg;
	uint32_t active;
	uint64_t tokens; /* in 1e-9 tokens */
	uint64_t last_ns;
};

/* Sets the limits from config_vm (whose values the parser completed from [proxy]). */
void policy_limits_from_config(const struct config_vm *vm, struct policy_limits *out);
/* Starts l with cfg, its bucket full at now_ns (any monotonic clock: clock_now_ns()). */
void policy_limit_init(struct policy_limit *l, const struct policy_limits *cfg, uint64_t now_ns);
/*
 * policy_limit_acquire() - counts a new connection at now_ns.
 * Return: 0 (release it later, once), -EMFILE when max_conns are open,
 * -EAGAIN when the rate is exceeded; a refusal counts nothing.
 */
int policy_limit_acquire(struct policy_limit *l, uint64_t now_ns);
/* Ends a connection that policy_limit_acquire() admitted. */
void policy_limit_release(struct policy_limit *l);

#endif
