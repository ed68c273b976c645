// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmesh-cni input: the CNI_* environment, the plugin config on stdin, the
 * previous plugin's result and the pod's annotations. Everything is
 * validated here, before any state is touched; every error names the
 * variable, key or annotation and the bad value.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cni.h"
#include "cni_version.h"
#include "file.h"

#define STDIN_MAX (4u << 20) /* a config plus annotations (k8s caps them at 256 KiB) */

int cni_fail(struct cni_error *e, int code, const char *fmt, ...)
{
	va_list ap;

	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return -1;
}

/* A JSON value as text, for messages ("'x'" for strings, raw otherwise). */
static const char *jtext(json_object *v, char *buf, size_t len)
{
	if (json_object_is_type(v, json_type_string))
		snprintf(buf, len, "'%.200s'", json_object_get_string(v));
	else
		snprintf(buf, len, "%.200s",
			 json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
	return buf;
}

/* ---- environment --------------------------------------------------------- */

/* The spec's container id: alphanumeric first, then alphanumerics, '_', '.', '-'. */
static bool valid_container_id(const char *s)
{
	static const char alnum[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

	if (!s[0] || !strchr(alnum, s[0]))
		return false;
	for (const char *p = s; *p; p++)
		if (!strchr(alnum, *p) && !strchr("_.-", *p))
			return false;
	return true;
}

/* The spec's interface name rules (Linux's). */
static bool valid_ifname(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= 16 || !strcmp(s, ".") || !strcmp(s, ".."))
		return false;
	for (const char *p = s; *p; p++)
		if (*p == '/' || *p == ':' || *p == ' ' || (*p >= '\t' && *p <= '\r'))
			return false;
	return true;
}

struct env_src {
	cni_getenv_fn get;
	void *ctx;
};

static const char *env_get(const struct env_src *src, const char *name)
{
	const char *v = src->get(name, src->ctx);

	return v && *v ? v : NULL;
}

/* CNI_ARGS: "K=V;K=V". Only the Kubernetes keys mean anything to us. */
static int parse_args(struct cni_env *env, const struct env_src *src, struct cni_error *e)
{
	const char *raw = src->get("CNI_ARGS", src->ctx);
	char *save = NULL, *item;

	if (!raw || !*raw)
		return 0;
	env->args_buf = strdup(raw);
	if (!env->args_buf)
		return cni_fail(e, SMCNI_ERR_SOCKMESH, "out of memory");
	for (item = strtok_r(env->args_buf, ";", &save); item; item = strtok_r(NULL, ";", &save)) {
		char *eq = strchr(item, '=');

		if (!eq || eq == item) {
			if (env->cmd == CMD_DEL)
				continue; /* DEL cleans up whatever it is given */
			return cni_fail(e, CNI_ERR_INVALID_ENV,
					"CNI_ARGS: '%.200s' is not a KEY=VALUE pair (in '%.400s')",
					item, raw);
		}
		*eq = '\0';
		if (!strcmp(item, "K8S_POD_NAMESPACE"))
			env->pod_namespace = eq + 1;
		else if (!strcmp(item, "K8S_POD_NAME"))
			env->pod_name = eq + 1;
		else if (!strcmp(item, "K8S_POD_INFRA_CONTAINER_ID"))
			env->infra_id = eq + 1;
	}
	if (env->cmd == CMD_DEL)
		return 0;
	/* The scope's labels have Kubernetes' limits. */
	if (env->pod_namespace && strlen(env->pod_namespace) > 63)
		return cni_fail(
			e, CNI_ERR_INVALID_ENV,
			"CNI_ARGS: K8S_POD_NAMESPACE '%.80s...' is longer than 63 characters",
			env->pod_namespace);
	if (env->pod_name && strlen(env->pod_name) > 253)
		return cni_fail(e, CNI_ERR_INVALID_ENV,
				"CNI_ARGS: K8S_POD_NAME '%.80s...' is longer than 253 characters",
				env->pod_name);
	if (env->infra_id && strlen(env->infra_id) > 127)
		return cni_fail(
			e, CNI_ERR_INVALID_ENV,
			"CNI_ARGS: K8S_POD_INFRA_CONTAINER_ID '%.80s...' is longer than 127 characters",
			env->infra_id);
	return 0;
}

int cni_env_parse_from(struct cni_env *env, cni_getenv_fn get, void *ctx, struct cni_error *e)
{
	static const char *const cmds[] = {
		[CMD_ADD] = "ADD",	   [CMD_DEL] = "DEL",	    [CMD_CHECK] = "CHECK",
		[CMD_VERSION] = "VERSION", [CMD_STATUS] = "STATUS", [CMD_GC] = "GC",
	};
	const struct env_src src = { get, ctx };
	const char *cmd = env_get(&src, "CNI_COMMAND");
	size_t i;

	memset(env, 0, sizeof(*env));
	if (!cmd)
		return cni_fail(e, CNI_ERR_INVALID_ENV,
				"CNI_COMMAND is not set (ADD, DEL, CHECK, STATUS, GC or VERSION)");
	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
		if (!strcmp(cmd, cmds[i]))
			break;
	if (i == sizeof(cmds) / sizeof(cmds[0]))
		return cni_fail(
			e, CNI_ERR_INVALID_ENV,
			"CNI_COMMAND: '%.100s' is not ADD, DEL, CHECK, STATUS, GC or VERSION", cmd);
	env->cmd = (enum cni_cmd)i;
	/* STATUS and GC are about the network, not a container: the spec
	 * gives them no CNI_CONTAINERID, CNI_NETNS or CNI_IFNAME, and the
	 * plugin has no use for CNI_PATH.
	 */
	if (env->cmd == CMD_VERSION || env->cmd == CMD_STATUS || env->cmd == CMD_GC)
		return 0;

	env->container_id = env_get(&src, "CNI_CONTAINERID");
	if (!env->container_id)
		return cni_fail(e, CNI_ERR_INVALID_ENV, "CNI_CONTAINERID is not set");
	if (!valid_container_id(env->container_id) || strlen(env->container_id) > 127)
		return cni_fail(
			e, CNI_ERR_INVALID_ENV,
			"CNI_CONTAINERID: '%.200s' is not a container id (1-127 of [A-Za-z0-9_.-], alphanumeric first)",
			env->container_id);
	env->netns = env_get(&src, "CNI_NETNS");
	if (!env->netns && env->cmd != CMD_DEL)
		return cni_fail(e, CNI_ERR_INVALID_ENV, "CNI_NETNS is not set");
	env->ifname = env_get(&src, "CNI_IFNAME");
	if (!env->ifname)
		return cni_fail(e, CNI_ERR_INVALID_ENV, "CNI_IFNAME is not set");
	if (!valid_ifname(env->ifname))
		return cni_fail(e, CNI_ERR_INVALID_ENV,
				"CNI_IFNAME: '%.100s' is not an interface name", env->ifname);
	env->path = env_get(&src, "CNI_PATH");
	if (!env->path)
		return cni_fail(e, CNI_ERR_INVALID_ENV, "CNI_PATH is not set");
	return parse_args(env, &src, e);
}

static const char *real_getenv(const char *name, void *ctx)
{
	(void)ctx;
	return getenv(name);
}

int cni_env_parse(struct cni_env *env, struct cni_error *e)
{
	return cni_env_parse_from(env, real_getenv, NULL, e);
}

void cni_env_free(struct cni_env *env)
{
	free(env->args_buf);
	memset(env, 0, sizeof(*env));
}

const char *cni_env_label_id(const struct cni_env *env)
{
	return env->infra_id && *env->infra_id ? env->infra_id : env->container_id;
}

/* ---- config -------------------------------------------------------------- */

/* The config on stdin, through the front-ends' bounded reader. */
static int read_all(FILE *in, char **out, size_t *outlen, struct cni_error *e)
{
	*out = smc_read_fd("stdin", fileno(in), "stdin", STDIN_MAX, outlen);
	if (*out)
		return 0;
	if (errno == EFBIG)
		return cni_fail(e, CNI_ERR_DECODE,
				"the network config on stdin is larger than %u bytes", STDIN_MAX);
	if (errno == EINVAL)
		return cni_fail(e, CNI_ERR_DECODE,
				"the network config on stdin contains a NUL byte");
	return cni_fail(e, CNI_ERR_IO, "cannot read the network config from stdin: %s",
			strerror(errno));
}

static int decode(const char *buf, size_t len, json_object **out, struct cni_error *e)
{
	enum json_tokener_error jerr;
	struct json_tokener *tok;
	json_object *root;
	size_t end;

	*out = NULL;
	if (strspn(buf, " \t\r\n") == len)
		return cni_fail(e, CNI_ERR_DECODE, "no network config on stdin");
	if (strlen(buf) != len)
		return cni_fail(e, CNI_ERR_DECODE,
				"the network config on stdin contains a NUL byte at offset %zu",
				strlen(buf));
	tok = json_tokener_new();
	if (!tok)
		return cni_fail(e, CNI_ERR_IO, "out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	root = json_tokener_parse_ex(tok, buf, (int)len);
	jerr = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (jerr == json_tokener_continue) {
		json_object_put(root);
		return cni_fail(
			e, CNI_ERR_DECODE,
			"the network config on stdin is not valid JSON: unexpected end of input");
	}
	if (jerr != json_tokener_success || !root) {
		json_object_put(root);
		return cni_fail(e, CNI_ERR_DECODE,
				"the network config on stdin is not valid JSON: %s at offset %zu",
				json_tokener_error_desc(jerr), end);
	}
	if (end < len && strspn(buf + end, " \t\r\n") != len - end) {
		json_object_put(root);
		return cni_fail(
			e, CNI_ERR_DECODE,
			"the network config on stdin has data after the JSON object at offset %zu",
			end);
	}
	if (!json_object_is_type(root, json_type_object)) {
		json_object_put(root);
		return cni_fail(e, CNI_ERR_DECODE,
				"the network config on stdin is not a JSON object");
	}
	*out = root;
	return 0;
}

static int get_string(json_object *o, const char *key, const char **out, struct cni_error *e)
{
	json_object *v;
	char t[256];

	*out = NULL;
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, "%s: %s is not a string", key,
				jtext(v, t, sizeof(t)));
	*out = json_object_get_string(v);
	return 0;
}

static int get_bool(json_object *o, const char *key, bool def, bool *out, struct cni_error *e)
{
	json_object *v;
	char t[256];

	*out = def;
	if (!json_object_object_get_ex(o, key, &v) || json_object_is_type(v, json_type_null))
		return 0;
	if (!json_object_is_type(v, json_type_boolean))
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, "%s: %s is not true or false", key,
				jtext(v, t, sizeof(t)));
	*out = json_object_get_boolean(v);
	return 0;
}

