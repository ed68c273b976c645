#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# sockmesh-cni, chained after the real bridge + host-local plugins and run
# exactly as containerd/libcni runs a conflist: three pods in a "node" netns
# of the test, each with an HAProxy sidecar (out 15001, in 15006) in the test
# cgroup. Pod-to-pod traffic goes through both sidecars and is spliced;
# annotations from runtimeConfig shape a pod's policy; a pod without the
# sidecar annotation is left alone; ADD is idempotent; CHECK reports drift;
# every spec version served (0.3.0 to 1.1.0) works, a prevResult of another
# one is converted as libcni does; malformed input gets the spec's error
# JSON and enrolls nothing; cni-install refuses a conflist of a version not
# served; DEL withdraws (also when the netns is gone) and leaves bridge and
# IPAM state as the reference plugins expect; the last DEL unloads
# everything.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cni_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cni_lib.sh"

e2e_init cni
e2e_need_sockmesh
cni_init
CG=$(sm_cgroup cni)
PIN=$(sm_pindir pin)
CGID=$(stat -c %i "$CG")
BR="smbr$$"
SUBNET="10.$(($$ % 200 + 20)).$(($$ / 200 % 250)).0/24"
NET=smtest
LIST="$TMP/10-sockmesh.conflist"
jq -n --arg br "$BR" --arg subnet "$SUBNET" --arg ipam "$TMP/ipam" --arg pin "$PIN" --arg cg "$CG" \
	--arg net "$NET" '{
	cniVersion: "1.0.0", name: $net,
	plugins: [
		{type: "bridge", bridge: $br, isGateway: true, ipMasq: false,
		 ipam: {type: "host-local", ranges: [[{subnet: $subnet}]], dataDir: $ipam}},
		{type: "sockmesh-cni", pinDir: $pin, attachCgroup: $cg,
		 excludeInboundPorts: "15020,15021,15090",
		 capabilities: {"io.kubernetes.cri.pod-annotations": true}}
	]}' >"$LIST"
STATUS='{"initContainers":["istio-init"],"containers":["istio-proxy"],"revision":"default"}'
SM_IDX=1 # the plugin's index in the conflist

# ------------------------------------------------------------------ pods

# Per-pod facts live in files ($TMP/pod-NAME.KEY): subtests are subshells.
pod_f() { cat "$TMP/pod-$1.$2"; }

# pod_add NAME K8S_NAME ANNOTATIONS_JSON: a pod as containerd makes it:
# sandbox netns, the loopback network, then the conflist.
pod_add() {
	local name=$1 ns cid args res
	ns=$(cni_pod "$name")
	cid=$(cni_container_id "$name")
	args=$(cni_args shop "$2" "$cid")
	printf '%s' "$ns" >"$TMP/pod-$name.ns"
	printf '%s' "$cid" >"$TMP/pod-$name.cid"
	printf '%s' "$args" >"$TMP/pod-$name.args"
	printf '%s' "$3" >"$TMP/pod-$name.ann"
	cni_loopback ADD "$cid" "/run/netns/$ns" || sm_die "loopback ADD for $name"
	res=$(cni_chain ADD "$LIST" "$cid" "/run/netns/$ns" "$args" "$3") ||
		sm_die "ADD of pod $name failed: $res"
	printf '%s' "$res" >"$TMP/pod-$name.result"
	cni_pod_ip "$res" >"$TMP/pod-$name.ip"
}

# chain CMD NAME: run the conflist for pod NAME (ADD/CHECK/DEL)
chain() {
	cni_chain "$1" "$LIST" "$(pod_f "$2" cid)" "/run/netns/$(pod_f "$2" ns)" "$(pod_f "$2" args)" \
		"$(pod_f "$2" ann)"
}

# plugin CMD NAME [JQ_FILTER]: only sockmesh-cni, with the cached result as
# prevResult, its config passed through JQ_FILTER (default: unchanged)
plugin() {
	local prev rt
	prev=$(cat "$CNI_CACHE/$(pod_f "$2" cid).json")
	rt=$(jq -nc --arg k "$CNI_CAP_ANN" --argjson a "$(pod_f "$2" ann)" '{($k): $a}')
	cni_plugin_conf "$LIST" "$SM_IDX" "$prev" "$rt" | jq -c "${3:-.}" |
		cni_exec sockmesh-cni "$1" "$(pod_f "$2" cid)" "/run/netns/$(pod_f "$2" ns)" "$(pod_f "$2" args)"
}

# scope_of K8S_NAME: the enrolled scope labelled with that pod name ("" if none)
scope_of() {
	local s
	s=$(sm_cli -j status) || return 0
	jq -c --arg n "$1" '.scopes[] | select(.pod_name == $n)' <<<"$s"
}

pod_stats() { e2e_stats --netns "$(pod_f "$1" ns)"; }
hap() { cni_haproxy_sessions "hap-$1" "$2"; }
# curl_from POD URL_PATH...: a request from POD's app (in the test cgroup)
curl_from() { e2e_curl "$CG" "$(pod_f "$1" ns)" "$2"; }

pod_add a web-a "$(jq -nc --arg s "$STATUS" '{"sidecar.istio.io/status": $s,
	"traffic.sidecar.istio.io/excludeInboundPorts": "9090"}')"
pod_add b web-b "$(jq -nc --arg s "$STATUS" '{"sidecar.istio.io/status": $s,
	"traffic.sidecar.istio.io/excludeOutboundPorts": "8081", "status.sidecar.istio.io/port": "15020"}')"
pod_add c legacy-c '{"app": "legacy"}'
IP_A=$(pod_f a ip)
IP_B=$(pod_f b ip)
IP_C=$(pod_f c ip)
sm_log "pods: a $IP_A, b $IP_B, c $IP_C (bridge $BR in netns $CNI_NODE)"
# Apps (outside the test cgroup, as any server) and sidecars (inside it),
# started after ADD as a kubelet starts containers after the sandbox.
for p in a b c; do
	ip=$(pod_f $p ip)
	e2e_nginx_start "app-$p" "$(pod_f $p ns)" "$ip:8080 $p-8080" "$ip:8081 $p-8081" "$ip:9090 $p-9090"
	cni_haproxy_start "hap-$p" "$CG" "$(pod_f $p ns)"
