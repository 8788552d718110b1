/* The process's loops and their chunk pools. */
#include <errno.h>
#include <stdio.h>
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
		link_set_init(&rt->loops[i].links);
	}
	atomic_init(&rt->stopping, false);
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

static int runtime_links(struct runtime *rt)
{
	int n = 0;

	for (int i = 0; i < rt->n; i++)
		n += link_set_count(&rt->loops[i].links);
	return n;
}

static void runtime_goodbye_cb(void *arg)
{
	struct rt_loop *rl = arg;

	link_set_shutdown(&rl->links, rl->rt->bye_code, rl->rt->bye_reason);
}

/**
 * runtime_goodbye() - end every session with a GOAWAY before the process stops
 * @ms: how long to wait for the links to flush it and go
 *
 * Called from outside the loops, while they run. Marks the runtime stopping
 * first (runtime_stopping()), so that nothing dials or accepts anew; the
 * links' own drain bound (a second) keeps a peer that does not read from
 * holding the stop. Return: the links still there at the deadline.
 */
int runtime_goodbye(struct runtime *rt, uint32_t wire_code, const char *reason, unsigned ms)
{
	uint64_t deadline = clock_now_ns() + (uint64_t)ms * 1000000ull;

	atomic_store(&rt->stopping, true);
	rt->bye_code = wire_code;
	snprintf(rt->bye_reason, sizeof(rt->bye_reason), "%s", reason);
	for (int i = 0; i < rt->n; i++)
		if (link_set_count(&rt->loops[i].links))
			loop_post(rt->loops[i].loop, runtime_goodbye_cb, &rt->loops[i]);
	while (runtime_links(rt) && clock_now_ns() < deadline)
		sys_sleep_ms(10);
	return runtime_links(rt);
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
