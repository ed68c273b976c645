/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Unit tests of the pcapng writer and reader and of the replay of captured
 * TCP connections (user/common/pcapng.c, replay.c): files written, read
 * back field by field and byte by byte, broken files refused with the
 * offset named, streams reassembled and sent to a listener on 127.0.0.1.
 * When tshark is on PATH it reads the written file too.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "pcapng.h"
#include "replay.h"
#include "sm_test.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* TCP payload of one frame, as pcapng.h promises */
#define MAX4 65495u
#define MAX6 65515u
#define T0 1700000000123456789ull

/* ---- helpers ------------------------------------------------------------- */

/* a capture written to a temporary file, then read back whole */
struct cap {
	char path[64];
	FILE *f;
	struct pcapng_writer w;
	uint8_t *buf;
	size_t len;
};

static bool cap_open(struct cap *c)
{
	int fd;

	memset(c, 0, sizeof(*c));
	snprintf(c->path, sizeof(c->path), "/tmp/test_pcapng.XXXXXX");
	fd = mkstemp(c->path);
	if (fd < 0)
		return false;
	c->f = fdopen(fd, "w+");
	if (!c->f) {
		close(fd);
		unlink(c->path);
		return false;
	}
	return pcapng_writer_open(&c->w, c->f, "test_pcapng") == 0;
}

static bool cap_finish(struct cap *c)
{
	long n;

	if (pcapng_writer_flush(&c->w))
		return false;
	n = ftell(c->f);
	if (n < 0 || fseek(c->f, 0, SEEK_SET))
		return false;
	c->buf = malloc((size_t)n + 1);
	if (!c->buf)
		return false;
	c->len = fread(c->buf, 1, (size_t)n, c->f);
	return c->len == (size_t)n;
}

static void cap_free(struct cap *c)
{
	if (c->f)
		fclose(c->f);
	if (c->path[0])
		unlink(c->path);
	free(c->buf);
	memset(c, 0, sizeof(*c));
}

static struct pcapng_tcp tcp(const char *src, uint16_t sport, const char *dst, uint16_t dport,
			     uint32_t seq, uint32_t ack, uint8_t flags)
{
	struct pcapng_tcp t = { .sport = sport, .dport = dport, .seq = seq, .ack = ack };

	t.family = strchr(src, ':') ? AF_INET6 : AF_INET;
	t.flags = flags;
	if (inet_pton(t.family, src, t.src) != 1 || inet_pton(t.family, dst, t.dst) != 1)
		abort();
	return t;
}

static struct pcapng_tcp reverse(const struct pcapng_tcp *t, uint32_t seq, uint32_t ack,
				 uint8_t flags)
{
	struct pcapng_tcp r = *t;

	memcpy(r.src, t->dst, 16);
	memcpy(r.dst, t->src, 16);
	r.sport = t->dport;
	r.dport = t->sport;
	r.seq = seq;
	r.ack = ack;
	r.flags = flags;
	return r;
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (uint8_t)(seed >> 16);
	}
}

/* what a parse delivered */
struct pkts {
	struct pcapng_pkt *p;
	size_t n, cap;
};

