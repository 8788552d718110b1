/*
 * Private network namespaces for the tests that configure the network for
 * real (test_tun, test_netcfg, test_nat), and the packets they build.
 *
 * Every such test first moves its thread into a new, empty network
 * namespace and checks that it is no longer in the one the program started
 * in; nothing is ever configured in the machine's own namespace. A
 * namespace goes away with the last descriptor that holds it, so a test
 * that fails half way leaves nothing behind once the program exits.
 */
#ifndef VB_TESTS_NSTEST_H
#define VB_TESTS_NSTEST_H

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <libmnl/libmnl.h>
#include <linux/if_tun.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>

/* The namespace the program started in: never to be configured. */
static dev_t nstest_machine_dev;
static ino_t nstest_machine_ino;

/*
 * nstest_probe() - can this machine give us namespaces with TUN devices?
 *
 * Tries in a child (unshare, then a TUN device) so the program itself stays
 * where it is. Returns 0, or 77 after printing why the tests are skipped.
 */
static inline int nstest_probe(const char *prog)
{
	static const char *const why[] = {
	    "",
	    "cannot make a network namespace (needs root or CAP_SYS_ADMIN)",
	    "no /dev/net/tun",
	    "cannot make a TUN device (needs CAP_NET_ADMIN)",
	};
	struct stat st;
	int status;
	pid_t pid;

	if (stat("/proc/self/ns/net", &st) < 0) {
		printf("SKIP: %s: no /proc/self/ns/net\n", prog);
		return 77;
	}
	nstest_machine_dev = st.st_dev;
	nstest_machine_ino = st.st_ino;
	pid = fork();
	if (pid == 0) {
		struct ifreq ifr = {.ifr_flags = IFF_TUN | IFF_NO_PI};
		int fd;

		if (unshare(CLONE_NEWNET) < 0)
			_exit(1);
		fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
		if (fd < 0)
			_exit(2);
		if (ioctl(fd, TUNSETIFF, &ifr) < 0)
			_exit(3);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) > 3) {
		printf("SKIP: %s: the namespace probe failed\n", prog);
		return 77;
	}
	if (WEXITSTATUS(status) != 0) {
		printf("SKIP: %s: %s\n", prog, why[WEXITSTATUS(status)]);
		return 77;
	}
	return 0;
}

/* True when the calling thread is still in the machine's own namespace. */
static inline bool nstest_in_machine_ns(void)
{
	struct stat st;

	if (stat("/proc/thread-self/ns/net", &st) < 0)
		return true; /* cannot tell: assume the worst */
	return st.st_dev == nstest_machine_dev && st.st_ino == nstest_machine_ino;
}

/* Brings up lo in the current namespace. */
static inline int nstest_lo_up(void)
{
	struct ifreq ifr;
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), ret = 0;

	if (s < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "lo");
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		ret = -errno;
	ifr.ifr_flags |= IFF_UP;
	if (!ret && ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		ret = -errno;
	close(s);
	return ret;
}

/*
 * nstest_enter_new_ns() - moves the calling thread into a new network
 * namespace with lo up. Aborts the program, rather than run a test, when
 * the thread would still be in the machine's namespace.
 */
static inline int nstest_enter_new_ns(void)
{
	if (unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return -errno;
	}
	if (nstest_in_machine_ns()) {
		fprintf(stderr, "still in the machine's network namespace: stopping\n");
		abort();
	}
	return nstest_lo_up();
}

/* A cmocka setup: each test in a namespace of its own. */
static inline int nstest_setup(void **state)
{
	return nstest_enter_new_ns() < 0 ? -1 : 0;
}

/* Reads a /proc/sys value without its newline ("" when unreadable). */
static inline const char *nstest_sysctl(const char *path)
{
	static char buf[32];
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	buf[0] = '\0';
	if (fd < 0)
		return buf;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return buf;
}

