#!/usr/bin/env bash
# Faults in the lab: a VM's agent dies, the daemon dies, either is stopped, an agent hangs. The
# daemon keeps serving the other VMs, tells the CLI at once and in one line
# that a VM is down, and reconnects by itself when the agent is back; a
# restarted daemon picks every VM up again; nothing waits forever.
#
# Usage: tests/lab/test_lab_faults.sh BUILDDIR   (binaries in BUILDDIR)
# Exit codes: 0 passed, 1 failed, 77 skipped (not root, binaries not built, no jq).
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VB=""  # the vmbusify binary under test
VBX="" # vmbusexec, beside it
TMP="" # the test's scratch directory
RC=0
ELAPSED_MS=0

# run_cli NAME LIMIT CMD... - run CMD for at most LIMIT seconds, stdout to
# $TMP/NAME.out, stderr to $TMP/NAME.err; sets RC and ELAPSED_MS.
run_cli() {
	local name="$1" limit="$2" t0
	shift 2
	RC=0
	t0=$(date +%s%N)
	timeout "$limit" "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || RC=$?
	ELAPSED_MS=$((($(date +%s%N) - t0) / 1000000))
}

# show NAME - the output of a run, for a failure message.
show() {
	printf 'exit %s after %d ms; stdout: %s; stderr: %s' "$RC" "$ELAPSED_MS" \
		"$(head -c 1500 "$TMP/$1.out")" "$(head -c 1500 "$TMP/$1.err")"
}

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

# vm_field VM FIELD - one field of VM in `vmbusify ls --json`.
vm_field() {
	"$VB" ls --json | jq -r --arg vm "$1" ".vms[] | select(.name == \$vm) | .$2"
}

vm_is_up() {
	[[ "$(vm_field "$1" state)" == up ]]
}

vm_is_down_with_reason() {
	[[ "$(vm_field "$1" state)" != up && -n "$(vm_field "$1" last_error)" ]]
}

all_vms_up() {
	"$VB" ls --json | jq -e '(.vms | length) == 3 and (.vms | map(.state == "up") | all)' >/dev/null
}

# The lab's own command lines (scripts/lab.sh, "Layout"), to restart what a test
# killed exactly as `lab up` started it. (/proc/PID/cmdline will not do: the
# daemon cuts its --vm NAME=URI arguments in two as it parses them.)
lab_bin_dir() {
	sed -n 's/^bin_dir=//p' "$VB_LAB_DIR/.vmbusify-lab"
}

agent_cmd() {
	echo "$(lab_bin_dir)/vmbusify-agent"
	printf '%s\n' --listen "unix://$(realpath -m "$VB_LAB_DIR")/$1.sock" --log-level info
}

daemon_cmd() {
	local dir vm
	dir="$(realpath -m "$VB_LAB_DIR")"
	echo "$(lab_bin_dir)/vmbusifyd"
	printf '%s\n' --control "unix://$dir/control.sock" --state-dir "$dir"
	for vm in lab1 lab2 lab3; do
		printf '%s\n' --vm "$vm=unix://$dir/$vm.sock"
	done
	printf '%s\n' --log-level info
}

pid_gone() {
	! lab_pid_alive "$1"
}

# pid_of NAME - the PID the lab recorded for its process NAME.
pid_of() {
	cat "$VB_LAB_DIR/$1.pid"
}

# ping_works VM - three pings through the daemon, all answered.
ping_works() {
	run_cli "ok_$1" 15 "$VB" ping -c 3 -i 0 "$1"
	[[ $RC -eq 0 && $(grep -c "^reply from $1: " "$TMP/ok_$1.out") -eq 3 ]]
}

# one_error_line NAME REGEX - the run's stderr is exactly one line, matching REGEX.
one_error_line() {
	[[ $(wc -l <"$TMP/$1.err") -eq 1 && "$(cat "$TMP/$1.err")" =~ $2 ]]
}

# ---------------------------------------------------------------- (a) an agent dies

test_killed_agent_shows_down() {
	local t0 pid
	pid="$(pid_of lab2)"
	[[ "$(cat "/proc/$pid/comm")" == vmbusify-agent ]] || fail "lab2.pid ($pid) is not an agent"
	kill -KILL "$pid"
	t0=$(now_ms)
	lab_wait_until 5 vm_is_down_with_reason lab2 \
		|| fail "5 s after lab2's agent died, ls --json still shows it $(vm_field lab2 state) ('$(vm_field lab2 last_error)')"
	pass "lab2's agent killed: ls --json shows lab2 $(vm_field lab2 state) within $(($(now_ms) - t0)) ms, last_error '$(vm_field lab2 last_error)'"
}

