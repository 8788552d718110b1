/* TCP/IP sockets for the proxy on Windows (Winsock 2): see platform/net.h. */
#include <winsock2.h>
#include <windows.h>
#include <iphlpapi.h>
#include <mswsock.h>
#include <ws2tcpip.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/why.h"
#include "platform/net.h"
#include "platform/sys.h"
#include "platform/win/acl.h"
#include "platform/win/err.h"
#include "platform/win/sys_internal.h"

/*
 * Every socket made here is overlapped (the IOCP loop drives it), not
 * inherited by child processes (the Windows twin of close-on-exec), and
 * non-blocking, so that the direct calls (sendto, recvfrom) never wait. The
 * parts of platform/net.h that need no OS are in core/net_addr.c.
 */

#define NET_HOST_ADDRS_BUF (16 * 1024) /* GetAdaptersAddresses' first try; it says when more */

/* Copies the unicast addresses of every adapter into out; returns how many. */
static int net_adapter_addrs(const IP_ADAPTER_ADDRESSES *list, struct net_addr *out, int max)
{
	int n = 0;

	for (const IP_ADAPTER_ADDRESSES *ad = list; ad && n < max; ad = ad->Next)
		for (const IP_ADAPTER_UNICAST_ADDRESS *u = ad->FirstUnicastAddress; u && n < max;
		     u = u->Next)
			if (!net_addr_from_sockaddr(u->Address.lpSockaddr,
						    (size_t)u->Address.iSockaddrLength, &out[n]))
				n++;
	return n;
}

/*
 * The adapters' list, in a buffer (the caller frees it) that grows as
 * GetAdaptersAddresses asks, which it may do again if adapters change
 * between two calls. Return: 0 (*out NULL when there is no adapter) or a
 * negative errno.
 */
static int net_adapters(ULONG flags, IP_ADAPTER_ADDRESSES **out)
{
	ULONG size = NET_HOST_ADDRS_BUF, e = ERROR_BUFFER_OVERFLOW;
	IP_ADAPTER_ADDRESSES *list = NULL;

	for (int tries = 0; tries < 4 && e == ERROR_BUFFER_OVERFLOW; tries++) {
		free(list);
		list = malloc(size);
		if (!list)
			return -ENOMEM;
		e = GetAdaptersAddresses(AF_UNSPEC, flags, NULL, list, &size);
	}
	if (e != NO_ERROR) {
		free(list);
		list = NULL;
	}
	*out = list;
	return e == NO_ERROR || e == ERROR_NO_DATA ? 0 : err_from_win(e);
}

/*
 * The unicast addresses of every adapter, the loopback pseudo-interface
 * included (as getifaddrs() lists lo on Linux).
 */
int net_host_addrs(struct net_addr *out, int max)
{
	const ULONG flags = GAA_FLAG_SKIP_ANYCAST | GAA_FLAG_SKIP_MULTICAST |
			    GAA_FLAG_SKIP_DNS_SERVER | GAA_FLAG_SKIP_FRIENDLY_NAME;
	IP_ADAPTER_ADDRESSES *list;
	int ret = net_adapters(flags, &list);

	if (ret == 0 && list)
		ret = net_adapter_addrs(list, out, max);
	free(list);
	return ret;
}

/* A DNS server worth asking: not fec0::/10 (Windows' placeholders), not link-local (a zone). */
static bool net_dns_usable(const struct net_addr *a)
{
	if (a->family != NET_IPV6)
		return a->family == NET_IPV4;
	return !(a->ip[0] == 0xfe && (a->ip[1] & 0xc0) == 0xc0) &&
	       !(a->ip[0] == 0xfe && (a->ip[1] & 0xc0) == 0x80);
}

/* Adds a to out (n so far) unless it is there already; returns the new count. */
static int net_dns_add(struct net_addr *out, int n, const struct net_addr *a)
{
	for (int i = 0; i < n; i++) {
		if (net_addr_equal(&out[i], a))
			return n;
	}
	out[n] = *a;
	return n + 1;
}

