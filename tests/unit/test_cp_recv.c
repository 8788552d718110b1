/* The cp receiver (exec/cp_recv.c) fed as a hostile sender would, into a fresh directory. */
/* VB_TEST_BOTH_BACKENDS */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/stat.h>
#include <xxhash.h>
#include <cmocka.h>
#include "core/buf.h"
#include "core/wire.h"
#include "exec/cp_msg.h"
#include "exec/cp_recv.h"
#include "platform/loop.h"

/*
 * Every test builds the sender's byte stream by hand (records as
 * docs/protocol.md lays them out), feeds it to a receiver whose target is
 * a fresh temporary directory, runs the loop until the receiver says it is
 * done (or the test closes it), and then looks at what is on disk.
 */

#define MS	    1000000ull
#define DEADLINE_NS (10000 * MS)
#define STREAM_MAX  (64 * 1024)
#define RES_MAX	    16
#define T0	    1000000000123456789ll /* a time in 2001, with nanoseconds */
#define T(i)	    (T0 + (int64_t)(i)*1000000007ll)

static struct loop *L;
static struct chunk_pool pool;
static char root[64];	   /* the test's own directory */
static char dst[128];	   /* root/dst: the target */
static char outside[64];   /* a directory outside the target, for links to point at */
static size_t test_chunks; /* chunks the test itself holds */

/* ---- the sender's stream ---- */

struct out {
	uint8_t b[STREAM_MAX];
	size_t n;
	XXH3_state_t *h; /* over the current file's data */
	uint64_t fbytes;
};

static void out_rec(struct out *o, uint8_t type, const void *p, size_t n)
{
	assert_true(o->n + REC_HDR_LEN + n <= sizeof(o->b));
	cp_rec_hdr(o->b + o->n, type, (uint32_t)n);
	if (n)
		memcpy(o->b + o->n + REC_HDR_LEN, p, n);
	o->n += REC_HDR_LEN + n;
}

static void out_entry(struct out *o, uint8_t type, uint8_t flags, uint32_t mode, uint64_t size,
		      int64_t t, const char *path, const char *target)
{
	struct cp_entry e = {.type = type,
			     .flags = flags,
			     .mode = mode,
			     .size = size,
			     .mtime_ns = t,
			     .atime_ns = t - 1000};
	uint8_t b[REC_CONTROL_MAX];
	int n;

	snprintf(e.path, sizeof(e.path), "%s", path);
	snprintf(e.target, sizeof(e.target), "%s", target ? target : "");
	n = cp_entry_encode(&e, b, sizeof(b));
	assert_true(n > 0);
	out_rec(o, CP_REC_ENTRY, b, (size_t)n);
	if (type == CP_T_FILE) {
		XXH3_128bits_reset(o->h);
		o->fbytes = 0;
	}
}

static void out_data(struct out *o, const void *p, size_t n)
{
	out_rec(o, CP_REC_DATA, p, n);
	XXH3_128bits_update(o->h, p, n);
	o->fbytes += n;
}

/* END with the given code, byte count and hash. */
static void out_end_raw(struct out *o, uint32_t code, uint64_t bytes, const uint8_t *hash)
{
	struct cp_end e = {.code = code, .bytes = bytes};
	uint8_t b[CP_END_LEN];

	memcpy(e.hash, hash, CP_HASH_LEN);
	cp_end_encode(&e, b);
	out_rec(o, CP_REC_END, b, sizeof(b));
}

/* The hash of the current file's data, as a sender computes it. */
static void out_hash(struct out *o, uint8_t hash[CP_HASH_LEN])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(o->h));
	memcpy(hash, c.digest, CP_HASH_LEN);
}

/* The END an honest sender writes. */
static void out_end(struct out *o)
{
	uint8_t h[CP_HASH_LEN];

	out_hash(o, h);
	out_end_raw(o, 0, o->fbytes, h);
}

/* A whole regular file: ENTRY, its data in one record, END. */
static void out_file(struct out *o, uint8_t flags, uint32_t mode, int64_t t, const char *path,
		     const char *content)
{
	size_t n = strlen(content);

	out_entry(o, CP_T_FILE, flags, mode, n, t, path, NULL);
	if (n)
		out_data(o, content, n);
	out_end(o);
}

static void out_done(struct out *o, uint64_t entries, uint64_t failed, uint64_t bytes)
{
	struct cp_done d = {.entries = entries, .failed = failed, .bytes = bytes};
	uint8_t b[CP_DONE_LEN];

	cp_done_encode(&d, b);
	out_rec(o, CP_REC_DONE, b, sizeof(b));
}

static struct out *out_new(void)
{
	struct out *o = calloc(1, sizeof(*o));

	assert_non_null(o);
	o->h = XXH3_createState();
	assert_non_null(o->h);
	XXH3_128bits_reset(o->h); /* a state is undefined until reset */
	return o;
}

static void out_free(struct out *o)
{
	XXH3_freeState(o->h);
	free(o);
}

/* ---- the receiver ---- */

struct result {
	char path[CP_PATH_MAX + 600];
	int err;
	char text[256];
};

struct rx {
	struct cp_recv *r;
	int done; /* on_done calls */
	struct cp_done sender;
	int nres;
	struct result res[RES_MAX];
	int ntotal;
};

