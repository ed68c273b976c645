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
	 * splice; NULL: every global address of the netns at enroll time.
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
	/* Captured connections only ever reach a proxy listener that root or
	 * proxy_uid created. With none (the proxy not listening yet, or only
	 * another user on its port): false (fail closed, the default) refuses
	 * them (connect fails with ECONNREFUSED, an inbound client gets a
	 * reset); true (fail open) lets them go uncaptured, to where they
	 * were going.
	 */
	bool fail_open;
	size_t : 0;
};
#define sockmesh_policy__last_field fail_open

/* Check a policy without touching any state. */
SOCKMESH_API int sockmesh_policy__validate(const struct sockmesh_policy *pol);

/* Enroll a scope (or replace its policy atomically; counters are kept).
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

/* Graceful removal, step one (0.4): scope (NULL: every scope) stops
 * capturing new connections and steering inbound ones at once, while the
 * ones already captured keep working (their proxy still gets the original
 * destination, spliced bytes keep flowing). Returns once every connection
 * captured before the call was taken by its proxy (it asked for the
 * original destination, or closed), 0; or after timeout_ms with
 * -ETIMEDOUT and *left (may be NULL) the number still waiting. The scope
 * stays enrolled, draining, until sockmesh__withdraw() (step two) or a new
 * sockmesh__enroll() (which undoes the drain).
 */
SOCKMESH_API int sockmesh__drain(struct sockmesh *sm, const struct sockmesh_scope *scope,
				 __u32 timeout_ms, __u64 *left);
/* Detach and unpin everything if no scope is enrolled, atomically with
 * respect to other writers (a process that loaded the data path and then
 * failed to enroll uses it to leave nothing behind). 1: unloaded, 0: in use.
 */
SOCKMESH_API int sockmesh__unload_if_unused(struct sockmesh *sm);
/* Remove everything pinned at pin_dir, links first (which detaches them),
 * whatever version of sockmesh made it; for when the pins cannot be opened
 * (a different version's layout) and everything must go anyway.
 */
SOCKMESH_API int sockmesh_purge(const char *pin_dir);
/* Withdraw every scope, detach and unpin everything. */
SOCKMESH_API int sockmesh__destroy(struct sockmesh *sm);

/* Live upgrade or downgrade (0.5): load this build's data path into the
 * instance pinned at pin_dir (NULL: the default) without removing it. Each
 * pinned link gets the new program in place, so no hook is ever empty; the
 * socket maps get the new sk_msg and stream verdict, while the sockets
 * already in them keep the programs they were inserted with. Maps are kept
 * when their layout matches; policy, rules, names and counters are copied
 * into maps of a changed layout; a changed map that holds live
 * connections' state, or another SM_LAYOUT_VERSION, is refused (-EPROTO)
 * before anything changes. 0 also when the instance already runs this
 * build (info->upgraded false). Handles opened before it get -ESTALE from
 * their next mutation and must open again. An interrupted upgrade is
 * finished by running it again. docs/design.md, "Live upgrade".
 */
struct sockmesh_upgrade_info {
	size_t sz; /* sizeof(struct sockmesh_upgrade_info) as the caller knows it */
	bool upgraded; /* false: nothing to do, this build was loaded already */
	bool counters_lost; /* the old counters could not all be carried over */
	__u32 links_updated; /* bpf_links given the new program in place */
	__u32 maps_kept; /* maps reused as they are */
	__u32 maps_migrated; /* maps copied into a new layout */
	__u64 from_build_id; /* the BPF object loaded before (0: before 0.5) */
	__u64 to_build_id; /* this build's */
};
SOCKMESH_API int sockmesh_upgrade(const char *pin_dir, struct sockmesh_upgrade_info *info);

struct sockmesh_scope_info {
	size_t sz; /* sizeof(struct sockmesh_scope_info) as the caller knows it */
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
	bool fail_open; /* since 0.4: policy fail_open */
	bool draining; /* since 0.4: being removed (sockmesh__drain) */
	size_t : 0;
};
#define sockmesh_scope_info__last_field draining

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
/* One sentence saying what counter i counts (Prometheus HELP), NULL past the end. */
SOCKMESH_API const char *sockmesh_stat_help(unsigned int i);

