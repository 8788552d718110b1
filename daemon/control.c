/* The daemon's control socket: the CONNECT preamble, CLI sessions, and CONTROL commands. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "daemon/daemon.h"
#include "core/kinds.h"
#include "core/link.h"
#include "core/log.h"
#include "platform/sys.h"

/*
 * Theory of operation
 *
 * The control socket is a unix socket for root and the vmbusify group (on
 * Windows a named pipe for Administrators and Hyper-V Administrators). A
 * client first sends one line, as hybrid vsock does:
 *
 *     CONNECT <vm>\n     a session whose streams go to that VM
 *     CONNECT -\n        a session with the daemon itself (ls)
 *
 * and is answered "OK\n" or "ERR <reason>\n". After OK the connection
 * carries a session (the client dials). A VM's client sessions run on the
 * VM's loop, so their streams are relayed without crossing threads; the
 * preamble is read on the control loop and the descriptor is handed over.
 *
 * CONTROL streams carry one text command in the OPEN request and get the
 * answer as the stream's data, then FIN:
 *     ls [json]                        every VM and its state
 *     ping <count> <interval_ms> [json]   (VM sessions) PINGs to the VM
 */

#define CONTROL_LINE_MAX    200
#define CONTROL_PREAMBLE_NS (5ull * 1000 * 1000 * 1000)

struct ctl_conn {
	struct daemon *d;
	pl_fd fd;
	struct loop_req rreq, treq, wreq;
	int pending;
	bool done; /* the preamble was settled, one way or the other */
	char buf[CONTROL_LINE_MAX + 1];
	size_t have;
	char answer[CONTROL_LINE_MAX * 2];
	struct vm *vm;
};

struct ctl_handoff;

static void control_accept_next(struct daemon *d);

/* ---- daemon-level sessions ---- */

static void control_dsession_open(struct link *lk, struct stream *st, uint16_t kind, uint16_t flags,
				  const uint8_t *req, size_t len)
{
	struct daemon *d = link_app(lk);

	if (kind != KIND_CONTROL) {
		stream_refuse(st, -EOPNOTSUPP, "CONNECT to a VM to open streams to it");
		return;
	}
	control_serve(d, NULL, st, req, len);
}

static const struct link_ops control_dsession_ops = {
    .on_open = control_dsession_open,
};

static void control_start_dsession(struct daemon *d, pl_fd fd)
{
	struct link_config cfg;
	struct link *lk;

	link_config_defaults(&cfg);
	cfg.session.role = FRAME_ROLE_DAEMON;
	cfg.session.caps = FRAME_CAP_CONTROL;
	cfg.session.name = "vmbusifyd " VB_VERSION;
	cfg.session.label = "control client";
	cfg.keepalive_ms = 0;
	cfg.dead_ms = 0;
	cfg.set = &d->ctl_loop->links;
	link_new(&lk, d->ctl_loop->loop, &d->ctl_loop->chunks, fd, &cfg, &control_dsession_ops, d);
}

/* ---- the preamble ---- */

static void control_conn_put(struct ctl_conn *c)
{
	if (--c->pending)
		return;
	if (c->fd >= 0)
		transport_close_fd(c->fd);
	free(c);
}

/* A descriptor on its way to a VM's loop. */
struct ctl_handoff {
	struct vm *vm;
	pl_fd fd;
};

static void control_attach_cb(void *arg)
{
	struct ctl_handoff *h = arg;

	vm_attach_client(h->vm, h->fd);
	free(h);
}

static void control_answered(struct loop_req *r, int res)
{
	struct ctl_conn *c = r->data;

	if (res > 0 && c->answer[0] == 'O') {
		control_start_dsession(c->d, c->fd);
		c->fd = -1;
	}
	control_conn_put(c);
}

static void control_answer(struct ctl_conn *c, const char *line)
{
	snprintf(c->answer, sizeof(c->answer), "%s", line);
	c->pending++;
	c->wreq.data = c;
	if (loop_write(c->d->ctl_loop->loop, &c->wreq, c->fd, c->answer, strlen(c->answer),
		       control_answered))
		c->pending--;
}

