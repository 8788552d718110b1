/* The event loop's contract, run once per backend (VMBUSIFY_BACKEND=uring, then epoll). */
/* VB_TEST_BOTH_BACKENDS */
#include <errno.h>
#include <fcntl.h>
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
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <setjmp.h>
#include <cmocka.h>
#include "platform/loop.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

#define MS		 1000000ull
#define TEST_DEADLINE_NS (10000 * MS)

/* The backend VMBUSIFY_BACKEND asked for (AUTO when unset). */
static enum loop_backend want_backend = LOOP_BACKEND_AUTO;

/* Set around every submitting call: a callback that sees it ran inside one. */
static bool in_submit;
/* Counts completions, to check their order. */
static int completion_seq;

#define SUBMIT(call)                                                                               \
	({                                                                                         \
		int ret_;                                                                          \
		in_submit = true;                                                                  \
		ret_ = (call);                                                                     \
		in_submit = false;                                                                 \
		ret_;                                                                              \
	})

/* Runs l until cond holds, failing the test after TEST_DEADLINE_NS. */
#define RUN_UNTIL(l, cond)                                                                         \
	do {                                                                                       \
		uint64_t dl_ = clock_now_ns() + TEST_DEADLINE_NS;                                  \
		while (!(cond)) {                                                                  \
			assert_true(clock_now_ns() < dl_);                                         \
			assert_true(loop_run_once((l), 50 * MS) >= 0);                             \
		}                                                                                  \
	} while (0)

/* One request and what its completions reported. */
struct op {
	struct loop_req req;
	int res;
	int calls;
	int seq;
	uint64_t at_ns;
};

static void op_cb(struct loop_req *r, int res)
{
	struct op *o = container_of(r, struct op, req);

	assert_false(in_submit);
	o->res = res;
	o->calls++;
	o->seq = ++completion_seq;
	o->at_ns = clock_now_ns();
}

/* Runs a few iterations (with short waits) so that whatever is ready completes. */
static void run_a_little(struct loop *l)
{
	for (int i = 0; i < 5; i++)
		assert_true(loop_run_once(l, 5 * MS) >= 0);
}

static void make_socketpair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

/* Fills fd's send buffer until write() would block. */
static void fill_send_buffer(int fd)
{
	static char junk[65536];

	while (write(fd, junk, sizeof(junk)) > 0)
		;
	assert_int_equal(errno, EAGAIN);
}

static int setup_loop(void **state)
{
	struct loop *l;

	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	if (want_backend != LOOP_BACKEND_AUTO)
		assert_string_equal(loop_backend_name(loop_backend(l)),
				    loop_backend_name(want_backend));
	completion_seq = 0;
	*state = l;
	return 0;
}

static int teardown_loop(void **state)
{
	loop_free(*state);
	return 0;
}

/*
 * Reading and writing
 */

static void test_write_then_read_over_socketpair(void **state)
{
	struct loop *l = *state;
	struct op w = {0}, r = {0};
	char buf[16] = {0};
	int sv[2];

	make_socketpair(sv);
	assert_int_equal(SUBMIT(loop_read(l, &r.req, sv[1], buf, sizeof(buf), op_cb)), 0);
	assert_int_equal(SUBMIT(loop_write(l, &w.req, sv[0], "hello", 5, op_cb)), 0);
	RUN_UNTIL(l, w.calls && r.calls);
	assert_int_equal(w.res, 5);
	assert_int_equal(r.res, 5);
	assert_memory_equal(buf, "hello", 5);
	close(sv[0]);
	close(sv[1]);
}

/* A 4 MiB transfer: writev of two-part chunks on one end, odd-sized reads on the other. */
struct xfer {
	struct loop *l;
	int wfd, rfd;
	unsigned char *src, *dst;
	size_t total, sent, recvd;
	struct vb_iov iov[2];
	struct loop_req wreq, rreq;
	int err;
	int writes, reads;
};

static void xfer_wrote(struct loop_req *r, int res);
static void xfer_got(struct loop_req *r, int res);

static void xfer_write_next(struct xfer *x)
{
	size_t left = x->total - x->sent;
	size_t chunk = left < 65536 ? left : 65536;
	size_t half = chunk / 3;

	x->iov[0] = (struct vb_iov){x->src + x->sent, half};
	x->iov[1] = (struct vb_iov){x->src + x->sent + half, chunk - half};
	assert_int_equal(SUBMIT(loop_writev(x->l, &x->wreq, x->wfd, x->iov, 2, xfer_wrote)), 0);
}

