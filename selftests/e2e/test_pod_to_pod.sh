#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Two pods on one node, both enrolled (netns scopes, one attach cgroup), each
# with an istio-like HAProxy sidecar. Pod A's app asks pod B's app:
#   A app -> (outbound capture) A proxy -> podB:port -> (inbound steering)
#   B proxy -> B app
# The proxy<->proxy leg is spliced across the two netns: A's upstream socket
# and B's accepted socket redirect to each other (sk_msg), so both scopes
# count spliced sockets and bytes. 4 MiB each way (under the splice budget,
# SM_DEFAULT_SPLICE_BUDGET = 8 MiB unread per socket) is spliced entirely and
# counted to the byte; 16 MiB each way arrives intact, spliced at first, the
# rest over TCP once a socket sent its budget with no sign of its reader.
# IPv6: A's outbound proxy is the reference sidecar on [::1]:15001 (HAProxy
# 2.6 asks SO_ORIGINAL_DST for IPv4 only), B's inbound is HAProxy's in6.
#
#   poda 10.77.0.1 fd77::1  <-veth->  podb 10.77.0.2 fd77::2
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=lib_pod.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_pod.sh"

e2e_init pod_to_pod
e2e_need_sockmesh
e2e_need_sidecar
CG=$(sm_cgroup pods)
PIN=$(sm_pindir pin)
PODA=$(e2e_pod_netns poda)
PODB=$(e2e_pod_netns podb)
A4=10.77.0.1
B4=10.77.0.2
A6=fd77::1
B6=fd77::2
sm_veth "$PODA" "$PODB" "$A4/24" "$B4/24" "$A6/64" "$B6/64"
sm_cli enable --netns "$PODA" --attach-cgroup "$CG"
sm_cli enable --netns "$PODB" --attach-cgroup "$CG"
e2e_haproxy_pod_start hapa "$CG" "$PODA"
e2e_haproxy_pod_start hapb "$CG" "$PODB"
e2e_sidecar_start cara "$CG" "$PODA" "[::1]:15001"

MIB=1048576
BUDGET=$((8 * MIB))
e2e_nginx_start appb "$PODB" "$B4:8080 podb-8080" "[$B6]:8080 podb6-8080"
e2e_pyserver hashb - "$PODB" hash-server "$B4" 9000
e2e_pyserver hashb6 - "$PODB" hash-server "$B6" 9001
# B's app inside the attach cgroup, as every pod process is on a Kubernetes
# node: sockops sees its listen() and its accepted sockets, so B's proxy's
# own leg to it is spliced too (the apps above run outside it: not spliced)
e2e_pyserver hashbcg "$CG" "$PODB" hash-server "$B4" 9002
e2e_pyserver hashbcg6 "$CG" "$PODB" hash-server "$B6" 9003
# send-server port: 9100 + MiB (IPv4), 9200 + MiB (IPv6)
for m in 4 16; do
	head -c $((m * MIB)) /dev/urandom >"$TMP/data.$m"
	e2e_pyserver "sendb.$m" - "$PODB" send-server "$B4" $((9100 + m)) "$TMP/data.$m"
	e2e_pyserver "sendb6.$m" - "$PODB" send-server "$B6" $((9200 + m)) "$TMP/data.$m"
done

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# snap: counters of both scopes and the sessions of every proxy frontend,
# one JSON object
snap() {
	jq -nc --argjson a "$(e2e_stats --netns "$PODA")" --argjson b "$(e2e_stats --netns "$PODB")" \
		--arg ao "$(e2e_haproxy_fe_sessions hapa out)" --arg ai "$(e2e_haproxy_fe_sessions hapa in)" \
		--arg bi "$(e2e_haproxy_fe_sessions hapb in)" --arg bi6 "$(e2e_haproxy_fe_sessions hapb in6)" \
		--arg bo "$(e2e_haproxy_fe_sessions hapb out)" \
		'{a: $a, b: $b, hap: {a_out: $ao, a_in: $ai, b_in: $bi, b_in6: $bi6, b_out: $bo}}'
}

