/* The asynchronous resolver on a real loop, against a tiny DNS server of the test's own. */
/* VB_TEST_BOTH_BACKENDS */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <setjmp.h>
#include <cmocka.h>
#include "platform/loop.h"
#include "platform/net.h"
#include "proxy/resolve.h"

#define NELEM(a)	 (sizeof(a) / sizeof((a)[0]))
#define MS		 1000000ull
#define TEST_DEADLINE_NS (10000 * MS)
#define LATE_MS		 150 /* late.test is answered this long after the question */

/* Runs l until cond holds, failing the test after TEST_DEADLINE_NS. */
#define RUN_UNTIL(l, cond)                                                                         \
	do {                                                                                       \
		uint64_t dl_ = clock_now_ns() + TEST_DEADLINE_NS;                                  \
		while (!(cond)) {                                                                  \
			assert_true(clock_now_ns() < dl_);                                         \
			assert_true(loop_run_once((l), 20 * MS) >= 0);                             \
		}                                                                                  \
	} while (0)

static enum loop_backend want_backend = LOOP_BACKEND_AUTO;

/* ---- the DNS server: one UDP socket on 127.0.0.1, answers from a table, in a thread ---- */

enum {
	DNS_A = 1,
	DNS_AAAA = 28,
	RCODE_OK = 0,
	RCODE_SERVFAIL = 2,
	RCODE_NXDOMAIN = 3,
	RCODE_REFUSED = 5,
};

struct zone {
	const char *name;
	int rcode;
	bool drop; /* never answer */
	bool late; /* answer after LATE_MS */
	const char *a[4];
	const char *aaaa[4];
};

static const struct zone zones[] = {
    {"a.test", RCODE_OK, false, false, {"192.0.2.3", "192.0.2.1", "192.0.2.2"}, {NULL}},
    {"six.test", RCODE_OK, false, false, {NULL}, {"2001:db8::1"}},
    {"both.test", RCODE_OK, false, false, {"192.0.2.10"}, {"2001:db8::10"}},
    {"empty.test", RCODE_OK, false, false, {NULL}, {NULL}},
    {"fail.test", RCODE_SERVFAIL, false, false, {NULL}, {NULL}},
    {"refused.test", RCODE_REFUSED, false, false, {NULL}, {NULL}},
    {"slow.test", RCODE_OK, true, false, {NULL}, {NULL}},
    {"late.test", RCODE_OK, false, true, {"192.0.2.20"}, {NULL}},
    {"loop.test", RCODE_OK, false, false, {"127.0.0.1"}, {"::1"}},
};

struct late_answer {
	uint64_t at_ns;
	struct sockaddr_in to;
	uint8_t buf[512];
	size_t len;
};

struct dns_srv {
	int fd;
	uint16_t port;
	pthread_t thread;
	atomic_bool stop;
	atomic_int questions; /* every question received */
	atomic_int answered;  /* every answer sent */
	struct late_answer late[16];
	int nlate;
};

static struct dns_srv srv;

/* Reads the question's name at off into out (lower case, dotted); returns the offset after it. */
static size_t dns_qname(const uint8_t *p, size_t len, size_t off, char *out, size_t cap)
{
	size_t n = 0;

	while (off < len && p[off]) {
		size_t l = p[off++];

		if (l > 63 || off + l > len || n + l + 2 > cap)
			return 0;
		if (n)
			out[n++] = '.';
		for (size_t i = 0; i < l; i++) {
			char c = (char)p[off + i];

			out[n++] = c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
		}
		off += l;
	}
	out[n] = '\0';
	return off < len ? off + 1 : 0;
}

