// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmesh data path:
 *   outbound capture         cgroup/connect4, connect6
 *   DNS capture              cgroup/sendmsg4/6, recvmsg4/6 (UDP; TCP via connect)
 *   what the app sees        cgroup/getpeername4/6 (the original destination)
 *   original destination     sockops (established) + cgroup/getsockopt
 *   inbound capture          sk_lookup (steered to the proxy's listener, no NAT)
 *   local splice             sockops (SOCKHASH insert) + sk_msg (redirect)
 *                            + cgroup_skb/ingress (a FIN waits for the splice)
 *   kernel fast path         sk_msg + sk_skb stream verdict (fp_map); syscall and
 *                            tc programs the library runs (BPF_PROG_TEST_RUN)
 *                            + tp_btf/sock_recv_length or fexit/sk_msg_recvmsg
 *                              (what the reader has read)
 *
 * Only UAPI context structs are read (bpf_sock_addr, bpf_sock_ops,
 * sk_msg_md, bpf_sockopt, bpf_sk_lookup); the verifier rewrites those accesses for the
 * running kernel, so the object needs no vmlinux.h and loads unchanged on
 * every kernel that has the hooks (see docs/design.md). The one tracing
 * program only passes its socket argument to a helper.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "sockmesh_abi.h"
#include "hooks.bpf.h"

#define SM_ECONNREFUSED 111 /* errno */

#define AF_INET 2
#define AF_INET6 10
#define SOL_IP 0
#define SOL_IPV6 41
/* The kernel stops copying getsockopt buffers to BPF at one page; an option
 * longer than that must be handed back untouched (see sm_getsockopt).
 */
#define SM_SOCKOPT_BUF_MAX 4096
/* Every netns' loopback device is ifindex 1. */
#define SM_LOOPBACK_IFINDEX 1

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SM_DEFAULT_MAX_SCOPES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sm_scope_key);
	__type(value, struct sm_policy);
} scope_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, SM_DEFAULT_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sm_cidr_key);
	__type(value, __u8);
} cidr_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SM_DEFAULT_MAX_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sm_port_key);
	__type(value, __u8);
} port_map SEC(".maps");

/* Between connect() and establishment only. LRU because a connect that fails
 * before its SYN (no route, no local port) never reaches a sockops callback
 * that could delete its entry; live entries exist for one handshake, so
 * eviction only ever takes such leftovers unless the table is far too small
 * (then origdst_miss counts it).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SM_DEFAULT_MAX_PENDING);
	__type(key, __u64); /* socket cookie */
	__type(value, struct sm_pending);
} pending_map SEC(".maps");

/* Original destinations from the app's established connect until the proxy's
 * end is established, which moves its entry into the accepted socket's
 * storage (the connection's lifetime is the socket's, no close callback).
 * LRU for pending_map's reason: an entry whose proxy end never comes (the
 * listener dropped the final ACK and the app gave up) has nobody to delete
 * it; live entries exist for one handshake.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SM_DEFAULT_MAX_PENDING);
	__type(key, struct sm_tuple);
	__type(value, struct sm_origdst);
} origdst_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SM_DEFAULT_MAX_SPLICE_SOCKS);
	__type(key, struct sm_tuple);
	__type(value, __u64);
} splice_map SEC(".maps");

/* sk_state_map (per-socket state): bpf/hooks.bpf.h */

/* Addresses of enrolled pods -> their netns cookie (written by user space). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SM_DEFAULT_MAX_POD_ADDRS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sm_pod_addr_key);
	__type(value, __u64);
} pod_addr_map SEC(".maps");

/* Each pod's inbound listener, registered at listen() by sockops (or by
 * user space for a proxy that was listening before its pod was enrolled).
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SM_LISTENERS_PER_SCOPE *SM_DEFAULT_MAX_SCOPES);
	__type(key, struct sm_listener_key);
	__type(value, __u64);
} listener_map SEC(".maps");

/* Ports listened on under our sockops (on_listen; LRU: an evicted entry
 * only costs its local legs the splice, a stale one a miss).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SM_DEFAULT_MAX_PENDING);
	__type(key, struct sm_listen_key);
	__type(value, __u32);
} listen_map SEC(".maps");

/* SYNs sk_lookup steered, until the connection is established (LRU for the
 * same reason as pending_map: a SYN that never completes leaves no callback).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, SM_DEFAULT_MAX_PENDING);
	__type(key, struct sm_tuple);
	__type(value, __u32); /* scope_idx */
} steered_map SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sm_dns_state);
} dns_state_map SEC(".maps");

/* Per spliced connection: who sent how much (see sm_pair). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SM_DEFAULT_MAX_CONNS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sm_tuple);
	__type(value, struct sm_pair);
} pair_map SEC(".maps");

/* Per-CPU counters per scope slot; user space creates a slot on enroll. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, SM_DEFAULT_MAX_SCOPES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct sm_stats);
} stats_map SEC(".maps");

/* Names of enrolled scopes, for status output; never read by programs. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SM_DEFAULT_MAX_SCOPES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct sm_scope_key);
	__type(value, struct sm_scope_meta);
} scope_meta_map SEC(".maps");

/* Load-time settings for processes that open the instance later (the
 * programs use the read-only globals).
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sm_config);
} config_map SEC(".maps");

/* Kernel fast path (see sm_fwd): the sidecar's TCP-fed sockets, by cookie
 * (the stream verdict runs on them; egress redirect targets)...
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, SM_DEFAULT_MAX_SPLICE_SOCKS);
	__type(key, __u64);
	__type(value, __u64);
} fp_map SEC(".maps");

/* ... one entry per direction, keyed by the bypassed receiver's cookie ... */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SM_DEFAULT_MAX_FWD);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct sm_fwd);
} fwd_map SEC(".maps");

/* ... and what the library's pump has relayed of it (written by user space
 * only, so its updates never overwrite the programs' counters).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SM_DEFAULT_MAX_FWD);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, __u64);
} relay_map SEC(".maps");

static __always_inline void stat_add(__u32 idx, enum sm_stat stat, __u64 n)
{
	struct sm_stats *s = bpf_map_lookup_elem(&stats_map, &idx);

	if (s)
		s->c[stat] += n;
}

static __always_inline void stat_inc(__u32 idx, enum sm_stat stat)
{
	stat_add(idx, stat, 1);
}

static __always_inline int is_v4_mapped(const __u32 ip6[4])
{
	return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == bpf_htonl(0xffff);
}

/* Fill a 16-byte address the way the ABI stores it. */
static __always_inline void addr_store(__u8 dst[16], __u32 family, __u32 ip4, const __u32 ip6[4])
{
	__u32 *d = (__u32 *)dst;

	if (family == AF_INET) {
		d[0] = ip4;
		d[1] = d[2] = d[3] = 0;
	} else {
		d[0] = ip6[0];
		d[1] = ip6[1];
		d[2] = ip6[2];
		d[3] = ip6[3];
	}
}

/* The one tuple builder: a socket's view of its connection. IPv4 sockets and
 * IPv6 sockets talking v4-mapped produce the same key, so an IPv6 app and an
 * IPv4 proxy still find each other.
 */
static __always_inline void tuple_fill(struct sm_tuple *t, __u64 netns, __u32 family, __u32 l4,
				       const __u32 l6[4], __u16 lport, __u32 r4, const __u32 r6[4],
				       __u16 rport)
{
	if (family == AF_INET6 && is_v4_mapped(l6) && is_v4_mapped(r6)) {
		family = AF_INET;
		l4 = l6[3];
		r4 = r6[3];
	}
	t->netns = netns;
	t->family = family;
	t->local_port = lport;
	t->remote_port = rport;
	addr_store(t->local, family, l4, l6);
	addr_store(t->remote, family, r4, r6);
}

static __always_inline void tuple_from_sockops(struct sm_tuple *t, struct bpf_sock_ops *skops)
{
	__u32 l6[4] = { skops->local_ip6[0], skops->local_ip6[1], skops->local_ip6[2],
			skops->local_ip6[3] };
	__u32 r6[4] = { skops->remote_ip6[0], skops->remote_ip6[1], skops->remote_ip6[2],
			skops->remote_ip6[3] };

	tuple_fill(t, bpf_get_netns_cookie(skops), skops->family, skops->local_ip4, l6,
		   (__u16)skops->local_port, skops->remote_ip4, r6,
		   (__u16)bpf_ntohl(skops->remote_port));
}

/* ---- the tap's hooks ----------------------------------------------------------
 * `sockmesh tap` (user/lib/tap.c, bpf/tap.bpf.c) puts its programs into
 * these two program arrays, which are never pinned: the kernel empties a
 * program array when the last user-space reference to it goes, so when
 * the tap's process ends, however it ends, its programs are out. The data
 * path carries no tap code, map or ring of its own: while no tap runs it
 * reads one word, sm_tap_on, and does nothing else. The tap sets the word
 * once its programs are in; a tail call that finds the array empty (the
 * tap gone) clears it again.
 */
__u32 sm_tap_on SEC(".data.tap");

/* The tap's programs (bpf/hooks.bpf.h), tail-called after the verdict and
 * after an establishment or state change.
 */
SM_TAP_CALLS();

/* Flow events (sockmesh flows, sockmeshd --flows): like the tap, a word
 * the data path reads and two program arrays it tail-calls while a flow
 * consumer runs (bpf/flows.bpf.c), before the tap's: the consumer's
 * programs tail-call the tap's in turn. Never pinned either. See
 * docs/design.md, "Flow events".
 */
__u32 sm_flows_on SEC(".data.flows");
SM_PROG_ARRAY(flow_msg_calls, SM_TAP_PATHS);
SM_PROG_ARRAY(flow_sockops_calls, 1);

/* ---- outbound capture ---------------------------------------------------- */

/* The scope of the calling socket: its netns (pods) first, then its cgroup
 * or the nearest enrolled ancestor cgroup (bare hosts).
 */
static __always_inline struct sm_policy *scope_lookup_in(__u64 netns)
{
	struct sm_scope_key key = sm_scope_key_make(SM_SCOPE_NETNS, netns);
	struct sm_policy *pol, *found = NULL;
	__u64 id, self;
	int level;

	pol = bpf_map_lookup_elem(&scope_map, &key);
	if (pol)
		return pol;

	key.kind = SM_SCOPE_CGROUP;
	self = bpf_get_current_cgroup_id();
	key.id = self;
	pol = bpf_map_lookup_elem(&scope_map, &key);
	if (pol)
		return pol;

	/* Walk down from the root; the deepest enrolled ancestor wins. */
	for (level = 1; level < SM_MAX_CGROUP_DEPTH; level++) {
		id = bpf_get_current_ancestor_cgroup_id(level);
		if (!id || id == self)
			break;
		key.id = id;
		pol = bpf_map_lookup_elem(&scope_map, &key);
		if (pol)
			found = pol;
	}
	return found;
}

