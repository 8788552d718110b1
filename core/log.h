/* Leveled logging, one line per event, to stderr or a sink the platform provides (syslog). */
#ifndef VB_CORE_LOG_H
#define VB_CORE_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum vb_log_level {
	VB_LOG_ERROR = 0,
	VB_LOG_WARN,
	VB_LOG_INFO,
	VB_LOG_DEBUG,
};

/* A sink gets one formatted line without its newline. */
typedef void (*log_sink_fn)(enum vb_log_level lvl, const char *line);

void log_setup(const char *ident, enum vb_log_level lvl);
void log_set_sink(log_sink_fn sink);
enum vb_log_level log_level(void);
int log_level_parse(const char *s, enum vb_log_level *out);
bool log_enabled(enum vb_log_level lvl);
/*
 * Writes one line. Lines above debug level are rate-limited per cause and
 * per subject (the text before the first ": ", a VM's name by convention):
 * a flood shows a few lines, then one "[N more like this suppressed ...]"
 * line per period (core/log.c).
 */
void log_msg(enum vb_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Writes the summaries of suppressed lines whose period is over; call now and then. */
void log_tick(void);
/* Switches the rate limiter (on by default) and sets its clock (NULL: clock_now_ns); clears it. */
void log_rate_limit(bool on, uint64_t (*now_ns)(void));

#define vb_err(...)  log_msg(VB_LOG_ERROR, __VA_ARGS__)
#define vb_warn(...) log_msg(VB_LOG_WARN, __VA_ARGS__)
#define vb_info(...) log_msg(VB_LOG_INFO, __VA_ARGS__)
#define vb_dbg(...)                                                                                \
	do {                                                                                       \
		if (log_enabled(VB_LOG_DEBUG))                                                     \
			log_msg(VB_LOG_DEBUG, __VA_ARGS__);                                        \
	} while (0)

#endif
