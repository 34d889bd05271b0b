/*
 * gemm_lt.h — GEMM with a fused epilogue on cuBLASLt (cuda/gemm_lt.cu): what the bf16/f16 model
 * forward uses for its projections. C API.
 */
#ifndef WV_CUDA_GEMM_LT_H
#define WV_CUDA_GEMM_LT_H

#include <stddef.h>

#include "cuda/backend_cuda.h"

#ifdef __cplusplus
extern "C" {
#endif

enum gemm_epi {
    GEMM_EPI_NONE,      /* y [+]= x·wᵀ */
    GEMM_EPI_BIAS,      /* y [+]= x·wᵀ + b */
    GEMM_EPI_GELU_BIAS, /* y = GELU_tanh(x·wᵀ + b)  (no accumulate) */
};

/* Row-major y (M, Nout) of type y_dt from x (M, K) and w (Nout, K), both of type dt (bf16/f16;
 * f32 goes to gemm_cuda_ex), fp32 accumulation; bias (Nout) of type y_dt when epi != NONE;
 * accumulate (beta = 1) only into an fp32 y. */
enum wv_status gemm_lt_cuda(const void *x, const void *w, enum wv_dtype dt, const void *bias,
                            void *y, enum wv_dtype y_dt, size_t M, int K, int Nout, int accumulate,
                            enum gemm_epi epi, cudaStream_t stream);
/* Destroy the calling thread's cuBLASLt handles, plans and workspaces. */
void gemm_lt_release_thread(void);

#ifdef __cplusplus
}
#endif

#endif