static void xfer_read_next(struct xfer *x)
{
	size_t left = x->total - x->recvd;
	size_t chunk = left < 100003 ? left : 100003;

	assert_int_equal(
	    SUBMIT(loop_read(x->l, &x->rreq, x->rfd, x->dst + x->recvd, chunk, xfer_got)), 0);
}

static void xfer_wrote(struct loop_req *r, int res)
{
	struct xfer *x = container_of(r, struct xfer, wreq);

	assert_false(in_submit);
	assert_true(res > 0);
	x->sent += (size_t)res;
	x->writes++;
	if (x->sent < x->total)
		xfer_write_next(x);
}

static void xfer_got(struct loop_req *r, int res)
{
	struct xfer *x = container_of(r, struct xfer, rreq);

	assert_false(in_submit);
	assert_true(res > 0);
	x->recvd += (size_t)res;
	x->reads++;
	if (x->recvd < x->total)
		xfer_read_next(x);
}

static void test_writev_4mib_in_chunks(void **state)
{
	struct xfer x = {.l = *state, .total = 4u << 20};
	int sv[2];

	make_socketpair(sv);
	x.wfd = sv[0];
	x.rfd = sv[1];
	x.src = malloc(x.total);
	x.dst = calloc(1, x.total);
	assert_non_null(x.src);
	assert_non_null(x.dst);
	for (size_t i = 0; i < x.total; i++)
		x.src[i] = (unsigned char)(i * 31 + i / 4099);
	xfer_write_next(&x);
	xfer_read_next(&x);
	RUN_UNTIL(x.l, x.sent == x.total && x.recvd == x.total);
	assert_true(x.writes >= 64);
	assert_memory_equal(x.src, x.dst, x.total);
	free(x.src);
	free(x.dst);
	close(sv[0]);
	close(sv[1]);
}

/* A read and a write in flight on one socket at once, each waiting for its own direction. */
static void test_read_and_write_wait_on_one_fd(void **state)
{
	struct loop *l = *state;
	static char big[65536], drain[65536];
	struct op w = {0}, r = {0};
	char buf[8] = {0};
	int sv[2];

	make_socketpair(sv);
	fill_send_buffer(sv[0]);
	assert_int_equal(SUBMIT(loop_write(l, &w.req, sv[0], big, sizeof(big), op_cb)), 0);
	assert_int_equal(SUBMIT(loop_read(l, &r.req, sv[0], buf, sizeof(buf), op_cb)), 0);
	run_a_little(l);
	assert_int_equal(w.calls + r.calls, 0);

	assert_int_equal(write(sv[1], "ping", 4), 4);
	RUN_UNTIL(l, r.calls);
	assert_int_equal(r.res, 4);
	assert_memory_equal(buf, "ping", 4);
	assert_int_equal(w.calls, 0);

	for (uint64_t dl = clock_now_ns() + TEST_DEADLINE_NS; !w.calls;) {
		while (read(sv[1], drain, sizeof(drain)) > 0)
			;
		assert_true(loop_run_once(l, 5 * MS) >= 0);
		assert_true(clock_now_ns() < dl);
	}
	assert_true(w.res > 0);
	assert_int_equal(r.calls, 1);
	close(sv[0]);
	close(sv[1]);
}

/* Reads and writes submitted together on both ends of a pair all complete. */
static void test_concurrent_read_write_same_fd(void **state)
{
	struct loop *l = *state;
	struct op ra = {0}, wa = {0}, rb = {0}, wb = {0};
	char bufa[8] = {0}, bufb[8] = {0};
	int sv[2];

	make_socketpair(sv);
	assert_int_equal(SUBMIT(loop_read(l, &ra.req, sv[0], bufa, sizeof(bufa), op_cb)), 0);
	assert_int_equal(SUBMIT(loop_read(l, &rb.req, sv[1], bufb, sizeof(bufb), op_cb)), 0);
	assert_int_equal(SUBMIT(loop_write(l, &wa.req, sv[0], "to-b", 4, op_cb)), 0);
	assert_int_equal(SUBMIT(loop_write(l, &wb.req, sv[1], "to-a", 4, op_cb)), 0);
	RUN_UNTIL(l, ra.calls && rb.calls && wa.calls && wb.calls);
	assert_int_equal(ra.res, 4);
	assert_int_equal(rb.res, 4);
	assert_memory_equal(bufa, "to-a", 4);
	assert_memory_equal(bufb, "to-b", 4);
	close(sv[0]);
	close(sv[1]);
}

