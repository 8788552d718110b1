/* Private to platform/win: process-wide set-up shared by its files. */
#ifndef VB_PLATFORM_WIN_SYS_INTERNAL_H
#define VB_PLATFORM_WIN_SYS_INTERNAL_H

/* Starts Winsock 2.2 once per process (thread-safe); returns 0 or a negative errno. */
int sys_wsa_start(void);
/* Wakes sys_wait_termination() with signo, as a console event would (the service's stop). */
void sys_term_raise(int signo);

#endif
