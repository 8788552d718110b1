/* Unit tests for the Linux transports: unix, tcp with a token, hybrid vsock, serial. */
/* VB_TEST_BOTH_BACKENDS */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <cmocka.h>
#include "core/uri.h"
#include "core/log.h"
#include "platform/gate.h"
#include "platform/loop.h"
#include "platform/transport.h"

/*
 * Nothing here sends traffic anywhere but loopback, and nothing creates an
 * AF_VSOCK socket: vsock itself is exercised inside the QEMU lab guest.
 */

#define WAIT_MS 5000

struct fx {
	char dir[64];
	struct loop *l;
};

struct done {
	bool done;
	int res;
	int fd;
	char why[160];
};

static char *fx_path(struct fx *f, const char *name, char *buf, size_t len)
{
	assert_true(snprintf(buf, len, "%s/%s", f->dir, name) < (int)len);
	return buf;
}

static struct sockaddr_un sun_of(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};

	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	return sa;
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/vb-transport.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(loop_new(&f->l, LOOP_BACKEND_AUTO), 0);
	*state = f;
	return 0;
}

/* Removes the test's directory and what it holds, whatever the test left behind. */
static int fx_teardown(void **state)
{
	struct fx *f = *state;
	struct dirent *e;
	char p[400];
	DIR *d = opendir(f->dir);

	while (d && (e = readdir(d))) {
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			unlink(fx_path(f, e->d_name, p, sizeof(p)));
	}
	if (d)
		closedir(d);
	rmdir(f->dir);
	loop_free(f->l);
	free(f);
	return 0;
}

static void run_until(struct loop *l, const bool *a, const bool *b)
{
	uint64_t end = clock_now_ns() + (uint64_t)WAIT_MS * 1000000;

	while (!(*a && (!b || *b)) && clock_now_ns() < end)
		loop_run_once(l, 10 * 1000000);
	assert_true(*a);
	if (b)
		assert_true(*b);
}

static void on_dial(struct transport_dial_req *dr, int res, pl_fd fd)
{
	struct done *d = dr->data;

	d->done = true;
	d->res = res;
	d->fd = (int)fd;
	snprintf(d->why, sizeof(d->why), "%s", dr->why);
}

static void on_accept(struct transport_accept_req *ar, int res, pl_fd fd)
{
	struct done *d = ar->data;

	d->done = true;
	d->res = res;
	d->fd = (int)fd;
}

static void parse(const char *s, struct uri *u)
{
	char why[200] = "";

	if (uri_parse(s, u, why, sizeof(why)) < 0)
		fail_msg("%s: %s", s, why);
}

static void parse_fmt(struct uri *u, const char *fmt, ...)
{
	char s[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s, sizeof(s), fmt, ap);
	va_end(ap);
	parse(s, u);
}

static struct transport_listener *listen_ok(const struct uri *u, const struct transport_opts *o)
{
	struct transport_listener *tl = NULL;
	char why[200] = "";

	if (transport_listen(u, o, &tl, why, sizeof(why)) < 0)
		fail_msg("listen: %s", why);
	return tl;
}

/* Dials u on the loop and returns the result; the callback must not run inside transport_dial. */
static struct done dial_async(struct fx *f, const struct uri *u, const struct transport_opts *o)
{
	struct transport_dial_req dr = {.data = NULL};
	struct done d = {.fd = -1};
	int r;

	dr.data = &d;
	r = transport_dial(f->l, u, o, &dr, on_dial);
	if (r < 0) {
		d.done = true;
		d.res = r;
		snprintf(d.why, sizeof(d.why), "%s", dr.why);
		return d;
	}
	assert_false(d.done);
	run_until(f->l, &d.done, NULL);
	return d;
}

static void assert_nonblock_cloexec(int fd)
{
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
}

/* Reads exactly n bytes from non-blocking fd within WAIT_MS. */
static void read_exact(int fd, void *buf, size_t n)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	size_t have = 0;

	while (have < n) {
		ssize_t r = read(fd, (char *)buf + have, n - have);

		if (r > 0) {
			have += (size_t)r;
			continue;
		}
		assert_true(r < 0 && errno == EAGAIN);
		assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	}
}

static void write_all(int fd, const void *buf, size_t n)
{
	assert_int_equal(write(fd, buf, n), (ssize_t)n);
}

/* Sends a few bytes each way between two connected descriptors. */
static void assert_connected(int a, int b)
{
	char buf[5];

	write_all(a, "hello", 5);
	read_exact(b, buf, 5);
	assert_memory_equal(buf, "hello", 5);
	write_all(b, "world", 5);
	read_exact(a, buf, 5);
	assert_memory_equal(buf, "world", 5);
}

/* ---- unix ---- */

static void test_unix_async_dial_meets_accept(void **state)
{
	struct fx *f = *state;
	struct transport_accept_req ar = {.data = NULL};
	struct done a = {.fd = -1}, d;
	struct transport_listener *tl;
	char p[200];
	struct uri u;

	parse_fmt(&u, "unix://%s", fx_path(f, "a.sock", p, sizeof(p)));
	tl = listen_ok(&u, NULL);
	ar.data = &a;
	assert_int_equal(transport_accept(f->l, tl, &ar, on_accept), 0);
	assert_false(a.done);
	d = dial_async(f, &u, NULL);
	run_until(f->l, &a.done, NULL);
	assert_int_equal(d.res, 0);
	assert_int_equal(a.res, 0);
	assert_nonblock_cloexec(d.fd);
	assert_nonblock_cloexec(a.fd);
	assert_connected(d.fd, a.fd);
	transport_close_fd(d.fd);
	transport_close_fd(a.fd);
	transport_listener_close(tl);
	assert_int_equal(access(p, F_OK), -1);
}

