// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The policy schema: every value a user can give sockmesh, in one table.
 *
 * The CLI's options and help, the CNI plugin's config keys, the istio
 * annotation parser, the man page and docs/cli-contract.md are all driven by
 * (or tested against) this table, so a field's name, default and range are
 * written exactly once. Defaults come from the ABI header.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define STR_(x) #x
#define STR(x) STR_(x)

#define ANN(k) "traffic.sidecar.istio.io/" k

/* clang-format off */
static const struct sockmesh_field_desc fields[SOCKMESH_F__COUNT] = {
	[SOCKMESH_F_PROXY_PORT] = {
		.id = SOCKMESH_F_PROXY_PORT,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_PORT,
		.name = "proxy_port", .option = "proxy-port", .short_opt = 'p', .arg = "PORT",
		.cni_key = "proxyPort",
		.help = "outbound proxy port",
		.default_text = STR(SM_DEFAULT_PROXY_PORT), .min = 1, .max = 65535 },
	[SOCKMESH_F_PROXY_UID] = {
		.id = SOCKMESH_F_PROXY_UID,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_U32,
		.name = "proxy_uid", .option = "proxy-uid", .short_opt = 'u', .arg = "UID",
		.cni_key = "proxyUID",
		.help = "the proxy's uid, never captured",
		.default_text = STR(SM_DEFAULT_PROXY_UID), .min = 0, .max = 0xffffffffu },
	[SOCKMESH_F_PROXY_GID] = {
		.id = SOCKMESH_F_PROXY_GID,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_U32,
		.name = "proxy_gid", .option = "proxy-gid", .short_opt = 'g', .arg = "GID",
		.cni_key = "proxyGID",
		.help = "the proxy's gid, never captured", .min = 0, .max = 0xffffffffu },
	[SOCKMESH_F_PROXY_MARK] = {
		.id = SOCKMESH_F_PROXY_MARK,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_U32,
		.name = "proxy_mark", .option = "proxy-mark", .arg = "MARK",
		.cni_key = "proxyMark",
		/* mark 0 is every unmarked socket: it would turn capture off */
		.help = "sockets with this SO_MARK are never captured (not 0: every unmarked socket has 0)",
		.min = 1, .max = 0xffffffffu },
	[SOCKMESH_F_INCLUDE_OUTBOUND_CIDRS] = {
		.id = SOCKMESH_F_INCLUDE_OUTBOUND_CIDRS,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_CIDR_LIST,
		.flags = SOCKMESH_FIELD_STAR,
		.name = "include_outbound_cidrs", .option = "include-outbound-cidrs",
		.short_opt = 'i', .arg = "LIST",
		.cni_key = "includeOutboundIPRanges", .annotation = ANN("includeOutboundIPRanges"),
		.help = "captured destinations (CIDRs), '*' = all", .default_text = "*" },
	[SOCKMESH_F_EXCLUDE_OUTBOUND_CIDRS] = {
		.id = SOCKMESH_F_EXCLUDE_OUTBOUND_CIDRS,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_CIDR_LIST,
		.name = "exclude_outbound_cidrs", .option = "exclude-outbound-cidrs",
		.short_opt = 'x', .arg = "LIST",
		.cni_key = "excludeOutboundIPRanges", .annotation = ANN("excludeOutboundIPRanges"),
		.help = "destinations (CIDRs) never captured" },
	[SOCKMESH_F_INCLUDE_OUTBOUND_PORTS] = {
		.id = SOCKMESH_F_INCLUDE_OUTBOUND_PORTS,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_PORT_LIST,
		.flags = SOCKMESH_FIELD_STAR,
		.name = "include_outbound_ports", .option = "include-outbound-ports",
		.short_opt = 'q', .arg = "LIST",
		.cni_key = "includeOutboundPorts", .annotation = ANN("includeOutboundPorts"),
		.help = "captured ports, '*' = all", .default_text = "*" },
	[SOCKMESH_F_EXCLUDE_OUTBOUND_PORTS] = {
		.id = SOCKMESH_F_EXCLUDE_OUTBOUND_PORTS,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_PORT_LIST,
		.name = "exclude_outbound_ports", .option = "exclude-outbound-ports",
		.short_opt = 'o', .arg = "LIST",
		.cni_key = "excludeOutboundPorts", .annotation = ANN("excludeOutboundPorts"),
		.help = "ports never captured" },
	[SOCKMESH_F_NO_SPLICE] = {
		.id = SOCKMESH_F_NO_SPLICE,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_FLAG,
		.flags = SOCKMESH_FIELD_CNI_NEGATED,
		.name = "no_splice", .option = "no-splice", .cni_key = "splice",
		.help = "capture only: do not splice app<->proxy sockets" },
	[SOCKMESH_F_INBOUND_PORT] = {
		.id = SOCKMESH_F_INBOUND_PORT,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_PORT,
		.flags = SOCKMESH_FIELD_NETNS_ONLY,
		.name = "inbound_port", .option = "inbound-port", .short_opt = 'z', .arg = "PORT",
		.cni_key = "inboundPort",
		.help = "netns scopes: the proxy's inbound listener port",
		.default_text = STR(SM_DEFAULT_INBOUND_PORT), .min = 1, .max = 65535 },
	[SOCKMESH_F_INCLUDE_INBOUND_PORTS] = {
		.id = SOCKMESH_F_INCLUDE_INBOUND_PORTS,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_PORT_LIST,
		.flags = SOCKMESH_FIELD_STAR | SOCKMESH_FIELD_NETNS_ONLY,
		.name = "include_inbound_ports", .option = "include-inbound-ports",
		.short_opt = 'b', .arg = "LIST",
		.cni_key = "includeInboundPorts", .annotation = ANN("includeInboundPorts"),
		.help = "netns scopes: inbound ports steered to the proxy, '*' = all",
		.default_text = "*" },
	[SOCKMESH_F_EXCLUDE_INBOUND_PORTS] = {
		.id = SOCKMESH_F_EXCLUDE_INBOUND_PORTS,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_PORT_LIST,
		.flags = SOCKMESH_FIELD_NETNS_ONLY,
		.name = "exclude_inbound_ports", .option = "exclude-inbound-ports",
		.short_opt = 'd', .arg = "LIST",
		.cni_key = "excludeInboundPorts", .annotation = ANN("excludeInboundPorts"),
		.help = "inbound ports never steered" },
	[SOCKMESH_F_POD_IPS] = {
		.id = SOCKMESH_F_POD_IPS,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_ADDR_LIST,
		.flags = SOCKMESH_FIELD_NETNS_ONLY | SOCKMESH_FIELD_CNI_DERIVED,
		.name = "pod_ips", .option = "pod-ips", .arg = "LIST",
		.cni_key = "prevResult.ips",
		.help = "netns scopes: the pod's addresses (default: its global addresses at enrollment)" },
	[SOCKMESH_F_REDIRECT_DNS] = {
		.id = SOCKMESH_F_REDIRECT_DNS,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_FLAG,
		.name = "redirect_dns", .option = "redirect-dns", .cni_key = "redirectDNS",
		.help = "send DNS to the proxy's DNS port (resolvers of resolv.conf)" },
	[SOCKMESH_F_CAPTURE_ALL_DNS] = {
		.id = SOCKMESH_F_CAPTURE_ALL_DNS,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_FLAG,
		.flags = SOCKMESH_FIELD_NEEDS_DNS,
		.name = "capture_all_dns", .option = "capture-all-dns", .cni_key = "captureAllDNS",
		.help = "with --redirect-dns: all port-53 traffic, not only the resolvers" },
	[SOCKMESH_F_DNS_PORT] = {
		.id = SOCKMESH_F_DNS_PORT,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_PORT,
		.flags = SOCKMESH_FIELD_NEEDS_DNS,
		.name = "dns_port", .option = "dns-port", .arg = "PORT", .cni_key = "dnsPort",
		.help = "the proxy's DNS port",
		.default_text = STR(SM_DEFAULT_DNS_PORT), .min = 1, .max = 65535 },
	[SOCKMESH_F_DNS_SERVERS] = {
		.id = SOCKMESH_F_DNS_SERVERS,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_CIDR_LIST,
		.flags = SOCKMESH_FIELD_NEEDS_DNS,
		.name = "dns_servers", .option = "dns-servers", .arg = "LIST",
		.cni_key = "dnsServers",
		.help = "with --redirect-dns: the resolvers to capture (default: resolv.conf)" },
	[SOCKMESH_F_MAX_SCOPES] = {
		.id = SOCKMESH_F_MAX_SCOPES,
		.kind = SOCKMESH_FK_LOAD, .type = SOCKMESH_FT_U32,
		.name = "max_scopes", .option = "max-scopes", .arg = "N",
		.help = "first load only: scope table size (N scopes can be enrolled)",
		.default_text = STR(SM_DEFAULT_MAX_SCOPES), .min = 1, .max = SM_LIMIT_MAX_SCOPES },
	[SOCKMESH_F_MAX_CONNS] = {
		.id = SOCKMESH_F_MAX_CONNS,
		.kind = SOCKMESH_FK_LOAD, .type = SOCKMESH_FT_U32,
		.name = "max_conns", .option = "max-conns", .arg = "N",
		.help = "first load only: concurrent spliced connections",
		.default_text = STR(SM_DEFAULT_MAX_CONNS), .min = 1, .max = SM_LIMIT_MAX_CONNS },
	[SOCKMESH_F_MAX_RULES] = {
		.id = SOCKMESH_F_MAX_RULES,
		.kind = SOCKMESH_FK_LOAD, .type = SOCKMESH_FT_U32,
		.name = "max_rules", .option = "max-rules", .arg = "N",
		.help = "first load only: CIDR and port rules",
		.default_text = STR(SM_DEFAULT_MAX_RULES), .min = 1, .max = SM_LIMIT_MAX_RULES },
	[SOCKMESH_F_SPLICE_BUDGET] = {
		.id = SOCKMESH_F_SPLICE_BUDGET,
		.kind = SOCKMESH_FK_LOAD, .type = SOCKMESH_FT_SIZE,
		.name = "splice_budget", .option = "splice-budget", .arg = "SIZE",
		.help = "first load only: unread bytes a spliced socket may queue at its peer "
			"before it falls back to the TCP stack (they count against tcp_mem only)",
		.default_text = "8MiB", .min = SM_MIN_SPLICE_BUDGET, .max = SM_MAX_SPLICE_BUDGET },
	[SOCKMESH_F_CGROUP] = {
		.id = SOCKMESH_F_CGROUP,
		.kind = SOCKMESH_FK_WHERE, .type = SOCKMESH_FT_PATH,
		.name = "cgroup", .option = "cgroup", .arg = "PATH",
		.help = "a cgroup v2 directory (bare-host scope)" },
	[SOCKMESH_F_NETNS] = {
		.id = SOCKMESH_F_NETNS,
		.kind = SOCKMESH_FK_WHERE, .type = SOCKMESH_FT_PATH,
		.name = "netns", .option = "netns", .arg = "NAME|PATH",
		.help = "a network namespace (pod scope): /run/netns name or path" },
	[SOCKMESH_F_ATTACH_CGROUP] = {
		.id = SOCKMESH_F_ATTACH_CGROUP,
		.kind = SOCKMESH_FK_WHERE, .type = SOCKMESH_FT_PATH,
		.name = "attach_cgroup", .option = "attach-cgroup", .arg = "PATH",
		.cni_key = "attachCgroup",
		.help = "netns scopes: cgroup the programs attach to (default: cgroup2 root)" },
	[SOCKMESH_F_PIN_DIR] = {
		.id = SOCKMESH_F_PIN_DIR,
		.kind = SOCKMESH_FK_WHERE, .type = SOCKMESH_FT_PATH,
		.name = "pin_dir", .option = "pin-dir", .arg = "DIR", .cni_key = "pinDir",
		.help = "bpffs directory of the instance",
		.default_text = SOCKMESH_DEFAULT_PIN_DIR },
	[SOCKMESH_F_FAIL_OPEN] = {
		.id = SOCKMESH_F_FAIL_OPEN,
		.kind = SOCKMESH_FK_POLICY, .type = SOCKMESH_FT_FLAG,
		.name = "fail_open", .option = "fail-open", .cni_key = "failOpen",
		.help = "no proxy listener owned by root or the proxy uid: let connections go "
			"uncaptured instead of refusing them" },
};
/* clang-format on */