# assert_sessions SNAP0 SNAP1 a_out=N ...: each HAProxy frontend moved by
# exactly N; the ones not named did not move
assert_sessions() {
	local s0=$1 s1=$2 f want kv
	shift 2
	for f in a_out a_in b_in b_in6 b_out; do
		want=0
		for kv in "$@"; do [ "${kv%%=*}" = "$f" ] && want=${kv#*=}; done
		assert_eq "$(($(jq -r ".hap.$f" <<<"$s1") - $(jq -r ".hap.$f" <<<"$s0")))" "$want" \
			"haproxy ${f%%_*} '${f#*_}' sessions"
	done
}

# the A side of one request: the app's connect captured, the proxy's
# upstream bypassed by uid; three spliced sockets (app, the proxy's accepted
# one, the proxy's upstream to pod B)
A_KEYS=(captured=1 origdst_published=1 origdst_answered=1 bypass_proxy_uid=1 splice_sockets=3
	splice_miss=0 'splice_msgs=+')
# the B side: steered inbound, HAProxy's connect to its app bypassed by uid;
# one spliced socket (the accepted one, peer of A's upstream). HAProxy asks
# SO_ORIGINAL_DST for IPv4 only.
B_KEYS=(inbound_captured=1 bypass_proxy_uid=1 splice_sockets=1 splice_miss=0 'splice_msgs=+')
B_KEYS4=("${B_KEYS[@]}" origdst_answered=1)

# assert_pods SNAP0 SNAP1 A_SPLICE_BYTES B_SPLICE_BYTES B_KEYS...: both
# scopes' counters; bytes '+': some; '++': some, and splice budget
# fallbacks (and the resumes after them, and a FIN held behind the spliced
# bytes) allowed (a transfer above the budget)
assert_pods() {
	local s0=$1 s1=$2 ab=$3 bb=$4 fb=splice_budget_fallbacks=0 rs=splice_budget_resumes=0
	local fh=splice_fin_held=0
	shift 4
	if [ "$ab" = ++ ]; then
		fb='splice_budget_fallbacks=*' rs='splice_budget_resumes=*' fh='splice_fin_held=*' ab=+
		[ "$bb" = ++ ] && bb=+
	fi
	assert_deltas "$(jq -c .a <<<"$s0")" "$(jq -c .a <<<"$s1")" "pod A" "${A_KEYS[@]}" \
		splice_bytes="$ab" "$fb" "$rs" "$fh"
	assert_deltas "$(jq -c .b <<<"$s0")" "$(jq -c .b <<<"$s1")" "pod B" "$@" splice_bytes="$bb" \
		"$fb" "$rs" "$fh"
}

# bytes_ge SNAP0 SNAP1 POD MIN: POD's (a or b) splice_bytes moved by >= MIN
bytes_ge() {
	assert_ge "$(($(jq -r ".$3.scopes[0].counters.splice_bytes" <<<"$2") -
		$(jq -r ".$3.scopes[0].counters.splice_bytes" <<<"$1")))" "$4" "pod ${3^^} spliced bytes"
}

http_through_both_sidecars() {
	local s0 s1 body
	s0=$(snap)
	body=$(e2e_curl "$CG" "$PODA" "http://$B4:8080/")
	s1=$(snap)
	# B's app sees B's proxy (istio's inbound source 127.0.0.6)
	assert_match "$body" "^podb-8080 $E2E_INBOUND_SRC4:[0-9]+\$" "answer from B's app via B's proxy"
	assert_sessions "$s0" "$s1" a_out=1 b_in=1
	assert_pods "$s0" "$s1" + + "${B_KEYS4[@]}"
}

# download MIB DST SESSIONS: B's app sends MIB MiB, A's app reads them.
# Spliced bytes: in A the proxy's accepted socket to the app; in B the
# accepted socket to A's proxy. Under the budget every byte is spliced;
# above it, at least the first MiB of each leg is.
download() {
	local m=$1 dst=$2 sess=$3 size=$(($1 * MIB)) port s0 s1 fe=b_in keys=("${B_KEYS4[@]}")
	port=$((9100 + m))
	if [[ $dst == *:* ]]; then fe=b_in6 keys=("${B_KEYS[@]}") port=$((9200 + m)); fi
	s0=$(snap)
	e2e_tcptool "$CG" "$PODA" client "$dst" "$port" --out "$TMP/got.$port"
	s1=$(snap)
	assert_eq "$(stat -c %s "$TMP/got.$port")" "$size" "bytes A's app received"
	assert_eq "$(sha_of "$TMP/got.$port")" "$(sha_of "$TMP/data.$m")" "sha256 of what A's app received"
	assert_sessions "$s0" "$s1" "$sess" "$fe=1"
	if [ "$size" -lt "$BUDGET" ]; then
		assert_pods "$s0" "$s1" "$size" "$size" "${keys[@]}"
	else
		assert_pods "$s0" "$s1" ++ ++ "${keys[@]}"
		bytes_ge "$s0" "$s1" a "$MIB"
		bytes_ge "$s0" "$s1" b "$MIB"
	fi
}

