// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmesh tap: the programs one `sockmesh tap` process loads and puts
 * into the data path's tap program arrays (tap_msg_calls, indexed by the
 * path a send took, and tap_sockops_calls in bpf/sockmesh.bpf.c), which
 * tail-call them after their own work; with its own ring buffer, filter
 * and per-socket offsets. Everything here lives as long as that process:
 * the kernel empties the arrays when it ends, and the data path then turns
 * its check off again. See docs/design.md, "The tap".
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sockmesh_abi.h"
#include "ext.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set before load (user/lib/tap.c). */
const volatile __u32 tap_scope_idx = SM_TAP_ANY_SCOPE;
const volatile __u16 tap_port; /* 0: any; else the client's or the server's */
const volatile __u32 tap_snaplen; /* payload bytes kept of each send; 0: all */

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

/* A send of a spliced socket that took path: copied in records of
 * SM_TAP_CHUNK bytes. The offset moves whatever happens to the copy, so a
 * lost record is a gap, never a shift.
 */
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
	sc->rec.off = off + start;
	sc->rec.len = n;
	sc->rec.caplen = cap;
	barrier_var(cap);
	if (cap > SM_TAP_CHUNK)
		cap = 0;
	if (bpf_ringbuf_output(&ring, &sc->rec, sizeof(sc->rec) + cap, wakeup_flag(sc->wake)))
		lost(n);
	sc->wake = 0;
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

/* A record without payload (OPEN, FIN, RST). */
static __always_inline void tap_event(struct bpf_sock *sk, struct sm_sk_state *st, __u8 kind)
{
	struct sm_tap_rec r = {};
	struct sm_tap_sk *ts;

	if (!tap_endpoints(&r, st))
		return;
	ts = bpf_sk_storage_get(&tap_sk_map, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!ts)
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

/* A spliced socket established (OPEN), shut its direction down (FIN) or
 * ended without its FIN (RST: from ESTABLISHED or CLOSE_WAIT straight to
 * CLOSE, as a reset or an abortive close does). Tail-called at the end of
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
