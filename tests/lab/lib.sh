# shellcheck shell=bash
# Shared helpers for the lab test scripts, tests/lab/test_*.sh.
#
# A lab test is run by CTest as `bash tests/lab/test_X.sh BUILDDIR`, with the
# binaries in BUILDDIR and VMBUSIFY_BACKEND set. It reads like this:
#
#   . "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#   lab_require_root
#   lab_require_build "${1:-}"
#   lab_up 2                      # the lab goes down again on exit, whatever happens
#   lab_host curl -fsS http://198.51.100.80/ >/dev/null || fail "host reaches the server"
#   pass "host reaches the server"
#   lab_done
#
# Exit codes (CTest's): 0 passed, 1 failed, 77 skipped (with the reason printed).
#
# A failed check either stops the test (fail) or is counted and the test goes
# on (fail_soft); either way the test ends with "N passed, M failed" and exits 1.
#
# Provides: VB_REPO_DIR, LAB_SH, VB_BUILD_DIR, VB_BIN_DIR (exported), VB_LAB_DIR
# (exported), LAB_TEST_NAME; lab_require_root, lab_require_build, lab_require_tools,
# lab_up, lab_arm_cleanup, lab_down, lab_cleanup, lab_at_exit, lab_respawn, lab_host,
# lab_vm, lab_status, lab_pid_alive, lab_wait_until, pass, fail, fail_soft, skip,
# skip_part, lab_done.

set -Eeuo pipefail

# lab_on_err - the ERR trap: a command failing outside a check stops the test;
# say which one, once.
lab_on_err() {
	local rc=$?
	[[ $BASH_SUBSHELL -eq 0 && -z "${LAB_ERR_SHOWN:-}" ]] || return 0
	LAB_ERR_SHOWN=1
	printf 'FAIL: %s: line %s: %s exited %s\n' "$LAB_TEST_NAME" "${BASH_LINENO[0]}" \
		"$BASH_COMMAND" "$rc" >&2
}
trap lab_on_err ERR

VB_REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LAB_SH="$VB_REPO_DIR/scripts/lab.sh"
LAB_TEST_NAME="$(basename "$0" .sh)"
LAB_PASSED=0
LAB_FAILED=0
LAB_SUMMARY_SHOWN=0
LAB_STARTED=0
LAB_AT_EXIT=()
export VB_LAB_DIR="${VB_LAB_DIR:-/run/vmbusify/lab}"

# pass MSG - record one behaviour that held.
pass() {
	LAB_PASSED=$((LAB_PASSED + 1))
	printf 'PASS: %s: %s\n' "$LAB_TEST_NAME" "$*"
}

# lab_summary - the closing line, "N passed, M failed", printed once.
lab_summary() {
	[[ $LAB_SUMMARY_SHOWN -eq 0 ]] || return 0
	LAB_SUMMARY_SHOWN=1
	printf '%s: %d passed, %d failed\n' "$LAB_TEST_NAME" "$LAB_PASSED" "$LAB_FAILED"
}

# fail MSG - report the behaviour that did not hold and stop (the lab goes down).
fail() {
	LAB_FAILED=$((LAB_FAILED + 1))
	printf 'FAIL: %s: %s\n' "$LAB_TEST_NAME" "$*" >&2
	lab_summary
	exit 1
}

# fail_soft MSG - report the behaviour that did not hold and go on; lab_done fails.
fail_soft() {
	LAB_FAILED=$((LAB_FAILED + 1))
	printf 'FAIL: %s: %s\n' "$LAB_TEST_NAME" "$*" >&2
}

# skip REASON - this machine cannot run the test: exit 77 with the reason.
skip() {
	printf 'SKIP: %s: %s\n' "$LAB_TEST_NAME" "$*"
	exit 77
}

# skip_part REASON - one behaviour cannot be checked on this machine: say so
# (counted neither as passed nor as failed) and go on.
skip_part() {
	printf 'SKIP: %s: %s\n' "$LAB_TEST_NAME" "$*"
}

# lab_done - the closing line; call last. Exits 1 if any check failed.
lab_done() {
	lab_summary
	[[ $LAB_FAILED -eq 0 ]] || exit 1
}

lab_require_root() {
	[[ "$(id -u)" -eq 0 ]] || skip "needs root"
}

# lab_require_build BUILDDIR - use the binaries in BUILDDIR, or skip if there are none.
lab_require_build() {
	[[ -n "${1:-}" ]] || fail "usage: $LAB_TEST_NAME.sh BUILDDIR"
	VB_BUILD_DIR="$(cd "$1" 2>/dev/null && pwd)" || skip "binaries not built (no $1)"
	local prog
	for prog in vmbusify-agent vmbusifyd; do
		[[ -x "$VB_BUILD_DIR/$prog" ]] || skip "binaries not built (no $VB_BUILD_DIR/$prog)"
	done
	export VB_BIN_DIR="$VB_BUILD_DIR"
}

