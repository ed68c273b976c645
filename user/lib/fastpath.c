// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libsockmesh: the kernel fast path, for sidecars.
 *
 * Of the sidecar's two sockets, one (L) is spliced to a local socket, the
 * app's: the downstream for an outbound connection (the app's captured
 * socket), the upstream for an inbound one (the sidecar's leg to its app).
 * The other (R) is fed by TCP from the remote peer. The switch
 * (sockmesh__fastpath) writes one fwd_map entry per direction, keyed by the
 * socket the sidecar would have read it from, and puts R into fp_map so
 * the stream verdict runs on it. Pod to pod on one node both sockets are
 * spliced (the downstream to the app's, the upstream to the other pod's
 * proxy): each direction then goes past the socket it would be read from
 * into the far socket of the other splice (SM_FWD_TO_SPLICE), and there is
 * no R. Both
 * directions start HELD; the kernel moves each to FAST at the first byte
 * boundary where everything held was relayed (see struct sm_fwd in the ABI
 * header). The pump is the slow path: it relays what the kernel left in the
 * sockets' own queues and publishes how much (relay_map), and forwards each
 * half-close once every byte before it was delivered.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <linux/sockios.h>
#include <netinet/in.h>
#include <linux/tcp.h> /* struct tcp_info with tcpi_bytes_acked */

#include <bpf/bpf.h>

#include "lib.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

/* Socket of the pair: the sidecar's downstream (the app's connection to
 * it) and upstream.
 */
enum { SK_DOWN = 0, SK_UP = 1 };

struct fp_dir {
	char buf[64 << 10];
	size_t off, len; /* bytes read from the source not yet written */
	__u64 relayed; /* relay_map value of the source (see sm_fwd) */
	__u64 base; /* ... of which the sidecar relayed before the switch */
	__u64 drained; /* relayed by the switch itself, before any accounting */
	bool eof; /* the source's peer half-closed */
	bool shut; /* ... and the destination was shut down for writing */
};

struct sockmesh_fastpath {
	struct sockmesh *sm;
	int fd[2]; /* SK_DOWN, SK_UP */
	__u64 cookie[2];
	int l, r; /* SK_*: the socket spliced to the app's, the TCP-fed one */
	bool both; /* pod to pod: both spliced (l and r unused) */
	struct sm_tuple pk[2]; /* both: each socket's pair_map key */
	__u32 side[2]; /* both: each socket's index in its pair entry */
	struct sm_tuple pair_key; /* pair_map key of L and the app's socket */
	struct sm_tuple l_key; /* L's splice_map key */
	__u32 app_side; /* the app's socket's index in that pair entry */
	__u32 scope_idx;
	/* per direction, indexed by its source socket (SK_*), which is also
	 * its enum sockmesh_fastpath_dir: SOCKMESH_FP_UP reads SK_DOWN
	 */
	struct fp_dir dir[2];
	__u64 app_base; /* the app's pair in[] once the switch was done */
	__u64 fast_seen; /* fast_bytes of R's entry, last looked at */
	__u64 relay_ahead; /* how far the pump may run ahead of the app's reads */
	__u64 r_written0; /* bytes R had taken to send at the switch */
	__u64 l_counted; /* fast bytes L's direction already in the counters */
};

_Static_assert((int)SOCKMESH_FP_UP == (int)SK_DOWN && (int)SOCKMESH_FP_DOWN == (int)SK_UP,
	       "a direction is indexed by its source socket");

/* Bytes the socket has taken to send since it was made: acknowledged plus
 * still queued (two calls: read until an ACK did not fall between them).
 */
static int tcp_written(int fd, __u64 *out)
{
	for (int i = 0; i < 100; i++) {
		struct tcp_info a, b;
		socklen_t la = sizeof(a), lb = sizeof(b);
		int outq;

		if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &a, &la) || ioctl(fd, SIOCOUTQ, &outq) ||
		    getsockopt(fd, IPPROTO_TCP, TCP_INFO, &b, &lb))
			return -errno;
		if (a.tcpi_bytes_acked == b.tcpi_bytes_acked) {
			*out = a.tcpi_bytes_acked + (__u64)outq;
			return 0;
		}
	}
	return -EAGAIN;
}

static int sock_cookie(int fd, __u64 *cookie)
{
	socklen_t len = sizeof(*cookie);

	return getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len) ? -errno : 0;
}

