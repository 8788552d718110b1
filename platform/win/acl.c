/* Who may read a file on Windows (its DACL walked for grants beyond the owner, SYSTEM and
 * Administrators), who may change a file or folder the daemon trusts (and making a folder
 * SYSTEM's and the Administrators' only), and whose process is trusted (its token's groups). */
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include "platform/win/acl.h"
#include "platform/win/err.h"

/* The rights that let an account read the file's content. */
#define ACL_READ_RIGHTS (FILE_READ_DATA | GENERIC_READ | GENERIC_ALL | MAXIMUM_ALLOWED)
/*
 * The rights that let an account change what a file says or what a folder
 * holds: write or append (in a folder: add a file or a subfolder), delete a
 * child, delete or rename the object itself (a renamed folder can be replaced
 * by one of the account's own), or change its DACL or owner.
 */
#define ACL_WRITE_RIGHTS                                                                           \
	(FILE_WRITE_DATA | FILE_APPEND_DATA | FILE_DELETE_CHILD | DELETE | WRITE_DAC |             \
	 WRITE_OWNER | GENERIC_WRITE | GENERIC_ALL | MAXIMUM_ALLOWED)
/*
 * What acl_dir_restrict() applies: owner Administrators; a protected DACL
 * (P: nothing inherited from %ProgramData%, whose DACL lets Users create files
 * and folders; AI: children inherit automatically) with full control for
 * SYSTEM and Administrators, inherited by files (OI) and subfolders (CI).
 * Nobody else gets any entry, not even read.
 */
#define ACL_ADMIN_ONLY_DACL L"D:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)"
#define ACL_ADMIN_ONLY_SDDL L"O:BA" ACL_ADMIN_ONLY_DACL

/* True for the well-known accounts that hold the machine anyway: SYSTEM and Administrators. */
static bool acl_sid_trusted(PSID sid)
{
	return IsWellKnownSid(sid, WinLocalSystemSid) ||
	       IsWellKnownSid(sid, WinBuiltinAdministratorsSid);
}

/* The account's name ("BUILTIN\Users"), else its SID string, into who. */
static void acl_sid_name(PSID sid, char *who, size_t wholen)
{
	char name[128], domain[128];
	DWORD nlen = sizeof(name), dlen = sizeof(domain);
	SID_NAME_USE use;
	char *text = NULL;

	if (LookupAccountSidA(NULL, sid, name, &nlen, domain, &dlen, &use)) {
		snprintf(who, wholen, "%s%s%s", domain, *domain ? "\\" : "", name);
	} else if (ConvertSidToStringSidA(sid, &text)) {
		snprintf(who, wholen, "%s", text);
		LocalFree(text);
	} else {
		snprintf(who, wholen, "another account");
	}
}

/*
 * Walks dacl for an allowing entry that gives any of rights to someone but
 * owner (NULL: nobody else is exempt) and the trusted. Deny entries are
 * not weighed against allow entries: any such grant counts (fails closed).
 */
static int acl_walk(PACL dacl, PSID owner, DWORD rights, char *who, size_t wholen)
{
	for (DWORD i = 0; i < dacl->AceCount; i++) {
		ACCESS_ALLOWED_ACE *ace;
		PSID sid;

		if (!GetAce(dacl, i, (void **)&ace))
			return err_win_last();
		/* The callback type has the same layout up to the SID. */
		if ((ace->Header.AceType != ACCESS_ALLOWED_ACE_TYPE &&
		     ace->Header.AceType != ACCESS_ALLOWED_CALLBACK_ACE_TYPE) ||
		    (ace->Header.AceFlags & INHERIT_ONLY_ACE) || !(ace->Mask & rights))
			continue;
		sid = (PSID)&ace->SidStart;
		if ((owner && EqualSid(sid, owner)) || acl_sid_trusted(sid))
			continue;
		acl_sid_name(sid, who, wholen);
		return -EACCES;
	}
	return 0;
}

