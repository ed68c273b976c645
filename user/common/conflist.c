// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* CNI network configurations: chain and unchain sockmesh-cni (see conflist.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cni_version.h"
#include "conflist.h"
#include "file.h"

/* Network configurations are small; a larger file is not one. */
#define CONF_MAX (1u << 20)

static bool is_entry(json_object *p, const char *plugin)
{
	json_object *t;

	return json_object_is_type(p, json_type_object) &&
	       json_object_object_get_ex(p, "type", &t) &&
	       json_object_is_type(t, json_type_string) &&
	       strcmp(json_object_get_string(t), plugin) == 0;
}

json_object *smc_cni_entry(const char *text, const char *plugin)
{
	json_object *o = json_tokener_parse(text), *plugins;

	if (!o)
		return NULL;
	if (json_object_is_type(o, json_type_object) &&
	    json_object_object_get_ex(o, "plugins", &plugins)) {
		json_object *found = NULL;

		for (size_t i = 0; json_object_is_type(plugins, json_type_array) &&
				   i < json_object_array_length(plugins);
		     i++) {
			json_object *p = json_object_array_get_idx(plugins, i);

			if (is_entry(p, plugin)) {
				found = json_object_get(p);
				break;
			}
		}
		json_object_put(o);
		return found;
	}
	if (is_entry(o, plugin))
		return o;
	json_object_put(o);
	return NULL;
}

json_object *smc_cni_plugin_entry(const char *src, const char *plugin)
{
	char path[PATH_MAX], bare[128], *text;
	const char *share = getenv("SOCKMESH_SHARE_DIR");
	json_object *e;

	if (!src) {
		snprintf(path, sizeof(path), "%s/10-sockmesh.conflist.example",
			 share && share[0] ? share : SMC_CNI_SHARE_DIR);
		if (access(path, R_OK)) {
			snprintf(bare, sizeof(bare), "{\"type\": \"%s\"}", plugin);
			return smc_cni_entry(bare, plugin);
		}
		text = smc_read_file("--plugin-conf", path, CONF_MAX, NULL);
	} else if (src[0] == '@') {
		text = smc_read_file("--plugin-conf", src + 1, CONF_MAX, NULL);
	} else {
		text = strdup(src);
	}
	if (!text)
		return NULL;
	e = smc_cni_entry(text, plugin);
	free(text);
	if (!e)
		errno = EINVAL;
	return e;
}

bool smc_cni_is_conflist_name(const char *name)
{
	size_t n = strlen(name);

	return name[0] != '.' && n > 9 && strcmp(name + n - 9, ".conflist") == 0;
}

static bool is_config_name(const char *n)
{
	static const char *const ext[] = { ".conf", ".conflist", ".json" };
	size_t len = strlen(n);

	if (n[0] == '.')
		return false;
	for (size_t i = 0; i < sizeof(ext) / sizeof(ext[0]); i++) {
		size_t el = strlen(ext[i]);

		if (len > el && strcmp(n + len - el, ext[i]) == 0)
			return true;
	}
	return false;
}

int smc_cni_first_config(const char *dir, char *name, size_t len)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char best[NAME_MAX + 1] = "";
	int err = -ENOENT;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		char p[PATH_MAX];
		struct stat st;

		if (!is_config_name(e->d_name))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (stat(p, &st) || !S_ISREG(st.st_mode))
			continue;
		/* byte order, as the runtimes sort (LC_ALL=C) */
		if (!best[0] || strcmp(e->d_name, best) < 0)
			snprintf(best, sizeof(best), "%s", e->d_name);
	}
	closedir(d);
	if (best[0]) {
		snprintf(name, len, "%s", best);
		err = 0;
	}
	return err;
}

