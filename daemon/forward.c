/* Port forwards: -L (the host listens, the VM dials) and -R (the VM listens, the host dials). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "daemon/daemon.h"
#include "core/kinds.h"
#include "core/list.h"
#include "core/log.h"
#include "core/why.h"
#include "proxy/front.h"
#include "proxy/tcp_srv.h"
#include "platform/sys.h"

/*
 * Theory of operation
 *
 * The forwards live in the daemon, in one list under a lock: the control
 * loop adds, lists and removes them; the VM's loop runs them.
 *
 * -L [bind:]port:VM:port. A raw front (proxy/front.h) listens on the host,
 * accepting on the VM's loop; each connection becomes a TCP CONNECT to
 * 127.0.0.1:port in the VM. The listener exists whether the VM is up or
 * not: while it is down, connections are reset at once.
 *
 * -R VM:[bind:]port:host:port. While the VM's session is up, a LISTEN
 * stream asks the agent to listen on bind:port in the VM (opened when the
 * forward is added and every time the session comes back). Each
 * connection there comes to the host as a FORWARDED stream naming the
 * forward's id, and the host dials the target it was configured with: the
 * guest never chooses the destination, so the egress policy does not
 * apply, and the limits of the VM do.
 *
 * Removal unlinks the forward at once and tears it down on the VM's loop,
 * which frees it: an L forward when its front is gone, an R forward after
 * its stream is released.
 *
 * An agent that refuses (the port is taken, perhaps by the listener of a
 * session that has just ended) is asked again after 1 s, then 2, 4, ... up
 * to 30 s, while the forward exists.
 *
 * Every add and removal rewrites d->fwd_file atomically, one "ID -L|-R SPEC"
 * line per forward, so a restarted daemon puts them back with the same ids
 * (forward_restore); an agent's -R listener is asked for again when the
 * VM's session comes back, as after any reconnect.
 */

#define FORWARD_RETRY_MIN_MS  1000
#define FORWARD_RETRY_MAX_MS  30000
#define FORWARD_RESTORE_TRIES 50 /* 100 ms apart */

struct fwd {
	struct fwd *next;
	struct daemon *d;
	uint32_t id;
	char dir; /* 'L' or 'R' */
	struct vm *vm;
	char spec[160];
	struct net_addr bind;
	struct tcp_target to;
	char state[160];       /* under the lock */
	struct front *front;   /* L */
	struct stream *st;     /* R: the LISTEN stream, on the VM's loop */
	bool removed;	       /* R: unlinked; the VM's loop frees it */
	struct loop_req retry; /* R: asks again after a refusal, on the VM's loop */
	bool retry_armed;
	uint32_t retry_ms;
};

static void forward_set_state(struct fwd *f, const char *fmt, const char *arg)
{
	pthread_mutex_lock(&f->d->fwd_lock);
	snprintf(f->state, sizeof(f->state), fmt, arg);
	pthread_mutex_unlock(&f->d->fwd_lock);
}

/* ---- parsing ---- */

/*
 * Splits spec at ':' outside brackets into at most max fields (in place);
 * returns the count, or -EINVAL.
 */
static int forward_fields(char *spec, char **f, int max)
{
	int n = 0, depth = 0;

	f[n++] = spec;
	for (char *p = spec; *p; p++) {
		if (*p == '[')
			depth++;
		else if (*p == ']')
			depth--;
		else if (*p == ':' && depth == 0) {
			if (n == max)
				return -EINVAL;
			*p = '\0';
			f[n++] = p + 1;
		}
	}
	return depth ? -EINVAL : n;
}

static int forward_port(const char *s, uint16_t *port, bool zero_ok)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v > 65535 || (!v && !zero_ok))
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

/* "[::1]" or "127.0.0.1" (empty: 127.0.0.1, "*": every IPv4 address). */
static int forward_bind(const char *s, uint16_t port, struct net_addr *a)
{
	int ret;

	if (!*s)
		s = "127.0.0.1";
	ret = strcmp(s, "*") == 0 ? net_addr_parse("*:0", a) : net_addr_parse_ip(s, a);
	a->port = port;
	return ret;
}

