/* Tests of the Windows transports under Wine: hvsock addresses, tcp with its token, named pipes,
 * errors. */
#include <winsock2.h>
#include <windows.h>
#include <ws2tcpip.h>
#include <aclapi.h>
#include <sddl.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "core/log.h"
#include "core/uri.h"
#include "platform/gate.h"
#include "platform/loop.h"
#include "platform/sys.h"
#include "platform/transport.h"
#include "platform/win/err.h"
#include "platform/win/hvsock.h"

#define MS 1000000ull

static struct uri parse(const char *s)
{
	char why[200] = "";
	struct uri u;

	if (uri_parse(s, &u, why, sizeof(why)))
		fail_msg("%s: %s", s, why);
	return u;
}

/* ---- hvsock addresses (AF_HYPERV itself does not exist under Wine) ---- */

static void test_hvsock_parent_port_is_the_vsock_template(void **state)
{
	struct uri u = parse("hvsock://parent:80");
	GUID svc = HV_GUID_VSOCK_TEMPLATE;
	SOCKADDR_HV a;

	assert_int_equal(hvsock_addr(&u, &a, NULL, 0), 0);
	assert_int_equal(a.Family, AF_HYPERV);
	assert_int_equal(a.Family, 34);
	assert_int_equal(a.Reserved, 0);
	assert_true(IsEqualGUID(&a.VmId, &HV_GUID_PARENT));
	svc.Data1 = 80;
	assert_true(IsEqualGUID(&a.ServiceId, &svc));
}

static void test_hvsock_default_port_is_vb(void **state)
{
	struct uri u = parse("hvsock://loopback");
	SOCKADDR_HV a;

	assert_int_equal(hvsock_addr(&u, &a, NULL, 0), 0);
	assert_true(IsEqualGUID(&a.VmId, &HV_GUID_LOOPBACK));
	assert_int_equal(a.ServiceId.Data1, 0x5642);
	assert_int_equal(a.ServiceId.Data2, 0xFACB);
	assert_int_equal(a.ServiceId.Data3, 0x11E6);
}

static void test_hvsock_vmid_and_service_guid_keep_their_fields(void **state)
{
	struct uri u = parse("hvsock://{12345678-9abc-def0-1122-334455667788}/"
			     "0000A1B2-1234-5678-9ABC-DEF012345678");
	static const unsigned char vm4[8] = {0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88};
	static const unsigned char svc4[8] = {0x9A, 0xBC, 0xDE, 0xF0, 0x12, 0x34, 0x56, 0x78};
	SOCKADDR_HV a;

	assert_int_equal(hvsock_addr(&u, &a, NULL, 0), 0);
	assert_int_equal(a.VmId.Data1, 0x12345678);
	assert_int_equal(a.VmId.Data2, 0x9abc);
	assert_int_equal(a.VmId.Data3, 0xdef0);
	assert_memory_equal(a.VmId.Data4, vm4, 8);
	assert_int_equal(a.ServiceId.Data1, 0x0000A1B2);
	assert_int_equal(a.ServiceId.Data2, 0x1234);
	assert_int_equal(a.ServiceId.Data3, 0x5678);
	assert_memory_equal(a.ServiceId.Data4, svc4, 8);
}

static void test_hvsock_listen_addresses_are_wildcard_and_children(void **state)
{
	struct uri any = parse("hvsock://:5000"), kids = parse("hvsock://children:5000");
	SOCKADDR_HV a;

	assert_true(any.listen);
	assert_int_equal(hvsock_addr(&any, &a, NULL, 0), 0);
	assert_true(IsEqualGUID(&a.VmId, &HV_GUID_WILDCARD));
	assert_int_equal(a.ServiceId.Data1, 5000);
	assert_int_equal(hvsock_addr(&kids, &a, NULL, 0), 0);
	assert_true(IsEqualGUID(&a.VmId, &HV_GUID_CHILDREN));
}

static void test_hvsock_vm_name_must_be_resolved_before_its_address(void **state)
{
	struct uri u = parse("hvsock://MyVM:80");
	char why[200] = "";
	SOCKADDR_HV a;

	assert_int_equal(hvsock_addr(&u, &a, why, sizeof(why)), -EINVAL);
	assert_non_null(strstr(why, "'MyVM' was not resolved"));
}

