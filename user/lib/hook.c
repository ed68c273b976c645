// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What the tap (tap.c) and flow events (flows.c) share: a consumer's
 * programs go into a pair of the data path's program arrays (one per path
 * a send took, one for sockops), which sm_msg and sm_sockops tail-call
 * after their own work, then a pinned word turns those calls on. The
 * arrays are never pinned: the consumer's process holds the only
 * user-space references to them, and the kernel empties a program array
 * when its last one goes. So when the process ends, however it ends, its
 * programs are out, the data path's next tail call finds nothing and
 * clears the word. docs/design.md, "The tap" and "Flow events".
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "lib.h"
#include "sockmesh.h"
#include "sockmesh_abi.h"

#define SM_RING_MIN 4096ull
#define SM_RING_MAX (1ull << 30)

int sm_ring_size(__u64 asked, __u64 dflt, __u64 *out)
{
	__u64 ring = asked ? asked : dflt;

	if (ring < SM_RING_MIN || ring > SM_RING_MAX || (ring & (ring - 1))) {
		sm_set_err(EINVAL, "ring size %llu: must be a power of two from 4096 to 1073741824",
			   (unsigned long long)ring);
		return -EINVAL;
	}
	*out = ring;
	return 0;
}

/* The program array named name (its first 15 characters: the kernel's
 * name length) that a data path program uses: a new fd (a user reference)
 * or a negative errno (-EOPNOTSUPP: a data path without that hook).
 */
int sm_prog_array_of(int prog_fd, const char *name, __u32 *map_id)
{
	struct bpf_prog_info pi = {};
	__u32 len = sizeof(pi), ids[64], n;

	pi.nr_map_ids = sizeof(ids) / sizeof(ids[0]);
	pi.map_ids = (__u64)(unsigned long)ids;
	if (bpf_obj_get_info_by_fd(prog_fd, &pi, &len))
		return -errno;
	n = pi.nr_map_ids < sizeof(ids) / sizeof(ids[0]) ? pi.nr_map_ids :
							   sizeof(ids) / sizeof(ids[0]);
	for (__u32 i = 0; i < n; i++) {
		struct bpf_map_info mi = {};
		__u32 mlen = sizeof(mi);
		int fd = bpf_map_get_fd_by_id(ids[i]);

		if (fd < 0)
			continue;
		if (!bpf_obj_get_info_by_fd(fd, &mi, &mlen) && mi.type == BPF_MAP_TYPE_PROG_ARRAY &&
		    !strncmp(mi.name, name, sizeof(mi.name) - 1)) {
			if (map_id)
				*map_id = mi.id;
			return fd;
		}
		close(fd);
	}
	return -EOPNOTSUPP;
}

/* The process other than this one holding an fd of map id, or 0. */
__u32 sm_map_holder(__u32 map_id)
{
	char want[32], p[600], line[128];
	__u32 pid = 0, self = (__u32)getpid();
	struct dirent *pe, *fe;
	DIR *proc, *fds;

	snprintf(want, sizeof(want), "map_id:\t%u\n", map_id);
	proc = opendir("/proc");
	if (!proc)
		return 0;
	while (!pid && (pe = readdir(proc))) {
		if (pe->d_name[0] < '1' || pe->d_name[0] > '9' ||
		    strtoul(pe->d_name, NULL, 10) == self)
			continue;
		snprintf(p, sizeof(p), "/proc/%s/fdinfo", pe->d_name);
		fds = opendir(p);
		if (!fds)
			continue;
		while (!pid && (fe = readdir(fds))) {
			FILE *f;

			if (fe->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "/proc/%s/fdinfo/%s", pe->d_name, fe->d_name);
			f = fopen(p, "re");
			if (!f)
				continue;
			while (fgets(line, sizeof(line), f))
				if (!strcmp(line, want)) {
					pid = (__u32)strtoul(pe->d_name, NULL, 10);
					break;
				}
			fclose(f);
		}
		closedir(fds);
	}
	closedir(proc);
	return pid;
}

int sm_hook_find(struct sockmesh *sm, struct sm_hook *h, const struct sm_hook_kind *k)
{
	int err;

	h->kind = k;
	h->in = false;
	h->msg_calls = sm_prog_array_of(sm->prog_fd[PROG_sm_msg], k->msg_array, NULL);
	h->sockops_calls = sm_prog_array_of(sm->prog_fd[PROG_sm_sockops], k->sockops_array, NULL);
	if (h->msg_calls >= 0 && h->sockops_calls >= 0)
		return 0;
	err = h->msg_calls < 0 ? h->msg_calls : h->sockops_calls;
	sm_set_err(
		-err,
		"%s: the loaded data path has no %s hooks (older than %s: run 'sockmesh upgrade')",
		k->what, k->what, k->since);
	return err;
}

static int set_on(struct sockmesh *sm, const struct sm_hook_kind *k, __u32 on)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(sm->map_fd[k->word_map], &zero, &on, BPF_ANY))
		return -errno;
	return 0;
}

