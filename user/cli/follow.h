/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What the commands that follow the data path until told to stop (tap,
 * flows) share: SIGINT, SIGTERM and SIGHUP end them (a pipe's reader going
 * away too: SIGPIPE ignored, the write fails), as do a duration.
 */
#ifndef SOCKMESH_CLI_FOLLOW_H
#define SOCKMESH_CLI_FOLLOW_H

#include <signal.h>
#include <linux/types.h>

/* the signal that asked to stop, or 0 */
extern volatile sig_atomic_t cli_stop_signal;

/* Catch the stopping signals (into cli_stop_signal), ignore SIGPIPE. */
void cli_follow_signals(void);
/* CLOCK_MONOTONIC in ns, and the deadline duration_s from now (0: none). */
__u64 cli_mono_ns(void);
__u64 cli_deadline(__u32 duration_s);

#endif
