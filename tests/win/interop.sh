#!/usr/bin/env bash
# Interoperability of the Windows and Linux builds over tcp:// with a token on
# loopback, both ways:
#   cli    vmbusify.exe and vmbusexec.exe under Wine against a vmbusify-agent
#          built for Linux: exec (exit status, stdin, stdout and stderr apart),
#          a missing program, stdin left open, ping, cp of a file and of a tree
#          both ways (sha256 of every file, -p times), a wrong token.
#   agent  the Linux vmbusify against vmbusify-agent.exe under Wine: the same
#          exec and cp checks with Windows programs (cmd), and -t's exit status;
#          then the agent's proxy port: a Linux vmbusifyd dials the agent (its
#          uplink), curl fetches a file from a local HTTP server through the
#          port (SOCKS5 with the name sent, and HTTP), sha256 compared, under
#          the daemon's egress policy (an allow rule naming the server's
#          address and port exactly; a port it does not name is refused);
#          a SOCKS5 UDP association to
#          a UDP echo server; and the other way, the daemon's proxy port into
#          the VM (the agent dials the HTTP server; root or the vmbusify
#          group only, as the daemon's port allows, else that check skips).
#   daemon vmbusifyd.exe under Wine dialing a Linux vmbusify-agent (tcp:// with
#          the token), vmbusify.exe on its control pipe: ls, exec (status,
#          stdio), cp both ways (sha256); a -L forward to a local HTTP server
#          that the agent dials, kept across a restart of the daemon (its state
#          directory); the daemon's SOCKS5 port to lx.vmbus; the guest's egress
#          (curl through the Linux agent's proxy port, out through
#          vmbusifyd.exe) refused without an egress rule and allowed with one;
#          a [vnet] section failing with one line (no wintun.dll under Wine);
#          then the Windows service:
#          a console start refused while %ProgramData%\vmbusify is open to
#          everyone; install (sc query, the GuestCommunicationServices key and
#          the event source in reg query, the folder reset), start, ls through
#          the service, stop, a start refused for a vmbusifyd.conf others may
#          change, uninstall (service, key and event source gone). The
#          daemon's ports let in trusted Windows processes only: the fetches
#          through them are vb-wfetch.exe under Wine, and a Linux curl there
#          is checked to be refused (no Windows process owns it).
#
# Usage: tests/win/interop.sh cli|agent|daemon WIN_BUILDDIR
# Environment:
#   VB_LINUX_BUILD  a Linux build directory holding vmbusify-agent and
#                   vmbusify (and vmbusifyd, for agent) (default: the first
#                   of build-win-lx, build/release, build under the
#                   repository that has them)
#   WINEPREFIX      the Wine prefix (scripts/test-win.sh makes a fresh one)
#
# Exit codes: 0 passed, 1 a check failed, 2 usage, 77 skipped (no Wine, no
# Linux build, no curl or python3 for the agent and daemon modes, or the
# agent cannot run here; the reason is printed).
# Traffic stays on 127.0.0.1; AF_VSOCK is never used.
set -euo pipefail

interop_skip() {
	echo "interop: skipped: $*" >&2
	exit 77
}

interop_fail() {
	echo "interop: FAIL: $*" >&2
	interop_failed=$((interop_failed + 1))
}

interop_pass() {
	echo "interop: ok: $*"
}

interop_find_wine() {
	local w
	for w in "$(command -v wine64 || true)" /usr/lib/wine/wine64 "$(command -v wine || true)"; do
		if [[ -n "$w" && -x "$w" ]]; then
			echo "$w"
			return 0
		fi
	done
	return 1
}

interop_find_linux() {
	local d
	for d in "${VB_LINUX_BUILD:-}" "$repo/build-win-lx" "$repo/build/release" "$repo/build"; do
		# vmbusifyd: the agent mode's proxy checks
		if [[ -n "$d" && -x "$d/vmbusify-agent" && -x "$d/vmbusify" ]] &&
			[[ $mode != agent || -x "$d/vmbusifyd" ]]; then
			echo "$d"
			return 0
		fi
	done
	return 1
}

interop_cleanup() {
	local pid
	if [[ -n "${svc_installed:-}" ]]; then
		(cd "$work" && timeout 60 "$wine" "$windir/vmbusifyd.exe" uninstall) >/dev/null 2>&1 || true
	fi
	for pid in ${daemon_pid:-} ${http_pid:-} ${agent_pid:-}; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	[[ -n "${work:-}" ]] && rm -rf "$work"
}

# interop_free_port - a loopback TCP port nothing listens on, below Linux's ephemeral range
# (32768 and up), so that no outgoing connection of the test holds it by chance.
interop_free_port() {
	local p _
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 12000))
		[[ -z "$(ss -ltnH "sport = :$p" 2>/dev/null)" ]] && break
	done
	echo "$p"
}

# interop_start_agent - starts the agent (Linux, or Windows under Wine, with its
# proxy port on pport) on a free loopback port; sets port, pport and agent_pid.
interop_start_agent() {
	local _
	for _ in 1 2 3 4 5; do
		port="$(interop_free_port)"
		pport="$(interop_free_port)"
		if [[ $mode == cli ]]; then
			"$linux/vmbusify-agent" --listen "tcp://127.0.0.1:$port" --token-file "$work/token" \
				--no-proxy --no-vnet --threads 1 >"$work/agent.log" 2>&1 &
		elif [[ $mode == daemon ]]; then
			# The "VM": its proxy port sends connections out through vmbusifyd.exe.
			"$linux/vmbusify-agent" --listen "tcp://127.0.0.1:$port" --token-file "$work/token" \
				--proxy "127.0.0.1:$pport" --no-vnet --threads 1 >"$work/agent.log" 2>&1 &
		else
			(cd "$work" && exec timeout 300 "$wine" "$windir/vmbusify-agent.exe" \
				--listen "tcp://127.0.0.1:$port" --token-file token --threads 1 \
				--proxy "127.0.0.1:$pport") \
				>"$work/agent.log" 2>&1 &
		fi
		agent_pid=$!
		for _ in $(seq 100); do
			if grep -q 'listening on' "$work/agent.log" 2>/dev/null; then
				return 0
			fi
			kill -0 "$agent_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill "$agent_pid" 2>/dev/null || true
		wait "$agent_pid" 2>/dev/null || true
		agent_pid=
	done
	echo "interop: the $mode-side agent did not start:" >&2
	tail -n 5 "$work/agent.log" >&2
	return 1
}

