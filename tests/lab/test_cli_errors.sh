#!/usr/bin/env bash
# Bad input and bad peers: every program answers with exactly one line on
# stderr, "vmbusify: <what>: <why>" (or vmbusify-agent:, vmbusifyd:), a
# documented exit code, no crash and no hang; a daemon keeps serving its good
# VMs when another VM's channel speaks garbage.
#
# Exit codes under test (cmd/cli.h, DESIGN §8): vmbusify 2 usage, 3 no such
# VM / no daemon, 4 needs root, 5 cannot reach the VM or the daemon, 1 the
# operation failed; vmbusify-agent and vmbusifyd 1 for a bad setup.
#
# Needs no root and no lab: the peers are socat and the agent and daemon on
# Unix sockets in a scratch directory. As root, "lab up" is also tried as the
# user nobody (without root it is tried as the user running the test).
#
# Usage: tests/lab/test_cli_errors.sh BUILDDIR   (binaries in BUILDDIR)
# Exit codes: 0 passed, 1 failed, 77 skipped (binaries not built, no socat or jq).
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VB=""     # the binaries under test
AGENT=""
DAEMON=""
DIR=""    # the scratch directory: sockets, files, outputs
RC=0
ELAPSED_MS=0
N=0       # runs so far, to name their outputs

# run LIMIT CMD... - run CMD for at most LIMIT seconds (timeout: 124); sets RC,
# ELAPSED_MS, OUT and ERR (the files holding stdout and stderr).
run() {
	local limit="$1" t0
	shift
	N=$((N + 1))
	OUT="$DIR/run$N.out"
	ERR="$DIR/run$N.err"
	RC=0
	t0=$(date +%s%N)
	timeout -k 2 "$limit" "$@" >"$OUT" 2>"$ERR" </dev/null || RC=$?
	ELAPSED_MS=$((($(date +%s%N) - t0) / 1000000))
}

show() {
	printf 'exit %s after %d ms; stdout: %s; stderr: %s' "$RC" "$ELAPSED_MS" \
		"$(head -c 1000 "$OUT")" "$(head -c 1000 "$ERR")"
}

# expect_error DESC CODE REGEX [LIMIT] -- CMD... - CMD exits CODE within LIMIT
# seconds (default 10), prints nothing on stdout and exactly one line on stderr,
# which matches the extended regular expression REGEX. Counts a failure and
# goes on if not.
expect_error() {
	local desc="$1" code="$2" re="$3" limit=10 why=""
	shift 3
	if [[ "$1" != -- ]]; then
		limit="$1"
		shift
	fi
	shift
	run "$limit" "$@"
	if ((RC == 124 || RC == 137)); then
		why="hung: no exit within $limit s"
	elif ((RC >= 128)); then
		why="crashed with signal $((RC - 128))"
	elif ((RC != code)); then
		why="exited $RC, expected $code"
	elif [[ $(wc -l <"$ERR") -ne 1 ]]; then
		why="printed $(wc -l <"$ERR") lines on stderr, expected exactly one"
	elif ! [[ "$(cat "$ERR")" =~ $re ]]; then
		why="its stderr line does not match /$re/"
	elif [[ -s "$OUT" ]]; then
		why="printed on stdout"
	fi
	if [[ -n "$why" ]]; then
		fail_soft "$desc: $why: $(show)"
	else
		pass "$desc: exit $code, $(cat "$ERR")"
	fi
}

# ere STRING - STRING with the characters special to an ERE escaped.
ere() {
	# shellcheck disable=SC2016
	printf '%s' "$1" | sed 's/[][\.*^$(){}?+|/]/\\&/g'
}

# wait_socket PATH - wait up to 5 s for PATH to be a listening socket.
wait_socket() {
	lab_wait_until 5 test -S "$1" || fail "no socket $1 after 5 s"
}

