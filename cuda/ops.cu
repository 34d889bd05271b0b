/*
 * ops.cu — CUDA twins of the dense CPU ops (src/ops_cpu.c, contracts in src/backend.h): GEMM on
 * cuBLAS (fp32, TF32 only when asked, bf16/fp16 operands with fp32 accumulation), depthwise 3×3
 * (+bias, +SiLU), dense 3×3/s2 and 4×4/s4 convs, PatchMerging gather, LayerNorm, GELU, SiLU, mul,
 * mean pool. Layout NHWC, C fastest; one thread per output element with C innermost, so a warp's
 * loads and stores are contiguous. All index arithmetic is size_t (maps of 10^9+ elements).
 * Version 1 of each kernel: plain and exact; faster versions grow in tests/bench (STYLE.md 2.2).
 */
#include "ops_cuda.cuh"
#include "gemm_lt.h"
#include "dwconv_vec.cuh"
#include "knobs.h"
#include "stem_fused.cuh"

#include <stdio.h>
#include <stdlib.h>

/* ---- error recording ---------------------------------------------------------------------- */

enum wv_status cuda_fail(cudaError_t e, const char *stmt, const char *op, const char *file,
                         int line)
{
    enum wv_status code = e == cudaErrorMemoryAllocation ? WV_ENOMEM : WV_ECUDA;
    return error_set(code, "cuda %s: %s failed at %s:%d: %s (%s)", op, stmt, file, line,
                     cudaGetErrorString(e), cudaGetErrorName(e));
}

enum wv_status cublas_fail(cublasStatus_t s, const char *stmt, const char *op, const char *file,
                           int line)
{
    enum wv_status code = s == CUBLAS_STATUS_ALLOC_FAILED ? WV_ENOMEM : WV_ECUDA;
    return error_set(code, "cuda %s: %s failed at %s:%d: %s (%s)", op, stmt, file, line,
                     cublasGetStatusString(s), cublasGetStatusName(s));
}

/* ---- GEMM ---------------------------------------------------------------------------------- */

/* One cuBLAS handle per host thread and device (cuBLAS handles are not thread-safe to share;
 * the stream is set per call). Created on first use, kept for the life of the thread. */
#define GEMM_MAX_DEVICES 16
static thread_local cublasHandle_t tl_handle[GEMM_MAX_DEVICES];

static enum wv_status get_handle(cublasHandle_t *out)
{
    int dev = 0;
    CUDA_TRY("gemm", cudaGetDevice(&dev));
    if (dev < 0 || dev >= GEMM_MAX_DEVICES)
        return error_set(WV_EUNSUPPORTED, "cuda gemm: device %d beyond %d", dev, GEMM_MAX_DEVICES);
    if (!tl_handle[dev]) CUBLAS_TRY("gemm", cublasCreate(&tl_handle[dev]));
    *out = tl_handle[dev];
    return WV_OK;
}

extern "C" void cuda_ops_release_thread(void)
{
    gemm_lt_release_thread();
    for (int d = 0; d < GEMM_MAX_DEVICES; d++)
        if (tl_handle[d]) {
            cublasDestroy(tl_handle[d]);
            tl_handle[d] = NULL;
        }
}

__global__ void bias_rows_kernel1(float *y, const float *bias, size_t M, int Nout, int accumulate)
{
    GRID_STRIDE_LOOP(i, M * (size_t)Nout)
    {
        float b = bias[i % Nout];
        y[i] = accumulate ? y[i] + b : b;
    }
}

/* Rows per cuBLAS call: m, n, k are int in the classic API; 2^26 rows × Nout stays far from
 * INT_MAX in every argument cuBLAS multiplies internally for the widths VMamba uses. */
#define GEMM_MAX_ROWS ((size_t)1 << 26)

