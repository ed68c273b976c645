// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Unit tests of libsockmesh's pure policy parsers (user/lib/policy.c):
 * numbers, CIDRs, istio-style comma lists, policy compilation into what the
 * BPF maps hold, opts .sz handling and error messages. No privileges needed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <CUnit/Basic.h>

#include "internal.h"
#include "sm_test.h"

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif
#ifdef HAVE_ASAN
#include <sanitizer/lsan_interface.h>
#endif

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define F_INC_CIDRS "include_outbound_cidrs"
#define F_EXC_CIDRS "exclude_outbound_cidrs"
#define F_INC_PORTS "include_outbound_ports"
#define F_EXC_PORTS "exclude_outbound_ports"

/* Bad input: -EINVAL, or -ERANGE for a well-formed number that is too big
 * (the CLI maps both to a usage error).
 */
#define BAD_INPUT 1

/* ---- assertion helpers ---------------------------------------------------- */

/* A non-fatal check with a formatted description and the caller's line,
 * printed as the EXPECT_* checks print theirs.
 */
static void __attribute__((format(printf, 3, 4))) check_at(int line, bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sm_test_vcheck(ok, false, __FILE__, line, "test_policy.c", fmt, ap);
	va_end(ap);
}

#define CHECK(cond, ...) check_at(__LINE__, (cond), __VA_ARGS__)

static bool msg_has(const char *needle)
{
	return strstr(sockmesh_errmsg(), needle) != NULL;
}

/* err is the expected error (BAD_INPUT: -EINVAL or -ERANGE), and the message
 * names the field and, if given, the offending value.
 */
static void check_err_at(int line, const char *in, int err, int want, const char *field,
			 const char *value)
{
	bool code_ok = want == BAD_INPUT ? (err == -EINVAL || err == -ERANGE) : err == want;

	check_at(line, code_ok, "'%s': returned %d, want %d", in, err, want);
	if (field)
		check_at(line, msg_has(field), "'%s': errmsg \"%s\" lacks field '%s'", in,
			 sockmesh_errmsg(), field);
	if (value)
		check_at(line, msg_has(value), "'%s': errmsg \"%s\" lacks value '%s'", in,
			 sockmesh_errmsg(), value);
}

#define CHECK_ERR(in, err, want, field, value) check_err_at(__LINE__, in, err, want, field, value)

static const char *cidr_str(const struct sm_cidr *c, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if ((c->family != AF_INET && c->family != AF_INET6) ||
	    !inet_ntop(c->family, c->addr, a, sizeof(a)))
		snprintf(a, sizeof(a), "<family %u>", c->family);
	snprintf(buf, len, "%s/%u", a, c->prefix);
	return buf;
}

/* ---- sm_parse_u32 ---------------------------------------------------------- */

static void check_u32_at(int line, const char *in, __u32 max, __u32 want)
{
	__u32 v = 0xdeadbeef;
	int err = sm_parse_u32("proxy_uid", in, max, &v);

	check_at(line, err == 0 && v == want, "'%s' (max %u): err %d value %u, want %u (%s)", in,
		 max, err, v, want, sockmesh_errmsg());
}

#define CHECK_U32(in, max, want) check_u32_at(__LINE__, in, max, want)

static void check_u32_bad_at(int line, const char *in, __u32 max, int want)
{
	const char *shown = in ? in : "(null)";
	__u32 v = 0xdeadbeef;
	int err = sm_parse_u32("proxy_uid", in, max, &v);

	check_err_at(line, shown, err, want, "proxy_uid", in && *in ? in : NULL);
	check_at(line, v == 0xdeadbeef, "'%s': output written on failure (%u)", shown, v);
}

#define CHECK_U32_BAD(in, max, want) check_u32_bad_at(__LINE__, in, max, want)

/* ---- sm_parse_size --------------------------------------------------------- */

static void check_size_at(int line, const char *in, __u64 want)
{
	__u64 v = 0xdeadbeef;
	int err = sm_parse_size("--splice-budget", in, 1024, 1ull << 32, &v);

	check_at(line, err == 0 && v == want, "'%s': err %d value %llu, want %llu (%s)", in, err,
		 (unsigned long long)v, (unsigned long long)want, sockmesh_errmsg());
}

static void check_size_bad_at(int line, const char *in, int want)
{
	const char *shown = in ? in : "(null)";
	__u64 v = 0xdeadbeef;
	int err = sm_parse_size("--splice-budget", in, 1024, 1ull << 32, &v);

	check_err_at(line, shown, err, want, "--splice-budget", in && *in ? in : NULL);
	check_at(line, v == 0xdeadbeef, "'%s': output written on failure", shown);
}

static void test_size(void)
{
	check_size_at(__LINE__, "1024", 1024);
	check_size_at(__LINE__, "8M", 8ull << 20);
	check_size_at(__LINE__, "8MiB", 8ull << 20);
	check_size_at(__LINE__, "64K", 64ull << 10);
	check_size_at(__LINE__, "4G", 4ull << 30);
	check_size_at(__LINE__, "4GiB", 4ull << 30);
	check_size_at(__LINE__, "4294967296", 1ull << 32);
	check_size_bad_at(__LINE__, NULL, -EINVAL);
	check_size_bad_at(__LINE__, "", -EINVAL);
	check_size_bad_at(__LINE__, "1023", -ERANGE);
	check_size_bad_at(__LINE__, "0", -ERANGE);
	check_size_bad_at(__LINE__, "5G", -ERANGE);
	check_size_bad_at(__LINE__, "4294967297", -ERANGE);
	check_size_bad_at(__LINE__, "99999999999999999999999", -ERANGE);
	check_size_bad_at(__LINE__, "99999999999999999999G", -ERANGE);
	check_size_bad_at(__LINE__, "8m", -EINVAL);
	check_size_bad_at(__LINE__, "8MB", -EINVAL);
	check_size_bad_at(__LINE__, "8Mi", -EINVAL);
	check_size_bad_at(__LINE__, "M", -EINVAL);
	check_size_bad_at(__LINE__, "-8M", -EINVAL);
	check_size_bad_at(__LINE__, " 8M", -EINVAL);
	check_size_bad_at(__LINE__, "8 M", -EINVAL);
	check_size_bad_at(__LINE__, "8MiB ", -EINVAL);
}

static void test_u32_valid(void)
{
	CHECK_U32("0", 0xffffffffu, 0);
	CHECK_U32("1", 0xffffffffu, 1);
	CHECK_U32("1337", 0xffffffffu, 1337);
	CHECK_U32("007", 0xffffffffu, 7);
	CHECK_U32("4294967295", 0xffffffffu, 0xffffffffu);
	CHECK_U32("65535", 65535, 65535);
	CHECK_U32("0", 0, 0);
	CHECK_U32("00000000000000000000000000042", 100, 42);
}

static void test_u32_bounds(void)
{
	CHECK_U32_BAD("65536", 65535, -ERANGE);
	CHECK_U32_BAD("1", 0, -ERANGE);
	CHECK_U32_BAD("4294967296", 0xffffffffu, -ERANGE);
	CHECK_U32_BAD("4294967296", 65535, -ERANGE);
	CHECK_U32_BAD("42949672950", 0xffffffffu, BAD_INPUT);
	CHECK_U32_BAD("99999999999999999999", 0xffffffffu, BAD_INPUT);
	CHECK_U32_BAD("18446744073709551616", 0xffffffffu, BAD_INPUT);
	CHECK_U32_BAD("184467440737095516150", 0xffffffffu, BAD_INPUT);
	CHECK_U32_BAD("1000000000000000000000000000000000000000", 0xffffffffu, BAD_INPUT);
	CHECK(msg_has("out of range") || msg_has("not a number"), "errmsg: %s", sockmesh_errmsg());
	CHECK_U32_BAD("65536", 65535, -ERANGE);
	CHECK(msg_has("65535"), "range errmsg should name the max: %s", sockmesh_errmsg());
}