# bg NAME CMD... - start CMD in the background in a process group of its own,
# output to $DIR/NAME.log; the group (CMD and whatever it forked) is killed when
# the test exits. BG_PID is CMD's PID, which is also the group's ID.
bg() {
	local name="$1"
	shift
	# Not a group leader (no job control here), so setsid execs without forking.
	setsid "$@" </dev/null >"$DIR/$name.log" 2>&1 &
	BG_PID=$!
	lab_at_exit kill -KILL -- "-$BG_PID"
}

# ------------------------------------------------------------------ usage errors

test_usage_errors() {
	expect_error "ping with an unknown URI scheme" 2 '^vmbusify: notaurl://x: .*scheme' \
		-- "$VB" ping notaurl://x
	expect_error "ping with a vsock URI whose CID is not a number" 2 '^vmbusify: vsock://abc: .+' \
		-- "$VB" ping vsock://abc
	expect_error "ping -c 0" 2 '^vmbusify: ping: .*count' -- "$VB" ping -c 0 lab1
	expect_error "ping -i -1" 2 '^vmbusify: ping: .*interval' -- "$VB" ping -i -1 lab1
	expect_error "bench -t 0" 2 '^vmbusify: bench: .+' -- "$VB" bench -t 0 lab1
	expect_error "bench -P 0" 2 '^vmbusify: bench: .+' -- "$VB" bench -P 0 lab1
	expect_error "an unknown command" 2 '^vmbusify: frobnicate: .*unknown command' -- "$VB" frobnicate
	expect_error "--backend with an unknown backend" 2 '^vmbusify: --backend: .+' \
		-- "$VB" --backend foo ls
	expect_error "VMBUSIFY_BACKEND with an unknown backend" 2 '^vmbusify: .*VMBUSIFY_BACKEND.*bogus' \
		-- env VMBUSIFY_BACKEND=bogus "$VB" ping "unix://$DIR/none.sock"
}

# ------------------------------------------------------- nothing to connect to

test_nothing_to_connect_to() {
	expect_error "ping a Unix socket that does not exist" 5 '^vmbusify: unix:///nonexistent\.sock: .+' \
		-- "$VB" ping unix:///nonexistent.sock
	expect_error "ls with no daemon at VMBUSIFY_CONTROL" 3 '^vmbusify: .*/nonexistent.+' \
		-- env VMBUSIFY_CONTROL=/nonexistent "$VB" ls
	run 10 env VMBUSIFY_CONTROL=/nonexistent "$VB" ls
	if [[ "$(cat "$ERR")" == "vmbusify: -: "* ]]; then
		fail_soft "ls with no daemon names the internal target '-' as what failed: $(cat "$ERR")"
	else
		pass "ls with no daemon names what failed (not the internal target '-')"
	fi
}

# ------------------------------------------------------- the agent's and daemon's setup

test_agent_setup_errors() {
	expect_error "agent listening on TCP without a token file" 1 \
		'^vmbusify-agent: tcp://127\.0\.0\.1:0: .*--token-file' \
		-- "$AGENT" --listen tcp://127.0.0.1:0
	expect_error "agent with an unknown URI scheme" 1 '^vmbusify-agent: bogus://: .+' \
		-- "$AGENT" --listen bogus://
}

test_daemon_setup_errors() {
	local conf="$DIR/bad.conf"
	expect_error "daemon with a missing config file" 1 '^vmbusifyd: /nonexistent: .+' \
		-- "$DAEMON" --config /nonexistent
	printf '[daemon]\nlog-level = info\n[vm lab1\nuri = unix:///x.sock\n' >"$conf"
	expect_error "daemon with a config syntax error on line 3" 1 \
		"^vmbusifyd: $(ere "$conf"): line 3: .+" -- "$DAEMON" --config "$conf"
	expect_error "daemon --vm without NAME=" 1 '^vmbusifyd: --vm: .+' \
		-- "$DAEMON" --config "$DIR/empty.conf" --vm noequals
	expect_error "daemon --vm with the same name twice" 1 '^vmbusifyd: --vm: .*duplicate' \
		-- "$DAEMON" --config "$DIR/empty.conf" --vm a=unix:///x.sock --vm a=unix:///y.sock
}

