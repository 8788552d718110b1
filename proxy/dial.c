/* Dialing out over TCP: addresses in order, each attempt with a deadline. */
#include <errno.h>
#include <string.h>
#include "proxy/dial.h"

/*
 * One attempt at a time: a connect request and a timer race; the first to
 * complete cancels the other, and the attempt ends when both have come back
 * (a descriptor is closed only after every request on it completed). A
 * failed attempt moves to the next address; the callback gets the first
 * connection, or the error of the last attempt.
 */

static void dial_next(struct dial *d);

static void dial_finish(struct dial *d, int res, pl_fd fd)
{
	d->done = true;
	if (d->starting)
		d->last_err = res; /* no attempt could start: dial_start() returns res */
	else
		d->cb(d, res, fd);
}

/* Both requests of the attempt are back: decide. */
static void dial_settle(struct dial *d)
{
	if (d->pending)
		return;
	if (d->last_err == 0) {
		dial_finish(d, 0, d->fd);
		return;
	}
	net_close(d->fd, true);
	d->fd = -1;
	if (d->cancelled) {
		dial_finish(d, -ECANCELED, -1);
		return;
	}
	dial_next(d);
}

static void dial_conn_cb(struct loop_req *r, int res)
{
	struct dial *d = r->data;

	d->pending--;
	d->last_err = d->timed_out && res == -ECANCELED ? -ETIMEDOUT : res;
	if (d->pending)
		loop_cancel(d->loop, &d->timer);
	dial_settle(d);
}

static void dial_timer_cb(struct loop_req *r, int res)
{
	struct dial *d = r->data;

	d->pending--;
	if (res == 0 && d->pending) {
		d->timed_out = true;
		loop_cancel(d->loop, &d->conn);
	}
	dial_settle(d);
}

static void dial_next(struct dial *d)
{
	int ret;

	while (d->next < d->naddrs) {
		const struct net_addr *a = &d->addrs[d->next++];

		d->timed_out = false;
		ret = net_tcp_socket(a, &d->fd);
		if (ret) {
			d->last_err = ret;
			continue;
		}
		memset(&d->conn, 0, sizeof(d->conn));
		memset(&d->timer, 0, sizeof(d->timer));
		d->conn.data = d->timer.data = d;
		ret = net_connect(d->loop, &d->conn, d->fd, a, dial_conn_cb);
		if (ret) {
			d->last_err = ret;
			net_close(d->fd, true);
			d->fd = -1;
			continue;
		}
		d->pending = 1;
		if (loop_timer(d->loop, &d->timer, (uint64_t)d->attempt_ms * 1000000ull,
			       dial_timer_cb) == 0)
			d->pending++;
		return;
	}
	dial_finish(d, d->last_err ? d->last_err : -EHOSTUNREACH, -1);
}

int dial_start(struct loop *l, struct dial *d, const struct net_addr *addrs, int n,
	       uint32_t attempt_ms, dial_cb cb)
{
	dial_cb keep_cb = cb;
	void *keep_data = d->data;

	if (n <= 0)
		return -EINVAL;
	memset(d, 0, sizeof(*d));
	d->cb = keep_cb;
	d->data = keep_data;
	d->loop = l;
	d->naddrs = n < DIAL_ADDRS_MAX ? n : DIAL_ADDRS_MAX;
	memcpy(d->addrs, addrs, (size_t)d->naddrs * sizeof(*addrs));
	d->attempt_ms = attempt_ms ? attempt_ms : 10000;
	d->fd = -1;
	d->last_err = -EHOSTUNREACH;
	d->starting = true;
	dial_next(d);
	d->starting = false;
	return d->done ? d->last_err : 0;
}

void dial_cancel(struct dial *d)
{
	if (d->done || d->cancelled)
		return;
	d->cancelled = true;
	d->next = d->naddrs;
	if (d->pending) {
		loop_cancel(d->loop, &d->conn);
		loop_cancel(d->loop, &d->timer);
	}
}
