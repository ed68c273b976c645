// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libsockmesh: a policy's CIDR and port rules in the maps */
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

/* ---- rules --------------------------------------------------------------- */

int sm_rules_write(struct sockmesh *sm, __u32 rules_id, const struct sm_compiled *c)
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
			struct sm_cidr_key k;

			sm_cidr_key_init(&k, rules_id, lists[l], cidr[i].family, cidr[i].addr,
					 cidr[i].prefix);
			if (bpf_map_update_elem(sm->map_fd[MAP_cidr_map], &k, &one, BPF_ANY)) {
				sm_set_err(errno, "rules: cannot store CIDR rule");
				return -errno;
			}
		}
		for (size_t i = 0; i < pl[l]->n; i++) {
			struct sm_port_key k = sm_port_key_make(rules_id, lists[l], port[i]);

			if (bpf_map_update_elem(sm->map_fd[MAP_port_map], &k, &one, BPF_ANY)) {
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
/* Delete the keys of one map whose rules_id matches: collect them first
 * (deleting while walking would restart the walk). ksz: the key's size;
 * id_of: where its rules_id is, read through the key's own type.
 */
static void delete_matching(int fd, size_t ksz, __u32 rules_id, __u32 (*id_of)(const void *k))
{
	char key[sizeof(struct sm_cidr_key)], next[sizeof(struct sm_cidr_key)];
	char *del = NULL;
	size_t n = 0, cap = 0;
	void *prev = NULL;

	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		if (id_of(next) == rules_id) {
			if (n == cap) {
				char *nd = realloc(del, (cap = cap ? 2 * cap : 64) * ksz);

				if (!nd)
					break;
				del = nd;
			}
			memcpy(del + n++ * ksz, next, ksz);
		}
		memcpy(key, next, ksz);
		prev = key;
	}
	for (size_t i = 0; i < n; i++)
		bpf_map_delete_elem(fd, del + i * ksz);
	free(del);
}

static __u32 cidr_key_rules_id(const void *k)
{
	struct sm_cidr_key c;

	memcpy(&c, k, sizeof(c));
	return c.rules_id;
}

static __u32 port_key_rules_id(const void *k)
{
	struct sm_port_key p;

	memcpy(&p, k, sizeof(p));
	return p.rules_id;
}

void sm_rules_delete(struct sockmesh *sm, __u32 rules_id)
{
	_Static_assert(sizeof(struct sm_cidr_key) >= sizeof(struct sm_port_key), "key buffer");
	delete_matching(sm->map_fd[MAP_cidr_map], sizeof(struct sm_cidr_key), rules_id,
			cidr_key_rules_id);
	delete_matching(sm->map_fd[MAP_port_map], sizeof(struct sm_port_key), rules_id,
			port_key_rules_id);
}

