/* Child processes: spawn with pipes or a pty, watch for exit on a loop, signal, resize. */
#ifndef VB_PLATFORM_PROC_H
#define VB_PLATFORM_PROC_H

#include <stdbool.h>
#include <stdint.h>
#include "platform/loop.h"

struct proc_spec {
	const char *const *argv; /* argv[0] is looked up in PATH when it has no '/' */
	const char *const *env;	 /* "KEY=VALUE" entries laid over the base environment */
	const char *cwd;	 /* NULL: the user's home directory, else "/" */
	const char *user;	 /* NULL: the agent's own user; else setuid/setgid/initgroups */
	bool tty;		 /* a pty: stdin, stdout and stderr are its slave side */
	uint16_t rows, cols;	 /* the pty's size */
	const char *term;	 /* TERM for a pty (default xterm-256color) */
	bool stdin_null;	 /* stdin is /dev/null (no stdin pipe); ignored with tty */
	bool detach;		 /* stdio to /dev/null, not killed with its owner, no exit watch */
};

/*
 * A running child, in its own session (setsid) and process group. The base
 * environment is a clean login-like one: PATH, HOME, USER, LOGNAME, SHELL
 * (and TERM with a pty), then spec->env on top.
 */
struct proc {
	int pid;
	pl_fd in;    /* write end of its stdin, or the pty master; -1 if none */
	pl_fd out;   /* read end of its stdout, or the pty master (the same descriptor as in) */
	pl_fd err;   /* read end of its stderr; -1 with a pty */
	pl_fd pidfd; /* -1 when detached (or on kernels before 5.3) */
	bool tty;
	bool exec_failed; /* after a failed spawn: execve itself failed (not the set-up) */
	intptr_t pty;	  /* Windows: the pseudo console (HPCON) while open, else 0; Linux: 0 */
	bool unowned;	  /* private: reaped or detached, so the pid may name another process */
};

/*
 * Starts spec. Returns 0 and fills *p (descriptors non-blocking, close-on-exec,
 * owned by the caller), or a negative errno of the exec itself (-ENOENT for a
 * missing program, -EACCES, ...) with a one-line reason in why; then every
 * descriptor in *p is -1. It returns only once the program runs (or failed
 * to), so a failed exec is never an exit status 127. A detached program is
 * on its own: no pidfd, proc_reap says -ECHILD and proc_signal does nothing.
 */
int proc_spawn(const struct proc_spec *spec, struct proc *p, char *why, size_t whylen);
/*
 * Every child spawned from now on, except detached ones, carries mark
 * ("KEY=VALUE") in its environment, after spec->env. Call before the loops
 * start. Returns 0, -EINVAL or -ENOMEM.
 */
int proc_set_owner_mark(const char *mark);
/*
 * Kills (SIGKILL) every process whose environment holds the entry mark, with
 * its process group: what a predecessor that died without cleaning up (a
 * killed agent) left running. A process that cleared its environment or left
 * its group escapes, as it would escape ssh. Returns how many carried the
 * mark, or a negative errno.
 */
int proc_sweep_marked(const char *mark);

enum proc_exit_kind { PROC_EXITED = 0, PROC_SIGNALED = 1 };

struct proc_status {
	enum proc_exit_kind kind;
	int code; /* exit status, or signal number */
	bool core;
};

/*
 * Watches p's exit on loop l: r completes with res >= 0 when p has exited;
 * then call proc_reap. Without a pidfd (kernels before 5.3) r completes after
 * a short delay instead: proc_reap then says -EAGAIN and the caller watches again.
 */
int proc_watch(struct loop *l, struct loop_req *r, struct proc *p, loop_cb cb);
/* Collects an exited p's status; 0, -EAGAIN if it still runs, -ECHILD if reaped or detached. */
int proc_reap(struct proc *p, struct proc_status *st);
/*
 * Signals p's process group with signo (Linux numbering, see exec/msg.h), and
 * with a pty also the terminal's foreground group (a job of an interactive
 * shell). Returns 0 when sent or when the group is gone (also once p is
 * reaped, or when detached, since its pid may name another process by then),
 * else a negative errno.
 */
int proc_signal(struct proc *p, int signo);
int proc_resize(struct proc *p, uint16_t rows, uint16_t cols);
/* Closes every descriptor p still holds (not the process). */
void proc_close(struct proc *p);

/* The local terminal (the CLI side of -t). */
struct term_state;
/* Puts fd in raw mode; *saved lets term_restore put it back. Returns 0 or a negative errno. */
int term_raw(int fd, struct term_state **saved);
/* Restores what term_raw changed; safe to call twice and from a signal-safe path. Accepts NULL. */
void term_restore(struct term_state *saved);
/* Restores (if not done) and frees what term_raw returned. Accepts NULL. */
void term_free(struct term_state *saved);
int term_size(int fd, uint16_t *rows, uint16_t *cols);

/* Signals as loop completions (signalfd on Linux). */
struct sigwatch;
/*
 * Starts watching the signals in signos[0..n) (blocked in the calling thread
 * from now on, and still after sigwatch_free). Returns 0 or a negative errno
 * (-EINVAL for SIGKILL, SIGSTOP or a bad number).
 */
int sigwatch_new(struct sigwatch **out, const int *signos, int n);
/*
 * Waits for the next signal: r completes with res > 0 (then sigwatch_signo
 * says which) or a negative errno. One at a time per sigwatch.
 */
int sigwatch_next(struct loop *l, struct sigwatch *w, struct loop_req *r, loop_cb cb);
/* The signal number after a completion with res > 0. */
int sigwatch_signo(struct sigwatch *w);
void sigwatch_free(struct sigwatch *w);

#endif