int acl_file_private(const char *path, char *who, size_t wholen)
{
	PSECURITY_DESCRIPTOR sd = NULL;
	PSID owner = NULL;
	PACL dacl = NULL;
	DWORD e;
	int r;

	e = GetNamedSecurityInfoA(path, SE_FILE_OBJECT,
				  DACL_SECURITY_INFORMATION | OWNER_SECURITY_INFORMATION, &owner,
				  NULL, &dacl, NULL, &sd);
	if (e != ERROR_SUCCESS)
		return err_from_win(e);
	if (!dacl) {
		/* No DACL at all: everyone has every right. */
		snprintf(who, wholen, "Everyone (the file has no DACL)");
		r = -EACCES;
	} else {
		r = acl_walk(dacl, owner, ACL_READ_RIGHTS, who, wholen);
	}
	LocalFree(sd);
	return r;
}

static TOKEN_USER *acl_token_user(HANDLE tok);

int acl_sd_admin_only(void *sd, char *who, size_t wholen)
{
	BOOL present = FALSE, dflt;
	TOKEN_USER *self = NULL;
	PSID owner = NULL;
	PACL dacl = NULL;
	HANDLE tok;
	int r = 0;

	if (!GetSecurityDescriptorOwner(sd, &owner, &dflt) ||
	    !GetSecurityDescriptorDacl(sd, &present, &dacl, &dflt))
		return err_win_last();
	/*
	 * The account this process runs as is trusted too: SYSTEM for the
	 * service; for a console daemon its user, who could change the daemon
	 * anyway. (Under Wine every file is owned by the prefix's user, and
	 * its DACL names that user: Wine cannot store another owner.)
	 */
	if (OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok)) {
		self = acl_token_user(tok);
		CloseHandle(tok);
	}
	if (!owner || (!acl_sid_trusted(owner) && !(self && EqualSid(owner, self->User.Sid)))) {
		/* Its owner may rewrite its DACL whatever the DACL says. */
		char name[200] = "an unknown account";

		if (owner)
			acl_sid_name(owner, name, sizeof(name));
		snprintf(who, wholen, "it is owned by %s", name);
		r = -EPERM;
	} else if (!present || !dacl) {
		snprintf(who, wholen, "Everyone may write to it (it has no DACL)");
		r = -EACCES;
	} else {
		char name[200];

		r = acl_walk(dacl, self ? self->User.Sid : NULL, ACL_WRITE_RIGHTS, name,
			     sizeof(name));
		if (r == -EACCES)
			snprintf(who, wholen, "%s may write to it", name);
	}
	free(self);
	return r;
}

int acl_admin_only(const char *path, char *who, size_t wholen)
{
	PSECURITY_DESCRIPTOR sd = NULL;
	DWORD e, attr = GetFileAttributesA(path);
	int r;

	if (attr == INVALID_FILE_ATTRIBUTES)
		return err_win_last();
	if (attr & FILE_ATTRIBUTE_REPARSE_POINT) {
		/* A link or junction: what it points at is not what was checked. */
		snprintf(who, wholen, "it is a link or junction");
		return -ELOOP;
	}
	e = GetNamedSecurityInfoA(path, SE_FILE_OBJECT,
				  DACL_SECURITY_INFORMATION | OWNER_SECURITY_INFORMATION, NULL,
				  NULL, NULL, NULL, &sd);
	if (e != ERROR_SUCCESS)
		return err_from_win(e);
	r = acl_sd_admin_only(sd, who, wholen);
	LocalFree(sd);
	return r;
}

/*
 * Enables privilege name in the process's token; false when the token lacks
 * it. Administrators hold SeTakeOwnershipPrivilege, disabled until asked for.
 */
static bool acl_enable_privilege(const wchar_t *name)
{
	TOKEN_PRIVILEGES tp = {.PrivilegeCount = 1};
	HANDLE tok;
	bool ok;

	if (!OpenProcessToken(GetCurrentProcess(), TOKEN_ADJUST_PRIVILEGES, &tok))
		return false;
	tp.Privileges[0].Attributes = SE_PRIVILEGE_ENABLED;
	ok = LookupPrivilegeValueW(NULL, name, &tp.Privileges[0].Luid) &&
	     AdjustTokenPrivileges(tok, FALSE, &tp, sizeof(tp), NULL, NULL) &&
	     GetLastError() == ERROR_SUCCESS; /* ERROR_NOT_ALL_ASSIGNED: not held */
	CloseHandle(tok);
	return ok;
}

