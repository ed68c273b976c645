/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * sockmesh ABI: everything the BPF programs and user space must agree on.
 * Included by bpf/sockmesh.bpf.c and by libsockmesh. UAPI types only; every
 * struct is laid out without implicit holes (explicit padding) so the kernel
 * side and the user side hash and compare identical bytes.
 */
#ifndef SOCKMESH_ABI_H
#define SOCKMESH_ABI_H

#include <linux/types.h>
#include <linux/bpf.h> /* struct bpf_spin_lock */

/* Default sizes. Each is a map's max_entries and can be overridden at load
 * time (struct sockmesh_open_opts); they are sized for a production node,
 * not a demo.
 */
/* Enrolled scopes (pods or cgroups) per node; also the stats array size. */
#define SM_DEFAULT_MAX_SCOPES 16384
/* Concurrent spliced connections (pair entries; two splice_map sockets each). */
#define SM_DEFAULT_MAX_CONNS 262144
/* Sockets in the splice SOCKHASH: two per spliced connection. */
#define SM_SOCKS_PER_CONN 2
#define SM_DEFAULT_MAX_SPLICE_SOCKS (SM_SOCKS_PER_CONN * SM_DEFAULT_MAX_CONNS)
/* CIDR and port rules over all scopes. */
#define SM_DEFAULT_MAX_RULES 65536
/* Captured handshakes in flight: connects between connect4/6 and
 * establishment (pending_map), and established ones whose proxy side has not
 * been accepted yet (origdst_map).
 */
#define SM_DEFAULT_MAX_PENDING 65536
/* Fast-path directions (fwd_map entries, two per connection). */
#define SM_DEFAULT_MAX_FWD (2 * SM_DEFAULT_MAX_CONNS)
/* Bytes one spliced socket may have redirected to its peer that the peer
 * has not read yet. sk_msg ingress redirects bypass the receiver's buffer
 * limit (the kernel charges them to global TCP memory only, there is no
 * backpressure to the sender), so a sender that gets this far ahead of its
 * reader falls back to the TCP stack for good; like tcp_rmem's maximum
 * (6 MiB), it bounds memory per connection. A reader that keeps up keeps
 * the connection spliced however long the transfer (reads are counted by
 * sm_read_acct). Overridable at first load.
 */
#define SM_DEFAULT_SPLICE_BUDGET (8u << 20)
/* Range of the budget (struct sockmesh_open_opts.splice_budget, `sockmesh
 * enable --splice-budget`): 256 KiB .. 1 GiB per socket. The queued bytes
 * count against tcp_mem only: four bulk streams at 1 GiB each already ran a
 * 24 GiB machine (tcp_mem 2.2 GB) into ENOMEM.
 */
#define SM_MIN_SPLICE_BUDGET ((__u64)256 << 10)
#define SM_MAX_SPLICE_BUDGET (1ull << 30)
/* Upper bounds of the table sizes a user may ask for at load time (each map
 * is allocated up front: past these the kernel's memcg charge, not the
 * policy, would decide).
 */
#define SM_LIMIT_MAX_SCOPES (1u << 24)
#define SM_LIMIT_MAX_CONNS (1u << 26)
#define SM_LIMIT_MAX_RULES (1u << 24)
/* cgroup nesting levels searched for an enrolled ancestor cgroup; deeper
 * enrollment is refused by user space, so nothing is silently missed.
 */
#define SM_MAX_CGROUP_DEPTH 32

/* A policy's rules live under rules_id = its scope_idx, or scope_idx with
 * this bit flipped: a re-enrollment writes the new rules under the other id,
 * switches the policy with one map update, then deletes the old rules, so
 * traffic sees the old or the new rules, never a mix.
 */
#define SM_RULES_ID_ALT (1u << 31)

/* Stats slot 0 is for events that have no scope (not enrolled). */
#define SM_SCOPE_IDX_GLOBAL 0

#define SM_DEFAULT_PROXY_PORT 15001
#define SM_DEFAULT_INBOUND_PORT 15006
#define SM_DEFAULT_DNS_PORT 15053
#define SM_DNS_PORT 53
/* Local pod addresses (inbound steering and cross-pod splice), all pods:
 * room for a dual-stack pod with a second address per family.
 */
#define SM_POD_ADDRS_PER_SCOPE 4
#define SM_DEFAULT_MAX_POD_ADDRS (SM_POD_ADDRS_PER_SCOPE * SM_DEFAULT_MAX_SCOPES)
/* Inbound listeners: one per family per pod. */
#define SM_LISTENERS_PER_SCOPE 2
#define SM_DEFAULT_PROXY_UID 1337

/* getsockopt(SOL_IP, SO_ORIGINAL_DST) and (SOL_IPV6, IP6T_SO_ORIGINAL_DST) */
#define SM_SO_ORIGINAL_DST 80
/* Captured app sockets connect from 127.128.0.0/16 (host order), one address
 * per socket picked by a multiplicative hash of its cookie: see
 * spread_source() in bpf/sockmesh.bpf.c.
 */
