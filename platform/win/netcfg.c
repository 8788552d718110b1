/* Network configuration on Windows over the IP Helper API (iphlpapi): see platform/netcfg.h. */
#include <winsock2.h>
#include <windows.h>
#include <ws2ipdef.h>
#include <iphlpapi.h>
#include <netioapi.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "platform/netcfg.h"
#include "platform/netcfg_internal.h"
#include "platform/sys.h"
#include "platform/win/err.h"

/*
 * The Windows twin of the rtnetlink calls, each one IP Helper call that
 * answers at once (synchronous, like Linux's: not for a loop thread that
 * serves traffic). What differs, and how it is mapped:
 *
 *  - Links are interfaces, named by their alias ("Ethernet", "vmbusify0").
 *    struct netcfg_link has 16 bytes for a name: an alias that does not fit
 *    is given as "ifN" (N its index), and a lookup by name takes either.
 *  - A link is up while its driver says so (Wintun: while a session runs);
 *    netcfg_link_set_up(true) checks that the interface exists, and taking
 *    one down is -EOPNOTSUPP.
 *  - Windows has one routing table: dumps say NETCFG_TABLE_MAIN, with
 *    multicast and broadcast routes typed as Linux would (RTN_MULTICAST,
 *    RTN_BROADCAST), so that the shared checks (netcfg_common.c) leave them
 *    out as they leave out Linux's local table. A route needs its interface
 *    (ifindex 0 is -EINVAL).
 *  - An address always brings its on-link prefix route
 *    (NETCFG_ADDR_NOPREFIXROUTE is not honoured); NODAD makes it preferred at
 *    once (DadState).
 *  - Forwarding is a per-interface, per-family switch (ForwardingEnabled of
 *    MIB_IPINTERFACE_ROW), for IPv6 as for IPv4: nothing global is touched.
 *    A struct netcfg_fwd_saved remembers "ipv4 LUID" or "ipv6 LUID" (the
 *    interface's LUID, which outlives an index) and "0".
 */

#define NETCFG_RTN_BROADCAST 3
#define NETCFG_RTN_MULTICAST 5
#define NETCFG_RT_SCOPE_LINK 253
#define NETCFG_RTPROT_KERNEL 2
#define NETCFG_RTPROT_BOOT   3
#define NETCFG_RTPROT_STATIC 4

struct netcfg {
	char why[256];
};

/*
 * The calls that change the configuration, and GetIpInterfaceEntry, are
 * looked up at run time: Wine (8) has none of them, and a static import of
 * a function Wine lacks aborts the process when called instead of failing.
 * Looked up, a missing one is -ENOSYS with its name. Every Windows since
 * Vista has them all.
 */
typedef DWORD(WINAPI *netcfg_ipif_fn)(MIB_IPINTERFACE_ROW *row);
typedef VOID(WINAPI *netcfg_addr_init_fn)(MIB_UNICASTIPADDRESS_ROW *row);
typedef DWORD(WINAPI *netcfg_addr_op_fn)(const MIB_UNICASTIPADDRESS_ROW *row);
typedef VOID(WINAPI *netcfg_route_init_fn)(MIB_IPFORWARD_ROW2 *row);
typedef DWORD(WINAPI *netcfg_route_op_fn)(const MIB_IPFORWARD_ROW2 *row);

static struct netcfg_api {
	netcfg_ipif_fn ipif_get, ipif_set;
	netcfg_addr_init_fn addr_init;
	netcfg_addr_op_fn addr_create, addr_delete;
	netcfg_route_init_fn route_init;
	netcfg_route_op_fn route_create, route_delete;
} netcfg_api;

