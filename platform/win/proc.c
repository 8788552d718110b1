/* Child processes on Windows: CreateProcess with redirected pipes, exit watch, termination. */
#include <windows.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include "core/why.h"
#include "platform/proc.h"
#include "platform/sys.h"
#include "platform/win/err.h"
#include "platform/win/proc_internal.h"

/*
 * What is here: spawning with pipes for stdin, stdout and stderr (or NUL),
 * the environment laid over the agent's own, the exit watched on a loop
 * (the process handle is p->pidfd; loop_poll waits for it on a shim
 * thread), the exit code, and termination. Our ends of the pipes are
 * overlapped named pipes (served by the IOCP loop); the child's ends are
 * synchronous, as programs expect, and are the only handles it inherits
 * (PROC_THREAD_ATTRIBUTE_HANDLE_LIST).
 *
 * A pty is a pseudo console (ConPTY, Windows 10 1809 and later, looked up
 * at run time): two more of the same pipes carry its input and output (p->in
 * and p->out; VT sequences both ways), the child is attached to it with
 * PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE and inherits nothing, and p->pty holds
 * it. Its output pipe reaches end of file only once the pseudo console is
 * closed, so proc_reap() closes it when the child has exited; closing may
 * wait for its last output to be read, so it runs on a thread of its own
 * while the loop goes on reading.
 *
 * Not yet: running as another user, killing the whole process tree (a job
 * object), and signals beyond termination: a program terminated by
 * proc_signal() exits with 128 + the signal number and is reported as
 * PROC_EXITED, since Windows has no signals to report.
 */

#define PROC_PIPE_BUFFER (64 * 1024)

/* A new UTF-16 copy of UTF-8 s (the caller frees it), or NULL. */
static wchar_t *proc_wide(const char *s)
{
	int n = MultiByteToWideChar(CP_UTF8, 0, s, -1, NULL, 0);
	wchar_t *w;

	if (n <= 0 || !(w = malloc((size_t)n * sizeof(*w))))
		return NULL;
	MultiByteToWideChar(CP_UTF8, 0, s, -1, w, n);
	return w;
}

/*
 * Appends arg to the command line at *pos, quoted so that CommandLineToArgvW
 * gives it back; out has room for 2 * wcslen(arg) + 3 more characters.
 */
void proc_quote(const wchar_t *arg, wchar_t *out, size_t *pos)
{
	size_t k = *pos;

	if (*arg && !wcspbrk(arg, L" \t\n\v\"")) {
		for (const wchar_t *c = arg; *c; c++)
			out[k++] = *c;
		*pos = k;
		return;
	}
	out[k++] = L'"';
	for (const wchar_t *c = arg;; c++) {
		size_t slashes = 0;

		while (*c == L'\\') {
			slashes++;
			c++;
		}
		/* Backslashes double before a quote (escaped too) and before the closing quote. */
		if (!*c || *c == L'"')
			slashes = slashes * 2 + (*c == L'"');
		while (slashes--)
			out[k++] = L'\\';
		if (!*c)
			break;
		out[k++] = *c;
	}
	out[k++] = L'"';
	*pos = k;
}

/* The command line of argv, a new string (the caller frees it), or NULL. */
static wchar_t *proc_command_line(const char *const *argv)
{
	size_t cap = 1, pos = 0;
	wchar_t *line;

	for (int i = 0; argv[i]; i++)
		cap += strlen(argv[i]) * 2 + 3;
	line = malloc(cap * sizeof(*line));
	if (!line)
		return NULL;
	for (int i = 0; argv[i]; i++) {
		wchar_t *w = proc_wide(argv[i]);

		if (!w) {
			free(line);
			return NULL;
		}
		if (i)
			line[pos++] = L' ';
		proc_quote(w, line, &pos);
		free(w);
	}
	line[pos] = L'\0';
	return line;
}

