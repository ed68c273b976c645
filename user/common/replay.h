/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Replay of captured TCP connections (`sockmesh replay`): the client->server
 * byte stream of every connection in a pcapng capture (pcapng.h) is sent
 * again, each on a new connection, to a shadow server.
 *
 * Which side is the client: the sender of a SYN without ACK; else the
 * receiver of a SYN+ACK; else (the capture began after the handshake) the
 * side with the higher port, taken as the ephemeral one; with equal ports,
 * the side that sent the connection's first captured packet.
 *
 * A connection is one 4-tuple from its first packet on; a SYN without ACK
 * on a tuple already seen starts a new connection (port reuse), unless it
 * repeats that connection's own SYN (same side, same sequence number).
 */
#ifndef SMC_REPLAY_H
#define SMC_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

/* A run of the stream: bytes of one captured segment, in the capture. */
struct sm_replay_chunk {
	const uint8_t *data; /* into the pcapng buffer */
	size_t len;
	uint64_t ts_ns; /* when the segment was captured */
};

/* One connection's client->server stream, reassembled. */
struct sm_replay_conn {
	unsigned int id; /* 1, 2, ... in the order the connections opened */
	int family; /* AF_INET or AF_INET6 */
	uint8_t client[16], server[16]; /* network order; IPv4 in the first 4 bytes */
	uint16_t client_port, server_port; /* host order */
	bool syn_seen; /* the client is known from the handshake, not guessed */
	uint64_t open_ns; /* timestamp of the connection's first packet (either side) */
	/* The stream in sequence order, duplicates dropped, up to its first gap. */
	const struct sm_replay_chunk *chunks;
	size_t n_chunks;
	uint64_t sent; /* bytes in the chunks */
	/* gap_len 0: the whole stream is in the chunks; else the bytes from
	 * gap_at (== sent) on were not all captured: gap_len of them are
	 * missing before captured bytes start again (or the stream ends), and
	 * lost (>= gap_len) is every byte after gap_at, captured or not, that
	 * the stream had (its end: the highest sequence number seen)
	 */
	uint64_t gap_at, gap_len, lost;
};

typedef int (*sm_replay_conn_cb)(const struct sm_replay_conn *c, void *ctx);

/*
 * Reassemble every connection of the pcapng capture in buf and call cb for
 * each, in the order they opened (timestamp of the first packet, then file
 * order); c and its chunks are valid during the call only. No network.
 * Returns the number of connections; cb's value if negative (it stops the
 * walk); -ENOMEM; or -EINVAL with errbuf (may be NULL) naming what is wrong
 * in the file (pcapng_parse()'s message).
 */
int sm_replay_collect(const uint8_t *buf, size_t len, sm_replay_conn_cb cb, void *ctx, char *errbuf,
		      size_t errlen);

struct sm_replay_opts {
	double speed; /* 0: as fast as possible; 1.0: original timing; 2.0: twice as fast */
	FILE *log; /* one line per connection; may be NULL */
};

/*
 * Replay the capture in buf to `to` (any stream socket address: AF_INET,
 * AF_INET6, AF_UNIX). Single-threaded: the connections are replayed one
 * after another, in the order they opened. For each: connect, send its
 * stream (up to its first gap: never bytes that were not captured), then
 * shutdown(SHUT_WR) and read and discard the response until EOF or 5 s.
 * What the server sends meanwhile is read and dropped, so a server that
 * answers before it has read everything cannot stall the replay.
 *
 * With speed > 0 each connection's open and each chunk's send wait until
 * (its capture timestamp - the first connection's open) / speed after the
 * start; a connection that overlapped the one before it in the capture is
 * therefore late, and its waits are skipped until it catches up.
 *
 * Log lines (o->log):
 *   replay: conn 3 10.0.0.1:43210 -> 10.96.0.10:80: sent 1234 bytes
 *   ... sent 1000 bytes (gap after 1000: 200 bytes not captured)
 *   ... sent 1000 bytes (gap after 1000: 200 bytes not captured; 34 more bytes after it not sent)
 *   ... sent 100 of 1234 bytes: Connection reset by peer
 * the last one when the server resets a connection, or it makes no
 * progress for 30 s: that connection is counted and the replay goes on.
 *
 * Returns the number of connections replayed, or -errno with errbuf (may
 * be NULL) set: -EINVAL (a bad file or speed), -ENOMEM, or a connect()
 * failure ("replay: conn 1 ...: connect: Connection refused"), which ends
 * the replay.
 */
int sm_replay(const uint8_t *buf, size_t len, const struct sockaddr *to, socklen_t tolen,
	      const struct sm_replay_opts *o, char *errbuf, size_t errlen);

#endif
