/* Leveled logging: "ident: level: message" lines on stderr, or through a sink. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <errno.h>
#include "core/log.h"

static const char *log_ident = "vmbusify";
static enum vb_log_level log_cur = VB_LOG_INFO;
static log_sink_fn log_sink;

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

void log_msg(enum vb_log_level lvl, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (!log_enabled(lvl))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_sink) {
		log_sink(lvl, line);
		return;
	}
	/* One fprintf per line so that lines from several threads do not interleave. */
	fprintf(stderr, "%s: %s: %s\n", log_ident, log_names[lvl], line);
}
