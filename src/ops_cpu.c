/*
 * ops_cpu.c — CPU reference ops (backend.h): GEMM (OpenBLAS sgemm over fixed row blocks),
 * depthwise 3×3, dense 3×3/s2 and 4×4/s4 convs (row-wise im2col + sgemm), PatchMerging gather,
 * LayerNorm, GELU (erf), SiLU, elementwise mul, mean pool. Plain fp32 loops with the channel
 * dim innermost (contiguous in NHWC, so the compiler vectorises them). Twins: cuda/ops.cu.
 */
#include "ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

void ops_sgemm_nt_ld(const float *x, int ldx, const float *w, int ldw, float *y, int ldy, int M,
                     int K, int N, float beta)
{
    if (M <= 0 || N <= 0) return;
    if (K == 0) {
        if (beta == 0.0f)
            for (int i = 0; i < M; i++) memset(y + (size_t)i * ldy, 0, N * sizeof *y);
        return;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, ldx, w, ldw, beta, y,
                ldy);
}

void ops_sgemm_nt(const float *x, const float *w, float *y, int M, int K, int Nout, float beta)
{
    ops_sgemm_nt_ld(x, K, w, K, y, Nout, M, K, Nout, beta);
}

void ops_gemm_tiles(size_t M, int K, int N, struct ops_tiles *t)
{
    (void)K;
    long nrb = (long)((M + OPS_GEMM_ROWS - 1) / OPS_GEMM_ROWS);
    int ncb = 1;
    if (nrb < OPS_GEMM_MIN_TILES && N > 64) {
        long want = (OPS_GEMM_MIN_TILES + nrb - 1) / (nrb ? nrb : 1);
        long most = (N + 63) / 64;
        ncb = (int)(want < most ? want : most);
    }
    int cols = (N + ncb - 1) / ncb;
    cols = (cols + 15) / 16 * 16;
    if (cols > N) cols = N;
    t->rows = OPS_GEMM_ROWS;
    t->cols = cols > 0 ? cols : 1;
    t->ncb = N > 0 ? (N + t->cols - 1) / t->cols : 1;
    t->n = nrb * t->ncb;
}

void gemm_cpu(const float *x, const float *w, const float *bias, float *y, size_t M, int K,
              int Nout, int accumulate)
{
    struct ops_tiles tl;
    ops_gemm_tiles(M, K, Nout, &tl);
#pragma omp parallel for schedule(dynamic, 1) if (tl.n > 1)
    for (long t = 0; t < tl.n; t++) {
        size_t r0 = (size_t)(t / tl.ncb) * tl.rows;
        int j0 = (int)(t % tl.ncb) * tl.cols;
        int m = (int)(M - r0 < (size_t)tl.rows ? M - r0 : (size_t)tl.rows);
        int nc = Nout - j0 < tl.cols ? Nout - j0 : tl.cols;
        float *yb = y + r0 * Nout + j0;
        float beta = accumulate ? 1.0f : 0.0f;
        if (bias) {
            if (accumulate) {
                for (int i = 0; i < m; i++)
                    for (int j = 0; j < nc; j++) yb[(size_t)i * Nout + j] += bias[j0 + j];
            } else {
                for (int i = 0; i < m; i++)
                    memcpy(yb + (size_t)i * Nout, bias + j0, nc * sizeof *yb);
            }
            beta = 1.0f;
        }
        ops_sgemm_nt_ld(x + r0 * K, K, w + (size_t)j0 * K, K, yb, Nout, m, K, nc, beta);
    }
}

/* Depthwise 3×3: taps transposed to (9, C) so the inner loop runs over contiguous channels. */
void dwconv3_cpu(const float *x, int x_row0, int x_rows, const float *w, const float *bias,
                 float *y, int y_row0, int y_rows, int H, int W, int C, int silu)
{
    float *wt = malloc((size_t)9 * C * sizeof *wt);
    if (!wt) abort(); /* 9·C floats; C ≤ a few thousand */
    for (int c = 0; c < C; c++)
        for (int k = 0; k < 9; k++) wt[(size_t)k * C + c] = w[(size_t)c * 9 + k];
#pragma omp parallel for schedule(dynamic, 1)
    for (int r = 0; r < y_rows; r++) {
        int oy = y_row0 + r;
        float *yrow = y + (size_t)r * W * C;
        for (int ox = 0; ox < W; ox++) {
            float *acc = yrow + (size_t)ox * C;
            for (int c = 0; c < C; c++) acc[c] = bias ? bias[c] : 0.0f;
            for (int ky = 0; ky < 3; ky++) {
                int iy = oy + ky - 1;
                if (iy < 0 || iy >= H) continue;
                const float *xrow = x + (size_t)(iy - x_row0) * W * C;
                for (int kx = 0; kx < 3; kx++) {
                    int ix = ox + kx - 1;
                    if (ix < 0 || ix >= W) continue;
                    const float *xp = xrow + (size_t)ix * C;
                    const float *wk = wt + (size_t)(ky * 3 + kx) * C;
                    for (int c = 0; c < C; c++) acc[c] += xp[c] * wk[c];
                }
            }
            if (silu)
                for (int c = 0; c < C; c++) acc[c] = acc[c] / (1.0f + expf(-acc[c]));
        }
    }
    (void)x_rows;
    free(wt);
}

