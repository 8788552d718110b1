/* vnet's DNS forwarder: a UDP relay from the gateway's port 53 to the host's resolvers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "vnet/dns.h"
#include "core/log.h"
#include "platform/sys.h"

/*
 * Theory of operation
 *
 * A query (at least a 12-byte header) that arrives on a gateway socket gets
 * a slot: the client's address and id, a new id, a deadline. It goes to the
 * first nameserver from the slot's upstream socket of that family, with the
 * new id. An answer whose id and source match a slot goes back to the client
 * with the client's id, and frees the slot. A slot whose deadline passed is
 * tried once more on the next nameserver, then dropped (the client's own
 * resolver retries). Slots are a fixed table: when it is full the oldest
 * goes. Queries over TCP are not served.
 */

#define VNET_DNS_SLOTS	 512
#define VNET_DNS_SERVERS 3
#define VNET_DNS_LISTEN	 4
#define VNET_DNS_MSG_MAX 4096
#define VNET_DNS_TRY_NS	 (1000ull * 1000000ull)

struct vnet_dns_slot {
	bool used;
	int sock; /* the gateway socket it came in on */
	struct net_addr client;
	uint16_t client_id, id;
	int server, tries;
	uint64_t deadline_ns;
	uint16_t len;
	uint8_t *query; /* kept for the retry */
};

struct vnet_dns_sock {
	struct vnet_dns *d;
	pl_fd fd;
	int family;
	struct loop_req poll;
	bool upstream;
};

struct vnet_dns {
	struct rt_loop *rl;
	struct vnet_dns_sock socks[VNET_DNS_LISTEN + 2]; /* gateways, then upstream v4 and v6 */
	int nlisten;
	struct net_addr servers[VNET_DNS_SERVERS];
	int nservers;
	struct vnet_dns_slot slots[VNET_DNS_SLOTS];
	uint16_t next_id;
	struct loop_req timer;
	uint8_t buf[VNET_DNS_MSG_MAX];
};

