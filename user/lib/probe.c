// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libsockmesh: what sockmesh needs from the running kernel, checked one by
 * one (`sockmesh doctor`, and any agent that wants to say why it cannot run).
 * The last check loads the real data path into the verifier, so a kernel
 * whose verifier rejects a program is caught before anything is attached.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/magic.h>
#include <limits.h>

#include <bpf/libbpf.h>

#include "lib.h"
#include "sockmesh.bpf.skel.h"

static void report(sockmesh_check_fn fn, void *ctx, int *bad, const char *name, bool ok,
		   const char *detail)
{
	struct sockmesh_check c = { .name = name, .ok = ok, .detail = detail };

	*bad += !ok;
	if (fn)
		fn(&c, ctx);
}

int sockmesh_probe_kernel(sockmesh_check_fn fn, void *ctx)
{
	static const struct {
		enum bpf_prog_type type;
		const char *name;
	} ptypes[] = {
		{ BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "prog cgroup_sock_addr (connect4/6)" },
		{ BPF_PROG_TYPE_SOCK_OPS, "prog sock_ops" },
		{ BPF_PROG_TYPE_SK_MSG, "prog sk_msg" },
		{ BPF_PROG_TYPE_CGROUP_SOCKOPT, "prog cgroup_sockopt (getsockopt)" },
		{ BPF_PROG_TYPE_SK_LOOKUP, "prog sk_lookup (inbound capture)" },
	};
	static const struct {
		enum bpf_map_type type;
		const char *name;
	} mtypes[] = {
		{ BPF_MAP_TYPE_SOCKHASH, "map sockhash" },
		{ BPF_MAP_TYPE_SK_STORAGE, "map sk_storage" },
		{ BPF_MAP_TYPE_LPM_TRIE, "map lpm_trie" },
		{ BPF_MAP_TYPE_LRU_HASH, "map lru_hash" },
		{ BPF_MAP_TYPE_PERCPU_HASH, "map percpu_hash" },
	};
	char root[PATH_MAX], detail[PATH_MAX + 128];
	struct sockmesh_bpf *skel;
	struct statfs sfs;
	int bad = 0, err;
	bool ok;

	ok = geteuid() == 0;
	report(fn, ctx, &bad, "root", ok,
	       ok ? "running as root" :
		    "run as root (needs CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)");
	ok = sm_cgroup2_root(root, sizeof(root)) == 0;
	report(fn, ctx, &bad, "cgroup2", ok,
	       ok ? root : "mount cgroup2: mount -t cgroup2 none /sys/fs/cgroup/unified");
	ok = statfs("/sys/fs/bpf", &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC;
	report(fn, ctx, &bad, "bpffs", ok,
	       ok ? "/sys/fs/bpf" :
		    "not mounted; sockmesh enable mounts it, or: mount -t bpf bpf /sys/fs/bpf");
	for (size_t i = 0; i < sizeof(ptypes) / sizeof(ptypes[0]); i++) {
		ok = libbpf_probe_bpf_prog_type(ptypes[i].type, NULL) == 1;
		report(fn, ctx, &bad, ptypes[i].name, ok,
		       ok ? "supported" :
			    "missing: kernel needs CONFIG_CGROUP_BPF / CONFIG_BPF_STREAM_PARSER / CONFIG_NET_SOCK_MSG");
	}
	for (size_t i = 0; i < sizeof(mtypes) / sizeof(mtypes[0]); i++) {
		ok = libbpf_probe_bpf_map_type(mtypes[i].type, NULL) == 1;
		report(fn, ctx, &bad, mtypes[i].name, ok,
		       ok ? "supported" : "missing: kernel too old or BPF_STREAM_PARSER off");
	}
	/* Splice accounting reads the reader's progress from one of two hooks. */
	report(fn, ctx, &bad, "read accounting", true,
	       sm_read_acct_prog() == PROG_sm_read_acct_tp ?
		       "tracepoint sock_recv_length" :
		       "fexit on sk_msg_recvmsg (kernel without the sock_recv_length tracepoint: "
		       "needs BPF trampolines)");
	/* The real test: does the verifier of this kernel take our programs? */
	skel = sockmesh_bpf__open();
	if (!skel) {
		report(fn, ctx, &bad, "load data path", false, "cannot open the BPF object");
		return bad;
	}
	/* keep the probe cheap: shrink tables */
	bpf_map__set_max_entries(skel->maps.pending_map, 16);
	sm_read_acct_select(skel);
	err = sockmesh_bpf__load(skel);
	snprintf(detail, sizeof(detail), "%s%s",
		 err ? "the verifier rejected a program: rerun with -v for its log: " :
		       "all programs load",
		 err ? strerror(-err) : "");
	report(fn, ctx, &bad, "load data path", err == 0, detail);
	sockmesh_bpf__destroy(skel);
	return bad;
}
