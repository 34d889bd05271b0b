/*
 * ops.h — helpers shared by the CPU op files (ops_cpu.c, ops_cpu_fast.c, ss2d.c, vmamba.c): the
 * fixed GEMM tiling that makes work splits thread-count independent, single-threaded sgemm
 * wrappers, and the fast twins of the plain CPU ops (ops_cpu_fast.c). The op prototypes
 * themselves are the contract in backend.h; the plain ops there are the oracles the fast twins
 * are tested against (tests/unit/test_ops.c).
 */
#ifndef WV_OPS_H
#define WV_OPS_H

#include <stddef.h>

#include "backend.h"

/* Rows per sgemm tile in gemm_cpu: fixed, so the split (and the result) never depends on the
 * thread count; 256 rows × K ≤ 3072 floats keeps a tile's A panel in L2. */
#define OPS_GEMM_ROWS 256
/* When a GEMM has fewer row tiles than this, its output columns are split too (tiles of at
 * least 64 columns), so small-M GEMMs (late stages, per-image x_proj) still feed every core. */
#define OPS_GEMM_MIN_TILES 8

/* The tile grid of an (M, K) · (N, K)ᵀ product: tiles of `rows` × `cols`, row-tile major,
 * ncb column tiles per row tile, n tiles in all. A function of the shape only. */
struct ops_tiles {
    int rows, cols, ncb;
    long n;
};
void ops_gemm_tiles(size_t M, int K, int N, struct ops_tiles *t);

/* y (M, Nout) = beta·y + x (M, K) · wᵀ, one thread (the calling one). */
void ops_sgemm_nt(const float *x, const float *w, float *y, int M, int K, int Nout, float beta);
/* The same with leading dimensions: x (M, K) stride ldx, w (N, K) stride ldw, y (M, N) stride ldy. */
void ops_sgemm_nt_ld(const float *x, int ldx, const float *w, int ldw, float *y, int ldy, int M,
                     int K, int N, float beta);

/* ---- fast twins (ops_cpu_fast.c): AVX-512 when the CPU has it (and WV_NO_AVX512 is unset),
 * else the plain op. Same arguments and contracts as the plain op named without _fast. ---- */
int ops_have_avx512(void);
void layernorm_cpu_fast(const float *x, const float *gamma, const float *beta, float *y, size_t M,
                        int C);
void gelu_cpu_fast(const float *x, float *y, size_t n);
void silu_cpu_fast(const float *x, float *y, size_t n);
void dwconv3_cpu_fast(const float *x, int x_row0, int x_rows, const float *w, const float *bias,
                      float *y, int y_row0, int y_rows, int H, int W, int C, int silu);
void conv3s2_cpu_fast(const float *x, int x_row0, int x_rows, const float *w, const float *bias,
                      float *y, int y_row0, int y_rows, int H, int W, int Ci, int Co);
void ss2d_scan_merge_cpu_fast(const float *u, const float *xdbl, const float *dt_w,
                              const float *dt_b, const float *A, const float *Ds, float *y, int H,
                              int W, int Dn, int R, int N);
/* Single-thread row kernels for fused per-tile work inside one OpenMP region (vmamba.c):
 * LayerNorm of M rows of C (y may equal x), GELU / SiLU of n values in place. */
void ops_layernorm_rows(const float *x, const float *gamma, const float *beta, float *y, size_t M,
                        int C);
void ops_gelu_rows(float *x, size_t n);
void ops_silu_rows(float *x, size_t n);
/* Batched over nimg whole consecutive images (x, y (nimg, H, W, C); u, y (nimg, H, W, Dn), xdbl
 * (nimg, H, W, K, R+2N)) in one parallel region, same results as per image. */
void ops_dwconv3_images(int nimg, const float *x, const float *w, const float *bias, float *y,
                        int H, int W, int C, int silu);
/* Dense 3×3/s2 over nimg images (image i at x + i·x_stride → y + i·y_stride, each a band as in
 * conv3s2_cpu), optionally followed per output pixel by LayerNorm(Co) (ln_g, ln_b) and GELU. */
void ops_conv3s2_post(int nimg, const float *x, size_t x_stride, int x_row0, const float *w,
                      const float *bias, float *y, size_t y_stride, int y_row0, int y_rows, int H,
                      int W, int Ci, int Co, const float *ln_g, const float *ln_b, int gelu);
void ops_ss2d_images(int nimg, const float *u, const float *xdbl, const float *dt_w,
                     const float *dt_b, const float *A, const float *Ds, float *y, int H, int W,
                     int Dn, int R, int N);
/* y = softplus(x) (threshold 20) elementwise with the scan's vector math; for tests. */
void ops_softplus_fast(const float *x, float *y, size_t n);

#endif
