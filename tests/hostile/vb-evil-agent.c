/* vb-evil-agent: poses as a VMBusify agent and attacks the daemon that dials it (issue 8). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include "core/frame.h"
#include "core/kinds.h"
#include "core/wire.h"

/*
 * Theory of operation
 *
 * The program listens on a Unix socket as vmbusify-agent does, accepts the
 * daemon's connection and runs one scenario on it: a sequence of frames a
 * well-behaved agent would never send. Each scenario states what a correct
 * daemon answers (a GOAWAY with a given code, a REFUSE with a given code for
 * every OPEN, or simply surviving) and the program checks that answer: exit
 * 0 when the daemon reacted as it must, 1 when it did not (it accepted what
 * it must refuse, or kept a session it must end), 2 for a usage error.
 *
 * The connection is driven by evil_pump(): a poll loop that writes the
 * pending output and parses what arrives into frames, counting ACCEPTs,
 * REFUSEs by code, DATA bytes, and noting a GOAWAY; PINGs are answered so
 * that the daemon's keepalive does not end a slow scenario early. The
 * never-read scenario stops calling it on purpose.
 *
 * --tcp-source ADDR:PORT runs the other half of the test bed instead: a TCP
 * server that writes a pattern to every connection as fast as it can and
 * discards what it reads, so that the daemon has plenty to send to a guest;
 * and beside it a port that takes connections and never reads them, so that
 * what a guest sends there backs up in the daemon (--stall-port).
 */

#define EVIL_OUT_MAX	(64u << 20)
#define EVIL_IN_MAX	(4u << 20)
#define EVIL_FRAME_MAX	(65536u + 256u)
#define EVIL_ID_MAX	4096u
#define EVIL_CREDIT_IDS 8u    /* even stream ids below 2 * this count their credit */
#define EVIL_PINS	1024u /* pin-chunks: 1-byte frames, each in a receive chunk of its own */

struct evil {
	int fd;
	uint8_t *out;
	size_t out_len, out_off;
	uint8_t *in;
	size_t in_len;
	bool eof;
	bool goaway;
	uint32_t goaway_code;
	char goaway_text[FRAME_TEXT_MAX + 1];
	uint64_t accepts, refuses, refuse_by_code[32];
	uint64_t data_bytes, pings;
	uint64_t granted[EVIL_CREDIT_IDS], sent[EVIL_CREDIT_IDS]; /* by stream id / 2 */
	uint32_t accepted_ids[EVIL_ID_MAX];
	size_t naccepted;
	/* scenario parameters */
	char tcp_addr[64];
	uint16_t tcp_port;
	uint16_t stall_port;
	char host_addrs[512];
	unsigned hold_s;
	unsigned opens;
};

struct evil_scenario {
	const char *name;
	const char *what;
	int (*run)(struct evil *e);
};

