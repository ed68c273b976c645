#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# sockmeshd --cni-conf-dir: the daemon keeps sockmesh-cni chained into the
# node's CNI configuration while the primary CNI rewrites it. A conf dir of
# the test holds a bridge + host-local conflist, chained once by `sockmesh
# cni-install` (the init container's step); the daemon then watches it. In a
# loop the conflist loses the entry as a primary CNI would lose it (a new
# file renamed over it, as Calico does on restart; a differently named file
# that sorts first, the old one deleted; truncated and written in place);
# after each the daemon has chained the entry again within 5 s, and a new
# pod ADDed through the file as it is now is enrolled. One repair per
# rewrite (/metrics, log), none for the daemon's own writes. A conflist of a
# version sockmesh-cni cannot serve, and a single-plugin .conf, are logged
# once and left byte-identical, the daemon keeps running; a conf dir removed
# and made again is watched again. The pods are
# DELed. `sockmesh uninstall` refuses while the daemon runs; SIGTERM leaves
# the conflist as it is; uninstall then takes the entry out, and a further
# rewrite is left alone.
#
# The daemon listens on 127.0.0.1 inside a netns of ours (nsenter --net, as
# test_daemon.sh: ip netns exec would hide bpffs and cgroup2 from it).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=cni_lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/cni_lib.sh"

SM_DAEMON=${SM_DAEMON:-$SM_BUILD/user/daemon/sockmeshd}
MPORT=15095
ROUNDS=${CNI_WATCH_ROUNDS:-21} # rewrites, a third of each kind

e2e_init cni_watch
e2e_need_sockmesh
[ -x "$SM_DAEMON" ] || sm_die "sockmeshd not built: $SM_DAEMON (ninja -C build)"
cni_init
CG=$(sm_cgroup cniw)
PIN=$(sm_pindir pin)
DNS=$(sm_netns dmn)
STATE="$TMP/run/sockmeshd.json"
LOG="$TMP/sockmeshd.log"
CONF="$TMP/net.d"
mkdir -p "$CONF"
BR="smbw$$"
SUBNET="10.$(($$ % 200 + 20)).$(($$ / 200 % 250)).0/24"
STATUS='{"initContainers":["istio-init"],"containers":["istio-proxy"],"revision":"default"}'
ANN=$(jq -nc --arg s "$STATUS" '{"sidecar.istio.io/status": $s}')
# the primary CNI's conflist (no sockmesh-cni), and the entry to chain
jq -n --arg br "$BR" --arg subnet "$SUBNET" --arg ipam "$TMP/ipam" '{
	cniVersion: "1.0.0", name: "smwatch",
	plugins: [
		{type: "bridge", bridge: $br, isGateway: true, ipMasq: false,
		 ipam: {type: "host-local", ranges: [[{subnet: $subnet}]], dataDir: $ipam}}
	]}' >"$TMP/primary.json"
ENTRY=$(jq -nc --arg pin "$PIN" --arg cg "$CG" '{type: "sockmesh-cni", pinDir: $pin,
	attachCgroup: $cg, capabilities: {"io.kubernetes.cri.pod-annotations": true}}')
# the name of the conflist in use (it changes when one that sorts first replaces it)
echo 90-net.conflist >"$TMP/cur"
cp "$TMP/primary.json" "$CONF/90-net.conflist"
: >"$TMP/pods"

# ------------------------------------------------------------------ helpers

cur() { cat "$TMP/cur"; }
http() { ip netns exec "$DNS" curl -sS --fail --max-time 10 "http://127.0.0.1:$MPORT$1"; }
http_code() {
	ip netns exec "$DNS" curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$MPORT$1" || true
}
# metric NAME: the value of an unlabelled sample
metric() { http /metrics | awk -v n="$1" '$1 == n { print $2 }'; }
# log_count MSG_PREFIX: the daemon's JSON log lines whose msg starts so
log_count() {
	jq -R --arg p "$1" 'fromjson? // empty | select(.msg | startswith($p))' "$LOG" | jq -s length
}
# chained FILE: sockmesh-cni is the last plugin of FILE, with our entry
chained() {
	jq -e --argjson e "$ENTRY" '.plugins[-1] == $e and ([.plugins[] | select(.type == "sockmesh-cni")] | length) == 1' \
		"$1" >/dev/null 2>&1
}
# wait_chained FILE: max 5 s
wait_chained() {
	local _
	for _ in $(seq 50); do
		chained "$1" && return 0
		sleep 0.1
	done
	chained "$1"
}

