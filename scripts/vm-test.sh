#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Run test suites inside a Debian 6.1 kernel guest (qemu, software
# emulation) through ../shared/tools/vm-run.sh: the second kernel of the
# test matrix. The guest sees this machine's / read-only and the project
# read-write, so it uses the host's build/ and packages.
#   scripts/vm-test.sh [SUITE...]     default: kernel e2e
#   SOCKMESH_E2E_ONLY="splice capture" limits e2e to the scripts whose names
#   contain one of the words (as selftests/e2e/run.sh WORD...)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VMRUN=${VMRUN:-$ROOT/../shared/tools/vm-run.sh}
[ -x "$VMRUN" ] || [ -f "$VMRUN" ] || { echo "vm-test: no $VMRUN" >&2; exit 1; }
suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(kernel e2e)
"$ROOT/scripts/bootstrap.sh"

modules="veth bridge ip_tables iptable_filter iptable_nat ip6_tables ip6table_filter"
modules+=" xt_tcpudp xt_comment xt_REDIRECT nf_tables nft_compat"
# Software emulation runs the e2e tests some 10-20 times slower than the host
# (every jq, python and curl start costs 0.4-1.4 s): a longer deadline per
# test, and their logs kept in the shared tree (the guest's /tmp is gone
# when it powers off).
e2e_timeout=${E2E_TIMEOUT:-1500}
# One directory per run: two runs at once must not remove each other's logs.
e2e_logs=$ROOT/build/vm-e2e-logs/$(date -u +%Y%m%dT%H%M%SZ)-$$
mkdir -p "$e2e_logs"

# Inside the guest: mount what a booted Debian would have, then run the suites.
inner="set -e
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
# this guest does not autoload modules: load what the tests use (veth pairs,
# bridges, and the pod's iptables/nft rules of test_getsockopt_neutral)
modprobe -a $modules 2>/dev/null || echo 'modprobe: some of $modules failed'
mkdir -p /sys/fs/cgroup && mount -t cgroup2 none /sys/fs/cgroup
mount -t bpf bpf /sys/fs/bpf
ip link set lo up
echo \"guest kernel: \$(uname -r)\"
export E2E_LOG_DIR=$e2e_logs E2E_TIMEOUT=$e2e_timeout SOCKMESH_E2E_ONLY='${SOCKMESH_E2E_ONLY:-}'
SOCKMESH_IN_VM=1 SOCKMESH_NO_BOOTSTRAP=1 ./scripts/test.sh ${suites[*]}"
out=$(mktemp /tmp/sockmesh-vm.XXXXXX)
trap 'rm -f "$out"' EXIT
rc=0
echo "vm-test: e2e logs in $e2e_logs" >&2
VM_SHARE=$ROOT VM_MEM=${VM_MEM:-2G} VM_TIMEOUT=${VM_TIMEOUT:-7200} bash "$VMRUN" "$inner" 2>&1 |
	sed -u 's/^/[6.1] /' | tee "$out" || rc=$?
# the guest's closing line, said again unprefixed for the outer runner
line=$(sed -n 's/^\[6\.1\] \([0-9]* passed, [0-9]* failed\)$/\1/p' "$out" | tail -1)
echo "6.1: ${line:-0 passed, 1 failed}"
[ -n "$line" ] && [ "$rc" = 0 ] && [ "${line#*passed, }" = "0 failed" ]
