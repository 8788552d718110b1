/* Tests of the IOCP loop under Wine: timers, posts, TCP, named pipes, the blocking-thread shim, the
 * pool. */
#include <winsock2.h>
#include <windows.h>
#include <ws2tcpip.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "platform/loop.h"
#include "platform/win/loop_internal.h"

#define MS	1000000ull
#define WAIT_MS 5000

/* What a callback saw. */
struct seen {
	struct loop_req req;
	int calls;
	int res;
	DWORD thread;
	bool in_submit; /* the callback ran while a submit was under way */
	int order;	/* when it ran among the others, from 1 */
};

static bool submitting;
static int completions;

static void seen_cb(struct loop_req *r, int res)
{
	struct seen *s = (struct seen *)r;

	s->calls++;
	s->res = res;
	s->thread = GetCurrentThreadId();
	s->in_submit = submitting;
	s->order = ++completions;
}

/* Runs l until s has completed or WAIT_MS pass; fails the test on a timeout. */
static void run_until(struct loop *l, struct seen *s)
{
	uint64_t end = clock_now_ns() + WAIT_MS * MS;

	while (!s->calls && clock_now_ns() < end)
		assert_true(loop_run_once(l, 50 * MS) >= 0);
	assert_int_equal(s->calls, 1);
	assert_false(s->in_submit);
}

static struct loop *new_loop(void)
{
	struct loop *l = NULL;

	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(loop_backend(l), LOOP_BACKEND_IOCP);
	completions = 0;
	return l;
}

/*
 * The socket tests run twice: as they are, and with every socket read,
 * write and poll on the blocking-thread shim (VMBUSIFY_IOCP_SOCKET_SHIM=1,
 * read by loop_new), the fallback kept for AF_HYPERV providers without
 * overlapped I/O. free_loop() checks that the path asked for was taken.
 */
static bool shim_expected;

static int socket_shim_on(void **state)
{
	shim_expected = true;
	return SetEnvironmentVariableA("VMBUSIFY_IOCP_SOCKET_SHIM", "1") ? 0 : -1;
}

static int socket_shim_off(void **state)
{
	shim_expected = false;
	return SetEnvironmentVariableA("VMBUSIFY_IOCP_SOCKET_SHIM", NULL) ? 0 : -1;
}

static void free_loop(struct loop *l)
{
	if (shim_expected)
		assert_true(l->shim_calls > 0);
	loop_free(l);
}

/* ---- timers and posts ---- */

static void test_timer_fires_after_its_delay_and_never_inside_submit(void **state)
{
	struct loop *l = new_loop();
	struct seen t = {0};
	uint64_t start = clock_now_ns();

	submitting = true;
	assert_int_equal(loop_timer(l, &t.req, 30 * MS, seen_cb), 0);
	submitting = false;
	run_until(l, &t);
	assert_int_equal(t.res, 0);
	assert_true(clock_now_ns() - start >= 30 * MS);
	free_loop(l);
}

static void test_timers_with_equal_deadlines_fire_in_submission_order(void **state)
{
	struct loop *l = new_loop();
	struct seen a = {0}, b = {0}, c = {0};

	assert_int_equal(loop_timer(l, &a.req, 0, seen_cb), 0);
	assert_int_equal(loop_timer(l, &b.req, 0, seen_cb), 0);
	assert_int_equal(loop_timer(l, &c.req, 0, seen_cb), 0);
	run_until(l, &c);
	assert_int_equal(a.order, 1);
	assert_int_equal(b.order, 2);
	assert_int_equal(c.order, 3);
	free_loop(l);
}

static void test_cancelled_timer_completes_with_ecanceled_once(void **state)
{
	struct loop *l = new_loop();
	struct seen t = {0};

	assert_int_equal(loop_timer(l, &t.req, 10000 * MS, seen_cb), 0);
	assert_int_equal(loop_cancel(l, &t.req), 0);
	assert_int_equal(loop_cancel(l, &t.req), -EALREADY);
	run_until(l, &t);
	assert_int_equal(t.res, -ECANCELED);
	assert_int_equal(loop_cancel(l, &t.req), -ENOENT);
	free_loop(l);
}