#define scope_lookup(ctx) scope_lookup_in(bpf_get_netns_cookie(ctx))

static __always_inline int rule_port(__u32 rules_id, __u16 port, __u8 list)
{
	struct sm_port_key k = sm_port_key_make(rules_id, list, port);

	return bpf_map_lookup_elem(&port_map, &k) != NULL;
}

static __always_inline int rule_cidr(__u32 rules_id, const struct sm_addr *a, __u8 list)
{
	struct sm_cidr_key k;

	sm_cidr_key_init(&k, rules_id, list, (__u8)a->family, a->addr,
			 a->family == AF_INET ? 32 : 128);
	return bpf_map_lookup_elem(&cidr_map, &k) != NULL;
}

static __always_inline struct sm_policy *netns_policy(__u64 netns)
{
	struct sm_scope_key key = sm_scope_key_make(SM_SCOPE_NETNS, netns);

	return bpf_map_lookup_elem(&scope_map, &key);
}

/* The netns of a local pod that owns addr, or NULL. */
static __always_inline __u64 *pod_netns(__u32 family, const __u8 addr[16])
{
	struct sm_pod_addr_key k;

	sm_pod_addr_key_init(&k, family, addr);
	return bpf_map_lookup_elem(&pod_addr_map, &k);
}

/* Inbound policy, written once for sk_lookup and sockops: is a connection to
 * this local port steered to the pod's proxy? The proxy's own ports never are.
 */
static __always_inline enum sm_stat inbound_verdict(const struct sm_policy *pol, __u16 port)
{
	if (!(pol->flags & SM_POL_INBOUND))
		return SM_STAT_INBOUND_BYPASS_NOT_INCLUDED_PORT;
	if (port == pol->inbound_port || port == pol->proxy_port)
		return SM_STAT_INBOUND_BYPASS_EXCLUDED_PORT;
	if ((pol->flags & SM_POL_INBOUND_EXCLUDE_PORTS) &&
	    rule_port(pol->rules_id, port, SM_LIST_INBOUND_EXCLUDE))
		return SM_STAT_INBOUND_BYPASS_EXCLUDED_PORT;
	if ((pol->flags & SM_POL_INBOUND_INCLUDE_PORTS) &&
	    !rule_port(pol->rules_id, port, SM_LIST_INBOUND_INCLUDE))
		return SM_STAT_INBOUND_BYPASS_NOT_INCLUDED_PORT;
	return SM_STAT_INBOUND_CAPTURED;
}

static __always_inline int addr_is_loopback(__u32 family, const __u8 addr[16])
{
	const __u32 *w = (const __u32 *)addr;

	if (family == AF_INET)
		return addr[0] == 127;
	return w[0] == 0 && w[1] == 0 && w[2] == 0 && w[3] == bpf_htonl(1);
}

static __always_inline int is_loopback(const struct sm_addr *a)
{
	return addr_is_loopback(a->family, a->addr);
}

/* A source that can only be inside the pod: loopback, or ::6, the address
 * istio's sidecars bind for IPv6 inbound passthrough (as 127.0.0.6 for IPv4,
 * which loopback covers); it lives on the pod's lo.
 */
static __always_inline int tuple_remote_is_inside(const struct sm_tuple *t)
{
	const __u32 *w = (const __u32 *)t->remote;

	if (addr_is_loopback(t->family, t->remote))
		return 1;
	return t->family == AF_INET6 && w[0] == 0 && w[1] == 0 && w[2] == 0 && w[3] == bpf_htonl(6);
}

/* Decide whether to capture; returns the counter that explains a bypass, or
 * SM_STAT_CAPTURED. Written once for both families.
 */
static __always_inline enum sm_stat
capture_verdict(struct bpf_sock_addr *ctx, const struct sm_policy *pol, const struct sm_addr *dst)
{
	__u64 ugid = bpf_get_current_uid_gid();
	__u32 flags = pol->flags;

	if (is_loopback(dst))
		return SM_STAT_BYPASS_LOOPBACK;
	if ((__u32)ugid == pol->proxy_uid)
		return SM_STAT_BYPASS_PROXY_UID;
	if ((flags & SM_POL_PROXY_GID) && (__u32)(ugid >> 32) == pol->proxy_gid)
		return SM_STAT_BYPASS_PROXY_GID;
	if (flags & SM_POL_PROXY_MARK) {
		struct bpf_sock *sk = ctx->sk;

		if (sk && sk->mark == pol->proxy_mark)
			return SM_STAT_BYPASS_PROXY_MARK;
	}
	if ((flags & SM_POL_EXCLUDE_PORTS) && rule_port(pol->rules_id, dst->port, SM_LIST_EXCLUDE))
		return SM_STAT_BYPASS_EXCLUDED_PORT;
	if ((flags & SM_POL_INCLUDE_PORTS) && !rule_port(pol->rules_id, dst->port, SM_LIST_INCLUDE))
		return SM_STAT_BYPASS_NOT_INCLUDED_PORT;
	if ((flags & SM_POL_EXCLUDE_CIDRS) && rule_cidr(pol->rules_id, dst, SM_LIST_EXCLUDE))
		return SM_STAT_BYPASS_EXCLUDED_CIDR;
	if ((flags & (dst->family == AF_INET ? SM_POL_INCLUDE_CIDR4 : SM_POL_INCLUDE_CIDR6)) &&
	    !rule_cidr(pol->rules_id, dst, SM_LIST_INCLUDE))
		return SM_STAT_BYPASS_NOT_INCLUDED_CIDR;
	return SM_STAT_CAPTURED;
}

/* Is this socket the proxy's own (its uid, gid or mark)? */
static __always_inline int proxy_socket(struct bpf_sock_addr *ctx, const struct sm_policy *pol)
{
	__u64 ugid = bpf_get_current_uid_gid();

	if ((__u32)ugid == pol->proxy_uid ||
	    ((pol->flags & SM_POL_PROXY_GID) && (__u32)(ugid >> 32) == pol->proxy_gid))
		return 1;
	if (pol->flags & SM_POL_PROXY_MARK) {
		struct bpf_sock *sk = ctx->sk;

		if (sk && sk->mark == pol->proxy_mark)
			return 1;
	}
	return 0;
}

/* The owner of a socket (its creator's uid, as the kernel keeps it in
 * sk_uid; CO-RE: libbpf finds the field in the running kernel's BTF).
 */
struct sock___sm {
	struct {
		__u32 val;
	} sk_uid;
	void *sk_user_data; /* the psock of a socket in a sockmap (low bits: flags) */
} __attribute__((preserve_access_index));

/* A listener may receive a scope's captured connections only if root or
 * the scope's proxy uid created it (HAProxy binds as root, then drops to
 * its uid; Envoy binds as its uid): any other user of the pod or host who
 * binds a proxy port first, or in the family the proxy left free, must not
 * receive other apps' traffic and original destinations (issue 12).
 */
static __always_inline int listener_trusted(struct bpf_sock *sk, const struct sm_policy *pol)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	__u32 uid;

	if (!tp)
		return 0;
	uid = ((struct sock___sm *)tp)->sk_uid.val;
	return uid == 0 || uid == pol->proxy_uid;
}

enum sm_listener_state { SM_LISTENER_NONE, SM_LISTENER_FOREIGN, SM_LISTENER_TRUSTED };

/* Who would accept a connect to the local proxy at port: the kernel's own
 * lookup (the listener the connection would reach: bound address, family,
 * dual stack, SO_REUSEPORT all as the kernel decides them), in the
 * connecting socket's netns.
 */
