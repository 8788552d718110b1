#!/usr/bin/env bash
# bench/vm.sh - the QEMU benchmark (issue 6): every VMBusify path over a real virtio-serial channel,
# each against the raw virtio-serial throughput measured in the same run. The lab boots one QEMU
# guest (`scripts/lab.sh up --qemu --vms 1`, vnet on); QEMU gives it two ports on the same
# virtio-serial device: org.vmbusify.agent (the agent's, held by the daemon) and org.vmbusify.raw
# (nobody's: the baseline). A benchmark, not a test: never run by CTest, asserts nothing.
#
# Usage: bench/vm.sh [BUILD_DIR] [-t SECONDS] [-r RUNS] [-s MIB] [--json FILE]
#   BUILD_DIR  a built tree (default: build/release in the repository); nothing is built here
#   -t         seconds per `vmbusify bench` direction (default 5)
#   -r         runs of everything, interleaved; the median is reported (default 1)
#   -s         MiB moved per throughput figure (default 32)
#   --json     where to write every sample and the medians (default ./vm.json)
# Needs: root, qemu-system-x86_64, busybox-static, jq, python3, curl (scripts/deps.sh).
# The rows (MB = 10^6 bytes; "x raw" is the row over raw virtio-serial in the same direction):
#   raw virtio-serial   host->vm: the host writes MIB MiB into org.vmbusify.raw's socket, the guest
#                       reads them with dd and answers one byte; vm->host: the guest writes them
#                       with dd, the host reads them. Timed on the host, first byte to last.
#   session (bench)     `vmbusify bench --json -t T qemu1` through the daemon: one BENCH stream
#                       each way, and its idle/loaded echo RTT (the session RTT)
#   exec latency        `vmbusexec qemu1 true`, 20 times, wall time on the host (median, p90)
#   cp                  `vmbusify cp` of MIB MiB up and down, wall time on the host
#   proxy               in the guest, curl through the agent's SOCKS port: a download from the
#                       lab's external server (host->vm) and an upload to a sink there (vm->host),
#                       curl's own speed figures
#   vnet                the same transfers with no proxy, over the guest's vmbus0 (TUN) and the
#                       daemon's NAT
# Exit codes: 0 the run completed; 1 a measurement failed; 2 usage; 77 QEMU cannot run here.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/../build/release"
secs=5
runs=1
mib=32
json_out="$PWD/vm.json"

readonly VM=qemu1
readonly EXT_V4=198.51.100.80
readonly SINK_PORT=9100
readonly RAW_PORT=/dev/virtio-ports/org.vmbusify.raw

LAB_SH="$here/../scripts/lab.sh"
DIR=""
tmp=""
lab_started=0
sink_pid=""

die() {
	printf 'vmbusify: vm bench: %s\n' "$1" >&2
	exit "${2:-1}"
}

usage() {
	sed -n '8,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&"$([ "$1" = 0 ] && echo 1 || echo 2)"
	exit "$1"
}

# cleanup - the sink, the lab (and so QEMU) and the scratch directory; on every exit path.
cleanup() {
	set +e
	[ -z "$sink_pid" ] || kill "$sink_pid" 2>/dev/null
	[ "$lab_started" = 0 ] || "$LAB_SH" down >/dev/null 2>&1
	[ -z "$tmp" ] || rm -rf "$tmp"
}

parse_args() {
	while [ $# -gt 0 ]; do
		case "$1" in
		-t) secs="${2:?}"; shift ;;
		-r) runs="${2:?}"; shift ;;
		-s) mib="${2:?}"; shift ;;
		--json) json_out="${2:?}"; shift ;;
		-h | --help) usage 0 ;;
		-*) usage 2 ;;
		*) build="$1" ;;
		esac
		shift
	done
	[[ "$secs" =~ ^[1-9][0-9]*$ && "$runs" =~ ^[1-9][0-9]*$ && "$mib" =~ ^[1-9][0-9]*$ ]] ||
		die "-t, -r and -s take positive whole numbers" 2
	build="$(cd "$build" 2>/dev/null && pwd)" || die "no build directory $build" 2
}

