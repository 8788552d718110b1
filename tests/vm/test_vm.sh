#!/usr/bin/env bash
# Every feature across a real hypervisor boundary (issue 6): the lab boots a QEMU guest with no
# network device at all (`lab.sh up --qemu`), reached only through one virtio-serial port whose
# host side is a Unix socket held by the lab's daemon. Against that guest, from the host:
# vmbusexec (exit statuses, stdin/stdout/stderr, -t), cp of a 64 MiB file and of a tree both
# ways with SHA-256 checks, the egress proxy (curl in the guest through the agent's port to the
# lab's external server), ingress (curl on the host to a server in the guest via qemu1.vmbus),
# vnet (ping the gateway and the external server, HTTP by name), a daemon restart (the agent
# takes a fresh session on the same port), and, inside the guest, AF_VSOCK for real: a second
# agent on vsock://:PORT reached through vsock loopback (CID 1) by exec and cp.
#
# Usage: tests/vm/test_vm.sh BUILDDIR   (binaries in BUILDDIR)
# Environment: as scripts/lab.sh (VB_LAB_QEMU_ACCEL, VB_LAB_QEMU_TIMEOUT, VB_VM_CACHE...).
# Exit codes: 0 passed, 1 failed, 77 skipped (not root, binaries, QEMU or tools missing, or no
# guest kernel can be had: apt cannot fetch one and none is cached).
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lab/lib.sh"

readonly VM=qemu1
readonly EXT_V4=198.51.100.80
readonly EXT_NAME=www.lab.test
readonly WWW_LINE="vmbusify lab external server"
readonly GUEST_PAGE="served by the QEMU guest"
readonly GUEST_HTTP_PORT=8080
readonly VSOCK_PORT=5123
readonly VNET_GW=10.77.0.1

TMP=""
VX=""  # vmbusexec, talking to the lab's daemon
VBC="" # vmbusify, the same
DIR="" # the lab's directory, absolute

# ---------------------------------------------------------------- helpers

# vm CMD... - run CMD in the guest (through the lab's daemon and the virtio-serial port).
vm() {
	"$VX" "$VM" "$@"
}

# vm_sh SCRIPT - run a shell script in the guest.
vm_sh() {
	"$VX" "$VM" sh -c "$1"
}

# status_of CMD... - print CMD's exit status (its output discarded).
status_of() {
	local rc=0
	"$@" >/dev/null 2>&1 </dev/null || rc=$?
	echo "$rc"
}

# vm_on_exit - the EXIT trap: on failure, the guest's console and QEMU's output first; then
# lib.sh's cleanup, which takes the lab (and so QEMU) down on every path.
vm_on_exit() {
	local rc=$?
	if [[ $rc -ne 0 && $rc -ne 77 && -n "$DIR" ]]; then
		echo "--- last lines of $DIR/$VM.console" >&2
		tail -n 40 "$DIR/$VM.console" >&2 2>/dev/null || true
	fi
	[[ -z "$TMP" ]] || rm -rf -- "$TMP"
	trap - ERR
	(exit "$rc")
	lab_cleanup
}

# vnet_conf FILE - the daemon's configuration: vnet on, the guest routed by default through it.
vnet_conf() {
	cat >"$1" <<EOF
[vnet]
subnet = 10.77.0.0/24
subnet6 = fd76:6d62::/64
leases = $DIR/vnet.leases

[vm $VM]
uri = unix://$DIR/$VM.sock
vnet-default-route = yes
EOF
}

# ---------------------------------------------------------------- the guest

bring_up() {
	local rc=0 ms accel
	vnet_conf "$TMP/vmbusifyd.conf"
	lab_arm_cleanup
	VB_LAB_DAEMON_CONFIG="$TMP/vmbusifyd.conf" "$LAB_SH" up --qemu --vms 1 \
		>"$TMP/up.log" 2>&1 || rc=$?
	if [[ $rc -eq 5 ]]; then
		skip "QEMU cannot run a guest here: $(grep -m 1 'lab:' "$TMP/up.log")"
	fi
	[[ $rc -eq 0 ]] || { cat "$TMP/up.log" >&2; fail "lab.sh up --qemu --vms 1 failed ($rc)"; }
	[[ "$(lab_status ".vms[0].kind")" == qemu ]] || fail "status --json does not say kind qemu"
	ms="$(lab_status ".vms[0].boot_to_ready_ms")"
	accel="$(lab_status ".vms[0].accel")"
	[[ "$ms" =~ ^[0-9]+$ ]] || fail "status --json has no boot_to_ready_ms ($ms)"
	pass "lab up --qemu: $VM is a QEMU guest ($accel); boot to ready: $ms ms"
	echo "boot-to-ready: $ms ms ($accel)"
}

