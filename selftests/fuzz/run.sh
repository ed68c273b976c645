#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Build the fuzzers into OUTDIR and run each for a bounded time from a small
# seed corpus (in a temporary directory, removed afterwards): fuzz_policy
# (the library's policy parsers), then fuzz_common (the front-ends' address
# and option value parsers).
#   selftests/fuzz/run.sh OUTDIR [SECONDS] [LIBFUZZER-FLAG...]
# SECONDS (per fuzzer) defaults to 30. Exits non-zero on a crash, leak or timeout; the
# offending input is kept as OUTDIR/crash-* (or leak-*, timeout-*).
# Reproduce one with: OUTDIR/fuzz_policy OUTDIR/crash-... (or fuzz_common)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -lt 1 ]; then
	echo "usage: $0 OUTDIR [SECONDS] [LIBFUZZER-FLAG...]" >&2
	exit 2
fi
out=$1
secs=${2:-30}
shift $(($# < 2 ? $# : 2))
if ! [[ $secs =~ ^[1-9][0-9]*$ ]]; then
	echo "run.sh: SECONDS must be a positive integer, not '$secs'" >&2
	exit 2
fi

"$here/build.sh" "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/sockmesh-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"

n=0
seed() {
	n=$((n + 1))
	printf '%s' "$1" >"$work/corpus/seed-$n"
}
seed '10.0.0.0/8'
seed '10.1.2.3/8,192.168.0.0/16'
seed ' 10.0.0.0/8 , fd00::/8 '
seed '169.254.169.254'
seed '::/0'
seed '2001:db8::1/127,::1'
seed 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/96'
seed '*'
seed '80,443'
seed ' 80 , 443 '
seed '15090,15021,15020'
seed '1,65535'
seed '65536'
seed '80,,443'
seed '80,'
seed '10.0.0.0/33'
seed '*|169.254.169.254/32|80,443|15090'
seed '10.0.0.0/8,fd00::/8|10.1.0.0/16|*|'
seed '||*|22'

cat >"$work/policy.dict" <<'DICT'
","
"/"
"*"
"|"
"."
":"
"::"
" "
"\x09"
"/0"
"/8"
"/32"
"/33"
"/128"
"/129"
"0"
"65535"
"65536"
"4294967296"
"::ffff:"
"255.255.255.255"
DICT

rc=0
"$out/fuzz_policy" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
	-artifact_prefix="$out/" -dict="$work/policy.dict" "$@" "$work/corpus" || rc=$?
if [ "$rc" != 0 ]; then
	echo "run.sh: fuzz_policy failed (exit $rc); inputs in $out/" >&2
	exit "$rc"
fi

# fuzz_common: the first byte holds the SMC_ADDR_* flags (1 ADDR:PORT,
# 2 bare, 4 port only, 8 port 0); the rest is a value, or words on lines
mkdir "$work/common"
cseed() {
	n=$((n + 1))
	printf '%b' "$1" >"$work/common/seed-$n"
}
cseed '\x01127.0.0.1:15095'
cseed '\x09[::1]:0'
cseed '\x02::1'
cseed '\x03[2001:db8::1]:80'
cseed '\x048080'
cseed '\x01localhost:80'
cseed '\x01--listen\n1.2.3.4:80\n-p\n80'
cseed '\x00-ap81\n--size\n8MiB\n--mark\n0x10'
cseed '\x01stray\n--count=7\n-h'
cseed '\x00--name=\n--port\n0'
"$out/fuzz_common" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
	-artifact_prefix="$out/" "$@" "$work/common" || rc=$?
if [ "$rc" != 0 ]; then
	echo "run.sh: fuzz_common failed (exit $rc); inputs in $out/" >&2
	exit "$rc"
fi
echo "run.sh: no crash in ${secs}s per fuzzer"