static void test_hvsock_connect_timeout_is_clamped(void **state)
{
	assert_int_equal(hvsock_connect_timeout(0), HVSOCK_CONNECT_TIMEOUT_MS);
	assert_int_equal(hvsock_connect_timeout(1500), 1500);
	assert_int_equal(hvsock_connect_timeout(UINT32_MAX), HVSOCKET_CONNECT_TIMEOUT_MAX);
}

static void test_hvsock_dial_fails_cleanly_without_hyper_v(void **state)
{
	struct uri u = parse("hvsock://parent:80");
	struct transport_opts o = {.connect_timeout_ms = 500};
	char why[200] = "";
	pl_fd fd = 0;
	int r;

	r = transport_dial_sync(&u, &o, &fd, why, sizeof(why));
	if (!r) { /* a real Hyper-V host with nothing behind port 80 should not get here */
		transport_close_fd(fd);
		skip();
	}
	assert_true(r < 0);
	assert_int_equal(fd, -1);
	assert_true(why[0] != '\0');
}

/* ---- tcp with a token ---- */

static char token_file[MAX_PATH];

/*
 * Writes the token file with its DACL given at creation: SYSTEM and the
 * process's user only, or (shared) Everyone may read too. Wine keeps a DACL
 * given at creation (as the Unix mode) but ignores one set afterwards.
 */
static void write_token_as(const char *token, bool shared)
{
	union {
		TOKEN_USER tu;
		char buf[256];
	} u;
	SECURITY_ATTRIBUTES sa = {.nLength = sizeof(sa)};
	char dir[MAX_PATH], sddl[300], *sid = NULL;
	HANDLE tok, h;
	DWORD got;

	assert_true(OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok));
	assert_true(GetTokenInformation(tok, TokenUser, &u, sizeof(u), &got));
	CloseHandle(tok);
	assert_true(ConvertSidToStringSidA(u.tu.User.Sid, &sid));
	snprintf(sddl, sizeof(sddl), "D:P(A;;FA;;;SY)(A;;FA;;;%s)%s", sid,
		 shared ? "(A;;FR;;;WD)" : "");
	LocalFree(sid);
	assert_true(ConvertStringSecurityDescriptorToSecurityDescriptorA(
	    sddl, SDDL_REVISION_1, &sa.lpSecurityDescriptor, NULL));
	GetTempPathA(sizeof(dir), dir);
	snprintf(token_file, sizeof(token_file), "%svbtoken-%lu", dir, GetCurrentProcessId());
	DeleteFileA(token_file);
	h = CreateFileA(token_file, GENERIC_WRITE, 0, &sa, CREATE_NEW, 0, NULL);
	LocalFree(sa.lpSecurityDescriptor);
	assert_true(h != INVALID_HANDLE_VALUE);
	assert_true(WriteFile(h, token, (DWORD)strlen(token), &got, NULL));
	CloseHandle(h);
}

static void write_token(const char *token)
{
	write_token_as(token, false);
}

struct accepted {
	struct transport_accept_req ar;
	int calls, res;
	pl_fd fd;
};

static void accepted_cb(struct transport_accept_req *ar, int res, pl_fd fd)
{
	struct accepted *a = (struct accepted *)ar;

	a->calls++;
	a->res = res;
	a->fd = fd;
}

struct dialed {
	struct transport_dial_req dr;
	int calls, res;
	pl_fd fd;
};

static void dialed_cb(struct transport_dial_req *dr, int res, pl_fd fd)
{
	struct dialed *d = (struct dialed *)dr;

	d->calls++;
	d->res = res;
	d->fd = fd;
}

static void run_until(struct loop *l, const int *calls)
{
	uint64_t end = clock_now_ns() + 5000 * MS;

	while (!*calls && clock_now_ns() < end)
		assert_true(loop_run_once(l, 50 * MS) >= 0);
	assert_int_equal(*calls, 1);
}

/* Listens on tcp://127.0.0.1:0 and returns the tcp:// URI of the port it got. */
static struct transport_listener *tcp_listen(struct uri *dial)
{
	struct transport_opts o = {.token_file = token_file, .connect_timeout_ms = 2000};
	struct uri u = parse("tcp://127.0.0.1:0");
	struct transport_listener *tl = NULL;
	struct sockaddr_in a;
	int len = sizeof(a);
	char why[200] = "", text[64];

