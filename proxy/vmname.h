/* Ingress destinations: "<vm>.vmbus" and "<address>.<vm>.vmbus" as SOCKS and HTTP clients name
 * them. */
#ifndef VB_PROXY_VMNAME_H
#define VB_PROXY_VMNAME_H

#include <stdbool.h>
#include <stddef.h>

#define VMNAME_SUFFIX ".vmbus"

/* True when a VM of that name (n bytes, not NUL-terminated) exists. */
typedef bool (*vmname_exists_fn)(void *arg, const char *name, size_t n);

/*
 * Splits host (case-insensitive suffix ".vmbus", one trailing dot allowed):
 *   "lab1.vmbus"            vm "lab1", inner "127.0.0.1" (the VM's loopback)
 *   "10.0.0.5.lab1.vmbus"   vm "lab1", inner "10.0.0.5" (dialed from the VM)
 *   "db.internal.lab1.vmbus" vm "lab1", inner "db.internal" (resolved in the VM)
 *   "fd00--1.lab1.vmbus"    vm "lab1", inner "fd00::1" (IPv6: '-' for ':', as sslip.io)
 * VM names may hold dots, so the longest VM name that exists wins. Returns
 * 1 with vm and inner filled, 0 when host is not a .vmbus name, or -ENOENT
 * when it is one but names no VM; -EINVAL for an empty inner part,
 * -ENAMETOOLONG when a part does not fit.
 */
int vmname_split(const char *host, vmname_exists_fn exists, void *arg, char *vm, size_t vmcap,
		 char *inner, size_t innercap);

#endif