done
head -c 1048576 /dev/urandom >"$TMP/data.1M"
e2e_pyserver hash-b - "$(pod_f b ns)" hash-server "$IP_B" 8082
e2e_pyserver send-b - "$(pod_f b ns)" send-server "$IP_B" 8083 "$TMP/data.1M"

# ------------------------------------------------------------- subtests

# d_exec COMMAND JQ_FILTER: sockmesh-cni alone for pod d, good_conf through JQ_FILTER
d_exec() {
	local cid
	cid=$(cni_container_id d)
	good_conf | jq -c "$2" | cni_exec sockmesh-cni "$1" "$cid" "/run/netns/$SM_TAG-d" "$(cni_args shop web-d "$cid")"
}

pods_left_alone_but_add_succeeds() {
	local f out hai hbo ann='.runtimeConfig["io.kubernetes.cri.pod-annotations"]'
	for f in '.excludeNamespaces = ["kube-system", "shop"]' \
		"${ann}[\"sockmesh.io/capture\"] = \"false\"" \
		"${ann}[\"sidecar.istio.io/inject\"] = \"false\"" \
		"$ann = {}" "del(.runtimeConfig)"; do
		out=$(d_exec ADD "$f")
		assert_eq "$(jq -S -c . <<<"$out")" "$(jq -S -c .prevResult <<<"$(good_conf)")" "ADD ($f): prevResult passed on"
		assert_eq "$(scope_of web-d)" "" "ADD ($f): not enrolled"
		assert_eq "$(d_exec CHECK "$f")" "" "CHECK ($f): passes"
	done
	# requireSidecar false: a pod without the annotation is captured
	out=$(d_exec ADD '.requireSidecar = false | del(.runtimeConfig)')
	assert_eq "$(scope_of web-d | jq -r .pod_name)" web-d "requireSidecar false: enrolled without the annotation"
	assert_eq "$(d_exec DEL .)$(scope_of web-d)" "" "DEL"
	# an unparsable sidecar.istio.io/inject is ignored, as istio-cni does
	out=$(d_exec ADD "${ann}[\"sidecar.istio.io/inject\"] = \"maybe\"")
	assert_eq "$(scope_of web-d | jq -r .pod_name)" web-d "inject 'maybe' ignored: enrolled"
	assert_eq "$(d_exec DEL .)$(scope_of web-d)" "" "DEL"
	# d came and went: a and b still talk through their sidecars
	hai=$(hap a in)
	hbo=$(hap b out)
	assert_match "$(curl_from b "http://$IP_A:8080/")" "^a-8080 $IP_A:" "b -> a after d's enrollments"
	assert_eq "$(($(hap a in) - hai))$(($(hap b out) - hbo))" 11 "through b's outbound and a's inbound sidecar"
}

# ipam_has IP: host-local still holds IP
ipam_has() { [ -e "$TMP/ipam/$NET/$1" ] && echo held || echo free; }
# ipam_count: addresses host-local holds (one file per address)
ipam_count() { find "$TMP/ipam/$NET" -maxdepth 1 -name '10.*' | wc -l; }
# node_veths: host-side veths on our bridge in the node netns
node_veths() { ip -n "$CNI_NODE" -o link show master "$BR" type veth | wc -l; }

VERSIONS="0.3.0 0.3.1 0.4.0 1.0.0 1.1.0"
VERSION_REPLY='{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}'

version_reports_every_version() {
	assert_eq "$(CNI_COMMAND=VERSION "$SM_CNI" </dev/null)" "$VERSION_REPLY" "VERSION"
}

add_enrols_sidecar_pods_with_labels() {
	local s p
	assert_eq "$(sm_cli -j status | jq '.scopes | length')" 2 "scopes enrolled (a, b; not c)"
	for p in a:web-a b:web-b; do
		s=$(scope_of "${p#*:}")
		assert_eq "$(jq -r .name <<<"$s")" "/run/netns/$(pod_f "${p%%:*}" ns)" "${p#*:}: scope is CNI_NETNS"
		assert_eq "$(jq -r '[.pod_namespace, .pod_name, .container_id] | join(" ")' <<<"$s")" \
			"shop ${p#*:} $(pod_f "${p%%:*}" cid)" "${p#*:}: labels from CNI_ARGS"
		assert_eq "$(jq -r '[.proxy_port, .proxy_uid, .inbound_port, .splice, .attach_cgroup_id] | join(" ")' <<<"$s")" \
			"15001 1337 15006 true $CGID" "${p#*:}: policy from the config"
	done
	assert_eq "$(scope_of legacy-c)" "" "legacy-c (no sidecar annotation) not enrolled"
	assert_match "$(jq -c '[.interfaces[].name]' <<<"$(pod_f a result)")" "\"$BR\".*\"eth0\"" \
		"the result still lists bridge's interfaces"
}

add_passes_prev_result_through() {
	local prev out v04
	prev=$(cat "$CNI_CACHE/$(pod_f a cid).json")
	out=$(plugin ADD a)
	assert_eq "$(jq -S -c . <<<"$out")" "$(jq -S -c . <<<"$prev")" "ADD output = prevResult (1.0.0)"
	# A 0.4.0 config (prevResult converted as libcni does): answered in 0.4.0
	v04=$(jq -c '.cniVersion = "0.4.0" | .ips[] |= (. + {version: "4"})' <<<"$prev")
	out=$(plugin ADD a ".cniVersion = \"0.4.0\" | .prevResult = $v04")
	assert_eq "$(jq -S -c . <<<"$out")" "$(jq -S -c . <<<"$v04")" "ADD output = prevResult (0.4.0)"
}

