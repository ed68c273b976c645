# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here are read by the test files
# e2e helpers: topology, servers, sidecars, sockmesh stats and assertions.
# Source it from a test_*.sh after `set -euo pipefail`, then call e2e_init.
#
# A test file builds its topology in the main shell and runs each subtest
# with e2e_subtest, in a subshell with `set -e`, so one failing subtest does
# not hide the others. Resources made in a subshell are still cleaned up:
# common.sh records them in files, not only in shell variables.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../scripts/lib/common.sh
. "$E2E_DIR/../../scripts/lib/common.sh"

# The system interpreter: pyenv shims do not work under another uid (setpriv).
E2E_PY=${E2E_PY:-/usr/bin/python3}
# deploy/install-cni.sh runs `sockmesh cni-install`: the one we test
export SOCKMESH_CLI=${SOCKMESH_CLI:-$SM_CLI}
E2E_TCPTOOL="$E2E_DIR/tcptool.py"
E2E_PROXY_UID=1337
E2E_PROXY_GID=1337
E2E_FAILED=0
E2E_PASSED=0

# Addresses of the standard topology (inside our own netns only).
E2E_POD4=10.77.0.1
E2E_SRV4A=10.77.0.2
E2E_SRV4B=10.77.0.3
E2E_POD6=fd77::1
E2E_SRV6=fd77::2

# e2e_init NAME: common.sh init (cleanup trap) plus a tmp dir in $TMP.
e2e_init() {
	E2E_NAME=$1
	sm_init
	TMP=$(sm_tmpdir "$E2E_NAME")
	# the proxies drop to uid 1337 and may open their logs after that
	chmod 755 "$TMP"
	export TMP
	sm_log "== $E2E_NAME (tag $SM_TAG, tmp $TMP)"
}

# e2e_need_sockmesh: fail (not skip) when the CLI has not been built.
e2e_need_sockmesh() {
	[ -x "$SM_CLI" ] || sm_die "sockmesh CLI not built: $SM_CLI (meson setup build && ninja -C build)"
}

e2e_need_sidecar() {
	[ -x "$SM_SIDECAR" ] || sm_die "reference sidecar not built: $SM_SIDECAR"
}

# ---------------------------------------------------------------- assertions

# assert_eq GOT WANT LABEL: print the label, got and want; false on mismatch.
assert_eq() {
	if [ "$1" == "$2" ]; then
		sm_log "    ok   $3: $1"
		return 0
	fi
	sm_log "    FAIL $3: got '$1', want '$2'"
	return 1
}

# assert_match GOT ERE LABEL
assert_match() {
	if [[ $1 =~ $2 ]]; then
		sm_log "    ok   $3: $1"
		return 0
	fi
	sm_log "    FAIL $3: got '$1', want a match of /$2/"
	return 1
}

# assert_ge GOT MIN LABEL: integers, GOT >= MIN
assert_ge() {
	if [[ $1 =~ ^-?[0-9]+$ ]] && [ "$1" -ge "$2" ]; then
		sm_log "    ok   $3: $1 (>= $2)"
		return 0
	fi
	sm_log "    FAIL $3: got '$1', want >= $2"
	return 1
}

# e2e_fastpath_pod FILE: a second pod, enrolled (its cgroup in FP_CG, its
# netns in FP_POD), whose reference sidecar hands every connection to the
# kernel (--fast-path); its servers at 10.78.0.2 (netns FP_SRV): FILE sent
# from port 9103, a hash server on 9000
e2e_fastpath_pod() {
	FP_CG=$(sm_cgroup app2)
	FP_POD=$(e2e_pod_netns pod2)
	FP_SRV=$(sm_netns srv2)
	e2e_pod_pair "$FP_POD" "$FP_SRV" 78
	e2e_pyserver bulk78 - "$FP_SRV" send-server 10.78.0.2 9103 "$1"
	e2e_pyserver hash78 - "$FP_SRV" hash-server 10.78.0.2 9000
	e2e_sidecar_start car2 "$FP_CG" "$FP_POD" 127.0.0.1:15001 --fast-path --pin-dir "$PIN"
	sm_cli enable --cgroup "$FP_CG"
}

