/* Signals as loop completions on Windows: console control events and console resizes. */
#include <winsock2.h>
#include <windows.h>
#include <errno.h>
#include <stdlib.h>
#include "platform/proc.h"
#include "platform/win/err.h"

/*
 * Theory of operation
 *
 * Windows has no signals; a console delivers control events instead, each on
 * a thread the system starts for the handler. They stand for the signals the
 * tools watch: Ctrl-C is SIGINT, Ctrl-Break SIGQUIT (SIGINT when SIGQUIT is
 * not watched), closing the console SIGHUP, logoff and shutdown SIGTERM.
 * A window resize has no event that a program reading its input with
 * ReadFile sees, so a watcher thread compares the console's size four times
 * a second and raises SIGWINCH when it changed.
 *
 * State per watch: the set of signals it watches, the set pending (an
 * atomic bit mask that the handler and the watcher thread OR into), and a
 * manual-reset event that is set while something may be pending. Events:
 *   handler/watcher -> pending |= bit, SetEvent
 *   sigwatch_next   -> loop_poll on the event (the loop waits on it in its
 *                      blocking-thread shim); on completion: ResetEvent,
 *                      take the lowest pending bit, SetEvent again if more
 *                      remain, and run the caller's callback with it; a
 *                      wake-up that found nothing polls again quietly.
 * The handler returns TRUE (handled) only for events that a live watch
 * watches, so the process's other handlers (sys_block_termination) and the
 * default action still apply to the rest.
 */

#define SIGWATCH_RESIZE_MS 250

struct sigwatch {
	HANDLE event;	       /* manual reset: set while bits may be pending */
	HANDLE stop;	       /* ends the resize watcher */
	HANDLE resizer;	       /* the resize watcher thread, or NULL */
	volatile LONG pending; /* bit n: signal n arrived */
	LONG watched;	       /* bit n: signal n is watched */
	int signo;	       /* the last one handed out */
	loop_cb cb;	       /* the caller's callback of the request in flight */
	struct loop_req *req;  /* that request, or NULL */
	struct loop *loop;
	struct sigwatch *next;
};

static SRWLOCK sigwatch_lock = SRWLOCK_INIT;
static struct sigwatch *sigwatch_all;
static bool sigwatch_handler_on;

/* The signal a console event stands for in watch w, or 0 when w does not watch it. */
static int sigwatch_map(const struct sigwatch *w, DWORD type)
{
	int signo;

	switch (type) {
	case CTRL_C_EVENT:
		signo = SIGINT;
		break;
	case CTRL_BREAK_EVENT:
		signo = (w->watched & (1L << SIGQUIT)) ? SIGQUIT : SIGINT;
		break;
	case CTRL_CLOSE_EVENT:
		signo = SIGHUP;
		break;
	default:
		signo = SIGTERM;
		break;
	}
	return (w->watched & (1L << signo)) ? signo : 0;
}

static void sigwatch_raise(struct sigwatch *w, int signo)
{
	InterlockedOr(&w->pending, 1L << signo);
	SetEvent(w->event);
}

/* The console's control handler, on a thread of its own: hands the event to every watch. */
static BOOL WINAPI sigwatch_handler(DWORD type)
{
	bool taken = false;

	AcquireSRWLockShared(&sigwatch_lock);
	for (struct sigwatch *w = sigwatch_all; w; w = w->next) {
		int signo = sigwatch_map(w, type);

		if (signo) {
			sigwatch_raise(w, signo);
			taken = true;
		}
	}
	ReleaseSRWLockShared(&sigwatch_lock);
	return taken;
}

/* The resize watcher: raises SIGWINCH when the console's window size changes. */
static DWORD WINAPI sigwatch_resize_main(void *arg)
{
	struct sigwatch *w = arg;
	uint16_t rows = 0, cols = 0, r, c;

	term_size(0, &rows, &cols);
	while (WaitForSingleObject(w->stop, SIGWATCH_RESIZE_MS) == WAIT_TIMEOUT) {
		if (term_size(0, &r, &c) || (r == rows && c == cols))
			continue;
		rows = r;
		cols = c;
		sigwatch_raise(w, SIGWINCH);
	}
	return 0;
}

/* Fills the watched mask; -EINVAL for SIGKILL, SIGSTOP (19) or a number outside 1..31. */
static int sigwatch_mask(const int *signos, int n, LONG *mask)
{
	*mask = 0;
	if (n <= 0)
		return -EINVAL;
	for (int i = 0; i < n; i++) {
		if (signos[i] <= 0 || signos[i] >= 32 || signos[i] == SIGKILL || signos[i] == 19)
			return -EINVAL;
		*mask |= 1L << signos[i];
	}
	return 0;
}

