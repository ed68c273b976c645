// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sockmeshd: the CNI configuration watcher (see cniwatch.h). */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "cniwatch.h"
#include "conflist.h"
#include "file.h"
#include "log.h"

#define WATCH_MASK                                                                               \
	(IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_DELETE_SELF | \
	 IN_MOVE_SELF | IN_ONLYDIR)
/* a writer that truncates and writes in place is given this long to finish */
#define QUIET_MS 100
#define SETTLE_MAX_MS 1000
/* configurations are small; a larger file is not one (as conflist.c) */
#define CONF_MAX (1u << 20)

/* Log a problem once while it lasts (then at debug level). */
static void problem(struct sd_cniwatch *w, const char *file, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void problem(struct sd_cniwatch *w, const char *file, const char *fmt, ...)
{
	char msg[sizeof(w->problem)];
	json_object *f;
	va_list ap;
	bool fresh;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fresh = strcmp(msg, w->problem) != 0;
	if (fresh)
		snprintf(w->problem, sizeof(w->problem), "%s", msg);
	f = sd_f_str(NULL, "cni_conf_dir", w->dir);
	if (file)
		sd_f_str(f, "file", file);
	sd_f_str(f, "error", msg);
	sd_log(fresh ? SD_WARN : SD_DEBUG, f,
	       "cni watch: cannot keep " SMC_CNI_PLUGIN
	       " chained; leaving the configuration as it is");
}

static int watch_dir(struct sd_cniwatch *w)
{
	w->wd = inotify_add_watch(w->fd, w->dir, WATCH_MASK);
	if (w->wd < 0) {
		problem(w, NULL, "cannot watch '%s': %s", w->dir, strerror(errno));
		return -1;
	}
	sd_log(SD_INFO, sd_f_str(NULL, "cni_conf_dir", w->dir),
	       "cni watch: watching the CNI configuration directory");
	return 0;
}

int sd_cniwatch_start(struct sd_cniwatch *w, const char *dir, json_object *entry)
{
	w->dir = dir;
	w->entry = entry;
	w->wd = -1;
	w->problem[0] = '\0';
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		sd_log(SD_ERROR, sd_f_str(NULL, "cni_conf_dir", dir), "--cni-conf-dir: inotify: %s",
		       strerror(errno));
		return -1;
	}
	watch_dir(w);
	return 0;
}

void sd_cniwatch_stop(struct sd_cniwatch *w)
{
	if (w->fd >= 0) {
		close(w->fd);
		sd_log(SD_INFO, sd_f_str(NULL, "cni_conf_dir", w->dir),
		       "cni watch: stopped; the configuration is left as it is");
	}
	w->fd = -1;
	w->wd = -1;
	json_object_put(w->entry);
	w->entry = NULL;
}

static bool config_name(const char *n)
{
	static const char *const ext[] = { ".conf", ".conflist", ".json" };
	size_t len = strlen(n);

	if (n[0] == '.')
		return false; /* hidden: our own temp files among them */
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		size_t el = strlen(ext[i]);

		if (len > el && strcmp(n + len - el, ext[i]) == 0)
			return true;
	}
	return false;
}

/* Read what is queued; true when an event may change the first configuration. */
static bool drain(struct sd_cniwatch *w)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool relevant = false;
	ssize_t n;

	while ((n = read(w->fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const struct inotify_event *)p;

			if (e->mask & IN_Q_OVERFLOW) {
				relevant = true;
			} else if ((e->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) &&
				   e->wd == w->wd) {
				/* the directory went (or moved away: the watch would
				 * follow it): watch the path again once it is back
				 */
				if (e->mask & IN_MOVE_SELF)
					inotify_rm_watch(w->fd, w->wd);
				w->wd = -1;
				relevant = true;
			} else if (e->len && config_name(e->name)) {
				relevant = true;
			}
			p += sizeof(*e) + e->len;
		}
	}
	return relevant;
}

void sd_cniwatch_events(struct sd_cniwatch *w)
{
	struct pollfd pfd = { .fd = w->fd, .events = POLLIN };
	bool relevant = drain(w);

	/* until the writer has been quiet for QUIET_MS (bounded) */
	for (int waited = 0; waited < SETTLE_MAX_MS; waited += QUIET_MS) {
		if (poll(&pfd, 1, QUIET_MS) <= 0)
			break;
		relevant |= drain(w);
	}
	if (relevant)
		sd_cniwatch_check(w, "inotify");
}

/* Why the entry must be chained again (the file as it is now). */
static const char *rechain_reason(struct sd_cniwatch *w, const char *path)
{
	char *text = smc_read_file("conflist", path, CONF_MAX, NULL);
	json_object *found = text ? smc_cni_entry(text, SMC_CNI_PLUGIN) : NULL;
	const char *why;

	if (!found)
		why = "the conflist has no " SMC_CNI_PLUGIN " entry";
	else if (!json_object_equal(found, w->entry))
		why = "its " SMC_CNI_PLUGIN " entry differs from --cni-plugin-conf";
	else
		why = SMC_CNI_PLUGIN " is not the last plugin, or is listed more than once";
	json_object_put(found);
	free(text);
	return why;
}

void sd_cniwatch_check(struct sd_cniwatch *w, const char *trigger)
{
	char name[NAME_MAX + 1], path[PATH_MAX], msg[PATH_MAX + 256];
	const char *why;
	int err;

	if (w->fd < 0)
		return;
	if (w->wd < 0 && watch_dir(w))
		return;
	err = smc_cni_first_config(w->dir, name, sizeof(name));
	if (err == -ENOENT) {
		problem(w, NULL, "no CNI network configuration in '%s' (yet)", w->dir);
		return;
	}
	if (err) {
		problem(w, NULL, "cannot read '%s': %s", w->dir, strerror(-err));
		return;
	}
	if (snprintf(path, sizeof(path), "%s/%s", w->dir, name) >= (int)sizeof(path)) {
		problem(w, NULL, "'%s/%s' is too long a path", w->dir, name);
		return;
	}
	if (!smc_cni_is_conflist_name(name)) {
		problem(w, path,
			"%s is a single-plugin configuration: " SMC_CNI_PLUGIN
			" chains only into a .conflist",
			path);
		return;
	}
	why = rechain_reason(w, path);
	err = smc_cni_chain(path, w->entry, SMC_CNI_PLUGIN, msg, sizeof(msg));
	if (err < 0) {
		problem(w, path, "%s", msg);
		return;
	}
	if (w->problem[0]) {
		w->problem[0] = '\0';
		sd_log(SD_INFO, sd_f_str(NULL, "file", path),
		       "cni watch: the configuration can be served again");
	}
	if (err == 0)
		return;
	__atomic_add_fetch(&w->rechains, 1, __ATOMIC_RELAXED);
	sd_log(SD_INFO,
	       sd_f_str(sd_f_str(sd_f_str(NULL, "file", path), "reason", why), "trigger", trigger),
	       "re-chained " SMC_CNI_PLUGIN " into %s", path);
}
