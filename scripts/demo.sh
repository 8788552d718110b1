#!/usr/bin/env bash
# The demo: installs what VMBusify needs, builds it, brings up the built-in lab
# (VMs with no network at all, reachable only over their channel) and runs the
# tools against it: ls, ping and bench. Run as root on Debian 12.
#
# Usage: scripts/demo.sh [--keep]
#   --keep  leave the lab up afterwards (take it down with: build/release/vmbusify lab down)
#
# Exit codes: 0 the demo ran; otherwise that of the step that failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
keep=0
[ "${1:-}" = "--keep" ] && keep=1

step() {
	printf '\n==> %s\n' "$*"
}

run() {
	printf '$ %s\n' "$*"
	"$@"
}

if [ "$(id -u)" != 0 ]; then
	echo "vmbusify: demo: needs root (it installs packages and builds network namespaces)" >&2
	exit 4
fi
step "install the dependencies (Debian packages)"
scripts/deps.sh
step "build (Release)"
scripts/build.sh Release >/dev/null
export PATH="$PWD/build/release:$PATH"
[ "$keep" = 1 ] || trap 'vmbusify lab down >/dev/null 2>&1 || true' EXIT

step "bring up the lab: 2 VMs without any network, a host running vmbusifyd, an external network"
run vmbusify lab up --vms 2
run vmbusify lab status

step "lab1 has no network at all, only loopback:"
run ip netns exec vbl-lab1 ip -brief address

step "the daemon holds a session to each VM over its channel"
run vmbusify ls

step "the session's round trip to lab1, through the daemon, and the agent's version"
run vmbusify ping -c 5 -i 0.1 lab1

step "the channel's throughput both ways, 1 and 8 streams, and RTT under load"
run vmbusify bench -t 1 lab1

if [ "$keep" = 1 ]; then
	step "the lab stays up; try: vmbusify ping lab2; vmbusify lab down"
else
	step "take the lab down"
	run vmbusify lab down
	trap - EXIT
fi
