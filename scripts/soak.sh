#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Soak (issue 12 item 5): bytes through the spliced paths, every one
# checked, with churn, for a set time or a set volume.
#
#   scripts/soak.sh [--duration SECONDS] [--bytes SIZE] [--max-size SIZE]
#
# Two pods on one node, each captured by sockmesh (cgroup scopes) and each
# with its own sidecar: pod A runs HAProxy (the README's config), pod B the
# reference sidecar. In each pod sm-soak opens connections to a server
# netns, over IPv4 from pod A (HAProxy asks SO_ORIGINAL_DST for IPv4
# sockets only: sock_inet_get_dst), over IPv4 and IPv6 from pod B: random
# sizes 1 B..64 MiB each way,
# both sides half-closing in either order, 2 % of connections reset by one
# side or the other in the middle, plus 50 small connections a second per
# pod opened and closed (100/s in all). Meanwhile extra pod netns are
# enrolled and withdrawn in a loop. sm-soak checks every byte (a pattern of
# seed and offset) and the summary line gives bytes, connections,
# corruptions, failures and the peak of kernel TCP memory. Exit 1 on any
# corruption or failure, or when the splice did not carry the bytes.
# Default: --duration 120 (what CI runs). docs/design.md has a 10 GB run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=../selftests/e2e/lib.sh
. "$ROOT/selftests/e2e/lib.sh"

duration=120
bytes=
max_size=64M
while [ $# -gt 0 ]; do
	case $1 in
	--duration) duration=$2; shift 2 ;;
	--bytes) bytes=$2; duration=; shift 2 ;;
	--max-size) max_size=$2; shift 2 ;;
	*) echo "usage: scripts/soak.sh [--duration SECONDS] [--bytes SIZE] [--max-size SIZE]" >&2; exit 2 ;;
	esac
done
SOAK=${SM_SOAK:-$ROOT/build/selftests/soak/sm-soak}
[ -x "$SOAK" ] || { echo "soak: $SOAK not built (ninja -C build)" >&2; exit 1; }

e2e_init soak
e2e_need_sockmesh
e2e_need_sidecar
CGA=$(sm_cgroup pod-a)
CGB=$(sm_cgroup pod-b)
CGC=$(sm_cgroup churn)
PODA=$(e2e_pod_netns pod-a)
PODB=$(e2e_pod_netns pod-b)
SRV=$(sm_netns srv)
PIN=$(sm_pindir pin)
sm_veth "$PODA" "$SRV" 10.77.0.1/24 10.77.0.2/24 fd77::1/64 fd77::2/64
sm_veth "$PODB" "$SRV" 10.78.0.1/24 10.78.0.2/24 fd78::1/64 fd78::2/64
CHURN=()
for i in 0 1 2 3; do CHURN+=("$(sm_netns "churn$i")"); done

# the server on both pairs' addresses, IPv4 and IPv6
sm_bg_log "$TMP/server.log" - "$SRV" "$SOAK" server 10.77.0.2:7000 '[fd77::2]:7000' \
	10.78.0.2:7000 '[fd78::2]:7000' >/dev/null
sm_wait_port "$SRV" 10.78.0.2 7000 || sm_die "soak server: $(cat "$TMP/server.log")"

E2E_HAP_MAXCONN=4000 E2E_HAP_TIMEOUT=120s e2e_haproxy_run hap "$CGA" "$PODA" "listen out
    bind 127.0.0.1:15001
    tcp-request connection reject if { dst_port 15001 } { dst 127.0.0.0/8 ::1 }
    server orig 0.0.0.0:0" 127.0.0.1:15001
e2e_sidecar_start ref "$CGB" "$PODB" 127.0.0.1:15001 "[::1]:15001"
sm_cli enable --cgroup "$CGA" >/dev/null
sm_cli enable --cgroup "$CGB" >/dev/null