# e2e_cli_bg NAME OUT ERR READY ARGS...: `sockmesh -v ARGS` in the
# background (stdout to OUT, stderr to ERR) until ERR says READY; its pid in
# E2E_BG_PID and $TMP/NAME.pid (and recorded for the cleanup). One a failed
# subtest left running under NAME is killed first.
e2e_cli_bg() {
	local name=$1 out=$2 err=$3 ready=$4 _
	shift 4
	if [ -s "$TMP/$name.pid" ]; then
		kill -9 "$(cat "$TMP/$name.pid")" 2>/dev/null || true
		sleep 0.2
	fi
	"$SM_CLI" --pin-dir "$PIN" -v "$@" >"$out" 2>"$err" &
	E2E_BG_PID=$!
	echo "$E2E_BG_PID" >"$TMP/$name.pid"
	_sm_record pids "$E2E_BG_PID"
	for _ in $(seq 100); do
		grep -q "$ready" "$err" 2>/dev/null && return 0
		kill -0 "$E2E_BG_PID" 2>/dev/null || break
		sleep 0.1
	done
	sm_log "    sockmesh $1 did not start: $(cat "$err")"
	return 1
}

# assert_exit WANT LABEL CMD...: CMD exits with status WANT; its stderr is
# left in $TMP/stderr for the caller to check the message
assert_exit() {
	local want=$1 label=$2 rc=0
	shift 2
	"$@" 2>"$TMP/stderr" >/dev/null || rc=$?
	assert_eq "$rc" "$want" "$label ($(head -c 300 "$TMP/stderr"))"
}

# e2e_subtest NAME FUNC [ARGS...]: run FUNC in a subshell with set -e; the
# first failing command or assertion ends the subtest as FAIL.
e2e_subtest() {
	local name=$1 rc=0 t0=$SECONDS
	shift
	sm_log "  -- $name"
	set +e
	(
		set -e
		"$@"
	)
	rc=$?
	set -e
	if [ "$rc" = 0 ]; then
		E2E_PASSED=$((E2E_PASSED + 1))
		sm_log "  PASS $name ($((SECONDS - t0)) s)"
	else
		E2E_FAILED=$((E2E_FAILED + 1))
		sm_log "  FAIL $name ($((SECONDS - t0)) s, rc $rc)"
	fi
}

# e2e_finish: summary line; exit status 1 when a subtest failed.
e2e_finish() {
	sm_log "== $E2E_NAME: $E2E_PASSED subtests passed, $E2E_FAILED failed"
	[ "$E2E_FAILED" = 0 ]
}

# ------------------------------------------------------------------ topology

# e2e_veth_of NETNS: name of the (single) veth in NETNS made by sm_veth
e2e_veth_of() {
	ip -n "$1" -o link show type veth | awk -F': ' 'NR == 1 { sub(/@.*/, "", $2); print $2 }'
}

# e2e_pod_pair POD SRV [NET]: veth POD <-> SRV. NET is the 10.x.0 prefix
# (default 77): pod 10.NET.0.1, servers 10.NET.0.2 and 10.NET.0.3,
# IPv6 fdNET::1 / fdNET::2.
e2e_pod_pair() {
	local pod=$1 srv=$2 net=${3:-77}
	sm_veth "$pod" "$srv" "10.$net.0.1/24" "10.$net.0.2/24" "fd$net::1/64" "fd$net::2/64"
	ip -n "$srv" addr add "10.$net.0.3/24" dev "$(e2e_veth_of "$srv")"
}

# Inside a pod netns the kernel picks local ports from E2E_EPHEMERAL; clients
# that must be recognisable bind a port from E2E_CLIENT_PORTS instead. A
# server seeing a peer port >= 40000 thus talked to the app directly, one in
# the ephemeral range talked to the proxy's upstream connection.
E2E_EPHEMERAL="20000 29999"
E2E_CLIENT_PORT_MIN=40000

# e2e_pod_netns NAME: sm_netns with the pod's ephemeral port range
e2e_pod_netns() {
	local ns
	ns=$(sm_netns "$1")
	ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="$E2E_EPHEMERAL"
	echo "$ns"
}

