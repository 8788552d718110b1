#!/usr/bin/env bash
# The proxy (issue 4) with real clients in the lab. Egress: from inside lab1, which has no
# network, curl (SOCKS5, SOCKS5 with names, SOCKS4, SOCKS4a, HTTP absolute-form and CONNECT),
# git over http and ssh through `nc -X 5` reach the external namespace through the agent's port
# and the daemon, under the [egress] policy this test gives the daemon: denials, a closed port and
# an unknown name get their SOCKS5 codes, a half-closed connection still gets its answer, a client
# that leaves mid-transfer leaves no stream behind, and 1,000 connections move checksummed data at
# once. Ingress: the daemon's port reaches <vm>.vmbus and <address>.<vm>.vmbus and nothing else;
# -L and -R forwards carry HTTP and ssh, are listed, and close their ports when removed. Last, the
# per-VM limits (max-connections, connect-rate) refuse at once rather than hang.
#
# Usage: tests/lab/test_lab_proxy.sh BUILDDIR   (binaries in BUILDDIR)
# Environment: VB_PROXY_LOAD_CONNS (default 1000) and VB_PROXY_LOAD_BYTES (default 65536 per
# connection) size the concurrent transfer.
# Exit codes: 0 passed, 1 failed, 77 skipped (not root, binaries or tools missing, or another
# lab stayed up for 10 minutes: the lab's namespace names are fixed, one lab per machine).
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly EXT_V4=198.51.100.80 # the external server's address (lo of vbl-ext)
readonly EXT_V6=fd00:7662:6c61::2
readonly EXT_NAME=ext.lab.test
readonly HOST_V4=198.18.0.1
readonly WWW_LINE="vmbusify lab external server" # what lab.sh's index.html says
readonly PY=/usr/bin/python3                      # Debian's, not a user's PATH's
readonly PORT_ECHO=7001 PORT_ANSWER=7002 PORT_SOURCE=7003 PORT_SINK=7004 # tool.py serve
readonly PORT_SSH_EXT=22 PORT_SSH_VM=2222 PORT_SSH_HOST=2223
readonly PORT_WWW_VM=8081 PORT_WWW_HOST=8090
readonly LOAD_CONNS="${VB_PROXY_LOAD_CONNS:-1000}"
readonly LOAD_BYTES="${VB_PROXY_LOAD_BYTES:-65536}"

VB=""   # the vmbusify binary under test
TMP=""  # the test's scratch directory
DIR=""  # the lab's directory, absolute
SSHO=() # ssh's options: no config, throwaway keys
VM=(ip netns exec vbl-lab1) # a command's prefix to run it in lab1 (`run` needs a program)
HOST=(ip netns exec vbl-host)
OUT=""  # the last run's stdout, stderr and status
ERR=""
RC=0

# ---------------------------------------------------------------- the daemon's configuration

# The lab daemon's configuration (scripts/lab.sh: VB_LAB_DAEMON_CONFIG). The rate leaves room for
# 1,000 connections at once; a name rule, an address rule and the default deny show denials.
# The built-ins (the host's loopback) still apply before every allow.
write_config() {
	cat >"$TMP/vmbusifyd.conf" <<-CONF
		[proxy]
		max-connections = $((LOAD_CONNS + 24 > 1024 ? LOAD_CONNS + 24 : 1024))
		connect-rate = 20000/s burst 20000

		[egress]
		deny www.lab.test
		deny $HOST_V4
		allow 198.51.100.0/24
		allow fd00:7662:6c61::/64
		default = deny
	CONF
	# For the limits, last: a daemon restarted with this one.
	cat >"$TMP/vmbusifyd-limits.conf" <<-CONF
		[proxy]
		max-connections = 20
		connect-rate = 2/s burst 25

		[egress]
		allow 198.51.100.0/24
		default = deny
	CONF
}

# config_line TEXT - the line number of TEXT in the daemon's configuration.
config_line() {
	grep -nxF "$1" "$TMP/vmbusifyd.conf" | cut -d: -f1
}

# ---------------------------------------------------------------- the clients' helper

