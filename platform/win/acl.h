/* Private to platform/win: who may read a file, for secrets such as the tcp token. */
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

#endif
