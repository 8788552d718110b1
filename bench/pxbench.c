/* vb-pxbench: servers and SOCKS5 clients for bench/proxy.sh (no project code at all). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/*
 * Theory of operation
 *
 * serve ADDR PORT listens on three ports: PORT a sink (reads 256 KiB blocks
 * and discards them until one whose first byte is 1, then answers the count
 * of the others' bytes as u64 big-endian: microsocks closes both ways at
 * the client's EOF, so the end is in band), PORT+1 a source
 * (writes until the peer goes), PORT+2 an echo (writes back what it reads,
 * closes at EOF). Sink and source run a thread per connection with plain
 * blocking I/O of 256 KiB; the echo is one epoll thread, so that thousands
 * of idle connections cost it nothing.
 *
 * The clients reach HOST:PORT (IPv4) straight, or through a SOCKS5 proxy
 * (--socks ADDR:PORT, no authentication, the destination as an IPv4
 * address), and print one JSON object:
 *   up    STREAMS connections to a sink, all connected before any starts;
 *         each writes for SECONDS, then the end block, and reads the sink's
 *         count; the rate is the counts over the first start to the last
 *         answer
 *   down  STREAMS connections to a source, each reading for SECONDS
 *   conn  CONC threads, each for SECONDS: connect (and the SOCKS5
 *         handshake), one byte echoed, close; the rate of those, and the
 *         time from connect() to a usable connection (the SOCKS5 reply)
 *   idle  N connections to an echo, one byte echoed on each, then held
 *         until stdin reaches EOF
 *   load  N connections to an echo, all open at once, each sending BYTES
 *         of its own pseudo-random stream and checking every byte that
 *         comes back (one epoll thread); with --hold, they stay open after
 *         the check until stdin reaches EOF. Exits 1 if any failed.
 * GB are 10^9 bytes.
 */

#define PB_BUF	(256u << 10)
#define PB_MAXT 1024

static struct sockaddr_in pb_dst, pb_proxy;
static bool pb_socks;
static double pb_seconds = 3;

static uint64_t pb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int pb_addr(const char *s, struct sockaddr_in *a)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (!colon || (size_t)(colon - s) >= sizeof(host))
		return -1;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static int pb_read_full(int fd, void *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (char *)p + got, n - got);

		if (r <= 0)
			return r == 0 ? -EPIPE : -errno;
		got += (size_t)r;
	}
	return 0;
}

static int pb_write_full(int fd, const void *p, size_t n)
{
	size_t put = 0;

	while (put < n) {
		ssize_t r = write(fd, (const char *)p + put, n - put);

		if (r < 0)
			return -errno;
		put += (size_t)r;
	}
	return 0;
}

/*
 * pb_connect() - a connection to pb_dst, through the SOCKS5 proxy if one is set
 * Return: the descriptor, or a negative errno (-EPROTO: the proxy refused,
 * with its reply code in *rep).
 */
static int pb_connect(int *rep)
{
	const struct sockaddr_in *to = pb_socks ? &pb_proxy : &pb_dst;
	uint8_t req[10] = {5, 1, 0, 1}, m[2], head[4], rest[18];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, ret;

	*rep = 0;
	if (fd < 0)
		return -errno;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(fd, (const struct sockaddr *)to, sizeof(*to))) {
		ret = -errno;
		goto fail;
	}
	if (!pb_socks)
		return fd;
	memcpy(req + 4, &pb_dst.sin_addr, 4);
	memcpy(req + 8, &pb_dst.sin_port, 2);
	if ((ret = pb_write_full(fd, "\x05\x01\x00", 3)) || (ret = pb_read_full(fd, m, 2)))
		goto fail;
	if (m[0] != 5 || m[1] != 0) {
		ret = -EPROTO;
		goto fail;
	}
	if ((ret = pb_write_full(fd, req, sizeof(req))) || (ret = pb_read_full(fd, head, 4)))
		goto fail;
	*rep = head[1];
	if (head[1] != 0) {
		ret = -EPROTO;
		goto fail;
	}
	ret = pb_read_full(fd, rest, head[3] == 4 ? 18 : 6);
	if (ret)
		goto fail;
	return fd;
fail:
	close(fd);
	return ret;
}

/* ---- servers ---- */

static int pb_listen(const char *addr, int port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0 || inet_pton(AF_INET, addr, &a.sin_addr) != 1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 4096)) {
		perror("vb-pxbench: listen");
		exit(1);
	}
	return fd;
}