/* The DNS servers of the adapters that are up, in the system's order, each once. */
int net_nameservers(struct net_addr *out, int max, char *why, size_t whylen)
{
	const ULONG flags = GAA_FLAG_SKIP_ANYCAST | GAA_FLAG_SKIP_MULTICAST |
			    GAA_FLAG_SKIP_UNICAST | GAA_FLAG_SKIP_FRIENDLY_NAME;
	IP_ADAPTER_ADDRESSES *list;
	int n = 0, ret = net_adapters(flags, &list);

	if (ret < 0)
		return why_set(why, whylen, ret, "the adapters' DNS servers: %s",
			       sys_strerror(ret));
	for (const IP_ADAPTER_ADDRESSES *a = list; a && n < max; a = a->Next) {
		if (a->OperStatus != IfOperStatusUp)
			continue;
		for (const IP_ADAPTER_DNS_SERVER_ADDRESS *d = a->FirstDnsServerAddress;
		     d && n < max; d = d->Next) {
			struct net_addr x;

			if (!d->Address.lpSockaddr ||
			    net_addr_from_sockaddr(d->Address.lpSockaddr,
						   (size_t)d->Address.iSockaddrLength, &x) < 0 ||
			    !net_dns_usable(&x))
				continue;
			x.port = 53;
			n = net_dns_add(out, n, &x);
		}
	}
	free(list);
	if (!n)
		return why_set(why, whylen, -ENOENT, "no adapter that is up names a DNS server");
	return n;
}

/* An overlapped, non-inherited, non-blocking socket of a's family; returns 0 or a negative errno.
 */
static int net_socket(const struct net_addr *a, int type, int proto, SOCKET *out)
{
	u_long one = 1;
	SOCKET s;
	int ret;

	if (a->family != NET_IPV4 && a->family != NET_IPV6)
		return -EAFNOSUPPORT;
	ret = sys_wsa_start();
	if (ret)
		return ret;
	s = WSASocketW(a->family == NET_IPV4 ? AF_INET : AF_INET6, type, proto, NULL, 0,
		       WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
	if (s == INVALID_SOCKET)
		return err_wsa_last();
	if (ioctlsocket(s, FIONBIO, &one)) {
		ret = err_wsa_last();
		closesocket(s);
		return ret;
	}
	*out = s;
	return 0;
}

int net_tcp_socket(const struct net_addr *a, pl_fd *out)
{
	SOCKET s = INVALID_SOCKET;
	int ret = net_socket(a, SOCK_STREAM, IPPROTO_TCP, &s);

	if (ret)
		return ret;
	net_tcp_tune((pl_fd)s);
	*out = (pl_fd)s;
	return 0;
}

/*
 * SO_EXCLUSIVEADDRUSE, not SO_REUSEADDR: on Windows the latter lets another
 * socket bind the same port and take its connections, while rebinding a
 * port whose old connections linger is allowed anyway (what SO_REUSEADDR is
 * for on Linux).
 */
int net_tcp_listen(const struct net_addr *a, int backlog, pl_fd *out, char *why, size_t whylen)
{
	char text[NET_ADDR_STRLEN];
	SOCKADDR_STORAGE ss;
	int len = net_sockaddr_from_addr(a, &ss);
	DWORD one = 1;
	SOCKET s = INVALID_SOCKET;
	int ret;

	ret = net_socket(a, SOCK_STREAM, IPPROTO_TCP, &s);
	if (ret)
		goto out;
	setsockopt(s, SOL_SOCKET, SO_EXCLUSIVEADDRUSE, (const char *)&one, sizeof(one));
	if (a->family == NET_IPV6)
		setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&one, sizeof(one));
	if (bind(s, (struct sockaddr *)&ss, len) || listen(s, backlog)) {
		ret = err_wsa_last();
		closesocket(s);
		goto out;
	}
	*out = (pl_fd)s;
out:
	if (ret)
		snprintf(why, whylen, "listen on %s: %s", net_addr_format(a, true, text),
			 sys_strerror(ret));
	return ret;
}

int net_connect(struct loop *l, struct loop_req *r, pl_fd fd, const struct net_addr *a, loop_cb cb)
{
	SOCKADDR_STORAGE ss;
	int len = net_sockaddr_from_addr(a, &ss);

	return loop_connect(l, r, fd, &ss, (size_t)len, cb);
}

int net_local_addr(pl_fd fd, struct net_addr *a)
{
	SOCKADDR_STORAGE ss;
	int len = sizeof(ss);

	if (getsockname((SOCKET)fd, (struct sockaddr *)&ss, &len))
		return err_wsa_last();
	return net_addr_from_sockaddr((struct sockaddr *)&ss, sizeof(ss), a);
}

