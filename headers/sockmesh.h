/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * libsockmesh: the one place that knows sockmesh's BPF objects.
 *
 * An instance is one bpffs pin directory holding sockmesh's maps, programs
 * and cgroup links. The data path keeps running after the process that set
 * it up exits; any later process re-opens the same state through the pins.
 *
 * Conventions (as libbpf): int functions return 0 or a negative errno;
 * pointer functions return NULL and set errno. Options structs start with
 * .sz (use the _OPTS macros) so they can grow without breaking callers.
 * After a failure, sockmesh_errmsg() describes it and names the bad value.
 * Mutations return -ESTALE when another process unloaded the instance since
 * the handle was opened: close it and open again.
 */
#ifndef SOCKMESH_H
#define SOCKMESH_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SOCKMESH_API __attribute__((visibility("default")))

#define SOCKMESH_DEFAULT_PIN_DIR "/sys/fs/bpf/sockmesh"

struct sockmesh;

struct sockmesh_open_opts {
	size_t sz;
	/* bpffs directory of this instance; default SOCKMESH_DEFAULT_PIN_DIR */
	const char *pin_dir;
	/* load and pin the data path if the directory holds none yet */
	bool create;
	/* table sizes, used only when creating; 0 keeps the default */
	__u32 max_scopes;
	__u32 max_conns;
	__u32 max_splice_socks;
	__u32 max_rules;
	__u32 max_pending;
	/* unread bytes a spliced socket may queue at its peer before it falls
	 * back to the TCP stack (sk_msg redirects have no backpressure);
	 * 0 keeps the default (8 MiB); else 256 KiB..1 GiB
	 */
	__u64 splice_budget;
	size_t : 0;
};
#define sockmesh_open_opts__last_field splice_budget

#define SOCKMESH_OPTS(TYPE, NAME, ...)                                   \
	struct TYPE NAME = ({                                            \
		memset(&NAME, 0, sizeof(struct TYPE));                   \
		(struct TYPE){ .sz = sizeof(struct TYPE), __VA_ARGS__ }; \
	})

/* Open the instance at opts->pin_dir; with opts->create, load and pin it
 * first if needed. NULL + errno (ENOENT: nothing pinned and !create).
 */
SOCKMESH_API struct sockmesh *sockmesh__open(const struct sockmesh_open_opts *opts);
SOCKMESH_API void sockmesh__close(struct sockmesh *sm);
SOCKMESH_API const char *sockmesh__pin_dir(const struct sockmesh *sm);

/* Is anything pinned at pin_dir (NULL: default)? */
SOCKMESH_API bool sockmesh__exists(const char *pin_dir);

enum sockmesh_scope_kind {
	SOCKMESH_SCOPE_CGROUP = 1, /* a cgroup v2 directory: bare-host service */
	SOCKMESH_SCOPE_NETNS = 2, /* a network namespace: a pod */
};

struct sockmesh_scope {
	enum sockmesh_scope_kind kind;
	__u64 id; /* cgroup id, or netns cookie */
	char name[256]; /* cgroup path or netns name/path, for display */
};

/* Resolve a cgroup v2 directory (must be on the cgroup2 mount). */
SOCKMESH_API int sockmesh_scope_from_cgroup(const char *path, struct sockmesh_scope *out);
/* Resolve a netns: a name under /run/netns, or a path such as /proc/PID/ns/net. */
SOCKMESH_API int sockmesh_scope_from_netns(const char *name_or_path, struct sockmesh_scope *out);

/* Capture policy of a scope. Lists are istio-style comma lists; NULL or ""
 * is empty, "*" (include lists only) means everything.
 */
struct sockmesh_policy {
	size_t sz;
	__u16 proxy_port; /* 0: 15001 */
	bool has_proxy_uid; /* false: 1337 */
	__u32 proxy_uid;
	bool has_proxy_gid;
	__u32 proxy_gid;
	bool has_proxy_mark;
	__u32 proxy_mark;
	const char *include_outbound_cidrs; /* NULL: "*" */
	const char *exclude_outbound_cidrs;
	const char *include_outbound_ports; /* NULL: "*" */
	const char *exclude_outbound_ports;
	bool no_splice;
	/* Inbound capture (netns scopes): TCP connects from outside the pod to
	 * an included port are steered (sk_lookup, no NAT) to the proxy's
	 * listener on inbound_port, registered when the proxy calls listen().
	 * The proxy's own ports are never steered.
	 */
	__u16 inbound_port; /* 0: 15006 */
	const char *include_inbound_ports; /* NULL: "*" (all); "": none */
	const char *exclude_inbound_ports;
	/* The pod's addresses (comma list) for inbound steering and cross-pod
	 * splice; NULL: every global address of the netns at enrol time.
	 */
	const char *pod_ips;
	/* DNS capture (istio --redirect-dns / --capture-all-dns): UDP and TCP
	 * queries to port 53 go to the proxy's dns_port; replies look like they
	 * came from the server the app asked. Only the resolvers in dns_servers
	 * (NULL: the scope's resolv.conf) unless capture_all_dns.
	 */
	bool redirect_dns;
	bool capture_all_dns;
	__u16 dns_port; /* 0: 15053 */
	const char *dns_servers;
	size_t : 0;
};
#define sockmesh_policy__last_field dns_servers

