// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmesh: the bare-host CLI. Thin over libsockmesh: parse, call, print.
 * Exit codes: 0 ok, 1 failed, 2 bad usage or bad value (nothing changed).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include <bpf/libbpf.h>
#include <json-c/json.h>

#include "internal.h"
#include "sockmesh.bpf.skel.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2

/* sockmeshd and the CNI plugin (user/daemon, deploy/) */
#define SOCKMESHD_STATE_FILE "/run/sockmesh/sockmeshd.json"
#define CNI_CONF_DIR_DEFAULT "/etc/cni/net.d"
#define CNI_BIN_DIR_DEFAULT "/opt/cni/bin"
#define CNI_PLUGIN_TYPE "sockmesh-cni"

static bool json_mode;
static bool verbose;
static const char *pin_dir = SOCKMESH_DEFAULT_PIN_DIR;

/* ---- output -------------------------------------------------------------- */

static int fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Report an error: stderr always, {"error": ...} on stdout with -j. */
static int fail(int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "sockmesh: %s\n", msg);
	if (json_mode) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "error", json_object_new_string(msg));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	}
	return code;
}

/* Library errors: -EINVAL/-ERANGE mean the input was bad (exit 2). The
 * library names policy fields as in struct sockmesh_policy; say the option
 * the user typed instead.
 */
static int fail_lib(int err, const char *what)
{
	/* Fields with an underscore only ever name a policy field: say the
	 * option wherever they appear; the plain words only as the prefix.
	 */
	static const char *const fields[][2] = {
		{ "include_outbound_cidrs", "--include-outbound-cidrs" },
		{ "exclude_outbound_cidrs", "--exclude-outbound-cidrs" },
		{ "include_outbound_ports", "--include-outbound-ports" },
		{ "exclude_outbound_ports", "--exclude-outbound-ports" },
		{ "include_inbound_ports", "--include-inbound-ports" },
		{ "exclude_inbound_ports", "--exclude-inbound-ports" },
		{ "attach_cgroup", "--attach-cgroup" },
		{ "pod_ips", "--pod-ips" },
		{ "dns_servers", "--dns-servers" },
		{ "capture_all_dns", "--capture-all-dns" },
		{ "redirect_dns", "--redirect-dns" },
		{ "dns_port", "--dns-port" },
		{ "cgroup:", "--cgroup:" },
		{ "netns:", "--netns:" },
		{ "pin dir:", "--pin-dir:" },
	};
	const char *msg = sockmesh_errmsg();
	int code = err == -EINVAL || err == -ERANGE ? EXIT_USAGE : EXIT_FAIL;
	char out[1024];
	size_t o = 0;

	for (const char *p = msg; *p && o + 64 < sizeof(out);) {
		size_t i, n = 0;

		for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
			bool prefix_only = !strchr(fields[i][0], '_');

			n = strlen(fields[i][0]);
			if ((!prefix_only || p == msg) && strncmp(p, fields[i][0], n) == 0)
				break;
		}
		if (i < sizeof(fields) / sizeof(fields[0])) {
			o += (size_t)snprintf(out + o, sizeof(out) - o, "%s", fields[i][1]);
			p += n;
		} else {
			out[o++] = *p++;
		}
	}
	out[o < sizeof(out) ? o : sizeof(out) - 1] = '\0';
	return fail(code, "%s: %s", what, out);
}

static void print_json(json_object *o)
{
	printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								 JSON_C_TO_STRING_SPACED));
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG && !verbose)
		return 0;
	if (level == LIBBPF_INFO && !verbose)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

/* ---- option tables ------------------------------------------------------- */

/* One table per command drives both getopt_long and the help text. */
struct opt_def {
	const char *name;
	const char *arg; /* NULL: flag */
	const char *help;
	char istio; /* istio-iptables' short flag for the same thing, or 0 */
};

enum {
	O_CGROUP,
	O_NETNS,
	O_ATTACH_CGROUP,
	O_ALL,
	O_PROXY_PORT,
	O_PROXY_UID,
	O_PROXY_GID,
	O_PROXY_MARK,
	O_INC_CIDRS,
	O_EXC_CIDRS,
	O_INC_PORTS,
	O_EXC_PORTS,
	O_NO_SPLICE,
	O_INBOUND_PORT,
	O_INC_IN_PORTS,
	O_EXC_IN_PORTS,
	O_POD_IPS,
	O_ANNOTATIONS,
	O_REDIRECT_DNS,
	O_CAPTURE_ALL_DNS,
	O_DNS_PORT,
	O_DNS_SERVERS,
	O_MAX_SCOPES,
	O_MAX_CONNS,
	O_MAX_RULES,
	O_SPLICE_BUDGET,
	O_STATE_FILE,
	O_CNI_CONF_DIR,
	O_CNI_BIN_DIR,
	O_HELP,
	O_COUNT
};

