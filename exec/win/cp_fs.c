/* cp's file system calls on Windows (handle-relative NtCreateFile): exec/cp_fs.c's twin. */
#include <winsock2.h>
#include <windows.h>
#include <winioctl.h>
#include <winternl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "exec/cp_fs.h"
#include "exec/cp_msg.h"
#include "platform/win/err.h"

/*
 * Paths arrive in UTF-8 with '/' or '\' and go to the wide (UTF-16) calls.
 * A descriptor here is a HANDLE in an int: Windows keeps handle values in 32
 * bits so that 32- and 64-bit processes can share them, and sign extension
 * brings the value back. Files are opened for synchronous I/O, which the
 * loop carries out on its blocking-thread shim.
 *
 * The receiving side mirrors the POSIX *at() calls: every entry under the
 * target is opened or created with NtCreateFile relative to its directory's
 * handle (OBJECT_ATTRIBUTES.RootDirectory), one component at a time and with
 * FILE_OPEN_REPARSE_POINT, so that a symbolic link or junction is never
 * followed on the way down. A received file is written under a temporary
 * name and renamed over its target through its own handle (FileRenameInfo
 * relative to the directory), or deleted through it (FileDispositionInfo).
 *
 * Windows has no permission bits: a directory reads as 0755, a file as 0644
 * (0444 when read-only), and setting a mode only sets or clears read-only.
 */

#define CP_TMP_TRIES	16
#define CP_WPATH_MAX	32768
#define CP_EPOCH_DIFF	116444736000000000LL	/* 1601-01-01 to 1970-01-01 in 100 ns */
#define CP_STATUS_EXIST ((NTSTATUS)0xC0000035L) /* STATUS_OBJECT_NAME_COLLISION */
/* FILE_INFORMATION_CLASS values that mingw-w64's winternl.h leaves out. */
#define CP_FILE_RENAME_INFORMATION	10
#define CP_FILE_DISPOSITION_INFORMATION 13

#ifndef FILE_DIRECTORY_FILE
#define FILE_DIRECTORY_FILE	     0x00000001
#define FILE_NON_DIRECTORY_FILE	     0x00000040
#define FILE_SYNCHRONOUS_IO_NONALERT 0x00000020
#endif
#ifndef FILE_OPEN
#define FILE_OPEN   0x00000001
#define FILE_CREATE 0x00000002
#endif
#ifndef FILE_OPEN_REPARSE_POINT
#define FILE_OPEN_REPARSE_POINT 0x00200000
#endif
#ifndef FILE_OPEN_FOR_BACKUP_INTENT
#define FILE_OPEN_FOR_BACKUP_INTENT 0x00004000
#endif
#ifndef SYMBOLIC_LINK_FLAG_ALLOW_UNPRIVILEGED_CREATE
#define SYMBOLIC_LINK_FLAG_ALLOW_UNPRIVILEGED_CREATE 0x2
#endif

/* The symbolic link form of REPARSE_DATA_BUFFER (ntifs.h, which mingw-w64 keeps in its DDK). */
struct cp_reparse_link {
	ULONG tag;
	USHORT data_len, reserved;
	USHORT subst_off, subst_len, print_off, print_len;
	ULONG flags; /* 1: relative */
	WCHAR path[1];
};
#define CP_REPARSE_MAX (16 * 1024)

static HANDLE cp_fs_h(int fd)
{
	return (HANDLE)(intptr_t)fd;
}

/* A handle as the int cp passes around; -EMFILE for one that would not survive the trip. */
static int cp_fs_fd(HANDLE h, int *fd)
{
	intptr_t v = (intptr_t)h;

	if ((intptr_t)(int)v != v || (int)v < 0) {
		CloseHandle(h);
		*fd = -1;
		return -EMFILE;
	}
	*fd = (int)v;
	return 0;
}

/* UTF-8 to a new UTF-16 string with '\' separators; the caller frees *out. */
static int cp_fs_wide(const char *s, WCHAR **out)
{
	int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);

	*out = NULL;
	if (n <= 0 || n > CP_WPATH_MAX)
		return n <= 0 ? -EILSEQ : -ENAMETOOLONG;
	*out = malloc((size_t)n * sizeof(WCHAR));
	if (!*out)
		return -ENOMEM;
	MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, *out, n);
	for (WCHAR *p = *out; *p; p++)
		if (*p == L'/')
			*p = L'\\';
	return 0;
}

