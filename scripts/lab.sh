#!/usr/bin/env bash
# The VMBusify lab: "VMs" with no network at all, a host running the real
# daemon and an external network with real servers, all in network namespaces
# of this machine. Nothing the lab does leaves the machine: the only link is a
# veth pair between the host and the external namespace, and the external
# namespace neither forwards nor has a route out.
#
# Usage:
#   lab.sh up [--qemu] [--vms N] [--supervise]
#                            build the lab with N VMs (default 2, at most 16);
#                            a lab that is already up is taken down first. With
#                            --qemu the VMs are real QEMU guests qemu1..qemuN
#                            instead of the namespace VMs lab1..labN (see "QEMU").
#                            With --supervise the agents and the daemon run under
#                            supervisors that start them again when they die (see
#                            "Supervision")
#   lab.sh down              take the lab down; safe to run twice, or after a crash
#   lab.sh reboot VM         VM (lab1..labN) reboots: everything in its namespace is
#                            killed, the namespace is removed and made anew (no
#                            vmbus0, no routes), and its agent starts again
#   lab.sh cut VM            VM's channel to the daemon breaks under both ends at once:
#                            the agent's end of it is shut down from outside
#                            (pidfd_getfd(2), Linux 5.6), neither end killed
#   lab.sh status [--json]   show the lab (a table, or one JSON object)
#   lab.sh exec-host CMD...  run CMD in the host namespace
#   lab.sh exec VM CMD...    run CMD in a VM's namespace (VM: lab1..labN); in a QEMU
#                            guest (VM: qemu1..qemuN), through `vmbusexec VM CMD...`
#
# Layout:
#   vbl-lab1..vbl-labN  only lo (up); runs `vmbusify-agent --listen unix://DIR/labK.sock`.
#                       The Unix socket is the VM's "hypervisor socket": a path is
#                       reachable from every namespace, an IP address is not.
#   vbl-host            lo, vbl-h0 198.18.0.1/30 fd00:7662:6c61::1/64; default routes
#                       (v4, v6) via vbl-ext; runs `vmbusifyd [--config FILE]
#                       --control unix://DIR/control.sock --state-dir DIR
#                       --vm labK=unix://DIR/labK.sock... --log-level info`
#                       (FILE: VB_LAB_DAEMON_CONFIG).
#   vbl-ext             lo with 198.51.100.80/32, vbl-e0 198.18.0.2/30 fd00:7662:6c61::2/64;
#                       an HTTP server on port 80 (all addresses) serving DIR/www, and
#                       dnsmasq on 198.18.0.2 and fd00:7662:6c61::2 port 53 answering
#                       ext.lab.test (A 198.51.100.80, AAAA fd00:7662:6c61::2) and
#                       www.lab.test (A 198.51.100.80); other *.lab.test names: NXDOMAIN.
#   Every lab namespace resolves names with 198.18.0.2 (/etc/netns/<ns>/resolv.conf).
#   DIR holds <name>.log and <name>.pid for lab1..labN, vmbusifyd, http and dnsmasq.
#
# Supervision (up --supervise): each agent of a namespace VM and the daemon run under
# a supervisor (this script, `lab.sh _supervise`), as systemd runs dist/systemd's units:
# Restart=always, RestartSec=1, and systemd's default start limit (more than 5 starts
# within 10 s: it gives up). DIR/<name>.pid always holds the running program's PID,
# DIR/<name>.supervisor the supervisor's, DIR/<name>.restarts how often it restarted;
# each exit is logged to DIR/<name>.log. Unlike systemd's KillMode=control-group, the
# supervisor leaves a dead agent's children alone: the next agent sweeps them itself,
# which is what a guest without systemd relies on. QEMU guests restart their agent from
# the guest's init; QEMU itself is not supervised.
#
# QEMU (up --qemu): the VMs are Linux guests booted by qemu-system-x86_64 from the
# image scripts/vm-image.sh builds (a Debian cloud kernel, a busybox initramfs, the
# agent as the guest's service on serial:///dev/virtio-ports/org.vmbusify.agent).
#   vbl-qemu1..vbl-qemuN  only lo; runs QEMU for guest qemuK: KVM when a probe guest
#                       boots under it within 10 s (the verdict is kept for this boot
#                       of the machine), TCG otherwise; -nic none (no network device
#                       at all); one virtio-serial port named org.vmbusify.agent whose
#                       chardev is the Unix socket DIR/qemuK.sock (server=on,wait=off),
#                       and a second port, org.vmbusify.raw on DIR/qemuK-raw.sock, that
#                       nothing uses but bench/vm.sh (the raw channel's baseline);
#                       the guest's console in DIR/qemuK.console, QEMU's own output in
#                       DIR/qemuK.log. The namespace only keeps QEMU's process apart:
#                       the guest has no network device to use it.
#   vbl-host            as above, with --vm qemuK=unix://DIR/qemuK.sock: the daemon
#                       holds the socket's one connection and multiplexes everything
#                       on it. `up` waits until `vmbusify ping qemuK` answers and writes
#                       the boot-to-ready time (QEMU started to first answer, in ms)
#                       to DIR/qemuK.ready; `status --json` shows it.
#   vbl-ext             as above.
#
# Ownership: DIR carries the marker file .vmbusify-lab; each lab namespace's lo
# carries the alias "vmbusify-lab DIR"; every process the lab starts carries
# VBL_OWNER=DIR in its environment. `down` removes only what carries these marks
# (and whatever runs inside the lab's namespaces). One lab at a time per machine:
# the namespace names are fixed.
#
# Environment:
#   VB_LAB_QEMU_ACCEL  kvm or tcg: skip the KVM probe (default: probe)
#   VB_LAB_QEMU_MEM    guest memory in MiB (default 1024)
#   VB_LAB_QEMU_TIMEOUT seconds `up --qemu` waits for each guest's agent (default 300)
#   VB_VM_CACHE       where scripts/vm-image.sh keeps the kernel and images
#   VB_BIN_DIR        directory of vmbusify-agent and vmbusifyd
#                     (default: the directory of `command -v vmbusifyd`)
#   VB_LAB_DIR        the lab's directory DIR (default /run/vmbusify/lab)
#   VB_LAB_TIMEOUT    seconds `up` waits for each server to come up (default 10)
#   VB_LAB_KEEP       if 1, a failed `up` leaves the lab as it is, for inspection
#   VB_LAB_DAEMON_CONFIG  a configuration file for vmbusifyd (docs/config.md: [proxy]
#                     limits, [egress] rules, [vnet]), passed as --config; a lab VM it
#                     names must have the lab's URI (unix://DIR/labK.sock), since the
#                     VMs also come as --vm (default: none)
#   VMBUSIFY_BACKEND  passed on to the agents and the daemon, as is all the environment
#
# Exit codes:
#   0  done (status: the lab is up and all its processes run)
#   1  failure (status: the lab is up but a process is not running)
#   2  usage error
#   3  no lab is up (status, exec, exec-host)
#   4  missing privilege: needs root (network namespaces)
#   5  up --qemu: QEMU or the guest image cannot be had here (not installed, or no
#      kernel package: apt cannot fetch one and none is cached)
#   exec and exec-host otherwise return the command's own exit status.
set -euo pipefail