static int tcp_established(int fd, const char *which)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int type;
	socklen_t tl = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) || type != SOCK_STREAM ||
	    getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len)) {
		sm_set_err(0, "fast path: %s (fd %d) is not a TCP socket", which, fd);
		return -ENOTSOCK;
	}
	if (ti.tcpi_state != 1 /* TCP_ESTABLISHED */) {
		sm_set_err(0, "fast path: %s (fd %d) is not an established connection", which, fd);
		return -ENOTCONN;
	}
	return 0;
}

/* Count an event in the per-CPU counters through sm_fp_event (a plain
 * map update from here would race the programs' increments).
 */
static void fp_event(struct sockmesh *sm, __u32 idx, enum sm_stat stat, __u64 n)
{
	struct sm_fp_event ev = { .scope_idx = idx, .stat = stat, .n = n };
	LIBBPF_OPTS(bpf_test_run_opts, run, .ctx_in = &ev, .ctx_size_in = sizeof(ev));

	bpf_prog_test_run_opts(sm->prog_fd[PROG_sm_fp_event], &run);
}

/* Bytes app -> remote peer the kernel forwarded (the direction read from
 * L): what R took to send since the switch, less what the pump wrote.
 */
static __u64 l_fast_bytes(const struct sockmesh_fastpath *fp)
{
	const struct fp_dir *x = &fp->dir[fp->l];
	__u64 w;

	if (tcp_written(fp->fd[fp->r], &w) || w < fp->r_written0)
		return fp->l_counted;
	w -= fp->r_written0;
	if (x->shut && w)
		w--; /* the FIN takes a sequence number */
	return w > x->relayed - x->base ? w - (x->relayed - x->base) : 0;
}

/* Bring fastpath_bytes up to date for app -> remote peer. */
static void count_l(struct sockmesh_fastpath *fp)
{
	__u64 n = l_fast_bytes(fp);

	if (n > fp->l_counted) {
		fp_event(fp->sm, fp->scope_idx, SM_STAT_FASTPATH_BYTES, n - fp->l_counted);
		fp->l_counted = n;
	}
}

static void fp_forget(const struct sockmesh_fastpath *fp)
{
	for (int i = 0; i < 2; i++) {
		bpf_map_delete_elem(fp->sm->map_fd[MAP_fwd_map], &fp->cookie[i]);
		bpf_map_delete_elem(fp->sm->map_fd[MAP_relay_map], &fp->cookie[i]);
	}
	if (!fp->both)
		bpf_map_delete_elem(fp->sm->map_fd[MAP_fp_map], &fp->cookie[fp->r]);
}

/* Entries of sidecars that died without freeing them: R left fp_map when
 * it closed (the kernel removes closing sockets), so an entry whose R is no
 * longer there belongs to nobody; pod to pod (no R), an entry whose
 * socket's pair entry is gone or names another socket. At most once a
 * second per thread.
 */
static void fp_gc(struct sockmesh *sm)
{
	static __thread time_t last;
	__u64 key, next, up, *prev = NULL;
	struct sm_fwd f;
	int n = 0;

	if (time(NULL) == last)
		return;
	last = time(NULL);
	while (bpf_map_get_next_key(sm->map_fd[MAP_fwd_map], prev, &next) == 0 && n++ < 1 << 20) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(sm->map_fd[MAP_fwd_map], &key, &f))
			continue;
		if (f.flags & SM_FWD_TO_SPLICE) {
			struct sm_pair pr;

			if (bpf_map_lookup_elem(sm->map_fd[MAP_pair_map], &f.recv_pair, &pr) == 0 &&
			    pr.cookie[f.recv_side & 1] == key)
				continue;
		} else {
			/* L's entry has R as its partner */
			up = (f.flags & SM_FWD_SPLICE_FED) ? f.partner_cookie : key;
			if (bpf_map_lookup_elem(sm->map_fd[MAP_fp_map], &up, &next) == 0 ||
			    errno != ENOENT)
				continue;
		}
		bpf_map_delete_elem(sm->map_fd[MAP_fwd_map], &key);
		bpf_map_delete_elem(sm->map_fd[MAP_relay_map], &key);
		prev = NULL; /* the walk restarts: deleting the current key */
	}
}