/* The nameservers: from the file path names (tests), else the system's (net_nameservers()). */
static int vnet_dns_servers(struct vnet_dns *d, const char *path, char *why, size_t whylen)
{
	char *text = NULL;
	size_t len;
	int ret;

	if (!path) {
		ret = net_nameservers(d->servers, VNET_DNS_SERVERS, why, whylen);
		d->nservers = ret > 0 ? ret : 0;
		return ret < 0 ? ret : 0;
	}
	ret = sys_read_file(path, 1u << 16, &text, &len);
	if (ret) {
		snprintf(why, whylen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	d->nservers = net_resolv_conf_parse(text, d->servers, VNET_DNS_SERVERS);
	free(text);
	if (!d->nservers) {
		snprintf(why, whylen, "%s names no nameserver", path);
		return -ENOENT;
	}
	return 0;
}

static struct vnet_dns_sock *vnet_dns_upstream(struct vnet_dns *d, int family)
{
	struct vnet_dns_sock *s = &d->socks[VNET_DNS_LISTEN + (family == NET_IPV6)];

	return s->fd >= 0 ? s : NULL;
}

static void vnet_dns_slot_free(struct vnet_dns_slot *s)
{
	free(s->query);
	memset(s, 0, sizeof(*s));
}

/* Sends slot s's query to its current server; false when it could not. */
static bool vnet_dns_send(struct vnet_dns *d, struct vnet_dns_slot *s)
{
	const struct net_addr *srv = &d->servers[s->server];
	struct vnet_dns_sock *up = vnet_dns_upstream(d, srv->family);

	s->query[0] = (uint8_t)(s->id >> 8);
	s->query[1] = (uint8_t)s->id;
	s->deadline_ns = clock_now_ns() + VNET_DNS_TRY_NS;
	return up && net_sendto(up->fd, s->query, s->len, srv) >= 0;
}

static void vnet_dns_query(struct vnet_dns *d, int sock, const struct net_addr *from,
			   const uint8_t *p, size_t n)
{
	struct vnet_dns_slot *s = NULL, *oldest = &d->slots[0];

	if (n < 12 || (p[2] & 0x80)) /* too short, or an answer */
		return;
	for (int i = 0; i < VNET_DNS_SLOTS && !s; i++) {
		if (!d->slots[i].used)
			s = &d->slots[i];
		else if (d->slots[i].deadline_ns < oldest->deadline_ns)
			oldest = &d->slots[i];
	}
	if (!s) {
		vnet_dns_slot_free(oldest);
		s = oldest;
	}
	s->query = malloc(n);
	if (!s->query)
		return;
	memcpy(s->query, p, n);
	s->used = true;
	s->sock = sock;
	s->client = *from;
	s->client_id = (uint16_t)(p[0] << 8 | p[1]);
	s->id = d->next_id++;
	s->len = (uint16_t)n;
	if (!vnet_dns_send(d, s))
		vnet_dns_slot_free(s);
}

static void vnet_dns_answer(struct vnet_dns *d, const struct net_addr *from, uint8_t *p, size_t n)
{
	uint16_t id;

	if (n < 12)
		return;
	id = (uint16_t)(p[0] << 8 | p[1]);
	for (int i = 0; i < VNET_DNS_SLOTS; i++) {
		struct vnet_dns_slot *s = &d->slots[i];
		struct net_addr srv;

		if (!s->used || s->id != id)
			continue;
		srv = d->servers[s->server];
		if (!net_addr_equal(&srv, from))
			return; /* not from the server asked: spoofed, or late */
		p[0] = (uint8_t)(s->client_id >> 8);
		p[1] = (uint8_t)s->client_id;
		net_sendto(d->socks[s->sock].fd, p, n, &s->client);
		vnet_dns_slot_free(s);
		return;
	}
}

static void vnet_dns_arm(struct vnet_dns_sock *s);

static void vnet_dns_poll_cb(struct loop_req *r, int res)
{
	struct vnet_dns_sock *s = r->data;
	struct vnet_dns *d = s->d;

	for (int k = 0; k < 64 && res >= 0; k++) {
		struct net_addr from;
		int n = net_recvfrom(s->fd, d->buf, sizeof(d->buf), &from);

		if (n < 0)
			break;
		net_addr_unmap(&from);
		if (s->upstream)
			vnet_dns_answer(d, &from, d->buf, (size_t)n);
		else
			vnet_dns_query(d, (int)(s - d->socks), &from, d->buf, (size_t)n);
	}
	if (res != -ECANCELED)
		vnet_dns_arm(s);
}

static void vnet_dns_arm(struct vnet_dns_sock *s)
{
	s->poll.data = s;
	if (loop_poll(s->d->rl->loop, &s->poll, s->fd, LOOP_POLL_IN, vnet_dns_poll_cb))
		vb_err("vnet: DNS forwarder cannot poll");
}

/* Every 250 ms: retries on the next server, then gives up. */
static void vnet_dns_timer_cb(struct loop_req *r, int res)
{
	struct vnet_dns *d = r->data;
	uint64_t now = clock_now_ns();

	if (res == -ECANCELED)
		return;
	for (int i = 0; i < VNET_DNS_SLOTS; i++) {
		struct vnet_dns_slot *s = &d->slots[i];

		if (!s->used || s->deadline_ns > now)
			continue;
		if (++s->tries >= 2 || d->nservers < 2) {
			vnet_dns_slot_free(s);
			continue;
		}
		s->server = (s->server + 1) % d->nservers;
		if (!vnet_dns_send(d, s))
			vnet_dns_slot_free(s);
	}
	loop_timer(d->rl->loop, &d->timer, 250000000ull, vnet_dns_timer_cb);
}

int vnet_dns_new(struct vnet_dns **out, struct rt_loop *rl, const struct net_addr *listen, int n,
		 const char *resolv_conf, char *why, size_t whylen)
{
	struct vnet_dns *d = calloc(1, sizeof(*d));
	int ret = 0;

	if (!d)
		return -ENOMEM;
	d->rl = rl;
	for (int i = 0; i < VNET_DNS_LISTEN + 2; i++) {
		d->socks[i].d = d;
		d->socks[i].fd = -1;
	}
	ret = vnet_dns_servers(d, resolv_conf, why, whylen);
	for (int i = 0; i < n && i < VNET_DNS_LISTEN && !ret; i++) {
		struct net_addr a = listen[i];
		char text[NET_ADDR_STRLEN];

		a.port = 53;
		ret = net_udp_socket(&a, &d->socks[i].fd);
		if (ret)
			snprintf(why, whylen, "DNS on %s: %s", net_addr_format(&a, true, text),
				 strerror(-ret));
		d->nlisten++;
	}
	for (int f = 0; f < 2 && !ret; f++) {
		struct net_addr any = {.family = f ? NET_IPV6 : NET_IPV4};
		struct vnet_dns_sock *s = &d->socks[VNET_DNS_LISTEN + f];

		s->upstream = true;
		if (net_udp_socket(&any, &s->fd))
			s->fd = -1; /* no IPv6 here: IPv4 servers still work */
	}
	d->next_id = (uint16_t)clock_now_ns();
	if (ret) {
		vnet_dns_free(d);
		return ret;
	}
	*out = d;
	return 0;
}

static void vnet_dns_start_cb(void *arg)
{
	struct vnet_dns *d = arg;

	for (int i = 0; i < VNET_DNS_LISTEN + 2; i++)
		if (d->socks[i].fd >= 0)
			vnet_dns_arm(&d->socks[i]);
	d->timer.data = d;
	loop_timer(d->rl->loop, &d->timer, 250000000ull, vnet_dns_timer_cb);
}

int vnet_dns_start(struct vnet_dns *d)
{
	return loop_post(d->rl->loop, vnet_dns_start_cb, d);
}

void vnet_dns_free(struct vnet_dns *d)
{
	if (!d)
		return;
	for (int i = 0; i < VNET_DNS_LISTEN + 2; i++)
		net_close(d->socks[i].fd, false);
	for (int i = 0; i < VNET_DNS_SLOTS; i++)
		free(d->slots[i].query);
	free(d);
}
