/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Usage: #include "sm_test.h" (meson: include_directories('../include')).
 * In a CUnit test function, EXPECT_EQ(got, want, "what") records a failure
 * and goes on; ASSERT_EQ(got, want, "what") records it and ends the test.
 * Also _TRUE _FALSE _NEQ _STREQ _OK _ERR _NULL _NOT_NULL _MEMEQ (see below).
 * A failure prints "  FAIL func:line what: got ..., want ..." to stderr.
 */
#ifndef SM_TEST_H
#define SM_TEST_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

/*
 * Kernel-selftests-style assertions over CUnit.
 *
 * ASSERT_* are fatal: a failure ends the running test (CUnit jumps out of
 * the test function; the suite's teardown still runs). EXPECT_* record the
 * failure and let the test go on, as CU_ASSERT does. Both kinds print the
 * label, what was got and what was wanted with the function and line, and
 * count every check (passed or not) in CUnit's "asserts" total; CUnit's own
 * summary repeats the same text.
 *
 *   _TRUE(cond, what)            cond is true (prints errno, as the value
 *   _FALSE(cond, what)           of a failed call is usually there)
 *   _EQ(got, want, what)         integers, equal / not equal; compared as
 *   _NEQ(got, want, what)        64-bit values, printed unsigned when the
 *                                operands' common type is unsigned long
 *   _STREQ(got, want, what)      strings; NULL equals only NULL
 *   _OK(err, what)               err == 0; prints err with strerror (a -1
 *                                return prints errno instead)
 *   _ERR(err, want, what)        err == want (e.g. -EINVAL), both named
 *   _NULL(ptr, what)             ptr == NULL / ptr != NULL
 *   _NOT_NULL(ptr, what)
 *   _MEMEQ(got, want, len, what) len bytes equal; prints the first
 *                                difference and a hex dump around it
 *
 * Each operand is evaluated exactly once. what may be any string, also one
 * made at run time (it is printed with "%s"). Helpers that check on behalf of a caller can
 * report with the caller's line through sm_test_check().
 */

/* ---- reporting ------------------------------------------------------------ */

/* Record one check: on failure print "  FAIL func:line <message>" and hand
 * the message to CUnit (which copies it); fatal failures leave the test.
 */
static inline void __attribute__((format(printf, 6, 0)))
sm_test_vcheck(bool ok, bool fatal, const char *file, int line, const char *func, const char *fmt,
	       va_list ap)
{
	char msg[1024] = "";

	if (!ok) {
		vsnprintf(msg, sizeof(msg), fmt, ap);
		fprintf(stderr, "  FAIL %s:%d %s\n", func, line, msg);
		fflush(stderr);
	}
	CU_assertImplementation(ok ? CU_TRUE : CU_FALSE, (unsigned int)line, ok ? "ok" : msg, file,
				func, fatal ? CU_TRUE : CU_FALSE);
}

static inline void __attribute__((format(printf, 6, 7)))
sm_test_check(bool ok, bool fatal, const char *file, int line, const char *func, const char *fmt,
	      ...)
{
	va_list ap;

	va_start(ap, fmt);
	sm_test_vcheck(ok, fatal, file, line, func, fmt, ap);
	va_end(ap);
}

#define SM__CHECK(ok, fatal, ...) \
	sm_test_check((ok), (fatal), __FILE__, __LINE__, __func__, __VA_ARGS__)

/* 1 when integers of the type of x print as unsigned long long */
#define SM__UNSIGNED(x) _Generic((x), unsigned long : 1, unsigned long long : 1, default : 0)

static inline const char *sm__strerr(long long err, int saved_errno)
{
	if (err == -1)
		return saved_errno ? strerror(saved_errno) : "-1, errno 0";
	if (err == 0)
		return "success";
	if (err < -4095 || err > 4095)
		return "not an errno";
	return strerror((int)(err < 0 ? -err : err));
}

/* ---- the checks --------------------------------------------------------------- */

static inline void sm__bool(bool fatal, const char *file, int line, const char *func, bool ok,
			    const char *what, const char *expr, int saved_errno)
{
	sm_test_check(ok, fatal, file, line, func, "%s: %s (errno %d %s)", what, expr, saved_errno,
		      strerror(saved_errno));
}

