#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# What `meson install` puts on a machine, run from where it was installed:
# installs the build into a scratch DESTDIR, then runs every installed
# program against the installed libsockmesh only (LD_LIBRARY_PATH is the
# DESTDIR's libdir; ldd must resolve libsockmesh there, never in the build
# tree), enables and disables a lab scope with the installed CLI (a child
# cgroup of the cgroup2 mount and a private pin dir; never the root cgroup),
# compiles a program against the installed header and pkg-config file, and
# checks the man pages (rendered without warnings), the bash completion and
# the systemd unit.
#   selftests/install/test_installed.sh [BUILDDIR]    (root; default build)
# One "ok - ..." / "not ok - ..." line per check, then "N passed, N failed".
# shellcheck disable=SC2317 # the check functions are called through check()
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$ROOT/build}" && pwd) || exit 1
SM_TAG=${SM_TAG:-sminst$$}
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"
sm_init # cleanup trap: the scope, pin dir, cgroup and DESTDIR go on every exit

passed=0
failed=0
ok() { echo "ok - $*"; passed=$((passed + 1)); }
nok() { echo "not ok - $*"; failed=$((failed + 1)); }
# check DESCRIPTION CMD...: one check, ok when CMD succeeds
check() {
	local what=$1
	shift
	if "$@"; then ok "$what"; else nok "$what"; fi
}
finish() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit $?
}

DEST=$(sm_tmpdir destdir)
WORK=$(sm_tmpdir work)

# ---- install -----------------------------------------------------------------
if DESTDIR=$DEST meson install -C "$BUILD" --quiet >"$WORK/install.log" 2>&1; then
	ok "meson install into DESTDIR"
else
	sed 's/^/# /' "$WORK/install.log"
	nok "meson install into DESTDIR"
	finish
fi

# Where meson says each file goes (absolute paths without DESTDIR).
meson introspect --installed "$BUILD" | jq -r '.[]' | sort -u >"$WORK/installed"
VERSION=$(meson introspect --projectinfo "$BUILD" | jq -r .version)
# installed NAME: the DESTDIR path of the installed file called NAME (the
# bash completion, also called sockmesh, is found by its directory)
installed() {
	local p
	p=$(grep -vF /bash-completion/ "$WORK/installed" | grep -E "/$1\$" | head -1)
	[ -n "$p" ] && printf '%s\n' "$DEST$p"
}

missing=0
while IFS= read -r p; do
	[ -e "$DEST$p" ] || { echo "# missing: $p"; missing=$((missing + 1)); }
done <"$WORK/installed"
check "all $(wc -l <"$WORK/installed") files meson lists are in DESTDIR" [ "$missing" = 0 ]

CLI=$(installed sockmesh)
DAEMON=$(installed sockmeshd)
SIDECAR=$(installed sockmesh-sidecar)
CNI=$(installed sockmesh-cni)
LIBSO=$(installed libsockmesh.so.0)
for v in CLI DAEMON SIDECAR CNI LIBSO; do
	if [ -z "${!v}" ] || [ ! -e "${!v}" ]; then
		nok "installed: $v"
		finish
	fi
done
ok "installed: sockmesh, sockmeshd, sockmesh-sidecar, sockmesh-cni, libsockmesh.so.0"
LIBDIR=$(dirname "$LIBSO")
export LD_LIBRARY_PATH=$LIBDIR
SM_CLI=$CLI # sm_cleanup disables what is left with the installed CLI

# ---- the installed library, and only it --------------------------------------
# links_installed BIN: every library resolves, libsockmesh (if BIN links it)
# inside DESTDIR, nothing in the source or build tree (RUNPATH included).
links_installed() {
	local out
	# a static program (sockmesh-cni) has nothing to resolve
	readelf -lW "$1" | grep -q 'INTERP\|DYNAMIC' || return 0
	out=$(ldd "$1" 2>&1) || { echo "# ldd $1: $out"; return 1; }
	if grep -q 'not found' <<<"$out"; then
		echo "# $(grep 'not found' <<<"$out")"
		return 1
	fi
	if grep -F -e "$ROOT" -e "$BUILD" <<<"$out"; then return 1; fi
	if readelf -d "$1" | grep -E 'R(UN)?PATH' | grep -F -e "$ROOT" -e "$BUILD"; then return 1; fi
	if grep libsockmesh <<<"$out" | grep -vF "=> $LIBDIR/"; then return 1; fi
	return 0
}
for b in "$CLI" "$DAEMON" "$SIDECAR" "$CNI"; do
	check "${b#"$DEST"}: libraries resolve outside the build tree (libsockmesh in DESTDIR)" links_installed "$b"
