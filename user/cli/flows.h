/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sockmesh flows: library flow records -> JSON lines or a table (flows.c). */
#ifndef SOCKMESH_CLI_FLOWS_H
#define SOCKMESH_CLI_FLOWS_H

#include <stdbool.h>
#include <stdio.h>
#include <linux/types.h>

struct sockmesh;
struct sockmesh_scope;

struct flows_args {
	const struct sockmesh_scope *scope; /* NULL: every scope */
	bool json; /* JSON lines, else a table */
	__u32 interval_s; /* 0: the library's default */
	__u32 max_flows; /* 0: the library's default */
	__u64 ring_size; /* 0: the library's default */
	__u64 count; /* stop after that many records (0: no limit) */
	__u32 duration_s; /* stop after that long (0: until a signal) */
	void (*ready)(void *ctx); /* called once the consumer is attached */
	void *ready_ctx;
};

struct flows_result {
	__u64 records, lost_records, lost_flows;
	int signal; /* the signal that ended it, or 0 */
};

/* Follow flow events until a signal, count or duration; records to out.
 * 0 or -errno (the library's message in sockmesh_errmsg() where it failed).
 */
int cli_flows_run(struct sockmesh *sm, const struct flows_args *a, FILE *out,
		  struct flows_result *res);

#endif
