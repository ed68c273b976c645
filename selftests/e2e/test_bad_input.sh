#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Bad input: exit code 2, stderr names the offending value, and nothing
# changes (status JSON, programs attached at the cgroup), with a scope
# already enabled so there is state to damage.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init bad_input
e2e_need_sockmesh
CG=$(sm_cgroup app)
PIN=$(sm_pindir pin)
sm_cli enable --cgroup "$CG" --exclude-outbound-ports 22
NOTCG=$(sm_tmpdir notcg)

# state: what must not change
state() {
	sm_cli -j status | jq -c .
	bpftool -j cgroup show "$CG"
	sm_cli -j stats --cgroup "$CG" | jq -c '.scopes[] | {kind, id, name}'
}

# rejected BADVALUE ARGS...: `sockmesh ARGS` exits 2, names BADVALUE on
# stderr, and leaves the state as it was
rejected() {
	local bad=$1 rc=0 before after
	shift
	before=$(state)
	sm_cli "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
	after=$(state)
	sm_log "    sockmesh $* -> rc $rc, stderr: $(head -c 300 "$TMP/err")"
	assert_eq "$rc" 2 "exit code"
	assert_match "$(grep -cF -- "$bad" "$TMP/err")" '^[1-9]' "stderr lines naming '$bad'"
	assert_eq "$after" "$before" "status, attachments and scopes after the call"
}

cidr_prefix_33_rejected() { rejected 10.0.0.0/33 enable --cgroup "$CG" --include-outbound-cidrs 10.0.0.0/33; }
ipv6_prefix_129_rejected() { rejected fd00::/129 enable --cgroup "$CG" --exclude-outbound-cidrs 10.1.0.0/16,fd00::/129; }
port_70000_rejected() { rejected 70000 enable --cgroup "$CG" --exclude-outbound-ports 70000; }
port_not_a_number_rejected() { rejected 80x enable --cgroup "$CG" --include-outbound-ports 443,80x; }
not_a_cgroup2_dir_rejected() { rejected "$NOTCG" enable --cgroup "$NOTCG"; }
missing_netns_rejected() { rejected no-such-ns enable --netns no-such-ns --attach-cgroup "$CG"; }
unknown_option_rejected() { rejected --no-such-option enable --cgroup "$CG" --no-such-option; }
unknown_command_rejected() { rejected frobnicate frobnicate; }

json_error_on_stdout() {
	local rc=0
	sm_cli -j enable --cgroup "$CG" --exclude-outbound-ports 70000 >"$TMP/out" 2>"$TMP/err" || rc=$?
	assert_eq "$rc" 2 "exit code with -j"
	assert_match "$(jq -r .error "$TMP/out")" 70000 "-j: {\"error\": ...} on stdout names the value"
}

e2e_subtest cidr_prefix_33_rejected cidr_prefix_33_rejected
e2e_subtest ipv6_prefix_129_rejected ipv6_prefix_129_rejected
e2e_subtest port_70000_rejected port_70000_rejected
e2e_subtest port_not_a_number_rejected port_not_a_number_rejected
e2e_subtest not_a_cgroup2_dir_rejected not_a_cgroup2_dir_rejected
e2e_subtest missing_netns_rejected missing_netns_rejected
e2e_subtest unknown_option_rejected unknown_option_rejected
e2e_subtest unknown_command_rejected unknown_command_rejected
e2e_subtest json_error_on_stdout json_error_on_stdout
e2e_finish