/* UTF-16 (len characters, or up to its NUL when len < 0) to UTF-8 in buf; returns its length. */
static int cp_fs_narrow(const WCHAR *w, int len, char *buf, size_t cap)
{
	int n = WideCharToMultiByte(CP_UTF8, 0, w, len, buf, (int)cap - 1, NULL, NULL);

	if (n <= 0)
		return err_win_last() == -ENOBUFS ? -ENAMETOOLONG : -EILSEQ;
	if (len < 0)
		n--; /* the NUL was counted */
	buf[n] = '\0';
	return n;
}

static int64_t cp_fs_ft_ns(const FILETIME *ft)
{
	int64_t t = (int64_t)(((uint64_t)ft->dwHighDateTime << 32) | ft->dwLowDateTime);

	return (t - CP_EPOCH_DIFF) * 100;
}

static LARGE_INTEGER cp_fs_ns_li(int64_t ns)
{
	LARGE_INTEGER li;

	li.QuadPart = ns / 100 + CP_EPOCH_DIFF;
	return li;
}

/* Reads type, size and times of an open handle; a reparse point that is a symbolic link is a link.
 */
static int cp_fs_fill(HANDLE h, struct cp_stat *st)
{
	BY_HANDLE_FILE_INFORMATION bi;
	FILE_ATTRIBUTE_TAG_INFO tag = {0};
	bool dir;

	if (!GetFileInformationByHandle(h, &bi))
		return err_win_last();
	dir = bi.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY;
	memset(st, 0, sizeof(*st));
	if (bi.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT) {
		if (!GetFileInformationByHandleEx(h, FileAttributeTagInfo, &tag, sizeof(tag)))
			return err_win_last();
		/* A junction or another kind of reparse point is neither: it is skipped. */
		st->type = tag.ReparseTag == IO_REPARSE_TAG_SYMLINK ? CP_T_LINK : 0;
	} else {
		st->type = dir ? CP_T_DIR : GetFileType(h) == FILE_TYPE_DISK ? CP_T_FILE : 0;
	}
	st->mode = dir ? 0755 : (bi.dwFileAttributes & FILE_ATTRIBUTE_READONLY) ? 0444 : 0644;
	if (st->type == CP_T_FILE)
		st->size = ((uint64_t)bi.nFileSizeHigh << 32) | bi.nFileSizeLow;
	st->mtime_ns = cp_fs_ft_ns(&bi.ftLastWriteTime);
	st->atime_ns = cp_fs_ft_ns(&bi.ftLastAccessTime);
	return 0;
}

/* Opens path by name for access; follow decides whether a final symbolic link is followed. */
static int cp_fs_open_path(const char *path, DWORD access, bool follow, HANDLE *h)
{
	WCHAR *w;
	int ret = cp_fs_wide(path, &w);

	*h = INVALID_HANDLE_VALUE;
	if (ret)
		return ret;
	*h = CreateFileW(
	    w, access, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, OPEN_EXISTING,
	    FILE_FLAG_BACKUP_SEMANTICS | (follow ? 0 : FILE_FLAG_OPEN_REPARSE_POINT), NULL);
	if (*h == INVALID_HANDLE_VALUE)
		ret = err_win_last();
	free(w);
	return ret;
}

int cp_fs_stat(const char *path, bool follow, struct cp_stat *st)
{
	HANDLE h;
	int ret = cp_fs_open_path(path, FILE_READ_ATTRIBUTES, follow, &h);

	if (ret)
		return ret;
	ret = cp_fs_fill(h, st);
	CloseHandle(h);
	return ret;
}