/* Check a policy without touching any state. */
SOCKMESH_API int sockmesh_policy__validate(const struct sockmesh_policy *pol);

/* Enrol a scope (or replace its policy atomically; counters are kept).
 * attach_cgroup: where the programs attach. For a cgroup scope it must be
 * NULL or the scope's own path; for a netns scope NULL means the cgroup2
 * root, as a node daemon does. Attachments are bpf_links (multi-attach):
 * other programs on the same cgroup keep running.
 */
SOCKMESH_API int sockmesh__enroll(struct sockmesh *sm, const struct sockmesh_scope *scope,
				  const char *attach_cgroup, const struct sockmesh_policy *pol);
/* Register fd (a listening TCP socket in the scope's netns) as the scope's
 * inbound listener, for a proxy that was listening before its pod was
 * enrolled; later listen() calls on the inbound port register themselves.
 */
SOCKMESH_API int sockmesh__register_inbound_listener(struct sockmesh *sm,
						     const struct sockmesh_scope *scope, int fd);

/* Withdraw a scope (-ENOENT if not enrolled). The last one out detaches and
 * unpins everything: the handle is then only good for sockmesh__close().
 */
SOCKMESH_API int sockmesh__withdraw(struct sockmesh *sm, const struct sockmesh_scope *scope);
/* Detach and unpin everything if no scope is enrolled, atomically with
 * respect to other writers (a process that loaded the data path and then
 * failed to enrol uses it to leave nothing behind). 1: unloaded, 0: in use.
 */
SOCKMESH_API int sockmesh__unload_if_unused(struct sockmesh *sm);
/* Remove everything pinned at pin_dir, links first (which detaches them),
 * whatever version of sockmesh made it; for when the pins cannot be opened
 * (a different version's layout) and everything must go anyway.
 */
SOCKMESH_API int sockmesh_purge(const char *pin_dir);
/* Withdraw every scope, detach and unpin everything. */
SOCKMESH_API int sockmesh__destroy(struct sockmesh *sm);

struct sockmesh_scope_info {
	struct sockmesh_scope scope;
	__u32 scope_idx;
	__u16 proxy_port;
	__u32 proxy_uid;
	__s64 proxy_gid; /* -1: none */
	__s64 proxy_mark; /* -1: none */
	bool splice;
	__u64 attach_cgroup_id;
	__u16 inbound_port; /* 0: no inbound capture */
	__u16 dns_port; /* 0: no DNS capture */
	char pod_namespace[64]; /* labels set by sockmesh__set_scope_labels() */
	char pod_name[256];
	char container_id[128];
};

/* Attach Kubernetes labels to an enrolled scope (for status and metrics);
 * NULL leaves a label as it is. Names longer than Kubernetes allows: -EINVAL.
 */
SOCKMESH_API int sockmesh__set_scope_labels(struct sockmesh *sm, const struct sockmesh_scope *scope,
					    const char *pod_namespace, const char *pod_name,
					    const char *container_id);

/* Iterate enrolled scopes: prev NULL for the first; -ENOENT after the last. */
SOCKMESH_API int sockmesh__next_scope(struct sockmesh *sm, const struct sockmesh_scope *prev,
				      struct sockmesh_scope_info *out);
/* Look up one enrolled scope (-ENOENT if not enrolled). */
SOCKMESH_API int sockmesh__scope_info(struct sockmesh *sm, const struct sockmesh_scope *scope,
				      struct sockmesh_scope_info *out);

#define SOCKMESH_STATS_MAX 64
struct sockmesh_stats {
	__u32 count; /* valid entries in v[] */
	__u64 v[SOCKMESH_STATS_MAX];
};

/* Counters of a scope, or the scope-less (global) ones with scope NULL. */
SOCKMESH_API int sockmesh__stats(struct sockmesh *sm, const struct sockmesh_scope *scope,
				 struct sockmesh_stats *out);
/* Name of counter i ("captured", "bypass_proxy_uid", ...), NULL past the end. */
SOCKMESH_API const char *sockmesh_stat_name(unsigned int i);

/* For sidecars: the original destination of a connection the proxy accepted
 * (what getsockopt(SO_ORIGINAL_DST) answers). addr must hold a
 * sockaddr_in6; *len is in/out. IPv4 results are sockaddr_in.
 */
SOCKMESH_API int sockmesh_original_dst(int fd, struct sockaddr *addr, socklen_t *len);

/* Description of the last failure on this thread (never NULL). */
SOCKMESH_API const char *sockmesh_errmsg(void);

#ifdef __cplusplus
}
#endif

#endif /* SOCKMESH_H */
