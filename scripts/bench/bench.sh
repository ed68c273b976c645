#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#
# bench.sh - the sockmesh benchmark, one command.
#
# Builds a testbed (client pod netns + sidecar, server netns, veth, own
# cgroup), then measures the modes direct / iptables / capture / sockmesh
# interleaved in rounds (the order rotates every round, so drift hits all
# modes alike) and writes report.md, results.json, plot.png and the raw logs
# to a results directory. Run `bench.sh --help` for the options.
#
# Safety: everything lives in our own netns, cgroups and pin dir and is
# removed on every exit path (scripts/lib/common.sh, sm_cleanup). iptables
# rules are only ever added inside the iptables pod netns we create.

set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SM_ROOT=${SM_ROOT:-$(cd "$BENCH_DIR/../.." && pwd)}
SM_TAG=${SM_TAG:-smb$$}
CLI_FROM_ENV=${SM_CLI:-}
# shellcheck source=SCRIPTDIR/../lib/common.sh
. "$SM_ROOT/scripts/lib/common.sh"

ALL_MODES=(direct iptables capture sockmesh car-ipt car fastpath tap flows)
DEFAULT_MODES=(direct iptables sockmesh car-ipt car fastpath)
ALL_WORKLOADS=(latency iperf wrk)
ARGV=("$@")

usage() {
	cat <<EOF
usage: scripts/bench/bench.sh [options]

Benchmark sockmesh against no sidecar (direct) and an istio-style iptables
REDIRECT sidecar, through the same sidecars (HAProxy, and sockmesh's
reference sidecar), interleaved in rounds.

modes      direct    client -> server over veth, no sidecar
           iptables  HAProxy sidecar, nat OUTPUT -> ISTIO_OUTPUT (uid 1337 RETURN,
                     127.0.0.1 RETURN, REDIRECT --to-ports 15001)
           capture   HAProxy sidecar, sockmesh enable --no-splice
           sockmesh  HAProxy sidecar, sockmesh enable (capture + splice)
           car-ipt   sockmesh-sidecar, the same iptables rules
           car       sockmesh-sidecar, sockmesh enable (capture + splice)
           fastpath  sockmesh-sidecar --fast-path, sockmesh enable: the kernel
                     forwards each connection after the sidecar accepted it
           tap       the sockmesh mode with 'sockmesh tap' running on the cgroup
                     (pcapng to /dev/null): what a tap costs (not by default)
           flows     the sockmesh mode with 'sockmesh flows -j --follow' running
                     on the cgroup (to /dev/null): what flow events cost (not
                     by default)
workloads  latency   sockperf TCP ping-pong per size: p50, p99, p99.9 RTT
           iperf     iperf3, 1 and 4 streams
           wrk       nginx, keep-alive req/s and 'Connection: close' conn/s,
                     whole-machine CPU (/proc/stat) per request

options
  -q, --quick            CI smoke test: 1 round, 2 s runs (about 2 minutes);
                         asserts nothing about speed
  -r, --rounds N         rounds (default 5, --quick 1)
  -m, --modes LIST       comma list of modes (default: all but capture)
  -w, --workloads LIST   comma list of workloads (default: all three)
  -o, --out DIR          results directory (default build/bench/<UTC timestamp>)
  -s, --sizes LIST       sockperf message sizes in bytes (default 64,1024,16384)
      --latency-time S   seconds per sockperf run (default 5, --quick 2)
      --iperf-time S     seconds per iperf3 run (default 5, --quick 2)
      --wrk-time S       seconds per wrk run (default 8, --quick 2)
      --wrk-conns N      wrk connections (default 16)
      --proxy-threads N  HAProxy nbthread, same in every mode (default 1)
      --nginx-workers N  nginx worker_processes (default 1)
      --splice-budget SIZE
                         sockmesh mode only: passed to 'sockmesh enable' (the
                         bytes a spliced socket may queue unread at its peer
                         before it falls back to the stack; default 8MiB)
      --latency-cpu C    run the sockperf client, the sockperf server and the
                         sidecar on CPU C during the latency runs (default: the
                         last CPU); 'none' lets the scheduler spread them (then
                         cross-CPU wake-ups of an idle VM dominate the RTT)
      --build            run meson setup (if needed) + ninja -C build first
      --publish          also write the results into docs/benchmarks.md and the plot
                         next to it (docs/bench-plot.png); with --latency-cpu
                         set to a CPU, into its "pinned" section instead
                         (docs/bench-plot-pinned.png)
      --profile          also profile every run: per-program BPF run time
                         (kernel.bpf_stats_enabled, on for the run only) and a
                         whole-machine perf profile grouped by where the time
                         goes; adds overhead, so its speed figures are not
                         comparable with a run without it; with --publish it
                         goes to the profile section of docs/benchmarks.md,
                         not the results; SM_BENCH_KEEP_PERF=1 keeps each
                         run's perf.data
  -h, --help             this text

The sockmesh modes need the CLI at \$SM_CLI (default build/user/cli/sockmesh).
Exit status: 0 every mode ran and traffic took the intended path, 1 something
failed (the report is still written and says what), 2 bad usage.
EOF
}