	if (transport_listen(&u, &o, &tl, why, sizeof(why)))
		fail_msg("listen: %s", why);
	assert_int_equal(
	    getsockname((SOCKET)transport_listener_fd(tl), (struct sockaddr *)&a, &len), 0);
	snprintf(text, sizeof(text), "tcp://127.0.0.1:%u", ntohs(a.sin_port));
	*dial = parse(text);
	return tl;
}

static void test_tcp_dial_with_the_right_token_is_accepted(void **state)
{
	struct transport_opts o = {.token_file = token_file};
	struct accepted acc = {0};
	struct dialed d = {0};
	struct loop *l = NULL;
	struct transport_listener *tl;
	struct uri u;
	char buf[8] = {0};

	write_token("s3cret");
	tl = tcp_listen(&u);
	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(transport_accept(l, tl, &acc.ar, accepted_cb), 0);
	assert_int_equal(transport_dial(l, &u, &o, &d.dr, dialed_cb), 0);
	assert_int_equal(d.calls + acc.calls, 0); /* never inside the call */
	run_until(l, &d.calls);
	run_until(l, &acc.calls);
	assert_int_equal(d.res, 0);
	assert_int_equal(acc.res, 0);
	/* The session's bytes follow the token untouched. */
	assert_int_equal(send((SOCKET)d.fd, "after", 5, 0), 5);
	Sleep(20);
	assert_int_equal(recv((SOCKET)acc.fd, buf, sizeof(buf), 0), 5);
	assert_memory_equal(buf, "after", 5);
	transport_close_fd(d.fd);
	transport_close_fd(acc.fd);
	transport_listener_close(tl);
	loop_free(l);
	DeleteFileA(token_file);
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

/* Connects to 127.0.0.1 on u's port and sends nothing; non-blocking afterwards. */
static SOCKET tcp_connect_idle(const struct uri *u)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	SOCKET s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
	u_long one = 1;

	assert_true(s != INVALID_SOCKET);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((u_short)u->port);
	assert_int_equal(connect(s, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(ioctlsocket(s, FIONBIO, &one), 0);
	return s;
}

/* True once the listener's side of a client that never receives anything has closed. */
static bool tcp_closed(SOCKET s)
{
	struct timeval tv = {0, 0};
	fd_set r;
	char c;
	int n, err;

	FD_ZERO(&r);
	FD_SET(s, &r);
	if (select(0, &r, NULL, NULL, &tv) != 1)
		return false;
	n = recv(s, &c, 1, 0);
	if (n > 0)
		fail_msg("the listener sent a byte to a client that never sent its token");
	err = n < 0 ? WSAGetLastError() : 0;
	return n == 0 || err == WSAECONNRESET || err == WSAECONNABORTED;
}

/* Runs the loop until the listener has closed client s, within 5 s. */
static void run_until_closed(struct loop *l, SOCKET s)
{
	uint64_t end = clock_now_ns() + 5000 * MS;

	while (!tcp_closed(s) && clock_now_ns() < end)
		assert_true(loop_run_once(l, 10 * MS) >= 0);
	assert_true(tcp_closed(s));
}

/* Asserts that the listener has closed client s, or does within 5 s, without the loop. */
static void assert_closed_soon(SOCKET s)
{
	struct timeval tv = {5, 0};
	fd_set r;

	FD_ZERO(&r);
	FD_SET(s, &r);
	assert_int_equal(select(0, &r, NULL, NULL, &tv), 1);
	assert_true(tcp_closed(s));
}

static void run_for(struct loop *l, unsigned ms)
{
	uint64_t end = clock_now_ns() + ms * MS;

	while (clock_now_ns() < end)
		assert_true(loop_run_once(l, 5 * MS) >= 0);
}

/* As tcp_listen(), with a deadline of timeout_ms for the token. */
static struct transport_listener *tcp_listen_for(struct uri *dial, uint32_t timeout_ms)
{
	struct transport_opts o = {.token_file = token_file, .connect_timeout_ms = timeout_ms};
	struct uri u = parse("tcp://127.0.0.1:0");
	struct transport_listener *tl = NULL;
	struct sockaddr_in a;
	int len = sizeof(a);
	char why[200] = "", text[64];

	if (transport_listen(&u, &o, &tl, why, sizeof(why)))
		fail_msg("listen: %s", why);
	assert_int_equal(
	    getsockname((SOCKET)transport_listener_fd(tl), (struct sockaddr *)&a, &len), 0);
	snprintf(text, sizeof(text), "tcp://127.0.0.1:%u", ntohs(a.sin_port));
	*dial = parse(text);
	return tl;
}

/* Dials u with the token on the loop and waits for the accept; returns the dialed socket. */
static pl_fd tcp_dial_and_accept(struct loop *l, const struct uri *u, struct accepted *acc)
{
	struct transport_opts o = {.token_file = token_file};
	struct dialed d = {0};

	assert_int_equal(transport_dial(l, u, &o, &d.dr, dialed_cb), 0);
	run_until(l, &d.calls);
	assert_int_equal(d.res, 0);
	run_until(l, &acc->calls);
	assert_int_equal(acc->res, 0);
	return d.fd;
}

/* Closes the listener, then waits until every handshake it had let go of its client. */
static void tcp_close_and_drain(struct loop *l, struct transport_listener *tl, const SOCKET *s,
				int n)
{
	transport_listener_close(tl);
	for (int i = 0; i < n; i++) {
		run_until_closed(l, s[i]);
		closesocket(s[i]);
	}
}

/* The accepting side logs and closes; the accept goes on waiting for the right token. */
static void test_tcp_dial_with_a_wrong_token_is_refused(void **state)
{
	struct transport_opts o = {.token_file = token_file};
	struct accepted acc = {0};
	struct loop *l = NULL;
	struct transport_listener *tl;
	struct uri u;
	char why[200];
	pl_fd fd, good;

	write_token("right");
	tl = tcp_listen(&u);
	write_token("wrong"); /* the dialer reads the file anew */
	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(transport_accept(l, tl, &acc.ar, accepted_cb), 0);
	log_clear();
	if (transport_dial_sync(&u, &o, &fd, why, sizeof(why)))
		fail_msg("dial: %s", why);
	run_until_closed(l, (SOCKET)fd);
	assert_int_equal(acc.calls, 0);
	assert_logged("accept failed: Permission denied");
	write_token("right");
	good = tcp_dial_and_accept(l, &u, &acc);
	transport_close_fd(good);
	transport_close_fd(acc.fd);
	transport_close_fd(fd);
	transport_listener_close(tl);
	loop_free(l);
	DeleteFileA(token_file);
}

/*
 * Clients that connect and never send hold no more than their own slot: a
 * client with the token behind them gets in long before their deadline
 * (20 s here, four times run_until's wait) would have let it through.
 */
static void test_tcp_idle_clients_do_not_hold_the_listener(void **state)
{
	struct accepted acc = {0};
	struct loop *l = NULL;
	struct transport_listener *tl;
	SOCKET idle[8];
	struct uri u;
	pl_fd fd;

	write_token("s3cret");
	tl = tcp_listen_for(&u, 20000);
	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(transport_accept(l, tl, &acc.ar, accepted_cb), 0);
	for (int i = 0; i < 8; i++)
		idle[i] = tcp_connect_idle(&u);
	run_for(l, 50);
	fd = tcp_dial_and_accept(l, &u, &acc);
	for (int i = 0; i < 8; i++)
		assert_false(tcp_closed(idle[i]));
	transport_close_fd(fd);
	transport_close_fd(acc.fd);
	tcp_close_and_drain(l, tl, idle, 8);
	loop_free(l);
	DeleteFileA(token_file);
}

/* More silent clients than GATE_HANDSHAKES_MAX: the oldest are dropped, a client with the token
 * still gets in. */
static void test_tcp_past_the_bound_the_oldest_handshake_is_dropped(void **state)
{
	enum { EXTRA = 8, N = GATE_HANDSHAKES_MAX + EXTRA };
	struct accepted acc = {0};
	struct loop *l = NULL;
	struct transport_listener *tl;
	SOCKET idle[N];
	struct uri u;
	pl_fd fd;

	write_token("s3cret");
	tl = tcp_listen_for(&u, 20000);
	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(transport_accept(l, tl, &acc.ar, accepted_cb), 0);
	log_clear();
	for (int i = 0; i < N; i++) {
		idle[i] = tcp_connect_idle(&u);
		assert_true(loop_run_once(l, 0) >= 0);
	}
	for (int i = 0; i < EXTRA; i++)
		run_until_closed(l, idle[i]);
	assert_logged("have not sent their token yet; dropped the oldest");
	fd = tcp_dial_and_accept(l, &u, &acc);
	/* The newcomer took the slot of the oldest that was left. */
	run_until_closed(l, idle[EXTRA]);
	for (int i = EXTRA + 1; i < N; i++)
		assert_false(tcp_closed(idle[i]));
	for (int i = 0; i <= EXTRA; i++)
		closesocket(idle[i]);
	transport_close_fd(fd);
	transport_close_fd(acc.fd);
	tcp_close_and_drain(l, tl, idle + EXTRA + 1, N - EXTRA - 1);
	loop_free(l);
	DeleteFileA(token_file);
}

/* A client authenticated while no accept is pending waits for the next accept, bytes intact. */
static void test_tcp_token_between_accepts_waits_for_the_next(void **state)
{
	static const char line[] = "VMBUSIFY-TOKEN s3cret\nxy";
	struct accepted acc = {0}, acc2 = {0};
	struct loop *l = NULL;
	struct transport_listener *tl;
	char buf[4] = {0};
	struct uri u;
	SOCKET b;
	pl_fd fd;

	write_token("s3cret");
	tl = tcp_listen_for(&u, 20000);
	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	b = tcp_connect_idle(&u); /* accepted before the dial below, and silent for now */
	assert_int_equal(transport_accept(l, tl, &acc.ar, accepted_cb), 0);
	fd = tcp_dial_and_accept(l, &u, &acc);
	assert_int_equal(send(b, line, (int)sizeof(line) - 1, 0), (int)sizeof(line) - 1);
	run_for(l, 100);
	assert_int_equal(transport_accept(l, tl, &acc2.ar, accepted_cb), 0);
	assert_int_equal(acc2.calls, 0);
	run_until(l, &acc2.calls);
	assert_int_equal(acc2.res, 0);
	Sleep(20);
	assert_int_equal(recv((SOCKET)acc2.fd, buf, sizeof(buf), 0), 2);
	assert_memory_equal(buf, "xy", 2);
	closesocket(b);
	transport_close_fd(fd);
	transport_close_fd(acc.fd);
	transport_close_fd(acc2.fd);
	transport_listener_close(tl);
	loop_free(l);
	DeleteFileA(token_file);
}

/* A cancelled accept closes every handshake before its callback runs. */
static void test_tcp_cancel_frees_the_handshakes(void **state)
{
	enum { N = GATE_HANDSHAKES_MAX + 1 };
	struct accepted acc = {0};
	struct loop *l = NULL;
	struct transport_listener *tl;
	SOCKET idle[N];
	struct uri u;

	write_token("s3cret");
	tl = tcp_listen_for(&u, 20000);
	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(transport_accept(l, tl, &acc.ar, accepted_cb), 0);
	for (int i = 0; i < N; i++)
		idle[i] = tcp_connect_idle(&u);
	/* The first one dropped means that every one of them was accepted. */
	run_until_closed(l, idle[0]);
	transport_accept_cancel(&acc.ar);
	run_until(l, &acc.calls);
	assert_int_equal(acc.res, -ECANCELED);
	assert_int_equal(acc.fd, -1);
	for (int i = 1; i < N; i++)
		assert_closed_soon(idle[i]);
	for (int i = 0; i < N; i++)
		closesocket(idle[i]);
	transport_listener_close(tl);
	loop_free(l);
	DeleteFileA(token_file);
}

/* Closing the listener closes the waiting connections at once and the handshakes soon after. */
static void test_tcp_close_frees_handshakes_and_waiting_connections(void **state)
{
	static const char line[] = "VMBUSIFY-TOKEN s3cret\n";
	struct accepted acc = {0};
	struct loop *l = NULL;
	struct transport_listener *tl;
	SOCKET idle[4], b;
	struct uri u;
	pl_fd fd;

	write_token("s3cret");
	tl = tcp_listen_for(&u, 20000);
	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	for (int i = 0; i < 4; i++)
		idle[i] = tcp_connect_idle(&u);
	b = tcp_connect_idle(&u);
	assert_int_equal(transport_accept(l, tl, &acc.ar, accepted_cb), 0);
	fd = tcp_dial_and_accept(l, &u, &acc);
	assert_int_equal(send(b, line, (int)sizeof(line) - 1, 0), (int)sizeof(line) - 1);
	run_for(l, 100);
	for (int i = 0; i < 4; i++)
		assert_false(tcp_closed(idle[i]));
	assert_false(tcp_closed(b));
	transport_close_fd(fd);
	transport_close_fd(acc.fd);
	transport_listener_close(tl);
	assert_closed_soon(b);
	closesocket(b);
	for (int i = 0; i < 4; i++) {
		run_until_closed(l, idle[i]);
		closesocket(idle[i]);
	}
	loop_free(l);
	DeleteFileA(token_file);
}

/* As a token file with group or other permissions on Linux. */
static void test_tcp_token_file_readable_by_others_is_refused(void **state)
{
	struct transport_opts o = {.token_file = token_file};
	struct uri u = parse("tcp://127.0.0.1:0");
	struct transport_listener *tl = NULL;
	char why[300] = "";
	PSECURITY_DESCRIPTOR sd = NULL;
	PACL dacl = NULL;
	bool everyone = false;

	write_token_as("s3cret", true);
	/* Only meaningful where the file system keeps the DACL it was given. */
	assert_int_equal(GetNamedSecurityInfoA(token_file, SE_FILE_OBJECT,
					       DACL_SECURITY_INFORMATION, NULL, NULL, &dacl, NULL,
					       &sd),
			 ERROR_SUCCESS);
	for (DWORD i = 0; dacl && i < dacl->AceCount; i++) {
		ACCESS_ALLOWED_ACE *ace;

		if (GetAce(dacl, i, (void **)&ace) &&
		    IsWellKnownSid((PSID)&ace->SidStart, WinWorldSid))
			everyone = true;
	}
	LocalFree(sd);
	if (!everyone) {
		DeleteFileA(token_file);
		print_message("the file system dropped the Everyone entry\n");
		skip();
	}
	assert_int_equal(transport_listen(&u, &o, &tl, why, sizeof(why)), -EACCES);
	assert_null(tl);
	assert_non_null(strstr(why, "readable by"));
	assert_non_null(strstr(why, "Everyone"));
	write_token("s3cret");
	assert_int_equal(transport_listen(&u, &o, &tl, why, sizeof(why)), 0);
	transport_listener_close(tl);
	DeleteFileA(token_file);
}

static void test_tcp_listen_without_a_token_is_refused(void **state)
{
	struct uri u = parse("tcp://127.0.0.1:0");
	struct transport_listener *tl = NULL;
	char why[200] = "";

	assert_int_equal(transport_listen(&u, NULL, &tl, why, sizeof(why)), -EINVAL);
	assert_null(tl);
	assert_non_null(strstr(why, "without a token"));
}

/* ---- named pipes ---- */

static struct uri pipe_uri(void)
{
	static int n;
	char text[64];

	snprintf(text, sizeof(text), "npipe://vbtest-%lu-%d", GetCurrentProcessId(), n++);
	return parse(text);
}

static void test_npipe_accept_and_dial_carry_bytes_both_ways(void **state)
{
	struct uri u = pipe_uri();
	struct transport_listener *tl = NULL;
	struct accepted acc = {0};
	struct dialed d = {0};
	struct loop *l = NULL;
	char why[200] = "", buf[8] = {0};
	DWORD n;

	assert_int_equal(transport_listen(&u, NULL, &tl, why, sizeof(why)), 0);
	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(transport_accept(l, tl, &acc.ar, accepted_cb), 0);
	assert_int_equal(transport_dial(l, &u, NULL, &d.dr, dialed_cb), 0);
	assert_int_equal(d.calls, 0);
	run_until(l, &d.calls);
	run_until(l, &acc.calls);
	assert_int_equal(d.res, 0);
	assert_int_equal(acc.res, 0);
	{
		OVERLAPPED ov = {.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL)};

		assert_true(WriteFile((HANDLE)d.fd, "hi", 2, NULL, &ov) ||
			    GetLastError() == ERROR_IO_PENDING);
		assert_true(GetOverlappedResult((HANDLE)d.fd, &ov, &n, TRUE));
		ResetEvent(ov.hEvent);
		assert_true(ReadFile((HANDLE)acc.fd, buf, sizeof(buf), NULL, &ov) ||
			    GetLastError() == ERROR_IO_PENDING);
		assert_true(GetOverlappedResult((HANDLE)acc.fd, &ov, &n, TRUE));
		assert_int_equal(n, 2);
		assert_memory_equal(buf, "hi", 2);
		CloseHandle(ov.hEvent);
	}
	transport_close_fd(d.fd);
	transport_close_fd(acc.fd);
	transport_listener_close(tl);
	loop_free(l);
}

/* True under Wine, whose ntdll exports its version. */
static bool under_wine(void)
{
	HMODULE ntdll = GetModuleHandleA("ntdll.dll");

	return ntdll && GetProcAddress(ntdll, "wine_get_version");
}

static void test_npipe_second_listener_on_a_name_is_refused(void **state)
{
	struct uri u = pipe_uri();
	struct transport_listener *a = NULL, *b = NULL;
	char why[200] = "";

	if (under_wine()) {
		print_message("  skipped: Wine does not enforce FILE_FLAG_FIRST_PIPE_INSTANCE\n");
		skip();
	}
	assert_int_equal(transport_listen(&u, NULL, &a, why, sizeof(why)), 0);
	assert_int_equal(transport_listen(&u, NULL, &b, why, sizeof(why)), -EADDRINUSE);
	assert_non_null(strstr(why, "another server"));
	transport_listener_close(a);
}

static void test_npipe_dial_to_a_missing_pipe_reports_enoent(void **state)
{
	struct uri u = pipe_uri();
	struct dialed d = {0};
	struct loop *l = NULL;
	char why[200] = "";
	pl_fd fd;

	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(transport_dial(l, &u, NULL, &d.dr, dialed_cb), 0);
	run_until(l, &d.calls);
	assert_int_equal(d.res, -ENOENT);
	assert_int_equal(d.fd, -1);
	assert_non_null(strstr(d.dr.why, "npipe://"));
	assert_int_equal(transport_dial_sync(&u, NULL, &fd, why, sizeof(why)), -ENOENT);
	loop_free(l);
}

static void test_npipe_dial_sync_reaches_a_listener(void **state)
{
	struct uri u = pipe_uri();
	struct transport_listener *tl = NULL;
	struct accepted acc = {0};
	struct loop *l = NULL;
	char why[200] = "";
	pl_fd fd;

	assert_int_equal(transport_listen(&u, NULL, &tl, why, sizeof(why)), 0);
	assert_int_equal(loop_new(&l, LOOP_BACKEND_AUTO), 0);
	assert_int_equal(transport_accept(l, tl, &acc.ar, accepted_cb), 0);
	assert_int_equal(transport_dial_sync(&u, NULL, &fd, why, sizeof(why)), 0);
	run_until(l, &acc.calls);
	assert_int_equal(acc.res, 0);
	transport_close_fd(fd);
	transport_close_fd(acc.fd);
	transport_listener_close(tl);
	loop_free(l);
}

static void test_linux_only_addresses_are_refused_with_a_reason(void **state)
{
	static const char *const uris[] = {"unix:///run/x.sock", "vsock://3:80",
					   "serial:///dev/ttyS0"};
	struct transport_listener *tl = NULL;
	char why[200];
	pl_fd fd;

	for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++) {
		struct uri u = parse(uris[i]);

		why[0] = '\0';
		assert_int_equal(transport_dial_sync(&u, NULL, &fd, why, sizeof(why)), -ENOTSUP);
		assert_true(why[0] != '\0');
		if (u.kind != URI_VSOCK || u.listen)
			assert_int_equal(transport_listen(&u, NULL, &tl, why, sizeof(why)),
					 -ENOTSUP);
	}
}

