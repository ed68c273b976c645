#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Everything the policy exempts from capture goes direct (the server sees the
# app's own address and port, HAProxy sees nothing) and moves exactly its own
# bypass counter: proxy uid, gid and mark, excluded and not-included ports and
# CIDRs, loopback destinations, and connects from outside any enrolled scope.
# Each subtest also makes one connect the policy still captures (the control).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init exclusions
e2e_need_sockmesh
e2e_topology
e2e_pyserver ida - "$SRV" echo-id-server "$E2E_SRV4A" 7000 id-a
e2e_pyserver idb - "$SRV" echo-id-server "$E2E_SRV4B" 7001 id-b
e2e_pyserver id6 - "$SRV" echo-id-server "$E2E_SRV6" 7003 id-v6
# a server on the pod's loopback, outside the test cgroup
e2e_pyserver idlo - "$POD" echo-id-server 127.0.0.1 7002 id-lo
e2e_haproxy_start hap "$CG" "$POD"
sm_cli enable --cgroup "$CG"

# conn BINDPORT ADDR PORT [tcptool options]: a connect from the app (root, in
# the test cgroup and the pod) from local port BINDPORT; prints the reply
conn() {
	local bp=$1 addr=$2 port=$3
	shift 3
	e2e_tcptool "$CG" "$POD" client "$addr" "$port" --bind-port "$bp" "$@"
}

# conn_as UID GID BINDPORT ADDR PORT: the same as another uid and gid
conn_as() {
	local uid=$1 gid=$2
	shift 2
	sm_run "$CG" "$POD" setpriv --reuid "$uid" --regid "$gid" --clear-groups \
		"$E2E_PY" "$E2E_TCPTOOL" client "$2" "$3" --bind-port "$1"
}

# begin [POLICY...]: (re)enable the cgroup with POLICY, snapshot the counters
begin() {
	sm_cli enable --cgroup "$CG" "$@"
	S0=$(e2e_stats --cgroup "$CG")
	H0=$(e2e_haproxy_sessions hap)
}

# control BINDPORT [tcptool options]: a connect to 10.77.0.2:7000 that the
# policy captures: it reaches the server through HAProxy
control() {
	local bp=$1 r
	shift
	r=$(conn "$bp" "$E2E_SRV4A" 7000 "$@")
	assert_match "$r" "^id-a $E2E_POD4:" "control connect reply"
	assert_proxied "$r" "control connect captured"
}

# check_direct REPLY ID: the bypassed connect reached server ID directly
check_direct() {
	assert_match "$1" "^$2 " "bypassed connect reply"
	assert_direct "$1" "bypassed connect went direct"
}

# finish KEY=N...: HAProxy saw the captured connects only (the control: 1,
# or sessions=N); the counters moved as for the control (capture, origdst,
# HAProxy's upstream bypassed by uid) plus KEY=N (which may override those)
finish() {
	local s1 h1 kv sessions=1
	local -A want=([captured]=1 [origdst_published]=1 [origdst_answered]=1 [bypass_proxy_uid]=1
		[origdst_miss]=0 [splice_sockets]='*' [splice_msgs]='*' [splice_bytes]='*')
	for kv in "$@"; do
		case $kv in
		sessions=*) sessions=${kv#*=} ;;
		*) want[${kv%%=*}]=${kv#*=} ;;
		esac
	done
	s1=$(e2e_stats --cgroup "$CG")
	h1=$(e2e_haproxy_sessions hap)
	assert_eq "$((h1 - H0))" "$sessions" "haproxy sessions (the captured connects only)"
	local args=()
	for kv in "${!want[@]}"; do args+=("$kv=${want[$kv]}"); done
	assert_deltas "$S0" "$s1" "counters" "${args[@]}"
}

proxy_uid_bypasses() {
	begin
	check_direct "$(conn_as "$E2E_PROXY_UID" "$E2E_PROXY_GID" 41000 "$E2E_SRV4A" 7000)" id-a
	control 41001
	finish bypass_proxy_uid=2
}

proxy_gid_bypasses() {
	begin --proxy-gid 1338
	check_direct "$(conn_as 2000 1338 41010 "$E2E_SRV4A" 7000)" id-a
	# same gid unset: uid 2000 alone is an app like any other
	local r
	r=$(conn_as 2000 2000 41011 "$E2E_SRV4A" 7000)
	assert_proxied "$r" "uid 2000 gid 2000 captured"
	control 41012
	finish sessions=2 bypass_proxy_gid=1 captured=2 origdst_published=2 origdst_answered=2 bypass_proxy_uid=2
}

proxy_mark_bypasses() {
	begin --proxy-mark 153
	check_direct "$(conn 41020 "$E2E_SRV4A" 7000 --mark 153)" id-a
	# another mark is no exemption
	control 41021 --mark 7
	finish bypass_proxy_mark=1
}

