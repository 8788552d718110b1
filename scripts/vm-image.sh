#!/usr/bin/env bash
# Builds the QEMU lab's guest: a Debian cloud kernel and an initramfs with a busybox userland,
# the modules the guest needs and the VMBusify agent as its service. Prints where they are.
#
# Usage: scripts/vm-image.sh [--bin-dir DIR] [--print-key]
#   --bin-dir DIR  where vmbusify-agent and vmbusify are (default: VB_BIN_DIR, else the
#                  directory of `command -v vmbusify-agent`)
#   --print-key    print the cache key the image would have, build nothing
# Prints two lines, "kernel=PATH" and "initrd=PATH", on success.
#
# What goes in:
#   kernel    the package linux-image-cloud-amd64 depends on (resolved with apt-cache),
#             fetched with `apt-get download` and unpacked with dpkg-deb; its vmlinuz and
#             the modules below with everything modules.dep would pull in (read from each
#             module's own "depends=" field: no depmod needed), loaded in order by /init
#   modules   virtio_pci and virtio_console (the virtio-serial port), tun (vnet),
#             vsock_loopback with vsock and its virtio transport core (AF_VSOCK, CID 1)
#   userland  busybox from busybox-static (sh, init, ip, ping, wget, nslookup, httpd...),
#             vmbusify-agent and vmbusify (with vmbusexec) from DIR, curl, and every
#             library `ldd` lists for them, at the host's paths
#   /init     busybox init with /etc/inittab: /etc/vmbusify/rcS mounts proc, sys, dev,
#             devpts, /tmp and /run, loads the modules, brings lo up, makes the
#             /dev/virtio-ports/NAME links (no udev) and says "vmbusify-guest: ready";
#             the agent is a respawn entry: `vmbusify-agent --listen
#             serial:///dev/virtio-ports/org.vmbusify.agent`, restarted when it dies.
#             Everything logs to the console (ttyS0).
#
# Cache: VB_VM_CACHE (default /var/cache/vmbusify/vm) holds debs/ (the kernel package, kept
# for offline runs: when apt cannot resolve or fetch, the newest cached kernel package is used)
# and images/KEY/ with vmlinuz and initrd.img. KEY hashes the kernel package, this script,
# the agent's and the CLI's binaries, busybox and curl: any of them changing builds a new image.
# The three newest images are kept.
#
# Exit codes: 0 built or cached; 1 failure; 2 usage; 3 no kernel package can be had (apt
# cannot fetch one and none is cached: the caller may skip); 4 not root.
set -euo pipefail

readonly VMI_KERNEL_META=linux-image-cloud-amd64
readonly VMI_MODULES=(virtio_pci virtio_console tun vsock vsock_loopback)
readonly VMI_PORT_NAME=org.vmbusify.agent
readonly VMI_KEEP_IMAGES=3

VMI_CACHE=""
VMI_BIN_DIR=""
VMI_TMP=""

vmi_die() {
	local code="$1"
	shift
	printf 'vmbusify: vm-image: %s\n' "$*" >&2
	exit "$code"
}

vmi_cleanup() {
	[[ -z "$VMI_TMP" ]] || rm -rf -- "$VMI_TMP"
}

vmi_log() {
	printf 'vmbusify: vm-image: %s\n' "$*" >&2
}

# ---------------------------------------------------------------- the kernel package

# vmi_kernel_name - print the kernel package the meta package depends on, or nothing.
vmi_kernel_name() {
	apt-cache depends "$VMI_KERNEL_META" 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }'
}

# vmi_cached_deb [NAME] - print the newest cached deb of NAME (any cloud kernel if none).
vmi_cached_deb() {
	local glob="${1:-linux-image-*-cloud-amd64}"
	# shellcheck disable=SC2012,SC2086 # names are ours (package_version_arch.deb); glob is one
	ls -1t "$VMI_CACHE/debs/"${glob}_*.deb 2>/dev/null | head -n 1
}

