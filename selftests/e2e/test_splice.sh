#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Splicing of the app<->proxy loopback leg (sockops + sk_msg): the counters
# move, transfers of every size arrive byte-identical in both directions, and
# a half-close (client SHUT_WR, then read the reply) still works.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init splice
e2e_need_sockmesh
e2e_topology

SIZES=(1 4096 65536 1048576 16777216)
HASH_PORT=9000
for i in "${!SIZES[@]}"; do
	head -c "${SIZES[$i]}" /dev/urandom >"$TMP/data.${SIZES[$i]}"
	e2e_pyserver "send.${SIZES[$i]}" - "$SRV" send-server "$E2E_SRV4A" $((9100 + i)) "$TMP/data.${SIZES[$i]}"
done
e2e_pyserver hash - "$SRV" hash-server "$E2E_SRV4A" "$HASH_PORT"
e2e_haproxy_start hap "$CG" "$POD"
sm_cli enable --cgroup "$CG"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# upload FILE: send FILE from the app, half-close, print the server's reply
upload() {
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" "$HASH_PORT" --send "$1" --shut-wr
}

# the one captured, proxied connection a transfer makes
assert_one_proxied_conn() {
	assert_deltas "$1" "$2" "$3" captured=1 origdst_published=1 origdst_answered=1 bypass_proxy_uid=1 \
		'splice_sockets=*' 'splice_msgs=*' 'splice_bytes=*' splice_miss=0 'splice_budget_fallbacks=*' \
		'splice_fin_held=*'
}

splice_counters_move_on_app_proxy_leg() {
	local f="$TMP/data.65536" s0 s1 reply sent_back
	s0=$(e2e_stats --cgroup "$CG")
	reply=$(upload "$f")
	s1=$(e2e_stats --cgroup "$CG")
	assert_eq "$reply" "$(sha_of "$f") 65536" "server's sha256 and count of the upload"
	sent_back=$((${#reply} + 1)) # the reply line and its newline
	assert_deltas "$s0" "$s1" "64 KiB upload" captured=1 origdst_published=1 origdst_answered=1 \
		bypass_proxy_uid=1 splice_sockets=+ splice_msgs=+ splice_miss=0 \
		splice_bytes=$((65536 + sent_back))
}

upload_arrives_intact() {
	local size=$1 f="$TMP/data.$1" s0 s1 h0 h1 reply
	s0=$(e2e_stats --cgroup "$CG")
	h0=$(e2e_haproxy_sessions hap)
	reply=$(upload "$f")
	h1=$(e2e_haproxy_sessions hap)
	s1=$(e2e_stats --cgroup "$CG")
	assert_eq "$reply" "$(sha_of "$f") $size" "sha256 and count the server received"
	assert_eq "$((h1 - h0))" 1 "haproxy 'out' sessions"
	assert_one_proxied_conn "$s0" "$s1" "upload of $size B"
}

download_arrives_intact() {
	local size=$1 i=$2 f="$TMP/data.$1" s0 s1 h0 h1
	s0=$(e2e_stats --cgroup "$CG")
	h0=$(e2e_haproxy_sessions hap)
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" $((9100 + i)) --out "$TMP/got.$size"
	h1=$(e2e_haproxy_sessions hap)
	s1=$(e2e_stats --cgroup "$CG")
	assert_eq "$(stat -c %s "$TMP/got.$size")" "$size" "bytes the app received"
	assert_eq "$(sha_of "$TMP/got.$size")" "$(sha_of "$f")" "sha256 of what the app received"
	assert_eq "$((h1 - h0))" 1 "haproxy 'out' sessions"
	assert_one_proxied_conn "$s0" "$s1" "download of $size B"
}

no_splice_policy_still_delivers() {
	local f="$TMP/data.1048576" s0 s1 reply
	sm_cli enable --cgroup "$CG" --no-splice
	s0=$(e2e_stats --cgroup "$CG")
	reply=$(upload "$f")
	s1=$(e2e_stats --cgroup "$CG")
	sm_cli enable --cgroup "$CG"
	assert_eq "$reply" "$(sha_of "$f") 1048576" "sha256 of a 1 MiB upload without splicing"
	assert_deltas "$s0" "$s1" "--no-splice upload" captured=1 origdst_published=1 origdst_answered=1 \
		bypass_proxy_uid=1 splice_sockets=0 splice_msgs=0 splice_bytes=0 splice_miss=0
}

e2e_subtest splice_counters_move_on_app_proxy_leg splice_counters_move_on_app_proxy_leg
for i in "${!SIZES[@]}"; do
	e2e_subtest "upload_${SIZES[$i]}B_arrives_intact" upload_arrives_intact "${SIZES[$i]}"
	e2e_subtest "download_${SIZES[$i]}B_arrives_intact" download_arrives_intact "${SIZES[$i]}" "$i"
done
e2e_subtest half_close_then_read_reply e2e_half_close_reply upload
e2e_subtest no_splice_policy_still_delivers no_splice_policy_still_delivers
e2e_finish