test_no_network() {
	local links
	links="$(vm_sh 'ls /sys/class/net' | tr '\n' ' ')"
	# vmbus0 may already be there: the agent's own TUN (vnet), not a network device of QEMU's.
	if [[ "${links% }" =~ ^(lo|lo vmbus0|vmbus0 lo)$ ]]; then
		pass "the guest has no network device (links: ${links% })"
	else
		fail_soft "the guest has network devices: $links"
	fi
	tr '\0' ' ' <"/proc/$(lab_status ".vms[0].qemu_pid")/cmdline" | grep -q -- '-nic none' &&
		pass "QEMU runs with -nic none" || fail_soft "QEMU's command line lacks -nic none"
}

# ---------------------------------------------------------------- exec

test_exec_status() {
	local want got
	for want in 0 1 7 255; do
		got="$(status_of vm sh -c "exit $want")"
		[[ "$got" == "$want" ]] && pass "exec: exit $want gives $want" ||
			fail_soft "exec: exit $want gave $got"
	done
	got="$(status_of vm sh -c 'kill -KILL $$')"
	[[ "$got" == 137 ]] && pass "exec: killed by SIGKILL gives 137" ||
		fail_soft "exec: SIGKILL gave $got, not 137"
	got="$(status_of vm nosuchprog-vbx)"
	[[ "$got" == 127 ]] && pass "exec: a missing program gives 127" ||
		fail_soft "exec: a missing program gave $got, not 127"
}