/* ---- the policy schema ------------------------------------------------------
 * Every value a user can give sockmesh (CLI option, CNI config key, istio pod
 * annotation) is a field of this one table: its name in each vocabulary, its
 * type, range, default and help. Front-ends build their option parsers, help
 * texts and docs from it and set values through sockmesh_policy__set() /
 * sockmesh_open_opts__set(); errors carry the field (sockmesh_errfield()) and
 * can be rendered in the caller's vocabulary (sockmesh_errmsg_as()).
 */
enum sockmesh_field {
	/* struct sockmesh_policy */
	SOCKMESH_F_PROXY_PORT,
	SOCKMESH_F_PROXY_UID,
	SOCKMESH_F_PROXY_GID,
	SOCKMESH_F_PROXY_MARK,
	SOCKMESH_F_INCLUDE_OUTBOUND_CIDRS,
	SOCKMESH_F_EXCLUDE_OUTBOUND_CIDRS,
	SOCKMESH_F_INCLUDE_OUTBOUND_PORTS,
	SOCKMESH_F_EXCLUDE_OUTBOUND_PORTS,
	SOCKMESH_F_NO_SPLICE,
	SOCKMESH_F_INBOUND_PORT,
	SOCKMESH_F_INCLUDE_INBOUND_PORTS,
	SOCKMESH_F_EXCLUDE_INBOUND_PORTS,
	SOCKMESH_F_POD_IPS,
	SOCKMESH_F_REDIRECT_DNS,
	SOCKMESH_F_CAPTURE_ALL_DNS,
	SOCKMESH_F_DNS_PORT,
	SOCKMESH_F_DNS_SERVERS,
	/* struct sockmesh_open_opts: table sizes, used when the data path is loaded */
	SOCKMESH_F_MAX_SCOPES,
	SOCKMESH_F_MAX_CONNS,
	SOCKMESH_F_MAX_RULES,
	SOCKMESH_F_SPLICE_BUDGET,
	/* where: the scope, the attach point, the instance */
	SOCKMESH_F_CGROUP,
	SOCKMESH_F_NETNS,
	SOCKMESH_F_ATTACH_CGROUP,
	SOCKMESH_F_PIN_DIR,
	/* struct sockmesh_policy, added in 0.4 (ids are ABI: new ones go last) */
	SOCKMESH_F_FAIL_OPEN,
	SOCKMESH_F__COUNT
};

enum sockmesh_field_kind {
	SOCKMESH_FK_POLICY = 1, /* a member of struct sockmesh_policy */
	SOCKMESH_FK_LOAD = 2, /* a member of struct sockmesh_open_opts (first load only) */
	SOCKMESH_FK_WHERE = 3, /* which scope, attach cgroup or pin directory */
};

enum sockmesh_field_type {
	SOCKMESH_FT_FLAG = 1, /* on/off: "true"/"false" (NULL: true) */
	SOCKMESH_FT_PORT, /* 1-65535 */
	SOCKMESH_FT_U32, /* decimal, min..max */
	SOCKMESH_FT_SIZE, /* bytes, or a number with K, M, G, KiB, MiB, GiB */
	SOCKMESH_FT_CIDR_LIST, /* comma list of IPv4/IPv6 CIDRs ('*': all, include lists) */
	SOCKMESH_FT_PORT_LIST, /* comma list of ports ('*': all, include lists) */
	SOCKMESH_FT_ADDR_LIST, /* comma list of addresses */
	SOCKMESH_FT_PATH, /* a path or name */
};

enum sockmesh_field_flags {
	SOCKMESH_FIELD_STAR = 1u << 0, /* '*' means everything */
	SOCKMESH_FIELD_NETNS_ONLY = 1u << 1, /* only means something for a netns scope */
	SOCKMESH_FIELD_NEEDS_DNS = 1u << 2, /* only with redirect_dns */
	SOCKMESH_FIELD_CNI_NEGATED = 1u << 3, /* the CNI key is the opposite flag ("splice") */
	SOCKMESH_FIELD_CNI_DERIVED = 1u
				     << 4, /* the CNI plugin fills it (pod_ips from prevResult) */
};

