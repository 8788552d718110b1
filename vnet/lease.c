/* vnet leases: a small table in memory, saved whole (atomically) on every change. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vnet/lease.h"
#include "platform/net.h"
#include "platform/sys.h"

#define VNET_LEASE_FILE_MAX (1u << 20)

static int vnet_net_parse(const char *s, int family, uint8_t *net, uint8_t *prefix, int lo, int hi,
			  char *why, size_t whylen)
{
	char buf[64];
	const char *slash = strchr(s, '/');
	size_t alen = family == NET_IPV4 ? 4 : 16;
	struct net_addr a;
	char *end;
	long p;

	if (!slash || (size_t)(slash - s) >= sizeof(buf))
		goto bad;
	memcpy(buf, s, (size_t)(slash - s));
	buf[slash - s] = '\0';
	p = strtol(slash + 1, &end, 10);
	if (*end || p < lo || p > hi || net_addr_parse_ip(buf, &a) || a.family != family)
		goto bad;
	memcpy(net, a.ip, alen);
	for (size_t bit = (size_t)p; bit < alen * 8; bit++) {
		if (net[bit / 8] & (0x80 >> (bit % 8))) {
			snprintf(why, whylen, "%s has host bits set", s);
			return -EINVAL;
		}
	}
	*prefix = (uint8_t)p;
	return 0;
bad:
	snprintf(why, whylen, "%s: expected an %s network with a prefix of %d to %d", s,
		 family == NET_IPV4 ? "IPv4" : "IPv6", lo, hi);
	return -EINVAL;
}

int vnet_net_parse4(const char *s, struct vnet_net *net, char *why, size_t whylen)
{
	return vnet_net_parse(s, NET_IPV4, net->net4, &net->prefix4, 8, 30, why, whylen);
}

int vnet_net_parse6(const char *s, struct vnet_net *net, char *why, size_t whylen)
{
	int ret = vnet_net_parse(s, NET_IPV6, net->net6, &net->prefix6, 64, 120, why, whylen);

	net->has6 = ret == 0;
	return ret;
}

void vnet_net_addr4(const struct vnet_net *net, uint32_t h, uint8_t out[4])
{
	uint32_t a = (uint32_t)net->net4[0] << 24 | (uint32_t)net->net4[1] << 16 |
		     (uint32_t)net->net4[2] << 8 | net->net4[3];

	a |= h;
	out[0] = (uint8_t)(a >> 24);
	out[1] = (uint8_t)(a >> 16);
	out[2] = (uint8_t)(a >> 8);
	out[3] = (uint8_t)a;
}

void vnet_net_addr6(const struct vnet_net *net, uint32_t h, uint8_t out[16])
{
	memcpy(out, net->net6, 16);
	out[12] |= (uint8_t)(h >> 24);
	out[13] |= (uint8_t)(h >> 16);
	out[14] |= (uint8_t)(h >> 8);
	out[15] |= (uint8_t)h;
}

uint32_t vnet_net_hosts(const struct vnet_net *net)
{
	uint32_t bits = 32u - net->prefix4;

	if (net->has6 && 128u - net->prefix6 < bits)
		bits = 128u - net->prefix6;
	return (uint32_t)((1ull << bits) - 2);
}

static int vnet_leases_add(struct vnet_leases *l, const char *vm, uint32_t host)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct vnet_lease_ent *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	snprintf(l->v[l->n].vm, sizeof(l->v[0].vm), "%s", vm);
	l->v[l->n++].host = host;
	return 0;
}

static int vnet_leases_save(const struct vnet_leases *l)
{
	size_t cap = 64 + l->n * 80, len = 0;
	char *buf;
	int ret;

	if (!l->path[0])
		return 0;
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	len += (size_t)snprintf(buf, cap, "# vmbusifyd vnet leases: VM host-number\n");
	for (size_t i = 0; i < l->n; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s %u\n", l->v[i].vm, l->v[i].host);
	ret = sys_write_file_atomic(l->path, buf, len, 0644);
	free(buf);
	return ret;
}

/* Reads "NAME HOST" lines; a line that is neither that, blank nor a comment is an error. */
static int vnet_leases_load(struct vnet_leases *l, char *text, char *why, size_t whylen)
{
	unsigned line = 0;
	char *save = NULL;

	for (char *s = strtok_r(text, "\n", &save); s; s = strtok_r(NULL, "\n", &save)) {
		char vm[64];
		unsigned host;
		char extra;

		line++;
		if (s[0] == '#' || s[0] == '\0')
			continue;
		if (sscanf(s, "%63s %u %c", vm, &host, &extra) != 2) {
			snprintf(why, whylen, "%s: line %u: expected 'VM HOST-NUMBER'", l->path,
				 line);
			return -EINVAL;
		}
		if (host < 2 || host > vnet_net_hosts(&l->net))
			continue; /* another subnet's: the VM gets a new one */
		if (vnet_leases_add(l, vm, host))
			return -ENOMEM;
	}
	return 0;
}

int vnet_leases_open(struct vnet_leases *l, const struct vnet_net *net, const char *path, char *why,
		     size_t whylen)
{
	char *text = NULL;
	size_t len;
	int ret;

	memset(l, 0, sizeof(*l));
	l->net = *net;
	snprintf(l->path, sizeof(l->path), "%s", path ? path : "");
	if (!l->path[0])
		return 0;
	ret = sys_read_file(l->path, VNET_LEASE_FILE_MAX, &text, &len);
	if (ret == -ENOENT)
		return 0;
	if (ret) {
		snprintf(why, whylen, "%s: %s", l->path, strerror(-ret));
		return ret;
	}
	ret = vnet_leases_load(l, text, why, whylen);
	free(text);
	if (ret)
		vnet_leases_close(l);
	return ret;
}

void vnet_leases_close(struct vnet_leases *l)
{
	free(l->v);
	l->v = NULL;
	l->n = l->cap = 0;
}

static void vnet_lease_fill(const struct vnet_leases *l, uint32_t host, struct vnet_src *out)
{
	memset(out, 0, sizeof(*out));
	vnet_net_addr4(&l->net, host, out->addr4);
	out->has6 = l->net.has6;
	if (out->has6)
		vnet_net_addr6(&l->net, host, out->addr6);
}

int vnet_lease_for(struct vnet_leases *l, const char *vm, struct vnet_src *out)
{
	uint32_t host, max = vnet_net_hosts(&l->net);
	int ret;

	for (size_t i = 0; i < l->n; i++) {
		if (!strcmp(l->v[i].vm, vm)) {
			vnet_lease_fill(l, l->v[i].host, out);
			return 0;
		}
	}
	for (host = 2; host <= max; host++) {
		bool used = false;

		for (size_t i = 0; i < l->n && !used; i++)
			used = l->v[i].host == host;
		if (!used)
			break;
	}
	if (host > max)
		return -ENOSPC;
	ret = vnet_leases_add(l, vm, host);
	if (!ret)
		ret = vnet_leases_save(l);
	if (ret) {
		l->n--;
		return ret;
	}
	vnet_lease_fill(l, host, out);
	return 0;
}
