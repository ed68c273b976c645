/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The CNI specification versions sockmesh-cni serves, in one place for the
 * plugin (user/cni: the cniVersion values it accepts, VERSION's list) and
 * for `sockmesh cni-install` (conflist.c: the conflists it chains the
 * plugin into). Header only: the fuzzer builds the plugin's conf.c with
 * file.c and text.c alone (selftests/fuzz/build.sh).
 */
#ifndef SMC_CNI_VERSION_H
#define SMC_CNI_VERSION_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/* The same list as smc_cni_version(), for messages. */
#define SMC_CNI_VERSIONS_TEXT "0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0"

/* The i-th version served, oldest first; NULL past the last. 0.3.0 is the
 * first with chaining (prevResult); 0.1.0 and 0.2.0 results (ip4/ip6) are
 * not taken.
 */
static inline const char *smc_cni_version(size_t i)
{
	static const char *const v[] = { "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0" };

	return i < sizeof(v) / sizeof(v[0]) ? v[i] : NULL;
}

/* Is v, exactly as written, a version sockmesh-cni serves? */
static inline bool smc_cni_version_served(const char *v)
{
	for (size_t i = 0; smc_cni_version(i); i++)
		if (!strcmp(v, smc_cni_version(i)))
			return true;
	return false;
}

/* A version as libcni reads one (pkg/version ParseVersion): up to three
 * decimal numbers separated by dots, missing ones 0; "" is 0.1.0. False
 * when s is not one.
 */
static inline bool smc_cni_version_parse(const char *s, unsigned long out[3])
{
	out[0] = 0;
	out[1] = *s ? 0 : 1;
	out[2] = 0;
	for (int i = 0; *s; i++) {
		unsigned long n = 0;

		if (i == 3 || *s < '0' || *s > '9')
			return false;
		for (; *s >= '0' && *s <= '9'; s++) {
			if (n > 99999999)
				return false;
			n = n * 10 + (unsigned long)(*s - '0');
		}
		out[i] = n;
		if (*s == '.') {
			if (!*++s)
				return false; /* "1." */
		} else if (*s) {
			return false;
		}
	}
	return true;
}

/* <0, 0, >0 as version a is older than, the same as, newer than b (both
 * must parse).
 */
static inline int smc_cni_version_cmp(const char *a, const char *b)
{
	unsigned long x[3], y[3];

	if (!smc_cni_version_parse(a, x) || !smc_cni_version_parse(b, y))
		return 0;
	for (int i = 0; i < 3; i++)
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	return 0;
}

#endif
