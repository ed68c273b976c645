// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Address parser for options (see addr.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "addr.h"
#include "parse.h"

/* host (no brackets) of the given family; 0 or -EINVAL */
static int host_pton(int family, const char *host, struct smc_addr *out)
{
	memset(out, 0, sizeof(*out));
	if (family == AF_INET) {
		struct sockaddr_in *a = (struct sockaddr_in *)&out->ss;

		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -EINVAL;
		a->sin_family = AF_INET;
		out->len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&out->ss;

		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -EINVAL;
		a->sin6_family = AF_INET6;
		out->len = sizeof(*a);
	}
	return 0;
}

static void set_port(struct smc_addr *a, uint16_t port)
{
	if (a->ss.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
}

static int parse_port(const char *field, const char *s, const char *port_s, unsigned int flags,
		      uint16_t *port)
{
	uint32_t v;
	bool zero = flags & SMC_ADDR_PORT0;

	if (smc_parse_u32(field, port_s, 65535, &v) || (v == 0 && !zero)) {
		smc_set_err("%s: '%s': port '%s' is not %s-65535", field, s, port_s,
			    zero ? "0" : "1");
		return -ERANGE;
	}
	*port = (uint16_t)v;
	return 0;
}

static const char *expected(unsigned int flags)
{
	if ((flags & SMC_ADDR_PORT) && (flags & SMC_ADDR_BARE))
		return "ADDR or ADDR:PORT (1.2.3.4, ::1, 1.2.3.4:80, [::1]:80)";
	if (flags & SMC_ADDR_PORT)
		return "ADDR:PORT (1.2.3.4:80, [::1]:80)";
	return "an IPv4 or IPv6 address (1.2.3.4, ::1, [::1])";
}

int smc_parse_addr(const char *field, const char *s, unsigned int flags, struct smc_addr *out)
{
	/* an IPv6 text, brackets and ":65535" fit; longer is no address */
	char host[INET6_ADDRSTRLEN + 8];
	const char *port_s = NULL, *colon;
	uint16_t port = 0;
	size_t hl;
	int family, err;

	memset(out, 0, sizeof(*out));
	if (!s || !*s) {
		smc_set_err("%s: empty value", field);
		return -EINVAL;
	}
	if ((flags & SMC_ADDR_PORT_ONLY) && !strchr(s, ':') && !strchr(s, '.')) {
		err = parse_port(field, s, s, flags, &port);
		if (err)
			return err;
		host_pton(AF_INET, "0.0.0.0", out);
		set_port(out, port);
		return 0;
	}
	if (s[0] == '[') {
		const char *end = strchr(s, ']');

		if (!end || (end[1] && end[1] != ':') || (!end[1] && !(flags & SMC_ADDR_BARE)) ||
		    (end[1] && !(flags & SMC_ADDR_PORT)))
			goto bad;
		hl = (size_t)(end - s - 1);
		if (hl == 0 || hl >= sizeof(host))
			goto bad;
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		port_s = end[1] ? end + 2 : NULL;
		family = AF_INET6;
	} else if (strchr(s, ':') && strchr(s, ':') != strrchr(s, ':')) {
		/* two colons or more: unbracketed IPv6, always bare */
		if (!(flags & SMC_ADDR_BARE))
			goto bad;
		if (strlen(s) >= sizeof(host))
			goto bad;
		snprintf(host, sizeof(host), "%s", s);
		family = AF_INET6;
	} else {
		colon = strchr(s, ':');
		if (colon ? !(flags & SMC_ADDR_PORT) : !(flags & SMC_ADDR_BARE))
			goto bad;
		hl = colon ? (size_t)(colon - s) : strlen(s);
		if (hl == 0 || hl >= sizeof(host))
			goto bad;
		memcpy(host, s, hl);
		host[hl] = '\0';
		port_s = colon ? colon + 1 : NULL;
		family = AF_INET;
	}
	if (host_pton(family, host, out)) {
		smc_set_err("%s: '%s': '%s' is not a numeric %s address", field, s, host,
			    family == AF_INET ? "IPv4" : "IPv6");
		return -EINVAL;
	}
	if (port_s) {
		err = parse_port(field, s, port_s, flags, &port);
		if (err) {
			memset(out, 0, sizeof(*out));
			return err;
		}
		set_port(out, port);
	}
	return 0;
bad:
	memset(out, 0, sizeof(*out));
	smc_set_err("%s: '%s' is not %s", field, s, expected(flags));
	return -EINVAL;
}

unsigned int smc_addr_port(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)ss)->sin6_port);
	if (ss->ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)ss)->sin_port);
	return 0;
}

const char *smc_addr_str(const struct sockaddr_storage *ss, bool with_port, char *buf, size_t len)
{
	char ip[INET6_ADDRSTRLEN];

	if (ss->ss_family == AF_INET6) {
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, ip, sizeof(ip));
		if (with_port)
			snprintf(buf, len, "[%s]:%u", ip, smc_addr_port(ss));
		else
			snprintf(buf, len, "%s", ip);
	} else if (ss->ss_family == AF_INET) {
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, ip, sizeof(ip));
		if (with_port)
			snprintf(buf, len, "%s:%u", ip, smc_addr_port(ss));
		else
			snprintf(buf, len, "%s", ip);
	} else {
		snprintf(buf, len, "<af%u>", ss->ss_family);
	}
	return buf;
}
