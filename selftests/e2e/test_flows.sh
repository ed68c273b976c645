#!/usr/bin/env bash
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# sockmesh flows: one record per captured connection at its open, every
# interval while it is open, and at its close, through HAProxy + sockmesh.
# 100 parallel connections each appear once at open and once at close with
# the bytes the client sent and received; a 30 s connection appears in the
# periodic records with its bytes so far; a connection that fell back to
# the TCP stack says why, one that was never spliced has TCP's counts; the
# tap and flow events run together; bad input, two consumers and one
# killed -9 leave nothing behind.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

e2e_init flows
e2e_need_sockmesh
e2e_need_sidecar
e2e_topology

MIB=1048576
head -c $((16 * MIB)) /dev/urandom >"$TMP/bulk.bin"
head -c "$MIB" /dev/urandom >"$TMP/down.bin"
e2e_pyserver hash4 - "$SRV" hash-server "$E2E_SRV4A" 9000
e2e_pyserver bulk4 - "$SRV" send-server "$E2E_SRV4A" 9103 "$TMP/bulk.bin"
e2e_pyserver down4 - "$SRV" send-server "$E2E_SRV4A" 9101 "$TMP/down.bin"
e2e_haproxy_start hap "$CG" "$POD"
sm_cli enable --cgroup "$CG"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

FLOWS_PID=
# flows_start OUT ARGS...: sockmesh flows -j --follow in the background,
# JSON lines to OUT; returns once its programs are attached
flows_start() {
	local f=$1
	shift
	e2e_cli_bg flows "$f" "$f.err" following flows -j --follow "$@" || return 1
	FLOWS_PID=$E2E_BG_PID
}

# flows_stop OUT: SIGINT after the last records had time to arrive
flows_stop() {
	sleep 0.5
	kill -INT "$FLOWS_PID"
	wait "$FLOWS_PID"
	sm_log "    $(grep 'sockmesh flows:' "$1.err" | tail -1)"
}

# check_each FLOWS CLIENTS: every connection the parallel client printed
# (local address, bytes sent and received) has one open and one close
# record with those bytes, to the original destination; prints a summary
check_each() {
	"$E2E_PY" - "$1" "$2" "$E2E_SRV4A:9000" "$CG" <<'PY'
import json, sys
flows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
clients = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
server, cg = sys.argv[3], sys.argv[4]
by = {}
for f in flows:
    by.setdefault(f["client"], []).append(f)
bad = []
for c in clients:
    recs = by.get(c["local"], [])
    opens = [r for r in recs if r["event"] == "open"]
    closes = [r for r in recs if r["event"] == "close"]
    if len(opens) != 1 or len(closes) != 1:
        bad.append("%s: %d open, %d close records" % (c["local"], len(opens), len(closes)))
        continue
    r = closes[0]
    want = (server, "outbound", "cgroup:" + cg, "spliced", c["sent"], c["received"], "python3")
    got = (r["server"], r["direction"], r["scope"], r["path"], r["bytes_to_server"],
           r["bytes_to_client"], r["command"])
    if got != want:
        bad.append("%s: close record %s, want %s" % (c["local"], got, want))
    if not r["pid"] or r["duration_s"] <= 0 or r["duration_s"] > 60:
        bad.append("%s: pid %s duration %s" % (c["local"], r["pid"], r["duration_s"]))
if bad:
    sys.exit("; ".join(bad[:5]) + (" (and %d more)" % (len(bad) - 5) if len(bad) > 5 else ""))
print("%d connections, %d records" % (len(clients), len(flows)))
PY
}

hundred_parallel_connections() {
	local f="$TMP/f1.jsonl"
	flows_start "$f" --cgroup "$CG"
	e2e_tcptool "$CG" "$POD" parallel "$E2E_SRV4A" 9000 --count 100 --size 5000 >"$TMP/clients1"
	flows_stop "$f"
	assert_eq "$(wc -l <"$TMP/clients1")" 100 "connections the client made"
	assert_eq "$(check_each "$f" "$TMP/clients1")" "100 connections, 200 records" \
		"each connection: one open, one close, its bytes both ways"
}

long_connection_in_periodic_records() {
	local f="$TMP/f2.jsonl" out
	# default interval (10 s): a 30 s connection is seen while open
	flows_start "$f" --cgroup "$CG"
	e2e_tcptool "$CG" "$POD" parallel "$E2E_SRV4A" 9000 --count 1 --size 200000 --hold 32 >"$TMP/clients2"
	flows_stop "$f"
	out=$("$E2E_PY" - "$f" "$TMP/clients2" <<'PY'
import json, sys
c = json.loads(open(sys.argv[2]).readline())
recs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
recs = [r for r in recs if r["client"] == c["local"]]
ups = [r for r in recs if r["event"] == "update"]
close = [r for r in recs if r["event"] == "close"]
sent = [r["bytes_to_server"] for r in ups]
durs = [r["duration_s"] for r in ups]
ok = sent == sorted(sent) and all(0 < b < c["sent"] for b in sent) and \
    all(r["bytes_to_client"] == 0 for r in ups)
print(len(ups), "updates", "bytes-so-far-ok" if ok else "bytes %s of %d" % (sent, c["sent"]),
      "increasing" if durs == sorted(durs) and len(set(durs)) == len(durs) else "durations %s" % durs,
      "close", close[0]["bytes_to_server"] == c["sent"] and close[0]["duration_s"] >= 30 if close else None)
PY
)
	assert_match "$out" "^[23] updates bytes-so-far-ok increasing close True$" \
		"periodic records of the 30 s connection (its bytes so far), then its close"
}