struct sockmesh_field_desc {
	enum sockmesh_field id;
	enum sockmesh_field_kind kind;
	enum sockmesh_field_type type;
	__u32 flags; /* enum sockmesh_field_flags */
	const char *name; /* struct member and canonical name: "proxy_port" */
	const char *option; /* CLI long option without "--": "proxy-port" */
	char short_opt; /* istio-iptables' short flag for it, or 0 */
	const char *arg; /* CLI argument name ("PORT"), NULL for flags */
	const char *cni_key; /* CNI config key ("proxyPort"), NULL: none */
	const char *annotation; /* istio pod annotation key, NULL: none */
	const char *help; /* one line, without the default */
	const char *default_text; /* "15001", "*", "8MiB"; NULL: none (unset) */
	__u64 min, max; /* range of PORT, U32 and SIZE fields */
};

/* The field with this id, NULL past the end (iterate from 0). */
SOCKMESH_API const struct sockmesh_field_desc *sockmesh_field(unsigned int id);
/* Look a field up by its CLI option ("proxy-port"), CNI key ("proxyPort"),
 * annotation key or canonical name; NULL and errno ENOENT if none.
 */
SOCKMESH_API const struct sockmesh_field_desc *sockmesh_field_lookup(const char *name);

/* Set one policy field from text, validating it as the field's type says
 * (ranges, list syntax; cross-field rules are checked by
 * sockmesh_policy__validate()). List and path values are not copied: text
 * must outlive pol's use. A flag's text is NULL or "true"/"false". Returns
 * -EINVAL/-ERANGE naming the field; pol is unchanged then.
 */
SOCKMESH_API int sockmesh_policy__set(struct sockmesh_policy *pol, enum sockmesh_field f,
				      const char *text);
/* The same for the load options (SOCKMESH_FK_LOAD fields). */
SOCKMESH_API int sockmesh_open_opts__set(struct sockmesh_open_opts *opts, enum sockmesh_field f,
					 const char *text);

/* Vocabularies to render error messages in. */
enum sockmesh_naming {
	SOCKMESH_NAMES_FIELD = 0, /* "proxy_port" (what sockmesh_errmsg() says) */
	SOCKMESH_NAMES_CLI = 1, /* "--proxy-port" */
	SOCKMESH_NAMES_CNI = 2, /* "proxyPort" (fields without a key: their canonical name) */
	SOCKMESH_NAMES_ANNOTATION = 3, /* the istio annotation key, else the canonical name */
};

/* The field the last failure on this thread is about, or -1. */
SOCKMESH_API int sockmesh_errfield(void);
/* The last failure's description with every field named in the given
 * vocabulary, written to buf (truncated to len); returns buf.
 */
SOCKMESH_API const char *sockmesh_errmsg_as(enum sockmesh_naming naming, char *buf, size_t len);

/* ---- istio pod annotations ----------------------------------------------
 * The traffic.sidecar.istio.io/... keys of the schema's fields (their
 * .annotation) plus status.sidecar.istio.io/port, whose port istio never
 * captures inbound. Unknown keys are ignored; a bad value of a known key is
 * an error naming the key and the value.
 */
struct sockmesh_annotations;
/* Parse a JSON object of annotations (string values). NULL + errno. */
SOCKMESH_API struct sockmesh_annotations *sockmesh_annotations__parse(const char *json);
/* Overlay the annotations on pol, except the fields in keep (a mask of
 * 1ull << enum sockmesh_field the caller set explicitly: they win). The
 * status port is appended to exclude_inbound_ports whatever set it. The
 * strings pol then points at belong to a: free a after pol's last use.
 */
SOCKMESH_API int sockmesh_annotations__apply(struct sockmesh_annotations *a,
					     struct sockmesh_policy *pol, __u64 keep);
/* The value of one annotation key that was given and valid, or NULL. */
SOCKMESH_API const char *sockmesh_annotations__get(const struct sockmesh_annotations *a,
						   const char *key);
SOCKMESH_API void sockmesh_annotations__free(struct sockmesh_annotations *a);

