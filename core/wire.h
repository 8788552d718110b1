/* Big-endian field access with bounds checks for everything read from a peer. */
#ifndef VB_CORE_WIRE_H
#define VB_CORE_WIRE_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <string.h>

static inline void wire_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void wire_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static inline void wire_put_u64(uint8_t *p, uint64_t v)
{
	wire_put_u32(p, (uint32_t)(v >> 32));
	wire_put_u32(p + 4, (uint32_t)v);
}

static inline uint16_t wire_get_u16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t wire_get_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t wire_get_u64(const uint8_t *p)
{
	return ((uint64_t)wire_get_u32(p) << 32) | wire_get_u32(p + 4);
}

/*
 * A reader over bytes from a peer. Every get checks the remaining length; a
 * short read sets err and returns zeros, so a decoder reads all its fields and
 * checks err once at the end.
 */
struct wire_rd {
	const uint8_t *p;
	size_t len;
	size_t off;
	bool err;
};

static inline void wire_rd_init(struct wire_rd *r, const void *p, size_t len)
{
	r->p = p;
	r->len = len;
	r->off = 0;
	r->err = false;
}

static inline size_t wire_rd_left(const struct wire_rd *r)
{
	return r->len - r->off;
}

/* Returns a pointer to the next n bytes and skips them, or NULL (and err) if short. */
static inline const uint8_t *wire_rd_bytes(struct wire_rd *r, size_t n)
{
	const uint8_t *p;

	if (r->err || n > wire_rd_left(r)) {
		r->err = true;
		return NULL;
	}
	p = r->p + r->off;
	r->off += n;
	return p;
}

static inline uint8_t wire_rd_u8(struct wire_rd *r)
{
	const uint8_t *p = wire_rd_bytes(r, 1);

	return p ? p[0] : 0;
}

static inline uint16_t wire_rd_u16(struct wire_rd *r)
{
	const uint8_t *p = wire_rd_bytes(r, 2);

	return p ? wire_get_u16(p) : 0;
}

static inline uint32_t wire_rd_u32(struct wire_rd *r)
{
	const uint8_t *p = wire_rd_bytes(r, 4);

	return p ? wire_get_u32(p) : 0;
}

static inline uint64_t wire_rd_u64(struct wire_rd *r)
{
	const uint8_t *p = wire_rd_bytes(r, 8);

	return p ? wire_get_u64(p) : 0;
}

/* A writer into a fixed buffer; overflow sets err. */
struct wire_wr {
	uint8_t *p;
	size_t cap;
	size_t off;
	bool err;
};

static inline void wire_wr_init(struct wire_wr *w, void *p, size_t cap)
{
	w->p = p;
	w->cap = cap;
	w->off = 0;
	w->err = false;
}

static inline uint8_t *wire_wr_bytes(struct wire_wr *w, size_t n)
{
	uint8_t *p;

	if (w->err || n > w->cap - w->off) {
		w->err = true;
		return NULL;
	}
	p = w->p + w->off;
	w->off += n;
	return p;
}

static inline void wire_wr_u8(struct wire_wr *w, uint8_t v)
{
	uint8_t *p = wire_wr_bytes(w, 1);

	if (p)
		p[0] = v;
}

static inline void wire_wr_u16(struct wire_wr *w, uint16_t v)
{
	uint8_t *p = wire_wr_bytes(w, 2);

	if (p)
		wire_put_u16(p, v);
}

static inline void wire_wr_u32(struct wire_wr *w, uint32_t v)
{
	uint8_t *p = wire_wr_bytes(w, 4);

	if (p)
		wire_put_u32(p, v);
}

static inline void wire_wr_u64(struct wire_wr *w, uint64_t v)
{
	uint8_t *p = wire_wr_bytes(w, 8);

	if (p)
		wire_put_u64(p, v);
}

static inline void wire_wr_mem(struct wire_wr *w, const void *src, size_t n)
{
	uint8_t *p = wire_wr_bytes(w, n);

	if (p && n)
		memcpy(p, src, n);
}

#endif
