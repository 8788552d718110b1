/* The tcp listener's token check, for many connections at once (Linux and Windows alike). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "platform/gate.h"
#include "platform/sys.h"

/*
 * Theory of operation.
 *
 * A tcp client proves itself with one line, "VMBUSIFY-TOKEN <token>\n",
 * before anything else. Reading that line inside the caller's accept would
 * let one silent client hold the listener for the whole deadline, and a few
 * of them, renewed, keep every honest client out before anyone has proved
 * anything. So the caller's accept (the waiter) only runs the kernel accept,
 * and every connection it yields becomes a handshake of its own, with its
 * own buffer and deadline timer, while the next kernel accept is submitted
 * at once:
 *
 *   waiter:    ACCEPTING --new connection--> start a handshake, accept again
 *                 |--a handshake succeeds--> cancel the kernel accept --> callback (fd)
 *                 |--the kernel accept fails--> callback (error, as before)
 *                 `--transport_accept_cancel()--> drain --> callback (-ECANCELED)
 *   handshake: READING --line complete, right--> ENDING --requests done--> the waiter, or READY
 *                 |--wrong line, EOF, error, deadline--> ENDING --requests done--> logged, freed
 *                 `--dropped (bound), drained--> ENDING --requests done--> freed
 *   READY:     handed to the next transport_accept(), through a zero timer
 *
 * A handshake lives on one list of the gate at a time: handshakes (READING,
 * the oldest first), ending (its read or timer still with the loop) or
 * ready. It is freed only once neither of its requests is submitted any
 * more, because the loop owns them until then. A failed handshake is logged
 * as "<listener>: accept failed: <reason>", the line the callers wrote when
 * the accept itself failed; core/log.c rate-limits it.
 *
 * The waiter's callback runs only once its kernel accept has completed too,
 * so that after it nothing of the caller's request is with the loop, as for
 * the other transports. The kernel accept runs only while a waiter waits:
 * between accepts the kernel's backlog holds new connections, and so the
 * ready list cannot outgrow what was handshaking when the waiter left.
 *
 * The bound. At most GATE_HANDSHAKES_MAX handshakes are READING; a new
 * connection past that drops the oldest (as sshd's MaxStartups drops
 * connections early rather than refuse service). Refusing the newcomer
 * instead would let an attacker who holds the maximum of silent connections,
 * renewed every deadline, keep every honest client out for good. Dropping
 * the oldest means holding a slot takes a fresh connection for every
 * newcomer, and an honest client, who sends its line right after connecting,
 * is out of the handshake within one round trip: to push it out the attacker
 * would have to open GATE_HANDSHAKES_MAX connections within that round trip,
 * a flood the kernel's backlog and a firewall are the answer to.
 *
 * A cancel drains: every handshake is ended, every ready connection closed,
 * and the waiter's callback runs once the last of them is freed, so that a
 * caller may close the listener right after it. transport_listener_close()
 * closes the ready connections and orphans the handshakes: their requests
 * are cancelled, and each frees itself when they complete. When the loop
 * never runs again (the daemon and the agent close their listeners after
 * stopping their loops), the orphans stay on the loop's in-flight list,
 * reachable, like any request abandoned with its loop.
 */

#define GATE_BUSY_REQ	1
#define GATE_BUSY_TIMER 2

struct gate_hs {
	struct list node; /* on g->handshakes, g->ending or g->ready */
	struct gate *g;	  /* NULL once transport_listener_close() orphaned it */
	struct loop *loop;
	pl_fd fd;
	struct loop_req req;   /* the read of the token line */
	struct loop_req timer; /* its deadline */
	uint8_t buf[GATE_LINE_MAX];
	size_t have;
	int pending; /* bitmask: which of req and timer are submitted */
	bool ended;
	int result; /* once ended: 0 for the right line, else why it failed */
};

void gate_init(struct gate *g)
{
	memset(g, 0, sizeof(*g));
	g->lfd = -1;
	list_init(&g->handshakes);
	list_init(&g->ending);
	list_init(&g->ready);
}

void gate_configure(struct gate *g, pl_fd lfd, const uint8_t *line, size_t want,
		    uint32_t timeout_ms, const char *text)
{
	g->lfd = lfd;
	memcpy(g->line, line, want);
	g->want = want;
	g->timeout_ms = timeout_ms;
	snprintf(g->text, sizeof(g->text), "%s", text);
}

/* Compares without an early exit, so that the time taken does not tell where a guess went wrong. */
static bool gate_equal_ct(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint8_t diff = 0;

	for (size_t i = 0; i < n; i++)
		diff |= (uint8_t)(a[i] ^ b[i]);
	return diff == 0;
}

/* ---- the waiter: the caller's accept ---- */

/* A waiter has what it waited for once it holds a connection or a result. */
static bool gate_waiter_settled(const struct transport_accept_req *ar)
{
	return ar->fd != -1 || ar->result;
}

/*
 * gate_accept_finish() - calls the waiter's callback once none of its
 * requests is submitted and, when draining, every handshake is freed. The
 * connection (or nothing, on failure) is the caller's; ar may be reused in
 * the callback.
 */
