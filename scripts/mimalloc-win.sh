#!/usr/bin/env bash
# Builds mimalloc for the Windows executables (scripts/build-win.sh): Debian
# packages it for Linux only, so this fetches Debian's source package of
# mimalloc (bookworm main) with apt, checked as apt checks it (the Release
# file's signature against debian-archive-keyring, the Sources index's hashes,
# then dpkg-source checks the .dsc's checksums), builds it with the mingw-w64
# cross compiler as a static library (no override: see cmake/windows.cmake)
# and installs it under a cache directory. The first run takes about 20 s;
# later runs find the cache and touch no network. Prints the install prefix
# (include/mimalloc.h, lib/libmimalloc-static.a) on stdout.
#
# Usage: scripts/mimalloc-win.sh [CACHEDIR]
#   CACHEDIR defaults to $VB_MIMALLOC_CACHE, else /var/cache/vmbusify/mimalloc-win
#   when that can be written, else ~/.cache/vmbusify/mimalloc-win.
# Environment: VB_MIMALLOC_REFRESH=1 fetches and builds again (a newer Debian
#   revision, say) even when a build is cached.
# Needs: apt-get, dpkg-source (dpkg-dev), cmake, ninja, gcc-mingw-w64-x86-64.
#
# Exit codes:
#   0  the prefix is printed
#   1  fetching, checking or building failed (the log's tail is shown)
#   2  usage error
set -euo pipefail

readonly MIMALLOC_SUITE="bookworm"
readonly MIMALLOC_MIRROR="http://deb.debian.org/debian"
readonly MIMALLOC_KEYRING="/usr/share/keyrings/debian-archive-keyring.gpg"

mimalloc_die() {
	local code="$1"
	shift
	printf 'vmbusify: mimalloc-win: %s\n' "$*" >&2
	exit "$code"
}

# mimalloc_cache_dir - the cache directory: the argument, the environment,
# /var/cache/vmbusify if writable, else the user's cache.
mimalloc_cache_dir() {
	local dir="${1:-${VB_MIMALLOC_CACHE:-}}"
	if [[ -z "$dir" ]]; then
		if mkdir -p /var/cache/vmbusify 2>/dev/null && [[ -w /var/cache/vmbusify ]]; then
			dir=/var/cache/vmbusify/mimalloc-win
		else
			dir="${XDG_CACHE_HOME:-$HOME/.cache}/vmbusify/mimalloc-win"
		fi
	fi
	mkdir -p "$dir" || mimalloc_die 1 "cannot create $dir"
	(cd "$dir" && pwd)
}

# mimalloc_run LOG CMD... - runs a step with its output in LOG, shown if it fails.
mimalloc_run() {
	local log="$1"
	shift
	if ! "$@" >>"$log" 2>&1; then
		tail -n 20 "$log" >&2
		mimalloc_die 1 "failed: $* (log: $log)"
	fi
}

# mimalloc_apt CACHE ARGS... - apt-get with a private source list (deb-src
# only), lists and archives under CACHE: the system's apt state is untouched.
mimalloc_apt() {
	local cache="$1"
	shift
	apt-get -q \
		-o Dir::Etc::sourcelist="$cache/apt/sources.list" \
		-o Dir::Etc::sourceparts="$cache/apt/sources.list.d" \
		-o Dir::Etc::preferencesparts="$cache/apt/preferences.d" \
		-o Dir::State::Lists="$cache/apt/lists" \
		-o Dir::Cache="$cache/apt/cache" \
		-o APT::Sandbox::User=root \
		"$@"
}

# mimalloc_source CACHE - downloads the source package's files into CACHE/dl
# (apt checks each against the signed index before keeping it).
mimalloc_source() {
	local cache="$1"
	(cd "$cache/dl" && mimalloc_apt "$cache" source --download-only mimalloc)
}

