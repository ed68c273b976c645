/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * sockmeshd --flows: a thread that follows the instance's flow events
 * (sockmesh__flows), folds them into the /metrics series (flowagg.h) and,
 * with --flow-log, appends them as JSON lines to a file for a log shipper
 * (the lines of `sockmesh flows -j`). It attaches again when the data
 * path was replaced (an upgrade, the instance loaded again) or when
 * another consumer that held the hook has gone.
 */
#ifndef SOCKMESHD_FLOWTHREAD_H
#define SOCKMESHD_FLOWTHREAD_H

#include <stdbool.h>

struct sd_flowagg;
struct sd_flowthread;

struct sd_flowthread_opts {
	const char *pin_dir;
	const char *log_path; /* NULL: no JSON lines */
	unsigned int interval_s; /* records of open connections */
	struct sd_flowagg *agg;
};

/* Open the log (so a bad path fails at start) and start the thread;
 * -errno (logged).
 */
int sd_flowthread_start(const struct sd_flowthread_opts *o, struct sd_flowthread **out);
/* Reopen the log file (SIGHUP: after a rotation). */
void sd_flowthread_reopen(struct sd_flowthread *t);
/* Stop, join, detach from the data path, close the log. */
void sd_flowthread_stop(struct sd_flowthread *t);

#endif
