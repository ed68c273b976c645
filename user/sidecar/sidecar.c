// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmesh-sidecar: reference L4 transparent proxy.
 *
 * Connections redirected to us (by the sockmesh BPF programs, or by iptables
 * REDIRECT in the classic istio setup) are accepted, their original
 * destination is recovered with libsockmesh's sockmesh_original_dst(), and
 * bytes are copied both ways between the client and a fresh upstream
 * connection to that destination. It is the smallest proxy that exercises
 * everything a real sidecar (Envoy with an original-dst cluster) relies on:
 * original destination lookup, the proxy's own traffic escaping capture by
 * uid or mark, half-close and backpressure.
 *
 * Single threaded, epoll edge triggered. Each connection owns two bounded
 * ring buffers, one per direction; a side is not read while its buffer
 * towards the other side is full, so a slow reader throttles a fast writer
 * through TCP flow control instead of through our memory.
 *
 * With --fast-path, once the upstream connect succeeded and nothing is
 * buffered, each connection is handed to the kernel (sockmesh__fastpath):
 * the bytes then go app <-> upstream without passing through this process;
 * it only runs the library's pump on the sockets' events.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sockmesh.h"
#include "addr.h"
#include "opts.h"

#define PROG "sockmesh-sidecar"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define DEFAULT_PORT 15001
#define DEFAULT_MAX_CONNS 4096
#define MAX_MAX_CONNS (1u << 20)
#define BUF_SIZE ((size_t)64 * 1024)
/* Rounds of read/write per wakeup before a busy connection yields to the
 * others; with 64 KiB buffers that is at most ~2 MiB per turn.
 */
#define PUMP_ROUNDS 16
#define ACCEPT_BATCH 64
#define MAX_EVENTS 256
/* "[" INET6_ADDRSTRLEN "%" scope "]:" port */
#define ADDR_STRLEN (INET6_ADDRSTRLEN + 20)

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

enum src_kind {
	SRC_LISTENER,
	SRC_SIGNAL,
	SRC_SIDE,
};

/* What epoll_event.data.ptr points at. */
struct evsrc {
	enum src_kind kind;
};

struct listener {
	struct evsrc src;
	int fd;
	struct sockaddr_storage addr; /* as bound: port 0 is resolved */
};

struct ring {
	size_t head; /* first unsent byte */
	size_t len;
	unsigned char *data; /* BUF_SIZE bytes in struct conn */
};

enum { CLIENT = 0, UPSTREAM = 1 };

struct conn;

struct side {
	struct evsrc src;
	struct conn *conn;
	int fd;
	/* Edge triggered: remember readiness until the kernel says EAGAIN. */
	bool readable;
	bool writable;
	bool rd_eof; /* the peer sent FIN */
	bool wr_shut; /* we sent FIN */
};

struct conn {
	struct side side[2];
	struct sockmesh_fastpath *fp; /* handed to the kernel */
	bool fp_tried;
	bool fp_later; /* the pump asked to be run again shortly */
	bool fp_tried_ok;
	uint64_t fp_bytes[2]; /* after the switch, per sockmesh_fastpath_dir */
	struct ring buf[2]; /* buf[i]: read from side i, owed to side !i */
	uint64_t sent[2]; /* bytes delivered to side i */
	bool connecting;
	bool dead;
	bool queued;
	struct conn *prev, *next; /* all live connections */
	struct conn *qnext; /* ready queue or dead list */
	struct conn *hnext; /* upstream_hash chain */
	bool hashed;
	struct sockaddr_storage up_local; /* our upstream socket's address */
	struct sockaddr_storage orig;
	/* last, so setup need not touch (or zero) 128 KiB per connection */
	unsigned char mem[2][BUF_SIZE];
};

static struct {
	struct sockaddr_storage *listen;
	size_t nlisten;
	bool default_listen;
	uid_t uid;
	gid_t gid;
	bool set_uid;
	bool set_gid;
	struct sockaddr_storage source4;
	struct sockaddr_storage source6;
	bool has_source4;
	bool has_source6;
	uint32_t mark;
	bool set_mark;
	const char *log_path;
	const char *pid_path;
	unsigned int max_conns;
	bool fast_path;
	const char *pin_dir;
} cfg = {
	.max_conns = DEFAULT_MAX_CONNS,
};

static int epfd = -1;
static int sigfd = -1;
static int log_fd = STDERR_FILENO;
/* Only set once we hold the pidfile's lock: then the file is ours to remove. */
static int pid_fd = -1;
/* Kept open so EMFILE can be answered by closing the client instead of
 * spinning on a level triggered listener that can never be drained.
 */
static int reserve_fd = -1;
static struct listener *listeners;
static size_t nlisteners;
static struct conn *conns; /* all live connections */
static unsigned int nconns;
static struct conn *ready_head, *ready_tail;
static struct conn *dead_list;
/*
 * Live connections by the local address of their upstream socket. When the
 * proxy's own traffic is not exempt from capture, that upstream connect comes
 * straight back to us with a perfectly plausible original destination; only
 * its source address, which is ours, gives it away.
 */
static struct conn **upstream_hash;
static size_t upstream_hash_mask;
static bool quit;
/* --fast-path: the sockmesh instance, and how many connections wait for a
 * timed pump run
 */
static struct sockmesh *smh;
static unsigned int nlater;

/* ---- logging ---------------------------------------------------------- */

/*
 * One write(2) per line: nothing to flush, lines from concurrent writers to
 * an O_APPEND file do not interleave, and a test grepping the file sees
 * every line as soon as the event happened.
 */