static const struct opt_def opt_defs[O_COUNT] = {
	[O_CGROUP] = { "cgroup", "PATH", "a cgroup v2 directory (bare-host scope)" },
	[O_NETNS] = { "netns", "NAME|PATH",
		      "a network namespace (pod scope): /run/netns name or path" },
	[O_ATTACH_CGROUP] = { "attach-cgroup", "PATH",
			      "netns scopes: cgroup the programs attach to (default: cgroup2 root)" },
	[O_ALL] = { "all", NULL, "every scope; then detach and unpin everything" },
	[O_PROXY_PORT] = { "proxy-port", "PORT", "outbound proxy port (default 15001)", 'p' },
	[O_PROXY_UID] = { "proxy-uid", "UID", "the proxy's uid, never captured (default 1337)",
			  'u' },
	[O_PROXY_GID] = { "proxy-gid", "GID", "the proxy's gid, never captured", 'g' },
	[O_PROXY_MARK] = { "proxy-mark", "MARK", "sockets with this SO_MARK are never captured" },
	[O_INC_CIDRS] = { "include-outbound-cidrs", "LIST",
			  "captured destinations, '*' = all (default)", 'i' },
	[O_EXC_CIDRS] = { "exclude-outbound-cidrs", "LIST", "destinations never captured", 'x' },
	[O_INC_PORTS] = { "include-outbound-ports", "LIST", "captured ports, '*' = all (default)",
			  'q' },
	[O_EXC_PORTS] = { "exclude-outbound-ports", "LIST", "ports never captured", 'o' },
	[O_NO_SPLICE] = { "no-splice", NULL, "capture only: do not splice app<->proxy sockets" },
	[O_INBOUND_PORT] = { "inbound-port", "PORT",
			     "netns scopes: the proxy's inbound listener port (default 15006)",
			     'z' },
	[O_INC_IN_PORTS] = { "include-inbound-ports", "LIST",
			     "netns scopes: inbound ports steered to the proxy, '*' = all (default)",
			     'b' },
	[O_EXC_IN_PORTS] = { "exclude-inbound-ports", "LIST", "inbound ports never steered", 'd' },
	[O_POD_IPS] = { "pod-ips", "LIST",
			"netns scopes: the pod's addresses (default: its global addresses now)" },
	[O_REDIRECT_DNS] = { "redirect-dns", NULL,
			     "send DNS to the proxy's DNS port (resolvers of resolv.conf)" },
	[O_CAPTURE_ALL_DNS] = { "capture-all-dns", NULL,
				"with --redirect-dns: all port-53 traffic, not only the resolvers" },
	[O_DNS_PORT] = { "dns-port", "PORT", "the proxy's DNS port (default 15053)" },
	[O_DNS_SERVERS] = { "dns-servers", "LIST",
			    "with --redirect-dns: the resolvers to capture (default: resolv.conf)" },
	[O_ANNOTATIONS] = { "from-annotations", "FILE|-",
			    "istio pod annotations (JSON object) for the policy; options win" },
	[O_MAX_SCOPES] = { "max-scopes", "N", "first load only: scope table size (default 16384)" },
	[O_MAX_CONNS] = { "max-conns", "N",
			  "first load only: concurrent spliced connections (default 262144)" },
	[O_SPLICE_BUDGET] = { "splice-budget", "SIZE",
			      "first load only: unread bytes a spliced socket may queue at its "
			      "peer before it falls back to the TCP stack (default 8MiB, max 1GiB; "
			      "they count against tcp_mem only)" },
	[O_MAX_RULES] = { "max-rules", "N",
			  "first load only: CIDR and port rules (default 65536)" },
	[O_STATE_FILE] = { "state-file", "FILE",
			   "sockmeshd's state file (default " SOCKMESHD_STATE_FILE ")" },
	[O_CNI_CONF_DIR] = { "cni-conf-dir", "DIR",
			     "CNI network configurations (default " CNI_CONF_DIR_DEFAULT ")" },
	[O_CNI_BIN_DIR] = { "cni-bin-dir", "DIR",
			    "CNI plugin binaries (default " CNI_BIN_DIR_DEFAULT ")" },
	[O_HELP] = { "help", NULL, "show this help" },
};

struct cmd_args {
	const char *val[O_COUNT];
	bool set[O_COUNT];
};

struct cmd {
	const char *name;
	int (*fn)(struct cmd_args *a);
	const char *summary;
	const int *opts; /* -1 terminated */
};

static void usage_cmd(FILE *f, const struct cmd *c)
{
	fprintf(f, "Usage: sockmesh [-j] [-v] [--pin-dir DIR] %s [options]\n  %s\n", c->name,
		c->summary);
	for (const int *o = c->opts; *o >= 0; o++) {
		const struct opt_def *d = &opt_defs[*o];
		char lhs[64];

		if (d->istio)
			snprintf(lhs, sizeof(lhs), "-%c, --%s%s%s", d->istio, d->name,
				 d->arg ? " " : "", d->arg ? d->arg : "");
		else
			snprintf(lhs, sizeof(lhs), "    --%s%s%s", d->name, d->arg ? " " : "",
				 d->arg ? d->arg : "");
		fprintf(f, "    %-34s %s\n", lhs, d->help);
	}
}

static int parse_cmd_args(const struct cmd *c, int argc, char **argv, struct cmd_args *a)
{
	struct option lo[O_COUNT + 1];
	char shorts[3 * O_COUNT + 4] = "+h";
	size_t sl = 2;
	int n = 0, ch;

	memset(a, 0, sizeof(*a));
	memset(lo, 0, sizeof(lo));
	for (const int *o = c->opts; *o >= 0; o++, n++) {
		lo[n].name = opt_defs[*o].name;
		lo[n].has_arg = opt_defs[*o].arg ? required_argument : no_argument;
		lo[n].val = 1000 + *o;
		if (opt_defs[*o].istio) {
			shorts[sl++] = opt_defs[*o].istio;
			if (opt_defs[*o].arg)
				shorts[sl++] = ':';
		}
	}
	shorts[sl] = '\0';
	optind = 1;
	opterr = 0;
	while ((ch = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		/* istio-iptables short flags map onto the long options */
		for (const int *o = c->opts;
		     *o >= 0 && ch > 0 && ch < 1000 && ch != '?' && ch != 'h'; o++) {
			if (opt_defs[*o].istio == ch) {
				ch = 1000 + *o;
				break;
			}
		}
		if (ch == 'h' || ch == 1000 + O_HELP) {
			usage_cmd(stdout, c);
			exit(0);
		}
		if (ch < 1000) {
			const char *bad = argv[optind - 1];

			if (optopt && optopt >= 1000)
				return fail(EXIT_USAGE, "%s: option '--%s' needs a value", c->name,
					    opt_defs[optopt - 1000].name);
			for (const int *o = c->opts; *o >= 0 && optopt; o++)
				if (opt_defs[*o].istio == optopt)
					return fail(EXIT_USAGE, "%s: option '-%c' needs a value",
						    c->name, optopt);
			return fail(EXIT_USAGE, "%s: unknown option '%s' (see 'sockmesh %s -h')",
				    c->name, bad, c->name);
		}
		if (a->set[ch - 1000])
			return fail(EXIT_USAGE, "%s: option '--%s' given twice", c->name,
				    opt_defs[ch - 1000].name);
		a->set[ch - 1000] = true;
		a->val[ch - 1000] = optarg;
	}
	if (optind < argc)
		return fail(EXIT_USAGE, "%s: unexpected argument '%s'", c->name, argv[optind]);
	return 0;
}

static int opt_u32(struct cmd_args *a, int id, __u32 max, __u32 *out)
{
	char field[64];

	snprintf(field, sizeof(field), "--%s", opt_defs[id].name);
	if (sm_parse_u32(field, a->val[id], max, out))
		return fail(EXIT_USAGE, "%s", sockmesh_errmsg());
	return 0;
}

/* Exactly one of --cgroup / --netns (or --all where allowed). */
static int parse_scope(struct cmd_args *a, const char *cmd, bool allow_all, bool required,
		       struct sockmesh_scope *s, bool *have)
{
	int n = a->set[O_CGROUP] + a->set[O_NETNS] + (allow_all && a->set[O_ALL]);
	int err;

	*have = false;
	if (n > 1)
		return fail(EXIT_USAGE, "%s: give only one of --cgroup, --netns%s", cmd,
			    allow_all ? ", --all" : "");
	if (n == 0)
		return required ?
			       fail(EXIT_USAGE, "%s: --cgroup PATH or --netns NAME%s is required",
				    cmd, allow_all ? " or --all" : "") :
			       0;
	if (a->set[O_CGROUP])
		err = sockmesh_scope_from_cgroup(a->val[O_CGROUP], s);
	else if (a->set[O_NETNS])
		err = sockmesh_scope_from_netns(a->val[O_NETNS], s);
	else
		return 0;
	if (err)
		return fail_lib(err, cmd);
	*have = true;
	return 0;
}

static const char *kind_name(enum sockmesh_scope_kind k)
{
	return k == SOCKMESH_SCOPE_CGROUP ? "cgroup" : k == SOCKMESH_SCOPE_NETNS ? "netns" : "?";
}

/* ---- commands ------------------------------------------------------------ */

/* --from-annotations FILE|-: a JSON object of pod annotations. */
static int read_annotations(const char *path, struct sm_annotations *ann)
{
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;
	int err;

	if (!f)
		return fail(EXIT_USAGE, "--from-annotations: cannot open '%s': %s", path,
			    strerror(errno));
	do {
		if (len + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap = cap ? 2 * cap : 8192);

			if (!nb) {
				free(buf);
				if (f != stdin)
					fclose(f);
				return fail(EXIT_FAIL, "out of memory");
			}
			buf = nb;
		}
		n = fread(buf + len, 1, 4096, f);
		len += n;
	} while (n > 0 && len < (1u << 20));
	if (f != stdin)
		fclose(f);
	buf[len] = '\0';
	if (len >= (1u << 20) || strlen(buf) != len) {
		free(buf);
		return fail(EXIT_USAGE, "--from-annotations: '%s' is not a JSON text under 1 MiB",
			    path);
	}
	err = sm_annotations_from_json(buf, ann);
	free(buf);
	if (err)
		return fail(EXIT_USAGE, "--from-annotations: %s", sockmesh_errmsg());
	return 0;
}

