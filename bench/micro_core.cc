// Micro benchmarks of core/: frame codec, ring, chunk pool, and two sessions pumping in memory.
#include <benchmark/benchmark.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

// In C++, the accessor session_stats() shadows the name of struct session_stats.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
extern "C" {
#include "core/buf.h"
#include "core/frame.h"
#include "core/session.h"
}
#pragma GCC diagnostic pop

namespace
{

// ---- frame codec ----

void BM_FrameHdrEncode(benchmark::State &state)
{
	uint8_t out[FRAME_HDR_LEN];
	uint32_t id = 1;

	for (auto _ : state) {
		frame_hdr_encode(out, FRAME_DATA, 0, id++, 65536);
		benchmark::DoNotOptimize(out);
		benchmark::ClobberMemory();
	}
}
BENCHMARK(BM_FrameHdrEncode);

void BM_FrameHdrDecode(benchmark::State &state)
{
	uint8_t in[FRAME_HDR_LEN];
	struct frame_hdr h;

	frame_hdr_encode(in, FRAME_DATA, FRAME_F_FIN, 7, 65536);
	for (auto _ : state) {
		benchmark::ClobberMemory(); // in must be read again each time
		benchmark::DoNotOptimize(frame_hdr_decode(in, &h));
		benchmark::DoNotOptimize(h);
	}
}
BENCHMARK(BM_FrameHdrDecode);

struct frame_hello micro_hello()
{
	struct frame_hello h;

	std::memset(&h, 0, sizeof(h));
	h.min_version = FRAME_VERSION;
	h.max_version = FRAME_VERSION;
	h.max_frame = 65536;
	h.max_streams = 1024;
	h.caps = FRAME_CAP_EXEC | FRAME_CAP_FILE | FRAME_CAP_TCP | FRAME_CAP_VNET;
	h.role = FRAME_ROLE_HOST;
	std::strcpy(h.name, "vmbusify 0.1.0");
	return h;
}

void BM_HelloEncode(benchmark::State &state)
{
	struct frame_hello h = micro_hello();
	uint8_t out[FRAME_HELLO_MAX];

	for (auto _ : state) {
		benchmark::DoNotOptimize(frame_hello_encode(out, sizeof(out), &h));
		benchmark::ClobberMemory();
	}
}
BENCHMARK(BM_HelloEncode);

void BM_HelloDecode(benchmark::State &state)
{
	struct frame_hello h = micro_hello(), got;
	uint8_t in[FRAME_HELLO_MAX];
	int n = frame_hello_encode(in, sizeof(in), &h);

	for (auto _ : state) {
		benchmark::DoNotOptimize(frame_hello_decode(in, (size_t)n, &got));
		benchmark::DoNotOptimize(got);
	}
}
BENCHMARK(BM_HelloDecode);

// ---- ring and chunks ----

// Puts then gets range(0) bytes through a 64 KiB ring whose head wanders, so runs wrap.
void BM_RingPutGet(benchmark::State &state)
{
	const size_t n = (size_t)state.range(0);
	static uint8_t area[65536 + 17];
	uint8_t *src = new uint8_t[n], *dst = new uint8_t[n];
	struct ring r;

	std::memset(src, 0xa5, n);
	ring_init(&r, area, sizeof(area));
	for (auto _ : state) {
		benchmark::DoNotOptimize(ring_put(&r, src, n));
		benchmark::DoNotOptimize(ring_get(&r, dst, n));
		benchmark::ClobberMemory();
	}
	state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)n);
	delete[] src;
	delete[] dst;
}
BENCHMARK(BM_RingPutGet)->Arg(64)->Arg(16384);