const char *cni_key(enum sockmesh_field f)
{
	const struct sockmesh_field_desc *d = sockmesh_field(f);

	return d && d->cni_key ? d->cni_key : d ? d->name : "?";
}

const char *cni_lib_msg(char *buf, size_t len)
{
	return sockmesh_errmsg_as(SOCKMESH_NAMES_CNI, buf, len);
}

/* A number field's config key: a JSON integer in the field's range. The
 * range's name is the field's argument name ("a port", "a uid").
 */
static int num_text(json_object *v, const struct sockmesh_field_desc *f, char *num, size_t len,
		    struct cni_error *e)
{
	char t[256], what[32];
	int64_t x = json_object_get_int64(v);
	size_t i;

	if (!json_object_is_type(v, json_type_int) || x < 0 || (__u64)x < f->min ||
	    (__u64)x > f->max) {
		for (i = 0; f->arg && f->arg[i] && i < sizeof(what) - 1; i++)
			what[i] = (char)(f->arg[i] >= 'A' && f->arg[i] <= 'Z' ?
						 f->arg[i] - 'A' + 'a' :
						 f->arg[i]);
		what[i] = '\0';
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, "%s: %s is not a %s (%llu-%llu)",
				f->cni_key, jtext(v, t, sizeof(t)), what,
				(unsigned long long)f->min, (unsigned long long)f->max);
	}
	snprintf(num, len, "%lld", (long long)x);
	return 0;
}