static void test_unix_sync_dial_meets_accept(void **state)
{
	struct fx *f = *state;
	struct transport_accept_req ar = {.data = NULL};
	struct done a = {.fd = -1};
	struct transport_listener *tl;
	char p[200], why[200] = "";
	pl_fd fd = -1;
	struct uri u;

	parse_fmt(&u, "unix://%s", fx_path(f, "s.sock", p, sizeof(p)));
	tl = listen_ok(&u, NULL);
	assert_int_equal(transport_dial_sync(&u, NULL, &fd, why, sizeof(why)), 0);
	ar.data = &a;
	assert_int_equal(transport_accept(f->l, tl, &ar, on_accept), 0);
	run_until(f->l, &a.done, NULL);
	assert_int_equal(a.res, 0);
	assert_nonblock_cloexec((int)fd);
	assert_connected((int)fd, a.fd);
	transport_close_fd(fd);
	transport_close_fd(a.fd);
	transport_listener_close(tl);
}

static void test_unix_abstract_name_works(void **state)
{
	struct fx *f = *state;
	struct transport_accept_req ar = {.data = NULL};
	struct done a = {.fd = -1}, d;
	struct transport_listener *tl;
	struct uri u;

	parse_fmt(&u, "unix://@vmbusify-test-%d", (int)getpid());
	tl = listen_ok(&u, NULL);
	ar.data = &a;
	assert_int_equal(transport_accept(f->l, tl, &ar, on_accept), 0);
	d = dial_async(f, &u, NULL);
	run_until(f->l, &a.done, NULL);
	assert_int_equal(d.res, 0);
	assert_connected(d.fd, a.fd);
	transport_close_fd(d.fd);
	transport_close_fd(a.fd);
	transport_listener_close(tl);
}

