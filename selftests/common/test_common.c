// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests of the front-ends' shared code (user/common): the option
 * engine (parsing, every error text, subsets, run-time entries, help text),
 * the address parser, the bounded file reader, the number parsers and the
 * CNI versions a conflist may have to be chained into. The texts are
 * compared whole: the tools print them and tests grep them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "addr.h"
#include "cni_version.h"
#include "conflist.h"
#include "file.h"
#include "opts.h"
#include "parse.h"
#include "proc.h"
#include "sm_test.h"
#include "text.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* ---- assertions that say what they got ----------------------------------- */

static void __attribute__((format(printf, 3, 4))) check_at(int line, bool ok, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (!ok)
		fprintf(stderr, "\n  %s:%d: %s\n", __FILE__, line, buf);
	CU_assertImplementation(ok ? CU_TRUE : CU_FALSE, (unsigned int)line, buf, __FILE__, "",
				CU_FALSE);
}

#define EXPECT_INT_EQ(got, exp)                                                            \
	do {                                                                               \
		long long g_ = (long long)(got), e_ = (long long)(exp);                    \
		check_at(__LINE__, g_ == e_, "%s: got %lld, expected %lld", #got, g_, e_); \
	} while (0)

#define EXPECT_STR_EQ(got, exp)                                                   \
	do {                                                                      \
		const char *g_ = (got), *e_ = (exp);                              \
		check_at(__LINE__, (g_ && e_) ? strcmp(g_, e_) == 0 : g_ == e_,   \
			 "%s: got '%s', expected '%s'", #got, g_ ? g_ : "(null)", \
			 e_ ? e_ : "(null)");                                     \
	} while (0)

/* ---- the option engine ---------------------------------------------------- */

enum { T_NAME, T_PORT, T_COUNT, T_SIZE, T_ADDR, T_FLAG, T_MARK, T_PATH, T_HELP, T_N };

/* a global table as the CLI has: commands pick from it */
static const struct smc_opt table[] = {
	{ .id = T_NAME, .name = "name", .arg = "NAME", .type = SMC_OPT_STRING, .help = "a name" },
	{ .id = T_PORT,
	  .name = "port",
	  .short_opt = 'p',
	  .arg = "PORT",
	  .type = SMC_OPT_PORT,
	  .help = "a port",
	  .def = "15001" },
	{ .id = T_COUNT,
	  .name = "count",
	  .short_opt = 'c',
	  .arg = "N",
	  .type = SMC_OPT_U32,
	  .min = 1,
	  .max = 100,
	  .help = "how many" },
	{ .id = T_SIZE,
	  .name = "size",
	  .arg = "SIZE",
	  .type = SMC_OPT_SIZE,
	  .min = 1024,
	  .max = 1ull << 30,
	  .help = "bytes" },
	{ .id = T_ADDR,
	  .name = "listen",
	  .short_opt = 'l',
	  .arg = "ADDR:PORT",
	  .type = SMC_OPT_ADDR,
	  .help = "where" },
	{ .id = T_FLAG, .name = "all", .short_opt = 'a', .help = "everything" },
	{ .id = T_MARK,
	  .name = "mark",
	  .arg = "N",
	  .type = SMC_OPT_U32,
	  .flags = SMC_OPT_C_INT,
	  .help = "a mark" },
	{ .id = T_PATH,
	  .name = "path",
	  .arg = "FILE",
	  .type = SMC_OPT_STRING,
	  .flags = SMC_OPT_NONEMPTY,
	  .help = "a file\nsecond line" },
	{ .id = T_HELP,
	  .name = "help",
	  .short_opt = 'h',
	  .flags = SMC_OPT_HELP | SMC_OPT_HIDE_SHORT,
	  .help = "show this help" },
};

/* parse a NULL-terminated word list with the whole table */
static int parse_words(struct smc_opts *s, const char *const *words)
{
	static char *argv[32];
	int argc = 0;

	for (; *words && argc < 31; words++)
		argv[argc++] = (char *)*words;
	argv[argc] = NULL;
	return smc_opts_parse(s, argc, argv);
}

static int parse_all(struct smc_opts *s, const char *const *words)
{
	smc_opts_init(s, "prog cmd");
	EXPECT_INT_EQ(smc_opts_add_table(s, table, ARRAY_SIZE(table)), 0);
	return parse_words(s, words);
}

#define WORDS(...) ((const char *const[]){ "cmd", __VA_ARGS__, NULL })

static void test_opts_good(void)
{
	struct smc_opts s;
	char buf[SMC_ADDR_STRLEN];
	const struct smc_addr *a;

	EXPECT_INT_EQ(
		parse_all(&s, WORDS("--name", "x", "-p", "80", "--count=7", "--size", "4K", "-l",
				    "[::1]:8080", "-a", "--mark", "0x10", "--path=/tmp/f")),
		0);
	EXPECT_STR_EQ(smc_opts_str(&s, T_NAME), "x");
	EXPECT_INT_EQ(smc_opts_u(&s, T_PORT, 0), 80);
	EXPECT_INT_EQ(smc_opts_u(&s, T_COUNT, 0), 7);
	EXPECT_INT_EQ(smc_opts_u(&s, T_SIZE, 0), 4096);
	EXPECT_INT_EQ(smc_opts_u(&s, T_MARK, 0), 16);
	EXPECT_INT_EQ(smc_opts_isset(&s, T_FLAG), 1);
	EXPECT_STR_EQ(smc_opts_str(&s, T_PATH), "/tmp/f");
	a = smc_opts_addr(&s, T_ADDR);
	CU_ASSERT_PTR_NOT_NULL_FATAL(a);
	EXPECT_STR_EQ(smc_addr_str(&a->ss, true, buf, sizeof(buf)), "[::1]:8080");
	EXPECT_INT_EQ(a->len, sizeof(struct sockaddr_in6));
	EXPECT_INT_EQ(s.optind, 14);

	/* nothing given: defaults of the caller */
	EXPECT_INT_EQ(parse_all(&s, WORDS("-a")), 0);
	EXPECT_INT_EQ(smc_opts_isset(&s, T_PORT), 0);
	EXPECT_INT_EQ(smc_opts_u(&s, T_PORT, 15001), 15001);
	CU_ASSERT_PTR_NULL(smc_opts_str(&s, T_NAME));
	CU_ASSERT_PTR_NULL(smc_opts_addr(&s, T_ADDR));
	/* short flags cluster; a value may be glued to its short flag */
	EXPECT_INT_EQ(parse_all(&s, WORDS("-ap81")), 0);
	EXPECT_INT_EQ(smc_opts_isset(&s, T_FLAG), 1);
	EXPECT_INT_EQ(smc_opts_u(&s, T_PORT, 0), 81);
	/* unique prefixes of long names, as getopt_long takes them */
	EXPECT_INT_EQ(parse_all(&s, WORDS("--cou", "3")), 0);
	EXPECT_INT_EQ(smc_opts_u(&s, T_COUNT, 0), 3);
	/* "--" ends the options */
	smc_opts_init(&s, "prog");
	s.allow_args = true;
	smc_opts_add_table(&s, table, ARRAY_SIZE(table));
	EXPECT_INT_EQ(parse_words(&s, WORDS("-a", "--", "--name")), 0);
	EXPECT_INT_EQ(s.optind, 3);
	EXPECT_INT_EQ(smc_opts_isset(&s, T_NAME), 0);
}

struct err_case {
	const char *const *words;
	enum smc_opt_error kind;
	const char *msg;
};

static void test_opts_errors(void)
{
	const struct err_case cases[] = {
		{ WORDS("--bogus"), SMC_OPT_E_UNKNOWN,
		  "unknown option '--bogus' (see 'prog cmd -h')" },
		{ WORDS("--bogus=1"), SMC_OPT_E_UNKNOWN,
		  "unknown option '--bogus=1' (see 'prog cmd -h')" },
		{ WORDS("-k"), SMC_OPT_E_UNKNOWN, "unknown option '-k' (see 'prog cmd -h')" },
		{ WORDS("-ak"), SMC_OPT_E_UNKNOWN, "unknown option '-k' (see 'prog cmd -h')" },
		/* a flag given a value: not an option of that form */
		{ WORDS("--all=1"), SMC_OPT_E_UNKNOWN,
		  "unknown option '--all=1' (see 'prog cmd -h')" },
		{ WORDS("--name"), SMC_OPT_E_NEEDS_VALUE, "option '--name' needs a value" },
		{ WORDS("--na"), SMC_OPT_E_NEEDS_VALUE, "option '--name' needs a value" },
		{ WORDS("-p"), SMC_OPT_E_NEEDS_VALUE, "option '-p' needs a value" },
		{ WORDS("-a", "-a"), SMC_OPT_E_TWICE, "option '--all' given twice" },
		{ WORDS("-p", "1", "--port=2"), SMC_OPT_E_TWICE, "option '--port' given twice" },
		{ WORDS("stray"), SMC_OPT_E_ARGUMENT, "unexpected argument 'stray'" },
		/* without permute, options after an argument are arguments */
		{ WORDS("-a", "stray", "--bogus"), SMC_OPT_E_ARGUMENT,
		  "unexpected argument 'stray'" },
		{ WORDS("--port", "x"), SMC_OPT_E_VALUE, "--port: 'x' is not a number" },
		{ WORDS("--port", "0"), SMC_OPT_E_VALUE, "--port: '0' is not a port (1-65535)" },
		{ WORDS("--port", "65536"), SMC_OPT_E_VALUE,
		  "--port: '65536' is out of range (max 65535)" },
		{ WORDS("--port="), SMC_OPT_E_VALUE, "--port: empty value" },
		{ WORDS("-c", "0"), SMC_OPT_E_VALUE, "--count: '0' is out of range (1..100)" },
		{ WORDS("-c", "101"), SMC_OPT_E_VALUE, "--count: '101' is out of range (max 100)" },
		{ WORDS("-c", "-1"), SMC_OPT_E_VALUE, "--count: '-1' is not a number" },
		{ WORDS("--size", "1"), SMC_OPT_E_VALUE,
		  "--size: '1' is out of range (1024..1073741824 bytes)" },
		{ WORDS("--size", "1X"), SMC_OPT_E_VALUE,
		  "--size: '1X' is not a size (bytes, or a number with K, M, G, KiB, MiB, GiB)" },
		{ WORDS("--mark", "0xzz"), SMC_OPT_E_VALUE, "--mark: '0xzz' is not a number" },
		{ WORDS("--mark", "0x100000000"), SMC_OPT_E_VALUE,
		  "--mark: '0x100000000' is out of range (max 4294967295)" },
		{ WORDS("--path="), SMC_OPT_E_VALUE, "--path: empty value" },
		{ WORDS("-l", "1.2.3.4"), SMC_OPT_E_VALUE,
		  "--listen: '1.2.3.4' is not ADDR:PORT (1.2.3.4:80, [::1]:80)" },
		{ WORDS("-l", "1.2.3.4:0"), SMC_OPT_E_VALUE,
		  "--listen: '1.2.3.4:0': port '0' is not 1-65535" },
	};
	struct smc_opts s;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		EXPECT_INT_EQ(parse_all(&s, cases[i].words), SMC_EXIT_USAGE);
		EXPECT_INT_EQ(s.err.kind, cases[i].kind);
		EXPECT_STR_EQ(s.err.msg, cases[i].msg);
	}
	/* the error names the entry, the word and the value */
	parse_all(&s, WORDS("--port", "x"));
	CU_ASSERT_PTR_EQUAL(s.err.opt, &table[1]);
	EXPECT_STR_EQ(s.err.value, "x");
	EXPECT_STR_EQ(s.err.word, "x");
	EXPECT_INT_EQ(s.err.code, -EINVAL);
	parse_all(&s, WORDS("-k"));
	EXPECT_INT_EQ(s.err.short_opt, 'k');
	CU_ASSERT_PTR_NULL(s.err.opt);
	parse_all(&s, WORDS("--bogus"));
	EXPECT_INT_EQ(s.err.short_opt, 0);
	/* a short flag's value error still names the long option */
	parse_all(&s, WORDS("-c", "x"));
	EXPECT_STR_EQ(s.err.msg, "--count: 'x' is not a number");
}

