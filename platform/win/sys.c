/* Small facts about the system, on Windows: CPUs, error texts, console signals, files, privileges.
 */
#include <winsock2.h>
#include <windows.h>
#include <errno.h>
#include <io.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "platform/sys.h"
#include "platform/win/err.h"
#include "platform/win/sys_internal.h"

static INIT_ONCE sys_wsa_once = INIT_ONCE_STATIC_INIT;
static int sys_wsa_result;

static BOOL CALLBACK sys_wsa_init(INIT_ONCE *once, void *arg, void **ctx)
{
	WSADATA d;
	int e = WSAStartup(MAKEWORD(2, 2), &d);

	sys_wsa_result = e ? err_from_win((unsigned long)e) : 0;
	return TRUE;
}

/* Starts Winsock once for the process; it stays up until the process exits. */
int sys_wsa_start(void)
{
	InitOnceExecuteOnce(&sys_wsa_once, sys_wsa_init, NULL, NULL);
	return sys_wsa_result;
}

int sys_ncpu(void)
{
	DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);

	return n ? (int)n : 1;
}

/* Windows has no SIGPIPE: a write to a closed socket or pipe fails with an error. */
void sys_ignore_sigpipe(void)
{
}

/* The C runtime's text where it has one; its strerror() stops at EILSEQ (42). */
const char *sys_strerror(int neg_errno)
{
	int e = neg_errno < 0 ? -neg_errno : neg_errno;
	const char *t = err_posix_text(e);

	return t ? t : strerror(e);
}

/*
 * Termination: console control events (Ctrl-C, Ctrl-Break, closing the
 * console, logoff, shutdown) stand for INT and TERM. The handler runs on a
 * thread of its own; it records the event and wakes sys_wait_termination().
 */
static HANDLE sys_term_event;
static volatile LONG sys_term_signo;

static BOOL WINAPI sys_console_handler(DWORD type)
{
	LONG signo = type == CTRL_C_EVENT ? SIGINT : SIGTERM;

	InterlockedCompareExchange(&sys_term_signo, signo, 0);
	SetEvent(sys_term_event);
	return TRUE;
}

void sys_block_termination(void)
{
	if (sys_term_event)
		return;
	sys_term_event = CreateEventW(NULL, TRUE, FALSE, NULL);
	SetConsoleCtrlHandler(sys_console_handler, TRUE);
}

int sys_wait_termination(void)
{
	sys_block_termination();
	WaitForSingleObject(sys_term_event, INFINITE);
	return (int)sys_term_signo;
}

/* Windows has no descriptor limit to raise: handles are bounded by memory (2^24 per process). */
long sys_raise_nofile(void)
{
	return 1L << 24;
}

/* Nothing to put back: sys_raise_nofile() changed nothing. */
void sys_restore_nofile(void)
{
}

void sys_sleep_ms(unsigned ms)
{
	Sleep(ms);
}

/*
 * sys_term_raise() - what a console event does, for other sources of a stop
 * (the service control handler): wakes sys_wait_termination() with signo.
 */
void sys_term_raise(int signo)
{
	sys_block_termination();
	InterlockedCompareExchange(&sys_term_signo, signo, 0);
	SetEvent(sys_term_event);
}

/* A control socket file has no meaning here: the named pipe carries its own DACL. */
int sys_restrict_socket(const char *path)
{
	return -EOPNOTSUPP;
}