readonly LAB_NS_HOST=vbl-host
readonly LAB_NS_EXT=vbl-ext
readonly LAB_NS_VM_PREFIX=vbl-
readonly LAB_HOST_V4=198.18.0.1
readonly LAB_EXT_V4=198.18.0.2
readonly LAB_HOST_V6=fd00:7662:6c61::1
readonly LAB_EXT_V6=fd00:7662:6c61::2
readonly LAB_PUBLIC_V4=198.51.100.80
readonly LAB_NAMES=(ext.lab.test www.lab.test)
readonly LAB_WWW_LINE="vmbusify lab external server"
readonly LAB_MAX_VMS=16
readonly LAB_MARKER=.vmbusify-lab
readonly LAB_QEMU_PORT=org.vmbusify.agent
readonly LAB_QEMU_RAW_PORT=org.vmbusify.raw
readonly LAB_QEMU_PROBE_S=10
# Supervision: as dist/systemd's units (Restart=always, RestartSec=1) under systemd's
# default start limit (StartLimitBurst=5 within StartLimitIntervalSec=10).
readonly LAB_RESTART_SEC=1
readonly LAB_START_LIMIT_BURST=5
readonly LAB_START_LIMIT_INTERVAL=10
LAB_SELF="$(realpath -- "${BASH_SOURCE[0]}")"
readonly LAB_SELF

LAB_DIR=""
# The PIDs of the processes this run of the script started, by name, for `wait`.
declare -A LAB_CHILD=()

lab_die() {
	local code="$1"
	shift
	printf 'vmbusify: lab: %s\n' "$*" >&2
	exit "$code"
}

lab_need_root() {
	[[ "$(id -u)" -eq 0 ]] || lab_die 4 "needs root (network namespaces)"
}

# lab_init_dir - set LAB_DIR from VB_LAB_DIR as an absolute path, refusing "/".
lab_init_dir() {
	LAB_DIR="$(realpath -m -- "${VB_LAB_DIR:-/run/vmbusify/lab}")"
	[[ "$LAB_DIR" != / ]] || lab_die 2 "VB_LAB_DIR must not be /"
}

lab_state_get() {
	sed -n "s/^$1=//p" "$LAB_DIR/$LAB_MARKER" 2>/dev/null | head -n 1
}

lab_is_up() {
	[[ -f "$LAB_DIR/$LAB_MARKER" ]]
}

# lab_vm_prefix - "qemu" for a QEMU lab, "lab" for a namespace lab.
lab_vm_prefix() {
	[[ "$(lab_state_get kind)" == qemu ]] && echo qemu || echo lab
}

lab_vm_names() {
	local n k prefix
	n="$(lab_state_get vms)"
	prefix="$(lab_vm_prefix)"
	for ((k = 1; k <= ${n:-0}; k++)); do
		echo "$prefix$k"
	done
}

# ---------------------------------------------------------------- processes

# lab_pid_alive - true if PID exists and is not a zombie (PID 1 here may not reap).
lab_pid_alive() {
	local stat
	[[ "$1" =~ ^[0-9]+$ ]] || return 1
	stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
	stat="${stat##*) }"
	[[ "${stat:0:1}" != Z ]]
}

# lab_pid_owned - true if PID carries this lab's VBL_OWNER mark.
lab_pid_owned() {
	grep -qzxF "VBL_OWNER=$LAB_DIR" "/proc/$1/environ" 2>/dev/null
}

# lab_pid_in_lab_ns PID - true if PID runs in one of this lab's namespaces.
lab_pid_in_lab_ns() {
	local link ns
	link="$(readlink "/proc/$1/ns/net" 2>/dev/null)" || return 1
	for ns in $(lab_state_get netns); do
		[[ -e "/run/netns/$ns" && "$link" == "net:[$(stat -L -c %i "/run/netns/$ns")]" ]] && return 0
	done
	return 1
}

lab_pid_of() {
	local pid
	pid="$(cat "$LAB_DIR/$1.pid" 2>/dev/null)" || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	echo "$pid"
}

# lab_running NAME - print the PID of the lab's process NAME if it runs.
lab_running() {
	local pid
	pid="$(lab_pid_of "$1")" || return 1
	lab_pid_alive "$pid" || return 1
	# Without root the environment and namespace are unreadable: liveness is all
	# we can tell. With root, a recycled PID is not the lab's.
	if [[ "$(id -u)" -eq 0 ]] && ! lab_pid_owned "$pid" && ! lab_pid_in_lab_ns "$pid"; then
		return 1
	fi
	echo "$pid"
}

# lab_spawn NAME NETNS CMD... - start CMD in NETNS in its own session, marked as
# the lab's, output to DIR/NAME.log, PID to DIR/NAME.pid.
lab_spawn() {
	local name="$1" ns="$2"
	shift 2
	local pidfile="$LAB_DIR/$name.pid"
	# The wrapper writes its own PID and then execs, through `ip netns exec`
	# (which execs too), into CMD: the PID written is CMD's.
	# shellcheck disable=SC2016
	VBL_OWNER="$LAB_DIR" setsid bash -c 'echo "$$" >"$1"; shift; exec "$@"' lab-spawn \
		"$pidfile" ip netns exec "$ns" "$@" </dev/null >>"$LAB_DIR/$name.log" 2>&1 &
	LAB_CHILD[$name]=$!
	local i
	for ((i = 0; i < 50; i++)); do
		[[ -s "$pidfile" ]] && return 0
		sleep 0.1
	done
	lab_die 1 "$name: could not start $1"
}

# lab_start NAME NETNS CMD... - lab_spawn, or under a supervisor (cmd_supervise) when the
# lab supervises; returns once DIR/NAME.pid holds the program's PID.
lab_start() {
	if [[ "$(lab_state_get supervise)" != 1 ]]; then
		lab_spawn "$@"
		return
	fi
	local name="$1" i
	rm -f "$LAB_DIR/$name.pid"
	VB_LAB_DIR="$LAB_DIR" VBL_OWNER="$LAB_DIR" setsid "$LAB_SELF" _supervise "$@" \
		</dev/null >>"$LAB_DIR/$name.log" 2>&1 &
	for ((i = 0; i < 50; i++)); do
		[[ -s "$LAB_DIR/$name.pid" ]] && return 0
		sleep 0.1
	done
	lab_die 1 "$name: could not start $3 under its supervisor"
}

