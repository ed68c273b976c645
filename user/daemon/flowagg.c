// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flowagg.h"

const double sd_flow_bucket_le[SD_FLOW_BUCKETS] = { 0.001, 0.005, 0.01, 0.05, 0.1,
						    0.5,   1,	  10,	60,   600 };

/* What was counted of an open connection so far (bytes since its last
 * record are the difference), by its flow socket's cookie.
 */
struct open_flow {
	__u64 cookie;
	__u64 bytes[2][SM_TAP_PATHS];
	size_t row; /* its scope's row */
	struct open_flow *next;
};

#define SD_FLOW_HASH 4096

struct sd_flowagg {
	pthread_mutex_t lock;
	struct sd_flow_row *rows;
	size_t nrows, cap;
	struct open_flow *open[SD_FLOW_HASH];
	struct sd_flowagg_totals totals;
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct sd_flowagg *sd_flowagg_new(void)
{
	struct sd_flowagg *a = calloc(1, sizeof(*a));

	if (a)
		pthread_mutex_init(&a->lock, NULL);
	return a;
}

void sd_flowagg_free(struct sd_flowagg *a)
{
	if (!a)
		return;
	for (size_t i = 0; i < SD_FLOW_HASH; i++)
		for (struct open_flow *o = a->open[i], *nx; o; o = nx) {
			nx = o->next;
			free(o);
		}
	pthread_mutex_destroy(&a->lock);
	free(a->rows);
	free(a);
}

/* The row of the record's scope, made if new; SIZE_MAX when out of memory. */
static size_t row_of(struct sd_flowagg *a, const struct sockmesh_flow_names *n)
{
	char kind[8] = "", scope[300];
	const char *colon;
	struct sd_flow_row *r;

	if (n->scope && (colon = strchr(n->scope, ':')) &&
	    (size_t)(colon - n->scope) < sizeof(kind)) {
		memcpy(kind, n->scope, (size_t)(colon - n->scope));
		kind[colon - n->scope] = '\0';
		snprintf(scope, sizeof(scope), "%s", colon + 1);
	} else {
		snprintf(scope, sizeof(scope), "%s", n->scope ? n->scope : "");
	}
	for (size_t i = 0; i < a->nrows; i++)
		if (!strcmp(a->rows[i].kind, kind) && !strcmp(a->rows[i].scope, scope) &&
		    !strcmp(a->rows[i].pod_name, n->pod_name ? n->pod_name : "") &&
		    !strcmp(a->rows[i].pod_namespace, n->pod_namespace ? n->pod_namespace : ""))
			return i;
	if (a->nrows == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 16;
		struct sd_flow_row *nr = realloc(a->rows, cap * sizeof(*nr));

		if (!nr)
			return (size_t)-1;
		a->rows = nr;
		a->cap = cap;
	}
	r = &a->rows[a->nrows];
	memset(r, 0, sizeof(*r));
	snprintf(r->kind, sizeof(r->kind), "%s", kind);
	snprintf(r->scope, sizeof(r->scope), "%s", scope);
	snprintf(r->pod_namespace, sizeof(r->pod_namespace), "%s",
		 n->pod_namespace ? n->pod_namespace : "");
	snprintf(r->pod_name, sizeof(r->pod_name), "%s", n->pod_name ? n->pod_name : "");
	return a->nrows++;
}

static struct open_flow **slot(struct sd_flowagg *a, __u64 cookie)
{
	struct open_flow **p = &a->open[(cookie * 0x9e3779b97f4a7c15ull) >> 52];

