// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmesh flows: the programs one flow consumer (`sockmesh flows`,
 * sockmeshd --flows) loads and puts into the data path's flow program
 * arrays (flow_msg_calls, indexed by the path a send took, and
 * flow_sockops_calls in bpf/sockmesh.bpf.c), which tail-call them after
 * their own work; each ends by tail-calling the tap's program, if a tap
 * runs. One record per captured connection in flow_map from its open to
 * its close; open and close go to the ring, user space reads flow_map for
 * the records in between. Everything here lives as long as that process.
 * See docs/design.md, "Flow events".
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "sockmesh_abi.h"
#include "ext.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set before load (user/lib/flows.c). */
const volatile __u32 flow_scope_idx = SM_TAP_ANY_SCOPE;
/* What this kernel lets these programs ask about the current task
 * (SM_FLOW_H_*, user space asked it): the verifier never sees a call
 * whose bit is clear (6.1's sockops programs have neither).
 */
const volatile __u32 flow_helpers;

/* Read by user space (mmap of .bss). */
__u64 lost_recs; /* open or close records the ring could not take */
__u64 lost_flows; /* connections flow_map had no room for */

/* The data path's tap program arrays (reused by id): a tap runs after us. */
SM_TAP_CALLS();

/* Open connections, keyed by their flow socket's cookie; size set before
 * load (--max-flows).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct sm_flow);
} flow_map SEC(".maps");

/* Size set before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} ring SEC(".maps");

/* A quarter of the ring waiting wakes the reader; it also looks every
 * 100 ms (sockmesh_flows__poll): a wakeup per connection would cost a busy
 * node a context switch per connection.
 */
static __always_inline __u64 wakeup_flag(void)
{
	if (bpf_ringbuf_query(&ring, BPF_RB_AVAIL_DATA) >
	    bpf_ringbuf_query(&ring, BPF_RB_RING_SIZE) / 4)
		return BPF_RB_FORCE_WAKEUP;
	return BPF_RB_NO_WAKEUP;
}

static __always_inline void emit(struct sm_flow *f, __u8 kind)
{
	f->kind = kind;
	if (bpf_ringbuf_output(&ring, f, sizeof(*f), wakeup_flag()))
		__sync_fetch_and_add(&lost_recs, 1);
}

/* The socket a connection's record is kept under (its cookie): the app's
 * for outbound, the proxy's accepted socket for inbound and pod to pod.
 */
static __always_inline int flow_socket(const struct sm_sk_state *st, __u8 *dir)
{
	if (st->flags & SM_SK_APP) {
		*dir = SM_FLOW_OUTBOUND;
		return 1;
	}
	if (st->flags & SM_SK_INBOUND) {
		/* spliced at accept: its client is a local pod's sidecar */
		*dir = (st->flags & SM_SK_SPLICE) ? SM_FLOW_POD_TO_POD : SM_FLOW_INBOUND;
		return 1;
	}
	return 0;
}

static __always_inline void flow_open(struct bpf_sock_ops *skops, const struct sm_sk_state *st)
{
	struct sm_endpoints e;
	struct sm_flow f = {};
	__u8 dir;

	if (!flow_socket(st, &dir))
		return;
	if (flow_scope_idx != SM_TAP_ANY_SCOPE && flow_scope_idx != st->scope_idx)
		return;
	f.cookie = bpf_get_socket_cookie(skops);
	f.open_ns = bpf_ktime_get_ns();
	f.scope_idx = st->scope_idx;
	f.dir = dir;
	if (st->flags & SM_SK_SPLICE)
		f.flags = SM_FLOW_F_SPLICED;
	/* 1 for the connecting end (its SYN), 0 for the accepted one */
	f.acked0 = skops->bytes_acked > 255 ? 255 : (__u8)skops->bytes_acked;
	/* An app's connect to its proxy completes in its own system call
	 * (loopback); a passive open runs for whoever the softirq found.
	 */
	if (dir == SM_FLOW_OUTBOUND && (flow_helpers & SM_FLOW_H_SOCKOPS_PID)) {
		f.pid = (__u32)(bpf_get_current_pid_tgid() >> 32);
		if (flow_helpers & SM_FLOW_H_SOCKOPS_COMM)
			bpf_get_current_comm(f.comm, sizeof(f.comm));
	}
	sm_endpoints_of(&e, st);
	f.family = e.family;
	f.client_port = e.client_port;
	f.server_port = e.server_port;
	__builtin_memcpy(f.client, e.client, 16);
	__builtin_memcpy(f.server, e.server, 16);
	if (bpf_map_update_elem(&flow_map, &f.cookie, &f, BPF_ANY)) {
		__sync_fetch_and_add(&lost_flows, 1);
		return;
	}
	/* its close is the close record */
	if (!(skops->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_STATE_CB_FLAG))
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							 BPF_SOCK_OPS_STATE_CB_FLAG);
	emit(&f, SM_FLOW_OPEN);
}

