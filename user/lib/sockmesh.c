// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libsockmesh: load, pin, attach, enrol, stats.
 *
 * Layout of an instance's pin directory:
 *   map_<name>                 every map of the BPF object
 *   prog_<name>                every program (so later processes can attach
 *                              more cgroups without loading a second copy)
 *   link_<cgroup id>_<hook>    one bpf_link per hook and attach cgroup
 * The sk_msg program is attached to map_splice_map (bpf_prog_attach; libbpf
 * 1.1 has no sockmap bpf_link) and lives as long as that map.
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
#include <bpf/libbpf.h>

#include "internal.h"
#include "sockmesh.bpf.skel.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

enum sm_map_id {
	MAP_SCOPE,
	MAP_CIDR,
	MAP_PORT,
	MAP_PENDING,
	MAP_ORIGDST,
	MAP_SPLICE,
	MAP_SK_STATE,
	MAP_STATS,
	MAP_META,
	MAP_POD_ADDR,
	MAP_LISTENER,
	MAP_STEERED,
	MAP_DNS_STATE,
	MAP_PAIR,
	MAP_COUNT
};

/* clang-format off */
static const char *const map_names[MAP_COUNT] = {
	[MAP_SCOPE] = "scope_map",
	[MAP_CIDR] = "cidr_map",
	[MAP_PORT] = "port_map",
	[MAP_PENDING] = "pending_map",
	[MAP_ORIGDST] = "origdst_map",
	[MAP_SPLICE] = "splice_map",
	[MAP_SK_STATE] = "sk_state_map",
	[MAP_STATS] = "stats_map",
	[MAP_META] = "scope_meta_map",
	[MAP_POD_ADDR] = "pod_addr_map",
	[MAP_LISTENER] = "listener_map",
	[MAP_STEERED] = "steered_map",
	[MAP_DNS_STATE] = "dns_state_map",
	[MAP_PAIR] = "pair_map",
};
/* clang-format on */

enum sm_prog_id {
	PROG_CONNECT4,
	PROG_CONNECT6,
	PROG_SOCKOPS,
	PROG_GETSOCKOPT,
	PROG_MSG,
	PROG_LOOKUP,
	PROG_SENDMSG4,
	PROG_SENDMSG6,
	PROG_RECVMSG4,
	PROG_RECVMSG6,
	PROG_GETPEERNAME4,
	PROG_GETPEERNAME6,
	PROG_COUNT
};

/* Cgroup hooks: program, attach type, and the name used in link pins. */
static const struct {
	enum sm_prog_id prog;
	enum bpf_attach_type type;
	const char *hook;
} cgroup_hooks[] = {
	{ PROG_CONNECT4, BPF_CGROUP_INET4_CONNECT, "connect4" },
	{ PROG_CONNECT6, BPF_CGROUP_INET6_CONNECT, "connect6" },
	{ PROG_SOCKOPS, BPF_CGROUP_SOCK_OPS, "sockops" },
	{ PROG_GETSOCKOPT, BPF_CGROUP_GETSOCKOPT, "getsockopt" },
	{ PROG_SENDMSG4, BPF_CGROUP_UDP4_SENDMSG, "sendmsg4" },
	{ PROG_SENDMSG6, BPF_CGROUP_UDP6_SENDMSG, "sendmsg6" },
	{ PROG_RECVMSG4, BPF_CGROUP_UDP4_RECVMSG, "recvmsg4" },
	{ PROG_RECVMSG6, BPF_CGROUP_UDP6_RECVMSG, "recvmsg6" },
	{ PROG_GETPEERNAME4, BPF_CGROUP_INET4_GETPEERNAME, "getpeername4" },
	{ PROG_GETPEERNAME6, BPF_CGROUP_INET6_GETPEERNAME, "getpeername6" },
};
#define N_CGROUP_HOOKS (sizeof(cgroup_hooks) / sizeof(cgroup_hooks[0]))

/* clang-format off */
static const char *const prog_names[PROG_COUNT] = {
	[PROG_CONNECT4] = "sm_connect4",
	[PROG_CONNECT6] = "sm_connect6",
	[PROG_SOCKOPS] = "sm_sockops",
	[PROG_GETSOCKOPT] = "sm_getsockopt",
	[PROG_MSG] = "sm_msg",
	[PROG_LOOKUP] = "sm_lookup",
	[PROG_SENDMSG4] = "sm_sendmsg4",
	[PROG_SENDMSG6] = "sm_sendmsg6",
	[PROG_RECVMSG4] = "sm_recvmsg4",
	[PROG_RECVMSG6] = "sm_recvmsg6",
	[PROG_GETPEERNAME4] = "sm_getpeername4",
	[PROG_GETPEERNAME6] = "sm_getpeername6",
};
/* clang-format on */

#define SM_STAT_NAME_(ID, name, help) [SM_STAT_##ID] = #name,
static const char *const stat_names[SM_STAT_MAX] = { SM_STATS(SM_STAT_NAME_) };
#undef SM_STAT_NAME_
#define SM_STAT_HELP_(ID, name, help) [SM_STAT_##ID] = help,
static const char *const stat_help[SM_STAT_MAX] = { SM_STATS(SM_STAT_HELP_) };
#undef SM_STAT_HELP_
_Static_assert(SM_STAT_MAX <= SOCKMESH_STATS_MAX, "public stats array too small");

struct sockmesh {
	char pin_dir[PATH_MAX];
	int map_fd[MAP_COUNT];
	int prog_fd[PROG_COUNT];
	__u32 max_scopes;
	__u32 scope_map_id; /* which instance this handle opened (see handle_current) */
	bool destroyed;
};

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