static void test_opts_help_and_order(void)
{
	struct smc_opts s;
	static const struct smc_opt plain_help = { .id = 1, .name = "help", .short_opt = 'h' };

	/* help stops at once: what follows is not looked at */
	EXPECT_INT_EQ(parse_all(&s, WORDS("-h", "--bogus")), SMC_OPTS_HELP);
	EXPECT_INT_EQ(parse_all(&s, WORDS("--help", "stray")), SMC_OPTS_HELP);
	EXPECT_INT_EQ(parse_all(&s, WORDS("--bogus", "-h")), SMC_EXIT_USAGE);
	/* a plain help flag is only a flag: the caller decides after the parse */
	smc_opts_init(&s, "prog");
	smc_opts_add(&s, &plain_help);
	EXPECT_INT_EQ(parse_words(&s, WORDS("-h")), 0);
	EXPECT_INT_EQ(smc_opts_isset(&s, 1), 1);
	EXPECT_INT_EQ(parse_words(&s, WORDS("-h", "--bogus")), SMC_EXIT_USAGE);
	EXPECT_STR_EQ(s.err.msg, "unknown option '--bogus' (see 'prog -h')");
	/* GNU order: options after arguments, then the argument is the error */
	smc_opts_init(&s, "prog");
	s.permute = true;
	smc_opts_add_table(&s, table, ARRAY_SIZE(table));
	EXPECT_INT_EQ(parse_words(&s, WORDS("stray", "--bogus")), SMC_EXIT_USAGE);
	EXPECT_INT_EQ(s.err.kind, SMC_OPT_E_UNKNOWN);
	EXPECT_INT_EQ(parse_words(&s, WORDS("stray", "-a")), SMC_EXIT_USAGE);
	EXPECT_STR_EQ(s.err.msg, "unexpected argument 'stray'");
	/* arguments allowed: they start at optind */
	s.allow_args = true;
	EXPECT_INT_EQ(parse_words(&s, WORDS("one", "-a", "two")), 0);
	EXPECT_INT_EQ(s.optind, 2);
	EXPECT_INT_EQ(smc_opts_isset(&s, T_FLAG), 1);
}

