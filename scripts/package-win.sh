#!/usr/bin/env bash
# Packages the Windows build as a zip: vmbusifyd.exe, vmbusify.exe,
# vmbusexec.exe and vmbusify-agent.exe (stripped, no DLLs needed beside them)
# and README.txt, the set-up of a Hyper-V host (install, register the service
# and its Hyper-V socket GUID, first vmbusexec). Builds first with
# scripts/build-win.sh (Release).
#
# Usage: scripts/package-win.sh [BUILDDIR] [OUTPUT.zip]
#   BUILDDIR defaults to build-win/ under the repository; OUTPUT to
#   BUILDDIR/vmbusify-VERSION-windows-x86_64.zip.
#
# Exit codes:
#   0  the zip was written (its path is printed)
#   1  the build failed, or zip or the mingw-w64 strip is missing
#   2  usage error
set -euo pipefail

package_win_die() {
	local code="$1"
	shift
	printf 'vmbusify: package-win: %s\n' "$*" >&2
	exit "$code"
}

# package_win_readme - writes the Hyper-V host's README (CRLF line ends, for Notepad).
package_win_readme() {
	local version="$1"
	sed 's/$/\r/' <<EOF
VMBusify $version for Windows (x86-64)
======================================

vmbusifyd.exe       the host daemon, a Windows service: keeps a session to each
                    VM, serves vmbusify on the named pipe vmbusify-control, a
                    proxy port into the VMs (SOCKS5, HTTP CONNECT to
                    <vm>.vmbus:PORT; default 127.0.0.1:1080), -L/-R forwards,
                    the VMs' way out under its egress policy, and vnet (a
                    [vnet] section: a Wintun adapter, WinNAT for IPv4)
vmbusify.exe        the command-line tool: exec, cp, ls, ping, bench, forward
vmbusexec.exe       the same program, started as vmbusexec (PsExec-style exec)
vmbusify-agent.exe  the agent for a Windows guest: exec (-t on ConPTY), cp, and
                    a proxy port (SOCKS5/4, HTTP; default 127.0.0.1:1080) whose
                    connections leave through the host's vmbusifyd (no vnet
                    inside Windows guests yet)

The executables need no installer and no DLLs beside them; vnet alone
needs wintun.dll (amd64, from https://www.wintun.net) beside vmbusifyd.exe.

Hyper-V host: install
---------------------
1. Unzip to a folder, for example C:\\Program Files\\VMBusify, and add it to
   PATH (System Properties > Environment Variables), or from an elevated
   PowerShell:
     Expand-Archive vmbusify-$version-windows-x86_64.zip "C:\\Program Files\\VMBusify"
     \$p = [Environment]::GetEnvironmentVariable("Path", "Machine")
     [Environment]::SetEnvironmentVariable("Path", "\$p;C:\\Program Files\\VMBusify", "Machine")

2. Register the daemon, once per host (elevated prompt), naming the VMs
   (find a VM's ID with (Get-VM -Name myvm).Id in PowerShell):
     vmbusifyd install --vm myvm=hvsock://<VMID>
     sc start vmbusifyd
   This creates the service vmbusifyd (automatic start, LocalSystem; its
   command line is vmbusifyd.exe --service and the options given) and
   registers the Hyper-V socket service GUID 00005642-FACB-11E6-BD58-64006A7986D3
   (vsock port 22082 = 0x5642 in the template a Linux guest's hv_sock uses;
   Hyper-V lets the host reach a guest's service only when its GUID is
   registered) under HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\\
   Virtualization\\GuestCommunicationServices, ElementName VMBusify.
   VMs may also be listed in %ProgramData%\\vmbusify\\vmbusifyd.conf (the
   Linux format; a [vnet] section needs wintun.dll beside vmbusifyd.exe and
   WinNAT, which comes with Hyper-V). Running install again
   replaces the options; vmbusifyd uninstall stops and deletes the service
   and removes the GUID's key. The service logs to
   %ProgramData%\\vmbusify\\vmbusifyd.log and keeps its forwards there.

3. In each Linux guest, run the agent on the Hyper-V socket (kernel module
   hv_sock; systemd unit in the Linux package):
     vmbusify-agent --listen vsock://:22082
   In a Windows guest, run vmbusify-agent.exe (it listens on
   hvsock://:22082, the same service GUID) from an elevated prompt.

Hyper-V host: first vmbusexec
-----------------------------
Through the daemon (its pipe is for Administrators and Hyper-V
Administrators), with stdin, stdout, stderr and the exit status:
     vmbusify ls
     vmbusexec myvm uname -a
     vmbusify forward add -L 8080:myvm:80
or straight to the VM, without the daemon:
     vmbusexec hvsock://<VMID> uname -a
     vmbusexec hvsock://<VMID>:22082 sh -c "echo hello; exit 3"
     vmbusify cp -r C:\\data hvsock://<VMID>:/tmp/
     vmbusify ping hvsock://<VMID>
A VM name in place of the VMID is not resolved yet: use the VMID.

Over TCP instead (a lab, or a VM with a network): start the agent with
--listen tcp://ADDR:PORT --token-file FILE, then on the host
     set VMBUSIFY_TOKEN_FILE=C:\\path\\token
     vmbusexec tcp://ADDR:PORT whoami
(or vmbusify --token-file FILE exec ...). The token file holds one shared
secret line and must be readable by its owner, SYSTEM and Administrators
only, else it is refused:
     icacls C:\\path\\token /inheritance:r /grant:r %USERNAME%:F

The daemon's proxy port and -L ports take connections only from processes
of elevated Administrators, Hyper-V Administrators or members of a local
group named vmbusify.

Known limits of this build: the host's vnet is built but not yet tried on
a real Windows host (IPv4 NAT only; no vnet inside Windows guests), the
Windows agent runs programs as itself only (no -u).
EOF
}

main() {
	local repo dir out version
	repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
	case "${1:-}" in
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		return 0
		;;
	esac
	(($# <= 2)) || package_win_die 2 "usage: scripts/package-win.sh [BUILDDIR] [OUTPUT.zip]"
	dir="${1:-$repo/build-win}"
	command -v zip >/dev/null || package_win_die 1 "zip not found (apt-get install zip)"
	command -v x86_64-w64-mingw32-strip >/dev/null ||
		package_win_die 1 "x86_64-w64-mingw32-strip not found (install binutils-mingw-w64-x86-64)"
	"$repo/scripts/build-win.sh" Release "$dir" >/dev/null || package_win_die 1 "the Windows build failed"
	dir="$(cd "$dir" && pwd)"
	version="$(sed -n 's/^project(vmbusify VERSION \([0-9.]*\).*/\1/p' "$repo/CMakeLists.txt")"
	out="${2:-$dir/vmbusify-$version-windows-x86_64.zip}"
	[[ "$out" == /* ]] || out="$PWD/$out"

	stage="$(mktemp -d "${TMPDIR:-/tmp}/vb-package-win.XXXXXX")"
	trap 'rm -rf "${stage:-}"' EXIT
	mkdir "$stage/vmbusify-$version"
	for exe in vmbusifyd vmbusify vmbusexec vmbusify-agent; do
		[[ -f "$dir/$exe.exe" ]] || package_win_die 1 "$dir/$exe.exe was not built"
		x86_64-w64-mingw32-strip -o "$stage/vmbusify-$version/$exe.exe" "$dir/$exe.exe"
	done
	package_win_readme "$version" >"$stage/vmbusify-$version/README.txt"
	rm -f "$out"
	(cd "$stage" && zip -q -r -X "$out" "vmbusify-$version")
	echo "vmbusify: package-win: $out"
}

main "$@"
