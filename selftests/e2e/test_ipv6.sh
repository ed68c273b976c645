#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# IPv6 capture: connect6 sends the app to [::1]:15001 and the reference
# sidecar finds the original destination with getsockopt(SOL_IPV6, 80).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init ipv6
e2e_need_sockmesh
e2e_need_sidecar
e2e_topology
e2e_nginx_start web "$SRV" "[$E2E_SRV6]:8081 srv-v6" "$E2E_SRV4A:80 srv-a"
e2e_pyserver hash - "$SRV" hash-server "$E2E_SRV6" 9000
e2e_sidecar_start car "$CG" "$POD" 127.0.0.1:15001 "[::1]:15001"
sm_cli enable --cgroup "$CG"

# one captured connection, its original destination published and answered,
# the sidecar's upstream connect bypassed by uid
assert_one_proxied_conn() {
	assert_deltas "$1" "$2" "$3" captured=1 origdst_published=1 origdst_answered=1 bypass_proxy_uid=1 \
		origdst_miss=0 'splice_sockets=*' 'splice_msgs=*' 'splice_bytes=*'
}

ipv6_http_reaches_original_destination() {
	local s0 s1 body
	s0=$(e2e_stats --cgroup "$CG")
	body=$(e2e_curl "$CG" "$POD" -g --local-port 40100-40199 "http://[$E2E_SRV6]:8081/")
	s1=$(e2e_stats --cgroup "$CG")
	assert_match "$body" "^srv-v6 $E2E_POD6:[0-9]+\$" "body from [$E2E_SRV6]:8081"
	assert_proxied "$body" "server talked to the sidecar"
	assert_eq "$(e2e_access_count web "$E2E_SRV6:8081")" 1 "requests nginx served on [$E2E_SRV6]:8081"
	assert_eq "$(grep -c "accept client=\[::1\]:401[0-9][0-9] orig=\[$E2E_SRV6\]:8081\$" "$TMP/car.log")" 1 \
		"sidecar log lines 'accept client=[::1]:401xx orig=[$E2E_SRV6]:8081'"
	assert_one_proxied_conn "$s0" "$s1" "IPv6 HTTP request"
}

ipv6_upload_arrives_intact() {
	local s0 s1 reply
	head -c 1048576 /dev/urandom >"$TMP/up"
	s0=$(e2e_stats --cgroup "$CG")
	reply=$(e2e_tcptool "$CG" "$POD" client "$E2E_SRV6" 9000 --send "$TMP/up" --shut-wr)
	s1=$(e2e_stats --cgroup "$CG")
	assert_eq "$reply" "$(sha256sum "$TMP/up" | cut -d' ' -f1) 1048576" "sha256 and count the server received"
	assert_match "$(tail -n 1 "$TMP/hash.log")" "^hash peer=\[$E2E_POD6\]:2[0-9]{4} bytes=1048576\$" \
		"hash server saw the sidecar's upstream connection"
	assert_eq "$(grep -c "orig=\[$E2E_SRV6\]:9000\$" "$TMP/car.log")" 1 "sidecar log lines for [$E2E_SRV6]:9000"
	assert_one_proxied_conn "$s0" "$s1" "IPv6 1 MiB upload"
}

ipv4_through_same_sidecar() {
	local s0 s1 body
	s0=$(e2e_stats --cgroup "$CG")
	body=$(e2e_curl "$CG" "$POD" --local-port 40200-40299 "http://$E2E_SRV4A/")
	s1=$(e2e_stats --cgroup "$CG")
	assert_match "$body" "^srv-a $E2E_POD4:[0-9]+\$" "body from $E2E_SRV4A:80"
	assert_proxied "$body" "server talked to the sidecar"
	assert_eq "$(grep -c "accept client=127\.0\.0\.1:402[0-9][0-9] orig=$E2E_SRV4A:80\$" "$TMP/car.log")" 1 \
		"sidecar log lines 'accept client=127.0.0.1:402xx orig=$E2E_SRV4A:80'"
	assert_one_proxied_conn "$s0" "$s1" "IPv4 HTTP request"
}

e2e_subtest ipv6_http_reaches_original_destination ipv6_http_reaches_original_destination
e2e_subtest ipv6_upload_arrives_intact ipv6_upload_arrives_intact
e2e_subtest ipv4_through_same_sidecar ipv4_through_same_sidecar
e2e_finish
