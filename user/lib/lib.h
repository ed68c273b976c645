/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What libsockmesh's own source files share (not its unit tests, not the
 * front-ends): the handle, the pin-name tables generated from the BPF
 * skeleton, and the helpers one seam calls in another.
 *
 *   instance.c  open/create, pins, lock          attach.c  cgroup links
 *   resolve.c   cgroup2 / netns resolution       rules.c   CIDR and port rules
 *   pods.c      pod addresses, sk_lookup, inbound listener
 *   enroll.c    enroll / withdraw / teardown     query.c   scopes, stats, links, policy read-back
 *   probe.c     kernel feature checks            schema.c  the policy schema
 *   policy.c    parsers, policy compile, errors  annotations.c  istio annotations
 */
#ifndef SOCKMESH_LIB_H
#define SOCKMESH_LIB_H

#include <limits.h>
#include <bpf/libbpf.h>

#include "internal.h"
#include "sockmesh.bpf.names.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

/* Map and program ids, in the skeleton's order: MAP_<name>, PROG_<name>. */
#define SM_ID_(n) MAP_##n,
enum sm_map_id { SM_BPF_MAPS(SM_ID_) MAP_COUNT };
#undef SM_ID_
#define SM_ID_(n) PROG_##n,
enum sm_prog_id { SM_BPF_PROGS(SM_ID_) PROG_COUNT };
#undef SM_ID_

/* The read accounting's link (not per cgroup or netns), and which of its
 * two programs this kernel runs (instance.c).
 */
#define SM_READ_ACCT_LINK "link_global_read_acct"
struct sockmesh_bpf;
SM_HIDDEN enum sm_prog_id sm_read_acct_prog(void);
SM_HIDDEN bool sm_fp_seq(void);
SM_HIDDEN bool sm_prog_unpinned(int i);
SM_HIDDEN void sm_kernel_select(struct sockmesh_bpf *skel, struct bpf_program **progs);
/* The embedded object opened (not loaded), its maps and programs in the
 * id tables (either may be NULL); NULL with errno and the error set.
 */
SM_HIDDEN struct sockmesh_bpf *sm_skel_open(struct bpf_map **maps, struct bpf_program **progs);

/* upgrade.c: this build's id (config_map), and whether the pinned maps
 * have the layout this build expects (-EPROTO: run 'sockmesh upgrade').
 */
SM_HIDDEN __u64 sm_build_id(void);
SM_HIDDEN int sm_layout_check(struct sockmesh *sm);

/* pin names: map_<name>, prog_<name> */
SM_HIDDEN extern const char *const sm_map_names[MAP_COUNT];
SM_HIDDEN extern const char *const sm_prog_names[PROG_COUNT];

/* Cgroup hooks: program, attach type, and the name used in link pins. */
struct sm_cgroup_hook {
	enum sm_prog_id prog;
	enum bpf_attach_type type;
	const char *hook;
};
SM_HIDDEN extern const struct sm_cgroup_hook sm_cgroup_hooks[];
SM_HIDDEN extern const size_t sm_n_cgroup_hooks;

struct sockmesh {
	char pin_dir[PATH_MAX];
	int map_fd[MAP_COUNT];
	int prog_fd[PROG_COUNT];
	__u32 max_scopes;
	__u32 scope_map_id; /* which instance this handle opened (see handle_current) */
	__u32 sockops_prog_id; /* and which build's programs (an upgrade replaces them) */
	bool destroyed;
	/* the read accounting's link, held by a handle that uses the fast
	 * path: it stays attached while such a process runs, also after the
	 * instance was removed (fastpath.c)
	 */
	int acct_link_fd;
};

