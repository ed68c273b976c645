#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Kernel fast path through the reference sidecar (sockmesh-sidecar
# --fast-path): every captured outbound connection is handed to the kernel
# once its upstream is connected. Transfers of every size arrive
# byte-identical both ways, the half-close crosses, the counters move, the
# sidecar process reads almost none of the payload (/proc/PID/io rchar),
# and killing the sidecar -9 leaves the app with EOF or an error, never a
# hang. Inbound too: a client outside the pod, steered to the sidecar's
# 15006 listener; the sidecar's connection to its app is spliced, and the
# kernel forwards between that leg and the client's connection. Pod to pod
# on one node, both pods' sidecars switch: the apps' sockets then exchange
# the bytes directly.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init fastpath
e2e_need_sockmesh
e2e_need_sidecar
e2e_topology

SIZES=(1 4096 65536 1048576 16777216 67108864)
HASH_PORT=9000
for i in "${!SIZES[@]}"; do
	head -c "${SIZES[$i]}" /dev/urandom >"$TMP/data.${SIZES[$i]}"
	# the sidecar switches while the connection is still quiet
	e2e_pyserver "send.${SIZES[$i]}" - "$SRV" send-server "$E2E_SRV4A" $((9100 + i)) "$TMP/data.${SIZES[$i]}" \
		--delay 0.3
done
e2e_pyserver hash - "$SRV" hash-server "$E2E_SRV4A" "$HASH_PORT"
sm_cli enable --cgroup "$CG"
# after enable: the sidecar opens the instance when it starts
e2e_sidecar_start car "$CG" "$POD" 127.0.0.1:15001 --fast-path --pin-dir "$PIN"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }
# the app sends once the sidecar had time to switch, as a client that
# sends a request after its handshake does
upload() {
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" "$HASH_PORT" --send "$1" --shut-wr --delay 0.3
}
# bytes the sidecar process read through read-like system calls so far
sidecar_pid() { cat "$TMP/car.pidfile"; }
sidecar_rchar() { awk '/^rchar:/ { print $2 }' "/proc/$(sidecar_pid)/io"; }

# one captured connection, handed to the kernel; of the bytes, at least MIN
# forwarded by it
assert_fast_conn() {
	assert_deltas "$1" "$2" "$3" captured=1 origdst_published=1 origdst_answered=1 bypass_proxy_uid=1 \
		fastpath_conns=1 'fastpath_bytes=*' 'fastpath_resent_cut=*' 'fastpath_fallbacks=*' 'splice_sockets=*' \
		'splice_msgs=*' 'splice_bytes=*' splice_miss=0 'splice_budget_fallbacks=*' 'splice_fin_held=*'
	assert_ge "$(stat_delta "$1" "$2" fastpath_bytes)" "$4" "$3: bytes the kernel forwarded"
}

stat_delta() { echo $(($(e2e_counter "$2" "$3") - $(e2e_counter "$1" "$3"))); }

# a fast path that silently fell back would have the sidecar read it all
assert_sidecar_read_little() {
	[ "$3" -lt 16777216 ] || assert_ge $(($3 / 100)) $(($2 - $1)) "sidecar rchar grew by < 1 % of $3 B"
}

upload_arrives_intact() {
	local size=$1 f="$TMP/data.$1" s0 s1 reply r0 r1
	s0=$(e2e_stats --cgroup "$CG")
	r0=$(sidecar_rchar)
	reply=$(upload "$f")
	r1=$(sidecar_rchar)
	s1=$(e2e_stats --cgroup "$CG")
	assert_eq "$reply" "$(sha_of "$f") $size" "sha256 and count the server received"
	# all of it by the kernel (what the pump relayed would show in rchar)
	assert_fast_conn "$s0" "$s1" "upload of $size B" "$size"
	assert_sidecar_read_little "$r0" "$r1" "$size"
}

