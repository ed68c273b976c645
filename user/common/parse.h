/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Number parsers for option values, shared by the front-ends. Same
 * semantics and messages as the library's own (user/lib/policy.c), so a
 * value is accepted or refused the same way whichever tool reads it.
 * Functions return 0 or a negative errno; smc_errmsg() then names the field
 * and the value.
 */
#ifndef SMC_PARSE_H
#define SMC_PARSE_H

#include <stddef.h>
#include <stdint.h>

/* Description of the last failure of an smc_ function on this thread. */
const char *smc_errmsg(void);
void smc_set_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Decimal digits only (no sign, space or prefix), at most max.
 * -EINVAL: "FIELD: empty value", "FIELD: 'S' is not a number";
 * -ERANGE: "FIELD: 'S' is out of range (max MAX)".
 */
int smc_parse_u32(const char *field, const char *s, uint32_t max, uint32_t *out);

/* C integer syntax as strtoul(base 0) reads it ("0x" hex, "0" octal), but
 * no sign or space: for values customarily written in hex (SO_MARK).
 * min..max; errors as smc_parse_u32, with "(MIN..MAX)" when min > 0.
 */
int smc_parse_u32_c(const char *field, const char *s, uint32_t min, uint32_t max, uint32_t *out);

/* A byte count: decimal digits, optionally followed by K, M or G (binary
 * multiples, also written KiB, MiB, GiB), within [min, max].
 */
int smc_parse_size(const char *field, const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
