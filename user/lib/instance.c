// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libsockmesh: an instance: open, load and pin, lock.
 *
 * Layout of an instance's pin directory:
 *   map_<name>                 every map of the BPF object
 *   prog_<name>                every program (so later processes can attach
 *                              more cgroups without loading a second copy)
 *   link_<cgroup id>_<hook>    one bpf_link per hook and attach cgroup
 *   link_netns_<cookie>        the sk_lookup link of an enrolled pod
 *   link_global_read_acct      the read accounting (sock_recv_length tracepoint or fexit)
 * The sk_msg program is attached to map_splice_map and the stream verdict
 * to map_fp_map (bpf_prog_attach; libbpf 1.1 has no sockmap bpf_link); each
 * lives as long as its map.
  */
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
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include "lib.h"
#include "sockmesh.bpf.skel.h"

/* clang-format off */
#define SM_NAME_(n) [MAP_##n] = #n,
const char *const sm_map_names[MAP_COUNT] = { SM_BPF_MAPS(SM_NAME_) };
#undef SM_NAME_
#define SM_NAME_(n) [PROG_##n] = #n,
const char *const sm_prog_names[PROG_COUNT] = { SM_BPF_PROGS(SM_NAME_) };
#undef SM_NAME_
/* clang-format on */

const struct sm_cgroup_hook sm_cgroup_hooks[] = {
	{ PROG_sm_connect4, BPF_CGROUP_INET4_CONNECT, "connect4" },
	{ PROG_sm_connect6, BPF_CGROUP_INET6_CONNECT, "connect6" },
	{ PROG_sm_sockops, BPF_CGROUP_SOCK_OPS, "sockops" },
	{ PROG_sm_getsockopt, BPF_CGROUP_GETSOCKOPT, "getsockopt" },
	{ PROG_sm_sendmsg4, BPF_CGROUP_UDP4_SENDMSG, "sendmsg4" },
	{ PROG_sm_sendmsg6, BPF_CGROUP_UDP6_SENDMSG, "sendmsg6" },
	{ PROG_sm_recvmsg4, BPF_CGROUP_UDP4_RECVMSG, "recvmsg4" },
	{ PROG_sm_recvmsg6, BPF_CGROUP_UDP6_RECVMSG, "recvmsg6" },
	{ PROG_sm_getpeername4, BPF_CGROUP_INET4_GETPEERNAME, "getpeername4" },
	{ PROG_sm_getpeername6, BPF_CGROUP_INET6_GETPEERNAME, "getpeername6" },
	{ PROG_sm_fin_hold, BPF_CGROUP_INET_INGRESS, "ingress" },
};
const size_t sm_n_cgroup_hooks = sizeof(sm_cgroup_hooks) / sizeof(sm_cgroup_hooks[0]);

int sm_pin_path(const struct sockmesh *sm, char *buf, size_t len, const char *fmt, ...)
{
	char name[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(name, sizeof(name), fmt, ap);
	va_end(ap);
	n = snprintf(buf, len, "%s/%s", sm->pin_dir, name);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* ---- open / create ------------------------------------------------------- */

bool sockmesh__exists(const char *pin_dir)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/map_scope_map", pin_dir ? pin_dir : SOCKMESH_DEFAULT_PIN_DIR);
	return access(p, F_OK) == 0;
}

/* Is an instance pinned at pin_dir: 1 yes, 0 no, or -errno when we cannot
 * tell (bpffs is mode 0700: not root), which must not read as "no".
 */
static int pinned(const char *pin_dir)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/map_scope_map", pin_dir);
	if (access(p, F_OK) == 0)
		return 1;
	if (errno == ENOENT || errno == ENOTDIR)
		return 0;
	return -errno;
}

/* The read accounting hook this kernel has: the sock_recv_length
 * tracepoint (6.4+) or fexit on sk_msg_recvmsg (BPF trampolines). The
 * tracepoint is preferred: it needs no trampoline (some kernels, like this
 * project's CI machine's, refuse fentry/fexit programs).
 */
enum sm_prog_id sm_read_acct_prog(void)
{
	static int tp = -1;