# The Python helper, run in the lab's namespaces: the servers in vbl-ext, and the SOCKS5 clients
# that curl cannot be (half-close, aborts, 1,000 at once, the limits).
write_tool() {
	cat >"$TMP/tool.py" <<'PYEOF'
"""Servers and SOCKS5 clients for tests/lab/test_lab_proxy.sh."""
import asyncio, hashlib, ipaddress, json, os, socket, struct, sys, time

CHUNK = 65536


# ---- servers (in vbl-ext) ----

async def echo(r, w):
    """Echoes until EOF, then half-closes."""
    try:
        while True:
            b = await r.read(CHUNK)
            if not b:
                break
            w.write(b)
            await w.drain()
        w.write_eof()
        await w.drain()
    except OSError:
        pass
    w.close()


async def answer(r, w):
    """Reads until EOF, then answers the SHA-256 of what came (a server that needs the EOF)."""
    h, n = hashlib.sha256(), 0
    try:
        while True:
            b = await r.read(CHUNK)
            if not b:
                break
            h.update(b)
            n += len(b)
        w.write(f"{n} {h.hexdigest()}\n".encode())
        await w.drain()
    except OSError:
        pass
    w.close()


async def source(r, w):
    """Sends without end, until the client goes."""
    block = os.urandom(CHUNK)
    try:
        while True:
            w.write(block)
            await w.drain()
    except OSError:
        pass
    w.close()


async def sink(r, w):
    """Reads and drops everything."""
    try:
        while await r.read(CHUNK):
            pass
    except OSError:
        pass
    w.close()


async def serve(host, base):
    servers = []
    for i, fn in enumerate((echo, answer, source, sink)):
        servers.append(await asyncio.start_server(fn, host, base + i, backlog=4096,
                                                  reuse_address=True))
    print("serving", host, base, "to", base + 3, flush=True)
    await asyncio.Event().wait()


# ---- SOCKS5 ----

def socks5_request(host, port):
    try:
        ip = ipaddress.ip_address(host)
        atyp = b"\x01" if ip.version == 4 else b"\x04"
        addr = atyp + ip.packed
    except ValueError:
        addr = b"\x03" + bytes([len(host)]) + host.encode()
    return b"\x05\x01\x00" + addr + struct.pack(">H", port)


async def socks5_open(proxy, host, port, timeout=20):
    """Returns (reply code, reader, writer); the code is -1 when the proxy closed without one."""
    ph, pp = proxy
    r, w = await asyncio.wait_for(asyncio.open_connection(ph, pp), timeout)
    try:
        w.write(b"\x05\x01\x00")
        await w.drain()
        m = await asyncio.wait_for(r.readexactly(2), timeout)
        if m != b"\x05\x00":
            raise OSError(f"method reply {m!r}")
        w.write(socks5_request(host, port))
        await w.drain()
        head = await asyncio.wait_for(r.readexactly(4), timeout)
        atyp = head[3]
        rest = 4 if atyp == 1 else 16 if atyp == 4 else (await r.readexactly(1))[0]
        await asyncio.wait_for(r.readexactly(rest + 2), timeout)
    except asyncio.IncompleteReadError:
        w.close()
        return -1, None, None
    return head[1], r, w


def rst_close(w):
    """Closes with an RST, as a killed client would."""
    sock = w.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    w.close()


# ---- clients (in lab1) ----

async def halfclose(proxy, host, port, size):
    """Sends size bytes, shuts down writing, and expects the answer that comes after the EOF."""
    code, r, w = await socks5_open(proxy, host, port)
    if code:
        return {"ok": False, "code": code}
    data = os.urandom(size)
    w.write(data)
    await w.drain()
    w.write_eof()
    got = (await asyncio.wait_for(r.read(), 20)).decode().strip()
    w.close()
    want = f"{size} {hashlib.sha256(data).hexdigest()}"
    return {"ok": got == want, "got": got, "want": want}


async def abort(proxy, host, port, mode, n):
    """Opens n connections, moves 1 MiB on each (down from a source or up to a sink), then
    leaves: "rst" with an RST, "fin" with a plain close, mid-transfer either way."""
    out = []
    for _ in range(n):
        code, r, w = await socks5_open(proxy, host, port)
        if code:
            out.append(code)
            continue
        moved = 0
        if mode.startswith("down"):
            while moved < 1 << 20:
                b = await asyncio.wait_for(r.read(CHUNK), 20)
                if not b:
                    break
                moved += len(b)
        else:
            block = os.urandom(CHUNK)
            while moved < 1 << 20:
                w.write(block)
                await asyncio.wait_for(w.drain(), 20)
                moved += len(block)
            w.write(block * 16)  # more in flight as it goes
        if mode.endswith("rst"):
            rst_close(w)
        else:
            w.close()
        out.append(0 if moved >= 1 << 20 else -2)
    return {"ok": all(c == 0 for c in out), "results": out}


async def load(proxy, host, port, n, size, opening):
    """n connections, all open before any data moves; then each sends size random bytes, reads
    the echo and compares SHA-256. opening bounds the handshakes in flight."""
    gate, all_open = asyncio.Semaphore(opening), asyncio.Event()
    state = {"open": 0, "max_open": 0}
    errors = []
    t0 = time.monotonic()

    async def one(i):
        async with gate:
            try:
                code, r, w = await socks5_open(proxy, host, port, timeout=60)
            except (OSError, asyncio.TimeoutError) as e:
                code, r, w = f"{type(e).__name__}: {e}", None, None
        if code != 0:
            errors.append(f"conn {i}: {code}")
            state["open"] += 1  # counted, so that the others do not wait for it
            if state["open"] == n:
                all_open.set()
            return False
        state["open"] += 1
        state["max_open"] = max(state["max_open"], state["open"])
        if state["open"] == n:
            all_open.set()
        await all_open.wait()
        data = os.urandom(size)

        async def send():
            for off in range(0, size, CHUNK):
                w.write(data[off:off + CHUNK])
                await w.drain()
            w.write_eof()

        async def recv():
            h, got = hashlib.sha256(), 0
            while True:
                b = await r.read(CHUNK)
                if not b:
                    break
                h.update(b)
                got += len(b)
            return got, h.hexdigest()

        try:
            _, (got, digest) = await asyncio.wait_for(asyncio.gather(send(), recv()), 120)
        except (OSError, asyncio.TimeoutError) as e:
            errors.append(f"conn {i}: {type(e).__name__}: {e}")
            w.close()
            return False
        w.close()
        if got != size or digest != hashlib.sha256(data).hexdigest():
            errors.append(f"conn {i}: {got} bytes back, checksum {'ok' if digest == hashlib.sha256(data).hexdigest() else 'wrong'}")
            return False
        return True

    t_open = None

    async def watch():
        nonlocal t_open
        await all_open.wait()
        t_open = time.monotonic() - t0

    w = asyncio.ensure_future(watch())
    res = await asyncio.gather(*(one(i) for i in range(n)))
    await w
    return {"ok": sum(res), "conns": n, "max_open": state["max_open"], "bytes_each": size,
            "open_s": round(t_open or 0, 2), "total_s": round(time.monotonic() - t0, 2),
            "errors": errors[:5], "nerrors": len(errors)}


async def limit(proxy, host, port, hold):
    """Holds `hold` connections open, then asks for one more: it must be answered (refused),
    quickly. Returns the codes and how long the extra one took."""
    held, codes = [], []
    for _ in range(hold):
        code, r, w = await socks5_open(proxy, host, port)
        codes.append(code)
        if w:
            held.append(w)
    t0 = time.monotonic()
    try:
        extra, _, w = await socks5_open(proxy, host, port, timeout=10)
        if w:
            w.close()
    except asyncio.TimeoutError:
        extra = "timeout"
    dt = time.monotonic() - t0
    for w in held:
        w.close()
    return {"held": codes, "extra": extra, "extra_ms": round(dt * 1000)}


async def burst(proxy, host, port, n):
    """n connections one after another, each closed once answered: the codes, and the slowest
    answer (a refusal must not hang)."""
    codes, slowest = {}, 0.0
    for _ in range(n):
        t0 = time.monotonic()
        try:
            code, _, w = await socks5_open(proxy, host, port, timeout=10)
            if w:
                w.close()
        except asyncio.TimeoutError:
            code = "timeout"
        slowest = max(slowest, time.monotonic() - t0)
        codes[str(code)] = codes.get(str(code), 0) + 1
    return {"codes": codes, "slowest_ms": round(slowest * 1000)}


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "serve":
        asyncio.run(serve(args[0], int(args[1])))
        return
    proxy = (args[0], int(args[1]))
    host, port = args[2], int(args[3])
    rest = args[4:]
    if cmd == "halfclose":
        res = asyncio.run(halfclose(proxy, host, port, int(rest[0])))
    elif cmd == "abort":
        res = asyncio.run(abort(proxy, host, port, rest[0], int(rest[1])))
    elif cmd == "load":
        res = asyncio.run(load(proxy, host, port, int(rest[0]), int(rest[1]), int(rest[2])))
    elif cmd == "limit":
        res = asyncio.run(limit(proxy, host, port, int(rest[0])))
    elif cmd == "burst":
        res = asyncio.run(burst(proxy, host, port, int(rest[0])))
    else:
        sys.exit(f"unknown command {cmd}")
    print(json.dumps(res))


main()
PYEOF
}