extern "C" enum wv_status gemm_cuda_ex(const void *x, const void *w, enum wv_dtype dt, int tf32,
                                       const float *bias, float *y, size_t M, int K, int Nout,
                                       int accumulate, cudaStream_t stream)
{
    if (M == 0 || Nout <= 0) return WV_OK;
    cublasHandle_t h = NULL;
    enum wv_status st = get_handle(&h);
    if (st) return st;
    CUBLAS_TRY("gemm", cublasSetStream(h, stream));
    float beta = accumulate ? 1.0f : 0.0f;
    if (bias) {
        bias_rows_kernel1<<<cuda_blocks(M * (size_t)Nout, 256), 256, 0, stream>>>(y, bias, M, Nout,
                                                                               accumulate);
        CUDA_LAUNCH_TRY("gemm bias");
        beta = 1.0f;
    }
    if (K <= 0) {
        if (!bias && !accumulate) CUDA_TRY("gemm", cudaMemsetAsync(y, 0, M * Nout * sizeof(float), stream));
        return WV_OK;
    }
    cudaDataType_t ty = dt == WV_DTYPE_F32 ? CUDA_R_32F : dt == WV_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    cublasComputeType_t ct = (dt == WV_DTYPE_F32 && tf32) ? CUBLAS_COMPUTE_32F_FAST_TF32
                             : dt == WV_DTYPE_F32        ? CUBLAS_COMPUTE_32F_PEDANTIC
                                                         : CUBLAS_COMPUTE_32F;
    size_t es = dtype_size(dt);
    const float one = 1.0f;
    for (size_t r0 = 0; r0 < M; r0 += GEMM_MAX_ROWS) {
        int m = (int)(M - r0 < GEMM_MAX_ROWS ? M - r0 : GEMM_MAX_ROWS);
        /* row-major y (m, Nout) = x (m, K) · wᵀ  ⇔  column-major yᵀ (Nout, m) = w · xᵀ with w
         * seen column-major as (K, Nout) (so op T) and x as (K, m) (op N). */
        CUBLAS_TRY("gemm",
                   cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, Nout, m, K, &one, w, ty, K,
                                (const char *)x + r0 * (size_t)K * es, ty, K, &beta,
                                y + r0 * (size_t)Nout, CUDA_R_32F, Nout, ct, CUBLAS_GEMM_DEFAULT));
    }
    return WV_OK;
}

/* fp32 twin: pure fp32 (no TF32), as the CPU oracle. */
extern "C" void gemm_cuda(const float *x, const float *w, const float *bias, float *y, size_t M,
                          int K, int Nout, int accumulate, cudaStream_t stream)
{
    gemm_cuda_ex(x, w, WV_DTYPE_F32, 0, bias, y, M, K, Nout, accumulate, stream);
}

template <typename T> __global__ void convert_kernel1(const float *x, T *y, size_t n)
{
    GRID_STRIDE_LOOP(i, n) st(y + i, x[i]);
}

extern "C" enum wv_status convert_f32_cuda(const float *x, void *y, enum wv_dtype dt, size_t n,
                                           cudaStream_t s)
{
    if (!n) return WV_OK;
    if (dt == WV_DTYPE_F32) {
        CUDA_TRY("convert", cudaMemcpyAsync(y, x, n * sizeof(float), cudaMemcpyDeviceToDevice, s));
        return WV_OK;
    }
    if (dt == WV_DTYPE_BF16)
        convert_kernel1<<<cuda_blocks(n, 256), 256, 0, s>>>(x, (__nv_bfloat16 *)y, n);
    else
        convert_kernel1<<<cuda_blocks(n, 256), 256, 0, s>>>(x, (__half *)y, n);
    CUDA_LAUNCH_TRY("convert");
    return WV_OK;
}

/* ---- depthwise 3×3 ------------------------------------------------------------------------- */

__global__ void dwconv3_kernel1(const float *x, int x_row0, const float *w, const float *bias,
                                float *y, int y_row0, int y_rows, int H, int W, int C, int silu)
{
    GRID_STRIDE_LOOP(i, (size_t)y_rows * W * C)
    {
        int c = (int)(i % C);
        size_t pix = i / C;
        int ox = (int)(pix % W), oy = y_row0 + (int)(pix / W);
        float acc = bias ? bias[c] : 0.0f;
        /* same tap order as dwconv3_cpu: ky outer, kx inner */
        for (int ky = 0; ky < 3; ky++) {
            int iy = oy + ky - 1;
            if (iy < 0 || iy >= H) continue;
            const float *xrow = x + (size_t)(iy - x_row0) * W * C;
            for (int kx = 0; kx < 3; kx++) {
                int ix = ox + kx - 1;
                if (ix < 0 || ix >= W) continue;
                acc += xrow[(size_t)ix * C + c] * w[(size_t)c * 9 + ky * 3 + kx];
            }
        }
        if (silu) acc = acc / (1.0f + expf(-acc));
        y[i] = acc;
    }
}

enum wv_status dwconv3_cuda_st(const float *x, int x_row0, int x_rows, const float *w,
                               const float *bias, float *y, int y_row0, int y_rows, int H, int W,
                               int C, int silu, cudaStream_t s)
{
    size_t n = (size_t)y_rows * W * C;
    if (!n) return WV_OK;
    dwconv3_kernel1<<<cuda_blocks(n, 256), 256, 0, s>>>(x, x_row0, w, bias, y, y_row0, y_rows, H,
                                                        W, C, silu);
    CUDA_LAUNCH_TRY("dwconv3");
    return WV_OK;
}

