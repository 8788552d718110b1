/* Tests of cp's file system on Windows (exec/win/cp_fs.c), under Wine: walk, read, receive, commit.
 */
#include <windows.h>
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
#include "exec/cp_cli.h"
#include "exec/cp_fs.h"
#include "exec/cp_msg.h"

static char root[MAX_PATH];

/* A fresh directory under %TEMP% for each test. */
static int setup(void **state)
{
	char tmp[MAX_PATH];
	static int n;

	GetTempPathA(sizeof(tmp), tmp);
	snprintf(root, sizeof(root), "%svb-cpfs-%lu-%d", tmp, GetCurrentProcessId(), n++);
	return CreateDirectoryA(root, NULL) ? 0 : -1;
}

/* Removes the test's directory and what is in it (two levels are enough here). */
static void rm_tree(const char *dir)
{
	char pat[MAX_PATH * 2], sub[MAX_PATH * 2];
	WIN32_FIND_DATAA fd;
	HANDLE h;

	snprintf(pat, sizeof(pat), "%s\\*", dir);
	h = FindFirstFileA(pat, &fd);
	if (h != INVALID_HANDLE_VALUE) {
		do {
			if (!strcmp(fd.cFileName, ".") || !strcmp(fd.cFileName, ".."))
				continue;
			snprintf(sub, sizeof(sub), "%s\\%s", dir, fd.cFileName);
			SetFileAttributesA(sub, FILE_ATTRIBUTE_NORMAL);
			if (fd.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY)
				rm_tree(sub);
			else
				DeleteFileA(sub);
		} while (FindNextFileA(h, &fd));
		FindClose(h);
	}
	RemoveDirectoryA(dir);
}

static int teardown(void **state)
{
	rm_tree(root);
	return 0;
}

