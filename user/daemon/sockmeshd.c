// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmeshd: the sockmesh node daemon (the DaemonSet's process).
 *
 * - opens the instance at --pin-dir, loading and pinning the data path if
 *   nothing is pinned yet; an instance an earlier daemon (or the CLI, or the
 *   CNI plugin) left is adopted as it is: same programs, links and scopes;
 * - every --gc-interval seconds withdraws the scopes whose network namespace
 *   or cgroup is gone (a pod deleted without CNI DEL), and loads the data
 *   path again if the last withdraw removed it;
 * - serves Prometheus /metrics and /healthz on --listen, or on --listen-host
 *   and --listen-port (an address as the downward API gives it: an IPv6 one
 *   without brackets) (libmicrohttpd);
 * - writes --state-file for `sockmesh status`;
 * - with --cni-conf-dir, keeps sockmesh-cni chained into the node's CNI
 *   configuration when the primary CNI rewrites or replaces it (cniwatch.c:
 *   inotify, and a check every gc pass); on exit the file is left as it is
 *   (`sockmesh uninstall` unchains, once the daemon has stopped);
 * - on SIGTERM/SIGINT exits 0 and leaves the data path running (it is
 *   pinned), unless --cleanup-on-exit.
 * The daemon never attaches anything itself: enrolling (CNI plugin, CLI)
 * attaches. --attach-cgroup names where netns scopes attach on this node;
 * the daemon checks it and reports the programs found there.
 *
 * Exit codes: 0 stopped by a signal, 1 failed, 2 bad usage (names the value).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>
#include <linux/magic.h>
#include <netinet/in.h>

#include <bpf/libbpf.h>
#include <json-c/json.h>
#include <microhttpd.h>

#include "sockmesh.h"
#include "addr.h"
#include "cniwatch.h"
#include "conflist.h"
#include "file.h"
#include "log.h"
#include "flowagg.h"
#include "flowthread.h"
#include "metrics.h"
#include "opts.h"
#include "parse.h"
#include "peers.h"
#include "proc.h"

#ifndef SOCKMESH_VERSION
#define SOCKMESH_VERSION "unknown"
#endif

#define EXIT_FAIL 1
#define EXIT_USAGE 2

#define DEFAULT_LISTEN_HOST "127.0.0.1"
#define DEFAULT_LISTEN_PORT "15095"
#define DEFAULT_LISTEN DEFAULT_LISTEN_HOST ":" DEFAULT_LISTEN_PORT
#define DEFAULT_STATE_FILE "/run/sockmesh/sockmeshd.json"
#define DEFAULT_GC_INTERVAL "5"
#define MAX_GC_INTERVAL 86400
/* scopes remembered as "already warned about" (cannot be checked) */
#define WARNED_MAX 256

/* ---- options ------------------------------------------------------------- */

enum {
	O_PIN_DIR,
	O_ATTACH_CGROUP,
	O_LISTEN,
	O_LISTEN_HOST,
	O_LISTEN_PORT,
	O_GC_INTERVAL,
	O_STATE_FILE,
	O_CLEANUP,
	O_LOG_FORMAT,
	O_CNI_CONF_DIR,
	O_CNI_PLUGIN_CONF,
	O_FLOWS,
	O_FLOW_LOG,
	O_FLOW_INTERVAL,
	O_VERSION,
	O_HELP,
	O_COUNT
};

/* Values are checked after the parse, in a fixed order, so that every
 * message names the option and value as it always did: the table only
 * says which options take a value.
 */
static const struct smc_opt opt_defs[O_COUNT] = {
	{ .id = O_PIN_DIR,
	  .name = "pin-dir",
	  .arg = "DIR",
	  .type = SMC_OPT_STRING,
	  .help = "bpffs directory of the sockmesh instance",
	  .def = SOCKMESH_DEFAULT_PIN_DIR },
	{ .id = O_ATTACH_CGROUP,
	  .name = "attach-cgroup",
	  .arg = "PATH",
	  .type = SMC_OPT_STRING,
	  .help = "cgroup where this node's netns scopes attach (checked, reported)",
	  .def = "the cgroup2 mount point in /proc/mounts" },
	{ .id = O_LISTEN,
	  .name = "listen",
	  .arg = "ADDR:PORT",
	  .type = SMC_OPT_STRING,
	  .help = "/metrics and /healthz; numeric IPv4 or [IPv6], port 0: any free",
	  .def = DEFAULT_LISTEN },
	/* status.hostIP, as a DaemonSet can pass it: "$(HOST_IP):PORT" is no
	 * ADDR:PORT for an IPv6 node ("fd00::1:80" is itself an address)
	 */
	{ .id = O_LISTEN_HOST,
	  .name = "listen-host",
	  .arg = "ADDR",
	  .type = SMC_OPT_STRING,
	  .help = "instead of --listen: numeric IPv4 or IPv6, brackets optional\n"
		  "(a node IP as Kubernetes' downward API gives it)",
	  .def = DEFAULT_LISTEN_HOST },
	{ .id = O_LISTEN_PORT,
	  .name = "listen-port",
	  .arg = "PORT",
	  .type = SMC_OPT_STRING,
	  .help = "instead of --listen, with --listen-host: the port, 0: any free",
	  .def = DEFAULT_LISTEN_PORT },
	{ .id = O_GC_INTERVAL,
	  .name = "gc-interval",
	  .arg = "SECONDS",
	  .type = SMC_OPT_STRING,
	  .help = "garbage-collect scopes whose netns or cgroup is gone (1-86400)",
	  .def = DEFAULT_GC_INTERVAL },
	{ .id = O_STATE_FILE,
	  .name = "state-file",
	  .arg = "FILE",
	  .type = SMC_OPT_STRING,
	  .help = "pid, listen address, pin dir, version (read by sockmesh status)",
	  .def = DEFAULT_STATE_FILE },
	{ .id = O_CLEANUP,
	  .name = "cleanup-on-exit",
	  .help = "on SIGTERM/SIGINT withdraw every scope and unpin everything",
	  .def = "off: the data path keeps running" },
	{ .id = O_LOG_FORMAT,
	  .name = "log-format",
	  .arg = "json|text",
	  .type = SMC_OPT_STRING,
	  .help = "structured log lines on stderr",
	  .def = "json" },
	{ .id = O_CNI_CONF_DIR,
	  .name = "cni-conf-dir",
	  .arg = "DIR",
	  .type = SMC_OPT_STRING,
	  .help = "keep " SMC_CNI_PLUGIN " chained into DIR's first conflist (inotify)",
	  .def = "off" },
	{ .id = O_CNI_PLUGIN_CONF,
	  .name = "cni-plugin-conf",
	  .arg = "JSON|@FILE",
	  .type = SMC_OPT_STRING,
	  .help = "the entry to chain; @FILE: a JSON object or a conflist holding one",
	  .def = "as sockmesh cni-install: the image's example, else {\"type\": \"" SMC_CNI_PLUGIN
		 "\"}" },
	{ .id = O_FLOWS,
	  .name = "flows",
	  .help = "follow flow events: per-scope connection, duration and byte series on /metrics\n"
		  "(the instance's one flow consumer: `sockmesh flows` is refused meanwhile)",
	  .def = "off" },
	{ .id = O_FLOW_LOG,
	  .name = "flow-log",
	  .arg = "FILE",
	  .type = SMC_OPT_STRING,
	  .help = "with --flows: append every flow record to FILE as a JSON line\n"
		  "(as `sockmesh flows -j`; SIGHUP reopens it after a rotation)",
	  .def = "off" },
	{ .id = O_FLOW_INTERVAL,
	  .name = "flow-interval",
	  .arg = "SECONDS",
	  .type = SMC_OPT_STRING,
	  .help = "with --flows: a record of each open connection every SECONDS (1-86400)",
	  .def = "10" },
	/* plain flags, not SMC_OPT_HELP: a bad word anywhere still exits 2 */
	{ .id = O_VERSION,
	  .name = "version",
	  .short_opt = 'V',
	  .help = "print the version and exit" },
	{ .id = O_HELP, .name = "help", .short_opt = 'h', .help = "show this help" },
};

