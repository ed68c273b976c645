// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libsockmesh: cgroup2 mount, cgroup and netns resolution */
#include <dirent.h>
#include <mntent.h>
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

/* ---- cgroup2 and netns resolution ---------------------------------------- */

int sm_cgroup2_root(char *buf, size_t len)
{
	FILE *f = setmntent("/proc/mounts", "re");
	struct mntent *m;
	int err = -ENOENT;

	if (!f)
		return -errno;
	while ((m = getmntent(f))) {
		if (strcmp(m->mnt_type, "cgroup2") == 0) {
			snprintf(buf, len, "%s", m->mnt_dir);
			err = 0;
			break;
		}
	}
	endmntent(f);
	return err;
}

/* A path or name no file can have: a bad value (-EINVAL), named by its
 * start (it may be thousands of characters long).
 */
static int too_long(const char *what, const char *s, size_t max)
{
	size_t n = strlen(s);

	sm_set_err(0, "%s: '%.64s%s' is too long (%zu characters, at most %zu)", what, s,
		   n > 64 ? "..." : "", n, max);
	return -EINVAL;
}

/* The kernel's file handle of a cgroup2 directory is its id (kernfs). */
#define SM_FILEID_KERNFS 0xfe

int sm_cgroup_open_id(__u64 id)
{
	struct {
		struct file_handle fh;
		__u64 id;
	} h = { .fh = { .handle_bytes = sizeof(__u64), .handle_type = SM_FILEID_KERNFS } };
	char root[PATH_MAX];
	int mnt, fd, err;

	err = sm_cgroup2_root(root, sizeof(root));
	if (err)
		return err;
	mnt = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (mnt < 0)
		return -errno;
	memcpy(h.fh.f_handle, &id, sizeof(id));
	fd = open_by_handle_at(mnt, &h.fh, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	err = fd < 0 ? -errno : fd;
	close(mnt);
	return err;
}

/* A cgroup2 directory's id (the kernel's cgroup id is its inode number). */
int sm_cgroup_id_of(const char *what, const char *path, __u64 *id, int *depth)
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
	if (strlen(path) >= PATH_MAX)
		return too_long(what, path, PATH_MAX - 1);
	if (statfs(path, &sfs) || stat(path, &st)) {
		int err = -errno;

		if (err == -ENAMETOOLONG) { /* a component longer than NAME_MAX */
			sm_set_err(0, "%s: '%.64s%s' has a name longer than %d characters", what,
				   path, strlen(path) > 64 ? "..." : "", NAME_MAX);
			return -EINVAL;
		}
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
	err = sm_cgroup_id_of(sm_fname(SOCKMESH_F_CGROUP), path, &out->id, &depth);
	if (err)
		return err;
	if (depth >= SM_MAX_CGROUP_DEPTH - 1) {
		sm_set_err(0, "%s: '%s' is %d levels deep; at most %d are searched",
			   sm_fname(SOCKMESH_F_CGROUP), path, depth, SM_MAX_CGROUP_DEPTH - 2);
		return -EINVAL;
	}
	out->kind = SOCKMESH_SCOPE_CGROUP;
	snprintf(out->name, sizeof(out->name), "%s", path);
	return 0;
}

/* The cookie of the netns behind nsfd: a socket opened inside it tells. */
int sm_netns_cookie(int nsfd, __u64 *cookie)
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
int sm_open_netns(const char *name_or_path)
{
	char path[PATH_MAX];
	int fd, err;

	if (!name_or_path || !*name_or_path) {
		sm_set_err(0, "%s: empty name", sm_fname(SOCKMESH_F_NETNS));
		return -EINVAL;
	}
	if (strchr(name_or_path, '/')) {
		if (strlen(name_or_path) >= sizeof(path))
			return too_long(sm_fname(SOCKMESH_F_NETNS), name_or_path, sizeof(path) - 1);
		snprintf(path, sizeof(path), "%s", name_or_path);
	} else {
		if (strlen(name_or_path) > NAME_MAX) /* a file name under /run/netns */
			return too_long(sm_fname(SOCKMESH_F_NETNS), name_or_path, NAME_MAX);
		snprintf(path, sizeof(path), "/run/netns/%s", name_or_path);
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		if (err == -ENAMETOOLONG) {
			sm_set_err(0, "%s: '%.64s%s' has a name longer than %d characters",
				   sm_fname(SOCKMESH_F_NETNS), name_or_path,
				   strlen(name_or_path) > 64 ? "..." : "", NAME_MAX);
			return -EINVAL;
		}
		sm_set_err(-err, "%s: unknown network namespace '%s'", sm_fname(SOCKMESH_F_NETNS),
			   name_or_path);
		return err == -ENOENT ? -EINVAL : err;
	}
	return fd;
}

int sockmesh_scope_from_netns(const char *name_or_path, struct sockmesh_scope *out)
{
	int fd, err;

	memset(out, 0, sizeof(*out));
	fd = sm_open_netns(name_or_path);
	if (fd < 0)
		return fd;
	err = sm_netns_cookie(fd, &out->id);
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
int sm_netns_addrs(int nsfd, struct sm_list *out)
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