/* Write all of buf to fd (non-blocking sockets too), within 1 s. */
static int write_all(int fd, const char *buf, size_t len)
{
	for (int waited = 0; len;) {
		ssize_t n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (waited++ >= 1000)
			return -EAGAIN;
		poll(&(struct pollfd){ .fd = fd, .events = POLLOUT }, 1, 1);
	}
	return 0;
}

static int app_unread(struct sockmesh_fastpath *fp, __u64 *unread)
{
	struct sm_pair pair;

	if (bpf_map_lookup_elem(fp->sm->map_fd[MAP_pair_map], &fp->pair_key, &pair))
		return -ENOTCONN;
	*unread = pair.in[fp->app_side] - pair.read[fp->app_side];
	return 0;
}

static const char *const sk_name[2] = { "downstream", "upstream" };

/* Relay what waits in R's receive queue to L, as the sidecar would have. */
static int drain_r(struct sockmesh_fastpath *fp)
{
	struct fp_dir *x = &fp->dir[fp->r];
	__u64 unread;
	int err;

	for (;;) {
		ssize_t n = recv(fp->fd[fp->r], x->buf, sizeof(x->buf), MSG_DONTWAIT);

		if (n == 0) {
			sm_set_err(0, "fast path: the %s peer already closed its side",
				   sk_name[fp->r]);
			return -ENOTCONN;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			err = -errno;
			sm_set_err(-err, "fast path: reading the %s socket", sk_name[fp->r]);
			return err;
		}
		/* Never let L leave the splice for its budget (its bytes would
		 * then take TCP and could be read after later fast-path ones):
		 * write while the app is well below it.
		 */
		for (int waited = 0;; waited++) {
			err = app_unread(fp, &unread);
			if (err)
				return err;
			if (unread + (__u64)n <= fp->relay_ahead)
				break;
			if (waited >= 1000) {
				sm_set_err(0, "fast path: the app is not reading; try again later");
				return -EAGAIN;
			}
			usleep(1000);
		}
		err = write_all(fp->fd[fp->l], x->buf, (size_t)n);
		if (err) {
			sm_set_err(-err, "fast path: writing to the %s socket", sk_name[fp->l]);
			return err;
		}
		x->drained += (__u64)n;
	}
}

/* The fast path needs the read accounting (how far the app is behind):
 * hold its link, so it stays attached for this process's connections even
 * if the instance is removed meanwhile. Its pin is root's: a sidecar calls
 * this before it drops privileges.
 */
int sockmesh__fastpath_init(struct sockmesh *sm)
{
	char p[PATH_MAX];
	int err;

	if (!sm || sm->destroyed)
		return -EINVAL;
	if (sm->acct_link_fd >= 0)
		return 0;
	sm_pin_path(sm, p, sizeof(p), "%s", SM_READ_ACCT_LINK);
	sm->acct_link_fd = bpf_obj_get(p);
	if (sm->acct_link_fd < 0) {
		err = errno == ENOENT ? -EOPNOTSUPP : -errno;
		sm_set_err(-err, "fast path: cannot open the read accounting's link '%s'%s", p,
			   err == -EACCES ?
				   " (call sockmesh__fastpath_init() before dropping privileges)" :
				   "");
		return err;
	}
	return 0;
}

/* Is this socket (SK_DOWN or SK_UP) of the sidecar the one spliced to its
 * app's: the proxy's accepted end of a captured connection (downstream), or
 * the proxy's leg to an app in its pod (upstream, "local leg")?
 */
static bool app_spliced(int which, const struct sm_sk_state *st)
{
	__u32 f = st->flags & (SM_SK_SPLICE | SM_SK_NO_SPLICE | SM_SK_PROXY | SM_SK_LOCAL_LEG);

	if (which == SK_DOWN)
		return f == (SM_SK_SPLICE | SM_SK_PROXY) && st->side == 1;
	return f == (SM_SK_SPLICE | SM_SK_LOCAL_LEG) && st->side == 0;
}

/* Which socket is L (see the top of this file), or both spliced (pod to
 * pod: fp->both, st[] filled); -EOPNOTSUPP with the reason for a shape not
 * served.
 */
