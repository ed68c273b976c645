// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Policy parsing and validation: istio-style comma lists of CIDRs and ports
 * turned into what the BPF maps hold. Pure functions, no kernel state, so
 * they are unit tested and fuzzed on their own.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"
#include "parse.h"

static __thread char errbuf[512];

void sm_set_err(int err, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(errbuf, sizeof(errbuf), fmt, ap);
	va_end(ap);
	if (err && n >= 0 && (size_t)n < sizeof(errbuf))
		snprintf(errbuf + n, sizeof(errbuf) - n, ": %s", strerror(err));
}

const char *sockmesh_errmsg(void)
{
	static __thread char out[sizeof(errbuf) + 256];

	if (!errbuf[0])
		return "no error";
	sm_render(errbuf, SOCKMESH_NAMES_FIELD, out, sizeof(out));
	return out;
}

int sockmesh_errfield(void)
{
	char tmp[sizeof(errbuf) + 256];

	return errbuf[0] ? sm_render(errbuf, SOCKMESH_NAMES_FIELD, tmp, sizeof(tmp)) : -1;
}

const char *sockmesh_errmsg_as(enum sockmesh_naming naming, char *buf, size_t len)
{
	if (!buf || !len)
		return "";
	if (!errbuf[0])
		snprintf(buf, len, "no error");
	else
		sm_render(errbuf, naming, buf, len);
	return buf;
}

void sm_opts_copy(void *dst, size_t dst_sz, const void *src, size_t src_sz)
{
	memset(dst, 0, dst_sz);
	memcpy(dst, src, src_sz < dst_sz ? src_sz : dst_sz);
}

bool sm_opts_valid(const void *opts, size_t known_sz, size_t user_sz)
{
	const char *p = opts;
	size_t i;

	if (!opts)
		return true;
	if (user_sz < sizeof(size_t))
		return false;
	for (i = known_sz; i < user_sz; i++)
		if (p[i])
			return false;
	return true;
}

/* The number parsers are user/common's (the front-ends use the same ones,
 * so an option and a library field read numbers alike); the library keeps
 * the message as its own error.
 */
int sm_parse_u32(const char *field, const char *s, __u32 max, __u32 *out)
{
	int err = smc_parse_u32(field, s, max, out);

	if (err)
		sm_set_err(0, "%s", smc_errmsg());
	return err;
}

/* A byte count: decimal digits, optionally followed by K, M or G (binary
 * multiples, also written KiB, MiB, GiB), within [min, max].
 */
int sm_parse_size(const char *field, const char *s, __u64 min, __u64 max, __u64 *out)
{
	uint64_t v;
	int err = smc_parse_size(field, s, min, max, &v);

	if (err)
		sm_set_err(0, "%s", smc_errmsg());
	else
		*out = v;
	return err;
}