/* An istio-style list: "a,b" or ["a", "b"] (ports may be numbers). The
 * joined text is kept in c->strs.
 */
static int list_text(struct cni_conf *c, json_object *v, const char *key, const char **out,
		     struct cni_error *e)
{
	size_t n, len = 1;
	char t[256], *s;

	if (json_object_is_type(v, json_type_string)) {
		*out = json_object_get_string(v);
		return 0;
	}
	if (!json_object_is_type(v, json_type_array))
		return cni_fail(e, CNI_ERR_INVALID_CONFIG,
				"%s: %s is not a comma list or an array of strings", key,
				jtext(v, t, sizeof(t)));
	n = json_object_array_length(v);
	for (size_t i = 0; i < n; i++) {
		json_object *x = json_object_array_get_idx(v, i);

		if (!json_object_is_type(x, json_type_string) &&
		    !json_object_is_type(x, json_type_int))
			return cni_fail(e, CNI_ERR_INVALID_CONFIG,
					"%s[%zu]: %s is not a string or a number", key, i,
					jtext(x, t, sizeof(t)));
		len += strlen(json_object_get_string(x)) + 1;
	}
	if (c->nstrs >= sizeof(c->strs) / sizeof(c->strs[0]))
		return cni_fail(e, SMCNI_ERR_SOCKMESH, "internal: too many list keys");
	s = calloc(1, len);
	if (!s)
		return cni_fail(e, CNI_ERR_IO, "out of memory");
	c->strs[c->nstrs++] = s;
	for (size_t i = 0; i < n; i++) {
		if (i)
			strcat(s, ",");
		strcat(s, json_object_get_string(json_object_array_get_idx(v, i)));
	}
	*out = s;
	return 0;
}

/* A policy field's config key as the text sockmesh_policy__set() takes;
 * *text is NULL when the key is absent. JSON types are checked here (the
 * library only sees text): flags are booleans, numbers integers, lists comma
 * lists or arrays. Numbers and flags are written to num (the library copies
 * them); list text stays in the config's JSON or in c->strs.
 */
