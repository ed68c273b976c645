#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Live upgrade and downgrade (issue 12 item 1): `sockmesh upgrade` loads
# another build's data path into the running instance. The second build is
# this tree with -Dlayout_variant=true (a changed connect program, and
# stats_map's values one counter longer), built here into
# build/layout-variant. Under wrk (keep-alive and Connection: close) and
# 64 MiB transfers both ways through HAProxy, 20 cycles of upgrade to the
# variant and back: no failed request, no wrong byte, every link the same
# link (updated in place) with a new program, the counters moving for new
# connections after each step, and a CLI of the other build refusing the
# instance until it is upgraded (it would misread the counters).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init upgrade
e2e_need_sockmesh
SOAK=${SM_SOAK:-$SM_BUILD/selftests/soak/sm-soak}
[ -x "$SOAK" ] || sm_die "sm-soak not built: $SOAK"

# The variant build (incremental after the first time).
VDIR=${SM_VARIANT_BUILD:-$SM_BUILD/layout-variant}
if [ ! -f "$VDIR/build.ninja" ]; then
	meson setup "$VDIR" "$SM_ROOT" -Dlayout_variant=true -Dtests=false -Dman=disabled \
		>"$TMP/variant-setup.log" 2>&1 || sm_die "variant setup: $(tail -20 "$TMP/variant-setup.log")"
fi
ninja -C "$VDIR" user/cli/sockmesh >"$TMP/variant-build.log" 2>&1 ||
	sm_die "variant build: $(tail -20 "$TMP/variant-build.log")"
VCLI=$VDIR/user/cli/sockmesh
v_cli() { timeout 30 "$VCLI" --pin-dir "$PIN" "$@"; }

e2e_topology
e2e_nginx_start web "$SRV" "$E2E_SRV4A:80 srv-a"
sm_bg_log "$TMP/soak-server.log" - "$SRV" "$SOAK" server "$E2E_SRV4A:7000" >/dev/null
sm_wait_port "$SRV" "$E2E_SRV4A" 7000 || sm_die "soak server: $(cat "$TMP/soak-server.log")"
E2E_HAP_TIMEOUT=120s e2e_haproxy_start hap "$CG" "$POD"
# On 6.18 the 64 MiB transfers stay spliced from end to end (the issue's
# "spliced both ways"): a budget above their size, so none leaves the
# splice when HAProxy falls behind; with the default budget 6 runs of 34
# (session 16) still ended one upload early there, and 1 of 47 one download
# on another machine (session 17; docs/design.md, "Splice": the
# FIN waits for the spliced bytes; HAProxy reads the client's upload only
# in part, then ends the session as if the client had finished;
# E2E_HAP_LOGALL=1 shows its byte counts). Not in the 6.1 guest: its little memory
# puts 1 GiB budgets under TCP memory pressure, where a redirecting writer
# waits for memory nobody wakes it for (the reason for the budget); the
# default budget there (no resume on 6.1: the residual case did not show).
# E2E_UPGRADE_BUDGET overrides.
budget=${E2E_UPGRADE_BUDGET:-$([ -n "${SOCKMESH_IN_VM:-}" ] && echo 8M || echo 1G)}
sm_cli enable --cgroup "$CG" --splice-budget "$budget" >/dev/null

# link_id PIN_NAME / link_prog PIN_NAME: a pinned link's id and its program's
link_id() { bpftool -j link show pinned "$PIN/$1" | jq -r .id; }
link_prog() { bpftool -j link show pinned "$PIN/$1" | jq -r .prog_id; }
CGID=$(stat -c %i "$CG")
# counter CLI NAME: a counter of the cgroup scope, read with that build's CLI
counter() { "$1" --pin-dir "$PIN" -j stats --cgroup "$CG" | jq -r ".scopes[0].counters.$2"; }

same_build_is_a_no_op() {
	local out
	out=$(sm_cli upgrade)
	assert_match "$out" '^already running this build' "upgrade to the build already loaded"
	assert_eq "$(sm_cli -j upgrade | jq .upgraded)" false "-j says so"
	# nothing loaded: refused, and no lock file left behind
	local rc=0 err none=/sys/fs/bpf/$SM_TAG-none
	err=$(timeout 30 "$SM_CLI" --pin-dir "$none" upgrade 2>&1) || rc=$?
	assert_eq "$rc" 1 "upgrade with nothing loaded: exit status"
	assert_match "$err" "nothing is loaded at pin dir '$none'" "it says so"
	assert_eq "$(find /run/lock -maxdepth 1 -name "*$SM_TAG-none*" | wc -l)" 0 "lock files left"
	assert_eq "$(test -e "$none" && echo exists || echo absent)" absent "pin dir"
}