usage_error() {
	printf 'bench.sh: %s\n' "$*" >&2
	printf "Try 'bench.sh --help'.\n" >&2
	exit 2
}

# no_val OPT: the option OPT takes no value (it was not given as OPT=VALUE)
no_val() { [ "$EQ" = 0 ] || usage_error "$1 takes no value"; }

# need_arg OPT NARGS: the option OPT takes a value
need_arg() { [ "$2" -ge 2 ] || usage_error "$1 needs a value"; }

pos_int() { # pos_int OPT VALUE [MAX]
	[[ $2 =~ ^[1-9][0-9]{0,5}$ ]] || usage_error "$1: '$2' is not a positive integer"
	if [ -n "${3:-}" ] && [ "$2" -gt "$3" ]; then
		usage_error "$1: '$2' is more than $3"
	fi
}

# in_list OPT VALUE ALLOWED...: VALUE is a comma list of ALLOWED words, no repeats
in_list() {
	local opt=$1 val=$2 w a ok
	shift 2
	[ -n "$val" ] || usage_error "$opt: empty list"
	local seen=, words=()
	IFS=, read -r -a words <<<"$val"
	for w in "${words[@]}"; do
		ok=0
		for a in "$@"; do [ "$w" = "$a" ] && ok=1; done
		[ "$ok" = 1 ] || usage_error "$opt: unknown value '$w' (choose from: $*)"
		[[ $seen == *",$w,"* ]] && usage_error "$opt: '$w' given twice"
		seen+="$w,"
	done
}

QUICK=0
ROUNDS=
MODES=$(IFS=,; echo "${DEFAULT_MODES[*]}")
WORKLOADS=$(IFS=,; echo "${ALL_WORKLOADS[*]}")
OUT=
SIZES=64,1024,16384
LAT_T=
IPERF_T=
WRK_T=
WRK_CONNS=16
PROXY_THREADS=1
NGINX_WORKERS=1
LAT_CPU=
SPLICE_BUDGET=
DO_BUILD=0
PUBLISH=0
PROFILE=0
PERF_HZ=997

while [ $# -gt 0 ]; do
	EQ=0
	case $1 in
	--*=*) set -- "${1%%=*}" "${1#*=}" "${@:2}"; EQ=1 ;;
	esac
	case $1 in
	-q | --quick) no_val "$1"; QUICK=1 ;;
	-r | --rounds) need_arg "$1" $#; pos_int "$1" "$2" 100; ROUNDS=$2; shift ;;
	-m | --modes) need_arg "$1" $#; in_list "$1" "$2" "${ALL_MODES[@]}"; MODES=$2; shift ;;
	-w | --workloads) need_arg "$1" $#; in_list "$1" "$2" "${ALL_WORKLOADS[@]}"; WORKLOADS=$2; shift ;;
	-o | --out) need_arg "$1" $#; [ -n "$2" ] || usage_error "$1: empty path"; OUT=$2; shift ;;
	-s | --sizes)
		need_arg "$1" $#
		[[ $2 =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || usage_error "$1: '$2' is not a comma list of sizes"
		IFS=, read -r -a _sz <<<"$2"
		for s in "${_sz[@]}"; do [ "$s" -le 65000 ] || usage_error "$1: size '$s' is more than 65000"; done
		SIZES=$2; shift ;;
	--latency-time) need_arg "$1" $#; pos_int "$1" "$2" 600; LAT_T=$2; shift ;;
	--iperf-time) need_arg "$1" $#; pos_int "$1" "$2" 600; IPERF_T=$2; shift ;;
	--wrk-time) need_arg "$1" $#; pos_int "$1" "$2" 600; WRK_T=$2; shift ;;
	--wrk-conns) need_arg "$1" $#; pos_int "$1" "$2" 1000; WRK_CONNS=$2; shift ;;
	--proxy-threads) need_arg "$1" $#; pos_int "$1" "$2" 64; PROXY_THREADS=$2; shift ;;
	--nginx-workers) need_arg "$1" $#; pos_int "$1" "$2" 64; NGINX_WORKERS=$2; shift ;;
	--latency-cpu)
		need_arg "$1" $#
		if [ "$2" != none ]; then
			[[ $2 =~ ^[0-9]{1,4}$ ]] || usage_error "$1: '$2' is not a CPU number or 'none'"
			[ "$2" -lt "$(nproc)" ] || usage_error "$1: CPU '$2' is not online (have $(nproc))"
		fi
		LAT_CPU=$2; shift ;;
	--splice-budget)
		need_arg "$1" $#
		[[ $2 =~ ^[1-9][0-9]*([KMG](iB)?)?$ ]] || usage_error "$1: '$2' is not a size (e.g. 8MiB)"
		SPLICE_BUDGET=$2; shift ;;
	--build) no_val "$1"; DO_BUILD=1 ;;
	--publish) no_val "$1"; PUBLISH=1 ;;
	--profile) no_val "$1"; PROFILE=1 ;;
	-h | --help) usage; exit 0 ;;
	*) usage_error "unknown option '$1'" ;;
	esac
	shift
