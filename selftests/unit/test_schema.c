// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests of the policy schema (one table for every front-end), its
 * field-aware errors and the public annotations API. No kernel.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "sockmesh.h"
#include "sockmesh_abi.h"
#include "sm_test.h"

/* Every field is complete, and no two share a name in any vocabulary. */
static void test_table_complete(void)
{
	unsigned int n = 0;

	for (unsigned int i = 0; sockmesh_field(i); i++, n++) {
		const struct sockmesh_field_desc *f = sockmesh_field(i);

		EXPECT_EQ(f->id, i, "id is the index");
		EXPECT_NOT_NULL(f->name, "name");
		EXPECT_NOT_NULL(f->option, "CLI option");
		EXPECT_NOT_NULL(f->help, "help");
		EXPECT_TRUE(f->kind >= SOCKMESH_FK_POLICY && f->kind <= SOCKMESH_FK_WHERE, f->name);
		EXPECT_EQ(f->type == SOCKMESH_FT_FLAG, f->arg == NULL,
			  "flags and only flags have no argument");
		for (unsigned int j = 0; j < i; j++) {
			const struct sockmesh_field_desc *g = sockmesh_field(j);

			EXPECT_TRUE(strcmp(f->name, g->name) != 0, f->name);
			EXPECT_TRUE(strcmp(f->option, g->option) != 0, f->option);
			EXPECT_TRUE(!f->short_opt || f->short_opt != g->short_opt, f->option);
			EXPECT_TRUE(!f->cni_key || !g->cni_key || strcmp(f->cni_key, g->cni_key),
				    f->name);
		}
		/* every name of a field finds that field */
		EXPECT_TRUE(sockmesh_field_lookup(f->name) == f, f->name);
		EXPECT_TRUE(sockmesh_field_lookup(f->option) == f, f->option);
		if (f->cni_key)
			EXPECT_TRUE(sockmesh_field_lookup(f->cni_key) == f, f->cni_key);
		if (f->annotation)
			EXPECT_TRUE(sockmesh_field_lookup(f->annotation) == f, f->annotation);
	}
	EXPECT_EQ(n, SOCKMESH_F__COUNT, "fields");
	EXPECT_NULL(sockmesh_field(SOCKMESH_F__COUNT), "past the end");
	EXPECT_NULL(sockmesh_field_lookup("no-such-field"), "unknown name");
}

/* Defaults in the table are the ABI header's. */
static void test_defaults_from_abi(void)
{
	char want[32];

	snprintf(want, sizeof(want), "%u", SM_DEFAULT_PROXY_PORT);
	EXPECT_STREQ(sockmesh_field(SOCKMESH_F_PROXY_PORT)->default_text, want, "proxy_port");
	snprintf(want, sizeof(want), "%u", SM_DEFAULT_INBOUND_PORT);
	EXPECT_STREQ(sockmesh_field(SOCKMESH_F_INBOUND_PORT)->default_text, want, "inbound_port");
	snprintf(want, sizeof(want), "%u", SM_DEFAULT_DNS_PORT);
	EXPECT_STREQ(sockmesh_field(SOCKMESH_F_DNS_PORT)->default_text, want, "dns_port");
	snprintf(want, sizeof(want), "%u", SM_DEFAULT_PROXY_UID);
	EXPECT_STREQ(sockmesh_field(SOCKMESH_F_PROXY_UID)->default_text, want, "proxy_uid");
	snprintf(want, sizeof(want), "%u", SM_DEFAULT_MAX_SCOPES);
	EXPECT_STREQ(sockmesh_field(SOCKMESH_F_MAX_SCOPES)->default_text, want, "max_scopes");
	EXPECT_EQ(sockmesh_field(SOCKMESH_F_SPLICE_BUDGET)->max, SM_MAX_SPLICE_BUDGET,
		  "budget max");
	EXPECT_EQ(sockmesh_field(SOCKMESH_F_MAX_CONNS)->max, SM_LIMIT_MAX_CONNS, "max_conns max");
}