	if (tp < 0) {
		/* what libbpf_find_vmlinux_btf_id(BPF_TRACE_RAW_TP) looks for,
		 * without its warning on kernels that lack it (6.1)
		 */
		struct btf *vm = btf__load_vmlinux_btf();

		tp = vm &&
		     btf__find_by_name_kind(vm, "btf_trace_sock_recv_length", BTF_KIND_TYPEDEF) > 0;
		btf__free(vm);
	}
	return tp ? PROG_sm_read_acct_tp : PROG_sm_read_acct_fexit;
}

/* Can the fast path's stream verdict read an skb's TCP sequence (the
 * bpf_cast_to_kern_ctx kfunc, 6.2+)? Then sm_fp_skb cuts the bytes TCP
 * already had off a retransmitted skb, which the kernel's verdict path
 * would deliver twice; without it sm_fp_skb_noseq takes its place (its id
 * and its pin: PROG_sm_fp_skb is whichever was loaded).
 */
bool sm_fp_seq(void)
{
	static int has = -1;

	if (has < 0) {
		struct btf *vm = btf__load_vmlinux_btf();

		has = vm && btf__find_by_name_kind(vm, "bpf_cast_to_kern_ctx", BTF_KIND_FUNC) > 0;
		btf__free(vm);
	}
	return has;
}

/* Programs that are not pinned: the read accounting (held by its link)
 * and the stream verdict's variant PROG_sm_fp_skb stands for.
 */
bool sm_prog_unpinned(int i)
{
	return i == PROG_sm_read_acct_tp || i == PROG_sm_read_acct_fexit ||
	       i == PROG_sm_fp_skb_noseq;
}

void sm_kernel_select(struct sockmesh_bpf *skel, struct bpf_program **progs)
{
	enum sm_prog_id use = sm_read_acct_prog();
	bool seq = sm_fp_seq();

	bpf_program__set_autoload(skel->progs.sm_read_acct_tp, use == PROG_sm_read_acct_tp);
	bpf_program__set_autoload(skel->progs.sm_read_acct_fexit, use == PROG_sm_read_acct_fexit);
	bpf_program__set_autoload(skel->progs.sm_fp_skb, seq);
	bpf_program__set_autoload(skel->progs.sm_fp_skb_noseq, !seq);
	if (progs)
		progs[PROG_sm_fp_skb] = seq ? skel->progs.sm_fp_skb : skel->progs.sm_fp_skb_noseq;
}

struct sockmesh_bpf *sm_skel_open(struct bpf_map **maps, struct bpf_program **progs)
{
	struct sockmesh_bpf *skel = sockmesh_bpf__open();

	if (!skel) {
		int err = errno;

		sm_set_err(err, "cannot open the BPF object");
		errno = err;
		return NULL;
	}
#define SM_SKEL_(n) maps[MAP_##n] = skel->maps.n;
	if (maps) {
		SM_BPF_MAPS(SM_SKEL_)
	}
#undef SM_SKEL_
#define SM_SKEL_(n) progs[PROG_##n] = skel->progs.n;
	if (progs) {
		SM_BPF_PROGS(SM_SKEL_)
	}
#undef SM_SKEL_
	return skel;
}

static void handle_init(struct sockmesh *sm)
{
	for (int i = 0; i < MAP_COUNT; i++)
		sm->map_fd[i] = -1;
	for (int i = 0; i < PROG_COUNT; i++)
		sm->prog_fd[i] = -1;
	sm->acct_link_fd = -1;
}

void sm_handle_close_fds(struct sockmesh *sm)
{
	for (int i = 0; i < MAP_COUNT; i++)
		if (sm->map_fd[i] >= 0)
			close(sm->map_fd[i]);
	for (int i = 0; i < PROG_COUNT; i++)
		if (sm->prog_fd[i] >= 0)
			close(sm->prog_fd[i]);
	if (sm->acct_link_fd >= 0)
		close(sm->acct_link_fd);
	handle_init(sm);
}