static __always_inline enum sm_listener_state
proxy_listener(struct bpf_sock_addr *ctx, const struct sm_policy *pol, int to6, __u16 port)
{
	struct bpf_sock_tuple t = {};
	enum sm_listener_state ret;
	struct bpf_sock *sk;
	__u32 len;

	if (!to6) {
		t.ipv4.saddr = bpf_htonl(0x7f000001);
		t.ipv4.daddr = bpf_htonl(0x7f000001);
		t.ipv4.dport = bpf_htons(port);
		len = sizeof(t.ipv4);
	} else {
		t.ipv6.saddr[3] = bpf_htonl(1);
		t.ipv6.daddr[3] = bpf_htonl(1);
		t.ipv6.dport = bpf_htons(port);
		len = sizeof(t.ipv6);
	}
	sk = bpf_sk_lookup_tcp(ctx, &t, len, BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return SM_LISTENER_NONE;
	ret = listener_trusted(sk, pol) ? SM_LISTENER_TRUSTED : SM_LISTENER_FOREIGN;
	bpf_sk_release(sk);
	return ret;
}

/* No proxy listener to hand a connection to (the proxy not listening yet,
 * or only another user on its port): refuse it (fail closed: a connect
 * fails with ECONNREFUSED, an inbound client gets a reset, as under istio's
 * REDIRECT) or leave it uncaptured (fail open). Written once for connect
 * and sk_lookup; true means refuse.
 */
static __always_inline int no_proxy_refuse(const struct sm_policy *pol)
{
	if (pol->flags & SM_POL_FAIL_OPEN) {
		stat_inc(pol->scope_idx, SM_STAT_BYPASS_NO_PROXY);
		return 0;
	}
	stat_inc(pol->scope_idx, SM_STAT_REFUSED_NO_PROXY);
	return 1;
}

/* Is this a DNS query the scope sends to its proxy's DNS port? Written once
 * for TCP (connect) and UDP (connect, sendmsg).
 */
static __always_inline int dns_wanted(struct bpf_sock_addr *ctx, const struct sm_policy *pol,
				      const struct sm_addr *dst)
{
	if (!(pol->flags & SM_POL_DNS) || dst->port != SM_DNS_PORT)
		return 0;
	if (proxy_socket(ctx, pol))
		return 0; /* the DNS proxy's own upstream queries */
	if (pol->flags & SM_POL_DNS_ALL)
		return 1;
	return rule_cidr(pol->rules_id, dst, SM_LIST_DNS_SERVERS);
}

/* The proxy connects to an app in its own pod (its inbound leg: to
 * loopback, or to one of the pod's addresses, e.g. from 127.0.0.6 as
 * istio's sidecars do): mark the socket, so that sockops splices the two
 * ends once established like a captured connection's (on_active_local_leg,
 * on_passive_local_leg). Both are local sockets of one netns.
 */
static __always_inline void local_leg(struct bpf_sock_addr *ctx, const struct sm_policy *pol,
				      const struct sm_addr *dst)
{
	struct sm_sk_state *st;
	__u64 *ns;

	if (!(pol->flags & SM_POL_SPLICE) || !ctx->sk || !proxy_socket(ctx, pol))
		return;
	if (!is_loopback(dst)) {
		ns = pod_netns(dst->family, dst->addr);
		if (!ns || *ns != bpf_get_netns_cookie(ctx))
			return;
	}
	st = bpf_sk_storage_get(&sk_state_map, ctx->sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		stat_inc(pol->scope_idx, SM_STAT_MAP_FULL);
		return;
	}
	st->flags = SM_SK_LOCAL_LEG;
	st->scope_idx = pol->scope_idx;
}

/* Remember where the app wanted to go; on success the caller rewrites the
 * destination to the proxy (to6: in IPv6). Returns the proxy port, or 0 to
 * leave it alone; *refuse: fail the connect instead (no trusted proxy
 * listener, fail closed).
 */
static __always_inline __u16 capture(struct bpf_sock_addr *ctx, const struct sm_addr *dst, int to6,
				     __u32 *scope_idx, int *refuse)
{
	struct sm_pending p = {};
	struct sm_policy *pol;
	enum sm_stat verdict;
	__u64 cookie;
	__u16 port;

	pol = scope_lookup(ctx);
	if (!pol) {
		stat_inc(SM_SCOPE_IDX_GLOBAL, SM_STAT_BYPASS_NOT_ENROLLED);
		return 0;
	}
	if (pol->flags & SM_POL_DRAINING) {
		stat_inc(pol->scope_idx, SM_STAT_BYPASS_DRAINING);
		return 0;
	}
	if (dns_wanted(ctx, pol, dst)) {
		verdict = SM_STAT_DNS_CAPTURED;
		port = pol->dns_port;
	} else {
		verdict = capture_verdict(ctx, pol, dst);
		port = pol->proxy_port;
	}
	if (verdict != SM_STAT_CAPTURED && verdict != SM_STAT_DNS_CAPTURED) {
		stat_inc(pol->scope_idx, verdict);
		if (verdict == SM_STAT_BYPASS_LOOPBACK || verdict == SM_STAT_BYPASS_PROXY_UID ||
		    verdict == SM_STAT_BYPASS_PROXY_GID || verdict == SM_STAT_BYPASS_PROXY_MARK)
			local_leg(ctx, pol, dst);
		return 0;
	}
	switch (proxy_listener(ctx, pol, to6, port)) {
	case SM_LISTENER_TRUSTED:
		break;
	case SM_LISTENER_FOREIGN:
		stat_inc(pol->scope_idx, SM_STAT_PROXY_FOREIGN);
		/* fall through */
	default:
		*refuse = no_proxy_refuse(pol);
		return 0;
	}
	p.orig = *dst;
	p.scope_idx = pol->scope_idx;
	p.policy_flags = pol->flags;
	cookie = bpf_get_socket_cookie(ctx);
	if (bpf_map_update_elem(&pending_map, &cookie, &p, BPF_ANY)) {
		stat_inc(pol->scope_idx, SM_STAT_MAP_FULL);
		return 0;
	}
	stat_inc(pol->scope_idx, verdict);
#ifdef SM_LAYOUT_VARIANT
	stat_inc(pol->scope_idx, SM_STAT_UPGRADE_VARIANT);
#endif
	*scope_idx = pol->scope_idx;
	return port;
}

/* Read a sock_addr destination the way the ABI stores it. */
static __always_inline void dst_read(struct bpf_sock_addr *ctx, int v6, struct sm_addr *dst,
				     int *mapped)
{
	__u32 *a = (__u32 *)dst->addr;
	__u32 ip6[4];

	dst->port = bpf_ntohs((__u16)ctx->user_port);
	*mapped = 0;
	if (!v6) {
		dst->family = AF_INET;
		a[0] = ctx->user_ip4;
		return;
	}
	ip6[0] = ctx->user_ip6[0];
	ip6[1] = ctx->user_ip6[1];
	ip6[2] = ctx->user_ip6[2];
	ip6[3] = ctx->user_ip6[3];
	*mapped = is_v4_mapped(ip6);
	if (*mapped) {
		dst->family = AF_INET;
		a[0] = ip6[3];
	} else {
		dst->family = AF_INET6;
		a[0] = ip6[0];
		a[1] = ip6[1];
		a[2] = ip6[2];
		a[3] = ip6[3];
	}
}

/* Point a sock_addr at addr:port (IPv4 on a v6 socket: v4-mapped). */
static __always_inline void addr_write(struct bpf_sock_addr *ctx, int v6, const struct sm_addr *a)
{
	const __u32 *w = (const __u32 *)a->addr;

	ctx->user_port = bpf_htons(a->port);
	if (!v6) {
		ctx->user_ip4 = w[0];
		return;
	}
	if (a->family == AF_INET) {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = bpf_htonl(0xffff);
		ctx->user_ip6[3] = w[0];
	} else {
		ctx->user_ip6[0] = w[0];
		ctx->user_ip6[1] = w[1];
		ctx->user_ip6[2] = w[2];
		ctx->user_ip6[3] = w[3];
	}
}

/* The local proxy at port, in the destination's family. */
static __always_inline void dst_to_proxy(struct bpf_sock_addr *ctx, int v6, int mapped, __u16 port)
{
	struct sm_addr to = { .family = (v6 && !mapped) ? AF_INET6 : AF_INET, .port = port };
	__u32 *w = (__u32 *)to.addr;

	if (to.family == AF_INET)
		w[0] = bpf_htonl(0x7f000001);
	else
		w[3] = bpf_htonl(1);
	addr_write(ctx, v6, &to);
}

/* UDP DNS: remember the server the app asked (socket storage) and send the
 * query to the proxy's DNS port. The port check comes first: this runs for
 * every unconnected UDP send under the attach cgroup.
 */
static __always_inline __u16 dns_redirect(struct bpf_sock_addr *ctx, const struct sm_addr *dst)
{
	struct sm_dns_state *st;
	struct sm_policy *pol;
	struct bpf_sock *sk;

	if (dst->port != SM_DNS_PORT)
		return 0;
	pol = scope_lookup(ctx);
	if (!pol || (pol->flags & SM_POL_DRAINING) || !dns_wanted(ctx, pol, dst))
		return 0;
	sk = ctx->sk;
	if (!sk)
		return 0;
	st = bpf_sk_storage_get(&dns_state_map, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		stat_inc(pol->scope_idx, SM_STAT_MAP_FULL);
		return 0;
	}
	st->orig = *dst;
	st->dns_port = pol->dns_port;
	st->scope_idx = pol->scope_idx;
	stat_inc(pol->scope_idx, SM_STAT_DNS_CAPTURED);
	return pol->dns_port;
}

/* Give a captured app socket its own loopback source, 127.128.x.y picked
 * from its cookie (IPv4, and IPv4 on a v6 socket), before the kernel picks
 * 127.0.0.1: every app connect to the proxy otherwise shares one 4-tuple
 * space (127.0.0.1:* -> 127.0.0.1:15001, ~28k ports) with the TIME_WAITs of
 * the last seconds, and connects slow down, then fail, at high connection
 * rates (issue 14; docs/design.md, "Source spreading"). Port 0 makes the
 * kernel keep choosing the port at connect time (BIND_FORCE_ADDRESS_NO_PORT).
 * A socket the app bound itself is left alone; IPv6 has one loopback address.
 */
static __always_inline void spread_source(struct bpf_sock_addr *ctx, int v6, int mapped,
					  __u32 scope_idx)
{
	struct bpf_sock *sk = ctx->sk;
	__u32 a;
	long err;

	if (!sk || sk->src_port || (v6 && !mapped))
		return;
	a = bpf_htonl(SM_SPREAD_NET4 | (__u32)((bpf_get_socket_cookie(ctx) * SM_HASH_MUL) >> 48));
	if (!v6) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = a };

		if (sk->src_ip4)
			return;
		err = bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa));
	} else {
		struct sockaddr_in6 sa = { .sin6_family = AF_INET6 };

		if (sk->src_ip6[0] || sk->src_ip6[1] || sk->src_ip6[2] || sk->src_ip6[3])
			return;
		sa.sin6_addr.in6_u.u6_addr32[2] = bpf_htonl(0xffff);
		sa.sin6_addr.in6_u.u6_addr32[3] = a;
		err = bpf_bind(ctx, (struct sockaddr *)&sa, sizeof(sa));
	}
	if (err)
		stat_inc(scope_idx, SM_STAT_SPREAD_FAILED);
}

/* connect: a constant, true in the connect hooks (the only ones where
 * bpf_bind is allowed), false in sendmsg.
 */
static __always_inline int redirect_out(struct bpf_sock_addr *ctx, int v6, int connect)
{
	struct sm_addr dst = {};
	__u32 scope_idx = 0;
	int mapped, refuse = 0;
	__u16 port;

	dst_read(ctx, v6, &dst, &mapped);
	if (ctx->protocol == IPPROTO_TCP)
		port = capture(ctx, &dst, v6 && !mapped, &scope_idx, &refuse);
	else if (ctx->protocol == IPPROTO_UDP)
		port = dns_redirect(ctx, &dst);
	else
		return 1;
	if (refuse && connect) {
		/* what a connect to a port nobody listens on gets */
		bpf_set_retval(-SM_ECONNREFUSED);
		return 0;
	}
	if (!port)
		return 1;
	dst_to_proxy(ctx, v6, mapped, port);
	if (connect && ctx->protocol == IPPROTO_TCP)
		spread_source(ctx, v6, mapped, scope_idx);
	return 1;
}

SEC("cgroup/connect4")
int sm_connect4(struct bpf_sock_addr *ctx)
{
	return redirect_out(ctx, 0, 1);
}

SEC("cgroup/connect6")
int sm_connect6(struct bpf_sock_addr *ctx)
{
	return redirect_out(ctx, 1, 1);
}

SEC("cgroup/sendmsg4")
int sm_sendmsg4(struct bpf_sock_addr *ctx)
{
	return redirect_out(ctx, 0, 0);
}