extern "C" void dwconv3_cuda(const float *x, int x_row0, int x_rows, const float *w,
                             const float *bias, float *y, int y_row0, int y_rows, int H, int W,
                             int C, int silu, cudaStream_t stream)
{
    dwconv3_cuda_st(x, x_row0, x_rows, w, bias, y, y_row0, y_rows, H, W, C, silu, stream);
}

/* Whole-map version for the model: nimg images, input stored as TI (fp32, or bf16/f16 when the
 * in_proj GEMM wrote its output in the storage dtype), output as TO, SiLU. One warp per pixel,
 * lanes over channels (a pixel's coordinates are divided out once, not per element: 64-bit
 * division is a software routine on the GPU). Same taps and order as dwconv3_kernel1 (exact in
 * f32). */
template <typename TI, typename TO>
__global__ void __launch_bounds__(256)
dwconv3_silu_map_kernel(const TI *__restrict__ x, const float *__restrict__ w,
                        const float *__restrict__ bias, TO *__restrict__ y, size_t npix, int H,
                        int W, int C)
{
    const size_t pix = (size_t)blockIdx.x * 8 + threadIdx.y;
    if (pix >= npix) return;
    const size_t row = pix / W; /* image·H + oy */
    const int ox = (int)(pix - row * W), oy = (int)(row % H);
    const TI *img = x + (row - oy) * W * C;
    TO *yo = y + pix * C;
    /* the 9 taps' loads are independent and unrolled (predicated at the borders), so they are
     * in flight together instead of one memory latency each; the sum keeps the CPU's order */
    bool ok[9];
    size_t off[9];
#pragma unroll
    for (int tap = 0; tap < 9; tap++) {
        const int iy = oy + tap / 3 - 1, ix = ox + tap % 3 - 1;
        ok[tap] = iy >= 0 && iy < H && ix >= 0 && ix < W;
        off[tap] = ok[tap] ? ((size_t)iy * W + ix) * C : 0;
    }
    for (int c = threadIdx.x; c < C; c += 32) {
        float v[9];
#pragma unroll
        for (int tap = 0; tap < 9; tap++) v[tap] = ok[tap] ? ld(img + off[tap] + c) : 0.0f;
        float acc = bias ? bias[c] : 0.0f;
#pragma unroll
        for (int tap = 0; tap < 9; tap++)
            if (ok[tap]) acc += v[tap] * w[(size_t)tap * C + c];
        st(yo + c, acc / (1.0f + expf(-acc)));
    }
}

template <typename TI>
static void dwconv_map_launch(const TI *x, const float *w, const float *bias, void *y,
                              enum wv_dtype dt, size_t npix, int H, int W, int C, cudaStream_t s)
{
    dim3 blk(32, 8), grid((unsigned)((npix + 7) / 8));
    if (dt == WV_DTYPE_F32)
        dwconv3_silu_map_kernel<<<grid, blk, 0, s>>>(x, w, bias, (float *)y, npix, H, W, C);
    else if (dt == WV_DTYPE_BF16)
        dwconv3_silu_map_kernel<<<grid, blk, 0, s>>>(x, w, bias, (__nv_bfloat16 *)y, npix, H, W, C);
    else
        dwconv3_silu_map_kernel<<<grid, blk, 0, s>>>(x, w, bias, (__half *)y, npix, H, W, C);
}

template <typename T>
__global__ void __launch_bounds__(256)
dwconv3_silu_vec_kernel(const T *__restrict__ x, const float *__restrict__ w,
                        const float *__restrict__ bias, T *__restrict__ y, unsigned npix, int H,
                        int W, int C)
{
    dwconv_vec_thread<T>(blockIdx.x * 256u + threadIdx.x, x, w, bias, y, npix, H, W, C);
}

/* The vectorised kernel (cuda/dwconv_vec.cuh) where it applies: 16-bit in and out, C % 8 == 0,
 * 16-byte aligned operands, 32-bit indices; switch WV_DWCONV_VEC (cuda/knobs.h). */
static int dwconv_vec_ok(const void *x, enum wv_dtype x_dt, const float *w, const float *bias,
                         const void *y, enum wv_dtype dt, size_t npix, int C)
{
    if (!wv_knob(WV_KNOB_DWCONV_VEC, WV_KNOB_DWCONV_VEC_DEFAULT)) return 0;
    const uintptr_t a = (uintptr_t)x | (uintptr_t)y | (uintptr_t)w | (uintptr_t)bias;
    return x_dt == dt && dt != WV_DTYPE_F32 && C % 8 == 0 && a % 16 == 0 &&
           npix * (size_t)(C / 8) < ((size_t)1 << 31);
}

