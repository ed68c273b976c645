// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * libFuzzer target for libsockmesh's istio annotations
 * (sockmesh_annotations__parse, __get, __apply; user/lib/annotations.c).
 *
 * The input, cut at its first NUL, is the JSON text. What is refused is
 * refused with EINVAL (or ENOMEM) and a message; what parses round-trips
 * (the known keys' values, written back as a JSON object, parse to the same
 * values), applies over an empty policy and over one with an inbound exclude
 * list (the status port joins it), with a keep mask taken from the input,
 * and the policy it gives validates.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void __attribute__((noreturn)) fail(const char *what, const char *in)
{
	fprintf(stderr, "fuzz_annotations: %s\n  input: '%s'\n  errmsg: '%s'\n", what,
		in ? in : "(null)", sockmesh_errmsg());
	abort();
}

/* Every key the parser knows: the schema's annotations, then the status port. */
static const char *key(unsigned int i)
{
	unsigned int n = 0;

	for (unsigned int f = 0; sockmesh_field(f); f++) {
		if (!sockmesh_field(f)->annotation)
			continue;
		if (n++ == i)
			return sockmesh_field(f)->annotation;
	}
	return i == n ? SOCKMESH_ANNOTATION_STATUS_PORT : NULL;
}

static void check_refused(const char *in)
{
	if (errno != EINVAL && errno != ENOMEM)
		fail("refused with an unexpected errno", in);
	if (!sockmesh_errmsg()[0])
		fail("refused without a message", in);
}

/* The known keys' values as a JSON object parse to the same values. */
static void round_trip(const struct sockmesh_annotations *a, const char *in)
{
	json_object *o = json_object_new_object();
	struct sockmesh_annotations *b;

	if (!o)
		abort();
	for (unsigned int i = 0; key(i); i++) {
		const char *v = sockmesh_annotations__get(a, key(i));

		if (v)
			json_object_object_add(o, key(i), json_object_new_string(v));
	}
	b = sockmesh_annotations__parse(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	if (!b) {
		if (errno == ENOMEM)
			return;
		fail("accepted values refused when written back", in);
	}
	for (unsigned int i = 0; key(i); i++) {
		const char *x = sockmesh_annotations__get(a, key(i)),
			   *y = sockmesh_annotations__get(b, key(i));

		if (!x != !y || (x && strcmp(x, y)))
			fail("a value changed when written back and parsed again", in);
	}
	sockmesh_annotations__free(b);
}

static void apply(struct sockmesh_annotations *a, const char *exc, __u64 keep, const char *in)
{
	struct sockmesh_policy pol = { .sz = sizeof(pol), .exclude_inbound_ports = exc };
	const char *status = sockmesh_annotations__get(a, SOCKMESH_ANNOTATION_STATUS_PORT);
	int err;

	err = sockmesh_annotations__apply(a, &pol, keep);
	if (err == -ENOMEM)
		return;
	if (err) {
		if (err != -EINVAL && err != -ERANGE)
			fail("apply: unexpected error code", in);
		return;
	}
	if (status && strcmp(status, "0") &&
	    (!pol.exclude_inbound_ports || !strstr(pol.exclude_inbound_ports, status)))
		fail("the status port is not in exclude_inbound_ports", in);
	if (sockmesh_policy__validate(&pol))
		fail("annotations that parsed give a policy that does not validate", in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1);
	struct sockmesh_annotations *a;
	__u64 keep = 0;

	if (!in)
		return 0;
	memcpy(in, data, size);
	in[size] = '\0';
	for (size_t i = 0; i < size && i < 8; i++)
		keep = keep << 8 | data[size - 1 - i];

	a = sockmesh_annotations__parse(in);
	if (!a) {
		check_refused(in);
		free(in);
		return 0;
	}
	round_trip(a, in);
	apply(a, NULL, 0, in);
	apply(a, "15020,15021", 0, in);
	apply(a, NULL, keep, in);
	/* apply twice: the status port list is rebuilt, not leaked */
	apply(a, "9090", keep, in);
	sockmesh_annotations__free(a);
	free(in);
	return 0;
}
