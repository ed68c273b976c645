// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libsockmesh: pods: addresses, sk_lookup link, inbound listener */
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

#include "lib.h"

/* ---- pods: addresses, sk_lookup link, inbound listener ------------------ */

static void pod_addrs_clear(struct sockmesh *sm, __u64 netns)
{
	struct sm_pod_addr_key k, next, *prev = NULL, *del = NULL;
	size_t n = 0, cap = 0;
	__u64 v;

	while (bpf_map_get_next_key(sm->map_fd[MAP_pod_addr_map], prev, &next) == 0) {
		if (bpf_map_lookup_elem(sm->map_fd[MAP_pod_addr_map], &next, &v) == 0 &&
		    v == netns) {
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
		bpf_map_delete_elem(sm->map_fd[MAP_pod_addr_map], &del[i]);
	free(del);
}

static int pod_addrs_set(struct sockmesh *sm, __u64 netns, const struct sm_list *addrs)
{
	const struct sm_cidr *c = addrs->v;

	pod_addrs_clear(sm, netns);
	for (size_t i = 0; i < addrs->n; i++) {
		struct sm_pod_addr_key k;

		sm_pod_addr_key_init(&k, c[i].family, c[i].addr);
		if (bpf_map_update_elem(sm->map_fd[MAP_pod_addr_map], &k, &netns, BPF_ANY)) {
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
	return sm_pin_path(sm, p, len, "link_netns_%llu_sk_lookup", (unsigned long long)netns);
}

static int attach_netns(struct sockmesh *sm, int nsfd, __u64 netns)
{
	char p[PATH_MAX];
	int link, err = 0;

	netns_link_path(sm, p, sizeof(p), netns);
	if (access(p, F_OK) == 0)
		return 0;
	link = bpf_link_create(sm->prog_fd[PROG_sm_lookup], nsfd, BPF_SK_LOOKUP, NULL);
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

void sm_detach_netns(struct sockmesh *sm, __u64 netns)
{
	char p[PATH_MAX];
	struct sm_listener_key lk4 = sm_listener_key_make(netns, AF_INET);
	struct sm_listener_key lk6 = sm_listener_key_make(netns, AF_INET6);

	netns_link_path(sm, p, sizeof(p), netns);
	unlink(p);
	bpf_map_delete_elem(sm->map_fd[MAP_listener_map], &lk4);
	bpf_map_delete_elem(sm->map_fd[MAP_listener_map], &lk6);
}

static int listener_register(struct sockmesh *sm, __u64 netns, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct sm_listener_key lk;
	__u64 v = (__u64)fd;
	int on = 0, proto = 0;
	socklen_t ol = sizeof(on), pl = sizeof(proto);

	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol) ||
	    getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &pl) ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) || !on || proto != IPPROTO_TCP) {
		sm_set_err(0, "inbound listener: fd %d is not a listening TCP socket", fd);
		return -EINVAL;
	}
	lk = sm_listener_key_make(netns, ss.ss_family);
	if (bpf_map_update_elem(sm->map_fd[MAP_listener_map], &lk, &v, BPF_ANY)) {
		int err = -errno;

		sm_set_err(-err, "inbound listener: cannot register fd %d", fd);
		return err;
	}
	return 0;
}

/* A proxy that was listening before its pod was enrolled missed the
 * listen() callback: find its listener among the netns' processes
 * (pidfd_getfd, as root) and register it. Best effort. Only a listener
 * root or the proxy uid created (a socket's owner, as fstat shows it, is
 * the kernel's sk_uid that on_listen checks): another user's listener on
 * the port never receives the pod's inbound connections.
 */
static void listener_adopt(struct sockmesh *sm, int nsfd, __u64 netns, __u16 port, __u32 proxy_uid)
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
			struct stat fst;
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
			if (fstat(fd, &fst) == 0 && (fst.st_uid == 0 || fst.st_uid == proxy_uid) &&
			    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &ol) == 0 && on &&
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
int sm_pod_setup(struct sockmesh *sm, const struct sockmesh_scope *scope,
		 const struct sm_compiled *c)
{
	struct sm_list found = { 0 };
	const struct sm_list *addrs = &c->pod_ips;
	__u64 cookie;
	int nsfd, err;

	nsfd = sm_open_netns(scope->name);
	if (nsfd < 0)
		return nsfd;
	err = sm_netns_cookie(nsfd, &cookie);
	if (!err && cookie != scope->id) {
		sm_set_err(0, "%s: '%s' is no longer the namespace it was",
			   sm_fname(SOCKMESH_F_NETNS), scope->name);
		err = -ESTALE;
	}
	if (!err && !addrs->n) {
		err = sm_netns_addrs(nsfd, &found);
		addrs = &found;
	}
	if (!err)
		err = pod_addrs_set(sm, scope->id, addrs);
	if (!err && (c->pol.flags & SM_POL_INBOUND)) {
		err = attach_netns(sm, nsfd, scope->id);
		if (!err)
			listener_adopt(sm, nsfd, scope->id, c->pol.inbound_port, c->pol.proxy_uid);
	}
	if (err)
		pod_addrs_clear(sm, scope->id);
	sm_list_free(&found);
	close(nsfd);
	return err;
}

void sm_pod_teardown(struct sockmesh *sm, __u64 netns)
{
	pod_addrs_clear(sm, netns);
	sm_detach_netns(sm, netns);
}
