/* A link: one session driven over one channel descriptor on one loop. */
#ifndef VB_CORE_LINK_H
#define VB_CORE_LINK_H

#include <stdatomic.h>
#include <stdint.h>
#include "core/list.h"
#include "core/session.h"
#include "platform/loop.h"

struct link;

struct link_ops {
	void (*on_ready)(struct link *lk);
	void (*on_open)(struct link *lk, struct stream *st, uint16_t kind, uint16_t flags,
			const uint8_t *req, size_t len);
	void (*on_pong)(struct link *lk, uint64_t rtt_ns);
	/*
	 * The session is over (every stream had on_reset). The link frees itself
	 * once its I/O has drained; the caller must not use it after this.
	 */
	void (*on_close)(struct link *lk, int err, const char *reason);
	/* Optional: the link's memory and descriptor are gone (after on_close). */
	void (*on_freed)(void *app);
};

/*
 * The links of one loop, so that a process can say GOAWAY to every peer
 * before it stops (link_set_shutdown()). The list is the loop thread's; n
 * may be read from any thread, to wait for the set to empty.
 */
struct link_set {
	struct list links;
	atomic_int n;
	bool closing; /* link_set_shutdown() ran: a link made since is shut down at once */
	uint32_t bye_code;
	char bye_reason[128];
};

void link_set_init(struct link_set *set);
/* On the set's loop: link_shutdown() on each of its links, and on each made later. */
void link_set_shutdown(struct link_set *set, uint32_t wire_code, const char *reason);
static inline int link_set_count(struct link_set *set)
{
	return atomic_load(&set->n);
}

struct link_config {
	struct session_config session;
	struct link_set *set;  /* the link joins it until it is freed (NULL: none) */
	uint32_t keepalive_ms; /* PING this often when idle (0: never) */
	uint32_t dead_ms;      /* no input for this long: the peer is gone (0: never) */
	size_t max_write;      /* the transport's largest write */
};

void link_config_defaults(struct link_config *cfg);

/*
 * Starts a session over fd (owned by the link from now on) on loop l, with
 * buffers from pool, whose chunks must hold a whole frame. Returns 0, or a
 * negative errno (fd is closed). In a closing cfg.set the link says GOAWAY
 * at once: *out is set, then on_close runs before link_new() returns.
 */
int link_new(struct link **out, struct loop *l, struct chunk_pool *pool, pl_fd fd,
	     const struct link_config *cfg, const struct link_ops *ops, void *app);
struct session *link_session(const struct link *lk);
struct loop *link_loop(const struct link *lk);
void *link_app(const struct link *lk);
void link_set_app(struct link *lk, void *app);
int link_ping(struct link *lk);
/* Says GOAWAY with reason, flushes, closes; on_close follows. */
void link_shutdown(struct link *lk, uint32_t wire_code, const char *reason);

#endif
