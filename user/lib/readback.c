// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libsockmesh: what an instance holds, read back from the kernel: its
 * attachments (pinned links, sk_msg on the splice map) and an enrolled
 * scope's policy, field by field in the schema's terms. A policy asked for
 * is compiled and rendered by the same code as the enrolled one, so "does
 * the scope enforce this policy" is a comparison of normalised texts (CNI
 * CHECK uses it).
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include "lib.h"

/* ---- attachments ---------------------------------------------------------- */

static void prog_name_of(__u32 id, char *buf, size_t len)
{
	struct bpf_prog_info info = {};
	__u32 il = sizeof(info);
	int fd = bpf_prog_get_fd_by_id(id);

	snprintf(buf, len, "?");
	if (fd < 0)
		return;
	if (bpf_obj_get_info_by_fd(fd, &info, &il) == 0)
		snprintf(buf, len, "%s", info.name);
	close(fd);
}

/* A program attached to a map (no link): its entry of the walk. */
static int map_attachment(struct sockmesh *sm, enum sm_prog_id prog, enum sm_map_id map,
			  const char *hook, enum bpf_attach_type type, sockmesh_link_fn fn,
			  void *ctx)
{
	struct bpf_prog_info pinfo = {};
	struct bpf_map_info minfo = {};
	__u32 pl = sizeof(pinfo), ml = sizeof(minfo);
	struct sockmesh_link_info li = { .sz = sizeof(li) };

	if (bpf_obj_get_info_by_fd(sm->prog_fd[prog], &pinfo, &pl) ||
	    bpf_obj_get_info_by_fd(sm->map_fd[map], &minfo, &ml))
		return -errno;
	snprintf(li.hook, sizeof(li.hook), "%s", hook);
	snprintf(li.prog, sizeof(li.prog), "%s", pinfo.name);
	li.prog_id = pinfo.id;
	li.target_id = minfo.id;
	li.attach_type = type;
	return fn(&li, ctx);
}

int sockmesh__for_each_link(struct sockmesh *sm, sockmesh_link_fn fn, void *ctx)
{
	struct sockmesh_link_info li;
	struct dirent *e;
	DIR *d;
	int ret = 0;

	if (!sm || sm->destroyed || !fn)
		return -EINVAL;
	d = opendir(sm->pin_dir);
	if (!d) {
		ret = -errno;
		sm_set_err(-ret, "%s: cannot read '%s'", sm_fname(SOCKMESH_F_PIN_DIR), sm->pin_dir);
		return ret;
	}
	while (!ret && (e = readdir(d))) {
		struct bpf_link_info info = {};
		__u32 il = sizeof(info);
		const char *hook;
		char p[PATH_MAX];
		int fd;

		if (strncmp(e->d_name, "link_", 5) ||
		    sm_pin_path(sm, p, sizeof(p), "%s", e->d_name))
			continue;
		fd = bpf_obj_get(p);
		if (fd < 0)
			continue;
		if (bpf_obj_get_info_by_fd(fd, &info, &il)) {
			close(fd);
			continue;
		}
		close(fd);
		memset(&li, 0, sizeof(li));
		li.sz = sizeof(li);
		/* link_<cgroup id>_<hook>, link_netns_<cookie>_sk_lookup or
		 * link_global_read_acct
		 */
		hook = strrchr(e->d_name, '_');
		if (strstr(e->d_name, "_sk_lookup"))
			hook = "_sk_lookup";
		else if (!strcmp(e->d_name, SM_READ_ACCT_LINK))
			hook = "_read_acct";
		snprintf(li.hook, sizeof(li.hook), "%s", hook ? hook + 1 : "?");
		li.prog_id = info.prog_id;
		li.link_id = info.id;
		if (info.type == BPF_LINK_TYPE_CGROUP) {
			li.target_id = info.cgroup.cgroup_id;
			for (size_t h = 0; h < sm_n_cgroup_hooks; h++)
				if (!strcmp(li.hook, sm_cgroup_hooks[h].hook))
					li.attach_type = sm_cgroup_hooks[h].type;
		} else if (!strcmp(e->d_name, SM_READ_ACCT_LINK)) {
			li.target_id = 0; /* global */
			li.attach_type = info.type == BPF_LINK_TYPE_TRACING ? BPF_TRACE_FEXIT :
									      BPF_TRACE_RAW_TP;
		} else {
			li.target_id = strtoull(e->d_name + strlen("link_netns_"), NULL, 10);
			li.attach_type = BPF_SK_LOOKUP;
		}
		prog_name_of(info.prog_id, li.prog, sizeof(li.prog));
		ret = fn(&li, ctx);
	}
	closedir(d);
	if (ret)
		return ret;
	/* sk_msg and the fast path's stream verdict are attached to their
	 * maps themselves, without a link
	 */
	ret = map_attachment(sm, PROG_sm_msg, MAP_splice_map, "sk_msg", BPF_SK_MSG_VERDICT, fn,
			     ctx);
	if (ret)
		return ret;
	return map_attachment(sm, PROG_sm_fp_skb, MAP_fp_map, "sk_skb", BPF_SK_SKB_STREAM_VERDICT,
			      fn, ctx);
}

