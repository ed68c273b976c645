#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Lifecycle: the data path lives in pinned links and maps, not in the CLI
# process; enabling again replaces the policy and keeps the counters;
# `disable --all` (and the last `disable --cgroup`) leave no program on the
# cgroup, no link, no program or map of ours in the kernel, no pin dir, and
# traffic flows directly again.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init lifecycle
e2e_need_sockmesh
e2e_topology
e2e_nginx_start web "$SRV" "$E2E_SRV4A:80 srv-a"
e2e_haproxy_start hap "$CG" "$POD"
CGID=$(stat -c %i "$CG")

# our_objects: "link:ID" / "prog:ID" / "map:ID" lines for every BPF object
# pinned under $PIN or attached at $CG (links, programs, their maps): ours,
# as no one else uses this cgroup or pin dir
our_objects() {
	local progs f
	progs=$(bpftool -j cgroup show "$CG" | jq -sc '[.[0] // [] | .[].id]')
	{
		bpftool -j link show | jq -r --argjson p "$progs" --argjson cg "$CGID" \
			'.[] | select((.cgroup_id // -1) == $cg or (.prog_id as $i | $p | index($i))) | "link:\(.id)"'
		bpftool -j prog show | jq -r --argjson p "$progs" '.[] | select(.id as $i | $p | index($i)) |
			"prog:\(.id)", (.map_ids // [] | .[] | "map:\(.)")'
		while IFS= read -r f; do
			bpftool -j link show pinned "$f" 2>/dev/null | jq -r '"link:\(.id)"' && continue
			bpftool -j prog show pinned "$f" 2>/dev/null | jq -r '"prog:\(.id)", (.map_ids // [] | .[] | "map:\(.)")' && continue
			bpftool -j map show pinned "$f" 2>/dev/null | jq -r '"map:\(.id)"' && continue
		done < <(find "$PIN" -type f 2>/dev/null)
	} | sort -u
}

# still_there OBJECTS: the ones of OBJECTS that still exist
still_there() {
	local o
	for o in $1; do
		case $o in
		link:*) bpftool link show id "${o#link:}" >/dev/null 2>&1 && echo "$o" ;;
		prog:*) bpftool prog show id "${o#prog:}" >/dev/null 2>&1 && echo "$o" ;;
		map:*) bpftool map show id "${o#map:}" >/dev/null 2>&1 && echo "$o" ;;
		esac
	done
	return 0
}

# check_all_gone OBJECTS: nothing of sockmesh is left (links are released by
# a kernel worker, programs and maps freed after an RCU grace period: wait up
# to 5 s each)
check_all_gone() {
	local left n _
	# the last reference of an unpinned link may be dropped by a kernel
	# worker: on a loaded machine the detach comes a moment later
	for _ in $(seq 50); do
		n=$(e2e_cgroup_progs "$CG")
		[ "$n" = 0 ] && break
		sleep 0.1
	done
	assert_eq "$n" 0 "programs attached at the cgroup"
	assert_eq "$([ -e "$PIN" ] && echo exists || echo gone)" gone "pin dir $PIN"
	for _ in $(seq 50); do
		left=$(still_there "$1")
		[ -z "$left" ] && break
		sleep 0.1
	done
	assert_eq "$(echo "$left" | xargs)" "" "links, programs and maps of ours still in the kernel"
}

# curl_once PORTS: one request from the app, bound to local PORTS
curl_once() { e2e_curl "$CG" "$POD" --local-port "$1" "http://$E2E_SRV4A/"; }

sm_cli enable --cgroup "$CG"
OURS=$(our_objects)

