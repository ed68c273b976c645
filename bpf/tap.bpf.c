// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmesh tap: the programs one `sockmesh tap` process loads and puts
 * into the data path's tap program arrays (tap_msg_calls, indexed by the
 * path a send took, and tap_sockops_calls in bpf/sockmesh.bpf.c), which
 * tail-call them after their own work; with its own ring buffer, filter
 * and per-socket offsets. Everything here lives as long as that process:
 * the kernel empties the arrays when it ends, and the data path then turns
 * its check off again. And two cgroup_skb programs its process attaches
 * (links only it holds) for the connections that take the TCP stack only
 * and the fast path's upstream socket, followed by their segments. See
 * docs/design.md, "The tap".
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sockmesh_abi.h"
#include "ext.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set before load (user/lib/tap.c). */
const volatile __u32 tap_scope_idx = SM_TAP_ANY_SCOPE;
const volatile __u16 tap_port; /* 0: any; else the client's or the server's */
const volatile __u32 tap_snaplen; /* payload bytes kept of each send; 0: all */
const volatile __u32 tap_helpers; /* SM_FLOW_H_*: what the kernel lets these programs call */

/* Read by user space (mmap of .bss). */
__u64 lost_recs; /* records the ring could not take */
__u64 lost_bytes; /* payload bytes in them, and past SM_TAP_MSG_CHUNKS */

/* Size set before load (--ring-size). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 24);
} ring SEC(".maps");

/* Bytes each socket sent since this tap first saw it: the stream offsets. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sm_tap_sk);
} tap_sk_map SEC(".maps");

/* One record being filled, per CPU; busy guards it against a program that
 * preempted another on the same CPU (that send is counted lost).
 */
struct sm_tap_scratch {
	__u32 busy;
	__u32 wake; /* the next record wakes the reader (a new sender) */
	struct sm_tap_rec rec;
	__u8 data[SM_TAP_CHUNK];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sm_tap_scratch);
} scratch SEC(".maps");

/* The connection's endpoints as the tap shows them (bpf/endpoints.bpf.h);
 * 0 if the filter does not take it.
 */
static __always_inline int tap_endpoints(struct sm_tap_rec *r, const struct sm_sk_state *st)
{
	struct sm_endpoints e;

	if (tap_scope_idx != SM_TAP_ANY_SCOPE && tap_scope_idx != st->scope_idx)
		return 0;
	r->scope_idx = st->scope_idx;
	r->dir = st->side & 1;
	sm_endpoints_of(&e, st);
	r->family = e.family;
	r->client_port = e.client_port;
	r->server_port = e.server_port;
	__builtin_memcpy(r->client, e.client, 16);
	__builtin_memcpy(r->server, e.server, 16);
	return !tap_port || tap_port == r->client_port || tap_port == r->server_port;
}

/* Wake the reader only once a quarter of the ring is waiting, or for a
 * sender it has not seen on this socket (it names the sender from
 * /proc/PID/comm, best while the process lives): a wakeup per send would
 * cost the data path a context switch per send on a busy machine. The
 * reader also looks every 100 ms (sockmesh_tap__poll).
 */