static void put16(uint8_t *p, unsigned v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Builds the answer to the question in q (qlen bytes, question ending at qend); returns its length.
 */
static size_t dns_answer(const uint8_t *q, size_t qend, const struct zone *z, unsigned qtype,
			 uint8_t *out)
{
	const char *const *list = !z		      ? NULL
				  : qtype == DNS_A    ? z->a
				  : qtype == DNS_AAAA ? z->aaaa
						      : NULL;
	int rcode = z ? z->rcode : RCODE_NXDOMAIN;
	size_t len = qend;
	unsigned n = 0;

	memcpy(out, q, qend);
	put16(out + 2, 0x8000u | (q[2] & 0x01u) << 8 | 0x0400u | 0x0080u | (unsigned)rcode);
	for (size_t i = 0; z && rcode == RCODE_OK && list && i < 4 && list[i]; i++) {
		int fam = qtype == DNS_A ? AF_INET : AF_INET6;
		size_t alen = fam == AF_INET ? 4 : 16;

		put16(out + len, 0xc00c); /* the name of the question */
		put16(out + len + 2, qtype);
		put16(out + len + 4, 1);
		put16(out + len + 6, 0);
		put16(out + len + 8, 60);
		put16(out + len + 10, (unsigned)alen);
		inet_pton(fam, list[i], out + len + 12);
		len += 12 + alen;
		n++;
	}
	put16(out + 4, 1);
	put16(out + 6, n);
	put16(out + 8, 0);
	put16(out + 10, 0);
	return len;
}

/* Handles one datagram: answers now, later or never. */
static void dns_serve(const uint8_t *q, size_t len, const struct sockaddr_in *from)
{
	uint8_t out[512];
	char name[256];
	const struct zone *z = NULL;
	size_t qend, n;
	unsigned qtype;

	if (len < 12 || q[4] || q[5] != 1)
		return;
	qend = dns_qname(q, len, 12, name, sizeof(name));
	if (!qend || qend + 4 > len)
		return;
	qtype = (unsigned)q[qend] << 8 | q[qend + 1];
	qend += 4;
	atomic_fetch_add(&srv.questions, 1);
	for (size_t i = 0; i < NELEM(zones); i++) {
		if (!strcmp(zones[i].name, name))
			z = &zones[i];
	}
	if (z && z->drop)
		return;
	n = dns_answer(q, qend, z, qtype, out);
	if (z && z->late && srv.nlate < (int)NELEM(srv.late)) {
		struct late_answer *la = &srv.late[srv.nlate++];

		la->at_ns = clock_now_ns() + LATE_MS * MS;
		la->to = *from;
		memcpy(la->buf, out, n);
		la->len = n;
		return;
	}
	sendto(srv.fd, out, n, 0, (const struct sockaddr *)from, sizeof(*from));
	atomic_fetch_add(&srv.answered, 1);
}

/* Sends the late answers that are due. */
static void dns_send_late(void)
{
	uint64_t now = clock_now_ns();

	for (int i = 0; i < srv.nlate;) {
		struct late_answer *la = &srv.late[i];

		if (la->at_ns > now) {
			i++;
			continue;
		}
		sendto(srv.fd, la->buf, la->len, 0, (const struct sockaddr *)&la->to,
		       sizeof(la->to));
		atomic_fetch_add(&srv.answered, 1);
		*la = srv.late[--srv.nlate];
	}
}

static void *dns_thread(void *arg)
{
	uint8_t buf[1500];

	while (!atomic_load(&srv.stop)) {
		struct pollfd p = {.fd = srv.fd, .events = POLLIN};
		struct sockaddr_in from;
		socklen_t flen = sizeof(from);
		ssize_t n;

		dns_send_late();
		if (poll(&p, 1, 10) <= 0)
			continue;
		n = recvfrom(srv.fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &flen);
		if (n > 0)
			dns_serve(buf, (size_t)n, &from);
	}
	return NULL;
}

static void dns_start(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	socklen_t len = sizeof(sin);

	memset(&srv, 0, sizeof(srv));
	srv.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(srv.fd >= 0);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(srv.fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(srv.fd, (struct sockaddr *)&sin, &len), 0);
	srv.port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&srv.thread, NULL, dns_thread, NULL), 0);
}

static void dns_stop(void)
{
	atomic_store(&srv.stop, true);
	pthread_join(srv.thread, NULL);
	close(srv.fd);
}

/* ---- fixture: a loop, the server, a resolver pointed at it ---- */

struct fix {
	struct loop *loop;
	struct resolver *r;
	bool closed;
};

/* Set around resolve_start(): a callback that sees it ran inside the call. */
static bool in_submit;

static void on_closed(void *arg)
{
	bool *closed = arg;

	assert_false(*closed);
	*closed = true;
}

/* A resolver on f's loop for the test server with the given per-try timeout and tries. */
static struct resolver *fix_resolver(struct fix *f, uint32_t timeout_ms, int tries, bool hosts)
{
	char servers[64], why[256] = "";
	struct resolve_opts o = {
	    .servers = servers, .timeout_ms = timeout_ms, .tries = tries, .no_hosts_file = !hosts};
	struct resolver *r;

