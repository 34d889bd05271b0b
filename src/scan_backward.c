/*
 * scan_backward.c — float64 selective scan and its backward with carried state (scan_grad.h).
 * Plain loops in the recurrence's order; the backward recomputes each channel's states from h_in
 * and walks t = L-1 … 0 carrying dh (d loss / d h_t), which leaves d loss / d h_in at the end.
 */
#include "scan_grad.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

double scan_softplus_f64(double x) { return x > 20.0 ? x : log1p(exp(x)); }
double scan_softplus_grad_f64(double x) { return x > 20.0 ? 1.0 : 1.0 / (1.0 + exp(-x)); }

void scan_forward_f64(const double *u, const double *delta, const double *A, const double *Bm,
                      const double *Cm, const double *D, const double *delta_bias,
                      const double *h_in, double *y, double *h_out, int B, int KD, int G, int N,
                      int L, int delta_softplus)
{
    const int Dg = KD / G;
#pragma omp parallel for schedule(static)
    for (long bc = 0; bc < (long)B * KD; bc++) {
        const int b = (int)(bc / KD), ch = (int)(bc % KD), g = ch / Dg;
        double h[N > 0 ? N : 1];
        for (int n = 0; n < N; n++) h[n] = h_in ? h_in[(size_t)bc * N + n] : 0.0;
        const double *ur = u + (size_t)bc * L, *dr = delta + (size_t)bc * L;
        const double *Bg = Bm + ((size_t)b * G + g) * N * L, *Cg = Cm + ((size_t)b * G + g) * N * L;
        const double *Ac = A + (size_t)ch * N;
        const double db = delta_bias ? delta_bias[ch] : 0.0, Dc = D ? D[ch] : 0.0;
        double *yr = y + (size_t)bc * L;
        for (int t = 0; t < L; t++) {
            double dt = dr[t] + db;
            if (delta_softplus) dt = scan_softplus_f64(dt);
            double ut = ur[t], acc = 0.0;
            for (int n = 0; n < N; n++) {
                h[n] = exp(dt * Ac[n]) * h[n] + dt * Bg[(size_t)n * L + t] * ut;
                acc += Cg[(size_t)n * L + t] * h[n];
            }
            yr[t] = acc + Dc * ut;
        }
        if (h_out)
            for (int n = 0; n < N; n++) h_out[(size_t)bc * N + n] = h[n];
    }
}