/* True when environment entry e ("KEY=VALUE") sets the same variable as any of over[]. */
static bool proc_env_overridden(const wchar_t *e, wchar_t *const *over, int n)
{
	const wchar_t *eq = wcschr(e + 1, L'='); /* "=C:=C:\\" keeps its leading '=' */
	size_t klen = eq ? (size_t)(eq - e) : wcslen(e);

	for (int i = 0; i < n; i++) {
		if (!_wcsnicmp(e, over[i], klen) && over[i][klen] == L'=')
			return true;
	}
	return false;
}

/* The agent's environment with spec's entries laid over it, as a block; NULL: inherit as is. */
static wchar_t *proc_env_block(const char *const *env, int *err)
{
	wchar_t *base = NULL, *block = NULL, *over[256];
	size_t len = 1, pos = 0;
	int n = 0;

	*err = 0;
	if (!env || !env[0])
		return NULL;
	while (env[n] && n < 256 && (over[n] = proc_wide(env[n])))
		n++;
	if (env[n] && n < 256) {
		*err = -ENOMEM;
		goto out;
	}
	if (env[n]) {
		*err = -E2BIG;
		goto out;
	}
	base = GetEnvironmentStringsW();
	for (const wchar_t *e = base; e && *e; e += wcslen(e) + 1)
		len += wcslen(e) + 1;
	for (int i = 0; i < n; i++)
		len += wcslen(over[i]) + 1;
	block = malloc(len * sizeof(*block));
	if (!block) {
		*err = -ENOMEM;
		goto out;
	}
	for (const wchar_t *e = base; e && *e; e += wcslen(e) + 1) {
		if (proc_env_overridden(e, over, n))
			continue;
		wcscpy(block + pos, e);
		pos += wcslen(e) + 1;
	}
	for (int i = 0; i < n; i++) {
		wcscpy(block + pos, over[i]);
		pos += wcslen(over[i]) + 1;
	}
	block[pos] = L'\0';
out:
	if (base)
		FreeEnvironmentStringsW(base);
	while (n--)
		free(over[n]);
	return block;
}

/*
 * proc_pipe() - a pipe between us and the child: our end overlapped (the
 * loop's), the child's synchronous and inheritable. child_reads: stdin.
 */
static int proc_pipe(HANDLE *ours, HANDLE *theirs, bool child_reads)
{
	static volatile LONG serial;
	SECURITY_ATTRIBUTES inherit = {.nLength = sizeof(inherit), .bInheritHandle = TRUE};
	wchar_t name[80];
	int r;

	swprintf(name, 80, L"\\\\.\\pipe\\vmbusify-proc-%lu-%ld", GetCurrentProcessId(),
		 InterlockedIncrement(&serial));
	*ours = CreateNamedPipeW(name,
				 (child_reads ? PIPE_ACCESS_OUTBOUND : PIPE_ACCESS_INBOUND) |
				     FILE_FLAG_OVERLAPPED | FILE_FLAG_FIRST_PIPE_INSTANCE,
				 PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT |
				     PIPE_REJECT_REMOTE_CLIENTS,
				 1, PROC_PIPE_BUFFER, PROC_PIPE_BUFFER, 0, NULL);
	if (*ours == INVALID_HANDLE_VALUE)
		return err_win_last();
	*theirs =
	    CreateFileW(name, (child_reads ? GENERIC_READ : GENERIC_WRITE) | FILE_WRITE_ATTRIBUTES,
			0, &inherit, OPEN_EXISTING, 0, NULL);
	if (*theirs != INVALID_HANDLE_VALUE)
		return 0;
	r = err_win_last();
	CloseHandle(*ours);
	*ours = INVALID_HANDLE_VALUE;
	return r;
}

/* The NUL device, inheritable, for a standard handle the child gets nothing on. */
static int proc_null(HANDLE *theirs, bool child_reads)
{
	SECURITY_ATTRIBUTES inherit = {.nLength = sizeof(inherit), .bInheritHandle = TRUE};

	*theirs = CreateFileW(L"NUL", child_reads ? GENERIC_READ : GENERIC_WRITE,
			      FILE_SHARE_READ | FILE_SHARE_WRITE, &inherit, OPEN_EXISTING, 0, NULL);
	return *theirs == INVALID_HANDLE_VALUE ? err_win_last() : 0;
}