daemon_start() {
	local pid _
	nsenter --net="/run/netns/$DNS" "$SM_DAEMON" --pin-dir "$PIN" --attach-cgroup "$CG" \
		--listen "127.0.0.1:$MPORT" --state-file "$STATE" --gc-interval 1 \
		--cni-conf-dir "$CONF" --cni-plugin-conf "$ENTRY" >>"$LOG" 2>&1 </dev/null &
	pid=$!
	sm_track "$pid"
	echo "$pid" >"$TMP/daemon.pid"
	for _ in $(seq 100); do
		[ "$(http_code /healthz)" = 200 ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	sm_die "sockmeshd did not become healthy: $(tail -5 "$LOG")"
}
daemon_pid() { cat "$TMP/daemon.pid"; }
forget_pid() {
	grep -vxF -- "$1" "$SM_STATE/pids" >"$SM_STATE/pids.new" || true
	mv -f "$SM_STATE/pids.new" "$SM_STATE/pids"
}

# The three ways a primary CNI drops our entry (each file without it)
rewrite_rename() {
	cp "$TMP/primary.json" "$CONF/calico.tmp"
	mv -f "$CONF/calico.tmp" "$CONF/$(cur)"
}
rewrite_replace() {
	local old new
	old=$(cur)
	new="$(printf '%02d' $((${old%%-*} - 1)))-net.conflist"
	cp "$TMP/primary.json" "$CONF/$new"
	echo "$new" >"$TMP/cur"
	rm -f "$CONF/$old"
}
rewrite_in_place() { cat "$TMP/primary.json" >"$CONF/$(cur)"; }

# pod_add NAME: a pod ADDed through the conflist as it is now; prints nothing
pod_add() {
	local ns cid args res
	ns=$(cni_pod "$1")
	cid=$(cni_container_id "$1")
	args=$(cni_args shop "$1" "$cid")
	printf '%s %s %s\n' "$1" "$ns" "$cid" >>"$TMP/pods"
	cni_loopback ADD "$cid" "/run/netns/$ns" || sm_die "loopback ADD for $1"
	res=$(cni_chain ADD "$CONF/$(cur)" "$cid" "/run/netns/$ns" "$args" "$ANN") ||
		sm_die "ADD of pod $1 failed: $res"
}
# enrolled NAME NETNS: `sockmesh -j status` lists the pod's netns scope
enrolled() {
	sm_cli -j status | jq -e --arg p "$1" --arg ns "$2" \
		'any(.scopes[]; .pod_name == $p and .kind == "netns" and (.name | endswith($ns)))' >/dev/null
}

# ------------------------------------------------------------- subtests

installed_then_watched() {
	assert_eq "$(chained "$CONF/$(cur)" && echo yes)" yes "cni-install chained the entry"
	assert_eq "$(jq -r .cni_conf_dir "$STATE")" "$CONF" "state file: cni_conf_dir"
	assert_eq "$(jq -r .cni_watch "$STATE")" true "state file: cni_watch"
	assert_eq "$(metric sockmesh_cni_watch)" 1 "sockmesh_cni_watch"
	sleep 2.5 # two periodic checks
	assert_eq "$(metric sockmesh_cni_rechains_total)" 0 "nothing to repair after cni-install"
	assert_eq "$(log_count re-chained)" 0 "no repair logged"
}

rewrites_repaired_pods_captured() {
	local i kind f n
	for i in $(seq 1 "$ROUNDS"); do
		case $((i % 3)) in
		1) kind=rename ;;
		2) kind=replace ;;
		0) kind=in_place ;;
		esac
		"rewrite_$kind"
		f="$CONF/$(cur)"
		if ! wait_chained "$f"; then
			sm_log "    conflist: $(jq -c . "$f")"
			assert_eq "not chained" chained "round $i ($kind): re-chained within 5 s"
		fi
		assert_eq "$(smc_first)" "$(cur)" "round $i ($kind): the first configuration"
		pod_add "w$i"
		n=$(awk -v p="w$i" '$1 == p { print $2 }' "$TMP/pods")
		if ! enrolled "w$i" "$n"; then
			assert_eq "not enrolled" enrolled "round $i ($kind): pod w$i enrolled"
		fi
		sm_log "    ok   round $i ($kind): re-chained into $(cur), pod w$i enrolled"
	done
	sleep 2.5 # the daemon's own writes and periodic checks repair nothing
	assert_eq "$(metric sockmesh_cni_rechains_total)" "$ROUNDS" "sockmesh_cni_rechains_total = rewrites"
	assert_eq "$(log_count "re-chained sockmesh-cni into")" "$ROUNDS" "repairs logged = rewrites"
	assert_eq "$(jq -R 'fromjson? // empty | select(.msg | startswith("re-chained")) | .reason' "$LOG" | sort -u | xargs)" \
		"the conflist has no sockmesh-cni entry" "reason logged"
	assert_eq "$(find "$CONF" -name '.*' | wc -l)" 0 "no temp file left in the conf dir"
}

