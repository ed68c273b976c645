#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Inbound capture without NAT (netns scope): a client in another netns
# connects to podIP:port; sk_lookup hands the SYN to the pod sidecar's
# inbound listener (127.0.0.1:15006 / [::1]:15006), which finds the original
# destination (its own local address, or SO_ORIGINAL_DST) and forwards to the
# app. The sidecar's own connection to the app is not steered again.
# Excluded and not-included inbound ports go straight to the app.
#
#   pod  10.77.0.1 fd77::1  HAProxy (out 15001, in 15006, in6 [::1]:15006)
#                           nginx app on :8080 :8081 :9090
#   srv  10.77.0.2 fd77::2  the client
#   pod2 10.78.0.1 fd78::1  reference sidecar (then HAProxy) on 15006
#   srv2 10.78.0.2 fd78::2  the client
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=lib_pod.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_pod.sh"

e2e_init inbound
e2e_need_sockmesh
e2e_need_sidecar
e2e_topology
POD2=$(e2e_pod_netns pod2)
SRV2=$(sm_netns srv2)
e2e_pod_pair "$POD2" "$SRV2" 78
POD2_4=10.78.0.1
POD2_6=fd78::1

# the pods are enrolled before their sidecars start, as a CNI plugin does:
# the sidecar's listen() registers its inbound listener
sm_cli enable --netns "$POD" --attach-cgroup "$CG"
sm_cli enable --netns "$POD2" --attach-cgroup "$CG"
e2e_haproxy_pod_start hap "$CG" "$POD"
e2e_nginx_start app "$POD" "$E2E_POD4:8080 app-8080" "$E2E_POD4:8081 app-8081" \
	"$E2E_POD4:9090 app-9090" "[$E2E_POD6]:8080 app6-8080"
e2e_nginx_start app2 "$POD2" "$POD2_4:8080 app2-8080" "[$POD2_6]:8080 app2v6-8080"
e2e_sidecar_start car "$CG" "$POD2" 127.0.0.1:15006 "[::1]:15006"

# client NETNS URL: a request from a client outside the pods (no cgroup of
# ours: it is not enrolled anywhere)
client() {
	e2e_curl - "$1" -g "$2"
}

# policy ARGS...: set the pod's inbound policy (re-enroll: atomic, counters kept)
policy() {
	sm_cli enable --netns "$POD" --attach-cgroup "$CG" "$@" >/dev/null
}

# one steered connection through HAProxy 'in': sk_lookup steered it, HAProxy
# asked SO_ORIGINAL_DST, and its upstream connect was bypassed by its uid
assert_steered_v4() {
	assert_deltas "$1" "$2" "$3" inbound_captured="$4" origdst_answered="$4" bypass_proxy_uid="$4"
}

inbound_listeners_registered_at_listen() {
	assert_ge "$(e2e_counter "$(e2e_stats --netns "$POD")" inbound_listeners)" 2 \
		"pod inbound_listeners (HAProxy's 127.0.0.1:15006 and [::1]:15006)"
	assert_ge "$(e2e_counter "$(e2e_stats --netns "$POD2")" inbound_listeners)" 2 \
		"pod2 inbound_listeners (sidecar's 127.0.0.1:15006 and [::1]:15006)"
	assert_eq "$(e2e_status_field inbound_port --netns "$POD")" 15006 "status inbound_port"
}

steered_to_haproxy_without_nat() {
	local n=3 i s0 s1 h0 h1 o0 o1 a0 body
	policy
	a0=$(e2e_access_count app "$E2E_POD4:8080")
	s0=$(e2e_stats --netns "$POD")
	h0=$(e2e_haproxy_fe_sessions hap in)
	o0=$(e2e_haproxy_fe_sessions hap out)
	for i in $(seq "$n"); do
		body=$(client "$SRV" "http://$E2E_POD4:8080/")
		# the app's peer is HAProxy's upstream socket (source 127.0.0.6)
		assert_match "$body" "^app-8080 $E2E_INBOUND_SRC4:[0-9]+\$" "answer $i from the app, via the proxy"
	done
	h1=$(e2e_haproxy_fe_sessions hap in)
	o1=$(e2e_haproxy_fe_sessions hap out)
	s1=$(e2e_stats --netns "$POD")
	assert_eq "$((h1 - h0))" "$n" "haproxy 'in' sessions"
	assert_eq "$((o1 - o0))" 0 "haproxy 'out' sessions"
	assert_eq "$(($(e2e_access_count app "$E2E_POD4:8080") - a0))" "$n" "requests the app served on :8080"
	assert_steered_v4 "$s0" "$s1" "$n inbound connections" "$n"
	assert_ge "$(e2e_counter "$s1" inbound_listeners)" 1 "inbound_listeners"
}

