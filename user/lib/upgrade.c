// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* libsockmesh: live upgrade and downgrade of a pinned instance.
 *
 * The new build's programs are loaded against the pinned maps (reused as
 * they are) and replace the old ones where they are attached: every pinned
 * bpf_link is updated in place (BPF_LINK_UPDATE: the hook is never empty),
 * the sockmaps get the new sk_msg / stream verdict (sockets already in them
 * keep the programs they were inserted with, and the maps those use). Maps
 * whose value layout changed are copied into maps of the new layout when
 * they hold no live connection's state (see SM_LAYOUT_VERSION); for the
 * others the upgrade refuses before it changes anything. Pins are replaced
 * last (pin to a temporary name, rename), config_map's build id very last,
 * so an interrupted upgrade is finished by running it again.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "lib.h"
#include "sockmesh.bpf.skel.h"

/* FNV-1a of the BPF object this library embeds: which build loaded an
 * instance (config_map's build_id).
 */
__u64 sm_build_id(void)
{
	static __u64 id;
	const unsigned char *b;
	size_t n;

	if (id)
		return id;
	b = sockmesh_bpf__elf_bytes(&n);
	id = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++) {
		id ^= b[i];
		id *= 0x100000001b3ull;
	}
	return id;
}

/* Maps an upgrade may copy into a new layout: written by user space only,
 * or counters; none holds a live connection's state.
 */
static bool migratable(int i)
{
	return i == MAP_scope_map || i == MAP_scope_meta_map || i == MAP_cidr_map ||
	       i == MAP_port_map || i == MAP_pod_addr_map || i == MAP_stats_map ||
	       i == MAP_config_map;
}