static int cmd_enable(struct cmd_args *a)
{
	static char exc_in_buf[8192];
	struct sockmesh_policy pol = { .sz = sizeof(pol) };
	struct sm_annotations ann = { 0 };
	struct sockmesh_open_opts oo = { .sz = sizeof(oo) };
	struct sockmesh_scope scope;
	struct sockmesh *sm;
	bool have;
	__u32 v;
	int err;

	err = parse_scope(a, "enable", false, true, &scope, &have);
	if (err)
		return err;
	if (a->set[O_ATTACH_CGROUP] && scope.kind == SOCKMESH_SCOPE_CGROUP)
		return fail(
			EXIT_USAGE,
			"enable: --attach-cgroup goes with --netns; a --cgroup scope attaches at its own cgroup");
	if (a->set[O_PROXY_PORT]) {
		if (opt_u32(a, O_PROXY_PORT, 65535, &v))
			return EXIT_USAGE;
		if (v == 0)
			return fail(EXIT_USAGE, "--proxy-port: '0' is not a port (1-65535)");
		pol.proxy_port = (__u16)v;
	}
	if (a->set[O_PROXY_UID]) {
		if (opt_u32(a, O_PROXY_UID, 0xffffffffu, &pol.proxy_uid))
			return EXIT_USAGE;
		pol.has_proxy_uid = true;
	}
	if (a->set[O_PROXY_GID]) {
		if (opt_u32(a, O_PROXY_GID, 0xffffffffu, &pol.proxy_gid))
			return EXIT_USAGE;
		pol.has_proxy_gid = true;
	}
	if (a->set[O_PROXY_MARK]) {
		if (opt_u32(a, O_PROXY_MARK, 0xffffffffu, &pol.proxy_mark))
			return EXIT_USAGE;
		pol.has_proxy_mark = true;
	}
	if (a->set[O_MAX_SCOPES] && opt_u32(a, O_MAX_SCOPES, 1u << 24, &oo.max_scopes))
		return EXIT_USAGE;
	if (a->set[O_MAX_CONNS] && opt_u32(a, O_MAX_CONNS, 1u << 26, &oo.max_conns))
		return EXIT_USAGE;
	if (a->set[O_MAX_RULES] && opt_u32(a, O_MAX_RULES, 1u << 24, &oo.max_rules))
		return EXIT_USAGE;
	if (a->set[O_SPLICE_BUDGET] &&
	    sm_parse_size("--splice-budget", a->val[O_SPLICE_BUDGET], SM_MIN_SPLICE_BUDGET,
			  SM_MAX_SPLICE_BUDGET, &oo.splice_budget))
		return fail(EXIT_USAGE, "%s", sockmesh_errmsg());
	if (a->set[O_INBOUND_PORT]) {
		if (opt_u32(a, O_INBOUND_PORT, 65535, &v))
			return EXIT_USAGE;
		if (v == 0)
			return fail(EXIT_USAGE, "--inbound-port: '0' is not a port (1-65535)");
		pol.inbound_port = (__u16)v;
	}
	if (a->set[O_DNS_PORT]) {
		if (opt_u32(a, O_DNS_PORT, 65535, &v))
			return EXIT_USAGE;
		if (v == 0)
			return fail(EXIT_USAGE, "--dns-port: '0' is not a port (1-65535)");
		pol.dns_port = (__u16)v;
	}
	if (a->set[O_ANNOTATIONS]) {
		err = read_annotations(a->val[O_ANNOTATIONS], &ann);
		if (err)
			return err;
		err = sm_annotations_apply(&ann, &pol);
		if (err) {
			sm_annotations_free(&ann);
			return fail(EXIT_FAIL, "enable: out of memory");
		}
	}
	/* Explicit options win over annotations. */
	if (a->set[O_INC_CIDRS])
		pol.include_outbound_cidrs = a->val[O_INC_CIDRS];
	if (a->set[O_EXC_CIDRS])
		pol.exclude_outbound_cidrs = a->val[O_EXC_CIDRS];
	if (a->set[O_INC_PORTS])
		pol.include_outbound_ports = a->val[O_INC_PORTS];
	if (a->set[O_EXC_PORTS])
		pol.exclude_outbound_ports = a->val[O_EXC_PORTS];
	if (a->set[O_INC_IN_PORTS])
		pol.include_inbound_ports = a->val[O_INC_IN_PORTS];
	if (a->set[O_EXC_IN_PORTS]) {
		const char *status = ann.v[SM_ANN_STATUS_PORT];

		pol.exclude_inbound_ports = a->val[O_EXC_IN_PORTS];
		/* the sidecar's status port stays excluded, as istio does */
		if (status && strcmp(status, "0") != 0) {
			snprintf(exc_in_buf, sizeof(exc_in_buf), "%s%s%s", a->val[O_EXC_IN_PORTS],
				 a->val[O_EXC_IN_PORTS][0] ? "," : "", status);
			pol.exclude_inbound_ports = exc_in_buf;
		}
	}
	pol.pod_ips = a->val[O_POD_IPS];
	pol.redirect_dns = a->set[O_REDIRECT_DNS];
	pol.capture_all_dns = a->set[O_CAPTURE_ALL_DNS];
	pol.dns_servers = a->val[O_DNS_SERVERS];
	pol.no_splice = a->set[O_NO_SPLICE];
	/* Validate everything before anything is loaded or attached. */
	err = sockmesh_policy__validate(&pol);
	if (err) {
		sm_annotations_free(&ann);
		return fail_lib(err, "enable");
	}
	if (a->set[O_ATTACH_CGROUP]) {
		struct sockmesh_scope tmp;

		err = sockmesh_scope_from_cgroup(a->val[O_ATTACH_CGROUP], &tmp);
		if (err) {
			sm_annotations_free(&ann);
			return fail(EXIT_USAGE, "enable: --attach-cgroup: %s", sockmesh_errmsg());
		}
	}

	oo.pin_dir = pin_dir;
	oo.create = true;
	sm = sockmesh__open(&oo);
	if (!sm) {
		err = -errno;
		sm_annotations_free(&ann);
		return fail_lib(err, "enable");
	}
	err = sockmesh__enroll(sm, &scope, a->val[O_ATTACH_CGROUP], &pol);
	sm_annotations_free(&ann);
	if (err) {
		/* Do not leave a freshly loaded, empty instance behind. */
		sockmesh__unload_if_unused(sm);
		sockmesh__close(sm);
		return fail_lib(err, "enable");
	}
	sockmesh__close(sm);
	if (json_mode) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "enabled", json_object_new_string(kind_name(scope.kind)));
		json_object_object_add(o, "name", json_object_new_string(scope.name));
		json_object_object_add(o, "id", json_object_new_uint64(scope.id));
		print_json(o);
		json_object_put(o);
	} else {
		printf("enabled %s %s\n", kind_name(scope.kind), scope.name);
	}
	return 0;
}

