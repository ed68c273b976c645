// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The option engine (see opts.h). Modelled on the sockmesh CLI's: getopt_long
 * over a table built from the entries, long options numbered 1000 + index so
 * that short letters and entries never collide, and every mistake reported
 * with the word the user typed.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "opts.h"
#include "parse.h"

#define LONG_BASE 1000

void smc_opts_init(struct smc_opts *s, const char *prog)
{
	memset(s, 0, sizeof(*s));
	s->prog = prog;
}

int smc_opts_add(struct smc_opts *s, const struct smc_opt *o)
{
	if (!o->name || !o->name[0] || (o->type == SMC_OPT_FLAG) != !o->arg)
		return -EINVAL;
	for (size_t i = 0; i < s->n; i++) {
		if (strcmp(s->o[i]->name, o->name) == 0 || s->o[i]->id == o->id ||
		    (o->short_opt && s->o[i]->short_opt == o->short_opt))
			return -EEXIST;
	}
	/* ':' and '?' are getopt's answers, '+' and '-' its modes */
	if (o->short_opt == ':' || o->short_opt == '?' || o->short_opt == '+' ||
	    o->short_opt == '-')
		return -EINVAL;
	if (s->n >= SMC_OPTS_MAX)
		return -ENOSPC;
	s->o[s->n++] = o;
	return 0;
}

int smc_opts_add_table(struct smc_opts *s, const struct smc_opt *table, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int err = smc_opts_add(s, &table[i]);

		if (err)
			return err;
	}
	return 0;
}

int smc_opts_add_ids(struct smc_opts *s, const struct smc_opt *table, size_t n, const int *ids)
{
	for (; *ids >= 0; ids++) {
		size_t i;
		int err;

		for (i = 0; i < n && table[i].id != *ids; i++)
			;
		if (i == n)
			return -ENOENT;
		err = smc_opts_add(s, &table[i]);
		if (err)
			return err;
	}
	return 0;
}

static int index_of(const struct smc_opts *s, int id)
{
	for (size_t i = 0; i < s->n; i++)
		if (s->o[i]->id == id)
			return (int)i;
	return -1;
}

const struct smc_opt *smc_opts_find(const struct smc_opts *s, int id)
{
	int i = index_of(s, id);

	return i < 0 ? NULL : s->o[i];
}

bool smc_opts_isset(const struct smc_opts *s, int id)
{
	int i = index_of(s, id);

	return i >= 0 && s->set[i];
}

const char *smc_opts_str(const struct smc_opts *s, int id)
{
	int i = index_of(s, id);

	return i >= 0 && s->set[i] ? s->val[i] : NULL;
}

unsigned long long smc_opts_u(const struct smc_opts *s, int id, unsigned long long def)
{
	int i = index_of(s, id);

	return i >= 0 && s->set[i] ? s->v[i].u : def;
}

const struct smc_addr *smc_opts_addr(const struct smc_opts *s, int id)
{
	int i = index_of(s, id);

	return i >= 0 && s->set[i] && s->o[i]->type == SMC_OPT_ADDR ? &s->v[i].addr : NULL;
}