static bool percpu(enum bpf_map_type t)
{
	return t == BPF_MAP_TYPE_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_ARRAY ||
	       t == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

static int map_info(int fd, struct bpf_map_info *info)
{
	__u32 len = sizeof(*info);

	memset(info, 0, sizeof(*info));
	return bpf_obj_get_info_by_fd(fd, info, &len) ? -errno : 0;
}

static bool same_layout(const struct bpf_map_info *a, struct bpf_map *b)
{
	return a->type == bpf_map__type(b) && a->key_size == bpf_map__key_size(b) &&
	       a->value_size == bpf_map__value_size(b);
}

static void describe(char *buf, size_t len, const struct bpf_map_info *a, struct bpf_map *b)
{
	if (a->type != bpf_map__type(b))
		snprintf(buf, len, "type %u, this build %u", a->type, bpf_map__type(b));
	else if (a->key_size != bpf_map__key_size(b))
		snprintf(buf, len, "key %u bytes, this build %u", a->key_size,
			 bpf_map__key_size(b));
	else
		snprintf(buf, len, "value %u bytes, this build %u", a->value_size,
			 bpf_map__value_size(b));
}

/* Read config_map's one value whatever its size (fields only appended). */
static void read_config(int fd, struct sm_config *cfg)
{
	struct bpf_map_info info;
	unsigned char buf[256] = { 0 };
	__u32 zero = 0;

	memset(cfg, 0, sizeof(*cfg));
	if (fd < 0 || map_info(fd, &info) || info.value_size > sizeof(buf) ||
	    bpf_map_lookup_elem(fd, &zero, buf))
		return;
	memcpy(cfg, buf, info.value_size < sizeof(*cfg) ? info.value_size : sizeof(*cfg));
	if (!cfg->layout)
		cfg->layout = 1;
}

int sm_layout_check(struct sockmesh *sm)
{
	struct bpf_map *maps[MAP_COUNT];
	struct sockmesh_bpf *skel;
	struct sm_config cfg;
	int err = 0;

	/* loaded by this very build: nothing to compare (every open of a
	 * process that opens often, the daemon's passes and probes, stays
	 * a map lookup)
	 */
	read_config(sm->map_fd[MAP_config_map], &cfg);
	if (cfg.build_id == sm_build_id() && cfg.layout == SM_LAYOUT_VERSION)
		return 0;
	skel = sm_skel_open(maps, NULL);
	if (!skel)
		return -errno;
	for (int i = 0; i < MAP_COUNT && !err; i++) {
		struct bpf_map_info info;
		char d[96];

		if (map_info(sm->map_fd[i], &info))
			continue;
		if (same_layout(&info, maps[i]))
			continue;
		describe(d, sizeof(d), &info, maps[i]);
		sm_set_err(
			0,
			"the instance at '%s' was loaded by another build of sockmesh (map %s: %s); run 'sockmesh upgrade' to load this one",
			sm->pin_dir, sm_map_names[i], d);
		err = -EPROTO;
	}
	sockmesh_bpf__destroy(skel);
	return err;
}

/* Copy every entry of from into to, values cut or zero-extended to the new
 * size (per CPU for per-CPU maps). add: counters, added to what to holds
 * (as __u64 words); keys_only: create to's entries with zero values.
 */
enum copy_how { COPY_VALUES, COPY_KEYS_ONLY, COPY_ADD };

static int copy_map(int from, int to, enum copy_how how)
{
	struct bpf_map_info fi, ti;
	unsigned char *key = NULL, *next = NULL, *fv = NULL, *tv = NULL;
	size_t ncpu = 1, fs, ts;
	bool first = true;
	int err;

	err = map_info(from, &fi);
	if (!err)
		err = map_info(to, &ti);
	if (err)
		return err;
	if (percpu(fi.type)) {
		int n = libbpf_num_possible_cpus();

		if (n <= 0)
			return -EINVAL;
		ncpu = (size_t)n;
	}
	fs = percpu(fi.type) ? (fi.value_size + 7) / 8 * 8 : fi.value_size;
	ts = percpu(ti.type) ? (ti.value_size + 7) / 8 * 8 : ti.value_size;
	key = calloc(1, fi.key_size);
	next = calloc(1, fi.key_size);
	fv = calloc(ncpu, fs);
	tv = calloc(ncpu, ts);
	if (!key || !next || !fv || !tv) {
		err = -ENOMEM;
		goto out;
	}
	while (bpf_map_get_next_key(from, first ? NULL : key, next) == 0) {
		first = false;
		memcpy(key, next, fi.key_size);
		if (bpf_map_lookup_elem(from, key, fv))
			continue; /* gone meanwhile */
		memset(tv, 0, ncpu * ts);
		if (how == COPY_ADD && bpf_map_lookup_elem(to, key, tv))
			memset(tv, 0, ncpu * ts);
		for (size_t c = 0; c < ncpu; c++) {
			unsigned char *f = fv + c * fs, *t = tv + c * ts;
			size_t n = fi.value_size < ti.value_size ? fi.value_size : ti.value_size;

			if (how == COPY_VALUES) {
				memcpy(t, f, n);
			} else if (how == COPY_ADD) {
				for (size_t w = 0; w + 8 <= n; w += 8) {
					__u64 a, b;

					memcpy(&a, f + w, 8);
					memcpy(&b, t + w, 8);
					b += a;
					memcpy(t + w, &b, 8);
				}
			}
		}
		if (bpf_map_update_elem(to, key, tv, BPF_ANY)) {
			err = -errno;
			break;
		}
	}
out:
	free(key);
	free(next);
	free(fv);
	free(tv);
	return err;
}

/* Pin fd at <pin_dir>/<name> replacing what is there: pin to a temporary
 * name, then rename over it (bpffs renames atomically).
 */
static int repin(struct sockmesh *sm, int fd, const char *name)
{
	char p[PATH_MAX], tmp[PATH_MAX];

	if (sm_pin_path(sm, p, sizeof(p), "%s", name) ||
	    sm_pin_path(sm, tmp, sizeof(tmp), "tmp_%s", name))
		return -ENAMETOOLONG;
	unlink(tmp);
	if (bpf_obj_pin(fd, tmp) || rename(tmp, p)) {
		int err = -errno;

		unlink(tmp);
		sm_set_err(-err, "cannot pin %s", p);
		return err;
	}
	return 0;
}

static int prog_tag(int fd, unsigned char tag[BPF_TAG_SIZE])
{
	struct bpf_prog_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return -errno;
	memcpy(tag, info.tag, BPF_TAG_SIZE);
	return 0;
}

/* The program a pinned link runs now, by the link pin's name. */
static int link_prog(const char *name, const int *prog_fd)
{
	if (strstr(name, "_sk_lookup"))
		return prog_fd[PROG_sm_lookup];
	for (size_t h = 0; h < sm_n_cgroup_hooks; h++) {
		const char *u = strrchr(name, '_');

		if (u && !strcmp(u + 1, sm_cgroup_hooks[h].hook))
			return prog_fd[sm_cgroup_hooks[h].prog];
	}
	return -1;
}

/* Every cgroup and netns link: the new program, in place. */
static int update_links(struct sockmesh *sm, const int *prog_fd, struct sockmesh_upgrade_info *ui)
{
	DIR *d = opendir(sm->pin_dir);
	struct dirent *e;
	int err = 0;

	if (!d)
		return -errno;
	while (!err && (e = readdir(d))) {
		char p[PATH_MAX];
		int fd, prog;

		if (strncmp(e->d_name, "link_", 5) || !strcmp(e->d_name, SM_READ_ACCT_LINK))
			continue;
		prog = link_prog(e->d_name, prog_fd);
		if (prog < 0 || sm_pin_path(sm, p, sizeof(p), "%s", e->d_name))
			continue;
		fd = bpf_obj_get(p);
		if (fd < 0)
			continue; /* removed meanwhile (a scope withdrawn without our lock) */
		if (bpf_link_update(fd, prog, NULL)) {
			err = -errno;
			sm_set_err(-err, "cannot update the link %s", p);
		} else {
			ui->links_updated++;
		}
		close(fd);
	}
	closedir(d);
	return err;
}

/* The read accounting: kept when its program is unchanged (same tag: the
 * same instructions on the same maps), else the new one attached and pinned
 * over the old link, which detaches it.
 */
static int update_read_acct(struct sockmesh *sm, struct bpf_program *np,
			    struct sockmesh_upgrade_info *ui)
{
	struct bpf_link_info li = {};
	__u32 len = sizeof(li);
	unsigned char old_tag[BPF_TAG_SIZE], new_tag[BPF_TAG_SIZE];
	struct bpf_link *link;
	char p[PATH_MAX];
	int fd, old_prog, err;

	sm_pin_path(sm, p, sizeof(p), "%s", SM_READ_ACCT_LINK);
	fd = bpf_obj_get(p);
	if (fd >= 0 && bpf_obj_get_info_by_fd(fd, &li, &len) == 0) {
		old_prog = bpf_prog_get_fd_by_id(li.prog_id);
		err = old_prog < 0 ? -errno : prog_tag(old_prog, old_tag);
		if (old_prog >= 0)
			close(old_prog);
		if (!err && !prog_tag(bpf_program__fd(np), new_tag) &&
		    !memcmp(old_tag, new_tag, BPF_TAG_SIZE)) {
			close(fd);
			return 0;
		}
	}
	if (fd >= 0)
		close(fd);
	link = bpf_program__attach(np);
	if (!link) {
		err = -errno;
		sm_set_err(-err, "cannot attach %s", sm_prog_names[sm_read_acct_prog()]);
		return err;
	}
	err = repin(sm, bpf_link__fd(link), SM_READ_ACCT_LINK);
	bpf_link__destroy(link); /* the pin holds it */
	if (!err)
		ui->links_updated++;
	return err;
}

static int upgrade_locked(struct sockmesh *sm, struct sockmesh_upgrade_info *ui)
{
	struct sockmesh_bpf *skel;
	struct bpf_map *maps[MAP_COUNT];
	struct bpf_program *progs[PROG_COUNT];
	int old_fd[MAP_COUNT], prog_fd[PROG_COUNT];
	bool replaced[MAP_COUNT] = { false };
	struct sm_config cfg;
	char p[PATH_MAX];
	__u32 zero = 0;
	int err = 0;

	for (int i = 0; i < MAP_COUNT; i++) {
		sm_pin_path(sm, p, sizeof(p), "map_%s", sm_map_names[i]);
		old_fd[i] = bpf_obj_get(p);
	}
	if (old_fd[MAP_scope_map] < 0 || old_fd[MAP_config_map] < 0) {
		sm_set_err(0, "nothing is loaded at pin dir '%s'", sm->pin_dir);
		err = -ENOENT;
		goto out_fds;
	}
	read_config(old_fd[MAP_config_map], &cfg);
	ui->from_build_id = cfg.build_id;
	ui->to_build_id = sm_build_id();
	if (cfg.layout != SM_LAYOUT_VERSION) {
		sm_set_err(
			0,
			"the instance at '%s' has layout version %u, this build %u; its connections' state cannot be carried over: 'sockmesh disable --all' and enable again",
			sm->pin_dir, cfg.layout, SM_LAYOUT_VERSION);
		err = -EPROTO;
		goto out_fds;
	}
	skel = sm_skel_open(maps, progs);
	if (!skel) {
		err = -errno;
		goto out_fds;
	}
	for (int i = 0; i < MAP_COUNT; i++) {
		struct bpf_map_info info;
		char d[96];

		if (old_fd[i] < 0) {
			replaced[i] = true; /* new in this build: starts empty */
			continue;
		}
		err = map_info(old_fd[i], &info);
		if (err)
			goto out_skel;
		if (same_layout(&info, maps[i])) {
			err = bpf_map__reuse_fd(maps[i], old_fd[i]);
			if (err) {
				sm_set_err(-err, "cannot reuse map %s", sm_map_names[i]);
				goto out_skel;
			}
			ui->maps_kept++;
			continue;
		}
		describe(d, sizeof(d), &info, maps[i]);
		if (!migratable(i) || info.type != bpf_map__type(maps[i]) ||
		    info.key_size != bpf_map__key_size(maps[i])) {
			sm_set_err(
				0,
				"map %s changed its layout (%s) and holds live connections' state; this build needs 'sockmesh disable --all' and enable",
				sm_map_names[i], d);
			err = -EPROTO;
			goto out_skel;
		}
		bpf_map__set_max_entries(maps[i], info.max_entries);
		replaced[i] = true;
		ui->maps_migrated++;
	}
	if (cfg.splice_budget)
		skel->rodata->splice_budget = cfg.splice_budget;
	sm_kernel_select(skel, progs);
	err = sockmesh_bpf__load(skel);
	if (err) {
		sm_set_err(-err, "cannot load the new BPF programs (run 'sockmesh doctor')");
		goto out_skel;
	}
	for (int i = 0; i < PROG_COUNT; i++)
		prog_fd[i] = bpf_program__fd(progs[i]);

	/* The maps user space writes, copied before any program can read
	 * them; the counters' slots created (their totals follow the swap).
	 */
	for (int i = 0; i < MAP_COUNT && !err; i++)
		if (replaced[i] && old_fd[i] >= 0 && i != MAP_config_map)
			err = copy_map(old_fd[i], bpf_map__fd(maps[i]),
				       i == MAP_stats_map ? COPY_KEYS_ONLY : COPY_VALUES);
	if (err) {
		sm_set_err(-err, "cannot copy the maps into their new layout");
		goto out_skel;
	}

	/* The swap: nothing from here on leaves a hook empty. */
	err = update_links(sm, prog_fd, ui);
	if (err)
		goto out_skel;
	if (bpf_prog_attach(prog_fd[PROG_sm_msg], bpf_map__fd(maps[MAP_splice_map]),
			    BPF_SK_MSG_VERDICT, 0) ||
	    bpf_prog_attach(prog_fd[PROG_sm_fp_skb], bpf_map__fd(maps[MAP_fp_map]),
			    BPF_SK_SKB_STREAM_VERDICT, 0)) {
		err = -errno;
		sm_set_err(-err, "cannot attach the new programs to the socket maps");
		goto out_skel;
	}
	err = update_read_acct(sm, progs[sm_read_acct_prog()], ui);
	if (err)
		goto out_skel;
	if (replaced[MAP_stats_map] && old_fd[MAP_stats_map] >= 0 &&
	    copy_map(old_fd[MAP_stats_map], bpf_map__fd(maps[MAP_stats_map]), COPY_ADD))
		ui->counters_lost = true;

	/* Pins: programs and replaced maps; maps this build does not have go */
	for (int i = 0; i < PROG_COUNT && !err; i++) {
		if (sm_prog_unpinned(i))
			continue;
		sm_pin_path(sm, p, sizeof(p), "prog_%s", sm_prog_names[i]);
		err = repin(sm, prog_fd[i], strrchr(p, '/') + 1);
	}
	for (int i = 0; i < MAP_COUNT && !err; i++) {
		if (!replaced[i])
			continue;
		sm_pin_path(sm, p, sizeof(p), "map_%s", sm_map_names[i]);
		err = repin(sm, bpf_map__fd(maps[i]), strrchr(p, '/') + 1);
	}
	if (err)
		goto out_skel;
	{
		DIR *d = opendir(sm->pin_dir);
		struct dirent *e;

		while (d && (e = readdir(d))) {
			bool known = false;

			if (strncmp(e->d_name, "map_", 4) && strncmp(e->d_name, "prog_", 5))
				continue;
			if (e->d_name[0] == 'm')
				for (int i = 0; i < MAP_COUNT && !known; i++)
					known = !strcmp(e->d_name + 4, sm_map_names[i]);
			else
				for (int i = 0; i < PROG_COUNT && !known; i++)
					known = !strcmp(e->d_name + 5, sm_prog_names[i]);
			if (!known && sm_pin_path(sm, p, sizeof(p), "%s", e->d_name) == 0)
				unlink(p); /* the old programs keep what they use */
		}
		if (d)
			closedir(d);
	}
	/* Last: the build id says the upgrade is complete. */
	cfg.build_id = sm_build_id();
	cfg.layout = SM_LAYOUT_VERSION;
	cfg.splice_budget = skel->rodata->splice_budget;
	if (bpf_map_update_elem(bpf_map__fd(maps[MAP_config_map]), &zero, &cfg, BPF_ANY)) {
		err = -errno;
		sm_set_err(-err, "cannot write the instance's settings");
	}
	ui->upgraded = !err;
out_skel:
	sockmesh_bpf__destroy(skel);
out_fds:
	for (int i = 0; i < MAP_COUNT; i++)
		if (old_fd[i] >= 0)
			close(old_fd[i]);
	return err;
}

int sockmesh_upgrade(const char *pin_dir, struct sockmesh_upgrade_info *info)
{
	struct sockmesh_upgrade_info ui = { .sz = sizeof(ui) };
	struct sockmesh tmp;
	struct sm_config cfg;
	int lock, err, fd;
	char p[PATH_MAX];

	if (info && info->sz < offsetofend(struct sockmesh_upgrade_info, upgraded)) {
		sm_set_err(0, "struct sockmesh_upgrade_info: sz %zu is too small", info->sz);
		return -EINVAL;
	}
	if (!pin_dir)
		pin_dir = SOCKMESH_DEFAULT_PIN_DIR;
	if (pin_dir[0] != '/' || strlen(pin_dir) >= PATH_MAX - 64) {
		sm_set_err(0, "%s: '%s' must be an absolute path", sm_fname(SOCKMESH_F_PIN_DIR),
			   pin_dir);
		return -EINVAL;
	}
	memset(&tmp, 0, sizeof(tmp));
	snprintf(tmp.pin_dir, sizeof(tmp.pin_dir), "%s", pin_dir);
	while (strlen(tmp.pin_dir) > 1 && tmp.pin_dir[strlen(tmp.pin_dir) - 1] == '/')
		tmp.pin_dir[strlen(tmp.pin_dir) - 1] = '\0';
	lock = sm_lock(tmp.pin_dir);
	if (lock < 0) {
		sm_set_err(-lock, "cannot lock the instance at '%s'", tmp.pin_dir);
		return lock;
	}
	sm_pin_path(&tmp, p, sizeof(p), "map_%s", sm_map_names[MAP_config_map]);
	fd = bpf_obj_get(p);
	read_config(fd, &cfg);
	if (fd < 0) {
		err = errno == ENOENT ? -ENOENT : -errno;
		sm_set_err(-err, "nothing is loaded at pin dir '%s'", tmp.pin_dir);
	} else if (cfg.build_id == sm_build_id() && cfg.layout == SM_LAYOUT_VERSION) {
		ui.from_build_id = ui.to_build_id = cfg.build_id;
		err = 0; /* this build already */
	} else {
		err = upgrade_locked(&tmp, &ui);
	}
	if (fd >= 0)
		close(fd);
	if (!sockmesh__exists(tmp.pin_dir)) {
		/* nothing there: leave no lock file behind either */
		sm_lock_path(tmp.pin_dir, p, sizeof(p));
		if (p[0])
			unlink(p);
	}
	sm_unlock(lock);
	if (info) {
		/* an older caller's shorter struct gets what it has room for */
		size_t n = info->sz < sizeof(ui) ? info->sz : sizeof(ui);

		memcpy((char *)info + sizeof(ui.sz), (char *)&ui + sizeof(ui.sz),
		       n - sizeof(ui.sz));
	}
	return err;
}
