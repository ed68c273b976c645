/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * pcapng (draft-ietf-opsawg-pcapng) for spliced TCP traffic: a writer that
 * synthesizes Ethernet/IPv4|IPv6/TCP frames around captured payload
 * (`sockmesh tap`), and a reader of untrusted files that hands back the TCP
 * segments in them (`sockmesh replay`). No kernel, no libpcap.
 */
#ifndef SMC_PCAPNG_H
#define SMC_PCAPNG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ---- writer ------------------------------------------------------------- */

/* Blocks are written in host byte order (the SHB's magic tells readers). */
struct pcapng_writer {
	FILE *f;
	unsigned n_if; /* interfaces described so far */
	int err; /* sticky: the first errno of a failed write, 0 while none */
};

/* Start a section on f (not closed by the writer): a Section Header Block
 * with appname (may be NULL) as shb_userappl. Returns 0 or -errno
 * (-EINVAL: appname longer than an option holds, 65535 bytes).
 */
int pcapng_writer_open(struct pcapng_writer *w, FILE *f, const char *appname);

/* An Interface Description Block: LINKTYPE_ETHERNET, if_tsresol 9 (ns),
 * if_name and if_description (each may be NULL), snaplen (0: no limit; it
 * is only recorded). Returns the interface id (0, 1, ...) or -errno.
 */
int pcapng_add_interface(struct pcapng_writer *w, const char *name, const char *description,
			 uint32_t snaplen);

#define PCAPNG_TCP_FIN 0x01
#define PCAPNG_TCP_SYN 0x02
#define PCAPNG_TCP_RST 0x04
#define PCAPNG_TCP_PSH 0x08
#define PCAPNG_TCP_ACK 0x10

struct pcapng_tcp {
	int family; /* AF_INET or AF_INET6 */
	uint8_t src[16], dst[16]; /* network order; IPv4 in the first 4 bytes */
	uint16_t sport, dport; /* host order */
	uint32_t seq, ack; /* host order */
	uint8_t flags; /* PCAPNG_TCP_* (other bits are written as given) */
};

/*
 * One TCP segment of len bytes, of which the first caplen (<= len) were
 * captured, as Enhanced Packet Blocks on interface if_id at ts_ns
 * (nanoseconds since the epoch). Each frame is Ethernet (02:00:00:00:00:01
 * for the side whose address and port are lower, :02 for the other), IPv4
 * (TTL 64, DF, header checksum) or IPv6 (hop limit 64), TCP (no options,
 * window 65535; checksum valid when the frame's payload was captured
 * whole, else 0), payload; the EPB's original length counts all len bytes.
 *
 * A segment longer than one IP packet holds (65495 bytes of payload over
 * IPv4, 65515 over IPv6) becomes several frames with consecutive sequence
 * numbers: SYN stays on the first, FIN, PSH and RST on the last, ACK on
 * all. comment (NULL or "": none) is an opt_comment on every frame.
 *
 * Returns 0 or -errno: -EINVAL for an unknown interface, family,
 * caplen > len, a NULL payload with caplen > 0 or a comment longer than
 * 65535 bytes (nothing is written then); a write error is sticky.
 */
int pcapng_write_tcp(struct pcapng_writer *w, unsigned if_id, uint64_t ts_ns,
		     const struct pcapng_tcp *seg, const void *payload, uint32_t caplen,
		     uint32_t len, const char *comment);

/*
 * The IP packet of one TCP segment, as pcapng_write_tcp frames it without
 * the Ethernet header (seg->seq and seg->flags as given, checksums valid):
 * headers then len payload bytes into buf. Returns the packet's length, 0
 * if it does not fit in size bytes or the family is unknown.
 */
size_t pcapng_tcp_packet(uint8_t *buf, size_t size, const struct pcapng_tcp *seg,
			 const void *payload, uint32_t len);

/* fflush(f). Returns 0 or the sticky error as -errno (-EPIPE when the
 * reader of a pipe went away and SIGPIPE is ignored).
 */
int pcapng_writer_flush(struct pcapng_writer *w);

/* ---- reader ------------------------------------------------------------- */

struct pcapng_pkt {
	unsigned if_id; /* interface, numbered from 0 in its section */
	uint64_t ts_ns; /* since the epoch, after if_tsresol (default 10^-6) and if_tsoffset */
	struct pcapng_tcp tcp; /* parsed Ethernet/IPv4|IPv6/TCP headers */
	const uint8_t *payload; /* into the parsed buffer */
	uint32_t caplen, len; /* TCP payload captured, and its length per the IP header */
	const char *comment; /* the first opt_comment (not NUL-terminated) or NULL */
	size_t comment_len;
};

typedef int (*pcapng_pkt_cb)(const struct pcapng_pkt *p, void *ctx);

/*
 * Parse a whole pcapng file in memory (untrusted: every length is checked).
 * cb is called for each Enhanced Packet Block holding Ethernet (802.1Q tags
 * allowed) + IPv4|IPv6 (not a fragment) + TCP, in file order; other packets
 * and unknown block types are skipped. Sections of either byte order, and
 * several sections and interfaces, are read; an interface whose link type
 * is not Ethernet is an error.
 *
 * Returns 0; cb's value when it is non-zero (the parse stops); -ENOMEM; or
 * -EINVAL with errbuf (may be NULL) saying what is wrong and where:
 * "pcapng: block at offset 1234: total length 7 is not a multiple of 4".
 */
int pcapng_parse(const uint8_t *buf, size_t len, pcapng_pkt_cb cb, void *ctx, char *errbuf,
		 size_t errlen);

#endif