static int pick_l(struct sockmesh_fastpath *fp, struct sm_sk_state st[2])
{
	bool known[2], spliced[2];

	for (int i = 0; i < 2; i++) {
		known[i] = bpf_map_lookup_elem(fp->sm->map_fd[MAP_sk_state_map], &fp->fd[i],
					       &st[i]) == 0;
		spliced[i] = known[i] && (st[i].flags & SM_SK_SPLICE);
	}
	if (spliced[SK_DOWN] && spliced[SK_UP]) {
		/* the downstream accepted (side 1), the upstream connected */
		for (int i = 0; i < 2; i++) {
			if (st[i].side != (i == SK_DOWN ? 1u : 0u) ||
			    (st[i].flags & SM_SK_NO_SPLICE)) {
				sm_set_err(0,
					   "fast path: the %s socket (fd %d) is spliced but "
					   "%s",
					   sk_name[i], fp->fd[i],
					   (st[i].flags & SM_SK_NO_SPLICE) ?
						   "has left the splice for good" :
						   "is not the sidecar's end of it");
				return -EOPNOTSUPP;
			}
			if (st[i].flags & SM_SK_OVER_BUDGET) {
				sm_set_err(0,
					   "fast path: the %s socket (fd %d) sends over TCP until "
					   "its reader caught up; try again later",
					   sk_name[i], fp->fd[i]);
				return -EAGAIN;
			}
		}
		fp->both = true;
		return 0;
	}
	for (int i = 0; i < 2; i++) {
		if (known[i] && app_spliced(i, &st[i])) {
			fp->l = i;
			fp->r = !i;
			return 0;
		}
	}
	sm_set_err(0,
		   "fast path: neither socket is spliced to the app's (the downstream fd %d must "
		   "be the proxy's end of a spliced captured connection, or the upstream fd %d "
		   "the proxy's spliced connection to an app in its pod)",
		   fp->fd[SK_DOWN], fp->fd[SK_UP]);
	return -EOPNOTSUPP;
}

/* Pod to pod: each direction goes past the socket it would be read from
 * into the far end of the other socket's splice, as if the sidecar had
 * written it there. What the sidecar read so far counts as relayed.
 */
static int switch_both(struct sockmesh_fastpath *fp, const struct sm_sk_state st[2])
{
	struct sm_fwd fwd[2] = {};
	struct sm_pair pair[2];
	int err;

	for (int i = 0; i < 2; i++) {
		fp->side[i] = st[i].side & 1;
		fp->pk[i] = fp->side[i] ? st[i].peer : st[i].self;
		if (bpf_map_lookup_elem(fp->sm->map_fd[MAP_pair_map], &fp->pk[i], &pair[i]) ||
		    pair[i].cookie[fp->side[i]] != fp->cookie[i]) {
			sm_set_err(0, "fast path: the connection of fd %d is closing", fp->fd[i]);
			return -ENOTCONN;
		}
	}
	for (int i = 0; i < 2; i++) {
		int b = !i;

		fwd[i].flags = SM_FWD_SPLICE_FED | SM_FWD_TO_SPLICE;
		fwd[i].recv_pair = fp->pk[i];
		fwd[i].recv_side = fp->side[i];
		fwd[i].target = st[b].peer;
		fwd[i].target_pair = fp->pk[b];
		fwd[i].target_side = fp->side[b] ^ 1;
		fwd[i].partner_cookie = fp->cookie[b];
		fwd[i].scope_idx = fp->scope_idx;
		fp->dir[i].relayed = pair[i].read[fp->side[i]];
		fp->dir[i].base = fp->dir[i].relayed;
	}
	/* The entries first: without its relay count an entry stays HELD */
	for (int i = 0; i < 2; i++) {
		if (bpf_map_update_elem(fp->sm->map_fd[MAP_fwd_map], &fp->cookie[i], &fwd[i],
					BPF_NOEXIST)) {
			err = errno == EEXIST ? -EALREADY : -errno;
			sm_set_err(-err, "fast path: cannot add the connection (%s)",
				   err == -EALREADY ? "already handed over" : "table full?");
			if (i)
				bpf_map_delete_elem(fp->sm->map_fd[MAP_fwd_map], &fp->cookie[0]);
			return err;
		}
	}
	for (int i = 0; i < 2; i++) {
		if (bpf_map_update_elem(fp->sm->map_fd[MAP_relay_map], &fp->cookie[i],
					&fp->dir[i].relayed, BPF_ANY)) {
			err = -errno;
			sm_set_err(-err, "fast path: cannot write the relay counters");
			fp_forget(fp);
			return err;
		}
	}
	return 0;
}