static BOOL CALLBACK netcfg_api_load(INIT_ONCE *once, void *arg, void **ctx)
{
	HMODULE m = GetModuleHandleW(L"iphlpapi.dll");
	struct netcfg_api *a = &netcfg_api;

	if (!m)
		return TRUE;
	a->ipif_get = (netcfg_ipif_fn)(void *)GetProcAddress(m, "GetIpInterfaceEntry");
	a->ipif_set = (netcfg_ipif_fn)(void *)GetProcAddress(m, "SetIpInterfaceEntry");
	a->addr_init =
	    (netcfg_addr_init_fn)(void *)GetProcAddress(m, "InitializeUnicastIpAddressEntry");
	a->addr_create =
	    (netcfg_addr_op_fn)(void *)GetProcAddress(m, "CreateUnicastIpAddressEntry");
	a->addr_delete =
	    (netcfg_addr_op_fn)(void *)GetProcAddress(m, "DeleteUnicastIpAddressEntry");
	a->route_init = (netcfg_route_init_fn)(void *)GetProcAddress(m, "InitializeIpForwardEntry");
	a->route_create = (netcfg_route_op_fn)(void *)GetProcAddress(m, "CreateIpForwardEntry2");
	a->route_delete = (netcfg_route_op_fn)(void *)GetProcAddress(m, "DeleteIpForwardEntry2");
	return TRUE;
}

/* The run-time calls, looked up once. */
static const struct netcfg_api *netcfg_calls(void)
{
	static INIT_ONCE once = INIT_ONCE_STATIC_INIT;

	InitOnceExecuteOnce(&once, netcfg_api_load, NULL, NULL);
	return &netcfg_api;
}

/* A call this Windows lacks: -ENOSYS, naming it. */
static int netcfg_missing(struct netcfg *nc, const char *call)
{
	snprintf(nc->why, sizeof(nc->why), "%s: not available on this Windows (Wine lacks it)",
		 call);
	return -ENOSYS;
}

int netcfg_fail(struct netcfg *nc, int err, const char *what)
{
	snprintf(nc->why, sizeof(nc->why), "%s%s%s", what ? what : "", what ? ": " : "",
		 sys_strerror(err));
	return err;
}

void netcfg_why_clear(struct netcfg *nc)
{
	nc->why[0] = '\0';
}

/* An IP Helper result as 0 or a negative errno with its reason. */
static int netcfg_check(struct netcfg *nc, DWORD e, const char *what)
{
	if (e == NO_ERROR) {
		netcfg_why_clear(nc);
		return 0;
	}
	return netcfg_fail(nc, err_from_win(e), what);
}

int netcfg_open(struct netcfg **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void netcfg_close(struct netcfg *nc)
{
	free(nc);
}

const char *netcfg_why(const struct netcfg *nc)
{
	return nc->why;
}

/* ---- addresses in both forms ---- */

static ADDRESS_FAMILY netcfg_af(int family)
{
	return family == NET_IPV4 ? AF_INET : family == NET_IPV6 ? AF_INET6 : AF_UNSPEC;
}

static void netcfg_to_inet(const struct net_addr *a, SOCKADDR_INET *s)
{
	memset(s, 0, sizeof(*s));
	if (a->family == NET_IPV4) {
		s->Ipv4.sin_family = AF_INET;
		memcpy(&s->Ipv4.sin_addr, a->ip, 4);
	} else if (a->family == NET_IPV6) {
		s->Ipv6.sin6_family = AF_INET6;
		memcpy(&s->Ipv6.sin6_addr, a->ip, 16);
	}
}

/* A SOCKADDR_INET as a struct net_addr (family 0 for anything else). */
static void netcfg_from_inet(const SOCKADDR_INET *s, struct net_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (s->si_family == AF_INET) {
		a->family = NET_IPV4;
		memcpy(a->ip, &s->Ipv4.sin_addr, 4);
	} else if (s->si_family == AF_INET6) {
		a->family = NET_IPV6;
		memcpy(a->ip, &s->Ipv6.sin6_addr, 16);
	}
}

static bool netcfg_inet_unspecified(const struct net_addr *a)
{
	static const uint8_t zero[16];

	return memcmp(a->ip, zero, netcfg_addr_len(a->family)) == 0;
}

/* ---- links ---- */

/* The link's name: its alias when it fits, else "ifN". */
static void netcfg_link_name(const MIB_IF_ROW2 *row, char *out, size_t len)
{
	int n = WideCharToMultiByte(CP_UTF8, 0, row->Alias, -1, out, (int)len, NULL, NULL);

	if (n <= 0)
		snprintf(out, len, "if%lu", (unsigned long)row->InterfaceIndex);
}

/* The index of the link named name (an alias, or "ifN"); 0 when there is none. */
static NET_IFINDEX netcfg_index_of(const char *name)
{
	wchar_t w[IF_MAX_STRING_SIZE + 1];
	NET_LUID luid;
	NET_IFINDEX idx = 0;
	char *end;
	unsigned long n;

	if (name[0] == 'i' && name[1] == 'f' && name[2] >= '1' && name[2] <= '9') {
		n = strtoul(name + 2, &end, 10);
		if (!*end && n <= 0x7fffffff)
			return (NET_IFINDEX)n;
	}
	if (!MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, name, -1, w,
				 IF_MAX_STRING_SIZE + 1))
		return 0;
	if (ConvertInterfaceAliasToLuid(w, &luid) != NO_ERROR ||
	    ConvertInterfaceLuidToIndex(&luid, &idx) != NO_ERROR)
		return 0;
	return idx;
}