_Static_assert(SOCKMESH_F__COUNT < 64, "field markers encode ids below 64");
_Static_assert(SM_DEFAULT_SPLICE_BUDGET == 8u << 20, "splice_budget's default_text says 8MiB");

const struct sockmesh_field_desc *sockmesh_field(unsigned int id)
{
	return id < SOCKMESH_F__COUNT ? &fields[id] : NULL;
}

const struct sockmesh_field_desc *sockmesh_field_lookup(const char *name)
{
	for (unsigned int i = 0; name && i < SOCKMESH_F__COUNT; i++) {
		const struct sockmesh_field_desc *f = &fields[i];

		if (strcmp(name, f->name) == 0 || (f->option && strcmp(name, f->option) == 0) ||
		    (f->cni_key && strcmp(name, f->cni_key) == 0) ||
		    (f->annotation && strcmp(name, f->annotation) == 0))
			return &fields[i];
	}
	errno = ENOENT;
	return NULL;
}

/* ---- field markers in error messages ------------------------------------- */

/* A field named in a message is written as SM_MARK followed by one byte,
 * 0x40 + id, and rendered in the reader's vocabulary by sockmesh_errmsg_as.
 */
#define SM_MARK '\x1e'

/* every id a marker can encode, so a new field needs no edit here */
#define M(i)                           \
	{                              \
		SM_MARK, 0x40 + (i), 0 \
	}
