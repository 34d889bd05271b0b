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

/* Carry pass over chunks for `n_seq` independent (sequence, state) lanes. ws holds, per chunk c
 * and lane j, the pair (a = Π exp(δA) over the chunk, h = chunk-local end state from 0) at
 * ws[(c·n_seq + j)·2 + {0,1}] in "pair" layout. Rewrites the h slot with the state entering
 * chunk c (h_in for c = 0): h_start[c+1] = a[c]·h_start[c] + h[c]. Sequential over chunks per
 * lane; the loads do not depend on the running value, so they pipeline. */
__global__ void scan_carry_kernel1(float *ws, const float *h_in, size_t n_seq, size_t n_chunks);

#endif
