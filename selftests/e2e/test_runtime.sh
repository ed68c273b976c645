#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# A real container runtime drives sockmesh-cni: Debian's podman (CNI network
# backend, runc) runs containers on a network whose conflist chains the
# reference bridge + host-local plugins and sockmesh-cni. No registry: the
# image is built here (busybox, and the reference sidecar with the shared
# libraries it loads) and `podman import`ed. podman passes no pod
# annotations, so the network's entry says requireSidecar false: every
# container podman attaches to it is enrolled at its ADD, labelled with the
# container's name and id. A sidecar container in the app's network
# namespace (--network container:app, sockmesh-sidecar as uid 1337) gets the
# app's connection with its original destination, and the connections from
# outside steered to its inbound listener; a pod without a sidecar has its
# outbound connects refused (captured, nothing listens); a restart is a
# DEL and an ADD with the container's new netns; `podman rm` (the runtime's
# DEL) withdraws that container's pod and no other, and the last one unloads
# everything.
#
# podman is isolated from the host's: its storage (vfs: no layer mounts), run
# and tmp dirs, containers.conf, storage.conf and registries.conf are the
# test's; it runs in the test's "node" netns (the bridge, its address and
# routes exist only there) and in a private mount namespace of the test in
# which /sys/fs/cgroup is the test's cgroup (podman sees a cgroup v2 node
# whose root is that cgroup, so runc makes the containers' cgroups under it,
# never at the real root), /var/lib is a test dir (libcni's result cache,
# containers/image's blob cache) and /run a tmpfs (runc's state, the
# containers' netns mounts) but for the host's /run/lock (libsockmesh's
# instance lock). When the namespace's last process goes, all of it goes.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init runtime
e2e_need_sockmesh
e2e_need_sidecar
SM_CNI=${SM_CNI:-$SM_BUILD/user/cni/sockmesh-cni}
CNI_REF_BIN=${CNI_REF_BIN:-/usr/lib/cni}
[ -x "$SM_CNI" ] || sm_die "sockmesh-cni not built: $SM_CNI (ninja -C build)"
for p in bridge host-local; do
	[ -x "$CNI_REF_BIN/$p" ] || sm_die "reference CNI plugin missing: $CNI_REF_BIN/$p (apt-get install containernetworking-plugins)"
done
for c in podman runc conmon busybox unshare nsenter; do
	command -v "$c" >/dev/null || sm_die "$c not found (scripts/bootstrap.sh installs podman, runc and busybox-static)"
done

CG=$(sm_cgroup rt)                 # the runtime's cgroup root: nothing runs here itself
RT_CG=$(sm_subcgroup "$CG" podman) # podman, conmon and the mount namespace's holder
PODS_CG=$(sm_subcgroup "$CG" pods) # --cgroup-parent /pods: the containers, and attachCgroup
PODS_CGID=$(stat -c %i "$PODS_CG")
PIN=$(sm_pindir pin)
NODE=$(sm_netns node)
RT="$TMP/podman"
NET=sockmesh-rt
BR="smrt$$"
GW=10.91.0.1
IMG=localhost/sockmesh-rt:e2e
mkdir -p "$RT"/{root,run,tmp,varlib,cgroup-root,run-lock,net.d,cni-bin,ipam,image}
for p in bridge host-local; do ln -s "$CNI_REF_BIN/$p" "$RT/cni-bin/$p"; done
ln -s "$SM_CNI" "$RT/cni-bin/sockmesh-cni"

# ------------------------------------------------------------ the runtime

# default_ulimits: podman would raise RLIMIT_NOFILE, and raising needs
# CAP_SYS_RESOURCE; pids_limit: no pids controller is delegated here.
cat >"$RT/containers.conf" <<EOF
[containers]
default_ulimits = []
pids_limit = 0
log_driver = "k8s-file"
cgroupns = "private"

[network]
network_backend = "cni"
cni_plugin_dirs = ["$RT/cni-bin"]
network_config_dir = "$RT/net.d"
default_network = "$NET"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$RT/tmp/events.log"
tmp_dir = "$RT/tmp"
lock_type = "file"
image_copy_tmp_dir = "$RT/tmp"
EOF
cat >"$RT/storage.conf" <<EOF
[storage]
driver = "vfs"
runroot = "$RT/run"
graphroot = "$RT/root"
EOF
printf 'unqualified-search-registries = []\n' >"$RT/registries.conf"

