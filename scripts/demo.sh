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
# The daemon's configuration for the lab: vnet on, lab1 routed through it by default.
demo_conf="$(mktemp /tmp/vb-demo-conf.XXXXXX)"
cat >"$demo_conf" <<'CONF'
[vnet]
subnet = 10.77.0.0/24
leases = /run/vmbusify/lab/vnet.leases
[vm lab1]
uri = unix:///run/vmbusify/lab/lab1.sock
vnet-default-route = yes
CONF
export VB_LAB_DAEMON_CONFIG="$demo_conf"
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

step "exec: a program in lab1, stdout and stderr apart, its exit status returned"
run vmbusexec lab1 uname -sr
printf '$ vmbusexec lab1 sh -c "echo to stdout; echo to stderr >&2; exit 3"\n'
rc=0
vmbusexec lab1 sh -c 'echo to stdout; echo to stderr >&2; exit 3' || rc=$?
echo "exit status: $rc"

step "cp: a tree to lab1 and back, verified by checksum on both ends"
demo_dir="$(mktemp -d /tmp/vb-demo.XXXXXX)"
mkdir -p "$demo_dir/src/sub"
head -c 20000000 /dev/urandom >"$demo_dir/src/big.bin"
echo hello >"$demo_dir/src/sub/hello.txt"
ln -s sub/hello.txt "$demo_dir/src/link"
run vmbusify cp -rq "$demo_dir/src" "lab1:$demo_dir/in-lab1"
run vmbusify cp -rq "lab1:$demo_dir/in-lab1" "$demo_dir/back"
run diff -r --no-dereference "$demo_dir/src" "$demo_dir/back"
rm -rf "$demo_dir"

step "proxy: lab1 has no network, yet curl in lab1 reaches the external server through the host"
run vmbusexec lab1 curl -sS -m 10 -x socks5h://127.0.0.1:1080 http://www.lab.test/ -o /dev/null -w '%{http_code} from %{remote_ip}\n'
step "proxy, the other way: the host reaches a server listening on lab1's loopback"
printf '$ vmbusexec lab1 -d python3 -m http.server 8080 --bind 127.0.0.1\n'
web_pid="$(vmbusexec lab1 -d python3 -m http.server 8080 --bind 127.0.0.1)"
echo "$web_pid"
sleep 1
run ip netns exec vbl-host curl -sS -m 10 --socks5-hostname 127.0.0.1:1080 http://lab1.vmbus:8080/ -o /dev/null -w '%{http_code}\n'
vmbusexec lab1 kill "$web_pid" || true

step "vnet: each VM has an address on the channel's subnet; the host routes and NATs"
run vmbusexec lab1 ip -brief address show vmbus0
run vmbusexec lab1 ping -c 3 -i 0.2 10.77.0.1
run vmbusexec lab1 curl -sS -m 10 http://198.51.100.80/ -o /dev/null -w '%{http_code} without any proxy\n'
run vmbusify vnet status

if [ "$keep" = 1 ]; then
	step "the lab stays up; try: vmbusify ping lab2; vmbusify lab down"
else
	step "take the lab down"
	run vmbusify lab down
	trap - EXIT
fi