static int key_text(struct cni_conf *c, const struct sockmesh_field_desc *f, char *num, size_t len,
		    const char **text, struct cni_error *e)
{
	json_object *v;
	char t[256];
	bool on;

	*text = NULL;
	if (!json_object_object_get_ex(c->root, f->cni_key, &v) ||
	    json_object_is_type(v, json_type_null))
		return 0;
	switch (f->type) {
	case SOCKMESH_FT_FLAG:
		if (!json_object_is_type(v, json_type_boolean))
			return cni_fail(e, CNI_ERR_INVALID_CONFIG, "%s: %s is not true or false",
					f->cni_key, jtext(v, t, sizeof(t)));
		on = json_object_get_boolean(v);
		if (f->flags & SOCKMESH_FIELD_CNI_NEGATED)
			on = !on; /* "splice": true is no_splice false */
		*text = on ? "true" : "false";
		return 0;
	case SOCKMESH_FT_PORT:
	case SOCKMESH_FT_U32:
		if (num_text(v, f, num, len, e))
			return -1;
		*text = num;
		return 0;
	case SOCKMESH_FT_CIDR_LIST:
	case SOCKMESH_FT_PORT_LIST:
	case SOCKMESH_FT_ADDR_LIST:
		return list_text(c, v, f->cni_key, text, e);
	default:
		return cni_fail(e, SMCNI_ERR_SOCKMESH, "internal: %s has a type sockmesh-cni lacks",
				f->cni_key);
	}
}

/* The policy keys are the schema's: every policy field with a CNI key,
 * except those the plugin fills itself (pod_ips, from prevResult).
 */
static int read_policy(struct cni_conf *c, struct cni_error *e)
{
	const struct sockmesh_field_desc *f;
	struct sockmesh_policy *p = &c->pol;
	char m[600], num[32];
	const char *text;

	memset(p, 0, sizeof(*p));
	p->sz = sizeof(*p);
	for (unsigned int i = 0; (f = sockmesh_field(i)); i++) {
		if (f->kind != SOCKMESH_FK_POLICY || !f->cni_key ||
		    (f->flags & SOCKMESH_FIELD_CNI_DERIVED))
			continue;
		if (key_text(c, f, num, sizeof(num), &text, e))
			return -1;
		if (text && sockmesh_policy__set(p, f->id, text))
			return cni_fail(e, CNI_ERR_INVALID_CONFIG, "%s", cni_lib_msg(m, sizeof(m)));
	}
	if (!p->redirect_dns && (p->dns_servers || p->capture_all_dns || p->dns_port))
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, "%s: needs \"%s\": true",
				cni_key(p->dns_servers	   ? SOCKMESH_F_DNS_SERVERS :
					p->capture_all_dns ? SOCKMESH_F_CAPTURE_ALL_DNS :
							     SOCKMESH_F_DNS_PORT),
				cni_key(SOCKMESH_F_REDIRECT_DNS));
	/* The library would read the resolvers from /etc/resolv.conf, which is
	 * the node's here, not the pod's (kubelet writes that one).
	 */
	if (p->redirect_dns && !p->capture_all_dns && !p->dns_servers)
		return cni_fail(
			e, CNI_ERR_INVALID_CONFIG,
			"%s: give %s (the cluster's DNS service address) or %s; the node's /etc/resolv.conf is not the pod's",
			cni_key(SOCKMESH_F_REDIRECT_DNS), cni_key(SOCKMESH_F_DNS_SERVERS),
			cni_key(SOCKMESH_F_CAPTURE_ALL_DNS));
	if (sockmesh_policy__validate(p))
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, "%s", cni_lib_msg(m, sizeof(m)));
	return 0;
}

int cni_cmd_in_version(enum cni_cmd cmd, const char *version, struct cni_error *e)
{
	/* libcni's skel refuses these with ErrIncompatibleCNIVersion (code 1,
	 * "Incompatible CNI version" in the spec's table of well-known error
	 * codes): "config version does not allow CHECK" (GC, STATUS). Code 2
	 * ("Unsupported field") is about a config key, 4 about the CNI_*
	 * variables, 7 about a config value: none is what is wrong here.
	 */
	const char *since = cmd == CMD_CHECK		       ? "0.4.0" :
			    cmd == CMD_STATUS || cmd == CMD_GC ? "1.1.0" :
								 NULL;

	if (!since || smc_cni_version_cmp(version, since) >= 0)
		return 0;
	return cni_fail(e, CNI_ERR_INCOMPATIBLE_VERSION,
			"cniVersion: '%s' has no %s command (CNI %s and later)", version,
			cmd == CMD_CHECK ? "CHECK" :
			cmd == CMD_GC	 ? "GC" :
					   "STATUS",
			since);
}

