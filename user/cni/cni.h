/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sockmesh-cni: what the parser (conf.c) hands the commands (sockmesh-cni.c). */
#ifndef SOCKMESH_CNI_H
#define SOCKMESH_CNI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <json-c/json.h>

#include <sockmesh.h>

/* The version VERSION's reply and the errors that come before the config's
 * version is known are written in. Their format is the same in every
 * version served (user/common/cni_version.h); it stays what it was.
 */
#define CNI_SPEC_VERSION "1.0.0"
/* containerd's CRI plugin passes the pod's annotations in runtimeConfig
 * under this capability (pkg/cri/annotations: PodAnnotations) when the
 * plugin's config declares it in "capabilities".
 */
#define CNI_CAP_POD_ANNOTATIONS "io.kubernetes.cri.pod-annotations"

/* Pod annotations that decide whether a pod is captured at all. */
#define ANN_SIDECAR_STATUS "sidecar.istio.io/status" /* set by istio's injector */
#define ANN_SIDECAR_INJECT "sidecar.istio.io/inject"
#define ANN_CAPTURE "sockmesh.io/capture"

/* The spec's well-known error codes (1-99 are its own), then ours (100+). */
enum cni_code {
	CNI_ERR_INCOMPATIBLE_VERSION = 1,
	CNI_ERR_UNSUPPORTED_FIELD = 2,
	CNI_ERR_UNKNOWN_CONTAINER = 3,
	CNI_ERR_INVALID_ENV = 4,
	CNI_ERR_IO = 5,
	CNI_ERR_DECODE = 6,
	CNI_ERR_INVALID_CONFIG = 7,
	CNI_ERR_TRY_AGAIN = 11,
	SMCNI_ERR_SOCKMESH = 100, /* the library or the kernel refused */
	SMCNI_ERR_ANNOTATION = 101, /* a pod annotation has a bad value */
	SMCNI_ERR_NOT_ENROLLED = 102, /* CHECK: should be enrolled, is not */
	SMCNI_ERR_DRIFT = 103, /* CHECK: enrolled differently from the policy */
};

/* STATUS and GC came with CNI 1.1.0, CHECK with 0.4.0. */
enum cni_cmd { CMD_ADD, CMD_DEL, CMD_CHECK, CMD_VERSION, CMD_STATUS, CMD_GC };

/* The failure a command ends with: printed as the spec's error JSON. */
struct cni_error {
	int code;
	char msg[1024];
	char details[1024];
};

int cni_fail(struct cni_error *e, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The CNI_* environment (STATUS and GC read only CNI_COMMAND). */
struct cni_env {
	enum cni_cmd cmd;
	const char *container_id;
	const char *netns; /* NULL when unset or empty (DEL only) */
	const char *ifname;
	const char *path;
	/* CNI_ARGS (K8S_* only; other keys are ignored) */
	char *args_buf;
	const char *pod_namespace;
	const char *pod_name;
	const char *infra_id; /* K8S_POD_INFRA_CONTAINER_ID */
};

int cni_env_parse(struct cni_env *env, struct cni_error *e);
/* The same from another source than the process's environment (the fuzzer):
 * get returns a variable's value or NULL.
 */
typedef const char *(*cni_getenv_fn)(const char *name, void *ctx);
int cni_env_parse_from(struct cni_env *env, cni_getenv_fn get, void *ctx, struct cni_error *e);
void cni_env_free(struct cni_env *env);
/* The container id the scope is labelled with. */
const char *cni_env_label_id(const struct cni_env *env);

/* The plugin's config (stdin), after validation. */
struct cni_conf {
	json_object *root; /* owned */
	const char *cni_version;
	const char *name;
	json_object *prev_result; /* NULL when absent */
	json_object *annotations; /* runtimeConfig's pod annotations, or NULL */
	const char *pin_dir;
	const char *attach_cgroup; /* NULL: the cgroup2 root */
	bool require_sidecar;
	json_object *exclude_namespaces; /* array of strings, or NULL */
	/* The defaults from the config (its keys are the schema's cni_key);
	 * lists given as JSON arrays are joined into strs[].
	 */
	struct sockmesh_policy pol;
	char *strs[SOCKMESH_F__COUNT];
	size_t nstrs;
};

/* Read stdin (bounded) and validate what cmd needs of the config: DEL,
 * STATUS and GC only cniVersion and pinDir, ADD and CHECK everything. A
 * command the config's version does not have (cni_cmd_in_version) is
 * refused before the rest is looked at. e->code 6, 7 or 1.
 */
int cni_conf_read(FILE *in, struct cni_conf *c, enum cni_cmd cmd, struct cni_error *e);
/* Parse and validate buf (len bytes and a NUL after them); e->code 6, 7 or
 * 1. minimal: only cniVersion and pinDir. Otherwise prevResult, when there
 * is one, is converted into the config's cniVersion (see
 * cni_result_convert). c is set up even on failure (free it).
 */
int cni_conf_parse(const char *buf, size_t len, struct cni_conf *c, bool minimal,
		   struct cni_error *e);
/* Whether cmd exists in the config's version: CHECK from 0.4.0, STATUS and
 * GC from 1.1.0. Otherwise code 1, as libcni's skel answers.
 */
int cni_cmd_in_version(enum cni_cmd cmd, const char *version, struct cni_error *e);
/* A CNI result (prevResult) converted in place into version, as libcni's
 * converters do (pkg/types/100: convertTo04x, convertFrom04x): between a
 * 0.3.x/0.4.0 and a 1.x version, ips[] gain or lose "version" ("4"/"6"
 * from the address) and, going down, interfaces keep only name, mac and
 * sandbox; within a family only cniVersion changes. Its own cniVersion
 * must be one served (code 1); none means the config's.
 */
int cni_result_convert(json_object *result, const char *version, struct cni_error *e);
void cni_conf_free(struct cni_conf *c);

/* The pod's addresses from prevResult.ips (the container's interfaces),
 * as a comma list for sockmesh_policy.pod_ips; NULL when it lists none.
 */
int cni_prev_result_pod_ips(json_object *prev, char **out, struct cni_error *e);

/* Whether the pod is captured; when not, why (for logs and CHECK). */
struct cni_decision {
	bool capture;
	char why[256];
};

int cni_decide(const struct cni_conf *c, const struct cni_env *env, struct cni_decision *d,
	       struct cni_error *e);

/* The pod's policy: config defaults overlaid with its istio annotations and
 * its addresses. *ann (set even on failure; free it with
 * sockmesh_annotations__free) and pod_ips must outlive pol's use.
 */
int cni_pod_policy(const struct cni_conf *c, const char *pod_ips, struct sockmesh_annotations **ann,
		   struct sockmesh_policy *pol, struct cni_error *e);

/* What the plugin prints on stdout, as malloc'd text (NULL: out of memory):
 * o serialized, and the spec's error object for e in version (NULL: ours).
 * Always valid UTF-8 and valid JSON, whatever bytes the input put into
 * strings: in the error's msg and details each byte that is not UTF-8
 * becomes the text "\xNN"; elsewhere (the prevResult passed on) U+FFFD.
 */
char *cni_json_text(json_object *o);
char *cni_error_json(const char *version, const struct cni_error *e);
/* The VERSION result. */
json_object *cni_version_json(void);

/* A schema field's config key (its canonical name if it has none). */
const char *cni_key(enum sockmesh_field f);
/* The library's last failure, its fields named by their config keys. */
const char *cni_lib_msg(char *buf, size_t len);

#endif