static int pin_path(const struct sockmesh *sm, char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int pin_path(const struct sockmesh *sm, char *buf, size_t len, const char *fmt, ...)
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

/* ---- cgroup2 and netns resolution ---------------------------------------- */

int sm_cgroup2_root(char *buf, size_t len)
{
	FILE *f = fopen("/proc/mounts", "re");
	char dev[256], dir[PATH_MAX], type[64];
	int err = -ENOENT;

	if (!f)
		return -errno;
	while (fscanf(f, "%255s %4095s %63s %*[^\n]", dev, dir, type) == 3) {
		if (strcmp(type, "cgroup2") == 0) {
			snprintf(buf, len, "%s", dir);
			err = 0;
			break;
		}
	}
	fclose(f);
	return err;
}

/* A cgroup2 directory's id (the kernel's cgroup id is its inode number). */
static int cgroup_id_of(const char *what, const char *path, __u64 *id, int *depth)
{
	char root[PATH_MAX], real[PATH_MAX];
	struct statfs sfs;
	struct stat st;
	size_t rl;
	int d = 0;

	if (!path || !*path) {
		sm_set_err(0, "%s: empty cgroup path", what);
		return -EINVAL;
	}
	if (statfs(path, &sfs) || stat(path, &st)) {
		int err = -errno;

		sm_set_err(-err, "%s: cannot access cgroup '%s'", what, path);
		return err == -ENOENT ? -EINVAL : err;
	}
	if (sfs.f_type != CGROUP2_SUPER_MAGIC || !S_ISDIR(st.st_mode)) {
		sm_set_err(0, "%s: '%s' is not a cgroup2 directory", what, path);
		return -EINVAL;
	}
	*id = st.st_ino;
	if (depth && realpath(path, real) && sm_cgroup2_root(root, sizeof(root)) == 0) {
		rl = strlen(root);
		for (const char *p = real + rl; *p; p++)
			d += *p == '/';
		*depth = d;
	}
	return 0;
}

int sockmesh_scope_from_cgroup(const char *path, struct sockmesh_scope *out)
{
	int depth = 0, err;

	memset(out, 0, sizeof(*out));
	err = cgroup_id_of("cgroup", path, &out->id, &depth);
	if (err)
		return err;
	if (depth >= SM_MAX_CGROUP_DEPTH - 1) {
		sm_set_err(0, "cgroup: '%s' is %d levels deep; at most %d are searched", path,
			   depth, SM_MAX_CGROUP_DEPTH - 2);
		return -EINVAL;
	}
	out->kind = SOCKMESH_SCOPE_CGROUP;
	snprintf(out->name, sizeof(out->name), "%s", path);
	return 0;
}

/* The cookie of the netns behind nsfd: a socket opened inside it tells. */
static int netns_cookie(int nsfd, __u64 *cookie)
{
	int self, sock, err = 0;
	socklen_t len = sizeof(*cookie);

	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -errno;
	if (setns(nsfd, CLONE_NEWNET)) {
		err = -errno;
		close(self);
		return err;
	}
	sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		err = -errno;
	else if (getsockopt(sock, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len))
		err = -errno;
	if (sock >= 0)
		close(sock);
	if (setns(self, CLONE_NEWNET) && !err)
		err = -errno;
	close(self);
	return err;
}

/* Open a netns by /run/netns name or path; returns an fd or -errno. */
static int open_netns(const char *name_or_path)
{
	char path[PATH_MAX];
	int fd, err;

	if (!name_or_path || !*name_or_path) {
		sm_set_err(0, "netns: empty name");
		return -EINVAL;
	}
	if (strchr(name_or_path, '/'))
		snprintf(path, sizeof(path), "%s", name_or_path);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", name_or_path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		sm_set_err(-err, "netns: unknown network namespace '%s'", name_or_path);
		return err == -ENOENT ? -EINVAL : err;
	}
	return fd;
}

int sockmesh_scope_from_netns(const char *name_or_path, struct sockmesh_scope *out)
{
	int fd, err;

	memset(out, 0, sizeof(*out));
	fd = open_netns(name_or_path);
	if (fd < 0)
		return fd;
	err = netns_cookie(fd, &out->id);
	close(fd);
	if (err) {
		sm_set_err(err == -EINVAL ? 0 : -err, "netns: '%s' is not a network namespace",
			   name_or_path);
		return err == -EINVAL ? -EINVAL : err;
	}
	out->kind = SOCKMESH_SCOPE_NETNS;
	snprintf(out->name, sizeof(out->name), "%s", name_or_path);
	return 0;
}

/* The global addresses of the netns behind nsfd (what a pod's peers use). */
static int netns_addrs(int nsfd, struct sm_list *out)
{
	struct ifaddrs *ifa = NULL, *i;
	struct sm_cidr *v;
	size_t n = 0;
	int self, err = 0;

	memset(out, 0, sizeof(*out));
	self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0)
		return -errno;
	if (setns(nsfd, CLONE_NEWNET) || getifaddrs(&ifa))
		err = -errno;
	if (setns(self, CLONE_NEWNET) && !err)
		err = -errno;
	close(self);
	if (err)
		goto out;
	for (i = ifa; i; i = i->ifa_next)
		n++;
	out->v = v = calloc(n ? n : 1, sizeof(*v));
	if (!v) {
		err = -ENOMEM;
		goto out;
	}
	for (i = ifa; i; i = i->ifa_next) {
		struct sm_cidr *c = &v[out->n];

		/* lo's own 127/8 and ::1 are never a pod's address; other
		 * addresses a pod puts on lo (a sidecar's bind address) are
		 */
		if (!i->ifa_addr)
			continue;
		if (i->ifa_addr->sa_family == AF_INET) {
			const struct in_addr *a = &((struct sockaddr_in *)i->ifa_addr)->sin_addr;

			if ((ntohl(a->s_addr) >> 24) == 127)
				continue;
			c->family = AF_INET;
			c->prefix = 32;
			memcpy(c->addr, a, 4);
		} else if (i->ifa_addr->sa_family == AF_INET6) {
			const struct in6_addr *a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;

			if (IN6_IS_ADDR_LINKLOCAL(a) || IN6_IS_ADDR_LOOPBACK(a))
				continue;
			c->family = AF_INET6;
			c->prefix = 128;
			memcpy(c->addr, a, 16);
		} else {
			continue;
		}
		out->n++;
	}