# ---------------------------------------------------------------- helpers

# run NAME TIMEOUT CMD... - run CMD with a deadline; its stdout and stderr go to OUT and ERR, its
# status to RC.
run() {
	local name="$1" secs="$2"
	shift 2
	OUT="$TMP/$name.out"
	ERR="$TMP/$name.err"
	RC=0
	timeout -k 5 "$secs" "$@" >"$OUT" 2>"$ERR" </dev/null || RC=$?
}

show() {
	printf 'status %s; stdout: %s; stderr: %s' "$RC" "$(head -c 600 "$OUT")" "$(head -c 600 "$ERR")"
}

pid_gone() {
	! lab_pid_alive "$1"
}

lab_is_free() {
	local rc=0
	"$LAB_SH" status >/dev/null 2>&1 || rc=$?
	[[ $rc -eq 3 ]] && ! ip netns list 2>/dev/null | grep -q '^vbl-'
}

# wait_for_free_lab - another engineer's lab may be up: wait for it to go down (polling every
# 20 s, at most 10 min) rather than take it down.
wait_for_free_lab() {
	local deadline=$((SECONDS + 600))
	until lab_is_free; do
		((SECONDS < deadline)) || skip "another lab stayed up for 10 min (one lab per machine)"
		echo "$LAB_TEST_NAME: another lab is up; waiting for it to go down" >&2
		sleep 20
	done
}

vm_is_up() {
	"$VB" ls --json | jq -e --arg vm "$1" '.vms[] | select(.name == $vm) | .state == "up"' >/dev/null
}

# streams VM - the number of streams of the daemon's session with VM.
streams() {
	"$VB" ls --json | jq -r --arg vm "$1" '.vms[] | select(.name == $vm) | .streams // "none"'
}

streams_are() {
	[[ "$(streams lab1)" == "$1" ]]
}

# listening NETNS PORT - something listens on TCP PORT in NETNS.
listening() {
	[[ -n "$(ip netns exec "$1" ss -ltnH "sport = :$2")" ]]
}

not_listening() {
	! listening "$@"
}

# established NETNS PORT - the number of established connections to local PORT in NETNS.
established() {
	ip netns exec "$1" ss -tnH state established "sport = :$2" | wc -l
}

none_established() {
	[[ "$(established "$1" "$2")" -eq 0 ]]
}

# spawn NAME NETNS CMD... - a server of the test, marked as the lab's (`lab down` ends it too)
# and ended when the test exits.
spawn() {
	local name="$1" ns="$2" pid
	shift 2
	pid="$(lab_respawn "$name" "$ns" "$@")" || fail "could not start $name in $ns"
	lab_at_exit kill -TERM "$pid"
}

# ---------------------------------------------------------------- the servers

