#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# sockmeshd, the node daemon, on the real kernel: bad usage exits 2;
# /healthz and the state file `sockmesh status` reads; /metrics passes
# promtool and its counters equal `sockmesh -j stats` and the traffic sent
# (exact deltas), with pod labels and escaped label values; kill -9 in the
# middle of a wrk run loses no request (the data path is pinned); a restarted
# daemon adopts the instance (same programs, one per hook, enrollments
# intact); a pod netns deleted without CNI DEL, a netns name reused, and a
# removed cgroup are garbage-collected within a bounded time, a live pod is
# not; SIGTERM exits 0 and leaves the data path running; a removed instance
# is loaded again (SIGHUP, or the pass after GC withdrew the last scope);
# --cleanup-on-exit removes everything.
#
# The daemon listens on 127.0.0.1 inside a netns of ours. It joins that
# netns with nsenter --net, not ip netns exec: the latter also remounts /sys
# and would hide bpffs and the cgroup2 mount from it.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SM_DAEMON=${SM_DAEMON:-$SM_BUILD/user/daemon/sockmeshd}
MPORT=15095

e2e_init daemon
e2e_need_sockmesh
[ -x "$SM_DAEMON" ] || sm_die "sockmeshd not built: $SM_DAEMON (ninja -C build)"
command -v promtool >/dev/null || sm_die "promtool missing (Debian package prometheus)"
e2e_topology
DNS=$(sm_netns dmn)
STATE="$TMP/run/sockmeshd.json"
CGID=$(stat -c %i "$CG")
e2e_nginx_start web "$SRV" "$E2E_SRV4A:80 srv-a"
e2e_haproxy_start hap "$CG" "$POD"

# prom2json: Prometheus text on stdin -> one JSON object per sample
# ({"name", "labels", "value"}), label values unescaped
cat >"$TMP/prom2json.py" <<'EOF'
import json, re, sys
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
UNESC = {'\\\\': '\\', '\\"': '"', '\\n': '\n'}
for line in sys.stdin:
    line = line.rstrip('\n')
    if not line or line.startswith('#'):
        continue
    m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$', line)
    if not m:
        sys.exit('bad sample line: %r' % line)
    labels = {k: re.sub(r'\\[\\"n]', lambda e: UNESC[e.group(0)], v)
              for k, v in LABEL.findall(m.group(3) or '')}
    print(json.dumps({'name': m.group(1), 'labels': labels, 'value': float(m.group(4))}))
EOF

# set_labels netns:NAME|cgroup:PATH POD_NAMESPACE POD_NAME: scope labels
# through the public API (what sockmesh-cni does on ADD), by ctypes on
# libsockmesh.so
cat >"$TMP/set_labels.py" <<'EOF'
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
class OpenOpts(ctypes.Structure):
    _fields_ = [('sz', ctypes.c_size_t), ('pin_dir', ctypes.c_char_p), ('create', ctypes.c_bool),
                ('max_scopes', ctypes.c_uint32), ('max_conns', ctypes.c_uint32),
                ('max_splice_socks', ctypes.c_uint32), ('max_rules', ctypes.c_uint32),
                ('max_pending', ctypes.c_uint32)]
class Scope(ctypes.Structure):
    _fields_ = [('kind', ctypes.c_int), ('id', ctypes.c_uint64), ('name', ctypes.c_char * 256)]
lib.sockmesh__open.restype = ctypes.c_void_p
lib.sockmesh_errmsg.restype = ctypes.c_char_p
o = OpenOpts(ctypes.sizeof(OpenOpts), sys.argv[2].encode(), False, 0, 0, 0, 0, 0)
sm = lib.sockmesh__open(ctypes.byref(o))
s = Scope()
kind, name = sys.argv[3].split(':', 1)
resolve = lib.sockmesh_scope_from_netns if kind == 'netns' else lib.sockmesh_scope_from_cgroup
if not sm or resolve(name.encode(), ctypes.byref(s)):
    sys.exit(lib.sockmesh_errmsg().decode())
err = lib.sockmesh__set_scope_labels(ctypes.c_void_p(sm), ctypes.byref(s), sys.argv[4].encode(),
                                     sys.argv[5].encode(), b'c0ffee')
