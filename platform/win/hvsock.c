/* Hyper-V sockets: SOCKADDR_HV from hvsock:// URIs, the socket and its connect timeout. */
#include <winsock2.h>
#include <windows.h>
#include <errno.h>
#include <string.h>
#include "core/why.h"
#include "platform/win/err.h"
#include "platform/win/hvsock.h"
#include "platform/win/vmid.h"

_Static_assert(sizeof(GUID) == sizeof(struct guid), "struct guid differs from GUID");
_Static_assert(sizeof(SOCKADDR_HV) == 36, "SOCKADDR_HV is not 36 bytes");

int hvsock_addr(const struct uri *u, SOCKADDR_HV *out, char *why, size_t whylen)
{
	memset(out, 0, sizeof(*out));
	if (u->kind != URI_HVSOCK) {
		why_set(why, whylen, 0, "not an hvsock:// address");
		return -EINVAL;
	}
	if (!u->vm_is_guid) {
		/* A caller's mistake: hvsock_resolve() comes first. */
		why_set(why, whylen, 0, "hvsock VM name '%s' was not resolved to a VMID", u->host);
		return -EINVAL;
	}
	out->Family = AF_HYPERV;
	memcpy(&out->VmId, u->vm.b, sizeof(out->VmId));
	memcpy(&out->ServiceId, u->service.b, sizeof(out->ServiceId));
	return 0;
}

int hvsock_resolve(struct uri *u, uint32_t timeout_ms, char *why, size_t whylen)
{
	int r;

	if (u->kind != URI_HVSOCK || u->vm_is_guid)
		return 0;
	r = vmid_resolve(u->host, timeout_ms, &u->vm, why, whylen);
	if (!r)
		u->vm_is_guid = true;
	return r;
}

unsigned long hvsock_connect_timeout(uint32_t ms)
{
	if (!ms)
		return HVSOCK_CONNECT_TIMEOUT_MS;
	return ms < HVSOCKET_CONNECT_TIMEOUT_MAX ? ms : HVSOCKET_CONNECT_TIMEOUT_MAX;
}

/*
 * HVSOCKET_CONNECTED_SUSPEND keeps a connection across a pause or save of
 * the VM, so that a session outlives it; builds without the option refuse
 * it, and the socket is still good, so the setting is best effort.
 */
int hvsock_socket(SOCKET *out)
{
	ULONG on = 1;

	*out = WSASocketW(AF_HYPERV, SOCK_STREAM, HV_PROTOCOL_RAW, NULL, 0,
			  WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
	if (*out == INVALID_SOCKET)
		return err_wsa_last();
	setsockopt(*out, HV_PROTOCOL_RAW, HVSOCKET_CONNECTED_SUSPEND, (const char *)&on,
		   sizeof(on));
	return 0;
}

int hvsock_set_connect_timeout(SOCKET s, uint32_t ms)
{
	ULONG t = hvsock_connect_timeout(ms);

	if (setsockopt(s, HV_PROTOCOL_RAW, HVSOCKET_CONNECT_TIMEOUT, (const char *)&t, sizeof(t)))
		return err_wsa_last();
	return 0;
}