#define SOCKMESH_ANNOTATION_STATUS_PORT "status.sidecar.istio.io/port"

/* ---- what the tools need ------------------------------------------------- */

/* The cgroup2 mount point (from /proc/mounts). */
SOCKMESH_API int sockmesh_cgroup2_root(char *buf, size_t len);

/* One kernel feature check of sockmesh_probe_kernel(). */
struct sockmesh_check {
	const char *name; /* "sk_msg program", "load data path", ... */
	bool ok;
	const char *detail; /* what was found, or what to do about it */
};
typedef void (*sockmesh_check_fn)(const struct sockmesh_check *c, void *ctx);
/* Check what sockmesh needs from this kernel (privileges, cgroup2, bpffs,
 * program and map types, and whether the verifier takes the data path);
 * fn is called once per check. Returns the number of failed checks.
 */
SOCKMESH_API int sockmesh_probe_kernel(sockmesh_check_fn fn, void *ctx);

/* Does a kernel have the sockmap fixes the data path depends on (today:
 * CVE-2025-38165, a panic on large ingress redirects; fixed in 6.1.142,
 * 6.6.94, 6.12.34, 6.15.3 and 6.16)? release and version are uname's
 * (Debian's stable version is read from version); NULL for the running
 * kernel. detail (may be NULL) gets one sentence saying what was found and
 * what to do. Returns a SOCKMESH_KERNEL_* value, or -errno.
 */
enum {
	SOCKMESH_KERNEL_OK = 0, /* has every fix */
	SOCKMESH_KERNEL_AFFECTED = 1, /* known to lack one */
	SOCKMESH_KERNEL_UNKNOWN = 2, /* a vendor kernel, or a release not understood */
};
SOCKMESH_API int sockmesh_kernel_sockmap_fixes(const char *release, const char *version,
					       char *detail, size_t len);

/* One attachment of an instance (a pinned cgroup or netns link, or the
 * sk_msg program on the splice map).
 */
struct sockmesh_link_info {
	size_t sz;
	char hook[32]; /* "connect4", "sockops", "sk_lookup", "sk_msg", "read_acct", ... */
	char prog[32]; /* program name */
	__u32 prog_id;
	__u32 link_id; /* 0: attached without a link (sk_msg) */
	__u64 target_id; /* cgroup id, netns cookie, the splice map's id, 0 (global) */
	__u32 attach_type; /* enum bpf_attach_type */
	size_t : 0;
};
#define sockmesh_link_info__last_field attach_type
typedef int (*sockmesh_link_fn)(const struct sockmesh_link_info *l, void *ctx);
/* Call fn for every attachment of the instance; a non-zero return stops
 * the walk and is returned.
 */
SOCKMESH_API int sockmesh__for_each_link(struct sockmesh *sm, sockmesh_link_fn fn, void *ctx);

/* Read back one field of an enrolled scope's policy as text, normalised as
 * the library stores it (lists sorted, "*" for everything, "" for none;
 * flags "true"/"false"). SOCKMESH_FK_POLICY fields only.
 */
SOCKMESH_API int sockmesh__policy_get(struct sockmesh *sm, const struct sockmesh_scope *scope,
				      enum sockmesh_field f, char *buf, size_t len);
/* Does the scope enforce exactly pol? 1: yes; 0: no, and sockmesh_errfield()
 * / sockmesh_errmsg() name the first field that differs (enrolled vs pol);
 * negative errno on failure (-ENOENT: not enrolled).
 */
SOCKMESH_API int sockmesh__policy_matches(struct sockmesh *sm, const struct sockmesh_scope *scope,
					  const struct sockmesh_policy *pol);
/* Every field in which the scope's enforced policy differs from pol, with
 * both values as sockmesh__policy_get renders them: fn is called once per
 * differing field, in schema order (a non-zero return stops the walk and is
 * returned). Fields discovered at enrollment (pod_ips, dns_servers) are
 * compared only when pol gives them; the DNS fields only where both sides
 * capture DNS; inbound fields only for netns scopes. Returns the number of
 * differing fields, or a negative errno.
 */
