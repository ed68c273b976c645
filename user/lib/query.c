// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libsockmesh: scopes, stats, original destination */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/syscall.h>
#include <linux/magic.h>
#include <netinet/in.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "lib.h"

#define SM_STAT_NAME_(ID, name, help) [SM_STAT_##ID] = #name,
static const char *const stat_names[SM_STAT_MAX] = { SM_STATS(SM_STAT_NAME_) };
#undef SM_STAT_NAME_
#define SM_STAT_HELP_(ID, name, help) [SM_STAT_##ID] = help,
static const char *const stat_help[SM_STAT_MAX] = { SM_STATS(SM_STAT_HELP_) };
#undef SM_STAT_HELP_
_Static_assert(SM_STAT_MAX <= SOCKMESH_STATS_MAX, "public stats array too small");

const char *sockmesh_stat_name(unsigned int i)
{
	return i < SM_STAT_MAX ? stat_names[i] : NULL;
}

const char *sockmesh_stat_help(unsigned int i)
{
	return i < SM_STAT_MAX ? stat_help[i] : NULL;
}

int sockmesh_cgroup2_root(char *buf, size_t len)
{
	return sm_cgroup2_root(buf, len);
}

/* ---- queries ------------------------------------------------------------- */

static void fill_info(struct sockmesh *sm, const struct sm_scope_key *k, const struct sm_policy *p,
		      struct sockmesh_scope_info *user)
{
	struct sm_scope_meta meta = {};
	struct sockmesh_scope_info full, *out = &full;
	/* sz 0: a caller of the current layout that did not set it */
	size_t sz = user->sz ? user->sz : sizeof(full);

	memset(out, 0, sizeof(*out));
	out->scope.kind = k->kind;
	out->scope.id = k->id;
	if (bpf_map_lookup_elem(sm->map_fd[MAP_scope_meta_map], k, &meta) == 0)
		snprintf(out->scope.name, sizeof(out->scope.name), "%.*s", (int)sizeof(meta.name),
			 meta.name);
	out->scope_idx = p->scope_idx;
	out->proxy_port = p->proxy_port;
	out->proxy_uid = p->proxy_uid;
	out->proxy_gid = p->flags & SM_POL_PROXY_GID ? (__s64)p->proxy_gid : -1;
	out->proxy_mark = p->flags & SM_POL_PROXY_MARK ? (__s64)p->proxy_mark : -1;
	out->splice = p->flags & SM_POL_SPLICE;
	out->attach_cgroup_id = p->attach_cgroup_id;
	out->inbound_port =
		k->kind == SM_SCOPE_NETNS && (p->flags & SM_POL_INBOUND) ? p->inbound_port : 0;
	out->dns_port = p->flags & SM_POL_DNS ? p->dns_port : 0;
	out->fail_open = p->flags & SM_POL_FAIL_OPEN;
	out->draining = p->flags & SM_POL_DRAINING;
	snprintf(out->pod_namespace, sizeof(out->pod_namespace), "%.*s",
		 (int)sizeof(meta.pod_namespace), meta.pod_namespace);
	snprintf(out->pod_name, sizeof(out->pod_name), "%.*s", (int)sizeof(meta.pod_name),
		 meta.pod_name);
	snprintf(out->container_id, sizeof(out->container_id), "%.*s",
		 (int)sizeof(meta.container_id), meta.container_id);
	full.sz = sz < sizeof(full) ? sz : sizeof(full);
	memcpy(user, &full, full.sz);
}

static int label_set(char *dst, size_t cap, const char *what, const char *v)
{
	if (!v)
		return 0;
	if (strlen(v) >= cap) {
		sm_set_err(0, "labels: %s '%.40s...' is longer than %zu characters", what, v,
			   cap - 1);
		return -EINVAL;
	}
	snprintf(dst, cap, "%s", v);
	return 0;
}

