// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libsockmesh: enroll and withdraw scopes; teardown */
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
#include <time.h>
#include <linux/magic.h>
#include <netinet/in.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "lib.h"

/* ---- enroll / withdraw ---------------------------------------------------- */

void sm_scope_key(const struct sockmesh_scope *s, struct sm_scope_key *k)
{
	*k = sm_scope_key_make(s->kind, s->id);
}

/* Scope slots are 1..max_scopes: slot 0 (SM_SCOPE_IDX_GLOBAL) holds the
 * counters of what no scope owns, so stats_map has max_scopes + 1 entries.
 */
static int alloc_scope_idx(struct sockmesh *sm, __u32 *out)
{
	struct sm_scope_key k, *prev = NULL;
	struct sm_policy pol;
	size_t nbits = (size_t)sm->max_scopes + 1;
	unsigned char *used = calloc(nbits, 1);
	int err = -ENOSPC;

	if (!used)
		return -ENOMEM;
	while (bpf_map_get_next_key(sm->map_fd[MAP_scope_map], prev, &k) == 0) {
		if (bpf_map_lookup_elem(sm->map_fd[MAP_scope_map], &k, &pol) == 0 &&
		    pol.scope_idx < nbits)
			used[pol.scope_idx] = 1;
		prev = &k;
	}
	for (size_t i = SM_SCOPE_IDX_GLOBAL + 1; i < nbits; i++) {
		if (!used[i]) {
			*out = (__u32)i;
			err = 0;
			break;
		}
	}
	free(used);
	if (err)
		sm_set_err(0, "enroll: all %zu scope slots are in use (raise %s)", nbits - 1,
			   sm_fname(SOCKMESH_F_MAX_SCOPES));
	return err;
}

static bool attach_point_used(struct sockmesh *sm, __u64 cgid)
{
	struct sm_scope_key k, *prev = NULL;
	struct sm_policy pol;

	while (bpf_map_get_next_key(sm->map_fd[MAP_scope_map], prev, &k) == 0) {
		if (bpf_map_lookup_elem(sm->map_fd[MAP_scope_map], &k, &pol) == 0 &&
		    pol.attach_cgroup_id == cgid)
			return true;
		prev = &k;
	}
	return false;
}

static int stats_slot_reset(struct sockmesh *sm, __u32 idx)
{
	int ncpu = libbpf_num_possible_cpus();
	struct sm_stats *zero;
	int err = 0;

	if (ncpu <= 0)
		return -EINVAL;
	zero = calloc((size_t)ncpu, sizeof(*zero));
	if (!zero)
		return -ENOMEM;
	if (bpf_map_update_elem(sm->map_fd[MAP_stats_map], &idx, zero, BPF_ANY))
		err = -errno;
	free(zero);
	return err;
}

/* The resolvers a scope uses: `ip netns exec NAME` bind-mounts
 * /etc/netns/NAME/resolv.conf over /etc/resolv.conf, so a named netns reads
 * that one when it exists.
 */
static int resolvers_of(const struct sockmesh_scope *scope, struct sm_list *out)
{
	char path[PATH_MAX] = "/etc/resolv.conf";
	int err;

	if (scope->kind == SOCKMESH_SCOPE_NETNS && !strchr(scope->name, '/')) {
		char p[PATH_MAX];

		snprintf(p, sizeof(p), "/etc/netns/%s/resolv.conf", scope->name);
		if (access(p, R_OK) == 0)
			snprintf(path, sizeof(path), "%s", p);
	}
	err = sm_resolv_conf_servers(path, out);
	if (!err && !out->n) {
		sm_set_err(
			0,
			"dns_servers: no nameserver in '%s'; name the resolvers or capture all DNS",
			path);
		err = -EINVAL;
	}
	return err;
}

