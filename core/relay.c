/* Splicing two streams: payload chunks move by reference, credit follows delivery. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "core/relay.h"
#include "core/log.h"

/*
 * Theory of operation
 *
 * side[0] is the stream the peer opened, side[1] the one we opened on its
 * behalf. States: DIALING (side[1] awaits its answer) -> OPEN -> DONE.
 *
 * For each direction i -> 1-i: on_data of side i writes the same chunk bytes
 * to side 1-i; on_sent of side 1-i consumes them on side i, so side i's peer
 * gets credit only once its bytes left through the other session. A FIN from
 * side i shuts down side 1-i. A reset on either side resets the other. The
 * relay ends when both FINs went through or on a reset; both streams are
 * released then (release after shutdown lets queued bytes drain).
 */

struct relay {
	struct stream *side[2];
	bool fin[2]; /* FIN received on side i */
	bool done;
};

static int relay_index(const struct relay *r, const struct stream *st)
{
	return r->side[1] == st;
}

static void relay_end(struct relay *r)
{
	if (r->done)
		return;
	r->done = true;
	for (int i = 0; i < 2; i++)
		if (r->side[i])
			stream_release(r->side[i]);
	free(r);
}

static void relay_on_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct relay *r = stream_ctx(st);
	int i = relay_index(r, st);
	struct stream *out = r->side[1 - i];
	int ret = stream_write(out, c, p, len);

	/* Datagrams are consumed at once: they take no credit and may be dropped. */
	if (stream_flags(out) & FRAME_OPEN_DGRAM)
		stream_consumed(st, len);
	else if (ret)
		stream_reset(st, ret);
}

static void relay_on_sent(struct stream *st, size_t n)
{
	struct relay *r = stream_ctx(st);
	int i = relay_index(r, st);

	stream_consumed(r->side[1 - i], n);
}

static void relay_on_fin(struct stream *st)
{
	struct relay *r = stream_ctx(st);
	int i = relay_index(r, st);

	r->fin[i] = true;
	stream_shutdown(r->side[1 - i]);
	if (r->fin[0] && r->fin[1])
		relay_end(r);
}

static void relay_on_reset(struct stream *st, int err)
{
	struct relay *r = stream_ctx(st);
	int i = relay_index(r, st);

	if (r->side[1 - i])
		stream_reset(r->side[1 - i], err);
	relay_end(r);
}

static void relay_on_reply(struct stream *st, int err, const uint8_t *reply, size_t len);

static const struct stream_ops relay_ops = {
    .on_reply = relay_on_reply,
    .on_data = relay_on_data,
    .on_fin = relay_on_fin,
    .on_reset = relay_on_reset,
    .on_sent = relay_on_sent,
};

/* The far side answered: pass the answer back to the opener. */
static void relay_on_reply(struct stream *st, int err, const uint8_t *reply, size_t len)
{
	struct relay *r = stream_ctx(st);
	char text[FRAME_TEXT_MAX + 1];

	if (!err && !stream_accept(r->side[0], reply, len, &relay_ops, r))
		return;
	snprintf(text, sizeof(text), "%.*s", (int)(len < FRAME_TEXT_MAX ? len : FRAME_TEXT_MAX),
		 (const char *)reply);
	stream_refuse(r->side[0], err ? err : -EIO, err ? text : "cannot accept");
	r->side[0] = NULL;
	relay_end(r);
}

int relay_open(struct stream *pending, struct session *dst, uint16_t kind, uint16_t flags,
	       const uint8_t *req, size_t len)
{
	struct relay *r = calloc(1, sizeof(*r));
	int ret = -ENOMEM;

	if (!r)
		goto fail;
	r->side[0] = pending;
	ret = stream_open(dst, kind, flags, req, len, &relay_ops, r, &r->side[1]);
	if (ret)
		goto fail;
	return 0;
fail:
	free(r);
	stream_refuse(pending, ret,
		      ret == -EPIPE ? "the VM's session is closing"
				    : "cannot open a stream to the VM");
	return ret;
}