static void gate_accept_finish(struct gate *g, struct transport_accept_req *ar)
{
	int res = ar->result;
	pl_fd fd = ar->fd;

	if (ar->pending || (g->draining && g->nobjs) || !gate_waiter_settled(ar))
		return;
	g->waiter = NULL;
	g->draining = false;
	ar->fd = -1;
	if (res < 0 && fd != -1) {
		transport_close_fd(fd);
		fd = -1;
	}
	ar->cb(ar, res, fd);
}

/* A handshake ended or a ready connection went away: a drain may be over. */
static void gate_settle(struct gate *g)
{
	if (g->draining && !g->nobjs && g->waiter)
		gate_accept_finish(g, g->waiter);
}

static void gate_accept_done(struct loop_req *req, int res);

/* Submits the next kernel accept; a failure settles the waiter with it. */
static void gate_accept_more(struct gate *g, struct transport_accept_req *ar)
{
	int r = loop_accept(g->loop, &ar->req, g->lfd, gate_accept_done);

	if (r < 0)
		ar->result = r;
	else
		ar->pending |= GATE_BUSY_REQ;
}

/* ---- handshakes ---- */

static void gate_hs_free(struct gate_hs *hs)
{
	struct gate *g = hs->g;

	list_del(&hs->node);
	transport_close_fd(hs->fd);
	free(hs);
	if (g) {
		g->nobjs--;
		gate_settle(g);
	}
}

/* Ends hs with res (0: the right line) unless it has ended; cancels what is submitted. */
static void gate_hs_end(struct gate_hs *hs, int res)
{
	if (hs->ended)
		return;
	hs->ended = true;
	hs->result = res;
	list_del(&hs->node);
	if (hs->g) {
		hs->g->nhandshakes--;
		list_add_tail(&hs->g->ending, &hs->node);
	}
	if (hs->pending & GATE_BUSY_REQ)
		loop_cancel(hs->loop, &hs->req);
	if (hs->pending & GATE_BUSY_TIMER)
		loop_cancel(hs->loop, &hs->timer);
}

/*
 * gate_hs_ready() - hands an authenticated connection to the waiter, whose
 * kernel accept is cancelled so that its callback can run, or queues it on
 * g->ready for the next accept when no waiter is left waiting.
 */
static void gate_hs_ready(struct gate *g, struct gate_hs *hs)
{
	struct transport_accept_req *ar = g->waiter;

	list_del(&hs->node);
	if (!ar || gate_waiter_settled(ar)) {
		list_add_tail(&g->ready, &hs->node);
		return;
	}
	ar->fd = hs->fd;
	hs->fd = -1;
	free(hs);
	g->nobjs--;
	if (ar->pending & GATE_BUSY_REQ)
		loop_cancel(g->loop, &ar->req);
	gate_accept_finish(g, ar);
}

/* Once neither request is submitted: the connection goes on, or is logged and freed. */
static void gate_hs_finish(struct gate_hs *hs)
{
	if (hs->pending)
		return;
	if (hs->g && !hs->result) {
		gate_hs_ready(hs->g, hs);
		return;
	}
	if (hs->g && hs->result != -ECANCELED)
		vb_warn("%s: accept failed: %s", hs->g->text, sys_strerror(hs->result));
	gate_hs_free(hs);
}

static void gate_hs_read_done(struct loop_req *req, int res);

/* Reads what is missing of the line, exactly: the bytes after it belong to the session. */
static void gate_hs_read(struct gate_hs *hs)
{
	int r = loop_read(hs->loop, &hs->req, hs->fd, hs->buf + hs->have, hs->g->want - hs->have,
			  gate_hs_read_done);

	if (r < 0)
		gate_hs_end(hs, r);
	else
		hs->pending |= GATE_BUSY_REQ;
}

/* The token line arrives; judged once it is complete, whatever it holds. */
static void gate_hs_read_done(struct loop_req *req, int res)
{
	struct gate_hs *hs = container_of(req, struct gate_hs, req);

	hs->pending &= ~GATE_BUSY_REQ;
	if (hs->ended)
		goto out;
	if (res <= 0) {
		gate_hs_end(hs, res ? res : -ECONNRESET);
		goto out;
	}
	hs->have += (size_t)res;
	if (hs->have < hs->g->want)
		gate_hs_read(hs);
	else
		gate_hs_end(hs, gate_equal_ct(hs->g->line, hs->buf, hs->g->want) ? 0 : -EACCES);
out:
	gate_hs_finish(hs);
}

static void gate_hs_timer_done(struct loop_req *req, int res)
{
	struct gate_hs *hs = container_of(req, struct gate_hs, timer);

	hs->pending &= ~GATE_BUSY_TIMER;
	if (!hs->ended && res != -ECANCELED)
		gate_hs_end(hs, res < 0 ? res : -ETIMEDOUT);
	gate_hs_finish(hs);
}

/* Makes room for one more handshake by dropping the oldest (see the theory of operation). */
static void gate_drop_oldest(struct gate *g)
{
	struct gate_hs *old = list_first(&g->handshakes, struct gate_hs, node);

	vb_warn("%s: accept failed: %d connections have not sent their token yet; dropped the "
		"oldest",
		g->text, GATE_HANDSHAKES_MAX);
	gate_hs_end(old, -ECANCELED);
	gate_hs_finish(old);
}