pod_to_pod_through_both_sidecars_spliced() {
	local a0 b0 a1 b1 ha hb body
	a0=$(pod_stats a)
	b0=$(pod_stats b)
	ha=$(hap a out)
	hb=$(hap b in)
	body=$(curl_from a "http://$IP_B:8080/")
	a1=$(pod_stats a)
	b1=$(pod_stats b)
	# b's inbound sidecar forwards from inside the pod: nginx sees b's own address
	assert_match "$body" "^b-8080 $IP_B:[0-9]+\$" "reply of b's app, forwarded by b's sidecar"
	assert_eq "$(($(hap a out) - ha))" 1 "a's outbound sidecar sessions"
	assert_eq "$(($(hap b in) - hb))" 1 "b's inbound sidecar sessions"
	assert_eq "$(hap a in)$(hap b out)" "00" "a's inbound and b's outbound sidecars unused"
	# app->proxy, proxy's accepted end, proxy->pod b: three spliced sockets in a
	assert_deltas "$a0" "$a1" "a (client pod)" captured=1 origdst_published=1 origdst_answered=1 \
		bypass_proxy_uid=1 splice_sockets=3 splice_msgs=+ splice_bytes=+ splice_miss=0
	# b's proxy accepted the steered SYN; its end of the proxy<->proxy leg is spliced
	assert_deltas "$b0" "$b1" "b (server pod)" inbound_captured=1 bypass_proxy_uid=1 \
		'origdst_answered=*' splice_sockets=1 splice_msgs=+ splice_bytes=+ splice_miss=0
}

pod_to_pod_bulk_transfer_intact() {
	local a0 b0 a1 b1 reply sha
	sha=$(sha256sum "$TMP/data.1M" | cut -d' ' -f1)
	a0=$(pod_stats a)
	b0=$(pod_stats b)
	reply=$(e2e_tcptool "$CG" "$(pod_f a ns)" client "$IP_B" 8082 --send "$TMP/data.1M" --shut-wr)
	e2e_tcptool "$CG" "$(pod_f a ns)" client "$IP_B" 8083 --out "$TMP/got.1M"
	a1=$(pod_stats a)
	b1=$(pod_stats b)
	assert_eq "$reply" "$sha 1048576" "1 MiB upload a->b arrived intact"
	assert_eq "$(sha256sum "$TMP/got.1M" | cut -d' ' -f1)" "$sha" "1 MiB download b->a arrived intact"
	# upload: a's app and a's proxy each send 1 MiB spliced; download: b's
	# proxy sends 1 MiB over the spliced proxy<->proxy leg, a's proxy to a's app
	assert_ge "$(($(e2e_counter "$a1" splice_bytes) - $(e2e_counter "$a0" splice_bytes)))" $((3 * 1048576)) \
		"bytes spliced in a"
	assert_ge "$(($(e2e_counter "$b1" splice_bytes) - $(e2e_counter "$b0" splice_bytes)))" 1048576 \
		"bytes spliced in b"
	assert_eq "$(($(e2e_counter "$a1" splice_miss) + $(e2e_counter "$b1" splice_miss)))" 0 "splice misses"
}

annotations_shape_policy() {
	local a0 b0 a1 b1 hbo hai body
	# b: excludeOutboundPorts 8081 -> b's app reaches a:8081 without b's sidecar
	a0=$(pod_stats a)
	b0=$(pod_stats b)
	hbo=$(hap b out)
	hai=$(hap a in)
	body=$(curl_from b "http://$IP_A:8081/")
	b1=$(pod_stats b)
	assert_match "$body" "^a-8081 $IP_A:" "b -> a:8081 answered (via a's inbound sidecar)"
	assert_eq "$(($(hap b out) - hbo))" 0 "b's outbound sidecar skipped for port 8081"
	assert_eq "$(($(hap a in) - hai))" 1 "a's inbound sidecar still took it"
	assert_eq "$(($(e2e_counter "$b1" bypass_excluded_port) - $(e2e_counter "$b0" bypass_excluded_port)))" 1 \
		"b: bypass_excluded_port"
	# the same port from a (no such annotation) is captured
	hbo=$(hap a out)
	curl_from a "http://$IP_B:8081/" >/dev/null
	assert_eq "$(($(hap a out) - hbo))" 1 "a's outbound sidecar takes port 8081"
	# a: excludeInboundPorts 9090 -> b's sidecar reaches a's app directly
	hai=$(hap a in)
	hbo=$(hap b out)
	body=$(curl_from b "http://$IP_A:9090/")
	a1=$(pod_stats a)
	assert_match "$body" "^a-9090 $IP_B:" "b -> a:9090 reached a's app from b (not a's sidecar)"
	assert_eq "$(($(hap b out) - hbo))" 1 "b's outbound sidecar took it"
	assert_eq "$(($(hap a in) - hai))" 0 "a's inbound sidecar skipped for port 9090"
	assert_ge "$(($(e2e_counter "$a1" inbound_bypass_excluded_port) - $(e2e_counter "$a0" inbound_bypass_excluded_port)))" 1 \
		"a: inbound_bypass_excluded_port"
}

pod_without_sidecar_not_captured() {
	local hco hci hbi hao body err
	err=$(sm_cli -j stats --netns "$(pod_f c ns)" 2>&1 >/dev/null || true)
	assert_match "$err" "not enrolled" "c has no scope"
	hco=$(hap c out)
	hci=$(hap c in)
	hbi=$(hap b in)
	body=$(curl_from c "http://$IP_B:8080/")
	assert_match "$body" "^b-8080 $IP_B:" "c -> b answered (via b's inbound sidecar)"
	assert_eq "$(($(hap c out) - hco))" 0 "c's outbound sidecar not used"
	assert_eq "$(($(hap b in) - hbi))" 1 "b's inbound sidecar still captures"
	hao=$(hap a out)
	body=$(curl_from a "http://$IP_C:8080/")
	assert_match "$body" "^c-8080 $IP_A:" "a -> c reached c's app from a's sidecar (c steers nothing)"
	assert_eq "$(($(hap a out) - hao))" 1 "a's outbound sidecar took it"
	assert_eq "$(($(hap c in) - hci))" 0 "c's inbound sidecar not used"
}

repeated_add_is_idempotent() {
	local s0 s1 st0 st1 out1 out2 hai
	s0=$(scope_of web-a)
	st0=$(pod_stats a)
	out1=$(plugin ADD a)
	out2=$(plugin ADD a)
	s1=$(scope_of web-a)
	st1=$(pod_stats a)
	assert_eq "$out2" "$out1" "the same result twice"
	assert_eq "$(jq -S -c . <<<"$out1")" "$(jq -S -c . <<<"$(cat "$CNI_CACHE/$(pod_f a cid).json")")" \
		"= prevResult"
	assert_eq "$s1" "$s0" "the same enrollment (scope, policy, labels)"
	assert_deltas "$st0" "$st1" "counters kept across re-enrollment"
	hai=$(hap a in)
	curl_from b "http://$IP_A:8080/" >/dev/null
	assert_eq "$(($(hap a in) - hai))" 1 "a's inbound sidecar still registered"
}