# smc_first: the configuration a runtime uses (byte order)
smc_first() {
	find "$CONF" -maxdepth 1 -type f \( -name '*.conf' -o -name '*.conflist' -o -name '*.json' \) \
		! -name '.*' -printf '%f\n' | LC_ALL=C sort | head -1
}

unsupported_left_alone() {
	local pid n0 l0 f
	pid=$(daemon_pid)
	n0=$(metric sockmesh_cni_rechains_total)
	l0=$(log_count "cni watch: cannot keep")
	f="$CONF/$(cur)"
	jq '.cniVersion = "0.2.0"' "$TMP/primary.json" >"$TMP/old.json"
	cp "$TMP/old.json" "$CONF/calico.tmp"
	mv -f "$CONF/calico.tmp" "$f"
	sleep 1
	kill -HUP "$pid"
	sleep 2.5
	assert_eq "$(cmp -s "$TMP/old.json" "$f" && echo identical)" identical "cniVersion 0.2.0: byte-identical"
	assert_eq "$(log_count "cni watch: cannot keep")" $((l0 + 1)) "logged once"
	assert_match "$(jq -R 'fromjson? // empty | select(.msg | startswith("cni watch: cannot keep")) | .error' "$LOG" | tail -1)" \
		"cniVersion '0.2.0'" "the log names the version"
	assert_eq "$(kill -0 "$pid" && echo running)" running "daemon still running"
	assert_eq "$(http_code /healthz)" 200 "/healthz"
	# a single-plugin configuration that sorts first: not chained into either
	jq '.plugins[0] + {cniVersion: "1.0.0", name: "single"}' "$TMP/primary.json" >"$CONF/00-single.conf"
	cp "$CONF/00-single.conf" "$TMP/single.json"
	sleep 2.5
	assert_eq "$(cmp -s "$TMP/single.json" "$CONF/00-single.conf" && echo identical)" identical ".conf: byte-identical"
	assert_eq "$(log_count "cni watch: cannot keep")" $((l0 + 2)) "logged once more"
	assert_match "$(jq -R 'fromjson? // empty | select(.msg | startswith("cni watch: cannot keep")) | .error' "$LOG" | tail -1)" \
		"single-plugin configuration" "the log says why"
	rm -f "$CONF/00-single.conf"
	# a supported version again: repaired
	rewrite_rename
	assert_eq "$(wait_chained "$f" && echo chained)" chained "cniVersion 1.0.0 again: re-chained"
	assert_eq "$(metric sockmesh_cni_rechains_total)" "$((n0 + 1))" "repaired once the version is served"
	# the directory itself removed and made again: watched again (periodic
	# check), its conflist chained, and later rewrites seen by inotify
	rm -rf "$CONF"
	mkdir "$CONF"
	cp "$TMP/primary.json" "$f"
	assert_eq "$(wait_chained "$f" && echo chained)" chained "conf dir made again: re-chained"
	rewrite_in_place
	assert_eq "$(wait_chained "$f" && echo chained)" chained "then a rewrite: re-chained"
	assert_eq "$(jq -R -r 'fromjson? // empty | select(.msg | startswith("re-chained")) | .trigger' "$LOG" | tail -1)" \
		inotify "that repair came from inotify"
	assert_eq "$(log_count "cni watch: watching")" 2 "watch set up twice (start, after the directory came back)"
	assert_eq "$(metric sockmesh_cni_rechains_total)" "$((n0 + 3))" "one repair each"
	assert_eq "$(kill -0 "$pid" && echo running)" running "daemon still running"
}

