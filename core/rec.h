/* Typed records inside one stream: data forwarded by reference in pieces, control records whole. */
#ifndef VB_CORE_REC_H
#define VB_CORE_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "core/session.h"

/*
 * A record is a 4-byte header, type u8 and length u24 (big-endian), then the
 * payload. Types below REC_CONTROL_MIN are data: their payload may be any
 * length up to 16 MiB and reaches the reader in pieces, as DATA frames cut
 * it, each piece still inside its receive chunk. Types from REC_CONTROL_MIN
 * up are control records of at most REC_CONTROL_MAX bytes, gathered and
 * delivered whole.
 */
#define REC_HDR_LEN	4
#define REC_MAX_LEN	0xffffffu
#define REC_CONTROL_MIN 0x40
#define REC_CONTROL_MAX 1024u

/* Queues a data record whose payload stays in chunk c (a reference is taken). */
int rec_write(struct stream *st, uint8_t type, struct chunk *c, const uint8_t *p, size_t len);
/* Queues a record with a copy of its payload (control records, small data). */
int rec_write_copy(struct stream *st, uint8_t type, const void *p, size_t len);

/*
 * A piece of a data record (first/last tell where it sits in the record; an
 * empty record is one piece with n == 0), or a whole control record. Return
 * 0, or a negative errno to stop the reader (it stays failed).
 */
typedef int (*rec_fn)(void *arg, uint8_t type, struct chunk *c, const uint8_t *p, size_t n,
		      bool first, bool last);

struct rec_rd {
	uint8_t hdr[REC_HDR_LEN];
	size_t hdr_have;
	uint8_t type;
	uint32_t left; /* payload bytes of the current record still to come */
	bool in_record;
	bool first;
	size_t ctl_have;
	uint8_t ctl[REC_CONTROL_MAX];
	int err;
};

void rec_rd_init(struct rec_rd *r);
/*
 * Parses len bytes at p (inside chunk c), calling fn for each piece or
 * control record. Returns 0, -EPROTO for a control record over its limit,
 * or fn's error.
 */
int rec_rd_feed(struct rec_rd *r, struct chunk *c, const uint8_t *p, size_t len, rec_fn fn,
		void *arg);
/* True between records: a stream may end here without losing data. */
bool rec_rd_idle(const struct rec_rd *r);

#endif