int sockmesh__fastpath(struct sockmesh *sm, int down_fd, int up_fd,
		       const struct sockmesh_fastpath_opts *opts, struct sockmesh_fastpath **out)
{
	struct sm_sk_state st[2], st_l;
	struct sockmesh_fastpath *fp;
	struct sm_fwd fwd_l = {}, fwd_r = {};
	struct sm_pair pair;
	__u64 zero = 0;
	__u32 l_side;
	int err, lowat = 1, l, r;
	socklen_t ll = sizeof(lowat);

	if (!sm || sm->destroyed || down_fd < 0 || up_fd < 0 || down_fd == up_fd || !out) {
		sm_set_err(0, "fast path: invalid arguments");
		return -EINVAL;
	}
	*out = NULL;
	if (opts && !sm_opts_valid(opts,
				   offsetofend(struct sockmesh_fastpath_opts,
					       sockmesh_fastpath_opts__last_field),
				   opts->sz)) {
		sm_set_err(0, "fast path: unknown options set");
		return -EINVAL;
	}
	err = tcp_established(down_fd, "downstream") ?: tcp_established(up_fd, "upstream");
	if (err)
		return err;
	fp = calloc(1, sizeof(*fp));
	if (!fp)
		return -ENOMEM;
	fp->sm = sm;
	fp->fd[SK_DOWN] = down_fd;
	fp->fd[SK_UP] = up_fd;
	err = sock_cookie(down_fd, &fp->cookie[SK_DOWN]) ?: sock_cookie(up_fd, &fp->cookie[SK_UP]);
	if (err) {
		sm_set_err(-err, "fast path: cannot read the sockets' cookies");
		goto fail;
	}
	/* One socket must be spliced to the app's: the app's socket then
	 * sends past it, and what comes for the app goes through its splice.
	 */
	err = pick_l(fp, st);
	if (err)
		goto fail;
	/* The pump writes into a spliced socket at most half the splice
	 * budget ahead of its reader, so it never leaves the splice.
	 */
	{
		struct sm_config cfg = { .splice_budget = 2 * SM_MIN_SPLICE_BUDGET };
		__u32 zero = 0;

		bpf_map_lookup_elem(sm->map_fd[MAP_config_map], &zero, &cfg);
		fp->relay_ahead = cfg.splice_budget / 2;
	}
	if (fp->both) {
		fp->scope_idx = st[SK_DOWN].scope_idx;
		err = sockmesh__fastpath_init(sm);
		if (err)
			goto fail;
		fp_gc(sm);
		err = switch_both(fp, st);
		if (err)
			goto fail;
		goto switched;
	}
	l = fp->l;
	r = fp->r;
	st_l = st[l];
	l_side = st_l.side & 1;
	fp->app_side = l_side ^ 1;
	fp->pair_key = l_side ? st_l.peer : st_l.self;
	sm_tuple_reverse(&fp->l_key, &st_l.peer); /* a local pair: the same netns */
	fp->scope_idx = st_l.scope_idx;
	if (bpf_map_lookup_elem(sm->map_fd[MAP_pair_map], &fp->pair_key, &pair) ||
	    pair.cookie[l_side] != fp->cookie[l]) {
		sm_set_err(0, "fast path: the connection of fd %d is closing", fp->fd[l]);
		err = -ENOTCONN;
		goto fail;
	}
	err = sockmesh__fastpath_init(sm);
	if (err)
		goto fail;
	fp_gc(sm);
	/* Empty R's receive queue first: the stream verdict gets whole skbs,
	 * so an skb the sidecar had read part of would be forwarded again from
	 * its start (tcp_read_skb ignores the offset). Relayed as the sidecar
	 * would have; nothing is counted for it.
	 */
	err = drain_r(fp);
	if (err)
		goto fail;
	/* While a direction is HELD its bytes wait in R's receive queue and
	 * TCP's window pauses the peer: only as long as that queue is bounded.
	 * Autotuning would let it grow to tcp_rmem's maximum (32 MiB on some
	 * hosts); fixed at the splice budget (capped by net.core.rmem_max) it
	 * still advertises a window of megabytes while FAST, when the verdict
	 * empties it at once.
	 */
	{
		int rcv = (int)(fp->relay_ahead < INT_MAX ? fp->relay_ahead : INT_MAX);

		if (setsockopt(fp->fd[r], SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv))) {
			err = -errno;
			sm_set_err(-err, "fast path: cannot bound the %s socket's receive buffer",
				   sk_name[r]);
			goto fail;
		}
	}

	/* app -> remote peer: the app's sk_msg sends past L to R's egress.
	 * What the sidecar read from L so far counts as relayed (it wrote it
	 * all, as the caller promises).
	 */
	fwd_l.target_cookie = fp->cookie[r];
	fwd_l.partner_cookie = fp->cookie[r];
	fwd_l.flags = SM_FWD_SPLICE_FED;
	fwd_l.recv_pair = fp->pair_key;
	fwd_l.recv_side = l_side;
	fwd_l.scope_idx = fp->scope_idx;
	fp->dir[l].relayed = pair.read[l_side];
	fp->dir[l].base = pair.read[l_side];
	/* remote peer -> app: the stream verdict on R sends out of L, whose
	 * splice puts it into the app's socket (so that socket needs no room
	 * of its own: an skb redirected into it would wait for its small
	 * receive buffer).
	 */
	if (bpf_map_lookup_elem(sm->map_fd[MAP_pair_map], &fp->pair_key, &pair)) {
		sm_set_err(0, "fast path: the connection of fd %d is closing", fp->fd[l]);
		err = -ENOTCONN;
		goto fail;
	}
	fwd_r.target = fp->l_key;
	fwd_r.target_pair = fp->pair_key;
	fwd_r.target_side = fp->app_side;
	fwd_r.base_in = pair.in[fp->app_side];
	fwd_r.partner_cookie = fp->cookie[l];
	fwd_r.flags = SM_FWD_VIA_SPLICE;
	fwd_r.scope_idx = fp->scope_idx;
	fp->app_base = pair.in[fp->app_side];

	err = tcp_written(fp->fd[r], &fp->r_written0);
	if (err) {
		sm_set_err(-err, "fast path: cannot read the %s socket's counters", sk_name[r]);
		goto fail;
	}
	if (bpf_map_update_elem(sm->map_fd[MAP_fwd_map], &fp->cookie[r], &fwd_r, BPF_NOEXIST)) {
		err = errno == EEXIST ? -EALREADY : -errno;
		goto add_failed;
	}
	if (bpf_map_update_elem(sm->map_fd[MAP_fwd_map], &fp->cookie[l], &fwd_l, BPF_NOEXIST)) {
		err = errno == EEXIST ? -EALREADY : -errno;
		bpf_map_delete_elem(sm->map_fd[MAP_fwd_map], &fp->cookie[r]);
		goto add_failed;
	}
	/* after the entries: without its relay count an entry stays HELD */
	if (bpf_map_update_elem(sm->map_fd[MAP_relay_map], &fp->cookie[l], &fp->dir[l].relayed,
				BPF_ANY) ||
	    bpf_map_update_elem(sm->map_fd[MAP_relay_map], &fp->cookie[r], &zero, BPF_ANY)) {
		err = -errno;
		sm_set_err(-err, "fast path: cannot write the relay counters");
		goto undo;
	}
	if (bpf_map_update_elem(sm->map_fd[MAP_fp_map], &fp->cookie[r],
				&(__u64){ (__u64)fp->fd[r] }, BPF_NOEXIST)) {
		err = -errno;
		sm_set_err(-err, "fast path: the kernel refused the %s socket (fd %d)", sk_name[r],
			   fp->fd[r]);
		if (err == -EINVAL || err == -EBUSY || err == -EOPNOTSUPP)
			err = -EOPNOTSUPP;
		goto undo;
	}
	/* Bytes already in R's receive queue went in before the verdict was
	 * there: have it run over them now (tcp_set_rcvlowat() calls
	 * data_ready), so the pump never reads bytes the kernel did not count.
	 */
	if (getsockopt(fp->fd[r], SOL_SOCKET, SO_RCVLOWAT, &lowat, &ll))
		lowat = 1;
	if (setsockopt(fp->fd[r], SOL_SOCKET, SO_RCVLOWAT, &(int){ 1 }, sizeof(int)) ||
	    (lowat != 1 && setsockopt(fp->fd[r], SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)))) {
		err = -errno;
		sm_set_err(-err, "fast path: cannot flush the %s socket's queue", sk_name[r]);
		goto undo;
	}