start_servers() {
	spawn ext-tool vbl-ext "$PY" "$TMP/tool.py" serve 0.0.0.0 "$PORT_ECHO"
	mkdir -p /run/sshd # sshd's privilege separation directory
	ssh-keygen -q -t ed25519 -N '' -C vbl-host-key -f "$TMP/hostkey"
	ssh-keygen -q -t ed25519 -N '' -C vbl-client -f "$TMP/key"
	install -m 600 "$TMP/key.pub" "$TMP/authorized_keys"
	# -f /dev/null: OpenSSH's defaults, not this machine's sshd_config. StrictModes=no: the keys
	# live under /tmp, which is world-writable.
	local sshd=(/usr/sbin/sshd -D -e -f /dev/null -h "$TMP/hostkey"
		-o AuthorizedKeysFile="$TMP/authorized_keys" -o StrictModes=no)
	spawn ext-sshd vbl-ext "${sshd[@]}" -o PidFile="$TMP/sshd-ext.pid" \
		-o ListenAddress="$EXT_V4:$PORT_SSH_EXT"
	spawn lab1-sshd vbl-lab1 "${sshd[@]}" -o PidFile="$TMP/sshd-vm.pid" \
		-o ListenAddress="127.0.0.1:$PORT_SSH_VM"
	spawn host-sshd vbl-host "${sshd[@]}" -o PidFile="$TMP/sshd-host.pid" \
		-o ListenAddress="127.0.0.1:$PORT_SSH_HOST"
	mkdir -p "$TMP/www-vm" "$TMP/www-host"
	echo "served by lab1's loopback" >"$TMP/www-vm/index.html"
	echo "served by the host's loopback" >"$TMP/www-host/index.html"
	chmod -R a+rX "$TMP/www-vm" "$TMP/www-host"
	spawn lab1-www vbl-lab1 "$PY" -m http.server --bind 127.0.0.1 --directory "$TMP/www-vm" \
		"$PORT_WWW_VM"
	spawn host-www vbl-host "$PY" -m http.server --bind 127.0.0.1 \
		--directory "$TMP/www-host" "$PORT_WWW_HOST"
	SSHO=(-F /dev/null -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
		-o LogLevel=ERROR -o BatchMode=yes -o ConnectTimeout=10 -i "$TMP/key")
	local ns port ns_port
	for ns_port in vbl-ext:$PORT_ECHO vbl-ext:$PORT_SINK vbl-ext:$PORT_SSH_EXT \
		vbl-lab1:$PORT_SSH_VM vbl-host:$PORT_SSH_HOST vbl-lab1:$PORT_WWW_VM \
		vbl-host:$PORT_WWW_HOST; do
		ns="${ns_port%%:*}"
		port="${ns_port#*:}"
		lab_wait_until 10 listening "$ns" "$port" || fail "nothing listens on $port in $ns"
	done
}

# make_repo - a git repository served over dumb HTTP by the lab's web server (DIR/www).
make_repo() {
	local src="$TMP/repo-src"
	git init -q -b main "$src"
	head -c 300000 /dev/urandom | base64 >"$src/data.txt"
	echo "a repository in the external namespace" >"$src/README"
	git -C "$src" add .
	git -C "$src" -c user.name=lab -c user.email=lab@lab.test commit -q -m "first"
	git clone -q --bare "$src" "$DIR/www/repo.git"
	git -C "$DIR/www/repo.git" update-server-info
	chmod -R a+rX "$DIR/www/repo.git"
}

# ---------------------------------------------------------------- egress: curl

# curl_vm NAME CURL_ARGS... - curl inside lab1; OUT holds the body.
curl_vm() {
	local name="$1"
	shift
	run "$name" 30 "${VM[@]}" curl -q -sS --max-time 20 "$@"
}

# expect_page WHAT CURL_ARGS... - curl inside lab1 gets the external server's page.
expect_page() {
	local what="$1"
	shift
	curl_vm page "$@"
	if [[ $RC -eq 0 ]] && grep -qF "$WWW_LINE" "$OUT"; then
		pass "egress: $what"
	else
		fail_soft "egress: $what: $(show)"
	fi
}

test_curl_every_protocol() {
	local p=127.0.0.1:1080
	expect_page "curl --socks5-hostname $EXT_NAME" --socks5-hostname "$p" "http://$EXT_NAME/"
	expect_page "curl --socks5-hostname $EXT_V4" --socks5-hostname "$p" "http://$EXT_V4/"
	expect_page "curl --socks5 $EXT_V4" --socks5 "$p" "http://$EXT_V4/"
	expect_page "curl --socks4a $EXT_NAME" --socks4a "$p" "http://$EXT_NAME/"
	expect_page "curl --socks4a $EXT_V4" --socks4a "$p" "http://$EXT_V4/"
	expect_page "curl --socks4 $EXT_V4" --socks4 "$p" "http://$EXT_V4/"
	expect_page "curl --proxy http:// $EXT_NAME (absolute-form GET)" --proxy "http://$p" \
		"http://$EXT_NAME/"
	expect_page "curl --proxy http:// $EXT_V4 (absolute-form GET)" --proxy "http://$p" \
		"http://$EXT_V4/"
	expect_page "curl -p --proxy http:// $EXT_NAME (CONNECT tunnel)" -p --proxy "http://$p" \
		"http://$EXT_NAME/"
	expect_page "curl -p --proxy http:// $EXT_V4 (CONNECT tunnel)" -p --proxy "http://$p" \
		"http://$EXT_V4/"
	expect_page "curl -x socks5h://[::1]:1080 (the agent's IPv6 port) $EXT_NAME" \
		-x "socks5h://[::1]:1080" "http://$EXT_NAME/"
	if [[ -d /proc/sys/net/ipv6 ]]; then
		expect_page "curl --socks5-hostname to an IPv6 destination [$EXT_V6]" \
			--socks5-hostname "$p" "http://[$EXT_V6]/"
	else
		skip_part "no IPv6 on this machine: the IPv6 destination is not checked"
	fi
	# curl resolves names itself for --socks5 and --socks4, and lab1 has no DNS server it can
	# reach: those go by address only.
}