static void test_u32_malformed(void)
{
	/* Signs, blanks, hex, fractions, exponents, a fullwidth '1'. */
	static const char *const bad[] = { "-1",  "+1",	 " 1",	"1 ", "0x10",
					   "1.0", "1e3", "abc", "8a", "a8",
					   "1,2", "\t1", "1\n", "-0", "\xef\xbc\x91" };

	CHECK_U32_BAD(NULL, 0xffffffffu, -EINVAL);
	CHECK(msg_has("empty"), "NULL: errmsg %s", sockmesh_errmsg());
	CHECK_U32_BAD("", 0xffffffffu, -EINVAL);
	CHECK(msg_has("empty"), "'': errmsg %s", sockmesh_errmsg());
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK_U32_BAD(bad[i], 0xffffffffu, -EINVAL);
}

/* ---- sm_parse_cidr --------------------------------------------------------- */

/* in must parse to want ("net/prefix" as inet_ntop prints it). */
static void check_cidr_at(int line, const char *in, int family, const char *want)
{
	struct sm_cidr c;
	char got[INET6_ADDRSTRLEN + 16];
	int err;

	memset(&c, 0xa5, sizeof(c));
	err = sm_parse_cidr(F_INC_CIDRS, in, &c);
	check_at(line, err == 0, "'%s': returned %d (%s)", in, err, sockmesh_errmsg());
	if (err)
		return;
	cidr_str(&c, got, sizeof(got));
	check_at(line, c.family == family, "'%s': family %u, want %d", in, c.family, family);
	check_at(line, strcmp(got, want) == 0, "'%s' parsed as %s, want %s", in, got, want);
	if (family == AF_INET) {
		static const __u8 zero[12];

		check_at(line, memcmp(c.addr + 4, zero, sizeof(zero)) == 0,
			 "'%s': IPv4 address bytes 4..15 not zero", in);
	}
}

#define CHECK_CIDR(in, family, want) check_cidr_at(__LINE__, in, family, want)

static void check_cidr_bad_at(int line, const char *in)
{
	struct sm_cidr c;
	int err = sm_parse_cidr(F_EXC_CIDRS, in, &c);

	check_err_at(line, in, err, -EINVAL, F_EXC_CIDRS, *in ? in : NULL);
}

#define CHECK_CIDR_BAD(in) check_cidr_bad_at(__LINE__, in)

static void test_cidr_ipv4(void)
{
	CHECK_CIDR("10.0.0.0/8", AF_INET, "10.0.0.0/8");
	CHECK_CIDR("10.1.2.3/8", AF_INET, "10.0.0.0/8");
	CHECK_CIDR("172.31.255.255/12", AF_INET, "172.16.0.0/12");
	CHECK_CIDR("192.168.1.255/25", AF_INET, "192.168.1.128/25");
	CHECK_CIDR("192.168.1.127/25", AF_INET, "192.168.1.0/25");
	CHECK_CIDR("10.255.255.255/31", AF_INET, "10.255.255.254/31");
	CHECK_CIDR("1.2.3.4/32", AF_INET, "1.2.3.4/32");
	CHECK_CIDR("1.2.3.4", AF_INET, "1.2.3.4/32");
	CHECK_CIDR("169.254.169.254", AF_INET, "169.254.169.254/32");
	CHECK_CIDR("0.0.0.0/0", AF_INET, "0.0.0.0/0");
	CHECK_CIDR("255.255.255.255/0", AF_INET, "0.0.0.0/0");
	CHECK_CIDR("255.255.255.255/1", AF_INET, "128.0.0.0/1");
	CHECK_CIDR("255.255.255.255/9", AF_INET, "255.128.0.0/9");
	CHECK_CIDR("255.255.255.255/32", AF_INET, "255.255.255.255/32");
	CHECK_CIDR("10.0.0.0/08", AF_INET, "10.0.0.0/8");
}