int cni_conf_read(FILE *in, struct cni_conf *c, enum cni_cmd cmd, struct cni_error *e)
{
	bool minimal = cmd == CMD_DEL || cmd == CMD_STATUS || cmd == CMD_GC;
	char *buf = NULL;
	size_t len = 0;
	int err;

	memset(c, 0, sizeof(*c));
	if (read_all(in, &buf, &len, e))
		return -1;
	/* The version first: CHECK of a 0.3.x config is refused as such, not
	 * for whatever else its config holds.
	 */
	err = cni_conf_parse(buf, len, c, true, e);
	if (!err)
		err = cni_cmd_in_version(cmd, c->cni_version, e);
	if (!err && !minimal) {
		cni_conf_free(c);
		err = cni_conf_parse(buf, len, c, false, e);
	}
	free(buf);
	return err;
}

int cni_conf_parse(const char *buf, size_t len, struct cni_conf *c, bool minimal,
		   struct cni_error *e)
{
	json_object *v, *rc;
	char t[256];
	int err;

	memset(c, 0, sizeof(*c));
	if (decode(buf, len, &c->root, e))
		return -1;

	if (!json_object_object_get_ex(c->root, "cniVersion", &v))
		return cni_fail(
			e, CNI_ERR_INCOMPATIBLE_VERSION,
			"cniVersion: missing (0.1.0 implied); supported: " SMC_CNI_VERSIONS_TEXT);
	if (!json_object_is_type(v, json_type_string))
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, "cniVersion: %s is not a string",
				jtext(v, t, sizeof(t)));
	c->cni_version = json_object_get_string(v);
	if (!smc_cni_version_served(c->cni_version)) {
		err = cni_fail(
			e, CNI_ERR_INCOMPATIBLE_VERSION,
			"cniVersion: '%.100s' is not supported (supported: " SMC_CNI_VERSIONS_TEXT
			")",
			c->cni_version);
		c->cni_version = NULL; /* answer in our own version */
		return err;
	}
	if (get_string(c->root, cni_key(SOCKMESH_F_PIN_DIR), &c->pin_dir, e))
		return -1;
	if (!c->pin_dir)
		c->pin_dir = SOCKMESH_DEFAULT_PIN_DIR;
	if (c->pin_dir[0] != '/' || strlen(c->pin_dir) > 1024)
		return cni_fail(e, CNI_ERR_INVALID_CONFIG,
				"%s: '%.200s' is not an absolute path in a bpffs mount",
				cni_key(SOCKMESH_F_PIN_DIR), c->pin_dir);
	if (minimal)
		return 0;
	if (get_string(c->root, "name", &c->name, e))
		return -1;
	if (!c->name || !*c->name)
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, "name: missing (the network's name)");

	if (json_object_object_get_ex(c->root, "prevResult", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_object))
			return cni_fail(e, CNI_ERR_INVALID_CONFIG,
					"prevResult: %s is not a CNI result object",
					jtext(v, t, sizeof(t)));
		c->prev_result = v;
		/* libcni passes the previous plugin's result on in the version
		 * that plugin answered in
		 */
		if (cni_result_convert(c->prev_result, c->cni_version, e))
			return -1;
	}
	if (json_object_object_get_ex(c->root, "runtimeConfig", &rc) &&
	    !json_object_is_type(rc, json_type_null)) {
		if (!json_object_is_type(rc, json_type_object))
			return cni_fail(e, CNI_ERR_INVALID_CONFIG,
					"runtimeConfig: %s is not an object",
					jtext(rc, t, sizeof(t)));
		if (json_object_object_get_ex(rc, CNI_CAP_POD_ANNOTATIONS, &v) &&
		    !json_object_is_type(v, json_type_null)) {
			if (!json_object_is_type(v, json_type_object))
				return cni_fail(e, CNI_ERR_INVALID_CONFIG,
						"runtimeConfig.%s: %s is not an object of strings",
						CNI_CAP_POD_ANNOTATIONS, jtext(v, t, sizeof(t)));
			c->annotations = v;
		}
	}

	if (get_string(c->root, cni_key(SOCKMESH_F_ATTACH_CGROUP), &c->attach_cgroup, e) ||
	    get_bool(c->root, "requireSidecar", true, &c->require_sidecar, e))
		return -1;
	if (c->attach_cgroup && c->attach_cgroup[0] != '/')
		return cni_fail(e, CNI_ERR_INVALID_CONFIG,
				"%s: '%.200s' is not an absolute cgroup v2 path",
				cni_key(SOCKMESH_F_ATTACH_CGROUP), c->attach_cgroup);
	if (json_object_object_get_ex(c->root, "excludeNamespaces", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_array))
			return cni_fail(e, CNI_ERR_INVALID_CONFIG,
					"excludeNamespaces: %s is not an array of namespaces",
					jtext(v, t, sizeof(t)));
		for (size_t i = 0; i < json_object_array_length(v); i++) {
			json_object *x = json_object_array_get_idx(v, i);

			if (!json_object_is_type(x, json_type_string))
				return cni_fail(e, CNI_ERR_INVALID_CONFIG,
						"excludeNamespaces[%zu]: %s is not a string", i,
						jtext(x, t, sizeof(t)));
		}
		c->exclude_namespaces = v;
	}
	return read_policy(c, e);
}

