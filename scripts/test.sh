#!/usr/bin/env bash
# The whole test run, as CI does it (a placeholder for the lead to complete):
# install the dependencies, build Release and run every CTest test (unit and
# lab; the lab tests need root and skip without it), then build Asan and run
# the unit tests under AddressSanitizer and UndefinedBehaviorSanitizer.
#
# Usage: scripts/test.sh
# Exit codes: 0 everything passed; otherwise that of the first step that failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

step() {
	printf '==> %s\n' "$*"
}

step "dependencies"
scripts/deps.sh
step "build Release"
scripts/build.sh Release
step "test Release: unit and lab"
ctest --test-dir build/release --output-on-failure -j2
step "build Asan"
scripts/build.sh Asan
step "test Asan: unit"
ctest --test-dir build/asan --output-on-failure -L unit