# The network: bridge + host-local, then sockmesh-cni. No portmap, firewall
# or ipMasq: nothing writes iptables rules. The plugin runs in podman's mount
# namespace, where the cgroup2 root is $CG: attachCgroup /sys/fs/cgroup/pods
# is $PODS_CG.
jq -n --arg net "$NET" --arg br "$BR" --arg ipam "$RT/ipam" --arg pin "$PIN" '{
	cniVersion: "1.0.0", name: $net,
	plugins: [
		{type: "bridge", bridge: $br, isGateway: true, ipMasq: false,
		 ipam: {type: "host-local", ranges: [[{subnet: "10.91.0.0/24", gateway: "10.91.0.1"}]],
			dataDir: $ipam}},
		{type: "sockmesh-cni", pinDir: $pin, attachCgroup: "/sys/fs/cgroup/pods",
		 requireSidecar: false}
	]}' >"$RT/net.d/$NET.conflist"

# in_rt CMD...: CMD in podman's mount namespace and the node netns
# ($RT_ENTER, set once the namespace is there)
in_rt() { "${RT_ENTER[@]}" "$@"; }

# pm ARGS...: the test's podman, bounded. podman appends the environment's
# CNI_ARGS to its own (IgnoreUnknown=1;K8S_POD_NAME=<container name>): none
# here. --log-level error: where no cgroup controller is delegated to $CG
# (as on a hybrid host), podman warns at every start that it cannot move
# conmon into <cgroup parent>/conmon; conmon then stays in $RT_CG.
pm() {
	sm_run "$RT_CG" - env -u CNI_ARGS CONTAINERS_CONF="$RT/containers.conf" \
		CONTAINERS_STORAGE_CONF="$RT/storage.conf" CONTAINERS_REGISTRIES_CONF="$RT/registries.conf" \
		TMPDIR="$RT/tmp" "${RT_ENTER[@]}" timeout 60 podman --log-level error "$@"
}

# On every exit path: the runtime's own DEL for what is left (a failed
# subtest), the mount namespace's holder, then at once whatever is still in
# the runtime's cgroups (conmon, a container, the `podman container cleanup`
# conmon starts when its container dies), and the cgroups runc made.
rt_cleanup() {
	local d
	[ "${#RT_ENTER[@]}" = 0 ] || pm rm -af -t 0 >/dev/null 2>&1
	[ -z "${HOLDER:-}" ] || sm_stop "$HOLDER"
	[ ! -e "$CG/cgroup.kill" ] || echo 1 >"$CG/cgroup.kill"
	while IFS= read -r d; do
		xargs -r kill -9 <"$d/cgroup.procs" 2>/dev/null
		for _ in $(seq 20); do rmdir "$d" 2>/dev/null && break; sleep 0.1; done
	done < <(find "$CG" -mindepth 1 -depth -type d 2>/dev/null)
}
RT_ENTER=()
sm_on_cleanup rt_cleanup

