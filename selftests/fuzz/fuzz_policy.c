// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target for libsockmesh's policy parsers (user/lib/policy.c).
 *
 * The input, cut at its first NUL, is one string. It is parsed whole as a
 * CIDR list and as a port list (include and exclude variants), and split on
 * '|' into the four list fields of a struct sockmesh_policy for
 * sm_policy_compile (missing fields are NULL). Besides the sanitizers, every
 * result is checked: what was parsed is canonical and parses back to itself,
 * a failure leaves nothing behind and its message names the field, and the
 * compiled flags agree with the lists.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

#define SEP '|'

static const char *const fields[4] = { "include_outbound_cidrs", "exclude_outbound_cidrs",
				       "include_outbound_ports", "exclude_outbound_ports" };

/* fields added since the first four; errors must name one of them */
static const char *const more_fields[] = { "include_inbound_ports",
					   "exclude_inbound_ports",
					   "pod_ips",
					   "dns_servers",
					   "capture_all_dns",
					   "dns_port",
					   "proxy_mark" };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void __attribute__((noreturn)) fail(const char *what, const char *in)
{
	fprintf(stderr, "fuzz_policy: %s\n  input: '%s'\n  errmsg: '%s'\n", what,
		in ? in : "(null)", sockmesh_errmsg());
	abort();
}

static size_t count_char(const char *s, char c)
{
	size_t n = 0;

	for (; s && *s; s++)
		n += *s == c;
	return n;
}

static bool blank(const char *s)
{
	for (; s && *s; s++)
		if (*s != ' ' && *s != '\t')
			return false;
	return true;
}

static bool starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* A failure: a known error, an empty list and a message naming the field. */
static void check_failed(int err, const struct sm_list *l, const char *field, const char *in)
{
	if (err != -EINVAL && err != -ERANGE && err != -ENOMEM)
		fail("unexpected error code", in);
	if (l && (l->v || l->n || l->star))
		fail("list not empty after a failure", in);
	if (!starts_with(sockmesh_errmsg(), field))
		fail("error message does not start with the field name", in);
}

static void check_cidr(const struct sm_cidr *c, const char *in)
{
	unsigned int max = c->family == AF_INET ? 32 : 128;

	if (c->family != AF_INET && c->family != AF_INET6)
		fail("bad family", in);
	if (c->prefix > max)
		fail("prefix length too long", in);
	for (unsigned int i = 0; i < 16; i++) {
		int keep = (int)c->prefix - (int)i * 8;
		__u8 host = keep <= 0 ? 0xff : keep >= 8 ? 0 : (__u8)(0xff >> keep);

		if (c->addr[i] & host)
			fail("host bits not cleared", in);
	}
}

/* Canonical text of a parsed list: "*" first if set, then the items. */
static char *list_text(const struct sm_list *l, bool cidrs)
{
	size_t len = 8 + l->n * (INET6_ADDRSTRLEN + 8), off = 0;
	char *s = malloc(len);

	if (!s)
		abort();
	s[0] = '\0';
	if (l->star)
		off += (size_t)snprintf(s + off, len - off, "*");
	for (size_t i = 0; i < l->n; i++) {
		const char *sep = off ? "," : "";

		if (cidrs) {
			const struct sm_cidr *c = (const struct sm_cidr *)l->v + i;
			char a[INET6_ADDRSTRLEN];

			if (!inet_ntop(c->family, c->addr, a, sizeof(a)))
				abort();
			off += (size_t)snprintf(s + off, len - off, "%s%s/%u", sep, a, c->prefix);
		} else {
			off += (size_t)snprintf(s + off, len - off, "%s%u", sep,
						((const __u16 *)l->v)[i]);
		}
	}
	return s;
}

static bool list_equal(const struct sm_list *a, const struct sm_list *b, size_t elem)
{
	return a->star == b->star && a->n == b->n && (!a->n || !memcmp(a->v, b->v, a->n * elem));
}

static int parse(bool cidrs, const char *field, const char *s, bool allow_star, struct sm_list *l)
{
	return cidrs ? sm_parse_cidr_list(field, s, allow_star, l) :
		       sm_parse_port_list(field, s, allow_star, l);
}

/* Parse s as one list; check the result and that it survives a round trip. */
static void fuzz_list(const char *s, bool cidrs, bool allow_star)
{
	const char *field = fields[(cidrs ? 0 : 2) + !allow_star];
	size_t elem = cidrs ? sizeof(struct sm_cidr) : sizeof(__u16);
	struct sm_list l, again;
	char *text;
	int err;

	err = parse(cidrs, field, s, allow_star, &l);
	if (err) {
		check_failed(err, &l, field, s);
		return;
	}
	if (l.n > count_char(s, ',') + 1)
		fail("more items than the list has", s);
	if (l.star && !allow_star)
		fail("'*' accepted in an exclude list", s);
	if (blank(s) && (l.n || l.star))
		fail("blank list is not empty", s);
	for (size_t i = 0; i < l.n; i++) {
		if (cidrs)
			check_cidr((const struct sm_cidr *)l.v + i, s);
		else if (((const __u16 *)l.v)[i] == 0)
			fail("port 0 accepted", s);
	}

	text = list_text(&l, cidrs);
	err = parse(cidrs, field, text, allow_star, &again);
	if (err)
		fail("canonical form of an accepted list is rejected", s);
	if (!list_equal(&l, &again, elem))
		fail("canonical form parses differently", s);
	sm_list_free(&again);
	free(text);
	sm_list_free(&l);
}