config_keys_reach_the_enrolment() {
	local cfg s
	cfg='.proxyUID = 1400 | .proxyGID = 1401 | .inboundPort = 15007 | .splice = false
		| .redirectDNS = true | .dnsServers = ["10.96.0.10"] | .dnsPort = 15054'
	plugin ADD a "$cfg" >/dev/null
	s=$(scope_of web-a)
	assert_eq "$(jq -r '[.proxy_port, .proxy_uid, .proxy_gid, .inbound_port, .splice, .dns_port] | join(" ")' <<<"$s")" \
		"15001 1400 1401 15007 false 15054" "enrollment from the changed config"
	assert_eq "$(plugin CHECK a "$cfg")" "" "CHECK with that config"
	check_err a 103 "proxyUID: enrolled '1400', policy '1337'; proxyGID: enrolled '1401', policy ''; splice: enrolled 'false', policy 'true'; inboundPort: enrolled '15007', policy '15006'; redirectDNS: enrolled 'true', policy 'false'\$" \
		"CHECK with the original config"
	plugin ADD a >/dev/null
	assert_eq "$(plugin CHECK a)" "" "CHECK after ADD with the original config"
}

# ---- the spec versions: pod v, sockmesh-cni alone with a made-up result
# (no bridge: the addresses only key the enrollment)
V_NS="$SM_TAG-v"
V_IP="${SUBNET%.0/24}.251"
V_GW="${SUBNET%.0/24}.1"

# v_result VERSION [ROUTES]: pod v's result as a primary plugin gives it in
# VERSION's format: 0.3.x/0.4.0 with ips[].version; 1.0.0 without; 1.1.0
# also with fields new in 1.1.0 (interface mtu and socketPath, route mtu,
# table, scope). ROUTES replaces the routes.
v_result() {
	jq -nc --arg v "$1" --arg br "$BR" --arg sb "/run/netns/$V_NS" --arg ip "$V_IP/24" \
		--arg gw "$V_GW" --argjson routes "${2:-null}" '
	($v | startswith("0.")) as $old | ($v == "1.1.0") as $new
	| {cniVersion: $v,
	   interfaces: [{name: $br, mac: "0a:58:0a:f4:00:01"} + if $new then {mtu: 1500} else {} end,
	                {name: "eth0", mac: "0a:58:0a:f4:00:fb", sandbox: $sb}
	                + if $new then {mtu: 1500, socketPath: "/run/vhost-v.sock"} else {} end],
	   ips: [(if $old then {version: "4"} else {} end) + {interface: 1, address: $ip, gateway: $gw},
	         (if $old then {version: "6"} else {} end) + {interface: 1, address: "fd00:5a::fb/64"}],
	   routes: ($routes // [{dst: "0.0.0.0/0", gw: $gw}
	                        + if $new then {mtu: 1450, table: 100, scope: 0} else {} end]),
	   dns: {nameservers: ["10.96.0.10"], search: ["shop.svc.cluster.local"]}}'
}

# v_exec COMMAND VERSION PREV_RESULT: sockmesh-cni alone for pod v, the
# config in VERSION with PREV_RESULT (null: none); prints stdout, returns
# the plugin's status
v_exec() {
	local cid rt
	cid=$(cni_container_id v)
	rt=$(jq -nc --arg k "$CNI_CAP_ANN" --arg s "$STATUS" '{($k): {"sidecar.istio.io/status": $s}}')
	cni_plugin_conf "$LIST" "$SM_IDX" "$3" "$rt" | jq -c --arg v "$2" '.cniVersion = $v' |
		cni_exec sockmesh-cni "$1" "$cid" "/run/netns/$V_NS" "$(cni_args shop web-v "$cid")"
}

# v_refused COMMAND VERSION SINCE: the command is not in VERSION: code 1
v_refused() {
	local out rc=0
	out=$(v_exec "$1" "$2" null) || rc=$?
	assert_eq "$rc:$out" \
		"1:{\"cniVersion\":\"$2\",\"code\":1,\"msg\":\"cniVersion: '$2' has no $1 command (CNI $3 and later)\"}" \
		"$2 $1: refused as incompatible"
}

every_spec_version_add_check_del_version() {
	local v c out rc prev other want
	cni_pod v >/dev/null
	for v in $VERSIONS; do
		sm_log "  cniVersion $v"
		# ADD with a result of the config's version: passed on as it is
		prev=$(v_result "$v")
		rc=0
		out=$(v_exec ADD "$v" "$prev") || rc=$?
		assert_eq "$rc:$out" "0:$prev" "$v ADD: prevResult of $v passed on byte for byte"
		assert_eq "$(scope_of web-v | jq -r .pod_name)" web-v "$v ADD: enrolled"
		# ADD again with a result of the other family: converted
		if [[ $v == 0.* ]]; then
			other=$(v_result 1.1.0)
			want=$(v_result "$v" "$(jq -c .routes <<<"$other")")
		else
			other=$(v_result 0.4.0)
			want=$(v_result 1.0.0 | jq -c --arg v "$v" '.cniVersion = $v')
		fi
		rc=0
		out=$(v_exec ADD "$v" "$other") || rc=$?
		assert_eq "$rc:$out" "0:$want" "$v ADD: prevResult of $(jq -r .cniVersion <<<"$other") converted to $v"
		# CHECK with the result ADD gave (what libcni caches)
		if [[ $v == 0.3.* ]]; then
			v_refused CHECK "$v" 0.4.0
		else
			rc=0
			out=$(v_exec CHECK "$v" "$want") || rc=$?
			assert_eq "$rc:$out" "0:" "$v CHECK: passes, no output"
		fi
		if [ "$v" = 1.1.0 ]; then
			for c in STATUS GC; do
				rc=0
				out=$(v_exec "$c" "$v" null) || rc=$?
				assert_eq "$rc:$out" "0:" "$v $c: success, no output"
			done
		else
			v_refused STATUS "$v" 1.1.0
			v_refused GC "$v" 1.1.0
		fi
		rc=0
		out=$(env -i CNI_COMMAND=VERSION "$SM_CNI" <<<"{\"cniVersion\":\"$v\"}") || rc=$?
		assert_eq "$rc:$out" "0:$VERSION_REPLY" "$v VERSION"
		rc=0
		out=$(v_exec DEL "$v" "$want") || rc=$?
		assert_eq "$rc:$out" "0:" "$v DEL: success, no output"
		assert_eq "$(scope_of web-v)" "" "$v DEL: withdrawn"
	done
	# STATUS and GC are about the network: no container variables, and GC's
	# valid-attachments list changes nothing
	out=$(cni_plugin_conf "$LIST" "$SM_IDX" null '{}' |
		jq -c '.cniVersion = "1.1.0" | .["cni.dev/valid-attachments"] = [{containerID: "x", ifname: "eth0"}]' |
		env -i CNI_COMMAND=GC CNI_PATH="$CNI_BINDIR" "$SM_CNI")
	assert_eq "$out" "" "GC with only CNI_COMMAND and CNI_PATH"
	assert_eq "$(sm_cli -j status | jq '.scopes | length')" 2 "GC withdrew nothing (a, b)"
	out=$(cni_plugin_conf "$LIST" "$SM_IDX" null '{}' | jq -c '.cniVersion = "1.1.0"' |
		env -i CNI_COMMAND=STATUS "$SM_CNI")
	assert_eq "$out" "" "STATUS with only CNI_COMMAND"
}

