/*
 * test_scan.c — selective scan (scan.h) and the fused SS2D scan+merge (ss2d.h) on random data:
 *  - split anywhere: scanning in two pieces with the carried state (h_out → h_in) gives
 *    bit-identical y and final state to one scan, for many split points (1, L-1, ...),
 *    d_state 1 and 16, several groups; also many pieces, and h_in == NULL vs zeros;
 *  - ss2d_scan_merge_cpu against an oracle that materialises the four directions (xs, dts, ys)
 *    and calls scan_cpu, on odd non-square maps, d_state 1 and 16, Dn not a multiple of 16;
 *  - thread-count invariance of both (1 vs 2 threads, bit-identical).
 * Seeds fixed and printed.
 */
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/scan.h"
#include "src/ss2d.h"
#include "testutil.h"

static uint64_t rng_state;
static float frand(void) /* uniform [-1, 1) */
{
    rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (float)((rng_state >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}
static float *rnd(size_t n, float scale, float offset)
{
    float *p = malloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = frand() * scale + offset;
    return p;
}

/* copy time slice [t0, t0+len) of a (rows, L) array into (rows, len) */
static void slice(const float *src, float *dst, int rows, int L, int t0, int len)
{
    for (int r = 0; r < rows; r++)
        memcpy(dst + (size_t)r * len, src + (size_t)r * L + t0, len * sizeof *dst);
}

static void test_split(int B, int G, int Dg, int N, int L)
{
    int KD = G * Dg;
    float *u = rnd((size_t)B * KD * L, 1, 0), *dl = rnd((size_t)B * KD * L, 2, -1);
    float *A = rnd((size_t)KD * N, 0.5f, -0.6f), *Bm = rnd((size_t)B * G * N * L, 1, 0);
    float *Cm = rnd((size_t)B * G * N * L, 1, 0), *D = rnd(KD, 1, 0), *db = rnd(KD, 1, 0);
    float *y = malloc((size_t)B * KD * L * sizeof *y), *h = malloc((size_t)B * KD * N * sizeof *h);
    scan_cpu(u, dl, A, Bm, Cm, D, db, NULL, y, h, B, KD, G, N, L, 1);
    /* h_in of zeros == NULL */
    float *z = calloc((size_t)B * KD * N, sizeof *z), *y0 = malloc((size_t)B * KD * L * sizeof *y0);
    scan_cpu(u, dl, A, Bm, Cm, D, db, z, y0, NULL, B, KD, G, N, L, 1);
    CHECK(!memcmp(y0, y, (size_t)B * KD * L * sizeof *y));

    float *pu = malloc((size_t)B * KD * L * sizeof *pu), *pd = malloc((size_t)B * KD * L * sizeof *pd);
    float *pB = malloc((size_t)B * G * N * L * sizeof *pB), *pC = malloc((size_t)B * G * N * L * sizeof *pC);
    float *py = malloc((size_t)B * KD * L * sizeof *py), *y2 = malloc((size_t)B * KD * L * sizeof *y2);
    float *hs = malloc((size_t)B * KD * N * sizeof *hs);
    int splits[64], ns = 0;
    splits[ns++] = 1;
    splits[ns++] = L - 1;
    for (int s = 2; s < L - 1 && ns < 40; s += 1 + L / 37) splits[ns++] = s;
    int bad = 0;
    for (int si = 0; si < ns; si++) {
        int cuts[3] = {0, splits[si], L};
        memset(hs, 0, (size_t)B * KD * N * sizeof *hs);
        for (int c = 0; c < 2; c++) {
            int t0 = cuts[c], len = cuts[c + 1] - t0;
            slice(u, pu, B * KD, L, t0, len);
            slice(dl, pd, B * KD, L, t0, len);
            slice(Bm, pB, B * G * N, L, t0, len);
            slice(Cm, pC, B * G * N, L, t0, len);
            scan_cpu(pu, pd, A, pB, pC, D, db, c ? hs : NULL, py, hs, B, KD, G, N, len, 1);
            for (int r = 0; r < B * KD; r++)
                memcpy(y2 + (size_t)r * L + t0, py + (size_t)r * len, len * sizeof *y2);
        }
        if (memcmp(y2, y, (size_t)B * KD * L * sizeof *y) || memcmp(hs, h, (size_t)B * KD * N * sizeof *h)) {
            if (bad++ < 3) fprintf(stderr, "  split at %d of %d (N=%d) differs\n", splits[si], L, N);
        }
    }
    CHECK_MSG(bad == 0, "%d of %d split points differ", bad, ns);
    /* many pieces of length 1..7 */
    memset(hs, 0, (size_t)B * KD * N * sizeof *hs);
    for (int t0 = 0, piece = 1; t0 < L; t0 += piece, piece = piece % 7 + 1) {
        int len = t0 + piece > L ? L - t0 : piece;
        slice(u, pu, B * KD, L, t0, len);
        slice(dl, pd, B * KD, L, t0, len);
        slice(Bm, pB, B * G * N, L, t0, len);
        slice(Cm, pC, B * G * N, L, t0, len);
        scan_cpu(pu, pd, A, pB, pC, D, db, hs, py, hs, B, KD, G, N, len, 1);
        for (int r = 0; r < B * KD; r++)
            memcpy(y2 + (size_t)r * L + t0, py + (size_t)r * len, len * sizeof *y2);
    }
    CHECK_MSG(!memcmp(y2, y, (size_t)B * KD * L * sizeof *y) && !memcmp(hs, h, (size_t)B * KD * N * sizeof *h),
              "many-piece scan differs (N=%d, L=%d)", N, L);
    printf("split-anywhere B=%d G=%d Dg=%d N=%-2d L=%-4d %d split points + pieces: %s\n", B, G, Dg,
           N, L, ns, bad ? "FAIL" : "bit-identical");
    /* thread count */
    omp_set_num_threads(1);
    scan_cpu(u, dl, A, Bm, Cm, D, db, NULL, y2, hs, B, KD, G, N, L, 1);
    omp_set_num_threads(2);
    CHECK_MSG(!memcmp(y2, y, (size_t)B * KD * L * sizeof *y), "scan differs with 1 thread");
    free(u), free(dl), free(A), free(Bm), free(Cm), free(D), free(db), free(y), free(h), free(z),
        free(y0), free(pu), free(pd), free(pB), free(pC), free(py), free(y2), free(hs);
}

/* Oracle for SS2D: materialise xs/dts/B/C of the 4 directions, scan_cpu, merge. */
static void ss2d_oracle(const float *u, const float *xdbl, const float *dt_w, const float *dt_b,
                        const float *A, const float *Ds, float *y, int H, int W, int Dn, int R,
                        int N)
{
    int K = 4, L = H * W, P = R + 2 * N;
    float *xs = malloc((size_t)K * Dn * L * sizeof *xs), *dts = malloc((size_t)K * Dn * L * sizeof *dts);
    float *Bs = malloc((size_t)K * N * L * sizeof *Bs), *Cs = malloc((size_t)K * N * L * sizeof *Cs);
    float *ys = malloc((size_t)K * Dn * L * sizeof *ys);
    for (int k = 0; k < K; k++)
        for (int l = 0; l < L; l++) {
            int p;
            if (k == 0) p = l;
            else if (k == 2) p = L - 1 - l;
            else {
                int q = k == 1 ? l : L - 1 - l;
                p = (q % H) * W + q / H;
            }
            const float *xd = xdbl + ((size_t)p * K + k) * P;
            for (int d = 0; d < Dn; d++) {
                xs[((size_t)k * Dn + d) * L + l] = u[(size_t)p * Dn + d];
                float s = 0;
                for (int r = 0; r < R; r++) s += dt_w[((size_t)k * Dn + d) * R + r] * xd[r];
                dts[((size_t)k * Dn + d) * L + l] = s;
            }
            for (int n = 0; n < N; n++) {
                Bs[((size_t)k * N + n) * L + l] = xd[R + n];
                Cs[((size_t)k * N + n) * L + l] = xd[R + N + n];
            }
        }
    scan_cpu(xs, dts, A, Bs, Cs, Ds, dt_b, NULL, ys, NULL, 1, K * Dn, K, N, L, 1);
    for (int h = 0; h < H; h++)
        for (int w = 0; w < W; w++)
            for (int d = 0; d < Dn; d++) {
                size_t r0 = (size_t)h * W + w, r1 = (size_t)w * H + h;
                float a = ys[((size_t)0 * Dn + d) * L + r0] + ys[((size_t)2 * Dn + d) * L + (L - 1 - r0)];
                float b = ys[((size_t)1 * Dn + d) * L + r1] + ys[((size_t)3 * Dn + d) * L + (L - 1 - r1)];
                y[((size_t)h * W + w) * Dn + d] = a + b;
            }
    free(xs), free(dts), free(Bs), free(Cs), free(ys);
}

static void test_ss2d(int H, int W, int Dn, int R, int N)
{
    int K = 4, L = H * W, P = R + 2 * N;
    float *u = rnd((size_t)L * Dn, 1, 0), *xdbl = rnd((size_t)L * K * P, 1, 0);
    float *dt_w = rnd((size_t)K * Dn * R, 0.5f, 0), *dt_b = rnd((size_t)K * Dn, 1, -1);
    float *A = rnd((size_t)K * Dn * N, 0.5f, -0.6f), *Ds = rnd((size_t)K * Dn, 1, 0);
    float *y = malloc((size_t)L * Dn * sizeof *y), *yr = malloc((size_t)L * Dn * sizeof *yr);
    float *y1 = malloc((size_t)L * Dn * sizeof *y1);
    ss2d_scan_merge_cpu(u, xdbl, dt_w, dt_b, A, Ds, y, H, W, Dn, R, N);
    ss2d_oracle(u, xdbl, dt_w, dt_b, A, Ds, yr, H, W, Dn, R, N);
    char label[96];
    snprintf(label, sizeof label, "ss2d %dx%d Dn=%d R=%d N=%d", H, W, Dn, R, N);
    tu_check_tensor(label, y, yr, (size_t)L * Dn, 1e-5, 1e-5);
    omp_set_num_threads(1);
    ss2d_scan_merge_cpu(u, xdbl, dt_w, dt_b, A, Ds, y1, H, W, Dn, R, N);
    omp_set_num_threads(2);
    CHECK_MSG(!memcmp(y1, y, (size_t)L * Dn * sizeof *y), "ss2d differs with 1 vs 2 threads");
    free(u), free(xdbl), free(dt_w), free(dt_b), free(A), free(Ds), free(y), free(yr), free(y1);
}

int main(void)
{
    rng_state = 20240118;
    printf("seed %llu\n", (unsigned long long)rng_state);
    omp_set_num_threads(2);
    test_split(2, 4, 3, 1, 37);
    test_split(1, 4, 5, 16, 101);
    test_split(2, 2, 2, 16, 2);
    test_split(1, 1, 3, 4, 300);
    test_ss2d(1, 1, 5, 1, 1);
    test_ss2d(5, 7, 16, 1, 1);
    test_ss2d(7, 3, 37, 3, 16);
    test_ss2d(13, 20, 48, 3, 1);
    test_ss2d(4, 9, 20, 2, 4);
    return tu_finish("test_scan");
}