static void test_set_values(void)
{
	struct sockmesh_policy pol = { .sz = sizeof(pol) };
	struct sockmesh_open_opts oo = { .sz = sizeof(oo) };
	const char *cidrs = "10.0.0.0/8, fd00::/8";

	ASSERT_OK(sockmesh_policy__set(&pol, SOCKMESH_F_PROXY_PORT, "15002"), "proxy_port");
	EXPECT_EQ(pol.proxy_port, 15002, "proxy_port");
	ASSERT_OK(sockmesh_policy__set(&pol, SOCKMESH_F_PROXY_GID, "0"), "proxy_gid");
	EXPECT_TRUE(pol.has_proxy_gid, "has_proxy_gid");
	ASSERT_OK(sockmesh_policy__set(&pol, SOCKMESH_F_INCLUDE_OUTBOUND_CIDRS, cidrs), "cidrs");
	EXPECT_TRUE(pol.include_outbound_cidrs == cidrs, "list text kept, not copied");
	ASSERT_OK(sockmesh_policy__set(&pol, SOCKMESH_F_NO_SPLICE, NULL), "flag");
	EXPECT_TRUE(pol.no_splice, "no_splice");
	ASSERT_OK(sockmesh_policy__set(&pol, SOCKMESH_F_NO_SPLICE, "false"), "flag false");
	EXPECT_FALSE(pol.no_splice, "no_splice false");
	ASSERT_OK(sockmesh_policy__validate(&pol), "validate");
	ASSERT_OK(sockmesh_open_opts__set(&oo, SOCKMESH_F_SPLICE_BUDGET, "16MiB"), "budget");
	EXPECT_EQ(oo.splice_budget, 16ull << 20, "budget");
	ASSERT_OK(sockmesh_open_opts__set(&oo, SOCKMESH_F_MAX_SCOPES, "64"), "max_scopes");
	EXPECT_EQ(oo.max_scopes, 64, "max_scopes");
}

/* fail_open (0.4) is a policy flag like the others, in every vocabulary;
 * a caller compiled before it (a shorter struct) still sets the older
 * fields, and is told this one is not in its struct.
 */
static void test_fail_open(void)
{
	struct sockmesh_policy pol = { .sz = sizeof(pol) }, before;
	const struct sockmesh_field_desc *d = sockmesh_field_lookup("failOpen");
	char msg[256];

	ASSERT_TRUE(d != NULL && d->id == SOCKMESH_F_FAIL_OPEN, "CNI key failOpen");
	EXPECT_TRUE(sockmesh_field_lookup("fail-open") == d, "CLI option fail-open");
	EXPECT_EQ(d->kind, SOCKMESH_FK_POLICY, "a policy field");
	EXPECT_EQ(d->type, SOCKMESH_FT_FLAG, "a flag");
	EXPECT_NULL(d->default_text, "off unless set");
	ASSERT_OK(sockmesh_policy__set(&pol, SOCKMESH_F_FAIL_OPEN, NULL), "set");
	EXPECT_TRUE(pol.fail_open, "fail_open");
	ASSERT_OK(sockmesh_policy__validate(&pol), "validates");
	before = pol;
	EXPECT_ERR(sockmesh_policy__set(&pol, SOCKMESH_F_FAIL_OPEN, "maybe"), -EINVAL, "maybe");
	EXPECT_STREQ(sockmesh_errmsg_as(SOCKMESH_NAMES_CNI, msg, sizeof(msg)),
		     "failOpen: 'maybe' is not true or false", "CNI");
	EXPECT_MEMEQ(&pol, &before, sizeof(pol), "unchanged");
	pol.sz = offsetof(struct sockmesh_policy, fail_open);
	EXPECT_OK(sockmesh_policy__set(&pol, SOCKMESH_F_PROXY_PORT, "15002"),
		  "an older struct sets an older field");
	EXPECT_ERR(sockmesh_policy__set(&pol, SOCKMESH_F_FAIL_OPEN, "true"), -EINVAL,
		   "but not this one");
}

/* A bad value: refused, the policy unchanged, the error about that field
 * and named in each vocabulary.
 */