__attribute__((format(printf, 1, 2))) static void log_line(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	size_t off = 0;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(buf) - 2)
		n = sizeof(buf) - 2;
	buf[n++] = '\n';
	while (off < (size_t)n) {
		ssize_t w = write(log_fd, buf + off, n - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		off += w;
	}
}

__attribute__((format(printf, 1, 2), noreturn)) static void die(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	/* Setup failed after the pidfile went out; leave no stale pid behind. */
	if (pid_fd >= 0)
		unlink(cfg.pid_path);
	exit(1);
}

__attribute__((format(printf, 1, 2))) static void warn(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* ---- addresses -------------------------------------------------------- */

static const char *fmt_addr(const struct sockaddr_storage *ss, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const void *)ss;

		inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const void *)ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
		if (sin6->sin6_scope_id)
			snprintf(buf, len, "[%s%%%" PRIu32 "]:%u", ip, sin6->sin6_scope_id,
				 ntohs(sin6->sin6_port));
		else
			snprintf(buf, len, "[%s]:%u", ip, ntohs(sin6->sin6_port));
	} else {
		snprintf(buf, len, "<af%u>", ss->ss_family);
	}
	return buf;
}

static socklen_t addr_len(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static uint16_t addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ((const struct sockaddr_in6 *)ss)->sin6_port;
	return ((const struct sockaddr_in *)ss)->sin_port;
}

/* Address part only; port and scope are compared by the caller if needed. */
static bool addr_ip_eq(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return IN6_ARE_ADDR_EQUAL(&((const struct sockaddr_in6 *)a)->sin6_addr,
				  &((const struct sockaddr_in6 *)b)->sin6_addr);
}

