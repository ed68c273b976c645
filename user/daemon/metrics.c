// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmeshd: Prometheus text exposition format 0.0.4.
 *
 * Families (every series of one family is written together, HELP and TYPE
 * first, as the format requires):
 *   sockmesh_up, sockmesh_build_info, sockmesh_daemon_start_time_seconds,
 *   sockmesh_scopes{kind}, sockmesh_gc_*_total,
 *   sockmesh_attach_programs{attach_type}       programs of ours at the attach cgroup
 *   sockmesh_<counter>_total{kind,scope,id,pod_namespace,pod_name}
 *       one family per sockmesh__stats counter; one series per enrolled
 *       scope, plus kind="global" for the scope-less slot.
 *   with --flows: sockmesh_flows_following, sockmesh_flows_opened_total
 *   {...,direction}, sockmesh_flows_open, sockmesh_flow_duration_seconds
 *   (histogram), sockmesh_flow_bytes_total{...,path,direction},
 *   sockmesh_flow_records_lost_total, sockmesh_flows_lost_total: labels
 *   kind, scope, pod_namespace, pod_name (a series per scope that had a
 *   connection in the last hour).
 * The id label (cgroup id or netns cookie) keeps two scopes apart that share
 * a name for a moment (a netns deleted and made again under the same name,
 * before garbage collection withdrew the old one).
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <bpf/libbpf.h> /* attach type names */

#include "sockmesh.h"
#include "flowagg.h"
#include "metrics.h"

/* ---- growing text buffer ------------------------------------------------- */

struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};

static void sb_grow(struct sbuf *b, size_t need)
{
	char *np;
	size_t cap;

	if (b->oom || b->len + need + 1 <= b->cap)
		return;
	cap = b->cap ? b->cap : 16384;
	while (cap < b->len + need + 1)
		cap *= 2;
	np = realloc(b->p, cap);
	if (!np) {
		b->oom = true;
		return;
	}
	b->p = np;
	b->cap = cap;
}

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->oom = true;
		return;
	}
	sb_grow(b, (size_t)n);
	if (b->oom)
		return;
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

static void sb_putc(struct sbuf *b, char c)
{
	sb_grow(b, 1);
	if (b->oom)
		return;
	b->p[b->len++] = c;
	b->p[b->len] = '\0';
}

/* Length of the valid UTF-8 sequence at s (0: invalid). */
static size_t utf8_len(const unsigned char *s)
{
	unsigned int c = s[0], n, min, cp;

	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0)
		n = 2, min = 0x80, cp = c & 0x1f;
	else if ((c & 0xf0) == 0xe0)
		n = 3, min = 0x800, cp = c & 0x0f;
	else if ((c & 0xf8) == 0xf0)
		n = 4, min = 0x10000, cp = c & 0x07;
	else
		return 0;
	for (unsigned int i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* A label value, escaped as the format says (backslash, double quote,
 * line feed); bytes that are not UTF-8 become U+FFFD, as Prometheus only
 * takes UTF-8.
 */
static void sb_label_value(struct sbuf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		size_t n = utf8_len(p);

		if (n == 0) {
			sb_printf(b, "\xef\xbf\xbd");
			p++;
		} else if (*p == '\\') {
			sb_printf(b, "\\\\");
			p++;
		} else if (*p == '"') {
			sb_printf(b, "\\\"");
			p++;
		} else if (*p == '\n') {
			sb_printf(b, "\\n");
			p++;
		} else {
			for (size_t i = 0; i < n; i++)
				sb_putc(b, (char)p[i]);
			p += n;
		}
	}
}

static void family(struct sbuf *b, const char *name, const char *type, const char *help)
{
	/* HELP text escapes backslash and line feed only */
	sb_printf(b, "# HELP %s ", name);
	for (const char *p = help; *p; p++) {
		if (*p == '\\')
			sb_printf(b, "\\\\");
		else if (*p == '\n')
			sb_printf(b, "\\n");
		else
			sb_putc(b, *p);
	}
	sb_printf(b, "\n# TYPE %s %s\n", name, type);
}

/* ---- counters ------------------------------------------------------------ */

/* sockmesh_<name>_total, name reduced to [a-z0-9_] */
static void metric_name(char *buf, size_t len, const char *counter)
{
	size_t n = (size_t)snprintf(buf, len, "sockmesh_");

	for (const char *p = counter; *p && n + 7 < len; p++)
		buf[n++] = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ? *p :
			   (*p >= 'A' && *p <= 'Z') ? (char)(*p - 'A' + 'a') :
						      '_';
	snprintf(buf + n, len - n, "_total");
}