void BM_ChunkGetPut(benchmark::State &state)
{
	struct chunk_pool pool;

	chunk_pool_init(&pool, 65536, 64);
	// The calls cross into C objects, which the compiler cannot elide. No DoNotOptimize(c):
	// with GCC -O1 and sanitizers, its "+m,r" operand on the live pointer handed chunk_put()
	// a garbage pointer (libbenchmark 1.7.1).
	for (auto _ : state)
		chunk_put(chunk_get(&pool));
	chunk_pool_destroy(&pool);
}
BENCHMARK(BM_ChunkGetPut);

// ---- two sessions in memory ----

constexpr size_t kRxChunk = (2u << 20) + 65536; // holds a whole output batch and a frame

// The receiving end of one direction: bytes land in a chunk, frames never straddle two.
struct Pipe {
	struct session *to = nullptr;
	struct chunk_pool *pool = nullptr;
	struct chunk *c = nullptr;
	size_t fill = 0;
	size_t parsed = 0;
	uint64_t copied = 0;
};

// Appends n bytes to the pipe's chunk and lets the session parse them. This copy is the one
// a real transport makes across the kernel boundary.
void pipe_push(Pipe *p, const uint8_t *src, size_t n)
{
	while (n) {
		size_t room, k, used = 0;

		if (p->fill == p->parsed && p->c->refs == 1) {
			p->fill = p->parsed = 0; // nothing held downstream: reuse the chunk
		} else if (p->fill == p->c->size) {
			struct chunk *c = chunk_get(p->pool);

			p->fill -= p->parsed;
			std::memcpy(c->data, p->c->data + p->parsed, p->fill);
			chunk_put(p->c);
			p->c = c;
			p->parsed = 0;
		}
		room = p->c->size - p->fill;
		k = n < room ? n : room;
		std::memcpy(p->c->data + p->fill, src, k);
		p->fill += k;
		p->copied += k;
		src += k;
		n -= k;
		if (session_input(p->to, p->c, p->c->data + p->parsed, p->fill - p->parsed, &used))
			std::abort();
		p->parsed += used;
	}
}

// Moves every batch from one session to the pipe of the other; returns the bytes moved.
size_t pipe_pump(struct session *from, Pipe *p)
{
	struct vb_iov iov[64];
	size_t moved = 0;
	int n;

	while ((n = session_output(from, iov, 64)) > 0) {
		for (int i = 0; i < n; i++) {
			pipe_push(p, static_cast<const uint8_t *>(iov[i].base), iov[i].len);
			moved += iov[i].len;
		}
		session_output_done(from);
	}
	return moved;
}

// The app on both sides: B accepts every stream and consumes what arrives at once.
struct Pair {
	struct chunk_pool pool;
	struct session *a = nullptr, *b = nullptr;
	Pipe to_a, to_b;
	uint64_t received = 0;
	bool replied = false, a_fin = false;
	struct stream *b_stream = nullptr;
};

void pair_on_data(struct stream *st, struct chunk *, const uint8_t *, size_t len)
{
	auto *pr = static_cast<Pair *>(session_app(stream_session(st)));

	pr->received += len;
	stream_consumed(st, len);
}

// B answers a FIN with its own and lets the stream go; A notes it.
void pair_on_fin(struct stream *st)
{
	struct session *s = stream_session(st);
	auto *pr = static_cast<Pair *>(session_app(s));

	if (s == pr->a) {
		pr->a_fin = true;
		return;
	}
	stream_shutdown(st);
	stream_release(st);
	pr->b_stream = nullptr;
}

void pair_on_reply(struct stream *st, int err, const uint8_t *, size_t)
{
	auto *pr = static_cast<Pair *>(session_app(stream_session(st)));

	if (err)
		std::abort();
	pr->replied = true;
}

void pair_on_reset(struct stream *st, int)
{
	stream_release(st);
}

const struct stream_ops pair_stream_ops = {
    pair_on_reply, pair_on_data, pair_on_fin, pair_on_reset, nullptr, nullptr,
};