#define M8(i) M(i), M(i + 1), M(i + 2), M(i + 3), M(i + 4), M(i + 5), M(i + 6), M(i + 7)
static const char marks[64][3] = { M8(0), M8(8), M8(16), M8(24), M8(32), M8(40), M8(48), M8(56) };
#undef M8
#undef M

const char *sm_fname(enum sockmesh_field f)
{
	return (unsigned int)f < SOCKMESH_F__COUNT ? marks[f] : "?";
}

static const char *name_in(const struct sockmesh_field_desc *f, enum sockmesh_naming naming,
			   char *buf, size_t len)
{
	switch (naming) {
	case SOCKMESH_NAMES_CLI:
		if (f->option) {
			snprintf(buf, len, "--%s", f->option);
			return buf;
		}
		break;
	case SOCKMESH_NAMES_CNI:
		if (f->cni_key)
			return f->cni_key;
		break;
	case SOCKMESH_NAMES_ANNOTATION:
		if (f->annotation)
			return f->annotation;
		break;
	case SOCKMESH_NAMES_FIELD:
		break;
	}
	return f->name;
}

/* Render msg (with markers) into buf; returns the first field named or -1. */
int sm_render(const char *msg, enum sockmesh_naming naming, char *buf, size_t len)
{
	int first = -1;
	size_t o = 0;

	if (!len)
		return -1;
	for (const char *p = msg; *p && o + 1 < len;) {
		const char *s, *mark = strchr(p, SM_MARK);
		char tmp[64];
		size_t n = mark ? (size_t)(mark - p) : strlen(p);

		if (n) { /* the text up to the next marker, as it is */
			if (n > len - 1 - o)
				n = len - 1 - o;
			memcpy(buf + o, p, n);
			o += n;
			p += n;
			continue;
		}
		if ((unsigned char)p[1] < 0x40 || (unsigned char)p[1] >= 0x40 + SOCKMESH_F__COUNT) {
			buf[o++] = *p++;
			continue;
		}
		if (first < 0)
			first = (unsigned char)p[1] - 0x40;
		s = name_in(&fields[(unsigned char)p[1] - 0x40], naming, tmp, sizeof(tmp));
		p += 2;
		n = strlen(s);
		if (n > len - 1 - o)
			n = len - 1 - o;
		memcpy(buf + o, s, n);
		o += n;
	}
	buf[o] = '\0';
	return first;
}

