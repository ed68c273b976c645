// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Flow events (sockmesh__flows): bpf/flows.bpf.c's programs go into the
 * data path's flow program arrays (flow_msg_calls, flow_sockops_calls),
 * which sm_msg and sm_sockops tail-call before the tap's, and sm_flows_on
 * (the pinned .data.flows word) turns those calls on; hook.c says how they
 * come out again. Opens and closes come through the ring; the records in
 * between are read from flow_map. docs/design.md, "Flow events".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "lib.h"
#include "sockmesh.h"
#include "sockmesh_abi.h"
#include "flows.bpf.skel.h"

static const struct sm_hook_kind flow_hook = {
	.what = "flows",
	.since = "0.8",
	.busy = "flow events are already followed",
	.msg_array = "flow_msg_calls",
	.sockops_array = "flow_sockops_calls",
	.word_map = MAP_data_flows,
};

#define SM_FLOWS_INTERVAL_MAX 86400u
#define SM_FLOWS_MAX_MAX (1u << 24)

/* Names of a scope, by its stats slot. */
struct flow_scope {
	__u32 scope_idx;
	char name[300];
	char pod_namespace[64];
	char pod_name[256];
};

/* Commands by pid, direct-mapped: read at a connection's open, kept for
 * its close (the process may be gone by then).
 */
#define SM_FLOWS_COMMS 1024
struct flow_comm {
	__u32 pid;
	char comm[20];
};

struct sockmesh_flows {
	struct sockmesh *sm;
	struct sockmesh_flows_bpf *skel;
	struct sm_hook hook;
	struct ring_buffer *rb;
	sockmesh_flows_fn fn;
	void *ctx;
	__u64 interval_ns;
	__u64 next_update; /* CLOCK_MONOTONIC ns */
	__u64 records;
	int stop; /* fn's non-zero return */
	struct flow_scope *scopes;
	size_t nscopes;
	struct flow_comm comms[SM_FLOWS_COMMS];
};

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ull + (__u64)ts.tv_nsec;
}

/* Every enrolled scope's names, again (a scope the cache does not know). */
static void scopes_reload(struct sockmesh_flows *f)
{
	struct sockmesh_scope_info info = { .sz = sizeof(info) };
	const struct sockmesh_scope *prev = NULL;
	struct flow_scope *v = NULL, *nv;
	size_t n = 0;

	while (!sockmesh__next_scope(f->sm, prev, &info)) {
		prev = &info.scope;
		nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv)
			break;
		v = nv;
		v[n].scope_idx = info.scope_idx;
		snprintf(v[n].name, sizeof(v[n].name), "%s:%s",
			 info.scope.kind == SOCKMESH_SCOPE_NETNS ? "netns" : "cgroup",
			 info.scope.name);
		snprintf(v[n].pod_namespace, sizeof(v[n].pod_namespace), "%s", info.pod_namespace);
		snprintf(v[n].pod_name, sizeof(v[n].pod_name), "%s", info.pod_name);
		n++;
	}
	free(f->scopes);
	f->scopes = v;
	f->nscopes = n;
}

static const struct flow_scope *scope_find(struct sockmesh_flows *f, __u32 idx)
{
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < f->nscopes; i++)
			if (f->scopes[i].scope_idx == idx)
				return &f->scopes[i];
		if (!pass)
			scopes_reload(f);
	}
	return NULL;
}

static const char *comm_of(struct sockmesh_flows *f, __u32 pid, bool fresh)
{
	struct flow_comm *c = &f->comms[pid % SM_FLOWS_COMMS];
	char p[64];
	size_t n;
	FILE *fp;

	if (!pid)
		return NULL;
	if (c->pid == pid && !fresh)
		return c->comm;
	snprintf(p, sizeof(p), "/proc/%u/comm", pid);
	fp = fopen(p, "re");
	if (!fp)
		return c->pid == pid ? c->comm : NULL;
	n = fread(c->comm, 1, sizeof(c->comm) - 1, fp);
	fclose(fp);
	while (n && (c->comm[n - 1] == '\n' || c->comm[n - 1] == '\0'))
		n--;
	c->comm[n] = '\0';
	c->pid = pid;
	return c->comm;
}