static bool addr_is_any(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static bool addr_is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

static size_t addr_hash(const struct sockaddr_storage *ss)
{
	uint32_t h = addr_port(ss);

	if (ss->ss_family == AF_INET) {
		h ^= ((const struct sockaddr_in *)ss)->sin_addr.s_addr;
	} else {
		const uint32_t *w = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr32;

		h ^= w[0] ^ w[1] ^ w[2] ^ w[3];
	}
	/* ports are sequential-ish; multiply so they spread over buckets */
	return (size_t)(h * 0x9e3779b1u) & upstream_hash_mask;
}

static void upstream_hash_add(struct conn *c)
{
	size_t b = addr_hash(&c->up_local);

	c->hnext = upstream_hash[b];
	upstream_hash[b] = c;
	c->hashed = true;
}

static void upstream_hash_del(struct conn *c)
{
	struct conn **pp = &upstream_hash[addr_hash(&c->up_local)];

	if (!c->hashed)
		return;
	while (*pp != c)
		pp = &(*pp)->hnext;
	*pp = c->hnext;
	c->hashed = false;
}

static bool is_own_upstream(const struct sockaddr_storage *client)
{
	const struct conn *c = upstream_hash[addr_hash(client)];

	for (; c; c = c->hnext)
		if (addr_ip_eq(&c->up_local, client) &&
		    addr_port(&c->up_local) == addr_port(client))
			return true;
	return false;
}

/*
 * Where the client meant to connect before it was redirected to us.
 *
 * This is what Envoy's original-dst listener filter does: conntrack (for
 * iptables REDIRECT) and the sockmesh BPF getsockopt hook both answer
 * getsockopt(SO_ORIGINAL_DST) on the accepted socket, IPv4 at SOL_IP and
 * IPv6 at SOL_IPV6. We do not ask it ourselves: the library's
 * sockmesh_original_dst() does (SOL_IPV6 first on an IPv6 socket, then
 * SOL_IP), so no netfilter constant is needed here.
 */
static int original_dst(int fd, int family, struct sockaddr_storage *out, socklen_t *len)
{
	int err;

	memset(out, 0, sizeof(*out));
	*len = sizeof(*out);
	err = sockmesh_original_dst(fd, (struct sockaddr *)out, len);
	if (err) {
		errno = -err;
		return -1;
	}
	if (out->ss_family != family) {
		errno = EAFNOSUPPORT;
		return -1;
	}
	return 0;
}

/*
 * The client reached us without being redirected (the original destination
 * is our own listener), so relaying would connect to ourselves, again and
 * again, two sockets per hop until EMFILE. A wildcard listener is reachable
 * through any loopback address.
 */
static bool is_loop(const struct sockaddr_storage *orig)
{
	size_t i;

	/* orig == local is fine: a connection steered without NAT (sockmesh's
	 * sk_lookup inbound capture, TPROXY) keeps the original destination as
	 * its local address. Only our own listeners are a loop.
	 */
	for (i = 0; i < nlisteners; i++) {
		const struct sockaddr_storage *l = &listeners[i].addr;

		if (l->ss_family != orig->ss_family || addr_port(l) != addr_port(orig))
			continue;
		if (addr_ip_eq(l, orig))
			return true;
		if (addr_is_any(l) && addr_is_loopback(orig))
			return true;
	}
	return false;
}

/* ---- ring buffers ----------------------------------------------------- */

static int ring_space_iov(const struct ring *r, struct iovec iov[2])
{
	size_t space = BUF_SIZE - r->len;
	size_t tail = (r->head + r->len) % BUF_SIZE;
	size_t first = BUF_SIZE - tail;

	if (!space)
		return 0;
	if (first >= space) {
		iov[0] = (struct iovec){ r->data + tail, space };
		return 1;
	}
	iov[0] = (struct iovec){ r->data + tail, first };
	iov[1] = (struct iovec){ r->data, space - first };
	return 2;
}

static int ring_data_iov(const struct ring *r, struct iovec iov[2])
{
	size_t first = BUF_SIZE - r->head;

	if (!r->len)
		return 0;
	if (first >= r->len) {
		iov[0] = (struct iovec){ r->data + r->head, r->len };
		return 1;
	}
	iov[0] = (struct iovec){ r->data + r->head, first };
	iov[1] = (struct iovec){ r->data, r->len - first };
	return 2;
}

static void ring_consume(struct ring *r, size_t n)
{
	r->len -= n;
	/* Rewinding keeps the next read in one contiguous chunk. */
	r->head = r->len ? (r->head + n) % BUF_SIZE : 0;
}

/* ---- connections ------------------------------------------------------ */

/* Abortive close: the peer must not mistake a truncated stream for EOF. */
static void close_rst(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void ready_enqueue(struct conn *c)
{
	if (c->queued || c->dead)
		return;
	c->queued = true;
	c->qnext = NULL;
	if (ready_tail)
		ready_tail->qnext = c;
	else
		ready_head = c;
	ready_tail = c;
}

/*
 * Memory is only released after the current batch of epoll events and the
 * ready queue have been processed, since either may still point at it.
 */
static void conn_kill(struct conn *c, bool rst)
{
	char obuf[ADDR_STRLEN];
	int i;

	if (c->dead)
		return;
	if (c->fp) {
		struct sockmesh_fastpath_info info = { .sz = sizeof(info) };

		if (!sockmesh_fastpath__info(c->fp, &info))
			for (i = 0; i < 2; i++)
				c->fp_bytes[i] = info.fast_bytes[i] + info.relayed_bytes[i];
		sockmesh_fastpath__free(c->fp);
		c->fp = NULL;
		if (c->fp_later)
			nlater--;
		c->fp_later = false;
	}
	/* bytes each way: what we copied plus, with the fast path, what the
	 * kernel forwarded and the library's pump relayed after the switch
	 */
	log_line("close orig=%s up_bytes=%" PRIu64 " down_bytes=%" PRIu64 "%s",
		 fmt_addr(&c->orig, obuf, sizeof(obuf)),
		 c->sent[UPSTREAM] + c->fp_bytes[SOCKMESH_FP_UP],
		 c->sent[CLIENT] + c->fp_bytes[SOCKMESH_FP_DOWN],
		 c->fp_tried_ok ? " fast_path=1" : "");
	for (i = 0; i < 2; i++) {
		if (c->side[i].fd < 0)
			continue;
		if (rst)
			close_rst(c->side[i].fd);
		else
			close(c->side[i].fd);
		c->side[i].fd = -1;
	}
	c->dead = true;
	upstream_hash_del(c);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	nconns--;
	/* A queued conn is skipped by the queue and freed after it. */
	if (!c->queued) {
		c->qnext = dead_list;
		dead_list = c;
	}
}

static void conn_fail(struct conn *c, const char *what, int err)
{
	char obuf[ADDR_STRLEN];

	log_line("error %s orig=%s err=%s", what, fmt_addr(&c->orig, obuf, sizeof(obuf)),
		 strerror(err));
	conn_kill(c, true);
}

static void reap_dead(void)
{
	while (dead_list) {
		struct conn *c = dead_list;

		dead_list = c->qnext;
		free(c);
	}
}

static const char *const side_name[2] = { "client", "upstream" };

/*
 * Move bytes from side i to side !i: read into buf[i] while it has room,
 * write it out while the other side accepts, and pass EOF on as FIN once
 * everything before it was delivered. On failure returns -errno and sets
 * *bad to the side whose socket failed.
 */
static int conn_flow(struct conn *c, int i, bool *progress, int *bad)
{
	struct side *src = &c->side[i], *dst = &c->side[!i];
	struct ring *b = &c->buf[i];
	struct iovec iov[2];
	ssize_t n;
	int cnt;

	if (!src->rd_eof && src->readable && b->len < BUF_SIZE) {
		cnt = ring_space_iov(b, iov);
		n = readv(src->fd, iov, cnt);
		if (n > 0) {
			b->len += n;
			*progress = true;
		} else if (n == 0) {
			src->rd_eof = true;
			*progress = true;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			src->readable = false;
		} else if (errno != EINTR) {
			*bad = i;
			return -errno;
		}
	}

	if (b->len && dst->writable) {
		struct msghdr msg = { .msg_iov = iov };

		msg.msg_iovlen = ring_data_iov(b, iov);
		n = sendmsg(dst->fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			ring_consume(b, n);
			c->sent[!i] += n;
			*progress = true;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			dst->writable = false;
		} else if (n < 0 && errno != EINTR) {
			*bad = !i;
			return -errno;
		}
	}

	if (src->rd_eof && !b->len && !dst->wr_shut && !(i == CLIENT && c->connecting)) {
		/* ENOTCONN: the peer already reset; nothing is owed to it. */
		if (shutdown(dst->fd, SHUT_WR) && errno != ENOTCONN) {
			*bad = !i;
			return -errno;
		}
		dst->wr_shut = true;
		*progress = true;
	}
	return 0;
}

static bool conn_done(const struct conn *c)
{
	int i;

	for (i = 0; i < 2; i++)
		if (!c->side[i].rd_eof || c->buf[i].len || !c->side[!i].wr_shut)
			return false;
	return true;
}

/* The library's pump runs the connection after the switch. */
static void fast_pump(struct conn *c)
{
	struct sockmesh_fastpath_wait w;
	int r = sockmesh_fastpath__pump(c->fp, &w);
	bool later = r == 0 && w.timeout_ms >= 0;

	if (later != c->fp_later) {
		nlater += later ? 1 : -1;
		c->fp_later = later;
	}
	if (r == 1)
		conn_kill(c, false);
	else if (r < 0)
		conn_fail(c, "fast-path", -r);
}

/* Hand the connection to the kernel once the upstream is connected and we
 * hold no bytes of it; a refusal leaves it with us, as before.
 */
static bool try_fast_path(struct conn *c)
{
	char obuf[ADDR_STRLEN];
	int err;

	if (!cfg.fast_path || c->fp_tried || c->connecting || c->buf[0].len || c->buf[1].len ||
	    c->side[CLIENT].rd_eof || c->side[UPSTREAM].rd_eof)
		return false;
	c->fp_tried = true;
	err = sockmesh__fastpath(smh, c->side[CLIENT].fd, c->side[UPSTREAM].fd, NULL, &c->fp);
	if (err) {
		log_line("fast-path-refused orig=%s err=%s (%s)",
			 fmt_addr(&c->orig, obuf, sizeof(obuf)), strerror(-err), sockmesh_errmsg());
		c->fp = NULL;
		return false;
	}
	c->fp_tried_ok = true;
	log_line("fast-path orig=%s", fmt_addr(&c->orig, obuf, sizeof(obuf)));
	fast_pump(c);
	return true;
}

static void conn_pump(struct conn *c)
{
	int round, i, err, bad;

	if (c->fp) {
		fast_pump(c);
		return;
	}
	for (round = 0; round < PUMP_ROUNDS; round++) {
		bool progress = false;

		if (try_fast_path(c))
			return;

		for (i = 0; i < 2; i++) {
			err = conn_flow(c, i, &progress, &bad);
			if (err) {
				conn_fail(c, side_name[bad], -err);
				return;
			}
		}
		if (conn_done(c)) {
			conn_kill(c, false);
			return;
		}
		if (!progress)
			return;
	}
	/* Still busy: let the other connections have a turn first. */
	ready_enqueue(c);
}

static int sock_error(int fd)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return errno;
	return err;
}

static void side_event(struct side *s, uint32_t ev)
{
	struct conn *c = s->conn;
	int err;

	if (c->dead)
		return;
	if (s == &c->side[UPSTREAM] && c->connecting) {
		if (!(ev & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
			return;
		err = sock_error(s->fd);
		if (!err && !(ev & EPOLLOUT))
			err = ECONNREFUSED;
		if (err) {
			conn_fail(c, "connect", err);
			return;
		}
		c->connecting = false;
		s->readable = true;
		s->writable = true;
	} else {
		if (ev & EPOLLERR) {
			err = sock_error(s->fd);
			if (err) {
				conn_fail(c, side_name[s - c->side], err);
				return;
			}
		}
		if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
			s->readable = true;
		if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			s->writable = true;
	}
	conn_pump(c);
}

static int epoll_add(int fd, uint32_t events, struct evsrc *src)
{
	struct epoll_event ev = { .events = events, .data.ptr = src };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static void set_nodelay(int fd)
{
	int one = 1;

	/* We relay what the application wrote; any coalescing was its call. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int upstream_socket(int family)
{
	const struct sockaddr_storage *src = NULL;
	int fd, one = 1;

	fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (cfg.set_mark && setsockopt(fd, SOL_SOCKET, SO_MARK, &cfg.mark, sizeof(cfg.mark)))
		goto err;
	if (family == AF_INET && cfg.has_source4)
		src = &cfg.source4;
	else if (family == AF_INET6 && cfg.has_source6)
		src = &cfg.source6;
	if (src) {
		/* Defer the port choice to connect() so the 4-tuple, not the
		 * source address alone, has to be unique.
		 */
		setsockopt(fd, SOL_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
		if (bind(fd, (const struct sockaddr *)src, addr_len(src)))
			goto err;
	}
	set_nodelay(fd);
	return fd;
err:
	close(fd);
	return -1;
}

static void client_accepted(int fd, const struct sockaddr_storage *client)
{
	char cbuf[ADDR_STRLEN], obuf[ADDR_STRLEN];
	struct sockaddr_storage orig;
	socklen_t olen, ulen;
	struct conn *c;
	int ufd, i;

	if (nconns >= cfg.max_conns) {
		log_line("error max-conns client=%s limit=%u", fmt_addr(client, cbuf, sizeof(cbuf)),
			 cfg.max_conns);
		close_rst(fd);
		return;
	}
	if (original_dst(fd, client->ss_family, &orig, &olen)) {
		log_line("error no-original-dst client=%s err=%s",
			 fmt_addr(client, cbuf, sizeof(cbuf)), strerror(errno));
		close_rst(fd);
		return;
	}
	if (is_loop(&orig) || is_own_upstream(client)) {
		log_line("error loop client=%s orig=%s", fmt_addr(client, cbuf, sizeof(cbuf)),
			 fmt_addr(&orig, obuf, sizeof(obuf)));
		close_rst(fd);
		return;
	}

	c = malloc(sizeof(*c));
	if (!c) {
		log_line("error no-memory client=%s", fmt_addr(client, cbuf, sizeof(cbuf)));
		close_rst(fd);
		return;
	}
	memset(c, 0, offsetof(struct conn, mem));
	for (i = 0; i < 2; i++) {
		c->buf[i].data = c->mem[i];
		c->side[i].src.kind = SRC_SIDE;
		c->side[i].conn = c;
		c->side[i].fd = -1;
	}
	c->orig = orig;
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	nconns++;

	log_line("accept client=%s orig=%s", fmt_addr(client, cbuf, sizeof(cbuf)),
		 fmt_addr(&orig, obuf, sizeof(obuf)));

	c->side[CLIENT].fd = fd;
	c->side[CLIENT].readable = true;
	c->side[CLIENT].writable = true;
	set_nodelay(fd);
	if (epoll_add(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &c->side[CLIENT].src)) {
		conn_fail(c, "epoll", errno);
		return;
	}

	ufd = upstream_socket(orig.ss_family);
	if (ufd < 0) {
		conn_fail(c, "upstream-socket", errno);
		return;
	}
	c->side[UPSTREAM].fd = ufd;
	if (connect(ufd, (struct sockaddr *)&orig, olen) == 0) {
		c->side[UPSTREAM].readable = true;
		c->side[UPSTREAM].writable = true;
	} else if (errno == EINPROGRESS) {
		c->connecting = true;
	} else {
		conn_fail(c, "connect", errno);
		return;
	}
	/* The port is bound by now: the SYN is out (or the connect done). */
	ulen = sizeof(c->up_local);
	if (getsockname(ufd, (struct sockaddr *)&c->up_local, &ulen) == 0)
		upstream_hash_add(c);
	if (epoll_add(ufd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, &c->side[UPSTREAM].src)) {
		conn_fail(c, "epoll", errno);
		return;
	}
	/* Bytes the client sent with its handshake are buffered already. */
	conn_pump(c);
}

static void listener_event(struct listener *l)
{
	struct sockaddr_storage client;
	socklen_t clen;
	int n, fd;

	for (n = 0; n < ACCEPT_BATCH; n++) {
		clen = sizeof(client);
		fd = accept4(l->fd, (struct sockaddr *)&client, &clen,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			client_accepted(fd, &client);
			continue;
		}
		switch (errno) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return;
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
		case EPERM: /* a firewall rule refused it */
			continue;
		case EMFILE:
		case ENFILE:
			log_line("error accept err=%s", strerror(errno));
			if (reserve_fd >= 0) {
				close(reserve_fd);
				fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
				if (fd >= 0)
					close_rst(fd);
				reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
			}
			return;
		default:
			/* ENOBUFS, ENOMEM: try again on the next wakeup. */
			log_line("error accept err=%s", strerror(errno));
			return;
		}
	}
}

static void signal_event(void)
{
	struct signalfd_siginfo si;

	while (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT)
			quit = true;
	}
}

static void run_ready_queue(void)
{
	struct conn *c = ready_head;

	ready_head = ready_tail = NULL;
	while (c) {
		struct conn *next = c->qnext;

		c->queued = false;
		if (c->dead) {
			c->qnext = dead_list;
			dead_list = c;
		} else {
			conn_pump(c);
		}
		c = next;
	}
}

static int event_loop(void)
{
	struct epoll_event evs[MAX_EVENTS];
	int n, i;

	while (!quit) {
		n = epoll_wait(epfd, evs, MAX_EVENTS, ready_head ? 0 : nlater ? 1 : -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, PROG ": epoll_wait: %s\n", strerror(errno));
			return 1;
		}
		for (i = 0; i < n; i++) {
			struct evsrc *src = evs[i].data.ptr;

			switch (src->kind) {
			case SRC_LISTENER:
				listener_event(container_of(src, struct listener, src));
				break;
			case SRC_SIGNAL:
				signal_event();
				break;
			case SRC_SIDE:
				side_event(container_of(src, struct side, src), evs[i].events);
				break;
			}
		}
		if (nlater)
			for (struct conn *c = conns; c; c = c->next)
				if (c->fp_later)
					ready_enqueue(c);
		run_ready_queue();
		reap_dead();
	}
	return 0;
}

/* ---- setup ------------------------------------------------------------ */

static int open_listener(const struct sockaddr_storage *addr, struct listener *l)
{
	char abuf[ADDR_STRLEN];
	socklen_t len = sizeof(l->addr);
	int fd, one = 1, err;

	fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto err;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		goto err_close;
	/* Never also take IPv4: 127.0.0.1 gets a listener of its own. */
	if (addr->ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)))
		goto err_close;
	if (bind(fd, (const struct sockaddr *)addr, addr_len(addr)))
		goto err_close;
	if (listen(fd, SOMAXCONN))
		goto err_close;
	if (getsockname(fd, (struct sockaddr *)&l->addr, &len))
		goto err_close;
	l->src.kind = SRC_LISTENER;
	l->fd = fd;
	return 0;