/* Leaves a socket file behind that nobody listens on, as a crashed server would. */
static void make_stale_socket(const char *path)
{
	struct sockaddr_un sa = sun_of(path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
}

static void test_unix_stale_socket_file_is_replaced(void **state)
{
	struct fx *f = *state;
	struct transport_listener *tl;
	char p[200], why[200] = "";
	pl_fd fd = -1;
	struct uri u;

	fx_path(f, "stale.sock", p, sizeof(p));
	make_stale_socket(p);
	parse_fmt(&u, "unix://%s", p);
	tl = listen_ok(&u, NULL);
	assert_int_equal(transport_dial_sync(&u, NULL, &fd, why, sizeof(why)), 0);
	transport_close_fd(fd);
	transport_listener_close(tl);
}

static void test_unix_live_server_is_not_replaced(void **state)
{
	struct fx *f = *state;
	struct transport_listener *tl, *tl2 = NULL;
	char p[200], why[200] = "";
	struct uri u;

	parse_fmt(&u, "unix://%s", fx_path(f, "live.sock", p, sizeof(p)));
	tl = listen_ok(&u, NULL);
	assert_int_equal(transport_listen(&u, NULL, &tl2, why, sizeof(why)), -EADDRINUSE);
	assert_null(tl2);
	assert_non_null(strstr(why, "another server is listening there"));
	assert_int_equal(access(p, F_OK), 0);
	transport_listener_close(tl);
}

static void test_unix_listen_leaves_other_files_alone(void **state)
{
	struct fx *f = *state;
	struct transport_listener *tl = NULL;
	char p[200], why[200] = "";
	struct uri u;
	int fd;

	fx_path(f, "plain", p, sizeof(p));
	fd = open(p, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	parse_fmt(&u, "unix://%s", p);
	assert_int_equal(transport_listen(&u, NULL, &tl, why, sizeof(why)), -EADDRINUSE);
	assert_non_null(strstr(why, "not a socket"));
	assert_int_equal(access(p, F_OK), 0);
}

static void test_unix_listen_in_missing_directory_says_why(void **state)
{
	struct fx *f = *state;
	struct transport_listener *tl = NULL;
	char p[200], why[200] = "";
	struct uri u;

	parse_fmt(&u, "unix://%s", fx_path(f, "nodir/x.sock", p, sizeof(p)));
	assert_int_equal(transport_listen(&u, NULL, &tl, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "listen unix://"));
	assert_non_null(strstr(why, "No such file or directory"));
}

static void test_unix_dial_to_nothing_says_why(void **state)
{
	struct fx *f = *state;
	char p[200], why[200] = "", want[300];
	pl_fd fd = -1;
	struct done d;
	struct uri u;

	parse_fmt(&u, "unix://%s", fx_path(f, "none.sock", p, sizeof(p)));
	snprintf(want, sizeof(want), "connect unix://%s: No such file or directory", p);
	d = dial_async(f, &u, NULL);
	assert_int_equal(d.res, -ENOENT);
	assert_int_equal(d.fd, -1);
	assert_string_equal(d.why, want);
	assert_int_equal(transport_dial_sync(&u, NULL, &fd, why, sizeof(why)), -ENOENT);
	assert_int_equal(fd, -1);
	assert_string_equal(why, want);
}

/*
 * A listener that never accepts, with its backlog full. Unix connects block
 * (or fail with EAGAIN) only then, which gives a deadline something to do.
 */
static int make_full_listener(const char *path, int *clients, int *nclients)
{
	struct sockaddr_un sa = sun_of(path);
	int lfd = socket(AF_UNIX, SOCK_STREAM, 0), n = 0;

	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 0), 0);
	for (; n < *nclients; n++) {
		clients[n] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
		if (connect(clients[n], (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			assert_int_equal(errno, EAGAIN);
			close(clients[n]);
			break;
		}
	}
	assert_true(n < *nclients);
	*nclients = n;
	return lfd;
}

static void close_all(int lfd, int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
	close(lfd);
}

static void test_unix_dial_times_out_on_a_full_backlog(void **state)
{
	struct fx *f = *state;
	struct transport_opts o = {.connect_timeout_ms = 200};
	char p[200], why[200] = "", want[300];
	int clients[16], n = 16, lfd;
	pl_fd fd = -1;
	struct done d;
	struct uri u;

	fx_path(f, "full.sock", p, sizeof(p));
	lfd = make_full_listener(p, clients, &n);
	parse_fmt(&u, "unix://%s", p);
	snprintf(want, sizeof(want), "connect unix://%s: timed out after 200 ms", p);
	d = dial_async(f, &u, &o);
	assert_int_equal(d.res, -ETIMEDOUT);
	assert_string_equal(d.why, want);
	assert_int_equal(transport_dial_sync(&u, &o, &fd, why, sizeof(why)), -ETIMEDOUT);
	assert_non_null(strstr(why, "timed out"));
	close_all(lfd, clients, n);
}

static void test_dial_cancel_completes_with_ecanceled(void **state)
{
	struct fx *f = *state;
	struct transport_dial_req dr = {.data = NULL};
	struct done d = {.fd = -1};
	int clients[16], n = 16, lfd;
	char p[200];
	struct uri u;

	fx_path(f, "cancel.sock", p, sizeof(p));
	lfd = make_full_listener(p, clients, &n);
	parse_fmt(&u, "unix://%s", p);
	dr.data = &d;
	assert_int_equal(transport_dial(f->l, &u, NULL, &dr, on_dial), 0);
	loop_run_once(f->l, 20 * 1000000);
	transport_dial_cancel(&dr);
	run_until(f->l, &d.done, NULL);
	assert_int_equal(d.res, -ECANCELED);
	assert_int_equal(d.fd, -1);
	close_all(lfd, clients, n);
}

static void test_accept_cancel_completes_with_ecanceled(void **state)
{
	struct fx *f = *state;
	struct transport_accept_req ar = {.data = NULL};
	struct done a = {.fd = -1};
	struct transport_listener *tl;
	char p[200];
	struct uri u;

	parse_fmt(&u, "unix://%s", fx_path(f, "acancel.sock", p, sizeof(p)));
	tl = listen_ok(&u, NULL);
	ar.data = &a;
	assert_int_equal(transport_accept(f->l, tl, &ar, on_accept), 0);
	loop_run_once(f->l, 0);
	transport_accept_cancel(&ar);
	run_until(f->l, &a.done, NULL);
	assert_int_equal(a.res, -ECANCELED);
	assert_int_equal(a.fd, -1);
	transport_listener_close(tl);
}

/* ---- tcp ---- */

static void write_token(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY, 0600);

	assert_true(fd >= 0);
	write_all(fd, text, strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void test_tcp_listen_without_token_file_is_refused(void **state)
{
	struct transport_listener *tl = NULL;
	char why[200] = "";
	struct uri u;

	parse("tcp://:0", &u);
	assert_int_equal(transport_listen(&u, NULL, &tl, why, sizeof(why)), -EINVAL);
	assert_null(tl);
	assert_string_equal(why, "tcp:// needs --token-file: refusing to listen on an IP socket "
				 "without a token");
}

static void test_tcp_token_file_must_be_private_and_sane(void **state)
{
	static const struct {
		const char *text;
		mode_t mode;
		int err;
		const char *why_has;
	} v[] = {
	    {"secret\n", 0644, -EACCES, "accessible by group or others (mode 0644)"},
	    {"secret\n", 0620, -EACCES, "chmod 600"},
	    {"", 0600, -EINVAL, "is empty"},
	    {" \n\t\n", 0600, -EINVAL, "is empty"},
	    {"sec ret", 0600, -EINVAL, "printable ASCII"},
	    {"0123456789012345678901234567890123456789012345678901234567890123456789", 0600,
	     -EINVAL, "at most 64"},
	};
	struct fx *f = *state;
	struct transport_listener *tl = NULL;
	struct transport_opts o;
	char p[200], why[200];
	struct uri u;

	fx_path(f, "token", p, sizeof(p));
	o = (struct transport_opts){.token_file = p};
	parse("tcp://:0", &u);
	assert_int_equal(transport_listen(&u, &o, &tl, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "No such file or directory"));
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		write_token(p, v[i].text, v[i].mode);
		why[0] = '\0';
		assert_int_equal(transport_listen(&u, &o, &tl, why, sizeof(why)), v[i].err);
		assert_null(tl);
		if (!strstr(why, v[i].why_has))
			fail_msg("reason '%s' lacks '%s'", why, v[i].why_has);
	}
}

/* Listens on 127.0.0.1 with a fresh port and returns that port. */
static struct transport_listener *tcp_listen(struct fx *f, struct transport_opts *o, uint16_t *port)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	struct transport_listener *tl;
	struct uri u;

	parse("tcp://:0", &u);
	tl = listen_ok(&u, o);
	assert_int_equal(getsockname((int)transport_listener_fd(tl), (struct sockaddr *)&sa, &len),
			 0);
	assert_int_equal(sa.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	*port = ntohs(sa.sin_port);
	return tl;
}

static void test_tcp_right_token_is_accepted(void **state)
{
	struct fx *f = *state;
	struct transport_accept_req ar = {.data = NULL};
	struct done a = {.fd = -1}, d;
	struct transport_listener *tl;
	struct transport_opts o;
	char p[200], buf[4];
	uint16_t port;
	struct uri u;

	fx_path(f, "token", p, sizeof(p));
	write_token(p, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n", 0600);
	o = (struct transport_opts){.token_file = p};
	tl = tcp_listen(f, &o, &port);
	ar.data = &a;
	assert_int_equal(transport_accept(f->l, tl, &ar, on_accept), 0);
	parse_fmt(&u, "tcp://127.0.0.1:%u", port);
	d = dial_async(f, &u, &o);
	assert_int_equal(d.res, 0);
	/* Bytes right behind the token line belong to the session, not the handshake. */
	write_all(d.fd, "abcd", 4);
	run_until(f->l, &a.done, NULL);
	assert_int_equal(a.res, 0);
	assert_nonblock_cloexec(a.fd);
	read_exact(a.fd, buf, 4);
	assert_memory_equal(buf, "abcd", 4);
	assert_connected(d.fd, a.fd);
	transport_close_fd(d.fd);
	transport_close_fd(a.fd);
	transport_listener_close(tl);
}

static void test_tcp_sync_dial_resolves_localhost(void **state)
{
	struct fx *f = *state;
	struct transport_accept_req ar = {.data = NULL};
	struct done a = {.fd = -1};
	struct transport_listener *tl;
	struct transport_opts o;
	char p[200], why[200] = "";
	pl_fd fd = -1;
	uint16_t port;
	struct uri u;

	fx_path(f, "token", p, sizeof(p));
	write_token(p, "s3cret", 0400);
	o = (struct transport_opts){.token_file = p};
	tl = tcp_listen(f, &o, &port);
	ar.data = &a;
	assert_int_equal(transport_accept(f->l, tl, &ar, on_accept), 0);
	parse_fmt(&u, "tcp://localhost:%u", port);
	if (transport_dial_sync(&u, &o, &fd, why, sizeof(why)) < 0)
		fail_msg("%s", why);
	run_until(f->l, &a.done, NULL);
	assert_int_equal(a.res, 0);
	assert_connected((int)fd, a.fd);
	transport_close_fd(fd);
	transport_close_fd(a.fd);
	transport_listener_close(tl);
}

/* ---- tcp: the handshakes before the token ---- */

static char log_lines[4096];

/* Keeps the lines logged since the last log_clear(), for the tests that check what is logged. */
static void log_capture(enum vb_log_level lvl, const char *line)
{
	size_t n = strlen(log_lines);

	(void)lvl;
	snprintf(log_lines + n, sizeof(log_lines) - n, "%s\n", line);
}

static void log_clear(void)
{
	log_lines[0] = '\0';
}

static void assert_logged(const char *needle)
{
	if (!strstr(log_lines, needle))
		fail_msg("no log line has '%s'; logged:\n%s", needle, log_lines);
}

/* Connects to 127.0.0.1:port and sends nothing; the socket is non-blocking afterwards. */
static int tcp_connect_idle(uint16_t port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(port);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), 0);
	return fd;
}

/* True once the listener's side of a client that never receives anything has closed. */
static bool tcp_closed(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;
	ssize_t n;

	if (poll(&p, 1, 0) != 1)
		return false;
	n = read(fd, &c, 1);
	if (n > 0)
		fail_msg("the listener sent a byte to a client that never sent its token");
	return n == 0 || errno == ECONNRESET;
}

/* Runs the loop until the listener has closed client fd, within WAIT_MS. */
static void run_until_closed(struct loop *l, int fd)
{
	uint64_t end = clock_now_ns() + (uint64_t)WAIT_MS * 1000000;

	while (!tcp_closed(fd) && clock_now_ns() < end)
		loop_run_once(l, 10 * 1000000);
	assert_true(tcp_closed(fd));
}

/* Asserts that the listener has closed client fd, or does within WAIT_MS, without the loop. */
static void assert_closed_soon(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	assert_int_equal(poll(&p, 1, WAIT_MS), 1);
	assert_true(tcp_closed(fd));
}

/* Runs the loop for ms milliseconds, whatever happens. */
static void run_for(struct loop *l, unsigned ms)
{
	uint64_t end = clock_now_ns() + (uint64_t)ms * 1000000;

	while (clock_now_ns() < end)
		loop_run_once(l, 5 * 1000000);
}

/* A listener on 127.0.0.1 with token "right-token" and a deadline of timeout_ms. */
static struct transport_listener *tcp_listen_token(struct fx *f, uint32_t timeout_ms,
						   struct transport_opts *o, uint16_t *port)
{
	static char p[200];

	fx_path(f, "token", p, sizeof(p));
	write_token(p, "right-token", 0600);
	*o = (struct transport_opts){.token_file = p, .connect_timeout_ms = timeout_ms};
	return tcp_listen(f, o, port);
}

/* Closes the listener, then waits until every handshake it had let go of its client. */
static void tcp_close_and_drain(struct fx *f, struct transport_listener *tl, const int *fds, int n)
{
	transport_listener_close(tl);
	for (int i = 0; i < n; i++) {
		run_until_closed(f->l, fds[i]);
		close(fds[i]);
	}
}

/* The accepting side logs and closes; the dialing side learns it from EOF or a reset. */
static void test_tcp_wrong_token_is_refused(void **state)
{
	struct fx *f = *state;
	struct transport_accept_req ar = {.data = NULL};
	struct done a = {.fd = -1}, d, good;
	struct transport_listener *tl;
	struct transport_opts o, bad;
	char q[200];
	uint16_t port;
	struct uri u;

	tl = tcp_listen_token(f, 0, &o, &port);
	fx_path(f, "other", q, sizeof(q));
	write_token(q, "wrong-token", 0600);
	bad = (struct transport_opts){.token_file = q};
	ar.data = &a;
	assert_int_equal(transport_accept(f->l, tl, &ar, on_accept), 0);
	parse_fmt(&u, "tcp://127.0.0.1:%u", port);
	log_clear();
	d = dial_async(f, &u, &bad);
	assert_int_equal(d.res, 0);
	run_until_closed(f->l, d.fd);
	assert_false(a.done);
	assert_logged("accept failed: Permission denied");
	/* The accept still waits, for a client that knows the token. */
	good = dial_async(f, &u, &o);
	assert_int_equal(good.res, 0);
	run_until(f->l, &a.done, NULL);
	assert_int_equal(a.res, 0);
	assert_connected(good.fd, a.fd);
	transport_close_fd(d.fd);
	transport_close_fd(good.fd);
	transport_close_fd(a.fd);
	transport_listener_close(tl);
}

static void test_tcp_silent_client_times_out(void **state)
{
	struct fx *f = *state;
	struct transport_accept_req ar = {.data = NULL};
	struct done a = {.fd = -1};
	struct transport_listener *tl;
	struct transport_opts o;
	uint16_t port;
	int fd;

	tl = tcp_listen_token(f, 200, &o, &port);
	ar.data = &a;
	assert_int_equal(transport_accept(f->l, tl, &ar, on_accept), 0);
	fd = tcp_connect_idle(port);
	write_all(fd, "VMBUSIFY-TOKEN right", 20);
	log_clear();
	run_until_closed(f->l, fd);
	assert_logged("accept failed: Connection timed out");
	assert_false(a.done);
	transport_accept_cancel(&ar);
	run_until(f->l, &a.done, NULL);
	assert_int_equal(a.res, -ECANCELED);
	close(fd);
	transport_listener_close(tl);
}

/*
 * Clients that connect and never send hold no more than their own slot: a
 * client with the token behind them gets in long before their deadline
 * (20 s here, four times WAIT_MS) would have let it through one at a time.
 */
static void test_tcp_idle_clients_do_not_hold_the_listener(void **state)
{
	struct fx *f = *state;
	struct transport_accept_req ar = {.data = NULL};
	struct done a = {.fd = -1}, d;
	struct transport_listener *tl;
	struct transport_opts o;
	int idle[8], n = 8;
	uint16_t port;
	struct uri u;

	tl = tcp_listen_token(f, 20000, &o, &port);
	ar.data = &a;
	assert_int_equal(transport_accept(f->l, tl, &ar, on_accept), 0);
	for (int i = 0; i < n; i++)
		idle[i] = tcp_connect_idle(port);
	run_for(f->l, 50);
	parse_fmt(&u, "tcp://127.0.0.1:%u", port);
	d = dial_async(f, &u, &o);
	assert_int_equal(d.res, 0);
	run_until(f->l, &a.done, NULL);
	assert_int_equal(a.res, 0);
	assert_connected(d.fd, a.fd);
	for (int i = 0; i < n; i++)
		assert_false(tcp_closed(idle[i]));
	transport_close_fd(d.fd);
	transport_close_fd(a.fd);
	tcp_close_and_drain(f, tl, idle, n);
}

/*
 * More silent clients than GATE_HANDSHAKES_MAX: the oldest are dropped, the
 * newest keep their slots, and a client with the token still gets in.
 */
static void test_tcp_past_the_bound_the_oldest_handshake_is_dropped(void **state)
{
	enum { EXTRA = 8, N = GATE_HANDSHAKES_MAX + EXTRA };
	struct fx *f = *state;
	struct transport_accept_req ar = {.data = NULL};
	struct done a = {.fd = -1}, d;
	struct transport_listener *tl;
	struct transport_opts o;
	int idle[N];
	uint16_t port;
	struct uri u;

	tl = tcp_listen_token(f, 20000, &o, &port);
	ar.data = &a;
	assert_int_equal(transport_accept(f->l, tl, &ar, on_accept), 0);
	log_clear();
	for (int i = 0; i < N; i++) {
		idle[i] = tcp_connect_idle(port);
		loop_run_once(f->l, 0);
	}
	for (int i = 0; i < EXTRA; i++)
		run_until_closed(f->l, idle[i]);
	assert_logged("have not sent their token yet; dropped the oldest");
	parse_fmt(&u, "tcp://127.0.0.1:%u", port);
	d = dial_async(f, &u, &o);
	assert_int_equal(d.res, 0);
	run_until(f->l, &a.done, NULL);
	assert_int_equal(a.res, 0);
	assert_connected(d.fd, a.fd);
	/* The newcomer took the slot of the oldest that was left. */
	run_until_closed(f->l, idle[EXTRA]);
	for (int i = EXTRA + 1; i < N; i++)
		assert_false(tcp_closed(idle[i]));
	for (int i = 0; i <= EXTRA; i++)
		close(idle[i]);
	transport_close_fd(d.fd);
	transport_close_fd(a.fd);
	tcp_close_and_drain(f, tl, idle + EXTRA + 1, N - EXTRA - 1);
}

/*
 * Accepts one connection with the token while client b, connected before it,
 * is still silent (and so is in a handshake of its own); returns b.
 */
static int tcp_accept_one_with_b_waiting(struct fx *f, struct transport_listener *tl,
					 struct transport_opts *o, uint16_t port,
					 struct transport_accept_req *ar, struct done *a,
					 struct done *d)
{
	int b = tcp_connect_idle(port);
	struct uri u;

	ar->data = a;
	assert_int_equal(transport_accept(f->l, tl, ar, on_accept), 0);
	parse_fmt(&u, "tcp://127.0.0.1:%u", port);
	*d = dial_async(f, &u, o);
	assert_int_equal(d->res, 0);
	run_until(f->l, &a->done, NULL);
	assert_int_equal(a->res, 0);
	assert_connected(d->fd, a->fd);
	return b;
}

/* A client authenticated while no accept is pending waits for the next accept, bytes intact. */
static void test_tcp_token_between_accepts_waits_for_the_next(void **state)
{
	static const char line[] = "VMBUSIFY-TOKEN right-token\nxy";
	struct fx *f = *state;
	struct transport_accept_req ar = {.data = NULL};
	struct done a = {.fd = -1}, a2 = {.fd = -1}, d;
	struct transport_listener *tl;
	struct transport_opts o;
	uint16_t port;
	char buf[2];
	int b;

	tl = tcp_listen_token(f, 20000, &o, &port);
	b = tcp_accept_one_with_b_waiting(f, tl, &o, port, &ar, &a, &d);
	write_all(b, line, sizeof(line) - 1);
	run_for(f->l, 100);
	ar.data = &a2;
	assert_int_equal(transport_accept(f->l, tl, &ar, on_accept), 0);
	assert_false(a2.done);
	run_until(f->l, &a2.done, NULL);
	assert_int_equal(a2.res, 0);
	read_exact(a2.fd, buf, 2);
	assert_memory_equal(buf, "xy", 2);
	assert_connected(b, a2.fd);
	close(b);
	transport_close_fd(d.fd);
	transport_close_fd(a.fd);
	transport_close_fd(a2.fd);
	transport_listener_close(tl);
}

/* A cancelled accept closes every handshake before its callback runs. */
static void test_tcp_cancel_frees_the_handshakes(void **state)
{
	enum { N = GATE_HANDSHAKES_MAX + 1 };
	struct fx *f = *state;
	struct transport_accept_req ar = {.data = NULL};
	struct done a = {.fd = -1};
	struct transport_listener *tl;
	struct transport_opts o;
	int idle[N];
	uint16_t port;

	tl = tcp_listen_token(f, 20000, &o, &port);
	ar.data = &a;
	assert_int_equal(transport_accept(f->l, tl, &ar, on_accept), 0);
	for (int i = 0; i < N; i++)
		idle[i] = tcp_connect_idle(port);
	/* The first one dropped means that every one of them was accepted. */
	run_until_closed(f->l, idle[0]);
	transport_accept_cancel(&ar);
	run_until(f->l, &a.done, NULL);
	assert_int_equal(a.res, -ECANCELED);
	assert_int_equal(a.fd, -1);
	for (int i = 1; i < N; i++)
		assert_closed_soon(idle[i]);
	for (int i = 0; i < N; i++)
		close(idle[i]);
	transport_listener_close(tl);
}

/* Closing the listener closes the waiting connections at once and the handshakes soon after. */
static void test_tcp_close_frees_handshakes_and_waiting_connections(void **state)
{
	struct fx *f = *state;
	struct transport_accept_req ar = {.data = NULL};
	struct done a = {.fd = -1}, d;
	struct transport_listener *tl;
	struct transport_opts o;
	int idle[4], n = 4, b;
	uint16_t port;

	tl = tcp_listen_token(f, 20000, &o, &port);
	for (int i = 0; i < n; i++)
		idle[i] = tcp_connect_idle(port);
	b = tcp_accept_one_with_b_waiting(f, tl, &o, port, &ar, &a, &d);
	write_all(b, "VMBUSIFY-TOKEN right-token\n", 27);
	run_for(f->l, 100);
	for (int i = 0; i < n; i++)
		assert_false(tcp_closed(idle[i]));
	assert_false(tcp_closed(b));
	transport_close_fd(d.fd);
	transport_close_fd(a.fd);
	transport_listener_close(tl);
	assert_closed_soon(b);
	close(b);
	for (int i = 0; i < n; i++) {
		run_until_closed(f->l, idle[i]);
		close(idle[i]);
	}
}

static void test_tcp_async_dial_needs_an_ip_address(void **state)
{
	struct fx *f = *state;
	struct transport_opts o;
	char p[200];
	struct done d;
	struct uri u;

	fx_path(f, "token", p, sizeof(p));
	write_token(p, "t", 0600);
	o = (struct transport_opts){.token_file = p};
	parse("tcp://vmbusify.invalid:80", &u);
	d = dial_async(f, &u, &o);
	assert_int_equal(d.res, -EINVAL);
	assert_non_null(strstr(d.why, "needs an IP address"));
	parse("tcp://127.0.0.1:80", &u);
	d = dial_async(f, &u, NULL);
	assert_int_equal(d.res, -EINVAL);
	assert_non_null(strstr(d.why, "token-file"));
}

/* ---- hybrid vsock ---- */

enum fake_mode {
	FAKE_OK,      /* answers "OK 1073741824\n" and sends data right behind it */
	FAKE_CLOSE,   /* closes at once */
	FAKE_HANGUP,  /* reads the request, then closes (no listener in the guest) */
	FAKE_GARBAGE, /* answers something else */
	FAKE_SILENT,  /* reads the request and never answers */
};

/* A Firecracker-like host socket: one connection, served on a thread. */
struct fake_fc {
	int lfd;
	enum fake_mode mode;
	char got[64];
	pthread_t thread;
};

static bool fake_wait(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};

	return poll(&p, 1, WAIT_MS) == 1;
}

