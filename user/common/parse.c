// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Number parsers for option values (see parse.h). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "parse.h"

/* thread-local, as the library's sockmesh_errmsg(): no caller shares it */
static __thread char errbuf[512];

void smc_set_err(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
}

const char *smc_errmsg(void)
{
	return errbuf[0] ? errbuf : "no error";
}

int smc_parse_u32(const char *field, const char *s, uint32_t max, uint32_t *out)
{
	unsigned long long v = 0;
	const char *p = s;

	if (!s || !*s) {
		smc_set_err("%s: empty value", field);
		return -EINVAL;
	}
	for (; *p; p++) {
		/* stop before v can overflow: anything past 2^32 is out anyway */
		if (!isdigit((unsigned char)*p) || v > 0xffffffffull) {
			smc_set_err("%s: '%s' is not a number", field, s);
			return -EINVAL;
		}
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (v > max) {
		smc_set_err("%s: '%s' is out of range (max %u)", field, s, max);
		return -ERANGE;
	}
	*out = (uint32_t)v;
	return 0;
}

int smc_parse_u32_c(const char *field, const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s) {
		smc_set_err("%s: empty value", field);
		return -EINVAL;
	}
	/* strtoull would take a sign and leading space, and wrap "-1" */
	if (!isdigit((unsigned char)s[0])) {
		smc_set_err("%s: '%s' is not a number", field, s);
		return -EINVAL;
	}
	errno = 0;
	v = strtoull(s, &end, 0);
	if (*end) {
		smc_set_err("%s: '%s' is not a number", field, s);
		return -EINVAL;
	}
	if (errno == ERANGE || v > max || v < min) {
		if (min)
			smc_set_err("%s: '%s' is out of range (%u..%u)", field, s, min, max);
		else
			smc_set_err("%s: '%s' is out of range (max %u)", field, s, max);
		return -ERANGE;
	}
	*out = (uint32_t)v;
	return 0;
}

int smc_parse_size(const char *field, const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v = 0, mult = 1;
	const char *p = s;

	if (!s || !*s) {
		smc_set_err("%s: empty value", field);
		return -EINVAL;
	}
	for (; isdigit((unsigned char)*p); p++) {
		if (v > 0xffffffffffull) {
			smc_set_err("%s: '%s' is out of range (max %llu)", field, s,
				    (unsigned long long)max);
			return -ERANGE;
		}
		v = v * 10 + (unsigned)(*p - '0');
	}
	if (p == s)
		goto bad;
	if (*p) {
		switch (*p) {
		case 'K':
			mult = 1ull << 10;
			break;
		case 'M':
			mult = 1ull << 20;
			break;
		case 'G':
			mult = 1ull << 30;
			break;
		default:
			goto bad;
		}
		p++;
		if (*p && strcmp(p, "iB"))
			goto bad;
	}
	if (v > max / mult || v * mult > max || v * mult < min) {
		smc_set_err("%s: '%s' is out of range (%llu..%llu bytes)", field, s,
			    (unsigned long long)min, (unsigned long long)max);
		return -ERANGE;
	}
	*out = v * mult;
	return 0;
bad:
	smc_set_err("%s: '%s' is not a size (bytes, or a number with K, M, G, KiB, MiB, GiB)",
		    field, s);
	return -EINVAL;
}
