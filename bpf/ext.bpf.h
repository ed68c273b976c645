/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the data path's extensions (the tap, bpf/tap.bpf.c, and flow
 * events, bpf/flows.bpf.c) share: the instance's maps they reuse by fd
 * (user space hands them the pinned ones; the sizes are those maps': its
 * per-socket state in hooks.bpf.h, its pair entries and fast-path
 * directions here), and a connection's endpoints as they show them.
 */
#ifndef SOCKMESH_EXT_BPF_H
#define SOCKMESH_EXT_BPF_H

#include "sockmesh_abi.h"
#include "hooks.bpf.h"

/* The instance's pair entries: each end's cookie, bytes in and read. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1);
	__type(key, struct sm_tuple);
	__type(value, struct sm_pair);
} pair_map SEC(".maps");

/* The instance's fast-path directions: which fast-path sends were egress
 * redirects.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1);
	__type(key, __u64);
	__type(value, struct sm_fwd);
} fwd_map SEC(".maps");

/* The pair entry of a spliced socket (NULL if gone). */
static __always_inline struct sm_pair *sm_pair_of(const struct sm_sk_state *st)
{
	return bpf_map_lookup_elem(&pair_map, st->side & 1 ? &st->peer : &st->self);
}

/* Did this send of a fast-path socket go out of the sidecar's upstream
 * socket (egress redirect), not into another spliced socket? A send that
 * socket cannot take whole (a non-blocking app, its buffer full) is cut
 * short and offered again: sk_msg sees those bytes twice and cannot tell
 * how many went, so nothing here counts such sends.
 */
static __always_inline int sm_fast_egress(const struct sm_sk_state *st)
{
	struct sm_pair *pair = sm_pair_of(st);
	struct sm_fwd *fwd;

	if (!pair)
		return 1; /* cannot tell: do not count it */
	fwd = bpf_map_lookup_elem(&fwd_map, &pair->cookie[(st->side & 1) ^ 1]);
	return !fwd || !(fwd->flags & SM_FWD_TO_SPLICE);
}

#ifndef AF_INET
#define AF_INET 2
#define AF_INET6 10
#endif

static __always_inline void sm_v4_mapped(__u8 a[16])
{
	__u32 *w = (__u32 *)a;

	w[3] = w[0];
	w[0] = w[1] = 0;
	w[2] = bpf_htonl(0xffff);
}

/* The connecting end as client, the original destination (where the app
 * was going) as server, from the state of either of its sockets.
 */
struct sm_endpoints {
	__u32 family;
	__u16 client_port; /* host order */
	__u16 server_port;
	__u8 client[16];
	__u8 server[16];
};

static __always_inline void sm_endpoints_of(struct sm_endpoints *e, const struct sm_sk_state *st)
{
	const struct sm_tuple *t = &st->self;

	if (st->flags & (SM_SK_APP | SM_SK_PROXY)) {
		/* self is the app's view on both ends (the proxy's is stored so) */
		e->family = st->orig.family;
		e->client_port = t->local_port;
		e->server_port = st->orig.port;
		__builtin_memcpy(e->client, t->local, 16);
		__builtin_memcpy(e->server, st->orig.addr, 16);
		if (t->family != st->orig.family) {
			/* an IPv6 app going to an IPv4 destination: both as IPv6 */
			if (t->family == AF_INET)
				sm_v4_mapped(e->client);
			else
				sm_v4_mapped(e->server);
			e->family = AF_INET6;
		}
	} else if (!(st->side & 1)) {
		e->family = t->family;
		e->client_port = t->local_port;
		e->server_port = t->remote_port;
		__builtin_memcpy(e->client, t->local, 16);
		__builtin_memcpy(e->server, t->remote, 16);
	} else {
		/* the accepted end: its local side is the server */
		e->family = t->family;
		e->client_port = t->remote_port;
		e->server_port = t->local_port;
		__builtin_memcpy(e->client, t->remote, 16);
		__builtin_memcpy(e->server, t->local, 16);
	}
}

#endif /* SOCKMESH_EXT_BPF_H */
