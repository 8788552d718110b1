/* Private to the resolvers (proxy/resolve.c, proxy/win/resolve.c): what they share. */
#ifndef VB_PROXY_RESOLVE_INTERNAL_H
#define VB_PROXY_RESOLVE_INTERNAL_H

#include <stdbool.h>

/*
 * resolve_name_ok() - true when name is a host name worth asking a resolver
 * about (checked before anything is sent; see proxy/resolve_name.c).
 */
bool resolve_name_ok(const char *name);

#endif
