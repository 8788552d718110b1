/* vb-rawbench: bytes through the bare channel socket, no session, as the baseline of channel.sh. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/*
 * Theory of operation
 *
 * The client connects one socket per stream, waits until every stream is
 * connected, then each sends a 16-byte request (mode u8, reserved u8[7],
 * bytes u64 big-endian) and starts its clock:
 *   SINK    the client writes for the duration, then shuts its write side;
 *           the server counts and discards, and at EOF answers the count (u64)
 *   SOURCE  the server writes `bytes` bytes (UINT64_MAX: until the client
 *           closes); the client counts what arrives by its deadline, then closes
 *   ECHO    the server writes back what it reads; the client sends one byte
 *           and waits for it, again and again (the round-trip time)
 * Both sides use plain blocking read and write of 128 KiB buffers, one thread
 * per connection: nothing but the kernel between the bytes and the channel.
 * MB are 10^6 bytes, as in `vmbusify bench`.
 */

#define RB_BUF	       (128u << 10)
#define RB_REQ_LEN     16
#define RB_MAX_STREAMS 1024

enum rb_mode { RB_SINK = 1, RB_SOURCE = 2, RB_ECHO = 3 };

struct rb_client;

/* One client connection and what it measured. */
struct rb_flow {
	struct rb_client *cl;
	pthread_t thread;
	int fd;
	int err;
	uint64_t bytes;
	uint64_t t_start, t_end;
	uint64_t *rtt; /* ECHO: round trips in ns */
	size_t nrtt, rtt_cap;
};

struct rb_client {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	enum rb_mode mode;
	double seconds;
	int nstreams;
	bool json;
	pthread_barrier_t start;
	struct rb_flow *flows;
};

static uint8_t rb_pattern[RB_BUF];

static uint64_t rb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void rb_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t rb_get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* Reads exactly len bytes; returns 0, -EPIPE at an early EOF, or a negative errno. */
static int rb_read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EPIPE;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Writes exactly len bytes; returns 0 or a negative errno. */
static int rb_write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Turns "unix:///path" into the path; returns 0 or -EINVAL. */
static int rb_parse_uri(const char *uri, char *path, size_t len)
{
	static const char prefix[] = "unix://";

	if (strncmp(uri, prefix, sizeof(prefix) - 1))
		return -EINVAL;
	uri += sizeof(prefix) - 1;
	if (*uri != '/' || strlen(uri) >= len)
		return -EINVAL;
	snprintf(path, len, "%s", uri);
	return 0;
}

static void rb_sockaddr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	snprintf(sa->sun_path, sizeof(sa->sun_path), "%s", path);
}

/* ---- server ---- */

/* SINK: counts until EOF, then answers the count. */
static int rb_serve_sink(int fd, uint8_t *buf)
{
	uint64_t count = 0;
	uint8_t reply[8];

	for (;;) {
		ssize_t n = read(fd, buf, RB_BUF);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		count += (uint64_t)n;
	}
	rb_put_u64(reply, count);
	return rb_write_full(fd, reply, sizeof(reply));
}

/* SOURCE: writes bytes bytes of the pattern; a closed peer ends it early. */
static int rb_serve_source(int fd, uint64_t bytes)
{
	while (bytes) {
		size_t n = bytes < RB_BUF ? (size_t)bytes : RB_BUF;
		int ret = rb_write_full(fd, rb_pattern, n);

		if (ret)
			return ret;
		bytes -= n;
	}
	return 0;
}

/* ECHO: writes back whatever arrives, until EOF. */
static int rb_serve_echo(int fd, uint8_t *buf)
{
	for (;;) {
		ssize_t n = read(fd, buf, RB_BUF);
		int ret;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : 0;
		ret = rb_write_full(fd, buf, (size_t)n);
		if (ret)
			return ret;
	}
}

