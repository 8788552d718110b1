/* TUN devices on Windows: a Wintun adapter (wintun.dll, loaded at run time) behind a message-mode
 * pipe the loop reads and writes: see platform/tun.h. */
#include <winsock2.h>
#include <windows.h>
#include <iphlpapi.h>
#include <netioapi.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/log.h"
#include "core/why.h"
#include "platform/netcfg.h"
#include "platform/sys.h"
#include "platform/tun.h"
#include "platform/win/err.h"
#include "platform/win/tun_gso.h"

/*
 * Theory of operation
 *
 * Wintun (https://www.wintun.net) is a layer-3 adapter whose packets a
 * program exchanges through two rings shared with the driver: a session
 * hands out received packets (WintunReceivePacket, with an event to wait on
 * when the ring is empty) and takes packets to send (WintunAllocateSendPacket
 * then WintunSendPacket), both thread-safe. The rings are no handle the loop
 * could read, and platform/tun.h promises one: so the device's fd is the
 * server end of a message-mode named pipe (overlapped, on the loop's port
 * like any pipe), and two relay threads hold the other end:
 *
 *   rx  waits on the read event (or the stop event), takes each packet out
 *       of the ring, puts an all-zero offload header in front (Wintun knows
 *       no offloads) and writes it to the pipe as one message: one
 *       loop_read() is one frame. A full pipe blocks the thread, and then
 *       Wintun's ring fills and the driver drops: datagrams, never queued
 *       without bound.
 *   tx  reads one message (one frame, as loop_write() wrote it), finishes
 *       its offloads in software (tun_gso.c: checksums, TSO and USO cut
 *       into segments) and copies each packet into the send ring; a full
 *       ring drops the packet.
 *
 * tun_close() sets the stop event, closes the loop's end (which breaks the
 * pipe: a relay call in progress fails), cancels what is left on the relay's
 * end, joins both threads, then ends the session and closes the adapter,
 * which removes it with its addresses and routes, as closing a Linux TUN
 * does. Costs: one copy more each way than on Linux (ring to pipe, pipe to
 * ring) and two context switches per packet; a loop that reads the ring
 * itself could save them later.
 *
 * The DLL comes from the executable's directory only
 * (LOAD_LIBRARY_SEARCH_APPLICATION_DIR): never the current directory or the
 * PATH, where anyone could plant one for a process that runs as LocalSystem.
 */

#define TUN_WIN_RING	     0x400000u /* 4 MiB per ring (Wintun takes 128 KiB to 64 MiB) */
#define TUN_WIN_PIPE_BUF     (1024 * 1024)
#define TUN_WIN_PACKET_MAX   0xffffu /* WINTUN_MAX_IP_PACKET_SIZE */
#define TUN_WIN_NAME_DEFAULT "vmbusify"
#define TUN_WIN_TYPE	     L"VMBusify"

/* Wintun's API (wintun.h of Wintun 0.14), declared here from its documentation. */
typedef void *tun_wintun_adapter;
typedef void *tun_wintun_session;
typedef tun_wintun_adapter(WINAPI *tun_wintun_create_fn)(LPCWSTR name, LPCWSTR type,
							 const GUID *guid);
typedef tun_wintun_adapter(WINAPI *tun_wintun_open_fn)(LPCWSTR name);
typedef void(WINAPI *tun_wintun_close_fn)(tun_wintun_adapter a);
typedef void(WINAPI *tun_wintun_luid_fn)(tun_wintun_adapter a, NET_LUID *luid);
typedef tun_wintun_session(WINAPI *tun_wintun_start_fn)(tun_wintun_adapter a, DWORD capacity);
typedef void(WINAPI *tun_wintun_end_fn)(tun_wintun_session s);
typedef HANDLE(WINAPI *tun_wintun_event_fn)(tun_wintun_session s);
typedef BYTE *(WINAPI *tun_wintun_recv_fn)(tun_wintun_session s, DWORD *size);
typedef void(WINAPI *tun_wintun_release_fn)(tun_wintun_session s, const BYTE *pkt);
typedef BYTE *(WINAPI *tun_wintun_alloc_fn)(tun_wintun_session s, DWORD size);
typedef void(WINAPI *tun_wintun_send_fn)(tun_wintun_session s, const BYTE *pkt);

