/* The FILE request codec and its records; every decoder checks every byte a peer sent. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "exec/cp_msg.h"
#include "core/wire.h"

void cp_rec_hdr(uint8_t out[REC_HDR_LEN], uint8_t type, uint32_t len)
{
	out[0] = type;
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
}

/* ---- paths ---- */

/* One component: not empty, not "." or ".." (unless dot_ok allows "."). */
static bool cp_comp_ok(const char *p, size_t n, bool dot_ok)
{
	if (!n)
		return false;
	if (n == 1 && p[0] == '.')
		return dot_ok;
	return !(n == 2 && p[0] == '.' && p[1] == '.');
}

int cp_path_check(const char *p, size_t n, bool top, bool dot_ok)
{
	size_t start = 0;

	if (!n || n > CP_NAME_MAX || memchr(p, '\0', n))
		return -EINVAL;
	if (top)
		return !memchr(p, '/', n) && cp_comp_ok(p, n, dot_ok) ? 0 : -EINVAL;
	for (size_t i = 0; i <= n; i++) {
		if (i < n && p[i] != '/')
			continue;
		/* A leading '/' is an empty first component, a trailing one an empty last. */
		if (!cp_comp_ok(p + start, i - start, false))
			return -EINVAL;
		start = i + 1;
	}
	return 0;
}

