/*
 * scan.c — CPU selective scan with carried state (scan.h, VMAMBA_SPEC.md §4): the plain
 * sequential recurrence in fp32, one (batch, channel) per loop iteration. Twin: cuda/scan.cu.
 */
#include "scan.h"

#include <stddef.h>

void scan_cpu(const float *u, const float *delta, const float *A, const float *Bm,
              const float *Cm, const float *D, const float *delta_bias, const float *h_in,
              float *y, float *h_out, int B, int KD, int G, int N, int L, int delta_softplus)
{
    int Dg = KD / G; /* channels per group */
#pragma omp parallel for schedule(dynamic, 1)
    for (long bc = 0; bc < (long)B * KD; bc++) {
        int b = (int)(bc / KD), ch = (int)(bc % KD), g = ch / Dg;
        float h[N > 0 ? N : 1];
        for (int n = 0; n < N; n++) h[n] = h_in ? h_in[(size_t)bc * N + n] : 0.0f;
        const float *ur = u + (size_t)bc * L;
        const float *dr = delta + (size_t)bc * L;
        const float *Bg = Bm + ((size_t)b * G + g) * N * L;
        const float *Cg = Cm + ((size_t)b * G + g) * N * L;
        const float *Ac = A + (size_t)ch * N;
        float *yr = y + (size_t)bc * L;
        float db = delta_bias ? delta_bias[ch] : 0.0f;
        float Dc = D ? D[ch] : 0.0f;
        for (int t = 0; t < L; t++) {
            float dt = dr[t] + db;
            if (delta_softplus) dt = scan_softplus(dt);
            float ut = ur[t], acc = 0.0f;
            for (int n = 0; n < N; n++) {
                h[n] = expf(dt * Ac[n]) * h[n] + dt * Bg[(size_t)n * L + t] * ut;
                acc += Cg[(size_t)n * L + t] * h[n];
            }
            yr[t] = acc + Dc * ut;
        }
        if (h_out)
            for (int n = 0; n < N; n++) h_out[(size_t)bc * N + n] = h[n];
    }
}