static void fake_read_line(int fd, char *buf, size_t cap)
{
	size_t n = 0;

	while (n + 1 < cap && fake_wait(fd) && read(fd, buf + n, 1) == 1 && buf[n++] != '\n')
		;
	buf[n] = '\0';
}

static void *fake_fc_main(void *arg)
{
	static const char ok[] = "OK 1073741824\nDATA";
	static const char garbage[] = "HTTP/1.1 400 Bad Request\r\n";
	struct fake_fc *fc = arg;
	char c;
	int fd;

	if (!fake_wait(fc->lfd))
		return NULL;
	fd = accept(fc->lfd, NULL, NULL);
	if (fc->mode != FAKE_CLOSE)
		fake_read_line(fd, fc->got, sizeof(fc->got));
	if (fc->mode == FAKE_OK)
		(void)!write(fd, ok, sizeof(ok) - 1);
	if (fc->mode == FAKE_GARBAGE)
		(void)!write(fd, garbage, sizeof(garbage) - 1);
	if (fc->mode == FAKE_OK || fc->mode == FAKE_SILENT || fc->mode == FAKE_GARBAGE) {
		while (fake_wait(fd) && read(fd, &c, 1) == 1)
			;
	}
	close(fd);
	return NULL;
}

static void fake_fc_start(struct fake_fc *fc, const char *path, enum fake_mode mode)
{
	struct sockaddr_un sa = sun_of(path);

	memset(fc, 0, sizeof(*fc));
	fc->mode = mode;
	fc->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fc->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fc->lfd, 4), 0);
	assert_int_equal(pthread_create(&fc->thread, NULL, fake_fc_main, fc), 0);
}