static void test_opts_subsets(void)
{
	static const int cmd_ids[] = { T_FLAG, T_PORT, T_HELP, -1 };
	static const int bad_ids[] = { T_FLAG, 42, -1 };
	struct smc_opts s;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	smc_opts_init(&s, "prog sub");
	EXPECT_INT_EQ(smc_opts_add_ids(&s, table, ARRAY_SIZE(table), cmd_ids), 0);
	EXPECT_INT_EQ(s.n, 3);
	EXPECT_INT_EQ(parse_words(&s, WORDS("-a", "--port", "9")), 0);
	EXPECT_INT_EQ(smc_opts_u(&s, T_PORT, 0), 9);
	/* an option of the global table the command did not pick */
	EXPECT_INT_EQ(parse_words(&s, WORDS("--name", "x")), SMC_EXIT_USAGE);
	EXPECT_STR_EQ(s.err.msg, "unknown option '--name' (see 'prog sub -h')");
	EXPECT_INT_EQ(parse_words(&s, WORDS("-c", "1")), SMC_EXIT_USAGE);
	EXPECT_STR_EQ(s.err.msg, "unknown option '-c' (see 'prog sub -h')");
	/* the subset's help, in the subset's order */
	f = open_memstream(&text, &len);
	smc_opts_help(f, &s, 4, 20);
	fclose(f);
	EXPECT_STR_EQ(text, "    -a, --all            everything\n"
			    "    -p, --port PORT      a port\n"
			    "                         (default 15001)\n"
			    "        --help           show this help\n");
	free(text);

	smc_opts_init(&s, "prog");
	EXPECT_INT_EQ(smc_opts_add_ids(&s, table, ARRAY_SIZE(table), bad_ids), -ENOENT);
	/* the same entry twice, a taken short flag, a taken id */
	smc_opts_init(&s, "prog");
	EXPECT_INT_EQ(smc_opts_add(&s, &table[0]), 0);
	EXPECT_INT_EQ(smc_opts_add(&s, &table[0]), -EEXIST);
	{
		const struct smc_opt dup_short = { .id = 50, .name = "other", .short_opt = 'p' };
		const struct smc_opt dup_id = { .id = T_NAME, .name = "third" };
		const struct smc_opt flag_with_type = { .id = 51,
							.name = "x",
							.type = SMC_OPT_U32 };

		EXPECT_INT_EQ(smc_opts_add(&s, &table[1]), 0);
		EXPECT_INT_EQ(smc_opts_add(&s, &dup_short), -EEXIST);
		EXPECT_INT_EQ(smc_opts_add(&s, &dup_id), -EEXIST);
		EXPECT_INT_EQ(smc_opts_add(&s, &flag_with_type), -EINVAL);
	}
}