static void *pb_sink_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *buf = malloc(PB_BUF);
	uint64_t n = 0, be;

	while (buf && pb_read_full(fd, buf, PB_BUF) == 0) {
		if (buf[0] == 1) {
			be = __builtin_bswap64(n);
			pb_write_full(fd, &be, sizeof(be));
			break;
		}
		n += PB_BUF;
	}
	free(buf);
	close(fd);
	return NULL;
}

static void *pb_source_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char *buf = calloc(1, PB_BUF);

	while (buf && write(fd, buf, PB_BUF) > 0)
		;
	free(buf);
	close(fd);
	return NULL;
}

struct pb_acceptor {
	int fd;
	void *(*fn)(void *);
};

static void *pb_accept_loop(void *arg)
{
	struct pb_acceptor *a = arg;
	pthread_attr_t attr;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64u << 10);
	for (;;) {
		int c = accept4(a->fd, NULL, NULL, SOCK_CLOEXEC);
		pthread_t t;

		if (c < 0)
			continue;
		if (pthread_create(&t, &attr, a->fn, (void *)(intptr_t)c))
			close(c);
	}
	return NULL;
}

/* An echo connection: what was read and not yet written back. */
struct pb_echo {
	int fd;
	size_t off, len;
	char buf[16384];
};

/* Writes back what is pending; returns 1 when all is written, 0 when it would block, -1 on error.
 */
static int pb_echo_flush(struct pb_echo *e)
{
	while (e->off < e->len) {
		ssize_t w = write(e->fd, e->buf + e->off, e->len - e->off);

		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		e->off += (size_t)w;
	}
	e->off = e->len = 0;
	return 1;
}

/*
 * The echo: one epoll thread. A connection whose peer reads slowly stops
 * being read until its bytes are written back, so nothing is dropped and
 * each connection holds at most one 16 KiB buffer.
 */
static void pb_echo_loop(int lfd)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[256];

	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
	for (;;) {
		int n = epoll_wait(ep, evs, 256, -1);

		for (int i = 0; i < n; i++) {
			struct pb_echo *e = evs[i].data.ptr;
			int r = 1;

			if (!e) {
				int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

				if (c >= 0 && (e = calloc(1, sizeof(*e)))) {
					e->fd = c;
					ev.events = EPOLLIN;
					ev.data.ptr = e;
					epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
				} else if (c >= 0) {
					close(c);
				}
				continue;
			}
			if (e->len)
				r = pb_echo_flush(e);
			while (r == 1) {
				ssize_t got = read(e->fd, e->buf, sizeof(e->buf));

				if (got < 0 && errno == EAGAIN)
					break;
				if (got <= 0) {
					r = -1;
					break;
				}
				e->len = (size_t)got;
				r = pb_echo_flush(e);
			}
			if (r < 0) {
				close(e->fd); /* leaves the epoll set with it */
				free(e);
				continue;
			}
			ev.events = e->len ? EPOLLOUT : EPOLLIN;
			ev.data.ptr = e;
			epoll_ctl(ep, EPOLL_CTL_MOD, e->fd, &ev);
		}
	}
}

static int pb_serve(const char *addr, int port)
{
	static struct pb_acceptor sink, source;
	pthread_t t;

	sink.fd = pb_listen(addr, port);
	sink.fn = pb_sink_conn;
	source.fd = pb_listen(addr, port + 1);
	source.fn = pb_source_conn;
	pthread_create(&t, NULL, pb_accept_loop, &sink);
	pthread_create(&t, NULL, pb_accept_loop, &source);
	printf("serving sink %d, source %d, echo %d on %s\n", port, port + 1, port + 2, addr);
	fflush(stdout);
	pb_echo_loop(pb_listen(addr, port + 2));
	return 0;
}

/* ---- bulk clients ---- */

struct pb_flow {
	pthread_t t;
	int fd;
	bool up;
	uint64_t bytes, t0, t1;
	int err;
};

static pthread_barrier_t pb_start;

static void *pb_flow_run(void *arg)
{
	struct pb_flow *f = arg;
	char *buf = calloc(1, PB_BUF);
	uint64_t end, be;
	ssize_t r;

	pthread_barrier_wait(&pb_start);
	f->t0 = pb_now_ns();
	end = f->t0 + (uint64_t)(pb_seconds * 1e9);
	if (f->up) {
		while (!f->err && pb_now_ns() < end)
			f->err = pb_write_full(f->fd, buf, PB_BUF);
		buf[0] = 1; /* the end block */
		if (!f->err)
			f->err = pb_write_full(f->fd, buf, PB_BUF);
		if (!f->err)
			f->err = pb_read_full(f->fd, &be, sizeof(be));
		f->bytes = f->err ? 0 : __builtin_bswap64(be);
	} else {
		while (pb_now_ns() < end) {
			r = read(f->fd, buf, PB_BUF);
			if (r <= 0) {
				f->err = r ? -errno : -EPIPE;
				break;
			}
			f->bytes += (uint64_t)r;
		}
	}
	f->t1 = pb_now_ns();
	close(f->fd);
	free(buf);
	return NULL;
}

