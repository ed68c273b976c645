/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* pcapng writer and reader (see pcapng.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pcapng.h"

#define PCAPNG_BT_SHB 0x0A0D0D0Au
#define PCAPNG_BT_IDB 0x00000001u
#define PCAPNG_BT_EPB 0x00000006u
#define PCAPNG_BOM 0x1A2B3C4Du

#define PCAPNG_OPT_END 0
#define PCAPNG_OPT_COMMENT 1
#define PCAPNG_SHB_USERAPPL 4
#define PCAPNG_IF_NAME 2
#define PCAPNG_IF_DESCRIPTION 3
#define PCAPNG_IF_TSRESOL 9
#define PCAPNG_IF_TSOFFSET 14

#define LINKTYPE_ETHERNET 1

/* an option's length field is 16 bits */
#define PCAPNG_OPT_MAX 0xffffu

#define ETH_HLEN 14
#define IP4_HLEN 20
#define IP6_HLEN 40
#define TCP_HLEN 20
/* TCP payload one IP packet holds: IPv4's total length counts its own
 * header, IPv6's payload length does not
 */
#define IP4_MAX_PAYLOAD (0xffffu - IP4_HLEN - TCP_HLEN)
#define IP6_MAX_PAYLOAD (0xffffu - TCP_HLEN)

static size_t pad4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

/* ---- writer ------------------------------------------------------------- */

static void put(struct pcapng_writer *w, const void *p, size_t n)
{
	if (w->err || !n)
		return;
	errno = 0;
	if (fwrite(p, 1, n, w->f) != n)
		w->err = errno ? errno : EIO;
}

static void put_u16(struct pcapng_writer *w, uint16_t v)
{
	put(w, &v, sizeof(v));
}

static void put_u32(struct pcapng_writer *w, uint32_t v)
{
	put(w, &v, sizeof(v));
}

static void put_pad(struct pcapng_writer *w, size_t n)
{
	static const uint8_t zero[4];

	put(w, zero, pad4(n) - n);
}

static size_t opt_size(size_t len)
{
	return 4 + pad4(len);
}

static void put_opt(struct pcapng_writer *w, uint16_t code, const void *val, size_t len)
{
	put_u16(w, code);
	put_u16(w, (uint16_t)len);
	put(w, val, len);
	put_pad(w, len);
}

int pcapng_writer_open(struct pcapng_writer *w, FILE *f, const char *appname)
{
	size_t alen = appname ? strlen(appname) : 0;
	uint64_t section_len = UINT64_MAX; /* not given: the section is streamed */
	uint32_t total = 28;

	w->f = f;
	w->n_if = 0;
	w->err = 0;
	if (alen > PCAPNG_OPT_MAX)
		return -EINVAL;
	if (alen)
		total += opt_size(alen) + 4;
	put_u32(w, PCAPNG_BT_SHB);
	put_u32(w, total);
	put_u32(w, PCAPNG_BOM);
	put_u16(w, 1);
	put_u16(w, 0);
	put(w, &section_len, sizeof(section_len));
	if (alen) {
		put_opt(w, PCAPNG_SHB_USERAPPL, appname, alen);
		put_opt(w, PCAPNG_OPT_END, NULL, 0);
	}
	put_u32(w, total);
	return -w->err;
}

int pcapng_add_interface(struct pcapng_writer *w, const char *name, const char *description,
			 uint32_t snaplen)
{
	size_t nlen = name ? strlen(name) : 0, dlen = description ? strlen(description) : 0;
	uint8_t tsresol = 9; /* 10^-9: nanoseconds */
	uint32_t total = 20;

	if (w->err)
		return -w->err;
	if (nlen > PCAPNG_OPT_MAX || dlen > PCAPNG_OPT_MAX)
		return -EINVAL;
	total += (nlen ? opt_size(nlen) : 0) + (dlen ? opt_size(dlen) : 0) + opt_size(1) + 4;
	put_u32(w, PCAPNG_BT_IDB);
	put_u32(w, total);
	put_u16(w, LINKTYPE_ETHERNET);
	put_u16(w, 0);
	put_u32(w, snaplen);
	if (nlen)
		put_opt(w, PCAPNG_IF_NAME, name, nlen);
	if (dlen)
		put_opt(w, PCAPNG_IF_DESCRIPTION, description, dlen);
	put_opt(w, PCAPNG_IF_TSRESOL, &tsresol, 1);
	put_opt(w, PCAPNG_OPT_END, NULL, 0);
	put_u32(w, total);
	if (w->err)
		return -w->err;
	return (int)w->n_if++;
}

static void be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* one's complement sum of big-endian 16-bit words; an odd tail is padded */
static uint64_t csum_add(uint64_t sum, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i + 1 < n; i += 2)
		sum += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		sum += (uint32_t)p[n - 1] << 8;
	return sum;
}

