# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# shellcheck disable=SC2034 # globals set here are read by the test files
# CNI helpers for the e2e tests: a small libcni (runs a conflist's plugins
# per the CNI spec, as containerd does), pods made by it inside a "node"
# netns, and a two-way HAProxy sidecar. Source after lib.sh and e2e_init.
#
# Nothing touches the host netns: the bridge, the host-side veths and the
# plugins' own netns work all live in $CNI_NODE, a netns of the test.

CNI_REF_BIN=${CNI_REF_BIN:-/usr/lib/cni}
SM_CNI=${SM_CNI:-$SM_BUILD/user/cni/sockmesh-cni}
CNI_CAP_ANN=io.kubernetes.cri.pod-annotations

# cni_init CONFLIST_TEMPLATE_VARS...: the node netns ($CNI_NODE), a plugin
# dir ($CNI_BINDIR: the reference plugins + ours), the result cache
# ($CNI_CACHE, as libcni keeps in /var/lib/cni/results) and plugin stderr
# ($TMP/cni.stderr).
cni_init() {
	local p
	[ -x "$SM_CNI" ] || sm_die "sockmesh-cni not built: $SM_CNI (ninja -C build)"
	for p in bridge host-local loopback; do
		[ -x "$CNI_REF_BIN/$p" ] || sm_die "reference CNI plugin missing: $CNI_REF_BIN/$p (apt-get install containernetworking-plugins)"
	done
	CNI_NODE=$(sm_netns node)
	CNI_BINDIR="$TMP/cni-bin"
	CNI_CACHE="$TMP/cni-cache"
	mkdir -p "$CNI_BINDIR" "$CNI_CACHE"
	for p in bridge host-local loopback; do ln -s "$CNI_REF_BIN/$p" "$CNI_BINDIR/$p"; done
	ln -s "$SM_CNI" "$CNI_BINDIR/sockmesh-cni"
	: >"$TMP/cni.stderr"
}

# cni_container_id NAME: a containerd-like sandbox id (64 hex digits)
cni_container_id() { printf '%s' "$SM_TAG-$1" | sha256sum | cut -c1-64; }

# cni_exec TYPE COMMAND CID NETNS CNI_ARGS < CONF: exec one plugin per the
# spec, inside the node netns. The reference plugins run under
# `ip netns exec`, as a node's runtime would see them; sockmesh-cni under
# `nsenter --net`, because `ip netns exec` remounts /sys and so hides the
# host's bpffs and cgroup2 mounts, which containerd's plugins do see.
cni_exec() {
	local type=$1 cmd=$2 cid=$3 netns=$4 args=$5 pre
	if [ "$type" = sockmesh-cni ]; then
		pre=(nsenter "--net=/run/netns/$CNI_NODE" --)
	else
		pre=(ip netns exec "$CNI_NODE")
	fi
	timeout 30 "${pre[@]}" env -i PATH="$PATH" CNI_COMMAND="$cmd" CNI_CONTAINERID="$cid" \
		CNI_NETNS="$netns" CNI_IFNAME=eth0 CNI_PATH="$CNI_BINDIR" CNI_ARGS="$args" \
		"$CNI_BINDIR/$type" 2>>"$TMP/cni.stderr"
}