int net_peer_addr(pl_fd fd, struct net_addr *a)
{
	SOCKADDR_STORAGE ss;
	int len = sizeof(ss);

	if (getpeername((SOCKET)fd, (struct sockaddr *)&ss, &len))
		return err_wsa_last();
	return net_addr_from_sockaddr((struct sockaddr *)&ss, sizeof(ss), a);
}

int net_shutdown_write(pl_fd fd)
{
	return shutdown((SOCKET)fd, SD_SEND) ? err_wsa_last() : 0;
}

/* A linger of zero seconds makes closesocket() abort the connection with an RST. */
void net_close(pl_fd fd, bool reset)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	if (fd < 0) /* none; INVALID_SOCKET too, which is -1 as a pl_fd */
		return;
	if (reset)
		setsockopt((SOCKET)fd, SOL_SOCKET, SO_LINGER, (const char *)&lg, sizeof(lg));
	closesocket((SOCKET)fd);
}

void net_tcp_tune(pl_fd fd)
{
	DWORD one = 1;

	setsockopt((SOCKET)fd, IPPROTO_TCP, TCP_NODELAY, (const char *)&one, sizeof(one));
}

/*
 * A UDP socket: besides what net_socket() sets, SIO_UDP_CONNRESET off, since
 * by default an ICMP port-unreachable answering one sendto() fails the next
 * recvfrom() with WSAECONNRESET, which would stop a relay that serves many
 * destinations over one socket for one destination's sake.
 */
int net_udp_socket(const struct net_addr *a, pl_fd *out)
{
	SOCKADDR_STORAGE ss;
	int len = net_sockaddr_from_addr(a, &ss);
	BOOL off = FALSE;
	DWORD one = 1, got;
	SOCKET s = INVALID_SOCKET;
	int ret;

	ret = net_socket(a, SOCK_DGRAM, IPPROTO_UDP, &s);
	if (ret)
		return ret;
	if (a->family == NET_IPV6)
		setsockopt(s, IPPROTO_IPV6, IPV6_V6ONLY, (const char *)&one, sizeof(one));
	WSAIoctl(s, SIO_UDP_CONNRESET, &off, sizeof(off), NULL, 0, &got, NULL, NULL);
	if (bind(s, (struct sockaddr *)&ss, len)) {
		ret = err_wsa_last();
		closesocket(s);
		return ret;
	}
	*out = (pl_fd)s;
	return 0;
}

int net_sendto(pl_fd fd, const void *buf, size_t len, const struct net_addr *to)
{
	SOCKADDR_STORAGE ss;
	int sl = net_sockaddr_from_addr(to, &ss), n;

	if (len > INT_MAX)
		return -EMSGSIZE;
	n = sendto((SOCKET)fd, buf, (int)len, 0, (struct sockaddr *)&ss, sl);
	return n == SOCKET_ERROR ? err_wsa_last() : n;
}

/*
 * A datagram longer than cap fails with WSAEMSGSIZE after filling buf and
 * discarding the rest: -EMSGSIZE, as on Linux, where such a datagram is
 * dropped too (a relay must not pass half of one).
 */
int net_recvfrom(pl_fd fd, void *buf, size_t cap, struct net_addr *from)
{
	SOCKADDR_STORAGE ss;
	int sl = sizeof(ss), n;

	n = recvfrom((SOCKET)fd, buf, cap > INT_MAX ? INT_MAX : (int)cap, 0, (struct sockaddr *)&ss,
		     &sl);
	if (n == SOCKET_ERROR)
		return err_wsa_last();
	net_addr_from_sockaddr((struct sockaddr *)&ss, sizeof(ss), from);
	return n;
}

void net_set_buffers(pl_fd fd, int sndbuf, int rcvbuf)
{
	if (sndbuf > 0)
		setsockopt((SOCKET)fd, SOL_SOCKET, SO_SNDBUF, (const char *)&sndbuf,
			   sizeof(sndbuf));
	if (rcvbuf > 0)
		setsockopt((SOCKET)fd, SOL_SOCKET, SO_RCVBUF, (const char *)&rcvbuf,
			   sizeof(rcvbuf));
}

/*
 * Windows names users by SID, not by a number, and has no uid to report;
 * net_peer_allowed() below answers the question the uid was asked for.
 */
int net_peer_uid(pl_fd fd, uint32_t *uid)
{
	return -EOPNOTSUPP;
}

/* No uid exists on Windows (see net_peer_uid()): no uid is in any group. */
bool net_uid_in_group(uint32_t uid, const char *group)
{
	return false;
}