static int open_pinned(struct sockmesh *sm)
{
	for (int i = 0; i < MAP_COUNT; i++)
		if (!sm_map_names[i])
			return -EFAULT; /* a map id without a name: programming error */
	for (int i = 0; i < PROG_COUNT; i++)
		if (!sm_prog_names[i])
			return -EFAULT;
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);
	char p[PATH_MAX];
	int err;

	for (int i = 0; i < MAP_COUNT; i++) {
		sm_pin_path(sm, p, sizeof(p), "map_%s", sm_map_names[i]);
		sm->map_fd[i] = bpf_obj_get(p);
		if (sm->map_fd[i] < 0) {
			err = -errno;
			sm_set_err(-err, "pin dir %s: cannot open %s", sm->pin_dir, p);
			return err;
		}
	}
	for (int i = 0; i < PROG_COUNT; i++) {
		if (sm_prog_unpinned(i))
			continue;
		sm_pin_path(sm, p, sizeof(p), "prog_%s", sm_prog_names[i]);
		sm->prog_fd[i] = bpf_obj_get(p);
		if (sm->prog_fd[i] < 0) {
			err = -errno;
			sm_set_err(-err, "pin dir %s: cannot open %s", sm->pin_dir, p);
			return err;
		}
	}
	sm->max_scopes = SM_DEFAULT_MAX_SCOPES;
	if (bpf_obj_get_info_by_fd(sm->map_fd[MAP_scope_map], &info, &ilen) == 0) {
		sm->max_scopes = info.max_entries;
		sm->scope_map_id = info.id;
	}
	/* Usable scopes: as many as scope_map holds and stats_map has slots
	 * for besides the global one (an instance loaded by an older build
	 * sized both alike, and so has one scope less).
	 */
	memset(&info, 0, sizeof(info));
	ilen = sizeof(info);
	if (bpf_obj_get_info_by_fd(sm->map_fd[MAP_stats_map], &info, &ilen) == 0 &&
	    info.max_entries && info.max_entries - 1 < sm->max_scopes)
		sm->max_scopes = info.max_entries - 1;
	{
		struct bpf_prog_info pinfo = {};
		__u32 plen = sizeof(pinfo);

		if (bpf_obj_get_info_by_fd(sm->prog_fd[PROG_sm_sockops], &pinfo, &plen) == 0)
			sm->sockops_prog_id = pinfo.id;
	}
	/* another build's maps are read at their own sizes by nobody here */
	return sm_layout_check(sm);
}

int sm_unpin_all(struct sockmesh *sm)
{
	DIR *d = opendir(sm->pin_dir);
	struct dirent *e;
	char p[PATH_MAX];
	int err = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	/* Links first: unpinning a link detaches its program. */
	for (int pass = 0; pass < 2; pass++) {
		rewinddir(d);
		while ((e = readdir(d))) {
			bool link = strncmp(e->d_name, "link_", 5) == 0;

			if (e->d_name[0] == '.' || link != (pass == 0))
				continue;
			sm_pin_path(sm, p, sizeof(p), "%s", e->d_name);
			if (unlink(p) && errno != ENOENT)
				err = -errno;
		}
	}
	closedir(d);
	if (rmdir(sm->pin_dir) && errno != ENOENT)
		err = err ? err : -errno;
	return err;
}

static int ensure_bpffs(const char *pin_dir)
{
	char parent[PATH_MAX], *slash;
	struct statfs sfs;

	snprintf(parent, sizeof(parent), "%s", pin_dir);
	slash = strrchr(parent, '/');
	if (!slash || slash == parent) {
		sm_set_err(0, "%s: '%s' must be a directory inside a bpffs mount",
			   sm_fname(SOCKMESH_F_PIN_DIR), pin_dir);
		return -EINVAL;
	}
	*slash = '\0';
	if (statfs(parent, &sfs)) {
		sm_set_err(errno, "%s: cannot access '%s'", sm_fname(SOCKMESH_F_PIN_DIR), parent);
		return -EINVAL;
	}
	if (sfs.f_type == BPF_FS_MAGIC)
		return 0;
	/* /sys/fs/bpf exists on every systemd-less box but may be unmounted. */
	if (strcmp(parent, "/sys/fs/bpf") == 0 && mount("bpf", parent, "bpf", 0, "mode=0700") == 0)
		return 0;
	sm_set_err(0, "%s: '%s' is not on a bpffs mount", sm_fname(SOCKMESH_F_PIN_DIR), parent);
	return -EINVAL;
}

static void set_size(struct bpf_map *m, __u32 v)
{
	if (v)
		bpf_map__set_max_entries(m, v);
}

