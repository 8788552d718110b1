#!/usr/bin/env bash
# bench/proxy.sh - the proxy benchmark (issue 4): in one run on the lab, from inside lab1 (no
# network) through a SOCKS5 proxy to a sink, a source and an echo server in vbl-ext, compares
#   vmbusify          the agent's port 127.0.0.1:1080, the channel, vmbusifyd dialing out
#   socat+microsocks  socat in lab1 relaying each connection over a Unix socket in the lab's
#                     directory to a socat in vbl-host, which dials microsocks there
#   socat+dante       the same chain to danted
#   direct            no proxy and no VM: a TCP connection from vbl-host to the server (the ceiling)
# Figures: throughput of 1 and of 8 streams each way, connections per second (connect, 1-byte
# echo, close; 16 at a time), time to connect (p50, p99; one at a time), and memory per idle
# proxied connection (RSS growth of the proxy's processes with N idle connections, over N). Median
# of RUNS runs, interleaved; prints a table, the ratios and the issue's targets as PASS or MISS
# (without failing). A benchmark, not a test: never run by CTest.
#
# Usage: bench/proxy.sh [BUILD_DIR] [-n RUNS] [-t SECONDS] [--idle N] [--json FILE]
#   BUILD_DIR  a built tree with bench/vb-pxbench (default: build/release); nothing is built here
#   -n         runs of every figure (default 3, or $VB_PROXY_BENCH_RUNS)
#   -t         seconds per throughput and connection figure (default 3, or $VB_PROXY_BENCH_SECONDS)
#   --idle     idle connections for the memory figure (default 1000, or $VB_PROXY_BENCH_IDLE)
#   --json     where to write the samples, the medians and the verdicts (default ./proxy.json)
# Needs: root (the lab's network namespaces), the lab's tools, socat, microsocks, danted, jq.
# Brings the lab up with one VM and takes it down at the end; if another lab is up (the namespace
# names are fixed), waits for it (every 20 s, at most 10 min).
# Exit codes: 0 the run completed (whatever the verdicts), 1 a measurement failed, 2 usage,
# 3 another lab stayed up.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="$repo/build/release"
runs="${VB_PROXY_BENCH_RUNS:-3}"
secs="${VB_PROXY_BENCH_SECONDS:-3}"
nidle="${VB_PROXY_BENCH_IDLE:-1000}"
json_out="$PWD/proxy.json"

# Issue 4's targets.
readonly TARGET_MICROSOCKS=2  # throughput >= 2x socat+microsocks
readonly TARGET_DANTE=1.2     # throughput >= 1.2x socat+dante
readonly TARGET_CONN=10       # connections per second >= 10x each socat chain
readonly TARGET_IDLE_KIB=32   # user-space memory per idle proxied connection

readonly EXT=198.51.100.80
readonly PORT_SINK=9000 PORT_SOURCE=9001 PORT_ECHO=9002 # vb-pxbench serve
readonly PORT_MICROSOCKS=1081 PORT_DANTE=1082           # in vbl-host
readonly PORT_RELAY_MS=1090 PORT_RELAY_DANTE=1091       # socat in lab1
readonly PATHS="vmbusify microsocks dante direct"
readonly BULK="up1 down1 up8 down8"
readonly CONC=16

lab_dir=/run/vmbusify/lab
lab_sh="$repo/scripts/lab.sh"
tmp=""
lab_started=0
px=""
vb=""
load_before=""

die() {
	printf 'vmbusify: proxy bench: %s\n' "$1" >&2
	exit "${2:-1}"
}

usage() {
	if [ "$1" = 0 ]; then
		sed -n '15,20s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
	else
		sed -n '15,20s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	fi
	exit "$1"
}