/* Lists the known VM names into buf, for the "no such VM" error. */
static void control_known(struct daemon *d, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < d->nvms && off + 2 < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "",
					vm_name(d->vms[i]));
	if (!d->nvms)
		snprintf(buf, len, "none");
}

/* Acts on a complete preamble line. */
static void control_preamble(struct ctl_conn *c)
{
	char target[CONTROL_LINE_MAX], line[CONTROL_LINE_MAX * 2], known[CONTROL_LINE_MAX];
	struct ctl_handoff *h;

	c->done = true;
	loop_cancel(c->d->ctl_loop->loop, &c->treq);
	if (sscanf(c->buf, "CONNECT %199s", target) != 1) {
		control_answer(c, "ERR expected 'CONNECT <vm>'\n");
		return;
	}
	if (!strcmp(target, "-")) {
		control_answer(c, "OK\n");
		return;
	}
	c->vm = daemon_find_vm(c->d, target);
	if (!c->vm) {
		control_known(c->d, known, sizeof(known));
		snprintf(line, sizeof(line), "ERR no VM named '%s' (known: %s)\n", target, known);
		control_answer(c, line);
		return;
	}
	/* Hand the descriptor to the VM's loop; it answers from there. */
	h = malloc(sizeof(*h));
	if (!h)
		return;
	h->vm = c->vm;
	h->fd = c->fd;
	if (loop_post(vm_loop(c->vm)->loop, control_attach_cb, h)) {
		free(h);
		return;
	}
	c->fd = -1;
}

static void control_read_cb(struct loop_req *r, int res);

static void control_read_more(struct ctl_conn *c)
{
	c->pending++;
	c->rreq.data = c;
	if (loop_read(c->d->ctl_loop->loop, &c->rreq, c->fd, c->buf + c->have,
		      CONTROL_LINE_MAX - c->have, control_read_cb))
		c->pending--;
}

static void control_read_cb(struct loop_req *r, int res)
{
	struct ctl_conn *c = r->data;

	if (!c->done && res > 0) {
		c->have += (size_t)res;
		c->buf[c->have] = '\0';
		if (memchr(c->buf, '\n', c->have))
			control_preamble(c);
		else if (c->have == CONTROL_LINE_MAX)
			control_answer(c, "ERR preamble line too long\n");
		else
			control_read_more(c);
	} else if (!c->done) {
		c->done = true;
		loop_cancel(c->d->ctl_loop->loop, &c->treq);
	}
	control_conn_put(c);
}

static void control_timer_cb(struct loop_req *r, int res)
{
	struct ctl_conn *c = r->data;

	if (!c->done && res == 0) {
		c->done = true;
		loop_cancel(c->d->ctl_loop->loop, &c->rreq);
	}
	control_conn_put(c);
}

static void control_accept_cb(struct transport_accept_req *ar, int res, pl_fd fd)
{
	struct daemon *d = ar->data;
	struct ctl_conn *c;

	if (res) {
		vb_warn("control socket: accept failed: %s", sys_strerror(res));
		control_accept_next(d);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		transport_close_fd(fd);
		control_accept_next(d);
		return;
	}
	c->d = d;
	c->fd = fd;
	c->pending = 1; /* the timer */
	c->treq.data = c;
	if (loop_timer(d->ctl_loop->loop, &c->treq, CONTROL_PREAMBLE_NS, control_timer_cb)) {
		transport_close_fd(fd);
		free(c);
	} else {
		control_read_more(c);
	}
	control_accept_next(d);
}

static void control_accept_next(struct daemon *d)
{
	d->ctl_acc.data = d;
	if (transport_accept(d->ctl_loop->loop, d->ctl, &d->ctl_acc, control_accept_cb))
		vb_err("control socket: cannot accept any more connections");
}

static void control_accept_first(void *arg)
{
	control_accept_next(arg);
}

/*
 * Listens on the control URI. A unix socket's directory is made and the
 * socket limited to root and the vmbusify group afterwards; a named pipe
 * (Windows) carries its DACL from its first instance on (platform/win/transport.c:
 * SYSTEM, Administrators, Hyper-V Administrators).
 */
