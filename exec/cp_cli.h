/* vmbusify cp, host side: one FILE stream driving the shared sender (PUT) or receiver (GET). */
#ifndef VB_EXEC_CP_CLI_H
#define VB_EXEC_CP_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/session.h"
#include "exec/cp_msg.h"
#include "platform/loop.h"

/* What a copy ends with (the CLI's exit codes: cmd/cli.h). */
enum cp_cli_status {
	CP_CLI_OK = 0,
	CP_CLI_FAILED = 1, /* some entries failed (each said so), or the agent refused the copy */
	CP_CLI_LOST = 5,   /* the connection was lost midway */
};

struct cp_cli_opts {
	uint8_t dir;	/* CP_PUT (host -> VM) or CP_GET (VM -> host) */
	uint32_t flags; /* CP_F_RECURSIVE, CP_F_PRESERVE; the rest follows from the paths */
	const char *const *srcs; /* local (PUT) or in the VM (GET) */
	int nsrc;
	const char *dst; /* in the VM (PUT) or local (GET); NULL (GET): standard output */
	bool src_stdin;	 /* PUT: the single source is standard input */
	bool total;	 /* walk the sources first: the total is known (progress) */
	const char *vm;	 /* the VM as the user named it, for messages */
	/* One failed entry: vm is NULL for a local path. */
	void (*report)(void *arg, const char *vm, const char *path, const char *text);
	void *arg;
};

struct cp_cli;

/*
 * Opens the FILE stream on s and starts copying on loop l. For GET the
 * local target is checked first. Returns 0, or a negative errno with why.
 */
int cp_cli_start(struct cp_cli **out, struct loop *l, struct session *s,
		 const struct cp_cli_opts *o, char *why, size_t whylen);
bool cp_cli_done(const struct cp_cli *x);
/* A cp_cli_status; *why is a line about the whole copy when it failed as a whole, else NULL. */
int cp_cli_status(const struct cp_cli *x, const char **why);
/* Data bytes moved so far and the total (0 while unknown). */
void cp_cli_progress(const struct cp_cli *x, uint64_t *done, uint64_t *total);
/* Stops the copy (an interrupt): unfinished files are removed on both sides. */
void cp_cli_abort(struct cp_cli *x);
/* Frees x; call from the loop's caller, not from a callback. Accepts NULL. */
void cp_cli_free(struct cp_cli *x);

/*
 * Splits a command-line path: "VM:PATH" (split at the first ':' when no '/'
 * comes before it; VM is a name or a CID), "[URI]:PATH", or "URI:/PATH" (a
 * URI with "://", split at the first ":/" after it). Returns 1 with the VM
 * (vmlen bytes) and *path (an empty PATH is "."), 0 for a local path ("-",
 * "./a:b", "/x"), or -EINVAL for a URI without a path.
 */
int cp_cli_split(const char *arg, char *vm, size_t vmlen, const char **path);

#endif
