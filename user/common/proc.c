// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Process facts from /proc (see proc.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proc.h"
#include "text.h"

unsigned long long smc_proc_start_ticks(long long pid)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;
	FILE *f;
	size_t n;

	if (pid > 0)
		snprintf(path, sizeof(path), "/proc/%lld/stat", pid);
	else
		snprintf(path, sizeof(path), "/proc/self/stat");
	f = fopen(path, "re");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* the command name may hold spaces and ')': count from the last ')' */
	p = strrchr(buf, ')');
	for (int field = 2; p && field < 22; field++)
		p = strchr(p + 1, ' ');
	if (p)
		v = strtoull(p + 1, NULL, 10);
	return v;
}

char *smc_proc_comm(long long pid, char *buf, unsigned long len)
{
	char path[64], raw[64];
	size_t n = 0;
	FILE *f;

	if (!len)
		return buf;
	buf[0] = '\0';
	snprintf(path, sizeof(path), "/proc/%lld/comm", pid);
	f = fopen(path, "re");
	if (!f)
		return buf;
	n = fread(raw, 1, sizeof(raw) - 1, f);
	fclose(f);
	raw[n] = '\0';
	raw[strcspn(raw, "\n")] = '\0';
	return smc_text_escape(buf, len, raw, 0);
}
