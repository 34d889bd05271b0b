/*
 * ops_cpu_fast.c — fast twins of the CPU ops the forward spends its time in (ops.h): LayerNorm,
 * GELU, SiLU, depthwise 3×3 (+SiLU), dense 3×3/s2 conv and the fused SS2D scan + merge. Each is
 * an AVX-512 kernel (target attribute + runtime CPU check, so the build runs on any x86-64) that
 * falls back to its plain oracle (ops_cpu.c, ss2d.c) on CPUs without AVX-512. Same contracts as
 * the plain ops (backend.h, ss2d.h); tests/unit/test_ops.c checks each against its oracle on
 * awkward shapes. Work is split into fixed blocks (rows, pixels, 16-channel groups), never by the
 * thread count, so results are bit-identical for any number of threads.
 *
 * Vector math (exp, log1p, erf) is written here in fp32 with the error bounds stated at each;
 * the polynomials are our own fits (Chebyshev interpolation in double, rounded to fp32).
 */
#include "ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <immintrin.h>

int ops_have_avx512(void)
{
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx512f") ? 1 : 0;
        const char *e = getenv("WV_NO_AVX512"); /* force the plain fallbacks (tests, debugging) */
        if (e && *e && *e != '0') have = 0;
    }
    return have;
}

#define AVX512 __attribute__((target("avx512f")))

/* ---- vector math ------------------------------------------------------------------------- */

/* e^x, x clamped to [-103, 88.7]: Cody–Waite reduction x = n·ln2 + r, |r| ≤ ln2/2, degree-7
 * polynomial (Taylor-like coefficients), scaled by 2^n with scalef (gradual underflow kept).
 * ≤ 2 ulp against expf over the clamped range. */
AVX512 static inline __m512 v_exp(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-103.0f)), _mm512_set1_ps(88.7f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

/* log1p(e) for e ≥ 0: u = 1 + e = 2^k·m, m in [√½, √2), log m = 2·atanh(s), s = (m−1)/(m+1),
 * |s| ≤ 0.1716, series to s⁹ (truncation < 2e-9 relative); the rounding of 1 + e is corrected
 * by (e − (u − 1))/u. ≤ 2 ulp. */
AVX512 static inline __m512 v_log1p_pos(__m512 e)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 u = _mm512_add_ps(one, e);
    __m512 k = _mm512_getexp_ps(u);
    __m512 m = _mm512_getmant_ps(u, _MM_MANT_NORM_1_2, _MM_MANT_SIGN_src);
    __mmask16 big = _mm512_cmp_ps_mask(m, _mm512_set1_ps(1.41421356f), _CMP_GT_OQ);
    m = _mm512_mask_mul_ps(m, big, m, _mm512_set1_ps(0.5f));
    k = _mm512_mask_add_ps(k, big, k, one);
    __m512 s = _mm512_div_ps(_mm512_sub_ps(m, one), _mm512_add_ps(m, one));
    __m512 s2 = _mm512_mul_ps(s, s);
    __m512 p = _mm512_set1_ps(2.0f / 9.0f);
    p = _mm512_fmadd_ps(p, s2, _mm512_set1_ps(2.0f / 7.0f));
    p = _mm512_fmadd_ps(p, s2, _mm512_set1_ps(2.0f / 5.0f));
    p = _mm512_fmadd_ps(p, s2, _mm512_set1_ps(2.0f / 3.0f));
    p = _mm512_mul_ps(p, s2);
    __m512 logm = _mm512_fmadd_ps(s, p, _mm512_add_ps(s, s)); /* 2s + s·(2s²/3 + …) */
    /* correction for the rounding of u = 1 + e: log1p(e) ≈ log(u) + (e − (u − 1)) / u */
    __m512 corr = _mm512_div_ps(_mm512_sub_ps(e, _mm512_sub_ps(u, one)), u);
    __m512 lo = _mm512_fmadd_ps(k, _mm512_set1_ps(-2.12194440e-4f), _mm512_add_ps(logm, corr));
    return _mm512_fmadd_ps(k, _mm512_set1_ps(0.693359375f), lo);
}

/* softplus with the official threshold: x > 20 ? x : log1p(exp(x)). */
AVX512 static inline __m512 v_softplus(__m512 x)
{
    __m512 e = v_exp(_mm512_min_ps(x, _mm512_set1_ps(20.0f)));
    __m512 lp = v_log1p_pos(e);
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(x, _mm512_set1_ps(20.0f), _CMP_GT_OQ), lp, x);
}