int netcfg_link_get(struct netcfg *nc, int ifindex, const char *name, struct netcfg_link *out)
{
	MIB_IF_ROW2 row = {0};
	MIB_IPINTERFACE_ROW ip;

	memset(out, 0, sizeof(*out));
	row.InterfaceIndex = ifindex ? (NET_IFINDEX)ifindex : name ? netcfg_index_of(name) : 0;
	if (row.InterfaceIndex == 0 || GetIfEntry2(&row) != NO_ERROR)
		return netcfg_fail(nc, -ENODEV, name ? name : "link");
	out->ifindex = (int)row.InterfaceIndex;
	netcfg_link_name(&row, out->name, sizeof(out->name));
	out->mtu = row.Mtu;
	memset(&ip, 0, sizeof(ip));
	ip.Family = AF_INET;
	ip.InterfaceIndex = row.InterfaceIndex;
	if (netcfg_calls()->ipif_get && netcfg_calls()->ipif_get(&ip) == NO_ERROR)
		out->mtu = ip.NlMtu; /* what IP uses, which netcfg_link_set_mtu() sets */
	out->up = row.AdminStatus == NET_IF_ADMIN_STATUS_UP;
	out->running = row.OperStatus == IfOperStatusUp;
	out->loopback = row.Type == IF_TYPE_SOFTWARE_LOOPBACK;
	netcfg_why_clear(nc);
	return 0;
}

int netcfg_link_set_up(struct netcfg *nc, int ifindex, bool up)
{
	struct netcfg_link l;
	int ret = netcfg_link_get(nc, ifindex, NULL, &l);

	if (ret < 0 || up)
		return ret;
	return netcfg_fail(nc, -EOPNOTSUPP, "taking a link down");
}

/* Sets one family's MTU on the link; a family the link does not carry is skipped. */
static int netcfg_mtu_family(struct netcfg *nc, int ifindex, ADDRESS_FAMILY af, unsigned mtu)
{
	const struct netcfg_api *a = netcfg_calls();
	MIB_IPINTERFACE_ROW ip;
	DWORD e;

	if (!a->ipif_get || !a->ipif_set)
		return netcfg_missing(nc, "SetIpInterfaceEntry");
	memset(&ip, 0, sizeof(ip));
	ip.Family = af;
	ip.InterfaceIndex = (NET_IFINDEX)ifindex;
	e = a->ipif_get(&ip);
	if (e == ERROR_NOT_FOUND)
		return 0;
	if (e == NO_ERROR) {
		ip.NlMtu = mtu;
		ip.SitePrefixLength = 0; /* SetIpInterfaceEntry refuses what Get gave for IPv4 */
		e = a->ipif_set(&ip);
	}
	return netcfg_check(nc, e, af == AF_INET ? "IPv4 MTU" : "IPv6 MTU");
}

int netcfg_link_set_mtu(struct netcfg *nc, int ifindex, unsigned mtu)
{
	int ret;

	if (mtu < 68 || mtu > 65535)
		return netcfg_fail(nc, -EINVAL, "MTU");
	ret = netcfg_mtu_family(nc, ifindex, AF_INET, mtu);
	if (!ret && mtu >= 1280)
		ret = netcfg_mtu_family(nc, ifindex, AF_INET6, mtu);
	return ret;
}

/* ---- addresses ---- */

