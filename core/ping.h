/* The text and JSON of a ping's answers, shared by the daemon and the CLI. */
#ifndef VB_CORE_PING_H
#define VB_CORE_PING_H

#include <stdbool.h>
#include <stdint.h>
#include "core/frame.h"
#include "core/stats.h"
#include "core/strbuf.h"

/* "reply from lab1: seq=3 time=0.052 ms" */
void ping_reply_line(struct strbuf *b, const char *name, uint32_t seq, uint64_t rtt_ns);
/*
 * The summary: sent and received counts, RTT min/median/p99/max, the peer's
 * name, version and capabilities when peer is not NULL, and error if any.
 * Sorts samples.
 */
void ping_report(struct strbuf *b, const char *name, uint32_t sent, struct samples *samples,
		 const struct frame_hello *peer, uint16_t version, const char *error, bool json);

#endif
