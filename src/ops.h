/*
 * ops.h — helpers shared by the CPU op files (ops_cpu.c, ss2d.c, vmamba.c): the block size
 * that makes work splits thread-count independent and a single-threaded sgemm wrapper.
 * The op prototypes themselves are the contract in backend.h.
 */
#ifndef WV_OPS_H
#define WV_OPS_H

#include <stddef.h>

#include "backend.h"

/* Rows per sgemm call in gemm_cpu: fixed, so the split (and the result) never depends on the
 * thread count; 256 rows × K ≤ 3072 floats keeps a block's A panel in L2. */
#define OPS_GEMM_ROWS 256

/* y (M, Nout) = beta·y + x (M, K) · wᵀ, one thread (the calling one). */
void ops_sgemm_nt(const float *x, const float *w, float *y, int M, int K, int Nout, float beta);

#endif
