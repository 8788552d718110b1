/* Private to platform/win: Windows error codes in the project's one error space (negative errno).
 */
#ifndef VB_PLATFORM_WIN_ERR_H
#define VB_PLATFORM_WIN_ERR_H

/* A Win32 error (GetLastError) or Winsock error (WSAGetLastError) as a negative errno; 0 for 0. */
int err_from_win(unsigned long code);
/* An NTSTATUS (an OVERLAPPED's Internal field) as a negative errno; 0 for success. */
int err_from_ntstatus(long status);
/* GetLastError() and WSAGetLastError(), mapped. */
int err_win_last(void);
int err_wsa_last(void);
/* The text of the errno values the C runtime does not know (100 and up); NULL for others. */
const char *err_posix_text(int errnum);

#endif
