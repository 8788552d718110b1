/* The protocol's error codes, carried in REFUSE, RESET and GOAWAY, and their errno mapping. */
#ifndef VB_CORE_ERR_H
#define VB_CORE_ERR_H

#include <stdint.h>

/*
 * Wire codes are fixed by docs/protocol.md and independent of any OS's errno
 * numbering; err_to_wire() and err_from_wire() translate at the session edge.
 */
enum vb_wire_err {
	VB_WERR_NONE = 0,
	VB_WERR_PROTOCOL = 1,	 /* malformed frame or state violation */
	VB_WERR_INTERNAL = 2,	 /* a bug or resource failure on the sender */
	VB_WERR_VERSION = 3,	 /* no common protocol version */
	VB_WERR_UNSUPPORTED = 4, /* unknown stream kind or request */
	VB_WERR_DENIED = 5,	 /* policy forbids it */
	VB_WERR_LIMIT = 6,	 /* too many streams, too much data, too fast */
	VB_WERR_REFUSED = 7,	 /* connection refused */
	VB_WERR_HOSTUNREACH = 8,
	VB_WERR_NETUNREACH = 9,
	VB_WERR_TIMEDOUT = 10,
	VB_WERR_NAME = 11,	 /* name did not resolve */
	VB_WERR_NOENT = 12,	 /* no such file, program or VM */
	VB_WERR_ACCESS = 13,	 /* permission denied */
	VB_WERR_CANCELLED = 14,	 /* the opener gave up */
	VB_WERR_SHUTDOWN = 15,	 /* the peer is going away */
	VB_WERR_FLOW = 16,	 /* window exceeded */
	VB_WERR_TOOBIG = 17,	 /* frame or message larger than allowed */
	VB_WERR_IO = 18,	 /* an I/O error at the far end */
	VB_WERR_RESET = 19,	 /* the far end's connection was reset */
	VB_WERR_EXISTS = 20,
	VB_WERR_INVAL = 21,	 /* a request that makes no sense */
	VB_WERR_NOMEM = 22,
	VB_WERR_MAX
};

/* Maps a negative errno to a wire code. */
uint32_t err_to_wire(int neg_errno);
/* Maps a wire code (possibly unknown) to a negative errno. */
int err_from_wire(uint32_t code);
/* A short text for a wire code, for logs and one-line errors. */
const char *err_wire_str(uint32_t code);

#endif