# CLI_FROM CLI_TO: one step under load, its checks in $TMP/steps
step() {
	local from=$1 to=$2 name=$3 c0 s0 v0 out c1 s1 v1 i
	c0=$(counter "$from" captured)
	s0=$(counter "$from" splice_msgs)
	out=$("$to" --pin-dir "$PIN" upgrade) || { echo "upgrade to $name failed" >>"$TMP/steps"; return 0; }
	[[ $out == upgraded* ]] || echo "upgrade to $name said: $out" >>"$TMP/steps"
	if "$from" --pin-dir "$PIN" status >/dev/null 2>"$TMP/refused.err"; then
		echo "the other build's CLI opened the $name instance" >>"$TMP/steps"
	elif ! grep -q "run 'sockmesh upgrade'" "$TMP/refused.err"; then
		echo "the other build's CLI refused without saying why: $(cat "$TMP/refused.err")" >>"$TMP/steps"
	fi
	# the counters carried over and moving: new connections are captured
	# and spliced by the new programs
	v0=$(counter "$to" captured)
	[ "$v0" -ge "$c0" ] || echo "captured went back from $c0 to $v0 ($name)" >>"$TMP/steps"
	# up to 10 s: a loaded 2-CPU machine once took longer than 5 s
	for ((i = 0; i < 100; i++)); do
		c1=$(counter "$to" captured)
		s1=$(counter "$to" splice_msgs)
		[ "$c1" -gt "$v0" ] && [ "$s1" -gt "$s0" ] && break
		sleep 0.1
	done
	[ "$c1" -gt "$v0" ] || echo "captured did not move after the upgrade to $name" >>"$TMP/steps"
	[ "$s1" -gt "$s0" ] || echo "splice_msgs did not move after the upgrade to $name" >>"$TMP/steps"
	if [ "$name" = variant ]; then
		v1=$(counter "$to" upgrade_variant)
		[ "$v1" -gt 0 ] || echo "the variant's own counter did not move ($v1)" >>"$TMP/steps"
	fi
	link_prog "link_${CGID}_connect4" >>"$TMP/progs"
}

# load NAME CMD...: CMD (a 10 s run) again and again in the pod until
# $TMP/stop appears; run k's output in $TMP/NAME.k. Runs as long as the
# cycles take, on a fast host or in the emulated 6.1 guest.
load() {
	local name=$1 k=0
	shift
	while [ ! -e "$TMP/stop" ]; do
		k=$((k + 1))
		sm_run "$CG" "$POD" "$@" >"$TMP/$name.$k" 2>&1 || echo "exit status $?" >>"$TMP/$name.$k"
	done
}