/* GELU(x) = x·½(1 + erf(z)), z = x/√2. |z| < 1: erf(z) = z·P(z²), Taylor to z²⁰ (truncation
 * < 2e-8 relative). |z| ≥ 1: erfc(|z|) = e^{−z²}·t·Q(t), t = 1/|z|, Q a degree-12 Chebyshev fit
 * of erfc(1/t)·e^{1/t²}/t on t in [0.1, 1] (1.5e-8 relative; t clamped at 0.1, i.e. |z| > 10,
 * where e^{−z²} underflows fp32), e^{−z²} with the rounding of z² corrected by an FMA. Then y = x − ½x·erfc for
 * x ≥ 0 and ½x·erfc for x < 0, which keeps relative accuracy on the negative tail too. */
AVX512 static inline __m512 v_gelu(__m512 x)
{
    const __m512 half = _mm512_set1_ps(0.5f);
    __m512 z = _mm512_mul_ps(x, _mm512_set1_ps((float)M_SQRT1_2));
    __m512 a = _mm512_abs_ps(z);
    __m512 hx = _mm512_mul_ps(half, x);
    /* |z| < 1 */
    __m512 z2 = _mm512_mul_ps(z, z);
    __m512 p = _mm512_set1_ps(1.480719281e-08f);
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(-1.636584415e-07f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(1.646211444e-06f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(-1.492565025e-05f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(1.205533263e-04f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(-8.548327023e-04f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(5.223977845e-03f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(-2.686617151e-02f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(1.128379181e-01f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(-3.761263788e-01f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(1.128379226e+00f));
    __m512 yA = _mm512_fmadd_ps(hx, _mm512_mul_ps(z, p), hx);
    /* |z| ≥ 1 */
    __m512 ac = _mm512_max_ps(a, _mm512_set1_ps(1.0f));
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), ac);
    __m512 s = _mm512_mul_ps(_mm512_sub_ps(_mm512_max_ps(t, _mm512_set1_ps(0.1f)),
                                           _mm512_set1_ps(0.55f)),
                             _mm512_set1_ps(1.0f / 0.45f));
    __m512 q = _mm512_set1_ps(-1.024677113e-05f);
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(1.844185317e-05f));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(1.423910726e-05f));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(-7.314030518e-05f));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(1.434190053e-04f));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(-2.251797268e-04f));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(9.782081906e-05f));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(9.195713210e-04f));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(-3.978216089e-03f));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(8.962938562e-03f));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(-4.123687744e-03f));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(-7.651580870e-02f));
    q = _mm512_fmadd_ps(q, s, _mm512_set1_ps(5.023534298e-01f));
    __m512 aa = _mm512_mul_ps(ac, ac);
    __m512 aerr = _mm512_fmsub_ps(ac, ac, aa); /* ac² = aa + aerr exactly */
    __m512 ex = v_exp(_mm512_sub_ps(_mm512_setzero_ps(), aa));
    ex = _mm512_fnmadd_ps(ex, aerr, ex); /* e^{−aa−aerr} ≈ e^{−aa}·(1 − aerr) */
    __m512 erfc = _mm512_mul_ps(_mm512_mul_ps(ex, t), q);
    __m512 he = _mm512_mul_ps(hx, erfc);
    __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
    __m512 yB = _mm512_mask_blend_ps(neg, _mm512_sub_ps(x, he), he);
    __mmask16 small = _mm512_cmp_ps_mask(a, _mm512_set1_ps(1.0f), _CMP_LT_OQ);
    return _mm512_mask_blend_ps(small, yB, yA);
}

