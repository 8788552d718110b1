#!/usr/bin/env bash
# A session to every VM of the lab: `vmbusify lab up` brings up agents that the
# daemon holds sessions to; `ls` lists them, `ping` and `bench` reach each VM
# both through the daemon and directly over its channel; `lab down` leaves
# nothing behind.
#
# Usage: tests/lab/test_lab_session.sh BUILDDIR   (binaries in BUILDDIR)
# Exit codes: 0 passed, 1 failed, 77 skipped (not root, binaries not built, no jq).
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly VMS=(lab1 lab2 lab3)
VB=""    # the vmbusify binary under test
TMP=""   # the test's scratch directory

# run_cli NAME CMD... - run CMD with a 30 s limit, stdout to $TMP/NAME.out,
# stderr to $TMP/NAME.err; sets RC.
run_cli() {
	local name="$1"
	shift
	RC=0
	timeout 30 "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" || RC=$?
}

# show NAME - the output of a run, for a failure message.
show() {
	printf 'exit %s; stdout: %s; stderr: %s' "$RC" "$(head -c 2000 "$TMP/$1.out")" \
		"$(head -c 2000 "$TMP/$1.err")"
}

# all_vms_up - true when `vmbusify ls --json` shows every lab VM up.
all_vms_up() {
	"$VB" ls --json | jq -e --argjson n "${#VMS[@]}" \
		'(.vms | length) == $n and (.vms | map(.state == "up") | all)' >/dev/null
}

test_lab_up_through_the_cli() {
	run_cli up "$VB" lab up --vms "${#VMS[@]}"
	[[ $RC -eq 0 ]] || fail "vmbusify lab up --vms ${#VMS[@]}: $(show up)"
	grep -q "^vmbusify: lab: up: VMs lab1..lab${#VMS[@]}, " "$TMP/up.out" \
		|| fail "vmbusify lab up did not say what it made: $(show up)"
	run_cli status "$VB" lab status --json
	[[ $RC -eq 0 ]] || fail "vmbusify lab status --json right after up: $(show status)"
	jq -e --argjson n "${#VMS[@]}" '(.vms | length) == $n and (.vms | map(.running) | all)
		and .host.running' "$TMP/status.out" >/dev/null \
		|| fail "lab status --json does not show ${#VMS[@]} running VMs and a running daemon: $(show status)"
	pass "vmbusify lab up --vms ${#VMS[@]} starts ${#VMS[@]} agents and the daemon"
}

test_every_vm_comes_up() {
	local t0=$SECONDS
	lab_wait_until 5 all_vms_up || fail "not every VM is up 5 s after lab up: $("$VB" ls 2>&1)"
	pass "every VM is up within 5 s of lab up ($((SECONDS - t0)) s)"
}

test_processes_run_the_chosen_backend() {
	local be="${VMBUSIFY_BACKEND:-}" vm
	if [[ "$be" != uring && "$be" != epoll ]]; then
		skip_part "the backend in use: VMBUSIFY_BACKEND is not set to uring or epoll"
		return
	fi
	grep -q "loops ($be)" "$VB_LAB_DIR/vmbusifyd.log" \
		|| fail "the daemon does not run the $be backend: $(grep loops "$VB_LAB_DIR/vmbusifyd.log")"
	for vm in "${VMS[@]}"; do
		grep -q "loops ($be)" "$VB_LAB_DIR/$vm.log" \
			|| fail "$vm's agent does not run the $be backend: $(grep loops "$VB_LAB_DIR/$vm.log")"
	done
	pass "the daemon and every agent run the $be backend (VMBUSIFY_BACKEND)"
}

test_ls_finds_the_lab_daemon_by_itself() {
	if [[ "$(realpath -m "$VB_LAB_DIR")" != /run/vmbusify/lab || -e /run/vmbusify/control.sock ]]; then
		skip_part "ls without VMBUSIFY_CONTROL: the lab is not in /run/vmbusify/lab, or another daemon owns /run/vmbusify/control.sock"
		return
	fi
	run_cli ls_env env -u VMBUSIFY_CONTROL "$VB" ls
	if [[ $RC -ne 0 ]] || ! grep -q '^lab1 ' "$TMP/ls_env.out"; then
		fail "vmbusify ls without VMBUSIFY_CONTROL does not find the lab's daemon: $(show ls_env)"
	fi
	pass "vmbusify ls finds the lab's daemon without VMBUSIFY_CONTROL"
}