# Parallel requests: each steered once; the proxy's own connection to the
# app is never steered back to the proxy (that loop would multiply the
# proxy's sessions and never reach the app).
proxy_connection_to_app_not_steered_again() {
	local n=12 i s0 s1 h0 h1 a0
	policy
	s0=$(e2e_stats --netns "$POD")
	h0=$(e2e_haproxy_fe_sessions hap in)
	a0=$(e2e_access_count app "$E2E_POD4:8080")
	for i in $(seq "$n"); do
		client "$SRV" "http://$E2E_POD4:8080/" >"$TMP/par.$i" 2>&1 &
	done
	wait
	h1=$(e2e_haproxy_fe_sessions hap in)
	s1=$(e2e_stats --netns "$POD")
	for i in $(seq "$n"); do
		assert_match "$(cat "$TMP/par.$i")" "^app-8080 $E2E_INBOUND_SRC4:[0-9]+\$" "parallel request $i"
	done
	assert_eq "$((h1 - h0))" "$n" "haproxy 'in' sessions (== requests: no loop)"
	assert_eq "$(($(e2e_access_count app "$E2E_POD4:8080") - a0))" "$n" "requests the app served"
	assert_steered_v4 "$s0" "$s1" "$n parallel inbound connections" "$n"
}

excluded_inbound_port_goes_to_app() {
	local s0 s1 h0 h1 body steered
	policy --exclude-inbound-ports 9090
	s0=$(e2e_stats --netns "$POD")
	h0=$(e2e_haproxy_fe_sessions hap in)
	body=$(client "$SRV" "http://$E2E_POD4:9090/")
	h1=$(e2e_haproxy_fe_sessions hap in)
	s1=$(e2e_stats --netns "$POD")
	# the app sees the client itself
	assert_match "$body" "^app-9090 $E2E_SRV4A:[0-9]+\$" "answer from the app, directly"
	assert_eq "$((h1 - h0))" 0 "haproxy 'in' sessions"
	assert_deltas "$s0" "$s1" "connection to excluded :9090" inbound_bypass_excluded_port=1
	# other ports are still steered under that policy
	s0=$s1
	steered=$(client "$SRV" "http://$E2E_POD4:8080/")
	s1=$(e2e_stats --netns "$POD")
	assert_match "$steered" "^app-8080 $E2E_INBOUND_SRC4:[0-9]+\$" ":8080 still via the proxy"
	assert_steered_v4 "$s0" "$s1" "connection to :8080" 1
}

only_included_inbound_ports_steered() {
	local s0 s1 h0 h1 direct steered
	policy --include-inbound-ports 8080
	s0=$(e2e_stats --netns "$POD")
	h0=$(e2e_haproxy_fe_sessions hap in)
	direct=$(client "$SRV" "http://$E2E_POD4:8081/")
	h1=$(e2e_haproxy_fe_sessions hap in)
	s1=$(e2e_stats --netns "$POD")
	assert_match "$direct" "^app-8081 $E2E_SRV4A:[0-9]+\$" ":8081 answered by the app directly"
	assert_eq "$((h1 - h0))" 0 "haproxy 'in' sessions for :8081"
	assert_deltas "$s0" "$s1" "connection to not included :8081" inbound_bypass_not_included_port=1
	s0=$s1
	steered=$(client "$SRV" "http://$E2E_POD4:8080/")
	s1=$(e2e_stats --netns "$POD")
	assert_match "$steered" "^app-8080 $E2E_INBOUND_SRC4:[0-9]+\$" ":8080 via the proxy"
	assert_eq "$(($(e2e_haproxy_fe_sessions hap in) - h1))" 1 "haproxy 'in' sessions for :8080"
	assert_steered_v4 "$s0" "$s1" "connection to included :8080" 1
}

# istio-iptables' short flags: -b include, -d exclude inbound ports
istio_short_flags_b_d() {
	local s0 s1 a b c
	policy -b 8080,9090 -d 9090
	s0=$(e2e_stats --netns "$POD")
	a=$(client "$SRV" "http://$E2E_POD4:8080/")
	b=$(client "$SRV" "http://$E2E_POD4:8081/")
	c=$(client "$SRV" "http://$E2E_POD4:9090/")
	s1=$(e2e_stats --netns "$POD")
	assert_match "$a" "^app-8080 $E2E_INBOUND_SRC4:[0-9]+\$" ":8080 (-b) via the proxy"
	assert_match "$b" "^app-8081 $E2E_SRV4A:[0-9]+\$" ":8081 (not in -b) direct"
	assert_match "$c" "^app-9090 $E2E_SRV4A:[0-9]+\$" ":9090 (-d wins over -b) direct"
	assert_deltas "$s0" "$s1" "-b 8080,9090 -d 9090" inbound_captured=1 origdst_answered=1 \
		bypass_proxy_uid=1 inbound_bypass_not_included_port=1 inbound_bypass_excluded_port=1
}

# IPv6 through HAProxy's in6 listener: HAProxy forwards to the address the
# client connected to (getsockname; it asks SO_ORIGINAL_DST for IPv4 only)
ipv6_steered_to_haproxy() {
	local s0 s1 h0 h1 body
	policy
	s0=$(e2e_stats --netns "$POD")
	h0=$(e2e_haproxy_fe_sessions hap in6)
	body=$(client "$SRV" "http://[$E2E_POD6]:8080/")
	h1=$(e2e_haproxy_fe_sessions hap in6)
	s1=$(e2e_stats --netns "$POD")
	# HAProxy's upstream socket has the pod's own address
	assert_match "$body" "^app6-8080 $E2E_POD6:[0-9]+\$" "answer from the app, via the proxy"
	assert_eq "$((h1 - h0))" 1 "haproxy 'in6' sessions"
	assert_deltas "$s0" "$s1" "IPv6 inbound connection" inbound_captured=1 bypass_proxy_uid=1
}