static void fake_fc_stop(struct fake_fc *fc)
{
	pthread_join(fc->thread, NULL);
	close(fc->lfd);
}

/* Dials hybrid vsock port 1234 of a fake in mode, on the loop or (sync) without it. */
static struct done hybrid_dial(struct fx *f, struct fake_fc *fc, enum fake_mode mode, bool sync)
{
	/* Only silence needs a short deadline; the others must not depend on timing. */
	struct transport_opts o = {.connect_timeout_ms = mode == FAKE_SILENT ? 300 : 0};
	pl_fd fd = -1;
	struct done d;
	char p[200];
	struct uri u;

	fx_path(f, sync ? "fc-sync.sock" : "fc.sock", p, sizeof(p));
	unlink(p);
	fake_fc_start(fc, p, mode);
	parse_fmt(&u, "hybrid://%s:1234", p);
	if (!sync)
		return dial_async(f, &u, &o);
	d = (struct done){.done = true};
	d.res = transport_dial_sync(&u, &o, &fd, d.why, sizeof(d.why));
	d.fd = (int)fd;
	return d;
}

static void test_hybrid_ok_hands_over_the_stream(void **state)
{
	for (int sync = 0; sync < 2; sync++) {
		struct fake_fc fc;
		struct done d = hybrid_dial(*state, &fc, FAKE_OK, sync);
		char buf[4];

		assert_int_equal(d.res, 0);
		assert_nonblock_cloexec(d.fd);
		/* "DATA" came in the same segment as the OK line and must still be there. */
		read_exact(d.fd, buf, 4);
		assert_memory_equal(buf, "DATA", 4);
		transport_close_fd(d.fd);
		fake_fc_stop(&fc);
		assert_string_equal(fc.got, "CONNECT 1234\n");
	}
}

