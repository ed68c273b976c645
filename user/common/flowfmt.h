/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Flow records (struct sm_flow) as `sockmesh flows` and sockmeshd show
 * them: one JSON object per record (the JSON lines of -j and of sockmeshd
 * --flow-log), or an aligned table row. Written once for both.
 */
#ifndef SMC_FLOWFMT_H
#define SMC_FLOWFMT_H

#include <stdbool.h>
#include <stdio.h>
#include <json-c/json.h>
#include <linux/types.h>

#include "sockmesh.h"
#include "sockmesh_abi.h"

/* text buffers the formatter uses (an address, a scope name) */
#define SM_FLOWFMT_BUF 320

/* "open", "update", "close" */
const char *smc_flow_event(const struct sm_flow *f);
/* "outbound", "inbound", "pod-to-pod" */
const char *smc_flow_dir(const struct sm_flow *f);
/* The path its bytes took: "spliced", "fallback:budget" (the reader fell a
 * budget behind), "fallback:peer" (the peer left the splice),
 * "fallback", "fast-path", "tcp" (never spliced).
 */
const char *smc_flow_path(const struct sm_flow *f);
/* Bytes each way (dir 0: client -> server); false when not known (a
 * connection that never entered the splice, before its close; a direction
 * that left through the kernel fast path's egress redirect).
 */
bool smc_flow_bytes(const struct sm_flow *f, int dir, unsigned long long *out);
/* Seconds since it opened (at its close: its duration). */
double smc_flow_duration(const struct sm_flow *f);
/* "1.2.3.4:80" or "[::1]:80" */
const char *smc_flow_addr(const struct sm_flow *f, bool server, char *buf, size_t len);

/* A new JSON object (NULL: out of memory); mono_to_real: add to a
 * CLOCK_MONOTONIC time (ns) to get the Unix time (ns).
 */
json_object *smc_flow_json(const struct sm_flow *f, const struct sockmesh_flow_names *n,
			   long long mono_to_real);
/* The table: a header line, then one line per record. */
void smc_flow_table_header(FILE *out);
void smc_flow_table_row(FILE *out, const struct sm_flow *f, const struct sockmesh_flow_names *n,
			long long mono_to_real);
/* CLOCK_REALTIME - CLOCK_MONOTONIC now, ns */
long long smc_mono_to_real(void);

#endif