# E2E_UPGRADE_CYCLES (default 20; 4 in the emulated 6.1 guest) cycles of upgrade to the variant and back
cycles_under_load() {
	local n=${E2E_UPGRADE_CYCLES:-$([ -n "${SOCKMESH_IN_VM:-}" ] && echo 4 || echo 20)} i lid0 lid1 pids=() out t0 f reqs
	: >"$TMP/steps"
	: >"$TMP/progs"
	rm -f "$TMP/stop"
	lid0=$(link_id "link_${CGID}_connect4")
	link_prog "link_${CGID}_connect4" >>"$TMP/progs"
	load ka wrk -t 1 -c 8 -d 10s --timeout 5s "http://$E2E_SRV4A/" &
	pids+=($!)
	load close wrk -t 1 -c 8 -d 10s --timeout 5s -H 'Connection: close' "http://$E2E_SRV4A/" &
	pids+=($!)
	load soak "$SOAK" client --workers 2 --size 64M --duration 10 "$E2E_SRV4A:7000" &
	pids+=($!)
	sleep 2
	t0=$SECONDS
	for ((i = 0; i < n; i++)); do
		if [ -n "${E2E_UPGRADE_CONTROL:-}" ]; then
			sleep 2 # E2E_UPGRADE_CONTROL=1: the same load without upgrades
			continue
		fi
		step "$SM_CLI" "$VCLI" variant
		sleep 0.5
		step "$VCLI" "$SM_CLI" current
		sleep 0.5
	done
	sm_log "    $i cycles in $((SECONDS - t0)) s"
	touch "$TMP/stop"
	wait "${pids[@]}"
	lid1=$(link_id "link_${CGID}_connect4")
	for f in "$TMP"/ka.* "$TMP"/close.* "$TMP"/soak.*; do
		grep -E 'requests in|Non-2xx|Socket errors|^soak:|exit status|^client:' "$f" | sed "s#^#    ${f##*/}| #" >&2 || true
	done
	sed 's/^/    step| /' "$TMP/steps" >&2
	grep '^server: seed' "$TMP/soak-server.log" | sed 's/^/    soak-server| /' >&2 || true
	if [ -n "${E2E_HAP_LOGALL:-}" ]; then
		# every session logged: those of the short uploads (the server
		# names the proxy's upstream end), their bytes from the client,
		# and those of the client's failures (it names its own end)
		sed -n 's/^server: seed .* from \([0-9.:]*\):.*/\1/p' "$TMP/soak-server.log" | while read -r up; do
			awk -v up="$up" '$2 == up && substr($3, 3) + 0 >= 1000000' "$TMP/hap.log" | sed 's/^/    haproxy| /' >&2
		done
		{ cat "$TMP"/soak.* 2>/dev/null || true; } | sed -n 's/^client: seed .* from \([0-9.:]*\):.*/\1/p' | while read -r cl; do
			awk -v cl="$cl" '$1 == cl' "$TMP/hap.log" | sed 's/^/    haproxy| /' >&2
		done
	else
		# HAProxy logs only abnormal sessions (option dontlog-normal)
		grep -v '^\[' "$TMP/hap.log" | sed 's/^/    haproxy| /' >&2 || true
	fi
	sm_cli stats 2>&1 | sed 's/^/    stats| /' >&2 || true
	ip netns exec "$POD" nstat -asz 2>/dev/null | awk '$2 != 0 && /Abort|Reset|RST|Rst|Drop|Prune|Collapse/' | sed 's/^/    nstat| /' >&2 || true
	assert_eq "$(wc -l <"$TMP/steps")" 0 "steps that failed a check"
	assert_eq "$lid1" "$lid0" "connect4's link (updated in place, never re-created)"
	assert_eq "$(sort -u "$TMP/progs" | wc -l)" "$((2 * n + 1))" "distinct programs it ran"
	for f in ka close; do
		reqs=$(cat "$TMP/$f".* | awk '/requests in/ { s += $1 } END { print s + 0 }')
		assert_ge "$reqs" 1000 "wrk $f: requests during the cycles"
		assert_eq "$(cat "$TMP/$f".* | grep -c 'Non-2xx or 3xx responses' || true)" 0 "wrk $f: runs with non-2xx responses"
		assert_eq "$(cat "$TMP/$f".* | grep -c 'Socket errors' || true)" 0 "wrk $f: runs with socket errors"
		assert_eq "$(cat "$TMP/$f".* | grep -c '^exit status' || true)" 0 "wrk $f: runs that failed"
	done
	out=$(cat "$TMP"/soak.*)
	assert_eq "$(grep -c '^exit status' <<<"$out" || true)" 0 "sm-soak: runs that failed"
	assert_eq "$(grep '^soak:' <<<"$out" | grep -vc ' corruptions=0 failures=0 ' || true)" 0 \
		"sm-soak: runs with a wrong byte or a failed transfer (64 MiB both ways)"
	assert_ge "$(sed -n 's/^soak:.* conns=\([0-9]*\).*/\1/p' <<<"$out" | awk '{ s += $1 } END { print s + 0 }')" 4 \
		"64 MiB transfers completed"
	assert_eq "$(e2e_haproxy_self_conns "$POD" 15001)" 0 "HAProxy's connections to itself"
	# last step was back to this build: its CLI works, everything attached
	assert_eq "$(sm_cli -j status | jq '.scopes | length')" 1 "scopes enrolled"
	assert_eq "$(e2e_cgroup_progs "$CG")" 11 "programs attached at the cgroup"
}

other_build_refused_until_upgraded() {
	local err rc=0
	v_cli upgrade >/dev/null
	sm_cli -j stats >"$TMP/o.out" 2>"$TMP/o.err" || rc=$?
	err=$(cat "$TMP/o.err")
	assert_eq "$rc" 1 "this build's CLI on the variant's pins: exit status"
	assert_match "$err" "map stats_map: value [0-9]+ bytes, this build [0-9]+\); run 'sockmesh upgrade'" \
		"the refusal names the map and the command"
	rc=0
	sm_cli enable --cgroup "$CG" >/dev/null 2>&1 || rc=$?
	assert_eq "$rc" 1 "enable refused as well"
	sm_cli upgrade >/dev/null
	assert_eq "$(sm_cli -j status | jq '.scopes | length')" 1 "after the upgrade back: scopes"
}