static int cmd_disable(struct cmd_args *a)
{
	struct sockmesh_open_opts oo = { .sz = sizeof(oo), .pin_dir = pin_dir };
	struct sockmesh_scope scope;
	struct sockmesh *sm;
	bool have;
	int err;

	err = parse_scope(a, "disable", true, true, &scope, &have);
	if (err)
		return err;
	sm = sockmesh__open(&oo);
	if (!sm && a->set[O_ALL] && sockmesh__exists(pin_dir)) {
		/* Pins we cannot open (another version's layout): remove them
		 * anyway; --all means nothing of sockmesh stays.
		 */
		err = sockmesh_purge(pin_dir);
		if (err)
			return fail_lib(err, "disable");
		if (json_mode)
			printf("{\"disabled\": \"all\"}\n");
		else
			printf("disabled all (purged pins at %s)\n", pin_dir);
		return 0;
	}
	if (!sm) {
		if (errno == ENOENT && a->set[O_ALL]) {
			/* Nothing loaded: --all is already true. */
			if (json_mode)
				printf("{\"disabled\": \"all\"}\n");
			return 0;
		}
		return fail_lib(-errno, "disable");
	}
	if (a->set[O_ALL])
		err = sockmesh__destroy(sm);
	else
		err = sockmesh__withdraw(sm, &scope);
	sockmesh__close(sm);
	if (err)
		return fail(err == -ENOENT ? EXIT_USAGE : EXIT_FAIL, "disable: %s",
			    sockmesh_errmsg());
	if (json_mode) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "disabled",
				       json_object_new_string(a->set[O_ALL] ? "all" : scope.name));
		print_json(o);
		json_object_put(o);
	} else {
		printf("disabled %s\n", a->set[O_ALL] ? "all" : scope.name);
	}
	return 0;
}

static json_object *scope_json(struct sockmesh *sm, const struct sockmesh_scope_info *i,
			       bool with_stats)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "kind", json_object_new_string(kind_name(i->scope.kind)));
	json_object_object_add(o, "id", json_object_new_uint64(i->scope.id));
	json_object_object_add(o, "name", json_object_new_string(i->scope.name));
	if (with_stats) {
		struct sockmesh_stats st;
		json_object *c = json_object_new_object();

		if (sockmesh__stats(sm, &i->scope, &st) == 0)
			for (unsigned int k = 0; k < st.count; k++)
				json_object_object_add(c, sockmesh_stat_name(k),
						       json_object_new_uint64(st.v[k]));
		json_object_object_add(o, "counters", c);
	} else {
		json_object_object_add(o, "proxy_port", json_object_new_int(i->proxy_port));
		json_object_object_add(o, "proxy_uid", json_object_new_uint64(i->proxy_uid));
		if (i->proxy_gid >= 0)
			json_object_object_add(o, "proxy_gid", json_object_new_int64(i->proxy_gid));
		if (i->proxy_mark >= 0)
			json_object_object_add(o, "proxy_mark",
					       json_object_new_int64(i->proxy_mark));
		json_object_object_add(o, "splice", json_object_new_boolean(i->splice));
		json_object_object_add(o, "inbound_port", json_object_new_int(i->inbound_port));
		json_object_object_add(o, "dns_port", json_object_new_int(i->dns_port));
		if (i->pod_name[0]) {
			json_object_object_add(o, "pod_namespace",
					       json_object_new_string(i->pod_namespace));
			json_object_object_add(o, "pod_name", json_object_new_string(i->pod_name));
			json_object_object_add(o, "container_id",
					       json_object_new_string(i->container_id));
		}
		json_object_object_add(o, "attach_cgroup_id",
				       json_object_new_uint64(i->attach_cgroup_id));
	}
	return o;
}

