#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Netns mode, two pods behind one attach cgroup: each pod has its own HAProxy
# on 127.0.0.1:15001 and its own server, and both apps bind the same local
# port, so the app<->proxy loopback tuples are identical in the two pods. The
# original destinations (and spliced sockets) must not cross from one pod to
# the other.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init netns_isolation
e2e_need_sockmesh
CG=$(sm_cgroup app)
PIN=$(sm_pindir pin)
PODA=$(e2e_pod_netns poda)
SRVA=$(sm_netns srva)
PODB=$(e2e_pod_netns podb)
SRVB=$(sm_netns srvb)
# pod A reaches only 10.77.0.0/24, pod B only 10.78.0.0/24: an original
# destination leaking into the other pod cannot be reached from there
e2e_pod_pair "$PODA" "$SRVA" 77
e2e_pod_pair "$PODB" "$SRVB" 78
e2e_nginx_start weba "$SRVA" "10.77.0.2:80 srv-poda"
e2e_nginx_start webb "$SRVB" "10.78.0.2:8080 srv-podb"
e2e_haproxy_start hapa "$CG" "$PODA"
e2e_haproxy_start hapb "$CG" "$PODB"
sm_cli enable --netns "$PODA" --attach-cgroup "$CG"
sm_cli enable --netns "$PODB" --attach-cgroup "$CG"

URLA=http://10.77.0.2/
URLB=http://10.78.0.2:8080/

# check_pods SA0 SA1 SB0 SB1 HA0 HB0 BODYA BODYB: each pod's request reached
# its own server through its own proxy, counted in its own scope
check_pods() {
	assert_match "$7" '^srv-poda 10\.77\.0\.1:2[0-9]{4}$' "pod A body (from its server, via its proxy)"
	assert_match "$8" '^srv-podb 10\.78\.0\.1:2[0-9]{4}$' "pod B body (from its server, via its proxy)"
	assert_eq "$(($(e2e_haproxy_sessions hapa) - $5))" 1 "pod A haproxy sessions"
	assert_eq "$(($(e2e_haproxy_sessions hapb) - $6))" 1 "pod B haproxy sessions"
	local keys=(captured=1 origdst_published=1 origdst_answered=1 bypass_proxy_uid=1 origdst_miss=0
		'splice_sockets=*' 'splice_msgs=*' 'splice_bytes=*' splice_miss=0)
	assert_deltas "$1" "$2" "pod A scope" "${keys[@]}"
	assert_deltas "$3" "$4" "pod B scope" "${keys[@]}"
}

same_tuple_one_after_the_other() {
	local sa0 sb0 sa1 sb1 ha0 hb0 a b
	sa0=$(e2e_stats --netns "$PODA")
	sb0=$(e2e_stats --netns "$PODB")
	ha0=$(e2e_haproxy_sessions hapa)
	hb0=$(e2e_haproxy_sessions hapb)
	a=$(e2e_curl "$CG" "$PODA" --local-port 40000 "$URLA")
	b=$(e2e_curl "$CG" "$PODB" --local-port 40000 "$URLB")
	sa1=$(e2e_stats --netns "$PODA")
	sb1=$(e2e_stats --netns "$PODB")
	check_pods "$sa0" "$sa1" "$sb0" "$sb1" "$ha0" "$hb0" "$a" "$b"
}

# e2e_wait_estab NETNS LPORT: the app's 127.0.0.1:LPORT -> :15001 is established
e2e_wait_estab() {
	local _
	for _ in $(seq 50); do
		ip netns exec "$1" ss -Htn state established "( sport = :$2 and dport = :15001 )" | grep -q . && return 0
		sleep 0.1
	done
	sm_log "    no established 127.0.0.1:$2 -> :15001 in $1"
	return 1
}

# Both proxies stopped: both apps connect (the kernel completes the handshake
# and sockops publishes both original destinations under the same tuple) and
# only then do the proxies accept and ask SO_ORIGINAL_DST.
same_tuple_at_the_same_time() {
	local sa0 sb0 sa1 sb1 ha0 hb0 pa pb ca cb
	pa=$(cat "$TMP/hapa.pid")
	pb=$(cat "$TMP/hapb.pid")
	sa0=$(e2e_stats --netns "$PODA")
	sb0=$(e2e_stats --netns "$PODB")
	ha0=$(e2e_haproxy_sessions hapa)
	hb0=$(e2e_haproxy_sessions hapb)
	kill -STOP "$pa" "$pb"
	# shellcheck disable=SC2064 # expand the pids now
	trap "kill -CONT $pa $pb" EXIT
	e2e_curl "$CG" "$PODA" --local-port 40001 "$URLA" >"$TMP/conc.a" 2>&1 &
	ca=$!
	e2e_curl "$CG" "$PODB" --local-port 40001 "$URLB" >"$TMP/conc.b" 2>&1 &
	cb=$!
	e2e_wait_estab "$PODA" 40001
	e2e_wait_estab "$PODB" 40001
	kill -CONT "$pa" "$pb"
	wait "$ca" || true
	wait "$cb" || true
	sa1=$(e2e_stats --netns "$PODA")
	sb1=$(e2e_stats --netns "$PODB")
	check_pods "$sa0" "$sa1" "$sb0" "$sb1" "$ha0" "$hb0" "$(cat "$TMP/conc.a")" "$(cat "$TMP/conc.b")"
}

e2e_subtest same_tuple_one_after_the_other same_tuple_one_after_the_other
e2e_subtest same_tuple_at_the_same_time same_tuple_at_the_same_time
e2e_finish
