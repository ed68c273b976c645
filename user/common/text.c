// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Untrusted text made safe to print. json-c escapes what JSON needs but
 * passes every byte >= 0x80 through as it is: a string that is not UTF-8
 * makes the whole document invalid JSON. Text output has the opposite
 * problem: a newline in a pod name starts a line of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

size_t smc_utf8_seq(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned int cp;
	size_t n;

	if (p[0] == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		n = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		n = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		n = 4;
		cp = p[0] & 0x07;
	} else {
		return 0; /* a continuation byte, an overlong lead or beyond U+10FFFF */
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0; /* also stops at the NUL */
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

bool smc_utf8_valid(const char *s)
{
	while (*s) {
		size_t n = smc_utf8_seq(s);

		if (!n)
			return false;
		s += n;
	}
	return true;
}

char *smc_utf8_clean(char *buf, size_t len, const char *s)
{
	size_t off = 0;

	if (!len)
		return buf;
	for (; *s; s++) {
		size_t n = smc_utf8_seq(s);

		if (n) {
			if (off + n >= len)
				break;
			memcpy(buf + off, s, n);
			off += n;
			s += n - 1;
		} else {
			if (off + 4 >= len)
				break;
			snprintf(buf + off, 5, "\\x%02x", (unsigned char)*s);
			off += 4;
		}
	}
	buf[off] = '\0';
	return buf;
}

char *smc_utf8_fix(const char *s)
{
	/* each bad byte (1) becomes U+FFFD (3) */
	char *out = malloc(strlen(s) * 3 + 1), *o = out;

	if (!out)
		return NULL;
	for (; *s; s++) {
		size_t n = smc_utf8_seq(s);

		if (n) {
			memcpy(o, s, n);
			o += n;
			s += n - 1;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3);
			o += 3;
		}
	}
	*o = '\0';
	return out;
}

char *smc_text_escape(char *buf, size_t len, const char *s, unsigned int flags)
{
	size_t off = 0;

	if (!len)
		return buf;
	for (; *s; s++) {
		const unsigned char c = (unsigned char)*s;
		size_t n = smc_utf8_seq(s);
		char esc[5] = "";

		if (c == '\\' || (c == '"' && (flags & SMC_ESC_QUOTE)))
			snprintf(esc, sizeof(esc), "\\%c", c);
		else if (c == '\n')
			snprintf(esc, sizeof(esc), "\\n");
		else if (c == '\r')
			snprintf(esc, sizeof(esc), "\\r");
		else if (c == '\t')
			snprintf(esc, sizeof(esc), "\\t");
		else if (!n || c < ' ' || c == 0x7f || (c == ' ' && (flags & SMC_ESC_SPACE)) ||
			 (c == 0xc2 && (unsigned char)s[1] < 0xa0)) /* C1: U+0080-U+009F */
			snprintf(esc, sizeof(esc), "\\x%02x", c);
		if (esc[0]) {
			size_t e = strlen(esc);

			if (off + e >= len)
				break;
			memcpy(buf + off, esc, e);
			off += e;
		} else {
			if (off + n >= len)
				break;
			memcpy(buf + off, s, n);
			off += n;
			s += n - 1;
		}
	}
	buf[off] = '\0';
	return buf;
}