/* Entries made at run time, as the CLI makes them from the policy schema. */
static void test_opts_runtime(void)
{
	static const char *const names[] = { "alpha", "beta-port", "gamma" };
	struct smc_opt gen[ARRAY_SIZE(names)];
	char help[ARRAY_SIZE(names)][32];
	struct smc_opts s;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		snprintf(help[i], sizeof(help[i]), "field %zu", i);
		gen[i] = (struct smc_opt){ .id = 100 + (int)i,
					   .name = names[i],
					   .arg = "V",
					   .type = i == 1 ? SMC_OPT_PORT : SMC_OPT_STRING,
					   .help = help[i] };
	}
	smc_opts_init(&s, "prog enable");
	EXPECT_INT_EQ(smc_opts_add_table(&s, table, 2), 0);
	for (size_t i = 0; i < ARRAY_SIZE(gen); i++)
		EXPECT_INT_EQ(smc_opts_add(&s, &gen[i]), 0);
	EXPECT_INT_EQ(parse_words(&s, WORDS("--alpha", "a", "--beta-port", "53", "--name", "n")),
		      0);
	EXPECT_STR_EQ(smc_opts_str(&s, 100), "a");
	EXPECT_INT_EQ(smc_opts_u(&s, 101, 0), 53);
	EXPECT_STR_EQ(smc_opts_str(&s, T_NAME), "n");
	EXPECT_INT_EQ(parse_words(&s, WORDS("--beta-port", "0")), SMC_EXIT_USAGE);
	EXPECT_STR_EQ(s.err.msg, "--beta-port: '0' is not a port (1-65535)");
	EXPECT_INT_EQ(parse_words(&s, WORDS("--gamma")), SMC_EXIT_USAGE);
	EXPECT_STR_EQ(s.err.msg, "option '--gamma' needs a value");
	/* full */
	{
		static struct smc_opt many[SMC_OPTS_MAX + 1];
		static char nm[SMC_OPTS_MAX + 1][16];
		size_t i;
		int err = 0;

		smc_opts_init(&s, "prog");
		for (i = 0; i <= SMC_OPTS_MAX && !err; i++) {
			snprintf(nm[i], sizeof(nm[i]), "o%zu", i);
			many[i] = (struct smc_opt){ .id = (int)i, .name = nm[i] };
			err = smc_opts_add(&s, &many[i]);
		}
		EXPECT_INT_EQ(err, -ENOSPC);
		EXPECT_INT_EQ(s.n, SMC_OPTS_MAX);
		EXPECT_INT_EQ(parse_words(&s, WORDS("--o95", "--o0")), 0);
		EXPECT_INT_EQ(smc_opts_isset(&s, 95), 1);
	}
}

struct collect {
	int n;
	char seen[4][SMC_ADDR_STRLEN];
};

static int collect_fn(const struct smc_opt *o, const char *value, const union smc_optval *v,
		      void *ctx, struct smc_opt_err *err)
{
	struct collect *c = ctx;

	if (o->id != T_ADDR)
		return 0;
	if (c->n == 2) {
		snprintf(err->msg, sizeof(err->msg), "--listen: '%s': two are enough", value);
		return -E2BIG;
	}
	smc_addr_str(&v->addr.ss, true, c->seen[c->n++], SMC_ADDR_STRLEN);
	return 0;
}

static void test_opts_repeat_callback(void)
{
	static const struct smc_opt rep[] = {
		{ .id = T_ADDR,
		  .name = "listen",
		  .short_opt = 'l',
		  .arg = "ADDR:PORT",
		  .type = SMC_OPT_ADDR,
		  .addr_flags = SMC_ADDR_PORT | SMC_ADDR_PORT0,
		  .flags = SMC_OPT_REPEAT },
		{ .id = T_NAME,
		  .name = "name",
		  .arg = "N",
		  .type = SMC_OPT_STRING,
		  .flags = SMC_OPT_REPEAT },
	};
	struct collect c = { 0 };
	struct smc_opts s;

	smc_opts_init(&s, "prog");
	smc_opts_add_table(&s, rep, ARRAY_SIZE(rep));
	s.fn = collect_fn;
	s.ctx = &c;
	EXPECT_INT_EQ(parse_words(&s, WORDS("-l", "127.0.0.1:0", "--name", "a", "--listen",
					    "[::1]:15001", "--name", "b")),
		      0);
	EXPECT_INT_EQ(c.n, 2);
	EXPECT_STR_EQ(c.seen[0], "127.0.0.1:0");
	EXPECT_STR_EQ(c.seen[1], "[::1]:15001");
	/* the last one counts */
	EXPECT_STR_EQ(smc_opts_str(&s, T_NAME), "b");
	c.n = 0;
	EXPECT_INT_EQ(
		parse_words(&s, WORDS("-l", "1.1.1.1:1", "-l", "1.1.1.1:2", "-l", "1.1.1.1:3")),
		SMC_EXIT_USAGE);
	EXPECT_INT_EQ(s.err.kind, SMC_OPT_E_CALLBACK);
	EXPECT_INT_EQ(s.err.code, -E2BIG);
	EXPECT_STR_EQ(s.err.value, "1.1.1.1:3");
	EXPECT_STR_EQ(s.err.msg, "--listen: '1.1.1.1:3': two are enough");
}

static void test_opts_help_text(void)
{
	static const struct smc_opt help_tab[] = {
		{ .id = 0,
		  .name = "listen",
		  .short_opt = 'l',
		  .arg = "ADDR:PORT",
		  .type = SMC_OPT_ADDR,
		  .help = "listen there;\ndefault 127.0.0.1:15001" },
		{ .id = 1,
		  .name = "pin-dir",
		  .arg = "DIR",
		  .type = SMC_OPT_STRING,
		  .help = "bpffs directory",
		  .def = "/sys/fs/bpf/sockmesh" },
		{ .id = 2, .name = "version", .short_opt = 'V', .help = "print the version" },
	};
	struct smc_opts s;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	smc_opts_init(&s, "prog");
	smc_opts_add_table(&s, help_tab, ARRAY_SIZE(help_tab));
	f = open_memstream(&text, &len);
	smc_opts_help(f, &s, 2, 25);
	fclose(f);
	EXPECT_STR_EQ(text, "  -l, --listen ADDR:PORT    listen there;\n"
			    "                            default 127.0.0.1:15001\n"
			    "      --pin-dir DIR         bpffs directory\n"
			    "                            (default /sys/fs/bpf/sockmesh)\n"
			    "  -V, --version             print the version\n");
	free(text);
}

/* ---- addresses ------------------------------------------------------------ */

struct addr_case {
	const char *in;
	unsigned int flags;
	int err;
	const char *out; /* smc_addr_str with port, or the error message */
};

