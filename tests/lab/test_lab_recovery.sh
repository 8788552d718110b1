#!/usr/bin/env bash
# Recovery (issue 8, "Faults"): the lab runs supervised (`lab.sh up --supervise`: the agents
# and the daemon are started again when they die, as systemd does with dist/systemd's units)
# and lab2 suffers four faults, one after the other, each with traffic of every feature in
# flight to and from it:
#   agent    lab2's agent killed with SIGKILL (its supervisor starts it again)
#   daemon   the daemon killed with SIGKILL (its supervisor starts it again)
#   cut      lab2's channel shut down under both ends, neither process killed (lab.sh cut)
#   reboot   lab2 rebooted: everything in it killed, its namespace made anew (lab.sh reboot)
# In flight at each fault: an exec streaming output, a cp to lab2 and one from it (each held
# half-way), proxied transfers both ways (curl in lab2 out through its proxy port, curl on the
# host in through the daemon's), and a vnet iperf3 from lab2 to the external server.
# After each fault:
#   - the daemon reconnects by itself and the time to recover is measured: to lab2 up in
#     `vmbusify ls`, to a vmbusexec that works, to vnet and both forwards working again;
#   - the interrupted exec exits 255 with one line saying why, and its process is gone from
#     lab2; each interrupted cp fails with one line and leaves no file, partial or whole;
#     a proxied transfer either fails or delivers every byte right;
#   - lab2 keeps its vnet address; the -L and -R forwards (kept in the daemon's state
#     directory) listen and carry HTTP again;
#   - lab1, running exec, vnet pings and proxied requests all along, sees no failure at all
#     during the faults that are lab2's alone (the daemon's restart is everyone's).
#
# Usage: tests/lab/test_lab_recovery.sh BUILDDIR
# Exit codes: 0 passed, 1 failed, 77 skipped.
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly EXT_V4=198.51.100.80
readonly GW_V4=10.77.0.1
readonly WEB_PORT=8000	   # lab2's web server (python3 -m http.server), for -L and ingress
readonly FWD_L_PORT=18080  # -L 18080:lab2:8000 on the host
readonly FWD_R_PORT=19090  # -R lab2:19090:198.51.100.80:80 in lab2
readonly CP_BYTES=$((256 << 20))

VB=""
VX=""
DIR=""
TMP=""
VMDIR="" # lab2's files (the lab's VMs share the machine's file system)
ADDR2="" # lab2's vnet address
BIG_SUM=""	 # lab2's web server's big.bin
EXT_SUM=""	 # the external server's big.bin
IPERF_PORT=5201 # a new iperf3 server for each fault: one a dead client left busy is no use
REPORT=()
JOB_RC=0
PX_AT_FAULT=""

now_ms() {
	echo $(($(date +%s%N) / 1000000))
}

pid_of() {
	cat "$DIR/$1.pid"
}

vm_state() {
	"$VB" ls --json 2>/dev/null | jq -r --arg vm "$1" '.vms[] | select(.name == $vm) | .state'
}

vm_up() {
	[[ "$(vm_state "$1")" == up ]]
}

vnet_addr() {
	lab_vm "$1" ip -4 -o addr show dev vmbus0 2>/dev/null | awk '{print $4}' | cut -d/ -f1
}

# ---------------------------------------------------------------- setup

