/* Chunk pools and the byte ring. */
#include <stdlib.h>
#include <string.h>
#include "core/buf.h"

/**
 * chunk_pool_init() - prepare a pool of chunks of chunk_size data bytes
 * @max_free: how many returned chunks to keep for reuse
 */
void chunk_pool_init(struct chunk_pool *p, size_t chunk_size, size_t max_free)
{
	memset(p, 0, sizeof(*p));
	p->chunk_size = chunk_size;
	p->max_free = max_free;
}

/* Frees the pooled chunks; chunks still out are freed when their last reference goes. */
void chunk_pool_destroy(struct chunk_pool *p)
{
	while (p->free) {
		struct chunk *c = p->free;

		p->free = c->next;
		free(c);
	}
	p->nfree = 0;
	p->max_free = 0;
}

/* Returns a chunk holding one reference, or NULL when memory is exhausted. */
struct chunk *chunk_get(struct chunk_pool *p)
{
	struct chunk *c = p->free;

	if (c) {
		p->free = c->next;
		p->nfree--;
	} else {
		c = malloc(sizeof(*c) + p->chunk_size);
		if (!c)
			return NULL;
		c->pool = p;
		c->size = (uint32_t)p->chunk_size;
	}
	c->next = NULL;
	c->refs = 1;
	p->outstanding++;
	return c;
}

/**
 * chunk_alloc() - a chunk of size bytes of its own, outside any pool
 *
 * For a few bytes that must not keep a pooled chunk alive; freed when its
 * last reference is dropped. Returns it holding one reference, or NULL.
 */
struct chunk *chunk_alloc(size_t size)
{
	struct chunk *c = malloc(sizeof(*c) + size);

	if (!c)
		return NULL;
	c->pool = NULL;
	c->next = NULL;
	c->refs = 1;
	c->size = (uint32_t)size;
	return c;
}

void chunk_ref(struct chunk *c)
{
	c->refs++;
}

/* Drops one reference; the last one returns the chunk to its pool. */
void chunk_put(struct chunk *c)
{
	struct chunk_pool *p;

	if (!c || --c->refs)
		return;
	p = c->pool;
	if (!p) {
		free(c);
		return;
	}
	p->outstanding--;
	if (p->nfree < p->max_free) {
		c->next = p->free;
		p->free = c;
		p->nfree++;
		return;
	}
	free(c);
}

void ring_init(struct ring *r, uint8_t *area, size_t size)
{
	r->area = area;
	r->size = size;
	r->head = 0;
	r->data = 0;
}

/* The first contiguous readable run, starting at ring_head(). */
size_t ring_contig_data(const struct ring *r)
{
	size_t to_end = r->size - r->head;

	return r->data < to_end ? r->data : to_end;
}

/* The first contiguous writable run, starting at ring_tail(). */
size_t ring_contig_room(const struct ring *r)
{
	size_t tail = r->head + r->data;

	if (tail >= r->size)
		return r->size - r->data; /* wrapped: room runs up to head */
	return r->size - tail;
}

uint8_t *ring_head(const struct ring *r)
{
	return r->area + r->head;
}

uint8_t *ring_tail(const struct ring *r)
{
	size_t tail = r->head + r->data;

	if (tail >= r->size)
		tail -= r->size;
	return r->area + tail;
}

/* Marks n bytes written at ring_tail() as data; n <= ring_contig_room(). */
void ring_produce(struct ring *r, size_t n)
{
	r->data += n;
}

/* Drops n bytes from the head; n <= ring_data(). */
void ring_consume(struct ring *r, size_t n)
{
	r->head += n;
	if (r->head >= r->size)
		r->head -= r->size;
	r->data -= n;
	if (!r->data)
		r->head = 0; /* keep runs long */
}

/* Copies up to n bytes in; returns how many fit. */
size_t ring_put(struct ring *r, const void *src, size_t n)
{
	const uint8_t *s = src;
	size_t done = 0;

	while (done < n && ring_room(r)) {
		size_t run = ring_contig_room(r);

		if (run > n - done)
			run = n - done;
		memcpy(ring_tail(r), s + done, run);
		ring_produce(r, run);
		done += run;
	}
	return done;
}

/* Copies up to n bytes out without consuming them; returns how many. */
size_t ring_peek(const struct ring *r, void *dst, size_t n)
{
	uint8_t *d = dst;
	size_t first = ring_contig_data(r);
	size_t done;

	if (n > r->data)
		n = r->data;
	done = n < first ? n : first;
	memcpy(d, ring_head(r), done);
	if (done < n)
		memcpy(d + done, r->area, n - done);
	return n;
}

/* Copies up to n bytes out and consumes them; returns how many. */
size_t ring_get(struct ring *r, void *dst, size_t n)
{
	n = ring_peek(r, dst, n);
	ring_consume(r, n);
	return n;
}