static void usage(FILE *f, const struct smc_opts *opts)
{
	fprintf(f, "Usage: sockmeshd [options]\n"
		   "  The sockmesh node daemon: keeps the pinned data path, garbage-collects\n"
		   "  scopes whose netns or cgroup is gone, serves Prometheus metrics.\n"
		   "Options:\n");
	smc_opts_help(f, opts, 2, 32);
	fprintf(f, "Exit: 0 stopped by SIGTERM/SIGINT, 1 failed, 2 bad usage.\n"
		   "SIGHUP runs garbage collection (and the CNI check) at once, and reopens\n"
		   "the flow log.\n");
}

static int usage_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "sockmeshd: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'sockmeshd -h')\n");
	return EXIT_USAGE;
}

/* ---- daemon state -------------------------------------------------------- */

struct warned {
	__u32 kind;
	__u64 id;
};

struct daemon {
	const char *pin_dir;
	char attach_cgroup[PATH_MAX];
	char listen[128]; /* as bound: ADDR:PORT, [ADDR]:PORT */
	const char *listen_opt; /* the option that gave it, for messages */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	unsigned int gc_interval;
	const char *state_file;
	bool cleanup_on_exit;
	const char *cni_conf_dir; /* NULL: no CNI watcher */
	const char *cni_plugin_conf; /* NULL: the default entry */
	struct sd_cniwatch cni; /* cni.fd < 0: off */
	bool flows; /* --flows */
	const char *flow_log; /* --flow-log, or NULL */
	unsigned int flow_interval;
	struct sd_flowagg *flowagg; /* --flows: read by the HTTP thread */
	struct sd_flowthread *flowthread;
	int state_fd;
	double start_time;
	char start_time_str[40];
	struct MHD_Daemon *httpd;
	/* shared with the HTTP thread: __atomic builtins */
	unsigned long long gc_runs, gc_withdrawn_netns, gc_withdrawn_cgroup, gc_errors;
	long long last_gc_ms; /* CLOCK_MONOTONIC */
	/* HTTP thread only (MHD's one polling thread): connections open per
	 * peer class, and the class apc() gave the connection being added
	 */
	unsigned int http_peers[SD_PEER__COUNT];
	enum sd_peer_class http_adding;
	/* GC thread only */
	char last_open_err[512];
	struct warned warned[WARNED_MAX];
	unsigned int nwarned;
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *kind_name(enum sockmesh_scope_kind k)
{
	return k == SOCKMESH_SCOPE_CGROUP ? "cgroup" : k == SOCKMESH_SCOPE_NETNS ? "netns" : "?";
}

static json_object *scope_fields(const struct sockmesh_scope_info *i)
{
	json_object *f = sd_f_str(NULL, "kind", kind_name(i->scope.kind));

	sd_f_str(f, "scope", i->scope.name);
	sd_f_u64(f, "id", i->scope.id);
	if (i->pod_name[0]) {
		sd_f_str(f, "pod_namespace", i->pod_namespace);
		sd_f_str(f, "pod_name", i->pod_name);
	}
	return f;
}

/* ---- listen address ------------------------------------------------------ */

static void set_port(struct sockaddr_storage *a, __u16 port)
{
	if (a->ss_family == AF_INET6)
		((struct sockaddr_in6 *)a)->sin6_port = htons(port);
	else
		((struct sockaddr_in *)a)->sin_port = htons(port);
}

/* --listen ADDR:PORT, or --listen-host ADDR and --listen-port PORT (NULL:
 * not given). Two ways, not one option guessing: the downward API gives an
 * IPv6 node address without brackets, and "fd00::1:15095" appended to it
 * could be an address of its own.
 */
static int parse_listen(struct daemon *d, const char *listen, const char *host, const char *port)
{
	struct smc_addr a;
	__u32 p;

	if (listen && (host || port))
		return usage_err(
			"--listen '%s' and --listen-%s '%s' both say where to listen: give --listen ADDR:PORT, or --listen-host ADDR and --listen-port PORT",
			listen, host ? "host" : "port", host ? host : port);
	if (!host && !port) {
		if (!listen)
			listen = DEFAULT_LISTEN;
		if (smc_parse_addr("--listen", listen, SMC_ADDR_PORT | SMC_ADDR_PORT0, &a)) {
			/* a bare IPv6 address with ":PORT" appended */
			bool v6 = listen[0] != '[' && strchr(listen, ':') != strrchr(listen, ':');

			return usage_err(
				"%s%s", smc_errmsg(),
				v6 ? "; IPv6 with a port: [ADDR]:PORT, or --listen-host ADDR --listen-port PORT" :
				     "");
		}
		d->addr = a.ss;
		d->addrlen = a.len;
		d->listen_opt = "--listen";
		return 0;
	}
	if (!host)
		host = DEFAULT_LISTEN_HOST;
	if (!port)
		port = DEFAULT_LISTEN_PORT;
	if (!*host)
		return usage_err("--listen-host: '' is empty: give a numeric IPv4 or IPv6 address");
	if (smc_parse_addr("--listen-host", host, SMC_ADDR_BARE, &a))
		/* what the kubelet leaves of $(VAR) when VAR is not in the env */
		return usage_err(
			"%s%s", smc_errmsg(),
			strstr(host, "$(") ?
				" (a $(VAR) the kubelet did not expand: is VAR in the container's env?)" :
				"");
	if (smc_parse_u32("--listen-port", port, 65535, &p))
		return usage_err("--listen-port: '%s' is not a port (0-65535, 0: any free)", port);
	set_port(&a.ss, (__u16)p);
	d->addr = a.ss;
	d->addrlen = a.len;
	d->listen_opt = "--listen-host";
	return 0;
}

/* d->listen: the address as bound (port 0 resolved) */
static void format_listen(struct daemon *d, unsigned int port)
{
	struct sockaddr_storage a = d->addr;

	set_port(&a, (__u16)port);
	smc_addr_str(&a, true, d->listen, sizeof(d->listen));
}

/* ---- state file ---------------------------------------------------------- */

/* mkdir -p of the directory holding path */
static int mkdir_parents(const char *path)
{
	char p[PATH_MAX];

	if (snprintf(p, sizeof(p), "%s", path) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	for (char *s = p + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		if (mkdir(p, 0755) && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	return 0;
}

static int state_lock(struct daemon *d)
{
	int err;

	err = mkdir_parents(d->state_file);
	if (err) {
		sd_log(SD_ERROR, sd_f_str(NULL, "state_file", d->state_file),
		       "--state-file: cannot create the directory of '%s': %s", d->state_file,
		       strerror(-err));
		return -1;
	}
	d->state_fd = open(d->state_file, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (d->state_fd < 0) {
		sd_log(SD_ERROR, sd_f_str(NULL, "state_file", d->state_file),
		       "--state-file: cannot open '%s': %s", d->state_file, strerror(errno));
		return -1;
	}
	if (flock(d->state_fd, LOCK_EX | LOCK_NB)) {
		/* the holder's pid, to name it; a state file is a few hundred bytes */
		char *buf = smc_read_fd("--state-file", d->state_fd, d->state_file, 1u << 16, NULL);
		json_object *o = buf ? json_tokener_parse(buf) : NULL;
		long long pid = 0;

		free(buf);
		if (o && json_object_object_get_ex(o, "pid", NULL))
			pid = json_object_get_int64(json_object_object_get(o, "pid"));
		json_object_put(o);
		sd_log(SD_ERROR, sd_f_i64(sd_f_str(NULL, "state_file", d->state_file), "pid", pid),
		       "another sockmeshd (pid %lld) holds the state file '%s'", pid,
		       d->state_file);
		close(d->state_fd);
		d->state_fd = -1;
		return -1;
	}
	return 0;
}

static int state_write(struct daemon *d)
{
	json_object *o = json_object_new_object();
	char url[200];
	const char *s;
	size_t len, off = 0;
	int err = 0;

	snprintf(url, sizeof(url), "http://%s/metrics", d->listen);
	json_object_object_add(o, "pid", json_object_new_int64(getpid()));
	json_object_object_add(o, "proc_start_ticks",
			       json_object_new_uint64(smc_proc_start_ticks(0)));
	json_object_object_add(o, "start_time", json_object_new_string(d->start_time_str));
	json_object_object_add(o, "start_time_unix",
			       json_object_new_int64((long long)d->start_time));
	json_object_object_add(o, "listen", json_object_new_string(d->listen));
	json_object_object_add(o, "metrics_url", json_object_new_string(url));
	json_object_object_add(o, "pin_dir", json_object_new_string(d->pin_dir));
	json_object_object_add(o, "attach_cgroup", json_object_new_string(d->attach_cgroup));
	json_object_object_add(o, "gc_interval", json_object_new_int(d->gc_interval));
	json_object_object_add(o, "cleanup_on_exit", json_object_new_boolean(d->cleanup_on_exit));
	json_object_object_add(o, "cni_conf_dir",
			       d->cni_conf_dir ? json_object_new_string(d->cni_conf_dir) : NULL);
	json_object_object_add(o, "cni_watch", json_object_new_boolean(d->cni.fd >= 0));
	json_object_object_add(o, "version", json_object_new_string(SOCKMESH_VERSION));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY |
						      JSON_C_TO_STRING_NOSLASHESCAPE);
	len = strlen(s);
	if (ftruncate(d->state_fd, 0))
		err = -errno;
	while (!err && off < len) {
		ssize_t n = pwrite(d->state_fd, s + off, len - off, (off_t)off);

		if (n <= 0)
			err = n < 0 ? -errno : -EIO;
		else
			off += (size_t)n;
	}
	if (!err && pwrite(d->state_fd, "\n", 1, (off_t)len) != 1)
		err = -errno;
	json_object_put(o);
	if (err)
		sd_log(SD_ERROR, sd_f_str(NULL, "state_file", d->state_file),
		       "cannot write the state file '%s': %s", d->state_file, strerror(-err));
	return err;
}

static void state_remove(struct daemon *d)
{
	if (d->state_fd < 0)
		return;
	if (unlink(d->state_file) && errno != ENOENT)
		sd_log(SD_WARN, sd_f_str(NULL, "state_file", d->state_file),
		       "cannot remove the state file: %s", strerror(errno));
	close(d->state_fd);
	d->state_fd = -1;
}

/* ---- the instance -------------------------------------------------------- */

/* Open (create: load and pin first if nothing is there). Open failures are
 * logged once per distinct message, and the recovery once.
 */
static struct sockmesh *instance_open(struct daemon *d, bool create, bool *created)
{
	struct sockmesh_open_opts oo = { .sz = sizeof(oo),
					 .pin_dir = d->pin_dir,
					 .create = create };
	bool existed = sockmesh__exists(d->pin_dir);
	struct sockmesh *sm;

	*created = false;
	sm = sockmesh__open(&oo);
	if (!sm) {
		const char *msg = sockmesh_errmsg();

		if (strcmp(msg, d->last_open_err)) {
			snprintf(d->last_open_err, sizeof(d->last_open_err), "%s", msg);
			sd_log(SD_ERROR,
			       sd_f_str(sd_f_str(NULL, "pin_dir", d->pin_dir), "error", msg),
			       "cannot open the sockmesh instance");
		}
		return NULL;
	}
	if (d->last_open_err[0]) {
		sd_log(SD_INFO, sd_f_str(NULL, "pin_dir", d->pin_dir),
		       "the sockmesh instance opens again");
		d->last_open_err[0] = '\0';
	}
	*created = create && !existed;
	return sm;
}

struct attach_report {
	json_object *types;
	bool doubled;
};

static void attach_note(const char *type, unsigned int n, void *arg)
{
	struct attach_report *r = arg;

	json_object_object_add(r->types, type, json_object_new_int((int)n));
	r->doubled |= n > 1;
}

/* Log what the instance holds: on start, after re-creating. */
static void instance_report(struct daemon *d, struct sockmesh *sm, bool created)
{
	struct attach_report r = { .types = json_object_new_object() };
	struct sockmesh_scope_info info = { .sz = sizeof(info) };
	struct sockmesh_scope prev;
	const struct sockmesh_scope *pp = NULL;
	unsigned int n = 0;
	json_object *f;

	while (n < (1u << 24) && sockmesh__next_scope(sm, pp, &info) == 0) {
		if (!created)
			sd_log(SD_INFO, scope_fields(&info), "adopted scope");
		n++;
		prev = info.scope;
		pp = &prev;
	}
	sd_attached_programs(d->pin_dir, d->attach_cgroup, attach_note, &r);
	f = sd_f_str(NULL, "pin_dir", d->pin_dir);
	sd_f_u64(f, "scopes", n);
	sd_f_str(f, "attach_cgroup", d->attach_cgroup);
	json_object_object_add(f, "attach_programs", json_object_get(r.types));
	sd_log(SD_INFO, f,
	       created ? "loaded and pinned the data path" : "adopted the pinned data path");
	if (r.doubled)
		sd_log(SD_WARN,
		       sd_f_str(sd_f_str(NULL, "attach_cgroup", d->attach_cgroup),
				"attach_programs",
				json_object_to_json_string_ext(
					r.types,
					JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)),
		       "more than one program of ours per hook at the attach cgroup");
	json_object_put(r.types);
}

/* ---- garbage collection -------------------------------------------------- */

enum verdict { ALIVE, GONE, UNKNOWN };

static bool is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A netns scope is gone when its name no longer opens (the file is gone
 * from a directory we can see) or opens another namespace (another cookie).
 * Anything we cannot tell for sure keeps the scope.
 */
static enum verdict netns_check(const struct sockmesh_scope_info *i, char *why, size_t wl)
{
	const char *name = i->scope.name;
	struct sockmesh_scope cur;
	char path[PATH_MAX], dir[PATH_MAX], *slash;
	struct stat st;
	int err;

	if (!name[0]) {
		snprintf(why, wl, "no netns name recorded for the scope");
		return UNKNOWN;
	}
	if (strchr(name, '/'))
		snprintf(path, sizeof(path), "%s", name);
	else
		snprintf(path, sizeof(path), "/run/netns/%s", name);
	err = sockmesh_scope_from_netns(name, &cur);
	if (!err) {
		if (cur.id == i->scope.id)
			return ALIVE;
		snprintf(why, wl, "'%s' is another network namespace now (cookie %llu)", path,
			 (unsigned long long)cur.id);
		return GONE;
	}
	if (lstat(path, &st) == 0) {
		/* there but not a netns: e.g. a bind mount we do not see */
		snprintf(why, wl, "'%s' does not open as a network namespace here: %s", path,
			 sockmesh_errmsg());
		return UNKNOWN;
	}
	if (errno != ENOENT) {
		snprintf(why, wl, "cannot check '%s': %s", path, strerror(errno));
		return UNKNOWN;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir)
		*slash = '\0';
	/* /proc/PID/ns goes with its process: /proc itself tells */
	if (strncmp(path, "/proc/", 6) == 0 ? is_dir("/proc/self/ns") : is_dir(dir)) {
		snprintf(why, wl, "'%s' no longer exists", path);
		return GONE;
	}
	snprintf(why, wl, "directory '%s' is not visible to the daemon (mount it)", dir);
	return UNKNOWN;
}

static bool on_cgroup2(const char *p)
{
	struct statfs sfs;

	return statfs(p, &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
}

/* A cgroup scope is gone when its directory is (and the cgroup2 mount above
 * it is visible), or when the path is another cgroup now.
 */
static enum verdict cgroup_check(const struct sockmesh_scope_info *i, char *why, size_t wl)
{
	const char *name = i->scope.name;
	char dir[PATH_MAX], *slash;
	struct stat st;

	if (name[0] != '/') {
		snprintf(why, wl, "cgroup path '%s' is not absolute", name);
		return UNKNOWN;
	}
	if (stat(name, &st) == 0) {
		if (!S_ISDIR(st.st_mode) || !on_cgroup2(name)) {
			snprintf(why, wl, "'%s' is not a cgroup2 directory here", name);
			return UNKNOWN;
		}
		if (st.st_ino == i->scope.id)
			return ALIVE;
		snprintf(why, wl, "'%s' is another cgroup now (id %llu)", name,
			 (unsigned long long)st.st_ino);
		return GONE;
	}
	if (errno != ENOENT) {
		snprintf(why, wl, "cannot check '%s': %s", name, strerror(errno));
		return UNKNOWN;
	}
	/* the nearest existing ancestor must be on cgroup2 (bounded walk) */
	snprintf(dir, sizeof(dir), "%s", name);
	for (int depth = 0; depth < 64; depth++) {
		slash = strrchr(dir, '/');
		if (!slash || slash == dir)
			break;
		*slash = '\0';
		if (stat(dir, &st) == 0) {
			if (on_cgroup2(dir)) {
				snprintf(why, wl, "'%s' no longer exists", name);
				return GONE;
			}
			break;
		}
	}
	snprintf(why, wl, "the cgroup2 mount of '%s' is not visible to the daemon", name);
	return UNKNOWN;
}

/* Warn once per scope that cannot be checked (debug afterwards). */
static bool first_warning(struct daemon *d, const struct sockmesh_scope *s)
{
	for (unsigned int k = 0; k < d->nwarned && k < WARNED_MAX; k++)
		if (d->warned[k].kind == s->kind && d->warned[k].id == s->id)
			return false;
	d->warned[d->nwarned % WARNED_MAX] = (struct warned){ s->kind, s->id };
	d->nwarned++;
	return true;
}

static void counter_add(unsigned long long *c, unsigned long long v)
{
	__atomic_add_fetch(c, v, __ATOMIC_RELAXED);
}

static void gc_tick(struct daemon *d)
{
	struct sockmesh_scope_info *list = NULL, info = { .sz = sizeof(info) };
	struct sockmesh_scope prev;
	const struct sockmesh_scope *pp = NULL;
	size_t n = 0, cap = 0;
	struct sockmesh *sm;
	bool created, removed = false;

	sm = instance_open(d, true, &created);
	if (!sm) {
		counter_add(&d->gc_errors, 1);
		goto out;
	}
	if (created)
		instance_report(d, sm, true);
	/* collect first: withdrawing while walking the map would restart it */
	while (n < (1u << 24) && sockmesh__next_scope(sm, pp, &info) == 0) {
		if (n == cap) {
			struct sockmesh_scope_info *nl =
				realloc(list, (cap = cap ? 2 * cap : 64) * sizeof(*list));

			if (!nl) {
				sd_log(SD_ERROR, NULL, "gc: out of memory");
				break;
			}
			list = nl;
		}
		list[n++] = info;
		prev = info.scope;
		pp = &prev;
	}
	for (size_t k = 0; k < n && !removed; k++) {
		const struct sockmesh_scope_info *i = &list[k];
		enum verdict v;
		char why[PATH_MAX + 128] = "";
		int err;

		if (i->scope.kind == SOCKMESH_SCOPE_NETNS)
			v = netns_check(i, why, sizeof(why));
		else if (i->scope.kind == SOCKMESH_SCOPE_CGROUP)
			v = cgroup_check(i, why, sizeof(why));
		else
			continue;
		if (v == ALIVE)
			continue;
		if (v == UNKNOWN) {
			counter_add(&d->gc_errors, 1);
			sd_log(first_warning(d, &i->scope) ? SD_WARN : SD_DEBUG,
			       sd_f_str(scope_fields(i), "reason", why),
			       "gc: cannot tell whether the scope is gone; keeping it");
			continue;
		}
		/* withdraw exactly the enrolled {kind, id}, not what the name opens now */
		err = sockmesh__withdraw(sm, &i->scope);
		if (err == -ENOENT) {
			sd_log(SD_DEBUG, scope_fields(i), "gc: already withdrawn");
			continue;
		}
		if (err == -ESTALE) {
			/* another process unloaded the instance meanwhile */
			sd_log(SD_INFO, sd_f_str(NULL, "pin_dir", d->pin_dir),
			       "gc: the instance was unloaded meanwhile; next pass");
			break;
		}
		if (err) {
			counter_add(&d->gc_errors, 1);
			sd_log(SD_ERROR,
			       sd_f_str(sd_f_str(scope_fields(i), "reason", why), "error",
					sockmesh_errmsg()),
			       "gc: withdraw failed");
			continue;
		}
		counter_add(i->scope.kind == SOCKMESH_SCOPE_NETNS ? &d->gc_withdrawn_netns :
								    &d->gc_withdrawn_cgroup,
			    1);
		sd_log(SD_INFO, sd_f_str(scope_fields(i), "reason", why),
		       i->scope.kind == SOCKMESH_SCOPE_NETNS ?
			       "gc: withdrew scope: its network namespace is gone" :
			       "gc: withdrew scope: its cgroup is gone");
		/* the last one out removes the instance: the handle is spent */
		removed = !sockmesh__exists(d->pin_dir);
	}
	free(list);
	sockmesh__close(sm);
	/* An enrollment that opened the old instance gets -ESTALE and opens
	 * again: loading the new one at once races with nobody.
	 */
	if (removed) {
		sd_log(SD_INFO, sd_f_str(NULL, "pin_dir", d->pin_dir),
		       "gc: that was the last scope; loading the data path again");
		sm = instance_open(d, true, &created);
		if (sm) {
			instance_report(d, sm, created);
			sockmesh__close(sm);
		}
	}
out:
	counter_add(&d->gc_runs, 1);
	__atomic_store_n(&d->last_gc_ms, mono_ms(), __ATOMIC_RELAXED);
}

/* ---- HTTP ---------------------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned int code, const char *type,
			       char *body, size_t len, bool must_free)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(
		len, body, must_free ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
	if (!r) {
		if (must_free)
			free(body);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (code == MHD_HTTP_METHOD_NOT_ALLOWED)
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result respond_text(struct MHD_Connection *c, unsigned int code, const char *msg)
{
	char *body = strdup(msg);

	if (!body)
		return MHD_NO;
	return respond(c, code, "text/plain; charset=utf-8", body, strlen(body), true);
}

static enum MHD_Result http_handler(void *cls, struct MHD_Connection *c, const char *url,
				    const char *method, const char *version,
				    const char *upload_data, size_t *upload_data_size,
				    void **con_cls)
{
	struct daemon *d = cls;

	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (*upload_data_size)
		return MHD_NO; /* no request bodies here */
	if (strcmp(method, MHD_HTTP_METHOD_GET) && strcmp(method, MHD_HTTP_METHOD_HEAD))
		return respond_text(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
	if (strcmp(url, "/metrics") == 0) {
		struct sd_metrics_ctx ctx = {
			.pin_dir = d->pin_dir,
			.attach_cgroup = d->attach_cgroup,
			.version = SOCKMESH_VERSION,
			.start_time = d->start_time,
			.gc_runs = __atomic_load_n(&d->gc_runs, __ATOMIC_RELAXED),
			.gc_withdrawn_netns =
				__atomic_load_n(&d->gc_withdrawn_netns, __ATOMIC_RELAXED),
			.gc_withdrawn_cgroup =
				__atomic_load_n(&d->gc_withdrawn_cgroup, __ATOMIC_RELAXED),
			.gc_errors = __atomic_load_n(&d->gc_errors, __ATOMIC_RELAXED),
			.cni_watch = d->cni.fd >= 0,
			.cni_rechains = sd_cniwatch_rechains(&d->cni),
			.flows = d->flowagg,
		};
		size_t len = 0;
		char *body = sd_metrics_render(&ctx, &len);

		if (!body)
			return respond_text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
		return respond(c, MHD_HTTP_OK, SD_METRICS_CONTENT_TYPE, body, len, true);
	}
	if (strcmp(url, "/healthz") == 0) {
		struct sockmesh_open_opts oo = { .sz = sizeof(oo), .pin_dir = d->pin_dir };
		long long age = mono_ms() - __atomic_load_n(&d->last_gc_ms, __ATOMIC_RELAXED);
		long long limit = 3000LL * d->gc_interval + 10000;
		struct sockmesh *sm;
		char msg[640];

		if (age > limit) {
			snprintf(msg, sizeof(msg), "gc loop stalled: last pass %lld s ago\n",
				 age / 1000);
			return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
		}
		sm = sockmesh__open(&oo);
		if (!sm) {
			snprintf(msg, sizeof(msg), "not loaded: %s\n", sockmesh_errmsg());
			return respond_text(c, MHD_HTTP_SERVICE_UNAVAILABLE, msg);
		}
		sockmesh__close(sm);
		return respond_text(c, MHD_HTTP_OK, "ok\n");
	}
	if (strcmp(url, "/") == 0)
		return respond_text(c, MHD_HTTP_OK, "sockmeshd: /metrics /healthz\n");
	return respond_text(c, MHD_HTTP_NOT_FOUND, "not found: /metrics /healthz\n");
}

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	(void)cls;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	sd_log(SD_WARN, NULL, "http: %s", msg);
}

/* Connections each class of client may hold at once (issue 12 point 5):
 * local users cannot take the connections the kubelet's probe (root) needs,
 * and scrapers from other nodes have their own share. An idle connection is
 * closed after HTTP_IDLE_S.
 */
static const unsigned int http_peer_limit[SD_PEER__COUNT] = {
	[SD_PEER_ROOT] = 64,
	[SD_PEER_USER] = 16,
	[SD_PEER_REMOTE] = 64,
};
#define HTTP_IDLE_S 10

/* MHD's accept policy: classify the client, refuse it if its class is full */
static enum MHD_Result http_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	struct daemon *d = cls;
	enum sd_peer_class c = sd_peer_class(addr, addrlen);

	if (d->http_peers[c] >= http_peer_limit[c]) {
		sd_log(SD_DEBUG, sd_f_str(NULL, "peer", sd_peer_class_name(c)),
		       "http: refused a connection: %u open from this class of client",
		       d->http_peers[c]);
		return MHD_NO;
	}
	d->http_adding = c;
	return MHD_YES;
}

/* Counted once MHD has the connection, uncounted when it closes. */
static void http_notify(void *cls, struct MHD_Connection *c, void **socket_context,
			enum MHD_ConnectionNotificationCode toe)
{
	struct daemon *d = cls;
	uintptr_t pc;

	(void)c;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
		/* the class, + 1: a context of NULL is "not counted" */
		*socket_context = (void *)(uintptr_t)(d->http_adding + 1);
		d->http_peers[d->http_adding]++;
		return;
	}
	pc = (uintptr_t)*socket_context;
	if (toe == MHD_CONNECTION_NOTIFY_CLOSED && pc && d->http_peers[pc - 1])
		d->http_peers[pc - 1]--;
}

static int http_start(struct daemon *d)
{
	const union MHD_DaemonInfo *info;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	__u16 port;

	if (d->addr.ss_family == AF_INET6) {
		flags |= MHD_USE_IPv6;
		port = ntohs(((struct sockaddr_in6 *)&d->addr)->sin6_port);
	} else {
		port = ntohs(((struct sockaddr_in *)&d->addr)->sin_port);
	}
	/* the logger goes first, so that every message of MHD takes it */
	d->httpd = MHD_start_daemon(
		flags, port, http_accept, d, http_handler, d, MHD_OPTION_EXTERNAL_LOGGER,
		mhd_logger, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&d->addr,
		MHD_OPTION_NOTIFY_CONNECTION, http_notify, d, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned int)HTTP_IDLE_S, MHD_OPTION_CONNECTION_LIMIT,
		http_peer_limit[SD_PEER_ROOT] + http_peer_limit[SD_PEER_USER] +
			http_peer_limit[SD_PEER_REMOTE],
		MHD_OPTION_END);
	if (!d->httpd) {
		format_listen(d, port);
		sd_log(SD_ERROR, sd_f_str(NULL, "listen", d->listen),
		       "%s: cannot serve HTTP on '%s' (address in use or not local?)",
		       d->listen_opt, d->listen);
		return -1;
	}
	info = MHD_get_daemon_info(d->httpd, MHD_DAEMON_INFO_BIND_PORT);
	format_listen(d, info && info->port ? info->port : port);
	return 0;
}

/* ---- main ---------------------------------------------------------------- */

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	char msg[512];
	size_t n;