	snprintf(servers, sizeof(servers), "127.0.0.1:%u", srv.port);
	if (resolver_new(f->loop, &o, &r, why, sizeof(why)))
		fail_msg("resolver_new: %s", why);
	return r;
}

/* Closes r and runs the loop until its memory is gone. */
static void close_and_wait(struct fix *f, struct resolver *r)
{
	bool closed = false;

	resolver_close(r, on_closed, &closed);
	assert_false(closed); /* never inside the call */
	RUN_UNTIL(f->loop, closed);
}

static int setup(void **state)
{
	struct fix *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(loop_new(&f->loop, want_backend), 0);
	dns_start();
	f->r = fix_resolver(f, 1000, 2, false);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fix *f = *state;

	if (f->r)
		close_and_wait(f, f->r);
	loop_free(f->loop);
	dns_stop();
	free(f);
	return 0;
}

/* ---- results ---- */

struct res {
	int calls;
	int res;
	int n;
	struct net_addr addrs[RESOLVE_ADDRS_MAX];
};

static void res_cb(void *ctx, int res, const struct net_addr *addrs, int n)
{
	struct res *o = ctx;

	assert_false(in_submit);
	assert_true(n >= 0 && n <= RESOLVE_ADDRS_MAX);
	assert_true(n == 0 || addrs);
	o->calls++;
	o->res = res;
	o->n = n;
	if (n)
		memcpy(o->addrs, addrs, (size_t)n * sizeof(*addrs));
}

static int start(struct resolver *r, const char *name, resolve_cb cb, void *ctx,
		 struct resolve_req **h)
{
	int ret;

	in_submit = true;
	ret = resolve_start(r, name, cb, ctx, h);
	in_submit = false;
	return ret;
}

/* Resolves name on f's resolver and waits for the answer. */
static void resolve_wait(struct fix *f, const char *name, struct res *o)
{
	memset(o, 0, sizeof(*o));
	assert_int_equal(start(f->r, name, res_cb, o, NULL), 0);
	assert_int_equal(o->calls, 0);
	RUN_UNTIL(f->loop, o->calls);
	assert_int_equal(o->calls, 1);
}

static void assert_addr(const struct net_addr *a, const char *ip)
{
	char buf[NET_ADDR_STRLEN];

	net_addr_format(a, false, buf);
	if (strcmp(buf, ip))
		fail_msg("got %s, want %s", buf, ip);
	assert_int_equal(a->port, 0);
}

static bool has_addr(const struct res *o, const char *ip)
{
	char buf[NET_ADDR_STRLEN];

	for (int i = 0; i < o->n; i++) {
		if (!strcmp(net_addr_format(&o->addrs[i], false, buf), ip))
			return true;
	}
	return false;
}

/* ---- answers ---- */

static void test_a_records_come_in_answer_order(void **state)
{
	struct fix *f = *state;
	struct res o;

	resolve_wait(f, "a.test", &o);
	assert_int_equal(o.res, 0);
	assert_int_equal(o.n, 3);
	assert_int_equal(o.addrs[0].family, NET_IPV4);
	/* Not sorted by value: as the server listed them. */
	assert_addr(&o.addrs[0], "192.0.2.3");
	assert_addr(&o.addrs[1], "192.0.2.1");
	assert_addr(&o.addrs[2], "192.0.2.2");
	assert_int_equal(resolver_pending(f->r), 0);
}

static void test_aaaa_only_name_gives_ipv6(void **state)
{
	struct fix *f = *state;
	struct res o;

	resolve_wait(f, "six.test", &o);
	assert_int_equal(o.res, 0);
	assert_int_equal(o.n, 1);
	assert_int_equal(o.addrs[0].family, NET_IPV6);
	assert_addr(&o.addrs[0], "2001:db8::1");
}

static void test_both_families_are_returned(void **state)
{
	struct fix *f = *state;
	struct res o;

	resolve_wait(f, "both.test", &o);
	assert_int_equal(o.res, 0);
	assert_int_equal(o.n, 2);
	assert_true(has_addr(&o, "192.0.2.10"));
	assert_true(has_addr(&o, "2001:db8::10"));
}

