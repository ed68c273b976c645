#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# sockmeshd on the node IP, as deploy/daemonset.yaml gives it: the manifest's
# own --listen-host=$(HOST_IP) --listen-port=PORT, expanded as the kubelet
# does with the downward API's status.hostIP (an IPv6 one without brackets).
# In netns of ours standing for an IPv6-only and a dual-stack node (the
# address on a veth whose both ends are in that netns), for an IPv6 and an
# IPv4 node IP and ::1: /healthz answers 200 ok at that address (where the
# kubelet's httpGet probe of a hostNetwork pod connects: its pod IP is the
# node IP), /metrics too; nothing listens on the node's other addresses
# (127.0.0.1, the other family); the state file and `sockmesh status` give
# [ADDR]:PORT; SIGTERM exits 0. A node IP that is not local exits 1 naming
# it; bad values exit 2 naming the value, before anything is opened.
#
# The daemon joins the netns with nsenter --net (ip netns exec would remount
# /sys and hide bpffs and the cgroup2 mount from it).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SM_DAEMON=${SM_DAEMON:-$SM_BUILD/user/daemon/sockmeshd}
DS="$SM_ROOT/deploy/daemonset.yaml"
NODE6=fd95::1
NODE4=10.95.0.1

e2e_init daemon_listen
e2e_need_sockmesh
[ -x "$SM_DAEMON" ] || sm_die "sockmeshd not built: $SM_DAEMON (ninja -C build)"
CG=$(sm_cgroup app)
PIN=$(sm_pindir pin)
STATE="$TMP/run/sockmeshd.json"

# node_netns NAME ADDR/PREFIX...: a netns standing for a node, its
# addresses on a veth whose peer is in the same netns
node_netns() {
	local ns a
	ns=$(sm_netns "$1")
	shift
	ip -n "$ns" link add eth0 type veth peer name eth1
	for a in "$@"; do
		ip -n "$ns" addr add "$a" dev eth0 nodad 2>/dev/null || ip -n "$ns" addr add "$a" dev eth0
	done
	ip -n "$ns" link set eth0 up
	ip -n "$ns" link set eth1 up
	echo "$ns"
}
V6ONLY=$(node_netns v6only "$NODE6/64")
DUAL=$(node_netns dual "$NODE4/24" "$NODE6/64")

# The manifest's sockmeshd arguments that say where to listen, as written
# (the others, --cni-conf-dir among them, would act on this host's files)
yaml2json() {
	"$E2E_PY" -c 'import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))' "$1"
}
mapfile -t LISTEN_ARGS < <(yaml2json "$DS" | jq -r '.[] | select(.kind == "DaemonSet") |
	.spec.template.spec.containers[] | select(.name == "sockmeshd") | .args[] | select(startswith("--listen"))')
HOST_IP_FIELD=$(yaml2json "$DS" | jq -r '.[] | select(.kind == "DaemonSet") |
	.spec.template.spec.containers[] | select(.name == "sockmeshd") | .env[] | select(.name == "HOST_IP") |
	.valueFrom.fieldRef.fieldPath')
PORT=$(printf '%s\n' "${LISTEN_ARGS[@]}" | sed -n 's/^--listen-port=//p')

# kubelet_args HOST_IP: LISTEN_ARGS with $(HOST_IP) replaced as the kubelet
# replaces $(NAME) in args ($$ is a literal $), one per line
kubelet_args() {
	"$E2E_PY" -c '
import re, sys
ref = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
for w in sys.argv[2:]:
    print(ref.sub(lambda m: "$" if m.group(0) == "$$" else sys.argv[1] if m.group(1) == "HOST_IP" else m.group(0), w))
' "$1" "${LISTEN_ARGS[@]}"
}

# url ADDR PATH: http://ADDR:PORT/PATH, IPv6 in brackets (given with or
# without)
url() {
	local a
	a=$(tr -d '[]' <<<"$1")
	case $a in
	*:*) echo "http://[$a]:$PORT$2" ;;
	*) echo "http://$a:$PORT$2" ;;
	esac
}

# code NETNS ADDR PATH: the HTTP status from inside NETNS (000: no answer),
# the body in $TMP/body
code() {
	ip netns exec "$1" curl -sg -o "$TMP/body" -w '%{http_code}' --max-time 5 "$(url "$2" "$3")" || true
}