static void rx_result(void *arg, const char *path, int err, const char *text)
{
	struct rx *x = arg;
	struct result *r;

	assert_true(x->nres < RES_MAX);
	r = &x->res[x->nres++];
	snprintf(r->path, sizeof(r->path), "%s", path);
	r->err = err;
	snprintf(r->text, sizeof(r->text), "%s", text ? text : "");
}

static int rx_record(void *arg, uint8_t type, const uint8_t *p, size_t n)
{
	struct rx *x = arg;
	struct cp_total t;

	if (type != CP_REC_TOTAL || cp_total_decode(p, n, &t))
		return -EPROTO;
	x->ntotal++;
	return 0;
}

static void rx_done(void *arg, const struct cp_done *sender)
{
	struct rx *x = arg;

	x->done++;
	x->sender = *sender;
}

static const struct cp_recv_ops rx_ops = {
    .on_result = rx_result,
    .on_record = rx_record,
    .on_done = rx_done,
};

static int rx_open_opts(struct rx *x, const struct cp_recv_opts *o)
{
	char why[512] = "";
	int ret;

	memset(x, 0, sizeof(*x));
	ret = cp_recv_new(&x->r, o, &rx_ops, x, why, sizeof(why));
	if (ret)
		assert_true(why[0] != '\0');
	return ret;
}

/* A receiver into dst with -r -p, trusted with every mode bit (as an agent with -p). */
static void rx_open(struct rx *x)
{
	struct cp_recv_opts o = {
	    .loop = L,
	    .flags = CP_F_RECURSIVE | CP_F_PRESERVE,
	    .dst = dst,
	    .mode_mask = 07777,
	};

	assert_int_equal(rx_open_opts(x, &o), 0);
}

/* Feeds bytes [from, to) of the stream, as one DATA payload inside chunk c. */
static int rx_feed_part(struct rx *x, struct chunk *c, size_t from, size_t to)
{
	return cp_recv_feed(x->r, c, c->data + from, to - from);
}

/* The stream in a chunk, as the link delivers it. */
static struct chunk *stream_chunk(const struct out *o)
{
	struct chunk *c = chunk_get(&pool);

	assert_non_null(c);
	assert_true(o->n <= c->size);
	memcpy(c->data, o->b, o->n);
	test_chunks++;
	return c;
}

static void stream_chunk_put(struct chunk *c)
{
	test_chunks--;
	chunk_put(c);
}

static int rx_feed(struct rx *x, const struct out *o)
{
	struct chunk *c = stream_chunk(o);
	int ret = rx_feed_part(x, c, 0, o->n);

	stream_chunk_put(c);
	return ret;
}

static void run_until_done(struct rx *x)
{
	uint64_t end = clock_now_ns() + DEADLINE_NS;

	while (!x->done) {
		assert_true(clock_now_ns() < end);
		assert_true(loop_run_once(L, 10 * MS) >= 0);
	}
}

/* Closes the receiver and runs the loop until it let go of every chunk (it freed itself). */
static void rx_close(struct rx *x)
{
	uint64_t end = clock_now_ns() + DEADLINE_NS;

	cp_recv_close(x->r);
	x->r = NULL;
	while (pool.outstanding > test_chunks) {
		assert_true(clock_now_ns() < end);
		assert_true(loop_run_once(L, 10 * MS) >= 0);
	}
	for (int i = 0; i < 3; i++)
		assert_true(loop_run_once(L, 0) >= 0);
}

/* ---- the file system ---- */

static void path_of(char *out, size_t cap, const char *base, const char *rel)
{
	snprintf(out, cap, "%s/%s", base, rel);
}

static int64_t ns_of(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static void write_file(const char *path, const char *content)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
}

/* Asserts rel under base is a regular file with this mode and content; mtime when t != 0. */
static void file_is(const char *base, const char *rel, uint32_t mode, int64_t t,
		    const void *content, size_t n)
{
	char path[512], buf[4096];
	struct stat sb;
	int fd;

	path_of(path, sizeof(path), base, rel);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, mode);
	assert_int_equal(sb.st_size, n);
	if (t) {
		assert_true(ns_of(&sb.st_mtim) == t);
		assert_true(ns_of(&sb.st_atim) == t - 1000);
	}
	assert_true(n <= sizeof(buf));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), (ssize_t)n);
	close(fd);
	assert_memory_equal(buf, content, n);
}

static void dir_is(const char *base, const char *rel, uint32_t mode, int64_t t)
{
	char path[512];
	struct stat sb;

	path_of(path, sizeof(path), base, rel);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, mode);
	if (t)
		assert_true(ns_of(&sb.st_mtim) == t);
}

static void link_is(const char *base, const char *rel, const char *target, int64_t t)
{
	char path[512], buf[512];
	struct stat sb;
	ssize_t n;

	path_of(path, sizeof(path), base, rel);
	assert_int_equal(lstat(path, &sb), 0);
	assert_true(S_ISLNK(sb.st_mode));
	if (t)
		assert_true(ns_of(&sb.st_mtim) == t);
	n = readlink(path, buf, sizeof(buf) - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, target);
}

static void absent(const char *base, const char *rel)
{
	char path[512];
	struct stat sb;

	path_of(path, sizeof(path), base, rel);
	assert_int_equal(lstat(path, &sb), -1);
	assert_int_equal(errno, ENOENT);
}

