/* The session: many streams over one channel connection, as a state machine without I/O. */
#ifndef VB_CORE_SESSION_H
#define VB_CORE_SESSION_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include "core/buf.h"
#include "core/iov.h"
#include "core/frame.h"

/*
 * The session does no I/O. Its driver (core/link.c, or a test) hands it the
 * bytes that arrived with session_input() and asks it for the bytes to send
 * with session_output(); everything else is callbacks on the loop thread.
 * See the theory of operation in session.c.
 */

struct session;
struct stream;

struct session_config {
	bool dialer;		     /* the side that connected: opens odd stream ids */
	uint8_t role;		     /* FRAME_ROLE_* */
	uint64_t caps;		     /* FRAME_CAP_* this side serves */
	const char *name;	     /* software name and version, sent in HELLO */
	uint32_t max_frame;	     /* largest payload we accept (>= FRAME_MIN_MAX_FRAME) */
	uint32_t max_streams;	     /* streams the peer may have open at once */
	uint32_t max_window;	     /* per-stream receive window growth limit */
	uint64_t session_window_cap; /* the sum of receive windows over all streams */
	uint32_t max_batch;	     /* bytes per session_output() batch */
	uint32_t sendq_low;	     /* a stream is writable below this many queued bytes */
	uint32_t dgram_queue_max;    /* datagrams queued per stream before dropping */
	uint64_t sendq_cap;	     /* bytes queued over all streams before writers wait */
	uint32_t open_rate;	     /* peer OPENs taken per second (0: no limit) ... */
	uint32_t open_burst;	     /* ... and at once after a pause */
	const char *label;	     /* who the peer is in log lines (a VM's name), or NULL */
	struct chunk_pool *pool;     /* for stream_write_copy() */
	uint64_t (*now_ns)(void);    /* monotonic clock for PING round trips */
};

void session_config_defaults(struct session_config *cfg);

struct session_ops {
	/* The peer's HELLO arrived: the version is chosen and peer limits are known. */
	void (*on_ready)(struct session *s);
	/*
	 * The peer opened a stream. Answer with stream_accept() or stream_refuse(),
	 * now or later; until then the stream is the callee's. No callback tells
	 * of a pending stream's end (the opener cancelled, the session died):
	 * stream_accept() then fails with -EINVAL, and stream_refuse() releases it.
	 */
	void (*on_open)(struct session *s, struct stream *st, uint16_t kind, uint16_t flags,
			const uint8_t *req, size_t len);
	/* Frames wait to be sent: the driver should call session_output(). */
	void (*on_output)(struct session *s);
	void (*on_pong)(struct session *s, uint64_t rtt_ns);
	/*
	 * The session is over: a protocol error (err = -EPROTO, our GOAWAY is queued
	 * and should be flushed before closing), the peer's GOAWAY, or
	 * session_abort(). Every open stream has had on_reset() before this.
	 */
	void (*on_close)(struct session *s, int err, const char *reason);
};

struct stream_ops {
	/* Our OPEN was answered: err 0 and the reply (ACCEPT), or err < 0 and its text (REFUSE). */
	void (*on_reply)(struct stream *st, int err, const uint8_t *reply, size_t len);
	/*
	 * Payload arrived. The bytes live in chunk c: keep them with chunk_ref(c)
	 * and chunk_put(c) later, or copy them. Call stream_consumed() once they
	 * have gone on, which returns the credit to the peer.
	 */
	void (*on_data)(struct stream *st, struct chunk *c, const uint8_t *p, size_t len);
	void (*on_fin)(struct stream *st);
	/* The stream was reset by the peer or died with its session; release it. */
	void (*on_reset)(struct stream *st, int err);
	/* The send queue dropped below the low-water mark. */
	void (*on_writable)(struct stream *st);
	/* n payload bytes of this stream were handed to the transport. */
	void (*on_sent)(struct stream *st, size_t n);
};

enum session_state {
	SESSION_HELLO,	 /* our HELLO queued, the peer's not seen */
	SESSION_OPEN,	 /* streams flow */
	SESSION_CLOSING, /* GOAWAY sent or received: no new streams, input ignored after error */
	SESSION_CLOSED,
};

struct session_stats {
	uint64_t bytes_in, bytes_out;
	uint64_t frames_in, frames_out;
	uint64_t streams_opened, streams_accepted;
	uint64_t dgrams_dropped;
	uint64_t opens_refused; /* peer OPENs refused by the session's own limits */
	uint64_t sendq_full;	/* times the session's send queue reached sendq_cap */
	uint64_t rtt_last_ns;
};

int session_new(struct session **out, const struct session_config *cfg,
		const struct session_ops *ops, void *app);
/*
 * Frees the session and every stream without callbacks; call after on_close
 * or abort. A peer-opened stream the app holds unanswered survives, dead,
 * until the app's stream_refuse() (stream_accept() fails with -EINVAL).
 */
