/* Private to platform/win: the command-line quoting of processes, shared with the service's. */
#ifndef VB_PLATFORM_WIN_PROC_INTERNAL_H
#define VB_PLATFORM_WIN_PROC_INTERNAL_H

#include <stddef.h>
#include <wchar.h>

/*
 * proc_quote() - appends arg to the command line out at *pos (advanced),
 * quoted so that CommandLineToArgvW() gives it back unchanged. out must have
 * room for 2 * wcslen(arg) + 3 more characters; no NUL is written.
 */
void proc_quote(const wchar_t *arg, wchar_t *out, size_t *pos);

#endif
