#!/usr/bin/env bash
# vmbusexec behaves like `ssh host cmd` in every way a script can see (issue 3). A table of cases
# runs through `vmbusexec lab1 ...` and through OpenSSH to an sshd inside lab1 (reached over a
# socat relay on a Unix socket, since lab1 has no network: the way `hvc ssh` reaches a Hyper-V
# VM); ssh's result is the reference and every difference fails unless the table lists it as
# intended. Then: several VMs at once (prefixed lines, a summary per VM, the highest status
# wins), and losing the channel mid-command, directly and through the daemon (vmbusexec exits
# 255 with one line, and nothing is left running in the VM).
#
# Usage: tests/lab/test_lab_exec.sh BUILDDIR   (binaries in BUILDDIR)
# Exit codes: 0 passed, 1 failed, 77 skipped (not root, binaries or tools missing, or another
# lab stayed up for 10 minutes: the lab's namespace names are fixed, one lab per machine).
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The cases, one a line: fields separated by " | ".
#   case       what is checked (the row's name)
#   stdin      null: /dev/null; text: a pipe carrying $TMP/text.in; empty: a pipe carrying
#              nothing; yes: a pipe from `yes`, never ending; big: the 256 MiB random file;
#              closed: no fd 0 at all (<&-)
#   stdout     file; sha: through sha256sum; head1: through `head -n 1`, which then exits;
#              closed: no fd 1 at all (>&-); noerr: to a file, and no fd 2 at all (2>&-)
#   checks     status, out, err: the same for both; out~RE, err~RE: both match the extended
#              regex RE (err~: and are one line); sha: the SHA-256 printed is the big file's;
#              quick: both return within 5 s; gone:RE: no process matching RE is left in
#              lab1 (3 s grace); runs:RE: the PID printed runs RE in lab1 (it is then killed)
#   intended   - or KEY=VMBUSEXEC/SSH WHY: an intended difference (KEY: status); both sides
#              must give exactly these values
#   vmbusexec  the arguments after `vmbusexec lab1` (shell words; @BIG@ is the big file)
#   ssh        the command line given to ssh (run by root's shell in lab1); = for the same text
# shellcheck disable=SC2016 # the commands are for the shells in the VM
readonly CASES='
exit status 0         | null  | file  | status out err       | -                          | sh -c "exit 0"                  | =
exit status 1         | null  | file  | status out err       | -                          | sh -c "exit 1"                  | =
exit status 7         | null  | file  | status out err       | -                          | sh -c "exit 7"                  | =
exit status 255       | null  | file  | status out err       | -                          | sh -c "exit 255"                | =
killed by SIGKILL     | null  | file  | status out err       | status=137/255 128+N for signal N (DESIGN.md 8); ssh says 255 | sh -c "kill -KILL \$\$" | =
killed by SIGTERM     | null  | file  | status out err       | status=143/255 128+N for signal N (DESIGN.md 8); ssh says 255 | sh -c "kill -TERM \$\$" | =
stdout/stderr apart   | null  | file  | status out err       | -                          | sh -c "i=0; while [ \$i -lt 2000 ]; do echo out \$i; echo err \$i >&2; i=\$((i+1)); done; printf out-end; printf err-end >&2" | =
arguments kept as is  | null  | file  | status out err       | -                          | printf "[%s]\n" "a b" "" "c'\''d" "\$HOME" "*" "x;y" | =
stdin to EOF: cat     | text  | file  | status out err       | -                          | cat                             | =
stdin to EOF: wc -c   | text  | file  | status out err       | -                          | wc -c                           | =
empty stdin: wc -c    | empty | file  | status out err       | -                          | wc -c                           | =
-n: no stdin          | text  | file  | status out err       | -                          | -n cat                          | cat </dev/null
stdin left unread     | yes   | file  | status out err       | -                          | head -n 1                       | =
stdin closed (<&-)    | closed | file | status out err       | -                          | cat                             | =
stdout closed (>&-)   | null  | closed | status err          | -                          | sh -c "echo out; echo err >&2"  | =
stderr closed (2>&-)  | null  | noerr | status out           | -                          | sh -c "echo out; echo err >&2"  | =
output after exit     | null  | file  | status out err       | -                          | sh -c "(sleep 1; echo late) & echo early" | =
stdout reader gone    | null  | head1 | status out gone:^yes$ | -                         | yes                             | =
256 MiB through cat   | big   | sha   | status out err sha   | -                          | cat                             | =
256 MiB up            | big   | file  | status out err sha   | -                          | sha256sum                       | =
256 MiB down          | null  | sha   | status out err sha   | -                          | cat @BIG@                       | =
environment (-e)      | null  | file  | status out err       | -                          | -e "VBX_K=hello world" -e VBX_EMPTY= sh -c "printf \"[%s][%s]\n\" \"\$VBX_K\" \"\${VBX_EMPTY-unset}\"" | env "VBX_K=hello world" VBX_EMPTY= sh -c "printf \"[%s][%s]\n\" \"\$VBX_K\" \"\${VBX_EMPTY-unset}\""
directory (-w)        | null  | file  | status out err       | -                          | -w /tmp pwd                     | cd /tmp && pwd
missing directory     | null  | file  | err~nonexistent-vbx  | status=255/1 not a missing program: a failure to start (255, DESIGN.md 8), not 127 | -w /nonexistent-vbx pwd | cd /nonexistent-vbx && pwd
user (-u)             | null  | file  | status out err       | -                          | -u nobody id -un                | runuser -u nobody -- id -un
user environment      | null  | file  | status out err       | -                          | -u nobody sh -c "echo \$(id -u) \$(id -g) \$HOME \$USER \$LOGNAME" | runuser -u nobody -- sh -c "echo \$(id -u) \$(id -g) \$HOME \$USER \$LOGNAME"
missing user          | null  | file  | err~nosuchuser-vbx   | status=255/1 not a missing program: a failure to start (255, DESIGN.md 8), not 127 | -u nosuchuser-vbx id -un | runuser -u nosuchuser-vbx -- id -un
missing program       | null  | file  | status out err~nosuchprog-vbx | -                 | nosuchprog-vbx                  | =
--timeout             | null  | file  | status out err gone:^sleep.1001$ | -             | --timeout 1 sleep 1001          | timeout 1 sleep 1001
--timeout, TERM ignored | null | file | status out gone:^sleep.1003$ | status=124/137 vmbusexec says 124 however the timeout ended it; timeout -k says 137 | --timeout 1 sh -c "trap \"\" TERM; sleep 1003" | timeout -k 2 1 sh -c "trap \"\" TERM; sleep 1003"; exit $?
-d: detach            | null  | file  | status out~^[0-9]+$ err quick runs:^sleep.1002$ | - | -d sleep 1002                 | sleep 1002 </dev/null >/dev/null 2>&1 & echo $!
'

