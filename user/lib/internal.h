/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* libsockmesh internals shared by its source files and its unit tests. */
#ifndef SOCKMESH_INTERNAL_H
#define SOCKMESH_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "sockmesh.h"
#include "sockmesh_abi.h"

#define SM_HIDDEN __attribute__((visibility("hidden")))

#ifndef offsetofend
#define offsetofend(T, m) (offsetof(T, m) + sizeof(((T *)0)->m))
#endif

struct sm_cidr {
	__u8 family; /* AF_INET or AF_INET6 */
	__u8 prefix;
	__u8 addr[16]; /* network order, host bits cleared */
};

struct sm_list {
	bool star; /* '*': everything */
	size_t n;
	void *v; /* struct sm_cidr[] or __u16[] */
};

/* A validated policy, ready to be written to the maps. */
struct sm_compiled {
	struct sm_policy pol; /* scope_idx and rules_id left 0 */
	struct sm_list inc_cidrs, exc_cidrs, inc_ports, exc_ports;
	struct sm_list inc_in_ports, exc_in_ports;
	struct sm_list pod_ips; /* struct sm_cidr[], host prefixes; n == 0: discover */
	struct sm_list dns_servers; /* struct sm_cidr[]; n == 0 with SM_POL_DNS: resolv.conf */
};

SM_HIDDEN void sm_set_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the policy schema (schema.c) ---- */
/* A field's name in a message: a marker rendered in the reader's vocabulary
 * (sockmesh_errmsg_as); sockmesh_errfield() reports the first one.
 */
SM_HIDDEN const char *sm_fname(enum sockmesh_field f);
/* Render a message with markers; returns the first field named, or -1. */
SM_HIDDEN int sm_render(const char *msg, enum sockmesh_naming naming, char *buf, size_t len);
/* Parse a PORT or U32 field's text within its range. */
SM_HIDDEN int sm_field_u32(enum sockmesh_field f, const char *text, __u32 *out);
/* A number field's value within its range. */
SM_HIDDEN int sm_field_u32_check(enum sockmesh_field f, __u32 v);
/* Parse a list field's text with the field's own rules ('*', addresses,
 * not empty where that would mean something else); NULL: the empty list.
 */
SM_HIDDEN int sm_field_list_parse(enum sockmesh_field f, const char *text, struct sm_list *out);
/* Validate a list field's text on its own. */
SM_HIDDEN int sm_field_list_check(enum sockmesh_field f, const char *text);
/* Nothing but white space (isspace: the list parsers' notion of empty). */
SM_HIDDEN bool sm_blank(const char *s);
/* Fields only for netns scopes (SOCKMESH_FIELD_NETNS_ONLY) set for another kind: -EINVAL. */
SM_HIDDEN int sm_policy_check_scope(const struct sockmesh_policy *pol,
				    enum sockmesh_scope_kind kind);

SM_HIDDEN int sm_parse_u32(const char *field, const char *s, __u32 max, __u32 *out);
SM_HIDDEN int sm_parse_size(const char *field, const char *s, __u64 min, __u64 max, __u64 *out);
SM_HIDDEN int sm_parse_cidr(const char *field, const char *s, struct sm_cidr *out);
SM_HIDDEN int sm_parse_cidr_list(const char *field, const char *s, bool allow_star,
				 struct sm_list *out);
SM_HIDDEN int sm_parse_port_list(const char *field, const char *s, bool allow_star,
				 struct sm_list *out);
SM_HIDDEN int sm_policy_compile(const struct sockmesh_policy *in, struct sm_compiled *out);
SM_HIDDEN void sm_list_free(struct sm_list *l);
/* The nameserver lines of a resolv.conf, as host CIDRs (appended to out). */
SM_HIDDEN int sm_resolv_conf_servers(const char *path, struct sm_list *out);
SM_HIDDEN void sm_compiled_free(struct sm_compiled *c);
/* The cgroup2 mount point, read from /proc/mounts. */
SM_HIDDEN int sm_cgroup2_root(char *buf, size_t len);
/* An fd of the cgroup2 directory whose id is id (open_by_handle_at), or -errno. */
SM_HIDDEN int sm_cgroup_open_id(__u64 id);
/* opts struct compatibility (libbpf's OPTS_VALID): unknown tail must be 0 */
/* copy a caller's opts struct of size src_sz into a zeroed full-size one */
SM_HIDDEN void sm_opts_copy(void *dst, size_t dst_sz, const void *src, size_t src_sz);
SM_HIDDEN bool sm_opts_valid(const void *opts, size_t known_sz, size_t user_sz);

#endif
