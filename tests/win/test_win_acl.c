/* Tests of the daemon folder's permissions (platform/win/acl.c): the check and the restriction.
 *
 * What Wine (8.0) does with a file's security: it enforces no DACL (the Unix
 * permissions decide who opens what); it reports a DACL made up from the
 * Unix mode (the owner's bits for the prefix's user, the others' bits for
 * Everyone; the group's bits nowhere) and always the prefix's user as owner;
 * a DACL that is set becomes a new mode (entries for other accounts, the
 * protection and the owner are dropped). So the judgement itself is tested
 * on security descriptors in memory, the same on Windows and Wine; on the
 * file system, a folder Everyone may write to is refused and passes once
 * restricted, and the exact DACL and owner written are checked on Windows
 * only. That a non-administrator is really kept out is for a Windows host.
 */
#include <windows.h>
#include <aclapi.h>
#include <sddl.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "platform/win/acl.h"

static char root[MAX_PATH];

static bool under_wine(void)
{
	HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");

	return ntdll && GetProcAddress(ntdll, "wine_get_version");
}

/* Judges the security descriptor of sddl; the reason in who. */
static int judge(const wchar_t *sddl, char *who, size_t wholen)
{
	PSECURITY_DESCRIPTOR sd = NULL;
	int r;

	assert_true(
	    ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd, NULL));
	r = acl_sd_admin_only(sd, who, wholen);
	LocalFree(sd);
	return r;
}

/* ---- the judgement ---- */

static void test_sd_of_system_and_administrators_only_passes(void **state)
{
	char who[300] = "";

	assert_int_equal(judge(L"O:BAD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)", who, sizeof(who)), 0);
	assert_int_equal(judge(L"O:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)", who, sizeof(who)), 0);
}

/* Reading is not changing; CREATOR OWNER's inherit-only entry is for files made later. */
static void test_sd_that_others_may_only_read_passes(void **state)
{
	char who[300] = "";

	assert_int_equal(judge(L"O:BAD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;FRFX;;;BU)"
			       L"(A;OICIIO;FA;;;CO)",
			       who, sizeof(who)),
			 0);
}

/* %ProgramData%'s own entry: Users may add files and folders. */
static void test_sd_where_users_may_add_files_is_refused(void **state)
{
	char who[300] = "";

	assert_int_equal(
	    judge(L"O:BAD:(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;CI;0x100116;;;BU)", who, sizeof(who)),
	    -EACCES);
	assert_non_null(strstr(who, "Users may write to it"));
}

static void test_sd_that_lets_users_delete_or_rewrite_the_dacl_is_refused(void **state)
{
	char who[300] = "";

	assert_int_equal(judge(L"O:BAD:(A;;FA;;;BA)(A;;SD;;;BU)", who, sizeof(who)), -EACCES);
	assert_int_equal(judge(L"O:BAD:(A;;FA;;;BA)(A;;WD;;;BU)", who, sizeof(who)), -EACCES);
	assert_int_equal(judge(L"O:BAD:(A;;FA;;;BA)(A;;GA;;;AU)", who, sizeof(who)), -EACCES);
}

static void test_sd_owned_by_another_account_is_refused(void **state)
{
	char who[300] = "";

	assert_int_equal(judge(L"O:BUD:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)", who, sizeof(who)),
			 -EPERM);
	assert_non_null(strstr(who, "it is owned by"));
	assert_non_null(strstr(who, "Users"));
}

/* A NULL DACL (not an empty one, which lets nobody in) gives everyone every right. */
static void test_sd_with_a_null_dacl_is_refused(void **state)
{
	SECURITY_DESCRIPTOR sd;
	char buf[SECURITY_MAX_SID_SIZE], who[300] = "";
	DWORD n = sizeof(buf);

	assert_true(InitializeSecurityDescriptor(&sd, SECURITY_DESCRIPTOR_REVISION));
	assert_true(CreateWellKnownSid(WinBuiltinAdministratorsSid, NULL, buf, &n));
	assert_true(SetSecurityDescriptorOwner(&sd, buf, FALSE));
	assert_true(SetSecurityDescriptorDacl(&sd, TRUE, NULL, FALSE));
	assert_int_equal(acl_sd_admin_only(&sd, who, sizeof(who)), -EACCES);
	assert_non_null(strstr(who, "Everyone"));
}

