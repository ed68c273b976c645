#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# sockmesh tap: spliced traffic, which tcpdump cannot see, written as pcapng
# that tshark reads as ordinary TCP. Transfers through HAProxy + sockmesh
# (spliced, fallen back to the stack with a small splice budget, IPv6) are
# reassembled by `tshark -z follow,tcp,raw` into exactly the bytes sent;
# every frame's payload sits at its sequence offset in the file that was
# sent; comments name the sender's pid and command and the scope; a tiny
# ring loses records without ever showing a wrong byte; bad input, two taps
# and a tap killed -9 leave nothing behind; a connection captured but never
# spliced is whole with its original destination; the kernel fast path's
# upstream -> app direction is whole, its app -> upstream direction in the
# sidecar's upstream connection. Replay: a tapped HTTP request sent again to a second
# nginx arrives there the same.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init tap
e2e_need_sockmesh
command -v tshark >/dev/null || sm_die "tshark not installed (scripts/bootstrap.sh installs it)"
e2e_topology

MIB=1048576
head -c "$MIB" /dev/urandom >"$TMP/down.bin"
head -c "$MIB" /dev/urandom >"$TMP/up.bin"
head -c $((16 * MIB)) /dev/urandom >"$TMP/bulk.bin"
e2e_pyserver down4 - "$SRV" send-server "$E2E_SRV4A" 9101 "$TMP/down.bin"
e2e_pyserver down6 - "$SRV" send-server "$E2E_SRV6" 9102 "$TMP/down.bin"
e2e_pyserver bulk4 - "$SRV" send-server "$E2E_SRV4A" 9103 "$TMP/bulk.bin"
e2e_pyserver hash4 - "$SRV" hash-server "$E2E_SRV4A" 9000
e2e_nginx_start web "$SRV" "$E2E_SRV4A:80 web" "$E2E_SRV4A:8090 shadow"
e2e_haproxy_start hap "$CG" "$POD"
# IPv6 apps go to [::1]:15001: the reference sidecar there
e2e_sidecar_start car "$CG" "$POD" "[::1]:15001"
sm_cli enable --cgroup "$CG"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }
# tshark as root says so on every run: keep its other complaints
tshark() { command tshark "$@" 2> >(grep -v '^Running as user "root"' >&2); }

TAP_PID=
# tap_start FILE ARGS...: sockmesh tap in the background, writing FILE;
# returns once its programs are attached
tap_start() {
	local f=$1
	shift
	e2e_cli_bg tap /dev/null "$f.err" tapping tap -w "$f" "$@" || return 1
	TAP_PID=$E2E_BG_PID
}

# tap_stop FILE: SIGINT, wait; its summary line goes to the log
tap_stop() {
	kill -INT "$TAP_PID"
	wait "$TAP_PID"
	sm_log "    $(grep 'sockmesh tap:' "$1.err" | tail -1)"
}

# follow FILE STREAM DIR OUT: the bytes tshark reassembles of one direction
# (0: client -> server, 1: back) of TCP stream STREAM
follow() {
	tshark -r "$1" -q -z "follow,tcp,raw,$2" | "$E2E_PY" -c '
import sys
want = sys.argv[1] == "1"
out = bytearray()
body = False
for line in sys.stdin:
    if line.startswith("====="):
        body = not body if out or body else True
        continue
    if not body or not line.strip() or line.startswith(("Follow:", "Filter:", "Node ")):
        continue
    if line.startswith("\t") == want:
        out += bytes.fromhex(line.strip())
sys.stdout.buffer.write(out)' "$3" >"$4"
}

