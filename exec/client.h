/* The host side of one EXEC stream: run a program in the VM with local stdio. */
#ifndef VB_EXEC_CLIENT_H
#define VB_EXEC_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include "core/session.h"
#include "exec/msg.h"
#include "platform/loop.h"

struct exec_cli_opts {
	struct exec_req req; /* what to run, as sent */
	bool stdin_null;     /* do not read local stdin (-n) */
	bool detach;	     /* print the pid and return */
	pl_fd in_fd, out_fd, err_fd;
	const char *prefix; /* non-NULL: prefix each output line with "prefix: " */
};

struct exec_cli;

/* Opens the EXEC stream on s; the program's life is driven by loop l. */
int exec_cli_start(struct exec_cli **out, struct loop *l, struct session *s,
		   const struct exec_cli_opts *o);
bool exec_cli_done(const struct exec_cli *x);
/*
 * The status to exit with: the program's, 128+N for signal N, 124 for the
 * timeout, 127/126 when it could not start, 255 when vmbusexec failed; *why
 * is the one-line reason when vmbusexec failed, else NULL.
 */
int exec_cli_status(const struct exec_cli *x, const char **why);
int exec_cli_signal(struct exec_cli *x, int signo);
int exec_cli_resize(struct exec_cli *x, uint16_t rows, uint16_t cols);
/* Ends the program (the agent kills it) and fails with 255 and why. */
void exec_cli_abort(struct exec_cli *x, const char *why);
/* Cancels local I/O; returns true once x is freed (run the loop and call again until then). */
bool exec_cli_free(struct exec_cli *x);

#endif