static void test_case_and_final_dot_do_not_matter(void **state)
{
	struct fix *f = *state;
	struct res o;

	resolve_wait(f, "A.Test.", &o);
	assert_int_equal(o.res, 0);
	assert_int_equal(o.n, 3);
	assert_addr(&o.addrs[0], "192.0.2.3");
}

static void test_loopback_answers_are_returned_for_the_policy_to_judge(void **state)
{
	struct fix *f = *state;
	struct res o;

	resolve_wait(f, "loop.test", &o);
	assert_int_equal(o.res, 0);
	assert_true(has_addr(&o, "127.0.0.1"));
	assert_true(has_addr(&o, "::1"));
}

/* ---- errors ---- */

static void test_nxdomain_is_enxio(void **state)
{
	struct fix *f = *state;
	struct res o;

	resolve_wait(f, "nx.test", &o);
	assert_int_equal(o.res, -ENXIO);
	assert_int_equal(o.n, 0);
}

static void test_name_without_addresses_is_enxio(void **state)
{
	struct fix *f = *state;
	struct res o;

	resolve_wait(f, "empty.test", &o);
	assert_int_equal(o.res, -ENXIO);
}

static void test_servfail_is_eagain(void **state)
{
	struct fix *f = *state;
	struct res o;

	resolve_wait(f, "fail.test", &o);
	assert_int_equal(o.res, -EAGAIN);
}

static void test_refused_is_eagain(void **state)
{
	struct fix *f = *state;
	struct res o;

	resolve_wait(f, "refused.test", &o);
	assert_int_equal(o.res, -EAGAIN);
}

static void test_silent_server_times_out(void **state)
{
	struct fix *f = *state;
	struct resolver *r = fix_resolver(f, 100, 1, false);
	uint64_t t0 = clock_now_ns();
	struct res o = {0};

	/* A final dot: no search domain of this machine's can add tries. */
	assert_int_equal(start(r, "slow.test.", res_cb, &o, NULL), 0);
	RUN_UNTIL(f->loop, o.calls);
	assert_int_equal(o.res, -ETIMEDOUT);
	assert_true(clock_now_ns() - t0 >= 90 * MS);
	close_and_wait(f, r);
}

static void test_bad_names_are_refused_at_once(void **state)
{
	static const char *const bad[] = {
	    "",	     ".",
	    "a..b",  "a b",
	    "a/b",   "a\nb",
	    "127.1", "1.2.3.4.5",
	    "x.123", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.test",
	};
	struct fix *f = *state;
	char long_name[300];
	struct res o = {0};

	for (size_t i = 0; i < NELEM(bad); i++) {
		if (start(f->r, bad[i], res_cb, &o, NULL) != -EINVAL)
			fail_msg("'%s' was taken for a host name", bad[i]);
	}
	for (size_t i = 0; i < sizeof(long_name) - 1; i++)
		long_name[i] = i % 2 ? '.' : 'a';
	long_name[255] = '\0'; /* 255 characters, no final dot */
	assert_int_equal(start(f->r, long_name, res_cb, &o, NULL), -EINVAL);
	for (int i = 0; i < 5; i++)
		loop_run_once(f->loop, 5 * MS);
	assert_int_equal(o.calls, 0);
	assert_int_equal(atomic_load(&srv.questions), 0);
	assert_int_equal(resolver_pending(f->r), 0);
}

static void test_bad_server_list_is_einval(void **state)
{
	struct fix *f = *state;
	struct resolve_opts o = {.servers = "not an address"};
	struct resolver *r = NULL;
	char why[256] = "";

	assert_int_equal(resolver_new(f->loop, &o, &r, why, sizeof(why)), -EINVAL);
	assert_null(r);
	assert_memory_equal(why, "resolver: servers 'not an address': ", 36);
}

/* ---- literals and the hosts file ---- */

static void test_ip_literals_are_answered_without_dns(void **state)
{
	static const struct {
		const char *name, *want;
		int family;
	} lits[] = {
	    {"192.0.2.7", "192.0.2.7", NET_IPV4},
	    {"2001:db8::5", "2001:db8::5", NET_IPV6},
	    {"[::1]", "::1", NET_IPV6},
	    {"::ffff:127.0.0.1", "::ffff:127.0.0.1", NET_IPV6},
	};
	struct fix *f = *state;
	struct res o;

	for (size_t i = 0; i < NELEM(lits); i++) {
		resolve_wait(f, lits[i].name, &o);
		assert_int_equal(o.res, 0);
		assert_int_equal(o.n, 1);
		assert_int_equal(o.addrs[0].family, lits[i].family);
		assert_addr(&o.addrs[0], lits[i].want);
	}
	assert_int_equal(atomic_load(&srv.questions), 0);
}