static void test_eof_reads_zero(void **state)
{
	struct loop *l = *state;
	struct op r = {0};
	char buf[8];
	int sv[2];

	make_socketpair(sv);
	assert_int_equal(SUBMIT(loop_read(l, &r.req, sv[0], buf, sizeof(buf), op_cb)), 0);
	run_a_little(l);
	close(sv[1]);
	RUN_UNTIL(l, r.calls);
	assert_int_equal(r.res, 0);
	close(sv[0]);
}

static void test_write_to_closed_peer_is_epipe(void **state)
{
	struct loop *l = *state;
	struct op w = {0};
	int sv[2];

	make_socketpair(sv);
	close(sv[1]);
	assert_int_equal(SUBMIT(loop_write(l, &w.req, sv[0], "x", 1, op_cb)), 0);
	RUN_UNTIL(l, w.calls);
	assert_int_equal(w.res, -EPIPE);
	close(sv[0]);
}

/* Regular files: epoll refuses them (EPERM), the loop must still read and write them. */
static void test_regular_file_read_write(void **state)
{
	struct loop *l = *state;
	char path[] = "/tmp/vb_test_loop_XXXXXX";
	struct op w = {0}, r = {0};
	char buf[16] = {0};
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(SUBMIT(loop_write(l, &w.req, fd, "file data", 9, op_cb)), 0);
	RUN_UNTIL(l, w.calls);
	assert_int_equal(w.res, 9);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	assert_int_equal(SUBMIT(loop_read(l, &r.req, fd, buf, sizeof(buf), op_cb)), 0);
	RUN_UNTIL(l, r.calls);
	assert_int_equal(r.res, 9);
	assert_memory_equal(buf, "file data", 9);
	close(fd);
}

static void test_resubmitting_pending_request_is_ebusy(void **state)
{
	struct loop *l = *state;
	struct op r = {0};
	char buf[8];
	int sv[2];

	make_socketpair(sv);
	assert_int_equal(SUBMIT(loop_read(l, &r.req, sv[0], buf, sizeof(buf), op_cb)), 0);
	assert_int_equal(SUBMIT(loop_read(l, &r.req, sv[0], buf, sizeof(buf), op_cb)), -EBUSY);
	assert_int_equal(loop_cancel(l, &r.req), 0);
	RUN_UNTIL(l, r.calls);
	assert_int_equal(r.calls, 1);
	close(sv[0]);
	close(sv[1]);
}

#define MANY 1000

/* Sums the completions of n requests. */
static int calls_of(const struct op *ops, int n)
{
	int sum = 0;

	for (int i = 0; i < n; i++)
		sum += ops[i].calls;
	return sum;
}

/* More requests at once than the io_uring SQ and CQ hold: queued, then all cancelled. */
static void test_many_requests_overflow_the_queues(void **state)
{
	struct loop *l = *state;
	static struct op polls[MANY], reads[MANY];
	static char buf[MANY];
	int sv[2], cancelled = 0;

	memset(polls, 0, sizeof(polls));
	memset(reads, 0, sizeof(reads));
	make_socketpair(sv);
	for (int i = 0; i < MANY; i++) {
		assert_int_equal(SUBMIT(loop_poll(l, &polls[i].req, sv[0], LOOP_POLL_OUT, op_cb)),
				 0);
		assert_int_equal(SUBMIT(loop_read(l, &reads[i].req, sv[1], &buf[i], 1, op_cb)), 0);
	}
	for (int i = 0; i < MANY; i += 3)
		assert_int_equal(SUBMIT(loop_cancel(l, &polls[i].req)), 0);
	RUN_UNTIL(l, calls_of(polls, MANY) >= MANY);
	run_a_little(l);
	for (int i = 0; i < MANY; i++) {
		assert_int_equal(polls[i].calls, 1);
		/* A cancel may lose the race against a ready poll; an uncancelled poll never fails.
		 */
		if (i % 3 == 0 && polls[i].res == -ECANCELED)
			cancelled++;
		else
			assert_int_equal(polls[i].res, LOOP_POLL_OUT);
		assert_int_equal(reads[i].calls, 0);
	}
	print_message("%d of %d poll cancels won the race\n", cancelled, (MANY + 2) / 3);

	for (int i = 0; i < MANY; i++)
		assert_int_equal(SUBMIT(loop_cancel(l, &reads[i].req)), 0);
	RUN_UNTIL(l, calls_of(reads, MANY) >= MANY);
	run_a_little(l);
	for (int i = 0; i < MANY; i++) {
		assert_int_equal(reads[i].calls, 1);
		assert_int_equal(reads[i].res, -ECANCELED);
	}
	close(sv[0]);
	close(sv[1]);
}