static void test_hybrid_hangup_is_refused(void **state)
{
	static const enum fake_mode modes[] = {FAKE_CLOSE, FAKE_HANGUP};

	for (int i = 0; i < 4; i++) {
		struct fake_fc fc;
		struct done d = hybrid_dial(*state, &fc, modes[i / 2], i % 2);

		assert_int_equal(d.res, -ECONNREFUSED);
		assert_int_equal(d.fd, -1);
		if (!strstr(d.why, ":1234: closed without an answer"))
			fail_msg("reason: %s", d.why);
		fake_fc_stop(&fc);
	}
}

static void test_hybrid_garbage_is_refused_and_quoted(void **state)
{
	for (int sync = 0; sync < 2; sync++) {
		struct fake_fc fc;
		struct done d = hybrid_dial(*state, &fc, FAKE_GARBAGE, sync);

		assert_int_equal(d.res, -ECONNREFUSED);
		if (!strstr(d.why, "unexpected answer 'HTTP/1.1 400 Bad Request?'"))
			fail_msg("reason: %s", d.why);
		fake_fc_stop(&fc);
	}
}

static void test_hybrid_silence_times_out(void **state)
{
	for (int sync = 0; sync < 2; sync++) {
		struct fake_fc fc;
		struct done d = hybrid_dial(*state, &fc, FAKE_SILENT, sync);

		assert_int_equal(d.res, -ETIMEDOUT);
		assert_non_null(strstr(d.why, "timed out"));
		fake_fc_stop(&fc);
	}
}