test_other_vms_still_served() {
	local vm
	for vm in lab1 lab3; do
		ping_works "$vm" || fail "vmbusify ping $vm while lab2 is down: $(show "ok_$vm")"
	done
	if ! vm_is_up lab1 || ! vm_is_up lab3; then
		fail "lab1 or lab3 is no longer up: $("$VB" ls 2>&1)"
	fi
	pass "while lab2 is down the daemon still serves lab1 and lab3 (3 pings each answered)"
}

test_ping_to_down_vm_fails_fast() {
	run_cli down_ping 10 "$VB" ping lab2
	[[ $RC -eq 5 ]] || fail "vmbusify ping lab2 (down) exited $RC, expected 5: $(show down_ping)"
	((ELAPSED_MS < 3000)) || fail "vmbusify ping lab2 (down) took $ELAPSED_MS ms, expected < 3 s"
	one_error_line down_ping '^vmbusify: lab2: lab2 is not connected: .+$' \
		|| fail "vmbusify ping lab2 (down) did not print the one line 'vmbusify: lab2: lab2 is not connected: ...': $(show down_ping)"
	[[ ! -s "$TMP/down_ping.out" ]] || fail "vmbusify ping lab2 (down) printed on stdout: $(show down_ping)"
	pass "vmbusify ping lab2 (down) exits 5 in $ELAPSED_MS ms with: $(cat "$TMP/down_ping.err")"
}

test_direct_ping_to_dead_agent_fails_fast() {
	local uri="unix://$VB_LAB_DIR/lab2.sock"
	run_cli dead_direct 10 "$VB" ping -c 1 "$uri"
	[[ $RC -eq 5 ]] || fail "vmbusify ping $uri (agent dead) exited $RC, expected 5: $(show dead_direct)"
	one_error_line dead_direct "^vmbusify: $uri: .+$" \
		|| fail "vmbusify ping $uri (agent dead) did not print one 'vmbusify: $uri: ...' line: $(show dead_direct)"
	pass "vmbusify ping $uri (agent dead) exits 5 with one line: $(cat "$TMP/dead_direct.err")"
}

test_daemon_reconnects_to_restarted_agent() {
	local t0 pid connects cmd=()
	connects="$(vm_field lab2 connects)"
	mapfile -t cmd < <(agent_cmd lab2)
	pid="$(lab_respawn lab2 vbl-lab2 "${cmd[@]}")" || fail "could not restart lab2's agent"
	t0=$(now_ms)
	lab_wait_until 15 vm_is_up lab2 || fail "15 s after lab2's agent restarted, ls shows it $(vm_field lab2 state): $(vm_field lab2 last_error)"
	RECONNECT_MS=$(($(now_ms) - t0))
	[[ "$(vm_field lab2 connects)" -eq $((connects + 1)) ]] \
		|| fail "lab2 connects went from $connects to $(vm_field lab2 connects), expected $((connects + 1))"
	[[ -z "$(vm_field lab2 last_error)" ]] || fail "lab2 is up but keeps last_error '$(vm_field lab2 last_error)'"
	ping_works lab2 || fail "vmbusify ping lab2 after the reconnect: $(show ok_lab2)"
	"$LAB_SH" status --json | jq -e --argjson pid "$pid" \
		'.vms[] | select(.name == "lab2") | .running and .agent_pid == $pid' >/dev/null \
		|| fail "lab status does not show the restarted agent $pid running"
	echo "reconnect time: lab2 up ${RECONNECT_MS} ms after its agent restarted"
	pass "the daemon reconnects to lab2 by itself ${RECONNECT_MS} ms after its agent restarted; pings work again"
}

# ------------------------------------------------------ (a') a VM dies mid-request