# e2e_topology: the standard pod + srv netns pair in $POD and $SRV, with a
# test cgroup in $CG and a pin dir in $PIN.
e2e_topology() {
	CG=$(sm_cgroup app)
	POD=$(e2e_pod_netns pod)
	SRV=$(sm_netns srv)
	PIN=$(sm_pindir pin)
	e2e_pod_pair "$POD" "$SRV"
}

# e2e_peer_port "ANY TEXT ADDR:PORT": the port at the end of a server reply
e2e_peer_port() { echo "${1##*:}"; }

# assert_direct REPLY LABEL / assert_proxied REPLY LABEL: by the peer port the
# server saw (see E2E_CLIENT_PORT_MIN)
assert_direct() {
	local p
	p=$(e2e_peer_port "$1")
	[[ $p =~ ^[0-9]+$ ]] && [ "$p" -ge "$E2E_CLIENT_PORT_MIN" ] && { sm_log "    ok   $2: direct ($1)"; return 0; }
	sm_log "    FAIL $2: server reply '$1' does not show the client's own port (direct connection expected)"
	return 1
}
assert_proxied() {
	local p
	p=$(e2e_peer_port "$1")
	[[ $p =~ ^[0-9]+$ ]] && [ "$p" -lt "$E2E_CLIENT_PORT_MIN" ] && { sm_log "    ok   $2: via proxy ($1)"; return 0; }
	sm_log "    FAIL $2: server reply '$1' does not show a proxy's upstream port (capture expected)"
	return 1
}

# ------------------------------------------------------------------- servers