static int create_pinned(struct sockmesh *sm, const struct sockmesh_open_opts *o)
{
	struct sockmesh_bpf *skel;
	struct bpf_map *maps[MAP_COUNT];
	struct bpf_program *progs[PROG_COUNT];
	struct sm_stats *zero = NULL;
	struct bpf_link *rlink = NULL;
	char p[PATH_MAX];
	__u32 idx = SM_SCOPE_IDX_GLOBAL;
	int err, ncpu;

	err = ensure_bpffs(sm->pin_dir);
	if (err)
		return err;
	skel = sm_skel_open(maps, progs);
	if (!skel)
		return -errno;

	/* max_scopes enrolled scopes, and the global counters' slot besides */
	bpf_map__set_max_entries(maps[MAP_stats_map],
				 (o && o->max_scopes ? o->max_scopes : SM_DEFAULT_MAX_SCOPES) + 1);
	if (o) {
		set_size(maps[MAP_scope_map], o->max_scopes);
		set_size(maps[MAP_scope_meta_map], o->max_scopes);
		set_size(maps[MAP_listener_map],
			 o->max_scopes ? SM_LISTENERS_PER_SCOPE * o->max_scopes : 0);
		set_size(maps[MAP_pod_addr_map],
			 o->max_scopes ? SM_POD_ADDRS_PER_SCOPE * o->max_scopes : 0);
		set_size(maps[MAP_steered_map], o->max_pending);
		set_size(maps[MAP_listen_map], o->max_pending);
		set_size(maps[MAP_origdst_map], o->max_pending);
		set_size(maps[MAP_pair_map], o->max_conns);
		set_size(maps[MAP_fwd_map], o->max_conns ? 2 * o->max_conns : 0);
		set_size(maps[MAP_relay_map], o->max_conns ? 2 * o->max_conns : 0);
		set_size(maps[MAP_fp_map],
			 o->max_splice_socks ?
				 o->max_splice_socks :
				 (o->max_conns ? SM_SOCKS_PER_CONN * o->max_conns : 0));
		if (o->splice_budget)
			skel->rodata->splice_budget = o->splice_budget;
		set_size(maps[MAP_splice_map],
			 o->max_splice_socks ?
				 o->max_splice_socks :
				 (o->max_conns ? SM_SOCKS_PER_CONN * o->max_conns : 0));
		set_size(maps[MAP_cidr_map], o->max_rules);
		set_size(maps[MAP_port_map], o->max_rules);
		set_size(maps[MAP_pending_map], o->max_pending);
	}
	sm_kernel_select(skel, progs);
	err = sockmesh_bpf__load(skel);
	if (err) {
		sm_set_err(-err, "cannot load the BPF programs (run 'sockmesh doctor')");
		goto out;
	}
	if (mkdir(sm->pin_dir, 0700) && errno != EEXIST) {
		err = -errno;
		sm_set_err(-err, "%s: cannot create '%s'", sm_fname(SOCKMESH_F_PIN_DIR),
			   sm->pin_dir);
		goto out;
	}
	for (int i = 0; i < MAP_COUNT; i++) {
		sm_pin_path(sm, p, sizeof(p), "map_%s", sm_map_names[i]);
		if (bpf_obj_pin(bpf_map__fd(maps[i]), p)) {
			err = -errno;
			sm_set_err(-err, "cannot pin %s", p);
			goto out_unpin;
		}
	}
	for (int i = 0; i < PROG_COUNT; i++) {
		if (sm_prog_unpinned(i))
			continue;
		sm_pin_path(sm, p, sizeof(p), "prog_%s", sm_prog_names[i]);
		if (bpf_obj_pin(bpf_program__fd(progs[i]), p)) {
			err = -errno;
			sm_set_err(-err, "cannot pin %s", p);
			goto out_unpin;
		}
	}
	if (bpf_prog_attach(bpf_program__fd(progs[PROG_sm_msg]), bpf_map__fd(maps[MAP_splice_map]),
			    BPF_SK_MSG_VERDICT, 0)) {
		err = -errno;
		sm_set_err(-err, "cannot attach sk_msg to the splice map");
		goto out_unpin;
	}
	if (bpf_prog_attach(bpf_program__fd(progs[PROG_sm_fp_skb]), bpf_map__fd(maps[MAP_fp_map]),
			    BPF_SK_SKB_STREAM_VERDICT, 0)) {
		err = -errno;
		sm_set_err(-err, "cannot attach the stream verdict to the fast-path map");
		goto out_unpin;
	}
	/* Read accounting: global, its link pinned so it lives as long as
	 * the instance (its program is not pinned on its own).
	 */
	rlink = bpf_program__attach(progs[sm_read_acct_prog()]);
	if (!rlink) {
		err = -errno;
		sm_set_err(-err, "cannot attach %s (needs kernel BTF; run 'sockmesh doctor')",
			   sm_prog_names[sm_read_acct_prog()]);
		goto out_unpin;
	}
	sm_pin_path(sm, p, sizeof(p), "%s", SM_READ_ACCT_LINK);
	if (bpf_link__pin(rlink, p)) {
		err = -errno;
		sm_set_err(-err, "cannot pin %s", p);
		goto out_unpin;
	}
	{
		struct sm_config cfg = { .splice_budget = skel->rodata->splice_budget,
					 .build_id = sm_build_id(),
					 .layout = SM_LAYOUT_VERSION };
		__u32 zero = 0;

		if (bpf_map_update_elem(bpf_map__fd(maps[MAP_config_map]), &zero, &cfg, BPF_ANY)) {
			err = -errno;
			sm_set_err(-err, "cannot write the instance's settings");
			goto out_unpin;
		}
	}
	ncpu = libbpf_num_possible_cpus();
	zero = ncpu > 0 ? calloc((size_t)ncpu, sizeof(*zero)) : NULL;
	if (!zero || bpf_map_update_elem(bpf_map__fd(maps[MAP_stats_map]), &idx, zero, BPF_ANY)) {
		err = zero ? -errno : -ENOMEM;
		sm_set_err(-err, "cannot create the global stats slot");
		goto out_unpin;
	}
	err = open_pinned(sm);
	if (err)
		goto out_unpin;
	goto out;
out_unpin:
	sm_handle_close_fds(sm);
	sm_unpin_all(sm);
out:
	bpf_link__destroy(rlink); /* the pin keeps it attached */
	free(zero);
	sockmesh_bpf__destroy(skel);
	return err;
}