SEC("cgroup/sendmsg6")
int sm_sendmsg6(struct bpf_sock_addr *ctx)
{
	return redirect_out(ctx, 1, 0);
}

/* The address a redirected socket should see instead of the proxy's: for a
 * UDP DNS socket the server it asked, for a captured TCP socket its original
 * destination (what getpeername() says under iptables REDIRECT too).
 */
static __always_inline int restore_peer(struct bpf_sock_addr *ctx, int v6, int reply)
{
	struct bpf_sock *sk = ctx->sk;
	struct sm_addr from = {};
	struct sm_dns_state *dns;
	struct sm_sk_state *st;
	int mapped;

	if (!sk)
		return 1;
	dst_read(ctx, v6, &from, &mapped);
	if (!addr_is_loopback(from.family, from.addr))
		return 1;
	if (ctx->protocol == IPPROTO_UDP) {
		dns = bpf_sk_storage_get(&dns_state_map, sk, NULL, 0);
		if (!dns || from.port != dns->dns_port)
			return 1;
		addr_write(ctx, v6, &dns->orig);
		if (reply)
			stat_inc(dns->scope_idx, SM_STAT_DNS_REPLIES);
		return 1;
	}
	st = bpf_sk_storage_get(&sk_state_map, sk, NULL, 0);
	if (st && (st->flags & SM_SK_APP))
		addr_write(ctx, v6, &st->orig);
	return 1;
}

SEC("cgroup/recvmsg4")
int sm_recvmsg4(struct bpf_sock_addr *ctx)
{
	return restore_peer(ctx, 0, 1);
}

SEC("cgroup/recvmsg6")
int sm_recvmsg6(struct bpf_sock_addr *ctx)
{
	return restore_peer(ctx, 1, 1);
}

SEC("cgroup/getpeername4")
int sm_getpeername4(struct bpf_sock_addr *ctx)
{
	return restore_peer(ctx, 0, 0);
}

SEC("cgroup/getpeername6")
int sm_getpeername6(struct bpf_sock_addr *ctx)
{
	return restore_peer(ctx, 1, 0);
}

/* ---- connection tracking and splice -------------------------------------- */

static __always_inline struct sm_sk_state *sk_state_new(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;

	if (!sk)
		return NULL;
	return bpf_sk_storage_get(&sk_state_map, sk, NULL, BPF_SK_STORAGE_GET_F_CREATE);
}

/* State callbacks run the program at every state change of the socket until
 * it is gone: ask for them only where something must be undone at close.
 */