typedef int (*sockmesh_policy_diff_fn)(enum sockmesh_field f, const char *enrolled,
				       const char *want, void *ctx);
SOCKMESH_API int sockmesh__policy_diff(struct sockmesh *sm, const struct sockmesh_scope *scope,
				       const struct sockmesh_policy *pol,
				       sockmesh_policy_diff_fn fn, void *ctx);

/* For sidecars: the original destination of a connection the proxy accepted
 * (what getsockopt(SO_ORIGINAL_DST) answers). addr must hold a
 * sockaddr_in6; *len is in/out. IPv4 results are sockaddr_in.
 */
SOCKMESH_API int sockmesh_original_dst(int fd, struct sockaddr *addr, socklen_t *len);

/* ---- kernel fast path (for sidecars) ----------------------------------------
 * A sidecar that accepted a captured connection (down_fd: the app's
 * connection to it) and connected its upstream socket (up_fd) hands both
 * to the kernel once it has made its L4 decision: from then on the bytes
 * flow between the app and the upstream peer without the sidecar reading
 * or writing them.
 *
 * Before the call the sidecar must have written everything it read from
 * either socket to the other (a sidecar that sniffed the first bytes may
 * switch after relaying them; bytes still queued in the kernel are taken
 * care of). On failure a negative errno is returned, nothing changed, and
 * the sidecar carries on copying as before (-EOPNOTSUPP: a shape or
 * kernel the fast path does not serve, -EALREADY: already handed over).
 *
 * On success the sidecar keeps owning both sockets: it waits for the
 * events sockmesh_fastpath__pump() asks for and calls it on each (and when
 * its timeout expires). The pump is the slow path: it relays what the
 * kernel handed back (bytes already queued at the switch, or held while a
 * reader was a budget behind) and forwards each half-close once every byte
 * before it was delivered. Only the pump reads or writes the sockets from
 * then on.
 *
 * Served: a captured outbound connection (the app's socket spliced to
 * down_fd) whose upstream is a TCP connection leaving the pod; an inbound
 * one (down_fd accepted from a remote client, up_fd the sidecar's
 * connection to the app in its pod, which sockmesh splices); and pod to pod
 * on one node (both sockets spliced: to the app's, and to the other pod's
 * sidecar), where either sidecar or both may switch.
 */
struct sockmesh_fastpath;

/* Open what the fast path needs (the read accounting's link, whose pin only
 * root may open) and keep it with sm: call it once before the process drops
 * privileges; sockmesh__fastpath() calls it too. 0 or a negative errno.
 */
SOCKMESH_API int sockmesh__fastpath_init(struct sockmesh *sm);

struct sockmesh_fastpath_opts {
	size_t sz;
	size_t : 0;
};
#define sockmesh_fastpath_opts__last_field sz

SOCKMESH_API int sockmesh__fastpath(struct sockmesh *sm, int down_fd, int up_fd,
				    const struct sockmesh_fastpath_opts *opts,
				    struct sockmesh_fastpath **fp);

/* What the pump waits for: poll(2) events on each socket and a timeout in
 * milliseconds (-1: none).
 */
struct sockmesh_fastpath_wait {
	short down_events;
	short up_events;
	int timeout_ms;
};

/* Move what the kernel handed back and forward half-closes. 0: running,
 * wait as *w says; 1: both directions ended (EOF each way, every byte
 * delivered): close the sockets; negative errno: a socket failed (e.g.
 * -ECONNRESET, -EPIPE): close both (the other peer then sees the close).
 */
SOCKMESH_API int sockmesh_fastpath__pump(struct sockmesh_fastpath *fp,
					 struct sockmesh_fastpath_wait *w);

enum sockmesh_fastpath_dir {
	SOCKMESH_FP_UP = 0, /* downstream -> upstream (outbound: app -> server) */
	SOCKMESH_FP_DOWN = 1, /* upstream -> downstream (inbound: app -> client) */
};

struct sockmesh_fastpath_info {
	size_t sz;
	__u64 fast_bytes[2]; /* forwarded by the kernel, per direction */
	__u64 relayed_bytes[2]; /* relayed by the pump */
	bool fast[2]; /* the direction is on the fast path right now */
	size_t : 0;
};
#define sockmesh_fastpath_info__last_field fast

