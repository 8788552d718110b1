/* TCP/IP sockets for the proxy on Linux: see platform/net.h. */
#include <arpa/inet.h>
#include <grp.h>
#include <libmnl/libmnl.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>
#include <pwd.h>
#include <errno.h>
#include <ifaddrs.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "platform/net.h"
#include "core/why.h"
#include "platform/sys.h"

int net_host_addrs(struct net_addr *out, int max)
{
	struct ifaddrs *list, *ifa;
	int n = 0;

	if (getifaddrs(&list))
		return -errno;
	for (ifa = list; ifa && n < max; ifa = ifa->ifa_next) {
		const struct sockaddr *sa = ifa->ifa_addr;

		/* getifaddrs gives each address in its own family's full sockaddr. */
		if (sa && !net_addr_from_sockaddr(sa, sizeof(struct sockaddr_storage), &out[n]))
			n++;
	}
	freeifaddrs(list);
	return n;
}

int net_nameservers(struct net_addr *out, int max, char *why, size_t whylen)
{
	static const char path[] = "/etc/resolv.conf";
	char *text = NULL;
	size_t len;
	int ret = sys_read_file(path, 1u << 16, &text, &len);

	if (ret)
		return why_set(why, whylen, ret, "%s: %s", path, strerror(-ret));
	ret = net_resolv_conf_parse(text, out, max);
	free(text);
	if (!ret)
		return why_set(why, whylen, -ENOENT, "%s names no nameserver", path);
	return ret;
}

int net_tcp_socket(const struct net_addr *a, pl_fd *out)
{
	int one = 1;
	int fd;

	if (a->family != NET_IPV4 && a->family != NET_IPV6)
		return -EAFNOSUPPORT;
	fd = socket(a->family == NET_IPV4 ? AF_INET : AF_INET6,
		    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	*out = fd;
	return 0;
}

int net_tcp_listen(const struct net_addr *a, int backlog, pl_fd *out, char *why, size_t whylen)
{
	char text[NET_ADDR_STRLEN];
	struct sockaddr_storage ss;
	socklen_t len = (socklen_t)net_sockaddr_from_addr(a, &ss);
	int one = 1;
	pl_fd fd = -1;
	int ret;

	ret = net_tcp_socket(a, &fd);
	if (ret)
		goto out;
	setsockopt((int)fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a->family == NET_IPV6)
		setsockopt((int)fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind((int)fd, (struct sockaddr *)&ss, len) || listen((int)fd, backlog)) {
		ret = -errno;
		close((int)fd);
		goto out;
	}
	*out = fd;
out:
	if (ret)
		snprintf(why, whylen, "listen on %s: %s", net_addr_format(a, true, text),
			 strerror(-ret));
	return ret;
}

int net_connect(struct loop *l, struct loop_req *r, pl_fd fd, const struct net_addr *a, loop_cb cb)
{
	struct sockaddr_storage ss;
	socklen_t len = (socklen_t)net_sockaddr_from_addr(a, &ss);

	return loop_connect(l, r, fd, &ss, len, cb);
}

int net_local_addr(pl_fd fd, struct net_addr *a)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname((int)fd, (struct sockaddr *)&ss, &len))
		return -errno;
	return net_addr_from_sockaddr((struct sockaddr *)&ss, sizeof(ss), a);
}

int net_peer_addr(pl_fd fd, struct net_addr *a)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getpeername((int)fd, (struct sockaddr *)&ss, &len))
		return -errno;
	return net_addr_from_sockaddr((struct sockaddr *)&ss, sizeof(ss), a);
}

int net_shutdown_write(pl_fd fd)
{
	return shutdown((int)fd, SHUT_WR) ? -errno : 0;
}

void net_close(pl_fd fd, bool reset)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};

	if (fd < 0)
		return;
	if (reset)
		setsockopt((int)fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close((int)fd);
}