done
# the front-ends are thin over the installed shared library; the CNI plugin
# carries it (a node's CNI bin dir has no libsockmesh.so)
for b in "$CLI" "$DAEMON" "$SIDECAR"; do
	check "${b##*/} loads libsockmesh.so.0 from DESTDIR" \
		grep -qF "libsockmesh.so.0 => $LIBDIR/libsockmesh.so.0" <(ldd "$b")
done
no_shared_lib() { ! ldd "$1" | grep -q libsockmesh; }
check "sockmesh-cni needs no libsockmesh.so" no_shared_lib "$CNI"
# it runs from the node's CNI bin dir for every pod: no shared library at all
static_bin() { ! readelf -lW "$1" | grep -q 'INTERP\|DYNAMIC'; }
check "sockmesh-cni is statically linked (no interpreter, no dynamic section)" static_bin "$CNI"

# A program built from the installed header and pkg-config file.
cat >"$WORK/t.c" <<'EOF'
#include <stdio.h>
#include <sockmesh.h>
int main(void)
{
	const char *n = sockmesh_stat_name(0);

	printf("%s %d\n", n ? n : "(null)", sockmesh__exists("/nonexistent-sockmesh") ? 1 : 0);
	return n ? 0 : 1;
}
EOF
PCDIR=$(dirname "$(installed libsockmesh.pc)")
PREFIX=$(meson introspect --buildoptions "$BUILD" | jq -r '.[] | select(.name == "prefix") | .value')
build_against_installed() {
	local flags
	flags=$(PKG_CONFIG_PATH=$PCDIR pkg-config --define-variable=prefix="$DEST$PREFIX" \
		--cflags --libs libsockmesh) || return 1
	# shellcheck disable=SC2086 # pkg-config output is a word list
	cc -Wall -Werror -o "$WORK/t" "$WORK/t.c" $flags || return 1
	"$WORK/t" >"$WORK/t.out" && links_installed "$WORK/t" &&
		grep -qF "libsockmesh.so.0 => $LIBDIR/" <(ldd "$WORK/t")
}
check "a program built with pkg-config libsockmesh from DESTDIR runs against it" build_against_installed

# ---- the programs ------------------------------------------------------------
help_ok() { "$CLI" -h >"$WORK/h" && grep -q '^Commands:' "$WORK/h"; }
cmd_help_ok() { "$CLI" "$1" -h | grep -q -- '--help'; }
doctor_ok() { "$CLI" doctor >"$WORK/doctor" 2>&1 || { sed 's/^/# /' "$WORK/doctor"; return 1; }; }
doctor_json_ok() { "$CLI" -j doctor | jq -e '(.checks | length) > 0 and all(.checks[]; .ok)' >/dev/null; }
daemon_help_ok() { "$DAEMON" --help | grep -q -- '--pin-dir'; }
daemon_version_ok() { [ "$("$DAEMON" -V)" = "sockmeshd $VERSION" ]; }
sidecar_help_ok() { "$SIDECAR" --help | grep -q -- '--listen'; }
cni_version_ok() {
	CNI_COMMAND=VERSION "$CNI" </dev/null |
		jq -e '.cniVersion == "1.0.0" and (.supportedVersions | index("1.0.0"))' >/dev/null
}