void cni_conf_free(struct cni_conf *c)
{
	for (size_t i = 0; i < c->nstrs; i++)
		free(c->strs[i]);
	json_object_put(c->root);
	memset(c, 0, sizeof(*c));
}

/* ---- prevResult ---------------------------------------------------------- */

/* An IPv4 or IPv6 address with an optional /prefix (a CNI result's
 * "address"): its CNI IP version ("4" or "6"), NULL when s is not one. An
 * IPv4-mapped IPv6 address is "4", as Go's To4() says in libcni's
 * converter.
 */
static const char *cidr_version(const char *s)
{
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	union {
		struct in_addr a4;
		struct in6_addr a6;
	} bin;
	char addr[INET6_ADDRSTRLEN + 1];
	unsigned long plen, max;
	const char *version;
	char *end;

	if (alen == 0 || alen >= sizeof(addr))
		return NULL;
	memcpy(addr, s, alen);
	addr[alen] = '\0';
	if (inet_pton(AF_INET, addr, &bin) == 1) {
		max = 32;
		version = "4";
	} else if (inet_pton(AF_INET6, addr, &bin) == 1) {
		max = 128;
		version = IN6_IS_ADDR_V4MAPPED(&bin.a6) ? "4" : "6";
	} else {
		return NULL;
	}
	if (!slash)
		return version;
	if (slash[1] < '0' || slash[1] > '9')
		return NULL;
	errno = 0;
	plen = strtoul(slash + 1, &end, 10);
	return !errno && !*end && plen <= max ? version : NULL;
}

/* prevResult.ips[i]'s address and its IP version ("4", "6"). */
static int ip_address(json_object *ip, size_t i, const char **addr, const char **version,
		      struct cni_error *e)
{
	json_object *a;
	char t[256];

	if (!json_object_is_type(ip, json_type_object) ||
	    !json_object_object_get_ex(ip, "address", &a) ||
	    !json_object_is_type(a, json_type_string))
		return cni_fail(e, CNI_ERR_INVALID_CONFIG,
				"prevResult.ips[%zu]: %s has no \"address\" string", i,
				jtext(ip, t, sizeof(t)));
	*addr = json_object_get_string(a);
	*version = cidr_version(*addr);
	if (!*version)
		return cni_fail(e, CNI_ERR_INVALID_CONFIG,
				"prevResult.ips[%zu].address: '%.100s' is not an address/prefix", i,
				*addr);
	return 0;
}

/* 0.3.0, 0.3.1 and 0.4.0 results are one type in libcni (types040), 1.0.0
 * and 1.1.0 another (types100).
 */
static bool version_0x(const char *v)
{
	return v[0] == '0';
}

/* o with only the keys keep[] (in that order), as a new object. */
static json_object *only_keys(json_object *o, const char *const *keep, size_t n)
{
	json_object *to = json_object_new_object(), *v;

	for (size_t i = 0; to && i < n; i++)
		if (json_object_object_get_ex(o, keep[i], &v))
			json_object_object_add(to, keep[i], json_object_get(v));
	return to;
}

/* Down to 0.3.x/0.4.0 (libcni's convertTo04x): each ips[] entry gets
 * "version" from its address, first as types040 marshals it; interfaces
 * keep the fields types040.Interface has (not mtu, socketPath, pciID, ...);
 * routes and dns are one type in both and stay.
 */
static int result_to_0x(json_object *r, struct cni_error *e)
{
	static const char *const if_keys[] = { "name", "mac", "sandbox" };
	json_object *ips, *ifs;

	if (json_object_object_get_ex(r, "ips", &ips) &&
	    json_object_is_type(ips, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(ips); i++) {
			json_object *ip = json_object_array_get_idx(ips, i), *to;
			const char *addr, *version;

			if (ip_address(ip, i, &addr, &version, e))
				return -1;
			to = json_object_new_object();
			if (!to)
				return cni_fail(e, CNI_ERR_IO, "out of memory");
			json_object_object_add(to, "version", json_object_new_string(version));
			json_object_object_foreach(ip, k, v)
			{
				if (strcmp(k, "version"))
					json_object_object_add(to, k, json_object_get(v));
			}
			json_object_array_put_idx(ips, i, to);
		}
	}
	if (json_object_object_get_ex(r, "interfaces", &ifs) &&
	    json_object_is_type(ifs, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(ifs); i++) {
			json_object *ifc = json_object_array_get_idx(ifs, i), *to;

			if (!json_object_is_type(ifc, json_type_object))
				continue;
			to = only_keys(ifc, if_keys, sizeof(if_keys) / sizeof(if_keys[0]));
			if (!to)
				return cni_fail(e, CNI_ERR_IO, "out of memory");
			json_object_array_put_idx(ifs, i, to);
		}
	}
	return 0;
}

