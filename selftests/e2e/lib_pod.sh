# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here are read by the test files
# e2e helpers for pods (netns scopes) with inbound capture: an istio-like
# HAProxy sidecar (outbound and inbound listeners), per-frontend session
# counts, and the L4 receive counters of a netns. Source it after lib.sh.

# istio's inbound passthrough source addresses: the sidecar connects to its
# app from these, so the app sees a loopback peer
E2E_INBOUND_SRC4=127.0.0.6
E2E_INBOUND_SRC6=::6

# e2e_haproxy_pod_start NAME CGROUP NETNS [IN6_SOURCE]: HAProxy 2.6 as an
# istio-like pod sidecar, as uid/gid 1337, inside CGROUP (so sockops sees its
# listen() and accepts) and NETNS:
#   listen out  127.0.0.1:15001  -> SO_ORIGINAL_DST (outbound capture)
#   listen in   127.0.0.1:15006  -> the connection's own local address (the
#               original destination, no NAT), from 127.0.0.6
#   listen in6  [::1]:15006      -> the same for IPv6; from IN6_SOURCE if
#               given (istio uses ::6, which this adds to lo), else from the
#               kernel's choice (the pod's own address)
# E2E_HAP_MAXCONN (default 4000) and E2E_HAP_TIMEOUT (default 30s) tune it.
# Files: $TMP/NAME.cfg, .sock (stats), .log, .pid (our pid of it).
e2e_haproxy_pod_start() {
	local name=$1 cg=$2 ns=$3 src6=${4:-} pid src6_line=""
	if [ -n "$src6" ]; then
		ip -n "$ns" addr replace "$src6/128" dev lo
		src6_line=" source [$src6]"
	fi
	cat >"$TMP/$name.cfg" <<-EOF
		global
		    uid $E2E_PROXY_UID
		    gid $E2E_PROXY_GID
		    maxconn ${E2E_HAP_MAXCONN:-4000}
		    stats socket $TMP/$name.sock mode 600 level admin
		defaults
		    mode tcp
		    timeout connect 5s
		    timeout client ${E2E_HAP_TIMEOUT:-30s}
		    timeout server ${E2E_HAP_TIMEOUT:-30s}
		listen out
		    bind 127.0.0.1:15001
		    server orig 0.0.0.0:0
		listen in
		    bind 127.0.0.1:15006
		    server in 0.0.0.0:0 source $E2E_INBOUND_SRC4
		listen in6
		    bind [::1]:15006
		    server in6 0.0.0.0:0$src6_line
	EOF
	pid=$(sm_bg_log "$TMP/$name.log" "$cg" "$ns" haproxy -db -f "$TMP/$name.cfg")
	echo "$pid" >"$TMP/$name.pid"
	local l
	for l in 127.0.0.1:15001 127.0.0.1:15006 "[::1]:15006"; do
		sm_wait_port "$ns" "${l%:*}" "${l##*:}" || sm_die "haproxy $name: $(cat "$TMP/$name.log")"
	done
}

# e2e_haproxy_fe_sessions NAME FRONTEND: total sessions (stot) of one
# frontend (out, in, in6) of HAProxy NAME, from its stats socket
e2e_haproxy_fe_sessions() {
	local v
	v=$(echo "show stat" | timeout 5 socat -t 2 - "UNIX-CONNECT:$TMP/$1.sock" |
		awk -F, -v fe="$2" '$1 == fe && $2 == "FRONTEND" { print $8 }')
	[ -n "$v" ] || sm_die "no stats for frontend $2 from haproxy $1"
	echo "$v"
}

# e2e_l4_in NETNS: TCP segments plus UDP datagrams (IPv4 and IPv6, delivered
# or not) that arrived in NETNS so far; a delta of 0 means no TCP or UDP
# packet reached it
e2e_l4_in() {
	ip netns exec "$1" cat /proc/net/snmp /proc/net/snmp6 | awk '
		# /proc/net/snmp: a header line of names, then a line of values
		($1 == "Tcp:" || $1 == "Udp:") && $2 !~ /^[0-9]+$/ { for (i = 2; i <= NF; i++) col[$1, $i] = i; next }
		$1 == "Tcp:" { n += $col["Tcp:", "InSegs"] }
		$1 == "Udp:" { n += $col["Udp:", "InDatagrams"] + $col["Udp:", "NoPorts"] + $col["Udp:", "InErrors"] }
		$1 == "Udp6InDatagrams" || $1 == "Udp6NoPorts" || $1 == "Udp6InErrors" { n += $2 }
		END { print n + 0 }'
}

# e2e_status_field KEY [--cgroup PATH | --netns NS]: one field of the first
# scope in `sockmesh -j status`
e2e_status_field() {
	local k=$1
	shift
	sm_cli -j status "$@" | jq -r --arg k "$k" '.scopes[0][$k]'
}

# e2e_pin_state CGROUP: everything a rejected CLI call must leave alone:
# status, the programs attached at CGROUP, the objects pinned under $PIN,
# and the policy maps' contents
e2e_pin_state() {
	local m
	sm_cli -j status | jq -c .
	bpftool -j cgroup show "$1"
	find "$PIN" | sort
	for m in scope_map port_map cidr_map pod_addr_map; do
		bpftool -j map dump pinned "$PIN/map_$m" | jq -c 'sort_by(.key)'
	done
}
