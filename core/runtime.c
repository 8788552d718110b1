/* The process's loops and their chunk pools. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "core/runtime.h"
#include "core/kinds.h"
#include "platform/sys.h"

static const char *const kind_names[] = {
    [KIND_BENCH] = "bench", [KIND_CONTROL] = "control", [KIND_ROUTE] = "route",
    [KIND_EXEC] = "exec",   [KIND_FILE] = "file",	[KIND_TCP] = "tcp",
    [KIND_VNET] = "vnet",
};

const char *kind_name(unsigned kind)
{
	if (kind < sizeof(kind_names) / sizeof(kind_names[0]) && kind_names[kind])
		return kind_names[kind];
	return "unknown";
}

int runtime_init(struct runtime *rt, int nloops, enum loop_backend backend)
{
	int ret;

	memset(rt, 0, sizeof(*rt));
	if (nloops <= 0)
		nloops = sys_ncpu();
	ret = pool_new(&rt->pool, nloops, backend);
	if (ret)
		return ret;
	rt->loops = calloc((size_t)nloops, sizeof(*rt->loops));
	if (!rt->loops) {
		pool_free(rt->pool);
		return -ENOMEM;
	}
	rt->n = nloops;
	for (int i = 0; i < nloops; i++) {
		rt->loops[i].rt = rt;
		rt->loops[i].loop = pool_loop(rt->pool, i);
		rt->loops[i].index = i;
		chunk_pool_init(&rt->loops[i].chunks, RT_CHUNK_SIZE, RT_CHUNKS_KEPT);
	}
	return 0;
}

int runtime_init_single(struct runtime *rt, enum loop_backend backend)
{
	return runtime_init(rt, 1, backend);
}

/* Round-robin: sessions are spread over the loops as they arrive. */
struct rt_loop *runtime_pick(struct runtime *rt)
{
	return &rt->loops[rt->next++ % (unsigned)rt->n];
}

int runtime_start(struct runtime *rt)
{
	return pool_start(rt->pool);
}

void runtime_stop(struct runtime *rt)
{
	pool_stop(rt->pool);
}

void runtime_destroy(struct runtime *rt)
{
	if (!rt->loops)
		return;
	pool_free(rt->pool);
	for (int i = 0; i < rt->n; i++)
		chunk_pool_destroy(&rt->loops[i].chunks);
	free(rt->loops);
	memset(rt, 0, sizeof(*rt));
}