enum wv_status scan_backward_f64(const double *u, const double *delta, const double *A,
                                 const double *Bm, const double *Cm, const double *D,
                                 const double *delta_bias, const double *h_in, const double *dy,
                                 const double *dh_out, double *du, double *ddelta, double *dA,
                                 double *dBm, double *dCm, double *dD, double *ddelta_bias,
                                 double *dh_in, int B, int KD, int G, int N, int L,
                                 int delta_softplus)
{
    const int Dg = KD / G;
    const size_t BKD = (size_t)B * KD, NL = (size_t)N * (L > 0 ? L : 1);
    /* per-channel scratch: states h_t (N, L+1) column t+1 = h_t, column 0 = h_in; per-channel
     * dB/dC contributions (N, L) reduced over the group afterwards; per-channel dA/dD/dbias */
    double *hs = wv_malloc(BKD * (size_t)N * (size_t)(L + 1) * sizeof *hs, "scan backward states");
    double *cB = wv_malloc(BKD * NL * sizeof *cB, "scan backward dB");
    double *cC = wv_malloc(BKD * NL * sizeof *cC, "scan backward dC");
    double *cA = wv_calloc(BKD * (size_t)N, sizeof *cA, "scan backward dA");
    double *cD = wv_calloc(BKD, sizeof *cD, "scan backward dD");
    double *cb = wv_calloc(BKD, sizeof *cb, "scan backward dbias");
    if (!hs || !cB || !cC || !cA || !cD || !cb) {
        free(hs), free(cB), free(cC), free(cA), free(cD), free(cb);
        return WV_ENOMEM;
    }
#pragma omp parallel for schedule(static)
    for (long bc = 0; bc < (long)BKD; bc++) {
        const int b = (int)(bc / KD), ch = (int)(bc % KD), g = ch / Dg;
        const double *ur = u + (size_t)bc * L, *dr = delta + (size_t)bc * L;
        const double *Bg = Bm + ((size_t)b * G + g) * N * L, *Cg = Cm + ((size_t)b * G + g) * N * L;
        const double *Ac = A + (size_t)ch * N;
        const double db = delta_bias ? delta_bias[ch] : 0.0, Dc = D ? D[ch] : 0.0;
        const double *dyr = dy + (size_t)bc * L;
        double *H = hs + (size_t)bc * N * (L + 1); /* H[t·N + n] = h_{t-1}[n] */
        double *pB = cB + (size_t)bc * NL, *pC = cC + (size_t)bc * NL;
        for (int n = 0; n < N; n++) H[n] = h_in ? h_in[(size_t)bc * N + n] : 0.0;
        for (int t = 0; t < L; t++) { /* recompute the states */
            double dt = dr[t] + db;
            if (delta_softplus) dt = scan_softplus_f64(dt);
            for (int n = 0; n < N; n++)
                H[(size_t)(t + 1) * N + n] = exp(dt * Ac[n]) * H[(size_t)t * N + n] +
                                              dt * Bg[(size_t)n * L + t] * ur[t];
        }
        double dh[N > 0 ? N : 1];
        for (int n = 0; n < N; n++) dh[n] = dh_out ? dh_out[(size_t)bc * N + n] : 0.0;
        double sD = 0, sb = 0;
        for (int t = L - 1; t >= 0; t--) {
            const double raw = dr[t] + db;
            const double dt = delta_softplus ? scan_softplus_f64(raw) : raw;
            const double ut = ur[t], gy = dyr[t];
            const double *ht = H + (size_t)(t + 1) * N, *hp = H + (size_t)t * N;
            double gu = gy * Dc, gdt = 0;
            sD += gy * ut;
            for (int n = 0; n < N; n++) {
                const double Bn = Bg[(size_t)n * L + t], Cn = Cg[(size_t)n * L + t];
                pC[(size_t)n * L + t] = gy * ht[n];
                dh[n] += gy * Cn;
                const double a = exp(dt * Ac[n]);
                gdt += dh[n] * (Ac[n] * a * hp[n] + Bn * ut);
                cA[(size_t)bc * N + n] += dh[n] * dt * a * hp[n];
                pB[(size_t)n * L + t] = dh[n] * dt * ut;
                gu += dh[n] * dt * Bn;
                dh[n] *= a;
            }
            const double graw = delta_softplus ? gdt * scan_softplus_grad_f64(raw) : gdt;
            if (du) du[(size_t)bc * L + t] = gu;
            if (ddelta) ddelta[(size_t)bc * L + t] = graw;
            sb += graw;
        }
        cD[bc] = sD;
        cb[bc] = sb;
        if (dh_in)
            for (int n = 0; n < N; n++) dh_in[(size_t)bc * N + n] = dh[n];
    }
    /* reductions in a fixed order: over batches for the per-channel parameters, over the group's
     * channels for B and C */
    for (size_t bc = 0; bc < BKD; bc++) {
        const size_t ch = bc % (size_t)KD;
        if (dA)
            for (int n = 0; n < N; n++) dA[ch * N + n] += cA[bc * N + n];
        if (dD) dD[ch] += cD[bc];
        if (ddelta_bias) ddelta_bias[ch] += cb[bc];
    }
    if (dBm || dCm) {
        const long nbg = (long)B * G;
#pragma omp parallel for schedule(static)
        for (long bg = 0; bg < nbg; bg++) {
            const size_t b = (size_t)bg / (size_t)G, g = (size_t)bg % (size_t)G;
            double *oB = dBm ? dBm + (size_t)bg * NL : NULL, *oC = dCm ? dCm + (size_t)bg * NL : NULL;
            if (oB) memset(oB, 0, NL * sizeof *oB);
            if (oC) memset(oC, 0, NL * sizeof *oC);
            for (int c = 0; c < Dg; c++) {
                const size_t bc = b * (size_t)KD + g * (size_t)Dg + (size_t)c;
                for (size_t q = 0; q < (size_t)N * L; q++) {
                    if (oB) oB[q] += cB[bc * NL + q];
                    if (oC) oC[q] += cC[bc * NL + q];
                }
            }
        }
    }
    free(hs), free(cB), free(cC), free(cA), free(cD), free(cb);
    return WV_OK;
}