capture_survives_cli_exit() {
	local h0 body
	assert_eq "$(pgrep -fc -- "$PIN" || true)" 0 "sockmesh processes running for our pin dir"
	assert_eq "$(bpftool -j cgroup show "$CG" | jq -r '.[].attach_type' | sort -u | xargs)" \
		"cgroup_getsockopt cgroup_inet4_connect cgroup_inet4_getpeername cgroup_inet6_connect cgroup_inet6_getpeername cgroup_inet_ingress cgroup_sock_ops cgroup_udp4_recvmsg cgroup_udp4_sendmsg cgroup_udp6_recvmsg cgroup_udp6_sendmsg" "hooks attached at the cgroup"
	assert_match "$(grep -c '^link:' <<<"$OURS")" '^[1-9]' "links of ours (bpf_link attachment)"
	assert_match "$(grep -c '^prog:' <<<"$OURS")" '^[1-9]' "programs of ours"
	assert_match "$(grep -c '^map:' <<<"$OURS")" '^[1-9]' "maps of ours"
	h0=$(e2e_haproxy_sessions hap)
	body=$(curl_once 40100-40199)
	assert_proxied "$body" "request captured after the CLI exited"
	assert_eq "$(($(e2e_haproxy_sessions hap) - h0))" 1 "haproxy sessions"
}

stats_list_the_enrolled_cgroup() {
	local s
	s=$(e2e_stats --cgroup "$CG")
	assert_eq "$(jq -r '.scopes | length' <<<"$s")" 1 "scopes listed"
	assert_eq "$(jq -r '.scopes[0].kind' <<<"$s")" cgroup "scope kind"
	assert_eq "$(jq -r '.scopes[0].name' <<<"$s")" "$CG" "scope name"
	assert_eq "$(jq -r '.scopes[0].id' <<<"$s")" "$CGID" "scope id (cgroup id)"
}

re_enable_replaces_policy_keeps_counters() {
	local s0 s1 s2 s3 body
	s0=$(e2e_stats --cgroup "$CG")
	sm_cli enable --cgroup "$CG" --exclude-outbound-ports 80
	s1=$(e2e_stats --cgroup "$CG")
	assert_deltas "$s0" "$s1" "counters across a policy replace"
	assert_eq "$(our_objects | sort)" "$(sort <<<"$OURS")" "same BPF objects after a policy replace"
	body=$(curl_once 40200-40299)
	assert_direct "$body" "port 80 excluded by the new policy"
	s2=$(e2e_stats --cgroup "$CG")
	assert_deltas "$s1" "$s2" "excluded request" bypass_excluded_port=1
	sm_cli enable --cgroup "$CG"
	body=$(curl_once 40300-40399)
	assert_proxied "$body" "captured again under the default policy"
	s3=$(e2e_stats --cgroup "$CG")
	assert_deltas "$s2" "$s3" "captured request" captured=1 origdst_published=1 origdst_answered=1 \
		bypass_proxy_uid=1 origdst_miss=0 'splice_sockets=*' 'splice_msgs=*' 'splice_bytes=*'
}

disable_all_removes_everything() {
	local h0 body
	sm_cli disable --all
	check_all_gone "$OURS"
	h0=$(e2e_haproxy_sessions hap)
	body=$(curl_once 40400-40499)
	assert_direct "$body" "request after disable --all"
	assert_eq "$(($(e2e_haproxy_sessions hap) - h0))" 0 "haproxy sessions"
}

last_disable_cgroup_removes_everything() {
	local ours body
	sm_cli enable --cgroup "$CG"
	ours=$(our_objects)
	body=$(curl_once 40500-40599)
	assert_proxied "$body" "captured after enabling again"
	sm_cli disable --cgroup "$CG"
	check_all_gone "$ours"
	body=$(curl_once 40600-40699)
	assert_direct "$body" "request after the last disable --cgroup"
}

e2e_subtest capture_survives_cli_exit capture_survives_cli_exit
e2e_subtest stats_list_the_enrolled_cgroup stats_list_the_enrolled_cgroup
e2e_subtest re_enable_replaces_policy_keeps_counters re_enable_replaces_policy_keeps_counters
e2e_subtest disable_all_removes_everything disable_all_removes_everything
e2e_subtest last_disable_cgroup_removes_everything last_disable_cgroup_removes_everything
e2e_finish
