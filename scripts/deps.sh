#!/usr/bin/env bash
# Installs every Debian package VMBusify needs to build, test and run its lab.
#
# Usage: scripts/deps.sh [--check]
#   (no option)  install what is missing: one `apt-get update`, then one
#                `apt-get install -y --no-install-recommends`; does nothing
#                (and never touches apt) when everything is already installed.
#   --check      only report the missing packages, install nothing.
#
# Exit codes:
#   0  everything is installed (or --check found nothing missing)
#   1  --check found missing packages, or apt-get failed
#   2  usage error
#   4  missing privilege: packages are missing and we are not root (and no sudo)
set -euo pipefail

# One package a line, grouped by what needs it.
readonly DEPS_PACKAGES=(
	# build
	build-essential cmake ninja-build pkg-config git clang
	# libFuzzer and the sanitizer runtimes for clang
	libclang-rt-14-dev
	# libraries
	liburing-dev libmimalloc-dev libjemalloc-dev libmnl-dev libnftables-dev libc-ares-dev libxxhash-dev
	# tests and benchmarks (microsocks and dante-server: what bench/proxy.sh compares against)
	libcmocka-dev libbenchmark-dev python3 jq microsocks dante-server
	# the Windows port: mingw-w64 cross build, its tests under Wine (scripts/test-win.sh)
	gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 wine64
	# mimalloc for mingw-w64 from Debian's source package (scripts/mimalloc-win.sh)
	dpkg-dev debian-archive-keyring xz-utils
	# the lab: namespaces, firewall, real servers and real clients
	iproute2 nftables socat dnsmasq-base curl iperf3 tmux bind9-dnsutils
	openssh-client openssh-server netcat-openbsd procps psmisc iputils-ping
	# the vnet benchmark's comparisons (bench/vnet.sh)
	slirp4netns passt
	# the QEMU lab and tests/vm (scripts/vm-image.sh: the guest's userland and initramfs)
	qemu-system-x86 busybox-static cpio
)

deps_die() {
	local code="$1"
	shift
	printf 'vmbusify: deps: %s\n' "$*" >&2
	exit "$code"
}

# deps_missing - print the packages of DEPS_PACKAGES that are not installed,
# one a line. One dpkg-query call; it lists only the packages it knows.
deps_missing() {
	local installed
	installed="$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' \
		"${DEPS_PACKAGES[@]}" 2>/dev/null | awk '$2 == "installed" { print $1 }')" || true
	local pkg
	for pkg in "${DEPS_PACKAGES[@]}"; do
		if ! grep -qxF -- "$pkg" <<<"$installed"; then
			printf '%s\n' "$pkg"
		fi
	done
}

# deps_install - apt-get update once, then install the given packages quietly.
deps_install() {
	local sudo=()
	if [[ "$(id -u)" -ne 0 ]]; then
		command -v sudo >/dev/null || deps_die 4 "needs root to install: $*"
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	deps_quietly "${sudo[@]}" apt-get update -qq || deps_die 1 "apt-get update failed"
	deps_quietly "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" \
		|| deps_die 1 "apt-get install failed: $*"
}

# deps_quietly - run a command with its output kept back, shown only if it fails.
deps_quietly() {
	local out rc=0
	out="$(mktemp)"
	"$@" >"$out" 2>&1 || rc=$?
	[[ $rc -eq 0 ]] || cat "$out" >&2
	rm -f "$out"
	return "$rc"
}

main() {
	local check=0
	case "${1:-}" in
	"") ;;
	--check) check=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		return 0
		;;
	*) deps_die 2 "unknown option: $1 (usage: deps.sh [--check])" ;;
	esac
	[[ $# -le 1 ]] || deps_die 2 "too many arguments (usage: deps.sh [--check])"

	local missing=()
	mapfile -t missing < <(deps_missing)
	if [[ ${#missing[@]} -eq 0 ]]; then
		[[ $check -eq 0 ]] || echo "vmbusify: deps: all ${#DEPS_PACKAGES[@]} packages installed"
		return 0
	fi
	if [[ $check -eq 1 ]]; then
		printf 'vmbusify: deps: missing: %s\n' "${missing[*]}"
		return 1
	fi
	echo "vmbusify: deps: installing: ${missing[*]}"
	deps_install "${missing[@]}"
	mapfile -t missing < <(deps_missing)
	[[ ${#missing[@]} -eq 0 ]] || deps_die 1 "still missing after install: ${missing[*]}"
}

main "$@"