out:
	if (ifa)
		freeifaddrs(ifa);
	return err;
}

/* ---- open / create ------------------------------------------------------- */

bool sockmesh__exists(const char *pin_dir)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/map_scope_map", pin_dir ? pin_dir : SOCKMESH_DEFAULT_PIN_DIR);
	return access(p, F_OK) == 0;
}

static void handle_init(struct sockmesh *sm)
{
	for (int i = 0; i < MAP_COUNT; i++)
		sm->map_fd[i] = -1;
	for (int i = 0; i < PROG_COUNT; i++)
		sm->prog_fd[i] = -1;
}

static void handle_close_fds(struct sockmesh *sm)
{
	for (int i = 0; i < MAP_COUNT; i++)
		if (sm->map_fd[i] >= 0)
			close(sm->map_fd[i]);
	for (int i = 0; i < PROG_COUNT; i++)
		if (sm->prog_fd[i] >= 0)
			close(sm->prog_fd[i]);
	handle_init(sm);
}

static int open_pinned(struct sockmesh *sm)
{
	for (int i = 0; i < MAP_COUNT; i++)
		if (!map_names[i])
			return -EFAULT; /* a map id without a name: programming error */
	for (int i = 0; i < PROG_COUNT; i++)
		if (!prog_names[i])
			return -EFAULT;
	struct bpf_map_info info = {};
	__u32 ilen = sizeof(info);
	char p[PATH_MAX];
	int err;

	for (int i = 0; i < MAP_COUNT; i++) {
		pin_path(sm, p, sizeof(p), "map_%s", map_names[i]);
		sm->map_fd[i] = bpf_obj_get(p);
		if (sm->map_fd[i] < 0) {
			err = -errno;
			sm_set_err(-err, "pin dir %s: cannot open %s", sm->pin_dir, p);
			return err;
		}
	}
	for (int i = 0; i < PROG_COUNT; i++) {
		pin_path(sm, p, sizeof(p), "prog_%s", prog_names[i]);
		sm->prog_fd[i] = bpf_obj_get(p);
		if (sm->prog_fd[i] < 0) {
			err = -errno;
			sm_set_err(-err, "pin dir %s: cannot open %s", sm->pin_dir, p);
			return err;
		}
	}
	if (bpf_obj_get_info_by_fd(sm->map_fd[MAP_SCOPE], &info, &ilen) == 0) {
		sm->max_scopes = info.max_entries;
		sm->scope_map_id = info.id;
	}
	return 0;
}