fallback_and_tcp_paths() {
	local f="$TMP/f3.jsonl" other rec
	# a late reader: HAProxy gets the splice budget ahead of it and takes
	# the TCP stack; a scope with splicing off: TCP's own counts
	other=$(sm_cgroup nosplice)
	sm_cli enable --cgroup "$other" --no-splice
	flows_start "$f"
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" 9103 --out "$TMP/got.bulk" --delay 2 --print-local 2>"$TMP/local3"
	e2e_tcptool "$other" "$POD" client "$E2E_SRV4A" 9101 --out "$TMP/got.down" --print-local 2>"$TMP/local4"
	flows_stop "$f"
	sm_cli disable --cgroup "$other"
	assert_eq "$(sha_of "$TMP/got.bulk")" "$(sha_of "$TMP/bulk.bin")" "16 MiB download the app received"
	rec=$(jq -c --arg c "$(awk '{print $2}' "$TMP/local3")" \
		'select(.client == $c and .event == "close") | [.path, .bytes_to_client, .bytes_by_path.tcp[1] > 0, .bytes_by_path.spliced[1] > 0]' "$f")
	assert_match "$rec" "^\\[\"fallback:budget\",$((16 * MIB)),true,true\\]$" \
		"the fallen-back download: path and why, bytes, both paths counted"
	rec=$(jq -c --arg c "$(awk '{print $2}' "$TMP/local4")" \
		'select(.client == $c) | [.event, .scope, .path, .bytes_to_server, .bytes_to_client]' "$f" | tr '\n' ' ')
	assert_eq "$rec" "[\"open\",\"cgroup:$other\",\"tcp\",null,null] [\"close\",\"cgroup:$other\",\"tcp\",0,$MIB] " \
		"a connection never spliced: TCP's counts at its close"
	assert_eq "$(sha_of "$TMP/got.down")" "$(sha_of "$TMP/down.bin")" "1 MiB download the unspliced app received"
}

with_the_tap() {
	local f="$TMP/f4.jsonl" p="$TMP/t4.pcapng" tap
	flows_start "$f" --cgroup "$CG"
	"$SM_CLI" --pin-dir "$PIN" -v tap --cgroup "$CG" -w "$p" 2>"$p.err" &
	tap=$!
	_sm_record pids "$tap"
	for _ in $(seq 100); do grep -q tapping "$p.err" && break; sleep 0.1; done
	e2e_tcptool "$CG" "$POD" parallel "$E2E_SRV4A" 9000 --count 10 --size 100000 >"$TMP/clients4"
	sleep 0.5
	kill -INT "$tap"
	wait "$tap"
	flows_stop "$f"
	assert_eq "$(check_each "$f" "$TMP/clients4")" "10 connections, 20 records" "flow records with a tap running"
	# the tap got every byte of them too: the upload's bytes per connection
	assert_eq "$(command tshark -r "$p" -Y 'tcp.dstport == 9000' -T fields -e tcp.len 2>/dev/null | awk '{n += $1} END {print n}')" \
		"$(jq -s 'map(.sent) | add' "$TMP/clients4")" "client -> server bytes in the tap"
}