/* The kernel's socket fields read at close (CO-RE: libbpf finds them in
 * the running kernel's BTF).
 */
struct sock_common___fl {
	unsigned long skc_flags;
} __attribute__((preserve_access_index));

struct sock___fl {
	struct sock_common___fl __sk_common;
} __attribute__((preserve_access_index));

struct inet_sock___fl {
	struct sock___fl sk;
} __attribute__((preserve_access_index));

struct inet_connection_sock___fl {
	struct inet_sock___fl icsk_inet;
} __attribute__((preserve_access_index));

struct tcp_sock___fl {
	struct inet_connection_sock___fl inet_conn;
	__u32 write_seq;
} __attribute__((preserve_access_index));

#define SM_SOCK_DONE 1 /* enum sock_flags: the peer's FIN arrived */

static __always_inline void flow_close(struct bpf_sock_ops *skops, struct bpf_sock *sk,
				       const struct sm_sk_state *st)
{
	__u64 cookie = bpf_get_socket_cookie(skops);
	struct sm_flow *f = bpf_map_lookup_elem(&flow_map, &cookie);
	struct tcp_sock___fl *tp;
	__u32 server, from, fin_in, fin_out;
	__u64 tcp[2];

	if (!f)
		return;
	f->end_ns = bpf_ktime_get_ns();
	f->sk_flags |= st->flags;
	f->srtt_us = skops->srtt_us >> 3; /* TCP keeps it times 8 */
	f->retrans = skops->total_retrans;
	/* What TCP counted, without the SYN's and FIN's sequence numbers:
	 * the SYN as acknowledged at open (acked0), our FIN if it was sent
	 * and acknowledged, the peer's if it arrived (tcp_fin() marks the
	 * socket SOCK_DONE). Each direction is the larger of the sends
	 * counted above and TCP's count: a never spliced connection has only
	 * TCP's; a spliced one whose sender was not in the splice (a client
	 * pod's process outside the attach cgroup) had its bytes come over TCP.
	 */
	from = skops->args[0];
	tp = (struct tcp_sock___fl *)bpf_skc_to_tcp_sock(sk);
	fin_in = tp && (tp->inet_conn.icsk_inet.sk.__sk_common.skc_flags & (1ul << SM_SOCK_DONE));
	fin_out = tp &&
		  (from == BPF_TCP_FIN_WAIT1 || from == BPF_TCP_FIN_WAIT2 ||
		   from == BPF_TCP_CLOSING || from == BPF_TCP_LAST_ACK) &&
		  skops->snd_una == tp->write_seq;
	tcp[0] = skops->bytes_acked;
	tcp[1] = skops->bytes_received;
	tcp[0] = tcp[0] > f->acked0 + fin_out ? tcp[0] - f->acked0 - fin_out : 0;
	tcp[1] = tcp[1] > fin_in ? tcp[1] - fin_in : 0;
	_Static_assert(SM_TAP_PATHS == 3, "the sum below");
	server = f->dir != SM_FLOW_OUTBOUND; /* the flow socket's end */
	for (int i = 0; i < 2; i++) {
		/* i: 0 its sends, 1 what it received */
		__u64 *b = f->bytes[server ^ i];
		__u64 counted = b[0] + b[1] + b[2];

		if (tcp[i] > counted)
			b[SM_TAP_PATH_STACK] += tcp[i] - counted;
	}
	emit(f, SM_FLOW_CLOSE);
	bpf_map_delete_elem(&flow_map, &cookie);
}

