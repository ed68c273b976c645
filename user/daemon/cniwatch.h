/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * sockmeshd: keeps sockmesh-cni chained into the node's CNI configuration.
 * The primary CNI (Calico, flannel, ...) rewrites or replaces its conflist
 * when it restarts or upgrades, dropping our entry: pods added after that
 * would not be enrolled. The watcher follows the directory with inotify and
 * re-chains the entry into the configuration a runtime uses (the first in
 * byte order) with the same calls as `sockmesh cni-install`
 * (user/common/conflist.h: atomic rename, a file already so is not
 * touched, so the watcher's own write ends in a pass that does nothing).
 * A configuration it cannot serve is logged once per distinct problem and
 * left as it is. Main thread only, except the counter (__atomic).
 */
#ifndef SOCKMESHD_CNIWATCH_H
#define SOCKMESHD_CNIWATCH_H

#include <limits.h>

#include <json-c/json.h>

struct sd_cniwatch {
	const char *dir;
	json_object *entry; /* the entry to chain (owned) */
	int fd; /* inotify; -1: the watcher is off */
	int wd; /* -1: dir is not watched (yet, or gone): retried each check */
	char problem[PATH_MAX + 512]; /* the last problem logged, "" when none */
	unsigned long long rechains; /* shared with the HTTP thread */
};

/* Start watching dir (entry: taken). 0, or -1 logged (no inotify). A
 * missing directory is not fatal: logged, watched once it appears.
 */
int sd_cniwatch_start(struct sd_cniwatch *w, const char *dir, json_object *entry);

/* The inotify fd is readable: read the events (waiting for the writer to
 * finish: up to 1 s of quiet-time), then check if any concerns a
 * configuration.
 */
void sd_cniwatch_events(struct sd_cniwatch *w);

/* Re-chain the first configuration if it lacks our entry (trigger: why
 * the check runs, logged with a repair).
 */
void sd_cniwatch_check(struct sd_cniwatch *w, const char *trigger);

/* Stop watching; the configuration is left as it is. */
void sd_cniwatch_stop(struct sd_cniwatch *w);

static inline unsigned long long sd_cniwatch_rechains(struct sd_cniwatch *w)
{
	return __atomic_load_n(&w->rechains, __ATOMIC_RELAXED);
}

#endif
