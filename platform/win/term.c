/* The local console for the CLI's -t: raw input and VT output, their undo, and the window size. */
#include <winsock2.h>
#include <windows.h>
#include <errno.h>
#include <stdlib.h>
#include "platform/proc.h"
#include "platform/win/err.h"

#ifndef ENABLE_VIRTUAL_TERMINAL_INPUT
#define ENABLE_VIRTUAL_TERMINAL_INPUT 0x0200
#endif
#ifndef ENABLE_VIRTUAL_TERMINAL_PROCESSING
#define ENABLE_VIRTUAL_TERMINAL_PROCESSING 0x0004
#endif
#ifndef DISABLE_NEWLINE_AUTO_RETURN
#define DISABLE_NEWLINE_AUTO_RETURN 0x0008
#endif

/*
 * What term_raw() changed: the input and output modes of the console and its
 * code pages. A Windows console is "raw" when its input has no line editing,
 * no echo and no Ctrl-C processing (the key arrives as byte 3, as from a raw
 * tty) and speaks VT sequences (ENABLE_VIRTUAL_TERMINAL_INPUT), and its
 * output interprets them (ENABLE_VIRTUAL_TERMINAL_PROCESSING); both sides use
 * UTF-8, which is what the remote terminal sends and expects.
 */
struct term_state {
	HANDLE in, out;
	DWORD in_mode, out_mode;
	UINT in_cp, out_cp;
	bool have_out;
	volatile LONG raw;
};

/* The console handle that fd (0, 1 or 2) stands for; NULL when it is not a console. */
static HANDLE term_handle(int fd)
{
	static const DWORD which[3] = {STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE};
	HANDLE h = fd >= 0 && fd < 3 ? GetStdHandle(which[fd]) : NULL;
	DWORD mode;

	return h && h != INVALID_HANDLE_VALUE && GetConsoleMode(h, &mode) ? h : NULL;
}

/*
 * term_raw() - puts the console of fd (0: its input; output goes raw too
 * when stdout is the console) in raw VT mode.
 * @saved: receives the previous modes, owned by the caller (term_free()).
 * Return: 0, or a negative errno (-ENOTTY when fd is not a console).
 */
int term_raw(int fd, struct term_state **saved)
{
	struct term_state *t;
	DWORD in_mode;
	int ret;

	if (!term_handle(fd))
		return -ENOTTY;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->in = term_handle(fd);
	t->out = term_handle(1);
	if (!GetConsoleMode(t->in, &t->in_mode))
		goto fail;
	t->have_out = t->out && GetConsoleMode(t->out, &t->out_mode);
	t->in_cp = GetConsoleCP();
	t->out_cp = GetConsoleOutputCP();
	in_mode = t->in_mode & ~(DWORD)(ENABLE_LINE_INPUT | ENABLE_ECHO_INPUT |
					ENABLE_PROCESSED_INPUT | ENABLE_MOUSE_INPUT);
	if (!SetConsoleMode(t->in, in_mode | ENABLE_VIRTUAL_TERMINAL_INPUT | ENABLE_WINDOW_INPUT))
		goto fail;
	if (t->have_out)
		SetConsoleMode(t->out, t->out_mode | ENABLE_PROCESSED_OUTPUT |
					   ENABLE_VIRTUAL_TERMINAL_PROCESSING |
					   DISABLE_NEWLINE_AUTO_RETURN);
	SetConsoleCP(CP_UTF8);
	SetConsoleOutputCP(CP_UTF8);
	t->raw = 1;
	*saved = t;
	return 0;
fail:
	ret = err_win_last();
	free(t);
	return ret;
}

/*
 * Puts back the modes and code pages term_raw() found; does nothing the
 * second time or for NULL. Safe from a console control handler's thread
 * (the exchange makes sure only one caller restores).
 */
void term_restore(struct term_state *saved)
{
	if (!saved || !InterlockedExchange(&saved->raw, 0))
		return;
	SetConsoleMode(saved->in, saved->in_mode);
	if (saved->have_out)
		SetConsoleMode(saved->out, saved->out_mode);
	SetConsoleCP(saved->in_cp);
	SetConsoleOutputCP(saved->out_cp);
}

/* Restores the console if still raw, then frees saved. Accepts NULL. */
void term_free(struct term_state *saved)
{
	term_restore(saved);
	free(saved);
}

/*
 * The size of the console's visible window (not its scroll-back buffer);
 * fd 0 asks the console that stdout or stderr shows. Returns 0 or -ENOTTY.
 */
int term_size(int fd, uint16_t *rows, uint16_t *cols)
{
	CONSOLE_SCREEN_BUFFER_INFO bi;
	HANDLE h = fd ? term_handle(fd) : term_handle(1);

	if (!h && !fd)
		h = term_handle(2);
	if (!h || !GetConsoleScreenBufferInfo(h, &bi))
		return -ENOTTY;
	*rows = (uint16_t)(bi.srWindow.Bottom - bi.srWindow.Top + 1);
	*cols = (uint16_t)(bi.srWindow.Right - bi.srWindow.Left + 1);
	return 0;
}
