/*
 * ops_cuda.cuh — C++-side launchers of cuda/ops.cu that the GPU model (vmamba.cu) uses beyond the
 * C twins: LayerNorm / GELU / SiLU-gate writing the GEMM operand dtype directly (fused
 * conversion), and status-returning forms of the twins. Defined in ops.cu.
 */
#ifndef WV_CUDA_OPS_CUH
#define WV_CUDA_OPS_CUH

#include "common.cuh"

extern "C" {
#include "cuda/backend_cuda.h"
}

/* LayerNorm over C of M rows, fp32 in, output stored as `dt` (float/bf16/f16). y may equal x
 * only for dt == f32. */
enum wv_status layernorm_cuda_dt(const float *x, const float *gamma, const float *beta, void *y,
                                 enum wv_dtype dt, size_t M, int C, cudaStream_t s);
/* x = GELU(LayerNorm(x)) in place, fp32 (same formulas as the two ops in sequence) */
/* v2 stem conv 1 (3×3/s2 + bias) + LayerNorm + GELU in one pass (cuda/stem_fused.cuh): output
 * rows [m_row0, m_row0 + m_rows) of nimg images into mid (·, Cm) fp32; wt (9·Cin, Cm) fp32. */
enum wv_status stem_conv1_ln_gelu_cuda(const float *x, int x_row0, size_t x_img, const float *wt,
                                       const float *bias, const float *gamma, const float *beta,
                                       float *mid, int m_row0, int m_rows, int nimg, int H, int W,
                                       int Cin, int Cm, cudaStream_t s);
enum wv_status layernorm_gelu_cuda(float *x, const float *gamma, const float *beta, size_t M,
                                   int C, cudaStream_t s);
/* y (as dt) = GELU(x) */
enum wv_status gelu_cuda_dt(const float *x, void *y, enum wv_dtype dt, size_t n, cudaStream_t s);
/* y (as dt) = x ⊙ SiLU(z)  (v0 gate after out_norm) */
enum wv_status mul_silu_cuda_dt(const float *x, const float *z, void *y, enum wv_dtype dt,
                                size_t n, cudaStream_t s);

enum wv_status dwconv3_cuda_st(const float *x, int x_row0, int x_rows, const float *w,
                               const float *bias, float *y, int y_row0, int y_rows, int H, int W,
                               int C, int silu, cudaStream_t s);
enum wv_status conv3s2_cuda_st(const float *x, int x_row0, int x_rows, const float *w,
                               const float *bias, float *y, int y_row0, int y_rows, int H, int W,
                               int Ci, int Co, cudaStream_t s);
enum wv_status patch_embed4_cuda_st(const float *x, int x_row0, int x_rows, const float *w,
                                    const float *bias, float *y, int y_row0, int y_rows, int H,
                                    int W, int Ci, int Co, cudaStream_t s);
enum wv_status patch_merge_cuda_st(const float *x, int x_row0, int x_rows, float *y, int y_row0,
                                   int y_rows, int H, int W, int C, cudaStream_t s);
enum wv_status mean_pool_cuda_st(const float *x, float *y, size_t L, int C, cudaStream_t s);

/* Depthwise 3×3 (+bias) + SiLU over `nimg` whole images (n, H, W, C) stored as x_dt → y stored
 * as dt (the model's u: scan input and x_proj operand); w transposed to (9, C). Same tap order as
 * dwconv3_cpu. */
enum wv_status dwconv3_silu_map_cuda(const void *x, enum wv_dtype x_dt, const float *w,
                                     const float *bias, void *y, enum wv_dtype dt, int nimg,
                                     int H, int W, int C, cudaStream_t s);
/* im2col of a 3×3 / stride 2 / pad 1 conv: output rows [y_row0, y_row0 + y_rows) of `nimg`
 * images (image i's input at x + i·x_img, holding input rows from x_row0 on) → col (nimg·y_rows·
 * Wo, Kp) in dt, column k = (ky·3 + kx)·Ci + ci, zero for k >= 9·Ci (Kp = vc_conv_k(Ci)). The
 * conv is then one GEMM with the weights reordered the same way (vmamba.cu). */
enum wv_status im2col3s2_cuda(const float *x, int x_row0, size_t x_img, void *col,
                              enum wv_dtype dt, int y_row0, int y_rows, int nimg, int H, int W,
                              int Ci, int Kp, cudaStream_t s);

static inline size_t dtype_size(enum wv_dtype dt) { return dt == WV_DTYPE_F32 ? 4 : 2; }

#endif