static void test_set_errors_name_the_field(void)
{
	struct sockmesh_policy pol = { .sz = sizeof(pol) }, before;
	struct sockmesh_open_opts oo = { .sz = sizeof(oo) };
	char msg[512];

	before = pol;
	EXPECT_ERR(sockmesh_policy__set(&pol, SOCKMESH_F_PROXY_PORT, "70000"), -EINVAL, "port");
	EXPECT_MEMEQ(&pol, &before, sizeof(pol), "policy unchanged");
	EXPECT_EQ(sockmesh_errfield(), SOCKMESH_F_PROXY_PORT, "errfield");
	EXPECT_STREQ(sockmesh_errmsg_as(SOCKMESH_NAMES_CLI, msg, sizeof(msg)),
		     "--proxy-port: '70000' is not a port (1-65535)", "CLI");
	EXPECT_STREQ(sockmesh_errmsg_as(SOCKMESH_NAMES_CNI, msg, sizeof(msg)),
		     "proxyPort: '70000' is not a port (1-65535)", "CNI");
	EXPECT_STREQ(sockmesh_errmsg(), "proxy_port: '70000' is not a port (1-65535)", "field");

	EXPECT_ERR(sockmesh_policy__set(&pol, SOCKMESH_F_EXCLUDE_INBOUND_PORTS, "80,*"), -EINVAL,
		   "star in an exclude list");
	EXPECT_EQ(sockmesh_errfield(), SOCKMESH_F_EXCLUDE_INBOUND_PORTS, "errfield");
	EXPECT_STREQ(
		sockmesh_errmsg_as(SOCKMESH_NAMES_ANNOTATION, msg, sizeof(msg)),
		"traffic.sidecar.istio.io/excludeInboundPorts: '*' is only allowed in include lists",
		"annotation vocabulary");
	EXPECT_ERR(sockmesh_policy__set(&pol, SOCKMESH_F_PROXY_MARK, "0"), -ERANGE, "mark 0");
	EXPECT_ERR(sockmesh_policy__set(&pol, SOCKMESH_F_POD_IPS, "10.0.0.0/24"), -EINVAL,
		   "pod_ips network");
	EXPECT_ERR(sockmesh_policy__set(&pol, SOCKMESH_F_NO_SPLICE, "maybe"), -EINVAL, "flag");
	EXPECT_ERR(sockmesh_policy__set(&pol, SOCKMESH_F_MAX_SCOPES, "8"), -EINVAL,
		   "a load option is not a policy field");
	EXPECT_ERR(sockmesh_open_opts__set(&oo, SOCKMESH_F_MAX_SCOPES, "16777217"), -ERANGE,
		   "max_scopes above the limit");
	EXPECT_STREQ(sockmesh_errmsg_as(SOCKMESH_NAMES_CLI, msg, sizeof(msg)),
		     "--max-scopes: '16777217' is out of range (max 16777216)", "CLI");
	EXPECT_ERR(sockmesh_open_opts__set(&oo, SOCKMESH_F_SPLICE_BUDGET, "1KiB"), -ERANGE,
		   "budget below the minimum");
	EXPECT_EQ(sockmesh_errfield(), SOCKMESH_F_SPLICE_BUDGET, "errfield");
	EXPECT_MEMEQ(&pol, &before, sizeof(pol), "policy still unchanged");
}

/* issue 12: values that were accepted and then did nothing (or the wrong
 * thing); each refused by the schema, so every front-end refuses it alike
 */