# The reference sidecar asks SO_ORIGINAL_DST: for a steered connection
# sockmesh answers with the socket's own local address (podIP:8080).
sidecar_v4_gets_original_dst() {
	local s0 s1 body
	s0=$(e2e_stats --netns "$POD2")
	body=$(client "$SRV2" "http://$POD2_4:8080/") || true
	s1=$(e2e_stats --netns "$POD2")
	sm_log "    sidecar log: $(tr '\n' '|' <"$TMP/car.log")"
	assert_eq "$(grep -c "^accept client=10\.78\.0\.2:[0-9]* orig=$POD2_4:8080\$" "$TMP/car.log")" 1 \
		"sidecar log lines 'accept client=10.78.0.2:* orig=$POD2_4:8080'"
	assert_eq "$(grep -c "^error" "$TMP/car.log")" 0 "sidecar error lines"
	assert_match "$body" "^app2-8080 $POD2_4:[0-9]+\$" "answer from the app, via the sidecar"
	assert_deltas "$s0" "$s1" "IPv4 inbound via the sidecar" inbound_captured=1 origdst_answered=1 \
		bypass_proxy_uid=1
}

sidecar_v6_gets_original_dst() {
	local s0 s1 body
	s0=$(e2e_stats --netns "$POD2")
	body=$(client "$SRV2" "http://[$POD2_6]:8080/") || true
	s1=$(e2e_stats --netns "$POD2")
	sm_log "    sidecar log: $(tr '\n' '|' <"$TMP/car.log")"
	assert_eq "$(grep -c "^accept client=\[fd78::2\]:[0-9]* orig=\[$POD2_6\]:8080\$" "$TMP/car.log")" 1 \
		"sidecar log lines 'accept client=[fd78::2]:* orig=[$POD2_6]:8080'"
	assert_eq "$(grep -c "^error" "$TMP/car.log")" 0 "sidecar error lines"
	assert_match "$body" "^app2v6-8080 $POD2_6:[0-9]+\$" "answer from the app, via the sidecar"
	assert_deltas "$s0" "$s1" "IPv6 inbound via the sidecar" inbound_captured=1 origdst_answered=1 \
		bypass_proxy_uid=1
}

# istio's IPv6 inbound passthrough source is ::6 (on lo). The sidecar's
# connection from [::6] to the app must not be steered back to the sidecar.
# Its own HAProxy with a small maxconn: a loop ends there, not at 4000.
ipv6_passthrough_source_not_steered_again() {
	local s0 s1 h0 h1 body rc=0
	sm_stop "$(cat "$TMP/car.pid")"
	E2E_HAP_MAXCONN=50 E2E_HAP_TIMEOUT=5s e2e_haproxy_pod_start hap2 "$CG" "$POD2" "$E2E_INBOUND_SRC6"
	s0=$(e2e_stats --netns "$POD2")
	h0=$(e2e_haproxy_fe_sessions hap2 in6)
	body=$(e2e_curl - "$SRV2" -g --max-time 5 "http://[$POD2_6]:8080/") || rc=$?
	h1=$(e2e_haproxy_fe_sessions hap2 in6)
	s1=$(e2e_stats --netns "$POD2")
	assert_eq "$((h1 - h0))" 1 "haproxy 'in6' sessions (== 1 request: no loop)"
	assert_deltas "$s0" "$s1" "IPv6 inbound, proxy source [::6]" inbound_captured=1 bypass_proxy_uid=1
	assert_eq "$rc" 0 "curl exit code"
	assert_match "$body" "^app2v6-8080 $E2E_INBOUND_SRC6:[0-9]+\$" "answer from the app, from [::6]"
}

e2e_subtest inbound_listeners_registered_at_listen inbound_listeners_registered_at_listen
e2e_subtest steered_to_haproxy_without_nat steered_to_haproxy_without_nat
e2e_subtest proxy_connection_to_app_not_steered_again proxy_connection_to_app_not_steered_again
e2e_subtest excluded_inbound_port_goes_to_app excluded_inbound_port_goes_to_app
e2e_subtest only_included_inbound_ports_steered only_included_inbound_ports_steered
e2e_subtest istio_short_flags_b_d istio_short_flags_b_d
e2e_subtest ipv6_steered_to_haproxy ipv6_steered_to_haproxy
e2e_subtest sidecar_v4_gets_original_dst sidecar_v4_gets_original_dst
e2e_subtest sidecar_v6_gets_original_dst sidecar_v6_gets_original_dst
e2e_subtest ipv6_passthrough_source_not_steered_again ipv6_passthrough_source_not_steered_again
e2e_finish