excluded_port_bypasses() {
	begin --exclude-outbound-ports 7001
	check_direct "$(conn 41030 "$E2E_SRV4B" 7001)" id-b
	control 41031
	finish bypass_excluded_port=1
}

excluded_cidr_bypasses() {
	begin --exclude-outbound-cidrs 10.77.0.3/32,fd00:1::/64
	check_direct "$(conn 41040 "$E2E_SRV4B" 7001)" id-b
	control 41041
	finish bypass_excluded_cidr=1
}

excluded_ipv6_cidr_bypasses() {
	begin --exclude-outbound-cidrs 192.0.2.0/24,fd77::/64
	check_direct "$(conn 41050 "$E2E_SRV6" 7003)" id-v6
	control 41051
	finish bypass_excluded_cidr=1
}

not_included_port_bypasses() {
	begin --include-outbound-ports 7000,9999
	check_direct "$(conn 41060 "$E2E_SRV4B" 7001)" id-b
	control 41061
	finish bypass_not_included_port=1
}

not_included_cidr_bypasses() {
	begin --include-outbound-cidrs 10.77.0.2/32,fd77::2/128
	check_direct "$(conn 41070 "$E2E_SRV4B" 7001)" id-b
	control 41071
	finish bypass_not_included_cidr=1
}

loopback_destination_bypasses() {
	begin
	check_direct "$(conn 41080 127.0.0.1 7002)" id-lo
	control 41081
	finish bypass_loopback=1
}

sibling_cgroup_not_captured() {
	local sib r
	begin
	sib=$(sm_cgroup sibling)
	r=$(sm_run "$sib" "$POD" "$E2E_PY" "$E2E_TCPTOOL" client "$E2E_SRV4A" 7000 --bind-port 41090)
	check_direct "$r" id-a
	control 41091
	finish global.bypass_not_enrolled=0
}

# Netns mode, a second instance: programs attached at CGN for pods N and X;
# pod X withdrawn while pod N stays enrolled, so the programs still run for
# pod X's sockets but must leave them alone.
withdrawn_netns_not_captured() {
	local cgn podn podx srvn s0 s1 h0 r
	PIN=$(sm_pindir pin2)
	cgn=$(sm_cgroup nsmode)
	podn=$(e2e_pod_netns podn)
	podx=$(e2e_pod_netns podx)
	srvn=$(sm_netns srvn)
	sm_veth "$podn" "$srvn" 10.78.0.1/24 10.78.0.2/24
	sm_veth "$podx" "$srvn" 10.79.0.1/24 10.79.0.2/24
	e2e_pyserver idn - "$srvn" echo-id-server 0.0.0.0 7000 id-n
	e2e_haproxy_start hapn "$cgn" "$podn"
	sm_cli enable --netns "$podn" --attach-cgroup "$cgn"
	sm_cli enable --netns "$podx" --attach-cgroup "$cgn"
	sm_cli disable --netns "$podx"
	assert_match "$(e2e_cgroup_progs "$cgn")" "^[1-9]" "programs still attached at $cgn"
	s0=$(e2e_stats --netns "$podn")
	h0=$(e2e_haproxy_sessions hapn)
	r=$(e2e_tcptool "$cgn" "$podx" client 10.79.0.2 7000 --bind-port 41100)
	assert_match "$r" '^id-n 10\.79\.0\.1:41100$' "withdrawn pod connect went direct"
	r=$(e2e_tcptool "$cgn" "$podn" client 10.78.0.2 7000 --bind-port 41101)
	assert_match "$r" '^id-n 10\.78\.0\.1:2[0-9]{4}$' "enrolled pod connect went through its proxy"
	s1=$(e2e_stats --netns "$podn")
	assert_eq "$(($(e2e_haproxy_sessions hapn) - h0))" 1 "pod N haproxy sessions"
	assert_deltas "$s0" "$s1" "pod N scope" captured=1 origdst_published=1 origdst_answered=1 \
		bypass_proxy_uid=1 origdst_miss=0 'splice_sockets=*' 'splice_msgs=*' 'splice_bytes=*' \
		global.bypass_not_enrolled=1
}

e2e_subtest proxy_uid_bypasses proxy_uid_bypasses
e2e_subtest proxy_gid_bypasses proxy_gid_bypasses
e2e_subtest proxy_mark_bypasses proxy_mark_bypasses
e2e_subtest excluded_port_bypasses excluded_port_bypasses
e2e_subtest excluded_cidr_bypasses excluded_cidr_bypasses
e2e_subtest excluded_ipv6_cidr_bypasses excluded_ipv6_cidr_bypasses
e2e_subtest not_included_port_bypasses not_included_port_bypasses
e2e_subtest not_included_cidr_bypasses not_included_cidr_bypasses
e2e_subtest loopback_destination_bypasses loopback_destination_bypasses
e2e_subtest sibling_cgroup_not_captured sibling_cgroup_not_captured
e2e_subtest withdrawn_netns_not_captured withdrawn_netns_not_captured
e2e_finish