static void test_hosts_file_answers_without_dns(void **state)
{
	struct fix *f = *state;
	struct resolver *r = fix_resolver(f, 1000, 1, true);
	char *hosts = NULL;
	size_t cap = 0;
	FILE *fp = fopen("/etc/hosts", "r");
	bool found = false;
	struct res o = {0};

	while (fp && getline(&hosts, &cap, fp) > 0) {
		if (!strncmp(hosts, "127.0.0.1", 9) && strstr(hosts, "localhost"))
			found = true;
	}
	free(hosts);
	if (fp)
		fclose(fp);
	if (!found) {
		close_and_wait(f, r);
		skip(); /* this machine's /etc/hosts has no "127.0.0.1 localhost" */
	}
	/* c-ares answers a hosts-file hit inside ares_getaddrinfo(): still never inside ours. */
	assert_int_equal(start(r, "localhost", res_cb, &o, NULL), 0);
	assert_int_equal(o.calls, 0);
	RUN_UNTIL(f->loop, o.calls);
	assert_int_equal(o.res, 0);
	assert_true(has_addr(&o, "127.0.0.1"));
	assert_int_equal(atomic_load(&srv.questions), 0);
	close_and_wait(f, r);
}

/* ---- many at once, and from callbacks ---- */

static void test_concurrent_requests_all_complete(void **state)
{
	static const char *const names[] = {"a.test",	 "six.test",  "nx.test",  "both.test",
					    "fail.test", "192.0.2.9", "late.test"};
	static const int want[] = {0, 0, -ENXIO, 0, -EAGAIN, 0, 0};
	struct fix *f = *state;
	struct res o[NELEM(names)];
	int done;

	memset(o, 0, sizeof(o));
	for (size_t i = 0; i < NELEM(names); i++)
		assert_int_equal(start(f->r, names[i], res_cb, &o[i], NULL), 0);
	assert_int_equal(resolver_pending(f->r), NELEM(names));
	do {
		done = 0;
		for (size_t i = 0; i < NELEM(names); i++)
			done += o[i].calls;
		assert_true(loop_run_once(f->loop, 20 * MS) >= 0);
	} while (done < (int)NELEM(names));
	for (size_t i = 0; i < NELEM(names); i++) {
		assert_int_equal(o[i].calls, 1);
		if (o[i].res != want[i])
			fail_msg("%s: got %d, want %d", names[i], o[i].res, want[i]);
	}
	assert_addr(&o[6].addrs[0], "192.0.2.20");
	assert_int_equal(resolver_pending(f->r), 0);
}

struct chain {
	struct resolver *r;
	struct res first, second;
};

static void chain_cb(void *ctx, int res, const struct net_addr *addrs, int n)
{
	struct chain *c = ctx;

	res_cb(&c->first, res, addrs, n);
	assert_int_equal(resolve_start(c->r, "six.test", res_cb, &c->second, NULL), 0);
}

static void test_start_from_inside_a_callback(void **state)
{
	struct fix *f = *state;
	struct chain c = {.r = f->r};

	assert_int_equal(start(f->r, "a.test", chain_cb, &c, NULL), 0);
	RUN_UNTIL(f->loop, c.second.calls);
	assert_int_equal(c.first.res, 0);
	assert_int_equal(c.second.res, 0);
	assert_addr(&c.second.addrs[0], "2001:db8::1");
}

struct closer {
	struct resolver *r;
	struct res first, other;
	bool closed;
};

static void closer_cb(void *ctx, int res, const struct net_addr *addrs, int n)
{
	struct closer *c = ctx;

	res_cb(&c->first, res, addrs, n);
	resolver_close(c->r, on_closed, &c->closed);
	assert_false(c->closed);
}

