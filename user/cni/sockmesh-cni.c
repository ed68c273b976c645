// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmesh-cni: chained CNI plugin (spec 0.3.0 to 1.1.0). Runs after the
 * plugin that gives the pod its interface (bridge + host-local, ...): ADD
 * enrolls the pod's netns with the policy of the plugin config overlaid with
 * the pod's istio annotations (containerd's runtimeConfig), DEL withdraws
 * it, CHECK compares the enrollment with that policy; STATUS and GC succeed
 * (see cmd_status_gc). Thin over libsockmesh, which creates or opens the
 * pinned state itself: no daemon needed.
 *
 * stdout carries only the spec's result or error JSON; stderr is for logs.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bpf/libbpf.h>

#include "cni.h"
#include "text.h"

static int libbpf_quiet(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	return level == LIBBPF_WARN ? vfprintf(stderr, fmt, ap) : 0;
}

/* One reply on stdout (text is freed); out of memory (NULL), the spec's error. */
static void print_text(char *text)
{
	printf("%s\n", text ? text :
			      "{\"cniVersion\":\"" CNI_SPEC_VERSION
			      "\",\"code\":5,\"msg\":\"out of memory\"}");
	fflush(stdout);
	free(text);
}

static void print_json(json_object *o)
{
	print_text(cni_json_text(o));
}

static void print_error(const char *version, const struct cni_error *e)
{
	char clean[4 * sizeof(e->msg) + 1];

	print_text(cni_error_json(version, e));
	fprintf(stderr, "sockmesh-cni: %s\n", smc_text_escape(clean, sizeof(clean), e->msg, 0));
}

/* The library's message about field f without the field's own name in
 * front (the caller names the key or variable instead).
 */
static const char *lib_msg_about(enum sockmesh_field f, char *buf, size_t len)
{
	const char *msg = cni_lib_msg(buf, len), *name = cni_key(f);
	size_t n = strlen(name);

	if (sockmesh_errfield() == (int)f && !strncmp(msg, name, n) && msg[n] == ':' &&
	    msg[n + 1] == ' ')
		return msg + n + 2;
	return msg;
}

/* Who the pod is, for messages. */
static const char *pod_desc(const struct cni_env *env, char *buf, size_t len)
{
	if (env->pod_name)
		snprintf(buf, len, "pod %s/%s", env->pod_namespace ? env->pod_namespace : "",
			 env->pod_name);
	else
		snprintf(buf, len, "container %s", env->container_id);
	return buf;
}

/* A library failure: bad input is the config's fault, contention is worth a
 * retry, anything else is ours.
 */
static int lib_fail(struct cni_error *e, int err, const char *what)
{
	char m[600];
	int code = SMCNI_ERR_SOCKMESH;

	if (err == -EINVAL || err == -ERANGE)
		code = CNI_ERR_INVALID_CONFIG;
	else if (err == -EAGAIN || err == -EBUSY || err == -EINTR)
		code = CNI_ERR_TRY_AGAIN;
	return cni_fail(e, code, "%s: %s", what, cni_lib_msg(m, sizeof(m)));
}

static struct sockmesh *open_instance(const struct cni_conf *c, bool create)
{
	struct sockmesh_open_opts oo = { .sz = sizeof(oo),
					 .pin_dir = c->pin_dir,
					 .create = create };

	return sockmesh__open(&oo);
}

/* ---- VERSION ------------------------------------------------------------- */

static int cmd_version(void)
{
	json_object *o = cni_version_json();

	print_json(o);
	json_object_put(o);
	return 0;
}

/* ---- ADD ----------------------------------------------------------------- */