/* ---- policy read-back ----------------------------------------------------- */

static int cmp_u16(const void *a, const void *b)
{
	return (int)*(const __u16 *)a - (int)*(const __u16 *)b;
}

static int cmp_cidr(const void *a, const void *b)
{
	const struct sm_cidr *x = a, *y = b;

	if (x->family != y->family)
		return x->family - y->family;
	return memcmp(x->addr, y->addr, 16) ?: x->prefix - y->prefix;
}

static int list_add(struct sm_list *l, const void *item, size_t sz)
{
	void *nv = realloc(l->v, (l->n + 1) * sz);

	if (!nv)
		return -ENOMEM;
	l->v = nv;
	memcpy((char *)l->v + l->n++ * sz, item, sz);
	return 0;
}

/* Rebuild the compiled form of an enrolled scope from the maps. */
static int compiled_from_maps(struct sockmesh *sm, const struct sockmesh_scope *scope,
			      struct sm_compiled *c)
{
	struct sm_list *cl[6] = { NULL, &c->inc_cidrs, &c->exc_cidrs, NULL, NULL, &c->dns_servers };
	struct sm_list *pl[6] = {
		NULL, &c->inc_ports, &c->exc_ports, &c->inc_in_ports, &c->exc_in_ports, NULL
	};
	struct sm_cidr_key ck, *cprev = NULL;
	struct sm_port_key pk, *pprev = NULL;
	struct sm_pod_addr_key ak, *aprev = NULL;
	struct sm_scope_key k;
	int err = 0;

	memset(c, 0, sizeof(*c));
	sm_scope_key(scope, &k);
	if (bpf_map_lookup_elem(sm->map_fd[MAP_scope_map], &k, &c->pol)) {
		sm_set_err(0, "'%s' is not enrolled", scope->name);
		return -ENOENT;
	}
	while (!err && bpf_map_get_next_key(sm->map_fd[MAP_cidr_map], cprev, &ck) == 0) {
		cprev = &ck;
		if (ck.rules_id == c->pol.rules_id && ck.list < 6 && cl[ck.list]) {
			struct sm_cidr x = { .family = ck.family,
					     .prefix = (__u8)(ck.prefixlen - SM_CIDR_HEAD_BITS) };

			memcpy(x.addr, ck.addr, 16);
			err = list_add(cl[ck.list], &x, sizeof(x));
		}
	}
	while (!err && bpf_map_get_next_key(sm->map_fd[MAP_port_map], pprev, &pk) == 0) {
		pprev = &pk;
		if (pk.rules_id == c->pol.rules_id && pk.list < 6 && pl[pk.list])
			err = list_add(pl[pk.list], &pk.port, sizeof(pk.port));
	}
	while (!err && scope->kind == SOCKMESH_SCOPE_NETNS &&
	       bpf_map_get_next_key(sm->map_fd[MAP_pod_addr_map], aprev, &ak) == 0) {
		__u64 netns;

		aprev = &ak;
		if (bpf_map_lookup_elem(sm->map_fd[MAP_pod_addr_map], &ak, &netns) == 0 &&
		    netns == scope->id) {
			struct sm_cidr x = { .family = (__u8)ak.family,
					     .prefix = ak.family == AF_INET ? 32 : 128 };

			memcpy(x.addr, ak.addr, 16);
			err = list_add(&c->pod_ips, &x, sizeof(x));
		}
	}
	c->inc_cidrs.star = !(c->pol.flags & (SM_POL_INCLUDE_CIDR4 | SM_POL_INCLUDE_CIDR6));
	c->inc_ports.star = !(c->pol.flags & SM_POL_INCLUDE_PORTS);
	c->inc_in_ports.star = !(c->pol.flags & SM_POL_INBOUND_INCLUDE_PORTS);
	if (err)
		sm_compiled_free(c);
	return err;
}

