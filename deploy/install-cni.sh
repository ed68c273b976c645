#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Install sockmesh-cni on a node: copy the plugin binary into the CNI bin
# dir and chain the plugin into the node's CNI network configuration, the
# first configuration file in lexical order (the one containerd and CRI-O
# use), which must be a .conflist. Idempotent: a second run changes nothing;
# an older sockmesh-cni entry is replaced, every other plugin and key is
# kept. Files are replaced atomically (temp file + rename in the same dir).
# `sockmesh uninstall` undoes it.
#
# The DaemonSet runs it as an init container with the host's /opt/cni/bin and
# /etc/cni/net.d mounted at the same paths.
set -euo pipefail

PLUGIN=sockmesh-cni
CNI_BIN_DIR=${CNI_BIN_DIR:-/opt/cni/bin}
CNI_CONF_DIR=${CNI_CONF_DIR:-/etc/cni/net.d}
SOCKMESH_CNI_BIN=${SOCKMESH_CNI_BIN:-}
SOCKMESH_CNI_CONF=${SOCKMESH_CNI_CONF:-}
SOCKMESH_CNI_WAIT=${SOCKMESH_CNI_WAIT:-0}
# where the image keeps the plugin and the example configuration
SHARE_DIR=${SOCKMESH_SHARE_DIR:-/usr/share/sockmesh}
BIN_CANDIDATES=("/usr/lib/sockmesh/$PLUGIN" "/usr/libexec/cni/$PLUGIN" "/usr/local/libexec/cni/$PLUGIN"
	"/usr/sbin/$PLUGIN" "/usr/bin/$PLUGIN")

log() { printf 'install-cni: %s\n' "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

usage() {
	cat <<-USAGE
		Usage: install-cni.sh [options]
		  Copy $PLUGIN into the CNI bin dir and chain it into the node's conflist.
		Options (environment variable in brackets):
		  --cni-bin-dir DIR     CNI plugin binaries [CNI_BIN_DIR]
		                        (default /opt/cni/bin)
		  --cni-conf-dir DIR    CNI network configurations [CNI_CONF_DIR]
		                        (default /etc/cni/net.d)
		  --plugin-bin FILE     the $PLUGIN binary to install [SOCKMESH_CNI_BIN]
		                        (default: the first of ${BIN_CANDIDATES[*]})
		  --plugin-conf JSON|@FILE
		                        the plugin's entry in the conflist; @FILE: a JSON object or a
		                        conflist holding a $PLUGIN entry [SOCKMESH_CNI_CONF]
		                        (default @$SHARE_DIR/10-sockmesh.conflist.example, else {"type": "$PLUGIN"})
		  --wait SECONDS        wait that long for a network configuration [SOCKMESH_CNI_WAIT]
		                        (default 0)
		  -h, --help            this help
		Exit: 0 installed (or already), 1 failed, 2 bad usage.
	USAGE
}

while [ $# -gt 0 ]; do
	case $1 in
	--cni-bin-dir | --cni-conf-dir | --plugin-bin | --plugin-conf | --wait)
		[ $# -ge 2 ] || {
			log "option '$1' needs a value"
			exit 2
		}
		case $1 in
		--cni-bin-dir) CNI_BIN_DIR=$2 ;;
		--cni-conf-dir) CNI_CONF_DIR=$2 ;;
		--plugin-bin) SOCKMESH_CNI_BIN=$2 ;;
		--plugin-conf) SOCKMESH_CNI_CONF=$2 ;;
		--wait) SOCKMESH_CNI_WAIT=$2 ;;
		esac
		shift 2
		;;
	-h | --help)
		usage
		exit 0
		;;
	*)
		log "unknown option '$1' (see install-cni.sh -h)"
		exit 2
		;;
	esac
done
if ! [[ $SOCKMESH_CNI_WAIT =~ ^[0-9]{1,5}$ ]] || [ "$SOCKMESH_CNI_WAIT" -gt 86400 ]; then
	log "--wait: '$SOCKMESH_CNI_WAIT' is not a number of seconds (0-86400)"
	exit 2
fi
command -v jq >/dev/null || die "jq is needed (Debian package jq)"

