// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target for sockmesh-cni's input (user/cni/conf.c) and output
 * (user/cni/reply.c), without the kernel: the CNI_* environment and the
 * config on stdin go through what the plugin checks before it touches any
 * state (the environment, the config, prevResult, the capture decision, the
 * pod's policy from config and annotations), and every reply the plugin
 * would print (the error JSON, the prevResult passed on, VERSION) is parsed
 * back: it must be valid UTF-8 and valid JSON of the spec's shape.
 *
 * Input: CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS and
 * CNI_PATH, each ended by a NUL (an empty one is unset), then stdin (which
 * may hold NULs). Missing fields are unset.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cni.h"
#include "text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const vars[] = { "CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS",
				    "CNI_IFNAME",  "CNI_ARGS",	      "CNI_PATH" };
#define NVARS (sizeof(vars) / sizeof(vars[0]))

struct fenv {
	const char *v[NVARS];
};

static const char *fuzz_getenv(const char *name, void *ctx)
{
	const struct fenv *f = ctx;

	for (size_t i = 0; i < NVARS; i++)
		if (!strcmp(name, vars[i]))
			return f->v[i];
	return NULL;
}

static void __attribute__((noreturn)) fail(const char *what, const char *reply)
{
	fprintf(stderr, "fuzz_cni: %s\n  reply: '%s'\n", what, reply ? reply : "(null)");
	abort();
}

/* A reply as a runtime reads it: UTF-8 (checked by json-c as well as by
 * us) and one JSON object; an error has the spec's keys.
 */
static void check_reply(char *text, bool error, int code)
{
	struct json_tokener *tok;
	json_object *o, *v;

	if (!text)
		return; /* out of memory */
	if (!smc_utf8_valid(text))
		fail("reply is not valid UTF-8", text);
	tok = json_tokener_new();
	if (!tok)
		abort();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, text, (int)strlen(text));
	if (json_tokener_get_error(tok) != json_tokener_success || !o)
		fail("reply does not parse back as JSON", text);
	if ((size_t)json_tokener_get_parse_end(tok) != strlen(text))
		fail("reply has data after its JSON", text);
	json_tokener_free(tok);
	if (!json_object_is_type(o, json_type_object))
		fail("reply is not a JSON object", text);
	if (!json_object_object_get_ex(o, "cniVersion", &v) ||
	    !json_object_is_type(v, json_type_string))
		fail("reply has no cniVersion", text);
	if (error) {
		if (!json_object_object_get_ex(o, "code", &v) || json_object_get_int(v) != code ||
		    !json_object_is_type(v, json_type_int))
			fail("error reply has not the error's code", text);
		if (!json_object_object_get_ex(o, "msg", &v) ||
		    !json_object_is_type(v, json_type_string) || !*json_object_get_string(v))
			fail("error reply has no msg", text);
	}
	json_object_put(o);
	free(text);
}

/* The plugin's error path (print_error), with details the commands add. */
static void error_reply(const char *version, struct cni_error *e, const struct cni_env *env,
			const struct cni_conf *c)
{
	if (!e->code || !e->msg[0])
		fail("a failure without a code or a message", e->msg);
	if (env && c && env->pod_name)
		snprintf(e->details, sizeof(e->details), "pod %s/%s, netns %s, pin dir %s",
			 env->pod_namespace ? env->pod_namespace : "", env->pod_name,
			 env->netns ? env->netns : "", c->pin_dir ? c->pin_dir : "");
	check_reply(cni_error_json(version, e), true, e->code);
}

/* What ADD and CHECK check before they touch anything. */
static int validate(const struct cni_env *env, struct cni_conf *c, struct cni_error *e)
{
	struct sockmesh_annotations *ann = NULL;
	struct sockmesh_policy pol;
	struct cni_decision d;
	char *pod_ips = NULL;
	int err = -1;

	if (!c->prev_result)
		return cni_fail(e, CNI_ERR_INVALID_CONFIG, "prevResult: missing");
	if (cni_prev_result_pod_ips(c->prev_result, &pod_ips, e) || cni_decide(c, env, &d, e))
		goto out;
	if (!d.capture && env->cmd == CMD_CHECK) {
		/* CHECK of a pod found enrolled that should not be */
		cni_fail(e, SMCNI_ERR_DRIFT,
			 "%s is enrolled in sockmesh, but should be left alone: %s",
			 env->pod_name ? env->pod_name : env->container_id, d.why);
		goto out;
	}
	if (d.capture && cni_pod_policy(c, pod_ips, &ann, &pol, e))
		goto out;
	err = 0;
out:
	sockmesh_annotations__free(ann);
	free(pod_ips);
	return err;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1), *p, *end;
	struct cni_error e = { 0 };
	struct cni_conf c = { 0 };
	struct cni_env env;
	struct fenv fe = { 0 };
	size_t len;

	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	p = in;
	end = in + size;
	for (size_t i = 0; i < NVARS && p < end; i++) {
		fe.v[i] = p;
		p += strlen(p) + 1;
	}
	if (p > end)
		p = end;
	len = (size_t)(end - p);

	/* main() */
	if (cni_env_parse_from(&env, fuzz_getenv, &fe, &e)) {
		struct cni_error ignored;

		if (env.cmd != CMD_VERSION)
			cni_conf_parse(p, len, &c, true, &ignored);
		error_reply(c.cni_version, &e, NULL, NULL);
		goto out;
	}
	if (env.cmd == CMD_VERSION) {
		json_object *o = cni_version_json();

		check_reply(cni_json_text(o), false, 0);
		json_object_put(o);
		goto out;
	}
	if (cni_conf_parse(p, len, &c, env.cmd == CMD_DEL, &e)) {
		error_reply(c.cni_version, &e, &env, &c);
		goto out;
	}
	if (env.cmd == CMD_DEL)
		goto out;
	if (validate(&env, &c, &e)) {
		error_reply(c.cni_version, &e, &env, &c);
		goto out;
	}
	if (env.cmd == CMD_ADD) {
		/* cmd_add passes prevResult on in the config's version */
		json_object_object_add(c.prev_result, "cniVersion",
				       json_object_new_string(c.cni_version));
		check_reply(cni_json_text(c.prev_result), false, 0);
	}
out:
	cni_conf_free(&c);
	cni_env_free(&env);
	free(in);
	return 0;
}
