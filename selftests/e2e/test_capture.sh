#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Outbound capture in cgroup mode: the app's connects reach their original
# servers through HAProxy (which finds them with SO_ORIGINAL_DST), and the
# proxy's own upstream connects are not captured again.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init capture
e2e_need_sockmesh
e2e_topology
e2e_nginx_start web "$SRV" "$E2E_SRV4A:80 srv-a" "$E2E_SRV4B:8080 srv-b"
e2e_haproxy_start hap "$CG" "$POD"
sm_cli enable --cgroup "$CG"

two_servers_reached_through_proxy() {
	local s0 s1 h0 h1 a b
	s0=$(e2e_stats --cgroup "$CG")
	h0=$(e2e_haproxy_sessions hap)
	a=$(e2e_curl "$CG" "$POD" --local-port 40100-40199 "http://$E2E_SRV4A/")
	b=$(e2e_curl "$CG" "$POD" --local-port 40200-40299 "http://$E2E_SRV4B:8080/")
	h1=$(e2e_haproxy_sessions hap)
	s1=$(e2e_stats --cgroup "$CG")
	assert_match "$a" "^srv-a $E2E_POD4:[0-9]+\$" "body from $E2E_SRV4A:80"
	assert_match "$b" "^srv-b $E2E_POD4:[0-9]+\$" "body from $E2E_SRV4B:8080"
	assert_proxied "$a" "server a talked to the proxy"
	assert_proxied "$b" "server b talked to the proxy"
	assert_eq "$(e2e_access_count web "$E2E_SRV4A:80")" 1 "requests nginx served on $E2E_SRV4A:80"
	assert_eq "$(e2e_access_count web "$E2E_SRV4B:8080")" 1 "requests nginx served on $E2E_SRV4B:8080"
	assert_eq "$((h1 - h0))" 2 "haproxy 'out' sessions"
	# one capture, one published and one answered original destination per
	# app connect; HAProxy's upstream connects are bypassed by its uid
	assert_deltas "$s0" "$s1" "2 app connects" captured=2 origdst_published=2 origdst_answered=2 \
		bypass_proxy_uid=2 origdst_miss=0 'splice_sockets=*' 'splice_msgs=*' 'splice_bytes=*'
}

concurrent_connects_keep_their_destination() {
	local n=24 i s0 s1 h0 h1 want
	s0=$(e2e_stats --cgroup "$CG")
	h0=$(e2e_haproxy_sessions hap)
	for i in $(seq "$n"); do
		if [ $((i % 2)) = 0 ]; then
			e2e_curl "$CG" "$POD" "http://$E2E_SRV4A/" >"$TMP/par.$i" 2>&1 &
		else
			e2e_curl "$CG" "$POD" "http://$E2E_SRV4B:8080/" >"$TMP/par.$i" 2>&1 &
		fi
	done
	wait
	h1=$(e2e_haproxy_sessions hap)
	s1=$(e2e_stats --cgroup "$CG")
	for i in $(seq "$n"); do
		want="srv-b"
		[ $((i % 2)) = 0 ] && want="srv-a"
		assert_match "$(cat "$TMP/par.$i")" "^$want $E2E_POD4:[0-9]+\$" "parallel request $i"
	done
	assert_eq "$((h1 - h0))" "$n" "haproxy 'out' sessions"
	assert_deltas "$s0" "$s1" "$n parallel app connects" captured="$n" origdst_published="$n" \
		origdst_answered="$n" bypass_proxy_uid="$n" origdst_miss=0 \
		'splice_sockets=*' 'splice_msgs=*' 'splice_bytes=*'
}

# conn_state_entries: entries in the hash, LRU hash and socket maps pinned
# under $PIN (per-connection state, plus policy entries that do not change
# while the test runs)
conn_state_entries() {
	local f t total=0
	while IFS= read -r f; do
		t=$(bpftool -j map show pinned "$f" 2>/dev/null | jq -r .type) || continue
		case $t in
		hash | lru_hash | sockhash | sockmap)
			total=$((total + $(bpftool -j map dump pinned "$f" | jq length)))
			;;
		esac
	done < <(find "$PIN" -type f)
	echo "$total"
}

# Connections held open have state in the maps; once they are closed it is
# gone (deleted on close, not left for LRU eviction)
map_entries_leave_with_their_connections() {
	local n=10 e0 e1 e2 h0 pid _
	e0=$(conn_state_entries)
	h0=$(e2e_haproxy_sessions hap)
	pid=$(sm_bg_log "$TMP/hold.log" "$CG" "$POD" "$E2E_PY" "$E2E_TCPTOOL" hold "$E2E_SRV4A" 80 --count "$n")
	for _ in $(seq 100); do
		grep -q "^ready $n" "$TMP/hold.log" && [ "$(e2e_haproxy_sessions hap)" = $((h0 + n)) ] && break
		sleep 0.1
	done
	assert_eq "$(grep -c "^ready $n" "$TMP/hold.log")" 1 "$n connections open"
	assert_eq "$(($(e2e_haproxy_sessions hap) - h0))" "$n" "haproxy sessions"
	e1=$(conn_state_entries)
	assert_ge "$e1" $((e0 + n)) "map entries while $n connections are open (before: $e0)"
	kill "$pid"
	timeout 10 tail --pid="$pid" -f /dev/null
	for _ in $(seq 50); do
		e2=$(conn_state_entries)
		[ "$e2" = "$e0" ] && break
		sleep 0.1
	done
	assert_eq "$e2" "$e0" "map entries after the connections closed"
}

e2e_subtest two_servers_reached_through_proxy two_servers_reached_through_proxy
e2e_subtest concurrent_connects_keep_their_destination concurrent_connects_keep_their_destination
e2e_subtest map_entries_leave_with_their_connections map_entries_leave_with_their_connections
e2e_finish