parse_args() {
	while [ $# -gt 0 ]; do
		case "$1" in
		-n) runs="${2:?}"; shift ;;
		-t) secs="${2:?}"; shift ;;
		--idle) nidle="${2:?}"; shift ;;
		--json) json_out="${2:?}"; shift ;;
		-h | --help) usage 0 ;;
		-*) usage 2 ;;
		*) build="$1" ;;
		esac
		shift
	done
	[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "-n wants a positive count" 2
	[[ "$secs" =~ ^[1-9][0-9]*$ ]] || die "-t wants a positive number of seconds" 2
	[[ "$nidle" =~ ^[1-9][0-9]*$ ]] || die "--idle wants a positive count" 2
	case "$json_out" in /*) ;; *) json_out="$PWD/$json_out" ;; esac
}

check_tools() {
	local f
	[ "$(id -u)" -eq 0 ] || die "needs root (the lab's network namespaces)" 2
	build="$(cd "$build" 2>/dev/null && pwd)" || die "no build directory (build first, see bench/README.md)" 2
	for f in vmbusify vmbusify-agent vmbusifyd bench/vb-pxbench; do
		[ -x "$build/$f" ] || die "$build/$f is missing (build first, see bench/README.md)" 2
	done
	for f in socat microsocks danted jq ip ss; do
		command -v "$f" >/dev/null || die "$f is needed (scripts/deps.sh)" 2
	done
	vb="$build/vmbusify"
	px="$build/bench/vb-pxbench"
}

# ---------------------------------------------------------------- the lab and the proxies

lab() {
	VB_LAB_DIR="$lab_dir" VB_BIN_DIR="$build" bash "$lab_sh" "$@"
}

lab_is_free() {
	local rc=0
	lab status >/dev/null 2>&1 || rc=$?
	[ "$rc" -eq 3 ] && ! ip netns list 2>/dev/null | grep -q '^vbl-'
}

# cleanup - the lab goes down with everything started in it, and the scratch directory goes;
# runs on every exit path.
cleanup() {
	set +e
	[ -n "$tmp" ] && [ -n "${idle_fd:-}" ] && exec {idle_fd}>&-
	[ "$lab_started" = 1 ] && lab down >/dev/null 2>&1
	[ -n "$tmp" ] && [ "${VB_PROXY_BENCH_KEEP:-0}" != 1 ] && rm -rf "$tmp"
}

# The daemon's limits are raised past anything measured here: the rate limit (200/s by default)
# would be the connection figure otherwise. The egress policy is the default (allow, but the
# host's own loopback and link-local).
write_daemon_config() {
	cat >"$tmp/vmbusifyd.conf" <<-CONF
		[proxy]
		max-connections = 1048576
		connect-rate = 1000000/s burst 2000000
	CONF
}

lab_start() {
	local deadline=$((SECONDS + 600))
	until lab_is_free; do
		[ $SECONDS -lt $deadline ] || die "another lab stayed up for 10 min (one lab per machine)" 3
		echo "proxy bench: another lab is up; waiting for it to go down" >&2
		sleep 20
	done
	load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
	lab_started=1
	VB_LAB_DAEMON_CONFIG="$tmp/vmbusifyd.conf" lab up --vms 1 >/dev/null || die "lab.sh up --vms 1 failed"
	export VMBUSIFY_CONTROL="$lab_dir/control.sock"
	for _ in $(seq 100); do
		"$vb" ls --json 2>/dev/null | jq -e '.vms[0].state == "up"' >/dev/null && return 0
		sleep 0.1
	done
	die "lab1 did not come up in the daemon"
}

# spawn NAME NETNS CMD... - run CMD in NETNS as the lab runs its processes (own session,
# VBL_OWNER marks it as the lab's, so that `lab down` ends it).
spawn() {
	local name="$1" ns="$2"
	shift 2
	VBL_OWNER="$lab_dir" setsid ip netns exec "$ns" "$@" </dev/null >>"$tmp/$name.log" 2>&1 &
}

listening() {
	[ -n "$(ip netns exec "$1" ss -ltnH "sport = :$2")" ]
}

wait_listening() {
	for _ in $(seq 100); do
		listening "$1" "$2" && return 0
		sleep 0.1
	done
	die "nothing listens on $2 in $1 ($3): $(tail -n 3 "$tmp/$3.log" 2>/dev/null)"
}

# Connections per second open and close thousands of connections: TIME_WAIT must not run the
# ports out. Per-namespace settings, inside the lab only.
tune_namespaces() {
	local ns
	for ns in vbl-lab1 vbl-host vbl-ext; do
		ip netns exec "$ns" sysctl -qw net.ipv4.tcp_tw_reuse=1 "net.ipv4.ip_local_port_range=1024 65000" \
			net.core.somaxconn=4096
	done
}

start_servers() {
	spawn servers vbl-ext "$px" serve "$EXT" "$PORT_SINK"
	wait_listening vbl-ext "$PORT_ECHO" servers
	spawn microsocks vbl-host microsocks -i 127.0.0.1 -p "$PORT_MICROSOCKS"
	cat >"$tmp/danted.conf" <<-CONF
		logoutput: stderr
		internal: 127.0.0.1 port = $PORT_DANTE
		external: vbl-h0
		clientmethod: none
		socksmethod: none
		user.privileged: root
		user.unprivileged: nobody
		client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
		socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
	CONF
	spawn danted vbl-host danted -f "$tmp/danted.conf" -p "$tmp/danted.pid"
	# The relay a user would build: socat per connection on each side of a Unix socket (the lab's
	# channel), TCP_NODELAY on its TCP legs so that Nagle does not stall the small messages.
	local chain name relay port
	for chain in ms:$PORT_RELAY_MS:$PORT_MICROSOCKS dante:$PORT_RELAY_DANTE:$PORT_DANTE; do
		IFS=: read -r name relay port <<<"$chain"
		spawn "relay-$name-host" vbl-host socat "UNIX-LISTEN:$lab_dir/px-$name.sock,fork" \
			"TCP:127.0.0.1:$port,nodelay"
		spawn "relay-$name-vm" vbl-lab1 socat \
			"TCP-LISTEN:$relay,bind=127.0.0.1,fork,reuseaddr,nodelay,backlog=4096" \
			"UNIX-CONNECT:$lab_dir/px-$name.sock"
	done
	wait_listening vbl-host "$PORT_MICROSOCKS" microsocks
	wait_listening vbl-host "$PORT_DANTE" danted
	wait_listening vbl-lab1 "$PORT_RELAY_MS" relay-ms-vm
	wait_listening vbl-lab1 "$PORT_RELAY_DANTE" relay-dante-vm
	wait_listening vbl-lab1 1080 lab1
}

# ---------------------------------------------------------------- one figure

# client PATH ARGS... - vb-pxbench for PATH: from lab1 through its proxy, or from vbl-host
# straight to the server.
client() {
	local path="$1" mode="$2" port="$3"
	shift 3
	case "$path" in
	vmbusify) ip netns exec vbl-lab1 "$px" "$mode" "$EXT:$port" --socks 127.0.0.1:1080 "$@" ;;
	microsocks) ip netns exec vbl-lab1 "$px" "$mode" "$EXT:$port" --socks "127.0.0.1:$PORT_RELAY_MS" "$@" ;;
	dante) ip netns exec vbl-lab1 "$px" "$mode" "$EXT:$port" --socks "127.0.0.1:$PORT_RELAY_DANTE" "$@" ;;
	direct) ip netns exec vbl-host "$px" "$mode" "$EXT:$port" "$@" ;;
	esac
}

# settle - wait until no connection to the servers is left (the chains' socat processes exit,
# the daemon's pumps end), so that one figure does not run in the previous one's tail.
settle() {
	for _ in $(seq 200); do
		[ "$(ip netns exec vbl-ext ss -tnH state established | wc -l)" -eq 0 ] && return 0
		sleep 0.1
	done
	echo "proxy bench: $(ip netns exec vbl-ext ss -tnH state established | wc -l) connections still open at the servers" >&2
}

# measure WHAT CMD... - run a client, once more if it fails (the socat chains now and then
# drop a connection under load: said on stderr, and kept in the JSON file); print its JSON.
measure() {
	local what="$1" j
	shift
	if ! j="$("$@" 2>"$tmp/err")"; then
		echo "proxy bench: $what failed ($(cat "$tmp/err") $j); once more" >&2
		echo "{\"failed\":\"$what\"}" >>"$tmp/raw.json"
		settle
		j="$("$@" 2>"$tmp/err")" || die "$what: $(cat "$tmp/err") $j"
	fi
	echo "$j"
}

# bulk PATH FIGURE - one throughput sample (GB/s) into $tmp/s.PATH.FIGURE.
bulk() {
	local path="$1" fig="$2" mode port j
	mode="${fig%?}"
	[ "$mode" = up ] && port=$PORT_SINK || port=$PORT_SOURCE
	j="$(measure "$path $fig" client "$path" "$mode" "$port" -t "$secs" -P "${fig#"$mode"}")"
	echo "$j" >>"$tmp/raw.json"
	jq -r .GBps <<<"$j" >>"$tmp/s.$path.$fig"
	settle
}

# conns PATH - connections per second (16 at a time) and time to connect (one at a time).
conns() {
	local path="$1" j
	j="$(measure "$path conn" client "$path" conn "$PORT_ECHO" -t "$secs" -c "$CONC")"
	echo "$j" >>"$tmp/raw.json"
	jq -e '.fails == 0' <<<"$j" >/dev/null || echo "proxy bench: $path: failed connections: $j" >&2
	jq -r .per_s <<<"$j" >>"$tmp/s.$path.conn"
	settle
	j="$(measure "$path conn -c 1" client "$path" conn "$PORT_ECHO" -t "$secs" -c 1)"
	echo "$j" >>"$tmp/raw.json"
	jq -r .connect_p50_ms <<<"$j" >>"$tmp/s.$path.p50"
	jq -r .connect_p99_ms <<<"$j" >>"$tmp/s.$path.p99"
	settle
}

# proc_pids PATH - the processes that carry PATH's connections.
proc_pids() {
	case "$1" in
	vmbusify) cat "$lab_dir/lab1.pid" "$lab_dir/vmbusifyd.pid" ;;
	microsocks) pgrep -f "px-ms\.sock" || true; pgrep -x microsocks || true ;;
	dante) pgrep -f "px-dante\.sock" || true; pgrep -x danted || true ;;
	esac
}

# mem PATH - the summed RSS and PSS (KiB) of PATH's processes.
mem() {
	local p rss=0 pss=0 r s
	for p in $(proc_pids "$1"); do
		r="$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null)" || continue
		s="$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null)" || s=0
		rss=$((rss + ${r:-0}))
		pss=$((pss + ${s:-0}))
	done
	echo "$rss $pss"
}

# respawn NAME NETNS CMD... - restart one of the lab's processes as lab.sh starts them (own
# session, marked as the lab's, PID in DIR/NAME.pid, output appended to DIR/NAME.log).
respawn() {
	local name="$1" ns="$2" pid
	shift 2
	pid="$(cat "$lab_dir/$name.pid")"
	kill -TERM "$pid"
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	rm -f "$lab_dir/$name.pid"
	# shellcheck disable=SC2016
	VBL_OWNER="$lab_dir" setsid bash -c 'echo "$$" >"$1"; shift; exec "$@"' respawn \
		"$lab_dir/$name.pid" ip netns exec "$ns" "$@" </dev/null >>"$lab_dir/$name.log" 2>&1 &
	for _ in $(seq 50); do
		[ -s "$lab_dir/$name.pid" ] && return 0
		sleep 0.1
	done
	die "could not restart $name"
}

# fresh_vmbusify - the agent and the daemon restarted, so that memory freed by the figures
# before cannot absorb the idle connections' own; then one connection, for one-time costs.
fresh_vmbusify() {
	respawn lab1 vbl-lab1 "$build/vmbusify-agent" --listen "unix://$lab_dir/lab1.sock" --log-level info
	respawn vmbusifyd vbl-host "$build/vmbusifyd" --config "$tmp/vmbusifyd.conf" \
		--control "unix://$lab_dir/control.sock" --vm "lab1=unix://$lab_dir/lab1.sock" --log-level info \
		--state-dir "$lab_dir"
	for _ in $(seq 100); do
		"$vb" ls --json 2>/dev/null | jq -e '.vms[0].state == "up"' >/dev/null && break
		sleep 0.1
	done
	wait_listening vbl-lab1 1080 lab1
	client vmbusify idle "$PORT_ECHO" -n 1 </dev/null >/dev/null 2>"$tmp/err" \
		|| die "vmbusify: no connection after the restart: $(cat "$tmp/err")"
	settle
}

# idle PATH - memory per idle connection: N connections through the proxy, each echoing a byte,
# then held while the proxy's processes are measured.
idle() {
	local path="$1" before after pid line
	[ "$path" != direct ] || return 0
	[ "$path" != vmbusify ] || fresh_vmbusify
	before="$(mem "$path")"
	rm -f "$tmp/idle.fifo" "$tmp/idle.out"
	mkfifo "$tmp/idle.fifo"
	client "$path" idle "$PORT_ECHO" -n "$nidle" <"$tmp/idle.fifo" >"$tmp/idle.out" 2>"$tmp/err" &
	pid=$!
	exec {idle_fd}>"$tmp/idle.fifo"
	for _ in $(seq 1200); do
		[ -s "$tmp/idle.out" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	line="$(cat "$tmp/idle.out")"
	[ -n "$line" ] || die "$path: $nidle idle connections did not open: $(cat "$tmp/err")"
	sleep 1 # let the last connections' handshake state go
	after="$(mem "$path")"
	exec {idle_fd}>&-
	idle_fd=""
	wait "$pid" || die "$path idle: $(cat "$tmp/err")"
	awk -v b="${before% *}" -v a="${after% *}" -v n="$nidle" 'BEGIN { printf "%.2f\n", (a - b) / n }' \
		>>"$tmp/s.$path.rss"
	awk -v b="${before#* }" -v a="${after#* }" -v n="$nidle" 'BEGIN { printf "%.2f\n", (a - b) / n }' \
		>>"$tmp/s.$path.pss"
	settle
}

run_all() {
	local r path fig
	for ((r = 1; r <= runs; r++)); do
		printf 'run %d of %d: vmbusify, socat+microsocks, socat+dante, direct: throughput (1, 8 streams, each way), connections, %d idle\n' \
			"$r" "$runs" "$nidle" >&2
		for path in $PATHS; do
			for fig in $BULK; do
				bulk "$path" "$fig"
			done
			conns "$path"
			idle "$path"
		done
	done
}

# ---------------------------------------------------------------- report

# median FILE - the median of the numbers in FILE.
median() {
	sort -g "$1" | awk '{ v[NR] = $1 } END { printf "%.4f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A med
verdicts=()

collect() {
	local path fig
	for path in $PATHS; do
		for fig in $BULK conn p50 p99 rss pss; do
			[ ! -f "$tmp/s.$path.$fig" ] || med[$path.$fig]="$(median "$tmp/s.$path.$fig")"
		done
	done
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }'
}

f2() {
	printf '%.2f' "$1"
}

at_least() {
	awk -v a="$1" -v b="$2" 'BEGIN { print (a >= b) ? 1 : 0 }'
}

# verdict NAME OK TEXT - one target line, kept for the JSON file too.
verdict() {
	local word=MISS
	[ "$2" = 1 ] && word=PASS
	printf '  %-4s  %-52s %s\n' "$word" "$1" "$3"
	verdicts+=("$(jq -nc --arg n "$1" --argjson ok "$([ "$2" = 1 ] && echo true || echo false)" \
		--arg t "$3" '{target: $n, pass: $ok, measured: $t}')")
}

fig_label() {
	case "$1" in
	up1) echo "1 stream, lab1 -> sink (GB/s)" ;;
	down1) echo "1 stream, source -> lab1 (GB/s)" ;;
	up8) echo "8 streams, lab1 -> sink (GB/s)" ;;
	down8) echo "8 streams, source -> lab1 (GB/s)" ;;
	conn) echo "connections/s ($CONC at a time)" ;;
	p50) echo "time to connect p50 (ms, 1 at a time)" ;;
	p99) echo "time to connect p99 (ms, 1 at a time)" ;;
	rss) echo "RSS per idle connection (KiB, N=$nidle)" ;;
	pss) echo "PSS per idle connection (KiB, N=$nidle)" ;;
	esac
}

cell() {
	local v="${med[$1]:-}"
	if [ -z "$v" ]; then
		printf ' %17s' -
	else
		case "$2" in
		bulk) printf ' %17.2f' "$v" ;;
		conn) printf ' %17.0f' "$v" ;;
		*) printf ' %17.2f' "$v" ;;
		esac
	fi
}

report() {
	local fig path kind v ms dn
	printf '\nVMBusify proxy benchmark: lab1 (a network namespace, Unix-socket channel) to vbl-ext, %s CPUs, Linux %s, backend %s\n' \
		"$(nproc)" "$(uname -r)" "${VMBUSIFY_BACKEND:-default}"
	printf 'load average before the run: %s; median of %d runs, %d s per figure; GB = 10^9 bytes\n\n' \
		"$load_before" "$runs" "$secs"
	printf '%-40s %17s %17s %17s %17s\n' "" vmbusify socat+microsocks socat+dante "direct (ceiling)"
	for fig in $BULK conn p50 p99 rss pss; do
		kind=other
		case "$fig" in up* | down*) kind=bulk ;; conn) kind=conn ;; esac
		printf '%-40s' "$(fig_label "$fig")"
		for path in $PATHS; do
			cell "$path.$fig" "$kind"
		done
		printf '\n'
	done
	printf '\nratios: vmbusify / socat+microsocks, / socat+dante, / direct\n'
	for fig in $BULK conn; do
		v="${med[vmbusify.$fig]}"
		printf '  %-38s %6sx %6sx %6sx\n' "$(fig_label "$fig")" "$(ratio "$v" "${med[microsocks.$fig]}")" \
			"$(ratio "$v" "${med[dante.$fig]}")" "$(ratio "$v" "${med[direct.$fig]}")"
	done
	printf '\ntargets (issue 4)\n'
	for fig in $BULK; do
		v="${med[vmbusify.$fig]}" ms="${med[microsocks.$fig]}" dn="${med[dante.$fig]}"
		verdict "throughput >= ${TARGET_MICROSOCKS}x socat+microsocks ($fig)" \
			"$(at_least "$(ratio "$v" "$ms")" "$TARGET_MICROSOCKS")" \
			"$(ratio "$v" "$ms")x ($(f2 "$v") vs $(f2 "$ms") GB/s)"
		verdict "throughput >= ${TARGET_DANTE}x socat+dante ($fig)" \
			"$(at_least "$(ratio "$v" "$dn")" "$TARGET_DANTE")" "$(ratio "$v" "$dn")x ($(f2 "$v") vs $(f2 "$dn") GB/s)"
	done
	v="${med[vmbusify.conn]}"
	for path in microsocks dante; do
		verdict "connections/s >= ${TARGET_CONN}x socat+$path" \
			"$(at_least "$(ratio "$v" "${med[$path.conn]}")" "$TARGET_CONN")" \
			"$(ratio "$v" "${med[$path.conn]}")x ($(printf '%.0f' "$v") vs $(printf '%.0f' "${med[$path.conn]}")/s)"
	done
	verdict "<= $TARGET_IDLE_KIB KiB per idle proxied connection" \
		"$(awk -v a="${med[vmbusify.rss]}" -v b="$TARGET_IDLE_KIB" 'BEGIN { print (a <= b) ? 1 : 0 }')" \
		"$(f2 "${med[vmbusify.rss]}") KiB RSS (agent + vmbusifyd), $(f2 "${med[vmbusify.pss]}") KiB PSS"
}

write_json() {
	local path fig samples=()
	for path in $PATHS; do
		for fig in $BULK conn p50 p99 rss pss; do
			[ -f "$tmp/s.$path.$fig" ] || continue
			samples+=("$(jq -nc --arg p "$path" --arg f "$fig" --arg m "${med[$path.$fig]}" \
				--rawfile s "$tmp/s.$path.$fig" \
				'{path: $p, figure: $f, median: ($m | tonumber), samples: ($s | split("\n") | map(select(. != "") | tonumber))}')")
		done
	done
	{
		printf '%s\n' "${samples[@]}" | jq -sc .
		printf '%s\n' "${verdicts[@]}" | jq -sc .
		jq -sc . "$tmp/raw.json"
	} | jq -s --arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg kernel "$(uname -r)" \
		--arg cpus "$(nproc)" --arg load "$load_before" --argjson runs "$runs" --argjson secs "$secs" \
		--argjson idle "$nidle" --arg backend "${VMBUSIFY_BACKEND:-default}" \
		'{date: $date, kernel: $kernel, cpus: ($cpus | tonumber), load_before: $load,
		  backend: $backend, runs: $runs, seconds: $secs, idle_connections: $idle,
		  figures: .[0], verdicts: .[1], raw: .[2]}' >"$json_out"
	printf '\nsamples, medians and verdicts: %s\n' "$json_out"
}

main() {
	parse_args "$@"
	check_tools
	tmp="$(mktemp -d /tmp/vbl-proxy-bench.XXXXXX)"
	chmod 755 "$tmp"
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	: >"$tmp/raw.json"
	write_daemon_config
	lab_start
	tune_namespaces
	start_servers
	run_all
	collect
	report
	write_json
}

main "$@"