static int enroll_locked(struct sockmesh *sm, const struct sockmesh_scope *scope,
			 const char *attach_cgroup, const struct sockmesh_policy *policy)
{
	char root[PATH_MAX];
	struct sm_compiled c;
	struct sm_policy old;
	struct sm_scope_meta meta = {};
	struct sm_scope_key key;
	bool existed, did_attach = false;
	__u64 cgid;
	int err;

	if (!sm || !scope || sm->destroyed)
		return -EINVAL;
	err = sm_policy_compile(policy, &c);
	if (err)
		return err;
	err = sm_policy_check_scope(policy, scope->kind);
	if (err)
		goto out;
	if ((c.pol.flags & SM_POL_DNS) && !(c.pol.flags & SM_POL_DNS_ALL) && !c.dns_servers.n) {
		err = resolvers_of(scope, &c.dns_servers);
		if (err)
			goto out;
	}

	if (scope->kind == SOCKMESH_SCOPE_CGROUP) {
		if (attach_cgroup && strcmp(attach_cgroup, scope->name) != 0) {
			sm_set_err(
				0,
				"attach_cgroup: a cgroup scope attaches at its own cgroup, not '%s'",
				attach_cgroup);
			err = -EINVAL;
			goto out;
		}
		attach_cgroup = scope->name;
	} else if (scope->kind == SOCKMESH_SCOPE_NETNS) {
		if (!attach_cgroup) {
			err = sm_cgroup2_root(root, sizeof(root));
			if (err) {
				sm_set_err(-err, "%s: no cgroup2 mount",
					   sm_fname(SOCKMESH_F_ATTACH_CGROUP));
				goto out;
			}
			attach_cgroup = root;
		}
	} else {
		sm_set_err(0, "scope: unknown kind %d", scope->kind);
		err = -EINVAL;
		goto out;
	}
	err = sm_cgroup_id_of(sm_fname(SOCKMESH_F_ATTACH_CGROUP), attach_cgroup, &cgid, NULL);
	if (err)
		goto out;

	sm_scope_key(scope, &key);
	existed = bpf_map_lookup_elem(sm->map_fd[MAP_scope_map], &key, &old) == 0;
	if (existed) {
		c.pol.scope_idx = old.scope_idx;
		/* Two alternating rule sets make the policy switch atomic. */
		c.pol.rules_id = old.rules_id ^ SM_RULES_ID_ALT;
	} else {
		err = alloc_scope_idx(sm, &c.pol.scope_idx);
		if (err)
			goto out;
		c.pol.rules_id = c.pol.scope_idx;
	}
	c.pol.attach_cgroup_id = cgid;

	sm_rules_delete(sm, c.pol.rules_id); /* leftovers of a crashed writer */
	err = sm_rules_write(sm, c.pol.rules_id, &c);
	if (err)
		goto undo_rules;
	if (!existed) {
		err = stats_slot_reset(sm, c.pol.scope_idx);
		if (err) {
			sm_set_err(-err, "enroll: cannot create the stats slot");
			goto undo_rules;
		}
	}
	if (!sm_cgroup_attached(sm, cgid)) {
		err = sm_attach_at_cgroup(sm, attach_cgroup, cgid);
		if (err)
			goto undo_stats;
		did_attach = true;
	}
	if (scope->kind == SOCKMESH_SCOPE_NETNS) {
		err = sm_pod_setup(sm, scope, &c);
		if (err)
			goto undo_attach;
		if (existed && !(c.pol.flags & SM_POL_INBOUND))
			sm_detach_netns(sm, scope->id);
	}
	/* keep the labels of a re-enrolled scope */
	bpf_map_lookup_elem(sm->map_fd[MAP_scope_meta_map], &key, &meta);
	snprintf(meta.name, sizeof(meta.name), "%s", scope->name);
	bpf_map_update_elem(sm->map_fd[MAP_scope_meta_map], &key, &meta, BPF_ANY);
	if (bpf_map_update_elem(sm->map_fd[MAP_scope_map], &key, &c.pol, BPF_ANY)) {
		err = -errno;
		sm_set_err(-err, "enroll: cannot store the scope (raise %s?)",
			   sm_fname(SOCKMESH_F_MAX_SCOPES));
		if (!existed) {
			bpf_map_delete_elem(sm->map_fd[MAP_scope_meta_map], &key);
			if (scope->kind == SOCKMESH_SCOPE_NETNS)
				sm_pod_teardown(sm, scope->id);
		}
		goto undo_attach;
	}
	if (existed) {
		sm_rules_delete(sm, old.rules_id);
		if (old.attach_cgroup_id != cgid && !attach_point_used(sm, old.attach_cgroup_id))
			sm_detach_cgroup(sm, old.attach_cgroup_id);
	}
	err = 0;
	goto out;

undo_attach:
	if (did_attach)
		sm_detach_cgroup(sm, cgid);
undo_stats:
	if (!existed)
		bpf_map_delete_elem(sm->map_fd[MAP_stats_map], &c.pol.scope_idx);
undo_rules:
	sm_rules_delete(sm, c.pol.rules_id);
out:
	sm_compiled_free(&c);
	return err;
}

