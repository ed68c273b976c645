#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Run every sockmesh test on this machine (root): unit tests (plain and
# ASan+UBSan), the CUnit kernel tests, the installed tree (meson install into
# a scratch DESTDIR, docs drift), the end-to-end suite, a bounded fuzz run of
# the parsers, the benchmark smoke run and the lint checks.
# Bootstraps (apt-get, build) first. Ends with "N passed, N failed".
#   scripts/test.sh [SUITE...]   suites: unit asan kernel install e2e soak fuzz bench lint vm
# SOCKMESH_TEST_VM=1 adds vm (the kernel suite, the live upgrade test and the
# tap's test inside a Debian 6.1 guest).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 1
[ "$(id -u)" = 0 ] || { echo "run as root: the kernel tests load BPF programs" >&2; exit 2; }
# The VM runner bootstraps on the host; the guest only runs what is built.
if [ "${SOCKMESH_NO_BOOTSTRAP:-0}" != 1 ]; then
	"$ROOT/scripts/bootstrap.sh" || { echo "bootstrap failed" >&2; exit 1; }
fi

# What an earlier run left when it was killed (it could not clean up after
# itself) goes first: its namespaces, pins, cgroups and servers would skew
# or break this run.
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"
SM_CG2=$(sm_cg2_root)
sm_bpffs
sm_sweep_stale

