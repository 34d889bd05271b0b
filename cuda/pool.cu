/* pool.cu — the GPU model's device arena; see pool.h. */
#include "pool.h"

#include "common.cuh"

extern "C" enum wv_status cuda_pool_reserve(struct cuda_pool *p, size_t bytes)
{
    bytes = cuda_pool_round(bytes ? bytes : 1);
    p->used = 0;
    if (p->base && p->cap >= bytes) return WV_OK;
    if (p->base) {
        CUDA_TRY("pool", cudaFree(p->base));
        p->base = NULL;
        p->cap = 0;
    }
    cudaError_t e = cudaMalloc((void **)&p->base, bytes);
    if (e != cudaSuccess) {
        cudaGetLastError(); /* an allocation failure is not sticky: clear it */
        p->base = NULL;
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        return error_set(e == cudaErrorMemoryAllocation ? WV_ENOMEM : WV_ECUDA,
                         "cuda pool: cannot allocate %.2f GiB of device memory (%.2f GiB free of "
                         "%.2f GiB): %s",
                         bytes / 1073741824.0, free_b / 1073741824.0, total_b / 1073741824.0,
                         cudaGetErrorString(e));
    }
    p->cap = bytes;
    return WV_OK;
}

extern "C" void cuda_pool_reset(struct cuda_pool *p) { p->used = 0; }

extern "C" void *cuda_pool_take(struct cuda_pool *p, size_t bytes)
{
    bytes = cuda_pool_round(bytes ? bytes : 1);
    if (!p->base || p->used + bytes > p->cap) return NULL;
    void *r = p->base + p->used;
    p->used += bytes;
    return r;
}

extern "C" void cuda_pool_release(struct cuda_pool *p)
{
    if (p->base) cudaFree(p->base);
    p->base = NULL;
    p->cap = p->used = 0;
}
