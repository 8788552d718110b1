#!/usr/bin/env bash
# vnet in the lab: lab1 and lab2 have no network but the channel; the daemon in
# the host namespace gives them a subnet over it, routes between them itself,
# and NATs the rest to the external namespace. Real clients: ping, curl, iperf3.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

vnet_conf() {
	cat >"$1" <<EOF
[vnet]
subnet = 10.77.0.0/24
subnet6 = fd76:6d62::/64
leases = $VB_LAB_DIR/vnet.leases

[vm lab1]
uri = unix://$VB_LAB_DIR/lab1.sock
vnet-default-route = yes

[vm lab2]
uri = unix://$VB_LAB_DIR/lab2.sock
EOF
}

# vnet_addr VM - the IPv4 address of vmbus0 in VM, once it has one.
vnet_addr() {
	lab_vm "$1" ip -4 -o addr show dev vmbus0 2>/dev/null | awk '{print $4}' | cut -d/ -f1
}

test_attach() {
	lab_wait_until 10 test -n "$(vnet_addr lab1)" || fail "lab1 got no vnet address"
	lab_wait_until 10 test -n "$(vnet_addr lab2)" || fail "lab2 got no vnet address"
	LAB1="$(vnet_addr lab1)"
	LAB2="$(vnet_addr lab2)"
	pass "lab1 is $LAB1 and lab2 is $LAB2 on vmbus0"
	lab_vm lab1 ip route show default | grep -q "via 10.77.0.1 dev vmbus0" &&
		pass "lab1 (vnet-default-route = yes) routes by default through vnet" ||
		fail_soft "lab1 has no default route through vnet"
	if lab_vm lab2 ip route show default | grep -q vmbus0; then
		fail_soft "lab2 (vnet-default-route unset) got a default route through vnet"
	else
		pass "lab2 keeps only the subnet's route"
	fi
}

test_ping() {
	lab_vm lab1 ping -c 3 -i 0.2 -W 2 10.77.0.1 >/dev/null &&
		pass "lab1 pings the gateway" || fail_soft "lab1 cannot ping the gateway"
	lab_vm lab1 ping -c 3 -i 0.2 -W 2 "$LAB2" >/dev/null &&
		pass "lab1 pings lab2 (VM to VM)" || fail_soft "lab1 cannot ping lab2"
	lab_vm lab1 ping -6 -c 3 -i 0.2 -W 2 fd76:6d62::1 >/dev/null &&
		pass "lab1 pings the gateway over IPv6" || fail_soft "no IPv6 ping to the gateway"
	lab_host ping -c 2 -i 0.2 -W 2 "$LAB1" >/dev/null &&
		pass "the host pings lab1" || fail_soft "the host cannot ping lab1"
}

test_outside() {
	local body
	body="$(lab_vm lab1 curl -fsS -m 10 http://198.51.100.80/ 2>&1)" &&
		pass "lab1 fetches the external server by address (NAT)" ||
		fail_soft "lab1 cannot fetch http://198.51.100.80/: $body"
	# By name, with the gateway's DNS forwarder as lab1's only resolver (a private mount of
	# resolv.conf for the one command).
	printf 'nameserver 10.77.0.1\n' >"$VB_LAB_DIR/vnet-resolv.conf"
	body="$(lab_vm lab1 unshare -m sh -c "mount --bind '$VB_LAB_DIR/vnet-resolv.conf' \
		/etc/resolv.conf && curl -fsS -m 10 http://www.lab.test/" 2>&1)" &&
		pass "lab1 fetches the external server by name, resolved by the gateway's forwarder" ||
		fail_soft "lab1 cannot fetch http://www.lab.test/ through the forwarder: $body"
	if command -v dig >/dev/null; then
		lab_vm lab1 dig +short +time=2 +tries=2 @10.77.0.1 www.lab.test | grep -q . &&
			pass "the gateway's DNS forwarder answers" ||
			fail_soft "no answer from the DNS forwarder on 10.77.0.1"
	fi
}

test_iperf() {
	local out pid
	lab_ext iperf3 -s -1 >/dev/null 2>&1 &
	pid=$!
	lab_wait_until 5 lab_ext sh -c "ss -ltn | grep -q ':5201 '" || true
	out="$(lab_vm lab1 iperf3 -c 198.51.100.80 -t 3 -J 2>&1)" || true
	kill "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	if ! jq -e '.end.sum_received.bits_per_second > 0' <<<"$out" >/dev/null 2>&1; then
		fail_soft "iperf3 from lab1 to the external namespace failed: $(head -c 300 <<<"$out")"
		return 0
	fi
	jq -r '"vnet lab1 -> ext: " + (.end.sum_received.bits_per_second / 1e9 | tostring) + " Gbit/s"' <<<"$out"
	pass "iperf3 runs from lab1 to the external namespace"
}

