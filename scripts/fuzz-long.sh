#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# The long fuzz run: every fuzzer of selftests/fuzz (built by its build.sh,
# libFuzzer + ASan + UBSan) for MINUTES each, from run.sh's seed corpora and
# dictionaries, one after the other; a crash does not stop the others. CI
# runs the short version (scripts/test.sh fuzz: 30 s each).
#   scripts/fuzz-long.sh [MINUTES] [OUTDIR] [LIBFUZZER-FLAG...]
# MINUTES defaults to 10, OUTDIR (fuzzers, crash-*/leak-*/timeout-* inputs)
# to build/fuzz-long. Ends with one line per fuzzer ("fuzz_cni: 18234567
# execs in 600s, no crash" or "..., CRASHED (exit N); inputs in OUTDIR/")
# and exits non-zero when any fuzzer crashed, leaked or timed out. No root
# needed; one CPU per fuzzer at a time. FUZZ_ONLY="fuzz_policy ..." runs
# only the fuzzers named.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

mins=${1:-10}
out=${2:-$ROOT/build/fuzz-long}
shift $(($# < 2 ? $# : 2))
if ! [[ $mins =~ ^[1-9][0-9]*$ ]]; then
	echo "fuzz-long.sh: MINUTES must be a positive integer, not '$mins'" >&2
	exit 2
fi
mkdir -p "$out"
log=$(mktemp "${TMPDIR:-/tmp}/sockmesh-fuzz-long.XXXXXX")
trap 'rm -f "$log"' EXIT

echo "fuzz-long.sh: every fuzzer for $mins min under ASan/UBSan, in $out" >&2
rc=0
FUZZ_KEEP_GOING=1 "$ROOT/selftests/fuzz/run.sh" "$out" $((mins * 60)) "$@" | tee "$log" || rc=$?
echo "== fuzz-long.sh: $mins min per fuzzer"
grep -E '^fuzz_[a-z_]+: ' "$log" || echo "(no fuzzer ran: see the build output above)"
if [ "$rc" != 0 ]; then
	echo "fuzz-long.sh: FAILED (exit $rc)"
	exit 1
fi
echo "fuzz-long.sh: no crash"