enum wv_status dwconv3_silu_map_cuda(const void *x, enum wv_dtype x_dt, const float *w,
                                     const float *bias, void *y, enum wv_dtype dt, int nimg,
                                     int H, int W, int C, cudaStream_t s)
{
    size_t npix = (size_t)nimg * H * W;
    if (!npix || C <= 0) return WV_OK;
    if (dwconv_vec_ok(x, x_dt, w, bias, y, dt, npix, C)) {
        const unsigned n = (unsigned)(npix * (C / 8)), grid = (n + 255) / 256;
        if (dt == WV_DTYPE_BF16)
            dwconv3_silu_vec_kernel<<<grid, 256, 0, s>>>((const __nv_bfloat16 *)x, w, bias,
                                                         (__nv_bfloat16 *)y, (unsigned)npix, H, W, C);
        else
            dwconv3_silu_vec_kernel<<<grid, 256, 0, s>>>((const __half *)x, w, bias, (__half *)y,
                                                         (unsigned)npix, H, W, C);
        CUDA_LAUNCH_TRY("dwconv3_silu_vec");
        return WV_OK;
    }
    if ((npix + 7) / 8 > 0x7fffffffu)
        return error_set(WV_EUNSUPPORTED, "cuda dwconv3: %zu pixels", npix);
    if (x_dt == WV_DTYPE_F32) dwconv_map_launch((const float *)x, w, bias, y, dt, npix, H, W, C, s);
    else if (x_dt == WV_DTYPE_BF16)
        dwconv_map_launch((const __nv_bfloat16 *)x, w, bias, y, dt, npix, H, W, C, s);
    else dwconv_map_launch((const __half *)x, w, bias, y, dt, npix, H, W, C, s);
    CUDA_LAUNCH_TRY("dwconv3_silu_map");
    return WV_OK;
}

/* One warp per output pixel: taps outer, input channels across the lanes (coalesced reads of
 * the NHWC input, coalesced writes of the column row), zero padding to Kp. */
template <typename T>
__global__ void __launch_bounds__(256)
im2col3s2_kernel(const float *__restrict__ x, int x_row0, size_t x_img, T *__restrict__ col,
                 int y_row0, int y_rows, size_t npix, int H, int W, int Ci, int Wo, int Kp)
{
    const size_t pix = (size_t)blockIdx.x * 8 + threadIdx.y;
    if (pix >= npix) return;
    const size_t t = pix / Wo;
    const int ox = (int)(pix - t * Wo);
    const size_t img = t / y_rows;
    const int oy = y_row0 + (int)(t - img * y_rows);
    const float *xi = x + img * x_img;
    T *cr = col + pix * Kp;
    for (int tap = 0; tap < 9; tap++) {
        const int iy = 2 * oy + tap / 3 - 1, ix = 2 * ox + tap % 3 - 1;
        const bool in = iy >= 0 && iy < H && ix >= 0 && ix < W;
        const float *xp = xi + ((size_t)(iy - x_row0) * W + ix) * Ci;
        for (int ci = threadIdx.x; ci < Ci; ci += 32) st(cr + tap * Ci + ci, in ? xp[ci] : 0.0f);
    }
    for (int k = 9 * Ci + threadIdx.x; k < Kp; k += 32) st(cr + k, 0.0f);
}

/* Few input channels (the stem's RGB: 27 of 32 columns): one thread per column element, 32-bit
 * index arithmetic (the caller checks n < 2^32) — a warp per pixel would leave 29 lanes idle. */
template <typename T>
__global__ void im2col3s2_small_kernel(const float *__restrict__ x, int x_row0, size_t x_img,
                                       T *__restrict__ col, int y_row0, int y_rows, unsigned n,
                                       int H, int W, int Ci, int Wo, int Kp)
{
    const unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const unsigned k = i % (unsigned)Kp, pix = i / (unsigned)Kp;
    const unsigned t = pix / (unsigned)Wo, img = t / (unsigned)y_rows;
    const int ox = (int)(pix - t * Wo), oy = y_row0 + (int)(t - img * y_rows);
    float v = 0.0f;
    if ((int)k < 9 * Ci) {
        const int tap = (int)k / Ci, ci = (int)k - tap * Ci;
        const int iy = 2 * oy + tap / 3 - 1, ix = 2 * ox + tap % 3 - 1;
        if (iy >= 0 && iy < H && ix >= 0 && ix < W)
            v = x[img * x_img + ((size_t)(iy - x_row0) * W + ix) * Ci + ci];
    }
    st(col + i, v);
}