static int set_err(struct smc_opts *s, enum smc_opt_error kind, const struct smc_opt *o,
		   const char *word, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int set_err(struct smc_opts *s, enum smc_opt_error kind, const struct smc_opt *o,
		   const char *word, const char *fmt, ...)
{
	va_list ap;

	s->err.kind = kind;
	s->err.opt = o;
	s->err.word = word;
	va_start(ap, fmt);
	vsnprintf(s->err.msg, sizeof(s->err.msg), fmt, ap);
	va_end(ap);
	return SMC_EXIT_USAGE;
}

/* Type check of one value into *v; 0 or -EINVAL/-ERANGE with smc_errmsg(). */
static int check_value(const struct smc_opt *o, const char *val, union smc_optval *v)
{
	char field[128];
	uint32_t u32;
	uint64_t u64;
	int err = 0;

	snprintf(field, sizeof(field), "--%s", o->name);
	memset(v, 0, sizeof(*v));
	switch (o->type) {
	case SMC_OPT_FLAG:
		break;
	case SMC_OPT_STRING:
		if ((o->flags & SMC_OPT_NONEMPTY) && !val[0]) {
			smc_set_err("%s: empty value", field);
			err = -EINVAL;
		}
		break;
	case SMC_OPT_U32: {
		uint32_t min = (uint32_t)o->min;
		uint32_t max = o->min || o->max ? (uint32_t)o->max : UINT32_MAX;

		if (o->flags & SMC_OPT_C_INT) {
			err = smc_parse_u32_c(field, val, min, max, &u32);
		} else {
			err = smc_parse_u32(field, val, max, &u32);
			if (!err && u32 < min) {
				smc_set_err("%s: '%s' is out of range (%u..%u)", field, val, min,
					    max);
				err = -ERANGE;
			}
		}
		v->u = u32;
		break;
	}
	case SMC_OPT_PORT:
		err = smc_parse_u32(field, val, 65535, &u32);
		if (!err && u32 == 0) {
			smc_set_err("%s: '%s' is not a port (1-65535)", field, val);
			err = -ERANGE;
		}
		v->u = u32;
		break;
	case SMC_OPT_SIZE:
		err = smc_parse_size(field, val, o->min, o->min || o->max ? o->max : UINT64_MAX,
				     &u64);
		v->u = u64;
		break;
	case SMC_OPT_ADDR:
		err = smc_parse_addr(field, val, o->addr_flags ? o->addr_flags : SMC_ADDR_PORT,
				     &v->addr);
		break;
	}
	if (err)
		memset(v, 0, sizeof(*v));
	return err;
}

int smc_opts_parse(struct smc_opts *s, int argc, char **argv)
{
	struct option lo[SMC_OPTS_MAX + 1];
	char shorts[3 * SMC_OPTS_MAX + 4];
	size_t sl = 0;
	int ch;

	memset(s->set, 0, sizeof(s->set));
	memset(s->val, 0, sizeof(s->val));
	memset(s->v, 0, sizeof(s->v));
	memset(&s->err, 0, sizeof(s->err));
	memset(lo, 0, sizeof(lo));
	/* '+': stop at the first argument (POSIX); ':': tell a missing value
	 * (':') from an unknown option ('?')
	 */
	if (!s->permute)
		shorts[sl++] = '+';
	shorts[sl++] = ':';
	for (size_t i = 0; i < s->n; i++) {
		lo[i].name = s->o[i]->name;
		lo[i].has_arg = s->o[i]->arg ? required_argument : no_argument;
		lo[i].val = LONG_BASE + (int)i;
		if (s->o[i]->short_opt) {
			shorts[sl++] = s->o[i]->short_opt;
			if (s->o[i]->arg)
				shorts[sl++] = ':';
		}
	}
	shorts[sl] = '\0';
	/* 0, not 1: glibc then forgets a previous parse of another argv */
	optind = 0;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		const struct smc_opt *o = NULL;
		const char *word = argv[optind - 1];
		size_t i;
		int err;

		if (ch == ':' || ch == '?') {
			if (optopt >= LONG_BASE && optopt < LONG_BASE + (int)s->n)
				o = s->o[optopt - LONG_BASE];
			if (ch == ':' && o)
				return set_err(s, SMC_OPT_E_NEEDS_VALUE, o, word,
					       "option '--%s' needs a value", o->name);
			if (ch == ':') {
				for (i = 0; i < s->n && s->o[i]->short_opt != optopt; i++)
					;
				s->err.short_opt = (char)optopt;
				return set_err(s, SMC_OPT_E_NEEDS_VALUE, i < s->n ? s->o[i] : NULL,
					       word, "option '-%c' needs a value", optopt);
			}
			if (optopt > 0 && optopt < LONG_BASE) {
				/* in a cluster ("-kz") the word is not the option */
				s->err.short_opt = (char)optopt;
				return set_err(s, SMC_OPT_E_UNKNOWN, NULL, word,
					       "unknown option '-%c' (see '%s -h')", optopt,
					       s->prog);
			}
			/* unknown, ambiguous, or a flag given a value ("--all=1") */
			return set_err(s, SMC_OPT_E_UNKNOWN, NULL, word,
				       "unknown option '%s' (see '%s -h')", word, s->prog);
		}
		if (ch >= LONG_BASE) {
			i = (size_t)(ch - LONG_BASE);
		} else {
			for (i = 0; i < s->n && s->o[i]->short_opt != ch; i++)
				;
			if (i == s->n) /* cannot happen: getopt only returns ours */
				return set_err(s, SMC_OPT_E_UNKNOWN, NULL, word,
					       "unknown option '-%c' (see '%s -h')", ch, s->prog);
		}
		o = s->o[i];
		if (o->flags & SMC_OPT_HELP)
			return SMC_OPTS_HELP;
		if (s->set[i] && !(o->flags & SMC_OPT_REPEAT))
			return set_err(s, SMC_OPT_E_TWICE, o, word, "option '--%s' given twice",
				       o->name);
		err = check_value(o, optarg ? optarg : "", &s->v[i]);
		if (err) {
			s->err.value = optarg;
			s->err.code = err;
			return set_err(s, SMC_OPT_E_VALUE, o, word, "%s", smc_errmsg());
		}
		s->set[i] = true;
		s->val[i] = optarg;
		if (s->fn) {
			err = s->fn(o, optarg, &s->v[i], s->ctx, &s->err);
			if (err) {
				char msg[sizeof(s->err.msg)];

				s->err.value = optarg;
				s->err.code = err;
				if (s->err.msg[0]) {
					snprintf(msg, sizeof(msg), "%s", s->err.msg);
					return set_err(s, SMC_OPT_E_CALLBACK, o, word, "%s", msg);
				}
				return set_err(s, SMC_OPT_E_CALLBACK, o, word,
					       "--%s: '%s' is not valid", o->name,
					       optarg ? optarg : "");
			}
		}
	}
	s->optind = optind;
	if (optind < argc && !s->allow_args)
		return set_err(s, SMC_OPT_E_ARGUMENT, NULL, argv[optind],
			       "unexpected argument '%s'", argv[optind]);
	return 0;
}

void smc_opts_help(FILE *f, const struct smc_opts *s, int indent, int width)
{
	for (size_t i = 0; i < s->n; i++) {
		const struct smc_opt *o = s->o[i];
		const char *h = o->help ? o->help : "";
		const char *arg = o->arg ? o->arg : "";
		const char *sp = o->arg ? " " : "";
		char lhs[160];
		bool first = true;

		if (o->short_opt && !(o->flags & SMC_OPT_HIDE_SHORT))
			snprintf(lhs, sizeof(lhs), "-%c, --%s%s%s", o->short_opt, o->name, sp, arg);
		else
			snprintf(lhs, sizeof(lhs), "    --%s%s%s", o->name, sp, arg);
		/* continuation lines of the help text line up under the first */
		do {
			const char *nl = strchr(h, '\n');
			int n = nl ? (int)(nl - h) : (int)strlen(h);

			fprintf(f, "%*s%-*s %.*s\n", indent, "", width, first ? lhs : "", n, h);
			first = false;
			h += n;
			if (*h == '\n')
				h++;
		} while (*h);
		if (o->def)
			fprintf(f, "%*s%-*s (default %s)\n", indent, "", width, "", o->def);
	}
}