/* x·sigmoid(x) = x / (1 + e^−x) */
AVX512 static inline __m512 v_silu(__m512 x)
{
    __m512 e = v_exp(_mm512_sub_ps(_mm512_setzero_ps(), x));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

static inline __mmask16 tail_mask(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

/* ---- elementwise ------------------------------------------------------------------------- */

/* Elements per OpenMP chunk: fixed, so the split never depends on the thread count. */
#define EW_CHUNK 16384

/* An activation over n values: the parallel map in fixed chunks (name##_avx512) and the
 * single-thread map in place (name##_rows_avx512), for v_gelu and v_silu. */
#define EW_ACTIVATION(name, vfn)                                                              \
    AVX512 static void name##_avx512(const float *x, float *y, size_t n)                      \
    {                                                                                         \
        long nc = (long)((n + EW_CHUNK - 1) / EW_CHUNK);                                      \
        _Pragma("omp parallel for schedule(static) if (nc > 1)")                              \
        for (long c = 0; c < nc; c++) {                                                       \
            size_t i0 = (size_t)c * EW_CHUNK, i1 = i0 + EW_CHUNK < n ? i0 + EW_CHUNK : n;     \
            for (size_t i = i0; i < i1; i += 16) {                                            \
                __mmask16 m = tail_mask((int)(i1 - i < 16 ? i1 - i : 16));                    \
                _mm512_mask_storeu_ps(y + i, m, vfn(_mm512_maskz_loadu_ps(m, x + i)));        \
            }                                                                                 \
        }                                                                                     \
    }                                                                                         \
    AVX512 static void name##_rows_avx512(float *x, size_t n)                                 \
    {                                                                                         \
        for (size_t i = 0; i < n; i += 16) {                                                  \
            __mmask16 m = tail_mask((int)(n - i < 16 ? n - i : 16));                          \
            _mm512_mask_storeu_ps(x + i, m, vfn(_mm512_maskz_loadu_ps(m, x + i)));            \
        }                                                                                     \
    }
EW_ACTIVATION(gelu, v_gelu)
EW_ACTIVATION(silu, v_silu)

void ops_gelu_rows(float *x, size_t n)
{
    if (ops_have_avx512()) gelu_rows_avx512(x, n);
    else gelu_cpu(x, x, n);
}

void gelu_cpu_fast(const float *x, float *y, size_t n)
{
    if (ops_have_avx512()) gelu_avx512(x, y, n);
    else gelu_cpu(x, y, n);
}

void ops_silu_rows(float *x, size_t n)
{
    if (ops_have_avx512()) silu_rows_avx512(x, n);
    else silu_cpu(x, x, n);
}

void silu_cpu_fast(const float *x, float *y, size_t n)
{
    if (ops_have_avx512()) silu_avx512(x, y, n);
    else silu_cpu(x, y, n);
}

/* Softplus of n values (threshold 20), for tests of the vector math. */
AVX512 static void softplus_avx512(const float *x, float *y, size_t n)
{
    for (size_t i = 0; i < n; i += 16) {
        __mmask16 m = tail_mask((int)(n - i < 16 ? n - i : 16));
        _mm512_mask_storeu_ps(y + i, m, v_softplus(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

void ops_softplus_fast(const float *x, float *y, size_t n)
{
    if (ops_have_avx512()) softplus_avx512(x, y, n);
    else
        for (size_t i = 0; i < n; i++) y[i] = scan_softplus(x[i]);
}

/* ---- LayerNorm ---------------------------------------------------------------------------- */

/* One row of C values: 16-lane partial sums for the mean, then for the (biased) variance of
 * x − mean. y may equal x. */
AVX512 static inline void ln_row(const float *xr, const float *gamma, const float *beta, float *yr,
                                 int C)
{
    __m512 s = _mm512_setzero_ps();
    for (int c = 0; c < C; c += 16) {
        __mmask16 m = tail_mask(C - c);
        s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(m, xr + c));
    }
    __m512 mean = _mm512_set1_ps(_mm512_reduce_add_ps(s) / C);
    __m512 v = _mm512_setzero_ps();
    for (int c = 0; c < C; c += 16) {
        __mmask16 m = tail_mask(C - c);
        __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, xr + c), mean);
        v = _mm512_fmadd_ps(d, d, v);
    }
    __m512 rstd = _mm512_set1_ps(1.0f / sqrtf(_mm512_reduce_add_ps(v) / C + 1e-5f));
    for (int c = 0; c < C; c += 16) {
        __mmask16 m = tail_mask(C - c);
        __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, xr + c), mean), rstd);
        __m512 o = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, gamma + c),
                                   _mm512_maskz_loadu_ps(m, beta + c));
        _mm512_mask_storeu_ps(yr + c, m, o);
    }
}

AVX512 static void layernorm_avx512(const float *x, const float *gamma, const float *beta,
                                    float *y, size_t M, int C)
{
#pragma omp parallel for schedule(static) if (M > 64)
    for (long i = 0; i < (long)M; i++) ln_row(x + (size_t)i * C, gamma, beta, y + (size_t)i * C, C);
}

