#!/usr/bin/env bash
# bench/cp.sh - the cp benchmark (issue 3): in one run on the lab, each way (host->lab1 and
# lab1->host), a big file (1 GiB) and a tree of small files (10,000 of 1-16 KiB) copied with
# `vmbusify cp` (through vmbusifyd and straight to lab1's channel), with scp and with
# `tar c | ssh lab1 tar x` (and back) to an sshd inside lab1 reached over a socat relay on a Unix
# socket (the way `hvc ssh` reaches a Hyper-V VM), beside the raw channel throughput of
# `vmbusify bench` (one stream, each way) and plain `cp` on the host (no VM: what the disk
# allows). Median of RUNS runs, interleaved; prints a table, the ratios cp/raw, cp/scp,
# cp/tar+ssh and the issue's targets as PASS or MISS (without failing).
# A benchmark, not a test: never run by CTest.
#
# Usage: bench/cp.sh [BUILD_DIR] [-n RUNS] [--mb MIB] [--files N] [--json FILE]
#   BUILD_DIR  a built tree (default: build/release in the repository); nothing is built here
#   -n         runs of every row (default 3, or $VB_CP_BENCH_RUNS)
#   --mb       size of the big file in MiB (default 1024, or $VB_CP_BENCH_MB)
#   --files    files in the tree (default 10000, or $VB_CP_BENCH_FILES)
#   --json     where to write the samples, the medians and the verdicts (default ./cp.json)
# Needs: root (the lab's network namespaces), the lab's tools, ssh, scp, sshd, ssh-keygen,
# socat, tar, python3, jq. Brings the lab up with one VM and takes it down at the end; if another
# lab is up (the namespace names are fixed), waits for it (every 20 s, at most 10 min).
# Exit codes: 0 the run completed (whatever the verdicts), 1 a measurement failed, 2 usage,
# 3 another lab stayed up.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
build="$repo/build/release"
runs="${VB_CP_BENCH_RUNS:-3}"
big_mb="${VB_CP_BENCH_MB:-1024}"
nfiles="${VB_CP_BENCH_FILES:-10000}"
json_out="$PWD/cp.json"

# Issue 3's targets.
target_raw=0.70  # big file: cp >= 70 % of the raw channel
target_scp_big=3 # big file: cp >= 3x scp
target_scp_small=5 # small files: cp >= 5x scp

lab_dir=/run/vmbusify/lab
tmp=""
lab_started=0
ssh_cmd=()
scp_cmd=()
vb=""
uri=""
spawned=()
tree_bytes=0
load_before=""

# The rows, in the order of the table; raw rows come from `vmbusify bench`.
readonly TOOLS="cp cpdirect scp tarssh local"
readonly SETS="big tree"
readonly WAYS="up down"

die() {
	printf 'vmbusify: cp bench: %s\n' "$1" >&2
	exit "${2:-1}"
}

usage() {
	if [ "$1" = 0 ]; then
		sed -n '12,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
	else
		sed -n '12,17s/^# \{0,1\}//p' "${BASH_SOURCE[0]}" >&2
	fi
	exit "$1"
}