static void check_compiled(const struct sockmesh_policy *pol, const struct sm_compiled *c,
			   const char *in)
{
	const __u32 known = SM_POL_PROXY_GID | SM_POL_PROXY_MARK | SM_POL_INCLUDE_PORTS |
			    SM_POL_INCLUDE_CIDR4 | SM_POL_INCLUDE_CIDR6 | SM_POL_EXCLUDE_PORTS |
			    SM_POL_EXCLUDE_CIDRS | SM_POL_SPLICE | SM_POL_INBOUND |
			    SM_POL_INBOUND_INCLUDE_PORTS | SM_POL_INBOUND_EXCLUDE_PORTS |
			    SM_POL_DNS | SM_POL_DNS_ALL | SM_POL_FAIL_OPEN;
	const char *lists[4] = { pol->include_outbound_cidrs ? pol->include_outbound_cidrs : "*",
				 pol->exclude_outbound_cidrs,
				 pol->include_outbound_ports ? pol->include_outbound_ports : "*",
				 pol->exclude_outbound_ports };
	const struct sm_list *got[4] = { &c->inc_cidrs, &c->exc_cidrs, &c->inc_ports,
					 &c->exc_ports };
	__u32 f = c->pol.flags;

	if (f & ~known)
		fail("unknown flag set", in);
	if (!(f & SM_POL_SPLICE) != pol->no_splice)
		fail("SPLICE flag disagrees with no_splice", in);
	if (!(f & SM_POL_INCLUDE_CIDR4) != c->inc_cidrs.star ||
	    !(f & SM_POL_INCLUDE_CIDR6) != c->inc_cidrs.star)
		fail("INCLUDE_CIDR flags disagree with the include list", in);
	if (!(f & SM_POL_INCLUDE_PORTS) != c->inc_ports.star)
		fail("INCLUDE_PORTS flag disagrees with the include list", in);
	if (!(f & SM_POL_EXCLUDE_CIDRS) != !c->exc_cidrs.n)
		fail("EXCLUDE_CIDRS flag disagrees with the exclude list", in);
	if (!(f & SM_POL_EXCLUDE_PORTS) != !c->exc_ports.n)
		fail("EXCLUDE_PORTS flag disagrees with the exclude list", in);
	if (c->exc_cidrs.star || c->exc_ports.star)
		fail("'*' in an exclude list", in);
	if (c->pol.proxy_port != (pol->proxy_port ? pol->proxy_port : SM_DEFAULT_PROXY_PORT))
		fail("wrong proxy port", in);
	if (c->pol.proxy_uid != (pol->has_proxy_uid ? pol->proxy_uid : SM_DEFAULT_PROXY_UID))
		fail("wrong proxy uid", in);
	if (!(f & SM_POL_INBOUND) != (!c->inc_in_ports.star && !c->inc_in_ports.n))
		fail("INBOUND flag disagrees with the inbound include list", in);
	if (!(f & SM_POL_INBOUND_EXCLUDE_PORTS) != !c->exc_in_ports.n)
		fail("INBOUND_EXCLUDE_PORTS flag disagrees with the list", in);
	if (!(f & SM_POL_DNS) != !pol->redirect_dns)
		fail("DNS flag disagrees with redirect_dns", in);
	if (!(f & SM_POL_FAIL_OPEN) != !pol->fail_open)
		fail("FAIL_OPEN flag disagrees with fail_open", in);
	for (size_t i = 0; i < c->pod_ips.n; i++) {
		const struct sm_cidr *pc = (const struct sm_cidr *)c->pod_ips.v + i;

		if (pc->prefix != (pc->family == 2 ? 32 : 128))
			fail("a pod_ips network was accepted", in);
	}

	/* Each list is what the list parser alone makes of the field. */
	for (int i = 0; i < 4; i++) {
		bool cidrs = i < 2;
		size_t elem = cidrs ? sizeof(struct sm_cidr) : sizeof(__u16);
		struct sm_list l;

		if (parse(cidrs, fields[i], lists[i], !(i & 1), &l))
			fail("list accepted by compile but not alone", in);
		if (!list_equal(&l, got[i], elem))
			fail("compiled list differs from the list parsed alone", in);
		sm_list_free(&l);
	}
}