/*
 * Sets sd's owner and protected DACL on the existing path. When that is
 * denied (a folder someone else made, whose DACL may shut Administrators
 * out), ownership is taken first with SeTakeOwnershipPrivilege: the owner
 * may always rewrite the DACL.
 */
static DWORD acl_apply(const char *path, PSECURITY_DESCRIPTOR sd)
{
	SECURITY_INFORMATION si = OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION |
				  PROTECTED_DACL_SECURITY_INFORMATION;
	BOOL present, dflt;
	PSID owner = NULL;
	PACL dacl = NULL;
	DWORD e;

	if (!GetSecurityDescriptorOwner(sd, &owner, &dflt) ||
	    !GetSecurityDescriptorDacl(sd, &present, &dacl, &dflt))
		return GetLastError();
	e = SetNamedSecurityInfoA((char *)path, SE_FILE_OBJECT, si, owner, NULL, dacl, NULL);
	if (e == ERROR_ACCESS_DENIED && acl_enable_privilege(L"SeTakeOwnershipPrivilege")) {
		e = SetNamedSecurityInfoA((char *)path, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION,
					  owner, NULL, NULL, NULL);
		if (e == ERROR_SUCCESS)
			e = SetNamedSecurityInfoA((char *)path, SE_FILE_OBJECT, si, owner, NULL,
						  dacl, NULL);
	}
	return e;
}

/* Creates folder path with the DACL of sddl; a Win32 error (ERROR_ALREADY_EXISTS...) or 0. */
static DWORD acl_mkdir(const char *path, const wchar_t *sddl)
{
	SECURITY_ATTRIBUTES sa = {sizeof(sa), NULL, FALSE};
	DWORD e = ERROR_SUCCESS;

	if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1,
								  &sa.lpSecurityDescriptor, NULL))
		return GetLastError();
	if (!CreateDirectoryA(path, &sa))
		e = GetLastError();
	LocalFree(sa.lpSecurityDescriptor);
	return e;
}

int acl_dir_restrict(const char *path, bool reset, bool *created)
{
	PSECURITY_DESCRIPTOR sd = NULL;
	DWORD attr, e;

	*created = false;
	if (!ConvertStringSecurityDescriptorToSecurityDescriptorW(ACL_ADMIN_ONLY_SDDL,
								  SDDL_REVISION_1, &sd, NULL))
		return err_win_last();
	/*
	 * Made with its DACL: never a moment with %ProgramData%'s inherited one.
	 * A token that may not name Administrators the owner at creation makes
	 * it with the DACL alone; acl_apply() then sets the owner (or fails).
	 */
	e = acl_mkdir(path, ACL_ADMIN_ONLY_SDDL);
	if (e == ERROR_INVALID_OWNER)
		e = acl_mkdir(path, ACL_ADMIN_ONLY_DACL);
	*created = e == ERROR_SUCCESS;
	if (e == ERROR_ALREADY_EXISTS)
		e = ERROR_SUCCESS;
	attr = GetFileAttributesA(path);
	if (e == ERROR_SUCCESS && attr != INVALID_FILE_ATTRIBUTES &&
	    (!(attr & FILE_ATTRIBUTE_DIRECTORY) || (attr & FILE_ATTRIBUTE_REPARSE_POINT)))
		e = ERROR_DIRECTORY; /* a file, a link or a junction where the folder belongs */
	/*
	 * Also when it was just made: the owner may have been left out. A
	 * folder found without reset is judged by the caller, never blessed.
	 */
	if (e == ERROR_SUCCESS && (*created || reset))
		e = acl_apply(path, sd);
	LocalFree(sd);
	return err_from_win(e);
}

