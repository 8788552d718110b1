/* Windows error codes to the project's negative errno values: the one place they are translated. */
#include <winsock2.h>
#include <windows.h>
#include <winternl.h>
#include <errno.h>
#include <stddef.h>
#include "platform/win/err.h"

#ifndef ERROR_ELEVATION_REQUIRED
#define ERROR_ELEVATION_REQUIRED 740L
#endif

/*
 * Win32 and Winsock codes share one number space (WSAE* start at 10000), so
 * one table serves GetLastError(), WSAGetLastError() and NTSTATUS values
 * after RtlNtStatusToDosError(). A name that did not resolve is ENXIO, the
 * project's convention (core/err.c). End of file on a pipe (ERROR_BROKEN_PIPE
 * on a read) is not an error: the loop turns it into a zero-byte read before
 * asking here.
 */
static const struct err_win_map {
	unsigned long code;
	int errnum;
} err_win_table[] = {
    {ERROR_FILE_NOT_FOUND, ENOENT},
    {ERROR_PATH_NOT_FOUND, ENOENT},
    {ERROR_INVALID_NAME, ENOENT},
    {ERROR_BAD_PATHNAME, ENOENT},
    {ERROR_MOD_NOT_FOUND, ENOENT},
    {ERROR_NOT_FOUND, ENOENT},
    {ERROR_BAD_NETPATH, ENOENT},
    {ERROR_TOO_MANY_OPEN_FILES, EMFILE},
    {ERROR_ACCESS_DENIED, EACCES},
    {ERROR_PRIVILEGE_NOT_HELD, EACCES},
    {ERROR_ELEVATION_REQUIRED, EACCES},
    {ERROR_INVALID_HANDLE, EBADF},
    {ERROR_NOT_ENOUGH_MEMORY, ENOMEM},
    {ERROR_OUTOFMEMORY, ENOMEM},
    {ERROR_COMMITMENT_LIMIT, ENOMEM},
    {ERROR_INVALID_PARAMETER, EINVAL},
    {ERROR_INVALID_FLAGS, EINVAL},
    {ERROR_INVALID_DATA, EINVAL},
    {ERROR_NEGATIVE_SEEK, EINVAL},
    {ERROR_INVALID_FUNCTION, EINVAL},
    {ERROR_NOACCESS, EFAULT},
    {ERROR_WRITE_PROTECT, EROFS},
    {ERROR_SHARING_VIOLATION, EBUSY},
    {ERROR_LOCK_VIOLATION, EBUSY},
    {ERROR_BUSY, EBUSY},
    {ERROR_PIPE_BUSY, EBUSY},
    {ERROR_FILE_EXISTS, EEXIST},
    {ERROR_ALREADY_EXISTS, EEXIST},
    {ERROR_DIRECTORY, ENOTDIR},
    {ERROR_DIR_NOT_EMPTY, ENOTEMPTY},
    {ERROR_DISK_FULL, ENOSPC},
    {ERROR_HANDLE_DISK_FULL, ENOSPC},
    {ERROR_FILENAME_EXCED_RANGE, ENAMETOOLONG},
    {ERROR_BUFFER_OVERFLOW, ENAMETOOLONG},
    {ERROR_CANT_RESOLVE_FILENAME, ELOOP},
    {ERROR_INSUFFICIENT_BUFFER, ENOBUFS},
    {ERROR_MORE_DATA, EMSGSIZE},
    {ERROR_CALL_NOT_IMPLEMENTED, ENOSYS},
    {ERROR_PROC_NOT_FOUND, ENOSYS},
    {ERROR_NOT_SUPPORTED, ENOTSUP},
    {ERROR_BROKEN_PIPE, EPIPE},
    {ERROR_NO_DATA, EPIPE},
    {ERROR_PIPE_NOT_CONNECTED, EPIPE},
    {ERROR_OPERATION_ABORTED, ECANCELED},
    {ERROR_CANCELLED, ECANCELED},
    {ERROR_SEM_TIMEOUT, ETIMEDOUT},
    {ERROR_TIMEOUT, ETIMEDOUT},
    {WAIT_TIMEOUT, ETIMEDOUT},
    {ERROR_NETNAME_DELETED, ECONNRESET},
    {ERROR_CONNECTION_ABORTED, ECONNABORTED},
    {ERROR_REQUEST_ABORTED, ECONNABORTED},
    {ERROR_CONNECTION_REFUSED, ECONNREFUSED},
    {ERROR_HOST_UNREACHABLE, EHOSTUNREACH},
    {ERROR_NETWORK_UNREACHABLE, ENETUNREACH},
    {ERROR_PORT_UNREACHABLE, ECONNREFUSED},
    {ERROR_ADDRESS_ALREADY_ASSOCIATED, EADDRINUSE},
    {ERROR_NOT_CONNECTED, ENOTCONN},
    {ERROR_INVALID_NETNAME, EADDRNOTAVAIL},
    {WSAEINTR, EINTR},
    {WSAEBADF, EBADF},
    {WSAEACCES, EACCES},
    {WSAEFAULT, EFAULT},
    {WSAEINVAL, EINVAL},
    {WSAEMFILE, EMFILE},
    {WSAEWOULDBLOCK, EAGAIN},
    {WSAEINPROGRESS, EINPROGRESS},
    {WSAEALREADY, EALREADY},
    {WSAENOTSOCK, ENOTSOCK},
    {WSAEDESTADDRREQ, EDESTADDRREQ},
    {WSAEMSGSIZE, EMSGSIZE},
    {WSAEPROTOTYPE, EPROTOTYPE},
    {WSAENOPROTOOPT, ENOPROTOOPT},
    {WSAEPROTONOSUPPORT, EPROTONOSUPPORT},
    {WSAESOCKTNOSUPPORT, EPROTONOSUPPORT},
    {WSAEOPNOTSUPP, EOPNOTSUPP},
    {WSAEPFNOSUPPORT, EAFNOSUPPORT},
    {WSAEAFNOSUPPORT, EAFNOSUPPORT},
    {WSAEADDRINUSE, EADDRINUSE},
    {WSAEADDRNOTAVAIL, EADDRNOTAVAIL},
    {WSAENETDOWN, ENETDOWN},
    {WSAENETUNREACH, ENETUNREACH},
    {WSAENETRESET, ENETRESET},
    {WSAECONNABORTED, ECONNABORTED},
    {WSAECONNRESET, ECONNRESET},
    {WSAENOBUFS, ENOBUFS},
    {WSAEISCONN, EISCONN},
    {WSAENOTCONN, ENOTCONN},
    {WSAESHUTDOWN, EPIPE},
    {WSAETIMEDOUT, ETIMEDOUT},
    {WSAECONNREFUSED, ECONNREFUSED},
    {WSAENAMETOOLONG, ENAMETOOLONG},
    {WSAEHOSTDOWN, EHOSTDOWN},
    {WSAEHOSTUNREACH, EHOSTUNREACH},
    {WSAEDISCON, ECONNRESET},
    {WSAHOST_NOT_FOUND, ENXIO},
    {WSATRY_AGAIN, EAGAIN},
    {WSANO_RECOVERY, ENXIO},
    {WSANO_DATA, ENXIO},
    {WSA_E_CANCELLED, ECANCELED},
    {WSAECANCELLED, ECANCELED},
};