/*
 * Accept and connect
 */

/* Accepts one connection on lfd while connecting cfd to addr; checks the new descriptor. */
static void accept_and_connect(struct loop *l, int lfd, int cfd, const void *addr, size_t len)
{
	struct op a = {0}, c = {0}, w = {0}, r = {0};
	char buf[4] = {0};

	assert_int_equal(SUBMIT(loop_accept(l, &a.req, lfd, op_cb)), 0);
	assert_int_equal(SUBMIT(loop_connect(l, &c.req, cfd, addr, len, op_cb)), 0);
	RUN_UNTIL(l, a.calls && c.calls);
	assert_int_equal(c.res, 0);
	assert_true(a.res >= 0);
	assert_true(fcntl(a.res, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(a.res, F_GETFD) & FD_CLOEXEC);
	assert_true(a.req.addrlen > 0 && a.req.addrlen <= sizeof(a.req.addr));

	assert_int_equal(SUBMIT(loop_write(l, &w.req, cfd, "abc", 3, op_cb)), 0);
	assert_int_equal(SUBMIT(loop_read(l, &r.req, a.res, buf, sizeof(buf), op_cb)), 0);
	RUN_UNTIL(l, w.calls && r.calls);
	assert_int_equal(r.res, 3);
	assert_memory_equal(buf, "abc", 3);
	close(a.res);
}

static void test_accept_connect_unix(void **state)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	socklen_t len;
	int lfd, cfd;

	/* An abstract address: nothing to clean up in the file system. */
	snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "vb_test_loop.%d", (int)getpid());
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sun.sun_path + 1));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_true(lfd >= 0 && cfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, len), 0);
	assert_int_equal(listen(lfd, 8), 0);
	accept_and_connect(*state, lfd, cfd, &sun, len);
	close(cfd);
	close(lfd);
}

/* A listening (or, with do_listen false, merely bound) TCP socket on 127.0.0.1. */
static int tcp_socket_on_loopback(struct sockaddr_in *sin, bool do_listen)
{
	socklen_t len = sizeof(*sin);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)sin, sizeof(*sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)sin, &len), 0);
	if (do_listen)
		assert_int_equal(listen(fd, 8), 0);
	return fd;
}

static void test_accept_connect_tcp(void **state)
{
	struct sockaddr_in sin;
	int lfd = tcp_socket_on_loopback(&sin, true);
	int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_true(cfd >= 0);
	accept_and_connect(*state, lfd, cfd, &sin, sizeof(sin));
	close(cfd);
	close(lfd);
}

static void test_connect_to_closed_port_is_refused(void **state)
{
	struct loop *l = *state;
	struct sockaddr_in sin;
	struct op c = {0};
	int bound = tcp_socket_on_loopback(&sin, false); /* bound, not listening: refuses */
	int cfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	assert_int_equal(SUBMIT(loop_connect(l, &c.req, cfd, &sin, sizeof(sin), op_cb)), 0);
	RUN_UNTIL(l, c.calls);
	assert_int_equal(c.res, -ECONNREFUSED);
	close(cfd);
	close(bound);
}

/*
 * Poll
 */

static void test_poll_reports_readable_writable_and_hangup(void **state)
{
	struct loop *l = *state;
	struct op in = {0}, out = {0}, hup = {0};
	int sv[2];

	make_socketpair(sv);
	assert_int_equal(SUBMIT(loop_poll(l, &in.req, sv[0], LOOP_POLL_IN, op_cb)), 0);
	run_a_little(l);
	assert_int_equal(in.calls, 0);
	assert_int_equal(write(sv[1], "x", 1), 1);
	RUN_UNTIL(l, in.calls);
	assert_int_equal(in.res, LOOP_POLL_IN);

	assert_int_equal(SUBMIT(loop_poll(l, &out.req, sv[0], LOOP_POLL_OUT, op_cb)), 0);
	RUN_UNTIL(l, out.calls);
	assert_int_equal(out.res, LOOP_POLL_OUT);

	close(sv[1]);
	assert_int_equal(SUBMIT(loop_poll(l, &hup.req, sv[0], LOOP_POLL_IN, op_cb)), 0);
	RUN_UNTIL(l, hup.calls);
	assert_true(hup.res & LOOP_POLL_HUP);
	assert_true(hup.res & LOOP_POLL_IN);
	assert_false(hup.res & LOOP_POLL_OUT);
	close(sv[0]);
}

/*
 * Timers
 */

