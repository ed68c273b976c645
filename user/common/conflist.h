/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * CNI network configurations: chaining sockmesh-cni into the node's conflist
 * and taking it out again, in one place (`sockmesh cni-install`, which
 * deploy/install-cni.sh runs, and `sockmesh uninstall`; the node agent's
 * watcher can use the same calls). Files are replaced atomically (temp file
 * in the same directory + rename, mode kept), so a runtime never reads half
 * a configuration; a file whose content would not change is not rewritten.
 *
 * Errors: a negative errno and a message in msg naming the file or value.
 */
#ifndef SMC_CONFLIST_H
#define SMC_CONFLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <json-c/json.h>

#define SMC_CNI_PLUGIN "sockmesh-cni"
/* Where a node image keeps the plugin's example configuration
 * (10-sockmesh.conflist.example); $SOCKMESH_SHARE_DIR overrides it.
 */
#define SMC_CNI_SHARE_DIR "/usr/share/sockmesh"

/* The plugin's conflist entry from text: a JSON object with "type": plugin,
 * or a conflist holding such an entry (its first). NULL when neither.
 */
json_object *smc_cni_entry(const char *text, const char *plugin);

/* The entry to chain, as `sockmesh cni-install --plugin-conf` and
 * `sockmeshd --cni-plugin-conf` take it: src is JSON, or @FILE; NULL: the
 * image's example (SMC_CNI_SHARE_DIR), else a bare {"type": plugin}. NULL
 * (errno set) when unreadable or when the text holds no such entry.
 */
json_object *smc_cni_plugin_entry(const char *src, const char *plugin);

/* Is name a multi-plugin configuration (*.conflist), the only kind
 * sockmesh-cni is chained into?
 */
bool smc_cni_is_conflist_name(const char *name);

/* The configuration a runtime uses: the first of dir's *.conf, *.conflist
 * and *.json files in byte order, hidden files excluded. -ENOENT: none.
 */
int smc_cni_first_config(const char *dir, char *name, size_t len);

/* Chain entry into the conflist at path: every entry of the same type goes,
 * entry is appended. 1: rewritten, 0: already so (file untouched).
 * -ENOTSUP (file untouched): the conflist's version is not one sockmesh-cni
 * serves (cni_version.h): cniVersion, or the highest of cniVersions, which
 * a runtime that knows it uses instead; none is 0.1.0.
 */
int smc_cni_chain(const char *path, json_object *entry, const char *plugin, char *msg, size_t len);

/* Take every entry of plugin out of the conflist at path; a file that held
 * nothing else is deleted. Returns the number of entries removed; *action
 * says what happened to the file ("unchanged", "updated", "deleted: ...",
 * "skipped: not a conflist").
 */
int smc_cni_unchain(const char *path, const char *plugin, const char **action, char *msg,
		    size_t len);

/* Copy src to dir/name (mode 0755) unless it is there already with the same
 * bytes: beside it first, then rename. 1: installed, 0: up to date.
 */
int smc_install_file(const char *src, const char *dir, const char *name, char *msg, size_t len);

/* Write o (pretty, no "\/") to path through a temp file in its directory. */
int smc_write_json_atomic(const char *path, json_object *o, mode_t mode);

#endif