static int pb_bulk(bool up, int n)
{
	struct pb_flow *fl = calloc((size_t)n, sizeof(*fl));
	uint64_t bytes = 0, t0 = UINT64_MAX, t1 = 0;
	int rep, err = 0;

	for (int i = 0; i < n; i++) {
		fl[i].up = up;
		fl[i].fd = pb_connect(&rep);
		if (fl[i].fd < 0) {
			fprintf(stderr, "vb-pxbench: connect: %s (SOCKS5 reply %d)\n",
				strerror(-fl[i].fd), rep);
			return 1;
		}
	}
	pthread_barrier_init(&pb_start, NULL, (unsigned)n);
	for (int i = 0; i < n; i++)
		pthread_create(&fl[i].t, NULL, pb_flow_run, &fl[i]);
	for (int i = 0; i < n; i++) {
		pthread_join(fl[i].t, NULL);
		bytes += fl[i].bytes;
		t0 = fl[i].t0 < t0 ? fl[i].t0 : t0;
		t1 = fl[i].t1 > t1 ? fl[i].t1 : t1;
		err = err ? err : fl[i].err;
	}
	printf("{\"mode\":\"%s\",\"streams\":%d,\"bytes\":%llu,\"seconds\":%.3f,\"GBps\":%.4f,"
	       "\"error\":\"%s\"}\n",
	       up ? "up" : "down", n, (unsigned long long)bytes, (double)(t1 - t0) / 1e9,
	       (double)bytes / (double)(t1 - t0), err ? strerror(-err) : "");
	free(fl);
	return err ? 1 : 0;
}

/* ---- connection rate ---- */

struct pb_conn {
	pthread_t t;
	uint64_t n, fails;
	uint64_t *lat; /* ns from connect() to a usable connection */
	size_t nlat, cap;
	int first_err, first_rep;
};

static void *pb_conn_run(void *arg)
{
	struct pb_conn *c = arg;
	uint64_t end = pb_now_ns() + (uint64_t)(pb_seconds * 1e9), t0;
	char b = 'x';
	int fd, rep;

	while ((t0 = pb_now_ns()) < end) {
		fd = pb_connect(&rep);
		if (fd >= 0 && c->nlat < c->cap)
			c->lat[c->nlat++] = pb_now_ns() - t0;
		if (fd < 0 || pb_write_full(fd, &b, 1) || pb_read_full(fd, &b, 1)) {
			if (!c->fails++) {
				c->first_err = fd < 0 ? -fd : EPIPE;
				c->first_rep = rep;
			}
			if (fd >= 0)
				close(fd);
			continue;
		}
		close(fd);
		c->n++;
	}
	return NULL;
}

static int pb_u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int pb_conn_rate(int conc)
{
	struct pb_conn *cs = calloc((size_t)conc, sizeof(*cs));
	uint64_t n = 0, fails = 0, *all, t0 = pb_now_ns(), dt;
	size_t nall = 0;
	int first_err = 0, first_rep = 0;

	for (int i = 0; i < conc; i++) {
		cs[i].cap = 1u << 20;
		cs[i].lat = malloc(cs[i].cap * sizeof(uint64_t));
		pthread_create(&cs[i].t, NULL, pb_conn_run, &cs[i]);
	}
	for (int i = 0; i < conc; i++) {
		pthread_join(cs[i].t, NULL);
		n += cs[i].n;
		fails += cs[i].fails;
		nall += cs[i].nlat;
		if (!first_err && cs[i].fails) {
			first_err = cs[i].first_err;
			first_rep = cs[i].first_rep;
		}
	}
	dt = pb_now_ns() - t0;
	all = malloc((nall + 1) * sizeof(uint64_t));
	nall = 0;
	for (int i = 0; i < conc; i++) {
		memcpy(all + nall, cs[i].lat, cs[i].nlat * sizeof(uint64_t));
		nall += cs[i].nlat;
		free(cs[i].lat);
	}
	qsort(all, nall, sizeof(uint64_t), pb_u64_cmp);
	printf(
	    "{\"mode\":\"conn\",\"concurrency\":%d,\"conns\":%llu,\"fails\":%llu,\"seconds\":%.3f,"
	    "\"per_s\":%.1f,\"connect_p50_ms\":%.3f,\"connect_p99_ms\":%.3f,\"error\":\"%s\","
	    "\"socks_reply\":%d}\n",
	    conc, (unsigned long long)n, (unsigned long long)fails, (double)dt / 1e9,
	    (double)n * 1e9 / (double)dt, nall ? (double)all[nall / 2] / 1e6 : 0.0,
	    nall ? (double)all[(nall * 99 + 99) / 100 - 1] / 1e6 : 0.0,
	    first_err ? strerror(first_err) : "", first_rep);
	free(all);
	free(cs);
	return n ? 0 : 1;
}

