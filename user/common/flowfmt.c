// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "flowfmt.h"

static const char *const path_names[SM_TAP_PATHS] = {
	[SM_TAP_PATH_SPLICE] = "spliced",
	[SM_TAP_PATH_STACK] = "tcp",
	[SM_TAP_PATH_FAST] = "fast-path",
};

const char *smc_flow_event(const struct sm_flow *f)
{
	switch (f->kind) {
	case SM_FLOW_OPEN:
		return "open";
	case SM_FLOW_UPDATE:
		return "update";
	case SM_FLOW_CLOSE:
		return "close";
	}
	return "unknown";
}

const char *smc_flow_dir(const struct sm_flow *f)
{
	switch (f->dir) {
	case SM_FLOW_OUTBOUND:
		return "outbound";
	case SM_FLOW_INBOUND:
		return "inbound";
	case SM_FLOW_POD_TO_POD:
		return "pod-to-pod";
	}
	return "unknown";
}

const char *smc_flow_path(const struct sm_flow *f)
{
	if (!(f->flags & SM_FLOW_F_SPLICED))
		return "tcp";
	if (f->bytes[0][SM_TAP_PATH_FAST] || f->bytes[1][SM_TAP_PATH_FAST] ||
	    (f->flags & (SM_FLOW_F_UNCOUNTED0 | SM_FLOW_F_UNCOUNTED1)))
		return "fast-path";
	if (!f->bytes[0][SM_TAP_PATH_STACK] && !f->bytes[1][SM_TAP_PATH_STACK])
		return "spliced";
	if (f->sk_flags & SM_SK_OVER_BUDGET)
		return "fallback:budget";
	if (f->sk_flags & SM_SK_NO_SPLICE)
		return "fallback:peer";
	return "fallback";
}

bool smc_flow_bytes(const struct sm_flow *f, int dir, unsigned long long *out)
{
	unsigned long long n = 0;

	if ((!(f->flags & SM_FLOW_F_SPLICED) && f->kind != SM_FLOW_CLOSE) ||
	    (f->flags & (dir & 1 ? SM_FLOW_F_UNCOUNTED1 : SM_FLOW_F_UNCOUNTED0))) {
		*out = 0;
		return false;
	}
	for (int p = 0; p < SM_TAP_PATHS; p++)
		n += f->bytes[dir & 1][p];
	*out = n;
	return true;
}

double smc_flow_duration(const struct sm_flow *f)
{
	if (f->kind == SM_FLOW_OPEN || f->end_ns < f->open_ns)
		return 0;
	return (double)(f->end_ns - f->open_ns) / 1e9;
}

const char *smc_flow_addr(const struct sm_flow *f, bool server, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	const __u8 *addr = server ? f->server : f->client;
	unsigned int port = server ? f->server_port : f->client_port;

	if (!inet_ntop(f->family == 10 ? AF_INET6 : AF_INET, addr, a, sizeof(a)))
		snprintf(a, sizeof(a), "?");
	if (f->family == 10)
		snprintf(buf, len, "[%s]:%u", a, port);
	else
		snprintf(buf, len, "%s:%u", a, port);
	return buf;
}

long long smc_mono_to_real(void)
{
	struct timespec r, m;

	clock_gettime(CLOCK_REALTIME, &r);
	clock_gettime(CLOCK_MONOTONIC, &m);
	return ((long long)r.tv_sec - m.tv_sec) * 1000000000ll + (r.tv_nsec - m.tv_nsec);
}

/* The record's own time: its close, its update, or its open. */
static void iso_time(const struct sm_flow *f, long long mono_to_real, char *buf, size_t len)
{
	long long ns = (long long)(f->kind == SM_FLOW_OPEN ? f->open_ns : f->end_ns) + mono_to_real;
	time_t s = (time_t)(ns / 1000000000ll);
	struct tm tm;

	gmtime_r(&s, &tm);
	snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ns % 1000000000ll / 1000000));
}

static const char *scope_name(const struct sockmesh_flow_names *n, const struct sm_flow *f,
			      char *buf, size_t len)
{
	if (n && n->scope)
		return n->scope;
	snprintf(buf, len, "scope%u", f->scope_idx);
	return buf;
}

