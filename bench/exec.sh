#!/usr/bin/env bash
# bench/exec.sh - the exec benchmark (issue 3): in one run on the lab, the latency of
# `vmbusexec lab1 true` (directly over lab1's channel, and through vmbusifyd) against
# `ssh root@lab1 true` to an sshd inside lab1 reached over a socat relay on a Unix socket (the
# way `hvc ssh` reaches a Hyper-V VM), median and p99 over RUNS runs each, interleaved; then
# 256 MiB through `cat` each way, vmbusexec against ssh, median of BULK_RUNS runs. Prints a
# table, the ratios and the issue's targets as PASS or MISS (without failing the run).
# A benchmark, not a test: never run by CTest.
#
# Usage: bench/exec.sh [BUILD_DIR] [-n RUNS] [-s SSH_RUNS] [-b BULK_RUNS] [--json FILE]
#   BUILD_DIR  a built tree (default: build/release in the repository); nothing is built here
#   -n         runs of each vmbusexec latency row (default 300, at least 200)
#   -s         runs of the ssh latency row (default 200)
#   -b         runs of each 256 MiB transfer (default 3)
#   --json     where to write the samples, the statistics and the verdicts (default ./exec.json)
# Needs: root (the lab's network namespaces), the lab's tools, ssh, sshd, ssh-keygen, socat, jq.
# Brings the lab up with one VM and takes it down at the end; if another lab is up (the
# namespace names are fixed), waits for it (every 20 s, at most 10 min) instead of taking it down.
# Exit codes: 0 the run completed (whatever the verdicts), 1 a measurement failed, 2 usage,
# 3 another lab stayed up.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="$repo/build/release"
runs=300
ssh_runs=200
bulk_runs=3
json_out="$PWD/exec.json"

# Issue 3's targets.
target_median_ms=5
target_ratio=20

lab_dir=/run/vmbusify/lab
tmp=""
lab_started=0
ssh_cmd=()
ssh_mux=() # ssh through a ControlMaster connection: no handshake per command (information only)
vx=""
spawned=()

die() {
	printf 'vmbusify: exec bench: %s\n' "$1" >&2
	exit "${2:-1}"
}

usage() {
	if [ "$1" = 0 ]; then
		sed -n '10,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
	else
		sed -n '10,16s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	fi
	exit "$1"
}

