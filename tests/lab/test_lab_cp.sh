#!/usr/bin/env bash
# vmbusify cp (issue 3): a tree with files of 0 bytes to VB_CP_BIG_MB MiB, odd names, nested and
# empty directories, symbolic links (relative, absolute, dangling, to a directory), modes and
# times goes host -> lab1 and back lab1 -> host into a fresh directory, through the daemon and
# straight to the agent's URI, and comes back identical (SHA-256 of every file, type, mode, size,
# mtime to the nanosecond, link targets; also as seen inside lab1 through vmbusexec); again onto
# the copies; 3000 small files; without -p (modes kept, times not); SRC/. (the contents); several
# sources; a link named as the source (followed without -r, kept with -r); setuid bits; a link
# to a directory already in the target (not followed); eight copies at once. Then: standard
# input to a VM file and a VM file to standard output; the error cases, each one line with its
# exit code; an existing file replaced atomically; a copy interrupted midway (the CLI killed
# with SIGKILL or SIGINT, lab1's agent killed) in both directions leaves no partial file and no
# temporary, and an existing destination keeps its old content; the progress line shows on a
# terminal only.
#
# Interrupting "midway" is made deterministic by running the CLI in short bursts: it starts
# stopped (SIGSTOP) and is let run for a few milliseconds at a time until the copy is seen in
# progress (the receiver holds a partly written temporary, the sender has not read its file to
# the end); it is then stopped while the kill happens.
#
# Usage: tests/lab/test_lab_cp.sh BUILDDIR   (binaries in BUILDDIR)
# Environment: VB_CP_BIG_MB  size of the big file in MiB (default 100; 1024 for the issue's 1 GiB)
# Exit codes: 0 passed, 1 failed, 77 skipped (not root, binaries or tools missing, or another
# lab stayed up for 10 minutes: the lab's namespace names are fixed, one lab per machine).
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VB=""     # the vmbusify binary under test
VX=""     # vmbusexec
TMP=""    # the test's scratch directory (the lab shares the machine's files: lab1:$TMP/x is $TMP/x)
SRC=""    # the tree to copy
BIG=""    # the big file, also in the tree
BIG_MB="${VB_CP_BIG_MB:-100}"
BIG_SHA=""
URI=""    # lab1's channel, for copies that bypass the daemon
RC=0      # the exit status of the last run_cp
CP_PID="" # the CLI run in bursts
MIDWAY="" # how far the interrupted copy had come

# ---------------------------------------------------------------- the lab

# lab_is_free - no lab is up on this machine (in any directory: the names are fixed).
lab_is_free() {
	local rc=0
	"$LAB_SH" status >/dev/null 2>&1 || rc=$?
	[[ $rc -eq 3 ]] && ! ip netns list 2>/dev/null | grep -q '^vbl-'
}

# wait_for_free_lab - another engineer's lab may be up: wait for it to go down (polling every
# 20 s, at most 10 min) rather than take it down.
wait_for_free_lab() {
	local deadline=$((SECONDS + 600))
	until lab_is_free; do
		((SECONDS < deadline)) || skip "another lab stayed up for 10 min (one lab per machine)"
		echo "$LAB_TEST_NAME: another lab is up; waiting for it to go down" >&2
		sleep 20
	done
}

# agent_cmd VM - the agent's command line exactly as lab.sh starts it (scripts/lab.sh, Layout).
agent_cmd() {
	sed -n 's/^bin_dir=//p' "$VB_LAB_DIR/.vmbusify-lab" | sed 's|$|/vmbusify-agent|'
	printf '%s\n' --listen "unix://$(realpath -m "$VB_LAB_DIR")/$1.sock" --log-level info
}

agent_pid() {
	cat "$VB_LAB_DIR/lab1.pid"
}

vm_is_up() {
	"$VB" ls --json | jq -e --arg vm "$1" '.vms[] | select(.name == $vm) | .state == "up"' >/dev/null
}

# kill_agent - SIGKILL lab1's agent and wait until it is gone.
kill_agent() {
	local pid
	pid="$(agent_pid)"
	[[ "$(cat "/proc/$pid/comm")" == vmbusify-agent ]] || fail "lab1.pid ($pid) is not an agent"
	kill -KILL "$pid"
	lab_wait_until 10 not_alive "$pid" || fail "lab1's agent $pid survived SIGKILL"
}

# restart_agent - start lab1's agent again as lab.sh did; the daemon reconnects to it.
restart_agent() {
	local cmd=() pid
	mapfile -t cmd < <(agent_cmd lab1)
	# In a command substitution: the agent is not this shell's job (to report when killed).
	pid="$(lab_respawn lab1 vbl-lab1 "${cmd[@]}")" || fail "could not restart lab1's agent"
	lab_wait_until 15 vm_is_up lab1 || fail "the daemon did not reconnect to lab1's restarted agent"
}

not_alive() {
	! lab_pid_alive "$1"
}

# ---------------------------------------------------------------- the tree and its manifest

# make_tree DIR - the tree the round trips copy.
make_tree() {
	local d="$1" n
	mkdir -p "$d/sub/deeper/deepest" "$d/empty" "$d/private" "$d/names"
	: >"$d/zero"
	printf x >"$d/one"
	head -c 4096 /dev/urandom >"$d/4k"
	# Odd sizes, and sizes on each side of a frame (32 KiB) and a chunk (128 KiB).
	for n in 4095 4097 32767 32768 32769 131071 131072 131073 1000003; do
		head -c "$n" /dev/urandom >"$d/sub/f$n"
	done
	head -c 777777 /dev/urandom >"$d/sub/deeper/deepest/odd"
	: >"$d/sub/deeper/empty-file"
	cp "$BIG" "$d/sub/big"
	printf 'with a space\n' >"$d/names/with space"
	printf 'newline\n' >"$d/names/new"$'\n'"line"
	printf 'utf-8\n' >"$d/names/ünïcödé-文件"
	printf 'dash\n' >"$d/names/-dash"
	printf 'colon\n' >"$d/names/a:b"
	printf 'tab\n' >"$d/names/tab"$'\t'"name"
	printf 'private\n' >"$d/private/key"
	printf '#!/bin/sh\necho run\n' >"$d/run.sh"
	printf 'lib\n' >"$d/lib.so"
	ln -s sub/f4097 "$d/rel-link"
	ln -s /etc/hostname "$d/abs-link"
	ln -s does-not-exist "$d/sub/dangling"
	ln -s sub/deeper "$d/dir-link"
	ln -s "../names/with space" "$d/sub/link with space"
	chmod 0600 "$d/private/key" "$d/zero"
	chmod 0755 "$d/run.sh"
	chmod 0751 "$d/lib.so"
	chmod 0444 "$d/one" "$d/sub/f32768"
	chmod 0700 "$d/private" "$d/sub/deeper"
	chmod 0755 "$d/sub" "$d/empty" "$d/names"
	# Times with nanoseconds, in the past, different for every entry (links too).
	n=0
	while IFS= read -r -d '' f; do
		n=$((n + 1))
		touch -h -d "@$((1500000000 + n * 86413)).$(printf '%09d' $((n * 123456789 % 1000000000)))" "$f"
	done < <(find "$d" -depth -print0)
}