/* <pin_dir>/<printf name> into buf; -ENAMETOOLONG if it does not fit. */
SM_HIDDEN int sm_pin_path(const struct sockmesh *sm, char *buf, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

SM_HIDDEN void sm_scope_key(const struct sockmesh_scope *s, struct sm_scope_key *k);
SM_HIDDEN void sm_handle_close_fds(struct sockmesh *sm);
SM_HIDDEN int sm_unpin_all(struct sockmesh *sm);
SM_HIDDEN int sm_cgroup_id_of(const char *what, const char *path, __u64 *id, int *depth);
SM_HIDDEN int sm_netns_addrs(int nsfd, struct sm_list *out);
SM_HIDDEN int sm_netns_cookie(int nsfd, __u64 *cookie);
SM_HIDDEN int sm_open_netns(const char *name_or_path);
SM_HIDDEN int sm_attach_at_cgroup(struct sockmesh *sm, const char *path, __u64 cgid);
SM_HIDDEN bool sm_cgroup_attached(struct sockmesh *sm, __u64 cgid);
SM_HIDDEN void sm_detach_cgroup(struct sockmesh *sm, __u64 cgid);
SM_HIDDEN void sm_detach_netns(struct sockmesh *sm, __u64 netns);
SM_HIDDEN int sm_pod_setup(struct sockmesh *sm, const struct sockmesh_scope *scope,
			   const struct sm_compiled *c);
SM_HIDDEN void sm_pod_teardown(struct sockmesh *sm, __u64 netns);
SM_HIDDEN void sm_rules_delete(struct sockmesh *sm, __u32 rules_id);
SM_HIDDEN int sm_rules_write(struct sockmesh *sm, __u32 rules_id, const struct sm_compiled *c);
SM_HIDDEN void sm_lock_path(const char *pin_dir, char *path, size_t len);
SM_HIDDEN int sm_lock(const char *pin_dir);
SM_HIDDEN void sm_unlock(int fd);
/* hook.c: a consumer's programs in the data path's tail-call hooks (the
 * tap, flow events)
 */
struct sm_hook_kind {
	const char *what; /* "tap", "flows": messages */
	const char *since; /* the first release with these hooks */
	const char *busy; /* "a tap is already running" */
	const char *msg_array; /* the data path's program arrays' names */
	const char *sockops_array;
	int word_map; /* MAP_data_*: the word that turns the calls on */
};

struct sm_hook {
	const struct sm_hook_kind *kind;
	int msg_calls; /* fds of the data path's arrays (by id) */
	int sockops_calls;
	bool in; /* our programs are in them */
};

SM_HIDDEN extern const struct sm_hook_kind sm_tap_hook; /* tap.c */
SM_HIDDEN int sm_ring_size(__u64 asked, __u64 dflt, __u64 *out);
SM_HIDDEN int sm_prog_array_of(int prog_fd, const char *name, __u32 *map_id);
SM_HIDDEN __u32 sm_map_holder(__u32 map_id);
SM_HIDDEN int sm_hook_find(struct sockmesh *sm, struct sm_hook *h, const struct sm_hook_kind *k);
/* Our programs in, unless another consumer's are there (-EBUSY naming its pid). */
SM_HIDDEN int sm_hook_fill(struct sockmesh *sm, struct sm_hook *h,
			   const int msg_progs[SM_TAP_PATHS], int sockops_prog);
SM_HIDDEN void sm_hook_release(struct sockmesh *sm, struct sm_hook *h);
SM_HIDDEN int sm_hook_running(struct sockmesh *sm, const struct sm_hook_kind *k, __u32 *pid);
/* An extension's skeleton, opened and prepared (its maps reused). */
struct sm_hook_progs {
	struct bpf_object_skeleton *skel;
	struct bpf_map *ring;
	ring_buffer_sample_fn sample;
	void *ctx;
	struct bpf_program *msg[SM_TAP_PATHS]; /* by enum sm_tap_path */
	struct bpf_program *sockops;
};
/* Find the hooks, load the skeleton, map its ring into *rb, put the
 * programs in (sm_hook_fill).
 */
SM_HIDDEN int sm_hook_attach(struct sockmesh *sm, struct sm_hook *h, const struct sm_hook_kind *k,
			     const struct sm_hook_progs *p, struct ring_buffer **rb);
/* Wait up to timeout_ms and hand out what the ring holds: 0, *stop (the
 * callback's non-zero return), or a negative errno.
 */
SM_HIDDEN int sm_ring_poll(struct ring_buffer *rb, int timeout_ms, const int *stop);
/* An extension's options (o: sz bytes, copied from the caller's usz) and
 * its scope's stats slot (SM_TAP_ANY_SCOPE without one).
 */
SM_HIDDEN int sm_ext_opts(const char *what, void *o, size_t sz, const void *uopts, size_t usz,
			  struct sockmesh *sm, const struct sockmesh_scope *scope,
			  __u32 *scope_idx);
/* flows.c: SM_FLOW_H_* the running kernel allows */
SM_HIDDEN __u32 sm_flow_helpers(void);

#endif