struct scope_row {
	struct sockmesh_scope_info info;
	struct sockmesh_stats st;
	bool have_stats;
};

static const char *kind_name(enum sockmesh_scope_kind k)
{
	return k == SOCKMESH_SCOPE_CGROUP ? "cgroup" :
	       k == SOCKMESH_SCOPE_NETNS  ? "netns" :
					    "other";
}

static void scope_labels(struct sbuf *b, const struct sockmesh_scope_info *i)
{
	sb_printf(b, "{kind=\"%s\",scope=\"", kind_name(i->scope.kind));
	sb_label_value(b, i->scope.name);
	sb_printf(b, "\",id=\"%llu\",pod_namespace=\"", (unsigned long long)i->scope.id);
	sb_label_value(b, i->pod_namespace);
	sb_printf(b, "\",pod_name=\"");
	sb_label_value(b, i->pod_name);
	sb_printf(b, "\"}");
}

/* ---- attach cgroup ------------------------------------------------------- */

struct attached {
	__u64 cgid;
	unsigned int n[__MAX_BPF_ATTACH_TYPE];
};

static int count_attached(const struct sockmesh_link_info *l, void *ctx)
{
	struct attached *a = ctx;

	if (l->link_id && l->target_id == a->cgid && l->attach_type < __MAX_BPF_ATTACH_TYPE)
		a->n[l->attach_type]++;
	return 0;
}

/* The instance's programs attached at cgroup, per attach type (from the
 * library's listing of its links).
 */
int sd_attached_programs(const char *pin_dir, const char *cgroup,
			 void (*fn)(const char *type, unsigned int n, void *arg), void *arg)
{
	struct sockmesh_open_opts oo = { .sz = sizeof(oo), .pin_dir = pin_dir };
	struct attached a = { 0 };
	struct sockmesh *sm;
	struct stat st;
	int err, seen = 0;

	if (stat(cgroup, &st))
		return -errno;
	a.cgid = st.st_ino; /* a cgroup v2 directory's inode is its id */
	sm = sockmesh__open(&oo);
	if (!sm)
		return -errno;
	err = sockmesh__for_each_link(sm, count_attached, &a);
	sockmesh__close(sm);
	if (err)
		return err;
	for (int t = 0; t < __MAX_BPF_ATTACH_TYPE; t++) {
		const char *name = libbpf_bpf_attach_type_str((enum bpf_attach_type)t);

		if (!a.n[t] || !name)
			continue;
		fn(name, a.n[t], arg);
		seen++;
	}
	return seen;
}

static void attach_line(const char *type, unsigned int n, void *arg)
{
	struct sbuf *b = arg;

	sb_printf(b, "sockmesh_attach_programs{attach_type=\"");
	sb_label_value(b, type);
	sb_printf(b, "\"} %u\n", n);
}

/* ---- render -------------------------------------------------------------- */

/* ---- flow events (--flows) ----------------------------------------------- */

#define SD_FLOW_IDLE_MS (3600 * 1000LL)

static void flow_labels(struct sbuf *b, const struct sd_flow_row *r, const char *extra)
{
	sb_printf(b, "{kind=\"");
	sb_label_value(b, r->kind);
	sb_printf(b, "\",scope=\"");
	sb_label_value(b, r->scope);
	sb_printf(b, "\",pod_namespace=\"");
	sb_label_value(b, r->pod_namespace);
	sb_printf(b, "\",pod_name=\"");
	sb_label_value(b, r->pod_name);
	sb_printf(b, "\"%s}", extra ? extra : "");
}

