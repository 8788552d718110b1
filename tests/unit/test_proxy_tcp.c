/* TCP streams end to end on real sockets: tcp_serve, dial and the pump, on both backends. */
/* VB_TEST_BOTH_BACKENDS */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>
#include "core/kinds.h"
#include "core/link.h"
#include "core/runtime.h"
#include "proxy/pump.h"
#include "proxy/tcp_msg.h"
#include "proxy/tcp_srv.h"

/*
 * The path of a proxied connection, all of it real:
 *
 *   client thread <-socketpair-> pump (side A) <-session over a socketpair->
 *   tcp_serve + pump (side B) <-TCP on 127.0.0.1-> server thread
 *
 * The loop runs on the test's thread; the client and the server are
 * blocking threads, so every byte crosses real descriptors both ways.
 */

struct side {
	struct link *lk;
	bool ready, closed, freed;
};

static struct runtime rt;
static struct loop *L;
static struct tcp_srv_env env;
static int begun, ended, limit_hit;

/* ---- the policy and resolver the serving side uses ---- */

static int t_check_addr(void *arg, const char *name, const struct net_addr *a, char *why, size_t n)
{
	if (a->family == NET_IPV4 && a->ip[3] == 2) {
		snprintf(why, n, "deny 127.0.0.2 (test rule)");
		return -EPERM;
	}
	return 0;
}

static int t_check_name(void *arg, const char *name, uint16_t port, char *why, size_t n)
{
	if (strcmp(name, "denied.test") == 0) {
		snprintf(why, n, "deny denied.test (test rule)");
		return -EPERM;
	}
	return 0;
}

struct t_res {
	struct loop_req timer;
	tcp_resolved_fn done;
	void *ctx;
	bool nx;
};

static void t_resolved(struct loop_req *r, int res)
{
	struct t_res *q = r->data;
	struct net_addr a = {.family = NET_IPV4, .ip = {127, 0, 0, 1}};

	if (q->nx)
		q->done(q->ctx, -ENXIO, NULL, 0);
	else
		q->done(q->ctx, 0, &a, 1);
	free(q);
}

static int t_resolve(void *arg, struct loop *l, const char *name, tcp_resolved_fn done, void *ctx,
		     void **handle)
{
	struct t_res *q = calloc(1, sizeof(*q));

	q->done = done;
	q->ctx = ctx;
	q->nx = strcmp(name, "localhost.test") != 0;
	q->timer.data = q;
	*handle = q;
	return loop_timer(l, &q->timer, 1000000, t_resolved);
}

static int t_begin(void *arg)
{
	if (limit_hit)
		return -EAGAIN;
	begun++;
	return 0;
}

static void t_end(void *arg)
{
	ended++;
}

/* ---- the two sides ---- */

static void side_ready(struct link *lk)
{
	((struct side *)link_app(lk))->ready = true;
}

static void side_open(struct link *lk, struct stream *st, uint16_t kind, uint16_t flags,
		      const uint8_t *req, size_t len)
{
	if (kind == KIND_TCP)
		tcp_serve(L, st, req, len, &env);
	else
		stream_refuse(st, -EOPNOTSUPP, "no");
}

static void side_close(struct link *lk, int err, const char *reason)
{
	((struct side *)link_app(lk))->closed = true;
}

static void side_freed(void *app)
{
	((struct side *)app)->freed = true;
}

static const struct link_ops side_ops = {
    .on_ready = side_ready,
    .on_open = side_open,
    .on_close = side_close,
    .on_freed = side_freed,
};

static void run_until(volatile bool *flag, int seconds)
{
	uint64_t end = clock_now_ns() + (uint64_t)seconds * 1000000000ull;

	while (!*flag && clock_now_ns() < end)
		loop_run_once(L, 10000000ull);
	assert_true(*flag);
}

static struct side A, B;