test_proxy_env() {
	local env
	env="$("$VB" proxy env lab1)" || fail "vmbusify proxy env lab1 failed"
	run env 30 "${VM[@]}" sh -c "$env
curl -q -sS --max-time 20 http://$EXT_NAME/ && curl -q -sS --max-time 20 -o /dev/null -w '%{http_code}' http://www.lab.test/"
	if [[ $RC -eq 0 ]] && grep -qF "$WWW_LINE" "$OUT" && [[ "$(tail -c 3 "$OUT")" == 403 ]]; then
		pass "egress: with the settings of 'vmbusify proxy env', a plain curl in lab1 goes through the proxy (and a denied name gets 403)"
	else
		fail_soft "egress: vmbusify proxy env: $(show)"
	fi
}

test_curl_big_file() {
	local want
	want="$(awk '{ print $1 }' "$DIR/www/big.bin.sha256")"
	run big 60 "${VM[@]}" sh -c \
		"curl -q -fsS --max-time 50 --socks5-hostname 127.0.0.1:1080 http://$EXT_NAME/big.bin | sha256sum"
	if [[ $RC -eq 0 && "$(awk '{ print $1 }' "$OUT")" == "$want" ]]; then
		pass "egress: 16 MiB through --socks5-hostname arrives intact (SHA-256)"
	else
		fail_soft "egress: 16 MiB through --socks5-hostname: $(show)"
	fi
}

# ---------------------------------------------------------------- egress: git and ssh

test_git_clone() {
	local want got
	want="$(git -C "$TMP/repo-src" rev-parse HEAD)"
	rm -rf "$TMP/clone"
	run git 60 "${VM[@]}" env HOME="$TMP" GIT_CONFIG_NOSYSTEM=1 git -c http.proxy=socks5h://127.0.0.1:1080 \
		clone -q "http://$EXT_NAME/repo.git" "$TMP/clone"
	got="$(git -C "$TMP/clone" rev-parse HEAD 2>/dev/null || true)"
	if [[ $RC -eq 0 && "$got" == "$want" ]] && cmp -s "$TMP/clone/data.txt" "$TMP/repo-src/data.txt"; then
		pass "egress: git clone http://$EXT_NAME/repo.git with http.proxy=socks5h://127.0.0.1:1080 (HEAD $got, files equal)"
	else
		fail_soft "egress: git clone through socks5h: HEAD '$got', expected '$want': $(show)"
	fi
}

test_ssh_through_nc() {
	local want
	want="$(head -c 4M "$DIR/www/big.bin" | sha256sum | awk '{ print $1 }')"
	run ssh 60 "${VM[@]}" sh -c "head -c 4M '$DIR/www/big.bin' | ssh $(printf '%q ' "${SSHO[@]}") \
		-o 'ProxyCommand=nc -X 5 -x 127.0.0.1:1080 %h %p' -p $PORT_SSH_EXT root@$EXT_NAME \
		'ip netns identify \$\$; sha256sum'"
	if [[ $RC -eq 0 && "$(head -n 1 "$OUT")" == vbl-ext && "$(sed -n '2s/ .*//p' "$OUT")" == "$want" ]]; then
		pass "egress: ssh with ProxyCommand 'nc -X 5 -x 127.0.0.1:1080 %h %p' to $EXT_NAME: a shell in vbl-ext, 4 MiB of stdin intact"
	else
		fail_soft "egress: ssh through nc -X 5: $(show)"
	fi
}

# ---------------------------------------------------------------- egress: the policy

# socks5_refused CODE - the last curl failed on the SOCKS5 reply CODE (curl 7.88 has no
# %{proxy_error} for SOCKS: status 97 and "Can't complete SOCKS5 connection to HOST. (CODE)").
socks5_refused() {
	[[ $RC -eq 97 ]] && grep -qE "SOCKS5 connection to .*\($1\)\$" "$ERR"
}

# expect_socks5_code CODE MEANING WHAT TARGET - curl --socks5-hostname in lab1 to TARGET fails
# with SOCKS5 reply CODE (RFC 1928's MEANING).
expect_socks5_code() {
	local code="$1" meaning="$2" what="$3" target="$4"
	curl_vm code -o /dev/null --socks5-hostname 127.0.0.1:1080 "$target"
	if socks5_refused "$code"; then
		pass "egress: $what: SOCKS5 reply $code, $meaning"
	else
		fail_soft "egress: $what: expected curl status 97 on SOCKS5 reply $code ($meaning): $(show)"
	fi
}

# log_has REGEX - the daemon's log has a line matching REGEX.
log_has() {
	grep -qE "$1" "$DIR/vmbusifyd.log"
}

