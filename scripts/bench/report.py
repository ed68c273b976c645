#!/usr/bin/env python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Report generator for scripts/bench/bench.sh (python3 stdlib only).

  report.py report --out DIR [--publish DOC.md] [--meta KEY=VALUE]...
      parse DIR/raw (runs.jsonl + tool logs), write DIR/report.md,
      DIR/results.json, DIR/plot.png (gnuplot); exit 1 when a run failed or
      traffic did not take the mode's path, else 0.
  report.py haproxy-sessions SOCKET
      print the total sessions of HAProxy's `listen out` (stats socket).
  perf script -F comm,ip,sym | report.py perf-summary
      (bench.sh --profile) sort each sampled stack into where the time
      went (CATEGORIES) and print the counts as JSON.
"""

import argparse
import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys

MODES = ["direct", "iptables", "capture", "sockmesh", "car-ipt", "car", "fastpath", "tap", "flows"]
PROXIED = {"iptables", "capture", "sockmesh", "car-ipt", "car", "fastpath", "tap", "flows"}
SM_MODES = {"capture", "sockmesh", "car", "fastpath", "tap", "flows"}
MODE_DOC = {
    "direct": "no sidecar",
    "iptables": "HAProxy + nat REDIRECT (ISTIO_OUTPUT-like)",
    "capture": "HAProxy + sockmesh --no-splice",
    "sockmesh": "HAProxy + sockmesh (capture + splice)",
    "car-ipt": "sockmesh-sidecar + the same nat REDIRECT",
    "car": "sockmesh-sidecar + sockmesh (capture + splice)",
    "fastpath": "sockmesh-sidecar --fast-path + sockmesh: the kernel forwards each connection",
    "tap": "HAProxy + sockmesh, with `sockmesh tap` running on the cgroup (pcapng to /dev/null)",
    "flows": "HAProxy + sockmesh, with `sockmesh flows -j --follow` running on the cgroup (to /dev/null)",
}
# the ratio columns of the report: (mode, reference), where both ran
RATIOS = [("sockmesh", "iptables"), ("capture", "iptables"), ("car", "car-ipt"),
          ("fastpath", "car-ipt"), ("fastpath", "direct"), ("sockmesh", "direct"),
          ("car-ipt", "iptables"), ("tap", "sockmesh"), ("flows", "sockmesh")]
# (mode, reference, metric, target ratio, "<=" or ">=")
GOALS = [
    ("sockmesh", "iptables", "lat64_p50", 0.75, "<="),
    ("sockmesh", "iptables", "lat64_p99", 0.70, "<="),
    ("sockmesh", "iptables", "iperf_1", 1.5, ">="),
    ("sockmesh", "iptables", "wrk_close_cps", 1.15, ">="),
    ("sockmesh", "iptables", "cpu_req_us", 0.8, "<="),
    # kernel fast path (issue 10): against no sidecar at all ...
    ("fastpath", "direct", "lat64_p50", 1.10, "<="),
    ("fastpath", "direct", "lat64_p99", 1.20, "<="),
    ("fastpath", "direct", "iperf_1", 0.90, ">="),
    ("fastpath", "direct", "wrk_ka_rps", 0.85, ">="),
    ("fastpath", "direct", "wrk_close_cps", 0.70, ">="),
    # ... and against iptables + the same sidecar
    ("fastpath", "car-ipt", "lat64_p50", 0.5, "<="),
    ("fastpath", "car-ipt", "lat64_p99", 0.5, "<="),
    ("fastpath", "car-ipt", "iperf_1", 2.0, ">="),
]
# goals on one mode's own figures: (mode, metric, statistic over the rounds,
# target, "<=" or ">=", what the target means). "max" is the worst round;
# "spread" the largest distance of a round from the median, as a share of it.
ABS_GOALS = [
    ("sockmesh", "mem_iperf_1", "max", 8192, "<=", "32 MiB (4 KiB pages)"),
    ("sockmesh", "wrk_close_cps", "spread", 0.15, "<=", "every round within 15 % of the median"),
]
# a fast-path sidecar may read (rchar) at most this share of a bulk run's bytes
FASTPATH_MAX_READ = 0.01
SHORT = {
    "iperf_1": "iperf3 1 stream", "iperf_4": "iperf3 4 streams",
    "wrk_ka_rps": "keep-alive req/s", "wrk_close_cps": "close conn/s",
    "wrk_ka_p99": "keep-alive p99", "wrk_ka_max": "keep-alive max", "wrk_close_p99": "close p99",
    "cpu_req_us": "CPU/req", "cpu_conn_us": "CPU/conn", "cgcpu_req_us": "CPU/req (cgroups)",
}
# --profile: a sample belongs to the category of the first frame, from the
# leaf up, that matches one of these (tried in this order on each frame).
# Locks, allocations and RCU match nothing, so they count for their caller.
CATEGORIES = [
    ("idle", r"(pv_native_safe_halt|default_idle|cpuidle_|do_idle|poll_idle|acpi_idle|mwait_idle|intel_idle)"),
    ("BPF programs, maps, helpers",
     r"(bpf_prog_|__bpf_prog_|bpf_trampoline|htab_|__htab_|lookup_nulls_elem_raw|bpf_sk_storage_|"
     r"bpf_local_storage|bpf_selem|bpf_map_|bpf_msg_redirect|bpf_sock_hash_update|__sock_hash_lookup|"
     r"bpf_get_socket_cookie|bpf_get_netns_cookie|bpf_sock_ops_cb_flags_set|__cgroup_bpf_run|"
     r"bpf_sk_lookup|bpf_sk_assign|percpu_array)"),
    ("sockmap: psock setup/teardown",
     r"(sk_psock_init|sk_psock_destroy|sk_psock_drop|sk_psock_stop|sk_psock_link|sock_map_close|"
     r"sock_map_remove_links|sock_map_unref|sock_hash_update_common|sock_map_link|sock_hash_delete|"
     r"sock_map_unhash|sock_map_destroy|tcp_bpf_update_proto|sock_map_update)"),
    ("sockmap: sk_msg data path", r"(tcp_bpf_|sk_msg_|__sk_msg_|sk_psock_|bpf_tcp_ingress|tcp_msg_wait_data)"),
    ("netfilter, conntrack, NAT",
     r"(nf_|__nf_|ipt_|nft_|iptable_|ipv4_conntrack|ipv6_conntrack|ipv4_confirm|xt_|hash_conntrack)"),
    ("wake-ups", r"(try_to_wake_up|sock_def_readable|__wake_up|ep_poll_callback|wake_up_q|autoremove_wake)"),
    ("context switches, scheduler",
     r"(schedule|__schedule|finish_task_switch|pick_next|enqueue_task|dequeue_task|__switch_to|"
     r"switch_mm|update_curr|psi_|ttwu_|select_task_rq)"),
    ("data copies",
     r"(_copy_from_iter|_copy_to_iter|copy_page_to_iter|copy_page_from_iter|copy_user|rep_movs|"
     r"_copy_to_user|_copy_from_user|__check_object_size|skb_copy_datagram_iter|__skb_datagram_iter|"
     r"csum_partial_copy)"),
    ("epoll, poll", r"(ep_|do_epoll|__x64_sys_epoll|epoll_|sock_poll|tcp_poll|do_select|core_sys_select|do_sys_poll)"),
    ("clock reads", r"(clock_gettime|__vdso_clock_gettime|__x64_sys_clock_gettime|posix_cpu_clock_get|"
                    r"task_sched_runtime|ktime_get|read_tsc|pvclock)"),
    ("TCP/IP stack, veth, loopback",
     r"(tcp_|__tcp|ip_|__ip|ipv6_|ip6_|inet_|__inet|inet6_|dev_|__dev|net_rx|__netif|netif_|process_backlog|"
     r"veth_|skb_|__skb|kfree_skb|__kfree_skb|alloc_skb|__alloc_skb|sk_stream|sk_reset_timer|lock_sock|"
     r"release_sock|__release_sock|sock_|__sock|sk_|bbr_|dst_|fib_|__napi|napi_|loopback_xmit|"
     r"handle_softirqs|do_softirq|__sys_connect|__sys_accept|__sys_sendto|__sys_recvfrom|__sys_shutdown)"),
    ("syscall entry, file, other kernel", r"(do_syscall_64|entry_SYSCALL|syscall_|__x64_sys_|fdget|__fput)"),
]
CAT_NAMES = [c for c, _ in CATEGORIES] + ["other kernel", "user space"]
_CAT_RE = [(c, re.compile(r)) for c, r in CATEGORIES]
DOC_BEGIN = "<!-- bench-results:begin -->"
DOC_END = "<!-- bench-results:end -->"
# a --profile run publishes here instead (its speed figures are slowed down)
PROF_BEGIN = "<!-- bench-profile:begin -->"
PROF_END = "<!-- bench-profile:end -->"


# --- parsers: log text -> {metric: value} ------------------------------------

def parse_sockperf(text, size):
    pct = {}
    for m in re.finditer(r"percentile\s+([\d.]+)\s*=\s*([\d.]+)", text):
        pct[m.group(1)] = float(m.group(2))
    if not {"50.000", "99.000", "99.900"} <= pct.keys():
        raise ValueError("sockperf output has no percentiles")
    return {
        f"lat{size}_p50": pct["50.000"],
        f"lat{size}_p99": pct["99.000"],
        f"lat{size}_p999": pct["99.900"],
    }


def iperf_json(text):
    """iperf3 -J output (after anything printed before it) -> dict"""
    try:
        j = json.JSONDecoder().raw_decode(text[text.index("{"):])[0]
    except ValueError as e:
        raise ValueError(f"iperf3 JSON unreadable: {e}") from None
    if j.get("error"):
        raise ValueError(f"iperf3: {j['error']}")
    return j


def parse_iperf(text, streams):
    bps = iperf_json(text)["end"]["sum_received"]["bits_per_second"]
    return {f"iperf_{streams}": bps / 1e9}


_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def parse_wrk(text):
    m = re.search(r"Requests/sec:\s*([\d.]+)", text)
    n = re.search(r"(\d+) requests in ([\d.]+)(\w+)", text)
    if not m or not n:
        raise ValueError("wrk output has no Requests/sec")
    out = {"rps": float(m.group(1)), "requests": int(n.group(1))}
    p = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    if p:
        out["p99_ms"] = float(p.group(1)) * _UNIT[p.group(2)]
    p = re.search(r"^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m)\s", text, re.M)
    if p:
        out["max_ms"] = float(p.group(1)) * _UNIT[p.group(2)]
    errs = 0
    e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if e:
        errs += sum(int(x) for x in e.groups())
    e = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if e:
        errs += int(e.group(1))
    out["errors"] = errs
    return out


# --- helpers -----------------------------------------------------------------

def fmt(v):
    if v is None:
        return "–"
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}".replace(",", " ")
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def fmt_ratio(v):
    return "–" if v is None else f"{v:.2f}x"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def haproxy_sessions(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(3)
    s.connect(path)
    s.sendall(b"show stat\n")
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    s.close()
    lines = buf.decode(errors="replace").splitlines()
    if not lines or not lines[0].startswith("# "):
        raise SystemExit("unexpected stats output")
    head = lines[0][2:].split(",")
    i_px, i_sv, i_stot = head.index("pxname"), head.index("svname"), head.index("stot")
    for ln in lines[1:]:
        f = ln.split(",")
        if len(f) > i_stot and f[i_px] == "out" and f[i_sv] == "FRONTEND":
            return int(f[i_stot] or 0)
    raise SystemExit("no FRONTEND row for 'out'")


def _categorize(frames):
    """frames: [(is_kernel, symbol)] leaf first -> category name"""
    if frames and not frames[0][0]:
        return "user space"
    for _, sym in frames:
        for cat, rx in _CAT_RE:
            if rx.match(sym):
                return cat
    return "other kernel"


def perf_summary(stream):
    """perf script -F comm,ip,sym on stdin -> {category: samples, ...}"""
    cats, comms = {}, {}
    n = 0
    comm, frames = None, []

    def flush():
        nonlocal n
        if comm is None:
            return
        n += 1
        c = _categorize(frames)
        cats[c] = cats.get(c, 0) + 1
        comms[comm] = comms.get(comm, 0) + 1

    for line in stream:
        if not line.strip():
            flush()
            comm, frames = None, []
        elif not line[0].isspace():
            flush()
            comm, frames = line.split()[0], []
        else:
            parts = line.split(None, 1)
            if len(parts) == 2:
                try:
                    kernel = int(parts[0], 16) >= 0xffff800000000000
                except ValueError:
                    kernel = False
                frames.append((kernel, parts[1].strip().split("+")[0]))
    flush()
    return {"samples": n, "categories": cats, "comms": comms}


def bpf_prog_delta(before, after):
    """bpftool -j prog show before/after -> {prog name: (runs, run ns)} of sockmesh's programs"""
    def load(path):
        try:
            with open(path) as f:
                return {p["id"]: p for p in json.load(f) if str(p.get("name", "")).startswith("sm_")}
        except (OSError, ValueError):
            return {}
    a, b = load(before), load(after)
    out = {}
    for pid, p in b.items():
        q = a.get(pid, {})
        runs = p.get("run_cnt", 0) - q.get("run_cnt", 0)
        ns = p.get("run_time_ns", 0) - q.get("run_time_ns", 0)
        if runs > 0:
            r = out.setdefault(p["name"], [0, 0])
            r[0] += runs
            r[1] += ns
    return out


