#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Build the fuzzers into OUTDIR and run each for a bounded time from a small
# seed corpus (in a temporary directory, removed afterwards): fuzz_policy
# (the library's policy parsers), fuzz_common (the front-ends' address and
# option value parsers), fuzz_annotations (istio pod annotations),
# fuzz_cni (sockmesh-cni's environment, config and replies), then
# fuzz_pcapng (pcapng files for the reader and the replay's reassembly).
#   selftests/fuzz/run.sh OUTDIR [SECONDS] [LIBFUZZER-FLAG...]
# SECONDS (per fuzzer) defaults to 30. One line per fuzzer on stdout
# ("fuzz_cni: 1234567 execs in 30s, no crash" or "..., CRASHED (exit 1)").
# Exits non-zero on a crash, leak or timeout; the offending input is kept as
# OUTDIR/crash-* (or leak-*, timeout-*). FUZZ_KEEP_GOING=1 runs the
# remaining fuzzers after a failure (scripts/fuzz-long.sh); by default the
# first failure ends the run. FUZZ_ONLY="fuzz_policy fuzz_cni" runs only
# the fuzzers named (all of them when unset).
# Reproduce one with: OUTDIR/fuzz_policy OUTDIR/crash-... (or another fuzzer)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ $# -lt 1 ]; then
	echo "usage: $0 OUTDIR [SECONDS] [LIBFUZZER-FLAG...]" >&2
	exit 2
