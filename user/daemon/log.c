// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* sockmeshd: structured log lines on stderr. */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text.h"
#include "log.h"

static bool log_json = true;
static enum sd_level log_min = SD_INFO;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = {
	[SD_DEBUG] = "debug",
	[SD_INFO] = "info",
	[SD_WARN] = "warn",
	[SD_ERROR] = "error",
};

void sd_log_init(bool json, enum sd_level min)
{
	log_json = json;
	log_min = min;
}

static json_object *fobj(json_object *o)
{
	return o ? o : json_object_new_object();
}

json_object *sd_f_str(json_object *o, const char *key, const char *v)
{
	o = fobj(o);
	json_object_object_add(o, key, json_object_new_string(v ? v : ""));
	return o;
}

json_object *sd_f_u64(json_object *o, const char *key, unsigned long long v)
{
	o = fobj(o);
	json_object_object_add(o, key, json_object_new_uint64(v));
	return o;
}

json_object *sd_f_i64(json_object *o, const char *key, long long v)
{
	o = fobj(o);
	json_object_object_add(o, key, json_object_new_int64(v));
	return o;
}

json_object *sd_f_bool(json_object *o, const char *key, bool v)
{
	o = fobj(o);
	json_object_object_add(o, key, json_object_new_boolean(v));
	return o;
}

/* RFC 3339 UTC with milliseconds */
static void timestamp(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* text format: bare value when it has no blank, quote or control byte */
static void text_value(FILE *f, const char *s)
{
	bool plain = *s != '\0';

	for (const char *p = s; *p && plain; p++)
		plain = (unsigned char)*p > ' ' && *p != '"' && *p != '=' && *p != '\\';
	if (plain) {
		fputs(s, f);
		return;
	}
	fputc('"', f);
	for (const char *p = s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p == '\n')
			fputs("\\n", f);
		else if ((unsigned char)*p < ' ')
			fprintf(f, "\\x%02x", (unsigned char)*p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

void sd_log(enum sd_level level, json_object *fields, const char *fmt, ...)
{
	char msg[1024], ts[40];
	char *line = NULL;
	size_t len = 0;
	FILE *f;
	va_list ap;

	if (level < log_min) {
		json_object_put(fields);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	timestamp(ts, sizeof(ts));
	f = open_memstream(&line, &len);
	if (!f) {
		json_object_put(fields);
		return;
	}
	if (log_json) {
		json_object *o = json_object_new_object();

		json_object_object_add(o, "ts", json_object_new_string(ts));
		json_object_object_add(o, "level", json_object_new_string(level_names[level]));
		json_object_object_add(o, "msg", json_object_new_string(msg));
		if (fields) {
			json_object_object_foreach(fields, k, v)
			{
				if (strcmp(k, "ts") && strcmp(k, "level") && strcmp(k, "msg"))
					json_object_object_add(o, k, json_object_get(v));
			}
		}
		const char *js = json_object_to_json_string_ext(
			o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
		/* pod names come from CNI_ARGS: any bytes; a log line is valid JSON */
		char *fixed = smc_utf8_fix(js);

		fputs(fixed ? fixed : js, f);
		free(fixed);
		json_object_put(o);
	} else {
		fprintf(f, "%s %-5s %s", ts, level_names[level], msg);
		if (fields) {
			json_object_object_foreach(fields, k, v)
			{
				fprintf(f, " %s=", k);
				text_value(
					f,
					json_object_get_type(v) == json_type_string ?
						json_object_get_string(v) :
						json_object_to_json_string_ext(
							v, JSON_C_TO_STRING_PLAIN |
								   JSON_C_TO_STRING_NOSLASHESCAPE));
			}
		}
	}
	fputc('\n', f);
	fclose(f);
	json_object_put(fields);
	pthread_mutex_lock(&log_lock);
	fwrite(line, 1, len, stderr);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
	free(line);
}
