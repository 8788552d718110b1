/* Reference-counted fixed-size chunks from per-loop pools, and a byte ring over one chunk. */
#ifndef VB_CORE_BUF_H
#define VB_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/*
 * A chunk is the unit of memory on the data path. A receive lands in a chunk;
 * every frame parsed from it hands its payload on as (chunk, pointer, length)
 * with a reference of its own, so the payload is written to its destination
 * straight from where it was received. The chunk returns to its pool when the
 * last reference is dropped.
 *
 * Pools are per loop and chunks never cross loops, so reference counts are
 * plain integers: a session and all its streams live on one loop thread.
 */
struct chunk_pool;

struct chunk {
	struct chunk_pool *pool; /* NULL: a chunk of its own (chunk_alloc()) */
	struct chunk *next;	 /* free list link while pooled */
	uint32_t refs;
	uint32_t size; /* usable bytes in data[] */
	uint8_t data[];
};

struct chunk_pool {
	size_t chunk_size;  /* bytes of data[] per chunk */
	size_t max_free;    /* chunks kept for reuse; the rest go back to malloc */
	size_t nfree;	    /* chunks on the free list */
	size_t outstanding; /* chunks handed out and not yet returned */
	struct chunk *free;
};

void chunk_pool_init(struct chunk_pool *p, size_t chunk_size, size_t max_free);
void chunk_pool_destroy(struct chunk_pool *p);
struct chunk *chunk_get(struct chunk_pool *p);
struct chunk *chunk_alloc(size_t size);
void chunk_ref(struct chunk *c);
void chunk_put(struct chunk *c);

/*
 * A byte ring: size bytes at area, data bytes stored starting at head, which
 * may wrap (HAProxy's struct buffer). The two cases:
 *
 *   no wrap:  |.....[head ......... head+data).....|
 *   wrapped:  |......data2)........[head .... data1|
 *
 * ring_contig_data() is the first readable run, ring_contig_room() the first
 * writable run; a reader or writer handles at most two runs.
 */
struct ring {
	uint8_t *area;
	size_t size;
	size_t head;
	size_t data;
};

void ring_init(struct ring *r, uint8_t *area, size_t size);
static inline size_t ring_data(const struct ring *r)
{
	return r->data;
}
static inline size_t ring_room(const struct ring *r)
{
	return r->size - r->data;
}
static inline bool ring_empty(const struct ring *r)
{
	return r->data == 0;
}
size_t ring_contig_data(const struct ring *r);
size_t ring_contig_room(const struct ring *r);
uint8_t *ring_head(const struct ring *r);
uint8_t *ring_tail(const struct ring *r);
void ring_produce(struct ring *r, size_t n);
void ring_consume(struct ring *r, size_t n);
size_t ring_put(struct ring *r, const void *src, size_t n);
size_t ring_get(struct ring *r, void *dst, size_t n);
size_t ring_peek(const struct ring *r, void *dst, size_t n);

#endif
