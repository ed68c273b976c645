#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# DNS capture (istio --redirect-dns / --capture-all-dns), netns scope: dig in
# the pod asks a resolver in another netns; sockmesh sends the query (UDP and
# TCP) to the pod's DNS proxy on 127.0.0.1:15053 / [::1]:15053 instead, and
# the answer looks like it came from the resolver asked. The real resolvers
# answer other addresses and log every query, and the resolver netns' own
# TCP/UDP receive counters show that nothing reached it.
#
#   pod 10.77.0.1 fd77::1   DNS proxy (dnsmasq) svc.test -> 10.9.9.9 on :15053,
#                           -> 10.9.9.8 on :15054
#   srv 10.77.0.2 fd77::2   resolver "r2": svc.test -> 10.6.6.2
#       10.77.0.3           resolver "r3": svc.test -> 10.6.6.3
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=lib_pod.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_pod.sh"

e2e_init dns
e2e_need_sockmesh
e2e_topology

# dnsmasq_start NAME CGROUP NETNS ADDRS PORT ANSWER: an authoritative-only
# dnsmasq (no upstream) answering svc.test with ANSWER, queries logged to
# $TMP/NAME.log
dnsmasq_start() {
	local name=$1 cg=$2 ns=$3 addrs=$4 port=$5 answer=$6
	sm_bg_log "$TMP/$name.log" "$cg" "$ns" dnsmasq --no-daemon --no-resolv --no-hosts --log-queries \
		--listen-address="$addrs" --port="$port" --bind-interfaces --address="/svc.test/$answer" \
		--user=root --pid-file="$TMP/$name.pid" >/dev/null
	sm_wait_port "$ns" "${addrs%%,*}" "$port" || sm_die "dnsmasq $name: $(cat "$TMP/$name.log")"
}

dnsmasq_start r2 - "$SRV" "$E2E_SRV4A,$E2E_SRV6" 53 10.6.6.2
dnsmasq_start r3 - "$SRV" "$E2E_SRV4B" 53 10.6.6.3
# the pod's DNS proxy runs in the pod's cgroup, like istio's agent
dnsmasq_start proxy "$CG" "$POD" 127.0.0.1,::1 15053 10.9.9.9
dnsmasq_start proxy2 "$CG" "$POD" 127.0.0.1 15054 10.9.9.8

# policy ARGS...: set the pod's policy (re-enroll: atomic, counters kept)
policy() {
	sm_cli enable --netns "$POD" --attach-cgroup "$CG" "$@" >/dev/null
}

# ask SERVER [DIG_OPTS...]: dig svc.test from the pod's app cgroup; the
# output goes to $TMP/dig.out
ask() {
	local server=$1
	shift
	sm_run "$CG" "$POD" dig +time=2 +tries=1 +noall +answer +stats "$@" "@$server" svc.test A \
		>"$TMP/dig.out" 2>&1 || true
	sm_log "    dig @$server $*: $(grep -v '^;; \(Query time\|WHEN\|MSG SIZE\)\|^$' "$TMP/dig.out" | tr '\n' '|')"
}
answer() { awk '$1 == "svc.test." && $4 == "A" { print $5 }' "$TMP/dig.out"; }
server_line() { grep '^;; SERVER:' "$TMP/dig.out" || true; }
queries() { grep -c 'query\[A\] svc\.test' "$TMP/$1.log" || true; }

# snap: the pod's counters, what reached the resolver netns, and how many
# queries each real resolver logged
snap() {
	jq -nc --argjson s "$(e2e_stats --netns "$POD")" --arg l4 "$(e2e_l4_in "$SRV")" \
		--arg r2 "$(queries r2)" --arg r3 "$(queries r3)" '{s: $s, l4: $l4, r2: $r2, r3: $r3}'
}
delta() { echo $(($(jq -r ".$3" <<<"$2") - $(jq -r ".$3" <<<"$1"))); }

# assert_answered_in_pod SNAP0 SNAP1 SERVER PROTO ANSWER: dig got ANSWER,
# says it asked SERVER over PROTO, and nothing reached the resolver netns
assert_answered_in_pod() {
	local s0=$1 s1=$2 server=$3 proto=$4 want=$5
	assert_eq "$(answer)" "$want" "answer (the pod's DNS proxy)"
	assert_eq "$(server_line)" ";; SERVER: $server#53($server) ($proto)" "dig's SERVER line"
	assert_eq "$(delta "$s0" "$s1" l4)" 0 "TCP segments + UDP datagrams that reached the resolver netns"
	assert_eq "$(delta "$s0" "$s1" r2)" 0 "queries resolver r2 logged"
	assert_eq "$(delta "$s0" "$s1" r3)" 0 "queries resolver r3 logged"
}

# assert_answered_by RESOLVER SNAP0 SNAP1 SERVER ANSWER: the real resolver
# answered, and sockmesh counted nothing
assert_answered_by() {
	local r=$1 s0=$2 s1=$3 server=$4 want=$5
	assert_eq "$(answer)" "$want" "answer (resolver $r)"
	assert_eq "$(server_line)" ";; SERVER: $server#53($server) (UDP)" "dig's SERVER line"
	assert_eq "$(delta "$s0" "$s1" "$r")" 1 "queries resolver $r logged"
	assert_deltas "$(jq -c .s <<<"$s0")" "$(jq -c .s <<<"$s1")" "query not captured"
}