test_ls_lists_the_vms_up() {
	local vm row
	run_cli ls "$VB" ls
	[[ $RC -eq 0 && ! -s "$TMP/ls.err" ]] || fail "vmbusify ls: $(show ls)"
	[[ "$(head -n 1 "$TMP/ls.out")" =~ ^VM\ +STATE\ +SINCE\ +RTT\ +CHANNEL ]] \
		|| fail "vmbusify ls has no header line: $(show ls)"
	[[ $(wc -l <"$TMP/ls.out") -eq $((${#VMS[@]} + 1)) ]] \
		|| fail "vmbusify ls does not list exactly ${#VMS[@]} VMs: $(show ls)"
	for vm in "${VMS[@]}"; do
		row="$(grep "^$vm " "$TMP/ls.out")" || fail "vmbusify ls does not list $vm: $(show ls)"
		[[ "$row" =~ ^$vm\ +up\ .*unix://$VB_LAB_DIR/$vm\.sock\ +vmbusify-agent\  ]] \
			|| fail "vmbusify ls: $vm is not up on its channel with an agent as peer: '$row'"
	done
	pass "vmbusify ls lists lab1..lab${#VMS[@]} up, each on its channel, each with an agent"
}

test_ls_json_lists_the_vms_up() {
	local vm
	run_cli lsj "$VB" ls --json
	[[ $RC -eq 0 && ! -s "$TMP/lsj.err" ]] || fail "vmbusify ls --json: $(show lsj)"
	jq -e . "$TMP/lsj.out" >/dev/null || fail "vmbusify ls --json is not JSON: $(show lsj)"
	jq -e --argjson n "${#VMS[@]}" '.vms | length == $n' "$TMP/lsj.out" >/dev/null \
		|| fail "vmbusify ls --json does not list ${#VMS[@]} VMs: $(show lsj)"
	for vm in "${VMS[@]}"; do
		jq -e --arg vm "$vm" --arg uri "unix://$VB_LAB_DIR/$vm.sock" '
			.vms | map(select(.name == $vm)) | length == 1 and (.[0]
			| .state == "up" and .uri == $uri and .last_error == ""
			  and (.peer | startswith("vmbusify-agent")) and .version == 1
			  and .connects == 1 and (.caps | type) == "number"
			  and (.since_s | type) == "number")' "$TMP/lsj.out" >/dev/null \
			|| fail "vmbusify ls --json: $vm is not up with an agent, version 1: $(show lsj)"
	done
	pass "vmbusify ls --json: lab1..lab${#VMS[@]} up, peer vmbusify-agent, version 1, connected once"
}

# check_replies NAME TARGET COUNT - the run NAME printed COUNT replies from TARGET, in order.
check_replies() {
	local name="$1" target="$2" count="$3" want="" got k
	for ((k = 1; k <= count; k++)); do
		want+="reply from $target: seq=$k"$'\n'
	done
	got="$(grep '^reply from ' "$TMP/$name.out" | sed -E 's/ time=[0-9]+\.[0-9]+ ms$//')"$'\n'
	[[ "$got" == "$want" ]] || return 1
	[[ $(grep -cE '^reply from .* time=[0-9]+\.[0-9]{3} ms$' "$TMP/$name.out") -eq $count ]] || return 1
	grep -qx "$count sent, $count received, .*" "$TMP/$name.out"
}

test_ping_every_vm_by_name() {
	local vm
	for vm in "${VMS[@]}"; do
		run_cli "ping_$vm" "$VB" ping -c 3 -i 0 "$vm"
		[[ $RC -eq 0 && ! -s "$TMP/ping_$vm.err" ]] || fail "vmbusify ping -c 3 -i 0 $vm: $(show "ping_$vm")"
		check_replies "ping_$vm" "$vm" 3 \
			|| fail "vmbusify ping -c 3 -i 0 $vm did not print 3 replies and '3 sent, 3 received': $(show "ping_$vm")"
		grep -qE '^peer: vmbusify-agent .*, protocol version 1, capabilities 0x[0-9a-f]+$' \
			"$TMP/ping_$vm.out" || fail "vmbusify ping $vm does not describe its peer: $(show "ping_$vm")"
	done
	pass "vmbusify ping -c 3 -i 0 labK: 3 replies from each of lab1..lab${#VMS[@]}, through the daemon"
}

test_ping_json() {
	local caps
	run_cli pingj "$VB" ping --json -c 3 -i 0 lab1
	[[ $RC -eq 0 && ! -s "$TMP/pingj.err" ]] || fail "vmbusify ping --json -c 3 -i 0 lab1: $(show pingj)"
	[[ $(wc -l <"$TMP/pingj.out") -eq 1 ]] || fail "ping --json printed more than one line: $(show pingj)"
	caps="$(jq -r '.vms[] | select(.name == "lab1") | .caps' "$TMP/lsj.out")"
	jq -e --argjson caps "$caps" '.vm == "lab1" and .sent == 3 and .received == 3 and .error == ""
		and (.peer.name | startswith("vmbusify-agent")) and .peer.version == 1
		and .peer.caps == $caps and .peer.role == 1
		and .rtt_ms.min <= .rtt_ms.median and .rtt_ms.median <= .rtt_ms.max' \
		"$TMP/pingj.out" >/dev/null \
		|| fail "ping --json: not sent 3, received 3 with the agent's caps ($caps): $(show pingj)"
	pass "vmbusify ping --json -c 3 -i 0 lab1: sent 3, received 3, the agent's version 1 and caps $caps"
}

test_ping_directly_over_the_channel() {
	local uri="unix://$VB_LAB_DIR/lab1.sock"
	run_cli pingd "$VB" ping -c 3 "$uri"
	[[ $RC -eq 0 && ! -s "$TMP/pingd.err" ]] || fail "vmbusify ping -c 3 $uri: $(show pingd)"
	check_replies pingd "$uri" 3 || fail "vmbusify ping -c 3 $uri did not print 3 replies: $(show pingd)"
	run_cli pingdj "$VB" ping --json -c 3 -i 0 "$uri"
	[[ $RC -eq 0 ]] || fail "vmbusify ping --json -c 3 -i 0 $uri: $(show pingdj)"
	jq -e '.sent == 3 and .received == 3 and .error == "" and .peer.role == 1
		and (.peer.name | startswith("vmbusify-agent"))' "$TMP/pingdj.out" >/dev/null \
		|| fail "ping --json over $uri: not sent 3, received 3 from the agent: $(show pingdj)"
	pass "vmbusify ping over the channel URI $uri: 3 replies from the agent, without the daemon"
}

# ping_shows_replies_live TARGET NAME - a 6-ping run with 0.5 s between pings has
# printed at least one reply 1.5 s in, and ends well; sets RC.
ping_shows_replies_live() {
	local target="$1" name="$2" job early
	"$VB" ping -c 6 -i 0.5 "$target" >"$TMP/$name.out" 2>"$TMP/$name.err" &
	job=$!
	sleep 1.5
	early=$(grep -c '^reply from ' "$TMP/$name.out" || true)
	RC=0
	wait "$job" || RC=$?
	[[ $RC -eq 0 ]] || fail "vmbusify ping -c 6 -i 0.5 $target: $(show "$name")"
	check_replies "$name" "$target" 6 || fail "vmbusify ping -c 6 -i 0.5 $target did not print 6 replies: $(show "$name")"
	((early >= 1))
}

test_ping_shows_replies_as_they_come() {
	local uri="unix://$VB_LAB_DIR/lab1.sock"
	ping_shows_replies_live "$uri" live_direct \
		|| fail "vmbusify ping $uri printed no reply in its first 1.5 s"
	pass "vmbusify ping over the channel prints each reply as it comes"
	if ping_shows_replies_live lab1 live_daemon; then
		pass "vmbusify ping lab1 through the daemon prints each reply as it comes"
	else
		fail_soft "vmbusify ping -c 6 -i 0.5 lab1 (through the daemon) printed no reply in its first 1.5 s: the replies come all at once at the end, unlike ping(8) and the direct ping"
	fi
}

# check_bench NAME TARGET VIA - the bench JSON of run NAME measured TARGET (VIA true/false).
check_bench() {
	jq -e --arg t "$2" --argjson via "$3" '
		.target == $t and .via_daemon == $via
		and .rtt_idle.n > 0 and .rtt_loaded.n > 0
		and (.tests | length == 4)
		and (.tests | map(.name) == ["host->vm", "vm->host", "host->vm", "vm->host"])
		and (.tests | map(.streams) == [1, 1, 4, 4])
		and (.tests | map(.bytes > 0 and .seconds > 0) | all)' "$TMP/$1.out" >/dev/null
}

test_bench_through_the_daemon_and_direct() {
	local uri="unix://$VB_LAB_DIR/lab1.sock"
	run_cli bench "$VB" bench -t 0.3 -P 4 --json lab1
	[[ $RC -eq 0 ]] || fail "vmbusify bench -t 0.3 -P 4 --json lab1: $(show bench)"
	check_bench bench lab1 true || fail "bench through the daemon: a row moved no bytes or the JSON is off: $(show bench)"
	pass "vmbusify bench --json lab1 (through the daemon): 4 rows, 1 and 4 streams each way, bytes > 0 in every row"
	run_cli benchd "$VB" bench -t 0.3 -P 4 --json "$uri"
	[[ $RC -eq 0 ]] || fail "vmbusify bench -t 0.3 -P 4 --json $uri: $(show benchd)"
	check_bench benchd "$uri" false || fail "bench direct: a row moved no bytes or the JSON is off: $(show benchd)"
	pass "vmbusify bench --json $uri (direct): 4 rows, bytes > 0 in every row"
}

test_sessions_still_up_after_the_traffic() {
	jq -e '.vms | map(.state == "up" and .connects == 1) | all' <("$VB" ls --json) >/dev/null \
		|| fail "a VM's session was lost or reconnected during the tests: $("$VB" ls 2>&1)"
	pass "every VM's session survived the pings and benchmarks (connected once, still up)"
}

# ns_inode NETNS - the inode of a named namespace, to find processes still in it.
ns_inode() {
	stat -L -c %i "/run/netns/$1"
}

test_down_leaves_nothing() {
	local pids=() inodes=() pid ns left made_run=0
	[[ -e /run/vmbusify/lab/.vmbusify-lab && "$(sed -n 's/^made_dir=//p' \
		"$VB_LAB_DIR/.vmbusify-lab")" == /run/vmbusify ]] && made_run=1
	mapfile -t pids < <(jq -r '.vms[].agent_pid, .host.daemon_pid' "$TMP/status.out")
	[[ ${#pids[@]} -eq $((${#VMS[@]} + 1)) ]] || fail "expected $((${#VMS[@]} + 1)) agent and daemon PIDs, found ${#pids[@]}"
	for ns in $(ip netns list | grep -o '^vbl-[^ ]*'); do
		inodes+=("$(ns_inode "$ns")")
	done
	run_cli down "$VB" lab down
	[[ $RC -eq 0 ]] || fail "vmbusify lab down: $(show down)"
	left="$(ip netns list | grep -o '^vbl-[^ ]*' | xargs)" || true
	[[ -z "$left" ]] || fail "namespaces left after down: $left"
	for pid in "${pids[@]}"; do
		! lab_pid_alive "$pid" || fail "process $pid ($(cat "/proc/$pid/comm")) left after down"
	done
	left="$(grep -lzxF "VBL_OWNER=$(realpath -m "$VB_LAB_DIR")" /proc/[0-9]*/environ 2>/dev/null | xargs)" || true
	[[ -z "$left" ]] || fail "processes marked as the lab's left after down: $left"
	for pid in /proc/[0-9]*; do
		for ns in "${inodes[@]}"; do
			[[ "$(stat -L -c %i "$pid/ns/net" 2>/dev/null)" != "$ns" ]] \
				|| ! lab_pid_alive "${pid#/proc/}" \
				|| fail "process ${pid#/proc/} ($(cat "$pid/comm")) still runs in a lab namespace"
		done
	done
	[[ ! -e "$VB_LAB_DIR" ]] || fail "$VB_LAB_DIR left after down: $(ls -la "$VB_LAB_DIR")"
	left="$(find /run/vmbusify -name '*.sock' -printf '%p ' 2>/dev/null)" || true
	[[ -z "$left" ]] || fail "socket files left after down: $left"
	[[ $made_run -eq 0 || ! -e /run/vmbusify ]] || fail "/run/vmbusify, made by lab up, left after down"
	! compgen -G '/etc/netns/vbl-*' >/dev/null || fail "/etc/netns/vbl-* left after down"
	run_cli ls_after env VMBUSIFY_CONTROL="$VB_LAB_DIR/control.sock" "$VB" ls
	[[ $RC -eq 3 ]] || fail "vmbusify ls after lab down exited $RC, expected 3 (no daemon): $(show ls_after)"
	run_cli status_after "$VB" lab status
	[[ $RC -eq 3 ]] || fail "vmbusify lab status after down exited $RC, expected 3 (no lab): $(show status_after)"
	pass "vmbusify lab down leaves no namespace, process, directory or socket; ls and status then exit 3"
}

main() {
	lab_require_root
	lab_require_build "${1:-}"
	lab_require_tools jq timeout
	VB="$VB_BUILD_DIR/vmbusify"
	[[ -x "$VB" ]] || skip "binaries not built (no $VB)"
	TMP="$(mktemp -d)"
	lab_at_exit rm -rf "$TMP"
	export VMBUSIFY_CONTROL="$VB_LAB_DIR/control.sock"
	lab_arm_cleanup
	test_lab_up_through_the_cli
	test_every_vm_comes_up
	test_processes_run_the_chosen_backend
	test_ls_finds_the_lab_daemon_by_itself
	test_ls_lists_the_vms_up
	test_ls_json_lists_the_vms_up
	test_ping_every_vm_by_name
	test_ping_json
	test_ping_directly_over_the_channel
	test_ping_shows_replies_as_they_come
	test_bench_through_the_daemon_and_direct
	test_sessions_still_up_after_the_traffic
	test_down_leaves_nothing
	lab_done
}

main "$@"