static int check_attach_cgroup(const struct cni_conf *c, __u64 *id, struct cni_error *e)
{
	const char *key = cni_key(SOCKMESH_F_ATTACH_CGROUP), *path = c->attach_cgroup;
	struct sockmesh_scope cg;
	char root[4096], m[600];
	int err;

	if (!path) {
		err = sockmesh_cgroup2_root(root, sizeof(root));
		if (err)
			return cni_fail(e, SMCNI_ERR_SOCKMESH,
					"%s: no cgroup2 mount in /proc/mounts", key);
		path = root;
	}
	if (sockmesh_scope_from_cgroup(path, &cg))
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, "%s: %s", key,
				lib_msg_about(SOCKMESH_F_CGROUP, m, sizeof(m)));
	if (id)
		*id = cg.id;
	return 0;
}

static int netns_scope(const struct cni_env *env, struct sockmesh_scope *s, struct cni_error *e)
{
	char m[600];

	if (sockmesh_scope_from_netns(env->netns, s))
		return cni_fail(e, CNI_ERR_INVALID_ENV, "CNI_NETNS: %s",
				lib_msg_about(SOCKMESH_F_NETNS, m, sizeof(m)));
	return 0;
}

/* Is the scope enrolled with our labels in the instance pinned now? A handle
 * opened before the last withdraw unloaded the instance (and another writer
 * loaded a new one) writes into the old, unpinned maps: see README, "Known
 * library issues".
 */
static bool enrolled_live(const struct cni_env *env, const struct cni_conf *c,
			  const struct sockmesh_scope *scope)
{
	struct sockmesh_scope_info info = { .sz = sizeof(info) };
	struct sockmesh *sm = open_instance(c, false);
	bool ok;

	if (!sm)
		return false;
	ok = sockmesh__scope_info(sm, scope, &info) == 0 &&
	     !strcmp(info.container_id, cni_env_label_id(env));
	sockmesh__close(sm);
	return ok;
}

static int enroll(const struct cni_env *env, const struct cni_conf *c, const char *pod_ips,
		  struct cni_error *e)
{
	struct sockmesh_scope_info info = { .sz = sizeof(info) };
	struct sockmesh_annotations *ann = NULL;
	struct sockmesh_policy pol;
	struct sockmesh_scope scope;
	struct sockmesh *sm = NULL;
	bool existed = false;
	char who[400];
	int err = 0;

	/* Everything is checked before anything is loaded or written. */
	if (cni_pod_policy(c, pod_ips, &ann, &pol, e) || check_attach_cgroup(c, NULL, e) ||
	    netns_scope(env, &scope, e)) {
		sockmesh_annotations__free(ann);
		return -1;
	}
	pod_desc(env, who, sizeof(who));
	/* A second try when the instance was unloaded under the first (its
	 * pins are gone: -ENOENT, or replaced: -ESTALE); the failed try left
	 * nothing behind.
	 */
	for (int attempt = 0; attempt < 2; attempt++) {
		sm = open_instance(c, true);
		if (!sm) {
			err = -errno;
			sockmesh_annotations__free(ann);
			return lib_fail(e, err, "cannot open or create the sockmesh state");
		}
		existed = sockmesh__scope_info(sm, &scope, &info) == 0;
		err = sockmesh__enroll(sm, &scope, c->attach_cgroup, &pol);
		if ((err != -ENOENT && err != -ESTALE) || attempt)
			break;
		sockmesh__close(sm);
		sm = NULL;
	}
	sockmesh_annotations__free(ann);
	if (err) {
		/* Leave no empty instance behind; atomic with other writers. */
		lib_fail(e, err, "enroll");
		sockmesh__unload_if_unused(sm);
		snprintf(e->details, sizeof(e->details), "%s, netns %s, pin dir %s", who,
			 env->netns, c->pin_dir);
		sockmesh__close(sm);
		return -1;
	}
	err = sockmesh__set_scope_labels(sm, &scope, env->pod_namespace ? env->pod_namespace : "",
					 env->pod_name ? env->pod_name : "", cni_env_label_id(env));
	if (err) {
		lib_fail(e, err, "labels");
		/* Nothing of ours stays enrolled (the last one out unloads). */
		if (!existed)
			sockmesh__withdraw(sm, &scope);
		sockmesh__close(sm);
		return -1;
	}
	sockmesh__close(sm);
	if (!enrolled_live(env, c, &scope))
		return cni_fail(
			e, CNI_ERR_TRY_AGAIN,
			"enroll: %s was enrolled into a sockmesh instance that was unloaded meanwhile (pin dir %s); try again",
			who, c->pin_dir);
	return 0;
}