static void test_set_refuses_silent_values(void)
{
	struct sockmesh_policy pol = { .sz = sizeof(pol) }, before;
	struct sockmesh_open_opts oo = { .sz = sizeof(oo) }, oo_before;
	static const enum sockmesh_field sizes[] = { SOCKMESH_F_MAX_SCOPES, SOCKMESH_F_MAX_CONNS,
						     SOCKMESH_F_MAX_RULES };
	char msg[512];

	before = pol;
	oo_before = oo;
	/* mark 0 is every unmarked socket */
	EXPECT_ERR(sockmesh_policy__set(&pol, SOCKMESH_F_PROXY_MARK, "0"), -ERANGE, "mark 0");
	EXPECT_STREQ(sockmesh_errmsg_as(SOCKMESH_NAMES_CLI, msg, sizeof(msg)),
		     "--proxy-mark: '0' is out of range (1..4294967295)", "CLI");
	EXPECT_STREQ(sockmesh_errmsg_as(SOCKMESH_NAMES_CNI, msg, sizeof(msg)),
		     "proxyMark: '0' is out of range (1..4294967295)", "CNI");
	/* '*' stands alone, in every include list */
	EXPECT_ERR(sockmesh_policy__set(&pol, SOCKMESH_F_INCLUDE_INBOUND_PORTS, "*,80"), -EINVAL,
		   "'*,80' inbound");
	EXPECT_STREQ(sockmesh_errmsg_as(SOCKMESH_NAMES_CLI, msg, sizeof(msg)),
		     "--include-inbound-ports: '*,80': '*' (all) must stand alone", "CLI");
	EXPECT_ERR(sockmesh_policy__set(&pol, SOCKMESH_F_INCLUDE_OUTBOUND_PORTS, "*,80"), -EINVAL,
		   "'*,80' outbound");
	EXPECT_ERR(sockmesh_policy__set(&pol, SOCKMESH_F_INCLUDE_OUTBOUND_CIDRS, "10.0.0.0/8,*"),
		   -EINVAL, "'10.0.0.0/8,*'");
	/* an empty include list of destinations captures nothing */
	EXPECT_ERR(sockmesh_policy__set(&pol, SOCKMESH_F_INCLUDE_OUTBOUND_CIDRS, ""), -EINVAL,
		   "empty include_outbound_cidrs");
	EXPECT_STREQ(
		sockmesh_errmsg_as(SOCKMESH_NAMES_CLI, msg, sizeof(msg)),
		"--include-outbound-cidrs: '' is an empty list: it would capture nothing (give '*' for every destination, or CIDRs)",
		"CLI");
	EXPECT_EQ(sockmesh_errfield(), SOCKMESH_F_INCLUDE_OUTBOUND_CIDRS, "errfield");
	/* no resolvers would silently mean resolv.conf */
	EXPECT_ERR(sockmesh_policy__set(&pol, SOCKMESH_F_DNS_SERVERS, ""), -EINVAL,
		   "empty dns_servers");
	EXPECT_STREQ(sockmesh_errmsg_as(SOCKMESH_NAMES_CNI, msg, sizeof(msg)),
		     "dnsServers: '' is an empty list: name the resolvers, or leave it out for "
		     "the scope's resolv.conf",
		     "CNI");
	/* the empty inbound include list stays what it is documented to be: none */
	{
		struct sockmesh_policy p = pol;

		EXPECT_OK(sockmesh_policy__set(&p, SOCKMESH_F_INCLUDE_INBOUND_PORTS, ""),
			  "empty include_inbound_ports");
	}
	EXPECT_MEMEQ(&pol, &before, sizeof(pol), "policy unchanged");
	/* a table of 0 entries */
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		EXPECT_ERR(sockmesh_open_opts__set(&oo, sizes[i], "0"), -ERANGE, "size 0");
		EXPECT_EQ(sockmesh_errfield(), sizes[i], "errfield");
		EXPECT_TRUE(strstr(sockmesh_errmsg_as(SOCKMESH_NAMES_CLI, msg, sizeof(msg)),
				   "'0' is out of range (1..") != NULL,
			    msg);
		EXPECT_OK(sockmesh_open_opts__set(&oo, sizes[i], "1"), "size 1");
	}
	EXPECT_STREQ(sockmesh_errmsg_as(SOCKMESH_NAMES_CLI, msg, sizeof(msg)),
		     "--max-rules: '0' is out of range (1..16777216)", "CLI");
	oo = oo_before;
	EXPECT_ERR(sockmesh_open_opts__set(&oo, SOCKMESH_F_MAX_SCOPES, "0"), -ERANGE, "again");
	EXPECT_MEMEQ(&oo, &oo_before, sizeof(oo), "open options unchanged");
	/* and through the annotations, which use the same parsers */
	EXPECT_NULL(sockmesh_annotations__parse(
			    "{\"traffic.sidecar.istio.io/includeInboundPorts\": \"*,80\"}"),
		    "'*,80' annotation");
	EXPECT_TRUE(strstr(sockmesh_errmsg_as(SOCKMESH_NAMES_ANNOTATION, msg, sizeof(msg)),
			   "traffic.sidecar.istio.io/includeInboundPorts: '*,80'") != NULL,
		    msg);
	/* ... except istio's documented meaning of an empty include list of
	 * destinations: no outbound redirection
	 */
	{
		struct sockmesh_annotations *a = sockmesh_annotations__parse(
			"{\"traffic.sidecar.istio.io/includeOutboundIPRanges\": \"\"}");
		struct sockmesh_policy ap = { .sz = sizeof(ap) };

		EXPECT_TRUE(a != NULL, "empty includeOutboundIPRanges annotation");
		if (a) {
			EXPECT_OK(sockmesh_annotations__apply(a, &ap, 0), "applied");
			EXPECT_STREQ(ap.include_outbound_cidrs, "", "no outbound capture");
			EXPECT_OK(sockmesh_policy__validate(&ap), "validates");
			sockmesh_annotations__free(a);
		}
	}
}