static void test_busy_request_is_refused(void **state)
{
	struct loop *l = new_loop();
	struct seen t = {0};

	assert_int_equal(loop_timer(l, &t.req, 1000 * MS, seen_cb), 0);
	assert_int_equal(loop_timer(l, &t.req, 1000 * MS, seen_cb), -EBUSY);
	loop_cancel(l, &t.req);
	run_until(l, &t);
	free_loop(l);
}

struct post_state {
	struct loop *l;
	int ran[8];
	int n;
	DWORD thread;
};

static void post_fn(void *arg)
{
	struct post_state *p = arg;

	p->thread = GetCurrentThreadId();
	p->ran[p->n] = p->n;
	p->n++;
	if (p->n == 8)
		loop_stop(p->l);
}

static DWORD WINAPI post_thread(void *arg)
{
	struct post_state *p = arg;

	for (int i = 0; i < 8; i++)
		loop_post(p->l, post_fn, p);
	return 0;
}

static void test_posts_from_another_thread_run_on_the_loop_in_order(void **state)
{
	struct post_state p = {.l = new_loop()};
	HANDLE th = CreateThread(NULL, 0, post_thread, &p, 0, NULL);

	assert_non_null(th);
	assert_int_equal(loop_run(p.l), 0);
	WaitForSingleObject(th, INFINITE);
	CloseHandle(th);
	assert_int_equal(p.n, 8);
	assert_int_equal(p.thread, GetCurrentThreadId());
	for (int i = 0; i < 8; i++)
		assert_int_equal(p.ran[i], i);
	loop_free(p.l);
}

static void test_loop_free_drops_posts_not_yet_run(void **state)
{
	struct post_state p = {.l = new_loop()};

	assert_int_equal(loop_post(p.l, post_fn, &p), 0);
	loop_free(p.l);
	assert_int_equal(p.n, 0);
}

/* ---- TCP ---- */

static SOCKET tcp_socket(void)
{
	SOCKET s = WSASocketW(AF_INET, SOCK_STREAM, IPPROTO_TCP, NULL, 0,
			      WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);

	assert_true(s != INVALID_SOCKET);
	return s;
}

/* A listener on 127.0.0.1 and an ephemeral port, which goes into *addr. */
static SOCKET tcp_listener(struct sockaddr_in *addr)
{
	SOCKET s = tcp_socket();
	int len = sizeof(*addr);

	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(s, (struct sockaddr *)addr, sizeof(*addr)), 0);
	assert_int_equal(listen(s, 8), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)addr, &len), 0);
	return s;
}

/* A connected pair made by loop_accept and loop_connect on l. */
static void tcp_pair(struct loop *l, SOCKET *server, SOCKET *client)
{
	struct sockaddr_in addr;
	SOCKET ls = tcp_listener(&addr);
	struct seen acc = {0}, con = {0};
	struct sockaddr_in *peer = (struct sockaddr_in *)acc.req.addr;

	*client = tcp_socket();
	submitting = true;
	assert_int_equal(loop_accept(l, &acc.req, (pl_fd)ls, seen_cb), 0);
	assert_int_equal(loop_connect(l, &con.req, (pl_fd)*client, &addr, sizeof(addr), seen_cb),
			 0);
	submitting = false;
	run_until(l, &acc);
	run_until(l, &con);
	assert_true(acc.res > 0);
	assert_int_equal(con.res, 0);
	assert_int_equal(acc.req.addrlen, sizeof(struct sockaddr_in));
	assert_int_equal(peer->sin_family, AF_INET);
	assert_int_equal(peer->sin_addr.s_addr, htonl(INADDR_LOOPBACK));
	*server = (SOCKET)acc.res;
	closesocket(ls);
}