static void test_cidr_ipv6(void)
{
	CHECK_CIDR("fd00::/8", AF_INET6, "fd00::/8");
	CHECK_CIDR("fd12:3456::1/8", AF_INET6, "fd00::/8");
	CHECK_CIDR("2001:db8:ffff:ffff::/33", AF_INET6, "2001:db8:8000::/33");
	CHECK_CIDR("2001:db8::ff/127", AF_INET6, "2001:db8::fe/127");
	CHECK_CIDR("2001:db8::1", AF_INET6, "2001:db8::1/128");
	CHECK_CIDR("::1", AF_INET6, "::1/128");
	CHECK_CIDR("::1/128", AF_INET6, "::1/128");
	CHECK_CIDR("::/0", AF_INET6, "::/0");
	CHECK_CIDR("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/0", AF_INET6, "::/0");
	CHECK_CIDR("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/1", AF_INET6, "8000::/1");
	CHECK_CIDR("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/64", AF_INET6,
		   "ffff:ffff:ffff:ffff::/64");
	CHECK_CIDR("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/127", AF_INET6,
		   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127");
	CHECK_CIDR("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128", AF_INET6,
		   "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128");
	CHECK_CIDR("FD00::ABCD/16", AF_INET6, "fd00::/16");
	/* The longest textual IPv6 address still fits the parser's buffer. */
	CHECK_CIDR("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/96", AF_INET6,
		   "ffff:ffff:ffff:ffff:ffff:ffff::/96");
	/* v4-mapped networks are IPv4 networks: the data path keys them so */
	CHECK_CIDR("::ffff:10.1.0.0/112", AF_INET, "10.1.0.0/16");
	CHECK_CIDR("::ffff:10.1.2.3", AF_INET, "10.1.2.3/32");
	CHECK_CIDR("::ffff:0.0.0.0/96", AF_INET, "0.0.0.0/0");
	CHECK_CIDR("::ffff:0:0/95", AF_INET6, "::fffe:0:0/95");
}

static void test_cidr_bad(void)
{
	static const char *const bad[] = {
		"10.0.0.0/33",
		"1.2.3.4/99",
		"::/129",
		"fd00::/200",
		"1.2.3",
		"1.2.3.4/",
		"::/",
		"/8",
		"/",
		"1.2.3.4/-1",
		"1.2.3.4/+8",
		"1.2.3.4/ 8",
		"1.2.3.4/8 ",
		"1.2.3.4 /8",
		" 1.2.3.4/8",
		"1.2.3.4/0x8",
		"1.2.3.4/8/8",
		"1.2.3.4/8a",
		"1.2.3.4/65536",
		"1.2.3.4/4294967296",
		"1.2.3.4/99999999999999999999",
		"1.2.3.256",
		"1.2.3.4.5",
		"01.2.3.4",
		"garbage",
		"garbage/8",
		"*",
		"10.0.0.0/8,10.1.0.0/16",
		"[::1]/128",
		"fe80::1%eth0/64",
		":::/0",
		"1::2::3/64",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128",
		"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255.1/96",
	};

	CHECK_CIDR_BAD("");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK_CIDR_BAD(bad[i]);
}

/* ---- lists ---------------------------------------------------------------- */

static void check_cidr_list_at(int line, const char *in, bool allow_star, bool star,
			       const char *const *want, size_t n)
{
	struct sm_list l;
	int err;

	memset(&l, 0xa5, sizeof(l));
	err = sm_parse_cidr_list(F_INC_CIDRS, in, allow_star, &l);
	check_at(line, err == 0, "'%s': returned %d (%s)", in, err, sockmesh_errmsg());
	if (err)
		return;
	check_at(line, l.star == star, "'%s': star %d, want %d", in, l.star, star);
	check_at(line, l.n == n, "'%s': %zu items, want %zu", in, l.n, n);
	for (size_t i = 0; i < n && i < l.n; i++) {
		char got[INET6_ADDRSTRLEN + 16];

		cidr_str((struct sm_cidr *)l.v + i, got, sizeof(got));
		check_at(line, strcmp(got, want[i]) == 0, "'%s': item %zu is %s, want %s", in, i,
			 got, want[i]);
	}
	sm_list_free(&l);
	check_at(line, !l.v && !l.n && !l.star, "sm_list_free left state behind");
}

#define CHECK_CIDR_LIST(in, allow_star, star, ...)                                               \
	check_cidr_list_at(__LINE__, in, allow_star, star, (const char *const[]){ __VA_ARGS__ }, \
			   ARRAY_SIZE(((const char *const[]){ __VA_ARGS__ })))
#define CHECK_CIDR_LIST_EMPTY(in, allow_star, star) \
	check_cidr_list_at(__LINE__, in, allow_star, star, NULL, 0)

static void check_port_list_at(int line, const char *field, const char *in, bool allow_star,
			       bool star, const __u16 *want, size_t n)
{
	struct sm_list l;
	int err;

	memset(&l, 0xa5, sizeof(l));
	err = sm_parse_port_list(field, in, allow_star, &l);
	check_at(line, err == 0, "'%s': returned %d (%s)", in, err, sockmesh_errmsg());
	if (err)
		return;
	check_at(line, l.star == star, "'%s': star %d, want %d", in, l.star, star);
	check_at(line, l.n == n, "'%s': %zu items, want %zu", in, l.n, n);
	for (size_t i = 0; i < n && i < l.n; i++)
		check_at(line, ((__u16 *)l.v)[i] == want[i], "'%s': item %zu is %u, want %u", in, i,
			 ((__u16 *)l.v)[i], want[i]);
	sm_list_free(&l);
}

#define CHECK_PORTS(in, allow_star, star, ...)                                                     \
	check_port_list_at(__LINE__, allow_star ? F_INC_PORTS : F_EXC_PORTS, in, allow_star, star, \
			   (const __u16[]){ __VA_ARGS__ },                                         \
			   ARRAY_SIZE(((const __u16[]){ __VA_ARGS__ })))
#define CHECK_PORTS_EMPTY(in, allow_star, star)                                                    \
	check_port_list_at(__LINE__, allow_star ? F_INC_PORTS : F_EXC_PORTS, in, allow_star, star, \
			   NULL, 0)

/* A failed list parse returns the error, names field and value, and leaves
 * an empty list with nothing to free.
 */
static void check_list_bad_at(int line, bool ports, bool allow_star, const char *in, int want,
			      const char *value)
{
	const char *field = ports ? (allow_star ? F_INC_PORTS : F_EXC_PORTS) :
				    (allow_star ? F_INC_CIDRS : F_EXC_CIDRS);
	struct sm_list l;
	int err;

	memset(&l, 0xa5, sizeof(l));
	if (ports)
		err = sm_parse_port_list(field, in, allow_star, &l);
	else
		err = sm_parse_cidr_list(field, in, allow_star, &l);
	check_err_at(line, in, err, want, field, value);
	check_at(line, !l.v && !l.n && !l.star, "'%s': list not empty after failure", in);
	if (!err)
		sm_list_free(&l);
}

#define CHECK_PORTS_BAD(in, allow_star, want, value) \
	check_list_bad_at(__LINE__, true, allow_star, in, want, value)
#define CHECK_CIDRS_BAD(in, allow_star, want, value) \
	check_list_bad_at(__LINE__, false, allow_star, in, want, value)

static void test_cidr_list(void)
{
	CHECK_CIDR_LIST("10.0.0.0/8", false, false, "10.0.0.0/8");
	CHECK_CIDR_LIST("10.0.0.0/8,fd00::/8", false, false, "10.0.0.0/8", "fd00::/8");
	CHECK_CIDR_LIST(" 10.1.2.3/8 , 192.168.0.1/16 ", false, false, "10.0.0.0/8",
			"192.168.0.0/16");
	CHECK_CIDR_LIST("\t169.254.169.254\t,\t::1\t", false, false, "169.254.169.254/32",
			"::1/128");
	CHECK_CIDR_LIST("10.0.0.0/8,10.0.0.0/8", false, false, "10.0.0.0/8", "10.0.0.0/8");
	CHECK_CIDR_LIST_EMPTY(NULL, false, false);
	CHECK_CIDR_LIST_EMPTY("", false, false);
	CHECK_CIDR_LIST_EMPTY("  \t ", false, false);
	CHECK_CIDR_LIST_EMPTY("*", true, true);
	CHECK_CIDR_LIST_EMPTY(" * ", true, true);

	CHECK_CIDRS_BAD("*", false, -EINVAL, "'*'");
	CHECK(msg_has("include"), "'*' in exclude: errmsg %s", sockmesh_errmsg());
	CHECK_CIDRS_BAD("10.0.0.0/8,*", false, -EINVAL, "'*'");
	CHECK_CIDRS_BAD("10.0.0.0/8,bogus", true, -EINVAL, "bogus");
	CHECK_CIDRS_BAD("10.0.0.0/8,10.0.0.0/33", false, -EINVAL, "10.0.0.0/33");
	CHECK_CIDRS_BAD("10.0.0.0/8,,fd00::/8", false, -EINVAL, "10.0.0.0/8,,fd00::/8");
	CHECK(msg_has("empty item"), "errmsg %s", sockmesh_errmsg());
	CHECK_CIDRS_BAD("10.0.0.0/8,", true, -EINVAL, "10.0.0.0/8,");
	CHECK_CIDRS_BAD("10.0.0.0/8, ", true, -EINVAL, "10.0.0.0/8, ");
	CHECK_CIDRS_BAD("10.0.0.0/8, ,::/0", true, -EINVAL, "10.0.0.0/8, ,::/0");
	CHECK_CIDRS_BAD(",", true, -EINVAL, "','");
	CHECK_CIDRS_BAD(" , ", false, -EINVAL, "' , '");
	CHECK_CIDRS_BAD("*,", true, -EINVAL, "'*,'");
	CHECK_CIDRS_BAD("10.0.0.0/8;fd00::/8", false, -EINVAL, "10.0.0.0/8;fd00::/8");
	CHECK_CIDRS_BAD("10.0.0.0/8 fd00::/8", false, -EINVAL, "10.0.0.0/8 fd00::/8");
	CHECK_CIDRS_BAD("*,10.0.0.0/8", true, -EINVAL, "'*,10.0.0.0/8'");
	CHECK(msg_has("must stand alone"), "errmsg %s", sockmesh_errmsg());
	CHECK_CIDRS_BAD("10.0.0.0/8,*", true, -EINVAL, "'10.0.0.0/8,*'");
}

static void test_port_list(void)
{
	CHECK_PORTS("80", false, false, 80);
	CHECK_PORTS("80,443", false, false, 80, 443);
	CHECK_PORTS(" 80 , 443 ", true, false, 80, 443);
	CHECK_PORTS("\t80\t,\t443\t", true, false, 80, 443);
	CHECK_PORTS("1,65535", false, false, 1, 65535);
	CHECK_PORTS("0080", false, false, 80);
	CHECK_PORTS("15090,15021,15020", false, false, 15090, 15021, 15020);
	CHECK_PORTS_EMPTY(NULL, false, false);
	CHECK_PORTS_EMPTY(NULL, true, false);
	CHECK_PORTS_EMPTY("", false, false);
	CHECK_PORTS_EMPTY("   ", false, false);
	CHECK_PORTS_EMPTY("*", true, true);
	CHECK_PORTS_EMPTY("  *\t", true, true);

	CHECK_PORTS_BAD("0", true, -EINVAL, "'0'");
	CHECK(msg_has("1-65535"), "errmsg %s", sockmesh_errmsg());
	CHECK_PORTS_BAD("80,0", false, -EINVAL, "'0'");
	CHECK_PORTS_BAD("65536", true, BAD_INPUT, "65536");
	CHECK_PORTS_BAD("70000", false, BAD_INPUT, "70000");
	CHECK_PORTS_BAD("80,70000", true, BAD_INPUT, "70000");
	CHECK_PORTS_BAD("4294967296", true, BAD_INPUT, "4294967296");
	CHECK_PORTS_BAD("99999999999999999999", false, BAD_INPUT, "99999999999999999999");
	CHECK_PORTS_BAD("8a", true, -EINVAL, "8a");
	CHECK_PORTS_BAD("-1", true, -EINVAL, "-1");
	CHECK_PORTS_BAD("+80", true, -EINVAL, "+80");
	CHECK_PORTS_BAD("0x50", true, -EINVAL, "0x50");
	CHECK_PORTS_BAD("80 443", true, -EINVAL, "80 443");
	CHECK_PORTS_BAD("80;443", true, -EINVAL, "80;443");
	CHECK_PORTS_BAD("80-90", true, -EINVAL, "80-90");
	CHECK_PORTS_BAD("http", false, -EINVAL, "http");
	CHECK_PORTS_BAD("a,,b", true, -EINVAL, NULL);
	CHECK_PORTS_BAD("80,,443", false, -EINVAL, "80,,443");
	CHECK(msg_has("empty item"), "errmsg %s", sockmesh_errmsg());
	CHECK_PORTS_BAD("80,", true, -EINVAL, "'80,'");
	CHECK(msg_has("empty item"), "errmsg %s", sockmesh_errmsg());
	CHECK_PORTS_BAD("80,\t", false, -EINVAL, "80,\t");
	CHECK_PORTS_BAD("80, ,443", false, -EINVAL, "80, ,443");
	CHECK_PORTS_BAD(",", false, -EINVAL, "','");
	/* a leading empty item is as wrong as a trailing one */
	CHECK_PORTS_BAD(",80", true, -EINVAL, "',80'");
	CHECK_PORTS_BAD(" ,80", false, -EINVAL, "' ,80'");
	/* every blank counts as blank, newline and CR too */
	CHECK_PORTS_BAD("80,\n", true, -EINVAL, NULL);
	CHECK_PORTS_BAD("80,\r", false, -EINVAL, NULL);
	CHECK_PORTS_BAD(",,", true, -EINVAL, "',,'");

	/* '*' is only for include lists. */
	CHECK_PORTS_BAD("*", false, -EINVAL, "'*'");
	CHECK(msg_has("only allowed in include"), "errmsg %s", sockmesh_errmsg());
	CHECK_PORTS_BAD("80,*", false, -EINVAL, "'*'");
	CHECK_PORTS_BAD(" * ", false, -EINVAL, "'*'");
	CHECK_PORTS_BAD("**", true, -EINVAL, "**");
	/* and where it is allowed, it stands alone */
	CHECK_PORTS_BAD("*,80", true, -EINVAL, "'*,80'");
	CHECK(msg_has("must stand alone"), "errmsg %s", sockmesh_errmsg());
	CHECK_PORTS_BAD("80,*", true, -EINVAL, "'80,*'");
	CHECK_PORTS_BAD("*,*", true, -EINVAL, "'*,*'");
	CHECK_PORTS_BAD(" * ,\t80", true, -EINVAL, NULL);
}

/* Every port, in one list: no truncation, order kept. */
static void test_port_list_all(void)
{
	size_t len = 65535 * 6 + 1, off = 0, bad = 0;
	char *s = malloc(len);
	struct sm_list l;
	int err;

	ASSERT_NOT_NULL(s, "s");
	for (unsigned int p = 1; p <= 65535; p++)
		off += (size_t)snprintf(s + off, len - off, "%s%u", p > 1 ? "," : "", p);
	err = sm_parse_port_list(F_INC_PORTS, s, false, &l);
	EXPECT_OK(err, "sm_parse_port_list()");
	if (!err) {
		EXPECT_EQ(l.n, 65535, "l.n");
		for (size_t i = 0; i < l.n; i++)
			bad += ((__u16 *)l.v)[i] != i + 1;
		EXPECT_EQ(bad, 0, "bad");
		sm_list_free(&l);
	}

	/* A trailing empty item in a long list is still caught and named. */
	strcat(s, ",");
	err = sm_parse_port_list(F_EXC_PORTS, s, false, &l);
	EXPECT_ERR(err, -EINVAL, "sm_parse_port_list()");
	CHECK(strncmp(sockmesh_errmsg(), F_EXC_PORTS, strlen(F_EXC_PORTS)) == 0, "errmsg %.80s",
	      sockmesh_errmsg());
	EXPECT_NULL(l.v, "l.v");
	free(s);
}

/* ---- sm_policy_compile ------------------------------------------------------ */

static int compile(const struct sockmesh_policy *pol, struct sm_compiled *c)
{
	memset(c, 0xa5, sizeof(*c));
	return sm_policy_compile(pol, c);
}

static void test_compile_inbound(void)
{
	SOCKMESH_OPTS(sockmesh_policy, pol);
	struct sm_compiled c;
	int err;

	/* default: every inbound port, the istio inbound port */
	err = compile(&pol, &c);
	ASSERT_OK(err, "compile()");
	EXPECT_EQ(c.pol.inbound_port, 15006, "c.pol.inbound_port");
	EXPECT_EQ(c.pol.flags & (SM_POL_INBOUND | SM_POL_INBOUND_INCLUDE_PORTS |
				 SM_POL_INBOUND_EXCLUDE_PORTS),
		  SM_POL_INBOUND, "c.pol.flags & inbound bits");
	sm_compiled_free(&c);

	/* "" turns inbound capture off */
	pol.include_inbound_ports = "";
	err = compile(&pol, &c);
	ASSERT_OK(err, "compile()");
	EXPECT_EQ(c.pol.flags & SM_POL_INBOUND, 0, "c.pol.flags & SM_POL_INBOUND");
	sm_compiled_free(&c);

	pol.include_inbound_ports = "80,8080";
	pol.exclude_inbound_ports = "15090";
	pol.inbound_port = 16006;
	pol.pod_ips = "10.0.0.5, fd00::5";
	err = compile(&pol, &c);
	ASSERT_OK(err, "compile()");
	EXPECT_EQ(c.pol.flags & (SM_POL_INBOUND | SM_POL_INBOUND_INCLUDE_PORTS |
				 SM_POL_INBOUND_EXCLUDE_PORTS),
		  SM_POL_INBOUND | SM_POL_INBOUND_INCLUDE_PORTS | SM_POL_INBOUND_EXCLUDE_PORTS,
		  "c.pol.flags & inbound bits");
	EXPECT_EQ(c.pol.inbound_port, 16006, "c.pol.inbound_port");
	EXPECT_EQ(c.inc_in_ports.n, 2, "c.inc_in_ports.n");
	EXPECT_EQ(c.exc_in_ports.n, 1, "c.exc_in_ports.n");
	EXPECT_EQ(c.pod_ips.n, 2, "c.pod_ips.n");
	sm_compiled_free(&c);

	pol.include_inbound_ports = "80,70000";
	err = compile(&pol, &c);
	CHECK_ERR("80,70000", err, BAD_INPUT, "include_inbound_ports", "70000");
	pol.include_inbound_ports = NULL;
	pol.exclude_inbound_ports = "*";
	err = compile(&pol, &c);
	CHECK_ERR("*", err, -EINVAL, "exclude_inbound_ports", NULL);
	pol.exclude_inbound_ports = NULL;
	pol.pod_ips = "10.0.0.0/24";
	err = compile(&pol, &c);
	CHECK_ERR("10.0.0.0/24", err, -EINVAL, "pod_ips", "10.0.0.0/24");
	pol.pod_ips = "10.0.0.300";
	err = compile(&pol, &c);
	CHECK_ERR("10.0.0.300", err, -EINVAL, "pod_ips", "10.0.0.300");
}

static void test_compile_defaults(void)
{
	SOCKMESH_OPTS(sockmesh_policy, pol);
	struct sm_compiled c;

	EXPECT_EQ(SM_DEFAULT_PROXY_PORT, 15001, "SM_DEFAULT_PROXY_PORT");
	EXPECT_EQ(SM_DEFAULT_PROXY_UID, 1337, "SM_DEFAULT_PROXY_UID");
	ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
	EXPECT_EQ(c.pol.proxy_port, 15001, "c.pol.proxy_port");
	EXPECT_EQ(c.pol.proxy_uid, 1337, "c.pol.proxy_uid");
	EXPECT_EQ(c.pol.proxy_gid, 0, "c.pol.proxy_gid");
	EXPECT_EQ(c.pol.proxy_mark, 0, "c.pol.proxy_mark");
	EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, SM_POL_SPLICE, "c.pol.flags & ~SM_POL_INBOUND");
	/* Left for enroll to fill; padding is zero (the map value is hashed). */
	EXPECT_EQ(c.pol.scope_idx, 0, "c.pol.scope_idx");
	EXPECT_EQ(c.pol.rules_id, 0, "c.pol.rules_id");
	EXPECT_EQ(c.pol.attach_cgroup_id, 0, "c.pol.attach_cgroup_id");
	EXPECT_EQ(c.pol.inbound_port, SM_DEFAULT_INBOUND_PORT, "c.pol.inbound_port");
	EXPECT_EQ(c.pol.pad2, 0, "c.pol.pad2");
	/* NULL include lists mean '*'; NULL exclude lists are empty. */
	EXPECT_TRUE(c.inc_cidrs.star, "c.inc_cidrs.star");
	EXPECT_EQ(c.inc_cidrs.n, 0, "c.inc_cidrs.n");
	EXPECT_TRUE(c.inc_ports.star, "c.inc_ports.star");
	EXPECT_EQ(c.inc_ports.n, 0, "c.inc_ports.n");
	EXPECT_FALSE(c.exc_cidrs.star, "c.exc_cidrs.star");
	EXPECT_EQ(c.exc_cidrs.n, 0, "c.exc_cidrs.n");
	EXPECT_FALSE(c.exc_ports.star, "c.exc_ports.star");
	EXPECT_EQ(c.exc_ports.n, 0, "c.exc_ports.n");
	sm_compiled_free(&c);
	EXPECT_NULL(c.inc_cidrs.v, "c.inc_cidrs.v");
	EXPECT_NULL(c.exc_cidrs.v, "c.exc_cidrs.v");
	EXPECT_NULL(c.inc_ports.v, "c.inc_ports.v");
	EXPECT_NULL(c.exc_ports.v, "c.exc_ports.v");
}

