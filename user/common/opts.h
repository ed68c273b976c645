/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The option engine of the sockmesh binaries: one typed table per program
 * drives getopt_long, the value checks and the help text, so the three can
 * never disagree.
 *
 * A parse set (struct smc_opts) holds pointers to option entries: whole
 * tables, a per-command subset of a global table (by id), or entries the
 * caller built at run time (e.g. from the library's policy schema,
 * sockmesh_field()); every entry must outlive the set. Errors are returned,
 * never printed: the caller writes the message (set.err.msg) to stderr, as
 * JSON, or in its own words from set.err.kind.
 *
 * Messages (the e2e tests and docs/cli-contract.md rely on them):
 *   unknown option 'X' (see 'PROG -h')
 *   option '--NAME' needs a value          (option '-C' needs a value)
 *   option '--NAME' given twice
 *   unexpected argument 'X'
 *   --NAME: 'VALUE' is not a number        (and the other value checks)
 */
#ifndef SMC_OPTS_H
#define SMC_OPTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "addr.h"

#define SMC_EXIT_USAGE 2

enum smc_opt_type {
	SMC_OPT_FLAG = 0, /* no value */
	SMC_OPT_STRING, /* any text; the caller checks it */
	SMC_OPT_U32, /* decimal min..max (SMC_OPT_C_INT: also 0x hex, 0 octal) */
	SMC_OPT_PORT, /* 1-65535 */
	SMC_OPT_SIZE, /* bytes, or a number with K, M, G, KiB, MiB, GiB; min..max */
	SMC_OPT_ADDR, /* ADDR:PORT or [IPV6]:PORT; addr_flags (SMC_ADDR_*) other forms */
};

enum smc_opt_flags {
	/* may be given more than once: every value goes to the callback, the
	 * last one is kept (default: "given twice" is an error)
	 */
	SMC_OPT_REPEAT = 1u << 0,
	/* help: stop at once and return SMC_OPTS_HELP, whatever follows */
	SMC_OPT_HELP = 1u << 1,
	/* the short flag works but the help text shows only the long name */
	SMC_OPT_HIDE_SHORT = 1u << 2,
	/* U32 values in C syntax (strtoul base 0): marks are written in hex */
	SMC_OPT_C_INT = 1u << 3,
	/* an empty value is an error ("--NAME: empty value") */
	SMC_OPT_NONEMPTY = 1u << 4,
};

struct smc_opt {
	const char *name; /* long name, without "--" */
	char short_opt; /* 0: none */
	const char *arg; /* value name for the help ("PORT"); NULL: a flag */
	const char *help; /* may hold '\n': continuation lines line up */
	enum smc_opt_type type;
	unsigned int flags; /* enum smc_opt_flags */
	unsigned long long min, max; /* U32 and SIZE; 0, 0: the type's full range */
	unsigned int addr_flags; /* ADDR: the forms allowed; 0: SMC_ADDR_PORT */
	const char *def; /* default, shown on a line of its own; NULL: none */
	int id; /* the caller's id, unique within one parse set */
};

enum smc_opt_error {
	SMC_OPT_E_NONE = 0,
	SMC_OPT_E_UNKNOWN, /* an option no entry has */
	SMC_OPT_E_NEEDS_VALUE, /* the last word was an option that takes a value */
	SMC_OPT_E_TWICE, /* a non-repeatable option given again */
	SMC_OPT_E_VALUE, /* the value failed the type check */
	SMC_OPT_E_ARGUMENT, /* a non-option word where none is allowed */
	SMC_OPT_E_CALLBACK, /* the value callback refused it */
};

struct smc_opt_err {
	enum smc_opt_error kind;
	const struct smc_opt *opt; /* NULL for UNKNOWN and ARGUMENT */
	const char *word; /* the command-line word at fault, as typed */
	char short_opt; /* UNKNOWN/NEEDS_VALUE of a short option: the letter */
	const char *value; /* VALUE and CALLBACK: the value */
	int code; /* VALUE: -EINVAL or -ERANGE; CALLBACK: its return */
	char msg[512]; /* the message, without program name */
};

union smc_optval {
	unsigned long long u; /* U32, PORT, SIZE */
	struct smc_addr addr; /* ADDR */
};

/* Called for every value as it is parsed (after its type check). A
 * non-zero return stops the parse (SMC_OPT_E_CALLBACK); put the reason in
 * err->msg, or leave it empty for "--NAME: 'VALUE' is not valid".
 */
typedef int (*smc_opt_fn)(const struct smc_opt *o, const char *value, const union smc_optval *v,
			  void *ctx, struct smc_opt_err *err);

#define SMC_OPTS_MAX 96

/* Return values of smc_opts_parse() besides 0 and SMC_EXIT_USAGE. */
#define SMC_OPTS_HELP 100

struct smc_opts {
	/* set by the caller (after smc_opts_init) */
	const char *prog; /* for "(see 'PROG -h')": "sockmeshd", "sockmesh enable" */
	bool permute; /* GNU order: options after arguments too (default: stop at the first) */
	bool allow_args; /* non-option words are the caller's (from .optind) */
	smc_opt_fn fn;
	void *ctx;
	/* the entries */
	size_t n;
	const struct smc_opt *o[SMC_OPTS_MAX];
	/* results of smc_opts_parse */
	bool set[SMC_OPTS_MAX];
	const char *val[SMC_OPTS_MAX];
	union smc_optval v[SMC_OPTS_MAX];
	int optind; /* first non-option word */
	struct smc_opt_err err;
};

void smc_opts_init(struct smc_opts *s, const char *prog);
/* Add one entry (kept by pointer). -EEXIST: its name, short flag or id is
 * taken; -ENOSPC: SMC_OPTS_MAX reached; -EINVAL: no name, or a flag with a
 * value type.
 */
int smc_opts_add(struct smc_opts *s, const struct smc_opt *o);
/* Add n entries of a table. */
int smc_opts_add_table(struct smc_opts *s, const struct smc_opt *table, size_t n);
/* Add the entries of table whose ids are listed (in the list's order;
 * -1 ends it), as a command picks its options from a global table.
 * -ENOENT: an id no entry has.
 */
int smc_opts_add_ids(struct smc_opts *s, const struct smc_opt *table, size_t n, const int *ids);

/* Parse argv[1..argc-1] (argv[0] is the program or command name). Returns
 * 0, SMC_OPTS_HELP (an SMC_OPT_HELP option was given), or SMC_EXIT_USAGE
 * with s->err filled in. Resets getopt's state: callable repeatedly.
 */
int smc_opts_parse(struct smc_opts *s, int argc, char **argv);

/* Results by id. */
const struct smc_opt *smc_opts_find(const struct smc_opts *s, int id);
bool smc_opts_isset(const struct smc_opts *s, int id);
const char *smc_opts_str(const struct smc_opts *s, int id); /* NULL: not given */
unsigned long long smc_opts_u(const struct smc_opts *s, int id, unsigned long long def);
const struct smc_addr *smc_opts_addr(const struct smc_opts *s, int id); /* NULL: not given */

/* Help lines, one per entry in the set's order:
 *   INDENT "-C, --NAME ARG" (or "    --NAME ARG") padded to WIDTH, " ", help
 * continuation lines of help and "(default DEF)" line up under the help.
 */
void smc_opts_help(FILE *f, const struct smc_opts *s, int indent, int width);

#endif