test_policy() {
	local line
	line="$(config_line "deny www.lab.test")"
	expect_socks5_code 2 "connection not allowed by ruleset" "a name denied by 'deny www.lab.test'" \
		"http://www.lab.test/"
	if lab_wait_until 5 log_has "lab1: denied www\.lab\.test:80: .*'deny www\.lab\.test' \(line $line\)"; then
		pass "egress: the daemon logs the denial with its rule: $(grep -E 'lab1: denied www\.lab\.test' "$DIR/vmbusifyd.log" | tail -n 1)"
	else
		fail_soft "egress: no 'lab1: denied www.lab.test:80: ... (line $line)' in the daemon's log"
	fi
	expect_socks5_code 2 "connection not allowed by ruleset" "an address denied by 'deny $HOST_V4'" \
		"http://$HOST_V4/"
	expect_socks5_code 2 "connection not allowed by ruleset" "an address no rule allows (default = deny)" \
		"http://192.0.2.1/"
	expect_socks5_code 2 "connection not allowed by ruleset" "the host's loopback (built-in deny)" \
		"http://127.0.0.1:$PORT_WWW_HOST/"
	if lab_wait_until 5 log_has "lab1: denied 127\.0\.0\.1:$PORT_WWW_HOST: .*built-in"; then
		pass "egress: the built-in denial is logged as built-in"
	else
		fail_soft "egress: no 'lab1: denied 127.0.0.1:$PORT_WWW_HOST: ... built-in' in the daemon's log"
	fi
	expect_socks5_code 5 "connection refused" "a closed port ($EXT_V4:81)" \
		"http://$EXT_V4:81/"
	expect_socks5_code 4 "host unreachable" "a name that does not resolve" \
		"http://nosuch.lab.test/"
	curl_vm http403 -o /dev/null -w '%{http_code}' --proxy http://127.0.0.1:1080 "http://www.lab.test/"
	if [[ "$(cat "$OUT")" == 403 ]]; then
		pass "egress: HTTP proxy, a denied name: 403"
	else
		fail_soft "egress: HTTP proxy to a denied name: expected 403: $(show)"
	fi
}

# ---------------------------------------------------------------- egress: connection ends

test_half_close() {
	run half 30 "${VM[@]}" "$PY" "$TMP/tool.py" halfclose 127.0.0.1 1080 "$EXT_V4" "$PORT_ANSWER" 300000
	if [[ $RC -eq 0 ]] && jq -e .ok "$OUT" >/dev/null; then
		pass "egress: half-close: the client shuts down writing and still gets the server's answer ($(jq -r .got "$OUT" | cut -c1-24)...)"
	else
		fail_soft "egress: half-close: $(show)"
	fi
}

# abort_leaves_nothing MODE PORT WHAT - clients that leave mid-transfer leave no stream in the
# daemon's session and no connection at the server.
abort_leaves_nothing() {
	local mode="$1" port="$2" what="$3" base
	base="$(streams lab1)"
	run "abort-$mode" 60 "${VM[@]}" "$PY" "$TMP/tool.py" abort 127.0.0.1 1080 "$EXT_V4" "$port" "$mode" 4
	if [[ $RC -ne 0 ]] || ! jq -e .ok "$OUT" >/dev/null; then
		fail_soft "egress: $what: the transfers did not run: $(show)"
		return
	fi
	if ! lab_wait_until 10 streams_are "$base"; then
		fail_soft "egress: $what: lab1 has $(streams lab1) streams 10 s later, $base before"
	elif ! lab_wait_until 10 none_established vbl-ext "$port"; then
		fail_soft "egress: $what: $(established vbl-ext "$port") connections still open at the server"
	else
		pass "egress: $what: 4 clients, 1 MiB each; lab1's streams back to $base, none open at the server"
	fi
}

test_aborts() {
	abort_leaves_nothing down-rst "$PORT_SOURCE" "a client that resets mid-download"
	abort_leaves_nothing down-fin "$PORT_SOURCE" "a client that closes mid-download"
	abort_leaves_nothing up-rst "$PORT_SINK" "a client that resets mid-upload"
}

test_many_at_once() {
	local base
	base="$(streams lab1)"
	run load 300 "${VM[@]}" "$PY" "$TMP/tool.py" load 127.0.0.1 1080 "$EXT_V4" "$PORT_ECHO" \
		"$LOAD_CONNS" "$LOAD_BYTES" 200
	if [[ $RC -eq 0 ]] && jq -e --argjson n "$LOAD_CONNS" '.ok == $n and .max_open == $n' "$OUT" >/dev/null; then
		pass "egress: $LOAD_CONNS connections open at once, then $LOAD_BYTES bytes echoed on each, all checksums equal ($(jq -c '{open_s, total_s}' "$OUT"))"
	else
		fail_soft "egress: $LOAD_CONNS connections at once: $(show)"
	fi
	lab_wait_until 15 streams_are "$base" \
		|| fail_soft "egress: after the $LOAD_CONNS connections lab1 has $(streams lab1) streams, $base before"
}

# ---------------------------------------------------------------- ingress

# curl_host NAME CURL_ARGS... - curl in the host namespace.
curl_host() {
	local name="$1"
	shift
	run "$name" 30 "${HOST[@]}" curl -q -sS --max-time 20 "$@"
}

expect_vm_page() {
	local what="$1"
	shift
	curl_host vmpage "$@"
	if [[ $RC -eq 0 && "$(cat "$OUT")" == "served by lab1's loopback" ]]; then
		pass "ingress: $what"
	else
		fail_soft "ingress: $what: $(show)"
	fi
}

expect_ingress_code() {
	local code="$1" meaning="$2" what="$3" target="$4"
	curl_host icode -o /dev/null --socks5-hostname 127.0.0.1:1080 "$target"
	if socks5_refused "$code"; then
		pass "ingress: $what: SOCKS5 reply $code, $meaning"
	else
		fail_soft "ingress: $what: expected curl status 97 on SOCKS5 reply $code ($meaning): $(show)"
	fi
}