/*
 * err_from_win() - maps a Win32 or Winsock error code.
 * Return: 0 for ERROR_SUCCESS, the negative errno of the table, -EIO for a
 * code it does not list.
 */
int err_from_win(unsigned long code)
{
	if (code == ERROR_SUCCESS)
		return 0;
	for (size_t i = 0; i < sizeof(err_win_table) / sizeof(err_win_table[0]); i++) {
		if (err_win_table[i].code == code)
			return -err_win_table[i].errnum;
	}
	return -EIO;
}

int err_from_ntstatus(long status)
{
	if (status >= 0)
		return 0;
	return err_from_win(RtlNtStatusToDosError((NTSTATUS)status));
}

int err_win_last(void)
{
	return err_from_win(GetLastError());
}

int err_wsa_last(void)
{
	return err_from_win((unsigned long)WSAGetLastError());
}

/* The texts the C runtime lacks: Microsoft's strerror() stops at EILSEQ (42). */
static const struct err_text {
	int errnum;
	const char *text;
} err_texts[] = {
    {EADDRINUSE, "Address already in use"},
    {EADDRNOTAVAIL, "Cannot assign requested address"},
    {EAFNOSUPPORT, "Address family not supported by protocol"},
    {EALREADY, "Operation already in progress"},
    {EBADMSG, "Bad message"},
    {ECANCELED, "Operation canceled"},
    {ECONNABORTED, "Software caused connection abort"},
    {ECONNREFUSED, "Connection refused"},
    {ECONNRESET, "Connection reset by peer"},
    {EDESTADDRREQ, "Destination address required"},
    {EHOSTUNREACH, "No route to host"},
    {EIDRM, "Identifier removed"},
    {EINPROGRESS, "Operation now in progress"},
    {EISCONN, "Transport endpoint is already connected"},
    {ELOOP, "Too many levels of symbolic links"},
    {EMSGSIZE, "Message too long"},
    {ENETDOWN, "Network is down"},
    {ENETRESET, "Network dropped connection on reset"},
    {ENETUNREACH, "Network is unreachable"},
    {ENOBUFS, "No buffer space available"},
    {ENODATA, "No data available"},
    {ENOLINK, "Link has been severed"},
    {ENOMSG, "No message of desired type"},
    {ENOPROTOOPT, "Protocol not available"},
    {ENOSR, "Out of streams resources"},
    {ENOSTR, "Device not a stream"},
    {ENOTCONN, "Transport endpoint is not connected"},
    {ENOTRECOVERABLE, "State not recoverable"},
    {ENOTSOCK, "Socket operation on non-socket"},
    {ENOTSUP, "Operation not supported"},
    {EOPNOTSUPP, "Operation not supported"},
    {EOVERFLOW, "Value too large for defined data type"},
    {EOWNERDEAD, "Owner died"},
    {EPROTO, "Protocol error"},
    {EPROTONOSUPPORT, "Protocol not supported"},
    {EPROTOTYPE, "Protocol wrong type for socket"},
    {ETIME, "Timer expired"},
    {ETIMEDOUT, "Connection timed out"},
    {ETXTBSY, "Text file busy"},
    {EWOULDBLOCK, "Resource temporarily unavailable"},
    {ESHUTDOWN, "Cannot send after transport endpoint shutdown"},
    {EHOSTDOWN, "Host is down"},
};

const char *err_posix_text(int errnum)
{
	for (size_t i = 0; i < sizeof(err_texts) / sizeof(err_texts[0]); i++) {
		if (err_texts[i].errnum == errnum)
			return err_texts[i].text;
	}
	return NULL;
}