static __always_inline __u64 wakeup_flag(int new_sender)
{
	if (new_sender || bpf_ringbuf_query(&ring, BPF_RB_AVAIL_DATA) >
				  bpf_ringbuf_query(&ring, BPF_RB_RING_SIZE) / 4)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void lost(__u64 bytes)
{
	__sync_fetch_and_add(&lost_recs, 1);
	__sync_fetch_and_add(&lost_bytes, bytes);
}

/* This CPU's scratch record (its header filled, cap bytes of payload
 * copied) out to the ring: n bytes at stream offset off.
 */
static __always_inline void tap_out(struct sm_tap_scratch *sc, __u64 off, __u32 n, __u32 cap)
{
	sc->rec.off = off;
	sc->rec.len = n;
	sc->rec.caplen = cap;
	/* the bound checked on the register the helper gets */
	barrier_var(cap);
	if (cap > SM_TAP_CHUNK)
		cap = 0;
	if (bpf_ringbuf_output(&ring, &sc->rec, sizeof(sc->rec) + cap, wakeup_flag(sc->wake)))
		lost(n);
	sc->wake = 0;
}

/* Record i of a send of size bytes whose first byte is at stream offset
 * off, from this CPU's scratch record (its header filled). A global
 * function: the verifier checks it once, not once per record of the loop
 * in tap_msg. 1 when the send has no record i.
 */
__noinline int tap_chunk(struct sk_msg_md *msg, __u32 i, __u32 size, __u32 snap, __u64 off)
{
	__u32 zero = 0, start = i * SM_TAP_CHUNK, n, cap = 0;
	struct sm_tap_scratch *sc;
	void *d;

	if (!msg || i >= SM_TAP_MSG_CHUNKS || start >= size)
		return 1;
	sc = bpf_map_lookup_elem(&scratch, &zero);
	if (!sc)
		return 1;
	n = size - start;
	if (n > SM_TAP_CHUNK)
		n = SM_TAP_CHUNK;
	if (start < snap) {
		cap = snap - start < n ? snap - start : n;
		/* within one fragment: no copy; across fragments: linearized */
		if (bpf_msg_pull_data(msg, start, start + cap, 0))
			cap = 0;
	}
	d = (void *)(long)msg->data;
	if (cap && (long)msg->data_end - (long)d < (long)cap)
		cap = 0;
	/* the bound checked on the register the helper gets (older
	 * verifiers lose it when the compiler checks a copy)
	 */
	barrier_var(cap);
	if (cap > SM_TAP_CHUNK)
		cap = 0;
	if (cap && bpf_probe_read_kernel(sc->data, cap, d))
		cap = 0;
	tap_out(sc, off + start, n, cap);
	return 0;
}

/* A send of a spliced socket that took path: copied in records of
 * SM_TAP_CHUNK bytes. The offset moves whatever happens to the copy, so a
 * lost record is a gap, never a shift.
 */
static __always_inline void tap_msg(struct sk_msg_md *msg, __u32 path)
{
	__u32 zero = 0, size = msg->size, snap = tap_snaplen ? tap_snaplen : 0xffffffffu;
	struct bpf_sock *sk = msg->sk;
	struct sm_tap_scratch *sc;
	struct sm_tap_rec hdr = {};
	struct sm_sk_state *st;
	struct sm_tap_sk *ts;
	int new_sender;
	__u64 off;

	if (!sk)
		return;
	st = bpf_sk_storage_get(&sk_state_map, sk, NULL, 0);
	if (!st || !tap_endpoints(&hdr, st))
		return;
	ts = bpf_sk_storage_get(&tap_sk_map, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!ts || (ts->flags & SM_TAP_F_UNCOUNTED))
		return;
	if (path == SM_TAP_PATH_FAST && sm_fast_egress(st)) {
		/* how much of it went is not known here (SM_TAP_F_UNCOUNTED) */
		ts->flags |= SM_TAP_F_UNCOUNTED;
		hdr.ts_ns = bpf_ktime_get_ns();
		hdr.off = ts->off;
		hdr.kind = SM_TAP_LOST;
		hdr.path = path;
		hdr.flags = ts->flags;
		hdr.pid_tgid = bpf_get_current_pid_tgid();
		if (bpf_ringbuf_output(&ring, &hdr, sizeof(hdr), wakeup_flag(1)))
			lost(0);
		return;
	}
	off = ts->off;
	ts->off = off + size;
	hdr.ts_ns = bpf_ktime_get_ns();
	hdr.kind = SM_TAP_DATA;
	hdr.path = path;
	hdr.flags = ts->flags;
	hdr.pid_tgid = bpf_get_current_pid_tgid();
	new_sender = ts->pid != (__u32)(hdr.pid_tgid >> 32);
	ts->pid = (__u32)(hdr.pid_tgid >> 32);
	sc = bpf_map_lookup_elem(&scratch, &zero);
	if (!sc || __sync_lock_test_and_set(&sc->busy, 1)) {
		lost(size);
		return;
	}
	sc->rec = hdr;
	sc->wake = new_sender;
	for (__u32 i = 0; i < SM_TAP_MSG_CHUNKS; i++)
		if (tap_chunk(msg, i, size, snap, off))
			break;
	if (size > SM_TAP_MSG_CHUNKS * SM_TAP_CHUNK)
		lost(size - SM_TAP_MSG_CHUNKS * SM_TAP_CHUNK);
	*(volatile __u32 *)&sc->busy = 0;
}

/* One program per path (the data path tail-calls tap_msg_calls[path]);
 * every verdict is SK_PASS, a redirect is recorded in the message.
 */
SEC("sk_msg")
int tap_msg_splice(struct sk_msg_md *msg)
{
	tap_msg(msg, SM_TAP_PATH_SPLICE);
	return SK_PASS;
}

SEC("sk_msg")
int tap_msg_stack(struct sk_msg_md *msg)
{
	tap_msg(msg, SM_TAP_PATH_STACK);
	return SK_PASS;
}

SEC("sk_msg")
int tap_msg_fast(struct sk_msg_md *msg)
{
	tap_msg(msg, SM_TAP_PATH_FAST);
	return SK_PASS;
}

/* A record without payload (OPEN, FIN, RST) of a spliced socket. */
static __always_inline void tap_event(struct bpf_sock *sk, struct sm_sk_state *st, __u8 kind)
{
	struct sm_tap_rec r = {};
	struct sm_tap_sk *ts;

	if (!tap_endpoints(&r, st))
		return;
	ts = bpf_sk_storage_get(&tap_sk_map, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!ts || (ts->flags & SM_TAP_F_SEGMENTS))
		return;
	if (kind == SM_TAP_OPEN)
		ts->flags |= SM_TAP_F_FROM_START;
	r.ts_ns = bpf_ktime_get_ns();
	r.off = ts->off;
	r.kind = kind;
	r.flags = ts->flags;
	r.path = (st->flags & SM_SK_NO_SPLICE) ? SM_TAP_PATH_STACK : SM_TAP_PATH_SPLICE;
	if (bpf_ringbuf_output(&ring, &r, sizeof(r), wakeup_flag(0)))
		lost(0);
}

/* Is this socket the one a captured connection that takes the TCP stack
 * only is followed by: the app's (outbound) or the proxy's accepted one
 * (inbound), never in the splice? Its segments are then the tap's.
 */
static __always_inline int tap_plain(const struct sm_sk_state *st)
{
	return (st->flags & (SM_SK_APP | SM_SK_INBOUND)) &&
	       !(st->flags & (SM_SK_LOCAL_LEG | SM_SK_SPLICE | SM_SK_NO_SPLICE));
}

/* Such a socket established while tapping: both offsets start at its
 * first byte, so user space writes the handshake.
 */
static __always_inline void tap_plain_open(struct bpf_sock_ops *skops, struct bpf_sock *sk,
					   struct sm_sk_state *st)
{
	struct sm_tap_rec r = {};
	struct sm_tap_sk *ts;

	if (!tap_endpoints(&r, st))
		return;
	ts = bpf_sk_storage_get(&tap_sk_map, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!ts)
		return;
	ts->out_base = skops->snd_nxt;
	ts->in_base = skops->rcv_nxt;
	ts->off = ts->in_off = 0;
	ts->flags = SM_TAP_F_SEGMENTS | SM_TAP_F_FROM_START | SM_TAP_F_OUT_BASE | SM_TAP_F_IN_BASE;
	/* the app's connect completes in its own connect() (loopback) */
	if ((st->flags & SM_SK_APP) && (tap_helpers & SM_FLOW_H_SOCKOPS_PID))
		ts->pid = (__u32)(bpf_get_current_pid_tgid() >> 32);
	r.ts_ns = bpf_ktime_get_ns();
	r.kind = SM_TAP_OPEN;
	r.flags = (__u8)ts->flags;
	r.path = SM_TAP_PATH_STACK;
	r.pid_tgid = (__u64)ts->pid << 32;
	/* a new sender: the reader names it while it lives */
	if (bpf_ringbuf_output(&ring, &r, sizeof(r), wakeup_flag(ts->pid != 0)))
		lost(0);
}

/* A spliced socket established (OPEN), shut its direction down (FIN) or
 * ended without its FIN (RST: from ESTABLISHED or CLOSE_WAIT straight to
 * CLOSE, as a reset or an abortive close does); a socket followed by its
 * segments established (their FIN and RST are in the segments). Tail-called at the end of
 * the data path's sockops program, so at CLOSE the socket has left the
 * splice already: one that was in it still has its peer's key.
 */
SEC("sockops")
int tap_sockops(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct sm_sk_state *st;
	__u32 from, to;

	if (!sk)
		return 1;
	st = bpf_sk_storage_get(&sk_state_map, sk, NULL, 0);
	if (!st)
		return 1;
	if (skops->op != BPF_SOCK_OPS_STATE_CB) {
		if (st->flags & SM_SK_SPLICE)
			tap_event(sk, st, SM_TAP_OPEN);
		else if (tap_plain(st))
			tap_plain_open(skops, sk, st);
		return 1;
	}
	if (!st->peer.family)
		return 1;
	from = skops->args[0];
	to = skops->args[1];
	if (to == BPF_TCP_FIN_WAIT1 || to == BPF_TCP_LAST_ACK)
		tap_event(sk, st, SM_TAP_FIN);
	else if (to == BPF_TCP_CLOSE && (from == BPF_TCP_ESTABLISHED || from == BPF_TCP_CLOSE_WAIT))
		tap_event(sk, st, SM_TAP_RST);
	return 1;
}

/* ---- captured connections that take the TCP stack only ------------------
 * A captured connection that never enters the splice (the policy turned
 * it off, or its peer is not local), and the sidecar's upstream socket on
 * the kernel fast path (the app's sends leave through it: sk_msg cannot
 * tell how much of them went), are followed by their TCP segments: these
 * cgroup_skb programs, attached by the tap's process to the instance's
 * attach cgroups with links only it holds, see every segment the socket
 * sends (egress) and every one it gets (ingress, before TCP looks at it).
 */

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04

/* Where a segment's bytes go in its direction's stream: the sequence less
 * the base fixed once, widened past 4 GiB next to the highest end seen.
 * The base never moves, so two CPUs that see segments of one socket at
 * once (ingress is not under the socket's lock) can only disagree on the
 * highest end (by far less than 2 GiB): a byte is never put at a wrong
 * offset.
 */
static __always_inline __u64 seg_off(__u32 seq, __u32 base, __u64 high)
{
	__u64 off = (high & ~0xffffffffULL) | (__u32)(seq - base);

	if (off + 0x80000000ULL < high)
		off += 0x100000000ULL;
	else if (off > high + 0x80000000ULL && off >= 0x100000000ULL)
		off -= 0x100000000ULL;
	return off;
}

/* Record i of a segment's payload (size bytes from byte from of the
 * packet, stream offset off), as tap_chunk for a send (at most five
 * arguments: the snap length is read here).
 */
__noinline int tap_skb_chunk(struct __sk_buff *skb, __u32 i, __u32 size, __u32 from, __u64 off)
{
	__u32 zero = 0, start = i * SM_TAP_CHUNK, n, cap = 0;
	__u32 snap = tap_snaplen ? tap_snaplen : 0xffffffffu;
	struct sm_tap_scratch *sc;

	if (!skb || i >= SM_TAP_MSG_CHUNKS || start >= size)
		return 1;
	sc = bpf_map_lookup_elem(&scratch, &zero);
	if (!sc)
		return 1;
	n = size - start;
	if (n > SM_TAP_CHUNK)
		n = SM_TAP_CHUNK;
	if (start < snap)
		cap = snap - start < n ? snap - start : n;
	if (cap > SM_TAP_CHUNK)
		cap = 0;
	if (cap) {
		/* 1..SM_TAP_CHUNK as the verifier sees it (6.1 wants a size
		 * it knows is not 0, and learns nothing from cap != 0)
		 */
		__u32 len = ((cap - 1) & (SM_TAP_CHUNK - 1)) + 1;

		if (bpf_skb_load_bytes(skb, from + start, sc->data, len))
			cap = 0;
	}
	tap_out(sc, off + start, n, cap);
	return 0;
}

/* A FIN or RST of this direction, once. */
static __always_inline void seg_event(struct sm_tap_rec *hdr, struct sm_tap_sk *ts, __u8 kind,
				      __u32 once, __u64 off)
{
	struct sm_tap_rec r = *hdr;

	if (ts->flags & once)
		return;
	__sync_fetch_and_or(&ts->flags, once);
	r.kind = kind;
	r.off = off;
	r.len = r.caplen = 0;
	if (bpf_ringbuf_output(&ring, &r, sizeof(r), wakeup_flag(0)))
		lost(0);
}

/* The endpoints of the sidecar's upstream socket on the kernel fast path
 * (it has no state of the data path's: the sidecar's connect is not
 * captured): itself as client, its peer as server, from the packet.
 */
static __always_inline int seg_upstream(struct __sk_buff *skb, struct sm_tap_rec *hdr, int ingress,
					int v6, __u32 l3len)
{
	__u64 cookie = bpf_get_socket_cookie(skb);
	struct sm_fwd *fwd = bpf_map_lookup_elem(&fwd_map, &cookie);
	__u8 *src = ingress ? hdr->server : hdr->client, *dst = ingress ? hdr->client : hdr->server;
	__u16 ports[2];

	if (!fwd)
		return 0;
	if (tap_scope_idx != SM_TAP_ANY_SCOPE && tap_scope_idx != fwd->scope_idx)
		return 0;
	hdr->scope_idx = fwd->scope_idx;
	hdr->dir = ingress;
	hdr->path = SM_TAP_PATH_FAST;
	if (v6) {
		hdr->family = AF_INET6;
		if (bpf_skb_load_bytes(skb, 8, src, 16) || bpf_skb_load_bytes(skb, 24, dst, 16))
			return 0;
	} else {
		hdr->family = AF_INET;
		if (bpf_skb_load_bytes(skb, 12, src, 4) || bpf_skb_load_bytes(skb, 16, dst, 4))
			return 0;
	}
	if (bpf_skb_load_bytes(skb, l3len, ports, sizeof(ports)))
		return 0;
	hdr->client_port = bpf_ntohs(ingress ? ports[1] : ports[0]);
	hdr->server_port = bpf_ntohs(ingress ? ports[0] : ports[1]);
	return !tap_port || tap_port == hdr->client_port || tap_port == hdr->server_port;
}

static __always_inline void tap_skb(struct __sk_buff *skb, int ingress)
{
	__u32 zero = 0, l3len, thlen, plen, seq, base, n;
	__u32 base_flag = ingress ? SM_TAP_F_IN_BASE : SM_TAP_F_OUT_BASE;
	struct bpf_sock *sk = skb->sk;
	struct sm_tap_scratch *sc;
	struct sm_tap_rec hdr = {};
	struct sm_sk_state *st;
	struct sm_tap_sk *ts;
	__u8 ip[20], tcp[16];
	__u64 start, high;
	int v6;

	if (!sk)
		return;
	sk = bpf_sk_fullsock(sk);
	if (!sk || sk->protocol != IPPROTO_TCP)
		return;
	v6 = skb->protocol == bpf_htons(0x86dd);
	if (!v6 && skb->protocol != bpf_htons(0x0800))
		return;
	if (bpf_skb_load_bytes(skb, 0, ip, sizeof(ip)))
		return;
	if (v6) {
		if (ip[6] != IPPROTO_TCP) /* extension headers: not ours */
			return;
		l3len = 40;
	} else {
		if (ip[9] != IPPROTO_TCP)
			return;
		l3len = (ip[0] & 0xf) * 4;
	}
	if (bpf_skb_load_bytes(skb, l3len, tcp, sizeof(tcp)))
		return;
	thlen = (tcp[12] >> 4) * 4;
	if (skb->len < l3len + thlen)
		return;
	plen = skb->len - l3len - thlen;
	if ((tcp[13] & TCP_SYN) || (!plen && !(tcp[13] & (TCP_FIN | TCP_RST))))
		return; /* the handshake and bare ACKs say nothing of the bytes */

	st = bpf_sk_storage_get(&sk_state_map, sk, NULL, 0);
	ts = bpf_sk_storage_get(&tap_sk_map, sk, NULL, 0);
	if (ts && !(ts->flags & SM_TAP_F_SEGMENTS))
		return; /* spliced: its sends are tapped by sk_msg */
	if (st) {
		if (!tap_plain(st) || !tap_endpoints(&hdr, st))
			return;
		hdr.dir ^= ingress;
		hdr.path = SM_TAP_PATH_STACK;
	} else if (!seg_upstream(skb, &hdr, ingress, v6, l3len)) {
		return;
	}
	if (!ts) {
		ts = bpf_sk_storage_get(&tap_sk_map, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
		if (!ts)
			return;
		__sync_fetch_and_or(&ts->flags, SM_TAP_F_SEGMENTS);
	}
	seq = ((__u32)tcp[4] << 24) | ((__u32)tcp[5] << 16) | ((__u32)tcp[6] << 8) | tcp[7];
	if (!(ts->flags & base_flag)) {
		/* started after its open: this direction starts here */
		if (ingress)
			ts->in_base = seq;
		else
			ts->out_base = seq;
		__sync_fetch_and_or(&ts->flags, base_flag);
	}
	base = ingress ? ts->in_base : ts->out_base;
	high = ingress ? ts->in_off : ts->off;
	start = seg_off(seq, base, high);
	/* Every segment as it is, a retransmission too: here a segment that
	 * starts below the highest end seen may as well be one another CPU
	 * overtook. User space puts them in order and drops what it wrote.
	 */
	n = plen;

	hdr.ts_ns = bpf_ktime_get_ns();
	hdr.kind = SM_TAP_DATA;
	hdr.flags = (__u8)ts->flags;
	/* the app's process, where its connect named it; else not known */
	hdr.pid_tgid = ingress || !(st && (st->flags & SM_SK_APP)) ? 0 : (__u64)ts->pid << 32;
	if (n) {
		if (start + plen > high) {
			if (ingress)
				ts->in_off = start + plen;
			else
				ts->off = start + plen;
		}
		sc = bpf_map_lookup_elem(&scratch, &zero);
		if (!sc || __sync_lock_test_and_set(&sc->busy, 1)) {
			lost(n);
		} else {
			sc->rec = hdr;
			sc->wake = 0;
			for (__u32 i = 0; i < SM_TAP_MSG_CHUNKS; i++)
				if (tap_skb_chunk(skb, i, n, l3len + thlen, start))
					break;
			if (n > SM_TAP_MSG_CHUNKS * SM_TAP_CHUNK)
				lost(n - SM_TAP_MSG_CHUNKS * SM_TAP_CHUNK);
			*(volatile __u32 *)&sc->busy = 0;
		}
	}
	if (tcp[13] & TCP_FIN)
		seg_event(&hdr, ts, SM_TAP_FIN, ingress ? SM_TAP_F_IN_FIN : SM_TAP_F_OUT_FIN,
			  start + plen);
	if (tcp[13] & TCP_RST)
		seg_event(&hdr, ts, SM_TAP_RST, SM_TAP_F_RST, start + plen);
}

SEC("cgroup_skb/egress")
int tap_skb_out(struct __sk_buff *skb)
{
	tap_skb(skb, 0);
	return 1;
}

SEC("cgroup_skb/ingress")
int tap_skb_in(struct __sk_buff *skb)
{
	tap_skb(skb, 1);
	return 1;
}