/* Cross-field rules come from validate, naming both fields. */
static void test_cross_field(void)
{
	struct sockmesh_policy pol = { .sz = sizeof(pol) };
	char msg[512];

	ASSERT_OK(sockmesh_policy__set(&pol, SOCKMESH_F_DNS_PORT, "5353"), "dns_port");
	EXPECT_ERR(sockmesh_policy__validate(&pol), -EINVAL, "dns_port without redirect_dns");
	EXPECT_EQ(sockmesh_errfield(), SOCKMESH_F_DNS_PORT, "errfield");
	EXPECT_STREQ(sockmesh_errmsg_as(SOCKMESH_NAMES_CLI, msg, sizeof(msg)),
		     "--dns-port: 5353 needs DNS capture (--redirect-dns) on", "CLI");
	EXPECT_STREQ(sockmesh_errmsg_as(SOCKMESH_NAMES_CNI, msg, sizeof(msg)),
		     "dnsPort: 5353 needs DNS capture (redirectDNS) on", "CNI");
}

static void test_annotations(void)
{
	const char *json = "{\"traffic.sidecar.istio.io/excludeOutboundPorts\": \"22\","
			   " \"traffic.sidecar.istio.io/includeInboundPorts\": \"8080,9090\","
			   " \"status.sidecar.istio.io/port\": \"15021\","
			   " \"unrelated\": \"x\"}";
	struct sockmesh_policy pol = { .sz = sizeof(pol) };
	struct sockmesh_annotations *a;
	char msg[512];

	a = sockmesh_annotations__parse(json);
	ASSERT_NOT_NULL(a, "parse");
	EXPECT_STREQ(sockmesh_annotations__get(a, "status.sidecar.istio.io/port"), "15021",
		     "status port");
	EXPECT_STREQ(sockmesh_annotations__get(a, "traffic.sidecar.istio.io/excludeOutboundPorts"),
		     "22", "get");
	EXPECT_NULL(sockmesh_annotations__get(a, "unrelated"), "unknown key");
	/* an explicit option wins over the annotation; the status port is
	 * appended to whichever list excludes inbound ports
	 */
	ASSERT_OK(sockmesh_policy__set(&pol, SOCKMESH_F_INCLUDE_INBOUND_PORTS, "7070"), "option");
	ASSERT_OK(sockmesh_policy__set(&pol, SOCKMESH_F_EXCLUDE_INBOUND_PORTS, "9000"), "option");
	ASSERT_OK(sockmesh_annotations__apply(a, &pol,
					      1ull << SOCKMESH_F_INCLUDE_INBOUND_PORTS |
						      1ull << SOCKMESH_F_EXCLUDE_INBOUND_PORTS),
		  "apply");
	EXPECT_STREQ(pol.include_inbound_ports, "7070", "option kept");
	EXPECT_STREQ(pol.exclude_outbound_ports, "22", "annotation applied");
	EXPECT_STREQ(pol.exclude_inbound_ports, "9000,15021", "status port appended");
	ASSERT_OK(sockmesh_policy__validate(&pol), "validate");
	sockmesh_annotations__free(a);

	EXPECT_NULL(
		sockmesh_annotations__parse(
			"{\"traffic.sidecar.istio.io/includeOutboundIPRanges\": \"10.0.0.0/33\"}"),
		"bad CIDR");
	EXPECT_EQ(sockmesh_errfield(), SOCKMESH_F_INCLUDE_OUTBOUND_CIDRS, "errfield");
	EXPECT_TRUE(strstr(sockmesh_errmsg_as(SOCKMESH_NAMES_ANNOTATION, msg, sizeof(msg)),
			   "traffic.sidecar.istio.io/includeOutboundIPRanges: '10.0.0.0/33'") !=
			    NULL,
		    msg);
	EXPECT_NULL(sockmesh_annotations__parse("{\"status.sidecar.istio.io/port\": \"x\"}"),
		    "bad status port");
	/* "00" is port 0 (disabled) too, and a status port is appended as its number */
	a = sockmesh_annotations__parse("{\"status.sidecar.istio.io/port\": \"00\"}");
	ASSERT_NOT_NULL(a, "status port 00");
	EXPECT_STREQ(sockmesh_annotations__get(a, "status.sidecar.istio.io/port"), "0", "00 as 0");
	pol = (struct sockmesh_policy){ .sz = sizeof(pol) };
	ASSERT_OK(sockmesh_annotations__apply(a, &pol, 0), "apply 00");
	EXPECT_NULL(pol.exclude_inbound_ports, "status port 00 excludes nothing");
	ASSERT_OK(sockmesh_policy__validate(&pol), "validate after 00");
	sockmesh_annotations__free(a);
	a = sockmesh_annotations__parse("{\"status.sidecar.istio.io/port\": \"015021\"}");
	ASSERT_NOT_NULL(a, "status port 015021");
	ASSERT_OK(sockmesh_annotations__apply(a, &pol, 0), "apply 015021");
	EXPECT_STREQ(pol.exclude_inbound_ports, "15021", "status port as its number");
	sockmesh_annotations__free(a);
	/* A blank list is blank in any white space (the list parser's
	 * isspace): the status port alone, not ",15021" (found by the fuzzer:
	 * vertical tabs).
	 */
	a = sockmesh_annotations__parse(
		"{\"traffic.sidecar.istio.io/excludeInboundPorts\": "
		"\"\\u000b\\n \", \"status.sidecar.istio.io/port\": \"15021\"}");
	ASSERT_NOT_NULL(a, "blank exclude list");
	pol = (struct sockmesh_policy){ .sz = sizeof(pol) };
	ASSERT_OK(sockmesh_annotations__apply(a, &pol, 0), "apply blank list");
	EXPECT_STREQ(pol.exclude_inbound_ports, "15021", "blank list + status port");
	EXPECT_OK(sockmesh_policy__validate(&pol), "validate blank list + status port");
	sockmesh_annotations__free(a);
	EXPECT_NULL(sockmesh_annotations__parse("[1]"), "not an object");
	EXPECT_NULL(sockmesh_annotations__parse("{} trailing"), "trailing data");
}