/* ---- setting fields from text -------------------------------------------- */

static int parse_flag(enum sockmesh_field f, const char *text, bool *out)
{
	if (!text || !strcmp(text, "true") || !strcmp(text, "1")) {
		*out = true;
		return 0;
	}
	if (!strcmp(text, "false") || !strcmp(text, "0")) {
		*out = false;
		return 0;
	}
	sm_set_err(0, "%s: '%s' is not true or false", sm_fname(f), text);
	return -EINVAL;
}

/* A number field's value in [min, max], as set in a struct by a library
 * caller or parsed from text.
 */
int sm_field_u32_check(enum sockmesh_field f, __u32 v)
{
	const struct sockmesh_field_desc *d = &fields[f];

	if (v >= d->min && v <= d->max)
		return 0;
	sm_set_err(0, "%s: '%u' is out of range (%llu..%llu)", sm_fname(f), v,
		   (unsigned long long)d->min, (unsigned long long)d->max);
	return -ERANGE;
}

/* A number field: decimal in [min, max] (ports: 1-65535, said so). */
int sm_field_u32(enum sockmesh_field f, const char *text, __u32 *out)
{
	const struct sockmesh_field_desc *d = &fields[f];
	__u32 v;
	int err;

	err = sm_parse_u32(sm_fname(f), text, (__u32)d->max, &v);
	if (!err && v < d->min) {
		sm_set_err(0, "%s: '%s' is out of range (%llu..%llu)", sm_fname(f), text,
			   (unsigned long long)d->min, (unsigned long long)d->max);
		err = -ERANGE;
	}
	if (err && d->type == SOCKMESH_FT_PORT) {
		sm_set_err(0, "%s: '%s' is not a port (1-65535)", sm_fname(f), text ? text : "");
		err = -EINVAL;
	}
	if (!err)
		*out = v;
	return err;
}