static void test_tcp_accept_connect_write_read(void **state)
{
	struct loop *l = new_loop();
	struct seen w = {0}, r = {0};
	SOCKET a, b;
	char buf[16] = {0};

	tcp_pair(l, &a, &b);
	submitting = true;
	assert_int_equal(loop_read(l, &r.req, (pl_fd)a, buf, sizeof(buf), seen_cb), 0);
	assert_int_equal(loop_write(l, &w.req, (pl_fd)b, "hello", 5, seen_cb), 0);
	submitting = false;
	run_until(l, &w);
	run_until(l, &r);
	assert_int_equal(w.res, 5);
	assert_int_equal(r.res, 5);
	assert_memory_equal(buf, "hello", 5);
	closesocket(a);
	closesocket(b);
	free_loop(l);
}

static void test_tcp_writev_sends_the_buffers_in_order(void **state)
{
	struct loop *l = new_loop();
	struct vb_iov iov[3] = {{"ab", 2}, {"", 0}, {"cdef", 4}};
	struct seen w = {0}, r = {0};
	char buf[16] = {0};
	int got = 0;
	SOCKET a, b;

	tcp_pair(l, &a, &b);
	assert_int_equal(loop_writev(l, &w.req, (pl_fd)b, iov, 3, seen_cb), 0);
	run_until(l, &w);
	assert_int_equal(w.res, 6);
	while (got < 6) {
		memset(&r, 0, sizeof(r));
		assert_int_equal(loop_read(l, &r.req, (pl_fd)a, buf + got, 6 - got, seen_cb), 0);
		run_until(l, &r);
		assert_true(r.res > 0);
		got += r.res;
	}
	assert_memory_equal(buf, "abcdef", 6);
	closesocket(a);
	closesocket(b);
	free_loop(l);
}

static void test_tcp_read_after_peer_shutdown_is_end_of_file(void **state)
{
	struct loop *l = new_loop();
	struct seen r = {0};
	char buf[4];
	SOCKET a, b;

	tcp_pair(l, &a, &b);
	assert_int_equal(shutdown(b, SD_SEND), 0);
	assert_int_equal(loop_read(l, &r.req, (pl_fd)a, buf, sizeof(buf), seen_cb), 0);
	run_until(l, &r);
	assert_int_equal(r.res, 0);
	closesocket(a);
	closesocket(b);
	free_loop(l);
}

static void test_tcp_cancelled_read_completes_with_ecanceled(void **state)
{
	struct loop *l = new_loop();
	struct seen r = {0};
	char buf[4];
	SOCKET a, b;

	tcp_pair(l, &a, &b);
	assert_int_equal(loop_read(l, &r.req, (pl_fd)a, buf, sizeof(buf), seen_cb), 0);
	assert_true(loop_run_once(l, 0) >= 0);
	assert_int_equal(loop_cancel(l, &r.req), 0);
	run_until(l, &r);
	assert_int_equal(r.res, -ECANCELED);
	closesocket(a);
	closesocket(b);
	free_loop(l);
}

static void test_tcp_connect_to_a_closed_port_is_refused(void **state)
{
	struct loop *l = new_loop();
	struct sockaddr_in addr;
	SOCKET ls = tcp_listener(&addr), c = tcp_socket();
	struct seen con = {0};

	closesocket(ls); /* nobody listens on addr now */
	assert_int_equal(loop_connect(l, &con.req, (pl_fd)c, &addr, sizeof(addr), seen_cb), 0);
	run_until(l, &con);
	assert_int_equal(con.res, -ECONNREFUSED);
	closesocket(c);
	free_loop(l);
}

static void test_tcp_poll_reports_input_and_output(void **state)
{
	struct loop *l = new_loop();
	struct seen in = {0}, out = {0};
	SOCKET a, b;

	tcp_pair(l, &a, &b);
	assert_int_equal(loop_poll(l, &out.req, (pl_fd)b, LOOP_POLL_OUT, seen_cb), 0);
	run_until(l, &out);
	assert_int_equal(out.res, LOOP_POLL_OUT);
	assert_int_equal(loop_poll(l, &in.req, (pl_fd)a, LOOP_POLL_IN, seen_cb), 0);
	assert_true(loop_run_once(l, 20 * MS) >= 0);
	assert_int_equal(in.calls, 0); /* nothing to read yet */
	assert_int_equal(send(b, "x", 1, 0), 1);
	run_until(l, &in);
	assert_int_equal(in.res, LOOP_POLL_IN);
	closesocket(a);
	closesocket(b);
	free_loop(l);
}