static int setup(void **state)
{
	struct link_config cfg;
	int sv[2];

	signal(SIGPIPE, SIG_IGN);
	if (runtime_init_single(&rt, LOOP_BACKEND_AUTO))
		return -1;
	L = rt.loops[0].loop;
	memset(&A, 0, sizeof(A));
	memset(&B, 0, sizeof(B));
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
		return -1;
	link_config_defaults(&cfg);
	cfg.keepalive_ms = 0;
	cfg.session.dialer = true;
	if (link_new(&A.lk, L, &rt.loops[0].chunks, sv[0], &cfg, &side_ops, &A))
		return -1;
	cfg.session.dialer = false;
	if (link_new(&B.lk, L, &rt.loops[0].chunks, sv[1], &cfg, &side_ops, &B))
		return -1;
	run_until(&A.ready, 5);
	run_until(&B.ready, 5);
	memset(&env, 0, sizeof(env));
	env.who = "test";
	env.connect_timeout_ms = 2000;
	env.check_addr = t_check_addr;
	env.check_name = t_check_name;
	env.conn_begin = t_begin;
	env.conn_end = t_end;
	env.resolve = t_resolve;
	begun = ended = limit_hit = 0;
	return 0;
}

static int teardown(void **state)
{
	link_shutdown(A.lk, 0, "test over");
	run_until(&A.freed, 5);
	run_until(&B.freed, 5);
	assert_int_equal(begun, ended);
	assert_int_equal(rt.loops[0].chunks.outstanding, 0);
	runtime_destroy(&rt);
	return 0;
}

/* ---- a TCP server thread ---- */

enum srv_mode { SRV_ECHO, SRV_RESET_AFTER_READ };

struct srv {
	int lfd;
	uint16_t port;
	enum srv_mode mode;
	pthread_t th;
	uint64_t got;
	bool saw_eof;
	int read_err;
};

static void *srv_main(void *arg)
{
	struct srv *s = arg;
	uint8_t buf[65536];
	int fd = accept(s->lfd, NULL, NULL);
	ssize_t n;

	if (fd < 0)
		return NULL;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		s->got += (uint64_t)n;
		if (s->mode == SRV_RESET_AFTER_READ) {
			struct linger lg = {1, 0};

			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
			break;
		}
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(fd, buf + off, (size_t)(n - off));

			if (w <= 0)
				goto out;
			off += w;
		}
	}
	s->saw_eof = n == 0;
	s->read_err = n < 0 ? errno : 0;
	shutdown(fd, SHUT_WR);
out:
	close(fd);
	return NULL;
}

static void srv_start(struct srv *s, enum srv_mode mode)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t len = sizeof(sin);

	memset(s, 0, sizeof(*s));
	s->mode = mode;
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(listen(s->lfd, 8), 0);
	assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &len), 0);
	s->port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&s->th, NULL, srv_main, s), 0);
}

static void srv_stop(struct srv *s)
{
	shutdown(s->lfd, SHUT_RDWR);
	pthread_join(s->th, NULL);
	close(s->lfd);
}

/* A port nobody listens on: bind one, then close it. */
static uint16_t closed_port(void)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t len = sizeof(sin);
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	close(fd);
	return ntohs(sin.sin_port);
}

/* ---- the opening side: a stream, then a pump to a socketpair the client thread drives ---- */

struct conn {
	struct stream *st;
	int err;
	bool answered, ended;
	int pump_err;
	struct tcp_reply reply;
	int client_fd; /* the client thread's end */
	int pump_fd;   /* the pump's end */
};

static void conn_end(void *arg, int err, uint64_t to_stream, uint64_t to_sock)
{
	struct conn *c = arg;

	c->pump_err = err;
	c->ended = true;
}

static void conn_reply(struct stream *st, int err, const uint8_t *r, size_t len)
{
	struct conn *c = stream_ctx(st);
	struct pump_opts po = {.on_end = conn_end, .arg = c};

	c->answered = true;
	c->err = err;
	if (err) {
		stream_release(st);
		close(c->pump_fd);
		return;
	}
	assert_int_equal(tcp_reply_decode(r, len, &c->reply), 0);
	assert_int_equal(pump_start(NULL, L, c->pump_fd, st, &po), 0);
}

static void conn_reset(struct stream *st, int err)
{
	struct conn *c = stream_ctx(st);

	c->answered = true;
	c->err = err;
	stream_release(st);
	close(c->pump_fd);
}

static const struct stream_ops conn_ops = {
    .on_reply = conn_reply,
    .on_reset = conn_reset,
};