# check_err NAME CODE REGEX LABEL: CHECK (sockmesh-cni only) fails with CODE
check_err() {
	local out rc=0
	out=$(plugin CHECK "$1") || rc=$?
	assert_match "$rc" '^[1-9]' "$4: CHECK exit status"
	assert_eq "$(jq -r .code <<<"$out")" "$2" "$4: error code"
	assert_match "$(jq -r .msg <<<"$out")" "$3" "$4: message"
}

check_passes_then_reports_drift() {
	local p out hai
	for p in a b c; do
		out=$(chain CHECK $p)
		assert_eq "$out" "" "CHECK of the whole chain for $p: no output, success"
	done
	sm_cli enable --netns "$(pod_f a ns)" --attach-cgroup "$CG" --proxy-port 15002 --no-splice >/dev/null
	check_err a 103 "proxyPort: enrolled '15002', policy '15001'; splice: enrolled 'false', policy 'true'; excludeInboundPorts: enrolled '', policy '9090'\$" \
		"a re-enrolled by hand"
	plugin ADD a >/dev/null
	assert_eq "$(plugin CHECK a)" "" "CHECK after ADD restored it"
	sm_cli disable --netns "$(pod_f a ns)" >/dev/null
	check_err a 102 "pod shop/web-a is not enrolled" "a withdrawn by hand"
	plugin ADD a >/dev/null
	assert_eq "$(plugin CHECK a)" "" "CHECK after ADD restored it"
	sm_cli enable --netns "$(pod_f c ns)" --attach-cgroup "$CG" >/dev/null
	check_err c 103 "should be left alone: no sidecar.istio.io/status annotation" "c enrolled by hand"
	sm_cli disable --netns "$(pod_f c ns)" >/dev/null
	assert_eq "$(plugin CHECK c)" "" "CHECK of c after the hand-made enrollment went"
	# the re-enrollment adopted a's running sidecar's inbound listener
	hai=$(hap a in)
	curl_from b "http://$IP_A:8080/" >/dev/null
	assert_eq "$(($(hap a in) - hai))" 1 "a's inbound sidecar captures after re-enrollment"
}

# bad_input CODE REGEX LABEL ENV... -- STDIN: sockmesh-cni alone with this
# env and stdin must print the spec's error JSON and exit non-zero
bad_input() {
	local code=$1 re=$2 label=$3 envs=() out rc=0
	shift 3
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	out=$(printf '%s' "$2" | timeout 30 env -i PATH="$PATH" "${envs[@]}" "$SM_CNI" 2>/dev/null) || rc=$?
	assert_match "$rc" '^[1-9]' "$label: exit status"
	assert_eq "$(jq -c 'keys' <<<"$out")" '["cniVersion","code","msg"]' "$label: error JSON keys"
	assert_eq "$(jq -r .code <<<"$out")" "$code" "$label: code"
	assert_match "$(jq -r .msg <<<"$out")" "$re" "$label: msg"
}

# good_conf: sockmesh-cni's config for a sidecar pod d, as libcni passes it
# (a's result with d's own address and netns: two pods never share one)
good_conf() {
	jq -c --argjson p "$(pod_f a result)" --arg s "$STATUS" --arg ip "${SUBNET%.0/24}.250/24" \
		--arg sb "/run/netns/$SM_TAG-d" '.plugins[1] + {name: .name, cniVersion: .cniVersion,
		prevResult: ($p | .ips[0].address = $ip | .interfaces[2].sandbox = $sb),
		runtimeConfig: {"io.kubernetes.cri.pod-annotations": {"sidecar.istio.io/status": $s}}}' "$LIST"
}

