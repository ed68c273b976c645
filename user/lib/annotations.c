// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Istio pod annotations -> sockmesh policy. The same keys istio's sidecar
 * injector and istio-iptables honour, so a pod annotated for istio gets the
 * same capture from sockmesh. Used by the CLI (--from-annotations) and the
 * CNI plugin (runtimeConfig pod annotations).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "internal.h"

static const char *const ann_keys[SM_ANN_COUNT] = {
	[SM_ANN_INC_CIDRS] = "traffic.sidecar.istio.io/includeOutboundIPRanges",
	[SM_ANN_EXC_CIDRS] = "traffic.sidecar.istio.io/excludeOutboundIPRanges",
	[SM_ANN_INC_IN_PORTS] = "traffic.sidecar.istio.io/includeInboundPorts",
	[SM_ANN_EXC_IN_PORTS] = "traffic.sidecar.istio.io/excludeInboundPorts",
	[SM_ANN_INC_OUT_PORTS] = "traffic.sidecar.istio.io/includeOutboundPorts",
	[SM_ANN_EXC_OUT_PORTS] = "traffic.sidecar.istio.io/excludeOutboundPorts",
	[SM_ANN_STATUS_PORT] = "status.sidecar.istio.io/port",
};

const char *sm_annotation_key(int i)
{
	return i >= 0 && i < SM_ANN_COUNT ? ann_keys[i] : NULL;
}

/* Validate one value with the parser of its field, naming the annotation. */
static int check_value(int i, const char *v)
{
	struct sm_list l;
	__u32 port;
	int err;

	switch (i) {
	case SM_ANN_INC_CIDRS:
	case SM_ANN_EXC_CIDRS:
		err = sm_parse_cidr_list(ann_keys[i], v, i == SM_ANN_INC_CIDRS, &l);
		break;
	case SM_ANN_STATUS_PORT:
		/* istio: "0" disables the status port */
		err = sm_parse_u32(ann_keys[i], v, 65535, &port);
		if (err)
			sm_set_err(0, "%s: '%s' is not a port (0-65535)", ann_keys[i], v);
		return err ? -EINVAL : 0;
	default:
		err = sm_parse_port_list(ann_keys[i], v,
					 i == SM_ANN_INC_IN_PORTS || i == SM_ANN_INC_OUT_PORTS, &l);
		break;
	}
	if (!err)
		sm_list_free(&l);
	return err == -ERANGE ? -EINVAL : err;
}

int sm_annotations_from_json(const char *json, struct sm_annotations *out)
{
	struct json_tokener *tok;
	struct json_object *root;
	enum json_tokener_error jerr;
	int err = 0;

	memset(out, 0, sizeof(*out));
	if (!json) {
		sm_set_err(0, "annotations: missing");
		return -EINVAL;
	}
	tok = json_tokener_new();
	if (!tok)
		return -ENOMEM;
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
	if (err)
		goto out;
	err = sm_annotations_from_object(root, out);
out:
	json_object_put(root);
	return err;
}

int sm_annotations_from_object(struct json_object *root, struct sm_annotations *out)
{
	memset(out, 0, sizeof(*out));
	if (!json_object_is_type(root, json_type_object)) {
		sm_set_err(0, "annotations: expected a JSON object of string values");
		return -EINVAL;
	}
	for (int i = 0; i < SM_ANN_COUNT; i++) {
		struct json_object *v;
		int err;

		if (!json_object_object_get_ex(root, ann_keys[i], &v))
			continue;
		if (!json_object_is_type(v, json_type_string)) {
			sm_set_err(0, "%s: value must be a string", ann_keys[i]);
			sm_annotations_free(out);
			return -EINVAL;
		}
		err = check_value(i, json_object_get_string(v));
		if (!err) {
			out->v[i] = strdup(json_object_get_string(v));
			if (!out->v[i])
				err = -ENOMEM;
		}
		if (err) {
			sm_annotations_free(out);
			return err;
		}
	}
	return 0;
}

int sm_annotations_apply(struct sm_annotations *a, struct sockmesh_policy *pol)
{
	/* without the annotation, the policy's own list stays and gets the port */
	const char *exc =
		a->v[SM_ANN_EXC_IN_PORTS] ? a->v[SM_ANN_EXC_IN_PORTS] : pol->exclude_inbound_ports;
	const char *status = a->v[SM_ANN_STATUS_PORT];

	if (a->v[SM_ANN_INC_CIDRS])
		pol->include_outbound_cidrs = a->v[SM_ANN_INC_CIDRS];
	if (a->v[SM_ANN_EXC_CIDRS])
		pol->exclude_outbound_cidrs = a->v[SM_ANN_EXC_CIDRS];
	if (a->v[SM_ANN_INC_OUT_PORTS])
		pol->include_outbound_ports = a->v[SM_ANN_INC_OUT_PORTS];
	if (a->v[SM_ANN_EXC_OUT_PORTS])
		pol->exclude_outbound_ports = a->v[SM_ANN_EXC_OUT_PORTS];
	if (a->v[SM_ANN_INC_IN_PORTS])
		pol->include_inbound_ports = a->v[SM_ANN_INC_IN_PORTS];
	/* Like istio, the sidecar's status port is never captured inbound. */
	if (status && strcmp(status, "0") != 0) {
		size_t n = (exc ? strlen(exc) : 0) + strlen(status) + 2;

		free(a->combined);
		a->combined = malloc(n);
		if (!a->combined)
			return -ENOMEM;
		if (exc && exc[strspn(exc, " \t")])
			snprintf(a->combined, n, "%s,%s", exc, status);
		else
			snprintf(a->combined, n, "%s", status);
		exc = a->combined;
	}
	if (exc)
		pol->exclude_inbound_ports = exc;
	return 0;
}

void sm_annotations_free(struct sm_annotations *a)
{
	for (int i = 0; i < SM_ANN_COUNT; i++)
		free(a->v[i]);
	free(a->combined);
	memset(a, 0, sizeof(*a));
}