/* The token's user, or NULL; a new buffer the caller frees. */
static TOKEN_USER *acl_token_user(HANDLE tok)
{
	DWORD n = 0;
	TOKEN_USER *tu;

	GetTokenInformation(tok, TokenUser, NULL, 0, &n);
	tu = n ? malloc(n) : NULL;
	if (tu && !GetTokenInformation(tok, TokenUser, tu, n, &n)) {
		free(tu);
		tu = NULL;
	}
	return tu;
}

/* The SID of local group name, or NULL when there is none; a new buffer the caller frees. */
static PSID acl_group_sid(const char *name)
{
	DWORD slen = 0, dlen = 0;
	SID_NAME_USE use;
	char domain[256];
	PSID sid;

	if (!name)
		return NULL;
	LookupAccountNameA(NULL, name, NULL, &slen, NULL, &dlen, &use);
	if (!slen || dlen > sizeof(domain) || !(sid = malloc(slen)))
		return NULL;
	dlen = sizeof(domain);
	if (!LookupAccountNameA(NULL, name, sid, &slen, domain, &dlen, &use) ||
	    (use != SidTypeAlias && use != SidTypeGroup && use != SidTypeWellKnownGroup)) {
		free(sid);
		return NULL;
	}
	return sid;
}

/* True when an enabled group of tok (not one for deny only) is trusted, or is extra. */
static bool acl_token_groups_trusted(HANDLE tok, PSID extra)
{
	PSID hvadmins = NULL;
	TOKEN_GROUPS *tg = NULL;
	DWORD n = 0;
	bool ok = false;

	/* Hyper-V Administrators (S-1-5-32-578): older SDKs name no well-known SID for it. */
	if (!ConvertStringSidToSidA("S-1-5-32-578", &hvadmins))
		hvadmins = NULL;
	GetTokenInformation(tok, TokenGroups, NULL, 0, &n);
	tg = n ? malloc(n) : NULL;
	if (tg && GetTokenInformation(tok, TokenGroups, tg, n, &n)) {
		for (DWORD i = 0; i < tg->GroupCount && !ok; i++) {
			PSID sid = tg->Groups[i].Sid;
			DWORD attr = tg->Groups[i].Attributes;

			if (!(attr & SE_GROUP_ENABLED) || (attr & SE_GROUP_USE_FOR_DENY_ONLY))
				continue;
			ok = IsWellKnownSid(sid, WinBuiltinAdministratorsSid) ||
			     (hvadmins && EqualSid(sid, hvadmins)) ||
			     (extra && EqualSid(sid, extra));
		}
	}
	free(tg);
	if (hvadmins)
		LocalFree(hvadmins);
	return ok;
}

int acl_process_trusted(unsigned long pid, const char *group, char *why, size_t whylen)
{
	HANDLE proc, tok = NULL;
	TOKEN_USER *tu = NULL;
	PSID extra = NULL;
	char user[300];
	int ret = 0;

	proc = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
	if (!proc || !OpenProcessToken(proc, TOKEN_QUERY, &tok)) {
		ret = err_win_last() ?: -EIO; /* never 0 here: that would let it in */
		snprintf(why, whylen, "its owner is unknown (process %lu: %s)", pid,
			 ret == -EACCES ? "access denied to its token" : "gone or unreadable");
		goto out;
	}
	tu = acl_token_user(tok);
	if (!tu) {
		ret = err_win_last() ?: -EIO;
		snprintf(why, whylen, "its owner is unknown (process %lu: no user)", pid);
		goto out;
	}
	if (IsWellKnownSid(tu->User.Sid, WinLocalSystemSid))
		goto out;
	extra = acl_group_sid(group);
	if (acl_token_groups_trusted(tok, extra))
		goto out;
	acl_sid_name(tu->User.Sid, user, sizeof(user));
	ret = -EACCES;
	snprintf(why, whylen,
		 "process %lu of %s is not an elevated Administrator, nor a Hyper-V "
		 "Administrator, nor in group %s",
		 pid, user, group ? group : "(none)");
out:
	free(extra);
	free(tu);
	if (tok)
		CloseHandle(tok);
	if (proc)
		CloseHandle(proc);
	return ret;
}