static bool any_scope(struct sockmesh *sm)
{
	struct sm_scope_key k;

	return bpf_map_get_next_key(sm->map_fd[MAP_scope_map], NULL, &k) == 0;
}

static int teardown(struct sockmesh *sm)
{
	char p[PATH_MAX];
	int err;

	bpf_prog_detach2(sm->prog_fd[PROG_sm_msg], sm->map_fd[MAP_splice_map], BPF_SK_MSG_VERDICT);
	bpf_prog_detach2(sm->prog_fd[PROG_sm_fp_skb], sm->map_fd[MAP_fp_map],
			 BPF_SK_SKB_STREAM_VERDICT);
	sm_handle_close_fds(sm);
	err = sm_unpin_all(sm);
	sm->destroyed = true;
	/* nothing of the instance stays, not even its lock file (we hold it) */
	sm_lock_path(sm->pin_dir, p, sizeof(p));
	if (p[0])
		unlink(p);
	if (err)
		sm_set_err(-err, "cannot remove everything from '%s'", sm->pin_dir);
	return err;
}

static int withdraw_locked(struct sockmesh *sm, const struct sockmesh_scope *scope)
{
	struct sm_scope_key key;
	struct sm_policy pol;

	if (!sm || !scope || sm->destroyed)
		return -EINVAL;
	sm_scope_key(scope, &key);
	if (bpf_map_lookup_elem(sm->map_fd[MAP_scope_map], &key, &pol)) {
		sm_set_err(0, "withdraw: '%s' is not enrolled", scope->name);
		return -ENOENT;
	}
	bpf_map_delete_elem(sm->map_fd[MAP_scope_map], &key);
	bpf_map_delete_elem(sm->map_fd[MAP_scope_meta_map], &key);
	sm_rules_delete(sm, pol.rules_id);
	bpf_map_delete_elem(sm->map_fd[MAP_stats_map], &pol.scope_idx);
	if (scope->kind == SOCKMESH_SCOPE_NETNS)
		sm_pod_teardown(sm, scope->id);
	if (!attach_point_used(sm, pol.attach_cgroup_id))
		sm_detach_cgroup(sm, pol.attach_cgroup_id);
	if (!any_scope(sm))
		return teardown(sm);
	return 0;
}

/* ---- graceful removal --------------------------------------------------- */

static int lock_current(struct sockmesh *sm, int *lock);

/* Mark scope (NULL: every scope) draining: capture and inbound steering
 * stop at once, the rest keeps running. Records the slots in idx[]. The
 * keys are collected first: replacing a hash map's element moves it in its
 * bucket, so a get_next_key walk that updates as it goes can cycle for
 * ever (two scopes in one bucket did, with --max-scopes 2).
 */
