/* Private to platform/win: who may read a file (the tcp token), and whose process is trusted. */
#ifndef VB_PLATFORM_WIN_ACL_H
#define VB_PLATFORM_WIN_ACL_H

#include <stddef.h>

/*
 * acl_file_private() - checks that only the file's owner, SYSTEM and the
 * Administrators may read path (what mode 0600 or 0400 says on Linux).
 * Return: 0 when private; -EACCES with the account that may also read it in
 * who (e.g. "Everyone"); another negative errno when the DACL cannot be read.
 */
int acl_file_private(const char *path, char *who, size_t wholen);

/*
 * acl_process_trusted() - checks that process pid runs as LocalSystem, or
 * with the Administrators group enabled (an elevated administrator; UAC's
 * filtered token holds it for deny only), or with Hyper-V Administrators,
 * or with the local group named group (NULL or missing: not asked): who may
 * use the daemon's control pipe, and whom the operator adds.
 * Return: 0 when trusted; -EACCES with the process and its user in why; another
 * negative errno when its token cannot be read (why says so).
 */
int acl_process_trusted(unsigned long pid, const char *group, char *why, size_t whylen);

#endif