enum wv_status im2col3s2_cuda(const float *x, int x_row0, size_t x_img, void *col,
                              enum wv_dtype dt, int y_row0, int y_rows, int nimg, int H, int W,
                              int Ci, int Kp, cudaStream_t s)
{
    int Wo = (W + 1) / 2;
    size_t npix = (size_t)nimg * y_rows * Wo;
    if (!npix) return WV_OK;
    if ((npix + 7) / 8 > 0x7fffffffu) return error_set(WV_EUNSUPPORTED, "cuda im2col: %zu pixels", npix);
    if (Ci < 8 && npix * Kp < 0xffffffffu) {
        unsigned n = (unsigned)(npix * Kp), gb = (n + 255) / 256;
        if (dt == WV_DTYPE_F32)
            im2col3s2_small_kernel<<<gb, 256, 0, s>>>(x, x_row0, x_img, (float *)col, y_row0, y_rows,
                                                      n, H, W, Ci, Wo, Kp);
        else if (dt == WV_DTYPE_BF16)
            im2col3s2_small_kernel<<<gb, 256, 0, s>>>(x, x_row0, x_img, (__nv_bfloat16 *)col, y_row0,
                                                      y_rows, n, H, W, Ci, Wo, Kp);
        else
            im2col3s2_small_kernel<<<gb, 256, 0, s>>>(x, x_row0, x_img, (__half *)col, y_row0, y_rows,
                                                      n, H, W, Ci, Wo, Kp);
        CUDA_LAUNCH_TRY("im2col3s2");
        return WV_OK;
    }
    dim3 blk(32, 8), g((unsigned)((npix + 7) / 8));
    if (dt == WV_DTYPE_F32)
        im2col3s2_kernel<<<g, blk, 0, s>>>(x, x_row0, x_img, (float *)col, y_row0, y_rows, npix,
                                           H, W, Ci, Wo, Kp);
    else if (dt == WV_DTYPE_BF16)
        im2col3s2_kernel<<<g, blk, 0, s>>>(x, x_row0, x_img, (__nv_bfloat16 *)col, y_row0, y_rows,
                                           npix, H, W, Ci, Wo, Kp);
    else
        im2col3s2_kernel<<<g, blk, 0, s>>>(x, x_row0, x_img, (__half *)col, y_row0, y_rows, npix,
                                           H, W, Ci, Wo, Kp);
    CUDA_LAUNCH_TRY("im2col3s2");
    return WV_OK;
}

/* ---- dense k×k / stride s convs (stem, downsample v3, v0 patch embed) ---------------------- */

/* One thread per output (pixel, co). Weights (Co, Ci, k, k) as stored; input reads are
 * broadcast across the co threads of a warp. */
template <int KS, int S, int P>
__global__ void conv_kernel1(const float *x, int x_row0, const float *w, const float *bias,
                             float *y, int y_row0, int y_rows, int H, int W, int Ci, int Co,
                             int Wo)
{
    GRID_STRIDE_LOOP(i, (size_t)y_rows * Wo * Co)
    {
        int co = (int)(i % Co);
        size_t pix = i / Co;
        int ox = (int)(pix % Wo), oy = y_row0 + (int)(pix / Wo);
        const float *wc = w + (size_t)co * Ci * KS * KS;
        float acc = 0.0f;
        for (int ky = 0; ky < KS; ky++) {
            int iy = oy * S + ky - P;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < KS; kx++) {
                int ix = ox * S + kx - P;
                if (ix < 0 || ix >= W) continue;
                const float *xp = x + ((size_t)(iy - x_row0) * W + ix) * Ci;
                for (int ci = 0; ci < Ci; ci++) acc += xp[ci] * wc[(size_t)ci * KS * KS + ky * KS + kx];
            }
        }
        y[i] = acc + (bias ? bias[co] : 0.0f);
    }
}

enum wv_status conv3s2_cuda_st(const float *x, int x_row0, int x_rows, const float *w,
                               const float *bias, float *y, int y_row0, int y_rows, int H, int W,
                               int Ci, int Co, cudaStream_t s)
{
    int Wo = (W + 1) / 2;
    size_t n = (size_t)y_rows * Wo * Co;
    if (!n) return WV_OK;
    conv_kernel1<3, 2, 1><<<cuda_blocks(n, 256), 256, 0, s>>>(x, x_row0, w, bias, y, y_row0,
                                                               y_rows, H, W, Ci, Co, Wo);
    CUDA_LAUNCH_TRY("conv3_s2");
    return WV_OK;
}

