#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Kernel fast path through the reference sidecar (sockmesh-sidecar
# --fast-path): every captured outbound connection is handed to the kernel
# once its upstream is connected. Transfers of every size arrive
# byte-identical both ways, the half-close crosses, the counters move, the
# sidecar process reads almost none of the payload (/proc/PID/io rchar),
# and killing the sidecar -9 leaves the app with EOF or an error, never a
# hang.
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
		fastpath_conns=1 'fastpath_bytes=*' 'fastpath_fallbacks=*' 'splice_sockets=*' \
		'splice_msgs=*' 'splice_bytes=*' splice_miss=0 'splice_budget_fallbacks=*'
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

for i in "${!SIZES[@]}"; do
	e2e_subtest "upload_${SIZES[$i]}B_arrives_intact" upload_arrives_intact "${SIZES[$i]}"
	e2e_subtest "download_${SIZES[$i]}B_arrives_intact" download_arrives_intact "${SIZES[$i]}" "$i"
done
e2e_subtest half_close_then_read_reply e2e_half_close_reply upload
e2e_subtest sidecar_log_shows_the_switch sidecar_log_shows_the_switch
e2e_subtest sidecar_killed_mid_transfer sidecar_killed_mid_transfer
e2e_finish
