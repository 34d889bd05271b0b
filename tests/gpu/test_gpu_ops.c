/*
 * test_gpu_ops.c — every dense CUDA op (cuda/ops.cu) against its CPU twin (src/ops_cpu.c) on
 * seeded random inputs of awkward shapes: odd H and W, sizes that are not multiples of 32 or of
 * a block, 1×1 maps, single rows, row bands that start inside the map, B·L = 1. Guard bands
 * around every output. Exit 77 without a device.
 *
 * Tolerances (gt_compare: |d| <= tol·(rms(ref) + |ref|)):
 *   fp32 ops: 1e-5. Differences come only from summation order (cuBLAS / conv loops vs OpenBLAS
 *     im2col; K up to 1536 terms) and FMA contraction: observed ~1e-7..1e-6 relative, so 1e-5
 *     leaves 10× headroom while still catching any wrong index (errors O(1)).
 *   GEMM with bf16 / f16 operands, vs the CPU GEMM on the same operands rounded to bf16 / f16 on
 *     the host: products of 8/11-bit mantissas are exact in fp32 and cuBLAS accumulates in fp32,
 *     so this is as tight as fp32: 1e-5.
 *   the same GEMMs vs unrounded fp32 operands (what the model sees): bf16 2e-2 (2^-8 relative
 *     rounding of each operand, ~√2·2^-8 ≈ 5.5e-3 of the output RMS, max over 10^5 elements
 *     ~3.5σ), f16 3e-3, TF32 3e-3 (10-bit mantissa like f16).
 *   GELU / SiLU / mul: 1e-6 (one elementwise op; CUDA erff/expf are within 2 ulp).
 */
#include <math.h>

#include "cuda/gemm_lt.h"
#include "gpu_test.h"
#include "src/backend.h"

static float round_bf16(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}
static float round_f16(float x) { return (float)(_Float16)x; }

static void test_gemm(size_t M, int K, int Nout, int with_bias, int acc)
{
    char label[128];
    float *x = gt_rand(M * K, -1, 1), *w = gt_rand((size_t)Nout * K, -1, 1);
    float *bias = gt_rand(Nout, -1, 1), *y0 = gt_rand(M * Nout, -1, 1);
    float *ref = malloc(M * Nout * sizeof *ref);
    memcpy(ref, y0, M * Nout * sizeof *ref);
    gemm_cpu(x, w, with_bias ? bias : NULL, ref, M, K, Nout, acc);
    struct gt_buf dx = gt_alloc(M * K, x), dw = gt_alloc((size_t)Nout * K, w),
                  db = gt_alloc(Nout, bias), dy = gt_alloc(M * Nout, y0);
    gemm_cuda(dx.d, dw.d, with_bias ? db.d : NULL, dy.d, M, K, Nout, acc, 0);
    snprintf(label, sizeof label, "gemm f32 %zux%dx%d b%d a%d", M, K, Nout, with_bias, acc);
    float *got = gt_fetch(dy, label);
    gt_compare(label, got, ref, M * Nout, 1e-5);
    free(got);

    /* TF32 (only when asked): vs fp32 reference */
    cudaMemcpy(dy.d, y0, M * Nout * sizeof(float), cudaMemcpyHostToDevice);
    gemm_cuda_ex(dx.d, dw.d, WV_DTYPE_F32, 1, with_bias ? db.d : NULL, dy.d, M, K, Nout, acc, 0);
    snprintf(label, sizeof label, "gemm tf32 %zux%dx%d", M, K, Nout);
    got = gt_fetch(dy, label);
    gt_compare(label, got, ref, M * Nout, 3e-3);
    free(got);

    /* bf16 / f16 operands */
    for (int t = 0; t < 2; t++) {
        enum wv_dtype dt = t ? WV_DTYPE_F16 : WV_DTYPE_BF16;
        float *xr = malloc(M * K * sizeof *xr), *wr = malloc((size_t)Nout * K * sizeof *wr);
        float *ref_r = malloc(M * Nout * sizeof *ref_r);
        for (size_t i = 0; i < M * K; i++) xr[i] = t ? round_f16(x[i]) : round_bf16(x[i]);
        for (size_t i = 0; i < (size_t)Nout * K; i++) wr[i] = t ? round_f16(w[i]) : round_bf16(w[i]);
        memcpy(ref_r, y0, M * Nout * sizeof *ref_r);
        gemm_cpu(xr, wr, with_bias ? bias : NULL, ref_r, M, K, Nout, acc);
        void *dxh = NULL, *dwh = NULL;
        cudaMalloc(&dxh, M * K * 2 + 2);
        cudaMalloc(&dwh, (size_t)Nout * K * 2 + 2);
        convert_f32_cuda(dx.d, dxh, dt, M * K, 0);
        convert_f32_cuda(dw.d, dwh, dt, (size_t)Nout * K, 0);
        cudaMemcpy(dy.d, y0, M * Nout * sizeof(float), cudaMemcpyHostToDevice);
        gemm_cuda_ex(dxh, dwh, dt, 0, with_bias ? db.d : NULL, dy.d, M, K, Nout, acc, 0);
        snprintf(label, sizeof label, "gemm %s %zux%dx%d (rounded ref)", wv_dtype_name(dt), M, K, Nout);
        got = gt_fetch(dy, label);
        gt_compare(label, got, ref_r, M * Nout, 1e-5);
        snprintf(label, sizeof label, "gemm %s %zux%dx%d (fp32 ref)", wv_dtype_name(dt), M, K, Nout);
        gt_compare(label, got, ref, M * Nout, t ? 3e-3 : 2e-2);
        free(got);
        free(xr), free(wr), free(ref_r);
        cudaFree(dxh), cudaFree(dwh);
    }
    gt_free(dx), gt_free(dw), gt_free(db), gt_free(dy);
    free(x), free(w), free(bias), free(y0), free(ref);
}