VB=""   # the vmbusify binary under test
VX=""   # vmbusexec
TMP=""  # the test's scratch directory
BIG=""  # 256 MiB of random bytes
BIG_SHA=""
SSH_SOCK=""
SSH=()  # ssh, ready to take a command line
RC=0
MS=0

# ---------------------------------------------------------------- the lab and sshd

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

# vm_pids VM REGEX - the live processes in VM's namespace whose command line (arguments joined
# by spaces) matches REGEX. `pgrep` alone would see every namespace of the machine.
vm_pids() {
	local p cmd
	for p in $(ip netns pids "vbl-$1" 2>/dev/null); do
		lab_pid_alive "$p" || continue
		cmd="$(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)" || continue
		[[ "${cmd% }" =~ $2 ]] && echo "$p"
	done
	return 0
}

vm_has() {
	[[ -n "$(vm_pids "$1" "$2")" ]]
}

vm_lacks() {
	! vm_has "$1" "$2"
}

# vm_kill VM REGEX - kill what matches (a check failed; the lab must stay clean).
vm_kill() {
	local p
	for p in $(vm_pids "$1" "$2"); do
		kill -KILL "$p" 2>/dev/null || true
	done
}

vm_is_up() {
	"$VB" ls --json | jq -e --arg vm "$1" '.vms[] | select(.name == $vm) | .state == "up"' >/dev/null
}

