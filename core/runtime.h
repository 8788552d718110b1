/* The process's loops: a fixed pool, each loop with its own chunk pool. */
#ifndef VB_CORE_RUNTIME_H
#define VB_CORE_RUNTIME_H

#include <stdbool.h>
#include "core/buf.h"
#include "core/link.h"
#include "platform/loop.h"

/*
 * Receive chunks. A third of one bounds the largest frame, which must hold
 * a whole vnet packet: 64 KiB of IP and its offload header (session.c's
 * default max_frame).
 */
#define RT_CHUNK_SIZE  (256u << 10)
#define RT_CHUNKS_KEPT 128

struct runtime;

/* One loop and what lives on it. Touch it only from its own thread. */
struct rt_loop {
	struct runtime *rt;
	struct loop *loop;
	struct chunk_pool chunks;
	struct link_set links; /* the sessions on this loop (link_config.set) */
	int index;
};

struct runtime {
	struct loop_pool *pool;
	struct rt_loop *loops;
	int n;
	unsigned next;
	atomic_bool stopping; /* runtime_goodbye() was called */
	uint32_t bye_code;
	char bye_reason[128];
};

/* nloops <= 0 means one per core. Returns 0 or a negative errno. */
int runtime_init(struct runtime *rt, int nloops, enum loop_backend backend);
struct rt_loop *runtime_pick(struct runtime *rt);
int runtime_start(struct runtime *rt);
/* How long runtime_goodbye() waits: past a link's drain bound (a second), so a peer that reads
 * gets its GOAWAY. */
#define RT_GOODBYE_MS 1500
int runtime_goodbye(struct runtime *rt, uint32_t wire_code, const char *reason, unsigned ms);
static inline bool runtime_stopping(struct runtime *rt)
{
	return atomic_load(&rt->stopping);
}
void runtime_stop(struct runtime *rt);
void runtime_destroy(struct runtime *rt);
/* The runtime for a single-threaded tool: one loop, run by the caller. */
int runtime_init_single(struct runtime *rt, enum loop_backend backend);

#endif