static int collect_pkt(const struct pcapng_pkt *p, void *ctx)
{
	struct pkts *s = ctx;

	if (s->n == s->cap) {
		size_t ncap = s->cap ? 2 * s->cap : 64;
		struct pcapng_pkt *n = realloc(s->p, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		s->p = n;
		s->cap = ncap;
	}
	s->p[s->n++] = *p;
	return 0;
}

/* ---- round trip ------------------------------------------------------------ */

/* one frame the writer should have made */
struct want {
	unsigned int if_id;
	uint64_t ts;
	struct pcapng_tcp tcp;
	const uint8_t *payload;
	uint32_t caplen, len;
	const char *comment;
};

struct wants {
	struct want w[64];
	size_t n;
};

/* Write a segment and note the frames it must become (split here by the
 * sizes pcapng.h gives, not by the writer's code).
 */
static int write_seg(struct cap *c, struct wants *ws, unsigned int if_id, uint64_t ts,
		     const struct pcapng_tcp *t, const uint8_t *payload, uint32_t caplen,
		     uint32_t len, const char *comment)
{
	uint32_t max = t->family == AF_INET ? MAX4 : MAX6, off = 0;

	do {
		struct want *w = &ws->w[ws->n++];
		uint32_t n = len - off < max ? len - off : max;
		bool first = off == 0, last = off + n == len;

		w->if_id = if_id;
		w->ts = ts;
		w->tcp = *t;
		w->tcp.seq = t->seq + off + (!first && (t->flags & PCAPNG_TCP_SYN));
		w->tcp.flags = t->flags & PCAPNG_TCP_ACK;
		if (first)
			w->tcp.flags |= t->flags & PCAPNG_TCP_SYN;
		if (last)
			w->tcp.flags |=
				t->flags & (PCAPNG_TCP_FIN | PCAPNG_TCP_PSH | PCAPNG_TCP_RST);
		w->payload = payload ? payload + off : NULL;
		w->len = n;
		w->caplen = off >= caplen ? 0 : caplen - off < n ? caplen - off : n;
		w->comment = comment;
		off += n;
	} while (off < len);
	return pcapng_write_tcp(&c->w, if_id, ts, t, payload, caplen, len, comment);
}

static uint16_t csum(const uint8_t *p, size_t n, uint32_t sum)
{
	for (size_t i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)sum;
}

/* The headers in front of a parsed payload: Ethernet MACs, the IPv4 header
 * checksum, the TCP checksum (valid, or 0 for a cut frame).
 */
static void check_headers(const struct pcapng_pkt *p, const char *what)
{
	size_t alen = p->tcp.family == AF_INET ? 4 : 16, iph = p->tcp.family == AF_INET ? 20 : 40;
	const uint8_t *tcph = p->payload - 20, *ip = tcph - iph, *eth = ip - 14;
	uint8_t pseudo[40] = { 0 };
	uint32_t l4 = 20 + p->len;
	int lower = memcmp(p->tcp.src, p->tcp.dst, alen) < 0 ||
		    (!memcmp(p->tcp.src, p->tcp.dst, alen) && p->tcp.sport < p->tcp.dport);
	uint16_t sum;

	EXPECT_EQ(eth[0], 0x02, what);
	EXPECT_EQ(eth[6], 0x02, what);
	EXPECT_EQ(eth[11], lower ? 1 : 2, what);
	EXPECT_EQ(eth[5], lower ? 2 : 1, what);
	if (p->tcp.family == AF_INET) {
		EXPECT_EQ(ip[0], 0x45, what);
		EXPECT_EQ(ip[8], 64, what);
		EXPECT_EQ(ip[6], 0x40, "DF");
		EXPECT_EQ(csum(ip, 20, 0), 0xffff, "IPv4 header checksum");
		memcpy(pseudo, p->tcp.src, 4);
		memcpy(pseudo + 4, p->tcp.dst, 4);
		pseudo[9] = 6;
		pseudo[10] = (uint8_t)(l4 >> 8);
		pseudo[11] = (uint8_t)l4;
		sum = csum(pseudo, 12, 0);
	} else {
		EXPECT_EQ(ip[0], 0x60, what);
		EXPECT_EQ(ip[7], 64, what);
		memcpy(pseudo, p->tcp.src, 16);
		memcpy(pseudo + 16, p->tcp.dst, 16);
		pseudo[34] = (uint8_t)(l4 >> 8);
		pseudo[35] = (uint8_t)l4;
		pseudo[39] = 6;
		sum = csum(pseudo, 40, 0);
	}
	EXPECT_EQ(tcph[12], 0x50, "data offset 5");
	EXPECT_EQ(tcph[14] << 8 | tcph[15], 65535, "window");
	if (p->caplen == p->len) {
		sum = csum(tcph, 20, sum);
		EXPECT_EQ(csum(p->payload, p->len, sum), 0xffff, "TCP checksum");
	} else {
		EXPECT_EQ(tcph[16] << 8 | tcph[17], 0, "no TCP checksum on a cut frame");
	}
}

static void check_pkts(const struct pkts *got, const struct wants *ws)
{
	ASSERT_EQ(got->n, ws->n, "frames");
	for (size_t i = 0; i < ws->n; i++) {
		const struct pcapng_pkt *p = &got->p[i];
		const struct want *w = &ws->w[i];
		size_t alen = w->tcp.family == AF_INET ? 4 : 16;
		char what[64];

		snprintf(what, sizeof(what), "frame %zu", i);
		EXPECT_EQ(p->if_id, w->if_id, what);
		EXPECT_EQ(p->ts_ns, w->ts, what);
		EXPECT_EQ(p->tcp.family, w->tcp.family, what);
		EXPECT_MEMEQ(p->tcp.src, w->tcp.src, alen, what);
		EXPECT_MEMEQ(p->tcp.dst, w->tcp.dst, alen, what);
		EXPECT_EQ(p->tcp.sport, w->tcp.sport, what);
		EXPECT_EQ(p->tcp.dport, w->tcp.dport, what);
		EXPECT_EQ(p->tcp.seq, w->tcp.seq, what);
		EXPECT_EQ(p->tcp.ack, w->tcp.ack, what);
		EXPECT_EQ(p->tcp.flags, w->tcp.flags, what);
		EXPECT_EQ(p->len, w->len, what);
		ASSERT_EQ(p->caplen, w->caplen, what);
		EXPECT_MEMEQ(p->payload, w->payload, w->caplen, what);
		if (w->comment) {
			EXPECT_EQ(p->comment_len, strlen(w->comment), what);
			EXPECT_TRUE(p->comment && !memcmp(p->comment, w->comment, p->comment_len),
				    what);
		} else {
			EXPECT_NULL(p->comment, what);
		}
		check_headers(p, what);
	}
}

#define BIG (1u << 20)

/* the capture test_roundtrip writes: stream 0 (IPv4) is for tshark */
struct sample {
	struct cap c;
	struct wants ws;
	uint8_t *big, hello[5], resp[19], cut[300];
};

static bool write_sample(struct sample *s)
{
	struct pcapng_tcp c4 = tcp("10.0.0.1", 43210, "10.96.0.10", 80, 1000, 0, PCAPNG_TCP_SYN);
	struct pcapng_tcp c6 = tcp("fd00::1", 50000, "fd00::2", 8080, 7, 9, PCAPNG_TCP_ACK);
	struct pcapng_tcp t;
	int i4, i6, err = 0;

	memset(s, 0, sizeof(*s));
	s->big = malloc(BIG);
	if (!s->big || !cap_open(&s->c))
		return false;
	fill(s->big, BIG, 1);
	memcpy(s->hello, "hello", 5);
	memcpy(s->resp, "HTTP/1.1 200 OK\r\n\r\n", 19);
	fill(s->cut, sizeof(s->cut), 2);
	i4 = pcapng_add_interface(&s->c.w, "tap0", "sockmesh tap, IPv4", 0);
	i6 = pcapng_add_interface(&s->c.w, "tap1", NULL, 262144);
	if (i4 != 0 || i6 != 1)
		return false;
	err |= write_seg(&s->c, &s->ws, 0, T0, &c4, NULL, 0, 0, NULL);
	t = reverse(&c4, 5000, 1001, PCAPNG_TCP_SYN | PCAPNG_TCP_ACK);
	err |= write_seg(&s->c, &s->ws, 0, T0 + 10, &t, NULL, 0, 0, NULL);
	t = c4;
	t.seq = 1001;
	t.ack = 5001;
	t.flags = PCAPNG_TCP_ACK;
	err |= write_seg(&s->c, &s->ws, 0, T0 + 20, &t, NULL, 0, 0, NULL);
	t.flags = PCAPNG_TCP_ACK | PCAPNG_TCP_PSH;
	err |= write_seg(&s->c, &s->ws, 0, T0 + 30, &t, s->hello, 5, 5, "first");
	t.seq = 1006;
	err |= write_seg(&s->c, &s->ws, 0, T0 + 40, &t, s->big, BIG, BIG, "big \xe2\x9c\x93");
	t = reverse(&c4, 5001, 1006 + BIG, PCAPNG_TCP_ACK | PCAPNG_TCP_PSH);
	err |= write_seg(&s->c, &s->ws, 0, T0 + 50, &t, s->resp, 19, 19, NULL);
	t = c4;
	t.seq = 1006 + BIG;
	t.ack = 5020;
	t.flags = PCAPNG_TCP_ACK | PCAPNG_TCP_FIN;
	err |= write_seg(&s->c, &s->ws, 0, T0 + 60, &t, NULL, 0, 0, NULL);
	/* IPv6, snaplen truncation: 100 of 300 bytes */
	err |= write_seg(&s->c, &s->ws, 1, T0 + 70, &c6, s->cut, 100, 300, "cut");
	t = c6;
	t.seq = 307;
	t.flags = PCAPNG_TCP_ACK | PCAPNG_TCP_FIN;
	err |= write_seg(&s->c, &s->ws, 1, UINT64_MAX, &t, NULL, 0, 0, NULL);
	/* split and cut: a 200000-byte IPv6 segment of which 70000 were captured */
	t.seq = 1u << 31;
	t.flags = PCAPNG_TCP_ACK | PCAPNG_TCP_PSH;
	err |= write_seg(&s->c, &s->ws, 1, T0 + 80, &t, s->big, 70000, 200000, NULL);
	return !err && cap_finish(&s->c);
}

static void free_sample(struct sample *s)
{
	cap_free(&s->c);
	free(s->big);
}

static void test_roundtrip(void)
{
	struct pkts got = { 0 };
	struct sample s;
	char err[256] = "x";
	int rc;

	ASSERT_TRUE(write_sample(&s), "write the sample capture");
	EXPECT_EQ(s.ws.n, 8 + 17 + 4, "frames written (1 MiB: 17, 200000 over IPv6: 4)");
	rc = pcapng_parse(s.c.buf, s.c.len, collect_pkt, &got, err, sizeof(err));
	EXPECT_OK(rc, err);
	EXPECT_STREQ(err, "", "no message on success");
	check_pkts(&got, &s.ws);
	free(got.p);
	free_sample(&s);
}

/* Blocks of the other byte order: the file byte-swapped field by field. */
static void swap32_at(uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	v = __builtin_bswap32(v);
	memcpy(p, &v, 4);
}

static void swap16_at(uint8_t *p)
{
	uint8_t t = p[0];

	p[0] = p[1];
	p[1] = t;
}

static void swap_opts(uint8_t *p, uint8_t *end)
{
	while (end - p >= 4) {
		uint16_t code, len;

		memcpy(&code, p, 2);
		memcpy(&len, p + 2, 2);
		swap16_at(p);
		swap16_at(p + 2);
		if (!code)
			return;
		p += 4 + ((len + 3u) & ~3u);
	}
}

static void swap_file(uint8_t *b, size_t len)
{
	size_t off = 0;

	while (off + 12 <= len) {
		uint8_t *p = b + off;
		uint32_t type, total;

		memcpy(&type, p, 4);
		memcpy(&total, p + 4, 4);
		for (int i = 0; i < 2; i++)
			swap32_at(p + (i ? total - 4 : 4));
		swap32_at(p);
		if (type == 0x0A0D0D0A) {
			swap32_at(p + 8);
			swap16_at(p + 12);
			swap16_at(p + 14);
			swap_opts(p + 24, p + total - 4);
		} else if (type == 1) {
			swap16_at(p + 8);
			swap32_at(p + 12);
			swap_opts(p + 16, p + total - 4);
		} else if (type == 6) {
			uint32_t caplen;

			memcpy(&caplen, p + 20, 4);
			for (int i = 8; i < 28; i += 4)
				swap32_at(p + i);
			swap_opts(p + 28 + ((caplen + 3u) & ~3u), p + total - 4);
		}
		off += total;
	}
}

/* The same file in the other byte order, after a block of an unknown type,
 * then again as a second section: the same packets, twice.
 */
static void test_byte_order_sections(void)
{
	static const uint8_t unknown[16] = { 0xad, 0x0b, 0, 0, 16, 0, 0, 0, 1, 2, 3, 4, 16 };
	struct pkts got = { 0 };
	struct wants twice;
	struct sample s;
	uint8_t *b;
	size_t shb_idb, n;
	char err[256];
	int rc;

	ASSERT_TRUE(write_sample(&s), "write the sample capture");
	/* SHB (28 + userappl option 16 + end 4) and two IDBs */
	shb_idb = 48;
	for (int i = 0; i < 2; i++) {
		uint32_t total;

		memcpy(&total, s.c.buf + shb_idb + 4, 4);
		shb_idb += total;
	}
	n = 2 * s.c.len + sizeof(unknown);
	b = malloc(n);
	ASSERT_NOT_NULL(b, "malloc");
	memcpy(b, s.c.buf, s.c.len);
	swap_file(b, s.c.len);
	memcpy(b + s.c.len, s.c.buf, shb_idb);
	memcpy(b + s.c.len + shb_idb, unknown, sizeof(unknown));
	memcpy(b + s.c.len + shb_idb + sizeof(unknown), s.c.buf + shb_idb, s.c.len - shb_idb);
	EXPECT_TRUE(memcmp(b, s.c.buf, 4) == 0 && memcmp(b + 4, s.c.buf + 4, 4) != 0,
		    "the first section is byte-swapped");

	rc = pcapng_parse(b, n, collect_pkt, &got, err, sizeof(err));
	EXPECT_OK(rc, err);
	twice.n = 2 * s.ws.n;
	memcpy(twice.w, s.ws.w, s.ws.n * sizeof(s.ws.w[0]));
	memcpy(twice.w + s.ws.n, s.ws.w, s.ws.n * sizeof(s.ws.w[0]));
	check_pkts(&got, &twice);
	free(got.p);
	free(b);
	free_sample(&s);
}

/* Timestamps in another resolution and offset, and frames that are not
 * Ethernet/IP/TCP, written by hand.
 */
static void test_handmade(void)
{
	/* SHB, IDB with if_tsresol 2^-10 and if_tsoffset 100 s, three EPBs */
	uint8_t f[512] = { 0 }, frame[64] = { 0 };
	struct pkts got = { 0 };
	size_t off = 0;
	char err[256];
	int rc;

#define U32(v) (memcpy(f + off, &(uint32_t){ (v) }, 4), off += 4)
#define U16(v) (memcpy(f + off, &(uint16_t){ (v) }, 2), off += 2)
	U32(0x0A0D0D0A), U32(28), U32(0x1A2B3C4D), U16(1), U16(0), U32(~0u), U32(~0u), U32(28);
	U32(1), U32(40), U16(1), U16(0), U32(0);
	U16(9), U16(1), U32(0x8a); /* 2^-10 */
	U16(14), U16(8), U32(100), U32(0); /* +100 s */
	U32(40);
	/* Ethernet, VLAN tag, IPv4 TCP 1.2.3.4:1 -> 5.6.7.8:2, 3 bytes + 2 of Ethernet padding */
	memcpy(frame + 12, "\x81\x00\x00\x05\x08\x00", 6);
	memcpy(frame + 18,
	       "\x45\x00\x00\x2b\x00\x00\x40\x00\x40\x06\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08",
	       20);
	memcpy(frame + 38,
	       "\x00\x01\x00\x02\x00\x00\x00\x0a\x00\x00\x00\x0b\x50\x18\xff\xff\x00\x00\x00\x00",
	       20);
	memcpy(frame + 58, "abcXY", 5);
	U32(6), U32(32 + 64), U32(0), U32(0), U32(2048 + 512), U32(63), U32(63);
	memcpy(f + off, frame, 64), off += 64;
	U32(32 + 64);
	/* ARP: skipped */
	frame[16] = 0x08, frame[17] = 0x06;
	U32(6), U32(32 + 64), U32(0), U32(0), U32(0), U32(64), U32(64);
	memcpy(f + off, frame, 64), off += 64;
	U32(32 + 64);
	/* an IPv4 fragment: skipped */
	frame[17] = 0x00, frame[24] = 0x20;
	U32(6), U32(32 + 64), U32(0), U32(0), U32(0), U32(64), U32(64);
	memcpy(f + off, frame, 64), off += 64;
	U32(32 + 64);
#undef U32
#undef U16
	rc = pcapng_parse(f, off, collect_pkt, &got, err, sizeof(err));
	EXPECT_OK(rc, err);
	ASSERT_EQ(got.n, 1, "one TCP frame");
	EXPECT_EQ(got.p[0].ts_ns, 100000000000ull + 2500000000ull, "2560/1024 s + 100 s");
	EXPECT_EQ(got.p[0].tcp.family, AF_INET, "family");
	EXPECT_MEMEQ(got.p[0].tcp.src, "\x01\x02\x03\x04", 4, "src");
	EXPECT_EQ(got.p[0].tcp.sport, 1, "sport");
	EXPECT_EQ(got.p[0].tcp.dport, 2, "dport");
	EXPECT_EQ(got.p[0].tcp.seq, 10, "seq");
	EXPECT_EQ(got.p[0].tcp.ack, 11, "ack");
	EXPECT_EQ(got.p[0].tcp.flags, 0x18, "flags");
	EXPECT_EQ(got.p[0].len, 3, "payload per the IP length, not the Ethernet padding");
	EXPECT_EQ(got.p[0].caplen, 3, "caplen");
	EXPECT_MEMEQ(got.p[0].payload, "abc", 3, "payload");
	EXPECT_NULL(got.p[0].comment, "no comment");
	free(got.p);
}

static int stop_at_second(const struct pcapng_pkt *p, void *ctx)
{
	int *n = ctx;

	(void)p;
	return ++*n == 2 ? 42 : 0;
}

/* a small valid file (SHB, IDB, one EPB) to break */
static size_t small_file(uint8_t **out, size_t *epb)
{
	struct pcapng_tcp t = tcp("10.0.0.1", 1, "10.0.0.2", 2, 1, 1, PCAPNG_TCP_ACK);
	struct cap c;
	size_t len;

	*out = NULL;
	if (!cap_open(&c) || pcapng_add_interface(&c.w, "i", NULL, 0) ||
	    pcapng_write_tcp(&c.w, 0, T0, &t, "data", 4, 4, "c") ||
	    pcapng_write_tcp(&c.w, 0, T0, &t, "more", 4, 4, NULL) || !cap_finish(&c)) {
		cap_free(&c);
		return 0;
	}
	/* SHB 48 (userappl "test_pcapng"), IDB 20 + if_name 8 + tsresol 8 + end 4 */
	*epb = 48 + 40;
	*out = c.buf;
	len = c.len;
	c.buf = NULL;
	cap_free(&c);
	return len;
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void test_bad_input(void)
{
	uint8_t *good, *b;
	size_t len, epb, epb2;
	uint32_t total, total2;
	char err[256], want[256];
	int n = 0;

	len = small_file(&good, &epb);
	ASSERT_TRUE(len > 0, "small file");
	b = malloc(len);
	ASSERT_NOT_NULL(b, "malloc");
	memcpy(&total, good + epb + 4, 4);
	epb2 = epb + total;
	memcpy(&total2, good + epb2 + 4, 4);
	ASSERT_EQ(epb2 + 28 + 58 + 2 + 4, len, "layout of the small file");
	EXPECT_EQ(pcapng_parse(good, len, stop_at_second, &n, err, sizeof(err)), 42,
		  "a callback's non-zero value stops the parse");
	EXPECT_EQ(n, 2, "stopped at the second packet");

#define BAD(buf, l, msg)                                                                      \
	do {                                                                                  \
		EXPECT_ERR(pcapng_parse(buf, l, NULL, NULL, err, sizeof(err)), -EINVAL, msg); \
		EXPECT_STREQ(err, msg, msg);                                                  \
	} while (0)

	BAD(good, 0, "pcapng: block at offset 0: the file is empty: no Section Header Block");
	/* truncated in the middle of the second EPB, and in its header */
	snprintf(
		want, sizeof(want),
		"pcapng: block at offset %zu: total length %u runs past the end of the file (%zu bytes left)",
		epb2, total2, (size_t)40);
	BAD(good, epb2 + 40, want);
	snprintf(
		want, sizeof(want),
		"pcapng: block at offset %zu: truncated block: 7 bytes left, a block takes 12 or more",
		epb2);
	BAD(good, epb2 + 7, want);
	/* total lengths */
	memcpy(b, good, len);
	put32(b + epb + 4, 7);
	snprintf(want, sizeof(want),
		 "pcapng: block at offset %zu: total length 7 is not a multiple of 4", epb);
	BAD(b, len, want);
	put32(b + epb + 4, 8);
	snprintf(want, sizeof(want), "pcapng: block at offset %zu: total length 8 is less than 12",
		 epb);
	BAD(b, len, want);
	put32(b + epb + 4, 0xfffffffc);
	snprintf(
		want, sizeof(want),
		"pcapng: block at offset %zu: total length 4294967292 runs past the end of the file (%zu bytes left)",
		epb, len - epb);
	BAD(b, len, want);
	memcpy(b, good, len);
	put32(b + epb2 - 4, total + 4);
	snprintf(want, sizeof(want),
		 "pcapng: block at offset %zu: trailing total length %u differs from %u", epb,
		 total + 4, total);
	BAD(b, len, want);
	/* magic */
	memcpy(b, good, len);
	put32(b + 8, 0x4d3c2b1b);
	BAD(b, len, "pcapng: block at offset 0: byte-order magic 0x4d3c2b1b is not 0x1a2b3c4d");
	memcpy(b, good, len);
	b[0] = 0xd4;
	BAD(b, len,
	    "pcapng: block at offset 0: not a pcapng file: block type 0x0a0d0dd4 is not a Section Header Block");
	memcpy(b, good, len);
	b[12] = 2;
	BAD(b, len, "pcapng: block at offset 0: pcapng version 2.0 is not 1.x");
	/* lengths inside blocks */
	memcpy(b, good, len);
	put32(b + epb + 20, 0xffffffff);
	snprintf(
		want, sizeof(want),
		"pcapng: block at offset %zu: captured length 4294967295 runs past the block (%u bytes of room)",
		epb, total - 32);
	BAD(b, len, want);
	memcpy(b, good, len);
	b[epb + 28 + 60 + 2] = 0xf0; /* opt_comment's length: 0x00f0 -> beyond the block */
	snprintf(
		want, sizeof(want),
		"pcapng: block at offset %zu: option 1 at offset %zu: length 240 runs past the block",
		epb, epb + 28 + 60);
	BAD(b, len, want);
	memcpy(b, good, len);
	put32(b + epb + 8, 1);
	snprintf(want, sizeof(want),
		 "pcapng: block at offset %zu: interface 1 is not described (the section has 1)",
		 epb);
	BAD(b, len, want);
	memcpy(b, good, len);
	b[48 + 8] = 101; /* LINKTYPE_RAW */
	BAD(b, len, "pcapng: block at offset 48: interface 0: link type 101 is not Ethernet (1)");
	memcpy(b, good, len);
	b[48 + 16 + 8 + 2] = 2; /* if_tsresol's length (after if_name "i") */
	BAD(b, len, "pcapng: block at offset 48: if_tsresol of 2 bytes, want 1");
#undef BAD
	/* a tiny errbuf is cut, never overrun; NULL is allowed */
	memcpy(b, good, len);
	put32(b + epb + 4, 7);
	memset(err, 'x', sizeof(err));
	EXPECT_ERR(pcapng_parse(b, len, NULL, NULL, err, 10), -EINVAL, "tiny errbuf");
	EXPECT_STREQ(err, "pcapng: b", "cut");
	EXPECT_EQ(err[10], 'x', "nothing past errlen");
	EXPECT_ERR(pcapng_parse(b, len, NULL, NULL, NULL, 0), -EINVAL, "no errbuf");
	free(b);
	free(good);
}

static void test_writer_errors(void)
{
	struct pcapng_tcp t = tcp("10.0.0.1", 1, "10.0.0.2", 2, 1, 1, PCAPNG_TCP_ACK);
	static char long_text[70000];
	static uint8_t chunk[60000];
	struct pcapng_writer w;
	struct pkts got = { 0 };
	struct cap c;
	int fds[2], rc = 0;
	char err[256];
	FILE *f;

	memset(long_text, 'a', sizeof(long_text) - 1);
	ASSERT_TRUE(cap_open(&c), "tmpfile");
	EXPECT_ERR(pcapng_write_tcp(&c.w, 0, T0, &t, "x", 1, 1, NULL), -EINVAL, "no interface yet");
	EXPECT_EQ(pcapng_add_interface(&c.w, NULL, NULL, 0), 0, "interface 0");
	EXPECT_ERR(pcapng_add_interface(&c.w, long_text, NULL, 0), -EINVAL, "name too long");
	EXPECT_ERR(pcapng_write_tcp(&c.w, 1, T0, &t, "x", 1, 1, NULL), -EINVAL, "interface 1");
	EXPECT_ERR(pcapng_write_tcp(&c.w, 0, T0, &t, "xy", 2, 1, NULL), -EINVAL, "caplen > len");
	EXPECT_ERR(pcapng_write_tcp(&c.w, 0, T0, &t, NULL, 1, 1, NULL), -EINVAL, "no payload");
	EXPECT_ERR(pcapng_write_tcp(&c.w, 0, T0, &t, "x", 1, 1, long_text), -EINVAL,
		   "comment too long");
	t.family = AF_UNIX;
	EXPECT_ERR(pcapng_write_tcp(&c.w, 0, T0, &t, "x", 1, 1, NULL), -EINVAL, "family");
	/* none of it wrote anything; an empty comment is none */
	t.family = AF_INET;
	EXPECT_OK(pcapng_write_tcp(&c.w, 0, T0, &t, "x", 1, 1, ""), "empty comment");
	EXPECT_TRUE(cap_finish(&c), "finish");
	EXPECT_OK(pcapng_parse(c.buf, c.len, collect_pkt, &got, err, sizeof(err)), err);
	ASSERT_EQ(got.n, 1, "one packet");
	EXPECT_NULL(got.p[0].comment, "no comment");
	free(got.p);
	cap_free(&c);
	EXPECT_ERR(pcapng_writer_open(&w, stdout, long_text), -EINVAL, "appname too long");

	/* the reader of a pipe goes away: -EPIPE, sticky, no SIGPIPE */
	signal(SIGPIPE, SIG_IGN);
	ASSERT_OK(pipe(fds), "pipe");
	close(fds[0]);
	f = fdopen(fds[1], "w");
	ASSERT_NOT_NULL(f, "fdopen");
	pcapng_writer_open(&w, f, "x");
	pcapng_add_interface(&w, "i", NULL, 0);
	for (int i = 0; i < 8 && !rc; i++)
		rc = pcapng_write_tcp(&w, 0, T0, &t, chunk, sizeof(chunk), sizeof(chunk), NULL);
	if (!rc)
		rc = pcapng_writer_flush(&w);
	EXPECT_ERR(rc, -EPIPE, "write to a closed pipe");
	EXPECT_ERR(pcapng_writer_flush(&w), -EPIPE, "sticky");
	EXPECT_ERR(pcapng_write_tcp(&w, 0, T0, &t, "x", 1, 1, NULL), -EPIPE, "sticky");
	EXPECT_ERR(pcapng_add_interface(&w, "j", NULL, 0), -EPIPE, "sticky");
	fclose(f);
	signal(SIGPIPE, SIG_DFL);
}

/* ---- reassembly ------------------------------------------------------------ */

struct got_conn {
	struct sm_replay_conn c;
	uint8_t *data; /* the chunks, joined */
};

struct got_conns {
	struct got_conn v[16];
	size_t n;
};

static int collect_conn(const struct sm_replay_conn *c, void *ctx)
{
	struct got_conns *g = ctx;
	struct got_conn *o;
	size_t off = 0;

	if (g->n == ARRAY_SIZE(g->v))
		return -E2BIG;
	o = &g->v[g->n++];
	o->c = *c;
	o->c.chunks = NULL;
	o->data = malloc(c->sent + 1);
	if (!o->data)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_chunks; i++) {
		memcpy(o->data + off, c->chunks[i].data, c->chunks[i].len);
		off += c->chunks[i].len;
	}
	return off == c->sent ? 0 : -EPROTO;
}

static void free_conns(struct got_conns *g)
{
	for (size_t i = 0; i < g->n; i++)
		free(g->v[i].data);
	g->n = 0;
}

/* capture time between the packets of write_two() */
#define STEP 10000000ull

/* Two connections, interleaved in the file: each has a SYN, its data in
 * three segments written out of order plus a duplicate (or an overlap),
 * and a FIN. The IPv6 one's sequence numbers wrap.
 */
static uint8_t s1[3000], s2[2000];

static bool write_two(struct cap *c)
{
	struct pcapng_tcp a = tcp("10.0.0.1", 43210, "10.96.0.10", 80, 1000, 0, PCAPNG_TCP_SYN);
	struct pcapng_tcp b =
		tcp("fd00::1", 40000, "fd00::2", 8080, 0xfffffc00u, 0, PCAPNG_TCP_SYN);
	const uint8_t ack = PCAPNG_TCP_ACK, pa = PCAPNG_TCP_ACK | PCAPNG_TCP_PSH;
	struct pcapng_tcp t;
	int err = 0;

	fill(s1, sizeof(s1), 11);
	fill(s2, sizeof(s2), 12);
	if (!cap_open(c) || pcapng_add_interface(&c->w, "tap", NULL, 0))
		return false;
#define SEG(base, ts, off, data, n, fl)                                                   \
	(t = (base), t.seq = (base).seq + 1 + (uint32_t)(off), t.ack = 1, t.flags = (fl), \
	 err |= pcapng_write_tcp(&c->w, 0, (ts), &t, (data), (n), (n), NULL))
	err |= pcapng_write_tcp(&c->w, 0, T0, &a, NULL, 0, 0, NULL);
	t = reverse(&a, 7, 1001, PCAPNG_TCP_SYN | ack);
	err |= pcapng_write_tcp(&c->w, 0, T0 + 1 * STEP, &t, NULL, 0, 0, NULL);
	err |= pcapng_write_tcp(&c->w, 0, T0 + 2 * STEP, &b, NULL, 0, 0, NULL);
	SEG(a, T0 + 3 * STEP, 1000, s1 + 1000, 1000, ack);
	SEG(b, T0 + 3 * STEP, 500, s2 + 500, 1000, ack);
	SEG(a, T0 + 4 * STEP, 0, s1, 1000, ack);
	SEG(b, T0 + 4 * STEP, 1500, s2 + 1500, 500, ack);
	SEG(a, T0 + 5 * STEP, 2000, s1 + 2000, 1000, pa);
	SEG(b, T0 + 5 * STEP, 300, s2 + 300, 500, ack); /* overlaps both sides of 500 */
	SEG(a, T0 + 6 * STEP, 0, s1, 1000, ack); /* duplicate */
	SEG(b, T0 + 6 * STEP, 0, s2, 500, pa);
	t = reverse(&a, 8, 4001, pa);
	err |= pcapng_write_tcp(&c->w, 0, T0 + 7 * STEP, &t, "response", 8, 8, NULL);
	SEG(a, T0 + 8 * STEP, 3000, NULL, 0, ack | PCAPNG_TCP_FIN);
	SEG(b, T0 + 8 * STEP, 2000, NULL, 0, ack | PCAPNG_TCP_FIN);
#undef SEG
	return !err && cap_finish(c);
}

/* Three connections with bytes missing: a segment not captured; one cut by
 * the snaplen in the middle of the stream; one cut at its end.
 */
static bool write_gaps(struct cap *c)
{
	struct pcapng_tcp t = tcp("10.0.0.1", 1001, "10.0.0.2", 80, 0, 1, PCAPNG_TCP_ACK);
	int err = 0;

	fill(s1, sizeof(s1), 11);
	if (!cap_open(c) || pcapng_add_interface(&c->w, "tap", NULL, 0))
		return false;
	/* no SYN: the stream starts at the first byte seen */
	t.seq = 5000;
	err |= pcapng_write_tcp(&c->w, 0, T0, &t, s1, 1000, 1000, NULL);
	t.seq = 7000;
	err |= pcapng_write_tcp(&c->w, 0, T0 + 1, &t, s1 + 2000, 1000, 1000, NULL);
	t.seq = 8000;
	t.flags |= PCAPNG_TCP_FIN;
	err |= pcapng_write_tcp(&c->w, 0, T0 + 2, &t, NULL, 0, 0, NULL);

	t = tcp("10.0.0.1", 1002, "10.0.0.2", 80, 0, 1, PCAPNG_TCP_ACK);
	err |= pcapng_write_tcp(&c->w, 0, T0 + 3, &t, s1, 600, 1000, NULL);
	t.seq = 1000;
	err |= pcapng_write_tcp(&c->w, 0, T0 + 4, &t, s1 + 1000, 500, 500, NULL);

	t = tcp("10.0.0.1", 1003, "10.0.0.2", 80, 0, 1, PCAPNG_TCP_ACK);
	err |= pcapng_write_tcp(&c->w, 0, T0 + 5, &t, s1, 500, 500, NULL);
	t.seq = 500;
	err |= pcapng_write_tcp(&c->w, 0, T0 + 6, &t, s1 + 500, 100, 300, NULL);
	return !err && cap_finish(c);
}

static void test_collect(void)
{
	struct got_conns g = { 0 };
	char err[256] = "";
	struct cap c;
	int rc;

	ASSERT_TRUE(write_two(&c), "write");
	rc = sm_replay_collect(c.buf, c.len, collect_conn, &g, err, sizeof(err));
	EXPECT_EQ(rc, 2, err);
	ASSERT_EQ(g.n, 2, "connections");
	EXPECT_EQ(g.v[0].c.id, 1, "id");
	EXPECT_EQ(g.v[0].c.family, AF_INET, "family");
	EXPECT_MEMEQ(g.v[0].c.client, "\x0a\x00\x00\x01", 4, "client");
	EXPECT_MEMEQ(g.v[0].c.server, "\x0a\x60\x00\x0a", 4, "server");
	EXPECT_EQ(g.v[0].c.client_port, 43210, "client port");
	EXPECT_EQ(g.v[0].c.server_port, 80, "server port");
	EXPECT_TRUE(g.v[0].c.syn_seen, "SYN");
	EXPECT_EQ(g.v[0].c.open_ns, T0, "open");
	EXPECT_EQ(g.v[0].c.sent, sizeof(s1), "sent");
	EXPECT_EQ(g.v[0].c.gap_len, 0, "no gap");
	EXPECT_EQ(g.v[0].c.n_chunks, 3, "one chunk per segment, the duplicate dropped");
	EXPECT_MEMEQ(g.v[0].data, s1, sizeof(s1), "stream 1");
	EXPECT_EQ(g.v[1].c.id, 2, "id");
	EXPECT_EQ(g.v[1].c.family, AF_INET6, "family");
	EXPECT_EQ(g.v[1].c.client_port, 40000, "client port");
	EXPECT_EQ(g.v[1].c.open_ns, T0 + 2 * STEP, "open");
	EXPECT_EQ(g.v[1].c.sent, sizeof(s2), "sent across the sequence number wrap");
	EXPECT_MEMEQ(g.v[1].data, s2, sizeof(s2), "stream 2");
	free_conns(&g);
	cap_free(&c);

	ASSERT_TRUE(write_gaps(&c), "write");
	rc = sm_replay_collect(c.buf, c.len, collect_conn, &g, err, sizeof(err));
	EXPECT_EQ(rc, 3, err);
	ASSERT_EQ(g.n, 3, "connections");
	EXPECT_FALSE(g.v[0].c.syn_seen, "no SYN");
	EXPECT_EQ(g.v[0].c.client_port, 1001, "the higher port is the client");
	EXPECT_EQ(g.v[0].c.sent, 1000, "up to the gap");
	EXPECT_EQ(g.v[0].c.gap_at, 1000, "gap at");
	EXPECT_EQ(g.v[0].c.gap_len, 1000, "gap");
	EXPECT_EQ(g.v[0].c.lost, 2000, "lost, to the FIN");
	EXPECT_MEMEQ(g.v[0].data, s1, 1000, "bytes before the gap");
	EXPECT_EQ(g.v[1].c.sent, 600, "up to the snaplen cut");
	EXPECT_EQ(g.v[1].c.gap_len, 400, "the cut part");
	EXPECT_EQ(g.v[1].c.lost, 900, "lost");
	EXPECT_MEMEQ(g.v[1].data, s1, 600, "bytes before the cut");
	EXPECT_EQ(g.v[2].c.sent, 600, "cut at the end");
	EXPECT_EQ(g.v[2].c.gap_at, 600, "gap at");
	EXPECT_EQ(g.v[2].c.gap_len, 200, "gap");
	EXPECT_EQ(g.v[2].c.lost, 200, "lost");
	EXPECT_MEMEQ(g.v[2].data, s1, 600, "bytes before the cut");
	free_conns(&g);
	cap_free(&c);
}

/* A tuple used again (a new SYN) is a new connection; a repeated SYN, the
 * server's packets first and a SYN+ACK alone are not.
 */
static void test_collect_tuples(void)
{
	struct pcapng_tcp syn = tcp("10.0.0.1", 80, "10.0.0.2", 9000, 100, 0, PCAPNG_TCP_SYN), t;
	struct got_conns g = { 0 };
	char err[256] = "";
	struct cap c;
	int rc, e = 0;

	ASSERT_TRUE(cap_open(&c) && pcapng_add_interface(&c.w, "tap", NULL, 0) == 0, "open");
	/* the client has the lower port here: the SYN says who it is */
	e |= pcapng_write_tcp(&c.w, 0, T0, &syn, NULL, 0, 0, NULL);
	e |= pcapng_write_tcp(&c.w, 0, T0 + 1, &syn, NULL, 0, 0, NULL);
	t = reverse(&syn, 1, 101, PCAPNG_TCP_ACK);
	e |= pcapng_write_tcp(&c.w, 0, T0 + 2, &t, "srv", 3, 3, NULL);
	t = syn;
	t.seq = 101;
	t.flags = PCAPNG_TCP_ACK | PCAPNG_TCP_FIN;
	e |= pcapng_write_tcp(&c.w, 0, T0 + 3, &t, "one", 3, 3, NULL);
	syn.seq = 5000;
	e |= pcapng_write_tcp(&c.w, 0, T0 + 4, &syn, NULL, 0, 0, NULL);
	t.seq = 5001;
	e |= pcapng_write_tcp(&c.w, 0, T0 + 5, &t, "two", 3, 3, NULL);
	/* only a SYN+ACK: its receiver is the client, whatever the ports */
	t = tcp("10.0.0.9", 80, "10.0.0.8", 9000, 1, 1, PCAPNG_TCP_SYN | PCAPNG_TCP_ACK);
	e |= pcapng_write_tcp(&c.w, 0, T0 + 6, &t, NULL, 0, 0, NULL);
	t = reverse(&t, 1, 2, PCAPNG_TCP_ACK);
	e |= pcapng_write_tcp(&c.w, 0, T0 + 7, &t, "three", 5, 5, NULL);
	ASSERT_TRUE(!e && cap_finish(&c), "write");
	rc = sm_replay_collect(c.buf, c.len, collect_conn, &g, err, sizeof(err));
	EXPECT_EQ(rc, 3, err);
	ASSERT_EQ(g.n, 3, "connections");
	EXPECT_EQ(g.v[0].c.client_port, 80, "client of the first");
	EXPECT_EQ(g.v[0].c.sent, 3, "first");
	EXPECT_MEMEQ(g.v[0].data, "one", 3, "first");
	EXPECT_EQ(g.v[1].c.client_port, 80, "client of the second");
	EXPECT_EQ(g.v[1].c.open_ns, T0 + 4, "the second opens at its SYN");
	EXPECT_MEMEQ(g.v[1].data, "two", 3, "second");
	EXPECT_EQ(g.v[2].c.client_port, 9000, "client of the third");
	EXPECT_TRUE(g.v[2].c.syn_seen, "SYN+ACK seen");
	EXPECT_MEMEQ(g.v[2].data, "three", 5, "third");
	free_conns(&g);
	/* a bad file: the parser's message */
	c.buf[0] = 0;
	EXPECT_ERR(sm_replay_collect(c.buf, c.len, collect_conn, &g, err, sizeof(err)), -EINVAL,
		   "bad file");
	EXPECT_STREQ(
		err,
		"pcapng: block at offset 0: not a pcapng file: block type 0x0a0d0d00 is not a Section Header Block",
		"message");
	cap_free(&c);
}

/* ---- replay to a listener ---------------------------------------------------- */

struct server {
	int lfd;
	int n; /* connections to take */
	struct {
		uint8_t *data;
		size_t len;
	} got[8];
	int n_got;
};

static void *serve(void *arg)
{
	struct server *s = arg;

	for (int i = 0; i < s->n; i++) {
		struct timeval tv = { .tv_sec = 10 };
		size_t cap = 65536;
		int fd;

		setsockopt(s->lfd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		fd = accept(s->lfd, NULL, NULL);
		if (fd < 0)
			break;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		s->got[i].data = malloc(cap);
		for (;;) {
			ssize_t n;

			if (s->got[i].len == cap) {
				cap *= 2;
				s->got[i].data = realloc(s->got[i].data, cap);
			}
			if (!s->got[i].data)
				break;
			n = read(fd, s->got[i].data + s->got[i].len, cap - s->got[i].len);
			if (n <= 0)
				break;
			s->got[i].len += (size_t)n;
		}
		if (write(fd, "HTTP/1.1 200 OK\r\n\r\n", 19) < 0)
			perror("serve: write");
		close(fd);
		s->n_got++;
	}
	return NULL;
}

static bool start_server(struct server *s, int n, struct sockaddr_in *sin, pthread_t *th)
{
	socklen_t sl = sizeof(*sin);

	memset(s, 0, sizeof(*s));
	s->n = n;
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->lfd < 0 || bind(s->lfd, (struct sockaddr *)sin, sizeof(*sin)) ||
	    listen(s->lfd, 16) || getsockname(s->lfd, (struct sockaddr *)sin, &sl))
		return false;
	return pthread_create(th, NULL, serve, s) == 0;
}

static void stop_server(struct server *s, pthread_t th)
{
	pthread_join(th, NULL);
	close(s->lfd);
}

static void free_server(struct server *s)
{
	for (int i = 0; i < s->n; i++)
		free(s->got[i].data);
}

static char *replay_log(const struct cap *c, const struct sockaddr_in *to, double speed, int *rc,
			char *err, size_t errlen)
{
	struct sm_replay_opts o = { .speed = speed };
	char *log = NULL;
	size_t loglen = 0;

	o.log = open_memstream(&log, &loglen);
	if (!o.log)
		return NULL;
	*rc = sm_replay(c->buf, c->len, (const struct sockaddr *)to, sizeof(*to), &o, err, errlen);
	fclose(o.log);
	return log;
}

static void test_replay(void)
{
	struct sockaddr_in to;
	struct server srv;
	char err[256] = "", *log;
	struct cap c;
	pthread_t th;
	int rc = -1;

	ASSERT_TRUE(write_two(&c), "write");
	ASSERT_TRUE(start_server(&srv, 2, &to, &th), "listen on 127.0.0.1");
	log = replay_log(&c, &to, 0, &rc, err, sizeof(err));
	stop_server(&srv, th);
	EXPECT_EQ(rc, 2, err);
	EXPECT_EQ(srv.n_got, 2, "connections accepted");
	EXPECT_EQ(srv.got[0].len, sizeof(s1), "bytes of the first");
	EXPECT_MEMEQ(srv.got[0].data, s1, sizeof(s1), "the first connection's stream");
	EXPECT_EQ(srv.got[1].len, sizeof(s2), "bytes of the second");
	EXPECT_MEMEQ(srv.got[1].data, s2, sizeof(s2), "the second connection's stream");
	EXPECT_STREQ(log,
		     "replay: conn 1 10.0.0.1:43210 -> 10.96.0.10:80: sent 3000 bytes\n"
		     "replay: conn 2 [fd00::1]:40000 -> [fd00::2]:8080: sent 2000 bytes\n",
		     "log");
	free(log);
	free_server(&srv);
	cap_free(&c);

	ASSERT_TRUE(write_gaps(&c), "write");
	ASSERT_TRUE(start_server(&srv, 3, &to, &th), "listen on 127.0.0.1");
	log = replay_log(&c, &to, 0, &rc, err, sizeof(err));
	stop_server(&srv, th);
	EXPECT_EQ(rc, 3, err);
	EXPECT_EQ(srv.got[0].len, 1000, "sent up to the gap");
	EXPECT_MEMEQ(srv.got[0].data, s1, 1000, "bytes before the gap");
	EXPECT_EQ(srv.got[1].len, 600, "sent up to the cut");
	EXPECT_MEMEQ(srv.got[1].data, s1, 600, "bytes before the cut");
	EXPECT_EQ(srv.got[2].len, 600, "sent up to the cut");
	EXPECT_STREQ(
		log,
		"replay: conn 1 10.0.0.1:1001 -> 10.0.0.2:80: sent 1000 bytes (gap after 1000: 1000 bytes not captured; 1000 more bytes after it not sent)\n"
		"replay: conn 2 10.0.0.1:1002 -> 10.0.0.2:80: sent 600 bytes (gap after 600: 400 bytes not captured; 500 more bytes after it not sent)\n"
		"replay: conn 3 10.0.0.1:1003 -> 10.0.0.2:80: sent 600 bytes (gap after 600: 200 bytes not captured)\n",
		"log");
	free(log);
	free_server(&srv);
	cap_free(&c);
}

/* speed 2: the 60 ms from the first SYN to the last data sent take 30 ms
 * or more; nothing listens afterwards: connect fails, named
 */
static void test_replay_timing_and_errors(void)
{
	struct sm_replay_opts o = { .speed = -1 };
	struct timespec a, b;
	struct sockaddr_in to;
	struct server srv;
	char err[256] = "", *log;
	struct cap c;
	pthread_t th;
	double ms;
	int rc = -1;

	ASSERT_TRUE(write_two(&c), "write");
	ASSERT_TRUE(start_server(&srv, 2, &to, &th), "listen on 127.0.0.1");
	clock_gettime(CLOCK_MONOTONIC, &a);
	log = replay_log(&c, &to, 2.0, &rc, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &b);
	stop_server(&srv, th);
	ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
	EXPECT_EQ(rc, 2, err);
	EXPECT_TRUE(ms >= 29.9, "paced");
	EXPECT_MEMEQ(srv.got[0].data, s1, sizeof(s1), "stream 1");
	EXPECT_MEMEQ(srv.got[1].data, s2, sizeof(s2), "stream 2");
	free(log);
	free_server(&srv);

	/* the listener is closed now */
	log = replay_log(&c, &to, 0, &rc, err, sizeof(err));
	EXPECT_ERR(rc, -ECONNREFUSED, "nothing listens");
	EXPECT_TRUE(strstr(err, "replay: conn 1 10.0.0.1:43210 -> 10.96.0.10:80: connect: ") == err,
		    err);
	free(log);
	EXPECT_ERR(
		sm_replay(c.buf, c.len, (struct sockaddr *)&to, sizeof(to), &o, err, sizeof(err)),
		-EINVAL, "negative speed");
	EXPECT_STREQ(err, "replay: speed -1 is not a finite number >= 0", "message");
	cap_free(&c);
}

/* ---- tshark -------------------------------------------------------------------- */

static bool have_tshark(void)
{
	return system("command -v tshark >/dev/null 2>&1") == 0;
}

static int hexval(int ch)
{
	return ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* tshark's "follow,tcp,raw" of stream 0: node 0's bytes (lines at the left
 * margin) and node 1's (lines after a tab), decoded
 */
static void test_tshark(void)
{
	uint8_t *node[2] = { NULL, NULL };
	size_t n[2] = { 0, 0 }, linecap = 0;
	bool started = false;
	char cmd[256], *line = NULL;
	struct sample s;
	FILE *p;
	int st;

	if (!have_tshark()) {
		printf("\n  note: tshark is not on PATH: the tshark check is skipped\n");
		return;
	}
	ASSERT_TRUE(write_sample(&s), "write the sample capture");
	node[0] = malloc(2 * BIG);
	node[1] = malloc(2 * BIG);
	ASSERT_TRUE(node[0] && node[1], "malloc");
	snprintf(cmd, sizeof(cmd), "tshark -r '%s' -q -z follow,tcp,raw,0 2>/dev/null", s.c.path);
	p = popen(cmd, "r");
	ASSERT_NOT_NULL(p, cmd);
	while (getline(&line, &linecap, p) > 0) {
		int side = line[0] == '\t';
		const char *h = line + side;

		if (!strncmp(line, "Node 1:", 7)) {
			started = true;
			continue;
		}
		if (!started || line[0] == '=')
			continue;
		for (; hexval(h[0]) >= 0 && hexval(h[1]) >= 0 && n[side] < 2 * BIG; h += 2)
			node[side][n[side]++] = (uint8_t)(hexval(h[0]) << 4 | hexval(h[1]));
	}
	free(line);
	st = pclose(p);
	EXPECT_EQ(st, 0, "tshark's exit status");
	EXPECT_EQ(n[0], 5 + BIG, "client bytes tshark follows");
	EXPECT_MEMEQ(node[0], s.hello, 5, "client bytes: hello");
	if (n[0] == 5 + BIG)
		EXPECT_MEMEQ(node[0] + 5, s.big, BIG, "client bytes: the 1 MiB segment");
	EXPECT_EQ(n[1], sizeof(s.resp), "server bytes tshark follows");
	EXPECT_MEMEQ(node[1], s.resp, sizeof(s.resp), "server bytes");
	free(node[0]);
	free(node[1]);
	free_sample(&s);
}

static CU_TestInfo pcapng_tests[] = {
	{ "write and read back: IPv4, IPv6, split, cut, comments", test_roundtrip },
	{ "both byte orders, unknown blocks, several sections", test_byte_order_sections },
	{ "timestamp resolution and offset, frames skipped", test_handmade },
	{ "broken files refused with the offset", test_bad_input },
	{ "writer refusals and a sticky EPIPE", test_writer_errors },
	{ "tshark reads the file", test_tshark },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo replay_tests[] = {
	{ "streams reassembled: order, duplicates, gaps", test_collect },
	{ "connections told apart and their clients found", test_collect_tuples },
	{ "streams replayed to a listener", test_replay },
	{ "pacing and errors", test_replay_timing_and_errors },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "pcapng", NULL, NULL, NULL, NULL, pcapng_tests },
	{ "replay", NULL, NULL, NULL, NULL, replay_tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return sm_cunit_run(suites);
}