static void test_timers_fire_in_deadline_order(void **state)
{
	static const unsigned ms[] = {30, 10, 20, 10, 0};
	static const int want_seq[] = {5, 2, 4, 3, 1};
	struct loop *l = *state;
	struct op t[5];
	uint64_t start = clock_now_ns();

	memset(t, 0, sizeof(t));
	for (int i = 0; i < 5; i++)
		assert_int_equal(SUBMIT(loop_timer(l, &t[i].req, ms[i] * MS, op_cb)), 0);
	RUN_UNTIL(l, t[0].calls);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(t[i].calls, 1);
		assert_int_equal(t[i].res, 0);
		assert_int_equal(t[i].seq, want_seq[i]);
		assert_true(t[i].at_ns - start >= ms[i] * MS);
	}
}

static void test_cancelled_timer_completes_once_with_ecanceled(void **state)
{
	struct loop *l = *state;
	struct op t = {0}, later = {0};

	assert_int_equal(SUBMIT(loop_timer(l, &t.req, 20 * MS, op_cb)), 0);
	assert_int_equal(SUBMIT(loop_timer(l, &later.req, 40 * MS, op_cb)), 0);
	assert_int_equal(SUBMIT(loop_cancel(l, &t.req)), 0);
	assert_int_equal(t.calls, 0);
	RUN_UNTIL(l, later.calls);
	assert_int_equal(t.calls, 1);
	assert_int_equal(t.res, -ECANCELED);
}

/*
 * Cancel
 */

/* Cancels a read (after run_first iterations, so the backend has it in flight). */
static void cancel_pending_read(struct loop *l, bool run_first)
{
	struct op r = {0};
	char buf[8], c;
	int sv[2];

	make_socketpair(sv);
	assert_int_equal(SUBMIT(loop_read(l, &r.req, sv[0], buf, sizeof(buf), op_cb)), 0);
	if (run_first)
		run_a_little(l);
	assert_int_equal(SUBMIT(loop_cancel(l, &r.req)), 0);
	assert_int_equal(loop_cancel(l, &r.req), -EALREADY);
	assert_int_equal(r.calls, 0);
	RUN_UNTIL(l, r.calls);
	assert_int_equal(r.res, -ECANCELED);
	assert_int_equal(loop_cancel(l, &r.req), -ENOENT);

	/* Data arriving later neither completes it again nor is eaten by it. */
	assert_int_equal(write(sv[1], "z", 1), 1);
	run_a_little(l);
	assert_int_equal(r.calls, 1);
	assert_int_equal(read(sv[0], &c, 1), 1);
	assert_int_equal(c, 'z');
	close(sv[0]);
	close(sv[1]);
}

static void test_cancel_pending_read_gives_ecanceled_once(void **state)
{
	cancel_pending_read(*state, true);
}

static void test_cancel_right_after_submit_gives_ecanceled_once(void **state)
{
	cancel_pending_read(*state, false);
}

static void test_cancel_of_idle_request_is_enoent(void **state)
{
	struct op r = {0};

	assert_int_equal(loop_cancel(*state, &r.req), -ENOENT);
}

/*
 * Threads: loop_post, loop_stop
 */

struct post_ctx {
	struct loop *l;
	pthread_t loop_thread;
	unsigned delay_ms;
	atomic_int ran;
	bool on_loop_thread;
};

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static void posted_stop(void *arg)
{
	struct post_ctx *c = arg;

	c->on_loop_thread = pthread_equal(pthread_self(), c->loop_thread);
	atomic_fetch_add(&c->ran, 1);
	loop_stop(c->l);
}

static void *post_later(void *arg)
{
	struct post_ctx *c = arg;

	sleep_ms(c->delay_ms);
	assert_int_equal(loop_post(c->l, posted_stop, c), 0);
	return NULL;
}

static void *stop_later(void *arg)
{
	struct post_ctx *c = arg;

	sleep_ms(c->delay_ms);
	loop_stop(c->l);
	return NULL;
}

static void watchdog_cb(struct loop_req *r, int res)
{
	op_cb(r, res);
	if (res == 0)
		loop_stop(r->data);
}

/* Bounds a loop_run() that a test expects another thread to stop. */
static void watchdog_arm(struct loop *l, struct op *w)
{
	w->req.data = l;
	assert_int_equal(loop_timer(l, &w->req, TEST_DEADLINE_NS, watchdog_cb), 0);
}

/* Checks that the watchdog did not fire, and takes it back. */
static void watchdog_disarm(struct loop *l, struct op *w)
{
	assert_int_equal(w->calls, 0);
	assert_int_equal(loop_cancel(l, &w->req), 0);
	RUN_UNTIL(l, w->calls);
}

