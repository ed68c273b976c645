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
# Tuning and files as e2e_haproxy_run.
e2e_haproxy_pod_start() {
	local name=$1 cg=$2 ns=$3 src6=${4:-} src6_line=""
	if [ -n "$src6" ]; then
		ip -n "$ns" addr replace "$src6/128" dev lo
		src6_line=" source [$src6]"
	fi
	e2e_haproxy_run "$name" "$cg" "$ns" "listen out
    bind 127.0.0.1:15001
    tcp-request connection reject if { dst_port 15001 } { dst 127.0.0.0/8 ::1 }
    server orig 0.0.0.0:0
listen in
    bind 127.0.0.1:15006
    server in 0.0.0.0:0 source $E2E_INBOUND_SRC4
listen in6
    bind [::1]:15006
    server in6 0.0.0.0:0$src6_line" 127.0.0.1:15001 127.0.0.1:15006 "[::1]:15006"
}

# e2e_haproxy_fe_sessions NAME FRONTEND: sessions of one frontend (out, in, in6)
e2e_haproxy_fe_sessions() { e2e_haproxy_sessions "$1" "$2"; }

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