malformed_input_is_rejected_and_enrols_nothing() {
	local out rc=0 cid ns n0 good env ann
	n0=$(sm_cli -j status | jq '.scopes | length')
	# a pod whose annotation is bad: bridge's ADD ran, ours fails, and the
	# runtime then DELs the chain (host-local must release the address)
	ns=$(cni_pod d)
	cid=$(cni_container_id d)
	ann=$(jq -nc --arg s "$STATUS" '{"sidecar.istio.io/status": $s,
		"traffic.sidecar.istio.io/excludeOutboundPorts": "80,abc"}')
	out=$(cni_chain ADD "$LIST" "$cid" "/run/netns/$ns" "$(cni_args shop web-d "$cid")" "$ann") || rc=$?
	assert_match "$rc" '^[1-9]' "chain ADD with a bad annotation: exit status"
	assert_eq "$(jq -r .code <<<"$out")" 101 "bad annotation: code"
	assert_match "$(jq -r .msg <<<"$out")" "traffic.sidecar.istio.io/excludeOutboundPorts: 'abc'" \
		"bad annotation: msg names the key and the value"
	assert_eq "$(scope_of web-d)" "" "web-d not enrolled"
	assert_eq "$(ipam_count)" 4 "bridge's ADD did allocate (a, b, c, d)"
	cni_chain DEL "$LIST" "$cid" "/run/netns/$ns" "$(cni_args shop web-d "$cid")" "$ann" >/dev/null
	assert_eq "$(ipam_count)" 3 "the runtime's DEL released d's address"

	good=$(good_conf)
	env=(CNI_COMMAND=ADD "CNI_CONTAINERID=$cid" "CNI_NETNS=/run/netns/$ns" CNI_IFNAME=eth0
		"CNI_PATH=$CNI_BINDIR" "CNI_ARGS=$(cni_args shop web-d "$cid")")
	bad_input 6 "not valid JSON" "truncated JSON" "${env[@]}" -- '{"cniVersion": "1.0.0", "name": '
	bad_input 6 "not valid JSON" "single quotes" "${env[@]}" -- "{'cniVersion': '1.0.0'}"
	bad_input 6 "not valid JSON: unexpected character at offset" "trailing data" "${env[@]}" -- "$good x"
	bad_input 6 "not a JSON object" "an array" "${env[@]}" -- '[]'
	bad_input 6 "no network config" "empty stdin" "${env[@]}" -- ''
	bad_input 1 "cniVersion: '0.2.0' is not supported \\(supported: 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0\\)\$" \
		"old cniVersion" "${env[@]}" -- "$(jq -c '.cniVersion = "0.2.0"' <<<"$good")"
	bad_input 1 "cniVersion: '2.0.0' is not supported" "unknown cniVersion" "${env[@]}" -- \
		"$(jq -c '.cniVersion = "2.0.0"' <<<"$good")"
	bad_input 1 "cniVersion: missing" "no cniVersion" "${env[@]}" -- "$(jq -c 'del(.cniVersion)' <<<"$good")"
	bad_input 7 "prevResult: missing" "no prevResult" "${env[@]}" -- "$(jq -c 'del(.prevResult)' <<<"$good")"
	bad_input 1 "prevResult.cniVersion: '0.2.0' is not supported" "prevResult of an old version" \
		"${env[@]}" -- "$(jq -c '.prevResult.cniVersion = "0.2.0"' <<<"$good")"
	bad_input 7 "prevResult.cniVersion: 1 is not a string" "prevResult.cniVersion a number" \
		"${env[@]}" -- "$(jq -c '.prevResult.cniVersion = 1' <<<"$good")"
	bad_input 7 "prevResult.ips\\[0\\].address: 'nope' is not" "bad address in a prevResult to convert" \
		"${env[@]}" -- "$(jq -c '.cniVersion = "0.4.0" | .prevResult.ips[0].address = "nope"' <<<"$good")"
	bad_input 7 "prevResult.ips\\[0\\].address: 'nope' is not" "bad prevResult" "${env[@]}" -- \
		"$(jq -c '.prevResult.ips[0].address = "nope"' <<<"$good")"
	bad_input 7 "proxyPort: '15001' is not a port" "proxyPort as a string" "${env[@]}" -- \
		"$(jq -c '.proxyPort = "15001"' <<<"$good")"
	bad_input 7 "includeOutboundIPRanges: '10.0.0.0/33' has prefix length 33" "bad CIDR in the config" \
		"${env[@]}" -- "$(jq -c '.includeOutboundIPRanges = "10.0.0.0/33"' <<<"$good")"
	bad_input 7 "redirectDNS: give dnsServers" "redirectDNS without resolvers" "${env[@]}" -- \
		"$(jq -c '.redirectDNS = true' <<<"$good")"
	bad_input 7 'captureAllDNS: needs "redirectDNS": true' "captureAllDNS alone" "${env[@]}" -- \
		"$(jq -c '.captureAllDNS = true' <<<"$good")"
	bad_input 7 "excludeNamespaces: 'kube-system' is not an array" "excludeNamespaces not a list" \
		"${env[@]}" -- "$(jq -c '.excludeNamespaces = "kube-system"' <<<"$good")"
	bad_input 7 "attachCgroup: " "attachCgroup not a cgroup" "${env[@]}" -- \
		"$(jq -c '.attachCgroup = "/nonexistent-sockmesh-test"' <<<"$good")"
	bad_input 7 "runtimeConfig.io.kubernetes.cri.pod-annotations: \\[\\] is not an object" \
		"annotations not an object" "${env[@]}" -- \
		"$(jq -c '.runtimeConfig["io.kubernetes.cri.pod-annotations"] = []' <<<"$good")"
	bad_input 101 "sockmesh.io/capture: 'maybe' is not" "bad sockmesh.io/capture" "${env[@]}" -- \
		"$(jq -c '.runtimeConfig["io.kubernetes.cri.pod-annotations"]["sockmesh.io/capture"] = "maybe"' <<<"$good")"
	bad_input 101 "includeOutboundIPRanges: '300.1.1.1/8'" "bad CIDR annotation" "${env[@]}" -- \
		"$(jq -c '.runtimeConfig["io.kubernetes.cri.pod-annotations"]["traffic.sidecar.istio.io/includeOutboundIPRanges"] = "300.1.1.1/8"' <<<"$good")"
	bad_input 4 "CNI_NETNS is not set" "no CNI_NETNS" "${env[@]/CNI_NETNS=*/CNI_NETNS=}" -- "$good"
	bad_input 4 "CNI_NETNS: unknown network namespace '/run/netns/$SM_TAG-nope'" \
		"CNI_NETNS that does not exist" "${env[@]/CNI_NETNS=*/CNI_NETNS=/run/netns/$SM_TAG-nope}" -- "$good"
	bad_input 4 "CNI_CONTAINERID: '-x' is not a container id" "bad CNI_CONTAINERID" \
		"${env[@]/CNI_CONTAINERID=*/CNI_CONTAINERID=-x}" -- "$good"
	bad_input 4 "CNI_ARGS: 'garbage' is not a KEY=VALUE pair" "bad CNI_ARGS" \
		"${env[@]/CNI_ARGS=*/CNI_ARGS=K8S_POD_NAME=x;garbage}" -- "$good"
	bad_input 4 "CNI_COMMAND: 'PUT' is not ADD, DEL, CHECK, STATUS, GC or VERSION\$" "unknown CNI_COMMAND" "${env[@]/CNI_COMMAND=*/CNI_COMMAND=PUT}" -- "$good"
	assert_eq "$(sm_cli -j status | jq '.scopes | length')" "$n0" "scopes after all that"
	assert_eq "$(scope_of web-d)" "" "web-d not enrolled"
	# and the good input does enroll (the cases above differ only in what is bad)
	out=$(printf '%s' "$good" | timeout 30 env -i PATH="$PATH" "${env[@]}" "$SM_CNI")
	assert_eq "$(jq -r '.cniVersion + " " + (.ips | length | tostring)' <<<"$out")" "1.0.0 1" "the good input"
	assert_eq "$(scope_of web-d | jq -r .pod_name)" web-d "web-d enrolled by the good input"
	out=$(printf '%s' "$good" | timeout 30 env -i PATH="$PATH" "${env[@]/CNI_COMMAND=*/CNI_COMMAND=DEL}" "$SM_CNI")
	assert_eq "$out$(scope_of web-d)" "" "DEL withdrew web-d"
}

