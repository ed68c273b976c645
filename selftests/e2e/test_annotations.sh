#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# --from-annotations FILE|-: istio pod annotations (a JSON object) set the
# pod's policy, and capture changes as istio's would. One subtest per
# annotation; explicit options win over annotations; bad annotation files
# exit 2, name the key and value, and change nothing.
#
#   pod 10.77.0.1  HAProxy (out 15001, in 15006); app on :8080 :8081 :15020
#   srv 10.77.0.2  nginx :80 :8080;  10.77.0.3  nginx :80;  also the client
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=lib_pod.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_pod.sh"

e2e_init annotations
e2e_need_sockmesh
e2e_topology
sm_cli enable --netns "$POD" --attach-cgroup "$CG"
e2e_haproxy_pod_start hap "$CG" "$POD"
e2e_nginx_start web "$SRV" "$E2E_SRV4A:80 srv-a" "$E2E_SRV4A:8080 srv-a-8080" "$E2E_SRV4B:80 srv-b"
STATUS_PORT=15020
e2e_nginx_start app "$POD" "$E2E_POD4:8080 app-8080" "$E2E_POD4:8081 app-8081" \
	"$E2E_POD4:$STATUS_PORT app-$STATUS_PORT"

K=traffic.sidecar.istio.io
# what one captured outbound connection moves (splicing is not this test's
# business); what one steered inbound connection moves
OUT1=(captured=1 origdst_published=1 origdst_answered=1 bypass_proxy_uid=1 'splice_sockets=*'
	'splice_msgs=*' 'splice_bytes=*' splice_miss=0)
IN1=(inbound_captured=1 origdst_answered=1 bypass_proxy_uid=1)

# annotate JSON [OPTIONS...]: enable the pod with JSON as its annotations
# file, plus OPTIONS
annotate() {
	local json=$1
	shift
	printf '%s\n' "$json" >"$TMP/ann.json"
	sm_log "    annotations: $json ${*:+options: $*}"
	sm_cli enable --netns "$POD" --attach-cgroup "$CG" --from-annotations "$TMP/ann.json" "$@" >/dev/null
}

# req_out URL: a request from the pod's app, from a port >= 40000 so the server
# can tell the app (direct) from HAProxy's upstream (proxied)
req_out() { e2e_curl "$CG" "$POD" --local-port 40000-49999 "$1"; }
# req_in PORT: a request from outside the pod to podIP:PORT
req_in() { e2e_curl - "$SRV" "http://$E2E_POD4:$1/"; }
stats() { e2e_stats --netns "$POD"; }

# assert_in_steered BODY PORT / assert_in_direct BODY PORT: the app's peer
# is HAProxy's inbound source (127.0.0.6) or the client itself
assert_in_steered() { assert_match "$1" "^app-$2 $E2E_INBOUND_SRC4:[0-9]+\$" "podIP:$2 steered to the proxy"; }
assert_in_direct() { assert_match "$1" "^app-$2 $E2E_SRV4A:[0-9]+\$" "podIP:$2 straight to the app"; }

# outbound_case NAME JSON URL_PROXIED URL_DIRECT COUNTER: with annotations
# JSON, URL_PROXIED goes through HAProxy and URL_DIRECT straight to the
# server, counted once as COUNTER
outbound_case() {
	local name=$1 json=$2 url_p=$3 url_d=$4 counter=$5 s0 s1 a b
	annotate "$json"
	s0=$(stats)
	a=$(req_out "$url_p")
	b=$(req_out "$url_d")
	s1=$(stats)
	assert_proxied "$a" "$url_p"
	assert_direct "$b" "$url_d"
	assert_deltas "$s0" "$s1" "$name" "${OUT1[@]}" "$counter=1"
}

include_outbound_ip_ranges() {
	outbound_case includeOutboundIPRanges "{\"$K/includeOutboundIPRanges\": \"$E2E_SRV4A/32\"}" \
		"http://$E2E_SRV4A/" "http://$E2E_SRV4B/" bypass_not_included_cidr
}

exclude_outbound_ip_ranges() {
	outbound_case excludeOutboundIPRanges "{\"$K/excludeOutboundIPRanges\": \"$E2E_SRV4B/32\"}" \
		"http://$E2E_SRV4A/" "http://$E2E_SRV4B/" bypass_excluded_cidr
}

include_outbound_ports() {
	outbound_case includeOutboundPorts "{\"$K/includeOutboundPorts\": \"80\"}" \
		"http://$E2E_SRV4A/" "http://$E2E_SRV4A:8080/" bypass_not_included_port
}

exclude_outbound_ports() {
	outbound_case excludeOutboundPorts "{\"$K/excludeOutboundPorts\": \"8080\"}" \
		"http://$E2E_SRV4A/" "http://$E2E_SRV4A:8080/" bypass_excluded_port
}

