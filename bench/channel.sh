#!/usr/bin/env bash
# bench/channel.sh - the channel benchmark (issue 2): in one run over a Unix-socket channel served
# by a real vmbusify-agent, measures side by side the raw socket (vb-rawbench), one and N bulk
# streams through a session (direct and through vmbusifyd), the same raw bytes through a socat
# relay, ping RTT idle and under load, and the memory of an idle session on each side. Every
# measurement runs RUNS times, interleaved, and the median is reported; the issue's targets are
# printed as PASS or MISS without failing the run. A benchmark, not a test: never run by CTest.
#
# Usage: bench/channel.sh [BUILD_DIR] [-t SECONDS] [-r RUNS] [-P STREAMS] [-k SESSIONS]
#                         [--json FILE]
#   BUILD_DIR  a built tree (default: build/release in the repository); nothing is built here
#   -t         seconds per throughput measurement (default 2)
#   -r         runs of everything; the median is reported (default 3)
#   -P         concurrent streams / connections of the "N streams" rows (default 64)
#   -k         idle sessions for the memory figure (default 200)
#   --json     where to write every sample, the medians and the verdicts (default ./channel.json)
# Needs: socat, jq. No root, no namespaces: plain Unix sockets in a mktemp directory.
# Exit codes: 0 the run completed (whatever the verdicts), 1 a measurement failed, 2 usage.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="$here/../build/release"
secs=2
runs=3
streams=64
sessions=200
json_out="$PWD/channel.json"

# Issue 2's targets.
target_bulk_ratio=0.80
target_spread=1.5
target_rtt_p99_ms=2
target_idle_kib=256

tmp=""
pids=()
load_before=""

# die MESSAGE [CODE] - one line on stderr, then exit (1 unless told).
die() {
	printf 'vmbusify: channel bench: %s\n' "$1" >&2
	exit "${2:-1}"
}

# usage CODE - the header's usage text; on stdout for --help, else on stderr.
usage() {
	if [ "$1" = 0 ]; then
		sed -n '9,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
	else
		sed -n '9,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	fi
	exit "$1"
}

# cleanup - stops every process this script started (socat's per-connection children too) and
# removes the temporary directory; runs on every exit path.
cleanup() {
	local pid
	set +e
	for pid in "${pids[@]}"; do
		pkill -TERM -P "$pid" 2>/dev/null
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null
	done
	[ -n "$tmp" ] && rm -rf "$tmp"
}

