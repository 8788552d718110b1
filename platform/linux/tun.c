/* TUN devices on Linux with IFF_VNET_HDR and the checksum and segmentation offloads: see
 * platform/tun.h. */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include "platform/tun.h"

/* Linux 6.2 added UDP segmentation offload to TUN; older headers lack the flags. */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

_Static_assert(sizeof(struct virtio_net_hdr_v1) == TUN_HDR_LEN, "TUN_HDR_LEN is virtio_net_hdr_v1");

/* The kernel's TUN_F_* flags for a set of enum tun_offload. */
static unsigned tun_kernel_flags(unsigned offloads)
{
	unsigned f = 0;

	f |= offloads & TUN_OFFLOAD_CSUM ? TUN_F_CSUM : 0;
	f |= offloads & TUN_OFFLOAD_TSO4 ? TUN_F_TSO4 : 0;
	f |= offloads & TUN_OFFLOAD_TSO6 ? TUN_F_TSO6 : 0;
	f |= offloads & TUN_OFFLOAD_TSO_ECN ? TUN_F_TSO_ECN : 0;
	f |= offloads & TUN_OFFLOAD_USO4 ? TUN_F_USO4 : 0;
	f |= offloads & TUN_OFFLOAD_USO6 ? TUN_F_USO6 : 0;
	return f;
}

/*
 * The subset of offloads the kernel can take together: everything rests on
 * CSUM, ECN on TSO, and the kernel enables USO for IPv4 and IPv6 together
 * or not at all.
 */
static unsigned tun_offloads_coherent(unsigned offloads)
{
	if (!(offloads & TUN_OFFLOAD_CSUM))
		return 0;
	if (!(offloads & (TUN_OFFLOAD_TSO4 | TUN_OFFLOAD_TSO6)))
		offloads &= ~(unsigned)TUN_OFFLOAD_TSO_ECN;
	if ((offloads & (TUN_OFFLOAD_USO4 | TUN_OFFLOAD_USO6)) !=
	    (TUN_OFFLOAD_USO4 | TUN_OFFLOAD_USO6))
		offloads &= ~(unsigned)(TUN_OFFLOAD_USO4 | TUN_OFFLOAD_USO6);
	return offloads & TUN_OFFLOAD_ALL;
}

/*
 * Sets the offloads, leaving out USO where the kernel predates it (it
 * refuses flags it does not know with EINVAL). Returns what was taken, or a
 * negative errno.
 */
static int tun_set_offloads(int fd, unsigned offloads)
{
	const unsigned uso = TUN_OFFLOAD_USO4 | TUN_OFFLOAD_USO6;

	offloads = tun_offloads_coherent(offloads);
	if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)tun_kernel_flags(offloads)) == 0)
		return (int)offloads;
	if (errno != EINVAL || !(offloads & uso))
		return -errno;
	offloads &= ~uso;
	if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)tun_kernel_flags(offloads)) == 0)
		return (int)offloads;
	return -errno;
}

/*
 * Little-endian headers everywhere (virtio 1.0). Little-endian machines
 * have them already, so only a big-endian one needs the kernel to agree.
 */
static int tun_set_little_endian(int fd)
{
	int le = 1;

	if (ioctl(fd, TUNSETVNETLE, &le) == 0)
		return 0;
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	return -errno;
#else
	return 0;
#endif
}

/* Sets the header size, the byte order and the offloads of a freshly attached device. */
static int tun_setup(struct tun *t, int fd, unsigned offloads, char *why, size_t whylen)
{
	int hdr_len = TUN_HDR_LEN;
	int ret;

	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0) {
		ret = -errno;
		snprintf(why, whylen, "TUNSETVNETHDRSZ %d: %s", hdr_len, strerror(-ret));
		return ret;
	}
	ret = tun_set_little_endian(fd);
	if (ret < 0) {
		snprintf(why, whylen, "little-endian offload headers: %s", strerror(-ret));
		return ret;
	}
	ret = tun_set_offloads(fd, offloads);
	if (ret < 0) {
		snprintf(why, whylen, "TUNSETOFFLOAD: %s", strerror(-ret));
		return ret;
	}
	t->offloads = (unsigned)ret;
	t->ifindex = (int)if_nametoindex(t->name);
	if (t->ifindex == 0) {
		ret = -errno;
		snprintf(why, whylen, "%s: no index: %s", t->name, strerror(-ret));
		return ret;
	}
	return 0;
}

int tun_open(struct tun *t, const char *name, unsigned offloads, char *why, size_t whylen)
{
	struct ifreq ifr;
	int fd, ret;

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	if (name && strlen(name) >= TUN_NAME_MAX) {
		snprintf(why, whylen, "TUN name '%s' is longer than %d bytes", name,
			 TUN_NAME_MAX - 1);
		return -EINVAL;
	}
	fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(why, whylen, "/dev/net/tun: %s", strerror(-ret));
		return ret;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = (short)(IFF_TUN | IFF_NO_PI | IFF_VNET_HDR | IFF_TUN_EXCL);
	if (name)
		memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		ret = -errno;
		snprintf(why, whylen, "TUN %s: %s", name && *name ? name : "(any)",
			 ret == -EBUSY ? "a device of that name exists" : strerror(-ret));
		goto fail;
	}
	memcpy(t->name, ifr.ifr_name, sizeof(t->name));
	t->name[TUN_NAME_MAX - 1] = '\0';
	ret = tun_setup(t, fd, offloads, why, whylen);
	if (ret < 0)
		goto fail;
	t->fd = fd;
	return 0;
fail:
	close(fd);
	return ret;
}

int tun_set_mtu(const struct tun *t, unsigned mtu)
{
	struct ifreq ifr;
	int s, ret = 0;

	if (mtu < 68 || mtu > 65535)
		return -EINVAL;
	s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, t->name, sizeof(ifr.ifr_name));
	ifr.ifr_mtu = (int)mtu;
	if (ioctl(s, SIOCSIFMTU, &ifr) < 0)
		ret = -errno;
	close(s);
	return ret;
}

void tun_close(struct tun *t)
{
	if (t->fd >= 0)
		close((int)t->fd);
	t->fd = -1;
	t->ifindex = 0;
}