lib.sockmesh__close(ctypes.c_void_p(sm))
sys.exit(lib.sockmesh_errmsg().decode() if err else 0)
EOF
set_labels() {
	"$E2E_PY" "$TMP/set_labels.py" "$SM_BUILD/user/lib/libsockmesh.so" "$PIN" "$@"
}

# ------------------------------------------------------------------ helpers

# http PATH: GET from the daemon (in its netns); body on stdout, fails on
# anything but 200
http() { ip netns exec "$DNS" curl -sS --fail --max-time 10 "http://127.0.0.1:$MPORT$1"; }
# http_code PATH: the status code only
http_code() {
	ip netns exec "$DNS" curl -s -o /dev/null -w '%{http_code}' --max-time 10 "http://127.0.0.1:$MPORT$1" || true
}
metrics_json() { http /metrics | "$E2E_PY" "$TMP/prom2json.py"; }

# daemon_start LOG GC_INTERVAL [ARGS...]: start sockmeshd in the background
# (a child of the calling shell, so `wait` gives its exit code), record its
# pid in $TMP/daemon.pid and wait (max 10 s) for /healthz. The test's pin
# dir, cgroup, state file and port.
daemon_start() {
	local log=$1 gc=$2 pid _
	shift 2
	nsenter --net="/run/netns/$DNS" "$SM_DAEMON" --pin-dir "$PIN" --attach-cgroup "$CG" \
		--listen "127.0.0.1:$MPORT" --state-file "$STATE" --gc-interval "$gc" "$@" \
		>>"$log" 2>&1 </dev/null &
	pid=$!
	sm_track "$pid"
	echo "$pid" >"$TMP/daemon.pid"
	for _ in $(seq 100); do
		[ "$(http_code /healthz)" = 200 ] && return 0
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	sm_log "sockmeshd did not become healthy: $(tail -5 "$log")"
	return 1
}

daemon_pid() { cat "$TMP/daemon.pid"; }

# forget_pid PID: PID has exited: cleanup must not signal it (it may be
# another process by then)
forget_pid() {
	grep -vxF -- "$1" "$SM_STATE/pids" >"$SM_STATE/pids.new" || true
	mv -f "$SM_STATE/pids.new" "$SM_STATE/pids"
}

# daemon_gone PID: wait (max 10 s) until PID (not our child) has exited
daemon_gone() {
	timeout 10 tail --pid="$1" -f /dev/null || return 1
	forget_pid "$1"
}

# cgroup_progs: "attach_type:prog_id" lines of the programs at $CG, sorted
cgroup_progs() {
	bpftool -j cgroup show "$CG" | jq -rs '.[0] // [] | .[] | "\(.attach_type):\(.id)"' | sort
}

# listed NAME: is a scope named NAME in `sockmesh status`?
listed() { sm_cli -j status | jq -e --arg n "$1" '.scopes | any(.name == $n)' >/dev/null; }

# wait_unlisted NAME SECONDS: until NAME leaves `sockmesh status`
wait_unlisted() {
	local i
	for i in $(seq $(($2 * 10))); do
		listed "$1" || {
			sm_log "    '$1' left status after ~$((i / 10)).$((i % 10)) s"
			return 0
		}
		sleep 0.1
	done
	return 1
}

# curl_app PORTS: one request from the app in the pod, from local PORTS
curl_app() { e2e_curl "$CG" "$POD" --local-port "$1" "http://$E2E_SRV4A/"; }

# metric JSONL NAME KIND SCOPE: value of one sample of the scope
metric() {
	jq -rs --arg n "$2" --arg k "$3" --arg s "$4" \
		'[.[] | select(.name == $n and (.labels.kind // "") == $k and (.labels.scope // "") == $s) | .value] |
		if length == 1 then .[0] | floor else "missing or duplicate (\(length))" end' <<<"$1"
}

# ------------------------------------------------------------------ setup

daemon_start "$TMP/sockmeshd.1.log" 1
sm_cli enable --netns "$POD" --attach-cgroup "$CG"
set_labels "netns:$POD" default web-0
PROGS0=$(cgroup_progs)
assert_eq "$(cut -d: -f1 <<<"$PROGS0" | sort | uniq -d | xargs)" "" "hooks with more than one program at the cgroup"