fi
out=$1
secs=${2:-30}
shift $(($# < 2 ? $# : 2))
if ! [[ $secs =~ ^[1-9][0-9]*$ ]]; then
	echo "run.sh: SECONDS must be a positive integer, not '$secs'" >&2
	exit 2
fi

"$here/build.sh" "$out"
out=$(cd "$out" && pwd)

work=$(mktemp -d "${TMPDIR:-/tmp}/sockmesh-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"

n=0
seed() {
	n=$((n + 1))
	printf '%s' "$1" >"$work/corpus/seed-$n"
}
seed '10.0.0.0/8'
seed '10.1.2.3/8,192.168.0.0/16'
seed ' 10.0.0.0/8 , fd00::/8 '
seed '169.254.169.254'
seed '::/0'
seed '2001:db8::1/127,::1'
seed 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/96'
seed '*'
seed '80,443'
seed ' 80 , 443 '
seed '15090,15021,15020'
seed '1,65535'
seed '65536'
seed '80,,443'
seed '80,'
seed '10.0.0.0/33'
seed '*|169.254.169.254/32|80,443|15090'
seed '10.0.0.0/8,fd00::/8|10.1.0.0/16|*|'
seed '||*|22'

cat >"$work/policy.dict" <<'DICT'
","
"/"
"*"
"|"
"."
":"
"::"
" "
"\x09"
"/0"
"/8"
"/32"
"/33"
"/128"
"/129"
"0"
"65535"
"65536"
"4294967296"
"::ffff:"
"255.255.255.255"
DICT

# fuzz NAME CORPUS [FLAG...]: run one fuzzer (its output to stderr and
# $work/NAME.log), print its line; a failure ends the run unless FUZZ_KEEP_GOING
failed=0
fuzz() {
	local name=$1 corpus=$2 rc=0 execs t0=$SECONDS
	shift 2
	if [ -n "${FUZZ_ONLY:-}" ] && [[ " $FUZZ_ONLY " != *" $name "* ]]; then
		return 0
	fi
	"$out/$name" -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$out/" "$@" "$corpus" 2>&1 | tee "$work/$name.log" >&2 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$name.log" | tail -n 1)
	if [ "$rc" = 0 ]; then
		echo "$name: ${execs:-?} execs in $((SECONDS - t0))s, no crash"
		return 0
	fi
	echo "$name: ${execs:-?} execs in $((SECONDS - t0))s, CRASHED (exit $rc); inputs in $out/"
	failed=$((failed + 1))
	if [ "${FUZZ_KEEP_GOING:-0}" != 1 ]; then
		echo "run.sh: $name failed (exit $rc); inputs in $out/" >&2
		exit "$rc"
	fi
}

fuzz fuzz_policy "$work/corpus" -dict="$work/policy.dict" "$@"

# fuzz_common: the first byte holds the SMC_ADDR_* flags (1 ADDR:PORT,
# 2 bare, 4 port only, 8 port 0); the rest is a value, or words on lines
mkdir "$work/common"
cseed() {
	n=$((n + 1))
	printf '%b' "$1" >"$work/common/seed-$n"
}
cseed '\x01127.0.0.1:15095'
cseed '\x09[::1]:0'
cseed '\x02::1'
cseed '\x03[2001:db8::1]:80'
cseed '\x048080'
cseed '\x01localhost:80'
cseed '\x01--listen\n1.2.3.4:80\n-p\n80'
cseed '\x00-ap81\n--size\n8MiB\n--mark\n0x10'
cseed '\x01stray\n--count=7\n-h'
cseed '\x00--name=\n--port\n0'
fuzz fuzz_common "$work/common" "$@"

# fuzz_annotations: a JSON object of pod annotations
mkdir "$work/annotations"
aseed() {
	n=$((n + 1))
	printf '%s' "$1" >"$work/annotations/seed-$n"
}
A=traffic.sidecar.istio.io
aseed '{}'
aseed "{\"$A/includeOutboundIPRanges\": \"10.0.0.0/8,fd00::/8\"}"
aseed "{\"$A/includeOutboundIPRanges\": \"\", \"$A/excludeOutboundPorts\": \"22\"}"
aseed "{\"$A/excludeOutboundIPRanges\": \"169.254.169.254/32\", \"$A/includeOutboundPorts\": \"*\"}"
aseed "{\"$A/includeInboundPorts\": \"*\", \"$A/excludeInboundPorts\": \"15090,15021\", \"status.sidecar.istio.io/port\": \"15020\"}"
aseed "{\"status.sidecar.istio.io/port\": \"0\", \"sidecar.istio.io/inject\": \"true\"}"
aseed "{\"$A/includeOutboundPorts\": 80}"
aseed "{\"$A/excludeOutboundIPRanges\": \"10.0.0.0/33\"} x"
cat >"$work/annotations.dict" <<DICT
"\"$A/includeOutboundIPRanges\""
"\"$A/excludeOutboundIPRanges\""
"\"$A/includeOutboundPorts\""
"\"$A/excludeOutboundPorts\""
"\"$A/includeInboundPorts\""
"\"$A/excludeInboundPorts\""
"\"$A/kubevirtInterfaces\""
"\"status.sidecar.istio.io/port\""
"\":\""
"\",\""
"\\\\u0000"
"\\\\ud800"
"*"
","
"/32"
"::"
"65535"
DICT
fuzz fuzz_annotations "$work/annotations" -dict="$work/annotations.dict" "$@"

# fuzz_cni: CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS,
# CNI_PATH, each ended by a NUL, then stdin
mkdir "$work/cni"
cni_seed() {
	n=$((n + 1))
	{
		printf '%s\0' "$1" "${2-c0ffee}" /run/netns/pod eth0 \
			"K8S_POD_NAMESPACE=shop;K8S_POD_NAME=web-1;K8S_POD_INFRA_CONTAINER_ID=c0ffee" /opt/cni/bin
		printf '%s' "$3"
	} >"$work/cni/seed-$n"
}
prev='"prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/run/netns/pod"}], "ips": [{"address": "10.1.0.5/24", "interface": 0}, {"address": "fd00::5/64"}]}'
ann='"runtimeConfig": {"io.kubernetes.cri.pod-annotations": {"sidecar.istio.io/status": "{}", "traffic.sidecar.istio.io/excludeOutboundPorts": "22"}}'
conf="{\"cniVersion\": \"1.0.0\", \"name\": \"k8s\", \"type\": \"sockmesh-cni\", \"pinDir\": \"/sys/fs/bpf/sockmesh\", $prev, $ann"
cni_seed ADD c0ffee "$conf}"
cni_seed CHECK c0ffee "$conf, \"excludeInboundPorts\": [15020, \"15021\"], \"redirectDNS\": true, \"dnsServers\": \"10.96.0.10\"}"
cni_seed ADD c0ffee "$conf, \"requireSidecar\": false, \"excludeNamespaces\": [\"kube-system\"], \"splice\": false, \"proxyPort\": 15001}"
cni_seed DEL c0ffee '{"cniVersion": "0.4.0", "name": "k8s"}'
cni_seed VERSION '' ''
cni_seed ADD 'bad id!' "$conf}"
cni_seed ADD c0ffee '{"cniVersion": "2.0.0"}'
cni_seed ADD c0ffee '{"cniVersion": "1.0.0", "name": "k8s", "prevResult": {"ips": [{"address": "nope"}]}}'
cat >"$work/cni.dict" <<'DICT'
"\x00"
"ADD"
"DEL"
"CHECK"
"VERSION"
"K8S_POD_NAME="
"K8S_POD_NAMESPACE="
"K8S_POD_INFRA_CONTAINER_ID="
";"
"\"cniVersion\""
"\"1.0.0\""
"\"0.4.0\""
"\"prevResult\""
"\"ips\""
"\"interfaces\""
"\"sandbox\""
"\"address\""
"\"interface\""
"\"runtimeConfig\""
"\"io.kubernetes.cri.pod-annotations\""
"\"sidecar.istio.io/status\""
"\"sidecar.istio.io/inject\""
"\"sockmesh.io/capture\""
"\"traffic.sidecar.istio.io/includeOutboundIPRanges\""
"\"traffic.sidecar.istio.io/excludeInboundPorts\""
"\"status.sidecar.istio.io/port\""
"\"requireSidecar\""
"\"excludeNamespaces\""
"\"pinDir\""
"\"attachCgroup\""
"\"redirectDNS\""
"\"captureAllDNS\""
"\"dnsServers\""
"\"proxyMark\""
"\"failOpen\""
"\"\\ud800\""
"\xff"
"\xe2\x82"
DICT
fuzz fuzz_cni "$work/cni" -dict="$work/cni.dict" "$@"

# fuzz_pcapng: pcapng files, each an SHB, an IDB (Ethernet, if_tsresol 9)
# and one connection's packets, built from fields written as printf %b
# escapes: u16/u32 in the section's byte order (be=1: big-endian), n16/n32
# in network order
mkdir "$work/pcapng"
be=0
n16() { printf '\\x%02x\\x%02x' $(($1 >> 8 & 255)) $(($1 & 255)); }
n32() {
	n16 $(($1 >> 16 & 65535))
	n16 $(($1 & 65535))
}
u16() {
	if [ "$be" = 1 ]; then
		n16 "$1"
	else
		printf '\\x%02x\\x%02x' $(($1 & 255)) $(($1 >> 8 & 255))
	fi
}
u32() {
	if [ "$be" = 1 ]; then
		n32 "$1"
	else
		u16 $(($1 & 65535))
		u16 $(($1 >> 16 & 65535))
	fi
}
zeros() {
	local i
	for ((i = 0; i < $1; i++)); do printf '\\x00'; done
}
shb() {
	printf '\\x0a\\x0d\\x0d\\x0a'
	u32 28
	u32 0x1a2b3c4d
	u16 1
	u16 0
	u32 -1
	u32 -1
	u32 28
}
idb() {
	u32 1
	u32 28
	u16 1
	u16 0
	u32 0
	u16 9
	u16 1
	printf '\\x09\\x00\\x00\\x00'
	u32 28
}
# tcp4|tcp6 SPORT DPORT SEQ FLAGS PAYLOAD: "LEN ESCAPES" of an Ethernet
# frame, client -> server (10.0.0.1 -> 10.96.0.10, fd00::1 -> fd00::2)
tcp() {
	n16 "$1"
	n16 "$2"
	n32 "$3"
	n32 1
	printf '\\x50\\x%02x\\xff\\xff' "$4"
	zeros 4
	printf '%s' "$5"
}
tcp4() {
	printf '%s ' $((54 + ${#5}))
	printf '\\x02\\x00\\x00\\x00\\x00\\x02\\x02\\x00\\x00\\x00\\x00\\x01\\x08\\x00\\x45\\x00'
	n16 $((40 + ${#5}))
	printf '\\x00\\x00\\x40\\x00\\x40\\x06\\x00\\x00\\x0a\\x00\\x00\\x01\\x0a\\x60\\x00\\x0a'
	tcp "$@"
}
tcp6() {
	printf '%s ' $((74 + ${#5}))
	printf '\\x02\\x00\\x00\\x00\\x00\\x02\\x02\\x00\\x00\\x00\\x00\\x01\\x86\\xdd\\x60'
	zeros 3
	n16 $((20 + ${#5}))
	printf '\\x06\\x40\\xfd'
	zeros 14
	printf '\\x01\\xfd'
	zeros 14
	printf '\\x02'
	tcp "$@"
}
# epb TS "LEN ESCAPES": an Enhanced Packet Block on interface 0
epb() {
	local len frame pad
	read -r len frame <<<"$2"
	pad=$(((4 - len % 4) % 4))
	u32 6
	u32 $((32 + len + pad))
	u32 0
	u32 0
	u32 "$1"
	u32 "$len"
	u32 "$len"
	printf '%s' "$frame"
	zeros "$pad"
	u32 $((32 + len + pad))
}
pseed() {
	local IFS=
	n=$((n + 1))
	printf '%b' "$(shb)$(idb)$*" >"$work/pcapng/seed-$n"
}
for be in 0 1; do
	pseed "$(epb 1 "$(tcp4 43210 80 1000 2 '')")" \
		"$(epb 2 "$(tcp4 43210 80 1001 24 'GET / HTTP/1.1')")" \
		"$(epb 3 "$(tcp4 43210 80 1015 17 '')")"
done
be=0
pseed "$(epb 1 "$(tcp4 43210 80 1006 16 'world')")" \
	"$(epb 2 "$(tcp4 43210 80 1001 16 'hello')")" \
	"$(epb 3 "$(tcp4 43210 80 1001 16 'hello')")" \
	"$(epb 4 "$(tcp4 43210 80 1021 16 'gap')")"
pseed "$(epb 1 "$(tcp6 40000 8080 4294967290 2 '')")" \
	"$(epb 2 "$(tcp6 40000 8080 4294967291 24 'across the wrap')")"
cat >"$work/pcapng.dict" <<'DICT'
"\x0a\x0d\x0d\x0a"
"\x4d\x3c\x2b\x1a"
"\x1a\x2b\x3c\x4d"
"\x01\x00\x00\x00"
"\x06\x00\x00\x00"
"\x09\x00\x01\x00"
"\x0e\x00\x08\x00"
"\x01\x00"
"\x08\x00"
"\x86\xdd"
"\x81\x00"
"\x45\x00"
"\x60\x00"
"\x50\x02"
"\x50\x12"
"\x50\x11"
"\x50\x18"
"\xff\xff\xff\xff"
DICT
fuzz fuzz_pcapng "$work/pcapng" -dict="$work/pcapng.dict" "$@"

if [ "$failed" != 0 ]; then
	echo "run.sh: $failed fuzzer(s) failed; inputs in $out/" >&2
	exit 1
fi
echo "run.sh: no crash in ${secs}s per fuzzer"