/* List fields where an empty list would silently mean something the user
 * cannot have wanted: an include list of no destination captures nothing,
 * and no resolvers would fall back to resolv.conf. Each with its hint.
 */
static const char *empty_list_hint(enum sockmesh_field f)
{
	switch (f) {
	case SOCKMESH_F_INCLUDE_OUTBOUND_CIDRS:
		return "it would capture nothing (give '*' for every destination, or CIDRs)";
	case SOCKMESH_F_DNS_SERVERS:
		return "name the resolvers, or leave it out for the scope's resolv.conf";
	default:
		return NULL;
	}
}

/* Parse a list field's text with every rule of the field on its own (no
 * cross-field rules): '*' where the field allows it (and then alone),
 * addresses and not networks for address lists, and no empty list where
 * that would silently mean something else (empty_ok: except an empty
 * include list of destinations, which compiles to "no outbound capture" as
 * istio's annotation documents it). NULL text: the empty list.
 */
static int list_parse(enum sockmesh_field f, const char *text, struct sm_list *out, bool empty_ok)
{
	const struct sockmesh_field_desc *d = &fields[f];
	bool star = d->flags & SOCKMESH_FIELD_STAR;
	const char *hint = empty_list_hint(f);
	int err;

	if (empty_ok && f == SOCKMESH_F_INCLUDE_OUTBOUND_CIDRS)
		hint = NULL;

	if (d->type == SOCKMESH_FT_PORT_LIST)
		err = sm_parse_port_list(sm_fname(f), text, star, out);
	else
		err = sm_parse_cidr_list(sm_fname(f), text, star, out);
	if (err)
		return err;
	if (text && hint && !out->star && !out->n) {
		sm_set_err(0, "%s: '%s' is an empty list: %s", sm_fname(f), text, hint);
		err = -EINVAL;
	}
	for (size_t i = 0; !err && d->type == SOCKMESH_FT_ADDR_LIST && i < out->n; i++) {
		const struct sm_cidr *c = (const struct sm_cidr *)out->v + i;

		if (c->prefix != (c->family == AF_INET ? 32 : 128)) {
			sm_set_err(0, "%s: '%s': give addresses, not networks", sm_fname(f), text);
			err = -EINVAL;
		}
	}
	if (err)
		sm_list_free(out);
	return err;
}

/* For compiling a policy the setters (or istio's annotation) let through. */
int sm_field_list_parse(enum sockmesh_field f, const char *text, struct sm_list *out)
{
	return list_parse(f, text, out, true);
}

/* Validate a list field's text on its own (no cross-field rules), as an
 * option or config value: no empty include list of destinations.
 */
int sm_field_list_check(enum sockmesh_field f, const char *text)
{
	struct sm_list l;
	int err = list_parse(f, text, &l, false);

	if (!err)
		sm_list_free(&l);
	return err;
}

/* A policy field's value as text, NULL when the struct leaves it unset
 * (its default applies).
 */
