#!/usr/bin/env bash
# `vmbusexec lab1 -it bash --norc` is an interactive shell in the VM, driven here through tmux:
# the remote pty has the local terminal's size and follows it when the window is resized,
# Ctrl-C interrupts the foreground program in the VM and the prompt comes back, `exit 3` gives
# status 3 back, and the local terminal is as it was afterwards (icanon and echo on). SIGTERM
# ends a session as it ends `ssh -t host bash`, the terminal restored.
#
# Usage: tests/lab/test_lab_exec_tty.sh BUILDDIR   (binaries in BUILDDIR)
# Exit codes: 0 passed, 1 failed, 77 skipped (not root, binaries or tmux missing, or another
# lab stayed up for 10 minutes: the lab's namespace names are fixed, one lab per machine).
set -euo pipefail
# shellcheck source=tests/lab/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

readonly PROMPT='vbx-prompt>'
VX=""   # vmbusexec
TMP=""  # the test's scratch directory
TMUX_CMD=()
SES=""  # the tmux session the helpers below drive

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

# vm_pids VM REGEX - the live processes in VM's namespace whose command line matches REGEX.
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

vm_is_up() {
	"$VB_BUILD_DIR/vmbusify" ls --json | jq -e --arg vm "$1" \
		'.vms[] | select(.name == $vm) | .state == "up"' >/dev/null
}

# ---------------------------------------------------------------- tmux

tm() {
	"${TMUX_CMD[@]}" "$@"
}

# pane - the visible pane, trailing blanks cut.
pane() {
	tm capture-pane -p -t "$SES"
}

pane_has() {
	pane | grep -qE -- "$1"
}

# pane_size - "ROWS COLS" of the pane, as tmux sees it.
pane_size() {
	tm display-message -p -t "$SES" '#{pane_height} #{pane_width}'
}

# type_line TEXT - type TEXT and Enter into the remote shell.
type_line() {
	tm send-keys -t "$SES" -l "$1"
	tm send-keys -t "$SES" Enter
}

# ask NAME COMMAND SECONDS - type `echo "NAME=$(COMMAND)"` and print what came back ("" if
# nothing within SECONDS). The answer line is told from the typed line by the quote.
ask() {
	local name="$1" deadline line
	deadline=$((SECONDS + $3))
	type_line "echo \"$name=\$($2)\""
	while ((SECONDS <= deadline)); do
		line="$(pane | grep -E "^$name=" | tail -n 1)" || true
		if [[ -n "$line" ]]; then
			echo "${line#"$name="}"
			return 0
		fi
		sleep 0.1
	done
	return 0
}

