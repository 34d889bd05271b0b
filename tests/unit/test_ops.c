/*
 * test_ops.c — the CPU ops' fast paths against their oracles (STYLE.md 2.2): gemm_cpu (OpenBLAS
 * over fixed tiles) against a naive double triple loop on awkward shapes, and every fast twin of
 * ops_cpu_fast.c (LayerNorm, GELU, SiLU, softplus, depthwise 3×3 + SiLU, dense 3×3/s2, SS2D scan
 * + merge) against its plain op on awkward shapes (odd sizes, channel counts not multiples of 16,
 * row bands), with guard bands after every output and 1-thread vs 2-thread bit-identity.
 * Registered twice in ctest: as is and with OPENBLAS_CORETYPE=SkylakeX (the kernels the CLI
 * forces on misdetected Xeons), so the forced kernels are proven correct on the machine.
 * Seeds fixed (printed). Exit 77 (skip) when SkylakeX kernels are asked for on a CPU without
 * AVX-512.
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "src/backend.h"
#include "src/ops.h"
#include "src/vmamba.h"

static int n_fail, n_check;
static uint64_t rng = 12345;

static float frand(float lo, float hi)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return lo + (hi - lo) * (float)((rng >> 40) * (1.0 / 16777216.0));
}

#define GUARD 37
static const float SENT = -1234.5f;

/* n floats + GUARD sentinels after them */
__attribute__((noinline)) static float *galloc(size_t n)
{
    float *p = malloc((n + GUARD) * sizeof *p);
    if (!p) abort();
    for (size_t i = 0; i < n + GUARD; i++) p[i] = SENT;
    return p;
}
/* n doubles; not inlined, so GCC's -Walloc-size-larger-than sees no sizes it cannot bound */
__attribute__((noinline)) static double *dalloc(size_t n)
{
    double *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) abort();
    return p;
}

static int guard_ok(const float *p, size_t n)
{
    for (size_t i = n; i < n + GUARD; i++)
        if (p[i] != SENT) return 0;
    return 1;
}
static float *rnd(size_t n, float lo, float hi)
{
    float *p = galloc(n);
    for (size_t i = 0; i < n; i++) p[i] = frand(lo, hi);
    return p;
}

/* got vs ref: |got − ref| ≤ atol + rtol·scale[i] (scale = |ref| when NULL); prints the first
 * mismatches, the max difference and one OK / FAIL line. */
static void check(const char *what, const float *got, const float *ref, const double *scale,
                  size_t n, double atol, double rtol)
{
    double maxd = 0;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        double s = scale ? scale[i] : fabs(ref[i]);
        if (d > maxd || d != d) maxd = d;
        if (!(d <= atol + rtol * s)) {
            if (bad < 3)
                fprintf(stderr, "  %s[%zu]: got %.9g ref %.9g (|d| %.3g)\n", what, i, got[i],
                        ref[i], d);
            bad++;
        }
    }
    int gok = guard_ok(got, n);
    n_check++;
    if (bad || !gok) n_fail++;
    printf("%-58s n=%-8zu max|diff|=%-9.3g %s%s\n", what, n, maxd, bad || !gok ? "FAIL" : "OK",
           gok ? "" : " (guard band overwritten)");
}

static void same(const char *what, const float *a, const float *b, size_t n)
{
    n_check++;
    int ok = !memcmp(a, b, n * sizeof *a);
    if (!ok) n_fail++;
    printf("%-58s %s\n", what, ok ? "bit-identical OK" : "DIFFER FAIL");
}

/* ---- GEMM vs naive -------------------------------------------------------------------------- */

