/*
 * scan.cuh — device helpers shared by scan.cu and ss2d.cu: the d_state buckets the kernels are
 * instantiated for (the state lives in registers, so its size is a compile-time bound) and the
 * chunk-carry pass of the two-pass chunked scan.
 */
#ifndef WV_CUDA_SCAN_CUH
#define WV_CUDA_SCAN_CUH

#include "common.cuh"

/* d_state buckets: VMamba v2 uses 1, v0 uses 16; anything up to CUDA_SCAN_MAX_N works. */
#define SCAN_DISPATCH_N(N, NMAX_NAME, ...)                                                   \
    do {                                                                                     \
        if ((N) <= 1) {                                                                      \
            constexpr int NMAX_NAME = 1;                                                     \
            __VA_ARGS__;                                                                     \
        } else if ((N) <= 4) {                                                               \
            constexpr int NMAX_NAME = 4;                                                     \
            __VA_ARGS__;                                                                     \
        } else if ((N) <= 16) {                                                              \
            constexpr int NMAX_NAME = 16;                                                    \
            __VA_ARGS__;                                                                     \
        } else {                                                                             \
            constexpr int NMAX_NAME = 64;                                                    \
            __VA_ARGS__;                                                                     \
        }                                                                                    \
    } while (0)

/* Per-step decay exp(x), x = δ·A <= 0, for both passes of the chunked scans. CUDA's expf goes
 * through ex2.approx, whose error near 1 is ~1e-7 and not symmetric; a slowly decaying channel
 * (|δA| ~ 1e-3, golden scan_long) keeps ~1000 such factors in its state, so the bias compounds to
 * 3e-4 on y ~ 10 (measured on an H200). For |x| < 0.4 libdevice's expm1f is a pure FMA polynomial
 * (no ex2.approx, ~1.7 ulp of expm1), so 1 + expm1f(x) is exp(x) correctly rounded except near
 * ties — what glibc's expf gives the CPU loop. Beyond 0.4 the decay is fast and expf's error
 * does not accumulate. */
__device__ __forceinline__ float scan_exp(float x)
{
    return fabsf(x) < 0.4f ? 1.0f + expm1f(x) : expf(x);
}

/* Kahan-compensated running sum (fp32 pair ~ fp64 accuracy, 4 fp32 adds, no FMA contraction). */
__device__ __forceinline__ void kahan_add(float &sum, float &comp, float x)
{
    float y = x - comp;
    float t = sum + y;
    comp = (t - sum) - y;
    sum = t;
}

/* Carry pass over chunks for `n_seq` independent (sequence, state) lanes. ws holds, per chunk c
 * and lane j, the pair (s = Σ δ·A over the chunk, i.e. log of the chunk's decay; h = chunk-local
 * end state from 0) at ws[(c·n_seq + j)·2 + {0,1}]. Rewrites the h slot with the state entering
 * chunk c (h_in for c = 0): h_start[c+1] = exp(s[c])·h_start[c] + h[c], in fp64 (a running
 * product of 256..2048 fp32 exps lost 1e-4 on the golden scan_long; the log-space sum and one
 * fp64 exp per chunk do not). Sequential over chunks per lane; the loads and the exp do not
 * depend on the running value, so with the unroll they overlap. */
__global__ void scan_carry_kernel1(float *ws, const float *h_in, size_t n_seq, size_t n_chunks);

/* The chunk-carry workspace of a scan launcher: the caller's `*w`, or (when the sequence has
 * more than one chunk and the caller gave none) `bytes` allocated stream-ordered here; *own says
 * which, for scan_ws_end. */
static inline enum wv_status scan_ws_begin(float **w, size_t bytes, size_t n_chunks, int *own,
                                           const char *op, cudaStream_t s)
{
    *own = 0;
    if (n_chunks <= 1 || *w) return WV_OK;
    cudaError_t e = cudaMallocAsync((void **)w, bytes, s);
    if (e != cudaSuccess) return cuda_fail(e, "cudaMallocAsync(workspace)", op, __FILE__, __LINE__);
    *own = 1;
    return WV_OK;
}

/* After a launcher's kernels: the first launch error (named `kernel`), then the stream-ordered
 * free of an owned workspace (its error only if there was none before). */
static inline enum wv_status scan_ws_end(float *w, int own, const char *kernel, const char *op,
                                         cudaStream_t s)
{
    enum wv_status st = WV_OK;
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) st = cuda_fail(e, kernel, op, __FILE__, __LINE__);
    if (own) {
        cudaError_t fe = cudaFreeAsync(w, s);
        if (fe != cudaSuccess && st == WV_OK) st = cuda_fail(fe, "cudaFreeAsync", op, __FILE__, __LINE__);
    }
    return st;
}

#endif
