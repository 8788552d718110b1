/* The EXEC stream kind: its request, its reply, and the records it carries (docs/protocol.md). */
#ifndef VB_EXEC_MSG_H
#define VB_EXEC_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Request (OPEN payload), big-endian:
 *   flags u32, rows u16, cols u16, timeout_ms u32,
 *   user str, cwd str, term str,
 *   argc u16, argv str * argc, envc u16, env str * envc
 * where str is len u16 then bytes (no NUL). argc >= 1. At most 64 KiB in all.
 * Reply (ACCEPT payload): pid u32.
 *
 * Records, host -> agent: STDIN (data), STDIN_EOF (empty), SIGNAL (signo u8),
 * RESIZE (rows u16, cols u16). Agent -> host: STDOUT, STDERR (data), EXIT
 * (kind u8: 0 exited, 1 killed by a signal, 2 killed by the timeout;
 * code u8: status or signal number; core u8). The agent sends EXIT after the
 * last output, then FIN. Signal numbers are Linux's.
 */

enum exec_flags {
	EXEC_F_TTY = 1u << 0,	     /* a pseudo-terminal */
	EXEC_F_STDIN_NULL = 1u << 1, /* no stdin (-n) */
	EXEC_F_DETACH = 1u << 2,     /* start, answer the pid, and let it run */
};

enum exec_rec {
	EXEC_REC_STDIN = 0x01,
	EXEC_REC_STDOUT = 0x02,
	EXEC_REC_STDERR = 0x03,
	EXEC_REC_STDIN_EOF = 0x40,
	EXEC_REC_SIGNAL = 0x41,
	EXEC_REC_RESIZE = 0x42,
	EXEC_REC_EXIT = 0x43,
};

enum exec_exit_kind { EXEC_EXITED = 0, EXEC_SIGNALED = 1, EXEC_TIMEOUT = 2 };

#define EXEC_REQ_MAX  65536u
#define EXEC_ARGS_MAX 4096u

struct exec_req {
	uint32_t flags;
	uint16_t rows, cols;
	uint32_t timeout_ms;
	const char *user, *cwd, *term; /* NULL when empty */
	uint16_t argc, envc;
	const char **argv; /* NULL-terminated */
	const char **env;  /* NULL-terminated */
};

/* Encodes r into out; returns the length or -E2BIG. */
int exec_req_encode(const struct exec_req *r, uint8_t *out, size_t cap);
/*
 * Decodes a request from a peer. The strings are copied into one allocation
 * that *mem owns (free it after use); r's pointers point into it. Returns 0,
 * -EINVAL for a malformed request (with why), or -ENOMEM.
 */
int exec_req_decode(const uint8_t *p, size_t len, struct exec_req *r, void **mem, char *why,
		    size_t whylen);

struct exec_exit {
	uint8_t kind;
	uint8_t code;
	bool core;
};

void exec_exit_encode(const struct exec_exit *e, uint8_t out[3]);
int exec_exit_decode(const uint8_t *p, size_t len, struct exec_exit *e);
/* The status vmbusexec exits with: the code, 128+signal, or 124 for the timeout. */
int exec_exit_status(const struct exec_exit *e);

#endif
