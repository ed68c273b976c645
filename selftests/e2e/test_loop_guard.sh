#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# HAProxy's loop guard (README, issue 12 item 2): a connection that reaches
# HAProxy without an original destination (an app connecting to
# 127.0.0.1:15001 itself, or one captured just before `disable` took the
# getsockopt program away) has HAProxy's own address as `dst`; `server orig
# 0.0.0.0:0` then connects HAProxy to itself, again and again, until
# maxconn. The README's `tcp-request connection reject` line refuses it.
# Shown both ways: HAProxy without the guard loops (so the count can
# fail), with it there is no self-connection, captured traffic still flows,
# and connections whose original destination `disable --all` took away
# before HAProxy asked are refused, not looped.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init loop_guard
e2e_need_sockmesh
e2e_topology
e2e_nginx_start web "$SRV" "$E2E_SRV4A:80 srv-a"
# without the guard, on 15011, maxconn bounding the loop
E2E_HAP_MAXCONN=200 e2e_haproxy_bare bare "$CG" "$POD" 15011
# as the README says, on 15001
e2e_haproxy_start hap "$CG" "$POD"
sm_cli enable --cgroup "$CG"

self_conns() { e2e_haproxy_self_conns "$POD" "$1"; }

# hold PORT SECONDS: as the app (root, not the proxy), connect to
# 127.0.0.1:PORT itself (loopback: never captured), send a line, hold it
hold() {
	sm_run "$CG" "$POD" timeout "$(($2 + 2))" bash -c \
		"exec 3<>/dev/tcp/127.0.0.1/$1 && echo hello >&3 && sleep $2" >/dev/null 2>&1 || true
}

without_the_guard_haproxy_connects_to_itself() {
	local n=0
	hold 15011 3 &
	for _ in $(seq 30); do
		sleep 0.1
		n=$(self_conns 15011)
		[ "$n" -ge 20 ] && break
	done
	wait
	sm_log "    HAProxy without the guard: $n connections to itself"
	assert_ge "$n" 20 "HAProxy without the guard connects to itself (this count can fail)"
}

with_the_guard_no_self_connection() {
	local n max=0 s0 s1 body
	s0=$(e2e_haproxy_sessions hap)
	hold 15001 2 &
	for _ in $(seq 20); do
		sleep 0.1
		n=$(self_conns 15001)
		[ "$n" -gt "$max" ] && max=$n
	done
	wait
	s1=$(e2e_haproxy_sessions hap)
	assert_eq "$max" 0 "HAProxy with the guard: connections to itself"
	# the guard rejects at connection time: it is not even a session
	assert_eq "$((s1 - s0))" 0 "sessions the refused connection opened"
	body=$(e2e_curl "$CG" "$POD" "http://$E2E_SRV4A/")
	assert_match "$body" "^srv-a $E2E_POD4:[0-9]+\$" "captured traffic still reaches its server"
}

# Connections captured, then left without an original destination: HAProxy
# is stopped (SIGSTOP) while 4 captured connects wait in its backlog, the
# getsockopt program goes with `disable --all`, then HAProxy resumes and
# finds no original destination for any of them. With the guard they are
# refused (the curls fail), none loops.
disable_before_the_proxy_asked_no_self_connection() {
	local n max=0 i s0 s1 hpid ok=0
	hpid=$(cat "$TMP/hap.pid")
	s0=$(e2e_haproxy_sessions hap)
	kill -STOP "$hpid"
	for i in 1 2 3 4; do
		e2e_curl "$CG" "$POD" "http://$E2E_SRV4A/" >"$TMP/held.$i" 2>&1 &
	done
	e2e_wait_accept_queue "$POD" 15001 4
	# --grace 0: remove at once, as the old disable did (a graceful one
	# would wait for HAProxy; test_graceful.sh shows that)
	sm_cli disable --all --grace 0 >/dev/null
	kill -CONT "$hpid"
	for _ in $(seq 30); do
		sleep 0.1
		n=$(self_conns 15001)
		[ "$n" -gt "$max" ] && max=$n
	done
	wait || true
	for i in 1 2 3 4; do
		grep -q '^srv-a ' "$TMP/held.$i" && ok=$((ok + 1))
	done
	s1=$(e2e_haproxy_sessions hap)
	assert_eq "$ok" 0 "captured connects answered after their original destination went"
	assert_eq "$max" 0 "HAProxy with the guard: connections to itself"
	assert_eq "$((s1 - s0))" 0 "sessions the refused connections opened"
	sm_cli enable --cgroup "$CG"
}

e2e_subtest without_the_guard_haproxy_connects_to_itself without_the_guard_haproxy_connects_to_itself
e2e_subtest with_the_guard_no_self_connection with_the_guard_no_self_connection
e2e_subtest disable_before_the_proxy_asked_no_self_connection disable_before_the_proxy_asked_no_self_connection
e2e_finish