void session_free(struct session *s);
void *session_app(const struct session *s);
enum session_state session_state(const struct session *s);
const struct frame_hello *session_peer(const struct session *s);
uint16_t session_version(const struct session *s);
const struct session_stats *session_stats(const struct session *s);
uint32_t session_max_payload(const struct session *s);
size_t session_stream_count(const struct session *s);
struct chunk_pool *session_pool(const struct session *s);
/* Bytes received but not yet consumed, over all streams. */
uint64_t session_buffered(const struct session *s);
/* Bytes queued to send, over all streams (bounded by sendq_cap for writers that wait). */
uint64_t session_queued(const struct session *s);

/*
 * Parses complete frames from p[0..len) (which lies inside chunk c) and sets
 * *consumed to the bytes used; a partial frame at the end is left for the
 * next call, with more bytes after it. Returns 0, or a negative errno once the
 * session has failed (on_close has run; flush the output, then close).
 */
int session_input(struct session *s, struct chunk *c, const uint8_t *p, size_t len,
		  size_t *consumed);
/* The smallest number of bytes that could complete the partial frame at p. */
size_t session_input_need(const uint8_t *p, size_t len);

/*
 * Fills iov with the next batch of frames (control frames first, then
 * interactive streams, then bulk streams round-robin, one frame per turn)
 * and returns the iov count, 0 when there is nothing to send. The batch
 * belongs to the transport until session_output_done(); no other batch is
 * handed out meanwhile.
 */
int session_output(struct session *s, struct vb_iov *iov, int max_iov);
/* The whole last batch was written. */
void session_output_done(struct session *s);
bool session_has_output(const struct session *s);

int session_ping(struct session *s);
/*
 * Why st was reset with err, for a one-line error: the session's reason
 * when the whole session ended, words for a far end shutting down, or NULL
 * when err's own text says it best.
 */
const char *stream_reset_reason(const struct stream *st, int err);
/* Queues a GOAWAY; no new streams are opened or accepted afterwards. */
int session_goaway(struct session *s, uint32_t wire_code, const char *reason);
/* The transport is gone: reset every stream and call on_close with err. */
void session_abort(struct session *s, int err, const char *reason);

/*
 * Opens a stream of kind with a request; the reply comes to ops->on_reply.
 * Data written before the reply waits in the stream's queue. Returns 0 and
 * the stream in *out, -EPIPE after GOAWAY, -EMFILE past the peer's limit,
 * -EMSGSIZE for a request larger than the peer takes, or -ENOMEM.
 */
int stream_open(struct session *s, uint16_t kind, uint16_t flags, const void *req, size_t len,
		const struct stream_ops *ops, void *ctx, struct stream **out);
/* Answers a pending stream; -EINVAL when it is no longer pending, -EMSGSIZE for a large reply. */
int stream_accept(struct stream *st, const void *reply, size_t len, const struct stream_ops *ops,
		  void *ctx);
/* Refuses and releases the stream (also one the peer gave up): do not touch it afterwards. */
int stream_refuse(struct stream *st, int err, const char *text);
/* Queues len bytes at p, inside chunk c (takes its own reference). */
int stream_write(struct stream *st, struct chunk *c, const uint8_t *p, size_t len);
/* Queues a copy of len bytes, for small messages. */
int stream_write_copy(struct stream *st, const void *p, size_t len);
/* Half-close: FIN after the queued bytes. */
int stream_shutdown(struct stream *st);
/* Aborts both directions with err; the stream stays the caller's until release. */
int stream_reset(struct stream *st, int err);
void stream_consumed(struct stream *st, size_t n);
/*
 * The caller drops the stream. One still open is reset; its later input is
 * consumed and discarded. No callback runs for it afterwards.
 */
void stream_release(struct stream *st);

uint32_t stream_id(const struct stream *st);
uint16_t stream_kind(const struct stream *st);
uint16_t stream_flags(const struct stream *st);
struct session *stream_session(const struct stream *st);
void *stream_ctx(const struct stream *st);
void stream_set_ctx(struct stream *st, void *ctx);
/* Hands an open stream to a new owner: its callbacks go to ops with ctx from now on. */
void stream_set_ops(struct stream *st, const struct stream_ops *ops, void *ctx);
size_t stream_queued(const struct stream *st);
/*
 * True when the stream takes more bytes now: its own queue is below
 * sendq_low and the session's below sendq_cap. When it says false,
 * on_writable follows once there is room again.
 */
bool stream_writable(struct stream *st);
/*
 * A writer about to fill a buffer it will stream_write() (a socket read in
 * flight) reserves its size: the session counts it against sendq_cap as if
 * queued, so that many streams reading at once cannot pass the cap by a
 * buffer each. stream_unreserve() gives it back (before the write, or when
 * the read failed); a stream that dies drops its reservation itself.
 */
void stream_reserve(struct stream *st, size_t n);
void stream_unreserve(struct stream *st);
uint32_t stream_send_credit(const struct stream *st);
uint32_t stream_recv_window(const struct stream *st);

#endif