# vmi_kernel_deb - print the path of the kernel package, fetching it if it is not cached.
vmi_kernel_deb() {
	local name deb dl
	name="$(vmi_kernel_name)"
	if [[ -z "$name" && -z "$(vmi_cached_deb)" ]]; then
		# A fresh machine may have no package lists yet: read them once.
		apt-get update -qq >/dev/null 2>&1 || vmi_log "apt-get update failed"
		name="$(vmi_kernel_name)"
	fi
	if [[ -n "$name" ]]; then
		deb="$(vmi_cached_deb "$name")"
		if [[ -z "$deb" ]]; then
			dl="$VMI_TMP/dl"
			mkdir -p "$dl"
			# apt's sandbox user must be able to write where it downloads.
			chown _apt "$dl" 2>/dev/null || true
			if (cd "$dl" && apt-get download -qq "$name" >"$VMI_TMP/apt.log" 2>&1); then
				mv "$dl"/*.deb "$VMI_CACHE/debs/"
				deb="$(vmi_cached_deb "$name")"
			else
				vmi_log "apt-get download $name failed: $(tail -n 1 "$VMI_TMP/apt.log")"
			fi
		fi
	fi
	[[ -n "${deb:-}" ]] || deb="$(vmi_cached_deb)"
	[[ -n "$deb" ]] || vmi_die 3 "no kernel: apt cannot resolve or fetch $VMI_KERNEL_META" \
		"and $VMI_CACHE/debs holds none"
	echo "$deb"
}

# ---------------------------------------------------------------- modules

# vmi_mod_path ROOT KVER NAME - print the path of module NAME (- and _ alike) under ROOT.
vmi_mod_path() {
	local pat="${3//[-_]/[-_]}"
	find "$1/lib/modules/$2/kernel" \( -name "$pat.ko" -o -name "$pat.ko.xz" \) -print -quit
}

# vmi_mod_deps FILE - print the modules FILE depends on, one a line (its modinfo field).
vmi_mod_deps() {
	local f="$1"
	if [[ "$f" == *.xz ]]; then
		xz -dc -- "$f"
	else
		cat -- "$f"
	fi | tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' '\n' | sed '/^$/d'
}

# vmi_mod_order ROOT KVER NAME... - print the paths of NAME and of all it depends on,
# dependencies first, each once. Modules built into the kernel (no file) are skipped.
declare -A VMI_SEEN=()
vmi_mod_order() {
	local root="$1" kver="$2" name path dep
	shift 2
	for name in "$@"; do
		name="${name//-/_}"
		[[ -z "${VMI_SEEN[$name]:-}" ]] || continue
		VMI_SEEN[$name]=1
		path="$(vmi_mod_path "$root" "$kver" "$name")"
		if [[ -z "$path" ]]; then
			grep -q "/${name//_/[-_]}.ko" "$root/lib/modules/$kver/modules.builtin" 2>/dev/null ||
				vmi_die 1 "module $name: neither a file nor built into kernel $kver"
			continue
		fi
		for dep in $(vmi_mod_deps "$path"); do
			vmi_mod_order "$root" "$kver" "$dep"
		done
		echo "$path"
	done
}

# vmi_add_modules KROOT KVER ROOT - copy the modules (uncompressed) into ROOT/lib/modules
# and list their files, in load order, in ROOT/etc/vmbusify/modules.
vmi_add_modules() {
	local kroot="$1" kver="$2" root="$3" path base
	mkdir -p "$root/lib/modules" "$root/etc/vmbusify"
	: >"$root/etc/vmbusify/modules"
	while read -r path; do
		base="$(basename "${path%.xz}")"
		if [[ "$path" == *.xz ]]; then
			xz -dc -- "$path" >"$root/lib/modules/$base"
		else
			cp -- "$path" "$root/lib/modules/$base"
		fi
		echo "$base" >>"$root/etc/vmbusify/modules"
	done < <(vmi_mod_order "$kroot" "$kver" "${VMI_MODULES[@]}")
}

# ---------------------------------------------------------------- the userland

# vmi_add_file ROOT PATH - copy PATH into ROOT at the same path, following symlinks.
vmi_add_file() {
	mkdir -p "$1$(dirname "$2")"
	cp -L -- "$2" "$1$2"
}

# vmi_add_program ROOT PATH [NAME] - copy the program to ROOT/usr/bin/NAME and every library
# ldd lists for it (and the dynamic loader) at the host's paths.
vmi_add_program() {
	local root="$1" prog="$2" name="${3:-$(basename "$2")}" lib
	mkdir -p "$root/usr/bin"
	cp -L -- "$prog" "$root/usr/bin/$name"
	while read -r lib; do
		[[ -e "$root$lib" ]] || vmi_add_file "$root" "$lib"
	done < <(ldd "$prog" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

vmi_write_inittab() {
	cat >"$1/etc/inittab" <<EOF
# vmbusify QEMU lab guest (scripts/vm-image.sh)
::sysinit:/etc/vmbusify/rcS
::respawn:/etc/vmbusify/agent
::ctrlaltdel:/bin/poweroff -f
::shutdown:/bin/umount -a -r
EOF
}

# vmi_write_rcS ROOT - the boot script busybox init runs first.
vmi_write_rcS() {
	cat >"$1/etc/vmbusify/rcS" <<'EOF'
#!/bin/sh
# Boot: file systems, modules, lo, the virtio-serial links. Logs to the console.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t tmpfs -o mode=0755 run /run
mount -t tmpfs -o mode=1777 shm /dev/shm
for m in $(cat /etc/vmbusify/modules); do
	insmod "/lib/modules/$m" || echo "vmbusify-guest: insmod $m failed"
done
ip link set dev lo up
hostname "$(cat /etc/hostname)"
# No udev: link /dev/virtio-ports/NAME to each port, as udev's rule would.
mkdir -p /dev/virtio-ports
i=0
while [ $i -lt 100 ]; do
	for d in /sys/class/virtio-ports/*; do
		[ -f "$d/name" ] || continue
		n="$(cat "$d/name")"
		[ -n "$n" ] && ln -sf "../${d##*/}" "/dev/virtio-ports/$n"
	done
	[ -e /dev/virtio-ports/org.vmbusify.agent ] && break
	sleep 0.1
	i=$((i + 1))
