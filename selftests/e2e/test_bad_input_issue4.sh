#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Bad values for the inbound, pod address and DNS options, and for istio's
# short flags (-p -z -u -g -b -d -i -x -q -o): exit code 2, the error names
# the option and the value, and nothing changes (status, attachments, pins,
# policy maps), with a pod already enrolled so there is state to damage.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# shellcheck source=lib_pod.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_pod.sh"

e2e_init bad_input_issue4
e2e_need_sockmesh
CG=$(sm_cgroup app)
PIN=$(sm_pindir pin)
POD=$(e2e_pod_netns pod)
SRV=$(sm_netns srv)
e2e_pod_pair "$POD" "$SRV"
sm_cli enable --netns "$POD" --attach-cgroup "$CG" --exclude-inbound-ports 9090

state() { e2e_pin_state "$CG"; }

# rejected OPTION VALUE ARGS...: `sockmesh enable --netns POD ... ARGS` exits
# 2; its error names OPTION (as the long option) and 'VALUE' (quoted, as the
# CLI quotes values; empty VALUE: only the option); nothing changed
rejected() {
	local opt=$1 bad=$2 rc=0 before after err
	shift 2
	before=$(state)
	sm_cli enable --netns "$POD" --attach-cgroup "$CG" "$@" >"$TMP/out" 2>"$TMP/err" || rc=$?
	after=$(state)
	err=$(cat "$TMP/err")
	sm_log "    sockmesh enable ... $* -> rc $rc, stderr: ${err:0:300}"
	assert_eq "$rc" 2 "exit code"
	assert_eq "$(grep -c 'unknown option' <<<"$err" || true)" 0 "stderr lines saying 'unknown option'"
	assert_eq "$(grep -cF -- "$opt" <<<"$err" || true)" 1 "stderr lines naming $opt"
	if [ -n "$bad" ]; then
		assert_eq "$(grep -cF -- "'$bad'" <<<"$err" || true)" 1 "stderr lines naming '$bad'"
	fi
	assert_eq "$after" "$before" "status, attachments, pins and policy maps after the call"
}

inbound_port_0() { rejected --inbound-port 0 --inbound-port 0; }
inbound_port_70000() { rejected --inbound-port 70000 --inbound-port 70000; }
include_inbound_ports_empty_item() { rejected --include-inbound-ports 1,,2 --include-inbound-ports 1,,2; }
exclude_inbound_ports_star() { rejected --exclude-inbound-ports '*' --exclude-inbound-ports '*'; }
pod_ips_network() { rejected --pod-ips 10.0.0.0/24 --pod-ips 10.0.0.0/24; }
pod_ips_not_an_address() { rejected --pod-ips bogus --pod-ips 10.77.0.1,bogus; }
dns_port_not_a_number() { rejected --dns-port x --redirect-dns --dns-port x; }
dns_port_0() { rejected --dns-port 0 --redirect-dns --dns-port 0; }
dns_servers_prefix_40() { rejected --dns-servers 1.2.3.4/40 --redirect-dns --dns-servers 1.2.3.4/40; }
include_inbound_ports_star_and_port() { rejected --include-inbound-ports '*,80' --include-inbound-ports '*,80'; }
include_outbound_ports_star_and_port() { rejected --include-outbound-ports '80,*' -q '80,*'; }
dns_servers_empty() {
	rejected --dns-servers '' --redirect-dns --dns-servers ''
	assert_eq "$(grep -cF -- "--dns-servers: '' is an empty list" "$TMP/err" || true)" 1 "stderr lines naming ''"
}
dns_servers_not_an_address() { rejected --dns-servers resolver --redirect-dns --dns-servers 10.0.0.10,resolver; }

# flags that only mean something with --redirect-dns: the error names the
# flag given and the one missing
capture_all_dns_without_redirect_dns() {
	rejected --capture-all-dns '' --capture-all-dns
	assert_eq "$(grep -cF -- --redirect-dns "$TMP/err" || true)" 1 "stderr lines naming --redirect-dns"
}
dns_servers_without_redirect_dns() {
	rejected --dns-servers '' --dns-servers 10.0.0.10
	assert_eq "$(grep -cF -- --redirect-dns "$TMP/err" || true)" 1 "stderr lines naming --redirect-dns"
}

# istio-iptables' short flags take the same values as their long options
short_p() { rejected --proxy-port 0 -p 0; }
short_z() { rejected --inbound-port 70000 -z 70000; }
short_u() { rejected --proxy-uid x -u x; }
short_g() { rejected --proxy-gid x -g x; }
short_b() { rejected --include-inbound-ports 1,,2 -b 1,,2; }
short_d() { rejected --exclude-inbound-ports '*' -d '*'; }
short_i() { rejected --include-outbound-cidrs 1.2.3.4/40 -i 1.2.3.4/40; }
short_x() { rejected --exclude-outbound-cidrs 10.0.0.0/33 -x 10.0.0.0/33; }
short_q() { rejected --include-outbound-ports 80x -q 80x; }
short_o() { rejected --exclude-outbound-ports 70000 -o 70000; }
short_flag_without_value() {
	local rc=0 before after
	before=$(state)
	sm_cli enable --netns "$POD" --attach-cgroup "$CG" -x >/dev/null 2>"$TMP/err" || rc=$?
	after=$(state)
	assert_eq "$rc" 2 "exit code"
	assert_match "$(cat "$TMP/err")" "'-x' needs a value" "stderr"
	assert_eq "$after" "$before" "state after the call"
}

# and the good values do what the long options do
short_flags_set_the_policy() {
	local st
	sm_cli enable --netns "$POD" --attach-cgroup "$CG" -p 15002 -z 15007 -u 1000 -g 1001 \
		-b 8080,9090 -d 9090 -i 10.0.0.0/8 -x 10.1.0.0/16 -q 80,443 -o 443 >/dev/null
	st=$(sm_cli -j status --netns "$POD" | jq -c '.scopes[0] | {proxy_port, inbound_port, proxy_uid, proxy_gid}')
	sm_cli enable --netns "$POD" --attach-cgroup "$CG" --exclude-inbound-ports 9090 >/dev/null
	assert_eq "$st" '{"proxy_port":15002,"inbound_port":15007,"proxy_uid":1000,"proxy_gid":1001}' \
		"status after -p 15002 -z 15007 -u 1000 -g 1001"
}

for t in inbound_port_0 inbound_port_70000 include_inbound_ports_empty_item exclude_inbound_ports_star \
	pod_ips_network pod_ips_not_an_address dns_port_not_a_number dns_port_0 dns_servers_prefix_40 \
	dns_servers_not_an_address include_inbound_ports_star_and_port include_outbound_ports_star_and_port \
	dns_servers_empty capture_all_dns_without_redirect_dns dns_servers_without_redirect_dns \
	short_p short_z short_u short_g short_b short_d short_i short_x short_q short_o \
	short_flag_without_value short_flags_set_the_policy; do
	e2e_subtest "$t" "$t"
done
e2e_finish
