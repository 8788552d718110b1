/* libFuzzer target: uri_parse() and guid_parse(), with canonical-form round trips. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/uri.h"

/*
 * The input is one string (a NUL inside ends it). Whatever uri_parse()
 * accepts must format, and its canonical form must parse to the same
 * canonical form; a refusal must come with a one-line reason.
 */

static void fuzz_uri_fail(const char *what, const char *in)
{
	fprintf(stderr, "fuzz_uri: %s: '%s'\n", what, in);
	abort();
}

static void fuzz_uri_check(const char *s)
{
	struct uri u, u2;
	char why[256] = "", canon[512], canon2[512];
	int n;

	if (uri_parse(s, &u, why, sizeof(why))) {
		if (!why[0] || strchr(why, '\n'))
			fuzz_uri_fail("refused without a one-line reason", s);
		return;
	}
	(void)uri_is_single_connection(&u);
	n = uri_format(&u, canon, sizeof(canon));
	if (n < 0 || (size_t)n >= sizeof(canon))
		fuzz_uri_fail("an accepted URI does not format", s);
	if (uri_parse(canon, &u2, why, sizeof(why)))
		fuzz_uri_fail("the canonical form does not parse", canon);
	n = uri_format(&u2, canon2, sizeof(canon2));
	if (n < 0 || strcmp(canon, canon2))
		fuzz_uri_fail("the canonical form is not stable", canon);
}

static void fuzz_uri_guid(const char *s)
{
	struct guid g, g2;
	char text[37];
	uint32_t port;

	if (guid_parse(s, &g))
		return;
	guid_format(&g, text);
	if (guid_parse(text, &g2) || memcmp(&g, &g2, sizeof(g)))
		fuzz_uri_fail("GUID round trip differs", s);
	if (guid_to_vsock_port(&g, &port)) {
		guid_from_vsock_port(port, &g2);
		if (memcmp(&g, &g2, sizeof(g)))
			fuzz_uri_fail("GUID port round trip differs", s);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	fuzz_uri_check(s);
	fuzz_uri_guid(s);
	free(s);
	return 0;
}