# start_sshd - an sshd inside lab1 on 127.0.0.1:22 with a throwaway host key, and a socat in
# lab1 relaying the Unix socket SSH_SOCK to it; both marked as the lab's, so `lab down` ends
# them too. Sets SSH.
start_sshd() {
	local pid
	mkdir -p /run/sshd # sshd's privilege separation directory
	ssh-keygen -q -t ed25519 -N '' -C vbx-host -f "$TMP/hostkey"
	ssh-keygen -q -t ed25519 -N '' -C vbx-client -f "$TMP/key"
	install -m 600 "$TMP/key.pub" "$TMP/authorized_keys"
	# -f /dev/null: OpenSSH's defaults, not this machine's sshd_config. StrictModes=no: the
	# keys live under /tmp, which is world-writable.
	pid="$(lab_respawn lab1-sshd vbl-lab1 /usr/sbin/sshd -D -e -f /dev/null -p 22 \
		-o ListenAddress=127.0.0.1 -h "$TMP/hostkey" -o PidFile="$TMP/sshd.pid" \
		-o AuthorizedKeysFile="$TMP/authorized_keys" -o StrictModes=no)" \
		|| fail "could not start sshd in vbl-lab1"
	lab_at_exit kill -TERM "$pid"
	SSH_SOCK="$(realpath -m "$VB_LAB_DIR")/lab1-ssh.sock"
	pid="$(lab_respawn lab1-ssh-relay vbl-lab1 socat "UNIX-LISTEN:$SSH_SOCK,fork" \
		TCP:127.0.0.1:22)" || fail "could not start the socat relay in vbl-lab1"
	lab_at_exit kill -TERM "$pid"
	SSH=(ssh -F /dev/null -o "ProxyCommand=socat - UNIX-CONNECT:$SSH_SOCK"
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR
		-i "$TMP/key" -o BatchMode=yes root@lab1)
	lab_wait_until 10 ssh_works \
		|| fail "ssh to lab1 over $SSH_SOCK does not work: $(tail -n 5 "$VB_LAB_DIR/lab1-sshd.log")"
	pass "sshd runs in lab1, reached with ssh over a socat relay on $SSH_SOCK"
}

ssh_works() {
	"${SSH[@]}" true </dev/null
}

# ---------------------------------------------------------------- the table

# feed MODE CMD... - run CMD with the case's stdin.
feed() {
	local mode="$1"
	shift
	case "$mode" in
	null) "$@" </dev/null ;;
	big) "$@" <"$BIG" ;;
	text) "$@" < <(cat "$TMP/text.in") ;;
	empty) "$@" < <(:) ;;
	yes) "$@" < <(yes) ;;
	closed) "$@" <&- ;;
	*) fail "the table names an unknown stdin '$mode'" ;;
	esac
}

# run_case IN OUT LIMIT BASE CMD... - run CMD (for at most LIMIT s) with the case's stdin and
# stdout; stdout to BASE.out, stderr to BASE.err. Sets RC and MS (-1: it hung and was killed).
run_case() {
	local in="$1" out="$2" limit="$3" base="$4" t0 sub
	shift 4
	RC=0
	t0=${EPOCHREALTIME/./}
	case "$out" in
	file) feed "$in" timeout -k 5 "$limit" "$@" >"$base.out" 2>"$base.err" || RC=$? ;;
	sha)
		feed "$in" timeout -k 5 "$limit" "$@" 2>"$base.err" \
			> >(sha256sum | awk '{ print $1 }' >"$base.out") || RC=$?
		sub=$!
		wait "$sub" || true
		;;
	closed)
		: >"$base.out"
		feed "$in" timeout -k 5 "$limit" "$@" >&- 2>"$base.err" || RC=$?
		;;
	noerr)
		: >"$base.err"
		feed "$in" timeout -k 5 "$limit" "$@" >"$base.out" 2>&- || RC=$?
		;;
	head1)
		feed "$in" timeout -k 5 "$limit" "$@" 2>"$base.err" > >(head -n 1 >"$base.out") || RC=$?
		sub=$!
		wait "$sub" || true
		;;
	*) fail "the table names an unknown stdout '$out'" ;;
	esac
	MS=$(((${EPOCHREALTIME/./} - t0) / 1000))
	((MS < limit * 1000)) || MS=-1
}