AVX512 static void layernorm_rows_avx512(const float *x, const float *gamma, const float *beta,
                                         float *y, size_t M, int C)
{
    for (size_t i = 0; i < M; i++) ln_row(x + i * C, gamma, beta, y + i * C, C);
}

void layernorm_cpu_fast(const float *x, const float *gamma, const float *beta, float *y,
                        size_t M, int C)
{
    if (ops_have_avx512() && C > 0) layernorm_avx512(x, gamma, beta, y, M, C);
    else layernorm_cpu(x, gamma, beta, y, M, C);
}

void ops_layernorm_rows(const float *x, const float *gamma, const float *beta, float *y, size_t M,
                        int C)
{
    if (ops_have_avx512() && C > 0) layernorm_rows_avx512(x, gamma, beta, y, M, C);
    else layernorm_cpu(x, gamma, beta, y, M, C); /* plain (nested region: one thread) */
}

/* ---- depthwise 3×3 (+bias) (+SiLU) -------------------------------------------------------- */

/* One output row oy of a depthwise 3×3 (+SiLU); xrow(iy) gives input row iy. */
AVX512 static inline void dwconv3_row(const float *x, int x_row0, const float *wt,
                                      const float *bias, float *yrow, int oy, int H, int W, int C,
                                      int silu)
{
    for (int ox = 0; ox < W; ox++) {
        for (int c = 0; c < C; c += 16) {
            __mmask16 m = tail_mask(C - c);
            __m512 acc = bias ? _mm512_maskz_loadu_ps(m, bias + c) : _mm512_setzero_ps();
            for (int ky = 0; ky < 3; ky++) {
                int iy = oy + ky - 1;
                if (iy < 0 || iy >= H) continue;
                const float *xrow = x + (size_t)(iy - x_row0) * W * C;
                for (int kx = 0; kx < 3; kx++) {
                    int ix = ox + kx - 1;
                    if (ix < 0 || ix >= W) continue;
                    acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, xrow + (size_t)ix * C + c),
                                          _mm512_maskz_loadu_ps(m, wt + (size_t)(ky * 3 + kx) * C + c),
                                          acc);
                }
            }
            if (silu) acc = v_silu(acc);
            _mm512_mask_storeu_ps(yrow + (size_t)ox * C + c, m, acc);
        }
    }
}

/* nimg images (or one band when nimg == 1): image i's input at x + i·x_stride, output at
 * y + i·y_stride; work items (image, output row). */
AVX512 static void dwconv3_avx512(const float *x, size_t x_stride, int x_row0, const float *wt,
                                  const float *bias, float *y, size_t y_stride, int y_row0,
                                  int y_rows, int H, int W, int C, int silu, int nimg)
{
    long n = (long)nimg * y_rows;
#pragma omp parallel for schedule(static)
    for (long it = 0; it < n; it++) {
        int i = (int)(it / y_rows), r = (int)(it % y_rows);
        dwconv3_row(x + (size_t)i * x_stride, x_row0, wt, bias,
                    y + (size_t)i * y_stride + (size_t)r * W * C, y_row0 + r, H, W, C, silu);
    }
}

static float *dw_taps(const float *w, int C)
{
    float *wt = malloc((size_t)9 * C * sizeof *wt);
    if (!wt) abort(); /* 9·C floats; C ≤ a few thousand */
    for (int c = 0; c < C; c++)
        for (int k = 0; k < 9; k++) wt[(size_t)k * C + c] = w[(size_t)c * 9 + k];
    return wt;
}

void dwconv3_cpu_fast(const float *x, int x_row0, int x_rows, const float *w, const float *bias,
                      float *y, int y_row0, int y_rows, int H, int W, int C, int silu)
{
    if (!ops_have_avx512()) {
        dwconv3_cpu(x, x_row0, x_rows, w, bias, y, y_row0, y_rows, H, W, C, silu);
        return;
    }
    float *wt = dw_taps(w, C);
    dwconv3_avx512(x, 0, x_row0, wt, bias, y, 0, y_row0, y_rows, H, W, C, silu, 1);
    free(wt);
}