static void test_hybrid_cannot_listen(void **state)
{
	struct transport_listener *tl = NULL;
	char why[200] = "";
	struct uri u;

	parse("hybrid:///run/fc.sock:1234", &u);
	assert_int_equal(transport_listen(&u, NULL, &tl, why, sizeof(why)), -ENOTSUP);
	assert_non_null(strstr(why, "hypervisor"));
}

/* ---- serial ---- */

static void test_serial_pty_accept_and_dial(void **state)
{
	struct fx *f = *state;
	struct transport_accept_req ar = {.data = NULL};
	struct done a = {.fd = -1}, d;
	struct transport_listener *tl;
	struct termios tio;
	int master, slave;
	char name[128], buf[4];
	struct uri u;

	assert_int_equal(openpty(&master, &slave, name, NULL, NULL), 0);
	parse_fmt(&u, "serial://%s", name);
	tl = listen_ok(&u, NULL);
	assert_int_equal(tcgetattr((int)transport_listener_fd(tl), &tio), 0);
	assert_int_equal(tio.c_lflag & (ICANON | ECHO), 0);
	ar.data = &a;
	assert_int_equal(transport_accept(f->l, tl, &ar, on_accept), 0);
	assert_false(a.done);
	run_until(f->l, &a.done, NULL);
	assert_int_equal(a.res, 0);
	assert_nonblock_cloexec(a.fd);
	write_all(master, "ab\n\r", 4);
	read_exact(a.fd, buf, 4);
	assert_memory_equal(buf, "ab\n\r", 4);
	transport_close_fd(a.fd);
	/* The next session gets the device again. */
	a = (struct done){.fd = -1};
	assert_int_equal(transport_accept(f->l, tl, &ar, on_accept), 0);
	run_until(f->l, &a.done, NULL);
	assert_int_equal(a.res, 0);
	transport_close_fd(a.fd);
	transport_listener_close(tl);
	d = dial_async(f, &u, NULL);
	assert_int_equal(d.res, 0);
	write_all(d.fd, "xyz", 3);
	read_exact(master, buf, 3);
	assert_memory_equal(buf, "xyz", 3);
	transport_close_fd(d.fd);
	close(slave);
	close(master);
}

