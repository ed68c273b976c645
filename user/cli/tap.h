/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sockmesh tap: library tap records -> pcapng (tap.c). */
#ifndef SOCKMESH_CLI_TAP_H
#define SOCKMESH_CLI_TAP_H

#include <stdio.h>
#include <linux/types.h>

struct sockmesh;
struct sockmesh_scope;

struct tap_args {
	const struct sockmesh_scope *scope; /* NULL: every scope */
	__u16 port; /* 0: any */
	__u32 pid; /* 0: any; else connections that process sent on */
	__u32 snaplen; /* 0: whole sends */
	__u64 ring_size; /* 0: the library's default */
	__u64 count; /* stop after that many payload segments (0: no limit) */
	__u32 duration_s; /* stop after that long (0: no limit) */
	void (*ready)(void *ctx); /* called once the tap is attached */
	void *ready_ctx;
};

struct tap_result {
	__u64 records, lost_records, lost_bytes, frames, connections;
	int signal; /* the signal that ended it, or 0 */
};

/* Tap until a signal, count or duration; pcapng to out. 0 or -errno (the
 * library's message in sockmesh_errmsg() where it failed).
 */
int cli_tap_run(struct sockmesh *sm, const struct tap_args *a, FILE *out, struct tap_result *res);

#endif
