/* Private to platform/win and the Windows mains: who may read a file (the tcp token), who may
 * change one (the daemon's folder and configuration), and whose process is trusted. */
#ifndef VB_PLATFORM_WIN_ACL_H
#define VB_PLATFORM_WIN_ACL_H

#include <stdbool.h>
#include <stddef.h>

/*
 * acl_file_private() - checks that only the file's owner, SYSTEM and the
 * Administrators may read path (what mode 0600 or 0400 says on Linux).
 * Return: 0 when private; -EACCES with the account that may also read it in
 * who (e.g. "Everyone"); another negative errno when the DACL cannot be read.
 */
int acl_file_private(const char *path, char *who, size_t wholen);

/*
 * acl_admin_only() - checks that only SYSTEM, the Administrators and the
 * account this process runs as (SYSTEM for the service) may change path, a
 * file or a folder: it is not a link or junction, its owner is one of them,
 * and no entry of its DACL lets another account write to it, add to it,
 * delete or rename it, or change its DACL or owner.
 * Return: 0 when so; -EPERM (another owner), -EACCES (another writer) or
 * -ELOOP (a link or junction) with a clause for a message in who, e.g. "it
 * is owned by HOST\bob" or "BUILTIN\Users may write to it"; another
 * negative errno (-ENOENT: no such path) when it cannot be read.
 */
int acl_admin_only(const char *path, char *who, size_t wholen);
/* acl_sd_admin_only() - the same judgement of security descriptor sd (its owner and DACL). */
int acl_sd_admin_only(void *sd, char *who, size_t wholen);

/*
 * acl_dir_restrict() - creates folder path (its parent must exist) with
 * owner Administrators and a protected DACL (nothing inherited) giving full
 * control to SYSTEM and Administrators only, inherited by what is in it; an
 * existing folder is given the same when reset is true (ownership is taken
 * first when the DACL cannot be written otherwise), and left as it is when
 * false. Entries of existing files and subfolders that are their own (not
 * inherited) and their owners stay: acl_admin_only() judges those. Needs an
 * elevated Administrator (or SYSTEM). *created says whether it was made.
 * Return: 0, or a negative errno (-EACCES: not elevated; -ENOTDIR: a file,
 * link or junction is in its place).
 */
int acl_dir_restrict(const char *path, bool reset, bool *created);

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