udp_query_answered_in_pod() {
	local s0 s1
	policy --redirect-dns --dns-servers "$E2E_SRV4A"
	s0=$(snap)
	ask "$E2E_SRV4A"
	s1=$(snap)
	assert_answered_in_pod "$s0" "$s1" "$E2E_SRV4A" UDP 10.9.9.9
	assert_deltas "$(jq -c .s <<<"$s0")" "$(jq -c .s <<<"$s1")" "UDP query" dns_captured=1 dns_replies=1
}

# TCP: captured to the DNS port at connect(); the app<->proxy pair is a
# captured connection like any other (original destination published,
# spliced). dns_replies counts UDP replies only.
tcp_query_answered_in_pod() {
	local s0 s1
	policy --redirect-dns --dns-servers "$E2E_SRV4A"
	s0=$(snap)
	ask "$E2E_SRV4A" +tcp
	s1=$(snap)
	assert_answered_in_pod "$s0" "$s1" "$E2E_SRV4A" TCP 10.9.9.9
	assert_deltas "$(jq -c .s <<<"$s0")" "$(jq -c .s <<<"$s1")" "TCP query" dns_captured=1 \
		origdst_published=1 splice_sockets=2 'splice_msgs=+' 'splice_bytes=+' splice_miss=0
}

capture_off_real_resolver_answers() {
	local s0 s1
	policy
	s0=$(snap)
	ask "$E2E_SRV4A"
	s1=$(snap)
	assert_answered_by r2 "$s0" "$s1" "$E2E_SRV4A" 10.6.6.2
	assert_ge "$(delta "$s0" "$s1" l4)" 1 "packets that reached the resolver netns"
}

unlisted_resolver_not_captured() {
	local s0 s1
	policy --redirect-dns --dns-servers "$E2E_SRV4A"
	s0=$(snap)
	ask "$E2E_SRV4B"
	s1=$(snap)
	assert_answered_by r3 "$s0" "$s1" "$E2E_SRV4B" 10.6.6.3
}

capture_all_dns_takes_any_resolver() {
	local s0 s1
	policy --redirect-dns --capture-all-dns
	s0=$(snap)
	ask "$E2E_SRV4B"
	s1=$(snap)
	assert_answered_in_pod "$s0" "$s1" "$E2E_SRV4B" UDP 10.9.9.9
	assert_deltas "$(jq -c .s <<<"$s0")" "$(jq -c .s <<<"$s1")" "UDP query, all DNS" dns_captured=1 dns_replies=1
}

ipv6_resolver_answered_in_pod() {
	local s0 s1
	policy --redirect-dns --dns-servers "$E2E_SRV6"
	s0=$(snap)
	ask "$E2E_SRV6"
	s1=$(snap)
	assert_answered_in_pod "$s0" "$s1" "$E2E_SRV6" UDP 10.9.9.9
	assert_deltas "$(jq -c .s <<<"$s0")" "$(jq -c .s <<<"$s1")" "IPv6 UDP query" dns_captured=1 dns_replies=1
}

dns_port_option() {
	local s0 s1
	policy --redirect-dns --dns-servers "$E2E_SRV4A" --dns-port 15054
	assert_eq "$(e2e_status_field dns_port --netns "$POD")" 15054 "status dns_port"
	s0=$(snap)
	ask "$E2E_SRV4A"
	s1=$(snap)
	assert_answered_in_pod "$s0" "$s1" "$E2E_SRV4A" UDP 10.9.9.8
	assert_deltas "$(jq -c .s <<<"$s0")" "$(jq -c .s <<<"$s1")" "UDP query to :15054" dns_captured=1 dns_replies=1
}

# Without --dns-servers the resolvers are the pod's resolv.conf: for a named
# netns the one `ip netns exec` shows, /etc/netns/NAME/resolv.conf.
resolvers_from_pod_resolv_conf() {
	local s0 s1 d=/etc/netns/$POD
	[ -e "$d" ] && sm_die "$d exists already"
	[ -d /etc/netns ] || sm_on_cleanup "rmdir /etc/netns"
	sm_on_cleanup "rm -rf '$d'"
	mkdir -p "$d"
	printf 'nameserver %s\n' "$E2E_SRV4B" >"$d/resolv.conf"
	policy --redirect-dns
	s0=$(snap)
	ask "$E2E_SRV4B"
	s1=$(snap)
	assert_answered_in_pod "$s0" "$s1" "$E2E_SRV4B" UDP 10.9.9.9
	assert_deltas "$(jq -c .s <<<"$s0")" "$(jq -c .s <<<"$s1")" "query to the resolv.conf resolver" \
		dns_captured=1 dns_replies=1
	s0=$(snap)
	ask "$E2E_SRV4A"
	s1=$(snap)
	assert_answered_by r2 "$s0" "$s1" "$E2E_SRV4A" 10.6.6.2
}

e2e_subtest udp_query_answered_in_pod udp_query_answered_in_pod
e2e_subtest tcp_query_answered_in_pod tcp_query_answered_in_pod
e2e_subtest capture_off_real_resolver_answers capture_off_real_resolver_answers
e2e_subtest unlisted_resolver_not_captured unlisted_resolver_not_captured
e2e_subtest capture_all_dns_takes_any_resolver capture_all_dns_takes_any_resolver
e2e_subtest ipv6_resolver_answered_in_pod ipv6_resolver_answered_in_pod
e2e_subtest dns_port_option dns_port_option
e2e_subtest resolvers_from_pod_resolv_conf resolvers_from_pod_resolv_conf
e2e_finish
