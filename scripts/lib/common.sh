# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# Shared shell helpers for demo, tests and benchmarks. Source it; do not run it.
#
# Every resource made through these helpers (cgroup, netns, pin dir, process)
# is recorded and removed by sm_cleanup, which sm_init installs as the
# EXIT/INT/TERM trap, so nothing is left behind on any exit path.
#
# The helpers are meant to be called as `x=$(sm_cgroup app)`: a command
# substitution is a subshell, so after sm_init the records go to files in
# $SM_STATE (not only to shell arrays, which the subshell would lose).

SM_ROOT=${SM_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
SM_BUILD=${SM_BUILD:-$SM_ROOT/build}
SM_CLI=${SM_CLI:-$SM_BUILD/user/cli/sockmesh}
SM_SIDECAR=${SM_SIDECAR:-$SM_BUILD/user/sidecar/sockmesh-sidecar}

_sm_cgroups=()
_sm_netns=()
_sm_pids=()
_sm_pindirs=()
_sm_files=()
_sm_hooks=()

sm_log() { printf '%s\n' "$*" >&2; }
sm_die() { sm_log "error: $*"; exit 1; }

# cgroup2 mount point, read from /proc/mounts (hybrid hosts mount it under
# /sys/fs/cgroup/unified, pure v2 hosts at /sys/fs/cgroup).
sm_cg2_root() { awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts; }

sm_bpffs() {
	mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
}

# _sm_owner_gone NAME: true when NAME carries a test tag (sm<letters><pid>-...
# from these helpers, smk-<pid>-... from the kernel tests) whose process is
# gone. A run that was killed (SIGKILL, a machine stop) cannot clean up after
# itself; the next run does it for it. Live runs' resources are never touched.
_sm_owner_gone() {
	local pid
	if [[ $1 =~ ^sm[a-z]*([0-9]+)- ]] || [[ $1 =~ ^smk-([0-9]+)- ]]; then
		pid=${BASH_REMATCH[1]}
		[ "$pid" = $$ ] && return 1
		# gone, or a zombie its parent has not reaped yet
		[ ! -e "/proc/$pid" ] || [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = Z ]
		return
	fi
	return 1
}

# _sm_unload PINDIR: detach and unpin an instance, bounded: a cleanup must
# end even when the CLI does not (a wedged or killed run, a bug), and it
# needs no graceful drain (--grace 0). Whatever the CLI left, removing the
# pins drops the links with their last reference.
_sm_unload() {
	[ -x "$SM_CLI" ] && timeout -k 5 20 "$SM_CLI" --pin-dir "$1" disable --all --grace 0 >/dev/null 2>&1
	rm -rf "$1" 2>/dev/null || true
}

# sm_sweep_stale: remove what killed runs left: their netns (and the
# processes in them), pin dirs (detaching their links), cgroups (and their
# processes), temp dirs.
sm_sweep_stale() {
	local n d c
	for n in $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
		_sm_owner_gone "$n" || continue
		sm_log "removing netns $n of a run that is gone"
		ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$n" 2>/dev/null
	done
	for d in /sys/fs/bpf/sm*; do
		{ [ -d "$d" ] && _sm_owner_gone "${d##*/}"; } || continue
		sm_log "removing pin dir $d of a run that is gone"
		_sm_unload "$d"
	done
	for c in "$SM_CG2"/sm*; do
		{ [ -d "$c" ] && _sm_owner_gone "${c##*/}"; } || continue
		sm_log "removing cgroup $c of a run that is gone"
		# children first (sm_subcgroup), then the run's own cgroup
		while IFS= read -r d; do
			xargs -r kill -9 <"$d/cgroup.procs" 2>/dev/null
			for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$d" 2>/dev/null && break; sleep 0.1; done
		done < <(find "$c" -depth -type d 2>/dev/null)
	done
	for d in /tmp/sm*; do
		[ -d "$d" ] && _sm_owner_gone "${d##*/}" && rm -rf "$d"
	done
	return 0
}

sm_init() {
	[ "$(id -u)" = 0 ] || sm_die "must run as root"
	SM_CG2=$(sm_cg2_root)
	[ -n "$SM_CG2" ] || sm_die "no cgroup2 mount in /proc/mounts"
	sm_bpffs
	sm_sweep_stale
	SM_TAG=${SM_TAG:-sm$$}
	SM_STATE=$(mktemp -d "/tmp/$SM_TAG-state.XXXXXX") || sm_die "mktemp"
	trap sm_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

# _sm_record KIND VALUE: remember a resource for sm_cleanup (KIND is one of
# cgroups netns pids pindirs files hooks).
_sm_record() {
	if [ -n "${SM_STATE:-}" ] && [ -d "$SM_STATE" ]; then
		printf '%s\n' "$2" >>"$SM_STATE/$1"
		return
	fi
	case $1 in
	cgroups) _sm_cgroups+=("$2") ;;
	netns) _sm_netns+=("$2") ;;
	pids) _sm_pids+=("$2") ;;
	pindirs) _sm_pindirs+=("$2") ;;
	files) _sm_files+=("$2") ;;
	hooks) _sm_hooks+=("$2") ;;
	esac
}

