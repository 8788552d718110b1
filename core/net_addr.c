/* The portable half of platform/net.h: IP literals, "host:port", IPv4-mapped addresses, comparison.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "platform/inet.h"
#include "platform/net.h"

/*
 * platform/linux/net.c and platform/win/net.c implement the rest of
 * platform/net.h (sockets); what both systems can do alike is written once,
 * here, as libuv keeps its portable code in uv-common.c. IP literals go
 * through inet_pton and inet_ntop, which both have (platform/inet.h).
 */

#define NET_ADDR_HOST_MAX 48 /* the longest IPv6 literal (45) in brackets, and a NUL */

static const uint8_t net_addr_v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* A decimal port, 0 to 65535, digits only; returns 0 or -EINVAL. */
static int net_addr_port_parse(const char *s, uint16_t *port)
{
	char *end;
	unsigned long v;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int net_addr_parse(const char *s, struct net_addr *a)
{
	char host[NET_ADDR_HOST_MAX];
	const char *colon = strrchr(s, ':');
	uint16_t port;
	size_t n;

	if (!colon || net_addr_port_parse(colon + 1, &port))
		return -EINVAL;
	n = (size_t)(colon - s);
	if (n == 0 || n >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, n);
	host[n] = '\0';
	if (strcmp(host, "*") == 0) {
		memset(a, 0, sizeof(*a));
		a->family = NET_IPV4;
	} else if (host[0] != '[' && strchr(host, ':')) {
		return -EINVAL; /* IPv6 needs brackets when a port follows */
	} else if (net_addr_parse_ip(host, a)) {
		return -EINVAL;
	}
	a->port = port;
	return 0;
}

void net_addr_unmap(struct net_addr *a)
{
	if (a->family != NET_IPV6 ||
	    memcmp(a->ip, net_addr_v4mapped, sizeof(net_addr_v4mapped)) != 0)
		return;
	memmove(a->ip, a->ip + 12, 4);
	memset(a->ip + 4, 0, 12);
	a->family = NET_IPV4;
}

bool net_addr_equal(const struct net_addr *a, const struct net_addr *b)
{
	size_t n = a->family == NET_IPV4 ? 4 : 16;

	return a->family == b->family && a->port == b->port && memcmp(a->ip, b->ip, n) == 0;
}

int net_addr_parse_ip(const char *s, struct net_addr *a)
{
	char buf[INET6_ADDRSTRLEN + 2];
	size_t n = strlen(s);

	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, s, a->ip) == 1) {
		a->family = NET_IPV4;
		return 0;
	}
	if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
		if (n - 2 >= sizeof(buf))
			return -EINVAL;
		memcpy(buf, s + 1, n - 2);
		buf[n - 2] = '\0';
		s = buf;
	}
	if (inet_pton(AF_INET6, s, a->ip) == 1) {
		a->family = NET_IPV6;
		return 0;
	}
	return -EINVAL;
}

const char *net_addr_format(const struct net_addr *a, bool with_port, char buf[NET_ADDR_STRLEN])
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (a->family == NET_IPV4)
		inet_ntop(AF_INET, a->ip, ip, sizeof(ip));
	else if (a->family == NET_IPV6)
		inet_ntop(AF_INET6, a->ip, ip, sizeof(ip));
	if (!with_port)
		snprintf(buf, NET_ADDR_STRLEN, "%s", ip);
	else if (a->family == NET_IPV6)
		snprintf(buf, NET_ADDR_STRLEN, "[%s]:%u", ip, a->port);
	else
		snprintf(buf, NET_ADDR_STRLEN, "%s:%u", ip, a->port);
	return buf;
}

int net_resolv_conf_parse(char *text, struct net_addr *out, int max)
{
	char *save = NULL;
	int n = 0;

	for (char *l = strtok_r(text, "\n", &save); l && n < max; l = strtok_r(NULL, "\n", &save)) {
		char ip[64];

		if (sscanf(l, " nameserver %63s", ip) != 1)
			continue;
		if (strchr(ip, '%') || net_addr_parse_ip(ip, &out[n])) /* a zone: link-local */
			continue;
		out[n++].port = 53;
	}
	return n;
}