static void calls_clear(struct sm_hook *h)
{
	__u32 zero = 0;

	for (__u32 k = 0; k < SM_TAP_PATHS; k++)
		bpf_map_delete_elem(h->msg_calls, &k);
	bpf_map_delete_elem(h->sockops_calls, &zero);
}

int sm_hook_fill(struct sockmesh *sm, struct sm_hook *h, const int msg_progs[SM_TAP_PATHS],
		 int sockops_prog)
{
	const struct sm_hook_kind *k = h->kind;
	__u32 zero = 0, id, pid = 0;
	int err, lock;

	lock = sm_lock(sm->pin_dir);
	if (lock < 0)
		return lock;
	if (!bpf_map_lookup_elem(h->sockops_calls, &zero, &id)) {
		sm_unlock(lock);
		sm_hook_running(sm, k, &pid);
		if (pid)
			sm_set_err(EBUSY, "%s on this instance (pid %u): one at a time", k->busy,
				   pid);
		else
			sm_set_err(EBUSY, "%s on this instance: one at a time", k->busy);
		return -EBUSY;
	}
	err = 0;
	for (__u32 i = 0; i < SM_TAP_PATHS && !err; i++)
		if (bpf_map_update_elem(h->msg_calls, &i, &msg_progs[i], BPF_ANY))
			err = -errno;
	if (!err && bpf_map_update_elem(h->sockops_calls, &zero, &sockops_prog, BPF_ANY))
		err = -errno;
	if (!err)
		err = set_on(sm, k, 1);
	if (err) {
		calls_clear(h);
		sm_set_err(-err, "%s: cannot put the programs into the data path", k->what);
	} else {
		h->in = true;
	}
	sm_unlock(lock);
	return err;
}

void sm_hook_release(struct sockmesh *sm, struct sm_hook *h)
{
	if (h->in) {
		/* out of the data path first; its next tail call clears the word too */
		calls_clear(h);
		set_on(sm, h->kind, 0);
		h->in = false;
	}
	if (h->msg_calls >= 0)
		close(h->msg_calls);
	if (h->sockops_calls >= 0)
		close(h->sockops_calls);
	h->msg_calls = h->sockops_calls = -1;
}

int sm_hook_running(struct sockmesh *sm, const struct sm_hook_kind *k, __u32 *pid)
{
	__u32 zero = 0, id, map_id = 0;
	int fd, running;

	if (!sm || sm->destroyed)
		return -EINVAL;
	if (pid)
		*pid = 0;
	fd = sm_prog_array_of(sm->prog_fd[PROG_sm_sockops], k->sockops_array, &map_id);
	if (fd == -EOPNOTSUPP)
		return 0;
	if (fd < 0)
		return fd;
	running = !bpf_map_lookup_elem(fd, &zero, &id);
	close(fd);
	if (running && pid)
		*pid = sm_map_holder(map_id);
	return running;
}

int sm_hook_attach(struct sockmesh *sm, struct sm_hook *h, const struct sm_hook_kind *k,
		   const struct sm_hook_progs *p, struct ring_buffer **rb)
{
	int msg[SM_TAP_PATHS], err;

	err = sm_hook_find(sm, h, k);
	if (err)
		return err;
	err = bpf_object__load_skeleton(p->skel);
	if (err) {
		sm_set_err(-err, "%s: cannot load the programs (run 'sockmesh doctor')", k->what);
		return err;
	}
	*rb = ring_buffer__new(bpf_map__fd(p->ring), p->sample, p->ctx, NULL);
	if (!*rb) {
		err = -errno;
		sm_set_err(-err, "%s: cannot map the ring buffer", k->what);
		return err;
	}
	for (int i = 0; i < SM_TAP_PATHS; i++)
		msg[i] = bpf_program__fd(p->msg[i]);
	return sm_hook_fill(sm, h, msg, bpf_program__fd(p->sockops));
}

int sm_ring_poll(struct ring_buffer *rb, int timeout_ms, const int *stop)
{
	int n;

	/* the programs wake us only once the ring fills up: after the
	 * wait, take what is there anyway
	 */
	n = ring_buffer__poll(rb, timeout_ms);
	if (n >= 0 && !*stop)
		n = ring_buffer__consume(rb);
	if (*stop)
		return *stop;
	return n < 0 ? n : 0;
}

int sm_ext_opts(const char *what, void *o, size_t sz, const void *uopts, size_t usz,
		struct sockmesh *sm, const struct sockmesh_scope *scope, __u32 *scope_idx)
{
	struct sockmesh_scope_info info = { .sz = sizeof(info) };
	int err;

	if (uopts) {
		if (!sm_opts_valid(uopts, sz, usz)) {
			sm_set_err(EINVAL, "%s: unknown fields set in its options", what);
			return -EINVAL;
		}
		sm_opts_copy(o, sz, uopts, usz);
	}
	*scope_idx = SM_TAP_ANY_SCOPE;
	if (!scope)
		return 0;
	err = sockmesh__scope_info(sm, scope, &info);
	if (err)
		return err; /* "'<name>' is not enrolled" */
	*scope_idx = info.scope_idx;
	return 0;
}