/* Up to 1.x (convertFrom04x): ips[] lose "version". */
static void result_to_1x(json_object *r)
{
	json_object *ips;

	if (!json_object_object_get_ex(r, "ips", &ips) ||
	    !json_object_is_type(ips, json_type_array))
		return;
	for (size_t i = 0; i < json_object_array_length(ips); i++) {
		json_object *ip = json_object_array_get_idx(ips, i);

		if (json_object_is_type(ip, json_type_object))
			json_object_object_del(ip, "version");
	}
}

int cni_result_convert(json_object *result, const char *version, struct cni_error *e)
{
	const char *from = version;
	json_object *v;
	char t[256];

	if (json_object_object_get_ex(result, "cniVersion", &v) &&
	    !json_object_is_type(v, json_type_null)) {
		if (!json_object_is_type(v, json_type_string))
			return cni_fail(e, CNI_ERR_INVALID_CONFIG,
					"prevResult.cniVersion: %s is not a string",
					jtext(v, t, sizeof(t)));
		from = json_object_get_string(v);
		if (!smc_cni_version_served(from))
			return cni_fail(
				e, CNI_ERR_INCOMPATIBLE_VERSION,
				"prevResult.cniVersion: '%.100s' is not supported (supported: " SMC_CNI_VERSIONS_TEXT
				")",
				from);
	}
	if (version_0x(version) && !version_0x(from) && result_to_0x(result, e))
		return -1;
	if (!version_0x(version) && version_0x(from))
		result_to_1x(result);
	/* in place when it is there: the rest of the result keeps its order */
	json_object_object_add(result, "cniVersion", json_object_new_string(version));
	return 0;
}

/* Is ips[i].interface one of the container's interfaces? Host-side
 * interfaces (no "sandbox") are not the pod's; without an index, assume it is.
 */
static int ip_in_sandbox(json_object *prev, json_object *ip, size_t i, bool *yes,
			 struct cni_error *e)
{
	json_object *idx, *ifs, *ifc, *sb;
	char t[256];
	int64_t k;

	*yes = true;
	if (!json_object_object_get_ex(ip, "interface", &idx) ||
	    json_object_is_type(idx, json_type_null))
		return 0;
	k = json_object_get_int64(idx);
	if (!json_object_is_type(idx, json_type_int) || k < 0 ||
	    !json_object_object_get_ex(prev, "interfaces", &ifs) ||
	    !json_object_is_type(ifs, json_type_array) ||
	    (size_t)k >= json_object_array_length(ifs))
		return cni_fail(e, CNI_ERR_INVALID_CONFIG,
				"prevResult.ips[%zu].interface: %s is not an index into "
				"prevResult.interfaces",
				i, jtext(idx, t, sizeof(t)));
	ifc = json_object_array_get_idx(ifs, (size_t)k);
	*yes = json_object_is_type(ifc, json_type_object) &&
	       json_object_object_get_ex(ifc, "sandbox", &sb) &&
	       json_object_is_type(sb, json_type_string) && *json_object_get_string(sb);
	return 0;
}

int cni_prev_result_pod_ips(json_object *prev, char **out, struct cni_error *e)
{
	json_object *ips;
	char t[256], *s;
	size_t n;

	*out = NULL;
	if (!prev || !json_object_object_get_ex(prev, "ips", &ips) ||
	    json_object_is_type(ips, json_type_null))
		return 0;
	if (!json_object_is_type(ips, json_type_array))
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, "prevResult.ips: %s is not an array",
				jtext(ips, t, sizeof(t)));
	n = json_object_array_length(ips);
	s = calloc(1, n * 48 + 1);
	if (!s)
		return cni_fail(e, CNI_ERR_IO, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_object *ip = json_object_array_get_idx(ips, i);
		const char *slash, *a, *version;
		char addr[48];
		bool mine;

		if (ip_address(ip, i, &a, &version, e) || ip_in_sandbox(prev, ip, i, &mine, e)) {
			free(s);
			return -1;
		}
		if (!mine)
			continue;
		slash = strchr(a, '/');
		snprintf(addr, sizeof(addr), "%.*s", (int)(slash ? (size_t)(slash - a) : strlen(a)),
			 a);
		if (*s)
			strcat(s, ",");
		strcat(s, addr);
	}
	if (!*s) {
		free(s);
		return 0;
	}
	*out = s;
	return 0;
}

