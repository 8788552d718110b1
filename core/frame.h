/* The frame codec: the 12-byte header and the session-level payloads (docs/protocol.md). */
#ifndef VB_CORE_FRAME_H
#define VB_CORE_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#define FRAME_HDR_LEN 12
#define FRAME_MAGIC 0x564d4246u /* "VMBF" */
#define FRAME_VERSION 1
#define FRAME_MIN_MAX_FRAME 16384u   /* every peer accepts payloads this large */
#define FRAME_MAX_MAX_FRAME 1048576u /* no peer may ask for more */
#define FRAME_HELLO_MAX 512u
#define FRAME_CTL_MAX 65536u	   /* OPEN requests, ACCEPT replies */
#define FRAME_TEXT_MAX 255u	   /* REFUSE and GOAWAY reasons */
#define FRAME_INITIAL_WINDOW 262144u /* every stream's starting credit, both ways */

enum frame_type {
	FRAME_HELLO = 0,
	FRAME_OPEN = 1,
	FRAME_ACCEPT = 2,
	FRAME_REFUSE = 3,
	FRAME_DATA = 4,
	FRAME_WINDOW = 5,
	FRAME_RESET = 6,
	FRAME_PING = 7,
	FRAME_GOAWAY = 8,
	FRAME_TYPE_COUNT
};

enum frame_flags {
	FRAME_F_FIN = 0x01, /* DATA: the sender's last bytes on this stream */
	FRAME_F_ACK = 0x02, /* PING: this is the answer (PONG) */
};

/* OPEN flags */
enum frame_open_flags {
	FRAME_OPEN_INTERACTIVE = 0x0001, /* scheduled before bulk streams */
	FRAME_OPEN_DGRAM = 0x0002,	 /* whole messages, no credit, dropped when full */
};

/* HELLO capability bits: which stream kinds a side serves. */
enum frame_caps {
	FRAME_CAP_BENCH = 1u << 0,
	FRAME_CAP_CONTROL = 1u << 1,
	FRAME_CAP_ROUTE = 1u << 2,
	FRAME_CAP_EXEC = 1u << 3,
	FRAME_CAP_FILE = 1u << 4,
	FRAME_CAP_TCP = 1u << 5,
	FRAME_CAP_VNET = 1u << 6,
};

/* HELLO roles */
enum frame_role {
	FRAME_ROLE_HOST = 0,
	FRAME_ROLE_AGENT = 1,
	FRAME_ROLE_DAEMON = 2,
	FRAME_ROLE_CLIENT = 3,
};

struct frame_hdr {
	uint8_t type;
	uint8_t flags;
	uint32_t stream;
	uint32_t len;
};

struct frame_hello {
	uint16_t min_version;
	uint16_t max_version;
	uint32_t max_frame;
	uint32_t max_streams;
	uint64_t caps;
	uint8_t role;
	uint8_t name_len;
	char name[FRAME_TEXT_MAX + 1]; /* NUL-terminated copy */
};

struct frame_open {
	uint16_t kind;
	uint16_t flags;
	const uint8_t *req; /* points into the frame */
	size_t req_len;
};

/* REFUSE and GOAWAY: a code and a reason. */
struct frame_reason {
	uint32_t code;
	uint32_t last_stream; /* GOAWAY only */
	char text[FRAME_TEXT_MAX + 1];
};

void frame_hdr_encode(uint8_t out[FRAME_HDR_LEN], uint8_t type, uint8_t flags, uint32_t stream,
		      uint32_t len);
/* Decodes a header; -EPROTO for a nonzero reserved field. Type and length are checked by the caller. */
int frame_hdr_decode(const uint8_t in[FRAME_HDR_LEN], struct frame_hdr *h);
const char *frame_type_name(uint8_t type);

/* Payload encoders write into out (cap bytes) and return the payload length or -ENOSPC. */
int frame_hello_encode(uint8_t *out, size_t cap, const struct frame_hello *h);
int frame_open_encode(uint8_t *out, size_t cap, uint16_t kind, uint16_t flags, const void *req,
		      size_t req_len);
int frame_reason_encode(uint8_t *out, size_t cap, uint8_t type, uint32_t code,
			uint32_t last_stream, const char *text);

/* Payload decoders return 0 or -EPROTO; they never read past len. */
int frame_hello_decode(const uint8_t *p, size_t len, struct frame_hello *h);
int frame_open_decode(const uint8_t *p, size_t len, struct frame_open *o);
int frame_reason_decode(const uint8_t *p, size_t len, uint8_t type, struct frame_reason *r);
int frame_u32_decode(const uint8_t *p, size_t len, uint32_t *v);
int frame_u64_decode(const uint8_t *p, size_t len, uint64_t *v);

#endif