def work_units(wl, text):
    """(units, unit name) a run did: round trips, MiB, requests, connections"""
    if wl.startswith("sockperf-"):
        m = re.search(r"\[Total Run\].*?ReceivedMessages=(\d+)", text)
        return (int(m.group(1)), "round trip") if m else (None, None)
    try:
        if wl.startswith("iperf3-"):
            return iperf_json(text)["end"]["sum_received"]["bytes"] / 2**20, "MiB"
        if wl.startswith("wrk-"):
            return parse_wrk(text)["requests"], "connection" if wl == "wrk-close" else "request"
    except (ValueError, KeyError):
        pass
    return None, None
    if wl.startswith("wrk-"):
        m = re.search(r"(\d+) requests in", text)
        unit = "connection" if wl == "wrk-close" else "request"
        return (int(m.group(1)), unit) if m else (None, None)
    return None, None


def profile(raw, runs):
    """--profile runs -> {workload: {"unit":, "modes": {mode: {...}}}} (first round of each)"""
    prof = {}
    for run in runs:
        base = run["log"][:-len(".log")] if run.get("log", "").endswith(".log") else None
        if not base or run.get("rc") != 0:
            continue
        summ = os.path.join(raw, base + ".profile.json")
        if not os.path.exists(summ):
            continue
        wl, mode = run["workload"], run["mode"]
        slot = prof.setdefault(wl, {"unit": None, "modes": {}})
        if mode in slot["modes"]:
            continue
        with open(summ) as f:
            ps = json.load(f)
        with open(os.path.join(raw, run["log"]), errors="replace") as f:
            units, uname = work_units(wl, f.read())
        if not units:
            continue
        slot["unit"] = uname
        hz = ps.get("hz", 997)
        us = {c: n / hz * 1e6 / units for c, n in ps["categories"].items()}
        progs = bpf_prog_delta(os.path.join(raw, base + ".progs0.json"), os.path.join(raw, base + ".progs1.json"))
        slot["modes"][mode] = {
            "units": units, "samples": ps["samples"], "us_per_unit": us,
            "busy_us_per_unit": sum(v for c, v in us.items() if c != "idle"),
            "bpf": {n: {"runs_per_unit": r / units, "avg_ns": t / r, "us_per_unit": t / 1e3 / units}
                    for n, (r, t) in sorted(progs.items())},
        }
    return prof


