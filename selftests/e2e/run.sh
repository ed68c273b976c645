#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Run the e2e tests (root, real kernel): every test_*.sh here, or those whose
# name contains one of the FILTER arguments. One line per test on stdout
# ("PASS name 12s" / "FAIL name 3s"), then "N passed, N failed"; exit 0 only
# if none failed. Each test's output goes to $E2E_LOG_DIR/NAME.log and is
# copied to stderr when the test fails (or always with -v).
#
#   run.sh [-v] [FILTER...]
#   E2E_TIMEOUT=300  seconds per test (then SIGTERM, the test cleans up)
set -uo pipefail

dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
verbose=0
if [ "${1:-}" = -v ]; then
	verbose=1
	shift
fi
timeout_s=${E2E_TIMEOUT:-300}
log_dir=${E2E_LOG_DIR:-$(mktemp -d /tmp/sockmesh-e2e-logs.XXXXXX)}
mkdir -p "$log_dir"

tests=()
for t in "$dir"/test_*.sh; do
	name=$(basename "$t" .sh)
	if [ $# -gt 0 ]; then
		match=0
		for f in "$@"; do [[ $name == *"$f"* ]] && match=1; done
		[ "$match" = 1 ] || continue
	fi
	tests+=("$name")
done
if [ ${#tests[@]} = 0 ]; then
	echo "no test matches: $*" >&2
	echo "0 passed, 0 failed"
	exit 1
fi

echo "e2e logs in $log_dir" >&2
passed=0
failed=0
for name in "${tests[@]}"; do
	log="$log_dir/$name.log"
	t0=$SECONDS
	rc=0
	# a test gets SIGTERM at the deadline (its trap cleans up), SIGKILL 30 s later
	timeout --kill-after=30 "$timeout_s" bash "$dir/$name.sh" </dev/null >"$log" 2>&1 || rc=$?
	secs=$((SECONDS - t0))
	if [ "$rc" = 0 ]; then
		passed=$((passed + 1))
		echo "PASS $name ${secs}s"
		[ "$verbose" = 1 ] && cat "$log" >&2
	else
		failed=$((failed + 1))
		[ "$rc" = 124 ] && echo "(timed out after ${timeout_s}s)" >>"$log"
		echo "FAIL $name ${secs}s"
		{
			echo "---- $name (exit $rc) ----"
			cat "$log"
			echo "---- end of $name ----"
		} >&2
	fi
done
# logs of a clean run are not worth keeping (a caller's E2E_LOG_DIR is theirs)
if [ "$failed" = 0 ] && [ -z "${E2E_LOG_DIR:-}" ]; then
	rm -rf "$log_dir"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