static int netcfg_addr_row(struct netcfg *nc, int ifindex, const struct netcfg_prefix *a,
			   MIB_UNICASTIPADDRESS_ROW *row)
{
	if (!netcfg_family_ok(&a->addr) || a->len > netcfg_addr_len(a->addr.family) * 8 ||
	    ifindex <= 0)
		return netcfg_fail(nc, -EINVAL, "address");
	if (!netcfg_calls()->addr_init || !netcfg_calls()->addr_create ||
	    !netcfg_calls()->addr_delete)
		return netcfg_missing(nc, "CreateUnicastIpAddressEntry");
	netcfg_calls()->addr_init(row);
	netcfg_to_inet(&a->addr, &row->Address);
	row->InterfaceIndex = (NET_IFINDEX)ifindex;
	row->OnLinkPrefixLength = a->len;
	return 0;
}

int netcfg_addr_add(struct netcfg *nc, int ifindex, const struct netcfg_prefix *a, unsigned flags)
{
	MIB_UNICASTIPADDRESS_ROW row;
	DWORD e;
	int ret = netcfg_addr_row(nc, ifindex, a, &row);

	if (ret < 0)
		return ret;
	if (flags & NETCFG_ADDR_NODAD)
		row.DadState = IpDadStatePreferred;
	e = netcfg_calls()->addr_create(&row);
	if (e == ERROR_OBJECT_ALREADY_EXISTS) {
		/* A restart after a crash finds its own address: replace it, as Linux does. */
		netcfg_calls()->addr_delete(&row);
		e = netcfg_calls()->addr_create(&row);
	}
	return netcfg_check(nc, e, "adding the address");
}

int netcfg_addr_del(struct netcfg *nc, int ifindex, const struct netcfg_prefix *a)
{
	MIB_UNICASTIPADDRESS_ROW row;
	DWORD e;
	int ret = netcfg_addr_row(nc, ifindex, a, &row);

	if (ret < 0)
		return ret;
	e = netcfg_calls()->addr_delete(&row);
	if (e == ERROR_NOT_FOUND)
		return netcfg_fail(nc, -EADDRNOTAVAIL, "removing the address");
	return netcfg_check(nc, e, "removing the address");
}

int netcfg_addr_dump(struct netcfg *nc, int family, netcfg_addr_fn fn, void *arg)
{
	MIB_UNICASTIPADDRESS_TABLE *t = NULL;
	DWORD e = GetUnicastIpAddressTable(netcfg_af(family), &t);

	if (e != NO_ERROR)
		return netcfg_check(nc, e, "listing addresses");
	for (ULONG i = 0; i < t->NumEntries; i++) {
		const MIB_UNICASTIPADDRESS_ROW *row = &t->Table[i];
		struct netcfg_addr a = {.ifindex = (int)row->InterfaceIndex};

		netcfg_from_inet(&row->Address, &a.addr.addr);
		if (!a.addr.addr.family)
			continue;
		a.addr.len = row->OnLinkPrefixLength;
		if (row->DadState == IpDadStateTentative)
			a.flags |= NETCFG_ADDR_TENTATIVE;
		fn(arg, &a);
	}
	FreeMibTable(t);
	netcfg_why_clear(nc);
	return 0;
}

/* ---- routes ---- */

static int netcfg_route_row(struct netcfg *nc, const struct netcfg_route *r,
			    MIB_IPFORWARD_ROW2 *row)
{
	struct netcfg_prefix dst = r->dst;

	if (!netcfg_family_ok(&dst.addr) || dst.len > netcfg_addr_len(dst.addr.family) * 8 ||
	    (r->gw.family && r->gw.family != dst.addr.family))
		return netcfg_fail(nc, -EINVAL, "route");
	if (r->ifindex <= 0)
		return netcfg_fail(nc, -EINVAL, "route (Windows needs its interface)");
	if (r->table && r->table != NETCFG_TABLE_MAIN)
		return netcfg_fail(nc, -EOPNOTSUPP, "route (Windows has one table)");
	if (!netcfg_calls()->route_init || !netcfg_calls()->route_create ||
	    !netcfg_calls()->route_delete)
		return netcfg_missing(nc, "CreateIpForwardEntry2");
	netcfg_prefix_mask(&dst);
	netcfg_calls()->route_init(row);
	row->InterfaceIndex = (NET_IFINDEX)r->ifindex;
	netcfg_to_inet(&dst.addr, &row->DestinationPrefix.Prefix);
	row->DestinationPrefix.PrefixLength = dst.len;
	if (r->gw.family)
		netcfg_to_inet(&r->gw, &row->NextHop);
	else
		row->NextHop.si_family = netcfg_af(dst.addr.family);
	row->Metric = r->metric;
	row->Protocol = MIB_IPPROTO_NETMGMT; /* a static route, as "protocol static" */
	return 0;
}