static void test_tcp_cancelled_poll_completes_with_ecanceled(void **state)
{
	struct loop *l = new_loop();
	struct seen in = {0};
	SOCKET a, b;

	tcp_pair(l, &a, &b);
	assert_int_equal(loop_poll(l, &in.req, (pl_fd)a, LOOP_POLL_IN, seen_cb), 0);
	assert_int_equal(loop_cancel(l, &in.req), 0);
	run_until(l, &in);
	assert_int_equal(in.res, -ECANCELED);
	closesocket(a);
	closesocket(b);
	free_loop(l);
}

/* ---- named pipes ---- */

static HANDLE pipe_server(wchar_t *name, size_t cap)
{
	static int n;
	HANDLE h;

	swprintf(name, cap, L"\\\\.\\pipe\\vbtest-%lu-%d", GetCurrentProcessId(), n++);
	h = CreateNamedPipeW(
	    name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
	    PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
	    PIPE_UNLIMITED_INSTANCES, 65536, 65536, 0, NULL);
	assert_true(h != INVALID_HANDLE_VALUE);
	return h;
}

static HANDLE pipe_client(const wchar_t *name)
{
	HANDLE h = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
			       FILE_FLAG_OVERLAPPED, NULL);

	assert_true(h != INVALID_HANDLE_VALUE);
	return h;
}

static void pipe_pair(struct loop *l, HANDLE *server, HANDLE *client)
{
	wchar_t name[64];
	struct seen acc = {0};

	*server = pipe_server(name, 64);
	submitting = true;
	assert_int_equal(loop_accept(l, &acc.req, (pl_fd)*server, seen_cb), 0);
	submitting = false;
	assert_true(loop_run_once(l, 0) >= 0);
	assert_int_equal(acc.calls, 0); /* no client yet */
	*client = pipe_client(name);
	run_until(l, &acc);
	assert_int_equal(acc.res, (int)(intptr_t)*server);
}

static void test_pipe_accept_write_read_both_ways(void **state)
{
	struct loop *l = new_loop();
	struct seen w = {0}, r = {0};
	char buf[16] = {0};
	HANDLE s, c;

	pipe_pair(l, &s, &c);
	assert_int_equal(loop_read(l, &r.req, (pl_fd)s, buf, sizeof(buf), seen_cb), 0);
	assert_int_equal(loop_write(l, &w.req, (pl_fd)c, "ping", 4, seen_cb), 0);
	run_until(l, &w);
	run_until(l, &r);
	assert_int_equal(r.res, 4);
	assert_memory_equal(buf, "ping", 4);
	memset(&w, 0, sizeof(w));
	memset(&r, 0, sizeof(r));
	assert_int_equal(loop_read(l, &r.req, (pl_fd)c, buf, sizeof(buf), seen_cb), 0);
	assert_int_equal(loop_write(l, &w.req, (pl_fd)s, "pong", 4, seen_cb), 0);
	run_until(l, &w);
	run_until(l, &r);
	assert_int_equal(r.res, 4);
	assert_memory_equal(buf, "pong", 4);
	CloseHandle(c);
	CloseHandle(s);
	free_loop(l);
}

static void test_pipe_read_after_client_closed_is_end_of_file(void **state)
{
	struct loop *l = new_loop();
	struct seen r = {0};
	char buf[4];
	HANDLE s, c;

	pipe_pair(l, &s, &c);
	assert_int_equal(loop_read(l, &r.req, (pl_fd)s, buf, sizeof(buf), seen_cb), 0);
	CloseHandle(c);
	run_until(l, &r);
	assert_int_equal(r.res, 0);
	CloseHandle(s);
	free_loop(l);
}