err_close:
	err = errno;
	close(fd);
	errno = err;
err:
	err = errno;
	if (cfg.default_listen && addr->ss_family == AF_INET6 &&
	    (err == EAFNOSUPPORT || err == EADDRNOTAVAIL)) {
		/* IPv6 disabled in this netns: the default is best effort. */
		warn("listen %s: %s (skipped)", fmt_addr(addr, abuf, sizeof(abuf)), strerror(err));
		return -1;
	}
	die("listen %s: %s", fmt_addr(addr, abuf, sizeof(abuf)), strerror(err));
}

static void alloc_upstream_hash(void)
{
	size_t n = 64;

	/* about one entry per bucket when full */
	while (n < cfg.max_conns)
		n <<= 1;
	upstream_hash = calloc(n, sizeof(*upstream_hash));
	if (!upstream_hash)
		die("out of memory");
	upstream_hash_mask = n - 1;
}

static void open_listeners(void)
{
	size_t i;

	listeners = calloc(cfg.nlisten, sizeof(*listeners));
	if (!listeners)
		die("out of memory");
	for (i = 0; i < cfg.nlisten; i++)
		if (open_listener(&cfg.listen[i], &listeners[nlisteners]) == 0)
			nlisteners++;
	if (!nlisteners)
		die("no listen address could be bound");
	for (i = 0; i < nlisteners; i++)
		if (epoll_add(listeners[i].fd, EPOLLIN, &listeners[i].src))
			die("epoll_ctl: %s", strerror(errno));
}