def profile_markdown(prof, modes):
    L = ["### Profile (--profile)", "",
         "Where the CPU time of each run went, in µs of CPU per unit of work (all CPUs; `perf record -a -g` "
         "at 997 Hz, each sample sorted by the first frame from the leaf up that names a known part; locks, "
         "allocations and RCU count for their caller). Then sockmesh's BPF programs from "
         "`kernel.bpf_stats_enabled` (run counts are exact; the run time includes the accounting's own "
         "clock reads). Profiling slows every mode: compare within this table only.", ""]
    for wl in sorted(prof, key=lambda w: (w.split("-")[0], len(w), w)):
        slot = prof[wl]
        ms = [m for m in modes if m in slot["modes"]]
        if not ms:
            continue
        L.append(f"#### {wl}: µs of CPU per {slot['unit']}")
        L.append("")
        L.append("| where | " + " | ".join(ms) + " |")
        L.append("|---|" + "--:|" * len(ms))
        for c in CAT_NAMES:
            if c == "idle" or not any(slot["modes"][m]["us_per_unit"].get(c) for m in ms):
                continue
            L.append(f"| {c} | " + " | ".join(fmt(slot["modes"][m]["us_per_unit"].get(c, 0.0)) for m in ms) + " |")
        L.append("| **busy, total** | " + " | ".join(f"**{fmt(slot['modes'][m]['busy_us_per_unit'])}**" for m in ms) + " |")
        L.append("| idle | " + " | ".join(fmt(slot["modes"][m]["us_per_unit"].get("idle", 0.0)) for m in ms) + " |")
        L.append("")
        rows = []
        for m in ms:
            for name, b in slot["modes"][m]["bpf"].items():
                if b["runs_per_unit"] < 0.005:  # setup-time programs of a data-path run
                    continue
                rows.append(f"| {m} | {name} | {b['runs_per_unit']:.2f} | {b['avg_ns']:.0f} | {b['us_per_unit']:.3f} |")
        if rows:
            L.append(f"| mode | BPF program | runs per {slot['unit']} | ns per run | µs per {slot['unit']} |")
            L.append("|---|---|--:|--:|--:|")
            L += rows
            L.append("")
    return "\n".join(L)