bad_usage_exits_2() {
	local args bad rc
	while IFS='|' read -r bad args; do
		rc=0
		# shellcheck disable=SC2086 # word splitting of the argument list is wanted
		"$SM_DAEMON" $args >"$TMP/out" 2>"$TMP/err" || rc=$?
		sm_log "    sockmeshd $args -> rc $rc: $(head -c 200 "$TMP/err")"
		assert_eq "$rc" 2 "exit code of sockmeshd $args"
		assert_match "$(grep -cF -- "$bad" "$TMP/err")" '^[1-9]' "stderr names '$bad'"
	done <<-EOF
		--bogus|--bogus
		0|--gc-interval 0
		5s|--gc-interval 5s
		1.2.3.4|--listen 1.2.3.4
		localhost|--listen localhost:80
		99999|--listen 127.0.0.1:99999
		xml|--log-format xml
		$TMP|--attach-cgroup $TMP
		relative/pin|--pin-dir relative/pin
		run/x.json|--state-file run/x.json
		stray|stray
	EOF
	rc=0
	"$SM_DAEMON" --pin-dir "$PIN" --attach-cgroup "$CG" --listen 127.0.0.1:0 \
		--state-file "$STATE" >"$TMP/out" 2>"$TMP/err" || rc=$?
	assert_eq "$rc" 1 "a second daemon on the same state file"
	assert_match "$(cat "$TMP/err")" "another sockmeshd \\(pid $(daemon_pid)\\)" "it names the running one"
	"$SM_DAEMON" -h | grep -q -- '--cleanup-on-exit'
}

# Issue 12 point 5: a local user holding 100 idle, half-sent connections
# (as uid 65534) used to take every connection sockmeshd serves (64), so
# the kubelet's /healthz timed out. Local users now share 16; root's probe
# and scrapers from elsewhere have their own.
healthz_survives_idle_local_users() {
	local out code t0 ms
	ip netns exec "$DNS" "$E2E_PY" - "$MPORT" >"$TMP/hold.out" 2>&1 <<'PY' &
import os, socket, sys, time
os.setgid(65534)
os.setuid(65534)
socks = []
for _ in range(100):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    try:
        s.sendall(b"GET /healthz HTTP/1.1\r\n")  # never finished
    except OSError:
        pass  # refused at once
    socks.append(s)
time.sleep(1.5)
closed = 0
for s in socks:
    s.setblocking(False)
    try:
        closed += s.recv(1) == b""
    except BlockingIOError:
        pass
    except OSError:
        closed += 1
print(f"held {len(socks) - closed} closed {closed}", flush=True)
time.sleep(3)
PY
	sleep 1
	t0=$(date +%s%N)
	code=$(http_code /healthz)
	ms=$((($(date +%s%N) - t0) / 1000000))
	wait
	out=$(cat "$TMP/hold.out")
	sm_log "    100 idle connections as uid 65534: $out; /healthz as root: $code in $ms ms"
	assert_eq "$code" 200 "/healthz while a local user holds 100 idle connections"
	assert_match "$out" "^held 16 closed 84\$" "the local user keeps 16 connections, the rest are closed"
}

healthz_state_file_and_status() {
	local st pid
	pid=$(daemon_pid)
	assert_eq "$(http /healthz)" ok "/healthz body"
	assert_eq "$(http_code /healthz)" 200 "/healthz status"
	assert_eq "$(http_code /nowhere)" 404 "unknown path"
	assert_eq "$(jq -r .pid "$STATE")" "$pid" "state file: pid"
	assert_eq "$(jq -r .listen "$STATE")" "127.0.0.1:$MPORT" "state file: listen"
	assert_eq "$(jq -r .pin_dir "$STATE")" "$PIN" "state file: pin dir"
	assert_match "$(jq -r .version "$STATE")" '^[0-9]+\.[0-9]+' "state file: version"
	st=$(sm_cli -j status --state-file "$STATE")
	assert_eq "$(jq -r .daemon.running <<<"$st")" true "status: daemon running"
	assert_eq "$(jq -r .daemon.pid <<<"$st")" "$pid" "status: daemon pid"
	assert_eq "$(jq -r .daemon.listen <<<"$st")" "127.0.0.1:$MPORT" "status: daemon listen"
	assert_eq "$(jq -r '.scopes[0].pod_name' <<<"$st")" web-0 "status: pod label"
	assert_match "$(sm_cli status --state-file "$STATE" | grep '^daemon:')" \
		"running, pid $pid, metrics http://127.0.0.1:$MPORT/metrics" "status text line"
	assert_eq "$(sm_cli -j status --state-file "$TMP/none.json" | jq -r .daemon.running)" false \
		"status without a state file"
}