static void test_addr(void)
{
	const unsigned int P = SMC_ADDR_PORT, B = SMC_ADDR_BARE, O = SMC_ADDR_PORT_ONLY,
			   Z = SMC_ADDR_PORT0;
	const struct addr_case cases[] = {
		{ "127.0.0.1:15095", P, 0, "127.0.0.1:15095" },
		{ "[::1]:15095", P, 0, "[::1]:15095" },
		{ "[2001:db8::1]:80", P, 0, "[2001:db8::1]:80" },
		{ "[::ffff:1.2.3.4]:80", P, 0, "[::ffff:1.2.3.4]:80" },
		{ "0.0.0.0:0", P | Z, 0, "0.0.0.0:0" },
		{ "1.2.3.4", B, 0, "1.2.3.4:0" },
		{ "::1", B, 0, "[::1]:0" },
		{ "[::1]", B, 0, "[::1]:0" },
		{ "::1", B | P, 0, "[::1]:0" },
		{ "1.2.3.4:80", B | P, 0, "1.2.3.4:80" },
		{ "8080", O, 0, "0.0.0.0:8080" },
		{ "1.2.3.4:8080", O | P, 0, "1.2.3.4:8080" },
		{ "", P, -EINVAL, "--x: empty value" },
		{ "1.2.3.4", P, -EINVAL, "--x: '1.2.3.4' is not ADDR:PORT (1.2.3.4:80, [::1]:80)" },
		{ "[::1]", P, -EINVAL, "--x: '[::1]' is not ADDR:PORT (1.2.3.4:80, [::1]:80)" },
		{ "::1:80", P, -EINVAL, "--x: '::1:80' is not ADDR:PORT (1.2.3.4:80, [::1]:80)" },
		{ ":80", P, -EINVAL, "--x: ':80' is not ADDR:PORT (1.2.3.4:80, [::1]:80)" },
		{ "[::1]80", P, -EINVAL, "--x: '[::1]80' is not ADDR:PORT (1.2.3.4:80, [::1]:80)" },
		{ "[]:80", P, -EINVAL, "--x: '[]:80' is not ADDR:PORT (1.2.3.4:80, [::1]:80)" },
		{ "[::1:80", P, -EINVAL, "--x: '[::1:80' is not ADDR:PORT (1.2.3.4:80, [::1]:80)" },
		{ "1.2.3.4:80", B, -EINVAL,
		  "--x: '1.2.3.4:80' is not an IPv4 or IPv6 address (1.2.3.4, ::1, [::1])" },
		{ "[::1]:80", B, -EINVAL,
		  "--x: '[::1]:80' is not an IPv4 or IPv6 address (1.2.3.4, ::1, [::1])" },
		{ "[1.2.3.4]:80", P, -EINVAL,
		  "--x: '[1.2.3.4]:80': '1.2.3.4' is not a numeric IPv6 address" },
		{ "localhost:80", P, -EINVAL,
		  "--x: 'localhost:80': 'localhost' is not a numeric IPv4 address" },
		{ "1.2.3:80", P, -EINVAL,
		  "--x: '1.2.3:80': '1.2.3' is not a numeric IPv4 address" },
		{ "fe80::1%lo", B, -EINVAL,
		  "--x: 'fe80::1%lo': 'fe80::1%lo' is not a numeric IPv6 address" },
		{ "1.2.3.4:99999", P | Z, -ERANGE,
		  "--x: '1.2.3.4:99999': port '99999' is not 0-65535" },
		{ "1.2.3.4:0", P, -ERANGE, "--x: '1.2.3.4:0': port '0' is not 1-65535" },
		{ "1.2.3.4:", P, -ERANGE, "--x: '1.2.3.4:': port '' is not 1-65535" },
		{ "[::1]:-1", P, -ERANGE, "--x: '[::1]:-1': port '-1' is not 1-65535" },
		{ "[::1]:+80", P, -ERANGE, "--x: '[::1]:+80': port '+80' is not 1-65535" },
		{ "0", O, -ERANGE, "--x: '0': port '0' is not 1-65535" },
	};
	char buf[SMC_ADDR_STRLEN];
	struct smc_addr a;

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int err = smc_parse_addr("--x", cases[i].in, cases[i].flags, &a);

		EXPECT_INT_EQ(err, cases[i].err);
		if (err) {
			EXPECT_STR_EQ(smc_errmsg(), cases[i].out);
			EXPECT_INT_EQ(a.ss.ss_family, AF_UNSPEC);
		} else {
			EXPECT_STR_EQ(smc_addr_str(&a.ss, true, buf, sizeof(buf)), cases[i].out);
			EXPECT_INT_EQ(a.len, a.ss.ss_family == AF_INET ?
						     sizeof(struct sockaddr_in) :
						     sizeof(struct sockaddr_in6));
		}
	}
	smc_parse_addr("--x", "[2001:db8::2]:443", SMC_ADDR_PORT, &a);
	EXPECT_INT_EQ(smc_addr_port(&a.ss), 443);
	EXPECT_STR_EQ(smc_addr_str(&a.ss, false, buf, sizeof(buf)), "2001:db8::2");
}

/* ---- numbers -------------------------------------------------------------- */

