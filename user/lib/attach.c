// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libsockmesh: cgroup links of the data path */
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

/* ---- attach -------------------------------------------------------------- */

bool sm_cgroup_attached(struct sockmesh *sm, __u64 cgid)
{
	char p[PATH_MAX];

	for (size_t i = 0; i < sm_n_cgroup_hooks; i++) {
		sm_pin_path(sm, p, sizeof(p), "link_%llu_%s", (unsigned long long)cgid,
			    sm_cgroup_hooks[i].hook);
		if (access(p, F_OK))
			return false;
	}
	return true;
}

void sm_detach_cgroup(struct sockmesh *sm, __u64 cgid)
{
	char p[PATH_MAX];

	for (size_t i = 0; i < sm_n_cgroup_hooks; i++) {
		sm_pin_path(sm, p, sizeof(p), "link_%llu_%s", (unsigned long long)cgid,
			    sm_cgroup_hooks[i].hook);
		unlink(p);
	}
}

int sm_attach_at_cgroup(struct sockmesh *sm, const char *path, __u64 cgid)
{
	char p[PATH_MAX];
	int cg, link, err = 0;

	cg = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cg < 0) {
		err = -errno;
		sm_set_err(-err, "attach: cannot open cgroup '%s'", path);
		return err;
	}
	for (size_t i = 0; i < sm_n_cgroup_hooks; i++) {
		sm_pin_path(sm, p, sizeof(p), "link_%llu_%s", (unsigned long long)cgid,
			    sm_cgroup_hooks[i].hook);
		if (access(p, F_OK) == 0)
			continue;
		link = bpf_link_create(sm->prog_fd[sm_cgroup_hooks[i].prog], cg,
				       sm_cgroup_hooks[i].type, NULL);
		if (link < 0) {
			err = -errno;
			sm_set_err(-err, "attach: %s on '%s' failed", sm_cgroup_hooks[i].hook,
				   path);
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
		sm_detach_cgroup(sm, cgid);
	return err;
}