void ops_dwconv3_images(int nimg, const float *x, const float *w, const float *bias, float *y,
                        int H, int W, int C, int silu)
{
    size_t L = (size_t)H * W;
    if (!ops_have_avx512()) {
        for (int i = 0; i < nimg; i++)
            dwconv3_cpu(x + i * L * C, 0, H, w, bias, y + i * L * C, 0, H, H, W, C, silu);
        return;
    }
    float *wt = dw_taps(w, C);
    dwconv3_avx512(x, L * C, 0, wt, bias, y, L * C, 0, H, H, W, C, silu, nimg);
    free(wt);
}

/* ---- dense 3×3 stride 2 as GEMM over fixed output-pixel tiles ----------------------------- */

/* Output pixels (over the images, then the band's rows, flattened row-major) × output channels
 * are cut into the tiles of ops_gemm_tiles (row tiles only when a LayerNorm follows, which needs
 * whole output rows); each tile gathers its pixels' 3×3×Ci patches (im2col, in the weight's
 * (ci, ky, kx) order, so the stored weight is used as is), runs one single-thread sgemm, then
 * the optional LayerNorm (+GELU) of its rows. */
void ops_conv3s2_post(int nimg, const float *x, size_t x_stride, int x_row0, const float *w,
                      const float *bias, float *y, size_t y_stride, int y_row0, int y_rows, int H,
                      int W, int Ci, int Co, const float *ln_g, const float *ln_b, int gelu)
{
    const int Wo = (W + 1) / 2, KK = Ci * 9;
    const size_t Mi = (size_t)y_rows * Wo, M = Mi * nimg;
    struct ops_tiles tl;
    ops_gemm_tiles(M, KK, ln_g ? 0 : Co, &tl);
    if (ln_g) tl.cols = Co, tl.ncb = 1;
#pragma omp parallel if (tl.n > 1)
    {
        float *col = malloc((size_t)tl.rows * KK * sizeof *col);
        if (!col) abort(); /* OPS_GEMM_ROWS × 9·Ci floats per thread */
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < tl.n; t++) {
            size_t q0 = (size_t)(t / tl.ncb) * tl.rows;
            int j0 = (int)(t % tl.ncb) * tl.cols;
            int m = (int)(M - q0 < (size_t)tl.rows ? M - q0 : (size_t)tl.rows);
            int nc = Co - j0 < tl.cols ? Co - j0 : tl.cols;
            for (int i = 0; i < m; i++) {
                size_t q = q0 + i, img = q / Mi, p = q % Mi;
                int oy = y_row0 + (int)(p / Wo), ox = (int)(p % Wo);
                const float *xi = x + img * x_stride;
                float *cp = col + (size_t)i * KK;
                for (int ky = 0; ky < 3; ky++) {
                    int iy = 2 * oy + ky - 1;
                    for (int kx = 0; kx < 3; kx++) {
                        int ix = 2 * ox + kx - 1;
                        float *d = cp + ky * 3 + kx;
                        if (iy < 0 || iy >= H || ix < 0 || ix >= W) {
                            for (int ci = 0; ci < Ci; ci++) d[(size_t)ci * 9] = 0.0f;
                        } else {
                            const float *xp = xi + ((size_t)(iy - x_row0) * W + ix) * Ci;
                            for (int ci = 0; ci < Ci; ci++) d[(size_t)ci * 9] = xp[ci];
                        }
                    }
                }
            }
            /* output rows of this tile: contiguous within an image, so go image by image */
            for (int i = 0; i < m;) {
                size_t q = q0 + i, img = q / Mi, p = q % Mi;
                int run = (int)(Mi - p < (size_t)(m - i) ? Mi - p : (size_t)(m - i));
                float *yb = y + img * y_stride + p * Co + j0;
                float beta = 0.0f;
                if (bias) {
                    for (int r = 0; r < run; r++)
                        memcpy(yb + (size_t)r * Co, bias + j0, nc * sizeof *yb);
                    beta = 1.0f;
                }
                ops_sgemm_nt_ld(col + (size_t)i * KK, KK, w + (size_t)j0 * KK, KK, yb, Co, run, KK,
                                nc, beta);
                if (ln_g) {
                    ops_layernorm_rows(yb, ln_g, ln_b, yb, run, Co);
                    if (gelu) ops_gelu_rows(yb, (size_t)run * Co);
                }
                i += run;
            }
        }
        free(col);
    }
}