/* ---- idle connections ---- */

static int pb_idle(int n)
{
	int *fds = calloc((size_t)n, sizeof(int)), rep;
	char b = 'i';

	for (int i = 0; i < n; i++) {
		fds[i] = pb_connect(&rep);
		if (fds[i] < 0 || pb_write_full(fds[i], &b, 1) || pb_read_full(fds[i], &b, 1)) {
			fprintf(stderr, "vb-pxbench: idle connection %d: %s (SOCKS5 reply %d)\n", i,
				fds[i] < 0 ? strerror(-fds[i]) : "no echo", rep);
			return 1;
		}
	}
	printf("{\"mode\":\"idle\",\"open\":%d}\n", n);
	fflush(stdout);
	while (read(0, &b, 1) > 0)
		;
	for (int i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
	return 0;
}

/* ---- load: many connections at once, every byte checked ---- */

/* A connection of the load: its two ends of the same pseudo-random stream. */
struct pb_load {
	int fd;
	uint64_t tx_state, rx_state;
	uint64_t sent, got;
	bool done;
};

/* xorshift64*: connection i's stream, the same for the sender and the checker. */
static uint8_t pb_prng_byte(uint64_t *x)
{
	*x ^= *x >> 12;
	*x ^= *x << 25;
	*x ^= *x >> 27;
	return (uint8_t)((*x * 0x2545F4914F6CDD1Dull) >> 56);
}

/* Sends what the socket takes; returns 0 or -1 on error. */
static int pb_load_send(struct pb_load *c, uint64_t bytes)
{
	uint8_t buf[16384];

	while (c->sent < bytes) {
		size_t n = bytes - c->sent < sizeof(buf) ? (size_t)(bytes - c->sent) : sizeof(buf);
		uint64_t x = c->tx_state;
		ssize_t w;

		for (size_t i = 0; i < n; i++)
			buf[i] = pb_prng_byte(&x);
		w = write(c->fd, buf, n);
		if (w < 0)
			return errno == EAGAIN ? 0 : -1;
		/* Advance the stream by what was taken only. */
		for (ssize_t i = 0; i < w; i++)
			pb_prng_byte(&c->tx_state);
		c->sent += (uint64_t)w;
	}
	return 0;
}

/* Reads and checks what came back; returns 0, or -1 on error, EOF too early or a wrong byte. */
static int pb_load_recv(struct pb_load *c, uint64_t bytes, const char **why)
{
	uint8_t buf[16384];

	for (;;) {
		ssize_t r = read(c->fd, buf, sizeof(buf));

		if (r < 0 && errno == EAGAIN)
			return 0;
		if (r <= 0) {
			*why = r < 0 ? strerror(errno) : "closed early";
			return -1;
		}
		if (c->got + (uint64_t)r > bytes) {
			*why = "more bytes than were sent";
			return -1;
		}
		for (ssize_t i = 0; i < r; i++) {
			if (buf[i] != pb_prng_byte(&c->rx_state)) {
				*why = "a byte differs";
				return -1;
			}
		}
		c->got += (uint64_t)r;
		if (c->got == bytes) {
			c->done = true;
			return 0;
		}
	}
}

/* Runs the transfers of all connections to completion; returns how many failed. */
static int pb_load_run(struct pb_load *cs, int n, uint64_t bytes)
{
	int ep = epoll_create1(EPOLL_CLOEXEC), left = n, failed = 0;
	struct epoll_event ev, evs[256];
	const char *why = "";

	for (int i = 0; i < n; i++) {
		ev.events = EPOLLIN | EPOLLOUT;
		ev.data.ptr = &cs[i];
		fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
	}
	while (left > 0) {
		int k = epoll_wait(ep, evs, 256, 60000);

		if (k <= 0) {
			fprintf(stderr, "vb-pxbench: load: no progress for 60 s, %d left\n", left);
			failed += left;
			break;
		}
		for (int i = 0; i < k; i++) {
			struct pb_load *c = evs[i].data.ptr;
			int bad = 0;

			if (evs[i].events & EPOLLOUT)
				bad = pb_load_send(c, bytes);
			if (!bad && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
				bad = pb_load_recv(c, bytes, &why);
			if (bad && !failed++)
				fprintf(stderr,
					"vb-pxbench: load: connection %ld: %s after %llu of %llu "
					"bytes\n",
					(long)(c - cs), bad && *why ? why : strerror(errno),
					(unsigned long long)c->got, (unsigned long long)bytes);
			if (bad || c->done) {
				epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
				left--;
			} else if (c->sent == bytes) {
				ev.events = EPOLLIN;
				ev.data.ptr = c;
				epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
			}
		}
	}
	close(ep);
	return failed;
}

static int pb_load(int n, uint64_t bytes, bool hold)
{
	struct pb_load *cs = calloc((size_t)n, sizeof(*cs));
	uint64_t t0, t1;
	int failed, rep, opened = 0;
	char b;

	if (!cs)
		return 1;
	t0 = pb_now_ns();
	for (; opened < n; opened++) {
		cs[opened].fd = pb_connect(&rep);
		if (cs[opened].fd < 0) {
			fprintf(stderr, "vb-pxbench: load: connection %d: %s (SOCKS5 reply %d)\n",
				opened, strerror(-cs[opened].fd), rep);
			break;
		}
		cs[opened].tx_state = cs[opened].rx_state =
		    0x9E3779B97F4A7C15ull * (uint64_t)(opened + 1);
	}
	t1 = pb_now_ns();
	failed = (n - opened) + pb_load_run(cs, opened, bytes);
	printf("{\"mode\":\"load\",\"conns\":%d,\"bytes_each\":%llu,\"ok\":%d,\"failed\":%d,"
	       "\"open_s\":%.3f,\"total_s\":%.3f}\n",
	       n, (unsigned long long)bytes, n - failed, failed, (double)(t1 - t0) / 1e9,
	       (double)(pb_now_ns() - t0) / 1e9);
	fflush(stdout);
	while (hold && read(0, &b, 1) > 0)
		;
	for (int i = 0; i < opened; i++)
		close(cs[i].fd);
	free(cs);
	return failed ? 1 : 0;
}

static void pb_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: vb-pxbench serve ADDR PORT\n"
	    "       vb-pxbench up|down HOST:PORT [--socks ADDR:PORT] [-t SECONDS] [-P STREAMS]\n"
	    "       vb-pxbench conn HOST:PORT [--socks ADDR:PORT] [-t SECONDS] [-c CONCURRENCY]\n"
	    "       vb-pxbench idle HOST:PORT [--socks ADDR:PORT] -n N\n"
	    "       vb-pxbench load HOST:PORT [--socks ADDR:PORT] -n N [-b BYTES] [--hold]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socks", required_argument, NULL, 's'}, {"hold", no_argument, NULL, 'H'}, {0}};
	uint64_t bytes = 65536;
	bool hold = false;
	int opt, streams = 1, conc = 16, n = 100;
	const char *mode;

	signal(SIGPIPE, SIG_IGN);
	if (argc < 3) {
		pb_usage(stderr);
		return 2;
	}
	mode = argv[1];
	if (!strcmp(mode, "serve"))
		return pb_serve(argv[2], atoi(argv[3 < argc ? 3 : 2]));
	if (pb_addr(argv[2], &pb_dst)) {
		pb_usage(stderr);
		return 2;
	}
	optind = 3;
	while ((opt = getopt_long(argc, argv, "t:P:c:n:b:", opts, NULL)) != -1) {
		switch (opt) {
		case 's':
			if (pb_addr(optarg, &pb_proxy))
				return 2;
			pb_socks = true;
			break;
		case 't':
			pb_seconds = atof(optarg);
			break;
		case 'P':
			streams = atoi(optarg);
			break;
		case 'c':
			conc = atoi(optarg);
			break;
		case 'n':
			n = atoi(optarg);
			break;
		case 'b':
			bytes = strtoull(optarg, NULL, 10);
			break;
		case 'H':
			hold = true;
			break;
		default:
			pb_usage(stderr);
			return 2;
		}
	}
	if (streams < 1 || streams > PB_MAXT || conc < 1 || conc > PB_MAXT || n < 1) {
		pb_usage(stderr);
		return 2;
	}
	if (!strcmp(mode, "up") || !strcmp(mode, "down"))
		return pb_bulk(!strcmp(mode, "up"), streams);
	if (!strcmp(mode, "conn"))
		return pb_conn_rate(conc);
	if (!strcmp(mode, "idle"))
		return pb_idle(n);
	if (!strcmp(mode, "load"))
		return pb_load(n, bytes, hold);
	pb_usage(stderr);
	return 2;
}