# win - runs a Windows program of the build under Wine, from the work directory.
win() {
	local exe="$1"
	shift
	(cd "$work" && timeout 60 "$wine" "$windir/$exe" "$@")
}

# vb - the CLI under test: vmbusify.exe under Wine (cli), or the Linux vmbusify (agent).
vb() {
	if [[ $mode == cli ]]; then
		win vmbusify.exe --token-file token "$@"
	else
		(cd "$work" && timeout 60 "$linux/vmbusify" --token-file token "$@")
	fi
}

interop_sums() {
	(cd "$1" && find . -type f | LC_ALL=C sort | xargs -r sha256sum)
}

interop_exec() {
	local uri="tcp://127.0.0.1:$port" rc=0

	vb exec "$uri" sh -c 'echo out; echo err >&2; exit 7' >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 7 && "$(cat "$work/o")" == out && "$(cat "$work/e")" == err ]]; then
		interop_pass "exec: exit status 7, stdout and stderr apart"
	else
		interop_fail "exec: rc=$rc stdout='$(cat "$work/o")' stderr='$(cat "$work/e")'"
	fi

	head -c 2000000 /dev/urandom >"$work/in.bin"
	rc=0
	vb exec "$uri" sha256sum <"$work/in.bin" >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 0 && "$(cut -d' ' -f1 "$work/o")" == "$(sha256sum <"$work/in.bin" | cut -d' ' -f1)" ]]; then
		interop_pass "exec: 2 MB of stdin arrive intact (sha256)"
	else
		interop_fail "exec stdin: rc=$rc $(cat "$work/o" "$work/e")"
	fi

	rc=0
	vb exec "$uri" cat "$work/in.bin" >"$work/out.bin" 2>"$work/e" || rc=$?
	if [[ $rc == 0 ]] && cmp -s "$work/in.bin" "$work/out.bin"; then
		interop_pass "exec: 2 MB of stdout arrive intact"
	else
		interop_fail "exec stdout: rc=$rc $(cat "$work/e")"
	fi

	rc=0
	vb exec "$uri" /nonexistent/program >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 127 && $(wc -l <"$work/e") == 1 ]]; then
		interop_pass "exec: a missing program is 127 with one line"
	else
		interop_fail "exec missing: rc=$rc $(cat "$work/e")"
	fi

	rc=0
	(cd "$work" && VMBUSIFY_TOKEN_FILE=token timeout 60 "$wine" "$windir/vmbusexec.exe" "$uri" \
		sh -c 'read x; echo "got $x"; exit 3') <<<"hello" >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 3 && "$(cat "$work/o")" == "got hello" ]]; then
		interop_pass "vmbusexec.exe: stdin line and exit status 3"
	else
		interop_fail "vmbusexec.exe: rc=$rc $(cat "$work/o" "$work/e")"
	fi

	# A process that keeps stdin open must not keep vmbusexec after the program ended.
	rc=0
	local t0=$SECONDS
	# (a process substitution: a pipeline would wait for sleep itself)
	vb exec "$uri" true < <(exec 2>/dev/null; sleep 20) >"$work/o" 2>"$work/e" || rc=$?
	kill $! 2>/dev/null || true
	if [[ $rc == 0 && $((SECONDS - t0)) -lt 15 ]]; then
		interop_pass "exec: returns when the program ends although stdin stays open"
	else
		interop_fail "exec with open stdin: rc=$rc after $((SECONDS - t0)) s"
	fi
}

interop_ping() {
	local rc=0
	vb ping -c 2 "tcp://127.0.0.1:$port" >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 0 ]] && grep -q '2 received' "$work/o"; then
		interop_pass "ping: 2 of 2"
	else
		interop_fail "ping: rc=$rc $(cat "$work/o" "$work/e")"
	fi
}