extern "C" void conv3s2_cuda(const float *x, int x_row0, int x_rows, const float *w,
                             const float *bias, float *y, int y_row0, int y_rows, int H, int W,
                             int Ci, int Co, cudaStream_t stream)
{
    conv3s2_cuda_st(x, x_row0, x_rows, w, bias, y, y_row0, y_rows, H, W, Ci, Co, stream);
}

enum wv_status patch_embed4_cuda_st(const float *x, int x_row0, int x_rows, const float *w,
                                    const float *bias, float *y, int y_row0, int y_rows, int H,
                                    int W, int Ci, int Co, cudaStream_t s)
{
    int Wo = W / 4;
    size_t n = (size_t)y_rows * Wo * Co;
    if (!n) return WV_OK;
    conv_kernel1<4, 4, 0><<<cuda_blocks(n, 256), 256, 0, s>>>(x, x_row0, w, bias, y, y_row0,
                                                               y_rows, H, W, Ci, Co, Wo);
    CUDA_LAUNCH_TRY("patch_embed4");
    return WV_OK;
}

extern "C" void patch_embed4_cuda(const float *x, int x_row0, int x_rows, const float *w,
                                  const float *bias, float *y, int y_row0, int y_rows, int H,
                                  int W, int Ci, int Co, cudaStream_t stream)
{
    patch_embed4_cuda_st(x, x_row0, x_rows, w, bias, y, y_row0, y_rows, H, W, Ci, Co, stream);
}

/* ---- PatchMerging gather ------------------------------------------------------------------- */

__global__ void patch_merge_kernel1(const float *x, int x_row0, float *y, int y_row0, int y_rows,
                                    int H, int W, int C, int Wo)
{
    GRID_STRIDE_LOOP(i, (size_t)y_rows * Wo * 4 * C)
    {
        int qc = (int)(i % (4 * C));
        size_t pix = i / (4 * C);
        int ox = (int)(pix % Wo), oy = y_row0 + (int)(pix / Wo);
        int q = qc / C, c = qc % C;
        /* (r0,c0), (r1,c0), (r0,c1), (r1,c1) — official x0, x1, x2, x3 */
        int iy = 2 * oy + (q & 1), ix = 2 * ox + (q >> 1);
        y[i] = (iy < H && ix < W) ? x[((size_t)(iy - x_row0) * W + ix) * C + c] : 0.0f;
    }
}

enum wv_status patch_merge_cuda_st(const float *x, int x_row0, int x_rows, float *y, int y_row0,
                                   int y_rows, int H, int W, int C, cudaStream_t s)
{
    int Wo = (W + 1) / 2;
    size_t n = (size_t)y_rows * Wo * 4 * C;
    if (!n) return WV_OK;
    patch_merge_kernel1<<<cuda_blocks(n, 256), 256, 0, s>>>(x, x_row0, y, y_row0, y_rows, H, W,
                                                            C, Wo);
    CUDA_LAUNCH_TRY("patch_merge");
    return WV_OK;
}

extern "C" void patch_merge_cuda(const float *x, int x_row0, int x_rows, float *y, int y_row0,
                                 int y_rows, int H, int W, int C, cudaStream_t stream)
{
    patch_merge_cuda_st(x, x_row0, x_rows, y, y_row0, y_rows, H, W, C, stream);
}

/* ---- LayerNorm ----------------------------------------------------------------------------- */

/* Mean and 1/σ of one row for the calling warp: the mean, then the biased variance around it
 * (two passes, as layernorm_cpu), eps 1e-5. */
