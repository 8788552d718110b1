#!/usr/bin/env bash
# Every test, as CI runs it: installs the dependencies, then
#   1. Release build: unit tests (cmocka, both loop backends), the hostile-
#      guest suite (tests/hostile), the lab integration suites (network
#      namespaces, real agent and daemon, both backends; they skip without
#      root; load and soak on io_uring), then the QEMU guest suite (tests/vm:
#      a real guest over virtio-serial; skips without QEMU or a guest kernel);
#   2. Asan build (AddressSanitizer + UndefinedBehaviorSanitizer, with
#      LeakSanitizer in every process): the unit, hostile and lab tests; any
#      sanitizer report in any process fails the run;
#   3. Tsan build (ThreadSanitizer): the unit tests and the lab suites on
#      io_uring; any report in any process fails the run;
#   4. Windows build (mingw-w64, -Werror): its unit and platform tests under
#      Wine (scripts/test-win.sh);
#   5. Fuzz build (clang, libFuzzer): every fuzz target replays its committed
#      corpus and runs for VB_FUZZ_SECONDS (default 20) seconds.
#
# Usage: scripts/test.sh            (as root on Debian 12, from anywhere)
# Environment: VB_FUZZ_SECONDS, VB_SKIP_FUZZ=1, VB_SKIP_ASAN=1, VB_SKIP_TSAN=1,
#              VB_SKIP_WIN=1
# Exit codes: 0 everything passed; otherwise that of the first step that failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="$(nproc)"
start=$SECONDS

# step TEXT - a heading, with the minutes and seconds since the start.
step() {
	printf '\n==> [%02d:%02d] %s\n' $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) "$*"
}

# The hostile-guest suite uses Unix sockets under /tmp only, never the lab's
# namespaces, and spends its time waiting on its scenarios: it runs beside the
# lab suites instead of before them.
# hostile_start BUILDDIR - starts it in the background, its output in a file.
hostile_start() {
	hostile_log="$(mktemp /tmp/vb-hostile-ctest.XXXXXX)"
	ctest --test-dir "$1" --output-on-failure --no-tests=error -L hostile >"$hostile_log" 2>&1 &
	hostile_pid=$!
}

# hostile_finish - waits for it, prints what it printed; fails as it failed.
hostile_finish() {
	local rc=0
	wait "$hostile_pid" || rc=$?
	step "hostile-guest suite (ran beside the lab suites)"
	cat "$hostile_log"
	rm -f "$hostile_log"
	return "$rc"
}

# sanitizer_check DIR - fails when a sanitizer wrote a report into DIR.
sanitizer_check() {
	local reports
	reports="$(find "$1" -type f 2>/dev/null | head -n 5)"
	[ -z "$reports" ] && return 0
	echo "vmbusify: test: sanitizer reports:" >&2
	for f in $reports; do
		echo "--- $f" >&2
		# The first report in full, then of a leak report each leak's first frames.
		awk '/^(Direct|Indirect) leak/ { n = 8 } NR <= 40 || n-- > 0 || /^SUMMARY/' "$f" >&2
	done
	return 1
}

step "dependencies"
scripts/deps.sh

step "Release build"
scripts/build.sh Release >/dev/null
step "Release: unit, hostile-guest and lab tests"
ctest --test-dir build/release --output-on-failure --no-tests=error -j"$jobs" -L unit
hostile_start build/release
ctest --test-dir build/release --output-on-failure --no-tests=error -L lab
hostile_finish
step "Release: the QEMU guest suite (tests/vm)"
ctest --test-dir build/release --output-on-failure --no-tests=error -L vm

if [ "${VB_SKIP_ASAN:-0}" != 1 ]; then
	step "Asan build"
	scripts/build.sh Asan >/dev/null
	reports="$(mktemp -d /tmp/vb-sanitizer.XXXXXX)"
	# LeakSanitizer watches every process, the daemon and the agents too: what
	# is live when they stop stays reachable (the loops' in-flight lists), so a
	# report is memory that was lost.
	export ASAN_OPTIONS="log_path=$reports/asan:abort_on_error=0:detect_leaks=1"
	export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
	step "Asan: unit, hostile-guest and lab tests (with LeakSanitizer)"
	ctest --test-dir build/asan --output-on-failure --no-tests=error -j"$jobs" -L unit
	hostile_start build/asan
	ctest --test-dir build/asan --output-on-failure --no-tests=error -L lab
	hostile_finish
	sanitizer_check "$reports"
	unset ASAN_OPTIONS UBSAN_OPTIONS
fi

if [ "${VB_SKIP_TSAN:-0}" != 1 ]; then
	step "Tsan build"
	scripts/build.sh Tsan >/dev/null
	reports="$(mktemp -d /tmp/vb-sanitizer.XXXXXX)"
	export TSAN_OPTIONS="log_path=$reports/tsan:halt_on_error=1:second_deadlock_stack=1"
	# The lab suites once, on io_uring: the threads are the same on both backends.
	step "Tsan: unit and lab tests"
	ctest --test-dir build/tsan --output-on-failure --no-tests=error -j"$jobs" -L unit
	ctest --test-dir build/tsan --output-on-failure --no-tests=error -L lab -R '/uring$'
	sanitizer_check "$reports"
	unset TSAN_OPTIONS
fi

if [ "${VB_SKIP_WIN:-0}" != 1 ]; then
	step "Windows: mingw-w64 cross build, tests under Wine"
	rc=0
	scripts/test-win.sh build/win || rc=$?
	# 77: Wine cannot start here (test-win.sh said why); the build itself passed.
	[ "$rc" = 0 ] || [ "$rc" = 77 ] || exit "$rc"
fi

if [ "${VB_SKIP_FUZZ:-0}" != 1 ]; then
	step "Fuzz build (clang, libFuzzer)"
	CC=clang CXX=clang++ scripts/build.sh Debug build/fuzz -DVB_FUZZ=ON -DVB_BENCH=OFF \
		-DVB_FUZZ_SECONDS="${VB_FUZZ_SECONDS:-20}" >/dev/null
	step "Fuzz: replay the corpora, then fuzz each target for ${VB_FUZZ_SECONDS:-20} s"
	ctest --test-dir build/fuzz --output-on-failure --no-tests=error -j"$jobs" -L fuzz
fi
step "all tests passed"