interop_cp() {
	local uri="tcp://127.0.0.1:$port" rc=0 remote="$work/remote"

	mkdir -p "$work/tree/sub/deeper" "$remote" "$work/back"
	head -c 300000 /dev/urandom >"$work/tree/a.bin"
	echo hello >"$work/tree/sub/b.txt"
	head -c 1500000 /dev/urandom >"$work/tree/sub/deeper/c.bin"
	: >"$work/tree/empty"
	touch -d '2021-03-04 05:06:07.123456700' "$work/tree/a.bin"
	head -c 5000000 /dev/urandom >"$work/file.bin"

	vb cp file.bin "$uri:$remote/" 2>"$work/e" || rc=$?
	if [[ $rc == 0 ]] && cmp -s "$work/file.bin" "$remote/file.bin"; then
		interop_pass "cp: a 5 MB file to the VM"
	else
		interop_fail "cp file to VM: rc=$rc $(cat "$work/e")"
	fi

	rc=0
	vb cp -r -p tree "$uri:$remote/" 2>"$work/e" || rc=$?
	if [[ $rc == 0 && "$(interop_sums "$work/tree")" == "$(interop_sums "$remote/tree")" ]] &&
		[[ "$(stat -c %Y "$remote/tree/a.bin")" == "$(stat -c %Y "$work/tree/a.bin")" ]]; then
		interop_pass "cp: a tree to the VM (sha256 of every file, -p times)"
	else
		interop_fail "cp tree to VM: rc=$rc $(cat "$work/e")"
	fi

	# A directory named with the local separator ('\\' for the Windows CLI).
	rc=0
	vb cp "$uri:$work/file.bin" "$([[ $mode == cli ]] && echo 'back\' || echo back/)" 2>"$work/e" || rc=$?
	if [[ $rc == 0 && "$(sha256sum <"$work/back/file.bin")" == "$(sha256sum <"$work/file.bin")" ]]; then
		interop_pass "cp: a 5 MB file from the VM"
	else
		interop_fail "cp file from VM: rc=$rc $(cat "$work/e")"
	fi

	if [[ $mode == cli ]]; then
		# A drive-letter destination is local, whatever its ':' (Wine's Z: is /).
		rc=0
		mkdir -p "$work/drive"
		vb cp "$uri:$work/file.bin" "Z:${work//\//\\}\\drive" 2>"$work/e" || rc=$?
		if [[ $rc == 0 ]] && cmp -s "$work/file.bin" "$work/drive/file.bin"; then
			interop_pass "cp: to a local Z:\\... path"
		else
			interop_fail "cp to a drive path: rc=$rc $(cat "$work/e")"
		fi
	fi

	rc=0
	vb cp -r -p "$uri:$work/tree" back 2>"$work/e" || rc=$?
	if [[ $rc == 0 && "$(interop_sums "$work/tree")" == "$(interop_sums "$work/back/tree")" ]] &&
		[[ "$(stat -c %Y "$work/back/tree/a.bin")" == "$(stat -c %Y "$work/tree/a.bin")" ]]; then
		interop_pass "cp: a tree from the VM (sha256 of every file, -p times)"
	else
		interop_fail "cp tree from VM: rc=$rc $(cat "$work/e")"
	fi

	rc=0
	vb cp "$uri:$work/does-not-exist" back >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc != 0 && $(wc -l <"$work/e") == 1 && ! -e "$work/back/does-not-exist" ]]; then
		interop_pass "cp: a missing source fails with one line (exit $rc)"
	else
		interop_fail "cp missing source: rc=$rc $(cat "$work/e")"
	fi
}

# The Linux CLI against the Windows agent: Windows programs through cmd.
interop_exec_windows() {
	local uri="tcp://127.0.0.1:$port" rc=0

	vb exec "$uri" cmd /c 'echo out& echo err 1>&2& exit 7' >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 7 && "$(tr -d '\r ' <"$work/o")" == out && "$(tr -d '\r ' <"$work/e")" == err ]]; then
		interop_pass "exec (Windows agent): exit status 7, stdout and stderr apart"
	else
		interop_fail "exec (Windows agent): rc=$rc stdout='$(cat "$work/o")' stderr='$(cat "$work/e")'"
	fi

	rc=0
	printf 'first line\nsecond line\n' | vb exec "$uri" cmd /c more >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 0 && "$(tr -d '\r' <"$work/o")" == $'first line\nsecond line' ]]; then
		interop_pass "exec (Windows agent): stdin reaches the program and comes back"
	else
		interop_fail "exec (Windows agent) stdin: rc=$rc $(cat "$work/o" "$work/e")"
	fi

	rc=0
	vb exec "$uri" no-such-program-here >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 127 && $(wc -l <"$work/e") == 1 ]]; then
		interop_pass "exec (Windows agent): a missing program is 127 with one line"
	else
		interop_fail "exec (Windows agent) missing: rc=$rc $(cat "$work/e")"
	fi

	# -t: the program runs on a pseudo console (ConPTY). Wine's pseudo console
	# does not carry cmd's own output, so only the status is checked here; what
	# a terminal shows needs a real Windows guest.
	rc=0
	vb exec -t "$uri" cmd /c 'exit 4' >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 4 && ! -s "$work/e" ]]; then
		interop_pass "exec -t (Windows agent): runs on a pseudo console, exit status 4"
	else
		interop_fail "exec -t (Windows agent): rc=$rc $(cat "$work/e")"
	fi
}

