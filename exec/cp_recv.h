/* The receiving side of a copy, shared by the agent (PUT) and the CLI (GET): check, write, commit.
 */
#ifndef VB_EXEC_CP_RECV_H
#define VB_EXEC_CP_RECV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/session.h"
#include "exec/cp_msg.h"
#include "platform/loop.h"

struct cp_recv;

struct cp_recv_ops {
	/* An entry failed here: path on this side, err, text (NULL: strerror). */
	void (*on_result)(void *arg, const char *path, int err, const char *text);
	/* A record the receiver does not take (TOTAL, RESULT): 0, or -EPROTO. NULL: all -EPROTO. */
	int (*on_record)(void *arg, uint8_t type, const uint8_t *p, size_t n);
	/* The sender's DONE came and every entry is settled: the copy is over. */
	void (*on_done)(void *arg, const struct cp_done *sender);
};

struct cp_recv_opts {
	struct loop *loop;
	uint32_t flags;	 /* CP_F_RECURSIVE, CP_F_PRESERVE, CP_F_INTO, CP_F_TARGET */
	const char *dst; /* the target; NULL: the single file goes to out_fd */
	pl_fd out_fd;
	uint32_t mode_mask; /* 07777 when the sender is trusted with setuid bits, else 0777 */
	/* When nexpect > 0: the names the sources must arrive under, in order (GET). */
	const char *const *expect;
	int nexpect;
};

/*
 * Opens the target: an existing directory takes the sources (CP_F_INTO
 * requires one), anything else is the name of the single source's copy.
 * Returns 0, or a negative errno with why ("dst: No such file or directory").
 */
int cp_recv_new(struct cp_recv **out, const struct cp_recv_opts *o, const struct cp_recv_ops *ops,
		void *arg, char *why, size_t whylen);
/* The stream whose credit the receiver returns as its writes complete (NULL: none). */
void cp_recv_attach(struct cp_recv *r, struct stream *st);
/*
 * Takes stream bytes (on_data). Returns 0, or a negative errno when the
 * sender broke the protocol (-EPROTO): the copy is over, close r.
 */
int cp_recv_feed(struct cp_recv *r, struct chunk *c, const uint8_t *p, size_t len);
/* The sender's FIN: 0 after its DONE, else -EPIPE (it stopped midway: close r). */
int cp_recv_fin(struct cp_recv *r);
/* Entries written, failed here, and data bytes received so far. */
void cp_recv_stats(const struct cp_recv *r, struct cp_done *d);
/*
 * The owner is done with r: unfinished files are removed (the target keeps
 * its old contents), no callback runs any more, and r frees itself once its
 * write in flight completed. Do not touch r afterwards.
 */
void cp_recv_close(struct cp_recv *r);

#endif