# cni_plugin_conf CONFLIST I PREV RUNTIME: plugin I of the list as libcni
# hands it over: the list's name and cniVersion injected, prevResult (unless
# PREV is null), and runtimeConfig holding only the capabilities the plugin
# declares.
cni_plugin_conf() {
	jq -c --argjson i "$2" --argjson prev "$3" --argjson rt "$4" '
		. as $l | .plugins[$i] + {name: $l.name, cniVersion: $l.cniVersion}
		| if $prev == null then . else . + {prevResult: $prev} end
		| (.capabilities // {}) as $caps
		| ([$rt | to_entries[] | select($caps[.key] == true)] | from_entries) as $inj
		| if ($inj | length) > 0 then . + {runtimeConfig: $inj} else . end' "$1"
}

# cni_args NS NAME CID: CNI_ARGS as containerd's CRI plugin sets them (the
# pod UID made up from CID)
cni_args() {
	printf 'IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=%s' \
		"$1" "$2" "$3" "${3:0:8}-${3:8:4}-${3:12:4}-${3:16:4}-${3:20:12}"
}

# cni_chain COMMAND CONFLIST CID NETNS CNI_ARGS ANNOTATIONS_JSON: run the
# conflist like libcni: ADD in order, each plugin getting the previous one's
# result (the last result is cached and printed); CHECK in order and DEL in
# reverse order with the cached result as prevResult (DEL drops the cache).
# Stops at the first failing plugin: its error JSON on stdout, its status
# returned.
cni_chain() {
	local cmd=$1 list=$2 cid=$3 netns=$4 args=$5 ann=$6 n i rt prev out rc=0 type order
	n=$(jq '.plugins | length' "$list")
	rt=$(jq -nc --arg k "$CNI_CAP_ANN" --argjson a "$ann" '{($k): $a}')
	prev=null
	[ "$cmd" != ADD ] && [ -f "$CNI_CACHE/$cid.json" ] && prev=$(cat "$CNI_CACHE/$cid.json")
	if [ "$cmd" = DEL ]; then order=$(seq $((n - 1)) -1 0); else order=$(seq 0 $((n - 1))); fi
	for i in $order; do
		type=$(jq -r --argjson i "$i" '.plugins[$i].type' "$list")
		out=$(cni_plugin_conf "$list" "$i" "$prev" "$rt" | cni_exec "$type" "$cmd" "$cid" "$netns" "$args") || rc=$?
		if [ "$rc" != 0 ]; then
			printf '%s\n' "$out"
			return "$rc"
		fi
		[ "$cmd" = ADD ] && prev=$out
	done
	case $cmd in
	ADD)
		printf '%s\n' "$prev" >"$CNI_CACHE/$cid.json"
		printf '%s\n' "$prev"
		;;
	DEL) rm -f "$CNI_CACHE/$cid.json" ;;
	esac
}

# cni_loopback COMMAND CID NETNS: containerd's separate loopback network
cni_loopback() {
	jq -nc '{cniVersion: "1.0.0", name: "cni-loopback", type: "loopback"}' |
		cni_exec loopback "$1" "$2" "$3" "" >/dev/null
}

# cni_pod NAME: a pod sandbox netns as containerd makes it (lo down until
# the loopback plugin runs), removed on cleanup; prints its name.
cni_pod() {
	local n="$SM_TAG-$1"
	ip netns add "$n" || sm_die "cannot create netns $n"
	_sm_record netns "$n"
	ip netns exec "$n" sysctl -qw net.ipv4.ip_local_port_range="$E2E_EPHEMERAL"
	echo "$n"
}

# cni_pod_ip RESULT_JSON: the pod's IPv4 address from a CNI result
cni_pod_ip() { jq -r '[.ips[] | select(.address | test("^[0-9.]+/"))][0].address | sub("/.*"; "")' <<<"$1"; }

# cni_haproxy_start NAME CGROUP NETNS: HAProxy as a pod's sidecar: "out" on
# 127.0.0.1:15001 and "in" on 127.0.0.1:15006, both forwarding to the
# original destination (SO_ORIGINAL_DST, else the accepted socket's local
# address). Files as e2e_haproxy_run.
cni_haproxy_start() {
	e2e_haproxy_run "$1" "$2" "$3" "listen out
    bind 127.0.0.1:15001
    tcp-request connection reject if { dst_port 15001 } { dst 127.0.0.0/8 ::1 }
    server orig 0.0.0.0:0
listen in
    bind 127.0.0.1:15006
    server orig 0.0.0.0:0" 127.0.0.1:15001 127.0.0.1:15006
}

# cni_haproxy_sessions NAME FRONTEND: sessions of HAProxy NAME's "out" or "in"
cni_haproxy_sessions() { e2e_haproxy_sessions "$1" "$2"; }