done

if [ "$QUICK" = 1 ]; then
	: "${ROUNDS:=1}" "${LAT_T:=2}" "${IPERF_T:=2}" "${WRK_T:=2}"
else
	: "${ROUNDS:=5}" "${LAT_T:=5}" "${IPERF_T:=5}" "${WRK_T:=8}"
fi
: "${LAT_CPU:=$(($(nproc) - 1))}"
ALL_CPUS=0-$(($(nproc) - 1))
LAT_PIN=()
[ "$LAT_CPU" = none ] || LAT_PIN=(taskset -c "$LAT_CPU")
IFS=, read -r -a MODE_LIST <<<"$MODES"
IFS=, read -r -a SIZE_LIST <<<"$SIZES"
has_wl() { [[ ,$WORKLOADS, == *",$1,"* ]]; }

# modes that load sockmesh, and those whose sidecar is sockmesh-sidecar
sm_mode() { case $1 in capture | sockmesh | car | fastpath | tap | flows) return 0 ;; esac; return 1; }
car_mode() { case $1 in car-ipt | car | fastpath) return 0 ;; esac; return 1; }
any_sm_mode() { local m; for m in "${MODE_LIST[@]}"; do sm_mode "$m" && return 0; done; return 1; }
any_car_mode() { local m; for m in "${MODE_LIST[@]}"; do car_mode "$m" && return 0; done; return 1; }

tools=(haproxy nginx sockperf iperf3 wrk gnuplot python3 iptables ip ss timeout taskset bpftool)
[ "$PROFILE" = 1 ] && tools+=(perf sysctl)
for t in "${tools[@]}"; do
	command -v "$t" >/dev/null || sm_die "$t not found (Debian: see docs/benchmarks.md)"
done

SM_BUILD=${SM_BUILD:-$SM_ROOT/build}
if [ "$DO_BUILD" = 1 ]; then
	[ -f "$SM_ROOT/meson.build" ] || sm_die "--build: no meson.build in $SM_ROOT yet"
	[ -f "$SM_BUILD/build.ninja" ] || meson setup "$SM_BUILD" "$SM_ROOT" >&2
	ninja -C "$SM_BUILD" >&2
fi
if any_sm_mode; then
	[ -x "$SM_CLI" ] || sm_die "sockmesh CLI $SM_CLI not built (use --build, or --modes direct,iptables)"
fi
SM_SIDECAR=${SM_SIDECAR:-$SM_BUILD/user/sidecar/sockmesh-sidecar}
if any_car_mode; then
	[ -x "$SM_SIDECAR" ] || sm_die "sockmesh-sidecar $SM_SIDECAR not built (use --build)"
fi

