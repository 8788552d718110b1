/* Fuzz target: the FILE request and record decoders and the peer path check (exec/cp_msg.c). */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "exec/cp_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An invariant that holds in every build (FUZZ_CHECK() is gone under NDEBUG). */
#define FUZZ_CHECK(c)                                                                              \
	do {                                                                                       \
		if (!(c))                                                                          \
			abort();                                                                   \
	} while (0)

/*
 * Byte 0 picks the decoder (mod 8); the rest is its input. Beyond not
 * crashing, each decoder that accepts must give back what it was given:
 * a request and the fixed-size records re-encode to the same bytes, an
 * ENTRY re-encodes to the same bytes and its paths pass cp_path_check,
 * a RESULT's strings are printable ASCII and survive a second round trip.
 * cp_path_check is held against a restatement of its rules, and every
 * name cp_top_name gives is one the receiver takes at a source's root.
 */

static void fuzz_cp_req(const uint8_t *p, size_t n)
{
	static uint8_t out[CP_REQ_MAX];
	struct cp_req q;
	char why[256];
	void *mem;
	int len;

	if (cp_req_decode(p, n, &q, &mem, why, sizeof(why))) {
		FUZZ_CHECK(!mem);
		return;
	}
	FUZZ_CHECK(q.count && q.count <= CP_REQ_PATHS_MAX && !q.paths[q.count]);
	for (uint16_t i = 0; i < q.count; i++) {
		size_t pn = strlen(q.paths[i]);

		FUZZ_CHECK(pn && pn <= CP_PATH_MAX);
	}
	len = cp_req_encode(&q, out, sizeof(out));
	FUZZ_CHECK(len == (int)n && !memcmp(out, p, n));
	free(mem);
}

static void fuzz_cp_entry(const uint8_t *p, size_t n)
{
	static uint8_t out[REC_CONTROL_MAX];
	struct cp_entry e;
	bool top;
	int len;

	if (cp_entry_decode(p, n, &e))
		return;
	top = e.flags & CP_E_TOP;
	FUZZ_CHECK(e.type >= CP_T_FILE && e.type <= CP_T_LINK && e.mode <= 07777);
	FUZZ_CHECK(strlen(e.path) == e.path_len && strlen(e.target) == e.target_len);
	FUZZ_CHECK(!cp_path_check(e.path, e.path_len, top, e.type == CP_T_DIR));
	/* "." stands only for a directory's contents, at a source's root. */
	FUZZ_CHECK(strcmp(e.path, ".") || (top && e.type == CP_T_DIR));
	FUZZ_CHECK((e.type == CP_T_LINK) == (e.target_len > 0));
	len = cp_entry_encode(&e, out, sizeof(out));
	FUZZ_CHECK(len == (int)n && !memcmp(out, p, n));
}

static void fuzz_cp_fixed(uint8_t which, const uint8_t *p, size_t n)
{
	uint8_t out[CP_END_LEN];
	struct cp_total t;
	struct cp_done d;
	struct cp_end e;

	switch (which) {
	case 2:
		if (!cp_end_decode(p, n, &e)) {
			cp_end_encode(&e, out);
			FUZZ_CHECK(n == CP_END_LEN && !memcmp(out, p, n));
		}
		break;
	case 3:
		if (!cp_total_decode(p, n, &t)) {
			cp_total_encode(&t, out);
			FUZZ_CHECK(n == CP_TOTAL_LEN && !memcmp(out, p, n));
		}
		break;
	default:
		if (!cp_done_decode(p, n, &d)) {
			cp_done_encode(&d, out);
			FUZZ_CHECK(n == CP_DONE_LEN && !memcmp(out, p, n));
		}
		break;
	}
}

static bool fuzz_cp_printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return false;
	return true;
}

static void fuzz_cp_result(const uint8_t *p, size_t n)
{
	static uint8_t out[REC_CONTROL_MAX];
	struct cp_result r, again;
	int len;

	if (cp_result_decode(p, n, &r))
		return;
	FUZZ_CHECK(r.code && fuzz_cp_printable(r.path) && fuzz_cp_printable(r.text));
	len = cp_result_encode(r.code, r.path, r.text, out, sizeof(out));
	FUZZ_CHECK(len > 0 && (size_t)len <= REC_CONTROL_MAX);
	FUZZ_CHECK(!cp_result_decode(out, (size_t)len, &again) && again.code == r.code);
	FUZZ_CHECK(!strcmp(again.text, r.text) && !strncmp(again.path, r.path, strlen(again.path)));
	/* Printable strings that fit one control record come back byte for byte. */
	if (n <= REC_CONTROL_MAX && !strchr(r.path, '?') && !strchr(r.text, '?'))
		FUZZ_CHECK((size_t)len == n && !memcmp(out, p, n));
}

/* The path check against a plain restatement of its rules, for every flag combination. */
static void fuzz_cp_path(const uint8_t *p, size_t n)
{
	const char *s = (const char *)p;
	bool bad = !n || n > CP_NAME_MAX || memchr(p, '\0', n) || s[0] == '/' || s[n - 1] == '/';
	bool has_slash = memchr(p, '/', n);
	bool is_dot = n == 1 && s[0] == '.';

	for (size_t i = 0, start = 0; !bad && i <= n; i++) {
		if (i < n && s[i] != '/')
			continue;
		if (i == start || (i - start == 1 && s[start] == '.') ||
		    (i - start == 2 && s[start] == '.' && s[start + 1] == '.'))
			bad = true;
		start = i + 1;
	}
	FUZZ_CHECK(cp_path_check(s, n, false, false) == (bad ? -EINVAL : 0));
	FUZZ_CHECK(cp_path_check(s, n, false, true) == (bad ? -EINVAL : 0));
	FUZZ_CHECK(cp_path_check(s, n, true, false) == (bad || has_slash ? -EINVAL : 0));
	FUZZ_CHECK(cp_path_check(s, n, true, true) ==
		   ((bad && !is_dot) || has_slash ? -EINVAL : 0));
}

static void fuzz_cp_top(const uint8_t *p, size_t n)
{
	char src[CP_PATH_MAX + 1], out[CP_NAME_MAX + 1];

	if (n > CP_PATH_MAX || memchr(p, '\0', n))
		return;
	memcpy(src, p, n);
	src[n] = '\0';
	if (cp_top_name(src, out, sizeof(out)))
		return;
	/* The name a source is sent under is always one the receiver takes at the top. */
	FUZZ_CHECK(!cp_path_check(out, strlen(out), true, true));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	switch (data[0] & 7) {
	case 0:
		fuzz_cp_req(data + 1, size - 1);
		break;
	case 1:
		fuzz_cp_entry(data + 1, size - 1);
		break;
	case 2:
	case 3:
	case 4:
		fuzz_cp_fixed(data[0] & 7, data + 1, size - 1);
		break;
	case 5:
		fuzz_cp_result(data + 1, size - 1);
		break;
	case 6:
		fuzz_cp_path(data + 1, size - 1);
		break;
	default:
		fuzz_cp_top(data + 1, size - 1);
		break;
	}
	return 0;
}
