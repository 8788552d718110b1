/* What both resolvers (c-ares on Linux, getaddrinfo on Windows) accept as a host name. */
#include <stdbool.h>
#include <string.h>
#include "proxy/resolve_internal.h"

/*
 * True for a name worth asking DNS about: dot-separated labels of 1-63
 * letters, digits, '-' and '_', at most 253 characters without a final dot,
 * and not ending in an all-digit label (an address in a form the literal
 * parser refused, such as "127.1").
 */
bool resolve_name_ok(const char *name)
{
	size_t n = strlen(name), label = 0, last = 0;
	bool digits = true;

	if (n && name[n - 1] == '.')
		n--;
	if (!n || n > 253)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (c == '.') {
			if (!label)
				return false;
			label = 0;
			last = i + 1;
			digits = true;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_') ||
		    ++label > 63)
			return false;
		digits = digits && c >= '0' && c <= '9';
	}
	return label && !(digits && last < n);
}