OUT=${OUT:-$SM_BUILD/bench/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT/raw"
OUT=$(cd "$OUT" && pwd)
RAW=$OUT/raw
RUNS=$RAW/runs.jsonl
: >"$RUNS"

sm_init
if [ "$PROFILE" = 1 ]; then
	# BPF run-time accounting costs two clock reads per program run, in
	# every mode that has programs; it is put back as it was on every exit.
	old_stats=$(sysctl -n kernel.bpf_stats_enabled)
	sm_on_cleanup "sysctl -qw kernel.bpf_stats_enabled=$old_stats"
	sysctl -qw kernel.bpf_stats_enabled=1
fi

# --- testbed ----------------------------------------------------------------
# Two identical client pods, so the iptables pod's nat table (and with it
# conntrack) never runs in the other modes:
#   pod  10.77.1.1 <-veth-> 10.77.1.2  srv   direct, capture, sockmesh
#   ipt  10.77.2.1 <-veth-> 10.77.2.2  srv   iptables
CG=$(sm_cgroup pod)        # client tools + HAProxy, every mode
SRV_CG=$(sm_cgroup srv)    # servers
NS_POD=$(sm_netns pod)
NS_IPT=$(sm_netns ipt)
NS_SRV=$(sm_netns srv)
sm_veth "$NS_POD" "$NS_SRV" 10.77.1.1/24 10.77.1.2/24
sm_veth "$NS_IPT" "$NS_SRV" 10.77.2.1/24 10.77.2.2/24
PIN=$(sm_pindir pin)
TMP=$(sm_tmpdir bench)
CLI_ID=none
if any_sm_mode || any_car_mode; then
	# One binary for the whole run (and its cleanup), even if the build
	# directory is rebuilt meanwhile: pins and CLI must match.
	# (the CLI finds libsockmesh at $ORIGIN/../lib, so the copy keeps
	# that layout)
	mkdir -p "$TMP/cli" "$TMP/lib"
	cp "$SM_CLI" "$TMP/cli/sockmesh"
	cp -L "$(dirname "$SM_CLI")/../lib/libsockmesh.so.0" "$TMP/lib/"
	CLI_ID="$SM_CLI sha256:$(sha256sum "$SM_CLI" | cut -c1-12)"
	SM_CLI=$TMP/cli/sockmesh
	if any_car_mode; then
		cp "$SM_SIDECAR" "$TMP/cli/sockmesh-sidecar"
		SM_SIDECAR=$TMP/cli/sockmesh-sidecar
		chmod 755 "$TMP" "$TMP/cli" "$TMP/lib"
	fi
fi
GEN=0
PY=(python3 "$BENCH_DIR/report.py")
COMMIT=$(git -C "$SM_ROOT" rev-parse --short HEAD 2>/dev/null || echo none)
git -C "$SM_ROOT" diff --quiet HEAD 2>/dev/null || COMMIT+=" (+ uncommitted changes)"

ipt() { ip netns exec "$NS_IPT" iptables -w 5 -t nat "$@"; }
ipt -N ISTIO_OUTPUT
ipt -A OUTPUT -p tcp -j ISTIO_OUTPUT
ipt -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
ipt -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
ipt -A ISTIO_OUTPUT -p tcp -j REDIRECT --to-ports 15001
ip netns exec "$NS_IPT" iptables -t nat -S >"$RAW/iptables-rules.txt"

cat >"$TMP/nginx.conf" <<EOF
worker_processes $NGINX_WORKERS;
daemon off;
pid $TMP/nginx.pid;
error_log $RAW/nginx-error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	keepalive_requests 1000000;
	client_body_temp_path $TMP/nginx-body;
	proxy_temp_path $TMP/nginx-proxy;
	server {
		listen 80 backlog=4096;
		location / { return 200 "ok\n"; }
	}
}
EOF

hap_conf() { # hap_conf FILE STATS_SOCKET
	cat >"$1" <<EOF
global
	uid 1337
	gid 1337
	maxconn 4000
	nbthread $PROXY_THREADS
	stats socket $2 mode 600 level user
defaults
	mode tcp
	timeout connect 5s
	timeout client 60s
	timeout server 60s
listen out
	bind 127.0.0.1:15001
	mode tcp
	server orig 0.0.0.0:0
EOF
}

sm_bg_log "$RAW/sockperf-server.log" "$SRV_CG" "$NS_SRV" "${LAT_PIN[@]}" sockperf server --tcp -i 0.0.0.0 -p 11111 >/dev/null
sm_bg_log "$RAW/iperf3-server.log" "$SRV_CG" "$NS_SRV" iperf3 -s -B 0.0.0.0 -p 5201 >/dev/null
sm_bg_log "$RAW/nginx.log" "$SRV_CG" "$NS_SRV" nginx -e "$RAW/nginx-error.log" -p "$TMP" -c "$TMP/nginx.conf" >/dev/null
sm_wait_port "$NS_SRV" 0.0.0.0 11111 || sm_die "sockperf server did not start"
sm_wait_port "$NS_SRV" 0.0.0.0 5201 || sm_die "iperf3 server did not start"
sm_wait_port "$NS_SRV" 0.0.0.0 80 || sm_die "nginx did not start (see $RAW/nginx-error.log)"

# --- measuring ----------------------------------------------------------------
cpu_sample() { # busy and total jiffies of the whole machine
	awk '$1 == "cpu" { print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8+$9; exit }' /proc/stat
}
cg_usage() { # CPU microseconds used in our two cgroups
	awk '$1 == "usage_usec" { s += $2 } END { print s + 0 }' "$CG/cpu.stat" "$SRV_CG/cpu.stat"
}

# Kernel TCP memory in pages: the "mem" of /proc/net/sockstat's TCP line,
# one machine-wide count (the kernel keeps no per-netns figure), so the
# bench's own runs are what moves it on a quiet machine. Sets TCP_MEM.
tcp_mem() {
	local l
	TCP_MEM=null
	while read -r l; do
		case $l in TCP:*" mem "*)
			TCP_MEM=${l##* mem }
			TCP_MEM=${TCP_MEM%% *}
			return
			;;
		esac
	done </proc/net/sockstat
}

