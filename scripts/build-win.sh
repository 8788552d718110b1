#!/usr/bin/env bash
# Cross-builds VMBusify for 64-bit Windows with mingw-w64 (CMake, Ninja),
# warnings as errors: the core library over platform/win and its tests, with
# mimalloc as the project's allocator (Debian's source package built for
# mingw-w64 by scripts/mimalloc-win.sh, cached after the first build).
#
# Usage: scripts/build-win.sh [Release|Debug] [BUILDDIR] [CMAKE_ARG...]
#   The build type defaults to Release; BUILDDIR to build-win/ under the
#   repository (a relative BUILDDIR is taken from the current directory).
#   Needs gcc-mingw-w64-x86-64, g++-mingw-w64-x86-64 and dpkg-dev (scripts/deps.sh).
#
# Exit codes:
#   0  built
#   1  cmake failed to configure or to build
#   2  usage error
#   3  the mingw-w64 cross compiler is missing
set -euo pipefail

build_win_die() {
	local code="$1"
	shift
	printf 'vmbusify: build-win: %s\n' "$*" >&2
	exit "$code"
}

main() {
	local repo type dir mimalloc
	repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
	case "${1:-}" in
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		return 0
		;;
	esac
	case "${1:-Release}" in
	[Rr]elease) type=Release ;;
	[Dd]ebug) type=Debug ;;
	*) build_win_die 2 "unknown build type '$1' (Release or Debug)" ;;
	esac
	dir="${2:-$repo/build-win}"
	shift $(($# < 2 ? $# : 2))
	command -v x86_64-w64-mingw32-gcc >/dev/null && command -v x86_64-w64-mingw32-g++ >/dev/null \
		|| build_win_die 3 "x86_64-w64-mingw32-gcc/g++ not found (install gcc-mingw-w64-x86-64 and g++-mingw-w64-x86-64, or run scripts/deps.sh)"

	# mimalloc for the executables (cmake/windows.cmake): built once, then cached.
	mimalloc="$("$repo/scripts/mimalloc-win.sh")" \
		|| build_win_die 1 "mimalloc for mingw-w64 could not be built (scripts/mimalloc-win.sh)"
	cmake -S "$repo" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" \
		-DCMAKE_TOOLCHAIN_FILE="$repo/cmake/mingw-w64.cmake" -DVB_WERROR=ON \
		-DVB_MIMALLOC_DIR="$mimalloc" "$@" \
		|| build_win_die 1 "configure failed ($type, $dir)"
	cmake --build "$dir" -j "$(nproc)" || build_win_die 1 "build failed ($type, $dir)"
	echo "vmbusify: build-win: $type Windows build in $(cd "$dir" && pwd)"
}

main "$@"