struct tun_wintun {
	HMODULE dll;
	tun_wintun_create_fn create;
	tun_wintun_open_fn open; /* looked up so that a too old DLL is refused whole */
	tun_wintun_close_fn close;
	tun_wintun_luid_fn luid;
	tun_wintun_start_fn start;
	tun_wintun_end_fn end;
	tun_wintun_event_fn read_event;
	tun_wintun_recv_fn recv;
	tun_wintun_release_fn release;
	tun_wintun_alloc_fn alloc;
	tun_wintun_send_fn send;
};

/* Everything of one open device, behind struct tun's os pointer. */
struct tun_win {
	struct tun_wintun api;
	tun_wintun_adapter adapter;
	tun_wintun_session session;
	HANDLE relay; /* the relay threads' end of the pipe (overlapped) */
	HANDLE stop;  /* manual-reset: the rx thread stops waiting for packets */
	HANDLE rx, tx;
	volatile LONG tx_drops;
	uint8_t rx_buf[TUN_FRAME_MAX];
	uint8_t tx_buf[TUN_FRAME_MAX];
	uint8_t tx_seg[TUN_PACKET_MAX];
};

/* ---- loading wintun.dll ---- */

/* The file name of the running executable ("vmbusifyd.exe"), for messages. */
static void tun_exe_name(char *out, size_t len)
{
	wchar_t path[MAX_PATH];
	DWORD n = GetModuleFileNameW(NULL, path, MAX_PATH);
	const wchar_t *base = path;

	snprintf(out, len, "the executable");
	if (n == 0 || n >= MAX_PATH)
		return;
	for (DWORD i = 0; i < n; i++) {
		if (path[i] == L'\\' || path[i] == L'/')
			base = path + i + 1;
	}
	if (!WideCharToMultiByte(CP_UTF8, 0, base, -1, out, (int)len, NULL, NULL))
		snprintf(out, len, "the executable");
}

/* One export of the DLL, or NULL with the reason in why. */
static FARPROC tun_wintun_sym(struct tun_wintun *w, const char *name, char *why, size_t whylen)
{
	FARPROC f = GetProcAddress(w->dll, name);

	if (!f)
		why_set(why, whylen, -ENOSYS,
			"wintun.dll has no %s (Wintun 0.14 or later is needed, from wintun.net)",
			name);
	return f;
}

/*
 * tun_wintun_load() - loads wintun.dll from the executable's directory and
 * looks its functions up. Return: 0 (w->dll to FreeLibrary), or a negative
 * errno with a one-line reason (-ENOENT: no wintun.dll there).
 */