static void put_file(const char *name, const char *text)
{
	char path[MAX_PATH * 2];
	FILE *f;

	snprintf(path, sizeof(path), "%s\\%s", root, name);
	f = fopen(path, "wb");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void path_of(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s\\%s", root, name);
}

static void test_stat_tells_files_and_directories_apart(void **state)
{
	char p[MAX_PATH * 2];
	struct cp_stat st;

	put_file("f.txt", "hello");
	path_of(p, sizeof(p), "f.txt");
	assert_int_equal(cp_fs_stat(p, false, &st), 0);
	assert_int_equal(st.type, CP_T_FILE);
	assert_int_equal(st.size, 5);
	assert_int_equal(st.mode, 0644);
	assert_true(st.mtime_ns > 1500000000ll * 1000000000ll);
	assert_int_equal(cp_fs_stat(root, true, &st), 0);
	assert_int_equal(st.type, CP_T_DIR);
	path_of(p, sizeof(p), "missing");
	assert_int_equal(cp_fs_stat(p, false, &st), -ENOENT);
}

static void test_list_is_sorted_without_dot_entries(void **state)
{
	char **names;
	size_t n;

	put_file("b", "");
	put_file("a", "");
	put_file("c", "");
	assert_int_equal(cp_fs_list(root, &names, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(names[0], "a");
	assert_string_equal(names[1], "b");
	assert_string_equal(names[2], "c");
	cp_fs_list_free(names, n);
}

static void test_open_read_refuses_a_directory(void **state)
{
	int fd;

	assert_int_equal(cp_fs_open_read(root, &fd), -EOPNOTSUPP);
	assert_int_equal(fd, -1);
}

static void test_open_read_gives_a_readable_handle(void **state)
{
	char p[MAX_PATH * 2], buf[16] = {0};
	DWORD got = 0;
	int fd;

	put_file("r.txt", "content");
	path_of(p, sizeof(p), "r.txt");
	assert_int_equal(cp_fs_open_read(p, &fd), 0);
	assert_true(fd >= 0);
	assert_true(ReadFile((HANDLE)(intptr_t)fd, buf, sizeof(buf), &got, NULL));
	assert_int_equal(got, 7);
	assert_string_equal(buf, "content");
	cp_fs_close(fd);
}

static void test_mkdir_creates_then_finds_existing(void **state)
{
	bool created;
	int dir, sub;

	assert_int_equal(cp_fs_open_dir(root, &dir), 0);
	assert_int_equal(cp_fs_mkdir(dir, "d", &created), 0);
	assert_true(created);
	assert_int_equal(cp_fs_mkdir(dir, "d", &created), 0);
	assert_false(created);
	assert_int_equal(cp_fs_open_sub(dir, "d", &sub), 0);
	cp_fs_close(sub);
	cp_fs_close(dir);
}

static void test_mkdir_over_a_file_is_enotdir(void **state)
{
	bool created;
	int dir, sub;

	put_file("plain", "x");
	assert_int_equal(cp_fs_open_dir(root, &dir), 0);
	assert_int_equal(cp_fs_mkdir(dir, "plain", &created), -ENOTDIR);
	assert_int_equal(cp_fs_open_sub(dir, "plain", &sub), -ENOTDIR);
	cp_fs_close(dir);
}

static void test_tmp_commit_replaces_the_target(void **state)
{
	struct cp_times t = {.atime_ns = 1600000000ll * 1000000000ll,
			     .mtime_ns = 1600000000ll * 1000000000ll};
	char p[MAX_PATH * 2], buf[32] = {0};
	struct cp_tmp tmp;
	struct cp_stat st;
	char **names;
	size_t n;
	DWORD put;
	FILE *f;
	int dir;

	put_file("target", "old contents");
	assert_int_equal(cp_fs_open_dir(root, &dir), 0);
	assert_int_equal(cp_fs_tmp_open(dir, "target", &tmp), 0);
	assert_true(WriteFile((HANDLE)(intptr_t)tmp.fd, "new", 3, &put, NULL));
	assert_int_equal(cp_fs_set(tmp.fd, 0644, &t), 0);
	assert_int_equal(cp_fs_tmp_commit(dir, "target", &tmp), 0);
	cp_fs_close(dir);
	path_of(p, sizeof(p), "target");
	f = fopen(p, "rb");
	assert_non_null(f);
	assert_int_equal(fread(buf, 1, sizeof(buf), f), 3);
	fclose(f);
	assert_string_equal(buf, "new");
	assert_int_equal(cp_fs_stat(p, false, &st), 0);
	assert_int_equal(st.mtime_ns, t.mtime_ns);
	/* Nothing else is left in the directory: the temporary became the target. */
	assert_int_equal(cp_fs_list(root, &names, &n), 0);
	assert_int_equal(n, 1);
	cp_fs_list_free(names, n);
}

static void test_tmp_discard_leaves_nothing(void **state)
{
	struct cp_tmp tmp;
	char **names;
	size_t n;
	int dir;

	assert_int_equal(cp_fs_open_dir(root, &dir), 0);
	assert_int_equal(cp_fs_tmp_open(dir, "gone", &tmp), 0);
	cp_fs_tmp_discard(dir, &tmp);
	cp_fs_close(dir);
	assert_int_equal(cp_fs_list(root, &names, &n), 0);
	assert_int_equal(n, 0);
	cp_fs_list_free(names, n);
}

static void test_read_only_mode_round_trips(void **state)
{
	char p[MAX_PATH * 2];
	struct cp_stat st;
	struct cp_tmp tmp;
	int dir;

	assert_int_equal(cp_fs_open_dir(root, &dir), 0);
	assert_int_equal(cp_fs_tmp_open(dir, "ro", &tmp), 0);
	assert_int_equal(cp_fs_set(tmp.fd, 0444, NULL), 0);
	assert_int_equal(cp_fs_tmp_commit(dir, "ro", &tmp), 0);
	cp_fs_close(dir);
	path_of(p, sizeof(p), "ro");
	assert_int_equal(cp_fs_stat(p, false, &st), 0);
	assert_int_equal(st.mode, 0444);
}

/* Command-line paths: Windows paths are local whatever ':' they hold; VM:PATH is remote. */
static void test_windows_paths_are_local_and_vm_paths_remote(void **state)
{
	static const char *const local[] = {"C:\\data",		 "c:/data", "C:rel",
					    "\\\\srv\\share\\f", ".\\a:b",  "-"};
	const char *path = NULL;
	char vm[64];

	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		assert_int_equal(cp_cli_split(local[i], vm, sizeof(vm), &path), 0);
	assert_int_equal(cp_cli_split("web:/tmp/x", vm, sizeof(vm), &path), 1);
	assert_string_equal(vm, "web");
	assert_string_equal(path, "/tmp/x");
	assert_int_equal(cp_cli_split("[tcp://127.0.0.1:22]:C:\\x", vm, sizeof(vm), &path), 1);
	assert_string_equal(vm, "tcp://127.0.0.1:22");
	assert_string_equal(path, "C:\\x");
	assert_int_equal(cp_cli_split("hvsock://6a3e2b8e-1b6c-4e0c-a4a5-3a4f1e2b9c01:/tmp", vm,
				      sizeof(vm), &path),
			 1);
	assert_string_equal(path, "/tmp");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_stat_tells_files_and_directories_apart, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_list_is_sorted_without_dot_entries, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_open_read_refuses_a_directory, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open_read_gives_a_readable_handle, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_mkdir_creates_then_finds_existing, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_mkdir_over_a_file_is_enotdir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tmp_commit_replaces_the_target, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tmp_discard_leaves_nothing, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_only_mode_round_trips, setup, teardown),
	    cmocka_unit_test(test_windows_paths_are_local_and_vm_paths_remote),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