# after_checks SIDE BASE CHECKS... - the checks on the VM's state after one side ran; prints
# the problems found, one a line.
after_checks() {
	local side="$1" base="$2" check re pid
	shift 2
	for check in "$@"; do
		case "$check" in
		gone:*)
			re="${check#gone:}"
			if ! lab_wait_until 3 vm_lacks lab1 "$re"; then
				echo "$side left '$re' running in lab1: $(vm_pids lab1 "$re" | xargs)"
				vm_kill lab1 "$re"
			fi
			;;
		runs:*)
			re="${check#runs:}"
			pid="$(head -n 1 "$base.out")"
			if [[ ! "$pid" =~ ^[0-9]+$ ]] || ! vm_pids lab1 "$re" | grep -qx "$pid"; then
				echo "$side printed '$pid', which is not a process running '$re' in lab1"
			fi
			vm_kill lab1 "$re"
			lab_wait_until 3 vm_lacks lab1 "$re" || echo "could not end '$re' in lab1"
			;;
		esac
	done
}

# one_line_matching FILE RE - FILE is exactly one line, matching RE.
one_line_matching() {
	[[ $(wc -l <"$1") -eq 1 && "$(cat "$1")" =~ $2 ]]
}

# compare BASE_VX BASE_SSH RC_VX RC_SSH MS_VX MS_SSH INTENDED CHECKS... - prints the differences
# that are not intended, one a line.
compare() {
	local bx="$1" bs="$2" rx="$3" rs="$4" mx="$5" ms="$6" intended="$7" check want
	shift 7
	((mx >= 0)) || echo "vmbusexec hung (killed after the case's limit)"
	((ms >= 0)) || echo "ssh hung (killed after the case's limit)"
	if [[ "$intended" == status=* ]]; then
		want="${intended%% *}"
		want="${want#status=}"
		[[ "$rx/$rs" == "$want" ]] \
			|| echo "status vmbusexec/ssh is $rx/$rs, expected $want (intended difference)"
	fi
	for check in "$@"; do
		case "$check" in
		status)
			[[ "$intended" == status=* || "$rx" == "$rs" ]] || echo "status: vmbusexec $rx, ssh $rs"
			;;
		out | err)
			cmp -s "$bx.$check" "$bs.$check" \
				|| echo "std$check differs: vmbusexec '$(head -c 200 "$bx.$check")', ssh '$(head -c 200 "$bs.$check")'"
			;;
		out~*)
			[[ "$(cat "$bx.out")" =~ ${check#out~} ]] || echo "vmbusexec's stdout '$(head -c 200 "$bx.out")' does not match ${check#out~}"
			[[ "$(cat "$bs.out")" =~ ${check#out~} ]] || echo "ssh's stdout '$(head -c 200 "$bs.out")' does not match ${check#out~}"
			;;
		err~*)
			one_line_matching "$bx.err" "${check#err~}" \
				|| echo "vmbusexec's stderr is not one line matching ${check#err~}: '$(head -c 300 "$bx.err")'"
			one_line_matching "$bs.err" "${check#err~}" \
				|| echo "ssh's stderr is not one line matching ${check#err~}: '$(head -c 300 "$bs.err")'"
			;;
		sha)
			[[ "$(head -c 64 "$bx.out")" == "$BIG_SHA" ]] || echo "vmbusexec: SHA-256 $(head -c 64 "$bx.out"), expected $BIG_SHA"
			[[ "$(head -c 64 "$bs.out")" == "$BIG_SHA" ]] || echo "ssh: SHA-256 $(head -c 64 "$bs.out"), expected $BIG_SHA"
			;;
		quick)
			((mx >= 0 && mx < 5000)) || echo "vmbusexec did not return within 5 s ($mx ms)"
			((ms >= 0 && ms < 5000)) || echo "ssh did not return within 5 s ($ms ms)"
			;;
		gone:* | runs:*) ;;
		*) echo "the table names an unknown check '$check'" ;;
		esac
	done
}

# result RC MS - "7 (12 ms)", or "hung" for a side that was killed.
result() {
	if (($2 < 0)); then
		echo "hung"
	else
		echo "$1 ($2 ms)"
	fi
}