metrics_match_stats_and_traffic() {
	local n=5 s0 s1 m0 m1 i k mv sv bad=0 odd
	# label values that need escaping: quote and backslash in a cgroup name
	# (cgroup names cannot hold a line feed), a line feed in a pod label
	odd=$(sm_subcgroup "$CG" 'odd"q\b')
	sm_cli enable --cgroup "$odd"
	set_labels "cgroup:$odd" "ns\"\\" "$(printf 'two\nlines')"
	http /metrics >"$TMP/metrics.txt"
	promtool check metrics <"$TMP/metrics.txt"
	sm_log "    promtool check metrics: ok"
	assert_eq "$(grep -c '^sockmesh_captured_total{kind="cgroup",scope=".*/odd\\"q\\\\b",id="[0-9]*",pod_namespace="ns\\"\\\\",pod_name="two\\nlines"}' "$TMP/metrics.txt")" \
		1 "escaped label values in the exposition text"
	assert_eq "$(jq -r --arg s "$odd" 'select(.name == "sockmesh_captured_total" and .labels.scope == $s) | .value' \
		< <("$E2E_PY" "$TMP/prom2json.py" <"$TMP/metrics.txt"))" 0 "escaped values read back as the cgroup path"
	assert_match "$(head -c 2000 "$TMP/metrics.txt" | grep -c '^# TYPE sockmesh_up gauge')" '^1$' "HELP/TYPE lines"

	s0=$(e2e_stats --netns "$POD")
	m0=$(metrics_json)
	for i in $(seq "$n"); do
		assert_proxied "$(curl_app "4$((1000 + i * 10))-4$((1000 + i * 10 + 9))")" "request $i"
	done
	s1=$(e2e_stats --netns "$POD")
	m1=$(metrics_json)
	assert_deltas "$s0" "$s1" "$n requests (stats)" captured="$n" origdst_published="$n" \
		origdst_answered="$n" bypass_proxy_uid="$n" origdst_miss=0 \
		'splice_sockets=*' 'splice_msgs=*' 'splice_bytes=*'
	assert_eq "$(($(metric "$m1" sockmesh_captured_total netns "$POD") - $(metric "$m0" sockmesh_captured_total netns "$POD")))" \
		"$n" "captured delta on /metrics"
	assert_eq "$(($(metric "$m1" sockmesh_origdst_answered_total netns "$POD") - $(metric "$m0" sockmesh_origdst_answered_total netns "$POD")))" \
		"$n" "origdst_answered delta on /metrics"
	# every counter of the scope and of the global slot equals the CLI's
	for k in $(jq -r '.scopes[0].counters | keys[]' <<<"$s1"); do
		mv=$(metric "$m1" "sockmesh_${k}_total" netns "$POD")
		sv=$(jq -r --arg k "$k" '.scopes[0].counters[$k]' <<<"$s1")
		[ "$mv" = "$sv" ] || { assert_eq "$mv" "$sv" "counter $k: /metrics vs stats" || bad=1; }
		mv=$(metric "$m1" "sockmesh_${k}_total" global "")
		sv=$(jq -r --arg k "$k" '.global[$k]' <<<"$s1")
		[ "$mv" = "$sv" ] || { assert_eq "$mv" "$sv" "global $k: /metrics vs stats" || bad=1; }
	done
	assert_eq "$bad" 0 "all $(jq -r '.scopes[0].counters | length' <<<"$s1") counters equal, scope and global"
	assert_eq "$(jq -rs --arg s "$POD" '.[] | select(.name == "sockmesh_captured_total" and .labels.scope == $s) |
		"\(.labels.pod_namespace)/\(.labels.pod_name) \(.labels.id)"' <<<"$m1")" \
		"default/web-0 $(jq -r .scopes[0].id <<<"$s1")" "pod labels and id on the series"
	assert_eq "$(jq -rs '.[] | select(.name == "sockmesh_scopes") | "\(.labels.kind)=\(.value)"' <<<"$m1" | xargs)" \
		"cgroup=1 netns=1" "scopes gauge"
	assert_eq "$(jq -rs '.[] | select(.name == "sockmesh_up") | .value' <<<"$m1")" 1 "up"
	assert_eq "$(jq -rs '.[] | select(.name == "sockmesh_build_info") | .labels.version' <<<"$m1")" \
		"$(jq -r .version "$STATE")" "build info version"
	assert_eq "$(jq -rs '[.[] | select(.name == "sockmesh_attach_programs") | .value] | unique | map(floor) | join(",")' <<<"$m1")" \
		1 "one program of ours per hook at the attach cgroup"
}

