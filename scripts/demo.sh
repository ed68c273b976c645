#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# sockmesh demo: an app in a "pod" talks to two servers; sockmesh captures
# its connects into an HAProxy sidecar (no iptables), HAProxy finds each
# original destination with SO_ORIGINAL_DST, and the app<->proxy loopback
# leg is spliced by sk_msg. Everything it makes is removed on exit.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
"$ROOT/scripts/bootstrap.sh"
# shellcheck source=scripts/lib/common.sh
source "$ROOT/scripts/lib/common.sh"
export SM_TAG=smdemo$$
sm_init

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
sm() { "$SM_CLI" --pin-dir "$PIN" "$@"; }

CG=$(sm_cgroup app)
POD=$(sm_netns pod)
SRV=$(sm_netns srv)
PIN=$(sm_pindir pin)
T=$(sm_tmpdir demo)
sm_veth "$POD" "$SRV" 10.77.0.1/24 10.77.0.2/24
ip -n "$SRV" addr add 10.77.0.3/24 dev "$(ip -n "$SRV" -o link show type veth | awk -F'[ :@]+' '{print $2}')"

say "topology"
echo "pod netns $POD (10.77.0.1): the app (curl) and the HAProxy sidecar, both in cgroup $CG"
echo "server netns $SRV: nginx on 10.77.0.2:80 and 10.77.0.3:8080"

mkdir -p "$T/www"
cat >"$T/nginx.conf" <<NGX
daemon off;
worker_processes 1;
pid $T/nginx.pid;
error_log $T/nginx-error.log;
events { worker_connections 256; }
http {
	access_log $T/access.log;
	client_body_temp_path $T;
	server { listen 10.77.0.2:80; location / { return 200 "hello from server A (10.77.0.2:80)\n"; } }
	server { listen 10.77.0.3:8080; location / { return 200 "hello from server B (10.77.0.3:8080)\n"; } }
}
NGX
sm_bg - "$SRV" nginx -c "$T/nginx.conf" -p "$T" >/dev/null
cat >"$T/haproxy.cfg" <<HAP
global
	uid 1337
	gid 1337
	maxconn 4000
	stats socket $T/haproxy.sock mode 600 level admin
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
listen out
	bind 127.0.0.1:15001
	# loop guard: no original destination (dst is then this proxy) -> refuse
	tcp-request connection reject if { dst_port 15001 } { dst 127.0.0.0/8 ::1 }
	server orig 0.0.0.0:0
HAP
sm_bg "$CG" "$POD" haproxy -db -f "$T/haproxy.cfg" >"$T/haproxy.log" 2>&1
sm_wait_port "$SRV" 10.77.0.2 80
sm_wait_port "$POD" 127.0.0.1 15001

say "sockmesh enable --cgroup $CG   (no iptables rule anywhere)"
sm enable --cgroup "$CG"
sm status

say "the app sends 3 requests to A and 2 to B"
for url in http://10.77.0.2/ http://10.77.0.2/ http://10.77.0.2/ http://10.77.0.3:8080/ http://10.77.0.3:8080/; do
	printf '  curl %-24s -> ' "$url"
	sm_run "$CG" "$POD" curl -sS -m 5 "$url"
done

say "HAProxy saw every session (stats socket: proxy,server,total sessions)"
echo "show stat" | socat - "UNIX-CONNECT:$T/haproxy.sock" | awk -F, '$1=="out"{print "  "$1","$2","$8}'

say "nginx saw the clients arrive from the pod through the proxy (access log)"
sed 's/^/  /' "$T/access.log"

say "sockmesh stats: captured, original destinations answered, spliced"
sm stats --cgroup "$CG"

say "a 16 MiB download through the spliced leg arrives intact"
head -c 16777216 /dev/urandom >"$T/www/blob"
sm_bg - "$SRV" python3 -m http.server --bind 10.77.0.2 8000 --directory "$T/www" >/dev/null 2>&1
sm_wait_port "$SRV" 10.77.0.2 8000
want=$(sha256sum <"$T/www/blob" | cut -d' ' -f1)
got=$(sm_run "$CG" "$POD" curl -sS -m 30 http://10.77.0.2:8000/blob | sha256sum | cut -d' ' -f1)
echo "  sent     $want"
echo "  received $got"
[ "$want" = "$got" ] || sm_die "16 MiB transfer corrupted"
sm -j stats --cgroup "$CG" | jq -r '.scopes[0].counters | "  splice_msgs \(.splice_msgs), splice_bytes \(.splice_bytes), splice_miss \(.splice_miss)"'

say "sockmesh disable --all: nothing of sockmesh remains"
sm disable --all
echo "  pin dir: $(ls -d "$PIN" 2>/dev/null || echo gone)"
echo "  programs on $CG: $(bpftool cgroup show "$CG" | tail -n +2 | wc -l)"
printf '  after disable, curl A -> '
sm_run "$CG" "$POD" curl -sS -m 5 http://10.77.0.2/
echo "  HAProxy sessions stay at $(echo "show stat" | socat - "UNIX-CONNECT:$T/haproxy.sock" | awk -F, '$1=="out" && $2=="FRONTEND"{print $8}') (the request went direct)"
say "done; cleaning up"