static void conn_open(struct conn *c, const char *name, const struct net_addr *a, uint16_t port)
{
	struct tcp_req q = {.cmd = TCP_CONNECT};
	uint8_t buf[TCP_REQ_MAX];
	int sv[2], n;

	memset(c, 0, sizeof(*c));
	if (a)
		q.to.addr = *a;
	else
		snprintf(q.to.name, sizeof(q.to.name), "%s", name);
	q.to.port = port;
	n = tcp_req_encode(&q, buf);
	assert_true(n > 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	c->client_fd = sv[0];
	c->pump_fd = sv[1];
	assert_int_equal(
	    stream_open(link_session(A.lk), KIND_TCP, 0, buf, (size_t)n, &conn_ops, c, &c->st), 0);
	run_until(&c->answered, 5);
	if (c->err)
		close(c->client_fd);
}

static const struct net_addr lo4 = {.family = NET_IPV4, .ip = {127, 0, 0, 1}};

/* ---- the client thread ---- */

struct client {
	int fd;
	size_t bytes;
	uint32_t sum_sent, sum_got;
	size_t got;
	int read_err;
	bool eof;
	pthread_t wr, rd;
};

static uint32_t sum_bytes(uint32_t sum, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sum = sum * 31 + p[i];
	return sum;
}

static void *client_writer(void *arg)
{
	struct client *k = arg;
	uint8_t buf[50000];
	size_t off = 0;

	while (off < k->bytes) {
		size_t n = k->bytes - off < sizeof(buf) ? k->bytes - off : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)((off + i) * 7 + (off + i) / 251);
		k->sum_sent = sum_bytes(k->sum_sent, buf, n);
		for (size_t w = 0; w < n;) {
			ssize_t r = write(k->fd, buf + w, n - w);

			if (r <= 0)
				return NULL;
			w += (size_t)r;
		}
		off += n;
	}
	shutdown(k->fd, SHUT_WR);
	return NULL;
}

static void *client_reader(void *arg)
{
	struct client *k = arg;
	uint8_t buf[65536];
	ssize_t n;

	while ((n = read(k->fd, buf, sizeof(buf))) > 0) {
		k->sum_got = sum_bytes(k->sum_got, buf, (size_t)n);
		k->got += (size_t)n;
	}
	k->eof = n == 0;
	k->read_err = n < 0 ? errno : 0;
	return NULL;
}

static void client_run(struct client *k, int fd, size_t bytes)
{
	memset(k, 0, sizeof(*k));
	k->fd = fd;
	k->bytes = bytes;
	assert_int_equal(pthread_create(&k->rd, NULL, client_reader, k), 0);
	assert_int_equal(pthread_create(&k->wr, NULL, client_writer, k), 0);
}

static void client_join(struct client *k)
{
	pthread_join(k->wr, NULL);
	pthread_join(k->rd, NULL);
	close(k->fd);
}

/* ---- cases ---- */

/* 16 MiB each way through both pumps; the half-close travels end to end. */
static void test_echo_with_half_close(void **state)
{
	struct srv s;
	struct conn c;
	struct client k;

	srv_start(&s, SRV_ECHO);
	conn_open(&c, NULL, &lo4, s.port);
	assert_int_equal(c.err, 0);
	assert_int_equal(c.reply.peer.port, s.port);
	assert_int_equal(c.reply.local.family, NET_IPV4);
	client_run(&k, c.client_fd, 16u << 20);
	run_until(&c.ended, 30);
	client_join(&k);
	srv_stop(&s);
	assert_int_equal(c.pump_err, 0);
	assert_true(s.saw_eof);
	assert_true(k.eof);
	assert_int_equal(s.got, 16u << 20);
	assert_int_equal(k.got, 16u << 20);
	assert_int_equal(k.sum_got, k.sum_sent);
	assert_int_equal(session_stream_count(link_session(A.lk)), 0);
}

static void test_name_resolves_through_the_hook(void **state)
{
	struct srv s;
	struct conn c;
	struct client k;

	srv_start(&s, SRV_ECHO);
	conn_open(&c, "localhost.test", NULL, s.port);
	assert_int_equal(c.err, 0);
	client_run(&k, c.client_fd, 1000);
	run_until(&c.ended, 10);
	client_join(&k);
	srv_stop(&s);
	assert_int_equal(k.got, 1000);
}