# tcp_mem_watch FILE: sample every 20 ms in the background, keeping the peak
# in FILE, until FILE.stop exists (or the bench is gone). No signals: a
# trap would wait for the sleep and could be lost.
tcp_mem_watch() {
	local peak=-1 bench=$$
	while [ -d "/proc/$bench" ] && [ ! -e "$1.stop" ]; do
		tcp_mem
		if [ "$TCP_MEM" != null ] && [ "$TCP_MEM" -gt "$peak" ]; then
			peak=$TCP_MEM
			echo "$peak" >"$1"
		fi
		sleep 0.02
	done
}

# per mode-run state, set by mode_up (M_HAP_PID: the sidecar's pid,
# HAProxy or sockmesh-sidecar; M_CAR_LOG: the latter's connection log)
M_NS='' M_SRV='' M_HAP_PID='' M_HAP_SOCK='' M_CAR_LOG='' M_CAR_PIDFILE='' M_FAIL=''

# sidecar_rchar: bytes the running sockmesh-sidecar has read with read(2)
# (/proc/PID/io): the fast path must leave the payload to the kernel
sidecar_rchar() {
	local pid
	pid=$(cat "$M_CAR_PIDFILE" 2>/dev/null) || { echo null; return; }
	awk '/^rchar:/ { print $2; f = 1 } END { if (!f) print "null" }' "/proc/$pid/io" 2>/dev/null || echo null
}

# our_progs: JSON list of the programs pinned in our pin dir (run counts and
# run time), so another sockmesh instance on the machine is not counted
our_progs() {
	local f first=1
	printf '['
	for f in "$PIN"/prog_*; do
		[ -e "$f" ] || continue
		[ "$first" = 1 ] || printf ','
		bpftool -j prog show pinned "$f" 2>/dev/null || printf '{}'
		first=0
	done
	printf ']\n'
}

# run_wl ROUND MODE WORKLOAD TIMEOUT CMD...: one measurement, appended to runs.jsonl
run_wl() {
	local r=$1 mode=$2 wl=$3 tmo=$4
	shift 4
	local base="r$r-$mode-$wl" rc=0 c0 c1 g0 g1 t0 t1 sess=null stats=null perf_pid='' rch0=null rch1=null
	local mem0=null mem1=null mem_pid
	if [ "$PROFILE" = 1 ] && [ -z "$M_FAIL" ]; then
		our_progs >"$RAW/$base.progs0.json"
		perf record -q -a -g -F "$PERF_HZ" -o "$RAW/$base.perf.data" >"$RAW/$base.perf.log" 2>&1 &
		perf_pid=$!
		sleep 0.5 # perf is recording before the workload starts
	fi
	if [ -n "$M_FAIL" ]; then
		printf '%s\n' "mode setup failed: $M_FAIL" >"$RAW/$base.log"
		rc=125
	else
		[ -z "$M_CAR_PIDFILE" ] || rch0=$(sidecar_rchar)
		read -r -a c0 < <(cpu_sample)
		g0=$(cg_usage)
		tcp_mem
		mem0=$TCP_MEM
		tcp_mem_watch "$RAW/$base.tcpmem" &
		mem_pid=$!
		t0=$(date +%s%N)
		sm_run "$CG" "$M_NS" timeout -k 2 "$tmo" "$@" >"$RAW/$base.log" 2>&1 || rc=$?
		t1=$(date +%s%N)
		: >"$RAW/$base.tcpmem.stop"
		wait "$mem_pid" 2>/dev/null || true
		mem1=$(cat "$RAW/$base.tcpmem" 2>/dev/null) || mem1=null
		rm -f "$RAW/$base.tcpmem" "$RAW/$base.tcpmem.stop"
		g1=$(cg_usage)
		read -r -a c1 < <(cpu_sample)
		[ -z "$M_CAR_PIDFILE" ] || rch1=$(sidecar_rchar)
	fi
	if [ -n "$perf_pid" ]; then
		kill -INT "$perf_pid" 2>/dev/null
		wait "$perf_pid" 2>/dev/null || true
		our_progs >"$RAW/$base.progs1.json"
		perf report -i "$RAW/$base.perf.data" --stdio --no-children -g none --sort sym \
			--percent-limit 0.05 >"$RAW/$base.perf.txt" 2>>"$RAW/$base.perf.log" || true
		perf script -i "$RAW/$base.perf.data" -F comm,ip,sym 2>>"$RAW/$base.perf.log" |
			"${PY[@]}" perf-summary --hz "$PERF_HZ" >"$RAW/$base.profile.json" || true
		[ "${SM_BENCH_KEEP_PERF:-0}" = 1 ] || rm -f "$RAW/$base.perf.data"
	fi
	if [ -n "$M_HAP_SOCK" ]; then
		sess=$("${PY[@]}" haproxy-sessions "$M_HAP_SOCK" 2>"$RAW/$base.haproxy.err") || sess=null
	elif [ -n "$M_CAR_LOG" ]; then
		sess=$(grep -c '^accept ' "$M_CAR_LOG" || true)
	fi
	# TIME_WAIT sockets left in the client pod, by local address: short
	# connections crowd the connect port range toward the server with them
	ip netns exec "$M_NS" ss -Htan state time-wait 2>/dev/null |
		awk '{ sub(/:[0-9]+$/, "", $3); if ($3 ~ /^127\.128\./) $3 = "127.128.0.0/16"; n[$3]++ } END { for (a in n) printf "%s %d\n", a, n[a] }' \
			>"$RAW/$base.timewait.txt" || true
	if sm_mode "$mode"; then
		if "$SM_CLI" -j --pin-dir "$PIN" stats --cgroup "$CG" >"$RAW/$base.stats.json" 2>"$RAW/$base.stats.err"; then
			stats="\"$base.stats.json\""
		fi
	fi
	if [ "$rc" = 125 ]; then
		printf '{"round":%d,"mode":"%s","workload":"%s","rc":%d,"log":"%s.log"}\n' \
			"$r" "$mode" "$wl" "$rc" "$base" >>"$RUNS"
	else
		printf '{"round":%d,"mode":"%s","workload":"%s","rc":%d,"log":"%s.log","cpu_busy":%d,"cpu_total":%d,"cg_usec":%d,"ns":%d,"proxy_sessions":%s,"stats":%s,"sidecar_rchar":[%s,%s],"tcp_mem_pages":[%s,%s]}\n' \
			"$r" "$mode" "$wl" "$rc" "$base" "$((c1[0] - c0[0]))" "$((c1[1] - c0[1]))" \
			"$((g1 - g0))" "$((t1 - t0))" "$sess" "$stats" "$rch0" "$rch1" "$mem0" "${mem1:-null}" >>"$RUNS"
	fi
	[ "$rc" = 0 ] || sm_log "  $wl: failed (rc $rc), see $RAW/$base.log"
}

