/* Leveled logging: "ident: level: message" lines on stderr, or through a sink; rate-limited. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include "core/log.h"
#include "platform/loop.h"

/*
 * Theory of operation: the rate limiter
 *
 * A peer must not be able to turn the log into a flood (one line per frame
 * it sends). Every line above debug level passes two token counts, both
 * over a period of LOG_RL_PERIOD_NS:
 *   cause    the call site (its format string) and the line with every run
 *            of digits folded, so "stream 5" and "stream 7" are one cause:
 *            at most LOG_RL_CAUSE_BURST lines per period;
 *   subject  the call site and the line's subject, the text before its
 *            first ": " (a VM's name, by the convention of the callers): at
 *            most LOG_RL_SUBJECT_BURST lines per period, so that a peer that
 *            varies what it sends (names, addresses) is bounded as well.
 * A line over either count is suppressed and counted. Once its period is
 * over, the entry says so in one line: the last suppressed line followed by
 * "[N more like this suppressed in the last S s]"; log_tick() does that for
 * entries nobody logs to any more. Entries live in a small table, found by
 * hash with a short probe; an entry is recycled once its period is over
 * (after its summary), never while it counts. Debug lines are never
 * limited: whoever asks for them wants all. The table is shared by every
 * thread, behind a spin lock: lines are rare, and no call inside the lock
 * can block.
 */

#define LOG_RL_PERIOD_NS     (10ull * 1000 * 1000 * 1000)
#define LOG_RL_CAUSE_BURST   3
#define LOG_RL_SUBJECT_BURST 20
#define LOG_RL_SLOTS	     256
#define LOG_RL_PROBE	     8
#define LOG_RL_SUMMARIES     8 /* summaries written per call at most; the rest wait */
#define LOG_RL_SAMPLE	     200
#define LOG_RL_SUBJECT_MAX   64

struct log_rl {
	uint64_t key; /* 0: free */
	uint64_t start_ns;
	uint32_t shown, suppressed;
	enum vb_log_level lvl;
	char sample[LOG_RL_SAMPLE];
};

struct log_summary {
	enum vb_log_level lvl;
	char line[LOG_RL_SAMPLE + 80];
};

static const char *log_ident = "vmbusify";
static enum vb_log_level log_cur = VB_LOG_INFO;
static log_sink_fn log_sink;
static uint64_t (*log_clock)(void) = clock_now_ns;
static bool log_rl_on = true;
static struct log_rl log_rl_table[LOG_RL_SLOTS];
static atomic_flag log_rl_lock = ATOMIC_FLAG_INIT;

static const char *const log_names[] = {"error", "warning", "info", "debug"};

void log_setup(const char *ident, enum vb_log_level lvl)
{
	log_ident = ident;
	log_cur = lvl;
}

void log_set_sink(log_sink_fn sink)
{
	log_sink = sink;
}

enum vb_log_level log_level(void)
{
	return log_cur;
}

bool log_enabled(enum vb_log_level lvl)
{
	return lvl <= log_cur;
}

/* Accepts the level names and "warn"; returns 0 or -EINVAL. */
int log_level_parse(const char *s, enum vb_log_level *out)
{
	for (unsigned i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++) {
		if (!strcasecmp(s, log_names[i])) {
			*out = (enum vb_log_level)i;
			return 0;
		}
	}
	if (!strcasecmp(s, "warn")) {
		*out = VB_LOG_WARN;
		return 0;
	}
	return -EINVAL;
}

/* Writes one finished line, to the sink or stderr. */
static void log_emit(enum vb_log_level lvl, const char *line)
{
	if (log_sink) {
		log_sink(lvl, line);
		return;
	}
	/* One fprintf per line so that lines from several threads do not interleave. */
	fprintf(stderr, "%s: %s: %s\n", log_ident, log_names[lvl], line);
}

/* ---- the rate limiter ---- */

void log_rate_limit(bool on, uint64_t (*now_ns)(void))
{
	log_rl_on = on;
	log_clock = now_ns ? now_ns : clock_now_ns;
	while (atomic_flag_test_and_set_explicit(&log_rl_lock, memory_order_acquire))
		;
	memset(log_rl_table, 0, sizeof(log_rl_table));
	atomic_flag_clear_explicit(&log_rl_lock, memory_order_release);
}