/* The target of an open symbolic link: its print name, with '/' separators. */
static int cp_fs_link_target(HANDLE h, char *buf, size_t cap)
{
	struct cp_reparse_link *rl = malloc(CP_REPARSE_MAX);
	DWORD got;
	int ret = -ENOMEM;

	if (!rl)
		return ret;
	if (!DeviceIoControl(h, FSCTL_GET_REPARSE_POINT, NULL, 0, rl, CP_REPARSE_MAX, &got, NULL)) {
		ret = err_win_last();
		goto out;
	}
	ret = -EINVAL;
	if (got < offsetof(struct cp_reparse_link, path) || rl->tag != IO_REPARSE_TAG_SYMLINK ||
	    (size_t)rl->print_off + rl->print_len > got - offsetof(struct cp_reparse_link, path))
		goto out;
	ret = cp_fs_narrow(rl->path + rl->print_off / sizeof(WCHAR),
			   rl->print_len / (int)sizeof(WCHAR), buf, cap);
	for (int i = 0; i < ret; i++)
		if (buf[i] == '\\')
			buf[i] = '/';
out:
	free(rl);
	return ret;
}

int cp_fs_readlink(const char *path, char *buf, size_t cap)
{
	HANDLE h;
	int ret = cp_fs_open_path(path, FILE_READ_ATTRIBUTES, false, &h);

	if (ret)
		return ret;
	ret = cp_fs_link_target(h, buf, cap);
	CloseHandle(h);
	return ret;
}

static int cp_fs_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void cp_fs_list_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

/* Appends the UTF-8 form of a wide name to the growing array; returns 0 or a negative errno. */
static int cp_fs_list_add(char ***names, size_t *n, size_t *cap, const WCHAR *name)
{
	char buf[1024];
	int len = cp_fs_narrow(name, -1, buf, sizeof(buf));

	if (len < 0)
		return len;
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 16;
		char **nn = realloc(*names, ncap * sizeof(*nn));

		if (!nn)
			return -ENOMEM;
		*names = nn;
		*cap = ncap;
	}
	(*names)[*n] = strdup(buf);
	if (!(*names)[*n])
		return -ENOMEM;
	(*n)++;
	return 0;
}

/* Reads every name of the open search into the array; returns 0 or a negative errno. */
static int cp_fs_list_fill(HANDLE find, WIN32_FIND_DATAW *fd, char ***names, size_t *n)
{
	size_t cap = 0;
	int ret = 0;

	do {
		if (wcscmp(fd->cFileName, L".") && wcscmp(fd->cFileName, L".."))
			ret = cp_fs_list_add(names, n, &cap, fd->cFileName);
	} while (!ret && FindNextFileW(find, fd));
	if (!ret && GetLastError() != ERROR_NO_MORE_FILES)
		ret = err_win_last();
	return ret;
}

int cp_fs_list(const char *path, char ***names, size_t *n)
{
	WIN32_FIND_DATAW fd;
	char *pattern = malloc(strlen(path) + 3);
	WCHAR *w = NULL;
	HANDLE find;
	int ret = pattern ? 0 : -ENOMEM;

	*names = NULL;
	*n = 0;
	if (!ret) {
		sprintf(pattern, "%s\\*", path);
		ret = cp_fs_wide(pattern, &w);
	}
	free(pattern);
	if (ret)
		return ret;
	find = FindFirstFileExW(w, FindExInfoBasic, &fd, FindExSearchNameMatch, NULL, 0);
	free(w);
	if (find == INVALID_HANDLE_VALUE)
		return GetLastError() == ERROR_FILE_NOT_FOUND ? 0 : err_win_last();
	ret = cp_fs_list_fill(find, &fd, names, n);
	FindClose(find);
	if (ret) {
		cp_fs_list_free(*names, *n);
		*names = NULL;
		*n = 0;
		return ret;
	}
	if (*n)
		qsort(*names, *n, sizeof(**names), cp_fs_cmp);
	return 0;
}

/* Opens path for reading, refusing anything but a regular file (and a link unless follow). */
static int cp_fs_open_reg(const char *path, bool follow, int *fd)
{
	struct cp_stat st;
	HANDLE h;
	int ret = cp_fs_open_path(path, GENERIC_READ, follow, &h);

	*fd = -1;
	if (ret)
		return ret;
	ret = cp_fs_fill(h, &st);
	if (!ret && st.type != CP_T_FILE)
		ret = st.type == CP_T_LINK ? -ELOOP : -EOPNOTSUPP;
	if (ret) {
		CloseHandle(h);
		return ret;
	}
	return cp_fs_fd(h, fd);
}

int cp_fs_open_read(const char *path, int *fd)
{
	return cp_fs_open_reg(path, false, fd);
}

