/* Private to platform/: what each port's nat.c takes from platform/nat_common.c. */
#ifndef VB_PLATFORM_NAT_INTERNAL_H
#define VB_PLATFORM_NAT_INTERNAL_H

#include <stddef.h>

/* Appends a formatted text to buf (len bytes) at *off; -ENOSPC once it no longer fits. */
int nat_append(char *buf, size_t len, size_t *off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
