#!/usr/bin/env bash
# Cross-builds the Windows port (scripts/build-win.sh) and runs its tests
# under Wine: the OS-free unit tests, the Windows platform tests (IOCP loop,
# TCP, named pipes, timers, the blocking-thread shim, process spawn, hvsock
# addresses, the proxy's sockets, cp's file system, the daemon folder's ACLs,
# the event log's source) and the interoperability tests (tests/win/interop.sh;
# skipped when no Linux build is found): vmbusify.exe against a Linux
# vmbusify-agent, the Linux CLI against vmbusify-agent.exe, and its proxy port
# through a Linux vmbusifyd, and vmbusifyd.exe (its control pipe, proxy port,
# forwards, the guest's egress, the service's install and uninstall, its
# folder's permissions) against a Linux vmbusify-agent. Wine runs in a fresh
# prefix under a temporary directory, removed afterwards.
#
# Usage: scripts/test-win.sh [BUILDDIR]     (default: build-win/ in the repository)
# Environment: VB_WIN_TEST_TIMEOUT (seconds per test executable, default 120);
#   VB_LINUX_BUILD (a Linux build directory with vmbusify-agent, vmbusify and
#   vmbusifyd, for the interoperability tests)
# Needs: gcc-mingw-w64-x86-64, g++-mingw-w64-x86-64 and wine64 (scripts/deps.sh).
#
# Exit codes:
#   0   every test passed
#   1   the build or a test failed, or the cross compiler is missing
#   77  Wine is missing or cannot start (the reason is printed); nothing ran
set -euo pipefail

test_win_die() {
	local code="$1"
	shift
	printf 'vmbusify: test-win: %s\n' "$*" >&2
	exit "$code"
}

# test_win_find_wine - prints the Wine loader: Debian's wine64 package puts
# it in /usr/lib/wine, the wine package adds wine on the PATH.
test_win_find_wine() {
	local w
	for w in "$(command -v wine64 || true)" /usr/lib/wine/wine64 "$(command -v wine || true)"; do
		if [[ -n "$w" && -x "$w" ]]; then
			echo "$w"
			return 0
		fi
	done
	return 1
}

test_win_cleanup() {
	local server
	[[ -n "${WINEPREFIX:-}" && -d "$WINEPREFIX" ]] || return 0
	for server in "$(command -v wineserver || true)" /usr/lib/wine/wineserver64 /usr/lib/wine/wineserver; do
		if [[ -n "$server" && -x "$server" ]]; then
			"$server" -k >/dev/null 2>&1 || true
			break
		fi
	done
	rm -rf "$WINEPREFIX"
}

main() {
	local repo dir wine start rc=0
	repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
	case "${1:-}" in
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		return 0
		;;
	esac
	dir="${1:-$repo/build-win}"
	start=$SECONDS

	wine="$(test_win_find_wine)" || {
		echo "vmbusify: test-win: skipped: Wine not found (install wine64, or run scripts/deps.sh)" >&2
		exit 77
	}
	"$repo/scripts/build-win.sh" Release "$dir" >/dev/null || test_win_die 1 "the Windows build failed"

	WINEPREFIX="$(mktemp -d "${TMPDIR:-/tmp}/vb-wine.XXXXXX")"
	export WINEPREFIX WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
	trap test_win_cleanup EXIT
	# A new prefix is made on first use; Wine that cannot do this cannot run the tests.
	if ! timeout 180 "$wine" cmd /c "exit 0" >"$WINEPREFIX.log" 2>&1; then
		echo "vmbusify: test-win: skipped: Wine ($wine) cannot start:" >&2
		tail -n 5 "$WINEPREFIX.log" >&2
		rm -f "$WINEPREFIX.log"
		exit 77
	fi
	rm -f "$WINEPREFIX.log"

	ctest --test-dir "$dir" --output-on-failure --no-tests=error -L win -j"$(nproc)" \
		--timeout "${VB_WIN_TEST_TIMEOUT:-120}" || rc=$?
	echo "vmbusify: test-win: build and tests took $((SECONDS - start)) s"
	return "$rc"
}

main "$@"