mode_up() { # mode_up ROUND MODE
	local r=$1 mode=$2 flags=()
	M_NS=$NS_POD M_SRV=10.77.1.2 M_HAP_PID='' M_HAP_SOCK='' M_CAR_LOG='' M_CAR_PIDFILE='' M_FAIL='' M_TAP_PID=''
	if cg_has_progs; then
		M_FAIL="BPF programs are attached to $CG before the run, see r$r-$mode-cgroup.txt"
		cg_progs >"$RAW/r$r-$mode-cgroup.txt" 2>&1
		return 0
	fi
	case $mode in
	direct) return 0 ;;
	iptables | car-ipt) M_NS=$NS_IPT M_SRV=10.77.2.2 ;;
	capture) flags=(--no-splice) ;;
	sockmesh | car | fastpath | tap | flows) [ -z "$SPLICE_BUDGET" ] || flags=(--splice-budget "$SPLICE_BUDGET") ;;
	esac
	if sm_mode "$mode"; then
		if ! "$SM_CLI" --pin-dir "$PIN" enable --cgroup "$CG" "${flags[@]}" >"$RAW/r$r-$mode-enable.log" 2>&1; then
			M_FAIL="sockmesh enable failed, see r$r-$mode-enable.log"
			return 0
		fi
	fi
	if car_mode "$mode"; then
		car_up "$r" "$mode"
		return 0
	fi
	M_HAP_SOCK=$TMP/haproxy-r$r-$mode.sock
	hap_conf "$TMP/haproxy-$mode.cfg" "$M_HAP_SOCK"
	M_HAP_PID=$(sm_bg_log "$RAW/r$r-$mode-haproxy.log" "$CG" "$M_NS" haproxy -db -f "$TMP/haproxy-$mode.cfg")
	if ! sm_wait_port "$M_NS" 127.0.0.1 15001 2>>"$RAW/r$r-$mode-haproxy.log"; then
		M_FAIL="haproxy did not start, see r$r-$mode-haproxy.log"
	fi
	local _
	for _ in $(seq 20); do [ -S "$M_HAP_SOCK" ] && break; sleep 0.1; done
	[ "$mode" = tap ] && tap_up "$r"
	[ "$mode" = flows ] && flows_up "$r"
	return 0
}

# tap_up ROUND: sockmesh tap on the cgroup, pcapng to /dev/null, until
# mode_down; waits until the data path shows it
tap_up() {
	local r=$1 _
	M_TAP_PID=$(sm_bg_log "$RAW/r$r-tap-tap.log" - - "$SM_CLI" --pin-dir "$PIN" tap --cgroup "$CG" -w /dev/null)
	for _ in $(seq 50); do
		"$SM_CLI" --pin-dir "$PIN" status 2>/dev/null | grep -q '^tap: running' && return 0
		sleep 0.1
	done
	M_FAIL="sockmesh tap did not start, see r$r-tap-tap.log"
}

