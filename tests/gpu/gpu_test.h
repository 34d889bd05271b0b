/*
 * gpu_test.h — shared harness of the tests/gpu programs (STYLE.md 2.2, 2.5): skip with exit 77
 * when no CUDA device is present, seeded random inputs, device buffers with guard bands (a
 * sentinel pattern before and after every output, checked after each op to catch stray
 * writes), and an abs+rel comparison that prints the first mismatches with their index.
 * Include once per program (static functions).
 */
#ifndef WV_GPU_TEST_H
#define WV_GPU_TEST_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda/backend_cuda.h"
#include "testutil.h"

/* Exit 77 (ctest SKIP) unless a CUDA device is usable; prints which device is used. */
static inline void gt_require_device(const char *prog)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        printf("%s: SKIP: no CUDA device (%s)\n", prog,
               e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        exit(77);
    }
    struct cudaDeviceProp p;
    cudaGetDeviceProperties(&p, 0);
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    printf("%s: device 0 = %s (sm_%d%d), driver %d, runtime %d\n", prog, p.name, p.major, p.minor,
           drv, rt);
}

/* xorshift64* — fixed seeds so every run sees the same inputs */
static uint64_t gt_state = 0x9E3779B97F4A7C15ull;
static inline void gt_seed(uint64_t s) { gt_state = s ? s : 1; }
static inline double gt_uniform(void) /* [0, 1) */
{
    gt_state ^= gt_state >> 12;
    gt_state ^= gt_state << 25;
    gt_state ^= gt_state >> 27;
    return (double)((gt_state * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
}
static inline float *gt_rand(size_t n, float lo, float hi)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) abort();
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * (float)gt_uniform();
    return p;
}

/* Guard bands: GT_GUARD floats of sentinel before and after every device output. */
#define GT_GUARD 64
static const uint32_t gt_sentinel_bits = 0x7fc0beefu; /* a NaN no kernel writes */

struct gt_buf {
    float *base; /* device, n + 2·GT_GUARD floats */
    float *d;    /* base + GT_GUARD: what the op sees */
    size_t n;
};

static inline void gt_cuda_ok(cudaError_t e, const char *what)
{
    if (e != cudaSuccess) {
        fprintf(stderr, "FATAL: %s: %s\n", what, cudaGetErrorString(e));
        exit(1);
    }
}

/* Device buffer of n floats, guards set, body = host data (or sentinel when NULL). */
static inline struct gt_buf gt_alloc(size_t n, const float *host)
{
    struct gt_buf b = {NULL, NULL, n};
    size_t tot = n + 2 * GT_GUARD;
    gt_cuda_ok(cudaMalloc((void **)&b.base, tot * sizeof(float)), "cudaMalloc");
    uint32_t *h = malloc(tot * sizeof *h);
    if (!h) abort();
    for (size_t i = 0; i < tot; i++) h[i] = gt_sentinel_bits;
    if (host) memcpy(h + GT_GUARD, host, n * sizeof(float));
    gt_cuda_ok(cudaMemcpy(b.base, h, tot * sizeof *h, cudaMemcpyHostToDevice), "upload");
    free(h);
    b.d = b.base + GT_GUARD;
    return b;
}

/* Download the body into a new host array; checks the guards (one CHECK). Also checks that no
 * CUDA or op error was recorded. */
static inline float *gt_fetch(struct gt_buf b, const char *label)
{
    gt_cuda_ok(cudaDeviceSynchronize(), label);
    size_t tot = b.n + 2 * GT_GUARD;
    uint32_t *h = malloc(tot * sizeof *h);
    if (!h) abort();
    gt_cuda_ok(cudaMemcpy(h, b.base, tot * sizeof *h, cudaMemcpyDeviceToHost), "download");
    int bad = 0;
    for (size_t i = 0; i < GT_GUARD; i++) {
        if (h[i] != gt_sentinel_bits || h[GT_GUARD + b.n + i] != gt_sentinel_bits) {
            if (bad++ < 3)
                fprintf(stderr, "  %s: guard word %s+%zu overwritten\n", label,
                        h[i] != gt_sentinel_bits ? "before" : "after", i);
        }
    }
    CHECK_MSG(!bad, "%s: %d guard words overwritten (stray writes)", label, bad);
    CHECK_MSG(error_code() == WV_OK, "%s: op recorded an error: %s", label, error_msg());
    error_clear();
    float *out = malloc((b.n ? b.n : 1) * sizeof *out);
    if (!out) abort();
    memcpy(out, h + GT_GUARD, b.n * sizeof *out);
    free(h);
    return out;
}

static inline void gt_free(struct gt_buf b) { cudaFree(b.base); }

/* RMS of a host array: the scale the absolute part of the tolerance is measured against. */
static inline double gt_rms(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return n ? sqrt(s / n) : 0.0;
}

/* |got − want| <= tol·(rms(want) + |want|) per element: relative to the element for large
 * values, to the tensor's scale for values near zero (where cancellation makes a pure relative
 * test meaningless). Prints the first mismatches with their index, the max difference, OK/FAIL. */
static inline double gt_compare(const char *label, const float *got, const float *want, size_t n,
                         double tol)
{
    double r = gt_rms(want, n);
    return tu_check_tensor(label, got, want, n, tol * r + 1e-30, tol);
}

#endif