include_inbound_ports() {
	local s0 s1 a b
	annotate "{\"$K/includeInboundPorts\": \"8080\"}"
	s0=$(stats)
	a=$(req_in 8080)
	b=$(req_in 8081)
	s1=$(stats)
	assert_in_steered "$a" 8080
	assert_in_direct "$b" 8081
	assert_deltas "$s0" "$s1" "includeInboundPorts" "${IN1[@]}" inbound_bypass_not_included_port=1
}

exclude_inbound_ports() {
	local s0 s1 a b
	annotate "{\"$K/excludeInboundPorts\": \"8081\"}"
	s0=$(stats)
	a=$(req_in 8080)
	b=$(req_in 8081)
	s1=$(stats)
	assert_in_steered "$a" 8080
	assert_in_direct "$b" 8081
	assert_deltas "$s0" "$s1" "excludeInboundPorts" "${IN1[@]}" inbound_bypass_excluded_port=1
}

# istio never captures the sidecar's status port inbound: it joins the
# excluded ports, and exclusion wins over inclusion
status_port_never_steered() {
	local s0 s1 a b c
	annotate "{\"status.sidecar.istio.io/port\": \"$STATUS_PORT\"}"
	s0=$(stats)
	a=$(req_in 8080)
	b=$(req_in "$STATUS_PORT")
	s1=$(stats)
	assert_in_steered "$a" 8080
	assert_in_direct "$b" "$STATUS_PORT"
	assert_deltas "$s0" "$s1" "status port" "${IN1[@]}" inbound_bypass_excluded_port=1
	# with excludeInboundPorts, and even when included
	annotate "{\"status.sidecar.istio.io/port\": \"$STATUS_PORT\", \"$K/excludeInboundPorts\": \"8081\",
		\"$K/includeInboundPorts\": \"8080,8081,$STATUS_PORT\"}"
	s0=$(stats)
	a=$(req_in 8080)
	b=$(req_in "$STATUS_PORT")
	c=$(req_in 8081)
	s1=$(stats)
	assert_in_steered "$a" 8080
	assert_in_direct "$b" "$STATUS_PORT"
	assert_in_direct "$c" 8081
	assert_deltas "$s0" "$s1" "status port + excludeInboundPorts" "${IN1[@]}" inbound_bypass_excluded_port=2
}

# an explicit --exclude-inbound-ports replaces excludeInboundPorts, but the
# status port is its own annotation and stays excluded (istio's injector
# always adds it to -d)
status_port_excluded_with_explicit_exclude_option() {
	local s0 s1 b c
	annotate "{\"status.sidecar.istio.io/port\": \"$STATUS_PORT\"}" --exclude-inbound-ports 8081
	s0=$(stats)
	b=$(req_in "$STATUS_PORT")
	c=$(req_in 8081)
	s1=$(stats)
	assert_in_direct "$c" 8081
	assert_in_direct "$b" "$STATUS_PORT"
	assert_deltas "$s0" "$s1" "status port + --exclude-inbound-ports" inbound_bypass_excluded_port=2
}

explicit_options_win() {
	local s0 s1 a b c d
	annotate "{\"$K/includeOutboundPorts\": \"80\", \"$K/excludeInboundPorts\": \"8080\"}" \
		--include-outbound-ports 8080 --exclude-inbound-ports 8081
	s0=$(stats)
	a=$(req_out "http://$E2E_SRV4A:8080/")
	b=$(req_out "http://$E2E_SRV4A/")
	c=$(req_in 8080)
	d=$(req_in 8081)
	s1=$(stats)
	assert_proxied "$a" ":8080 (--include-outbound-ports 8080 over the annotation's 80)"
	assert_direct "$b" ":80 (not in --include-outbound-ports)"
	assert_in_steered "$c" 8080
	assert_in_direct "$d" 8081
	# one outbound and one inbound connection through HAProxy
	assert_deltas "$s0" "$s1" "options over annotations" captured=1 origdst_published=1 \
		'splice_sockets=*' 'splice_msgs=*' 'splice_bytes=*' splice_miss=0 bypass_not_included_port=1 \
		inbound_captured=1 origdst_answered=2 bypass_proxy_uid=2 inbound_bypass_excluded_port=1
}

annotations_from_stdin() {
	local s0 s1 a b
	printf '{"%s/includeInboundPorts": "8081"}' "$K" |
		sm_cli enable --netns "$POD" --attach-cgroup "$CG" --from-annotations - >/dev/null
	s0=$(stats)
	a=$(req_in 8080)
	b=$(req_in 8081)
	s1=$(stats)
	assert_in_direct "$a" 8080
	assert_in_steered "$b" 8081
	assert_deltas "$s0" "$s1" "includeInboundPorts from stdin" "${IN1[@]}" inbound_bypass_not_included_port=1
}