kill9_during_wrk_loses_nothing() {
	local pid h0 s0 sk s1 out reqs
	pid=$(daemon_pid)
	h0=$(e2e_haproxy_sessions hap)
	s0=$(e2e_stats --netns "$POD")
	# Connection: close: every request is a new captured connect, so capture
	# is exercised all through the time the daemon is dead
	sm_run "$CG" "$POD" wrk -t 2 -c 20 -d 8s --timeout 5s -H 'Connection: close' \
		"http://$E2E_SRV4A/" >"$TMP/wrk.out" 2>&1 &
	local wrk=$!
	sleep 3
	kill -9 "$pid"
	daemon_gone "$pid"
	sm_log "    killed sockmeshd (pid $pid) with SIGKILL during the wrk run"
	sk=$(e2e_stats --netns "$POD")
	wait "$wrk"
	s1=$(e2e_stats --netns "$POD")
	out=$(cat "$TMP/wrk.out")
	sed 's/^/    wrk| /' "$TMP/wrk.out" >&2
	reqs=$(awk '/requests in/ { print $1 }' <<<"$out")
	assert_ge "$reqs" 100 "requests completed"
	assert_eq "$(grep -c 'Non-2xx or 3xx responses' <<<"$out" || true)" 0 "Non-2xx or 3xx responses"
	assert_eq "$(grep -c 'Socket errors' <<<"$out" || true)" 0 "socket errors"
	assert_ge "$(($(e2e_counter "$s1" captured) - $(e2e_counter "$s0" captured)))" "$reqs" "captured connects"
	assert_ge "$(($(e2e_counter "$s1" captured) - $(e2e_counter "$sk" captured)))" 20 \
		"captured connects after the daemon died"
	assert_ge "$(($(e2e_haproxy_sessions hap) - h0))" "$reqs" "haproxy sessions"
	assert_eq "$(cgroup_progs)" "$PROGS0" "programs at the cgroup with the daemon dead"
}

restart_adopts() {
	local s0 s1 log="$TMP/sockmeshd.2.log"
	s0=$(e2e_stats --netns "$POD")
	daemon_start "$log" 1
	assert_eq "$(cgroup_progs)" "$PROGS0" "same programs (ids), one per hook, after the restart"
	assert_match "$(jq -r 'select(.msg == "adopted the pinned data path") | .scopes' "$log")" '^2$' \
		"log: adopted the pinned data path with its 2 scopes"
	assert_eq "$(jq -r --arg s "$POD" 'select(.msg == "adopted scope" and .scope == $s) | .pod_name' "$log")" \
		web-0 "log: adopted the pod scope with its labels"
	assert_eq "$(jq -r .pid "$STATE")" "$(daemon_pid)" "state file: the new pid"
	listed "$POD"
	assert_eq "$(sm_cli -j status | jq -r --arg n "$POD" '.scopes[] | select(.name == $n) | .pod_name')" \
		web-0 "enrollment and labels intact"
	assert_proxied "$(curl_app 42000-42099)" "request after the restart"
	s1=$(e2e_stats --netns "$POD")
	assert_deltas "$s0" "$s1" "one request after the restart" captured=1 origdst_published=1 \
		origdst_answered=1 bypass_proxy_uid=1 'splice_sockets=*' 'splice_msgs=*' 'splice_bytes=*'
}

