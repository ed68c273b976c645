#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The cgroup/getsockopt program answers SO_ORIGINAL_DST for the proxy and must
# leave every other getsockopt as the kernel answered it, whatever its size:
# iptables-save (legacy: IPT_SO_GET_ENTRIES with a buffer far above a page)
# prints the same rules with and without sockmesh, run from inside the test
# cgroup and a netns holding rules; TCP_INFO and friends answer the same.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init getsockopt_neutral
e2e_need_sockmesh
e2e_topology
e2e_nginx_start web "$SRV" "$E2E_SRV4A:80 srv-a"
# a server on the pod's loopback that keeps connections open until EOF
e2e_pyserver lo - "$POD" hash-server 127.0.0.1 7002
e2e_haproxy_start hap "$CG" "$POD"

# Rules in the pod netns only (ours): enough of them that the legacy tables
# blob is several pages. None matches the test's traffic.
{
	echo '*filter'
	echo ':E2E-CHAIN - [0:0]'
	for i in $(seq 300); do
		echo "-A E2E-CHAIN -s 198.51.100.$((i % 250))/32 -p tcp -m tcp --dport $((10000 + i)) -m comment --comment e2e-rule-$i -j DROP"
	done
	echo '-A OUTPUT -d 198.51.100.0/24 -j E2E-CHAIN'
	echo 'COMMIT'
	echo '*nat'
	echo '-A OUTPUT -d 192.0.2.0/24 -p tcp -j REDIRECT --to-ports 15001'
	echo 'COMMIT'
} | ip netns exec "$POD" iptables-legacy-restore
{
	echo '*filter'
	for i in $(seq 100); do echo "-A OUTPUT -d 2001:db8::$i/128 -p tcp -j DROP"; done
	echo 'COMMIT'
} | ip netns exec "$POD" ip6tables-legacy-restore
ip netns exec "$POD" iptables-nft -A OUTPUT -d 203.0.113.1/32 -p tcp -j DROP

# dump_rules: every ruleset of the pod, dumped from inside the test cgroup;
# comment lines (timestamps) and packet counters (traffic) left out
dump_rules() {
	sm_run "$CG" "$POD" bash -c 'iptables-legacy-save && ip6tables-legacy-save && iptables-nft-save' |
		grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]$/[counters]/'
}

# sockopts of a connection to the pod's loopback server (never captured)
# and of one to the server (captured once sockmesh is on)
dump_rules >"$TMP/rules.without"
e2e_tcptool "$CG" "$POD" sockopts 127.0.0.1 7002 >"$TMP/lo.without"
e2e_tcptool "$CG" "$POD" sockopts "$E2E_SRV4A" 80 >"$TMP/srv.without"
sm_cli enable --cgroup "$CG"

iptables_save_output_unchanged() {
	local s0 s1
	assert_eq "$(grep -c e2e-rule- "$TMP/rules.without")" 300 "legacy rules in the dump without sockmesh"
	assert_match "$(bpftool cgroup show "$CG" | grep -c getsockopt)" '^[1-9]' "getsockopt program attached at the cgroup"
	s0=$(e2e_stats --cgroup "$CG")
	dump_rules >"$TMP/rules.with"
	s1=$(e2e_stats --cgroup "$CG")
	assert_eq "$(diff "$TMP/rules.without" "$TMP/rules.with" | head -n 20)" "" "diff of the rule dumps"
	assert_eq "$(wc -l <"$TMP/rules.with")" "$(wc -l <"$TMP/rules.without")" "lines in the dump"
	assert_deltas "$s0" "$s1" "dumping rules"
}

tcp_info_full_length_on_captured_socket() {
	local s0 s1 j
	s0=$(e2e_stats --cgroup "$CG")
	j=$(e2e_tcptool "$CG" "$POD" sockopts "$E2E_SRV4A" 80)
	s1=$(e2e_stats --cgroup "$CG")
	assert_eq "$(jq .tcp_info_len <<<"$j")" 232 "TCP_INFO length asked 232"
	assert_eq "$(jq .tcp_info_state <<<"$j")" 1 "tcpi_state (ESTABLISHED)"
	assert_eq "$(jq .tcp_info_len_big <<<"$j")" "$(jq .tcp_info_len_big "$TMP/srv.without")" "TCP_INFO length asked 1024"
	assert_eq "$(jq -c 'del(.orig_dst)' <<<"$j")" "$(jq -c 'del(.orig_dst)' "$TMP/srv.without")" \
		"other socket options of the app's socket"
	assert_deltas "$s0" "$s1" "one captured connect" captured=1 origdst_published=1 origdst_answered=1 \
		bypass_proxy_uid=1 origdst_miss=0 'splice_sockets=*' 'splice_msgs=*' 'splice_bytes=*'
}

uncaptured_socket_options_unchanged() {
	assert_eq "$(e2e_tcptool "$CG" "$POD" sockopts 127.0.0.1 7002)" "$(cat "$TMP/lo.without")" \
		"getsockopt answers on a loopback connection (incl. SOL_IP/80 from conntrack)"
}

e2e_subtest iptables_save_output_unchanged iptables_save_output_unchanged
e2e_subtest tcp_info_full_length_on_captured_socket tcp_info_full_length_on_captured_socket
e2e_subtest uncaptured_socket_options_unchanged uncaptured_socket_options_unchanged
e2e_finish