static void test_close_from_inside_a_callback(void **state)
{
	struct fix *f = *state;
	struct closer c = {.r = f->r};

	f->r = NULL; /* the test closes it */
	assert_int_equal(start(c.r, "a.test", closer_cb, &c, NULL), 0);
	assert_int_equal(start(c.r, "late.test", res_cb, &c.other, NULL), 0);
	RUN_UNTIL(f->loop, c.closed);
	assert_int_equal(c.first.calls, 1);
	assert_int_equal(c.first.res, 0);
	/* The other request was told once, with -ECANCELED. */
	assert_int_equal(c.other.calls, 1);
	assert_int_equal(c.other.res, -ECANCELED);
	/* Let the late answer arrive at a closed socket. */
	RUN_UNTIL(f->loop, atomic_load(&srv.answered) >= 4);
}

/* ---- cancelling and closing ---- */

static void never_cb(void *ctx, int res, const struct net_addr *addrs, int n)
{
	struct res *o = ctx; /* freed: AddressSanitizer reports this read */

	o->calls++;
	fail_msg("a cancelled request's callback ran (res %d)", res);
}

static void test_cancel_then_free_the_owner(void **state)
{
	struct fix *f = *state;
	struct res *owner = calloc(1, sizeof(*owner));
	struct resolve_req *h = NULL;
	int answered = atomic_load(&srv.answered);

	assert_int_equal(start(f->r, "late.test", never_cb, owner, &h), 0);
	assert_non_null(h);
	RUN_UNTIL(f->loop, atomic_load(&srv.questions) >= 1);
	resolve_cancel(h);
	free(owner);
	/* The answers arrive; the resolver lets go of the request without calling anyone. */
	RUN_UNTIL(f->loop, atomic_load(&srv.answered) >= answered + 2 && !resolver_pending(f->r));
	for (int i = 0; i < 5; i++)
		loop_run_once(f->loop, 5 * MS);
}

static void test_cancel_a_literal_then_free_the_owner(void **state)
{
	struct fix *f = *state;
	struct res *owner = calloc(1, sizeof(*owner));
	struct resolve_req *h = NULL;

	assert_int_equal(start(f->r, "192.0.2.1", never_cb, owner, &h), 0);
	resolve_cancel(h);
	free(owner);
	RUN_UNTIL(f->loop, !resolver_pending(f->r));
}

static void test_cancel_one_of_two_for_the_same_name(void **state)
{
	struct fix *f = *state;
	struct res *gone = calloc(1, sizeof(*gone));
	struct res kept = {0};
	struct resolve_req *h;

	assert_int_equal(start(f->r, "late.test", never_cb, gone, &h), 0);
	assert_int_equal(start(f->r, "late.test", res_cb, &kept, NULL), 0);
	resolve_cancel(h);
	free(gone);
	RUN_UNTIL(f->loop, kept.calls && !resolver_pending(f->r));
	assert_int_equal(kept.res, 0);
	assert_addr(&kept.addrs[0], "192.0.2.20");
}

static void test_close_tells_pending_owners_ecanceled(void **state)
{
	struct fix *f = *state;
	struct res dns = {0}, lit = {0};
	struct res *gone = calloc(1, sizeof(*gone));
	struct resolve_req *h;
	bool closed = false;

	assert_int_equal(start(f->r, "slow.test", res_cb, &dns, NULL), 0);
	assert_int_equal(start(f->r, "192.0.2.1", res_cb, &lit, NULL), 0);
	assert_int_equal(start(f->r, "late.test", never_cb, gone, &h), 0);
	resolve_cancel(h);
	free(gone);
	resolver_close(f->r, on_closed, &closed);
	f->r = NULL;
	/* Inside the call, once each; the memory goes later. */
	assert_int_equal(dns.calls, 1);
	assert_int_equal(dns.res, -ECANCELED);
	assert_int_equal(lit.calls, 1);
	assert_int_equal(lit.res, -ECANCELED);
	assert_false(closed);
	RUN_UNTIL(f->loop, closed);
	assert_int_equal(dns.calls, 1);
	assert_int_equal(lit.calls, 1);
}

static void test_close_of_an_idle_resolver_completes_later(void **state)
{
	struct fix *f = *state;
	struct resolver *r = fix_resolver(f, 1000, 1, false);

	close_and_wait(f, r);
}