/* A host to dial: an IP literal (IPv6 in brackets) or a name. */
static int forward_host(const char *s, uint16_t port, struct tcp_target *t)
{
	memset(t, 0, sizeof(*t));
	t->port = port;
	if (net_addr_parse_ip(s, &t->addr) == 0)
		return 0;
	t->addr.family = 0;
	if (!tcp_name_ok(s, strlen(s)))
		return -EINVAL;
	snprintf(t->name, sizeof(t->name), "%s", s);
	return 0;
}

/* -L [bind:]port:VM:port */
static int forward_parse_l(struct daemon *d, struct fwd *f, char *spec, char *why, size_t n)
{
	char *fl[5];
	int k = forward_fields(spec, fl, 5), b;
	uint16_t lport, rport;

	if (k != 3 && k != 4)
		goto bad;
	b = k - 3;
	if (forward_port(fl[b], &lport, false) || forward_port(fl[b + 2], &rport, false) ||
	    forward_bind(b ? fl[0] : "", lport, &f->bind))
		goto bad;
	f->vm = daemon_find_vm(d, fl[b + 1]);
	if (!f->vm) {
		snprintf(why, n, "no VM named '%s'", fl[b + 1]);
		return -ENOENT;
	}
	return forward_host("127.0.0.1", rport, &f->to);
bad:
	snprintf(why, n, "-L takes [BIND:]PORT:VM:PORT, e.g. 8080:lab1:80");
	return -EINVAL;
}

/* -R VM:[bind:]port:host:port */
static int forward_parse_r(struct daemon *d, struct fwd *f, char *spec, char *why, size_t n)
{
	char *fl[6];
	int k = forward_fields(spec, fl, 6), b;
	uint16_t lport, rport;

	if (k != 4 && k != 5)
		goto bad;
	b = k - 4;
	if (forward_port(fl[1 + b], &lport, false) || forward_port(fl[3 + b], &rport, false) ||
	    forward_bind(b ? fl[1] : "", lport, &f->bind) || forward_host(fl[2 + b], rport, &f->to))
		goto bad;
	f->vm = daemon_find_vm(d, fl[0]);
	if (!f->vm) {
		snprintf(why, n, "no VM named '%s'", fl[0]);
		return -ENOENT;
	}
	return 0;
bad:
	snprintf(why, n, "-R takes VM:[BIND:]PORT:HOST:PORT, e.g. lab1:8080:10.0.0.1:80");
	return -EINVAL;
}

/* ---- L: the host listens ---- */

static int forward_l_route(void *arg, const struct socks_req *sr, const struct net_addr *client,
			   struct tcp_req *out, struct rt_loop **rl, char *why, size_t whylen)
{
	struct fwd *f = arg;

	memset(out, 0, sizeof(*out));
	out->cmd = TCP_CONNECT;
	out->to = f->to;
	*rl = vm_loop(f->vm);
	return 0;
}

static struct session *forward_l_session(void *arg, struct rt_loop *rl, const struct tcp_req *req)
{
	struct fwd *f = arg;

	return vm_session(f->vm);
}

static void forward_l_freed(void *arg)
{
	free(arg);
}

static const struct front_ops forward_l_ops = {
    .route = forward_l_route,
    .session = forward_l_session,
    .on_freed = forward_l_freed,
};

static int forward_l_start(struct fwd *f, char *why, size_t n)
{
	struct front_config cfg = {.who = "forward",
				   .home = vm_loop(f->vm),
				   .raw = true,
				   .nlisten = 1,
				   .listen = {f->bind},
				   /* like the host's proxy port: root and the vmbusify group */
				   .group = "vmbusify"};
	char text[NET_ADDR_STRLEN];
	int ret;

	ret = front_new(&f->front, &f->d->rt, &cfg, &forward_l_ops, f, why, n);
	if (ret)
		return ret;
	snprintf(f->state, sizeof(f->state), "listening on %s",
		 net_addr_format(&f->bind, true, text));
	return front_start(f->front);
}