static void test_compile_proxy(void)
{
	struct sm_compiled c;

	{
		SOCKMESH_OPTS(sockmesh_policy, pol, .proxy_port = 15006, .has_proxy_uid = true,
			      .proxy_uid = 0);

		ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
		EXPECT_EQ(c.pol.proxy_port, 15006, "c.pol.proxy_port");
		/* uid 0 is a valid explicit choice */
		EXPECT_EQ(c.pol.proxy_uid, 0, "c.pol.proxy_uid");
		EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, SM_POL_SPLICE,
			  "c.pol.flags & ~SM_POL_INBOUND");
		sm_compiled_free(&c);
	}
	{
		/* Values without their has_ flag are ignored. */
		SOCKMESH_OPTS(sockmesh_policy, pol, .proxy_uid = 42, .proxy_gid = 43,
			      .proxy_mark = 44);

		ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
		EXPECT_EQ(c.pol.proxy_uid, 1337, "c.pol.proxy_uid");
		EXPECT_EQ(c.pol.proxy_gid, 0, "c.pol.proxy_gid");
		EXPECT_EQ(c.pol.proxy_mark, 0, "c.pol.proxy_mark");
		EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, SM_POL_SPLICE,
			  "c.pol.flags & ~SM_POL_INBOUND");
		sm_compiled_free(&c);
	}
	{
		SOCKMESH_OPTS(sockmesh_policy, pol, .has_proxy_gid = true, .proxy_gid = 0);

		ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
		EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, SM_POL_SPLICE | SM_POL_PROXY_GID,
			  "c.pol.flags & ~SM_POL_INBOUND");
		EXPECT_EQ(c.pol.proxy_gid, 0, "c.pol.proxy_gid");
		sm_compiled_free(&c);
	}
	{
		SOCKMESH_OPTS(sockmesh_policy, pol, .has_proxy_gid = true, .proxy_gid = 1337,
			      .has_proxy_mark = true, .proxy_mark = 0x539);

		ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
		EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND,
			  SM_POL_SPLICE | SM_POL_PROXY_GID | SM_POL_PROXY_MARK,
			  "c.pol.flags & ~SM_POL_INBOUND");
		EXPECT_EQ(c.pol.proxy_gid, 1337, "c.pol.proxy_gid");
		EXPECT_EQ(c.pol.proxy_mark, 0x539, "c.pol.proxy_mark");
		EXPECT_EQ(c.pol.proxy_uid, 1337, "c.pol.proxy_uid");
		sm_compiled_free(&c);
	}
	{
		/* mark 0 is every unmarked socket: set through the struct as
		 * through the schema's text, it would turn capture off
		 */
		SOCKMESH_OPTS(sockmesh_policy, pol, .has_proxy_mark = true, .proxy_mark = 0);

		EXPECT_ERR(compile(&pol, &c), -ERANGE, "proxy_mark 0");
		CHECK(msg_has("proxy_mark: '0' is out of range (1..4294967295)"), "errmsg %s",
		      sockmesh_errmsg());
		EXPECT_ERR(sockmesh_policy__validate(&pol), -ERANGE, "validate proxy_mark 0");
	}
	{
		SOCKMESH_OPTS(sockmesh_policy, pol, .has_proxy_mark = true,
			      .proxy_mark = 0xffffffffu, .has_proxy_uid = true,
			      .proxy_uid = 0xfffffffeu, .proxy_port = 65535);

		ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
		EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, SM_POL_SPLICE | SM_POL_PROXY_MARK,
			  "c.pol.flags & ~SM_POL_INBOUND");
		EXPECT_EQ(c.pol.proxy_mark, 0xffffffffu, "c.pol.proxy_mark");
		EXPECT_EQ(c.pol.proxy_uid, 0xfffffffeu, "c.pol.proxy_uid");
		EXPECT_EQ(c.pol.proxy_port, 65535, "c.pol.proxy_port");
		sm_compiled_free(&c);
	}
}