# forget_pid PID: it has exited, cleanup must not signal it
forget_pid() {
	grep -vxF -- "$1" "$SM_STATE/pids" >"$SM_STATE/pids.new" || true
	mv -f "$SM_STATE/pids.new" "$SM_STATE/pids"
}

# daemon_start NETNS LOG ARGS...: sockmeshd in NETNS on the test's pin dir,
# cgroup and state file; its pid in DAEMON_PID; waits (max 10 s) for the
# state file, which it writes once it listens. Fails if it exits first.
daemon_start() {
	local ns=$1 log=$2 _
	shift 2
	rm -f "$STATE"
	nsenter --net="/run/netns/$ns" "$SM_DAEMON" --pin-dir "$PIN" --attach-cgroup "$CG" \
		--state-file "$STATE" --gc-interval 1 "$@" >>"$log" 2>&1 </dev/null &
	DAEMON_PID=$!
	sm_track "$DAEMON_PID"
	for _ in $(seq 100); do
		[ -s "$STATE" ] && [ "$(jq -r .pid "$STATE" 2>/dev/null)" = "$DAEMON_PID" ] && return 0
		kill -0 "$DAEMON_PID" 2>/dev/null || break
		sleep 0.1
	done
	sm_log "sockmeshd $* did not start: $(tail -5 "$log")"
	return 1
}

# daemon_stop: SIGTERM, exit code 0
daemon_stop() {
	local rc=0
	kill -TERM "$DAEMON_PID"
	wait "$DAEMON_PID" || rc=$?
	forget_pid "$DAEMON_PID"
	assert_eq "$rc" 0 "exit code after SIGTERM"
}

manifest_gives_the_node_ip() {
	# shellcheck disable=SC2016 # the kubelet's $(HOST_IP), literally
	assert_eq "${LISTEN_ARGS[*]}" "--listen-host=\$(HOST_IP) --listen-port=$PORT" "the manifest's listen arguments"
	assert_eq "$HOST_IP_FIELD" status.hostIP "HOST_IP: the downward API's node IP"
	assert_match "$PORT" '^[1-9][0-9]*$' "port"
	assert_eq "$(kubelet_args "$NODE6" | xargs)" "--listen-host=$NODE6 --listen-port=$PORT" \
		"as the kubelet gives them on an IPv6 node"
}

# serves_on_node_ip NETNS HOST_IP OTHER...: sockmeshd with the manifest's
# arguments for HOST_IP in NETNS answers there, and not on the OTHER
# addresses of that node
serves_on_node_ip() {
	local ns=$1 ip=$2 log a=() shown st o
	shift 2
	log="$TMP/sockmeshd.$ns.$ip.log"
	mapfile -t a < <(kubelet_args "$ip")
	daemon_start "$ns" "$log" "${a[@]}"
	# the kubelet's probe: GET /healthz at the pod IP = the node IP
	assert_eq "$(code "$ns" "$ip" /healthz)" 200 "GET $(url "$ip" /healthz) (the probe)"
	assert_eq "$(cat "$TMP/body")" ok "/healthz body"
	assert_eq "$(code "$ns" "$ip" /metrics)" 200 "GET $(url "$ip" /metrics) (Prometheus)"
	assert_eq "$(awk '$1 == "sockmesh_up" { print $2 }' "$TMP/body")" 1 "sockmesh_up"
	for o in "$@"; do
		assert_eq "$(code "$ns" "$o" /healthz)" 000 "nothing on $(url "$o" /healthz)"
	done
	shown=$(if [[ $ip == *:* ]]; then echo "[$(tr -d '[]' <<<"$ip")]:$PORT"; else echo "$ip:$PORT"; fi)
	assert_eq "$(ip netns exec "$ns" ss -Hltn "sport = :$PORT" | awk '{ print $4 }' | xargs)" "$shown" \
		"the one listening socket"
	assert_eq "$(jq -r .listen "$STATE")" "$shown" "state file: listen"
	assert_eq "$(jq -r .metrics_url "$STATE")" "http://$shown/metrics" "state file: metrics_url"
	st=$(sm_cli -j status --state-file "$STATE")
	assert_eq "$(jq -r '"\(.daemon.running) \(.daemon.listen)"' <<<"$st")" "true $shown" "sockmesh status: daemon"
	assert_eq "$(jq -r 'select(.msg == "sockmeshd started") | .listen' "$log")" "$shown" "log: started, listen"
	daemon_stop
}