static int unpin_all(struct sockmesh *sm)
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
			pin_path(sm, p, sizeof(p), "%s", e->d_name);
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
		sm_set_err(0, "pin dir: '%s' must be a directory inside a bpffs mount", pin_dir);
		return -EINVAL;
	}
	*slash = '\0';
	if (statfs(parent, &sfs)) {
		sm_set_err(errno, "pin dir: cannot access '%s'", parent);
		return -EINVAL;
	}
	if (sfs.f_type == BPF_FS_MAGIC)
		return 0;
	/* /sys/fs/bpf exists on every systemd-less box but may be unmounted. */
	if (strcmp(parent, "/sys/fs/bpf") == 0 && mount("bpf", parent, "bpf", 0, "mode=0700") == 0)
		return 0;
	sm_set_err(0, "pin dir: '%s' is not on a bpffs mount", parent);
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
	char p[PATH_MAX];
	__u32 idx = SM_SCOPE_IDX_GLOBAL;
	int err, ncpu;

	err = ensure_bpffs(sm->pin_dir);
	if (err)
		return err;
	skel = sockmesh_bpf__open();
	if (!skel) {
		err = -errno;
		sm_set_err(-err, "cannot open the BPF object");
		return err;
	}
	maps[MAP_SCOPE] = skel->maps.scope_map;
	maps[MAP_CIDR] = skel->maps.cidr_map;
	maps[MAP_PORT] = skel->maps.port_map;
	maps[MAP_PENDING] = skel->maps.pending_map;
	maps[MAP_ORIGDST] = skel->maps.origdst_map;
	maps[MAP_SPLICE] = skel->maps.splice_map;
	maps[MAP_SK_STATE] = skel->maps.sk_state_map;
	maps[MAP_STATS] = skel->maps.stats_map;
	maps[MAP_META] = skel->maps.scope_meta_map;
	maps[MAP_POD_ADDR] = skel->maps.pod_addr_map;
	maps[MAP_LISTENER] = skel->maps.listener_map;
	maps[MAP_STEERED] = skel->maps.steered_map;
	maps[MAP_DNS_STATE] = skel->maps.dns_state_map;
	maps[MAP_PAIR] = skel->maps.pair_map;
	progs[PROG_CONNECT4] = skel->progs.sm_connect4;
	progs[PROG_CONNECT6] = skel->progs.sm_connect6;
	progs[PROG_SOCKOPS] = skel->progs.sm_sockops;
	progs[PROG_GETSOCKOPT] = skel->progs.sm_getsockopt;
	progs[PROG_MSG] = skel->progs.sm_msg;
	progs[PROG_LOOKUP] = skel->progs.sm_lookup;
	progs[PROG_SENDMSG4] = skel->progs.sm_sendmsg4;
	progs[PROG_SENDMSG6] = skel->progs.sm_sendmsg6;
	progs[PROG_RECVMSG4] = skel->progs.sm_recvmsg4;
	progs[PROG_RECVMSG6] = skel->progs.sm_recvmsg6;
	progs[PROG_GETPEERNAME4] = skel->progs.sm_getpeername4;
	progs[PROG_GETPEERNAME6] = skel->progs.sm_getpeername6;

	if (o) {
		set_size(maps[MAP_SCOPE], o->max_scopes);
		set_size(maps[MAP_STATS], o->max_scopes);
		set_size(maps[MAP_META], o->max_scopes);
		set_size(maps[MAP_LISTENER], o->max_scopes ? 2 * o->max_scopes : 0);
		set_size(maps[MAP_POD_ADDR], o->max_scopes ? 4 * o->max_scopes : 0);
		set_size(maps[MAP_STEERED], o->max_pending);
		set_size(maps[MAP_ORIGDST], o->max_pending);
		set_size(maps[MAP_PAIR], o->max_conns);
		if (o->splice_budget)
			skel->rodata->splice_budget = o->splice_budget;
		set_size(maps[MAP_SPLICE], o->max_splice_socks ?
						   o->max_splice_socks :
						   (o->max_conns ? 2 * o->max_conns : 0));
		set_size(maps[MAP_CIDR], o->max_rules);
		set_size(maps[MAP_PORT], o->max_rules);
		set_size(maps[MAP_PENDING], o->max_pending);
	}
	err = sockmesh_bpf__load(skel);
	if (err) {
		sm_set_err(-err, "cannot load the BPF programs (run 'sockmesh doctor')");
		goto out;
	}
	if (mkdir(sm->pin_dir, 0700) && errno != EEXIST) {
		err = -errno;
		sm_set_err(-err, "pin dir: cannot create '%s'", sm->pin_dir);
		goto out;
	}
	for (int i = 0; i < MAP_COUNT; i++) {
		pin_path(sm, p, sizeof(p), "map_%s", map_names[i]);
		if (bpf_obj_pin(bpf_map__fd(maps[i]), p)) {
			err = -errno;
			sm_set_err(-err, "cannot pin %s", p);
			goto out_unpin;
		}
	}
	for (int i = 0; i < PROG_COUNT; i++) {
		pin_path(sm, p, sizeof(p), "prog_%s", prog_names[i]);
		if (bpf_obj_pin(bpf_program__fd(progs[i]), p)) {
			err = -errno;
			sm_set_err(-err, "cannot pin %s", p);
			goto out_unpin;
		}
	}
	if (bpf_prog_attach(bpf_program__fd(progs[PROG_MSG]), bpf_map__fd(maps[MAP_SPLICE]),
			    BPF_SK_MSG_VERDICT, 0)) {
		err = -errno;
		sm_set_err(-err, "cannot attach sk_msg to the splice map");
		goto out_unpin;
	}
	ncpu = libbpf_num_possible_cpus();
	zero = ncpu > 0 ? calloc((size_t)ncpu, sizeof(*zero)) : NULL;
	if (!zero || bpf_map_update_elem(bpf_map__fd(maps[MAP_STATS]), &idx, zero, BPF_ANY)) {
		err = zero ? -errno : -ENOMEM;
		sm_set_err(-err, "cannot create the global stats slot");
		goto out_unpin;
	}
	err = open_pinned(sm);
	if (err)
		goto out_unpin;
	goto out;
out_unpin:
	handle_close_fds(sm);
	unpin_all(sm);
out:
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
static void sm_lock_path(const char *pin_dir, char *path, size_t len)
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

static int sm_lock(const char *pin_dir)
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

static void sm_unlock(int fd)
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
		sm_set_err(0, "splice_budget: %llu is out of range (%llu..%llu bytes)",
			   (unsigned long long)opts->splice_budget,
			   (unsigned long long)SM_MIN_SPLICE_BUDGET,
			   (unsigned long long)SM_MAX_SPLICE_BUDGET);
		errno = EINVAL;
		return NULL;
	}
	dir = opts && opts->pin_dir ? opts->pin_dir : SOCKMESH_DEFAULT_PIN_DIR;
	if (dir[0] != '/' || strlen(dir) >= PATH_MAX - 64) {
		sm_set_err(0, "pin dir: '%s' must be an absolute path", dir);
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
	if (sockmesh__exists(sm->pin_dir)) {
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
	handle_close_fds(sm);
	free(sm);
}

const char *sockmesh__pin_dir(const struct sockmesh *sm)
{
	return sm->pin_dir;
}

/* ---- attach -------------------------------------------------------------- */

static bool attached(struct sockmesh *sm, __u64 cgid)
{
	char p[PATH_MAX];

	for (size_t i = 0; i < N_CGROUP_HOOKS; i++) {
		pin_path(sm, p, sizeof(p), "link_%llu_%s", (unsigned long long)cgid,
			 cgroup_hooks[i].hook);
		if (access(p, F_OK))
			return false;
	}
	return true;
}

static void detach_cgroup(struct sockmesh *sm, __u64 cgid)
{
	char p[PATH_MAX];

	for (size_t i = 0; i < N_CGROUP_HOOKS; i++) {
		pin_path(sm, p, sizeof(p), "link_%llu_%s", (unsigned long long)cgid,
			 cgroup_hooks[i].hook);
		unlink(p);
	}
}

static int attach_at_cgroup(struct sockmesh *sm, const char *path, __u64 cgid)
{
	char p[PATH_MAX];
	int cg, link, err = 0;

	cg = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0) {
		err = -errno;
		sm_set_err(-err, "attach: cannot open cgroup '%s'", path);
		return err;
	}
	for (size_t i = 0; i < N_CGROUP_HOOKS; i++) {
		pin_path(sm, p, sizeof(p), "link_%llu_%s", (unsigned long long)cgid,
			 cgroup_hooks[i].hook);
		if (access(p, F_OK) == 0)
			continue;
		link = bpf_link_create(sm->prog_fd[cgroup_hooks[i].prog], cg, cgroup_hooks[i].type,
				       NULL);
		if (link < 0) {
			err = -errno;
			sm_set_err(-err, "attach: %s on '%s' failed", cgroup_hooks[i].hook, path);
			break;
		}
		if (bpf_obj_pin(link, p)) {
			err = -errno;
			sm_set_err(-err, "attach: cannot pin %s", p);
			close(link);
			break;
		}
		close(link);
	}
	close(cg);
	if (err)
		detach_cgroup(sm, cgid);
	return err;
}

