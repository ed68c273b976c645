/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Untrusted text (environment, config values, labels from the maps) made
 * safe to print: as valid UTF-8 for JSON, or escaped for a terminal.
 */
#ifndef SMC_TEXT_H
#define SMC_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Bytes in the valid UTF-8 sequence at s (1 for ASCII but NUL), 0 when s
 * does not start one: a stray or truncated sequence, an overlong form, a
 * surrogate or a code point beyond U+10FFFF.
 */
size_t smc_utf8_seq(const char *s);

/* Whether s is valid UTF-8 throughout. */
bool smc_utf8_valid(const char *s);

/* s into buf (len bytes, NUL-terminated) as valid UTF-8: each byte that
 * starts no valid sequence becomes the text "\xNN". Cut at a character
 * boundary when buf is too small. Returns buf.
 */
char *smc_utf8_clean(char *buf, size_t len, const char *s);

/* The same as a malloc'd copy with each such byte replaced by U+FFFD (what
 * json-c serialized, made valid JSON: its output is ASCII but for the
 * bytes of strings). NULL when out of memory.
 */
char *smc_utf8_fix(const char *s);

/* s into buf (len bytes, NUL-terminated) C-escaped to stay on one line:
 * \\ \n \r \t, and \xNN for other control bytes (C0, DEL, C1) and bytes
 * that start no valid UTF-8 sequence; other UTF-8 is kept. Flags escape
 * more: SMC_ESC_QUOTE '"' as \", SMC_ESC_SPACE ' ' as \x20 (for one field
 * of a line split on spaces). Cut at an escape or character boundary when
 * buf is too small. Returns buf.
 */
#define SMC_ESC_QUOTE 1u
#define SMC_ESC_SPACE 2u
char *smc_text_escape(char *buf, size_t len, const char *s, unsigned int flags);

#endif