static float gelu_tanh(float v)
{
    return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
}

/* gemm_lt_cuda (cuda/gemm_lt.cu): bf16 operands; output fp32 (optionally accumulated, bias
 * fp32) or bf16 (bias bf16, optionally GELU): against gemm_cpu on the rounded operands + the
 * epilogue on the host. Guard words after the bf16 output catch stray writes. */
static void test_gemm_lt(size_t M, int K, int Nout, enum gemm_epi epi, int out_bf16, int acc)
{
    char label[160];
    snprintf(label, sizeof label, "gemm_lt %zux%dx%d epi %d out %s acc %d", M, K, Nout, (int)epi,
             out_bf16 ? "bf16" : "f32", acc);
    float *x = gt_rand(M * K, -1, 1), *w = gt_rand((size_t)Nout * K, -1, 1);
    float *bias = gt_rand(Nout, -1, 1), *y0 = gt_rand(M * Nout, -1, 1);
    for (size_t i = 0; i < M * K; i++) x[i] = round_bf16(x[i]);
    for (size_t i = 0; i < (size_t)Nout * K; i++) w[i] = round_bf16(w[i]);
    if (out_bf16)
        for (int i = 0; i < Nout; i++) bias[i] = round_bf16(bias[i]);
    float *ref = malloc(M * Nout * sizeof *ref);
    memcpy(ref, y0, M * Nout * sizeof *ref);
    gemm_cpu(x, w, epi != GEMM_EPI_NONE ? bias : NULL, ref, M, K, Nout, acc);
    if (epi == GEMM_EPI_GELU_BIAS)
        for (size_t i = 0; i < M * Nout; i++) ref[i] = gelu_tanh(ref[i]);
    struct gt_buf dx = gt_alloc(M * K, x), dw = gt_alloc((size_t)Nout * K, w), db = gt_alloc(Nout, bias);
    void *dxh = NULL, *dwh = NULL, *dbh = NULL;
    cudaMalloc(&dxh, M * K * 2 + 2);
    cudaMalloc(&dwh, (size_t)Nout * K * 2 + 2);
    cudaMalloc(&dbh, (size_t)Nout * 2 + 2);
    convert_f32_cuda(dx.d, dxh, WV_DTYPE_BF16, M * K, 0);
    convert_f32_cuda(dw.d, dwh, WV_DTYPE_BF16, (size_t)Nout * K, 0);
    convert_f32_cuda(db.d, dbh, WV_DTYPE_BF16, Nout, 0);
    float *got = NULL;
    if (!out_bf16) {
        struct gt_buf dy = gt_alloc(M * Nout, y0);
        enum wv_status st = gemm_lt_cuda(dxh, dwh, WV_DTYPE_BF16, db.d, dy.d, WV_DTYPE_F32, M, K, Nout,
                                         acc, epi, 0);
        CHECK_MSG(st == WV_OK, "%s: %s", label, error_msg());
        got = gt_fetch(dy, label);
        gt_compare(label, got, ref, M * Nout, 1e-5);
        gt_free(dy);
    } else {
        size_t n = M * Nout, guard = 64;
        uint16_t *h = malloc((n + guard) * 2);
        void *dy = NULL;
        cudaMalloc(&dy, (n + guard) * 2);
        cudaMemset(dy, 0xff, (n + guard) * 2);
        enum wv_status st = gemm_lt_cuda(dxh, dwh, WV_DTYPE_BF16, dbh, dy, WV_DTYPE_BF16, M, K, Nout,
                                         0, epi, 0);
        CHECK_MSG(st == WV_OK, "%s: %s", label, error_msg());
        cudaDeviceSynchronize();
        cudaMemcpy(h, dy, (n + guard) * 2, cudaMemcpyDeviceToHost);
        int bad = 0;
        for (size_t i = n; i < n + guard; i++) bad += h[i] != 0xffff;
        CHECK_MSG(!bad, "%s: %d guard words overwritten", label, bad);
        got = malloc(n * sizeof *got);
        for (size_t i = 0; i < n; i++) {
            uint32_t u = (uint32_t)h[i] << 16;
            memcpy(&got[i], &u, 4);
        }
        gt_compare(label, got, ref, n, 8e-3); /* bf16 output rounding: 2^-8 relative */
        cudaFree(dy);
        free(h);
    }
    error_clear();
    free(got);
    cudaFree(dxh), cudaFree(dwh), cudaFree(dbh);
    gt_free(dx), gt_free(dw), gt_free(db);
    free(x), free(w), free(bias), free(y0), free(ref);
}