# pods enrolled and withdrawn all along (no traffic of their own; their
# programs attach at a cgroup of ours, never the root)
churn_pods() {
	local i=0 ns
	while :; do
		ns=${CHURN[$((i % 4))]}
		sm_cli enable --netns "$ns" --attach-cgroup "$CGC" >/dev/null 2>>"$TMP/pod-churn.err" ||
			echo "enable $ns failed" >>"$TMP/pod-churn.err"
		sleep 0.2
		sm_cli disable --netns "$ns" --grace 0 >/dev/null 2>>"$TMP/pod-churn.err" ||
			echo "disable $ns failed" >>"$TMP/pod-churn.err"
		i=$((i + 1))
		echo "$i" >"$TMP/pod-cycles"
	done
}
churn_pods &
churn=$!

args=(--workers 4 --max-size "$max_size" --resets 2 --churn 50)
if [ -n "$bytes" ]; then
	# each pod moves half
	args+=(--bytes "$(($(numfmt --from=iec "$bytes") / 2))")
else
	args+=(--duration "$duration")
fi
sm_log "soak: ${bytes:-${duration} s}, sizes 1 B..$max_size, HAProxy (pod A) and the reference sidecar (pod B)"
sm_run "$CGA" "$PODA" "$SOAK" client "${args[@]}" --seed 1 10.77.0.2:7000 \
	>"$TMP/a.out" 2>"$TMP/a.err" &
a=$!
sm_run "$CGB" "$PODB" "$SOAK" client "${args[@]}" --seed 2 10.78.0.2:7000 '[fd78::2]:7000' \
	>"$TMP/b.out" 2>"$TMP/b.err" &
b=$!
rca=0 rcb=0
wait "$a" || rca=$?
wait "$b" || rcb=$?
kill "$churn" 2>/dev/null || true
wait "$churn" 2>/dev/null || true
s1=$(sm_cli -j stats)

for p in a b; do
	sed "s/^/  pod $p: /" "$TMP/$p.out"
	head -20 "$TMP/$p.err" | sed "s/^/  pod $p stderr: /"
done
grep -v '^server: listening' "$TMP/server.log" | head -20 | sed 's/^/  server: /' || true

# sums over both pods' summary lines
sum() { awk -v k="$1" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) s += kv[2] } } END { printf "%.0f\n", s }' \
	"$TMP/a.out" "$TMP/b.out"; }
maxof() { awk -v k="$1" '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k && kv[2] > m) m = kv[2] } } END { print m + 0 }' \
	"$TMP/a.out" "$TMP/b.out"; }
spliced=$(jq '[.scopes[] | select(.kind == "cgroup") | .counters.splice_bytes] | add // 0' <<<"$s1")
total=$(sum bytes)
echo "soak: bytes=$total conns=$(sum conns) churn=$(sum churn) resets=$(sum resets)" \
	"corruptions=$(sum corruptions) failures=$(sum failures)" \
	"peak_tcp_mem_mib=$(maxof peak_tcp_mem_mib) spliced_bytes=$spliced" \
	"pod_cycles=$(cat "$TMP/pod-cycles" 2>/dev/null || echo 0) duration_s=$(maxof duration_s)"
rc=0
if [ "$rca" != 0 ] || [ "$rcb" != 0 ] || [ "$(sum corruptions)" != 0 ] || [ "$(sum failures)" != 0 ]; then
	echo "soak: FAIL: corruptions or failures (client exit $rca/$rcb)"
	rc=1
fi
# every payload byte crosses one app<->proxy leg; a slow reader's sends may
# take the stack for a while (splice budget), most must be spliced
[ "$((spliced * 2))" -ge "$total" ] || { echo "soak: FAIL: only $spliced bytes spliced for $total moved"; rc=1; }
if [ -s "$TMP/pod-churn.err" ]; then
	echo "soak: FAIL: pod churn: $(head -5 "$TMP/pod-churn.err")"
	rc=1
fi
[ "$total" -gt 0 ] || { echo "soak: FAIL: nothing moved"; rc=1; }
if [ $rc = 0 ]; then
	echo "soak: PASS"
else
	tail -5 "$TMP/hap.log" | sed 's/^/  haproxy: /'
	tail -5 "$TMP/ref.err" | sed 's/^/  sidecar: /'
	[ -z "${SOAK_KEEP:-}" ] || cp -r "$TMP" "$SOAK_KEEP"
fi
exit $rc