int netcfg_route_add(struct netcfg *nc, const struct netcfg_route *r)
{
	MIB_IPFORWARD_ROW2 row;
	DWORD e;
	int ret = netcfg_route_row(nc, r, &row);

	if (ret < 0)
		return ret;
	e = netcfg_calls()->route_create(&row);
	if (e == ERROR_OBJECT_ALREADY_EXISTS)
		return netcfg_fail(nc, -EEXIST, "adding the route");
	return netcfg_check(nc, e, "adding the route");
}

int netcfg_route_del(struct netcfg *nc, const struct netcfg_route *r)
{
	MIB_IPFORWARD_ROW2 row;
	DWORD e;
	int ret = netcfg_route_row(nc, r, &row);

	if (ret < 0)
		return ret;
	e = netcfg_calls()->route_delete(&row);
	if (e == ERROR_NOT_FOUND)
		return netcfg_fail(nc, -ESRCH, "removing the route");
	return netcfg_check(nc, e, "removing the route");
}

/* The Linux route type of a destination: multicast and limited broadcast apart. */
static uint8_t netcfg_route_type(const struct netcfg_prefix *dst)
{
	const uint8_t *ip = dst->addr.ip;

	if (dst->addr.family == NET_IPV4 && (ip[0] & 0xf0) == 0xe0 && dst->len >= 4)
		return NETCFG_RTN_MULTICAST;
	if (dst->addr.family == NET_IPV4 && dst->len == 32 && ip[0] == 255 && ip[1] == 255 &&
	    ip[2] == 255 && ip[3] == 255)
		return NETCFG_RTN_BROADCAST;
	if (dst->addr.family == NET_IPV6 && ip[0] == 0xff && dst->len >= 8)
		return NETCFG_RTN_MULTICAST;
	return NETCFG_RTN_UNICAST;
}

static void netcfg_route_from_row(const MIB_IPFORWARD_ROW2 *row, struct netcfg_route *r)
{
	memset(r, 0, sizeof(*r));
	netcfg_from_inet(&row->DestinationPrefix.Prefix, &r->dst.addr);
	r->dst.len = row->DestinationPrefix.PrefixLength;
	r->ifindex = (int)row->InterfaceIndex;
	netcfg_from_inet(&row->NextHop, &r->gw);
	if (r->gw.family && netcfg_inet_unspecified(&r->gw))
		r->gw.family = 0; /* on-link */
	r->metric = row->Metric;
	r->table = NETCFG_TABLE_MAIN;
	r->type = netcfg_route_type(&r->dst);
	r->protocol = row->Protocol == MIB_IPPROTO_NETMGMT ? NETCFG_RTPROT_STATIC
		      : row->Protocol == MIB_IPPROTO_LOCAL ? NETCFG_RTPROT_KERNEL
							   : NETCFG_RTPROT_BOOT;
	r->scope = r->gw.family ? 0 : NETCFG_RT_SCOPE_LINK;
}

int netcfg_route_dump(struct netcfg *nc, int family, netcfg_route_fn fn, void *arg)
{
	MIB_IPFORWARD_TABLE2 *t = NULL;
	DWORD e = GetIpForwardTable2(netcfg_af(family), &t);

	if (e != NO_ERROR)
		return netcfg_check(nc, e, "listing routes");
	for (ULONG i = 0; i < t->NumEntries; i++) {
		struct netcfg_route r;

		netcfg_route_from_row(&t->Table[i], &r);
		if (r.dst.addr.family)
			fn(arg, &r);
	}
	FreeMibTable(t);
	netcfg_why_clear(nc);
	return 0;
}