test_exec_streams() {
	local rc=0
	vm sh -c 'i=0; while [ $i -lt 500 ]; do echo out $i; echo err $i >&2; i=$((i+1)); done' \
		>"$TMP/out" 2>"$TMP/err" </dev/null || rc=$?
	if [[ $rc -eq 0 && "$(wc -l <"$TMP/out")" == 500 && "$(wc -l <"$TMP/err")" == 500 ]] &&
		! grep -q err "$TMP/out" && ! grep -q out "$TMP/err"; then
		pass "exec: stdout and stderr arrive apart, whole"
	else
		fail_soft "exec: stdout/stderr mixed or short (rc $rc, $(wc -l <"$TMP/out")/$(wc -l <"$TMP/err") lines)"
	fi
	head -c 3000000 /dev/urandom >"$TMP/stdin.bin"
	[[ "$(vm sha256sum <"$TMP/stdin.bin" | cut -d' ' -f1)" == \
		"$(sha256sum <"$TMP/stdin.bin" | cut -d' ' -f1)" ]] &&
		pass "exec: 3 MB of stdin arrive whole (sha256sum in the guest)" ||
		fail_soft "exec: stdin arrived changed"
	[[ "$(printf 'abc' | vm -n wc -c | tr -d ' ')" == 0 ]] &&
		pass "exec: -n gives the program no stdin" || fail_soft "exec: -n passed stdin on"
	[[ "$(vm printf '[%s]' 'a b' '' "c'd" '*')" == "[a b][][c'd][*]" ]] &&
		pass "exec: arguments arrive as they are" || fail_soft "exec: arguments changed"
}

test_exec_tty() {
	local out rc=0
	command -v script >/dev/null || { skip_part "exec -t: script(1) not installed"; return 0; }
	out="$(script -qec "$VX $VM -t sh -c 'tty; exit 5'" /dev/null </dev/null)" || rc=$?
	if [[ $rc -eq 5 && "$out" == /dev/pts/* ]]; then
		pass "exec -t: the program has a pty in the guest (${out%$'\r'}), status 5 back"
	else
		fail_soft "exec -t: rc $rc, output '$out'"
	fi
	[[ "$(vm tty 2>&1 || true)" == "not a tty" ]] &&
		pass "exec without -t: no tty" || fail_soft "exec without -t gave a tty"
}

# ---------------------------------------------------------------- cp

test_cp_file() {
	local sum
	head -c $((64 * 1024 * 1024)) /dev/urandom >"$TMP/big.bin"
	sum="$(sha256sum <"$TMP/big.bin" | cut -d' ' -f1)"
	"$VBC" cp -q "$TMP/big.bin" "$VM:/tmp/big.bin" || fail_soft "cp 64 MiB up failed"
	[[ "$(vm sha256sum /tmp/big.bin | cut -d' ' -f1)" == "$sum" ]] &&
		pass "cp: 64 MiB host to guest, sha256 equal" || fail_soft "cp: 64 MiB up: sha256 differs"
	"$VBC" cp -q "$VM:/tmp/big.bin" "$TMP/big.back" || fail_soft "cp 64 MiB down failed"
	[[ "$(sha256sum <"$TMP/big.back" | cut -d' ' -f1)" == "$sum" ]] &&
		pass "cp: 64 MiB guest to host, sha256 equal" || fail_soft "cp: 64 MiB down: sha256 differs"
	vm rm -f /tmp/big.bin
	rm -f "$TMP/big.bin" "$TMP/big.back"
}

# tree_sums DIR - print "sha256 path" of every file and "link path -> target" of every link.
tree_sums() {
	(cd "$1" && find . -type f -exec sha256sum {} + | sort -k 2 &&
		find . -type l -printf 'link %p -> %l\n' | sort && find . -type d | sort)
}

test_cp_tree() {
	local d="$TMP/tree" i
	mkdir -p "$d/a/b/c" "$d/empty" "$d/with space"
	for i in 1 2 3 4 5; do
		head -c $((i * 100000)) /dev/urandom >"$d/a/f$i"
	done
	head -c 1000000 /dev/urandom >"$d/a/b/c/deep.bin"
	echo hello >"$d/with space/x y.txt"
	: >"$d/a/zero"
	ln -s a/f1 "$d/link"
	"$VBC" cp -q -r "$d" "$VM:/tmp/" || fail_soft "cp -r tree up failed"
	vm_sh 'cd /tmp/tree && find . -type f -exec sha256sum {} + | sort -k 2 &&
		find . -type l | while read -r l; do echo "link $l -> $(readlink "$l")"; done | sort &&
		find . -type d | sort' >"$TMP/tree.guest" || true
	tree_sums "$d" >"$TMP/tree.host"
	diff -u "$TMP/tree.host" "$TMP/tree.guest" >"$TMP/tree.diff" &&
		pass "cp -r: a tree host to guest, every file's sha256, the link and the dirs" ||
		fail_soft "cp -r up: the trees differ: $(head -n 5 "$TMP/tree.diff")"
	mkdir "$TMP/back"
	"$VBC" cp -q -r "$VM:/tmp/tree" "$TMP/back/" || fail_soft "cp -r tree down failed"
	tree_sums "$TMP/back/tree" >"$TMP/tree.back"
	diff -u "$TMP/tree.host" "$TMP/tree.back" >"$TMP/tree.diff" &&
		pass "cp -r: the tree guest to host, identical" ||
		fail_soft "cp -r down: the trees differ: $(head -n 5 "$TMP/tree.diff")"
}

# ---------------------------------------------------------------- proxy

test_egress() {
	local body sum
	body="$(vm curl -sS -m 30 -x socks5h://127.0.0.1:1080 "http://$EXT_NAME/" 2>&1)" || true
	[[ "$body" == *"$WWW_LINE"* ]] &&
		pass "egress: curl in the guest via socks5h://127.0.0.1:1080 fetches http://$EXT_NAME/" ||
		fail_soft "egress: curl -x socks5h: $body"
	body="$(vm curl -sS -m 30 -x http://127.0.0.1:1080 "http://$EXT_V4/" 2>&1)" || true
	[[ "$body" == *"$WWW_LINE"* ]] &&
		pass "egress: curl in the guest via the agent's HTTP proxy fetches http://$EXT_V4/" ||
		fail_soft "egress: curl -x http: $body"
	sum="$(vm_sh "curl -sS -m 120 -x socks5h://127.0.0.1:1080 http://$EXT_NAME/big.bin | sha256sum" |
		cut -d' ' -f1)" || true
	[[ "$sum" == "$(cut -d' ' -f1 "$DIR/www/big.bin.sha256")" ]] &&
		pass "egress: 16 MiB through the proxy, sha256 equal" ||
		fail_soft "egress: big.bin through the proxy: sha256 '$sum' differs"
}

test_ingress() {
	local body rc=0
	vm -d httpd -f -p "127.0.0.1:$GUEST_HTTP_PORT" -h /www >/dev/null ||
		fail_soft "ingress: cannot start httpd in the guest"
	lab_wait_until 20 vm_sh "wget -q -O - http://127.0.0.1:$GUEST_HTTP_PORT/" ||
		fail_soft "ingress: httpd in the guest does not answer"
	body="$(lab_host curl -sS -m 30 --socks5-hostname 127.0.0.1:1080 \
		"http://$VM.vmbus:$GUEST_HTTP_PORT/" 2>&1)" || rc=$?
	[[ $rc -eq 0 && "$body" == "$GUEST_PAGE" ]] &&
		pass "ingress: curl on the host via the daemon's SOCKS port reaches $VM.vmbus:$GUEST_HTTP_PORT" ||
		fail_soft "ingress: rc $rc: $body"
	body="$(lab_host curl -sS -m 30 -p -x http://127.0.0.1:1080 \
		"http://$VM.vmbus:$GUEST_HTTP_PORT/" 2>&1)" || rc=$?
	[[ $rc -eq 0 && "$body" == "$GUEST_PAGE" ]] &&
		pass "ingress: the same through HTTP CONNECT" || fail_soft "ingress CONNECT: rc $rc: $body"
	vm_sh 'kill $(pidof httpd)' || true
}

# ---------------------------------------------------------------- vnet

vnet_addr() {
	vm_sh 'ip -4 -o addr show dev vmbus0 2>/dev/null' | awk '{ print $4 }' | cut -d/ -f1
}

test_vnet() {
	local addr body
	lab_wait_until 30 test -n "$(vnet_addr)" || { fail_soft "vnet: the guest got no address"; return 0; }
	addr="$(vnet_addr)"
	pass "vnet: the guest is $addr on vmbus0"
	vm ping -c 3 -W 5 "$VNET_GW" >/dev/null 2>&1 &&
		pass "vnet: the guest pings the gateway $VNET_GW" || fail_soft "vnet: no ping to $VNET_GW"
	vm ping -c 3 -W 5 "$EXT_V4" >/dev/null 2>&1 &&
		pass "vnet: the guest pings the external server $EXT_V4" ||
		fail_soft "vnet: no ping to $EXT_V4"
	body="$(vm curl -sS -m 30 --noproxy '*' "http://$EXT_V4/" 2>&1)" || true
	[[ "$body" == *"$WWW_LINE"* ]] && pass "vnet: curl http://$EXT_V4/ (NAT)" ||
		fail_soft "vnet: curl by address: $body"
	# The gateway's DNS forwarder as the guest's resolver: glibc's (curl) and busybox's.
	vm_sh "echo nameserver $VNET_GW >/etc/resolv.conf" || true
	body="$(vm curl -sS -m 30 --noproxy '*' "http://$EXT_NAME/" 2>&1)" || true
	[[ "$body" == *"$WWW_LINE"* ]] && pass "vnet: curl http://$EXT_NAME/ by name" ||
		fail_soft "vnet: curl by name: $body"
	body="$(vm wget -q -O - "http://$EXT_NAME/" 2>&1)" || true
	[[ "$body" == *"$WWW_LINE"* ]] && pass "vnet: busybox wget http://$EXT_NAME/ by name" ||
		fail_soft "vnet: wget by name: $body"
}

# ---------------------------------------------------------------- the daemon comes back

test_daemon_restart() {
	local pid args=() new
	pid="$(lab_status .host.daemon_pid)"
	mapfile -d '' -t args <"/proc/$pid/cmdline"
	kill -TERM "$pid"
	lab_wait_until 20 bash -c "! kill -0 $pid" || fail "the daemon did not stop"
	sleep 1
	new="$(lab_respawn vmbusifyd vbl-host "${args[@]}")" || fail "cannot restart the daemon"
	lab_wait_until 60 "$VBC" ping -c 1 "$VM" ||
		fail "after a daemon restart (pid $new), the guest's agent does not answer"
	[[ "$(vm sh -c 'echo again')" == again ]] &&
		pass "a restarted daemon gets a fresh session on the same virtio-serial port" ||
		fail_soft "exec after a daemon restart failed"
}

# test_agent_respawn - the agent is the guest's service: killed, init starts it again, and the
# daemon gets a session with it on the same port. The old session's bytes still in flight meet
# the new agent first (a serial port has no connection boundary), so the first attempts may end
# agent_pid_is_not PID - true once the guest answers and its agent's PID is not PID.
agent_pid_is_not() {
	local p
	p="$(vm_sh 'pidof vmbusify-agent' 2>/dev/null)" || return 1
	[[ "$p" =~ ^[0-9]+$ && "$p" != "$1" ]]
}

# test_agent_respawn - the agent is the guest's service: killed, init starts it again, and the
# daemon gets a session with it on the same port. The old session's bytes still in flight meet
# the new agent first (a serial port has no connection boundary), so the first attempts may end
# in protocol errors on both sides: the daemon redials until they agree.
test_agent_respawn() {
	local old new
	old="$(vm_sh 'pidof vmbusify-agent')"
	vm -d sh -c "sleep 1; kill $old" >/dev/null || fail_soft "cannot schedule the agent's death"
	lab_wait_until 60 agent_pid_is_not "$old" ||
		{ fail_soft "the guest's agent did not come back within 60 s"; return 0; }
	new="$(vm_sh 'pidof vmbusify-agent')"
	pass "the agent (pid $old) killed in the guest, init restarted it (pid $new); exec works again"
}

# ---------------------------------------------------------------- AF_VSOCK inside the guest

test_vsock() {
	local u="vsock://1:$VSOCK_PORT" sum got
	vm -d vmbusify-agent --listen "vsock://:$VSOCK_PORT" --no-proxy --no-vnet >/dev/null ||
		fail_soft "vsock: cannot start the second agent in the guest"
	lab_wait_until 20 vm vmbusify ping -c 1 "$u" ||
		{ fail_soft "vsock: the guest cannot reach its own agent at $u"; return 0; }
	pass "vsock: a client in the guest reaches an agent on vsock://:$VSOCK_PORT through CID 1"
	got="$(status_of vm vmbusexec "$u" sh -c 'exit 6')"
	[[ "$got" == 6 ]] && pass "vsock: exec over vsock loopback gives status 6" ||
		fail_soft "vsock: exec status $got, not 6"
	[[ "$(vm vmbusexec "$u" sh -c 'echo vsock-out; echo vsock-err >&2' 2>&1 | sort | tr '\n' ' ')" == \
		"vsock-err vsock-out " ]] && pass "vsock: exec output over vsock loopback" ||
		fail_soft "vsock: exec output wrong"
	vm_sh "head -c 4194304 /dev/urandom >/tmp/vs.bin" || true
	sum="$(vm sha256sum /tmp/vs.bin | cut -d' ' -f1)"
	vm vmbusify cp -q /tmp/vs.bin "$u:/tmp/vs-up.bin" >/dev/null 2>&1 || true
	vm vmbusify cp -q "$u:/tmp/vs-up.bin" /tmp/vs-down.bin >/dev/null 2>&1 || true
	[[ "$(vm sha256sum /tmp/vs-up.bin | cut -d' ' -f1)" == "$sum" &&
		"$(vm sha256sum /tmp/vs-down.bin | cut -d' ' -f1)" == "$sum" ]] &&
		pass "vsock: cp of 4 MiB both ways over vsock loopback, sha256 equal" ||
		fail_soft "vsock: cp over vsock loopback: sha256 differs or missing"
	vm_sh "kill \$(pidof vmbusify-agent | tr ' ' '\n' | while read -r p; do
		grep -q vsock /proc/\$p/cmdline && echo \$p; done)" >/dev/null 2>&1 || true
}

test_cleanup_after_down() {
	local qpid
	qpid="$(lab_status ".vms[0].qemu_pid")"
	lab_down >/dev/null || fail "lab.sh down failed"
	LAB_STARTED=0
	if lab_pid_alive "$qpid"; then
		fail_soft "QEMU ($qpid) still runs after lab down"
	elif [[ -e "$DIR" ]] || ip netns list | grep -q '^vbl-'; then
		fail_soft "lab down left $DIR or vbl-* namespaces"
	else
		pass "lab down stops QEMU and removes the lab"
	fi
}

main() {
	lab_require_root
	lab_require_build "${1:-}"
	lab_require_tools ip jq curl dnsmasq qemu-system-x86_64
	[[ -x /bin/busybox ]] || skip "busybox-static not installed (run scripts/deps.sh)"
	VX="$VB_BUILD_DIR/vmbusexec"
	VBC="$VB_BUILD_DIR/vmbusify"
	DIR="$(realpath -m -- "$VB_LAB_DIR")"
	export VMBUSIFY_CONTROL="$DIR/control.sock"
	TMP="$(mktemp -d /tmp/vb-vm-test.XXXXXX)"
	trap vm_on_exit EXIT
	bring_up
	test_no_network
	test_exec_status
	test_exec_streams
	test_exec_tty
	test_cp_file
	test_cp_tree
	test_egress
	test_ingress
	test_vnet
	test_vsock
	test_daemon_restart
	test_agent_respawn
	test_cleanup_after_down
	lab_done
}

main "$@"
