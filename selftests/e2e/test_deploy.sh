#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# deploy/: the manifests parse (yamllint, strict) and mount from the host
# exactly the paths the programs use by default (sockmeshd -h, sockmesh -h,
# install-cni.sh -h, the library's lock dir) at the same paths; every
# container that writes to the host is privileged; sockmeshd listens on the
# node IP the downward API gives (--listen-host=$(HOST_IP), status.hostIP),
# where the probes go; deploy/uninstall.yaml runs, privileged, with hostPID
# and the daemon set's host paths, a `sockmesh uninstall` that exists and
# is in the image's sbin, and its exact command line uninstalls (temp dirs,
# test pin dir); the container build file uses only
# debian:12 and Debian packages that exist and cover the binaries' libraries;
# the systemd unit verifies; install-cni.sh chains sockmesh-cni into a
# conflist idempotently; `sockmesh uninstall` removes it again (other plugins
# intact), removes the binary and the kernel state, is idempotent, and
# refuses while a daemon runs. Only temp dirs, a test cgroup and a test pin
# dir are touched.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SM_DAEMON=${SM_DAEMON:-$SM_BUILD/user/daemon/sockmeshd}
DEPLOY="$SM_ROOT/deploy"
DS="$DEPLOY/daemonset.yaml"
UN="$DEPLOY/uninstall.yaml"
CF="$DEPLOY/Containerfile"
UNIT="$DEPLOY/sockmeshd.service"
INSTALL="$DEPLOY/install-cni.sh"

e2e_init deploy
e2e_need_sockmesh
[ -x "$SM_DAEMON" ] || sm_die "sockmeshd not built: $SM_DAEMON (ninja -C build)"
command -v yamllint >/dev/null || sm_die "yamllint missing (Debian package yamllint)"
CG=$(sm_cgroup app)
PIN=$(sm_pindir pin)

# yaml2json FILE: every YAML document as one JSON array (python3-yaml comes
# with yamllint)
yaml2json() {
	"$E2E_PY" -c 'import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))' "$1"
}

# help_default PROGRAM-AND-ARGS... OPTION: the "(default X)" a -h text gives
# for --OPTION (on its line or the next)
help_default() {
	local opt=${*: -1}
	"${@:1:$#-1}" | awk -v o="--$opt" '
		index($0, o " ") || index($0, o "\t") { want = 2 }
		want && match($0, /\(default [^)]*\)/) {
			print substr($0, RSTART + 9, RLENGTH - 10); exit
		}
		want { want-- }'
}

# The helpers below read the DaemonSet in $MJ: deploy/daemonset.yaml as JSON,
# unless a subtest sets it to uninstall.yaml's.
MJ_DS="$TMP/ds.json"
MJ_UN="$TMP/un.json"
MJ=$MJ_DS