/* Opens and closes of flow sockets; then the tap's program. */
SEC("sockops")
int flow_sockops(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct sm_sk_state *st = NULL;

	if (sk)
		st = bpf_sk_storage_get(&sk_state_map, sk, NULL, 0);
	if (st) {
		if (skops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB ||
		    skops->op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
			flow_open(skops, st);
		else if (skops->op == BPF_SOCK_OPS_STATE_CB && skops->args[1] == BPF_TCP_CLOSE)
			flow_close(skops, sk, st);
	}
	bpf_tail_call(skops, &tap_sockops_calls, 0);
	return 1;
}

/* A send of a spliced socket that took path: counted into its connection's
 * record, by direction (the connecting end's sends are client -> server).
 */
static __always_inline void flow_msg(struct sk_msg_md *msg, __u32 path)
{
	struct bpf_sock *sk = msg->sk;
	struct sm_sk_state *st;
	struct sm_pair *pair;
	struct sm_flow *f;
	__u32 dir, fside;
	__u64 key;

	if (!sk || path >= SM_TAP_PATHS)
		return;
	st = bpf_sk_storage_get(&sk_state_map, sk, NULL, 0);
	if (!st)
		return;
	pair = sm_pair_of(st);
	/* a proxy's leg to an app in its own pod is not a connection of its own */
	if (!pair || (pair->flags & SM_PAIR_LOCAL_LEG))
		return;
	fside = (st->flags & (SM_SK_APP | SM_SK_PROXY)) ? 0 : 1;
	key = pair->cookie[fside];
	f = bpf_map_lookup_elem(&flow_map, &key);
	if (!f)
		return;
	dir = st->side & 1;
	if (path == SM_TAP_PATH_FAST && sm_fast_egress(st)) {
		/* out of the sidecar's upstream socket: not countable here */
		f->flags |= dir ? SM_FLOW_F_UNCOUNTED1 : SM_FLOW_F_UNCOUNTED0;
		return;
	}
	/* one writer per counter: each socket's sends hold its lock */
	f->bytes[dir][path] += msg->size;
	/* Why this send took TCP, as it was at the send: a sender that left
	 * for the budget comes back once its reader caught up and its flag
	 * goes, so its state at the close would no longer say. Either end
	 * may send: atomic.
	 */
	if (path == SM_TAP_PATH_STACK) {
		__u32 why = st->flags & (SM_SK_OVER_BUDGET | SM_SK_NO_SPLICE);
		struct sm_fwd *fwd;

		if (!why) {
			/* the peer is a sidecar's socket on the kernel fast path
			 * whose bytes are held for its relay, a budget behind
			 */
			fwd = bpf_map_lookup_elem(&fwd_map, &pair->cookie[(st->side & 1) ^ 1]);
			if (fwd && (fwd->flags & SM_FWD_HELD_TCP))
				why = SM_SK_OVER_BUDGET;
		}
		if (why)
			__sync_fetch_and_or(&f->sk_flags, why);
	}
	if (dir == fside && !(f->flags & SM_FLOW_F_PID_SET)) {
		f->pid = (__u32)(bpf_get_current_pid_tgid() >> 32);
		if (flow_helpers & SM_FLOW_H_MSG_COMM)
			bpf_get_current_comm(f->comm, sizeof(f->comm));
		f->flags |= SM_FLOW_F_PID_SET;
	}
}

/* One program per path (the data path tail-calls flow_msg_calls[path]);
 * every verdict is SK_PASS, a redirect is recorded in the message.
 */
SEC("sk_msg")
int flow_msg_splice(struct sk_msg_md *msg)
{
	flow_msg(msg, SM_TAP_PATH_SPLICE);
	bpf_tail_call(msg, &tap_msg_calls, SM_TAP_PATH_SPLICE);
	return SK_PASS;
}

SEC("sk_msg")
int flow_msg_stack(struct sk_msg_md *msg)
{
	flow_msg(msg, SM_TAP_PATH_STACK);
	bpf_tail_call(msg, &tap_msg_calls, SM_TAP_PATH_STACK);
	return SK_PASS;
}

SEC("sk_msg")
int flow_msg_fast(struct sk_msg_md *msg)
{
	flow_msg(msg, SM_TAP_PATH_FAST);
	bpf_tail_call(msg, &tap_msg_calls, SM_TAP_PATH_FAST);
	return SK_PASS;
}