# mimalloc_fetch CACHE LOG - downloads and unpacks the source package into
# CACHE/src/mimalloc-VERSION; prints that directory.
mimalloc_fetch() {
	local cache="$1" log="$2" dsc
	mkdir -p "$cache/apt/sources.list.d" "$cache/apt/preferences.d" \
		"$cache/apt/lists/partial" "$cache/apt/cache/archives/partial"
	[[ -r "$MIMALLOC_KEYRING" ]] || mimalloc_die 1 "$MIMALLOC_KEYRING missing (install debian-archive-keyring)"
	printf 'deb-src [signed-by=%s] %s %s main\n' "$MIMALLOC_KEYRING" "$MIMALLOC_MIRROR" \
		"$MIMALLOC_SUITE" >"$cache/apt/sources.list"
	mimalloc_run "$log" mimalloc_apt "$cache" update
	rm -rf "$cache/dl"
	mkdir -p "$cache/dl"
	mimalloc_run "$log" mimalloc_source "$cache"
	dsc="$(find "$cache/dl" -maxdepth 1 -name 'mimalloc_*.dsc' | head -n 1)"
	[[ -n "$dsc" ]] || mimalloc_die 1 "apt-get source gave no .dsc (log: $log)"
	rm -rf "$cache/src"
	mkdir -p "$cache/src"
	# The uploader's signature needs debian-keyring, which is not installed;
	# the .dsc itself came through the signed Release file and its hashes.
	mimalloc_run "$log" dpkg-source -x "$dsc" "$cache/src/mimalloc"
	echo "$cache/src/mimalloc"
}

# mimalloc_build SRC PREFIX LOG - cross-builds the static library into PREFIX.
mimalloc_build() {
	local src="$1" prefix="$2" log="$3" repo
	repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
	rm -rf "$prefix" "$prefix.build"
	mimalloc_run "$log" cmake -S "$src" -B "$prefix.build" -G Ninja \
		-DCMAKE_TOOLCHAIN_FILE="$repo/cmake/mingw-w64.cmake" -DCMAKE_BUILD_TYPE=Release \
		-DCMAKE_INSTALL_PREFIX="$prefix" -DMI_BUILD_SHARED=OFF -DMI_BUILD_OBJECT=OFF \
		-DMI_BUILD_STATIC=ON -DMI_BUILD_TESTS=OFF -DMI_OVERRIDE=OFF -DMI_WIN_REDIRECT=OFF \
		-DMI_INSTALL_TOPLEVEL=ON
	mimalloc_run "$log" cmake --build "$prefix.build" -j "$(nproc)"
	mimalloc_run "$log" cmake --install "$prefix.build"
	rm -rf "$prefix.build"
	[[ -f "$prefix/lib/libmimalloc-static.a" && -f "$prefix/include/mimalloc.h" ]] \
		|| mimalloc_die 1 "the build left no lib/libmimalloc-static.a (log: $log)"
}

main() {
	local cache log src version prefix
	case "${1:-}" in
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		return 0
		;;
	esac
	[[ $# -le 1 ]] || mimalloc_die 2 "too many arguments (usage: mimalloc-win.sh [CACHEDIR])"
	cache="$(mimalloc_cache_dir "${1:-}")"
	# The cached build: "current" names the prefix of the last good one.
	if [[ "${VB_MIMALLOC_REFRESH:-0}" != 1 && -f "$cache/current/.vb-built" ]]; then
		(cd "$cache/current" && pwd -P)
		return 0
	fi
	command -v x86_64-w64-mingw32-gcc >/dev/null || mimalloc_die 1 "x86_64-w64-mingw32-gcc not found (scripts/deps.sh)"
	command -v dpkg-source >/dev/null || mimalloc_die 1 "dpkg-source not found (install dpkg-dev, or run scripts/deps.sh)"
	exec 9>"$cache/.lock"
	flock 9 # builds in parallel directories share one cache
	if [[ "${VB_MIMALLOC_REFRESH:-0}" != 1 && -f "$cache/current/.vb-built" ]]; then
		(cd "$cache/current" && pwd -P)
		return 0
	fi
	log="$cache/build.log"
	: >"$log"
	src="$(mimalloc_fetch "$cache" "$log")"
	version="$(cd "$src" && dpkg-parsechangelog -S Version)"
	prefix="$cache/mingw64-$version"
	mimalloc_build "$src" "$prefix" "$log"
	printf '%s\n' "$version" >"$prefix/.vb-built"
	ln -sfn "$(basename "$prefix")" "$cache/current"
	# The index (20 MB) and the unpacked tree are not needed again; the
	# source package itself stays in dl/ as the build's provenance.
	rm -rf "$cache/apt/lists" "$cache/src"
	echo "vmbusify: mimalloc-win: built Debian's mimalloc $version for mingw-w64 in $prefix" >&2
	(cd "$cache/current" && pwd -P)
}

main "$@"