static void test_refusals_carry_their_reason(void **state)
{
	struct net_addr denied = {.family = NET_IPV4, .ip = {127, 0, 0, 2}};
	struct conn c;

	conn_open(&c, NULL, &lo4, closed_port());
	assert_int_equal(c.err, -ECONNREFUSED);
	conn_open(&c, NULL, &denied, 80);
	assert_int_equal(c.err, -EPERM);
	conn_open(&c, "denied.test", NULL, 80);
	assert_int_equal(c.err, -EPERM);
	conn_open(&c, "nx.test", NULL, 80);
	assert_int_equal(c.err, -ENXIO);
	limit_hit = 1;
	conn_open(&c, NULL, &lo4, 80);
	assert_int_equal(c.err, -ENOBUFS);
	limit_hit = 0;
}

static void test_malformed_request_is_refused(void **state)
{
	static const uint8_t bad[][8] = {
	    {TCP_CONNECT, 2, 0, 80, 1, 2, 3, 4},     /* unknown address type */
	    {9, 1, 0, 80, 127, 0, 0, 1},	     /* unknown command */
	    {TCP_CONNECT, 1, 0, 0, 127, 0, 0, 1},    /* port 0 */
	    {TCP_CONNECT, 3, 0, 80, 3, 'a', 0, 'b'}, /* NUL in a name */
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct conn c = {0};

		assert_int_equal(stream_open(link_session(A.lk), KIND_TCP, 0, bad[i],
					     sizeof(bad[i]), &conn_ops, &c, &c.st),
				 0);
		c.pump_fd = -1;
		run_until(&c.answered, 5);
		assert_int_equal(c.err, -EINVAL);
	}
}

/* The server aborts: the client reads ECONNRESET, as it would from the server itself. */
static void test_server_reset_reaches_the_client(void **state)
{
	struct srv s;
	struct conn c;
	struct client k;

	srv_start(&s, SRV_RESET_AFTER_READ);
	conn_open(&c, NULL, &lo4, s.port);
	assert_int_equal(c.err, 0);
	client_run(&k, c.client_fd, 4u << 20);
	run_until(&c.ended, 30);
	shutdown(k.fd, SHUT_RDWR);
	client_join(&k);
	srv_stop(&s);
	assert_int_not_equal(c.pump_err, 0);
	assert_false(k.eof && k.got == 4u << 20);
	assert_int_equal(session_stream_count(link_session(A.lk)), 0);
}