done
echo "vmbusify-guest: ready: $(ls /dev/virtio-ports 2>/dev/null | tr '\n' ' ')"
EOF
	chmod 0755 "$1/etc/vmbusify/rcS"
}

# vmi_write_agent ROOT - the guest's service, run (and restarted) by init.
vmi_write_agent() {
	cat >"$1/etc/vmbusify/agent" <<EOF
#!/bin/sh
# The guest's VMBusify agent on its virtio-serial port; init restarts it when it ends.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
# The lab passes its loop backend on the kernel command line: vmbusify.backend=uring|epoll.
for arg in \$(cat /proc/cmdline); do
	case "\$arg" in vmbusify.backend=*) export VMBUSIFY_BACKEND="\${arg#*=}" ;; esac
done
echo "vmbusify-guest: starting the agent"
/usr/bin/vmbusify-agent --listen serial:///dev/virtio-ports/$VMI_PORT_NAME --log-level info
rc=\$?
echo "vmbusify-guest: the agent exited with status \$rc; restarting it"
sleep 1
EOF
	chmod 0755 "$1/etc/vmbusify/agent"
}

# vmi_write_etc ROOT - the few files a busybox system and glibc programs read.
vmi_write_etc() {
	local root="$1"
	printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n' \
		>"$root/etc/passwd"
	printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$root/etc/group"
	printf 'root::0:0:99999:7:::\n' >"$root/etc/shadow"
	printf 'vmbusify-guest\n' >"$root/etc/hostname"
	printf '127.0.0.1 localhost vmbusify-guest\n::1 localhost\n' >"$root/etc/hosts"
	printf 'hosts: files dns\npasswd: files\ngroup: files\n' >"$root/etc/nsswitch.conf"
	: >"$root/etc/resolv.conf"
	mkdir -p "$root/root" "$root/www"
	printf 'served by the QEMU guest\n' >"$root/www/index.html"
}

# vmi_make_root KROOT KVER ROOT - the whole initramfs tree.
vmi_make_root() {
	local kroot="$1" kver="$2" root="$3" d
	for d in bin sbin usr/bin usr/sbin proc sys dev tmp run etc/vmbusify lib64 root var/log; do
		mkdir -p "$root/$d"
	done
	mknod -m 600 "$root/dev/console" c 5 1
	mknod -m 666 "$root/dev/null" c 1 3
	cp -- /bin/busybox "$root/bin/busybox"
	# The applets as links, made on the host so that /init exists before anything runs.
	for d in $("$root/bin/busybox" --list-full); do
		[[ -e "$root/$d" ]] || ln -s /bin/busybox "$root/$d"
	done
	ln -sf /bin/busybox "$root/init"
	vmi_add_program "$root" "$VMI_BIN_DIR/vmbusify-agent"
	vmi_add_program "$root" "$VMI_BIN_DIR/vmbusify"
	ln -sf vmbusify "$root/usr/bin/vmbusexec"
	vmi_add_program "$root" "$(command -v curl)"
	vmi_add_modules "$kroot" "$kver" "$root"
	vmi_write_etc "$root"
	vmi_write_inittab "$root"
	vmi_write_rcS "$root"
	vmi_write_agent "$root"
}