int sm_parse_cidr(const char *field, const char *s, struct sm_cidr *out)
{
	char addr[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	__u32 plen, max;
	int i;

	memset(out, 0, sizeof(*out));
	if (alen == 0 || alen >= sizeof(addr)) {
		sm_set_err(0, "%s: '%s' is not a CIDR", field, s);
		return -EINVAL;
	}
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, addr, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else {
		sm_set_err(0, "%s: '%s' is not an IPv4 or IPv6 address", field, s);
		return -EINVAL;
	}
	plen = max;
	if (slash) {
		if (sm_parse_u32(field, slash + 1, 0xffff, &plen)) {
			sm_set_err(0, "%s: '%s' has an invalid prefix length", field, s);
			return -EINVAL;
		}
		if (plen > max) {
			sm_set_err(0, "%s: '%s' has prefix length %u > %u", field, s, plen, max);
			return -EINVAL;
		}
	}
	/* ::ffff:a.b.c.d/len is an IPv4 network: the data path keys
	 * v4-mapped destinations as IPv4, so store it that way.
	 */
	if (out->family == AF_INET6 && plen >= 96 &&
	    memcmp(out->addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
		memmove(out->addr, out->addr + 12, 4);
		memset(out->addr + 4, 0, 12);
		out->family = AF_INET;
		plen -= 96;
	}
	out->prefix = (__u8)plen;
	/* Clear host bits so equal networks compare equal. */
	for (i = 0; i < 16; i++) {
		int keep = (int)plen - i * 8;

		if (keep <= 0)
			out->addr[i] = 0;
		else if (keep < 8)
			out->addr[i] &= (__u8)(0xff << (8 - keep));
	}
	return 0;
}

typedef int (*item_parser)(const char *field, const char *item, void *slot);

static int parse_cidr_item(const char *field, const char *item, void *slot)
{
	return sm_parse_cidr(field, item, slot);
}

static int parse_port_item(const char *field, const char *item, void *slot)
{
	__u32 v;
	int err = sm_parse_u32(field, item, 65535, &v);

	if (err) {
		sm_set_err(0, "%s: '%s' is not a port (1-65535)", field, item);
		return err;
	}
	if (v == 0) {
		sm_set_err(0, "%s: '%s' is not a port (1-65535)", field, item);
		return -EINVAL;
	}
	*(__u16 *)slot = (__u16)v;
	return 0;
}

bool sm_blank(const char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	return !*s;
}

/* One splitter for every list: comma separated, blanks around items
 * ignored, empty items rejected (",80", "80,,443", "80," are templating
 * mistakes), '*' only where allowed. An all-blank list is empty.
 */
static int parse_list(const char *field, const char *s, bool allow_star, size_t elem,
		      item_parser parse, struct sm_list *out)
{
	size_t cap = 1;
	const char *p;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (!s)
		return 0;
	for (p = s; *p; p++)
		cap += *p == ',';
	out->v = calloc(cap, elem);
	if (!out->v)
		return -ENOMEM;
	if (sm_blank(s))
		return 0;
	for (p = s;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char item[256];

		while (len && isspace((unsigned char)*p)) {
			p++;
			len--;
		}
		while (len && isspace((unsigned char)p[len - 1]))
			len--;
		if (len == 0) {
			sm_set_err(0, "%s: empty item in '%s'", field, s);
			err = -EINVAL;
			break;
		}
		if (len >= sizeof(item)) {
			sm_set_err(0, "%s: item '%.32s...' is too long", field, p);
			err = -EINVAL;
			break;
		}
		memcpy(item, p, len);
		item[len] = '\0';
		if (strcmp(item, "*") == 0) {
			if (!allow_star) {
				sm_set_err(0, "%s: '*' is only allowed in include lists", field);
				err = -EINVAL;
				break;
			}
			if (out->star || out->n) {
				sm_set_err(0, "%s: '%s': '*' (all) must stand alone", field, s);
				err = -EINVAL;
				break;
			}
			out->star = true;
		} else if (out->star) {
			sm_set_err(0, "%s: '%s': '*' (all) must stand alone", field, s);
			err = -EINVAL;
			break;
		} else {
			err = parse(field, item, (char *)out->v + out->n * elem);
			if (err)
				break;
			out->n++;
		}
		if (!end)
			break;
		p = end + 1;
	}
	if (err)
		sm_list_free(out);
	return err;
}

int sm_parse_cidr_list(const char *field, const char *s, bool allow_star, struct sm_list *out)
{
	return parse_list(field, s, allow_star, sizeof(struct sm_cidr), parse_cidr_item, out);
}

int sm_parse_port_list(const char *field, const char *s, bool allow_star, struct sm_list *out)
{
	return parse_list(field, s, allow_star, sizeof(__u16), parse_port_item, out);
}

void sm_list_free(struct sm_list *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void sm_compiled_free(struct sm_compiled *c)
{
	sm_list_free(&c->inc_cidrs);
	sm_list_free(&c->exc_cidrs);
	sm_list_free(&c->inc_ports);
	sm_list_free(&c->exc_ports);
	sm_list_free(&c->inc_in_ports);
	sm_list_free(&c->exc_in_ports);
	sm_list_free(&c->pod_ips);
	sm_list_free(&c->dns_servers);
}

int sm_resolv_conf_servers(const char *path, struct sm_list *out)
{
	char line[512], *p, *end;
	FILE *f = fopen(path, "re");
	int err = 0;

	if (!f) {
		err = -errno;
		sm_set_err(-err, "%s: cannot read '%s'", sm_fname(SOCKMESH_F_DNS_SERVERS), path);
		return err;
	}
	while (fgets(line, sizeof(line), f)) {
		struct sm_cidr c, *nv;

		p = line + strspn(line, " \t");
		if (strncmp(p, "nameserver", 10) || !isspace((unsigned char)p[10]))
			continue;
		p += 10 + strspn(p + 10, " \t");
		end = p + strcspn(p, " \t\r\n#;%");
		*end = '\0';
		if (!*p || sm_parse_cidr(sm_fname(SOCKMESH_F_DNS_SERVERS), p, &c))
			continue; /* resolvers ignore what they cannot parse, so do we */
		nv = realloc(out->v, (out->n + 1) * sizeof(c));
		if (!nv) {
			err = -ENOMEM;
			break;
		}
		out->v = nv;
		nv[out->n++] = c;
	}
	fclose(f);
	return err;
}

int sm_policy_compile(const struct sockmesh_policy *user, struct sm_compiled *out)
{
	struct sm_policy *p = &out->pol;
	struct sockmesh_policy pol, *in = &pol;
	const char *inc_cidrs, *inc_ports;
	int err;

	memset(out, 0, sizeof(*out));
	if (!user) {
		sm_set_err(0, "policy: missing");
		return -EINVAL;
	}
	if (!sm_opts_valid(user, offsetofend(struct sockmesh_policy, sockmesh_policy__last_field),
			   user->sz)) {
		sm_set_err(0, "policy: unknown fields set (struct size %zu)", user->sz);
		return -EINVAL;
	}
	/* An older caller's shorter struct: the fields it lacks are zero. */
	sm_opts_copy(&pol, sizeof(pol), user, user->sz);
	inc_cidrs = in->include_outbound_cidrs ? in->include_outbound_cidrs : "*";
	inc_ports = in->include_outbound_ports ? in->include_outbound_ports : "*";

	err = sm_field_list_parse(SOCKMESH_F_INCLUDE_OUTBOUND_CIDRS, inc_cidrs, &out->inc_cidrs);
	if (!err)
		err = sm_field_list_parse(SOCKMESH_F_EXCLUDE_OUTBOUND_CIDRS,
					  in->exclude_outbound_cidrs, &out->exc_cidrs);
	if (!err)
		err = sm_field_list_parse(SOCKMESH_F_INCLUDE_OUTBOUND_PORTS, inc_ports,
					  &out->inc_ports);
	if (!err)
		err = sm_field_list_parse(SOCKMESH_F_EXCLUDE_OUTBOUND_PORTS,
					  in->exclude_outbound_ports, &out->exc_ports);
	if (!err)
		err = sm_field_list_parse(SOCKMESH_F_INCLUDE_INBOUND_PORTS,
					  in->include_inbound_ports ? in->include_inbound_ports :
								      "*",
					  &out->inc_in_ports);
	if (!err)
		err = sm_field_list_parse(SOCKMESH_F_EXCLUDE_INBOUND_PORTS,
					  in->exclude_inbound_ports, &out->exc_in_ports);
	if (!err)
		err = sm_field_list_parse(SOCKMESH_F_POD_IPS, in->pod_ips, &out->pod_ips);
	if (!err)
		err = sm_field_list_parse(SOCKMESH_F_DNS_SERVERS, in->dns_servers,
					  &out->dns_servers);
	/* mark 0 is every unmarked socket: it would turn capture off */
	if (!err && in->has_proxy_mark)
		err = sm_field_u32_check(SOCKMESH_F_PROXY_MARK, in->proxy_mark);
	if (!err && !in->redirect_dns) {
		/* name the first field that only means something with DNS capture */
		const char *dns = sm_fname(SOCKMESH_F_REDIRECT_DNS);

		if (in->capture_all_dns)
			sm_set_err(0, "%s: needs DNS capture (%s) on",
				   sm_fname(SOCKMESH_F_CAPTURE_ALL_DNS), dns);
		else if (in->dns_servers)
			sm_set_err(0, "%s: '%s' needs DNS capture (%s) on",
				   sm_fname(SOCKMESH_F_DNS_SERVERS), in->dns_servers, dns);
		else if (in->dns_port)
			sm_set_err(0, "%s: %u needs DNS capture (%s) on",
				   sm_fname(SOCKMESH_F_DNS_PORT), in->dns_port, dns);
		if (in->capture_all_dns || in->dns_servers || in->dns_port)
			err = -EINVAL;
	}
	if (err) {
		sm_compiled_free(out);
		return err;
	}

	p->proxy_port = in->proxy_port ? in->proxy_port : SM_DEFAULT_PROXY_PORT;
	p->proxy_uid = in->has_proxy_uid ? in->proxy_uid : SM_DEFAULT_PROXY_UID;
	if (in->has_proxy_gid) {
		p->flags |= SM_POL_PROXY_GID;
		p->proxy_gid = in->proxy_gid;
	}
	if (in->has_proxy_mark) {
		p->flags |= SM_POL_PROXY_MARK;
		p->proxy_mark = in->proxy_mark;
	}
	if (!out->inc_ports.star)
		p->flags |= SM_POL_INCLUDE_PORTS;
	if (out->exc_ports.n)
		p->flags |= SM_POL_EXCLUDE_PORTS;
	if (!out->inc_cidrs.star) {
		/* Like istio: a family with no included range is not captured. */
		p->flags |= SM_POL_INCLUDE_CIDR4 | SM_POL_INCLUDE_CIDR6;
	}
	if (out->exc_cidrs.n)
		p->flags |= SM_POL_EXCLUDE_CIDRS;
	if (!in->no_splice)
		p->flags |= SM_POL_SPLICE;
	p->inbound_port = in->inbound_port ? in->inbound_port : SM_DEFAULT_INBOUND_PORT;
	if (out->inc_in_ports.star || out->inc_in_ports.n)
		p->flags |= SM_POL_INBOUND;
	if (!out->inc_in_ports.star)
		p->flags |= SM_POL_INBOUND_INCLUDE_PORTS;
	if (out->exc_in_ports.n)
		p->flags |= SM_POL_INBOUND_EXCLUDE_PORTS;
	p->dns_port = in->dns_port ? in->dns_port : SM_DEFAULT_DNS_PORT;
	if (in->redirect_dns)
		p->flags |= SM_POL_DNS;
	if (in->capture_all_dns)
		p->flags |= SM_POL_DNS_ALL;
	if (in->fail_open)
		p->flags |= SM_POL_FAIL_OPEN;
	return 0;
}

int sockmesh_policy__validate(const struct sockmesh_policy *pol)
{
	struct sm_compiled c;
	int err = sm_policy_compile(pol, &c);

	if (!err)
		sm_compiled_free(&c);
	return err;
}
