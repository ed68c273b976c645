/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * sockmeshd --flows: flow records folded into per-scope series for
 * /metrics (connections opened by direction, open now, a duration
 * histogram of the closed ones, bytes by path and direction). Thread-safe:
 * the flows thread adds, the HTTP thread takes snapshots.
 */
#ifndef SOCKMESHD_FLOWAGG_H
#define SOCKMESHD_FLOWAGG_H

#include <stddef.h>

#include "sockmesh.h"
#include "sockmesh_abi.h"

#define SD_FLOW_BUCKETS 10
/* upper bounds (seconds) of the duration histogram's buckets, +Inf after */
extern const double sd_flow_bucket_le[SD_FLOW_BUCKETS];
#define SD_FLOW_DIRS 3 /* enum sm_flow_dir */

struct sd_flow_row {
	char kind[8]; /* "cgroup", "netns", or "" (a scope withdrawn meanwhile) */
	char scope[300];
	char pod_namespace[64];
	char pod_name[256];
	unsigned long long opened[SD_FLOW_DIRS];
	unsigned long long closed;
	unsigned long long bucket[SD_FLOW_BUCKETS + 1]; /* per bucket, not cumulative */
	double duration_sum;
	unsigned long long bytes[SM_TAP_PATHS][2]; /* [path][0 to server, 1 to client] */
	long long last_ms; /* CLOCK_MONOTONIC of its last record */
};

struct sd_flowagg;

struct sd_flowagg *sd_flowagg_new(void);
void sd_flowagg_free(struct sd_flowagg *a);
/* One record: OPEN counts the connection, UPDATE and CLOSE the bytes since
 * its last record, CLOSE its duration. -ENOMEM if it could not be kept.
 */
int sd_flowagg_add(struct sd_flowagg *a, const struct sm_flow *f,
		   const struct sockmesh_flow_names *n);
/* Whether a consumer is attached and what it lost (the flows thread). */
void sd_flowagg_set_state(struct sd_flowagg *a, int following, unsigned long long lost_records,
			  unsigned long long lost_flows);
struct sd_flowagg_totals {
	int following; /* 1: sockmeshd follows flow events now */
	unsigned long long lost_records, lost_flows;
};
/* A copy of every row (malloc'd, *n of them; NULL and 0 when none or out
 * of memory) and the totals. Rows without an open connection and without a
 * record for idle_ms are dropped first.
 */
struct sd_flow_row *sd_flowagg_snapshot(struct sd_flowagg *a, long long idle_ms, size_t *n,
					struct sd_flowagg_totals *t);

#endif