/* ---- rules --------------------------------------------------------------- */

static int rules_write(struct sockmesh *sm, __u32 rules_id, const struct sm_compiled *c)
{
	static const struct sm_list empty;
	const struct sm_list *cl[5] = { &c->inc_cidrs, &c->exc_cidrs, &empty, &empty,
					&c->dns_servers };
	const struct sm_list *pl[5] = { &c->inc_ports, &c->exc_ports, &c->inc_in_ports,
					&c->exc_in_ports, &empty };
	__u8 lists[5] = { SM_LIST_INCLUDE, SM_LIST_EXCLUDE, SM_LIST_INBOUND_INCLUDE,
			  SM_LIST_INBOUND_EXCLUDE, SM_LIST_DNS_SERVERS };
	__u8 one = 1;

	for (int l = 0; l < 5; l++) {
		const struct sm_cidr *cidr = cl[l]->v;
		const __u16 *port = pl[l]->v;

		for (size_t i = 0; i < cl[l]->n; i++) {
			struct sm_cidr_key k = {
				.prefixlen = SM_CIDR_HEAD_BITS + cidr[i].prefix,
				.rules_id = rules_id,
				.list = lists[l],
				.family = cidr[i].family,
			};

			memcpy(k.addr, cidr[i].addr, 16);
			if (bpf_map_update_elem(sm->map_fd[MAP_CIDR], &k, &one, BPF_ANY)) {
				sm_set_err(errno, "rules: cannot store CIDR rule");
				return -errno;
			}
		}
		for (size_t i = 0; i < pl[l]->n; i++) {
			struct sm_port_key k = { .rules_id = rules_id,
						 .port = port[i],
						 .list = lists[l] };

			if (bpf_map_update_elem(sm->map_fd[MAP_PORT], &k, &one, BPF_ANY)) {
				sm_set_err(errno, "rules: cannot store port rule");
				return -errno;
			}
		}
	}
	return 0;
}

/* Delete every rule of rules_id. Keys are collected first: deleting while
 * iterating would restart the walk.
 */
static void rules_delete(struct sockmesh *sm, __u32 rules_id)
{
	int fds[2] = { sm->map_fd[MAP_CIDR], sm->map_fd[MAP_PORT] };
	size_t ksz[2] = { sizeof(struct sm_cidr_key), sizeof(struct sm_port_key) };

	for (int m = 0; m < 2; m++) {
		char key[sizeof(struct sm_cidr_key)], next[sizeof(struct sm_cidr_key)];
		char *del = NULL;
		size_t n = 0, cap = 0;
		void *prev = NULL;

		while (bpf_map_get_next_key(fds[m], prev, next) == 0) {
			/* rules_id sits right after prefixlen in cidr keys, first in port keys */
			__u32 id;

			memcpy(&id, next + (m == 0 ? 4 : 0), sizeof(id));
			if (id == rules_id) {
				if (n == cap) {
					char *nd =
						realloc(del, (cap = cap ? 2 * cap : 64) * ksz[m]);

					if (!nd)
						break;
					del = nd;
				}
				memcpy(del + n++ * ksz[m], next, ksz[m]);
			}
			memcpy(key, next, ksz[m]);
			prev = key;
		}
		for (size_t i = 0; i < n; i++)
			bpf_map_delete_elem(fds[m], del + i * ksz[m]);
		free(del);
	}
}

/* ---- pods: addresses, sk_lookup link, inbound listener ------------------ */

static void pod_addrs_clear(struct sockmesh *sm, __u64 netns)
{
	struct sm_pod_addr_key k, next, *prev = NULL, *del = NULL;
	size_t n = 0, cap = 0;
	__u64 v;

	while (bpf_map_get_next_key(sm->map_fd[MAP_POD_ADDR], prev, &next) == 0) {
		if (bpf_map_lookup_elem(sm->map_fd[MAP_POD_ADDR], &next, &v) == 0 && v == netns) {
			if (n == cap) {
				void *nd = realloc(del, (cap = cap ? 2 * cap : 8) * sizeof(*del));

				if (!nd)
					break;
				del = nd;
			}
			del[n++] = next;
		}
		k = next;
		prev = &k;
	}
	for (size_t i = 0; i < n; i++)
		bpf_map_delete_elem(sm->map_fd[MAP_POD_ADDR], &del[i]);
	free(del);
}