static const char *policy_text(const struct sockmesh_policy *p, enum sockmesh_field f, char *buf,
			       size_t len)
{
	long long v = -1;

	switch (f) {
	case SOCKMESH_F_PROXY_PORT:
		v = p->proxy_port ? p->proxy_port : -1;
		break;
	case SOCKMESH_F_PROXY_UID:
		v = p->has_proxy_uid ? (long long)p->proxy_uid : -1;
		break;
	case SOCKMESH_F_PROXY_GID:
		v = p->has_proxy_gid ? (long long)p->proxy_gid : -1;
		break;
	case SOCKMESH_F_PROXY_MARK:
		v = p->has_proxy_mark ? (long long)p->proxy_mark : -1;
		break;
	case SOCKMESH_F_INBOUND_PORT:
		v = p->inbound_port ? p->inbound_port : -1;
		break;
	case SOCKMESH_F_DNS_PORT:
		v = p->dns_port ? p->dns_port : -1;
		break;
	case SOCKMESH_F_NO_SPLICE:
		return p->no_splice ? "true" : NULL;
	case SOCKMESH_F_REDIRECT_DNS:
		return p->redirect_dns ? "true" : NULL;
	case SOCKMESH_F_CAPTURE_ALL_DNS:
		return p->capture_all_dns ? "true" : NULL;
	case SOCKMESH_F_FAIL_OPEN:
		return p->fail_open ? "true" : NULL;
	case SOCKMESH_F_INCLUDE_OUTBOUND_CIDRS:
		return p->include_outbound_cidrs;
	case SOCKMESH_F_EXCLUDE_OUTBOUND_CIDRS:
		return p->exclude_outbound_cidrs;
	case SOCKMESH_F_INCLUDE_OUTBOUND_PORTS:
		return p->include_outbound_ports;
	case SOCKMESH_F_EXCLUDE_OUTBOUND_PORTS:
		return p->exclude_outbound_ports;
	case SOCKMESH_F_INCLUDE_INBOUND_PORTS:
		return p->include_inbound_ports;
	case SOCKMESH_F_EXCLUDE_INBOUND_PORTS:
		return p->exclude_inbound_ports;
	case SOCKMESH_F_POD_IPS:
		return p->pod_ips;
	case SOCKMESH_F_DNS_SERVERS:
		return p->dns_servers;
	default:
		return NULL;
	}
	if (v < 0)
		return NULL;
	snprintf(buf, len, "%lld", v);
	return buf;
}

/* The fields that only mean something for a netns (pod) scope must not be
 * given for a cgroup scope: a cgroup has no inbound capture and no pod
 * addresses, so they would be accepted and then do nothing.
 */
int sm_policy_check_scope(const struct sockmesh_policy *user, enum sockmesh_scope_kind kind)
{
	struct sockmesh_policy p;

	if (!user || kind == SOCKMESH_SCOPE_NETNS)
		return 0;
	sm_opts_copy(&p, sizeof(p), user, user->sz);
	for (unsigned int i = 0; i < SOCKMESH_F__COUNT; i++) {
		const char *text;
		char buf[32];

		if (fields[i].kind != SOCKMESH_FK_POLICY ||
		    !(fields[i].flags & SOCKMESH_FIELD_NETNS_ONLY))
			continue;
		text = policy_text(&p, (enum sockmesh_field)i, buf, sizeof(buf));
		if (!text)
			continue;
		sm_set_err(0, "%s: '%s' only applies to a netns (pod) scope, not a cgroup scope",
			   sm_fname((enum sockmesh_field)i), text);
		return -EINVAL;
	}
	return 0;
}

/* The struct size a caller needs to set field f: the fields of 0.1-0.3 came
 * with the struct that ends at dns_servers, each later one with its member.
 */
static size_t policy_field_end(enum sockmesh_field f)
{
	switch (f) {
	case SOCKMESH_F_FAIL_OPEN:
		return offsetofend(struct sockmesh_policy, fail_open);
	default:
		return offsetofend(struct sockmesh_policy, dns_servers);
	}
}