static void print_scope_text(struct sockmesh *sm, const struct sockmesh_scope_info *i,
			     bool with_stats)
{
	printf("%-6s %-40s id %llu\n", kind_name(i->scope.kind), i->scope.name,
	       (unsigned long long)i->scope.id);
	if (with_stats) {
		struct sockmesh_stats st;

		if (sockmesh__stats(sm, &i->scope, &st) == 0)
			for (unsigned int k = 0; k < st.count; k++)
				printf("    %-26s %llu\n", sockmesh_stat_name(k),
				       (unsigned long long)st.v[k]);
	} else {
		printf("    proxy port %u, proxy uid %u", i->proxy_port, i->proxy_uid);
		if (i->proxy_gid >= 0)
			printf(", proxy gid %lld", (long long)i->proxy_gid);
		if (i->proxy_mark >= 0)
			printf(", proxy mark %lld", (long long)i->proxy_mark);
		printf(", splice %s, attached at cgroup id %llu\n", i->splice ? "on" : "off",
		       (unsigned long long)i->attach_cgroup_id);
		if (i->inbound_port)
			printf("    inbound capture to port %u\n", i->inbound_port);
		if (i->dns_port)
			printf("    DNS capture to port %u\n", i->dns_port);
		if (i->pod_name[0])
			printf("    pod %s/%s container %s\n", i->pod_namespace, i->pod_name,
			       i->container_id);
	}
}

/* ---- sockmeshd (status, uninstall) --------------------------------------- */

/* What sockmeshd's state file says, and whether that process still runs
 * (same pid and start time). Returns {"state_file", "running", ...}.
 */
static json_object *daemon_state(struct cmd_args *a)
{
	const char *path = a->set[O_STATE_FILE] ? a->val[O_STATE_FILE] : SOCKMESHD_STATE_FILE;
	json_object *d = json_object_new_object(), *st, *v;
	static const char *const keys[] = { "pid",	   "version",	  "listen",
					    "metrics_url", "pin_dir",	  "attach_cgroup",
					    "start_time",  "gc_interval", "cleanup_on_exit" };
	unsigned long long ticks = 0;
	long long pid = 0;
	bool running = false;
	char why[PATH_MAX + 64] = "";

	json_object_object_add(d, "state_file", json_object_new_string(path));
	if (access(path, F_OK)) {
		snprintf(why, sizeof(why), "no state file %s", path);
		st = NULL;
	} else {
		st = json_object_from_file(path);
		if (!st || !json_object_is_type(st, json_type_object))
			snprintf(why, sizeof(why), "state file %s is empty or unreadable", path);
	}
	if (st && json_object_is_type(st, json_type_object)) {
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			if (json_object_object_get_ex(st, keys[i], &v))
				json_object_object_add(d, keys[i], json_object_get(v));
		if (json_object_object_get_ex(st, "pid", &v))
			pid = json_object_get_int64(v);
		if (json_object_object_get_ex(st, "proc_start_ticks", &v))
			ticks = json_object_get_uint64(v);
		if (pid <= 0 || pid > INT_MAX) {
			snprintf(why, sizeof(why), "state file %s has no valid pid", path);
		} else if (kill((pid_t)pid, 0) && errno != EPERM) {
			snprintf(why, sizeof(why), "pid %lld is not running (stale state file)",
				 pid);
		} else if (ticks && sm_proc_start_ticks(pid) != ticks) {
			snprintf(why, sizeof(why),
				 "pid %lld is another process now (stale state file)", pid);
		} else {
			running = true;
		}
	}
	json_object_put(st);
	json_object_object_add(d, "running", json_object_new_boolean(running));
	if (!running)
		json_object_object_add(d, "reason", json_object_new_string(why));
	return d;
}

static const char *jstr(json_object *o, const char *key, const char *def)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : def;
}

/* status: the daemon under "daemon" (JSON) or as one text line */
static void daemon_status(struct cmd_args *a, json_object *root)
{
	json_object *d = daemon_state(a);
	json_object *r;

	if (root) {
		json_object_object_add(root, "daemon", d);
		return;
	}
	json_object_object_get_ex(d, "running", &r);
	if (json_object_get_boolean(r)) {
		const char *dpin = jstr(d, "pin_dir", "?");

		printf("daemon: sockmeshd %s running, pid %s, metrics %s, since %s%s%s\n",
		       jstr(d, "version", "?"), jstr(d, "pid", "?"), jstr(d, "metrics_url", "?"),
		       jstr(d, "start_time", "?"),
		       strcmp(dpin, pin_dir) ? ", serving pin dir " : "",
		       strcmp(dpin, pin_dir) ? dpin : "");
	} else {
		printf("daemon: not running (%s)\n", jstr(d, "reason", "?"));
	}
	json_object_put(d);
}

/* status and stats share the walk; stats adds counters and the global slot. */
static int list_scopes(struct cmd_args *a, bool with_stats)
{
	struct sockmesh_open_opts oo = { .sz = sizeof(oo), .pin_dir = pin_dir };
	struct sockmesh_scope_info info = { .sz = sizeof(info) };
	struct sockmesh_scope scope;
	const struct sockmesh_scope *prev = NULL;
	struct sockmesh *sm;
	json_object *root = NULL, *arr = NULL;
	bool have;
	int err;

	err = parse_scope(a, with_stats ? "stats" : "status", false, false, &scope, &have);
	if (err)
		return err;
	sm = sockmesh__open(&oo);
	if (!sm) {
		if (errno != ENOENT)
			return fail_lib(-errno, with_stats ? "stats" : "status");
		if (have)
			return fail(EXIT_USAGE, "'%s' is not enrolled (nothing is loaded)",
				    scope.name);
		if (json_mode) {
			root = json_object_new_object();
			json_object_object_add(root, "loaded", json_object_new_boolean(0));
			json_object_object_add(root, "pin_dir", json_object_new_string(pin_dir));
			if (!with_stats)
				daemon_status(a, root);
			json_object_object_add(root, "scopes", json_object_new_array());
			print_json(root);
			json_object_put(root);
		} else {
			printf("not loaded (pin dir %s)\n", pin_dir);
			if (!with_stats)
				daemon_status(a, NULL);
		}
		return 0;
	}
	if (json_mode) {
		root = json_object_new_object();
		arr = json_object_new_array();
		json_object_object_add(root, "loaded", json_object_new_boolean(1));
		json_object_object_add(root, "pin_dir", json_object_new_string(pin_dir));
	} else {
		printf("loaded (pin dir %s)\n", pin_dir);
	}
	if (!with_stats)
		daemon_status(a, root);
	if (have) {
		err = sockmesh__scope_info(sm, &scope, &info);
		if (err) {
			json_object_put(root);
			sockmesh__close(sm);
			return fail(EXIT_USAGE, "%s", sockmesh_errmsg());
		}
		if (json_mode)
			json_object_array_add(arr, scope_json(sm, &info, with_stats));
		else
			print_scope_text(sm, &info, with_stats);
	} else {
		while (sockmesh__next_scope(sm, prev, &info) == 0) {
			if (json_mode)
				json_object_array_add(arr, scope_json(sm, &info, with_stats));
			else
				print_scope_text(sm, &info, with_stats);
			scope = info.scope;
			prev = &scope;
		}
	}
	if (with_stats && !have) {
		struct sockmesh_stats st;

		if (sockmesh__stats(sm, NULL, &st) == 0) {
			json_object *g = json_mode ? json_object_new_object() : NULL;

			if (!json_mode)
				printf("global (not enrolled)\n");
			for (unsigned int k = 0; k < st.count; k++) {
				if (json_mode)
					json_object_object_add(g, sockmesh_stat_name(k),
							       json_object_new_uint64(st.v[k]));
				else if (st.v[k])
					printf("    %-26s %llu\n", sockmesh_stat_name(k),
					       (unsigned long long)st.v[k]);
			}
			if (json_mode)
				json_object_object_add(root, "global", g);
		}
	}
	if (json_mode) {
		json_object_object_add(root, "scopes", arr);
		print_json(root);
		json_object_put(root);
	}
	sockmesh__close(sm);
	return 0;
}