SOCKMESH_API int sockmesh_fastpath__info(const struct sockmesh_fastpath *fp,
					 struct sockmesh_fastpath_info *info);

/* Remove the connection's kernel state and free fp; the sockets stay open
 * (close them after). Bytes the kernel still held for the pump are lost:
 * call it once the pump returned 1 or an error, or to abort.
 */
SOCKMESH_API void sockmesh_fastpath__free(struct sockmesh_fastpath *fp);

/* ---- the tap (0.7) ---------------------------------------------------------
 * Copies of what spliced sockets send (the bytes tcpdump cannot see): a tap
 * loads bpf/tap.bpf.c, with its own ring buffer, into the data path's tap
 * program arrays, which only this process references. Every send of a spliced
 * socket in the scope, whichever path it then took (spliced, budget
 * fallback, kernel fast path), and each connection's open, FIN and reset
 * reach fn as struct sm_tap_rec (headers/sockmesh_abi.h) and its payload
 * (a sender redirected to the egress of a fast-path upstream socket gets
 * one SM_TAP_LOST record, then no more: docs/design.md).
 * Records the ring cannot hold are counted (sockmesh_tap__stats) and show
 * as gaps in the offsets: the data path never waits for the tap. With no
 * tap running the data path reads one word per send and does nothing else.
 * One tap per instance at a time (-EBUSY); it ends with sockmesh_tap__free
 * or with its process, however that ends. docs/design.md, "The tap".
 */
struct sockmesh_tap;

struct sockmesh_tap_opts {
	size_t sz;
	const struct sockmesh_scope *scope; /* NULL: every enrolled scope */
	__u16 port; /* 0: any; else the client's or the server's (original destination) port */
	__u32 snaplen; /* payload bytes kept of each send; 0: all */
	__u64 ring_size; /* bytes: a power of two, 4 KiB .. 1 GiB; 0: 16 MiB */
	size_t : 0;
};
#define sockmesh_tap_opts__last_field ring_size
#define SOCKMESH_TAP_RING_DEFAULT (16ull << 20)

struct sm_tap_rec;
/* data: rec->caplen payload bytes. A non-zero return stops the poll and is
 * returned by it.
 */
typedef int (*sockmesh_tap_fn)(const struct sm_tap_rec *rec, const void *data, void *ctx);

SOCKMESH_API int sockmesh__tap(struct sockmesh *sm, const struct sockmesh_tap_opts *opts,
			       sockmesh_tap_fn fn, void *ctx, struct sockmesh_tap **out);
/* An fd that polls readable when records wait (epoll). */
SOCKMESH_API int sockmesh_tap__fd(const struct sockmesh_tap *t);
/* Wait up to timeout_ms (0: no wait) and hand every waiting record to fn;
 * the number handed over, or a negative errno (-EINTR on a signal). The
 * kernel wakes the tap only once a quarter of its ring is waiting (a
 * wakeup per send would cost every send a context switch), so call it
 * with a finite timeout (sockmesh tap: 100 ms) to see records promptly.
 */
SOCKMESH_API int sockmesh_tap__poll(struct sockmesh_tap *t, int timeout_ms);

struct sockmesh_tap_stats {
	size_t sz;
	__u64 records; /* handed to fn */
	__u64 lost_records; /* the ring was full (or the CPU's copy busy) */
	__u64 lost_bytes; /* payload bytes in those, and past a send's first 1 MiB */
	size_t : 0;
};
#define sockmesh_tap_stats__last_field lost_bytes
SOCKMESH_API int sockmesh_tap__stats(const struct sockmesh_tap *t, struct sockmesh_tap_stats *st);
/* Detach and free (the data path's hooks are empty again). */
SOCKMESH_API void sockmesh_tap__free(struct sockmesh_tap *t);

/* The tap attached to this instance, if any: 1 and its process id (0 if
 * not found in /proc), 0 when none, or a negative errno.
 */
SOCKMESH_API int sockmesh__tap_running(struct sockmesh *sm, __u32 *pid);