switched:
	/* The pump reads with read(2), so what it relays shows in the
	 * process's I/O accounting (/proc/PID/io rchar) as any relay would.
	 */
	for (int i = 0; i < 2; i++) {
		int fl = fcntl(fp->fd[i], F_GETFL);

		if (fl >= 0 && !(fl & O_NONBLOCK))
			fcntl(fp->fd[i], F_SETFL, fl | O_NONBLOCK);
	}
	fp_event(sm, fp->scope_idx, SM_STAT_FASTPATH_CONNS, 1);
	*out = fp;
	return 0;
add_failed:
	sm_set_err(-err, "fast path: cannot add the connection (%s)",
		   err == -EALREADY ? "already handed over" : "table full?");
	goto fail; /* nothing of ours was added */
undo:
	fp_forget(fp);
fail:
	free(fp);
	return err;
}

/* HELD -> FAST for the direction read from socket src, if nothing was put
 * into it since the pump's last relay (sm_fp_flip decides under the lock
 * the producers take).
 */
static void fp_flip(struct sockmesh_fastpath *fp, int src)
{
	struct sm_fp_flip a = { .cookie = fp->cookie[src] };
	/* EtherType 0x88b5 (local experimental): not IPv4, whose header the
	 * kernel checks in a test run (6.18 refuses a frame too short for it
	 * with EINVAL; 6.1 did not look)
	 */
	unsigned char frame[SM_FP_FLIP_OFF + sizeof(a)] = { [12] = 0x88, [13] = 0xb5 };
	LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = frame, .data_size_in = sizeof(frame));

	memcpy(frame + SM_FP_FLIP_OFF, &a, sizeof(a));
	/* on failure the producer's next bytes flip it (fwd_decide) */
	bpf_prog_test_run_opts(fp->sm->prog_fd[PROG_sm_fp_flip], &run);
}

