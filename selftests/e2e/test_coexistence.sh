#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Coexistence with other BPF users of the same cgroup: a foreign
# cgroup/connect4 program (counts its calls in an array map), attached with
# BPF_F_ALLOW_MULTI before and after sockmesh, keeps running while sockmesh
# captures, and stays attached when sockmesh is disabled.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init coexistence
e2e_need_sockmesh
e2e_topology
e2e_nginx_start web "$SRV" "$E2E_SRV4A:80 srv-a"
e2e_haproxy_start hap "$CG" "$POD"

cat >"$TMP/foreign.bpf.c" <<'EOF'
// SPDX-License-Identifier: GPL-2.0
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

SEC("cgroup/connect4")
int foreign_connect4(struct bpf_sock_addr *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&calls, &k);

	if (v)
		__sync_fetch_and_add(v, 1);
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
EOF
clang -target bpf -O2 -g -Wall -Werror -I"/usr/include/$(gcc -print-multiarch)" \
	-c "$TMP/foreign.bpf.c" -o "$TMP/foreign.bpf.o"

# foreign_attach NAME: load the counter as pins under its own bpffs dir and
# attach it at $CG (multi); prints the dir
foreign_attach() {
	local d
	d=$(sm_pindir "foreign-$1")
	mkdir "$d"
	bpftool prog load "$TMP/foreign.bpf.o" "$d/prog" pinmaps "$d/maps" >&2
	bpftool cgroup attach "$CG" connect4 pinned "$d/prog" multi >&2
	sm_on_cleanup "bpftool cgroup detach $CG connect4 pinned $d/prog"
	echo "$d"
}

# foreign_calls DIR: the counter of the foreign program pinned under DIR
foreign_calls() {
	bpftool -j map lookup pinned "$1/maps/calls" key 0 0 0 0 | jq -r .formatted.value
}

# foreign_attached: how many foreign programs are attached at $CG
foreign_attached() {
	bpftool -j cgroup show "$CG" | jq -s '[.[0] // [] | .[] | select(.name == "foreign_connect4")] | length'
}

FA=$(foreign_attach first)
sm_cli enable --cgroup "$CG"
FB=$(foreign_attach second)

# one app connect plus HAProxy's upstream connect: 2 connect4 calls
foreign_programs_run_while_captured() {
	local a0 b0 h0 s0 s1 body
	a0=$(foreign_calls "$FA")
	b0=$(foreign_calls "$FB")
	h0=$(e2e_haproxy_sessions hap)
	s0=$(e2e_stats --cgroup "$CG")
	body=$(e2e_curl "$CG" "$POD" --local-port 40100-40199 "http://$E2E_SRV4A/")
	s1=$(e2e_stats --cgroup "$CG")
	assert_match "$body" "^srv-a $E2E_POD4:2[0-9]{4}\$" "body via HAProxy"
	assert_eq "$(($(e2e_haproxy_sessions hap) - h0))" 1 "haproxy sessions"
	assert_deltas "$s0" "$s1" "one captured connect" captured=1 origdst_published=1 origdst_answered=1 \
		bypass_proxy_uid=1 origdst_miss=0 'splice_sockets=*' 'splice_msgs=*' 'splice_bytes=*'
	assert_eq "$(($(foreign_calls "$FA") - a0))" 2 "calls of the foreign program attached before enable"
	assert_eq "$(($(foreign_calls "$FB") - b0))" 2 "calls of the foreign program attached after enable"
}

disable_leaves_foreign_programs() {
	local a0 body
	sm_cli disable --all
	assert_eq "$(foreign_attached)" 2 "foreign programs attached after disable --all"
	assert_eq "$(e2e_cgroup_progs "$CG")" 2 "programs attached at the cgroup"
	a0=$(foreign_calls "$FA")
	body=$(e2e_curl "$CG" "$POD" --local-port 40200-40299 "http://$E2E_SRV4A/")
	assert_match "$body" "^srv-a $E2E_POD4:402[0-9][0-9]\$" "body, direct"
	assert_eq "$(($(foreign_calls "$FA") - a0))" 1 "calls of the foreign program (the app's connect)"
}

e2e_subtest foreign_programs_run_while_captured foreign_programs_run_while_captured
e2e_subtest disable_leaves_foreign_programs disable_leaves_foreign_programs
e2e_finish
