/* The sending side of a copy, shared by the agent (GET) and the CLI (PUT): walk, read, emit. */
#ifndef VB_EXEC_CP_SEND_H
#define VB_EXEC_CP_SEND_H

#include <stdbool.h>
#include <stdint.h>
#include "core/session.h"
#include "platform/loop.h"

struct cp_send;

struct cp_send_ops {
	/* A source entry could not be sent: path on this side, err, text (NULL: strerror). */
	void (*on_error)(void *arg, const char *path, int err, const char *text);
	/* The sources were walked first (CP_F_TOTAL): what will be sent. Optional. */
	void (*on_total)(void *arg, uint64_t bytes, uint64_t entries);
	/* DONE and FIN are queued: the sender is finished. The owner may close it now. */
	void (*on_done)(void *arg);
};

struct cp_send_opts {
	struct loop *loop;
	struct stream *st; /* accepted; the owner forwards on_writable to cp_send_writable() */
	uint32_t flags;	   /* CP_F_RECURSIVE, CP_F_PRESERVE, CP_F_TOTAL */
	const char *const *srcs;
	int nsrc;
	bool src_stdin; /* srcs[0] stands for standard input (nsrc is 1) */
};

/*
 * Starts sending (the first step runs from the loop, not inside this call).
 * The strings are copied. Returns 0 or -ENOMEM.
 */
int cp_send_start(struct cp_send **out, const struct cp_send_opts *o, const struct cp_send_ops *ops,
		  void *arg);
/* The stream has room again. */
void cp_send_writable(struct cp_send *s);
/* Data bytes read and queued so far (progress). */
uint64_t cp_send_bytes(const struct cp_send *s);
/*
 * The owner is done with s (finished, or the stream is gone): I/O is
 * cancelled, no callback runs any more, and s frees itself once nothing is in
 * flight. Do not touch s afterwards. The stream stays the owner's.
 */
void cp_send_close(struct cp_send *s);

#endif