parse_args() {
	while [ $# -gt 0 ]; do
		case "$1" in
		-n) runs="${2:?}"; shift ;;
		-s) ssh_runs="${2:?}"; shift ;;
		-b) bulk_runs="${2:?}"; shift ;;
		--json) json_out="${2:?}"; shift ;;
		-h | --help) usage 0 ;;
		-*) usage 2 ;;
		*) build="$1" ;;
		esac
		shift
	done
	[[ "$runs" =~ ^[0-9]+$ && "$runs" -ge 200 ]] || die "-n wants at least 200 runs" 2
	[[ "$ssh_runs" =~ ^[1-9][0-9]*$ ]] || die "-s wants a positive count" 2
	[[ "$bulk_runs" =~ ^[1-9][0-9]*$ ]] || die "-b wants a positive count" 2
	case "$json_out" in /*) ;; *) json_out="$PWD/$json_out" ;; esac
}

check_tools() {
	local f
	[ "$(id -u)" -eq 0 ] || die "needs root (the lab's network namespaces)" 2
	build="$(cd "$build" 2>/dev/null && pwd)" || die "no build directory (build first, see bench/README.md)" 2
	for f in vmbusify vmbusexec vmbusify-agent vmbusifyd; do
		[ -x "$build/$f" ] || die "$build/$f is missing (build first, see bench/README.md)" 2
	done
	for f in ssh ssh-keygen socat jq ip /usr/sbin/sshd; do
		command -v "$f" >/dev/null || die "$f is needed (scripts/deps.sh)" 2
	done
	vx="$build/vmbusexec"
}

# ---------------------------------------------------------------- the lab and sshd

lab() {
	VB_LAB_DIR="$lab_dir" "$build/vmbusify" lab "$@"
}

lab_is_free() {
	local rc=0
	lab status >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 3 ] && ! ip netns list 2>/dev/null | grep -q '^vbl-'
}

# cleanup - the lab goes down (with the sshd and relay started in it) and the scratch directory
# goes; runs on every exit path.
cleanup() {
	local pid
	set +e
	[ ${#ssh_mux[@]} -gt 0 ] && "${ssh_mux[@]:0:${#ssh_mux[@]}-1}" -O exit "${ssh_mux[-1]}" >/dev/null 2>&1
	for pid in "${spawned[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	[ "$lab_started" = 1 ] && lab down >/dev/null 2>&1
	[ -n "$tmp" ] && rm -rf "$tmp"
}

lab_start() {
	local deadline=$((SECONDS + 600))
	until lab_is_free; do
		[ $SECONDS -lt $deadline ] || die "another lab stayed up for 10 min (one lab per machine)" 3
		echo "exec bench: another lab is up; waiting for it to go down" >&2
		sleep 20
	done
	lab_started=1
	lab up --vms 1 >/dev/null || die "vmbusify lab up --vms 1 failed"
	export VMBUSIFY_CONTROL="$lab_dir/control.sock"
	for _ in $(seq 100); do
		"$build/vmbusify" ls --json 2>/dev/null | jq -e '.vms[0].state == "up"' >/dev/null && return 0
		sleep 0.1
	done
	die "lab1 did not come up in the daemon"
}

# spawn NAME CMD... - run CMD in vbl-lab1 as the lab runs its processes (own session,
# VBL_OWNER marks it as the lab's, so that `lab down` ends it).
spawn() {
	local name="$1"
	shift
	VBL_OWNER="$lab_dir" setsid ip netns exec vbl-lab1 "$@" </dev/null >>"$tmp/$name.log" 2>&1 &
	spawned+=("$!")
}

ssh_start() {
	local sock="$lab_dir/lab1-ssh.sock"
	mkdir -p /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$tmp/hostkey"
	ssh-keygen -q -t ed25519 -N '' -f "$tmp/key"
	install -m 600 "$tmp/key.pub" "$tmp/authorized_keys"
	# sshd runs the command through root's shell, and bash run by sshd reads ~/.bashrc: this
	# machine's runs `pyenv init` (80+ ms). A VM's would not: sshd sees an empty ~/.bashrc,
	# bind-mounted in the mount namespace that `ip netns exec` makes, never on the host.
	spawn sshd sh -c 'if [ -f /root/.bashrc ]; then mount --bind /dev/null /root/.bashrc; fi; exec "$@"' \
		sshd /usr/sbin/sshd -D -e -f /dev/null -p 22 -o ListenAddress=127.0.0.1 \
		-h "$tmp/hostkey" -o PidFile="$tmp/sshd.pid" -o AuthorizedKeysFile="$tmp/authorized_keys" \
		-o StrictModes=no
	spawn relay socat "UNIX-LISTEN:$sock,fork" TCP:127.0.0.1:22
	ssh_cmd=(ssh -F /dev/null -o "ProxyCommand=socat - UNIX-CONNECT:$sock"
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
		-i "$tmp/key" -o BatchMode=yes root@lab1)
	for _ in $(seq 100); do
		"${ssh_cmd[@]}" true </dev/null >/dev/null 2>&1 && break
		sleep 0.1
	done
	"${ssh_cmd[@]}" true </dev/null >/dev/null 2>&1 \
		|| die "ssh to lab1 over $sock does not work: $(tail -n 3 "$tmp/sshd.log")"
	ssh_mux=("${ssh_cmd[@]:0:${#ssh_cmd[@]}-1}" -o ControlPath="$tmp/mux.sock" "${ssh_cmd[-1]}")
	"${ssh_mux[@]:0:${#ssh_mux[@]}-1}" -o ControlMaster=yes -o ControlPersist=yes -f -N "${ssh_mux[-1]}" \
		</dev/null >/dev/null 2>&1 || die "cannot start an ssh ControlMaster"
	"${ssh_mux[@]}" true </dev/null >/dev/null 2>&1 || die "ssh through the ControlMaster does not work"
}

# ---------------------------------------------------------------- measuring

# time_once CMD... - run CMD (stdin /dev/null, output dropped); print its wall time in µs.
time_once() {
	local t0 t1
	t0=${EPOCHREALTIME/./}
	"$@" </dev/null >/dev/null 2>&1 || die "failed: $*"
	t1=${EPOCHREALTIME/./}
	echo $((t1 - t0))
}

# latency - `true` through each way, interleaved, one sample per line in $tmp/lat.ROW.
latency() {
	local i uri="unix://$lab_dir/lab1.sock"
	: >"$tmp/lat.direct"
	: >"$tmp/lat.daemon"
	: >"$tmp/lat.ssh"
	: >"$tmp/lat.local"
	: >"$tmp/lat.sshmux"
	# Warm-up: the page cache, the daemon's session, sshd's first fork.
	for i in 1 2 3; do
		time_once "$vx" "$uri" true >/dev/null
		time_once "$vx" lab1 true >/dev/null
		time_once "${ssh_cmd[@]}" true >/dev/null
	done
	for ((i = 1; i <= runs; i++)); do
		time_once /bin/true >>"$tmp/lat.local"
		time_once "$vx" "$uri" true >>"$tmp/lat.direct"
		time_once "$vx" lab1 true >>"$tmp/lat.daemon"
		((i > ssh_runs)) || time_once "${ssh_cmd[@]}" true >>"$tmp/lat.ssh"
		((i > ssh_runs)) || time_once "${ssh_mux[@]}" true >>"$tmp/lat.sshmux"
		((i % 50)) || printf 'latency: %d of %d runs\n' "$i" "$runs" >&2
	done
}

# bulk - 256 MiB through cat, host->vm (cat >/dev/null in the VM) and vm->host (cat FILE in
# the VM), each way through each path, BULK_RUNS times; samples in $tmp/bulk.ROW.DIR (µs).
bulk() {
	local r row dir uri="unix://$lab_dir/lab1.sock"
	head -c 256M /dev/urandom >"$tmp/big.bin"
	chmod a+r "$tmp/big.bin" "$tmp"
	for row in direct daemon ssh; do
		for dir in up down; do
			: >"$tmp/bulk.$row.$dir"
		done
	done
	for ((r = 1; r <= bulk_runs; r++)); do
		printf 'bulk: run %d of %d\n' "$r" "$bulk_runs" >&2
		bulk_one direct "$vx" "$uri"
		bulk_one daemon "$vx" lab1
		bulk_one ssh "${ssh_cmd[@]}"
	done
}

# bulk_one ROW CMD... - one upload and one download through CMD.
bulk_one() {
	local row="$1" t0
	shift
	t0=${EPOCHREALTIME/./}
	"$@" sh -c 'cat >/dev/null' <"$tmp/big.bin" || die "$row: upload failed"
	echo $((${EPOCHREALTIME/./} - t0)) >>"$tmp/bulk.$row.up"
	t0=${EPOCHREALTIME/./}
	"$@" cat "$tmp/big.bin" </dev/null >/dev/null || die "$row: download failed"
	echo $((${EPOCHREALTIME/./} - t0)) >>"$tmp/bulk.$row.down"
}

# stats FILE - "median p99 min max n" of the µs samples in FILE, in ms.
stats() {
	sort -n "$1" | awk '{ v[NR] = $1 } END {
		n = NR; m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
		i = int(0.99 * n + 0.999999); if (i < 1) i = 1
		printf "%.3f %.3f %.3f %.3f %d\n", m / 1000, v[i] / 1000, v[1] / 1000, v[n] / 1000, n }'
}

# ---------------------------------------------------------------- report

declare -A med p99 mn mx cnt mbs
verdicts=()

# lat_stats ROW - the latency statistics of ROW into the tables above.
lat_stats() {
	local m p a b n
	read -r m p a b n < <(stats "$tmp/lat.$1")
	med[$1]="$m" p99[$1]="$p" mn[$1]="$a" mx[$1]="$b" cnt[$1]="$n"
}

collect() {
	local row dir s
	lat_stats local
	lat_stats sshmux
	for row in direct daemon ssh; do
		lat_stats "$row"
		for dir in up down; do
			s="$(stats "$tmp/bulk.$row.$dir" | awk '{ print $1 }')"
			med[$row.$dir]="$s"
			mbs[$row.$dir]="$(awk -v ms="$s" 'BEGIN { printf "%.0f", 256 * 1048576 / 1e6 / (ms / 1000) }')"
		done
	done
}

# verdict NAME OK TEXT - one target line, kept for the JSON file too.
verdict() {
	local word=MISS
	[ "$2" = 1 ] && word=PASS
	printf '  %-4s  %-44s %s\n' "$word" "$1" "$3"
	verdicts+=("$(jq -nc --arg n "$1" --argjson ok "$([ "$2" = 1 ] && echo true || echo false)" \
		--arg t "$3" '{target: $n, pass: $ok, measured: $t}')")
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a / b }'
}

report() {
	local row label
	printf '\nVMBusify exec benchmark: lab1 (a network namespace, Unix-socket channel), %s CPUs, Linux %s, backend %s\n' \
		"$(nproc)" "$(uname -r)" "${VMBUSIFY_BACKEND:-default}"
	printf 'load average before the run: %s\n\n' "$load_before"
	printf '%-44s %9s %9s %9s %9s %6s\n' "latency of 'true' (ms)" median p99 min max runs
	for row in local direct daemon ssh sshmux; do
		case "$row" in
		local) label="/bin/true on the host (the floor: fork+exec)" ;;
		direct) label="vmbusexec unix://.../lab1.sock true" ;;
		daemon) label="vmbusexec lab1 true (through vmbusifyd)" ;;
		ssh) label="ssh root@lab1 true (socat relay)" ;;
		sshmux) label="  ssh, ControlMaster connection reused (info)" ;;
		esac
		printf '%-44s %9s %9s %9s %9s %6s\n' "$label" "${med[$row]}" "${p99[$row]}" "${mn[$row]}" \
			"${mx[$row]}" "${cnt[$row]}"
	done
	printf '\n%-44s %20s %20s\n' "256 MiB through cat (median of $bulk_runs)" "host->vm" "vm->host"
	for row in direct daemon ssh; do
		case "$row" in
		direct) label="vmbusexec (direct)" ;;
		daemon) label="vmbusexec (through vmbusifyd)" ;;
		ssh) label="ssh (socat relay)" ;;
		esac
		printf '%-44s %8.0f ms %5s MB/s %8.0f ms %5s MB/s\n' "$label" "${med[$row.up]}" \
			"${mbs[$row.up]}" "${med[$row.down]}" "${mbs[$row.down]}"
	done
	printf '\nratios\n'
	for row in direct daemon; do
		printf '  vmbusexec %-7s median %s ms = %sx faster than ssh (%s ms); p99 %s ms = %sx\n' \
			"$row" "${med[$row]}" "$(ratio "${med[ssh]}" "${med[$row]}")" "${med[ssh]}" \
			"${p99[$row]}" "$(ratio "${p99[ssh]}" "${p99[$row]}")"
		printf '  vmbusexec %-7s median = %sx faster than ssh over a reused ControlMaster connection (%s ms)\n' \
			"$row" "$(ratio "${med[sshmux]}" "${med[$row]}")" "${med[sshmux]}"
		printf '  vmbusexec %-7s 256 MiB host->vm %sx, vm->host %sx the speed of ssh\n' "$row" \
			"$(ratio "${med[ssh.up]}" "${med[$row.up]}")" "$(ratio "${med[ssh.down]}" "${med[$row.down]}")"
	done
	printf '\ntargets (issue 3)\n'
	for row in direct daemon; do
		verdict "exec median <= $target_median_ms ms ($row)" \
			"$(awk -v m="${med[$row]}" -v t="$target_median_ms" 'BEGIN { print (m <= t) ? 1 : 0 }')" \
			"${med[$row]} ms"
		verdict "exec >= ${target_ratio}x faster than ssh ($row)" \
			"$(awk -v s="${med[ssh]}" -v m="${med[$row]}" -v t="$target_ratio" 'BEGIN { print (s / m >= t) ? 1 : 0 }')" \
			"$(ratio "${med[ssh]}" "${med[$row]}")x (ssh ${med[ssh]} ms)"
	done
}

write_json() {
	local row key args=(--rawfile lat_local "$tmp/lat.local" --rawfile lat_sshmux "$tmp/lat.sshmux")
	for row in direct daemon ssh; do
		args+=(--rawfile "lat_$row" "$tmp/lat.$row")
		for key in up down; do
			args+=(--rawfile "bulk_${row}_$key" "$tmp/bulk.$row.$key")
		done
	done
	printf '%s\n' "${verdicts[@]}" | jq -s \
		--arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg kernel "$(uname -r)" \
		--argjson cpus "$(nproc)" --arg backend "${VMBUSIFY_BACKEND:-default}" \
		--arg load "$load_before" --argjson runs "$runs" --argjson bulk_runs "$bulk_runs" \
		"${args[@]}" '
		def us: split("\n") | map(select(length > 0) | tonumber);
		def st: sort as $s | ($s | length) as $n
			| {runs: $n, median_ms: ((if $n % 2 == 1 then $s[($n - 1) / 2] else ($s[$n / 2 - 1] + $s[$n / 2]) / 2 end) / 1000),
			   p99_ms: ($s[([((0.99 * $n) | ceil) - 1, 0] | max)] / 1000),
			   min_ms: ($s[0] / 1000), max_ms: ($s[-1] / 1000)};
		def bulk($a; $b): {host_to_vm: ($a | us | st), vm_to_host: ($b | us | st), bytes: 268435456};
		{date: $date, kernel: $kernel, cpus: $cpus, backend: $backend, load_before: $load,
		 latency: {local: ($lat_local | us | st), direct: ($lat_direct | us | st), daemon: ($lat_daemon | us | st), ssh: ($lat_ssh | us | st),
		          ssh_controlmaster: ($lat_sshmux | us | st)},
		 bulk: {direct: bulk($bulk_direct_up; $bulk_direct_down), daemon: bulk($bulk_daemon_up; $bulk_daemon_down),
		        ssh: bulk($bulk_ssh_up; $bulk_ssh_down)},
		 targets: ., samples_us: {direct: ($lat_direct | us), daemon: ($lat_daemon | us), ssh: ($lat_ssh | us)}}' \
		>"$json_out"
	printf '\nsamples, statistics and verdicts: %s\n' "$json_out"
}

main() {
	parse_args "$@"
	check_tools
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	tmp="$(mktemp -d /tmp/vbx-exec-bench.XXXXXX)"
	chmod 755 "$tmp"
	load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
	lab_start
	ssh_start
	latency
	bulk
	collect
	report
	write_json
}

main "$@"