/* ---- the pod ------------------------------------------------------------- */

/* A pod annotation of ours, as a string (NULL when absent). */
static int ann_string(const struct cni_conf *c, const char *key, const char **out,
		      struct cni_error *e)
{
	json_object *v;
	char t[256];

	*out = NULL;
	if (!c->annotations || !json_object_object_get_ex(c->annotations, key, &v))
		return 0;
	if (!json_object_is_type(v, json_type_string))
		return cni_fail(e, SMCNI_ERR_ANNOTATION, "annotation %s: %s is not a string", key,
				jtext(v, t, sizeof(t)));
	*out = json_object_get_string(v);
	return 0;
}

/* Go's strconv.ParseBool, which istio uses for sidecar.istio.io/inject. */
static int go_bool(const char *s)
{
	static const char *const t[] = { "1", "t", "T", "TRUE", "true", "True" };
	static const char *const f[] = { "0", "f", "F", "FALSE", "false", "False" };

	for (size_t i = 0; i < 6; i++) {
		if (!strcmp(s, t[i]))
			return 1;
		if (!strcmp(s, f[i]))
			return 0;
	}
	return -1;
}

int cni_decide(const struct cni_conf *c, const struct cni_env *env, struct cni_decision *d,
	       struct cni_error *e)
{
	const char *cap, *inject, *status;

	memset(d, 0, sizeof(*d));
	if (ann_string(c, ANN_CAPTURE, &cap, e) || ann_string(c, ANN_SIDECAR_INJECT, &inject, e) ||
	    ann_string(c, ANN_SIDECAR_STATUS, &status, e))
		return -1;
	if (cap && strcmp(cap, "true") && strcmp(cap, "false"))
		return cni_fail(e, SMCNI_ERR_ANNOTATION,
				"annotation %s: '%.100s' is not \"true\" or \"false\"", ANN_CAPTURE,
				cap);
	if (env->pod_namespace && c->exclude_namespaces) {
		for (size_t i = 0; i < json_object_array_length(c->exclude_namespaces); i++) {
			json_object *x = json_object_array_get_idx(c->exclude_namespaces, i);

			if (!strcmp(json_object_get_string(x), env->pod_namespace)) {
				snprintf(d->why, sizeof(d->why),
					 "namespace '%.63s' is in excludeNamespaces",
					 env->pod_namespace);
				return 0;
			}
		}
	}
	if (cap && !strcmp(cap, "false")) {
		snprintf(d->why, sizeof(d->why), "annotation %s is \"false\"", ANN_CAPTURE);
		return 0;
	}
	/* As istio-cni: an unparsable inject value is ignored. */
	if (inject && go_bool(inject) == 0) {
		snprintf(d->why, sizeof(d->why), "annotation %s is '%.40s'", ANN_SIDECAR_INJECT,
			 inject);
		return 0;
	}
	if (c->require_sidecar && (!status || !*status)) {
		snprintf(d->why, sizeof(d->why), "no %s annotation (no sidecar injected)",
			 ANN_SIDECAR_STATUS);
		return 0;
	}
	d->capture = true;
	return 0;
}

int cni_pod_policy(const struct cni_conf *c, const char *pod_ips, struct sockmesh_annotations **ann,
		   struct sockmesh_policy *pol, struct cni_error *e)
{
	char m[600];
	int err;

	*ann = NULL;
	*pol = c->pol;
	if (c->annotations) {
		*ann = sockmesh_annotations__parse(json_object_to_json_string_ext(
			c->annotations, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		if (!*ann) {
			if (errno == ENOMEM)
				return cni_fail(e, CNI_ERR_IO, "out of memory");
			return cni_fail(
				e, SMCNI_ERR_ANNOTATION, "annotation %s",
				sockmesh_errmsg_as(SOCKMESH_NAMES_ANNOTATION, m, sizeof(m)));
		}
		/* The config's values are the base and the annotations override
		 * them; the status port joins whichever excludeInboundPorts list
		 * results (the config's when no annotation replaces it).
		 */
		err = sockmesh_annotations__apply(*ann, pol, 0);
		if (err == -ENOMEM)
			return cni_fail(e, CNI_ERR_IO, "out of memory");
		if (err)
			return cni_fail(
				e, SMCNI_ERR_ANNOTATION, "annotation %s",
				sockmesh_errmsg_as(SOCKMESH_NAMES_ANNOTATION, m, sizeof(m)));
	}
	pol->pod_ips = pod_ips;
	if (sockmesh_policy__validate(pol))
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, "%s", cni_lib_msg(m, sizeof(m)));
	return 0;
}