# frames_at_offsets FILE SENT DIR PORT [FILTER]: every payload tshark shows
# in direction DIR (0: client -> server) of the connections to server port
# PORT (and FILTER) is the sent file's bytes at its relative sequence
# number; prints "frames bytes" checked
frames_at_offsets() {
	local file=$1 sent=$2 dir=$3 port=$4 extra=${5:-frame}
	tshark -r "$file" -o tcp.relative_sequence_numbers:TRUE -o tcp.analyze_sequence_numbers:TRUE \
		-Y "tcp.len > 0 && tcp.port == $port && ($extra)" -T fields -e tcp.stream -e tcp.srcport -e tcp.dstport -e tcp.seq -e tcp.payload |
		"$E2E_PY" -c '
import sys
sent = open(sys.argv[1], "rb").read()
want_dir = int(sys.argv[2])
frames = nbytes = 0
for line in sys.stdin:
    stream, sport, dport, seq, payload = line.rstrip("\n").split("\t")
    if not payload:
        continue
    d = 0 if int(sport) > int(dport) else 1
    if d != want_dir:
        continue
    data = bytes.fromhex(payload.replace(":", ""))
    off = int(seq) - 1
    if sent[off:off + len(data)] != data:
        sys.exit("frame at offset %d (%d bytes) differs from what was sent" % (off, len(data)))
    frames += 1
    nbytes += len(data)
print(frames, nbytes)' "$sent" "$dir"
}