check "sockmesh -h" help_ok
mapfile -t CMDS < <(awk '/^Commands:/ { on = 1; next }
	on && /^[ \t]+[a-z]/ { print $1; next } on { on = 0 }' "$WORK/h")
check "sockmesh -h lists commands (${CMDS[*]})" [ "${#CMDS[@]}" -ge 6 ]
for c in "${CMDS[@]}"; do
	check "sockmesh $c -h" cmd_help_ok "$c"
done
check "sockmesh doctor" doctor_ok
check "sockmesh -j doctor: every check ok" doctor_json_ok
# the kernel guard (issue 12 item 6): this kernel's answer, with the CVE named
doctor_sockmap_ok() {
	"$CLI" -j doctor | jq -e '[.checks[] | select(.check == "sockmap fixes")] | length == 1 and
		.[0].ok and (.[0].detail | test("CVE-2025-38165"))' >/dev/null
}
check "sockmesh -j doctor: the sockmap fixes check names CVE-2025-38165 and passes here" doctor_sockmap_ok
check "sockmeshd --help" daemon_help_ok
check "sockmeshd -V says $VERSION" daemon_version_ok
check "sockmesh-sidecar --help" sidecar_help_ok
check "sockmesh-cni VERSION" cni_version_ok

# ---- a lab scope with the installed CLI --------------------------------------
cg_progs() { bpftool -j cgroup show "$1" | jq -s '.[0] // [] | length'; }
status_has_scope() {
	"$CLI" --pin-dir "$PIN" -j status |
		jq -e --arg cg "$CG" '.loaded and any(.scopes[]; .kind == "cgroup" and .name == $cg)' >/dev/null
}
status_not_loaded() { "$CLI" --pin-dir "$PIN" -j status | jq -e '.loaded == false' >/dev/null; }

CG=$(sm_cgroup app)
PIN=$(sm_pindir pin)
# cli ARGS...: the installed CLI, its output as comments
cli() {
	"$CLI" "$@" 2>&1 | sed 's/^/# /'
	return "${PIPESTATUS[0]}"
}
check "sockmesh enable --cgroup (child cgroup, private pin dir)" cli --pin-dir "$PIN" enable --cgroup "$CG"
check "sockmesh status -j shows the cgroup scope" status_has_scope
# JSON as the state file and the plugin write it: '/' not escaped as '\/'
status_no_slash_escape() { ! "$CLI" --pin-dir "$PIN" -j status | grep -qF '\/'; }
check "sockmesh -j status writes the cgroup path's '/' unescaped" status_no_slash_escape
check "programs attached at the cgroup" [ "$(cg_progs "$CG")" -gt 0 ]
check "sockmesh disable --all" cli --pin-dir "$PIN" disable --all
check "sockmesh enable --force (a kernel with the fixes: same as without)" \
	cli --pin-dir "$PIN" enable --force --cgroup "$CG"
check "sockmesh disable --all after --force" cli --pin-dir "$PIN" disable --all
check "nothing left: no pin dir" [ ! -e "$PIN" ]
check "nothing left: no program at the cgroup" [ "$(cg_progs "$CG")" = 0 ]
check "sockmesh status -j: not loaded" status_not_loaded
check "nothing left: no pin dir after status" [ ! -e "$PIN" ]

# ---- man pages ---------------------------------------------------------------
MANDIR=$DEST$(meson introspect --buildoptions "$BUILD" | jq -r '.[] | select(.name == "mandir") | .value' |
	sed "s|^\([^/]\)|$PREFIX/\1|")
# renders CMD...: the page renders, with no warning from man or groff
renders() {
	local err
	err=$(LC_ALL=C.UTF-8 MANWIDTH=80 "$@" 2>&1 >"$WORK/page") || { echo "# $err"; return 1; }
	[ -z "$err" ] || { echo "# $err"; return 1; }
	grep -q '^NAME' "$WORK/page"
}
groff_clean() {
	local out
	out=$(groff -man -ww -z -Tutf8 "$1" 2>&1) && [ -z "$out" ] && return 0
	echo "# $out"
	return 1
}
for page in sockmesh.8 sockmeshd.8 sockmesh-sidecar.8 sockmesh-cni.8 libsockmesh.3; do
	f=$MANDIR/man${page##*.}/$page
	if [ ! -f "$f" ]; then
		nok "man page $page installed"
		continue
	fi
	check "man -l $page renders without warnings" renders man --warnings -E UTF-8 -l "$f"
	check "groff -ww renders $page without warnings" groff_clean "$f"
	check "man ${page##*.} ${page%.*} finds the installed page" \
		[ "$(MANPATH=$MANDIR man -w "${page##*.}" "${page%.*}")" = "$f" ]
done

# ---- bash completion ---------------------------------------------------------
COMP=$DEST$(grep -E '/bash-completion/completions/sockmesh$' "$WORK/installed")
check "bash completion installed" [ -f "$COMP" ]
check "bash -n on the completion" bash -n "$COMP"
# complete WORDS...: what _sockmesh offers for the last word, as bash calls it
complete_words() {
	PATH=$(dirname "$CLI"):$PATH bash --norc --noprofile -c '
		comp=$1; shift
		. "$comp" || exit 1
		complete -p sockmesh >/dev/null || exit 1
		COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}
		_sockmesh sockmesh "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
		printf "%s\n" "${COMPREPLY[@]}"' _ "$COMP" "$@"
}
check "completion: sockmesh en<TAB> -> enable" [ "$(complete_words sockmesh en)" = enable ]
check "completion: sockmesh enable --max-s<TAB> -> --max-scopes" \
	[ "$(complete_words sockmesh enable --max-s)" = --max-scopes ]
mkdir "$WORK/pins"
check "completion: sockmesh --pin-dir DIR/<TAB> completes directories" \
	[ "$(complete_words sockmesh --pin-dir "$WORK/p")" = "$WORK/pins" ]
check "completion: sockmesh enable --from-annotations DIR/<TAB> completes files" \
	grep -qxF "$WORK/t.c" <(complete_words sockmesh enable --from-annotations "$WORK/")

# ---- systemd unit ------------------------------------------------------------
UNIT=$(installed sockmeshd.service)
check "systemd unit installed" [ -f "$UNIT" ]
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$UNIT")
check "unit's ExecStart ($exec_start) is the installed sockmeshd" [ "$DEST$exec_start" = "$DAEMON" ]

finish