static int cmd_add(const struct cni_env *env, struct cni_conf *c, struct cni_error *e)
{
	struct cni_decision d;
	char *pod_ips = NULL;
	int err;

	if (!c->prev_result)
		return cni_fail(
			e, CNI_ERR_INVALID_CONFIG,
			"prevResult: missing; sockmesh-cni is a chained plugin and must follow the plugin that creates the pod's interface (e.g. bridge)");
	if (cni_prev_result_pod_ips(c->prev_result, &pod_ips, e) || cni_decide(c, env, &d, e))
		return -1;
	if (d.capture) {
		err = enroll(env, c, pod_ips, e);
		free(pod_ips);
		if (err)
			return -1;
	} else {
		free(pod_ips);
	}
	/* A chained plugin passes the previous result on, in the config's
	 * version: cni_conf_parse converted it.
	 */
	print_json(c->prev_result);
	return 0;
}

/* ---- DEL ----------------------------------------------------------------- */

/* Withdraw every netns scope labelled with this container. Once the last
 * scope is withdrawn the instance unloads itself and the handle answers
 * -EINVAL: then there is nothing left to find.
 */
static int withdraw_labelled(struct sockmesh *sm, const struct cni_env *env, struct cni_error *e)
{
	struct sockmesh_scope_info info = { .sz = sizeof(info) };
	struct sockmesh_scope prev;
	int err = 0;

	for (int rounds = 0; rounds < 64; rounds++) {
		const struct sockmesh_scope *p = NULL;
		bool withdrew = false;

		while ((err = sockmesh__next_scope(sm, p, &info)) == 0) {
			bool mine = info.scope.kind == SOCKMESH_SCOPE_NETNS &&
				    info.container_id[0] &&
				    (!strcmp(info.container_id, env->container_id) ||
				     (env->infra_id && !strcmp(info.container_id, env->infra_id)));

			if (mine) {
				err = sockmesh__withdraw(sm, &info.scope);
				if (err && err != -ENOENT)
					return lib_fail(e, err, "withdraw");
				withdrew = true;
				break; /* the walk's position is gone: start over */
			}
			prev = info.scope;
			p = &prev;
		}
		if (err == -EINVAL || (!withdrew && err == -ENOENT))
			return 0;
		if (err && err != -ENOENT)
			return lib_fail(e, err, "list scopes");
	}
	return 0;
}

static int cmd_del(const struct cni_env *env, struct cni_conf *c, struct cni_error *e)
{
	struct sockmesh_scope scope;
	struct sockmesh *sm;
	int err = 0;

	sm = open_instance(c, false);
	if (!sm) {
		if (errno == ENOENT)
			return 0; /* nothing loaded: nothing enrolled */
		return lib_fail(e, -errno, "cannot open the sockmesh state");
	}
	/* The netns may be gone already: then its labels find its scope. */
	if (env->netns && sockmesh_scope_from_netns(env->netns, &scope) == 0) {
		err = sockmesh__withdraw(sm, &scope);
		if (err && err != -ENOENT) {
			lib_fail(e, err, "withdraw");
			sockmesh__close(sm);
			return -1;
		}
	}
	err = withdraw_labelled(sm, env, e);
	sockmesh__close(sm);
	return err;
}

/* ---- STATUS, GC ---------------------------------------------------------- */