gc_withdraws_deleted_netns() {
	local pod2 pod3 id3 m log="$TMP/sockmeshd.2.log" runs0 runs1
	runs0=$(metric "$(metrics_json)" sockmesh_gc_runs_total "" "")
	pod2=$(e2e_pod_netns pod2)
	sm_cli enable --netns "$pod2" --attach-cgroup "$CG"
	listed "$pod2"
	# deleted without CNI DEL: nobody withdraws it but the daemon
	ip netns del "$pod2"
	wait_unlisted "$pod2" 10
	assert_eq "$(jq -r --arg s "$pod2" 'select(.scope == $s) | .msg' "$log" | grep -c withdrew)" 1 \
		"log: one structured line for the withdrawn scope"
	jq -c --arg s "$pod2" 'select(.scope == $s)' "$log" >&2
	# the same name made again is another netns (another cookie): the old
	# scope is gone too, and the new netns is not enrolled
	pod3=$(e2e_pod_netns pod3)
	sm_cli enable --netns "$pod3" --attach-cgroup "$CG"
	id3=$(sm_cli -j status | jq -r --arg n "$pod3" '.scopes[] | select(.name == $n) | .id')
	ip netns del "$pod3"
	ip netns add "$pod3"
	for _ in $(seq 100); do
		sm_cli -j status | jq -e --argjson i "$id3" '.scopes | any(.id == $i)' >/dev/null || break
		sleep 0.1
	done
	assert_eq "$(sm_cli -j status | jq --argjson i "$id3" '.scopes | any(.id == $i)')" false \
		"scope of the replaced netns withdrawn"
	assert_match "$(jq -r --argjson i "$id3" 'select(.id == $i) | .reason' "$log")" \
		"is another network namespace now" "log: reason names the new cookie"
	# the live pod stays, across several passes
	sleep 2
	m=$(metrics_json)
	runs1=$(metric "$m" sockmesh_gc_runs_total "" "")
	assert_ge "$((runs1 - runs0))" 3 "gc passes meanwhile"
	listed "$POD"
	assert_eq "$(metric "$m" sockmesh_gc_withdrawn_total netns "")" 2 "gc_withdrawn_total{kind=netns}"
	assert_eq "$(metric "$m" sockmesh_gc_errors_total "" "")" 0 "gc errors"
	assert_proxied "$(curl_app 42100-42199)" "the live pod is still captured"
}

gc_withdraws_removed_cgroup() {
	local odd
	odd="$CG/odd\"q\\b"
	listed "$odd"
	rmdir "$odd"
	wait_unlisted "$odd" 10
	assert_eq "$(metric "$(metrics_json)" sockmesh_gc_withdrawn_total cgroup "")" 1 \
		"gc_withdrawn_total{kind=cgroup}"
}

sigterm_exits_0_data_path_stays() {
	local pid rc=0 log="$TMP/sockmeshd.3.log"
	pid=$(daemon_pid)
	kill -TERM "$pid"
	daemon_gone "$pid"
	# one of our own children, to see its exit code
	daemon_start "$log" 1
	pid=$(daemon_pid)
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	forget_pid "$pid"
	assert_eq "$rc" 0 "exit code after SIGTERM"
	assert_eq "$([ -e "$STATE" ] && echo exists || echo removed)" removed "state file"
	assert_eq "$(jq -r .msg "$log" | tail -1)" "sockmeshd stopped" "last log line"
	assert_eq "$(cgroup_progs)" "$PROGS0" "programs still attached"
	listed "$POD"
	assert_proxied "$(curl_app 42200-42299)" "request with no daemon running"
	assert_eq "$(sm_cli -j status --state-file "$STATE" | jq -r .daemon.running)" false \
		"status: daemon not running"
}

removed_instance_loaded_again() {
	local pid rc=0 log="$TMP/sockmeshd.4.log" _
	daemon_start "$log" 60
	pid=$(daemon_pid)
	sm_cli disable --all
	assert_eq "$(http_code /healthz)" 503 "/healthz with nothing pinned"
	assert_eq "$(metric "$(metrics_json)" sockmesh_up "" "")" 0 "sockmesh_up with nothing pinned"
	kill -HUP "$pid"
	for _ in $(seq 50); do
		[ "$(http_code /healthz)" = 200 ] && break
		sleep 0.1
	done
	assert_eq "$(http_code /healthz)" 200 "/healthz after SIGHUP loaded the data path again"
	assert_eq "$(cgroup_progs | wc -l)" 0 "programs at the cgroup (nothing enrolled)"
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	forget_pid "$pid"
	assert_eq "$rc" 0 "exit code"
}