/* The kernel guard's table (issue 12 item 6): each stable branch's first
 * fixed release, Debian's version read from uname -v, vendor kernels not
 * judged, branches that ended without the fix refused.
 */
static void test_kernel_guard(void)
{
	static const struct {
		const char *release, *version;
		int want;
	} cases[] = {
		{ "6.18.44-fc-v669", "#1 SMP PREEMPT_DYNAMIC @0", SOCKMESH_KERNEL_OK },
		{ "6.16", "", SOCKMESH_KERNEL_OK },
		{ "7.0.1", "", SOCKMESH_KERNEL_OK },
		{ "6.1.142", "", SOCKMESH_KERNEL_OK },
		{ "6.1.141", "", SOCKMESH_KERNEL_AFFECTED },
		{ "6.6.93-custom", "", SOCKMESH_KERNEL_AFFECTED },
		{ "6.6.94", "", SOCKMESH_KERNEL_OK },
		{ "6.12.33", "", SOCKMESH_KERNEL_AFFECTED },
		{ "6.12.34", "", SOCKMESH_KERNEL_OK },
		{ "6.15.2", "", SOCKMESH_KERNEL_AFFECTED },
		{ "6.15.3", "", SOCKMESH_KERNEL_OK },
		{ "6.13.12", "", SOCKMESH_KERNEL_AFFECTED }, /* ended without it */
		{ "6.1", "", SOCKMESH_KERNEL_AFFECTED },
		{ "5.15.180", "", SOCKMESH_KERNEL_AFFECTED },
		/* Debian: "6.1.0-28-amd64" says nothing; uname -v does */
		{ "6.1.0-28-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.119-1 (2024-11-22)",
		  SOCKMESH_KERNEL_AFFECTED },
		{ "6.1.0-40-amd64", "#1 SMP PREEMPT_DYNAMIC Debian 6.1.192-3 (2026-11-26)",
		  SOCKMESH_KERNEL_OK },
		{ "5.14.0-427.el9.x86_64", "", SOCKMESH_KERNEL_UNKNOWN },
		{ "6.8.0-45-generic", "#45-Ubuntu SMP", SOCKMESH_KERNEL_UNKNOWN },
		{ "garbage", "", SOCKMESH_KERNEL_UNKNOWN },
		{ "", "", SOCKMESH_KERNEL_UNKNOWN },
	};
	char detail[512], msg[640];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int v = sockmesh_kernel_sockmap_fixes(cases[i].release, cases[i].version, detail,
						      sizeof(detail));

		snprintf(msg, sizeof(msg), "'%s' / '%s': %s", cases[i].release, cases[i].version,
			 detail);
		EXPECT_EQ(v, cases[i].want, msg);
	}
	/* the refusal says what to upgrade to */
	sockmesh_kernel_sockmap_fixes("6.12.20", "", detail, sizeof(detail));
	EXPECT_TRUE(strstr(detail, "CVE-2025-38165") && strstr(detail, "6.12.34"), detail);
	/* the running kernel: this machine's answer is one of the three */
	EXPECT_TRUE(sockmesh_kernel_sockmap_fixes(NULL, NULL, NULL, 0) >= 0, "running kernel");
}