test_ingress() {
	local p=127.0.0.1:1080
	expect_vm_page "curl --socks5-hostname $p http://lab1.vmbus:$PORT_WWW_VM/ reaches lab1's loopback" \
		--socks5-hostname "$p" "http://lab1.vmbus:$PORT_WWW_VM/"
	expect_vm_page "http://127.0.0.1.lab1.vmbus:$PORT_WWW_VM/ (an address inside lab1)" \
		--socks5-hostname "$p" "http://127.0.0.1.lab1.vmbus:$PORT_WWW_VM/"
	expect_vm_page "HTTP CONNECT (curl -p -x http://$p) to lab1.vmbus:$PORT_WWW_VM" \
		-p -x "http://$p" "http://lab1.vmbus:$PORT_WWW_VM/"
	expect_ingress_code 5 "connection refused" "a port nothing listens on in lab2" \
		"http://lab2.vmbus:$PORT_WWW_VM/"
	expect_ingress_code 4 "host unreachable" "an unknown VM (nosuch.vmbus)" \
		"http://nosuch.vmbus/"
	expect_ingress_code 2 "connection not allowed by ruleset" "a name outside .vmbus ($EXT_NAME)" \
		"http://$EXT_NAME/"
	expect_ingress_code 2 "connection not allowed by ruleset" "an address ($EXT_V4)" "http://$EXT_V4/"
}

# ---------------------------------------------------------------- forwards

# forward_add DIR SPEC - add a forward; prints its id.
forward_add() {
	run fwdadd 10 "$VB" forward add "$1" "$2"
	[[ $RC -eq 0 ]] || fail "vmbusify forward add $1 $2: $(show)"
	sed -n 's/^forward \([0-9][0-9]*\): .*/\1/p' "$OUT"
}

forward_state() {
	"$VB" forward ls --json | jq -r --argjson id "$1" '.forwards[] | select(.id == $id) | .state'
}

forward_listening() {
	[[ "$(forward_state "$1")" == listening* ]]
}

test_forwards() {
	local l_www l_ssh r_www r_ssh id
	l_www="$(forward_add -L "8181:lab1:$PORT_WWW_VM")"
	l_ssh="$(forward_add -L "2201:lab1:$PORT_SSH_VM")"
	r_www="$(forward_add -R "lab1:9090:127.0.0.1:$PORT_WWW_HOST")"
	r_ssh="$(forward_add -R "lab1:2202:127.0.0.1:$PORT_SSH_HOST")"
	for id in "$l_www" "$l_ssh" "$r_www" "$r_ssh"; do
		lab_wait_until 10 forward_listening "$id" \
			|| fail "forward $id is not listening: $("$VB" forward ls 2>&1)"
	done

	run fwd-l 30 "${HOST[@]}" curl -q -sS --max-time 20 http://127.0.0.1:8181/
	if [[ $RC -eq 0 && "$(cat "$OUT")" == "served by lab1's loopback" ]]; then
		pass "forward -L 8181:lab1:$PORT_WWW_VM: curl in the host reaches lab1's web server"
	else
		fail_soft "forward -L: HTTP: $(show)"
	fi
	run fwd-l-ssh 30 "${HOST[@]}" ssh "${SSHO[@]}" -p 2201 root@127.0.0.1 'ip netns identify $$'
	if [[ $RC -eq 0 && "$(cat "$OUT")" == vbl-lab1 ]]; then
		pass "forward -L 2201:lab1:$PORT_SSH_VM: ssh from the host gets a shell in lab1"
	else
		fail_soft "forward -L: ssh: $(show)"
	fi
	run fwd-r 30 "${VM[@]}" curl -q -sS --max-time 20 http://127.0.0.1:9090/
	if [[ $RC -eq 0 && "$(cat "$OUT")" == "served by the host's loopback" ]]; then
		pass "forward -R lab1:9090:127.0.0.1:$PORT_WWW_HOST: curl in lab1 reaches the host's web server"
	else
		fail_soft "forward -R: HTTP: $(show)"
	fi
	run fwd-r-ssh 30 "${VM[@]}" ssh "${SSHO[@]}" -p 2202 root@127.0.0.1 'ip netns identify $$'
	if [[ $RC -eq 0 && "$(cat "$OUT")" == vbl-host ]]; then
		pass "forward -R lab1:2202:127.0.0.1:$PORT_SSH_HOST: ssh from lab1 gets a shell in the host"
	else
		fail_soft "forward -R: ssh: $(show)"
	fi

	run fwdls 10 "$VB" forward ls
	if [[ $RC -eq 0 && "$(grep -cE '^[0-9]+ +-[LR] ' "$OUT")" -eq 4 ]] \
		&& grep -qE "^$l_www +-L +8181:lab1:$PORT_WWW_VM +listening" "$OUT" \
		&& grep -qE "^$r_ssh +-R +lab1:2202:127.0.0.1:$PORT_SSH_HOST +listening .* in the VM" "$OUT"; then
		pass "forward ls lists the four forwards, listening"
	else
		fail_soft "forward ls: $(show)"
	fi
	run fwdjson 10 "$VB" forward ls --json
	if [[ $RC -eq 0 ]] && jq -e '[.forwards[] | .dir] | sort == ["L", "L", "R", "R"]' "$OUT" >/dev/null \
		&& jq -e 'all(.forwards[]; .vm == "lab1")' "$OUT" >/dev/null; then
		pass "forward ls --json: four forwards, two of each direction, all lab1"
	else
		fail_soft "forward ls --json: $(show)"
	fi

	for id in "$l_www" "$l_ssh" "$r_www" "$r_ssh"; do
		run fwdrm 10 "$VB" forward rm "$id"
		[[ $RC -eq 0 ]] || fail_soft "vmbusify forward rm $id: $(show)"
	done
	if lab_wait_until 5 not_listening vbl-host 8181 && lab_wait_until 5 not_listening vbl-host 2201 \
		&& lab_wait_until 5 not_listening vbl-lab1 9090 && lab_wait_until 5 not_listening vbl-lab1 2202; then
		run fwd-gone 10 "${HOST[@]}" curl -q -sS --max-time 5 http://127.0.0.1:8181/
		if [[ $RC -eq 7 ]]; then
			pass "forward rm closes the ports: 8181 and 2201 in the host, 9090 and 2202 in lab1 (curl: connection refused)"
		else
			fail_soft "forward rm: curl to the removed -L port: $(show)"
		fi
	else
		fail_soft "forward rm left a port open: $("${HOST[@]}" ss -ltnH; "${VM[@]}" ss -ltnH)"
	fi
	run fwdempty 10 "$VB" forward ls --json
	jq -e '.forwards == []' "$OUT" >/dev/null || fail_soft "forward ls --json after rm: $(show)"
}