/* The three standard handles: theirs[] for the child, ours[] for p (INVALID when NUL). */
static int proc_stdio(const struct proc_spec *spec, HANDLE ours[3], HANDLE theirs[3])
{
	int r = 0;

	for (int i = 0; i < 3 && !r; i++) {
		bool child_reads = i == 0;

		if (spec->detach || (i == 0 && spec->stdin_null))
			r = proc_null(&theirs[i], child_reads);
		else
			r = proc_pipe(&ours[i], &theirs[i], child_reads);
	}
	return r;
}

/* Starts the program with only theirs[] inherited; fills *pi. Returns 0 or a negative errno. */
static int proc_create(wchar_t *line, wchar_t *envb, const wchar_t *cwd, bool detach,
		       HANDLE theirs[3], PROCESS_INFORMATION *pi)
{
	STARTUPINFOEXW si = {.StartupInfo.cb = sizeof(si)};
	SIZE_T size = 0;
	DWORD flags =
	    CREATE_UNICODE_ENVIRONMENT | CREATE_NEW_PROCESS_GROUP | (detach ? DETACHED_PROCESS : 0);
	BOOL ok;
	int r = 0;

	si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
	si.StartupInfo.hStdInput = theirs[0];
	si.StartupInfo.hStdOutput = theirs[1];
	si.StartupInfo.hStdError = theirs[2];
	InitializeProcThreadAttributeList(NULL, 1, 0, &size);
	si.lpAttributeList = malloc(size);
	if (si.lpAttributeList &&
	    InitializeProcThreadAttributeList(si.lpAttributeList, 1, 0, &size) &&
	    UpdateProcThreadAttribute(si.lpAttributeList, 0, PROC_THREAD_ATTRIBUTE_HANDLE_LIST,
				      theirs, 3 * sizeof(HANDLE), NULL, NULL))
		flags |= EXTENDED_STARTUPINFO_PRESENT;
	ok =
	    CreateProcessW(NULL, line, NULL, NULL, TRUE, flags, envb, cwd, (STARTUPINFOW *)&si, pi);
	if (!ok)
		r = err_win_last();
	if (si.lpAttributeList && (flags & EXTENDED_STARTUPINFO_PRESENT))
		DeleteProcThreadAttributeList(si.lpAttributeList);
	free(si.lpAttributeList);
	return r;
}

/* ---- ConPTY ---- */

/* mingw-w64 declares these only for newer NTDDI_VERSION values; the values are the SDK's. */
typedef void *proc_hpcon;
#ifndef PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE
#define PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE 0x00020016
#endif

typedef HRESULT(WINAPI *proc_pc_create_fn)(COORD, HANDLE, HANDLE, DWORD, proc_hpcon *);
typedef HRESULT(WINAPI *proc_pc_resize_fn)(proc_hpcon, COORD);
typedef VOID(WINAPI *proc_pc_close_fn)(proc_hpcon);

static struct {
	INIT_ONCE once;
	proc_pc_create_fn create;
	proc_pc_resize_fn resize;
	proc_pc_close_fn close;
} proc_pc = {.once = INIT_ONCE_STATIC_INIT};

static BOOL CALLBACK proc_pc_load(INIT_ONCE *once, void *arg, void **ctx)
{
	HMODULE k = GetModuleHandleW(L"kernel32.dll");

	if (k) {
		proc_pc.create =
		    (proc_pc_create_fn)(void *)GetProcAddress(k, "CreatePseudoConsole");
		proc_pc.resize =
		    (proc_pc_resize_fn)(void *)GetProcAddress(k, "ResizePseudoConsole");
		proc_pc.close = (proc_pc_close_fn)(void *)GetProcAddress(k, "ClosePseudoConsole");
	}
	return TRUE;
}

/* True when this Windows has ConPTY. */
static bool proc_pc_available(void)
{
	InitOnceExecuteOnce(&proc_pc.once, proc_pc_load, NULL, NULL);
	return proc_pc.create && proc_pc.resize && proc_pc.close;
}