static void test_gemm(size_t M, int K, int N, int with_bias, int acc)
{
    if (M * N > ((size_t)1 << 28) || (size_t)N * K > ((size_t)1 << 28)) abort(); /* test sizes */
    float *x = rnd(M * K, -1, 1), *w = rnd((size_t)N * K, -1, 1), *b = rnd(N, -1, 1);
    float *y = galloc(M * N), *y1 = galloc(M * N), *ref = galloc(M * N);
    double *sc = dalloc(M * N);
    for (size_t i = 0; i < M * N; i++) y[i] = y1[i] = frand(-1, 1);
    for (size_t i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, a = 0;
            for (int k = 0; k < K; k++) {
                s += (double)x[i * K + k] * w[(size_t)j * K + k];
                a += fabs((double)x[i * K + k] * w[(size_t)j * K + k]);
            }
            if (with_bias) s += b[j], a += fabs(b[j]);
            if (acc) s += y[i * N + j], a += fabs(y[i * N + j]);
            ref[i * N + j] = (float)s;
            sc[i * N + j] = a;
        }
    omp_set_num_threads(2);
    gemm_cpu(x, w, with_bias ? b : NULL, y, M, K, N, acc);
    omp_set_num_threads(1);
    gemm_cpu(x, w, with_bias ? b : NULL, y1, M, K, N, acc);
    omp_set_num_threads(2);
    char what[128];
    snprintf(what, sizeof what, "gemm M=%zu K=%d N=%d%s%s", M, K, N, with_bias ? " +bias" : "",
             acc ? " +=" : "");
    /* fp32 accumulation of K products: error ≤ ~K·2⁻²⁴·Σ|terms|; 1e-5·Σ|terms| allows K ≤ ~160
     * at the worst-case bound and is far above the typical √K growth for K = 800 */
    check(what, y, ref, sc, M * N, 1e-6, 1e-5);
    if (memcmp(y, y1, M * N * sizeof *y)) {
        n_fail++;
        printf("  %s: 1 thread vs 2 threads DIFFER FAIL\n", what);
    }
    free(x), free(w), free(b), free(y), free(y1), free(ref), free(sc);
}

/* ---- elementwise: fast vs plain, and vs double ------------------------------------------------ */

static void test_elementwise(void)
{
    const size_t sizes[] = {1, 15, 17, 16385, 40000};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        float *x = rnd(n, -12, 12);
        if (n > 20) { /* special points */
            float sp[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.99999994f, -0.99999994f, 1.4142135f,
                          -5.65685f, 5.65685f, 20.0f, 19.99f, 20.01f, -88.0f, 88.0f, -100.0f};
            memcpy(x, sp, sizeof sp);
        }
        float *a = galloc(n), *b = galloc(n), *r = galloc(n);
        double *sc = dalloc(n);
        char what[96];
        /* GELU vs double: a fast erf with ≤ a few ulp of the result, |y| scale; 2e-7 relative
         * is ~3 ulp; the absolute 1e-12 covers results that underflow to 0 */
        gelu_cpu_fast(x, a, n);
        gelu_cpu(x, b, n);
        for (size_t i = 0; i < n; i++) {
            double xd = x[i];
            r[i] = (float)(0.5 * xd * erfc(-xd / sqrt(2.0)));
            /* 3 ulp of y, plus 1 ulp of the 1 + erf factor times |x|/2: for −2 < x < 0 that
             * factor cancels (the plain erff formula loses the same bits) */
            sc[i] = fabs(r[i]) + 0.25 * fabs(xd);
        }
        snprintf(what, sizeof what, "gelu fast vs double n=%zu", n);
        check(what, a, r, sc, n, 1e-30, 2.5e-7);
        /* the plain erff GELU loses relative accuracy on the negative tail (1 + erf cancels), so
         * fast vs plain is compared on the scale max(|y|, 1e-7·|x|) */
        for (size_t i = 0; i < n; i++) sc[i] = fabs(b[i]) + 0.5 * fabs(x[i]);
        snprintf(what, sizeof what, "gelu fast vs plain n=%zu", n);
        check(what, a, b, sc, n, 1e-30, 2.5e-7);
        silu_cpu_fast(x, a, n);
        silu_cpu(x, b, n);
        snprintf(what, sizeof what, "silu fast vs plain n=%zu", n);
        check(what, a, b, NULL, n, 1e-30, 5e-7);
        /* softplus (scan's δ), inputs over [−30, 30] to cross the threshold 20 */
        for (size_t i = 20; i < n; i++) x[i] = frand(-30, 30);
        ops_softplus_fast(x, a, n);
        for (size_t i = 0; i < n; i++) {
            b[i] = scan_softplus(x[i]);
            double xd = x[i];
            r[i] = (float)(xd > 20 ? xd : log1p(exp(xd)));
        }
        snprintf(what, sizeof what, "softplus fast vs double n=%zu", n);
        check(what, a, r, NULL, n, 1e-30, 3e-7);
        snprintf(what, sizeof what, "softplus fast vs plain n=%zu", n);
        check(what, a, b, NULL, n, 1e-30, 4e-7);
        free(x), free(a), free(b), free(r), free(sc);
    }
}