# sockmeshd of this build started on the variant's pins (a DaemonSet rolled
# back) upgrades them in place before it serves
daemon_start_upgrades() {
	local daemon=$SM_BUILD/user/daemon/sockmeshd log=$TMP/sockmeshd.log lid0 pid c0 i
	v_cli upgrade >/dev/null
	lid0=$(link_id "link_${CGID}_connect4")
	nsenter --net="/run/netns/$POD" "$daemon" --pin-dir "$PIN" --attach-cgroup "$CG" \
		--listen 127.0.0.1:15095 --state-file "$TMP/run/sockmeshd.json" >>"$log" 2>&1 </dev/null &
	pid=$!
	sm_track "$pid"
	for ((i = 0; i < 100; i++)); do
		grep -q 'upgraded the running data path in place' "$log" && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	sed 's/^/    sockmeshd| /' "$log" >&2
	assert_match "$(grep 'upgraded the running' "$log" || true)" '"links_updated":11,' \
		"sockmeshd's log: the cgroup's 11 links updated"
	assert_eq "$(link_id "link_${CGID}_connect4")" "$lid0" "connect4's link"
	c0=$(counter "$SM_CLI" captured)
	e2e_curl "$CG" "$POD" "http://$E2E_SRV4A/" >"$TMP/curl.out"
	assert_match "$(cat "$TMP/curl.out")" '^srv-a ' "a request through HAProxy"
	assert_eq "$(($(counter "$SM_CLI" captured) - c0))" 1 "captured by this build's programs"
	kill -TERM "$pid"
	wait "$pid" || true
	assert_eq "$(sm_cli -j status | jq '.scopes | length')" 1 "the scope stays after sockmeshd stops"
}

# What an upgrade cannot carry over is refused before anything changes: a
# map holding connections' state with another layout (a stand-in pinned as
# pair_map), and another layout version (config_map's field set to one
# more than this build's).
# Another instance, so the main one is not touched.
refused_changes_leave_state_unchanged() {
	local cg2 pin2 progs0 err rc cfg layout
	cg2=$(sm_cgroup refused)
	pin2=$(sm_pindir refused)
	timeout 30 "$SM_CLI" --pin-dir "$pin2" enable --cgroup "$cg2" >/dev/null
	progs0=$(bpftool -j cgroup show "$cg2" | jq -c '[.[].id] | sort')
	cp2() { timeout 30 "$VCLI" --pin-dir "$pin2" "$@"; }
	# this build's SM_LAYOUT_VERSION (the ABI header), as config_map must hold it (byte 16)
	layout=$(awk '$1 == "#define" && $2 == "SM_LAYOUT_VERSION" { print $3 }' "$SM_ROOT/headers/sockmesh_abi.h")
	assert_eq "$(($(bpftool -j map lookup pinned "$pin2/map_config_map" key 0 0 0 0 | jq -r '.value[16]')))" \
		"$layout" "config_map's layout version is the ABI header's"

	rm "$pin2/map_pair_map"
	bpftool map create "$pin2/map_pair_map" type hash key 48 value 8 entries 16 name pair_map
	rc=0
	err=$(cp2 upgrade 2>&1) || rc=$?
	assert_eq "$rc" 1 "upgrade over a changed pair_map: exit status"
	assert_match "$err" "map pair_map changed its layout \\(value 8 bytes, this build 56\\) and holds live connections' state" \
		"the refusal names the map"
	assert_eq "$(bpftool -j cgroup show "$cg2" | jq -c '[.[].id] | sort')" "$progs0" \
		"the cgroup's programs, unchanged"
	assert_eq "$(find "$pin2" -name 'tmp_*' | wc -l)" 0 "temporary pins left"

	cfg=$(bpftool -j map lookup pinned "$pin2/map_config_map" key 0 0 0 0 |
		jq -r --arg v "$(printf '0x%02x' "$((layout + 1))")" '.value | .[16] = $v | join(" ")')
	# shellcheck disable=SC2086 # one word per byte
	bpftool map update pinned "$pin2/map_config_map" key 0 0 0 0 value $cfg
	rc=0
	err=$(cp2 upgrade 2>&1) || rc=$?
	assert_eq "$rc" 1 "upgrade across layout versions: exit status"
	assert_match "$err" "has layout version $((layout + 1)), this build $layout" "the refusal names both versions"
	assert_eq "$(bpftool -j cgroup show "$cg2" | jq -c '[.[].id] | sort')" "$progs0" \
		"the cgroup's programs, unchanged"
	timeout 30 "$SM_CLI" --pin-dir "$pin2" disable --all --grace 0 >/dev/null
}

e2e_subtest same_build_is_a_no_op same_build_is_a_no_op
e2e_subtest cycles_under_load cycles_under_load
e2e_subtest other_build_refused_until_upgraded other_build_refused_until_upgraded
e2e_subtest daemon_start_upgrades daemon_start_upgrades
e2e_subtest refused_changes_leave_state_unchanged refused_changes_leave_state_unchanged
e2e_finish
