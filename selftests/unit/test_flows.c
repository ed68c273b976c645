/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Unit tests of what is made of flow records in user space: the JSON lines
 * and table of `sockmesh flows` and sockmeshd --flow-log (user/common/
 * flowfmt.c) and sockmeshd's /metrics series (user/daemon/flowagg.c):
 * fields, the path named from the bytes and the socket's flags, bytes not
 * known yet, a histogram and byte deltas across update records.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "flowagg.h"
#include "flowfmt.h"
#include "sm_test.h"

static struct sm_flow flow(__u8 kind, __u64 cookie, bool spliced)
{
	struct sm_flow f = {
		.cookie = cookie,
		.open_ns = 1000000000ull,
		.end_ns = kind == SM_FLOW_OPEN ? 0 : 3500000000ull,
		.pid = 4242,
		.scope_idx = 7,
		.kind = kind,
		.dir = SM_FLOW_OUTBOUND,
		.flags = spliced ? SM_FLOW_F_SPLICED : 0,
		.family = AF_INET,
		.client_port = 40000,
		.server_port = 80,
	};

	inet_pton(AF_INET, "127.128.0.9", f.client);
	inet_pton(AF_INET, "10.0.0.2", f.server);
	return f;
}

static const struct sockmesh_flow_names names = {
	.scope = "netns:pod-a",
	.pod_namespace = "shop",
	.pod_name = "cart-0",
	.comm = "curl",
};

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "(null)";
}

static void test_json_fields(void)
{
	struct sm_flow f = flow(SM_FLOW_CLOSE, 99, true);
	json_object *o;

	f.bytes[0][SM_TAP_PATH_SPLICE] = 1000;
	f.bytes[1][SM_TAP_PATH_SPLICE] = 70000;
	f.bytes[1][SM_TAP_PATH_STACK] = 5000;
	f.sk_flags = SM_SK_OVER_BUDGET;
	f.srtt_us = 31;
	f.retrans = 2;
	o = smc_flow_json(&f, &names, 0);
	ASSERT_NOT_NULL(o, "json");
	ASSERT_STREQ(jstr(o, "time"), "1970-01-01T00:00:03.500Z", "time: the close");
	ASSERT_STREQ(jstr(o, "event"), "close", "event");
	ASSERT_STREQ(jstr(o, "direction"), "outbound", "direction");
	ASSERT_STREQ(jstr(o, "scope"), "netns:pod-a", "scope");
	ASSERT_STREQ(jstr(o, "pod_namespace"), "shop", "pod_namespace");
	ASSERT_STREQ(jstr(o, "pod_name"), "cart-0", "pod_name");
	ASSERT_STREQ(jstr(o, "pid"), "4242", "pid");
	ASSERT_STREQ(jstr(o, "command"), "curl", "command");
	ASSERT_STREQ(jstr(o, "client"), "127.128.0.9:40000", "client");
	ASSERT_STREQ(jstr(o, "server"), "10.0.0.2:80", "server: the original destination");
	ASSERT_STREQ(jstr(o, "path"), "fallback:budget", "path: some bytes took TCP (budget)");
	ASSERT_STREQ(jstr(o, "bytes_to_server"), "1000", "bytes_to_server");
	ASSERT_STREQ(jstr(o, "bytes_to_client"), "75000", "bytes_to_client: both paths");
	ASSERT_STREQ(jstr(o, "duration_s"), "2.5", "duration_s");
	ASSERT_STREQ(jstr(o, "srtt_us"), "31", "srtt_us");
	ASSERT_STREQ(jstr(o, "retransmits"), "2", "retransmits");
	ASSERT_STREQ(json_object_to_json_string_ext(json_object_object_get(o, "bytes_by_path"),
						    JSON_C_TO_STRING_PLAIN),
		     "{\"spliced\":[1000,70000],\"tcp\":[0,5000],\"fast-path\":[0,0]}",
		     "bytes_by_path");
	json_object_put(o);
}