static int tun_wintun_load(struct tun_wintun *w, char *why, size_t whylen)
{
	char exe[MAX_PATH];
	DWORD e;
	int ret = -ENOSYS;

	memset(w, 0, sizeof(*w));
	w->dll = LoadLibraryExW(L"wintun.dll", NULL, LOAD_LIBRARY_SEARCH_APPLICATION_DIR);
	if (!w->dll) {
		e = GetLastError();
		tun_exe_name(exe, sizeof(exe));
		if (e == ERROR_MOD_NOT_FOUND || e == ERROR_FILE_NOT_FOUND)
			return why_set(why, whylen, -ENOENT,
				       "wintun.dll not found beside %s (download it from "
				       "https://www.wintun.net and put the amd64 wintun.dll there)",
				       exe);
		ret = err_from_win(e);
		return why_set(why, whylen, ret, "wintun.dll beside %s cannot be loaded: %s", exe,
			       sys_strerror(ret));
	}
#define TUN_WINTUN_SYM(field, type, name)                                                          \
	if (!(w->field = (type)(void *)tun_wintun_sym(w, name, why, whylen)))                      \
	goto fail
	TUN_WINTUN_SYM(create, tun_wintun_create_fn, "WintunCreateAdapter");
	TUN_WINTUN_SYM(open, tun_wintun_open_fn, "WintunOpenAdapter");
	TUN_WINTUN_SYM(close, tun_wintun_close_fn, "WintunCloseAdapter");
	TUN_WINTUN_SYM(luid, tun_wintun_luid_fn, "WintunGetAdapterLUID");
	TUN_WINTUN_SYM(start, tun_wintun_start_fn, "WintunStartSession");
	TUN_WINTUN_SYM(end, tun_wintun_end_fn, "WintunEndSession");
	TUN_WINTUN_SYM(read_event, tun_wintun_event_fn, "WintunGetReadWaitEvent");
	TUN_WINTUN_SYM(recv, tun_wintun_recv_fn, "WintunReceivePacket");
	TUN_WINTUN_SYM(release, tun_wintun_release_fn, "WintunReleaseReceivePacket");
	TUN_WINTUN_SYM(alloc, tun_wintun_alloc_fn, "WintunAllocateSendPacket");
	TUN_WINTUN_SYM(send, tun_wintun_send_fn, "WintunSendPacket");
#undef TUN_WINTUN_SYM
	return 0;
fail:
	FreeLibrary(w->dll);
	w->dll = NULL;
	return ret;
}

/* ---- the relay ---- */

/* One overlapped call on the relay's end, waited for; 0 and *done, or a negative errno. */
static int tun_relay_io(HANDLE h, HANDLE ev, bool write, void *buf, DWORD len, DWORD *done)
{
	OVERLAPPED ov = {.hEvent = ev};
	BOOL ok = write ? WriteFile(h, buf, len, NULL, &ov) : ReadFile(h, buf, len, NULL, &ov);

	if (!ok && GetLastError() != ERROR_IO_PENDING)
		return err_win_last();
	if (!GetOverlappedResult(h, &ov, done, TRUE))
		return err_win_last();
	return 0;
}

/* Wintun's ring to the pipe, until the pipe breaks or the stop event is set. */
static DWORD WINAPI tun_rx_main(void *arg)
{
	struct tun_win *w = arg;
	HANDLE ev = CreateEventW(NULL, TRUE, FALSE, NULL);
	HANDLE wait[2] = {w->api.read_event(w->session), w->stop};
	DWORD size, done;
	BYTE *pkt;

	while (ev) {
		pkt = w->api.recv(w->session, &size);
		if (!pkt) {
			if (GetLastError() != ERROR_NO_MORE_ITEMS ||
			    WaitForMultipleObjects(2, wait, FALSE, INFINITE) != WAIT_OBJECT_0)
				break; /* stopping, or the adapter is gone (ERROR_HANDLE_EOF) */
			continue;
		}
		if (size > TUN_PACKET_MAX) {
			w->api.release(w->session, pkt);
			continue;
		}
		memset(w->rx_buf, 0, TUN_HDR_LEN); /* no offloads: flags 0, GSO none */
		memcpy(w->rx_buf + TUN_HDR_LEN, pkt, size);
		w->api.release(w->session, pkt);
		if (tun_relay_io(w->relay, ev, true, w->rx_buf, TUN_HDR_LEN + size, &done) < 0)
			break;
	}
	if (ev)
		CloseHandle(ev);
	return 0;
}

/* Copies one finished packet into Wintun's send ring (tun_gso_split's emit). */
static int tun_tx_packet(void *arg, const uint8_t *pkt, size_t len)
{
	struct tun_win *w = arg;
	BYTE *p;

	if (len > TUN_WIN_PACKET_MAX)
		return -EMSGSIZE;
	p = w->api.alloc(w->session, (DWORD)len);
	if (!p)
		return GetLastError() == ERROR_BUFFER_OVERFLOW ? -ENOBUFS : -EIO;
	memcpy(p, pkt, len);
	w->api.send(w->session, p);
	return 0;
}