/* dwconv3 on output rows [yr0, yr0+yr) of an H×W×C map, fed only the rows it needs */
static void test_dwconv3(int H, int W, int C, int yr0, int yr, int with_bias, int silu)
{
    char label[128];
    float *x = gt_rand((size_t)H * W * C, -2, 2), *w = gt_rand((size_t)C * 9, -1, 1);
    float *b = gt_rand(C, -1, 1);
    int xr0 = yr0 > 0 ? yr0 - 1 : 0, xr1 = yr0 + yr + 1 < H ? yr0 + yr + 1 : H;
    size_t ny = (size_t)yr * W * C, nx = (size_t)(xr1 - xr0) * W * C;
    const float *xb = x + (size_t)xr0 * W * C;
    float *ref = malloc(ny * sizeof *ref + 4);
    dwconv3_cpu(xb, xr0, xr1 - xr0, w, with_bias ? b : NULL, ref, yr0, yr, H, W, C, silu);
    struct gt_buf dx = gt_alloc(nx, xb), dw = gt_alloc((size_t)C * 9, w), db = gt_alloc(C, b),
                  dy = gt_alloc(ny, NULL);
    dwconv3_cuda(dx.d, xr0, xr1 - xr0, dw.d, with_bias ? db.d : NULL, dy.d, yr0, yr, H, W, C, silu, 0);
    snprintf(label, sizeof label, "dwconv3 %dx%dx%d rows %d+%d b%d s%d", H, W, C, yr0, yr, with_bias, silu);
    float *got = gt_fetch(dy, label);
    gt_compare(label, got, ref, ny, 1e-5);
    free(got), free(ref), free(x), free(w), free(b);
    gt_free(dx), gt_free(dw), gt_free(db), gt_free(dy);
}

/* dense conv: kind 0 = conv3s2, 1 = patch_embed4 */
static void test_conv(int kind, int H, int W, int Ci, int Co, int yr0, int yr)
{
    char label[128];
    int k = kind ? 4 : 3;
    int Ho = kind ? H / 4 : (H + 1) / 2, Wo = kind ? W / 4 : (W + 1) / 2;
    (void)Ho;
    float *x = gt_rand((size_t)H * W * Ci, -2, 2), *w = gt_rand((size_t)Co * Ci * k * k, -1, 1);
    float *b = gt_rand(Co, -1, 1);
    int xr0, xr1;
    if (kind) xr0 = 4 * yr0, xr1 = 4 * (yr0 + yr);
    else {
        xr0 = 2 * yr0 - 1 < 0 ? 0 : 2 * yr0 - 1;
        xr1 = 2 * (yr0 + yr - 1) + 2 < H ? 2 * (yr0 + yr - 1) + 2 : H;
    }
    size_t ny = (size_t)yr * Wo * Co, nx = (size_t)(xr1 - xr0) * W * Ci;
    const float *xb = x + (size_t)xr0 * W * Ci;
    float *ref = malloc(ny * sizeof *ref + 4);
    struct gt_buf dx = gt_alloc(nx, xb), dw = gt_alloc((size_t)Co * Ci * k * k, w),
                  db = gt_alloc(Co, b), dy = gt_alloc(ny, NULL);
    if (kind) {
        patch_embed4_cpu(xb, xr0, xr1 - xr0, w, b, ref, yr0, yr, H, W, Ci, Co);
        patch_embed4_cuda(dx.d, xr0, xr1 - xr0, dw.d, db.d, dy.d, yr0, yr, H, W, Ci, Co, 0);
    } else {
        conv3s2_cpu(xb, xr0, xr1 - xr0, w, b, ref, yr0, yr, H, W, Ci, Co);
        conv3s2_cuda(dx.d, xr0, xr1 - xr0, dw.d, db.d, dy.d, yr0, yr, H, W, Ci, Co, 0);
    }
    snprintf(label, sizeof label, "%s %dx%dx%d->%d rows %d+%d", kind ? "patch_embed4" : "conv3_s2",
             H, W, Ci, Co, yr0, yr);
    float *got = gt_fetch(dy, label);
    gt_compare(label, got, ref, ny, 1e-5);
    free(got), free(ref), free(x), free(w), free(b);
    gt_free(dx), gt_free(dw), gt_free(db), gt_free(dy);
}