/* Serves one connection on its own thread; arg is the descriptor, closed at the end. */
static void *rb_serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	uint8_t req[RB_REQ_LEN];
	uint8_t *buf = malloc(RB_BUF);

	if (buf && !rb_read_full(fd, req, sizeof(req))) {
		if (req[0] == RB_SINK)
			rb_serve_sink(fd, buf);
		else if (req[0] == RB_SOURCE)
			rb_serve_source(fd, rb_get_u64(req + 8));
		else if (req[0] == RB_ECHO)
			rb_serve_echo(fd, buf);
	}
	free(buf);
	close(fd);
	return NULL;
}

/* Binds path (replacing a stale socket) and listens; returns 0 or a negative errno. */
static int rb_listen(const char *path, int *out)
{
	struct sockaddr_un sa;
	int fd, ret;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rb_sockaddr(path, &sa);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, SOMAXCONN)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	*out = fd;
	return 0;
}

static int rb_spawn_detached(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = -pthread_create(&t, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	return ret;
}

/* Accepts forever, one thread per connection; returns only on a listener error. */
static int rb_serve(const char *path)
{
	int lfd = -1, ret = rb_listen(path, &lfd);

	if (ret)
		return ret;
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);

		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0 && (errno == EMFILE || errno == ENFILE)) {
			usleep(10000);
			continue;
		}
		if (fd < 0) {
			ret = -errno;
			break;
		}
		if (rb_spawn_detached(rb_serve_conn, (void *)(intptr_t)fd))
			close(fd);
	}
	close(lfd);
	return ret;
}

/* ---- client ---- */

static int rb_connect(const char *path, int *out)
{
	struct sockaddr_un sa;
	int fd, ret;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rb_sockaddr(path, &sa);
	/* No handler is installed, so a blocking connect is not interrupted. */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		close(fd);
		return ret;
	}
	*out = fd;
	return 0;
}

/* SINK: writes until the deadline, then half-closes and takes the server's count. */
static int rb_flow_send(struct rb_flow *f, uint64_t deadline)
{
	uint8_t count[8];
	int ret;

	while (rb_now_ns() < deadline) {
		ret = rb_write_full(f->fd, rb_pattern, RB_BUF);
		if (ret)
			return ret;
	}
	shutdown(f->fd, SHUT_WR);
	ret = rb_read_full(f->fd, count, sizeof(count));
	f->t_end = rb_now_ns();
	if (!ret)
		f->bytes = rb_get_u64(count);
	return ret;
}

/* SOURCE: counts what arrives until the deadline. */
static int rb_flow_recv(struct rb_flow *f, uint64_t deadline)
{
	uint8_t *buf = malloc(RB_BUF);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(f->fd, buf, RB_BUF);
		uint64_t now;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EPIPE;
			break;
		}
		f->bytes += (uint64_t)n;
		now = rb_now_ns();
		if (now >= deadline) {
			f->t_end = now;
			break;
		}
	}
	free(buf);
	return ret;
}