# The kernel fast path: a pod whose reference sidecar hands every
# connection to the kernel (--fast-path). upstream -> app goes through the
# sidecar's downstream socket into the app's: counted, exact. app ->
# upstream, once the app's sends go out of the sidecar's upstream socket
# (egress redirect), is not countable per send (a send that socket cannot
# take whole is offered again): its bytes are not known (null), never wrong.
fast_path_flows() {
	local f="$TMP/f5.jsonl" cg2 pod2 rec
	e2e_fastpath_pod "$TMP/bulk.bin"
	cg2=$FP_CG pod2=$FP_POD
	flows_start "$f" --cgroup "$cg2"
	e2e_tcptool "$cg2" "$pod2" client 10.78.0.2 9103 --out "$TMP/got.fp" --print-local 2>"$TMP/local5"
	e2e_tcptool "$cg2" "$pod2" client 10.78.0.2 9000 --send "$TMP/bulk.bin" --shut-wr --print-local \
		>"$TMP/reply5" 2>"$TMP/local6"
	flows_stop "$f"
	sm_cli disable --cgroup "$cg2"
	assert_eq "$(sha_of "$TMP/got.fp")" "$(sha_of "$TMP/bulk.bin")" "fast-path download the app received"
	rec=$(jq -c --arg c "$(awk '{print $2}' "$TMP/local5")" \
		'select(.client == $c and .event == "close") | [.bytes_to_server, .bytes_to_client]' "$f")
	assert_eq "$rec" "[0,$((16 * MIB))]" "the download's close record: its bytes, exact"
	rec=$(jq -c --arg c "$(awk '{print $2}' "$TMP/local6")" \
		'select(.client == $c and .event == "close") | [.path, .bytes_to_server, .bytes_to_client]' "$f")
	# the sidecar switches after relaying the first bytes; under emulation
	# the upload may end before (then all of it spliced and counted), or
	# the kernel may hold the app's bytes for the sidecar's relay until it
	# falls a budget behind (then over TCP, counted: fallback:budget)
	if [[ $rec == '["fast-path"'* ]]; then
		assert_eq "$rec" "[\"fast-path\",null,$(wc -c <"$TMP/reply5")]" \
			"the upload's close record: bytes to the server not known, back exact"
	elif [[ $rec == '["fallback'* ]]; then
		assert_eq "$rec" "[\"fallback:budget\",$((16 * MIB)),$(wc -c <"$TMP/reply5")]" \
			"the upload's close record (held for the sidecar's relay, a budget behind)"
	else
		assert_eq "$rec" "[\"spliced\",$((16 * MIB)),$(wc -c <"$TMP/reply5")]" \
			"the upload's close record (not switched before its end)"
	fi
}

bad_input_and_leftovers() {
	local other args
	other=$(sm_cgroup other)
	assert_exit 2 "exit status, scope not enrolled" sm_cli flows --cgroup "$other"
	assert_match "$(cat "$TMP/stderr")" "flows: '.*other' is not enrolled" "its message"
	for args in "--interval 0" "--interval x" "--max-flows 0" "--ring-size 5000" "-c 0" "--duration 0" \
		"--follow --duration 5" "--port 80"; do
		# shellcheck disable=SC2086 # split on purpose
		assert_exit 2 "exit status, flows $args" sm_cli flows --cgroup "$CG" $args
	done

	# two consumers: the second says who follows already
	flows_start "$TMP/a.jsonl" --cgroup "$CG"
	assert_exit 1 "exit status, a second consumer" sm_cli flows --cgroup "$CG" --duration 1
	assert_match "$(cat "$TMP/stderr")" "already followed on this instance \\(pid $FLOWS_PID\\)" "its message"
	assert_match "$(sm_cli status)" "flows: followed \\(pid $FLOWS_PID\\)" "status while following"
	assert_eq "$(bpftool map dump pinned "$PIN/map_data_flows" -j | jq '.[0].formatted.value[".data.flows"][0].sm_flows_on')" 1 \
		"the data path's flows word while following"

	# killed -9: its programs go with it; the next send turns the check off
	kill -9 "$FLOWS_PID"
	wait "$FLOWS_PID" 2>/dev/null || true
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" 9101 --out "$TMP/got.after"
	assert_eq "$(sha_of "$TMP/got.after")" "$(sha_of "$TMP/down.bin")" "download after the consumer was killed"
	assert_match "$(sm_cli status)" "flows: not followed" "status after kill -9"
	assert_eq "$(bpftool map dump pinned "$PIN/map_data_flows" -j | jq '.[0].formatted.value[".data.flows"][0].sm_flows_on')" 0 \
		"the data path's flows word (sm_flows_on) after one more connection"
	# a table without -j, until its 2 records (the open and the close)
	e2e_cli_bg table "$TMP/table" "$TMP/table.err" following flows --cgroup "$CG" --interval 60 -c 2
	local t=$E2E_BG_PID
	e2e_tcptool "$CG" "$POD" client "$E2E_SRV4A" 9101 --out "$TMP/got.table"
	timeout 30 tail --pid="$t" -f /dev/null || kill -INT "$t"
	wait "$t"
	assert_match "$(head -1 "$TMP/table")" "^TIME +EVENT +DIR +SCOPE +PID +COMMAND +CLIENT +SERVER +PATH" "the table's header"
	assert_match "$(grep -c " close .* $E2E_SRV4A:9101 .* spliced .* $MIB " "$TMP/table")" "^1$" "the table's close row"
}

e2e_subtest "100 parallel connections: one open and one close record each, with their bytes" hundred_parallel_connections
e2e_subtest "a 30 s connection: periodic records with its bytes so far" long_connection_in_periodic_records
e2e_subtest "fallen back to the TCP stack, and never spliced: path and bytes" fallback_and_tcp_paths
e2e_subtest "flow events and the tap at once: both complete" with_the_tap
e2e_subtest "kernel fast path: the download exact, the upload's bytes not known, never wrong" fast_path_flows
e2e_subtest "bad input, two consumers, one killed -9: clear errors, nothing left" bad_input_and_leftovers
e2e_finish