setup() {
	lab_require_root
	lab_require_build "${1:-}"
	lab_require_tools ip jq curl dnsmasq sha256sum iperf3 ss python3
	VB="$VB_BUILD_DIR/vmbusify"
	VX="$VB_BUILD_DIR/vmbusexec"
	DIR="$(realpath -m "$VB_LAB_DIR")"
	TMP="$(mktemp -d /tmp/vb-recovery.XXXXXX)"
	lab_at_exit rm -rf "$TMP"
	mkdir -p "$TMP/vm/www" "$TMP/vm/dst" "$TMP/host-dst"
	VMDIR="$TMP/vm"
	cat >"$TMP/vmbusifyd.conf" <<-CONF
		[egress]
		allow 198.51.100.0/24
		default = deny

		[vnet]
		subnet = 10.77.0.0/24
		leases = $DIR/vnet.leases

		[vm lab1]
		uri = unix://$DIR/lab1.sock
		vnet-default-route = yes

		[vm lab2]
		uri = unix://$DIR/lab2.sock
		vnet-default-route = yes
	CONF
	export VB_LAB_DAEMON_CONFIG="$TMP/vmbusifyd.conf" VMBUSIFY_CONTROL="$DIR/control.sock"
	lab_arm_cleanup
	"$LAB_SH" up --vms 2 --supervise >/dev/null || fail "lab.sh up --vms 2 --supervise failed"
	head -c "$CP_BYTES" /dev/urandom >"$TMP/cp.bin"
	cp "$TMP/cp.bin" "$VMDIR/cp-src.bin"
	head -c $((16 << 20)) /dev/urandom >"$VMDIR/www/big.bin"
	BIG_SUM="$(sha256sum <"$VMDIR/www/big.bin")"
	EXT_SUM="$(sha256sum <"$DIR/www/big.bin")"
	start_vm_web
	lab_wait_until 20 test -n "$(vnet_addr lab2)" || fail "lab2 got no vnet address"
	ADDR2="$(vnet_addr lab2)"
	add_forwards
	pass "supervised lab up: lab2 is $ADDR2 on vnet, forwards -L $FWD_L_PORT and -R $FWD_R_PORT listen"
	check_supervised
}

# start_vm_web - lab2's web server (a service of the VM: started again after its reboot).
start_vm_web() {
	lab_respawn vmweb vbl-lab2 python3 -m http.server --bind 127.0.0.1 \
		--directory "$VMDIR/www" "$WEB_PORT" >/dev/null || fail "could not start lab2's web server"
	lab_wait_until 10 lab_vm lab2 curl -fsS -o /dev/null "http://127.0.0.1:$WEB_PORT/big.bin" \
		|| fail "lab2's web server does not answer"
}

add_forwards() {
	"$VB" forward add -L "$FWD_L_PORT:lab2:$WEB_PORT" >/dev/null || fail "forward add -L failed"
	"$VB" forward add -R "lab2:$FWD_R_PORT:$EXT_V4:80" >/dev/null || fail "forward add -R failed"
	lab_wait_until 15 forwards_work || fail "the forwards do not carry HTTP: $("$VB" forward ls 2>&1)"
}

# forwards_work - -L: the host reaches lab2's web server; -R: lab2 reaches the external one.
forwards_work() {
	lab_host curl -fsS -m 3 -o /dev/null "http://127.0.0.1:$FWD_L_PORT/big.bin" &&
		lab_vm lab2 curl -fsS -m 3 -o /dev/null "http://127.0.0.1:$FWD_R_PORT/"
}

check_supervised() {
	"$LAB_SH" status --json | jq -e '(.vms | map(.supervised) | all) and .host.supervised' \
		>/dev/null || fail "lab status --json does not show the agents and the daemon supervised"
	pass "lab status shows the agents and the daemon supervised"
}

# ---------------------------------------------------------------- lab1: the bystander

# bystander - until TMP/stop exists: lab1's exec, vnet ping and proxied request, each
# failure a line in TMP/by.fail ("time what").
bystander() {
	: >"$TMP/by.fail"
	: >"$TMP/by.ok"
	while [[ ! -e "$TMP/stop" ]]; do
		[[ "$("$VX" lab1 echo by 2>/dev/null)" == by ]] || echo "$(now_ms) exec" >>"$TMP/by.fail"
		lab_vm lab1 ping -c 1 -W 2 -q "$GW_V4" >/dev/null 2>&1 || echo "$(now_ms) vnet" >>"$TMP/by.fail"
		lab_vm lab1 curl -fsS -m 5 -o /dev/null --socks5-hostname 127.0.0.1:1080 \
			"http://$EXT_V4/" 2>/dev/null || echo "$(now_ms) proxy" >>"$TMP/by.fail"
		echo . >>"$TMP/by.ok"
		sleep 0.2
	done
}

# ---------------------------------------------------------------- lab2: traffic in flight