int cp_top_name(const char *src, char *out, size_t cap)
{
	size_t n = strlen(src);
	const char *base;

	while (n > 1 && src[n - 1] == '/')
		n--;
	base = src + n;
	while (base > src && base[-1] != '/')
		base--;
	n -= (size_t)(base - src);
	/* "/", ".", ".." and "dir/." name a directory whose contents go to the target. */
	if (!n || (n == 1 && (base[0] == '.' || base[0] == '/')) ||
	    (n == 2 && base[0] == '.' && base[1] == '.')) {
		base = ".";
		n = 1;
	}
	if (n >= cap || n > CP_NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(out, base, n);
	out[n] = '\0';
	return 0;
}

/* ---- request ---- */

int cp_req_encode(const struct cp_req *q, uint8_t *out, size_t cap)
{
	struct wire_wr w;

	wire_wr_init(&w, out, cap < CP_REQ_MAX ? cap : CP_REQ_MAX);
	wire_wr_u8(&w, q->dir);
	wire_wr_u32(&w, q->flags);
	wire_wr_u16(&w, q->count);
	for (uint16_t i = 0; i < q->count; i++) {
		size_t n = strlen(q->paths[i]);

		if (n > CP_PATH_MAX)
			return -E2BIG;
		wire_wr_u16(&w, (uint16_t)n);
		wire_wr_mem(&w, q->paths[i], n);
	}
	return w.err ? -E2BIG : (int)w.off;
}

/* Copies the next path into the arena at *pos as a C string; NULL (and r->err) if malformed. */
static const char *cp_rd_path(struct wire_rd *r, char *arena, size_t *pos)
{
	uint16_t n = wire_rd_u16(r);
	const uint8_t *p = wire_rd_bytes(r, n);
	char *s;

	if (!p || !n || n > CP_PATH_MAX || memchr(p, '\0', n)) {
		r->err = true;
		return NULL;
	}
	s = arena + *pos;
	memcpy(s, p, n);
	s[n] = '\0';
	*pos += (size_t)n + 1;
	return s;
}

/* The rules beyond the layout: a direction, known flags, PUT with one path, GET with some. */
static int cp_req_check(const struct cp_req *q, char *why, size_t whylen)
{
	if (q->dir != CP_PUT && q->dir != CP_GET) {
		snprintf(why, whylen, "unknown copy direction %u", q->dir);
		return -EINVAL;
	}
	if (q->flags & ~CP_F_ALL) {
		snprintf(why, whylen, "unknown copy flags 0x%x", q->flags & ~CP_F_ALL);
		return -EINVAL;
	}
	if ((q->dir == CP_PUT && q->count != 1) || !q->count || q->count > CP_REQ_PATHS_MAX) {
		snprintf(why, whylen, "%u paths in a %s request", q->count,
			 q->dir == CP_PUT ? "PUT" : "GET");
		return -EINVAL;
	}
	return 0;
}

int cp_req_decode(const uint8_t *p, size_t len, struct cp_req *q, void **mem, char *why,
		  size_t whylen)
{
	struct wire_rd r;
	size_t pos = 0;
	char *arena;

	*mem = NULL;
	memset(q, 0, sizeof(*q));
	if (len > CP_REQ_MAX) {
		snprintf(why, whylen, "copy request of %zu bytes is too large", len);
		return -EINVAL;
	}
	wire_rd_init(&r, p, len);
	q->dir = wire_rd_u8(&r);
	q->flags = wire_rd_u32(&r);
	q->count = wire_rd_u16(&r);
	if (r.err || q->count > CP_REQ_PATHS_MAX || !q->count) {
		snprintf(why, whylen, "malformed copy request");
		return -EINVAL;
	}
	/* count + 1 pointers, then every string with its NUL: at most len bytes of them. */
	*mem = malloc((q->count + 1u) * sizeof(char *) + len + 1);
	if (!*mem) {
		snprintf(why, whylen, "out of memory"); /* the caller logs and sends why */
		return -ENOMEM;
	}
	q->paths = *mem;
	arena = (char *)(q->paths + q->count + 1);
	for (uint16_t i = 0; i < q->count; i++)
		q->paths[i] = cp_rd_path(&r, arena, &pos);
	q->paths[q->count] = NULL;
	if (r.err || wire_rd_left(&r)) {
		snprintf(why, whylen, "malformed copy request");
		goto fail;
	}
	if (cp_req_check(q, why, whylen))
		goto fail;
	return 0;
fail:
	free(*mem);
	*mem = NULL;
	q->paths = NULL;
	return -EINVAL;
}

/* ---- ENTRY ---- */

int cp_entry_encode(const struct cp_entry *e, uint8_t *out, size_t cap)
{
	size_t pn = strlen(e->path), tn = strlen(e->target);
	struct wire_wr w;

	if (pn + tn > CP_NAME_MAX)
		return -ENAMETOOLONG;
	wire_wr_init(&w, out, cap);
	wire_wr_u8(&w, e->type);
	wire_wr_u8(&w, e->flags);
	wire_wr_u32(&w, e->mode);
	wire_wr_u64(&w, e->size);
	wire_wr_u64(&w, (uint64_t)e->mtime_ns);
	wire_wr_u64(&w, (uint64_t)e->atime_ns);
	wire_wr_u16(&w, (uint16_t)pn);
	wire_wr_mem(&w, e->path, pn);
	wire_wr_u16(&w, (uint16_t)tn);
	wire_wr_mem(&w, e->target, tn);
	return w.err ? -ENAMETOOLONG : (int)w.off;
}

/* Copies a str field into dst (CP_NAME_MAX + 1 bytes); false when short. */
static bool cp_rd_name(struct wire_rd *r, char *dst, uint16_t *n)
{
	const uint8_t *p;

	*n = wire_rd_u16(r);
	p = wire_rd_bytes(r, *n);
	if (!p || *n > CP_NAME_MAX)
		return false;
	memcpy(dst, p, *n);
	dst[*n] = '\0';
	return true;
}

/* The rules between fields: what each type may carry, and where "." may stand. */
static int cp_entry_check(const struct cp_entry *e)
{
	bool top = e->flags & CP_E_TOP;

	if (e->type < CP_T_FILE || e->type > CP_T_LINK || (e->flags & ~CP_E_TOP) ||
	    (e->mode & ~07777u))
		return -EPROTO;
	if (cp_path_check(e->path, e->path_len, top, e->type == CP_T_DIR))
		return -EPROTO;
	if (e->type == CP_T_LINK)
		return e->target_len && !memchr(e->target, '\0', e->target_len) && !e->size
			   ? 0
			   : -EPROTO;
	return e->target_len || (e->type == CP_T_DIR && e->size) ? -EPROTO : 0;
}

int cp_entry_decode(const uint8_t *p, size_t len, struct cp_entry *e)
{
	struct wire_rd r;

	if (len > REC_CONTROL_MAX)
		return -EPROTO;
	wire_rd_init(&r, p, len);
	e->type = wire_rd_u8(&r);
	e->flags = wire_rd_u8(&r);
	e->mode = wire_rd_u32(&r);
	e->size = wire_rd_u64(&r);
	e->mtime_ns = (int64_t)wire_rd_u64(&r);
	e->atime_ns = (int64_t)wire_rd_u64(&r);
	if (!cp_rd_name(&r, e->path, &e->path_len) || !cp_rd_name(&r, e->target, &e->target_len))
		return -EPROTO;
	if (r.err || wire_rd_left(&r))
		return -EPROTO;
	return cp_entry_check(e);
}

/* ---- END, TOTAL, DONE ---- */

void cp_end_encode(const struct cp_end *e, uint8_t out[CP_END_LEN])
{
	wire_put_u32(out, e->code);
	wire_put_u64(out + 4, e->bytes);
	memcpy(out + 12, e->hash, CP_HASH_LEN);
}

int cp_end_decode(const uint8_t *p, size_t len, struct cp_end *e)
{
	if (len != CP_END_LEN)
		return -EPROTO;
	e->code = wire_get_u32(p);
	e->bytes = wire_get_u64(p + 4);
	memcpy(e->hash, p + 12, CP_HASH_LEN);
	return 0;
}

void cp_total_encode(const struct cp_total *t, uint8_t out[CP_TOTAL_LEN])
{
	wire_put_u64(out, t->bytes);
	wire_put_u64(out + 8, t->entries);
}

int cp_total_decode(const uint8_t *p, size_t len, struct cp_total *t)
{
	if (len != CP_TOTAL_LEN)
		return -EPROTO;
	t->bytes = wire_get_u64(p);
	t->entries = wire_get_u64(p + 8);
	return 0;
}

void cp_done_encode(const struct cp_done *d, uint8_t out[CP_DONE_LEN])
{
	wire_put_u64(out, d->entries);
	wire_put_u64(out + 8, d->failed);
	wire_put_u64(out + 16, d->bytes);
}

int cp_done_decode(const uint8_t *p, size_t len, struct cp_done *d)
{
	if (len != CP_DONE_LEN)
		return -EPROTO;
	d->entries = wire_get_u64(p);
	d->failed = wire_get_u64(p + 8);
	d->bytes = wire_get_u64(p + 16);
	return 0;
}

/* ---- RESULT ---- */

int cp_result_encode(uint32_t code, const char *path, const char *text, uint8_t *out, size_t cap)
{
	size_t tn = strnlen(text, CP_TEXT_MAX), pn = strlen(path);
	size_t room = REC_CONTROL_MAX - 4 - 2 - 1 - tn;
	struct wire_wr w;

	if (pn > room)
		pn = room; /* a display path: its start says more than its end */
	wire_wr_init(&w, out, cap);
	wire_wr_u32(&w, code);
	wire_wr_u16(&w, (uint16_t)pn);
	wire_wr_mem(&w, path, pn);
	wire_wr_u8(&w, (uint8_t)tn);
	for (size_t i = 0; i < tn; i++)
		wire_wr_u8(&w, text[i] >= 0x20 && text[i] < 0x7f ? (uint8_t)text[i] : '?');
	return w.err ? -E2BIG : (int)w.off;
}

/* Copies n bytes for display: every byte outside printable ASCII becomes '?'. */
static void cp_printable(char *dst, const uint8_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7f ? (char)src[i] : '?';
	dst[n] = '\0';
}

int cp_result_decode(const uint8_t *p, size_t len, struct cp_result *res)
{
	const uint8_t *path, *text;
	struct wire_rd r;
	uint16_t pn;
	uint8_t tn;

	wire_rd_init(&r, p, len);
	res->code = wire_rd_u32(&r);
	pn = wire_rd_u16(&r);
	path = wire_rd_bytes(&r, pn);
	tn = wire_rd_u8(&r);
	text = wire_rd_bytes(&r, tn);
	if (r.err || wire_rd_left(&r) || !res->code || pn >= sizeof(res->path))
		return -EPROTO;
	cp_printable(res->path, path, pn);
	cp_printable(res->text, text, tn);
	return 0;
}