/* Serialise writers of one instance: flock on the pin dir's parent (bpffs
 * has no regular files to lock). Held only for one mutating call, so a
 * long-lived handle (a sidecar, the daemon) never blocks anyone.
 */
/* One lock file per instance in /run/lock (tmpfs), named after the pin dir,
 * so instances never wait for each other. "" if it does not fit.
 */
void sm_lock_path(const char *pin_dir, char *path, size_t len)
{
	int n = snprintf(path, len, "/run/lock/sockmesh%s.lock", pin_dir);

	if (n < 0 || (size_t)n >= len) {
		path[0] = '\0';
		return;
	}
	for (char *c = path + strlen("/run/lock/sockmesh"); *c; c++)
		if (*c == '/')
			*c = '_';
}

int sm_lock(const char *pin_dir)
{
	char path[PATH_MAX];
	struct stat a, b;

	sm_lock_path(pin_dir, path, sizeof(path));
	/* The last one out unlinks the file (see teardown) while holding it: a
	 * waiter that then gets the old inode retries with the new file.
	 */
	for (int tries = 0; path[0] && tries < 100; tries++) {
		int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

		if (fd < 0)
			break;
		if (flock(fd, LOCK_EX)) {
			int err = -errno;

			close(fd);
			return err;
		}
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev)
			return fd;
		close(fd);
	}
	/* No /run/lock: lock the pin dir's parent directory instead. */
	{
		char *slash;
		int fd;

		snprintf(path, sizeof(path), "%s", pin_dir);
		slash = strrchr(path, '/');
		if (slash && slash != path)
			*slash = '\0';
		fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX)) {
			int err = -errno;

			close(fd);
			return err;
		}
		return fd;
	}
}

void sm_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

struct sockmesh *sockmesh__open(const struct sockmesh_open_opts *user_opts)
{
	struct sockmesh_open_opts copy, *opts = NULL;
	struct sockmesh *sm;
	const char *dir;
	int err, lock = -1;

