/* The record layer: headers on the way out, a streaming parser on the way in. */
#include <errno.h>
#include <string.h>
#include "core/rec.h"
#include "core/wire.h"

static void rec_hdr(uint8_t out[REC_HDR_LEN], uint8_t type, uint32_t len)
{
	out[0] = type;
	out[1] = (uint8_t)(len >> 16);
	out[2] = (uint8_t)(len >> 8);
	out[3] = (uint8_t)len;
}

int rec_write(struct stream *st, uint8_t type, struct chunk *c, const uint8_t *p, size_t len)
{
	uint8_t hdr[REC_HDR_LEN];
	int ret;

	if (len > REC_MAX_LEN)
		return -EMSGSIZE;
	rec_hdr(hdr, type, (uint32_t)len);
	ret = stream_write_copy(st, hdr, sizeof(hdr));
	if (!ret && len)
		ret = stream_write(st, c, p, len);
	return ret;
}

int rec_write_copy(struct stream *st, uint8_t type, const void *p, size_t len)
{
	uint8_t buf[REC_HDR_LEN + 256];

	if (len > REC_MAX_LEN)
		return -EMSGSIZE;
	if (len <= sizeof(buf) - REC_HDR_LEN) {
		/* Header and payload in one piece: one segment, one frame. */
		rec_hdr(buf, type, (uint32_t)len);
		if (len)
			memcpy(buf + REC_HDR_LEN, p, len);
		return stream_write_copy(st, buf, REC_HDR_LEN + len);
	}
	rec_hdr(buf, type, (uint32_t)len);
	if (stream_write_copy(st, buf, REC_HDR_LEN))
		return -ENOMEM;
	return stream_write_copy(st, p, len);
}

void rec_rd_init(struct rec_rd *r)
{
	memset(r, 0, sizeof(*r));
}

bool rec_rd_idle(const struct rec_rd *r)
{
	return !r->in_record && !r->hdr_have;
}

/* Takes header bytes; returns how many were used. */
static size_t rec_rd_header(struct rec_rd *r, const uint8_t *p, size_t len)
{
	size_t n = REC_HDR_LEN - r->hdr_have;

	if (n > len)
		n = len;
	memcpy(r->hdr + r->hdr_have, p, n);
	r->hdr_have += n;
	if (r->hdr_have < REC_HDR_LEN)
		return n;
	r->type = r->hdr[0];
	r->left = ((uint32_t)r->hdr[1] << 16) | ((uint32_t)r->hdr[2] << 8) | r->hdr[3];
	r->hdr_have = 0;
	r->in_record = true;
	r->first = true;
	r->ctl_have = 0;
	if (r->type >= REC_CONTROL_MIN && r->left > REC_CONTROL_MAX)
		r->err = -EPROTO;
	return n;
}

/* Takes payload bytes of the current record; returns how many, or sets r->err. */
static size_t rec_rd_payload(struct rec_rd *r, struct chunk *c, const uint8_t *p, size_t len,
			     rec_fn fn, void *arg)
{
	size_t n = r->left < len ? r->left : len;

	r->left -= (uint32_t)n;
	if (r->type >= REC_CONTROL_MIN) {
		memcpy(r->ctl + r->ctl_have, p, n);
		r->ctl_have += n;
		if (!r->left) {
			r->in_record = false;
			r->err = fn(arg, r->type, NULL, r->ctl, r->ctl_have, true, true);
		}
		return n;
	}
	if (n || !r->left) {
		bool first = r->first;

		r->first = false;
		r->in_record = r->left > 0;
		r->err = fn(arg, r->type, c, p, n, first, !r->left);
	}
	return n;
}

int rec_rd_feed(struct rec_rd *r, struct chunk *c, const uint8_t *p, size_t len, rec_fn fn,
		void *arg)
{
	size_t off = 0;

	while (!r->err && (off < len || (r->in_record && !r->left))) {
		if (!r->in_record)
			off += rec_rd_header(r, p + off, len - off);
		else
			off += rec_rd_payload(r, c, p + off, len - off, fn, arg);
	}
	return r->err;
}