int sockmesh_policy__set(struct sockmesh_policy *pol, enum sockmesh_field f, const char *text)
{
	const struct sockmesh_field_desc *d;
	struct sockmesh_policy p;
	__u32 v = 0;
	bool b = false;
	int err = 0;

	if (!pol || (unsigned int)f >= SOCKMESH_F__COUNT || fields[f].kind != SOCKMESH_FK_POLICY) {
		sm_set_err(0, "policy: %d is not a policy field", (int)f);
		return -EINVAL;
	}
	if (pol->sz < policy_field_end(f)) {
		/* the field must be in the caller's struct to be set */
		sm_set_err(0, "policy: struct size %zu is older than this field", pol->sz);
		return -EINVAL;
	}
	d = &fields[f];
	p = *pol;
	switch (d->type) {
	case SOCKMESH_FT_FLAG:
		err = parse_flag(f, text, &b);
		break;
	case SOCKMESH_FT_PORT:
	case SOCKMESH_FT_U32:
		err = sm_field_u32(f, text, &v);
		break;
	case SOCKMESH_FT_CIDR_LIST:
	case SOCKMESH_FT_PORT_LIST:
	case SOCKMESH_FT_ADDR_LIST:
		err = text ? sm_field_list_check(f, text) : 0;
		break;
	default:
		err = -EINVAL;
	}
	if (err)
		return err;

	switch (f) {
	case SOCKMESH_F_PROXY_PORT:
		p.proxy_port = (__u16)v;
		break;
	case SOCKMESH_F_PROXY_UID:
		p.has_proxy_uid = true;
		p.proxy_uid = v;
		break;
	case SOCKMESH_F_PROXY_GID:
		p.has_proxy_gid = true;
		p.proxy_gid = v;
		break;
	case SOCKMESH_F_PROXY_MARK:
		p.has_proxy_mark = true;
		p.proxy_mark = v;
		break;
	case SOCKMESH_F_INCLUDE_OUTBOUND_CIDRS:
		p.include_outbound_cidrs = text;
		break;
	case SOCKMESH_F_EXCLUDE_OUTBOUND_CIDRS:
		p.exclude_outbound_cidrs = text;
		break;
	case SOCKMESH_F_INCLUDE_OUTBOUND_PORTS:
		p.include_outbound_ports = text;
		break;
	case SOCKMESH_F_EXCLUDE_OUTBOUND_PORTS:
		p.exclude_outbound_ports = text;
		break;
	case SOCKMESH_F_NO_SPLICE:
		p.no_splice = b;
		break;
	case SOCKMESH_F_INBOUND_PORT:
		p.inbound_port = (__u16)v;
		break;
	case SOCKMESH_F_INCLUDE_INBOUND_PORTS:
		p.include_inbound_ports = text;
		break;
	case SOCKMESH_F_EXCLUDE_INBOUND_PORTS:
		p.exclude_inbound_ports = text;
		break;
	case SOCKMESH_F_POD_IPS:
		p.pod_ips = text;
		break;
	case SOCKMESH_F_REDIRECT_DNS:
		p.redirect_dns = b;
		break;
	case SOCKMESH_F_CAPTURE_ALL_DNS:
		p.capture_all_dns = b;
		break;
	case SOCKMESH_F_FAIL_OPEN:
		p.fail_open = b;
		break;
	case SOCKMESH_F_DNS_PORT:
		p.dns_port = (__u16)v;
		break;
	case SOCKMESH_F_DNS_SERVERS:
		p.dns_servers = text;
		break;
	default:
		return -EINVAL;
	}
	*pol = p;
	return 0;
}

int sockmesh_open_opts__set(struct sockmesh_open_opts *o, enum sockmesh_field f, const char *text)
{
	__u64 size;
	__u32 v;
	int err;

	if (!o || (unsigned int)f >= SOCKMESH_F__COUNT || fields[f].kind != SOCKMESH_FK_LOAD) {
		sm_set_err(0, "open options: %d is not a load option", (int)f);
		return -EINVAL;
	}
	if (o->sz < offsetofend(struct sockmesh_open_opts, sockmesh_open_opts__last_field)) {
		sm_set_err(0, "open options: struct size %zu is older than this field", o->sz);
		return -EINVAL;
	}
	if (f == SOCKMESH_F_SPLICE_BUDGET) {
		err = sm_parse_size(sm_fname(f), text, fields[f].min, fields[f].max, &size);
		if (!err)
			o->splice_budget = size;
		return err;
	}
	err = sm_field_u32(f, text, &v);
	if (err)
		return err;
	if (f == SOCKMESH_F_MAX_SCOPES)
		o->max_scopes = v;
	else if (f == SOCKMESH_F_MAX_CONNS)
		o->max_conns = v;
	else
		o->max_rules = v;
	return 0;
}