parse_args() {
	while [ $# -gt 0 ]; do
		case "$1" in
		-n) runs="${2:?}"; shift ;;
		--mb) big_mb="${2:?}"; shift ;;
		--files) nfiles="${2:?}"; shift ;;
		--json) json_out="${2:?}"; shift ;;
		-h | --help) usage 0 ;;
		-*) usage 2 ;;
		*) build="$1" ;;
		esac
		shift
	done
	[[ "$runs" =~ ^[1-9][0-9]*$ ]] || die "-n wants a positive count" 2
	[[ "$big_mb" =~ ^[1-9][0-9]*$ ]] || die "--mb wants a positive size in MiB" 2
	[[ "$nfiles" =~ ^[1-9][0-9]*$ ]] || die "--files wants a positive count" 2
	case "$json_out" in /*) ;; *) json_out="$PWD/$json_out" ;; esac
}

check_tools() {
	local f
	[ "$(id -u)" -eq 0 ] || die "needs root (the lab's network namespaces)" 2
	build="$(cd "$build" 2>/dev/null && pwd)" || die "no build directory (build first, see bench/README.md)" 2
	for f in vmbusify vmbusify-agent vmbusifyd; do
		[ -x "$build/$f" ] || die "$build/$f is missing (build first, see bench/README.md)" 2
	done
	for f in ssh scp ssh-keygen socat tar python3 jq ip /usr/sbin/sshd; do
		command -v "$f" >/dev/null || die "$f is needed (scripts/deps.sh)" 2
	done
	vb="$build/vmbusify"
}

# ---------------------------------------------------------------- the lab and sshd

lab() {
	VB_LAB_DIR="$lab_dir" "$vb" lab "$@"
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
		echo "cp bench: another lab is up; waiting for it to go down" >&2
		sleep 20
	done
	lab_started=1
	lab up --vms 1 >/dev/null || die "vmbusify lab up --vms 1 failed"
	export VMBUSIFY_CONTROL="$lab_dir/control.sock"
	uri="unix://$lab_dir/lab1.sock"
	for _ in $(seq 100); do
		"$vb" ls --json 2>/dev/null | jq -e '.vms[0].state == "up"' >/dev/null && return 0
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

# ssh_start - sshd in lab1 on 127.0.0.1:22 (OpenSSH's defaults, Debian's sftp-server as a
# Debian sshd_config has it) behind a socat relay on a Unix socket, as bench/exec.sh.
ssh_start() {
	local sock="$lab_dir/lab1-ssh.sock" sftp=/usr/lib/openssh/sftp-server proxy
	[ -x "$sftp" ] || sftp=internal-sftp
	mkdir -p /run/sshd
	ssh-keygen -q -t ed25519 -N '' -f "$tmp/hostkey"
	ssh-keygen -q -t ed25519 -N '' -f "$tmp/key"
	install -m 600 "$tmp/key.pub" "$tmp/authorized_keys"
	# bash started by sshd reads ~/.bashrc, which on a developer's machine may run slow things a
	# VM's would not (bench/README.md, the exec benchmark): sshd sees an empty one.
	spawn sshd sh -c 'if [ -f /root/.bashrc ]; then mount --bind /dev/null /root/.bashrc; fi; exec "$@"' \
		sshd /usr/sbin/sshd -D -e -f /dev/null -p 22 -o ListenAddress=127.0.0.1 \
		-h "$tmp/hostkey" -o PidFile="$tmp/sshd.pid" -o AuthorizedKeysFile="$tmp/authorized_keys" \
		-o StrictModes=no -o "Subsystem=sftp $sftp"
	# nodelay: without it, Nagle on the relay's TCP leg meets sshd's delayed ACKs and scp of
	# small files stalls (13.8 s instead of 0.6 s for 500 files here): a relay artefact that
	# would flatter cp, and that no hypervisor socket has.
	spawn relay socat "UNIX-LISTEN:$sock,fork" TCP:127.0.0.1:22,nodelay
	proxy="ProxyCommand=socat - UNIX-CONNECT:$sock"
	local opts=(-F /dev/null -o "$proxy" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
		-o LogLevel=ERROR -i "$tmp/key" -o BatchMode=yes)
	ssh_cmd=(ssh "${opts[@]}" root@lab1)
	scp_cmd=(scp -q "${opts[@]}")
	for _ in $(seq 100); do
		"${ssh_cmd[@]}" true </dev/null >/dev/null 2>&1 && break
		sleep 0.1
	done
	"${ssh_cmd[@]}" true </dev/null >/dev/null 2>&1 \
		|| die "ssh to lab1 over $sock does not work: $(tail -n 3 "$tmp/sshd.log")"
}

# ---------------------------------------------------------------- the data

# make_data - $tmp/src/big.bin (random), $tmp/src/tree: NFILES files of 1-16 KiB of random
# bytes, 100 to a directory.
make_data() {
	mkdir -p "$tmp/src" "$tmp/dst"
	head -c "${big_mb}M" /dev/urandom >"$tmp/src/big.bin"
	python3 - "$tmp/src/tree" "$nfiles" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(3)
pool = os.urandom(1 << 20)
for i in range(n):
    d = os.path.join(root, "d%03d" % (i // 100))
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    size = rnd.randint(1024, 16384)
    off = rnd.randint(0, len(pool) - size)
    with open(os.path.join(d, "f%05d.dat" % i), "wb") as f:
        f.write(pool[off:off + size])
PY
	tree_bytes="$(find "$tmp/src/tree" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')"
	chmod -R a+rX "$tmp"
	sync
}

# ---------------------------------------------------------------- one copy

# copy_cmd TOOL SET WAY DST - print nothing; run the copy of SET one WAY into the empty
# directory DST with TOOL (the source is $tmp/src/NAME; the lab shares this machine's files, so
# lab1:$tmp/src/NAME is the same file seen from the VM).
copy_cmd() {
	local tool="$1" set="$2" way="$3" dst="$4" name=big.bin r=()
	[ "$set" = big ] || { name=tree; r=(-r); }
	case "$tool.$way" in
	cp.up) "$vb" cp -q "${r[@]}" "$tmp/src/$name" "lab1:$dst/" ;;
	cp.down) "$vb" cp -q "${r[@]}" "lab1:$tmp/src/$name" "$dst/" ;;
	cpdirect.up) "$vb" cp -q "${r[@]}" "$tmp/src/$name" "$uri:$dst/" ;;
	cpdirect.down) "$vb" cp -q "${r[@]}" "[$uri]:$tmp/src/$name" "$dst/" ;;
	scp.up) "${scp_cmd[@]}" "${r[@]}" "$tmp/src/$name" "root@lab1:$dst/" ;;
	scp.down) "${scp_cmd[@]}" "${r[@]}" "root@lab1:$tmp/src/$name" "$dst/" ;;
	tarssh.up) tar c -C "$tmp/src" "$name" | "${ssh_cmd[@]}" "tar x -C $dst" ;;
	tarssh.down) "${ssh_cmd[@]}" "tar c -C $tmp/src $name" </dev/null | tar x -C "$dst" ;;
	local.*) cp "${r[@]}" "$tmp/src/$name" "$dst/" ;;
	*) die "no such row: $tool.$way" ;;
	esac
}

# check_copy SET DST FULL - the copy is there: for the big file its size (FULL: and bytes), for
# the tree its file count and bytes (FULL: and every file's bytes).
check_copy() {
	local set="$1" dst="$2" full="$3" n b
	if [ "$set" = big ]; then
		[ "$(stat -c %s "$dst/big.bin" 2>/dev/null)" = $((big_mb * 1048576)) ] || return 1
		[ "$full" = 0 ] || cmp -s "$tmp/src/big.bin" "$dst/big.bin"
	else
		n="$(find "$dst/tree" -type f | wc -l)"
		b="$(find "$dst/tree" -type f -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')"
		[ "$n" = "$nfiles" ] && [ "$b" = "$tree_bytes" ] || return 1
		[ "$full" = 0 ] || diff -r -q "$tmp/src/tree" "$dst/tree" >/dev/null
	fi
}

# measure TOOL SET WAY RUN - one timed copy into a fresh directory (µs appended to
# $tmp/t.TOOL.SET.WAY), checked. The page cache holds the source; dirty pages are written back
# before the clock starts. A big file's copy is removed at once; trees stay until the end: ext4
# without a journal skips inodes freed in the last 60 s when it allocates new ones
# (recently_deleted()), and scanning past 10,000 of them made whichever copy came next pay up to
# four times the time.
measure() {
	local tool="$1" set="$2" way="$3" run="$4" dst t0 t1
	dst="$(mktemp -d "$tmp/dst/XXXXXX")"
	sync
	t0=${EPOCHREALTIME/./}
	copy_cmd "$tool" "$set" "$way" "$dst" >/dev/null 2>"$tmp/err" </dev/null \
		|| die "$tool $set $way failed: $(head -c 300 "$tmp/err")"
	t1=${EPOCHREALTIME/./}
	check_copy "$set" "$dst" "$([ "$run" = 1 ] && echo 1 || echo 0)" \
		|| die "$tool $set $way: the copy in $dst is not the source"
	echo $((t1 - t0)) >>"$tmp/t.$tool.$set.$way"
	[ "$set" != big ] || rm -rf "$dst"
}

# raw RUN - the channel's own throughput, one stream each way, through the daemon and direct
# (MB/s, 10^6 bytes, as vmbusify bench counts).
raw() {
	local via target j
	for via in daemon direct; do
		target=lab1
		[ "$via" = daemon ] || target="$uri"
		j="$("$vb" bench -t 3 --json "$target")" || die "vmbusify bench $target failed"
		jq -r '.tests[] | select(.streams == 1 and .name == "host->vm") | .MBps' <<<"$j" >>"$tmp/raw.$via.up"
		jq -r '.tests[] | select(.streams == 1 and .name == "vm->host") | .MBps' <<<"$j" >>"$tmp/raw.$via.down"
	done
}

run_all() {
	local r tool set way
	for ((r = 1; r <= runs; r++)); do
		printf 'run %d of %d: raw, then cp (daemon, direct), scp, tar+ssh, cp on the host: big file and tree, each way\n' \
			"$r" "$runs" >&2
		raw
		for set in $SETS; do
			for way in $WAYS; do
				for tool in $TOOLS; do
					measure "$tool" "$set" "$way" "$r"
				done
			done
		done
	done
}

# ---------------------------------------------------------------- report

# median FILE - the median of the numbers in FILE.
median() {
	sort -g "$1" | awk '{ v[NR] = $1 } END { printf "%.3f\n", (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

declare -A ms mbs fps raw_mbs
verdicts=()

collect() {
	local tool set way bytes
	for way in $WAYS; do
		raw_mbs[daemon.$way]="$(median "$tmp/raw.daemon.$way")"
		raw_mbs[direct.$way]="$(median "$tmp/raw.direct.$way")"
		for set in $SETS; do
			bytes=$((big_mb * 1048576))
			[ "$set" = big ] || bytes="$tree_bytes"
			for tool in $TOOLS; do
				ms[$tool.$set.$way]="$(awk -v us="$(median "$tmp/t.$tool.$set.$way")" 'BEGIN { printf "%.0f", us / 1000 }')"
				mbs[$tool.$set.$way]="$(awk -v b="$bytes" -v ms="${ms[$tool.$set.$way]}" 'BEGIN { printf "%.0f", b / 1e6 / (ms / 1000) }')"
				fps[$tool.$set.$way]="$(awk -v n="$nfiles" -v ms="${ms[$tool.$set.$way]}" 'BEGIN { printf "%.0f", n / (ms / 1000) }')"
			done
		done
	done
}

ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'
}

# verdict NAME OK TEXT - one target line, kept for the JSON file too.
verdict() {
	local word=MISS
	[ "$2" = 1 ] && word=PASS
	printf '  %-4s  %-46s %s\n' "$word" "$1" "$3"
	verdicts+=("$(jq -nc --arg n "$1" --argjson ok "$([ "$2" = 1 ] && echo true || echo false)" \
		--arg t "$3" '{target: $n, pass: $ok, measured: $t}')")
}

at_least() {
	awk -v a="$1" -v b="$2" 'BEGIN { print (a >= b) ? 1 : 0 }'
}

label() {
	case "$1" in
	cp) echo "vmbusify cp lab1: (through vmbusifyd)" ;;
	cpdirect) echo "vmbusify cp unix://...: (direct)" ;;
	scp) echo "scp (sftp, socat relay)" ;;
	tarssh) echo "tar c | ssh lab1 tar x (socat relay)" ;;
	local) echo "cp on the host, no VM (the disk's floor)" ;;
	esac
}

report() {
	local tool set way via r
	printf '\nVMBusify cp benchmark: lab1 (a network namespace, Unix-socket channel), %s CPUs, Linux %s, backend %s\n' \
		"$(nproc)" "$(uname -r)" "${VMBUSIFY_BACKEND:-default}"
	printf 'load average before the run: %s; median of %d runs; MB = 10^6 bytes\n' "$load_before" "$runs"
	printf 'big file: %d MiB of random bytes; tree: %d files of 1-16 KiB in %d directories, %.1f MB\n\n' \
		"$big_mb" "$nfiles" $(((nfiles + 99) / 100)) "$(awk -v b="$tree_bytes" 'BEGIN { print b / 1e6 }')"
	printf '%-40s %22s %22s\n' "raw channel (vmbusify bench, 1 stream)" "host->vm" "vm->host"
	for via in daemon direct; do
		printf '%-40s %17.0f MB/s %17.0f MB/s\n' "through vmbusifyd / direct: $via" \
			"${raw_mbs[$via.up]}" "${raw_mbs[$via.down]}"
	done
	for set in $SETS; do
		if [ "$set" = big ]; then
			printf '\n%-40s %22s %22s\n' "big file ($big_mb MiB)" "host->vm" "vm->host"
		else
			printf '\n%-40s %22s %22s\n' "tree ($nfiles files)" "host->vm" "vm->host"
		fi
		for tool in $TOOLS; do
			printf '%-40s' "$(label "$tool")"
			for way in $WAYS; do
				if [ "$set" = big ]; then
					printf ' %7s ms %6s MB/s' "${ms[$tool.$set.$way]}" "${mbs[$tool.$set.$way]}"
				else
					printf ' %7s ms %5s file/s' "${ms[$tool.$set.$way]}" "${fps[$tool.$set.$way]}"
				fi
			done
			printf '\n'
		done
	done
	printf '\nratios (host->vm / vm->host)\n'
	for r in cp.daemon cpdirect.direct; do
		tool="${r%.*}" via="${r#*.}"
		printf '  %-9s big file vs raw (%s)        %s / %s\n' "$tool" "$via" \
			"$(ratio "${mbs[$tool.big.up]}" "${raw_mbs[$via.up]}")" "$(ratio "${mbs[$tool.big.down]}" "${raw_mbs[$via.down]}")"
		printf '  %-9s big file vs cp on the host   %s / %s\n' "$tool" \
			"$(ratio "${mbs[$tool.big.up]}" "${mbs[local.big.up]}")" "$(ratio "${mbs[$tool.big.down]}" "${mbs[local.big.down]}")"
		for set in $SETS; do
			printf '  %-9s %-9s %4sx scp, %4sx tar+ssh    / %sx scp, %sx tar+ssh\n' "$tool" "$set" \
				"$(ratio "${ms[scp.$set.up]}" "${ms[$tool.$set.up]}")" "$(ratio "${ms[tarssh.$set.up]}" "${ms[$tool.$set.up]}")" \
				"$(ratio "${ms[scp.$set.down]}" "${ms[$tool.$set.down]}")" "$(ratio "${ms[tarssh.$set.down]}" "${ms[$tool.$set.down]}")"
		done
	done
	printf '\ntargets (issue 3), each way\n'
	for r in cp.daemon cpdirect.direct; do
		tool="${r%.*}" via="${r#*.}"
		for way in $WAYS; do
			verdict "big file >= 70 % of raw ($tool, $way)" \
				"$(at_least "$(ratio "${mbs[$tool.big.$way]}" "${raw_mbs[$via.$way]}")" "$target_raw")" \
				"${mbs[$tool.big.$way]} MB/s = $(ratio "${mbs[$tool.big.$way]}" "${raw_mbs[$via.$way]}") x raw (${raw_mbs[$via.$way]} MB/s)"
			verdict "big file >= ${target_scp_big}x scp ($tool, $way)" \
				"$(at_least "$(ratio "${ms[scp.big.$way]}" "${ms[$tool.big.$way]}")" "$target_scp_big")" \
				"$(ratio "${ms[scp.big.$way]}" "${ms[$tool.big.$way]}")x (scp ${ms[scp.big.$way]} ms, cp ${ms[$tool.big.$way]} ms)"
			verdict "small files >= ${target_scp_small}x scp ($tool, $way)" \
				"$(at_least "$(ratio "${ms[scp.tree.$way]}" "${ms[$tool.tree.$way]}")" "$target_scp_small")" \
				"$(ratio "${ms[scp.tree.$way]}" "${ms[$tool.tree.$way]}")x (scp ${ms[scp.tree.$way]} ms, cp ${ms[$tool.tree.$way]} ms)"
		done
	done
}

write_json() {
	local tool set way args=()
	for way in $WAYS; do
		args+=(--rawfile "raw_daemon_$way" "$tmp/raw.daemon.$way" --rawfile "raw_direct_$way" "$tmp/raw.direct.$way")
		for set in $SETS; do
			for tool in $TOOLS; do
				args+=(--rawfile "${tool}_${set}_$way" "$tmp/t.$tool.$set.$way")
			done
		done
	done
	printf '%s\n' "${verdicts[@]}" | jq -s \
		--arg date "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --arg kernel "$(uname -r)" \
		--argjson cpus "$(nproc)" --arg backend "${VMBUSIFY_BACKEND:-default}" \
		--arg load "$load_before" --argjson runs "$runs" --argjson big_mb "$big_mb" \
		--argjson files "$nfiles" --argjson tree_bytes "$tree_bytes" "${args[@]}" '
		def nums: split("\n") | map(select(length > 0) | tonumber);
		def med: sort as $s | ($s | length) as $n
			| if $n % 2 == 1 then $s[($n - 1) / 2] else ($s[$n / 2 - 1] + $s[$n / 2]) / 2 end;
		def row($u; $d): {host_to_vm: {samples_us: ($u | nums), median_ms: (($u | nums | med) / 1000)},
		                  vm_to_host: {samples_us: ($d | nums), median_ms: (($d | nums | med) / 1000)}};
		{date: $date, kernel: $kernel, cpus: $cpus, backend: $backend, load_before: $load, runs: $runs,
		 big_file_bytes: ($big_mb * 1048576), tree_files: $files, tree_bytes: $tree_bytes,
		 raw_MBps: {daemon: {host_to_vm: ($raw_daemon_up | nums), vm_to_host: ($raw_daemon_down | nums)},
		            direct: {host_to_vm: ($raw_direct_up | nums), vm_to_host: ($raw_direct_down | nums)}},
		 big: {cp: row($cp_big_up; $cp_big_down), cp_direct: row($cpdirect_big_up; $cpdirect_big_down),
		       scp: row($scp_big_up; $scp_big_down), tar_ssh: row($tarssh_big_up; $tarssh_big_down),
		       local_cp: row($local_big_up; $local_big_down)},
		 tree: {cp: row($cp_tree_up; $cp_tree_down), cp_direct: row($cpdirect_tree_up; $cpdirect_tree_down),
		        scp: row($scp_tree_up; $scp_tree_down), tar_ssh: row($tarssh_tree_up; $tarssh_tree_down),
		        local_cp: row($local_tree_up; $local_tree_down)},
		 targets: .}' >"$json_out"
	printf '\nsamples, medians and verdicts: %s\n' "$json_out"
}

main() {
	parse_args "$@"
	check_tools
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	tmp="$(mktemp -d /tmp/vbx-cp-bench.XXXXXX)"
	chmod 755 "$tmp"
	load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
	echo "cp bench: making the data ($big_mb MiB file, $nfiles small files)" >&2
	make_data
	lab_start
	ssh_start
	run_all
	collect
	report
	write_json
}

main "$@"