static void test_compile_include(void)
{
	const __u32 inc_cidr = SM_POL_INCLUDE_CIDR4 | SM_POL_INCLUDE_CIDR6;
	struct sm_compiled c;

	{
		SOCKMESH_OPTS(sockmesh_policy, pol, .include_outbound_cidrs = "*",
			      .include_outbound_ports = "*");

		ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
		EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, SM_POL_SPLICE,
			  "c.pol.flags & ~SM_POL_INBOUND");
		EXPECT_TRUE(c.inc_cidrs.star, "c.inc_cidrs.star");
		EXPECT_TRUE(c.inc_ports.star, "c.inc_ports.star");
		sm_compiled_free(&c);
	}
	{
		SOCKMESH_OPTS(sockmesh_policy, pol,
			      .include_outbound_cidrs = "10.0.0.0/8, fd00::/8");

		ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
		EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, SM_POL_SPLICE | inc_cidr,
			  "c.pol.flags & ~SM_POL_INBOUND");
		EXPECT_FALSE(c.inc_cidrs.star, "c.inc_cidrs.star");
		EXPECT_EQ(c.inc_cidrs.n, 2, "c.inc_cidrs.n");
		EXPECT_TRUE(c.inc_ports.star, "c.inc_ports.star");
		sm_compiled_free(&c);
	}
	{
		/* As istio: an IPv4-only include list captures no IPv6, so both
		 * families are restricted.
		 */
		SOCKMESH_OPTS(sockmesh_policy, pol, .include_outbound_cidrs = "10.1.2.3/8");

		ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
		EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, SM_POL_SPLICE | inc_cidr,
			  "c.pol.flags & ~SM_POL_INBOUND");
		ASSERT_EQ(c.inc_cidrs.n, 1, "c.inc_cidrs.n");
		EXPECT_EQ(((struct sm_cidr *)c.inc_cidrs.v)[0].family, AF_INET,
			  "((struct sm_cidr *)c.inc_cidrs.v)[0].family");
		EXPECT_EQ(((struct sm_cidr *)c.inc_cidrs.v)[0].addr[1], 0,
			  "((struct sm_cidr *)c.inc_cidrs.v)[0].addr[1]");
		sm_compiled_free(&c);
	}
	{
		/* "" is an empty list (not '*'): no port is included. */
		SOCKMESH_OPTS(sockmesh_policy, pol, .include_outbound_ports = "");

		ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
		EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, SM_POL_SPLICE | SM_POL_INCLUDE_PORTS,
			  "c.pol.flags & ~SM_POL_INBOUND");
		EXPECT_FALSE(c.inc_ports.star, "c.inc_ports.star");
		EXPECT_EQ(c.inc_ports.n, 0, "c.inc_ports.n");
		sm_compiled_free(&c);
	}
	{
		/* An include list of no destination compiles to no outbound
		 * capture (istio's annotation documents it so; the option and
		 * config setters refuse it: test_schema), blank or not.
		 */
		static const char *const empty[] = { "", " \t " };

		for (size_t i = 0; i < ARRAY_SIZE(empty); i++) {
			SOCKMESH_OPTS(sockmesh_policy, pol, .include_outbound_cidrs = empty[i]);

			EXPECT_OK(compile(&pol, &c), "empty include_outbound_cidrs");
			EXPECT_EQ(c.inc_cidrs.n, 0, "c.inc_cidrs.n");
			EXPECT_FALSE(c.inc_cidrs.star, "c.inc_cidrs.star");
			sm_compiled_free(&c);
		}
	}
	{
		/* '*' stands alone: "*,80" is "*" or a mistake, never both. */
		static const char *const bad[] = { "*,80", "80,*", "*,*", " * , 443" };

		for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
			SOCKMESH_OPTS(sockmesh_policy, pol, .include_outbound_ports = bad[i]);

			EXPECT_ERR(compile(&pol, &c), -EINVAL, bad[i]);
			CHECK(msg_has(F_INC_PORTS) && msg_has(bad[i]) && msg_has("stand alone"),
			      "'%s': errmsg %s", bad[i], sockmesh_errmsg());
		}
		for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
			SOCKMESH_OPTS(sockmesh_policy, pol, .include_inbound_ports = bad[i]);

			EXPECT_ERR(compile(&pol, &c), -EINVAL, bad[i]);
			CHECK(msg_has("include_inbound_ports") && msg_has("stand alone"),
			      "'%s': errmsg %s", bad[i], sockmesh_errmsg());
		}
		{
			SOCKMESH_OPTS(sockmesh_policy, pol,
				      .include_outbound_cidrs = "10.0.0.0/8,*");

			EXPECT_ERR(compile(&pol, &c), -EINVAL, "10.0.0.0/8,*");
			CHECK(msg_has(F_INC_CIDRS) && msg_has("stand alone"), "errmsg %s",
			      sockmesh_errmsg());
		}
	}
	{
		SOCKMESH_OPTS(sockmesh_policy, pol, .include_outbound_ports = "80,443");

		ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
		EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, SM_POL_SPLICE | SM_POL_INCLUDE_PORTS,
			  "c.pol.flags & ~SM_POL_INBOUND");
		EXPECT_TRUE(c.inc_cidrs.star, "c.inc_cidrs.star");
		ASSERT_EQ(c.inc_ports.n, 2, "c.inc_ports.n");
		EXPECT_EQ(((__u16 *)c.inc_ports.v)[0], 80, "((__u16 *)c.inc_ports.v)[0]");
		EXPECT_EQ(((__u16 *)c.inc_ports.v)[1], 443, "((__u16 *)c.inc_ports.v)[1]");
		sm_compiled_free(&c);
	}
}