# host_path_of CONTAINER PATH: the host path behind PATH in that container
# of the DaemonSet (longest mountPath prefix, hostPath volumes only), with
# its mountPropagation; empty when PATH is on no host mount
host_path_of() {
	jq -r --arg c "$1" --arg p "$2" '
		.[] | select(.kind == "DaemonSet") | .spec.template.spec as $s |
		($s.volumes | map({(.name): (.hostPath.path // null)}) | add) as $vol |
		[($s.containers + ($s.initContainers // []))[] | select(.name == $c) | .volumeMounts[] |
		 select($vol[.name] != null) | .mountPath as $m |
		 select($p == $m or ($p | startswith(($m | rtrimstr("/")) + "/")))] |
		sort_by(.mountPath | length) | last // empty | .mountPath as $m |
		"\($vol[.name] + ($p | ltrimstr($m))) \(.mountPropagation // "None")"' "$MJ"
}

# assert_same_on_host CONTAINER PATH [PROPAGATION]: PATH is the host's PATH
assert_same_on_host() {
	local got
	got=$(host_path_of "$1" "$2")
	assert_eq "${got% *}" "$2" "$1: $2 is the host's $2"
	[ $# -lt 3 ] || assert_eq "${got#* }" "$3" "$1: mount propagation for $2"
}

# container_arg CONTAINER OPTION: the value of --OPTION=V / --OPTION V in
# that container's args, empty if not given
container_arg() {
	jq -r --arg c "$1" --arg o "--$2" '
		.[] | select(.kind == "DaemonSet") | .spec.template.spec |
		[(.containers + (.initContainers // []))[] | select(.name == $c) | (.command // []) + (.args // [])][0] as $a |
		[range(0; $a | length) as $i | $a[$i] |
		 if startswith($o + "=") then ltrimstr($o + "=")
		 elif . == $o then $a[$i + 1] else empty end][0] // empty' "$MJ"
}

container_env() {
	jq -r --arg c "$1" --arg e "$2" '.[] | select(.kind == "DaemonSet") | .spec.template.spec |
		[(.containers + (.initContainers // []))[] | select(.name == $c) | (.env // [])[] |
		 select(.name == $e) | .value][0] // empty' "$MJ"
}

# container_json CONTAINER: that container of the DaemonSet, as JSON
container_json() {
	jq -c --arg c "$1" '.[] | select(.kind == "DaemonSet") | .spec.template.spec |
		[(.containers + (.initContainers // []))[] | select(.name == $c)][0]' "$MJ"
}

# host_mounts: "HOSTPATH MOUNTPATH PROPAGATION" of every hostPath mount of
# every container of the DaemonSet, once each
host_mounts() {
	jq -r '.[] | select(.kind == "DaemonSet") | .spec.template.spec as $s |
		($s.volumes | map({(.name): (.hostPath.path // null)}) | add) as $vol |
		($s.containers + ($s.initContainers // []))[] | (.volumeMounts // [])[] |
		select($vol[.name] != null) |
		"\($vol[.name]) \(.mountPath) \(.mountPropagation // "None")"' "$MJ" | sort -u
}

# lock_dir: the directory of the instance lock file, as the library names it
# (libsockmesh.so, which sockmeshd links, and the static sockmesh-cni that
# the runtime runs on the host): one line per distinct directory
lock_dir() {
	local f l
	for f in "$SM_BUILD/user/lib/libsockmesh.so" "$SM_BUILD/user/cni/sockmesh-cni"; do
		[ -e "$f" ] || continue
		l=$(grep -aoE '/[a-z/]+/sockmesh%s\.lock' "$f" | head -1)
		[ -n "$l" ] && dirname "$l"
	done | sort -u
}

manifests_parse() {
	local f files=()
	while IFS= read -r f; do files+=("$f"); done < <(find "$DEPLOY" -path "$DEPLOY/cni" -prune -o \
		-type f \( -name '*.yaml' -o -name '*.yml' \) -print | sort)
	assert_ge "${#files[@]}" 1 "manifests found"
	yamllint -s "${files[@]}"
	sm_log "    ok   yamllint -s: ${files[*]#"$DEPLOY/"}"
	for f in "${files[@]}"; do
		head -1 "$f" | grep -q SPDX-License-Identifier
		yaml2json "$f" >/dev/null
	done
	# every file of ours names its license in its first lines
	for f in "$DS" "$UN" "$CF" "$UNIT" "$INSTALL" "$DEPLOY/README.md"; do
		head -2 "$f" | grep -q SPDX-License-Identifier || assert_eq "$f" "" "file without SPDX line"
	done
	if command -v shellcheck >/dev/null; then
		shellcheck "$INSTALL"
		sm_log "    ok   shellcheck install-cni.sh"
	fi
	yaml2json "$DS" >"$TMP/ds.json"
	assert_eq "$(jq -r '.[] | "\(.apiVersion) \(.kind)"' "$TMP/ds.json")" "apps/v1 DaemonSet" "kind"
	assert_eq "$(jq -r '.[0].spec.template.spec | "\(.hostPID) \(.hostNetwork)"' "$TMP/ds.json")" "true true" \
		"hostPID (netns paths of host pids), hostNetwork (before pod networking)"
	assert_eq "$(jq -r '.[0].spec.template.spec.containers[] | select(.name == "sockmeshd") | .securityContext.privileged' "$TMP/ds.json")" \
		true "sockmeshd privileged"
	# SELinux nodes deny a confined container's writes to the host's CNI dirs
	assert_eq "$(jq -r '.[0].spec.template.spec.initContainers[] | select(.name == "install-cni") | .securityContext.privileged' "$TMP/ds.json")" \
		true "install-cni (init container) privileged"
}

hostpaths_match_the_programs() {
	local pin state cg2 bin conf lock cmd a
	yaml2json "$DS" >"$TMP/ds.json"
	# sockmeshd: its options in the manifest, else its defaults
	pin=$(container_arg sockmeshd pin-dir)
	[ -n "$pin" ] || pin=$(help_default "$SM_DAEMON" -h pin-dir)
	state=$(container_arg sockmeshd state-file)
	[ -n "$state" ] || state=$(help_default "$SM_DAEMON" -h state-file)
	assert_match "$pin" '^/' "sockmeshd pin dir ($pin)"
	assert_match "$state" '^/' "sockmeshd state file ($state)"
	assert_eq "$(dirname "$pin")" /sys/fs/bpf "pin dir on the host's bpffs"
	assert_same_on_host sockmeshd "$(dirname "$pin")" Bidirectional
	assert_same_on_host sockmeshd "$(dirname "$state")"
	# the attach cgroup: the cgroup2 mount (default) must be the host's, on
	# pure v2 (/sys/fs/cgroup) and hybrid hosts (/sys/fs/cgroup/unified)
	assert_eq "$(container_arg sockmeshd attach-cgroup)" "" "attach cgroup left to the default"
	assert_match "$(help_default "$SM_DAEMON" -h attach-cgroup)" cgroup2 "its default: the cgroup2 mount"
	assert_same_on_host sockmeshd /sys/fs/cgroup
	cg2=$(sm_cg2_root)
	assert_same_on_host sockmeshd "$cg2"
	assert_same_on_host sockmeshd /sys/fs/cgroup/unified
	# pod netns names (containerd, CRI-O) for garbage collection
	assert_same_on_host sockmeshd /run/netns HostToContainer
	# the instance lock: the daemon's writes and sockmesh-cni's (on the
	# host) must take the same file
	lock=$(lock_dir)
	assert_eq "$lock" /run/lock "the library's lock dir (libsockmesh.so, sockmesh-cni)"
	assert_same_on_host sockmeshd "$lock"
	# the CNI plugin's example configuration enrolls into the daemon's pin dir
	if [ -f "$DEPLOY/cni/10-sockmesh.conflist.example" ]; then
		assert_eq "$(jq -r '.plugins[] | select(.type == "sockmesh-cni") | .pinDir // "/sys/fs/bpf/sockmesh"' \
			"$DEPLOY/cni/10-sockmesh.conflist.example")" "$pin" "sockmesh-cni example pinDir = the daemon's pin dir"
	fi
	# the state file is where `sockmesh status` looks by default
	assert_eq "$(help_default "$SM_CLI" status -h state-file)" "$state" "sockmesh status --state-file default"
	# the CNI dirs: install-cni.sh's (env or default) = sockmesh uninstall's
	bin=$(container_env install-cni CNI_BIN_DIR)
	[ -n "$bin" ] || bin=$(help_default "$INSTALL" -h cni-bin-dir)
	conf=$(container_env install-cni CNI_CONF_DIR)
	[ -n "$conf" ] || conf=$(help_default "$INSTALL" -h cni-conf-dir)
	assert_eq "$bin" /opt/cni/bin "install-cni bin dir"
	assert_eq "$conf" /etc/cni/net.d "install-cni conf dir"
	assert_same_on_host install-cni "$bin"
	assert_same_on_host install-cni "$conf"
	assert_eq "$(help_default "$SM_CLI" uninstall -h cni-bin-dir)" "$bin" "sockmesh uninstall --cni-bin-dir default"
	assert_eq "$(help_default "$SM_CLI" uninstall -h cni-conf-dir)" "$conf" "sockmesh uninstall --cni-conf-dir default"
	# the daemon's CNI watcher: the init container's conf dir, the host's, read-write
	assert_eq "$(container_arg sockmeshd cni-conf-dir)" "$conf" "sockmeshd --cni-conf-dir = install-cni conf dir"
	assert_same_on_host sockmeshd "$conf"
	assert_eq "$(jq -r --arg p "$conf" '.[0].spec.template.spec.containers[] | select(.name == "sockmeshd") |
		.volumeMounts[] | select(.mountPath == $p) | .readOnly // false' "$TMP/ds.json")" false \
		"sockmeshd mounts $conf read-write"
	# every hostPath volume is mounted at its own path, and used
	assert_eq "$(jq -r '.[0].spec.template.spec as $s | $s.volumes[] | .name as $n | .hostPath.path as $h |
		[($s.containers + $s.initContainers)[].volumeMounts[] | select(.name == $n) | .mountPath] |
		select(length == 0 or any(. != $h)) | $n' "$TMP/ds.json")" "" "hostPath volumes not mounted at their own path (or unused)"
	# the manifest's daemon arguments are options sockmeshd knows
	mapfile -t a < <(jq -r '.[0].spec.template.spec.containers[] | select(.name == "sockmeshd") | .args[]' "$TMP/ds.json")
	"$SM_DAEMON" "${a[@]}" --version >/dev/null
	# the commands exist where the image puts them
	cmd=$(jq -r '.[0].spec.template.spec.containers[] | select(.name == "sockmeshd") | .command[0]' "$TMP/ds.json")
	assert_eq "$cmd" /usr/sbin/sockmeshd "sockmeshd command"
	assert_match "$(meson introspect "$SM_BUILD" --installed | jq -r '.[]' | grep -c '/sbin/sockmeshd$')" '^1$' \
		"meson installs sockmeshd into sbin (image prefix /usr)"
	grep -q -- '--prefix=/usr' "$CF"
	cmd=$(jq -r '.[0].spec.template.spec.initContainers[] | select(.name == "install-cni") | .command[0]' "$TMP/ds.json")
	assert_match "$(grep -c "install -D -m 0755 deploy/install-cni.sh /staging$cmd" "$CF")" '^1$' \
		"the image installs install-cni.sh at $cmd"
}

# kubelet_expand NAME=VALUE WORD...: each WORD with its $(NAME) references
# replaced as the kubelet does in a container's command and args ($$ is a
# literal $, a reference to a name not given stays as it is)
kubelet_expand() {
	"$E2E_PY" -c '
import re, sys
name, value = sys.argv[1].split("=", 1)
ref = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
for w in sys.argv[2:]:
    print(ref.sub(lambda m: "$" if m.group(0) == "$$" else value if m.group(1) == name else m.group(0), w))
' "$@"
}

listen_on_the_node_ip() {
	local c host port ip rc out a=()
	yaml2json "$DS" >"$MJ_DS"
	c=$(container_json sockmeshd)
	# bare hosts keep loopback; the unit passes no address
	assert_eq "$(help_default "$SM_DAEMON" -h listen)" 127.0.0.1:15095 "sockmeshd --listen default"
	assert_eq "$(grep -c -- '--listen' "$UNIT" || true)" 0 "the systemd unit keeps the default"
	# the node IP, never 0.0.0.0; not as ADDR:PORT, which an IPv6 node IP
	# (given without brackets) cannot be written into
	assert_eq "$(container_arg sockmeshd listen)" "" "no --listen ADDR:PORT in the manifest"
	host=$(container_arg sockmeshd listen-host)
	port=$(container_arg sockmeshd listen-port)
	# shellcheck disable=SC2016 # the kubelet's $(VAR), literally
	assert_eq "$host" '$(HOST_IP)' "--listen-host: the kubelet expands HOST_IP"
	assert_eq "$(jq -r '.env[] | select(.name == "HOST_IP") | .valueFrom.fieldRef.fieldPath' <<<"$c")" status.hostIP \
		"HOST_IP: the downward API's node IP"
	# the kubelet leaves $(NAME) of a name not in env as it is
	assert_eq "$(jq -r '[(.command // []) + (.args // []) | .[] | scan("\\$\\(([A-Za-z_][A-Za-z0-9_]*)\\)") | .[0]] -
		[(.env // [])[].name] | unique | join(",")' <<<"$c")" "" "\$(NAME) references to names not in env"
	assert_match "$port" '^[1-9][0-9]*$' "--listen-port"
	# httpGet without host connects to the pod IP: status.hostIP for a
	# hostNetwork pod (IPv4 or IPv6 alike), where sockmeshd listens
	assert_eq "$(jq -r '.[0].spec.template.spec.hostNetwork' "$MJ_DS")" true "hostNetwork: pod IP = node IP"
	assert_eq "$(jq -r '[.livenessProbe.httpGet, .readinessProbe.httpGet | .host // "(pod IP)"] | unique | join(",")' <<<"$c")" \
		"(pod IP)" "probe host"
	assert_eq "$(jq -r '[.livenessProbe.httpGet, .readinessProbe.httpGet | .scheme // "HTTP"] | unique | join(",")' <<<"$c")" \
		HTTP "probe scheme"
	assert_eq "$(jq -r '[.livenessProbe.httpGet.path, .readinessProbe.httpGet.path] | unique | join(",")' <<<"$c")" \
		/healthz "probe paths"
	assert_eq "$(jq -r '[.livenessProbe.httpGet.port, .readinessProbe.httpGet.port, .ports[0].containerPort] |
		map(tostring) | unique | join(",")' <<<"$c")" "$port" "probe and container ports = --listen-port"
	assert_eq "$(jq -r '.[0].spec.template.metadata.annotations["prometheus.io/port"]' "$MJ_DS")" "$port" "scrape port"
	# sockmeshd takes the manifest's arguments as the kubelet gives them on
	# an IPv4, an IPv6 and a dual-stack node (hostIP: the primary family).
	# Values are checked in a fixed order, --attach-cgroup after the listen
	# address: a complaint about a bad --attach-cgroup means the listen
	# arguments passed (nothing starts: exit 2 before anything is opened)
	for ip in 192.0.2.10 2001:db8::10 fd00:10:244::1; do
		mapfile -t a < <(jq -r '.args[]' <<<"$c")
		mapfile -t a < <(kubelet_expand "HOST_IP=$ip" "${a[@]}")
		rc=0
		out=$("$SM_DAEMON" "${a[@]}" --attach-cgroup "$TMP/not-a-cgroup" 2>&1) || rc=$?
		assert_eq "$rc" 2 "sockmeshd ${a[*]} --attach-cgroup (bad): exit code"
		assert_match "$out" "^sockmeshd: --attach-cgroup: " "with hostIP $ip the listen arguments pass ($out)"
	done
	# the kubelet gives "$(HOST_IP)" as it is when HOST_IP is not in env
	rc=0
	# shellcheck disable=SC2016 # literally
	out=$("$SM_DAEMON" --listen-host='$(HOST_IP)' --listen-port="$port" 2>&1) || rc=$?
	assert_eq "$rc" 2 "an unexpanded \$(HOST_IP): exit code"
	assert_match "$out" 'HOST_IP' "it names the value"
}

uninstall_manifest() {
	local u w sub name pin state conf bin lock cg2 out d cmd rc=0 words=() args=()
	yaml2json "$DS" >"$MJ_DS"
	yaml2json "$UN" >"$MJ_UN"
	MJ=$MJ_UN
	assert_eq "$(jq -r '.[] | "\(.apiVersion) \(.kind)"' "$MJ")" "apps/v1 DaemonSet" "uninstall.yaml: one pod per node"
	assert_eq "$(jq -r '.[0].spec.template.spec | "\(.hostPID) \(.hostNetwork)"' "$MJ")" "true true" \
		"hostPID (uninstall checks the state file's pid), hostNetwork (a broken pod network does not stop it)"
	assert_eq "$(jq -n --slurpfile u "$MJ" --slurpfile d "$MJ_DS" '$u[0][0].spec.selector == $d[0][0].spec.selector')" \
		false "selector shared with sockmesh-node's"
	assert_eq "$(jq -cS '.[0].spec.template.spec.tolerations' "$MJ")" \
		"$(jq -cS '.[0].spec.template.spec.tolerations' "$MJ_DS")" "tolerations: every node sockmesh-node runs on"
	assert_eq "$(jq -r '.[0].spec.template.spec.initContainers | map(.name) | join(",")' "$MJ")" uninstall "init container"
	u=$(container_json uninstall)
	assert_eq "$(jq -r .securityContext.privileged <<<"$u")" true "uninstall privileged (BPF, SELinux)"
	assert_eq "$(jq -r .image <<<"$u")" "$(jq -r '.[0].spec.template.spec.containers[] | select(.name == "sockmeshd") | .image' "$MJ_DS")" \
		"the daemon set's image"
	# the command: the CLI where the image puts it, a command it has
	mapfile -t words < <(jq -r '(.command // []) + (.args // []) | .[]' <<<"$u")
	assert_eq "${words[0]}" /usr/sbin/sockmesh "the CLI (the image's prefix is /usr)"
	assert_match "$(meson introspect "$SM_BUILD" --installed | jq -r '.[]' | grep -c '/sbin/sockmesh$')" '^1$' \
		"meson installs sockmesh into sbin"
	for w in "${words[@]:1}"; do
		[[ $w == -* ]] || {
			sub=$w
			break
		}
	done
	assert_eq "$sub" uninstall "the command run"
	assert_match "$("$SM_CLI" -h | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1 }' | grep -cx "$sub")" \
		'^1$' "sockmesh -h lists '$sub'"
	# every option given is one sockmesh (global) or sockmesh uninstall knows
	for w in "${words[@]:1}"; do
		[[ $w == -* ]] || continue
		name=${w%%=*}
		assert_match "$({ "$SM_CLI" -h; "$SM_CLI" uninstall -h; } | grep -cE -- "(^|[[ ]|, )$name([] =|]|$)")" \
			'^[1-9]' "option $name in sockmesh [uninstall] -h"
	done
	# the paths it acts on are the node's, and the daemon set's
	assert_eq "$(container_arg uninstall pin-dir)" "" "no --pin-dir: the default, as sockmeshd's"
	pin=$(MJ=$MJ_DS container_arg sockmeshd pin-dir)
	[ -n "$pin" ] || pin=$(help_default "$SM_DAEMON" -h pin-dir)
	state=$(container_arg uninstall state-file)
	[ -n "$state" ] || state=$(help_default "$SM_CLI" uninstall -h state-file)
	assert_eq "$state" "$(help_default "$SM_DAEMON" -h state-file)" "uninstall's state file = sockmeshd's"
	conf=$(container_arg uninstall cni-conf-dir)
	[ -n "$conf" ] || conf=$(help_default "$SM_CLI" uninstall -h cni-conf-dir)
	bin=$(container_arg uninstall cni-bin-dir)
	[ -n "$bin" ] || bin=$(help_default "$SM_CLI" uninstall -h cni-bin-dir)
	assert_eq "$conf" "$(MJ=$MJ_DS container_arg sockmeshd cni-conf-dir)" "CNI conf dir = the daemon's watched dir"
	assert_eq "$bin" "$(help_default "$INSTALL" -h cni-bin-dir)" "CNI bin dir = install-cni's"
	assert_same_on_host uninstall "$(dirname "$pin")" Bidirectional
	assert_same_on_host uninstall "$(dirname "$state")"
	assert_same_on_host uninstall /sys/fs/cgroup
	cg2=$(sm_cg2_root)
	assert_same_on_host uninstall "$cg2"
	assert_same_on_host uninstall /run/netns HostToContainer
	lock=$(lock_dir)
	assert_same_on_host uninstall "$lock"
	assert_same_on_host uninstall "$conf"
	assert_same_on_host uninstall "$bin"
	assert_eq "$(jq -r '[.volumeMounts[] | select(.readOnly == true) | .mountPath] | join(",")' <<<"$u")" "" "read-only mounts"
	# the same host paths as the daemon set, of the same types, mounted alike
	assert_eq "$(host_mounts | xargs)" "$(MJ=$MJ_DS host_mounts | xargs)" "host mounts = daemonset.yaml's"
	assert_eq "$(jq -cS '[.[0].spec.template.spec.volumes[] | select(.hostPath) | .hostPath] | sort_by(.path)' "$MJ")" \
		"$(jq -cS '[.[0].spec.template.spec.volumes[] | select(.hostPath) | .hostPath] | sort_by(.path)' "$MJ_DS")" \
		"hostPath volumes (path, type) = daemonset.yaml's"
	# the container that waits: no privilege, no host path, a command the
	# image has (coreutils: essential, in every debian:12)
	u=$(container_json uninstalled)
	assert_eq "$(jq -r '"\(.securityContext.privileged // false) \(.volumeMounts // [] | length)"' <<<"$u")" "false 0" \
		"waiting container: privileged, mounts"
	cmd=$(jq -r '.command[0]' <<<"$u")
	# (dpkg knows the path as the package ships it: /bin/sleep on Debian 12)
	assert_eq "$({ dpkg -S "$cmd" || dpkg -S "$(realpath "$cmd")"; } 2>/dev/null | head -1 | cut -d: -f1)" \
		coreutils "$cmd: its package"
	assert_eq "$(dpkg-query -W -f '${Essential}' coreutils)" yes "coreutils is essential"
	timeout 0.3 "$cmd" "$(jq -r '.command[1]' <<<"$u")" || rc=$?
	assert_eq "$rc" 124 "$(jq -r '.command | join(" ")' <<<"$u") runs until stopped"
	# the manifest's exact command line, its host paths moved into a temp
	# dir, on the test pin dir and cgroup: it uninstalls
	d=$(sm_tmpdir un)
	mkdir -p "$d$conf" "$d$bin"
	make_conflist "$d/orig.conflist"
	jq '.plugins += [{"type": "sockmesh-cni", "pinDir": "/sys/fs/bpf/sockmesh"}]' "$d/orig.conflist" \
		>"$d$conf/10-bridge.conflist"
	printf '#!/bin/sh\n' >"$d$bin/sockmesh-cni"
	chmod 755 "$d$bin/sockmesh-cni"
	for w in "${words[@]:1}"; do
		case $w in
		--cni-conf-dir=/* | --cni-bin-dir=/*) args+=("${w%%=*}=$d${w#*=}") ;;
		*) args+=("$w") ;;
		esac
	done
	sm_cli enable --cgroup "$CG"
	out=$(sm_cli "${args[@]}" --state-file "$d/none.json")
	jq -c . <<<"$out" >&2
	assert_eq "$(jq -r '"\(.uninstalled) \(.kernel_state) \(.cni_binary.removed)"' <<<"$out")" "true removed true" \
		"sockmesh ${args[*]}: uninstalled, kernel state, plugin binary"
	assert_eq "$(jq -cS . "$d$conf/10-bridge.conflist")" "$(jq -cS . "$d/orig.conflist")" "the conflist as before install"
	assert_eq "$(e2e_cgroup_progs "$CG")" 0 "programs at the test cgroup"
	assert_eq "$([ -e "$PIN" ] && echo exists || echo gone)" gone "pin dir"
}

containerfile_debian_only() {
	local froms pkgs runtime lib soname path pkg missing=() have_lists=0
	head -1 "$CF" | grep -q SPDX-License-Identifier
	froms=$(awk 'toupper($1) == "FROM" { print $2 }' "$CF" | sort -u | xargs)
	assert_eq "$froms" debian:12 "base images"
	assert_eq "$(grep -Eic '(curl|wget|pip3? install|npm|go (get|install)|^ADD )' "$CF" || true)" 0 \
		"downloads other than apt"
	# package names: the words after `apt-get install ... -y --no-install-recommends`
	pkgs=$(awk '/apt-get install/ { on = 1 } on { for (i = 1; i <= NF; i++) if ($i ~ /^[a-z0-9][a-z0-9.+-]+$/ && $i != "apt-get" && $i != "install") print $i }
		/rm -rf/ { on = 0 }' "$CF" | grep -vxE 'rm|&&' | sort -u)
	runtime=$(awk '/^FROM/ { n++ } n == 2' "$CF" | awk '/apt-get install/ { on = 1 } on { for (i = 1; i <= NF; i++) if ($i ~ /^[a-z0-9][a-z0-9.+-]+$/) print $i } /rm -rf/ { on = 0 }' | sort -u)
	sm_log "    packages: $(xargs <<<"$pkgs")"
	apt-cache show --no-all-versions libc6 >/dev/null 2>&1 && have_lists=1
	if [ "$have_lists" = 1 ]; then
		# shellcheck disable=SC2086 # one word per package
		if ! apt-cache show --no-all-versions $pkgs >/dev/null 2>&1; then
			for pkg in $pkgs; do
				apt-cache show --no-all-versions "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
			done
		fi
		assert_eq "${missing[*]}" "" "packages unknown to Debian 12's apt"
	else
		sm_log "    (no apt lists here: package names not checked against the archive)"
	fi
	# every library the binaries link directly comes from a runtime package
	for lib in "$SM_DAEMON" "$SM_CLI" "$SM_BUILD/user/cni/sockmesh-cni"; do
		[ -x "$lib" ] || continue
		while read -r soname path; do
			# our own library (libsockmesh, which sockmeshd links): no Debian
			# package has it, the build stage's meson install puts it in the image
			if [[ $(realpath -m "$path") == "$(realpath -m "$SM_BUILD")"/* ]]; then
				assert_match "$(meson introspect "$SM_BUILD" --installed | jq -r '.[]' | grep -c "/$soname\$")" '^1$' \
					"meson installs $soname ($(basename "$lib"))"
				continue
			fi
			pkg=$(dpkg -S "*/$(basename "$(dirname "$path")")/$soname" 2>/dev/null | head -1 | cut -d: -f1)
			assert_match "$pkg" . "package of $soname ($(basename "$lib"))"
			# libc6 is in the base image; sanitizer runtimes only in sanitizer builds
			case $pkg in libc6 | libasan* | libubsan* | liblsan* | libtsan*) continue ;; esac
			assert_match "$(grep -cx "$pkg" <<<"$runtime")" '^1$' "run-time stage installs $pkg ($soname of $(basename "$lib"))"
		done < <(ldd "$lib" | awk -v need="$(readelf -d "$lib" | awk -F'[][]' '/NEEDED/ { printf "%s ", $2 }')" \
			'index(" " need, " " $1 " ") && $3 ~ /^\// { print $1, $3 }')
	done
	# every COPY source of the build is in the repository
	grep -q 'COPY . .' "$CF"
	grep -q 'install -D -m 0755 deploy/install-cni.sh' "$CF"
	[ -x "$INSTALL" ]
}

systemd_unit_verifies() {
	local exec args
	head -1 "$UNIT" | grep -q SPDX-License-Identifier
	exec=$(sed -n 's/^ExecStart=//p' "$UNIT")
	assert_match "$exec" '^/usr/sbin/sockmeshd( |$)' "ExecStart"
	read -r -a args <<<"${exec#/usr/sbin/sockmeshd}"
	"$SM_DAEMON" "${args[@]}" --version >/dev/null
	# the state file dir is the unit's runtime directory, kept over restarts
	assert_eq "/run/$(sed -n 's/^RuntimeDirectory=//p' "$UNIT")" "$(dirname "$(help_default "$SM_DAEMON" -h state-file)")" \
		"RuntimeDirectory = the state file's dir"
	assert_eq "$(sed -n 's/^RuntimeDirectoryPreserve=//p' "$UNIT")" yes "RuntimeDirectoryPreserve"
	if command -v systemd-analyze >/dev/null; then
		sed "s#/usr/sbin/sockmeshd#$SM_DAEMON#" "$UNIT" >"$TMP/sockmeshd.service"
		systemd-analyze verify "$TMP/sockmeshd.service"
		sm_log "    ok   systemd-analyze verify"
	fi
}

# a conflist as a primary CNI (bridge + portmap) writes it
make_conflist() {
	cat >"$1" <<-'EOF'
		{
		  "cniVersion": "1.0.0",
		  "name": "k8s-pod-network",
		  "plugins": [
		    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true,
		     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]],
		              "routes": [{"dst": "0.0.0.0/0"}]}},
		    {"type": "portmap", "capabilities": {"portMappings": true}}
		  ]
		}
	EOF
}

install_cni_idempotent() {
	local d entry ino0 ino1 first
	d=$(sm_tmpdir cni1)
	mkdir "$d/net" "$d/bin"
	make_conflist "$d/net/10-bridge.conflist"
	echo '{"cniVersion": "1.0.0", "name": "later", "plugins": [{"type": "ptp"}]}' >"$d/net/20-later.conflist"
	cp "$d/net/10-bridge.conflist" "$d/orig.conflist"
	printf '#!/bin/sh\necho fake plugin\n' >"$d/plugin"
	entry='{"type": "sockmesh-cni", "pinDir": "/sys/fs/bpf/sockmesh"}'
	"$INSTALL" --cni-bin-dir "$d/bin" --cni-conf-dir "$d/net" --plugin-bin "$d/plugin" --plugin-conf "$entry"
	ino0=$(stat -c %i "$d/net/10-bridge.conflist")
	first=$(jq -cS . "$d/net/10-bridge.conflist")
	"$INSTALL" --cni-bin-dir "$d/bin" --cni-conf-dir "$d/net" --plugin-bin "$d/plugin" --plugin-conf "$entry"
	ino1=$(stat -c %i "$d/net/10-bridge.conflist")
	assert_eq "$(jq -cS . "$d/net/10-bridge.conflist")" "$first" "second run: same conflist"
	assert_eq "$ino1" "$ino0" "second run: file not rewritten"
	assert_eq "$(jq -r '[.plugins[].type] | join(",")' "$d/net/10-bridge.conflist")" bridge,portmap,sockmesh-cni \
		"plugins, sockmesh-cni chained last, once"
	assert_eq "$(jq -cS '.plugins[:2], .cniVersion, .name' "$d/net/10-bridge.conflist")" \
		"$(jq -cS '.plugins, .cniVersion, .name' "$d/orig.conflist")" "other plugins and keys intact"
	assert_eq "$(jq -c '.plugins[2]' "$d/net/10-bridge.conflist")" "$(jq -c . <<<"$entry")" "the plugin's entry"
	assert_eq "$(jq -r '[.plugins[].type] | join(",")' "$d/net/20-later.conflist")" ptp "a later conflist untouched"
	assert_eq "$(stat -c %a "$d/bin/sockmesh-cni")" 755 "binary installed, mode 755"
	cmp "$d/plugin" "$d/bin/sockmesh-cni"
	assert_eq "$(find "$d/net" "$d/bin" -name '.*' | wc -l)" 0 "no temp files left"
	# a changed entry replaces the old one (still once)
	"$INSTALL" --cni-bin-dir "$d/bin" --cni-conf-dir "$d/net" --plugin-bin "$d/plugin" \
		--plugin-conf '{"type": "sockmesh-cni", "pinDir": "/sys/fs/bpf/other"}'
	assert_eq "$(jq -r '[.plugins[] | select(.type == "sockmesh-cni") | .pinDir] | join(",")' "$d/net/10-bridge.conflist")" \
		/sys/fs/bpf/other "updated entry"
	# the example configuration of deploy/cni, when it is there
	if [ -f "$DEPLOY/cni/10-sockmesh.conflist.example" ]; then
		"$INSTALL" --cni-bin-dir "$d/bin" --cni-conf-dir "$d/net" --plugin-bin "$d/plugin" \
			--plugin-conf "@$DEPLOY/cni/10-sockmesh.conflist.example"
		assert_eq "$(jq -cS '.plugins[-1]' "$d/net/10-bridge.conflist")" \
			"$(jq -cS '.plugins[] | select(.type == "sockmesh-cni")' "$DEPLOY/cni/10-sockmesh.conflist.example")" \
			"entry taken from deploy/cni/10-sockmesh.conflist.example"
	fi
	# the way back: sockmesh uninstall restores the original plugins
	sm_cli uninstall --cni-conf-dir "$d/net" --cni-bin-dir "$d/bin" --state-file "$d/none.json" >/dev/null
	assert_eq "$(jq -cS . "$d/net/10-bridge.conflist")" "$(jq -cS . "$d/orig.conflist")" "install + uninstall = the original"
	# refusals: nothing to chain into, a single-plugin .conf first, bad usage
	local rc=0
	rm "$d/net/"*
	"$INSTALL" --cni-bin-dir "$d/bin" --cni-conf-dir "$d/net" --plugin-bin "$d/plugin" --wait 1 2>"$d/err" || rc=$?
	assert_eq "$rc" 1 "no conflist: exit code"
	echo '{"cniVersion": "0.4.0", "name": "one", "type": "bridge"}' >"$d/net/05-one.conf"
	make_conflist "$d/net/10-bridge.conflist"
	rc=0
	"$INSTALL" --cni-bin-dir "$d/bin" --cni-conf-dir "$d/net" --plugin-bin "$d/plugin" 2>"$d/err" || rc=$?
	assert_eq "$rc" 1 "first config a .conf: exit code"
	assert_match "$(cat "$d/err")" '05-one.conf' "it names the file"
	rc=0
	"$INSTALL" --wait soon 2>"$d/err" || rc=$?
	assert_eq "$rc" 2 "bad --wait: exit code"
	assert_match "$(cat "$d/err")" soon "it names the value"
}

uninstall_keeps_other_plugins() {
	local d out rc=0
	d=$(sm_tmpdir cni2)
	mkdir "$d/net" "$d/bin"
	make_conflist "$d/orig.conflist"
	jq '.plugins += [{"type": "sockmesh-cni", "pinDir": "/sys/fs/bpf/sockmesh"}]' "$d/orig.conflist" >"$d/net/10-bridge.conflist"
	chmod 640 "$d/net/10-bridge.conflist"
	echo '{"cniVersion": "1.0.0", "name": "other", "plugins": [{"type": "ptp"}]}' >"$d/net/20-other.conflist"
	echo 'not json' >"$d/net/30-junk.conflist"
	printf '#!/bin/sh\n' >"$d/bin/sockmesh-cni"
	chmod 755 "$d/bin/sockmesh-cni"
	printf '#!/bin/sh\n' >"$d/bin/bridge"
	# kernel state in our own pin dir, attached at our own cgroup
	sm_cli enable --cgroup "$CG"
	assert_ge "$(e2e_cgroup_progs "$CG")" 1 "programs at the test cgroup"
	out=$(sm_cli -j uninstall --cni-conf-dir "$d/net" --cni-bin-dir "$d/bin" --state-file "$d/none.json")
	jq -c . <<<"$out" >&2
	assert_eq "$(jq -r .uninstalled <<<"$out")" true "uninstalled"
	assert_eq "$(jq -r '[.plugins[].type] | join(",")' "$d/net/10-bridge.conflist")" bridge,portmap "plugins left"
	assert_eq "$(jq -cS . "$d/net/10-bridge.conflist")" "$(jq -cS . "$d/orig.conflist")" "bridge and portmap intact, keys intact"
	assert_eq "$(stat -c %a "$d/net/10-bridge.conflist")" 640 "file mode kept"
	assert_eq "$(jq -r '[.plugins[].type] | join(",")' "$d/net/20-other.conflist")" ptp "other conflist untouched"
	assert_eq "$(cat "$d/net/30-junk.conflist")" "not json" "unparsable conflist without sockmesh-cni untouched"
	assert_eq "$([ -e "$d/bin/sockmesh-cni" ] && echo present || echo gone)" gone "plugin binary"
	assert_eq "$([ -e "$d/bin/bridge" ] && echo present || echo gone)" present "other plugin binaries"
	assert_eq "$(jq -r .kernel_state <<<"$out")" removed "kernel state"
	assert_eq "$([ -e "$PIN" ] && echo exists || echo gone)" gone "pin dir"
	assert_eq "$(e2e_cgroup_progs "$CG")" 0 "programs at the test cgroup"
	assert_eq "$(find "$d/net" -name '.*' -o -name '*tmp*' | wc -l)" 0 "no temp files left"
	# idempotent
	out=$(sm_cli -j uninstall --cni-conf-dir "$d/net" --cni-bin-dir "$d/bin" --state-file "$d/none.json")
	assert_eq "$(jq -r '"\(.uninstalled) \(.kernel_state) \(.cni_binary.removed) \([.conflists[].removed_plugins] | add)"' <<<"$out")" \
		"true absent false 0" "second uninstall: nothing left to do"
	assert_eq "$(jq -cS . "$d/net/10-bridge.conflist")" "$(jq -cS . "$d/orig.conflist")" "second uninstall: conflist unchanged"
	sm_cli uninstall --cni-conf-dir "$d/net" --cni-bin-dir "$d/bin" --state-file "$d/none.json" >"$d/out"
	assert_eq "$(tail -1 "$d/out")" uninstalled "text output"
	# a missing conf dir is nothing to do
	sm_cli uninstall --cni-conf-dir "$d/nowhere" --cni-bin-dir "$d/bin" --state-file "$d/none.json" >/dev/null
	# a conflist naming sockmesh-cni that does not parse: exit 1, named
	echo '{"plugins": [{"type": "sockmesh-cni"}' >"$d/net/40-broken.conflist"
	sm_cli -j uninstall --cni-conf-dir "$d/net" --cni-bin-dir "$d/bin" --state-file "$d/none.json" >"$d/out" || rc=$?
	assert_eq "$rc" 1 "broken conflist naming the plugin: exit code"
	assert_match "$(jq -r .error "$d/out")" 40-broken.conflist "-j error names the file"
}

uninstall_refuses_while_daemon_runs() {
	local d rc=0 ticks
	d=$(sm_tmpdir cni3)
	mkdir "$d/net" "$d/bin"
	make_conflist "$d/orig.conflist"
	jq '.plugins += [{"type": "sockmesh-cni"}]' "$d/orig.conflist" >"$d/net/10-bridge.conflist"
	cp "$d/net/10-bridge.conflist" "$d/before"
	# a state file naming a live process (this shell) with its start time
	ticks=$(awk '{ sub(/.*\) /, ""); print $20 }' "/proc/$$/stat")
	jq -n --argjson p $$ --argjson t "$ticks" '{pid: $p, proc_start_ticks: $t, listen: "127.0.0.1:1", version: "test"}' >"$d/state.json"
	sm_cli uninstall --cni-conf-dir "$d/net" --cni-bin-dir "$d/bin" --state-file "$d/state.json" 2>"$d/err" || rc=$?
	assert_eq "$rc" 1 "exit code with a running daemon"
	assert_match "$(cat "$d/err")" "sockmeshd \\(pid $$" "it names the daemon"
	assert_eq "$(md5sum <"$d/net/10-bridge.conflist")" "$(md5sum <"$d/before")" "conflist unchanged"
	# the same pid with another start time is a stale file: uninstall goes on
	jq --argjson t $((ticks + 1)) '.proc_start_ticks = $t' "$d/state.json" >"$d/stale.json"
	assert_eq "$(sm_cli -j status --state-file "$d/stale.json" | jq -r .daemon.reason)" \
		"pid $$ is another process now (stale state file)" "status: stale state file"
	sm_cli uninstall --cni-conf-dir "$d/net" --cni-bin-dir "$d/bin" --state-file "$d/stale.json" >/dev/null
	assert_eq "$(jq -r '[.plugins[].type] | join(",")' "$d/net/10-bridge.conflist")" bridge,portmap "removed with a stale state file"
}

e2e_subtest manifests_parse manifests_parse
e2e_subtest hostpaths_match_the_programs hostpaths_match_the_programs
e2e_subtest listen_on_the_node_ip listen_on_the_node_ip
e2e_subtest uninstall_manifest uninstall_manifest
e2e_subtest containerfile_debian_only containerfile_debian_only
e2e_subtest systemd_unit_verifies systemd_unit_verifies
e2e_subtest install_cni_idempotent install_cni_idempotent
e2e_subtest uninstall_keeps_other_plugins uninstall_keeps_other_plugins
e2e_subtest uninstall_refuses_while_daemon_runs uninstall_refuses_while_daemon_runs
e2e_finish
