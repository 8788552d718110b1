/* Ping answers and summaries as text or JSON. */
#include "core/ping.h"

void ping_reply_line(struct strbuf *b, const char *name, uint32_t seq, uint64_t rtt_ns)
{
	strbuf_printf(b, "reply from %s: seq=%u time=%.3f ms\n", name, seq, (double)rtt_ns / 1e6);
}

static void ping_report_json(struct strbuf *b, const char *name, uint32_t sent,
			     const struct summary *s, const struct frame_hello *peer,
			     uint16_t version, const char *error)
{
	strbuf_printf(b, "{\"vm\":");
	strbuf_json_str(b, name);
	strbuf_printf(b,
		      ",\"sent\":%u,\"received\":%zu,\"rtt_ms\":{\"min\":%.3f,\"median\":%.3f,"
		      "\"p99\":%.3f,\"max\":%.3f}",
		      sent, s->n, (double)s->min / 1e6, (double)s->median / 1e6,
		      (double)s->p99 / 1e6, (double)s->max / 1e6);
	if (peer) {
		strbuf_printf(b, ",\"peer\":{\"name\":");
		strbuf_json_str(b, peer->name);
		strbuf_printf(b, ",\"version\":%u,\"caps\":%llu,\"role\":%u}", version,
			      (unsigned long long)peer->caps, peer->role);
	}
	strbuf_printf(b, ",\"error\":");
	strbuf_json_str(b, error ? error : "");
	strbuf_printf(b, "}\n");
}

void ping_report(struct strbuf *b, const char *name, uint32_t sent, struct samples *samples,
		 const struct frame_hello *peer, uint16_t version, const char *error, bool json)
{
	struct summary s;

	samples_summary(samples, &s);
	if (json) {
		ping_report_json(b, name, sent, &s, peer, version, error);
		return;
	}
	if (error)
		strbuf_printf(b, "error: %s\n", error);
	strbuf_printf(b, "--- %s ping statistics ---\n", name);
	strbuf_printf(b, "%u sent, %zu received, rtt min/median/p99/max = %.3f/%.3f/%.3f/%.3f ms\n",
		      sent, s.n, (double)s.min / 1e6, (double)s.median / 1e6, (double)s.p99 / 1e6,
		      (double)s.max / 1e6);
	if (peer)
		strbuf_printf(b, "peer: %s, protocol version %u, capabilities 0x%llx\n", peer->name,
			      version, (unsigned long long)peer->caps);
}