trim() {
	local s="$1"
	s="${s#"${s%%[![:space:]]*}"}"
	echo "${s%"${s##*[![:space:]]}"}"
}

# run_table - every case through both, a row each, ssh's result the reference.
run_table() {
	local line name in out checks intended vcol scol extra f vargs=() limit bx bs n=0 cks=()
	local rx rs mx ms problems
	printf '%-24s %-18s %-18s %s\n' CASE VMBUSEXEC SSH VERDICT
	while IFS= read -r line; do
		[[ -n "$line" ]] || continue
		IFS='|' read -r name in out checks intended vcol scol extra <<<"$line"
		[[ -n "$scol" && -z "$extra" ]] || fail "the table's line has not 7 fields: $line"
		name="$(trim "$name")" in="$(trim "$in")" out="$(trim "$out")"
		checks="$(trim "$checks")" intended="$(trim "$intended")"
		vcol="$(trim "$vcol")" scol="$(trim "$scol")"
		[[ "$scol" != "=" ]] || scol="$vcol"
		vcol="${vcol//@BIG@/$BIG}" scol="${scol//@BIG@/$BIG}"
		eval "vargs=($vcol)"
		read -ra cks <<<"$checks"
		limit=20
		[[ "$in" != big && "$out" != sha ]] || limit=180
		n=$((n + 1))
		bx="$TMP/case$n.vx" bs="$TMP/case$n.ssh"
		run_case "$in" "$out" "$limit" "$bx" "$VX" lab1 "${vargs[@]}"
		rx=$RC mx=$MS
		after_checks vmbusexec "$bx" "${cks[@]}" >"$bx.after"
		run_case "$in" "$out" "$limit" "$bs" "${SSH[@]}" "$scol"
		rs=$RC ms=$MS
		after_checks ssh "$bs" "${cks[@]}" >"$bs.after"
		problems="$(compare "$bx" "$bs" "$rx" "$rs" "$mx" "$ms" "$intended" "${cks[@]}"
			cat "$bx.after" "$bs.after")"
		if [[ -z "$problems" ]]; then
			f="same"
			[[ "$intended" == - ]] || f="intended: ${intended#* }"
			printf '%-24s %-18s %-18s %s\n' "$name" "$(result "$rx" "$mx")" "$(result "$rs" "$ms")" "$f"
			pass "$name: vmbusexec lab1 $vcol behaves as ssh lab1 '$scol'"
		else
			printf '%-24s %-18s %-18s %s\n' "$name" "$(result "$rx" "$mx")" "$(result "$rs" "$ms")" "DIFFERS"
			fail_soft "$name: vmbusexec lab1 $vcol vs ssh lab1 '$scol': $(paste -sd ';' <<<"$problems")"
		fi
	done <<<"$CASES"
}

# ---------------------------------------------------------------- several VMs at once

# shellcheck disable=SC2016 # for the shell in the VM
# Prints "vm=<its netns>" on stdout and "err=<its netns>" on stderr, and exits 3 in lab2, 1 elsewhere.
readonly PER_VM='echo "vm=$(ip netns identify)"; echo "err=$(ip netns identify)" >&2; [ "$(ip netns identify)" = vbl-lab2 ] && exit 3; exit 1'

test_several_vms() {
	local ok=1
	RC=0
	timeout 30 "$VX" lab1,lab2 sh -c "$PER_VM" >"$TMP/multi.out" 2>"$TMP/multi.err" || RC=$?
	[[ $RC -eq 3 ]] || { ok=0; fail_soft "vmbusexec lab1,lab2 exited $RC, expected 3 (the highest of 1 and 3)"; }
	[[ "$(sort "$TMP/multi.out")" == $'lab1: vm=vbl-lab1\nlab2: vm=vbl-lab2' ]] \
		|| { ok=0; fail_soft "vmbusexec lab1,lab2: stdout is not one prefixed line per VM: '$(cat "$TMP/multi.out")'"; }
	[[ "$(sort "$TMP/multi.err")" == $'lab1: err=vbl-lab1\nlab1: exit 1\nlab2: err=vbl-lab2\nlab2: exit 3' ]] \
		|| { ok=0; fail_soft "vmbusexec lab1,lab2: stderr is not the prefixed lines and a summary per VM: '$(cat "$TMP/multi.err")'"; }
	if ((ok)); then
		pass "vmbusexec lab1,lab2: each VM's lines behind 'lab1: '/'lab2: ', 'labN: exit N' on stderr, the highest status (3) wins"
	fi
}