static void write_pidfile(void)
{
	char buf[32];
	int fd, n;

	if (!cfg.pid_path)
		return;
	/* No O_TRUNC before the lock: a running instance keeps its pid. */
	fd = open(cfg.pid_path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0)
		die("pidfile %s: %s", cfg.pid_path, strerror(errno));
	if (flock(fd, LOCK_EX | LOCK_NB))
		die("pidfile %s: %s", cfg.pid_path,
		    errno == EWOULDBLOCK ? "locked by another instance" : strerror(errno));
	pid_fd = fd;
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(pid_fd, 0) || write(pid_fd, buf, n) != n)
		die("pidfile %s: %s", cfg.pid_path, strerror(errno));
	/* Once unprivileged we must still be allowed to remove it, which a
	 * sticky directory such as /tmp only grants to the file's owner.
	 */
	if ((cfg.set_uid || cfg.set_gid) &&
	    fchown(pid_fd, cfg.set_uid ? cfg.uid : (uid_t)-1, cfg.set_gid ? cfg.gid : (gid_t)-1))
		warn("pidfile %s: chown: %s", cfg.pid_path, strerror(errno));
}

static void remove_pidfile(void)
{
	if (pid_fd < 0)
		return;
	if (unlink(cfg.pid_path)) {
		/* An empty pidfile is at least never mistaken for a live pid. */
		warn("pidfile %s: %s (left empty)", cfg.pid_path, strerror(errno));
		if (ftruncate(pid_fd, 0))
			warn("pidfile %s: %s", cfg.pid_path, strerror(errno));
	}
	close(pid_fd);
	pid_fd = -1;
}