/* Dense k×k conv with stride s and padding p, one output row at a time: im2col of the row in
 * the weight's (ci, ky, kx) order, then (Wo, Ci·k·k) · wᵀ with one-thread sgemm. */
static void conv_rows(const float *x, int x_row0, const float *w, const float *bias, float *y,
                      int y_row0, int y_rows, int H, int W, int Ci, int Co, int k, int s, int p,
                      int Wo)
{
    int KK = Ci * k * k;
#pragma omp parallel
    {
        float *col = malloc((size_t)Wo * KK * sizeof *col);
        if (!col) abort();
#pragma omp for schedule(dynamic, 1)
        for (int r = 0; r < y_rows; r++) {
            int oy = y_row0 + r;
            for (int ox = 0; ox < Wo; ox++) {
                float *cp = col + (size_t)ox * KK;
                for (int ky = 0; ky < k; ky++) {
                    int iy = oy * s + ky - p;
                    for (int kx = 0; kx < k; kx++) {
                        int ix = ox * s + kx - p;
                        int inside = iy >= 0 && iy < H && ix >= 0 && ix < W;
                        const float *xp =
                            inside ? x + ((size_t)(iy - x_row0) * W + ix) * Ci : NULL;
                        for (int ci = 0; ci < Ci; ci++)
                            cp[(size_t)ci * k * k + ky * k + kx] = inside ? xp[ci] : 0.0f;
                    }
                }
            }
            float *yrow = y + (size_t)r * Wo * Co;
            float beta = 0.0f;
            if (bias) {
                for (int ox = 0; ox < Wo; ox++) memcpy(yrow + (size_t)ox * Co, bias, Co * sizeof *yrow);
                beta = 1.0f;
            }
            ops_sgemm_nt(col, w, yrow, Wo, KK, Co, beta);
        }
        free(col);
    }
}

void conv3s2_cpu(const float *x, int x_row0, int x_rows, const float *w, const float *bias,
                 float *y, int y_row0, int y_rows, int H, int W, int Ci, int Co)
{
    (void)x_rows;
    conv_rows(x, x_row0, w, bias, y, y_row0, y_rows, H, W, Ci, Co, 3, 2, 1, (W + 1) / 2);
}

void patch_embed4_cpu(const float *x, int x_row0, int x_rows, const float *w, const float *bias,
                      float *y, int y_row0, int y_rows, int H, int W, int Ci, int Co)
{
    (void)x_rows;
    conv_rows(x, x_row0, w, bias, y, y_row0, y_rows, H, W, Ci, Co, 4, 4, 0, W / 4);
}

void patch_merge_cpu(const float *x, int x_row0, int x_rows, float *y, int y_row0, int y_rows,
                     int H, int W, int C)
{
    int Wo = (W + 1) / 2;
    (void)x_rows;
    /* order of the four: (r0,c0), (r1,c0), (r0,c1), (r1,c1) — official x0, x1, x2, x3 */
    static const int dr[4] = {0, 1, 0, 1}, dc[4] = {0, 0, 1, 1};
#pragma omp parallel for schedule(static)
    for (int r = 0; r < y_rows; r++) {
        int oy = y_row0 + r;
        for (int ox = 0; ox < Wo; ox++) {
            float *yp = y + ((size_t)r * Wo + ox) * 4 * C;
            for (int q = 0; q < 4; q++) {
                int iy = 2 * oy + dr[q], ix = 2 * ox + dc[q];
                if (iy < H && ix < W)
                    memcpy(yp + (size_t)q * C, x + ((size_t)(iy - x_row0) * W + ix) * C,
                           C * sizeof *yp);
                else
                    memset(yp + (size_t)q * C, 0, C * sizeof *yp);
            }
        }
    }
}

void layernorm_cpu(const float *x, const float *gamma, const float *beta, float *y, size_t M,
                   int C)
{
#pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)M; i++) {
        const float *xr = x + (size_t)i * C;
        float *yr = y + (size_t)i * C;
        float s = 0.0f;
        for (int c = 0; c < C; c++) s += xr[c];
        float mean = s / C;
        float v = 0.0f;
        for (int c = 0; c < C; c++) {
            float d = xr[c] - mean;
            v += d * d;
        }
        float rstd = 1.0f / sqrtf(v / C + 1e-5f);
        for (int c = 0; c < C; c++) yr[c] = (xr[c] - mean) * rstd * gamma[c] + beta[c];
    }
}

void gelu_cpu(const float *x, float *y, size_t n)
{
#pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
}

void silu_cpu(const float *x, float *y, size_t n)
{
#pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

void mul_cpu(const float *a, const float *b, float *y, size_t n)
{
#pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)n; i++) y[i] = a[i] * b[i];
}

void mean_pool_cpu(const float *x, float *y, size_t L, int C)
{
    for (int c = 0; c < C; c++) {
        double s = 0.0;
        for (size_t l = 0; l < L; l++) s += x[l * C + c];
        y[c] = (float)(s / (double)(L ? L : 1));
    }
}