	if (user_opts) {
		if (!sm_opts_valid(
			    user_opts,
			    offsetofend(struct sockmesh_open_opts, sockmesh_open_opts__last_field),
			    user_opts->sz)) {
			sm_set_err(0, "open: unknown options set");
			errno = EINVAL;
			return NULL;
		}
		/* An older caller's shorter struct: the fields it lacks are zero. */
		sm_opts_copy(&copy, sizeof(copy), user_opts, user_opts->sz);
		opts = &copy;
	}
	if (opts && opts->splice_budget &&
	    (opts->splice_budget < SM_MIN_SPLICE_BUDGET ||
	     opts->splice_budget > SM_MAX_SPLICE_BUDGET)) {
		sm_set_err(0, "%s: %llu is out of range (%llu..%llu bytes)",
			   sm_fname(SOCKMESH_F_SPLICE_BUDGET),
			   (unsigned long long)opts->splice_budget,
			   (unsigned long long)SM_MIN_SPLICE_BUDGET,
			   (unsigned long long)SM_MAX_SPLICE_BUDGET);
		errno = EINVAL;
		return NULL;
	}
	if (opts) {
		/* the same bounds the schema gives front-ends */
		const struct {
			enum sockmesh_field f;
			__u32 v;
		} sizes[] = { { SOCKMESH_F_MAX_SCOPES, opts->max_scopes },
			      { SOCKMESH_F_MAX_CONNS, opts->max_conns },
			      { SOCKMESH_F_MAX_RULES, opts->max_rules } };

		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			if (sizes[i].v <= sockmesh_field(sizes[i].f)->max)
				continue;
			sm_set_err(0, "%s: %u is out of range (max %llu)", sm_fname(sizes[i].f),
				   sizes[i].v, (unsigned long long)sockmesh_field(sizes[i].f)->max);
			errno = ERANGE;
			return NULL;
		}
	}
	dir = opts && opts->pin_dir ? opts->pin_dir : SOCKMESH_DEFAULT_PIN_DIR;
	if (dir[0] != '/' || strlen(dir) >= PATH_MAX - 64) {
		sm_set_err(0, "%s: '%s' must be an absolute path", sm_fname(SOCKMESH_F_PIN_DIR),
			   dir);
		errno = EINVAL;
		return NULL;
	}
	sm = calloc(1, sizeof(*sm));
	if (!sm) {
		errno = ENOMEM;
		return NULL;
	}
	handle_init(sm);
	snprintf(sm->pin_dir, sizeof(sm->pin_dir), "%s", dir);
	while (strlen(sm->pin_dir) > 1 && sm->pin_dir[strlen(sm->pin_dir) - 1] == '/')
		sm->pin_dir[strlen(sm->pin_dir) - 1] = '\0';
	if (opts && opts->create) {
		err = ensure_bpffs(sm->pin_dir);
		if (err)
			goto fail;
		lock = sm_lock(sm->pin_dir);
		if (lock < 0) {
			err = lock;
			goto fail;
		}
	}
	err = pinned(sm->pin_dir);
	if (err < 0) {
		sm_set_err(-err, "cannot read the pinned state at '%s'%s", sm->pin_dir,
			   err == -EACCES || err == -EPERM ? " (sockmesh needs root)" : "");
	} else if (err > 0) {
		err = open_pinned(sm);
	} else if (opts && opts->create) {
		err = create_pinned(sm, opts);
	} else {
		sm_set_err(0, "nothing is loaded at pin dir '%s'", sm->pin_dir);
		err = -ENOENT;
	}
	if (err && lock >= 0 && !sockmesh__exists(sm->pin_dir)) {
		/* a failed first load leaves nothing, not even the lock file */
		char p[PATH_MAX];

		sm_lock_path(sm->pin_dir, p, sizeof(p));
		if (p[0])
			unlink(p);
	}
	sm_unlock(lock);
	lock = -1;
	if (err)
		goto fail;
	return sm;
fail:
	sm_unlock(lock);
	sockmesh__close(sm);
	errno = -err;
	return NULL;
}

void sockmesh__close(struct sockmesh *sm)
{
	if (!sm)
		return;
	sm_handle_close_fds(sm);
	free(sm);
}

const char *sockmesh__pin_dir(const struct sockmesh *sm)
{
	return sm->pin_dir;
}
