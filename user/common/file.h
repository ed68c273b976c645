/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Bounded reads of small text files (configurations, state, annotations)
 * and of binary ones (captures).
 */
#ifndef SMC_FILE_H
#define SMC_FILE_H

#include <stddef.h>

/* Read path whole ("-": standard input) as text of at most max bytes.
 * Returns a malloc'd, NUL-terminated copy (length in *len if len), or NULL
 * with errno set and smc_errmsg() naming field and path:
 *   open/read errors: their errno ("FIELD: cannot open 'P': ...");
 *   EFBIG: longer than max bytes;
 *   EINVAL: holds a NUL byte (it is not text, and C strings would cut it).
 * Standard input is read but never closed.
 */
char *smc_read_file(const char *field, const char *path, size_t max, size_t *len);

/* The same from an open descriptor, from its current offset (path is only
 * for messages); fd stays open.
 */
char *smc_read_fd(const char *field, int fd, const char *path, size_t max, size_t *len);

/* smc_read_file for binary data (a capture): NUL bytes are data. The copy
 * still ends with a NUL after its len bytes.
 */
char *smc_read_bytes(const char *field, const char *path, size_t max, size_t *len);

#endif