def counters(path):
    with open(path) as f:
        j = json.load(f)
    scopes = j.get("scopes") or []
    if not scopes:
        raise ValueError("no scope in stats")
    return scopes[0].get("counters", {})


# --- report ------------------------------------------------------------------

def metric_defs(sizes):
    d = []
    for s in sizes:
        for k, lab in (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9")):
            d.append((f"lat{s}_{k}", f"sockperf {s} B {lab} RTT", "µs", "lower"))
    d += [
        ("iperf_1", "iperf3 1 stream", "Gbit/s", "higher"),
        ("iperf_4", "iperf3 4 streams", "Gbit/s", "higher"),
        ("wrk_ka_rps", "wrk keep-alive", "req/s", "higher"),
        ("wrk_ka_p99", "wrk keep-alive p99 latency", "ms", "lower"),
        ("wrk_ka_max", "wrk keep-alive max latency", "ms", "lower"),
        ("wrk_close_cps", "wrk Connection: close", "conn/s", "higher"),
        ("wrk_close_p99", "wrk Connection: close p99 latency", "ms", "lower"),
        ("cpu_req_us", "CPU per request (machine, keep-alive)", "µs", "lower"),
        ("cpu_conn_us", "CPU per connection (machine, close)", "µs", "lower"),
        ("cgcpu_req_us", "CPU per request (our cgroups, keep-alive)", "µs", "lower"),
    ]
    mem = [(f"mem_lat{s}", f"sockperf {s} B") for s in sizes] + list(MEM_ROWS.values())
    d += [(key, f"peak TCP memory, {what}", "pages", "lower") for key, what in mem]
    return d


# the peak-TCP-memory row of each workload but sockperf's (one per size)
MEM_ROWS = {
    "iperf3-P1": ("mem_iperf_1", "iperf3 1 stream"),
    "iperf3-P4": ("mem_iperf_4", "iperf3 4 streams"),
    "wrk-keepalive": ("mem_wrk_ka", "wrk keep-alive"),
    "wrk-close": ("mem_wrk_close", "wrk close"),
}


def mem_key(wl):
    """The peak-TCP-memory metric of a workload."""
    if wl.startswith("sockperf-"):
        return "mem_lat" + wl.split("-")[1]
    return MEM_ROWS.get(wl, (None,))[0]


def analyse(raw):
    runs = []
    with open(os.path.join(raw, "runs.jsonl")) as f:
        for ln in f:
            if ln.strip():
                runs.append(json.loads(ln))
    clk = os.sysconf("SC_CLK_TCK")
    samples = {}  # (mode, metric) -> [(round, value)]
    failures, warnings = [], []
    last_sess, last_ctr = {}, {}
    setup_failed = set()
    sizes = set()

    def add(mode, rnd, vals):
        for k, v in vals.items():
            samples.setdefault((mode, k), []).append((rnd, v))

    for run in runs:
        mode, wl, rnd = run["mode"], run["workload"], run["round"]
        where = f"round {rnd} {mode} {wl}"
        key = (rnd, mode)
        if wl.startswith("sockperf-"):
            sizes.add(int(wl.split("-")[1]))
        try:
            with open(os.path.join(raw, run["log"]), errors="replace") as f:
                text = f.read()
        except OSError:
            text = ""
        if wl == "teardown":
            failures.append(f"round {rnd} {mode}: teardown: " + " | ".join(text.strip().splitlines()[:2])[:300])
            continue
        if run["rc"] == 125:  # the mode could not be set up: say it once
            if key not in setup_failed:
                setup_failed.add(key)
                failures.append(f"round {rnd} {mode}: not measured: "
                                + " | ".join(text.strip().splitlines())[:300])
            continue
        if run["rc"] != 0:
            tail = " | ".join(text.strip().splitlines()[-2:])[:200]
            failures.append(f"{where}: exit status {run['rc']}: {tail}")
            continue
        # did the traffic take the mode's path?
        if mode in PROXIED:
            sess = run.get("proxy_sessions")
            if sess is None:
                failures.append(f"{where}: sidecar session count unreadable, path not verified")
            else:
                if sess - last_sess.get(key, 0) <= 0:
                    failures.append(f"{where}: no sidecar session: traffic bypassed the sidecar")
                last_sess[key] = sess
        if mode == "fastpath" and wl.startswith("iperf3-P"):
            # a fast path that silently fell back is not fast: the sidecar
            # must have read almost none of the bytes moved
            rch = run.get("sidecar_rchar") or [None, None]
            try:
                moved = iperf_json(text)["end"]["sum_received"]["bytes"]
            except (ValueError, KeyError):
                moved = None
            if None in rch or not moved:
                failures.append(f"{where}: sidecar read count or bytes moved unreadable")
            else:
                share = (rch[1] - rch[0]) / moved
                samples.setdefault(("fastpath", "sidecar_read_share"), []).append((rnd, share))
                if share > FASTPATH_MAX_READ:
                    failures.append(f"{where}: the sidecar read {share:.1%} of the {moved} B moved "
                                    f"(more than {FASTPATH_MAX_READ:.0%}): not the fast path")
        if mode in SM_MODES:
            if not run.get("stats"):
                warnings.append(f"{where}: no `sockmesh -j stats` output")
            else:
                try:
                    c = counters(os.path.join(raw, run["stats"]))
                except (OSError, ValueError, KeyError) as e:
                    warnings.append(f"{where}: sockmesh stats unreadable: {e}")
                    c = None
                if c is not None:
                    prev = last_ctr.get(key, {})
                    d = {k: c.get(k, 0) - prev.get(k, 0) for k in c}
                    last_ctr[key] = c
                    if d.get("captured", 0) <= 0:
                        failures.append(f"{where}: sockmesh counted no captured connection")
                    if mode in ("sockmesh", "car", "tap", "flows") and d.get("splice_msgs", 0) <= 0:
                        failures.append(f"{where}: splice on, but splice_msgs did not grow")
                    if mode == "fastpath" and d.get("fastpath_conns", 0) <= 0:
                        failures.append(f"{where}: fastpath_conns did not grow: no connection was "
                                        f"handed to the kernel")
                    if mode == "capture" and d.get("splice_msgs", 0) > 0:
                        failures.append(f"{where}: --no-splice, but {d['splice_msgs']} messages spliced")
                    if d.get("origdst_miss", 0) > 0:
                        warnings.append(f"{where}: origdst_miss grew by {d['origdst_miss']}")
                    if d.get("map_full", 0) > 0:
                        warnings.append(f"{where}: map_full grew by {d['map_full']}")
        mem = run.get("tcp_mem_pages") or [None, None]
        if mem_key(wl) and mem[1] is not None:
            add(mode, rnd, {mem_key(wl): mem[1]})
        try:
            if wl.startswith("sockperf-"):
                add(mode, rnd, parse_sockperf(text, int(wl.split("-")[1])))
            elif wl.startswith("iperf3-P"):
                add(mode, rnd, parse_iperf(text, int(wl[len("iperf3-P"):])))
            elif wl.startswith("wrk-"):
                w = parse_wrk(text)
                busy_s = run["cpu_busy"] / clk
                per = 1e6 / w["requests"] if w["requests"] else None
                if w["errors"]:
                    warnings.append(f"{where}: wrk reported {w['errors']} socket errors / non-2xx "
                                    f"of {w['requests']} requests")
                if wl == "wrk-keepalive":
                    v = {"wrk_ka_rps": w["rps"]}
                    if "p99_ms" in w:
                        v["wrk_ka_p99"] = w["p99_ms"]
                    if "max_ms" in w:
                        v["wrk_ka_max"] = w["max_ms"]
                    if per:
                        v["cpu_req_us"] = busy_s * per
                        v["cgcpu_req_us"] = run["cg_usec"] / 1e6 * per
                else:
                    v = {"wrk_close_cps": w["rps"]}
                    if "p99_ms" in w:
                        v["wrk_close_p99"] = w["p99_ms"]
                    if per:
                        v["cpu_conn_us"] = busy_s * per
                add(mode, rnd, v)
        except (ValueError, KeyError, TypeError) as e:
            failures.append(f"{where}: {e}")
    modes_run = [m for m in MODES if any(r["mode"] == m for r in runs)]
    rounds = sorted({r["round"] for r in runs})
    return runs, samples, failures, warnings, sorted(sizes), modes_run, rounds


def build(out, meta):
    raw = os.path.join(out, "raw")
    runs, samples, failures, warnings, sizes, modes, rounds = analyse(raw)
    defs = [d for d in metric_defs(sizes) if any((m, d[0]) in samples for m in modes)]
    med = {}
    metrics = []
    for key, label, unit, better in defs:
        entry = {"key": key, "label": label, "unit": unit, "better": better,
                 "median": {}, "min": {}, "max": {}, "samples": {},
                 "ratio_to_iptables": {}, "ratio_to_direct": {}, "ratios": {}}
        for m in modes:
            vals = [v for _, v in sorted(samples.get((m, key), []))]
            med[(m, key)] = statistics.median(vals) if vals else None
            entry["median"][m] = med[(m, key)]
            entry["min"][m] = min(vals) if vals else None
            entry["max"][m] = max(vals) if vals else None
            entry["samples"][m] = vals
        for m in modes:
            entry["ratio_to_iptables"][m] = ratio(med[(m, key)], med.get(("iptables", key)))
            entry["ratio_to_direct"][m] = ratio(med[(m, key)], med.get(("direct", key)))
        for m, ref in RATIOS:
            if m in modes and ref in modes:
                entry["ratios"][f"{m}/{ref}"] = ratio(med[(m, key)], med[(ref, key)])
        metrics.append(entry)
    # each (mode, round) must have produced every metric
    for m in modes:
        short = {key: len(samples.get((m, key), [])) for key, *_ in defs}
        short = {k: n for k, n in short.items() if n < len(rounds)}
        if short:
            failures.append(f"{m}: {len(short)} of {len(defs)} metrics have fewer samples than rounds "
                            f"(fewest: {min(short.values())} of {len(rounds)})")
    goals = []
    for m, ref, key, target, op in GOALS:
        if m not in modes or ref not in modes:
            continue
        r = ratio(med.get((m, key)), med.get((ref, key)))
        met = None if r is None else (r <= target if op == "<=" else r >= target)
        goals.append({"mode": m, "ref": ref, "metric": key, "target": f"{op} {target}x",
                      "ratio": r, "met": met})
    for m, key, stat, target, op, means in ABS_GOALS:
        vals = [v for _, v in samples.get((m, key), [])]
        if m not in modes or not vals:
            continue
        med_v = statistics.median(vals)
        if stat == "max":
            v = max(vals)
        else:
            v = max(abs(x - med_v) for x in vals) / med_v if med_v else None
        met = None if v is None else (v <= target if op == "<=" else v >= target)
        goals.append({"mode": m, "ref": None, "metric": key, "stat": stat,
                      "target": f"{op} {target}", "means": means, "value": v, "met": met})
    share = [v for _, v in samples.get(("fastpath", "sidecar_read_share"), [])]
    res = {"meta": meta, "modes": modes, "rounds": len(rounds), "metrics": metrics,
           "goals": goals, "failures": failures, "warnings": warnings, "ok": False,
           "profile": profile(raw, runs),
           "fastpath_sidecar_read_share_max": max(share) if share else None}
    plot_err = plot(out, res)
    if plot_err:
        failures.append(plot_err)
    res["ok"] = not failures
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f, indent=1, ensure_ascii=False)
        f.write("\n")
    body = markdown(res)
    if res["profile"]:
        body += "\n" + profile_markdown(res["profile"], modes) + "\n"
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("# sockmesh benchmark report\n\n" + body)
    return res, body, res["ok"]