static int cmd_status(struct cmd_args *a)
{
	return list_scopes(a, false);
}

static int cmd_stats(struct cmd_args *a)
{
	return list_scopes(a, true);
}

struct check {
	const char *name;
	bool ok;
	char detail[256];
};

static int cmd_doctor(struct cmd_args *a)
{
	static const struct {
		enum bpf_prog_type type;
		const char *name;
	} ptypes[] = {
		{ BPF_PROG_TYPE_CGROUP_SOCK_ADDR, "prog cgroup_sock_addr (connect4/6)" },
		{ BPF_PROG_TYPE_SOCK_OPS, "prog sock_ops" },
		{ BPF_PROG_TYPE_SK_MSG, "prog sk_msg" },
		{ BPF_PROG_TYPE_CGROUP_SOCKOPT, "prog cgroup_sockopt (getsockopt)" },
		{ BPF_PROG_TYPE_SK_LOOKUP, "prog sk_lookup (inbound capture)" },
	};
	static const struct {
		enum bpf_map_type type;
		const char *name;
	} mtypes[] = {
		{ BPF_MAP_TYPE_SOCKHASH, "map sockhash" },
		{ BPF_MAP_TYPE_SK_STORAGE, "map sk_storage" },
		{ BPF_MAP_TYPE_LPM_TRIE, "map lpm_trie" },
		{ BPF_MAP_TYPE_LRU_HASH, "map lru_hash" },
		{ BPF_MAP_TYPE_PERCPU_HASH, "map percpu_hash" },
	};
	struct check checks[32];
	int n = 0, bad = 0;
	struct utsname u;
	struct statfs sfs;
	char root[4096];
	struct sockmesh_bpf *skel;

	(void)a;
	uname(&u);
	checks[n] = (struct check){ "root", geteuid() == 0, "" };
	snprintf(checks[n].detail, sizeof(checks[n].detail), "%s",
		 checks[n].ok ? "running as root" :
				"run as root (needs CAP_BPF, CAP_NET_ADMIN, CAP_SYS_ADMIN)");
	n++;
	checks[n] = (struct check){ "cgroup2", sm_cgroup2_root(root, sizeof(root)) == 0, "" };
	snprintf(checks[n].detail, sizeof(checks[n].detail), "%.200s",
		 checks[n].ok ? root :
				"mount cgroup2: mount -t cgroup2 none /sys/fs/cgroup/unified");
	n++;
	checks[n] = (struct check){ "bpffs",
				    statfs("/sys/fs/bpf", &sfs) == 0 && sfs.f_type == BPF_FS_MAGIC,
				    "" };
	snprintf(
		checks[n].detail, sizeof(checks[n].detail), "%s",
		checks[n].ok ?
			"/sys/fs/bpf" :
			"not mounted; sockmesh enable mounts it, or: mount -t bpf bpf /sys/fs/bpf");
	n++;
	for (size_t i = 0; i < sizeof(ptypes) / sizeof(ptypes[0]); i++, n++) {
		int r = libbpf_probe_bpf_prog_type(ptypes[i].type, NULL);

		checks[n] = (struct check){ ptypes[i].name, r == 1, "" };
		snprintf(
			checks[n].detail, sizeof(checks[n].detail), "%s",
			r == 1 ?
				"supported" :
				"missing: kernel needs CONFIG_CGROUP_BPF / CONFIG_BPF_STREAM_PARSER / CONFIG_NET_SOCK_MSG");
	}
	for (size_t i = 0; i < sizeof(mtypes) / sizeof(mtypes[0]); i++, n++) {
		int r = libbpf_probe_bpf_map_type(mtypes[i].type, NULL);

		checks[n] = (struct check){ mtypes[i].name, r == 1, "" };
		snprintf(checks[n].detail, sizeof(checks[n].detail), "%s",
			 r == 1 ? "supported" : "missing: kernel too old or BPF_STREAM_PARSER off");
	}
	/* The real test: does the verifier of this kernel take our programs? */
	skel = sockmesh_bpf__open();
	if (skel) {
		int err;

		/* keep the probe cheap: shrink tables */
		bpf_map__set_max_entries(skel->maps.pending_map, 16);
		err = sockmesh_bpf__load(skel);
		checks[n] = (struct check){ "load data path", err == 0, "" };
		snprintf(checks[n].detail, sizeof(checks[n].detail), "%s%s",
			 err ? "the verifier rejected a program: rerun with -v for its log: " :
			       "all programs load",
			 err ? strerror(-err) : "");
		sockmesh_bpf__destroy(skel);
	} else {
		checks[n] = (struct check){ "load data path", false, "cannot open the BPF object" };
	}
	n++;

	if (json_mode) {
		json_object *o = json_object_new_object(), *arr = json_object_new_array();

		json_object_object_add(o, "kernel", json_object_new_string(u.release));
		for (int i = 0; i < n; i++) {
			json_object *c = json_object_new_object();

			json_object_object_add(c, "check", json_object_new_string(checks[i].name));
			json_object_object_add(c, "ok", json_object_new_boolean(checks[i].ok));
			json_object_object_add(c, "detail",
					       json_object_new_string(checks[i].detail));
			json_object_array_add(arr, c);
		}
		json_object_object_add(o, "checks", arr);
		print_json(o);
		json_object_put(o);
	} else {
		printf("kernel %s\n", u.release);
	}
	for (int i = 0; i < n; i++) {
		bad += !checks[i].ok;
		if (!json_mode)
			printf("  [%s] %-36s %s\n", checks[i].ok ? " ok " : "FAIL", checks[i].name,
			       checks[i].detail);
	}
	return bad ? EXIT_FAIL : 0;
}