/* The pipe to Wintun's send ring, until the pipe breaks. */
static DWORD WINAPI tun_tx_main(void *arg)
{
	struct tun_win *w = arg;
	HANDLE ev = CreateEventW(NULL, TRUE, FALSE, NULL);
	DWORD n;

	while (ev && tun_relay_io(w->relay, ev, false, w->tx_buf, sizeof(w->tx_buf), &n) == 0) {
		if (tun_gso_split(w->tx_buf, n, w->tx_seg, tun_tx_packet, w) < 0)
			InterlockedIncrement(&w->tx_drops);
	}
	if (ev)
		CloseHandle(ev);
	return 0;
}

/*
 * tun_pipe() - a message-mode pipe: *ours (overlapped, for the loop) and
 * *relay (overlapped, for the relay threads). One instance, made first by
 * us, and opened at once: a process that raced to connect first makes our
 * open fail (fail closed), and nobody can connect afterwards.
 */
static int tun_pipe(HANDLE *ours, HANDLE *relay)
{
	static volatile LONG serial;
	DWORD mode = PIPE_READMODE_MESSAGE;
	wchar_t name[80];
	int r;

	swprintf(name, 80, L"\\\\.\\pipe\\vmbusify-tun-%lu-%ld", GetCurrentProcessId(),
		 InterlockedIncrement(&serial));
	*ours = CreateNamedPipeW(
	    name, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
	    PIPE_TYPE_MESSAGE | PIPE_READMODE_MESSAGE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS, 1,
	    TUN_WIN_PIPE_BUF, TUN_WIN_PIPE_BUF, 0, NULL);
	if (*ours == INVALID_HANDLE_VALUE)
		return err_win_last();
	*relay = CreateFileW(name, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
			     FILE_FLAG_OVERLAPPED, NULL);
	/* A client end reads bytes unless told otherwise; the relay reads whole frames. */
	if (*relay != INVALID_HANDLE_VALUE && SetNamedPipeHandleState(*relay, &mode, NULL, NULL))
		return 0;
	r = err_win_last();
	if (*relay != INVALID_HANDLE_VALUE)
		CloseHandle(*relay);
	CloseHandle(*ours);
	*ours = *relay = INVALID_HANDLE_VALUE;
	return r;
}

/* ---- the device ---- */

/* Creates the adapter and starts its session; 0 or a negative errno with the reason. */
static int tun_adapter(struct tun *t, struct tun_win *w, char *why, size_t whylen)
{
	wchar_t wname[TUN_NAME_MAX];
	NET_LUID luid;
	NET_IFINDEX idx = 0;
	int ret;

	if (!MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, t->name, -1, wname, TUN_NAME_MAX))
		return why_set(why, whylen, -EINVAL, "TUN name '%s' is not UTF-8", t->name);
	w->adapter = w->api.create(wname, TUN_WIN_TYPE, NULL);
	if (!w->adapter) {
		ret = err_win_last();
		return why_set(why, whylen, ret, "cannot create the Wintun adapter '%s': %s%s",
			       t->name, sys_strerror(ret),
			       ret == -EACCES || ret == -EPERM ? " (run as Administrator)" : "");
	}
	w->api.luid(w->adapter, &luid);
	if (ConvertInterfaceLuidToIndex(&luid, &idx) != NO_ERROR || idx == 0)
		return why_set(why, whylen, -ENODEV, "%s: no interface index", t->name);
	t->ifindex = (int)idx;
	w->session = w->api.start(w->adapter, TUN_WIN_RING);
	if (!w->session) {
		ret = err_win_last();
		return why_set(why, whylen, ret, "%s: cannot start a Wintun session: %s", t->name,
			       sys_strerror(ret));
	}
	return 0;
}

