#!/usr/bin/env bash
# bench/vnet.sh - the vnet benchmark (issue 5): in one run on the lab, iperf3 TCP throughput
# from a VM to a server in the external namespace over vnet, against the same kind of
# network-less namespace given a network by slirp4netns (MTU 65520) and by pasta, both run in
# the lab's host namespace as the daemon is; VM-to-VM throughput over vnet; ping RTT to the
# gateway; and the raw channel's throughput (vmbusify bench). Median of RUNS runs each; prints
# a table, the ratios and the issue's targets as PASS or MISS. A benchmark: never run by CTest.
#
# Usage: bench/vnet.sh [BUILD_DIR] [-n RUNS] [-t SECONDS]
#   BUILD_DIR  a built tree (default: build/release); nothing is built here
#   -n         runs of each row (default 3)
#   -t         seconds of each iperf3 run (default 5)
# Needs: root, the lab's tools, iperf3, jq, slirp4netns and passt (pasta) for their rows.
# Exit codes: 0 the run completed (whatever the verdicts), 1 a measurement failed, 2 usage.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="$repo/build/release"
runs=3
secs=5
lab_dir=/run/vmbusify/lab
conf=""
pids=()

die() {
	printf 'vmbusify: vnet bench: %s\n' "$1" >&2
	exit "${2:-1}"
}

while [ $# -gt 0 ]; do
	case "$1" in
	-n) runs="${2:?}"; shift ;;
	-t) secs="${2:?}"; shift ;;
	-h | --help) sed -n '9,13s/^# \{0,1\}//p' "$0"; exit 0 ;;
	-*) die "unknown option $1" 2 ;;
	*) build="$(cd "$1" && pwd)" ;;
	esac
	shift
done
[ -x "$build/vmbusifyd" ] || die "no vmbusifyd in $build: build first (scripts/build.sh Release)" 2

cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	ip netns del vbb-slirp 2>/dev/null || true
	ip netns del vbb-pasta 2>/dev/null || true
	VB_BIN_DIR="$build" bash "$repo/scripts/lab.sh" down >/dev/null 2>&1 || true
	[ -n "$conf" ] && rm -f "$conf"
}
trap cleanup EXIT

median() {
	sort -g | awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]; else print "nan"}'
}

# iperf_gbps NETNS SERVER [ARGS] - one iperf3 run's received Gbit/s.
iperf_gbps() {
	local ns="$1" server="$2"
	shift 2
	timeout $((secs + 20)) ip netns exec "$ns" iperf3 -c "$server" -t "$secs" -J "$@" 2>/dev/null |
		jq -r '.end.sum_received.bits_per_second / 1e9'
}

# row NAME NETNS SERVER - RUNS runs, the median.
row() {
	local name="$1" ns="$2" server="$3" v
	v="$(for _ in $(seq "$runs"); do iperf_gbps "$ns" "$server"; done | median)"
	printf '%-36s %10.2f Gbit/s\n' "$name" "$v" >&2
	echo "$v"
}

# netless NAME - a network namespace with only loopback, like a lab VM; sets netless_pid to
# a process inside it, for slirp4netns.
netless() {
	ip netns add "$1"
	ip -n "$1" link set lo up
	ip netns exec "$1" sleep 100000 >/dev/null 2>&1 &
	netless_pid="$!"
	pids+=("$netless_pid")
}

conf="$(mktemp /tmp/vb-vnet-bench.XXXXXX)"
cat >"$conf" <<EOF
[vnet]
subnet = 10.77.0.0/24
leases = $lab_dir/vnet.leases
[vm lab1]
uri = unix://$lab_dir/lab1.sock
vnet-default-route = yes
[vm lab2]
uri = unix://$lab_dir/lab2.sock
EOF
VB_LAB_DAEMON_CONFIG="$conf" VB_BIN_DIR="$build" bash "$repo/scripts/lab.sh" up --vms 2 >/dev/null
for vm in lab1 lab2; do
	for _ in $(seq 100); do
		ip -n "vbl-$vm" -4 addr show dev vmbus0 2>/dev/null | grep -q inet && break
		sleep 0.1
	done
done
lab2_addr="$(ip -n vbl-lab2 -4 -o addr show dev vmbus0 | awk '{print $4}' | cut -d/ -f1)"
ip netns exec vbl-ext iperf3 -s >/dev/null 2>&1 &
pids+=("$!")
ip netns exec vbl-lab2 iperf3 -s >/dev/null 2>&1 &
pids+=("$!")
sleep 0.5

echo "vnet benchmark: $runs runs of $secs s each, median" >&2
vnet="$(row "vnet: lab1 -> external" vbl-lab1 198.51.100.80)"
v2v="$(row "vnet: lab1 -> lab2 (VM to VM)" vbl-lab1 "$lab2_addr")"

slirp=nan
if command -v slirp4netns >/dev/null; then
	netless vbb-slirp
	ip netns exec vbl-host slirp4netns --configure --mtu=65520 --disable-host-loopback "$netless_pid" tap0 \
		>/dev/null 2>&1 &
	pids+=("$!")
	sleep 1
	slirp="$(row "slirp4netns (MTU 65520)" vbb-slirp 198.51.100.80)"
fi
pasta=nan
if command -v pasta >/dev/null; then
	netless vbb-pasta
	if ip netns exec vbl-host pasta --runas 0 --netns-only --config-net -m 65520 -t none -u none -T none -U none \
		--netns /run/netns/vbb-pasta >/dev/null 2>&1; then
		sleep 1
		pasta="$(row "pasta (MTU 65520)" vbb-pasta 198.51.100.80)"
	fi
fi

rtt="$(ip netns exec vbl-lab1 ping -c 100 -i 0.01 -q 10.77.0.1 | awk -F/ '/rtt/ {print $5}')"
printf '%-36s %10s ms (average of 100)\n' "ping lab1 -> gateway" "$rtt" >&2
raw="$("$build/vmbusify" --control "$lab_dir/control.sock" bench lab1 --json 2>/dev/null |
	jq -r "[.. | objects | select(has(\"Gbps\")) | .Gbps] | max // empty" || true)"
[ -n "$raw" ] && printf '%-36s %10.2f Gbit/s (vmbusify bench, best row)\n' "raw channel" "$raw" >&2

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == "nan" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b}'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN {print (v != "n/a" && v + 0 >= t) ? "PASS" : "MISS"}'; }
echo >&2
r_slirp="$(ratio "$vnet" "$slirp")"
printf 'vnet / slirp4netns: %s (target >= 1.5: %s)\n' "$r_slirp" "$(verdict "$r_slirp" 1.5)" >&2
printf 'vnet / pasta: %s\n' "$(ratio "$vnet" "$pasta")" >&2
printf 'vnet to the outside: %s Gbit/s (target >= 10: %s)\n' "$vnet" "$(verdict "$vnet" 10)" >&2
[ -n "$raw" ] && printf 'vnet / raw channel: %s\n' "$(ratio "$vnet" "$raw")" >&2
exit 0