# interop_wait_for FILE PATTERN PID - waits up to 20 s for PATTERN in FILE while PID lives.
interop_wait_for() {
	local _
	for _ in $(seq 200); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

# interop_start_http - a python3 HTTP server on a free loopback port serving
# $work/www; sets hport and http_pid.
interop_start_http() {
	local _
	for _ in 1 2 3 4 5; do
		hport="$(interop_free_port)"
		python3 -m http.server "$hport" --bind 127.0.0.1 --directory "$work/www" \
			>"$work/http.log" 2>&1 &
		http_pid=$!
		for _ in $(seq 50); do
			curl -sf -o /dev/null "http://127.0.0.1:$hport/" && return 0
			kill -0 "$http_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill "$http_pid" 2>/dev/null || true
		wait "$http_pid" 2>/dev/null || true
		http_pid=
	done
	return 1
}

# interop_start_daemon - the Linux vmbusifyd dialing the Windows agent (it
# becomes the agent's uplink), its egress policy allowing the HTTP server and
# the UDP echo port only, its own proxy port (into the VM) on dport; sets
# dport and daemon_pid and waits until the agent has its session.
interop_start_daemon() {
	local _
	printf '[egress]\nallow 127.0.0.1:%s\nallow 127.0.0.1:%s\ndefault = deny\n' \
		"$hport" "$uport" >"$work/vmbusifyd.conf"
	for _ in 1 2 3; do
		dport="$(interop_free_port)"
		(cd "$work" && exec timeout 300 "$linux/vmbusifyd" --config vmbusifyd.conf \
			--vm "w1=tcp://127.0.0.1:$port" --token-file token --state-dir none \
			--proxy "127.0.0.1:$dport" --control "unix://$work/control.sock" --threads 1) \
			>"$work/daemon.log" 2>&1 &
		daemon_pid=$!
		interop_wait_for "$work/agent.log" 'session from vmbusifyd' "$daemon_pid" && return 0
		kill "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
		daemon_pid=
	done
	return 1
}

# interop_udp_script - writes $work/udp.py, a SOCKS5 client (RFC 1928 UDP
# ASSOCIATE): run with PROXY_PORT ECHO_PORT, it serves UDP echo on
# 127.0.0.1:ECHO_PORT (answering with the datagram reversed), associates
# through the proxy on 127.0.0.1:PROXY_PORT and checks one round trip; exit 0
# when the answer came back through the relay.
interop_udp_script() {
	cat >"$work/udp.py" <<'PY'
import socket, struct, sys, threading
proxy, echo_port = int(sys.argv[1]), int(sys.argv[2])
es = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
es.bind(("127.0.0.1", echo_port))
def echo():
    while True:
        d, a = es.recvfrom(65535)
        es.sendto(d[::-1], a)
threading.Thread(target=echo, daemon=True).start()
t = socket.create_connection(("127.0.0.1", proxy), timeout=20)
t.sendall(b"\x05\x01\x00")
if t.recv(2) != b"\x05\x00":
    sys.exit("no SOCKS5 method accepted")
t.sendall(b"\x05\x03\x00\x01" + bytes(6))
r = t.recv(10)
if len(r) < 10 or r[1] != 0:
    sys.exit("UDP ASSOCIATE refused: %r" % r)
relay = (socket.inet_ntoa(r[4:8]), struct.unpack(">H", r[8:10])[0])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(3)
payload = b"a datagram through the Windows agent"
hdr = b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", echo_port)
for _ in range(5):  # datagrams may drop; the association does not
    u.sendto(hdr + payload, relay)
    try:
        d, _ = u.recvfrom(65535)
    except socket.timeout:
        continue
    if d[:3] == b"\x00\x00\x00" and d[10:] == payload[::-1]:
        sys.exit(0)
    sys.exit("unexpected answer: %r" % d)
sys.exit("no answer through the relay")
PY
}

# interop_ingress - the daemon's proxy port into the VM: the Windows agent
# dials the HTTP server itself (a TCP stream from the host, ConnectEx).
interop_ingress() {
	local rc=0 want="$1"
	if [[ $(id -u) != 0 ]] && ! id -nG | grep -qw vmbusify; then
		echo "interop: skipped: ingress: the daemon's proxy port takes root and the vmbusify group only"
		return
	fi
	curl -sS --max-time 60 --socks5-hostname "127.0.0.1:$dport" \
		"http://127.0.0.1.w1.vmbus:$hport/blob.bin" -o "$work/ingress.bin" 2>"$work/e" || rc=$?
	if [[ $rc == 0 && "$(sha256sum <"$work/ingress.bin" | cut -d' ' -f1)" == "$want" ]]; then
		interop_pass "ingress (Windows agent): the daemon's port into the VM, the agent dials (sha256)"
	else
		interop_fail "ingress: rc=$rc $(cat "$work/e")"
	fi
}

# The Windows agent's proxy port: egress over the daemon's session.
interop_proxy() {
	local rc=0 want deny
	uport="$(interop_free_port)"
	mkdir -p "$work/www"
	head -c 3000000 /dev/urandom >"$work/www/blob.bin"
	want="$(sha256sum <"$work/www/blob.bin" | cut -d' ' -f1)"
	if ! interop_start_http; then
		interop_fail "proxy: the HTTP server did not start: $(tail -n 3 "$work/http.log")"
		return
	fi
	if ! interop_start_daemon; then
		interop_fail "proxy: no session from vmbusifyd reached the agent: $(tail -n 5 "$work/daemon.log")"
		return
	fi

	curl -sS --max-time 60 --socks5-hostname "127.0.0.1:$pport" \
		"http://127.0.0.1:$hport/blob.bin" -o "$work/socks.bin" 2>"$work/e" || rc=$?
	if [[ $rc == 0 && "$(sha256sum <"$work/socks.bin" | cut -d' ' -f1)" == "$want" ]]; then
		interop_pass "proxy (Windows agent): a 3 MB file over SOCKS5 through the uplink (sha256)"
	else
		interop_fail "proxy SOCKS5: rc=$rc $(cat "$work/e")"
	fi

	rc=0
	curl -sS --max-time 60 --proxy "http://127.0.0.1:$pport" \
		"http://127.0.0.1:$hport/blob.bin" -o "$work/http.bin" 2>"$work/e" || rc=$?
	if [[ $rc == 0 && "$(sha256sum <"$work/http.bin" | cut -d' ' -f1)" == "$want" ]]; then
		interop_pass "proxy (Windows agent): the same file as an HTTP proxy request (sha256)"
	else
		interop_fail "proxy HTTP: rc=$rc $(cat "$work/e")"
	fi

	# A port the policy does not name: the daemon refuses, and the client gets
	# SOCKS5's reply 2 (not allowed), which curl prints as "(2)".
	deny=$((hport == 65535 ? hport - 1 : hport + 1))
	rc=0
	curl -sS --max-time 60 --socks5-hostname "127.0.0.1:$pport" \
		"http://127.0.0.1:$deny/" -o /dev/null 2>"$work/e" || rc=$?
	if [[ $rc != 0 ]] && grep -q 'SOCKS5 connection.*(2)' "$work/e"; then
		interop_pass "proxy (Windows agent): a destination the egress policy denies is refused"
	else
		interop_fail "proxy deny: rc=$rc $(cat "$work/e")"
	fi

	rc=0
	interop_udp_script
	timeout 60 python3 "$work/udp.py" "$pport" "$uport" >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 0 ]]; then
		interop_pass "proxy (Windows agent): a SOCKS5 UDP association, one round trip"
	else
		interop_fail "proxy UDP: rc=$rc $(cat "$work/o" "$work/e")"
	fi

	interop_ingress "$want"
}

