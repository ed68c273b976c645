/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one parser of socket addresses given on a command line: numeric IPv4
 * and IPv6 only (a daemon must not depend on name resolution to start).
 *
 *   "1.2.3.4:80", "[::1]:80"    SMC_ADDR_PORT
 *   "1.2.3.4", "::1", "[::1]"   SMC_ADDR_BARE (port 0)
 *   "80"                        SMC_ADDR_PORT_ONLY (0.0.0.0:80)
 *
 * IPv6 with a port must be bracketed ("::1:80" is itself an address); an
 * unbracketed IPv6 address is always a bare one.
 */
#ifndef SMC_ADDR_H
#define SMC_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

enum smc_addr_flags {
	SMC_ADDR_PORT = 1u << 0, /* ADDR:PORT, [IPV6]:PORT */
	SMC_ADDR_BARE = 1u << 1, /* an address without a port (port 0) */
	SMC_ADDR_PORT_ONLY = 1u << 2, /* PORT alone: every IPv4 address */
	SMC_ADDR_PORT0 = 1u << 3, /* port 0 ("any free port") is allowed */
};

struct smc_addr {
	struct sockaddr_storage ss;
	socklen_t len; /* sizeof(struct sockaddr_in) or sockaddr_in6 */
};

/* Parse s as flags allow into out. -EINVAL (bad syntax or address) or
 * -ERANGE (port); smc_errmsg() names field and s.
 */
int smc_parse_addr(const char *field, const char *s, unsigned int flags, struct smc_addr *out);

/* "1.2.3.4:80" / "[::1]:80" (with_port), else "1.2.3.4" / "::1". */
const char *smc_addr_str(const struct sockaddr_storage *ss, bool with_port, char *buf, size_t len);
/* Port in host order, 0 for other families. */
unsigned int smc_addr_port(const struct sockaddr_storage *ss);

/* Longest text smc_addr_str() writes: "[" INET6_ADDRSTRLEN "]:65535" */
#define SMC_ADDR_STRLEN 56

#endif