# install_into VERSION_KEYS: `install-cni.sh` (`sockmesh cni-install`) into
# a conf dir of its own holding one conflist with VERSION_KEYS (JSON object
# members); prints the exit status; the conflist as it was is kept in orig
install_into() {
	local d="$TMP/install" rc=0
	rm -rf "$d"
	mkdir -p "$d/net" "$d/bin"
	printf '{%s"name": "k8s-pod-network",\n "plugins": [{"type": "bridge", "bridge": "cni0"}]}\n' "$1" \
		>"$d/net/10-net.conflist"
	cp "$d/net/10-net.conflist" "$d/orig"
	"$SM_ROOT/deploy/install-cni.sh" --cni-bin-dir "$d/bin" --cni-conf-dir "$d/net" \
		--plugin-bin "$SM_CNI" --plugin-conf '{"type": "sockmesh-cni"}' >"$d/out" 2>"$d/err" || rc=$?
	echo "$rc"
}

cni_install_refuses_versions_not_served() {
	local d="$TMP/install" v f="$TMP/install/net/10-net.conflist"
	local served="sockmesh-cni serves 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"
	for v in 0.2.0 2.0.0; do
		assert_eq "$(install_into "\"cniVersion\": \"$v\", ")" 1 "cniVersion $v: exit status"
		assert_eq "$(cat "$d/err")" \
			"sockmesh: cni-install: $f has cniVersion '$v': $served, so every ADD would fail; not chained" \
			"cniVersion $v: the message names the file and its cniVersion"
		assert_eq "$(cmp -s "$d/orig" "$f" && echo identical)" identical "cniVersion $v: conflist byte-identical"
		assert_eq "$(find "$d/net" -mindepth 1 | wc -l)" 1 "cniVersion $v: nothing else in the conf dir"
	done
	# a runtime that knows cniVersions uses the highest listed
	assert_eq "$(install_into '"cniVersion": "1.0.0", "cniVersions": ["1.0.0", "2.0.0"], ')" 1 \
		"cniVersions up to 2.0.0: exit status"
	assert_eq "$(cat "$d/err")" \
		"sockmesh: cni-install: $f lists '2.0.0' in cniVersions, the version runtimes that know it use: $served, so their ADDs would fail; not chained" \
		"cniVersions up to 2.0.0: message"
	assert_eq "$(cmp -s "$d/orig" "$f" && echo identical)" identical "cniVersions up to 2.0.0: conflist byte-identical"
	assert_eq "$(install_into '')" 1 "no cniVersion: exit status"
	assert_eq "$(cat "$d/err")" "sockmesh: cni-install: $f has no cniVersion (0.1.0 implied): $served; not chained" \
		"no cniVersion: message"
	assert_eq "$(cmp -s "$d/orig" "$f" && echo identical)" identical "no cniVersion: conflist byte-identical"
	# versions served are chained
	for v in '"cniVersion": "0.3.1", ' '"cniVersion": "1.0.0", "cniVersions": ["0.2.0", "1.1.0"], '; do
		assert_eq "$(install_into "$v")" 0 "$v: exit status ($(cat "$d/err"))"
		assert_eq "$(jq -r '[.plugins[].type] | join(",")' "$f")" bridge,sockmesh-cni "$v: chained"
	done
}

