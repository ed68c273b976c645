#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Untrusted text in what sockmesh prints (issue 12, point 6): sockmesh-cni's
# error JSON stays valid UTF-8 JSON whatever bytes the environment or the
# config put into its message (the bytes that are not UTF-8 become "\xNN"),
# and a pod whose name holds a newline, quotes or bytes that are not UTF-8
# cannot forge lines of `sockmesh status` (C escapes), while -j stays valid
# JSON with the name as it was (U+FFFD for the bad bytes). The plugin runs
# alone here (no bridge, no traffic).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init bad_input_text
e2e_need_sockmesh
SM_CNI=${SM_CNI:-$SM_BUILD/user/cni/sockmesh-cni}
[ -x "$SM_CNI" ] || sm_die "sockmesh-cni not built: $SM_CNI (ninja -C build)"
CG=$(sm_cgroup app)
PIN=$(sm_pindir pin)
POD=$(sm_netns pod)
CID=$(printf '%s' "$SM_TAG-pod" | sha256sum | cut -c1-64)

# json_ok < TEXT: TEXT is strict UTF-8 and one JSON document
json_ok() {
	python3 -c 'import json, sys; json.loads(sys.stdin.buffer.read().decode("utf-8", "strict"))'
}

# cni ENV... -- STDIN: sockmesh-cni with only this environment; its stdout
# in $TMP/out, its exit status printed
cni() {
	local envs=() rc=0
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	printf '%s' "$2" | timeout 30 env -i PATH="$PATH" "${envs[@]}" "$SM_CNI" >"$TMP/out" 2>"$TMP/err" || rc=$?
	echo "$rc"
}

# cni_error CODE MSG-REGEX LABEL ENV... -- STDIN: the spec's error JSON,
# valid UTF-8, with CODE and a msg matching MSG-REGEX; a non-zero exit
cni_error() {
	local code=$1 re=$2 label=$3 rc
	shift 3
	rc=$(cni "$@")
	sm_log "    $label -> rc $rc, stdout: $(head -c 400 "$TMP/out" | od -An -c | tr -s ' ' | head -c 600)"
	assert_match "$rc" '^[1-9]' "$label: exit status"
	assert_eq "$(json_ok <"$TMP/out" && echo valid)" valid "$label: reply is UTF-8 JSON"
	assert_eq "$(jq -r .code "$TMP/out")" "$code" "$label: code"
	assert_match "$(jq -r .msg "$TMP/out")" "$re" "$label: msg"
}

env_ok=(CNI_COMMAND=ADD "CNI_CONTAINERID=$CID" "CNI_NETNS=/run/netns/$POD" CNI_IFNAME=eth0
	CNI_PATH=/opt/cni/bin)