/* ---- flow events (0.8) -----------------------------------------------------
 * One record per captured connection (struct sm_flow, headers/sockmesh_abi.h)
 * at its open (SM_FLOW_OPEN), every interval while it is open
 * (SM_FLOW_UPDATE) and at its close (SM_FLOW_CLOSE): endpoints with the
 * original destination, direction, process, scope, bytes each way by the
 * path they took, and at close TCP's smoothed RTT and retransmits. A flow
 * consumer loads bpf/flows.bpf.c into the data path's flow program arrays,
 * which only its process references; connections opened while it runs are
 * recorded. Bytes are counted per send for spliced connections (UPDATE
 * records have them so far); a connection that never entered the splice
 * has TCP's counters at its close (its UPDATE records say 0). One consumer
 * per instance at a time (-EBUSY); it ends with sockmesh_flows__free or
 * with its process. docs/design.md, "Flow events".
 */
struct sockmesh_flows;

struct sockmesh_flows_opts {
	size_t sz;
	const struct sockmesh_scope *scope; /* NULL: every enrolled scope */
	__u32 interval_s; /* UPDATE records every so many seconds; 0: 10 */
	__u32 max_flows; /* connections open at once it can follow; 0: 65536 */
	__u64 ring_size; /* bytes: a power of two, 4 KiB .. 1 GiB; 0: 1 MiB */
	size_t : 0;
};
#define sockmesh_flows_opts__last_field ring_size
#define SOCKMESH_FLOWS_INTERVAL_DEFAULT 10
#define SOCKMESH_FLOWS_MAX_DEFAULT 65536
#define SOCKMESH_FLOWS_RING_DEFAULT (1ull << 20)

/* What a record does not say itself, resolved by the library: valid
 * during the call only.
 */
struct sockmesh_flow_names {
	const char *scope; /* "cgroup:PATH" or "netns:NAME"; NULL: withdrawn meanwhile */
	const char *pod_namespace; /* "" if none */
	const char *pod_name; /* "" if none */
	const char *comm; /* the process's command; NULL: unknown (no pid, or gone) */
};

struct sm_flow;
/* A non-zero return stops the poll and is returned by it. */
typedef int (*sockmesh_flows_fn)(const struct sm_flow *flow,
				 const struct sockmesh_flow_names *names, void *ctx);

SOCKMESH_API int sockmesh__flows(struct sockmesh *sm, const struct sockmesh_flows_opts *opts,
				 sockmesh_flows_fn fn, void *ctx, struct sockmesh_flows **out);
/* An fd that polls readable when records wait (epoll). */
SOCKMESH_API int sockmesh_flows__fd(const struct sockmesh_flows *f);
/* Wait up to timeout_ms, hand every waiting record to fn, and the UPDATE
 * records of open connections once an interval has passed: the number
 * handed over, or a negative errno. Call it at least every 100 ms to see
 * records promptly (the kernel wakes it only once its ring fills up).
 */
SOCKMESH_API int sockmesh_flows__poll(struct sockmesh_flows *f, int timeout_ms);

struct sockmesh_flows_stats {
	size_t sz;
	__u64 records; /* handed to fn */
	__u64 lost_records; /* open or close records the ring could not take */
	__u64 lost_flows; /* connections not followed: max_flows were open */
	__u64 open; /* connections open now */
	size_t : 0;
};
#define sockmesh_flows_stats__last_field open
SOCKMESH_API int sockmesh_flows__stats(const struct sockmesh_flows *f,
				       struct sockmesh_flows_stats *st);
/* Detach and free (the data path's hooks are empty again). */
SOCKMESH_API void sockmesh_flows__free(struct sockmesh_flows *f);
/* The flow consumer of this instance, if any: 1 and its process id (0 if
 * not found in /proc), 0 when none, or a negative errno.
 */
SOCKMESH_API int sockmesh__flows_running(struct sockmesh *sm, __u32 *pid);

/* Description of the last failure on this thread (never NULL). */
SOCKMESH_API const char *sockmesh_errmsg(void);

#ifdef __cplusplus
}
#endif

#endif /* SOCKMESH_H */