# manifest DIR [notimes] - every entry under DIR (DIR itself as "."), one line each, sorted:
# type, mode, size (files), mtime (ns), SHA-256 (files), path and link target (quoted: any name
# is one line). `notimes` leaves the mtime out.
manifest() {
	local dir="$1" notimes="${2:-}" y m s t l p rec sum
	local -x LC_ALL=C # %q quotes the same whatever the locale (the agent's environment has none)
	local -A sums=()
	# Every file's SHA-256 in one pass (-z: names as they are, whatever they hold).
	while IFS= read -r -d '' rec; do
		sums["${rec:66}"]="${rec:0:64}"
	done < <(cd "$dir" && find . -type f -print0 | xargs -0 -r sha256sum -z)
	while IFS= read -r -d '' y && IFS= read -r -d '' m && IFS= read -r -d '' s \
		&& IFS= read -r -d '' t && IFS= read -r -d '' l && IFS= read -r -d '' p; do
		sum=-
		if [[ "$y" == f ]]; then
			sum="${sums[$p]:-?}"
		else
			s=-
		fi
		[[ -z "$notimes" ]] || t=-
		printf '%s %s %s %s %s %q -> %q\n' "$y" "$m" "$s" "$t" "$sum" "$p" "$l"
	done < <(cd "$dir" && find . -printf '%y\0%m\0%s\0%T@\0%l\0%p\0') | sort
}

# same_tree WHAT WANT_FILE GOT_FILE - pass if both manifests are equal, else fail with the diff.
same_tree() {
	local what="$1" n
	n="$(wc -l <"$2")"
	if cmp -s "$2" "$3"; then
		pass "$what: all $n entries identical (SHA-256, type, mode, size, mtime ns, link targets)"
	else
		fail_soft "$what: the trees differ: $(diff "$2" "$3" | head -n 12 | paste -sd '|')"
	fi
}

# ---------------------------------------------------------------- running cp

RUN_STDIN=/dev/null # what run_cp gives the CLI as standard input

# run_cp NAME ARGS... - `vmbusify cp ARGS` (at most 120 s), stdin $RUN_STDIN, stdout and stderr
# to $TMP/NAME.out and $TMP/NAME.err; sets RC.
run_cp() {
	local name="$1"
	shift
	RC=0
	timeout -k 5 120 "$VB" cp "$@" <"$RUN_STDIN" >"$TMP/$name.out" 2>"$TMP/$name.err" || RC=$?
}

trim() {
	local s="$1"
	s="${s#"${s%%[![:space:]]*}"}"
	echo "${s%"${s##*[![:space:]]}"}"
}

# show NAME - what a run said, for a failure message.
show() {
	printf 'exit %s, stderr "%s"' "$RC" "$(head -c 400 "$TMP/$1.err" | paste -sd '|')"
}

# ok_run NAME - the run exited 0 and said nothing.
ok_run() {
	[[ $RC -eq 0 && ! -s "$TMP/$1.err" ]]
}

# one_line_matching FILE RE - FILE is exactly one line, matching RE.
one_line_matching() {
	[[ $(wc -l <"$1") -eq 1 && "$(cat "$1")" =~ $2 ]]
}

# no_temporaries DIR - nothing named like a receiver's temporary under DIR.
no_temporaries() {
	[[ -z "$(find "$1" -name '.*.vmbusify-*' -print -quit)" ]]
}

# temp_fd PID DIR - print the size of a file PID holds open as a temporary in DIR: an unnamed
# O_TMPFILE ("DIR/#123 (deleted)") or a named ".NAME.vmbusify-XXXXXX".
temp_fd() {
	local fd l
	for fd in /proc/"$1"/fd/*; do
		l="$(readlink "$fd" 2>/dev/null)" || continue
		case "$l" in
		"$2/#"*" (deleted)" | "$2/."*".vmbusify-"*)
			stat -L -c %s "$fd"
			return 0
			;;
		esac
	done
	return 1
}

holds_no_temp() {
	! temp_fd "$1" "$2" >/dev/null
}

# read_pos PID FILE - print the file offset of PID's descriptor open on FILE.
read_pos() {
	local fd
	for fd in /proc/"$1"/fd/*; do
		if [[ "$(readlink "$fd" 2>/dev/null)" == "$2" ]]; then
			awk '/^pos:/ { print $2 }' "/proc/$1/fdinfo/${fd##*/}"
			return 0
		fi
	done
	return 1
}

