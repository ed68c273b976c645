#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Captured traffic only ever reaches the proxy (issue 12 point 3). The
# README's HAProxy binds 127.0.0.1:15001 only; another user of the pod
# (nobody, uid 65534) binds [::1]:15001. Before, an app's IPv6 connections
# were captured into the stranger's listener, original destination and
# all. Now: refused (fail closed, the default), or sent uncaptured to
# their server (--fail-open); the stranger receives nothing either way and
# IPv4 keeps going through HAProxy.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init proxy_owner
e2e_need_sockmesh
e2e_topology
e2e_nginx_start web "$SRV" "$E2E_SRV4A:80 srv-a" "[$E2E_SRV6]:80 srv6"
e2e_haproxy_start hap "$CG" "$POD"
sm_cli enable --cgroup "$CG"

# the stranger: a listener of uid 65534 on [::1]:15001 in the pod, logging
# every connection it accepts
sm_bg_log "$TMP/stranger.log" "$CG" "$POD" setpriv --reuid 65534 --regid 65534 --clear-groups \
	"$E2E_PY" -c '
import socket
s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.bind(("::1", 15001))
s.listen(64)
while True:
    c, a = s.accept()
    print("accepted", a, flush=True)
' >/dev/null
sm_wait_port "$POD" "[::1]" 15001 || sm_die "stranger: $(cat "$TMP/stranger.log")"

stranger_got() { grep -c '^accepted' "$TMP/stranger.log" || true; }

# curl6 / curl4: the app's request to srv6 / srv-a from a recognisable port
curl6() { e2e_curl "$CG" "$POD" --local-port 40000-40999 "http://[$E2E_SRV6]/"; }
curl4() { e2e_curl "$CG" "$POD" --local-port 41000-41999 "http://$E2E_SRV4A/"; }

fail_closed_stranger_gets_nothing() {
	local s0 s1 body
	s0=$(e2e_stats --cgroup "$CG")
	if body=$(curl6 2>&1); then
		assert_eq "succeeded: $body" "refused" "an IPv6 app's request with a stranger on [::1]:15001"
	else
		assert_match "$body" "Connection refused|Failed to connect" "the IPv6 request is refused"
	fi
	s1=$(e2e_stats --cgroup "$CG")
	assert_eq "$(stranger_got)" 0 "connections the stranger accepted"
	assert_deltas "$s0" "$s1" "fail closed" refused_no_proxy=1 proxy_foreign=1
	body=$(curl4)
	assert_proxied "$body" "IPv4 still goes through HAProxy"
}

fail_open_goes_direct() {
	local s0 s1 body
	sm_cli enable --cgroup "$CG" --fail-open >/dev/null
	s0=$(e2e_stats --cgroup "$CG")
	body=$(curl6)
	s1=$(e2e_stats --cgroup "$CG")
	assert_match "$body" "^srv6 " "the IPv6 request reaches its server"
	assert_direct "$body" "uncaptured"
	assert_eq "$(stranger_got)" 0 "connections the stranger accepted"
	assert_deltas "$s0" "$s1" "fail open" bypass_no_proxy=1 proxy_foreign=1
	body=$(curl4)
	assert_proxied "$body" "IPv4 still goes through HAProxy"
	assert_eq "$(sm_cli -j status --cgroup "$CG" | jq -r '.scopes[0].fail_open')" true \
		"status shows fail_open"
}

e2e_subtest fail_closed_stranger_gets_nothing fail_closed_stranger_gets_nothing
e2e_subtest fail_open_goes_direct fail_open_goes_direct
e2e_finish