static __always_inline void want_close_cb(struct bpf_sock_ops *skops)
{
	if (!(skops->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_STATE_CB_FLAG))
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags |
							 BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline void no_close_cb(struct bpf_sock_ops *skops)
{
	if (skops->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_STATE_CB_FLAG)
		bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags &
							 ~BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline void splice_insert(struct bpf_sock_ops *skops, struct sm_sk_state *st,
					  struct sm_tuple *key)
{
	/* The connecting end makes the pair entry first: a socket spliced
	 * without one could not tell how far its reader is behind. A stale
	 * entry of an earlier connection on the same tuple is reset.
	 */
	struct sm_pair *pair;

	if (!st->side) {
		struct sm_pair zero = {};

		zero.cookie[0] = bpf_get_socket_cookie(skops);
		zero.scope_idx = st->scope_idx;
		if (st->flags & SM_SK_LOCAL_LEG)
			zero.flags = SM_PAIR_LOCAL_LEG;
		if (bpf_map_update_elem(&pair_map, key, &zero, BPF_ANY)) {
			stat_inc(st->scope_idx, SM_STAT_MAP_FULL);
			return;
		}
	}
	if (bpf_sock_hash_update(skops, &splice_map, key, BPF_NOEXIST)) {
		stat_inc(st->scope_idx, SM_STAT_MAP_FULL);
		if (!st->side)
			bpf_map_delete_elem(&pair_map, key);
		return;
	}
	st->flags |= SM_SK_SPLICE;
	stat_inc(st->scope_idx, SM_STAT_SPLICE_SOCKETS);
	if (sm_tap_on)
		want_close_cb(skops); /* its FIN and reset are in the tap too */
	if (st->side) {
		pair = bpf_map_lookup_elem(&pair_map, &st->peer);
		if (pair)
			pair->cookie[1] = bpf_get_socket_cookie(skops);
	}
}

/* A connection to another local pod that will steer it to its proxy (a
 * sidecar's upstream leg): splice it with the peer pod's accepted socket,
 * whose key carries the peer's netns.
 */
static __always_inline void on_active_pod_peer(struct bpf_sock_ops *skops)
{
	struct sm_policy *mine, *theirs;
	struct sm_sk_state *st;
	struct sm_tuple self;
	__u64 *peer_netns;

	tuple_from_sockops(&self, skops);
	peer_netns = pod_netns(self.family, self.remote);
	if (!peer_netns || *peer_netns == self.netns)
		return;
	mine = netns_policy(self.netns);
	if (!mine || !(mine->flags & SM_POL_SPLICE))
		return;
	theirs = netns_policy(*peer_netns);
	if (!theirs || inbound_verdict(theirs, self.remote_port) != SM_STAT_INBOUND_CAPTURED)
		return;
	st = sk_state_new(skops);
	if (!st)
		return;
	st->self = self;
	st->scope_idx = mine->scope_idx;
	st->flags = 0;
	sm_tuple_reverse(&st->peer, &self);
	st->peer.netns = *peer_netns;
	splice_insert(skops, st, &self);
	if (st->flags & SM_SK_SPLICE)
		want_close_cb(skops); /* for its pair entry */
}

/* The proxy's connection to an app in its pod (marked by local_leg at
 * connect): splice its end; the app's accepted end follows in
 * on_passive_local_leg. Returns 1 if the socket was one.
 */
static __always_inline int on_active_local_leg(struct bpf_sock_ops *skops)
{
	struct sm_listen_key lk = {};
	struct bpf_sock *sk = skops->sk;
	struct sm_sk_state *st;
	struct sm_tuple self;

	if (!sk)
		return 0;
	st = bpf_sk_storage_get(&sk_state_map, sk, NULL, 0);
	if (!st || st->flags != SM_SK_LOCAL_LEG)
		return 0;
	tuple_from_sockops(&self, skops);
	/* Only toward a listener that sockops saw: its accepted socket can
	 * then splice its end too. Otherwise (an app outside the attach
	 * cgroup, or listening since before the load) this end would redirect
	 * into nothing, miss, and pay a psock for it.
	 */
	lk.netns = self.netns;
	lk.port = self.remote_port;
	if (!bpf_map_lookup_elem(&listen_map, &lk)) {
		st->flags = 0;
		return 1;
	}
	st->self = self;
	sm_tuple_reverse(&st->peer, &self);
	st->side = 0;
	splice_insert(skops, st, &self);
	if (st->flags & SM_SK_SPLICE) {
		want_close_cb(skops); /* for its pair entry */
		stat_inc(st->scope_idx, SM_STAT_SPLICE_LOCAL_LEGS);
	}
	return 1;
}

/* The app accepted its proxy's connection (the pair entry of the proxy's
 * end says so): splice this end too.
 */
static __always_inline void on_passive_local_leg(struct bpf_sock_ops *skops, struct sm_tuple *mine,
						 struct sm_tuple *proxy)
{
	struct sm_sk_state *st;
	struct sm_pair *pair;

	pair = bpf_map_lookup_elem(&pair_map, proxy);
	if (!pair || !(pair->flags & SM_PAIR_LOCAL_LEG) || pair->cookie[1])
		return;
	st = sk_state_new(skops);
	if (!st) {
		stat_inc(pair->scope_idx, SM_STAT_MAP_FULL);
		return;
	}
	st->self = *mine;
	st->peer = *proxy;
	st->scope_idx = pair->scope_idx;
	st->flags = 0;
	st->side = 1;
	splice_insert(skops, st, mine);
}

/* The app's captured connect completed: publish its original destination
 * under the tuple the proxy will see, and splice the app's end. The pair
 * entry of a spliced connection is the only thing left to undo at close.
 */
static __always_inline void on_active_established(struct bpf_sock_ops *skops)
{
	struct sm_origdst od = {};
	struct sm_pending *p;
	struct sm_sk_state *st;
	struct sm_tuple self;
	__u64 cookie;
	__u32 pflags;

	cookie = bpf_get_socket_cookie(skops);
	p = bpf_map_lookup_elem(&pending_map, &cookie);
	if (!p) {
		if (!on_active_local_leg(skops))
			on_active_pod_peer(skops);
		return;
	}
	od.orig = p->orig;
	od.scope_idx = p->scope_idx;
	pflags = p->policy_flags;

	/* The pending entry goes last: a drain (sockmesh__drain) counts the
	 * connection in pending_map, then in origdst_map, then as stored and
	 * not yet asked, and must never find it in none of them.
	 */
	tuple_from_sockops(&self, skops);
	st = sk_state_new(skops);
	if (!st) {
		stat_inc(od.scope_idx, SM_STAT_MAP_FULL);
		bpf_map_delete_elem(&pending_map, &cookie);
		return;
	}
	st->self = self;
	st->orig = od.orig;
	st->scope_idx = od.scope_idx;
	st->flags = SM_SK_APP;
	if (pflags & SM_POL_SPLICE) {
		sm_tuple_reverse(&st->peer, &self);
		splice_insert(skops, st, &self);
		if (st->flags & SM_SK_SPLICE)
			od.flags |= SM_ORIG_SPLICED;
	}
	/* Asked for at TCP_CONNECT_CB for the pending entry; from now on
	 * only a pair entry needs a close.
	 */
	if (!(st->flags & SM_SK_SPLICE))
		no_close_cb(skops);
	/* Last: the proxy splices its end only if the entry says ours is. */
	if (bpf_map_update_elem(&origdst_map, &self, &od, BPF_ANY))
		stat_inc(od.scope_idx, SM_STAT_MAP_FULL);
	else
		stat_inc(od.scope_idx, SM_STAT_ORIGDST_PUBLISHED);
	bpf_map_delete_elem(&pending_map, &cookie);
}

/* The proxy accepted a connection sk_lookup steered to it: remember that
 * its original destination is its own local address, and splice it with a
 * client that is a local pod's sidecar.
 */
static __always_inline int on_passive_inbound(struct bpf_sock_ops *skops, struct sm_tuple *mine)
{
	struct sm_policy *pol;
	struct sm_sk_state *st;
	__u32 *steered, idx;
	__u64 *peer_netns;

	steered = bpf_map_lookup_elem(&steered_map, mine);
	if (!steered)
		return 0;
	idx = *steered;
	bpf_map_delete_elem(&steered_map, mine);
	stat_inc(idx, SM_STAT_INBOUND_CAPTURED);
	st = sk_state_new(skops);
	if (!st)
		return 1;
	st->self = *mine;
	st->scope_idx = idx;
	st->flags = SM_SK_INBOUND;
	st->side = 1;
	pol = netns_policy(mine->netns);
	peer_netns = pod_netns(mine->family, mine->remote);
	if (pol && (pol->flags & SM_POL_SPLICE) && peer_netns && *peer_netns != mine->netns) {
		sm_tuple_reverse(&st->peer, mine);
		st->peer.netns = *peer_netns;
		splice_insert(skops, st, mine);
	}
	return 1;
}

/* The proxy started listening: if it is a pod's inbound listener, it is
 * where sk_lookup steers that pod's inbound connections.
 */
static __always_inline void on_listen(struct bpf_sock_ops *skops)
{
	__u64 netns = bpf_get_netns_cookie(skops);
	struct sm_listen_key port = { .netns = netns, .port = skops->local_port };
	struct sm_listener_key lk;
	struct sm_policy *pol;
	__u32 one = 1;

	/* Any listener: a local leg may lead to it. Kept until LRU eviction,
	 * not removed at the listener's close: a state callback on the
	 * listener would be inherited by every socket it accepts. A stale
	 * entry (the port now served by a listener sockops does not see)
	 * costs a miss, never a byte.
	 */
	bpf_map_update_elem(&listen_map, &port, &one, BPF_ANY);

	pol = netns_policy(netns);
	if (!pol || !(pol->flags & SM_POL_INBOUND) || skops->local_port != pol->inbound_port)
		return;
	if (!skops->sk || !listener_trusted(skops->sk, pol)) {
		/* another user's listener on the inbound port: never steered to */
		stat_inc(pol->scope_idx, SM_STAT_PROXY_FOREIGN);
		return;
	}
	lk = sm_listener_key_make(netns, skops->family);
	if (bpf_sock_hash_update(skops, &listener_map, &lk, BPF_ANY)) {
		stat_inc(pol->scope_idx, SM_STAT_MAP_FULL);
		return;
	}
	stat_inc(pol->scope_idx, SM_STAT_INBOUND_LISTENERS);
}

/* The proxy accepted a captured connection: its socket takes the original
 * destination into its own storage (it lives and dies with the socket) and
 * its end is spliced to the app's.
 */
static __always_inline void on_passive_established(struct bpf_sock_ops *skops)
{
	struct sm_sk_state *st;
	struct sm_origdst *od;
	struct sm_tuple mine, app;

	tuple_from_sockops(&mine, skops);
	sm_tuple_reverse(&app, &mine);
	od = bpf_map_lookup_elem(&origdst_map, &app);
	if (!od) {
		if (!on_passive_inbound(skops, &mine))
			on_passive_local_leg(skops, &mine, &app);
		return;
	}
	st = sk_state_new(skops);
	if (!st) {
		stat_inc(od->scope_idx, SM_STAT_MAP_FULL);
		bpf_map_delete_elem(&origdst_map, &app);
		return;
	}
	st->self = app;
	st->orig = od->orig;
	st->scope_idx = od->scope_idx;
	st->flags = SM_SK_PROXY;
	st->side = 1;
	/* Counted before the entry goes (a drain never misses it); each one
	 * ends as origdst_asked, or origdst_unasked at its close.
	 */
	stat_inc(st->scope_idx, SM_STAT_ORIGDST_STORED);
	want_close_cb(skops);
	/* Splice only if the app's end made it into the map. */
	if (od->flags & SM_ORIG_SPLICED) {
		st->peer = app;
		splice_insert(skops, st, &mine);
	}
	bpf_map_delete_elem(&origdst_map, &app);
}

/* A proxy socket's first SO_ORIGINAL_DST answer, or its close before one:
 * true once per socket (atomic: the flags word is shared with the splice).
 */
static __always_inline int first_ask(struct sm_sk_state *st)
{
	return !(__sync_fetch_and_or(&st->flags, SM_SK_ASKED) & SM_SK_ASKED);
}

static __always_inline void on_close(struct bpf_sock_ops *skops)
{
	struct bpf_sock *sk = skops->sk;
	struct sm_sk_state *st;
	__u64 cookie;

	if (!sk)
		return;
	st = bpf_sk_storage_get(&sk_state_map, sk, NULL, 0);
	if (!st) {
		/* Closed before establishment (refused, timed out). */
		cookie = bpf_get_socket_cookie(skops);
		bpf_map_delete_elem(&pending_map, &cookie);
		return;
	}
	/* The kernel drops a closing socket from splice_map by itself; the
	 * connecting end owns the pair entry.
	 */
	if ((st->flags & SM_SK_SPLICE) && !st->side)
		bpf_map_delete_elem(&pair_map, &st->self);
	st->flags &= ~SM_SK_SPLICE;
	if ((st->flags & SM_SK_PROXY) && first_ask(st))
		stat_inc(st->scope_idx, SM_STAT_ORIGDST_UNASKED);
}

SEC("sockops")
int sm_sockops(struct bpf_sock_ops *skops)
{
	__u64 cookie;

	switch (skops->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		/* A captured connect may still fail: ask for its close so the
		 * pending entry goes with it.
		 */
		cookie = bpf_get_socket_cookie(skops);
		if (bpf_map_lookup_elem(&pending_map, &cookie))
			want_close_cb(skops);
		return 1;
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		on_active_established(skops);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		on_passive_established(skops);
		break;
	case BPF_SOCK_OPS_TCP_LISTEN_CB:
		on_listen(skops);
		return 1;
	case BPF_SOCK_OPS_STATE_CB:
		if (skops->args[1] == BPF_TCP_CLOSE)
			on_close(skops);
		break;
	default:
		return 1;
	}
	/* A connection established or changed state: the flow consumer's
	 * program records its open or close, the tap's the open, FIN or reset
	 * of a spliced one (the flow program tail-calls the tap's). Last: a
	 * tail call does not come back.
	 */
	if (sm_flows_on) {
		bpf_tail_call(skops, &flow_sockops_calls, 0);
		sm_flows_on = 0; /* no flow program: its process is gone */
	}
	if (sm_tap_on) {
		bpf_tail_call(skops, &tap_sockops_calls, 0);
		sm_tap_on = 0; /* no tap program: its process is gone */
	}
	return 1;
}

/* Set at load (struct sockmesh_open_opts.splice_budget). */
const volatile __u64 splice_budget = SM_DEFAULT_SPLICE_BUDGET;

/* The connection's pair entry: keyed by the connecting end's splice key,
 * which the connecting end has as its own key and the accepted end as its
 * peer's.
 */
static __always_inline struct sm_pair *pair_of(struct sm_sk_state *st)
{
	return bpf_map_lookup_elem(&pair_map, st->side ? &st->peer : &st->self);
}

/* ---- kernel fast path (see sm_fwd in the ABI header) --------------------- */

/* Decide FAST or HELD for size bytes about to go to the receiver of fwd,
 * whose put-into-it count is *count (pair in[] or fwd->held), and count
 * them if HELD: under the entry's lock, so sm_fp_flip cannot fall between
 * the decision and the count. HELD -> FAST here too, at a byte boundary
 * where everything put into the receiver was relayed.
 */
static __always_inline int fwd_decide(struct sm_fwd *fwd, __u64 *relayed, __u64 *count, __u32 size)
{
	int fast;

	bpf_spin_lock(&fwd->lock);
	if (!(fwd->flags & (SM_FWD_FAST | SM_FWD_STUCK)) && relayed && *relayed == *count)
		fwd->flags = (fwd->flags | SM_FWD_FAST) & ~SM_FWD_HELD_TCP;
	fast = fwd->flags & SM_FWD_FAST;
	if (!fast)
		*count += size;
	bpf_spin_unlock(&fwd->lock);
	return fast;
}

/* FAST -> HELD (a reader a budget behind, or STUCK: the target is gone),
 * and count size bytes as put into the receiver (*count), under one lock:
 * sm_fp_flip cannot turn the entry FAST again before they are counted (it
 * would let the next ones overtake them).
 */
static __always_inline void fwd_fallback_count(struct sm_fwd *fwd, __u32 flags, __u64 *count,
					       __u32 size)
{
	bpf_spin_lock(&fwd->lock);
	fwd->flags = (fwd->flags & ~SM_FWD_FAST) | flags;
	*count += size;
	bpf_spin_unlock(&fwd->lock);
	stat_inc(fwd->scope_idx, SM_STAT_FASTPATH_FALLBACKS);
}

enum { FP_INTO_PEER, FP_FAST, FP_TCP };

/* HELD: into the peer's splice queue while it is within the budget, else
 * (and from then on, until FAST again) over TCP, which throttles the
 * sender; the peer reads its splice queue first, so the order holds.
 */
static __always_inline int fp_held(struct sm_fwd *fwd, struct sm_pair *pair, __u32 peer)
{
	int tcp;

	bpf_spin_lock(&fwd->lock);
	if (pair->in[peer & 1] - pair->read[peer & 1] > splice_budget)
		fwd->flags |= SM_FWD_HELD_TCP;
	tcp = fwd->flags & SM_FWD_HELD_TCP;
	bpf_spin_unlock(&fwd->lock);
	return tcp ? FP_TCP : FP_INTO_PEER;
}

/* Has the splice target of fwd (SM_FWD_TO_SPLICE), whose pair entry is
 * tpair, room for size more bytes within the budget?
 */
static __always_inline int splice_room(struct sm_fwd *fwd, struct sm_pair *tpair, __u32 size)
{
	__u32 side = fwd->target_side & 1;

	return tpair->in[side] - tpair->read[side] + size <= splice_budget;
}

static __always_inline void fp_count(struct sm_fwd *fwd, __u32 size)
{
	__sync_fetch_and_add(&fwd->fast_bytes, size);
	stat_add(fwd->scope_idx, SM_STAT_FASTPATH_BYTES, size);
}

/* fwd is FAST toward a spliced socket T (SM_FWD_TO_SPLICE): into T's
 * queue, or past T too if T is a bypassed receiver itself (the other pod's
 * sidecar switched), whose entry decides that hop under its own lock.
 * FP_FAST, or -1 when fwd went HELD (the message then goes into fwd's
 * receiver, counted).
 */
static __always_inline int fp_to_splice(struct sk_msg_md *msg, struct sm_fwd *fwd,
					struct sm_pair *pair, __u32 peer)
{
	__u32 size = msg->size, side = fwd->target_side & 1, side2;
	struct sm_pair *tpair, *tpair2;
	struct sm_fwd *fwd2;
	__u64 *relayed2;

	tpair = bpf_map_lookup_elem(&pair_map, &fwd->target_pair);
	if (!tpair || !splice_room(fwd, tpair, size)) {
		fwd_fallback_count(fwd, tpair ? 0 : SM_FWD_STUCK, &pair->in[peer & 1], size);
		return -1;
	}
	fwd2 = bpf_map_lookup_elem(&fwd_map, &tpair->cookie[side]);
	if (fwd2 && (fwd2->flags & SM_FWD_TO_SPLICE)) {
		relayed2 = bpf_map_lookup_elem(&relay_map, &tpair->cookie[side]);
		/* HELD: counted into T by fwd_decide; T's sidecar relays it */
		if (fwd_decide(fwd2, relayed2, &tpair->in[side], size)) {
			tpair2 = bpf_map_lookup_elem(&pair_map, &fwd2->target_pair);
			side2 = fwd2->target_side & 1;
			if (!tpair2 || !splice_room(fwd2, tpair2, size)) {
				fwd_fallback_count(fwd2, tpair2 ? 0 : SM_FWD_STUCK,
						   &tpair->in[side], size);
			} else if (bpf_msg_redirect_hash(msg, &splice_map, &fwd2->target,
							 BPF_F_INGRESS) == SK_PASS) {
				/* before the reader can see it: read never passes in */
				__sync_fetch_and_add(&tpair2->in[side2], size);
				fp_count(fwd, size);
				fp_count(fwd2, size);
				return FP_FAST;
			} else {
				fwd_fallback_count(fwd2, SM_FWD_STUCK, &tpair->in[side], size);
			}
		}
	} else {
		__sync_fetch_and_add(&tpair->in[side], size);
	}
	if (bpf_msg_redirect_hash(msg, &splice_map, &fwd->target, BPF_F_INGRESS) == SK_PASS) {
		fp_count(fwd, size);
		return FP_FAST;
	}
	/* T is gone; what was counted into it will never be read, which only
	 * its own (closing) connection sees
	 */
	fwd_fallback_count(fwd, SM_FWD_STUCK, &pair->in[peer & 1], size);
	return -1;
}

/* A spliced socket sends into a bypassed receiver (its peer): FP_FAST if
 * the message went past it to the fast path's target; else it goes to the
 * peer (FP_INTO_PEER: spliced, FP_TCP: over TCP), already counted in
 * pair->in[peer].
 */
static __always_inline int fp_msg(struct sk_msg_md *msg, struct sm_fwd *fwd, struct sm_pair *pair,
				  __u32 peer)
{
	__u32 size = msg->size;
	__u64 *relayed;

	relayed = bpf_map_lookup_elem(&relay_map, &pair->cookie[peer & 1]);
	if (!fwd_decide(fwd, relayed, &pair->in[peer & 1], size))
		return fp_held(fwd, pair, peer);
	if (fwd->flags & SM_FWD_TO_SPLICE) {
		if (fp_to_splice(msg, fwd, pair, peer) == FP_FAST)
			return FP_FAST;
		return fp_held(fwd, pair, peer);
	}
	/* Counted by the library from the target's TCP counters: a send the
	 * target cannot take whole (a non-blocking app, the upstream's buffer
	 * full) is cut short and sent again, so counting here would count it
	 * twice.
	 */
	if (bpf_msg_redirect_hash(msg, &fp_map, &fwd->target_cookie, 0) == SK_PASS)
		return FP_FAST;
	/* target gone: the peer gets it and the sidecar relays it */
	fwd_fallback_count(fwd, SM_FWD_STUCK, &pair->in[peer & 1], size);
	return fp_held(fwd, pair, peer);
}

/* The one field of the kernel's tcp_sock read here (CO-RE: libbpf finds it
 * in the running kernel's BTF).
 */
struct tcp_sock {
	__u32 write_seq;
	__u32 rcv_nxt; /* the next byte TCP expects: */
	__u32 copied_seq; /* rcv_nxt - copied_seq: TCP-queued bytes not read yet */
} __attribute__((preserve_access_index));

/* A sender that left the splice for the budget (SM_SK_OVER_BUDGET) comes
 * back once its reader has read every byte it was sent: in[] keeps
 * counting while the bytes take the stack, from the growth of this
 * socket's write_seq since its last message (per message, so the 32-bit
 * sequence never wraps in between). Once read[] reaches in[], both of the
 * reader's queues are empty and a redirect cannot overtake anything. Only
 * the read accounting of the sock_recv_length tracepoint counts reads of
 * the TCP queue; with the fexit fallback (6.1) read[] never gets there and
 * the socket stays on the stack, as before. Not while the peer is in a
 * fast path (fwd_map): its delivery counts bytes its own way.
 */
static __always_inline int budget_resume(struct bpf_sock *sk, struct sm_sk_state *st,
					 struct sm_pair *pair, __u32 peer)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	__u32 seq;

	if (!tp)
		return 0;
	seq = tp->write_seq;
	pair->in[peer] += seq - st->fb_seq;
	st->fb_seq = seq;
	if (pair->read[peer] < pair->in[peer] || bpf_map_lookup_elem(&fwd_map, &pair->cookie[peer]))
		return 0;
	st->flags &= ~SM_SK_OVER_BUDGET;
	stat_inc(st->scope_idx, SM_STAT_SPLICE_BUDGET_RESUMES);
	return 1;
}

/* The verdict of one send (sm_msg); *stp and *path say, for the tap, whose
 * it was and where it went.
 */
static __always_inline int msg_verdict(struct sk_msg_md *msg, struct sm_sk_state **stp, __u32 *path)
{
	struct bpf_sock *sk = msg->sk;
	struct sm_sk_state *st;
	struct sm_stats *stats;
	struct sm_pair *pair;
	struct sm_fwd *fwd;
	struct tcp_sock *tp;
	__u32 size = msg->size, peer, counted = 0;

	if (!sk)
		return SK_PASS;
	st = bpf_sk_storage_get(&sk_state_map, sk, NULL, 0);
	*stp = st;
	if (!st || (st->flags & (SM_SK_SPLICE | SM_SK_NO_SPLICE)) != SM_SK_SPLICE)
		return SK_PASS;
	/* Without its pair entry (the connection is closing) nothing bounds
	 * what would queue at the peer: take the stack, as on a miss.
	 */
	pair = pair_of(st);
	if (!pair)
		goto miss;
	peer = (st->side & 1) ^ 1;
	if ((st->flags & SM_SK_OVER_BUDGET) && !budget_resume(sk, st, pair, peer))
		return SK_PASS;
	/* The peer is a sidecar's socket whose connection it handed to the
	 * kernel: deliver past it.
	 */
	fwd = bpf_map_lookup_elem(&fwd_map, &pair->cookie[peer]);
	if (fwd) {
		int r = fp_msg(msg, fwd, pair, peer);

		if (r == FP_FAST)
			*path = SM_TAP_PATH_FAST;
		if (r != FP_INTO_PEER)
			return SK_PASS; /* past the peer, or to it over TCP */
		counted = size; /* fp_msg counted it as put into the peer */
	}
	/* No backpressure on redirected bytes: once the reader is a budget
	 * behind, take the stack (TCP's window slows the sender) until the
	 * reader has read everything, both queues (budget_resume).
	 */
	if (pair->in[peer] - counted - pair->read[peer] + size > splice_budget) {
		tp = bpf_skc_to_tcp_sock(sk);
		if (!tp || counted) {
			st->flags |= SM_SK_NO_SPLICE; /* no way to count what takes the stack */
		} else {
			st->flags |= SM_SK_OVER_BUDGET;
			st->fb_seq = tp->write_seq;
		}
		stat_inc(st->scope_idx, SM_STAT_SPLICE_BUDGET_FALLBACKS);
		return SK_PASS;
	}
	if (bpf_msg_redirect_hash(msg, &splice_map, &st->peer, BPF_F_INGRESS) == SK_PASS) {
		/* counted before the reader can see it: read never passes in */
		pair->in[peer] += size - counted;
		*path = SM_TAP_PATH_SPLICE;
		/* one counter lookup for both: this is the per-message path */
		stats = bpf_map_lookup_elem(&stats_map, &st->scope_idx);
		if (stats) {
			stats->c[SM_STAT_SPLICE_MSGS]++;
			stats->c[SM_STAT_SPLICE_BYTES] += size;
		}
		return SK_PASS;
	}
miss:
	/* The peer is not (or no longer) in the map: this message takes the
	 * TCP stack. Later ones must too, or the peer could read them before
	 * this one (its redirected queue is read before its receive queue).
	 */
	st->flags |= SM_SK_NO_SPLICE;
	stat_inc(st->scope_idx, SM_STAT_SPLICE_MISS);
	return SK_PASS;
}

SEC("sk_msg")
int sm_msg(struct sk_msg_md *msg)
{
	__u32 path = SM_TAP_PATH_STACK;
	struct sm_sk_state *st = NULL;
	int verdict = msg_verdict(msg, &st, &path);

	/* the two loads flow events and the tap cost while neither runs */
	if (sm_flows_on && st) {
		bpf_tail_call(msg, &flow_msg_calls, path);
		sm_flows_on = 0; /* no flow program: its process is gone */
	}
	if (sm_tap_on && st) {
		bpf_tail_call(msg, &tap_msg_calls, path);
		sm_tap_on = 0; /* no tap program: its process is gone */
	}
	return verdict;
}

/* Bytes a spliced socket has read of what its peer redirected to it: the
 * other half of "how far behind is the reader" (sm_msg). Two hooks, one
 * loaded (user/lib/instance.c picks): the sock_recv_length tracepoint
 * (6.4 and later; after every recvmsg, so also bytes read from the TCP
 * queue, which only matters once the sender has left the splice) and, on
 * older kernels, fexit on sk_msg_recvmsg (the read of the redirected
 * queue itself; BPF trampolines). Both run with the reader's socket
 * released or locked by the one reader, so each read[] slot has one
 * writer at a time. MSG_PEEK reads nothing.
 */
#define SM_MSG_PEEK 2

static __always_inline void read_account(struct bpf_sock *sk, int ret, int flags)
{
	struct sm_sk_state *st;
	struct sm_pair *pair;

	if (ret <= 0 || (flags & SM_MSG_PEEK))
		return;
	st = bpf_sk_storage_get(&sk_state_map, sk, NULL, 0);
	if (!st || !(st->flags & SM_SK_SPLICE))
		return;
	pair = pair_of(st);
	if (pair)
		pair->read[st->side & 1] += (__u32)ret;
}

/* sock_recv_length(struct sock *sk, int ret, int flags) */
SEC("tp_btf/sock_recv_length")
int sm_read_acct_tp(__u64 *ctx)
{
	read_account((void *)ctx[0], (int)ctx[1], (int)ctx[2]);
	return 0;
}

/* sk_msg_recvmsg(struct sock *sk, struct sk_psock *psock, struct msghdr *msg,
 *                int len, int flags) -> int
 */
SEC("fexit/sk_msg_recvmsg")
int sm_read_acct_fexit(__u64 *ctx)
{
	read_account((void *)ctx[0], (int)ctx[5], (int)ctx[4]);
	return 0;
}

/* ---- the FIN after a fallback ---------------------------------------------
 * A direction that left the splice (budget, miss) leaves its reader two
 * queues: the redirected bytes (psock ingress) and, behind them, the TCP
 * receive queue. tcp_bpf_recvmsg serves one queue per call, so a read
 * returns short while bytes wait in the other; a reader that takes "short
 * read while EPOLLRDHUP is set" as the end of the stream (HAProxy's
 * raw_sock_to_buf, right on a plain TCP socket) would stop there once the
 * writer's FIN is in, close with bytes unread and reset the connection.
 * So the FIN waits: a FIN segment for one of our spliced sockets whose
 * redirected queue still holds bytes, while TCP bytes are queued behind
 * them (or ride in the segment), is dropped here; TCP retransmits it (loss
 * probe, then RTO) and it is taken once the redirected queue is empty, when
 * every read is again a read of the one queue left.
 */
struct list_head___sm {
	struct list_head___sm *next;
} __attribute__((preserve_access_index));

struct sk_psock___sm {
	struct list_head___sm ingress_msg;
} __attribute__((preserve_access_index));

#define SM_SK_USER_DATA_PTRMASK (~7ul) /* NOCOPY, BPF, PSOCK flag bits */
#define SM_TCP_FIN 0x01
#define SM_ETH_P_IP 0x0800
#define SM_ETH_P_IPV6 0x86dd

/* Bytes redirected into sk not read yet (its psock's ingress list). */
static __always_inline int ingress_pending(struct tcp_sock *tp)
{
	unsigned long ud = 0;
	void *head, *next = NULL;

	if (bpf_core_read(&ud, sizeof(ud), &((struct sock___sm *)tp)->sk_user_data))
		return 0;
	ud &= SM_SK_USER_DATA_PTRMASK;
	if (!ud)
		return 0;
	head = (void *)ud + bpf_core_field_offset(struct sk_psock___sm, ingress_msg);
	if (bpf_probe_read_kernel(&next, sizeof(next), head))
		return 0;
	return next && next != head;
}

SEC("cgroup_skb/ingress")
int sm_fin_hold(struct __sk_buff *skb)
{
	__u8 th[14]; /* ports, seq, ack, data offset, flags */
	__u32 iph, seq, payload;
	struct bpf_sock *sk;
	struct sm_sk_state *st;
	struct tcp_sock *tp;
	__u8 b;

	/* Only FIN segments go further: two or three header reads for the rest. */
	if (skb->protocol == bpf_htons(SM_ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, 0, &b, 1) || (b >> 4) != 4)
			return 1;
		iph = (__u32)(b & 0x0f) * 4;
		if (bpf_skb_load_bytes(skb, 9, &b, 1) || b != IPPROTO_TCP)
			return 1;
	} else if (skb->protocol == bpf_htons(SM_ETH_P_IPV6)) {
		iph = 40; /* loopback and veth pairs: no extension headers */
		if (bpf_skb_load_bytes(skb, 6, &b, 1) || b != IPPROTO_TCP)
			return 1;
	} else {
		return 1;
	}
	if (iph < 20 || bpf_skb_load_bytes(skb, iph, th, sizeof(th)) || !(th[13] & SM_TCP_FIN))
		return 1;
	sk = skb->sk;
	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	st = bpf_sk_storage_get(&sk_state_map, sk, NULL, 0);
	if (!st || !(st->flags & SM_SK_SPLICE))
		return 1;
	tp = bpf_skc_to_tcp_sock(sk);
	if (!tp)
		return 1;
	seq = ((__u32)th[4] << 24) | ((__u32)th[5] << 16) | ((__u32)th[6] << 8) | th[7];
	payload = (__u32)(th[12] >> 4) * 4 + iph;
	payload = skb->len > payload ? skb->len - payload : 0;
	/* Held only if TCP bytes would be queued behind the spliced ones when
	 * the FIN is taken: unread in the TCP queue, riding in this segment,
	 * or still to come (the FIN is out of order and would wait for them).
	 */
	if (tp->rcv_nxt == tp->copied_seq && !payload && seq == tp->rcv_nxt)
		return 1;
	if (!ingress_pending(tp))
		return 1;
	stat_inc(st->scope_idx, SM_STAT_SPLICE_FIN_HELD);
	return 0;
}

