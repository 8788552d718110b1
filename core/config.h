/* The daemon's configuration file: an OS-free parser over a memory buffer (docs/config.md). */
#ifndef VB_CORE_CONFIG_H
#define VB_CORE_CONFIG_H

#include <stddef.h>

/*
 * The format, line by line (LF or CRLF endings):
 *
 *   # comment
 *   [daemon]
 *   control = unix:///run/vmbusify/control.sock
 *   threads = 2
 *   log-level = info
 *   backend = auto          # auto | uring | epoll
 *   [vm lab1]
 *   uri = unix:///run/vmbusify/lab/lab1.sock
 *   [vm web-7]
 *   uri = vsock://7
 *
 * Blank lines are skipped. A '#' at the start of a line or after a space or
 * tab starts a comment that runs to the end of the line; a '#' inside a word
 * belongs to the value. Spaces and tabs around section names, keys and values
 * are ignored. Keys are lower case and appear at most once per section.
 *
 * [daemon] (at most once) takes control, threads (1-256), log-level (error,
 * warning, warn, info, debug) and backend (auto, uring, epoll). Each
 * [vm NAME] takes uri, which it must have. A VM name is 1-63 characters of
 * A-Z a-z 0-9 . _ - and starts with neither '-' nor '.'. URIs are checked by
 * uri_parse() and are at most 255 characters.
 *
 * Errors: unknown sections and keys, duplicate keys, sections and VM names,
 * a missing uri, a line over 1023 characters, a NUL or other control byte.
 */

#define CONFIG_LINE_MAX	       1023 /* characters per line, without its line ending */
#define CONFIG_NAME_MAX	       63   /* characters of a VM name */
#define CONFIG_THREADS_MAX     256
#define CONFIG_THREADS_AUTO    0 /* threads not set: the daemon runs one loop per core */
#define CONFIG_DEFAULT_CONTROL "unix:///run/vmbusify/control.sock"

struct config_vm {
	char name[CONFIG_NAME_MAX + 1];
	char uri[256];
};

struct config {
	char control[256];
	int threads; /* 1..256, or CONFIG_THREADS_AUTO */
	char log_level[16];
	char backend[16];
	struct config_vm *vms; /* owned; config_free() releases it */
	size_t nvms;
};

/* Sets the defaults: the control socket above, threads auto, log-level info, backend auto, no VMs.
 */
void config_init(struct config *c);

/*
 * Parses len bytes at buf (not NUL-terminated; buf may be NULL when len is 0)
 * into out, which starts from the defaults. Returns 0, -EINVAL with a one-line
 * reason in why ("line 7: unknown key 'uri2' in [vm lab1]"), or -ENOMEM. On
 * failure out holds the defaults and no memory. The caller owns out and
 * releases it with config_free().
 */
int config_parse(const char *buf, size_t len, struct config *out, char *why, size_t whylen);

/* Releases the VM list and leaves c empty of VMs; c itself is the caller's. */
void config_free(struct config *c);

/*
 * Appends a VM (from --vm NAME=URI). Returns 0, -EINVAL with a reason for a
 * bad name, a bad or overlong URI or a name already present, or -ENOMEM.
 * The strings are copied.
 */
int config_add_vm(struct config *c, const char *name, const char *uri, char *why, size_t whylen);

/* Returns the VM called name, or NULL. The pointer lasts until the next config_add_vm(). */
const struct config_vm *config_find_vm(const struct config *c, const char *name);

#endif
