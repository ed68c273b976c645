/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sockmeshd: who is on the other end of an HTTP connection (issue 12
 * point 5: a local user must not be able to hold every connection the
 * daemon serves, and take /healthz down with them).
 */
#ifndef SOCKMESHD_PEERS_H
#define SOCKMESHD_PEERS_H

#include <sys/socket.h>

enum sd_peer_class {
	SD_PEER_ROOT, /* a local socket of uid 0: the kubelet's probes, operators */
	SD_PEER_USER, /* a local socket of another uid */
	SD_PEER_REMOTE, /* not a socket of this network namespace: Prometheus */
	SD_PEER__COUNT
};

/* The class of the client at addr (the peer address of an accepted TCP
 * connection): its socket is looked up in /proc/net/tcp or tcp6 by its
 * address and port, and its uid read there.
 */
enum sd_peer_class sd_peer_class(const struct sockaddr *addr, socklen_t len);

const char *sd_peer_class_name(enum sd_peer_class c);

#endif
