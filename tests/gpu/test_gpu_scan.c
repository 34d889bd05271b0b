/*
 * test_gpu_scan.c — the chunked CUDA selective scan (cuda/scan.cu) and the fused SS2D
 * scan + merge (cuda/ss2d.cu) against their CPU twins (src/scan.c, src/ss2d.c), plus the official
 * golden scans (../shared/golden/scan_*) on the GPU.
 *
 * Shapes: L = 1, L at chunk boundaries ±1 (chunk forced small so several chunks are crossed),
 * d_state 1, 4 and 16, B > 1, G > 1, with and without h_in / D / delta_bias / softplus, and for
 * SS2D odd H×W, 1×1, single-row and single-column maps. Scanning in pieces with the carried state
 * equals scanning whole (on the GPU, and against the CPU whole).
 *
 * Tolerance 1e-5 (gt_compare, relative to |ref| + rms(ref)): the chunked scan only reassociates
 * the state at chunk boundaries (h = (Π a)·h_in + h_local instead of step by step), ~1e-7 relative
 * per boundary, plus expf/log1pf ulp differences; spec §4 reports 3e-6 for chunked vs sequential
 * at L = 5000. Golden files: scan_small 1e-5 abs as in tests/golden.
 *
 * scan_long (L = 5000, one slowly decaying channel per group, |δA| ~ 1e-3, y up to ±12) is
 * checked twice, against
 *   - a float64 loop over the same inputs (computed here): abs 3e-5 + rel 1e-5·|y|. Any fp32
 *     order of this recurrence drifts from float64 by ~2e-5 (the official fp32 loop: 2.46e-5);
 *     a CPU emulation of this kernel (log-space chunk decay, fp64 carry, scan_exp) gives 0.9e-5
 *     (chunk 256) and 1.6e-5 (chunk 2048), up to 1.9e-5 when δ is perturbed by ±2 ulp;
 *   - the official fp32 y: abs 5e-5 + rel 1e-5·|y|, i.e. its own 2.5e-5 distance from float64
 *     plus ours (emulated: 2.4e-5 .. 2.9e-5). An abs 1e-5 + rel 1e-5 bound would fail even the
 *     float64 loop (ratio 1.08), so it cannot be the bar.
 * The first H200 run (running product of fp32 exps for the chunk decay, fp32 carry, CUDA expf,
 * which is biased near 1) was 2.9e-4 (chunk 256) and 3.9e-4 (chunk 2048) from the golden: 6-8×
 * over these bounds.
 */
#include <math.h>

#include "golden/golden_io.h"
#include "gpu_test.h"
#include "src/scan.h"
#include "src/ss2d.h"