static void evil_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void evil_say(const char *fmt, ...)
{
	va_list ap;

	fputs("vb-evil-agent: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static uint64_t evil_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- output ---- */

/* Appends raw bytes to the output; the caller's scenario decides what they mean. */
static void evil_raw(struct evil *e, const void *p, size_t len)
{
	if (e->out_len + len > EVIL_OUT_MAX) {
		evil_say("output buffer full (the daemon does not read?)");
		return;
	}
	memcpy(e->out + e->out_len, p, len);
	e->out_len += len;
}

static void evil_frame(struct evil *e, uint8_t type, uint8_t flags, uint32_t id, const void *p,
		       uint32_t len)
{
	uint8_t h[FRAME_HDR_LEN];

	frame_hdr_encode(h, type, flags, id, len);
	evil_raw(e, h, sizeof(h));
	if (len)
		evil_raw(e, p, len);
}

static void evil_u32(struct evil *e, uint8_t type, uint32_t id, uint32_t v)
{
	uint8_t b[4];

	wire_put_u32(b, v);
	evil_frame(e, type, 0, id, b, 4);
}

static void evil_hello_v(struct evil *e, uint16_t lo, uint16_t hi, uint32_t max_frame)
{
	struct frame_hello h = {
	    .min_version = lo,
	    .max_version = hi,
	    .max_frame = max_frame,
	    .max_streams = 1024,
	    .caps = FRAME_CAP_EXEC | FRAME_CAP_FILE | FRAME_CAP_TCP,
	    .role = FRAME_ROLE_AGENT,
	};
	uint8_t p[FRAME_HELLO_MAX];
	int n;

	snprintf(h.name, sizeof(h.name), "vb-evil-agent");
	n = frame_hello_encode(p, sizeof(p), &h);
	if (n > 0)
		evil_frame(e, FRAME_HELLO, 0, 0, p, (uint32_t)n);
}

static void evil_hello(struct evil *e)
{
	evil_hello_v(e, FRAME_VERSION, FRAME_VERSION, EVIL_FRAME_MAX);
}

static void evil_open(struct evil *e, uint32_t id, uint16_t kind, uint16_t flags, const void *req,
		      size_t len)
{
	uint8_t p[4 + 300];
	int n = frame_open_encode(p, sizeof(p), kind, flags, req, len);

	if (n > 0)
		evil_frame(e, FRAME_OPEN, 0, id, p, (uint32_t)n);
}

/* A TCP CONNECT request (docs/protocol.md, TCP) to a literal address or a name. */
static size_t evil_tcp_req(uint8_t *out, const char *host, uint16_t port)
{
	struct in_addr a4;
	struct in6_addr a6;
	size_t n = 4;

	out[0] = 1; /* CONNECT */
	wire_put_u16(out + 2, port);
	if (inet_pton(AF_INET, host, &a4) == 1) {
		out[1] = 1;
		memcpy(out + 4, &a4, 4);
		return n + 4;
	}
	if (inet_pton(AF_INET6, host, &a6) == 1) {
		out[1] = 4;
		memcpy(out + 4, &a6, 16);
		return n + 16;
	}
	out[1] = 3;
	out[4] = (uint8_t)strlen(host);
	memcpy(out + 5, host, out[4]);
	return n + 1 + out[4];
}

static void evil_open_tcp(struct evil *e, uint32_t id, const char *host, uint16_t port)
{
	uint8_t req[300];

	evil_open(e, id, KIND_TCP, 0, req, evil_tcp_req(req, host, port));
}

/* ---- input ---- */

static void evil_on_frame(struct evil *e, const struct frame_hdr *h, const uint8_t *p)
{
	struct frame_reason r;

	switch (h->type) {
	case FRAME_ACCEPT:
		e->accepts++;
		if (e->naccepted < EVIL_ID_MAX)
			e->accepted_ids[e->naccepted++] = h->stream;
		break;
	case FRAME_REFUSE:
		e->refuses++;
		if (!frame_reason_decode(p, h->len, FRAME_REFUSE, &r))
			e->refuse_by_code[r.code < 32 ? r.code : 31]++;
		break;
	case FRAME_DATA:
		e->data_bytes += h->len;
		break;
	case FRAME_WINDOW:
		if (h->len == 4 && !(h->stream & 1) && h->stream / 2 < EVIL_CREDIT_IDS)
			e->granted[h->stream / 2] += wire_get_u32(p);
		break;
	case FRAME_PING:
		if (!(h->flags & FRAME_F_ACK)) {
			e->pings++;
			evil_frame(e, FRAME_PING, FRAME_F_ACK, 0, p, h->len);
		}
		break;
	case FRAME_GOAWAY:
		e->goaway = true;
		if (!frame_reason_decode(p, h->len, FRAME_GOAWAY, &r)) {
			e->goaway_code = r.code;
			snprintf(e->goaway_text, sizeof(e->goaway_text), "%s", r.text);
		}
		break;
	}
}

/* Parses every whole frame in the input buffer; returns -EPROTO for bytes that are no frame. */
static int evil_parse(struct evil *e)
{
	size_t off = 0;
	int ret = 0;

	while (e->in_len - off >= FRAME_HDR_LEN) {
		struct frame_hdr h;

		if (frame_hdr_decode(e->in + off, &h) || h.len > EVIL_IN_MAX - FRAME_HDR_LEN) {
			ret = -EPROTO;
			break;
		}
		if (e->in_len - off - FRAME_HDR_LEN < h.len)
			break;
		evil_on_frame(e, &h, e->in + off + FRAME_HDR_LEN);
		off += FRAME_HDR_LEN + h.len;
	}
	memmove(e->in, e->in + off, e->in_len - off);
	e->in_len -= off;
	return ret;
}

/* One round of I/O: write what is pending, read what came; returns -1 at EOF or error. */
static int evil_io(struct evil *e, int timeout_ms, bool read)
{
	struct pollfd pf = {.fd = e->fd, .events = 0};
	ssize_t n;

	if (read)
		pf.events |= POLLIN;
	if (e->out_off < e->out_len)
		pf.events |= POLLOUT;
	if (poll(&pf, 1, timeout_ms) < 0)
		return errno == EINTR ? 0 : -1;
	if (pf.revents & POLLOUT) {
		n = write(e->fd, e->out + e->out_off, e->out_len - e->out_off);
		if (n < 0 && errno != EAGAIN) {
			/* The daemon is gone for writing; what it sent may still be read. */
			e->out_off = e->out_len = 0;
			n = 0;
		}
		if (n > 0)
			e->out_off += (size_t)n;
		if (e->out_off == e->out_len)
			e->out_off = e->out_len = 0;
	}
	if (pf.revents & (POLLIN | POLLHUP | POLLERR)) {
		n = recv(e->fd, e->in + e->in_len, EVIL_IN_MAX - e->in_len, 0);
		if (n <= 0 && !(n < 0 && errno == EAGAIN)) {
			e->eof = true;
			return -1;
		}
		if (n > 0) {
			e->in_len += (size_t)n;
			if (evil_parse(e))
				return -1;
		}
	}
	return 0;
}

/* Runs I/O until done(e) holds, the connection ends, or ms pass; returns done(e). */
static bool evil_pump(struct evil *e, unsigned ms, bool (*done)(const struct evil *e))
{
	uint64_t end = evil_now_ms() + ms;

	while (!(done && done(e))) {
		uint64_t now = evil_now_ms();

		if (now >= end || evil_io(e, (int)(end - now < 50 ? end - now : 50), true))
			break;
	}
	return done ? done(e) : false;
}

/* Writes everything pending (reading meanwhile), for at most ms. */
static void evil_flush(struct evil *e, unsigned ms)
{
	uint64_t end = evil_now_ms() + ms;

	while (e->out_len && evil_now_ms() < end)
		if (evil_io(e, 50, true))
			break;
}

static bool evil_got_goaway(const struct evil *e)
{
	return e->goaway || e->eof;
}

/* Waits for the daemon to end the session with a GOAWAY of code; returns 0 or 1 (it did not). */
static int evil_expect_goaway(struct evil *e, uint32_t code)
{
	evil_flush(e, 5000);
	if (!evil_pump(e, 5000, evil_got_goaway)) {
		evil_say("FAIL: the daemon kept the session after the violation");
		return 1;
	}
	if (!e->goaway) {
		evil_say("FAIL: the daemon closed the channel without a GOAWAY");
		return 1;
	}
	if (e->goaway_code != code) {
		evil_say("FAIL: GOAWAY code %u (%s), expected %u", e->goaway_code, e->goaway_text,
			 code);
		return 1;
	}
	evil_say("ok: GOAWAY %u: %s", e->goaway_code, e->goaway_text);
	return 0;
}

/* ---- scenarios: malformed frames ---- */

static int evil_sc_version(struct evil *e)
{
	evil_hello_v(e, 99, 99, EVIL_FRAME_MAX);
	return evil_expect_goaway(e, 3 /* VERSION */);
}

static int evil_sc_bad_magic(struct evil *e)
{
	uint8_t p[64];
	struct frame_hello h = {.min_version = 1, .max_version = 1, .max_frame = 65536};
	int n = frame_hello_encode(p, sizeof(p), &h);

	p[0] ^= 0xff;
	evil_frame(e, FRAME_HELLO, 0, 0, p, (uint32_t)n);
	return evil_expect_goaway(e, 1 /* PROTOCOL */);
}

static int evil_sc_reserved(struct evil *e)
{
	uint8_t h[FRAME_HDR_LEN];

	evil_hello(e);
	frame_hdr_encode(h, FRAME_PING, 0, 0, 8);
	h[2] = 0xde;
	h[3] = 0xad;
	evil_raw(e, h, sizeof(h));
	evil_raw(e, "12345678", 8);
	return evil_expect_goaway(e, 1);
}

static int evil_sc_unknown_type(struct evil *e)
{
	evil_hello(e);
	evil_frame(e, 0x42, 0, 0, "x", 1);
	return evil_expect_goaway(e, 1);
}

static int evil_sc_bad_window(struct evil *e)
{
	evil_hello(e);
	evil_frame(e, FRAME_WINDOW, 0, 0, "\0\1\0", 3);
	return evil_expect_goaway(e, 1);
}

/* A header that announces 0xfffffff0 bytes: the daemon must not wait to buffer 4 GiB. */
static int evil_sc_huge_length(struct evil *e)
{
	uint8_t h[FRAME_HDR_LEN];

	evil_hello(e);
	frame_hdr_encode(h, FRAME_DATA, 0, 2, 0xfffffff0u);
	evil_raw(e, h, sizeof(h));
	evil_raw(e, "only a few bytes follow", 23);
	return evil_expect_goaway(e, 17 /* TOOBIG */);
}

static int evil_sc_huge_hello(struct evil *e)
{
	uint8_t h[FRAME_HDR_LEN];

	frame_hdr_encode(h, FRAME_HELLO, 0, 0, 0xffffffffu);
	evil_raw(e, h, sizeof(h));
	return evil_expect_goaway(e, 17 /* TOOBIG */);
}

/* Half a frame, then the channel closes: the daemon must drop the partial frame and reconnect. */
static int evil_sc_truncated(struct evil *e)
{
	uint8_t p[4 + 300];
	size_t n = evil_tcp_req(p + 4, "192.0.2.1", 80) + 4;
	uint8_t h[FRAME_HDR_LEN];

	evil_hello(e);
	wire_put_u16(p, KIND_TCP);
	wire_put_u16(p + 2, 0);
	frame_hdr_encode(h, FRAME_OPEN, 0, 2, (uint32_t)n);
	evil_raw(e, h, sizeof(h));
	evil_raw(e, p, n / 2);
	evil_raw(e, h, 7); /* and half of the next header */
	evil_flush(e, 2000);
	evil_pump(e, 500, NULL);
	if (e->goaway) {
		evil_say("FAIL: GOAWAY %u for a frame that was only incomplete", e->goaway_code);
		return 1;
	}
	evil_say("ok: truncated frame sent, closing");
	return 0;
}

/* ---- scenarios: stream ids ---- */

static int evil_sc_never_opened(struct evil *e)
{
	evil_hello(e);
	evil_frame(e, FRAME_DATA, 0, 0x1234, "boo", 3); /* even: the agent's parity, never opened */
	return evil_expect_goaway(e, 1);
}

static int evil_sc_ours_never_opened(struct evil *e)
{
	evil_hello(e);
	evil_u32(e, FRAME_WINDOW, 0xfffffffdu, 65536); /* the daemon's parity, far past its ids */
	return evil_expect_goaway(e, 1);
}

static int evil_sc_id_zero(struct evil *e)
{
	uint8_t req[300];

	evil_hello(e);
	evil_open(e, 0, KIND_TCP, 0, req, evil_tcp_req(req, e->tcp_addr, e->tcp_port));
	return evil_expect_goaway(e, 1);
}

static int evil_sc_id_parity(struct evil *e)
{
	evil_hello(e);
	evil_open_tcp(e, 0xffffffffu, e->tcp_addr, e->tcp_port); /* odd: the dialer's ids */
	return evil_expect_goaway(e, 1);
}

static int evil_sc_reuse_id(struct evil *e)
{
	evil_hello(e);
	evil_open_tcp(e, 4, e->tcp_addr, e->tcp_port);
	evil_open_tcp(e, 4, e->tcp_addr, e->tcp_port);
	return evil_expect_goaway(e, 1);
}

static int evil_sc_id_backwards(struct evil *e)
{
	evil_hello(e);
	evil_open_tcp(e, 0xfffffffcu, e->tcp_addr, e->tcp_port); /* the last even id */
	evil_open_tcp(e, 6, e->tcp_addr, e->tcp_port);
	return evil_expect_goaway(e, 1);
}

/* ---- scenarios: flow control ---- */

static bool evil_got_answer(const struct evil *e)
{
	return e->accepts + e->refuses > 0 || e->goaway || e->eof;
}

/* Opens a TCP stream to the test's server and waits for its ACCEPT; returns 0 or 1. */
static int evil_open_accepted(struct evil *e, uint32_t id)
{
	evil_hello(e);
	evil_open_tcp(e, id, e->tcp_addr, e->tcp_port);
	if (!evil_pump(e, 10000, evil_got_answer) || !e->accepts) {
		evil_say(
		    "SKIP-LIKE: the daemon did not accept TCP to %s:%u (refuses %llu, goaway %d)",
		    e->tcp_addr, e->tcp_port, (unsigned long long)e->refuses, e->goaway);
		return 1;
	}
	return 0;
}

/*
 * DATA beyond the credit the daemon granted: to a port that never reads, so
 * that the daemon stops returning credit once the socket's buffers are full;
 * the guest ignores the WINDOWs and keeps sending.
 */
static int evil_sc_window_violation(struct evil *e)
{
	static uint8_t blob[65536];
	uint64_t sent = 0;

	if (!e->stall_port) {
		evil_say("window-violation needs --stall-port");
		return 2;
	}
	e->tcp_port = e->stall_port;
	if (evil_open_accepted(e, 2))
		return 1;
	while (sent < (256u << 20) && !e->goaway && !e->eof) {
		evil_frame(e, FRAME_DATA, 0, 2, blob, sizeof(blob));
		sent += sizeof(blob);
		if (e->out_len >= (1u << 20))
			evil_flush(e, 5000);
	}
	evil_say("%llu bytes sent on a stream with 256 KiB of initial credit",
		 (unsigned long long)sent);
	return evil_expect_goaway(e, 16 /* FLOW */);
}

/* WINDOW increments that take the daemon's credit past 2^31 - 1. */
static int evil_sc_window_overflow(struct evil *e)
{
	if (evil_open_accepted(e, 2))
		return 1;
	/* Twice in one write: even a daemon that has spent all its credit overflows. */
	evil_u32(e, FRAME_WINDOW, 2, 0x7fffffffu);
	evil_u32(e, FRAME_WINDOW, 2, 0x7fffffffu);
	return evil_expect_goaway(e, 16);
}

/* ---- scenarios: floods and forbidden streams ---- */

static bool evil_all_answered(const struct evil *e)
{
	return e->accepts + e->refuses >= e->opens || e->goaway || e->eof;
}

/*
 * Opens e->opens TCP streams as fast as the channel takes them, to the
 * test's own server: the daemon must answer or cut the session off, and
 * never hold more than its limits.
 */
static int evil_sc_open_flood(struct evil *e)
{
	uint8_t req[300];
	size_t n = evil_tcp_req(req, e->tcp_addr, e->tcp_port);
	uint32_t id = 2;

	evil_hello(e);
	for (unsigned i = 0; i < e->opens; i++, id += 2) {
		evil_open(e, id, KIND_TCP, 0, req, n);
		if (e->out_len > (1u << 20))
			evil_flush(e, 10000);
		if (e->goaway || e->eof)
			break;
	}
	evil_flush(e, 10000);
	evil_pump(e, 20000, evil_all_answered);
	evil_say("%u opens: %llu accepted, %llu refused (%llu LIMIT), goaway %d (%u %s)",
		 (id - 2) / 2, (unsigned long long)e->accepts, (unsigned long long)e->refuses,
		 (unsigned long long)e->refuse_by_code[6], e->goaway, e->goaway_code,
		 e->goaway_text);
	if (e->accepts > 2048) {
		evil_say("FAIL: the daemon accepted %llu streams at once",
			 (unsigned long long)e->accepts);
		return 1;
	}
	if (!evil_all_answered(e)) {
		evil_say("FAIL: %llu opens never answered",
			 (unsigned long long)(e->opens - e->accepts - e->refuses));
		return 1;
	}
	return 0;
}

/*
 * The same flood from a guest that never reads the answers: the daemon's
 * REFUSEs pile up until it cuts the guest off (GOAWAY LIMIT, or a closed
 * channel when the GOAWAY cannot get through) instead of queueing without end.
 */
static int evil_sc_open_flood_deaf(struct evil *e)
{
	uint8_t req[300];
	size_t n = evil_tcp_req(req, "192.0.2.1", 9); /* TEST-NET-1: denied by the test's policy */
	uint64_t end = evil_now_ms() + 20000;
	uint32_t id = 2;
	unsigned i;

	evil_hello(e);
	for (i = 0; i < e->opens && evil_now_ms() < end; i++, id += 2) {
		evil_open(e, id, KIND_TCP, 0, req, n);
		while (e->out_len > (1u << 20) && evil_now_ms() < end)
			if (evil_io(e, 50, false))
				break;
	}
	evil_say("%u opens written without reading; now reading", i);
	evil_pump(e, 20000, evil_all_answered);
	evil_say("answers: %llu refused, %llu accepted; goaway %d (%u %s), eof %d",
		 (unsigned long long)e->refuses, (unsigned long long)e->accepts, e->goaway,
		 e->goaway_code, e->goaway_text, e->eof);
	if (e->goaway && e->goaway_code != 6) {
		evil_say("FAIL: GOAWAY %u, expected LIMIT (6)", e->goaway_code);
		return 1;
	}
	if (!e->goaway && !e->eof) {
		evil_say("FAIL: the daemon kept queueing answers for a guest that does not read");
		return 1;
	}
	evil_say("ok: cut off after %llu answers", (unsigned long long)e->refuses);
	return 0;
}

/* Every kind a guest may not open toward the host, many times each: all must be refused. */
static int evil_sc_forbidden_kinds(struct evil *e)
{
	static const uint16_t kinds[] = {KIND_EXEC,  KIND_FILE, KIND_CONTROL, KIND_BENCH,
					 KIND_ROUTE, 0,		0x7fff};
	static const char exec_req[] = "/bin/sh -c 'touch /tmp/vb-evil-was-here'";
	uint8_t bench_req[12] = {2, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0};
	size_t per = e->opens / (sizeof(kinds) / sizeof(kinds[0])) + 1;
	uint32_t id = 2;

	evil_hello(e);
	e->opens = 0;
	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
		for (size_t i = 0; i < per; i++, id += 2, e->opens++) {
			if (kinds[k] == KIND_CONTROL)
				evil_open(e, id, kinds[k], FRAME_OPEN_INTERACTIVE, "ls", 2);
			else if (kinds[k] == KIND_BENCH)
				evil_open(e, id, kinds[k], 0, bench_req, sizeof(bench_req));
			else
				evil_open(e, id, kinds[k], 0, exec_req, sizeof(exec_req) - 1);
			if (e->out_len > (1u << 20))
				evil_flush(e, 10000);
		}
	}
	evil_flush(e, 10000);
	evil_pump(e, 20000, evil_all_answered);
	evil_say("%u forbidden opens: %llu accepted, %llu refused (%llu ACCESS, %llu LIMIT), "
		 "goaway %d",
		 e->opens, (unsigned long long)e->accepts, (unsigned long long)e->refuses,
		 (unsigned long long)e->refuse_by_code[13],
		 (unsigned long long)e->refuse_by_code[6], e->goaway);
	if (e->accepts) {
		evil_say("FAIL: the daemon accepted %llu streams a guest may not open",
			 (unsigned long long)e->accepts);
		return 1;
	}
	return evil_all_answered(e) ? 0 : 1;
}

/*
 * Egress to what the policy denies: loopback (on a port no rule allows),
 * link-local, "this host", and the host's own addresses on the port of the
 * test's server, which listens there: a daemon that dialed would connect.
 */
static int evil_sc_egress_denied(struct evil *e)
{
	static const char *const local[] = {
	    "127.0.0.1", "127.0.0.2",	     "169.254.169.254",	       "0.0.0.0",
	    "::1",	 "::ffff:127.0.0.1", "::ffff:169.254.169.254", "fe80::1",
	    "localhost"};
	char list[sizeof(e->host_addrs)], *save = NULL;
	uint16_t other = e->tcp_port == 65535 ? 65534 : e->tcp_port + 1;
	uint32_t id = 2;

	evil_hello(e);
	e->opens = 0;
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		for (int rep = 0; rep < 40; rep++, id += 2, e->opens++)
			evil_open_tcp(e, id, local[i], rep & 1 ? other : 22);
	snprintf(list, sizeof(list), "%s", e->host_addrs);
	for (char *a = strtok_r(list, " ,", &save); a; a = strtok_r(NULL, " ,", &save))
		for (int rep = 0; rep < 40; rep++, id += 2, e->opens++)
			evil_open_tcp(e, id, a, rep & 1 ? e->tcp_port : 22);
	evil_flush(e, 10000);
	evil_pump(e, 20000, evil_all_answered);
	evil_say("%u denied egress opens: %llu accepted, %llu refused (%llu DENIED, %llu LIMIT)",
		 e->opens, (unsigned long long)e->accepts, (unsigned long long)e->refuses,
		 (unsigned long long)e->refuse_by_code[5],
		 (unsigned long long)e->refuse_by_code[6]);
	if (e->accepts) {
		evil_say("FAIL: the daemon dialed %llu denied destinations",
			 (unsigned long long)e->accepts);
		return 1;
	}
	return evil_all_answered(e) ? 0 : 1;
}

/*
 * Grants every stream the largest window the protocol allows, asks the
 * test's server for endless data on many streams, then never reads again:
 * the daemon's writes back up and it must stop reading its sockets rather
 * than buffer without bound.
 */
static int evil_sc_never_read(struct evil *e)
{
	uint32_t id = 2;

	evil_hello_v(e, FRAME_VERSION, FRAME_VERSION, FRAME_MAX_MAX_FRAME);
	for (unsigned i = 0; i < e->opens; i++, id += 2)
		evil_open_tcp(e, id, e->tcp_addr, e->tcp_port);
	evil_flush(e, 5000);
	evil_pump(e, 5000, evil_all_answered);
	for (size_t i = 0; i < e->naccepted; i++)
		evil_u32(e, FRAME_WINDOW, e->accepted_ids[i], 0x7fffffffu - FRAME_INITIAL_WINDOW);
	evil_flush(e, 5000);
	evil_say("%zu streams with 2 GiB of credit each; %llu bytes read; now reading nothing "
		 "for %u s",
		 e->naccepted, (unsigned long long)e->data_bytes, e->hold_s);
	/* Keep the session alive without reading: a PING now and then is input for the daemon. */
	for (unsigned s = 0; s < e->hold_s; s++) {
		uint8_t stamp[8] = {0};

		sleep(1);
		if (e->out_len)
			continue;
		evil_frame(e, FRAME_PING, 0, 0, stamp, 8);
		if (write(e->fd, e->out, e->out_len) == (ssize_t)e->out_len)
			e->out_len = 0;
	}
	if (!e->naccepted) {
		evil_say("FAIL: the daemon accepted none of the download streams");
		return 1;
	}
	evil_say("ok: held %zu streams without reading for %u s", e->naccepted, e->hold_s);
	return 0;
}

/* Credit the daemon left us on stream id (even, below 2 * EVIL_CREDIT_IDS). */
static uint64_t evil_credit(const struct evil *e, uint32_t id)
{
	return FRAME_INITIAL_WINDOW + e->granted[id / 2] - e->sent[id / 2];
}

/* Queues one DATA frame of up to len bytes on id within its credit; returns its length. */
static uint32_t evil_data(struct evil *e, uint32_t id, uint32_t len)
{
	static uint8_t blob[65536];
	uint64_t credit = evil_credit(e, id);

	if (len > credit)
		len = (uint32_t)credit;
	if (len > sizeof(blob))
		len = sizeof(blob);
	if (len) {
		evil_frame(e, FRAME_DATA, 0, id, blob, len);
		e->sent[id / 2] += len;
	}
	return len;
}

static bool evil_two_answered(const struct evil *e)
{
	return e->accepts + e->refuses >= 2 || e->goaway || e->eof;
}

/* Fills stream 2's destination until the daemon grants no more for 2 s, keeping back EVIL_PINS. */
static void evil_fill_stalled(struct evil *e)
{
	uint64_t quiet_since = evil_now_ms(), granted = e->granted[1];

	while (evil_now_ms() - quiet_since < 2000 && !e->goaway && !e->eof) {
		uint64_t credit = evil_credit(e, 2);

		if (credit > EVIL_PINS)
			evil_data(
			    e, 2,
			    (uint32_t)(credit - EVIL_PINS < 65536 ? credit - EVIL_PINS : 65536));
		if (evil_io(e, 50, true))
			break;
		if (e->granted[1] != granted) {
			granted = e->granted[1];
			quiet_since = evil_now_ms();
		}
	}
}

/* Sends 256 KiB on stream 4 within its credit, waiting for more as needed; false when stuck. */
static bool evil_filler(struct evil *e)
{
	for (uint32_t sent = 0; sent < (256u << 10);) {
		uint32_t n = evil_data(e, 4, 65536);
		uint64_t end = evil_now_ms() + 10000;

		sent += n;
		while (!n && !evil_credit(e, 4) && evil_now_ms() < end && !evil_io(e, 50, true))
			;
		if (!n && !evil_credit(e, 4))
			return false;
		if (e->out_len >= (1u << 20))
			evil_flush(e, 5000);
	}
	return true;
}

/*
 * One byte at a time on a stream whose destination never reads, each byte
 * in a receive chunk of its own: between two of them, 256 KiB of DATA on a
 * stream to a server that reads (and discards) it moves the daemon's
 * reading on to a fresh chunk. A daemon that kept each byte inside the
 * chunk it came in would pin 256 KiB per byte (256 MiB in all); its memory
 * must stay within the per-VM budget, and the session must go on.
 */
static int evil_sc_pin_chunks(struct evil *e)
{
	unsigned pins = 0;

	if (!e->stall_port) {
		evil_say("pin-chunks needs --stall-port");
		return 2;
	}
	evil_hello(e);
	evil_open_tcp(e, 2, e->tcp_addr, e->stall_port);
	evil_open_tcp(e, 4, e->tcp_addr, e->tcp_port);
	if (!evil_pump(e, 10000, evil_two_answered) || e->accepts < 2) {
		evil_say("FAIL: the daemon did not accept TCP to %s ports %u and %u", e->tcp_addr,
			 e->stall_port, e->tcp_port);
		return 1;
	}
	evil_fill_stalled(e);
	evil_say("the destination that never reads took %llu bytes; %llu bytes of credit left",
		 (unsigned long long)e->sent[1], (unsigned long long)evil_credit(e, 2));
	for (; pins < EVIL_PINS && !e->goaway && !e->eof; pins++) {
		if (!evil_data(e, 2, 1) || !evil_filler(e))
			break;
	}
	evil_flush(e, 5000);
	evil_say("%u frames of 1 byte, each followed by 256 KiB to a reader; holding %u s", pins,
		 e->hold_s);
	evil_pump(e, e->hold_s * 1000, evil_got_goaway);
	if (e->goaway || e->eof) {
		evil_say("FAIL: the daemon ended the session: %s", e->goaway_text);
		return 1;
	}
	if (pins < EVIL_PINS) {
		evil_say("FAIL: only %u of %u 1-byte frames went out (credit ran out)", pins,
			 EVIL_PINS);
		return 1;
	}
	evil_say("ok: the session lived through %u pinning frames", pins);
	return 0;
}

static const struct evil_scenario evil_scenarios[] = {
    {"version", "HELLO with version 99 only", evil_sc_version},
    {"bad-magic", "HELLO with a wrong magic", evil_sc_bad_magic},
    {"huge-hello", "a first header claiming a 4 GiB HELLO", evil_sc_huge_hello},
    {"reserved", "a header with nonzero reserved bits", evil_sc_reserved},
    {"unknown-type", "frame type 0x42", evil_sc_unknown_type},
    {"bad-window", "a 3-byte WINDOW", evil_sc_bad_window},
    {"huge-length", "a DATA header claiming 0xfffffff0 bytes", evil_sc_huge_length},
    {"truncated", "half an OPEN and half a header, then close", evil_sc_truncated},
    {"never-opened", "DATA on a stream id never opened", evil_sc_never_opened},
    {"ours-never-opened", "WINDOW for a daemon-side id never opened", evil_sc_ours_never_opened},
    {"id-zero", "OPEN on stream id 0", evil_sc_id_zero},
    {"id-parity", "OPEN on id 0xffffffff (the daemon's parity)", evil_sc_id_parity},
    {"reuse-id", "OPEN twice on the same id", evil_sc_reuse_id},
    {"id-backwards", "OPEN on the last id, then on a lower one", evil_sc_id_backwards},
    {"window-violation", "DATA beyond the granted window", evil_sc_window_violation},
    {"window-overflow", "WINDOW taking the credit past 2^31-1", evil_sc_window_overflow},
    {"open-flood", "100,000 TCP opens as fast as possible", evil_sc_open_flood},
    {"open-flood-deaf", "400,000 opens without reading the answers", evil_sc_open_flood_deaf},
    {"forbidden-kinds", "EXEC, FILE, CONTROL, BENCH, ROUTE, unknown kinds toward the host",
     evil_sc_forbidden_kinds},
    {"egress-denied", "TCP to loopback, link-local and the host's own addresses",
     evil_sc_egress_denied},
    {"never-read", "a huge window on many download streams, then no reads", evil_sc_never_read},
    {"pin-chunks", "1-byte frames to a stalled destination, each in a fresh receive chunk",
     evil_sc_pin_chunks},
};

#define EVIL_NSCENARIOS (sizeof(evil_scenarios) / sizeof(evil_scenarios[0]))

/* ---- the listening socket ---- */

static int evil_listen_unix(const char *uri)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path = strncmp(uri, "unix://", 7) ? NULL : uri + 7;
	int fd;

	if (!path || strlen(path) >= sizeof(sa.sun_path)) {
		evil_say("--listen: expected unix:///PATH, not '%s'", uri);
		return -1;
	}
	strcpy(sa.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 4)) {
		evil_say("%s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Accepts one daemon, runs sc on it; returns the scenario's verdict. */
static int evil_serve_one(int lfd, const struct evil_scenario *sc, struct evil *e)
{
	int ret;

	e->fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (e->fd < 0) {
		evil_say("accept: %s", strerror(errno));
		return 1;
	}
	evil_say("daemon connected; scenario %s: %s", sc->name, sc->what);
	ret = sc->run(e);
	close(e->fd);
	return ret;
}

/* ---- the TCP source server ---- */

#define EVIL_SRC_MAX 8192

/*
 * Serves addr:port (port 0: any; printed on stdout) forever, and listens on
 * a second port (printed on the next line) whose connections are never read.
 * Returns only on error.
 */
static int evil_tcp_source(const char *spec)
{
	static struct pollfd pfs[EVIL_SRC_MAX];
	static uint8_t blob[1u << 16], sink[1u << 16];
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	char host[64];
	const char *colon = strrchr(spec, ':');
	int lfd, sfd, one = 1;
	nfds_t n = 1;

	if (!colon || (size_t)(colon - spec) >= sizeof(host)) {
		evil_say("--tcp-source: expected ADDR:PORT, not '%s'", spec);
		return 2;
	}
	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	sa.sin_port = htons((uint16_t)atoi(colon + 1));
	if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
		evil_say("--tcp-source: '%s' is no IPv4 address", host);
		return 2;
	}
	memset(blob, 'x', sizeof(blob));
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 4096) ||
	    getsockname(lfd, (struct sockaddr *)&sa, &sl)) {
		evil_say("--tcp-source %s: %s", spec, strerror(errno));
		return 1;
	}
	printf("%u\n", ntohs(sa.sin_port));
	sa.sin_port = 0;
	sfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	sl = sizeof(sa);
	if (sfd < 0 || bind(sfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(sfd, 4096) ||
	    getsockname(sfd, (struct sockaddr *)&sa, &sl)) {
		evil_say("--tcp-source %s: the stalling port: %s", spec, strerror(errno));
		return 1;
	}
	printf("%u\n", ntohs(sa.sin_port)); /* never accepted: the kernel's backlog holds them */
	fflush(stdout);
	pfs[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
	for (;;) {
		if (poll(pfs, n, -1) < 0 && errno != EINTR)
			return 1;
		if ((pfs[0].revents & POLLIN) && n < EVIL_SRC_MAX) {
			int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

			if (c >= 0)
				pfs[n++] = (struct pollfd){.fd = c, .events = POLLIN | POLLOUT};
		}
		for (nfds_t i = 1; i < n; i++) {
			short re = pfs[i].revents;
			bool gone = re & (POLLERR | POLLHUP);

			if (re & POLLIN)
				gone |= read(pfs[i].fd, sink, sizeof(sink)) == 0;
			if (!gone && (re & POLLOUT))
				gone |= write(pfs[i].fd, blob, sizeof(blob)) < 0 && errno != EAGAIN;
			if (gone) {
				close(pfs[i].fd);
				pfs[i--] = pfs[--n];
			}
		}
	}
}

/* ---- main ---- */

static void evil_usage(FILE *f)
{
	fprintf(f, "usage: vb-evil-agent --listen unix:///PATH --scenario NAME [--tcp HOST:PORT]\n"
		   "                     [--stall-port PORT] [--host-addrs 'A B ...'] [--opens N]\n"
		   "                     [--hold SECONDS]\n"
		   "       vb-evil-agent --scenario list\n"
		   "       vb-evil-agent --tcp-source ADDR:PORT   (port 0: any; prints it and the\n"
		   "                                               stalling port)\n"
		   "exit: 0 the daemon reacted as it must, 1 it did not, 2 usage\n");
}

static const struct evil_scenario *evil_find(const char *name)
{
	for (size_t i = 0; i < EVIL_NSCENARIOS; i++)
		if (!strcmp(evil_scenarios[i].name, name))
			return &evil_scenarios[i];
	return NULL;
}

static int evil_parse_tcp(struct evil *e, const char *spec)
{
	const char *colon = strrchr(spec, ':');

	if (!colon || (size_t)(colon - spec) >= sizeof(e->tcp_addr) || atoi(colon + 1) <= 0 ||
	    atoi(colon + 1) > 65535)
		return -EINVAL;
	snprintf(e->tcp_addr, sizeof(e->tcp_addr), "%.*s", (int)(colon - spec), spec);
	e->tcp_port = (uint16_t)atoi(colon + 1);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"listen", required_argument, NULL, 'l'},
	    {"scenario", required_argument, NULL, 's'},
	    {"tcp", required_argument, NULL, 't'},
	    {"host-addrs", required_argument, NULL, 'H'},
	    {"opens", required_argument, NULL, 'n'},
	    {"hold", required_argument, NULL, 'h'},
	    {"tcp-source", required_argument, NULL, 'S'},
	    {"stall-port", required_argument, NULL, 'P'},
	    {0},
	};
	static struct evil e;
	const char *listen_uri = NULL, *name = NULL;
	const struct evil_scenario *sc;
	int opt, lfd, ret;

	signal(SIGPIPE, SIG_IGN);
	snprintf(e.tcp_addr, sizeof(e.tcp_addr), "127.0.0.1");
	e.tcp_port = 9;
	e.hold_s = 15;
	e.opens = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'l':
			listen_uri = optarg;
			break;
		case 's':
			name = optarg;
			break;
		case 't':
			if (evil_parse_tcp(&e, optarg)) {
				evil_say("--tcp: expected HOST:PORT, not '%s'", optarg);
				return 2;
			}
			break;
		case 'P':
			e.stall_port = (uint16_t)atoi(optarg);
			break;
		case 'H':
			snprintf(e.host_addrs, sizeof(e.host_addrs), "%s", optarg);
			break;
		case 'n':
			e.opens = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'h':
			e.hold_s = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'S':
			return evil_tcp_source(optarg);
		default:
			evil_usage(stderr);
			return 2;
		}
	}
	if (name && !strcmp(name, "list")) {
		for (size_t i = 0; i < EVIL_NSCENARIOS; i++)
			printf("%-18s %s\n", evil_scenarios[i].name, evil_scenarios[i].what);
		return 0;
	}
	if (!listen_uri || !name || optind != argc) {
		evil_usage(stderr);
		return 2;
	}
	sc = evil_find(name);
	if (!sc) {
		evil_say("no scenario '%s' (try --scenario list)", name);
		return 2;
	}
	if (!e.opens)
		e.opens = !strcmp(name, "open-flood-deaf") ? 400000
			  : !strcmp(name, "open-flood")	   ? 100000
			  : !strcmp(name, "never-read")	   ? 400
							   : 7000;
	e.out = malloc(EVIL_OUT_MAX);
	e.in = malloc(EVIL_IN_MAX);
	if (!e.out || !e.in) {
		evil_say("out of memory");
		return 1;
	}
	lfd = evil_listen_unix(listen_uri);
	if (lfd < 0)
		return 2;
	ret = evil_serve_one(lfd, sc, &e);
	close(lfd);
	unlink(listen_uri + 7);
	free(e.out);
	free(e.in);
	return ret;
}
