// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The tap (sockmesh__tap): bpf/tap.bpf.c's programs go into the data
 * path's tap program arrays (tap_msg_calls, one per path a send can take,
 * and tap_sockops_calls), which sm_msg and sm_sockops tail-call after
 * their own work, then sm_tap_on (the pinned .data.tap word) turns those
 * calls on. The arrays are never pinned: this process holds the only
 * user-space references to them, and the kernel empties a program array
 * when its last one goes. So when the process ends, however it ends, its
 * programs are out, the data path's next tail call finds nothing and
 * clears sm_tap_on. docs/design.md, "The tap".
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
#include "tap.bpf.skel.h"

#define SM_TAP_RING_MIN 4096ull
#define SM_TAP_RING_MAX (1ull << 30)

struct sockmesh_tap {
	struct sockmesh *sm;
	struct sockmesh_tap_bpf *skel;
	int msg_calls; /* the data path's program arrays (fds by id) */
	int sockops_calls;
	bool in; /* our programs are in them */
	struct ring_buffer *rb;
	sockmesh_tap_fn fn;
	void *ctx;
	__u64 records;
	int stop; /* fn's non-zero return */
};

static int on_record(void *ctx, void *data, size_t size)
{
	struct sockmesh_tap *t = ctx;
	const struct sm_tap_rec *r = data;
	int ret;

	/* the kernel wrote it; still, never read past what it handed over */
	if (size < sizeof(*r) || r->caplen > size - sizeof(*r) || r->caplen > r->len)
		return 0;
	t->records++;
	ret = t->fn(r, (const __u8 *)data + sizeof(*r), t->ctx);
	if (ret) {
		t->stop = ret;
		return ret;
	}
	return 0;
}

static int set_on(struct sockmesh *sm, __u32 on)
{
	__u32 zero = 0;

	if (bpf_map_update_elem(sm->map_fd[MAP_data_tap], &zero, &on, BPF_ANY))
		return -errno;
	return 0;
}

/* The program array a data path program uses (its one PROG_ARRAY map):
 * a new fd (a user reference) or a negative errno.
 */
static int prog_array_of(int prog_fd, __u32 *map_id)
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
		if (!bpf_obj_get_info_by_fd(fd, &mi, &mlen) && mi.type == BPF_MAP_TYPE_PROG_ARRAY) {
			if (map_id)
				*map_id = mi.id;
			return fd;
		}
		close(fd);
	}
	return -EOPNOTSUPP; /* a data path before 0.7: no tap hooks */
}

static void calls_clear(struct sockmesh_tap *t)
{
	__u32 zero = 0;

	for (__u32 k = 0; k < SM_TAP_PATHS; k++)
		bpf_map_delete_elem(t->msg_calls, &k);
	bpf_map_delete_elem(t->sockops_calls, &zero);
}

void sockmesh_tap__free(struct sockmesh_tap *t)
{
	if (!t)
		return;
	if (t->in) {
		/* out of the data path first; its next tail call clears the word too */
		calls_clear(t);
		set_on(t->sm, 0);
	}
	if (t->msg_calls >= 0)
		close(t->msg_calls);
	if (t->sockops_calls >= 0)
		close(t->sockops_calls);
	ring_buffer__free(t->rb);
	sockmesh_tap_bpf__destroy(t->skel);
	free(t);
}

/* Our programs into the arrays, unless another tap's are there. */
static int calls_fill(struct sockmesh_tap *t)
{
	int progs[SM_TAP_PATHS] = {
		[SM_TAP_PATH_SPLICE] = bpf_program__fd(t->skel->progs.tap_msg_splice),
		[SM_TAP_PATH_STACK] = bpf_program__fd(t->skel->progs.tap_msg_stack),
		[SM_TAP_PATH_FAST] = bpf_program__fd(t->skel->progs.tap_msg_fast),
	};
	__u32 zero = 0, id, pid = 0;
	int fd, err, lock;

	lock = sm_lock(t->sm->pin_dir);
	if (lock < 0)
		return lock;
	if (!bpf_map_lookup_elem(t->msg_calls, &zero, &id)) {
		sm_unlock(lock);
		sockmesh__tap_running(t->sm, &pid);
		if (pid)
			sm_set_err(
				EBUSY,
				"a tap is already running on this instance (pid %u): one at a time",
				pid);
		else
			sm_set_err(EBUSY,
				   "a tap is already running on this instance: one at a time");
		return -EBUSY;
	}
	err = 0;
	for (__u32 k = 0; k < SM_TAP_PATHS && !err; k++)
		if (bpf_map_update_elem(t->msg_calls, &k, &progs[k], BPF_ANY))
			err = -errno;
	fd = bpf_program__fd(t->skel->progs.tap_sockops);
	if (!err && bpf_map_update_elem(t->sockops_calls, &zero, &fd, BPF_ANY))
		err = -errno;
	if (!err)
		err = set_on(t->sm, 1);
	if (err) {
		calls_clear(t);
		sm_set_err(-err, "tap: cannot put its programs into the data path");
	} else {
		t->in = true;
	}
	sm_unlock(lock);
	return err;
}