# --------------------------------------------------------------------- privilege

test_lab_up_needs_root() {
	local as=()
	if [[ "$(id -u)" -eq 0 ]]; then
		command -v setpriv >/dev/null || { skip_part "lab up as non-root: no setpriv"; return; }
		as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
		"${as[@]}" test -x "$VB" || { skip_part "lab up as non-root: the user nobody cannot run $VB"; return; }
	fi
	expect_error "lab up as a user who is not root" 4 '^vmbusify: lab: .*root' \
		-- "${as[@]}" env -u VB_LAB_DIR "$VB" lab up
}

test_control_socket_refuses_other_users() {
	if [[ "$(id -u)" -ne 0 ]] || ! command -v setpriv >/dev/null; then
		skip_part "the control socket as another user: needs root and setpriv"
		return
	fi
	expect_error "ls as nobody against root's daemon (socket for root and the vmbusify group)" 4 \
		'^vmbusify: .*[Pp]ermission denied' \
		-- setpriv --reuid=65534 --regid=65534 --clear-groups env VMBUSIFY_CONTROL="$DIR/ctl.sock" "$VB" ls
}

# ------------------------------------------------------------------- bad peers

# be WIDTH VALUE - VALUE as WIDTH bytes, big-endian.
be() {
	local i
	for ((i = $1 - 1; i >= 0; i--)); do
		printf '%b' "\\x$(printf %02x $(($2 >> (8 * i) & 255)))"
	done
}

