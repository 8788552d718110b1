/* Translation between negative errno values and the protocol's wire error codes. */
#include <errno.h>
#include <stddef.h>
#include "core/err.h"

/*
 * errno values outside ISO C differ between C libraries and a few do not
 * exist on Windows (ESHUTDOWN, EHOSTDOWN), so the table lists only those that
 * are defined. Lookups take the first match, which lets aliases such as
 * EWOULDBLOCK == EAGAIN sit in the table without clashing.
 */
static const struct err_map {
	int errnum;
	uint32_t code;
} err_to_table[] = {
    {ECONNREFUSED, VB_WERR_REFUSED},
    {EHOSTUNREACH, VB_WERR_HOSTUNREACH},
    {EADDRNOTAVAIL, VB_WERR_HOSTUNREACH},
#ifdef EHOSTDOWN
    {EHOSTDOWN, VB_WERR_HOSTUNREACH},
#endif
    {ENETUNREACH, VB_WERR_NETUNREACH},
    {ETIMEDOUT, VB_WERR_TIMEDOUT},
    {ENOENT, VB_WERR_NOENT},
    {EACCES, VB_WERR_ACCESS},
    {EPERM, VB_WERR_DENIED},
    {ENXIO, VB_WERR_NAME},
    {ECANCELED, VB_WERR_CANCELLED},
    {EPROTO, VB_WERR_PROTOCOL},
    {ENOTSUP, VB_WERR_UNSUPPORTED},
    {EOPNOTSUPP, VB_WERR_UNSUPPORTED},
    {EPROTONOSUPPORT, VB_WERR_UNSUPPORTED},
    {EMFILE, VB_WERR_LIMIT},
    {ENFILE, VB_WERR_LIMIT},
    {EAGAIN, VB_WERR_LIMIT},
    {EWOULDBLOCK, VB_WERR_LIMIT},
    {ENOBUFS, VB_WERR_LIMIT},
    {EMSGSIZE, VB_WERR_TOOBIG},
    {E2BIG, VB_WERR_TOOBIG},
    {EIO, VB_WERR_IO},
    {ECONNRESET, VB_WERR_RESET},
    {EPIPE, VB_WERR_RESET},
    {EEXIST, VB_WERR_EXISTS},
    {EADDRINUSE, VB_WERR_EXISTS}, /* a port someone already listens on */
    {EINVAL, VB_WERR_INVAL},
    {ENOMEM, VB_WERR_NOMEM},
#ifdef ESHUTDOWN
    {ESHUTDOWN, VB_WERR_SHUTDOWN},
#endif
};

/*
 * For each wire code, the errno a receiver sees and a short text. The errno
 * is the one err_to_wire() maps back to the same code, except where no errno
 * means the same thing (VERSION, FLOW): those take the nearest. A policy denial
 * is EPERM and a name that did not resolve ENXIO, by this project's convention.
 */
static const struct err_wire {
	int errnum;
	const char *text;
} err_wire_table[VB_WERR_MAX] = {
    [VB_WERR_NONE] = {0, "no error"},
    [VB_WERR_PROTOCOL] = {EPROTO, "protocol error"},
    [VB_WERR_INTERNAL] = {ENOTRECOVERABLE, "internal error"},
    [VB_WERR_VERSION] = {EPROTONOSUPPORT, "no common protocol version"},
    [VB_WERR_UNSUPPORTED] = {EOPNOTSUPP, "not supported"},
    [VB_WERR_DENIED] = {EPERM, "denied by policy"},
    [VB_WERR_LIMIT] = {ENOBUFS, "limit reached"},
    [VB_WERR_REFUSED] = {ECONNREFUSED, "connection refused"},
    [VB_WERR_HOSTUNREACH] = {EHOSTUNREACH, "host unreachable"},
    [VB_WERR_NETUNREACH] = {ENETUNREACH, "network unreachable"},
    [VB_WERR_TIMEDOUT] = {ETIMEDOUT, "timed out"},
    [VB_WERR_NAME] = {ENXIO, "name did not resolve"},
    [VB_WERR_NOENT] = {ENOENT, "no such file, program or VM"},
    [VB_WERR_ACCESS] = {EACCES, "permission denied"},
    [VB_WERR_CANCELLED] = {ECANCELED, "cancelled"},
#ifdef ESHUTDOWN
    [VB_WERR_SHUTDOWN] = {ESHUTDOWN, "peer is shutting down"},
#else
    [VB_WERR_SHUTDOWN] = {ECONNABORTED, "peer is shutting down"},
#endif
    [VB_WERR_FLOW] = {EOVERFLOW, "flow control window exceeded"},
    [VB_WERR_TOOBIG] = {EMSGSIZE, "too big"},
    [VB_WERR_IO] = {EIO, "I/O error"},
    [VB_WERR_RESET] = {ECONNRESET, "connection reset"},
    [VB_WERR_EXISTS] = {EEXIST, "already exists"},
    [VB_WERR_INVAL] = {EINVAL, "invalid request"},
    [VB_WERR_NOMEM] = {ENOMEM, "out of memory"},
};

/*
 * err_to_wire() - maps a negative errno (a positive one is read as its
 * negation) to a wire code.
 * Return: VB_WERR_NONE for 0, VB_WERR_INTERNAL for an errno without a code.
 */
uint32_t err_to_wire(int neg_errno)
{
	int e = neg_errno < 0 ? -neg_errno : neg_errno;

	if (!e)
		return VB_WERR_NONE;
	for (size_t i = 0; i < sizeof(err_to_table) / sizeof(err_to_table[0]); i++) {
		if (err_to_table[i].errnum == e)
			return err_to_table[i].code;
	}
	return VB_WERR_INTERNAL;
}

/* Return: 0 for VB_WERR_NONE, a negative errno, -EPROTO for a code this build does not know. */
int err_from_wire(uint32_t code)
{
	if (code >= VB_WERR_MAX)
		return -EPROTO;
	return -err_wire_table[code].errnum;
}

const char *err_wire_str(uint32_t code)
{
	if (code >= VB_WERR_MAX)
		return "unknown error";
	return err_wire_table[code].text;
}
