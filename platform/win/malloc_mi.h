/* Windows builds with mimalloc: the project's own malloc family calls mimalloc by its mi_ names. */
#ifndef VB_PLATFORM_WIN_MALLOC_MI_H
#define VB_PLATFORM_WIN_MALLOC_MI_H

/*
 * cmake/windows.cmake includes this before every project file when the build
 * has mimalloc (scripts/mimalloc-win.sh), after compat.h. Why names and not an
 * override: mimalloc overrides malloc on Windows only as a DLL with its
 * redirection DLL (mimalloc-redirect.dll, a binary that Debian's source
 * package leaves out) over the DLL C runtime; a static mimalloc refuses
 * MI_OVERRIDE ("only possible ... when building as a DLL", alloc-override.c).
 * Its documented static way is the one here: every source file of the
 * project maps malloc, calloc, realloc, free, strdup and friends to mi_*
 * (mimalloc-override.h).
 *
 * Which heap owns what: memory the project allocates comes from mimalloc and
 * the project frees it; memory the C runtime, mingw-w64's libraries or
 * Windows allocate (getaddrinfo, CommandLineToArgvW, FormatMessage, the
 * security descriptors...) goes back through their own release calls
 * (freeaddrinfo, LocalFree), never through free(). No project file hands its
 * memory to the runtime to free or reallocate (no getline, asprintf, _fullpath
 * or realpath with a NULL buffer), and none takes free or malloc's address,
 * which these function-like macros would miss. Code that breaks this must
 * be compiled without this header.
 *
 * The C headers that declare the malloc family come first, so that their
 * declarations are not renamed by the macros (mimalloc-override.h says to
 * include it last); compat.h's strndup gives way to mimalloc's.
 */
#include <stdlib.h>
#include <string.h>
#include <malloc.h>
#include <wchar.h>
#include <mimalloc.h>

#undef strndup
#include <mimalloc-override.h>

#endif