	if (level != LIBBPF_WARN)
		return 0;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	n = strlen(msg);
	while (n && msg[n - 1] == '\n')
		msg[--n] = '\0';
	sd_log(SD_WARN, NULL, "libbpf: %s", msg);
	return 0;
}

static int parse_args(int argc, char **argv, struct daemon *d)
{
	struct smc_opts opts;
	const char *val[O_COUNT] = { 0 };
	bool set[O_COUNT] = { 0 };
	__u32 v;
	int err;

	smc_opts_init(&opts, "sockmeshd");
	/* options may follow arguments (GNU order), as they always could */
	opts.permute = true;
	err = smc_opts_add_table(&opts, opt_defs, O_COUNT);
	if (err) {
		fprintf(stderr, "sockmeshd: option table: %s\n", strerror(-err));
		return EXIT_FAIL;
	}
	err = smc_opts_parse(&opts, argc, argv);
	if (err) {
		/* "unknown option" says where to look itself */
		if (opts.err.kind == SMC_OPT_E_UNKNOWN)
			fprintf(stderr, "sockmeshd: %s\n", opts.err.msg);
		else
			usage_err("%s", opts.err.msg);
		return EXIT_USAGE;
	}
	for (int i = 0; i < O_COUNT; i++) {
		set[i] = smc_opts_isset(&opts, i);
		val[i] = smc_opts_str(&opts, i);
	}
	if (set[O_HELP]) {
		usage(stdout, &opts);
		exit(0);
	}
	if (set[O_VERSION]) {
		printf("sockmeshd %s\n", SOCKMESH_VERSION);
		exit(0);
	}

	d->pin_dir = set[O_PIN_DIR] ? val[O_PIN_DIR] : SOCKMESH_DEFAULT_PIN_DIR;
	if (d->pin_dir[0] != '/' || strlen(d->pin_dir) >= PATH_MAX - 64)
		return usage_err("--pin-dir: '%s' must be an absolute path", d->pin_dir);
	d->state_file = set[O_STATE_FILE] ? val[O_STATE_FILE] : DEFAULT_STATE_FILE;
	if (d->state_file[0] != '/' || strlen(d->state_file) >= PATH_MAX)
		return usage_err("--state-file: '%s' must be an absolute path", d->state_file);
	if (smc_parse_u32("--gc-interval",
			  set[O_GC_INTERVAL] ? val[O_GC_INTERVAL] : DEFAULT_GC_INTERVAL,
			  MAX_GC_INTERVAL, &v) ||
	    v == 0)
		return usage_err("--gc-interval: '%s' is not a number of seconds (1-%d)",
				 val[O_GC_INTERVAL], MAX_GC_INTERVAL);
	d->gc_interval = v;
	if (set[O_LOG_FORMAT] && strcmp(val[O_LOG_FORMAT], "json") &&
	    strcmp(val[O_LOG_FORMAT], "text"))
		return usage_err("--log-format: '%s' is not json or text", val[O_LOG_FORMAT]);
	sd_log_init(!set[O_LOG_FORMAT] || strcmp(val[O_LOG_FORMAT], "json") == 0, SD_INFO);
	d->cleanup_on_exit = set[O_CLEANUP];
	if (set[O_CNI_CONF_DIR]) {
		d->cni_conf_dir = val[O_CNI_CONF_DIR];
		if (d->cni_conf_dir[0] != '/' || strlen(d->cni_conf_dir) >= PATH_MAX - NAME_MAX - 2)
			return usage_err("--cni-conf-dir: '%s' must be an absolute path",
					 d->cni_conf_dir);
	}
	if (set[O_CNI_PLUGIN_CONF]) {
		if (!d->cni_conf_dir)
			return usage_err("--cni-plugin-conf: '%.200s' needs --cni-conf-dir",
					 val[O_CNI_PLUGIN_CONF]);
		d->cni_plugin_conf = val[O_CNI_PLUGIN_CONF];
	}
	if (d->cni_conf_dir) {
		/* checked here (exit 2 naming it), used once the daemon runs */
		json_object *e = smc_cni_plugin_entry(d->cni_plugin_conf, SMC_CNI_PLUGIN);

		if (!e)
			return usage_err(
				"--cni-plugin-conf: '%.200s' is not a JSON object with \"type\": \"%s\" (nor a conflist holding one)",
				d->cni_plugin_conf ? d->cni_plugin_conf : "(default)",
				SMC_CNI_PLUGIN);
		d->cni.entry = e;
	}
	d->flows = set[O_FLOWS];
	d->flow_interval = 10;
	if (set[O_FLOW_LOG]) {
		if (!d->flows)
			return usage_err("--flow-log: '%s' needs --flows", val[O_FLOW_LOG]);
		d->flow_log = val[O_FLOW_LOG];
		if (d->flow_log[0] != '/' || strlen(d->flow_log) >= PATH_MAX)
			return usage_err("--flow-log: '%s' must be an absolute path", d->flow_log);
	}
	if (set[O_FLOW_INTERVAL]) {
		if (!d->flows)
			return usage_err("--flow-interval: '%s' needs --flows",
					 val[O_FLOW_INTERVAL]);
		if (smc_parse_u32("--flow-interval", val[O_FLOW_INTERVAL], 86400, &v) || v == 0)
			return usage_err(
				"--flow-interval: '%s' is not a number of seconds (1-86400)",
				val[O_FLOW_INTERVAL]);
		d->flow_interval = v;
	}
	if (parse_listen(d, set[O_LISTEN] ? val[O_LISTEN] : NULL,
			 set[O_LISTEN_HOST] ? val[O_LISTEN_HOST] : NULL,
			 set[O_LISTEN_PORT] ? val[O_LISTEN_PORT] : NULL))
		return EXIT_USAGE;
	if (set[O_ATTACH_CGROUP]) {
		if (snprintf(d->attach_cgroup, sizeof(d->attach_cgroup), "%s",
			     val[O_ATTACH_CGROUP]) >= (int)sizeof(d->attach_cgroup))
			return usage_err("--attach-cgroup: '%s' is too long", val[O_ATTACH_CGROUP]);
		if (!is_dir(d->attach_cgroup) || !on_cgroup2(d->attach_cgroup))
			return usage_err("--attach-cgroup: '%s' is not a cgroup2 directory",
					 d->attach_cgroup);
	} else if (sockmesh_cgroup2_root(d->attach_cgroup, sizeof(d->attach_cgroup))) {
		sd_log(SD_ERROR, NULL, "no cgroup2 mount in /proc/mounts: pass --attach-cgroup");
		return EXIT_FAIL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct daemon d = { .state_fd = -1, .cni = { .fd = -1, .wd = -1 } };
	struct sockmesh *sm;
	struct timespec now;
	struct tm tm;
	sigset_t mask;
	bool created;
	int sfd, err, rc = 0;

	err = parse_args(argc, argv, &d);
	if (err)
		return err;
	libbpf_set_print(libbpf_print);
	clock_gettime(CLOCK_REALTIME, &now);
	d.start_time = (double)now.tv_sec + now.tv_nsec / 1e9;
	gmtime_r(&now.tv_sec, &tm);
	strftime(d.start_time_str, sizeof(d.start_time_str), "%Y-%m-%dT%H:%M:%SZ", &tm);

	/* signals arrive through a signalfd; blocked before any thread starts */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL)) {
		sd_log(SD_ERROR, NULL, "sigprocmask: %s", strerror(errno));
		return EXIT_FAIL;
	}
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC);
	if (sfd < 0) {
		sd_log(SD_ERROR, NULL, "signalfd: %s", strerror(errno));
		return EXIT_FAIL;
	}

	if (state_lock(&d)) {
		close(sfd);
		return EXIT_FAIL;
	}
	/* The kernel guard of `sockmesh enable`: a daemon only warns (refusing
	 * would crash-loop the DaemonSet; `sockmesh doctor` fails the check).
	 */
	{
		char detail[512];
		int v = sockmesh_kernel_sockmap_fixes(NULL, NULL, detail, sizeof(detail));

		if (v == SOCKMESH_KERNEL_AFFECTED || v == SOCKMESH_KERNEL_UNKNOWN)
			sd_log(SD_WARN, NULL, "kernel %s", detail);
	}
	/* A data path another build loaded (the DaemonSet rolled to a newer or
	 * older image): this build's programs go in without removing it.
	 */
	if (sockmesh__exists(d.pin_dir)) {
		struct sockmesh_upgrade_info ui = { .sz = sizeof(ui) };

		if (sockmesh_upgrade(d.pin_dir, &ui)) {
			sd_log(SD_ERROR,
			       sd_f_str(sd_f_str(NULL, "pin_dir", d.pin_dir), "error",
					sockmesh_errmsg()),
			       "cannot load this build's data path into the running one");
			rc = EXIT_FAIL;
			goto out;
		}
		if (ui.upgraded) {
			char from[24], to[24];

			snprintf(from, sizeof(from), "%016llx",
				 (unsigned long long)ui.from_build_id);
			snprintf(to, sizeof(to), "%016llx", (unsigned long long)ui.to_build_id);
			sd_log(SD_INFO,
			       sd_f_u64(sd_f_u64(sd_f_str(sd_f_str(NULL, "from_build", from),
							  "to_build", to),
						 "links_updated", ui.links_updated),
					"maps_migrated", ui.maps_migrated),
			       "upgraded the running data path in place");
		}
	}
	sm = instance_open(&d, true, &created);
	if (!sm) {
		rc = EXIT_FAIL;
		goto out;
	}
	instance_report(&d, sm, created);
	sockmesh__close(sm);
	__atomic_store_n(&d.last_gc_ms, mono_ms(), __ATOMIC_RELAXED);
	if (d.cni_conf_dir) {
		json_object *e = d.cni.entry;

		d.cni.entry = NULL;
		if (sd_cniwatch_start(&d.cni, d.cni_conf_dir, e)) {
			rc = EXIT_FAIL;
			goto out;
		}
	}
	if (d.flows) {
		struct sd_flowthread_opts fo = { .pin_dir = d.pin_dir,
						 .log_path = d.flow_log,
						 .interval_s = d.flow_interval };

		d.flowagg = sd_flowagg_new();
		fo.agg = d.flowagg;
		if (!d.flowagg || sd_flowthread_start(&fo, &d.flowthread)) {
			rc = EXIT_FAIL;
			goto out;
		}
	}
	if (http_start(&d) || state_write(&d)) {
		rc = EXIT_FAIL;
		goto out;
	}
	{
		json_object *f = sd_f_str(NULL, "listen", d.listen);

		sd_f_i64(f, "pid", getpid());
		sd_f_str(f, "pin_dir", d.pin_dir);
		sd_f_str(f, "attach_cgroup", d.attach_cgroup);
		sd_f_u64(f, "gc_interval", d.gc_interval);
		sd_f_str(f, "state_file", d.state_file);
		sd_f_bool(f, "cleanup_on_exit", d.cleanup_on_exit);
		if (d.cni_conf_dir)
			sd_f_str(f, "cni_conf_dir", d.cni_conf_dir);
		sd_f_bool(f, "flows", d.flows);
		if (d.flow_log)
			sd_f_str(f, "flow_log", d.flow_log);
		sd_f_str(f, "version", SOCKMESH_VERSION);
		sd_log(SD_INFO, f, "sockmeshd started");
	}

	for (;;) {
		long long next, left;
		struct signalfd_siginfo si;
		struct pollfd pfd[2] = { { .fd = sfd, .events = POLLIN },
					 { .fd = d.cni.fd, .events = POLLIN } };
		nfds_t nfds = d.cni.fd >= 0 ? 2 : 1;
		bool gc_now = false, stop = false;

		gc_tick(&d);
		/* the safety net under inotify: a missed event, a directory
		 * that was gone, a configuration fixed by hand
		 */
		sd_cniwatch_check(&d.cni, "periodic check");
		next = mono_ms() + 1000LL * d.gc_interval;
		/* wait for the next pass or a signal, serving CNI configuration
		 * events meanwhile (EINTR: wait again, bounded)
		 */
		for (int tries = 0; tries < 100000 && !gc_now && !stop; tries++) {
			left = next - mono_ms();
			if (left <= 0)
				break;
			if (poll(pfd, nfds, (int)(left > 60000 ? 60000 : left)) <= 0)
				continue;
			if (nfds > 1 && (pfd[1].revents & POLLIN))
				sd_cniwatch_events(&d.cni);
			if (!(pfd[0].revents & POLLIN))
				continue;
			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGHUP) {
				sd_log(SD_INFO, NULL, "SIGHUP: garbage collection now");
				sd_flowthread_reopen(d.flowthread);
				gc_now = true;
				continue;
			}
			sd_log(SD_INFO, sd_f_str(NULL, "signal", strsignal((int)si.ssi_signo)),
			       "stopping");
			stop = true;
		}
		if (stop)
			break;
	}

