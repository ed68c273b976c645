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

#include "sockmesh.h"

#include "conflist.h"
#include "file.h"
#include "opts.h"
#include "parse.h"
#include "proc.h"
#include "text.h"
#include "pcapng.h"
#include "replay.h"
#include "flows.h"
#include "tap.h"

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

/* Serialized JSON as valid UTF-8: names from the kernel's maps and the
 * command line (pod labels, cgroup paths, arguments quoted in errors) may
 * hold any bytes, which json-c passes through; each one that is not UTF-8
 * becomes U+FFFD.
 */
static void print_json_text(const char *text)
{
	char *fixed = smc_utf8_fix(text);

	printf("%s\n", fixed ? fixed : text);
	free(fixed);
}

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
		print_json_text(json_object_to_json_string_ext(
			o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		json_object_put(o);
	}
	return code;
}

/* Library errors: -EINVAL/-ERANGE mean the input was bad (exit 2). The
 * library names the fields it complains about; say them as options.
 */
static int fail_lib(int err, const char *what)
{
	char msg[1024];

	sockmesh_errmsg_as(SOCKMESH_NAMES_CLI, msg, sizeof(msg));
	return fail(err == -EINVAL || err == -ERANGE ? EXIT_USAGE : EXIT_FAIL, "%s: %s", what, msg);
}