static void flows_render(struct sbuf *b, struct sd_flowagg *agg)
{
	static const char *const dirs[SD_FLOW_DIRS] = { "outbound", "inbound", "pod-to-pod" };
	static const char *const paths[SM_TAP_PATHS] = {
		[SM_TAP_PATH_SPLICE] = "spliced",
		[SM_TAP_PATH_STACK] = "tcp",
		[SM_TAP_PATH_FAST] = "fast-path",
	};
	struct sd_flowagg_totals t = { 0 };
	struct sd_flow_row *rows;
	char extra[96];
	size_t n = 0;

	rows = sd_flowagg_snapshot(agg, SD_FLOW_IDLE_MS, &n, &t);
	family(b, "sockmesh_flows_following", "gauge",
	       "1 when sockmeshd follows flow events (--flows), 0 while it cannot (another consumer, no data path).");
	sb_printf(b, "sockmesh_flows_following %d\n", t.following ? 1 : 0);
	family(b, "sockmesh_flow_records_lost_total", "counter",
	       "Open or close records the flow ring could not hold (this consumer's).");
	sb_printf(b, "sockmesh_flow_records_lost_total %llu\n", t.lost_records);
	family(b, "sockmesh_flows_lost_total", "counter",
	       "Connections not followed: the flow table was full.");
	sb_printf(b, "sockmesh_flows_lost_total %llu\n", t.lost_flows);
	family(b, "sockmesh_flows_opened_total", "counter",
	       "Captured connections opened, by direction (outbound, inbound, pod-to-pod).");
	for (size_t i = 0; i < n; i++)
		for (int d = 0; d < SD_FLOW_DIRS; d++) {
			snprintf(extra, sizeof(extra), ",direction=\"%s\"", dirs[d]);
			sb_printf(b, "sockmesh_flows_opened_total");
			flow_labels(b, &rows[i], extra);
			sb_printf(b, " %llu\n", rows[i].opened[d]);
		}
	family(b, "sockmesh_flows_open", "gauge", "Captured connections open now.");
	for (size_t i = 0; i < n; i++) {
		unsigned long long o = rows[i].opened[0] + rows[i].opened[1] + rows[i].opened[2];

		sb_printf(b, "sockmesh_flows_open");
		flow_labels(b, &rows[i], NULL);
		sb_printf(b, " %llu\n", o > rows[i].closed ? o - rows[i].closed : 0);
	}
	family(b, "sockmesh_flow_duration_seconds", "histogram",
	       "Duration of the captured connections that ended.");
	for (size_t i = 0; i < n; i++) {
		unsigned long long cum = 0;

		for (int k = 0; k <= SD_FLOW_BUCKETS; k++) {
			cum += rows[i].bucket[k];
			if (k < SD_FLOW_BUCKETS)
				snprintf(extra, sizeof(extra), ",le=\"%g\"", sd_flow_bucket_le[k]);
			else
				snprintf(extra, sizeof(extra), ",le=\"+Inf\"");
			sb_printf(b, "sockmesh_flow_duration_seconds_bucket");
			flow_labels(b, &rows[i], extra);
			sb_printf(b, " %llu\n", cum);
		}
		sb_printf(b, "sockmesh_flow_duration_seconds_sum");
		flow_labels(b, &rows[i], NULL);
		sb_printf(b, " %.6f\n", rows[i].duration_sum);
		sb_printf(b, "sockmesh_flow_duration_seconds_count");
		flow_labels(b, &rows[i], NULL);
		sb_printf(b, " %llu\n", rows[i].closed);
	}
	family(b, "sockmesh_flow_bytes_total", "counter",
	       "Bytes of captured connections by the path they took (spliced, tcp, fast-path) and direction (to_server, to_client); spliced connections count as they go, others at their close.");
	for (size_t i = 0; i < n; i++)
		for (int p = 0; p < SM_TAP_PATHS; p++)
			for (int d = 0; d < 2; d++) {
				snprintf(extra, sizeof(extra), ",path=\"%s\",direction=\"%s\"",
					 paths[p], d ? "to_client" : "to_server");
				sb_printf(b, "sockmesh_flow_bytes_total");
				flow_labels(b, &rows[i], extra);
				sb_printf(b, " %llu\n", rows[i].bytes[p][d]);
			}
	free(rows);
}