void conv3s2_cpu_fast(const float *x, int x_row0, int x_rows, const float *w, const float *bias,
                      float *y, int y_row0, int y_rows, int H, int W, int Ci, int Co)
{
    (void)x_rows;
    ops_conv3s2_post(1, x, 0, x_row0, w, bias, y, 0, y_row0, y_rows, H, W, Ci, Co, NULL, NULL, 0);
}

/* ---- SS2D scan + merge -------------------------------------------------------------------- */

/* Channel groups walked together: a work item is up to SS2D_MAXG consecutive 16-channel groups,
 * so each pixel step of a column direction (stride W·Dn floats: a new page for u, y and xdbl
 * every step) fetches ng adjacent lines of u and y behind one TLB miss each and one xdbl line for
 * all of them. Every channel's arithmetic is the same whatever the grouping. */
#define SS2D_MAXG 4

/* Channels [d0, d0 + 16·ng) (the last group may be partial: cb_last) over all four directions
 * (ss2d.h). Per pixel in direction order and per group: δ = softplus(dt_w·dt_low + b) for 16
 * channels (broadcast dt_low), h = e^{δA}·h + δ·B·u, y (+)= ⟨C, h⟩ + D·u. The column directions
 * prefetch the next pixels' lines. wt: ng·R·16 floats; hv, Av: ng·N vectors of thread scratch. */
AVX512 static void ss2d_groups(const float *u, const float *xdbl, const float *dt_w,
                               const float *dt_b, const float *A, const float *Ds, float *y,
                               int H, int W, int Dn, int R, int N, int d0, int ng, int cb_last,
                               float *wt, __m512 *hv, __m512 *Av)
{
    static const int korder[SS2D_K] = {0, 2, 1, 3}; /* as ss2d.c: (y0 + y2) + y1 + y3 */
    const size_t L = (size_t)H * W;
    const int P = R + 2 * N;
    __mmask16 msk[SS2D_MAXG];
    __m512 bias[SS2D_MAXG], Dv[SS2D_MAXG];
    for (int gi = 0; gi < ng; gi++) msk[gi] = tail_mask(gi == ng - 1 ? cb_last : 16);
    for (int kk = 0; kk < SS2D_K; kk++) {
        const int k = korder[kk];
        for (int gi = 0; gi < ng; gi++) {
            const int c0 = d0 + 16 * gi, cb = gi == ng - 1 ? cb_last : 16;
            for (int r = 0; r < R; r++)
                for (int j = 0; j < 16; j++)
                    wt[((size_t)gi * R + r) * 16 + j] =
                        j < cb ? dt_w[((size_t)k * Dn + c0 + j) * R + r] : 0.0f;
            for (int n = 0; n < N; n++) {
                float a[16];
                for (int j = 0; j < 16; j++)
                    a[j] = j < cb ? A[((size_t)k * Dn + c0 + j) * N + n] : 0.0f;
                Av[gi * N + n] = _mm512_loadu_ps(a);
                hv[gi * N + n] = _mm512_setzero_ps();
            }
            bias[gi] = _mm512_maskz_loadu_ps(msk[gi], dt_b + (size_t)k * Dn + c0);
            Dv[gi] = _mm512_maskz_loadu_ps(msk[gi], Ds + (size_t)k * Dn + c0);
        }
        /* pixel walk: p = base + o·s_out + i·s_in in the direction's order */
        const int col = k == 1 || k == 3, rev = k >= 2;
        const size_t n_out = col ? (size_t)W : (size_t)H, n_in = col ? (size_t)H : (size_t)W;
        const long s_in = (long)(col ? W : 1) * (rev ? -1 : 1);
        const long s_out = (long)(col ? 1 : W) * (rev ? -1 : 1);
        const long base = rev ? (long)L - 1 : 0;
        for (size_t o = 0; o < n_out; o++) {
            long p = base + (long)o * s_out;
            for (size_t i = 0; i < n_in; i++, p += s_in) {
                if (col && i + 8 < n_in) {
                    long q = p + 8 * s_in;
                    for (int gi = 0; gi < ng; gi++) {
                        _mm_prefetch((const char *)(u + (size_t)q * Dn + d0 + 16 * gi), _MM_HINT_T0);
                        _mm_prefetch((const char *)(y + (size_t)q * Dn + d0 + 16 * gi), _MM_HINT_T0);
                    }
                    _mm_prefetch((const char *)(xdbl + ((size_t)q * SS2D_K + k) * P), _MM_HINT_T0);
                }
                const float *xd = xdbl + ((size_t)p * SS2D_K + k) * P;
                for (int gi = 0; gi < ng; gi++) {
                    const float *up = u + (size_t)p * Dn + d0 + 16 * gi;
                    float *yp = y + (size_t)p * Dn + d0 + 16 * gi;
                    const float *wg = wt + (size_t)gi * R * 16;
                    __m512 dt = bias[gi];
                    for (int r = 0; r < R; r++)
                        dt = _mm512_fmadd_ps(_mm512_loadu_ps(wg + r * 16), _mm512_set1_ps(xd[r]), dt);
                    __m512 sp = v_softplus(dt);
                    __m512 uv = _mm512_maskz_loadu_ps(msk[gi], up);
                    __m512 su = _mm512_mul_ps(sp, uv);
                    __m512 acc = _mm512_mul_ps(Dv[gi], uv);
                    for (int n = 0; n < N; n++) {
                        __m512 dA = v_exp(_mm512_mul_ps(sp, Av[gi * N + n]));
                        __m512 h = _mm512_fmadd_ps(dA, hv[gi * N + n],
                                                   _mm512_mul_ps(su, _mm512_set1_ps(xd[R + n])));
                        hv[gi * N + n] = h;
                        acc = _mm512_fmadd_ps(_mm512_set1_ps(xd[R + N + n]), h, acc);
                    }
                    if (kk) acc = _mm512_add_ps(_mm512_maskz_loadu_ps(msk[gi], yp), acc);
                    _mm512_mask_storeu_ps(yp, msk[gi], acc);
                }
            }
        }
    }
}