static void test_close_without_on_closed_frees_everything(void **state)
{
	struct fix *f = *state;
	struct resolver *r = fix_resolver(f, 1000, 1, false);
	struct res o = {0};

	assert_int_equal(start(r, "slow.test", res_cb, &o, NULL), 0);
	RUN_UNTIL(f->loop, atomic_load(&srv.questions) >= 1);
	resolver_close(r, NULL, NULL);
	assert_int_equal(o.res, -ECANCELED);
	/* LeakSanitizer checks that the memory went once the loop ran. */
	for (int i = 0; i < 10; i++)
		loop_run_once(f->loop, 5 * MS);
}

static void test_start_after_close_is_eshutdown(void **state)
{
	struct fix *f = *state;
	struct res o = {0};
	bool closed = false;

	resolver_close(f->r, on_closed, &closed);
	assert_int_equal(start(f->r, "a.test", res_cb, &o, NULL), -ESHUTDOWN);
	f->r = NULL;
	RUN_UNTIL(f->loop, closed);
	assert_int_equal(o.calls, 0);
}

static void test_too_many_pending_is_eagain(void **state)
{
	struct fix *f = *state;
	struct res *o = calloc(RESOLVE_PENDING_MAX, sizeof(*o));
	struct res extra = {0};
	int done = 0;

	for (int i = 0; i < RESOLVE_PENDING_MAX; i++)
		assert_int_equal(start(f->r, "192.0.2.1", res_cb, &o[i], NULL), 0);
	assert_int_equal(start(f->r, "192.0.2.1", res_cb, &extra, NULL), -EAGAIN);
	RUN_UNTIL(f->loop, !resolver_pending(f->r));
	for (int i = 0; i < RESOLVE_PENDING_MAX; i++)
		done += o[i].calls;
	assert_int_equal(done, RESOLVE_PENDING_MAX);
	free(o);
}

#define RES_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    RES_TEST(test_a_records_come_in_answer_order),
	    RES_TEST(test_aaaa_only_name_gives_ipv6),
	    RES_TEST(test_both_families_are_returned),
	    RES_TEST(test_case_and_final_dot_do_not_matter),
	    RES_TEST(test_loopback_answers_are_returned_for_the_policy_to_judge),
	    RES_TEST(test_nxdomain_is_enxio),
	    RES_TEST(test_name_without_addresses_is_enxio),
	    RES_TEST(test_servfail_is_eagain),
	    RES_TEST(test_refused_is_eagain),
	    RES_TEST(test_silent_server_times_out),
	    RES_TEST(test_bad_names_are_refused_at_once),
	    RES_TEST(test_bad_server_list_is_einval),
	    RES_TEST(test_ip_literals_are_answered_without_dns),
	    RES_TEST(test_hosts_file_answers_without_dns),
	    RES_TEST(test_concurrent_requests_all_complete),
	    RES_TEST(test_start_from_inside_a_callback),
	    RES_TEST(test_close_from_inside_a_callback),
	    RES_TEST(test_cancel_then_free_the_owner),
	    RES_TEST(test_cancel_a_literal_then_free_the_owner),
	    RES_TEST(test_cancel_one_of_two_for_the_same_name),
	    RES_TEST(test_close_tells_pending_owners_ecanceled),
	    RES_TEST(test_close_of_an_idle_resolver_completes_later),
	    RES_TEST(test_close_without_on_closed_frees_everything),
	    RES_TEST(test_start_after_close_is_eshutdown),
	    RES_TEST(test_too_many_pending_is_eagain),
	};
	const char *env = getenv("VMBUSIFY_BACKEND");
	struct loop *probe;
	int ret;

	signal(SIGPIPE, SIG_IGN);
	if (env && *env && loop_backend_parse(env, &want_backend) < 0) {
		fprintf(stderr, "VMBUSIFY_BACKEND=%s is not a backend\n", env);
		return 1;
	}
	ret = loop_new(&probe, want_backend);
	if (ret < 0 && want_backend == LOOP_BACKEND_URING) {
		printf("SKIP: io_uring was requested but is unavailable here: %s\n",
		       strerror(-ret));
		return 77;
	}
	if (ret < 0) {
		fprintf(stderr, "loop_new: %s\n", strerror(-ret));
		return 1;
	}
	loop_free(probe);
	if (resolve_global_init()) {
		fprintf(stderr, "resolve_global_init failed\n");
		return 1;
	}
	return cmocka_run_group_tests_name("resolve", tests, NULL, NULL);
}