static int drain_mark_locked(struct sockmesh *sm, const struct sockmesh_scope *scope,
			     unsigned char *idx, size_t nidx, int *n)
{
	int fd = sm->map_fd[MAP_scope_map], err = 0;
	struct sm_scope_key *keys, *prev = NULL;
	struct sm_policy pol;
	size_t nk = 0;

	*n = 0;
	keys = calloc((size_t)sm->max_scopes + 1, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	if (scope) {
		sm_scope_key(scope, &keys[nk++]);
		if (bpf_map_lookup_elem(fd, &keys[0], &pol)) {
			sm_set_err(0, "drain: '%s' is not enrolled", scope->name);
			err = -ENOENT;
		}
	} else {
		while (nk <= sm->max_scopes && bpf_map_get_next_key(fd, prev, &keys[nk]) == 0)
			prev = &keys[nk++];
	}
	for (size_t i = 0; !err && i < nk; i++) {
		if (bpf_map_lookup_elem(fd, &keys[i], &pol))
			continue;
		pol.flags |= SM_POL_DRAINING;
		if (bpf_map_update_elem(fd, &keys[i], &pol, BPF_EXIST)) {
			err = -errno;
			sm_set_err(-err, "drain: cannot update the policy of a scope");
			break;
		}
		if (pol.scope_idx < nidx)
			idx[pol.scope_idx] = 1;
		(*n)++;
	}
	free(keys);
	return err;
}

/* Entries of a map whose values carry a scope slot at value offset off, in
 * the draining set. A concurrent delete may restart the walk: bounded.
 */
static __u64 drain_map_left(int fd, size_t ksz, size_t vsz, size_t off, const unsigned char *idx,
			    size_t nidx, __u32 max)
{
	unsigned char k[64], next[64], v[128];
	void *prev = NULL;
	__u64 n = 0, steps = 0;
	__u32 slot;

	if (ksz > sizeof(k) || vsz > sizeof(v))
		return 0;
	while (bpf_map_get_next_key(fd, prev, next) == 0 && steps++ < 2ull * max + 16) {
		memcpy(k, next, ksz);
		prev = k;
		if (bpf_map_lookup_elem(fd, k, v))
			continue;
		memcpy(&slot, v + off, sizeof(slot));
		if (slot < nidx && idx[slot])
			n++;
	}
	return n;
}

/* Captured connections of the draining scopes the proxy has not been
 * handed yet: connects in flight (pending_map), established but not yet
 * accepted (origdst_map), accepted but not yet asked (counters: stored
 * minus asked minus closed unasked).
 */
static __u64 drain_left(struct sockmesh *sm, const unsigned char *idx, size_t nidx)
{
	int ncpu = libbpf_num_possible_cpus();
	struct sm_stats *v;
	__u64 n;

	n = drain_map_left(sm->map_fd[MAP_pending_map], sizeof(__u64), sizeof(struct sm_pending),
			   offsetof(struct sm_pending, scope_idx), idx, nidx,
			   SM_DEFAULT_MAX_PENDING);
	n += drain_map_left(sm->map_fd[MAP_origdst_map], sizeof(struct sm_tuple),
			    sizeof(struct sm_origdst), offsetof(struct sm_origdst, scope_idx), idx,
			    nidx, SM_DEFAULT_MAX_PENDING);
	v = ncpu > 0 ? calloc((size_t)ncpu, sizeof(*v)) : NULL;
	for (__u32 i = 0; v && i < nidx; i++) {
		__u64 stored = 0, done = 0;

		if (!idx[i] || bpf_map_lookup_elem(sm->map_fd[MAP_stats_map], &i, v))
			continue;
		for (int c = 0; c < ncpu; c++) {
			stored += v[c].c[SM_STAT_ORIGDST_STORED];
			done += v[c].c[SM_STAT_ORIGDST_ASKED] + v[c].c[SM_STAT_ORIGDST_UNASKED];
		}
		if (stored > done)
			n += stored - done;
	}
	free(v);
	return n;
}

int sockmesh__drain(struct sockmesh *sm, const struct sockmesh_scope *scope, __u32 timeout_ms,
		    __u64 *left)
{
	size_t nidx;
	unsigned char *idx;
	struct timespec t0, t;
	__u64 n = 0;
	int lock, err, marked;

	if (left)
		*left = 0;
	if (!sm || sm->destroyed)
		return -EINVAL;
	nidx = (size_t)sm->max_scopes + 1;
	idx = calloc(nidx, 1);
	if (!idx)
		return -ENOMEM;
	err = lock_current(sm, &lock);
	if (err)
		goto out;
	err = drain_mark_locked(sm, scope, idx, nidx, &marked);
	sm_unlock(lock);
	if (err || !marked)
		goto out;
	/* Not under the lock: enrolling other pods goes on meanwhile. A
	 * connect program that read the policy just before the mark may still
	 * be on its way to pending_map: programs run to completion under RCU
	 * in microseconds, so the first count comes 10 ms later.
	 */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	usleep(10000);
	for (;;) {
		long ms;

		n = drain_left(sm, idx, nidx);
		if (!n)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
		ms = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= (long)timeout_ms) {
			sm_set_err(
				0,
				"drain: %llu captured connection(s) not yet taken by their proxy "
				"after %u ms",
				(unsigned long long)n, timeout_ms);
			err = -ETIMEDOUT;
			break;
		}
		usleep(10000);
	}
out:
	if (left)
		*left = n;
	free(idx);
	return err;
}

/* Is the instance this handle opened still the pinned one? Another
 * process may have unloaded it (last withdraw) and maybe loaded a new one
 * since; writing through the old maps would be lost, or worse, pin our
 * links into the new instance. Checked under the lock.
 */
