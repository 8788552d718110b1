/* NAT on Linux with libnftables, in a table of its own: see platform/nat.h. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <nftables/libnftables.h>
#include "platform/nat.h"
#include "platform/nat_internal.h"

/* nft creates the table if needed, so that the delete never fails: replace in one transaction. */
#define NAT_DROP_OLD "table inet " NAT_TABLE "\ndelete table inet " NAT_TABLE "\n"

/* An interface name that reads the same to nft inside quotes: no quote, no wildcard '*'. */
static bool nat_ifname_ok(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n >= 16)
		return false;
	for (; *s; s++) {
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || strchr("-_.@+", *s)))
			return false;
	}
	return true;
}

/* The masquerade rule for one prefix, or nothing when its family is 0. */
static int nat_masq_rule(const struct netcfg_prefix *p, int family, const char *tun, char *buf,
			 size_t len, size_t *off, char *why, size_t whylen)
{
	struct netcfg_prefix net = *p;
	char addr[NET_ADDR_STRLEN];

	if (p->addr.family == 0)
		return 0;
	if (p->addr.family != family || p->len > (family == NET_IPV4 ? 32 : 128)) {
		snprintf(why, whylen, "NAT: not an IPv%d prefix", family);
		return -EINVAL;
	}
	netcfg_prefix_mask(&net);
	return nat_append(buf, len, off, "\t\t%s saddr %s/%u oifname != \"%s\" masquerade\n",
			  family == NET_IPV4 ? "ip" : "ip6",
			  net_addr_format(&net.addr, false, addr), net.len, tun);
}

int nat_render(const struct nat_config *c, char *buf, size_t len, char *why, size_t whylen)
{
	size_t off = 0;
	int ret;

	if (!nat_ifname_ok(c->tun)) {
		snprintf(why, whylen, "NAT: '%s' is not a TUN name this takes",
			 c->tun ? c->tun : "");
		return -EINVAL;
	}
	ret = nat_append(buf, len, &off,
			 NAT_DROP_OLD
			 "table inet " NAT_TABLE " {\n"
			 "\tchain postrouting {\n"
			 "\t\ttype nat hook postrouting priority srcnat; policy accept;\n");
	if (!ret)
		ret = nat_masq_rule(&c->v4, NET_IPV4, c->tun, buf, len, &off, why, whylen);
	if (!ret)
		ret = nat_masq_rule(&c->v6, NET_IPV6, c->tun, buf, len, &off, why, whylen);
	if (!ret)
		ret = nat_append(buf, len, &off,
				 "\t}\n"
				 "\tchain forward {\n"
				 "\t\ttype filter hook forward priority filter; policy accept;\n"
				 "\t\tiifname \"%s\" accept\n"
				 "\t\toifname \"%s\" ct state established,related accept\n",
				 c->tun, c->tun);
	if (!ret && !c->allow_inbound)
		ret = nat_append(buf, len, &off, "\t\toifname \"%s\" drop\n", c->tun);
	if (!ret)
		ret = nat_append(buf, len, &off,
				 "\t}\n"
				 "\tchain input {\n"
				 "\t\ttype filter hook input priority filter; policy accept;\n"
				 "\t\tiifname \"%s\" ct state established,related accept\n"
				 "\t\tiifname \"%s\" meta l4proto { icmp, ipv6-icmp } accept\n"
				 "\t\tiifname \"%s\" udp dport 53 accept\n"
				 "\t\tiifname \"%s\" drop\n"
				 "\t}\n}\n",
				 c->tun, c->tun, c->tun, c->tun);
	if (ret == -ENOSPC)
		snprintf(why, whylen, "NAT: the rules do not fit in %zu bytes", len);
	return ret < 0 ? ret : (int)off;
}

/* The errno nft's complaint stands for, as far as one can tell from its text. */
static int nat_errno(const char *msg)
{
	if (strstr(msg, "Operation not permitted"))
		return -EPERM;
	if (strstr(msg, "not supported"))
		return -EOPNOTSUPP;
	return -EIO;
}

/* Runs an nft script; on failure, why gets nft's first line that says what went wrong. */
static int nat_run(const char *script, char *why, size_t whylen)
{
	struct nft_ctx *nft = nft_ctx_new(NFT_CTX_DEFAULT);
	const char *err;
	int ret = 0;

	if (!nft) {
		snprintf(why, whylen, "nftables: no context");
		return -ENOMEM;
	}
	nft_ctx_buffer_output(nft);
	nft_ctx_buffer_error(nft);
	if (nft_run_cmd_from_buffer(nft, script) != 0) {
		err = nft_ctx_get_error_buffer(nft);
		err = err && *err ? err : "nft refused the rules";
		snprintf(why, whylen, "nftables: %.*s", (int)strcspn(err, "\n"), err);
		ret = nat_errno(err);
	}
	nft_ctx_free(nft);
	return ret;
}

int nat_setup(const struct nat_config *c, char *why, size_t whylen)
{
	char script[2048];
	int ret;

	ret = nat_render(c, script, sizeof(script), why, whylen);
	if (ret < 0)
		return ret;
	return nat_run(script, why, whylen);
}

int nat_teardown(char *why, size_t whylen)
{
	return nat_run(NAT_DROP_OLD, why, whylen);
}
