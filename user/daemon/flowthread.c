// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "flowagg.h"
#include "flowfmt.h"
#include "flowthread.h"
#include "log.h"
#include "sockmesh.h"

#define SD_FLOW_CHECK_MS 2000 /* is our consumer still the data path's? */
#define SD_FLOW_RETRY_MS 5000 /* after a failed attach */

struct sd_flowthread {
	struct sd_flowthread_opts o;
	pthread_t th;
	int stop; /* __atomic */
	int reopen; /* __atomic */
	FILE *log;
	bool log_failed; /* said once */
	long long mono_to_real;
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static FILE *log_open(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	FILE *f;

	if (fd < 0)
		return NULL;
	f = fdopen(fd, "a");
	if (!f)
		close(fd);
	return f;
}

static int on_flow(const struct sm_flow *f, const struct sockmesh_flow_names *n, void *ctx)
{
	struct sd_flowthread *t = ctx;

	sd_flowagg_add(t->o.agg, f, n);
	if (t->log) {
		json_object *o = smc_flow_json(f, n, t->mono_to_real);

		if (o) {
			fputs(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), t->log);
			fputc('\n', t->log);
			json_object_put(o);
		}
	}
	return 0;
}

static void log_flush(struct sd_flowthread *t)
{
	if (!t->log)
		return;
	if ((fflush(t->log) || ferror(t->log)) && !t->log_failed) {
		t->log_failed = true;
		sd_log(SD_ERROR,
		       sd_f_str(sd_f_str(NULL, "flow_log", t->o.log_path), "error",
				strerror(errno)),
		       "cannot write the flow log");
	}
}

static void log_reopen(struct sd_flowthread *t)
{
	FILE *f;

	if (!t->o.log_path)
		return;
	log_flush(t);
	f = log_open(t->o.log_path);
	if (!f) {
		sd_log(SD_ERROR,
		       sd_f_str(sd_f_str(NULL, "flow_log", t->o.log_path), "error",
				strerror(errno)),
		       "cannot reopen the flow log: still writing the one open");
		return;
	}
	if (t->log)
		fclose(t->log);
	t->log = f;
	t->log_failed = false;
	sd_log(SD_INFO, sd_f_str(NULL, "flow_log", t->o.log_path), "reopened the flow log");
}

static bool stopping(struct sd_flowthread *t)
{
	return __atomic_load_n(&t->stop, __ATOMIC_RELAXED);
}

static void nap(struct sd_flowthread *t, long long ms)
{
	for (long long end = mono_ms() + ms; !stopping(t) && mono_ms() < end;)
		usleep(100 * 1000);
}

/* Are our programs the ones the data path pinned now calls? */
static bool still_ours(struct sd_flowthread *t)
{
	struct sockmesh_open_opts oo = { .sz = sizeof(oo), .pin_dir = t->o.pin_dir };
	struct sockmesh *sm = sockmesh__open(&oo);
	int r;

	if (!sm)
		return false;
	r = sockmesh__flows_running(sm, NULL);
	sockmesh__close(sm);
	return r == 1;
}

/* Follow until stopped or the data path no longer calls our programs. */
static void follow(struct sd_flowthread *t, struct sockmesh *sm, char *last_err, size_t errlen)
{
	struct sockmesh_flows_opts fo = { .sz = sizeof(fo), .interval_s = t->o.interval_s };
	struct sockmesh_flows_stats st = { .sz = sizeof(st) };
	struct sockmesh_flows *f = NULL;
	long long next_check;
	int err;

	err = sockmesh__flows(sm, &fo, on_flow, t, &f);
	if (err) {
		/* said once per distinct reason, then quietly retried */
		if (strcmp(last_err, sockmesh_errmsg())) {
			snprintf(last_err, errlen, "%s", sockmesh_errmsg());
			sd_log(SD_WARN, sd_f_str(NULL, "error", last_err),
			       "flow events: cannot follow them now (retrying)");
		}
		return;
	}
	last_err[0] = '\0';
	sd_flowagg_set_state(t->o.agg, 1, 0, 0);
	sd_log(SD_INFO, sd_f_u64(NULL, "interval", t->o.interval_s), "following flow events");
	t->mono_to_real = smc_mono_to_real();
	next_check = mono_ms() + SD_FLOW_CHECK_MS;
	while (!stopping(t)) {
		int n = sockmesh_flows__poll(f, 100);

		if (n < 0 && n != -EINTR) {
			sd_log(SD_WARN, sd_f_str(NULL, "error", strerror(-n)),
			       "flow events: poll failed");
			break;
		}
		if (__atomic_exchange_n(&t->reopen, 0, __ATOMIC_RELAXED))
			log_reopen(t);
		log_flush(t);
		if (mono_ms() >= next_check) {
			next_check = mono_ms() + SD_FLOW_CHECK_MS;
			sockmesh_flows__stats(f, &st);
			sd_flowagg_set_state(t->o.agg, 1, st.lost_records, st.lost_flows);
			if (!still_ours(t)) {
				sd_log(SD_INFO, NULL,
				       "flow events: the data path was replaced; following it again");
				break;
			}
		}
	}
	/* what is still in the ring */
	while (sockmesh_flows__poll(f, 0) > 0)
		;
	log_flush(t);
	sockmesh_flows__stats(f, &st);
	sd_flowagg_set_state(t->o.agg, 0, st.lost_records, st.lost_flows);
	sockmesh_flows__free(f);
}

static void *flow_main(void *arg)
{
	struct sd_flowthread *t = arg;
	struct sockmesh_open_opts oo = { .sz = sizeof(oo), .pin_dir = t->o.pin_dir };
	char last_err[512] = "";

	while (!stopping(t)) {
		struct sockmesh *sm = sockmesh__open(&oo);

		if (sm) {
			follow(t, sm, last_err, sizeof(last_err));
			sockmesh__close(sm);
		}
		if (__atomic_exchange_n(&t->reopen, 0, __ATOMIC_RELAXED))
			log_reopen(t);
		if (!stopping(t))
			nap(t, SD_FLOW_RETRY_MS);
	}
	return NULL;
}

int sd_flowthread_start(const struct sd_flowthread_opts *o, struct sd_flowthread **out)
{
	struct sd_flowthread *t = calloc(1, sizeof(*t));
	int err;

	if (!t)
		return -ENOMEM;
	t->o = *o;
	if (o->log_path) {
		t->log = log_open(o->log_path);
		if (!t->log) {
			err = -errno;
			sd_log(SD_ERROR,
			       sd_f_str(sd_f_str(NULL, "flow_log", o->log_path), "error",
					strerror(-err)),
			       "--flow-log: cannot open it for appending");
			free(t);
			return err;
		}
	}
	err = -pthread_create(&t->th, NULL, flow_main, t);
	if (err) {
		if (t->log)
			fclose(t->log);
		free(t);
		return err;
	}
	*out = t;
	return 0;
}

void sd_flowthread_reopen(struct sd_flowthread *t)
{
	if (t)
		__atomic_store_n(&t->reopen, 1, __ATOMIC_RELAXED);
}

void sd_flowthread_stop(struct sd_flowthread *t)
{
	if (!t)
		return;
	__atomic_store_n(&t->stop, 1, __ATOMIC_RELAXED);
	pthread_join(t->th, NULL);
	if (t->log)
		fclose(t->log);
	free(t);
}