static void put(char *buf, size_t len, size_t *o, const char *s)
{
	int n = snprintf(buf + *o, *o < len ? len - *o : 0, "%s", s);

	*o += n > 0 ? (size_t)n : 0;
}

static void render_cidrs(const struct sm_list *l, bool addr_only, char *buf, size_t len, size_t *o)
{
	struct sm_cidr *v = l->v;

	if (l->n)
		qsort(v, l->n, sizeof(*v), cmp_cidr);
	for (size_t i = 0; i < l->n; i++) {
		char a[INET6_ADDRSTRLEN], item[INET6_ADDRSTRLEN + 8];

		if (i && !cmp_cidr(&v[i - 1], &v[i]))
			continue;
		inet_ntop(v[i].family, v[i].addr, a, sizeof(a));
		if (addr_only)
			snprintf(item, sizeof(item), "%s%s", *o ? "," : "", a);
		else
			snprintf(item, sizeof(item), "%s%s/%u", *o ? "," : "", a, v[i].prefix);
		put(buf, len, o, item);
	}
}

static void render_ports(const struct sm_list *l, char *buf, size_t len, size_t *o)
{
	__u16 *v = l->v;

	if (l->n)
		qsort(v, l->n, sizeof(*v), cmp_u16);
	for (size_t i = 0; i < l->n; i++) {
		char item[8];

		if (i && v[i - 1] == v[i])
			continue;
		snprintf(item, sizeof(item), "%s%u", *o ? "," : "", v[i]);
		put(buf, len, o, item);
	}
}

/* One policy field of a compiled policy, as text (see sockmesh__policy_get). */
static int render_field(const struct sm_compiled *c, enum sockmesh_field f, char *buf, size_t len)
{
	const struct sm_policy *p = &c->pol;
	const struct sm_list *l = NULL;
	size_t o = 0;

	if (!len)
		return -EINVAL;
	buf[0] = '\0';
	switch (f) {
	case SOCKMESH_F_PROXY_PORT:
		return snprintf(buf, len, "%u", p->proxy_port) < 0 ? -EIO : 0;
	case SOCKMESH_F_PROXY_UID:
		return snprintf(buf, len, "%u", p->proxy_uid) < 0 ? -EIO : 0;
	case SOCKMESH_F_PROXY_GID:
		if (p->flags & SM_POL_PROXY_GID)
			snprintf(buf, len, "%u", p->proxy_gid);
		return 0;
	case SOCKMESH_F_PROXY_MARK:
		if (p->flags & SM_POL_PROXY_MARK)
			snprintf(buf, len, "%u", p->proxy_mark);
		return 0;
	case SOCKMESH_F_NO_SPLICE:
		snprintf(buf, len, "%s", p->flags & SM_POL_SPLICE ? "false" : "true");
		return 0;
	case SOCKMESH_F_INBOUND_PORT:
		return snprintf(buf, len, "%u", p->inbound_port) < 0 ? -EIO : 0;
	case SOCKMESH_F_REDIRECT_DNS:
		snprintf(buf, len, "%s", p->flags & SM_POL_DNS ? "true" : "false");
		return 0;
	case SOCKMESH_F_CAPTURE_ALL_DNS:
		snprintf(buf, len, "%s", p->flags & SM_POL_DNS_ALL ? "true" : "false");
		return 0;
	case SOCKMESH_F_FAIL_OPEN:
		snprintf(buf, len, "%s", p->flags & SM_POL_FAIL_OPEN ? "true" : "false");
		return 0;
	case SOCKMESH_F_DNS_PORT:
		return snprintf(buf, len, "%u", p->dns_port) < 0 ? -EIO : 0;
	case SOCKMESH_F_INCLUDE_OUTBOUND_CIDRS:
		l = &c->inc_cidrs;
		break;
	case SOCKMESH_F_EXCLUDE_OUTBOUND_CIDRS:
		l = &c->exc_cidrs;
		break;
	case SOCKMESH_F_DNS_SERVERS:
		l = &c->dns_servers;
		break;
	case SOCKMESH_F_POD_IPS:
		render_cidrs(&c->pod_ips, true, buf, len, &o);
		return 0;
	case SOCKMESH_F_INCLUDE_OUTBOUND_PORTS:
	case SOCKMESH_F_EXCLUDE_OUTBOUND_PORTS:
	case SOCKMESH_F_INCLUDE_INBOUND_PORTS:
	case SOCKMESH_F_EXCLUDE_INBOUND_PORTS:
		l = f == SOCKMESH_F_INCLUDE_OUTBOUND_PORTS ? &c->inc_ports :
		    f == SOCKMESH_F_EXCLUDE_OUTBOUND_PORTS ? &c->exc_ports :
		    f == SOCKMESH_F_INCLUDE_INBOUND_PORTS  ? &c->inc_in_ports :
							     &c->exc_in_ports;
		if (l->star) {
			snprintf(buf, len, "*");
			return 0;
		}
		render_ports(l, buf, len, &o);
		return 0;
	default:
		sm_set_err(0, "policy: %d is not a policy field", (int)f);
		return -EINVAL;
	}
	if (l->star) {
		snprintf(buf, len, "*");
		return 0;
	}
	render_cidrs(l, false, buf, len, &o);
	return 0;
}