static void test_layernorm(size_t M, int C)
{
    float *x = rnd(M * C, -3, 5), *g = rnd(C, 0.5, 1.5), *bt = rnd(C, -0.5, 0.5);
    float *a = galloc(M * C), *b = galloc(M * C), *a1 = galloc(M * C);
    layernorm_cpu_fast(x, g, bt, a, M, C);
    layernorm_cpu(x, g, bt, b, M, C);
    omp_set_num_threads(1);
    layernorm_cpu_fast(x, g, bt, a1, M, C);
    omp_set_num_threads(2);
    char what[96];
    snprintf(what, sizeof what, "layernorm fast vs plain M=%zu C=%d", M, C);
    /* sums in another order: ~C·2⁻²⁴ relative on mean / variance; outputs are O(1) */
    check(what, a, b, NULL, M * C, 2e-6, 2e-6);
    snprintf(what, sizeof what, "layernorm fast 1 vs 2 threads M=%zu C=%d", M, C);
    same(what, a, a1, M * C);
    /* in place */
    memcpy(a1, x, M * C * sizeof *x);
    layernorm_cpu_fast(a1, g, bt, a1, M, C);
    snprintf(what, sizeof what, "layernorm fast in place M=%zu C=%d", M, C);
    same(what, a, a1, M * C);
    free(x), free(g), free(bt), free(a), free(b), free(a1);
}

/* a band [y0, y0+yr) of the output from the input rows it needs */
static void test_dwconv(int H, int W, int C, int y0, int yr, int bias, int silu)
{
    float *x = rnd((size_t)H * W * C, -2, 2), *w = rnd((size_t)C * 9, -0.5, 0.5);
    float *b = rnd(C, -0.3, 0.3);
    int x0 = y0 > 0 ? y0 - 1 : 0;
    size_t n = (size_t)yr * W * C;
    float *a = galloc(n), *r = galloc(n), *a1 = galloc(n);
    const float *xb = x + (size_t)x0 * W * C;
    int xr = (y0 + yr + 1 < H ? y0 + yr + 1 : H) - x0;
    dwconv3_cpu_fast(xb, x0, xr, w, bias ? b : NULL, a, y0, yr, H, W, C, silu);
    dwconv3_cpu(xb, x0, xr, w, bias ? b : NULL, r, y0, yr, H, W, C, silu);
    omp_set_num_threads(1);
    dwconv3_cpu_fast(xb, x0, xr, w, bias ? b : NULL, a1, y0, yr, H, W, C, silu);
    omp_set_num_threads(2);
    char what[128];
    snprintf(what, sizeof what, "dwconv3 fast vs plain %dx%dx%d rows %d+%d%s%s", H, W, C, y0, yr,
             bias ? " bias" : "", silu ? " silu" : "");
    check(what, a, r, NULL, n, 2e-6, 2e-6);
    if (memcmp(a, a1, n * sizeof *a)) n_fail++, printf("  %s: threads DIFFER FAIL\n", what);
    free(x), free(w), free(b), free(a), free(r), free(a1);
}

static void test_conv3s2(int H, int W, int Ci, int Co, int y0, int yr, int bias)
{
    int Wo = (W + 1) / 2;
    float *x = rnd((size_t)H * W * Ci, -1, 1), *w = rnd((size_t)Co * Ci * 9, -0.3, 0.3);
    float *b = rnd(Co, -0.3, 0.3);
    int x0 = 2 * y0 - 1 < 0 ? 0 : 2 * y0 - 1;
    int x1 = 2 * (y0 + yr - 1) + 2 < H ? 2 * (y0 + yr - 1) + 2 : H;
    size_t n = (size_t)yr * Wo * Co;
    float *a = galloc(n), *r = galloc(n), *a1 = galloc(n);
    const float *xb = x + (size_t)x0 * W * Ci;
    conv3s2_cpu_fast(xb, x0, x1 - x0, w, bias ? b : NULL, a, y0, yr, H, W, Ci, Co);
    conv3s2_cpu(xb, x0, x1 - x0, w, bias ? b : NULL, r, y0, yr, H, W, Ci, Co);
    omp_set_num_threads(1);
    conv3s2_cpu_fast(xb, x0, x1 - x0, w, bias ? b : NULL, a1, y0, yr, H, W, Ci, Co);
    omp_set_num_threads(2);
    char what[128];
    snprintf(what, sizeof what, "conv3s2 fast vs plain %dx%dx%d->%d rows %d+%d%s", H, W, Ci, Co,
             y0, yr, bias ? " bias" : "");
    /* both are sgemm over 9·Ci products in different tilings: 1e-5 of a sum of |terms| ≤ ~3 */
    check(what, a, r, NULL, n, 1e-5, 1e-5);
    if (memcmp(a, a1, n * sizeof *a)) n_fail++, printf("  %s: threads DIFFER FAIL\n", what);
    free(x), free(w), free(b), free(a), free(r), free(a1);
}