void pair_on_open(struct session *s, struct stream *st, uint16_t, uint16_t, const uint8_t *, size_t)
{
	auto *pr = static_cast<Pair *>(session_app(s));

	pr->b_stream = st;
	stream_accept(st, nullptr, 0, &pair_stream_ops, nullptr);
}

const struct session_ops pair_session_ops = {
    nullptr, pair_on_open, nullptr, nullptr, nullptr,
};

void pair_pump(Pair *pr)
{
	while (pipe_pump(pr->a, &pr->to_b) + pipe_pump(pr->b, &pr->to_a))
		;
}

void pair_init(Pair *pr)
{
	struct session_config cfg;

	chunk_pool_init(&pr->pool, kRxChunk, 16);
	session_config_defaults(&cfg);
	cfg.pool = &pr->pool;
	cfg.dialer = true;
	if (session_new(&pr->a, &cfg, &pair_session_ops, pr))
		std::abort();
	cfg.dialer = false;
	if (session_new(&pr->b, &cfg, &pair_session_ops, pr))
		std::abort();
	pr->to_a = Pipe{pr->a, &pr->pool, chunk_get(&pr->pool)};
	pr->to_b = Pipe{pr->b, &pr->pool, chunk_get(&pr->pool)};
	pair_pump(pr);
}

void pair_destroy(Pair *pr)
{
	session_abort(pr->a, -ECONNRESET, "done");
	session_abort(pr->b, -ECONNRESET, "done");
	session_free(pr->a);
	session_free(pr->b);
	chunk_put(pr->to_a.c);
	chunk_put(pr->to_b.c);
	chunk_pool_destroy(&pr->pool);
}

// Streams 64 MiB per iteration from A to B over one stream, writing A's source chunk by
// reference (no copy into the send queue) and copying once into B's receive chunk.
void BM_SessionThroughput(benchmark::State &state)
{
	constexpr uint64_t kTotal = 64u << 20;
	constexpr size_t kWrite = 256u << 10;
	Pair pr;
	struct stream *st;
	struct chunk *src;

	pair_init(&pr);
	if (stream_open(pr.a, 1, 0, nullptr, 0, &pair_stream_ops, nullptr, &st))
		std::abort();
	pair_pump(&pr);
	src = chunk_get(&pr.pool);
	std::memset(src->data, 0x5a, kWrite);
	for (auto _ : state) {
		uint64_t target = pr.received + kTotal, written = 0;

		while (pr.received < target) {
			while (written < kTotal && stream_queued(st) < (1u << 20)) {
				if (stream_write(st, src, src->data, kWrite))
					std::abort();
				written += kWrite;
			}
			pair_pump(&pr);
		}
	}
	state.SetBytesProcessed((int64_t)state.iterations() * (int64_t)kTotal);
	state.counters["copied_per_byte"] =
	    (double)pr.to_b.copied / (double)(state.iterations() * kTotal);
	chunk_put(src);
	stream_release(st);
	pair_destroy(&pr);
}
BENCHMARK(BM_SessionThroughput)->Unit(benchmark::kMillisecond);

// Opens a stream, has it accepted, closes both directions and frees it on both sides.
void BM_StreamOpenClose(benchmark::State &state)
{
	Pair pr;

	pair_init(&pr);
	for (auto _ : state) {
		struct stream *st;

		pr.replied = pr.a_fin = false;
		if (stream_open(pr.a, 1, 0, "req", 3, &pair_stream_ops, nullptr, &st))
			std::abort();
		pair_pump(&pr);
		if (!pr.replied)
			std::abort();
		stream_shutdown(st);
		pair_pump(&pr);
		if (!pr.a_fin)
			std::abort();
		stream_release(st);
		pair_pump(&pr);
	}
	if (session_stream_count(pr.a) || session_stream_count(pr.b))
		state.SkipWithError("streams were not freed after both FINs");
	pair_destroy(&pr);
}
BENCHMARK(BM_StreamOpenClose);

} // namespace

BENCHMARK_MAIN();