test_requests_in_flight_end_when_vm_dies() {
	local uri="unix://$VB_LAB_DIR/lab3.sock" pid cmd=() t0 rc_d rc_x job_d job_x
	pid="$(pid_of lab3)"
	mapfile -t cmd < <(agent_cmd lab3)
	timeout 20 "$VB" ping -c 1000 -i 0.02 lab3 >"$TMP/fly_d.out" 2>"$TMP/fly_d.err" &
	job_d=$!
	timeout 20 "$VB" ping -c 1000 -i 0.02 "$uri" >"$TMP/fly_x.out" 2>"$TMP/fly_x.err" &
	job_x=$!
	# Only the direct ping shows its replies as they come (see test_lab_session).
	lab_wait_until 5 grep -q 'seq=10 ' "$TMP/fly_x.out" || fail "the direct ping to lab3 did not get going"
	kill -KILL "$pid"
	t0=$(now_ms)
	rc_d=0
	wait "$job_d" || rc_d=$?
	rc_x=0
	wait "$job_x" || rc_x=$?
	ELAPSED_MS=$(($(now_ms) - t0))
	lab_respawn lab3 vbl-lab3 "${cmd[@]}" >/dev/null || fail "could not restart lab3's agent"
	# Each way of pinging: exit 1 (the operation ran and failed), at once, and why in one line.
	check_ping_lost fly_d "$rc_d" "a ping through the daemon" lab3
	check_ping_lost fly_x "$rc_x" "a direct ping" "$uri"
	lab_wait_until 15 vm_is_up lab3 || fail "lab3 did not come back up after its agent restarted"
}

# check_ping_lost NAME RC WHAT TARGET - the run NAME, a ping whose VM died under
# it, exited 1 within 3 s with one line 'vmbusify: TARGET: <why>' on stderr.
check_ping_lost() {
	local name="$1" what="$3" target="$4"
	RC="$2"
	if ((RC >= 128)); then
		fail_soft "$what whose VM died crashed (exit $RC$( ((RC == 139)) && echo ', SIGSEGV')): $(show "$name")"
		return
	fi
	[[ $RC -eq 1 ]] || { fail_soft "$what whose VM died exited $RC, expected 1: $(show "$name")"; return; }
	((ELAPSED_MS < 3000)) || { fail_soft "$what took $ELAPSED_MS ms to end after its VM died, expected < 3 s"; return; }
	pass "$what to lab3 ends with exit 1 within $ELAPSED_MS ms of the VM's death ($(grep -c '^reply from ' "$TMP/$name.out") replies before)"
	if one_error_line "$name" "^vmbusify: $target: .+$"; then
		pass "$what that lost its VM says why on stderr: $(cat "$TMP/$name.err")"
	else
		fail_soft "$what that lost its VM exits 1 without the one stderr line 'vmbusify: $target: <why>' (DESIGN §8): $(show "$name")"
	fi
}

# ------------------------------------------------------------- (b) the daemon dies

test_cli_without_daemon() {
	local pid
	pid="$(pid_of vmbusifyd)"
	[[ "$(cat "/proc/$pid/comm")" == vmbusifyd ]] || fail "vmbusifyd.pid ($pid) is not the daemon"
	kill -KILL "$pid"
	lab_wait_until 5 pid_gone "$pid" || fail "the daemon $pid survived SIGKILL"
	run_cli nodaemon 10 "$VB" ping -c 1 lab1
	[[ $RC -eq 3 ]] || fail "vmbusify ping lab1 without the daemon exited $RC, expected 3: $(show nodaemon)"
	one_error_line nodaemon "^vmbusify: lab1: cannot reach the daemon at $VB_LAB_DIR/control.sock .+$" \
		|| fail "vmbusify ping lab1 without the daemon: not one line 'vmbusify: lab1: cannot reach the daemon at ...': $(show nodaemon)"
	pass "daemon killed: vmbusify ping lab1 exits 3 with: $(cat "$TMP/nodaemon.err")"
}

test_agents_serve_direct_sessions_without_daemon() {
	local vm uri
	for vm in lab1 lab2 lab3; do
		uri="unix://$VB_LAB_DIR/$vm.sock"
		run_cli "direct_$vm" 10 "$VB" ping -c 2 -i 0 "$uri"
		[[ $RC -eq 0 ]] || fail "vmbusify ping $uri without the daemon: $(show "direct_$vm")"
	done
	pass "without the daemon every agent still answers direct pings on its channel"
}

test_restarted_daemon_serves_again() {
	local pid t0 vm cmd=()
	mapfile -t cmd < <(daemon_cmd)
	pid="$(lab_respawn vmbusifyd vbl-host "${cmd[@]}")" || fail "could not restart the daemon"
	t0=$(now_ms)
	lab_wait_until 10 all_vms_up || fail "10 s after the daemon restarted, not every VM is up: $("$VB" ls 2>&1)"
	for vm in lab1 lab2 lab3; do
		ping_works "$vm" || fail "vmbusify ping $vm after the daemon restarted: $(show "ok_$vm")"
	done
	"$LAB_SH" status --json | jq -e --argjson pid "$pid" '.host.running and .host.daemon_pid == $pid' \
		>/dev/null || fail "lab status does not show the restarted daemon $pid running"
	pass "the daemon restarted over its stale control socket: lab1..lab3 up within $(($(now_ms) - t0)) ms, pings work"
}

