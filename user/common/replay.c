/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Reassembly and replay of captured TCP connections (see replay.h). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "pcapng.h"
#include "replay.h"

/* How long the response is read after the stream was sent. */
#define SM_REPLAY_DRAIN_MS 5000
/* A connection that neither takes nor gives a byte for this long (a server
 * that stopped reading) is given up, not waited on forever.
 */
#define SM_REPLAY_STALL_MS 30000
/* How long connect() may take: a shadow server is near, so seconds are
 * ample; the kernel's own SYN retries would take minutes.
 */
#define SM_REPLAY_CONNECT_MS 10000

/* ---- reassembly ---------------------------------------------------------- */

struct seg {
	const uint8_t *payload;
	uint64_t ts_ns;
	int64_t off; /* stream offset of the first byte, set when the stream is built */
	uint32_t seq, caplen, len;
	uint32_t idx; /* order in the connection's capture */
	uint8_t dir; /* sent by side 0 or side 1 */
	uint8_t flags;
};

struct conn {
	int family;
	uint8_t addr[2][16]; /* side 0 has the lower (address, port) */
	uint16_t port[2];
	size_t order; /* when the first packet came, in file order */
	uint64_t open_ns;
	int syn_dir, synack_dir, first_dir; /* -1: none seen */
	uint32_t syn_seq;
	struct seg *segs;
	size_t n_segs, cap_segs;
};

struct collect {
	struct conn *conns;
	size_t n_conns, cap_conns;
	/* open addressing: 1 + the index of a tuple's current connection, 0 empty */
	size_t *slots;
	size_t n_slots; /* a power of 2, kept over twice the connections */
	size_t n_pkts;
};

static int grow(void **p, size_t *cap, size_t need, size_t size)
{
	size_t ncap = *cap ? *cap : 16;
	void *n;

	if (need <= *cap)
		return 0;
	while (ncap < need) {
		if (ncap > SIZE_MAX / 2 / size)
			return -ENOMEM;
		ncap *= 2;
	}
	n = realloc(*p, ncap * size);
	if (!n)
		return -ENOMEM;
	*p = n;
	*cap = ncap;
	return 0;
}

static size_t tuple_hash(const struct conn *c)
{
	const uint8_t *parts[] = { c->addr[0], c->addr[1] };
	uint64_t h = 1469598103934665603ull ^ (uint64_t)c->family;

	for (size_t i = 0; i < 2; i++)
		for (size_t j = 0; j < 16; j++)
			h = (h ^ parts[i][j]) * 1099511628211ull;
	h = (h ^ c->port[0]) * 1099511628211ull;
	h = (h ^ c->port[1]) * 1099511628211ull;
	return (size_t)(h ^ h >> 29);
}

static bool same_tuple(const struct conn *a, const struct conn *b)
{
	return a->family == b->family && a->port[0] == b->port[0] && a->port[1] == b->port[1] &&
	       !memcmp(a->addr, b->addr, sizeof(a->addr));
}

/* the slot of key's tuple: the one holding it, or the empty one it would take */
static size_t *find_slot(struct collect *s, const struct conn *key)
{
	size_t mask = s->n_slots - 1, i = tuple_hash(key) & mask;

	while (s->slots[i] && !same_tuple(&s->conns[s->slots[i] - 1], key))
		i = (i + 1) & mask;
	return &s->slots[i];
}

static int rehash(struct collect *s)
{
	size_t n = s->n_slots ? s->n_slots * 2 : 64, *old = s->slots, n_old = s->n_slots;

	if (n > SIZE_MAX / sizeof(*old))
		return -ENOMEM;
	s->slots = calloc(n, sizeof(*old));
	if (!s->slots) {
		s->slots = old;
		return -ENOMEM;
	}
	s->n_slots = n;
	for (size_t i = 0; i < n_old; i++)
		if (old[i])
			*find_slot(s, &s->conns[old[i] - 1]) = old[i];
	free(old);
	return 0;
}