static void test_stats_table(void)
{
	for (unsigned int i = 0; i < SM_STAT_MAX; i++) {
		EXPECT_NOT_NULL(sockmesh_stat_name(i), "every counter has a name");
		EXPECT_NOT_NULL(sockmesh_stat_help(i), "every counter has help");
	}
	EXPECT_NULL(sockmesh_stat_name(SM_STAT_MAX), "past the end");
	EXPECT_STREQ(sockmesh_stat_name(SM_STAT_SPLICE_BUDGET_FALLBACKS), "splice_budget_fallbacks",
		     "name from the ABI list");
}

int main(void)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} tests[] = {
		{ "table is complete and unambiguous", test_table_complete },
		{ "defaults come from the ABI header", test_defaults_from_abi },
		{ "set values", test_set_values },
		{ "errors name the field in each vocabulary", test_set_errors_name_the_field },
		{ "values that would silently do nothing are refused",
		  test_set_refuses_silent_values },
		{ "cross-field rules", test_cross_field },
		{ "annotations", test_annotations },
		{ "kernel guard", test_kernel_guard },
		{ "counter names and help", test_stats_table },
		{ "fail_open: a flag in every vocabulary, older structs", test_fail_open },
	};
	CU_pSuite s;
	int failed;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	s = CU_add_suite("schema", NULL, NULL);
	for (size_t i = 0; s && i < sizeof(tests) / sizeof(tests[0]); i++)
		CU_add_test(s, tests[i].name, tests[i].fn);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = (int)CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