parse_args() {
	while [ $# -gt 0 ]; do
		case "$1" in
		-t) secs="${2:?}"; shift ;;
		-r) runs="${2:?}"; shift ;;
		-P) streams="${2:?}"; shift ;;
		-k) sessions="${2:?}"; shift ;;
		--json) json_out="${2:?}"; shift ;;
		-h | --help) usage 0 ;;
		-*) usage 2 ;;
		*) build="$1" ;;
		esac
		shift
	done
	[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "-r wants a positive count" 2
	if ! [[ "$streams" =~ ^[0-9]+$ ]] || [ "$streams" -lt 2 ] || [ "$streams" -gt 1024 ]; then
		die "-P wants 2 to 1024" 2
	fi
	[[ "$sessions" =~ ^[1-9][0-9]*$ ]] || die "-k wants a positive count" 2
	[[ "$secs" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "-t wants seconds" 2
	case "$json_out" in /*) ;; *) json_out="$PWD/$json_out" ;; esac
}

check_tools() {
	local f
	build="$(cd "$build" 2>/dev/null && pwd)" || die "no build directory (build first, see bench/README.md)" 2
	for f in vmbusify vmbusify-agent vmbusifyd bench/vb-rawbench bench/vb-idle; do
		[ -x "$build/$f" ] || die "$build/$f is missing (build first, see bench/README.md)" 2
	done
	command -v socat >/dev/null || die "socat is needed (apt-get install socat)" 2
	command -v jq >/dev/null || die "jq is needed (apt-get install jq)" 2
}

# start NAME CMD... - runs CMD in the background, its output in $tmp/NAME.log.
start() {
	local name="$1"
	shift
	"$@" >"$tmp/$name.log" 2>&1 &
	pids+=("$!")
}

# forget PID - drops a process that has been waited for, so that cleanup never signals a reused PID.
forget() {
	local p keep=()
	for p in "${pids[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	pids=("${keep[@]}")
}

# wait_for DESC CMD... - retries CMD for 5 seconds.
wait_for() {
	local desc="$1"
	shift
	for _ in $(seq 50); do
		"$@" 2>/dev/null && return 0
		sleep 0.1
	done
	die "$desc did not come up"
}

vm_up() {
	VMBUSIFY_CONTROL="$tmp/control.sock" "$build/vmbusify" ls --json |
		jq -e '.vms[] | select(.name == "b1" and .state == "up")' >/dev/null
}

# rss_kib PID - the resident set of a process, in KiB.
rss_kib() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# record RUN KEY VALUE - appends one sample.
record() {
	printf '{"run":%s,"key":"%s","value":%s}\n' "$1" "$2" "$3" >>"$tmp/samples.jsonl"
}

# raw_bulk RUN ROW SOCKET - vb-rawbench both ways, 1 and N connections, through SOCKET.
raw_bulk() {
	local run="$1" row="$2" sock="$3" dir key n out
	for n in 1 "$streams"; do
		for dir in send recv; do
			key="$row.$([ "$dir" = send ] && echo h2v || echo v2h).$([ "$n" = 1 ] && echo 1 || echo N)"
			out="$("$build/bench/vb-rawbench" client "unix://$sock" "--$dir" "$secs" \
				--streams "$n" --json)" || die "vb-rawbench $dir $n through $row failed"
			record "$run" "$key" "$(jq '.MBps' <<<"$out")"
			record "$run" "$key.min" "$(jq '.stream_min_MBps' <<<"$out")"
			record "$run" "$key.max" "$(jq '.stream_max_MBps' <<<"$out")"
			record "$run" "$key.spread" \
				"$(jq 'if .stream_min_MBps > 0 then .stream_max_MBps / .stream_min_MBps else 1e9 end' <<<"$out")"
		done
	done
}

raw_rtt() {
	local run="$1" out
	out="$("$build/bench/vb-rawbench" client "unix://$tmp/raw.sock" --rtt "$secs" --json)" ||
		die "vb-rawbench --rtt failed"
	record "$run" raw.rtt_idle.median "$(jq '.median_ms' <<<"$out")"
	record "$run" raw.rtt_idle.p99 "$(jq '.p99_ms' <<<"$out")"
}

# session_bench RUN ROW TARGET - `vmbusify bench --json` and its figures as samples.
session_bench() {
	local run="$1" row="$2" target="$3" out
	out="$(VMBUSIFY_CONTROL="$tmp/control.sock" "$build/vmbusify" bench --json -t "$secs" \
		-P "$streams" "$target")" || die "vmbusify bench $target failed"
	jq -c --argjson run "$run" --arg row "$row" '
		def dir: if .name == "host->vm" then "h2v" else "v2h" end;
		def n: if .streams == 1 then "1" else "N" end;
		[ (.tests[] | ("\($row).\(dir).\(n)") as $k |
			{key: $k, value: .MBps},
			{key: "\($k).min", value: .stream_min_MBps},
			{key: "\($k).max", value: .stream_max_MBps},
			{key: "\($k).spread", value: (if .stream_min_MBps > 0
				then .stream_max_MBps / .stream_min_MBps else 1e9 end)}),
		  {key: "\($row).rtt_idle.median", value: .rtt_idle.median_ms},
		  {key: "\($row).rtt_idle.p99", value: .rtt_idle.p99_ms},
		  {key: "\($row).rtt_loaded.median", value: .rtt_loaded.median_ms},
		  {key: "\($row).rtt_loaded.p99", value: .rtt_loaded.p99_ms} ]
		| .[] | {run: $run} + .' <<<"$out" >>"$tmp/samples.jsonl"
}

# idle_memory RUN - a fresh agent, K idle sessions from vb-idle, both sides' growth per session.
idle_memory() {
	local run="$1" sock="$tmp/idle-$1.sock" agent idle before after line=""
	"$build/vmbusify-agent" --listen "unix://$sock" --log-level warn >"$tmp/idle-agent-$run.log" 2>&1 &
	agent=$!
	pids+=("$agent")
	wait_for "the agent for the memory test" test -S "$sock"
	sleep 0.5
	before="$(rss_kib "$agent")"
	: >"$tmp/idle-$run.out"
	"$build/bench/vb-idle" "unix://$sock" "$sessions" >"$tmp/idle-$run.out" 2>"$tmp/idle-$run.log" &
	idle=$!
	pids+=("$idle")
	for _ in $(seq 300); do
		line="$(head -n 1 "$tmp/idle-$run.out")"
		[ -n "$line" ] && break
		kill -0 "$idle" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$line" ] || die "vb-idle did not open $sessions sessions: $(cat "$tmp/idle-$run.log")"
	sleep 0.5
	after="$(rss_kib "$agent")"
	kill -TERM "$idle" "$agent"
	wait "$idle" "$agent" || true
	forget "$idle"
	forget "$agent"
	record "$run" mem.agent "$(awk -v a="$after" -v b="$before" -v k="$sessions" \
		'BEGIN { printf "%.2f", (a - b) / k }')"
	record "$run" mem.client "$(jq '.kib_per_session' <<<"$line")"
}

# start_services - the raw sink/source, its socat relay, the agent and the daemon.
start_services() {
	start raw "$build/bench/vb-rawbench" serve "unix://$tmp/raw.sock"
	wait_for "vb-rawbench serve" test -S "$tmp/raw.sock"
	start socat socat "UNIX-LISTEN:$tmp/relay.sock,fork" "UNIX-CONNECT:$tmp/raw.sock"
	wait_for "the socat relay" test -S "$tmp/relay.sock"
	start agent "$build/vmbusify-agent" --listen "unix://$tmp/agent.sock" --log-level warn
	wait_for "vmbusify-agent" test -S "$tmp/agent.sock"
	: >"$tmp/empty.conf"
	start daemon "$build/vmbusifyd" --config "$tmp/empty.conf" \
		--control "unix://$tmp/control.sock" --vm "b1=unix://$tmp/agent.sock" --log-level warn \
		--state-dir none
	wait_for "vmbusifyd" test -S "$tmp/control.sock"
	wait_for "the daemon's session to the agent" vm_up
}

run_once() {
	local run="$1"
	printf 'run %d of %d: raw' "$run" "$runs" >&2
	raw_bulk "$run" raw "$tmp/raw.sock"
	raw_rtt "$run"
	printf ', socat' >&2
	raw_bulk "$run" socat "$tmp/relay.sock"
	printf ', session direct' >&2
	session_bench "$run" direct "unix://$tmp/agent.sock"
	printf ', session via vmbusifyd' >&2
	session_bench "$run" daemon b1
	printf ', idle memory\n' >&2
	idle_memory "$run"
}

# The medians of every key, as one JSON object.
medians() {
	jq -s 'group_by(.key) | map({key: .[0].key, value: (map(.value) | sort |
		if length % 2 == 1 then .[length / 2 | floor]
		else (.[length / 2 - 1] + .[length / 2]) / 2 end)}) | from_entries' \
		"$tmp/samples.jsonl" >"$tmp/median.json"
}

# m KEY - a median.
m() {
	jq -r --arg k "$1" '.[$k] // "nan"' "$tmp/median.json"
}

# fmt_gbps MB/s / fmt_x VALUE RAW - numbers for the table.
fmt_gbps() {
	awk -v v="$1" 'BEGIN { printf "%7.2f", v / 1000 }'
}

fmt_x() {
	awk -v v="$1" -v r="$2" 'BEGIN { if (r > 0) printf "%5.2f x", v / r; else printf "    -  " }'
}

fmt_spread() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%5.2f / %-5.2f", a, b }'
}

# bulk_row LABEL ROW N - one table line: both directions and their ratio against raw.
bulk_row() {
	local label="$1" row="$2" n="$3" spread=""
	if [ "$n" = N ]; then
		spread="$(fmt_spread "$(m "$row.h2v.N.spread")" "$(m "$row.v2h.N.spread")")"
	fi
	printf '%-34s %s GB/s %s   %s GB/s %s   %s\n' "$label" \
		"$(fmt_gbps "$(m "$row.h2v.$n")")" "$(fmt_x "$(m "$row.h2v.$n")" "$(m "raw.h2v.$n")")" \
		"$(fmt_gbps "$(m "$row.v2h.$n")")" "$(fmt_x "$(m "$row.v2h.$n")" "$(m "raw.v2h.$n")")" \
		"$spread" | sed 's/ *$//'
}

rtt_row() {
	local label="$1" row="$2" loaded="         -"
	if [ "$row" != raw ]; then
		loaded="$(printf '%.3f / %.3f ms' "$(m "$row.rtt_loaded.median")" "$(m "$row.rtt_loaded.p99")")"
	fi
	printf '%-34s %.3f / %.3f ms      %s\n' "$label" "$(m "$row.rtt_idle.median")" \
		"$(m "$row.rtt_idle.p99")" "$loaded"
}

print_table() {
	local n="$streams"
	printf '\nVMBusify channel benchmark: Unix socket, %s CPUs, Linux %s, %s s per figure, median of %s runs\n' \
		"$(nproc)" "$(uname -r)" "$secs" "$runs"
	printf 'load average before the run: %s (other work on the machine skews every row)\n' "$load_before"
	printf '%-34s %-22s %-22s %s\n' "throughput (GB = 1e9 bytes)" "host->vm" "vm->host" \
		"per-stream max/min"
	bulk_row "raw channel, 1 stream" raw 1
	bulk_row "session direct, 1 stream" direct 1
	bulk_row "session via vmbusifyd, 1 stream" daemon 1
	bulk_row "socat relay, 1 connection" socat 1
	bulk_row "raw channel, $n connections" raw N
	bulk_row "session direct, $n streams" direct N
	bulk_row "session via vmbusifyd, $n streams" daemon N
	bulk_row "socat relay, $n connections" socat N
	printf '%-34s %13s%s %15s%s   (a session is one connection)\n' \
		"session direct, $n vs raw 1 stream" "" \
		"$(fmt_x "$(m direct.h2v.N)" "$(m raw.h2v.1)")" "" "$(fmt_x "$(m direct.v2h.N)" "$(m raw.v2h.1)")"
	printf '\n%-34s %-24s %s\n' "ping RTT (median / p99)" "idle" "under load (1 bulk stream)"
	rtt_row "raw channel (1-byte echo)" raw
	rtt_row "session direct" direct
	rtt_row "session via vmbusifyd" daemon
	printf '\n%-34s agent %.1f KiB, client %.1f KiB (%s sessions)\n' "memory per idle session" \
		"$(m mem.agent)" "$(m mem.client)" "$sessions"
}

# verdict NAME PASS(0/1) TEXT - one target line, also kept for the JSON file.
verdict() {
	local word=MISS
	[ "$2" = 1 ] && word=PASS
	printf '  %-4s  %-40s %s\n' "$word" "$1" "$3"
	jq -nc --arg name "$1" --argjson pass "$([ "$2" = 1 ] && echo true || echo false)" \
		--arg detail "$3" '{name: $name, pass: $pass, detail: $detail}' >>"$tmp/verdicts.jsonl"
}

# holds EXPR - 1 when the awk expression over the medians holds, else 0.
holds() {
	awk "BEGIN { print (($1) ? 1 : 0) }"
}

check_targets() {
	local h v hd vd sh sv p99 p99d ma mc
	h="$(m direct.h2v.1)" v="$(m direct.v2h.1)"
	hd="$(m daemon.h2v.1)" vd="$(m daemon.v2h.1)"
	sh="$(m direct.h2v.N.spread)" sv="$(m direct.v2h.N.spread)"
	p99="$(m direct.rtt_loaded.p99)" p99d="$(m daemon.rtt_loaded.p99)"
	ma="$(m mem.agent)" mc="$(m mem.client)"
	: >"$tmp/verdicts.jsonl"
	printf '\ntargets (issue 2), judged on the direct session; vmbusifyd figures for information\n'
	verdict "one bulk stream >= ${target_bulk_ratio} x raw" \
		"$(holds "$h >= $target_bulk_ratio * $(m raw.h2v.1) && $v >= $target_bulk_ratio * $(m raw.v2h.1)")" \
		"$(printf 'host->vm %s GB/s = %s raw, vm->host %s GB/s = %s raw (vmbusifyd %s, %s)' \
			"$(fmt_gbps "$h" | tr -d ' ')" "$(fmt_x "$h" "$(m raw.h2v.1)" | tr -d ' ')" \
			"$(fmt_gbps "$v" | tr -d ' ')" "$(fmt_x "$v" "$(m raw.v2h.1)" | tr -d ' ')" \
			"$(fmt_x "$hd" "$(m raw.h2v.1)" | tr -d ' ')" "$(fmt_x "$vd" "$(m raw.v2h.1)" | tr -d ' ')")"
	verdict "$streams streams max/min <= $target_spread" \
		"$(holds "$sh <= $target_spread && $sv <= $target_spread")" \
		"$(printf 'host->vm %.2f, vm->host %.2f (vmbusifyd %.2f, %.2f; raw %.2f, %.2f)' "$sh" "$sv" \
			"$(m daemon.h2v.N.spread)" "$(m daemon.v2h.N.spread)" \
			"$(m raw.h2v.N.spread)" "$(m raw.v2h.N.spread)")"
	verdict "p99 ping RTT under load < ${target_rtt_p99_ms} ms" \
		"$(holds "$p99 < $target_rtt_p99_ms")" \
		"$(printf '%.3f ms (vmbusifyd %.3f ms)' "$p99" "$p99d")"
	verdict "idle session <= ${target_idle_kib} KiB each side" \
		"$(holds "$ma <= $target_idle_kib && $mc <= $target_idle_kib")" \
		"$(printf 'agent %.1f KiB, client %.1f KiB' "$ma" "$mc")"
}

write_json() {
	jq -n --slurpfile samples "$tmp/samples.jsonl" --slurpfile verdicts "$tmp/verdicts.jsonl" \
		--slurpfile median "$tmp/median.json" --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
		--arg kernel "$(uname -r)" --argjson cpus "$(nproc)" --arg load "$load_before" \
		--argjson secs "$secs" --argjson runs "$runs" --argjson streams "$streams" --argjson sessions "$sessions" \
		--arg commit "$(git -C "$here" describe --always --dirty 2>/dev/null || echo unknown)" \
		'{date: $date, commit: $commit, kernel: $kernel, cpus: $cpus, loadavg_before: $load,
		  config: {seconds: $secs, runs: $runs, streams: $streams, idle_sessions: $sessions},
		  units: {throughput: "MB/s (1e6 bytes)", rtt: "ms", memory: "KiB per session"},
		  median: $median[0], targets: $verdicts, samples: $samples}' >"$json_out"
	printf '\nall samples, medians and verdicts: %s\n' "$json_out"
}

main() {
	parse_args "$@"
	check_tools
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
	tmp="$(mktemp -d /tmp/vb-channel.XXXXXX)"
	: >"$tmp/samples.jsonl"
	start_services
	for run in $(seq "$runs"); do
		run_once "$run"
	done
	medians
	print_table
	check_targets
	write_json
}

main "$@"