static void test_parse_numbers(void)
{
	uint32_t u;
	uint64_t z;

	EXPECT_INT_EQ(smc_parse_u32("--n", "4294967295", UINT32_MAX, &u), 0);
	EXPECT_INT_EQ(u, 4294967295u);
	EXPECT_INT_EQ(smc_parse_u32("--n", "010", 100, &u), 0);
	EXPECT_INT_EQ(u, 10);
	EXPECT_INT_EQ(smc_parse_u32("--n", "4294967296", UINT32_MAX, &u), -ERANGE);
	EXPECT_STR_EQ(smc_errmsg(), "--n: '4294967296' is out of range (max 4294967295)");
	EXPECT_INT_EQ(smc_parse_u32("--n", "99999999999999999999", UINT32_MAX, &u), -EINVAL);
	EXPECT_STR_EQ(smc_errmsg(), "--n: '99999999999999999999' is not a number");
	EXPECT_INT_EQ(smc_parse_u32("--n", " 1", 10, &u), -EINVAL);
	EXPECT_INT_EQ(smc_parse_u32("--n", "+1", 10, &u), -EINVAL);
	EXPECT_INT_EQ(smc_parse_u32("--n", NULL, 10, &u), -EINVAL);
	EXPECT_STR_EQ(smc_errmsg(), "--n: empty value");

	EXPECT_INT_EQ(smc_parse_u32_c("--m", "0x10", 0, UINT32_MAX, &u), 0);
	EXPECT_INT_EQ(u, 16);
	EXPECT_INT_EQ(smc_parse_u32_c("--m", "010", 0, UINT32_MAX, &u), 0);
	EXPECT_INT_EQ(u, 8);
	EXPECT_INT_EQ(smc_parse_u32_c("--m", "0xffffffff", 0, UINT32_MAX, &u), 0);
	EXPECT_INT_EQ(u, 0xffffffffu);
	EXPECT_INT_EQ(smc_parse_u32_c("--m", "08", 0, UINT32_MAX, &u), -EINVAL);
	EXPECT_INT_EQ(smc_parse_u32_c("--m", "-1", 0, UINT32_MAX, &u), -EINVAL);
	EXPECT_INT_EQ(smc_parse_u32_c("--m", " 1", 0, UINT32_MAX, &u), -EINVAL);
	EXPECT_INT_EQ(smc_parse_u32_c("--m", "0", 1, 5, &u), -ERANGE);
	EXPECT_STR_EQ(smc_errmsg(), "--m: '0' is out of range (1..5)");
	EXPECT_INT_EQ(smc_parse_u32_c("--m", "99999999999999999999999", 0, UINT32_MAX, &u),
		      -ERANGE);

	EXPECT_INT_EQ(smc_parse_size("--s", "8MiB", 1, 1ull << 30, &z), 0);
	EXPECT_INT_EQ(z, 8ull << 20);
	EXPECT_INT_EQ(smc_parse_size("--s", "1G", 1, 1ull << 30, &z), 0);
	EXPECT_INT_EQ(z, 1ull << 30);
	EXPECT_INT_EQ(smc_parse_size("--s", "262144", 262144, 1ull << 30, &z), 0);
	EXPECT_INT_EQ(smc_parse_size("--s", "2G", 1, 1ull << 30, &z), -ERANGE);
	EXPECT_STR_EQ(smc_errmsg(), "--s: '2G' is out of range (1..1073741824 bytes)");
	EXPECT_INT_EQ(smc_parse_size("--s", "1Mi", 1, 1ull << 30, &z), -EINVAL);
	EXPECT_INT_EQ(smc_parse_size("--s", "K", 1, 1ull << 30, &z), -EINVAL);
	EXPECT_INT_EQ(smc_parse_size("--s", "", 1, 1ull << 30, &z), -EINVAL);
	EXPECT_STR_EQ(smc_errmsg(), "--s: empty value");
	EXPECT_INT_EQ(smc_parse_size("--s", "99999999999999999999G", 1, 1ull << 30, &z), -ERANGE);
}

/* ---- files ---------------------------------------------------------------- */

static char tmpdir[64];

static void write_file(const char *path, const char *data, size_t n)
{
	FILE *f = fopen(path, "we");

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(fwrite(data, 1, n, f), n);
	fclose(f);
}

static void test_file(void)
{
	char path[128], *t, big[10000];
	size_t len = 0;
	int saved, fd;

	snprintf(path, sizeof(path), "%s/f", tmpdir);
	write_file(path, "{\"a\": 1}\n", 9);
	t = smc_read_file("--f", path, 9, &len);
	EXPECT_STR_EQ(t, "{\"a\": 1}\n");
	EXPECT_INT_EQ(len, 9);
	free(t);
	/* one byte over the limit */
	errno = 0;
	CU_ASSERT_PTR_NULL(smc_read_file("--f", path, 8, NULL));
	EXPECT_INT_EQ(errno, EFBIG);
	{
		char want[256];

		snprintf(want, sizeof(want), "--f: '%s' is longer than 8 bytes", path);
		EXPECT_STR_EQ(smc_errmsg(), want);
	}
	/* larger than the first buffer */
	memset(big, 'x', sizeof(big));
	write_file(path, big, sizeof(big));
	t = smc_read_file("--f", path, sizeof(big), &len);
	CU_ASSERT_PTR_NOT_NULL(t);
	EXPECT_INT_EQ(len, sizeof(big));
	EXPECT_INT_EQ(t ? strlen(t) : 0, sizeof(big));
	free(t);
	CU_ASSERT_PTR_NULL(smc_read_file("--f", path, sizeof(big) - 1, NULL));
	EXPECT_INT_EQ(errno, EFBIG);
	/* empty is text */
	write_file(path, "", 0);
	t = smc_read_file("--f", path, 0, &len);
	EXPECT_STR_EQ(t, "");
	EXPECT_INT_EQ(len, 0);
	free(t);
	/* a NUL byte */
	write_file(path, "ab\0cd", 5);
	CU_ASSERT_PTR_NULL(smc_read_file("--f", path, 100, NULL));
	EXPECT_INT_EQ(errno, EINVAL);
	{
		char want[256];

		snprintf(want, sizeof(want), "--f: '%s' holds a NUL byte: not a text file", path);
		EXPECT_STR_EQ(smc_errmsg(), want);
	}
	/* missing */
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	CU_ASSERT_PTR_NULL(smc_read_file("--from-annotations", path, 100, NULL));
	EXPECT_INT_EQ(errno, ENOENT);
	{
		char want[256];

		snprintf(want, sizeof(want),
			 "--from-annotations: cannot open '%s': No such file or directory", path);
		EXPECT_STR_EQ(smc_errmsg(), want);
	}
	/* a directory opens but does not read */
	CU_ASSERT_PTR_NULL(smc_read_file("--f", tmpdir, 100, NULL));
	EXPECT_INT_EQ(errno, EISDIR);

	/* "-": standard input, left open */
	snprintf(path, sizeof(path), "%s/stdin", tmpdir);
	write_file(path, "from stdin", 10);
	saved = dup(STDIN_FILENO);
	fd = open(path, O_RDONLY);
	CU_ASSERT_FATAL(saved >= 0 && fd >= 0);
	dup2(fd, STDIN_FILENO);
	close(fd);
	t = smc_read_file("--f", "-", 100, &len);
	EXPECT_STR_EQ(t, "from stdin");
	free(t);
	EXPECT_INT_EQ(fcntl(STDIN_FILENO, F_GETFD) >= 0, 1);
	dup2(saved, STDIN_FILENO);
	close(saved);
}