# e2e_nginx_start NAME NETNS "LISTEN BODY" ...: nginx in NETNS with one
# server per LISTEN (nginx syntax: 10.77.0.2:80, [fd77::2]:8081) answering
# "BODY <client ip>:<client port>". Access log: $TMP/NAME/access.log, one line
# "<server addr>:<port> <client addr>:<port>" per request; requests.log:
# "<server addr>:<port> <request line> <user agent>".
e2e_nginx_start() {
	local name=$1 ns=$2 d="$TMP/$1" spec listen body
	shift 2
	mkdir -p "$d"
	{
		printf 'daemon off;\nworker_processes 1;\npid %s/nginx.pid;\nerror_log %s/error.log;\n' "$d" "$d"
		printf 'events { worker_connections 512; }\nhttp {\n'
		# shellcheck disable=SC2016 # nginx variables
		printf '  log_format e2e "$server_addr:$server_port $remote_addr:$remote_port";\n'
		printf '  access_log %s/access.log e2e;\n' "$d"
		# shellcheck disable=SC2016 # nginx variables
		printf '  log_format e2ereq "$server_addr:$server_port $request $http_user_agent";\n'
		printf '  access_log %s/requests.log e2ereq;\n' "$d"
		local t
		for t in client_body proxy fastcgi uwsgi scgi; do
			printf '  %s_temp_path %s/%s;\n' "$t" "$d" "$t"
		done
		for spec in "$@"; do
			listen=${spec%% *}
			body=${spec#* }
			printf '  server {\n    listen %s;\n' "$listen"
			# shellcheck disable=SC2016 # nginx variables
			printf '    location / { default_type text/plain; return 200 "%s $remote_addr:$remote_port\\n"; }\n  }\n' "$body"
		done
		printf '}\n'
	} >"$d/nginx.conf"
	: >"$d/access.log"
	sm_bg_log "$d/stdout.log" - "$ns" nginx -e "$d/error.log" -p "$d" -c "$d/nginx.conf" >/dev/null
	for spec in "$@"; do
		listen=${spec%% *}
		sm_wait_port "$ns" "${listen%:*}" "${listen##*:}" || sm_die "nginx $name: $(cat "$d/error.log")"
	done
}

# e2e_access_count NAME SERVERADDR:PORT: requests nginx NAME served there
e2e_access_count() {
	grep -cF "$2 " "$TMP/$1/access.log" || true
}

# e2e_pyserver NAME CGROUP NETNS tcptool-args...: a tcptool.py server, log in
# $TMP/NAME.log; waits for its port (args: MODE ADDR PORT ...).
e2e_pyserver() {
	local name=$1 cg=$2 ns=$3 addr=$5 port=$6
	shift 3
	sm_bg_log "$TMP/$name.log" "$cg" "$ns" "$E2E_PY" "$E2E_TCPTOOL" "$@" >/dev/null
	if [[ $addr == *:* ]]; then addr="[$addr]"; fi
	sm_wait_port "$ns" "$addr" "$port"
}

# e2e_tcptool CGROUP NETNS tcptool-args...: run the tcptool client in the
# foreground inside CGROUP and NETNS.
e2e_tcptool() {
	local cg=$1 ns=$2
	shift 2
	sm_run "$cg" "$ns" "$E2E_PY" "$E2E_TCPTOOL" "$@"
}

# e2e_curl CGROUP NETNS curl-args...: curl from inside CGROUP and NETNS,
# prints the body; fails on HTTP or transport errors.
e2e_curl() {
	local cg=$1 ns=$2
	shift 2
	sm_run "$cg" "$ns" curl -sS --fail --noproxy '*' --connect-timeout 5 --max-time 15 "$@"
}

# ------------------------------------------------------------------ sidecars

# e2e_haproxy_run NAME CGROUP NETNS LISTEN_BLOCK WAIT...: HAProxy 2.6 as a
# sidecar, as uid/gid 1337, inside CGROUP and NETNS, with the `listen`
# sections in LISTEN_BLOCK after the common global/defaults part; waits for
# each WAIT (ADDR:PORT, [V6]:PORT). E2E_HAP_MAXCONN (default 4000) and
# E2E_HAP_TIMEOUT (default 30s) tune it; E2E_HAP_LOGALL=1 logs every
# session with its byte counts ("CLIENT UPSTREAM-END U=from the client
# B=to it STATE TIME") instead of only the abnormal ones. Files:
# $TMP/NAME.cfg, .sock (stats), .log, .pid (our pid of it).
e2e_haproxy_run() {
	local name=$1 cg=$2 ns=$3 listen=$4 pid l lf='option dontlog-normal'
	shift 4
	[ -z "${E2E_HAP_LOGALL:-}" ] || lf='log-format "%ci:%cp %bi:%bp U=%U B=%B %ts %Tt"'
	{
		cat <<-EOF
			global
			    uid $E2E_PROXY_UID
			    gid $E2E_PROXY_GID
			    maxconn ${E2E_HAP_MAXCONN:-4000}
			    stats socket $TMP/$name.sock mode 600 level admin
			    log stdout format raw local0
			defaults
			    mode tcp
			    log global
			    option tcplog
			    $lf
			    timeout connect 5s
			    timeout client ${E2E_HAP_TIMEOUT:-30s}
			    timeout server ${E2E_HAP_TIMEOUT:-30s}
		EOF
		printf '%s\n' "$listen"
	} >"$TMP/$name.cfg"
	pid=$(sm_bg_log "$TMP/$name.log" "$cg" "$ns" haproxy -db -f "$TMP/$name.cfg")
	echo "$pid" >"$TMP/$name.pid"
	for l in "$@"; do
		sm_wait_port "$ns" "${l%:*}" "${l##*:}" || sm_die "haproxy $name: $(cat "$TMP/$name.log")"
	done
}

# e2e_haproxy_start NAME CGROUP NETNS [PORT]: HAProxy as transparent sidecar
# on 127.0.0.1:PORT (15001) forwarding to SO_ORIGINAL_DST (frontend "out"),
# with the README's loop guard (a connection without an original
# destination, whose dst is then the proxy's own address, is refused).
e2e_haproxy_start() {
	local port=${4:-15001}
	e2e_haproxy_run "$1" "$2" "$3" "listen out
    bind 127.0.0.1:$port
    tcp-request connection reject if { dst_port $port } { dst 127.0.0.0/8 ::1 }
    server orig 0.0.0.0:0" "127.0.0.1:$port"
}

# e2e_haproxy_bare NAME CGROUP NETNS PORT: HAProxy as a sidecar on
# 127.0.0.1:PORT WITHOUT the README's loop guard, the config that loops on
# itself when a connection has no original destination (maxconn from
# E2E_HAP_MAXCONN bounds the loop).
e2e_haproxy_bare() {
	e2e_haproxy_run "$1" "$2" "$3" "listen out
    bind 127.0.0.1:$4
    server orig 0.0.0.0:0" "127.0.0.1:$4"
}

# e2e_haproxy_self_conns NETNS PORT: HAProxy's own established connections
# to :PORT in NETNS (the loop of a connection without original destination)
e2e_haproxy_self_conns() {
	ip netns exec "$1" ss -Htnp state established "( dport = :$2 )" | grep -c '"haproxy"' || true
}

# e2e_wait_accept_queue NETNS PORT N: wait (max 10 s) until the listeners
# on PORT in NETNS hold N connections not yet accepted (the sum of their
# Recv-Q: a listener's accept queue), so a test that holds its proxy with
# SIGSTOP knows its connects were made, and captured, before it goes on.
e2e_wait_accept_queue() {
	local ns=$1 port=$2 n=$3 q=0
	for _ in $(seq 100); do
		q=$(ip netns exec "$ns" ss -Hltn "( sport = :$port )" | awk '{ q += $2 } END { print q + 0 }')
		[ "$q" -ge "$n" ] && return 0
		sleep 0.1
	done
	sm_die "$q of $n connections in the accept queue of port $port in netns $ns after 10 s"
}

# e2e_haproxy_sessions NAME [FRONTEND]: total sessions (stot) of HAProxy
# NAME's FRONTEND (default out), from its stats socket.
e2e_haproxy_sessions() {
	local v
	v=$(echo "show stat" | timeout 5 socat -t 2 - "UNIX-CONNECT:$TMP/$1.sock" |
		awk -F, -v fe="${2:-out}" '$1 == fe && $2 == "FRONTEND" { print $8 }')
	[ -n "$v" ] || sm_die "no stats for frontend ${2:-out} from haproxy $1"
	echo "$v"
}

# e2e_sidecar_start NAME CGROUP NETNS LISTEN... [--OPTION...]: the reference
# sidecar as uid 1337 listening on each LISTEN (127.0.0.1:15001,
# [::1]:15001); words from the first --OPTION on are passed to it as they
# are. Log $TMP/NAME.log, stderr $TMP/NAME.err.
e2e_sidecar_start() {
	local name=$1 cg=$2 ns=$3 l args=() pid listen=()
	shift 3
	while [ $# -gt 0 ] && [[ $1 != --* ]]; do
		listen+=("$1")
		args+=(--listen "$1")
		shift
	done
	args+=("$@")
	set -- "${listen[@]}"
	# --fast-path opens the sockmesh instance, pinned in the host's bpffs:
	# `ip netns exec` remounts /sys, so enter only the network namespace
	# (as a pod's sidecar sees a bpffs mounted into its container)
	if [[ " ${args[*]} " == *" --fast-path "* ]]; then
		pid=$(sm_bg_log "$TMP/$name.err" "$cg" - nsenter --net="/run/netns/$ns" "$SM_SIDECAR" \
			"${args[@]}" --uid "$E2E_PROXY_UID" --gid "$E2E_PROXY_GID" --log "$TMP/$name.log" \
			--pidfile "$TMP/$name.pidfile")
		echo "$pid" >"$TMP/$name.pid"
		for l in "$@"; do
			sm_wait_port "$ns" "${l%:*}" "${l##*:}" || sm_die "sidecar $name: $(cat "$TMP/$name.err")"
		done
		return 0
	fi
	: >"$TMP/$name.log"
	chown "$E2E_PROXY_UID:$E2E_PROXY_GID" "$TMP/$name.log"
	pid=$(sm_bg_log "$TMP/$name.err" "$cg" "$ns" "$SM_SIDECAR" "${args[@]}" \
		--uid "$E2E_PROXY_UID" --gid "$E2E_PROXY_GID" --log "$TMP/$name.log" --pidfile "$TMP/$name.pidfile")
	echo "$pid" >"$TMP/$name.pid"
	for l in "$@"; do
		sm_wait_port "$ns" "${l%:*}" "${l##*:}" || sm_die "sidecar $name: $(cat "$TMP/$name.err")"
	done
}

# e2e_half_close_reply UPLOAD: UPLOAD FILE sends FILE from the app,
# half-closes and prints the hash server's reply; that server answers only
# after it read EOF, so the FIN had to cross every leg
e2e_half_close_reply() {
	local reply
	printf 'ping' >"$TMP/ping"
	reply=$("$1" "$TMP/ping")
	assert_eq "$reply" "$(sha256sum "$TMP/ping" | cut -d' ' -f1) 4" "reply after half-close"
	assert_match "$(tail -n 1 "$TMP/hash.log")" "^hash peer=$E2E_POD4:[0-9]+ bytes=4\$" "server read 4 bytes then EOF"
}

# ------------------------------------------------------------------ sockmesh

# sm_cli ARGS...: the sockmesh CLI with the test's pin dir (bounded: a hung
# CLI fails its subtest instead of eating the whole test's time)
sm_cli() { timeout 30 "$SM_CLI" --pin-dir "$PIN" "$@"; }

# e2e_stats [--cgroup PATH | --netns NS]: `sockmesh -j stats` JSON of that
# scope; "global" taken from the unfiltered stats when the filtered ones
# leave it out
e2e_stats() {
	local s
	s=$(sm_cli -j stats "$@")
	if jq -e 'has("global")' <<<"$s" >/dev/null; then
		echo "$s"
	else
		jq -c --argjson g "$(sm_cli -j stats | jq -c .global)" '. + {global: $g}' <<<"$s"
	fi
}

# e2e_cgroup_progs CGROUP: number of programs attached at CGROUP (bpftool
# prints nothing at all when there are none)
e2e_cgroup_progs() {
	bpftool -j cgroup show "$1" | jq -s '.[0] // [] | length'
}

# e2e_counter JSON KEY: a counter of the first listed scope, or of "global"
# when KEY is global.NAME; "null" when missing.
e2e_counter() {
	case $2 in
	global.*) jq -r --arg k "${2#global.}" '.global[$k]' <<<"$1" ;;
	*) jq -r --arg k "$2" '.scopes[0].counters[$k]' <<<"$1" ;;
	esac
}