char *sd_metrics_render(const struct sd_metrics_ctx *ctx, size_t *len)
{
	struct sockmesh_open_opts oo = { .sz = sizeof(oo), .pin_dir = ctx->pin_dir };
	struct sockmesh_stats global = { 0 };
	struct scope_row *rows = NULL;
	size_t nrows = 0, cap = 0, nkind[3] = { 0 };
	unsigned int ncounters = 0;
	bool have_global = false, up = false;
	struct sbuf b = { 0 };
	struct sockmesh *sm;
	char name[160];

	sm = sockmesh__open(&oo);
	if (sm) {
		struct sockmesh_scope_info info = { .sz = sizeof(info) };
		struct sockmesh_scope prev;
		const struct sockmesh_scope *pp = NULL;

		up = true;
		/* bounded: never more than the scope table can hold */
		while (nrows < (1u << 24) && sockmesh__next_scope(sm, pp, &info) == 0) {
			if (nrows == cap) {
				struct scope_row *nr =
					realloc(rows, (cap = cap ? 2 * cap : 64) * sizeof(*rows));

				if (!nr) {
					b.oom = true;
					break;
				}
				rows = nr;
			}
			rows[nrows].info = info;
			rows[nrows].have_stats =
				sockmesh__stats(sm, &info.scope, &rows[nrows].st) == 0;
			if (info.scope.kind == SOCKMESH_SCOPE_CGROUP)
				nkind[1]++;
			else if (info.scope.kind == SOCKMESH_SCOPE_NETNS)
				nkind[2]++;
			nrows++;
			prev = info.scope;
			pp = &prev;
		}
		have_global = sockmesh__stats(sm, NULL, &global) == 0;
		sockmesh__close(sm);
	}
	/* the counter set: what the library names */
	while (ncounters < SOCKMESH_STATS_MAX && sockmesh_stat_name(ncounters))
		ncounters++;

	family(&b, "sockmesh_up", "gauge",
	       "1 when the pinned sockmesh data path at the pin dir opens, else 0.");
	sb_printf(&b, "sockmesh_up %d\n", up ? 1 : 0);
	family(&b, "sockmesh_build_info", "gauge", "sockmeshd version and pin dir (always 1).");
	sb_printf(&b, "sockmesh_build_info{version=\"");
	sb_label_value(&b, ctx->version);
	sb_printf(&b, "\",pin_dir=\"");
	sb_label_value(&b, ctx->pin_dir);
	sb_printf(&b, "\"} 1\n");
	family(&b, "sockmesh_daemon_start_time_seconds", "gauge",
	       "Start time of this sockmeshd process, seconds since the epoch.");
	sb_printf(&b, "sockmesh_daemon_start_time_seconds %.3f\n", ctx->start_time);
	family(&b, "sockmesh_scopes", "gauge", "Enrolled scopes by kind.");
	sb_printf(&b, "sockmesh_scopes{kind=\"cgroup\"} %zu\n", nkind[1]);
	sb_printf(&b, "sockmesh_scopes{kind=\"netns\"} %zu\n", nkind[2]);
	family(&b, "sockmesh_gc_runs_total", "counter",
	       "Garbage-collection passes over the enrolled scopes.");
	sb_printf(&b, "sockmesh_gc_runs_total %llu\n", ctx->gc_runs);
	family(&b, "sockmesh_gc_withdrawn_total", "counter",
	       "Scopes withdrawn because their netns or cgroup was gone.");
	sb_printf(&b, "sockmesh_gc_withdrawn_total{kind=\"cgroup\"} %llu\n",
		  ctx->gc_withdrawn_cgroup);
	sb_printf(&b, "sockmesh_gc_withdrawn_total{kind=\"netns\"} %llu\n",
		  ctx->gc_withdrawn_netns);
	family(&b, "sockmesh_gc_errors_total", "counter",
	       "Scopes garbage collection could not check or withdraw.");
	sb_printf(&b, "sockmesh_gc_errors_total %llu\n", ctx->gc_errors);
	family(&b, "sockmesh_cni_watch", "gauge",
	       "1 when sockmeshd keeps sockmesh-cni chained into the CNI configuration (--cni-conf-dir).");
	sb_printf(&b, "sockmesh_cni_watch %d\n", ctx->cni_watch ? 1 : 0);
	family(&b, "sockmesh_cni_rechains_total", "counter",
	       "Times sockmeshd chained sockmesh-cni into the CNI configuration again after another writer dropped or changed it.");
	sb_printf(&b, "sockmesh_cni_rechains_total %llu\n", ctx->cni_rechains);
	if (ctx->attach_cgroup) {
		family(&b, "sockmesh_attach_programs", "gauge",
		       "Programs of this instance attached directly at the attach cgroup, by attach type (1 each when healthy).");
		if (up)
			sd_attached_programs(ctx->pin_dir, ctx->attach_cgroup, attach_line, &b);
	}
	for (unsigned int k = 0; k < ncounters && up; k++) {
		const char *cn = sockmesh_stat_name(k);
		/* the library documents every counter it names */
		const char *help = sockmesh_stat_help(k);
		char generic[160];

		if (!help) {
			snprintf(generic, sizeof(generic),
				 "sockmesh counter %s (as in sockmesh stats).", cn);
			help = generic;
		}
		metric_name(name, sizeof(name), cn);
		family(&b, name, "counter", help);
		if (have_global && k < global.count)
			sb_printf(
				&b,
				"%s{kind=\"global\",scope=\"\",id=\"\",pod_namespace=\"\",pod_name=\"\"} %llu\n",
				name, (unsigned long long)global.v[k]);
		for (size_t r = 0; r < nrows; r++) {
			if (!rows[r].have_stats || k >= rows[r].st.count)
				continue;
			sb_printf(&b, "%s", name);
			scope_labels(&b, &rows[r].info);
			sb_printf(&b, " %llu\n", (unsigned long long)rows[r].st.v[k]);
		}
	}
	if (ctx->flows)
		flows_render(&b, ctx->flows);
	free(rows);
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	*len = b.len;
	return b.p;
}