/* The one kfunc: where the kernel has it (6.2+) the verdict reads the skb's
 * TCP sequence. Weak, so the object loads without it: the loader then loads
 * sm_fp_skb_noseq instead of sm_fp_skb (user/lib/instance.c).
 */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym __weak;

struct sk_buff___sm {
	struct sock___sm *sk;
	char cb[48]; /* TCP's control block: struct tcp_skb_cb, seq first */
} __attribute__((preserve_access_index));

#define SM_ADJ_ROOM_MAX 4095 /* what bpf_skb_adjust_room cuts at once (sk_skb) */

/* tcp_read_skb() gives the verdict whole skbs and does not skip what TCP
 * already had: a retransmitted segment that overlaps received bytes (after
 * reordering or loss, a retransmission cut differently than the original)
 * is queued whole with its sequence before rcv_nxt, which tcp_recvmsg()
 * skips and the verdict path does not (6.1 and 6.18), so those bytes would
 * reach the target twice (the kernel test found one MSS repeated at random
 * points of a 64 MiB inbound transfer over a reordering veth). Cut the
 * bytes before R's next expected sequence off the skb's head; the kernel
 * then also advances copied_seq by the bytes left (tcp_eat_skb). Returns
 * the skb's length now, 0 if nothing of it is new (left as it is).
 */