ALL=(lint unit asan kernel install e2e soak fuzz bench)
[ "${SOCKMESH_TEST_VM:-0}" = 1 ] && ALL+=(vm)
SUITES=("$@")
[ ${#SUITES[@]} -eq 0 ] && SUITES=("${ALL[@]}")
LOGDIR=$(mktemp -d /tmp/sockmesh-test.XXXXXX)
passed=0
failed=0
failed_names=()

# count_meson BUILDDIR LOG: add the CUnit test counts of the meson run just
# made (each CUnit binary prints "tests TOTAL RAN PASSED FAILED"); a binary
# that died before its summary counts as one failure.
count_meson() {
	local p f bad counts
	counts=$(awk '$1=="tests" && NF>=5 {p+=$4; f+=$5} END {print p+0, f+0}' \
		"$1/meson-logs/testlog.txt" 2>/dev/null)
	read -r p f <<<"${counts:-0 0}"
	bad=$(awk '/^(Fail|Timeout):/{n+=$2} END {print n+0}' "$2")
	passed=$((passed + p))
	if [ "$f" = 0 ] && [ "$bad" != 0 ]; then f=$bad; fi
	failed=$((failed + f))
}

# count_plain LOG: add the counts of a runner that ends with "N passed, N failed"
count_plain() {
	local line
	line=$(grep -E '^([A-Za-z0-9.]+: )?[0-9]+ passed, [0-9]+ failed' "$1" | tail -1)
	if [ -z "$line" ]; then
		failed=$((failed + 1))
		return
	fi
	line=${line#*: }
	passed=$((passed + $(echo "$line" | awk '{print $1}')))
	failed=$((failed + $(echo "$line" | awk '{print $3}')))
}

# one NAME RC: a suite that counts as one test
one() {
	if [ "$2" = 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); failed_names+=("$1"); fi
}

run_suite() {
	local s=$1 log="$LOGDIR/$1.log" rc failed_before=$failed
	echo "=== suite $s (log $log)"
	case $s in
	lint)
		rc=0
		shellcheck -x scripts/*.sh scripts/lib/*.sh selftests/e2e/*.sh selftests/fuzz/*.sh scripts/bench/*.sh \
			selftests/install/*.sh completion/*.bash .ci/run >"$log" 2>&1 || rc=1
		if command -v clang-format >/dev/null; then
			# kernel style: the tree must be formatted as .clang-format says
			git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror >>"$log" 2>&1 || rc=1
		fi
		one lint $rc
		;;
	unit)
		meson test -C build --suite unit --print-errorlogs >"$log" 2>&1
		rc=$?
		count_meson build "$log"
		[ $rc = 0 ] || failed_names+=(unit)
		;;
	asan)
		if [ ! -f build-asan/build.ninja ]; then
			meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false >"$log" 2>&1
		fi
		ninja -C build-asan >>"$log" 2>&1
		meson test -C build-asan --suite unit --print-errorlogs >>"$log" 2>&1
		rc=$?
		count_meson build-asan "$log"
		[ $rc = 0 ] || failed_names+=(asan)
		;;
	kernel)
		meson test -C build --suite kernel --print-errorlogs -t 4 >"$log" 2>&1
		rc=$?
		count_meson build "$log"
		[ $rc = 0 ] || failed_names+=(kernel)
		;;
	install)
		# what meson install puts on a machine, run from a scratch DESTDIR
		selftests/install/test_installed.sh build >"$log" 2>&1
		rc=$?
		count_plain "$log"
		[ $rc = 0 ] || failed_names+=(install)
		# the CLI's options = docs/cli-contract.md = man/sockmesh.8.md
		selftests/install/test_docs.sh >"$LOGDIR/install-docs.log" 2>&1
		rc=$?
		count_plain "$LOGDIR/install-docs.log"
		[ $rc = 0 ] || failed_names+=(install-docs)
		cat "$LOGDIR/install-docs.log" >>"$log"
		;;
	e2e)
		# SOCKMESH_E2E_ONLY="splice capture": only those scripts
		# shellcheck disable=SC2086
		selftests/e2e/run.sh ${SOCKMESH_E2E_ONLY:-} >"$log" 2>&1
		rc=$?
		count_plain "$log"
		[ $rc = 0 ] || failed_names+=(e2e)
		;;
	soak)
		# the 2-minute soak (docs/design.md has a 10 GB run)
		scripts/soak.sh --duration "${SOCKMESH_SOAK_SECONDS:-120}" >"$log" 2>&1
		one soak $?
		;;
	fuzz)
		selftests/fuzz/run.sh "$ROOT/build/fuzz" "${SOCKMESH_FUZZ_SECONDS:-30}" >"$log" 2>&1
		one fuzz $?
		;;
	bench)
		rc=0
		scripts/bench/bench.sh --quick --out "$ROOT/build/bench-smoke" >"$log" 2>&1 || rc=1
		# Every measured run recorded the peak kernel TCP memory, and the
		# report has a row for it per workload.
		python3 - "$ROOT/build/bench-smoke" >>"$log" 2>&1 <<'PY' || rc=1
import json, os, sys
runs = [json.loads(l) for l in open(os.path.join(sys.argv[1], "raw", "runs.jsonl")) if l.strip()]
measured = [r for r in runs if r["workload"] != "teardown" and r["rc"] != 125]
bad = [r for r in measured if not isinstance((r.get("tcp_mem_pages") or [None, None])[1], int)]
assert measured and not bad, f"runs without a TCP memory peak: {bad[:3]}"
keys = {m["key"] for m in json.load(open(os.path.join(sys.argv[1], "results.json")))["metrics"]}
assert {"mem_iperf_1", "mem_wrk_close"} <= keys, f"no memory rows: {sorted(keys)}"
print(f"bench: {len(measured)} runs, each with its TCP memory peak")
PY
		one bench-smoke $rc
		# The profiler: every 64 B round trip is two spliced messages, so
		# sm_msg must have run twice per round trip (an exact count).
		rc=0
		scripts/bench/bench.sh --quick --profile --modes iptables,sockmesh --workloads latency \
			--sizes 64 --out "$ROOT/build/bench-profile-smoke" >>"$log" 2>&1 || rc=1
		python3 - "$ROOT/build/bench-profile-smoke/results.json" >>"$log" 2>&1 <<'PY' || rc=1
import json, sys
p = json.load(open(sys.argv[1]))["profile"]["sockperf-64"]["modes"]
runs = p["sockmesh"]["bpf"]["sm_msg"]["runs_per_unit"]
cats = p["iptables"]["us_per_unit"]
print(f"profile: sm_msg {runs:.3f} runs per round trip; iptables netfilter "
      f"{cats.get('netfilter, conntrack, NAT', 0):.2f} us per round trip")
assert 1.98 <= runs <= 2.02, "sm_msg should run twice per round trip"
assert cats.get("netfilter, conntrack, NAT", 0) > 0, "iptables mode shows no netfilter time"
assert "sm_msg" not in p["iptables"]["bpf"], "a BPF program ran in the iptables mode"
PY
		one bench-profile-smoke $rc
		;;
	vm)
		# The 6.1 guest runs under software emulation: the kernel suite
		# takes about 7 minutes there, the whole e2e suite an hour; CI
		# runs the kernel suite, the live upgrade test, the tap's and the
		# flow events' tests (17 minutes).
		# SOCKMESH_VM_SUITES and SOCKMESH_VM_E2E_ONLY ("" for every e2e
		# script) choose others.
		# shellcheck disable=SC2086
		SOCKMESH_E2E_ONLY=${SOCKMESH_VM_E2E_ONLY-upgrade tap flows} \
			scripts/vm-test.sh ${SOCKMESH_VM_SUITES:-kernel e2e} >"$log" 2>&1
		rc=$?
		count_plain "$log"
		[ $rc = 0 ] || failed_names+=(vm)
		;;
	*)
		echo "unknown suite '$s' (known: ${ALL[*]} vm)" >&2
		exit 2
		;;
	esac
	grep -E '^(PASS|FAIL|ok|not ok)|^ *[0-9]+/[0-9]+ |passed, [0-9]+ failed|Test: .*(passed|FAILED)|^fuzz_[a-z]+: |^soak: ' "$log" | tail -60
	# A failing suite shows why here, not only in a log a CI machine drops.
	if [ "$failed" != "$failed_before" ]; then
		echo "--- $s failed; the last 80 lines of $log:"
		tail -n 80 "$log"
		echo "---"
	fi
}

for s in "${SUITES[@]}"; do
	run_suite "$s"
done
if [ ${#failed_names[@]} -gt 0 ] || [ "$failed" != 0 ]; then
	echo "failing suites: ${failed_names[*]} (logs in $LOGDIR)"
else
	rm -rf "$LOGDIR"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