#define SM__TRUE(fatal, cond, what)                                                                \
	do {                                                                                       \
		bool sm__ok = (cond);                                                              \
		int sm__errno = errno;                                                             \
		sm__bool((fatal), __FILE__, __LINE__, __func__, sm__ok, (what), #cond, sm__errno); \
	} while (0)

#define SM__FALSE(fatal, cond, what)                                                            \
	do {                                                                                    \
		bool sm__ok = !(cond);                                                          \
		int sm__errno = errno;                                                          \
		sm__bool((fatal), __FILE__, __LINE__, __func__, sm__ok, (what), "!(" #cond ")", \
			 sm__errno);                                                            \
	} while (0)

static inline void sm__int(bool fatal, const char *file, int line, const char *func, bool eq,
			   bool is_unsigned, long long got, long long want, const char *what)
{
	bool ok = eq ? got == want : got != want;
	const char *rel = eq ? "" : "anything but ";

	if (is_unsigned)
		sm_test_check(ok, fatal, file, line, func, "%s: got %llu, want %s%llu", what,
			      (unsigned long long)got, rel, (unsigned long long)want);
	else
		sm_test_check(ok, fatal, file, line, func, "%s: got %lld, want %s%lld", what, got,
			      rel, want);
}

#define SM__INT(fatal, eq, got, want, what)                                                        \
	do {                                                                                       \
		long long sm__g = (long long)(got), sm__w = (long long)(want);                     \
		sm__int((fatal), __FILE__, __LINE__, __func__, (eq), SM__UNSIGNED((got) + (want)), \
			sm__g, sm__w, (what));                                                     \
	} while (0)

static inline void sm__str(bool fatal, const char *file, int line, const char *func,
			   const char *got, const char *want, const char *what)
{
	bool ok = (got && want) ? strcmp(got, want) == 0 : got == want;

	sm_test_check(ok, fatal, file, line, func, "%s: got %s%s%s, want %s%s%s", what,
		      got ? "\"" : "", got ? got : "(null)", got ? "\"" : "", want ? "\"" : "",
		      want ? want : "(null)", want ? "\"" : "");
}

#define SM__STR(fatal, got, want, what) \
	sm__str((fatal), __FILE__, __LINE__, __func__, (got), (want), (what))

static inline void sm__err(bool fatal, const char *file, int line, const char *func, long long err,
			   long long want, int saved_errno, const char *what)
{
	if (err == -1 && want != -1)
		sm_test_check(false, fatal, file, line, func,
			      "%s: got -1 (errno %d %s), want %lld (%s)", what, saved_errno,
			      strerror(saved_errno), want, sm__strerr(want, 0));
	else
		sm_test_check(err == want, fatal, file, line, func,
			      "%s: got %lld (%s), want %lld (%s)", what, err,
			      sm__strerr(err, saved_errno), want, sm__strerr(want, 0));
}

#define SM__ERR(fatal, err, want, what)                                                  \
	do {                                                                             \
		long long sm__e = (long long)(err);                                      \
		int sm__errno = errno;                                                   \
		sm__err((fatal), __FILE__, __LINE__, __func__, sm__e, (long long)(want), \
			sm__errno, (what));                                              \
	} while (0)

static inline void sm__ptr(bool fatal, const char *file, int line, const char *func,
			   const void *got, bool want_null, const char *what)
{
	if (want_null)
		sm_test_check(!got, fatal, file, line, func, "%s: got %p, want NULL", what, got);
	else
		sm_test_check(got != NULL, fatal, file, line, func,
			      "%s: got NULL, want a pointer (errno %d %s)", what, errno,
			      strerror(errno));
}

#define SM__PTR(fatal, ptr, want_null, what)                                                \
	do {                                                                                \
		const void *sm__p = (const void *)(ptr);                                    \
		sm__ptr((fatal), __FILE__, __LINE__, __func__, sm__p, (want_null), (what)); \
	} while (0)

/* Print len bytes of both buffers from the 16-byte row holding off. */
static inline void sm__hexdump(const unsigned char *got, const unsigned char *want, size_t len,
			       size_t off)
{
	size_t start = off & ~(size_t)15, end = start + 32 < len ? start + 32 : len;

	for (size_t row = start; row < end; row += 16) {
		for (int w = 0; w < 2; w++) {
			const unsigned char *b = w ? want : got;

			fprintf(stderr, "    %-4s +0x%04zx:", w ? "want" : "got", row);
			for (size_t i = row; i < row + 16 && i < end; i++)
				fprintf(stderr, "%s%02x", i == off ? ">" : " ", b[i]);
			fputc('\n', stderr);
		}
	}
}

static inline void sm__mem(bool fatal, const char *file, int line, const char *func,
			   const void *got, const void *want, size_t len, const char *what)
{
	const unsigned char *g = got, *w = want;
	char msg[256];
	size_t off = 0;

	if (!g || !w) {
		sm_test_check(len == 0 || g == w, fatal, file, line, func,
			      "%s: got %p, want %p (%zu bytes)", what, got, want, len);
		return;
	}
	while (off < len && g[off] == w[off])
		off++;
	if (off == len) {
		sm_test_check(true, fatal, file, line, func, "%s", what);
		return;
	}
	/* The dump goes under the FAIL line, before a fatal failure leaves. */
	snprintf(msg, sizeof(msg),
		 "%s: first difference at byte %zu of %zu: got 0x%02x, want 0x%02x", what, off, len,
		 g[off], w[off]);
	fprintf(stderr, "  FAIL %s:%d %s\n", func, line, msg);
	sm__hexdump(g, w, len, off);
	fflush(stderr);
	CU_assertImplementation(CU_FALSE, (unsigned int)line, msg, file, func,
				fatal ? CU_TRUE : CU_FALSE);
}

#define SM__MEM(fatal, got, want, len, what) \
	sm__mem((fatal), __FILE__, __LINE__, __func__, (got), (want), (len), (what))

/* ---- fatal: the test stops at the first failure ----------------------------------- */

#define ASSERT_TRUE(cond, what) SM__TRUE(true, cond, what)
#define ASSERT_FALSE(cond, what) SM__FALSE(true, cond, what)
#define ASSERT_EQ(got, want, what) SM__INT(true, true, got, want, what)
#define ASSERT_NEQ(got, want, what) SM__INT(true, false, got, want, what)
#define ASSERT_STREQ(got, want, what) SM__STR(true, got, want, what)
#define ASSERT_OK(err, what) SM__ERR(true, err, 0, what)
#define ASSERT_ERR(err, want, what) SM__ERR(true, err, want, what)
#define ASSERT_NULL(ptr, what) SM__PTR(true, ptr, true, what)
#define ASSERT_NOT_NULL(ptr, what) SM__PTR(true, ptr, false, what)
#define ASSERT_MEMEQ(got, want, len, what) SM__MEM(true, got, want, len, what)

/* ---- non-fatal: the failure is recorded and the test goes on ------------------------ */

#define EXPECT_TRUE(cond, what) SM__TRUE(false, cond, what)
#define EXPECT_FALSE(cond, what) SM__FALSE(false, cond, what)
#define EXPECT_EQ(got, want, what) SM__INT(false, true, got, want, what)
#define EXPECT_NEQ(got, want, what) SM__INT(false, false, got, want, what)
#define EXPECT_STREQ(got, want, what) SM__STR(false, got, want, what)
#define EXPECT_OK(err, what) SM__ERR(false, err, 0, what)
#define EXPECT_ERR(err, want, what) SM__ERR(false, err, want, what)
#define EXPECT_NULL(ptr, what) SM__PTR(false, ptr, true, what)
#define EXPECT_NOT_NULL(ptr, what) SM__PTR(false, ptr, false, what)
#define EXPECT_MEMEQ(got, want, len, what) SM__MEM(false, got, want, len, what)

/* main() of a suite-table test binary: register the suites, run them
 * verbosely; 0 when every assertion passed.
 */
static inline int sm_cunit_run(CU_SuiteInfo *suites)
{
	unsigned int failures;

	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	if (CU_register_suites(suites) != CUE_SUCCESS) {
		fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
		CU_cleanup_registry();
		return 1;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS) {
		fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
		CU_cleanup_registry();
		return 1;
	}
	failures = CU_get_number_of_failures();
	CU_cleanup_registry();
	return failures ? 1 : 0;
}

#endif /* SM_TEST_H */
