/*
 * pool.h — the GPU model's activation arena (llm.c style): one device allocation sized from the
 * configuration and the input size, carved into buffers that are reused across blocks and
 * stages; nothing is allocated inside the forward. Not thread-safe (one per model handle).
 */
#ifndef WV_CUDA_POOL_H
#define WV_CUDA_POOL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "src/error.h"

struct cuda_pool {
    char *base;   /* device memory */
    size_t cap;   /* bytes allocated */
    size_t used;  /* bytes handed out since the last pool_reset */
};

/* Alignment of every buffer handed out (cuBLAS and 16-byte vector loads like 256). */
#define CUDA_POOL_ALIGN 256

/* Round a byte count up to the pool alignment. */
static inline size_t cuda_pool_round(size_t bytes)
{
    return (bytes + CUDA_POOL_ALIGN - 1) / CUDA_POOL_ALIGN * CUDA_POOL_ALIGN;
}

/* Make the arena at least `bytes` large (keeps it when big enough, else frees and allocates).
 * WV_ENOMEM with a message giving the size and the device's free memory on failure; the pool is
 * then empty. */
enum wv_status cuda_pool_reserve(struct cuda_pool *p, size_t bytes);
/* Forget every buffer handed out (the memory stays allocated). */
void cuda_pool_reset(struct cuda_pool *p);
/* Next `bytes` (rounded to CUDA_POOL_ALIGN); NULL when the arena is exhausted (a sizing bug:
 * callers check with ALWAYS-style handling). */
void *cuda_pool_take(struct cuda_pool *p, size_t bytes);
void cuda_pool_release(struct cuda_pool *p);

#ifdef __cplusplus
}
#endif

#endif
