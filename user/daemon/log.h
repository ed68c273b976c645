/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* sockmeshd: structured log lines on stderr (JSON lines or text). */
#ifndef SOCKMESHD_LOG_H
#define SOCKMESHD_LOG_H

#include <stdbool.h>

#include <json-c/json.h>

enum sd_level { SD_DEBUG, SD_INFO, SD_WARN, SD_ERROR };

/* json: one JSON object per line ({"ts", "level", "msg", fields...});
 * otherwise "TS LEVEL msg key=value ...". Lines below min are dropped.
 */
void sd_log_init(bool json, enum sd_level min);

/* Log msg with the members of fields (may be NULL; the reference is taken:
 * sd_log puts it). Safe from any thread: a line is written in one go.
 */
void sd_log(enum sd_level level, json_object *fields, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Field helpers: add to o (created if NULL) and return it. */
json_object *sd_f_str(json_object *o, const char *key, const char *v);
json_object *sd_f_u64(json_object *o, const char *key, unsigned long long v);
json_object *sd_f_i64(json_object *o, const char *key, long long v);
json_object *sd_f_bool(json_object *o, const char *key, bool v);

#endif