	while (*p && (*p)->cookie != cookie)
		p = &(*p)->next;
	return p;
}

int sd_flowagg_add(struct sd_flowagg *a, const struct sm_flow *f,
		   const struct sockmesh_flow_names *n)
{
	struct open_flow **p, *o;
	struct sd_flow_row *r;
	int err = 0;

	pthread_mutex_lock(&a->lock);
	p = slot(a, f->cookie);
	o = *p;
	if (f->kind == SM_FLOW_OPEN) {
		size_t i = row_of(a, n);

		if (i == (size_t)-1 || (!o && !(o = calloc(1, sizeof(*o))))) {
			err = -ENOMEM;
			goto out;
		}
		if (!*p) {
			o->cookie = f->cookie;
			*p = o;
		}
		o->row = i;
		memset(o->bytes, 0, sizeof(o->bytes));
		r = &a->rows[i];
		if (f->dir < SD_FLOW_DIRS)
			r->opened[f->dir]++;
		r->last_ms = mono_ms();
		goto out;
	}
	if (!o)
		goto out; /* opened before we followed, or not kept */
	r = &a->rows[o->row];
	r->last_ms = mono_ms();
	/* A connection that never entered the splice has its bytes at its
	 * close only (then all of them).
	 */
	if ((f->flags & SM_FLOW_F_SPLICED) || f->kind == SM_FLOW_CLOSE)
		for (int d = 0; d < 2; d++)
			for (int k = 0; k < SM_TAP_PATHS; k++) {
				if (f->bytes[d][k] > o->bytes[d][k])
					r->bytes[k][d] += f->bytes[d][k] - o->bytes[d][k];
				o->bytes[d][k] = f->bytes[d][k];
			}
	if (f->kind == SM_FLOW_CLOSE) {
		double s = f->end_ns > f->open_ns ? (double)(f->end_ns - f->open_ns) / 1e9 : 0;
		int b = 0;

		while (b < SD_FLOW_BUCKETS && s > sd_flow_bucket_le[b])
			b++;
		r->bucket[b]++;
		r->closed++;
		r->duration_sum += s;
		*p = o->next;
		free(o);
	}
out:
	pthread_mutex_unlock(&a->lock);
	return err;
}

void sd_flowagg_set_state(struct sd_flowagg *a, int following, unsigned long long lost_records,
			  unsigned long long lost_flows)
{
	pthread_mutex_lock(&a->lock);
	a->totals.following = following;
	a->totals.lost_records = lost_records;
	a->totals.lost_flows = lost_flows;
	pthread_mutex_unlock(&a->lock);
}

/* Does an open connection point to row i? */
static bool row_used(const struct sd_flowagg *a, size_t i)
{
	for (size_t h = 0; h < SD_FLOW_HASH; h++)
		for (const struct open_flow *o = a->open[h]; o; o = o->next)
			if (o->row == i)
				return true;
	return false;
}

static void row_drop(struct sd_flowagg *a, size_t i)
{
	memmove(&a->rows[i], &a->rows[i + 1], (a->nrows - i - 1) * sizeof(a->rows[0]));
	a->nrows--;
	for (size_t h = 0; h < SD_FLOW_HASH; h++)
		for (struct open_flow *o = a->open[h]; o; o = o->next)
			if (o->row > i)
				o->row--;
}

struct sd_flow_row *sd_flowagg_snapshot(struct sd_flowagg *a, long long idle_ms, size_t *n,
					struct sd_flowagg_totals *t)
{
	struct sd_flow_row *copy = NULL;
	long long now = mono_ms();

	pthread_mutex_lock(&a->lock);
	/* the series of a scope gone quiet go (a pod that is gone) */
	for (size_t i = 0; i < a->nrows;) {
		const struct sd_flow_row *r = &a->rows[i];

		if (now - r->last_ms > idle_ms && !row_used(a, i)) {
			row_drop(a, i);
			continue;
		}
		i++;
	}
	*n = a->nrows;
	if (a->nrows) {
		copy = malloc(a->nrows * sizeof(*copy));
		if (copy)
			memcpy(copy, a->rows, a->nrows * sizeof(*copy));
		else
			*n = 0;
	}
	if (t)
		*t = a->totals;
	pthread_mutex_unlock(&a->lock);
	return copy;
}