static void test_patch_merge(int H, int W, int C, int yr0, int yr)
{
    char label[128];
    int Wo = (W + 1) / 2;
    float *x = gt_rand((size_t)H * W * C, -2, 2);
    int xr0 = 2 * yr0, xr1 = 2 * (yr0 + yr) < H ? 2 * (yr0 + yr) : H;
    size_t ny = (size_t)yr * Wo * 4 * C, nx = (size_t)(xr1 - xr0) * W * C;
    const float *xb = x + (size_t)xr0 * W * C;
    float *ref = malloc(ny * sizeof *ref + 4);
    patch_merge_cpu(xb, xr0, xr1 - xr0, ref, yr0, yr, H, W, C);
    struct gt_buf dx = gt_alloc(nx, xb), dy = gt_alloc(ny, NULL);
    patch_merge_cuda(dx.d, xr0, xr1 - xr0, dy.d, yr0, yr, H, W, C, 0);
    snprintf(label, sizeof label, "patch_merge %dx%dx%d rows %d+%d", H, W, C, yr0, yr);
    float *got = gt_fetch(dy, label);
    gt_compare(label, got, ref, ny, 0); /* a gather: exact */
    free(got), free(ref), free(x);
    gt_free(dx), gt_free(dy);
}

static void test_layernorm(size_t M, int C, int inplace)
{
    char label[128];
    float *x = gt_rand(M * C, -3, 5), *g = gt_rand(C, 0.5f, 1.5f), *b = gt_rand(C, -1, 1);
    float *ref = malloc(M * C * sizeof *ref + 4);
    layernorm_cpu(x, g, b, ref, M, C);
    struct gt_buf dx = gt_alloc(M * C, x), dg = gt_alloc(C, g), db = gt_alloc(C, b),
                  dy = inplace ? dx : gt_alloc(M * C, NULL);
    layernorm_cuda(dx.d, dg.d, db.d, dy.d, M, C, 0);
    snprintf(label, sizeof label, "layernorm %zux%d%s", M, C, inplace ? " in place" : "");
    float *got = gt_fetch(dy, label);
    gt_compare(label, got, ref, M * C, 1e-5);
    free(got), free(ref), free(x), free(g), free(b);
    gt_free(dx), gt_free(dg), gt_free(db);
    if (!inplace) gt_free(dy);
}

static void test_elementwise(size_t n)
{
    char label[128];
    float *a = gt_rand(n, -8, 8), *b = gt_rand(n, -2, 2);
    float *ref = malloc(n * sizeof *ref + 4);
    struct gt_buf da = gt_alloc(n, a), db = gt_alloc(n, b), dy = gt_alloc(n, NULL);
    for (int op = 0; op < 3; op++) {
        const char *name = op == 0 ? "gelu" : op == 1 ? "silu" : "mul";
        if (op == 0) gelu_cpu(a, ref, n), gelu_cuda(da.d, dy.d, n, 0);
        if (op == 1) silu_cpu(a, ref, n), silu_cuda(da.d, dy.d, n, 0);
        if (op == 2) mul_cpu(a, b, ref, n), mul_cuda(da.d, db.d, dy.d, n, 0);
        snprintf(label, sizeof label, "%s n=%zu", name, n);
        float *got = gt_fetch(dy, label);
        gt_compare(label, got, ref, n, 1e-6);
        free(got);
    }
    free(a), free(b), free(ref);
    gt_free(da), gt_free(db), gt_free(dy);
}

