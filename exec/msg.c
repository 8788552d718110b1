/* The EXEC request codec and exit record. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "exec/msg.h"
#include "core/wire.h"

static void exec_wr_str(struct wire_wr *w, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n > 0xffff) {
		w->err = true;
		return;
	}
	wire_wr_u16(w, (uint16_t)n);
	wire_wr_mem(w, s, n);
}

int exec_req_encode(const struct exec_req *r, uint8_t *out, size_t cap)
{
	struct wire_wr w;

	wire_wr_init(&w, out, cap < EXEC_REQ_MAX ? cap : EXEC_REQ_MAX);
	wire_wr_u32(&w, r->flags);
	wire_wr_u16(&w, r->rows);
	wire_wr_u16(&w, r->cols);
	wire_wr_u32(&w, r->timeout_ms);
	exec_wr_str(&w, r->user);
	exec_wr_str(&w, r->cwd);
	exec_wr_str(&w, r->term);
	wire_wr_u16(&w, r->argc);
	for (uint16_t i = 0; i < r->argc; i++)
		exec_wr_str(&w, r->argv[i]);
	wire_wr_u16(&w, r->envc);
	for (uint16_t i = 0; i < r->envc; i++)
		exec_wr_str(&w, r->env[i]);
	return w.err ? -E2BIG : (int)w.off;
}

/*
 * Copies the next string into the arena at *pos as a C string. A string
 * with a NUL byte is malformed: it could not reach exec intact. Returns
 * NULL and sets r->err on failure; "" comes back as NULL when empty_null.
 */
static const char *exec_rd_str(struct wire_rd *r, char *arena, size_t *pos, bool empty_null)
{
	uint16_t n = wire_rd_u16(r);
	const uint8_t *p = wire_rd_bytes(r, n);
	char *s;

	if (!p || memchr(p, '\0', n)) {
		r->err = true;
		return NULL;
	}
	if (!n && empty_null)
		return NULL;
	s = arena + *pos;
	memcpy(s, p, n);
	s[n] = '\0';
	*pos += (size_t)n + 1;
	return s;
}

/* Reads count strings into a NULL-terminated array carved from the arena. */
static const char **exec_rd_list(struct wire_rd *r, uint16_t count, char *arena, size_t *pos,
				 const char **slots)
{
	for (uint16_t i = 0; i < count && !r->err; i++)
		slots[i] = exec_rd_str(r, arena, pos, false);
	slots[count] = NULL;
	return slots;
}

static int exec_req_check(const struct exec_req *q, char *why, size_t whylen)
{
	if (!q->argc || !q->argv[0][0]) {
		snprintf(why, whylen, "no program to run");
		return -EINVAL;
	}
	for (uint16_t i = 0; i < q->envc; i++) {
		if (!strchr(q->env[i], '=') || q->env[i][0] == '=') {
			snprintf(why, whylen, "environment entry '%.64s' is not KEY=VALUE",
				 q->env[i]);
			return -EINVAL;
		}
	}
	return 0;
}

int exec_req_decode(const uint8_t *p, size_t len, struct exec_req *q, void **mem, char *why,
		    size_t whylen)
{
	/* Every string fits in len bytes plus a NUL each; pointers at most one per 2 bytes. */
	size_t slots = len / 2 + 4, pos = 0;
	const char **ptrs;
	struct wire_rd r;
	char *arena;

	*mem = NULL;
	if (len > EXEC_REQ_MAX) {
		snprintf(why, whylen, "exec request of %zu bytes is too large", len);
		return -EINVAL;
	}
	*mem = malloc(slots * sizeof(*ptrs) + len + slots);
	if (!*mem)
		return -ENOMEM;
	ptrs = *mem;
	arena = (char *)(ptrs + slots);
	memset(q, 0, sizeof(*q));
	wire_rd_init(&r, p, len);
	q->flags = wire_rd_u32(&r);
	q->rows = wire_rd_u16(&r);
	q->cols = wire_rd_u16(&r);
	q->timeout_ms = wire_rd_u32(&r);
	q->user = exec_rd_str(&r, arena, &pos, true);
	q->cwd = exec_rd_str(&r, arena, &pos, true);
	q->term = exec_rd_str(&r, arena, &pos, true);
	q->argc = wire_rd_u16(&r);
	if (!r.err && q->argc + 1u <= slots)
		q->argv = exec_rd_list(&r, q->argc, arena, &pos, ptrs);
	q->envc = wire_rd_u16(&r);
	if (!r.err && q->argv && q->argc + 1u + q->envc + 1u <= slots)
		q->env = exec_rd_list(&r, q->envc, arena, &pos, ptrs + q->argc + 1);
	if (r.err || !q->argv || !q->env || wire_rd_left(&r)) {
		snprintf(why, whylen, "malformed exec request");
		free(*mem);
		*mem = NULL;
		return -EINVAL;
	}
	if (exec_req_check(q, why, whylen)) {
		free(*mem);
		*mem = NULL;
		return -EINVAL;
	}
	return 0;
}

void exec_exit_encode(const struct exec_exit *e, uint8_t out[3])
{
	out[0] = e->kind;
	out[1] = e->code;
	out[2] = e->core;
}

int exec_exit_decode(const uint8_t *p, size_t len, struct exec_exit *e)
{
	if (len != 3 || p[0] > EXEC_TIMEOUT)
		return -EPROTO;
	e->kind = p[0];
	e->code = p[1];
	e->core = p[2] != 0;
	return 0;
}

int exec_exit_status(const struct exec_exit *e)
{
	switch (e->kind) {
	case EXEC_EXITED:
		return e->code;
	case EXEC_SIGNALED:
		return 128 + e->code;
	default:
		return 124;
	}
}