# _sm_recorded KIND: print the recorded resources of KIND, newest first (a
# nested cgroup goes before its parent).
_sm_recorded() {
	local -n _arr="_sm_$1"
	{
		[ "${#_arr[@]}" -gt 0 ] && printf '%s\n' "${_arr[@]}"
		[ -n "${SM_STATE:-}" ] && [ -f "$SM_STATE/$1" ] && cat "$SM_STATE/$1"
	} | tac
}

# sm_on_cleanup CMD...: run CMD (eval'd) during cleanup, before the rest.
sm_on_cleanup() { _sm_record hooks "$*"; }

# sm_cgroup NAME -> prints the path of a new child cgroup of the cgroup2 root
sm_cgroup() {
	local p="$SM_CG2/$SM_TAG-$1"
	mkdir "$p" || sm_die "cannot create cgroup $p"
	_sm_record cgroups "$p"
	echo "$p"
}

# sm_subcgroup PARENT NAME -> prints the path of a new cgroup PARENT/NAME
# (PARENT made by sm_cgroup); removed before its parent on cleanup.
sm_subcgroup() {
	local p="$1/$2"
	mkdir "$p" || sm_die "cannot create cgroup $p"
	_sm_record cgroups "$p"
	echo "$p"
}

# sm_netns NAME -> creates netns "$SM_TAG-NAME" with lo up, prints its name
sm_netns() {
	local n="$SM_TAG-$1"
	ip netns add "$n" || sm_die "cannot create netns $n"
	_sm_record netns "$n"
	ip -n "$n" link set lo up
	echo "$n"
}

# sm_pindir NAME -> prints a fresh bpffs pin dir path (not created)
sm_pindir() {
	local d="/sys/fs/bpf/$SM_TAG-$1"
	_sm_record pindirs "$d"
	echo "$d"
}

# sm_tmpdir NAME -> prints a temp dir path removed on cleanup
sm_tmpdir() {
	local d
	d=$(mktemp -d "/tmp/$SM_TAG-$1.XXXXXX")
	_sm_record files "$d"
	echo "$d"
}

# sm_track PID: kill PID (and wait) on cleanup
sm_track() { _sm_record pids "$1"; }

# _sm_exec_in CGROUP NETNS CMD...: exec CMD inside CGROUP and NETNS. The
# cgroup is joined first: `ip netns exec` mounts a private /sys without the
# cgroup2 mount, so cgroup.procs cannot be reached from inside it.
_sm_exec_in() {
	local cg=$1 ns=$2
	shift 2
	local pre=()
	[ "$ns" != - ] && pre=(ip netns exec "$ns")
	if [ "$cg" != - ]; then
		# shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
		exec bash -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' _ "$cg" "${pre[@]}" "$@"
	fi
	exec "${pre[@]}" "$@"
}

# sm_bg CGROUP NETNS CMD...: start CMD in the background inside CGROUP (may
# be "-") and NETNS (may be "-"); prints its pid and tracks it. CMD's stdout
# goes to sm_bg's stderr, so `pid=$(sm_bg ...)` returns at once; redirect
# inside CMD (or use sm_bg_log) to keep its output.
sm_bg() {
	local cg=$1 ns=$2
	shift 2
	(_sm_exec_in "$cg" "$ns" "$@") >&2 &
	local pid=$!
	_sm_record pids "$pid"
	echo "$pid"
}