static void test_mean_pool(size_t L, int C)
{
    char label[128];
    float *x = gt_rand(L * C, -1, 3);
    float *ref = malloc(C * sizeof *ref + 4);
    mean_pool_cpu(x, ref, L, C);
    struct gt_buf dx = gt_alloc(L * C, x), dy = gt_alloc(C, NULL);
    mean_pool_cuda(dx.d, dy.d, L, C, 0);
    snprintf(label, sizeof label, "mean_pool %zux%d", L, C);
    float *got = gt_fetch(dy, label);
    gt_compare(label, got, ref, C, 1e-6); /* both sum in double */
    free(got), free(ref), free(x);
    gt_free(dx), gt_free(dy);
}

int main(void)
{
    gt_require_device("test_gpu_ops");
    gt_seed(20261126);
    printf("seed 20261126\n");
    /* GEMM: M = 1, odd K and Nout, K = 1, widths of the real model (96, 384), M past a block */
    test_gemm(1, 1, 1, 0, 0);
    test_gemm(1, 96, 2, 1, 0);
    test_gemm(37, 33, 61, 1, 1);
    test_gemm(1000, 96, 7, 0, 1);
    test_gemm(257, 384, 96, 1, 0);
    test_gemm(4099, 96, 384, 1, 1);
    /* cuBLASLt with epilogues: the model's shapes (fc1 GELU+bias → bf16, fc2 bias + accumulate,
     * in_proj / x_proj → bf16, conv columns K = 32 / 432), odd M, M = 1 */
    test_gemm_lt(4099, 96, 384, GEMM_EPI_GELU_BIAS, 1, 0);
    test_gemm_lt(4099, 384, 96, GEMM_EPI_BIAS, 0, 1);
    test_gemm_lt(1001, 96, 96, GEMM_EPI_NONE, 1, 0);
    test_gemm_lt(1001, 96, 32, GEMM_EPI_NONE, 1, 0);
    test_gemm_lt(777, 96, 96, GEMM_EPI_NONE, 0, 1);
    test_gemm_lt(3137, 32, 48, GEMM_EPI_BIAS, 0, 0);
    test_gemm_lt(513, 432, 96, GEMM_EPI_BIAS, 0, 0);
    test_gemm_lt(1, 96, 384, GEMM_EPI_GELU_BIAS, 1, 0);
    test_gemm_lt(37, 24, 56, GEMM_EPI_NONE, 1, 0);
    /* depthwise 3×3: 1×1, odd sizes, bands starting inside, last row, C = 1 */
    test_dwconv3(1, 1, 1, 0, 1, 1, 1);
    test_dwconv3(7, 5, 3, 0, 7, 0, 0);
    test_dwconv3(13, 31, 96, 3, 5, 1, 1);
    test_dwconv3(13, 31, 97, 12, 1, 0, 1);
    test_dwconv3(2, 65, 33, 1, 1, 1, 0);
    /* conv3_s2 (stem, downsample v3) and patch_embed4 (v0 stem) */
    test_conv(0, 1, 1, 3, 5, 0, 1);
    test_conv(0, 7, 9, 3, 8, 0, 4);
    test_conv(0, 50, 78, 8, 16, 5, 7);
    test_conv(0, 25, 39, 96, 192, 12, 1);
    test_conv(1, 4, 4, 3, 96, 0, 1);
    test_conv(1, 9, 13, 3, 5, 0, 2);
    test_conv(1, 33, 47, 3, 96, 3, 4);
    /* PatchMerging gather: odd H / W (zero padding), bands */
    test_patch_merge(7, 9, 5, 0, 4);
    test_patch_merge(8, 8, 3, 1, 2);
    test_patch_merge(1, 1, 1, 0, 1);
    test_patch_merge(13, 27, 96, 6, 1);
    /* LayerNorm: C = 1 (output = beta), C not a multiple of 32, 4C of v0 merge, in place */
    test_layernorm(1, 1, 0);
    test_layernorm(100, 96, 0);
    test_layernorm(33, 1536, 1);
    test_layernorm(1001, 61, 1);
    test_elementwise(1);
    test_elementwise(1000003);
    test_mean_pool(1, 1);
    test_mean_pool(3, 33);
    test_mean_pool(5000, 768);
    return tu_finish("test_gpu_ops");
}