static int on_pkt(const struct pcapng_pkt *p, void *ctx)
{
	const uint8_t syn_ack = PCAPNG_TCP_SYN | PCAPNG_TCP_ACK;
	struct collect *s = ctx;
	struct conn key = { .family = p->tcp.family }, *c;
	size_t alen = p->tcp.family == AF_INET ? 4 : 16, *slot;
	bool pure_syn = (p->tcp.flags & syn_ack) == PCAPNG_TCP_SYN;
	uint8_t dir;
	int cmp;

	cmp = memcmp(p->tcp.src, p->tcp.dst, alen);
	if (!cmp)
		cmp = p->tcp.sport < p->tcp.dport ? -1 : p->tcp.sport > p->tcp.dport;
	dir = cmp > 0;
	memcpy(key.addr[dir], p->tcp.src, alen);
	memcpy(key.addr[!dir], p->tcp.dst, alen);
	key.port[dir] = p->tcp.sport;
	key.port[!dir] = p->tcp.dport;

	if (2 * (s->n_conns + 1) > s->n_slots && rehash(s))
		return -ENOMEM;
	slot = find_slot(s, &key);
	c = *slot ? &s->conns[*slot - 1] : NULL;
	if (c && pure_syn && !(c->syn_dir == dir && c->syn_seq == p->tcp.seq))
		c = NULL; /* a new connection on a tuple seen before */
	if (!c) {
		if (grow((void **)&s->conns, &s->cap_conns, s->n_conns + 1, sizeof(*c)))
			return -ENOMEM;
		c = &s->conns[s->n_conns++];
		*c = key;
		c->order = s->n_pkts;
		c->open_ns = p->ts_ns;
		c->syn_dir = c->synack_dir = -1;
		c->first_dir = dir;
		*slot = s->n_conns;
	}
	if (pure_syn && c->syn_dir < 0) {
		c->syn_dir = dir;
		c->syn_seq = p->tcp.seq;
	} else if ((p->tcp.flags & syn_ack) == syn_ack && c->synack_dir < 0) {
		c->synack_dir = dir;
	}
	if (grow((void **)&c->segs, &c->cap_segs, c->n_segs + 1, sizeof(*c->segs)))
		return -ENOMEM;
	c->segs[c->n_segs] = (struct seg){
		.payload = p->payload,
		.ts_ns = p->ts_ns,
		.seq = p->tcp.seq,
		.caplen = p->caplen,
		.len = p->len,
		.idx = (uint32_t)c->n_segs,
		.dir = dir,
		.flags = p->tcp.flags,
	};
	c->n_segs++;
	s->n_pkts++;
	return 0;
}

