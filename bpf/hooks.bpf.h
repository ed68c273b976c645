/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The data path's tail-call hooks (never pinned: docs/design.md, "The
 * tap" and "Flow events"): program arrays indexed by the path a send took
 * (enum sm_tap_path) for sk_msg programs, one slot for sockops. Declared
 * by the data path and, to call the tap's after its own, by the flow
 * programs. And the per-socket state every program of them reads (the
 * data path's; the extensions reuse its pin).
 */
#ifndef SOCKMESH_HOOKS_BPF_H
#define SOCKMESH_HOOKS_BPF_H

#include "sockmesh_abi.h"

#define SM_PROG_ARRAY(name, n)                         \
	struct {                                       \
		__uint(type, BPF_MAP_TYPE_PROG_ARRAY); \
		__uint(max_entries, n);                \
		__type(key, __u32);                    \
		__type(value, __u32);                  \
	} name SEC(".maps")

/* The tap's programs: one per path a send took, every verdict SK_PASS (a
 * redirect is recorded in the message itself); its sockops program for a
 * spliced socket's establishment and state changes.
 */
#define SM_TAP_CALLS()                              \
	SM_PROG_ARRAY(tap_msg_calls, SM_TAP_PATHS); \
	SM_PROG_ARRAY(tap_sockops_calls, 1)

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sm_sk_state);
} sk_state_map SEC(".maps");

#endif