#define SM_SPREAD_NET4 0x7f800000u
#define SM_HASH_MUL 0x9e3779b97f4a7c15ull

enum sm_scope_kind {
	SM_SCOPE_CGROUP = 1, /* id = cgroup v2 id (inode number) */
	SM_SCOPE_NETNS = 2, /* id = netns cookie */
};

struct sm_scope_key {
	__u32 kind; /* enum sm_scope_kind */
	__u32 pad;
	__u64 id;
};

enum sm_policy_flags {
	SM_POL_PROXY_GID = 1u << 0, /* proxy_gid is set */
	SM_POL_PROXY_MARK = 1u << 1, /* proxy_mark is set */
	SM_POL_INCLUDE_PORTS = 1u << 2, /* include-ports list is not '*' */
	SM_POL_INCLUDE_CIDR4 = 1u << 3, /* include-cidrs list (v4) is not '*' */
	SM_POL_INCLUDE_CIDR6 = 1u << 4, /* include-cidrs list (v6) is not '*' */
	SM_POL_EXCLUDE_PORTS = 1u << 5, /* some excluded port exists */
	SM_POL_EXCLUDE_CIDRS = 1u << 6, /* some excluded cidr exists */
	SM_POL_SPLICE = 1u << 7, /* splice captured app<->proxy pairs */
	SM_POL_INBOUND = 1u << 8, /* steer inbound connects to the proxy (netns scopes) */
	SM_POL_INBOUND_INCLUDE_PORTS = 1u << 9, /* inbound include list is not '*' */
	SM_POL_INBOUND_EXCLUDE_PORTS = 1u << 10, /* some inbound port is excluded */
	SM_POL_DNS = 1u << 11, /* send DNS (port 53) to the proxy's DNS port */
	SM_POL_DNS_ALL = 1u << 12, /* all port-53 traffic, not only the listed resolvers */
	/* No trusted proxy listener (none, or one owned by another user):
	 * leave connections uncaptured instead of refusing them.
	 */
	SM_POL_FAIL_OPEN = 1u << 13,
	/* Being removed (sockmesh__drain): nothing new is captured or steered;
	 * what was captured keeps its original destination and splice.
	 */
	SM_POL_DRAINING = 1u << 14,
};

/* Value of scope_map: the policy the BPF side enforces for one scope. */
struct sm_policy {
	__u32 scope_idx; /* stats slot, stable for the scope's lifetime */
	__u32 rules_id; /* key of this policy's rules in cidr/port maps */
	__u32 flags; /* enum sm_policy_flags */
	__u16 proxy_port; /* host order */
	__u16 inbound_port; /* host order: the proxy's inbound listener */
	__u32 proxy_uid;
	__u32 proxy_gid;
	__u32 proxy_mark;
	__u16 dns_port; /* host order: the proxy's DNS listener (UDP and TCP) */
	__u16 pad2;
	__u64 attach_cgroup_id; /* where this scope's programs attach */
};

enum sm_rule_list {
	SM_LIST_INCLUDE = 1, /* outbound */
	SM_LIST_EXCLUDE = 2, /* outbound */
	SM_LIST_INBOUND_INCLUDE = 3,
	SM_LIST_INBOUND_EXCLUDE = 4,
	SM_LIST_DNS_SERVERS = 5, /* CIDR list: the resolvers whose traffic is captured */
};

/* LPM key of cidr_map. prefixlen counts the bits after itself: the fixed
 * 64-bit head (rules_id, list, family, pad) plus the CIDR's prefix length.
 */
struct sm_cidr_key {
	__u32 prefixlen;
	__u32 rules_id;
	__u8 list; /* enum sm_rule_list */
	__u8 family; /* AF_INET or AF_INET6 */
	__u8 pad[2];
	__u8 addr[16]; /* network order; IPv4 in the first 4 bytes */
};
#define SM_CIDR_HEAD_BITS 64

struct sm_port_key {
	__u32 rules_id;
	__u16 port; /* host order */
	__u8 list; /* enum sm_rule_list */
	__u8 pad;
};

/* An address as the BPF side stores it: network order, IPv4 in addr[0..3]
 * and the rest zero. v4-mapped IPv6 addresses are stored as IPv4.
 */
struct sm_addr {
	__u32 family; /* AF_INET or AF_INET6 */
	__u16 port; /* host order */
	__u16 pad;
	__u8 addr[16];
};

/* One TCP connection as seen from one of its sockets, in its netns. Keys of
 * origdst_map (seen from the app's side) and splice_map (each socket's own
 * view). The netns cookie keeps identical loopback tuples of two pods apart.
 */
struct sm_tuple {
	__u64 netns;
	__u32 family;
	__u16 local_port; /* host order */
	__u16 remote_port; /* host order */
	__u8 local[16];
	__u8 remote[16];
};

/* pod_addr_map key: an address of an enrolled pod. sk_lookup programs have
 * no netns cookie helper, so the destination address tells which pod (and
 * so which policy and listener) a SYN is for; sockops uses it to find the
 * netns of a local peer pod for cross-pod splice.
 */