static void test_scan(int B, int KD, int G, int N, int L, int chunk, int with_hin, int softplus)
{
    char label[160];
    size_t nu = (size_t)B * KD * L, nbc = (size_t)B * G * N * L, nh = (size_t)B * KD * N;
    float *u = gt_rand(nu, -1, 1), *delta = gt_rand(nu, -3, 1);
    float *A = gt_rand((size_t)KD * N, -2, -0.01f), *Bm = gt_rand(nbc, -1, 1), *Cm = gt_rand(nbc, -1, 1);
    float *D = gt_rand(KD, -1, 1), *db = gt_rand(KD, -1, 1), *hin = gt_rand(nh, -1, 1);
    if (!softplus)
        for (size_t i = 0; i < nu; i++) delta[i] = 0.05f + 0.1f * fabsf(delta[i]); /* δ > 0 */
    float *y = malloc(nu * sizeof *y + 4), *hout = malloc(nh * sizeof *hout + 4);
    scan_cpu(u, delta, A, Bm, Cm, D, db, with_hin ? hin : NULL, y, hout, B, KD, G, N, L, softplus);
    struct gt_buf du = gt_alloc(nu, u), dd = gt_alloc(nu, delta), dA = gt_alloc((size_t)KD * N, A),
                  dB = gt_alloc(nbc, Bm), dC = gt_alloc(nbc, Cm), dD = gt_alloc(KD, D),
                  ddb = gt_alloc(KD, db), dh = gt_alloc(nh, hin), dy = gt_alloc(nu, NULL),
                  dho = gt_alloc(nh, NULL);
    enum wv_status st = scan_cuda_ex(du.d, dd.d, dA.d, dB.d, dC.d, dD.d, ddb.d, with_hin ? dh.d : NULL,
                                     dy.d, dho.d, B, KD, G, N, L, softplus, chunk, NULL, 0);
    CHECK_MSG(st == WV_OK, "scan_cuda_ex: %s", error_msg());
    snprintf(label, sizeof label, "scan B%d KD%d G%d N%d L%d chunk%d h%d sp%d", B, KD, G, N, L,
             chunk, with_hin, softplus);
    float *gy = gt_fetch(dy, label), *gh = gt_fetch(dho, label);
    gt_compare(label, gy, y, nu, 1e-5);
    char l2[200];
    snprintf(l2, sizeof l2, "%s h_out", label);
    gt_compare(l2, gh, hout, nh, 1e-5);

    /* pieces with carried state = whole: split every sequence at s1, s2 (B = 1 layout makes a
     * piece a contiguous (KD, len) block only when B·KD = 1, so copy pieces explicitly) */
    if (L >= 3) {
        int cut[3] = {0, L / 3 + 1, L};
        float *piece_y = malloc(nu * sizeof *piece_y);
        struct gt_buf dstate = gt_alloc(nh, with_hin ? hin : NULL);
        if (!with_hin) cudaMemset(dstate.d, 0, nh * sizeof(float));
        for (int p = 0; p < 2; p++) {
            int l0 = cut[p], len = cut[p + 1] - cut[p];
            size_t pu = (size_t)B * KD * len, pb = (size_t)B * G * N * len;
            float *hu = malloc(pu * 4), *hd = malloc(pu * 4), *hB = malloc(pb * 4), *hC = malloc(pb * 4);
            for (size_t s = 0; s < (size_t)B * KD; s++) {
                memcpy(hu + s * len, u + s * L + l0, len * 4);
                memcpy(hd + s * len, delta + s * L + l0, len * 4);
            }
            for (size_t s = 0; s < (size_t)B * G * N; s++) {
                memcpy(hB + s * len, Bm + s * L + l0, len * 4);
                memcpy(hC + s * len, Cm + s * L + l0, len * 4);
            }
            struct gt_buf pu_d = gt_alloc(pu, hu), pd_d = gt_alloc(pu, hd), pB_d = gt_alloc(pb, hB),
                          pC_d = gt_alloc(pb, hC), py_d = gt_alloc(pu, NULL);
            scan_cuda_ex(pu_d.d, pd_d.d, dA.d, pB_d.d, pC_d.d, dD.d, ddb.d, dstate.d, py_d.d,
                         dstate.d, B, KD, G, N, len, softplus, chunk, NULL, 0);
            float *gpy = gt_fetch(py_d, "scan piece");
            for (size_t s = 0; s < (size_t)B * KD; s++) memcpy(piece_y + s * L + l0, gpy + s * len, len * 4);
            free(gpy), free(hu), free(hd), free(hB), free(hC);
            gt_free(pu_d), gt_free(pd_d), gt_free(pB_d), gt_free(pC_d), gt_free(py_d);
        }
        snprintf(l2, sizeof l2, "%s pieces=whole", label);
        gt_compare(l2, piece_y, y, nu, 1e-5);
        float *gst = gt_fetch(dstate, "scan piece state");
        snprintf(l2, sizeof l2, "%s pieces state", label);
        gt_compare(l2, gst, hout, nh, 1e-5);
        free(gst), free(piece_y);
        gt_free(dstate);
    }
    free(gy), free(gh), free(u), free(delta), free(A), free(Bm), free(Cm), free(D), free(db),
        free(hin), free(y), free(hout);
    gt_free(du), gt_free(dd), gt_free(dA), gt_free(dB), gt_free(dC), gt_free(dD), gt_free(ddb),
        gt_free(dh), gt_free(dy), gt_free(dho);
}