# ---- daemon: vmbusifyd.exe under Wine ----

# winpath PATH - the Windows name of a Linux path under Wine (drive Z: is /).
winpath() {
	printf 'Z:%s' "${1//\//\\}"
}

# vbd - vmbusify.exe under Wine through vmbusifyd.exe's control pipe.
vbd() {
	(cd "$work" && VMBUSIFY_CONTROL="$dpipe" timeout 60 "$wine" "$windir/vmbusify.exe" "$@")
}

# vbsvc - vmbusify.exe under Wine through the service's control pipe.
vbsvc() {
	(cd "$work" && VMBUSIFY_CONTROL="${dpipe}-svc" timeout 60 "$wine" "$windir/vmbusify.exe" "$@")
}

# interop_start_windaemon CONF - vmbusifyd.exe with configuration CONF, dialing
# the Linux agent as VM lx; waits until the session is up. Sets daemon_pid
# (dport, the daemon's proxy port, and dpipe are chosen once by the caller).
interop_start_windaemon() {
	: >"$work/daemon.log"
	(cd "$work" && exec timeout 600 "$wine" "$windir/vmbusifyd.exe" --config "$1" \
		--vm "lx=tcp://127.0.0.1:$port" --token-file token --control "$dpipe" \
		--proxy "127.0.0.1:$dport" --state-dir "$(winpath "$work/state")" --threads 2) \
		>>"$work/daemon.log" 2>&1 &
	daemon_pid=$!
	interop_wait_for "$work/daemon.log" 'lx: connected to vmbusify-agent' "$daemon_pid"
}

interop_stop_windaemon() {
	kill "$daemon_pid" 2>/dev/null || true
	wait "$daemon_pid" 2>/dev/null || true
	daemon_pid=
}

# interop_sha FILE - the sha256 of FILE, alone.
interop_sha() {
	sha256sum <"$1" | cut -d' ' -f1
}

interop_daemon_ls_exec_cp() {
	local rc=0
	vbd ls >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 0 ]] && grep -Eq '^lx +up ' "$work/o"; then
		interop_pass "daemon: vmbusify.exe ls through the control pipe shows lx up"
	else
		interop_fail "daemon ls: rc=$rc $(cat "$work/o" "$work/e")"
	fi

	rc=0
	vbd exec lx sh -c 'echo out; echo err >&2; exit 7' >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 7 && "$(cat "$work/o")" == out && "$(cat "$work/e")" == err ]]; then
		interop_pass "daemon: exec lx: exit status 7, stdout and stderr apart"
	else
		interop_fail "daemon exec: rc=$rc stdout='$(cat "$work/o")' stderr='$(cat "$work/e")'"
	fi

	head -c 2000000 /dev/urandom >"$work/in.bin"
	rc=0
	vbd exec lx sha256sum <"$work/in.bin" >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 0 && "$(cut -d' ' -f1 "$work/o")" == "$(interop_sha "$work/in.bin")" ]]; then
		interop_pass "daemon: exec lx: 2 MB of stdin arrive intact (sha256)"
	else
		interop_fail "daemon exec stdin: rc=$rc $(cat "$work/o" "$work/e")"
	fi

	mkdir -p "$work/remote" "$work/back"
	head -c 5000000 /dev/urandom >"$work/file.bin"
	rc=0
	vbd cp file.bin "lx:$work/remote/" 2>"$work/e" || rc=$?
	if [[ $rc == 0 && -f "$work/remote/file.bin" && "$(interop_sha "$work/remote/file.bin")" == "$(interop_sha "$work/file.bin")" ]]; then
		interop_pass "daemon: cp of a 5 MB file to lx (sha256)"
	else
		interop_fail "daemon cp to lx: rc=$rc $(cat "$work/e")"
	fi
	rc=0
	vbd cp "lx:$work/file.bin" 'back\' 2>"$work/e" || rc=$?
	if [[ $rc == 0 && -f "$work/back/file.bin" && "$(interop_sha "$work/back/file.bin")" == "$(interop_sha "$work/file.bin")" ]]; then
		interop_pass "daemon: cp of a 5 MB file from lx (sha256)"
	else
		interop_fail "daemon cp from lx: rc=$rc $(cat "$work/e")"
	fi
}

# interop_wfetch OUT ARGS... - vb-wfetch.exe under Wine (a trusted Windows process).
interop_wfetch() {
	local out="$1"
	shift
	(cd "$work" && timeout 60 "$wine" "$windir/vb-wfetch.exe" "$@" "$(winpath "$out")")
}

# interop_daemon_forward WANT STAGE - the -L forward fetched by a Windows
# process (sha256); a Linux curl is refused by the owner check.
interop_daemon_forward() {
	local rc=0 want="$1" stage="$2"
	rm -f "$work/fwd.bin"
	interop_wfetch "$work/fwd.bin" 127.0.0.1 "$fport" /blob.bin 2>"$work/e" || rc=$?
	if [[ $rc == 0 && "$(interop_sha "$work/fwd.bin")" == "$want" ]]; then
		interop_pass "daemon: forward -L 127.0.0.1:$fport to lx, $stage: 3 MB fetched (sha256)"
	else
		interop_fail "daemon forward ($stage): rc=$rc $(cat "$work/e")"
	fi
}