/* FNV-1a over len bytes, continuing from h. */
static uint64_t log_hash(uint64_t h, const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

/* The cause of a line: its call site and its text with runs of digits folded into one '#'. */
static uint64_t log_cause_key(const char *fmt, const char *line)
{
	uint64_t h = log_hash(0xcbf29ce484222325ull, &fmt, sizeof(fmt));
	bool digits = false;

	for (const char *c = line; *c; c++) {
		bool d = *c >= '0' && *c <= '9';

		if (!(d && digits))
			h = log_hash(h, d ? "#" : c, 1);
		digits = d;
	}
	return h | 1; /* never 0, the free mark */
}

/* The subject of a line: its call site and the text before its first ": ". */
static uint64_t log_subject_key(const char *fmt, const char *line)
{
	const char *colon = strstr(line, ": ");
	size_t n = colon ? (size_t)(colon - line) : 0;
	uint64_t h = log_hash(0x84222325cbf29ce4ull, &fmt, sizeof(fmt));

	if (n > LOG_RL_SUBJECT_MAX)
		n = 0;
	return log_hash(h, line, n) | 1;
}

/* Turns an entry whose period is over into a summary (when it suppressed lines); resets it. */
static void log_rl_roll(struct log_rl *e, uint64_t now, struct log_summary *out, int *nout)
{
	if (e->suppressed && *nout < LOG_RL_SUMMARIES) {
		struct log_summary *s = &out[(*nout)++];

		s->lvl = e->lvl;
		snprintf(s->line, sizeof(s->line),
			 "%s [%u more like this suppressed in the last %llu s]", e->sample,
			 e->suppressed,
			 (unsigned long long)((now - e->start_ns + 999999999ull) / 1000000000ull));
	} else if (e->suppressed) {
		return; /* the summary waits for the next call */
	}
	e->start_ns = now;
	e->shown = 0;
	e->suppressed = 0;
}

/*
 * Finds or makes the entry of key in its probe run: a free slot, or one
 * whose period is over (after its summary). An entry still counting is never
 * taken over, so a flood of ever new causes cannot reset the counts that
 * bound it. NULL when there is no room: the line then passes this count.
 */
static struct log_rl *log_rl_entry(uint64_t key, uint64_t now, struct log_summary *out, int *nout)
{
	struct log_rl *room = NULL;

	for (unsigned i = 0; i < LOG_RL_PROBE; i++) {
		struct log_rl *e = &log_rl_table[(key + i) % LOG_RL_SLOTS];
		bool over = now - e->start_ns >= LOG_RL_PERIOD_NS;

		if (e->key == key) {
			if (over)
				log_rl_roll(e, now, out, nout);
			return e;
		}
		if (!room && (!e->key || (over && (!e->suppressed || *nout < LOG_RL_SUMMARIES))))
			room = e;
	}
	if (!room)
		return NULL;
	if (room->key)
		log_rl_roll(room, now, out, nout);
	memset(room, 0, sizeof(*room));
	room->key = key;
	room->start_ns = now;
	return room;
}

/* Summarizes every entry whose period is over; called with the lock held. */
static void log_rl_sweep(uint64_t now, struct log_summary *out, int *nout)
{
	for (unsigned i = 0; i < LOG_RL_SLOTS && *nout < LOG_RL_SUMMARIES; i++) {
		struct log_rl *e = &log_rl_table[i];

		if (e->key && e->suppressed && now - e->start_ns >= LOG_RL_PERIOD_NS)
			log_rl_roll(e, now, out, nout);
	}
}

/* True when e (or no entry: no room to count) lets one more line through. */
static bool log_rl_allows(const struct log_rl *e, uint32_t burst)
{
	return !e || e->shown < burst;
}

static void log_rl_suppress(struct log_rl *e, enum vb_log_level lvl, const char *line)
{
	if (!e)
		return;
	e->suppressed++;
	e->lvl = lvl;
	snprintf(e->sample, sizeof(e->sample), "%s", line);
}

/*
 * Decides whether line (from the call site fmt) is shown; fills out with the
 * summaries that are due. Returns true to show it.
 */
static bool log_rl_check(enum vb_log_level lvl, const char *fmt, const char *line,
			 struct log_summary *out, int *nout)
{
	uint64_t now = log_clock();
	struct log_rl *cause, *subject;
	bool show;

	while (atomic_flag_test_and_set_explicit(&log_rl_lock, memory_order_acquire))
		;
	cause = log_rl_entry(log_cause_key(fmt, line), now, out, nout);
	subject = log_rl_entry(log_subject_key(fmt, line), now, out, nout);
	show = log_rl_allows(cause, LOG_RL_CAUSE_BURST) &&
	       log_rl_allows(subject, LOG_RL_SUBJECT_BURST);
	if (show) {
		if (cause)
			cause->shown++;
		if (subject)
			subject->shown++;
	} else {
		log_rl_suppress(log_rl_allows(cause, LOG_RL_CAUSE_BURST) ? subject : cause, lvl,
				line);
	}
	log_rl_sweep(now, out, nout);
	atomic_flag_clear_explicit(&log_rl_lock, memory_order_release);
	return show;
}

static void log_emit_summaries(const struct log_summary *s, int n)
{
	for (int i = 0; i < n; i++)
		if (log_enabled(s[i].lvl))
			log_emit(s[i].lvl, s[i].line);
}

void log_tick(void)
{
	struct log_summary out[LOG_RL_SUMMARIES];
	int n = 0;

	if (!log_rl_on)
		return;
	while (atomic_flag_test_and_set_explicit(&log_rl_lock, memory_order_acquire))
		;
	log_rl_sweep(log_clock(), out, &n);
	atomic_flag_clear_explicit(&log_rl_lock, memory_order_release);
	log_emit_summaries(out, n);
}

void log_msg(enum vb_log_level lvl, const char *fmt, ...)
{
	struct log_summary out[LOG_RL_SUMMARIES];
	char line[1024];
	va_list ap;
	bool show = true;
	int n = 0;

	if (!log_enabled(lvl))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_rl_on && lvl != VB_LOG_DEBUG)
		show = log_rl_check(lvl, fmt, line, out, &n);
	log_emit_summaries(out, n);
	if (show)
		log_emit(lvl, line);
}
