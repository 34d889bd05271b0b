/*
 * testutil.h — tiny test harness shared by the C tests: CHECK macros that count failures,
 * a tensor comparison that prints the first mismatching pairs and the max difference
 * (llm.c's check_tensor), and paths to ../shared and the test scratch folder.
 * Include once per test program (the functions are static).
 */
#ifndef WV_TESTUTIL_H
#define WV_TESTUTIL_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tu_failures = 0;
static int tu_checks = 0;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        tu_checks++;                                                                         \
        if (!(cond)) {                                                                       \
            tu_failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);         \
        }                                                                                    \
    } while (0)

#define CHECK_MSG(cond, ...)                                                                 \
    do {                                                                                     \
        tu_checks++;                                                                         \
        if (!(cond)) {                                                                       \
            tu_failures++;                                                                   \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);         \
            fprintf(stderr, __VA_ARGS__);                                                    \
            fputc('\n', stderr);                                                             \
        }                                                                                    \
    } while (0)

/* Ends main(): prints a summary line, returns the exit code. */
static inline int tu_finish(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, tu_checks, tu_failures);
    return tu_failures ? 1 : 0;
}

static inline const char *tu_shared(void)
{
    const char *s = getenv("WV_SHARED_DIR");
#ifdef WV_SHARED_DIR
    if (!s) s = WV_SHARED_DIR;
#endif
    return s ? s : "../shared";
}

static inline const char *tu_tmp(void)
{
    const char *s = getenv("WV_TEST_TMP");
#ifdef WV_TEST_TMP
    if (!s) s = WV_TEST_TMP;
#endif
    return s ? s : "/tmp";
}

/* Compare n floats; |a-b| <= atol + rtol*|b|. Prints up to 5 mismatches and the max abs diff.
 * Returns the max abs diff; counts one check. */
static inline double tu_check_tensor(const char *label, const float *got, const float *want,
                                     size_t n, double atol, double rtol)
{
    double maxd = 0;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (!(d <= atol + rtol * fabs((double)want[i]))) {
            if (bad < 5)
                fprintf(stderr, "  %s[%zu]: got %.9g want %.9g (diff %.3g)\n", label, i,
                        (double)got[i], (double)want[i], d);
            bad++;
        }
        if (d > maxd || d != d) maxd = d != d ? INFINITY : d;
    }
    tu_checks++;
    if (bad) tu_failures++;
    printf("%-40s n=%-9zu max|diff|=%.3g  %s\n", label, n, maxd, bad ? "FAIL" : "OK");
    return maxd;
}

#endif