/* Reduce the capability sets to CAP_NET_ADMIN, which SO_MARK needs. */
static int keep_net_admin(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3,
	};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};

	data[CAP_TO_INDEX(CAP_NET_ADMIN)].permitted = CAP_TO_MASK(CAP_NET_ADMIN);
	data[CAP_TO_INDEX(CAP_NET_ADMIN)].effective = CAP_TO_MASK(CAP_NET_ADMIN);
	return (int)syscall(SYS_capset, &hdr, data);
}

static void drop_privileges(void)
{
	bool keep_caps = cfg.set_uid && cfg.uid != 0 && cfg.set_mark;

	if (!cfg.set_uid && !cfg.set_gid)
		return;
	if (setgroups(0, NULL))
		die("setgroups: %s", strerror(errno));
	if (cfg.set_gid && setgid(cfg.gid))
		die("setgid %u: %s", (unsigned int)cfg.gid, strerror(errno));
	if (!cfg.set_uid)
		return;
	if (keep_caps && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0))
		die("prctl(PR_SET_KEEPCAPS): %s", strerror(errno));
	if (setuid(cfg.uid))
		die("setuid %u: %s", (unsigned int)cfg.uid, strerror(errno));
	if (keep_caps) {
		if (keep_net_admin())
			die("--mark %" PRIu32 " with --uid %u needs CAP_NET_ADMIN: %s", cfg.mark,
			    (unsigned int)cfg.uid, strerror(errno));
		prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
	}
	if (cfg.uid != 0 && setuid(0) != -1)
		die("setuid %u: could regain root afterwards", (unsigned int)cfg.uid);
}

/* Fail at startup rather than on every connection. */
static void check_mark(void)
{
	int fd;

	if (!cfg.set_mark)
		return;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		die("socket: %s", strerror(errno));
	if (setsockopt(fd, SOL_SOCKET, SO_MARK, &cfg.mark, sizeof(cfg.mark)))
		die("--mark %" PRIu32 ": SO_MARK: %s", cfg.mark, strerror(errno));
	close(fd);
}

static void raise_nofile(void)
{
	/* two sockets per connection, plus listeners and housekeeping */
	rlim_t need = 2 * (rlim_t)cfg.max_conns + cfg.nlisten + 16;
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < need) {
		rl.rlim_cur =
			rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur < need)
		warn("--max-conns %u needs %llu file descriptors, RLIMIT_NOFILE is %llu",
		     cfg.max_conns, (unsigned long long)need, (unsigned long long)rl.rlim_cur);
}

/*
 * With fd 2 closed by whoever started us, the first socket would become
 * "stderr" and receive our log lines.
 */