# hello_frame MIN MAX NAME - the bytes of a HELLO frame (core/frame.c,
# docs/protocol.md) offering protocol versions MIN..MAX, as an agent sends it.
hello_frame() {
	local min="$1" max="$2" name="$3" len
	len=$((4 + 2 + 2 + 4 + 4 + 8 + 1 + 1 + ${#name}))
	be 1 0; be 1 0; be 2 0; be 4 0; be 4 "$len" # type HELLO, flags, reserved, stream, length
	printf 'VMBF'                               # magic 0x564d4246
	be 2 "$min"; be 2 "$max"                    # versions
	be 4 65536; be 4 16; be 8 0                 # max_frame, max_streams, caps
	be 1 1; be 1 "${#name}"; printf '%s' "$name" # role agent, name
}

test_peer_speaking_ssh() {
	bg g socat "UNIX-LISTEN:$DIR/g.sock,fork" SYSTEM:'echo SSH-2.0-OpenSSH_9.2; sleep 1'
	wait_socket "$DIR/g.sock"
	expect_error "ping a peer that speaks SSH: a protocol error naming HELLO or the protocol" 5 \
		"^vmbusify: unix://$(ere "$DIR")/g\.sock: .*(HELLO|[Pp]rotocol|VMBusify)" 5 \
		-- "$VB" ping "unix://$DIR/g.sock"
}

test_peer_closing_at_once() {
	bg c socat "UNIX-LISTEN:$DIR/c.sock,fork" SYSTEM:true
	wait_socket "$DIR/c.sock"
	expect_error "ping a peer that closes at once" 5 "^vmbusify: unix://$(ere "$DIR")/c\.sock: .+" 5 \
		-- "$VB" ping "unix://$DIR/c.sock"
}

test_peer_with_another_version() {
	hello_frame 5 6 fake-agent >"$DIR/hello56.bin"
	[[ $(stat -c %s "$DIR/hello56.bin") -eq 48 ]] || fail "the HELLO frame is $(stat -c %s "$DIR/hello56.bin") bytes, expected 48"
	bg v socat "UNIX-LISTEN:$DIR/v.sock,fork" SYSTEM:"cat $DIR/hello56.bin; sleep 2"
	wait_socket "$DIR/v.sock"
	expect_error "ping a peer that speaks only protocol versions 5-6" 5 \
		"^vmbusify: unix://$(ere "$DIR")/v\.sock: .*protocol version" 5 \
		-- "$VB" ping "unix://$DIR/v.sock"
}

test_peer_that_never_speaks() {
	bg s socat "UNIX-LISTEN:$DIR/s.sock,fork" SYSTEM:'sleep 30'
	wait_socket "$DIR/s.sock"
	expect_error "ping a peer that accepts and never says HELLO: gives up" 5 \
		"^vmbusify: unix://$(ere "$DIR")/s\.sock: .+" 15 -- "$VB" ping -c 1 "unix://$DIR/s.sock"
}

test_agent_dying_mid_ping() {
	local pid k crashed=0 rcs=""
	# The agent dies between two pings, while the CLI sleeps out the interval.
	for k in 1 2 3; do
		bg "dying$k" "$AGENT" --listen "unix://$DIR/dying$k.sock" --log-level warn
		pid=$BG_PID
		wait_socket "$DIR/dying$k.sock"
		"$VB" ping -c 50 -i 0.1 "unix://$DIR/dying$k.sock" >"$DIR/dying$k.out" 2>"$DIR/dying$k.err" &
		local job=$!
		lab_wait_until 5 grep -q 'seq=3 ' "$DIR/dying$k.out" || fail "the ping to a dying agent did not get going"
		kill -KILL "$pid"
		wait "$pid" 2>/dev/null || true
		RC=0
		wait "$job" 2>/dev/null || RC=$?
		rcs+=" $RC"
		((RC < 128)) || crashed=1
	done
	OUT="$DIR/dying1.out"
	ERR="$DIR/dying1.err"
	ELAPSED_MS=0
	if ((crashed)); then
		fail_soft "ping whose agent is killed between two pings crashed (exit codes:$rcs; 139 = SIGSEGV)"
	elif [[ "$rcs" != " 1 1 1" ]]; then
		fail_soft "ping whose agent is killed between two pings: exit codes$rcs, expected 1 each"
	else
		pass "ping whose agent is killed between two pings exits 1, three times out of three"
	fi
}

# ----------------------------------------------- a daemon with a good and a bad VM

# The garbage VM is the SSH-speaking socat of test_peer_speaking_ssh.
test_daemon_with_a_garbage_vm() {
	local junk_err
	bg agent "$AGENT" --listen "unix://$DIR/a.sock" --log-level warn
	wait_socket "$DIR/a.sock"
	bg daemon "$DAEMON" --config "$DIR/empty.conf" --control "unix://$DIR/ctl.sock" \
		--vm "real=unix://$DIR/a.sock" --vm "junk=unix://$DIR/g.sock" --log-level info
	DAEMON_PID=$BG_PID
	wait_socket "$DIR/ctl.sock"
	export VMBUSIFY_CONTROL="$DIR/ctl.sock"
	lab_wait_until 5 bash -c "\"$VB\" ls --json | jq -e '.vms[] | select(.name == \"real\") | .state == \"up\"'" \
		|| fail "the daemon did not connect to the real agent: $("$VB" ls 2>&1)"
	run 10 "$VB" ping -c 3 -i 0 real
	[[ $RC -eq 0 && $(grep -c '^reply from real: ' "$OUT") -eq 3 ]] \
		|| fail "ping the real VM beside a garbage one: $(show)"
	pass "a daemon with one real and one garbage VM answers pings to the real one"
	lab_wait_until 5 bash -c "\"$VB\" ls --json | jq -e '.vms[] | select(.name == \"junk\") | .state != \"up\" and .last_error != \"\" and .last_error != \"not connected yet\"'" \
		|| fail "ls does not show the garbage VM down with its error: $("$VB" ls 2>&1)"
	junk_err="$("$VB" ls --json | jq -r '.vms[] | select(.name == "junk") | .last_error')"
	if [[ "$junk_err" =~ HELLO|[Pp]rotocol|VMBusify ]]; then
		pass "ls shows the garbage VM down with a protocol error: '$junk_err'"
	else
		fail_soft "ls shows the garbage VM down, but its last_error '$junk_err' does not say the peer speaks another protocol (HELLO / protocol)"
	fi
	expect_error "ping the garbage VM through the daemon" 5 '^vmbusify: junk: junk is not connected: .+' \
		-- "$VB" ping junk
	expect_error "ping a VM the daemon does not know" 3 "^vmbusify: nosuchvm: .*known: real, junk" \
		-- "$VB" ping nosuchvm
	kill -0 "$DAEMON_PID" 2>/dev/null || fail "the daemon died"
	pass "the daemon still runs after serving the garbage VM's retries"
}

test_daemon_survives_bad_control_clients() {
	local answer
	answer="$(printf 'garbage\n' | timeout 5 socat -t 2 - "UNIX-CONNECT:$DIR/ctl.sock")" || true
	[[ "$answer" == "ERR expected 'CONNECT <vm>'" ]] \
		|| fail_soft "a control client that sends garbage got '$answer', expected \"ERR expected 'CONNECT <vm>'\""
	# A client that connects and says nothing holds a preamble slot for 5 s.
	bg silent socat -T 8 "UNIX-CONNECT:$DIR/ctl.sock" SYSTEM:'sleep 8'
	sleep 0.3
	run 5 "$VB" ls
	[[ $RC -eq 0 ]] || fail "ls while a silent client holds the control socket: $(show)"
	((ELAPSED_MS < 2000)) || fail "ls took $ELAPSED_MS ms while a silent client holds the control socket"
	run 10 "$VB" ping -c 2 -i 0 real
	[[ $RC -eq 0 ]] || fail "ping after bad control clients: $(show)"
	pass "the daemon answers garbage on its control socket with ERR and keeps serving beside a silent client"
}

test_agent_survives_garbage() {
	printf 'GET / HTTP/1.0\r\n\r\n' | timeout 5 socat -t 1 - "UNIX-CONNECT:$DIR/a.sock" >/dev/null 2>&1 || true
	head -c 4096 /dev/urandom | timeout 5 socat -t 1 - "UNIX-CONNECT:$DIR/a.sock" >/dev/null 2>&1 || true
	run 10 "$VB" ping -c 2 -i 0 "unix://$DIR/a.sock"
	[[ $RC -eq 0 ]] || fail "the agent no longer answers after two clients sent it garbage: $(show)"
	run 10 "$VB" ping -c 2 -i 0 real
	[[ $RC -eq 0 ]] || fail "the daemon's session to the agent did not survive garbage from other clients: $(show)"
	pass "the agent survives clients that send HTTP and random bytes, and keeps serving"
}

main() {
	lab_require_build "${1:-}"
	lab_require_tools socat jq timeout setsid
	VB="$VB_BUILD_DIR/vmbusify"
	AGENT="$VB_BUILD_DIR/vmbusify-agent"
	DAEMON="$VB_BUILD_DIR/vmbusifyd"
	[[ -x "$VB" ]] || skip "binaries not built (no $VB)"
	DIR="$(mktemp -d /tmp/vbcli.XXXXXX)"
	chmod 0755 "$DIR"
	lab_at_exit rm -rf "$DIR"
	: >"$DIR/empty.conf"
	unset VMBUSIFY_CONTROL
	test_usage_errors
	test_nothing_to_connect_to
	test_agent_setup_errors
	test_daemon_setup_errors
	test_lab_up_needs_root
	test_peer_speaking_ssh
	test_peer_closing_at_once
	test_peer_with_another_version
	test_peer_that_never_speaks
	test_agent_dying_mid_ping
	test_daemon_with_a_garbage_vm
	test_control_socket_refuses_other_users
	test_daemon_survives_bad_control_clients
	test_agent_survives_garbage
	lab_done
}

main "$@"