static int cmp_conn_open(const void *a, const void *b)
{
	const struct conn *x = *(const struct conn *const *)a, *y = *(const struct conn *const *)b;

	if (x->open_ns != y->open_ns)
		return x->open_ns < y->open_ns ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

static int cmp_seg_off(const void *a, const void *b)
{
	const struct seg *x = *(const struct seg *const *)a, *y = *(const struct seg *const *)b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* the signed distance from sequence number a to b, modulo 2^32 */
static int64_t seq_diff(uint32_t a, uint32_t b)
{
	int64_t d = (int64_t)(uint32_t)(b - a);

	return d >= 0x80000000ll ? d - 0x100000000ll : d;
}

/* scratch space reused from one connection to the next */
struct stream {
	struct seg **segs;
	size_t cap_segs;
	struct sm_replay_chunk *chunks;
	size_t cap_chunks;
};

static int build_stream(struct conn *c, unsigned int id, struct stream *st,
			struct sm_replay_conn *out)
{
	int client = c->syn_dir >= 0	      ? c->syn_dir :
		     c->synack_dir >= 0	      ? !c->synack_dir :
		     c->port[0] != c->port[1] ? c->port[1] > c->port[0] :
						c->first_dir;
	bool have_ref = c->syn_dir >= 0;
	uint32_t prev_seq = c->syn_seq + 1;
	int64_t prev_off = 0, min_off = 0, end = 0, covered = 0, next = -1;
	size_t n = 0, n_chunks = 0;

	memset(out, 0, sizeof(*out));
	out->id = id;
	out->family = c->family;
	memcpy(out->client, c->addr[client], sizeof(out->client));
	memcpy(out->server, c->addr[!client], sizeof(out->server));
	out->client_port = c->port[client];
	out->server_port = c->port[!client];
	out->syn_seen = c->syn_dir >= 0 || c->synack_dir >= 0;
	out->open_ns = c->open_ns;

	if (grow((void **)&st->segs, &st->cap_segs, c->n_segs, sizeof(*st->segs)))
		return -ENOMEM;
	/* stream offsets, unwrapped in capture order from the previous segment */
	for (size_t i = 0; i < c->n_segs; i++) {
		struct seg *g = &c->segs[i];
		uint32_t seq = g->seq + ((g->flags & PCAPNG_TCP_SYN) ? 1 : 0);

		if (g->dir != client || (!g->len && !(g->flags & PCAPNG_TCP_FIN)))
			continue;
		if (!have_ref) {
			prev_seq = seq;
			have_ref = true;
		}
		g->off = prev_off + seq_diff(prev_seq, seq);
		prev_seq = seq;
		prev_off = g->off;
		if (!n || g->off < min_off)
			min_off = g->off;
		st->segs[n++] = g;
	}
	/* without a SYN, the stream starts at the first byte captured */
	if (c->syn_dir < 0)
		for (size_t i = 0; i < n; i++)
			st->segs[i]->off -= min_off;
	qsort(st->segs, n, sizeof(*st->segs), cmp_seg_off);
	for (size_t i = 0; i < n; i++) {
		const struct seg *g = st->segs[i];

		if (g->off + g->len > end)
			end = g->off + g->len;
		if (next >= 0 || !g->caplen || g->off + g->caplen <= covered)
			continue;
		if (g->off > covered) {
			next = g->off; /* a gap: nothing after it is sent */
			continue;
		}
		if (grow((void **)&st->chunks, &st->cap_chunks, n_chunks + 1, sizeof(*st->chunks)))
			return -ENOMEM;
		st->chunks[n_chunks++] = (struct sm_replay_chunk){
			.data = g->payload + (covered - g->off),
			.len = (size_t)(g->off + g->caplen - covered),
			.ts_ns = g->ts_ns,
		};
		covered = g->off + g->caplen;
	}
	out->chunks = st->chunks;
	out->n_chunks = n_chunks;
	out->sent = (uint64_t)covered;
	if (next < 0 && end > covered)
		next = end;
	if (next >= 0) {
		out->gap_at = (uint64_t)covered;
		out->gap_len = (uint64_t)(next - covered);
		out->lost = (uint64_t)(end - covered);
	}
	return 0;
}

int sm_replay_collect(const uint8_t *buf, size_t len, sm_replay_conn_cb cb, void *ctx, char *errbuf,
		      size_t errlen)
{
	struct collect s = { 0 };
	struct stream st = { 0 };
	struct conn **order = NULL;
	int rc;

	rc = pcapng_parse(buf, len, on_pkt, &s, errbuf, errlen);
	if (rc)
		goto out;
	if (s.n_conns > INT_MAX) {
		rc = -E2BIG;
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "replay: %zu connections are too many", s.n_conns);
		goto out;
	}
	order = calloc(s.n_conns ? s.n_conns : 1, sizeof(*order));
	if (!order) {
		rc = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < s.n_conns; i++)
		order[i] = &s.conns[i];
	qsort(order, s.n_conns, sizeof(*order), cmp_conn_open);
	for (size_t i = 0; i < s.n_conns; i++) {
		struct sm_replay_conn conn;

		rc = build_stream(order[i], (unsigned int)(i + 1), &st, &conn);
		if (!rc && cb)
			rc = cb(&conn, ctx);
		if (rc < 0)
			goto out;
	}
	rc = (int)s.n_conns;
out:
	if (rc == -ENOMEM && errbuf && errlen)
		snprintf(errbuf, errlen, "replay: out of memory");
	for (size_t i = 0; i < s.n_conns; i++)
		free(s.conns[i].segs);
	free(s.conns);
	free(s.slots);
	free(order);
	free(st.segs);
	free(st.chunks);
	return rc;
}

/* ---- the network --------------------------------------------------------- */

struct replay {
	const struct sockaddr *to;
	socklen_t tolen;
	const struct sm_replay_opts *o;
	uint64_t t0_ns; /* capture time of the first connection's open */
	uint64_t start_ns; /* monotonic time the replay started */
	int count;
	char *errbuf;
	size_t errlen;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* when (monotonic) what was captured at ts is due */
static uint64_t due_ns(const struct replay *r, uint64_t ts)
{
	double d;

	if (!(r->o && r->o->speed > 0) || ts <= r->t0_ns)
		return r->start_ns;
	d = (double)(ts - r->t0_ns) / r->o->speed;
	if (d > 1e18) /* ~31 years: do not overflow */
		d = 1e18;
	return r->start_ns + (uint64_t)d;
}

static int ms_until(uint64_t deadline)
{
	uint64_t now = mono_ns(), ms;

	if (now >= deadline)
		return 0;
	ms = (deadline - now + 999999) / 1000000;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* read and drop what fd holds; *eof at the end of the response */
static int drain(int fd, bool *eof)
{
	char buf[16384];

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (n > 0)
			continue;
		if (n == 0) {
			*eof = true;
			return 0;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		return -errno;
	}
}

/* Wait on fd until deadline (monotonic ns), reading and dropping what
 * arrives; with out, return 1 as soon as fd takes more bytes. 0 at the
 * deadline (or at EOF when draining: until_eof), -errno on an error.
 */
static int pump(int fd, uint64_t deadline, bool out, bool until_eof, bool *eof)
{
	for (;;) {
		short events = (short)((out ? POLLOUT : 0) | (*eof ? 0 : POLLIN));
		struct pollfd pfd = { .fd = fd, .events = events };
		int ms = ms_until(deadline), n, err;

		if (until_eof && *eof)
			return 0;
		if (!ms && !out)
			return 0;
		if (!pfd.events) {
			struct timespec d = { .tv_sec = ms / 1000,
					      .tv_nsec = (ms % 1000) * 1000000L };

			nanosleep(&d, NULL);
			continue;
		}
		n = poll(&pfd, 1, out ? SM_REPLAY_STALL_MS : ms);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (!n)
			return out ? -ETIMEDOUT : 0;
		if (pfd.revents & (POLLIN | POLLERR | POLLHUP)) {
			if (!*eof) {
				err = drain(fd, eof);
				if (err)
					return err;
			} else if (pfd.revents & POLLERR) {
				socklen_t sl = sizeof(err);

				if (!getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl) && err)
					return -err;
			}
		}
		if (out && (pfd.revents & (POLLOUT | POLLERR | POLLHUP)))
			return 1;
	}
}

static int send_chunk(int fd, const uint8_t *p, size_t n, uint64_t *sent, bool *eof)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		int rc;

		if (w > 0) {
			p += w;
			n -= (size_t)w;
			*sent += (uint64_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		rc = pump(fd, 0, true, false, eof);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int connect_to(const struct replay *r, int *fdp)
{
	int fd = socket(r->to->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err;
	struct pollfd pfd;
	socklen_t sl = sizeof(err);

	if (fd < 0)
		return -errno;
	if (connect(fd, r->to, r->tolen) && errno != EINPROGRESS) {
		err = errno;
		close(fd);
		return -err;
	}
	pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
	for (uint64_t deadline = mono_ns() + SM_REPLAY_CONNECT_MS * 1000000ull;;) {
		int n = poll(&pfd, 1, ms_until(deadline));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n ? errno : ETIMEDOUT;
			close(fd);
			return -err;
		}
		break;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &sl))
		err = errno;
	if (err) {
		close(fd);
		return -err;
	}
	*fdp = fd;
	return 0;
}

static void conn_name(const struct sm_replay_conn *c, char *buf, size_t len)
{
	struct sockaddr_storage a = { 0 }, b = { 0 };
	char as[SMC_ADDR_STRLEN], bs[SMC_ADDR_STRLEN];

	if (c->family == AF_INET) {
		struct sockaddr_in *x = (struct sockaddr_in *)&a, *y = (struct sockaddr_in *)&b;

		x->sin_family = y->sin_family = AF_INET;
		memcpy(&x->sin_addr, c->client, 4);
		memcpy(&y->sin_addr, c->server, 4);
		x->sin_port = htons(c->client_port);
		y->sin_port = htons(c->server_port);
	} else {
		struct sockaddr_in6 *x = (struct sockaddr_in6 *)&a, *y = (struct sockaddr_in6 *)&b;

		x->sin6_family = y->sin6_family = AF_INET6;
		memcpy(&x->sin6_addr, c->client, 16);
		memcpy(&y->sin6_addr, c->server, 16);
		x->sin6_port = htons(c->client_port);
		y->sin6_port = htons(c->server_port);
	}
	snprintf(buf, len, "conn %u %s -> %s", c->id, smc_addr_str(&a, true, as, sizeof(as)),
		 smc_addr_str(&b, true, bs, sizeof(bs)));
}

static void wait_until(uint64_t deadline)
{
	struct timespec ts = { .tv_sec = (time_t)(deadline / 1000000000u),
			       .tv_nsec = (long)(deadline % 1000000000u) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

static int replay_conn(const struct sm_replay_conn *c, void *ctx)
{
	struct replay *r = ctx;
	char name[2 * SMC_ADDR_STRLEN + 32];
	uint64_t sent = 0;
	bool eof = false;
	int fd = -1, err;

	if (c->id == 1) {
		r->t0_ns = c->open_ns;
		r->start_ns = mono_ns();
	}
	conn_name(c, name, sizeof(name));
	wait_until(due_ns(r, c->open_ns));
	err = connect_to(r, &fd);
	if (err) {
		if (r->errbuf && r->errlen)
			snprintf(r->errbuf, r->errlen, "replay: %s: connect: %s", name,
				 strerror(-err));
		return err;
	}
	for (size_t i = 0; i < c->n_chunks && !err; i++) {
		err = pump(fd, due_ns(r, c->chunks[i].ts_ns), false, false, &eof);
		if (!err)
			err = send_chunk(fd, c->chunks[i].data, c->chunks[i].len, &sent, &eof);
	}
	if (!err && shutdown(fd, SHUT_WR))
		err = -errno;
	if (!err)
		pump(fd, mono_ns() + SM_REPLAY_DRAIN_MS * 1000000ull, false, true, &eof);
	close(fd);
	r->count++;
	if (!r->o || !r->o->log)
		return 0;
	if (err)
		fprintf(r->o->log, "replay: %s: sent %llu of %llu bytes: %s\n", name,
			(unsigned long long)sent, (unsigned long long)c->sent, strerror(-err));
	else if (!c->gap_len)
		fprintf(r->o->log, "replay: %s: sent %llu bytes\n", name, (unsigned long long)sent);
	else if (c->lost == c->gap_len)
		fprintf(r->o->log,
			"replay: %s: sent %llu bytes (gap after %llu: %llu bytes not captured)\n",
			name, (unsigned long long)sent, (unsigned long long)c->gap_at,
			(unsigned long long)c->gap_len);
	else
		fprintf(r->o->log,
			"replay: %s: sent %llu bytes (gap after %llu: %llu bytes not captured; %llu more bytes after it not sent)\n",
			name, (unsigned long long)sent, (unsigned long long)c->gap_at,
			(unsigned long long)c->gap_len, (unsigned long long)(c->lost - c->gap_len));
	return 0;
}

int sm_replay(const uint8_t *buf, size_t len, const struct sockaddr *to, socklen_t tolen,
	      const struct sm_replay_opts *o, char *errbuf, size_t errlen)
{
	struct replay r = { .to = to, .tolen = tolen, .o = o, .errbuf = errbuf, .errlen = errlen };
	int rc;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (o && !(o->speed >= 0 && isfinite(o->speed))) {
		if (errbuf && errlen)
			snprintf(errbuf, errlen, "replay: speed %g is not a finite number >= 0",
				 o->speed);
		return -EINVAL;
	}
	rc = sm_replay_collect(buf, len, replay_conn, &r, errbuf, errlen);
	if (rc < 0)
		return rc;
	if (o && o->log)
		fflush(o->log);
	return r.count;
}