# ---------------------------------------------------------------- the image

# vmi_key DEB - print the cache key: a hash of every input of the image.
vmi_key() {
	{
		basename "$1"
		sha256sum "${BASH_SOURCE[0]}" "$VMI_BIN_DIR/vmbusify-agent" "$VMI_BIN_DIR/vmbusify" \
			/bin/busybox "$(command -v curl)" | awk '{ print $1 }'
	} | sha256sum | cut -c 1-16
}

# vmi_prune - keep the newest VMI_KEEP_IMAGES images.
vmi_prune() {
	local old
	# shellcheck disable=SC2012 # names are our hex keys
	ls -1dt "$VMI_CACHE/images/"*/ 2>/dev/null | tail -n +$((VMI_KEEP_IMAGES + 1)) |
		while read -r old; do rm -rf -- "$old"; done
}

# vmi_build DEB OUT - unpack the kernel, make the tree and pack it into OUT.
vmi_build() {
	local deb="$1" out="$2" kroot="$VMI_TMP/kernel" root="$VMI_TMP/root" kver
	dpkg-deb -x "$deb" "$kroot"
	kver="$(find "$kroot/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | head -n 1)"
	[[ -n "$kver" && -f "$kroot/boot/vmlinuz-$kver" ]] || vmi_die 1 "$deb: no vmlinuz in it"
	vmi_make_root "$kroot" "$kver" "$root"
	mkdir -p "$out.new"
	cp -- "$kroot/boot/vmlinuz-$kver" "$out.new/vmlinuz"
	(cd "$root" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --quiet) | gzip -1 >"$out.new/initrd.img"
	echo "$kver" >"$out.new/kernel-version"
	rm -rf -- "$out"
	mv -- "$out.new" "$out"
}

vmi_find_bins() {
	local dir="${VB_BIN_DIR:-}" prog
	[[ -n "$VMI_BIN_DIR" ]] && dir="$VMI_BIN_DIR"
	if [[ -z "$dir" ]]; then
		prog="$(command -v vmbusify-agent)" || vmi_die 1 "vmbusify-agent not found: use --bin-dir"
		dir="$(dirname "$prog")"
	fi
	VMI_BIN_DIR="$(realpath -m -- "$dir")"
	for prog in vmbusify-agent vmbusify; do
		[[ -x "$VMI_BIN_DIR/$prog" ]] || vmi_die 1 "$VMI_BIN_DIR/$prog: not found or not executable"
	done
	for prog in busybox cpio dpkg-deb apt-get apt-cache ldd curl gzip; do
		command -v "$prog" >/dev/null || vmi_die 1 "$prog not found (run scripts/deps.sh)"
	done
	if [[ ! -x /bin/busybox ]] || ! /bin/busybox --list | grep -qx insmod; then
		vmi_die 1 "/bin/busybox is not busybox-static's (run scripts/deps.sh)"
	fi
}

main() {
	local print_key=0 deb key out
	while [[ $# -gt 0 ]]; do
		case "$1" in
		--bin-dir)
			[[ $# -ge 2 ]] || vmi_die 2 "--bin-dir needs a directory"
			VMI_BIN_DIR="$2"
			shift 2
			;;
		--print-key)
			print_key=1
			shift
			;;
		-h | --help)
			sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
			return 0
			;;
		*) vmi_die 2 "unknown argument: $1 (see vm-image.sh --help)" ;;
		esac
	done
	[[ "$(id -u)" -eq 0 ]] || vmi_die 4 "needs root (device nodes in the initramfs, the cache)"
	vmi_find_bins
	VMI_CACHE="$(realpath -m -- "${VB_VM_CACHE:-/var/cache/vmbusify/vm}")"
	mkdir -p "$VMI_CACHE/debs" "$VMI_CACHE/images"
	VMI_TMP="$(mktemp -d "$VMI_CACHE/tmp.XXXXXX")"
	trap vmi_cleanup EXIT
	deb="$(vmi_kernel_deb)"
	key="$(vmi_key "$deb")"
	if [[ $print_key -eq 1 ]]; then
		echo "$key"
		return 0
	fi
	out="$VMI_CACHE/images/$key"
	if [[ ! -f "$out/initrd.img" ]]; then
		vmi_log "building the guest image $key from $(basename "$deb")"
		vmi_build "$deb" "$out"
		vmi_prune
	fi
	touch "$out"
	printf 'kernel=%s\ninitrd=%s\n' "$out/vmlinuz" "$out/initrd.img"
}

main "$@"
