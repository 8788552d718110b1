/* One-line reasons for failures. */
#include <stdarg.h>
#include <stdio.h>
#include "core/why.h"

int why_set(char *why, size_t whylen, int err, const char *fmt, ...)
{
	va_list ap;

	if (!why || !whylen)
		return err;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
	for (char *c = why; *c; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	}
	return err;
}