static int pod_addrs_set(struct sockmesh *sm, __u64 netns, const struct sm_list *addrs)
{
	const struct sm_cidr *c = addrs->v;

	pod_addrs_clear(sm, netns);
	for (size_t i = 0; i < addrs->n; i++) {
		struct sm_pod_addr_key k = { .family = c[i].family };

		memcpy(k.addr, c[i].addr, 16);
		if (bpf_map_update_elem(sm->map_fd[MAP_POD_ADDR], &k, &netns, BPF_ANY)) {
			int err = -errno;

			sm_set_err(-err, "enroll: cannot store the pod's addresses");
			pod_addrs_clear(sm, netns);
			return err;
		}
	}
	return 0;
}

static int netns_link_path(struct sockmesh *sm, char *p, size_t len, __u64 netns)
{
	return pin_path(sm, p, len, "link_netns_%llu_sk_lookup", (unsigned long long)netns);
}

static int attach_netns(struct sockmesh *sm, int nsfd, __u64 netns)
{
	char p[PATH_MAX];
	int link, err = 0;

	netns_link_path(sm, p, sizeof(p), netns);
	if (access(p, F_OK) == 0)
		return 0;
	link = bpf_link_create(sm->prog_fd[PROG_LOOKUP], nsfd, BPF_SK_LOOKUP, NULL);
	if (link < 0) {
		err = -errno;
		sm_set_err(-err, "attach: sk_lookup in the pod's netns failed");
		return err;
	}
	if (bpf_obj_pin(link, p)) {
		err = -errno;
		sm_set_err(-err, "attach: cannot pin %s", p);
	}
	close(link);
	return err;
}

static void detach_netns(struct sockmesh *sm, __u64 netns)
{
	char p[PATH_MAX];
	struct sm_listener_key lk = { .netns = netns };

	netns_link_path(sm, p, sizeof(p), netns);
	unlink(p);
	lk.family = AF_INET;
	bpf_map_delete_elem(sm->map_fd[MAP_LISTENER], &lk);
	lk.family = AF_INET6;
	bpf_map_delete_elem(sm->map_fd[MAP_LISTENER], &lk);
}

static int listener_register(struct sockmesh *sm, __u64 netns, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct sm_listener_key lk = { .netns = netns };
	__u64 v = (__u64)fd;
	int on = 0, proto = 0;
	socklen_t ol = sizeof(on), pl = sizeof(proto);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol) ||
	    getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &pl) ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) || !on || proto != IPPROTO_TCP) {
		sm_set_err(0, "inbound listener: fd %d is not a listening TCP socket", fd);
		return -EINVAL;
	}
	lk.family = ss.ss_family;
	if (bpf_map_update_elem(sm->map_fd[MAP_LISTENER], &lk, &v, BPF_ANY)) {
		int err = -errno;

		sm_set_err(-err, "inbound listener: cannot register fd %d", fd);
		return err;
	}
	return 0;
}

/* A proxy that was listening before its pod was enrolled missed the
 * listen() callback: find its listener among the netns' processes
 * (pidfd_getfd, as root) and register it. Best effort.
 */
static void listener_adopt(struct sockmesh *sm, int nsfd, __u64 netns, __u16 port)
{
	char p[64], link[64], want[64];
	struct dirent *pe, *fe;
	struct stat nst;
	DIR *procs, *fds;

	if (fstat(nsfd, &nst))
		return;
	snprintf(want, sizeof(want), "net:[%llu]", (unsigned long long)nst.st_ino);
	procs = opendir("/proc");
	if (!procs)
		return;
	while ((pe = readdir(procs))) {
		ssize_t n;
		int pidfd;

		if (pe->d_name[0] < '1' || pe->d_name[0] > '9')
			continue;
		snprintf(p, sizeof(p), "/proc/%.16s/ns/net", pe->d_name);
		n = readlink(p, link, sizeof(link) - 1);
		if (n <= 0)
			continue;
		link[n] = '\0';
		if (strcmp(link, want))
			continue;
		pidfd = (int)syscall(SYS_pidfd_open, atoi(pe->d_name), 0);
		snprintf(p, sizeof(p), "/proc/%.16s/fd", pe->d_name);
		fds = pidfd >= 0 ? opendir(p) : NULL;
		while (fds && (fe = readdir(fds))) {
			struct sockaddr_storage ss;
			socklen_t len = sizeof(ss);
			int fd, on = 0;
			socklen_t ol = sizeof(on);
			char fp[96];

			if (fe->d_name[0] < '0' || fe->d_name[0] > '9')
				continue;
			snprintf(fp, sizeof(fp), "%.40s/%.16s", p, fe->d_name);
			n = readlink(fp, link, sizeof(link) - 1);
			if (n <= 0 || strncmp(link, "socket:", 7))
				continue;
			fd = (int)syscall(SYS_pidfd_getfd, pidfd, atoi(fe->d_name), 0);
			if (fd < 0)
				continue;
			if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol) == 0 && on &&
			    getsockname(fd, (struct sockaddr *)&ss, &len) == 0 &&
			    (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) &&
			    ntohs(((struct sockaddr_in *)&ss)->sin_port) == port)
				listener_register(sm, netns, fd);
			close(fd);
		}
		if (fds)
			closedir(fds);
		if (pidfd >= 0)
			close(pidfd);
	}
	closedir(procs);
}

int sockmesh__register_inbound_listener(struct sockmesh *sm, const struct sockmesh_scope *scope,
					int fd)
{
	if (!sm || !scope || sm->destroyed || scope->kind != SOCKMESH_SCOPE_NETNS) {
		sm_set_err(0, "inbound listener: needs an enrolled netns scope");
		return -EINVAL;
	}
	return listener_register(sm, scope->id, fd);
}