static void forward_l_close(void *arg)
{
	struct fwd *f = arg;

	front_close(f->front); /* frees f with the front */
}

/* ---- R: the VM listens ---- */

static void forward_r_release(struct fwd *f)
{
	if (f->st) {
		stream_release(f->st);
		f->st = NULL;
	}
}

static void forward_r_open(struct fwd *f);

static void forward_r_retry_cb(struct loop_req *req, int res)
{
	struct fwd *f = container_of(req, struct fwd, retry);

	f->retry_armed = false;
	if (f->removed)
		free(f); /* forward_r_close() left it to us */
	else
		forward_r_open(f);
}

/* After a refusal (err, and the agent's reason of len bytes): asks again later, backing off. */
static void forward_r_retry(struct fwd *f, int err, const uint8_t *reason, size_t len)
{
	char text[200], why[120];

	f->retry_ms = f->retry_ms ? f->retry_ms * 2 : FORWARD_RETRY_MIN_MS;
	if (f->retry_ms > FORWARD_RETRY_MAX_MS)
		f->retry_ms = FORWARD_RETRY_MAX_MS;
	/* The agent's text, kept to one printable line; its errno when it sent none. */
	if (len)
		why_set(why, sizeof(why), 0, "%.*s", (int)(len < 100 ? len : 100),
			(const char *)reason);
	else
		snprintf(why, sizeof(why), "%s", strerror(-err));
	snprintf(text, sizeof(text), "the agent refused: %s; asking again in %u s", why,
		 f->retry_ms / 1000);
	forward_set_state(f, "%s", text);
	vb_warn("forward %u: the agent refused to listen: %s", f->id, why);
	if (loop_timer(vm_loop(f->vm)->loop, &f->retry, (uint64_t)f->retry_ms * 1000000ull,
		       forward_r_retry_cb) == 0)
		f->retry_armed = true;
}

static void forward_r_reply(struct stream *st, int err, const uint8_t *r, size_t len)
{
	struct fwd *f = stream_ctx(st);
	struct tcp_reply rep;
	char text[NET_ADDR_STRLEN];

	if (err) {
		forward_r_release(f);
		forward_r_retry(f, err, r, len);
		return;
	}
	f->retry_ms = 0;
	if (tcp_reply_decode(r, len, &rep) == 0)
		forward_set_state(f, "listening on %s in the VM",
				  net_addr_format(&rep.local, true, text));
}

static void forward_r_gone(struct stream *st, int err)
{
	struct fwd *f = stream_ctx(st);

	forward_r_release(f);
	forward_set_state(f, "%s", "down: waiting for the VM's session");
}

static void forward_r_fin(struct stream *st)
{
	forward_r_gone(st, 0);
}

static void forward_r_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	stream_consumed(st, len);
}

static const struct stream_ops forward_r_ops = {
    .on_reply = forward_r_reply,
    .on_data = forward_r_data,
    .on_fin = forward_r_fin,
    .on_reset = forward_r_gone,
};

/* On the VM's loop: asks the agent to listen, when the session is up. */
static void forward_r_open(struct fwd *f)
{
	struct session *s = vm_session(f->vm);
	struct tcp_req q = {.cmd = TCP_LISTEN, .id = f->id};
	uint8_t req[TCP_REQ_MAX];
	int n, ret;

	if (f->st || f->removed || f->retry_armed || !s)
		return;
	q.to.addr = f->bind;
	q.to.port = f->bind.port;
	n = tcp_req_encode(&q, req);
	ret = n < 0 ? n : stream_open(s, KIND_TCP, 0, req, (size_t)n, &forward_r_ops, f, &f->st);
	if (ret)
		forward_set_state(f, "cannot ask the VM: %s", strerror(-ret));
	else
		forward_set_state(f, "%s", "asking the VM to listen");
}

static void forward_r_open_cb(void *arg)
{
	forward_r_open(arg);
}

static void forward_r_close(void *arg)
{
	struct fwd *f = arg;

	if (f->st) {
		stream_reset(f->st, -ECANCELED);
		forward_r_release(f);
	}
	if (f->retry_armed)
		loop_cancel(vm_loop(f->vm)->loop, &f->retry); /* its callback frees f */
	else
		free(f);
}