download_arrives_intact() {
	local size=$1 i=$2 f="$TMP/data.$1" s0 s1 r0 r1
	s0=$(e2e_stats --cgroup "$CG")
	r0=$(sidecar_rchar)
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" $((9100 + i)) --out "$TMP/got.$size"
	r1=$(sidecar_rchar)
	s1=$(e2e_stats --cgroup "$CG")
	assert_eq "$(stat -c %s "$TMP/got.$size")" "$size" "bytes the app received"
	assert_eq "$(sha_of "$TMP/got.$size")" "$(sha_of "$f")" "sha256 of what the app received"
	# the app's reader (Python) is slower than the server: past 8 MiB
	# unread the kernel hands the rest to the sidecar's pump (bounded
	# memory); so only the first part is the kernel's for sure
	assert_fast_conn "$s0" "$s1" "download of $size B" $((size < 4194304 ? size : 4194304))
	sm_log "    download of $size B: sidecar read $((r1 - r0)) B (rchar)"
}

sidecar_log_shows_the_switch() {
	assert_ge "$(grep -c '^fast-path orig=' "$TMP/car.log")" $((2 * ${#SIZES[@]})) "connections switched"
	grep '^fast-path-refused' "$TMP/car.log" | sed 's/^/    /' >&2 || true
	assert_eq "$(grep -c '^fast-path-refused' "$TMP/car.log" || true)" 0 "switches refused"
}

# The sidecar dies (-9) while a download runs on the fast path: its sockets
# close with it; the app sees EOF or a reset within seconds, never hangs.
sidecar_killed_mid_transfer() {
	local rc=0 t0=$SECONDS got
	e2e_pyserver slow - "$SRV" send-server "$E2E_SRV4A" 9200 "$TMP/data.67108864" --delay 0.3 --pace 0.05
	sm_bg_log "$TMP/victim.out" "$CG" "$POD" "$E2E_PY" "$E2E_TCPTOOL" --timeout 60 client "$E2E_SRV4A" 9200 \
		--out "$TMP/victim.got" >"$TMP/victim.pid"
	sleep 1
	kill -9 "$(sidecar_pid)"
	# the app's client returns (EOF or error) on its own
	for _ in $(seq 100); do
		kill -0 "$(cat "$TMP/victim.pid")" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$(cat "$TMP/victim.pid")" 2>/dev/null; then
		rc=1
		kill "$(cat "$TMP/victim.pid")"
	fi
	got=$(stat -c %s "$TMP/victim.got" 2>/dev/null || echo 0)
	sm_log "    app got $got of 67108864 B, then: $(tail -n 1 "$TMP/victim.out" 2>/dev/null) ($((SECONDS - t0)) s)"
	assert_eq "$rc" 0 "the app's transfer ended within 10 s"
	assert_ge $((67108864 - 1)) "$got" "the app did not get everything (the sidecar died mid-way)"
}

# ---- inbound: pod2 (netns scope, attach cgroup CG2), client in srv2 ----
CG2=$(sm_cgroup app2)
POD2=$(e2e_pod_netns pod2)
SRV2=$(sm_netns srv2)
e2e_pod_pair "$POD2" "$SRV2" 78
POD2_4=10.78.0.1
sm_cli enable --netns "$POD2" --attach-cgroup "$CG2"
# the app, in the pod and the attach cgroup (sockops sees its listen())
e2e_pyserver app2-hash "$CG2" "$POD2" hash-server "$POD2_4" 8080
e2e_pyserver app2-send "$CG2" "$POD2" send-server "$POD2_4" 8081 "$TMP/data.16777216" --delay 0.3
e2e_sidecar_start car2 "$CG2" "$POD2" 127.0.0.1:15006 --fast-path --pin-dir "$PIN"
car2_rchar() { awk '/^rchar:/ { print $2 }' "/proc/$(cat "$TMP/car2.pidfile")/io"; }

# one steered connection, the sidecar's leg to the app spliced, both
# handed to the kernel
assert_fast_inbound() {
	assert_deltas "$1" "$2" "$3" inbound_captured=1 'origdst_answered=*' 'bypass_proxy_uid=*' \
		splice_local_legs=1 splice_sockets=2 'splice_msgs=*' 'splice_bytes=*' splice_miss=0 \
		'splice_budget_fallbacks=*' 'splice_fin_held=*' fastpath_conns=1 'fastpath_bytes=*' 'fastpath_resent_cut=*' 'fastpath_fallbacks=*'
	assert_ge "$(stat_delta "$1" "$2" fastpath_bytes)" "$4" "$3: bytes the kernel forwarded"
}

inbound_upload_arrives_intact() {
	local size=$1 f="$TMP/data.$1" s0 s1 reply r0 r1
	s0=$(e2e_stats --netns "$POD2")
	r0=$(car2_rchar)
	reply=$(e2e_tcptool - "$SRV2" client "$POD2_4" 8080 --send "$f" --shut-wr --delay 0.3)
	r1=$(car2_rchar)
	s1=$(e2e_stats --netns "$POD2")
	assert_eq "$reply" "$(sha_of "$f") $size" "sha256 and count the app received"
	# the app's reader (Python) is slower than the client: past 8 MiB
	# unread the kernel hands the rest to the sidecar's pump (as for the
	# outbound download)
	assert_fast_inbound "$s0" "$s1" "inbound upload of $size B" $((size < 4194304 ? size : 4194304))
	sm_log "    inbound upload of $size B: sidecar read $((r1 - r0)) B (rchar)"
}

inbound_download_arrives_intact() {
	local size=16777216 s0 s1 r0 r1
	s0=$(e2e_stats --netns "$POD2")
	r0=$(car2_rchar)
	e2e_tcptool - "$SRV2" client "$POD2_4" 8081 --out "$TMP/in-got"
	r1=$(car2_rchar)
	s1=$(e2e_stats --netns "$POD2")
	assert_eq "$(sha_of "$TMP/in-got")" "$(sha_of "$TMP/data.$size")" "sha256 of what the client received"
	# app -> client: the app's sends go out of the client's socket
	# directly (TCP's window throttles the app): all by the kernel
	assert_fast_inbound "$s0" "$s1" "inbound download of $size B" "$size"
	assert_sidecar_read_little "$r0" "$r1" "$size"
}

inbound_sidecar_log_shows_the_switch() {
	grep '^fast-path-refused' "$TMP/car2.log" | sed 's/^/    /' >&2 || true
	assert_eq "$(grep -c '^fast-path-refused' "$TMP/car2.log" || true)" 0 "switches refused"
	assert_ge "$(grep -c '^fast-path orig=' "$TMP/car2.log")" 3 "connections switched"
}

# ---- pod to pod: podc's app -> podc's sidecar -> podd's sidecar -> podd's app
CG3=$(sm_cgroup pods3)
PODC=$(e2e_pod_netns podc)
PODD=$(e2e_pod_netns podd)
C4=10.79.0.1
D4=10.79.0.2
sm_veth "$PODC" "$PODD" "$C4/24" "$D4/24"
sm_cli enable --netns "$PODC" --attach-cgroup "$CG3"
sm_cli enable --netns "$PODD" --attach-cgroup "$CG3"
e2e_pyserver appd-hash "$CG3" "$PODD" hash-server "$D4" 8080
e2e_pyserver appd-send "$CG3" "$PODD" send-server "$D4" 8081 "$TMP/data.1048576" --delay 0.3
e2e_sidecar_start car3 "$CG3" "$PODC" 127.0.0.1:15001 --fast-path --pin-dir "$PIN"
e2e_sidecar_start car4 "$CG3" "$PODD" 127.0.0.1:15006 --fast-path --pin-dir "$PIN"
rchar_of() { awk '/^rchar:/ { print $2 }' "/proc/$(cat "$TMP/$1.pidfile")/io"; }

# both sidecars switched: each scope one fast-path connection, every byte
# past both sidecars by the kernel (1 MiB: within the splice budget, no
# reader falls a budget behind). Each sidecar process reads a little per
# connection here (64 KiB in the runs so far, not the payload: the kernel
# counted all of it), so the bound is an eighth of the bytes moved.
assert_fast_pod_to_pod() {
	local what=$1 size=$2 c0=$3 c1=$4 d0=$5 d1=$6 r3=$7 r4=$8
	assert_deltas "$c0" "$c1" "$what, pod c" captured=1 origdst_published=1 origdst_answered=1 \
		'bypass_proxy_uid=*' splice_sockets=3 'splice_msgs=*' 'splice_bytes=*' splice_miss=0 \
		fastpath_conns=1 'fastpath_bytes=*' 'fastpath_resent_cut=*' fastpath_fallbacks=0
	assert_deltas "$d0" "$d1" "$what, pod d" inbound_captured=1 'origdst_answered=*' \
		'bypass_proxy_uid=*' splice_sockets=3 splice_local_legs=1 'splice_msgs=*' 'splice_bytes=*' \
		splice_miss=0 fastpath_conns=1 'fastpath_bytes=*' 'fastpath_resent_cut=*' fastpath_fallbacks=0
	assert_ge "$(stat_delta "$c0" "$c1" fastpath_bytes)" "$size" "$what: bytes past pod c's sidecar"
	assert_ge "$(stat_delta "$d0" "$d1" fastpath_bytes)" "$size" "$what: bytes past pod d's sidecar"
	assert_ge $((size / 8)) "$r3" "$what: pod c's sidecar read (rchar)"
	assert_ge $((size / 8)) "$r4" "$what: pod d's sidecar read (rchar)"
}

pod_to_pod_upload_arrives_intact() {
	local size=1048576 f="$TMP/data.1048576" c0 c1 d0 d1 a0 a1 b0 b1 reply
	c0=$(e2e_stats --netns "$PODC")
	d0=$(e2e_stats --netns "$PODD")
	a0=$(rchar_of car3)
	b0=$(rchar_of car4)
	reply=$(e2e_tcptool "$CG3" "$PODC" client "$D4" 8080 --send "$f" --shut-wr --delay 0.3)
	a1=$(rchar_of car3)
	b1=$(rchar_of car4)
	c1=$(e2e_stats --netns "$PODC")
	d1=$(e2e_stats --netns "$PODD")
	assert_eq "$reply" "$(sha_of "$f") $size" "sha256 and count pod d's app received"
	assert_fast_pod_to_pod "upload of $size B" "$size" "$c0" "$c1" "$d0" "$d1" $((a1 - a0)) $((b1 - b0))
}

pod_to_pod_download_arrives_intact() {
	local size=1048576 c0 c1 d0 d1 a0 a1 b0 b1
	c0=$(e2e_stats --netns "$PODC")
	d0=$(e2e_stats --netns "$PODD")
	a0=$(rchar_of car3)
	b0=$(rchar_of car4)
	e2e_tcptool "$CG3" "$PODC" client "$D4" 8081 --out "$TMP/p2p-got"
	a1=$(rchar_of car3)
	b1=$(rchar_of car4)
	c1=$(e2e_stats --netns "$PODC")
	d1=$(e2e_stats --netns "$PODD")
	assert_eq "$(sha_of "$TMP/p2p-got")" "$(sha_of "$TMP/data.$size")" "sha256 of what pod c's app received"
	assert_fast_pod_to_pod "download of $size B" "$size" "$c0" "$c1" "$d0" "$d1" $((a1 - a0)) $((b1 - b0))
}

for i in "${!SIZES[@]}"; do
	e2e_subtest "upload_${SIZES[$i]}B_arrives_intact" upload_arrives_intact "${SIZES[$i]}"
	e2e_subtest "download_${SIZES[$i]}B_arrives_intact" download_arrives_intact "${SIZES[$i]}" "$i"
done
e2e_subtest half_close_then_read_reply e2e_half_close_reply upload
e2e_subtest sidecar_log_shows_the_switch sidecar_log_shows_the_switch
e2e_subtest inbound_upload_1B_arrives_intact inbound_upload_arrives_intact 1
e2e_subtest inbound_upload_64MiB_arrives_intact inbound_upload_arrives_intact 67108864
e2e_subtest inbound_download_16MiB_arrives_intact inbound_download_arrives_intact
e2e_subtest inbound_sidecar_log_shows_the_switch inbound_sidecar_log_shows_the_switch
e2e_subtest pod_to_pod_upload_1MiB_arrives_intact pod_to_pod_upload_arrives_intact
e2e_subtest pod_to_pod_download_1MiB_arrives_intact pod_to_pod_download_arrives_intact
e2e_subtest sidecar_killed_mid_transfer sidecar_killed_mid_transfer
e2e_finish