static void print_json(json_object *o)
{
	print_json_text(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
								  JSON_C_TO_STRING_SPACED |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
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

/* One table (user/common's option engine) drives getopt_long and the help
 * of every command; each command picks its options from it by id.
 */
/* Option ids: the CLI's own, then one per field of the library's policy
 * schema (O_F(field)), so a field added to the schema is an option here.
 */
enum {
	O_ALL,
	O_ANNOTATIONS,
	O_STATE_FILE,
	O_CNI_CONF_DIR,
	O_CNI_BIN_DIR,
	O_PLUGIN_BIN,
	O_PLUGIN_CONF,
	O_WAIT,
	O_FORCE,
	O_GRACE,
	O_TAP_PORT,
	O_TAP_PID,
	O_SNAPLEN,
	O_TAP_COUNT,
	O_DURATION,
	O_WRITE,
	O_RING_SIZE,
	O_TO,
	O_SPEED,
	O_FOLLOW,
	O_FLOW_JSON,
	O_INTERVAL,
	O_MAX_FLOWS,
	O_HELP,
	O_FIELD0,
	O_COUNT = O_FIELD0 + SOCKMESH_F__COUNT
};
#define O_F(f) (O_FIELD0 + (f))
#define O_CGROUP O_F(SOCKMESH_F_CGROUP)
#define O_NETNS O_F(SOCKMESH_F_NETNS)
#define O_ATTACH_CGROUP O_F(SOCKMESH_F_ATTACH_CGROUP)

/* The CLI's own options; the schema's are filled in by opts_init(). Values
 * are checked by the library (sockmesh_policy__set), so every option is a
 * string or a flag here.
 */
static struct smc_opt cli_opts[O_COUNT] = {
	[O_ALL] = { .name = "all", .help = "every scope; then detach and unpin everything" },
	[O_ANNOTATIONS] = { .name = "from-annotations",
			    .arg = "FILE|-",
			    .type = SMC_OPT_STRING,
			    .help = "istio pod annotations (JSON object) for the policy; options win" },
	[O_STATE_FILE] = { .name = "state-file",
			   .arg = "FILE",
			   .type = SMC_OPT_STRING,
			   .help = "sockmeshd's state file",
			   .def = SOCKMESHD_STATE_FILE },
	[O_CNI_CONF_DIR] = { .name = "cni-conf-dir",
			     .arg = "DIR",
			     .type = SMC_OPT_STRING,
			     .help = "CNI network configurations",
			     .def = CNI_CONF_DIR_DEFAULT },
	[O_CNI_BIN_DIR] = { .name = "cni-bin-dir",
			    .arg = "DIR",
			    .type = SMC_OPT_STRING,
			    .help = "CNI plugin binaries",
			    .def = CNI_BIN_DIR_DEFAULT },
	[O_PLUGIN_BIN] = { .name = "plugin-bin",
			   .arg = "FILE",
			   .type = SMC_OPT_STRING,
			   .help = "the " CNI_PLUGIN_TYPE
				   " binary to install (default: the image's)" },
	[O_PLUGIN_CONF] = { .name = "plugin-conf",
			    .arg = "JSON|@FILE",
			    .type = SMC_OPT_STRING,
			    .help = "the plugin's conflist entry; @FILE: a JSON object or a conflist "
				    "holding one (default: the image's example, else {\"type\": "
				    "\"" CNI_PLUGIN_TYPE "\"})" },
	[O_WAIT] = { .name = "wait",
		     .arg = "SECONDS",
		     .type = SMC_OPT_STRING,
		     .help = "wait that long for a network configuration",
		     .def = "0" },
	[O_FORCE] = { .name = "force",
		      .help = "enable on a kernel known to lack a sockmap fix (see doctor)" },
	[O_GRACE] = { .name = "grace",
		      .arg = "SECONDS",
		      .type = SMC_OPT_STRING,
		      .help = "first stop capturing, then wait up to SECONDS for the proxy to take "
			      "the connections already captured (0: remove at once)",
		      .def = "5" },
	[O_TAP_PORT] = { .name = "port",
			 .arg = "PORT",
			 .type = SMC_OPT_STRING,
			 .help = "only connections with this client or server (original destination) "
				 "port" },
	[O_TAP_PID] = { .name = "pid",
			.arg = "PID",
			.type = SMC_OPT_STRING,
			.help = "only connections that process sent on (from its first send)" },
	[O_SNAPLEN] = { .name = "snaplen",
			.arg = "BYTES",
			.type = SMC_OPT_STRING,
			.help = "payload bytes kept of each send (0: all)",
			.def = "0" },
	[O_TAP_COUNT] = { .name = "count",
			  .short_opt = 'c',
			  .arg = "COUNT",
			  .type = SMC_OPT_STRING,
			  .help = "stop after COUNT payload segments (tap) or records (flows)" },
	[O_DURATION] = { .name = "duration",
			 .arg = "SECONDS",
			 .type = SMC_OPT_STRING,
			 .help = "stop after SECONDS" },
	[O_WRITE] = { .name = "write",
		      .short_opt = 'w',
		      .arg = "FILE|-",
		      .type = SMC_OPT_STRING,
		      .help = "write pcapng to FILE, or to stdout with - (required)" },
	[O_RING_SIZE] = { .name = "ring-size",
			  .arg = "BYTES",
			  .type = SMC_OPT_STRING,
			  .help = "the ring buffer: a power of two, 4K..1G (tap: 16M, flows: 1M)" },
	[O_TO] = { .name = "to",
		   .arg = "ADDR:PORT",
		   .type = SMC_OPT_STRING,
		   .help = "the shadow server to replay to (required)" },
	[O_SPEED] = { .name = "speed",
		      .arg = "X",
		      .type = SMC_OPT_STRING,
		      .help = "pace as captured, X times as fast (0: as fast as possible)",
		      .def = "0" },
	[O_FOLLOW] = { .name = "follow",
		       .short_opt = 'f',
		       .help = "keep following until interrupted (else stop after --duration, "
			       "default 10 s)" },
	[O_FLOW_JSON] = { .name = "json",
			  .short_opt = 'j',
			  .help = "one JSON object per line (else an aligned table)" },
	[O_INTERVAL] = { .name = "interval",
			 .arg = "SECONDS",
			 .type = SMC_OPT_STRING,
			 .help = "a record of each open connection every SECONDS",
			 .def = "10" },
	[O_MAX_FLOWS] = { .name = "max-flows",
			  .arg = "N",
			  .type = SMC_OPT_STRING,
			  .help = "connections open at once it can follow (more are counted lost)",
			  .def = "65536" },
	[O_HELP] = { .name = "help",
		     .short_opt = 'h',
		     .flags = SMC_OPT_HELP | SMC_OPT_HIDE_SHORT,
		     .help = "show this help" },
};

/* enable takes the scope, every policy and load field, and annotations */
static int enable_opts[O_COUNT + 1];

static void opts_init(void)
{
	int n = 0;

	for (int o = 0; o < O_COUNT; o++) {
		const struct sockmesh_field_desc *f;

		cli_opts[o].id = o;
		if (o < O_FIELD0)
			continue;
		f = sockmesh_field((unsigned int)(o - O_FIELD0));
		cli_opts[o] = (struct smc_opt){
			.id = o,
			.name = f->option,
			.short_opt = f->short_opt,
			.arg = f->arg,
			.type = f->arg ? SMC_OPT_STRING : SMC_OPT_FLAG,
			.help = f->help,
			.def = f->default_text,
		};
	}
	/* where first (--pin-dir is a global option), then what */
	for (int pass = 0; pass < 2; pass++)
		for (int o = O_FIELD0; o < O_COUNT; o++) {
			const struct sockmesh_field_desc *f =
				sockmesh_field((unsigned)(o - O_FIELD0));

			if ((f->kind == SOCKMESH_FK_WHERE) == (pass == 0) &&
			    f->id != SOCKMESH_F_PIN_DIR)
				enable_opts[n++] = o;
		}
	enable_opts[n++] = O_ANNOTATIONS;
	enable_opts[n++] = O_FORCE;
	enable_opts[n++] = O_HELP;
	enable_opts[n] = -1;
}

struct cmd_args {
	const char *val[O_COUNT];
	bool set[O_COUNT];
	const char *extra; /* the one argument of a command that takes one */
};

struct cmd {
	const char *name;
	int (*fn)(struct cmd_args *a);
	const char *summary;
	const int *opts; /* -1 terminated */
	const char *arg; /* the one argument it takes (usage), or NULL */
};

static int cmd_opts(const struct cmd *c, struct smc_opts *set, char *prog, size_t len)
{
	snprintf(prog, len, "sockmesh %s", c->name);
	smc_opts_init(set, prog);
	return smc_opts_add_ids(set, cli_opts, O_COUNT, c->opts);
}

static void usage_cmd(FILE *f, const struct cmd *c)
{
	struct smc_opts set;
	char prog[64];

	fprintf(f, "Usage: sockmesh [-j] [-v] [--pin-dir DIR] %s [options]%s%s\n  %s\n", c->name,
		c->arg ? " " : "", c->arg ? c->arg : "", c->summary);
	if (cmd_opts(c, &set, prog, sizeof(prog)) == 0)
		smc_opts_help(f, &set, 4, 34);
}

static int parse_cmd_args(const struct cmd *c, int argc, char **argv, struct cmd_args *a)
{
	struct smc_opts set;
	char prog[64];
	int err;

	memset(a, 0, sizeof(*a));
	if (cmd_opts(c, &set, prog, sizeof(prog)))
		return fail(EXIT_FAIL, "%s: internal: bad option table", c->name);
	set.allow_args = c->arg != NULL;
	set.permute = c->arg != NULL;
	err = smc_opts_parse(&set, argc, argv);
	if (err == SMC_OPTS_HELP) {
		usage_cmd(stdout, c);
		exit(0);
	}
	if (err)
		return fail(EXIT_USAGE, "%s: %s", c->name, set.err.msg);
	if (c->arg && set.optind < argc) {
		if (set.optind + 1 < argc)
			return fail(EXIT_USAGE, "%s: one %s only, not also '%s'", c->name, c->arg,
				    argv[set.optind + 1]);
		a->extra = argv[set.optind];
	}
	for (const int *o = c->opts; *o >= 0; o++) {
		a->set[*o] = smc_opts_isset(&set, *o);
		a->val[*o] = smc_opts_str(&set, *o);
	}
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
static int read_annotations(const char *path, struct sockmesh_annotations **ann)
{
	char *buf, msg[1024];

	buf = smc_read_file("--from-annotations", path, 1u << 20, NULL);
	if (!buf)
		return fail(errno == ENOMEM ? EXIT_FAIL : EXIT_USAGE, "%s", smc_errmsg());
	*ann = sockmesh_annotations__parse(buf);
	free(buf);
	if (!*ann)
		return fail(EXIT_USAGE, "--from-annotations: %s",
			    sockmesh_errmsg_as(SOCKMESH_NAMES_ANNOTATION, msg, sizeof(msg)));
	return 0;
}

/* The running kernel and the sockmap fixes sockmesh depends on: refused
 * where one is known missing (unless force), a warning where it cannot be
 * told (vendor kernels).
 */
static int kernel_guard(bool force)
{
	char detail[512];
	int v = sockmesh_kernel_sockmap_fixes(NULL, NULL, detail, sizeof(detail));

	if (v == SOCKMESH_KERNEL_AFFECTED && !force)
		return fail(EXIT_FAIL, "enable: kernel %s; --force enables anyway", detail);
	if (v == SOCKMESH_KERNEL_AFFECTED || v == SOCKMESH_KERNEL_UNKNOWN)
		fprintf(stderr, "sockmesh: warning: kernel %s\n", detail);
	return 0;
}

static int cmd_enable(struct cmd_args *a)
{
	struct sockmesh_policy pol = { .sz = sizeof(pol) };
	struct sockmesh_annotations *ann = NULL;
	struct sockmesh_open_opts oo = { .sz = sizeof(oo) };
	struct sockmesh_scope scope;
	struct sockmesh *sm;
	__u64 explicit = 0;
	bool have;
	int err;

	err = parse_scope(a, "enable", false, true, &scope, &have);
	if (err)
		return err;
	if (a->set[O_ATTACH_CGROUP] && scope.kind == SOCKMESH_SCOPE_CGROUP)
		return fail(
			EXIT_USAGE,
			"enable: --attach-cgroup goes with --netns; a --cgroup scope attaches at its own cgroup");
	/* Every policy and load option goes through the schema: one parser,
	 * one range, one message per field.
	 */
	for (int o = O_FIELD0; o < O_COUNT; o++) {
		enum sockmesh_field f = (enum sockmesh_field)(o - O_FIELD0);
		const struct sockmesh_field_desc *d;

		if (!a->set[o])
			continue;
		d = sockmesh_field(f);
		/* refused before anything is loaded (enroll refuses it too) */
		if ((d->flags & SOCKMESH_FIELD_NETNS_ONLY) && scope.kind != SOCKMESH_SCOPE_NETNS)
			return fail(
				EXIT_USAGE,
				"enable: --%s: '%s' only applies to a netns (pod) scope, not a cgroup scope",
				d->option, a->val[o] ? a->val[o] : "");
		if (d->kind == SOCKMESH_FK_POLICY) {
			err = sockmesh_policy__set(&pol, f, a->val[o]);
			explicit |= 1ull << f;
		} else if (d->kind == SOCKMESH_FK_LOAD) {
			err = sockmesh_open_opts__set(&oo, f, a->val[o]);
		}
		if (err)
			return fail_lib(err, "enable");
	}
	if (a->set[O_ANNOTATIONS]) {
		err = read_annotations(a->val[O_ANNOTATIONS], &ann);
		if (err)
			return err;
		/* explicit options win over annotations */
		err = sockmesh_annotations__apply(ann, &pol, explicit);
		if (err) {
			sockmesh_annotations__free(ann);
			return fail_lib(err, "enable");
		}
	}
	/* Validate everything before anything is loaded or attached. */
	err = sockmesh_policy__validate(&pol);
	if (err) {
		sockmesh_annotations__free(ann);
		return fail_lib(err, "enable");
	}
	if (a->set[O_ATTACH_CGROUP]) {
		struct sockmesh_scope tmp;

		err = sockmesh_scope_from_cgroup(a->val[O_ATTACH_CGROUP], &tmp);
		if (err) {
			char msg[1024];

			sockmesh_annotations__free(ann);
			return fail(EXIT_USAGE, "enable: --attach-cgroup: %s",
				    sockmesh_errmsg_as(SOCKMESH_NAMES_CLI, msg, sizeof(msg)));
		}
	}

	/* A kernel known to panic or corrupt under splicing: not without
	 * --force. After the input checks (a typo is still exit 2), before
	 * anything is loaded.
	 */
	err = kernel_guard(a->set[O_FORCE]);
	if (err) {
		sockmesh_annotations__free(ann);
		return err;
	}
	oo.pin_dir = pin_dir;
	oo.create = true;
	sm = sockmesh__open(&oo);
	if (!sm) {
		err = -errno;
		sockmesh_annotations__free(ann);
		return fail_lib(err, "enable");
	}
	err = sockmesh__enroll(sm, &scope, a->val[O_ATTACH_CGROUP], &pol);
	sockmesh_annotations__free(ann);
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
	uint32_t grace = 5;
	__u64 left = 0;
	bool have;
	int err;

	err = parse_scope(a, "disable", true, true, &scope, &have);
	if (err)
		return err;
	if (a->set[O_GRACE] && smc_parse_u32("--grace", a->val[O_GRACE], 3600, &grace))
		return fail(EXIT_USAGE, "disable: %s (seconds, 0-3600)", smc_errmsg());
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
	/* Graceful: nothing new is captured from here on; what was captured
	 * keeps its original destination until its proxy took it.
	 */
	err = grace ? sockmesh__drain(sm, a->set[O_ALL] ? NULL : &scope, grace * 1000, &left) : 0;
	if (err == -ETIMEDOUT) {
		fprintf(stderr, "sockmesh: disable: %s; removing anyway\n", sockmesh_errmsg());
		err = 0;
	}
	if (!err && a->set[O_ALL])
		err = sockmesh__destroy(sm);
	else if (!err)
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
		json_object_object_add(o, "fail_open", json_object_new_boolean(i->fail_open));
		json_object_object_add(o, "draining", json_object_new_boolean(i->draining));
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

/* A name or label for text output, C-escaped (spaces too): whatever a pod's
 * labels or a cgroup's path hold, a scope's lines stay its own and each name
 * one field. buf: 4 bytes per byte of the name (sockmesh.h's fields hold
 * up to 255).
 */
#define ESC_LEN (4 * 256)

static const char *esc(char *buf, const char *s)
{
	return smc_text_escape(buf, ESC_LEN, s, SMC_ESC_QUOTE | SMC_ESC_SPACE);
}

static void print_scope_text(struct sockmesh *sm, const struct sockmesh_scope_info *i,
			     bool with_stats)
{
	char e1[ESC_LEN], e2[ESC_LEN], e3[ESC_LEN];

	printf("%-6s %-40s id %llu\n", kind_name(i->scope.kind), esc(e1, i->scope.name),
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
		printf(", splice %s, no proxy: %s, attached at cgroup id %llu\n",
		       i->splice ? "on" : "off", i->fail_open ? "fail open" : "refuse",
		       (unsigned long long)i->attach_cgroup_id);
		if (i->draining)
			printf("    draining: capturing nothing new, being removed\n");
		if (i->inbound_port)
			printf("    inbound capture to port %u\n", i->inbound_port);
		if (i->dns_port)
			printf("    DNS capture to port %u\n", i->dns_port);
		if (i->pod_name[0])
			printf("    pod %s/%s container %s\n", esc(e1, i->pod_namespace),
			       esc(e2, i->pod_name), esc(e3, i->container_id));
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
		} else if (ticks && smc_proc_start_ticks(pid) != ticks) {
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
	if (!with_stats) {
		__u32 tap_pid = 0;
		int tap = sockmesh__tap_running(sm, &tap_pid);

		daemon_status(a, root);
		if (json_mode) {
			json_object *t = json_object_new_object();

			json_object_object_add(t, "running", json_object_new_boolean(tap > 0));
			if (tap > 0 && tap_pid)
				json_object_object_add(t, "pid", json_object_new_int64(tap_pid));
			json_object_object_add(root, "tap", t);
		} else if (tap > 0) {
			printf("tap: running (pid %u)\n", tap_pid);
		} else {
			printf("tap: none\n");
		}
		tap_pid = 0;
		tap = sockmesh__flows_running(sm, &tap_pid);
		if (json_mode) {
			json_object *t = json_object_new_object();

			json_object_object_add(t, "running", json_object_new_boolean(tap > 0));
			if (tap > 0 && tap_pid)
				json_object_object_add(t, "pid", json_object_new_int64(tap_pid));
			json_object_object_add(root, "flows", t);
		} else if (tap > 0) {
			printf("flows: followed (pid %u)\n", tap_pid);
		} else {
			printf("flows: not followed\n");
		}
	}
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

struct doctor_out {
	json_object *arr; /* -j */
};

static void doctor_check(const struct sockmesh_check *c, void *ctx)
{
	struct doctor_out *d = ctx;

	if (d->arr) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "check", json_object_new_string(c->name));
		json_object_object_add(o, "ok", json_object_new_boolean(c->ok));
		json_object_object_add(o, "detail", json_object_new_string(c->detail));
		json_object_array_add(d->arr, o);
	} else {
		printf("  [%s] %-36s %s\n", c->ok ? " ok " : "FAIL", c->name, c->detail);
	}
}

static int cmd_doctor(struct cmd_args *a)
{
	struct doctor_out d = { .arr = json_mode ? json_object_new_array() : NULL };
	struct utsname u;
	int bad;

	(void)a;
	uname(&u);
	if (!json_mode)
		printf("kernel %s\n", u.release);
	bad = sockmesh_probe_kernel(doctor_check, &d);
	if (json_mode) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "kernel", json_object_new_string(u.release));
		json_object_object_add(o, "checks", d.arr);
		print_json(o);
		json_object_put(o);
	}
	return bad ? EXIT_FAIL : 0;
}

/* ---- tap and replay --------------------------------------------------------- */

static int opt_u32(struct cmd_args *a, int o, const char *cmd, __u32 max, __u32 *out)
{
	char field[64];

	*out = 0;
	if (!a->set[o])
		return 0;
	snprintf(field, sizeof(field), "--%s", cli_opts[o].name);
	if (smc_parse_u32(field, a->val[o], max, out))
		return fail(EXIT_USAGE, "%s: %s", cmd, smc_errmsg());
	return 0;
}

static void tap_ready(void *ctx)
{
	const char *where = ctx;

	if (verbose)
		fprintf(stderr, "sockmesh tap: tapping %s\n", where);
}

static int cmd_tap(struct cmd_args *a)
{
	struct sockmesh_open_opts oo = { .sz = sizeof(oo), .pin_dir = pin_dir };
	struct sockmesh_scope scope;
	struct tap_args ta = { 0 };
	struct tap_result res;
	__u32 port, v;
	struct sockmesh *sm;
	const char *path;
	bool have, to_stdout;
	FILE *out;
	int err;

	err = parse_scope(a, "tap", true, false, &scope, &have);
	if (err)
		return err;
	if (!a->set[O_WRITE])
		return fail(EXIT_USAGE, "tap: -w FILE|- is required (- writes to stdout)");
	path = a->val[O_WRITE];
	if (!path[0])
		return fail(EXIT_USAGE, "tap: -w: empty file name");
	if (opt_u32(a, O_TAP_PORT, "tap", 65535, &port) ||
	    opt_u32(a, O_TAP_PID, "tap", 0x7fffffff, &ta.pid) ||
	    opt_u32(a, O_SNAPLEN, "tap", 1u << 30, &ta.snaplen) ||
	    opt_u32(a, O_DURATION, "tap", 31u * 24 * 3600, &ta.duration_s) ||
	    opt_u32(a, O_TAP_COUNT, "tap", 0xffffffffu, &v))
		return EXIT_USAGE;
	if (a->set[O_TAP_PORT] && !port)
		return fail(EXIT_USAGE, "tap: --port: '0' is out of range (1..65535)");
	if (a->set[O_TAP_PID] && !ta.pid)
		return fail(EXIT_USAGE, "tap: --pid: '0' is not a process id");
	if (a->set[O_DURATION] && !ta.duration_s)
		return fail(EXIT_USAGE, "tap: --duration: '0' is out of range (1 second or more)");
	if (a->set[O_TAP_COUNT] && !v)
		return fail(EXIT_USAGE, "tap: -c: '0' is out of range (1 or more)");
	ta.count = v;
	ta.port = (__u16)port;
	if (a->set[O_RING_SIZE]) {
		uint64_t rs;

		if (smc_parse_size("--ring-size", a->val[O_RING_SIZE], 4096, 1ull << 30, &rs))
			return fail(EXIT_USAGE, "tap: %s", smc_errmsg());
		ta.ring_size = rs;
	}
	if (ta.ring_size & (ta.ring_size - 1))
		return fail(EXIT_USAGE, "tap: --ring-size: '%s' is not a power of two",
			    a->val[O_RING_SIZE]);
	ta.scope = have ? &scope : NULL;
	ta.ready = tap_ready;
	ta.ready_ctx = have ? scope.name : "every scope";

	sm = sockmesh__open(&oo);
	if (!sm) {
		if (errno == ENOENT)
			return fail(EXIT_FAIL, "tap: nothing is loaded at pin dir %s", pin_dir);
		return fail_lib(-errno, "tap");
	}
	if (have) {
		struct sockmesh_scope_info info = { .sz = sizeof(info) };

		err = sockmesh__scope_info(sm, &scope, &info);
		if (err) {
			sockmesh__close(sm);
			return fail(EXIT_USAGE, "tap: '%s' is not enrolled", scope.name);
		}
	}
	to_stdout = !strcmp(path, "-");
	if (to_stdout && isatty(STDOUT_FILENO)) {
		sockmesh__close(sm);
		return fail(EXIT_USAGE,
			    "tap: -w -: stdout is a terminal; pipe it (| tshark -r -) or "
			    "give a file");
	}
	out = to_stdout ? stdout : fopen(path, "we");
	if (!out) {
		err = errno;
		sockmesh__close(sm);
		return fail(EXIT_FAIL, "tap: -w '%s': %s", path, strerror(err));
	}
	err = cli_tap_run(sm, &ta, out, &res);
	if (!to_stdout && fclose(out) && !err)
		err = -errno;
	sockmesh__close(sm);
	if (err == -EBUSY || err == -EINVAL)
		return fail(err == -EBUSY ? EXIT_FAIL : EXIT_USAGE, "tap: %s", sockmesh_errmsg());
	if (err) {
		if (err == -ENOSPC || err == -EIO)
			return fail(EXIT_FAIL, "tap: -w '%s': %s", path, strerror(-err));
		return fail(EXIT_FAIL, "tap: %s", sockmesh_errmsg());
	}
	fprintf(stderr,
		"sockmesh tap: %llu records, %llu frames, %llu connections; lost %llu records "
		"(%llu bytes)\n",
		(unsigned long long)res.records, (unsigned long long)res.frames,
		(unsigned long long)res.connections, (unsigned long long)res.lost_records,
		(unsigned long long)res.lost_bytes);
	return 0;
}

static void flows_ready(void *ctx)
{
	const char *where = ctx;

	if (verbose)
		fprintf(stderr, "sockmesh flows: following %s\n", where);
}

static int cmd_flows(struct cmd_args *a)
{
	struct sockmesh_open_opts oo = { .sz = sizeof(oo), .pin_dir = pin_dir };
	struct sockmesh_scope scope;
	struct flows_args fa = { 0 };
	struct flows_result res;
	struct sockmesh *sm;
	bool have;
	__u32 v;
	int err;

	err = parse_scope(a, "flows", true, false, &scope, &have);
	if (err)
		return err;
	if (opt_u32(a, O_INTERVAL, "flows", 86400, &fa.interval_s) ||
	    opt_u32(a, O_MAX_FLOWS, "flows", 1u << 24, &fa.max_flows) ||
	    opt_u32(a, O_DURATION, "flows", 31u * 24 * 3600, &fa.duration_s) ||
	    opt_u32(a, O_TAP_COUNT, "flows", 0xffffffffu, &v))
		return EXIT_USAGE;
	if (a->set[O_INTERVAL] && !fa.interval_s)
		return fail(EXIT_USAGE, "flows: --interval: '0' is out of range (1..86400)");
	if (a->set[O_MAX_FLOWS] && !fa.max_flows)
		return fail(EXIT_USAGE, "flows: --max-flows: '0' is out of range (1..16777216)");
	if (a->set[O_DURATION] && !fa.duration_s)
		return fail(EXIT_USAGE,
			    "flows: --duration: '0' is out of range (1 second or more)");
	if (a->set[O_TAP_COUNT] && !v)
		return fail(EXIT_USAGE, "flows: -c: '0' is out of range (1 or more)");
	if (a->set[O_FOLLOW] && a->set[O_DURATION])
		return fail(EXIT_USAGE,
			    "flows: --follow and --duration '%s' both say when to stop: give one",
			    a->val[O_DURATION]);
	fa.count = v;
	if (!a->set[O_FOLLOW] && !a->set[O_DURATION])
		fa.duration_s = 10;
	if (a->set[O_RING_SIZE]) {
		uint64_t rs;

		if (smc_parse_size("--ring-size", a->val[O_RING_SIZE], 4096, 1ull << 30, &rs))
			return fail(EXIT_USAGE, "flows: %s", smc_errmsg());
		if (rs & (rs - 1))
			return fail(EXIT_USAGE, "flows: --ring-size: '%s' is not a power of two",
				    a->val[O_RING_SIZE]);
		fa.ring_size = rs;
	}
	fa.json = json_mode || a->set[O_FLOW_JSON];
	fa.scope = have ? &scope : NULL;
	fa.ready = flows_ready;
	fa.ready_ctx = have ? scope.name : "every scope";

	sm = sockmesh__open(&oo);
	if (!sm) {
		if (errno == ENOENT)
			return fail(EXIT_FAIL, "flows: nothing is loaded at pin dir %s", pin_dir);
		return fail_lib(-errno, "flows");
	}
	if (have) {
		struct sockmesh_scope_info info = { .sz = sizeof(info) };

		err = sockmesh__scope_info(sm, &scope, &info);
		if (err) {
			sockmesh__close(sm);
			return fail(EXIT_USAGE, "flows: '%s' is not enrolled", scope.name);
		}
	}
	err = cli_flows_run(sm, &fa, stdout, &res);
	sockmesh__close(sm);
	if (err == -EBUSY || err == -EINVAL)
		return fail(err == -EBUSY ? EXIT_FAIL : EXIT_USAGE, "flows: %s", sockmesh_errmsg());
	if (err)
		return fail(EXIT_FAIL, "flows: %s",
			    err == -EIO || err == -ENOSPC ? strerror(-err) : sockmesh_errmsg());
	if (verbose || res.lost_records || res.lost_flows)
		fprintf(stderr,
			"sockmesh flows: %llu records; lost %llu records, %llu connections\n",
			(unsigned long long)res.records, (unsigned long long)res.lost_records,
			(unsigned long long)res.lost_flows);
	return 0;
}

static int cmd_replay(struct cmd_args *a)
{
	struct sm_replay_opts ro = { .speed = 0, .log = stderr };
	struct smc_addr to;
	char errbuf[512], *end;
	const char *file;
	size_t len = 0;
	char *buf;
	int n;

	if (!a->set[O_TO])
		return fail(EXIT_USAGE, "replay: --to ADDR:PORT is required");
	if (smc_parse_addr("--to", a->val[O_TO], SMC_ADDR_PORT, &to))
		return fail(EXIT_USAGE, "replay: %s", smc_errmsg());
	if (a->set[O_SPEED]) {
		errno = 0;
		ro.speed = strtod(a->val[O_SPEED], &end);
		if (errno || end == a->val[O_SPEED] || *end || !(ro.speed >= 0) || ro.speed > 1e6)
			return fail(EXIT_USAGE,
				    "replay: --speed: '%s' is not a number from 0 to 1000000",
				    a->val[O_SPEED]);
	}
	file = a->extra;
	if (!file)
		return fail(EXIT_USAGE, "replay: a pcapng FILE (from sockmesh tap) is required");
	buf = smc_read_bytes("FILE", file, (size_t)1 << 40, &len);
	if (!buf)
		return fail(EXIT_FAIL, "replay: %s", smc_errmsg());
	n = sm_replay((const uint8_t *)buf, len, (const struct sockaddr *)&to.ss, to.len, &ro,
		      errbuf, sizeof(errbuf));
	free(buf);
	if (n < 0)
		return fail(n == -EINVAL ? EXIT_USAGE : EXIT_FAIL, "replay: %s", errbuf);
	if (json_mode) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "connections", json_object_new_int(n));
		print_json(o);
		json_object_put(o);
	} else {
		printf("replayed %d connections\n", n);
	}
	return 0;
}