static void test_ss2d(int H, int W, int Dn, int R, int N)
{
    size_t L = (size_t)H * W;
    int P = R + 2 * N;
    float *u = rnd(L * Dn, -1, 1), *xd = rnd(L * SS2D_K * P, -1, 1);
    float *dw = rnd((size_t)SS2D_K * Dn * R, -0.5, 0.5), *db = rnd((size_t)SS2D_K * Dn, -5, 0);
    float *A = rnd((size_t)SS2D_K * Dn * N, -3, -0.2), *Ds = rnd((size_t)SS2D_K * Dn, 0.5, 1.5);
    /* a few large δ to cross the softplus threshold */
    for (int i = 0; i < Dn; i += 7) db[i] = 21.0f;
    float *a = galloc(L * Dn), *r = galloc(L * Dn), *a1 = galloc(L * Dn);
    ss2d_scan_merge_cpu_fast(u, xd, dw, db, A, Ds, a, H, W, Dn, R, N);
    ss2d_scan_merge_cpu(u, xd, dw, db, A, Ds, r, H, W, Dn, R, N);
    omp_set_num_threads(1);
    ss2d_scan_merge_cpu_fast(u, xd, dw, db, A, Ds, a1, H, W, Dn, R, N);
    omp_set_num_threads(2);
    char what[128];
    snprintf(what, sizeof what, "ss2d fast vs plain H=%d W=%d Dn=%d R=%d N=%d", H, W, Dn, R, N);
    /* a few ulp per step in δ and e^{δA}; the state forgets (|e^{δA}| < 1), so errors stay
     * at the 1e-6 level of O(1) outputs */
    check(what, a, r, NULL, L * Dn, 1e-5, 1e-5);
    if (memcmp(a, a1, L * Dn * sizeof *a)) n_fail++, printf("  %s: threads DIFFER FAIL\n", what);
    free(u), free(xd), free(dw), free(db), free(A), free(Ds), free(a), free(r), free(a1);
}

/* ---- whole model: fused CPU path vs op-by-op path ------------------------------------------ */

struct maps {
    int n;
    float *m[8];
    size_t len[8];
};

static enum wv_status keep(void *user, const char *name, const float *map, int B, int H, int W,
                           int C)
{
    struct maps *s = user;
    size_t n = (size_t)B * H * W * C;
    if (s->n < 8) {
        s->m[s->n] = galloc(n);
        memcpy(s->m[s->n], map, n * sizeof(float));
        s->len[s->n++] = n;
    }
    return WV_OK;
}

/* vmamba_forward takes the fused per-tile path with the CPU backend's own table; a copy of the
 * table forces the op-by-op path (one table call per step), the oracle for the fusion. */
static void test_model(const char *label, const struct vmamba_config *cfg, int B, int H, int W)
{
    struct weights *w = NULL;
    struct vmamba *m = NULL;
    if (vmamba_random_weights(cfg, 3, &w) || vmamba_create(w, "", cfg, &m)) {
        n_fail++, n_check++;
        printf("%s: model: %s FAIL\n", label, error_msg());
        return;
    }
    float *x = rnd((size_t)B * 3 * H * W, -1, 1);
    float *l1 = galloc((size_t)B * cfg->num_classes), *l2 = galloc((size_t)B * cfg->num_classes);
    struct backend be, be_ops;
    backend_init(&be, WV_DEVICE_CPU, 2, 0);
    static struct backend_ops copy;
    copy = backend_cpu_ops;
    be_ops = be;
    be_ops.ops = &copy;
    struct maps a = {0}, b = {0};
    vmamba_forward_nchw(m, &be, x, B, H, W, keep, &a, l1);
    vmamba_forward_nchw(m, &be_ops, x, B, H, W, keep, &b, l2);
    char what[128];
    for (int k = 0; k < a.n && k < b.n; k++) {
        snprintf(what, sizeof what, "%s: fused vs op-by-op map %d", label, k);
        /* same math, other GEMM tilings and sum orders: fp32 rounding of O(1) maps */
        check(what, a.m[k], b.m[k], NULL, a.len[k], 2e-5, 2e-5);
        free(a.m[k]), free(b.m[k]);
    }
    snprintf(what, sizeof what, "%s: fused vs op-by-op logits", label);
    check(what, l1, l2, NULL, (size_t)B * cfg->num_classes, 2e-5, 2e-5);
    free(x), free(l1), free(l2);
    vmamba_free(m);
    weights_free(w);
}

