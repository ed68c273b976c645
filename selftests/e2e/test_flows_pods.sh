#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Flow events of pods (netns scopes, HAProxy sidecars): pod A's app asks
# pod B's app, and a client outside the pods asks pod B. Every connection
# has one open and one close record in each scope it crosses:
#   A: outbound, the app's socket to B's address (spliced app<->proxy)
#   B: pod-to-pod, A's sidecar to B's (spliced across the netns)
#   B: inbound, the outside client (TCP: TCP's own counts)
# with the bytes the client sent and received. The tap of pod B has the
# outside client's connection whole (followed by its segments).
#
#   poda 10.77.0.1  <-veth->  podb 10.77.0.2 / 10.79.0.1  <-veth->  ext 10.79.0.2
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=lib_pod.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_pod.sh"

e2e_init flows_pods
e2e_need_sockmesh
CG=$(sm_cgroup pods)
PIN=$(sm_pindir pin)
PODA=$(e2e_pod_netns poda)
PODB=$(e2e_pod_netns podb)
EXT=$(sm_netns ext)
sm_veth "$PODA" "$PODB" 10.77.0.1/24 10.77.0.2/24
sm_veth "$EXT" "$PODB" 10.79.0.2/24 10.79.0.1/24
sm_cli enable --netns "$PODA" --attach-cgroup "$CG"
sm_cli enable --netns "$PODB" --attach-cgroup "$CG"
e2e_haproxy_pod_start hapa "$CG" "$PODA"
e2e_haproxy_pod_start hapb "$CG" "$PODB"
e2e_pyserver hashb - "$PODB" hash-server 0.0.0.0 9000

pods_and_outside() {
	local f="$TMP/flows.jsonl" fpid
	e2e_cli_bg flows "$f" "$f.err" following flows -j --follow
	fpid=$E2E_BG_PID
	e2e_tcptool "$CG" "$PODA" parallel 10.77.0.2 9000 --count 5 --size 3000 >"$TMP/from_a"
	e2e_tcptool - "$EXT" parallel 10.79.0.1 9000 --count 5 --size 7000 >"$TMP/from_ext"
	sleep 0.5
	kill -INT "$fpid"
	wait "$fpid"
	sm_log "    $(wc -l <"$f") records"
	assert_eq "$("$E2E_PY" - "$f" "$TMP/from_a" "$TMP/from_ext" "$PODA" "$PODB" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
from_a = [json.loads(l) for l in open(sys.argv[2])]
from_ext = [json.loads(l) for l in open(sys.argv[3])]
sa, sb = "netns:" + sys.argv[4], "netns:" + sys.argv[5]
out = []
def closes(scope, direction):
    return [r for r in recs if r["event"] == "close" and r["scope"] == scope and r["direction"] == direction]
def opens(scope, direction):
    return [r for r in recs if r["event"] == "open" and r["scope"] == scope and r["direction"] == direction]
# A's outbound records: the app's own sockets, to B's address, spliced
c = closes(sa, "outbound")
ok = len(c) == 5 and len(opens(sa, "outbound")) == 5 and all(
    any(r["client"] == x["local"] and (r["bytes_to_server"], r["bytes_to_client"]) == (x["sent"], x["received"])
        and r["server"] == "10.77.0.2:9000" and r["path"] == "spliced" for r in c) for x in from_a)
out.append("A outbound %s" % ("ok" if ok else [(r["client"], r["bytes_to_server"], r["path"]) for r in c]))
# B's pod-to-pod records: A's sidecar's connections, the same bytes
c = closes(sb, "pod-to-pod")
got = sorted((r["bytes_to_server"], r["bytes_to_client"]) for r in c)
want = sorted((x["sent"], x["received"]) for x in from_a)
ok = got == want and len(opens(sb, "pod-to-pod")) == 5 and all(
    r["client"].startswith("10.77.0.1:") and r["server"] == "10.77.0.2:9000" and r["path"] == "spliced" for r in c)
out.append("B pod-to-pod %s" % ("ok" if ok else [(r["client"], r["bytes_to_server"], r["bytes_to_client"], r["path"]) for r in c]))
# B's inbound records: the outside client, over TCP
c = closes(sb, "inbound")
ok = len(c) == 5 and len(opens(sb, "inbound")) == 5 and all(
    any(r["client"] == x["local"] and (r["bytes_to_server"], r["bytes_to_client"]) == (x["sent"], x["received"])
        and r["server"] == "10.79.0.1:9000" and r["path"] == "tcp" for r in c) for x in from_ext)
out.append("B inbound %s" % ("ok" if ok else [(r["client"], r["bytes_to_server"], r["bytes_to_client"], r["path"]) for r in c]))
others = [r for r in recs if r["scope"] not in (sa, sb)]
out.append("%d other records" % len(others))
print("; ".join(out))
PY
)" "A outbound ok; B pod-to-pod ok; B inbound ok; 0 other records" \
		"each connection once at open and close in each scope it crosses, with its bytes"
}

