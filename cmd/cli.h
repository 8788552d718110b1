/* What the CLI's subcommands share: exit codes, errors, and the connection to a VM. */
#ifndef VB_CMD_CLI_H
#define VB_CMD_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include "core/link.h"
#include "core/runtime.h"

/* Exit codes of vmbusify (vmbusexec returns the remote status, 255 for its own failures). */
enum cli_exit {
	CLI_OK = 0,
	CLI_FAIL = 1,	  /* the operation ran and failed (lost pings, a refused stream) */
	CLI_USAGE = 2,	  /* bad arguments */
	CLI_NOTFOUND = 3, /* no such VM, no lab, no daemon */
	CLI_PRIV = 4,	  /* needs root */
	CLI_CONNECT = 5,  /* the VM or the daemon cannot be reached */
};

struct cli_conn {
	struct runtime *own; /* the runtime, unless the connection shares another's loop */
	struct rt_loop *rl;
	struct link *link;
	struct session *s;
	bool ready;
	bool closed;
	bool started; /* a link was made */
	bool freed;   /* and it is gone */
	int close_err;
	char close_reason[256];
	bool via_daemon;
	char target[256];
	void (*on_pong)(struct cli_conn *c, uint64_t rtt_ns);
	void *app;
};

struct cli_global {
	const char *control; /* --control, or $VMBUSIFY_CONTROL */
	const char *token_file;
	enum loop_backend backend;
	const char *prog; /* "vmbusify" or "vmbusexec" */
};

extern struct cli_global cli_global;

/* Prints "vmbusify: <what>: <why>" on stderr. */
void cli_error(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Connects to target: a URI (dialed directly), a vsock CID, or a VM name
 * (through the daemon's control socket; "-" is the daemon itself), and waits
 * for the session to be ready. Returns a cli_exit code; on failure the reason
 * is printed.
 */
int cli_connect(struct cli_conn *c, const char *target);
/* The same on an existing loop (several VMs at once); rl stays the caller's. */
int cli_connect_on(struct cli_conn *c, const char *target, struct rt_loop *rl);
/* Runs the loop until *done, or the session closes. Returns false if it closed first. */
bool cli_run_until(struct cli_conn *c, const bool *done);
/* The same, for at most ns nanoseconds. */
bool cli_run_until_ns(struct cli_conn *c, const bool *done, uint64_t ns);
void cli_close(struct cli_conn *c);
/* The daemon's control socket path: --control, $VMBUSIFY_CONTROL, then the known places. */
const char *cli_control_path(void);

struct strbuf;
/*
 * Sends a CONTROL command; the answer is appended to out (when not NULL) and
 * written to stdout as it arrives (when echo). Returns a cli_exit code;
 * errors are printed.
 */
int cli_control(struct cli_conn *c, const char *cmd, struct strbuf *out, bool echo);

/* Subcommands: argc/argv start at the subcommand's name. */
int cli_ping(int argc, char **argv);
int cli_ls(int argc, char **argv);
int cli_bench(int argc, char **argv);
int cli_lab(int argc, char **argv);
int cli_exec(int argc, char **argv);
int cli_cp(int argc, char **argv);
int cli_forward(int argc, char **argv);
int cli_proxy(int argc, char **argv);
int cli_vnet(int argc, char **argv);

#endif