# Issue 11 item 1: the installed plugin is one static binary. In a chroot
# that holds nothing but it (and the kernel's own filesystems every node
# has, where the node has them: /proc, /sys with the bpffs and the cgroup2
# mount, the netns files) it runs VERSION, DEL, ADD and CHECK for pod a, as
# outside.
ROOTFS=$TMP/rootfs
rootfs_down() {
	local m
	for m in proc sys run/netns; do
		if mountpoint -q "$ROOTFS/$m"; then umount -R -l "$ROOTFS/$m"; fi
	done
	return 0
}
plugin_chrooted() {
	local prev rt
	prev=$(cat "$CNI_CACHE/$(pod_f "$2" cid).json")
	rt=$(jq -nc --arg k "$CNI_CAP_ANN" --argjson a "$(pod_f "$2" ann)" '{($k): $a}')
	cni_plugin_conf "$LIST" "$SM_IDX" "$prev" "$rt" |
		timeout 30 nsenter "--net=/run/netns/$CNI_NODE" -- env -i CNI_COMMAND="$1" \
			CNI_CONTAINERID="$(pod_f "$2" cid)" CNI_NETNS="/run/netns/$(pod_f "$2" ns)" \
			CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin CNI_ARGS="$(pod_f "$2" args)" \
			/usr/sbin/chroot "$ROOTFS" /sockmesh-cni 2>>"$TMP/cni.stderr"
}
static_plugin_runs_in_an_empty_chroot() {
	local bin=$CNI_BINDIR/sockmesh-cni out cg2 rc
	assert_eq "$(readelf -lW "$bin" | grep -c 'INTERP\|DYNAMIC' || true)" 0 \
		"program interpreter and dynamic section of the installed plugin"
	cg2=$(sm_cg2_root)
	sm_on_cleanup rootfs_down
	mkdir -p "$ROOTFS/proc" "$ROOTFS/sys" "$ROOTFS/run/netns"
	cp "$bin" "$ROOTFS/sockmesh-cni"
	assert_eq "$(find "$ROOTFS" -type f | wc -l)" 1 "files in the chroot (before the kernel's mounts)"
	mount -t proc proc "$ROOTFS/proc"
	mount -t sysfs sysfs "$ROOTFS/sys"
	mount --bind /sys/fs/bpf "$ROOTFS/sys/fs/bpf"
	# the cgroup2 mount where the host has it (a hybrid host's
	# /sys/fs/cgroup/unified lives in a tmpfs at /sys/fs/cgroup)
	[ -d "$ROOTFS$cg2" ] || mount -t tmpfs tmpfs "$ROOTFS$(dirname "$cg2")"
	mkdir -p "$ROOTFS$cg2"
	mount --bind "$cg2" "$ROOTFS$cg2"
	# each netns file is a mount of its own: recursive, and no unmount
	# propagates back
	mount --rbind --make-rslave /run/netns "$ROOTFS/run/netns"
	out=$(printf '{"cniVersion": "1.1.0"}' | env -i CNI_COMMAND=VERSION /usr/sbin/chroot "$ROOTFS" /sockmesh-cni)
	assert_eq "$(jq -c .supportedVersions <<<"$out")" '["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]' "VERSION"
	plugin_chrooted DEL a >/dev/null
	assert_eq "$(scope_of web-a)" "" "pod a after DEL in the chroot"
	out=$(plugin_chrooted ADD a) || { sm_log "    ADD in the chroot: $out $(tail -2 "$TMP/cni.stderr")"; return 1; }
	assert_eq "$(jq -c . <<<"$out")" "$(jq -c . "$CNI_CACHE/$(pod_f a cid).json")" "ADD output (prevResult)"
	assert_eq "$(scope_of web-a | jq -r .pod_name)" web-a "pod a enrolled by ADD in the chroot"
	rc=0
	plugin_chrooted CHECK a >/dev/null || rc=$?
	assert_eq "$rc" 0 "CHECK in the chroot: exit status"
	assert_match "$(curl_from a "http://$IP_B:8080/")" "^b-8080 $IP_B:" "pod a's request through the sidecars again"
	rootfs_down
}

del_withdraws_and_releases() {
	local v0 out
	v0=$(node_veths)
	assert_eq "$(ipam_has "$IP_A")" held "host-local holds a's address before DEL"
	out=$(chain DEL a)
	assert_eq "$out" "" "DEL a: no output, success"
	assert_eq "$(scope_of web-a)" "" "a withdrawn"
	assert_eq "$(ipam_has "$IP_A")" free "host-local released a's address"
	assert_eq "$(node_veths)" "$((v0 - 1))" "bridge removed a's veth"
	assert_eq "$(ip -n "$(pod_f a ns)" -o link show eth0 2>/dev/null | wc -l)" 0 "a's eth0 gone"
	out=$(chain DEL a)
	assert_eq "$out" "" "DEL a again: success"
	out=$(cni_chain DEL "$LIST" "$(cni_container_id never)" "/run/netns/$SM_TAG-never" \
		"$(cni_args shop never "$(cni_container_id never)")" '{}')
	assert_eq "$out" "" "DEL of a pod never seen: success"
	assert_match "$(scope_of web-b | jq -r .pod_name)" web-b "b still enrolled"
}

del_after_netns_gone() {
	local ns pids out p
	ns=$(pod_f b ns)
	# the pod's processes end, then its netns goes (a node reboot, a crash)
	pids=$(ip netns pids "$ns" | xargs)
	for p in $pids; do sm_stop "$p"; done
	ip netns del "$ns"
	assert_eq "$([ -e "/run/netns/$ns" ] && echo exists || echo gone)" gone "b's netns"
	out=$(chain DEL b)
	assert_eq "$out" "" "DEL b with its netns gone: success"
	assert_eq "$(scope_of web-b)" "" "b withdrawn (found by its container id label)"
	assert_eq "$(ipam_has "$IP_B")" free "host-local released b's address"
	# an empty CNI_NETNS (the runtime lost it) works too
	out=$(cni_chain DEL "$LIST" "$(pod_f c cid)" "" "$(pod_f c args)" "$(pod_f c ann)")
	assert_eq "$out" "" "DEL c with CNI_NETNS empty: success"
	assert_eq "$(ipam_has "$IP_C")" free "host-local released c's address"
}

last_del_unloads_everything() {
	assert_eq "$([ -e "$PIN" ] && echo exists || echo gone)" gone "pin dir after the last DEL"
	assert_eq "$(e2e_cgroup_progs "$CG")" 0 "programs attached at the test cgroup"
	assert_eq "$(chain DEL b)" "" "DEL with nothing loaded: success"
}

e2e_subtest version_reports_every_version version_reports_every_version
e2e_subtest add_enrols_sidecar_pods_with_labels add_enrols_sidecar_pods_with_labels
e2e_subtest add_passes_prev_result_through add_passes_prev_result_through
e2e_subtest pod_to_pod_through_both_sidecars_spliced pod_to_pod_through_both_sidecars_spliced
e2e_subtest pod_to_pod_bulk_transfer_intact pod_to_pod_bulk_transfer_intact
e2e_subtest annotations_shape_policy annotations_shape_policy
e2e_subtest pod_without_sidecar_not_captured pod_without_sidecar_not_captured
e2e_subtest repeated_add_is_idempotent repeated_add_is_idempotent
e2e_subtest config_keys_reach_the_enrolment config_keys_reach_the_enrolment
e2e_subtest check_passes_then_reports_drift check_passes_then_reports_drift
e2e_subtest every_spec_version_add_check_del_version every_spec_version_add_check_del_version
e2e_subtest malformed_input_is_rejected_and_enrols_nothing malformed_input_is_rejected_and_enrols_nothing
e2e_subtest pods_left_alone_but_add_succeeds pods_left_alone_but_add_succeeds
e2e_subtest cni_install_refuses_versions_not_served cni_install_refuses_versions_not_served
e2e_subtest static_plugin_runs_in_an_empty_chroot static_plugin_runs_in_an_empty_chroot
e2e_subtest del_withdraws_and_releases del_withdraws_and_releases
e2e_subtest del_after_netns_gone del_after_netns_gone
e2e_subtest last_del_unloads_everything last_del_unloads_everything
e2e_finish