static void ensure_std_fds(void)
{
	int fd;

	do {
		fd = open("/dev/null", O_RDWR);
	} while (fd >= 0 && fd <= STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

static void setup_signals(void)
{
	sigset_t set;

	/* Write errors are handled where they happen (MSG_NOSIGNAL aside,
	 * the log may be a closed pipe); a lost terminal is no reason to
	 * drop every connection.
	 */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	if (sigprocmask(SIG_BLOCK, &set, NULL))
		die("sigprocmask: %s", strerror(errno));
	sigfd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sigfd < 0)
		die("signalfd: %s", strerror(errno));
}

static void cleanup(void)
{
	size_t i;

	/* Connections cut short are reset so no peer takes them as complete. */
	while (conns)
		conn_kill(conns, true);
	run_ready_queue();
	reap_dead();
	for (i = 0; i < nlisteners; i++)
		close(listeners[i].fd);
	free(listeners);
	free(cfg.listen);
	free(upstream_hash);
	remove_pidfile();
	if (reserve_fd >= 0)
		close(reserve_fd);
	if (sigfd >= 0)
		close(sigfd);
	if (epfd >= 0)
		close(epfd);
	if (log_fd != STDERR_FILENO)
		close(log_fd);
	sockmesh__close(smh);
}

/* ---- command line ----------------------------------------------------- */

enum {
	O_LISTEN,
	O_UID,
	O_GID,
	O_SOURCE,
	O_MARK,
	O_LOG,
	O_PIDFILE,
	O_MAX_CONNS,
	O_FAST_PATH,
	O_PIN_DIR,
	O_HELP,
	O_COUNT
};

/* Every option may be repeated (the last one counts; --listen and
 * --source collect theirs), as they always could.
 */
static const struct smc_opt opt_table[O_COUNT] = {
	{ .id = O_LISTEN,
	  .name = "listen",
	  .short_opt = 'l',
	  .arg = "ADDR:PORT",
	  .type = SMC_OPT_ADDR,
	  .addr_flags = SMC_ADDR_PORT | SMC_ADDR_PORT0,
	  .flags = SMC_OPT_REPEAT,
	  .help = "listen there (repeatable; IPv6 as [ADDR]:PORT);\n"
		  "default 127.0.0.1:15001 and [::1]:15001" },
	{ .id = O_UID,
	  .name = "uid",
	  .short_opt = 'u',
	  .arg = "N",
	  .type = SMC_OPT_U32,
	  .max = UINT32_MAX - 1,
	  .flags = SMC_OPT_REPEAT,
	  .help = "after binding, switch to this uid" },
	{ .id = O_GID,
	  .name = "gid",
	  .short_opt = 'g',
	  .arg = "N",
	  .type = SMC_OPT_U32,
	  .max = UINT32_MAX - 1,
	  .flags = SMC_OPT_REPEAT,
	  .help = "after binding, switch to this gid" },
	{ .id = O_SOURCE,
	  .name = "source",
	  .short_opt = 's',
	  .arg = "ADDR",
	  .type = SMC_OPT_ADDR,
	  .addr_flags = SMC_ADDR_BARE,
	  .flags = SMC_OPT_REPEAT,
	  .help = "bind upstream sockets to ADDR (once per family)" },
	/* marks are customarily hex */
	{ .id = O_MARK,
	  .name = "mark",
	  .short_opt = 'm',
	  .arg = "N",
	  .type = SMC_OPT_U32,
	  .max = UINT32_MAX,
	  .flags = SMC_OPT_REPEAT | SMC_OPT_C_INT,
	  .help = "set SO_MARK N on upstream sockets" },
	{ .id = O_LOG,
	  .name = "log",
	  .short_opt = 'L',
	  .arg = "FILE",
	  .type = SMC_OPT_STRING,
	  .flags = SMC_OPT_REPEAT | SMC_OPT_NONEMPTY,
	  .help = "connection log (default: stderr)" },
	{ .id = O_PIDFILE,
	  .name = "pidfile",
	  .short_opt = 'p',
	  .arg = "FILE",
	  .type = SMC_OPT_STRING,
	  .flags = SMC_OPT_REPEAT | SMC_OPT_NONEMPTY,
	  .help = "write our pid to FILE, remove it on exit" },
	{ .id = O_MAX_CONNS,
	  .name = "max-conns",
	  .short_opt = 'c',
	  .arg = "N",
	  .type = SMC_OPT_U32,
	  .min = 1,
	  .max = MAX_MAX_CONNS,
	  .flags = SMC_OPT_REPEAT,
	  .help = "concurrent connections, more are reset (default 4096)" },
	{ .id = O_FAST_PATH,
	  .name = "fast-path",
	  .short_opt = 'F',
	  .type = SMC_OPT_FLAG,
	  .flags = SMC_OPT_REPEAT,
	  .help = "hand each connection to the kernel once its upstream\n"
		  "is connected (sockmesh kernel fast path)" },
	{ .id = O_PIN_DIR,
	  .name = "pin-dir",
	  .short_opt = 'P',
	  .arg = "DIR",
	  .type = SMC_OPT_STRING,
	  .flags = SMC_OPT_REPEAT | SMC_OPT_NONEMPTY,
	  .help = "sockmesh instance for --fast-path\n"
		  "(default " SOCKMESH_DEFAULT_PIN_DIR ")" },
	{ .id = O_HELP,
	  .name = "help",
	  .short_opt = 'h',
	  .flags = SMC_OPT_HELP,
	  .help = "show this help" },
};

static void usage(FILE *f, const struct smc_opts *opts)
{
	fprintf(f, "Usage: " PROG " [options]\n"
		   "Transparent L4 proxy: relays each redirected connection to its\n"
		   "original destination (SO_ORIGINAL_DST).\n\nOptions:\n");
	smc_opts_help(f, opts, 2, 25);
}

__attribute__((format(printf, 1, 2), noreturn)) static void bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs(PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs("Try '" PROG " --help' for more information.\n", stderr);
	exit(2);
}

static void add_listen(const struct sockaddr_storage *addr)
{
	struct sockaddr_storage *n;

	n = realloc(cfg.listen, (cfg.nlisten + 1) * sizeof(*n));
	if (!n)
		die("out of memory");
	cfg.listen = n;
	cfg.listen[cfg.nlisten++] = *addr;
}

/* Values as they come, in order: --listen and --source collect theirs. */
static int opt_value(const struct smc_opt *o, const char *value, const union smc_optval *v,
		     void *ctx, struct smc_opt_err *err)
{
	const struct sockaddr_storage *ss = &v->addr.ss;

	(void)ctx;
	switch (o->id) {
	case O_LISTEN:
		add_listen(ss);
		break;
	case O_SOURCE:
		if (ss->ss_family == AF_INET ? cfg.has_source4 : cfg.has_source6) {
			snprintf(err->msg, sizeof(err->msg),
				 "invalid --source '%s': one per family", value);
			return -EEXIST;
		}
		if (ss->ss_family == AF_INET) {
			cfg.source4 = *ss;
			cfg.has_source4 = true;
		} else {
			cfg.source6 = *ss;
			cfg.has_source6 = true;
		}
		break;
	}
	return 0;
}

static void parse_args(int argc, char **argv)
{
	struct smc_opts opts;
	struct sockaddr_storage ss;
	const struct smc_opt_err *e = &opts.err;
	int err;

	smc_opts_init(&opts, PROG);
	opts.permute = true;
	opts.fn = opt_value;
	if (smc_opts_add_table(&opts, opt_table, O_COUNT))
		die("option table");
	err = smc_opts_parse(&opts, argc, argv);
	if (err == SMC_OPTS_HELP) {
		usage(stdout, &opts);
		exit(0);
	}
	/* in the words this program always used (scripts may match them) */
	if (err) {
		switch (e->kind) {
		case SMC_OPT_E_NEEDS_VALUE:
			bad_usage("option '%s' needs an argument", e->word);
		case SMC_OPT_E_ARGUMENT:
			bad_usage("unexpected argument '%s'", e->word);
		case SMC_OPT_E_CALLBACK:
			bad_usage("%s", e->msg);
		case SMC_OPT_E_VALUE:
			if (e->opt->id == O_LISTEN)
				bad_usage("invalid --listen '%s' (want IPV4:PORT or [IPV6]:PORT)",
					  e->value);
			if (e->opt->id == O_SOURCE)
				bad_usage("invalid --source address '%s'", e->value);
			if (e->opt->id == O_MAX_CONNS)
				bad_usage("invalid --max-conns '%s' (1..%u)", e->value,
					  MAX_MAX_CONNS);
			bad_usage("invalid --%s '%s'", e->opt->name, e->value);
		default:
			if (e->short_opt)
				bad_usage("unknown option '-%c'", e->short_opt);
			bad_usage("unknown option '%s'", e->word);
		}
	}
	if (smc_opts_isset(&opts, O_UID)) {
		cfg.uid = (uid_t)smc_opts_u(&opts, O_UID, 0);
		cfg.set_uid = true;
	}
	if (smc_opts_isset(&opts, O_GID)) {
		cfg.gid = (gid_t)smc_opts_u(&opts, O_GID, 0);
		cfg.set_gid = true;
	}
	if (smc_opts_isset(&opts, O_MARK)) {
		cfg.mark = (uint32_t)smc_opts_u(&opts, O_MARK, 0);
		cfg.set_mark = true;
	}
	cfg.log_path = smc_opts_str(&opts, O_LOG);
	cfg.pid_path = smc_opts_str(&opts, O_PIDFILE);
	cfg.max_conns = (unsigned int)smc_opts_u(&opts, O_MAX_CONNS, DEFAULT_MAX_CONNS);
	cfg.fast_path = smc_opts_isset(&opts, O_FAST_PATH);
	cfg.pin_dir = smc_opts_str(&opts, O_PIN_DIR);
	if (cfg.pin_dir && !cfg.fast_path)
		bad_usage("--pin-dir '%s' is only used with --fast-path", cfg.pin_dir);

	if (!cfg.nlisten) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		cfg.default_listen = true;
		memset(&ss, 0, sizeof(ss));
		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		sin->sin_port = htons(DEFAULT_PORT);
		add_listen(&ss);
		memset(&ss, 0, sizeof(ss));
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_loopback;
		sin6->sin6_port = htons(DEFAULT_PORT);
		add_listen(&ss);
	}
}