/* ---- the error space ---- */

static void test_windows_errors_map_to_negative_errno(void **state)
{
	assert_int_equal(err_from_win(0), 0);
	assert_int_equal(err_from_win(WSAECONNRESET), -ECONNRESET);
	assert_int_equal(err_from_win(ERROR_NETNAME_DELETED), -ECONNRESET);
	assert_int_equal(err_from_win(WSAECONNREFUSED), -ECONNREFUSED);
	assert_int_equal(err_from_win(ERROR_CONNECTION_REFUSED), -ECONNREFUSED);
	assert_int_equal(err_from_win(WSAEWOULDBLOCK), -EAGAIN);
	assert_int_equal(err_from_win(ERROR_OPERATION_ABORTED), -ECANCELED);
	assert_int_equal(err_from_win(ERROR_BROKEN_PIPE), -EPIPE);
	assert_int_equal(err_from_win(ERROR_FILE_NOT_FOUND), -ENOENT);
	assert_int_equal(err_from_win(ERROR_ACCESS_DENIED), -EACCES);
	assert_int_equal(err_from_win(WSAETIMEDOUT), -ETIMEDOUT);
	assert_int_equal(err_from_win(WSAEHOSTDOWN), -EHOSTDOWN);
	assert_int_equal(err_from_win(WSAHOST_NOT_FOUND), -ENXIO);
	assert_int_equal(err_from_win(0x20001234), -EIO); /* unknown */
	assert_int_equal(err_from_ntstatus(0), 0);
	assert_int_equal(err_from_ntstatus((long)0xC0000120L), -ECANCELED); /* STATUS_CANCELLED */
	assert_int_equal(err_from_ntstatus((long)0xC000014BL), -EPIPE);	    /* STATUS_PIPE_BROKEN */
}