static int deliver(struct sockmesh_flows *f, const struct sm_flow *r)
{
	const struct flow_scope *sc = scope_find(f, r->scope_idx);
	struct sockmesh_flow_names names = {
		.scope = sc ? sc->name : NULL,
		.pod_namespace = sc ? sc->pod_namespace : "",
		.pod_name = sc ? sc->pod_name : "",
		/* the first sender is known at its first send: read it then */
		.comm = r->comm[0] ? NULL : comm_of(f, r->pid, r->kind == SM_FLOW_OPEN),
	};
	char comm[sizeof(r->comm) + 1];
	int ret;

	if (r->comm[0]) {
		memcpy(comm, r->comm, sizeof(r->comm));
		comm[sizeof(r->comm)] = '\0';
		names.comm = comm;
	}
	f->records++;
	ret = f->fn(r, &names, f->ctx);
	if (ret)
		f->stop = ret;
	return ret;
}

static int on_record(void *ctx, void *data, size_t size)
{
	if (size < sizeof(struct sm_flow))
		return 0; /* the kernel wrote it; still, never read past it */
	return deliver(ctx, data);
}

/* SM_FLOW_H_*: what the running kernel lets the flow programs ask. */
__u32 sm_flow_helpers(void)
{
	__u32 h = 0;

	if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_current_pid_tgid, NULL) >
	    0)
		h |= SM_FLOW_H_SOCKOPS_PID;
	if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_SOCK_OPS, BPF_FUNC_get_current_comm, NULL) > 0)
		h |= SM_FLOW_H_SOCKOPS_COMM;
	if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_SK_MSG, BPF_FUNC_get_current_comm, NULL) > 0)
		h |= SM_FLOW_H_MSG_COMM;
	return h;
}

void sockmesh_flows__free(struct sockmesh_flows *f)
{
	if (!f)
		return;
	sm_hook_release(f->sm, &f->hook);
	ring_buffer__free(f->rb);
	sockmesh_flows_bpf__destroy(f->skel);
	free(f->scopes);
	free(f);
}

/* The data path's maps the programs use: its per-socket state, its pair
 * entries, its fast-path directions, and the tap's program arrays (a tap
 * runs after us).
 */
static int reuse(struct sockmesh_flows *f, struct sockmesh *sm)
{
	struct sm_hook tap;
	int err;

	err = sm_hook_find(sm, &tap, &sm_tap_hook);
	if (err)
		return err; /* "no tap hooks (older than 0.7)" */
	err = bpf_map__reuse_fd(f->skel->maps.sk_state_map, sm->map_fd[MAP_sk_state_map]);
	if (!err)
		err = bpf_map__reuse_fd(f->skel->maps.pair_map, sm->map_fd[MAP_pair_map]);
	if (!err)
		err = bpf_map__reuse_fd(f->skel->maps.fwd_map, sm->map_fd[MAP_fwd_map]);
	/* reuse_fd takes its own copies */
	if (!err)
		err = bpf_map__reuse_fd(f->skel->maps.tap_msg_calls, tap.msg_calls);
	if (!err)
		err = bpf_map__reuse_fd(f->skel->maps.tap_sockops_calls, tap.sockops_calls);
	sm_hook_release(sm, &tap);
	if (err)
		sm_set_err(-err, "flows: cannot reuse the data path's maps");
	return err;
}