static void test_pipe_poll_waits_for_input(void **state)
{
	struct loop *l = new_loop();
	struct seen in = {0}, r = {0};
	char buf[4];
	DWORD n;
	OVERLAPPED ov = {0};
	HANDLE s, c;

	pipe_pair(l, &s, &c);
	assert_int_equal(loop_poll(l, &in.req, (pl_fd)s, LOOP_POLL_IN, seen_cb), 0);
	assert_true(loop_run_once(l, 20 * MS) >= 0);
	assert_int_equal(in.calls, 0);
	ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
	assert_true(WriteFile(c, "z", 1, &n, &ov) || GetLastError() == ERROR_IO_PENDING);
	run_until(l, &in);
	assert_int_equal(in.res, LOOP_POLL_IN);
	/* The byte is still there: the poll consumed nothing. */
	assert_int_equal(loop_read(l, &r.req, (pl_fd)s, buf, sizeof(buf), seen_cb), 0);
	run_until(l, &r);
	assert_int_equal(r.res, 1);
	CloseHandle(ov.hEvent);
	CloseHandle(c);
	CloseHandle(s);
	free_loop(l);
}

static void test_pipe_cancelled_accept_completes_with_ecanceled(void **state)
{
	struct loop *l = new_loop();
	struct seen acc = {0};
	wchar_t name[64];
	HANDLE s = pipe_server(name, 64);

	assert_int_equal(loop_accept(l, &acc.req, (pl_fd)s, seen_cb), 0);
	assert_int_equal(loop_cancel(l, &acc.req), 0);
	run_until(l, &acc);
	assert_int_equal(acc.res, -ECANCELED);
	CloseHandle(s);
	free_loop(l);
}

/* ---- the blocking-thread shim (anonymous pipes are synchronous) ---- */

struct delayed_write {
	HANDLE h;
	int delay_ms;
	bool close_after;
};

static DWORD WINAPI delayed_write_main(void *arg)
{
	struct delayed_write *d = arg;
	DWORD n;

	Sleep((DWORD)d->delay_ms);
	if (d->close_after)
		CloseHandle(d->h);
	else
		WriteFile(d->h, "shim", 4, &n, NULL);
	return 0;
}

static void test_shim_reads_a_synchronous_pipe_off_the_loop_thread(void **state)
{
	struct loop *l = new_loop();
	struct seen r = {0};
	struct delayed_write d;
	HANDLE rd, wr, th;
	char buf[8] = {0};

	assert_true(CreatePipe(&rd, &wr, NULL, 0));
	d = (struct delayed_write){wr, 50, false};
	submitting = true;
	assert_int_equal(loop_read(l, &r.req, (pl_fd)rd, buf, sizeof(buf), seen_cb), 0);
	submitting = false;
	th = CreateThread(NULL, 0, delayed_write_main, &d, 0, NULL);
	run_until(l, &r);
	assert_int_equal(r.res, 4);
	assert_memory_equal(buf, "shim", 4);
	assert_int_equal(r.thread, GetCurrentThreadId()); /* the callback, on the loop thread */
	WaitForSingleObject(th, INFINITE);
	CloseHandle(th);
	CloseHandle(rd);
	CloseHandle(wr);
	free_loop(l);
}

static void test_shim_write_and_end_of_file(void **state)
{
	struct loop *l = new_loop();
	struct seen w = {0}, r = {0};
	HANDLE rd, wr;
	char buf[8] = {0};
	DWORD n = 0;

	assert_true(CreatePipe(&rd, &wr, NULL, 0));
	assert_int_equal(loop_write(l, &w.req, (pl_fd)wr, "abc", 3, seen_cb), 0);
	run_until(l, &w);
	assert_int_equal(w.res, 3);
	assert_true(ReadFile(rd, buf, sizeof(buf), &n, NULL));
	assert_int_equal(n, 3);
	CloseHandle(wr);
	assert_int_equal(loop_read(l, &r.req, (pl_fd)rd, buf, sizeof(buf), seen_cb), 0);
	run_until(l, &r);
	assert_int_equal(r.res, 0);
	CloseHandle(rd);
	free_loop(l);
}

