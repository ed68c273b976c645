/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * libFuzzer target for the pcapng reader and the replay's reassembly
 * (user/common/pcapng.c, replay.c), without the network: the input is a
 * pcapng file. Besides the sanitizers, every result is checked: each packet
 * handed out points inside the input, a refused file says where
 * ("pcapng: block at offset N: ..."), the first packets written again with
 * the writer read back the same, and each reassembled stream lies inside
 * the input, adds up to what it claims and reports its gap consistently.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pcapng.h"
#include "replay.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* packets per input written again and read back (the rest only checked) */
#define ROUNDTRIP_MAX 4

static void __attribute__((noreturn)) fail(const char *what, const char *detail)
{
	fprintf(stderr, "fuzz_pcapng: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
	abort();
}

struct in {
	const uint8_t *buf;
	size_t len;
	unsigned int n, roundtrips;
};

static bool inside(const struct in *in, const void *p, size_t n)
{
	const uint8_t *b = p;

	return b >= in->buf && b <= in->buf + in->len && n <= (size_t)(in->buf + in->len - b);
}

struct one {
	const struct pcapng_pkt *want;
	unsigned int n;
};

static int check_back(const struct pcapng_pkt *p, void *ctx)
{
	struct one *o = ctx;
	const struct pcapng_pkt *w = o->want;
	size_t alen = w->tcp.family == AF_INET ? 4 : 16;
	bool want_comment = w->comment_len > 0; /* an empty one is written as none */

	if (o->n++)
		fail("written again: more than one frame", NULL);
	if (p->if_id != 0 || p->ts_ns != w->ts_ns || p->tcp.family != w->tcp.family ||
	    memcmp(p->tcp.src, w->tcp.src, alen) || memcmp(p->tcp.dst, w->tcp.dst, alen) ||
	    p->tcp.sport != w->tcp.sport || p->tcp.dport != w->tcp.dport ||
	    p->tcp.seq != w->tcp.seq || p->tcp.ack != w->tcp.ack || p->tcp.flags != w->tcp.flags)
		fail("written again: headers differ", NULL);
	if (p->len != w->len || p->caplen != w->caplen || memcmp(p->payload, w->payload, w->caplen))
		fail("written again: payload differs", NULL);
	if (want_comment != (p->comment != NULL) ||
	    (want_comment &&
	     (p->comment_len != w->comment_len || memcmp(p->comment, w->comment, w->comment_len))))
		fail("written again: comment differs", NULL);
	return 0;
}

/* p through the writer (to memory) and the reader again */
static void roundtrip(const struct pcapng_pkt *p)
{
	struct pcapng_writer w;
	struct one o = { .want = p };
	char *comment = NULL, *buf = NULL, err[256];
	size_t len = 0;
	FILE *f;
	int rc;

	if (p->comment) {
		if (memchr(p->comment, '\0', p->comment_len))
			return; /* a C string cannot carry it */
		comment = strndup(p->comment, p->comment_len);
		if (!comment)
			return;
	}
	f = open_memstream(&buf, &len);
	if (!f) {
		free(comment);
		return;
	}
	if (pcapng_writer_open(&w, f, "fuzz") || pcapng_add_interface(&w, "i", NULL, 0) != 0)
		fail("writer refused to start", NULL);
	rc = pcapng_write_tcp(&w, 0, p->ts_ns, &p->tcp, p->payload, p->caplen, p->len, comment);
	if (rc)
		fail("writer refused a packet the reader gave", strerror(-rc));
	if (pcapng_writer_flush(&w) || fclose(f))
		fail("writer flush", NULL);
	rc = pcapng_parse((const uint8_t *)buf, len, check_back, &o, err, sizeof(err));
	if (rc)
		fail("the writer's file does not parse", err);
	if (o.n != 1)
		fail("written again: no frame", NULL);
	free(buf);
	free(comment);
}

static int check_pkt(const struct pcapng_pkt *p, void *ctx)
{
	struct in *in = ctx;

	if (p->tcp.family != AF_INET && p->tcp.family != AF_INET6)
		fail("packet of an unknown family", NULL);
	if (p->caplen > p->len || !inside(in, p->payload, p->caplen))
		fail("payload outside the input or caplen > len", NULL);
	if (p->comment && !inside(in, p->comment, p->comment_len))
		fail("comment outside the input", NULL);
	if (in->roundtrips < ROUNDTRIP_MAX) {
		in->roundtrips++;
		roundtrip(p);
	}
	in->n++;
	return 0;
}

static int check_conn(const struct sm_replay_conn *c, void *ctx)
{
	struct in *in = ctx;
	uint64_t sum = 0;

	if (c->id != ++in->n)
		fail("connections out of order", NULL);
	if (c->family != AF_INET && c->family != AF_INET6)
		fail("connection of an unknown family", NULL);
	for (size_t i = 0; i < c->n_chunks; i++) {
		if (!c->chunks[i].len || !inside(in, c->chunks[i].data, c->chunks[i].len))
			fail("chunk empty or outside the input", NULL);
		sum += c->chunks[i].len;
	}
	if (sum != c->sent)
		fail("chunks do not add up to sent", NULL);
	if (c->gap_len && (c->gap_at != c->sent || c->lost < c->gap_len))
		fail("gap inconsistent", NULL);
	if (!c->gap_len && (c->gap_at || c->lost))
		fail("no gap, yet gap_at or lost", NULL);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char prefix[] = "pcapng: block at offset ";
	struct in in = { .buf = data, .len = size };
	char err[256];
	int rc, n;

	rc = pcapng_parse(data, size, check_pkt, &in, err, sizeof(err));
	if (rc && rc != -EINVAL && rc != -ENOMEM)
		fail("pcapng_parse: unexpected return", strerror(-rc));
	if (rc == -EINVAL && strncmp(err, prefix, sizeof(prefix) - 1))
		fail("message does not name the offset", err);
	if (!rc && err[0])
		fail("message on success", err);

	in.n = 0;
	n = sm_replay_collect(data, size, check_conn, &in, err, sizeof(err));
	if (n < 0 && n != rc && n != -ENOMEM)
		fail("sm_replay_collect disagrees with pcapng_parse", err);
	if (n >= 0 && (rc || (unsigned int)n != in.n))
		fail("sm_replay_collect: count or success disagrees", NULL);
	return 0;
}