/* ---- upgrade -------------------------------------------------------------- */

static int cmd_upgrade(struct cmd_args *a)
{
	struct sockmesh_upgrade_info ui = { .sz = sizeof(ui) };
	int err;

	(void)a;
	err = sockmesh_upgrade(pin_dir, &ui);
	if (err)
		return fail(EXIT_FAIL, "upgrade: %s", sockmesh_errmsg());
	if (json_mode) {
		json_object *o = json_object_new_object();
		char from[24], to[24];

		snprintf(from, sizeof(from), "%016llx", (unsigned long long)ui.from_build_id);
		snprintf(to, sizeof(to), "%016llx", (unsigned long long)ui.to_build_id);
		json_object_object_add(o, "upgraded", json_object_new_boolean(ui.upgraded));
		json_object_object_add(o, "from_build", json_object_new_string(from));
		json_object_object_add(o, "to_build", json_object_new_string(to));
		json_object_object_add(o, "links_updated", json_object_new_int64(ui.links_updated));
		json_object_object_add(o, "maps_kept", json_object_new_int64(ui.maps_kept));
		json_object_object_add(o, "maps_migrated", json_object_new_int64(ui.maps_migrated));
		json_object_object_add(o, "counters_lost",
				       json_object_new_boolean(ui.counters_lost));
		print_json(o);
		json_object_put(o);
	} else if (!ui.upgraded) {
		printf("already running this build (%016llx)\n",
		       (unsigned long long)ui.to_build_id);
	} else {
		printf("upgraded %016llx -> %016llx: %u links updated in place, %u maps kept, %u migrated%s\n",
		       (unsigned long long)ui.from_build_id, (unsigned long long)ui.to_build_id,
		       ui.links_updated, ui.maps_kept, ui.maps_migrated,
		       ui.counters_lost ? " (some counters not carried over)" : "");
	}
	return 0;
}

