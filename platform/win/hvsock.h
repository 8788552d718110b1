/* Private to platform/win: Hyper-V socket (AF_HYPERV) addresses and sockets for hvsock:// URIs. */
#ifndef VB_PLATFORM_WIN_HVSOCK_H
#define VB_PLATFORM_WIN_HVSOCK_H

#include <winsock2.h>
#include <hvsocket.h>
#include <stddef.h>
#include <stdint.h>
#include "core/uri.h"

/* mingw-w64's headers define SOCKADDR_HV but not the family (ws2def.h of the Windows SDK does). */
#ifndef AF_HYPERV
#define AF_HYPERV 34
#endif

/* The default HVSOCKET_CONNECT_TIMEOUT when the caller gives none, as the system's own. */
#define HVSOCK_CONNECT_TIMEOUT_MS 10000u

/*
 * hvsock_addr() - the SOCKADDR_HV of an hvsock:// URI: its VmId (a VMID or
 * one of the well-known ids: wildcard, children, loopback, parent) and its
 * service id (given, or the vsock template "%08x-FACB-11E6-BD58-64006A7986D3"
 * with the port). struct guid keeps Windows' in-memory order, so both copy
 * as they are. Never blocks. Return: 0, or -EINVAL with a reason for a VM
 * given by name that hvsock_resolve() has not turned into its VMID yet.
 */
int hvsock_addr(const struct uri *u, SOCKADDR_HV *out, char *why, size_t whylen);
/*
 * hvsock_resolve() - for an hvsock:// URI naming its VM (hvsock://NAME:PORT),
 * looks the name up in Hyper-V's WMI namespace (platform/win/vmid.c) and
 * writes the VMID into u (vm, vm_is_guid); other URIs are left as they are.
 * Blocks, for up to timeout_ms (0: VMID_TIMEOUT_MS): for listening and the
 * blocking dial only; transport_dial() looks names up on a thread instead.
 * Return: 0, or a negative errno with a one-line reason (no VM by that name,
 * several, no Hyper-V namespace, access denied, timed out).
 */
int hvsock_resolve(struct uri *u, uint32_t timeout_ms, char *why, size_t whylen);
/* The HVSOCKET_CONNECT_TIMEOUT for a dial deadline: ms, 1..HVSOCKET_CONNECT_TIMEOUT_MAX. */
unsigned long hvsock_connect_timeout(uint32_t ms);
/*
 * A new overlapped, non-inherited AF_HYPERV stream socket with
 * HVSOCKET_CONNECTED_SUSPEND set where the build has it; 0 or a negative errno.
 */
int hvsock_socket(SOCKET *out);
/* Sets the connect timeout on s; returns 0 or a negative errno. */
int hvsock_set_connect_timeout(SOCKET s, uint32_t ms);

#endif