# The private mount namespace, held by a process in $RT_CG (killed on
# cleanup; the namespace and its mounts go with it). /run is a tmpfs there
# (runc's state, podman's netns mounts), but for /run/lock: libsockmesh's
# instance lock, which the plugin and the CLI must share.
# shellcheck disable=SC2016 # $1..$4 belong to the inner shell
HOLDER=$(sm_bg_log "$RT/holder.log" "$RT_CG" - unshare --mount --propagation private sh -ec '
	mount --bind "$1" "$2"
	[ ! -d /run/lock ] || mount --bind /run/lock "$4"
	if mountpoint -q /sys/fs/cgroup; then umount -R /sys/fs/cgroup; fi
	mount --move "$2" /sys/fs/cgroup
	mount --bind "$3" /var/lib
	mount -t tmpfs -o mode=0755 sockmesh-rt-run /run
	mkdir /run/netns
	if mountpoint -q "$4"; then
		mkdir /run/lock
		mount --move "$4" /run/lock
	fi
	echo ready
	exec sleep infinity' holder "$CG" "$RT/cgroup-root" "$RT/varlib" "$RT/run-lock")
for _ in $(seq 50); do
	grep -qx ready "$RT/holder.log" && break
	sleep 0.1
done
grep -qx ready "$RT/holder.log" || sm_die "mount namespace for podman: $(cat "$RT/holder.log")"
# Root and working directory: the holder's root. When the test runs
# chrooted (as in the VM guest), that is not the namespace's root mount,
# where setns() puts them, and with --root alone nsenter would keep a
# working directory outside the namespace (conmon fails on getcwd()).
RT_ENTER=(nsenter --mount="/proc/$HOLDER/ns/mnt" --root="/proc/$HOLDER/root" --wd="/proc/$HOLDER/root"
	--net="/run/netns/$NODE" --)
[ "$(in_rt stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ] || sm_die "podman's /sys/fs/cgroup is not cgroup2"
[ ! -d /run/lock ] || [ "$(in_rt stat -c %d:%i /run/lock)" = "$(stat -c %d:%i /run/lock)" ] ||
	sm_die "podman's /run/lock is not the host's"
info=$(pm info --format '{{.Host.CgroupsVersion}} {{.Host.CgroupManager}} {{.Host.NetworkBackend}} {{.Host.OCIRuntime.Name}} {{.Store.GraphRoot}}')
[ "$info" = "v2 cgroupfs cni runc $RT/root" ] || sm_die "podman is not set up as intended: $info"

# ------------------------------------------------------------- the image

# image_add ROOTFS FILE [DEST]: FILE at DEST (default: its own path) in the
# image, with the shared libraries it loads: system ones at their paths,
# others (the build's libsockmesh) in /usr/lib.
image_add() {
	local root=$1 src=$2 dest=${3:-$2} lib to
	install -D -m 0755 "$src" "$root$dest"
	while IFS= read -r lib; do
		case $lib in
		/lib/* | /lib64/* | /usr/lib/*) to=$lib ;;
		*) to=/usr/lib/${lib##*/} ;;
		esac
		[ -e "$root$to" ] || install -D -m 0755 "$(readlink -f "$lib")" "$root$to"
	done < <(ldd "$src" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
}

ROOTFS="$RT/image/rootfs"
image_add "$ROOTFS" "$(command -v busybox)" /bin/busybox
for a in $(busybox --list); do
	[ "$a" = busybox ] || ln -s busybox "$ROOTFS/bin/$a"
done
image_add "$ROOTFS" "$SM_SIDECAR" /usr/bin/sockmesh-sidecar
mkdir -p "$ROOTFS/etc" "$ROOTFS/www" "$ROOTFS/tmp"
printf 'root:x:0:0:root:/:/bin/sh\nproxy:x:%s:%s:sidecar:/:/bin/false\n' "$E2E_PROXY_UID" "$E2E_PROXY_GID" \
	>"$ROOTFS/etc/passwd"
printf 'root:x:0:\nproxy:x:%s:\n' "$E2E_PROXY_GID" >"$ROOTFS/etc/group"
echo "app-rt $SM_TAG" >"$ROOTFS/www/index.html"
tar -C "$ROOTFS" --numeric-owner --owner=0 --group=0 -cf "$RT/image/rootfs.tar" .
pm import --quiet "$RT/image/rootfs.tar" "$IMG" >/dev/null || sm_die "podman import failed"

# ------------------------------------------------------------ containers

# ctr NAME FIELD: a Go template field of podman inspect NAME (.Id, .State.Pid ...)
ctr() { pm inspect --format "{{$2}}" "$1"; }
ctr_ip() { ctr "$1" "(index .NetworkSettings.Networks \"$NET\").IPAddress"; }
# run_app NAME CMD...: a container on the network, in the pods cgroup
run_app() {
	local name=$1
	shift
	pm run -d --name "$name" --network "$NET" --cgroup-parent /pods --pull never "$IMG" "$@" >/dev/null ||
		sm_die "podman run $name failed"
}
# app_get NAME URL: busybox wget in container NAME (its output and errors)
app_get() { pm exec "$1" wget -qO- "$2" 2>&1 || true; }
# sidecar_log: the sidecar container's log (podman logs: its stderr)
sidecar_log() { pm logs sidecar 2>&1; }
# wait_sidecar_log ERE N: until the sidecar logged N lines matching ERE
# (10 s; each podman call takes a while on a loaded machine)
wait_sidecar_log() {
	local end=$((SECONDS + 10))
	while [ "$SECONDS" -lt "$end" ]; do
		[ "$(sidecar_log | grep -cE "$1")" -ge "$2" ] && return 0
		sleep 0.1
	done
	sm_log "    FAIL sidecar log: fewer than $2 lines matching /$1/ after 10 s:"
	sidecar_log | sed 's/^/      /' >&2
	return 1
}

# scope_of NAME: the enrolled scope labelled with pod name NAME ("" if none)
scope_of() {
	local s
	s=$(sm_cli -j status) || return 0
	jq -c --arg n "$1" '.scopes[]? | select(.pod_name == $n)' <<<"$s"
}
# ctr_stats NAME: the stats of container NAME's scope, found by its netns
ctr_stats() { e2e_stats --netns "/proc/$(ctr "$1" .State.Pid)/ns/net"; }
# present PATH...: those of the PATHs that exist (in this mount namespace)
present() {
	local p
	for p in "$@"; do [ ! -e "$p" ] || echo "$p"; done
}
delta() { echo $(($(e2e_counter "$2" "$3") - $(e2e_counter "$1" "$3"))); }

# The app (busybox httpd on 8080) and its sidecar, which shares the app's
# netns as a pod's sidecar does (podman runs no CNI for it); app2, a second
# pod without a sidecar.
run_app app httpd -f -p 8080 -h /www
run_app app2 sleep 3600
pm run -d --name sidecar --network container:app --user "$E2E_PROXY_UID:$E2E_PROXY_GID" \
	--cgroup-parent /pods --pull never "$IMG" \
	sockmesh-sidecar --listen 127.0.0.1:15001 --listen 127.0.0.1:15006 >/dev/null ||
	sm_die "podman run sidecar failed"
wait_sidecar_log '^listen addr=127\.0\.0\.1:15006$' 1 || sm_die "the sidecar does not listen"
APP_IP=$(ctr_ip app)
sm_log "podman: app $APP_IP (with sidecar), app2 $(ctr_ip app2) on bridge $BR ($GW) in netns $NODE"
# A server outside the mesh, on the bridge's address in the node netns
# (the bridge has it since the first ADD).
e2e_nginx_start srv "$NODE" "$GW:8081 node-8081"
URL="http://$GW:8081/"

# -------------------------------------------------------------- subtests

add_enrols_each_container_netns() {
	local name s id pid
	assert_eq "$(sm_cli -j status | jq '.scopes | length')" 2 "scopes enrolled (app, app2)"
	for name in app app2; do
		s=$(scope_of "$name")
		id=$(ctr "$name" .Id)
		pid=$(ctr "$name" .State.Pid)
		assert_eq "$(jq -r '[.kind, .name] | join(" ")' <<<"$s")" "netns $(ctr "$name" .NetworkSettings.SandboxKey)" \
			"$name: scope is podman's netns (CNI_NETNS)"
		assert_eq "$(jq -r '[.pod_namespace, .pod_name, .container_id] | join("/")' <<<"$s")" "/$name/$id" \
			"$name: labels (CNI_ARGS K8S_POD_NAME = container name, CNI_CONTAINERID)"
		assert_eq "$(jq -r '[.proxy_port, .proxy_uid, .inbound_port, .splice, .fail_open, .attach_cgroup_id] | join(" ")' <<<"$s")" \
			"15001 1337 15006 true false $PODS_CGID" "$name: policy from the conflist, attached at the pods cgroup"
		# the scope is the netns the container's processes are in
		assert_eq "$(e2e_stats --netns "/proc/$pid/ns/net" | jq -r '.scopes | length')" 1 \
			"$name: stats --netns /proc/PID/ns/net finds it"
		assert_eq "$(grep -cx "$pid" "$PODS_CG/libpod-$id/cgroup.procs")" 1 \
			"$name: its process is in $PODS_CG/libpod-ID (under attachCgroup)"
		# podman's state is in the test's dirs, not the host's
		assert_eq "$(find "$RT/varlib/cni/results" -name "$NET-$id-*" | wc -l)" 1 \
			"$name: libcni's cached result under the test's /var/lib"
		assert_eq "$(present "/var/lib/cni/results/$NET-$id-eth0" "/run/runc/$id" \
			"/run/netns/$(basename "$(ctr "$name" .NetworkSettings.SandboxKey)")")" "" \
			"$name: nothing of it in the host's /var/lib/cni, /run/runc or /run/netns"
	done
	assert_eq "$(find "$RT/ipam/$NET" -maxdepth 1 -name '10.91.0.*' | sort | xargs -n1 basename | paste -sd' ')" \
		"$(printf '%s\n' "$APP_IP" "$(ctr_ip app2)" | sort | paste -sd' ')" "host-local holds the two addresses"
}

sidecar_container_is_the_pods_proxy() {
	local pid
	pid=$(ctr sidecar .State.Pid)
	assert_eq "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")" "$E2E_PROXY_UID" "sidecar runs as the proxy uid"
	assert_eq "$(stat -L -c %i "/proc/$pid/ns/net")" "$(stat -L -c %i "/proc/$(ctr app .State.Pid)/ns/net")" \
		"sidecar is in the app's netns"
	assert_eq "$(grep -cx "$pid" "$PODS_CG/libpod-$(ctr sidecar .Id)/cgroup.procs")" 1 \
		"sidecar's process is under attachCgroup"
	assert_eq "$(sm_cli -j status | jq -r '[.scopes[].pod_name] | sort | join(" ")')" "app app2" \
		"no scope of its own (no CNI for --network container:)"
}

connect_refused_without_a_sidecar() {
	local s0 s1 out n0
	n0=$(e2e_access_count srv "$GW:8081")
	s0=$(ctr_stats app2)
	out=$(app_get app2 "$URL")
	s1=$(ctr_stats app2)
	assert_match "$out" "Connection refused" "app2's wget to $URL refused (captured, nothing on 15001)"
	assert_eq "$(delta "$s0" "$s1" refused_no_proxy)" 1 "refused_no_proxy delta"
	assert_eq "$(($(e2e_access_count srv "$GW:8081") - n0))" 0 "the server saw nothing"
}

app_traffic_reaches_the_sidecar_with_its_original_destination() {
	local s0 s1 out n0
	n0=$(e2e_access_count srv "$GW:8081")
	s0=$(ctr_stats app)
	out=$(app_get app "$URL")
	s1=$(ctr_stats app)
	# nginx sees the sidecar's upstream connection, from the pod's address
	assert_match "$out" "^node-8081 $APP_IP:[0-9]+\$" "app's wget gets the server's reply"
	wait_sidecar_log "^accept client=[0-9.]+:[0-9]+ orig=$GW:8081\$" 1
	assert_eq "$(sidecar_log | grep -cE "^accept client=[0-9.]+:[0-9]+ orig=$GW:8081\$")" 1 \
		"sidecar log: accept ... orig=$GW:8081 (the app's original destination)"
	assert_eq "$(($(e2e_access_count srv "$GW:8081") - n0))" 1 "the server saw one request"
	assert_deltas "$s0" "$s1" "outbound" captured=1 origdst_published=1 origdst_answered=1 \
		bypass_proxy_uid=1 'splice_sockets=+' 'splice_msgs=+' 'splice_bytes=+' 'splice_local_legs=*'
}

inbound_to_the_app_is_steered_to_the_sidecar() {
	local s0 s1 out
	s0=$(ctr_stats app)
	out=$(e2e_curl - "$NODE" "http://$APP_IP:8080/")
	s1=$(ctr_stats app)
	assert_eq "$out" "app-rt $SM_TAG" "a client in the node netns gets the app's page"
	wait_sidecar_log "^accept client=$GW:[0-9]+ orig=$APP_IP:8080\$" 1
	assert_eq "$(sidecar_log | grep -cE "^accept client=$GW:[0-9]+ orig=$APP_IP:8080\$")" 1 \
		"sidecar log: accept client=$GW:* orig=$APP_IP:8080 (steered to 15006, no NAT)"
	assert_eq "$(delta "$s0" "$s1" inbound_captured)" 1 "inbound_captured delta"
}

restart_is_a_del_and_an_add_with_the_new_netns() {
	local before after app_before
	before=$(scope_of app2)
	app_before=$(scope_of app)
	pm restart -t 0 app2 >/dev/null
	after=$(scope_of app2)
	assert_eq "$(jq -r .name <<<"$after")" "$(ctr app2 .NetworkSettings.SandboxKey)" "app2 enrolled again with its new netns"
	assert_eq "$([ "$(jq -r .id <<<"$after")" != "$(jq -r .id <<<"$before")" ] && echo another || echo same)" \
		another "app2's scope is another netns (id $(jq -r .id <<<"$before") before, $(jq -r .id <<<"$after") now)"
	assert_eq "$(sm_cli -j status | jq '.scopes | length')" 2 "still two scopes (the old netns withdrawn)"
	assert_eq "$(scope_of app)" "$app_before" "app's scope untouched"
	assert_match "$(app_get app2 "$URL")" "Connection refused" "app2 captured again (no sidecar)"
}

rm_withdraws_that_pod_only() {
	local id ip sb
	id=$(ctr app2 .Id)
	ip=$(ctr_ip app2)
	sb=$(ctr app2 .NetworkSettings.SandboxKey)
	pm rm -f -t 0 app2 >/dev/null
	assert_eq "$(scope_of app2)" "" "app2 withdrawn"
	assert_eq "$(sm_cli -j status | jq -r '[.scopes[].pod_name] | join(" ")')" app "app still enrolled"
	assert_eq "$(find "$RT/varlib/cni/results" -name "$NET-$id-*" | wc -l)" 0 "libcni's cached result of app2 gone"
	assert_eq "$([ -e "$RT/ipam/$NET/$ip" ] && echo held || echo free)" free "host-local released $ip"
	assert_eq "$(in_rt sh -c "[ -e '$sb' ] && echo there || echo gone")" gone "app2's netns unmounted"
	assert_match "$(app_get app "$URL")" "^node-8081 $APP_IP:[0-9]+\$" "app still goes through its sidecar"
	wait_sidecar_log "orig=$GW:8081\$" 2
	assert_eq "$(sidecar_log | grep -cE "^accept .* orig=$GW:8081\$")" 2 "sidecar log: a second accept"
}

rm_of_the_last_pod_unloads_everything() {
	local id
	id=$(ctr app .Id)
	pm rm -f -t 0 sidecar >/dev/null
	assert_eq "$(scope_of app | jq -r .container_id)" "$id" "sidecar removed: app still enrolled"
	pm rm -f -t 0 app >/dev/null
	assert_eq "$(sm_cli status | head -n 1)" "not loaded (pin dir $PIN)" "last DEL unloaded sockmesh"
	assert_eq "$([ -e "$PIN" ] && echo there || echo gone)" gone "pin dir removed"
	assert_eq "$(pm ps -aq | wc -l)" 0 "no containers"
	assert_eq "$(ip -n "$NODE" -o link show master "$BR" | wc -l)" 0 "no veth on the bridge"
	assert_eq "$(find "$RT/ipam/$NET" -maxdepth 1 -name '10.91.0.*' | wc -l)" 0 "host-local holds no address"
	assert_eq "$(find "$RT/varlib/cni/results" -type f | wc -l)" 0 "libcni's result cache empty"
	assert_eq "$(in_rt find /run/netns -mindepth 1 | wc -l)" 0 "podman's /run/netns empty"
	assert_eq "$(find "$PODS_CG" -mindepth 1 -maxdepth 1 -name 'libpod-*' | wc -l)" 0 "no container cgroups left"
}

e2e_subtest add_enrols_each_container_netns add_enrols_each_container_netns
e2e_subtest sidecar_container_is_the_pods_proxy sidecar_container_is_the_pods_proxy
e2e_subtest connect_refused_without_a_sidecar connect_refused_without_a_sidecar
e2e_subtest app_traffic_reaches_the_sidecar_with_its_original_destination \
	app_traffic_reaches_the_sidecar_with_its_original_destination
e2e_subtest inbound_to_the_app_is_steered_to_the_sidecar inbound_to_the_app_is_steered_to_the_sidecar
e2e_subtest restart_is_a_del_and_an_add_with_the_new_netns restart_is_a_del_and_an_add_with_the_new_netns
e2e_subtest rm_withdraws_that_pod_only rm_withdraws_that_pod_only
e2e_subtest rm_of_the_last_pod_unloads_everything rm_of_the_last_pod_unloads_everything
e2e_finish