# GC withdrawing the last scope removes the instance (library rule); the
# next pass loads it again
last_scope_gc_reloads() {
	local pid rc=0 log="$TMP/sockmeshd.5.log" pod4 _
	daemon_start "$log" 1
	pid=$(daemon_pid)
	pod4=$(e2e_pod_netns pod4)
	sm_cli enable --netns "$pod4" --attach-cgroup "$CG"
	assert_eq "$(sm_cli -j status | jq -r '[.scopes[].name] | join(",")')" "$pod4" "the only scope"
	ip netns del "$pod4"
	for _ in $(seq 100); do
		grep -q 'that was the last scope' "$log" && break
		sleep 0.1
	done
	assert_eq "$(jq -r 'select(.msg | startswith("gc: that was the last scope")) | .pin_dir' "$log")" "$PIN" \
		"log: the last scope took the instance"
	for _ in $(seq 50); do
		[ "$(jq -r 'select(.msg == "loaded and pinned the data path") | .msg' "$log" | wc -l)" -ge 1 ] &&
			[ "$(http_code /healthz)" = 200 ] && break
		sleep 0.1
	done
	assert_eq "$(http_code /healthz)" 200 "/healthz after the next pass"
	assert_eq "$(sm_cli -j status | jq -r '"\(.loaded) \(.scopes | length)"')" "true 0" "loaded again, empty"
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	forget_pid "$pid"
	assert_eq "$rc" 0 "exit code"
}

# --flows: the daemon is the instance's flow consumer: per-scope series on
# /metrics (connections opened, open, a duration histogram, bytes by path)
# and, with --flow-log, the records as JSON lines; SIGHUP reopens the log
# after a rotation; `sockmesh flows` meanwhile names the daemon; once it
# stops nothing of it is left in the data path.
flows_metrics_and_log() {
	local pid rc=0 log="$TMP/sockmeshd.7.log" flog="$TMP/flows.jsonl" m i n want
	sm_cli enable --netns "$POD" --attach-cgroup "$CG"
	daemon_start "$log" 60 --flows --flow-log "$flog" --flow-interval 1
	pid=$(daemon_pid)
	for i in $(seq 50); do
		sm_cli status | grep -q "flows: followed (pid $pid)" && break
		sleep 0.1
	done
	assert_match "$(sm_cli status)" "flows: followed \\(pid $pid\\)" "status: the daemon follows flow events"
	assert_exit 1 "exit status of sockmesh flows meanwhile" sm_cli flows --duration 1
	assert_match "$(cat "$TMP/stderr")" "already followed on this instance \\(pid $pid\\)" "it names the daemon"
	for i in $(seq 10); do
		assert_proxied "$(curl_app $((42500 + i * 10))-$((42509 + i * 10)))" "request $i"
	done
	# the last close records reach the log within a poll or two
	for _ in $(seq 50); do
		[ "$(jq -s --arg s "netns:$POD" '[.[] | select(.scope == $s and .event == "close")] | length' "$flog")" -ge 10 ] && break
		sleep 0.1
	done
	n=$(jq -s --arg s "netns:$POD" '[.[] | select(.scope == $s and .event == "close" and .server == "'"$E2E_SRV4A"':80" and .direction == "outbound" and .path == "spliced")] | length' "$flog")
	assert_eq "$n" 10 "flow log: close records of the 10 requests (outbound, spliced, to the original destination)"
	assert_eq "$(jq -s --arg s "netns:$POD" '[.[] | select(.scope == $s and .event == "open")] | length' "$flog")" 10 \
		"flow log: open records"
	http /metrics >"$TMP/metrics.flows.txt"
	promtool check metrics <"$TMP/metrics.flows.txt"
	m=$("$E2E_PY" "$TMP/prom2json.py" <"$TMP/metrics.flows.txt")
	q() { jq -rs --arg n "$1" --arg s "$POD" --arg x "$2" --arg v "$3" \
		'[.[] | select(.name == $n and .labels.kind == "netns" and .labels.scope == $s and
		  (if $x == "" then true else .labels[$x] == $v end)) | .value] | add // 0 | floor' <<<"$m"; }
	assert_eq "$(q sockmesh_flows_opened_total direction outbound)" 10 "sockmesh_flows_opened_total{direction=outbound}"
	assert_eq "$(q sockmesh_flows_open "" "")" 0 "sockmesh_flows_open"
	assert_eq "$(q sockmesh_flow_duration_seconds_count "" "")" 10 "sockmesh_flow_duration_seconds_count"
	assert_eq "$(q sockmesh_flow_duration_seconds_bucket le +Inf)" 10 "the histogram's +Inf bucket"
	want=$(jq -s --arg s "netns:$POD" '[.[] | select(.scope == $s and .event == "close") | .bytes_to_client] | add' "$flog")
	assert_eq "$(jq -rs --arg s "$POD" '[.[] | select(.name == "sockmesh_flow_bytes_total" and .labels.scope == $s and
		.labels.path == "spliced" and .labels.direction == "to_client") | .value] | add | floor' <<<"$m")" "$want" \
		"sockmesh_flow_bytes_total{path=spliced,direction=to_client}: the log's bytes"
	assert_eq "$(metric "$m" sockmesh_flows_following "" "")" 1 "sockmesh_flows_following"
	# a rotation: the log moved away, SIGHUP, the next records in a new file
	mv "$flog" "$flog.1"
	kill -HUP "$pid"
	for _ in $(seq 50); do
		grep -q 'reopened the flow log' "$log" && break
		sleep 0.1
	done
	assert_proxied "$(curl_app 42700-42709)" "a request after the rotation"
	for _ in $(seq 50); do
		[ -s "$flog" ] && [ "$(jq -s 'map(select(.event == "close")) | length' "$flog")" -ge 1 ] && break
		sleep 0.1
	done
	assert_eq "$(jq -s 'map(select(.event == "close")) | length' "$flog")" 1 "the new flow log: the request's close record"
	rc=0
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	forget_pid "$pid"
	assert_eq "$rc" 0 "exit code"
	assert_match "$(sm_cli status)" "flows: not followed" "status once the daemon stopped"
	# bad usage: exit 2 naming the option
	for args in "--flow-log $TMP/x.jsonl" "--flows --flow-log relative.jsonl" "--flows --flow-interval 0" \
		"--flow-interval 5"; do
		# shellcheck disable=SC2086 # split on purpose
		assert_exit 2 "sockmeshd $args" "$SM_DAEMON" --pin-dir "$PIN" $args
	done
}