static void test_serial_missing_device_says_why(void **state)
{
	struct fx *f = *state;
	struct transport_listener *tl = NULL;
	char p[200], why[200] = "";
	pl_fd fd = -1;
	struct done d;
	struct uri u;

	parse_fmt(&u, "serial://%s", fx_path(f, "ttyNONE", p, sizeof(p)));
	assert_int_equal(transport_listen(&u, NULL, &tl, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "No such file or directory"));
	assert_int_equal(transport_dial_sync(&u, NULL, &fd, why, sizeof(why)), -ENOENT);
	d = dial_async(f, &u, NULL);
	assert_int_equal(d.res, -ENOENT);
	assert_non_null(strstr(d.why, "open serial://"));
}

/* ---- what Linux cannot do, and the promises ---- */

static void test_hvsock_is_windows_only(void **state)
{
	struct fx *f = *state;
	struct transport_listener *tl = NULL;
	char why[200] = "";
	pl_fd fd = -1;
	struct done d;
	struct uri u;

	parse("hvsock://:80", &u);
	assert_int_equal(transport_listen(&u, NULL, &tl, why, sizeof(why)), -ENOTSUP);
	assert_string_equal(why, "hvsock:// is dialable on Windows only; in a Linux guest on "
				 "Hyper-V use vsock://:PORT");
	parse("hvsock://parent:80", &u);
	assert_int_equal(transport_dial_sync(&u, NULL, &fd, why, sizeof(why)), -ENOTSUP);
	d = dial_async(f, &u, NULL);
	assert_int_equal(d.res, -ENOTSUP);
	assert_non_null(strstr(d.why, "vsock://2:PORT"));
}

/* Checked before any socket exists: this machine's vsock is not ours to touch. */
static void test_vsock_listen_address_cannot_be_dialed(void **state)
{
	struct fx *f = *state;
	struct done d;
	struct uri u;

	parse("vsock://:80", &u);
	d = dial_async(f, &u, NULL);
	assert_int_equal(d.res, -EINVAL);
	assert_non_null(strstr(d.why, "listening address"));
}

static void test_info_matches_each_transport(void **state)
{
	static const struct {
		const char *uri;
		size_t max_write;
		bool single;
	} v[] = {
	    {"unix:///a", 256 * 1024, false},	 {"tcp://:1", 256 * 1024, false},
	    {"vsock://3:1", 64 * 1024, false},	 {"hvsock://parent", 64 * 1024, false},
	    {"hybrid:///a:1", 64 * 1024, false}, {"serial:///dev/ttyS0", 4 * 1024, true},
	};

	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		struct transport_info info;
		struct uri u;

		parse(v[i].uri, &u);
		transport_info_get(&u, &info);
		assert_int_equal(info.max_write, v[i].max_write);
		assert_int_equal(info.single_connection, v[i].single);
		assert_true(info.stream_oriented);
	}
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, fx_setup, fx_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_unix_async_dial_meets_accept),
	    T(test_unix_sync_dial_meets_accept),
	    T(test_unix_abstract_name_works),
	    T(test_unix_stale_socket_file_is_replaced),
	    T(test_unix_live_server_is_not_replaced),
	    T(test_unix_listen_leaves_other_files_alone),
	    T(test_unix_listen_in_missing_directory_says_why),
	    T(test_unix_dial_to_nothing_says_why),
	    T(test_unix_dial_times_out_on_a_full_backlog),
	    T(test_dial_cancel_completes_with_ecanceled),
	    T(test_accept_cancel_completes_with_ecanceled),
	    T(test_tcp_listen_without_token_file_is_refused),
	    T(test_tcp_token_file_must_be_private_and_sane),
	    T(test_tcp_right_token_is_accepted),
	    T(test_tcp_sync_dial_resolves_localhost),
	    T(test_tcp_wrong_token_is_refused),
	    T(test_tcp_silent_client_times_out),
	    T(test_tcp_idle_clients_do_not_hold_the_listener),
	    T(test_tcp_past_the_bound_the_oldest_handshake_is_dropped),
	    T(test_tcp_token_between_accepts_waits_for_the_next),
	    T(test_tcp_cancel_frees_the_handshakes),
	    T(test_tcp_close_frees_handshakes_and_waiting_connections),
	    T(test_tcp_async_dial_needs_an_ip_address),
	    T(test_hybrid_ok_hands_over_the_stream),
	    T(test_hybrid_hangup_is_refused),
	    T(test_hybrid_garbage_is_refused_and_quoted),
	    T(test_hybrid_silence_times_out),
	    T(test_hybrid_cannot_listen),
	    T(test_serial_pty_accept_and_dial),
	    T(test_serial_missing_device_says_why),
	    T(test_hvsock_is_windows_only),
	    T(test_vsock_listen_address_cannot_be_dialed),
	    T(test_info_matches_each_transport),
	};
	struct loop *l;
	int r;

	/* A backend this machine lacks is a skip, not a failure. */
	r = loop_new(&l, LOOP_BACKEND_AUTO);
	if (r < 0) {
		fprintf(stderr, "skip: no event loop here: %s\n", strerror(-r));
		return 77;
	}
	printf("loop backend: %s\n", loop_backend_name(loop_backend(l)));
	loop_free(l);
	/* A peer that hangs up mid-handshake must give an error, not kill the test. */
	signal(SIGPIPE, SIG_IGN);
	/* The tcp tests read what the listener logs; every line of it. */
	log_set_sink(log_capture);
	log_rate_limit(false, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