/* ---- uninstall ------------------------------------------------------------ */

static int is_conflist(const struct dirent *e)
{
	return smc_cni_is_conflist_name(e->d_name);
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

/* Take every sockmesh-cni entry out of one conflist (user/common does the
 * editing) and report it. Returns 0, or -1 when the file names sockmesh-cni
 * but could not be edited.
 */
static int conflist_remove_plugin(const char *path, json_object *files, json_object *errs)
{
	json_object *rep = json_object_new_object();
	const char *action;
	char msg[PATH_MAX + 128];
	int removed = smc_cni_unchain(path, CNI_PLUGIN_TYPE, &action, msg, sizeof(msg));

	if (removed < 0)
		uninstall_err(errs, "%s", msg);
	json_object_object_add(rep, "file", json_object_new_string(path));
	json_object_object_add(rep, "removed_plugins",
			       json_object_new_int(removed > 0 ? removed : 0));
	json_object_object_add(rep, "action", json_object_new_string(action));
	json_object_array_add(files, rep);
	if (!json_mode && removed > 0)
		printf("removed %s from %s%s\n", CNI_PLUGIN_TYPE, path,
		       strncmp(action, "deleted", 7) ? "" :
						       " (deleted the file: nothing else in it)");
	return removed < 0 ? -1 : 0;
}

/* ---- cni-install ----------------------------------------------------------- */

/* Where a node image keeps the plugin. */
static const char *const cni_bin_candidates[] = {
	"/usr/lib/sockmesh/" CNI_PLUGIN_TYPE,
	"/usr/libexec/cni/" CNI_PLUGIN_TYPE,
	"/usr/local/libexec/cni/" CNI_PLUGIN_TYPE,
	"/usr/sbin/" CNI_PLUGIN_TYPE,
	"/usr/bin/" CNI_PLUGIN_TYPE,
};

static int cmd_cni_install(struct cmd_args *a)
{
	const char *conf_dir =
		a->set[O_CNI_CONF_DIR] ? a->val[O_CNI_CONF_DIR] : CNI_CONF_DIR_DEFAULT;
	const char *bin_dir = a->set[O_CNI_BIN_DIR] ? a->val[O_CNI_BIN_DIR] : CNI_BIN_DIR_DEFAULT;
	const char *bin = a->val[O_PLUGIN_BIN];
	char name[NAME_MAX + 1], path[PATH_MAX], msg[PATH_MAX + 256];
	unsigned long wait_s = 0;
	json_object *entry;
	struct stat st;
	int installed, chained, err = -ENOENT;

	if (a->set[O_WAIT]) {
		uint32_t v;

		if (smc_parse_u32("--wait", a->val[O_WAIT], 86400, &v))
			return fail(EXIT_USAGE, "cni-install: %s (seconds, 0-86400)", smc_errmsg());
		wait_s = v;
	}
	entry = smc_cni_plugin_entry(a->val[O_PLUGIN_CONF], CNI_PLUGIN_TYPE);
	if (!entry)
		return fail(
			EXIT_USAGE,
			"cni-install: --plugin-conf: '%.200s' is not a JSON object with \"type\": \"%s\" (nor a conflist holding one)",
			a->val[O_PLUGIN_CONF] ? a->val[O_PLUGIN_CONF] : "(default)",
			CNI_PLUGIN_TYPE);
	for (size_t i = 0; !bin && i < sizeof(cni_bin_candidates) / sizeof(cni_bin_candidates[0]);
	     i++)
		if (access(cni_bin_candidates[i], X_OK) == 0)
			bin = cni_bin_candidates[i];
	if (!bin || stat(bin, &st) || !S_ISREG(st.st_mode)) {
		json_object_put(entry);
		return fail(EXIT_FAIL, "cni-install: --plugin-bin: '%s' is not a file",
			    bin ? bin : "(none of the image's places has " CNI_PLUGIN_TYPE ")");
	}
	if (stat(bin_dir, &st) || !S_ISDIR(st.st_mode) || stat(conf_dir, &st) ||
	    !S_ISDIR(st.st_mode)) {
		json_object_put(entry);
		return fail(
			EXIT_FAIL,
			"cni-install: --cni-bin-dir '%s' and --cni-conf-dir '%s' must be directories",
			bin_dir, conf_dir);
	}
	installed = smc_install_file(bin, bin_dir, CNI_PLUGIN_TYPE, msg, sizeof(msg));
	if (installed < 0) {
		json_object_put(entry);
		return fail(EXIT_FAIL, "cni-install: %s", msg);
	}
	for (unsigned long i = 0; i <= wait_s; i++) {
		err = smc_cni_first_config(conf_dir, name, sizeof(name));
		if (err != -ENOENT)
			break;
		if (i < wait_s)
			sleep(1);
	}
	if (err) {
		json_object_put(entry);
		return fail(
			EXIT_FAIL,
			"cni-install: no CNI network configuration in %s after %lus (is the primary CNI installed?)",
			conf_dir, wait_s);
	}
	snprintf(path, sizeof(path), "%s/%s", conf_dir, name);
	if (!smc_cni_is_conflist_name(name)) {
		json_object_put(entry);
		return fail(
			EXIT_FAIL,
			"cni-install: %s is a single-plugin configuration: %s chains only into a .conflist",
			path, CNI_PLUGIN_TYPE);
	}
	chained = smc_cni_chain(path, entry, CNI_PLUGIN_TYPE, msg, sizeof(msg));
	json_object_put(entry);
	if (chained < 0)
		return fail(EXIT_FAIL, "cni-install: %s", msg);
	if (json_mode) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "plugin", json_object_new_string(bin));
		json_object_object_add(o, "binary_updated", json_object_new_boolean(installed));
		json_object_object_add(o, "conflist", json_object_new_string(path));
		json_object_object_add(o, "conflist_updated", json_object_new_boolean(chained));
		print_json(o);
		json_object_put(o);
	} else {
		printf("%s %s/%s\n", installed ? "installed" : "up to date:", bin_dir,
		       CNI_PLUGIN_TYPE);
		printf("%s %s %s\n", chained ? "chained" : "already chained:", CNI_PLUGIN_TYPE,
		       path);
	}
	return 0;
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

	/* the kernel state, as disable --all (graceful, 5 s grace; a drain
	 * that times out removes anyway)
	 */
	sm = sockmesh__open(&oo);
	if (!sm && errno == ENOENT) {
		kstate = "absent";
	} else if (!sm) {
		uninstall_err(errs, "--pin-dir: %s", sockmesh_errmsg());
		kstate = "error";
		bad = 1;
	} else {
		sockmesh__drain(sm, NULL, 5000, NULL); /* a timeout removes anyway */
		if (sockmesh__destroy(sm)) {
			uninstall_err(errs, "%s", sockmesh_errmsg());
			kstate = "error";
			bad = 1;
		} else {
			kstate = "removed";
		}
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

static const int disable_opts[] = { O_CGROUP, O_NETNS, O_ALL, O_GRACE, O_HELP, -1 };
static const int scope_opts[] = { O_CGROUP, O_NETNS, O_HELP, -1 };
static const int status_opts[] = { O_CGROUP, O_NETNS, O_STATE_FILE, O_HELP, -1 };
static const int uninstall_opts[] = { O_CNI_CONF_DIR, O_CNI_BIN_DIR, O_STATE_FILE, O_HELP, -1 };
static const int no_opts[] = { O_HELP, -1 };
static const int tap_opts[] = { O_CGROUP,    O_NETNS,	 O_ALL,	  O_TAP_PORT,  O_TAP_PID, O_SNAPLEN,
				O_TAP_COUNT, O_DURATION, O_WRITE, O_RING_SIZE, O_HELP,	  -1 };
static const int flows_opts[] = { O_CGROUP,   O_NETNS,	   O_ALL,	O_FLOW_JSON,
				  O_FOLLOW,   O_INTERVAL,  O_MAX_FLOWS, O_TAP_COUNT,
				  O_DURATION, O_RING_SIZE, O_HELP,	-1 };
static const int replay_opts[] = { O_TO, O_SPEED, O_HELP, -1 };
static const int cni_install_opts[] = {
	O_CNI_BIN_DIR, O_CNI_CONF_DIR, O_PLUGIN_BIN, O_PLUGIN_CONF, O_WAIT, O_HELP, -1
};

static const struct cmd cmds[] = {
	{ "enable", cmd_enable, "capture a cgroup's or a netns' outbound TCP into the local proxy",
	  enable_opts, NULL },
	{ "disable", cmd_disable, "withdraw a scope; the last one out removes everything",
	  disable_opts, NULL },
	{ "status", cmd_status, "show what is loaded and enrolled, and the daemon", status_opts,
	  NULL },
	{ "stats", cmd_stats, "show counters per scope and global", scope_opts, NULL },
	{ "doctor", cmd_doctor, "check the kernel features sockmesh needs", no_opts, NULL },
	{ "tap", cmd_tap,
	  "write the captured connections' bytes (spliced or not) as pcapng for Wireshark",
	  tap_opts, NULL },
	{ "flows", cmd_flows,
	  "follow the captured connections: open, every interval, close (bytes, path, RTT)",
	  flows_opts, NULL },
	{ "replay", cmd_replay,
	  "send each connection's client bytes from a tap's pcapng to a shadow server", replay_opts,
	  "FILE" },
	{ "upgrade", cmd_upgrade,
	  "load this build's data path into the running instance without removing it", no_opts,
	  NULL },
	{ "cni-install", cmd_cni_install,
	  "copy sockmesh-cni into the CNI bin dir and chain it into the node's conflist",
	  cni_install_opts, NULL },
	{ "uninstall", cmd_uninstall,
	  "remove sockmesh-cni from the CNI conflists, its binary, and the kernel state",
	  uninstall_opts, NULL },
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
	opts_init();
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
