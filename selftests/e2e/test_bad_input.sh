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

# issue 12: values that were accepted and then did nothing (or the wrong thing)
proxy_mark_0_rejected() { rejected "--proxy-mark: '0'" enable --cgroup "$CG" --proxy-mark 0; }
star_with_a_port_rejected() {
	rejected "--include-outbound-ports: '*,80'" enable --cgroup "$CG" --include-outbound-ports '*,80'
	assert_match "$(cat "$TMP/err")" "must stand alone" "stderr says why"
}
empty_include_outbound_cidrs_rejected() {
	rejected "--include-outbound-cidrs: ''" enable --cgroup "$CG" --include-outbound-cidrs ''
	assert_match "$(cat "$TMP/err")" "capture nothing" "stderr says why"
}
empty_dns_servers_rejected() { rejected "--dns-servers: ''" enable --cgroup "$CG" --redirect-dns --dns-servers ''; }
max_sizes_0_rejected() {
	local o
	for o in max-scopes max-conns max-rules; do
		rejected "--$o: '0'" enable --cgroup "$CG" --"$o" 0
	done
}
# the netns-only options on a cgroup scope
netns_only_options_on_a_cgroup_rejected() {
	rejected "--inbound-port: '15006'" enable --cgroup "$CG" --inbound-port 15006
	rejected "--pod-ips: '10.0.0.1'" enable --cgroup "$CG" --pod-ips 10.0.0.1
	rejected "--include-inbound-ports: '8080'" enable --cgroup "$CG" --include-inbound-ports 8080
	rejected "--exclude-inbound-ports: '9090'" enable --cgroup "$CG" --exclude-inbound-ports 9090
	assert_match "$(cat "$TMP/err")" "only applies to a netns" "stderr says why"
}
# a value no path can have is a bad value (2), named by its start
long_scope_names_rejected() {
	local long
	long=$(printf 'a%.0s' $(seq 5000))
	rejected "--cgroup: '${long:0:64}...' is too long" enable --cgroup "$long"
	rejected "--cgroup: '/${long:0:63}...' is too long" enable --cgroup "/$long"
	rejected "--netns: '${long:0:64}...' is too long" enable --netns "$long" --attach-cgroup "$CG"
	rejected "--netns: '/${long:0:63}...' is too long" enable --netns "/$long" --attach-cgroup "$CG"
	rejected "--cgroup: '${long:0:64}...' is too long" disable --cgroup "$long"
}

# the refusals above load nothing when nothing is loaded yet
nothing_loaded_after_a_rejected_first_enable() {
	local pin2 rc
	pin2=$(sm_pindir fresh)
	for args in "--proxy-mark 0" "--max-scopes 0" "--include-outbound-cidrs=" "--inbound-port 15006"; do
		rc=0
		# shellcheck disable=SC2086 # the words of args are the options
		timeout 30 "$SM_CLI" --pin-dir "$pin2" enable --cgroup "$CG" $args >/dev/null 2>&1 || rc=$?
		assert_eq "$rc" 2 "exit code of enable $args on an empty pin dir"
		assert_eq "$(find "$pin2" -mindepth 1 2>/dev/null | wc -l)" 0 "objects pinned after enable $args"
	done
}

# --max-scopes N: N scopes can be enrolled (slot 0 is the global counters')
max_scopes_gives_n_scopes() {
	local pin2 a b c rc=0
	pin2=$(sm_pindir maxscopes)
	a=$(sm_cgroup ms-a)
	b=$(sm_cgroup ms-b)
	c=$(sm_cgroup ms-c)
	timeout 30 "$SM_CLI" --pin-dir "$pin2" enable --cgroup "$a" --max-scopes 2 >/dev/null
	timeout 30 "$SM_CLI" --pin-dir "$pin2" enable --cgroup "$b" >/dev/null
	assert_eq "$(timeout 30 "$SM_CLI" --pin-dir "$pin2" -j status | jq '.scopes | length')" 2 \
		"scopes enrolled with --max-scopes 2"
	timeout 30 "$SM_CLI" --pin-dir "$pin2" enable --cgroup "$c" >/dev/null 2>"$TMP/err" || rc=$?
	assert_eq "$rc" 1 "exit code of a third enable"
	assert_match "$(cat "$TMP/err")" "all 2 scope slots are in use" "stderr"
	assert_eq "$(timeout 30 "$SM_CLI" --pin-dir "$pin2" -j status | jq -c '[.scopes[].name] | sort')" \
		"[\"$a\",\"$b\"]" "scopes after the refused third"
	timeout 30 "$SM_CLI" --pin-dir "$pin2" disable --all >/dev/null
	assert_eq "$(find "$pin2" -mindepth 1 2>/dev/null | wc -l)" 0 "objects pinned after disable --all"
}

# A user who cannot read the pins (bpffs is root's) is told so, with the
# pin dir, and a non-zero exit: never "not loaded"
status_as_non_root() {
	local rc before after as=(setpriv --reuid 65534 --regid 65534 --clear-groups)
	command -v setpriv >/dev/null || sm_die "setpriv is missing (util-linux)"
	before=$(state)
	for cmd in status stats "disable --all"; do
		rc=0
		# shellcheck disable=SC2086 # cmd is a command and its options
		"${as[@]}" timeout 30 "$SM_CLI" --pin-dir "$PIN" $cmd >"$TMP/out" 2>"$TMP/err" || rc=$?
		sm_log "    (uid 65534) sockmesh $cmd -> rc $rc, stderr: $(head -c 300 "$TMP/err")"
		assert_eq "$rc" 1 "exit code of $cmd as uid 65534"
		assert_eq "$(grep -cF -- "$PIN" "$TMP/err" || true)" 1 "stderr lines naming $PIN"
		assert_match "$(cat "$TMP/err")" "cannot read the pinned state.*Permission denied" "stderr"
		assert_eq "$(grep -c 'not loaded' "$TMP/out" || true)" 0 "stdout lines saying 'not loaded'"
	done
	rc=0
	"${as[@]}" timeout 30 "$SM_CLI" --pin-dir "$PIN" -j status >"$TMP/out" 2>/dev/null || rc=$?
	assert_eq "$rc" 1 "exit code of -j status as uid 65534"
	assert_match "$(jq -r .error "$TMP/out")" "cannot read the pinned state at '$PIN'" "-j: the error on stdout"
	after=$(state)
	assert_eq "$after" "$before" "status, attachments and scopes after the calls"
}

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
for t in proxy_mark_0_rejected star_with_a_port_rejected empty_include_outbound_cidrs_rejected \
	empty_dns_servers_rejected max_sizes_0_rejected netns_only_options_on_a_cgroup_rejected \
	long_scope_names_rejected nothing_loaded_after_a_rejected_first_enable max_scopes_gives_n_scopes \
	status_as_non_root; do
	e2e_subtest "$t" "$t"
done
e2e_finish