static int rb_rtt_add(struct rb_flow *f, uint64_t ns)
{
	if (f->nrtt == f->rtt_cap) {
		size_t cap = f->rtt_cap ? f->rtt_cap * 2 : 65536;
		uint64_t *p = realloc(f->rtt, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		f->rtt = p;
		f->rtt_cap = cap;
	}
	f->rtt[f->nrtt++] = ns;
	return 0;
}

/* ECHO: one byte there and back, again and again until the deadline. */
static int rb_flow_echo(struct rb_flow *f, uint64_t deadline)
{
	uint8_t b = 0x5a;
	uint64_t t;
	int ret;

	while ((t = rb_now_ns()) < deadline) {
		ret = rb_write_full(f->fd, &b, 1);
		if (!ret)
			ret = rb_read_full(f->fd, &b, 1);
		if (!ret)
			ret = rb_rtt_add(f, rb_now_ns() - t);
		if (ret)
			return ret;
	}
	f->t_end = t;
	return 0;
}

/* Sends the request and runs the flow's mode for the client's duration. */
static int rb_flow_run(struct rb_flow *f)
{
	struct rb_client *cl = f->cl;
	uint8_t req[RB_REQ_LEN] = {0};
	uint64_t deadline;
	int ret;

	req[0] = (uint8_t)cl->mode;
	rb_put_u64(req + 8, cl->mode == RB_SOURCE ? UINT64_MAX : 0);
	ret = rb_write_full(f->fd, req, sizeof(req));
	if (ret)
		return ret;
	f->t_start = rb_now_ns();
	deadline = f->t_start + (uint64_t)(cl->seconds * 1e9);
	switch (cl->mode) {
	case RB_SINK:
		return rb_flow_send(f, deadline);
	case RB_SOURCE:
		return rb_flow_recv(f, deadline);
	default:
		return rb_flow_echo(f, deadline);
	}
}

/* A client thread: connect, wait for every stream, run, close. */
static void *rb_flow_main(void *arg)
{
	struct rb_flow *f = arg;

	f->fd = -1;
	f->err = rb_connect(f->cl->path, &f->fd);
	pthread_barrier_wait(&f->cl->start);
	if (!f->err)
		f->err = rb_flow_run(f);
	if (f->fd >= 0)
		close(f->fd);
	return NULL;
}

static int rb_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Prints the round trips of the one ECHO flow. */
static void rb_report_rtt(const struct rb_client *cl)
{
	struct rb_flow *f = &cl->flows[0];
	double med, p99;

	if (!f->nrtt) {
		fprintf(stderr, "vb-rawbench: no round trips measured\n");
		return;
	}
	qsort(f->rtt, f->nrtt, sizeof(*f->rtt), rb_cmp_u64);
	med = (double)f->rtt[f->nrtt / 2] / 1e6;
	p99 = (double)f->rtt[(f->nrtt * 99) / 100] / 1e6;
	if (cl->json)
		printf("{\"mode\":\"rtt\",\"n\":%zu,\"min_ms\":%.4f,\"median_ms\":%.4f,"
		       "\"p99_ms\":%.4f,\"max_ms\":%.4f}\n",
		       f->nrtt, (double)f->rtt[0] / 1e6, med, p99,
		       (double)f->rtt[f->nrtt - 1] / 1e6);
	else
		printf("rtt n=%zu min %.3f ms, median %.3f ms, p99 %.3f ms, max %.3f ms\n", f->nrtt,
		       (double)f->rtt[0] / 1e6, med, p99, (double)f->rtt[f->nrtt - 1] / 1e6);
}

/* Prints the sum over all flows and the slowest and fastest flow. */
static void rb_report_bulk(const struct rb_client *cl)
{
	uint64_t bytes = 0, t0 = UINT64_MAX, t1 = 0;
	double min = 1e30, max = 0, secs, mbps;

	for (int i = 0; i < cl->nstreams; i++) {
		const struct rb_flow *f = &cl->flows[i];
		double s = (double)(f->t_end - f->t_start) / 1e9;
		double m = s > 0 ? (double)f->bytes / 1e6 / s : 0;

		bytes += f->bytes;
		t0 = f->t_start < t0 ? f->t_start : t0;
		t1 = f->t_end > t1 ? f->t_end : t1;
		min = m < min ? m : min;
		max = m > max ? m : max;
	}
	secs = (double)(t1 - t0) / 1e9;
	mbps = secs > 0 ? (double)bytes / 1e6 / secs : 0;
	printf(cl->json ? "{\"mode\":\"%s\",\"streams\":%d,\"bytes\":%llu,\"seconds\":%.3f,"
			  "\"MBps\":%.1f,\"stream_min_MBps\":%.1f,\"stream_max_MBps\":%.1f}\n"
			: "%s streams=%d bytes=%llu seconds=%.3f MB/s=%.1f min=%.1f max=%.1f\n",
	       cl->mode == RB_SINK ? "send" : "recv", cl->nstreams, (unsigned long long)bytes, secs,
	       mbps, min, max);
}

/* Runs every flow on its own thread; returns 0 or the first flow's error. */
static int rb_client_run(struct rb_client *cl)
{
	int ret = 0, started = 0;

	cl->flows = calloc((size_t)cl->nstreams, sizeof(*cl->flows));
	if (!cl->flows)
		return -ENOMEM;
	pthread_barrier_init(&cl->start, NULL, (unsigned)cl->nstreams);
	for (; started < cl->nstreams; started++) {
		cl->flows[started].cl = cl;
		ret = -pthread_create(&cl->flows[started].thread, NULL, rb_flow_main,
				      &cl->flows[started]);
		if (ret)
			break;
	}
	/* A thread that did not start leaves the barrier short: nothing can run. */
	if (ret)
		abort();
	for (int i = 0; i < cl->nstreams; i++) {
		pthread_join(cl->flows[i].thread, NULL);
		if (!ret && cl->flows[i].err)
			ret = cl->flows[i].err;
	}
	pthread_barrier_destroy(&cl->start);
	return ret;
}

static void rb_usage(FILE *f)
{
	fprintf(f, "usage: vb-rawbench serve unix:///PATH\n"
		   "       vb-rawbench client unix:///PATH --send SECONDS|--recv SECONDS|--rtt "
		   "SECONDS\n"
		   "                          [--streams N] [--json]\n");
}

/* Parses the client's options into cl; returns 0 or -EINVAL. */
static int rb_client_args(int argc, char **argv, struct rb_client *cl)
{
	static const struct option opts[] = {
	    {"send", required_argument, NULL, 's'}, {"recv", required_argument, NULL, 'r'},
	    {"rtt", required_argument, NULL, 'e'},  {"streams", required_argument, NULL, 'P'},
	    {"json", no_argument, NULL, 'j'},	    {0},
	};
	int opt;

	cl->nstreams = 1;
	while ((opt = getopt_long(argc, argv, "s:r:e:P:j", opts, NULL)) != -1) {
		if (opt == 's' || opt == 'r' || opt == 'e') {
			cl->mode = opt == 's' ? RB_SINK : opt == 'r' ? RB_SOURCE : RB_ECHO;
			cl->seconds = strtod(optarg, NULL);
		} else if (opt == 'P') {
			cl->nstreams = atoi(optarg);
		} else if (opt == 'j') {
			cl->json = true;
		} else {
			return -EINVAL;
		}
	}
	if (!cl->mode || cl->seconds < 0.01 || cl->seconds > 3600 || cl->nstreams < 1 ||
	    cl->nstreams > RB_MAX_STREAMS || (cl->mode == RB_ECHO && cl->nstreams != 1))
		return -EINVAL;
	if (optind + 1 != argc)
		return -EINVAL;
	return rb_parse_uri(argv[optind], cl->path, sizeof(cl->path));
}

static int rb_client_main(int argc, char **argv)
{
	struct rb_client cl = {0};
	int ret;

	if (rb_client_args(argc, argv, &cl)) {
		rb_usage(stderr);
		return 2;
	}
	ret = rb_client_run(&cl);
	if (ret) {
		fprintf(stderr, "vb-rawbench: %s: %s\n", cl.path, strerror(-ret));
	} else if (cl.mode == RB_ECHO) {
		rb_report_rtt(&cl);
	} else {
		rb_report_bulk(&cl);
	}
	for (int i = 0; i < cl.nstreams; i++)
		free(cl.flows[i].rtt);
	free(cl.flows);
	return ret ? 1 : 0;
}

int main(int argc, char **argv)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int ret;

	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < sizeof(rb_pattern); i++)
		rb_pattern[i] = (uint8_t)(i * 131u + 7u);
	if (argc >= 2 && !strcmp(argv[1], "client"))
		return rb_client_main(argc - 1, argv + 1);
	if (argc != 3 || strcmp(argv[1], "serve") || rb_parse_uri(argv[2], path, sizeof(path))) {
		rb_usage(argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
		return argc >= 2 && !strcmp(argv[1], "--help") ? 0 : 2;
	}
	ret = rb_serve(path);
	fprintf(stderr, "vb-rawbench: %s: %s\n", path, strerror(-ret));
	return 1;
}