# The tap of pod B while the outside client sends 1 MiB: its inbound
# connection (steered to the sidecar without NAT, never spliced) is in the
# capture by its segments, with its real endpoints, the handshake, both
# directions whole; the sidecar's leg to the app (spliced) beside it.
tap_inbound_outside() {
	local f="$TMP/in.pcapng" reply s
	command -v tshark >/dev/null || sm_die "tshark not installed (scripts/bootstrap.sh installs it)"
	head -c 1048576 /dev/urandom >"$TMP/up.bin"
	e2e_cli_bg tap /dev/null "$f.err" tapping tap --netns "$PODB" -w "$f"
	reply=$(e2e_tcptool - "$EXT" client 10.79.0.1 9000 --send "$TMP/up.bin" --shut-wr)
	sleep 0.3
	kill -INT "$E2E_BG_PID"
	wait "$E2E_BG_PID"
	sm_log "    $(grep 'sockmesh tap:' "$f.err" | tail -1)"
	assert_eq "$reply" "$(sha256sum "$TMP/up.bin" | cut -d' ' -f1) 1048576" "upload the app received"
	assert_eq "$(tshark -r "$f" -Y 'ip.src == 10.79.0.2 && tcp.dstport == 9000 && tcp.flags.syn == 1' 2>/dev/null | wc -l)" 1 \
		"the outside client's SYN to 10.79.0.1:9000"
	s=$(tshark -r "$f" -Y 'ip.addr == 10.79.0.2' -T fields -e tcp.stream 2>/dev/null | sort -u)
	assert_match "$s" "^[0-9]+$" "one inbound connection in the capture"
	tshark -r "$f" -q -z "follow,tcp,raw,$s" 2>/dev/null | "$E2E_PY" -c '
import sys
out = [bytearray(), bytearray()]
body = False
for line in sys.stdin:
    if line.startswith("====="):
        body = not body if (out[0] or out[1] or body) else True
        continue
    if not body or not line.strip() or line.startswith(("Follow:", "Filter:", "Node ")):
        continue
    out[line.startswith("\t")] += bytes.fromhex(line.strip())
open(sys.argv[1], "wb").write(out[0])
open(sys.argv[2], "wb").write(out[1])' "$TMP/in.c2s" "$TMP/in.s2c"
	assert_eq "$(sha256sum <"$TMP/in.c2s" | cut -d' ' -f1)" "$(sha256sum <"$TMP/up.bin" | cut -d' ' -f1)" \
		"tshark follow: client -> server"
	assert_eq "$(cat "$TMP/in.s2c")" "$reply" "tshark follow: server -> client"
	assert_eq "$(tshark -r "$f" -Y "tcp.stream == $s && tcp.flags.fin == 1" 2>/dev/null | wc -l)" 2 "its FINs"
	assert_eq "$(tshark -r "$f" -Y "tcp.stream == $s && tcp.analysis.lost_segment" 2>/dev/null | wc -l)" 0 \
		"segments tshark finds missing"
	assert_ge "$(tshark -r "$f" -Y "tcp.stream == $s && frame.comment contains \"netns:$PODB; tcp stack\"" 2>/dev/null | wc -l)" 1 \
		"frames marked with the pod's scope and the TCP stack"
}

e2e_subtest "pod to pod and from outside: outbound, pod-to-pod and inbound records" pods_and_outside
e2e_subtest "tap: an outside client's inbound connection (steered, never spliced) is whole" tap_inbound_outside
e2e_finish