# sm_bg_log LOG CGROUP NETNS CMD...: sm_bg with CMD's stdout and stderr
# appended to LOG.
sm_bg_log() {
	local log=$1 cg=$2 ns=$3
	shift 3
	(_sm_exec_in "$cg" "$ns" "$@") >>"$log" 2>&1 </dev/null &
	local pid=$!
	_sm_record pids "$pid"
	echo "$pid"
}

# sm_stop PID: stop a process started with sm_bg/sm_bg_log now (TERM, then KILL
# after 5 s) and forget it, so cleanup never signals a recycled pid.
sm_stop() {
	local p=$1 i keep=()
	if kill "$p" 2>/dev/null; then
		timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null
	fi
	wait "$p" 2>/dev/null || true
	for i in "${_sm_pids[@]}"; do [ "$i" = "$p" ] || keep+=("$i"); done
	_sm_pids=("${keep[@]}")
	if [ -n "${SM_STATE:-}" ] && [ -f "$SM_STATE/pids" ]; then
		grep -vxF -- "$p" "$SM_STATE/pids" >"$SM_STATE/pids.new" || true
		mv -f "$SM_STATE/pids.new" "$SM_STATE/pids"
	fi
}

# sm_run CGROUP NETNS CMD...: like sm_bg but in the foreground.
sm_run() {
	local cg=$1 ns=$2
	shift 2
	(_sm_exec_in "$cg" "$ns" "$@")
}

# sm_wait_port NETNS ADDR PORT: wait (max 5 s) until a TCP listener exists
sm_wait_port() {
	local ns=$1 addr=$2 port=$3 i
	local pre=()
	[ "$ns" != - ] && pre=(ip netns exec "$ns")
	for i in $(seq 50); do
		"${pre[@]}" ss -Hltn "sport = :$port" | grep -qF "$addr:$port" && return 0
		sleep 0.1
	done
	sm_log "nothing listens on $addr:$port in netns $ns"
	return 1
}

# sm_veth NS_A NS_B ADDR_A/LEN ADDR_B/LEN [ADDR6_A/LEN ADDR6_B/LEN]: connect
# two of our namespaces with a veth pair (it goes away with the namespaces).
sm_veth() {
	local a=$1 b=$2 ipa=$3 ipb=$4 ip6a=${5:-} ip6b=${6:-}
	local va="v${SM_TAG: -6}a$RANDOM" vb
	vb="${va%a*}b${va##*a}"
	ip link add "$va" netns "$a" type veth peer name "$vb" netns "$b" || sm_die "veth"
	ip -n "$a" addr add "$ipa" dev "$va"
	ip -n "$b" addr add "$ipb" dev "$vb"
	if [ -n "$ip6a" ]; then
		ip -n "$a" addr add "$ip6a" dev "$va" nodad
		ip -n "$b" addr add "$ip6b" dev "$vb" nodad
	fi
	ip -n "$a" link set "$va" up
	ip -n "$b" link set "$vb" up
}

sm_cleanup() {
	local rc=$? h p d n c
	trap - EXIT INT TERM
	set +e # a failed step must not stop the rest of the cleanup
	while IFS= read -r h; do
		eval "$h" >/dev/null 2>&1 || true
	done < <(_sm_recorded hooks)
	while IFS= read -r p; do
		kill "$p" 2>/dev/null && { timeout 5 tail --pid="$p" -f /dev/null 2>/dev/null || kill -9 "$p" 2>/dev/null; }
	done < <(_sm_recorded pids)
	wait 2>/dev/null
	while IFS= read -r d; do
		[ -d "$d" ] && _sm_unload "$d"
	done < <(_sm_recorded pindirs)
	while IFS= read -r n; do
		# processes still inside (started by ip netns exec) die with the ns' last ref
		ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$n" 2>/dev/null
	done < <(_sm_recorded netns)
	while IFS= read -r c; do
		if [ -d "$c" ]; then
			xargs -r kill -9 <"$c/cgroup.procs" 2>/dev/null
			for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$c" 2>/dev/null && break; sleep 0.1; done
		fi
	done < <(_sm_recorded cgroups)
	# --one-file-system: never into a mount a test left inside its tmp dir
	while IFS= read -r d; do rm -rf --one-file-system "$d"; done < <(_sm_recorded files)
	[ -n "${SM_STATE:-}" ] && rm -rf "$SM_STATE"
	exit "$rc"
}