/* ---- uninstall ------------------------------------------------------------ */

static int is_conflist(const struct dirent *e)
{
	size_t n = strlen(e->d_name);

	return e->d_name[0] != '.' && n > 9 && strcmp(e->d_name + n - 9, ".conflist") == 0;
}

/* Does the file name sockmesh-cni anywhere (for files that do not parse)?
 * Network configurations are small: the first MiB tells.
 */
static bool file_mentions_plugin(const char *path)
{
	size_t cap = 1u << 20, n;
	bool found = false;
	FILE *f = fopen(path, "re");
	char *buf;

	if (!f)
		return false;
	buf = malloc(cap + 1);
	if (buf) {
		n = fread(buf, 1, cap, f);
		buf[n] = '\0';
		found = strstr(buf, CNI_PLUGIN_TYPE) != NULL;
		free(buf);
	}
	fclose(f);
	return found;
}

/* An uninstall step failed: stderr now, the JSON report at the end (one
 * JSON document on stdout), and the exit code 1.
 */
static void uninstall_err(json_object *errs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void uninstall_err(json_object *errs, const char *fmt, ...)
{
	char msg[PATH_MAX + 256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "sockmesh: uninstall: %s\n", msg);
	json_object_array_add(errs, json_object_new_string(msg));
}

/* Write o to path through a temporary file in the same directory (mode of
 * the original), so a runtime never reads half a configuration.
 */
static int write_json_atomic(const char *path, json_object *o, mode_t mode)
{
	char tmp[PATH_MAX];
	const char *text = json_object_to_json_string_ext(
		o,
		JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
	FILE *f;
	int err = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.sockmesh-tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	if (fprintf(f, "%s\n", text) < 0 || fflush(f) || fsync(fileno(f)))
		err = -errno;
	if (fclose(f) && !err)
		err = -errno;
	if (!err && chmod(tmp, mode & 07777))
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

/* Remove every sockmesh-cni entry from one conflist, keeping the others (and
 * every other key) as they are. The file is replaced atomically; one that
 * held only sockmesh-cni is deleted. Returns 0, or -1 when the file names
 * sockmesh-cni but could not be edited.
 */
static int conflist_remove_plugin(const char *path, json_object *files, json_object *errs)
{
	json_object *o, *plugins, *kept, *rep = json_object_new_object();
	const char *action = "unchanged";
	int removed = 0, err = 0;
	struct stat st;

	json_object_object_add(rep, "file", json_object_new_string(path));
	o = json_object_from_file(path);
	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "plugins", &plugins) ||
	    !json_object_is_type(plugins, json_type_array)) {
		json_object_put(o);
		if (file_mentions_plugin(path)) {
			uninstall_err(errs, "'%s' names %s but is not a conflist that parses", path,
				      CNI_PLUGIN_TYPE);
			action = "error: not an editable conflist";
			err = -1;
		} else {
			action = "skipped: not a conflist";
		}
		goto out;
	}
	kept = json_object_new_array();
	for (size_t i = 0; i < json_object_array_length(plugins); i++) {
		json_object *p = json_object_array_get_idx(plugins, i), *t;

		if (json_object_is_type(p, json_type_object) &&
		    json_object_object_get_ex(p, "type", &t) &&
		    strcmp(json_object_get_string(t), CNI_PLUGIN_TYPE) == 0) {
			removed++;
			continue;
		}
		json_object_array_add(kept, json_object_get(p));
	}
	if (!removed) {
		json_object_put(kept);
		json_object_put(o);
		goto out;
	}
	if (json_object_array_length(kept) == 0) {
		json_object_put(kept);
		json_object_put(o);
		if (unlink(path) && errno != ENOENT) {
			uninstall_err(errs, "cannot remove '%s': %s", path, strerror(errno));
			action = "error: cannot remove";
			err = -1;
		} else {
			action = "deleted: it held only " CNI_PLUGIN_TYPE;
		}
		goto out;
	}
	json_object_object_add(o, "plugins", kept);
	err = stat(path, &st) ? -errno : write_json_atomic(path, o, st.st_mode);
	if (err) {
		uninstall_err(errs, "cannot rewrite '%s': %s", path, strerror(-err));
		action = "error: cannot rewrite";
		err = -1;
	} else {
		action = "updated";
	}
	json_object_put(o);
out:
	json_object_object_add(rep, "removed_plugins", json_object_new_int(removed));
	json_object_object_add(rep, "action", json_object_new_string(action));
	json_object_array_add(files, rep);
	if (!json_mode && removed && err == 0)
		printf("removed %s from %s%s\n", CNI_PLUGIN_TYPE, path,
		       strncmp(action, "deleted", 7) ? "" :
						       " (deleted the file: nothing else in it)");
	return err;
}

static int cmd_uninstall(struct cmd_args *a)
{
	const char *conf_dir =
		a->set[O_CNI_CONF_DIR] ? a->val[O_CNI_CONF_DIR] : CNI_CONF_DIR_DEFAULT;
	const char *bin_dir = a->set[O_CNI_BIN_DIR] ? a->val[O_CNI_BIN_DIR] : CNI_BIN_DIR_DEFAULT;
	struct sockmesh_open_opts oo = { .sz = sizeof(oo), .pin_dir = pin_dir };
	json_object *out, *files, *errs, *d, *r, *bin;
	struct dirent **ents = NULL;
	const char *kstate;
	char path[PATH_MAX];
	struct sockmesh *sm;
	int n, bad = 0;

	if (!conf_dir[0] || !bin_dir[0])
		return fail(EXIT_USAGE,
			    "uninstall: --cni-conf-dir and --cni-bin-dir need a directory");
	/* a running daemon would load the data path again at once */
	d = daemon_state(a);
	json_object_object_get_ex(d, "running", &r);
	if (json_object_get_boolean(r)) {
		int code = fail(
			EXIT_FAIL,
			"uninstall: sockmeshd (pid %s, state file %s) is running and would load the data path again: stop it first",
			jstr(d, "pid", "?"), jstr(d, "state_file", "?"));

		json_object_put(d);
		return code;
	}
	json_object_put(d);

	files = json_object_new_array();
	errs = json_object_new_array();
	n = scandir(conf_dir, &ents, is_conflist, alphasort);
	if (n < 0 && errno != ENOENT) {
		uninstall_err(errs, "--cni-conf-dir: cannot read '%s': %s", conf_dir,
			      strerror(errno));
		bad = 1;
	}
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", conf_dir, ents[i]->d_name);
		bad |= conflist_remove_plugin(path, files, errs) != 0;
		free(ents[i]);
	}
	free(ents);

	bin = json_object_new_object();
	snprintf(path, sizeof(path), "%s/%s", bin_dir, CNI_PLUGIN_TYPE);
	json_object_object_add(bin, "path", json_object_new_string(path));
	if (unlink(path) == 0) {
		json_object_object_add(bin, "removed", json_object_new_boolean(1));
		if (!json_mode)
			printf("removed %s\n", path);
	} else {
		json_object_object_add(bin, "removed", json_object_new_boolean(0));
		if (errno != ENOENT) {
			uninstall_err(errs, "cannot remove '%s': %s", path, strerror(errno));
			bad = 1;
		}
	}

	/* the kernel state, as disable --all */
	sm = sockmesh__open(&oo);
	if (!sm && errno == ENOENT) {
		kstate = "absent";
	} else if (!sm) {
		uninstall_err(errs, "--pin-dir: %s", sockmesh_errmsg());
		kstate = "error";
		bad = 1;
	} else if (sockmesh__destroy(sm)) {
		uninstall_err(errs, "%s", sockmesh_errmsg());
		kstate = "error";
		bad = 1;
	} else {
		kstate = "removed";
	}
	sockmesh__close(sm);
	if (json_mode) {
		out = json_object_new_object();
		json_object_object_add(out, "uninstalled", json_object_new_boolean(!bad));
		json_object_object_add(out, "cni_conf_dir", json_object_new_string(conf_dir));
		json_object_object_add(out, "conflists", json_object_get(files));
		json_object_object_add(out, "cni_binary", bin);
		json_object_object_add(out, "pin_dir", json_object_new_string(pin_dir));
		json_object_object_add(out, "kernel_state", json_object_new_string(kstate));
		if (bad)
			json_object_object_add(out, "error",
					       json_object_get(json_object_array_get_idx(errs, 0)));
		json_object_object_add(out, "errors", json_object_get(errs));
		print_json(out);
		json_object_put(out);
	} else {
		json_object_put(bin);
		if (strcmp(kstate, "removed") == 0)
			printf("removed the kernel state (pin dir %s)\n", pin_dir);
		else if (strcmp(kstate, "absent") == 0)
			printf("no kernel state at pin dir %s\n", pin_dir);
		printf("%s\n", bad ? "uninstall incomplete" : "uninstalled");
	}
	json_object_put(files);
	json_object_put(errs);
	return bad ? EXIT_FAIL : 0;
}