static void test_compile_exclude(void)
{
	struct sm_compiled c;

	{
		SOCKMESH_OPTS(sockmesh_policy, pol,
			      .exclude_outbound_cidrs = "169.254.169.254/32,fe80::/10");

		ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
		EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, SM_POL_SPLICE | SM_POL_EXCLUDE_CIDRS,
			  "c.pol.flags & ~SM_POL_INBOUND");
		EXPECT_EQ(c.exc_cidrs.n, 2, "c.exc_cidrs.n");
		EXPECT_FALSE(c.exc_cidrs.star, "c.exc_cidrs.star");
		sm_compiled_free(&c);
	}
	{
		SOCKMESH_OPTS(sockmesh_policy, pol, .exclude_outbound_ports = "15090, 15021");

		ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
		EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, SM_POL_SPLICE | SM_POL_EXCLUDE_PORTS,
			  "c.pol.flags & ~SM_POL_INBOUND");
		ASSERT_EQ(c.exc_ports.n, 2, "c.exc_ports.n");
		EXPECT_EQ(((__u16 *)c.exc_ports.v)[0], 15090, "((__u16 *)c.exc_ports.v)[0]");
		EXPECT_EQ(((__u16 *)c.exc_ports.v)[1], 15021, "((__u16 *)c.exc_ports.v)[1]");
		sm_compiled_free(&c);
	}
	{
		/* Empty exclude lists set no flag. */
		SOCKMESH_OPTS(sockmesh_policy, pol, .exclude_outbound_cidrs = "",
			      .exclude_outbound_ports = " \t ");

		ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
		EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, SM_POL_SPLICE,
			  "c.pol.flags & ~SM_POL_INBOUND");
		sm_compiled_free(&c);
	}
	{
		/* Everything at once, and no_splice. */
		SOCKMESH_OPTS(sockmesh_policy, pol, .include_outbound_cidrs = "0.0.0.0/0,::/0",
			      .exclude_outbound_cidrs = "10.0.0.1", .include_outbound_ports = "1",
			      .exclude_outbound_ports = "2", .has_proxy_gid = true,
			      .has_proxy_mark = true, .proxy_mark = 1, .no_splice = true);

		ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
		EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND,
			  SM_POL_PROXY_GID | SM_POL_PROXY_MARK | SM_POL_INCLUDE_PORTS |
				  SM_POL_INCLUDE_CIDR4 | SM_POL_INCLUDE_CIDR6 |
				  SM_POL_EXCLUDE_PORTS | SM_POL_EXCLUDE_CIDRS,
			  "c.pol.flags & ~SM_POL_INBOUND");
		sm_compiled_free(&c);
	}
}

/* An empty resolver list would silently mean resolv.conf: refused. */
static void test_compile_dns_servers_empty(void)
{
	static const char *const empty[] = { "", "  " };
	struct sm_compiled c;

	for (size_t i = 0; i < ARRAY_SIZE(empty); i++) {
		SOCKMESH_OPTS(sockmesh_policy, pol, .redirect_dns = true, .dns_servers = empty[i]);

		EXPECT_ERR(compile(&pol, &c), -EINVAL, "empty dns_servers");
		CHECK(msg_has("dns_servers") && msg_has("empty list") && msg_has("resolv.conf"),
		      "errmsg %s", sockmesh_errmsg());
		EXPECT_ERR(sockmesh_policy__validate(&pol), -EINVAL, "validate");
	}
	{
		SOCKMESH_OPTS(sockmesh_policy, pol, .redirect_dns = true,
			      .dns_servers = "10.96.0.10");

		ASSERT_OK(compile(&pol, &c), "one resolver");
		EXPECT_EQ(c.dns_servers.n, 1, "c.dns_servers.n");
		sm_compiled_free(&c);
	}
}