int cp_fs_open_read_named(const char *path, int *fd)
{
	return cp_fs_open_reg(path, true, fd);
}

void cp_fs_close(int fd)
{
	if (fd >= 0)
		CloseHandle(cp_fs_h(fd));
}

int64_t cp_fs_now_ns(void)
{
	FILETIME ft;

	GetSystemTimePreciseAsFileTime(&ft);
	return cp_fs_ft_ns(&ft);
}

/* ---- the receiving side ---- */

int cp_fs_open_dir(const char *path, int *fd)
{
	struct cp_stat st;
	HANDLE h;
	int ret = cp_fs_open_path(path, FILE_LIST_DIRECTORY | FILE_TRAVERSE | FILE_READ_ATTRIBUTES,
				  true, &h);

	*fd = -1;
	if (ret)
		return ret;
	ret = cp_fs_fill(h, &st);
	if (!ret && st.type != CP_T_DIR)
		ret = -ENOTDIR;
	if (ret) {
		CloseHandle(h);
		return ret;
	}
	return cp_fs_fd(h, fd);
}

/*
 * cp_fs_nt_open() - NtCreateFile of name relative to directory dir, never
 * through a reparse point. Return: 0 with *h, or the NTSTATUS as a negative
 * errno; *status keeps the NTSTATUS (for "it exists").
 */
static int cp_fs_nt_open(int dir, const char *name, ACCESS_MASK access, ULONG disposition,
			 ULONG options, HANDLE *h, NTSTATUS *status)
{
	OBJECT_ATTRIBUTES oa;
	UNICODE_STRING us;
	IO_STATUS_BLOCK iosb;
	WCHAR *w;
	int ret = cp_fs_wide(name, &w);

	*h = INVALID_HANDLE_VALUE;
	*status = 0;
	if (ret)
		return ret;
	if (wcslen(w) * sizeof(WCHAR) > 0xfffe) {
		free(w);
		return -ENAMETOOLONG;
	}
	us.Buffer = w;
	us.Length = us.MaximumLength = (USHORT)(wcslen(w) * sizeof(WCHAR));
	InitializeObjectAttributes(&oa, &us, OBJ_CASE_INSENSITIVE, cp_fs_h(dir), NULL);
	*status = NtCreateFile(h, access | SYNCHRONIZE, &oa, &iosb, NULL, FILE_ATTRIBUTE_NORMAL,
			       FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, disposition,
			       options | FILE_OPEN_REPARSE_POINT | FILE_SYNCHRONOUS_IO_NONALERT |
				   FILE_OPEN_FOR_BACKUP_INTENT,
			       NULL, 0);
	free(w);
	if (*status < 0) {
		*h = INVALID_HANDLE_VALUE;
		return err_from_ntstatus(*status);
	}
	return 0;
}

/* Opens name under dir and says what it is (no link followed); the caller closes *h. */
static int cp_fs_sub_stat(int dir, const char *name, ACCESS_MASK access, HANDLE *h,
			  struct cp_stat *st)
{
	NTSTATUS status;
	int ret = cp_fs_nt_open(dir, name, access | FILE_READ_ATTRIBUTES, FILE_OPEN, 0, h, &status);

	if (ret)
		return ret;
	ret = cp_fs_fill(*h, st);
	if (ret) {
		CloseHandle(*h);
		*h = INVALID_HANDLE_VALUE;
	}
	return ret;
}

int cp_fs_open_sub(int dir, const char *name, int *fd)
{
	struct cp_stat st;
	HANDLE h;
	int ret = cp_fs_sub_stat(
	    dir, name, FILE_LIST_DIRECTORY | FILE_TRAVERSE | FILE_WRITE_ATTRIBUTES, &h, &st);

	*fd = -1;
	if (ret)
		return ret;
	if (st.type != CP_T_DIR) {
		CloseHandle(h);
		return st.type == CP_T_LINK ? -ELOOP : -ENOTDIR;
	}
	return cp_fs_fd(h, fd);
}

int cp_fs_is_dir(const char *path, bool *is_dir)
{
	WCHAR *w;
	DWORD a;
	int ret = cp_fs_wide(path, &w);

	if (ret)
		return ret;
	a = GetFileAttributesW(w);
	ret = a == INVALID_FILE_ATTRIBUTES ? err_win_last() : 0;
	free(w);
	if (!ret)
		*is_dir = a & FILE_ATTRIBUTE_DIRECTORY;
	return ret;
}