struct sm_pod_addr_key {
	__u32 family;
	__u8 addr[16];
};

/* listener_map (SOCKHASH) key: a pod's inbound listener, registered by
 * sockops when the proxy calls listen() on the inbound port.
 */
struct sm_listener_key {
	__u64 netns;
	__u32 family;
	__u32 pad;
};

/* listen_map key: a port something listens on in a netns, as sockops saw
 * listen() (so the accepted sockets of that listener run sockops too): the
 * proxy's connection to an app in its pod is spliced only toward such a
 * port (see local_leg in bpf/sockmesh.bpf.c).
 */
struct sm_listen_key {
	__u64 netns;
	__u32 port; /* host order */
	__u32 pad;
};

/* pending_map value (key: socket cookie of the app's socket). */
struct sm_pending {
	struct sm_addr orig; /* where the app wanted to go */
	__u32 scope_idx;
	__u32 policy_flags;
};

enum sm_origdst_flags {
	/* the app's socket is in splice_map: splice the proxy's end too */
	SM_ORIG_SPLICED = 1u << 0,
};

/* origdst_map value (key: sm_tuple from the app socket's view). Lives from
 * the app's ACTIVE_ESTABLISHED to the proxy's PASSIVE_ESTABLISHED, which
 * moves it into the accepted socket's sm_sk_state.
 */
struct sm_origdst {
	struct sm_addr orig;
	__u32 scope_idx;
	__u32 flags; /* enum sm_origdst_flags */
};

enum sm_sk_flags {
	SM_SK_SPLICE = 1u << 0, /* in splice_map; sk_msg may redirect */
	SM_SK_NO_SPLICE = 1u << 1, /* a message took the stack: never redirect again */
	SM_SK_APP = 1u << 2, /* the app's captured socket: orig is what getpeername shows */
	SM_SK_PROXY = 1u << 3, /* the proxy's accepted socket: orig answers SO_ORIGINAL_DST */
	SM_SK_INBOUND = 1u << 4, /* accepted after sk_lookup steering: orig dst = local addr */
	SM_SK_OVER_BUDGET = 1u << 5, /* sends take the stack until the reader read them all */
	SM_SK_LOCAL_LEG = 1u << 6, /* the proxy's connection to an app in its own pod */
	SM_SK_ASKED = 1u << 7, /* PROXY: its proxy asked SO_ORIGINAL_DST (or it closed first) */
};

/* Per-socket state (BPF_MAP_TYPE_SK_STORAGE), computed once at establish so
 * the per-message path is one storage read and one redirect.
 */
struct sm_sk_state {
	struct sm_tuple peer; /* the peer socket's splice_map key */
	struct sm_tuple self; /* this socket's key */
	struct sm_addr orig; /* original destination (SM_SK_APP, SM_SK_PROXY) */
	__u32 scope_idx;
	__u32 flags; /* enum sm_sk_flags */
	__u32 side; /* 0: the connecting end, 1: the accepted end (index in sm_pair) */
	__u32 fb_seq; /* SM_SK_OVER_BUDGET: TCP write_seq at its last message (in[] has the rest) */
};

/* pair_map value (key: the connecting end's splice key), indexed by side:
 * bytes redirected into each end and bytes that end has read of them, so
 * a sender knows how far its reader is behind (an sk_msg program cannot
 * look at another socket). in[] is written by the peer's sk_msg, read[] by
 * sm_read_acct; each has one writer at a time (the socket's lock).
 */
struct sm_pair {
	__u64 in[2];
	__u64 read[2];
	__u64 cookie[2]; /* each end's socket cookie (its fwd_map key, see sm_fwd) */
	__u32 scope_idx; /* the connecting end's scope */
	__u32 flags; /* SM_PAIR_LOCAL_LEG: a proxy's connection to an app in its pod */
};

#define SM_PAIR_LOCAL_LEG 1u

/* ---- kernel fast path ------------------------------------------------------
 * A sidecar hands its two sockets of a connection (downstream D, upstream
 * U) to the kernel (sockmesh__fastpath). Each direction then has one
 * fwd_map entry, keyed by the cookie of the socket the sidecar would have
 * read it from (the bypassed receiver R: D for app -> upstream, U for
 * upstream -> app). Whoever delivers into R (R's splice peer's sk_msg, or
 * the stream verdict when R is fed by TCP) reads the entry:
 *   FAST  deliver to the target instead: egress on a socket of fp_map
 *         (target_cookie) or ingress into a spliced socket (target);
 *   HELD  deliver into R as without a fast path; the library's pump relays
 *         it. Back to FAST only at a byte boundary where everything held
 *         has been relayed (relay_map[R] equals what was put into R), so no
 *         byte overtakes another.
 * FAST -> HELD happens when the target's reader is a budget behind (the
 * stream verdict has no backpressure otherwise) or the target is gone.
 */
