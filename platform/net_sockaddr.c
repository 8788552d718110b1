/* struct net_addr to and from the socket API's addresses: the same on Linux and Windows. */
#include <errno.h>
#include <string.h>
#include "platform/inet.h"
#include "platform/net.h"

/*
 * Both systems lay out sockaddr_in and sockaddr_in6 as RFC 3493 says, so
 * the conversions are written once here (a platform file shared by the ports,
 * calling only what both have).
 */

int net_sockaddr_from_addr(const struct net_addr *a, struct sockaddr_storage *ss)
{
	memset(ss, 0, sizeof(*ss));
	if (a->family == NET_IPV4) {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		sin->sin_family = AF_INET;
		sin->sin_port = htons(a->port);
		memcpy(&sin->sin_addr, a->ip, 4);
		return (int)sizeof(*sin);
	}
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	sin6->sin6_family = AF_INET6;
	sin6->sin6_port = htons(a->port);
	memcpy(&sin6->sin6_addr, a->ip, 16);
	return (int)sizeof(*sin6);
}

int net_addr_from_sockaddr(const struct sockaddr *sa, size_t len, struct net_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		a->family = NET_IPV4;
		a->port = ntohs(sin->sin_port);
		memcpy(a->ip, &sin->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;

		a->family = NET_IPV6;
		a->port = ntohs(sin6->sin6_port);
		memcpy(a->ip, &sin6->sin6_addr, 16);
		return 0;
	}
	return -EAFNOSUPPORT;
}