/* clang-format off */
static const int enable_opts[] = {
	O_CGROUP, O_NETNS, O_ATTACH_CGROUP,
	O_PROXY_PORT, O_PROXY_UID, O_PROXY_GID, O_PROXY_MARK,
	O_INC_CIDRS, O_EXC_CIDRS, O_INC_PORTS, O_EXC_PORTS, O_NO_SPLICE,
	O_INBOUND_PORT, O_INC_IN_PORTS, O_EXC_IN_PORTS, O_POD_IPS,
	O_REDIRECT_DNS, O_CAPTURE_ALL_DNS, O_DNS_PORT, O_DNS_SERVERS,
	O_ANNOTATIONS, O_MAX_SCOPES, O_MAX_CONNS, O_MAX_RULES, O_SPLICE_BUDGET, O_HELP, -1
};
/* clang-format on */
static const int disable_opts[] = { O_CGROUP, O_NETNS, O_ALL, O_HELP, -1 };
static const int scope_opts[] = { O_CGROUP, O_NETNS, O_HELP, -1 };
static const int status_opts[] = { O_CGROUP, O_NETNS, O_STATE_FILE, O_HELP, -1 };
static const int uninstall_opts[] = { O_CNI_CONF_DIR, O_CNI_BIN_DIR, O_STATE_FILE, O_HELP, -1 };
static const int no_opts[] = { O_HELP, -1 };

static const struct cmd cmds[] = {
	{ "enable", cmd_enable, "capture a cgroup's or a netns' outbound TCP into the local proxy",
	  enable_opts },
	{ "disable", cmd_disable, "withdraw a scope; the last one out removes everything",
	  disable_opts },
	{ "status", cmd_status, "show what is loaded and enrolled, and the daemon", status_opts },
	{ "stats", cmd_stats, "show counters per scope and global", scope_opts },
	{ "doctor", cmd_doctor, "check the kernel features sockmesh needs", no_opts },
	{ "uninstall", cmd_uninstall,
	  "remove sockmesh-cni from the CNI conflists, its binary, and the kernel state",
	  uninstall_opts },
};
#define N_CMDS (sizeof(cmds) / sizeof(cmds[0]))

static void usage(FILE *f)
{
	fprintf(f, "Usage: sockmesh [-j|--json] [-v|--verbose] [--pin-dir DIR] COMMAND [options]\n"
		   "Commands:\n");
	for (size_t i = 0; i < N_CMDS; i++)
		fprintf(f, "  %-10s %s\n", cmds[i].name, cmds[i].summary);
	fprintf(f,
		"Run 'sockmesh COMMAND -h' for a command's options. Exit: 0 ok, 1 failed, 2 bad usage.\n");
}

int main(int argc, char **argv)
{
	static const struct option gopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "pin-dir", required_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const struct cmd *c = NULL;
	struct cmd_args a;
	size_t len;
	int ch, err;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, "+jvh", gopts, NULL)) != -1) {
		switch (ch) {
		case 'j':
			json_mode = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'P':
			pin_dir = optarg;
			if (pin_dir[0] != '/')
				return fail(EXIT_USAGE, "--pin-dir: '%s' must be an absolute path",
					    pin_dir);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return fail(EXIT_USAGE, "unknown option '%s' (see 'sockmesh -h')",
				    argv[optind - 1]);
		}
	}
	libbpf_set_print(libbpf_print);
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	/* Unique prefixes select a command, as in bpftool. */
	len = strlen(argv[optind]);
	for (size_t i = 0; i < N_CMDS; i++) {
		if (strncmp(cmds[i].name, argv[optind], len) == 0) {
			if (c && strcmp(c->name, argv[optind]) != 0 &&
			    strcmp(cmds[i].name, argv[optind]) != 0)
				return fail(EXIT_USAGE, "command '%s' is ambiguous", argv[optind]);
			if (!c || strcmp(cmds[i].name, argv[optind]) == 0)
				c = &cmds[i];
		}
	}
	if (!c || len == 0)
		return fail(EXIT_USAGE, "unknown command '%s' (see 'sockmesh -h')", argv[optind]);
	argc -= optind;
	argv += optind;
	err = parse_cmd_args(c, argc, argv, &a);
	if (err)
		return err;
	return c->fn(&a);
}
