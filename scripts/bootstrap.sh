#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Install what sockmesh needs from Debian 12 (only Debian packages) and build
# it into build/. Idempotent: skips apt when everything is there.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

PKGS=(clang libbpf-dev bpftool libelf-dev zlib1g-dev meson ninja-build pkg-config
      libcunit1-dev libjson-c-dev libclang-rt-14-dev
      haproxy nginx-light curl socat sockperf iperf3 wrk python3 jq gnuplot-nox
      iproute2 iptables procps shellcheck pandoc man-db groff-base
      libmicrohttpd-dev containernetworking-plugins dnsutils dnsmasq-base yamllint prometheus
      qemu-system-x86 kmod linux-perf
      # selftests/e2e/test_runtime.sh: a real runtime (podman runs runc; it
      # depends on crun | runc) and busybox for the image it builds
      podman runc busybox-static
      # sockmesh tap: its tests read the pcapng it writes
      tshark)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "bootstrap: installing ${missing[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	# haproxy/nginx/iperf3 would start host-wide services on install: the
	# tests run their own instances inside their namespaces instead.
	own_policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		own_policy=1
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	if [ -n "$own_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
fi

cd "$ROOT"
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