static void test_shim_poll_waits_for_input(void **state)
{
	struct loop *l = new_loop();
	struct seen in = {0};
	struct delayed_write d;
	HANDLE rd, wr, th;

	assert_true(CreatePipe(&rd, &wr, NULL, 0));
	d = (struct delayed_write){wr, 30, false};
	assert_int_equal(loop_poll(l, &in.req, (pl_fd)rd, LOOP_POLL_IN, seen_cb), 0);
	th = CreateThread(NULL, 0, delayed_write_main, &d, 0, NULL);
	run_until(l, &in);
	assert_int_equal(in.res, LOOP_POLL_IN);
	WaitForSingleObject(th, INFINITE);
	CloseHandle(th);
	CloseHandle(rd);
	CloseHandle(wr);
	free_loop(l);
}

static void test_shim_cancelled_read_completes_with_ecanceled(void **state)
{
	struct loop *l = new_loop();
	struct seen r = {0};
	HANDLE rd, wr;
	char buf[8];

	assert_true(CreatePipe(&rd, &wr, NULL, 0));
	assert_int_equal(loop_read(l, &r.req, (pl_fd)rd, buf, sizeof(buf), seen_cb), 0);
	assert_true(loop_run_once(l, 20 * MS) >= 0); /* let the thread block in ReadFile */
	assert_int_equal(loop_cancel(l, &r.req), 0);
	run_until(l, &r);
	assert_int_equal(r.res, -ECANCELED);
	CloseHandle(wr);
	CloseHandle(rd);
	free_loop(l);
}

/* ---- several loops ---- */

struct pool_probe {
	struct loop_req req;
	DWORD thread;
	volatile LONG done;
};

static void pool_probe_fn(void *arg)
{
	struct pool_probe *p = arg;

	p->thread = GetCurrentThreadId();
	InterlockedExchange(&p->done, 1);
}