int net_udp_socket(const struct net_addr *a, pl_fd *out)
{
	struct sockaddr_storage ss;
	socklen_t len = (socklen_t)net_sockaddr_from_addr(a, &ss);
	int one = 1, fd, ret;

	if (a->family != NET_IPV4 && a->family != NET_IPV6)
		return -EAFNOSUPPORT;
	fd = socket(a->family == NET_IPV4 ? AF_INET : AF_INET6,
		    SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
	if (fd < 0)
		return -errno;
	if (a->family == NET_IPV6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	*out = fd;
	return 0;
}

int net_sendto(pl_fd fd, const void *buf, size_t len, const struct net_addr *to)
{
	struct sockaddr_storage ss;
	socklen_t sl = (socklen_t)net_sockaddr_from_addr(to, &ss);
	ssize_t n = sendto((int)fd, buf, len, MSG_DONTWAIT, (struct sockaddr *)&ss, sl);

	return n < 0 ? -errno : (int)n;
}

int net_recvfrom(pl_fd fd, void *buf, size_t cap, struct net_addr *from)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	ssize_t n =
	    recvfrom((int)fd, buf, cap, MSG_DONTWAIT | MSG_TRUNC, (struct sockaddr *)&ss, &sl);

	if (n < 0)
		return -errno;
	if ((size_t)n > cap)
		return -EMSGSIZE; /* truncated: dropped, as a relay must not pass half a datagram */
	net_addr_from_sockaddr((struct sockaddr *)&ss, sizeof(ss), from);
	return (int)n;
}

void net_tcp_tune(pl_fd fd)
{
	int one = 1;

	setsockopt((int)fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

void net_set_buffers(pl_fd fd, int sndbuf, int rcvbuf)
{
	if (sndbuf > 0)
		setsockopt((int)fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	if (rcvbuf > 0)
		setsockopt((int)fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
}

/* The answer to a sock_diag request: the uid of the one socket asked for. */
static int net_diag_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct inet_diag_msg *m = mnl_nlmsg_get_payload(nlh);

	if (nlh->nlmsg_type != SOCK_DIAG_BY_FAMILY || mnl_nlmsg_get_payload_len(nlh) < sizeof(*m))
		return MNL_CB_OK;
	*(int64_t *)data = m->idiag_uid;
	return MNL_CB_OK;
}

int net_peer_uid(pl_fd fd, uint32_t *uid)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct net_addr local, peer;
	struct inet_diag_req_v2 *req;
	struct mnl_socket *nl;
	struct nlmsghdr *nlh;
	int64_t found = -1;
	size_t alen;
	int ret;

	if (net_local_addr(fd, &local) || net_peer_addr(fd, &peer))
		return -ENOTCONN;
	alen = local.family == NET_IPV4 ? 4 : 16;
	nl = mnl_socket_open(NETLINK_SOCK_DIAG);
	if (!nl)
		return -errno;
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = SOCK_DIAG_BY_FAMILY;
	nlh->nlmsg_flags = NLM_F_REQUEST;
	nlh->nlmsg_seq = 1;
	req = mnl_nlmsg_put_extra_header(nlh, sizeof(*req));
	req->sdiag_family = local.family == NET_IPV4 ? AF_INET : AF_INET6;
	req->sdiag_protocol = IPPROTO_TCP;
	req->idiag_states = ~0u;
	/* The other end's socket: its source is our peer, its destination us. */
	req->id.idiag_sport = htons(peer.port);
	req->id.idiag_dport = htons(local.port);
	memcpy(req->id.idiag_src, peer.ip, alen);
	memcpy(req->id.idiag_dst, local.ip, alen);
	req->id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
	req->id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
	ret = mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) ? -errno : 0;
	if (!ret && mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		ret = -errno;
	while (!ret) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));

		if (n < 0) {
			ret = -errno;
			break;
		}
		ret = mnl_cb_run(buf, (size_t)n, 1, mnl_socket_get_portid(nl), net_diag_cb, &found);
		if (ret <= MNL_CB_STOP) {
			ret = ret < 0 ? -errno : 0;
			break;
		}
		ret = 0;
		if (found >= 0)
			break;
	}
	mnl_socket_close(nl);
	if (ret == -ENOENT || (!ret && found < 0))
		return -ENOENT;
	if (!ret)
		*uid = (uint32_t)found;
	return ret;
}

bool net_uid_in_group(uint32_t uid, const char *group)
{
	struct group *gr = getgrnam(group);
	struct passwd *pw;
	gid_t groups[256];
	int n = 256;

	if (uid == 0)
		return true;
	pw = getpwuid(uid);
	if (!gr || !pw)
		return false;
	if (getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
		return false;
	for (int i = 0; i < n; i++)
		if (groups[i] == gr->gr_gid)
			return true;
	return false;
}

int net_peer_allowed(pl_fd fd, const char *group, char *why, size_t whylen)
{
	uint32_t uid;
	int ret = net_peer_uid(fd, &uid);

	if (ret)
		snprintf(why, whylen, "its owner is unknown (%s)", strerror(-ret));
	else if (!net_uid_in_group(uid, group))
		ret =
		    why_set(why, whylen, -EACCES, "uid %u is not root nor in group %s", uid, group);
	return ret;
}
