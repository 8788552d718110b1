/* The frame codec: byte layouts of docs/protocol.md, nothing about state. */
#include <errno.h>
#include <string.h>
#include "core/frame.h"
#include "core/wire.h"

static const char *const frame_names[FRAME_TYPE_COUNT] = {
	"HELLO", "OPEN", "ACCEPT", "REFUSE", "DATA", "WINDOW", "RESET", "PING", "GOAWAY",
};

const char *frame_type_name(uint8_t type)
{
	return type < FRAME_TYPE_COUNT ? frame_names[type] : "unknown";
}

/* Header: type u8, flags u8, reserved u16 (zero), stream u32, length u32; big-endian. */
void frame_hdr_encode(uint8_t out[FRAME_HDR_LEN], uint8_t type, uint8_t flags, uint32_t stream,
		      uint32_t len)
{
	out[0] = type;
	out[1] = flags;
	out[2] = 0;
	out[3] = 0;
	wire_put_u32(out + 4, stream);
	wire_put_u32(out + 8, len);
}

int frame_hdr_decode(const uint8_t in[FRAME_HDR_LEN], struct frame_hdr *h)
{
	h->type = in[0];
	h->flags = in[1];
	h->stream = wire_get_u32(in + 4);
	h->len = wire_get_u32(in + 8);
	return (in[2] | in[3]) ? -EPROTO : 0;
}

/*
 * HELLO: magic u32, min_version u16, max_version u16, max_frame u32,
 * max_streams u32, caps u64, role u8, name_len u8, name.
 */
int frame_hello_encode(uint8_t *out, size_t cap, const struct frame_hello *h)
{
	struct wire_wr w;
	size_t nlen = strnlen(h->name, FRAME_TEXT_MAX);

	wire_wr_init(&w, out, cap);
	wire_wr_u32(&w, FRAME_MAGIC);
	wire_wr_u16(&w, h->min_version);
	wire_wr_u16(&w, h->max_version);
	wire_wr_u32(&w, h->max_frame);
	wire_wr_u32(&w, h->max_streams);
	wire_wr_u64(&w, h->caps);
	wire_wr_u8(&w, h->role);
	wire_wr_u8(&w, (uint8_t)nlen);
	wire_wr_mem(&w, h->name, nlen);
	return w.err ? -ENOSPC : (int)w.off;
}

/* Copies a length-prefixed text, replacing bytes that are not printable ASCII. */
static void frame_text_copy(char *dst, const uint8_t *src, size_t n)
{
	for (size_t i = 0; i < n; i++)
		dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? (char)src[i] : '?';
	dst[n] = '\0';
}

int frame_hello_decode(const uint8_t *p, size_t len, struct frame_hello *h)
{
	struct wire_rd r;
	const uint8_t *name;

	wire_rd_init(&r, p, len);
	if (wire_rd_u32(&r) != FRAME_MAGIC)
		return -EPROTO;
	h->min_version = wire_rd_u16(&r);
	h->max_version = wire_rd_u16(&r);
	h->max_frame = wire_rd_u32(&r);
	h->max_streams = wire_rd_u32(&r);
	h->caps = wire_rd_u64(&r);
	h->role = wire_rd_u8(&r);
	h->name_len = wire_rd_u8(&r);
	name = wire_rd_bytes(&r, h->name_len);
	if (r.err || !name)
		return -EPROTO;
	frame_text_copy(h->name, name, h->name_len);
	/* Trailing bytes are allowed: later versions may append fields. */
	return 0;
}

/* OPEN: kind u16, flags u16, then the kind's request. */
int frame_open_encode(uint8_t *out, size_t cap, uint16_t kind, uint16_t flags, const void *req,
		      size_t req_len)
{
	struct wire_wr w;

	wire_wr_init(&w, out, cap);
	wire_wr_u16(&w, kind);
	wire_wr_u16(&w, flags);
	wire_wr_mem(&w, req, req_len);
	return w.err ? -ENOSPC : (int)w.off;
}

int frame_open_decode(const uint8_t *p, size_t len, struct frame_open *o)
{
	struct wire_rd r;

	wire_rd_init(&r, p, len);
	o->kind = wire_rd_u16(&r);
	o->flags = wire_rd_u16(&r);
	if (r.err)
		return -EPROTO;
	o->req = p + r.off;
	o->req_len = wire_rd_left(&r);
	return 0;
}

/* REFUSE: code u32, text_len u8, text. GOAWAY: code u32, last_stream u32, text_len u8, text. */
int frame_reason_encode(uint8_t *out, size_t cap, uint8_t type, uint32_t code,
			uint32_t last_stream, const char *text)
{
	struct wire_wr w;
	size_t tlen = text ? strnlen(text, FRAME_TEXT_MAX) : 0;

	wire_wr_init(&w, out, cap);
	wire_wr_u32(&w, code);
	if (type == FRAME_GOAWAY)
		wire_wr_u32(&w, last_stream);
	wire_wr_u8(&w, (uint8_t)tlen);
	wire_wr_mem(&w, text, tlen);
	return w.err ? -ENOSPC : (int)w.off;
}

int frame_reason_decode(const uint8_t *p, size_t len, uint8_t type, struct frame_reason *rs)
{
	struct wire_rd r;
	const uint8_t *text;
	uint8_t tlen;

	wire_rd_init(&r, p, len);
	rs->code = wire_rd_u32(&r);
	rs->last_stream = type == FRAME_GOAWAY ? wire_rd_u32(&r) : 0;
	tlen = wire_rd_u8(&r);
	text = wire_rd_bytes(&r, tlen);
	if (r.err || wire_rd_left(&r))
		return -EPROTO;
	frame_text_copy(rs->text, text, tlen);
	return 0;
}

/* WINDOW and RESET carry exactly one u32. */
int frame_u32_decode(const uint8_t *p, size_t len, uint32_t *v)
{
	if (len != 4)
		return -EPROTO;
	*v = wire_get_u32(p);
	return 0;
}

/* PING carries exactly one u64. */
int frame_u64_decode(const uint8_t *p, size_t len, uint64_t *v)
{
	if (len != 8)
		return -EPROTO;
	*v = wire_get_u64(p);
	return 0;
}