static int handle_current(struct sockmesh *sm)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);
	char p[PATH_MAX];
	int fd, err = 0;

	sm_pin_path(sm, p, sizeof(p), "map_%s", sm_map_names[MAP_scope_map]);
	fd = bpf_obj_get(p);
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) || info.id != sm->scope_map_id)
		err = -ESTALE;
	if (fd >= 0)
		close(fd);
	/* an upgrade keeps the maps but replaces the programs: this handle
	 * would attach the old ones
	 */
	sm_pin_path(sm, p, sizeof(p), "prog_%s", sm_prog_names[PROG_sm_sockops]);
	fd = err ? -1 : bpf_obj_get(p);
	if (!err) {
		struct bpf_prog_info pinfo = {};
		__u32 plen = sizeof(pinfo);

		if (fd < 0 || bpf_obj_get_info_by_fd(fd, &pinfo, &plen) ||
		    pinfo.id != sm->sockops_prog_id)
			err = -ESTALE;
	}
	if (fd >= 0)
		close(fd);
	if (err)
		sm_set_err(
			0,
			"the sockmesh instance at '%s' was unloaded or upgraded since this handle opened it; open it again",
			sm->pin_dir);
	return err;
}

/* Every mutation runs under the instance lock, on the current instance. */
/* Take the instance's lock and check the handle still names the instance
 * pinned now; on success the caller runs its mutation and calls sm_unlock.
 */
static int lock_current(struct sockmesh *sm, int *lock)
{
	int err;

	*lock = sm_lock(sm->pin_dir);
	if (*lock < 0)
		return *lock;
	err = handle_current(sm);
	if (err)
		sm_unlock(*lock);
	return err;
}

int sockmesh__enroll(struct sockmesh *sm, const struct sockmesh_scope *scope,
		     const char *attach_cgroup, const struct sockmesh_policy *pol)
{
	if (!sm || !scope || sm->destroyed)
		return -EINVAL;
	int lock, err = lock_current(sm, &lock);

	if (err)
		return err;
	err = enroll_locked(sm, scope, attach_cgroup, pol);
	sm_unlock(lock);
	return err;
}

int sockmesh__withdraw(struct sockmesh *sm, const struct sockmesh_scope *scope)
{
	if (!sm || !scope || sm->destroyed)
		return -EINVAL;
	int lock, err = lock_current(sm, &lock);

	if (err)
		return err;
	err = withdraw_locked(sm, scope);
	sm_unlock(lock);
	return err;
}

static int unload_if_unused_locked(struct sockmesh *sm)
{
	int err;

	if (any_scope(sm))
		return 0;
	err = teardown(sm);
	return err ? err : 1;
}

int sockmesh_purge(const char *pin_dir)
{
	struct sockmesh tmp = { 0 };
	int lock, err;

	if (!pin_dir || pin_dir[0] != '/') {
		sm_set_err(0, "%s: '%s' must be an absolute path", sm_fname(SOCKMESH_F_PIN_DIR),
			   pin_dir ? pin_dir : "");
		return -EINVAL;
	}
	snprintf(tmp.pin_dir, sizeof(tmp.pin_dir), "%s", pin_dir);
	lock = sm_lock(pin_dir);
	if (lock < 0)
		return lock;
	err = sm_unpin_all(&tmp);
	{
		char p[PATH_MAX];

		sm_lock_path(pin_dir, p, sizeof(p));
		if (p[0])
			unlink(p);
	}
	sm_unlock(lock);
	if (err)
		sm_set_err(-err, "cannot remove everything from '%s'", pin_dir);
	return err;
}

int sockmesh__unload_if_unused(struct sockmesh *sm)
{
	if (!sm)
		return -EINVAL;
	if (sm->destroyed)
		return 1;
	int lock, err = lock_current(sm, &lock);

	if (err)
		return err;
	err = unload_if_unused_locked(sm);
	sm_unlock(lock);
	return err;
}

int sockmesh__destroy(struct sockmesh *sm)
{
	if (!sm)
		return -EINVAL;
	if (sm->destroyed)
		return 0;
	int lock, err = lock_current(sm, &lock);

	if (err)
		return err;
	err = teardown(sm);
	sm_unlock(lock);
	return err;
}