spliced_download_and_upload_reassemble() {
	local f="$TMP/t1.pcapng" s0 s1 reply
	s0=$(e2e_stats --cgroup "$CG")
	tap_start "$f" --cgroup "$CG"
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" 9101 --out "$TMP/got.down"
	reply=$(e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" 9000 --send "$TMP/up.bin" --shut-wr)
	tap_stop "$f"
	s1=$(e2e_stats --cgroup "$CG")
	assert_eq "$(sha_of "$TMP/got.down")" "$(sha_of "$TMP/down.bin")" "download the app received"
	assert_eq "$reply" "$(sha_of "$TMP/up.bin") $MIB" "upload the server received"
	assert_deltas "$s0" "$s1" "two spliced transfers" captured=2 'splice_sockets=*' 'splice_msgs=*' \
		'splice_bytes=*' splice_budget_fallbacks=0 splice_miss=0 'splice_fin_held=*' \
		'origdst_published=*' 'origdst_answered=*' 'bypass_proxy_uid=*' 'origdst_stored=*' \
		'origdst_asked=*'
	assert_eq "$(tshark -r "$f" -T fields -e tcp.stream | sort -u | wc -l)" 2 "TCP streams in the file"
	# the real endpoints: the original destination, never the proxy's 15001
	assert_eq "$(tshark -r "$f" -Y 'tcp.port == 15001' | wc -l)" 0 "frames to or from 127.0.0.1:15001"
	assert_eq "$(tshark -r "$f" -Y "ip.dst == $E2E_SRV4A && tcp.dstport == 9101 && tcp.flags.syn == 1" | wc -l)" 1 \
		"SYN to the original destination $E2E_SRV4A:9101"
	follow "$f" 0 1 "$TMP/f.down"
	follow "$f" 1 0 "$TMP/f.up"
	assert_eq "$(sha_of "$TMP/f.down")" "$(sha_of "$TMP/down.bin")" "tshark follow: the download, server -> client"
	assert_eq "$(sha_of "$TMP/f.up")" "$(sha_of "$TMP/up.bin")" "tshark follow: the upload, client -> server"
	assert_match "$(frames_at_offsets "$f" "$TMP/down.bin" 1 9101)" "^[0-9]+ $MIB$" "download frames at their offsets"
	assert_eq "$(tshark -r "$f" -Y 'tcp.analysis.lost_segment' | wc -l)" 0 "segments tshark finds missing"
	assert_eq "$(tshark -r "$f" -Y 'tcp.flags.fin == 1' | wc -l)" 4 "FINs (two each connection)"
	# comments: who sent each frame, the scope, the path
	local c
	c=$(tshark -r "$f" -Y "tcp.srcport == 9101 && tcp.len > 0" -T fields -e frame.comment | sed -n 1p)
	assert_match "$c" "^pid [0-9]+ \\(haproxy\\) scope cgroup:$CG; spliced$" "a download frame's comment"
	c=$(tshark -r "$f" -Y "tcp.dstport == 9000 && tcp.len > 0" -T fields -e frame.comment | sed -n 1p)
	assert_match "$c" "^pid [0-9]+ \\(python3\\) scope cgroup:$CG; spliced$" "an upload frame's comment"
	assert_match "$(tshark -r "$f" -T fields -e frame.interface_name | sort -u)" "^sockmesh:cgroup:$CG$" "interface"
}

fallen_back_download_reassembles() {
	local f="$TMP/t2.pcapng" s0 s1
	s0=$(e2e_stats --cgroup "$CG")
	tap_start "$f" --cgroup "$CG" --port 9103
	# a late reader: HAProxy gets the splice budget (8 MiB) ahead of it and
	# takes the TCP stack
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" 9103 --out "$TMP/got.bulk" --delay 2
	tap_stop "$f"
	s1=$(e2e_stats --cgroup "$CG")
	assert_eq "$(sha_of "$TMP/got.bulk")" "$(sha_of "$TMP/bulk.bin")" "16 MiB download the app received"
	assert_ge "$(($(e2e_counter "$s1" splice_budget_fallbacks) - $(e2e_counter "$s0" splice_budget_fallbacks)))" 1 \
		"budget fallbacks during it"
	follow "$f" 0 1 "$TMP/f.bulk"
	assert_eq "$(sha_of "$TMP/f.bulk")" "$(sha_of "$TMP/bulk.bin")" "tshark follow: the 16 MiB download"
	assert_ge "$(tshark -r "$f" -Y 'frame.comment contains "tcp stack"' | wc -l)" 1 "frames marked as taken by the TCP stack"
	assert_ge "$(tshark -r "$f" -Y 'frame.comment contains "spliced"' | wc -l)" 1 "frames marked spliced"
}

ipv6_download_reassembles() {
	local f="$TMP/t3.pcapng"
	tap_start "$f" --cgroup "$CG" --port 9102
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV6" 9102 --out "$TMP/got.down6"
	tap_stop "$f"
	assert_eq "$(sha_of "$TMP/got.down6")" "$(sha_of "$TMP/down.bin")" "IPv6 download the app received"
	assert_eq "$(tshark -r "$f" -Y "ipv6.dst == $E2E_SRV6 && tcp.flags.syn == 1 && tcp.flags.ack == 0" | wc -l)" 1 \
		"SYN to [$E2E_SRV6]:9102"
	follow "$f" 0 1 "$TMP/f.down6"
	assert_eq "$(sha_of "$TMP/f.down6")" "$(sha_of "$TMP/down.bin")" "tshark follow: the IPv6 download"
}

# Captured but never spliced (the policy turned splice off): the app's
# connection to its proxy is plain TCP on loopback, where tcpdump shows
# 127.0.0.1:15001; the tap follows the app's socket by its segments and
# shows the original destination, the handshake, the bytes and the FINs.
plain_capture_reassembles() {
	local f="$TMP/t7.pcapng" s0 s1 reply c
	sm_cli enable --cgroup "$CG" --no-splice
	s0=$(e2e_stats --cgroup "$CG")
	tap_start "$f" --cgroup "$CG"
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" 9101 --out "$TMP/got.pdown"
	reply=$(e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" 9000 --send "$TMP/up.bin" --shut-wr)
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV6" 9102 --out "$TMP/got.pdown6"
	tap_stop "$f"
	s1=$(e2e_stats --cgroup "$CG")
	sm_cli enable --cgroup "$CG"
	assert_eq "$(sha_of "$TMP/got.pdown")" "$(sha_of "$TMP/down.bin")" "download the app received"
	assert_eq "$reply" "$(sha_of "$TMP/up.bin") $MIB" "upload the server received"
	assert_eq "$(sha_of "$TMP/got.pdown6")" "$(sha_of "$TMP/down.bin")" "IPv6 download the app received"
	assert_eq "$(($(e2e_counter "$s1" captured) - $(e2e_counter "$s0" captured)))" 3 "connections captured"
	assert_eq "$(($(e2e_counter "$s1" splice_sockets) - $(e2e_counter "$s0" splice_sockets)))" 0 "sockets spliced"
	assert_eq "$(tshark -r "$f" -T fields -e tcp.stream | sort -u | wc -l)" 3 "TCP streams in the file"
	assert_eq "$(tshark -r "$f" -Y 'tcp.port == 15001' | wc -l)" 0 "frames to or from the proxy's 15001"
	assert_eq "$(tshark -r "$f" -Y "ip.dst == $E2E_SRV4A && tcp.dstport == 9101 && tcp.flags.syn == 1" | wc -l)" 1 \
		"SYN to the original destination $E2E_SRV4A:9101"
	follow "$f" 0 1 "$TMP/f.pdown"
	follow "$f" 1 0 "$TMP/f.pup"
	follow "$f" 2 1 "$TMP/f.pdown6"
	assert_eq "$(sha_of "$TMP/f.pdown")" "$(sha_of "$TMP/down.bin")" "tshark follow: the download, server -> client"
	assert_eq "$(sha_of "$TMP/f.pup")" "$(sha_of "$TMP/up.bin")" "tshark follow: the upload, client -> server"
	assert_eq "$(sha_of "$TMP/f.pdown6")" "$(sha_of "$TMP/down.bin")" "tshark follow: the IPv6 download"
	assert_match "$(frames_at_offsets "$f" "$TMP/down.bin" 1 9101)" "^[0-9]+ $MIB$" "download frames at their offsets"
	assert_match "$(frames_at_offsets "$f" "$TMP/up.bin" 0 9000)" "^[0-9]+ $MIB$" "upload frames at their offsets"
	assert_eq "$(tshark -r "$f" -Y 'tcp.analysis.lost_segment' | wc -l)" 0 "segments tshark finds missing"
	assert_eq "$(tshark -r "$f" -Y 'tcp.flags.fin == 1' | wc -l)" 6 "FINs (two each connection)"
	assert_eq "$(tshark -r "$f" -Y 'frame.comment contains "spliced"' | wc -l)" 0 "frames marked spliced"
	c=$(tshark -r "$f" -Y "tcp.dstport == 9000 && tcp.len > 0" -T fields -e frame.comment | sed -n 1p)
	if [ "$(printf '%s\n' 6.2 "$(uname -r)" | sort -V | head -1)" = 6.2 ]; then
		# the app's connect names it where sockops may ask (6.2 and later)
		assert_match "$c" "^pid [0-9]+ \\(python3\\) scope cgroup:$CG; tcp stack$" "an upload frame's comment"
	else
		assert_match "$c" "^pid \\? scope cgroup:$CG; tcp stack$" "an upload frame's comment (6.1: no pid)"
	fi
}

tiny_ring_loses_but_never_lies() {
	local f="$TMP/t4.pcapng" lost
	tap_start "$f" --cgroup "$CG" --port 9103 --ring-size 16K
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" 9103 --out "$TMP/got.bulk2"
	tap_stop "$f"
	assert_eq "$(sha_of "$TMP/got.bulk2")" "$(sha_of "$TMP/bulk.bin")" "16 MiB download through a 16 KiB tap ring"
	lost=$(sed -n 's/.*lost \([0-9]*\) records.*/\1/p' "$f.err")
	assert_ge "$lost" 1 "records the tap reports lost"
	assert_ge "$(tshark -r "$f" -Y 'tcp.analysis.lost_segment' | wc -l)" 1 "gaps tshark flags"
	assert_ge "$(tshark -r "$f" -Y 'frame.comment contains "not captured"' | wc -l)" 1 "frames whose comment counts the bytes lost"
	assert_match "$(frames_at_offsets "$f" "$TMP/bulk.bin" 1 9103)" "^[1-9][0-9]* [1-9][0-9]*$" "every frame's bytes are the sent bytes at its offset (some frames captured)"
}

streams_live_to_tshark() {
	local out="$TMP/live.txt"
	# -w - | tshark -r -: frames arrive while the tap runs; -c ends it
	if [ -s "$TMP/tap.pid" ]; then kill -9 "$(cat "$TMP/tap.pid")" 2>/dev/null || true; fi
	("$SM_CLI" --pin-dir "$PIN" tap --cgroup "$CG" --port 9101 -c 4 -w - 2>"$TMP/live.err" |
		tshark -r - -T fields -e tcp.srcport -e tcp.len >"$out" 2>/dev/null) &
	local pipe=$!
	sleep 1
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" 9101 --out "$TMP/got.live"
	wait "$pipe" || sm_die "tap | tshark failed: $(cat "$TMP/live.err")"
	assert_eq "$(sha_of "$TMP/got.live")" "$(sha_of "$TMP/down.bin")" "download during a piped tap"
	assert_ge "$(awk '$2 > 0' "$out" | wc -l)" 4 "payload frames tshark read from the pipe"
}

bad_input_and_leftovers() {
	local rc
	set +e
	sm_cli tap --cgroup "$CG" -w /proc/nonexistent/x.pcapng 2>"$TMP/e1"
	rc=$?
	set -e
	assert_eq "$rc" 1 "exit status, unwritable file"
	assert_match "$(cat "$TMP/e1")" "-w '/proc/nonexistent/x.pcapng': No such file or directory" "its message"
	local other
	other=$(sm_cgroup other)
	set +e
	sm_cli tap --cgroup "$other" -w "$TMP/x.pcapng" 2>"$TMP/e2"
	rc=$?
	set -e
	assert_eq "$rc" 2 "exit status, scope not enrolled"
	assert_match "$(cat "$TMP/e2")" "is not enrolled" "its message"
	for args in "--port 0" "--port 70000" "--snaplen x" "--ring-size 5000" "-c 0" "--pid 0" "--duration 0"; do
		set +e
		# shellcheck disable=SC2086 # split on purpose
		sm_cli tap --cgroup "$CG" $args -w "$TMP/x.pcapng" 2>"$TMP/e3"
		rc=$?
		set -e
		assert_eq "$rc" 2 "exit status, tap $args ($(cat "$TMP/e3"))"
	done
	set +e
	sm_cli tap --cgroup "$CG" 2>"$TMP/e4"
	rc=$?
	set -e
	assert_eq "$rc" 2 "exit status, no -w"

	# two taps at once: the second says who holds it
	tap_start "$TMP/a.pcapng" --cgroup "$CG"
	set +e
	sm_cli tap --cgroup "$CG" -w "$TMP/b.pcapng" 2>"$TMP/e5"
	rc=$?
	set -e
	assert_eq "$rc" 1 "exit status, a second tap"
	assert_match "$(cat "$TMP/e5")" "a tap is already running on this instance \\(pid $TAP_PID\\)" "its message"
	assert_match "$(sm_cli status)" "tap: running \\(pid $TAP_PID\\)" "status while tapping"
	assert_eq "$(bpftool map dump pinned "$PIN/map_data_tap" -j | jq '.[0].formatted.value[".data.tap"][0].sm_tap_on')" 1 \
		"the data path's tap word while tapping"
	assert_eq "$(bpftool cgroup show "$CG" | grep -c 'tap_skb_')" 2 "the tap's segment programs on the attach cgroup"

	# killed -9: its links go with it; the next send turns the hooks' check off
	kill -9 "$TAP_PID"
	wait "$TAP_PID" 2>/dev/null || true
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" 9101 --out "$TMP/got.after"
	assert_eq "$(sha_of "$TMP/got.after")" "$(sha_of "$TMP/down.bin")" "download after the tap was killed"
	assert_match "$(sm_cli status)" "tap: none" "status after kill -9"
	assert_eq "$(bpftool cgroup show "$CG" | grep -c 'tap_skb_' || true)" 0 "the tap's segment programs after kill -9"
	assert_eq "$(bpftool map dump pinned "$PIN/map_data_tap" -j | jq '.[0].formatted.value[".data.tap"][0].sm_tap_on')" 0 \
		"the data path's tap word (sm_tap_on) after one more send"
	# and a new tap works again
	tap_start "$TMP/c.pcapng" --cgroup "$CG" --port 9101
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" 9101 --out "$TMP/got.again"
	tap_stop "$TMP/c.pcapng"
	follow "$TMP/c.pcapng" 0 1 "$TMP/f.again"
	assert_eq "$(sha_of "$TMP/f.again")" "$(sha_of "$TMP/down.bin")" "tshark follow after a new tap"
}

# The kernel fast path: a second pod whose reference sidecar hands every
# connection to the kernel (--fast-path). upstream -> app goes through the
# sidecar's downstream socket's egress, whose sk_msg (run by a kernel
# worker) puts it into the app's queue: whole in the tap. app -> upstream
# goes out of the upstream socket from the app's sendmsg (egress redirect),
# which sk_msg cannot count: the app's connection has the bytes before the
# switch and one empty frame saying where the rest is: in the sidecar's
# upstream connection, which the tap follows by its segments from the
# switch on. Never a wrong byte.
fast_path_transfers_reassemble() {
	local f="$TMP/t6.pcapng" cg2 pod2 s0 s1 reply
	e2e_fastpath_pod "$TMP/bulk.bin"
	cg2=$FP_CG pod2=$FP_POD
	s0=$(e2e_stats --cgroup "$cg2")
	# 16 MiB each way: both connections switch long before their end, also
	# under emulation; a ring that holds the download whole
	tap_start "$f" --cgroup "$cg2" --ring-size 128M
	e2e_tcptool "$cg2" "$pod2" client 10.78.0.2 9103 --out "$TMP/got.fp"
	reply=$(e2e_tcptool "$cg2" "$pod2" client 10.78.0.2 9000 --send "$TMP/bulk.bin" --shut-wr)
	tap_stop "$f"
	s1=$(e2e_stats --cgroup "$cg2")
	assert_eq "$(sha_of "$TMP/got.fp")" "$(sha_of "$TMP/bulk.bin")" "fast-path download the app received"
	assert_eq "$reply" "$(sha_of "$TMP/bulk.bin") $((16 * MIB))" "fast-path upload the server received"
	# the sidecar switches a connection after relaying its first bytes;
	# under emulation one may end before it does (then it is all spliced)
	assert_ge "$(($(e2e_counter "$s1" fastpath_conns) - $(e2e_counter "$s0" fastpath_conns)))" 1 \
		"connections handed to the kernel"
	local app="ip.src != 10.78.0.1 && ip.dst != 10.78.0.1" leg="ip.addr == 10.78.0.1" s_app s_leg
	s_app=$(tshark -r "$f" -Y "$app && tcp.port == 9103" -T fields -e tcp.stream | sed -n 1p)
	follow "$f" "$s_app" 1 "$TMP/f.fpdown"
	assert_eq "$(sha_of "$TMP/f.fpdown")" "$(sha_of "$TMP/bulk.bin")" "tshark follow: the fast-path download"
	assert_match "$(frames_at_offsets "$f" "$TMP/bulk.bin" 0 9000 "$app")" "^[0-9]+ [0-9]+$" \
		"every upload frame's bytes are the sent bytes at its offset"
	s_app=$(tshark -r "$f" -Y "$app && tcp.port == 9000" -T fields -e tcp.stream | sed -n 1p)
	if [ "$(tshark -r "$f" -Y 'frame.comment contains "fast path: they are in this capture"' | wc -l)" -ge 1 ]; then
		# the rest of the upload: in the sidecar's upstream connection, from
		# the switch on (its first bytes are at its first captured offset)
		s_leg=$(tshark -r "$f" -Y "$leg && tcp.port == 9000 && tcp.len > 0" -T fields -e tcp.stream | sed -n 1p)
		assert_match "$s_leg" "^[0-9]+$" "the sidecar's upstream connection to :9000 is in the capture"
		follow "$f" "$s_app" 0 "$TMP/f.fpup.app"
		follow "$f" "$s_leg" 0 "$TMP/f.fpup.leg"
		assert_eq "$("$E2E_PY" -c '
import sys
sent, app, leg = (open(p, "rb").read() for p in sys.argv[1:4])
ok = sent.startswith(app) and sent.endswith(leg) and len(app) + len(leg) >= len(sent)
print("whole" if ok else "app %d leg %d of %d" % (len(app), len(leg), len(sent)))' \
			"$TMP/bulk.bin" "$TMP/f.fpup.app" "$TMP/f.fpup.leg")" whole \
			"the upload: the app's connection up to the switch, the upstream connection from it"
		assert_ge "$(tshark -r "$f" -Y "$leg && tcp.len > 0 && frame.comment contains \"fast path\"" | wc -l)" 1 \
			"upstream connection frames marked fast path"
	else
		# not switched before its end: every byte of it spliced, all in the tap
		follow "$f" "$s_app" 0 "$TMP/f.fpup"
		assert_eq "$(sha_of "$TMP/f.fpup")" "$(sha_of "$TMP/bulk.bin")" \
			"tshark follow: the upload (its connection was not switched)"
	fi
}

replay_reaches_a_shadow_server() {
	local f="$TMP/t5.pcapng"
	tap_start "$f" --cgroup "$CG" --port 80
	e2e_curl "$CG" "$POD" -A "sockmesh-replay-test/1" "http://$E2E_SRV4A/some/path?q=1" >/dev/null
	tap_stop "$f"
	sm_run - "$SRV" "$SM_CLI" replay "$f" --to "$E2E_SRV4A:8090" 2>"$TMP/replay.err" >"$TMP/replay.out" ||
		sm_die "replay failed: $(cat "$TMP/replay.err")"
	sm_log "    $(cat "$TMP/replay.err")"
	assert_eq "$(cat "$TMP/replay.out")" "replayed 1 connections" "replay's summary"
	assert_eq "$(grep -c "^$E2E_SRV4A:80 " "$TMP/web/access.log")" 1 "requests the real server saw"
	assert_eq "$(grep -c "^$E2E_SRV4A:8090 " "$TMP/web/access.log")" 1 "requests the shadow server saw"
	local want got
	want=$(grep "^$E2E_SRV4A:80 " "$TMP/web/requests.log" | cut -d' ' -f2-)
	got=$(grep "^$E2E_SRV4A:8090 " "$TMP/web/requests.log" | cut -d' ' -f2-)
	assert_match "$want" "GET /some/path\\?q=1 HTTP/1.1 sockmesh-replay-test/1" "the tapped request"
	assert_eq "$got" "$want" "the replayed request"
}

e2e_subtest "spliced 1 MiB download and upload: tshark follow gives the bytes sent" spliced_download_and_upload_reassemble
e2e_subtest "a download that fell back to the TCP stack (splice budget) is whole in the tap" fallen_back_download_reassembles
e2e_subtest "IPv6: the tap shows the original [v6] destination and the bytes" ipv6_download_reassembles
e2e_subtest "captured, never spliced (--no-splice): the original destination and the bytes, v4 and v6" plain_capture_reassembles
e2e_subtest "a 16 KiB ring overflows: lost records counted, gaps flagged, no wrong byte" tiny_ring_loses_but_never_lies
e2e_subtest "-w - streams to tshark while the tap runs" streams_live_to_tshark
e2e_subtest "bad input, two taps, a tap killed -9: clear errors, nothing left" bad_input_and_leftovers
e2e_subtest "kernel fast path: upstream -> app whole, app -> upstream in the sidecar's upstream connection, no wrong byte" fast_path_transfers_reassemble
e2e_subtest "replay: a tapped HTTP request reaches a shadow nginx the same" replay_reaches_a_shadow_server
e2e_finish