int smc_write_json_atomic(const char *path, json_object *o, mode_t mode)
{
	char tmp[PATH_MAX], *slash;
	const char *text = json_object_to_json_string_ext(
		o,
		JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE);
	FILE *f;
	int err = 0;

	/* a hidden name in the same directory: no runtime reads it, rename is atomic */
	slash = strrchr(path, '/');
	if (snprintf(tmp, sizeof(tmp), "%.*s.%s.sockmesh-tmp", slash ? (int)(slash - path + 1) : 0,
		     path, slash ? slash + 1 : path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	f = fopen(tmp, "we");
	if (!f)
		return -errno;
	if (fprintf(f, "%s\n", text) < 0 || fflush(f) || fsync(fileno(f)))
		err = -errno;
	if (fclose(f) && !err)
		err = -errno;
	if (!err && chmod(tmp, mode & 07777))
		err = -errno;
	if (!err && rename(tmp, path))
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

/* The conflist at path, or NULL with msg set. */
static json_object *read_conflist(const char *path, json_object **plugins, char *msg, size_t len)
{
	char *text = smc_read_file(path, path, CONF_MAX, NULL);
	json_object *o;

	if (!text) {
		snprintf(msg, len, "cannot read '%s': %s", path, strerror(errno));
		return NULL;
	}
	o = json_tokener_parse(text);
	free(text);
	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "plugins", plugins) ||
	    !json_object_is_type(*plugins, json_type_array)) {
		json_object_put(o);
		snprintf(msg, len, "%s is not a conflist with a \"plugins\" array", path);
		return NULL;
	}
	return o;
}

/* plugins without the entries of plugin; the number removed in *removed */
static json_object *without(json_object *plugins, const char *plugin, int *removed)
{
	json_object *kept = json_object_new_array();

	*removed = 0;
	for (size_t i = 0; i < json_object_array_length(plugins); i++) {
		json_object *p = json_object_array_get_idx(plugins, i);

		if (is_entry(p, plugin))
			(*removed)++;
		else
			json_object_array_add(kept, json_object_get(p));
	}
	return kept;
}

/* Can sockmesh-cni serve the version a runtime runs the conflist with? That
 * is cniVersion, or, from libcni 1.2 (spec 1.1.0) on, the highest version
 * of cniVersions and cniVersion the runtime knows (libcni
 * ConfListFromBytes): as runtimes learn newer versions they pick the
 * highest listed, so that one must be served too. Without either a runtime
 * runs the plugins with none (0.1.0 implied). 0, or -ENOTSUP with msg
 * naming the file and the version.
 */
static int check_versions(json_object *o, const char *path, char *msg, size_t len)
{
	const char *top = NULL, *s;
	json_object *v, *vs;
	unsigned long n[3];

	if (json_object_object_get_ex(o, "cniVersion", &v)) {
		if (!json_object_is_type(v, json_type_string)) {
			snprintf(msg, len, "%s: cniVersion %.100s is not a string; not chained",
				 path, json_object_to_json_string(v));
			return -ENOTSUP;
		}
		top = json_object_get_string(v);
		if (!smc_cni_version_served(top)) {
			snprintf(msg, len,
				 "%s has cniVersion '%.100s': %s serves " SMC_CNI_VERSIONS_TEXT
				 ", so every ADD would fail; not chained",
				 path, top, SMC_CNI_PLUGIN);
			return -ENOTSUP;
		}
	}
	if (json_object_object_get_ex(o, "cniVersions", &vs)) {
		if (!json_object_is_type(vs, json_type_array)) {
			snprintf(msg, len, "%s: cniVersions %.100s is not a list; not chained",
				 path, json_object_to_json_string(vs));
			return -ENOTSUP;
		}
		for (size_t i = 0; i < json_object_array_length(vs); i++) {
			v = json_object_array_get_idx(vs, i);
			s = json_object_get_string(v);
			if (!json_object_is_type(v, json_type_string) ||
			    !smc_cni_version_parse(s, n)) {
				snprintf(
					msg, len,
					"%s: cniVersions[%zu] %.100s is not a version; not chained",
					path, i, json_object_to_json_string(v));
				return -ENOTSUP;
			}
			if (!top || smc_cni_version_cmp(s, top) > 0)
				top = s;
		}
		if (top && !smc_cni_version_served(top)) {
			snprintf(
				msg, len,
				"%s lists '%.100s' in cniVersions, the version runtimes that know it use: %s serves " SMC_CNI_VERSIONS_TEXT
				", so their ADDs would fail; not chained",
				path, top, SMC_CNI_PLUGIN);
			return -ENOTSUP;
		}
	}
	if (!top) {
		snprintf(msg, len,
			 "%s has no cniVersion (0.1.0 implied): %s serves " SMC_CNI_VERSIONS_TEXT
			 "; not chained",
			 path, SMC_CNI_PLUGIN);
		return -ENOTSUP;
	}
	return 0;
}

int smc_cni_chain(const char *path, json_object *entry, const char *plugin, char *msg, size_t len)
{
	json_object *o, *plugins, *next, *kept;
	struct stat st;
	int removed, err;

	o = read_conflist(path, &plugins, msg, len);
	if (!o)
		return -EINVAL;
	err = check_versions(o, path, msg, len);
	if (err) {
		json_object_put(o);
		return err;
	}
	kept = without(plugins, plugin, &removed);
	json_object_array_add(kept, json_object_get(entry));
	/* the same result on every run: nothing to write when it is so already */
	next = json_object_get(o);
	if (json_object_equal(plugins, kept)) {
		json_object_put(kept);
		json_object_put(next);
		json_object_put(o);
		return 0;
	}
	json_object_object_add(next, "plugins", kept);
	err = stat(path, &st) ? -errno : smc_write_json_atomic(path, next, st.st_mode);
	if (err)
		snprintf(msg, len, "cannot rewrite '%s': %s", path, strerror(-err));
	json_object_put(next);
	json_object_put(o);
	return err ? err : 1;
}

/* Does the file name the plugin anywhere (for files that do not parse)? */
static bool file_mentions(const char *path, const char *plugin)
{
	char *text = smc_read_file(path, path, CONF_MAX, NULL);
	bool found = text && strstr(text, plugin);

	free(text);
	return found;
}

int smc_cni_unchain(const char *path, const char *plugin, const char **action, char *msg,
		    size_t len)
{
	json_object *o, *plugins, *kept;
	struct stat st;
	int removed, err;

	*action = "unchanged";
	o = read_conflist(path, &plugins, msg, len);
	if (!o) {
		if (file_mentions(path, plugin)) {
			snprintf(msg, len, "'%s' names %s but is not a conflist that parses", path,
				 plugin);
			*action = "error: not an editable conflist";
			return -EINVAL;
		}
		*action = "skipped: not a conflist";
		return 0;
	}
	kept = without(plugins, plugin, &removed);
	if (!removed) {
		json_object_put(kept);
		json_object_put(o);
		return 0;
	}
	if (json_object_array_length(kept) == 0) {
		json_object_put(kept);
		json_object_put(o);
		if (unlink(path) && errno != ENOENT) {
			err = -errno;
			snprintf(msg, len, "cannot remove '%s': %s", path, strerror(-err));
			*action = "error: cannot remove";
			return err;
		}
		*action = "deleted: it held only " SMC_CNI_PLUGIN;
		return removed;
	}
	json_object_object_add(o, "plugins", kept);
	err = stat(path, &st) ? -errno : smc_write_json_atomic(path, o, st.st_mode);
	json_object_put(o);
	if (err) {
		snprintf(msg, len, "cannot rewrite '%s': %s", path, strerror(-err));
		*action = "error: cannot rewrite";
		return err;
	}
	*action = "updated";
	return removed;
}

static bool same_bytes(const char *a, const char *b)
{
	char *x, *y;
	size_t lx, ly;
	bool same;

	x = smc_read_file("src", a, 1u << 30, &lx);
	y = x ? smc_read_file("dst", b, 1u << 30, &ly) : NULL;
	same = x && y && lx == ly && memcmp(x, y, lx) == 0;
	free(x);
	free(y);
	return same;
}

int smc_install_file(const char *src, const char *dir, const char *name, char *msg, size_t len)
{
	char dst[PATH_MAX], tmp[PATH_MAX], buf[65536];
	int in, out, err = 0;
	ssize_t n;

	if (snprintf(dst, sizeof(dst), "%s/%s", dir, name) >= (int)sizeof(dst) ||
	    snprintf(tmp, sizeof(tmp), "%s/.%s.install-tmp", dir, name) >= (int)sizeof(tmp)) {
		snprintf(msg, len, "'%s' is too long a directory", dir);
		return -ENAMETOOLONG;
	}
	if (access(dst, X_OK) == 0 && same_bytes(src, dst))
		return 0;
	/* a runtime must never exec half a binary: copy beside it, then rename */
	in = open(src, O_RDONLY | O_CLOEXEC);
	if (in < 0) {
		err = -errno;
		snprintf(msg, len, "cannot read '%s': %s", src, strerror(-err));
		return err;
	}
	out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	if (out < 0) {
		err = -errno;
		close(in);
		snprintf(msg, len, "cannot write '%s': %s", tmp, strerror(-err));
		return err;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			err = -EIO;
			break;
		}
	if (n < 0)
		err = -errno;
	if (!err && (fchmod(out, 0755) || fsync(out)))
		err = -errno;
	if (close(out) && !err)
		err = -errno;
	close(in);
	if (!err && rename(tmp, dst))
		err = -errno;
	if (err) {
		unlink(tmp);
		snprintf(msg, len, "cannot install '%s': %s", dst, strerror(-err));
		return err;
	}
	return 1;
}
