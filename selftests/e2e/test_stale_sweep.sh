#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A run killed with SIGKILL cannot clean up after itself: its network
# namespaces (with servers in them), pin dirs (with programs attached to a
# cgroup), cgroups and temp dirs stay. The next run removes them
# (sm_sweep_stale, called by sm_init and scripts/test.sh), and never touches
# what a live run owns.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init stale_sweep
e2e_need_sockmesh

# victim: a run of its own (its own tag, from its own pid) that builds a
# netns with a server, a cgroup with sockmesh attached and a pin dir, says
# so, and waits to be killed.
victim() {
	local out=$1
	bash -c '
		. "$1/scripts/lib/common.sh"
		SM_TAG=smv$$
		sm_init
		cg=$(sm_cgroup app)
		ns=$(sm_netns pod)
		pin=$(sm_pindir pin)
		tmp=$(sm_tmpdir scratch)
		"$SM_CLI" --pin-dir "$pin" enable --cgroup "$cg" >/dev/null
		srv=$(sm_bg - "$ns" sleep 600)
		printf "%s %s %s %s %s %s\n" "$$" "$cg" "$ns" "$pin" "$tmp" "$srv" >"$2"
		sleep 600
	' _ "$SM_ROOT" "$out" >/dev/null 2>&1 </dev/null &
	echo $!
}

killed_run_is_swept() {
	local vpid cg ns pin tmp srv progs p i
	victim "$TMP/victim" >/dev/null
	for i in $(seq 100); do [ -s "$TMP/victim" ] && break; sleep 0.1; done
	read -r vpid cg ns pin tmp srv <"$TMP/victim"
	progs=$(bpftool -j cgroup show "$cg" | jq -r '.[].id' | xargs)
	assert_match "$progs" '[0-9]' "programs attached to the victim's cgroup"
	kill -9 "$vpid"
	wait "$vpid" 2>/dev/null || true
	# what SIGKILL left behind
	assert_eq "$(ip netns list | awk '{print $1}' | grep -cx "$ns")" 1 "netns left"
	assert_eq "$([ -d "$pin" ] && echo yes)" yes "pin dir left"
	assert_eq "$(kill -0 "$srv" 2>/dev/null && echo alive)" alive "server left"

	sm_sweep_stale
	assert_eq "$(ip netns list | awk '{print $1}' | grep -cx "$ns" || true)" 0 "netns removed"
	assert_eq "$([ -e "$pin" ] && echo yes || echo gone)" gone "pin dir removed"
	assert_eq "$([ -e "$cg" ] && echo yes || echo gone)" gone "cgroup removed"
	assert_eq "$([ -e "$tmp" ] && echo yes || echo gone)" gone "temp dir removed"
	for i in $(seq 50); do kill -0 "$srv" 2>/dev/null || break; sleep 0.1; done
	assert_eq "$(kill -0 "$srv" 2>/dev/null && echo alive || echo gone)" gone "server killed"
	for p in $progs; do
		assert_eq "$(bpftool prog show id "$p" >/dev/null 2>&1 && echo loaded || echo gone)" \
			gone "program $p unloaded"
	done
}

live_run_is_kept() {
	local ns pin
	# this run's own resources carry its live pid: the sweep keeps them
	ns=$(sm_netns keep)
	pin=$(sm_pindir keep)
	mkdir -p "$pin"
	sm_sweep_stale
	assert_eq "$(ip netns list | awk '{print $1}' | grep -cx "$ns")" 1 "own netns kept"
	assert_eq "$([ -d "$pin" ] && echo yes)" yes "own pin dir kept"
	assert_eq "$([ -d "$TMP" ] && echo yes)" yes "own temp dir kept"
}

e2e_subtest killed_run_is_swept killed_run_is_swept
e2e_subtest live_run_is_kept live_run_is_kept
e2e_finish