enum sm_fwd_flags {
	SM_FWD_FAST = 1u << 0, /* deliver to the target */
	SM_FWD_SPLICE_FED = 1u << 2, /* R is fed by its splice peer (held: pair in[]) */
	SM_FWD_STUCK = 1u << 3, /* target gone: held for good */
	/* target: egress of splice_map[target], whose own splice delivers it
	 * on (the downstream socket, to the app's); pair in[] of the app
	 * counts it there
	 */
	SM_FWD_VIA_SPLICE = 1u << 4,
	/* HELD and R's splice queue was a budget behind: R gets the held
	 * bytes over TCP (the sender throttled by TCP) until the next FAST
	 */
	SM_FWD_HELD_TCP = 1u << 5,
	/* target: ingress of splice_map[target], as if the sidecar's other
	 * socket had sent it there (pod to pod: both of the sidecar's sockets
	 * are spliced); target_pair in[target_side] counts it, and fast_bytes
	 * is counted by the sk_msg program (an ingress redirect moves the
	 * whole message). If the target is bypassed too (the other pod's
	 * sidecar switched), its entry decides the next hop the same way.
	 */
	SM_FWD_TO_SPLICE = 1u << 6,
	/* rcv_seq holds R's next expected TCP sequence (the stream verdict's,
	 * on kernels where it can read an skb's sequence)
	 */
	SM_FWD_SEQ = 1u << 7,
};

struct sm_fwd {
	/* SM_FWD_VIA_SPLICE, SM_FWD_TO_SPLICE: the target's splice_map key
	 * (kept so the programs need not build it per message) and the
	 * target's pair_map key
	 */
	struct sm_tuple target;
	struct sm_tuple target_pair;
	struct sm_tuple recv_pair; /* SM_FWD_SPLICE_FED: R's pair_map key */
	__u64 target_cookie; /* egress target: its fp_map key */
	__u64 partner_cookie; /* the other socket of the sidecar's pair */
	__u64 held; /* bytes put into R's own queue (R fed by TCP) */
	__u64 fast_bytes; /* bytes delivered to the target */
	__u64 base_in; /* SM_FWD_VIA_SPLICE: target_pair in[target_side] at the switch */
	__u32 flags; /* enum sm_fwd_flags */
	__u32 scope_idx;
	__u32 target_side; /* the target's index in its pair entry */
	__u32 recv_side; /* R's index in its pair entry */
	/* Held by whoever decides FAST or HELD for a byte and counts it as
	 * put into R (the producer), and by sm_fp_flip: the flip can never
	 * fall between a producer's decision and its count.
	 */
	struct bpf_spin_lock lock;
	/* SM_FWD_SEQ: the sequence after the last byte of R the verdict passed
	 * on, written by the verdict alone (its runs for one socket are
	 * serialized by the socket's lock). Was padding: entries of an older
	 * library have it 0 and the flag clear, and older programs never read it.
	 */
	__u32 rcv_seq;
};

/* config_map value (one entry): load-time settings the programs have as
 * constants, for the processes that open the instance later, and which
 * build loaded the programs attached now (sockmesh_upgrade). Fields are only
 * ever appended (an upgrade reads the pinned value at its own size).
 */
struct sm_config {
	__u64 splice_budget;
	__u64 build_id; /* hash of the BPF object (0: a build before 0.5) */
	__u32 layout; /* its SM_LAYOUT_VERSION (0: before 0.5, which is 1) */
	__u32 pad;
};

/* Layout version of the maps that hold live connections' state (the socket
 * maps, sk_state_map and every map the programs write per connection). An
 * upgrade keeps those maps as they are, so their keys, values and meaning
 * must not change within one layout version; a build that changes them
 * bumps this, and sockmesh_upgrade refuses to cross versions. The other
 * maps (policy, rules, names, settings, counters) may grow their values by
 * appending fields: an upgrade copies them into maps of the new layout
 * (docs/design.md, "Live upgrade"). Also bumped when the set of hooks
 * changes: an older build would neither update nor remove a hook it does
 * not know. 2: the cgroup ingress hook (sm_fin_hold).
 */
#define SM_LAYOUT_VERSION 2

/* sm_fp_event (BPF_PROG_TYPE_SYSCALL) context: the library counts events
 * of the fast path in the per-CPU counters without racing the programs.
 */
struct sm_fp_event {
	__u32 scope_idx;
	__u32 stat; /* enum sm_stat */
	__u64 n;
};

/* sm_fp_flip input: the pump asks for HELD -> FAST on the direction whose
 * receiver has this cookie, once it relayed everything it found there. It
 * is the payload of a dummy frame, after an Ethernet header.
 */
struct sm_fp_flip {
	__u64 cookie;
};
#define SM_FP_FLIP_OFF 14

/* dns_state_map value (socket storage of a UDP socket whose DNS traffic was
 * redirected): replies from the DNS proxy are shown as coming from orig.
 */
struct sm_dns_state {
	struct sm_addr orig;
	__u16 dns_port; /* host order */
	__u16 pad;
	__u32 scope_idx;
};

/* scope_meta_map value: user-space bookkeeping only (what to display). */
struct sm_scope_meta {
	char name[256]; /* cgroup path or netns name/path given at enroll */
	char pod_namespace[64]; /* Kubernetes labels, from CNI_ARGS (may be empty) */
	char pod_name[256];
	char container_id[128];
};

