/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sockmeshd: Prometheus text exposition (format 0.0.4) of an instance. */
#ifndef SOCKMESHD_METRICS_H
#define SOCKMESHD_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#define SD_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct sd_flowagg;

struct sd_metrics_ctx {
	const char *pin_dir;
	const char *attach_cgroup; /* where netns scopes attach; NULL: skip that gauge */
	const char *version;
	double start_time; /* unix seconds */
	unsigned long long gc_runs;
	unsigned long long gc_withdrawn_netns;
	unsigned long long gc_withdrawn_cgroup;
	unsigned long long gc_errors;
	bool cni_watch; /* --cni-conf-dir given and watched */
	unsigned long long cni_rechains;
	struct sd_flowagg *flows; /* --flows: the flow series; NULL: off */
};

/* The whole exposition text (malloc'd, *len bytes), NULL when out of
 * memory. Opens its own handle on the pinned state: safe to call from a
 * thread other than the one running garbage collection.
 */
char *sd_metrics_render(const struct sd_metrics_ctx *ctx, size_t *len);

/* Programs of the instance at pin_dir attached directly at the cgroup, per
 * attach type: calls fn(attach type name, count, arg) for each type with at
 * least one. Returns the number of types seen or -errno.
 */
int sd_attached_programs(const char *pin_dir, const char *cgroup,
			 void (*fn)(const char *type, unsigned int n, void *arg), void *arg);

#endif
