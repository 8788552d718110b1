#!/usr/bin/env bash
# The lab's network is what the lab tests rely on: VMs with no network at all,
# a host whose only way out leads to the external namespace, an external
# namespace with a working HTTP and DNS server, and nothing left after down.
#
# Usage: tests/lab/test_lab_network.sh BUILDDIR   (binaries in BUILDDIR)
# Exit codes: 0 passed, 1 failed, 77 skipped (not root, or binaries not built).
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly PUBLIC_V4=198.51.100.80
readonly EXT_V4=198.18.0.2
readonly EXT_V6=fd00:7662:6c61::2
readonly WWW_LINE="vmbusify lab external server"

# ns_inode NETNS - the inode of a named namespace, to compare with /proc/PID/ns/net.
ns_inode() {
	stat -L -c %i "/run/netns/$1"
}

test_status_describes_the_lab() {
	local json
	json="$("$LAB_SH" status --json)" || fail "status --json: a process of the lab is not running"
	jq -e --arg dir "$VB_LAB_DIR" '
		(.vms | length == 2)
		and (.vms | map(.running) | all)
		and (.vms[0] | .name == "lab1" and .netns == "vbl-lab1"
			and .channel == "unix://" + $dir + "/lab1.sock" and (.agent_pid | type) == "number")
		and (.host | .netns == "vbl-host" and .running
			and .control == "unix://" + $dir + "/control.sock" and (.daemon_pid | type) == "number")
		and (.external | .netns == "vbl-ext" and .address == "198.51.100.80"
			and .http_url == "http://198.51.100.80/" and .dns_server == "198.18.0.2"
			and .names == ["ext.lab.test", "www.lab.test"])' <<<"$json" >/dev/null \
		|| fail "status --json has not the documented shape: $json"
	pass "status --json describes 2 running VMs, the host and the external network"
}

test_vm_has_only_loopback() {
	local vm="$1" links routes
	links="$(lab_vm "$vm" ip -o link show | awk -F': ' '{ print $2 }')"
	[[ "$links" == lo ]] || fail "$vm has interfaces other than lo: $links"
	routes="$(lab_vm "$vm" ip -4 route show table all | grep -v ' dev lo ' || true)"
	[[ -z "$(lab_vm "$vm" ip -4 route show)" && -z "$routes" ]] || fail "$vm has IPv4 routes: $routes"
	routes="$(lab_vm "$vm" ip -6 route show table all | grep -v ' dev lo ' || true)"
	[[ -z "$routes" ]] || fail "$vm has IPv6 routes beyond lo: $routes"
	pass "$vm has only lo and no route"
}

test_vm_reaches_nothing() {
	local vm="$1" rc target
	for target in "http://$PUBLIC_V4/" "http://$EXT_V4/" "http://[$EXT_V6]/"; do
		rc=0
		lab_vm "$vm" curl -sS -o /dev/null --max-time 10 "$target" 2>/dev/null || rc=$?
		# 7: could not connect (network unreachable), not 28 (a timeout).
		[[ $rc -eq 7 ]] || fail "$vm: curl $target exited $rc, expected 7 (unreachable)"
	done
	rc=0
	lab_vm "$vm" curl -sS -o /dev/null --max-time 10 http://ext.lab.test/ 2>/dev/null || rc=$?
	[[ $rc -eq 6 ]] || fail "$vm: curl http://ext.lab.test/ exited $rc, expected 6 (no resolution)"
	pass "$vm reaches no address and resolves no name"
}

test_agent_runs_in_its_vm() {
	local vm="$1" pid
	pid="$(lab_status ".vms[] | select(.name == \"$vm\") | .agent_pid")"
	[[ "$(stat -L -c %i "/proc/$pid/ns/net")" == "$(ns_inode "vbl-$vm")" ]] \
		|| fail "$vm: agent $pid does not run in vbl-$vm"
	[[ -S "$VB_LAB_DIR/$vm.sock" ]] || fail "$vm: no channel socket $VB_LAB_DIR/$vm.sock"
	pass "$vm: the agent runs in vbl-$vm and listens on $VB_LAB_DIR/$vm.sock"
}

test_host_routes_only_to_external() {
	local links pid
	links="$(lab_host ip -o link show | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }' | sort | xargs)"
	[[ "$links" == "lo vbl-h0" ]] || fail "host has interfaces other than lo and vbl-h0: $links"
	[[ "$(lab_host ip -4 route show default)" == "default via $EXT_V4 dev vbl-h0"* ]] \
		|| fail "host's IPv4 default route is not via $EXT_V4"
	[[ "$(lab_host ip -6 route show default)" == "default via $EXT_V6 dev vbl-h0"* ]] \
		|| fail "host's IPv6 default route is not via $EXT_V6"
	pid="$(lab_status .host.daemon_pid)"
	[[ "$(stat -L -c %i "/proc/$pid/ns/net")" == "$(ns_inode vbl-host)" ]] \
		|| fail "the daemon $pid does not run in vbl-host"
	pass "host has only lo and vbl-h0, default routes via vbl-ext, and runs the daemon"
}