# lab_require_tools TOOL... - skip unless every TOOL is installed.
lab_require_tools() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null || skip "$tool not installed (run scripts/deps.sh)"
	done
}

# lab_at_exit CMD... - run CMD when the test exits, whatever happens (the last
# registered first, before the lab goes down); its failure is ignored.
lab_at_exit() {
	local q
	printf -v q '%q ' "$@"
	LAB_AT_EXIT+=("$q")
}

# lab_cleanup - the EXIT trap: run the lab_at_exit commands; if the lab was
# brought up, show its state and logs on failure, then always take it down,
# keeping the test's exit status.
lab_cleanup() {
	local rc=$? i
	trap - EXIT
	if [[ $rc -ne 0 && $rc -ne 77 && $LAB_SUMMARY_SHOWN -eq 0 ]]; then
		# Stopped by a command failing outside a check (the ERR trap said which).
		[[ $LAB_FAILED -gt 0 ]] || LAB_FAILED=1
		lab_summary
	fi
	for ((i = ${#LAB_AT_EXIT[@]} - 1; i >= 0; i--)); do
		eval "${LAB_AT_EXIT[i]}" >/dev/null 2>&1 || true
	done
	[[ $LAB_STARTED -eq 1 ]] || exit "$rc"
	if [[ $rc -ne 0 && $rc -ne 77 && -d "$VB_LAB_DIR" ]]; then
		"$LAB_SH" status >&2 || true
		local log
		for log in "$VB_LAB_DIR"/*.log; do
			[[ -f "$log" ]] || continue
			echo "--- last lines of $log" >&2
			tail -n 20 "$log" >&2
		done
	fi
	"$LAB_SH" down >/dev/null 2>&1 || echo "$LAB_TEST_NAME: lab.sh down failed" >&2
	exit "$rc"
}

trap lab_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# lab_arm_cleanup - from now on the lab goes down on exit (for tests that bring
# it up themselves, e.g. with `vmbusify lab up`).
lab_arm_cleanup() {
	lab_require_tools ip jq curl dnsmasq
	LAB_STARTED=1
}

# lab_up N - bring the lab up with N VMs; it goes down on exit.
lab_up() {
	lab_arm_cleanup
	"$LAB_SH" up --vms "$1" >/dev/null || fail "lab.sh up --vms $1 failed"
}

# lab_respawn NAME NETNS CMD... - start CMD in NETNS the way lab.sh starts the
# lab's processes: in its own session, marked VBL_OWNER=DIR (so that `down`
# takes it down), output appended to DIR/NAME.log, PID written to DIR/NAME.pid.
# Prints the new PID. For restarting an agent or the daemon that a test killed.
lab_respawn() {
	local name="$1" ns="$2" dir pidfile i
	shift 2
	dir="$(realpath -m -- "$VB_LAB_DIR")"
	pidfile="$dir/$name.pid"
	rm -f "$pidfile"
	# shellcheck disable=SC2016
	VBL_OWNER="$dir" setsid bash -c 'echo "$$" >"$1"; shift; exec "$@"' lab-spawn \
		"$pidfile" ip netns exec "$ns" "$@" </dev/null >>"$dir/$name.log" 2>&1 &
	for ((i = 0; i < 50; i++)); do
		if [[ -s "$pidfile" ]]; then
			cat "$pidfile"
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# lab_wait_until SECONDS CMD... - true once CMD succeeds, false if it has not
# within SECONDS (tried every 0.1 s).
lab_wait_until() {
	local deadline
	deadline=$(($(date +%s%N) + ${1%.*} * 1000000000))
	shift
	until "$@" >/dev/null 2>&1; do
		(($(date +%s%N) < deadline)) || return 1
		sleep 0.1
	done
}

lab_down() {
	"$LAB_SH" down
}

# lab_host CMD... - run CMD in the lab's host namespace.
lab_host() {
	"$LAB_SH" exec-host "$@"
}

# lab_vm VM CMD... - run CMD in VM's namespace (VM: lab1..labN).
lab_vm() {
	"$LAB_SH" exec "$@"
}

# lab_status JQ_FILTER - print one field of `lab.sh status --json`.
lab_status() {
	"$LAB_SH" status --json | jq -r "$1"
}

# lab_pid_alive PID - true if any thread of PID runs (a zombie does not count).
# Every thread counts: after SIGKILL the main thread of a multi-threaded process
# may be a zombie while the others are still exiting and holding its sockets.
lab_pid_alive() {
	local task stat
	[[ "$1" =~ ^[0-9]+$ ]] || return 1
	for task in /proc/"$1"/task/*/stat; do
		stat="$(cat "$task" 2>/dev/null)" || continue
		stat="${stat##*) }"
		[[ "${stat:0:1}" == [ZX] ]] || return 0
	done
	return 1
}
