// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmesh-cni output: what goes to stdout, built here apart from the
 * commands so that the fuzzer checks the very text the plugin prints. The
 * input's strings reach it as they came (environment variables, config
 * values, messages that cut them at a byte count); json-c escapes what JSON
 * needs but passes bytes >= 0x80 through, so invalid UTF-8 is made valid
 * here before it is serialized.
 */
#include <stdlib.h>
#include <string.h>

#include "cni.h"
#include "cni_version.h"
#include "text.h"

char *cni_json_text(json_object *o)
{
	return smc_utf8_fix(json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

char *cni_error_json(const char *version, const struct cni_error *e)
{
	/* each byte may become the 4 bytes of "\xNN" */
	char clean[4 * sizeof(e->msg) + 1];
	json_object *o = json_object_new_object();
	char *text;

	if (!o)
		return NULL;
	json_object_object_add(o, "cniVersion",
			       json_object_new_string(version ? version : CNI_SPEC_VERSION));
	json_object_object_add(o, "code", json_object_new_int(e->code));
	json_object_object_add(
		o, "msg", json_object_new_string(smc_utf8_clean(clean, sizeof(clean), e->msg)));
	if (e->details[0])
		json_object_object_add(
			o, "details",
			json_object_new_string(smc_utf8_clean(clean, sizeof(clean), e->details)));
	text = cni_json_text(o);
	json_object_put(o);
	return text;
}

json_object *cni_version_json(void)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	json_object_object_add(o, "cniVersion", json_object_new_string(CNI_SPEC_VERSION));
	for (size_t i = 0; smc_cni_version(i); i++)
		json_object_array_add(a, json_object_new_string(smc_cni_version(i)));
	json_object_object_add(o, "supportedVersions", a);
	return o;
}