/* Per-scope counters: id, name (user space, metrics) and help text, in one
 * list. The BPF side uses the ids; libsockmesh exports the names and help
 * (sockmesh_stat_name(), sockmesh_stat_help()) for the CLI and the daemon.
 */
/* clang-format off */
#define SM_STATS(X)                                                                               \
	X(CAPTURED, captured, "Outbound TCP connects redirected to the proxy.")                   \
	X(BYPASS_NOT_ENROLLED, bypass_not_enrolled,                                               \
	  "TCP connects seen from sockets of no enrolled scope (counted in the global series).")  \
	X(BYPASS_LOOPBACK, bypass_loopback, "Connects to loopback destinations, never captured.") \
	X(BYPASS_PROXY_UID, bypass_proxy_uid, "Connects by the proxy's uid, not captured.")       \
	X(BYPASS_PROXY_GID, bypass_proxy_gid, "Connects by the proxy's gid, not captured.")       \
	X(BYPASS_PROXY_MARK, bypass_proxy_mark,                                                   \
	  "Connects from sockets with the proxy's SO_MARK, not captured.")                        \
	X(BYPASS_EXCLUDED_PORT, bypass_excluded_port,                                             \
	  "Connects to an excluded outbound port, not captured.")                                 \
	X(BYPASS_NOT_INCLUDED_PORT, bypass_not_included_port,                                     \
	  "Connects to a port outside the included ones, not captured.")                          \
	X(BYPASS_EXCLUDED_CIDR, bypass_excluded_cidr,                                             \
	  "Connects to an excluded outbound CIDR, not captured.")                                 \
	X(BYPASS_NOT_INCLUDED_CIDR, bypass_not_included_cidr,                                     \
	  "Connects to an address outside the included CIDRs, not captured.")                     \
	X(ORIGDST_PUBLISHED, origdst_published,                                                   \
	  "Original destinations published for the proxy when a captured connection was "        \
	  "established.")                                                                         \
	X(ORIGDST_MISS, origdst_miss,                                                             \
	  "SO_ORIGINAL_DST asked in an enrolled scope for a connection sockmesh has no answer "   \
	  "for.")                                                                                 \
	X(ORIGDST_ANSWERED, origdst_answered, "SO_ORIGINAL_DST queries answered for the proxy.")  \
	X(SPLICE_SOCKETS, splice_sockets, "Sockets inserted into the in-kernel splice map.")      \
	X(SPLICE_MSGS, splice_msgs, "Messages spliced socket to socket in the kernel.")           \
	X(SPLICE_BYTES, splice_bytes, "Bytes spliced socket to socket in the kernel.")            \
	X(SPLICE_MISS, splice_miss,                                                               \
	  "Splice redirects that missed their peer and took the TCP stack.")                      \
	X(MAP_FULL, map_full, "Inserts that failed because a BPF map was full.")                  \
	X(INBOUND_CAPTURED, inbound_captured,                                                     \
	  "Inbound connections steered to the proxy's inbound listener.")                         \
	X(INBOUND_BYPASS_EXCLUDED_PORT, inbound_bypass_excluded_port,                             \
	  "Inbound connections to an excluded port, not steered.")                                \
	X(INBOUND_BYPASS_NOT_INCLUDED_PORT, inbound_bypass_not_included_port,                     \
	  "Inbound connections to a port outside the included ones, not steered.")                \
	X(INBOUND_NO_LISTENER, inbound_no_listener,                                               \
	  "Inbound connections not steered because no proxy listener was registered.")            \
	X(INBOUND_LISTENERS, inbound_listeners, "Inbound proxy listeners registered.")            \
	X(DNS_CAPTURED, dns_captured, "DNS queries redirected to the proxy's DNS port.")          \
	X(DNS_REPLIES, dns_replies, "DNS replies shown as coming from the server the app asked.") \
	X(SPLICE_BUDGET_FALLBACKS, splice_budget_fallbacks,                                       \
	  "Times a spliced socket's sends went to the TCP stack because its peer had more than "  \
	  "the splice budget unread.")                                                            \
	X(SPLICE_LOCAL_LEGS, splice_local_legs,                                                   \
	  "Connections from the proxy to an app in its own pod (its inbound leg) spliced.")       \
	X(SPLICE_BUDGET_RESUMES, splice_budget_resumes,                                           \
	  "Spliced sockets that came back to the splice after their peer read everything they "   \
	  "sent while over the budget.")                                                          \
	X(SPREAD_FAILED, spread_failed,                                                           \
	  "Captured connects that kept the kernel's loopback source because binding a spread "    \
	  "one (127.128.0.0/16) failed.")                                                         \
	X(FASTPATH_CONNS, fastpath_conns,                                                         \
	  "Connections a sidecar handed to the kernel fast path.")                                \
	X(FASTPATH_BYTES, fastpath_bytes,                                                         \
	  "Bytes the kernel fast path forwarded without the sidecar reading them.")               \
	X(FASTPATH_FALLBACKS, fastpath_fallbacks,                                                 \
	  "Times a fast-path direction handed bytes back to its sidecar (a slow reader, or its "  \
	  "target gone).")                                                                        \
	X(REFUSED_NO_PROXY, refused_no_proxy,                                                     \
	  "Connections to be captured that were refused (fail closed): no proxy listener owned "  \
	  "by root or the proxy uid.")                                                            \
	X(BYPASS_NO_PROXY, bypass_no_proxy,                                                       \
	  "Connections to be captured that went uncaptured (fail open): no proxy listener owned " \
	  "by root or the proxy uid.")                                                            \
	X(PROXY_FOREIGN, proxy_foreign,                                                           \
	  "Listeners on the proxy's ports owned by another user, never given captured "           \
	  "connections (seen at a captured connect or at listen()).")                             \
	X(ORIGDST_STORED, origdst_stored,                                                         \
	  "Original destinations the proxy's accepted socket took into its storage.")            \
	X(ORIGDST_ASKED, origdst_asked,                                                           \
	  "Captured connections whose proxy asked for their original destination.")              \
	X(ORIGDST_UNASKED, origdst_unasked,                                                       \
	  "Captured connections that ended before their proxy asked for the original "            \
	  "destination.")                                                                         \
	X(BYPASS_DRAINING, bypass_draining,                                                       \
	  "Connects and inbound connections not captured because the scope was being removed.")  \
	X(SPLICE_FIN_HELD, splice_fin_held,                                                       \
	  "FIN segments held back (TCP sends them again) because their reader still had "         \
	  "spliced bytes unread ahead of bytes that took the TCP stack.")                         \
	X(FASTPATH_RESENT_CUT, fastpath_resent_cut,                                               \
	  "Bytes the kernel fast path cut off retransmitted segments because TCP had already "    \
	  "received them (the kernel would have delivered them twice).")                          \
	SM_STATS_VARIANT(X)