static void test_proc(void)
{
	unsigned long long self = smc_proc_start_ticks(0);

	CU_ASSERT(self > 0);
	EXPECT_INT_EQ(smc_proc_start_ticks(getpid()), self);
	/* pid 1 started first */
	CU_ASSERT(smc_proc_start_ticks(1) <= self);
	EXPECT_INT_EQ(smc_proc_start_ticks(1ll << 40), 0);
}

/* ---- CNI versions --------------------------------------------------------- */

static void test_cni_versions(void)
{
	static const char *const served[] = { "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0" };
	static const char *const bad[] = { "1.", ".1",	   "1..0", "1.0.0.0", "v1",
					   "1x", "1.0.0 ", "-1",   "1.+0",    "123456789012" };
	unsigned long n[3];
	size_t i;

	for (i = 0; smc_cni_version(i); i++)
		EXPECT_STREQ(smc_cni_version(i), i < ARRAY_SIZE(served) ? served[i] : "", "served");
	EXPECT_EQ(i, ARRAY_SIZE(served), "how many served");
	EXPECT_TRUE(smc_cni_version_served("1.1.0"), "1.1.0 served");
	EXPECT_FALSE(smc_cni_version_served("1.1"), "1.1 is not 1.1.0 to a plugin");
	EXPECT_FALSE(smc_cni_version_served("0.2.0"), "0.2.0 not served");
	EXPECT_FALSE(smc_cni_version_served(""), "no version not served");
	/* libcni's ParseVersion: "" is 0.1.0, missing numbers are 0 */
	EXPECT_TRUE(smc_cni_version_parse("", n) && n[0] == 0 && n[1] == 1 && n[2] == 0, "\"\"");
	EXPECT_TRUE(smc_cni_version_parse("1", n) && n[0] == 1 && n[1] == 0 && n[2] == 0, "1");
	EXPECT_TRUE(smc_cni_version_parse("10.20.30", n) && n[0] == 10 && n[1] == 20 && n[2] == 30,
		    "10.20.30");
	for (i = 0; i < ARRAY_SIZE(bad); i++)
		EXPECT_FALSE(smc_cni_version_parse(bad[i], n), bad[i]);
	EXPECT_TRUE(smc_cni_version_cmp("0.3.1", "0.4.0") < 0, "0.3.1 < 0.4.0");
	EXPECT_TRUE(smc_cni_version_cmp("1.10.0", "1.9.0") > 0, "numbers, not text");
	EXPECT_EQ(smc_cni_version_cmp("1.0", "1.0.0"), 0, "1.0 = 1.0.0");
}

/* smc_cni_chain into a conflist of TEXT: the return value, the message,
 * and the file left byte for byte as it was when refused.
 */
static int chain_into(const char *text, char *msg, size_t len)
{
	char path[128], *after;
	json_object *entry = json_tokener_parse("{\"type\": \"" SMC_CNI_PLUGIN "\"}");
	int r;

	snprintf(path, sizeof(path), "%s/c.conflist", tmpdir);
	write_file(path, text, strlen(text));
	msg[0] = '\0';
	r = smc_cni_chain(path, entry, SMC_CNI_PLUGIN, msg, len);
	after = smc_read_file("conflist", path, 1u << 20, NULL);
	if (r < 0)
		EXPECT_STREQ(after, text, "a refused conflist is left as it was");
	else
		EXPECT_TRUE(after && strstr(after, SMC_CNI_PLUGIN), "chained");
	free(after);
	json_object_put(entry);
	unlink(path);
	return r;
}

static void test_cni_chain_versions(void)
{
	static const char *const ok[] = {
		"{\"cniVersion\": \"0.3.1\", \"name\": \"n\", \"plugins\": [{\"type\": \"bridge\"}]}",
		"{\"cniVersion\": \"1.1.0\", \"name\": \"n\", \"plugins\": [{\"type\": \"bridge\"}]}",
		/* a runtime that knows cniVersions uses 1.1.0 */
		"{\"cniVersion\": \"1.0.0\", \"cniVersions\": [\"0.2.0\", \"1.1.0\"], \"name\": \"n\", \"plugins\": []}",
		/* cniVersions alone */
		"{\"cniVersions\": [\"1.0.0\"], \"name\": \"n\", \"plugins\": []}",
	};
	char msg[1024], want[1024];
	const char *text;

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		EXPECT_EQ(chain_into(ok[i], msg, sizeof(msg)), 1, ok[i]);
		EXPECT_STREQ(msg, "", "no message");
	}
	text = "{\"cniVersion\": \"0.2.0\", \"name\": \"n\", \"plugins\": [{\"type\": \"bridge\"}]}\n";
	EXPECT_EQ(chain_into(text, msg, sizeof(msg)), -ENOTSUP, "0.2.0");
	snprintf(
		want, sizeof(want),
		"%s/c.conflist has cniVersion '0.2.0': sockmesh-cni serves 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0, so every ADD would fail; not chained",
		tmpdir);
	EXPECT_STREQ(msg, want, "0.2.0: message");
	text = "{\"cniVersion\": \"1.0.0\", \"cniVersions\": [\"1.0.0\", \"2.0.0\"], \"name\": \"n\", \"plugins\": []}";
	EXPECT_EQ(chain_into(text, msg, sizeof(msg)), -ENOTSUP, "cniVersions up to 2.0.0");
	snprintf(
		want, sizeof(want),
		"%s/c.conflist lists '2.0.0' in cniVersions, the version runtimes that know it use: sockmesh-cni serves 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0, so their ADDs would fail; not chained",
		tmpdir);
	EXPECT_STREQ(msg, want, "2.0.0 in cniVersions: message");
	text = "{\"name\": \"n\", \"plugins\": []}";
	EXPECT_EQ(chain_into(text, msg, sizeof(msg)), -ENOTSUP, "no cniVersion");
	snprintf(
		want, sizeof(want),
		"%s/c.conflist has no cniVersion (0.1.0 implied): sockmesh-cni serves 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0; not chained",
		tmpdir);
	EXPECT_STREQ(msg, want, "no cniVersion: message");
	text = "{\"cniVersion\": 1, \"name\": \"n\", \"plugins\": []}";
	EXPECT_EQ(chain_into(text, msg, sizeof(msg)), -ENOTSUP, "cniVersion a number");
	text = "{\"cniVersion\": \"1.0.0\", \"cniVersions\": [\"1.0.0\", \"one\"], \"name\": \"n\", \"plugins\": []}";
	EXPECT_EQ(chain_into(text, msg, sizeof(msg)), -ENOTSUP, "cniVersions entry not a version");
	snprintf(want, sizeof(want),
		 "%s/c.conflist: cniVersions[1] \"one\" is not a version; not chained", tmpdir);
	EXPECT_STREQ(msg, want, "cniVersions entry: message");
	text = "{\"cniVersion\": \"1.0.0\", \"cniVersions\": \"1.1.0\", \"name\": \"n\", \"plugins\": []}";
	EXPECT_EQ(chain_into(text, msg, sizeof(msg)), -ENOTSUP, "cniVersions not a list");
}