static void test_ss2d(int H, int W, int Dn, int R, int N, int chunk)
{
    char label[160];
    size_t L = (size_t)H * W;
    int P = R + 2 * N;
    float *u = gt_rand(L * Dn, -1, 1), *xdbl = gt_rand(L * 4 * P, -1, 1);
    float *dtw = gt_rand((size_t)4 * Dn * R, -0.5f, 0.5f), *dtb = gt_rand((size_t)4 * Dn, -4, -1);
    float *A = gt_rand((size_t)4 * Dn * N, -2, -0.05f), *Ds = gt_rand((size_t)4 * Dn, 0.5f, 1.5f);
    float *y = malloc(L * Dn * sizeof *y + 4);
    ss2d_scan_merge_cpu(u, xdbl, dtw, dtb, A, Ds, y, H, W, Dn, R, N);
    struct gt_buf du = gt_alloc(L * Dn, u), dx = gt_alloc(L * 4 * P, xdbl),
                  dw = gt_alloc((size_t)4 * Dn * R, dtw), db = gt_alloc((size_t)4 * Dn, dtb),
                  dA = gt_alloc((size_t)4 * Dn * N, A), dD = gt_alloc((size_t)4 * Dn, Ds),
                  dy = gt_alloc(L * Dn, NULL);
    if (chunk > 0) {
        enum wv_status st = ss2d_scan_merge_cuda_ex(du.d, dx.d, dw.d, db.d, dA.d, dD.d, dy.d, H, W,
                                                    Dn, R, N, chunk, NULL, 0);
        CHECK_MSG(st == WV_OK, "ss2d_scan_merge_cuda_ex: %s", error_msg());
    } else {
        ss2d_scan_merge_cuda(du.d, dx.d, dw.d, db.d, dA.d, dD.d, dy.d, H, W, Dn, R, N, 0);
    }
    snprintf(label, sizeof label, "ss2d %dx%d Dn%d R%d N%d chunk%d", H, W, Dn, R, N, chunk);
    float *got = gt_fetch(dy, label);
    gt_compare(label, got, y, L * Dn, 1e-5);
    free(got), free(u), free(xdbl), free(dtw), free(dtb), free(A), free(Ds), free(y);
    gt_free(du), gt_free(dx), gt_free(dw), gt_free(db), gt_free(dA), gt_free(dD), gt_free(dy);
}

/* float64 loop over the fp32 inputs (B = 1 layout as the golden files; softplus in float64) */
static double *scan_f64(const float *u, const float *delta, const float *A, const float *Bm,
                        const float *Cm, const float *D, const float *db, int B, int KD, int G,
                        int N, int L)
{
    double *y = malloc((size_t)B * KD * L * sizeof *y);
    int Dg = KD / G;
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < KD; ch++) {
            size_t bc = (size_t)b * KD + ch;
            const float *Bg = Bm + ((size_t)b * G + ch / Dg) * N * L, *Cg = Cm + ((size_t)b * G + ch / Dg) * N * L;
            double h[64] = {0};
            for (int t = 0; t < L; t++) {
                double x = (double)delta[bc * L + t] + db[ch];
                double dt = x > 20.0 ? x : log1p(exp(x)), ut = u[bc * L + t], acc = 0;
                for (int n = 0; n < N; n++) {
                    h[n] = exp(dt * A[(size_t)ch * N + n]) * h[n] + dt * Bg[(size_t)n * L + t] * ut;
                    acc += Cg[(size_t)n * L + t] * h[n];
                }
                y[bc * L + t] = acc + (double)D[ch] * ut;
            }
        }
    return y;
}

/* Official golden scans (spec §10) run through the GPU scan with the default and a small chunk:
 * against the official fp32 y (atol + rtol·|y|) and, with f64_atol > 0, a float64 loop. */