# all_stopped PID - every thread of PID is stopped (or gone).
all_stopped() {
	local task stat
	for task in /proc/"$1"/task/*/stat; do
		stat="$(cat "$task" 2>/dev/null)" || continue
		stat="${stat##*) }"
		[[ "${stat:0:1}" == [TtZX] ]] || return 1
	done
}

# cp_start_stopped NAME ARGS... - start `vmbusify cp -q ARGS` stopped before it runs (CP_PID);
# output to $TMP/NAME.out and .err.
cp_start_stopped() {
	local name="$1"
	shift
	# shellcheck disable=SC2016
	bash -c 'kill -STOP $$; exec "$@"' cp-stopped "$VB" cp -q "$@" \
		</dev/null >"$TMP/$name.out" 2>"$TMP/$name.err" &
	CP_PID=$!
	lab_wait_until 5 all_stopped "$CP_PID" || fail "$name: the CLI did not stop before running"
}

# run_in_bursts CHECK... - let CP_PID run 5 ms at a time until CHECK holds while it is stopped
# (it stays stopped then); false if the CLI ended first or CHECK never held in 2000 bursts.
run_in_bursts() {
	local i
	for ((i = 0; i < 2000; i++)); do
		kill -CONT "$CP_PID" 2>/dev/null || return 1
		sleep 0.005
		kill -STOP "$CP_PID" 2>/dev/null || return 1
		wait_stopped || return 1
		lab_pid_alive "$CP_PID" || return 1
		"$@" && return 0
	done
	return 1
}

# wait_stopped - CP_PID (just sent SIGSTOP) is stopped; false after 2 s.
wait_stopped() {
	local i
	for ((i = 0; i < 1000; i++)); do
		all_stopped "$CP_PID" && return 0
		sleep 0.002
	done
	return 1
}

# put_midway DIR SRCFILE - the CLI has not read SRCFILE to its end and lab1's agent holds a
# temporary in DIR with some of it.
put_midway() {
	local pos size
	pos="$(read_pos "$CP_PID" "$2")" || return 1
	size="$(temp_fd "$(agent_pid)" "$1")" || return 1
	MIDWAY="the CLI had read $((pos >> 10)) KiB of $BIG_MB MiB, lab1's temporary held $((size >> 10)) KiB"
	((pos < BIG_MB * 1048576 && size > 0))
}

# get_midway DIR - the CLI holds a temporary in DIR with some bytes, less than half the big
# file: what lab1's agent can have sent beyond it (the credit windows) cannot complete it.
get_midway() {
	local size
	size="$(temp_fd "$CP_PID" "$1")" || return 1
	MIDWAY="the CLI's temporary held $((size >> 10)) KiB of $BIG_MB MiB"
	((size > 0 && size < BIG_MB * 524288))
}

# cp_reap - wait for CP_PID; sets RC.
cp_reap() {
	RC=0
	wait "$CP_PID" 2>/dev/null || RC=$?
}

# ---------------------------------------------------------------- round trips

# round_trip WHAT TO FROM DIR - SRC to TO:DIR/vm with -rp, checked on the host and inside lab1,
# then FROM:DIR/vm/src back into the fresh DIR/back, checked again.
round_trip() {
	local what="$1" to="$2" from="$3" dir="$4"
	mkdir -p "$dir/vm" "$dir/back"
	run_cp rt-put -rp "$SRC" "$to:$dir/vm"
	ok_run rt-put || fail_soft "$what: cp -rp SRC $to:$dir/vm: $(show rt-put)"
	manifest "$dir/vm/src" >"$dir/vm.manifest"
	same_tree "$what: host -> lab1 (cp -rp)" "$TMP/src.manifest" "$dir/vm.manifest"
	# The same, as lab1 sees its own files (what a VM with its own disk would show).
	"$VX" lab1 bash -c "$(declare -f manifest); manifest \"\$1\"" manifest "$dir/vm/src" \
		>"$dir/vm-inside.manifest" 2>"$TMP/rt-inside.err" || true
	same_tree "$what: host -> lab1, listed inside lab1 with vmbusexec" "$TMP/src.manifest" \
		"$dir/vm-inside.manifest"
	run_cp rt-get -rp "$from:$dir/vm/src" "$dir/back"
	ok_run rt-get || fail_soft "$what: cp -rp $from:$dir/vm/src $dir/back: $(show rt-get)"
	manifest "$dir/back/src" >"$dir/back.manifest"
	same_tree "$what: lab1 -> host into a fresh directory (cp -rp)" "$TMP/src.manifest" \
		"$dir/back.manifest"
	if no_temporaries "$dir"; then
		pass "$what: no temporaries left"
	else
		fail_soft "$what: temporaries left: $(find "$dir" -name '.*.vmbusify-*' | head -n 3 | paste -sd ' ')"
	fi
}

test_round_trips() {
	round_trip "through the daemon" lab1 lab1 "$TMP/rt-daemon"
	round_trip "direct ($URI)" "$URI" "[$URI]" "$TMP/rt-direct"
	# Again onto the copies: every file, link and directory is there already and is replaced.
	run_cp again-put -rp "$SRC" "lab1:$TMP/rt-daemon/vm"
	run_cp again-get -rp "lab1:$TMP/rt-daemon/vm/src" "$TMP/rt-daemon/back"
	ok_run again-put && ok_run again-get \
		|| fail_soft "cp -rp again onto the copies: put $(show again-put); get $(show again-get)"
	manifest "$TMP/rt-daemon/back/src" >"$TMP/again.manifest"
	same_tree "again onto the existing copies, there and back" "$TMP/src.manifest" "$TMP/again.manifest"
}

# A tree of 3000 small files (0 to 3000 bytes) in 30 directories, there and back.
test_many_files() {
	local dir="$TMP/many" i j body
	printf -v body '%3000s' ''
	for ((i = 0; i < 30; i++)); do
		mkdir -p "$dir/src/d$i"
		for ((j = 0; j < 100; j++)); do
			printf '%s %s' "$i.$j" "${body:0:$(((i * 100 + j) % 2990))}" >"$dir/src/d$i/f$j"
		done
	done
	mkdir -p "$dir/vm" "$dir/back"
	manifest "$dir/src" notimes >"$dir/src.manifest"
	run_cp many-put -r "$dir/src" "lab1:$dir/vm"
	run_cp many-get -r "lab1:$dir/vm/src" "$dir/back"
	ok_run many-put && ok_run many-get \
		|| fail_soft "3000 small files: put $(show many-put); get $(show many-get)"
	manifest "$dir/back/src" notimes >"$dir/back.manifest"
	same_tree "3000 small files in 30 directories, there and back" "$dir/src.manifest" "$dir/back.manifest"
}

# Eight copies of the big file at once through the daemon, four each way.
test_parallel() {
	local dir="$TMP/parallel" i pids=() bad=0 sum
	mkdir -p "$dir"
	for i in 1 2 3 4; do
		timeout 120 "$VB" cp "$BIG" "lab1:$dir/up$i" </dev/null 2>"$dir/up$i.err" &
		pids+=($!)
		timeout 120 "$VB" cp "lab1:$BIG" "$dir/down$i" </dev/null 2>"$dir/down$i.err" &
		pids+=($!)
	done
	for i in "${pids[@]}"; do
		wait "$i" || bad=$((bad + 1))
	done
	for i in 1 2 3 4; do
		for f in "$dir/up$i" "$dir/down$i"; do
			sum="$(sha256sum <"$f" 2>/dev/null)" || true
			[[ "${sum%% *}" == "$BIG_SHA" ]] || bad=$((bad + 1))
		done
	done
	if ((bad == 0)); then
		pass "8 copies of the $BIG_MB MiB file at once through the daemon (4 each way): all identical"
	else
		fail_soft "8 copies at once: $bad failed or differ: $(cat "$dir"/*.err | head -n 4 | paste -sd '|')"
	fi
}

# A directory link already in the target is not followed: the subtree is refused, one line.
test_link_in_target() {
	local dir="$TMP/linkdir" way
	for way in put get; do
		mkdir -p "$dir/$way/elsewhere" "$dir/$way/target/sub"
		ln -s "$dir/$way/elsewhere" "$dir/$way/target/sub/deeper"
		if [[ $way == put ]]; then
			run_cp "linkdir-$way" -r "$SRC/sub" "lab1:$dir/$way/target"
		else
			run_cp "linkdir-$way" -r "lab1:$SRC/sub" "$dir/$way/target"
		fi
		if [[ $RC -eq 1 && -z "$(ls -A "$dir/$way/elsewhere")" && -f "$dir/$way/target/sub/f4095" ]] \
			&& one_line_matching "$TMP/linkdir-$way.err" "/target/sub/deeper: Not a directory$"; then
			pass "$way: a link to a directory already in the target is not followed: exit 1, one line, the rest copied"
		else
			fail_soft "$way: a link to a directory in the target: $(show "linkdir-$way"); written through it: '$(ls -A "$dir/$way/elsewhere" | paste -sd ' ')'"
		fi
	done
}

# Without -p: modes are kept, times are the copy's.
test_without_p() {
	local dir="$TMP/nop" t0 old
	mkdir -p "$dir/vm" "$dir/back"
	t0="$(date +%s)"
	run_cp nop-put -r "$SRC" "lab1:$dir/vm"
	ok_run nop-put || fail_soft "cp -r SRC lab1:...: $(show nop-put)"
	run_cp nop-get -r "lab1:$dir/vm/src" "$dir/back"
	ok_run nop-get || fail_soft "cp -r lab1:... back: $(show nop-get)"
	manifest "$dir/back/src" notimes >"$dir/back.manifest"
	manifest "$SRC" notimes >"$dir/src.manifest"
	same_tree "without -p: there and back" "$dir/src.manifest" "$dir/back.manifest"
	old="$(find "$dir/vm/src" "$dir/back/src" -type f ! -newermt "@$((t0 - 1))" | head -n 3)"
	if [[ -z "$old" ]]; then
		pass "without -p: every file has the time of the copy, not the source's"
	else
		fail_soft "without -p: files kept their source's time: $(paste -sd ' ' <<<"$old")"
	fi
}

# SRC/. copies the directory's contents into the target, and -p gives the target its mode and times.
test_dot_contents() {
	local dir="$TMP/dot"
	mkdir -p "$dir/vm" "$dir/back"
	run_cp dot-put -rp "$SRC/." "lab1:$dir/vm"
	ok_run dot-put || fail_soft "cp -rp SRC/. lab1:DIR: $(show dot-put)"
	run_cp dot-get -rp "lab1:$dir/vm/." "$dir/back"
	ok_run dot-get || fail_soft "cp -rp lab1:DIR/. back: $(show dot-get)"
	manifest "$dir/back" >"$dir/back.manifest"
	same_tree "SRC/. there and back (the contents, into existing directories)" \
		"$TMP/src.manifest" "$dir/back.manifest"
}

# Several sources into a directory, each way; a top-level link with and without -r.
test_several_and_links() {
	local dir="$TMP/multi" ok=1 f
	mkdir -p "$dir/vm" "$dir/back"
	run_cp multi-put -p "$SRC/4k" "$SRC/one" "$SRC/names/-dash" "lab1:$dir/vm/"
	run_cp multi-get -p "lab1:$dir/vm/4k" "lab1:$dir/vm/one" "lab1:$dir/vm/-dash" "$dir/back"
	for f in 4k one; do
		cmp -s "$SRC/$f" "$dir/back/$f" || ok=0
	done
	cmp -s "$SRC/names/-dash" "$dir/back/-dash" || ok=0
	if ((ok)) && ok_run multi-get; then
		pass "several sources into a directory, each way (3 files, one named -dash)"
	else
		fail_soft "several sources into a directory: put $(show multi-put); get $(show multi-get)"
	fi
	# A local name with ':' needs a '/' before it; a name starting with '-' goes after --.
	cd "$SRC/names"
	run_cp colon-put ./a:b "lab1:$dir/vm/"
	run_cp dash-put -- -dash "lab1:$dir/vm/dash2"
	cd - >/dev/null
	if cmp -s "$SRC/names/a:b" "$dir/vm/a:b" && cmp -s "$SRC/names/-dash" "$dir/vm/dash2"; then
		pass "cp ./a:b lab1:DIR/ and cp -- -dash lab1:DIR/dash2"
	else
		fail_soft "cp ./a:b and cp -- -dash: $(show colon-put); $(show dash-put)"
	fi
	# As cp and scp: without -r a link named on the command line is followed; with -r it is a link.
	run_cp link-put "$SRC/rel-link" "lab1:$dir/vm/followed"
	run_cp link-get "lab1:$SRC/rel-link" "$dir/back/followed"
	if ok_run link-get && [[ -f "$dir/vm/followed" && ! -L "$dir/vm/followed" ]] \
		&& cmp -s "$SRC/sub/f4097" "$dir/vm/followed" && cmp -s "$SRC/sub/f4097" "$dir/back/followed"; then
		pass "without -r a link named as the source is followed (its file is copied), each way"
	else
		fail_soft "cp LINK (no -r) does not copy the file the link names: put $(show link-put) $(head -c 200 "$TMP/link-put.err"); get $(show link-get)"
	fi
	run_cp linkr-put -r "$SRC/rel-link" "lab1:$dir/vm/kept"
	if ok_run linkr-put && [[ -L "$dir/vm/kept" && "$(readlink "$dir/vm/kept")" == sub/f4097 ]]; then
		pass "with -r a link named as the source is copied as a link"
	else
		fail_soft "cp -r LINK: $(show linkr-put)"
	fi
}

# setuid/setgid: kept host -> VM with -p only, never taken from a VM.
test_special_bits() {
	local dir="$TMP/suid"
	mkdir -p "$dir/vm" "$dir/back"
	printf 's\n' >"$dir/suid"
	chmod 6755 "$dir/suid"
	run_cp suid-p -p "$dir/suid" "lab1:$dir/vm/p"
	run_cp suid-nop "$dir/suid" "lab1:$dir/vm/nop"
	run_cp suid-get -p "lab1:$dir/vm/p" "$dir/back/p"
	if [[ "$(stat -c %a "$dir/vm/p" "$dir/vm/nop" "$dir/back/p" 2>&1 | paste -sd ' ')" == "6755 755 755" ]]; then
		pass "setuid/setgid: kept in the VM with -p, dropped without; never set on the host from a VM"
	else
		fail_soft "setuid/setgid: modes in the VM -p/no -p and back: $(stat -c %a "$dir/vm/p" "$dir/vm/nop" "$dir/back/p" 2>&1 | paste -sd ' '), expected 6755 755 755"
	fi
}

# ---------------------------------------------------------------- standard input and output

test_stdio() {
	local dir="$TMP/stdio" sum rc=0
	mkdir -p "$dir"
	timeout 120 "$VB" cp - "lab1:$dir/from-stdin" <"$BIG" 2>"$TMP/stdin.err" || rc=$?
	sum="$(sha256sum <"$dir/from-stdin" 2>/dev/null)" || true
	if [[ $rc -eq 0 && "${sum%% *}" == "$BIG_SHA" && "$(stat -c %a "$dir/from-stdin")" == 644 ]]; then
		pass "stdin -> lab1 file: $BIG_MB MiB, same SHA-256, mode 0644"
	else
		fail_soft "cat BIG | cp - lab1:FILE: exit $rc, SHA-256 ${sum%% *}, $(head -c 200 "$TMP/stdin.err")"
	fi
	rc=0
	printf 'piped\n' | timeout 30 "$VB" cp - "$URI:$dir/small-direct" 2>"$TMP/stdin2.err" || rc=$?
	if [[ $rc -eq 0 && "$(cat "$dir/small-direct" 2>/dev/null)" == piped ]]; then
		pass "stdin -> lab1 file, direct to the agent's URI"
	else
		fail_soft "printf piped | cp - $URI:FILE: exit $rc, $(head -c 200 "$TMP/stdin2.err")"
	fi
	rc=0
	timeout 30 "$VB" cp - "lab1:$dir/empty" </dev/null 2>"$TMP/stdin3.err" || rc=$?
	if [[ $rc -eq 0 && -f "$dir/empty" && ! -s "$dir/empty" ]]; then
		pass "empty stdin -> an empty lab1 file"
	else
		fail_soft "cp - lab1:FILE </dev/null: exit $rc, $(head -c 200 "$TMP/stdin3.err")"
	fi
	rc=0
	sum="$(timeout 120 "$VB" cp "lab1:$BIG" - 2>"$TMP/stdout.err" | sha256sum)" || rc=$?
	if [[ $rc -eq 0 && "${sum%% *}" == "$BIG_SHA" && ! -s "$TMP/stdout.err" ]]; then
		pass "lab1 file -> stdout: $BIG_MB MiB, same SHA-256, nothing else on stdout or stderr"
	else
		fail_soft "cp lab1:BIG - | sha256sum: exit $rc, SHA-256 ${sum%% *}, $(head -c 200 "$TMP/stdout.err")"
	fi
	rc=0
	sum="$(timeout 30 "$VB" cp "[$URI]:$SRC/zero" - 2>"$TMP/stdout2.err" | wc -c)" || rc=$?
	if [[ $rc -eq 0 && "$sum" -eq 0 ]]; then
		pass "an empty lab1 file -> stdout, direct: nothing"
	else
		fail_soft "cp [$URI]:zero -: exit $rc, $sum bytes, $(head -c 200 "$TMP/stdout2.err")"
	fi
}

# ---------------------------------------------------------------- errors

# The cases, one a line, fields separated by " | ": name | expected exit | stderr regex (one
# line) | the arguments after `vmbusify cp` (shell words; @T@ is the case's directory, which
# exists and is empty; @SRC@ the tree). After each, @T@ must still be empty.
# shellcheck disable=SC2016
readonly ERRORS='
missing source, host -> VM   | 1 | ^vmbusify: cp: /.*/no-such-file: No such file or directory$ | @T@/no-such-file lab1:@T@/
missing source, VM -> host   | 1 | ^vmbusify: cp: lab1:/.*/no-such-file: No such file or directory$ | lab1:@T@/no-such-file @T@/
directory without -r, host -> VM | 1 | ^vmbusify: cp: /.*/sub: -r not specified; omitting directory$ | @SRC@/sub lab1:@T@/
directory without -r, VM -> host | 1 | ^vmbusify: cp: lab1:/.*/sub: -r not specified; omitting directory$ | lab1:@SRC@/sub @T@/
several sources into a file, host -> VM | 1 | ^vmbusify: cp: lab1:/.*/4k: Not a directory$ | @SRC@/one @SRC@/zero lab1:@SRC@/4k
several sources into a file, VM -> host | 1 | ^vmbusify: cp: /.*/4k: Not a directory$ | lab1:@SRC@/one lab1:@SRC@/zero @SRC@/4k
several sources into a missing name, host -> VM | 1 | ^vmbusify: cp: lab1:/.*/nodir: No such file or directory$ | @SRC@/one @SRC@/zero lab1:@T@/nodir
unknown VM                   | 3 | ^vmbusify: nosuchvm: no VM named .nosuchvm. | @SRC@/one nosuchvm:@T@/
unknown VM, as source        | 3 | ^vmbusify: nosuchvm: no VM named .nosuchvm. | nosuchvm:/etc/hostname @T@/
unreachable channel          | 5 | ^vmbusify: unix:///nonexistent-vbx.sock: .*No such file or directory$ | @SRC@/one unix:///nonexistent-vbx.sock:@T@/
destination in a missing directory, host -> VM | 1 | ^vmbusify: cp: lab1:/.*/nodir/f: No such file or directory$ | @SRC@/one lab1:@T@/nodir/f
destination in a missing directory, VM -> host | 1 | ^vmbusify: cp: /.*/nodir/f: No such file or directory$ | lab1:@SRC@/one @T@/nodir/f
destination in a missing directory, direct | 1 | ^vmbusify: cp: unix:///.*/nodir/f: No such file or directory$ | @SRC@/one @URI@:@T@/nodir/f
missing directory named with a slash, host -> VM | 1 | ^vmbusify: cp: lab1:/.*/newdir/: Not a directory$ | @SRC@/one lab1:@T@/newdir/
missing directory named with a slash, VM -> host | 1 | ^vmbusify: cp: /.*/newdir/: Not a directory$ | lab1:@SRC@/one @T@/newdir/
both sides local             | 2 | ^vmbusify: cp: one side must be in a VM | @SRC@/one @T@/x
two VMs                      | 2 | ^vmbusify: cp: every remote path must be in the same VM | lab1:/etc/hostname lab2:/etc/hostname @T@/
stdout from a directory      | 1 | ^vmbusify: cp: .*standard output takes a single regular file$ | -r lab1:@SRC@/empty -
'

test_errors() {
	local line name want re args extra n=0 vargs=() t
	while IFS= read -r line; do
		[[ -n "$line" ]] || continue
		IFS='|' read -r name want re args extra <<<"$line"
		[[ -n "$args" && -z "$extra" ]] || fail "the error table's line has not 4 fields: $line"
		name="$(trim "$name")" want="$(trim "$want")" re="$(trim "$re")"
		n=$((n + 1))
		t="$TMP/err$n"
		mkdir -p "$t"
		args="${args//@T@/$t}"
		args="${args//@SRC@/$SRC}"
		args="${args//@URI@/$URI}"
		eval "vargs=($args)"
		run_cp "err$n" "${vargs[@]}"
		if [[ $RC -eq $want ]] && one_line_matching "$TMP/err$n.err" "$re" \
			&& [[ -z "$(ls -A "$t")" && ! -s "$TMP/err$n.out" ]]; then
			pass "error: $name: exit $want, '$(cat "$TMP/err$n.err")'"
		else
			fail_soft "error: $name: cp $args: $(show "err$n"), expected exit $want and one line matching $re; left in the target: '$(ls -A "$t" | paste -sd ' ')'"
		fi
	done <<<"$ERRORS"
}

# One source that fails does not stop the others: exit 1, one line, the rest copied.
test_partial_failure() {
	local dir="$TMP/partial"
	mkdir -p "$dir/vm" "$dir/back"
	run_cp partial-put "$SRC/4k" "$dir/missing" "$SRC/one" "lab1:$dir/vm/"
	if [[ $RC -eq 1 ]] && one_line_matching "$TMP/partial-put.err" "^vmbusify: cp: $dir/missing: No such file or directory$" \
		&& cmp -s "$SRC/4k" "$dir/vm/4k" && cmp -s "$SRC/one" "$dir/vm/one"; then
		pass "a missing source among three (host -> VM): exit 1, one line, the other two copied"
	else
		fail_soft "cp 4k missing one lab1:DIR/: $(show partial-put); copied: $(ls -A "$dir/vm" | paste -sd ' ')"
	fi
	run_cp partial-get "lab1:$SRC/4k" "lab1:$dir/missing" "lab1:$SRC/one" "$dir/back/"
	if [[ $RC -eq 1 ]] && one_line_matching "$TMP/partial-get.err" "^vmbusify: cp: lab1:$dir/missing: No such file or directory$" \
		&& cmp -s "$SRC/4k" "$dir/back/4k" && cmp -s "$SRC/one" "$dir/back/one"; then
		pass "a missing source among three (VM -> host): exit 1, one line, the other two copied"
	else
		fail_soft "cp lab1:4k lab1:missing lab1:one DIR/: $(show partial-get); copied: $(ls -A "$dir/back" | paste -sd ' ')"
	fi
}

# ---------------------------------------------------------------- overwriting

# overwrite WHAT NAME TARGET_FILE ARGS... - TARGET_FILE holds "old" (open on fd 3, and hard-linked
# as TARGET_FILE.link); cp ARGS puts the 4k file there: it is replaced by a new file (new inode),
# while the old one stays whole for whoever holds it.
overwrite() {
	local what="$1" name="$2" target="$3" ino old
	shift 3
	printf 'old content\n' >"$target"
	ln "$target" "$target.link"
	ino="$(stat -c %i "$target")"
	exec 3<"$target"
	run_cp "$name" "$@"
	old="$(cat <&3)"
	exec 3<&-
	if ok_run "$name" && cmp -s "$SRC/4k" "$target" && [[ "$(stat -c %i "$target")" != "$ino" ]] \
		&& [[ "$old" == "old content" && "$(cat "$target.link")" == "old content" ]] \
		&& no_temporaries "$(dirname "$target")"; then
		pass "$what: an existing file is replaced whole (a new inode; the old one, open or hard-linked, is untouched)"
	else
		fail_soft "$what: $(show "$name"); content same: $(cmp -s "$SRC/4k" "$target" && echo yes || echo no), inode $ino -> $(stat -c %i "$target"), old file now '$old'/'$(cat "$target.link")'"
	fi
}

test_overwrite() {
	local dir="$TMP/overwrite"
	mkdir -p "$dir"
	overwrite "overwrite host -> VM" ow-put "$dir/put" "$SRC/4k" "lab1:$dir/put"
	overwrite "overwrite VM -> host" ow-get "$dir/get" "lab1:$SRC/4k" "$dir/get"
	overwrite "overwrite host -> VM, direct" ow-direct "$dir/direct" "$SRC/4k" "$URI:$dir/direct"
	RUN_STDIN="$SRC/4k"
	overwrite "overwrite host -> VM, from stdin" ow-stdin "$dir/stdin" - "lab1:$dir/stdin"
	RUN_STDIN=/dev/null
}

# ---------------------------------------------------------------- interrupted copies

# interrupted_ok WHAT DIR NAME OLD - after an interrupted copy into DIR/NAME: NAME does not
# exist (OLD empty) or still holds OLD's content, and DIR holds nothing else.
interrupted_ok() {
	local what="$1" dir="$2" name="$3" old="$4" left
	if [[ -z "$old" && -e "$dir/$name" ]]; then
		fail_soft "$what: the destination $dir/$name exists after the interrupted copy ($(stat -c %s "$dir/$name") bytes)"
	elif [[ -n "$old" ]] && ! cmp -s "$old" "$dir/$name"; then
		fail_soft "$what: the destination no longer holds its old content ($(stat -c %s "$dir/$name" 2>&1))"
	elif ! no_temporaries "$dir"; then
		fail_soft "$what: temporaries left: $(find "$dir" -name '.*.vmbusify-*' | paste -sd ' ')"
	else
		left="$(find "$dir" -mindepth 1 -maxdepth 1 ! -name "$name" -printf "%P ")"
		if [[ -n "$left" ]]; then
			fail_soft "$what: left in the destination directory: $left"
		elif [[ -n "$old" ]]; then
			pass "$what ($MIDWAY): the destination keeps its old content, no temporary is left"
		else
			pass "$what ($MIDWAY): no destination file, no temporary is left"
		fi
	fi
}

# describe WAY VIA OLD - "host -> VM through the daemon, over an existing file"
describe() {
	local d="VM -> host"
	[[ $1 != put ]] || d="host -> VM"
	if [[ $2 == lab1 ]]; then
		d+=" through the daemon"
	else
		d+=" direct"
	fi
	[[ -z $3 ]] || d+=", over an existing file"
	echo "$d"
}

# interrupt_cli WAY HOW VIA OLD - copy the big file (WAY put: host -> lab1, get: lab1 -> host;
# VIA lab1 or the URI) and interrupt the CLI midway with HOW (KILL or INT); with OLD=old the
# destination exists beforehand.
interrupt_cli() {
	local way="$1" how="$2" via="$3" old="$4" dir what name=big oldf=""
	dir="$(mktemp -d "$TMP/int.XXXXXX")"
	what="SIG$how to the CLI midway, $(describe "$way" "$via" "$old")"
	if [[ -n "$old" ]]; then
		printf 'the old content\n' >"$dir/$name"
		oldf="$TMP/old-content"
		cp "$dir/$name" "$oldf"
	fi
	if [[ $way == put ]]; then
		cp_start_stopped int-cli "$BIG" "$via:$dir/$name"
		run_in_bursts put_midway "$dir" "$BIG" \
			|| { kill -KILL "$CP_PID" 2>/dev/null; cp_reap; fail "$what: could not catch the copy midway ($(show int-cli))"; }
	else
		cp_start_stopped int-cli "$via:$BIG" "$dir/$name"
		run_in_bursts get_midway "$dir" \
			|| { kill -KILL "$CP_PID" 2>/dev/null; cp_reap; fail "$what: could not catch the copy midway ($(show int-cli))"; }
	fi
	kill "-$how" "$CP_PID"
	# SIGKILL needs no CONT, and bash may have reaped the process already: no error then.
	kill -CONT "$CP_PID" 2>/dev/null || true
	cp_reap
	if [[ $how == KILL && $RC -ne 137 ]] || [[ $how == INT && $RC -ne 130 ]]; then
		fail_soft "$what: the CLI exited $RC: $(show int-cli)"
	fi
	# The agent learns of it from the reset stream (or the closed session) and drops its file.
	lab_wait_until 10 holds_no_temp "$(agent_pid)" "$dir" \
		|| fail_soft "$what: 10 s later lab1's agent still holds a temporary in $dir"
	interrupted_ok "$what" "$dir" "$name" "$oldf"
}

# interrupt_agent WAY VIA OLD - copy the big file and kill lab1's agent midway: the CLI exits 5
# with one line; no partial file, no temporary; the agent is restarted.
interrupt_agent() {
	local way="$1" via="$2" old="$3" dir what name=big oldf="" re
	dir="$(mktemp -d "$TMP/int.XXXXXX")"
	what="lab1's agent killed midway, $(describe "$way" "$via" "$old")"
	if [[ -n "$old" ]]; then
		printf 'the old content\n' >"$dir/$name"
		oldf="$TMP/old-content"
		cp "$dir/$name" "$oldf"
	fi
	if [[ $way == put ]]; then
		cp_start_stopped int-agent "$BIG" "$via:$dir/$name"
		run_in_bursts put_midway "$dir" "$BIG" \
			|| { kill -KILL "$CP_PID" 2>/dev/null; cp_reap; fail "$what: could not catch the copy midway ($(show int-agent))"; }
	else
		cp_start_stopped int-agent "$via:$BIG" "$dir/$name"
		run_in_bursts get_midway "$dir" \
			|| { kill -KILL "$CP_PID" 2>/dev/null; cp_reap; fail "$what: could not catch the copy midway ($(show int-agent))"; }
	fi
	kill_agent
	kill -CONT "$CP_PID"
	cp_reap
	re="^vmbusify: cp: $via: .+$"
	if [[ $RC -eq 5 ]] && one_line_matching "$TMP/int-agent.err" "$re"; then
		pass "$what: the CLI exits 5 saying '$(cat "$TMP/int-agent.err")'"
	else
		fail_soft "$what: $(show int-agent), expected exit 5 and one line 'vmbusify: cp: $via: ...'"
	fi
	interrupted_ok "$what" "$dir" "$name" "$oldf"
	restart_agent
}

test_interrupted() {
	interrupt_cli put KILL lab1 ""
	interrupt_cli put KILL "$URI" old
	interrupt_cli get KILL lab1 old
	interrupt_cli get KILL "$URI" ""
	interrupt_cli put INT lab1 old
	interrupt_cli get INT lab1 ""
	interrupt_agent put lab1 ""
	interrupt_agent put "$URI" old
	interrupt_agent get lab1 old
	interrupt_agent get "$URI" ""
	# The copy works again afterwards, through the daemon and directly.
	mkdir -p "$TMP/after"
	run_cp after -p "$BIG" "lab1:$TMP/after/big"
	if ok_run after && cmp -s "$BIG" "$TMP/after/big"; then
		pass "after the interruptions, a copy of the big file to the restarted agent works"
	else
		fail_soft "a copy after the interruptions: $(show after)"
	fi
}

# ---------------------------------------------------------------- progress

# in_tty OUT CMD - run the shell command CMD on a terminal (script(1)); its output in OUT.
in_tty() {
	timeout -k 5 60 script -qfec "$2" /dev/null </dev/null >"$1" 2>&1 || true
}

test_progress() {
	local dir="$TMP/progress" feed
	mkdir -p "$dir"
	# stdin that arrives over a second: the size is unknown, the line shows bytes and rate.
	feed="{ head -c 4M /dev/zero; sleep 1; head -c 4M /dev/zero; }"
	in_tty "$dir/put.tty" "$feed | $VB cp - lab1:$dir/put"
	if grep -qaE $'\r''  [0-9.]+ (B|KiB|MiB) +[0-9.]+ (B|KiB|MiB|GiB)/s' "$dir/put.tty" \
		&& [[ "$(tail -c 4 "$dir/put.tty" | od -An -c | tr -d ' \n')" == '\r033[K' ]]; then
		pass "progress on a terminal, host -> VM from a pipe: bytes and rate ('$(tr '\r' '\n' <"$dir/put.tty" | grep -a MiB | tail -n 1 | tr -d '\033' | sed 's/\[K//')'), cleared at the end"
	else
		fail_soft "no progress line (bytes, rate, cleared at the end) on a terminal: $(od -c "$dir/put.tty" | head -n 5 | paste -sd ' ')"
	fi
	# A download into a pipe that is read after a second: the total is known.
	in_tty "$dir/get.tty" "$VB cp lab1:$BIG - | { sleep 1; cat >/dev/null; }"
	if grep -qaE $'\r''  [0-9.]+ (B|KiB|MiB|GiB) / [0-9.]+ (MiB|GiB) +[0-9]+%  [0-9.]+ (B|KiB|MiB|GiB)/s  [0-9]+:[0-9]{2} left' "$dir/get.tty"; then
		pass "progress on a terminal, VM -> host: bytes of the total, percent, rate, time left ('$(tr '\r' '\n' <"$dir/get.tty" | grep -a '%' | tail -n 1 | tr -d '\033' | sed 's/\[K//')')"
	else
		fail_soft "no progress line with the total on a terminal, VM -> host: $(od -c "$dir/get.tty" | head -n 5 | paste -sd ' ')"
	fi
	in_tty "$dir/quiet.tty" "$feed | $VB cp -q - lab1:$dir/quiet; $VB cp -q lab1:$BIG - | { sleep 1; cat >/dev/null; }"
	if [[ ! -s "$dir/quiet.tty" ]]; then
		pass "-q: no progress line on a terminal, either way"
	else
		fail_soft "-q: the terminal shows: $(od -c "$dir/quiet.tty" | head -n 3 | paste -sd ' ')"
	fi
	eval "$feed" | "$VB" cp - "lab1:$dir/notty" 2>"$dir/notty.err" || true
	"$VB" cp "lab1:$BIG" - 2>>"$dir/notty.err" | { sleep 1; cat >/dev/null; } || true
	if [[ ! -s "$dir/notty.err" ]]; then
		pass "without a terminal: no progress line, either way"
	else
		fail_soft "without a terminal, stderr has: $(head -c 200 "$dir/notty.err" | od -c | head -n 3 | paste -sd ' ')"
	fi
}

# ---------------------------------------------------------------- after everything

test_leftovers() {
	manifest "$SRC" >"$TMP/src-after.manifest"
	same_tree "the source tree after every test (nothing copied onto it)" "$TMP/src.manifest" \
		"$TMP/src-after.manifest"
	if no_temporaries "$TMP"; then
		pass "no '.*.vmbusify-*' temporary anywhere under $TMP"
	else
		fail_soft "temporaries left: $(find "$TMP" -name '.*.vmbusify-*' | head -n 5 | paste -sd ' ')"
	fi
	if holds_no_temp "$(agent_pid)" "$TMP"; then
		pass "lab1's agent holds no temporary file open"
	else
		fail_soft "lab1's agent still holds a temporary file open under $TMP"
	fi
}

# ---------------------------------------------------------------- main

main() {
	local t0=$SECONDS
	lab_require_root
	lab_require_build "${1:-}"
	lab_require_tools jq script timeout sha256sum find stat
	[[ "$BIG_MB" =~ ^[1-9][0-9]*$ ]] || fail "VB_CP_BIG_MB must be a number of MiB, not '$BIG_MB'"
	VB="$VB_BUILD_DIR/vmbusify"
	VX="$VB_BUILD_DIR/vmbusexec"
	[[ -x "$VX" ]] || skip "binaries not built (no $VX)"
	TMP="$(mktemp -d /tmp/vbx-cp.XXXXXX)"
	lab_at_exit rm -rf "$TMP"
	BIG="$TMP/big.bin"
	head -c "${BIG_MB}M" /dev/urandom >"$BIG"
	BIG_SHA="$(sha256sum <"$BIG")"
	BIG_SHA="${BIG_SHA%% *}"
	SRC="$TMP/src"
	make_tree "$SRC"
	manifest "$SRC" >"$TMP/src.manifest"
	wait_for_free_lab
	lab_up 2
	export VMBUSIFY_CONTROL
	VMBUSIFY_CONTROL="$(realpath -m "$VB_LAB_DIR")/control.sock"
	URI="unix://$(realpath -m "$VB_LAB_DIR")/lab1.sock"
	lab_wait_until 10 vm_is_up lab1 || fail "lab1 is not up in the daemon"
	test_round_trips
	test_many_files
	test_without_p
	test_dot_contents
	test_several_and_links
	test_special_bits
	test_link_in_target
	test_parallel
	test_stdio
	test_errors
	test_partial_failure
	test_overwrite
	test_interrupted
	test_progress
	test_leftovers
	echo "$LAB_TEST_NAME: big file $BIG_MB MiB, backend ${VMBUSIFY_BACKEND:-default}, $((SECONDS - t0)) s"
	lab_done
}

main "$@"
