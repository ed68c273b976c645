// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libsockmesh: the kernel fast path, for sidecars.
 *
 * The switch (sockmesh__fastpath) writes one fwd_map entry per direction,
 * keyed by the socket the sidecar would have read it from, and puts the
 * upstream socket into fp_map so the stream verdict runs on it. Both
 * directions start HELD; the kernel moves each to FAST at the first byte
 * boundary where everything held was relayed (see struct sm_fwd in the ABI
 * header). The pump is the slow path: it relays what the kernel left in the
 * sockets' own queues and publishes how much (relay_map), and forwards each
 * half-close once every byte before it was delivered.
 */
#include <errno.h>
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
	int fd[2];
	__u64 cookie[2];
	struct sm_tuple app; /* the app's socket: splice key and pair key */
	__u32 scope_idx;
	struct fp_dir dir[2]; /* SOCKMESH_FP_UP: DOWN -> UP socket; _DOWN: UP -> DOWN */
	__u64 down_base; /* the app's pair in[0] once the switch was done */
	__u64 fast_seen; /* fast_bytes of the upstream's entry, last looked at */
	__u64 relay_ahead; /* how far the pump may run ahead of the app's reads */
	__u64 up_written0; /* bytes the upstream socket had taken at the switch */
	__u64 up_counted; /* fast bytes app -> upstream already in the counters */
};

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

/* Bytes app -> upstream the kernel forwarded: what the upstream socket took
 * since the switch, less what the pump wrote into it.
 */
static __u64 up_fast_bytes(const struct sockmesh_fastpath *fp)
{
	const struct fp_dir *x = &fp->dir[SOCKMESH_FP_UP];
	__u64 w;

	if (tcp_written(fp->fd[SK_UP], &w) || w < fp->up_written0)
		return fp->up_counted;
	w -= fp->up_written0;
	if (x->shut && w)
		w--; /* the FIN takes a sequence number */
	return w > x->relayed - x->base ? w - (x->relayed - x->base) : 0;
}

/* Bring fastpath_bytes up to date for app -> upstream. */
static void count_up(struct sockmesh_fastpath *fp)
{
	__u64 n = up_fast_bytes(fp);

	if (n > fp->up_counted) {
		fp_event(fp->sm, fp->scope_idx, SM_STAT_FASTPATH_BYTES, n - fp->up_counted);
		fp->up_counted = n;
	}
}

static void fp_forget(struct sockmesh *sm, const __u64 cookie[2])
{
	for (int i = 0; i < 2; i++) {
		bpf_map_delete_elem(sm->map_fd[MAP_fwd_map], &cookie[i]);
		bpf_map_delete_elem(sm->map_fd[MAP_relay_map], &cookie[i]);
	}
	bpf_map_delete_elem(sm->map_fd[MAP_fp_map], &cookie[SK_UP]);
}

/* Entries of sidecars that died without freeing them: the upstream socket
 * left fp_map when it closed (the kernel removes closing sockets), so an
 * entry whose upstream is no longer there belongs to nobody. At most once
 * a second per thread.
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
		/* the entry of the upstream socket has the downstream as partner */
		up = (f.flags & SM_FWD_SPLICE_FED) ? f.partner_cookie : key;
		if (bpf_map_lookup_elem(sm->map_fd[MAP_fp_map], &up, &next) == 0 || errno != ENOENT)
			continue;
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

	if (bpf_map_lookup_elem(fp->sm->map_fd[MAP_pair_map], &fp->app, &pair))
		return -ENOTCONN;
	*unread = pair.in[0] - pair.read[0];
	return 0;
}