/* The names in a directory, without "." and "..". */
static int count_names(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

static int temps_seen;

static int temp_visit(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	if (strstr(path + f->base, ".vmbusify-"))
		temps_seen++;
	return 0;
}

/* Asserts that no temporary (".name.vmbusify-XXXXXX") is left anywhere under dir. */
static void no_temps(const char *dir)
{
	temps_seen = 0;
	assert_int_equal(nftw(dir, temp_visit, 16, FTW_PHYS), 0);
	assert_int_equal(temps_seen, 0);
}

static int rm_visit(const char *path, const struct stat *sb, int flag, struct FTW *f)
{
	return remove(path);
}

static void rm_tree(const char *dir)
{
	if (!access(dir, F_OK))
		assert_int_equal(nftw(dir, rm_visit, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static void fresh_dst(void)
{
	rm_tree(dst);
	assert_int_equal(mkdir(dst, 0755), 0);
}

static int setup(void **state)
{
	snprintf(root, sizeof(root), "/tmp/vb-cprecv-XXXXXX");
	snprintf(outside, sizeof(outside), "/tmp/outside-XXXXXX");
	if (!mkdtemp(root) || !mkdtemp(outside))
		return -1;
	snprintf(dst, sizeof(dst), "%s/dst", root);
	return mkdir(dst, 0755);
}

/* Removes the directories first, so that they go even when the check below fails. */
static int teardown(void **state)
{
	rm_tree(root);
	rm_tree(outside);
	assert_int_equal(pool.outstanding, 0);
	return 0;
}

/* ---- a good tree ---- */

static uint8_t pattern[300];

/* Two sources into dst: a tree "src" (files, an empty file, a subdirectory, a link) and a file. */
static void good_tree(struct out *o)
{
	out_entry(o, CP_T_DIR, CP_E_TOP, 0750, 0, T(1), "src", NULL);
	out_file(o, 0, 0640, T(2), "a", "hello");
	out_file(o, 0, 0600, T(3), "empty", "");
	out_entry(o, CP_T_DIR, 0, 0711, 0, T(4), "sub", NULL);
	out_entry(o, CP_T_FILE, 0, 04755, sizeof(pattern), T(5), "sub/b", NULL);
	out_data(o, pattern, 100); /* a file in several DATA records */
	out_data(o, pattern + 100, 0);
	out_data(o, pattern + 100, sizeof(pattern) - 100);
	out_end(o);
	out_entry(o, CP_T_LINK, 0, 0777, 0, T(6), "sub/l", "../a");
	out_file(o, 0, 0604, T(7), "z", "xyz"); /* after the walk left sub */
	out_file(o, CP_E_TOP, 0644, T(8), "top.txt", "four");
	out_entry(o, CP_T_LINK, CP_E_TOP, 0777, 0, T(9), "ln", "/nonexistent/target");
	out_done(o, 9, 0, 5 + sizeof(pattern) + 3 + 4);
}

static void good_tree_is_there(void)
{
	char src[256];

	path_of(src, sizeof(src), dst, "src");
	dir_is(dst, "src", 0750, T(1));
	dir_is(src, "sub", 0711, T(4));
	file_is(src, "a", 0640, T(2), "hello", 5);
	file_is(src, "empty", 0600, T(3), "", 0);
	file_is(src, "sub/b", 04755, T(5), pattern, sizeof(pattern));
	link_is(src, "sub/l", "../a", T(6));
	file_is(src, "z", 0604, T(7), "xyz", 3);
	file_is(dst, "top.txt", 0644, T(8), "four", 4);
	link_is(dst, "ln", "/nonexistent/target", T(9));
	assert_int_equal(count_names(dst), 3);
	assert_int_equal(count_names(src), 4);
	no_temps(dst);
}

static void good_tree_done(struct rx *x)
{
	struct cp_done d;

	assert_int_equal(x->done, 1);
	assert_int_equal(x->nres, 0);
	assert_int_equal(x->sender.entries, 9);
	cp_recv_stats(x->r, &d);
	assert_int_equal(d.entries, 9);
	assert_int_equal(d.failed, 0);
	assert_int_equal(d.bytes, 5 + sizeof(pattern) + 3 + 4);
	assert_int_equal(cp_recv_fin(x->r), 0);
}

static void test_a_good_tree_arrives_identical(void **state)
{
	struct out *o = out_new();
	struct rx x;

	good_tree(o);
	rx_open(&x);
	assert_int_equal(rx_feed(&x, o), 0);
	run_until_done(&x);
	good_tree_done(&x);
	rx_close(&x);
	good_tree_is_there();
	out_free(o);
}

static void test_records_split_anywhere_give_the_same_tree(void **state)
{
	struct out *o = out_new();
	struct chunk *c;
	struct rx x;

	good_tree(o);
	c = stream_chunk(o);
	/* Two feeds, cut at every byte boundary. */
	for (size_t k = 1; k < o->n; k++) {
		fresh_dst();
		rx_open(&x);
		assert_int_equal(rx_feed_part(&x, c, 0, k), 0);
		assert_int_equal(rx_feed_part(&x, c, k, o->n), 0);
		run_until_done(&x);
		good_tree_done(&x);
		rx_close(&x);
		good_tree_is_there();
	}
	/* One byte per feed. */
	fresh_dst();
	rx_open(&x);
	for (size_t k = 0; k < o->n; k++)
		assert_int_equal(rx_feed_part(&x, c, k, k + 1), 0);
	run_until_done(&x);
	good_tree_done(&x);
	rx_close(&x);
	good_tree_is_there();
	stream_chunk_put(c);
	out_free(o);
}

static void test_total_goes_to_the_owner(void **state)
{
	struct cp_total t = {.bytes = 5, .entries = 1};
	struct out *o = out_new();
	uint8_t b[CP_TOTAL_LEN];
	struct rx x;

	cp_total_encode(&t, b);
	out_rec(o, CP_REC_TOTAL, b, sizeof(b));
	out_file(o, CP_E_TOP, 0644, T(1), "f", "hello");
	out_done(o, 1, 0, 5);
	rx_open(&x);
	assert_int_equal(rx_feed(&x, o), 0);
	run_until_done(&x);
	assert_int_equal(x.ntotal, 1);
	rx_close(&x);
	file_is(dst, "f", 0644, T(1), "hello", 5);
	out_free(o);
}

static void test_setuid_bits_are_dropped_unless_trusted(void **state)
{
	struct cp_recv_opts opts = {
	    .loop = L, .flags = CP_F_PRESERVE, .dst = dst, .mode_mask = 0777};
	struct out *o = out_new();
	struct rx x;

	out_file(o, CP_E_TOP, 06755, T(1), "f", "x");
	out_done(o, 1, 0, 1);
	assert_int_equal(rx_open_opts(&x, &opts), 0);
	assert_int_equal(rx_feed(&x, o), 0);
	run_until_done(&x);
	rx_close(&x);
	file_is(dst, "f", 0755, T(1), "x", 1);
	out_free(o);
}

static void test_an_existing_directory_keeps_its_mode_without_p(void **state)
{
	struct cp_recv_opts opts = {
	    .loop = L, .flags = CP_F_RECURSIVE, .dst = dst, .mode_mask = 0777};
	char e[256];
	struct out *o = out_new();
	struct rx x;

	path_of(e, sizeof(e), dst, "e");
	assert_int_equal(mkdir(e, 0700), 0);
	assert_int_equal(chmod(e, 0751), 0);
	out_entry(o, CP_T_DIR, CP_E_TOP, 0700, 0, T(1), "e", NULL);
	out_file(o, 0, 0640, T(2), "f", "x");
	out_entry(o, CP_T_DIR, CP_E_TOP, 0705, 0, T(3), "n", NULL);
	out_done(o, 3, 0, 1);
	assert_int_equal(rx_open_opts(&x, &opts), 0);
	assert_int_equal(rx_feed(&x, o), 0);
	run_until_done(&x);
	rx_close(&x);
	dir_is(dst, "e", 0751, 0); /* found: left as it was */
	dir_is(dst, "n", 0705, 0); /* made by this copy: the sender's mode */
	file_is(dst, "e/f", 0640, 0, "x", 1);

	/* With -p the sender's mode and times win. */
	rx_open(&x);
	assert_int_equal(rx_feed(&x, o), 0);
	run_until_done(&x);
	rx_close(&x);
	dir_is(dst, "e", 0700, T(1));
	file_is(dst, "e/f", 0640, T(2), "x", 1);
	out_free(o);
}

/* ---- paths that try to leave the target ---- */

/* Feeds o, which must be refused as a protocol error, and checks that nothing escaped. */
static void refused_and_contained(struct out *o)
{
	char x_out[256];
	struct rx x;

	fresh_dst();
	rx_open(&x);
	assert_int_equal(rx_feed(&x, o), -EPROTO);
	rx_close(&x);
	/* Nothing beside the target, nothing in it. */
	assert_int_equal(count_names(root), 1);
	assert_int_equal(count_names(dst), 0);
	assert_int_equal(count_names(outside), 0);
	path_of(x_out, sizeof(x_out), root, "x");
	assert_int_equal(access(x_out, F_OK), -1);
}

static void test_paths_out_of_the_target_are_refused(void **state)
{
	char abs_x[256];
	const char *bad[] = {"../x", abs_x, "a/../../x", "../../x", "a/../x"};

	path_of(abs_x, sizeof(abs_x), root, "x");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct out *o = out_new();

		/* As a source's root... */
		out_file(o, CP_E_TOP, 0644, T(1), bad[i], "evil");
		out_done(o, 1, 0, 4);
		refused_and_contained(o);
		out_free(o);

		/* ...and beneath one, as a file, a directory and a link. */
		o = out_new();
		out_entry(o, CP_T_DIR, CP_E_TOP, 0755, 0, T(1), "a", NULL);
		out_file(o, 0, 0644, T(1), bad[i], "evil");
		refused_and_contained(o);
		out_free(o);
		o = out_new();
		out_entry(o, CP_T_DIR, CP_E_TOP, 0755, 0, T(1), "a", NULL);
		out_entry(o, CP_T_DIR, 0, 0755, 0, T(1), bad[i], NULL);
		refused_and_contained(o);
		out_free(o);
		o = out_new();
		out_entry(o, CP_T_DIR, CP_E_TOP, 0755, 0, T(1), "a", NULL);
		out_entry(o, CP_T_LINK, 0, 0777, 0, T(1), bad[i], "/tmp");
		refused_and_contained(o);
		out_free(o);
	}
}

static void test_a_refused_path_stops_the_copy_where_it_stands(void **state)
{
	struct out *o = out_new();
	struct rx x;

	/* Fed apart, the first entry is written before the second is refused. */
	out_entry(o, CP_T_DIR, CP_E_TOP, 0755, 0, T(1), "a", NULL);
	rx_open(&x);
	assert_int_equal(rx_feed(&x, o), 0);
	o->n = 0;
	out_file(o, 0, 0644, T(1), "../../x", "evil");
	assert_int_equal(rx_feed(&x, o), -EPROTO);
	assert_int_equal(cp_recv_feed(x.r, NULL, NULL, 0), -EPROTO); /* it stays failed */
	rx_close(&x);
	assert_int_equal(count_names(root), 1);
	assert_int_equal(count_names(dst), 1);
	dir_is(dst, "a", 0700, 0); /* its own mode comes only when the walk leaves it */
	out_free(o);
}

static void test_a_link_is_never_followed_on_the_way_down(void **state)
{
	char want[512];
	struct out *o = out_new();
	struct rx x;

	out_entry(o, CP_T_DIR, CP_E_TOP, 0755, 0, T(1), "t", NULL);
	out_entry(o, CP_T_LINK, 0, 0777, 0, T(2), "l", outside);
	out_file(o, 0, 0644, T(3), "l/f", "evil");	     /* through the link: refused */
	out_entry(o, CP_T_DIR, 0, 0755, 0, T(4), "l", NULL); /* a directory where it is: refused */
	out_file(o, 0, 0644, T(5), "l/g", "evil");	     /* beneath that: dropped silently */
	out_file(o, 0, 0644, T(6), "ok", "fine");
	out_done(o, 6, 0, 12);
	rx_open(&x);
	assert_int_equal(rx_feed(&x, o), 0);
	run_until_done(&x);
	assert_int_equal(x.nres, 2);
	snprintf(want, sizeof(want), "%s/t/l/f", dst);
	assert_string_equal(x.res[0].path, want);
	assert_int_equal(x.res[0].err, -ELOOP);
	snprintf(want, sizeof(want), "%s/t/l", dst);
	assert_string_equal(x.res[1].path, want);
	assert_int_equal(x.res[1].err, -ENOTDIR);
	rx_close(&x);
	assert_int_equal(count_names(outside), 0);
	link_is(dst, "t/l", outside, 0);
	file_is(dst, "t/ok", 0644, T(6), "fine", 4);
	no_temps(dst);
	out_free(o);
}

static void test_a_link_that_was_there_before_is_not_followed(void **state)
{
	char link[256], want[512];
	struct out *o = out_new();
	struct rx x;

	path_of(link, sizeof(link), dst, "pre");
	assert_int_equal(symlink(outside, link), 0);
	out_entry(o, CP_T_DIR, CP_E_TOP, 0755, 0, T(1), "pre", NULL);
	out_file(o, 0, 0644, T(2), "f", "evil");
	out_done(o, 2, 0, 4);
	rx_open(&x);
	assert_int_equal(rx_feed(&x, o), 0);
	run_until_done(&x);
	assert_int_equal(x.nres, 1);
	snprintf(want, sizeof(want), "%s/pre", dst);
	assert_string_equal(x.res[0].path, want);
	assert_int_equal(x.res[0].err, -ENOTDIR);
	rx_close(&x);
	assert_int_equal(count_names(outside), 0);
	link_is(dst, "pre", outside, 0);
	out_free(o);
}

static void test_a_file_replaces_a_link_never_writes_through_it(void **state)
{
	char victim[256];
	struct out *o = out_new();
	struct rx x;

	path_of(victim, sizeof(victim), outside, "victim");
	write_file(victim, "orig");
	out_entry(o, CP_T_LINK, CP_E_TOP, 0777, 0, T(1), "l", victim);
	out_file(o, CP_E_TOP, 0600, T(2), "l", "new!");
	out_done(o, 2, 0, 4);
	rx_open(&x);
	assert_int_equal(rx_feed(&x, o), 0);
	run_until_done(&x);
	assert_int_equal(x.nres, 0);
	rx_close(&x);
	file_is(dst, "l", 0600, T(2), "new!", 4);
	file_is(outside, "victim", 0644, 0, "orig", 4);
	no_temps(dst);
	out_free(o);
}

static void test_reported_names_cannot_drive_the_terminal(void **state)
{
	char want[512];
	struct out *o = out_new();
	struct rx x;

	out_entry(o, CP_T_DIR, CP_E_TOP, 0755, 0, T(1), "t\033]0;x\007", NULL);
	out_entry(o, CP_T_LINK, 0, 0777, 0, T(2), "l", outside);
	out_file(o, 0, 0644, T(3), "l/\033[2J\r\x7f\xc3\xa9", "evil");
	out_done(o, 3, 0, 4);
	rx_open(&x);
	assert_int_equal(rx_feed(&x, o), 0);
	run_until_done(&x);
	assert_int_equal(x.nres, 1);
	/* Control bytes become '?'; UTF-8 stays readable. */
	snprintf(want, sizeof(want), "%s/t?]0;x?/l/?[2J??\xc3\xa9", dst);
	assert_string_equal(x.res[0].path, want);
	assert_int_equal(x.res[0].err, -ELOOP);
	rx_close(&x);
	assert_int_equal(count_names(outside), 0);
	out_free(o);
}

static void test_names_not_asked_for_are_refused(void **state)
{
	const char *const expect[] = {"a", "b"};
	struct cp_recv_opts opts = {.loop = L,
				    .flags = CP_F_INTO,
				    .dst = dst,
				    .mode_mask = 0777,
				    .expect = expect,
				    .nexpect = 2};
	struct out *o = out_new();
	struct rx x;

	/* In order, each once: "b" then "a" is refused, as is "a" twice or "c". */
	out_file(o, CP_E_TOP, 0644, T(1), "b", "1");
	out_file(o, CP_E_TOP, 0644, T(1), "a", "2");
	assert_int_equal(rx_open_opts(&x, &opts), 0);
	assert_int_equal(rx_feed(&x, o), -EPROTO);
	rx_close(&x);
	o->n = 0;
	out_file(o, CP_E_TOP, 0644, T(1), "a", "1");
	out_file(o, CP_E_TOP, 0644, T(1), "a", "2");
	assert_int_equal(rx_open_opts(&x, &opts), 0);
	assert_int_equal(rx_feed(&x, o), -EPROTO);
	rx_close(&x);
	o->n = 0;
	out_file(o, CP_E_TOP, 0644, T(1), "c", "1");
	assert_int_equal(rx_open_opts(&x, &opts), 0);
	assert_int_equal(rx_feed(&x, o), -EPROTO);
	rx_close(&x);
	absent(dst, "c");
	/* A source may be skipped (the sender could not read it). */
	fresh_dst();
	o->n = 0;
	out_file(o, CP_E_TOP, 0644, T(1), "b", "1");
	out_done(o, 1, 1, 1);
	assert_int_equal(rx_open_opts(&x, &opts), 0);
	assert_int_equal(rx_feed(&x, o), 0);
	run_until_done(&x);
	rx_close(&x);
	file_is(dst, "b", 0644, 0, "1", 1);
	out_free(o);
}

/* ---- files that must not be committed ---- */

static void mismatch_keeps_the_old_file(struct out *o, bool reported)
{
	struct cp_done d;
	struct rx x;

	char old[256];

	fresh_dst();
	path_of(old, sizeof(old), dst, "f");
	write_file(old, "old content");
	rx_open(&x);
	assert_int_equal(rx_feed(&x, o), 0);
	run_until_done(&x);
	assert_int_equal(x.nres, reported ? 1 : 0);
	if (reported) {
		assert_int_equal(x.res[0].err, -EIO);
		assert_string_equal(x.res[0].text, "checksum mismatch: the copy was discarded");
	}
	cp_recv_stats(x.r, &d);
	assert_int_equal(d.entries, 0);
	assert_int_equal(d.failed, reported ? 1 : 0);
	rx_close(&x);
	file_is(dst, "f", 0644, 0, "old content", 11);
	assert_int_equal(count_names(dst), 1);
	no_temps(dst);
}

static void test_a_wrong_hash_leaves_the_old_file(void **state)
{
	uint8_t h[CP_HASH_LEN];
	struct out *o = out_new();

	out_entry(o, CP_T_FILE, CP_E_TOP, 0600, 3, T(1), "f", NULL);
	out_data(o, "new", 3);
	out_hash(o, h);
	h[7] ^= 1;
	out_end_raw(o, 0, 3, h);
	out_done(o, 1, 0, 3);
	mismatch_keeps_the_old_file(o, true);
	out_free(o);
}

static void test_a_wrong_size_leaves_the_old_file(void **state)
{
	uint8_t h[CP_HASH_LEN];
	struct out *o = out_new();

	out_entry(o, CP_T_FILE, CP_E_TOP, 0600, 3, T(1), "f", NULL);
	out_data(o, "new", 3);
	out_hash(o, h);
	out_end_raw(o, 0, 4, h);
	out_done(o, 1, 0, 3);
	mismatch_keeps_the_old_file(o, true);
	out_free(o);
}

static void test_a_large_file_with_a_wrong_hash_leaves_no_temporary(void **state)
{
	static uint8_t big[STREAM_MAX / 2];
	uint8_t h[CP_HASH_LEN];
	struct out *o = out_new();

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	out_entry(o, CP_T_FILE, CP_E_TOP, 0600, 3 * sizeof(big) / 4, T(1), "f", NULL);
	for (int i = 0; i < 3; i++)
		out_data(o, big, sizeof(big) / 4);
	out_hash(o, h);
	h[0] ^= 0x80;
	out_end_raw(o, 0, o->fbytes, h);
	out_done(o, 1, 0, o->fbytes);
	mismatch_keeps_the_old_file(o, true);
	out_free(o);
}

static void test_a_file_the_sender_failed_to_read_is_dropped_quietly(void **state)
{
	uint8_t h[CP_HASH_LEN];
	struct out *o = out_new();

	out_entry(o, CP_T_FILE, CP_E_TOP, 0600, 10, T(1), "f", NULL);
	out_data(o, "part", 4);
	out_hash(o, h);
	out_end_raw(o, 18 /* IO */, 4, h); /* the sender reports it itself, in its RESULT */
	out_done(o, 0, 1, 4);
	mismatch_keeps_the_old_file(o, false);
	out_free(o);
}

static void fin_early_leaves_nothing(bool old, bool run_first)
{
	struct out *o = out_new();
	char path[256];
	struct rx x;

	fresh_dst();
	path_of(path, sizeof(path), dst, "f");
	if (old)
		write_file(path, "old content");
	out_entry(o, CP_T_FILE, CP_E_TOP, 0600, 10, T(1), "f", NULL);
	out_data(o, "12345", 5);
	rx_open(&x);
	assert_int_equal(rx_feed(&x, o), 0);
	if (run_first) {
		/* The piece is written to the temporary before the sender stops. */
		for (int i = 0; i < 5; i++)
			assert_true(loop_run_once(L, MS) >= 0);
	}
	assert_int_equal(cp_recv_fin(x.r), -EPIPE);
	rx_close(&x);
	assert_int_equal(x.done, 0);
	if (old) {
		file_is(dst, "f", 0644, 0, "old content", 11);
		assert_int_equal(count_names(dst), 1);
	} else {
		assert_int_equal(count_names(dst), 0);
	}
	no_temps(dst);
	out_free(o);
}

static void test_fin_before_done_leaves_no_partial_file(void **state)
{
	fin_early_leaves_nothing(false, false);
	fin_early_leaves_nothing(false, true);
	fin_early_leaves_nothing(true, false);
	fin_early_leaves_nothing(true, true);
}

static void test_fin_inside_a_record_is_early_too(void **state)
{
	struct out *o = out_new();
	struct rx x;

	out_file(o, CP_E_TOP, 0600, T(1), "f", "done");
	out_done(o, 1, 0, 4);
	o->n -= 1; /* DONE cut short */
	rx_open(&x);
	assert_int_equal(rx_feed(&x, o), 0);
	for (int i = 0; i < 5; i++)
		assert_true(loop_run_once(L, MS) >= 0);
	assert_int_equal(cp_recv_fin(x.r), -EPIPE);
	rx_close(&x);
	assert_int_equal(x.done, 0);
	/* The file was complete and verified before the stream broke: it stays. */
	file_is(dst, "f", 0600, T(1), "done", 4);
	no_temps(dst);
	out_free(o);
}

/* ---- protocol errors ---- */

static void test_records_out_of_order_are_protocol_errors(void **state)
{
	uint8_t h[CP_HASH_LEN] = {0}, big[REC_CONTROL_MAX + 1] = {0};
	struct out *o = out_new();
	struct rx x;

	for (int i = 0;; i++) {
		o->n = 0;
		switch (i) {
		case 0: /* DATA before any ENTRY */
			out_data(o, "x", 1);
			break;
		case 1: /* END without a file */
			out_end_raw(o, 0, 0, h);
			break;
		case 2: /* an ENTRY before the current file's END */
			out_entry(o, CP_T_FILE, CP_E_TOP, 0600, 1, T(1), "f", NULL);
			out_data(o, "x", 1);
			out_entry(o, CP_T_FILE, CP_E_TOP, 0600, 1, T(1), "g", NULL);
			break;
		case 3: /* an entry beneath no source */
			out_file(o, 0, 0600, T(1), "f", "x");
			break;
		case 4: /* a directory without -r */
			out_entry(o, CP_T_DIR, CP_E_TOP, 0755, 0, T(1), "d", NULL);
			break;
		case 5: /* anything after DONE */
			out_done(o, 0, 0, 0);
			out_file(o, CP_E_TOP, 0600, T(1), "f", "x");
			break;
		case 6: /* DONE while a file is open */
			out_entry(o, CP_T_FILE, CP_E_TOP, 0600, 1, T(1), "f", NULL);
			out_done(o, 0, 0, 0);
			break;
		case 7: /* unknown records, data and control */
			out_rec(o, 0x02, "x", 1);
			break;
		case 8:
			out_rec(o, 0x4f, "x", 1);
			break;
		case 9: /* RESULT is not the owner's business here: on_record refuses it */
			out_rec(o, CP_REC_RESULT, "\0\0\0\x12\0\x01x\0", 8);
			break;
		case 10: /* a control record over its limit */
			out_rec(o, CP_REC_ENTRY, big, sizeof(big));
			break;
		case 11: /* wrong lengths */
			out_rec(o, CP_REC_DONE, big, CP_DONE_LEN + 1);
			break;
		case 12:
			out_entry(o, CP_T_FILE, CP_E_TOP, 0600, 1, T(1), "f", NULL);
			out_rec(o, CP_REC_END, big, CP_END_LEN - 1);
			break;
		case 13:
			out_rec(o, CP_REC_TOTAL, big, CP_TOTAL_LEN + 1);
			break;
		default:
			out_free(o);
			return;
		}
		fresh_dst();
		{
			struct cp_recv_opts opts = {.loop = L,
						    .flags = i == 4 ? 0 : CP_F_RECURSIVE,
						    .dst = dst,
						    .mode_mask = 0777};

			assert_int_equal(rx_open_opts(&x, &opts), 0);
		}
		assert_int_equal(rx_feed(&x, o), -EPROTO);
		rx_close(&x);
		assert_int_equal(x.done, 0);
		assert_int_equal(count_names(dst), 0);
	}
}

/* ---- targets ---- */

static void test_a_new_name_takes_the_single_source(void **state)
{
	struct cp_recv_opts opts = {.loop = L, .dst = NULL, .mode_mask = 0777};
	char target[256];
	struct out *o = out_new();
	struct rx x;

	path_of(target, sizeof(target), dst, "copy");
	opts.dst = target;
	out_file(o, CP_E_TOP, 0640, T(1), "orig", "one");
	out_file(o, CP_E_TOP, 0640, T(1), "second", "two"); /* no directory to put it in */
	out_done(o, 2, 0, 6);
	assert_int_equal(rx_open_opts(&x, &opts), 0);
	assert_int_equal(rx_feed(&x, o), 0);
	run_until_done(&x);
	assert_int_equal(x.nres, 1);
	assert_int_equal(x.res[0].err, -ENOTDIR);
	rx_close(&x);
	file_is(dst, "copy", 0640, 0, "one", 3);
	assert_int_equal(count_names(dst), 1);
	out_free(o);
}

static void test_standard_output_takes_one_file(void **state)
{
	struct cp_recv_opts opts = {.loop = L, .dst = NULL, .mode_mask = 0777};
	char path[256];
	struct out *o = out_new();
	struct rx x;

	path_of(path, sizeof(path), root, "stdout");
	opts.out_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(opts.out_fd >= 0);
	out_file(o, CP_E_TOP, 0644, T(1), "f", "to stdout");
	out_file(o, CP_E_TOP, 0644, T(1), "g", "not this");
	out_done(o, 2, 0, 17);
	assert_int_equal(rx_open_opts(&x, &opts), 0);
	assert_int_equal(rx_feed(&x, o), 0);
	run_until_done(&x);
	assert_int_equal(x.nres, 1);
	assert_string_equal(x.res[0].text, "standard output takes a single regular file");
	rx_close(&x);
	close(opts.out_fd);
	file_is(root, "stdout", 0600, 0, "to stdout", 9);
	assert_int_equal(count_names(dst), 0);
	out_free(o);
}

static void test_bad_targets_are_refused_at_once(void **state)
{
	struct cp_recv_opts opts = {.loop = L, .flags = CP_F_INTO, .mode_mask = 0777};
	char path[256];
	struct rx x;

	path_of(path, sizeof(path), root, "missing");
	opts.dst = path;
	assert_int_equal(rx_open_opts(&x, &opts), -ENOENT);
	path_of(path, sizeof(path), root, "file");
	write_file(path, "x");
	assert_int_equal(rx_open_opts(&x, &opts), -ENOTDIR);
	opts.flags = 0;
	path_of(path, sizeof(path), root, "missing/x");
	assert_int_equal(rx_open_opts(&x, &opts), -ENOENT);
	/* "name/" promises a directory. */
	path_of(path, sizeof(path), root, "new/");
	assert_int_equal(rx_open_opts(&x, &opts), -ENOTDIR);
	path_of(path, sizeof(path), root, "dst/");
	assert_int_equal(rx_open_opts(&x, &opts), 0);
	rx_close(&x);
	/* A target that names a directory's contents is no name for a single file. */
	opts.flags = CP_F_TARGET;
	opts.dst = "/tmp/..";
	assert_int_equal(rx_open_opts(&x, &opts), -EISDIR);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_a_good_tree_arrives_identical, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_records_split_anywhere_give_the_same_tree, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_total_goes_to_the_owner, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_setuid_bits_are_dropped_unless_trusted, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_an_existing_directory_keeps_its_mode_without_p,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_paths_out_of_the_target_are_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_a_refused_path_stops_the_copy_where_it_stands,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_link_is_never_followed_on_the_way_down, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_a_link_that_was_there_before_is_not_followed,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_file_replaces_a_link_never_writes_through_it,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(test_reported_names_cannot_drive_the_terminal, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_names_not_asked_for_are_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_wrong_hash_leaves_the_old_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_wrong_size_leaves_the_old_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_a_large_file_with_a_wrong_hash_leaves_no_temporary,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(
		test_a_file_the_sender_failed_to_read_is_dropped_quietly, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_fin_before_done_leaves_no_partial_file, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_fin_inside_a_record_is_early_too, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_records_out_of_order_are_protocol_errors, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_a_new_name_takes_the_single_source, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_standard_output_takes_one_file, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_targets_are_refused_at_once, setup, teardown),
	};
	const char *env = getenv("VMBUSIFY_BACKEND");
	enum loop_backend want = LOOP_BACKEND_AUTO;
	int ret;

	for (size_t i = 0; i < sizeof(pattern); i++)
		pattern[i] = (uint8_t)(i * 13 + 1);
	if (env && *env && loop_backend_parse(env, &want) < 0) {
		fprintf(stderr, "VMBUSIFY_BACKEND=%s is not a backend\n", env);
		return 1;
	}
	ret = loop_new(&L, LOOP_BACKEND_AUTO);
	if (ret < 0 && want == LOOP_BACKEND_URING) {
		printf("SKIP: io_uring was requested but is unavailable here: %s\n",
		       strerror(-ret));
		return 77;
	}
	if (ret < 0) {
		fprintf(stderr, "loop_new: %s\n", strerror(-ret));
		return 1;
	}
	if (want != LOOP_BACKEND_AUTO && loop_backend(L) != want) {
		fprintf(stderr, "asked for backend %s, got %s\n", loop_backend_name(want),
			loop_backend_name(loop_backend(L)));
		loop_free(L);
		return 1;
	}
	printf("backend: %s\n", loop_backend_name(loop_backend(L)));
	umask(022);
	chunk_pool_init(&pool, 128 * 1024, 4);
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	chunk_pool_destroy(&pool);
	loop_free(L);
	return ret;
}