/* The account the daemon runs as (SYSTEM for the service) may own and change it. */
static void test_sd_of_this_process_s_user_passes(void **state)
{
	wchar_t sddl[400], *sid = NULL;
	char buf[512], who[300] = "";
	TOKEN_USER *tu = (TOKEN_USER *)buf;
	HANDLE tok;
	DWORD n;

	assert_true(OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok));
	assert_true(GetTokenInformation(tok, TokenUser, tu, sizeof(buf), &n));
	CloseHandle(tok);
	assert_true(ConvertSidToStringSidW(tu->User.Sid, &sid));
	_snwprintf(sddl, 400, L"O:%lsD:(A;;FA;;;%ls)(A;;FA;;;BA)", sid, sid);
	LocalFree(sid);
	assert_int_equal(judge(sddl, who, sizeof(who)), 0);
}

/* ---- the file system ---- */

/* A fresh path under %TEMP% for each test; not made yet. */
static int setup(void **state)
{
	char tmp[MAX_PATH];
	static int n;

	GetTempPathA(sizeof(tmp), tmp);
	snprintf(root, sizeof(root), "%svb-acl-%lu-%d", tmp, GetCurrentProcessId(), n++);
	return 0;
}

/* Removes the test's folder and the files in it. */
static int teardown(void **state)
{
	char pat[MAX_PATH * 2], sub[MAX_PATH * 2];
	WIN32_FIND_DATAA fd;
	HANDLE h;

	snprintf(pat, sizeof(pat), "%s\\*", root);
	h = FindFirstFileA(pat, &fd);
	if (h != INVALID_HANDLE_VALUE) {
		do {
			snprintf(sub, sizeof(sub), "%s\\%s", root, fd.cFileName);
			if (!(fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY))
				DeleteFileA(sub);
		} while (FindNextFileA(h, &fd));
		FindClose(h);
	}
	RemoveDirectoryA(root);
	DeleteFileA(root);
	return 0;
}

/*
 * Gives path the DACL of sddl. Set after the creation, not passed to it:
 * Wine turns a DACL into a Unix mode, and at creation the umask takes the
 * others' write bit away again.
 */
static void set_dacl(const char *path, const wchar_t *sddl)
{
	PSECURITY_DESCRIPTOR sd = NULL;
	BOOL present, dflt;
	PACL dacl = NULL;

	assert_true(
	    ConvertStringSecurityDescriptorToSecurityDescriptorW(sddl, SDDL_REVISION_1, &sd, NULL));
	assert_true(GetSecurityDescriptorDacl(sd, &present, &dacl, &dflt));
	assert_int_equal(SetNamedSecurityInfoA((char *)path, SE_FILE_OBJECT,
					       DACL_SECURITY_INFORMATION, NULL, NULL, dacl, NULL),
			 ERROR_SUCCESS);
	LocalFree(sd);
}

/* Makes folder path with the DACL of sddl. */
static void make_dir(const char *path, const wchar_t *sddl)
{
	assert_true(CreateDirectoryA(path, NULL));
	set_dacl(path, sddl);
}

/* Makes file path (empty), with the DACL of sddl or, NULL, the inherited one. */
static void make_file(const char *path, const wchar_t *sddl)
{
	HANDLE h =
	    CreateFileA(path, GENERIC_WRITE, 0, NULL, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, NULL);

	assert_true(h != INVALID_HANDLE_VALUE);
	CloseHandle(h);
	if (sddl)
		set_dacl(path, sddl);
}

static void test_a_folder_everyone_may_write_to_is_refused(void **state)
{
	char who[300] = "";

	make_dir(root, L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;WD)");
	assert_int_equal(acl_admin_only(root, who, sizeof(who)), -EACCES);
	assert_non_null(strstr(who, "Everyone may write to it"));
}

static void test_a_missing_folder_is_enoent(void **state)
{
	char who[300] = "";

	assert_int_equal(acl_admin_only(root, who, sizeof(who)), -ENOENT);
}

/*
 * The DACL read back: protected, SYSTEM and Administrators with full control,
 * inherited by all, owner Administrators. Wine keeps none of it but what the
 * Unix mode says (see the top), which acl_admin_only() then accepts.
 */
static void assert_restricted(const char *path)
{
	SECURITY_DESCRIPTOR_CONTROL ctl;
	PSECURITY_DESCRIPTOR sd = NULL;
	PSID owner = NULL;
	PACL dacl = NULL;
	DWORD rev;

	if (under_wine())
		return;
	assert_int_equal(
	    GetNamedSecurityInfoA(path, SE_FILE_OBJECT,
				  DACL_SECURITY_INFORMATION | OWNER_SECURITY_INFORMATION, &owner,
				  NULL, &dacl, NULL, &sd),
	    ERROR_SUCCESS);
	assert_true(GetSecurityDescriptorControl(sd, &ctl, &rev));
	assert_true(ctl & SE_DACL_PROTECTED);
	assert_true(IsWellKnownSid(owner, WinBuiltinAdministratorsSid));
	assert_non_null(dacl);
	assert_int_equal(dacl->AceCount, 2);
	for (DWORD i = 0; i < dacl->AceCount; i++) {
		ACCESS_ALLOWED_ACE *ace;
		PSID sid;

		assert_true(GetAce(dacl, i, (void **)&ace));
		sid = (PSID)&ace->SidStart;
		assert_int_equal(ace->Header.AceType, ACCESS_ALLOWED_ACE_TYPE);
		assert_true(IsWellKnownSid(sid, WinLocalSystemSid) ||
			    IsWellKnownSid(sid, WinBuiltinAdministratorsSid));
		assert_int_equal(ace->Mask & FILE_ALL_ACCESS, FILE_ALL_ACCESS);
		assert_int_equal(ace->Header.AceFlags &
				     (OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE),
				 OBJECT_INHERIT_ACE | CONTAINER_INHERIT_ACE);
	}
	LocalFree(sd);
}