int control_start(struct daemon *d, char *why, size_t whylen)
{
	struct uri u;
	char *slash;
	int ret;

	if (uri_parse(d->control_uri, &u, why, whylen))
		return -EINVAL;
	slash = strrchr(u.path, '/');
	if (u.kind == URI_UNIX && slash && slash != u.path) {
		*slash = '\0';
		sys_mkdir_p(u.path);
		*slash = '/';
	}
	ret = transport_listen(&u, &d->topts, &d->ctl, why, whylen);
	if (ret)
		return ret;
	ret = u.kind == URI_UNIX ? sys_restrict_socket(u.path) : 0;
	if (ret) {
		snprintf(why, whylen, "cannot restrict %s: %s", u.path, sys_strerror(ret));
		return ret;
	}
	return loop_post(d->ctl_loop->loop, control_accept_first, d);
}

/* ---- CONTROL commands ---- */

struct control_ls {
	struct daemon *d;
	struct rt_loop *home;
	struct stream *st;
	bool dead;
	bool json;
	size_t idx;
	struct strbuf out;
	void (*done)(void *arg, struct strbuf *out);
	void *arg;
};

static void control_collect_home(void *arg)
{
	struct control_ls *ls = arg;

	if (ls->json)
		strbuf_printf(&ls->out, "]}\n");
	ls->done(ls->arg, &ls->out);
	strbuf_free(&ls->out);
	free(ls);
}

/* Runs on vms[idx]'s loop: describes it, then moves on to the next VM's loop. */
static void control_collect_step(void *arg)
{
	struct control_ls *ls = arg;
	struct daemon *d = ls->d;

	if (ls->json && ls->idx)
		strbuf_printf(&ls->out, ",");
	vm_describe(d->vms[ls->idx], &ls->out, ls->json);
	ls->idx++;
	if (ls->idx < d->nvms)
		loop_post(vm_loop(d->vms[ls->idx])->loop, control_collect_step, ls);
	else
		loop_post(ls->home->loop, control_collect_home, ls);
}

void control_collect(struct daemon *d, struct rt_loop *home, bool json,
		     void (*done)(void *arg, struct strbuf *out), void *arg)
{
	struct control_ls *ls = calloc(1, sizeof(*ls));

	if (!ls) {
		struct strbuf none = {0};

		done(arg, &none);
		return;
	}
	ls->d = d;
	ls->home = home;
	ls->json = json;
	ls->done = done;
	ls->arg = arg;
	if (json)
		strbuf_printf(&ls->out, "{\"vms\":[");
	else
		strbuf_printf(&ls->out, "%-16s %-11s %9s %12s  %-40s %s\n", "VM", "STATE", "SINCE",
			      "RTT", "CHANNEL", "PEER / LAST ERROR");
	if (d->nvms)
		loop_post(vm_loop(d->vms[0])->loop, control_collect_step, ls);
	else
		loop_post(home->loop, control_collect_home, ls);
}

/* The ls answer's stream, which may be reset while the VMs are asked. */
struct control_req {
	struct stream *st;
	bool dead;
	bool answered;
};

static void control_req_reset(struct stream *st, int err)
{
	struct control_req *cr = stream_ctx(st);

	stream_release(st);
	cr->dead = true;
	if (cr->answered)
		free(cr);
}

static void control_req_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	stream_consumed(st, len);
}

static const struct stream_ops control_req_ops = {
    .on_data = control_req_data,
    .on_reset = control_req_reset,
};

static void control_ls_done(void *arg, struct strbuf *out)
{
	struct control_req *cr = arg;

	cr->answered = true;
	if (cr->dead) {
		free(cr);
		return;
	}
	if (out->p)
		stream_write_copy(cr->st, out->p, out->len);
	stream_shutdown(cr->st);
	stream_release(cr->st);
	free(cr);
}