static COORD proc_pc_size(uint16_t rows, uint16_t cols)
{
	COORD c = {.X = (SHORT)(cols && cols < 0x7fff ? cols : 80),
		   .Y = (SHORT)(rows && rows < 0x7fff ? rows : 24)};

	return c;
}

static DWORD WINAPI proc_pc_close_main(void *hpc)
{
	proc_pc.close(hpc);
	return 0;
}

/* Closes p's pseudo console on a thread of its own (see the top of the file). */
static void proc_pc_close_async(struct proc *p)
{
	proc_hpcon hpc = (proc_hpcon)p->pty;
	HANDLE t;

	if (!hpc)
		return;
	p->pty = 0;
	t = CreateThread(NULL, 64 * 1024, proc_pc_close_main, hpc,
			 STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
	if (t)
		CloseHandle(t);
	else
		proc_pc.close(hpc);
}

/*
 * proc_pc_open() - a pseudo console of rows x cols and the pipes to it:
 * ours[0] writes its input, ours[1] reads its output (both overlapped).
 * Return: 0 with *hpc, or a negative errno.
 */
static int proc_pc_open(uint16_t rows, uint16_t cols, HANDLE ours[2], proc_hpcon *hpc)
{
	HANDLE theirs[2] = {INVALID_HANDLE_VALUE, INVALID_HANDLE_VALUE};
	HRESULT hr;
	int r;

	r = proc_pipe(&ours[0], &theirs[0], true);
	if (!r)
		r = proc_pipe(&ours[1], &theirs[1], false);
	if (!r) {
		hr = proc_pc.create(proc_pc_size(rows, cols), theirs[0], theirs[1], 0, hpc);
		r = FAILED(hr) ? err_from_win((unsigned long)HRESULT_CODE(hr)) : 0;
	}
	/* The pseudo console holds its own handles to its ends. */
	for (int i = 0; i < 2; i++)
		if (theirs[i] != INVALID_HANDLE_VALUE)
			CloseHandle(theirs[i]);
	return r;
}

/* Starts the program attached to pseudo console hpc, inheriting no handle. */
static int proc_create_pc(wchar_t *line, wchar_t *envb, const wchar_t *cwd, proc_hpcon hpc,
			  PROCESS_INFORMATION *pi)
{
	STARTUPINFOEXW si = {.StartupInfo.cb = sizeof(si)};
	SIZE_T size = 0;
	int r = 0;

	/*
	 * Standard handles left NULL on purpose: without STARTF_USESTDHANDLES
	 * the child would get the agent's own (a service's log, a file) instead
	 * of the pseudo console's; NULL ones are replaced by the console's.
	 */
	si.StartupInfo.dwFlags = STARTF_USESTDHANDLES;
	InitializeProcThreadAttributeList(NULL, 1, 0, &size);
	si.lpAttributeList = malloc(size);
	if (!si.lpAttributeList)
		return -ENOMEM;
	if (!InitializeProcThreadAttributeList(si.lpAttributeList, 1, 0, &size)) {
		free(si.lpAttributeList);
		return err_win_last();
	}
	if (!UpdateProcThreadAttribute(si.lpAttributeList, 0, PROC_THREAD_ATTRIBUTE_PSEUDOCONSOLE,
				       hpc, sizeof(hpc), NULL, NULL) ||
	    !CreateProcessW(NULL, line, NULL, NULL, FALSE,
			    CREATE_UNICODE_ENVIRONMENT | EXTENDED_STARTUPINFO_PRESENT, envb, cwd,
			    (STARTUPINFOW *)&si, pi))
		r = err_win_last();
	DeleteProcThreadAttributeList(si.lpAttributeList);
	free(si.lpAttributeList);
	return r;
}

/* proc_spawn() with a pty: the program on a new pseudo console. */
static int proc_spawn_pc(const struct proc_spec *spec, wchar_t *line, wchar_t *envb,
			 const wchar_t *cwd, struct proc *p, char *why, size_t whylen)
{
	HANDLE ours[2] = {INVALID_HANDLE_VALUE, INVALID_HANDLE_VALUE};
	PROCESS_INFORMATION pi = {0};
	proc_hpcon hpc = NULL;
	int r;

	if (!proc_pc_available())
		return why_set(why, whylen, -EOPNOTSUPP,
			       "a pty needs ConPTY (Windows 10 1809 or later)");
	r = proc_pc_open(spec->rows, spec->cols, ours, &hpc);
	if (r < 0) {
		why_set(why, whylen, r, "a pseudo console for '%s': %s", spec->argv[0],
			sys_strerror(r));
		goto fail;
	}
	r = proc_create_pc(line, envb, cwd, hpc, &pi);
	if (r < 0) {
		p->exec_failed = r == -ENOENT || r == -EACCES || r == -EINVAL;
		why_set(why, whylen, r, "cannot run '%s': %s", spec->argv[0],
			r == -ENOENT ? "no such program" : sys_strerror(r));
		goto fail;
	}
	CloseHandle(pi.hThread);
	p->pid = (int)pi.dwProcessId;
	p->pidfd = (pl_fd)pi.hProcess;
	p->unowned = false;
	p->tty = true;
	p->pty = (intptr_t)hpc;
	p->in = (pl_fd)ours[0];
	p->out = (pl_fd)ours[1];
	return 0;
fail:
	for (int i = 0; i < 2; i++)
		if (ours[i] != INVALID_HANDLE_VALUE)
			CloseHandle(ours[i]);
	if (hpc)
		proc_pc.close(hpc); /* nothing was attached: it returns at once */
	return r;
}

/* The working directory: spec's, else the user's profile, else the agent's own. */
static wchar_t *proc_cwd(const struct proc_spec *spec)
{
	wchar_t *w;
	DWORD n;

	if (spec->cwd)
		return proc_wide(spec->cwd);
	n = GetEnvironmentVariableW(L"USERPROFILE", NULL, 0);
	if (!n || !(w = malloc(n * sizeof(*w))))
		return NULL;
	if (GetEnvironmentVariableW(L"USERPROFILE", w, n) + 1 != n) {
		free(w);
		return NULL;
	}
	return w;
}

/*
 * proc_spawn() - see platform/proc.h; spec->tty is a pseudo console, and
 * spec->detach with it is refused. Not supported yet: spec->user
 * (-EOPNOTSUPP with a reason).
 */
int proc_spawn(const struct proc_spec *spec, struct proc *p, char *why, size_t whylen)
{
	HANDLE ours[3] = {INVALID_HANDLE_VALUE, INVALID_HANDLE_VALUE, INVALID_HANDLE_VALUE};
	HANDLE theirs[3] = {INVALID_HANDLE_VALUE, INVALID_HANDLE_VALUE, INVALID_HANDLE_VALUE};
	wchar_t *line = NULL, *envb = NULL, *cwd = NULL;
	PROCESS_INFORMATION pi = {0};
	int r;

	memset(p, 0, sizeof(*p));
	p->in = p->out = p->err = p->pidfd = -1;
	p->unowned = true;
	if (!spec->argv || !spec->argv[0])
		return why_set(why, whylen, -EINVAL, "no program to run");
	if (spec->tty && spec->detach)
		return why_set(why, whylen, -EINVAL, "a detached program gets no pty");
	if (spec->user)
		return why_set(why, whylen, -EOPNOTSUPP,
			       "running as another user is not supported");
	line = proc_command_line(spec->argv);
	envb = proc_env_block(spec->env, &r);
	cwd = proc_cwd(spec);
	if (!line || r < 0) {
		r = r < 0 ? r : -ENOMEM;
		why_set(why, whylen, r, "cannot run '%s': %s", spec->argv[0], sys_strerror(r));
		goto out;
	}
	if (spec->tty) {
		r = proc_spawn_pc(spec, line, envb, cwd, p, why, whylen);
		goto out;
	}
	r = proc_stdio(spec, ours, theirs);
	if (r < 0) {
		why_set(why, whylen, r, "pipes for '%s': %s", spec->argv[0], sys_strerror(r));
		goto out;
	}
	r = proc_create(line, envb, cwd, spec->detach, theirs, &pi);
	if (r < 0) {
		p->exec_failed = r == -ENOENT || r == -EACCES || r == -EINVAL;
		why_set(why, whylen, r, "cannot run '%s': %s", spec->argv[0],
			r == -ENOENT ? "no such program" : sys_strerror(r));
		goto out;
	}
	CloseHandle(pi.hThread);
	p->pid = (int)pi.dwProcessId;
	if (spec->detach) {
		CloseHandle(pi.hProcess);
	} else {
		p->pidfd = (pl_fd)pi.hProcess;
		p->unowned = false;
	}
	p->in = ours[0] == INVALID_HANDLE_VALUE ? -1 : (pl_fd)ours[0];
	p->out = ours[1] == INVALID_HANDLE_VALUE ? -1 : (pl_fd)ours[1];
	p->err = ours[2] == INVALID_HANDLE_VALUE ? -1 : (pl_fd)ours[2];
	ours[0] = ours[1] = ours[2] = INVALID_HANDLE_VALUE;
out:
	for (int i = 0; i < 3; i++) {
		if (ours[i] != INVALID_HANDLE_VALUE)
			CloseHandle(ours[i]);
		if (theirs[i] != INVALID_HANDLE_VALUE)
			CloseHandle(theirs[i]);
	}
	free(line);
	free(envb);
	free(cwd);
	return r;
}

/* Completes r (res > 0) once p has exited: a shim thread waits on the process handle. */
int proc_watch(struct loop *l, struct loop_req *r, struct proc *p, loop_cb cb)
{
	if (p->pidfd == -1)
		return -ECHILD;
	return loop_poll(l, r, p->pidfd, LOOP_POLL_IN, cb);
}

int proc_reap(struct proc *p, struct proc_status *st)
{
	DWORD code;

	if (p->unowned || p->pidfd == -1)
		return -ECHILD;
	if (WaitForSingleObject((HANDLE)p->pidfd, 0) == WAIT_TIMEOUT)
		return -EAGAIN;
	if (!GetExitCodeProcess((HANDLE)p->pidfd, &code))
		return err_win_last();
	st->kind = PROC_EXITED;
	st->code = (int)code;
	st->core = false;
	CloseHandle((HANDLE)p->pidfd);
	p->pidfd = -1;
	p->unowned = true;
	/* Its output reaches end of file once the pseudo console is gone. */
	proc_pc_close_async(p);
	return 0;
}

/*
 * proc_signal() - the terminating signals (HUP, INT, QUIT, KILL, TERM) end
 * the program with exit code 128 + signo; others are not supported.
 */
int proc_signal(struct proc *p, int signo)
{
	if (p->unowned || p->pidfd == -1)
		return 0;
	switch (signo) {
	case 1:
	case 2:
	case 3:
	case 9:
	case 15:
		if (!TerminateProcess((HANDLE)p->pidfd, 128u + (unsigned)signo) &&
		    WaitForSingleObject((HANDLE)p->pidfd, 0) != WAIT_OBJECT_0)
			return err_win_last();
		return 0;
	default:
		return -EOPNOTSUPP;
	}
}

int proc_resize(struct proc *p, uint16_t rows, uint16_t cols)
{
	HRESULT hr;

	if (!p->pty)
		return p->tty ? 0 : -ENOTTY; /* a pty already closed: its program is gone */
	hr = proc_pc.resize((proc_hpcon)p->pty, proc_pc_size(rows, cols));
	if (hr == E_NOTIMPL)
		return -ENOSYS; /* Wine's pseudo console cannot be resized */
	return FAILED(hr) ? err_from_win((unsigned long)HRESULT_CODE(hr)) : 0;
}

void proc_close(struct proc *p)
{
	pl_fd *fds[] = {&p->in, &p->out, &p->err, &p->pidfd};

	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		if (*fds[i] != -1)
			CloseHandle((HANDLE)*fds[i]);
		*fds[i] = -1;
	}
	/* After our ends: a pseudo console with no reader left does not wait to be read. */
	proc_pc_close_async(p);
}
