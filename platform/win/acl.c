/* Who may read a file on Windows: its DACL walked for grants beyond the owner, SYSTEM and
 * Administrators. */
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