# assert_deltas BEFORE AFTER LABEL KEY=N...: each named counter moved by
# exactly N (N may be '*' for "any", or '+' for "at least 1"); every other
# counter of the scope must not have moved (but the drain bookkeeping,
# origdst_stored/asked/unasked, unless named). global.KEY names a global one.
assert_deltas() {
	local s0=$1 s1=$2 label=$3 kv k want got named=" " ok=0 a b
	shift 3
	for kv in "$@"; do
		k=${kv%%=*}
		want=${kv#*=}
		named+="$k "
		a=$(e2e_counter "$s0" "$k")
		b=$(e2e_counter "$s1" "$k")
		if [ "$a" = null ] || [ "$b" = null ]; then
			assert_eq "$a -> $b" number "$label: counter $k present" || ok=1
			continue
		fi
		got=$((b - a))
		case $want in
		'*') ;;
		+) [ "$got" -ge 1 ] || { assert_eq "$got" ">= 1" "$label: $k delta" || ok=1; } ;;
		*) assert_eq "$got" "$want" "$label: $k delta" || ok=1 ;;
		esac
	done
	for k in $(jq -r '.scopes[0].counters | keys[]' <<<"$s1"); do
		[[ $named == *" $k "* ]] && continue
		# the drain's bookkeeping moves with every captured connection
		# (stored, then asked or unasked): checked where a test names it
		case $k in origdst_stored | origdst_asked | origdst_unasked) continue ;; esac
		a=$(e2e_counter "$s0" "$k")
		b=$(e2e_counter "$s1" "$k")
		[ "$a" = "$b" ] || { assert_eq "$((b - a))" 0 "$label: unexpected $k delta" || ok=1; }
	done
	return "$ok"
}