test_all_vms() {
	RC=0
	timeout 30 "$VX" --all sh -c 'ip netns identify' >"$TMP/all.out" 2>"$TMP/all.err" || RC=$?
	if [[ $RC -eq 0 && "$(sort "$TMP/all.out")" == $'lab1: vbl-lab1\nlab2: vbl-lab2' ]]; then
		pass "vmbusexec --all runs in every VM the daemon holds"
	else
		fail_soft "vmbusexec --all: exit $RC, stdout '$(cat "$TMP/all.out")', stderr '$(cat "$TMP/all.err")'"
	fi
}

# A prefixed line is the VM's line, whole: however long, whatever bytes it holds.
test_prefixed_lines_are_whole() {
	local want
	RC=0
	timeout 30 "$VX" lab1,lab2 sh -c 'head -c 5000 /dev/zero | tr "\0" x; echo' \
		>"$TMP/long.out" 2>/dev/null || RC=$?
	want="$(head -c 5000 /dev/zero | tr '\0' x)"
	if [[ "$(sort "$TMP/long.out")" == "lab1: $want"$'\n'"lab2: $want" ]]; then
		pass "several VMs: a 5000-byte line arrives whole behind one prefix"
	else
		fail_soft "several VMs: a 5000-byte line does not arrive whole behind one prefix: lines of $(awk '{ print length($0) }' "$TMP/long.out" | xargs) bytes, $(grep -o 'lab[12]: ' "$TMP/long.out" | wc -l) prefixes (exec/client.c exec_wq_lines cuts at 4096 and prefixes the rest in the middle of the line)"
	fi
	timeout 30 "$VX" lab1,lab2 printf 'a\0b\nnext\n' >"$TMP/nul.out" 2>/dev/null || true
	if [[ "$(LC_ALL=C sort "$TMP/nul.out" | od -An -c | tr -s ' \n' ' ')" == \
		"$(printf 'lab1: a\0b\nlab1: next\nlab2: a\0b\nlab2: next\n' | od -An -c | tr -s ' \n' ' ')" ]]; then
		pass "several VMs: a line holding a NUL byte arrives whole"
	else
		fail_soft "several VMs: printf 'a\\0b\\nnext\\n' arrives as $(od -An -c "$TMP/nul.out" | tr -s ' \n' ' ') (exec/client.c exec_wq_lines prints with %.*s, which stops at the NUL and loses the newline)"
	fi
}

test_exec_alias() {
	RC=0
	timeout 30 "$VB" exec lab1 sh -c 'echo alias; exit 7' >"$TMP/alias.out" 2>&1 || RC=$?
	if [[ $RC -eq 7 && "$(cat "$TMP/alias.out")" == alias ]]; then
		pass "vmbusify exec lab1 is vmbusexec lab1"
	else
		fail_soft "vmbusify exec lab1 sh -c 'echo alias; exit 7': exit $RC, output '$(cat "$TMP/alias.out")'"
	fi
}

# ---------------------------------------------------------------- losing the channel

# lose_channel TARGET WHAT MARK - run `sleep MARK` in lab1 through TARGET, kill -9 lab1's agent:
# vmbusexec exits 255 with one line on stderr; after the agent is restarted the sleep is gone.
lose_channel() {
	local target="$1" what="$2" mark="$3" job pid cmd=() t0 esc
	timeout 60 "$VX" "$target" sleep "$mark" >"$TMP/lost.out" 2>"$TMP/lost.err" &
	job=$!
	lab_wait_until 10 vm_has lab1 "^sleep $mark$" \
		|| { kill -KILL "$job"; fail "$what: sleep $mark did not start in lab1"; }
	pid="$(cat "$VB_LAB_DIR/lab1.pid")"
	[[ "$(cat "/proc/$pid/comm")" == vmbusify-agent ]] || fail "lab1.pid ($pid) is not an agent"
	mapfile -t cmd < <(agent_cmd lab1)
	t0=${EPOCHREALTIME/./}
	kill -KILL "$pid"
	RC=0
	wait "$job" || RC=$?
	MS=$(((${EPOCHREALTIME/./} - t0) / 1000))
	# In a command substitution: the killed agent's job is not this shell's to report.
	pid="$(lab_respawn lab1 vbl-lab1 "${cmd[@]}")" || fail "could not restart lab1's agent"
	lab_wait_until 10 test -S "$VB_LAB_DIR/lab1.sock" || fail "the restarted agent does not listen"
	esc="$(sed 's/[][\.*^$/]/\\&/g' <<<"$target")"
	if [[ $RC -eq 255 ]] && one_line_matching "$TMP/lost.err" "^vmbusexec: $esc: .+$"; then
		pass "$what: the agent killed under 'sleep $mark': vmbusexec exits 255 after $MS ms saying '$(cat "$TMP/lost.err")'"
	else
		fail_soft "$what: the agent killed under 'sleep $mark': vmbusexec exited $RC after $MS ms, expected 255 and one line 'vmbusexec: $target: ...'; stderr: '$(cat "$TMP/lost.err")'"
	fi
	if lab_wait_until 5 vm_lacks lab1 "^sleep $mark$"; then
		pass "$what: once lab1's agent is restarted, the orphaned 'sleep $mark' is gone from lab1"
	else
		fail_soft "$what: 5 s after lab1's agent was restarted, the 'sleep $mark' it ran is still running in lab1 (pid $(vm_pids lab1 "^sleep $mark$" | xargs)): children outlive a killed agent (no PR_SET_PDEATHSIG, no reaping of a predecessor's orphans)"
		vm_kill lab1 "^sleep $mark$"
	fi
}