/* Runs l on this thread while fn(c) runs on another. */
static void run_with_thread(struct loop *l, void *(*fn)(void *), struct post_ctx *c)
{
	struct op watchdog = {0};
	pthread_t t;

	c->l = l;
	c->loop_thread = pthread_self();
	watchdog_arm(l, &watchdog);
	assert_int_equal(pthread_create(&t, NULL, fn, c), 0);
	assert_int_equal(loop_run(l), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	watchdog_disarm(l, &watchdog);
}

static void test_post_from_another_thread_wakes_loop(void **state)
{
	struct post_ctx c = {.delay_ms = 30};

	run_with_thread(*state, post_later, &c);
	assert_int_equal(c.ran, 1);
	assert_true(c.on_loop_thread);
}

static void test_stop_from_another_thread(void **state)
{
	struct post_ctx c = {.delay_ms = 30};
	uint64_t start = clock_now_ns();

	run_with_thread(*state, stop_later, &c);
	assert_true(clock_now_ns() - start >= 30 * MS);
}

static void test_stop_before_run_returns_at_once(void **state)
{
	struct loop *l = *state;

	loop_stop(l);
	assert_int_equal(loop_run(l), 0);
	/* The stop was consumed: a second run would block, so only poll once here. */
	assert_true(loop_run_once(l, 0) >= 0);
}

#define POSTERS		 4
#define POSTS_PER_THREAD 2000

struct many_ctx {
	struct loop *l;
	int next_seq[POSTERS];
	int ran;
	bool out_of_order;
};

struct many_arg {
	struct many_ctx *c;
	int thread;
	int seq;
};

static struct many_arg many_args[POSTERS][POSTS_PER_THREAD];

static void many_posted(void *arg)
{
	struct many_arg *a = arg;
	struct many_ctx *c = a->c;

	if (a->seq != c->next_seq[a->thread]++)
		c->out_of_order = true;
	if (++c->ran == POSTERS * POSTS_PER_THREAD)
		loop_stop(c->l);
}

static void *many_poster(void *arg)
{
	struct many_arg *row = arg;

	for (int i = 0; i < POSTS_PER_THREAD; i++)
		assert_int_equal(loop_post(row[i].c->l, many_posted, &row[i]), 0);
	return NULL;
}

static void test_posts_from_many_threads_all_run_in_order(void **state)
{
	struct many_ctx c = {.l = *state};
	struct op watchdog = {0};
	pthread_t t[POSTERS];

	for (int i = 0; i < POSTERS; i++) {
		for (int j = 0; j < POSTS_PER_THREAD; j++)
			many_args[i][j] = (struct many_arg){&c, i, j};
	}
	watchdog_arm(c.l, &watchdog);
	for (int i = 0; i < POSTERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, many_poster, many_args[i]), 0);
	assert_int_equal(loop_run(c.l), 0);
	for (int i = 0; i < POSTERS; i++)
		assert_int_equal(pthread_join(t[i], NULL), 0);
	watchdog_disarm(c.l, &watchdog);
	assert_int_equal(c.ran, POSTERS * POSTS_PER_THREAD);
	assert_false(c.out_of_order);
}

/*
 * No re-entrancy
 */

/* Operations that could complete at once still complete from loop_run_once(), not the submit. */
static void test_callbacks_never_run_inside_submit(void **state)
{
	struct loop *l = *state;
	struct op w = {0}, r = {0}, t = {0}, p = {0}, cancelled = {0}, a = {0}, c = {0};
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	char buf[8];
	socklen_t len;
	int sv[2], sv2[2], lfd, cfd;

	make_socketpair(sv);
	make_socketpair(sv2);
	assert_int_equal(write(sv[1], "ready", 5), 5);
	snprintf(sun.sun_path + 1, sizeof(sun.sun_path) - 1, "vb_test_reent.%d", (int)getpid());
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sun.sun_path + 1));
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sun, len), 0);
	assert_int_equal(listen(lfd, 8), 0);

	assert_int_equal(SUBMIT(loop_write(l, &w.req, sv[0], "x", 1, op_cb)), 0);
	assert_int_equal(SUBMIT(loop_read(l, &r.req, sv[0], buf, sizeof(buf), op_cb)), 0);
	assert_int_equal(SUBMIT(loop_timer(l, &t.req, 0, op_cb)), 0);
	assert_int_equal(SUBMIT(loop_poll(l, &p.req, sv[0], LOOP_POLL_OUT, op_cb)), 0);
	assert_int_equal(SUBMIT(loop_connect(l, &c.req, cfd, &sun, len, op_cb)), 0);
	assert_int_equal(SUBMIT(loop_accept(l, &a.req, lfd, op_cb)), 0);
	assert_int_equal(SUBMIT(loop_read(l, &cancelled.req, sv2[0], buf, 1, op_cb)), 0);
	assert_int_equal(SUBMIT(loop_cancel(l, &cancelled.req)), 0);
	assert_int_equal(
	    w.calls + r.calls + t.calls + p.calls + c.calls + a.calls + cancelled.calls, 0);
	RUN_UNTIL(l, w.calls && r.calls && t.calls && p.calls && c.calls && a.calls &&
			 cancelled.calls);
	assert_int_equal(r.res, 5);
	assert_int_equal(c.res, 0);
	assert_true(a.res >= 0);
	close(a.res);
	close(cfd);
	close(lfd);
	close(sv[0]);
	close(sv[1]);
	close(sv2[0]);
	close(sv2[1]);
}