/* The netns-only fields (SOCKMESH_FIELD_NETNS_ONLY) on a cgroup scope. */
static void test_check_scope(void)
{
	static const struct {
		enum sockmesh_field f;
		const char *text, *named;
	} cases[] = {
		{ SOCKMESH_F_INBOUND_PORT, "15006", "inbound_port: '15006'" },
		{ SOCKMESH_F_POD_IPS, "10.0.0.1", "pod_ips: '10.0.0.1'" },
		{ SOCKMESH_F_INCLUDE_INBOUND_PORTS, "8080", "include_inbound_ports: '8080'" },
		{ SOCKMESH_F_EXCLUDE_INBOUND_PORTS, "9090", "exclude_inbound_ports: '9090'" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		SOCKMESH_OPTS(sockmesh_policy, pol);

		ASSERT_OK(sockmesh_policy__set(&pol, cases[i].f, cases[i].text), cases[i].text);
		EXPECT_OK(sm_policy_check_scope(&pol, SOCKMESH_SCOPE_NETNS), "netns scope");
		EXPECT_ERR(sm_policy_check_scope(&pol, SOCKMESH_SCOPE_CGROUP), -EINVAL,
			   "cgroup scope");
		CHECK(msg_has(cases[i].named) && msg_has("only applies to a netns"), "errmsg %s",
		      sockmesh_errmsg());
		EXPECT_EQ(sockmesh_errfield(), cases[i].f, "errfield");
	}
	{
		/* every other field is fine on a cgroup scope */
		SOCKMESH_OPTS(sockmesh_policy, pol, .proxy_port = 15002, .has_proxy_mark = true,
			      .proxy_mark = 7, .include_outbound_cidrs = "10.0.0.0/8",
			      .exclude_outbound_ports = "22", .redirect_dns = true,
			      .dns_servers = "10.0.0.10", .dns_port = 5353);

		EXPECT_OK(sm_policy_check_scope(&pol, SOCKMESH_SCOPE_CGROUP), "cgroup scope");
	}
}

static void test_compile_no_splice(void)
{
	struct sm_compiled c;
	SOCKMESH_OPTS(sockmesh_policy, pol, .no_splice = true);

	ASSERT_OK(compile(&pol, &c), "compile(&pol, &c)");
	EXPECT_EQ(c.pol.flags & SM_POL_SPLICE, 0, "c.pol.flags & SM_POL_SPLICE");
	EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, 0, "c.pol.flags & ~SM_POL_INBOUND");
	EXPECT_EQ(c.pol.proxy_port, 15001, "c.pol.proxy_port");
	sm_compiled_free(&c);
}

struct bad_policy {
	int field; /* 0..3: which list holds the bad value */
	const char *value;
	int want;
	const char *named; /* must appear in the message */
};

static const char *const field_names[] = { F_INC_CIDRS, F_EXC_CIDRS, F_INC_PORTS, F_EXC_PORTS };

static const struct bad_policy bad_policies[] = {
	{ 0, "10.0.0.0/33", -EINVAL, "10.0.0.0/33" },
	{ 0, "10.0.0.0/8,,fd00::/8", -EINVAL, "10.0.0.0/8,,fd00::/8" },
	{ 0, "garbage", -EINVAL, "garbage" },
	{ 1, "::/129", -EINVAL, "::/129" },
	{ 1, "*", -EINVAL, "'*'" },
	{ 1, "10.0.0.0/8,", -EINVAL, "10.0.0.0/8," },
	{ 2, "0", -EINVAL, "'0'" },
	{ 2, "65536", BAD_INPUT, "65536" },
	{ 2, "80,", -EINVAL, "80," },
	{ 3, "*", -EINVAL, "'*'" },
	{ 3, "8a", -EINVAL, "8a" },
	{ 3, "70000", BAD_INPUT, "70000" },
	{ 3, "a,,b", -EINVAL, NULL },
};

/* Fill every list with a valid value, then break one of them. */
static void set_lists(struct sockmesh_policy *pol, int bad_field, const char *bad)
{
	const char *v[4] = { "10.0.0.0/8,fd00::/8", "10.1.0.0/16", "80,443", "8080" };

	if (bad_field >= 0)
		v[bad_field] = bad;
	pol->include_outbound_cidrs = v[0];
	pol->exclude_outbound_cidrs = v[1];
	pol->include_outbound_ports = v[2];
	pol->exclude_outbound_ports = v[3];
}

static void test_compile_errors(void)
{
	struct sm_compiled c;
	int err;

	for (size_t i = 0; i < ARRAY_SIZE(bad_policies); i++) {
		const struct bad_policy *b = &bad_policies[i];
		SOCKMESH_OPTS(sockmesh_policy, pol);

		set_lists(&pol, b->field, b->value);
		err = compile(&pol, &c);
		CHECK_ERR(b->value, err, b->want, field_names[b->field], b->named);
		/* Lists parsed before the bad one were freed. */
		CHECK(!c.inc_cidrs.v && !c.exc_cidrs.v && !c.inc_ports.v && !c.exc_ports.v,
		      "'%s': lists left allocated after failure", b->value);
		CHECK(!c.inc_cidrs.n && !c.exc_cidrs.n && !c.inc_ports.n && !c.exc_ports.n,
		      "'%s': list counts left after failure", b->value);
		if (!err)
			sm_compiled_free(&c);

		err = sockmesh_policy__validate(&pol);
		CHECK_ERR(b->value, err, b->want, field_names[b->field], b->named);
	}

	err = compile(NULL, &c);
	EXPECT_ERR(err, -EINVAL, "compile()");
	CHECK(msg_has("policy"), "errmsg %s", sockmesh_errmsg());
	EXPECT_ERR(sockmesh_policy__validate(NULL), -EINVAL, "sockmesh_policy__validate(NULL)");
}

static void test_validate(void)
{
	SOCKMESH_OPTS(sockmesh_policy, pol);

	EXPECT_OK(sockmesh_policy__validate(&pol), "sockmesh_policy__validate(&pol)");
	set_lists(&pol, -1, NULL);
	EXPECT_OK(sockmesh_policy__validate(&pol), "sockmesh_policy__validate(&pol)");
	pol.exclude_outbound_ports = "80,*";
	EXPECT_ERR(sockmesh_policy__validate(&pol), -EINVAL, "sockmesh_policy__validate(&pol)");
	CHECK(msg_has(F_EXC_PORTS), "errmsg %s", sockmesh_errmsg());
}

/* ---- opts .sz ------------------------------------------------------------- */