/* The TCP table of family (IPv4 or IPv6 connections, with their processes); the caller frees it. */
static void *net_tcp_table(ULONG family)
{
	DWORD size = 16 * 1024, e = ERROR_INSUFFICIENT_BUFFER;
	void *t = NULL;

	/* The table may grow between the calls: try again with the size it asked for. */
	for (int i = 0; i < 4 && e == ERROR_INSUFFICIENT_BUFFER; i++) {
		void *n = realloc(t, size);

		if (!n)
			break;
		t = n;
		e = GetExtendedTcpTable(t, &size, FALSE, family, TCP_TABLE_OWNER_PID_CONNECTIONS,
					0);
	}
	if (e != NO_ERROR) {
		free(t);
		t = NULL;
	}
	return t;
}

/*
 * The process that owns the other end of connection fd: the row whose local
 * end is our peer and whose remote end is us (the twin of sock_diag on
 * Linux). -ENOENT when no process of this system owns it.
 */
static int net_peer_pid(pl_fd fd, DWORD *pid)
{
	struct net_addr local, peer;
	int ret = -ENOENT;
	void *t;

	if (net_local_addr(fd, &local) || net_peer_addr(fd, &peer))
		return -ENOTCONN;
	t = net_tcp_table(local.family == NET_IPV4 ? AF_INET : AF_INET6);
	if (!t)
		return -ENOMEM;
	if (local.family == NET_IPV4) {
		const MIB_TCPTABLE_OWNER_PID *tt = t;

		for (DWORD i = 0; i < tt->dwNumEntries && ret; i++) {
			const MIB_TCPROW_OWNER_PID *row = &tt->table[i];

			if (!memcmp(&row->dwLocalAddr, peer.ip, 4) &&
			    ntohs((u_short)row->dwLocalPort) == peer.port &&
			    !memcmp(&row->dwRemoteAddr, local.ip, 4) &&
			    ntohs((u_short)row->dwRemotePort) == local.port) {
				*pid = row->dwOwningPid;
				ret = 0;
			}
		}
	} else {
		const MIB_TCP6TABLE_OWNER_PID *tt = t;

		for (DWORD i = 0; i < tt->dwNumEntries && ret; i++) {
			const MIB_TCP6ROW_OWNER_PID *row = &tt->table[i];

			if (!memcmp(row->ucLocalAddr, peer.ip, 16) &&
			    ntohs((u_short)row->dwLocalPort) == peer.port &&
			    !memcmp(row->ucRemoteAddr, local.ip, 16) &&
			    ntohs((u_short)row->dwRemotePort) == local.port) {
				*pid = row->dwOwningPid;
				ret = 0;
			}
		}
	}
	free(t);
	/* pid 0 is the idle process: a row whose owner the system could not tell. */
	return !ret && *pid == 0 ? -ENOENT : ret;
}

/* True under Wine (its ntdll exports wine_get_version); asked once, then remembered. */
static bool net_under_wine(void)
{
	static int wine = -1; /* a race only computes the same answer twice */
	int w = __atomic_load_n(&wine, __ATOMIC_RELAXED);

	if (w < 0) {
		HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");

		w = ntdll && GetProcAddress(ntdll, "wine_get_version") ? 1 : 0;
		__atomic_store_n(&wine, w, __ATOMIC_RELAXED);
	}
	return w == 1;
}

/*
 * Windows knows every loopback connection's process at once: a missing
 * owner is final, and the connection is refused now. Wine does not always:
 * its sockets are made in wineserver, and the table names a process only
 * once that process holds the socket's Unix descriptor, which it fetches on
 * its first send or receive, a moment after connecting. So under Wine, and
 * only there, a missing owner is -EAGAIN: the caller looks again a little
 * later (proxy/front.c does, on a loop timer; this function never waits, as
 * it runs on the loop's thread).
 */
int net_peer_allowed(pl_fd fd, const char *group, char *why, size_t whylen)
{
	DWORD pid = 0;
	int ret = net_peer_pid(fd, &pid);

	if (ret) {
		snprintf(why, whylen, "its owner is unknown (%s)",
			 ret == -ENOENT ? "no process of this system has that connection"
					: sys_strerror(ret));
		return ret == -ENOENT && net_under_wine() ? -EAGAIN : ret;
	}
	return acl_process_trusted(pid, group, why, whylen);
}
