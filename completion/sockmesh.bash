# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# shellcheck shell=bash
# bash completion for sockmesh(8).
#
# Nothing about the CLI is written down here: the commands come from the
# "Commands:" list of `sockmesh -h` and each command's options from
# `sockmesh COMMAND -h`, read at completion time from the very binary being
# completed, so this file cannot drift from the CLI. An option's argument
# name in the help (PATH, FILE, DIR, NAME|PATH, ...) says what to complete
# after it: file names for PATH/FILE, directories for DIR, /run/netns names
# (and paths) for --netns.

# _sockmesh_bin WORD0: the sockmesh binary the command line runs.
_sockmesh_bin() {
	local b=$1
	if [[ $b == */* ]]; then
		[[ -x $b ]] && { printf '%s\n' "$b"; return; }
	elif command -v "$b" >/dev/null 2>&1; then
		printf '%s\n' "$b"
		return
	fi
	printf 'sockmesh\n'
}

# _sockmesh_commands BIN: the command names of `BIN -h` ("Commands:" list:
# indented lines whose first word is the command, up to the first line that
# is not indented).
_sockmesh_commands() {
	"$1" -h 2>/dev/null | awk '
		/^Commands:/ { on = 1; next }
		on && /^[ \t]+[a-z][a-z0-9-]*([ \t]|$)/ { print $1; next }
		on && /^[^ \t]/ { on = 0 }'
}

# _sockmesh_options BIN [CMD]: one "--option ARG" line per long option of
# `BIN CMD -h` (`BIN -h` without CMD; there the options are on the Usage
# line, as [-j|--json] [--pin-dir DIR]). ARG is "-" for flags.
_sockmesh_options() {
	local bin=$1 usage=0
	shift
	[[ $# -eq 0 ]] && usage=1
	"$bin" "$@" -h 2>/dev/null | awk -v usage="$usage" '
		# option lines: indented, optional short flag, then --long [ARG]
		/^[ \t]+(-[A-Za-z0-9],[ \t]*)?--[a-z0-9]/ {
			sub(/^[ \t]+(-[A-Za-z0-9],[ \t]*)?/, "")
			split($0, w, /[ \t=]+/)
			arg = (w[2] ~ /^[A-Z<]/) ? w[2] : "-"
			print w[1], arg
			next
		}
		usage && /^Usage:/ {
			line = $0
			while (match(line, /\[[^]]*--[a-z0-9-]+[^]]*\]/)) {
				g = substr(line, RSTART + 1, RLENGTH - 2)
				line = substr(line, RSTART + RLENGTH)
				n = split(g, w, /[ \t|=]+/)
				for (i = 1; i <= n; i++)
					if (w[i] ~ /^--[a-z0-9-]+$/) {
						arg = (i < n && w[i + 1] ~ /^[A-Z]/) ? w[i + 1] : "-"
						print w[i], arg
					}
			}
		}'
}

# _sockmesh_arg_of OPTION "LINES": the ARG of OPTION in _sockmesh_options
# output, nothing when OPTION is unknown.
_sockmesh_arg_of() {
	local o a
	while read -r o a; do
		[[ $o == "$1" ]] && { printf '%s\n' "$a"; return; }
	done <<<"$2"
}

_sockmesh_complete_arg() {
	local opt=$1 arg=$2 cur=$3 n
	if [[ $opt == --netns ]]; then
		if [[ $cur != */* ]] && [[ -d /run/netns ]]; then
			for n in /run/netns/*; do
				[[ -e $n ]] || continue
				n=${n##*/}
				[[ $n == "$cur"* ]] && COMPREPLY+=("$n")
			done
		fi
		[[ $cur == */* || ${#COMPREPLY[@]} -eq 0 ]] || return 0
		compopt -o filenames 2>/dev/null
		mapfile -t -O "${#COMPREPLY[@]}" COMPREPLY < <(compgen -f -- "$cur")
		return 0
	fi
	case $arg in
	DIR | *\|DIR | DIR\|*)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -d -- "$cur")
		;;
	*PATH* | *FILE*)
		compopt -o filenames 2>/dev/null
		mapfile -t COMPREPLY < <(compgen -f -- "$cur")
		;;
	esac
	return 0
}

_sockmesh() {
	local cur=${COMP_WORDS[COMP_CWORD]} bin cmd="" cmds opts i w arg prev
	COMPREPLY=()
	bin=$(_sockmesh_bin "${COMP_WORDS[0]}")
	cmds=$(_sockmesh_commands "$bin")

	# the command: the first word after the global options and their arguments
	local gopts
	gopts=$(_sockmesh_options "$bin")
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ $w == -* ]]; then
			arg=$(_sockmesh_arg_of "$w" "$gopts")
			[[ -n $arg && $arg != - && ${COMP_WORDS[i + 1]:-} != = ]] && ((i++))
			[[ ${COMP_WORDS[i + 1]:-} == = ]] && ((i += 2))
			continue
		fi
		if grep -qxF -- "$w" <<<"$cmds"; then
			cmd=$w
			break
		fi
	done

	if [[ -n $cmd ]]; then
		opts=$(_sockmesh_options "$bin" "$cmd")
	else
		opts=$gopts
	fi

	# an option's argument: "--opt ARG" or "--opt=ARG" (bash splits at '=')
	prev=${COMP_WORDS[COMP_CWORD - 1]:-}
	if [[ $cur == = ]]; then
		cur=""
	elif [[ $prev == = ]] && ((COMP_CWORD >= 2)); then
		prev=${COMP_WORDS[COMP_CWORD - 2]}
	fi
	if [[ $prev == --* ]]; then
		arg=$(_sockmesh_arg_of "$prev" "$opts")
		if [[ -n $arg && $arg != - ]]; then
			_sockmesh_complete_arg "$prev" "$arg" "$cur"
			return 0
		fi
	fi

	if [[ $cur == -* ]]; then
		local list
		list=$(awk '{ print $1 }' <<<"$opts")
		[[ -n $cmd ]] || list+=$'\n--help'
		mapfile -t COMPREPLY < <(compgen -W "$list" -- "$cur")
	elif [[ -z $cmd ]]; then
		mapfile -t COMPREPLY < <(compgen -W "$cmds" -- "$cur")
	fi
	return 0
}

complete -F _sockmesh sockmesh