interop_daemon_socks() {
	local rc=0 want="$1"
	interop_wfetch "$work/socks.bin" --socks5 "$dport" lx.vmbus "$hport" /blob.bin 2>"$work/e" || rc=$?
	if [[ $rc == 0 && "$(interop_sha "$work/socks.bin")" == "$want" ]]; then
		interop_pass "daemon: SOCKS5 port to lx.vmbus:$hport (the agent dials), 3 MB (sha256)"
	else
		interop_fail "daemon SOCKS5 ingress: rc=$rc $(cat "$work/e")"
	fi
	# Not a Windows process: no token to check, so the port refuses it (fail closed).
	rc=0
	curl -sS --max-time 20 --socks5-hostname "127.0.0.1:$dport" \
		"http://lx.vmbus:$hport/blob.bin" -o /dev/null 2>"$work/e" || rc=$?
	if [[ $rc != 0 ]] && grep -q 'proxy: refused a connection: its owner is unknown' "$work/daemon.log"; then
		interop_pass "daemon: a Linux curl on the SOCKS5 port is refused (its owner is no Windows process)"
	else
		interop_fail "daemon SOCKS5 owner check: curl rc=$rc, log: $(grep refused "$work/daemon.log" | tail -n 2)"
	fi
}

# interop_daemon_egress WANT ALLOWED - curl through the Linux agent's proxy
# port, out through vmbusifyd.exe to the HTTP server.
interop_daemon_egress() {
	local rc=0 want="$1" allowed="$2"
	rm -f "$work/egress.bin"
	curl -sS --max-time 60 --socks5-hostname "127.0.0.1:$pport" \
		"http://127.0.0.1:$hport/blob.bin" -o "$work/egress.bin" 2>"$work/e" || rc=$?
	if [[ $allowed == yes ]]; then
		if [[ $rc == 0 && "$(interop_sha "$work/egress.bin")" == "$want" ]]; then
			interop_pass "daemon: the guest's egress through vmbusifyd.exe, allowed by a rule (sha256)"
		else
			interop_fail "daemon egress allowed: rc=$rc $(cat "$work/e")"
		fi
	elif [[ $rc != 0 ]] && grep -q 'SOCKS5 connection.*(2)' "$work/e"; then
		interop_pass "daemon: the guest's egress to the same server without a rule is refused (SOCKS5 reply 2)"
	else
		interop_fail "daemon egress without a rule: rc=$rc $(cat "$work/e")"
	fi
}

interop_daemon_vnet() {
	local rc=0
	printf '[vnet]\nsubnet = 10.213.0.0/24\n' >"$work/vnet.conf"
	(cd "$work" && timeout 60 "$wine" "$windir/vmbusifyd.exe" --config vnet.conf \
		--vm "lx=tcp://127.0.0.1:$port" --token-file token --control "${dpipe}-vnet" \
		--no-proxy --state-dir none) >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 1 && $(wc -l <"$work/e") == 1 ]] && grep -q 'vnet: wintun.dll not found beside vmbusifyd.exe' "$work/e"; then
		interop_pass "daemon: a [vnet] section without Wintun fails with one line: $(cat "$work/e")"
	else
		interop_fail "daemon vnet: rc=$rc $(cat "$work/o" "$work/e")"
	fi
}

# interop_sc_state - the state word of the test's service in sc query (or NONE).
interop_sc_state() {
	(cd "$work" && timeout 60 "$wine" sc query vmbusifyd 2>/dev/null) |
		sed -n 's/^ *STATE *: *[0-9]* *\([A-Z_]*\).*/\1/p' | head -n 1 | grep . || echo NONE
}

# interop_sc_wait STATE - waits up to 30 s for the service to reach STATE.
interop_sc_wait() {
	local _
	for _ in $(seq 60); do
		[[ "$(interop_sc_state)" == "$1" ]] && return 0
		sleep 0.5
	done
	return 1
}

interop_hv_key() {
	(cd "$work" && timeout 60 "$wine" reg query \
		'HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion\Virtualization\GuestCommunicationServices\00005642-FACB-11E6-BD58-64006A7986D3' \
		2>/dev/null)
}

interop_evlog_key() {
	(cd "$work" && timeout 60 "$wine" reg query \
		'HKLM\SYSTEM\CurrentControlSet\Services\EventLog\Application\vmbusifyd' 2>/dev/null)
}

# interop_daemon_open_folder - before install: %ProgramData%\vmbusify made by
# "someone else" and writable by everyone (mode 0777: Wine shows Everyone with
# write access), which a console start with the default configuration refuses.
interop_daemon_open_folder() {
	local rc=0
	rm -rf "$pdata"
	mkdir -p "$pdata"
	chmod 0777 "$pdata"
	(cd "$work" && timeout 60 "$wine" "$windir/vmbusifyd.exe" --vm "lx=tcp://127.0.0.1:$port" \
		--token-file token --control "${dpipe}-open" --no-proxy --state-dir none) \
		>"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 1 && $(wc -l <"$work/e") == 1 ]] &&
		grep -q 'vmbusify is writable by non-administrators (Everyone may write to it): run `vmbusifyd install` again' "$work/e"; then
		interop_pass "daemon: a %ProgramData%\\vmbusify others may write to is refused with one line: $(cat "$work/e")"
	else
		interop_fail "daemon open folder: rc=$rc $(cat "$work/o" "$work/e")"
	fi
}

