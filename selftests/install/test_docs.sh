#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Docs drift: the long options the CLI's help prints must be the ones
# documented, for the global options (`sockmesh -h`) and for every command
# (`sockmesh COMMAND -h`), in docs/cli-contract.md (a table per command, one
# `--option` per row in the first column) and in man/sockmesh.8.md (OPTIONS,
# and a "## COMMAND" section per command under COMMANDS, one **--option**
# term per option). The commands must be the same three times too. --help
# (every command has it) is left out. Only the option names are compared:
# from the help, the --long token that starts an option line (after an
# optional short flag), so wording and layout may change freely. The same
# for sockmeshd: `sockmeshd -h` = the OPTIONS terms of man/sockmeshd.8.md
# (--help and --version, in its SYNOPSIS, left out).
#   selftests/install/test_docs.sh [SOCKMESH [SOCKMESHD]]
#   (default build/user/cli/sockmesh, build/user/daemon/sockmeshd)
# One "ok - ..." / "not ok - ..." line per check, then "N passed, N failed".
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
CLI=${1:-$ROOT/build/user/cli/sockmesh}
CONTRACT=$ROOT/docs/cli-contract.md
MAN=$ROOT/man/sockmesh.8.md
DAEMON=${2:-$ROOT/build/user/daemon/sockmeshd}
DAEMON_MAN=$ROOT/man/sockmeshd.8.md

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
nok() { echo "not ok - $*"; failed=$((failed + 1)); }

[ -x "$CLI" ] || { nok "no CLI at $CLI (build first)"; echo "$passed passed, $failed failed"; exit 1; }

# long_opts: the --long names in stdin, one per line, sorted, without --help
long_opts() { grep -oE -- '--[a-z0-9][a-z0-9-]*' | grep -vx -- --help | sort -u; }

# help_commands: the "Commands:" list of sockmesh -h
help_commands() {
	"$CLI" -h 2>&1 | awk '
		/^Commands:/ { on = 1; next }
		on && /^[ \t]+[a-z][a-z0-9-]*([ \t]|$)/ { print $1; next }
		on && /^[^ \t]/ { on = 0 }' | sort -u
}

# help_options [COMMAND]: the long options of sockmesh [COMMAND] -h: option
# lines start (after indentation and an optional "-x, ") with --name. The
# global ones are also read from the Usage line ([-j|--json] [--pin-dir DIR]).
help_options() {
	local out
	out=$("$CLI" "$@" -h 2>&1)
	{
		grep -E '^[[:space:]]+(-[A-Za-z0-9],[[:space:]]*)?--[a-z0-9]' <<<"$out" |
			sed -E 's/^[[:space:]]+(-[A-Za-z0-9],[[:space:]]*)?//' | grep -oE '^--[a-z0-9-]+'
		if [ $# -eq 0 ]; then
			grep -E '^Usage:' <<<"$out" | sed -E 's/ COMMAND.*//' | grep -oE '\[[^]]*\]' | grep -oE -- '--[a-z0-9-]+'
		fi
	} | long_opts
}

# contract_sections: "SECTION<TAB>first cell" for every table row of
# docs/cli-contract.md under a "### sockmesh COMMAND" or "### global options"
# heading; contract_commands: those COMMANDs.
contract_rows() {
	awk '
		/^#/ {
			sec = ""
			if ($0 ~ /^### sockmesh [a-z]/) { sec = substr($0, 14); print sec "\t" }
			else if ($0 ~ /^### global options/) sec = "global"
			next
		}
		sec != "" && /^\|/ { split($0, c, "|"); print sec "\t" c[2] }' "$CONTRACT"
}
contract_options() { contract_rows | awk -F'\t' -v s="$1" '$1 == s { print $2 }' | long_opts; }
contract_commands() { contract_rows | awk -F'\t' '$1 != "global" { print $1 }' | sort -u; }

# man_terms: "SECTION<TAB>term line" for every definition term (a line
# starting with **-) of OPTIONS (global) and of each "## COMMAND" of COMMANDS
man_terms() {
	awk '
		/^# / { top = substr($0, 3); sec = (top == "OPTIONS") ? "global" : ""; next }
		/^## / { if (top == "COMMANDS") { sec = substr($0, 4); print sec "\t" } next }
		sec != "" && /^\*\*-/ { print sec "\t" $0 }' "$MAN"
}
man_options() { man_terms | awk -F'\t' -v s="$1" '$1 == s { print $2 }' | long_opts; }
man_commands() { man_terms | awk -F'\t' '$1 != "global" { print $1 }' | sort -u; }

# same WHAT HELP DOC: one check that two sorted lists are equal
same() {
	local what=$1 missing extra
	missing=$(comm -23 <(printf '%s\n' "$2" | sed '/^$/d') <(printf '%s\n' "$3" | sed '/^$/d') | tr '\n' ' ')
	extra=$(comm -13 <(printf '%s\n' "$2" | sed '/^$/d') <(printf '%s\n' "$3" | sed '/^$/d') | tr '\n' ' ')
	if [ -z "$missing" ] && [ -z "$extra" ]; then
		ok "$what"
	else
		nok "$what${missing:+ (not documented: $missing)}${extra:+ (documented, not in the CLI: $extra)}"
	fi
}

cmds=$(help_commands)
if [ -z "$cmds" ]; then
	nok "sockmesh -h lists commands"
else
	ok "sockmesh -h lists commands: $(tr '\n' ' ' <<<"$cmds")"
fi
same "docs/cli-contract.md has a section per command" "$cmds" "$(contract_commands)"
same "man/sockmesh.8.md has a section per command" "$cmds" "$(man_commands)"

global=$(help_options)
[ -n "$global" ] || nok "sockmesh -h shows global options"
same "global options: docs/cli-contract.md = sockmesh -h" "$global" "$(contract_options global)"
same "global options: man/sockmesh.8.md = sockmesh -h" "$global" "$(man_options global)"

while IFS= read -r c; do
	[ -n "$c" ] || continue
	opts=$(help_options "$c")
	same "sockmesh $c: docs/cli-contract.md = sockmesh $c -h" "$opts" "$(contract_options "$c")"
	same "sockmesh $c: man/sockmesh.8.md = sockmesh $c -h" "$opts" "$(man_options "$c")"
done <<<"$cmds"

if [ -x "$DAEMON" ]; then
	d_help=$("$DAEMON" -h 2>&1 | grep -E '^[[:space:]]+(-[A-Za-z0-9],[[:space:]]*)?--[a-z0-9]' |
		sed -E 's/^[[:space:]]+(-[A-Za-z0-9],[[:space:]]*)?//' | long_opts | grep -vx -- --version)
	d_man=$(awk '/^# / { on = ($0 == "# OPTIONS"); next } on && /^\*\*-/' "$DAEMON_MAN" | long_opts)
	[ -n "$d_help" ] || nok "sockmeshd -h shows options"
	same "sockmeshd: man/sockmeshd.8.md = sockmeshd -h" "$d_help" "$d_man"
else
	nok "no sockmeshd at $DAEMON (build first)"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