# flows_up ROUND: sockmesh flows on the cgroup, JSON lines to /dev/null,
# until mode_down (M_TAP_PID: one consumer process per mode); waits until
# the data path shows it
flows_up() {
	local r=$1 _
	M_TAP_PID=$(sm_bg_log "$RAW/r$r-flows-flows.log" - - "$SM_CLI" --pin-dir "$PIN" flows --cgroup "$CG" -j --follow)
	for _ in $(seq 50); do
		"$SM_CLI" --pin-dir "$PIN" status 2>/dev/null | grep -q '^flows: followed' && return 0
		sleep 0.1
	done
	M_FAIL="sockmesh flows did not start, see r$r-flows-flows.log"
}

# car_up ROUND MODE: sockmesh-sidecar as uid/gid 1337 on 127.0.0.1:15001.
# With --fast-path it opens the sockmesh instance, pinned in this machine's
# bpffs: `ip netns exec` remounts /sys, so it only enters the network
# namespace (as a pod's sidecar sees a bpffs mounted into its container).
car_up() {
	local r=$1 mode=$2 args=()
	M_CAR_LOG=$TMP/car-r$r-$mode.log
	M_CAR_PIDFILE=$TMP/car-r$r-$mode.pid
	: >"$M_CAR_LOG"
	chown 1337:1337 "$M_CAR_LOG"
	args=(--listen 127.0.0.1:15001 --uid 1337 --gid 1337 --log "$M_CAR_LOG" --pidfile "$M_CAR_PIDFILE")
	if [ "$mode" = fastpath ]; then
		args+=(--fast-path --pin-dir "$PIN")
		M_HAP_PID=$(sm_bg_log "$RAW/r$r-$mode-sidecar.log" "$CG" - nsenter --net="/run/netns/$M_NS" \
			"$SM_SIDECAR" "${args[@]}")
	else
		M_HAP_PID=$(sm_bg_log "$RAW/r$r-$mode-sidecar.log" "$CG" "$M_NS" "$SM_SIDECAR" "${args[@]}")
	fi
	if ! sm_wait_port "$M_NS" 127.0.0.1 15001 2>>"$RAW/r$r-$mode-sidecar.log"; then
		M_FAIL="sockmesh-sidecar did not start, see r$r-$mode-sidecar.log"
	fi
	local _
	for _ in $(seq 20); do [ -s "$M_CAR_PIDFILE" ] && break; sleep 0.1; done
}

mode_down() { # mode_down ROUND MODE
	local r=$1 mode=$2
	[ -n "$M_TAP_PID" ] && sm_stop "$M_TAP_PID"
	[ -n "$M_HAP_PID" ] && sm_stop "$M_HAP_PID"
	[ -z "$M_CAR_LOG" ] || cp "$M_CAR_LOG" "$RAW/r$r-$mode-car.log" 2>/dev/null || true
	if sm_mode "$mode"; then
		local log=$RAW/r$r-$mode-teardown.log rc=0
		"$SM_CLI" --pin-dir "$PIN" disable --all >"$log" 2>&1 || rc=$?
		# A link's last reference is dropped by a kernel worker: give the
		# detach a moment before judging what is still attached.
		local _
		for _ in $(seq 20); do
			cg_has_progs || break
			sleep 0.1
		done
		if cg_has_progs || [ -e "$PIN" ]; then
			{
				echo "sockmesh --pin-dir $PIN disable --all: exit status $rc, but afterwards:"
				cg_progs || true
				ls "$PIN" 2>&1 || true
			} >>"$log" 2>&1
			rc=1
		fi
		if [ "$rc" != 0 ]; then
			# Keep measuring: later modes get a fresh cgroup and pin dir.
			GEN=$((GEN + 1))
			CG=$(sm_cgroup "pod$GEN")
			PIN=$(sm_pindir "pin$GEN")
			echo "continuing with cgroup $CG and pin dir $PIN" >>"$log"
			printf '{"round":%d,"mode":"%s","workload":"teardown","rc":1,"log":"%s"}\n' \
				"$r" "$mode" "${log##*/}" >>"$RUNS"
			sm_log "  sockmesh disable failed, see $log"
		fi
	fi
	M_HAP_PID='' M_HAP_SOCK='' M_CAR_LOG='' M_CAR_PIDFILE='' M_TAP_PID=''
}

cg_progs() { bpftool cgroup show "$CG"; }
cg_has_progs() { [ -n "$(bpftool cgroup show "$CG" 2>/dev/null)" ]; }