# ------------------------------------------------- (b') stopped, not killed: a GOAWAY

# exec_started NAME - the vmbusexec run NAME printed its first line.
exec_started() {
	grep -q '^go$' "$TMP/$1.out"
}

# sigterm_under_exec NAME VM WHO WHAT WHY_ERE - starts a vmbusexec to VM through the
# daemon and, once its program runs, stops the lab process WHO (WHAT, in words) with
# SIGTERM: the exec exits 255 within 3 s with one line ending in WHY_ERE, and WHO exits.
sigterm_under_exec() {
	local name="$1" vm="$2" who="$3" what="$4" why="$5" pid job t0
	pid="$(pid_of "$who")"
	"$VBX" "$vm" sh -c 'echo go; exec sleep 30' >"$TMP/$name.out" 2>"$TMP/$name.err" &
	job=$!
	lab_wait_until 10 exec_started "$name" || fail "vmbusexec $vm did not start: $(cat "$TMP/$name.err")"
	kill -TERM "$pid"
	t0=$(now_ms)
	RC=0
	wait "$job" || RC=$?
	ELAPSED_MS=$(($(now_ms) - t0))
	[[ $RC -eq 255 ]] || fail "a vmbusexec whose $what was stopped exited $RC, expected 255: $(show "$name")"
	((ELAPSED_MS < 3000)) || fail "a vmbusexec whose $what was stopped took $ELAPSED_MS ms to end"
	one_error_line "$name" "^vmbusexec: $vm: connection lost: .*$why$" ||
		fail "a vmbusexec whose $what was stopped does not say why in one line ('$why'): $(show "$name")"
	pass "$what stopped with SIGTERM: a vmbusexec through it exits 255 within $ELAPSED_MS ms with: $(cat "$TMP/$name.err")"
	lab_wait_until 5 pid_gone "$pid" || fail "$what ($pid) did not exit on SIGTERM"
}

# logged LOG ERE WHAT - the lab's LOG (a process name) has a line matching ERE.
logged() {
	local line
	line="$(grep -E "$2" "$VB_LAB_DIR/$1.log" | tail -n 1)"
	[[ -n "$line" ]] || fail "$3: no line '$2' in $1.log: $(tail -n 3 "$VB_LAB_DIR/$1.log")"
	pass "$3: $line"
}

test_stopped_agent_says_goodbye() {
	local cmd=()
	mapfile -t cmd < <(agent_cmd lab3)
	sigterm_under_exec term_a lab3 lab3 "lab3's agent" "the far end is shutting down"
	logged vmbusifyd 'lab3: session lost: .*the agent is stopping' "the daemon logs why"
	lab_respawn lab3 vbl-lab3 "${cmd[@]}" >/dev/null || fail "could not restart lab3's agent"
	lab_wait_until 15 vm_is_up lab3 || fail "lab3 did not come back up after its agent restarted"
}

test_stopped_daemon_says_goodbye() {
	local cmd=()
	mapfile -t cmd < <(daemon_cmd)
	sigterm_under_exec term_d lab1 vmbusifyd "the daemon" "vmbusifyd is stopping"
	logged lab1 'ended: .*vmbusifyd is stopping' "lab1's agent logs why"
	lab_respawn vmbusifyd vbl-host "${cmd[@]}" >/dev/null || fail "could not restart the daemon"
	lab_wait_until 10 all_vms_up || fail "10 s after the daemon restarted, not every VM is up: $("$VB" ls 2>&1)"
}

# ------------------------------------------------------------ (c) an agent hangs

