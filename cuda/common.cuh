/*
 * common.cuh — what every file of the CUDA backend shares: checked CUDA / cuBLAS calls that
 * record statement, file, line, op and the library's message through error_set(WV_ECUDA, ...)
 * and return a status (llm.c's cudaCheck / ggml's CUDA_CHECK capture, without the exit:
 * STYLE.md 2.3), 64-bit grid helpers and the storage-dtype load/store helpers.
 * Device code only includes this; the C API is in cuda/backend_cuda.h.
 */
#ifndef WV_CUDA_COMMON_CUH
#define WV_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "src/error.h"
}

/* Record a failed CUDA call; returns WV_ECUDA (WV_ENOMEM for cudaErrorMemoryAllocation). */
enum wv_status cuda_fail(cudaError_t e, const char *stmt, const char *op, const char *file,
                         int line);
enum wv_status cublas_fail(cublasStatus_t s, const char *stmt, const char *op, const char *file,
                           int line);

/* CUDA_TRY(op, stmt): run stmt (a cudaError_t expression); on failure record and `return` the
 * status from the enclosing function (which returns enum wv_status). */
#define CUDA_TRY(op, stmt)                                                                   \
    do {                                                                                     \
        cudaError_t cuda_try_e_ = (stmt);                                                    \
        if (cuda_try_e_ != cudaSuccess)                                                      \
            return cuda_fail(cuda_try_e_, #stmt, op, __FILE__, __LINE__);                    \
    } while (0)

#define CUBLAS_TRY(op, stmt)                                                                 \
    do {                                                                                     \
        cublasStatus_t cublas_try_s_ = (stmt);                                               \
        if (cublas_try_s_ != CUBLAS_STATUS_SUCCESS)                                          \
            return cublas_fail(cublas_try_s_, #stmt, op, __FILE__, __LINE__);                \
    } while (0)

/* After a <<<>>> launch: catches bad configurations (and earlier asynchronous faults). */
#define CUDA_LAUNCH_TRY(op) CUDA_TRY(op, cudaGetLastError())

/* For the void op twins of backend.h: record the failure and return (caller sees error_code()). */
#define CUDA_VOID(st)                                                                        \
    do {                                                                                     \
        if ((st) != WV_OK) return;                                                           \
    } while (0)

/* Grid for n work items of `threads` each, as a 1-D grid; n may exceed 2^31 (grid-stride loops
 * cover the rest). */
static inline unsigned cuda_blocks(size_t n, unsigned threads)
{
    size_t b = (n + threads - 1) / threads;
    if (b > 1048576) b = 1048576; /* grid-stride beyond 2^20 blocks: plenty to fill any GPU */
    return b ? (unsigned)b : 1u;
}

#define GRID_STRIDE_LOOP(i, n)                                                               \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (size_t)(n);         \
         i += (size_t)blockDim.x * gridDim.x)

/* storage type helpers: load as float, store from float */
__device__ __forceinline__ float ld(const float *p) { return *p; }
__device__ __forceinline__ float ld(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ float ld(const __half *p) { return __half2float(*p); }
__device__ __forceinline__ void st(float *p, float v) { *p = v; }
__device__ __forceinline__ void st(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void st(__half *p, float v) { *p = __float2half_rn(v); }

/* softplus exactly as scan.h's scan_softplus (threshold 20, log1p(exp(x))) */
__device__ __forceinline__ float softplus_dev(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

#endif