static __always_inline __u32 fp_skip_seen(struct __sk_buff *skb, struct sm_fwd *fwd, __u32 len)
{
	struct sk_buff___sm *kskb = bpf_cast_to_kern_ctx(skb);
	struct sock___sm *sk = NULL;
	__u32 seq = 0, expect, copied = 0;
	__s32 over;

	if (bpf_probe_read_kernel(&seq, sizeof(seq), &kskb->cb[0]))
		return len;
	if (!(fwd->flags & SM_FWD_SEQ)) {
		/* first skb since the switch: R's reads so far end at copied_seq */
		if (bpf_probe_read_kernel(&sk, sizeof(sk), &kskb->sk) || !sk ||
		    bpf_probe_read_kernel(&copied, sizeof(copied),
					  &((struct tcp_sock *)sk)->copied_seq))
			return len;
		bpf_spin_lock(&fwd->lock);
		if (!(fwd->flags & SM_FWD_SEQ)) {
			fwd->rcv_seq = copied;
			fwd->flags |= SM_FWD_SEQ;
		}
		bpf_spin_unlock(&fwd->lock);
	}
	expect = fwd->rcv_seq;
	over = (__s32)(expect - seq);
	if (over <= 0) {
		fwd->rcv_seq = seq + len;
		return len;
	}
	if ((__s32)(seq + len - expect) <= 0)
		return 0; /* nothing new: TCP drops these before they get here */
	for (int i = 0; i < 17 && over > 0; i++) {
		__s32 cut = over > SM_ADJ_ROOM_MAX ? SM_ADJ_ROOM_MAX : over;

		if (bpf_skb_adjust_room(skb, -cut, 0, 0))
			break;
		over -= cut;
	}
	if (over <= 0)
		fwd->rcv_seq = seq + len;
	stat_add(fwd->scope_idx, SM_STAT_FASTPATH_RESENT_CUT, len - skb->len);
	return skb->len;
}

/* The stream verdict of the sidecar's TCP-fed sockets (fp_map): past the
 * sidecar to the target while FAST; into the socket's own queue (counted
 * in held; the pump relays it) while HELD. A target whose reader is a
 * budget behind makes the direction HELD: the bytes then wait in this
 * socket's queue, charged to its receive buffer, so TCP's window pauses
 * the sender (redirected skbs would queue without any limit).
 * seq: cut what TCP already had off resent skbs first (fp_skip_seen).
 */
static __always_inline int fp_skb(struct __sk_buff *skb, int seq)
{
	__u64 cookie = bpf_get_socket_cookie(skb), *relayed;
	__u32 len = skb->len, side, fb = SM_FWD_STUCK;
	struct sm_pair *tpair;
	struct sm_fwd *fwd;

	fwd = bpf_map_lookup_elem(&fwd_map, &cookie);
	/* A bare FIN stays: the pump forwards the half-close once every byte
	 * before it was read (a redirected empty skb would fail the reader).
	 */
	if (!fwd || !len)
		return SK_PASS;
	if (seq) {
		len = fp_skip_seen(skb, fwd, len);
		if (!len)
			return SK_PASS;
	}
	relayed = bpf_map_lookup_elem(&relay_map, &cookie);
	if (!fwd_decide(fwd, relayed, &fwd->held, len))
		return SK_PASS; /* held in this socket's queue, counted */
	if (fwd->flags & SM_FWD_VIA_SPLICE) {
		/* Through the downstream socket's splice into the app's: the
		 * app is behind by what it has not read plus what still waits
		 * for the worker (which this count includes: everything given
		 * to the downstream since the switch is base_in + fast_bytes +
		 * what the pump relayed).
		 */
		tpair = bpf_map_lookup_elem(&pair_map, &fwd->target_pair);
		if (!tpair)
			goto held;
		side = fwd->target_side & 1;
		if (fwd->base_in + fwd->fast_bytes + (relayed ? *relayed : 0) + len -
			    tpair->read[side] >
		    splice_budget) {
			fb = 0;
			goto held;
		}
		if (bpf_sk_redirect_hash(skb, &splice_map, &fwd->target, 0) != SK_PASS)
			goto held;
	} else if (bpf_sk_redirect_hash(skb, &fp_map, &fwd->target_cookie, 0) != SK_PASS) {
		goto held;
	}
	fwd->fast_bytes += len;
	stat_add(fwd->scope_idx, SM_STAT_FASTPATH_BYTES, len);
	return SK_PASS;
held:
	/* HELD now, STUCK unless only a budget behind; the skb stays in this
	 * socket's queue, counted under the same lock as the fallback, so no
	 * flip can come between them
	 */
	fwd_fallback_count(fwd, fb, &fwd->held, len);
	return SK_PASS;
}

