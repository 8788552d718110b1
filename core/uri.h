/* Channel addresses as URIs: vsock, hybrid, hvsock, unix, serial, tcp, npipe. OS-free parsing. */
#ifndef VB_CORE_URI_H
#define VB_CORE_URI_H

#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>

enum uri_kind {
	URI_VSOCK = 1, /* vsock://CID:PORT, listen vsock://:PORT */
	URI_HYBRID,    /* hybrid:///path/to/socket:PORT (Firecracker, cloud-hypervisor host side) */
	URI_HVSOCK,    /* hvsock://<VMID-or-name>[:PORT], hvsock://<VMID>/<service GUID> */
	URI_UNIX,      /* unix:///path */
	URI_SERIAL,    /* serial:///dev/path (one connection only) */
	URI_TCP,       /* tcp://host:port (needs a token) */
	URI_NPIPE,     /* npipe://NAME: the Windows named pipe \\.\pipe\NAME */
};

#define VB_DEFAULT_PORT 0x5642u /* "VB": the agent's default vsock port, 22082 */
#define URI_PATH_MAX	108	/* sun_path */
#define URI_HOST_MAX	256

struct guid {
	uint8_t b[16]; /* in Windows' in-memory order: Data1..3 little-endian, Data4 as bytes */
};

struct uri {
	enum uri_kind kind;
	bool listen;	  /* no CID / host given: a listening address */
	bool any_cid;	  /* vsock: CID omitted or -1 */
	uint32_t cid;	  /* vsock */
	uint32_t port;	  /* vsock, hybrid, hvsock (when given as a port), tcp */
	bool has_service; /* hvsock: service GUID given (or derived from port) */
	struct guid vm;	  /* hvsock: VMID when vm_is_guid */
	bool vm_is_guid;
	struct guid service;
	char host[URI_HOST_MAX]; /* tcp host, hvsock VM name */
	char path[URI_PATH_MAX]; /* unix, hybrid, serial; npipe: the pipe's name */
};

/* Parses s; on failure returns -EINVAL and writes a one-line reason to why. */
int uri_parse(const char *s, struct uri *out, char *why, size_t whylen);
/* Formats u back into a canonical URI; returns the length or -ENOSPC. */
int uri_format(const struct uri *u, char *buf, size_t len);
bool uri_is_single_connection(const struct uri *u);

/* The vsock port-to-GUID template of hv_sock: "%08x-FACB-11E6-BD58-64006A7986D3". */
void guid_from_vsock_port(uint32_t port, struct guid *out);
/* Returns true and the port when g follows that template. */
bool guid_to_vsock_port(const struct guid *g, uint32_t *port);
int guid_parse(const char *s, struct guid *out);
/* Writes 36 characters plus NUL, upper case as Hyper-V prints them. */
void guid_format(const struct guid *g, char out[37]);

#endif