/* Split s on SEP into the four list fields and compile. */
static void fuzz_compile(char *s, size_t size, const char *in)
{
	SOCKMESH_OPTS(sockmesh_policy, pol);
	const char **lists[8] = { &pol.include_outbound_cidrs,
				  &pol.exclude_outbound_cidrs,
				  &pol.include_outbound_ports,
				  &pol.exclude_outbound_ports,
				  &pol.include_inbound_ports,
				  &pol.exclude_inbound_ports,
				  &pol.pod_ips,
				  &pol.dns_servers };
	struct sm_compiled c;
	char *p = s;
	int err, verr;

	for (int i = 0; i < 8 && p; i++) {
		char *sep = i < 7 ? strchr(p, SEP) : NULL;

		*lists[i] = p;
		if (sep)
			*sep = '\0';
		p = sep ? sep + 1 : NULL;
	}
	/* Vary the scalar fields with the input too. */
	pol.no_splice = size & 1;
	pol.has_proxy_uid = size & 2;
	pol.proxy_uid = (__u32)size;
	pol.has_proxy_gid = size & 4;
	pol.has_proxy_mark = size & 8;
	pol.proxy_mark = (__u32)(size >> 4); /* 0 (refused) for short inputs */
	pol.proxy_port = (__u16)(size * 7);
	pol.redirect_dns = size & 16;
	pol.capture_all_dns = pol.redirect_dns && (size & 32);
	pol.fail_open = size & 64;

	err = sm_policy_compile(&pol, &c);
	if (err) {
		bool named = false;

		check_failed(err, NULL, "", in);
		if (c.inc_cidrs.v || c.exc_cidrs.v || c.inc_ports.v || c.exc_ports.v ||
		    c.inc_in_ports.v || c.exc_in_ports.v || c.pod_ips.v || c.dns_servers.v)
			fail("lists left allocated after a failed compile", in);
		for (int i = 0; i < 4; i++)
			named |= starts_with(sockmesh_errmsg(), fields[i]);
		for (size_t i = 0; i < sizeof(more_fields) / sizeof(more_fields[0]); i++)
			named |= starts_with(sockmesh_errmsg(), more_fields[i]);
		if (!named)
			fail("compile error does not name a field", in);
	} else {
		check_compiled(&pol, &c, in);
		sm_compiled_free(&c);
	}
	verr = sockmesh_policy__validate(&pol);
	if (verr != err)
		fail("validate and compile disagree", in);
}

/* Every schema field set from the input: it is taken, or refused with an
 * error about that field (in every vocabulary) and the policy unchanged.
 */
static void fuzz_schema(const char *in)
{
	for (unsigned int i = 0; sockmesh_field(i); i++) {
		const struct sockmesh_field_desc *f = sockmesh_field(i);
		struct sockmesh_policy pol = { .sz = sizeof(pol) }, before;
		struct sockmesh_open_opts oo = { .sz = sizeof(oo) };
		char msg[1024], opt[80];
		int err;

		if (f->kind == SOCKMESH_FK_POLICY) {
			before = pol;
			err = sockmesh_policy__set(&pol, f->id, in);
			if (err && memcmp(&pol, &before, sizeof(pol)))
				fail("a refused value changed the policy", in);
		} else if (f->kind == SOCKMESH_FK_LOAD) {
			err = sockmesh_open_opts__set(&oo, f->id, in);
		} else {
			continue;
		}
		if (!err)
			continue;
		if (err != -EINVAL && err != -ERANGE)
			fail("schema set: unexpected error code", in);
		if (sockmesh_errfield() != (int)f->id)
			fail("schema set: the error is about another field", in);
		snprintf(opt, sizeof(opt), "--%s", f->option);
		if (!strstr(sockmesh_errmsg_as(SOCKMESH_NAMES_CLI, msg, sizeof(msg)), opt))
			fail("schema set: the CLI message does not name the option", in);
	}
}

/* The input as a JSON object of annotations: parsed or refused; what parses
 * applies to a policy that then validates.
 */
static void fuzz_annotations(const char *in)
{
	struct sockmesh_annotations *a = sockmesh_annotations__parse(in);
	struct sockmesh_policy pol = { .sz = sizeof(pol) };

	if (!a)
		return;
	if (sockmesh_annotations__apply(a, &pol, 0) == 0 && sockmesh_policy__validate(&pol))
		fail("annotations that parsed give a policy that does not validate", in);
	sockmesh_annotations__free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1), *copy;
	struct sm_cidr cidr;
	__u32 v;
	int err;

	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';

	fuzz_list(in, true, true);
	fuzz_list(in, true, false);
	fuzz_list(in, false, true);
	fuzz_list(in, false, false);

	err = sm_parse_cidr(fields[0], in, &cidr);
	if (err)
		check_failed(err, NULL, fields[0], in);
	else
		check_cidr(&cidr, in);
	err = sm_parse_u32("proxy_uid", in, 0xffffffffu, &v);
	if (err)
		check_failed(err, NULL, "proxy_uid", in);
	{
		__u64 sz = 0;

		err = sm_parse_size("--splice-budget", in, 1, 1ull << 32, &sz);
		if (err)
			check_failed(err, NULL, "--splice-budget", in);
		else if (sz < 1 || sz > 1ull << 32)
			abort();
	}

	fuzz_schema(in);
	fuzz_annotations(in);

	copy = strdup(in);
	if (copy) {
		fuzz_compile(copy, size, in);
		free(copy);
	}
	free(in);
	return 0;
}
