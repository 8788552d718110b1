/* libFuzzer target: config_parse() on arbitrary files, checking what it accepts. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/config.h"
#include "core/uri.h"

/*
 * The input is the file. An accepted file yields valid, unique VM names,
 * URIs that parse and threads in range; a refused one yields -EINVAL (or
 * -ENOMEM), a one-line "line N: ..." reason and the defaults.
 */

static void fuzz_config_fail(const char *what)
{
	fprintf(stderr, "fuzz_config: %s\n", what);
	abort();
}

static void fuzz_config_accepted(const struct config *c)
{
	struct config fresh;
	struct uri u;
	char why[256];

	if (c->threads < 0 || c->threads > CONFIG_THREADS_MAX)
		fuzz_config_fail("threads out of range");
	if (uri_parse(c->control, &u, why, sizeof(why)))
		fuzz_config_fail("control does not parse");
	config_init(&fresh);
	for (size_t i = 0; i < c->nvms; i++) {
		/* Adding every VM again to an empty config checks names, uniqueness and URIs. */
		if (config_add_vm(&fresh, c->vms[i].name, c->vms[i].uri, why, sizeof(why)))
			fuzz_config_fail("an accepted VM is not valid");
	}
	config_free(&fresh);
}

static void fuzz_config_refused(const struct config *c, int ret, const char *why)
{
	if (ret != -EINVAL && ret != -ENOMEM)
		fuzz_config_fail("unexpected error code");
	if (strncmp(why, "line ", 5) || strchr(why, '\n'))
		fuzz_config_fail("reason is not one line starting with its line number");
	if (c->nvms || c->vms || c->threads != CONFIG_THREADS_AUTO)
		fuzz_config_fail("a refused file left something behind");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1); /* exactly size bytes, no NUL after them */
	struct config c;
	char why[512] = "";
	int ret;

	if (!buf)
		abort();
	memcpy(buf, data, size);
	ret = config_parse(buf, size, &c, why, sizeof(why));
	if (ret)
		fuzz_config_refused(&c, ret, why);
	else
		fuzz_config_accepted(&c);
	config_free(&c);
	free(buf);
	return 0;
}
