// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target for the front-ends' shared parsers (user/common): the
 * address parser and option values as the option engine checks them.
 *
 * The first byte picks the address forms allowed (SMC_ADDR_* bits); the
 * rest, cut at its first NUL, is one value. It is parsed as an address and
 * as each number type; then split on '\n' into command-line words for the
 * option engine. Besides the sanitizers, every result is checked: a parsed
 * address prints and parses back to itself, a failure leaves nothing
 * behind and its message names the option and the value, and the engine
 * only ever answers 0, help or a usage error with a message.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "opts.h"
#include "parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void __attribute__((noreturn)) fail(const char *what, const char *in)
{
	fprintf(stderr, "fuzz_common: %s\n  input: '%s'\n  errmsg: '%s'\n", what, in, smc_errmsg());
	abort();
}

static bool starts_with(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static void check_addr(const char *in, unsigned int flags)
{
	char buf[SMC_ADDR_STRLEN];
	struct smc_addr a, b;
	int err = smc_parse_addr("--addr", in, flags, &a);

	if (err) {
		if (err != -EINVAL && err != -ERANGE)
			fail("address: error other than -EINVAL/-ERANGE", in);
		if (a.ss.ss_family != AF_UNSPEC || a.len)
			fail("address: failure left a result", in);
		if (!starts_with(smc_errmsg(), "--addr: "))
			fail("address: message does not name the option", in);
		return;
	}
	if (a.ss.ss_family == AF_INET  ? a.len != sizeof(struct sockaddr_in) :
	    a.ss.ss_family == AF_INET6 ? a.len != sizeof(struct sockaddr_in6) :
					 true)
		fail("address: family and length disagree", in);
	if (smc_addr_port(&a.ss) == 0 && !(flags & (SMC_ADDR_PORT0 | SMC_ADDR_BARE)))
		fail("address: port 0 without SMC_ADDR_PORT0", in);
	/* what we print parses back to the same address */
	smc_addr_str(&a.ss, true, buf, sizeof(buf));
	if (smc_parse_addr("--addr", buf, SMC_ADDR_PORT | SMC_ADDR_PORT0, &b))
		fail("address: printed form does not parse", buf);
	if (b.len != a.len || memcmp(&a.ss, &b.ss, a.len))
		fail("address: printed form parses to another address", buf);
}

static void check_numbers(const char *in)
{
	uint32_t u;
	uint64_t z;
	int err;

	err = smc_parse_u32("--n", in, 65535, &u);
	if (!err && u > 65535)
		fail("u32: above max", in);
	if (err && !starts_with(smc_errmsg(), "--n: "))
		fail("u32: message does not name the option", in);
	err = smc_parse_u32_c("--n", in, 1, 0x7fffffff, &u);
	if (!err && (u < 1 || u > 0x7fffffff))
		fail("u32_c: out of range", in);
	err = smc_parse_size("--n", in, 4096, 1ull << 30, &z);
	if (!err && (z < 4096 || z > (1ull << 30)))
		fail("size: out of range", in);
	if (err && !starts_with(smc_errmsg(), "--n: "))
		fail("size: message does not name the option", in);
}

enum { F_STR, F_PORT, F_U32, F_SIZE, F_ADDR, F_FLAG, F_MARK, F_HELP };

static const struct smc_opt table[] = {
	{ .id = F_STR,
	  .name = "name",
	  .short_opt = 'n',
	  .arg = "S",
	  .type = SMC_OPT_STRING,
	  .flags = SMC_OPT_NONEMPTY },
	{ .id = F_PORT, .name = "port", .short_opt = 'p', .arg = "PORT", .type = SMC_OPT_PORT },
	{ .id = F_U32, .name = "count", .arg = "N", .type = SMC_OPT_U32, .min = 1, .max = 100 },
	{ .id = F_SIZE,
	  .name = "size",
	  .arg = "SIZE",
	  .type = SMC_OPT_SIZE,
	  .min = 1,
	  .max = 1ull << 30 },
	{ .id = F_ADDR,
	  .name = "listen",
	  .short_opt = 'l',
	  .arg = "ADDR:PORT",
	  .type = SMC_OPT_ADDR,
	  .flags = SMC_OPT_REPEAT },
	{ .id = F_FLAG, .name = "all", .short_opt = 'a' },
	{ .id = F_MARK, .name = "mark", .arg = "N", .type = SMC_OPT_U32, .flags = SMC_OPT_C_INT },
	{ .id = F_HELP, .name = "help", .short_opt = 'h', .flags = SMC_OPT_HELP },
};

static void check_engine(char *words, const char *in)
{
	char *argv[34] = { "fuzz" };
	struct smc_opts s;
	int argc = 1, rc;

	for (char *w = words; w && argc < 33;) {
		char *nl = strchr(w, '\n');

		if (nl)
			*nl = '\0';
		argv[argc++] = w;
		w = nl ? nl + 1 : NULL;
	}
	argv[argc] = NULL;
	smc_opts_init(&s, "fuzz");
	s.permute = (unsigned char)in[0] & 1;
	if (smc_opts_add_table(&s, table, sizeof(table) / sizeof(table[0])))
		fail("engine: table refused", in);
	rc = smc_opts_parse(&s, argc, argv);
	if (rc == SMC_EXIT_USAGE) {
		if (!s.err.msg[0] || s.err.kind == SMC_OPT_E_NONE)
			fail("engine: usage error without a message", in);
		if (s.err.kind == SMC_OPT_E_VALUE && (!s.err.opt || !s.err.value))
			fail("engine: value error without option or value", in);
		return;
	}
	if (rc != 0 && rc != SMC_OPTS_HELP)
		fail("engine: unexpected return", in);
	if (rc == 0 && smc_opts_isset(&s, F_PORT) &&
	    (smc_opts_u(&s, F_PORT, 0) < 1 || smc_opts_u(&s, F_PORT, 0) > 65535))
		fail("engine: port out of range accepted", in);
	if (rc == 0 && smc_opts_isset(&s, F_ADDR) && !smc_opts_addr(&s, F_ADDR))
		fail("engine: address option without its address", in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in, *words;
	unsigned int flags;

	if (size < 1)
		return 0;
	flags = data[0] & (SMC_ADDR_PORT | SMC_ADDR_BARE | SMC_ADDR_PORT_ONLY | SMC_ADDR_PORT0);
	in = malloc(size);
	if (!in)
		return 0;
	memcpy(in, data + 1, size - 1);
	in[size - 1] = '\0';
	check_addr(in, flags ? flags : SMC_ADDR_PORT);
	check_numbers(in);
	words = strdup(in);
	if (words) {
		check_engine(words, in);
		free(words);
	}
	free(in);
	return 0;
}