# interop_daemon_planted_config - a configuration file others may change is
# refused by the service (the line in its log); removed, the service starts.
interop_daemon_planted_config() {
	printf '[daemon]\nlog-level = info\n' >"$pdata/vmbusifyd.conf"
	chmod 0666 "$pdata/vmbusifyd.conf"
	(cd "$work" && timeout 60 "$wine" sc start vmbusifyd) >/dev/null 2>&1 || true
	sleep 2
	if interop_sc_wait STOPPED &&
		grep -q 'vmbusifyd.conf may be changed by non-administrators (Everyone may write to it)' "$pdata/vmbusifyd.log"; then
		interop_pass "daemon: the service refuses a vmbusifyd.conf others may change (its log says so)"
	else
		interop_fail "daemon planted config: state $(interop_sc_state), log: $(tail -n 3 "$pdata/vmbusifyd.log" 2>&1)"
	fi
	rm -f "$pdata/vmbusifyd.conf"
}

interop_daemon_service() {
	local rc=0 svcpipe="${dpipe}-svc"
	# The folder's checks plant files in the prefix's %ProgramData%: only in a
	# prefix of the test's own (scripts/test-win.sh makes one).
	pdata=
	if [[ -n "${WINEPREFIX:-}" ]]; then
		pdata="$WINEPREFIX/drive_c/ProgramData/vmbusify"
		interop_daemon_open_folder
	else
		echo "interop: skipped: daemon: the folder's permissions (no WINEPREFIX of the test's own)"
	fi
	(cd "$work" && timeout 60 "$wine" "$windir/vmbusifyd.exe" install \
		--vm "lx=tcp://127.0.0.1:$port" --token-file "$(winpath "$work/token")" \
		--control "$svcpipe" --no-proxy --state-dir "$(winpath "$work/svcstate")") \
		>"$work/o" 2>"$work/e" || rc=$?
	svc_installed=1
	if [[ $rc == 0 && "$(interop_sc_state)" == STOPPED ]] && grep -q 'installed the service vmbusifyd' "$work/o"; then
		interop_pass "daemon: install: the service is registered (sc query: STOPPED)"
	else
		interop_fail "daemon install: rc=$rc state=$(interop_sc_state) $(cat "$work/o" "$work/e")"
	fi
	if interop_hv_key | grep -Eq 'ElementName +REG_SZ +VMBusify'; then
		interop_pass "daemon: install: GuestCommunicationServices\\00005642-FACB-11E6-BD58-64006A7986D3 has ElementName VMBusify"
	else
		interop_fail "daemon install: no GuestCommunicationServices key: $(interop_hv_key)"
	fi
	if interop_evlog_key | grep -Eq 'EventMessageFile +REG_EXPAND_SZ +%SystemRoot%.System32.netmsg.dll' &&
		interop_evlog_key | grep -Eq 'TypesSupported +REG_DWORD +0x7'; then
		interop_pass "daemon: install: the event source vmbusifyd is registered (netmsg.dll, types 7)"
	else
		interop_fail "daemon install: event source: $(interop_evlog_key)"
	fi
	# Wine keeps a DACL as a Unix mode: the others' write bit is what it can show.
	if [[ -n "$pdata" ]]; then
		if grep -q 'reset the permissions of C:.ProgramData.vmbusify' "$work/o" &&
			[[ $(($(stat -c '0%a' "$pdata") & 2)) == 0 ]]; then
			interop_pass "daemon: install: the open folder is reset for SYSTEM and Administrators only (mode $(stat -c %a "$pdata"))"
		else
			interop_fail "daemon install: folder: mode $(stat -c %a "$pdata"): $(cat "$work/o" "$work/e")"
		fi
	fi

	rc=0
	(cd "$work" && timeout 60 "$wine" sc start vmbusifyd) >"$work/o" 2>&1 || rc=$?
	if [[ $rc != 0 ]] && ! interop_sc_wait RUNNING; then
		echo "interop: skipped: daemon: Wine cannot start the service here: $(head -c 300 "$work/o")"
	elif interop_sc_wait RUNNING; then
		# The session may still be coming up: give it a few tries.
		for _ in 1 2 3 4 5 6; do
			rc=0
			vbsvc ls >"$work/o" 2>"$work/e" || rc=$?
			[[ $rc == 0 ]] && grep -Eq '^lx +up ' "$work/o" && break
			sleep 1
		done
		if [[ $rc == 0 ]] && grep -Eq '^lx +up ' "$work/o"; then
			interop_pass "daemon: the service runs (sc query: RUNNING) and serves ls on its pipe"
		else
			interop_fail "daemon service ls: rc=$rc $(cat "$work/o" "$work/e")"
		fi
		(cd "$work" && timeout 60 "$wine" sc stop vmbusifyd) >/dev/null 2>&1 || true
		if interop_sc_wait STOPPED &&
			(cd "$work" && timeout 60 "$wine" sc query vmbusifyd) | grep -q 'WIN32_EXIT_CODE *: *0 '; then
			interop_pass "daemon: sc stop: the service stops cleanly (STOPPED, exit code 0)"
		else
			interop_fail "daemon service stop: $(cd "$work" && timeout 60 "$wine" sc query vmbusifyd 2>&1)"
		fi
		[[ -z "$pdata" ]] || interop_daemon_planted_config
		(cd "$work" && timeout 60 "$wine" sc start vmbusifyd) >/dev/null 2>&1 || true
		interop_sc_wait RUNNING || interop_fail "daemon: the service did not start a second time"
	else
		interop_fail "daemon service start: state $(interop_sc_state): $(cat "$work/o")"
	fi

	# uninstall stops a running service, then deletes it and the key.
	rc=0
	(cd "$work" && timeout 90 "$wine" "$windir/vmbusifyd.exe" uninstall) >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 0 && "$(interop_sc_state)" == NONE ]] && ! interop_hv_key >/dev/null &&
		! interop_evlog_key >/dev/null &&
		grep -q 'deleted the service vmbusifyd' "$work/o" &&
		grep -q 'removed the Hyper-V socket service' "$work/o" &&
		grep -q 'removed the event source vmbusifyd' "$work/o"; then
		svc_installed=
		interop_pass "daemon: uninstall: the service, the GuestCommunicationServices key and the event source are gone"
	else
		interop_fail "daemon uninstall: rc=$rc state=$(interop_sc_state) $(cat "$work/o" "$work/e")"
	fi
}