static void test_error_texts_cover_the_socket_errno_values(void **state)
{
	assert_string_equal(sys_strerror(-ECONNRESET), "Connection reset by peer");
	assert_string_equal(sys_strerror(-ESHUTDOWN),
			    "Cannot send after transport endpoint shutdown");
	assert_string_equal(sys_strerror(-ECANCELED), "Operation canceled");
	assert_non_null(sys_strerror(-ENOENT));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_hvsock_parent_port_is_the_vsock_template),
	    cmocka_unit_test(test_hvsock_default_port_is_vb),
	    cmocka_unit_test(test_hvsock_vmid_and_service_guid_keep_their_fields),
	    cmocka_unit_test(test_hvsock_listen_addresses_are_wildcard_and_children),
	    cmocka_unit_test(test_hvsock_vm_name_must_be_resolved_before_its_address),
	    cmocka_unit_test(test_hvsock_connect_timeout_is_clamped),
	    cmocka_unit_test(test_hvsock_dial_fails_cleanly_without_hyper_v),
	    cmocka_unit_test(test_tcp_dial_with_the_right_token_is_accepted),
	    cmocka_unit_test(test_tcp_dial_with_a_wrong_token_is_refused),
	    cmocka_unit_test(test_tcp_idle_clients_do_not_hold_the_listener),
	    cmocka_unit_test(test_tcp_past_the_bound_the_oldest_handshake_is_dropped),
	    cmocka_unit_test(test_tcp_token_between_accepts_waits_for_the_next),
	    cmocka_unit_test(test_tcp_cancel_frees_the_handshakes),
	    cmocka_unit_test(test_tcp_close_frees_handshakes_and_waiting_connections),
	    cmocka_unit_test(test_tcp_listen_without_a_token_is_refused),
	    cmocka_unit_test(test_tcp_token_file_readable_by_others_is_refused),
	    cmocka_unit_test(test_npipe_accept_and_dial_carry_bytes_both_ways),
	    cmocka_unit_test(test_npipe_second_listener_on_a_name_is_refused),
	    cmocka_unit_test(test_npipe_dial_to_a_missing_pipe_reports_enoent),
	    cmocka_unit_test(test_npipe_dial_sync_reaches_a_listener),
	    cmocka_unit_test(test_linux_only_addresses_are_refused_with_a_reason),
	    cmocka_unit_test(test_windows_errors_map_to_negative_errno),
	    cmocka_unit_test(test_error_texts_cover_the_socket_errno_values),
	};

	/* The tcp tests read what the listener logs; every line of it. */
	log_set_sink(log_capture);
	log_rate_limit(false, NULL);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