static void test_pool_runs_each_loop_on_its_own_thread(void **state)
{
	struct loop_pool *p = NULL;
	struct pool_probe probe[2] = {0};

	assert_int_equal(pool_new(&p, 2, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(pool_size(p), 2);
	assert_int_equal(pool_start(p), 0);
	for (int i = 0; i < 2; i++)
		assert_int_equal(loop_post(pool_loop(p, i), pool_probe_fn, &probe[i]), 0);
	for (int i = 0; i < 2; i++)
		while (!probe[i].done)
			Sleep(1);
	assert_int_not_equal(probe[0].thread, probe[1].thread);
	assert_int_not_equal(probe[0].thread, GetCurrentThreadId());
	pool_free(p);
}

/* A socket first used on one loop, then read on another: the callback runs on the second. */
struct moved {
	struct seen r;
	struct loop *l;
	SOCKET s;
	char buf[8];
	volatile LONG done;
};

static void moved_cb(struct loop_req *req, int res)
{
	struct moved *m = (struct moved *)req;

	seen_cb(req, res);
	InterlockedExchange(&m->done, 1);
}

static void moved_start(void *arg)
{
	struct moved *m = arg;

	assert_int_equal(loop_read(m->l, &m->r.req, (pl_fd)m->s, m->buf, sizeof(m->buf), moved_cb),
			 0);
}

static void test_descriptor_moved_between_loops_completes_on_the_new_loop(void **state)
{
	struct loop *first = new_loop();
	struct loop_pool *p = NULL;
	struct moved m = {0};
	struct seen w = {0};
	SOCKET a, b;
	DWORD tid;

	tcp_pair(first, &a, &b); /* a is now associated with first's port */
	assert_int_equal(pool_new(&p, 2, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(pool_start(p), 0);
	m.l = pool_loop(p, 1);
	m.s = a;
	assert_int_equal(loop_post(m.l, moved_start, &m), 0);
	Sleep(20);
	/* first forwards the packet when it runs, as a pool loop would. */
	assert_int_equal(loop_write(first, &w.req, (pl_fd)b, "moved", 5, seen_cb), 0);
	run_until(first, &w);
	for (int i = 0; i < 500 && !m.done; i++)
		loop_run_once(first, 10 * MS);
	assert_true(m.done);
	assert_int_equal(m.r.res, 5);
	assert_memory_equal(m.buf, "moved", 5);
	tid = m.r.thread;
	assert_int_not_equal(tid, GetCurrentThreadId());
	pool_free(p);
	closesocket(a);
	closesocket(b);
	loop_free(first);
}

static void test_loop_free_with_a_pending_read_returns(void **state)
{
	struct loop *l = new_loop();
	struct seen r = {0};
	char buf[4];
	SOCKET a, b;

	tcp_pair(l, &a, &b);
	assert_int_equal(loop_read(l, &r.req, (pl_fd)a, buf, sizeof(buf), seen_cb), 0);
	free_loop(l);
	assert_int_equal(r.calls, 0);
	closesocket(a);
	closesocket(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_timer_fires_after_its_delay_and_never_inside_submit),
	    cmocka_unit_test(test_timers_with_equal_deadlines_fire_in_submission_order),
	    cmocka_unit_test(test_cancelled_timer_completes_with_ecanceled_once),
	    cmocka_unit_test(test_busy_request_is_refused),
	    cmocka_unit_test(test_posts_from_another_thread_run_on_the_loop_in_order),
	    cmocka_unit_test(test_loop_free_drops_posts_not_yet_run),
	    cmocka_unit_test(test_tcp_accept_connect_write_read),
	    cmocka_unit_test(test_tcp_writev_sends_the_buffers_in_order),
	    cmocka_unit_test(test_tcp_read_after_peer_shutdown_is_end_of_file),
	    cmocka_unit_test(test_tcp_cancelled_read_completes_with_ecanceled),
	    cmocka_unit_test(test_tcp_connect_to_a_closed_port_is_refused),
	    cmocka_unit_test(test_tcp_poll_reports_input_and_output),
	    cmocka_unit_test(test_tcp_cancelled_poll_completes_with_ecanceled),
	    cmocka_unit_test_setup_teardown(test_tcp_accept_connect_write_read, socket_shim_on,
					    socket_shim_off),
	    cmocka_unit_test_setup_teardown(test_tcp_writev_sends_the_buffers_in_order,
					    socket_shim_on, socket_shim_off),
	    cmocka_unit_test_setup_teardown(test_tcp_read_after_peer_shutdown_is_end_of_file,
					    socket_shim_on, socket_shim_off),
	    cmocka_unit_test_setup_teardown(test_tcp_cancelled_read_completes_with_ecanceled,
					    socket_shim_on, socket_shim_off),
	    cmocka_unit_test_setup_teardown(test_tcp_poll_reports_input_and_output, socket_shim_on,
					    socket_shim_off),
	    cmocka_unit_test_setup_teardown(test_tcp_cancelled_poll_completes_with_ecanceled,
					    socket_shim_on, socket_shim_off),
	    cmocka_unit_test(test_pipe_accept_write_read_both_ways),
	    cmocka_unit_test(test_pipe_read_after_client_closed_is_end_of_file),
	    cmocka_unit_test(test_pipe_poll_waits_for_input),
	    cmocka_unit_test(test_pipe_cancelled_accept_completes_with_ecanceled),
	    cmocka_unit_test(test_shim_reads_a_synchronous_pipe_off_the_loop_thread),
	    cmocka_unit_test(test_shim_write_and_end_of_file),
	    cmocka_unit_test(test_shim_poll_waits_for_input),
	    cmocka_unit_test(test_shim_cancelled_read_completes_with_ecanceled),
	    cmocka_unit_test(test_pool_runs_each_loop_on_its_own_thread),
	    cmocka_unit_test(test_descriptor_moved_between_loops_completes_on_the_new_loop),
	    cmocka_unit_test(test_loop_free_with_a_pending_read_returns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