static inline int nstest_sysctl_set(const char *path, const char *value)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC), ret = 0;

	if (nstest_in_machine_ns())
		abort();
	if (fd < 0)
		return -errno;
	if (write(fd, value, strlen(value)) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

/*
 * nstest_veth_add() - a veth pair: name here, peer here (peer_pid 0) or in
 * the network namespace of process peer_pid. Returns 0 or a negative errno.
 */
static inline int nstest_veth_add(const char *name, const char *peer, pid_t peer_pid)
{
	char buf[4096];
	struct mnl_socket *nl;
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct ifinfomsg *ifi, *pifi;
	struct nlattr *info, *data, *pinfo;
	uint32_t seq = 1, portid;
	ssize_t n;
	int ret;

	if (nstest_in_machine_ns())
		abort();
	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	info = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	pinfo = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	pifi = (struct ifinfomsg *)((char *)nlh + nlh->nlmsg_len);
	memset(pifi, 0, MNL_ALIGN(sizeof(*pifi)));
	nlh->nlmsg_len += MNL_ALIGN(sizeof(*pifi));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
	if (peer_pid)
		mnl_attr_put_u32(nlh, IFLA_NET_NS_PID, (uint32_t)peer_pid);
	mnl_attr_nest_end(nlh, pinfo);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, info);

	nl = mnl_socket_open(NETLINK_ROUTE);
	if (!nl)
		return -errno;
	ret = mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID);
	portid = mnl_socket_get_portid(nl);
	if (ret == 0 && mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		ret = -1;
	if (ret == 0) {
		n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		ret = n < 0 ? -1 : mnl_cb_run(buf, (size_t)n, seq, portid, NULL, NULL);
	}
	ret = ret < 0 ? -errno : 0;
	mnl_socket_close(nl);
	return ret;
}

/* --- packets --- */

static inline uint32_t nstest_sum(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;

	for (; len > 1; p += 2, len -= 2)
		sum += (uint32_t)(p[0] << 8 | p[1]);
	if (len)
		sum += (uint32_t)(p[0] << 8);
	return sum;
}

static inline uint16_t nstest_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

static inline void nstest_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline uint16_t nstest_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t nstest_get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void nstest_put32(uint8_t *p, uint32_t v)
{
	nstest_put16(p, (uint16_t)(v >> 16));
	nstest_put16(p + 2, (uint16_t)v);
}

/*
 * The sum of the pseudo-header of an IPv4 or IPv6 packet: alen 4 or 16,
 * the addresses, protocol and the transport length.
 */
static inline uint32_t nstest_pseudo(const uint8_t *src, const uint8_t *dst, size_t alen,
				     uint8_t proto, size_t len)
{
	uint32_t sum = nstest_sum(0, src, alen);

	sum = nstest_sum(sum, dst, alen);
	return sum + proto + (uint32_t)(len >> 16) + (uint32_t)(len & 0xffff);
}

/*
 * nstest_ip_header() - writes an IPv4 (alen 4, 20 bytes) or IPv6 (alen 16,
 * 40 bytes) header for a transport of tlen bytes; returns its length.
 */
static inline size_t nstest_ip_header(uint8_t *p, const uint8_t *src, const uint8_t *dst,
				      size_t alen, uint8_t proto, size_t tlen)
{
	if (alen == 4) {
		memset(p, 0, 20);
		p[0] = 0x45;
		nstest_put16(p + 2, (uint16_t)(20 + tlen));
		nstest_put16(p + 4, 0x1234);
		p[6] = 0x40; /* DF */
		p[8] = 64;
		p[9] = proto;
		memcpy(p + 12, src, 4);
		memcpy(p + 16, dst, 4);
		nstest_put16(p + 10, (uint16_t)~nstest_fold(nstest_sum(0, p, 20)));
		return 20;
	}
	memset(p, 0, 40);
	p[0] = 0x60;
	nstest_put16(p + 4, (uint16_t)tlen);
	p[6] = proto;
	p[7] = 64;
	memcpy(p + 8, src, 16);
	memcpy(p + 24, dst, 16);
	return 40;
}

/*
 * nstest_udp() - a whole UDP packet with correct checksums into p; returns
 * its length.
 */
static inline size_t nstest_udp(uint8_t *p, const uint8_t *src, const uint8_t *dst, size_t alen,
				uint16_t sport, uint16_t dport, const void *data, size_t len)
{
	size_t ip = nstest_ip_header(p, src, dst, alen, IPPROTO_UDP, 8 + len);
	uint8_t *u = p + ip;
	uint16_t sum;

	nstest_put16(u, sport);
	nstest_put16(u + 2, dport);
	nstest_put16(u + 4, (uint16_t)(8 + len));
	nstest_put16(u + 6, 0);
	memcpy(u + 8, data, len);
	sum = (uint16_t)~nstest_fold(
	    nstest_sum(nstest_pseudo(src, dst, alen, IPPROTO_UDP, 8 + len), u, 8 + len));
	nstest_put16(u + 6, sum ? sum : 0xffff);
	return ip + 8 + len;
}

#endif
