// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Istio pod annotations -> sockmesh policy. The same keys istio's sidecar
 * injector and istio-iptables honour, so a pod annotated for istio gets the
 * same capture from sockmesh. Which key sets which field is the schema's
 * (.annotation); only the status port is not a field of its own. Used by the
 * CLI (--from-annotations) and the CNI plugin (runtimeConfig annotations).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "internal.h"

struct sockmesh_annotations {
	char *v[SOCKMESH_F__COUNT]; /* validated values of the fields' keys present */
	char *status_port; /* status.sidecar.istio.io/port */
	char *combined; /* exclude_inbound_ports + status port */
};

/* istio: "An empty list will disable all outbound redirection." Refused as
 * an option (more often an unset variable than a choice), kept here.
 */
static bool no_outbound(enum sockmesh_field f, const char *v)
{
	return f == SOCKMESH_F_INCLUDE_OUTBOUND_CIDRS && sm_blank(v);
}

/* Validate one value with the parser of its field, naming the annotation. */
static int check_value(const struct sockmesh_field_desc *f, const char *v)
{
	int err = no_outbound(f->id, v) ? 0 : sm_field_list_check(f->id, v);

	return err == -ERANGE ? -EINVAL : err;
}

/* Kept in canonical form: "00" disables the port as "0" does, and what is
 * appended to exclude_inbound_ports is the port's number.
 */
static int check_status_port(char **v)
{
	char num[8], *c;
	__u32 port;

	/* istio: "0" disables the status port */
	if (sm_parse_u32(SOCKMESH_ANNOTATION_STATUS_PORT, *v, 65535, &port)) {
		sm_set_err(0, "%s: '%s' is not a port (0-65535)", SOCKMESH_ANNOTATION_STATUS_PORT,
			   *v);
		return -EINVAL;
	}
	snprintf(num, sizeof(num), "%u", port);
	c = strdup(num);
	if (!c)
		return -ENOMEM;
	free(*v);
	*v = c;
	return 0;
}

static int take(struct json_object *root, const char *key, char **out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(root, key, &v))
		return 1;
	if (!json_object_is_type(v, json_type_string)) {
		sm_set_err(0, "%s: value must be a string", key);
		return -EINVAL;
	}
	*out = strdup(json_object_get_string(v));
	return *out ? 0 : -ENOMEM;
}

static int from_object(struct json_object *root, struct sockmesh_annotations *out)
{
	int err;

	if (!json_object_is_type(root, json_type_object)) {
		sm_set_err(0, "annotations: expected a JSON object of string values");
		return -EINVAL;
	}
	for (unsigned int i = 0; i < SOCKMESH_F__COUNT; i++) {
		const struct sockmesh_field_desc *f = sockmesh_field(i);

		if (!f->annotation)
			continue;
		err = take(root, f->annotation, &out->v[i]);
		if (err > 0)
			continue;
		if (!err)
			err = check_value(f, out->v[i]);
		if (err)
			return err;
	}
	err = take(root, SOCKMESH_ANNOTATION_STATUS_PORT, &out->status_port);
	if (err > 0)
		return 0;
	return err ? err : check_status_port(&out->status_port);
}

struct sockmesh_annotations *sockmesh_annotations__parse(const char *json)
{
	struct sockmesh_annotations *a;
	struct json_tokener *tok;
	struct json_object *root;
	enum json_tokener_error jerr;
	int err = 0;

	if (!json) {
		sm_set_err(0, "annotations: missing");
		errno = EINVAL;
		return NULL;
	}
	a = calloc(1, sizeof(*a));
	tok = json_tokener_new();
	if (!a || !tok) {
		free(a);
		json_tokener_free(tok);
		errno = ENOMEM;
		return NULL;
	}
	root = json_tokener_parse_ex(tok, json, (int)strlen(json));
	jerr = json_tokener_get_error(tok);
	if (jerr == json_tokener_success && tok->char_offset < (int)strlen(json) &&
	    strspn(json + tok->char_offset, " \t\r\n") != strlen(json + tok->char_offset)) {
		sm_set_err(0, "annotations: trailing data after the JSON object at offset %d",
			   (int)tok->char_offset);
		err = -EINVAL;
	} else if (jerr != json_tokener_success || !root) {
		sm_set_err(0, "annotations: invalid JSON: %s",
			   jerr == json_tokener_continue ? "unexpected end" :
							   json_tokener_error_desc(jerr));
		err = -EINVAL;
	}
	json_tokener_free(tok);
	if (!err)
		err = from_object(root, a);
	json_object_put(root);
	if (err) {
		sockmesh_annotations__free(a);
		errno = -err;
		return NULL;
	}
	return a;
}

const char *sockmesh_annotations__get(const struct sockmesh_annotations *a, const char *key)
{
	const struct sockmesh_field_desc *f;

	if (!a || !key)
		return NULL;
	if (strcmp(key, SOCKMESH_ANNOTATION_STATUS_PORT) == 0)
		return a->status_port;
	f = sockmesh_field_lookup(key);
	return f && f->annotation && strcmp(f->annotation, key) == 0 ? a->v[f->id] : NULL;
}

int sockmesh_annotations__apply(struct sockmesh_annotations *a, struct sockmesh_policy *pol,
				__u64 keep)
{
	const char *status = a ? a->status_port : NULL, *exc;
	struct sockmesh_policy p;
	int err;

	if (!a || !pol)
		return -EINVAL;
	p = *pol;
	for (unsigned int i = 0; i < SOCKMESH_F__COUNT; i++) {
		if (!a->v[i] || (keep & (1ull << i)))
			continue;
		if (no_outbound((enum sockmesh_field)i, a->v[i])) {
			p.include_outbound_cidrs = a->v[i];
			continue;
		}
		err = sockmesh_policy__set(&p, (enum sockmesh_field)i, a->v[i]);
		if (err)
			return err;
	}
	/* Like istio, the sidecar's status port is never captured inbound,
	 * whichever list (option, config or annotation) excludes the rest.
	 */
	exc = p.exclude_inbound_ports;
	if (status && strcmp(status, "0") != 0) {
		size_t n = (exc ? strlen(exc) : 0) + strlen(status) + 2;
		char *c = malloc(n);

		if (!c)
			return -ENOMEM;
		if (exc && !sm_blank(exc))
			snprintf(c, n, "%s,%s", exc, status);
		else
			snprintf(c, n, "%s", status);
		free(a->combined);
		a->combined = c;
		p.exclude_inbound_ports = c;
	}
	*pol = p;
	return 0;
}

void sockmesh_annotations__free(struct sockmesh_annotations *a)
{
	if (!a)
		return;
	for (unsigned int i = 0; i < SOCKMESH_F__COUNT; i++)
		free(a->v[i]);
	free(a->status_port);
	free(a->combined);
	free(a);
}