def markdown(res):
    meta, modes, metrics = res["meta"], res["modes"], res["metrics"]
    L = []
    L.append(f"- date: {meta.get('date', '?')}")
    L.append(f"- command: `{meta.get('command', '?')}`")
    L.append(f"- machine: {meta.get('cores', '?')} cores ({meta.get('cpu', '?')}), "
             f"kernel {meta.get('kernel', '?')}; HAProxy {meta.get('haproxy', '?')} "
             f"(nbthread {meta.get('proxy_threads', '?')}), nginx workers "
             f"{meta.get('nginx_workers', '?')}; commit {meta.get('commit', '?')}")
    L.append(f"- {res['rounds']} round{'s' if res['rounds'] != 1 else ''}, modes interleaved in rotating order; medians; "
             f"sockperf {meta.get('latency_time', '?')} s, iperf3 {meta.get('iperf_time', '?')} s "
             f"(+1 s omitted), wrk {meta.get('wrk_time', '?')} s x {meta.get('wrk_conns', '?')} "
             f"connections; took {meta.get('elapsed_s', '?')} s")
    L.append("- modes: " + "; ".join(f"**{m}** = {MODE_DOC[m]}" for m in modes))
    if meta.get("splice_budget", "default") != "default":
        L.append(f"- sockmesh mode loaded with `--splice-budget {meta['splice_budget']}` (default 8MiB)")
    L.append("")
    head = ["metric", "unit"] + modes
    L.append("| " + " | ".join(head) + " |")
    L.append("|" + "|".join(["---", "---"] + ["--:"] * (len(head) - 2)) + "|")
    for e in metrics:
        row = [e["label"] + (" ↓" if e["better"] == "lower" else " ↑"), e["unit"]]
        row += [fmt(e["median"][m]) for m in modes]
        L.append("| " + " | ".join(row) + " |")
    L.append("")
    pairs = [f"{m}/{ref}" for m, ref in RATIOS if m in modes and ref in modes]
    if pairs:
        L.append("Ratios of the medians:")
        L.append("")
        L.append("| metric | " + " | ".join(pairs) + " |")
        L.append("|---|" + "|".join(["--:"] * len(pairs)) + "|")
        for e in metrics:
            L.append(f"| {e['label']} | " + " | ".join(fmt_ratio(e["ratios"].get(p)) for p in pairs) + " |")
        L.append("")
    if res.get("fastpath_sidecar_read_share_max") is not None:
        L.append(f"In fastpath mode the sidecar process read (/proc/PID/io rchar) at most "
                 f"{res['fastpath_sidecar_read_share_max']:.3%} of the bytes each iperf3 run moved "
                 f"(checked in every run: more than {FASTPATH_MAX_READ:.0%} fails the benchmark).")
        L.append("")
    L.append("↓ lower is better, ↑ higher is better. RTT = sockperf `--full-rtt` round trip. "
             "CPU = user+nice+system+irq+softirq of the whole machine from /proc/stat over the wrk run, "
             "divided by the requests (connections) it completed; the cgroup row counts only the "
             "client pod and server cgroups (cpu.stat), which is less exposed to other load on the machine.")
    L.append("")
    rel = [g for g in res["goals"] if g.get("ref")]
    names = {d[0]: d[1] for d in metric_defs([64])}
    if any(g["ratio"] is not None for g in rel):
        L.append("Goals:")
        L.append("")
        L.append("| ratio | metric | goal | measured | met |")
        L.append("|---|---|--:|--:|:-:|")
        for g in rel:
            met = "–" if g["met"] is None else ("yes" if g["met"] else "**no**")
            L.append(f"| {g['mode']} / {g['ref']} | {names.get(g['metric'], g['metric'])} | "
                     f"{g['target']} | {fmt_ratio(g['ratio'])} | {met} |")
        L.append("")
    own = [g for g in res["goals"] if not g.get("ref")]
    if own:
        L.append("Goals on one mode's own figures (max: the worst round; spread: the round "
                 "furthest from the median, as a share of it):")
        L.append("")
        L.append("| mode | metric | statistic | goal | measured | met |")
        L.append("|---|---|---|--:|--:|:-:|")
        for g in own:
            met = "–" if g["met"] is None else ("yes" if g["met"] else "**no**")
            v = g["value"]
            shown = "–" if v is None else (f"{v:.1%}" if g["stat"] == "spread" else fmt(v))
            tgt = (f"{g['target'].split()[0]} {float(g['target'].split()[1]):.0%}"
                   if g["stat"] == "spread" else f"{g['target']} ({g['means']})")
            L.append(f"| {g['mode']} | {names.get(g['metric'], g['metric'])} | {g['stat']} | "
                     f"{tgt} | {shown} | {met} |")
        L.append("")
    if res["failures"]:
        L.append("Failures (these runs are missing or not trustworthy):")
        L.append("")
        L += [f"- {x}" for x in res["failures"]]
        L.append("")
    else:
        L.append("Checks: every run finished and produced its numbers; in every proxied run the "
                 "sidecar's session count grew (traffic went through the sidecar)"
                 + ("; sockmesh counted captures in every run of a sockmesh mode, spliced messages "
                    "only with splice on" if SM_MODES & set(modes) else "")
                 + ("; in fastpath mode connections were handed to the kernel and the sidecar read "
                    "almost none of the bulk bytes" if "fastpath" in modes else "") + ".")
        L.append("")
    if res["warnings"]:
        L.append("Warnings:")
        L.append("")
        L += [f"- {x}" for x in res["warnings"][:30]]
        if len(res["warnings"]) > 30:
            L.append(f"- ... {len(res['warnings']) - 30} more in results.json")
        L.append("")
    return "\n".join(L)