int sys_mkdir_p(const char *path)
{
	char buf[MAX_PATH];
	size_t n = strlen(path);

	if (n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (size_t i = 1; i <= n; i++) {
		char c = buf[i];

		if (c != '/' && c != '\\' && c != '\0')
			continue;
		if (i == 2 && buf[1] == ':')
			continue; /* "C:\" */
		buf[i] = '\0';
		if (!CreateDirectoryA(buf, NULL) && GetLastError() != ERROR_ALREADY_EXISTS)
			return err_win_last();
		buf[i] = c;
	}
	return 0;
}

/* Reads at most max bytes of path into a new NUL-terminated buffer (the caller frees it). */
int sys_read_file(const char *path, size_t max, char **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;

	if (!f)
		return -errno;
	buf = malloc(max + 1);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	n = fread(buf, 1, max, f);
	if (ferror(f)) {
		fclose(f);
		free(buf);
		return -EIO;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/*
 * A temporary beside path, written and flushed, then moved over it with
 * MOVEFILE_WRITE_THROUGH (ReplaceFile would keep the old file's ACL, but
 * fails when path does not exist yet). The mode has no Windows meaning: the
 * file takes its directory's inherited ACL.
 */
int sys_write_file_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
	char tmp[MAX_PATH];
	HANDLE h;
	DWORD done;
	int ret = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	h = CreateFileA(tmp, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
	if (h == INVALID_HANDLE_VALUE)
		return err_win_last();
	if (len > 0xffffffffu)
		ret = -EFBIG;
	else if (!WriteFile(h, data, (DWORD)len, &done, NULL) || done != len ||
		 !FlushFileBuffers(h))
		ret = err_win_last();
	CloseHandle(h);
	if (!ret && !MoveFileExA(tmp, path, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH))
		ret = err_win_last();
	if (ret)
		DeleteFileA(tmp);
	return ret;
}

/* The Windows event log is not wired up yet: log lines stay on stderr. */
void sys_log_to_syslog(const char *ident)
{
}

int sys_self_dir(char *buf, size_t len)
{
	DWORD n = GetModuleFileNameA(NULL, buf, (DWORD)len);
	char *slash;

	if (!n || n >= len)
		return n ? -ENAMETOOLONG : err_win_last();
	slash = strrchr(buf, '\\');
	if (!slash)
		return -ENOENT;
	*slash = '\0';
	return 0;
}

int sys_exists(const char *path)
{
	return GetFileAttributesA(path) != INVALID_FILE_ATTRIBUTES;
}

/* Windows cannot replace a process image; the lab front (its only user) is Linux-only. */
int sys_exec(const char *path, char *const argv[], const char *bin_dir)
{
	return -ENOSYS;
}

/* A console, not merely a character device (NUL is one too). */
int sys_isatty(int fd)
{
	static const DWORD which[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
	HANDLE h = fd >= 0 && fd < 3 ? GetStdHandle(which[fd]) : (HANDLE)_get_osfhandle(fd);
	DWORD mode;

	return h && h != INVALID_HANDLE_VALUE && GetConsoleMode(h, &mode);
}

/*
 * Windows hands out no small descriptor numbers that a socket could take, but
 * a process may start without standard handles (a service, a GUI parent):
 * each missing one becomes the NUL device, so that reads see end of file and
 * writes go nowhere, as with /dev/null on Linux.
 */
void sys_std_fds_open(void)
{
	static const DWORD which[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};

	for (int i = 0; i < 3; i++) {
		HANDLE h = GetStdHandle(which[i]);

		if (h && h != INVALID_HANDLE_VALUE)
			continue;
		h = CreateFileW(L"NUL", i ? GENERIC_WRITE : GENERIC_READ,
				FILE_SHARE_READ | FILE_SHARE_WRITE, NULL, OPEN_EXISTING, 0, NULL);
		if (h != INVALID_HANDLE_VALUE)
			SetStdHandle(which[i], h);
	}
}

/* True when the process token is in the Administrators group (elevated). */
int sys_is_admin(void)
{
	SID_IDENTIFIER_AUTHORITY nt = SECURITY_NT_AUTHORITY;
	PSID admins = NULL;
	BOOL member = FALSE;

	if (!AllocateAndInitializeSid(&nt, 2, SECURITY_BUILTIN_DOMAIN_RID, DOMAIN_ALIAS_RID_ADMINS,
				      0, 0, 0, 0, 0, 0, &admins))
		return 0;
	if (!CheckTokenMembership(NULL, admins, &member))
		member = FALSE;
	FreeSid(admins);
	return member != 0;
}

/* The daemon's control channel on Windows is a named pipe (DACL: Administrators, Hyper-V
 * Administrators). */
const char *sys_control_place(int i)
{
	return i == 0 ? "npipe://vmbusify-control" : NULL;
}

/*
 * A drive and a separator (C:\data), or rooted on the current drive (\data,
 * /data, which a service resolves on the system drive), or UNC and device
 * paths (\\server\share, \\?\C:\x): none depends on the current directory.
 * "C:data" does, and is not absolute.
 */
int sys_path_is_absolute(const char *path)
{
	bool drive = ((path[0] >= 'A' && path[0] <= 'Z') || (path[0] >= 'a' && path[0] <= 'z')) &&
		     path[1] == ':';

	if (drive)
		return path[2] == '\\' || path[2] == '/';
	return path[0] == '\\' || path[0] == '/';
}

/* A drive letter, a UNC or device path, or a backslash before the first ':'. */
int sys_path_is_local_form(const char *arg)
{
	const char *colon = strchr(arg, ':'), *bs = strchr(arg, '\\');

	if (((arg[0] >= 'A' && arg[0] <= 'Z') || (arg[0] >= 'a' && arg[0] <= 'z')) && arg[1] == ':')
		return 1;
	if (arg[0] == '\\' && arg[1] == '\\')
		return 1;
	return bs && colon && bs < colon;
}
