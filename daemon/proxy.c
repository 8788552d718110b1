/* vmbusifyd's proxy: the host's proxy port into the VMs, and resolvers for the guests' egress. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "daemon/daemon.h"
#include "core/log.h"
#include "proxy/resolve.h"
#include "proxy/vmname.h"

/*
 * Ingress: the host's proxy port takes SOCKS5 and HTTP CONNECT to
 * "<vm>.vmbus:PORT" (the VM's own loopback) or "<address>.<vm>.vmbus:PORT"
 * (what the VM can reach), and nothing else; the VM's agent dials it. The
 * set of VMs is fixed once the daemon runs, so any loop may look names up.
 */

static bool proxy_vm_exists(void *arg, const char *name, size_t n)
{
	struct daemon *d = arg;
	char buf[CONFIG_NAME_MAX + 1];

	if (n >= sizeof(buf))
		return false;
	memcpy(buf, name, n);
	buf[n] = '\0';
	return daemon_find_vm(d, buf) != NULL;
}

static int proxy_route(void *arg, const struct socks_req *sr, const struct net_addr *client,
		       struct tcp_req *out, struct rt_loop **rl, char *why, size_t whylen)
{
	struct daemon *d = arg;
	char vm[CONFIG_NAME_MAX + 1], inner[TCP_NAME_MAX + 1];
	int ret;

	if (sr->to.atyp != SOCKS_ATYP_NAME) {
		snprintf(why, whylen, "only <vm>.vmbus destinations are served here");
		return -EPERM;
	}
	ret = vmname_split(sr->to.name, proxy_vm_exists, d, vm, sizeof(vm), inner, sizeof(inner));
	if (ret <= 0) {
		snprintf(why, whylen, "%s: %s", sr->to.name,
			 ret == 0 ? "only <vm>.vmbus destinations are served here" : "no such VM");
		return ret == 0 ? -EPERM : -EHOSTUNREACH;
	}
	memset(out, 0, sizeof(*out));
	out->cmd = TCP_CONNECT;
	out->to.port = sr->to.port;
	if (net_addr_parse_ip(inner, &out->to.addr) != 0) {
		out->to.addr.family = 0;
		snprintf(out->to.name, sizeof(out->to.name), "%s", inner);
	}
	*rl = vm_loop(daemon_find_vm(d, vm));
	/* The VM goes with the request: the session hook looks it up again by name. */
	snprintf(out->via, sizeof(out->via), "%s", vm);
	return 0;
}

static struct session *proxy_session(void *arg, struct rt_loop *rl, const struct tcp_req *req)
{
	struct vm *vm = daemon_find_vm(arg, req->via);

	return vm ? vm_session(vm) : NULL;
}

static const struct front_ops proxy_front_ops = {
    .route = proxy_route,
    .session = proxy_session,
};

struct resolver *proxy_resolver(struct daemon *d, struct rt_loop *rl)
{
	char why[200];

	if (!d->resolvers[rl->index] &&
	    resolver_new(rl->loop, NULL, &d->resolvers[rl->index], why, sizeof(why)))
		vb_warn("resolver: %s", why);
	return d->resolvers[rl->index];
}

int proxy_start(struct daemon *d, const struct daemon_config *cfg, char *why, size_t whylen)
{
	struct front_config fc = {.who = "proxy"};
	int ret;

	if (!d->policy) {
		ret = policy_new(&d->policy);
		if (ret)
			return ret;
	}
	d->resolvers = calloc((size_t)d->rt.n, sizeof(*d->resolvers));
	if (!d->resolvers)
		return -ENOMEM;
	if (cfg->no_proxy)
		return 0;
	for (int i = 0; i < cfg->nproxy; i++)
		fc.listen[fc.nlisten++] = cfg->proxy[i];
	if (!fc.nlisten) {
		fc.optional = true;
		net_addr_parse("127.0.0.1:1080", &fc.listen[fc.nlisten++]);
		net_addr_parse("[::1]:1080", &fc.listen[fc.nlisten++]);
	}
	fc.socks.protos = SOCKS_P_SOCKS5 | SOCKS_P_HTTP_CONNECT;
	/* As the control socket: root and the vmbusify group (DESIGN.md section 7). */
	fc.group = "vmbusify";
	ret = front_new(&d->proxy, &d->rt, &fc, &proxy_front_ops, d, why, whylen);
	if (ret && fc.optional) {
		vb_warn("proxy port: %s; going on without it", why);
		return 0;
	}
	return ret ? ret : front_start(d->proxy);
}

void proxy_stop(struct daemon *d)
{
	front_free(d->proxy);
	d->proxy = NULL;
	/* The loops are stopped: resolvers and policy go with the process. */
}