SEC("sk_skb/stream_verdict")
int sm_fp_skb(struct __sk_buff *skb)
{
	return fp_skb(skb, 1);
}

/* Kernels without bpf_cast_to_kern_ctx (6.1): the overlap is not seen. */
SEC("sk_skb/stream_verdict")
int sm_fp_skb_noseq(struct __sk_buff *skb)
{
	return fp_skb(skb, 0);
}

/* Run by the library's pump (BPF_PROG_TEST_RUN) once it relayed everything
 * it found in a receiver: HELD -> FAST if nothing was put into it since.
 * Returns 1 if the direction is FAST. A tc program run on a dummy frame
 * (the receiver's cookie after the Ethernet header, struct sm_fp_flip), not
 * a syscall program: those are sleepable, and 6.1 allows no bpf_spin_lock
 * in sleepable programs.
 */
SEC("tc")
int sm_fp_flip(struct __sk_buff *skb)
{
	struct sm_fp_flip a;
	struct sm_pair *pair;
	struct sm_fwd *fwd;
	__u64 *relayed;
	int fast;

	if (bpf_skb_load_bytes(skb, SM_FP_FLIP_OFF, &a, sizeof(a)))
		return 0;
	fwd = bpf_map_lookup_elem(&fwd_map, &a.cookie);
	relayed = bpf_map_lookup_elem(&relay_map, &a.cookie);
	if (!fwd || !relayed)
		return 0;
	if (fwd->flags & SM_FWD_SPLICE_FED) {
		pair = bpf_map_lookup_elem(&pair_map, &fwd->recv_pair);
		if (!pair)
			return 0;
		bpf_spin_lock(&fwd->lock);
		if (!(fwd->flags & (SM_FWD_FAST | SM_FWD_STUCK)) &&
		    *relayed == pair->in[fwd->recv_side & 1])
			fwd->flags = (fwd->flags | SM_FWD_FAST) & ~SM_FWD_HELD_TCP;
		fast = fwd->flags & SM_FWD_FAST;
		bpf_spin_unlock(&fwd->lock);
		return fast;
	}
	bpf_spin_lock(&fwd->lock);
	if (!(fwd->flags & (SM_FWD_FAST | SM_FWD_STUCK)) && *relayed == fwd->held)
		fwd->flags = (fwd->flags | SM_FWD_FAST) & ~SM_FWD_HELD_TCP;
	fast = fwd->flags & SM_FWD_FAST;
	bpf_spin_unlock(&fwd->lock);
	return fast;
}

/* Run by the library (BPF_PROG_TEST_RUN): count a fast-path event in the
 * per-CPU counters, atomically against the programs on this CPU.
 */
SEC("syscall")
int sm_fp_event(struct sm_fp_event *ev)
{
	__u32 idx = ev->scope_idx, stat = ev->stat;
	struct sm_stats *s;

	if (stat >= SM_STAT_MAX)
		return 1;
	s = bpf_map_lookup_elem(&stats_map, &idx);
	if (!s)
		return 1;
	__sync_fetch_and_add(&s->c[stat], ev->n);
	return 0;
}

/* ---- inbound capture ----------------------------------------------------- */

/* Runs in each enrolled pod's netns for every connection looking for a
 * listener: a SYN from outside the pod to a captured port goes to the pod's
 * inbound proxy listener. No NAT: the accepted socket keeps podIP:port as
 * its local address (like TPROXY).
 */
SEC("sk_lookup")
int sm_lookup(struct bpf_sk_lookup *ctx)
{
	struct sm_listener_key lk;
	struct sm_policy *pol;
	struct bpf_sock *sk;
	struct sm_tuple t;
	enum sm_stat v;
	__u32 l6[4], r6[4];
	__u64 *netns, *src_netns;
	int err;

	/* From inside the pod (lo): the proxy forwarding to its app. Never again. */
	if (ctx->protocol != IPPROTO_TCP || ctx->ingress_ifindex == SM_LOOPBACK_IFINDEX)
		return SK_PASS;
	l6[0] = ctx->local_ip6[0];
	l6[1] = ctx->local_ip6[1];
	l6[2] = ctx->local_ip6[2];
	l6[3] = ctx->local_ip6[3];
	r6[0] = ctx->remote_ip6[0];
	r6[1] = ctx->remote_ip6[1];
	r6[2] = ctx->remote_ip6[2];
	r6[3] = ctx->remote_ip6[3];
	tuple_fill(&t, 0, ctx->family, ctx->local_ip4, l6, (__u16)ctx->local_port, ctx->remote_ip4,
		   r6, bpf_ntohs(ctx->remote_port));
	netns = pod_netns(t.family, t.local);
	if (!netns)
		return SK_PASS;
	/* Also from inside: a source that is the pod's own address or loopback
	 * (locally sent packets to a pod address do not report lo as their
	 * ingress device).
	 */
	if (tuple_remote_is_inside(&t))
		return SK_PASS;
	src_netns = pod_netns(t.family, t.remote);
	if (src_netns && *src_netns == *netns)
		return SK_PASS;
	pol = netns_policy(*netns);
	if (!pol || !(pol->flags & SM_POL_INBOUND))
		return SK_PASS;
	if (pol->flags & SM_POL_DRAINING) {
		stat_inc(pol->scope_idx, SM_STAT_BYPASS_DRAINING);
		return SK_PASS;
	}
	v = inbound_verdict(pol, t.local_port);
	if (v != SM_STAT_INBOUND_CAPTURED) {
		stat_inc(pol->scope_idx, v);
		return SK_PASS;
	}
	lk = sm_listener_key_make(*netns, ctx->family);
	sk = bpf_map_lookup_elem(&listener_map, &lk);
	if (!sk && ctx->family == AF_INET) {
		lk.family = AF_INET6; /* a dual-stack listener takes IPv4 too */
		sk = bpf_map_lookup_elem(&listener_map, &lk);
	}
	if (!sk) {
		stat_inc(pol->scope_idx, SM_STAT_INBOUND_NO_LISTENER);
		return no_proxy_refuse(pol) ? SK_DROP : SK_PASS;
	}
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	if (err) {
		stat_inc(pol->scope_idx, SM_STAT_INBOUND_NO_LISTENER);
		return no_proxy_refuse(pol) ? SK_DROP : SK_PASS;
	}
	t.netns = *netns;
	bpf_map_update_elem(&steered_map, &t, &pol->scope_idx, BPF_ANY);
	return SK_PASS;
}

/* ---- SO_ORIGINAL_DST ----------------------------------------------------- */

SEC("cgroup/getsockopt")
int sm_getsockopt(struct bpf_sockopt *ctx)
{
	struct bpf_sock *sk = ctx->sk;
	struct sm_sk_state *st;
	struct sm_policy *pol;
	struct sm_addr orig;
	__u32 scope_idx;
	void *optval, *end;
	__u32 *w;

	if (ctx->optname != SM_SO_ORIGINAL_DST ||
	    (ctx->level != SOL_IP && ctx->level != SOL_IPV6) || !sk || sk->protocol != IPPROTO_TCP)
		goto pass;

	st = bpf_sk_storage_get(&sk_state_map, sk, NULL, 0);
	if (!st)
		goto miss;
	if (st->flags & SM_SK_PROXY) {
		orig = st->orig;
	} else if (st->flags & SM_SK_INBOUND) {
		/* Steered inbound: the original destination is the socket's
		 * own local address, as with TPROXY.
		 */
		orig.family = st->self.family;
		orig.port = st->self.local_port;
		orig.pad = 0;
		__builtin_memcpy(orig.addr, st->self.local, 16);
	} else {
		goto pass; /* e.g. the app asking about its own socket */
	}
	scope_idx = st->scope_idx;

	optval = ctx->optval;
	end = ctx->optval_end;
	if (ctx->level == SOL_IP) {
		struct sockaddr_in *sin = optval;

		if (orig.family != AF_INET || (void *)(sin + 1) > end)
			goto pass;
		sin->sin_family = AF_INET;
		sin->sin_port = bpf_htons(orig.port);
		__builtin_memcpy(&sin->sin_addr, orig.addr, 4);
		__builtin_memset(sin->__pad, 0, sizeof(sin->__pad));
		ctx->optlen = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = optval;

		if ((void *)(sin6 + 1) > end)
			goto pass;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = bpf_htons(orig.port);
		sin6->sin6_flowinfo = 0;
		sin6->sin6_scope_id = 0;
		w = (__u32 *)&sin6->sin6_addr;
		if (orig.family == AF_INET) {
			w[0] = 0;
			w[1] = 0;
			w[2] = bpf_htonl(0xffff);
			__builtin_memcpy(&w[3], orig.addr, 4);
		} else {
			__builtin_memcpy(w, orig.addr, 16);
		}
		ctx->optlen = sizeof(*sin6);
	}
	ctx->retval = 0;
	stat_inc(scope_idx, SM_STAT_ORIGDST_ANSWERED);
	if ((st->flags & SM_SK_PROXY) && first_ask(st))
		stat_inc(scope_idx, SM_STAT_ORIGDST_ASKED);
	return 1;
miss:
	/* Asked in an enrolled scope about a connection we did not capture
	 * (or whose entry was evicted): the kernel's own answer, if any
	 * (conntrack), goes back unchanged.
	 */
	pol = scope_lookup(ctx);
	if (pol)
		stat_inc(pol->scope_idx, SM_STAT_ORIGDST_MISS);
pass:
	/* Not ours: leave the kernel's answer as it is. An optlen beyond the
	 * page the kernel showed us would make it fail the call with EFAULT
	 * (iptables-save asks for much more); 0 means "keep the kernel's".
	 */
	if (ctx->optlen > SM_SOCKOPT_BUF_MAX)
		ctx->optlen = 0;
	return 1;
}
