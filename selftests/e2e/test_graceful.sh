#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Graceful removal (issue 12 item 2). `disable` used to detach the
# getsockopt program at once, so connections captured but not yet asked for
# their original destination lost it, and HAProxy (`server orig 0.0.0.0:0`)
# connected to itself until maxconn: 4 002 self-connections after one
# `disable --all` under wrk -H "Connection: close". Now disable first stops
# capturing, keeps answering until HAProxy took every captured connection,
# then removes the rest. Shown with HAProxy WITHOUT the README's loop guard
# (the guard would hide a lost answer): enable/disable cycles under a
# Connection: close load fail no request and make no self-connection.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init graceful
e2e_need_sockmesh
e2e_topology
e2e_nginx_start web "$SRV" "$E2E_SRV4A:80 srv-a"
E2E_HAP_MAXCONN=2000 e2e_haproxy_bare hap "$CG" "$POD" 15001
sm_cli enable --cgroup "$CG"

self_conns() { e2e_haproxy_self_conns "$POD" 15001; }

# cycles_under_load HOW N: N rounds of `disable HOW` + `enable` while wrk
# opens a new captured connection per request. wrk runs until the N rounds
# are done (then SIGINT: it stops and reports), so a slow machine does fewer
# requests, never fewer rounds.
cycles_under_load() {
	local how=$1 n=$2 i out reqs max=0 c s0 s1 warned=0 wrk t0 t1
	s0=$(e2e_haproxy_sessions hap)
	: >"$TMP/wrk.$how.out"
	wrk=$(sm_bg_log "$TMP/wrk.$how.out" "$CG" "$POD" wrk -t 2 -c 16 -d 300s --timeout 5s \
		-H 'Connection: close' "http://$E2E_SRV4A/")
	sleep 1
	t0=$(date +%s%N)
	for ((i = 0; i < n; i++)); do
		kill -0 "$wrk" 2>/dev/null || break
		if [ "$how" = all ]; then
			sm_cli disable --all >/dev/null 2>>"$TMP/disable.err" || sm_die "disable --all failed"
		else
			sm_cli disable --cgroup "$CG" >/dev/null 2>>"$TMP/disable.err" ||
				sm_die "disable --cgroup failed"
		fi
		c=$(self_conns)
		[ "$c" -gt "$max" ] && max=$c
		sleep 0.2
		sm_cli enable --cgroup "$CG" >/dev/null
		sleep 0.2
		c=$(self_conns)
		[ "$c" -gt "$max" ] && max=$c
	done
	t1=$(date +%s%N)
	sleep 1
	assert_eq "$(kill -0 "$wrk" 2>/dev/null && echo running)" running "wrk running through the cycles"
	kill -INT "$wrk"
	timeout 20 tail --pid="$wrk" -f /dev/null || sm_die "wrk did not stop at SIGINT"
	sm_stop "$wrk"
	s1=$(e2e_haproxy_sessions hap)
	out=$(cat "$TMP/wrk.$how.out")
	sed 's/^/    wrk| /' "$TMP/wrk.$how.out" >&2
	reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
	warned=$(grep -c 'removing anyway' "$TMP/disable.err" || true)
	sm_log "    $i cycles of disable ($how) + enable in $(((t1 - t0) / 1000000)) ms, $reqs requests, $((s1 - s0)) HAProxy sessions"
	assert_eq "$i" "$n" "cycles done under the load"
	assert_ge "$reqs" 1000 "requests completed"
	assert_eq "$(grep -c 'Non-2xx or 3xx responses' <<<"$out" || true)" 0 "Non-2xx or 3xx responses"
	assert_eq "$(grep -c 'Socket errors' <<<"$out" || true)" 0 "socket errors"
	assert_eq "$max" 0 "HAProxy's connections to itself (most seen)"
	assert_eq "$warned" 0 "disables that hit the grace period"
	# both paths carried requests: through HAProxy and direct while disabled
	assert_ge "$((s1 - s0))" 100 "requests through HAProxy"
	assert_ge "$((reqs - (s1 - s0)))" 1 "requests straight to the server while disabled"
}

# HAProxy stopped (SIGSTOP) while 4 captured connects wait in its backlog;
# `disable --all` starts and waits; HAProxy resumes during the grace period,
# asks for each original destination, gets it: the 4 requests succeed and
# disable returns without hitting its grace period.
held_connections_answered() {
	local i hpid ok=0 dpid t0 t1
	hpid=$(cat "$TMP/hap.pid")
	kill -STOP "$hpid"
	for i in 1 2 3 4; do
		e2e_curl "$CG" "$POD" "http://$E2E_SRV4A/" >"$TMP/held.$i" 2>&1 &
	done
	e2e_wait_accept_queue "$POD" 15001 4
	t0=$(date +%s%N)
	sm_cli disable --all --grace 20 >"$TMP/held.disable" 2>&1 &
	dpid=$!
	sleep 1
	kill -0 "$dpid" 2>/dev/null || sm_log "    disable returned before HAProxy resumed: $(cat "$TMP/held.disable")"
	assert_eq "$(kill -0 "$dpid" 2>/dev/null && echo waiting)" waiting "disable waits for HAProxy"
	kill -CONT "$hpid"
	wait "$dpid"
	t1=$(date +%s%N)
	wait
	for i in 1 2 3 4; do
		grep -q '^srv-a ' "$TMP/held.$i" && ok=$((ok + 1))
	done
	sm_log "    disable --all returned $(((t1 - t0) / 1000000)) ms after it started"
	assert_eq "$ok" 4 "held requests answered by their server"
	assert_eq "$(grep -c 'removing anyway' "$TMP/held.disable" || true)" 0 "grace period hit"
	assert_eq "$(self_conns)" 0 "HAProxy's connections to itself"
	assert_eq "$(sm_cli -j status | jq '.scopes // [] | length')" 0 "nothing enrolled after disable"
	sm_cli enable --cgroup "$CG" >/dev/null
}

disable_all_cycles_lose_nothing() { cycles_under_load all 20; }
disable_scope_cycles_lose_nothing() { cycles_under_load scope 20; }

e2e_subtest disable_all_cycles_lose_nothing disable_all_cycles_lose_nothing
e2e_subtest disable_scope_cycles_lose_nothing disable_scope_cycles_lose_nothing
e2e_subtest held_connections_answered held_connections_answered
e2e_finish