# ---------------------------------------------------------------- limits

daemon_cmd() {
	local vm
	echo "$(sed -n 's/^bin_dir=//p' "$DIR/.vmbusify-lab")/vmbusifyd"
	printf '%s\n' --config "$1" --control "unix://$DIR/control.sock"
	for vm in lab1 lab2; do
		printf '%s\n' --vm "$vm=unix://$DIR/$vm.sock"
	done
	printf '%s\n' --log-level info
}

test_limits() {
	local pid cmd=()
	pid="$(cat "$DIR/vmbusifyd.pid")"
	kill -TERM "$pid"
	lab_wait_until 10 pid_gone "$pid" || fail "the daemon $pid survived SIGTERM"
	mapfile -t cmd < <(daemon_cmd "$TMP/vmbusifyd-limits.conf")
	lab_respawn vmbusifyd vbl-host "${cmd[@]}" >/dev/null || fail "could not restart the daemon"
	lab_wait_until 10 vm_is_up lab1 || fail "lab1 is not up after the daemon restarted with max-connections = 20"

	run limit 60 "${VM[@]}" "$PY" "$TMP/tool.py" limit 127.0.0.1 1080 "$EXT_V4" "$PORT_ECHO" 20
	if [[ $RC -eq 0 ]] && jq -e '(.held | length == 20 and all(. == 0)) and .extra == 1 and .extra_ms < 5000' \
		"$OUT" >/dev/null; then
		pass "limits: max-connections = 20: 20 held open, the 21st refused with SOCKS5 reply 1 in $(jq .extra_ms "$OUT") ms"
	else
		fail_soft "limits: max-connections = 20: $(show)"
	fi
	grep -q 'lab1: refused .*too many connections from this VM (max-connections)' "$DIR/vmbusifyd.log" \
		&& pass "limits: the daemon logs the refusal with lab1's name and the limit's" \
		|| fail_soft "limits: no 'lab1: refused ...: too many connections from this VM (max-connections)' in the daemon's log"
	lab_wait_until 10 streams_are 0 || fail_soft "limits: lab1 keeps $(streams lab1) streams after the 20 closed"
	run burst 120 "${VM[@]}" "$PY" "$TMP/tool.py" burst 127.0.0.1 1080 "$EXT_V4" "$PORT_ECHO" 40
	if [[ $RC -eq 0 ]] && jq -e '(.codes["0"] // 0) > 0 and (.codes["1"] // 0) > 0 and (.codes | keys - ["0", "1"] == []) and .slowest_ms < 5000' \
		"$OUT" >/dev/null; then
		pass "limits: connect-rate = 2/s burst 25: of 40 quick connections $(jq -c .codes "$OUT") (0 accepted, 1 refused), none waits (slowest $(jq .slowest_ms "$OUT") ms)"
	else
		fail_soft "limits: connect-rate: $(show)"
	fi
	grep -q 'lab1: refused .*opened too fast (connect-rate)' "$DIR/vmbusifyd.log" \
		&& pass "limits: the daemon logs the rate refusal with lab1's name" \
		|| fail_soft "limits: no 'lab1: refused ...: opened too fast (connect-rate)' in the daemon's log"
}

# ---------------------------------------------------------------- main

main() {
	lab_require_root
	lab_require_build "${1:-}"
	lab_require_tools jq curl git ssh ssh-keygen nc ss timeout sha256sum /usr/sbin/sshd "$PY"
	nc -h 2>&1 | grep -q -- '-X proxy_protocol' || skip "nc is not netcat-openbsd (no -X): run scripts/deps.sh"
	VB="$VB_BUILD_DIR/vmbusify"
	TMP="$(mktemp -d /tmp/vbl-proxy.XXXXXX)"
	lab_at_exit rm -rf "$TMP"
	chmod 755 "$TMP"
	write_config
	write_tool
	export VB_LAB_DAEMON_CONFIG="$TMP/vmbusifyd.conf"
	wait_for_free_lab
	lab_up 2
	DIR="$(realpath -m "$VB_LAB_DIR")"
	export VMBUSIFY_CONTROL="$DIR/control.sock"
	lab_wait_until 10 vm_is_up lab1 || fail "lab1 is not up in the daemon"
	lab_wait_until 10 vm_is_up lab2 || fail "lab2 is not up in the daemon"
	lab_wait_until 10 listening vbl-lab1 1080 || fail "the agent in lab1 does not listen on 1080"
	start_servers
	make_repo
	test_curl_every_protocol
	test_proxy_env
	test_curl_big_file
	test_git_clone
	test_ssh_through_nc
	test_policy
	test_half_close
	test_aborts
	test_many_at_once
	test_ingress
	test_forwards
	test_limits
	lab_done
}

main "$@"
