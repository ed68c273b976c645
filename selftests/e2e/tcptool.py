#!/usr/bin/python3
# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
"""Small TCP servers and clients for the e2e tests (stdlib only).

  hash-server ADDR PORT            per connection: read to EOF, reply
                                   "<sha256 hex> <byte count>\n", close
  send-server ADDR PORT FILE       per connection: send FILE, shut down the
                                   write side, drain until the peer closes
  echo-id-server ADDR PORT TEXT    per connection: reply "TEXT <peer ip>:<port>\n"
                                   and close (no request needed)
  client ADDR PORT [options]       connect, optionally send a file, half-close,
                                   read to EOF; output goes to --out or stdout
  sockopts ADDR PORT               connect and print getsockopt results as JSON
  hold ADDR PORT --count N         open N connections, print "ready N", close
                                   them all on SIGTERM
  parallel ADDR PORT --count N     N connections at once to a hash-server:
                                   connection i sends --size + 997 * i bytes
                                   (--hold S: in pieces over S seconds),
                                   half-closes, checks the reply; prints one
                                   JSON line each: local address, bytes sent
                                   and received

ADDR may be IPv4 or IPv6 (no brackets). Every blocking call has a timeout so a
broken data path fails the test instead of hanging it.
"""
import argparse
import hashlib
import json
import signal
import socket
import struct
import sys
import time

SO_ORIGINAL_DST = 80
TCP_INFO_LEN = 232


def family_of(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def listener(addr, port):
    s = socket.socket(family_of(addr), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(128)
    return s


def peer_str(sa):
    host, port = sa[0], sa[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def recv_all(conn, sink=None):
    total = 0
    while True:
        buf = conn.recv(1 << 20)
        if not buf:
            return total
        total += len(buf)
        if sink is not None:
            sink(buf)


def serve(args, handle):
    srv = listener(args.addr, args.port)
    while True:
        conn, peer = srv.accept()
        conn.settimeout(args.timeout)
        try:
            handle(conn, peer)
        except OSError as e:
            print(f"connection from {peer_str(peer)}: {e}", file=sys.stderr, flush=True)
        finally:
            conn.close()


def cmd_hash_server(args):
    def handle(conn, peer):
        h = hashlib.sha256()
        n = recv_all(conn, h.update)
        conn.sendall(f"{h.hexdigest()} {n}\n".encode())
        print(f"hash peer={peer_str(peer)} bytes={n}", flush=True)
    serve(args, handle)


def cmd_send_server(args):
    with open(args.file, "rb") as f:
        data = f.read()

    def handle(conn, peer):
        if args.delay:
            time.sleep(args.delay)
        if args.pace:
            for off in range(0, len(data), 1 << 20):
                conn.sendall(data[off:off + (1 << 20)])
                time.sleep(args.pace)
        else:
            conn.sendall(data)
        conn.shutdown(socket.SHUT_WR)
        recv_all(conn)
        print(f"send peer={peer_str(peer)} bytes={len(data)}", flush=True)
    serve(args, handle)


def cmd_echo_id_server(args):
    def handle(conn, peer):
        conn.sendall(f"{args.text} {peer_str(peer)}\n".encode())
        print(f"id peer={peer_str(peer)}", flush=True)
    serve(args, handle)


def connect(args):
    s = socket.socket(family_of(args.addr), socket.SOCK_STREAM)
    s.settimeout(args.timeout)
    if args.mark is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, args.mark)
    if args.bind_port is not None:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("::" if s.family == socket.AF_INET6 else "0.0.0.0", args.bind_port))
    s.connect((args.addr, args.port))
    return s


def cmd_client(args):
    s = connect(args)
    if args.print_local:
        print(f"local {peer_str(s.getsockname())} peer {peer_str(s.getpeername())}",
              file=sys.stderr, flush=True)
    if args.delay:
        time.sleep(args.delay)
    if args.send:
        with open(args.send, "rb") as f:
            while True:
                buf = f.read(1 << 20)
                if not buf:
                    break
                s.sendall(buf)
    if args.shut_wr:
        s.shutdown(socket.SHUT_WR)
    out = open(args.out, "wb") if args.out else sys.stdout.buffer
    recv_all(s, out.write)
    out.flush()
    s.close()


def cmd_hold(args):
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM, signal.SIGINT])
    socks = [connect(args) for _ in range(args.count)]
    print(f"ready {len(socks)}", flush=True)
    try:
        signal.sigwait([signal.SIGTERM, signal.SIGINT])
    finally:
        for s in socks:
            s.close()