/* The upgrade tests' second build (meson -Dlayout_variant=true): one more
 * counter (stats_map's values grow) that a changed connect program counts.
 */
#ifdef SM_LAYOUT_VARIANT
#define SM_STATS_VARIANT(X)                                                                       \
	X(UPGRADE_VARIANT, upgrade_variant,                                                       \
	  "Test build only (-Dlayout_variant=true): connects captured by its changed program.")
#else
#define SM_STATS_VARIANT(X)
#endif
/* clang-format on */

#define SM_STAT_ENUM_(ID, name, help) SM_STAT_##ID,
enum sm_stat { SM_STATS(SM_STAT_ENUM_) SM_STAT_MAX };
#undef SM_STAT_ENUM_

struct sm_stats {
	__u64 c[SM_STAT_MAX];
};

/* ---- the tap (sockmesh tap) -------------------------------------------------
 * A tap is a process whose bpf/tap.bpf.c programs are in the data path's
 * tap program arrays (tap_msg_calls, tap_sockops_calls): every send
 * of a spliced socket in its scope is copied to its ring buffer as records
 * of at most SM_TAP_CHUNK payload bytes; a record the ring cannot take is
 * counted lost and shows as a gap in the stream offsets.
 */
#define SM_TAP_CHUNK 4096u
/* Payload records made of one send: 1 MiB (the kernel hands a send to
 * sk_msg in batches of at most 17 page fragments of up to 32 KiB); the
 * rest of a larger batch would be counted lost, like a full ring.
 */
#define SM_TAP_MSG_CHUNKS 256
#define SM_TAP_ANY_SCOPE 0xffffffffu

enum sm_tap_kind {
	SM_TAP_DATA = 0, /* payload of one send (a chunk of it) */
	SM_TAP_FIN = 1, /* the sender shut its direction down */
	SM_TAP_RST = 2, /* the connection ended without FINs (reset, abort) */
	SM_TAP_OPEN = 3, /* a connection established while tapping */
	SM_TAP_LOST = 4, /* from off on, the sender's bytes are not in the tap (see below) */
};

enum sm_tap_path {
	SM_TAP_PATH_SPLICE = 0, /* redirected socket to socket */
	SM_TAP_PATH_STACK = 1, /* took the TCP stack (budget fallback, miss, no splice) */
	SM_TAP_PATH_FAST = 2, /* past a sidecar's socket (kernel fast path) */
	SM_TAP_PATHS
};

#define SM_TAP_F_FROM_START 1u /* the sender was tapped from its first byte */
/* The sender went through the kernel fast path's egress redirect (its
 * bytes out of the sidecar's upstream socket): a send that socket cannot
 * take whole is cut short and sent again, and sk_msg cannot tell how much
 * went, so its offsets cannot be kept: one SM_TAP_LOST record, then
 * nothing more of this sender.
 */
#define SM_TAP_F_UNCOUNTED 2u

/* One ring record. client is the connecting end (the app, for outbound),
 * server the original destination where there is one, else the peer.
 * off counts the sender's bytes since the tap first saw it (from_start:
 * since the connection opened), so user space numbers TCP sequences from
 * it and sees gaps.
 */