int cp_fs_mkdir(int dir, const char *name, bool *created)
{
	struct cp_stat st;
	NTSTATUS status;
	HANDLE h;
	int ret = cp_fs_nt_open(dir, name, FILE_LIST_DIRECTORY, FILE_CREATE, FILE_DIRECTORY_FILE,
				&h, &status);

	*created = !ret;
	if (!ret) {
		CloseHandle(h);
		return 0;
	}
	if (status != CP_STATUS_EXIST)
		return ret;
	ret = cp_fs_sub_stat(dir, name, 0, &h, &st);
	if (ret)
		return ret;
	CloseHandle(h);
	return st.type == CP_T_DIR ? 0 : -ENOTDIR;
}

int cp_fs_set(int fd, uint32_t mode, const struct cp_times *times)
{
	FILE_BASIC_INFO bi = {0};
	BY_HANDLE_FILE_INFORMATION cur;
	HANDLE h = cp_fs_h(fd);

	if (!GetFileInformationByHandle(h, &cur))
		return err_win_last();
	bi.FileAttributes = cur.dwFileAttributes;
	if (!(cur.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)) {
		bi.FileAttributes &= ~(DWORD)FILE_ATTRIBUTE_READONLY;
		if (!(mode & 0222))
			bi.FileAttributes |= FILE_ATTRIBUTE_READONLY;
		if (!bi.FileAttributes)
			bi.FileAttributes = FILE_ATTRIBUTE_NORMAL;
	}
	if (times) {
		bi.LastAccessTime = cp_fs_ns_li(times->atime_ns);
		bi.LastWriteTime = cp_fs_ns_li(times->mtime_ns);
	}
	if (!SetFileInformationByHandle(h, FileBasicInfo, &bi, sizeof(bi)))
		return err_win_last();
	return 0;
}

/* Writes ".<name>.vmbusify-XXXXXX" into out (256 bytes), the suffix from a counter and the clock.
 */