static void test_golden(const char *c, int B, int G, int Dg, int N, int L, int chunk, double atol,
                        double rtol, double f64_atol)
{
    int KD = G * Dg;
    size_t nu = (size_t)B * KD * L, nbc = (size_t)B * G * N * L;
    char f[128];
#define GR(var, name, n) snprintf(f, sizeof f, "scan_%s_%s.bin", c, name); float *var = golden_read(f, n)
    GR(u, "u", nu); GR(delta, "delta", nu); GR(A, "A", (size_t)KD * N); GR(Bm, "B", nbc);
    GR(Cm, "C", nbc); GR(D, "D", KD); GR(db, "delta_bias", KD); GR(yref, "y", nu);
#undef GR
    if (!u || !delta || !A || !Bm || !Cm || !D || !db || !yref) {
        CHECK_MSG(0, "golden scan_%s missing", c);
        return;
    }
    struct gt_buf du = gt_alloc(nu, u), dd = gt_alloc(nu, delta), dA = gt_alloc((size_t)KD * N, A),
                  dB = gt_alloc(nbc, Bm), dC = gt_alloc(nbc, Cm), dD = gt_alloc(KD, D),
                  ddb = gt_alloc(KD, db), dy = gt_alloc(nu, NULL);
    enum wv_status st = scan_cuda_ex(du.d, dd.d, dA.d, dB.d, dC.d, dD.d, ddb.d, NULL, dy.d, NULL, B,
                                     KD, G, N, L, 1, chunk, NULL, 0);
    CHECK_MSG(st == WV_OK, "scan_cuda_ex: %s", error_msg());
    error_clear();
    char label[96];
    snprintf(label, sizeof label, "golden scan_%s chunk %d", c, chunk);
    float *got = gt_fetch(dy, label);
    tu_check_tensor(label, got, yref, nu, atol, rtol);
    double worst = 0, worst64 = 0;
    for (size_t i = 0; i < nu; i++) worst = fmax(worst, fabs((double)got[i] - yref[i]));
    if (f64_atol > 0) {
        double *y64 = scan_f64(u, delta, A, Bm, Cm, D, db, B, KD, G, N, L);
        float *y64f = malloc(nu * sizeof *y64f);
        for (size_t i = 0; i < nu; i++) {
            y64f[i] = (float)y64[i];
            worst64 = fmax(worst64, fabs((double)got[i] - y64[i]));
        }
        snprintf(label, sizeof label, "float64 scan_%s chunk %d", c, chunk);
        tu_check_tensor(label, got, y64f, nu, f64_atol, rtol);
        free(y64), free(y64f);
    }
    printf("golden scan_%s chunk %d: max|diff| %.3g vs official fp32 y", c, chunk, worst);
    if (f64_atol > 0) printf(", %.3g vs float64", worst64);
    printf("\n");
    free(got), free(u), free(delta), free(A), free(Bm), free(Cm), free(D), free(db), free(yref);
    gt_free(du), gt_free(dd), gt_free(dA), gt_free(dB), gt_free(dC), gt_free(dD), gt_free(ddb), gt_free(dy);
}

int main(void)
{
    gt_require_device("test_gpu_scan");
    gt_seed(8);
    printf("seed 8\n");
    /* generic scan: L = 1; chunk boundaries ±1 with chunk 16; d_state 1, 4, 16; B > 1 */
    test_scan(1, 1, 1, 1, 1, 16, 0, 1);
    test_scan(2, 12, 4, 1, 15, 16, 1, 1);
    test_scan(2, 12, 4, 1, 16, 16, 1, 1);
    test_scan(2, 12, 4, 1, 17, 16, 0, 1);
    test_scan(1, 8, 2, 16, 33, 16, 1, 1);
    test_scan(3, 6, 3, 4, 47, 16, 1, 0);
    test_scan(2, 8, 4, 16, 1000, 64, 1, 1);
    test_scan(1, 4, 4, 1, 5000, scan_cuda_default_chunk(5000), 0, 1);
    test_scan(1, 4, 4, 1, 257, scan_cuda_default_chunk(257), 1, 1);
    /* SS2D: 1×1, single row / column, odd sizes, d_state 1 and 16, chunk boundaries ±1 */
    test_ss2d(1, 1, 3, 1, 1, 16);
    test_ss2d(1, 17, 5, 1, 1, 16);
    test_ss2d(17, 1, 5, 2, 1, 16);
    test_ss2d(3, 5, 7, 1, 1, 16);   /* L = 15 = chunk - 1 */
    test_ss2d(4, 4, 7, 1, 1, 16);   /* L = 16 = chunk */
    test_ss2d(1, 17, 7, 1, 1, 16);  /* L = 17 = chunk + 1 */
    test_ss2d(13, 20, 96, 6, 1, 16);
    test_ss2d(7, 9, 70, 5, 16, 8);
    test_ss2d(25, 39, 65, 4, 16, 0); /* default chunk, several chunks */
    test_ss2d(50, 78, 96, 6, 1, 0);
    test_ss2d(50, 78, 128, 8, 4, 0);
    /* golden official scans */
    test_golden("small", 2, 4, 3, 4, 37, scan_cuda_default_chunk(37), 1e-5, 0, 0);
    test_golden("small", 2, 4, 3, 4, 37, 5, 1e-5, 0, 0);
    test_golden("long", 1, 2, 2, 4, 5000, scan_cuda_default_chunk(5000), 5e-5, 1e-5, 3e-5);
    test_golden("long", 1, 2, 2, 4, 5000, 2048, 5e-5, 1e-5, 3e-5);
    test_golden("long", 1, 2, 2, 4, 5000, 64, 5e-5, 1e-5, 3e-5);
    test_golden("long", 1, 2, 2, 4, 5000, 5000, 5e-5, 1e-5, 3e-5); /* one chunk: no carry */
    return tu_finish("test_gpu_scan");
}
