#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# deploy/: the manifests parse (yamllint, strict) and mount from the host
# exactly the paths the programs use by default (sockmeshd -h, sockmesh -h,
# install-cni.sh -h) at the same paths; the container build file uses only
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
		"\($vol[.name] + ($p | ltrimstr($m))) \(.mountPropagation // "None")"' "$TMP/ds.json"
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
		 elif . == $o then $a[$i + 1] else empty end][0] // empty' "$TMP/ds.json"
}

container_env() {
	jq -r --arg c "$1" --arg e "$2" '.[] | select(.kind == "DaemonSet") | .spec.template.spec |
		[(.containers + (.initContainers // []))[] | select(.name == $c) | (.env // [])[] |
		 select(.name == $e) | .value][0] // empty' "$TMP/ds.json"
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
	for f in "$DS" "$CF" "$UNIT" "$INSTALL" "$DEPLOY/README.md"; do
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
}

hostpaths_match_the_programs() {
	local pin state cg2 bin conf listen port cmd a
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
	# the port: listen, probes, containerPort, scrape annotation
	listen=$(container_arg sockmeshd listen)
	port=${listen##*:}
	assert_eq "$(jq -r '.[0].spec.template.spec.containers[] | select(.name == "sockmeshd") |
		[.livenessProbe.httpGet.port, .readinessProbe.httpGet.port, .ports[0].containerPort] | map(tostring) | unique | join(",")' "$TMP/ds.json")" \
		"$port" "probe and container ports = --listen port ($listen)"
	assert_eq "$(jq -r '.[0].spec.template.metadata.annotations["prometheus.io/port"]' "$TMP/ds.json")" "$port" "scrape port"
	assert_eq "$(jq -r '.[0].spec.template.spec.containers[] | select(.name == "sockmeshd") | .livenessProbe.httpGet.path' "$TMP/ds.json")" \
		/healthz "liveness probe path"
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
e2e_subtest containerfile_debian_only containerfile_debian_only
e2e_subtest systemd_unit_verifies systemd_unit_verifies
e2e_subtest install_cni_idempotent install_cni_idempotent
e2e_subtest uninstall_keeps_other_plugins uninstall_keeps_other_plugins
e2e_subtest uninstall_refuses_while_daemon_runs uninstall_refuses_while_daemon_runs
e2e_finish
