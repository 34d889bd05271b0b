/*
 * ss2d.c — CPU SS2D core (ss2d.h, VMAMBA_SPEC.md §3 steps 4–9): for each fixed block of
 * channels and each of the 4 directions, walk the pixels in that direction's order straight
 * from the (H, W, ·) maps, compute δ = softplus(dt_proj(dt_low) + bias) on the fly, update the
 * state and add ⟨C, h⟩ + D·u into the merged output. Twin: cuda/ss2d.cu.
 */
#include "ss2d.h"

#include <stddef.h>
#include <stdlib.h>

#include "scan.h"

/* Channels per work item: one AVX-512 vector of fp32. Fixed (not derived from the thread count),
 * so every channel is computed the same way whatever the number of threads. */
#define SS2D_CB 16

void ss2d_scan_merge_cpu(const float *u, const float *xdbl, const float *dt_w, const float *dt_b,
                         const float *A, const float *Ds, float *y, int H, int W, int Dn, int R,
                         int N)
{
    const size_t L = (size_t)H * W;
    const int P = R + 2 * N; /* xdbl entries per pixel and direction */
    const int nblk = (Dn + SS2D_CB - 1) / SS2D_CB;
    /* merge order (y0 + y2) + y1 + y3, close to the official (y0 + y2) + (y1 + y3) */
    static const int korder[SS2D_K] = {0, 2, 1, 3};
#pragma omp parallel
    {
        float *wt = malloc((size_t)R * SS2D_CB * sizeof *wt);   /* dt_w block, (R, cb) */
        float *h = malloc((size_t)N * SS2D_CB * sizeof *h);     /* state, (N, cb) */
        float *Ab = malloc((size_t)N * SS2D_CB * sizeof *Ab);   /* A block, (N, cb) */
        if (!wt || !h || !Ab) abort();
#pragma omp for schedule(dynamic, 1)
        for (int blk = 0; blk < nblk; blk++) {
            int d0 = blk * SS2D_CB, cb = Dn - d0 < SS2D_CB ? Dn - d0 : SS2D_CB;
            for (int kk = 0; kk < SS2D_K; kk++) {
                int k = korder[kk];
                for (int r = 0; r < R; r++)
                    for (int j = 0; j < cb; j++)
                        wt[r * SS2D_CB + j] = dt_w[((size_t)k * Dn + d0 + j) * R + r];
                for (int n = 0; n < N; n++)
                    for (int j = 0; j < cb; j++) {
                        Ab[n * SS2D_CB + j] = A[((size_t)k * Dn + d0 + j) * N + n];
                        h[n * SS2D_CB + j] = 0.0f;
                    }
                const float *bias = dt_b + (size_t)k * Dn + d0;
                const float *Dk = Ds + (size_t)k * Dn + d0;
                for (size_t l = 0; l < L; l++) {
                    size_t p; /* pixel index h·W + w of scan position l */
                    if (k == 0) p = l;
                    else if (k == 2) p = L - 1 - l;
                    else {
                        size_t q = k == 1 ? l : L - 1 - l; /* q = w·H + h */
                        p = (q % H) * W + q / H;
                    }
                    const float *xd = xdbl + (p * SS2D_K + k) * P;
                    const float *up = u + p * Dn + d0;
                    float *yp = y + p * Dn + d0;
                    float dt[SS2D_CB], acc[SS2D_CB];
                    for (int j = 0; j < cb; j++) dt[j] = 0.0f;
                    for (int r = 0; r < R; r++)
                        for (int j = 0; j < cb; j++) dt[j] += wt[r * SS2D_CB + j] * xd[r];
                    for (int j = 0; j < cb; j++) {
                        dt[j] = scan_softplus(dt[j] + bias[j]);
                        acc[j] = 0.0f;
                    }
                    for (int n = 0; n < N; n++) {
                        float Bn = xd[R + n], Cn = xd[R + N + n];
                        float *hn = h + n * SS2D_CB;
                        const float *An = Ab + n * SS2D_CB;
                        for (int j = 0; j < cb; j++) {
                            hn[j] = expf(dt[j] * An[j]) * hn[j] + dt[j] * Bn * up[j];
                            acc[j] += Cn * hn[j];
                        }
                    }
                    if (kk == 0)
                        for (int j = 0; j < cb; j++) yp[j] = acc[j] + Dk[j] * up[j];
                    else
                        for (int j = 0; j < cb; j++) yp[j] += acc[j] + Dk[j] * up[j];
                }
            }
        }
        free(wt);
        free(h);
        free(Ab);
    }
}