/* ---- the daemon's side ---- */

void forward_vm_up(struct daemon *d, struct vm *vm)
{
	pthread_mutex_lock(&d->fwd_lock);
	for (struct fwd *f = d->fwds; f; f = f->next) {
		if (f->vm == vm && f->dir == 'R') {
			pthread_mutex_unlock(&d->fwd_lock);
			forward_r_open(f);
			pthread_mutex_lock(&d->fwd_lock);
		}
	}
	pthread_mutex_unlock(&d->fwd_lock);
}

bool forward_target(struct daemon *d, struct vm *vm, uint32_t id, struct tcp_target *out)
{
	bool found = false;

	pthread_mutex_lock(&d->fwd_lock);
	for (struct fwd *f = d->fwds; f && !found; f = f->next) {
		if (f->id == id && f->vm == vm && f->dir == 'R') {
			*out = f->to;
			found = true;
		}
	}
	pthread_mutex_unlock(&d->fwd_lock);
	return found;
}

/* Rewrites the forwards' file from the list; a failure is logged, the forwards stay. */
static void forward_save(struct daemon *d)
{
	struct strbuf sb = {0};
	int ret;

	if (!d->fwd_file[0])
		return;
	pthread_mutex_lock(&d->fwd_lock);
	for (struct fwd *f = d->fwds; f; f = f->next)
		strbuf_printf(&sb, "%u -%c %s\n", f->id, f->dir, f->spec);
	pthread_mutex_unlock(&d->fwd_lock);
	ret = sb.err ? -ENOMEM : sys_write_file_atomic(d->fwd_file, sb.p ? sb.p : "", sb.len, 0600);
	if (ret)
		vb_warn("cannot save the forwards to %s: %s", d->fwd_file, sys_strerror(ret));
	strbuf_free(&sb);
}

/* Adds a forward with the given id (0: the next one); does not save. */
static int forward_add_id(struct daemon *d, uint32_t id, const char *dir, const char *spec,
			  char *msg, size_t n)
{
	struct fwd *f = calloc(1, sizeof(*f)), **pp;
	char buf[160];
	int ret;

	if (!f)
		return -ENOMEM;
	f->d = d;
	snprintf(f->spec, sizeof(f->spec), "%s", spec);
	snprintf(buf, sizeof(buf), "%s", spec);
	if (!strcmp(dir, "-L")) {
		f->dir = 'L';
		ret = forward_parse_l(d, f, buf, msg, n);
	} else if (!strcmp(dir, "-R")) {
		f->dir = 'R';
		ret = forward_parse_r(d, f, buf, msg, n);
	} else {
		snprintf(msg, n, "expected -L or -R, not '%s'", dir);
		ret = -EINVAL;
	}
	if (ret) {
		free(f);
		return ret;
	}
	pthread_mutex_lock(&d->fwd_lock);
	if (id > d->fwd_next_id)
		d->fwd_next_id = id;
	f->id = id ? id : ++d->fwd_next_id;
	pthread_mutex_unlock(&d->fwd_lock);
	if (f->dir == 'L') {
		ret = forward_l_start(f, msg, n);
		if (ret) {
			free(f);
			return ret;
		}
	} else {
		snprintf(f->state, sizeof(f->state), "waiting for the VM's session");
	}
	pthread_mutex_lock(&d->fwd_lock);
	for (pp = &d->fwds; *pp; pp = &(*pp)->next)
		; /* at the end: listed and saved in the order they were added */
	*pp = f;
	pthread_mutex_unlock(&d->fwd_lock);
	if (f->dir == 'R')
		loop_post(vm_loop(f->vm)->loop, forward_r_open_cb, f);
	snprintf(msg, n, "forward %u: %s %s\n", f->id, dir, spec);
	vb_info("forward %u added: %s %s", f->id, dir, spec);
	return 0;
}