out:
	/* the flows thread first (its programs out of the data path), then
	 * the HTTP thread, which reads its series
	 */
	sd_flowthread_stop(d.flowthread);
	if (d.httpd)
		MHD_stop_daemon(d.httpd);
	sd_flowagg_free(d.flowagg);
	/* after the HTTP thread (it reads d.cni); the configuration stays as
	 * it is: `sockmesh uninstall` unchains once the daemon has stopped
	 */
	sd_cniwatch_stop(&d.cni);
	if (d.cleanup_on_exit && rc == 0) {
		struct sockmesh_open_opts oo = { .sz = sizeof(oo), .pin_dir = d.pin_dir };

		sm = sockmesh__open(&oo);
		if (!sm && errno != ENOENT) {
			sd_log(SD_ERROR, sd_f_str(NULL, "error", sockmesh_errmsg()),
			       "--cleanup-on-exit: cannot open the instance");
			rc = EXIT_FAIL;
		} else if (sm) {
			/* graceful, as `disable --all`: 5 s for the sidecars to
			 * take what was captured (a timeout removes anyway)
			 */
			sockmesh__drain(sm, NULL, 5000, NULL);
			err = sockmesh__destroy(sm);
			if (err) {
				sd_log(SD_ERROR, sd_f_str(NULL, "error", sockmesh_errmsg()),
				       "--cleanup-on-exit: cannot remove everything");
				rc = EXIT_FAIL;
			} else {
				sd_log(SD_INFO, sd_f_str(NULL, "pin_dir", d.pin_dir),
				       "--cleanup-on-exit: withdrew every scope, detached and unpinned everything");
			}
			sockmesh__close(sm);
		}
	}
	state_remove(&d);
	close(sfd);
	sd_log(rc ? SD_ERROR : SD_INFO, sd_f_i64(NULL, "exit_code", rc), "sockmeshd stopped");
	return rc;
}