def plot(out, res):
    modes, metrics = res["modes"], res["metrics"]
    # against no sidecar when the fast path ran (how close each mode gets to
    # it), else against iptables
    if "direct" in modes and ("fastpath" in modes or "iptables" not in modes):
        ref = "direct"
    else:
        ref = "iptables" if "iptables" in modes else None
    gp = shutil.which("gnuplot")
    if not gp:
        return "gnuplot not found: no plot.png"
    if ref is None or len(modes) < 2:
        shown = modes
        ref = None
    else:
        shown = [m for m in modes if m != ref]
    rkey = f"ratio_to_{ref}" if ref else None
    colors = {"direct": "#7f7f7f", "iptables": "#d62728", "capture": "#ff7f0e", "sockmesh": "#1f77b4",
              "car-ipt": "#e377c2", "car": "#17becf", "fastpath": "#2ca02c", "tap": "#9467bd",
              "flows": "#8c564b"}
    panels = []
    for better, title in (("lower", "latency and CPU (lower is better)"),
                          ("higher", "throughput (higher is better)")):
        rows = [e for e in metrics if e["better"] == better and e["unit"] != "pages"]
        if not rows:
            continue
        dat = os.path.join(out, f"plot-{better}.dat")
        with open(dat, "w") as f:
            f.write("# metric " + " ".join(shown) + "\n")
            for e in rows:
                lab = SHORT.get(e["key"]) or e["label"].replace("sockperf ", "").replace(" RTT", "")
                vals = [(e[rkey][m] if rkey else e["median"][m]) for m in shown]
                f.write(f'"{lab}" ' + " ".join("?" if v is None else f"{v:.4f}" for v in vals) + "\n")
        cols = ", ".join(
            (f"'{os.path.basename(dat)}' using {i + 2}:xtic(1)" if i == 0 else f"'' using {i + 2}")
            + f" title '{m}' lc rgb '{colors[m]}'" for i, m in enumerate(shown))
        if ref:
            cols += f", 1 with lines dt 2 lw 2 lc rgb '{colors[ref]}' title '{ref} = 1'"
        panels.append(f"set title '{title}'\nplot {cols}\n")
    what = f"median ratio to {ref}, log scale" if ref else "medians"
    yaxis = "set yrange [0:*]\n"
    if ref:
        # powers of two around every plotted ratio (1/16..16 at least)
        vals = [e[rkey][m] for e in metrics for m in shown if e[rkey].get(m)]
        lo = min([0.0625] + [v for v in vals if v > 0])
        hi = max([16.0] + vals)
        e_lo, e_hi = math.floor(math.log2(lo)), math.ceil(math.log2(hi))
        tics = ", ".join((f"'1/{2 ** -k}' {2.0 ** k}" if k < 0 else f"'{2 ** k}' {2 ** k}")
                         for k in range(e_lo, e_hi + 1))
        yaxis = f"set logscale y 2\nset yrange [{2.0 ** e_lo}:{2.0 ** e_hi}]\nset ytics ({tics})\n"
    meta = res["meta"]
    script = f"""set terminal pngcairo size 1500,620 font ',10'
set output 'plot.png'
set datafile missing '?'
set multiplot layout 1,{len(panels)} title "sockmesh benchmark: {what} ({res['rounds']} round{'s' if res['rounds'] != 1 else ''}, {meta.get('cores', '?')} cores, kernel {meta.get('kernel', '?')}, {meta.get('date', '')})"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set grid ytics
{yaxis}set xtics rotate by -40 scale 0 font ',9'
set key top left
set bmargin 7
""" + "".join(panels) + "unset multiplot\n"
    with open(os.path.join(out, "plot.gp"), "w") as f:
        f.write(script)
    p = subprocess.run([gp, "plot.gp"], cwd=out, capture_output=True, text=True, timeout=60)
    if p.returncode != 0 or not os.path.exists(os.path.join(out, "plot.png")):
        return f"gnuplot failed: {p.stderr.strip()[:300]}"
    return None


