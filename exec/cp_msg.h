/* The FILE stream kind (vmbusify cp): its request and the records it carries (docs/protocol.md). */
#ifndef VB_EXEC_CP_MSG_H
#define VB_EXEC_CP_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/rec.h"

/*
 * Request (OPEN payload), big-endian: dir u8 (CP_PUT, CP_GET), flags u32,
 * count u16, then count paths as str (u16 length, bytes, no NUL). PUT names
 * one destination on the agent, GET one or more sources there.
 * Reply (ACCEPT payload): empty.
 *
 * Records (core/rec.h), sender -> receiver: TOTAL (optional, first), then per
 * entry ENTRY, for a regular file its bytes as DATA records and END, then
 * RESULT for entries the sender could not send, DONE and FIN. Receiver ->
 * sender (PUT only): RESULT for entries it could not write, DONE, FIN.
 */

enum cp_dir {
	CP_PUT = 0, /* the host sends, the agent writes */
	CP_GET = 1, /* the agent sends, the host writes */
};

enum cp_flags {
	CP_F_RECURSIVE = 1u << 0, /* directories are copied (-r) */
	CP_F_PRESERVE = 1u << 1,  /* times (and setuid, setgid, sticky on the agent) (-p) */
	CP_F_INTO = 1u << 2,	  /* several sources: the destination must be a directory */
	CP_F_TARGET = 1u << 3,	  /* the destination names the target itself (stdin) */
	CP_F_TOTAL = 1u << 4,	  /* GET: walk the sources first and send TOTAL */
};
#define CP_F_ALL 0x1fu

enum cp_rec {
	CP_REC_DATA = 0x01,   /* data: bytes of the current file */
	CP_REC_ENTRY = 0x40,  /* control: a file, directory or symbolic link */
	CP_REC_END = 0x41,    /* control: the current file is complete (or failed) */
	CP_REC_TOTAL = 0x42,  /* control: what the sender is about to send */
	CP_REC_RESULT = 0x43, /* control: one entry failed on the side that sends this */
	CP_REC_DONE = 0x44,   /* control: the side's summary; nothing but FIN follows */
};

enum cp_type { CP_T_FILE = 1, CP_T_DIR = 2, CP_T_LINK = 3 };

enum cp_entry_flags {
	CP_E_TOP = 0x01, /* a source's root: path is its name, one component, or "." */
};

#define CP_REQ_MAX	 (16384u - 4u) /* fits any peer's OPEN: FRAME_MIN_MAX_FRAME less kind, flags */
#define CP_REQ_PATHS_MAX 1024u	       /* sources in one GET */
#define CP_PATH_MAX	 4095u	       /* a path in a request, or composed on the receiving side */
#define CP_ENTRY_FIXED	 34u	       /* ENTRY bytes besides path and target */
#define CP_NAME_MAX	 (REC_CONTROL_MAX - CP_ENTRY_FIXED) /* path + target of one ENTRY */
#define CP_SIZE_UNKNOWN	 UINT64_MAX			    /* ENTRY size of a stream (stdin) */
#define CP_HASH_LEN	 16u				    /* XXH3-128, canonical (big-endian) */
#define CP_END_LEN	 (4u + 8u + CP_HASH_LEN)
#define CP_TOTAL_LEN	 16u
#define CP_DONE_LEN	 24u
#define CP_TEXT_MAX	 255u

struct cp_req {
	uint8_t dir;
	uint32_t flags;
	uint16_t count;
	const char **paths; /* count strings, NULL-terminated */
};

/* Encodes q into out (cap bytes); returns the length, or -E2BIG. */
int cp_req_encode(const struct cp_req *q, uint8_t *out, size_t cap);
/*
 * Decodes a request. The strings are copied into one allocation that *mem
 * owns (free it after use); q's pointers point into it. Returns 0, -EINVAL
 * for a malformed request (with why), or -ENOMEM.
 */
int cp_req_decode(const uint8_t *p, size_t len, struct cp_req *q, void **mem, char *why,
		  size_t whylen);

/*
 * ENTRY: type u8, flags u8, mode u32 (permission bits, <= 07777), size u64
 * (regular files; CP_SIZE_UNKNOWN for a stream; 0 otherwise), mtime_ns u64,
 * atime_ns u64 (signed nanoseconds since the epoch), path str, target str
 * (symbolic links only; empty otherwise).
 */
struct cp_entry {
	uint8_t type;
	uint8_t flags;
	uint32_t mode;
	uint64_t size;
	int64_t mtime_ns, atime_ns;
	uint16_t path_len, target_len;
	char path[CP_NAME_MAX + 1];   /* NUL-terminated */
	char target[CP_NAME_MAX + 1]; /* NUL-terminated */
};

/* Encodes e (its path and target as C strings); returns the length, or -ENAMETOOLONG. */
int cp_entry_encode(const struct cp_entry *e, uint8_t *out, size_t cap);
/* Decodes and checks an ENTRY from a peer; returns 0 or -EPROTO. */
int cp_entry_decode(const uint8_t *p, size_t len, struct cp_entry *e);
/*
 * Checks a path from a peer: relative, no empty, "." or ".." component, no
 * NUL, at most CP_NAME_MAX bytes. A top path is one component (or "." when
 * dot_ok). Returns 0 or -EINVAL.
 */
int cp_path_check(const char *p, size_t n, bool top, bool dot_ok);
/*
 * The name a source is sent under: its last component (trailing slashes
 * dropped), or "." for a source that names a directory's contents ("/",
 * ".", "..", "dir/."). Returns 0, or -ENAMETOOLONG.
 */
int cp_top_name(const char *src, char *out, size_t cap);

/* END: code u32 (a wire error code, 0 when the file was read whole), bytes u64, hash. */
struct cp_end {
	uint32_t code;
	uint64_t bytes;
	uint8_t hash[CP_HASH_LEN];
};

void cp_end_encode(const struct cp_end *e, uint8_t out[CP_END_LEN]);
int cp_end_decode(const uint8_t *p, size_t len, struct cp_end *e);

/* TOTAL: bytes u64 (regular files), entries u64. */
struct cp_total {
	uint64_t bytes;
	uint64_t entries;
};

void cp_total_encode(const struct cp_total *t, uint8_t out[CP_TOTAL_LEN]);
int cp_total_decode(const uint8_t *p, size_t len, struct cp_total *t);

/*
 * RESULT: code u32 (a wire error code, not 0), path str (as the failing side
 * names it), text (u8 length, printable ASCII: what went wrong).
 */
struct cp_result {
	uint32_t code;
	char path[REC_CONTROL_MAX]; /* NUL-terminated, unprintable bytes shown as '?' */
	char text[CP_TEXT_MAX + 1];
};

/* Encodes a RESULT, shortening path to fit; returns the length (never fails with cap >= 1024). */
int cp_result_encode(uint32_t code, const char *path, const char *text, uint8_t *out, size_t cap);
int cp_result_decode(const uint8_t *p, size_t len, struct cp_result *r);

/* DONE: entries u64 (written, or sent), failed u64, bytes u64. */
struct cp_done {
	uint64_t entries;
	uint64_t failed;
	uint64_t bytes;
};

void cp_done_encode(const struct cp_done *d, uint8_t out[CP_DONE_LEN]);
int cp_done_decode(const uint8_t *p, size_t len, struct cp_done *d);

/* Writes a record header (type, u24 length) at out. */
void cp_rec_hdr(uint8_t out[REC_HDR_LEN], uint8_t type, uint32_t len);

#endif
