#!/usr/bin/env bash
# Configures (CMake, Ninja) and builds VMBusify.
#
# Usage: scripts/build.sh [Release|Debug|Asan|Tsan|Lsan] [BUILDDIR] [CMAKE_ARG...]
#   The build type defaults to Release (lower case is accepted too). BUILDDIR
#   defaults to build/release, build/debug, build/asan, build/tsan or build/lsan under the repository;
#   a relative BUILDDIR is taken from the current directory. Further arguments
#   (for example -DVB_FUZZ=ON) go to the cmake configure step.
#   The binaries (vmbusify, vmbusifyd, vmbusify-agent) land in BUILDDIR itself.
#
# Exit codes:
#   0  built
#   1  cmake failed to configure or to build
#   2  usage error
set -euo pipefail

build_die() {
	local code="$1"
	shift
	printf 'vmbusify: build: %s\n' "$*" >&2
	exit "$code"
}

# build_type_name - print the CMake build type for a user-given one, or fail.
build_type_name() {
	case "${1,,}" in
	release) echo Release ;;
	debug) echo Debug ;;
	asan) echo Asan ;;
	tsan) echo Tsan ;;
	lsan) echo Lsan ;;
	*) build_die 2 "unknown build type '$1' (Release, Debug, Asan, Tsan or Lsan)" ;;
	esac
}

main() {
	local repo type dir
	repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
	case "${1:-}" in
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		return 0
		;;
	esac
	type="$(build_type_name "${1:-Release}")"
	dir="${2:-$repo/build/${type,,}}"
	shift $(($# < 2 ? $# : 2))

	cmake -S "$repo" -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" "$@" \
		|| build_die 1 "configure failed ($type, $dir)"
	cmake --build "$dir" -j "$(nproc)" || build_die 1 "build failed ($type, $dir)"

	local bins=() prog
	for prog in vmbusify vmbusifyd vmbusify-agent; do
		[[ -x "$dir/$prog" ]] && bins+=("$prog")
	done
	echo "vmbusify: build: $type binaries in $(cd "$dir" && pwd): ${bins[*]:-(none)}"
}

main "$@"
