#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Install sockmesh-cni on a node: copy the plugin binary into the CNI bin
# dir and chain the plugin into the node's CNI network configuration, the
# first configuration file in byte order (the one containerd and CRI-O use),
# which must be a .conflist. Idempotent; every other plugin and key is kept;
# files are replaced atomically. `sockmesh uninstall` undoes it. A conflist
# of a CNI version the plugin does not serve (its cniVersion, or the highest
# of its cniVersions, not one of 0.3.0 to 1.1.0; or none) is refused: exit
# 1, a message naming the file and the version, the file untouched, rather
# than a chain whose every ADD would fail.
#
# The work is `sockmesh cni-install` (one implementation with `sockmesh
# uninstall`, in user/common/conflist.c); this wrapper maps the init
# container's environment onto its options:
#   CNI_BIN_DIR -> --cni-bin-dir       CNI_CONF_DIR -> --cni-conf-dir
#   SOCKMESH_CNI_BIN -> --plugin-bin   SOCKMESH_CNI_CONF -> --plugin-conf
#   SOCKMESH_CNI_WAIT -> --wait        SOCKMESH_SHARE_DIR: where the example
#                                      configuration is (default /usr/share/sockmesh)
# Options given on the command line win. SOCKMESH_CLI names the CLI
# (default: `sockmesh` on PATH, else /usr/sbin/sockmesh).
#
# The DaemonSet runs it as an init container with the host's /opt/cni/bin and
# /etc/cni/net.d mounted at the same paths.
set -euo pipefail

cli=${SOCKMESH_CLI:-$(command -v sockmesh || echo /usr/sbin/sockmesh)}
[ -x "$cli" ] || {
	echo "install-cni: error: the sockmesh CLI is not at '$cli' (set SOCKMESH_CLI)" >&2
	exit 1
}

# given OPTION: is it on the command line (as --opt VALUE or --opt=VALUE)?
given() {
	local a
	for a in "${args[@]}"; do
		[ "$a" = "$1" ] || [[ $a == "$1="* ]] && return 0
	done
	return 1
}

args=("$@")
env_opts=()
for pair in CNI_BIN_DIR:--cni-bin-dir CNI_CONF_DIR:--cni-conf-dir SOCKMESH_CNI_BIN:--plugin-bin \
	SOCKMESH_CNI_CONF:--plugin-conf SOCKMESH_CNI_WAIT:--wait; do
	var=${pair%%:*} opt=${pair#*:}
	if [ -n "${!var:-}" ] && ! given "$opt"; then
		env_opts+=("$opt" "${!var}")
	fi
done
exec "$cli" cni-install "${env_opts[@]}" "$@"