/* Inbound steering for a netns scope: pod addresses, the sk_lookup link in
 * its netns, and a listener that was there before us.
 */
static int pod_setup(struct sockmesh *sm, const struct sockmesh_scope *scope,
		     const struct sm_compiled *c)
{
	struct sm_list found = { 0 };
	const struct sm_list *addrs = &c->pod_ips;
	__u64 cookie;
	int nsfd, err;

	nsfd = open_netns(scope->name);
	if (nsfd < 0)
		return nsfd;
	err = netns_cookie(nsfd, &cookie);
	if (!err && cookie != scope->id) {
		sm_set_err(0, "netns: '%s' is no longer the namespace it was", scope->name);
		err = -ESTALE;
	}
	if (!err && !addrs->n) {
		err = netns_addrs(nsfd, &found);
		addrs = &found;
	}
	if (!err)
		err = pod_addrs_set(sm, scope->id, addrs);
	if (!err && (c->pol.flags & SM_POL_INBOUND)) {
		err = attach_netns(sm, nsfd, scope->id);
		if (!err)
			listener_adopt(sm, nsfd, scope->id, c->pol.inbound_port);
	}
	if (err)
		pod_addrs_clear(sm, scope->id);
	sm_list_free(&found);
	close(nsfd);
	return err;
}

static void pod_teardown(struct sockmesh *sm, __u64 netns)
{
	pod_addrs_clear(sm, netns);
	detach_netns(sm, netns);
}

/* ---- enrol / withdraw ---------------------------------------------------- */

static void scope_key(const struct sockmesh_scope *s, struct sm_scope_key *k)
{
	memset(k, 0, sizeof(*k));
	k->kind = s->kind;
	k->id = s->id;
}

static int alloc_scope_idx(struct sockmesh *sm, __u32 *out)
{
	struct sm_scope_key k, *prev = NULL;
	struct sm_policy pol;
	size_t nbits = sm->max_scopes ? sm->max_scopes : SM_DEFAULT_MAX_SCOPES;
	unsigned char *used = calloc(nbits, 1);
	int err = -ENOSPC;

	if (!used)
		return -ENOMEM;
	while (bpf_map_get_next_key(sm->map_fd[MAP_SCOPE], prev, &k) == 0) {
		if (bpf_map_lookup_elem(sm->map_fd[MAP_SCOPE], &k, &pol) == 0 &&
		    pol.scope_idx < nbits)
			used[pol.scope_idx] = 1;
		prev = &k;
	}
	for (size_t i = 1; i < nbits; i++) {
		if (!used[i]) {
			*out = (__u32)i;
			err = 0;
			break;
		}
	}
	free(used);
	if (err)
		sm_set_err(0, "enroll: all %zu scope slots are in use (raise --max-scopes)",
			   nbits - 1);
	return err;
}

static bool attach_point_used(struct sockmesh *sm, __u64 cgid)
{
	struct sm_scope_key k, *prev = NULL;
	struct sm_policy pol;

	while (bpf_map_get_next_key(sm->map_fd[MAP_SCOPE], prev, &k) == 0) {
		if (bpf_map_lookup_elem(sm->map_fd[MAP_SCOPE], &k, &pol) == 0 &&
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
	if (bpf_map_update_elem(sm->map_fd[MAP_STATS], &idx, zero, BPF_ANY))
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
				sm_set_err(-err, "attach_cgroup: no cgroup2 mount");
				goto out;
			}
			attach_cgroup = root;
		}
	} else {
		sm_set_err(0, "scope: unknown kind %d", scope->kind);
		err = -EINVAL;
		goto out;
	}
	err = cgroup_id_of("attach_cgroup", attach_cgroup, &cgid, NULL);
	if (err)
		goto out;

	scope_key(scope, &key);
	existed = bpf_map_lookup_elem(sm->map_fd[MAP_SCOPE], &key, &old) == 0;
	if (existed) {
		c.pol.scope_idx = old.scope_idx;
		/* Two alternating rule sets make the policy switch atomic. */
		c.pol.rules_id = old.rules_id ^ 0x80000000u;
	} else {
		err = alloc_scope_idx(sm, &c.pol.scope_idx);
		if (err)
			goto out;
		c.pol.rules_id = c.pol.scope_idx;
	}
	c.pol.attach_cgroup_id = cgid;

	rules_delete(sm, c.pol.rules_id); /* leftovers of a crashed writer */
	err = rules_write(sm, c.pol.rules_id, &c);
	if (err)
		goto undo_rules;
	if (!existed) {
		err = stats_slot_reset(sm, c.pol.scope_idx);
		if (err) {
			sm_set_err(-err, "enroll: cannot create the stats slot");
			goto undo_rules;
		}
	}
	if (!attached(sm, cgid)) {
		err = attach_at_cgroup(sm, attach_cgroup, cgid);
		if (err)
			goto undo_stats;
		did_attach = true;
	}
	if (scope->kind == SOCKMESH_SCOPE_NETNS) {
		err = pod_setup(sm, scope, &c);
		if (err)
			goto undo_attach;
		if (existed && !(c.pol.flags & SM_POL_INBOUND))
			detach_netns(sm, scope->id);
	}
	/* keep the labels of a re-enrolled scope */
	bpf_map_lookup_elem(sm->map_fd[MAP_META], &key, &meta);
	snprintf(meta.name, sizeof(meta.name), "%s", scope->name);
	bpf_map_update_elem(sm->map_fd[MAP_META], &key, &meta, BPF_ANY);
	if (bpf_map_update_elem(sm->map_fd[MAP_SCOPE], &key, &c.pol, BPF_ANY)) {
		err = -errno;
		sm_set_err(-err, "enroll: cannot store the scope (raise --max-scopes?)");
		if (!existed) {
			bpf_map_delete_elem(sm->map_fd[MAP_META], &key);
			if (scope->kind == SOCKMESH_SCOPE_NETNS)
				pod_teardown(sm, scope->id);
		}
		goto undo_attach;
	}
	if (existed) {
		rules_delete(sm, old.rules_id);
		if (old.attach_cgroup_id != cgid && !attach_point_used(sm, old.attach_cgroup_id))
			detach_cgroup(sm, old.attach_cgroup_id);
	}
	err = 0;
	goto out;