# start_session NAME ROWS COLS - tmux runs, in a detached session NAME of ROWS x COLS, a script
# that saves the terminal's settings, runs `vmbusexec lab1 -it bash --norc`, saves its status
# and the settings again, and stays. Its files are $TMP/NAME.*.
start_session() {
	local f="$TMP/$1"
	cat >"$f.sh" <<-EOF
		#!/bin/bash
		export VMBUSIFY_CONTROL='$VMBUSIFY_CONTROL' VMBUSIFY_BACKEND='${VMBUSIFY_BACKEND:-}'
		[ -n "\$VMBUSIFY_BACKEND" ] || unset VMBUSIFY_BACKEND
		echo "\$\$" >'$f.pid'
		echo "\$TERM" >'$f.term'
		stty -g >'$f.stty-before'
		'$VX' lab1 -it bash --norc
		echo "\$?" >'$f.tmp' && mv '$f.tmp' '$f.status'
		stty -g >'$f.stty-after'
		stty -a >'$f.stty-a'
		exec sleep 600
	EOF
	if [[ ${#TMUX_CMD[@]} -eq 0 ]]; then
		TMUX_CMD=(env -u TMUX tmux -S "$TMP/tmux.sock" -f /dev/null)
		tm new-session -d -s "$1" -x "$3" -y "$2" "bash $f.sh"
		lab_at_exit "${TMUX_CMD[@]}" kill-server
	else
		tm new-session -d -s "$1" -x "$3" -y "$2" "bash $f.sh"
	fi
}

# ---------------------------------------------------------------- the tests

test_prompt_comes() {
	lab_wait_until 10 pane_has '[#$]$' || fail "no shell prompt within 10 s; the pane: $(pane)"
	type_line "PS1='$PROMPT '"
	lab_wait_until 5 pane_has "^$PROMPT\$" || fail "the prompt did not change; the pane: $(pane)"
	pass "vmbusexec lab1 -it bash --norc gives a shell prompt in tmux"
}

test_is_a_terminal() {
	local got tty term
	got="$(ask tty tty 5)"
	tty="$got"
	[[ "$got" =~ ^/dev/pts/[0-9]+$ ]] || fail "the remote shell's stdin is '$got', not a pty"
	got="$(ask term 'printenv TERM' 5)"
	[[ "$got" == "$(cat "$TMP/$SES.term")" ]] \
		|| fail "TERM in the VM is '$got', the local terminal's is '$(cat "$TMP/$SES.term")'"
	term="$got"
	got="$(ask where 'ip netns identify' 5)"
	[[ "$got" == vbl-lab1 ]] || fail "the shell runs in '$got', not vbl-lab1"
	pass "the shell runs in vbl-lab1 on a pty ($tty) with the local TERM ($term)"
}

test_size_matches_pane() {
	local got want
	want="$(pane_size)"
	got="$(ask size 'stty size' 5)"
	[[ "$got" == "$want" ]] || fail "stty size in the VM says '$got', the pane is '$want'"
	pass "stty size in the VM is the pane's ($want)"
}

test_size_follows_resize() {
	local got="" want i
	tm resize-window -t "$SES" -x 117 -y 33
	want="$(pane_size)"
	[[ "$want" == "33 117" ]] || fail "tmux resize-window made the pane '$want', not '33 117'"
	# The resize travels as SIGWINCH then a RESIZE record: give it a moment, then ask (up to 3 times).
	for i in 1 2 3; do
		sleep 0.5
		got="$(ask "resized$i" 'stty size' 5)"
		[[ "$got" != "$want" ]] || break
	done
	[[ "$got" == "$want" ]] || fail "after resize-window, stty size in the VM says '$got', the pane is '$want'"
	pass "after tmux resize-window, stty size in the VM follows ($want)"
}

test_ctrl_c_interrupts() {
	local t0 ms got
	type_line "sleep 100"
	lab_wait_until 10 vm_has lab1 '^sleep 100$' || fail "sleep 100 did not start in lab1: $(pane)"
	t0=${EPOCHREALTIME/./}
	tm send-keys -t "$SES" C-c
	lab_wait_until 5 vm_lacks lab1 '^sleep 100$' \
		|| fail "5 s after Ctrl-C, sleep 100 still runs in lab1; the pane: $(pane)"
	ms=$(((${EPOCHREALTIME/./} - t0) / 1000))
	# shellcheck disable=SC2016 # for the shell in the VM
	got="$(ask alive 'echo $((6 * 7))' 5)"
	[[ "$got" == 42 ]] || fail "after Ctrl-C the shell does not answer; the pane: $(pane)"
	pass "Ctrl-C ends sleep 100 in lab1 within $ms ms and the shell answers again"
}

test_exit_status_comes_back() {
	type_line "exit 3"
	lab_wait_until 10 test -s "$TMP/$SES.status" \
		|| fail "vmbusexec did not return within 10 s of 'exit 3'; the pane: $(pane)"
	[[ "$(cat "$TMP/$SES.status")" == 3 ]] || fail "vmbusexec -it returned $(cat "$TMP/$SES.status") after 'exit 3'"
	pass "exit 3 in the remote shell: vmbusexec -it returns 3"
}

# terminal_sane - the session's terminal is as before vmbusexec ran (stty -g), icanon and echo on.
terminal_sane() {
	local f="$TMP/$SES"
	lab_wait_until 5 test -s "$f.stty-a" || { echo "the session script did not record the terminal"; return; }
	[[ "$(cat "$f.stty-before")" == "$(cat "$f.stty-after")" ]] \
		|| echo "the local terminal's settings changed: before $(cat "$f.stty-before"), after $(cat "$f.stty-after")"
	grep -qw -- icanon "$f.stty-a" && ! grep -qw -- -icanon "$f.stty-a" \
		&& grep -qw -- echo "$f.stty-a" && ! grep -qw -- -echo "$f.stty-a" \
		|| echo "the terminal lacks icanon or echo: $(cat "$f.stty-a")"
}

test_terminal_restored() {
	local why
	why="$(terminal_sane)"
	[[ -z "$why" ]] || fail "after vmbusexec -it exited: $why"
	pass "after vmbusexec -it the local terminal is as before (stty -g), icanon and echo on"
}

# SIGTERM (from timeout(1), systemd, kill) ends `ssh -t host bash` (ssh exits 255 and the remote
# shell gets SIGHUP from its pty). vmbusexec -it must end too, and restore the terminal.
test_sigterm_ends_session() {
	local pid why
	SES=term
	start_session term 24 80
	lab_wait_until 10 pane_has '[#$]$' || fail "no shell prompt within 10 s in the second session; the pane: $(pane)"
	lab_wait_until 5 test -s "$TMP/term.pid" || fail "the second session script did not start"
	pid="$(pgrep -P "$(cat "$TMP/term.pid")" | head -n 1)"
	[[ -n "$pid" ]] || fail "no vmbusexec under the second session script"
	kill -TERM "$pid"
	if ! lab_wait_until 5 test -s "$TMP/term.status"; then
		fail_soft "vmbusexec -it lab1 bash --norc still runs 5 s after SIGTERM (ssh -t ends with 255): it forwards SIGTERM to the remote process group (cmd/cli_exec.c exec_sig_cb), where an interactive bash ignores it"
		kill -KILL "$pid"
		lab_wait_until 5 test -s "$TMP/term.status" || true
		return
	fi
	why="$(terminal_sane)"
	[[ -z "$why" ]] || { fail_soft "after SIGTERM ended vmbusexec -it: $why"; return; }
	pass "SIGTERM ends vmbusexec -it (status $(cat "$TMP/term.status")) and the terminal is restored"
}

main() {
	lab_require_root
	lab_require_build "${1:-}"
	lab_require_tools jq tmux
	VX="$VB_BUILD_DIR/vmbusexec"
	[[ -x "$VX" ]] || skip "binaries not built (no $VX)"
	TMP="$(mktemp -d /tmp/vbx-exec-tty.XXXXXX)"
	lab_at_exit rm -rf "$TMP"
	wait_for_free_lab
	lab_up 1
	export VMBUSIFY_CONTROL
	VMBUSIFY_CONTROL="$(realpath -m "$VB_LAB_DIR")/control.sock"
	lab_wait_until 10 vm_is_up lab1 || fail "lab1 is not up in the daemon"
	SES=shell
	start_session shell 24 80
	test_prompt_comes
	test_is_a_terminal
	test_size_matches_pane
	test_size_follows_resize
	test_ctrl_c_interrupts
	test_exit_status_comes_back
	test_terminal_restored
	test_sigterm_ends_session
	lab_done
}

main "$@"