int sockmesh__set_scope_labels(struct sockmesh *sm, const struct sockmesh_scope *scope,
			       const char *pod_namespace, const char *pod_name,
			       const char *container_id)
{
	struct sm_scope_meta meta = {};
	struct sm_scope_key key;
	int err;

	if (!sm || !scope || sm->destroyed)
		return -EINVAL;
	sm_scope_key(scope, &key);
	if (bpf_map_lookup_elem(sm->map_fd[MAP_scope_meta_map], &key, &meta)) {
		sm_set_err(0, "labels: '%s' is not enrolled", scope->name);
		return -ENOENT;
	}
	err = label_set(meta.pod_namespace, sizeof(meta.pod_namespace), "pod namespace",
			pod_namespace);
	if (!err)
		err = label_set(meta.pod_name, sizeof(meta.pod_name), "pod name", pod_name);
	if (!err)
		err = label_set(meta.container_id, sizeof(meta.container_id), "container id",
				container_id);
	if (err)
		return err;
	if (bpf_map_update_elem(sm->map_fd[MAP_scope_meta_map], &key, &meta, BPF_EXIST)) {
		err = -errno;
		sm_set_err(-err, "labels: cannot store them");
	}
	return err;
}

int sockmesh__next_scope(struct sockmesh *sm, const struct sockmesh_scope *prev,
			 struct sockmesh_scope_info *out)
{
	struct sm_scope_key pk, k;
	struct sm_policy pol;

	if (!sm || sm->destroyed)
		return -EINVAL;
	if (prev)
		sm_scope_key(prev, &pk);
	for (;;) {
		if (bpf_map_get_next_key(sm->map_fd[MAP_scope_map], prev ? &pk : NULL, &k))
			return -ENOENT;
		if (bpf_map_lookup_elem(sm->map_fd[MAP_scope_map], &k, &pol) == 0)
			break;
		pk = k; /* deleted under us: skip it */
		prev = (const void *)1;
	}
	fill_info(sm, &k, &pol, out);
	return 0;
}

int sockmesh__scope_info(struct sockmesh *sm, const struct sockmesh_scope *scope,
			 struct sockmesh_scope_info *out)
{
	struct sm_scope_key k;
	struct sm_policy pol;

	if (!sm || !scope || sm->destroyed)
		return -EINVAL;
	sm_scope_key(scope, &k);
	if (bpf_map_lookup_elem(sm->map_fd[MAP_scope_map], &k, &pol)) {
		sm_set_err(0, "'%s' is not enrolled", scope->name);
		return -ENOENT;
	}
	fill_info(sm, &k, &pol, out);
	return 0;
}

int sockmesh__stats(struct sockmesh *sm, const struct sockmesh_scope *scope,
		    struct sockmesh_stats *out)
{
	struct sockmesh_scope_info info;
	__u32 idx = SM_SCOPE_IDX_GLOBAL;
	int ncpu = libbpf_num_possible_cpus(), err;
	struct sm_stats *v;

	if (!sm || !out || sm->destroyed || ncpu <= 0)
		return -EINVAL;
	if (scope) {
		err = sockmesh__scope_info(sm, scope, &info);
		if (err)
			return err;
		idx = info.scope_idx;
	}
	v = calloc((size_t)ncpu, sizeof(*v));
	if (!v)
		return -ENOMEM;
	memset(out, 0, sizeof(*out));
	if (bpf_map_lookup_elem(sm->map_fd[MAP_stats_map], &idx, v)) {
		err = -errno;
		free(v);
		sm_set_err(-err, "stats: no slot %u", idx);
		return err;
	}
	out->count = SM_STAT_MAX;
	for (int c = 0; c < ncpu; c++)
		for (int i = 0; i < SM_STAT_MAX; i++)
			out->v[i] += v[c].c[i];
	free(v);
	return 0;
}

int sockmesh_original_dst(int fd, struct sockaddr *addr, socklen_t *len)
{
	struct sockaddr_storage local;
	socklen_t l = sizeof(local);

	if (!addr || !len)
		return -EINVAL;
	if (getsockname(fd, (struct sockaddr *)&local, &l))
		return -errno;
	if (local.ss_family == AF_INET6) {
		if (getsockopt(fd, SOL_IPV6, SM_SO_ORIGINAL_DST, addr, len) == 0)
			return 0;
	}
	if (getsockopt(fd, SOL_IP, SM_SO_ORIGINAL_DST, addr, len))
		return -errno;
	return 0;
}