/* Starts the two relay threads; 0 or a negative errno. */
static int tun_relay_start(struct tun_win *w)
{
	w->stop = CreateEventW(NULL, TRUE, FALSE, NULL);
	if (!w->stop)
		return err_win_last();
	w->rx =
	    CreateThread(NULL, 64 * 1024, tun_rx_main, w, STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
	if (!w->rx)
		return err_win_last();
	w->tx =
	    CreateThread(NULL, 64 * 1024, tun_tx_main, w, STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
	return w->tx ? 0 : err_win_last();
}

/* Undoes what tun_open() did, in reverse: relay, session, adapter, DLL. */
static void tun_win_free(struct tun *t, struct tun_win *w)
{
	HANDLE th[2];
	DWORD n = 0;

	if (w->stop)
		SetEvent(w->stop);
	if (t->fd != -1)
		CloseHandle((HANDLE)t->fd); /* breaks the pipe under the relay's calls */
	t->fd = -1;
	if (w->relay && w->relay != INVALID_HANDLE_VALUE)
		CancelIoEx(w->relay, NULL);
	if (w->rx)
		th[n++] = w->rx;
	if (w->tx)
		th[n++] = w->tx;
	if (n)
		WaitForMultipleObjects(n, th, TRUE, INFINITE);
	for (DWORD i = 0; i < n; i++)
		CloseHandle(th[i]);
	if (w->relay && w->relay != INVALID_HANDLE_VALUE)
		CloseHandle(w->relay);
	if (w->stop)
		CloseHandle(w->stop);
	if (w->session)
		w->api.end(w->session);
	if (w->adapter)
		w->api.close(w->adapter); /* removes it, with its addresses and routes */
	if (w->tx_drops)
		vb_info("vnet: %s: %ld packets to the host dropped (bad frame or full ring)",
			t->name, (long)w->tx_drops);
	if (w->api.dll)
		FreeLibrary(w->api.dll);
	free(w);
}

int tun_open(struct tun *t, const char *name, unsigned offloads, char *why, size_t whylen)
{
	struct tun_win *w;
	HANDLE ours = INVALID_HANDLE_VALUE;
	int ret;

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	if (name && strlen(name) >= TUN_NAME_MAX)
		return why_set(why, whylen, -EINVAL, "TUN name '%s' is longer than %d bytes", name,
			       TUN_NAME_MAX - 1);
	snprintf(t->name, sizeof(t->name), "%s", name && *name ? name : TUN_WIN_NAME_DEFAULT);
	w = calloc(1, sizeof(*w));
	if (!w)
		return why_set(why, whylen, -ENOMEM, "out of memory");
	ret = tun_wintun_load(&w->api, why, whylen);
	if (!ret)
		ret = tun_adapter(t, w, why, whylen);
	if (!ret && (ret = tun_pipe(&ours, &w->relay)) < 0)
		why_set(why, whylen, ret, "%s: the relay's pipe: %s", t->name, sys_strerror(ret));
	if (!ret) {
		t->fd = (pl_fd)ours;
		ret = tun_relay_start(w);
		if (ret < 0)
			why_set(why, whylen, ret, "%s: the relay's threads: %s", t->name,
				sys_strerror(ret));
	}
	if (ret < 0) {
		tun_win_free(t, w);
		t->ifindex = 0;
		return ret;
	}
	/* Wintun hands out finished packets only: offloads is a wish, not a must. */
	t->offloads = 0;
	t->os = w;
	return 0;
}

int tun_set_mtu(const struct tun *t, unsigned mtu)
{
	struct netcfg *nc;
	int ret;

	if (mtu < 68 || mtu > TUN_WIN_PACKET_MAX)
		return -EINVAL;
	ret = netcfg_open(&nc);
	if (ret < 0)
		return ret;
	ret = netcfg_link_set_mtu(nc, t->ifindex, mtu);
	netcfg_close(nc);
	return ret;
}

void tun_close(struct tun *t)
{
	if (t->os)
		tun_win_free(t, t->os);
	t->os = NULL;
	t->fd = -1;
	t->ifindex = 0;
}
