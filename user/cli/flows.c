// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * sockmesh flows: follow the connections of a scope (or of every scope)
 * from their open to their close, with a record every interval while they
 * are open, as JSON lines (-j) or an aligned table. The records and their
 * fields are docs/cli-contract.md's; the formatting is user/common's
 * (sockmeshd --flow-log writes the same lines).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "flowfmt.h"
#include "flows.h"
#include "follow.h"
#include "sockmesh.h"
#include "sockmesh_abi.h"

struct flows_state {
	const struct flows_args *a;
	FILE *out;
	long long mono_to_real;
	__u64 shown;
	int err; /* a write to out failed */
};

static int on_flow(const struct sm_flow *f, const struct sockmesh_flow_names *n, void *ctx)
{
	struct flows_state *s = ctx;

	if (s->a->count && s->shown >= s->a->count)
		return 0;
	if (s->a->json) {
		json_object *o = smc_flow_json(f, n, s->mono_to_real);

		if (!o)
			return -ENOMEM;
		fprintf(s->out, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		json_object_put(o);
	} else {
		smc_flow_table_row(s->out, f, n, s->mono_to_real);
	}
	s->shown++;
	if (ferror(s->out)) {
		s->err = errno ? -errno : -EIO;
		return s->err;
	}
	return 0;
}

int cli_flows_run(struct sockmesh *sm, const struct flows_args *a, FILE *out,
		  struct flows_result *res)
{
	struct sockmesh_flows_opts o = { .sz = sizeof(o) };
	struct sockmesh_flows_stats st = { .sz = sizeof(st) };
	struct flows_state s = { .a = a, .out = out };
	struct sockmesh_flows *f = NULL;
	__u64 deadline = 0;
	int err = 0;

	memset(res, 0, sizeof(*res));
	o.scope = a->scope;
	o.interval_s = a->interval_s;
	o.max_flows = a->max_flows;
	o.ring_size = a->ring_size;
	cli_follow_signals();
	err = sockmesh__flows(sm, &o, on_flow, &s, &f);
	if (err)
		return err;
	s.mono_to_real = smc_mono_to_real();
	deadline = cli_deadline(a->duration_s);
	if (!a->json) {
		smc_flow_table_header(out);
		fflush(out);
	}
	if (a->ready)
		a->ready(a->ready_ctx);
	while (!cli_stop_signal) {
		int n = sockmesh_flows__poll(f, 100);

		if (n < 0 && n != -EINTR) {
			err = n;
			break;
		}
		if (n > 0 && fflush(out)) {
			err = -errno;
			break;
		}
		if (a->count && s.shown >= a->count)
			break;
		if (deadline && cli_mono_ns() >= deadline)
			break;
	}
	/* what is still in the ring */
	if (!err && !(a->count && s.shown >= a->count))
		while (sockmesh_flows__poll(f, 0) > 0)
			;
	sockmesh_flows__stats(f, &st);
	sockmesh_flows__free(f);
	if (fflush(out) && !err)
		err = -errno;
	res->records = s.shown;
	res->lost_records = st.lost_records;
	res->lost_flows = st.lost_flows;
	res->signal = cli_stop_signal;
	/* the reader of stdout went away: a normal end for a pipe */
	if (err == -EPIPE)
		err = 0;
	return err;
}