STATUS='{"containers":["istio-proxy"]}'
# conf [JQ-FILTER]: the plugin's config for the pod, edited by JQ-FILTER
conf() {
	jq -nc --arg pin "$PIN" --arg cg "$CG" --arg s "$STATUS" --arg sb "/run/netns/$POD" "{
		cniVersion: \"1.0.0\", name: \"smtest\", type: \"sockmesh-cni\",
		pinDir: \$pin, attachCgroup: \$cg,
		prevResult: {cniVersion: \"1.0.0\", interfaces: [{name: \"eth0\", sandbox: \$sb}],
			ips: [{address: \"10.99.0.5/24\", interface: 0}]},
		runtimeConfig: {\"io.kubernetes.cri.pod-annotations\": {\"sidecar.istio.io/status\": \$s}}
	} | ${1:-.}"
}

cni_error_replies_are_utf8_json() {
	local good euro ff=$'\xff' cut=$'\xe2\x82'
	good=$(conf)
	cni_error 4 "CNI_CONTAINERID: 'a\\\\xffb' is not a container id" "container id not UTF-8" \
		CNI_COMMAND=ADD "CNI_CONTAINERID=a"$'\xff'"b" "CNI_NETNS=/run/netns/$POD" CNI_IFNAME=eth0 \
		CNI_PATH=/opt/cni/bin -- "$good"
	cni_error 4 "CNI_ARGS: 'K8S_POD_NAME\\\\xc3' is not a KEY=VALUE pair" "CNI_ARGS not UTF-8" \
		"${env_ok[@]}" "CNI_ARGS=K8S_POD_NAME"$'\xc3' -- "$good"
	cni_error 4 "CNI_COMMAND: 'ADD\\\\xfe\\\\xff' is not ADD" "CNI_COMMAND not UTF-8" \
		"${env_ok[@]}" CNI_COMMAND=ADD$'\xfe\xff' -- "$good"
	# stdin: a config value that is not UTF-8 ends up in the message
	cni_error 1 "cniVersion: '1\\\\xff' is not supported" "cniVersion not UTF-8" \
		"${env_ok[@]}" -- "${good/\"cniVersion\":\"1.0.0\"/\"cniVersion\":\"1$ff\"}"
	cni_error 7 "prevResult.ips\\[0\\].address: '10.0.0.1\\\\xe2\\\\x82' is not" "address not UTF-8" \
		"${env_ok[@]}" -- "${good/10.99.0.5\/24/10.0.0.1$cut}"
	# a valid UTF-8 value the message cuts at 100 bytes, inside a character
	euro=$(printf '\xe2\x82\xac%.0s' {1..40})
	cni_error 1 "cniVersion: 'xx(€){32}\\\\xe2\\\\x82' is not supported" "UTF-8 cut by the message" \
		"${env_ok[@]}" -- "$(conf ".cniVersion = \"xx$euro\"")"
	# CHECK of a pod not enrolled: the message names the pod from CNI_ARGS
	cni_error 102 "is not enrolled in sockmesh" "CHECK details with bytes not UTF-8" \
		CNI_COMMAND=CHECK "CNI_CONTAINERID=$CID" "CNI_NETNS=/run/netns/$POD" CNI_IFNAME=eth0 \
		CNI_PATH=/opt/cni/bin "CNI_ARGS=K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web"$'\xff' -- "$good"
	assert_match "$(jq -r .details "$TMP/out")" "^netns /run/netns/$POD" "CHECK: details"
	assert_match "$(jq -r .msg "$TMP/out")" "^pod shop/web\\\\xff is not enrolled" "CHECK: msg names the pod"
}

# the prevResult passed on: a string that is not UTF-8 becomes U+FFFD
add_passes_prev_result_on_as_utf8() {
	local rc
	rc=$(cni "${env_ok[@]}" "CNI_ARGS=K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-x" -- \
		"$(conf '.prevResult.dns = {domain: "X"} | .requireSidecar = false |
			.runtimeConfig = {"io.kubernetes.cri.pod-annotations": {"sockmesh.io/capture": "false"}}' |
			sed 's/"domain":"X"/"domain":"a\xffb"/')")
	assert_eq "$rc" 0 "ADD of a pod left alone: exit status"
	assert_eq "$(json_ok <"$TMP/out" && echo valid)" valid "result is UTF-8 JSON"
	assert_eq "$(jq -r .dns.domain "$TMP/out")" "a�b" "the bad byte as U+FFFD"
}

status_escapes_pod_labels() {
	local rc name=$'web\n    pod forged/line container x "q"\xff' text json
	rc=$(cni "${env_ok[@]}" "CNI_ARGS=K8S_POD_NAMESPACE=sh\"op;K8S_POD_NAME=$name;K8S_POD_INFRA_CONTAINER_ID=$CID" -- "$(conf)")
	assert_eq "$rc" 0 "ADD of a pod with a newline in its name: exit status ($(cat "$TMP/out" "$TMP/err"))"
	text=$(sm_cli status)
	sm_log "$text"
	assert_eq "$(grep -c '^    pod ' <<<"$text")" 1 "status lines starting with '    pod '"
	assert_eq "$(grep -c 'forged' <<<"$text")" 1 "status lines holding the name's second line"
	assert_eq "$(grep '^    pod ' <<<"$text")" \
		"    pod sh\\\"op/web\\n\\x20\\x20\\x20\\x20pod\\x20forged/line\\x20container\\x20x\\x20\\\"q\\\"\\xff container $CID" \
		"the pod line, C-escaped"
	json=$(sm_cli -j status)
	assert_eq "$(json_ok <<<"$json" && echo valid)" valid "-j status is UTF-8 JSON"
	assert_eq "$(jq -r '.scopes[0].pod_namespace' <<<"$json")" 'sh"op' "-j: pod_namespace"
	assert_eq "$(jq '.scopes[0].pod_name' <<<"$json")" \
		'"web\n    pod forged/line container x \"q\"�"' "-j: pod_name as it was, U+FFFD for the bad byte"
	rc=$(cni CNI_COMMAND=DEL "CNI_CONTAINERID=$CID" "CNI_NETNS=/run/netns/$POD" CNI_IFNAME=eth0 \
		CNI_PATH=/opt/cni/bin -- "$(conf)")
	assert_eq "$rc" 0 "DEL: exit status"
	assert_eq "$(find "$PIN" -mindepth 1 2>/dev/null | wc -l)" 0 "objects pinned after the last DEL"
}

e2e_subtest cni_error_replies_are_utf8_json cni_error_replies_are_utf8_json
e2e_subtest add_passes_prev_result_on_as_utf8 add_passes_prev_result_on_as_utf8
e2e_subtest status_escapes_pod_labels status_escapes_pod_labels
e2e_finish
