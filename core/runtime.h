/* The process's loops: a fixed pool, each loop with its own chunk pool. */
#ifndef VB_CORE_RUNTIME_H
#define VB_CORE_RUNTIME_H

#include "core/buf.h"
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
	int index;
};

struct runtime {
	struct loop_pool *pool;
	struct rt_loop *loops;
	int n;
	unsigned next;
};

/* nloops <= 0 means one per core. Returns 0 or a negative errno. */
int runtime_init(struct runtime *rt, int nloops, enum loop_backend backend);
struct rt_loop *runtime_pick(struct runtime *rt);
int runtime_start(struct runtime *rt);
void runtime_stop(struct runtime *rt);
void runtime_destroy(struct runtime *rt);
/* The runtime for a single-threaded tool: one loop, run by the caller. */
int runtime_init_single(struct runtime *rt, enum loop_backend backend);

#endif