static void test_restricting_a_missing_folder_makes_it_admin_only(void **state)
{
	char who[300] = "";
	bool created = false;

	assert_int_equal(acl_dir_restrict(root, true, &created), 0);
	assert_true(created);
	assert_restricted(root);
	assert_int_equal(acl_admin_only(root, who, sizeof(who)), 0);
}

/* What `vmbusifyd install` does to a folder someone made before it: reset, then it passes.
 */
static void test_restricting_an_open_folder_resets_its_dacl_and_owner(void **state)
{
	char who[300] = "";
	bool created = true;

	make_dir(root, L"D:(A;OICI;FA;;;WD)(A;OICI;FA;;;BU)");
	assert_int_not_equal(acl_admin_only(root, who, sizeof(who)), 0);
	assert_int_equal(acl_dir_restrict(root, true, &created), 0);
	assert_false(created);
	assert_restricted(root);
	assert_int_equal(acl_admin_only(root, who, sizeof(who)), 0);
}

static void test_a_file_made_in_the_restricted_folder_passes(void **state)
{
	char file[MAX_PATH + 32], who[300] = "";
	bool created;

	assert_int_equal(acl_dir_restrict(root, true, &created), 0);
	snprintf(file, sizeof(file), "%s\\vmbusifyd.conf", root);
	make_file(file, NULL);
	assert_int_equal(acl_admin_only(file, who, sizeof(who)), 0);
}

/* A file planted before the restriction keeps its own entry: the check still refuses it. */
static void test_a_file_with_its_own_entry_for_everyone_is_refused(void **state)
{
	char file[MAX_PATH + 32], who[300] = "";
	bool created;

	assert_int_equal(acl_dir_restrict(root, true, &created), 0);
	snprintf(file, sizeof(file), "%s\\vmbusifyd.conf", root);
	make_file(file, L"D:(A;;FA;;;SY)(A;;FA;;;BA)(A;;FRFW;;;WD)");
	assert_int_equal(acl_admin_only(file, who, sizeof(who)), -EACCES);
	assert_non_null(strstr(who, "Everyone may write to it"));
}

/* What a start does with a folder it finds: it judges it, never resets it. */
static void test_without_reset_an_existing_folder_is_left_as_it_is(void **state)
{
	char who[300] = "";
	bool created = true;

	make_dir(root, L"D:P(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1301bf;;;WD)");
	assert_int_equal(acl_dir_restrict(root, false, &created), 0);
	assert_false(created);
	assert_int_equal(acl_admin_only(root, who, sizeof(who)), -EACCES);
}

static void test_restricting_a_file_in_place_of_the_folder_fails(void **state)
{
	bool created = true;

	make_file(root, NULL);
	assert_int_equal(acl_dir_restrict(root, true, &created), -ENOTDIR);
	assert_false(created);
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sd_of_system_and_administrators_only_passes),
	    cmocka_unit_test(test_sd_that_others_may_only_read_passes),
	    cmocka_unit_test(test_sd_where_users_may_add_files_is_refused),
	    cmocka_unit_test(test_sd_that_lets_users_delete_or_rewrite_the_dacl_is_refused),
	    cmocka_unit_test(test_sd_owned_by_another_account_is_refused),
	    cmocka_unit_test(test_sd_with_a_null_dacl_is_refused),
	    cmocka_unit_test(test_sd_of_this_process_s_user_passes),
	    T(test_a_folder_everyone_may_write_to_is_refused),
	    T(test_a_missing_folder_is_enoent),
	    T(test_restricting_a_missing_folder_makes_it_admin_only),
	    T(test_restricting_an_open_folder_resets_its_dacl_and_owner),
	    T(test_a_file_made_in_the_restricted_folder_passes),
	    T(test_a_file_with_its_own_entry_for_everyone_is_refused),
	    T(test_without_reset_an_existing_folder_is_left_as_it_is),
	    T(test_restricting_a_file_in_place_of_the_folder_fails),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