/* May the pump write n bytes into L now (n == 0: shut it down)? Not while
 * a byte the kernel forwarded may still be on its way to the app: the
 * verdict's redirects are sent through L by a kernel worker, whose own send
 * delivers into the app's socket only after its splice counted it, so a
 * write (or the FIN) now could overtake it. After fast-path bytes since the
 * last look, the worker must have sent them all (the app's pair in[]
 * counts everything given to L since the switch) and the app must have
 * read everything; the pump's own writes are delivered before send()
 * returns. And only while the app is well within the splice budget, so L
 * never leaves the splice.
 */
static int l_may_write(struct sockmesh_fastpath *fp, size_t n)
{
	const struct fp_dir *x = &fp->dir[fp->r];
	__u32 a = fp->app_side;
	struct sm_pair pair;
	struct sm_fwd f;

	/* The app's socket closed (its pair entry goes with it): nothing can
	 * overtake anything on the way to it any more; what the pump writes
	 * now fails as for any proxy writing to a closed peer.
	 */
	if (bpf_map_lookup_elem(fp->sm->map_fd[MAP_pair_map], &fp->pair_key, &pair) ||
	    bpf_map_lookup_elem(fp->sm->map_fd[MAP_fwd_map], &fp->cookie[fp->r], &f))
		return 1;
	if (f.fast_bytes != fp->fast_seen) {
		if (pair.in[a] < fp->app_base + f.fast_bytes + x->relayed + x->off ||
		    pair.in[a] != pair.read[a])
			return 0;
		fp->fast_seen = f.fast_bytes;
	}
	return n == 0 || pair.in[a] - pair.read[a] + n <= fp->relay_ahead;
}

/* Pod to pod: may the pump write n bytes into spliced socket dst now (n ==
 * 0: shut it down)? Only while its reader is well within the splice
 * budget. The kernel's fast bytes were put into their target synchronously
 * by the sender, so nothing of theirs can be overtaken.
 */
static int both_may_write(struct sockmesh_fastpath *fp, int dst, size_t n)
{
	__u32 a = fp->side[dst] ^ 1;
	struct sm_pair pair;

	if (bpf_map_lookup_elem(fp->sm->map_fd[MAP_pair_map], &fp->pk[dst], &pair))
		return 1;
	return n == 0 || pair.in[a] - pair.read[a] + n <= fp->relay_ahead;
}

static int may_write(struct sockmesh_fastpath *fp, int dst, size_t n)
{
	if (fp->both)
		return both_may_write(fp, dst, n);
	return dst == fp->l ? l_may_write(fp, n) : 1;
}