int sockmesh__policy_get(struct sockmesh *sm, const struct sockmesh_scope *scope,
			 enum sockmesh_field f, char *buf, size_t len)
{
	struct sm_compiled c;
	int err;

	if (!sm || sm->destroyed || !scope || !buf || !len)
		return -EINVAL;
	if ((unsigned int)f >= SOCKMESH_F__COUNT || sockmesh_field(f)->kind != SOCKMESH_FK_POLICY) {
		sm_set_err(0, "policy: %d is not a policy field", (int)f);
		return -EINVAL;
	}
	err = compiled_from_maps(sm, scope, &c);
	if (err)
		return err;
	err = render_field(&c, f, buf, len);
	sm_compiled_free(&c);
	return err;
}

int sockmesh__policy_diff(struct sockmesh *sm, const struct sockmesh_scope *scope,
			  const struct sockmesh_policy *pol, sockmesh_policy_diff_fn fn, void *ctx)
{
	struct sm_compiled got, want;
	bool dns_got, dns_want;
	int err, n = 0;

	if (!sm || sm->destroyed || !scope)
		return -EINVAL;
	err = sm_policy_compile(pol, &want);
	if (err)
		return err;
	err = compiled_from_maps(sm, scope, &got);
	if (err) {
		sm_compiled_free(&want);
		return err;
	}
	dns_got = got.pol.flags & SM_POL_DNS;
	dns_want = want.pol.flags & SM_POL_DNS;
	for (unsigned int i = 0; i < SOCKMESH_F__COUNT; i++) {
		const struct sockmesh_field_desc *f = sockmesh_field(i);
		char g[1024], w[1024];

		if (f->kind != SOCKMESH_FK_POLICY)
			continue;
		/* discovered at enrollment: nothing asked to compare with */
		if ((f->id == SOCKMESH_F_POD_IPS && !want.pod_ips.n) ||
		    (f->id == SOCKMESH_F_DNS_SERVERS && !want.dns_servers.n))
			continue;
		/* inbound capture exists for pods only */
		if ((f->flags & SOCKMESH_FIELD_NETNS_ONLY) && scope->kind != SOCKMESH_SCOPE_NETNS)
			continue;
		/* the DNS fields mean something only where both capture DNS */
		if ((f->flags & SOCKMESH_FIELD_NEEDS_DNS) && !(dns_got && dns_want))
			continue;
		render_field(&got, f->id, g, sizeof(g));
		render_field(&want, f->id, w, sizeof(w));
		if (!strcmp(g, w))
			continue;
		n++;
		if (fn) {
			err = fn(f->id, g, w, ctx);
			if (err)
				break;
		}
	}
	sm_compiled_free(&got);
	sm_compiled_free(&want);
	return err ? err : n;
}

struct first_diff {
	bool seen;
};

static int note_first(enum sockmesh_field f, const char *enrolled, const char *want, void *ctx)
{
	struct first_diff *d = ctx;

	if (!d->seen)
		sm_set_err(0, "%s: enrolled '%s', policy '%s'", sm_fname(f), enrolled, want);
	d->seen = true;
	return 0;
}

int sockmesh__policy_matches(struct sockmesh *sm, const struct sockmesh_scope *scope,
			     const struct sockmesh_policy *pol)
{
	struct first_diff d = { 0 };
	int n = sockmesh__policy_diff(sm, scope, pol, note_first, &d);

	return n < 0 ? n : n == 0;
}