static int drain_upstream(struct sockmesh_fastpath *fp)
{
	struct fp_dir *x = &fp->dir[SOCKMESH_FP_DOWN];
	__u64 unread;
	int err;

	for (;;) {
		ssize_t n = recv(fp->fd[SK_UP], x->buf, sizeof(x->buf), MSG_DONTWAIT);

		if (n == 0) {
			sm_set_err(0, "fast path: the upstream peer already closed its side");
			return -ENOTCONN;
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			err = -errno;
			sm_set_err(-err, "fast path: reading the upstream socket");
			return err;
		}
		/* Never let the downstream socket leave the splice for its
		 * budget (its bytes would then take TCP and could be read after
		 * later fast-path ones): write while the app is well below it.
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
		err = write_all(fp->fd[SK_DOWN], x->buf, (size_t)n);
		if (err) {
			sm_set_err(-err, "fast path: writing to the downstream socket");
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

int sockmesh__fastpath(struct sockmesh *sm, int down_fd, int up_fd,
		       const struct sockmesh_fastpath_opts *opts, struct sockmesh_fastpath **out)
{
	struct sm_sk_state st_down, st_up;
	struct sockmesh_fastpath *fp;
	struct sm_fwd fwd_down = {}, fwd_up = {};
	struct sm_pair pair;
	__u64 zero = 0;
	int err, lowat = 1;
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
	/* The downstream must be the proxy's end of a spliced captured
	 * connection: the app's socket then sends past it.
	 */
	if (bpf_map_lookup_elem(sm->map_fd[MAP_sk_state_map], &down_fd, &st_down) ||
	    (st_down.flags & (SM_SK_SPLICE | SM_SK_NO_SPLICE | SM_SK_PROXY)) !=
		    (SM_SK_SPLICE | SM_SK_PROXY) ||
	    st_down.side != 1) {
		sm_set_err(0,
			   "fast path: the downstream socket (fd %d) is not the proxy's end of a "
			   "spliced captured connection",
			   down_fd);
		err = -EOPNOTSUPP;
		goto fail;
	}
	if (bpf_map_lookup_elem(sm->map_fd[MAP_sk_state_map], &up_fd, &st_up) == 0 &&
	    (st_up.flags & SM_SK_SPLICE)) {
		sm_set_err(0,
			   "fast path: the upstream socket (fd %d) is spliced to a local pod: "
			   "not served yet",
			   up_fd);
		err = -EOPNOTSUPP;
		goto fail;
	}
	/* The pump writes into the downstream socket at most half the splice
	 * budget ahead of the app, so that socket never leaves the splice.
	 */
	{
		struct sm_config cfg = { .splice_budget = 2 * SM_MIN_SPLICE_BUDGET };
		__u32 zero = 0;

		bpf_map_lookup_elem(sm->map_fd[MAP_config_map], &zero, &cfg);
		fp->relay_ahead = cfg.splice_budget / 2;
	}
	fp->app = st_down.peer;
	fp->scope_idx = st_down.scope_idx;
	if (bpf_map_lookup_elem(sm->map_fd[MAP_pair_map], &fp->app, &pair) ||
	    pair.cookie[1] != fp->cookie[SK_DOWN]) {
		sm_set_err(0, "fast path: the connection of fd %d is closing", down_fd);
		err = -ENOTCONN;
		goto fail;
	}
	err = sockmesh__fastpath_init(sm);
	if (err)
		goto fail;
	fp_gc(sm);
	/* Empty the upstream's receive queue first: the stream verdict gets
	 * whole skbs, so an skb the sidecar had read part of would be
	 * forwarded again from its start (tcp_read_skb ignores the offset).
	 * Relayed as the sidecar would have; nothing is counted for it.
	 */
	err = drain_upstream(fp);
	if (err)
		goto fail;

	/* app -> upstream: the app's sk_msg sends past the downstream socket
	 * to the upstream's egress. What the sidecar read so far counts as
	 * relayed (it wrote it all, as the caller promises).
	 */
	fwd_down.target_cookie = fp->cookie[SK_UP];
	fwd_down.partner_cookie = fp->cookie[SK_UP];
	fwd_down.flags = SM_FWD_SPLICE_FED;
	fwd_down.recv_pair = fp->app;
	fwd_down.recv_side = 1;
	fwd_down.scope_idx = fp->scope_idx;
	fp->dir[SOCKMESH_FP_UP].relayed = pair.read[1];
	fp->dir[SOCKMESH_FP_UP].base = pair.read[1];
	/* upstream -> app: the stream verdict on the upstream socket sends out
	 * of the downstream socket, whose splice puts it into the app's (so
	 * the app's socket needs no room of its own: an skb redirected into
	 * it would wait for its small receive buffer).
	 */
	if (bpf_map_lookup_elem(sm->map_fd[MAP_pair_map], &fp->app, &pair)) {
		sm_set_err(0, "fast path: the connection of fd %d is closing", down_fd);
		err = -ENOTCONN;
		goto fail;
	}
	sm_tuple_reverse(&fwd_up.target, &fp->app);
	fwd_up.target_pair = fp->app;
	fwd_up.target_side = 0;
	fwd_up.base_in = pair.in[0];
	fwd_up.partner_cookie = fp->cookie[SK_DOWN];
	fwd_up.flags = SM_FWD_VIA_SPLICE;
	fwd_up.scope_idx = fp->scope_idx;
	fp->down_base = pair.in[0];

	err = tcp_written(up_fd, &fp->up_written0);
	if (err) {
		sm_set_err(-err, "fast path: cannot read the upstream socket's counters");
		goto fail;
	}
	if (bpf_map_update_elem(sm->map_fd[MAP_relay_map], &fp->cookie[SK_DOWN],
				&fp->dir[SOCKMESH_FP_UP].relayed, BPF_ANY) ||
	    bpf_map_update_elem(sm->map_fd[MAP_relay_map], &fp->cookie[SK_UP], &zero, BPF_ANY)) {
		err = -errno;
		sm_set_err(-err, "fast path: cannot write the relay counters");
		goto undo;
	}
	if (bpf_map_update_elem(sm->map_fd[MAP_fwd_map], &fp->cookie[SK_UP], &fwd_up,
				BPF_NOEXIST) ||
	    bpf_map_update_elem(sm->map_fd[MAP_fwd_map], &fp->cookie[SK_DOWN], &fwd_down,
				BPF_NOEXIST)) {
		err = errno == EEXIST ? -EALREADY : -errno;
		sm_set_err(-err, "fast path: cannot add the connection (%s)",
			   err == -EALREADY ? "already handed over" : "table full?");
		if (err == -EALREADY)
			goto fail; /* not ours to undo */
		goto undo;
	}
	if (bpf_map_update_elem(sm->map_fd[MAP_fp_map], &fp->cookie[SK_UP],
				&(__u64){ (__u64)up_fd }, BPF_NOEXIST)) {
		err = -errno;
		sm_set_err(-err, "fast path: the kernel refused the upstream socket (fd %d)",
			   up_fd);
		if (err == -EINVAL || err == -EBUSY || err == -EOPNOTSUPP)
			err = -EOPNOTSUPP;
		goto undo;
	}
	/* Bytes already in the upstream's receive queue went in before the
	 * verdict was there: have it run over them now (tcp_set_rcvlowat()
	 * calls data_ready), so the pump never reads bytes the kernel did not
	 * count.
	 */
	if (getsockopt(up_fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, &ll))
		lowat = 1;
	if (setsockopt(up_fd, SOL_SOCKET, SO_RCVLOWAT, &(int){ 1 }, sizeof(int)) ||
	    (lowat != 1 && setsockopt(up_fd, SOL_SOCKET, SO_RCVLOWAT, &lowat, sizeof(lowat)))) {
		err = -errno;
		sm_set_err(-err, "fast path: cannot flush the upstream socket's queue");
		goto undo;
	}
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
undo:
	fp_forget(sm, fp->cookie);
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
	unsigned char frame[SM_FP_FLIP_OFF + sizeof(a)] = { [12] = 0x08 }; /* IPv4 */
	LIBBPF_OPTS(bpf_test_run_opts, run, .data_in = frame, .data_size_in = sizeof(frame));

	memcpy(frame + SM_FP_FLIP_OFF, &a, sizeof(a));
	bpf_prog_test_run_opts(fp->sm->prog_fd[PROG_sm_fp_flip], &run);
}

/* May the pump write n bytes into the downstream socket now (n == 0: shut
 * it down)? Not while a byte the kernel forwarded may still be on its way
 * to the app: the verdict's redirects are sent through the downstream
 * socket by a kernel worker, whose own send delivers into the app's
 * socket only after its splice counted it, so a write (or the FIN) now
 * could overtake it. After fast-path bytes since the last look, the worker
 * must have sent them all (the app's pair in[0] counts everything given to
 * the downstream since the switch) and the app must have read everything;
 * the pump's own writes are delivered before send() returns. And only while
 * the app is well within the splice budget, so that socket never leaves
 * the splice.
 */
static int down_may_write(struct sockmesh_fastpath *fp, size_t n)
{
	const struct fp_dir *x = &fp->dir[SOCKMESH_FP_DOWN];
	struct sm_pair pair;
	struct sm_fwd f;

	/* The app's socket closed (its pair entry goes with it): nothing can
	 * overtake anything on the way to it any more; what the pump writes
	 * now fails as for any proxy writing to a closed peer.
	 */
	if (bpf_map_lookup_elem(fp->sm->map_fd[MAP_pair_map], &fp->app, &pair) ||
	    bpf_map_lookup_elem(fp->sm->map_fd[MAP_fwd_map], &fp->cookie[SK_UP], &f))
		return 1;
	if (f.fast_bytes != fp->fast_seen) {
		if (pair.in[0] < fp->down_base + f.fast_bytes + x->relayed + x->off ||
		    pair.in[0] != pair.read[0])
			return 0;
		fp->fast_seen = f.fast_bytes;
	}
	return n == 0 || pair.in[0] - pair.read[0] + n <= fp->relay_ahead;
}

static int publish_relayed(struct sockmesh_fastpath *fp, int d)
{
	int src = d == SOCKMESH_FP_UP ? SK_DOWN : SK_UP;

	if (bpf_map_update_elem(fp->sm->map_fd[MAP_relay_map], &fp->cookie[src],
				&fp->dir[d].relayed, BPF_EXIST))
		return -errno;
	return 0;
}

/* One direction: relay what its source socket has, forward its EOF. Sets
 * the events it waits for; *later when it waits for the app to read.
 */
static int pump_dir(struct sockmesh_fastpath *fp, int d, short ev[2], bool *later)
{
	struct fp_dir *x = &fp->dir[d];
	int src = d == SOCKMESH_FP_UP ? SK_DOWN : SK_UP, dst = !src, r;
	ssize_t n;

	for (;;) {
		if (x->len > x->off) {
			if (d == SOCKMESH_FP_DOWN) {
				r = down_may_write(fp, x->len - x->off);
				if (r < 0)
					return r;
				if (!r) {
					*later = true;
					return 0;
				}
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
			r = publish_relayed(fp, d);
			if (r)
				return r;
			continue;
		}
		if (x->eof) {
			if (x->shut)
				return 0;
			if (d == SOCKMESH_FP_DOWN) {
				r = down_may_write(fp, 0);
				if (r < 0)
					return r;
				if (!r) {
					*later = true;
					return 0;
				}
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
	for (int d = 0; d < 2; d++) {
		err = pump_dir(fp, d, ev, &later);
		if (err)
			return err;
	}
	count_up(fp);
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
		__u64 key = fp->cookie[d == SOCKMESH_FP_UP ? SK_DOWN : SK_UP];

		info->relayed_bytes[d] = fp->dir[d].relayed - fp->dir[d].base + fp->dir[d].drained;
		info->fast_bytes[d] = 0;
		info->fast[d] = false;
		if (bpf_map_lookup_elem(fp->sm->map_fd[MAP_fwd_map], &key, &f) == 0) {
			info->fast_bytes[d] = f.fast_bytes;
			info->fast[d] = f.flags & SM_FWD_FAST;
		}
	}
	info->fast_bytes[SOCKMESH_FP_UP] = up_fast_bytes(fp);
	return 0;
}

void sockmesh_fastpath__free(struct sockmesh_fastpath *fp)
{
	if (!fp)
		return;
	count_up(fp);
	fp_forget(fp->sm, fp->cookie);
	free(fp);
}
