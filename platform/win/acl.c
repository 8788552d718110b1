/* Who may read a file on Windows (its DACL walked for grants beyond the owner, SYSTEM and
 * Administrators), and whose process is trusted (its token's groups). */
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

/* Walks dacl for an allowing entry that gives read rights to someone but owner and the trusted. */
static int acl_walk(PACL dacl, PSID owner, char *who, size_t wholen)
{
	for (DWORD i = 0; i < dacl->AceCount; i++) {
		ACCESS_ALLOWED_ACE *ace;
		PSID sid;

		if (!GetAce(dacl, i, (void **)&ace))
			return err_win_last();
		if (ace->Header.AceType != ACCESS_ALLOWED_ACE_TYPE ||
		    (ace->Header.AceFlags & INHERIT_ONLY_ACE) || !(ace->Mask & ACL_READ_RIGHTS))
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
		r = acl_walk(dacl, owner, who, wholen);
	}
	LocalFree(sd);
	return r;
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