cleanup_on_exit_removes_everything() {
	local pid rc=0 log="$TMP/sockmeshd.6.log"
	daemon_start "$log" 1 --cleanup-on-exit
	pid=$(daemon_pid)
	sm_cli enable --netns "$POD" --attach-cgroup "$CG"
	assert_proxied "$(curl_app 42300-42399)" "captured before the daemon stops"
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	forget_pid "$pid"
	assert_eq "$rc" 0 "exit code"
	assert_eq "$([ -e "$PIN" ] && echo exists || echo gone)" gone "pin dir"
	assert_eq "$(cgroup_progs | wc -l)" 0 "programs at the cgroup"
	assert_eq "$(bpftool -j link show | jq --argjson cg "$CGID" '[.[] | select(.cgroup_id == $cg)] | length')" 0 \
		"links at the cgroup"
	assert_direct "$(curl_app 42400-42499)" "request after --cleanup-on-exit"
	assert_eq "$(sm_cli -j status | jq -r .loaded)" false "status: not loaded"
}

e2e_subtest bad_usage_exits_2 bad_usage_exits_2
e2e_subtest healthz_state_file_and_status healthz_state_file_and_status
e2e_subtest healthz_survives_idle_local_users healthz_survives_idle_local_users
e2e_subtest metrics_match_stats_and_traffic metrics_match_stats_and_traffic
e2e_subtest kill9_during_wrk_loses_nothing kill9_during_wrk_loses_nothing
e2e_subtest restart_adopts restart_adopts
e2e_subtest gc_withdraws_deleted_netns gc_withdraws_deleted_netns
e2e_subtest gc_withdraws_removed_cgroup gc_withdraws_removed_cgroup
e2e_subtest sigterm_exits_0_data_path_stays sigterm_exits_0_data_path_stays
e2e_subtest removed_instance_loaded_again removed_instance_loaded_again
e2e_subtest last_scope_gc_reloads last_scope_gc_reloads
e2e_subtest flows_metrics_and_log flows_metrics_and_log
e2e_subtest cleanup_on_exit_removes_everything cleanup_on_exit_removes_everything
e2e_finish
