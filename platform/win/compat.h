/* The POSIX errno values mingw-w64 lacks, so that the project has one error space on Windows too.
 */
#ifndef VB_PLATFORM_WIN_COMPAT_H
#define VB_PLATFORM_WIN_COMPAT_H

/*
 * The Windows build includes this before every file (cmake/windows.cmake):
 * core/ names ESHUTDOWN and EHOSTDOWN, which mingw-w64's <errno.h> does not
 * define. The values lie above mingw-w64's largest (EWOULDBLOCK, 140), as
 * libuv picks its own for the same names; sys_strerror() knows their text.
 */
#include <errno.h>

/*
 * Signal numbers: the protocol speaks Linux's (exec/msg.h). The C runtime
 * defines SIGINT (2) and SIGTERM (15) with the same values; these are the
 * others the CLI names, for records it sends and watches that
 * platform/win/sigwatch.c emulates from console events.
 */
#include <signal.h>

#ifndef SIGHUP
#define SIGHUP 1
#endif
#ifndef SIGQUIT
#define SIGQUIT 3
#endif
#ifndef SIGKILL
#define SIGKILL 9
#endif
#ifndef SIGWINCH
#define SIGWINCH 28
#endif

/* The C library calls mingw-w64's runtime lacks, for the portable code. */
#include <stdlib.h>
#include <string.h>

static inline char *compat_strndup(const char *s, size_t n)
{
	size_t len = strnlen(s, n);
	char *p = malloc(len + 1);

	if (p) {
		memcpy(p, s, len);
		p[len] = '\0';
	}
	return p;
}
#define strndup compat_strndup

#ifndef ESHUTDOWN
#define ESHUTDOWN 150
#endif
#ifndef EHOSTDOWN
#define EHOSTDOWN 151
#endif

#endif
