/* vmbusifyd's life: configuration, start, stop. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "daemon/daemon.h"
#include "platform/sys.h"
#include "core/err.h"
#include "core/log.h"
#include "core/uri.h"

#define DAEMON_HOST_ADDRS_MAX 1024

int daemon_init(struct daemon *d, const struct daemon_config *cfg, char *why, size_t whylen)
{
	struct uri u;
	int ret;

	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->fwd_lock, NULL);
	if (uri_parse(cfg->control, &u, why, whylen))
		return -EINVAL;
	/* A unix socket on Linux, a named pipe on Windows: the transport refuses the other. */
	if ((u.kind != URI_UNIX || u.path[0] != '/') && u.kind != URI_NPIPE) {
		snprintf(why, whylen,
			 "the control socket must be a unix:///path or npipe://NAME URI, not %s",
			 cfg->control);
		return -EINVAL;
	}
	snprintf(d->control_uri, sizeof(d->control_uri), "%s", cfg->control);
	if (cfg->state_dir && cfg->state_dir[0])
		snprintf(d->fwd_file, sizeof(d->fwd_file), "%s/forwards", cfg->state_dir);
	d->topts.token_file = cfg->token_file;
	d->topts.connect_timeout_ms = 5000;
	ret = runtime_init(&d->rt, cfg->threads, cfg->backend);
	if (ret)
		snprintf(why, whylen, "cannot start the event loops: %s", strerror(-ret));
	return ret;
}

struct vm *daemon_find_vm(struct daemon *d, const char *name)
{
	for (size_t i = 0; i < d->nvms; i++)
		if (!strcmp(vm_name(d->vms[i]), name))
			return d->vms[i];
	return NULL;
}

int daemon_add_vm(struct daemon *d, const struct config_vm *cv, char *why, size_t whylen)
{
	const char *name = cv->name;
	struct vm **vms;
	struct vm *vm;
	int ret;

	if (daemon_find_vm(d, name)) {
		snprintf(why, whylen, "VM '%s' is defined twice", name);
		return -EEXIST;
	}
	vms = realloc(d->vms, (d->nvms + 1) * sizeof(*vms));
	if (!vms)
		return -ENOMEM;
	d->vms = vms;
	ret = vm_new(d, cv, &vm, why, whylen);
	if (ret)
		return ret;
	d->vms[d->nvms++] = vm;
	return 0;
}

int daemon_set_vnet(struct daemon *d, const struct config *c, char *why, size_t whylen)
{
	struct vnet_router_cfg vc = {
	    .mtu = c->vnet.mtu, .leases = c->vnet.leases, .nat = true, .dns = c->vnet.dns};
	int ret;

	if (!c->vnet.enabled)
		return 0;
	snprintf(vc.tun, sizeof(vc.tun), "%s", c->vnet.tun);
	ret = vnet_net_parse4(c->vnet.subnet, &vc.net, why, whylen);
	if (!ret && c->vnet.subnet6[0])
		ret = vnet_net_parse6(c->vnet.subnet6, &vc.net, why, whylen);
	if (!ret) {
		char *slash = strrchr(vc.leases, '/');

		/* The lease file's directory is ours to make (/var/lib/vmbusify). */
		if (slash && slash != vc.leases) {
			char dir[256];

			snprintf(dir, sizeof(dir), "%.*s", (int)(slash - vc.leases), vc.leases);
			sys_mkdir_p(dir);
		}
		ret = vnet_router_new(&d->vnet, &d->rt, &vc, why, whylen);
	}
	if (!ret)
		vb_info("vnet: %s is the gateway of %s%s%s", c->vnet.tun, c->vnet.subnet,
			c->vnet.subnet6[0] ? " and " : "", c->vnet.subnet6);
	return ret;
}

int daemon_set_egress(struct daemon *d, const struct config *c, char *why, size_t whylen)
{
	policy_free(d->policy);
	d->policy = NULL;
	return policy_from_config(c, &d->policy, why, whylen);
}

/*
 * The host's own addresses join the egress policy's built-in denies, so a
 * guest cannot reach a host service through the host's external address
 * either. Listed once, at start, after the vnet gateway's are in place; the
 * policy is read-only once the loops run.
 */
static int daemon_deny_host_addrs(struct daemon *d, char *why, size_t whylen)
{
	struct net_addr addrs[DAEMON_HOST_ADDRS_MAX];
	int n = net_host_addrs(addrs, DAEMON_HOST_ADDRS_MAX), ret = 0;

	if (n < 0) {
		snprintf(why, whylen, "cannot list the host's addresses: %s", strerror(-n));
		return n;
	}
	for (int i = 0; i < n && !ret; i++)
		ret = policy_add_host_addr(d->policy, &addrs[i]);
	if (ret)
		snprintf(why, whylen, "cannot add the host's addresses to the policy: %s",
			 strerror(-ret));
	else
		vb_dbg("egress: %d addresses of this host are denied", n);
	return ret;
}

/* VMs are spread over the loops; the control socket lives on the first. */
int daemon_start(struct daemon *d, const struct daemon_config *cfg, char *why, size_t whylen)
{
	int ret;

	d->ctl_loop = &d->rt.loops[0];
	if (d->policy) {
		ret = daemon_deny_host_addrs(d, why, whylen);
		if (ret)
			return ret;
	}
	for (size_t i = 0; i < d->nvms; i++)
		vm_assign_loop(d->vms[i], runtime_pick(&d->rt));
	ret = control_start(d, why, whylen);
	if (ret)
		return ret;
	ret = proxy_start(d, cfg, why, whylen);
	if (ret)
		return ret;
	if (d->vnet)
		vnet_router_start(d->vnet);
	ret = runtime_start(&d->rt);
	if (ret) {
		snprintf(why, whylen, "cannot start the loop threads: %s", strerror(-ret));
		return ret;
	}
	for (size_t i = 0; i < d->nvms; i++)
		vm_start(d->vms[i]);
	if (d->fwd_file[0]) {
		char *slash = strrchr(d->fwd_file, '/');

		*slash = '\0';
		sys_mkdir_p(d->fwd_file); /* the state directory is ours to make */
		*slash = '/';
		forward_restore(d);
	}
	vb_info("serving %zu VM%s on %d loop%s (%s), control socket %s", d->nvms,
		d->nvms == 1 ? "" : "s", d->rt.n, d->rt.n == 1 ? "" : "s",
		loop_backend_name(loop_backend(d->ctl_loop->loop)), d->control_uri);
	return 0;
}

/* Ends every session with a GOAWAY, then stops the loops. */
void daemon_stop(struct daemon *d)
{
	/* Every agent and CLI client is told, rather than finding its channel cut. */
	runtime_goodbye(&d->rt, VB_WERR_SHUTDOWN, "vmbusifyd is stopping", RT_GOODBYE_MS);
	runtime_stop(&d->rt);
	proxy_stop(d);
	vnet_router_free(d->vnet);
	d->vnet = NULL;
	if (d->ctl)
		transport_listener_close(d->ctl);
	d->ctl = NULL;
}