static int sigwatch_start(struct sigwatch *w)
{
	uint16_t rows, cols;

	w->event = CreateEventW(NULL, TRUE, FALSE, NULL);
	w->stop = CreateEventW(NULL, TRUE, FALSE, NULL);
	if (!w->event || !w->stop)
		return err_win_last();
	/* Resizes only mean something with a console to watch. */
	if ((w->watched & (1L << SIGWINCH)) && !term_size(0, &rows, &cols)) {
		w->resizer = CreateThread(NULL, 64 * 1024, sigwatch_resize_main, w,
					  STACK_SIZE_PARAM_IS_A_RESERVATION, NULL);
		if (!w->resizer)
			return err_win_last();
	}
	AcquireSRWLockExclusive(&sigwatch_lock);
	if (!sigwatch_handler_on)
		sigwatch_handler_on = SetConsoleCtrlHandler(sigwatch_handler, TRUE);
	w->next = sigwatch_all;
	sigwatch_all = w;
	ReleaseSRWLockExclusive(&sigwatch_lock);
	return 0;
}

/*
 * sigwatch_new() - watches signos[0..n) from now on (console events and,
 * for SIGWINCH, resizes).
 * @out: receives the watch, owned by the caller (sigwatch_free()).
 * Return: 0 or a negative errno.
 */
int sigwatch_new(struct sigwatch **out, const int *signos, int n)
{
	struct sigwatch *w = calloc(1, sizeof(*w));
	int ret = w ? sigwatch_mask(signos, n, &w->watched) : -ENOMEM;

	if (!ret)
		ret = sigwatch_start(w);
	if (ret) {
		sigwatch_free(w);
		return ret;
	}
	*out = w;
	return 0;
}

/* Takes the lowest pending signal; 0 when none. Leaves the event set while more remain. */
static int sigwatch_take(struct sigwatch *w)
{
	LONG bits;
	int signo;

	ResetEvent(w->event);
	bits = InterlockedOr(&w->pending, 0);
	if (!bits)
		return 0;
	signo = __builtin_ctzl((unsigned long)bits);
	if (InterlockedAnd(&w->pending, ~(1L << signo)) & ~(1L << signo))
		SetEvent(w->event);
	return signo;
}

/* The watch whose request r is in flight (one request per watch at a time). */
static struct sigwatch *sigwatch_of(const struct loop_req *r)
{
	struct sigwatch *w;

	AcquireSRWLockShared(&sigwatch_lock);
	for (w = sigwatch_all; w && w->req != r; w = w->next)
		;
	ReleaseSRWLockShared(&sigwatch_lock);
	return w;
}

/* The event was set (or the poll failed): hands the caller one signal, or waits again. */
static void sigwatch_poll_cb(struct loop_req *r, int res)
{
	struct sigwatch *w = sigwatch_of(r);
	loop_cb cb = w->cb;

	if (res >= 0) {
		w->signo = sigwatch_take(w);
		if (!w->signo &&
		    !loop_poll(w->loop, r, (pl_fd)w->event, LOOP_POLL_IN, sigwatch_poll_cb))
			return;
		res = w->signo ? w->signo : -EIO;
	}
	w->req = NULL;
	r->cb = cb;
	cb(r, res);
}

/*
 * sigwatch_next() - r completes on loop l with res > 0 (sigwatch_signo()
 * says which) or a negative errno (-ECANCELED after loop_cancel(l, r)).
 * Return: 0 when cb will run, else a negative errno.
 */
int sigwatch_next(struct loop *l, struct sigwatch *w, struct loop_req *r, loop_cb cb)
{
	int ret;

	if (w->req)
		return -EBUSY;
	w->cb = cb;
	w->loop = l;
	w->req = r;
	ret = loop_poll(l, r, (pl_fd)w->event, LOOP_POLL_IN, sigwatch_poll_cb);
	if (ret)
		w->req = NULL;
	return ret;
}

int sigwatch_signo(struct sigwatch *w)
{
	return w->signo;
}

/* Stops watching: the events go to the process's other handlers again. Accepts NULL. */
void sigwatch_free(struct sigwatch *w)
{
	struct sigwatch **pp;

	if (!w)
		return;
	AcquireSRWLockExclusive(&sigwatch_lock);
	for (pp = &sigwatch_all; *pp && *pp != w; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = w->next;
	ReleaseSRWLockExclusive(&sigwatch_lock);
	if (w->resizer) {
		SetEvent(w->stop);
		WaitForSingleObject(w->resizer, INFINITE);
		CloseHandle(w->resizer);
	}
	if (w->stop)
		CloseHandle(w->stop);
	if (w->event)
		CloseHandle(w->event);
	free(w);
}