__device__ __forceinline__ void warp_row_stats(const float *xr, int C, int lane, float *mean,
                                               float *rstd)
{
    float s = 0.0f;
    for (int c = lane; c < C; c += 32) s += xr[c];
    for (int o = 16; o; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
    const float m = s / C;
    float v = 0.0f;
    for (int c = lane; c < C; c += 32) {
        float d = xr[c] - m;
        v += d * d;
    }
    for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    *mean = m;
    *rstd = 1.0f / sqrtf(v / C + 1e-5f);
}

/* One warp per row: warp_row_stats, then the affine output. Rows are re-read from L1/L2. */
template <typename T>
__global__ void layernorm_kernel1(const float *x, const float *gamma, const float *beta, T *y,
                                  size_t M, int C)
{
    int lane = threadIdx.x & 31;
    size_t warp = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    size_t nwarps = ((size_t)gridDim.x * blockDim.x) >> 5;
    for (size_t row = warp; row < M; row += nwarps) {
        const float *xr = x + row * C;
        float mean, rstd;
        warp_row_stats(xr, C, lane, &mean, &rstd);
        T *yr = y + row * C;
        for (int c = lane; c < C; c += 32) st(yr + c, (xr[c] - mean) * rstd * gamma[c] + beta[c]);
    }
}

enum wv_status layernorm_cuda_dt(const float *x, const float *gamma, const float *beta, void *y,
                                 enum wv_dtype dt, size_t M, int C, cudaStream_t s)
{
    if (!M) return WV_OK;
    unsigned blocks = cuda_blocks(M * 32, 256);
    if (dt == WV_DTYPE_F32)
        layernorm_kernel1<<<blocks, 256, 0, s>>>(x, gamma, beta, (float *)y, M, C);
    else if (dt == WV_DTYPE_BF16)
        layernorm_kernel1<<<blocks, 256, 0, s>>>(x, gamma, beta, (__nv_bfloat16 *)y, M, C);
    else
        layernorm_kernel1<<<blocks, 256, 0, s>>>(x, gamma, beta, (__half *)y, M, C);
    CUDA_LAUNCH_TRY("layernorm");
    return WV_OK;
}

extern "C" void layernorm_cuda(const float *x, const float *gamma, const float *beta, float *y,
                               size_t M, int C, cudaStream_t stream)
{
    layernorm_cuda_dt(x, gamma, beta, y, WV_DTYPE_F32, M, C, stream);
}

/* LayerNorm then erf GELU, fp32 in place (the v2 stem's middle map): one pass instead of two. */
__global__ void layernorm_gelu_kernel(float *x, const float *gamma, const float *beta, size_t M,
                                      int C)
{
    int lane = threadIdx.x & 31;
    size_t warp = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    size_t nwarps = ((size_t)gridDim.x * blockDim.x) >> 5;
    for (size_t row = warp; row < M; row += nwarps) {
        float *xr = x + row * C;
        float mean, rstd;
        warp_row_stats(xr, C, lane, &mean, &rstd);
        for (int c = lane; c < C; c += 32) {
            float t = (xr[c] - mean) * rstd * gamma[c] + beta[c];
            xr[c] = 0.5f * t * (1.0f + erff(t * 0.70710678118654752f));
        }
    }
}

__global__ void __launch_bounds__(128)
stem_conv1_ln_gelu_kernel(const float *__restrict__ x, int x_row0, size_t x_img,
                          const float *__restrict__ wt, const float *__restrict__ bias,
                          const float *__restrict__ gamma, const float *__restrict__ beta,
                          float *__restrict__ mid, int m_row0, int m_rows, unsigned npix, int H,
                          int W, int Cin, int Cm)
{
    stem_conv1_ln_gelu_thread(blockIdx.x * 128u + threadIdx.x, x, x_row0, x_img, wt, bias, gamma,
                              beta, mid, m_row0, m_rows, npix, H, W, Cin, Cm);
}

enum wv_status stem_conv1_ln_gelu_cuda(const float *x, int x_row0, size_t x_img, const float *wt,
                                       const float *bias, const float *gamma, const float *beta,
                                       float *mid, int m_row0, int m_rows, int nimg, int H, int W,
                                       int Cin, int Cm, cudaStream_t s)
{
    const size_t npix = (size_t)nimg * m_rows * ((W + 1) / 2);
    if (!npix) return WV_OK;
    if (Cm > STEM_FUSED_CMAX || Cm % 4 || npix >= ((size_t)1 << 31) || (uintptr_t)wt % 16 ||
        (uintptr_t)mid % 16)
        return error_set(WV_EINVAL, "cuda stem conv 1 (fused): Cm %d, %zu pixels", Cm, npix);
    stem_conv1_ln_gelu_kernel<<<(unsigned)((npix + 127) / 128), 128, 0, s>>>(
        x, x_row0, x_img, wt, bias, gamma, beta, mid, m_row0, m_rows, (unsigned)npix, H, W, Cin, Cm);
    CUDA_LAUNCH_TRY("stem_conv1_ln_gelu");
    return WV_OK;
}

enum wv_status layernorm_gelu_cuda(float *x, const float *gamma, const float *beta, size_t M,
                                   int C, cudaStream_t s)
{
    if (!M) return WV_OK;
    layernorm_gelu_kernel<<<cuda_blocks(M * 32, 256), 256, 0, s>>>(x, gamma, beta, M, C);
    CUDA_LAUNCH_TRY("layernorm_gelu");
    return WV_OK;
}

/* ---- elementwise ------------------------------------------------------------------------- */

template <typename T> __global__ void gelu_kernel1(const float *x, T *y, size_t n)
{
    GRID_STRIDE_LOOP(i, n) st(y + i, 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f)));
}
__global__ void silu_kernel1(const float *x, float *y, size_t n)
{
    GRID_STRIDE_LOOP(i, n) y[i] = x[i] / (1.0f + expf(-x[i]));
}
__global__ void mul_kernel1(const float *a, const float *b, float *y, size_t n)
{
    GRID_STRIDE_LOOP(i, n) y[i] = a[i] * b[i];
}
template <typename T> __global__ void mul_silu_kernel1(const float *x, const float *z, T *y, size_t n)
{
    GRID_STRIDE_LOOP(i, n)
    {
        float zz = z[i];
        st(y + i, x[i] * (zz / (1.0f + expf(-zz))));
    }
}