test_machine_namespace_untouched() {
	! ip -o link show | grep -q 'vbl-' || fail "a lab interface is in the machine's own namespace"
	pass "no lab interface in the machine's own namespace"
}

test_host_resolves_lab_names() {
	local got
	got="$(lab_host dig +short +time=2 +tries=2 "@$EXT_V4" ext.lab.test A)"
	[[ "$got" == "$PUBLIC_V4" ]] || fail "dig ext.lab.test A gave '$got'"
	got="$(lab_host dig +short +time=2 +tries=2 "@$EXT_V4" www.lab.test A)"
	[[ "$got" == "$PUBLIC_V4" ]] || fail "dig www.lab.test A gave '$got'"
	got="$(lab_host dig +short +time=2 +tries=2 "@$EXT_V4" ext.lab.test AAAA)"
	[[ "$got" == "$EXT_V6" ]] || fail "dig ext.lab.test AAAA gave '$got'"
	got="$(lab_host dig +time=2 +tries=2 "@$EXT_V4" nosuch.lab.test A)"
	[[ "$got" == *"status: NXDOMAIN"* ]] || fail "dig nosuch.lab.test is not NXDOMAIN"
	pass "dig @$EXT_V4 answers ext.lab.test (A, AAAA), www.lab.test, NXDOMAIN otherwise"
}

test_host_reaches_external_server() {
	local page
	page="$(lab_host curl -fsS --max-time 10 "http://$PUBLIC_V4/")" || fail "curl http://$PUBLIC_V4/ failed"
	grep -qxF "$WWW_LINE" <<<"$page" || fail "http://$PUBLIC_V4/ lacks '$WWW_LINE'"
	page="$(lab_host curl -fsS --max-time 10 http://www.lab.test/)" || fail "curl http://www.lab.test/ failed"
	grep -qxF "$WWW_LINE" <<<"$page" || fail "http://www.lab.test/ lacks '$WWW_LINE'"
	page="$(lab_host curl -fsS --max-time 10 -6 http://ext.lab.test/)" || fail "curl -6 http://ext.lab.test/ failed"
	grep -qxF "$WWW_LINE" <<<"$page" || fail "http://ext.lab.test/ over IPv6 lacks '$WWW_LINE'"
	pass "host fetches the external page by address, by name and over IPv6"
}

test_big_file_arrives_intact() {
	local want got
	want="$(lab_host curl -fsS --max-time 10 "http://$PUBLIC_V4/big.bin.sha256" | awk '{ print $1 }')"
	[[ "$want" == "$(awk '{ print $1 }' "$VB_LAB_DIR/www/big.bin.sha256")" ]] \
		|| fail "big.bin.sha256 served differs from the file"
	got="$(lab_host curl -fsS --max-time 60 http://www.lab.test/big.bin | sha256sum | awk '{ print $1 }')"
	[[ "$got" == "$want" ]] || fail "big.bin arrived with sha256 $got, expected $want"
	pass "the 16 MiB big.bin arrives intact"
}

# lab_pids - every PID the lab reports or recorded.
lab_pids() {
	lab_status '.vms[].agent_pid, .host.daemon_pid'
	cat "$VB_LAB_DIR/http.pid" "$VB_LAB_DIR/dnsmasq.pid"
}

test_down_leaves_nothing() {
	local pids=() pid left
	mapfile -t pids < <(lab_pids)
	[[ ${#pids[@]} -eq 5 ]] || fail "expected 5 lab processes, found ${#pids[@]}"
	lab_down || fail "lab.sh down exited $?"
	left="$(ip netns list | grep -o '^vbl-[^ ]*' | xargs)" || true
	[[ -z "$left" ]] || fail "namespaces left after down: $left"
	for pid in "${pids[@]}"; do
		! lab_pid_alive "$pid" || fail "process $pid ($(cat "/proc/$pid/comm")) left after down"
	done
	left="$(grep -lzxF "VBL_OWNER=$VB_LAB_DIR" /proc/[0-9]*/environ 2>/dev/null | xargs)" || true
	[[ -z "$left" ]] || fail "processes marked as the lab's left after down: $left"
	[[ ! -e "$VB_LAB_DIR" ]] || fail "$VB_LAB_DIR left after down"
	! compgen -G '/etc/netns/vbl-*' >/dev/null || fail "/etc/netns/vbl-* left after down"
	lab_down || fail "a second lab.sh down exited $?"
	pass "down leaves no namespace, process or file, and can run twice"
}

main() {
	lab_require_root
	lab_require_build "${1:-}"
	lab_require_tools dig sha256sum
	lab_up 2
	test_status_describes_the_lab
	local vm
	for vm in lab1 lab2; do
		test_vm_has_only_loopback "$vm"
		test_vm_reaches_nothing "$vm"
		test_agent_runs_in_its_vm "$vm"
	done
	test_host_routes_only_to_external
	test_machine_namespace_untouched
	test_host_resolves_lab_names
	test_host_reaches_external_server
	test_big_file_arrives_intact
	test_down_leaves_nothing
	lab_done
}

main "$@"