static void test_opts_sz(void)
{
	struct {
		struct sockmesh_policy pol;
		unsigned char tail[32];
	} big;
	const size_t known = offsetofend(struct sockmesh_policy, sockmesh_policy__last_field);
	struct sm_compiled c;
	int err;

	/* sz is required. */
	memset(&big, 0, sizeof(big));
	err = compile(&big.pol, &c);
	EXPECT_ERR(err, -EINVAL, "compile()");
	CHECK(msg_has("policy"), "errmsg %s", sockmesh_errmsg());
	EXPECT_NULL(c.inc_cidrs.v, "c.inc_cidrs.v");

	/* Exactly the known fields, or the whole struct. */
	big.pol.sz = known;
	EXPECT_OK(sockmesh_policy__validate(&big.pol), "sockmesh_policy__validate(&big.pol)");
	big.pol.sz = sizeof(big.pol);
	EXPECT_OK(sockmesh_policy__validate(&big.pol), "sockmesh_policy__validate(&big.pol)");

	/* A newer caller's larger struct: a zero tail is accepted... */
	big.pol.sz = sizeof(big);
	big.pol.include_outbound_ports = "80";
	err = compile(&big.pol, &c);
	EXPECT_OK(err, "compile()");
	if (!err) {
		EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, SM_POL_SPLICE | SM_POL_INCLUDE_PORTS,
			  "c.pol.flags & ~SM_POL_INBOUND");
		sm_compiled_free(&c);
	}

	/* ...a non-zero byte anywhere past the known fields is not. */
	for (size_t off = known; off < sizeof(big); off++) {
		unsigned char *p = (unsigned char *)&big + off;

		*p = 0x01;
		err = compile(&big.pol, &c);
		CHECK(err == -EINVAL, "non-zero byte at offset %zu (sz %zu): returned %d", off,
		      sizeof(big), err);
		CHECK(msg_has("unknown fields"), "offset %zu: errmsg %s", off, sockmesh_errmsg());
		CHECK(!c.inc_ports.v, "offset %zu: list left allocated", off);
		if (!err)
			sm_compiled_free(&c);
		*p = 0;
	}

	/* Bytes past sz are not looked at. */
	big.pol.sz = sizeof(big.pol);
	memset(big.tail, 0xff, sizeof(big.tail));
	EXPECT_OK(sockmesh_policy__validate(&big.pol), "sockmesh_policy__validate(&big.pol)");

	/* An older caller's shorter struct: only sz bytes are read (ASan
	 * checks the heap copy), the missing fields count as zero.
	 */
	{
		size_t short_sz = offsetof(struct sockmesh_policy, proxy_uid);
		struct sockmesh_policy full = { .sz = short_sz, .proxy_port = 15002 };
		unsigned char *old = calloc(1, short_sz);

		ASSERT_NOT_NULL(old, "old");
		memcpy(old, &full, short_sz);
		err = compile((const struct sockmesh_policy *)(void *)old, &c);
		EXPECT_OK(err, "compile()");
		if (!err) {
			EXPECT_EQ(c.pol.proxy_port, 15002, "c.pol.proxy_port");
			EXPECT_EQ(c.pol.proxy_uid, SM_DEFAULT_PROXY_UID, "c.pol.proxy_uid");
			EXPECT_EQ(c.pol.flags & ~SM_POL_INBOUND, SM_POL_SPLICE,
				  "c.pol.flags & ~SM_POL_INBOUND");
			sm_compiled_free(&c);
		}
		free(old);
	}
}

/* ---- sockmesh_errmsg ------------------------------------------------------ */

static void *errmsg_thread(void *arg)
{
	char *out = arg;
	struct sm_list l;

	/* A fresh thread has no error, whatever other threads did. */
	snprintf(out, 256, "%s", sockmesh_errmsg());
	if (sm_parse_port_list("thread_field", "0", false, &l) == 0)
		sm_list_free(&l);
	return NULL;
}

static void test_errmsg(void)
{
	char fresh[256] = "";
	struct sm_list l;
	pthread_t t;

	EXPECT_NOT_NULL(sockmesh_errmsg(), "sockmesh_errmsg()");
	EXPECT_ERR(sm_parse_port_list(F_EXC_PORTS, "*", false, &l), -EINVAL,
		   "sm_parse_port_list(F_EXC_PORTS, \"*\", false, &l)");
	ASSERT_OK(pthread_create(&t, NULL, errmsg_thread, fresh),
		  "pthread_create(&t, NULL, errmsg_thread, fresh)");
	EXPECT_OK(pthread_join(t, NULL), "pthread_join(t, NULL)");
	EXPECT_STREQ(fresh, "no error", "fresh");
	/* The other thread's failure did not overwrite this thread's message. */
	CHECK(msg_has(F_EXC_PORTS) && !msg_has("thread_field"), "errmsg %s", sockmesh_errmsg());

	/* Long values are truncated, not overflowed, and still name the field. */
	{
		char s[2048];

		memset(s, '1', sizeof(s) - 1);
		s[sizeof(s) - 1] = '\0';
		EXPECT_NEQ(sm_parse_port_list(F_INC_PORTS, s, true, &l), 0,
			   "sm_parse_port_list(F_INC_PORTS, s, true, &l)");
		CHECK(strncmp(sockmesh_errmsg(), F_INC_PORTS, strlen(F_INC_PORTS)) == 0,
		      "errmsg %.80s", sockmesh_errmsg());
		EXPECT_TRUE(strlen(sockmesh_errmsg()) < 512, "strlen(sockmesh_errmsg()) < 512");
	}
}

/* ---- leaks ------------------------------------------------------------------ */

/* Every failure path, many times: nothing may stay allocated. Under ASan,
 * LeakSanitizer checks right here; otherwise the heap in use must not grow.
 */
static int fail_everything(void)
{
	static const char *const list_bad[] = {
		"10.0.0.0/8,bogus", "80,,443", "1,2,3,0", "*", "1,2,3,", "8a",
	};
	struct sm_compiled c;
	struct sm_list l;
	int unexpected = 0;

	for (size_t i = 0; i < ARRAY_SIZE(bad_policies); i++) {
		SOCKMESH_OPTS(sockmesh_policy, pol);

		set_lists(&pol, bad_policies[i].field, bad_policies[i].value);
		unexpected += sm_policy_compile(&pol, &c) == 0;
		unexpected += sockmesh_policy__validate(&pol) == 0;
	}
	for (size_t i = 0; i < ARRAY_SIZE(list_bad); i++) {
		unexpected += sm_parse_cidr_list(F_EXC_CIDRS, list_bad[i], false, &l) == 0;
		unexpected += sm_parse_port_list(F_EXC_PORTS, list_bad[i], false, &l) == 0;
	}
	{
		struct {
			struct sockmesh_policy pol;
			char tail[8];
		} big = { .pol.sz = sizeof(big),
			  .pol.include_outbound_cidrs = "10.0.0.0/8",
			  .tail[7] = 1 };

		unexpected += sm_policy_compile(&big.pol, &c) == 0;
	}
	return unexpected;
}

static void test_no_leaks(void)
{
	size_t before, after;
	int unexpected = 0;

	/* Warm up: fill malloc's per-thread caches, which mallinfo2 counts as in use. */
	for (int i = 0; i < 20; i++)
		unexpected += fail_everything();
	before = mallinfo2().uordblks;
	for (int i = 0; i < 200; i++)
		unexpected += fail_everything();
	after = mallinfo2().uordblks;
	EXPECT_EQ(unexpected, 0, "unexpected");
	CHECK(after == before, "heap in use grew from %zu to %zu bytes", before, after);
#ifdef HAVE_ASAN
	EXPECT_EQ(__lsan_do_recoverable_leak_check(), 0, "__lsan_do_recoverable_leak_check()");
#endif
}

/* ---- main ----------------------------------------------------------------- */

static CU_TestInfo size_tests[] = {
	{ "sizes, suffixes, bounds, malformed", test_size },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo u32_tests[] = {
	{ "valid", test_u32_valid },
	{ "bounds and overflow", test_u32_bounds },
	{ "malformed", test_u32_malformed },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo cidr_tests[] = {
	{ "ipv4", test_cidr_ipv4 },
	{ "ipv6", test_cidr_ipv6 },
	{ "bad values", test_cidr_bad },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo list_tests[] = {
	{ "cidr lists", test_cidr_list },
	{ "port lists", test_port_list },
	{ "all 65535 ports", test_port_list_all },
	CU_TEST_INFO_NULL,
};

static CU_TestInfo compile_tests[] = {
	{ "defaults", test_compile_defaults },
	{ "proxy uid/gid/mark", test_compile_proxy },
	{ "include lists", test_compile_include },
	{ "exclude lists", test_compile_exclude },
	{ "no_splice", test_compile_no_splice },
	{ "empty dns_servers", test_compile_dns_servers_empty },
	{ "netns-only fields on a cgroup scope", test_check_scope },
	{ "inbound", test_compile_inbound },
	{ "errors", test_compile_errors },
	{ "validate", test_validate },
	{ "opts sz", test_opts_sz },
	{ "errmsg", test_errmsg },
	{ "no leaks on failure", test_no_leaks },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ .pName = "sm_parse_u32", .pTests = u32_tests },
	{ .pName = "sm_parse_size", .pTests = size_tests },
	{ .pName = "sm_parse_cidr", .pTests = cidr_tests },
	{ .pName = "lists", .pTests = list_tests },
	{ .pName = "sm_policy_compile", .pTests = compile_tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return sm_cunit_run(suites);
}