# ---------------------------------------------------------------- measuring

now_ns() {
	date +%s%N
}

# record RUN KEY VALUE - one sample.
record() {
	jq -nc --argjson run "$1" --arg key "$2" --argjson value "$3" \
		'{run: $run, key: $key, value: $value}' >>"$tmp/samples.jsonl"
}

vx() {
	"$build/vmbusexec" "$VM" "$@"
}

# mbps BYTES NS - MB/s.
mbps() {
	awk -v b="$1" -v ns="$2" 'BEGIN { printf "%.3f", (ns > 0 ? b / (ns / 1e9) / 1e6 : 0) }'
}

# The host side of the raw port: one connection to QEMU's chardev socket; prints MB/s.
readonly RAW_PY='
import socket, sys, time
path, mode, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
print("connected", flush=True)
s.settimeout(600)
def need(k):
    got = b""
    while len(got) < k:
        b = s.recv(k - len(got))
        if not b:
            sys.exit("raw: the guest side closed early")
        got += b
    return got
assert need(1) == b"R", "raw: no ready byte from the guest"
buf = bytes(128 << 10)
t0 = time.monotonic_ns()
if mode == "up":
    left = n
    while left:
        left -= s.send(buf[:min(left, len(buf))])
    assert need(1) == b"A", "raw: no answer from the guest"
else:
    s.sendall(b"g")
    left = n
    while left:
        b = s.recv(min(left, 1 << 20))
        if not b:
            sys.exit("raw: the guest side closed early")
        left -= len(b)
t1 = time.monotonic_ns()
print("%.3f" % (n / ((t1 - t0) / 1e9) / 1e6), flush=True)
'

# raw_one MODE - one raw transfer of MIB MiB (up: host to guest); prints MB/s.
raw_one() {
	local mode="$1" n=$((mib * 1048576)) guest out
	if [ "$mode" = up ]; then
		guest="exec 3<>$RAW_PORT; printf R >&3; dd iflag=fullblock,count_bytes bs=131072 count=$n <&3 of=/dev/null 2>/dev/null; printf A >&3"
	else
		guest="exec 3<>$RAW_PORT; printf R >&3; dd bs=1 count=1 <&3 of=/dev/null 2>/dev/null; dd if=/dev/zero iflag=count_bytes bs=131072 count=$n >&3 2>/dev/null"
	fi
	coproc RAW { python3 -c "$RAW_PY" "$DIR/$VM-raw.sock" "$mode" "$n" 2>&1; }
	read -r -t 30 out <&"${RAW[0]}" || die "raw: cannot connect to $DIR/$VM-raw.sock"
	[ "$out" = connected ] || die "raw: $out"
	vx -d sh -c "$guest" >/dev/null || die "raw: cannot start the guest side"
	read -r -t 600 out <&"${RAW[0]}" || die "raw $mode: no result"
	wait "$RAW_PID" 2>/dev/null || true
	[[ "$out" =~ ^[0-9.]+$ ]] || die "raw $mode: $out"
	echo "$out"
}

measure_raw() {
	record "$1" raw.h2v "$(raw_one up)"
	record "$1" raw.v2h "$(raw_one down)"
}

measure_session() {
	local out
	out="$("$build/vmbusify" bench --json -t "$secs" "$VM")" || die "vmbusify bench $VM failed"
	jq -c --argjson run "$1" '
		[ (.tests[] | select(.streams == 1) |
			{key: (if .name == "host->vm" then "session.h2v" else "session.v2h" end),
			 value: .MBps}),
		  {key: "rtt_idle.median", value: .rtt_idle.median_ms},
		  {key: "rtt_idle.p99", value: .rtt_idle.p99_ms},
		  {key: "rtt_loaded.median", value: .rtt_loaded.median_ms},
		  {key: "rtt_loaded.p99", value: .rtt_loaded.p99_ms} ]
		| .[] | {run: $run} + .' <<<"$out" >>"$tmp/samples.jsonl"
}