ipv6_only_node() { serves_on_node_ip "$V6ONLY" "$NODE6" 127.0.0.1 ::1; }
dual_stack_node_ipv6_primary() { serves_on_node_ip "$DUAL" "$NODE6" "$NODE4" 127.0.0.1 ::1; }
dual_stack_node_ipv4_primary() { serves_on_node_ip "$DUAL" "$NODE4" "$NODE6" 127.0.0.1 ::1; }
# brackets optional: ::1 and [::1] are the same address
ipv6_loopback() {
	serves_on_node_ip "$V6ONLY" ::1 "$NODE6" 127.0.0.1
	serves_on_node_ip "$V6ONLY" "[::1]" "$NODE6" 127.0.0.1
}

# the kubelet's node IP is not on this node (or not yet): exit 1, named
not_local_exits_1() {
	local rc=0 log="$TMP/sockmeshd.notlocal.log" a=()
	mapfile -t a < <(kubelet_args fd95::99)
	timeout 20 nsenter --net="/run/netns/$V6ONLY" "$SM_DAEMON" --pin-dir "$PIN" --attach-cgroup "$CG" \
		--state-file "$STATE" "${a[@]}" >"$log" 2>&1 </dev/null || rc=$?
	assert_eq "$rc" 1 "exit code with an address not on the node"
	assert_match "$(jq -r 'select(.level == "error" and (.msg | startswith("--listen"))) | .msg' "$log")" \
		"^--listen-host: cannot serve HTTP on '\\[fd95::99\\]:$PORT'" "the error names the option and address"
	assert_eq "$([ -e "$STATE" ] && echo left || echo none)" none "state file"
}

bad_values_exit_2() {
	local bad args rc a=()
	while IFS='|' read -r bad args; do
		read -r -a a <<<"$args"
		rc=0
		timeout 20 nsenter --net="/run/netns/$V6ONLY" "$SM_DAEMON" --pin-dir "$PIN" --attach-cgroup "$CG" \
			--state-file "$TMP/bad.json" "${a[@]}" >"$TMP/out" 2>"$TMP/err" </dev/null || rc=$?
		sm_log "    sockmeshd $args -> rc $rc: $(head -c 300 "$TMP/err")"
		assert_eq "$rc" 2 "exit code of sockmeshd $args"
		assert_match "$(grep -cF -- "'$bad'" "$TMP/err")" '^[1-9]' "stderr names '$bad'"
	done <<-'EOF'
		$(HOST_IP)|--listen-host=$(HOST_IP) --listen-port=15095
		|--listen-host= --listen-port=15095
		[fd95::1]:15095|--listen-host=[fd95::1]:15095
		10.95.0.1:15095|--listen-host=10.95.0.1:15095
		fd95::1:15095|--listen-host=fd95::1:15095
		fe80::1%eth0|--listen-host=fe80::1%eth0
		node1|--listen-host=node1
		99999|--listen-host=::1 --listen-port=99999
		http|--listen-port=http
		-1|--listen-port=-1
		fd95::1:15095|--listen=fd95::1:15095
		::1|--listen=127.0.0.1:15095 --listen-host=::1
		80|--listen=127.0.0.1:15095 --listen-port=80
	EOF
	# the form "$(HOST_IP):PORT" would give: the message says what to write
	assert_match "$("$SM_DAEMON" --listen=fd95::1:15095 2>&1 || true)" '\[ADDR\]:PORT, or --listen-host ADDR --listen-port PORT' \
		"--listen with a bare IPv6 address: the hint"
	assert_eq "$([ -e "$TMP/bad.json" ] && echo left || echo none)" none "state file of a refused start"
}

e2e_subtest manifest_gives_the_node_ip manifest_gives_the_node_ip
e2e_subtest ipv6_only_node ipv6_only_node
e2e_subtest dual_stack_node_ipv6_primary dual_stack_node_ipv6_primary
e2e_subtest dual_stack_node_ipv4_primary dual_stack_node_ipv4_primary
e2e_subtest ipv6_loopback ipv6_loopback
e2e_subtest not_local_exits_1 not_local_exits_1
e2e_subtest bad_values_exit_2 bad_values_exit_2
e2e_finish