int forward_add(struct daemon *d, const char *dir, const char *spec, char *msg, size_t n)
{
	int ret = forward_add_id(d, 0, dir, spec, msg, n);

	if (!ret)
		forward_save(d);
	return ret;
}

/* One line of the forwards' file: "ID -L SPEC"; returns 0, or -EINVAL with why. */
static int forward_restore_line(struct daemon *d, char *line, char *why, size_t n)
{
	char *dir, *spec, *end;
	unsigned long id;

	dir = strchr(line, ' ');
	spec = dir ? strchr(dir + 1, ' ') : NULL;
	if (!spec) {
		snprintf(why, n, "expected 'ID -L|-R SPEC'");
		return -EINVAL;
	}
	*dir++ = '\0';
	*spec++ = '\0';
	id = strtoul(line, &end, 10);
	if (*end || id == 0 || id > UINT32_MAX) {
		snprintf(why, n, "'%.20s' is not a forward id", line);
		return -EINVAL;
	}
	/*
	 * A port the daemon just gave up may still be held for a moment (a
	 * ring's pending accept is torn down after the process exits).
	 */
	for (int i = 0;; i++) {
		int ret = forward_add_id(d, (uint32_t)id, dir, spec, why, n);

		if (ret != -EADDRINUSE || i == FORWARD_RESTORE_TRIES)
			return ret;
		sys_sleep_ms(100);
	}
}

int forward_restore(struct daemon *d)
{
	char *buf, *line, *save = NULL, why[300];
	int ret, count = 0, lineno = 0;
	size_t len;

	if (!d->fwd_file[0])
		return 0;
	ret = sys_read_file(d->fwd_file, 1u << 20, &buf, &len);
	if (ret) {
		if (ret != -ENOENT)
			vb_warn("cannot read the forwards from %s: %s", d->fwd_file,
				sys_strerror(ret));
		return 0;
	}
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		lineno++;
		if (forward_restore_line(d, line, why, sizeof(why)))
			vb_warn("%s, line %d: forward dropped: %s", d->fwd_file, lineno, why);
		else
			count++;
	}
	free(buf);
	forward_save(d); /* without what was dropped */
	if (count)
		vb_info("%d forward%s restored from %s", count, count == 1 ? "" : "s", d->fwd_file);
	return count;
}

int forward_rm(struct daemon *d, uint32_t id, char *msg, size_t n)
{
	struct fwd **pp, *f = NULL;

	pthread_mutex_lock(&d->fwd_lock);
	for (pp = &d->fwds; *pp; pp = &(*pp)->next) {
		if ((*pp)->id == id) {
			f = *pp;
			*pp = f->next;
			f->removed = true;
			break;
		}
	}
	pthread_mutex_unlock(&d->fwd_lock);
	if (!f) {
		snprintf(msg, n, "no forward %u", id);
		return -ENOENT;
	}
	loop_post(vm_loop(f->vm)->loop, f->dir == 'L' ? forward_l_close : forward_r_close, f);
	forward_save(d);
	snprintf(msg, n, "forward %u removed\n", id);
	vb_info("forward %u removed", id);
	return 0;
}

void forward_ls(struct daemon *d, bool json, struct strbuf *out)
{
	bool first = true;

	if (json)
		strbuf_printf(out, "{\"forwards\":[");
	else
		strbuf_printf(out, "%-4s %-3s %-36s %s\n", "ID", "DIR", "SPEC", "STATE");
	pthread_mutex_lock(&d->fwd_lock);
	for (struct fwd *f = d->fwds; f; f = f->next) {
		if (json)
			strbuf_printf(out,
				      "%s{\"id\":%u,\"dir\":\"%c\",\"vm\":\"%s\",\"spec\":\"%s\","
				      "\"state\":\"%s\"}",
				      first ? "" : ",", f->id, f->dir, vm_name(f->vm), f->spec,
				      f->state);
		else
			strbuf_printf(out, "%-4u -%c  %-36s %s\n", f->id, f->dir, f->spec,
				      f->state);
		first = false;
	}
	pthread_mutex_unlock(&d->fwd_lock);
	if (json)
		strbuf_printf(out, "]}\n");
}