int sockmesh__tap(struct sockmesh *sm, const struct sockmesh_tap_opts *uopts, sockmesh_tap_fn fn,
		  void *ctx, struct sockmesh_tap **out)
{
	struct sockmesh_tap_opts o = { .sz = sizeof(o) };
	struct sockmesh_scope_info info = { .sz = sizeof(info) };
	struct sockmesh_tap *t;
	__u64 ring;
	int err;

	if (!sm || !fn || !out || sm->destroyed)
		return -EINVAL;
	*out = NULL;
	if (uopts) {
		if (!sm_opts_valid(uopts, sizeof(o), uopts->sz)) {
			sm_set_err(EINVAL, "tap: unknown fields set in its options");
			return -EINVAL;
		}
		sm_opts_copy(&o, sizeof(o), uopts, uopts->sz);
	}
	ring = o.ring_size ? o.ring_size : SOCKMESH_TAP_RING_DEFAULT;
	if (ring < SM_TAP_RING_MIN || ring > SM_TAP_RING_MAX || (ring & (ring - 1))) {
		sm_set_err(EINVAL, "ring size %llu: must be a power of two from 4096 to 1073741824",
			   (unsigned long long)ring);
		return -EINVAL;
	}
	if (o.scope) {
		err = sockmesh__scope_info(sm, o.scope, &info);
		if (err)
			return err; /* "'<name>' is not enrolled" */
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->sm = sm;
	t->msg_calls = t->sockops_calls = -1;
	t->fn = fn;
	t->ctx = ctx;
	t->skel = sockmesh_tap_bpf__open();
	if (!t->skel) {
		err = -errno;
		sm_set_err(-err, "tap: cannot open its BPF object");
		goto fail;
	}
	t->skel->rodata->tap_scope_idx = o.scope ? info.scope_idx : SM_TAP_ANY_SCOPE;
	t->skel->rodata->tap_port = o.port;
	t->skel->rodata->tap_snaplen = o.snaplen;
	err = bpf_map__set_max_entries(t->skel->maps.ring, (__u32)ring);
	if (!err)
		err = bpf_map__reuse_fd(t->skel->maps.sk_state_map, sm->map_fd[MAP_sk_state_map]);
	if (!err)
		err = bpf_map__reuse_fd(t->skel->maps.pair_map, sm->map_fd[MAP_pair_map]);
	if (!err)
		err = bpf_map__reuse_fd(t->skel->maps.fwd_map, sm->map_fd[MAP_fwd_map]);
	if (err) {
		sm_set_err(-err, "tap: cannot prepare its BPF object");
		goto fail;
	}
	t->msg_calls = prog_array_of(sm->prog_fd[PROG_sm_msg], NULL);
	t->sockops_calls = prog_array_of(sm->prog_fd[PROG_sm_sockops], NULL);
	if (t->msg_calls < 0 || t->sockops_calls < 0) {
		err = t->msg_calls < 0 ? t->msg_calls : t->sockops_calls;
		sm_set_err(
			-err,
			"tap: the loaded data path has no tap hooks (older than 0.7: run 'sockmesh upgrade')");
		goto fail;
	}
	err = sockmesh_tap_bpf__load(t->skel);
	if (err) {
		sm_set_err(-err, "tap: cannot load its programs (run 'sockmesh doctor')");
		goto fail;
	}
	t->rb = ring_buffer__new(bpf_map__fd(t->skel->maps.ring), on_record, t, NULL);
	if (!t->rb) {
		err = -errno;
		sm_set_err(-err, "tap: cannot map its ring buffer");
		goto fail;
	}
	err = calls_fill(t);
	if (err)
		goto fail;
	*out = t;
	return 0;
fail:
	sockmesh_tap__free(t);
	return err;
}

int sockmesh_tap__fd(const struct sockmesh_tap *t)
{
	return t ? ring_buffer__epoll_fd(t->rb) : -EINVAL;
}

int sockmesh_tap__poll(struct sockmesh_tap *t, int timeout_ms)
{
	__u64 before;
	int n;

	if (!t)
		return -EINVAL;
	before = t->records;
	t->stop = 0;
	/* the programs wake us only once the ring fills up (tap.bpf.c):
	 * after the wait, take what is there anyway
	 */
	n = ring_buffer__poll(t->rb, timeout_ms);
	if (n >= 0 && !t->stop)
		n = ring_buffer__consume(t->rb);
	if (t->stop)
		return t->stop;
	if (n < 0)
		return n;
	return (int)(t->records - before);
}

int sockmesh_tap__stats(const struct sockmesh_tap *t, struct sockmesh_tap_stats *ust)
{
	struct sockmesh_tap_stats st = { .sz = sizeof(st) };

	if (!t || !ust || !sm_opts_valid(ust, sizeof(st), ust->sz))
		return -EINVAL;
	st.records = t->records;
	st.lost_records = __atomic_load_n(&t->skel->bss->lost_recs, __ATOMIC_RELAXED);
	st.lost_bytes = __atomic_load_n(&t->skel->bss->lost_bytes, __ATOMIC_RELAXED);
	sm_opts_copy(ust, ust->sz, &st, sizeof(st));
	return 0;
}

/* The process other than this one holding an fd of map id, or 0. */
static __u32 map_holder(__u32 map_id)
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

int sockmesh__tap_running(struct sockmesh *sm, __u32 *pid)
{
	__u32 zero = 0, id, map_id = 0;
	int fd, running;

	if (!sm || sm->destroyed)
		return -EINVAL;
	if (pid)
		*pid = 0;
	fd = prog_array_of(sm->prog_fd[PROG_sm_msg], &map_id);
	if (fd == -EOPNOTSUPP)
		return 0;
	if (fd < 0)
		return fd;
	running = !bpf_map_lookup_elem(fd, &zero, &id);
	close(fd);
	if (running && pid)
		*pid = map_holder(map_id);
	return running;
}