pods_deleted() {
	local name ns cid _
	while read -r name ns cid; do
		cni_chain DEL "$CONF/$(cur)" "$cid" "/run/netns/$ns" "$(cni_args shop "$name" "$cid")" "$ANN" >/dev/null ||
			sm_die "DEL of pod $name failed"
		rm -f "$CNI_CACHE/$cid.json"
	done <"$TMP/pods"
	: >"$TMP/pods"
	# the last DEL unloaded the instance; the daemon loads it again
	for _ in $(seq 50); do
		[ "$(http_code /healthz)" = 200 ] && break
		sleep 0.1
	done
	assert_eq "$(sm_cli -j status | jq '[.scopes // [] | .[] | select(.pod_name | startswith("w"))] | length')" 0 \
		"no scope of our pods left"
	assert_eq "$(find "$TMP/ipam" -type f -name '10.*' | wc -l)" 0 "host-local released every address"
}

uninstall_refused_while_running() {
	local rc=0
	cp "$CONF/$(cur)" "$TMP/before-uninstall.json"
	sm_cli uninstall --cni-conf-dir "$CONF" --cni-bin-dir "$CNI_BINDIR" --state-file "$STATE" \
		>/dev/null 2>"$TMP/uninstall.err" || rc=$?
	assert_eq "$rc" 1 "uninstall while sockmeshd runs: exit status"
	assert_match "$(cat "$TMP/uninstall.err")" "is running" "it says why"
	assert_eq "$(cmp -s "$TMP/before-uninstall.json" "$CONF/$(cur)" && echo identical)" identical \
		"conflist untouched"
}

stopped_then_uninstalled() {
	local f
	f="$CONF/$(cur)"
	assert_eq "$(cat "$TMP/daemon.rc")" 0 "exit code after SIGTERM"
	assert_eq "$(log_count "cni watch: stopped")" 1 "watcher stop logged"
	assert_eq "$(cmp -s "$TMP/before-uninstall.json" "$f" && echo identical)" identical \
		"SIGTERM left the conflist as it was"
	sm_cli uninstall --cni-conf-dir "$CONF" --cni-bin-dir "$CNI_BINDIR" --state-file "$STATE" >/dev/null
	assert_eq "$(jq '[.plugins[] | select(.type == "sockmesh-cni")] | length' "$f")" 0 \
		"uninstall took sockmesh-cni out"
	assert_eq "$(jq -c .plugins "$f")" "$(jq -c .plugins "$TMP/primary.json")" "the primary's plugins kept"
	rewrite_rename
	sleep 2.5
	assert_eq "$(cmp -s "$TMP/primary.json" "$f" && echo identical)" identical "a rewrite after uninstall is left alone"
}

# the init container's step, then the daemon (a child of this shell, not of
# a subtest's, so that `wait` gives its exit code)
sm_cli cni-install --cni-conf-dir "$CONF" --cni-bin-dir "$CNI_BINDIR" --plugin-bin "$SM_CNI" \
	--plugin-conf "$ENTRY" >/dev/null
daemon_start
e2e_subtest "cni-install chains, the daemon finds nothing to repair" installed_then_watched
e2e_subtest "$ROUNDS rewrites re-chained, every ADD after captured" rewrites_repaired_pods_captured
e2e_subtest "unsupported version and single-plugin .conf left alone, logged once" unsupported_left_alone
e2e_subtest "pods DELed" pods_deleted
e2e_subtest "uninstall refused while sockmeshd runs" uninstall_refused_while_running
# the daemon is a child of this shell, not of a subtest's: stop it here
if [ -f "$TMP/daemon.pid" ]; then
	pid=$(daemon_pid)
	rc=0
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	forget_pid "$pid"
	echo "$rc" >"$TMP/daemon.rc"
fi
e2e_subtest "SIGTERM leaves the conflist, uninstall unchains, nothing re-chains" stopped_then_uninstalled
e2e_finish