interop_daemon() {
	local want rc=0
	mkdir -p "$work/www"
	head -c 3000000 /dev/urandom >"$work/www/blob.bin"
	want="$(interop_sha "$work/www/blob.bin")"
	if ! interop_start_http; then
		interop_fail "daemon: the HTTP server did not start: $(tail -n 3 "$work/http.log")"
		return
	fi
	dport="$(interop_free_port)"
	fport="$(interop_free_port)"
	dpipe="npipe://vb-interop-$$"
	: >"$work/noegress.conf"
	printf '[egress]\nallow 127.0.0.1:%s\ndefault = deny\n' "$hport" >"$work/egress.conf"

	if ! interop_start_windaemon noegress.conf; then
		interop_fail "daemon: vmbusifyd.exe did not connect to lx: $(tail -n 5 "$work/daemon.log")"
		return
	fi
	interop_daemon_ls_exec_cp
	vbd forward add -L "127.0.0.1:$fport:lx:$hport" >"$work/o" 2>"$work/e" || rc=$?
	[[ $rc == 0 ]] || interop_fail "daemon forward add: rc=$rc $(cat "$work/o" "$work/e")"
	interop_daemon_forward "$want" "first run"
	interop_daemon_socks "$want"
	interop_daemon_egress "$want" no

	# Again with the egress rule: the forward must come back from the state directory.
	interop_stop_windaemon
	if ! interop_start_windaemon egress.conf; then
		interop_fail "daemon: vmbusifyd.exe did not restart: $(tail -n 5 "$work/daemon.log")"
		return
	fi
	rc=0
	vbd forward ls >"$work/o" 2>"$work/e" || rc=$?
	if [[ $rc == 0 ]] && grep -q "127.0.0.1:$fport:lx:$hport" "$work/o"; then
		interop_pass "daemon: the forward is back after a restart (state directory)"
	else
		interop_fail "daemon forward after restart: rc=$rc $(cat "$work/o" "$work/e")"
	fi
	interop_daemon_forward "$want" "after the restart"
	interop_daemon_egress "$want" yes
	interop_stop_windaemon

	interop_daemon_vnet
	interop_daemon_service
}

# Last: a wrong token (the agent closes that connection).
interop_bad_token() {
	local rc=0
	echo "not-the-token" >"$work/bad"
	chmod 600 "$work/bad"
	if [[ $mode == cli ]]; then
		win vmbusify.exe --token-file bad exec "tcp://127.0.0.1:$port" true >"$work/o" 2>"$work/e" || rc=$?
	else
		(cd "$work" && timeout 60 "$linux/vmbusify" --token-file bad exec "tcp://127.0.0.1:$port" true) \
			>"$work/o" 2>"$work/e" || rc=$?
	fi
	if [[ $rc == 255 && $(wc -l <"$work/e") == 1 ]]; then
		interop_pass "exec: a wrong token fails with 255 and one line"
	else
		interop_fail "wrong token: rc=$rc $(cat "$work/e")"
	fi
}

main() {
	repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
	[[ $# == 2 && ( $1 == cli || $1 == agent || $1 == daemon ) ]] || {
		echo "usage: tests/win/interop.sh cli|agent|daemon WIN_BUILDDIR" >&2
		exit 2
	}
	mode="$1"
	windir="$(cd "$2" && pwd)"
	interop_failed=0
	[[ -x "$windir/vmbusify.exe" && -x "$windir/vmbusify-agent.exe" ]] ||
		interop_skip "$windir has no vmbusify.exe or vmbusify-agent.exe"
	wine="$(interop_find_wine)" || interop_skip "Wine not found (install wine64)"
	linux="$(interop_find_linux)" ||
		interop_skip "no Linux build with vmbusify-agent and vmbusify (and vmbusifyd for the agent mode; scripts/build.sh Release build-win-lx, or set VB_LINUX_BUILD)"
	if [[ $mode != cli ]]; then
		command -v curl >/dev/null || interop_skip "curl not found (the proxy check needs it)"
		command -v python3 >/dev/null || interop_skip "python3 not found (the proxy check's HTTP server)"
	fi
	if [[ $mode == daemon ]]; then
		[[ -x "$windir/vmbusifyd.exe" && -x "$windir/vb-wfetch.exe" ]] ||
			interop_skip "$windir has no vmbusifyd.exe or vb-wfetch.exe"
	fi
	export WINEDEBUG="${WINEDEBUG:--all}"

	work="$(mktemp -d "${TMPDIR:-/tmp}/vb-interop.XXXXXX")"
	trap interop_cleanup EXIT
	head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$work/token"
	chmod 600 "$work/token"
	interop_start_agent || interop_skip "the $mode-side agent cannot run here"
	echo "interop: $mode: Linux build $linux, agent on tcp://127.0.0.1:$port, Wine $wine"

	if [[ $mode == daemon ]]; then
		interop_daemon
	else
		if [[ $mode == cli ]]; then
			interop_exec
		else
			interop_exec_windows
		fi
		interop_ping
		interop_cp
		if [[ $mode == agent ]]; then
			interop_proxy
		fi
		interop_bad_token
	fi

	if ((interop_failed)); then
		echo "interop: $interop_failed check(s) failed; agent log:" >&2
		tail -n 20 "$work/agent.log" >&2
		if [[ -s "$work/daemon.log" ]]; then
			echo "interop: vmbusifyd log:" >&2
			tail -n 20 "$work/daemon.log" >&2
		fi
		exit 1
	fi
	echo "interop: $mode: all checks passed"
}

main "$@"
