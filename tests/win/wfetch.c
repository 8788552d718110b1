/* vb-wfetch.exe: a minimal HTTP/1.0 GET for the interop tests, run under Wine as a Windows
 * process. */
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * vmbusifyd.exe's proxy port and -L forwards let in only Windows processes
 * whose token is trusted (platform/win/acl.c); under Wine a Linux curl is no
 * Windows process and is refused. This client is the curl of those checks:
 *
 *   vb-wfetch [--socks5 PROXYPORT] HOST PORT PATH OUTFILE
 *
 * connects to 127.0.0.1:PORT (or through the SOCKS5 proxy on
 * 127.0.0.1:PROXYPORT to HOST:PORT, the name sent as it is), sends
 * "GET PATH HTTP/1.0", and writes the body of a 200 answer to OUTFILE.
 * Exit 0 on a 200; 1 with one line on stderr otherwise (SOCKS5 replies as
 * "SOCKS5 reply N", a reset as "connection reset").
 */

#define WFETCH_MAX (64u << 20)

static int wfetch_fail(const char *what)
{
	fprintf(stderr, "vb-wfetch: %s\n", what);
	return 1;
}

/* Reads exactly n bytes; 0, or -1 when the connection ended or failed first. */
static int wfetch_read_n(SOCKET s, unsigned char *buf, int n)
{
	for (int got = 0; got < n;) {
		int r = recv(s, (char *)buf + got, n - got, 0);

		if (r <= 0)
			return -1;
		got += r;
	}
	return 0;
}

/* The SOCKS5 handshake (no authentication, CONNECT to a name); 0, or an exit code. */
static int wfetch_socks5(SOCKET s, const char *host, unsigned port)
{
	unsigned char req[300], rep[262];
	size_t hl = strlen(host), n = 0;
	int skip;

	if (hl > 255)
		return wfetch_fail("host name too long");
	if (send(s, "\x05\x01\x00", 3, 0) != 3 || wfetch_read_n(s, rep, 2) || rep[0] != 5 ||
	    rep[1] != 0)
		return wfetch_fail("SOCKS5: no method accepted (connection refused or reset)");
	req[n++] = 5;
	req[n++] = 1;
	req[n++] = 0;
	req[n++] = 3;
	req[n++] = (unsigned char)hl;
	memcpy(req + n, host, hl);
	n += hl;
	req[n++] = (unsigned char)(port >> 8);
	req[n++] = (unsigned char)port;
	if (send(s, (const char *)req, (int)n, 0) != (int)n || wfetch_read_n(s, rep, 4))
		return wfetch_fail("SOCKS5: no reply to CONNECT");
	if (rep[1] != 0) {
		fprintf(stderr, "vb-wfetch: SOCKS5 reply %u\n", rep[1]);
		return 1;
	}
	skip = rep[3] == 1 ? 4 : rep[3] == 4 ? 16 : -1;
	if (skip < 0 || wfetch_read_n(s, rep, skip + 2))
		return wfetch_fail("SOCKS5: a malformed reply");
	return 0;
}

/* Sends the GET, reads the whole answer and writes a 200's body to out; 0, or an exit code. */
static int wfetch_get(SOCKET s, const char *host, const char *path, const char *out)
{
	char req[1200], *buf = malloc(WFETCH_MAX), *body;
	size_t have = 0;
	FILE *f;
	int r = 0, ret = 1;

	if (!buf)
		return wfetch_fail("out of memory");
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: %s\r\n\r\n", path, host);
	if (send(s, req, (int)strlen(req), 0) != (int)strlen(req)) {
		ret = wfetch_fail("cannot send the request (connection reset)");
		goto out;
	}
	while (have < WFETCH_MAX - 1 &&
	       (r = recv(s, buf + have, (int)(WFETCH_MAX - 1 - have), 0)) > 0)
		have += (size_t)r;
	if (r < 0 && !have) {
		ret = wfetch_fail(WSAGetLastError() == WSAECONNRESET ? "connection reset"
								     : "receive failed");
		goto out;
	}
	buf[have] = '\0';
	body = strstr(buf, "\r\n\r\n");
	if (!body || strncmp(buf, "HTTP/1.", 7) || strncmp(buf + 8, " 200", 4)) {
		ret =
		    wfetch_fail(have ? "not a 200 answer" : "connection closed without an answer");
		goto out;
	}
	body += 4;
	f = fopen(out, "wb");
	if (!f || fwrite(body, 1, have - (size_t)(body - buf), f) != have - (size_t)(body - buf)) {
		ret = wfetch_fail("cannot write the output file");
		if (f)
			fclose(f);
		goto out;
	}
	ret = fclose(f) ? wfetch_fail("cannot write the output file") : 0;
out:
	free(buf);
	return ret;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	unsigned proxy = 0, port;
	WSADATA wd;
	SOCKET s;
	int ret;

	if (argc == 7 && !strcmp(argv[1], "--socks5")) {
		proxy = (unsigned)atoi(argv[2]);
		argv += 2;
		argc -= 2;
	}
	if (argc != 5)
		return wfetch_fail("usage: vb-wfetch [--socks5 PROXYPORT] HOST PORT PATH OUTFILE");
	port = (unsigned)atoi(argv[2]);
	if (WSAStartup(MAKEWORD(2, 2), &wd))
		return wfetch_fail("WSAStartup failed");
	s = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
	sin.sin_port = htons((u_short)(proxy ? proxy : port));
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (s == INVALID_SOCKET || connect(s, (struct sockaddr *)&sin, sizeof(sin)))
		return wfetch_fail("connection refused");
	ret = proxy ? wfetch_socks5(s, argv[1], port) : 0;
	if (!ret)
		ret = wfetch_get(s, argv[1], argv[3], argv[4]);
	closesocket(s);
	return ret;
}
