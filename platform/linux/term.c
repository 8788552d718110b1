/* The local terminal for the CLI's -t: raw mode and its undo, and the window size. */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <termios.h>
#include "platform/proc.h"

/* What term_raw() changed, so that term_restore() can put it back. */
struct term_state {
	int fd;
	volatile sig_atomic_t raw; /* 1 while fd is in raw mode; a signal handler may restore */
	struct termios saved;
};

/*
 * term_raw() - puts terminal fd in raw mode (cfmakeraw: no echo, no line
 * editing, no signals from keys, no output processing), once pending output
 * has drained.
 * @saved: receives the previous mode, owned by the caller (term_free()).
 * Return: 0, or a negative errno (-ENOTTY when fd is not a terminal).
 */
int term_raw(int fd, struct term_state **saved)
{
	struct term_state *t = calloc(1, sizeof(*t));
	struct termios raw;
	int ret;

	if (!t)
		return -ENOMEM;
	t->fd = fd;
	if (tcgetattr(fd, &t->saved) < 0)
		goto fail;
	raw = t->saved;
	cfmakeraw(&raw);
	if (tcsetattr(fd, TCSADRAIN, &raw) < 0)
		goto fail;
	t->raw = 1;
	*saved = t;
	return 0;
fail:
	ret = -errno;
	free(t);
	return ret;
}

/*
 * Puts back the mode term_raw() found; does nothing the second time or for
 * NULL. Async-signal-safe (tcsetattr is), so an exit path in a handler may call it.
 */
void term_restore(struct term_state *saved)
{
	if (!saved || !saved->raw)
		return;
	while (tcsetattr(saved->fd, TCSADRAIN, &saved->saved) < 0 && errno == EINTR)
		;
	saved->raw = 0;
}

/* Restores the terminal if still raw, then frees saved. Accepts NULL. */
void term_free(struct term_state *saved)
{
	term_restore(saved);
	free(saved);
}

/* The window size of terminal fd; returns 0 or a negative errno (-ENOTTY). */
int term_size(int fd, uint16_t *rows, uint16_t *cols)
{
	struct winsize ws;

	if (ioctl(fd, TIOCGWINSZ, &ws) < 0)
		return -errno;
	*rows = ws.ws_row;
	*cols = ws.ws_col;
	return 0;
}