struct sm_tap_rec {
	__u64 ts_ns; /* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 off; /* stream offset of data[0] in the sender's direction */
	__u64 pid_tgid; /* the sender (DATA; 0 where no process context) */
	__u32 scope_idx;
	__u32 len; /* bytes this record stands for (payload, or 0) */
	__u32 caplen; /* bytes of data[] present (<= len: snaplen, SM_TAP_CHUNK) */
	__u8 kind; /* enum sm_tap_kind */
	__u8 dir; /* 0: client -> server, 1: server -> client */
	__u8 path; /* enum sm_tap_path */
	__u8 flags; /* SM_TAP_F_* */
	__u32 family;
	__u16 client_port;
	__u16 server_port;
	__u8 client[16];
	__u8 server[16];
	/* followed by caplen payload bytes */
};

/* Flags of struct sm_tap_sk only (the record carries the low byte). A
 * socket the tap follows from its TCP segments (SM_TAP_F_SEGMENTS: a
 * captured connection that never entered the splice, and the sidecar's
 * upstream socket on the kernel fast path), by the cgroup_skb programs of
 * bpf/tap.bpf.c: each direction's offset is its TCP sequence less a base
 * fixed once (SM_TAP_F_OUT_BASE, SM_TAP_F_IN_BASE: at establishment while
 * tapping, else at the first segment seen).
 */
#define SM_TAP_F_SEGMENTS (1u << 8)
#define SM_TAP_F_OUT_BASE (1u << 9)
#define SM_TAP_F_IN_BASE (1u << 10)
#define SM_TAP_F_OUT_FIN (1u << 11)
#define SM_TAP_F_IN_FIN (1u << 12)
#define SM_TAP_F_RST (1u << 13)

/* Per socket, created by the first tapped send or segment (or at
 * establishment while a tap runs).
 */
struct sm_tap_sk {
	__u64 off; /* bytes sent since; SEGMENTS: the end of the highest sent */
	__u32 flags; /* SM_TAP_F_* */
	__u32 pid; /* the last sender: a new one wakes the reader (it reads /proc/PID/comm) */
	__u64 in_off; /* SEGMENTS: the end of the highest received */
	__u32 out_base; /* SEGMENTS: the TCP sequence of sent offset 0 */
	__u32 in_base; /* SEGMENTS: the TCP sequence of received offset 0 */
};

/* ---- flow events (sockmesh flows) ------------------------------------------
 * A flow consumer is a process whose bpf/flows.bpf.c programs are in the
 * data path's flow program arrays (flow_msg_calls, flow_sockops_calls),
 * tail-called before the tap's. One record per captured connection, kept
 * in the consumer's flow_map from its open to its close, keyed by the
 * cookie of the socket that stands for it: the app's socket (outbound),
 * the proxy's accepted socket (inbound, pod to pod). Both ends' sends are
 * counted into it by the path they took; a connection that never entered
 * the splice has TCP's own counters at close instead.
 */
enum sm_flow_kind {
	SM_FLOW_OPEN = 1,
	SM_FLOW_UPDATE = 2, /* every interval while open (user space, from flow_map) */
	SM_FLOW_CLOSE = 3,
};

enum sm_flow_dir {
	SM_FLOW_OUTBOUND = 0, /* an app's connection, captured to its proxy */
	SM_FLOW_INBOUND = 1, /* steered to a pod's proxy by sk_lookup */
	SM_FLOW_POD_TO_POD = 2, /* inbound, from a local pod's sidecar (spliced) */
};

/* Helpers the kernel lets flows.bpf.c call (its flow_helpers, set at load). */
#define SM_FLOW_H_SOCKOPS_PID 1u /* bpf_get_current_pid_tgid in sockops (6.2+) */
#define SM_FLOW_H_SOCKOPS_COMM 2u /* bpf_get_current_comm in sockops */
#define SM_FLOW_H_MSG_COMM 4u /* bpf_get_current_comm in sk_msg */

#define SM_FLOW_F_SPLICED 1u /* in the splice at open: bytes counted per send */
#define SM_FLOW_F_PID_SET 2u /* pid is the flow socket's first sender */
/* Client -> server (0) or back (1) went out of a sidecar's upstream socket
 * by the kernel fast path's egress redirect: a send that socket cannot take
 * whole is offered again, so that direction's bytes since are not known.
 */
#define SM_FLOW_F_UNCOUNTED0 4u
#define SM_FLOW_F_UNCOUNTED1 8u

