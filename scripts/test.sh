#!/usr/bin/env bash
# Every test, as CI runs it: installs the dependencies, then
#   1. Release build: unit tests (cmocka, both loop backends) and the lab
#      integration suites (network namespaces, real agent and daemon, both
#      backends; they skip without root);
#   2. Asan build (AddressSanitizer + UndefinedBehaviorSanitizer): the same
#      unit and lab tests; any sanitizer report in any process fails the run;
#   3. Windows build (mingw-w64, -Werror): its unit and platform tests under
#      Wine (scripts/test-win.sh);
#   4. Fuzz build (clang, libFuzzer): every fuzz target replays its committed
#      corpus and runs for VB_FUZZ_SECONDS (default 20) seconds.
#
# Usage: scripts/test.sh            (as root on Debian 12, from anywhere)
# Environment: VB_FUZZ_SECONDS, VB_SKIP_FUZZ=1, VB_SKIP_ASAN=1, VB_SKIP_WIN=1
# Exit codes: 0 everything passed; otherwise that of the first step that failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="$(nproc)"

step() {
	printf '\n==> %s\n' "$*"
}

# sanitizer_check DIR - fails when a sanitizer wrote a report into DIR.
sanitizer_check() {
	local reports
	reports="$(find "$1" -type f 2>/dev/null | head -n 5)"
	[ -z "$reports" ] && return 0
	echo "vmbusify: test: sanitizer reports:" >&2
	for f in $reports; do
		echo "--- $f" >&2
		head -n 40 "$f" >&2
	done
	return 1
}

step "dependencies"
scripts/deps.sh

step "Release build"
scripts/build.sh Release >/dev/null
step "Release: unit and lab tests"
ctest --test-dir build/release --output-on-failure --no-tests=error -j"$jobs" -L unit
ctest --test-dir build/release --output-on-failure --no-tests=error -L lab

if [ "${VB_SKIP_ASAN:-0}" != 1 ]; then
	step "Asan build"
	scripts/build.sh Asan >/dev/null
	reports="$(mktemp -d /tmp/vb-sanitizer.XXXXXX)"
	export ASAN_OPTIONS="log_path=$reports/asan:abort_on_error=0:detect_leaks=1"
	export UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1"
	step "Asan: unit tests (with LeakSanitizer)"
	ctest --test-dir build/asan --output-on-failure --no-tests=error -j"$jobs" -L unit
	# The agent and the daemon stop their loops without tearing down live
	# sessions (a graceful shutdown is issue 8's work), so LeakSanitizer would
	# report those at exit: the lab run checks every other ASan/UBSan error.
	step "Asan: lab tests (leak checks off for the long-running programs)"
	ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0" \
		ctest --test-dir build/asan --output-on-failure --no-tests=error -L lab
	sanitizer_check "$reports"
	unset ASAN_OPTIONS UBSAN_OPTIONS
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