int sockmesh__flows(struct sockmesh *sm, const struct sockmesh_flows_opts *uopts,
		    sockmesh_flows_fn fn, void *ctx, struct sockmesh_flows **out)
{
	struct sockmesh_flows_opts o = { .sz = sizeof(o) };
	struct sockmesh_flows *f;
	__u32 interval, max, scope_idx;
	__u64 ring;
	int err;

	if (!sm || !fn || !out || sm->destroyed)
		return -EINVAL;
	*out = NULL;
	err = sm_ext_opts("flows", &o, sizeof(o), uopts, uopts ? uopts->sz : 0, sm,
			  uopts ? uopts->scope : NULL, &scope_idx);
	if (!err)
		err = sm_ring_size(o.ring_size, SOCKMESH_FLOWS_RING_DEFAULT, &ring);
	if (err)
		return err;
	interval = o.interval_s ? o.interval_s : SOCKMESH_FLOWS_INTERVAL_DEFAULT;
	if (interval > SM_FLOWS_INTERVAL_MAX) {
		sm_set_err(EINVAL, "interval %u s: must be 1 to %u", interval,
			   SM_FLOWS_INTERVAL_MAX);
		return -EINVAL;
	}
	max = o.max_flows ? o.max_flows : SOCKMESH_FLOWS_MAX_DEFAULT;
	if (max > SM_FLOWS_MAX_MAX) {
		sm_set_err(EINVAL, "max flows %u: must be 1 to %u", max, SM_FLOWS_MAX_MAX);
		return -EINVAL;
	}
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->sm = sm;
	f->hook.msg_calls = f->hook.sockops_calls = -1;
	f->fn = fn;
	f->ctx = ctx;
	f->interval_ns = (__u64)interval * 1000000000ull;
	f->skel = sockmesh_flows_bpf__open();
	if (!f->skel) {
		err = -errno;
		sm_set_err(-err, "flows: cannot open their BPF object");
		goto fail;
	}
	f->skel->rodata->flow_scope_idx = scope_idx;
	/* the command as the kernel saw it: a short-lived process may be gone
	 * from /proc before its records are read
	 */
	f->skel->rodata->flow_helpers = sm_flow_helpers();
	err = bpf_map__set_max_entries(f->skel->maps.ring, (__u32)ring);
	if (!err)
		err = bpf_map__set_max_entries(f->skel->maps.flow_map, max);
	if (err) {
		sm_set_err(-err, "flows: cannot prepare their BPF object");
		goto fail;
	}
	err = reuse(f, sm);
	if (err)
		goto fail;
	{
		struct sm_hook_progs p = {
			.skel = f->skel->skeleton,
			.ring = f->skel->maps.ring,
			.sample = on_record,
			.ctx = f,
			.msg = {
				[SM_TAP_PATH_SPLICE] = f->skel->progs.flow_msg_splice,
				[SM_TAP_PATH_STACK] = f->skel->progs.flow_msg_stack,
				[SM_TAP_PATH_FAST] = f->skel->progs.flow_msg_fast,
			},
			.sockops = f->skel->progs.flow_sockops,
		};

		err = sm_hook_attach(sm, &f->hook, &flow_hook, &p, &f->rb);
		if (err)
			goto fail;
	}
	f->next_update = mono_ns() + f->interval_ns;
	*out = f;
	return 0;
fail:
	sockmesh_flows__free(f);
	return err;
}

int sockmesh_flows__fd(const struct sockmesh_flows *f)
{
	return f ? ring_buffer__epoll_fd(f->rb) : -EINVAL;
}

/* UPDATE records: every connection in flow_map, as of now. A connection
 * whose close is in the ring already (not yet consumed) may get one after
 * it: the ring was drained just before, so only one closing meanwhile.
 */
static int updates(struct sockmesh_flows *f, __u64 now)
{
	int fd = bpf_map__fd(f->skel->maps.flow_map);
	__u64 key, next, *prev = NULL;
	struct sm_flow r;
	int n = 0, ret;

	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(fd, &key, &r))
			continue; /* closed meanwhile: its close record says it all */
		r.kind = SM_FLOW_UPDATE;
		r.end_ns = now;
		ret = deliver(f, &r);
		if (ret)
			return ret;
		n++;
	}
	return n;
}

int sockmesh_flows__poll(struct sockmesh_flows *f, int timeout_ms)
{
	__u64 before, now;
	int n;

	if (!f)
		return -EINVAL;
	before = f->records;
	f->stop = 0;
	n = sm_ring_poll(f->rb, timeout_ms, &f->stop);
	if (n)
		return n;
	now = mono_ns();
	if (now >= f->next_update) {
		f->next_update = now + f->interval_ns;
		n = updates(f, now);
		if (f->stop)
			return f->stop;
		if (n < 0)
			return n;
	}
	return (int)(f->records - before);
}

int sockmesh_flows__stats(const struct sockmesh_flows *f, struct sockmesh_flows_stats *ust)
{
	struct sockmesh_flows_stats st = { .sz = sizeof(st) };
	int fd;
	__u64 key, next, *prev = NULL;

	if (!f || !ust || !sm_opts_valid(ust, sizeof(st), ust->sz))
		return -EINVAL;
	st.records = f->records;
	st.lost_records = __atomic_load_n(&f->skel->bss->lost_recs, __ATOMIC_RELAXED);
	st.lost_flows = __atomic_load_n(&f->skel->bss->lost_flows, __ATOMIC_RELAXED);
	fd = bpf_map__fd(f->skel->maps.flow_map);
	while (!bpf_map_get_next_key(fd, prev, &next)) {
		key = next;
		prev = &key;
		st.open++;
	}
	sm_opts_copy(ust, ust->sz, &st, sizeof(st));
	return 0;
}

int sockmesh__flows_running(struct sockmesh *sm, __u32 *pid)
{
	return sm_hook_running(sm, &flow_hook, pid);
}