static int publish_relayed(struct sockmesh_fastpath *fp, int src)
{
	if (bpf_map_update_elem(fp->sm->map_fd[MAP_relay_map], &fp->cookie[src],
				&fp->dir[src].relayed, BPF_EXIST))
		return -errno;
	return 0;
}

/* One direction, by its source socket: relay what that socket has,
 * forward its EOF. Sets the events it waits for; *later when it waits for
 * the app to read.
 */
static int pump_dir(struct sockmesh_fastpath *fp, int src, short ev[2], bool *later)
{
	struct fp_dir *x = &fp->dir[src];
	int dst = !src, r;
	ssize_t n;

	for (;;) {
		if (x->len > x->off) {
			r = may_write(fp, dst, x->len - x->off);
			if (r < 0)
				return r;
			if (!r) {
				*later = true;
				return 0;
			}
			/* send: never SIGPIPE in the caller */
			n = send(fp->fd[dst], x->buf + x->off, x->len - x->off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0) {
				if (errno == EAGAIN || errno == EWOULDBLOCK) {
					ev[dst] |= POLLOUT;
					return 0;
				}
				return -errno;
			}
			x->off += (size_t)n;
			if (x->off < x->len)
				continue;
			x->relayed += x->len;
			x->off = x->len = 0;
			r = publish_relayed(fp, src);
			if (r)
				return r;
			continue;
		}
		if (x->eof) {
			if (x->shut)
				return 0;
			r = may_write(fp, dst, 0);
			if (r < 0)
				return r;
			if (!r) {
				*later = true;
				return 0;
			}
			if (shutdown(fp->fd[dst], SHUT_WR) && errno != ENOTCONN)
				return -errno;
			x->shut = true;
			return 0;
		}
		n = read(fp->fd[src], x->buf, sizeof(x->buf));
		if (n > 0) {
			x->len = (size_t)n;
			x->off = 0;
			continue;
		}
		if (n == 0) {
			x->eof = true;
			continue;
		}
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			/* all relayed: the kernel may take this direction over */
			fp_flip(fp, src);
			ev[src] |= POLLIN;
			return 0;
		}
		return -errno;
	}
}

int sockmesh_fastpath__pump(struct sockmesh_fastpath *fp, struct sockmesh_fastpath_wait *w)
{
	short ev[2] = { 0, 0 };
	bool later = false;
	int err;

	if (!fp)
		return -EINVAL;
	for (int src = 0; src < 2; src++) {
		err = pump_dir(fp, src, ev, &later);
		if (err)
			return err;
	}
	if (!fp->both)
		count_l(fp);
	if (w) {
		w->down_events = ev[SK_DOWN];
		w->up_events = ev[SK_UP];
		w->timeout_ms = later ? 1 : -1;
	}
	return fp->dir[0].shut && fp->dir[1].shut;
}

int sockmesh_fastpath__info(const struct sockmesh_fastpath *fp, struct sockmesh_fastpath_info *info)
{
	struct sm_fwd f;

	if (!fp || !info ||
	    !sm_opts_valid(
		    info,
		    offsetofend(struct sockmesh_fastpath_info, sockmesh_fastpath_info__last_field),
		    info->sz) ||
	    info->sz <
		    offsetofend(struct sockmesh_fastpath_info, sockmesh_fastpath_info__last_field))
		return -EINVAL;
	for (int d = 0; d < 2; d++) {
		__u64 key = fp->cookie[d]; /* a direction's index is its source's */

		info->relayed_bytes[d] = fp->dir[d].relayed - fp->dir[d].base + fp->dir[d].drained;
		info->fast_bytes[d] = 0;
		info->fast[d] = false;
		if (bpf_map_lookup_elem(fp->sm->map_fd[MAP_fwd_map], &key, &f) == 0) {
			info->fast_bytes[d] = f.fast_bytes;
			info->fast[d] = f.flags & SM_FWD_FAST;
		}
	}
	if (!fp->both)
		info->fast_bytes[fp->l] = l_fast_bytes(fp);
	return 0;
}

void sockmesh_fastpath__free(struct sockmesh_fastpath *fp)
{
	if (!fp)
		return;
	if (!fp->both)
		count_l(fp);
	fp_forget(fp);
	free(fp);
}