static void cp_fs_tmp_name(const char *name, char out[256])
{
	static const char abc[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	static volatile LONG counter;
	LARGE_INTEGER qpc;
	uint64_t v;
	char sfx[7];

	QueryPerformanceCounter(&qpc);
	v = (uint64_t)qpc.QuadPart ^ ((uint64_t)GetCurrentProcessId() << 24) ^
	    ((uint64_t)InterlockedIncrement(&counter) * 0x9e3779b97f4a7c15ull);
	for (size_t i = 0; i < 6; i++, v /= sizeof(abc) - 1)
		sfx[i] = abc[v % (sizeof(abc) - 1)];
	sfx[6] = '\0';
	snprintf(out, 256, ".%.200s.vmbusify-%s", name, sfx);
}

/*
 * Renames the open file h to name in directory dir, replacing what is there.
 * NtSetInformationFile rather than SetFileInformationByHandle: the layout is
 * the same, and Wine's kernelbase refuses the latter for renames.
 */
static int cp_fs_rename(HANDLE h, int dir, const char *name)
{
	FILE_RENAME_INFO *ri;
	IO_STATUS_BLOCK iosb;
	WCHAR *w;
	size_t wlen;
	int ret = cp_fs_wide(name, &w);

	if (ret)
		return ret;
	wlen = wcslen(w) * sizeof(WCHAR);
	ri = calloc(1, sizeof(*ri) + wlen);
	if (!ri) {
		free(w);
		return -ENOMEM;
	}
	ri->ReplaceIfExists = TRUE;
	ri->RootDirectory = cp_fs_h(dir);
	ri->FileNameLength = (DWORD)wlen;
	memcpy(ri->FileName, w, wlen);
	ret = err_from_ntstatus(
	    NtSetInformationFile(h, &iosb, ri, (ULONG)(sizeof(*ri) + wlen),
				 (FILE_INFORMATION_CLASS)CP_FILE_RENAME_INFORMATION));
	free(ri);
	free(w);
	return ret;
}

/* Deletes the open file h (it goes when its last handle is closed). */
static void cp_fs_delete(HANDLE h)
{
	FILE_DISPOSITION_INFO di = {.DeleteFile = TRUE};
	IO_STATUS_BLOCK iosb;

	NtSetInformationFile(h, &iosb, &di, sizeof(di),
			     (FILE_INFORMATION_CLASS)CP_FILE_DISPOSITION_INFORMATION);
}

/* The full path of directory dir plus "\name", for the calls that take no handle. */
static int cp_fs_dir_path(int dir, const char *name, WCHAR **out)
{
	WCHAR *base = malloc(CP_WPATH_MAX * sizeof(WCHAR)), *w = NULL;
	DWORD n;
	int ret = base ? cp_fs_wide(name, &w) : -ENOMEM;

	*out = NULL;
	if (ret)
		goto out;
	n = GetFinalPathNameByHandleW(cp_fs_h(dir), base, CP_WPATH_MAX, FILE_NAME_NORMALIZED);
	ret = !n ? err_win_last() : n + wcslen(w) + 2 >= CP_WPATH_MAX ? -ENAMETOOLONG : 0;
	if (ret)
		goto out;
	base[n] = L'\\';
	wcscpy(base + n + 1, w);
	*out = base;
	base = NULL;
out:
	free(base);
	free(w);
	return ret;
}

/* Creates the symbolic link tmp -> target under dir; Windows needs the privilege or developer mode.
 */
static int cp_fs_symlink_tmp(int dir, const char *tmp, const char *target)
{
	WCHAR *path = NULL, *wt = NULL;
	int ret = cp_fs_dir_path(dir, tmp, &path);

	if (!ret)
		ret = cp_fs_wide(target, &wt);
	if (!ret && !CreateSymbolicLinkW(path, wt, SYMBOLIC_LINK_FLAG_ALLOW_UNPRIVILEGED_CREATE))
		ret = err_win_last();
	free(path);
	free(wt);
	return ret;
}

int cp_fs_symlink(int dir, const char *name, const char *target, const struct cp_times *times)
{
	struct cp_stat st;
	char tmp[256];
	HANDLE h;
	int ret = -EEXIST;

	for (int i = 0; i < CP_TMP_TRIES && ret == -EEXIST; i++) {
		cp_fs_tmp_name(name, tmp);
		ret = cp_fs_symlink_tmp(dir, tmp, target);
	}
	if (ret)
		return ret;
	ret = cp_fs_sub_stat(dir, tmp, DELETE | FILE_WRITE_ATTRIBUTES, &h, &st);
	if (ret)
		return ret;
	if (times)
		cp_fs_set((int)(intptr_t)h, 0777, times); /* best effort, as cp -p */
	ret = cp_fs_rename(h, dir, name);
	if (ret)
		cp_fs_delete(h);
	CloseHandle(h);
	return ret;
}

int cp_fs_tmp_open(int dir, const char *name, struct cp_tmp *t)
{
	NTSTATUS status;
	HANDLE h;
	int ret = -EEXIST;

	memset(t, 0, sizeof(*t));
	t->fd = -1;
	for (int i = 0; i < CP_TMP_TRIES && ret == -EEXIST; i++) {
		cp_fs_tmp_name(name, t->name);
		ret = cp_fs_nt_open(dir, t->name,
				    GENERIC_WRITE | DELETE | FILE_READ_ATTRIBUTES |
					FILE_WRITE_ATTRIBUTES,
				    FILE_CREATE, FILE_NON_DIRECTORY_FILE, &h, &status);
	}
	if (ret)
		return ret;
	t->named = true;
	ret = cp_fs_fd(h, &t->fd);
	if (ret)
		t->named = false; /* closed by cp_fs_fd: the name stays, as after a crash */
	return ret;
}

int cp_fs_tmp_commit(int dir, const char *name, struct cp_tmp *t)
{
	HANDLE h = cp_fs_h(t->fd);
	int ret = cp_fs_rename(h, dir, name);

	if (ret)
		cp_fs_delete(h);
	CloseHandle(h);
	t->fd = -1;
	t->named = false;
	return ret;
}

void cp_fs_tmp_discard(int dir, struct cp_tmp *t)
{
	if (t->fd >= 0) {
		cp_fs_delete(cp_fs_h(t->fd));
		CloseHandle(cp_fs_h(t->fd));
	}
	t->fd = -1;
	t->named = false;
}