def cmd_parallel(args):
    import threading
    results = [None] * args.count
    errors = []
    start = threading.Barrier(args.count)

    def one(i):
        try:
            data = hashlib.sha256(str(i).encode()).digest() * ((args.size + 997 * i) // 32 + 1)
            data = data[:args.size + 997 * i]
            s = connect(args)
            start.wait()
            if args.hold:
                # a piece every 2 s over --hold seconds
                pieces = max(1, int(args.hold // 2))
                step = len(data) // pieces + 1
                for off in range(0, len(data), step):
                    s.sendall(data[off:off + step])
                    if off + step < len(data):
                        time.sleep(args.hold / pieces)
            else:
                s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            reply = bytearray()
            recv_all(s, reply.extend)
            local = peer_str(s.getsockname())
            s.close()
            want = f"{hashlib.sha256(data).hexdigest()} {len(data)}\n".encode()
            if bytes(reply) != want:
                raise OSError(f"connection {i}: reply {bytes(reply)!r}, want {want!r}")
            results[i] = {"local": local, "sent": len(data), "received": len(reply)}
        except (OSError, threading.BrokenBarrierError) as e:
            errors.append(str(e))
            start.abort()

    threads = [threading.Thread(target=one, args=(i,)) for i in range(args.count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise OSError("; ".join(errors[:3]))
    for r in results:
        print(json.dumps(r))


def cmd_sockopts(args):
    s = connect(args)
    res = {}
    info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LEN)
    res["tcp_info_len"] = len(info)
    res["tcp_info_state"] = info[0]
    res["tcp_info_len_big"] = len(s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1024))
    res["tcp_congestion"] = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode()
    res["so_type"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    res["so_error"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    res["so_keepalive"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
    # An app socket is not a proxy's accepted socket: whatever the kernel
    # answers here without sockmesh must stay the same with it.
    lvl = socket.IPPROTO_IPV6 if s.family == socket.AF_INET6 else socket.IPPROTO_IP
    try:
        # conntrack copies a sockaddr without shrinking optlen: only the
        # sockaddr's own bytes are defined
        salen = 28 if s.family == socket.AF_INET6 else 16
        res["orig_dst"] = s.getsockopt(lvl, SO_ORIGINAL_DST, salen).hex()
    except OSError as e:
        res["orig_dst"] = f"errno {e.errno}"
    s.close()
    print(json.dumps(res, sort_keys=True))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--timeout", type=float, default=20.0)
    sub = p.add_subparsers(dest="cmd", required=True)

    def addr_port(sp):
        sp.add_argument("addr")
        sp.add_argument("port", type=int)

    sp = sub.add_parser("hash-server")
    addr_port(sp)
    sp.set_defaults(fn=cmd_hash_server)
    sp = sub.add_parser("send-server")
    addr_port(sp)
    sp.add_argument("file")
    sp.add_argument("--delay", type=float, default=0.0,
                    help="seconds to wait after accepting before sending")
    sp.add_argument("--pace", type=float, default=0.0,
                    help="seconds to wait after each MiB sent")
    sp.set_defaults(fn=cmd_send_server)
    sp = sub.add_parser("echo-id-server")
    addr_port(sp)
    sp.add_argument("text")
    sp.set_defaults(fn=cmd_echo_id_server)
    for name, fn in (("client", cmd_client), ("sockopts", cmd_sockopts), ("hold", cmd_hold),
                     ("parallel", cmd_parallel)):
        sp = sub.add_parser(name)
        addr_port(sp)
        sp.add_argument("--mark", type=lambda v: int(v, 0))
        sp.add_argument("--bind-port", type=int)
        sp.set_defaults(fn=fn)
        if name == "client":
            sp.add_argument("--send")
            sp.add_argument("--shut-wr", action="store_true")
            sp.add_argument("--out")
            sp.add_argument("--print-local", action="store_true")
            sp.add_argument("--delay", type=float, default=0.0,
                            help="seconds to wait after connecting before sending")
        if name in ("hold", "parallel"):
            sp.add_argument("--count", type=int, default=1)
        if name == "parallel":
            sp.add_argument("--size", type=int, default=1000)
            sp.add_argument("--hold", type=float, default=0.0)
    args = p.parse_args()
    try:
        args.fn(args)
    except (OSError, socket.timeout) as e:
        print(f"tcptool {args.cmd}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