/*
 * The pool
 */

#define POOL_LOOPS 4

struct pool_probe {
	struct loop *l;
	pthread_t thread;
	atomic_bool seen;
	struct op timer;
	atomic_int *done;
};

static void pool_timer_cb(struct loop_req *r, int res)
{
	struct pool_probe *p = container_of(r, struct pool_probe, timer.req);

	assert_int_equal(res, 0);
	atomic_fetch_add(p->done, 1);
}

/* Runs on a pool thread: notes which thread, and does I/O there (a timer). */
static void pool_probe_posted(void *arg)
{
	struct pool_probe *p = arg;

	p->thread = pthread_self();
	atomic_store(&p->seen, true);
	assert_int_equal(loop_timer(p->l, &p->timer.req, 1 * MS, pool_timer_cb), 0);
}

static void mark_ran(void *arg)
{
	atomic_store((atomic_bool *)arg, true);
}

/* Waits (up to the deadline) until *count reaches want. */
static void wait_for_count(atomic_int *count, int want)
{
	uint64_t dl = clock_now_ns() + TEST_DEADLINE_NS;

	while (atomic_load(count) < want && clock_now_ns() < dl)
		sleep_ms(1);
	assert_int_equal(atomic_load(count), want);
}

static void test_pool_runs_each_loop_on_its_thread(void **state)
{
	struct pool_probe probes[POOL_LOOPS];
	atomic_bool after_stop = false;
	struct loop_pool *pool;
	atomic_int done = 0;

	memset(probes, 0, sizeof(probes));
	assert_int_equal(pool_new(&pool, POOL_LOOPS, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(pool_size(pool), POOL_LOOPS);
	assert_null(pool_loop(pool, POOL_LOOPS));
	for (int i = 0; i < 2 * POOL_LOOPS; i++)
		assert_ptr_equal(pool_pick(pool), pool_loop(pool, i % POOL_LOOPS));
	assert_int_equal(pool_start(pool), 0);
	assert_int_equal(pool_start(pool), -EALREADY);
	for (int i = 0; i < POOL_LOOPS; i++) {
		probes[i].l = pool_loop(pool, i);
		probes[i].done = &done;
		if (want_backend != LOOP_BACKEND_AUTO)
			assert_int_equal(loop_backend(probes[i].l), want_backend);
		assert_int_equal(loop_post(probes[i].l, pool_probe_posted, &probes[i]), 0);
	}
	wait_for_count(&done, POOL_LOOPS);
	for (int i = 0; i < POOL_LOOPS; i++) {
		assert_true(probes[i].seen);
		assert_false(pthread_equal(probes[i].thread, pthread_self()));
		for (int j = 0; j < i; j++)
			assert_false(pthread_equal(probes[i].thread, probes[j].thread));
	}
	pool_stop(pool);
	/* Stopped loops run nothing: this post stays queued until pool_free() drops it. */
	assert_int_equal(loop_post(pool_loop(pool, 0), mark_ran, &after_stop), 0);
	sleep_ms(20);
	assert_false(after_stop);
	pool_stop(pool);
	pool_free(pool);
}

static void test_pool_free_stops_a_running_pool(void **state)
{
	struct loop_pool *pool;
	atomic_int done = 0;
	struct pool_probe probe = {.done = &done};

	/* Stopped at once, before its threads may even have entered loop_run(). */
	assert_int_equal(pool_new(&pool, 2, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(pool_start(pool), 0);
	pool_stop(pool);
	pool_free(pool);
	/* Never started. */
	assert_int_equal(pool_new(&pool, 2, LOOP_BACKEND_AUTO), 0);
	pool_free(pool);
	/* Freed while running, after it did some work. */
	assert_int_equal(pool_new(&pool, 1, LOOP_BACKEND_AUTO), 0);
	probe.l = pool_loop(pool, 0);
	assert_int_equal(pool_start(pool), 0);
	assert_int_equal(loop_post(probe.l, pool_probe_posted, &probe), 0);
	wait_for_count(&done, 1);
	pool_free(pool);
}

static void test_backend_names_round_trip(void **state)
{
	enum loop_backend b;

	assert_int_equal(loop_backend_parse("uring", &b), 0);
	assert_int_equal(b, LOOP_BACKEND_URING);
	assert_int_equal(loop_backend_parse("epoll", &b), 0);
	assert_int_equal(b, LOOP_BACKEND_EPOLL);
	assert_int_equal(loop_backend_parse("auto", &b), 0);
	assert_int_equal(b, LOOP_BACKEND_AUTO);
	assert_int_equal(loop_backend_parse("kqueue", &b), -EINVAL);
	assert_string_equal(loop_backend_name(LOOP_BACKEND_EPOLL), "epoll");
	assert_string_equal(loop_backend_name(LOOP_BACKEND_URING), "uring");
}

#define LOOP_TEST(fn) cmocka_unit_test_setup_teardown(fn, setup_loop, teardown_loop)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    LOOP_TEST(test_write_then_read_over_socketpair),
	    LOOP_TEST(test_writev_4mib_in_chunks),
	    LOOP_TEST(test_read_and_write_wait_on_one_fd),
	    LOOP_TEST(test_concurrent_read_write_same_fd),
	    LOOP_TEST(test_eof_reads_zero),
	    LOOP_TEST(test_write_to_closed_peer_is_epipe),
	    LOOP_TEST(test_regular_file_read_write),
	    LOOP_TEST(test_resubmitting_pending_request_is_ebusy),
	    LOOP_TEST(test_many_requests_overflow_the_queues),
	    LOOP_TEST(test_accept_connect_unix),
	    LOOP_TEST(test_accept_connect_tcp),
	    LOOP_TEST(test_connect_to_closed_port_is_refused),
	    LOOP_TEST(test_poll_reports_readable_writable_and_hangup),
	    LOOP_TEST(test_timers_fire_in_deadline_order),
	    LOOP_TEST(test_cancelled_timer_completes_once_with_ecanceled),
	    LOOP_TEST(test_cancel_pending_read_gives_ecanceled_once),
	    LOOP_TEST(test_cancel_right_after_submit_gives_ecanceled_once),
	    LOOP_TEST(test_cancel_of_idle_request_is_enoent),
	    LOOP_TEST(test_post_from_another_thread_wakes_loop),
	    LOOP_TEST(test_stop_from_another_thread),
	    LOOP_TEST(test_stop_before_run_returns_at_once),
	    LOOP_TEST(test_posts_from_many_threads_all_run_in_order),
	    LOOP_TEST(test_callbacks_never_run_inside_submit),
	    cmocka_unit_test(test_pool_runs_each_loop_on_its_thread),
	    cmocka_unit_test(test_pool_free_stops_a_running_pool),
	    cmocka_unit_test(test_backend_names_round_trip),
	};
	const char *env = getenv("VMBUSIFY_BACKEND");
	struct loop *probe;
	int ret;

	/* Writing to a closed peer must come back as -EPIPE, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	if (env && *env && loop_backend_parse(env, &want_backend) < 0) {
		fprintf(stderr, "VMBUSIFY_BACKEND=%s is not a backend\n", env);
		return 1;
	}
	ret = loop_new(&probe, LOOP_BACKEND_AUTO);
	if (ret < 0 && want_backend == LOOP_BACKEND_URING) {
		printf("SKIP: io_uring was requested but is unavailable here: %s\n",
		       strerror(-ret));
		return 77;
	}
	if (ret < 0) {
		fprintf(stderr, "loop_new: %s\n", strerror(-ret));
		return 1;
	}
	if (want_backend != LOOP_BACKEND_AUTO && loop_backend(probe) != want_backend) {
		fprintf(stderr, "asked for backend %s, got %s\n", loop_backend_name(want_backend),
			loop_backend_name(loop_backend(probe)));
		loop_free(probe);
		return 1;
	}
	printf("backend: %s\n", loop_backend_name(loop_backend(probe)));
	loop_free(probe);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