# lose_client TARGET WHAT MARK - kill -9 vmbusexec while `sleep MARK` runs: the sleep is gone.
lose_client() {
	local target="$1" what="$2" mark="$3" job
	"$VX" "$target" sleep "$mark" >/dev/null 2>&1 &
	job=$!
	lab_wait_until 10 vm_has lab1 "^sleep $mark$" \
		|| { kill -KILL "$job"; fail "$what: sleep $mark did not start in lab1"; }
	kill -KILL "$job"
	wait "$job" 2>/dev/null || true
	if lab_wait_until 5 vm_lacks lab1 "^sleep $mark$"; then
		pass "$what: vmbusexec killed with SIGKILL: its 'sleep $mark' is gone from lab1"
	else
		fail_soft "$what: 5 s after vmbusexec was killed, its 'sleep $mark' still runs in lab1"
		vm_kill lab1 "^sleep $mark$"
	fi
}

test_channel_lost() {
	local uri
	uri="unix://$(realpath -m "$VB_LAB_DIR")/lab1.sock"
	lose_client "$uri" "direct ($uri)" 1020
	lose_client lab1 "through the daemon" 1021
	lose_channel "$uri" "direct ($uri)" 1022
	lab_wait_until 15 vm_is_up lab1 || fail "the daemon did not reconnect to lab1's restarted agent"
	lose_channel lab1 "through the daemon" 1023
	lab_wait_until 15 vm_is_up lab1 || fail "the daemon did not reconnect to lab1's restarted agent"
}

# ---------------------------------------------------------------- main

make_inputs() {
	printf 'line one\n\ttabbed line\nutf-8: h\xc3\xa9llo w\xc3\xb6rld\n\n  spaces  \nlast line, no newline' \
		>"$TMP/text.in"
	BIG="$TMP/big.bin"
	head -c 256M /dev/urandom >"$BIG"
	BIG_SHA="$(sha256sum "$BIG" | awk '{ print $1 }')"
	chmod -R a+rX "$TMP"
}

main() {
	lab_require_root
	lab_require_build "${1:-}"
	lab_require_tools jq ssh ssh-keygen socat timeout sha256sum runuser /usr/sbin/sshd
	VB="$VB_BUILD_DIR/vmbusify"
	VX="$VB_BUILD_DIR/vmbusexec"
	[[ -x "$VX" ]] || skip "binaries not built (no $VX)"
	TMP="$(mktemp -d /tmp/vbx-exec.XXXXXX)"
	lab_at_exit rm -rf "$TMP"
	make_inputs
	wait_for_free_lab
	lab_up 2
	export VMBUSIFY_CONTROL
	VMBUSIFY_CONTROL="$(realpath -m "$VB_LAB_DIR")/control.sock"
	lab_wait_until 10 vm_is_up lab1 || fail "lab1 is not up in the daemon"
	lab_wait_until 10 vm_is_up lab2 || fail "lab2 is not up in the daemon"
	start_sshd
	run_table
	test_exec_alias
	test_several_vms
	test_all_vms
	test_prefixed_lines_are_whole
	test_channel_lost
	lab_done
}

main "$@"
