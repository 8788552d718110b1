/* One-line reasons for failures: formatted, kept on one line, and returned with the error. */
#ifndef VB_CORE_WHY_H
#define VB_CORE_WHY_H

#include <stddef.h>

/*
 * Formats a reason into why (which may be NULL or of length 0), replacing
 * control characters so that it stays one printable line whatever a peer or
 * a file put into it. Returns err, so that checks read "return why_set(...)".
 */
int why_set(char *why, size_t whylen, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