/* ---- text ----------------------------------------------------------------- */

static void test_utf8(void)
{
	static const char *const good[] = { "",
					    "abc",
					    "caf\xc3\xa9",
					    "\xe2\x82\xac",
					    "\xf0\x9f\x98\x80",
					    "\xf4\x8f\xbf\xbf",
					    "\xed\x9f\xbf" };
	static const char *const bad[] = { "\xff",
					   "\x80",
					   "\xc3",
					   "a\xc3(",
					   "\xc0\xaf",
					   "\xe0\x80\xaf",
					   "\xed\xa0\x80",
					   "\xf4\x90\x80\x80",
					   "\xf8\x88\x80\x80\x80",
					   "\xe2\x82" };
	char buf[64], *fixed;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		EXPECT_TRUE(smc_utf8_valid(good[i]), good[i]);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		EXPECT_FALSE(smc_utf8_valid(bad[i]), "invalid UTF-8");
	EXPECT_EQ(smc_utf8_seq("\xe2\x82\xac"), 3, "euro sign");
	EXPECT_EQ(smc_utf8_seq(""), 0, "the NUL");

	EXPECT_STREQ(smc_utf8_clean(buf, sizeof(buf),
				    "a\xff"
				    "b\xc3\xa9\xe2\x82"),
		     "a\\xffb\xc3\xa9\\xe2\\x82", "bad bytes as \\xNN, good UTF-8 kept");
	/* cut at a character boundary, never inside a sequence or an escape */
	EXPECT_STREQ(smc_utf8_clean(buf, 5, "ab\xc3\xa9"), "ab\xc3\xa9", "fits");
	EXPECT_STREQ(smc_utf8_clean(buf, 4, "ab\xc3\xa9"), "ab", "cut before a sequence");
	EXPECT_STREQ(smc_utf8_clean(buf, 6, "a\xff\xff"), "a\\xff", "cut before an escape");
	EXPECT_TRUE(smc_utf8_valid(smc_utf8_clean(buf, sizeof(buf), "\xed\xa0\x80")),
		    "a surrogate made valid");

	fixed = smc_utf8_fix("{\"a\":\"x\xff\xc3\"}");
	ASSERT_NOT_NULL(fixed, "smc_utf8_fix");
	EXPECT_STREQ(fixed, "{\"a\":\"x\xef\xbf\xbd\xef\xbf\xbd\"}", "bad bytes as U+FFFD");
	free(fixed);
}

static void test_text_escape(void)
{
	char buf[128];

	EXPECT_STREQ(smc_text_escape(buf, sizeof(buf), "web-1", SMC_ESC_SPACE | SMC_ESC_QUOTE),
		     "web-1", "a plain name");
	EXPECT_STREQ(smc_text_escape(buf, sizeof(buf), "a\nb\"c\\d\te f\x7f\x01",
				     SMC_ESC_SPACE | SMC_ESC_QUOTE),
		     "a\\nb\\\"c\\\\d\\te\\x20f\\x7f\\x01", "C escapes");
	EXPECT_STREQ(smc_text_escape(buf, sizeof(buf), "say \"x\"\r\n", 0), "say \"x\"\\r\\n",
		     "spaces and quotes kept without flags");
	EXPECT_STREQ(smc_text_escape(buf, sizeof(buf), "caf\xc3\xa9 \xc2\x85\xff", SMC_ESC_SPACE),
		     "caf\xc3\xa9\\x20\\xc2\\x85\\xff", "UTF-8 kept, C1 and bad bytes escaped");
	EXPECT_STREQ(smc_text_escape(buf, 4, "ab\n", 0), "ab", "cut before an escape");
	EXPECT_STREQ(smc_text_escape(buf, 1, "ab", 0), "", "room for the NUL only");
}

/* ---- main ----------------------------------------------------------------- */

static int suite_init(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_common.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int suite_clean(void)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/f", tmpdir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/stdin", tmpdir);
	unlink(path);
	return rmdir(tmpdir);
}

static CU_TestInfo opts_tests[] = {
	{ "good options", test_opts_good },
	{ "every error text", test_opts_errors },
	{ "help and word order", test_opts_help_and_order },
	{ "per-command subsets", test_opts_subsets },
	{ "run-time entries", test_opts_runtime },
	{ "repeatable options and callback", test_opts_repeat_callback },
	{ "help text", test_opts_help_text },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo parse_tests[] = {
	{ "addresses", test_addr },
	{ "numbers", test_parse_numbers },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo io_tests[] = {
	{ "bounded file reader", test_file },
	{ "process start time", test_proc },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo cni_tests[] = {
	{ "versions served and compared", test_cni_versions },
	{ "conflists of versions not served are refused", test_cni_chain_versions },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo text_tests[] = {
	{ "UTF-8 validity and repair", test_utf8 },
	{ "C escapes for text output", test_text_escape },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "opts", NULL, NULL, NULL, NULL, opts_tests },
	{ "parse", NULL, NULL, NULL, NULL, parse_tests },
	{ "io", suite_init, suite_clean, NULL, NULL, io_tests },
	{ "cni", suite_init, suite_clean, NULL, NULL, cni_tests },
	{ "text", NULL, NULL, NULL, NULL, text_tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return sm_cunit_run(suites);
}