def publish(doc, body, begin=DOC_BEGIN, end=DOC_END):
    with open(doc) as f:
        text = f.read()
    if begin not in text or end not in text:
        raise SystemExit(f"{doc}: markers {begin} / {end} not found")
    a = text.index(begin) + len(begin)
    b = text.index(end)
    text = text[:a] + "\n" + body + "\n" + text[b:]
    with open(doc + ".tmp", "w") as f:
        f.write(text)
    os.replace(doc + ".tmp", doc)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("report")
    r.add_argument("--out", required=True)
    r.add_argument("--publish")
    r.add_argument("--publish-tag", default="")
    r.add_argument("--meta", action="append", default=[])
    h = sub.add_parser("haproxy-sessions")
    h.add_argument("socket")
    ps = sub.add_parser("perf-summary")
    ps.add_argument("--hz", type=int, default=997)
    a = ap.parse_args()
    if a.cmd == "perf-summary":
        summ = perf_summary(sys.stdin)
        summ["hz"] = a.hz
        json.dump(summ, sys.stdout)
        print()
        return 0
    if a.cmd == "haproxy-sessions":
        print(haproxy_sessions(a.socket))
        return 0
    meta = {}
    for kv in a.meta:
        k, sep, v = kv.partition("=")
        if not sep:
            ap.error(f"--meta '{kv}': expected KEY=VALUE")
        meta[k] = v
    res, body, ok = build(a.out, meta)
    if a.publish:
        if meta.get("profile") == "1":
            publish(a.publish, body, PROF_BEGIN, PROF_END)
        else:
            # the plot goes next to the page, so a reader sees it without
            # running anything
            tag = f"-{a.publish_tag}" if a.publish_tag else ""
            png = os.path.join(a.out, "plot.png")
            if os.path.exists(png):
                name = f"bench-plot{tag}.png"
                shutil.copyfile(png, os.path.join(os.path.dirname(os.path.abspath(a.publish)), name))
                body += f"\n![the medians as ratios, this run]({name})\n"
            publish(a.publish, body, f"<!-- bench-results{tag}:begin -->", f"<!-- bench-results{tag}:end -->")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