static void test_paths_and_unknowns(void)
{
	struct sm_flow f = flow(SM_FLOW_UPDATE, 1, false);
	unsigned long long b;
	json_object *o;

	/* a TCP connection before its close: bytes not known */
	ASSERT_STREQ(smc_flow_path(&f), "tcp", "never spliced");
	ASSERT_FALSE(smc_flow_bytes(&f, 0, &b), "bytes unknown before the close");
	o = smc_flow_json(&f, &(struct sockmesh_flow_names){ 0 }, 0);
	ASSERT_STREQ(jstr(o, "bytes_to_server"), "(null)", "null bytes");
	ASSERT_STREQ(jstr(o, "scope"), "scope7", "a withdrawn scope by its slot");
	ASSERT_STREQ(jstr(o, "command"), "(null)", "no command");
	ASSERT_FALSE(json_object_object_get_ex(o, "srtt_us", NULL), "no RTT before the close");
	ASSERT_FALSE(json_object_object_get_ex(o, "pod_name", NULL), "no pod labels");
	json_object_put(o);
	f.kind = SM_FLOW_CLOSE;
	f.bytes[0][SM_TAP_PATH_STACK] = 12;
	ASSERT_TRUE(smc_flow_bytes(&f, 0, &b) && b == 12, "TCP's count at the close");
	f = flow(SM_FLOW_UPDATE, 1, true);
	ASSERT_STREQ(smc_flow_path(&f), "spliced", "spliced, nothing sent yet");
	f.bytes[0][SM_TAP_PATH_FAST] = 1;
	ASSERT_STREQ(smc_flow_path(&f), "fast-path", "a byte past the sidecar");
	f.bytes[0][SM_TAP_PATH_FAST] = 0;
	f.bytes[1][SM_TAP_PATH_STACK] = 1;
	ASSERT_STREQ(smc_flow_path(&f), "fallback", "took TCP, reason not known yet");
	f.sk_flags = SM_SK_NO_SPLICE;
	ASSERT_STREQ(smc_flow_path(&f), "fallback:peer", "the peer left the splice");
	f.family = AF_INET6;
	inet_pton(AF_INET6, "fd00::1", f.server);
	{
		char buf[SM_FLOWFMT_BUF];

		ASSERT_STREQ(smc_flow_addr(&f, true, buf, sizeof(buf)), "[fd00::1]:80", "IPv6");
	}
	f.flags |= SM_FLOW_F_UNCOUNTED0;
	ASSERT_STREQ(smc_flow_path(&f), "fast-path", "out of the sidecar's upstream socket");
	ASSERT_FALSE(smc_flow_bytes(&f, 0, &b), "that direction's bytes not known");
	ASSERT_TRUE(smc_flow_bytes(&f, 1, &b) && b == 1, "the other direction's known");
	f.dir = SM_FLOW_POD_TO_POD;
	ASSERT_STREQ(smc_flow_dir(&f), "pod-to-pod", "pod-to-pod");
	f.dir = 9;
	ASSERT_STREQ(smc_flow_dir(&f), "unknown", "a direction from a newer kernel side");
}

static void test_table(void)
{
	struct sm_flow f = flow(SM_FLOW_CLOSE, 5, true);
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);

	f.bytes[0][SM_TAP_PATH_SPLICE] = 10;
	f.bytes[1][SM_TAP_PATH_SPLICE] = 20;
	smc_flow_table_header(m);
	smc_flow_table_row(m, &f, &names, 0);
	fclose(m);
	ASSERT_TRUE(strstr(buf, "TIME ") == buf, "header first");
	ASSERT_NOT_NULL(strstr(buf, "\n00:00:03.500Z close  outbound   netns:pod-a"), "row");
	ASSERT_NOT_NULL(strstr(buf, " 127.128.0.9:40000 "), "client column");
	ASSERT_NOT_NULL(strstr(buf, " spliced "), "path column");
	ASSERT_NOT_NULL(strstr(buf, "  2.500s "), "duration column");
	free(buf);
}