/* STATUS (is the plugin ready for ADD?) and GC (clean up what no valid
 * attachment uses) came with CNI 1.1.0. libcni sends both to every plugin
 * of a 1.1.0 conflist and fails the network's status, or reports the GC as
 * failed, when one plugin fails; a skel plugin without these functions
 * succeeds (pkg/skel: checkVersionAndCall with a nil function). So does
 * this one, with no output:
 *  - STATUS: ADD needs no daemon or other service the plugin could find
 *    unavailable (it loads the data path itself); a bad config fails ADD
 *    with code 7 naming the key.
 *  - GC: the only state is the enrollment, keyed by the netns. DEL
 *    withdraws it, libcni sends DEL for every stale cached attachment
 *    before GC, and sockmeshd withdraws the scope of a netns that is gone.
 *    Enrollments are not tied to this network's attachments (the CLI makes
 *    them too), so cni.dev/valid-attachments cannot tell which are stale.
 */
static int cmd_status_gc(void)
{
	return 0;
}

/* ---- CHECK --------------------------------------------------------------- */

struct drift {
	char buf[900];
	size_t len;
};

static void drift_add(struct drift *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void drift_add(struct drift *d, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (d->len >= sizeof(d->buf) - 1)
		return;
	if (d->len) {
		n = snprintf(d->buf + d->len, sizeof(d->buf) - d->len, "; ");
		d->len += (size_t)n < sizeof(d->buf) - d->len ? (size_t)n :
								sizeof(d->buf) - d->len - 1;
	}
	va_start(ap, fmt);
	n = vsnprintf(d->buf + d->len, sizeof(d->buf) - d->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		d->len += (size_t)n < sizeof(d->buf) - d->len ? (size_t)n :
								sizeof(d->buf) - d->len - 1;
}

static void drift_str(struct drift *d, const char *key, const char *got, const char *want)
{
	if (strcmp(got, want))
		drift_add(d, "%s is '%s', CNI_ARGS say '%s'", key, got, want);
}

/* One differing policy field, named by its config key (for "splice", the
 * opposite of no_splice, with the values turned round).
 */
static int drift_field(enum sockmesh_field id, const char *enrolled, const char *want, void *ctx)
{
	const struct sockmesh_field_desc *f = sockmesh_field(id);
	const char *key = f->cni_key ? f->cni_key : f->name;

	if (f->flags & SOCKMESH_FIELD_CNI_NEGATED) {
		enrolled = strcmp(enrolled, "true") ? "true" : "false";
		want = strcmp(want, "true") ? "true" : "false";
	}
	drift_add(ctx, "%s: enrolled '%s', policy '%s'", key, enrolled, want);
	return 0;
}

/* The policy fields the enrollment differs in. Returns 0, or -1 with e set. */
static int policy_drift(struct sockmesh *sm, const struct sockmesh_scope *scope,
			const struct sockmesh_policy *want, struct drift *d, struct cni_error *e)
{
	int r = sockmesh__policy_diff(sm, scope, want, drift_field, d);

	return r < 0 ? lib_fail(e, r, "compare the enrollment with the policy") : 0;
}

/* Compare an enrollment with what ADD would write for this pod: the policy
 * (the library compares its normalised forms), the attach point and labels.
 */
static int compare(const struct cni_env *env, struct sockmesh *sm,
		   const struct sockmesh_scope *scope, const struct sockmesh_policy *want_pol,
		   __u64 want_cg, const struct sockmesh_scope_info *got, struct drift *d,
		   struct cni_error *e)
{
	if (policy_drift(sm, scope, want_pol, d, e))
		return -1;
	if (got->attach_cgroup_id != want_cg)
		drift_add(d, "attached at cgroup id %llu, %s is cgroup id %llu",
			  (unsigned long long)got->attach_cgroup_id,
			  cni_key(SOCKMESH_F_ATTACH_CGROUP), (unsigned long long)want_cg);
	drift_str(d, "the pod namespace label", got->pod_namespace,
		  env->pod_namespace ? env->pod_namespace : "");
	drift_str(d, "the pod name label", got->pod_name, env->pod_name ? env->pod_name : "");
	drift_str(d, "the container id label", got->container_id, cni_env_label_id(env));
	return 0;
}

static int cmd_check(const struct cni_env *env, struct cni_conf *c, struct cni_error *e)
{
	struct sockmesh_scope_info info = { .sz = sizeof(info) };
	struct sockmesh_annotations *ann = NULL;
	struct sockmesh_policy pol;
	struct sockmesh_scope scope;
	struct cni_decision d;
	struct drift dr = { 0 };
	struct sockmesh *sm = NULL;
	char *pod_ips = NULL, who[400];
	__u64 cg = 0;
	int err = -1, found;

	if (!c->prev_result)
		return cni_fail(e, CNI_ERR_INVALID_CONFIG,
				"prevResult: missing; CHECK needs the result of the last ADD");
	if (cni_prev_result_pod_ips(c->prev_result, &pod_ips, e) || cni_decide(c, env, &d, e))
		goto out;
	if (d.capture &&
	    (cni_pod_policy(c, pod_ips, &ann, &pol, e) || check_attach_cgroup(c, &cg, e)))
		goto out;
	if (netns_scope(env, &scope, e))
		goto out;
	pod_desc(env, who, sizeof(who));
	sm = open_instance(c, false);
	if (!sm) {
		if (errno != ENOENT) {
			lib_fail(e, -errno, "cannot open the sockmesh state");
			goto out;
		}
		found = -ENOENT;
	} else {
		found = sockmesh__scope_info(sm, &scope, &info);
	}
	if (found && found != -ENOENT) {
		lib_fail(e, found, "scope info");
		goto out;
	}
	if (d.capture && found) {
		cni_fail(e, SMCNI_ERR_NOT_ENROLLED,
			 "%s is not enrolled in sockmesh (pin dir %s), but its policy captures it",
			 who, c->pin_dir);
		snprintf(e->details, sizeof(e->details), "netns %s", env->netns);
		goto out;
	}
	if (!d.capture && !found) {
		cni_fail(e, SMCNI_ERR_DRIFT,
			 "%s is enrolled in sockmesh, but should be left alone: %s", who, d.why);
		goto out;
	}
	if (d.capture) {
		if (compare(env, sm, &scope, &pol, cg, &info, &dr, e))
			goto out;
		if (dr.len) {
			cni_fail(e, SMCNI_ERR_DRIFT,
				 "%s: sockmesh enrollment differs from its policy: %s", who,
				 dr.buf);
			snprintf(e->details, sizeof(e->details), "netns %s, pin dir %s", env->netns,
				 c->pin_dir);
			goto out;
		}
	}
	err = 0;
out:
	sockmesh__close(sm);
	sockmesh_annotations__free(ann);
	free(pod_ips);
	return err;
}

int main(void)
{
	struct cni_error e = { 0 };
	struct cni_conf c = { 0 };
	struct cni_env env;
	int err;

	libbpf_set_print(libbpf_quiet);
	if (cni_env_parse(&env, &e)) {
		struct cni_error ignored;

		/* Answer in the config's version, if it is one we know (DEL's
		 * reading: cniVersion and pinDir).
		 */
		if (env.cmd != CMD_VERSION)
			cni_conf_read(stdin, &c, CMD_DEL, &ignored);
		print_error(c.cni_version, &e);
		cni_conf_free(&c);
		cni_env_free(&env);
		return 1;
	}
	if (env.cmd == CMD_VERSION) {
		cni_env_free(&env);
		return cmd_version();
	}
	/* DEL needs only the pin dir: a config edited since ADD must not keep
	 * a pod from being deleted.
	 */
	err = cni_conf_read(stdin, &c, env.cmd, &e);
	if (!err) {
		switch (env.cmd) {
		case CMD_ADD:
			err = cmd_add(&env, &c, &e);
			break;
		case CMD_DEL:
			err = cmd_del(&env, &c, &e);
			break;
		case CMD_CHECK:
			err = cmd_check(&env, &c, &e);
			break;
		case CMD_STATUS:
		case CMD_GC:
			err = cmd_status_gc();
			break;
		case CMD_VERSION:
			break;
		}
	}
	if (err)
		print_error(c.cni_version, &e);
	cni_conf_free(&c);
	cni_env_free(&env);
	return err ? 1 : 0;
}