sidecar_cpus() { # sidecar_cpus CPULIST|none: set the running sidecar's affinity
	local pid=$M_HAP_PID
	[ -n "$pid" ] && [ "$1" != none ] || return 0
	# sockmesh-sidecar: its own pid (sm_bg_log's is the shell before exec's end)
	[ -z "$M_CAR_PIDFILE" ] || pid=$(cat "$M_CAR_PIDFILE" 2>/dev/null || echo "$pid")
	taskset -a -p -c "$1" "$pid" >/dev/null 2>&1 || sm_log "  taskset $1 on the sidecar failed"
}

run_mode() { # run_mode ROUND MODE
	local r=$1 mode=$2 s
	mode_up "$r" "$mode"
	[ -z "$M_FAIL" ] || sm_log "  $M_FAIL"
	if has_wl latency; then
		sidecar_cpus "$LAT_CPU"
		for s in "${SIZE_LIST[@]}"; do
			run_wl "$r" "$mode" "sockperf-$s" $((LAT_T + 20)) "${LAT_PIN[@]}" \
				sockperf ping-pong --tcp -i "$M_SRV" -p 11111 -m "$s" -t "$LAT_T" --full-rtt
		done
		sidecar_cpus "$ALL_CPUS"
	fi
	if has_wl iperf; then
		for s in 1 4; do
			run_wl "$r" "$mode" "iperf3-P$s" $((IPERF_T + 25)) \
				iperf3 -c "$M_SRV" -p 5201 -t "$IPERF_T" -O 1 -P "$s" -J --connect-timeout 3000
		done
	fi
	if has_wl wrk; then
		run_wl "$r" "$mode" wrk-keepalive $((WRK_T + 20)) \
			wrk -t 1 -c "$WRK_CONNS" -d "${WRK_T}s" --latency "http://$M_SRV/"
		run_wl "$r" "$mode" wrk-close $((WRK_T + 20)) \
			wrk -t 1 -c "$WRK_CONNS" -d "${WRK_T}s" --latency -H 'Connection: close' "http://$M_SRV/"
	fi
	mode_down "$r" "$mode"
}

START=$(date +%s)
sm_log "bench: ${#MODE_LIST[@]} modes x $ROUNDS rounds, results in $OUT"
for ((r = 1; r <= ROUNDS; r++)); do
	n=${#MODE_LIST[@]}
	for ((k = 0; k < n; k++)); do
		mode=${MODE_LIST[$(((k + r - 1) % n))]}
		sm_log "round $r/$ROUNDS: $mode ($(($(date +%s) - START)) s elapsed)"
		run_mode "$r" "$mode"
		sleep 1
	done
done
sm_log "measured in $(($(date +%s) - START)) s"
find "$RAW" -type f -empty -delete

# --- report -------------------------------------------------------------------
CMDLINE="scripts/bench/bench.sh"
[ -n "$CLI_FROM_ENV" ] && CMDLINE="SM_CLI=$(printf '%q' "$CLI_FROM_ENV") $CMDLINE"
[ ${#ARGV[@]} -gt 0 ] && CMDLINE+=$(printf ' %q' "${ARGV[@]}")
publish=()
if [ "$PUBLISH" = 1 ]; then
	publish=(--publish "$SM_ROOT/docs/benchmarks.md")
	# the default scheduler (how pods run) is the main section; a run with
	# the latency tools pinned to one CPU goes into its own
	[ "$LAT_CPU" = none ] || [ "$PROFILE" = 1 ] || publish+=(--publish-tag pinned)
fi
rc=0
"${PY[@]}" report --out "$OUT" "${publish[@]}" \
	--meta "command=$CMDLINE" \
	--meta "date=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
	--meta "kernel=$(uname -r)" \
	--meta "cores=$(nproc)" \
	--meta "cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)" \
	--meta "commit=$COMMIT" \
	--meta "haproxy=$(haproxy -v | awk 'NR == 1 { print $3 }')" \
	--meta "rounds=$ROUNDS" --meta "modes=$MODES" --meta "workloads=$WORKLOADS" \
	--meta "sizes=$SIZES" --meta "latency_time=$LAT_T" --meta "iperf_time=$IPERF_T" \
	--meta "wrk_time=$WRK_T" --meta "wrk_conns=$WRK_CONNS" \
	--meta "proxy_threads=$PROXY_THREADS" --meta "nginx_workers=$NGINX_WORKERS" \
	--meta "cli=$CLI_ID" --meta "latency_cpu=$LAT_CPU" --meta "quick=$QUICK" --meta "profile=$PROFILE" --meta "splice_budget=${SPLICE_BUDGET:-default}" --meta "elapsed_s=$(($(date +%s) - START))" || rc=$?
[ -f "$OUT/report.md" ] && cat "$OUT/report.md"
sm_log "results: $OUT/report.md $OUT/results.json $OUT/plot.png"
exit "$rc"