# ---- the plugin's conflist entry
entry_from() {
	local src=$1 text
	if [[ $src == @* ]]; then
		[ -r "${src#@}" ] || {
			log "--plugin-conf: cannot read '${src#@}'"
			exit 2
		}
		text=$(cat "${src#@}")
	else
		text=$src
	fi
	jq -ce --arg t "$PLUGIN" 'if type == "object" and has("plugins")
		then (.plugins // [] | map(select(type == "object" and .type == $t)) | first)
		else . end | select(type == "object" and .type == $t)' <<<"$text" 2>/dev/null || {
		log "--plugin-conf: '$src' is not a JSON object with \"type\": \"$PLUGIN\" (nor a conflist holding one)"
		exit 2
	}
}
if [ -n "$SOCKMESH_CNI_CONF" ]; then
	ENTRY=$(entry_from "$SOCKMESH_CNI_CONF")
elif [ -r "$SHARE_DIR/10-sockmesh.conflist.example" ]; then
	ENTRY=$(entry_from "@$SHARE_DIR/10-sockmesh.conflist.example")
else
	ENTRY=$(jq -cn --arg t "$PLUGIN" '{type: $t}')
fi

# ---- the binary
if [ -z "$SOCKMESH_CNI_BIN" ]; then
	for c in "${BIN_CANDIDATES[@]}"; do
		if [ -x "$c" ]; then
			SOCKMESH_CNI_BIN=$c
			break
		fi
	done
	[ -n "$SOCKMESH_CNI_BIN" ] || die "no $PLUGIN binary in ${BIN_CANDIDATES[*]}: pass --plugin-bin"
fi
[ -f "$SOCKMESH_CNI_BIN" ] || die "--plugin-bin: '$SOCKMESH_CNI_BIN' is not a file"
[ -d "$CNI_BIN_DIR" ] || die "--cni-bin-dir: '$CNI_BIN_DIR' is not a directory"
dst="$CNI_BIN_DIR/$PLUGIN"
if [ -x "$dst" ] && cmp -s "$SOCKMESH_CNI_BIN" "$dst"; then
	log "$dst is up to date"
else
	# a runtime must never exec half a binary: copy beside it, then rename
	tmp="$CNI_BIN_DIR/.$PLUGIN.install-tmp"
	install -m 0755 "$SOCKMESH_CNI_BIN" "$tmp"
	mv -f "$tmp" "$dst"
	log "installed $dst"
fi

# ---- the network configuration
# first_config: the configuration file the runtime uses (lexical order of
# *.conf, *.conflist, *.json; hidden files are not configurations)
first_config() {
	find "$CNI_CONF_DIR" -maxdepth 1 -type f \( -name '*.conf' -o -name '*.conflist' -o -name '*.json' \) \
		! -name '.*' -printf '%f\n' 2>/dev/null | LC_ALL=C sort | head -n 1
}
[ -d "$CNI_CONF_DIR" ] || die "--cni-conf-dir: '$CNI_CONF_DIR' is not a directory"
conf=
for ((i = 0; i <= SOCKMESH_CNI_WAIT; i++)); do
	conf=$(first_config)
	[ -n "$conf" ] && break
	[ "$i" -lt "$SOCKMESH_CNI_WAIT" ] && sleep 1
done
[ -n "$conf" ] || die "no CNI network configuration in $CNI_CONF_DIR after ${SOCKMESH_CNI_WAIT}s (is the primary CNI installed?)"
path="$CNI_CONF_DIR/$conf"
[[ $conf == *.conflist ]] || die "$path is a single-plugin configuration: $PLUGIN chains only into a .conflist"
jq -e '.plugins | type == "array"' "$path" >/dev/null 2>&1 || die "$path is not a conflist with a \"plugins\" array"

# drop any sockmesh-cni entry, append ours: the same result on every run
new=$(jq --argjson p "$ENTRY" --arg t "$PLUGIN" \
	'.plugins |= (map(select((type == "object" and .type == $t) | not)) + [$p])' "$path")
if [ "$(jq -cS . "$path")" = "$(jq -cS . <<<"$new")" ]; then
	log "$PLUGIN is already chained in $path"
	exit 0
fi
tmp="$CNI_CONF_DIR/.$conf.sockmesh-tmp"
printf '%s\n' "$new" >"$tmp"
chmod "$(stat -c %a "$path")" "$tmp"
mv -f "$tmp" "$path"
log "chained $PLUGIN into $path"
