/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Process facts the front-ends record (the daemon's state file). */
#ifndef SMC_PROC_H
#define SMC_PROC_H

/* Start time of a process (field 22 of /proc/PID/stat, clock ticks after
 * boot; pid 0: this process), 0 when unknown. With the pid it identifies a
 * process: pids are reused, the pair is not.
 */
unsigned long long smc_proc_start_ticks(long long pid);

/* The command name of a process (/proc/PID/comm, made printable), or ""
 * when it is gone. Returns buf.
 */
char *smc_proc_comm(long long pid, char *buf, unsigned long len);

#endif