# a pod carries many annotations; the ones that are not about capture (of
# any JSON type) are ignored
other_annotations_ignored() {
	local s0 s1 a b
	annotate "{\"sidecar.istio.io/inject\": \"true\", \"prometheus.io/scrape\": true,
		\"example.com/n\": 3, \"example.com/o\": {}, \"$K/excludeOutboundPorts\": \"8080\"}"
	s0=$(stats)
	a=$(req_out "http://$E2E_SRV4A/")
	b=$(req_out "http://$E2E_SRV4A:8080/")
	s1=$(stats)
	assert_proxied "$a" ":80"
	assert_direct "$b" ":8080 (excluded)"
	assert_deltas "$s0" "$s1" "with unrelated annotations" "${OUT1[@]}" bypass_excluded_port=1
}

# ---------------------------------------------------------------- bad files

state() { e2e_pin_state "$CG"; }

# rejected CONTENT ERE...: `enable --from-annotations FILE` with CONTENT in
# FILE exits 2, its error matches each ERE, and nothing changes
rejected() {
	local content=$1 rc=0 before after re
	shift
	printf '%s' "$content" >"$TMP/bad.json"
	annotate '{}'
	before=$(state)
	sm_cli -j enable --netns "$POD" --attach-cgroup "$CG" --from-annotations "$TMP/bad.json" \
		>"$TMP/out" 2>"$TMP/err" || rc=$?
	after=$(state)
	sm_log "    file: '$content' -> rc $rc, stderr: $(head -c 300 "$TMP/err")"
	assert_eq "$rc" 2 "exit code"
	for re in "$@"; do
		assert_match "$(cat "$TMP/err")" "$re" "stderr names /$re/"
	done
	assert_match "$(jq -r .error "$TMP/out")" "$1" "-j: {\"error\": ...} on stdout"
	assert_eq "$after" "$before" "status, attachments, pins and policy maps after the call"
}

bad_invalid_json() { rejected "{\"$K/includeInboundPorts\": \"8080\"" 'from-annotations' 'JSON'; }
bad_trailing_data() { rejected '{} {}' 'from-annotations' 'trailing'; }
bad_not_an_object() { rejected '["8080"]' 'from-annotations' 'object'; }
bad_string_not_an_object() { rejected '"8080"' 'from-annotations' 'object'; }
bad_value_not_a_string() { rejected "{\"$K/includeInboundPorts\": 8080}" "$K/includeInboundPorts" 'string'; }
bad_cidr() {
	rejected "{\"$K/excludeOutboundIPRanges\": \"10.1.0.0/16,10.0.0.0/33\"}" \
		"$K/excludeOutboundIPRanges" "'10\\.0\\.0\\.0/33'"
}
bad_ipv6_cidr() { rejected "{\"$K/includeOutboundIPRanges\": \"fd00::/129\"}" "$K/includeOutboundIPRanges" "'fd00::/129'"; }
bad_inbound_port() { rejected "{\"$K/includeInboundPorts\": \"8080,80x\"}" "$K/includeInboundPorts" "'80x'"; }
bad_outbound_port() { rejected "{\"$K/excludeOutboundPorts\": \"70000\"}" "$K/excludeOutboundPorts" "'70000'"; }
bad_exclude_star() { rejected "{\"$K/excludeInboundPorts\": \"*\"}" "$K/excludeInboundPorts" "'\\*'"; }
bad_status_port() { rejected '{"status.sidecar.istio.io/port": "99999"}' 'status\.sidecar\.istio\.io/port' "'99999'"; }
bad_empty_file() { rejected '' 'from-annotations' "$TMP/bad\\.json|JSON|empty"; }

missing_file() {
	local rc=0 before after
	before=$(state)
	sm_cli enable --netns "$POD" --attach-cgroup "$CG" --from-annotations "$TMP/no-such.json" \
		>/dev/null 2>"$TMP/err" || rc=$?
	after=$(state)
	assert_eq "$rc" 2 "exit code"
	assert_match "$(cat "$TMP/err")" "$TMP/no-such\\.json" "stderr names the file"
	assert_eq "$after" "$before" "state after the call"
}

e2e_subtest include_outbound_ip_ranges include_outbound_ip_ranges
e2e_subtest exclude_outbound_ip_ranges exclude_outbound_ip_ranges
e2e_subtest include_outbound_ports include_outbound_ports
e2e_subtest exclude_outbound_ports exclude_outbound_ports
e2e_subtest include_inbound_ports include_inbound_ports
e2e_subtest exclude_inbound_ports exclude_inbound_ports
e2e_subtest status_port_never_steered status_port_never_steered
e2e_subtest status_port_excluded_with_explicit_exclude_option status_port_excluded_with_explicit_exclude_option
e2e_subtest explicit_options_win explicit_options_win
e2e_subtest annotations_from_stdin annotations_from_stdin
e2e_subtest other_annotations_ignored other_annotations_ignored
for t in bad_invalid_json bad_trailing_data bad_not_an_object bad_string_not_an_object \
	bad_value_not_a_string bad_cidr bad_ipv6_cidr bad_inbound_port bad_outbound_port \
	bad_exclude_star bad_status_port bad_empty_file missing_file; do
	e2e_subtest "$t" "$t"
done
e2e_finish