# receiver_has_tmp PID DIR - true once PID holds a file in DIR open (cp's unnamed temporary
# file shows as "DIR/#N (deleted)").
receiver_has_tmp() {
	local fd
	for fd in /proc/"$1"/fd/*; do
		[[ "$(readlink "$fd" 2>/dev/null)" != "$2/"* ]] || return 0
	done
	return 1
}

# cp_hold NAME RECEIVER_PID DSTDIR CP_ARGS... - start `vmbusify cp` and hold it (SIGSTOP) once
# the receiving end has its temporary file: the copy is half-way when the fault comes. The
# copy runs in steps of a few milliseconds, stopped between them while we look: a copy on
# this machine takes well under a second. Its PID goes to TMP/NAME.pid. RECEIVER_PID
# "self": the cp process itself.
cp_hold() {
	local name="$1" rpid="$2" dst="$3" pid i
	shift 3
	"$VB" cp "$@" >"$TMP/$name.out" 2>"$TMP/$name.err" &
	pid=$!
	echo "$pid" >"$TMP/$name.pid"
	[[ "$rpid" != self ]] || rpid="$pid"
	for ((i = 0; i < 2000; i++)); do
		sleep 0.005
		kill -STOP "$pid" 2>/dev/null || break
		receiver_has_tmp "$rpid" "$dst" && return 0
		kill -CONT "$pid"
	done
	fail_soft "$name: the copy never held a temporary file in $dst: $(cat "$TMP/$name.err")"
}

# start_traffic - everything in flight to and from lab2; PIDs in TMP/*.pid.
start_traffic() {
	rm -f "$TMP"/*.pid "$TMP"/exec.* "$TMP"/px-*.bin
	rm -f "$VMDIR"/dst/* "$TMP"/host-dst/*
	"$VX" lab2 sh -c 'while :; do echo tick; sleep 0.05; done' vb-recovery-exec \
		>"$TMP/exec.out" 2>"$TMP/exec.err" &
	echo $! >"$TMP/exec.pid"
	lab_vm lab2 curl -sS --limit-rate 512K --socks5-hostname 127.0.0.1:1080 \
		-o "$TMP/px-out.bin" "http://$EXT_V4/big.bin" 2>"$TMP/px-out.err" &
	echo $! >"$TMP/pxout.pid"
	lab_host curl -sS --limit-rate 512K --socks5-hostname 127.0.0.1:1080 \
		-o "$TMP/px-in.bin" "http://lab2.vmbus:$WEB_PORT/big.bin" 2>"$TMP/px-in.err" &
	echo $! >"$TMP/pxin.pid"
	IPERF_PORT=$((IPERF_PORT + 1))
	lab_respawn "iperf3-$IPERF_PORT" vbl-ext iperf3 -s -1 -B "$EXT_V4" -p "$IPERF_PORT" >/dev/null \
		|| fail "could not start iperf3 -s"
	lab_wait_until 5 ip netns exec vbl-ext sh -c "ss -ltnH | grep -q ':$IPERF_PORT '" || true
	lab_vm lab2 iperf3 -c "$EXT_V4" -p "$IPERF_PORT" -t 30 -J >"$TMP/iperf.json" 2>&1 &
	echo $! >"$TMP/iperf.pid"
	cp_hold cpto "$(pid_of lab2)" "$VMDIR/dst" -q "$TMP/cp.bin" "lab2:$VMDIR/dst/cp.bin"
	cp_hold cpfrom self "$TMP/host-dst" -q "lab2:$VMDIR/cp-src.bin" "$TMP/host-dst/cp.bin"
	lab_wait_until 10 grep -q tick "$TMP/exec.out" || fail_soft "the streaming exec never started"
	lab_wait_until 10 test -s "$TMP/px-out.bin" || fail_soft "the outbound proxied transfer never started"
	lab_wait_until 10 test -s "$TMP/px-in.bin" || fail_soft "the inbound proxied transfer never started"
}

# ---------------------------------------------------------------- after the fault

# wait_job NAME SECONDS - wait for the job in TMP/NAME.pid; JOB_RC is its exit status, or
# "timeout" (the job is killed then).
wait_job() {
	local pid
	pid="$(cat "$TMP/$1.pid")"
	JOB_RC=0
	if ! lab_wait_until "$2" bash -c "! kill -0 $pid 2>/dev/null"; then
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		JOB_RC=timeout
		return
	fi
	wait "$pid" 2>/dev/null || JOB_RC=$?
}

one_line() {
	[[ $(wc -l <"$1") -eq 1 ]] && grep -qE "$2" "$1"
}

check_exec() {
	local fault="$1" rc
	wait_job exec 15
	rc="$JOB_RC"
	if [[ "$rc" == 255 ]] && one_line "$TMP/exec.err" '^vmbusexec: lab2: .+'; then
		pass "$fault: the streaming exec exits 255: $(cat "$TMP/exec.err")"
	else
		fail_soft "$fault: the streaming exec ended with $rc, stderr: $(head -c 400 "$TMP/exec.err")"
	fi
	if lab_wait_until 10 exec_gone; then
		pass "$fault: the interrupted exec's process is gone from lab2"
	else
		fail_soft "$fault: left in lab2: $(exec_left)"
	fi
}

exec_left() {
	local p
	for p in $(ip netns pids vbl-lab2 2>/dev/null); do
		tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -F vb-recovery-exec || true
	done
}

exec_gone() {
	[[ -z "$(exec_left)" ]]
}

# check_cp NAME FAULT DSTDIR WHAT - the held copy, let go after the fault, failed with one
# line and left nothing in DSTDIR.
check_cp() {
	local name="$1" fault="$2" dst="$3" what="$4" rc left
	kill -CONT "$(cat "$TMP/$name.pid")" 2>/dev/null || true
	wait_job "$name" 30
	rc="$JOB_RC"
	left="$(ls -A "$dst")"
	if [[ "$rc" != 0 && "$rc" != timeout ]] && one_line "$TMP/$name.err" '^vmbusify: .+' &&
		[[ -z "$left" ]]; then
		pass "$fault: the interrupted cp $what fails ($rc) and leaves no file: $(cat "$TMP/$name.err")"
	elif [[ "$rc" == 0 ]] && cmp -s "$TMP/cp.bin" "$dst/cp.bin"; then
		# The copy resumed over the restored channel before the fault reached it.
		pass "$fault: the cp $what completed intact"
	else
		fail_soft "$fault: cp $what: exit $rc, files left: '$left', stderr: $(head -c 300 "$TMP/$name.err")"
	fi
}

# check_proxied NAME FAULT FILE WHAT SUM - a proxied transfer fails or delivers every byte.
check_proxied() {
	local rc
	wait_job "$1" 40
	rc="$JOB_RC"
	if [[ "$rc" == 0 ]]; then
		[[ "$(sha256sum <"$3")" == "$5" ]] || {
			fail_soft "$2: the proxied transfer $4 said it succeeded with wrong data"
			return
		}
		pass "$2: the proxied transfer $4 completed (at the fault: $PX_AT_FAULT)"
	elif [[ "$rc" == timeout ]]; then
		fail_soft "$2: the proxied transfer $4 hangs 40 s after the fault"
	else
		pass "$2: the proxied transfer $4 failed cleanly (curl exit $rc; at the fault: $PX_AT_FAULT)"
	fi
}

check_iperf() {
	local rc
	wait_job iperf 45
	rc="$JOB_RC"
	if [[ "$rc" == 0 ]]; then
		pass "$1: the vnet iperf3 ran through the fault: $(jq -r '.end.sum_received.bits_per_second / 1e6 | floor' "$TMP/iperf.json") Mbit/s"
	elif [[ "$rc" == timeout ]]; then
		fail_soft "$1: the vnet iperf3 hangs after the fault"
	else
		pass "$1: the vnet iperf3 ended with $rc (its connection died with the fault)"
	fi
}

# recover FAULT T0 - wait until lab2 serves every feature again; records the times.
recover() {
	local fault="$1" t0="$2" t_up t_exec t_vnet t_fwd
	lab_wait_until 30 vm_up lab2 || fail "$fault: lab2 is not up 30 s after the fault: $("$VB" ls 2>&1)"
	t_up=$(($(now_ms) - t0))
	lab_wait_until 20 bash -c "[[ \"\$('$VX' lab2 echo ok 2>/dev/null)\" == ok ]]" \
		|| fail "$fault: vmbusexec lab2 does not work again"
	t_exec=$(($(now_ms) - t0))
	lab_wait_until 30 lab_vm lab2 ping -c 1 -W 1 -q "$GW_V4" || fail_soft "$fault: no vnet ping from lab2"
	t_vnet=$(($(now_ms) - t0))
	lab_wait_until 30 forwards_work || fail_soft "$fault: the forwards do not carry HTTP again: $("$VB" forward ls 2>&1)"
	t_fwd=$(($(now_ms) - t0))
	REPORT+=("$(printf '%-8s %8d %8d %8d %8d' "$fault" "$t_up" "$t_exec" "$t_vnet" "$t_fwd")")
	pass "$fault: lab2 recovers: up in $t_up ms, exec in $t_exec ms, vnet in $t_vnet ms, forwards in $t_fwd ms"
	[[ "$(vnet_addr lab2)" == "$ADDR2" ]] && pass "$fault: lab2 keeps its vnet address $ADDR2" \
		|| fail_soft "$fault: lab2's vnet address changed from $ADDR2 to '$(vnet_addr lab2)'"
}

# ---------------------------------------------------------------- the faults

inject() {
	local sup pid
	case "$1" in
	agent)
		pid="$(pid_of lab2)"
		kill -KILL "$pid"
		lab_wait_until 10 bash -c "[[ \$(cat '$DIR/lab2.pid') != $pid ]]" \
			|| fail "lab2's supervisor did not start its agent again"
		;;
	daemon)
		pid="$(pid_of vmbusifyd)"
		kill -KILL "$pid"
		lab_wait_until 10 bash -c "[[ \$(cat '$DIR/vmbusifyd.pid') != $pid ]]" \
			|| fail "the daemon's supervisor did not start it again"
		;;
	cut)
		sup="$(pid_of lab2)"
		"$LAB_SH" cut lab2 >/dev/null || fail "lab.sh cut lab2 failed"
		[[ "$(pid_of lab2)" == "$sup" ]] || fail "lab.sh cut restarted lab2's agent"
		;;
	reboot)
		"$LAB_SH" reboot lab2 >/dev/null || fail "lab.sh reboot lab2 failed"
		start_vm_web
		;;
	esac
}

fault() {
	local name="$1" t0 n0 fails
	start_traffic
	n0="$(wc -l <"$TMP/by.fail")"
	t0=$(now_ms)
	PX_AT_FAULT="out $(stat -c %s "$TMP/px-out.bin") bytes, in $(stat -c %s "$TMP/px-in.bin") bytes"
	inject "$name"
	check_exec "$name"
	check_cp cpto "$name" "$VMDIR/dst" "to lab2"
	check_cp cpfrom "$name" "$TMP/host-dst" "from lab2"
	recover "$name" "$t0"
	check_proxied pxout "$name" "$TMP/px-out.bin" "out of lab2" "$EXT_SUM"
	check_proxied pxin "$name" "$TMP/px-in.bin" "into lab2" "$BIG_SUM"
	check_iperf "$name"
	fails="$(tail -n +"$((n0 + 1))" "$TMP/by.fail" | awk '{print $2}' | sort | uniq -c | xargs)"
	if [[ "$name" == daemon ]]; then
		pass "$name: lab1 during the daemon's restart: ${fails:-no failures}"
	elif [[ -z "$fails" ]]; then
		pass "$name: lab1 never failed while lab2 recovered"
	else
		fail_soft "$name: lab1 was disturbed by lab2's fault: $fails"
	fi
}

# check_restarts - after the agent and daemon faults (a reboot makes a new supervisor).
check_restarts() {
	local r
	r="$("$LAB_SH" status --json | jq -c '[.vms[1].restarts, .host.restarts]')"
	[[ "$r" == "[1,1]" ]] && pass "the supervisors restarted lab2's agent once and the daemon once" \
		|| fail_soft "restarts [lab2's agent, daemon]: $r, expected [1,1]"
	grep -q 'vmbusify: lab: lab2 was killed by signal 9; starting it again' "$DIR/lab2.log" \
		&& pass "lab2's log says its supervisor saw SIGKILL and started it again" \
		|| fail_soft "lab2's log does not show the supervisor's restart"
}

main() {
	local by f
	setup "$@"
	bystander &
	by=$!
	lab_at_exit kill "$by"
	for f in agent daemon; do
		fault "$f"
	done
	check_restarts
	for f in cut reboot; do
		fault "$f"
	done
	touch "$TMP/stop"
	wait "$by" || true
	echo "time to recover (ms from the fault): fault, lab2 up, exec works, vnet works, forwards work"
	printf '  %s\n' "${REPORT[@]}"
	echo "lab1 (bystander): $(wc -l <"$TMP/by.ok") rounds of exec + vnet ping + proxied request, $(wc -l <"$TMP/by.fail") failures"
	lab_done
}

main "$@"
