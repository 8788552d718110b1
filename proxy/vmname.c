/* Ingress destinations named after VMs. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "proxy/vmname.h"

/* An inner part with "--" or with letters a-f and '-' only in IPv6 shape becomes an address. */
static void vmname_inner(const char *p, size_t n, char *inner)
{
	bool v6 = n >= 2 && memchr(p, '-', n) && !memchr(p, '.', n);

	for (size_t i = 0; i < n; i++) {
		char c = p[i];

		v6 = v6 && ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
			    (c >= 'A' && c <= 'F') || c == '-');
	}
	memcpy(inner, p, n);
	inner[n] = '\0';
	if (!v6)
		return;
	for (size_t i = 0; i < n; i++) {
		if (inner[i] == '-')
			inner[i] = ':';
	}
}

int vmname_split(const char *host, vmname_exists_fn exists, void *arg, char *vm, size_t vmcap,
		 char *inner, size_t innercap)
{
	size_t n = strlen(host), sl = strlen(VMNAME_SUFFIX);
	size_t best = 0;

	if (n && host[n - 1] == '.')
		n--;
	if (n <= sl || strncasecmp(host + n - sl, VMNAME_SUFFIX, sl) != 0)
		return 0;
	n -= sl;
	/* Candidates: host[k..n) for k = 0 and every k just after a dot. */
	for (size_t k = 0; k < n; k++) {
		if (k && host[k - 1] != '.')
			continue;
		if (exists(arg, host + k, n - k)) {
			best = k + 1; /* k + 1 so that 0 means none */
			break;
		}
	}
	if (!best)
		return -ENOENT;
	best--;
	if (best == 1)
		return -EINVAL; /* ".lab1.vmbus": an empty inner name */
	if (n - best >= vmcap || (best ? best - 1 : 9) >= innercap)
		return -ENAMETOOLONG;
	memcpy(vm, host + best, n - best);
	vm[n - best] = '\0';
	if (best)
		vmname_inner(host, best - 1, inner);
	else
		snprintf(inner, innercap, "127.0.0.1");
	return 1;
}