struct sm_flow {
	__u64 cookie; /* the flow socket's */
	__u64 open_ns; /* CLOCK_MONOTONIC */
	__u64 end_ns; /* CLOSE */
	__u64 bytes[2][SM_TAP_PATHS]; /* [0] client -> server, [1] server -> client */
	__u32 pid; /* the flow socket's process */
	__u32 scope_idx;
	/* enum sm_sk_flags: why sends of either end took TCP (as they were at
	 * those sends), and at close the socket's own
	 */
	__u32 sk_flags;
	__u32 srtt_us; /* TCP's smoothed RTT at close */
	__u32 retrans; /* TCP's total retransmits at close */
	__u8 kind; /* enum sm_flow_kind */
	__u8 dir; /* enum sm_flow_dir */
	__u8 flags; /* SM_FLOW_F_* */
	__u8 acked0; /* TCP's bytes_acked at open: the SYN (connecting end) */
	__u32 family; /* of client and server (an IPv4 one in an IPv6 flow: v4-mapped) */
	__u16 client_port;
	__u16 server_port;
	__u8 client[16]; /* the connecting end */
	__u8 server[16]; /* the original destination */
	char comm[16]; /* pid's command, as the kernel saw it ("": not known) */
};

_Static_assert(sizeof(struct sm_scope_key) == 16, "sm_scope_key layout");
_Static_assert(sizeof(struct sm_policy) == 40, "sm_policy layout");
_Static_assert(sizeof(struct sm_cidr_key) == 28, "sm_cidr_key layout");
_Static_assert(sizeof(struct sm_port_key) == 8, "sm_port_key layout");
_Static_assert(sizeof(struct sm_addr) == 24, "sm_addr layout");
_Static_assert(sizeof(struct sm_tuple) == 48, "sm_tuple layout");
_Static_assert(sizeof(struct sm_pending) == 32, "sm_pending layout");
_Static_assert(sizeof(struct sm_origdst) == 32, "sm_origdst layout");
_Static_assert(sizeof(struct sm_sk_state) == 136, "sm_sk_state layout");
_Static_assert(sizeof(struct sm_pair) == 56, "sm_pair layout");
_Static_assert(sizeof(struct sm_listen_key) == 16, "sm_listen_key layout");
_Static_assert(sizeof(struct sm_fwd) == 208, "sm_fwd layout");
_Static_assert(sizeof(struct sm_fp_event) == 16, "sm_fp_event layout");
_Static_assert(sizeof(struct sm_fp_flip) == 8, "sm_fp_flip layout");
_Static_assert(sizeof(struct sm_config) == 24, "sm_config layout");
_Static_assert(sizeof(struct sm_dns_state) == 32, "sm_dns_state layout");
_Static_assert(sizeof(struct sm_pod_addr_key) == 20, "sm_pod_addr_key layout");
_Static_assert(sizeof(struct sm_listener_key) == 16, "sm_listener_key layout");
_Static_assert(sizeof(struct sm_tap_rec) == 80, "sm_tap_rec layout");
_Static_assert(sizeof(struct sm_tap_sk) == 32, "sm_tap_sk layout");
_Static_assert(sizeof(struct sm_flow) == 152, "sm_flow layout");

/* ---- map keys: built here, by both sides -------------------------------
 * Each key is built by one function so the BPF program and the library hash
 * the same bytes (padding zeroed, prefix lengths counted the same way).
 */
#ifdef __bpf__
#define SM_KEY_FN static __always_inline
#define sm_key_memcpy __builtin_memcpy
#else
#define SM_KEY_FN static inline
#define sm_key_memcpy __builtin_memcpy
#endif

SM_KEY_FN struct sm_scope_key sm_scope_key_make(__u32 kind, __u64 id)
{
	struct sm_scope_key k = { .kind = kind, .pad = 0, .id = id };

	return k;
}

/* prefix: the CIDR's own prefix length (0-32 or 0-128) */
SM_KEY_FN void sm_cidr_key_init(struct sm_cidr_key *k, __u32 rules_id, __u8 list, __u8 family,
				const __u8 addr[16], __u32 prefix)
{
	k->prefixlen = SM_CIDR_HEAD_BITS + prefix;
	k->rules_id = rules_id;
	k->list = list;
	k->family = family;
	k->pad[0] = 0;
	k->pad[1] = 0;
	sm_key_memcpy(k->addr, addr, 16);
}

SM_KEY_FN struct sm_port_key sm_port_key_make(__u32 rules_id, __u8 list, __u16 port)
{
	struct sm_port_key k = { .rules_id = rules_id, .port = port, .list = list, .pad = 0 };

	return k;
}

SM_KEY_FN void sm_pod_addr_key_init(struct sm_pod_addr_key *k, __u32 family, const __u8 addr[16])
{
	k->family = family;
	sm_key_memcpy(k->addr, addr, 16);
}

/* The splice key of a connection's other end (same netns: a loopback pair). */
SM_KEY_FN void sm_tuple_reverse(struct sm_tuple *dst, const struct sm_tuple *src)
{
	dst->netns = src->netns;
	dst->family = src->family;
	dst->local_port = src->remote_port;
	dst->remote_port = src->local_port;
	sm_key_memcpy(dst->local, src->remote, 16);
	sm_key_memcpy(dst->remote, src->local, 16);
}

SM_KEY_FN struct sm_listener_key sm_listener_key_make(__u64 netns, __u32 family)
{
	struct sm_listener_key k = { .netns = netns, .family = family, .pad = 0 };

	return k;
}

#endif /* SOCKMESH_ABI_H */