json_object *smc_flow_json(const struct sm_flow *f, const struct sockmesh_flow_names *n,
			   long long mono_to_real)
{
	json_object *o = json_object_new_object(), *by;
	char buf[SM_FLOWFMT_BUF];
	unsigned long long b;

	if (!o)
		return NULL;
	iso_time(f, mono_to_real, buf, sizeof(buf));
	json_object_object_add(o, "time", json_object_new_string(buf));
	json_object_object_add(o, "event", json_object_new_string(smc_flow_event(f)));
	json_object_object_add(o, "direction", json_object_new_string(smc_flow_dir(f)));
	json_object_object_add(o, "scope",
			       json_object_new_string(scope_name(n, f, buf, sizeof(buf))));
	if (n && n->pod_name && n->pod_name[0]) {
		json_object_object_add(
			o, "pod_namespace",
			json_object_new_string(n->pod_namespace ? n->pod_namespace : ""));
		json_object_object_add(o, "pod_name", json_object_new_string(n->pod_name));
	}
	json_object_object_add(o, "pid", f->pid ? json_object_new_int64(f->pid) : NULL);
	json_object_object_add(o, "command",
			       n && n->comm && n->comm[0] ? json_object_new_string(n->comm) : NULL);
	json_object_object_add(o, "family",
			       json_object_new_string(f->family == 10 ? "ipv6" : "ipv4"));
	json_object_object_add(o, "client",
			       json_object_new_string(smc_flow_addr(f, false, buf, sizeof(buf))));
	json_object_object_add(o, "server",
			       json_object_new_string(smc_flow_addr(f, true, buf, sizeof(buf))));
	json_object_object_add(o, "path", json_object_new_string(smc_flow_path(f)));
	for (int d = 0; d < 2; d++)
		json_object_object_add(
			o, d ? "bytes_to_client" : "bytes_to_server",
			smc_flow_bytes(f, d, &b) ? json_object_new_int64((long long)b) : NULL);
	by = json_object_new_object();
	if (by && (f->flags & SM_FLOW_F_SPLICED || f->kind == SM_FLOW_CLOSE)) {
		for (int p = 0; p < SM_TAP_PATHS; p++) {
			json_object *pair = json_object_new_array();

			json_object_array_add(pair,
					      json_object_new_int64((long long)f->bytes[0][p]));
			json_object_array_add(pair,
					      json_object_new_int64((long long)f->bytes[1][p]));
			json_object_object_add(by, path_names[p], pair);
		}
	}
	json_object_object_add(o, "bytes_by_path", by);
	json_object_object_add(o, "duration_s", json_object_new_double(smc_flow_duration(f)));
	if (f->kind == SM_FLOW_CLOSE) {
		json_object_object_add(o, "srtt_us", json_object_new_int64(f->srtt_us));
		json_object_object_add(o, "retransmits", json_object_new_int64(f->retrans));
	}
	json_object_object_add(o, "cookie", json_object_new_uint64(f->cookie));
	return o;
}

void smc_flow_table_header(FILE *out)
{
	fprintf(out, "%-12s %-6s %-10s %-24s %-7s %-15s %-24s %-24s %-15s %12s %12s %9s %8s %5s\n",
		"TIME", "EVENT", "DIR", "SCOPE", "PID", "COMMAND", "CLIENT", "SERVER", "PATH",
		"TO-SERVER", "TO-CLIENT", "DURATION", "RTT(us)", "RETX");
}

void smc_flow_table_row(FILE *out, const struct sm_flow *f, const struct sockmesh_flow_names *n,
			long long mono_to_real)
{
	char t[40], sc[SM_FLOWFMT_BUF], c[SM_FLOWFMT_BUF], s[SM_FLOWFMT_BUF], b[2][24], rtt[16],
		retx[16], pid[16];
	unsigned long long v;

	iso_time(f, mono_to_real, t, sizeof(t));
	for (int d = 0; d < 2; d++) {
		if (smc_flow_bytes(f, d, &v))
			snprintf(b[d], sizeof(b[d]), "%llu", v);
		else
			snprintf(b[d], sizeof(b[d]), "-");
	}
	snprintf(rtt, sizeof(rtt), "-");
	snprintf(retx, sizeof(retx), "-");
	if (f->kind == SM_FLOW_CLOSE) {
		snprintf(rtt, sizeof(rtt), "%u", f->srtt_us);
		snprintf(retx, sizeof(retx), "%u", f->retrans);
	}
	if (f->pid)
		snprintf(pid, sizeof(pid), "%u", f->pid);
	else
		snprintf(pid, sizeof(pid), "-");
	/* the time of day is enough in a table; -j has the date */
	fprintf(out,
		"%-12s %-6s %-10s %-24s %-7s %-15s %-24s %-24s %-15s %12s %12s %8.3fs %8s %5s\n",
		t + 11, smc_flow_event(f), smc_flow_dir(f), scope_name(n, f, sc, sizeof(sc)), pid,
		n && n->comm && n->comm[0] ? n->comm : "-", smc_flow_addr(f, false, c, sizeof(c)),
		smc_flow_addr(f, true, s, sizeof(s)), smc_flow_path(f), b[0], b[1],
		smc_flow_duration(f), rtt, retx);
}
