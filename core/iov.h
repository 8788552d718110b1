/* A scatter/gather element, laid out as POSIX struct iovec (checked in platform/linux). */
#ifndef VB_CORE_IOV_H
#define VB_CORE_IOV_H

#include <stddef.h>

struct vb_iov {
	void *base;
	size_t len;
};

#endif