/* ---- forwarding ---- */

/* One family's row of the interface with luid; a Win32 error. */
static DWORD netcfg_ipif(NET_LUID luid, ADDRESS_FAMILY af, MIB_IPINTERFACE_ROW *ip)
{
	if (!netcfg_calls()->ipif_get || !netcfg_calls()->ipif_set)
		return ERROR_CALL_NOT_IMPLEMENTED;
	memset(ip, 0, sizeof(*ip));
	ip->Family = af;
	ip->InterfaceLuid = luid;
	return netcfg_calls()->ipif_get(ip);
}

static DWORD netcfg_ipif_forwarding(MIB_IPINTERFACE_ROW *ip, bool on)
{
	ip->ForwardingEnabled = on;
	ip->SitePrefixLength = 0; /* as in netcfg_mtu_family() */
	return netcfg_calls()->ipif_set(ip);
}

/* Switches one family's forwarding on, remembering it in f unless it was on already. */
static int netcfg_fwd_set(struct netcfg *nc, struct netcfg_fwd *f, NET_LUID luid, ADDRESS_FAMILY af,
			  const char *ifname)
{
	MIB_IPINTERFACE_ROW ip;
	struct netcfg_fwd_saved *s;
	char what[64];
	DWORD e = netcfg_ipif(luid, af, &ip);

	snprintf(what, sizeof(what), "%s forwarding on %s", af == AF_INET ? "IPv4" : "IPv6",
		 ifname);
	if (e == ERROR_CALL_NOT_IMPLEMENTED)
		return netcfg_missing(nc, "SetIpInterfaceEntry");
	if (e == ERROR_NOT_FOUND && af == AF_INET6)
		return 0; /* IPv6 unbound from this interface: nothing to forward */
	if (e != NO_ERROR)
		return netcfg_check(nc, e, what);
	if (ip.ForwardingEnabled)
		return 0;
	if (f->n >= NETCFG_FWD_MAX)
		return netcfg_fail(nc, -ENOSPC, "too many forwarding switches to remember");
	e = netcfg_ipif_forwarding(&ip, true);
	if (e != NO_ERROR)
		return netcfg_check(nc, e, what);
	s = &f->saved[f->n++];
	snprintf(s->path, sizeof(s->path), "%s %llu", af == AF_INET ? "ipv4" : "ipv6",
		 (unsigned long long)luid.Value);
	snprintf(s->old, sizeof(s->old), "0");
	return 0;
}

int netcfg_fwd_enable(struct netcfg *nc, struct netcfg_fwd *f, const char *ifname, unsigned flags)
{
	NET_IFINDEX idx = ifname ? netcfg_index_of(ifname) : 0;
	NET_LUID luid;
	int ret = 0;

	netcfg_why_clear(nc);
	if (!idx || ConvertInterfaceIndexToLuid(idx, &luid) != NO_ERROR)
		return netcfg_fail(nc, -ENODEV, ifname ? ifname : "interface name");
	if (flags & NETCFG_FWD_IPV4)
		ret = netcfg_fwd_set(nc, f, luid, AF_INET, ifname);
	if (!ret && (flags & NETCFG_FWD_IPV6))
		ret = netcfg_fwd_set(nc, f, luid, AF_INET6, ifname);
	return ret;
}

int netcfg_fwd_restore(struct netcfg_fwd *f)
{
	MIB_IPINTERFACE_ROW ip;
	NET_LUID luid;
	char fam[8];
	DWORD e;
	int ret = 0;

	while (f->n > 0) {
		struct netcfg_fwd_saved *s = &f->saved[--f->n];

		if (sscanf(s->path, "%7s %llu", fam, &luid.Value) != 2)
			continue;
		e = netcfg_ipif(luid, strcmp(fam, "ipv4") ? AF_INET6 : AF_INET, &ip);
		if (e != NO_ERROR || !ip.ForwardingEnabled)
			continue; /* gone with its interface, or changed by someone else since */
		e = netcfg_ipif_forwarding(&ip, false);
		if (e != NO_ERROR && ret == 0)
			ret = err_from_win(e);
	}
	return ret;
}
