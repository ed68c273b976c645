// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Bounded file reader (see file.h). */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "file.h"
#include "parse.h"

static char *read_fd(const char *field, int fd, const char *path, size_t max, size_t *len,
		     bool text)
{
	size_t n = 0, cap = 0;
	char *buf = NULL;

	for (;;) {
		ssize_t r;

		/* one byte past max tells "too long" from "exactly max" */
		if (n == cap) {
			size_t ncap = cap ? 2 * cap : 4096;
			char *nb;

			if (ncap > max + 1)
				ncap = max + 1;
			if (ncap <= n) {
				free(buf);
				smc_set_err("%s: '%s' is longer than %zu bytes", field, path, max);
				errno = EFBIG;
				return NULL;
			}
			nb = realloc(buf, ncap + 1);
			if (!nb) {
				free(buf);
				smc_set_err("%s: out of memory reading '%s'", field, path);
				errno = ENOMEM;
				return NULL;
			}
			buf = nb;
			cap = ncap;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int err = errno;

			free(buf);
			smc_set_err("%s: cannot read '%s': %s", field, path, strerror(err));
			errno = err;
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (n > max) {
		free(buf);
		smc_set_err("%s: '%s' is longer than %zu bytes", field, path, max);
		errno = EFBIG;
		return NULL;
	}
	if (!buf) {
		buf = malloc(1);
		if (!buf) {
			errno = ENOMEM;
			return NULL;
		}
	}
	buf[n] = '\0';
	if (text && memchr(buf, '\0', n)) {
		free(buf);
		smc_set_err("%s: '%s' holds a NUL byte: not a text file", field, path);
		errno = EINVAL;
		return NULL;
	}
	if (len)
		*len = n;
	return buf;
}

char *smc_read_fd(const char *field, int fd, const char *path, size_t max, size_t *len)
{
	return read_fd(field, fd, path, max, len, true);
}

static char *read_path(const char *field, const char *path, size_t max, size_t *len, bool text)
{
	bool is_stdin = strcmp(path, "-") == 0;
	int fd, err;
	char *buf;

	fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		err = errno;
		smc_set_err("%s: cannot open '%s': %s", field, path, strerror(err));
		errno = err;
		return NULL;
	}
	buf = read_fd(field, fd, is_stdin ? "-" : path, max, len, text);
	err = errno;
	if (!is_stdin)
		close(fd);
	errno = err;
	return buf;
}

char *smc_read_file(const char *field, const char *path, size_t max, size_t *len)
{
	return read_path(field, path, max, len, true);
}

char *smc_read_bytes(const char *field, const char *path, size_t max, size_t *len)
{
	return read_path(field, path, max, len, false);
}