static void test_agg(void)
{
	struct sd_flowagg *a = sd_flowagg_new();
	struct sd_flowagg_totals t;
	struct sd_flow_row *rows;
	struct sm_flow f;
	size_t n;

	ASSERT_NOT_NULL(a, "new");
	/* a spliced connection: open, two updates, close after 2.5 s */
	f = flow(SM_FLOW_OPEN, 1, true);
	sd_flowagg_add(a, &f, &names);
	f.kind = SM_FLOW_UPDATE;
	f.bytes[0][SM_TAP_PATH_SPLICE] = 100;
	sd_flowagg_add(a, &f, &names);
	f.bytes[0][SM_TAP_PATH_SPLICE] = 150;
	f.bytes[1][SM_TAP_PATH_STACK] = 7;
	sd_flowagg_add(a, &f, &names);
	f.kind = SM_FLOW_CLOSE;
	f.end_ns = f.open_ns + 2500000000ull;
	f.bytes[0][SM_TAP_PATH_SPLICE] = 160;
	sd_flowagg_add(a, &f, &names);
	/* a TCP one, inbound, 3 ms: bytes at its close only */
	f = flow(SM_FLOW_OPEN, 2, false);
	f.dir = SM_FLOW_INBOUND;
	sd_flowagg_add(a, &f, &names);
	f.kind = SM_FLOW_UPDATE;
	f.bytes[0][SM_TAP_PATH_STACK] = 0;
	sd_flowagg_add(a, &f, &names);
	f.kind = SM_FLOW_CLOSE;
	f.end_ns = f.open_ns + 3000000ull;
	f.bytes[0][SM_TAP_PATH_STACK] = 40;
	sd_flowagg_add(a, &f, &names);
	/* a close of a connection opened before we followed: not counted */
	f = flow(SM_FLOW_CLOSE, 3, true);
	f.bytes[0][SM_TAP_PATH_SPLICE] = 1 << 20;
	sd_flowagg_add(a, &f, &names);
	/* one still open in another scope */
	f = flow(SM_FLOW_OPEN, 4, true);
	sd_flowagg_add(a, &f, &(struct sockmesh_flow_names){ .scope = "cgroup:/x/y" });
	sd_flowagg_set_state(a, 1, 3, 4);

	rows = sd_flowagg_snapshot(a, 3600000, &n, &t);
	ASSERT_EQ(n, 2, "two scopes");
	ASSERT_STREQ(rows[0].kind, "netns", "kind");
	ASSERT_STREQ(rows[0].scope, "pod-a", "scope");
	ASSERT_STREQ(rows[0].pod_name, "cart-0", "pod_name");
	ASSERT_EQ(rows[0].opened[SM_FLOW_OUTBOUND], 1, "opened outbound");
	ASSERT_EQ(rows[0].opened[SM_FLOW_INBOUND], 1, "opened inbound");
	ASSERT_EQ(rows[0].closed, 2, "closed");
	ASSERT_EQ(rows[0].bytes[SM_TAP_PATH_SPLICE][0], 160,
		  "spliced to the server: the last count");
	ASSERT_EQ(rows[0].bytes[SM_TAP_PATH_STACK][1], 7, "tcp to the client");
	ASSERT_EQ(rows[0].bytes[SM_TAP_PATH_STACK][0], 40, "tcp to the server: at its close");
	/* 0.003 s in the le=0.005 bucket (index 1), 2.5 s in le=10 (index 7) */
	ASSERT_EQ(rows[0].bucket[1], 1, "3 ms bucket");
	ASSERT_EQ(rows[0].bucket[7], 1, "2.5 s bucket");
	ASSERT_TRUE(rows[0].duration_sum > 2.502 && rows[0].duration_sum < 2.504, "sum");
	ASSERT_STREQ(rows[1].kind, "cgroup", "the other scope");
	ASSERT_STREQ(rows[1].scope, "/x/y", "its path");
	ASSERT_EQ(rows[1].opened[SM_FLOW_OUTBOUND] - rows[1].closed, 1, "open there");
	ASSERT_EQ(t.following, 1, "following");
	ASSERT_EQ(t.lost_records, 3, "lost records");
	ASSERT_EQ(t.lost_flows, 4, "lost flows");
	free(rows);
	/* idle: the row without an open connection goes, the other stays */
	rows = sd_flowagg_snapshot(a, -1, &n, &t);
	ASSERT_EQ(n, 1, "one row left");
	ASSERT_STREQ(rows[0].scope, "/x/y", "the one with an open connection");
	free(rows);
	f.kind = SM_FLOW_CLOSE;
	f.end_ns = f.open_ns + 1;
	sd_flowagg_add(a, &f, &(struct sockmesh_flow_names){ .scope = "cgroup:/x/y" });
	rows = sd_flowagg_snapshot(a, 3600000, &n, &t);
	ASSERT_EQ(n, 1, "its row");
	ASSERT_EQ(rows[0].closed, 1, "closed after the other row went");
	ASSERT_EQ(rows[0].bucket[0], 1, "1 ns: the first bucket");
	free(rows);
	sd_flowagg_free(a);
}

static CU_TestInfo tests[] = {
	{ "JSON line: every field of a close record", test_json_fields },
	{ "path names, bytes not known yet, IPv6, directions", test_paths_and_unknowns },
	{ "the table", test_table },
	{ "metrics: per scope, deltas, histogram, idle rows", test_agg },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "flows", NULL, NULL, NULL, NULL, tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return sm_cunit_run(suites);
}
