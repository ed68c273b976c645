// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The tap (sockmesh__tap): bpf/tap.bpf.c's programs go into the data
 * path's tap program arrays (tap_msg_calls, one per path a send can take,
 * and tap_sockops_calls), and sm_tap_on (the pinned .data.tap word) turns
 * the data path's calls on; hook.c says how they come out again. Its
 * cgroup_skb programs (connections followed by their segments) go onto the
 * instance's attach cgroups with links only this process holds.
 * docs/design.md, "The tap".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>

#include "lib.h"
#include "sockmesh.h"
#include "sockmesh_abi.h"
#include "tap.bpf.skel.h"

const struct sm_hook_kind sm_tap_hook = {
	.what = "tap",
	.since = "0.7",
	.busy = "a tap is already running",
	.msg_array = "tap_msg_calls",
	.sockops_array = "tap_sockops_calls",
	.word_map = MAP_data_tap,
};

struct sockmesh_tap {
	struct sockmesh *sm;
	struct sockmesh_tap_bpf *skel;
	struct sm_hook hook;
	struct ring_buffer *rb;
	sockmesh_tap_fn fn;
	void *ctx;
	__u64 records;
	int stop; /* fn's non-zero return */
	__u32 scope_idx; /* SM_TAP_ANY_SCOPE: all */
	/* the segment programs' links, per attach cgroup (only ours: they
	 * go when this process does)
	 */
	struct tap_cg {
		__u64 id;
		int link[2];
	} * cgs;
	size_t ncgs;
	__u64 scanned_ns; /* when the attach cgroups were last looked for */
};

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + (__u64)ts.tv_nsec;
}

/* The segment programs (captured connections that never enter the splice,
 * a fast-path sidecar's upstream socket) on one attach cgroup.
 */
static int tap_attach_cg(struct sockmesh_tap *t, __u64 id)
{
	const struct bpf_program *p[2] = { t->skel->progs.tap_skb_out, t->skel->progs.tap_skb_in };
	const enum bpf_attach_type type[2] = { BPF_CGROUP_INET_EGRESS, BPF_CGROUP_INET_INGRESS };
	struct tap_cg *cgs, *c;
	int cg, err = 0;

	cg = sm_cgroup_open_id(id);
	if (cg < 0) {
		sm_set_err(-cg, "tap: cannot open the attach cgroup (id %llu)",
			   (unsigned long long)id);
		return cg;
	}
	cgs = realloc(t->cgs, (t->ncgs + 1) * sizeof(*cgs));
	if (!cgs) {
		close(cg);
		return -ENOMEM;
	}
	t->cgs = cgs;
	c = &cgs[t->ncgs];
	c->id = id;
	for (int i = 0; i < 2; i++) {
		c->link[i] = bpf_link_create(bpf_program__fd(p[i]), cg, type[i], NULL);
		if (c->link[i] < 0) {
			err = -errno;
			sm_set_err(-err, "tap: cannot attach %s to the attach cgroup (id %llu)",
				   bpf_program__name(p[i]), (unsigned long long)id);
			if (i)
				close(c->link[0]);
			break;
		}
	}
	close(cg);
	if (!err)
		t->ncgs++;
	return err;
}

/* Every attach cgroup of the scopes the tap looks at, once: at the start
 * (an error then is the caller's), and every second after (a scope
 * enrolled meanwhile at a new attach cgroup; an error then is skipped and
 * tried again).
 */
static int tap_attach_cgroups(struct sockmesh_tap *t)
{
	struct sm_scope_key key, next, *prev = NULL;
	struct sm_policy pol;
	int err;

	t->scanned_ns = mono_ns();
	while (!bpf_map_get_next_key(t->sm->map_fd[MAP_scope_map], prev, &next)) {
		bool have = false;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(t->sm->map_fd[MAP_scope_map], &key, &pol))
			continue;
		if (t->scope_idx != SM_TAP_ANY_SCOPE && pol.scope_idx != t->scope_idx)
			continue;
		for (size_t i = 0; i < t->ncgs && !have; i++)
			have = t->cgs[i].id == pol.attach_cgroup_id;
		if (have || !pol.attach_cgroup_id)
			continue;
		err = tap_attach_cg(t, pol.attach_cgroup_id);
		if (err)
			return err;
	}
	return 0;
}

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

void sockmesh_tap__free(struct sockmesh_tap *t)
{
	if (!t)
		return;
	sm_hook_release(t->sm, &t->hook);
	for (size_t i = 0; i < t->ncgs; i++) {
		close(t->cgs[i].link[0]);
		close(t->cgs[i].link[1]);
	}
	free(t->cgs);
	ring_buffer__free(t->rb);
	sockmesh_tap_bpf__destroy(t->skel);
	free(t);
}

int sockmesh__tap(struct sockmesh *sm, const struct sockmesh_tap_opts *uopts, sockmesh_tap_fn fn,
		  void *ctx, struct sockmesh_tap **out)
{
	struct sockmesh_tap_opts o = { .sz = sizeof(o) };
	struct sockmesh_tap *t;
	__u32 scope_idx;
	__u64 ring;
	int err;

	if (!sm || !fn || !out || sm->destroyed)
		return -EINVAL;
	*out = NULL;
	err = sm_ext_opts("tap", &o, sizeof(o), uopts, uopts ? uopts->sz : 0, sm,
			  uopts ? uopts->scope : NULL, &scope_idx);
	if (!err)
		err = sm_ring_size(o.ring_size, SOCKMESH_TAP_RING_DEFAULT, &ring);
	if (err)
		return err;
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->sm = sm;
	t->hook.msg_calls = t->hook.sockops_calls = -1;
	t->fn = fn;
	t->ctx = ctx;
	t->scope_idx = scope_idx;
	t->skel = sockmesh_tap_bpf__open();
	if (!t->skel) {
		err = -errno;
		sm_set_err(-err, "tap: cannot open its BPF object");
		goto fail;
	}
	t->skel->rodata->tap_scope_idx = scope_idx;
	t->skel->rodata->tap_port = o.port;
	t->skel->rodata->tap_snaplen = o.snaplen;
	t->skel->rodata->tap_helpers = sm_flow_helpers();
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
	{
		struct sm_hook_progs p = {
			.skel = t->skel->skeleton,
			.ring = t->skel->maps.ring,
			.sample = on_record,
			.ctx = t,
			.msg = {
				[SM_TAP_PATH_SPLICE] = t->skel->progs.tap_msg_splice,
				[SM_TAP_PATH_STACK] = t->skel->progs.tap_msg_stack,
				[SM_TAP_PATH_FAST] = t->skel->progs.tap_msg_fast,
			},
			.sockops = t->skel->progs.tap_sockops,
		};

		err = sm_hook_attach(sm, &t->hook, &sm_tap_hook, &p, &t->rb);
		if (err)
			goto fail;
	}
	err = tap_attach_cgroups(t);
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
	if (mono_ns() - t->scanned_ns >= 1000000000ULL)
		tap_attach_cgroups(t); /* tried again in a second */
	n = sm_ring_poll(t->rb, timeout_ms, &t->stop);
	return n ? n : (int)(t->records - before);
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

int sockmesh__tap_running(struct sockmesh *sm, __u32 *pid)
{
	return sm_hook_running(sm, &sm_tap_hook, pid);
}