# upload MIB DST SESSIONS: A's app sends MIB MiB, B's app replies with their
# sha256. Spliced bytes: in A the app's socket to the proxy and the proxy's
# upstream to B (the data twice) plus the reply to the app; in B the reply
# to A's proxy.
upload() {
	local m=$1 dst=$2 sess=$3 size=$(($1 * MIB)) port=9000 s0 s1 reply back fe=b_in keys=("${B_KEYS4[@]}")
	if [[ $dst == *:* ]]; then fe=b_in6 keys=("${B_KEYS[@]}") port=9001; fi
	s0=$(snap)
	reply=$(e2e_tcptool "$CG" "$PODA" client "$dst" "$port" --send "$TMP/data.$m" --shut-wr)
	s1=$(snap)
	back=$((${#reply} + 1))
	assert_eq "$reply" "$(sha_of "$TMP/data.$m") $size" "sha256 and count B's app received"
	assert_sessions "$s0" "$s1" "$sess" "$fe=1"
	if [ "$size" -lt "$BUDGET" ]; then
		assert_pods "$s0" "$s1" $((2 * size + back)) "$back" "${keys[@]}"
	else
		assert_pods "$s0" "$s1" ++ "$back" "${keys[@]}"
		bytes_ge "$s0" "$s1" a $((2 * MIB))
	fi
}

# upload_local_leg DST: A's app sends 4 MiB to B's app in the attach cgroup:
# in B, the proxy<->proxy end carries the reply, and the proxy's leg to the
# app the data and the reply (both ends spliced, splice_local_legs)
upload_local_leg() {
	local dst=$1 size=$((4 * MIB)) port=9002 s0 s1 reply back fe=b_in
	local keys=(inbound_captured=1 bypass_proxy_uid=1 splice_sockets=3 splice_local_legs=1
		splice_miss=0 'splice_msgs=+')
	if [[ $dst == *:* ]]; then fe=b_in6 port=9003; else keys+=(origdst_answered=1); fi
	s0=$(snap)
	reply=$(e2e_tcptool "$CG" "$PODA" client "$dst" "$port" --send "$TMP/data.4" --shut-wr)
	s1=$(snap)
	back=$((${#reply} + 1))
	assert_eq "$reply" "$(sha_of "$TMP/data.4") $size" "sha256 and count B's app received"
	assert_sessions "$s0" "$s1" "$([[ $dst == *:* ]] && echo a_out=0 || echo a_out=1)" "$fe=1"
	assert_pods "$s0" "$s1" $((2 * size + back)) $((size + 2 * back)) "${keys[@]}"
}

# IPv6: A's sidecar logs the original destination it was given
ipv6_http_through_both_sidecars() {
	local s0 s1 body
	s0=$(snap)
	body=$(e2e_curl "$CG" "$PODA" -g "http://[$B6]:8080/")
	s1=$(snap)
	# HAProxy's in6 connects from the pod's own address
	assert_match "$body" "^podb6-8080 $B6:[0-9]+\$" "answer from B's app via B's proxy"
	assert_eq "$(grep -c "^accept client=\[::1\]:[0-9]* orig=\[$B6\]:8080\$" "$TMP/cara.log")" 1 \
		"A's sidecar log lines 'accept client=[::1]:* orig=[$B6]:8080'"
	assert_sessions "$s0" "$s1" b_in6=1
	assert_pods "$s0" "$s1" + + "${B_KEYS[@]}"
}

e2e_subtest http_through_both_sidecars http_through_both_sidecars
for m in 4 16; do
	e2e_subtest "download_${m}MiB_spliced_proxy_to_proxy" download "$m" "$B4" a_out=1
	e2e_subtest "upload_${m}MiB_spliced_proxy_to_proxy" upload "$m" "$B4" a_out=1
done
e2e_subtest upload_4MiB_every_leg_spliced upload_local_leg "$B4"
e2e_subtest ipv6_http_through_both_sidecars ipv6_http_through_both_sidecars
# A's IPv6 proxy is the reference sidecar: no HAProxy 'out' session
for m in 4 16; do
	e2e_subtest "ipv6_download_${m}MiB_spliced_proxy_to_proxy" download "$m" "$B6" a_out=0
	e2e_subtest "ipv6_upload_${m}MiB_spliced_proxy_to_proxy" upload "$m" "$B6" a_out=0
done
e2e_subtest ipv6_upload_4MiB_every_leg_spliced upload_local_leg "$B6"
e2e_finish