/* Starts the handshake of a new connection fd, which the gate owns from here on. */
static void gate_hs_start(struct gate *g, pl_fd fd)
{
	struct gate_hs *hs;
	int r;

	if (g->nhandshakes >= GATE_HANDSHAKES_MAX)
		gate_drop_oldest(g);
	hs = calloc(1, sizeof(*hs));
	if (!hs) {
		vb_warn("%s: accept failed: %s", g->text, sys_strerror(-ENOMEM));
		transport_close_fd(fd);
		return;
	}
	hs->g = g;
	hs->loop = g->loop;
	hs->fd = fd;
	list_add_tail(&g->handshakes, &hs->node);
	g->nhandshakes++;
	g->nobjs++;
	r = loop_timer(g->loop, &hs->timer, (uint64_t)g->timeout_ms * 1000000, gate_hs_timer_done);
	if (r < 0)
		gate_hs_end(hs, r);
	else
		hs->pending |= GATE_BUSY_TIMER;
	if (!hs->ended)
		gate_hs_read(hs);
	gate_hs_finish(hs);
}

/* Frees every ready connection and ends every handshake: a cancel, or the listener closing. */
static void gate_drain_lists(struct gate *g, bool orphan)
{
	struct list *pos, *tmp;

	list_for_each_safe (pos, tmp, &g->ready) {
		struct gate_hs *hs = container_of(pos, struct gate_hs, node);

		hs->g = NULL;
		g->nobjs--;
		gate_hs_free(hs);
	}
	list_for_each_safe (pos, tmp, &g->handshakes) {
		gate_hs_end(container_of(pos, struct gate_hs, node), -ECANCELED);
	}
	if (!orphan)
		return;
	list_for_each_safe (pos, tmp, &g->ending) {
		struct gate_hs *hs = container_of(pos, struct gate_hs, node);

		list_del(&hs->node);
		hs->g = NULL;
		g->nobjs--;
		gate_hs_finish(hs); /* frees it now if nothing is submitted any more */
	}
}

/* ---- the waiter's completions ---- */

/* The kernel accept: a new connection starts its handshake, and the next accept goes out. */
static void gate_accept_done(struct loop_req *req, int res)
{
	struct transport_accept_req *ar = container_of(req, struct transport_accept_req, req);
	struct gate *g = transport_listener_gate(ar->tl);

	ar->pending &= ~GATE_BUSY_REQ;
	if (res >= 0 && g->draining) {
		transport_close_fd((pl_fd)res);
	} else if (res >= 0) {
		/* Even when the waiter has its connection (a race with the cancel): serve it. */
		gate_hs_start(g, (pl_fd)res);
		if (!gate_waiter_settled(ar))
			gate_accept_more(g, ar);
	} else if (!gate_waiter_settled(ar)) {
		ar->result = res;
	}
	gate_accept_finish(g, ar);
}

/* A ready connection was taken: the zero timer only moves the callback out of gate_accept(). */
static void gate_accept_timer_done(struct loop_req *req, int res)
{
	struct transport_accept_req *ar = container_of(req, struct transport_accept_req, timer);

	ar->pending &= ~GATE_BUSY_TIMER;
	gate_accept_finish(transport_listener_gate(ar->tl), ar);
}

/*
 * gate_accept() - takes a ready connection if there is one, else starts
 * accepting. Return: 0 when the callback will run, -EBUSY while another
 * accept waits, -EINVAL for a loop other than the first accept's, or the
 * loop's error.
 */
int gate_accept(struct gate *g, struct loop *l, struct transport_accept_req *ar)
{
	struct gate_hs *hs;
	int r;

	if (g->waiter)
		return -EBUSY;
	if (g->loop && g->loop != l)
		return -EINVAL;
	g->loop = l;
	if (list_empty(&g->ready)) {
		r = loop_accept(l, &ar->req, g->lfd, gate_accept_done);
		if (r < 0)
			return r;
		ar->pending = GATE_BUSY_REQ;
		g->waiter = ar;
		return 0;
	}
	r = loop_timer(l, &ar->timer, 0, gate_accept_timer_done);
	if (r < 0)
		return r;
	ar->pending = GATE_BUSY_TIMER;
	hs = list_first(&g->ready, struct gate_hs, node);
	list_del(&hs->node);
	ar->fd = hs->fd;
	free(hs);
	g->nobjs--;
	g->waiter = ar;
	return 0;
}

/* Ends the accept with -ECANCELED unless it holds a connection already; drains either way. */
void gate_cancel(struct gate *g, struct transport_accept_req *ar)
{
	if (g->waiter != ar || g->draining)
		return;
	if (!gate_waiter_settled(ar))
		ar->result = -ECANCELED;
	g->draining = true;
	if (ar->pending & GATE_BUSY_REQ)
		loop_cancel(g->loop, &ar->req);
	gate_drain_lists(g, false);
}

void gate_close(struct gate *g)
{
	gate_drain_lists(g, true);
}