undo_attach:
	if (did_attach)
		detach_cgroup(sm, cgid);
undo_stats:
	if (!existed)
		bpf_map_delete_elem(sm->map_fd[MAP_STATS], &c.pol.scope_idx);
undo_rules:
	rules_delete(sm, c.pol.rules_id);
out:
	sm_compiled_free(&c);
	return err;
}

static bool any_scope(struct sockmesh *sm)
{
	struct sm_scope_key k;

	return bpf_map_get_next_key(sm->map_fd[MAP_SCOPE], NULL, &k) == 0;
}

static int teardown(struct sockmesh *sm)
{
	char p[PATH_MAX];
	int err;

	bpf_prog_detach2(sm->prog_fd[PROG_MSG], sm->map_fd[MAP_SPLICE], BPF_SK_MSG_VERDICT);
	handle_close_fds(sm);
	err = unpin_all(sm);
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
	scope_key(scope, &key);
	if (bpf_map_lookup_elem(sm->map_fd[MAP_SCOPE], &key, &pol)) {
		sm_set_err(0, "withdraw: '%s' is not enrolled", scope->name);
		return -ENOENT;
	}
	bpf_map_delete_elem(sm->map_fd[MAP_SCOPE], &key);
	bpf_map_delete_elem(sm->map_fd[MAP_META], &key);
	rules_delete(sm, pol.rules_id);
	bpf_map_delete_elem(sm->map_fd[MAP_STATS], &pol.scope_idx);
	if (scope->kind == SOCKMESH_SCOPE_NETNS)
		pod_teardown(sm, scope->id);
	if (!attach_point_used(sm, pol.attach_cgroup_id))
		detach_cgroup(sm, pol.attach_cgroup_id);
	if (!any_scope(sm))
		return teardown(sm);
	return 0;
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

	pin_path(sm, p, sizeof(p), "map_%s", map_names[MAP_SCOPE]);
	fd = bpf_obj_get(p);
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &info, &len) || info.id != sm->scope_map_id) {
		sm_set_err(
			0,
			"the sockmesh instance at '%s' was unloaded since this handle opened it; open it again",
			sm->pin_dir);
		err = -ESTALE;
	}
	if (fd >= 0)
		close(fd);
	return err;
}

/* Every mutation runs under the instance lock, on the current instance. */
#define LOCKED(sm, call)                             \
	({                                           \
		int _l = sm_lock((sm)->pin_dir), _r; \
		if (_l < 0)                          \
			return _l;                   \
		_r = handle_current(sm);             \
		if (!_r)                             \
			_r = (call);                 \
		sm_unlock(_l);                       \
		_r;                                  \
	})

int sockmesh__enroll(struct sockmesh *sm, const struct sockmesh_scope *scope,
		     const char *attach_cgroup, const struct sockmesh_policy *pol)
{
	if (!sm || !scope || sm->destroyed)
		return -EINVAL;
	return LOCKED(sm, enroll_locked(sm, scope, attach_cgroup, pol));
}

int sockmesh__withdraw(struct sockmesh *sm, const struct sockmesh_scope *scope)
{
	if (!sm || !scope || sm->destroyed)
		return -EINVAL;
	return LOCKED(sm, withdraw_locked(sm, scope));
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
		sm_set_err(0, "pin dir: '%s' must be an absolute path", pin_dir ? pin_dir : "");
		return -EINVAL;
	}
	snprintf(tmp.pin_dir, sizeof(tmp.pin_dir), "%s", pin_dir);
	lock = sm_lock(pin_dir);
	if (lock < 0)
		return lock;
	err = unpin_all(&tmp);
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
	return LOCKED(sm, unload_if_unused_locked(sm));
}

int sockmesh__destroy(struct sockmesh *sm)
{
	if (!sm)
		return -EINVAL;
	if (sm->destroyed)
		return 0;
	return LOCKED(sm, teardown(sm));
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
	if (bpf_map_lookup_elem(sm->map_fd[MAP_META], k, &meta) == 0)
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
	scope_key(scope, &key);
	if (bpf_map_lookup_elem(sm->map_fd[MAP_META], &key, &meta)) {
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
	if (bpf_map_update_elem(sm->map_fd[MAP_META], &key, &meta, BPF_EXIST)) {
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
		scope_key(prev, &pk);
	for (;;) {
		if (bpf_map_get_next_key(sm->map_fd[MAP_SCOPE], prev ? &pk : NULL, &k))
			return -ENOENT;
		if (bpf_map_lookup_elem(sm->map_fd[MAP_SCOPE], &k, &pol) == 0)
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
	scope_key(scope, &k);
	if (bpf_map_lookup_elem(sm->map_fd[MAP_SCOPE], &k, &pol)) {
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
	if (bpf_map_lookup_elem(sm->map_fd[MAP_STATS], &idx, v)) {
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
