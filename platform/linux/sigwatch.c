/* Signals as loop completions: a signalfd read through the loop. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include "platform/proc.h"

struct sigwatch {
	int fd;			    /* the signalfd: non-blocking, close-on-exec */
	struct signalfd_siginfo si; /* filled by the read in flight */
};

/* Fills set with signos[0..n); returns 0 or -EINVAL (a bad number, SIGKILL or SIGSTOP). */
static int sigwatch_set(sigset_t *set, const int *signos, int n)
{
	sigemptyset(set);
	if (n <= 0)
		return -EINVAL;
	for (int i = 0; i < n; i++)
		if (signos[i] == SIGKILL || signos[i] == SIGSTOP || sigaddset(set, signos[i]) < 0)
			return -EINVAL;
	return 0;
}

/*
 * sigwatch_new() - blocks signos[0..n) in the calling thread and opens a
 * signalfd for them, so they arrive only as sigwatch_next() completions.
 * @out: receives the watch, owned by the caller (sigwatch_free()).
 * Return: 0 or a negative errno; on failure the mask is as it was.
 */
int sigwatch_new(struct sigwatch **out, const int *signos, int n)
{
	struct sigwatch *w;
	sigset_t set, old;
	int ret;

	ret = sigwatch_set(&set, signos, n);
	if (ret < 0)
		return ret;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	ret = -pthread_sigmask(SIG_BLOCK, &set, &old);
	if (ret)
		goto fail;
	w->fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (w->fd < 0) {
		ret = -errno;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		goto fail;
	}
	*out = w;
	return 0;
fail:
	free(w);
	return ret;
}

/*
 * Reads the next signal into w through loop l: r completes with the size of a
 * signalfd_siginfo (then sigwatch_signo() says which) or a negative errno.
 * Returns 0 or a negative errno (-EBUSY while a read is in flight on r).
 */
int sigwatch_next(struct loop *l, struct sigwatch *w, struct loop_req *r, loop_cb cb)
{
	return loop_read(l, r, w->fd, &w->si, sizeof(w->si), cb);
}

/* The signal of the last completed sigwatch_next(). */
int sigwatch_signo(struct sigwatch *w)
{
	return (int)w->si.ssi_signo;
}

/* Closes the signalfd and frees w (no read may be in flight); the signals stay blocked. */
void sigwatch_free(struct sigwatch *w)
{
	if (!w)
		return;
	close(w->fd);
	free(w);
}
