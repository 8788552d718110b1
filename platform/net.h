/* TCP/IP sockets for the proxy: addresses, listening, dialing, and closing with or without RST. */
#ifndef VB_PLATFORM_NET_H
#define VB_PLATFORM_NET_H

/*
 * platform/linux/net.c and platform/win/net.c (Winsock) implement this;
 * the parts that need no OS (net_addr_parse, net_addr_unmap,
 * net_addr_equal) are core/net_addr.c, shared by both.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "platform/loop.h"

/*
 * An IP address and port as plain data, so that core and feature code can
 * carry, compare and log addresses without an OS header. IPv4 addresses use
 * the first 4 bytes of ip.
 */
enum net_family {
	NET_IPV4 = 4,
	NET_IPV6 = 6,
};

struct net_addr {
	uint8_t family; /* enum net_family; 0: none */
	uint16_t port;
	uint8_t ip[16];
};

#define NET_ADDR_STRLEN 56 /* "[ffff:...:255.255.255.255%scope]:65535" and a NUL */

/*
 * Parses an IP literal: "1.2.3.4", "::1", "[::1]" (no port). Returns 0, or
 * -EINVAL for anything else (names included).
 */
int net_addr_parse_ip(const char *s, struct net_addr *a);
/*
 * Parses "host:port" with host an IP literal ("[::1]:80" for IPv6, "*" for
 * any IPv4 address); returns 0 or -EINVAL.
 */
int net_addr_parse(const char *s, struct net_addr *a);
/* "1.2.3.4:80" or "[::1]:80" (with_port), or the address alone; always NUL-terminated. */
const char *net_addr_format(const struct net_addr *a, bool with_port, char buf[NET_ADDR_STRLEN]);
/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) becomes the IPv4 address it stands for. */
void net_addr_unmap(struct net_addr *a);
bool net_addr_equal(const struct net_addr *a, const struct net_addr *b);
/*
 * The addresses of this host's interfaces (in the caller's network
 * namespace), at most max of them into out. Returns how many, or a negative
 * errno.
 */
int net_host_addrs(struct net_addr *out, int max);
struct sockaddr;
struct sockaddr_storage;
/* Fills ss with a's family, address and port; returns the length the socket calls take. */
int net_sockaddr_from_addr(const struct net_addr *a, struct sockaddr_storage *ss);
/*
 * The address and port in sa, len bytes long; -EAFNOSUPPORT for another
 * family or a length too short for its own (platform/net_sockaddr.c).
 */
int net_addr_from_sockaddr(const struct sockaddr *sa, size_t len, struct net_addr *a);
/*
 * net_resolv_conf_parse() - the "nameserver" lines of a resolv.conf text
 * (changed in place), at most max of them into out, port 53; link-local
 * servers with a zone are left out. Returns how many (0: none).
 */
int net_resolv_conf_parse(char *text, struct net_addr *out, int max);
/*
 * net_nameservers() - this system's DNS servers, port 53, at most max: Linux
 * /etc/resolv.conf's; Windows those of the adapters that are up (a local
 * stub included on both). Return: how many (at least 1), or a negative errno
 * with a one-line reason (-ENOENT: none).
 */
int net_nameservers(struct net_addr *out, int max, char *why, size_t whylen);

/*
 * A non-blocking, close-on-exec (Windows: not inherited, overlapped) TCP
 * socket of a's family, with TCP_NODELAY.
 */
int net_tcp_socket(const struct net_addr *a, pl_fd *out);
/*
 * A non-blocking TCP listener on a (SO_REUSEADDR; on Windows
 * SO_EXCLUSIVEADDRUSE, see platform/win/net.c; an IPv6 listener takes IPv6
 * only). Returns 0, or a negative errno with a one-line reason.
 */
int net_tcp_listen(const struct net_addr *a, int backlog, pl_fd *out, char *why, size_t whylen);
/* Connects fd to a on loop l; cb gets 0 or a negative errno. */
int net_connect(struct loop *l, struct loop_req *r, pl_fd fd, const struct net_addr *a, loop_cb cb);
/* The socket's own address, or its peer's. */
int net_local_addr(pl_fd fd, struct net_addr *a);
int net_peer_addr(pl_fd fd, struct net_addr *a);
/* Ends the sending direction (FIN); the other still reads. */
int net_shutdown_write(pl_fd fd);
/* Closes fd; with reset, the peer gets an RST instead of a FIN (an aborted connection). */
void net_close(pl_fd fd, bool reset);
/* An accepted connection: TCP_NODELAY, as on the sockets net_tcp_socket() makes. */
void net_tcp_tune(pl_fd fd);
/*
 * A non-blocking, close-on-exec UDP socket bound to a (port 0: any free
 * port); an IPv6 socket takes IPv6 only. Returns 0 or a negative errno.
 */
int net_udp_socket(const struct net_addr *a, pl_fd *out);
/* One datagram, now: returns the bytes sent, or a negative errno (-EAGAIN: the buffer is full). */
int net_sendto(pl_fd fd, const void *buf, size_t len, const struct net_addr *to);
/* One datagram, now, and who sent it: its length, or a negative errno (-EAGAIN: none waiting). */
int net_recvfrom(pl_fd fd, void *buf, size_t cap, struct net_addr *from);
/*
 * The user that owns the other end of a TCP connection made on this host
 * (loopback), found with the kernel's socket diagnostics. Returns 0, or
 * -ENOENT when that end is not a socket of this network namespace.
 * Windows has no uids (users are SIDs): -EOPNOTSUPP, always.
 */
int net_peer_uid(pl_fd fd, uint32_t *uid);
/*
 * True when uid is root or a member of group (by name); false when the
 * group does not exist. Windows: always false. With net_peer_uid(), a front
 * limited to a group (proxy/front.h) refuses everyone there: it fails closed.
 */
bool net_uid_in_group(uint32_t uid, const char *group);
/*
 * net_peer_allowed() - may the owner of the other end of a TCP connection
 * made on this host (loopback) use a service limited to group?
 * Linux: its uid (net_peer_uid()) is root or in group (net_uid_in_group()).
 * Windows: its process (found in the TCP table, GetExtendedTcpTable) runs
 * as LocalSystem or with an enabled Administrators (elevated) or Hyper-V
 * Administrators group, or with the local group named group if one exists:
 * who may open the daemon's control pipe, and the operator's own grant.
 * Return: 0 when allowed; -EACCES when not, with the owner and why in why;
 * -EAGAIN when the owner is not known yet but may be soon (only under Wine,
 * whose TCP table names a socket's process after its first use): ask again
 * a little later, and refuse if it never is; another negative errno when the
 * owner cannot be found (fail closed: the caller refuses). why says which.
 * Never blocks: it runs on a loop's thread.
 */
int net_peer_allowed(pl_fd fd, const char *group, char *why, size_t whylen);
/* Sets the kernel's send and receive buffer sizes (0: leave as is). */
void net_set_buffers(pl_fd fd, int sndbuf, int rcvbuf);

#endif