/* The client aborts midway: nothing is left on either side. */
static void test_client_abort_leaves_no_stream(void **state)
{
	struct srv s;
	struct conn c;
	struct linger lg = {1, 0};
	uint8_t buf[4096] = {0};

	srv_start(&s, SRV_ECHO);
	conn_open(&c, NULL, &lo4, s.port);
	assert_int_equal(c.err, 0);
	assert_int_equal(write(c.client_fd, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	setsockopt(c.client_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(c.client_fd);
	run_until(&c.ended, 10);
	srv_stop(&s);
	for (int i = 0; i < 50 && session_stream_count(link_session(B.lk)); i++)
		loop_run_once(L, 10000000ull);
	assert_int_equal(session_stream_count(link_session(A.lk)), 0);
	assert_int_equal(session_stream_count(link_session(B.lk)), 0);
}

/* ---- UDP associations ---- */

struct udp_echo {
	int fd;
	uint16_t port;
	pthread_t th;
};

static void *udp_echo_main(void *arg)
{
	struct udp_echo *e = arg;
	uint8_t buf[65536];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	ssize_t n;

	while ((n = recvfrom(e->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl)) > 0) {
		if (n == 4 && !memcmp(buf, "quit", 4))
			break;
		sendto(e->fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl);
		fl = sizeof(from);
	}
	return NULL;
}

struct dgrams {
	int n;
	struct tcp_target from[8];
	char data[8][64];
	bool answered;
	int err;
};

static void dg_reply(struct stream *st, int err, const uint8_t *r, size_t len)
{
	struct dgrams *d = stream_ctx(st);

	d->answered = true;
	d->err = err;
}

static void dg_data(struct stream *st, struct chunk *c, const uint8_t *p, size_t len)
{
	struct dgrams *d = stream_ctx(st);
	int h = tcp_dgram_hdr_decode(p, len, &d->from[d->n % 8]);

	stream_consumed(st, len);
	assert_true(h > 0);
	snprintf(d->data[d->n % 8], sizeof(d->data[0]), "%.*s", (int)(len - (size_t)h), p + h);
	d->n++;
}

static void dg_reset(struct stream *st, int err)
{
	((struct dgrams *)stream_ctx(st))->err = err;
}

static const struct stream_ops dg_ops = {
    .on_reply = dg_reply,
    .on_data = dg_data,
    .on_reset = dg_reset,
};

static void dg_send(struct stream *st, const struct tcp_target *t, const char *text)
{
	uint8_t buf[512];
	int h = tcp_dgram_hdr_encode(t, buf, sizeof(buf));

	assert_true(h > 0);
	memcpy(buf + h, text, strlen(text));
	assert_int_equal(stream_write_copy(st, buf, (size_t)h + strlen(text)), 0);
}

static void run_for_ms(int ms)
{
	uint64_t end = clock_now_ns() + (uint64_t)ms * 1000000ull;

	while (clock_now_ns() < end)
		loop_run_once(L, 5000000ull);
}

/* Datagrams go by address and by name, come back with their source, and a denied one drops. */
static void test_udp_association_relays_datagrams(void **state)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
	socklen_t sl = sizeof(sin);
	struct tcp_req q = {.cmd = TCP_UDP, .to.addr = {.family = NET_IPV4}};
	struct tcp_target to = {.addr = lo4}, named = {.name = "localhost.test"};
	struct tcp_target denied = {.addr = {.family = NET_IPV4, .ip = {127, 0, 0, 2}}};
	struct udp_echo e;
	struct dgrams d = {0};
	struct stream *st;
	uint8_t req[TCP_REQ_MAX];
	int n;

	e.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(e.fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(e.fd, (struct sockaddr *)&sin, &sl), 0);
	e.port = ntohs(sin.sin_port);
	assert_int_equal(pthread_create(&e.th, NULL, udp_echo_main, &e), 0);
	to.port = named.port = denied.port = e.port;

	n = tcp_req_encode(&q, req);
	assert_true(n > 0);
	/* Without the DGRAM flag it is refused. */
	assert_int_equal(
	    stream_open(link_session(A.lk), KIND_TCP, 0, req, (size_t)n, &dg_ops, &d, &st), 0);
	run_until(&d.answered, 5);
	assert_int_equal(d.err, -EINVAL);
	stream_release(st);

	memset(&d, 0, sizeof(d));
	assert_int_equal(stream_open(link_session(A.lk), KIND_TCP, FRAME_OPEN_DGRAM, req, (size_t)n,
				     &dg_ops, &d, &st),
			 0);
	run_until(&d.answered, 5);
	assert_int_equal(d.err, 0);
	dg_send(st, &to, "one");
	dg_send(st, &denied, "denied");
	dg_send(st, &named, "by-name");
	for (int i = 0; i < 500 && d.n < 2; i++)
		loop_run_once(L, 10000000ull);
	run_for_ms(100); /* a reply to the denied one would come now */
	assert_int_equal(d.n, 2);
	assert_string_equal(d.data[0], "one");
	assert_string_equal(d.data[1], "by-name");
	for (int i = 0; i < 2; i++) {
		assert_int_equal(d.from[i].addr.family, NET_IPV4);
		assert_int_equal(d.from[i].port, e.port);
	}
	stream_release(st);
	sendto(e.fd, "quit", 4, 0, (struct sockaddr *)&sin, sizeof(sin));
	pthread_join(e.th, NULL);
	close(e.fd);
	run_for_ms(50);
	assert_int_equal(session_stream_count(link_session(B.lk)), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_echo_with_half_close, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_name_resolves_through_the_hook, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_refusals_carry_their_reason, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_malformed_request_is_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_server_reset_reaches_the_client, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_client_abort_leaves_no_stream, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_udp_association_relays_datagrams, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