# lab_supervise_stop - the supervisor's TERM, INT and HUP trap: stop the program, then itself.
lab_supervise_stop() {
	if [[ -n "${LAB_SUP_CHILD:-}" ]]; then
		kill -TERM "$LAB_SUP_CHILD" 2>/dev/null || true
		wait "$LAB_SUP_CHILD" 2>/dev/null || true
	fi
	exit 0
}

# lab_start_limit_hit - true when one more start would exceed the start limit; keeps the
# times of the recent starts in LAB_SUP_STARTS.
lab_start_limit_hit() {
	local t recent=()
	for t in "${LAB_SUP_STARTS[@]}"; do
		((t > SECONDS - LAB_START_LIMIT_INTERVAL)) && recent+=("$t")
	done
	LAB_SUP_STARTS=("${recent[@]}" "$SECONDS")
	((${#LAB_SUP_STARTS[@]} > LAB_START_LIMIT_BURST))
}

# cmd_supervise NAME NETNS CMD... - (internal: what lab_start runs, in its own session,
# output to DIR/NAME.log) keep CMD running in NETNS. Ends when signalled (taking CMD
# down first), when the lab is gone, or at the start limit.
cmd_supervise() {
	local name="$1" ns="$2" rc restarts=0 why
	shift 2
	LAB_SUP_CHILD=""
	LAB_SUP_STARTS=()
	trap lab_supervise_stop TERM INT HUP
	echo "$$" >"$LAB_DIR/$name.supervisor"
	echo 0 >"$LAB_DIR/$name.restarts"
	while lab_is_up; do
		if lab_start_limit_hit; then
			echo "vmbusify: lab: $name: started too often (more than $LAB_START_LIMIT_BURST" \
				"times in $LAB_START_LIMIT_INTERVAL s): giving up, as systemd would"
			exit 1
		fi
		# The wrapper writes its PID and execs, through `ip netns exec`, into CMD.
		# shellcheck disable=SC2016
		bash -c 'echo "$$" >"$1"; shift; exec "$@"' lab-spawn "$LAB_DIR/$name.pid" \
			ip netns exec "$ns" "$@" </dev/null &
		LAB_SUP_CHILD=$!
		rc=0
		wait "$LAB_SUP_CHILD" || rc=$?
		LAB_SUP_CHILD=""
		lab_is_up || break
		why="exited with status $rc"
		((rc <= 128)) || why="was killed by signal $((rc - 128))"
		restarts=$((restarts + 1))
		echo "$restarts" >"$LAB_DIR/$name.restarts"
		echo "vmbusify: lab: $name $why; starting it again in $LAB_RESTART_SEC s (restart $restarts)"
		# In the background, so that a TERM ends the wait at once.
		sleep "$LAB_RESTART_SEC" &
		wait $! || true
	done
}

# lab_owned_pids NETNS... - print the PIDs the lab owns: those marked VBL_OWNER=DIR
# and those inside the given namespaces, except this script and its callers.
lab_owned_pids() {
	local keep=" $$ " p ns
	p="$$"
	while [[ "$p" =~ ^[0-9]+$ && "$p" -gt 1 ]]; do
		p="$(awk '/^PPid:/ { print $2 }' "/proc/$p/status" 2>/dev/null)" || break
		keep+="$p "
	done
	{
		for ns in "$@"; do
			ip netns pids "$ns" 2>/dev/null || true
		done
		for p in /proc/[0-9]*; do
			p="${p#/proc/}"
			lab_pid_owned "$p" && echo "$p"
		done
	} | sort -un | while read -r p; do
		[[ "$keep" == *" $p "* ]] || echo "$p"
	done
}

lab_filter_alive() {
	local p
	while read -r p; do
		lab_pid_alive "$p" && echo "$p"
	done
	return 0
}

# lab_kill_all NETNS... - TERM the lab's processes, then KILL whatever of the
# lab still runs after 2 s (including children started meanwhile).
lab_kill_all() {
	local pids=() i
	mapfile -t pids < <(lab_owned_pids "$@" | lab_filter_alive)
	[[ ${#pids[@]} -gt 0 ]] || return 0
	kill -TERM "${pids[@]}" 2>/dev/null || true
	for ((i = 1; i <= 40; i++)); do
		sleep 0.1
		mapfile -t pids < <(lab_owned_pids "$@" | lab_filter_alive)
		[[ ${#pids[@]} -gt 0 ]] || return 0
		((i < 20)) || kill -KILL "${pids[@]}" 2>/dev/null || true
	done
	echo "vmbusify: lab: still alive after KILL: ${pids[*]}" >&2
}

# ---------------------------------------------------------------- namespaces

lab_ns_exists() {
	[[ -e "/run/netns/$1" ]]
}

lab_ns_is_reserved() {
	[[ "$1" == "$LAB_NS_HOST" || "$1" == "$LAB_NS_EXT" || "$1" =~ ^vbl-(lab|qemu)[1-9][0-9]*$ ]]
}

# lab_ns_mark NETNS - print the ownership alias of NETNS's lo ("" if none).
lab_ns_mark() {
	ip -n "$1" -j link show dev lo 2>/dev/null | jq -r '.[0].ifalias // ""' 2>/dev/null || true
}

# lab_ns_reserved - print the existing namespaces with a lab name.
lab_ns_reserved() {
	local ns
	ip netns list 2>/dev/null | while read -r ns _; do
		lab_ns_is_reserved "$ns" && echo "$ns"
	done
	return 0
}

# lab_ns_owned - print the existing namespaces this lab made: those listed in
# the marker file and those whose lo carries this lab's alias.
lab_ns_owned() {
	local ns
	{
		for ns in $(lab_state_get netns); do
			lab_ns_exists "$ns" && echo "$ns"
		done
		lab_ns_reserved | while read -r ns; do
			[[ "$(lab_ns_mark "$ns")" == "vmbusify-lab $LAB_DIR" ]] && echo "$ns"
		done
	} | sort -u
}

# lab_ns_add NETNS - create NETNS with lo up and marked, and its resolv.conf.
lab_ns_add() {
	local ns="$1"
	ip netns add "$ns"
	ip -n "$ns" link set dev lo up
	ip -n "$ns" link set dev lo alias "vmbusify-lab $LAB_DIR"
	mkdir -p "/etc/netns/$ns"
	printf '# vmbusify lab %s\nnameserver %s\n' "$LAB_DIR" "$LAB_EXT_V4" \
		>"/etc/netns/$ns/resolv.conf"
}

# lab_etc_netns_remove NETNS - remove /etc/netns/NETNS if this lab wrote it.
lab_etc_netns_remove() {
	local dir="/etc/netns/$1"
	[[ -f "$dir/resolv.conf" ]] || return 0
	[[ "$(head -n 1 "$dir/resolv.conf")" == "# vmbusify lab $LAB_DIR" ]] || return 0
	rm -f "$dir/resolv.conf"
	rmdir "$dir" 2>/dev/null || true
	rmdir /etc/netns 2>/dev/null || true
}

lab_have_v6() {
	[[ -d /proc/sys/net/ipv6 ]]
}

# lab_make_network - all namespaces, the veth pair, addresses and routes.
lab_make_network() {
	local vm
	for vm in $(lab_vm_names); do
		lab_ns_add "$LAB_NS_VM_PREFIX$vm"
	done
	lab_ns_add "$LAB_NS_HOST"
	lab_ns_add "$LAB_NS_EXT"
	# Made inside the host namespace, its peer moved straight to the external one:
	# the machine's own namespace never sees either end.
	ip -n "$LAB_NS_HOST" link add vbl-h0 type veth peer name vbl-e0 netns "$LAB_NS_EXT"
	ip -n "$LAB_NS_HOST" addr add "$LAB_HOST_V4/30" dev vbl-h0
	ip -n "$LAB_NS_EXT" addr add "$LAB_EXT_V4/30" dev vbl-e0
	ip -n "$LAB_NS_EXT" addr add "$LAB_PUBLIC_V4/32" dev lo
	if lab_have_v6; then
		ip -n "$LAB_NS_HOST" addr add "$LAB_HOST_V6/64" dev vbl-h0 nodad
		ip -n "$LAB_NS_EXT" addr add "$LAB_EXT_V6/64" dev vbl-e0 nodad
	fi
	ip -n "$LAB_NS_HOST" link set dev vbl-h0 up
	ip -n "$LAB_NS_EXT" link set dev vbl-e0 up
	ip -n "$LAB_NS_HOST" route add default via "$LAB_EXT_V4"
	if lab_have_v6; then
		ip -n "$LAB_NS_HOST" -6 route add default via "$LAB_EXT_V6"
	fi
}

# ---------------------------------------------------------------- the lab directory

# lab_dir_prepare VMS KIND SUPERVISE - create DIR with its marker, recording the topmost
# directory created so that down removes it again. KIND: netns or qemu; SUPERVISE: 0 or 1.
lab_dir_prepare() {
	local top="" d="$LAB_DIR" ns_list k prefix=lab
	if [[ -e "$LAB_DIR" && ! -f "$LAB_DIR/$LAB_MARKER" ]]; then
		[[ -d "$LAB_DIR" && -z "$(ls -A "$LAB_DIR")" ]] \
			|| lab_die 1 "$LAB_DIR exists and is not a lab directory (no $LAB_MARKER)"
	fi
	while [[ ! -e "$d" ]]; do
		top="$d"
		d="$(dirname "$d")"
	done
	mkdir -p "$LAB_DIR"
	chmod 0755 "$LAB_DIR"
	ns_list="$LAB_NS_HOST $LAB_NS_EXT"
	[[ "$2" != qemu ]] || prefix=qemu
	for ((k = 1; k <= $1; k++)); do
		ns_list+=" vbl-$prefix$k"
	done
	{
		echo "# vmbusify lab: made by scripts/lab.sh; lab.sh down removes this directory"
		echo "vms=$1"
		echo "kind=$2"
		echo "netns=$ns_list"
		echo "made_dir=$top"
		echo "bin_dir=$LAB_BIN_DIR"
		echo "supervise=$3"
	} >"$LAB_DIR/$LAB_MARKER"
}

# lab_dir_remove - remove DIR if it is the lab's, and the parents up made.
lab_dir_remove() {
	[[ -d "$LAB_DIR" ]] || return 0
	if [[ ! -f "$LAB_DIR/$LAB_MARKER" ]]; then
		rmdir "$LAB_DIR" 2>/dev/null || true
		return 0
	fi
	local top d
	top="$(lab_state_get made_dir)"
	rm -rf -- "$LAB_DIR"
	[[ -n "$top" && "$LAB_DIR" == "$top"* ]] || return 0
	d="$(dirname "$LAB_DIR")"
	while [[ "$d" == "$top"* && "$d" != / ]]; do
		rmdir "$d" 2>/dev/null || break
		d="$(dirname "$d")"
	done
}

# lab_make_www - the external server's content: a known line and a big file.
lab_make_www() {
	local www="$LAB_DIR/www"
	mkdir -p "$www"
	printf '<!doctype html>\n<title>vmbusify lab</title>\n<p>\n%s\n</p>\n' "$LAB_WWW_LINE" \
		>"$www/index.html"
	head -c $((16 * 1024 * 1024)) /dev/urandom >"$www/big.bin"
	(cd "$www" && sha256sum big.bin >big.bin.sha256)
	chmod -R a+rX "$www"
}

# ---------------------------------------------------------------- waiting

# lab_wait_fail NAME WHAT - report that NAME did not come up, with its log's tail.
lab_wait_fail() {
	local log="$LAB_DIR/$1.log"
	printf 'vmbusify: lab: %s %s; last lines of %s:\n' "$1" "$2" "$log" >&2
	tail -n 15 "$log" 2>/dev/null | sed 's/^/  | /' >&2 || true
	if [[ -f "$LAB_DIR/$1.console" ]]; then
		printf 'vmbusify: lab: last lines of the guest console %s:\n' "$LAB_DIR/$1.console" >&2
		tail -n 15 "$LAB_DIR/$1.console" | sed 's/^/  | /' >&2 || true
	fi
	exit 1
}

# lab_exit_status NAME - describe how the process NAME, started by this run, ended.
lab_exit_status() {
	local rc=0
	[[ -n "${LAB_CHILD[$1]:-}" ]] || { echo "exited"; return 0; }
	wait "${LAB_CHILD[$1]}" 2>/dev/null || rc=$?
	if ((rc > 128)); then
		echo "died of signal $((rc - 128))"
	else
		echo "exited with status $rc"
	fi
}

# lab_wait NAME CHECK... - wait up to VB_LAB_TIMEOUT seconds for CHECK to pass
# while process NAME runs.
lab_wait() {
	local name="$1" deadline
	shift
	deadline=$((SECONDS + ${VB_LAB_TIMEOUT:-10}))
	while ! "$@" >/dev/null 2>&1; do
		lab_running "$name" >/dev/null || lab_wait_fail "$name" "$(lab_exit_status "$name") while starting"
		((SECONDS < deadline)) || lab_wait_fail "$name" "did not come up within ${VB_LAB_TIMEOUT:-10} s"
		sleep 0.1
	done
}

lab_check_http() {
	ip netns exec "$LAB_NS_HOST" curl -fsS -o /dev/null --max-time 1 "http://$LAB_EXT_V4/"
}

lab_check_dns() {
	# dig comes with bind9-dnsutils; without it, a running dnsmasq has to do.
	command -v dig >/dev/null || return 0
	[[ "$(ip netns exec "$LAB_NS_HOST" dig +short +time=1 +tries=1 \
		"@$LAB_EXT_V4" "${LAB_NAMES[0]}" A)" == "$LAB_PUBLIC_V4" ]]
}

lab_check_socket() {
	[[ -S "$1" ]]
}

# ---------------------------------------------------------------- daemons

lab_start_external() {
	local py=/usr/bin/python3 listen=(--listen-address="$LAB_EXT_V4") bind=0.0.0.0 v6=()
	# Debian's python3, not whatever a user's PATH puts first.
	[[ -x "$py" ]] || py="$(command -v python3)"
	if lab_have_v6; then
		bind=::
		listen+=(--listen-address="$LAB_EXT_V6")
		v6=(--address="/${LAB_NAMES[0]}/$LAB_EXT_V6")
	fi
	lab_spawn http "$LAB_NS_EXT" "$py" -m http.server --bind "$bind" \
		--directory "$LAB_DIR/www" 80
	lab_spawn dnsmasq "$LAB_NS_EXT" dnsmasq --keep-in-foreground --conf-file=/dev/null \
		--no-resolv --no-hosts --bind-interfaces "${listen[@]}" \
		--local=/lab.test/ \
		--address="/${LAB_NAMES[0]}/$LAB_PUBLIC_V4" "${v6[@]}" \
		--address="/${LAB_NAMES[1]}/$LAB_PUBLIC_V4" \
		--pid-file="$LAB_DIR/dnsmasq.pid" --log-queries \
		--log-facility="$LAB_DIR/dnsmasq.log"
	lab_wait http lab_check_http
	lab_wait dnsmasq lab_check_dns
}

lab_start_ns_vms() {
	local vm
	for vm in $(lab_vm_names); do
		lab_start_agent "$vm"
	done
	for vm in $(lab_vm_names); do
		lab_wait "$vm" lab_check_socket "$LAB_DIR/$vm.sock"
	done
}

# lab_start_agent VM - the agent of namespace VM (supervised if the lab supervises).
lab_start_agent() {
	lab_start "$1" "$LAB_NS_VM_PREFIX$1" "$LAB_BIN_DIR/vmbusify-agent" \
		--listen "unix://$LAB_DIR/$1.sock" --log-level info
}

lab_start_host() {
	# The lab's daemon keeps its state (the forwards) in the lab's directory, gone with it.
	local vm args=(--control "unix://$LAB_DIR/control.sock" --state-dir "$LAB_DIR")
	if [[ -n "${VB_LAB_DAEMON_CONFIG:-}" ]]; then
		args+=(--config "$(realpath -- "$VB_LAB_DAEMON_CONFIG")")
	fi
	for vm in $(lab_vm_names); do
		args+=(--vm "$vm=unix://$LAB_DIR/$vm.sock")
	done
	lab_start vmbusifyd "$LAB_NS_HOST" "$LAB_BIN_DIR/vmbusifyd" "${args[@]}" --log-level info
	lab_wait vmbusifyd lab_check_socket "$LAB_DIR/control.sock"
}

# lab_start_vms - the VMs: namespaces with an agent, or QEMU guests.
lab_start_vms() {
	if [[ "$(lab_state_get kind)" == qemu ]]; then
		lab_start_qemu
	else
		lab_start_ns_vms
	fi
}

# ---------------------------------------------------------------- QEMU guests

# lab_qemu_cli ARGS... - run the vmbusify CLI against the lab's daemon.
lab_qemu_cli() {
	"$LAB_BIN_DIR/vmbusify" --control "$LAB_DIR/control.sock" "$@"
}

# lab_qemu_kvm_works KERNEL INITRD - true if a probe guest boots and powers off under
# KVM within LAB_QEMU_PROBE_S. /dev/kvm can exist and still hang a guest (nested
# virtualisation that does not work): only a boot tells. The verdict is kept, per
# boot of this machine, beside the image cache.
lab_qemu_kvm_works() {
	local cache="${VB_VM_CACHE:-/var/cache/vmbusify/vm}" boot verdict
	[[ -r /dev/kvm && -w /dev/kvm ]] || return 1
	boot="$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)" || boot=unknown
	verdict="$(sed -n "s/^$boot //p" "$cache/kvm-verdict" 2>/dev/null | head -n 1)"
	if [[ -z "$verdict" ]]; then
		verdict=no
		if timeout -s KILL "$LAB_QEMU_PROBE_S" qemu-system-x86_64 -accel kvm -M q35 -m 256 \
			-nodefaults -no-user-config -display none -no-reboot -serial none -nic none \
			-kernel "$1" -initrd "$2" -append "panic=-1 quiet rdinit=/bin/poweroff -- -f" \
			>/dev/null 2>&1; then
			verdict=yes
		fi
		mkdir -p "$cache"
		echo "$boot $verdict" >"$cache/kvm-verdict"
	fi
	[[ "$verdict" == yes ]]
}

# lab_qemu_accel KERNEL INITRD - print the accelerator: VB_LAB_QEMU_ACCEL, else kvm if
# it works, else tcg.
lab_qemu_accel() {
	case "${VB_LAB_QEMU_ACCEL:-}" in
	kvm | tcg) echo "$VB_LAB_QEMU_ACCEL" ;;
	"") lab_qemu_kvm_works "$1" "$2" && echo kvm || echo tcg ;;
	*) lab_die 2 "VB_LAB_QEMU_ACCEL must be kvm or tcg, not '$VB_LAB_QEMU_ACCEL'" ;;
	esac
}

# lab_qemu_image - build (or find cached) the guest image; records kernel= and initrd=.
lab_qemu_image() {
	local out rc=0
	out="$(bash "$(dirname "$(realpath "${BASH_SOURCE[0]}")")/vm-image.sh" \
		--bin-dir "$LAB_BIN_DIR" 2>"$LAB_DIR/vm-image.log")" || rc=$?
	if [[ $rc -ne 0 ]]; then
		sed 's/^/  | /' "$LAB_DIR/vm-image.log" >&2
		[[ $rc -ne 3 ]] || lab_die 5 "no guest kernel can be had (scripts/vm-image.sh)"
		lab_die 1 "scripts/vm-image.sh failed (status $rc)"
	fi
	printf '%s\n' "$out" >>"$LAB_DIR/$LAB_MARKER"
}

# lab_qemu_start VM ACCEL - start VM's QEMU in its namespace, its clock in DIR/VM.start.
lab_qemu_start() {
	local vm="$1" accel="$2" cpu=max append="console=ttyS0 panic=-1 quiet"
	[[ "$accel" != kvm ]] || cpu=host
	[[ -z "${VMBUSIFY_BACKEND:-}" ]] || append+=" vmbusify.backend=$VMBUSIFY_BACKEND"
	date +%s%N >"$LAB_DIR/$vm.start"
	lab_spawn "$vm" "$LAB_NS_VM_PREFIX$vm" qemu-system-x86_64 -name "$vm" \
		-accel "$accel" -cpu "$cpu" -M q35 -m "${VB_LAB_QEMU_MEM:-1024}" -smp 2 \
		-nodefaults -no-user-config -display none -no-reboot \
		-kernel "$(lab_state_get kernel)" -initrd "$(lab_state_get initrd)" -append "$append" \
		-serial "file:$LAB_DIR/$vm.console" -nic none \
		-device virtio-serial-pci,id=vser0 \
		-chardev "socket,id=vbch,path=$LAB_DIR/$vm.sock,server=on,wait=off" \
		-device "virtserialport,bus=vser0.0,chardev=vbch,name=$LAB_QEMU_PORT" \
		-chardev "socket,id=vbraw,path=$LAB_DIR/$vm-raw.sock,server=on,wait=off" \
		-device "virtserialport,bus=vser0.0,chardev=vbraw,name=$LAB_QEMU_RAW_PORT"
}

# lab_start_qemu - build the image, choose the accelerator, boot every guest.
lab_start_qemu() {
	local vm accel
	command -v qemu-system-x86_64 >/dev/null ||
		lab_die 5 "qemu-system-x86_64 not found (run scripts/deps.sh)"
	[[ "${VB_LAB_QEMU_MEM:-1024}" =~ ^[1-9][0-9]*$ && "${VB_LAB_QEMU_MEM:-1024}" -ge 128 ]] ||
		lab_die 2 "VB_LAB_QEMU_MEM must be a number of MiB, at least 128, not '$VB_LAB_QEMU_MEM'"
	[[ "${VB_LAB_QEMU_TIMEOUT:-300}" =~ ^[1-9][0-9]*$ ]] ||
		lab_die 2 "VB_LAB_QEMU_TIMEOUT must be a number of seconds, not '$VB_LAB_QEMU_TIMEOUT'"
	lab_qemu_image
	accel="$(lab_qemu_accel "$(lab_state_get kernel)" "$(lab_state_get initrd)")"
	echo "accel=$accel" >>"$LAB_DIR/$LAB_MARKER"
	for vm in $(lab_vm_names); do
		lab_qemu_start "$vm" "$accel"
	done
	for vm in $(lab_vm_names); do
		lab_wait "$vm" lab_check_socket "$LAB_DIR/$vm.sock"
	done
}

lab_qemu_check_ping() {
	lab_qemu_cli ping -c 1 "$1"
}

# lab_wait_qemu_ready - wait until every guest's agent answers through the daemon;
# record each boot-to-ready time.
lab_wait_qemu_ready() {
	local vm ms
	for vm in $(lab_vm_names); do
		VB_LAB_TIMEOUT="${VB_LAB_QEMU_TIMEOUT:-300}" lab_wait "$vm" lab_qemu_check_ping "$vm"
		ms=$((($(date +%s%N) - $(cat "$LAB_DIR/$vm.start")) / 1000000))
		echo "$ms" >"$LAB_DIR/$vm.ready"
		echo "vmbusify: lab: $vm ready $ms ms after QEMU started ($(lab_state_get accel))"
	done
}

# ---------------------------------------------------------------- commands

# lab_find_bins - set LAB_BIN_DIR and check that both programs are there.
lab_find_bins() {
	local dir="${VB_BIN_DIR:-}" prog
	if [[ -z "$dir" ]]; then
		prog="$(command -v vmbusifyd)" || lab_die 1 "vmbusifyd not found: set VB_BIN_DIR"
		dir="$(dirname "$prog")"
	fi
	LAB_BIN_DIR="$(realpath -m -- "$dir")"
	for prog in vmbusify-agent vmbusifyd vmbusify; do
		[[ -x "$LAB_BIN_DIR/$prog" ]] || lab_die 1 "$LAB_BIN_DIR/$prog: not found or not executable"
	done
}

lab_find_tools() {
	local tool
	for tool in ip jq curl setsid dnsmasq sha256sum python3; do
		command -v "$tool" >/dev/null || lab_die 1 "$tool not found (run scripts/deps.sh)"
	done
}

lab_up_failed() {
	local rc=$?
	[[ $rc -ne 0 ]] || return 0
	if [[ "${VB_LAB_KEEP:-0}" == 1 ]]; then
		echo "vmbusify: lab: up failed; the lab is kept (VB_LAB_KEEP=1) in $LAB_DIR" >&2
	else
		lab_down_all >/dev/null 2>&1 || true
	fi
	exit "$rc"
}

cmd_up() {
	local vms=2 kind=netns supervise=0
	while [[ $# -gt 0 ]]; do
		case "$1" in
		--qemu)
			kind=qemu
			shift
			;;
		--supervise)
			supervise=1
			shift
			;;
		--vms)
			[[ $# -ge 2 ]] || lab_die 2 "--vms needs a number"
			vms="$2"
			shift 2
			;;
		--vms=*)
			vms="${1#--vms=}"
			shift
			;;
		*) lab_die 2 "up: unknown argument: $1" ;;
		esac
	done
	[[ "$vms" =~ ^[1-9][0-9]*$ && "$vms" -le $LAB_MAX_VMS ]] \
		|| lab_die 2 "--vms must be 1..$LAB_MAX_VMS, not '$vms'"
	lab_need_root
	lab_find_tools
	lab_find_bins
	lab_down_all
	local ns
	for ns in $(lab_ns_reserved); do
		lab_die 1 "namespace $ns exists and is not this lab's ($(lab_ns_mark "$ns")); take its lab down first"
	done

	trap lab_up_failed EXIT
	lab_dir_prepare "$vms" "$kind" "$supervise"
	lab_make_www
	lab_make_network
	lab_start_external
	lab_start_vms
	lab_start_host
	[[ "$kind" != qemu ]] || lab_wait_qemu_ready
	trap - EXIT
	echo "vmbusify: lab: up: VMs $(lab_vm_prefix)1..$(lab_vm_prefix)$vms," \
		"host $LAB_NS_HOST, external $LAB_NS_EXT" \
		"(http://$LAB_PUBLIC_V4/, dns $LAB_EXT_V4), dir $LAB_DIR"
}

# lab_down_all - take everything of this lab down.
lab_down_all() {
	local nss=() ns
	mapfile -t nss < <(lab_ns_owned)
	lab_kill_all "${nss[@]}"
	for ns in "${nss[@]}"; do
		ip netns delete "$ns" 2>/dev/null || true
	done
	for ns in /etc/netns/vbl-*; do
		ns="${ns#/etc/netns/}"
		if lab_ns_is_reserved "$ns"; then
			lab_etc_netns_remove "$ns"
		fi
	done
	lab_dir_remove
}

cmd_down() {
	[[ $# -eq 0 ]] || lab_die 2 "down takes no arguments"
	lab_need_root
	# From inside, down would kill the very shell that runs it.
	if lab_ns_is_reserved "$(ip netns identify "$$" 2>/dev/null)"; then
		lab_die 1 "down must run outside the lab's namespaces"
	fi
	lab_down_all
}

# lab_status_vm_json VM - print one VM as a JSON object. A namespace VM's process is
# its agent (agent_pid); a QEMU guest's is QEMU (qemu_pid: the agent runs inside).
lab_status_vm_json() {
	local vm="$1" pid ready running
	pid="$(lab_pid_of "$vm")" || pid=null
	running="$(lab_running "$vm" >/dev/null && echo true || echo false)"
	if [[ "$(lab_state_get kind)" != qemu ]]; then
		jq -nc --arg name "$vm" --arg netns "$LAB_NS_VM_PREFIX$vm" \
			--arg channel "unix://$LAB_DIR/$vm.sock" --argjson pid "$pid" \
			--argjson running "$running" --argjson sup "$(lab_supervision_json "$vm")" \
			'{name: $name, kind: "netns", netns: $netns, channel: $channel, agent_pid: $pid,
			  running: $running} + $sup'
		return 0
	fi
	ready="$(cat "$LAB_DIR/$vm.ready" 2>/dev/null)" || ready=null
	[[ "$ready" =~ ^[0-9]+$ ]] || ready=null
	jq -nc --arg name "$vm" --arg netns "$LAB_NS_VM_PREFIX$vm" \
		--arg channel "unix://$LAB_DIR/$vm.sock" --argjson pid "$pid" \
		--argjson running "$running" --arg accel "$(lab_state_get accel)" \
		--arg console "$LAB_DIR/$vm.console" --argjson ready "$ready" \
		--arg kernel "$(lab_state_get kernel)" --arg initrd "$(lab_state_get initrd)" \
		'{name: $name, kind: "qemu", netns: $netns, channel: $channel, agent_pid: null,
		  qemu_pid: $pid, running: $running, accel: $accel, console: $console,
		  boot_to_ready_ms: $ready, kernel: $kernel, initrd: $initrd}'
}

# lab_supervision_json NAME - {"supervised": bool, "restarts": N} of the lab's process NAME.
lab_supervision_json() {
	local n
	if [[ "$(lab_state_get supervise)" != 1 ]]; then
		echo '{"supervised": false, "restarts": 0}'
		return 0
	fi
	n="$(cat "$LAB_DIR/$1.restarts" 2>/dev/null)" || n=0
	[[ "$n" =~ ^[0-9]+$ ]] || n=0
	echo "{\"supervised\": true, \"restarts\": $n}"
}

# lab_status_json - print the lab as one JSON object.
lab_status_json() {
	local vm pid
	{
		for vm in $(lab_vm_names); do
			lab_status_vm_json "$vm"
		done
	} | jq -sc \
		--arg hostns "$LAB_NS_HOST" --arg control "unix://$LAB_DIR/control.sock" \
		--argjson dpid "$(lab_pid_of vmbusifyd || echo null)" \
		--argjson drun "$(lab_running vmbusifyd >/dev/null && echo true || echo false)" \
		--argjson dsup "$(lab_supervision_json vmbusifyd)" \
		--arg extns "$LAB_NS_EXT" --arg addr "$LAB_PUBLIC_V4" --arg dns "$LAB_EXT_V4" \
		--arg names "${LAB_NAMES[*]}" \
		'{vms: .,
		  host: ({netns: $hostns, control: $control, daemon_pid: $dpid, running: $drun} + $dsup),
		  external: {netns: $extns, address: $addr, http_url: ("http://" + $addr + "/"),
		             dns_server: $dns, names: ($names | split(" "))}}'
}

# lab_status_row ROLE NAME NETNS PROC ENDPOINT - one table row; false if PROC is down.
lab_status_row() {
	local pid state=running rc=0
	pid="$(lab_pid_of "$4")" || pid=-
	if ! lab_running "$4" >/dev/null; then
		state=stopped
		rc=1
	fi
	printf '%-9s %-10s %-10s %-8s %-8s %s\n' "$1" "$2" "$3" "$pid" "$state" "$5"
	return "$rc"
}

# lab_status_role - a VM's role in the table: "vm", or "vm/qemu" (the PID is QEMU's).
lab_status_role() {
	[[ "$(lab_state_get kind)" == qemu ]] && echo vm/qemu || echo vm
}

lab_status_table() {
	local vm rc=0
	echo "vmbusify lab in $LAB_DIR, $(lab_state_get vms) VMs, binaries from $(lab_state_get bin_dir)"
	printf '%-9s %-10s %-10s %-8s %-8s %s\n' ROLE NAME NETNS PID STATE ENDPOINT
	for vm in $(lab_vm_names); do
		lab_status_row "$(lab_status_role)" "$vm" "$LAB_NS_VM_PREFIX$vm" "$vm" \
			"unix://$LAB_DIR/$vm.sock" || rc=1
	done
	lab_status_row daemon host "$LAB_NS_HOST" vmbusifyd "unix://$LAB_DIR/control.sock" || rc=1
	lab_status_row http external "$LAB_NS_EXT" http "http://$LAB_PUBLIC_V4/" || rc=1
	lab_status_row dns external "$LAB_NS_EXT" dnsmasq "$LAB_EXT_V4:53 (${LAB_NAMES[*]})" || rc=1
	return "$rc"
}

cmd_status() {
	local json=0 vm
	case "${1:-}" in
	"") ;;
	--json) json=1 ;;
	*) lab_die 2 "status: unknown argument: $1" ;;
	esac
	if ! lab_is_up; then
		[[ $json -eq 1 ]] && lab_die 3 "no lab is up (in $LAB_DIR)"
		echo "no lab is up (in $LAB_DIR)"
		return 3
	fi
	if [[ $json -eq 0 ]]; then
		lab_status_table
		return
	fi
	lab_status_json
	for vm in $(lab_vm_names) vmbusifyd http dnsmasq; do
		lab_running "$vm" >/dev/null || return 1
	done
}

# lab_exec NETNS CMD... - run CMD in NETNS, which must be one of this lab's.
lab_exec() {
	local ns="$1"
	shift
	[[ $# -gt 0 ]] || lab_die 2 "no command given"
	lab_need_root
	if ! lab_is_up || ! lab_ns_exists "$ns"; then
		lab_die 3 "no lab is up with namespace $ns"
	fi
	exec ip netns exec "$ns" "$@"
}

# lab_exec_qemu VM CMD... - run CMD in QEMU guest VM through the lab's daemon:
# a guest has no namespace of the machine to enter, only its channel.
lab_exec_qemu() {
	local vm="$1" bin
	shift
	[[ $# -gt 0 ]] || lab_die 2 "no command given"
	if ! lab_is_up || [[ "$(lab_state_get kind)" != qemu ]] || ! lab_vm_names | grep -qx "$vm"; then
		lab_die 3 "no QEMU lab is up with guest $vm"
	fi
	bin="$(lab_state_get bin_dir)"
	exec "$bin/vmbusify" --control "$LAB_DIR/control.sock" exec "$vm" "$@"
}

cmd_exec() {
	[[ $# -ge 1 ]] || lab_die 2 "usage: lab.sh exec VM CMD..."
	local vm="$1"
	shift
	if [[ "$vm" =~ ^qemu[1-9][0-9]*$ ]]; then
		lab_exec_qemu "$vm" "$@"
	fi
	[[ "$vm" =~ ^lab[1-9][0-9]*$ ]] ||
		lab_die 2 "not a lab VM name: '$vm' (lab1..lab$LAB_MAX_VMS or qemu1..qemu$LAB_MAX_VMS)"
	lab_exec "$LAB_NS_VM_PREFIX$vm" "$@"
}

# lab_ns_vm VM - check that VM is a namespace VM of the lab that is up.
lab_ns_vm() {
	lab_need_root
	lab_is_up || lab_die 3 "no lab is up (in $LAB_DIR)"
	if [[ "$(lab_state_get kind)" == qemu ]] || ! lab_vm_names | grep -qx -- "$1"; then
		lab_die 2 "not a namespace VM of this lab: '$1' (lab1..lab$(lab_state_get vms))"
	fi
}

# lab_kill_ns NETNS - SIGKILL everything in NETNS and wait until it is gone.
lab_kill_ns() {
	local pids=() i
	for ((i = 0; i < 50; i++)); do
		mapfile -t pids < <(ip netns pids "$1" 2>/dev/null | lab_filter_alive)
		[[ ${#pids[@]} -gt 0 ]] || return 0
		kill -KILL "${pids[@]}" 2>/dev/null || true
		sleep 0.1
	done
	lab_die 1 "$1: still running after SIGKILL: ${pids[*]}"
}

# cmd_reboot VM - VM reboots: no process of it is asked to stop, its network stack
# goes, and it boots again with its agent (under a new supervisor when supervised).
cmd_reboot() {
	[[ $# -eq 1 ]] || lab_die 2 "usage: lab.sh reboot VM"
	local vm="$1" ns="$LAB_NS_VM_PREFIX$1" sup
	lab_ns_vm "$vm"
	LAB_BIN_DIR="$(lab_state_get bin_dir)"
	# The supervisor first, so that it does not start the agent again in the old namespace.
	sup="$(cat "$LAB_DIR/$vm.supervisor" 2>/dev/null)" || sup=""
	[[ -z "$sup" ]] || ! lab_pid_owned "$sup" || kill -KILL "$sup" 2>/dev/null || true
	lab_kill_ns "$ns"
	ip netns delete "$ns"
	lab_ns_add "$ns"
	# A fresh boot has a fresh /run: the old socket file goes too.
	rm -f "$LAB_DIR/$vm.sock" "$LAB_DIR/$vm.pid"
	lab_start_agent "$vm"
	lab_wait "$vm" lab_check_socket "$LAB_DIR/$vm.sock"
	echo "vmbusify: lab: $vm rebooted (agent $(lab_pid_of "$vm"))"
}

# cmd_cut VM - VM's channel to the daemon breaks under both ends: the agent's end of each
# connection the daemon made to DIR/VM.sock is duplicated out of the agent with
# pidfd_getfd(2) (syscall 438) and shut down; the agent and the daemon both see the
# connection end, and neither is killed. (An accepted Unix socket belongs to the network
# namespace of the one who connected: the daemon's connections are listed in its namespace.)
cmd_cut() {
	[[ $# -eq 1 ]] || lab_die 2 "usage: lab.sh cut VM"
	local vm="$1" pid fds=()
	lab_ns_vm "$vm"
	pid="$(lab_running "$vm")" || lab_die 1 "$vm: its agent is not running"
	mapfile -t fds < <(ip netns exec "$LAB_NS_HOST" ss -xpnH state established \
		src "$LAB_DIR/$vm.sock" | grep -o "pid=$pid,fd=[0-9]*" | sed 's/.*fd=//')
	[[ ${#fds[@]} -gt 0 ]] || lab_die 1 "$vm: the daemon has no connection to its agent to cut"
	python3 - "$pid" "${fds[@]}" <<-'PY' || lab_die 1 "$vm: could not cut the channel"
		import ctypes, os, socket, sys
		libc = ctypes.CDLL(None, use_errno=True)
		pidfd = os.pidfd_open(int(sys.argv[1]))
		for fd in map(int, sys.argv[2:]):
		    dup = libc.syscall(438, pidfd, fd, 0)
		    if dup < 0:
		        sys.exit(f"pidfd_getfd: {os.strerror(ctypes.get_errno())}")
		    s = socket.socket(fileno=dup)
		    s.shutdown(socket.SHUT_RDWR)
		    s.close()
	PY
	echo "vmbusify: lab: cut $vm's channel (${#fds[@]} connection(s) of agent $pid)"
}

lab_usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
}

main() {
	local cmd="${1:-}"
	[[ $# -eq 0 ]] || shift
	lab_init_dir
	case "$cmd" in
	up) cmd_up "$@" ;;
	down) cmd_down "$@" ;;
	status) cmd_status "$@" ;;
	exec-host) lab_exec "$LAB_NS_HOST" "$@" ;;
	exec) cmd_exec "$@" ;;
	reboot) cmd_reboot "$@" ;;
	cut) cmd_cut "$@" ;;
	_supervise) cmd_supervise "$@" ;;
	-h | --help | help) lab_usage ;;
	"") lab_die 2 "usage: lab.sh up [--qemu] [--vms N] [--supervise] | down | status [--json] | exec-host CMD... | exec VM CMD... | reboot VM | cut VM" ;;
	*) lab_die 2 "unknown command: $cmd (see lab.sh --help)" ;;
	esac
}

main "$@"