measure_exec() {
	local i t0 ms=()
	for ((i = 0; i < 20; i++)); do
		t0="$(now_ns)"
		vx true || die "vmbusexec $VM true failed"
		ms+=("$(awk -v ns="$(($(now_ns) - t0))" 'BEGIN { printf "%.3f", ns / 1e6 }')")
	done
	record "$1" exec.median "$(printf '%s\n' "${ms[@]}" | sort -g | sed -n 10p)"
	record "$1" exec.p90 "$(printf '%s\n' "${ms[@]}" | sort -g | sed -n 18p)"
}

measure_cp() {
	local t0 n=$((mib * 1048576))
	t0="$(now_ns)"
	"$build/vmbusify" cp -q "$tmp/blob" "$VM:/tmp/blob" || die "cp up failed"
	record "$1" cp.h2v "$(mbps "$n" $(($(now_ns) - t0)))"
	t0="$(now_ns)"
	"$build/vmbusify" cp -q "$VM:/tmp/blob" "$tmp/blob.back" || die "cp down failed"
	record "$1" cp.v2h "$(mbps "$n" $(($(now_ns) - t0)))"
	rm -f "$tmp/blob.back"
	cmp -s "$tmp/blob" <(vx cat /tmp/blob) || die "cp: the copy in the guest differs"
}

# curl_speed KIND CURL_ARGS... - curl in the guest; prints its speed in MB/s
# (KIND download or upload).
curl_speed() {
	local kind="$1" out
	shift
	out="$(vx curl -sS -m 600 -o /dev/null -w "%{speed_$kind} %{http_code}" "$@")" ||
		die "curl $* in the guest failed: $out"
	[[ "$out" == *" 200" ]] || die "curl $*: HTTP ${out##* }"
	awk -v b="${out%% *}" 'BEGIN { printf "%.3f", b / 1e6 }'
}

measure_proxy() {
	local p=(-x socks5h://127.0.0.1:1080)
	record "$1" proxy.h2v "$(curl_speed download "${p[@]}" "http://$EXT_V4/bench.bin")"
	record "$1" proxy.v2h "$(curl_speed upload "${p[@]}" --data-binary @/tmp/blob \
		"http://$EXT_V4:$SINK_PORT/")"
}

measure_vnet() {
	local p=(--noproxy '*')
	record "$1" vnet.h2v "$(curl_speed download "${p[@]}" "http://$EXT_V4/bench.bin")"
	record "$1" vnet.v2h "$(curl_speed upload "${p[@]}" --data-binary @/tmp/blob \
		"http://$EXT_V4:$SINK_PORT/")"
}

# ---------------------------------------------------------------- the lab

# The external namespace's upload sink: reads each POST's body, answers 200.
readonly SINK_PY='
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        left = int(self.headers.get("Content-Length", "0"))
        while left:
            b = self.rfile.read(min(left, 1 << 20))
            if not b:
                return
            left -= len(b)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()
'

lab_up() {
	local rc=0
	DIR="$(realpath -m -- "${VB_LAB_DIR:-/run/vmbusify/lab}")"
	cat >"$tmp/vmbusifyd.conf" <<EOF
[vnet]
subnet = 10.77.0.0/24
leases = $DIR/vnet.leases

[vm $VM]
uri = unix://$DIR/$VM.sock
vnet-default-route = yes
EOF
	lab_started=1
	VB_BIN_DIR="$build" VB_LAB_DAEMON_CONFIG="$tmp/vmbusifyd.conf" "$LAB_SH" up --qemu --vms 1 \
		>"$tmp/up.log" 2>&1 || rc=$?
	[ "$rc" != 5 ] || { cat "$tmp/up.log" >&2; exit 77; }
	[ "$rc" = 0 ] || { cat "$tmp/up.log" >&2; die "lab.sh up --qemu failed ($rc)"; }
	export VMBUSIFY_CONTROL="$DIR/control.sock"
	head -c $((mib * 1048576)) /dev/urandom >"$tmp/blob"
	cp "$tmp/blob" "$DIR/www/bench.bin"
	chmod a+r "$DIR/www/bench.bin"
	ip netns exec vbl-ext python3 -c "$SINK_PY" "$SINK_PORT" </dev/null >/dev/null 2>&1 &
	sink_pid=$!
	"$build/vmbusify" cp -q "$tmp/blob" "$VM:/tmp/blob" || die "cannot put the upload file in the guest"
	local i
	for ((i = 0; i < 300; i++)); do
		vx ip -4 -o addr show dev vmbus0 2>/dev/null | grep -q inet && return 0
		sleep 0.1
	done
	die "vnet: the guest got no address on vmbus0"
}

# ---------------------------------------------------------------- the report

median() {
	jq -r --arg k "$1" '.[$k] // "nan"' "$tmp/median.json"
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0 && a == a + 0) printf "%.2f x", a / b; else printf "-" }'
}