static uint16_t csum_fold(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Ethernet, IP and TCP headers of one frame into hdr; returns their length. */
static size_t build_headers(uint8_t *hdr, const struct pcapng_tcp *seg, uint32_t seq, uint8_t flags,
			    const uint8_t *payload, uint32_t caplen, uint32_t len)
{
	size_t alen = seg->family == AF_INET ? 4 : 16, iplen, l4 = TCP_HLEN + len;
	uint8_t *ip = hdr + ETH_HLEN, *tcp;
	uint8_t pseudo[40];
	uint64_t sum;
	int cmp;

	/* the side with the lower address (then port) is :01, the other :02 */
	cmp = memcmp(seg->src, seg->dst, alen);
	if (!cmp)
		cmp = seg->sport < seg->dport ? -1 : seg->sport > seg->dport;
	memset(hdr, 0, ETH_HLEN);
	hdr[0] = hdr[6] = 0x02;
	hdr[5] = cmp < 0 ? 2 : 1;
	hdr[11] = cmp < 0 ? 1 : 2;
	if (seg->family == AF_INET) {
		be16(hdr + 12, 0x0800);
		memset(ip, 0, IP4_HLEN);
		ip[0] = 0x45;
		be16(ip + 2, (uint16_t)(IP4_HLEN + l4));
		be16(ip + 6, 0x4000); /* DF */
		ip[8] = 64;
		ip[9] = 6;
		memcpy(ip + 12, seg->src, 4);
		memcpy(ip + 16, seg->dst, 4);
		be16(ip + 10, csum_fold(csum_add(0, ip, IP4_HLEN)));
		tcp = ip + IP4_HLEN;
		memcpy(pseudo, seg->src, 4);
		memcpy(pseudo + 4, seg->dst, 4);
		pseudo[8] = 0;
		pseudo[9] = 6;
		be16(pseudo + 10, (uint16_t)l4);
		sum = csum_add(0, pseudo, 12);
	} else {
		be16(hdr + 12, 0x86DD);
		memset(ip, 0, IP6_HLEN);
		ip[0] = 0x60;
		be16(ip + 4, (uint16_t)l4);
		ip[6] = 6;
		ip[7] = 64;
		memcpy(ip + 8, seg->src, 16);
		memcpy(ip + 24, seg->dst, 16);
		tcp = ip + IP6_HLEN;
		memcpy(pseudo, seg->src, 16);
		memcpy(pseudo + 16, seg->dst, 16);
		be32(pseudo + 32, (uint32_t)l4);
		memset(pseudo + 36, 0, 3);
		pseudo[39] = 6;
		sum = csum_add(0, pseudo, 40);
	}
	memset(tcp, 0, TCP_HLEN);
	be16(tcp, seg->sport);
	be16(tcp + 2, seg->dport);
	be32(tcp + 4, seq);
	be32(tcp + 8, seg->ack);
	tcp[12] = 5 << 4;
	tcp[13] = flags;
	be16(tcp + 14, 0xffff);
	if (caplen == len) {
		sum = csum_add(sum, tcp, TCP_HLEN);
		be16(tcp + 16, csum_fold(csum_add(sum, payload, len)));
	}
	iplen = seg->family == AF_INET ? IP4_HLEN : IP6_HLEN;
	return ETH_HLEN + iplen + TCP_HLEN;
}

size_t pcapng_tcp_packet(uint8_t *buf, size_t size, const struct pcapng_tcp *seg,
			 const void *payload, uint32_t len)
{
	uint8_t hdr[ETH_HLEN + IP6_HLEN + TCP_HLEN];
	size_t hl;

	if (seg->family != AF_INET && seg->family != AF_INET6)
		return 0;
	hl = build_headers(hdr, seg, seg->seq, seg->flags, payload, len, len) - ETH_HLEN;
	if (hl + len > size || len > 65495)
		return 0;
	memcpy(buf, hdr + ETH_HLEN, hl);
	memcpy(buf + hl, payload, len);
	return hl + len;
}

int pcapng_write_tcp(struct pcapng_writer *w, unsigned if_id, uint64_t ts_ns,
		     const struct pcapng_tcp *seg, const void *payload, uint32_t caplen,
		     uint32_t len, const char *comment)
{
	const uint32_t keep_last = PCAPNG_TCP_FIN | PCAPNG_TCP_PSH | PCAPNG_TCP_RST;
	size_t clen = comment ? strlen(comment) : 0;
	uint32_t max, off = 0;
	const uint8_t *pl = payload;
	bool first = true;

	if (w->err)
		return -w->err;
	if (if_id >= w->n_if || (seg->family != AF_INET && seg->family != AF_INET6) ||
	    caplen > len || (caplen && !payload) || clen > PCAPNG_OPT_MAX)
		return -EINVAL;
	max = seg->family == AF_INET ? IP4_MAX_PAYLOAD : IP6_MAX_PAYLOAD;
	do {
		uint32_t n = len - off < max ? len - off : max;
		uint32_t cap = off >= caplen ? 0 : caplen - off < n ? caplen - off : n;
		bool last = off + n == len;
		/* a SYN takes a sequence number before the data */
		uint32_t seq = seg->seq + off + (!first && (seg->flags & PCAPNG_TCP_SYN) ? 1 : 0);
		uint8_t flags = seg->flags & ~(keep_last | PCAPNG_TCP_SYN);
		uint8_t hdr[ETH_HLEN + IP6_HLEN + TCP_HLEN];
		size_t hlen, frame_cap, total;

		if (first)
			flags |= seg->flags & PCAPNG_TCP_SYN;
		if (last)
			flags |= seg->flags & keep_last;
		/* no arithmetic on a NULL payload (caplen 0) */
		hlen = build_headers(hdr, seg, seq, flags, cap ? pl + off : NULL, cap, n);
		frame_cap = hlen + cap;
		total = 28 + pad4(frame_cap) + (clen ? opt_size(clen) + 4 : 0) + 4;
		put_u32(w, PCAPNG_BT_EPB);
		put_u32(w, (uint32_t)total);
		put_u32(w, if_id);
		put_u32(w, (uint32_t)(ts_ns >> 32));
		put_u32(w, (uint32_t)ts_ns);
		put_u32(w, (uint32_t)frame_cap);
		put_u32(w, (uint32_t)(hlen + n));
		put(w, hdr, hlen);
		if (cap)
			put(w, pl + off, cap);
		put_pad(w, frame_cap);
		if (clen) {
			put_opt(w, PCAPNG_OPT_COMMENT, comment, clen);
			put_opt(w, PCAPNG_OPT_END, NULL, 0);
		}
		put_u32(w, (uint32_t)total);
		off += n;
		first = false;
	} while (off < len && !w->err);
	return -w->err;
}

int pcapng_writer_flush(struct pcapng_writer *w)
{
	if (!w->err) {
		errno = 0;
		if (fflush(w->f))
			w->err = errno ? errno : EIO;
	}
	return -w->err;
}

/* ---- reader ------------------------------------------------------------- */

struct pcapng_if {
	uint8_t tsresol;
	int64_t tsoffset; /* seconds */
};

struct reader {
	const uint8_t *buf;
	size_t len;
	bool swap; /* the section's byte order is not the host's */
	struct pcapng_if *ifs;
	size_t n_if, cap_if;
	char *errbuf;
	size_t errlen;
};

static uint16_t get16(const struct reader *r, size_t off)
{
	uint16_t v;

	memcpy(&v, r->buf + off, sizeof(v));
	return r->swap ? __builtin_bswap16(v) : v;
}

static uint32_t get32(const struct reader *r, size_t off)
{
	uint32_t v;

	memcpy(&v, r->buf + off, sizeof(v));
	return r->swap ? __builtin_bswap32(v) : v;
}

static uint64_t get64(const struct reader *r, size_t off)
{
	uint64_t v;

	memcpy(&v, r->buf + off, sizeof(v));
	return r->swap ? __builtin_bswap64(v) : v;
}

static int __attribute__((format(printf, 3, 4)))
bad(struct reader *r, size_t blk, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!r->errbuf || !r->errlen)
		return -EINVAL;
	n = snprintf(r->errbuf, r->errlen, "pcapng: block at offset %zu: ", blk);
	if (n >= 0 && (size_t)n < r->errlen) {
		va_start(ap, fmt);
		vsnprintf(r->errbuf + n, r->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* Options in [*off, end) of the block at blk: 1 and the next one, 0 at the
 * end (opt_endofopt or no bytes left), or -EINVAL.
 */
static int next_opt(struct reader *r, size_t blk, size_t *off, size_t end, uint16_t *code,
		    const uint8_t **val, uint16_t *vlen)
{
	size_t o = *off;

	if (o == end)
		return 0;
	if (end - o < 4)
		return bad(r, blk, "options end in a fragment of %zu bytes at offset %zu", end - o,
			   o);
	*code = get16(r, o);
	*vlen = get16(r, o + 2);
	if (*code == PCAPNG_OPT_END) {
		*off = end;
		return 0;
	}
	if (pad4(*vlen) > end - o - 4)
		return bad(r, blk, "option %u at offset %zu: length %u runs past the block", *code,
			   o, *vlen);
	*val = r->buf + o + 4;
	*off = o + 4 + pad4(*vlen);
	return 1;
}

/* validate the options of a block whose contents we ignore */
static int skip_opts(struct reader *r, size_t blk, size_t off, size_t end)
{
	const uint8_t *val;
	uint16_t code, vlen;
	int rc;

	while ((rc = next_opt(r, blk, &off, end, &code, &val, &vlen)) > 0)
		;
	return rc;
}

static int read_shb(struct reader *r, size_t blk, uint32_t total)
{
	uint16_t major;

	if (total < 28)
		return bad(r, blk, "Section Header Block of %u bytes is shorter than 28", total);
	major = get16(r, blk + 12);
	if (major != 1)
		return bad(r, blk, "pcapng version %u.%u is not 1.x", major, get16(r, blk + 14));
	r->n_if = 0; /* interface ids start again in each section */
	return skip_opts(r, blk, blk + 24, blk + total - 4);
}

static int read_idb(struct reader *r, size_t blk, uint32_t total)
{
	struct pcapng_if in = { .tsresol = 6 };
	size_t off = blk + 16;
	uint16_t linktype, code, vlen;
	const uint8_t *val;
	int rc;

	if (total < 20)
		return bad(r, blk, "Interface Description Block of %u bytes is shorter than 20",
			   total);
	linktype = get16(r, blk + 8);
	if (linktype != LINKTYPE_ETHERNET)
		return bad(r, blk, "interface %zu: link type %u is not Ethernet (1)", r->n_if,
			   linktype);
	while ((rc = next_opt(r, blk, &off, blk + total - 4, &code, &val, &vlen)) > 0) {
		if (code == PCAPNG_IF_TSRESOL) {
			if (vlen != 1)
				return bad(r, blk, "if_tsresol of %u bytes, want 1", vlen);
			in.tsresol = val[0];
		} else if (code == PCAPNG_IF_TSOFFSET) {
			if (vlen != 8)
				return bad(r, blk, "if_tsoffset of %u bytes, want 8", vlen);
			in.tsoffset = (int64_t)get64(r, (size_t)(val - r->buf));
		}
	}
	if (rc < 0)
		return rc;
	if (r->n_if == r->cap_if) {
		size_t ncap = r->cap_if ? 2 * r->cap_if : 8;
		struct pcapng_if *n = realloc(r->ifs, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		r->ifs = n;
		r->cap_if = ncap;
	}
	r->ifs[r->n_if++] = in;
	return 0;
}

static uint64_t pow10_u64(unsigned int e)
{
	uint64_t v = 1;

	while (e--)
		v *= 10;
	return v;
}

/* ts in units of the interface's resolution to ns since the epoch, clamped
 * to what a uint64_t holds
 */
static uint64_t ts_to_ns(uint64_t ts, const struct pcapng_if *in)
{
	__int128 v;
	unsigned int e = in->tsresol & 0x7f;

	if (in->tsresol & 0x80) /* 2^-e */
		v = (__int128)(((unsigned __int128)ts * 1000000000u) >> e);
	else if (e <= 9)
		v = (__int128)ts * (__int128)pow10_u64(9 - e);
	else if (e - 9 <= 19) /* 10^19: the last power of 10 a uint64_t holds */
		v = (__int128)(ts / pow10_u64(e - 9));
	else
		v = 0;
	v += (__int128)in->tsoffset * 1000000000;
	if (v < 0)
		return 0;
	if (v > (__int128)UINT64_MAX)
		return UINT64_MAX;
	return (uint64_t)v;
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Ethernet [802.1Q]* IPv4|IPv6 TCP in a captured frame of n bytes into p;
 * false when it is something else, a fragment, or its headers are cut
 */
static bool parse_frame(const uint8_t *d, uint32_t n, struct pcapng_pkt *p)
{
	uint32_t off = ETH_HLEN, l4len, l4cap, doff;
	uint16_t type;
	uint8_t proto;

	if (n < ETH_HLEN)
		return false;
	type = rd16(d + 12);
	while (type == 0x8100 || type == 0x88a8 || type == 0x9100) {
		if (n - off < 4)
			return false;
		type = rd16(d + off + 2);
		off += 4;
	}
	memset(&p->tcp, 0, sizeof(p->tcp));
	if (type == 0x0800) {
		const uint8_t *ip = d + off;
		uint32_t ihl, tot;

		if (n - off < IP4_HLEN || ip[0] >> 4 != 4)
			return false;
		ihl = (ip[0] & 0xfu) * 4;
		tot = rd16(ip + 2);
		if (ihl < IP4_HLEN || ihl > n - off || tot < ihl || ip[9] != 6 ||
		    (rd16(ip + 6) & 0x3fff))
			return false;
		p->tcp.family = AF_INET;
		memcpy(p->tcp.src, ip + 12, 4);
		memcpy(p->tcp.dst, ip + 16, 4);
		off += ihl;
		l4len = tot - ihl;
	} else if (type == 0x86DD) {
		const uint8_t *ip = d + off;

		if (n - off < IP6_HLEN || ip[0] >> 4 != 6)
			return false;
		l4len = rd16(ip + 4);
		proto = ip[6];
		p->tcp.family = AF_INET6;
		memcpy(p->tcp.src, ip + 8, 16);
		memcpy(p->tcp.dst, ip + 24, 16);
		off += IP6_HLEN;
		/* extension headers before TCP; a fragment header ends it */
		while (proto != 6) {
			uint32_t hl;

			if (n - off < 2)
				return false;
			if (proto == 0 || proto == 43 || proto == 60)
				hl = (d[off + 1] + 1u) * 8;
			else if (proto == 51)
				hl = (d[off + 1] + 2u) * 4;
			else
				return false;
			if (hl > n - off || hl > l4len)
				return false;
			proto = d[off];
			off += hl;
			l4len -= hl;
		}
	} else {
		return false;
	}
	l4cap = n - off < l4len ? n - off : l4len;
	if (l4cap < TCP_HLEN)
		return false;
	doff = (d[off + 12] >> 4) * 4u;
	if (doff < TCP_HLEN || doff > l4cap)
		return false;
	p->tcp.sport = rd16(d + off);
	p->tcp.dport = rd16(d + off + 2);
	p->tcp.seq = rd32(d + off + 4);
	p->tcp.ack = rd32(d + off + 8);
	p->tcp.flags = d[off + 13];
	p->payload = d + off + doff;
	p->caplen = l4cap - doff;
	p->len = l4len - doff;
	return true;
}

static int read_epb(struct reader *r, size_t blk, uint32_t total, pcapng_pkt_cb cb, void *ctx)
{
	struct pcapng_pkt p = { 0 };
	uint32_t if_id, caplen, room;
	size_t off;
	const uint8_t *val;
	uint16_t code, vlen;
	int rc;

	if (total < 32)
		return bad(r, blk, "Enhanced Packet Block of %u bytes is shorter than 32", total);
	if_id = get32(r, blk + 8);
	if (if_id >= r->n_if)
		return bad(r, blk, "interface %u is not described (the section has %zu)", if_id,
			   r->n_if);
	caplen = get32(r, blk + 20);
	room = total - 32;
	if (caplen > room || pad4(caplen) > room)
		return bad(r, blk, "captured length %u runs past the block (%u bytes of room)",
			   caplen, room);
	off = blk + 28 + pad4(caplen);
	while ((rc = next_opt(r, blk, &off, blk + total - 4, &code, &val, &vlen)) > 0) {
		if (code == PCAPNG_OPT_COMMENT && !p.comment) {
			p.comment = (const char *)val;
			p.comment_len = vlen;
		}
	}
	if (rc < 0)
		return rc;
	if (!cb || !parse_frame(r->buf + blk + 28, caplen, &p))
		return 0;
	p.if_id = if_id;
	p.ts_ns = ts_to_ns((uint64_t)get32(r, blk + 12) << 32 | get32(r, blk + 16), &r->ifs[if_id]);
	return cb(&p, ctx);
}

/* The block header at off: its type and total length, checked against the
 * file; an SHB sets the byte order of the blocks that follow.
 */
static int read_block_header(struct reader *r, size_t off, bool *in_section, bool *shb,
			     uint32_t *type, uint32_t *total)
{
	static const uint8_t shb_type[4] = { 0x0A, 0x0D, 0x0D, 0x0A };
	size_t left = r->len - off;
	uint32_t trailer;

	if (left < 12)
		return bad(r, off, "truncated block: %zu bytes left, a block takes 12 or more",
			   left);
	*shb = !memcmp(r->buf + off, shb_type, sizeof(shb_type));
	if (*shb) {
		uint32_t bom;

		r->swap = false;
		bom = get32(r, off + 8);
		if (bom == __builtin_bswap32(PCAPNG_BOM))
			r->swap = true;
		else if (bom != PCAPNG_BOM)
			return bad(r, off, "byte-order magic 0x%08x is not 0x%08x", bom,
				   PCAPNG_BOM);
		*in_section = true;
	} else if (!*in_section) {
		return bad(r, off,
			   "not a pcapng file: block type 0x%08x is not a Section Header Block",
			   get32(r, off));
	}
	*type = get32(r, off);
	*total = get32(r, off + 4);
	if (*total % 4)
		return bad(r, off, "total length %u is not a multiple of 4", *total);
	if (*total < 12)
		return bad(r, off, "total length %u is less than 12", *total);
	if (*total > left)
		return bad(r, off, "total length %u runs past the end of the file (%zu bytes left)",
			   *total, left);
	trailer = get32(r, off + *total - 4);
	if (trailer != *total)
		return bad(r, off, "trailing total length %u differs from %u", trailer, *total);
	return 0;
}

int pcapng_parse(const uint8_t *buf, size_t len, pcapng_pkt_cb cb, void *ctx, char *errbuf,
		 size_t errlen)
{
	struct reader r = { .buf = buf, .len = len, .errbuf = errbuf, .errlen = errlen };
	bool in_section = false;
	size_t off = 0;
	int rc = 0;

	if (errbuf && errlen)
		errbuf[0] = '\0';
	if (!len)
		return bad(&r, 0, "the file is empty: no Section Header Block");
	while (off < len && !rc) {
		uint32_t type = 0, total = 0;
		bool shb = false;

		rc = read_block_header(&r, off, &in_section, &shb, &type, &total);
		if (rc)
			break;
		if (shb)
			rc = read_shb(&r, off, total);
		else if (type == PCAPNG_BT_IDB)
			rc = read_idb(&r, off, total);
		else if (type == PCAPNG_BT_EPB)
			rc = read_epb(&r, off, total, cb, ctx);
		off += total;
	}
	free(r.ifs);
	return rc;
}