int main(void)
{
    const char *ct = getenv("OPENBLAS_CORETYPE");
    __builtin_cpu_init();
    if (ct && !strcasecmp(ct, "skylakex") && !__builtin_cpu_supports("avx512f")) {
        printf("test_ops: OPENBLAS_CORETYPE=SkylakeX but this CPU has no AVX-512: skip\n");
        return 77;
    }
    struct backend be;
    backend_init(&be, WV_DEVICE_CPU, 2, 0);
    printf("test_ops: seed 12345, OpenBLAS core %s, AVX-512 fast paths %s\n", backend_blas_core(),
           ops_have_avx512() ? "on" : "off (plain fallbacks)");

    /* awkward GEMM shapes: M around the 256-row tile and the small-M column split, K and N not
     * multiples of 16, the extremes M 1000, K 800, N 1600 */
    static const struct { size_t M; int K, N; } gs[] = {
        {1, 1, 1},     {1, 800, 1600}, {7, 3, 5},      {17, 96, 384},  {255, 17, 63},
        {256, 96, 96}, {257, 33, 129}, {300, 1, 1000}, {513, 95, 17},  {1000, 7, 1600},
        {1000, 800, 31}, {49, 768, 768}, {1000, 800, 1600}, {3, 384, 65}, {120, 200, 1},
    };
    for (size_t i = 0; i < sizeof gs / sizeof gs[0]; i++)
        test_gemm(gs[i].M, gs[i].K, gs[i].N, (int)(i % 2), (int)(i % 3 == 1));
    test_gemm(200, 64, 100, 1, 1);

    test_elementwise();
    test_layernorm(1, 1);
    test_layernorm(7, 5);
    test_layernorm(100, 16);
    test_layernorm(130, 17);
    test_layernorm(333, 96);
    test_layernorm(65, 100);

    test_dwconv(1, 1, 1, 0, 1, 0, 0);
    test_dwconv(5, 7, 17, 0, 5, 1, 1);
    test_dwconv(9, 6, 33, 3, 4, 0, 1);
    test_dwconv(8, 11, 96, 2, 6, 1, 0);

    test_conv3s2(1, 1, 3, 5, 0, 1, 1);
    test_conv3s2(7, 9, 3, 48, 0, 4, 1);
    test_conv3s2(33, 31, 17, 20, 0, 17, 1);
    test_conv3s2(33, 31, 17, 20, 5, 7, 0);
    test_conv3s2(20, 64, 24, 96, 2, 8, 1);
    test_conv3s2(15, 15, 96, 192, 0, 8, 1);

    test_ss2d(1, 1, 1, 1, 1);
    test_ss2d(3, 5, 16, 2, 1);
    test_ss2d(7, 4, 17, 3, 3);
    test_ss2d(9, 13, 40, 5, 1);
    test_ss2d(6, 6, 33, 4, 16);
    test_ss2d(14, 14, 96, 6, 1);
    test_ss2d(5, 7, 180, 3, 2); /* 4 groups per work item, the last one partial */

    struct vmamba_config v2 = {.family = VMAMBA_V2, .dims = {16, 32, 48, 64}, .depths = {1, 2, 1, 1},
                               .d_inner = {32, 64, 96, 128}, .dt_rank = {1, 2, 3, 4}, .d_state = 1,
                               .mlp_hidden = {64, 128, 192, 256}, .conv_bias = 0, .num_classes = 5,
                               .ssm_ratio = 2.0};
    test_model("v2 B=5 37x29 (grouped small maps)", &v2, 5, 37, 29);
    test_model("v2 B=1 80x1030 (stage 0 in two row bands)", &v2, 1, 80, 1030);
    struct vmamba_config v0 = {.family = VMAMBA_V0, .dims = {8, 16, 32, 64}, .depths = {1, 1, 2, 1},
                               .d_inner = {16, 32, 64, 128}, .dt_rank = {1, 1, 2, 4}, .d_state = 16,
                               .mlp_hidden = {0, 0, 0, 0}, .conv_bias = 1, .num_classes = 3,
                               .ssm_ratio = 2.0};
    test_model("v0 B=3 37x45 (z gate, N=16)", &v0, 3, 37, 45);

    printf("test_ops: %d checks, %d failed\n", n_check, n_fail);
    return n_fail ? 1 : 0;
}
