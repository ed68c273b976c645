// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmesh tap: the library's tap records (sockmesh__tap) written as
 * pcapng that Wireshark and tshark read as ordinary TCP. Each connection
 * gets synthesized frames between its real endpoints (the app and the
 * original destination): a handshake when the tap saw it open, one
 * segment per record with sequence and acknowledgement numbers from the
 * byte offsets, FIN and RST at its end. A record the ring lost leaves a
 * hole in the sequence numbers (Wireshark: "previous segment not
 * captured") and the next frame's comment says how many bytes. One
 * interface block per scope. docs/design.md, "The tap".
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/socket.h>

#include "sockmesh.h"
#include "sockmesh_abi.h"

#include "pcapng.h"
#include "flowfmt.h"
#include "follow.h"
#include "proc.h"
#include "tap.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_PSH 0x08
#define TCP_ACK 0x10

/* A record held back: it came before bytes of its direction that come
 * before it (a socket's segments seen on two CPUs at once), or after a
 * record the ring lost. Written in order once the gap fills, or with the
 * gap after TAP_REORDER_NS.
 */
struct pend {
	struct pend *next;
	__u64 at_ns;
	struct sm_tap_rec r;
	__u8 data[];
};

#define TAP_REORDER_NS 250000000ULL
#define TAP_REORDER_MAX (8u << 20) /* payload bytes held per direction */

struct conn {
	struct conn *next;
	struct pend *pend[2]; /* by offset */
	size_t pend_bytes[2];
	__u32 family;
	__u8 client[16], server[16];
	__u16 client_port, server_port;
	__u32 isn[2]; /* per direction: 0 client -> server, 1 back */
	__u64 next_off[2]; /* the offset the next record should start at */
	__u64 acked[2]; /* bytes (and FIN) seen per direction: the other's ack */
	bool seen[2], fin[2], pid_match;
	__u32 pid[2]; /* the last sender each way, and its command */
	char comm[2][48];
};

struct scope_if {
	__u32 scope_idx;
	unsigned if_id;
	char label[600];
};

struct tap_state {
	const struct tap_args *args;
	struct sockmesh *sm;
	struct pcapng_writer w;
	struct conn **tab;
	size_t nbuckets, nconns;
	struct scope_if *ifs;
	size_t nifs;
	__u64 mono_to_real; /* add to CLOCK_MONOTONIC ns for the epoch */
	__u64 frames, data_records, conns_seen;
	size_t npend; /* records held, all connections */
	int err;
};

static size_t conn_hash(const struct sm_tap_rec *r, size_t n)
{
	size_t h = 1469598103934665603ull;
	const __u8 *p = r->client;

	for (int i = 0; i < 16; i++)
		h = (h ^ p[i] ^ r->server[i]) * 1099511628211ull;
	h = (h ^ r->client_port) * 1099511628211ull;
	h = (h ^ r->server_port) * 1099511628211ull;
	return h & (n - 1);
}

static bool conn_is(const struct conn *c, const struct sm_tap_rec *r)
{
	return c->family == r->family && c->client_port == r->client_port &&
	       c->server_port == r->server_port && !memcmp(c->client, r->client, 16) &&
	       !memcmp(c->server, r->server, 16);
}

static int tab_grow(struct tap_state *s)
{
	size_t n = s->nbuckets ? s->nbuckets * 2 : 1024;
	struct conn **t = calloc(n, sizeof(*t));

	if (!t)
		return -ENOMEM;
	for (size_t i = 0; i < s->nbuckets; i++)
		for (struct conn *c = s->tab[i], *nx; c; c = nx) {
			struct sm_tap_rec k = { .family = c->family,
						.client_port = c->client_port,
						.server_port = c->server_port };
			size_t b;

			nx = c->next;
			memcpy(k.client, c->client, 16);
			memcpy(k.server, c->server, 16);
			b = conn_hash(&k, n);
			c->next = t[b];
			t[b] = c;
		}
	free(s->tab);
	s->tab = t;
	s->nbuckets = n;
	return 0;
}

static struct conn *conn_get(struct tap_state *s, const struct sm_tap_rec *r, bool create)
{
	struct conn *c;
	size_t b;

	if (s->nconns >= s->nbuckets * 2 && tab_grow(s))
		return NULL;
	b = conn_hash(r, s->nbuckets);
	for (c = s->tab[b]; c; c = c->next)
		if (conn_is(c, r))
			return c;
	if (!create)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->family = r->family;
	memcpy(c->client, r->client, 16);
	memcpy(c->server, r->server, 16);
	c->client_port = r->client_port;
	c->server_port = r->server_port;
	/* any fixed numbers do; distinct per connection reads better */
	c->isn[0] = (__u32)(conn_hash(r, 1ull << 31) * 2654435761u);
	c->isn[1] = c->isn[0] ^ 0x5a5a5a5au;
	c->next = s->tab[b];
	s->tab[b] = c;
	s->nconns++;
	s->conns_seen++;
	return c;
}

static void pend_free(struct tap_state *s, struct conn *c)
{
	for (int d = 0; d < 2; d++)
		while (c->pend[d]) {
			struct pend *p = c->pend[d];

			c->pend[d] = p->next;
			free(p);
			s->npend--;
		}
}

static void conn_drop(struct tap_state *s, struct conn *c)
{
	pend_free(s, c);
	struct sm_tap_rec k = { .family = c->family,
				.client_port = c->client_port,
				.server_port = c->server_port };
	struct conn **pp;

	memcpy(k.client, c->client, 16);
	memcpy(k.server, c->server, 16);
	for (pp = &s->tab[conn_hash(&k, s->nbuckets)]; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			free(c);
			s->nconns--;
			return;
		}
}

/* The pcapng interface of a scope: one per scope, named after it. */
static int scope_if(struct tap_state *s, __u32 idx, const char **label)
{
	struct sockmesh_scope_info info = { .sz = sizeof(info) };
	const struct sockmesh_scope *prev = NULL;
	struct scope_if *ifs, *e;
	char name[300], desc[600];
	int id;

	for (size_t i = 0; i < s->nifs; i++)
		if (s->ifs[i].scope_idx == idx) {
			*label = s->ifs[i].label;
			return (int)s->ifs[i].if_id;
		}
	snprintf(name, sizeof(name), "sockmesh:scope%u", idx);
	desc[0] = 0;
	while (!sockmesh__next_scope(s->sm, prev, &info)) {
		prev = &info.scope;
		if (info.scope_idx != idx)
			continue;
		snprintf(name, sizeof(name), "sockmesh:%s:%s",
			 info.scope.kind == SOCKMESH_SCOPE_NETNS ? "netns" : "cgroup",
			 info.scope.name);
		if (info.pod_name[0])
			snprintf(desc, sizeof(desc), "pod %s/%s", info.pod_namespace,
				 info.pod_name);
		break;
	}
	id = pcapng_add_interface(&s->w, name, desc[0] ? desc : NULL, 262144);
	if (id < 0)
		return id;
	ifs = realloc(s->ifs, (s->nifs + 1) * sizeof(*ifs));
	if (!ifs)
		return -ENOMEM;
	s->ifs = ifs;
	e = &ifs[s->nifs++];
	e->scope_idx = idx;
	e->if_id = (unsigned)id;
	snprintf(e->label, sizeof(e->label), "scope %s%s%s", name + strlen("sockmesh:"),
		 desc[0] ? " " : "", desc);
	*label = e->label;
	return id;
}

static int frame(struct tap_state *s, unsigned if_id, __u64 ts, struct conn *c, int dir, __u8 flags,
		 __u64 off, const void *data, __u32 caplen, __u32 len, const char *comment)
{
	struct pcapng_tcp seg = { .family = c->family == AF_INET6 ? AF_INET6 : AF_INET };
	int other = !dir;

	memcpy(dir ? seg.src : seg.dst, c->server, 16);
	memcpy(dir ? seg.dst : seg.src, c->client, 16);
	seg.sport = dir ? c->server_port : c->client_port;
	seg.dport = dir ? c->client_port : c->server_port;
	seg.seq = c->isn[dir] + 1 + (__u32)off;
	if (flags & TCP_SYN)
		seg.seq = c->isn[dir];
	seg.ack = c->isn[other] + 1 + (__u32)c->acked[other];
	seg.flags = flags;
	if (!(flags & TCP_ACK))
		seg.ack = 0;
	s->frames++;
	return pcapng_write_tcp(&s->w, if_id, ts, &seg, data, caplen, len, comment);
}

static const char *path_name(__u8 p)
{
	return p == SM_TAP_PATH_SPLICE ? "spliced" :
	       p == SM_TAP_PATH_FAST   ? "fast path" :
					 "tcp stack";
}

static int write_rec(struct tap_state *s, struct conn *c, const struct sm_tap_rec *r,
		     const void *data)
{
	const struct tap_args *a = s->args;
	__u64 ts = r->ts_ns + s->mono_to_real, gap = 0;
	char comment[1024];
	const char *label = "";
	int dir = r->dir & 1, if_id, err = 0;
	__u32 pid = (__u32)(r->pid_tgid >> 32);

	if (a->pid && r->kind == SM_TAP_DATA && pid == a->pid)
		c->pid_match = true;
	if (a->pid && !c->pid_match) {
		/* not (yet) seen from that process: keep the numbering */
		if (r->kind == SM_TAP_DATA)
			c->next_off[dir] = c->acked[dir] = r->off + r->len;
		c->seen[0] = c->seen[1] = true;
		return 0;
	}
	if_id = scope_if(s, r->scope_idx, &label);
	if (if_id < 0)
		return if_id;
	if (!c->seen[0] && !c->seen[1] && (r->flags & SM_TAP_F_FROM_START)) {
		/* the tap saw it open: the handshake, as it was */
		err = frame(s, (unsigned)if_id, ts, c, 0, TCP_SYN, 0, NULL, 0, 0, NULL);
		if (!err)
			err = frame(s, (unsigned)if_id, ts, c, 1, TCP_SYN | TCP_ACK, 0, NULL, 0, 0,
				    NULL);
		if (!err)
			err = frame(s, (unsigned)if_id, ts, c, 0, TCP_ACK, 0, NULL, 0, 0, NULL);
		c->seen[0] = c->seen[1] = true;
		if (err)
			return err;
	}
	if (!c->seen[dir]) {
		c->seen[dir] = true;
		c->next_off[dir] = c->acked[dir] = r->off;
	}
	if (r->off > c->next_off[dir])
		gap = r->off - c->next_off[dir];
	switch (r->kind) {
	case SM_TAP_OPEN:
		/* a socket followed by its segments: the connecting process */
		if (pid && pid != c->pid[dir]) {
			c->pid[dir] = pid;
			smc_proc_comm(pid, c->comm[dir], sizeof(c->comm[dir]));
		}
		return 0;
	case SM_TAP_DATA:
		if (pid != c->pid[dir]) {
			c->pid[dir] = pid;
			smc_proc_comm(pid, c->comm[dir], sizeof(c->comm[dir]));
		}
		if (pid)
			snprintf(comment, sizeof(comment), "pid %u (%s) %s; %s", pid,
				 c->comm[dir][0] ? c->comm[dir] : "?", label, path_name(r->path));
		else /* a segment's sender (not known in softirq) */
			snprintf(comment, sizeof(comment), "pid ? %s; %s", label,
				 path_name(r->path));
		if (gap) {
			size_t l = strlen(comment);

			snprintf(
				comment + l, sizeof(comment) - l,
				"; %llu bytes before this segment were not captured (tap ring full)",
				(unsigned long long)gap);
		}
		if (r->off + r->len > c->acked[dir])
			c->acked[dir] = r->off + r->len;
		c->next_off[dir] = r->off + r->len;
		s->data_records++;
		return frame(s, (unsigned)if_id, ts, c, dir, TCP_ACK | TCP_PSH, r->off, data,
			     r->caplen, r->len, comment);
	case SM_TAP_FIN:
		if (c->fin[dir])
			return 0;
		c->fin[dir] = true;
		snprintf(comment, sizeof(comment), "%s; %s shut down its direction", label,
			 dir ? "server" : "client");
		err = frame(s, (unsigned)if_id, ts, c, dir, TCP_FIN | TCP_ACK, r->off, NULL, 0, 0,
			    gap ? comment : NULL);
		c->acked[dir] = r->off + 1; /* the FIN takes a sequence number */
		if (!err && c->fin[!dir])
			conn_drop(s, c);
		return err;
	case SM_TAP_LOST:
		/* an empty segment at the point where this direction stops */
		snprintf(comment, sizeof(comment),
			 "%s; from here on the %s's bytes go out of the sidecar's upstream socket "
			 "on the kernel fast path: they are in this capture as that socket's "
			 "connection (fast path), not here",
			 label, dir ? "server" : "client");
		return frame(s, (unsigned)if_id, ts, c, dir, TCP_ACK, r->off, NULL, 0, 0, comment);
	case SM_TAP_RST:
		snprintf(comment, sizeof(comment), "%s; the connection was reset or aborted",
			 label);
		err = frame(s, (unsigned)if_id, ts, c, dir, TCP_RST | TCP_ACK, r->off, NULL, 0, 0,
			    comment);
		conn_drop(s, c);
		return err;
	}
	return 0;
}

/* A payload record in its place: what was written already (a
 * retransmission, or a segment another CPU overtook whose gap was written
 * meanwhile) is cut off.
 */
static int write_data(struct tap_state *s, struct conn *c, const struct sm_tap_rec *r,
		      const __u8 *data)
{
	int dir = r->dir & 1;
	struct sm_tap_rec t;
	__u64 k;

	if (!c->seen[dir] || r->off >= c->next_off[dir])
		return write_rec(s, c, r, data);
	k = c->next_off[dir] - r->off;
	if (k >= r->len)
		return 0;
	t = *r;
	t.off += k;
	t.len -= (__u32)k;
	t.caplen = t.caplen > k ? t.caplen - (__u32)k : 0;
	return write_rec(s, c, &t, data + (r->caplen - t.caplen));
}

/* Write what direction dir of c holds that is in order now (or all of
 * it, force; or up to the first record younger than TAP_REORDER_NS, when
 * now is set: the gap before it is then a loss).
 */
static int flush_dir(struct tap_state *s, struct conn *c, int dir, bool force, __u64 now)
{
	struct pend *p;
	int err;

	while ((p = c->pend[dir])) {
		if (!force && p->r.off > c->next_off[dir] &&
		    (!now || p->at_ns + TAP_REORDER_NS > now))
			break;
		c->pend[dir] = p->next;
		c->pend_bytes[dir] -= p->r.caplen;
		s->npend--;
		err = write_data(s, c, &p->r, p->data);
		free(p);
		if (err)
			return err;
	}
	return 0;
}

static int hold(struct tap_state *s, struct conn *c, int dir, const struct sm_tap_rec *r,
		const void *data)
{
	struct pend *p = malloc(sizeof(*p) + r->caplen), **pp;

	if (!p)
		return -ENOMEM;
	p->at_ns = cli_mono_ns();
	p->r = *r;
	memcpy(p->data, data, r->caplen);
	for (pp = &c->pend[dir]; *pp && (*pp)->r.off <= r->off; pp = &(*pp)->next)
		;
	p->next = *pp;
	*pp = p;
	c->pend_bytes[dir] += r->caplen;
	s->npend++;
	/* never hold without bound: a gap that lasts is a loss */
	return c->pend_bytes[dir] > TAP_REORDER_MAX ? flush_dir(s, c, dir, true, 0) : 0;
}

static int on_rec(const struct sm_tap_rec *r, const void *data, void *ctx)
{
	struct tap_state *s = ctx;
	int dir = r->dir & 1, err;
	struct conn *c;

	if (r->kind > SM_TAP_LOST)
		return 0;
	/* a reset ends a connection once, whichever end reports it first */
	c = conn_get(s, r, r->kind != SM_TAP_RST);
	if (!c)
		return r->kind == SM_TAP_RST ? 0 : -ENOMEM;
	if (r->kind == SM_TAP_DATA) {
		if (c->seen[dir] && r->off > c->next_off[dir])
			return hold(s, c, dir, r, data);
		err = write_data(s, c, r, data);
		return err ? err : flush_dir(s, c, dir, false, 0);
	}
	/* its end (or a mark): what is held first */
	err = flush_dir(s, c, 0, true, 0);
	if (!err)
		err = flush_dir(s, c, 1, true, 0);
	return err ? err : write_rec(s, c, r, data);
}

/* Records held past TAP_REORDER_NS (all: force). */
static int flush_held(struct tap_state *s, bool force)
{
	__u64 now = cli_mono_ns();
	int err = 0;

	for (size_t i = 0; i < s->nbuckets && s->npend && !err; i++)
		for (struct conn *c = s->tab[i]; c && !err; c = c->next)
			for (int d = 0; d < 2 && !err; d++)
				if (c->pend[d])
					err = flush_dir(s, c, d, force, now);
	return err;
}

int cli_tap_run(struct sockmesh *sm, const struct tap_args *a, FILE *out, struct tap_result *res)
{
	struct sockmesh_tap_opts o = { .sz = sizeof(o) };
	struct sockmesh_tap_stats st = { .sz = sizeof(st) };
	struct tap_state s = { .args = a, .sm = sm };
	struct sockmesh_tap *t = NULL;
	__u64 deadline = 0;
	int err;

	memset(res, 0, sizeof(*res));
	o.scope = a->scope;
	o.port = a->port;
	o.snaplen = a->snaplen;
	o.ring_size = a->ring_size;
	cli_follow_signals();
	err = tab_grow(&s);
	if (err)
		return err;
	err = pcapng_writer_open(&s.w, out, "sockmesh tap");
	if (!err)
		err = pcapng_writer_flush(&s.w);
	if (err) {
		free(s.tab);
		return err;
	}
	err = sockmesh__tap(sm, &o, on_rec, &s, &t);
	if (err) {
		free(s.tab);
		return err;
	}
	s.mono_to_real = (__u64)smc_mono_to_real();
	deadline = cli_deadline(a->duration_s);
	if (a->ready)
		a->ready(a->ready_ctx);
	while (!cli_stop_signal) {
		int n = sockmesh_tap__poll(t, 100);

		if (n < 0 && n != -EINTR) {
			err = n;
			break;
		}
		if (s.npend) {
			err = flush_held(&s, false);
			if (err)
				break;
			n = 1;
		}
		if (n > 0 && pcapng_writer_flush(&s.w)) {
			err = s.w.err ? -abs(s.w.err) : -EIO;
			break;
		}
		if (a->count && s.data_records >= a->count)
			break;
		if (deadline && cli_mono_ns() >= deadline)
			break;
	}
	/* what is still in the ring */
	if (!err && !(a->count && s.data_records >= a->count))
		while (sockmesh_tap__poll(t, 0) > 0)
			;
	if (!err)
		err = flush_held(&s, true);
	sockmesh_tap__stats(t, &st);
	sockmesh_tap__free(t);
	if (pcapng_writer_flush(&s.w) && !err)
		err = s.w.err ? -abs(s.w.err) : -EIO;
	res->records = st.records;
	res->lost_records = st.lost_records;
	res->lost_bytes = st.lost_bytes;
	res->frames = s.frames;
	res->connections = s.conns_seen;
	res->signal = cli_stop_signal;
	for (size_t i = 0; i < s.nbuckets; i++)
		for (struct conn *c = s.tab[i], *nx; c; c = nx) {
			nx = c->next;
			pend_free(&s, c);
			free(c);
		}
	free(s.tab);
	free(s.ifs);
	/* the reader of `-w -` went away: a normal end for a pipe */
	if (err == -EPIPE)
		err = 0;
	return err;
}