# 64 MiB of random bytes from lab1 to the external namespace, checked end to end (lab1
# connects out: the NAT lets nothing new in from outside).
test_data() {
	local sent="$VB_LAB_DIR/vnet-send.bin" got="$VB_LAB_DIR/vnet-recv.bin" pid
	head -c $((64 << 20)) /dev/urandom >"$sent"
	rm -f "$got"
	lab_ext socat -u TCP-LISTEN:9100,reuseaddr "CREATE:$got" &
	pid=$!
	lab_wait_until 5 lab_ext sh -c "ss -ltn | grep -q ':9100 '" || true
	lab_vm lab1 socat -u "FILE:$sent" TCP:198.51.100.80:9100 || fail_soft "uploading 64 MiB failed"
	wait "$pid" || true
	[[ "$(sha256sum <"$sent")" == "$(sha256sum <"$got")" ]] &&
		pass "64 MiB from lab1 to the external namespace arrive intact (SHA-256)" ||
		fail_soft "the 64 MiB lab1 sent arrived different"
	rm -f "$sent" "$got"
}

test_status() {
	local json
	json="$("$VB_BIN_DIR/vmbusify" --control "$VB_LAB_DIR/control.sock" vnet status --json)"
	[[ "$(jq -r '.vms[] | select(.vm == "lab1") | .attached' <<<"$json")" == true ]] &&
		pass "vnet status shows lab1 attached" || fail_soft "vnet status: $json"
	[[ "$(jq -r '.vms[] | select(.vm == "lab1") | .rx_packets' <<<"$json")" -gt 0 ]] &&
		pass "vnet status counts lab1's packets" || fail_soft "no packets counted: $json"
}

# The daemon restarts: lab1 keeps its address and its connectivity comes back by itself.
test_daemon_restart() {
	local pid before="$LAB1"
	pid="$(cat "$VB_LAB_DIR/vmbusifyd.pid")"
	kill "$pid"
	lab_wait_until 10 bash -c "! kill -0 $pid 2>/dev/null" || fail "the daemon did not stop"
	# Gone with the daemon: its TUN and NAT table in the host, the VMs' devices.
	if lab_host ip link show vmbusify0 >/dev/null 2>&1 ||
		lab_host nft list table inet vmbusify >/dev/null 2>&1; then
		fail_soft "the stopped daemon left vmbusify0 or its nftables table behind"
	else
		pass "a stopped daemon leaves no TUN and no nftables table in the host"
	fi
	lab_wait_until 5 bash -c "! ip -n vbl-lab1 link show vmbus0 >/dev/null 2>&1" &&
		pass "lab1's vmbus0 went away with the session" ||
		fail_soft "lab1 kept vmbus0 after the daemon stopped"
	lab_respawn vmbusifyd vbl-host "$VB_BIN_DIR/vmbusifyd" --config "$VB_LAB_DAEMON_CONFIG" \
		--control "unix://$VB_LAB_DIR/control.sock" --state-dir "$(realpath -m "$VB_LAB_DIR")" \
		--log-level info >/dev/null
	lab_wait_until 15 lab_vm lab1 ping -c 1 -W 1 10.77.0.1 >/dev/null 2>&1 &&
		pass "after a daemon restart lab1 reaches the gateway again" ||
		fail_soft "lab1 did not come back after a daemon restart"
	[[ "$(vnet_addr lab1)" == "$before" ]] && pass "lab1 kept its address $before" ||
		fail_soft "lab1's address changed from $before to $(vnet_addr lab1)"
}

lab_ext() {
	ip netns exec vbl-ext "$@"
}

main() {
	lab_require_root
	lab_require_build "${1:-}"
	lab_require_tools ping curl jq iperf3 socat nft
	VB_LAB_DAEMON_CONFIG="$(mktemp /tmp/vb-vnet-conf.XXXXXX)"
	export VB_LAB_DAEMON_CONFIG
	lab_at_exit rm -f "$VB_LAB_DAEMON_CONFIG"
	vnet_conf "$VB_LAB_DAEMON_CONFIG"
	lab_up 2
	test_attach
	test_ping
	test_outside
	test_iperf
	test_data
	test_status
	test_daemon_restart
	lab_down
	if ip -n vbl-host link show vmbusify0 >/dev/null 2>&1 || ip link show vmbusify0 >/dev/null 2>&1; then
		fail_soft "a vmbusify0 device is left behind"
	else
		pass "nothing of vnet is left after lab down"
	fi
	lab_done
}

main "$@"