test_hung_agent() {
	local pid uri="unix://$VB_LAB_DIR/lab2.sock" t0 vm job rc
	pid="$(pid_of lab2)"
	kill -STOP "$pid"
	lab_at_exit kill -CONT "$pid"
	t0=$(now_ms)
	# A direct session to a hung agent: the channel accepts, the agent never says HELLO.
	timeout 20 "$VB" ping -c 1 "$uri" >"$TMP/hung_x.out" 2>"$TMP/hung_x.err" &
	job=$!
	for vm in lab1 lab3; do
		ping_works "$vm" || fail "vmbusify ping $vm while lab2 hangs: $(show "ok_$vm")"
	done
	run_cli hung_ls 5 "$VB" ls
	[[ $RC -eq 0 ]] || fail "vmbusify ls while lab2 hangs: $(show hung_ls)"
	((ELAPSED_MS < 2000)) || fail "vmbusify ls took $ELAPSED_MS ms while lab2 hangs"
	pass "while lab2's agent hangs (SIGSTOP), lab1 and lab3 answer pings and ls answers in $ELAPSED_MS ms"
	lab_wait_until 45 vm_is_down_with_reason lab2 \
		|| fail "45 s after lab2's agent hung, ls still shows it $(vm_field lab2 state)"
	pass "the daemon gives up on the hung lab2 after $(($(now_ms) - t0)) ms: $(vm_field lab2 state), '$(vm_field lab2 last_error)'"
	rc=0
	wait "$job" || rc=$?
	RC=$rc
	ELAPSED_MS=0
	if [[ $rc -eq 5 ]] && one_error_line hung_x "^vmbusify: $uri: .+$"; then
		pass "vmbusify ping $uri to the hung agent gives up with exit 5: $(cat "$TMP/hung_x.err")"
	else
		fail_soft "vmbusify ping $uri to a hung agent (connects, never says HELLO) did not give up with exit 5 and one line within 20 s (124 = still waiting): $(show hung_x)"
	fi
	kill -CONT "$pid"
	t0=$(now_ms)
	lab_wait_until 15 vm_is_up lab2 || fail "15 s after lab2's agent resumed, ls shows it $(vm_field lab2 state)"
	ping_works lab2 || fail "vmbusify ping lab2 after it resumed: $(show ok_lab2)"
	pass "lab2 resumed (SIGCONT): up again within $(($(now_ms) - t0)) ms, pings work"
}

# ----------------------------------------------------------------------- the end

test_down_takes_restarted_processes() {
	local pids=() pid left
	mapfile -t pids < <("$LAB_SH" status --json | jq -r '.vms[].agent_pid, .host.daemon_pid')
	[[ ${#pids[@]} -eq 4 ]] || fail "expected 4 agent and daemon PIDs, found ${#pids[@]}"
	lab_down >/dev/null || fail "lab.sh down exited $?"
	for pid in "${pids[@]}"; do
		! lab_pid_alive "$pid" || fail "restarted process $pid ($(cat "/proc/$pid/comm")) left after down"
	done
	left="$(grep -lzxF "VBL_OWNER=$(realpath -m "$VB_LAB_DIR")" /proc/[0-9]*/environ 2>/dev/null | xargs)" || true
	[[ -z "$left" ]] || fail "processes marked as the lab's left after down: $left"
	left="$(ip netns list | grep -o '^vbl-[^ ]*' | xargs)" || true
	[[ -z "$left" && ! -e "$VB_LAB_DIR" ]] || fail "namespaces ($left) or $VB_LAB_DIR left after down"
	pass "lab down takes the restarted agents and daemon down too, and leaves nothing"
}

main() {
	lab_require_root
	lab_require_build "${1:-}"
	lab_require_tools jq timeout setsid
	VB="$VB_BUILD_DIR/vmbusify"
	VBX="$VB_BUILD_DIR/vmbusexec"
	[[ -x "$VB" && -x "$VBX" ]] || skip "binaries not built (no $VB or $VBX)"
	TMP="$(mktemp -d)"
	lab_at_exit rm -rf "$TMP"
	export VMBUSIFY_CONTROL="$VB_LAB_DIR/control.sock"
	lab_up 3
	lab_wait_until 5 all_vms_up || fail "not every VM is up 5 s after lab up: $("$VB" ls 2>&1)"
	# (a) an agent dies and comes back
	test_killed_agent_shows_down
	test_other_vms_still_served
	test_ping_to_down_vm_fails_fast
	test_direct_ping_to_dead_agent_fails_fast
	test_daemon_reconnects_to_restarted_agent
	test_requests_in_flight_end_when_vm_dies
	# (b) the daemon dies and comes back
	test_cli_without_daemon
	test_agents_serve_direct_sessions_without_daemon
	test_restarted_daemon_serves_again
	test_stopped_agent_says_goodbye
	test_stopped_daemon_says_goodbye
	# (c) an agent hangs and resumes
	test_hung_agent
	test_down_takes_restarted_processes
	lab_done
}

main "$@"