void ops_ss2d_images(int nimg, const float *u, const float *xdbl, const float *dt_w,
                     const float *dt_b, const float *A, const float *Ds, float *y, int H, int W,
                     int Dn, int R, int N)
{
    const size_t L = (size_t)H * W, P4 = (size_t)SS2D_K * (R + 2 * N);
    if (!ops_have_avx512()) {
        for (int i = 0; i < nimg; i++)
            ss2d_scan_merge_cpu(u + i * L * Dn, xdbl + i * L * P4, dt_w, dt_b, A, Ds,
                                y + i * L * Dn, H, W, Dn, R, N);
        return;
    }
    const int ngrp = (Dn + 15) / 16;
    /* groups per work item: as many as SS2D_MAXG while at least 2 items per image remain (a
     * function of Dn only) */
    int gpi = ngrp / 2 < SS2D_MAXG ? ngrp / 2 : SS2D_MAXG;
    if (gpi < 1) gpi = 1;
    const int nitem = (ngrp + gpi - 1) / gpi;
    const long n = (long)nimg * nitem;
#pragma omp parallel
    {
        float *wt = aligned_alloc(64, (size_t)SS2D_MAXG * (R > 0 ? R : 1) * 16 * sizeof *wt);
        __m512 *hv = aligned_alloc(64, (size_t)(2 * SS2D_MAXG * N + 1) * sizeof *hv);
        if (!wt || !hv) abort(); /* SS2D_MAXG·R·16 floats and 2·SS2D_MAXG·N+1 vectors */
#pragma omp for schedule(dynamic, 1)
        for (long it = 0; it < n; it++) {
            int i = (int)(it / nitem), g0 = (int)(it % nitem) * gpi;
            int ng = ngrp - g0 < gpi ? ngrp - g0 : gpi;
            int d0 = g0 * 16, dl = d0 + 16 * (ng - 1), cb_last = Dn - dl < 16 ? Dn - dl : 16;
            ss2d_groups(u + i * L * Dn, xdbl + i * L * P4, dt_w, dt_b, A, Ds, y + i * L * Dn, H,
                        W, Dn, R, N, d0, ng, cb_last, wt, hv, hv + SS2D_MAXG * N);
        }
        free(wt);
        free(hv);
    }
}

void ss2d_scan_merge_cpu_fast(const float *u, const float *xdbl, const float *dt_w,
                              const float *dt_b, const float *A, const float *Ds, float *y, int H,
                              int W, int Dn, int R, int N)
{
    ops_ss2d_images(1, u, xdbl, dt_w, dt_b, A, Ds, y, H, W, Dn, R, N);
}
