/* test.h — the smallest test harness that reports what failed and where.
 *
 * A test file defines static void test_xxx(void) functions and a main() that runs them with RUN(test_xxx)
 * and returns TEST_EXIT(). CHECK* macros record a failure (with file:line and the values) and go on, so one
 * run shows every broken assertion. Tests are run from the repository root; fixtures are under tests/data. */
#ifndef KN_TEST_H
#define KN_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_failures_ = 0;
static int test_checks_ = 0;

#define CHECK(cond)                                                                                  \
    do {                                                                                             \
        test_checks_++;                                                                              \
        if (!(cond)) {                                                                               \
            test_failures_++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);                 \
        }                                                                                            \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                         \
    do {                                                                                             \
        test_checks_++;                                                                              \
        if (!(cond)) {                                                                               \
            test_failures_++;                                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);                 \
            fprintf(stderr, __VA_ARGS__);                                                            \
            fputc('\n', stderr);                                                                     \
        }                                                                                            \
    } while (0)

#define CHECK_EQ_INT(a, b)                                                                           \
    do {                                                                                             \
        long long a_ = (long long)(a), b_ = (long long)(b);                                          \
        test_checks_++;                                                                              \
        if (a_ != b_) {                                                                              \
            test_failures_++;                                                                        \
            fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, a_, b_); \
        }                                                                                            \
    } while (0)

#define CHECK_NEAR(a, b, tol)                                                                        \
    do {                                                                                             \
        double a_ = (double)(a), b_ = (double)(b);                                                   \
        test_checks_++;                                                                              \
        if (!(fabs(a_ - b_) <= (tol))) {                                                             \
            test_failures_++;                                                                        \
            fprintf(stderr, "%s:%d: |%s - %s| <= %g failed: %.9g vs %.9g\n", __FILE__, __LINE__, #a, #b, \
                    (double)(tol), a_, b_);                                                          \
        }                                                                                            \
    } while (0)

#define CHECK_STR(a, b)                                                                              \
    do {                                                                                             \
        const char *a_ = (a), *b_ = (b);                                                             \
        test_checks_++;                                                                              \
        if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                     \
            test_failures_++;                                                                        \
            fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b, \
                    a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                         \
        }                                                                                            \
    } while (0)

/* A library call that must succeed: on failure prints its message and aborts the test function. */
#define CHECK_OK(call)                                                                               \
    do {                                                                                             \
        int rc_ = (call);                                                                            \
        test_checks_++;                                                                              \
        if (rc_ != 0) {                                                                              \
            test_failures_++;                                                                        \
            fprintf(stderr, "%s:%d: %s returned %d: %s\n", __FILE__, __LINE__, #call, rc_, kn_errmsg()); \
            return;                                                                                  \
        }                                                                                            \
    } while (0)

#define RUN(fn)                                                                                      \
    do {                                                                                             \
        int before_ = test_failures_;                                                                \
        fn();                                                                                        \
        fprintf(stderr, "  %-50s %s\n", #fn, test_failures_ == before_ ? "ok" : "FAILED");           \
    } while (0)

#define TEST_EXIT()                                                                                  \
    (fprintf(stderr, "%s: %d checks, %d failed\n", __FILE__, test_checks_, test_failures_),         \
     test_failures_ ? 1 : 0)

#endif
