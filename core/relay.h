/* A relay splices two streams on one loop: what one receives, the other sends. */
#ifndef VB_CORE_RELAY_H
#define VB_CORE_RELAY_H

#include "core/session.h"

struct relay;

/*
 * Relays a stream the peer opened (pending, not yet answered) to a new
 * stream of the same kind, flags and request on session dst: the answer of
 * dst's peer becomes the answer to the opener, then bytes flow both ways
 * without copies, credit passing through (a slow end slows the other).
 * Returns 0, or a negative errno after refusing the pending stream.
 */
int relay_open(struct stream *pending, struct session *dst, uint16_t kind, uint16_t flags,
	       const uint8_t *req, size_t len);

#endif
