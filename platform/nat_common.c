/* What both ports' nat.c share: nat_render()'s bounded appending. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include "platform/nat_internal.h"

int nat_append(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*off >= len)
		return -ENOSPC;
	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *off)
		return -ENOSPC;
	*off += (size_t)n;
	return 0;
}