row() {
	local label="$1" key="$2"
	printf '%-30s %9.3f MB/s %8s   %9.3f MB/s %8s\n' "$label" \
		"$(median "$key.h2v")" "$(ratio "$(median "$key.h2v")" "$(median raw.h2v)")" \
		"$(median "$key.v2h")" "$(ratio "$(median "$key.v2h")" "$(median raw.v2h)")"
}

report() {
	jq -s 'group_by(.key) | map({key: .[0].key, value: (map(.value) | sort |
		.[(length - 1) / 2 | floor])}) | from_entries' "$tmp/samples.jsonl" >"$tmp/median.json"
	echo
	echo "VMBusify over virtio-serial: QEMU $(qemu-system-x86_64 --version | head -n 1 |
		awk '{ print $4 }') ($(jq -r '.vms[0].accel' "$tmp/status.json")), guest kernel" \
		"$(cat "$(dirname "$(jq -r '.vms[0].kernel' "$tmp/status.json")")/kernel-version")," \
		"$(nproc) host CPUs, median of $runs run(s), $mib MiB per transfer"
	echo "boot to ready: $(jq -r '.vms[0].boot_to_ready_ms' "$tmp/status.json") ms;" \
		"load average before the run: $load_before"
	printf '%-30s %-23s   %s\n' "throughput (MB = 1e6 bytes)" "host->vm" "vm->host"
	row "raw virtio-serial (dd)" raw
	row "session (vmbusify bench)" session
	row "cp" cp
	row "proxy (curl via SOCKS5)" proxy
	row "vnet (curl over vmbus0)" vnet
	printf '%-30s %.3f / %.3f ms idle, %.3f / %.3f ms under load (median / p99)\n' \
		"session RTT (echo)" "$(median rtt_idle.median)" "$(median rtt_idle.p99)" \
		"$(median rtt_loaded.median)" "$(median rtt_loaded.p99)"
	printf '%-30s %.1f ms median, %.1f ms p90 (vmbusexec %s true)\n' "exec latency" \
		"$(median exec.median)" "$(median exec.p90)" "$VM"
	jq -n --slurpfile samples "$tmp/samples.jsonl" --slurpfile median "$tmp/median.json" \
		--slurpfile status "$tmp/status.json" \
		'{vm: $status[0].vms[0], median: $median[0], samples: $samples}' >"$json_out"
	echo "all samples and medians: $json_out"
}

main() {
	local run load_before
	parse_args "$@"
	[ "$(id -u)" = 0 ] || die "needs root (the lab's namespaces)" 2
	for t in qemu-system-x86_64 jq python3 curl; do
		command -v "$t" >/dev/null || { echo "vm bench: $t not installed (scripts/deps.sh)" >&2; exit 77; }
	done
	tmp="$(mktemp -d /tmp/vb-vm-bench.XXXXXX)"
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
	lab_up
	"$LAB_SH" status --json >"$tmp/status.json" || true
	for ((run = 1; run <= runs; run++)); do
		echo "run $run of $runs: raw, session, exec, cp, proxy, vnet" >&2
		measure_raw "$run"
		measure_session "$run"
		measure_exec "$run"
		measure_cp "$run"
		measure_proxy "$run"
		measure_vnet "$run"
	done
	report
}

main "$@"
