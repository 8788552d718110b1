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

#ifndef ESHUTDOWN
#define ESHUTDOWN 150
#endif
#ifndef EHOSTDOWN
#define EHOSTDOWN 151
#endif

#endif