enum wv_status gelu_cuda_dt(const float *x, void *y, enum wv_dtype dt, size_t n, cudaStream_t s)
{
    if (!n) return WV_OK;
    if (dt == WV_DTYPE_F32) gelu_kernel1<<<cuda_blocks(n, 256), 256, 0, s>>>(x, (float *)y, n);
    else if (dt == WV_DTYPE_BF16)
        gelu_kernel1<<<cuda_blocks(n, 256), 256, 0, s>>>(x, (__nv_bfloat16 *)y, n);
    else gelu_kernel1<<<cuda_blocks(n, 256), 256, 0, s>>>(x, (__half *)y, n);
    CUDA_LAUNCH_TRY("gelu");
    return WV_OK;
}

enum wv_status mul_silu_cuda_dt(const float *x, const float *z, void *y, enum wv_dtype dt,
                                size_t n, cudaStream_t s)
{
    if (!n) return WV_OK;
    if (dt == WV_DTYPE_F32) mul_silu_kernel1<<<cuda_blocks(n, 256), 256, 0, s>>>(x, z, (float *)y, n);
    else if (dt == WV_DTYPE_BF16)
        mul_silu_kernel1<<<cuda_blocks(n, 256), 256, 0, s>>>(x, z, (__nv_bfloat16 *)y, n);
    else mul_silu_kernel1<<<cuda_blocks(n, 256), 256, 0, s>>>(x, z, (__half *)y, n);
    CUDA_LAUNCH_TRY("mul_silu");
    return WV_OK;
}

extern "C" void gelu_cuda(const float *x, float *y, size_t n, cudaStream_t stream)
{
    gelu_cuda_dt(x, y, WV_DTYPE_F32, n, stream);
}

static enum wv_status silu_st(const float *x, float *y, size_t n, cudaStream_t s)
{
    if (!n) return WV_OK;
    silu_kernel1<<<cuda_blocks(n, 256), 256, 0, s>>>(x, y, n);
    CUDA_LAUNCH_TRY("silu");
    return WV_OK;
}
extern "C" void silu_cuda(const float *x, float *y, size_t n, cudaStream_t stream)
{
    silu_st(x, y, n, stream);
}

static enum wv_status mul_st(const float *a, const float *b, float *y, size_t n, cudaStream_t s)
{
    if (!n) return WV_OK;
    mul_kernel1<<<cuda_blocks(n, 256), 256, 0, s>>>(a, b, y, n);
    CUDA_LAUNCH_TRY("mul");
    return WV_OK;
}
extern "C" void mul_cuda(const float *a, const float *b, float *y, size_t n, cudaStream_t stream)
{
    mul_st(a, b, y, n, stream);
}

/* ---- mean pool ----------------------------------------------------------------------------- */

/* Block = 32 channels × 8 row groups; each thread sums its rows in double (as mean_pool_cpu
 * does), then the 8 partial sums are added in a fixed order: deterministic. */
__global__ void mean_pool_kernel1(const float *x, float *y, size_t L, int C)
{
    __shared__ double part[8][32];
    int tx = threadIdx.x & 31, ty = threadIdx.x >> 5;
    int c = blockIdx.x * 32 + tx;
    double s = 0.0;
    if (c < C)
        for (size_t l = ty; l < L; l += 8) s += x[l * C + c];
    part[ty][tx] = s;
    __syncthreads();
    if (ty == 0 && c < C) {
        double t = 0.0;
        for (int g = 0; g < 8; g++) t += part[g][tx];
        y[c] = (float)(t / (double)(L ? L : 1));
    }
}

enum wv_status mean_pool_cuda_st(const float *x, float *y, size_t L, int C, cudaStream_t s)
{
    if (C <= 0) return WV_OK;
    mean_pool_kernel1<<<(C + 31) / 32, 256, 0, s>>>(x, y, L, C);
    CUDA_LAUNCH_TRY("mean_pool");
    return WV_OK;
}

extern "C" void mean_pool_cuda(const float *x, float *y, size_t L, int C, cudaStream_t stream)
{
    mean_pool_cuda_st(x, y, L, C, stream);
}
