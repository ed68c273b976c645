// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmeshd: the uid behind a local HTTP client. The kernel prints every TCP
 * socket of the namespace in /proc/net/tcp{,6} with its owner's uid; the
 * client's socket is the one whose local address is the peer address of
 * the accepted connection. Read once per accepted connection (the daemon
 * serves probes and scrapes, not traffic).
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>

#include "peers.h"

/* "0100007F:9C40" as /proc/net/tcp prints 127.0.0.1:40000 (the address
 * words as the kernel stores them, printed as native integers).
 */
static const char *proc_key(const struct sockaddr *addr, socklen_t len, char *buf, size_t n,
			    const char **file)
{
	if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
		const struct sockaddr_in *a = (const struct sockaddr_in *)addr;

		snprintf(buf, n, "%08X:%04X", a->sin_addr.s_addr, ntohs(a->sin_port));
		*file = "/proc/net/tcp";
		return buf;
	}
	if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
		uint32_t w[4];

		memcpy(w, &a->sin6_addr, sizeof(w));
		snprintf(buf, n, "%08X%08X%08X%08X:%04X", w[0], w[1], w[2], w[3],
			 ntohs(a->sin6_port));
		*file = "/proc/net/tcp6";
		return buf;
	}
	return NULL;
}

enum sd_peer_class sd_peer_class(const struct sockaddr *addr, socklen_t len)
{
	enum sd_peer_class c = SD_PEER_REMOTE;
	char key[64], line[512], local[64];
	const char *file = NULL;
	unsigned int uid;
	FILE *f;

	if (!proc_key(addr, len, key, sizeof(key), &file))
		return SD_PEER_REMOTE;
	f = fopen(file, "re");
	if (!f)
		return SD_PEER_REMOTE;
	/* sl local_address rem_address st tx:rx tr:when retrnsmt uid ... */
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, " %*s %63s %*s %*s %*s %*s %*s %u", local, &uid) != 2 ||
		    strcmp(local, key))
			continue;
		c = uid == 0 ? SD_PEER_ROOT : SD_PEER_USER;
		break;
	}
	fclose(f);
	return c;
}

const char *sd_peer_class_name(enum sd_peer_class c)
{
	switch (c) {
	case SD_PEER_ROOT:
		return "root";
	case SD_PEER_USER:
		return "local user";
	default:
		return "remote";
	}
}
