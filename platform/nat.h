/* NAT from the vnet subnet to the outside: an nftables table of its own (Windows: a WinNAT object),
 * made at start, gone at stop. */
#ifndef VB_PLATFORM_NAT_H
#define VB_PLATFORM_NAT_H

#include <stdbool.h>
#include <stddef.h>
#include "platform/netcfg.h"

/*
 * Everything lives in one table, "inet vmbusify", and nothing outside it is
 * read or changed:
 *
 *   table inet vmbusify {
 *     chain postrouting {
 *       type nat hook postrouting priority srcnat; policy accept;
 *       ip saddr <v4 subnet> oifname != "<tun>" masquerade
 *       ip6 saddr <v6 subnet> oifname != "<tun>" masquerade
 *     }
 *     chain forward {
 *       type filter hook forward priority filter; policy accept;
 *       iifname "<tun>" accept
 *       oifname "<tun>" ct state established,related accept
 *       oifname "<tun>" drop          (unless allow_inbound)
 *     }
 *     chain input {
 *       type filter hook input priority filter; policy accept;
 *       iifname "<tun>" ct state established,related accept
 *       iifname "<tun>" meta l4proto { icmp, ipv6-icmp } accept
 *       iifname "<tun>" udp dport 53 accept
 *       iifname "<tun>" drop
 *     }
 *   }
 *
 * Packets from the subnet that leave through any other interface take that
 * interface's address. The forward chain lets the VMs' own flows out and
 * their replies back in, and (unless allow_inbound) keeps new flows from
 * outside away from the VMs. The input chain keeps the VMs away from the
 * host's own services (on any of its addresses): they get ICMP, the
 * gateway's DNS forwarder and the replies to the host's own flows, nothing
 * else; a service meant for them goes through a forward or the egress
 * policy. Traffic that neither comes from nor goes to
 * the TUN passes it untouched. An accept here cannot overrule a drop in
 * another table (every base chain on the hook has its say): a host
 * firewall that drops forwarded traffic has to be told separately.
 * Forwarding itself is switched on by netcfg_fwd_enable().
 *
 * On Windows (platform/win/nat.c) the same names stand for WinNAT: one
 * MSFT_NetNat object named NAT_TABLE over the IPv4 prefix; the IPv6 prefix
 * is not NAT-ed, allow_inbound is refused, the input chain's part is left
 * to the firewall, and nat_render() gives the equivalent PowerShell. Its
 * theory of operation says why.
 */

#define NAT_TABLE "vmbusify" /* in family inet */

struct nat_config {
	const char *tun;	 /* the host's TUN (letters, digits, "-_.@+"; under 16 bytes) */
	struct netcfg_prefix v4; /* the subnet's IPv4 prefix; family 0: none */
	struct netcfg_prefix v6; /* its IPv6 prefix (the ULA); family 0: none */
	bool allow_inbound;	 /* new flows from outside may reach the VMs */
};

/*
 * nat_render() - the nft script that nat_setup() runs, into buf
 *
 * The script first deletes any table of that name (one left by a crash)
 * and then makes it anew, in one transaction. Host bits of the prefixes are
 * cleared. Return: its length, or -EINVAL (a bad name or prefix, with a
 * reason) or -ENOSPC (buf too small).
 */
int nat_render(const struct nat_config *c, char *buf, size_t len, char *why, size_t whylen);
/*
 * nat_setup() - puts the table in place, replacing an old one atomically
 *
 * Needs CAP_NET_ADMIN in the calling thread's network namespace. Return: 0,
 * or a negative errno (-EPERM, -EINVAL, -EIO for anything nft refused) with
 * nft's first line of complaint in why.
 */
int nat_setup(const struct nat_config *c, char *why, size_t whylen);
/* nat_teardown() - deletes the table; 0 also when there was none. */
int nat_teardown(char *why, size_t whylen);

#endif
