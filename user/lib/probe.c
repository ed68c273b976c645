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
#include <sys/utsname.h>
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
	/* The fast path's stream verdict and retransmitted segments. */
	report(fn, ctx, &bad, "fast path verdict", true,
	       sm_fp_seq() ? "cuts bytes already received off retransmitted segments "
			     "(bpf_cast_to_kern_ctx)" :
			     "kernel without bpf_cast_to_kern_ctx (before 6.2): a retransmitted "
			     "segment overlapping bytes already received is delivered twice "
			     "(tcp_read_skb); switch only connections whose peer link neither "
			     "reorders nor loses segments");
	/* Known sockmap bugs: a failed check on a kernel known to have one. */
	err = sockmesh_kernel_sockmap_fixes(NULL, NULL, detail, sizeof(detail));
	report(fn, ctx, &bad, "sockmap fixes", err != SOCKMESH_KERNEL_AFFECTED,
	       err < 0 ? strerror(-err) : detail);
	/* The real test: does the verifier of this kernel take our programs? */
	skel = sockmesh_bpf__open();
	if (!skel) {
		report(fn, ctx, &bad, "load data path", false, "cannot open the BPF object");
		return bad;
	}
	/* keep the probe cheap: shrink tables */
	bpf_map__set_max_entries(skel->maps.pending_map, 16);
	sm_kernel_select(skel, NULL);
	err = sockmesh_bpf__load(skel);
	snprintf(detail, sizeof(detail), "%s%s",
		 err ? "the verifier rejected a program: rerun with -v for its log: " :
		       "all programs load",
		 err ? strerror(-err) : "");
	report(fn, ctx, &bad, "load data path", err == 0, detail);
	sockmesh_bpf__destroy(skel);
	return bad;
}

/* ---- sockmap fixes the data path depends on ------------------------------ */

/* CVE-2025-38165 ("bpf, sockmap: Fix panic when calling skb_linearize"):
 * large ingress redirects, which splicing does, can panic a kernel without
 * it. First release of each stable branch that has it; mainline has it
 * from 6.16 on. The branches between them ended without it.
 */
static const struct {
	unsigned int major, minor, patch;
} sockmap_fixed[] = {
	{ 6, 1, 142 },
	{ 6, 6, 94 },
	{ 6, 12, 34 },
	{ 6, 15, 3 },
};
#define SOCKMAP_FIXED_MAINLINE 616 /* 6.16 */

/* "6.1.192" out of uname -v's "... Debian 6.1.192-3 (...)": Debian's
 * release string ("6.1.0-28-amd64") does not carry the stable version.
 */
static const char *debian_version(const char *version)
{
	const char *p = version ? strstr(version, "Debian ") : NULL;

	return p ? p + 7 : NULL;
}

int sockmesh_kernel_sockmap_fixes(const char *release, const char *version, char *detail,
				  size_t len)
{
	unsigned int maj = 0, min = 0, patch = 0;
	const char *v = release;
	bool running = !release;
	struct utsname u;
	char dummy[8];
	int n;

	if (!detail) {
		detail = dummy;
		len = sizeof(dummy);
	}
	if (!release) {
		if (uname(&u))
			return -errno;
		release = v = u.release;
		version = u.version;
	}
	if (debian_version(version))
		v = debian_version(version);
	n = sscanf(v, "%u.%u.%u", &maj, &min, &patch);
	if (n < 2) {
		snprintf(detail, len, "cannot tell: kernel release '%s' is not MAJOR.MINOR[.PATCH]",
			 release);
		return SOCKMESH_KERNEL_UNKNOWN;
	}
	if (maj * 100 + min >= SOCKMAP_FIXED_MAINLINE) {
		snprintf(detail, len, "%u.%u has the sockmap fixes (CVE-2025-38165)", maj, min);
		return SOCKMESH_KERNEL_OK;
	}
	/* Vendor kernels backport fixes without changing their version:
	 * only the vendor can say (RHEL "5.14.0-427.el9", Ubuntu's own ABI
	 * numbers in "6.8.0-45-generic").
	 */
	if (v == release &&
	    (strstr(release, ".el") || strstr(release, "-generic") || strstr(release, "-azure") ||
	     strstr(release, "-aws") || strstr(release, "-gke") ||
	     (running && !access("/proc/version_signature", F_OK)))) {
		snprintf(detail, len,
			 "cannot tell: '%s' is a vendor kernel; ask the vendor whether it has the "
			 "fix for CVE-2025-38165 (upstream 6.1.142, 6.6.94, 6.12.34, 6.15.3)",
			 release);
		return SOCKMESH_KERNEL_UNKNOWN;
	}
	for (size_t i = 0; i < sizeof(sockmap_fixed) / sizeof(sockmap_fixed[0]); i++) {
		if (sockmap_fixed[i].major != maj || sockmap_fixed[i].minor != min)
			continue;
		if (patch >= sockmap_fixed[i].patch) {
			snprintf(detail, len, "%u.%u.%u has the sockmap fixes (CVE-2025-38165)",
				 maj, min, patch);
			return SOCKMESH_KERNEL_OK;
		}
		snprintf(detail, len,
			 "%u.%u.%u lacks the sockmap fix for CVE-2025-38165 (a panic on large "
			 "ingress redirects): upgrade to %u.%u.%u or later",
			 maj, min, patch, maj, min, sockmap_fixed[i].patch);
		return SOCKMESH_KERNEL_AFFECTED;
	}
	snprintf(detail, len,
		 "%u.%u lacks the sockmap fix for CVE-2025-38165 (a panic on large ingress "
		 "redirects; the branch ended without it): use 6.1.142, 6.6.94, 6.12.34, "
		 "6.15.3 or 6.16 and later",
		 maj, min);
	return SOCKMESH_KERNEL_AFFECTED;
}
