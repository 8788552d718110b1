/* A stand-in wintun.dll for tests/win/tun/test_win_tun_relay.c: Wintun's API over two queues. */
#include <windows.h>
#include <iphlpapi.h>
#include <netioapi.h>
#include <stdlib.h>
#include <string.h>

/*
 * Only what platform/win/tun.c calls, with Wintun's documented behaviour:
 * ReceivePacket fails with ERROR_NO_MORE_ITEMS on an empty ring (the read
 * event is signalled again when a packet comes), AllocateSendPacket and
 * SendPacket queue a packet. The test drives it through the Fake* exports:
 * packets "from the host" go in with FakeWintunInject, what the relay sent
 * comes out with FakeWintunSent. The adapter's LUID is that of the first
 * interface Windows (Wine) has, so that tun_open() finds an index.
 */

#define FAKE_MAX 64

#define FAKE_API __declspec(dllexport) WINAPI

struct fake_pkt {
	DWORD len;
	BYTE data[];
};

static struct fake {
	CRITICAL_SECTION lock;
	HANDLE ready;
	struct fake_pkt *rx[FAKE_MAX], *tx[FAKE_MAX];
	int rx_head, rx_n, tx_n;
	LONG sessions_ended, adapters_closed;
} fake;

void *FAKE_API WintunCreateAdapter(const WCHAR *name, const WCHAR *type, const GUID *guid);
void *FAKE_API WintunOpenAdapter(const WCHAR *name);
void FAKE_API WintunCloseAdapter(void *a);
void FAKE_API WintunGetAdapterLUID(void *a, NET_LUID *luid);
void *FAKE_API WintunStartSession(void *a, DWORD capacity);
void FAKE_API WintunEndSession(void *s);
HANDLE FAKE_API WintunGetReadWaitEvent(void *s);
BYTE *FAKE_API WintunReceivePacket(void *s, DWORD *size);
void FAKE_API WintunReleaseReceivePacket(void *s, const BYTE *pkt);
BYTE *FAKE_API WintunAllocateSendPacket(void *s, DWORD size);
void FAKE_API WintunSendPacket(void *s, const BYTE *pkt);
BOOL FAKE_API FakeWintunInject(const BYTE *pkt, DWORD len);
BOOL FAKE_API FakeWintunSent(int i, BYTE *out, DWORD *len);
int FAKE_API FakeWintunSentCount(void);
LONG FAKE_API FakeWintunClosed(void);

void *FAKE_API WintunCreateAdapter(const WCHAR *name, const WCHAR *type, const GUID *guid)
{
	InitializeCriticalSection(&fake.lock);
	fake.ready = CreateEventW(NULL, TRUE, FALSE, NULL);
	return &fake;
}

void *FAKE_API WintunOpenAdapter(const WCHAR *name)
{
	return NULL;
}

void FAKE_API WintunCloseAdapter(void *a)
{
	InterlockedIncrement(&fake.adapters_closed);
}

void FAKE_API WintunGetAdapterLUID(void *a, NET_LUID *luid)
{
	for (NET_IFINDEX i = 1; i < 256; i++) {
		if (ConvertInterfaceIndexToLuid(i, luid) == NO_ERROR)
			return;
	}
	luid->Value = 0;
}

void *FAKE_API WintunStartSession(void *a, DWORD capacity)
{
	return &fake;
}

void FAKE_API WintunEndSession(void *s)
{
	InterlockedIncrement(&fake.sessions_ended);
}

HANDLE FAKE_API WintunGetReadWaitEvent(void *s)
{
	return fake.ready;
}

BYTE *FAKE_API WintunReceivePacket(void *s, DWORD *size)
{
	struct fake_pkt *p = NULL;

	EnterCriticalSection(&fake.lock);
	if (fake.rx_head < fake.rx_n)
		p = fake.rx[fake.rx_head++];
	else
		ResetEvent(fake.ready);
	LeaveCriticalSection(&fake.lock);
	if (!p) {
		SetLastError(ERROR_NO_MORE_ITEMS);
		return NULL;
	}
	*size = p->len;
	return p->data;
}

void FAKE_API WintunReleaseReceivePacket(void *s, const BYTE *pkt)
{
	free((BYTE *)pkt - offsetof(struct fake_pkt, data));
}

BYTE *FAKE_API WintunAllocateSendPacket(void *s, DWORD size)
{
	struct fake_pkt *p = malloc(sizeof(*p) + size);

	if (!p) {
		SetLastError(ERROR_BUFFER_OVERFLOW);
		return NULL;
	}
	p->len = size;
	return p->data;
}

void FAKE_API WintunSendPacket(void *s, const BYTE *pkt)
{
	struct fake_pkt *p = (struct fake_pkt *)(pkt - offsetof(struct fake_pkt, data));

	EnterCriticalSection(&fake.lock);
	if (fake.tx_n < FAKE_MAX)
		fake.tx[fake.tx_n++] = p;
	else
		free(p);
	LeaveCriticalSection(&fake.lock);
}

BOOL FAKE_API FakeWintunInject(const BYTE *pkt, DWORD len)
{
	struct fake_pkt *p = malloc(sizeof(*p) + len);
	BOOL ok = FALSE;

	if (!p)
		return FALSE;
	p->len = len;
	memcpy(p->data, pkt, len);
	EnterCriticalSection(&fake.lock);
	if (fake.rx_n < FAKE_MAX) {
		fake.rx[fake.rx_n++] = p;
		SetEvent(fake.ready);
		ok = TRUE;
	}
	LeaveCriticalSection(&fake.lock);
	if (!ok)
		free(p);
	return ok;
}

BOOL FAKE_API FakeWintunSent(int i, BYTE *out, DWORD *len)
{
	BOOL ok = FALSE;

	EnterCriticalSection(&fake.lock);
	if (i < fake.tx_n && fake.tx[i]->len <= *len) {
		memcpy(out, fake.tx[i]->data, fake.tx[i]->len);
		*len = fake.tx[i]->len;
		ok = TRUE;
	}
	LeaveCriticalSection(&fake.lock);
	return ok;
}

int FAKE_API FakeWintunSentCount(void)
{
	int n;

	EnterCriticalSection(&fake.lock);
	n = fake.tx_n;
	LeaveCriticalSection(&fake.lock);
	return n;
}

/* Sessions ended plus adapters closed: 2 once tun_close() has undone everything. */
LONG FAKE_API FakeWintunClosed(void)
{
	return fake.sessions_ended + fake.adapters_closed;
}