/* The VM names, one per line: they never change after start, so no loop hop is needed. */
static void control_names(struct daemon *d, struct stream *st)
{
	struct strbuf b = {0};

	for (size_t i = 0; i < d->nvms; i++)
		strbuf_printf(&b, "%s\n", vm_name(d->vms[i]));
	if (stream_accept(st, NULL, 0, &control_req_ops, NULL)) {
		strbuf_free(&b);
		return;
	}
	if (b.p)
		stream_write_copy(st, b.p, b.len);
	stream_shutdown(st);
	stream_release(st);
	strbuf_free(&b);
}

/* Answers a command with text, or refuses it with err and the text. */
static void control_text(struct stream *st, int err, const char *text, size_t len)
{
	if (err) {
		stream_refuse(st, err, text);
		return;
	}
	if (stream_accept(st, NULL, 0, &control_req_ops, NULL))
		return;
	if (len)
		stream_write_copy(st, text, len);
	stream_shutdown(st);
	stream_release(st);
}

/* "forward add -L SPEC", "forward rm ID", "forward ls [json]". */
static void control_forward(struct daemon *d, struct stream *st, const char *cmd)
{
	char dir[8], spec[160], msg[300] = "";
	struct strbuf b = {0};
	unsigned id;
	int ret;

	if (sscanf(cmd, "forward add %7s %159s", dir, spec) == 2) {
		ret = forward_add(d, dir, spec, msg, sizeof(msg));
		control_text(st, ret, msg, strlen(msg));
	} else if (sscanf(cmd, "forward rm %u", &id) == 1) {
		ret = forward_rm(d, id, msg, sizeof(msg));
		control_text(st, ret, msg, strlen(msg));
	} else if (!strcmp(cmd, "forward ls") || !strcmp(cmd, "forward ls json")) {
		forward_ls(d, strstr(cmd, "json") != NULL, &b);
		control_text(st, 0, b.p ? b.p : "", b.len);
		strbuf_free(&b);
	} else {
		stream_refuse(st, -EINVAL, "unknown forward command");
	}
}

void control_serve(struct daemon *d, struct vm *vm, struct stream *st, const uint8_t *req,
		   size_t len)
{
	char cmd[256] = "", mode[16] = "";
	unsigned count = 0, interval = 0;
	struct control_req *cr;

	snprintf(cmd, sizeof(cmd), "%.*s", (int)(len < sizeof(cmd) - 1 ? len : sizeof(cmd) - 1),
		 (const char *)req);
	if (vm && sscanf(cmd, "ping %u %u %15s", &count, &interval, mode) >= 2) {
		if (!count || count > 100000 || interval > 60000) {
			stream_refuse(st, -EINVAL,
				      "ping count must be 1-100000, interval <= 60000 ms");
			return;
		}
		vm_ping_start(vm, st, count, interval, !strcmp(mode, "json"));
		return;
	}
	if (!strcmp(cmd, "ls names")) {
		control_names(d, st);
		return;
	}
	if (!vm && (!strcmp(cmd, "vnet status") || !strcmp(cmd, "vnet status json"))) {
		struct strbuf b = {0};

		if (!d->vnet) {
			stream_refuse(st, -EOPNOTSUPP,
				      "vnet is off (no [vnet] section in the configuration)");
			return;
		}
		vnet_router_status(d->vnet, strstr(cmd, "json") != NULL, &b);
		control_text(st, 0, b.p ? b.p : "", b.len);
		strbuf_free(&b);
		return;
	}
	if (!vm && !strncmp(cmd, "forward ", 8)) {
		control_forward(d, st, cmd);
		return;
	}
	if (strncmp(cmd, "ls", 2) || (cmd[2] && cmd[2] != ' ')) {
		stream_refuse(st, -EINVAL, "unknown control command");
		return;
	}
	cr = calloc(1, sizeof(*cr));
	if (!cr || stream_accept(st, NULL, 0, &control_req_ops, cr)) {
		if (cr)
			stream_release(st);
		else
			stream_refuse(st, -ENOMEM, "out of memory");
		free(cr);
		return;
	}
	cr->st = st;
	control_collect(d, vm ? vm_loop(vm) : d->ctl_loop, strstr(cmd, "json") != NULL,
			control_ls_done, cr);
}