int main(int argc, char **argv)
{
	static struct evsrc sigsrc = { .kind = SRC_SIGNAL };
	char abuf[ADDR_STRLEN];
	size_t i;
	int ret;

	ensure_std_fds();
	parse_args(argc, argv);

	if (cfg.log_path) {
		log_fd = open(cfg.log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (log_fd < 0)
			die("log %s: %s", cfg.log_path, strerror(errno));
	}
	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die("epoll_create1: %s", strerror(errno));
	setup_signals();
	if (epoll_add(sigfd, EPOLLIN, &sigsrc))
		die("epoll_ctl: %s", strerror(errno));
	raise_nofile();
	if (cfg.fast_path) {
		/* opened before privileges go: its fds keep working after */
		SOCKMESH_OPTS(sockmesh_open_opts, oo, .pin_dir = cfg.pin_dir);

		smh = sockmesh__open(&oo);
		if (!smh || sockmesh__fastpath_init(smh))
			die("--fast-path: no sockmesh instance at '%s': %s",
			    cfg.pin_dir ? cfg.pin_dir : SOCKMESH_DEFAULT_PIN_DIR,
			    sockmesh_errmsg());
	}
	alloc_upstream_hash();
	open_listeners();
	write_pidfile();
	drop_privileges();
	check_mark();
	reserve_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	for (i = 0; i < nlisteners; i++)
		log_line("listen addr=%s", fmt_addr(&listeners[i].addr, abuf, sizeof(abuf)));

	ret = event_loop();
	cleanup();
	return ret;
}
