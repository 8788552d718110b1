/* vmbusifyd: holds a session to each VM, serves the CLI on a control socket. */
#ifndef VB_DAEMON_DAEMON_H
#define VB_DAEMON_DAEMON_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include "core/runtime.h"
#include "core/session.h"
#include "core/config.h"
#include "core/strbuf.h"
#include "core/uri.h"
#include "platform/net.h"
#include "platform/transport.h"
#include "proxy/front.h"
#include "proxy/policy.h"
#include "vnet/router.h"

struct vm;

struct daemon_config {
	const char *control; /* a unix:///path URI, or npipe://NAME (Windows) */
	int threads;	     /* loops; <= 0: one per core */
	enum loop_backend backend;
	const char *token_file; /* for tcp:// VMs */
	const char *state_dir;	/* kept across restarts (the forwards); NULL or "": nothing */
	/* The host's proxy port (ingress to VMs); none when nproxy is 0 and no_proxy. */
	struct net_addr proxy[FRONT_LISTEN_MAX];
	int nproxy;
	bool no_proxy;
};

struct daemon {
	struct runtime rt;
	struct vm **vms;
	size_t nvms;
	struct rt_loop *ctl_loop;
	struct transport_listener *ctl;
	struct transport_accept_req ctl_acc;
	struct transport_opts topts;
	char control_uri[URI_PATH_MAX + 16]; /* unix:///path or npipe://NAME */
	struct policy *policy;		     /* egress: what guests may reach */
	struct resolver **resolvers;	     /* one per loop, made on first use by that loop */
	struct front *proxy;		     /* ingress: the host's proxy port */
	struct vnet_router *vnet;	     /* NULL: vnet is off */
	pthread_mutex_t fwd_lock;	     /* the forwards (daemon/forward.c) */
	struct fwd *fwds;
	uint32_t fwd_next_id;
	char fwd_file[300]; /* where the forwards are kept; "" for nowhere */
};

int daemon_init(struct daemon *d, const struct daemon_config *cfg, char *why, size_t whylen);
/* Adds a VM before start; returns 0 or -EINVAL/-EEXIST with a reason. */
int daemon_add_vm(struct daemon *d, const struct config_vm *cv, char *why, size_t whylen);
/*
 * Sets up vnet from the configuration's [vnet] section (nothing without it):
 * the host's TUN, addresses, forwarding and NAT. Before daemon_start().
 */
int daemon_set_vnet(struct daemon *d, const struct config *c, char *why, size_t whylen);
/* Takes the egress policy of the configuration; returns 0 or -EINVAL with a reason. */
int daemon_set_egress(struct daemon *d, const struct config *c, char *why, size_t whylen);
/* Opens the control socket, starts the loops and connects every VM. */
int daemon_start(struct daemon *d, const struct daemon_config *cfg, char *why, size_t whylen);
void daemon_stop(struct daemon *d);
struct vm *daemon_find_vm(struct daemon *d, const char *name);

/* daemon/vm.c */
int vm_new(struct daemon *d, const struct config_vm *cv, struct vm **out, char *why, size_t whylen);
void vm_free(struct vm *vm);
const char *vm_name(const struct vm *vm);
/* Pins the VM to a loop, before start. */
void vm_assign_loop(struct vm *vm, struct rt_loop *rl);
struct rt_loop *vm_loop(const struct vm *vm);
/* On any thread: starts connecting on the VM's loop. */
void vm_start(struct vm *vm);
/* On the VM's loop: a CLI connection bound to this VM; the fd is the VM's now. */
void vm_attach_client(struct vm *vm, pl_fd fd);
/* On the VM's loop: answers a `ping` control request with count PINGs. */
void vm_ping_start(struct vm *vm, struct stream *st, uint32_t count, uint32_t interval_ms,
		   bool json);
/* On the VM's loop: the VM's session when it is up, else NULL. */
struct session *vm_session(struct vm *vm);
/* On the VM's loop: serves a TCP stream the guest opened (egress, under the policy). */
void vm_serve_tcp(struct vm *vm, struct stream *st, const uint8_t *req, size_t len);
/* On the VM's loop: appends the VM's state as JSON or a table row. */
void vm_describe(struct vm *vm, struct strbuf *out, bool json);

/* daemon/proxy.c */
/* The guest-facing TCP service and the host's proxy port. */
int proxy_start(struct daemon *d, const struct daemon_config *cfg, char *why, size_t whylen);
void proxy_stop(struct daemon *d);
/* On loop rl: its resolver (made on first use), or NULL. */
struct resolver *proxy_resolver(struct daemon *d, struct rt_loop *rl);

/* daemon/forward.c */
struct fwd;
struct tcp_target;
/* On the control loop: adds "-L SPEC" or "-R SPEC"; 0 with a line in msg, or an error with why. */
int forward_add(struct daemon *d, const char *dir, const char *spec, char *msg, size_t n);
int forward_rm(struct daemon *d, uint32_t id, char *msg, size_t n);
void forward_ls(struct daemon *d, bool json, struct strbuf *out);
/*
 * Once the loops run: adds back the forwards kept in d->fwd_file, with their
 * ids. A line that no longer parses (its VM gone from the configuration) is
 * logged and dropped. Returns how many came back.
 */
int forward_restore(struct daemon *d);
/* On the VM's loop: its session is up; its -R forwards ask it to listen. */
void forward_vm_up(struct daemon *d, struct vm *vm);
/* Any loop: the host-side target of vm's -R forward id. */
bool forward_target(struct daemon *d, struct vm *vm, uint32_t id, struct tcp_target *out);

/* daemon/control.c */
int control_start(struct daemon *d, char *why, size_t whylen);
/* Serves a CONTROL stream about vm (NULL: the daemon as a whole). */
void control_serve(struct daemon *d, struct vm *vm, struct stream *st, const uint8_t *req,
		   size_t len);
/* Appends the JSON line or table of every VM, then calls done on the caller's loop. */
void control_collect(struct daemon *d, struct rt_loop *home, bool json,
		     void (*done)(void *arg, struct strbuf *out), void *arg);

#endif
