/*
 * head_grad.cu — forward with tape and backward of the slide context head on the GPU
 * (head_cuda.h; the CPU float64 twin is src/head_backward.c, whose structure this follows op by
 * op). Straightforward kernels: one thread per (cell, channel) for per-cell ops, one thread per
 * (output, input) for the weight gradients (a float64 loop over the cells), one thread per
 * (direction, channel) for the scans, single-thread kernels for the few slide-level scalars.
 * 64-bit indexing throughout (size_t products). Per-cell arrays are (n, C) row-major in the
 * row-major tissue order, as on the CPU.
 */
#include "head_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <new>
#include <vector>

#include "common.cuh"

#define TPB 256
#define HK HEAD_K
#define HEAD_CUDA_MAX_N 64 /* largest d_state: register/local state arrays */
#define LN_EPS 1e-5

/* ---- kernels: generic per-cell ops ------------------------------------------------------------ */

__device__ __forceinline__ float sigm_dev(float x) { return 1.0f / (1.0f + expf(-x)); }

/* LayerNorm rows: xh = (x − mean)·rstd, y = xh·w + b; statistics in float64 */
__global__ void k_ln_fwd(const float *x, size_t n, int C, const float *w, const float *b,
                         float *xh, float *rs, float *y)
{
    GRID_STRIDE_LOOP(i, n) {
        const float *xi = x + i * C;
        double mean = 0, var = 0;
        for (int c = 0; c < C; c++) mean += xi[c];
        mean /= C;
        for (int c = 0; c < C; c++) {
            const double d = xi[c] - mean;
            var += d * d;
        }
        var /= C;
        const double r = 1.0 / sqrt(var + LN_EPS);
        rs[i] = (float)r;
        for (int c = 0; c < C; c++) {
            const float h = (float)((xi[c] - mean) * r);
            xh[i * C + c] = h;
            y[i * C + c] = h * w[c] + b[c];
        }
    }
}

/* dx (n, C) (+)= rstd·(dxh − mean(dxh) − xh·mean(dxh·xh)), dxh = dy·w */
__global__ void k_ln_bwd_dx(const float *xh, const float *rs, size_t n, int C, const float *w,
                            const float *dy, float *dx, int accumulate)
{
    GRID_STRIDE_LOOP(i, n) {
        const float *h = xh + i * C, *gy = dy + i * C;
        double m1 = 0, m2 = 0;
        for (int c = 0; c < C; c++) {
            const double d = (double)gy[c] * w[c];
            m1 += d;
            m2 += d * h[c];
        }
        m1 /= C;
        m2 /= C;
        float *o = dx + i * C;
        for (int c = 0; c < C; c++) {
            const float v = (float)(rs[i] * ((double)gy[c] * w[c] - m1 - h[c] * m2));
            o[c] = accumulate ? o[c] + v : v;
        }
    }
}

/* dw[c] += Σ_i dy·xh, db[c] += Σ_i dy (float64, cells in order) */
__global__ void k_ln_bwd_dw(const float *xh, const float *dy, size_t n, int C, double *dw,
                            double *db)
{
    GRID_STRIDE_LOOP(c, (size_t)C) {
        double sw = 0, sb = 0;
        for (size_t i = 0; i < n; i++) {
            sw += (double)dy[i * C + c] * xh[i * C + c];
            sb += dy[i * C + c];
        }
        dw[c] += sw;
        db[c] += sb;
    }
}

/* Y (n, No) = X (n, K) · Wᵀ (W (No, K)) [+ bias] */
__global__ void k_lin_fwd(const float *X, size_t n, int K, const float *W, const float *bias,
                          float *Y, int No)
{
    GRID_STRIDE_LOOP(q, n * (size_t)No) {
        const size_t i = q / (size_t)No;
        const int o = (int)(q % (size_t)No);
        const float *xi = X + i * K, *wo = W + (size_t)o * K;
        float a = 0;
        for (int k = 0; k < K; k++) a += xi[k] * wo[k];
        Y[q] = bias ? a + bias[o] : a;
    }
}

/* dX (n, K) (+)= dY (n, No) · W */
__global__ void k_lin_bwd_dx(const float *dY, size_t n, int No, const float *W, int K, float *dX,
                             int accumulate)
{
    GRID_STRIDE_LOOP(q, n * (size_t)K) {
        const size_t i = q / (size_t)K;
        const int k = (int)(q % (size_t)K);
        const float *gy = dY + i * No;
        float a = 0;
        for (int o = 0; o < No; o++) a += gy[o] * W[(size_t)o * K + k];
        dX[q] = accumulate ? dX[q] + a : a;
    }
}

/* dW (No, K) += dYᵀ X, dbias (No) += Σ dY (NULL: none); float64 over the cells */
__global__ void k_lin_bwd_dw(const float *X, const float *dY, size_t n, int K, int No, double *dW,
                             double *dbias)
{
    GRID_STRIDE_LOOP(q, (size_t)No * (size_t)(K + 1)) {
        const int o = (int)(q / (size_t)(K + 1)), k = (int)(q % (size_t)(K + 1));
        double a = 0;
        if (k < K) {
            for (size_t i = 0; i < n; i++) a += (double)dY[i * No + o] * X[i * K + k];
            dW[(size_t)o * K + k] += a;
        } else if (dbias) {
            for (size_t i = 0; i < n; i++) a += dY[i * No + o];
            dbias[o] += a;
        }
    }
}

__global__ void k_add(float *y, const float *x, size_t n)
{
    GRID_STRIDE_LOOP(i, n) y[i] += x[i];
}

/* y[q] = Σ_k parts[k·m + q], k = 0..K-1 in order */
__global__ void k_sum_k(const float *parts, size_t m, float *y)
{
    GRID_STRIDE_LOOP(q, m) {
        float a = 0;
        for (int k = 0; k < HK; k++) a += parts[(size_t)k * m + q];
        y[q] = a;
    }
}

/* ---- masked depthwise 3×3 conv + SiLU ------------------------------------------------------ */

__global__ void k_conv_fwd(const float *v, size_t n, int Dn, const float *cw, const int32_t *rc,
                           const int32_t *idx, int rows, int cols, float *c_out, float *u_out)
{
    GRID_STRIDE_LOOP(q, n * (size_t)Dn) {
        const size_t i = q / (size_t)Dn;
        const int d = (int)(q % (size_t)Dn);
        const int y = rc[2 * i], x = rc[2 * i + 1];
        float a = 0;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                const int yy = y + dy, xx = x + dx;
                if (yy < 0 || yy >= rows || xx < 0 || xx >= cols) continue;
                const int32_t j = idx[(size_t)yy * cols + xx];
                if (j < 0) continue;
                a += cw[(size_t)d * 9 + (dy + 1) * 3 + dx + 1] * v[(size_t)j * Dn + d];
            }
        c_out[q] = a;
        u_out[q] = a * sigm_dev(a);
    }
}

/* dC = dU · σ(c)(1 + c(1 − σ(c))) */
__global__ void k_silu_bwd(const float *dU, const float *c, size_t m, float *dC)
{
    GRID_STRIDE_LOOP(q, m) {
        const float cc = c[q], s = sigm_dev(cc);
        dC[q] = dU[q] * s * (1.0f + cc * (1.0f - s));
    }
}

/* dV[q] = Σ over the cells i reading q (i = q − offset) of w[tap]·dC[i] (gather, race-free) */
__global__ void k_conv_bwd_dv(const float *dC, size_t n, int Dn, const float *cw,
                              const int32_t *rc, const int32_t *idx, int rows, int cols, float *dV)
{
    GRID_STRIDE_LOOP(q, n * (size_t)Dn) {
        const size_t j = q / (size_t)Dn;
        const int d = (int)(q % (size_t)Dn);
        const int y = rc[2 * j], x = rc[2 * j + 1];
        float a = 0;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                const int yy = y - dy, xx = x - dx;
                if (yy < 0 || yy >= rows || xx < 0 || xx >= cols) continue;
                const int32_t i = idx[(size_t)yy * cols + xx];
                if (i < 0) continue;
                a += cw[(size_t)d * 9 + (dy + 1) * 3 + dx + 1] * dC[(size_t)i * Dn + d];
            }
        dV[q] = a;
    }
}

/* gcw[d, tap] += Σ_i dC[i, d]·v[neighbour(i, tap), d] (float64) */
__global__ void k_conv_bwd_dw(const float *dC, const float *v, size_t n, int Dn,
                              const int32_t *rc, const int32_t *idx, int rows, int cols,
                              double *gcw)
{
    GRID_STRIDE_LOOP(q, (size_t)Dn * 9) {
        const int d = (int)(q / 9), tap = (int)(q % 9);
        double a = 0;
        for (size_t i = 0; i < n; i++) {
            const int yy = rc[2 * i] + tap / 3 - 1, xx = rc[2 * i + 1] + tap % 3 - 1;
            if (yy < 0 || yy >= rows || xx < 0 || xx >= cols) continue;
            const int32_t j = idx[(size_t)yy * cols + xx];
            if (j >= 0) a += (double)dC[i * Dn + d] * v[(size_t)j * Dn + d];
        }
        gcw[q] += a;
    }
}

/* ---- selective scans over the tissue sequences ------------------------------------------------ */

__device__ __forceinline__ float softplus_grad_dev(float x)
{
    return x > 20.0f ? 1.0f : 1.0f / (1.0f + expf(-x));
}

/* raw δ + bias of channel d of direction k at cell i: dt_projs_bias + dt_w[k, d, :]·dt_low */
__device__ __forceinline__ float delta_raw(const float *xd, const float *dtw_row, int R, float bias)
{
    float a = 0;
    for (int q = 0; q < R; q++) a += dtw_row[q] * xd[q];
    return a + bias;
}

/* One thread per (k, d), kd = k·Dn + d over K·Dn. Sequence of direction k: seq[k·n + t].
 * ck (nseg, N, K·Dn): the state entering step t = seg·S; ysk (K, n, Dn): direction k's y. */
__global__ void k_scan_fwd(const float *u, const float *xdbl, const float *dtw, const float *dtb,
                           const float *A_logs, const float *Ds, const int32_t *seq, size_t n,
                           int Dn, int N, int R, int S, float *ck, float *ysk)
{
    const size_t KD = (size_t)HK * Dn;
    GRID_STRIDE_LOOP(kd, KD) {
        const int k = (int)(kd / (size_t)Dn), d = (int)(kd % (size_t)Dn);
        const int P = R + 2 * N;
        float A[HEAD_CUDA_MAX_N], h[HEAD_CUDA_MAX_N];
        for (int s = 0; s < N; s++) {
            A[s] = -expf(A_logs[kd * N + s]);
            h[s] = 0.0f;
        }
        const float *dtw_row = dtw + kd * R;
        const float bias = dtb[kd], Dc = Ds[kd];
        const int32_t *sq = seq + (size_t)k * n;
        for (size_t t = 0; t < n; t++) {
            if (t % (size_t)S == 0)
                for (int s = 0; s < N; s++) ck[((t / S) * N + s) * KD + kd] = h[s];
            const size_t i = (size_t)sq[t];
            const float *xd = xdbl + (i * HK + k) * P;
            const float dt = softplus_dev(delta_raw(xd, dtw_row, R, bias));
            const float ut = u[i * Dn + d];
            float acc = 0;
            for (int s = 0; s < N; s++) {
                h[s] = expf(dt * A[s]) * h[s] + dt * xd[R + s] * ut;
                acc += xd[R + N + s] * h[s];
            }
            ysk[((size_t)k * n + i) * Dn + d] = acc + Dc * ut;
        }
    }
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Reverse mode of k_scan_fwd. Blocks of 32 threads (one warp): block b = k·ngrp + grp covers
 * channels grp·32 .. grp·32+31 of direction k (lanes past Dn run channel Dn−1 with dy = 0, so
 * they contribute nothing, and write nothing). Per segment (last first) the states are recomputed
 * from the checkpoint into hs (S, N, T) [T = K·ngrp·32 threads], then walked backwards carrying
 * dh. Outputs: dUk, ddel (K, n, Dn) written; partB/partC (K, ngrp, n, N) = Σ over the warp's
 * channels of the B / C gradient (written by lane 0); gA_logs, gDs, gdtb += (float64). */
__global__ void __launch_bounds__(32)
    k_scan_bwd(const float *u, const float *xdbl, const float *dtw, const float *dtb,
               const float *A_logs, const float *Ds, const int32_t *seq, size_t n, int Dn, int N,
               int R, int S, int ngrp, const float *ck, float *hs, const float *dY, float *dUk,
               float *ddel, float *partB, float *partC, double *gA_logs, double *gDs,
               double *gdtb)
{
    const int lane = threadIdx.x;
    const int k = blockIdx.x / ngrp, grp = blockIdx.x % ngrp;
    const int d0 = grp * 32 + lane, valid = d0 < Dn, d = valid ? d0 : Dn - 1;
    const size_t KD = (size_t)HK * Dn, kd = (size_t)k * Dn + d;
    const size_t T = (size_t)gridDim.x * 32, tid = (size_t)blockIdx.x * 32 + lane;
    const int P = R + 2 * N;
    float A[HEAD_CUDA_MAX_N], h[HEAD_CUDA_MAX_N], dh[HEAD_CUDA_MAX_N];
    double cA[HEAD_CUDA_MAX_N];
    for (int s = 0; s < N; s++) {
        A[s] = -expf(A_logs[kd * N + s]);
        dh[s] = 0.0f;
        cA[s] = 0.0;
    }
    const float *dtw_row = dtw + kd * R;
    const float bias = dtb[kd], Dc = Ds[kd];
    const int32_t *sq = seq + (size_t)k * n;
    double sD = 0, sb = 0;
    const size_t nseg = (n + S - 1) / S;
    for (size_t seg = nseg; seg-- > 0;) {
        const size_t t0 = seg * S, t1 = t0 + S < n ? t0 + S : n;
        const float *hck = ck + seg * N * KD; /* hck[s·KD + kd] = state before t0 */
        for (int s = 0; s < N; s++) h[s] = hck[(size_t)s * KD + kd];
        for (size_t t = t0; t < t1; t++) {
            const size_t i = (size_t)sq[t];
            const float *xd = xdbl + (i * HK + k) * P;
            const float dt = softplus_dev(delta_raw(xd, dtw_row, R, bias));
            const float ut = u[i * Dn + d];
            for (int s = 0; s < N; s++) {
                h[s] = expf(dt * A[s]) * h[s] + dt * xd[R + s] * ut;
                hs[((t - t0) * N + s) * T + tid] = h[s];
            }
        }
        for (size_t t = t1; t-- > t0;) {
            const size_t i = (size_t)sq[t];
            const float *xd = xdbl + (i * HK + k) * P;
            const float raw = delta_raw(xd, dtw_row, R, bias);
            const float dt = softplus_dev(raw);
            const float ut = u[i * Dn + d];
            const float gy = valid ? dY[i * Dn + d] : 0.0f;
            float gu = gy * Dc, gdt = 0;
            sD += (double)gy * ut;
            for (int s = 0; s < N; s++) {
                const float hp = t > t0 ? hs[((t - 1 - t0) * N + s) * T + tid]
                                        : hck[(size_t)s * KD + kd];
                const float ht = hs[((t - t0) * N + s) * T + tid];
                const float Bn = xd[R + s], Cn = xd[R + N + s];
                const float vC = warp_sum(gy * ht);
                dh[s] += gy * Cn;
                const float a = expf(dt * A[s]);
                gdt += dh[s] * (A[s] * a * hp + Bn * ut);
                cA[s] += (double)dh[s] * dt * a * hp;
                const float vB = warp_sum(dh[s] * dt * ut);
                gu += dh[s] * dt * Bn;
                dh[s] *= a;
                if (lane == 0) {
                    const size_t o = (((size_t)k * ngrp + grp) * n + i) * N + s;
                    partB[o] = vB;
                    partC[o] = vC;
                }
            }
            const float graw = gdt * softplus_grad_dev(raw);
            if (valid) {
                dUk[((size_t)k * n + i) * Dn + d] = gu;
                ddel[((size_t)k * n + i) * Dn + d] = graw;
            }
            sb += graw;
        }
    }
    if (valid) {
        for (int s = 0; s < N; s++) gA_logs[kd * N + s] += cA[s] * A[s]; /* dA/dA_logs = A */
        gDs[kd] += sD;
        gdtb[kd] += sb;
    }
}

/* dXd (n, K·P): [d dt_low = Σ_d ddel·dt_w[k, d, :] | dB = Σ_grp partB | dC = Σ_grp partC] */
__global__ void k_dxdbl(const float *partB, const float *partC, const float *ddel,
                        const float *dtw, size_t n, int Dn, int N, int R, int ngrp, float *dXd)
{
    const int P = R + 2 * N;
    GRID_STRIDE_LOOP(q, n * (size_t)HK * P) {
        const size_t i = q / ((size_t)HK * P);
        const int r = (int)(q % ((size_t)HK * P)), k = r / P, p = r % P;
        float a = 0;
        if (p < R) {
            const float *dd = ddel + ((size_t)k * n + i) * Dn;
            for (int d = 0; d < Dn; d++) a += dd[d] * dtw[((size_t)k * Dn + d) * R + p];
        } else {
            const int s = p < R + N ? p - R : p - R - N;
            const float *part = p < R + N ? partB : partC;
            for (int g = 0; g < ngrp; g++) a += part[(((size_t)k * ngrp + g) * n + i) * N + s];
        }
        dXd[q] = a;
    }
}

/* gdtw[k, d, r] += Σ_i ddel[k, i, d]·dt_low[i, k, r] (float64) */
__global__ void k_dtw_grad(const float *ddel, const float *xdbl, size_t n, int Dn, int R, int P,
                           double *gdtw)
{
    GRID_STRIDE_LOOP(q, (size_t)HK * Dn * R) {
        const int k = (int)(q / ((size_t)Dn * R)), d = (int)((q / R) % (size_t)Dn),
                  r = (int)(q % (size_t)R);
        double a = 0;
        for (size_t i = 0; i < n; i++)
            a += (double)ddel[((size_t)k * n + i) * Dn + d] * xdbl[(i * HK + k) * P + r];
        gdtw[q] += a;
    }
}

/* ---- attention pooling and the slide logit ----------------------------------------------------- */

__global__ void k_gate(const float *hv, const float *hu, size_t m, float *gate)
{
    GRID_STRIDE_LOOP(q, m) gate[q] = tanhf(hv[q]) * sigm_dev(hu[q]);
}

/* scal: [0] max a, [1] max cell logit, [2] Σ exp(a − max a), [3] first arg-max of the cell
 * logits (row-major), [4] slide logit, [5] Σ α·s (backward) */
__global__ void k_pool_scalars(const float *att, const float *logit, size_t n, double *scal)
{
    if (blockIdx.x || threadIdx.x) return;
    double amax = -INFINITY, mx = -INFINITY;
    size_t am = 0;
    for (size_t i = 0; i < n; i++) {
        if (att[i] > amax) amax = att[i];
        if (logit[i] > mx) mx = logit[i], am = i;
    }
    double s = 0;
    for (size_t i = 0; i < n; i++) s += exp((double)att[i] - amax);
    scal[0] = amax, scal[1] = mx, scal[2] = s, scal[3] = (double)am;
}

__global__ void k_alpha(const float *att, size_t n, const double *scal, double *alpha)
{
    GRID_STRIDE_LOOP(i, n) alpha[i] = exp((double)att[i] - scal[0]) / scal[2];
}

__global__ void k_pooled(const double *alpha, const float *g, size_t n, int Dh, double *pooled)
{
    GRID_STRIDE_LOOP(d, (size_t)Dh) {
        double a = 0;
        for (size_t i = 0; i < n; i++) a += alpha[i] * g[i * Dh + d];
        pooled[d] = a;
    }
}

__global__ void k_slide_logit(const double *pooled, const float *sw, const float *sb, int Dh,
                              double *scal)
{
    if (blockIdx.x || threadIdx.x) return;
    double a = sb[0];
    for (int d = 0; d < Dh; d++) a += (double)sw[d] * pooled[d];
    scal[4] = a + (double)sw[Dh] * scal[1];
}

/* backward of the slide classifier's parameters */
__global__ void k_slide_bwd(const double *pooled, const double *scal, int Dh, double dS,
                            double *gsw, double *gsb)
{
    GRID_STRIDE_LOOP(d, (size_t)Dh + 1) {
        gsw[d] += dS * (d < (size_t)Dh ? pooled[d] : scal[1]);
        if (d == 0) gsb[0] += dS;
    }
}

/* sv[i] = dS·Σ_d sw[d]·g[i, d] (= d loss / d α_i) */
__global__ void k_att_s(const float *g, size_t n, int Dh, const float *sw, double dS, double *sv)
{
    GRID_STRIDE_LOOP(i, n) {
        double a = 0;
        for (int d = 0; d < Dh; d++) a += (double)sw[d] * g[i * Dh + d];
        sv[i] = dS * a;
    }
}

__global__ void k_att_sad(const double *alpha, const double *sv, size_t n, double *scal)
{
    if (blockIdx.x || threadIdx.x) return;
    double a = 0;
    for (size_t i = 0; i < n; i++) a += alpha[i] * sv[i];
    scal[5] = a;
}

/* da_i = α_i(s_i − Σ α s); dG[i, d] = α_i·dS·sw[d] (the pooled path; overwrites dG) */
__global__ void k_att_da(const double *alpha, const double *sv, const double *scal, size_t n,
                         int Dh, const float *sw, double dS, float *da, float *dG)
{
    GRID_STRIDE_LOOP(q, n * (size_t)Dh) {
        const size_t i = q / (size_t)Dh;
        const int d = (int)(q % (size_t)Dh);
        dG[q] = (float)(alpha[i] * dS * sw[d]);
        if (d == 0) da[i] = (float)(alpha[i] * (sv[i] - scal[5]));
    }
}

__global__ void k_gate_bwd(const float *dgate, const float *hv, const float *hu, size_t m,
                           float *dhv, float *dhu)
{
    GRID_STRIDE_LOOP(q, m) {
        const float th = tanhf(hv[q]), sg = sigm_dev(hu[q]);
        dhv[q] = dgate[q] * sg * (1.0f - th * th);
        dhu[q] = dgate[q] * th * sg * (1.0f - sg);
    }
}

/* ---- the workspace -------------------------------------------------------------------------- */

struct blk_off {
    size_t norm_w, norm_b, in_proj, conv, x_proj, dt_w, dt_b, A_logs, Ds, out_norm_w, out_norm_b,
        out_proj;
};

struct blk_tape {
    float *x, *zh, *rs, *z, *v, *c, *u, *xdbl, *yh, *rsy, *o, *ck;
};

struct head_grad_cuda {
    struct head_config cfg;
    int device;
    size_t np;
    size_t in_norm_w, in_norm_b, in_proj_w, in_proj_b, norm_w, norm_b, cls_w, cls_b, attV_w,
        attV_b, attU_w, attU_b, attw_w, attw_b, slide_w, slide_b;
    struct blk_off blk[HEAD_MAX_BLOCKS];
    /* device */
    float *p;        /* (np) fp32 parameters of the last forward */
    double *gr;      /* (np) gradient of the last backward */
    double *scal;    /* (8) */
    double *pooled;  /* (Dh) */
    std::vector<void *> cells; /* per-cell allocations (freed on regrow) */
    size_t cap, grid_cap;
    int32_t *idx;    /* (rows·cols) */
    int32_t *rc, *seq;
    float *feat, *zh0, *rs0, *z0, *xL, *gh, *rsg, *g, *logit, *hv, *hu, *gate, *att;
    double *alpha, *sv;
    struct blk_tape bt[HEAD_MAX_BLOCKS];
    float *ysk, *y;  /* forward scan outputs */
    float *dL, *da, *dG, *dgate, *dhv, *dhu, *dx, *dx2, *dO, *dY, *dUk, *ddel, *dU, *dXd, *partB,
        *partC, *hs, *dC, *dV, *dZ, *dz0;
    int ngrp;
    /* the last forward */
    int have;
    int rows, cols;
    size_t n;
    double mx;
    size_t amax;
    double slide_logit;
    std::vector<float> hp;      /* host fp32 parameters */
    std::vector<int32_t> hidx, hrc, hseq;
    std::vector<float> hbuf;    /* host logits / dL */
    std::vector<double> hgr;
};

static enum wv_status dev_alloc(head_grad_cuda *g, void **p, size_t bytes, const char *what)
{
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 16);
    if (e != cudaSuccess) {
        cudaGetLastError();
        *p = NULL;
        return error_set(e == cudaErrorMemoryAllocation ? WV_ENOMEM : WV_ECUDA,
                         "head gradient (CUDA): cannot allocate %zu bytes for %s: %s", bytes,
                         what, cudaGetErrorString(e));
    }
    g->cells.push_back(*p);
    return WV_OK;
}

static void free_cells(head_grad_cuda *g)
{
    for (void *p : g->cells) cudaFree(p);
    g->cells.clear();
    g->cap = 0;
}

extern "C" void head_grad_cuda_free(struct head_grad_cuda *g)
{
    if (!g) return;
    int prev = 0;
    cudaGetDevice(&prev);
    cudaSetDevice(g->device);
    free_cells(g);
    cudaFree(g->p);
    cudaFree(g->gr);
    cudaFree(g->scal);
    cudaFree(g->pooled);
    cudaFree(g->idx);
    cudaSetDevice(prev);
    delete g;
}

static long tensor_offset(const struct weight_tensor *t, int nt, const float *base,
                          const char *name)
{
    for (int i = 0; i < nt; i++)
        if (!strcmp(t[i].name, name)) return (long)(t[i].data - base);
    return -1;
}

extern "C" enum wv_status head_grad_cuda_create(const struct head *h, int device,
                                                struct head_grad_cuda **out)
{
    *out = NULL;
    const struct head_config *c = head_get_config(h);
    if (c->d_state > HEAD_CUDA_MAX_N)
        return error_set(WV_EINVAL, "head gradient (CUDA): d_state %d > %d", c->d_state,
                         HEAD_CUDA_MAX_N);
    head_grad_cuda *g = new (std::nothrow) head_grad_cuda();
    if (!g) return error_set(WV_ENOMEM, "head gradient (CUDA) workspace");
    g->cfg = *c;
    g->device = device;
    int nt;
    const struct weight_tensor *t = head_tensors(h, &nt);
    const float *base = head_params((struct head *)h, &g->np);
    struct {
        const char *name;
        size_t *slot;
    } top[] = {{"in_norm.weight", &g->in_norm_w}, {"in_norm.bias", &g->in_norm_b},
               {"in_proj.weight", &g->in_proj_w}, {"in_proj.bias", &g->in_proj_b},
               {"norm.weight", &g->norm_w},       {"norm.bias", &g->norm_b},
               {"cell_cls.weight", &g->cls_w},    {"cell_cls.bias", &g->cls_b},
               {"attn_V.weight", &g->attV_w},     {"attn_V.bias", &g->attV_b},
               {"attn_U.weight", &g->attU_w},     {"attn_U.bias", &g->attU_b},
               {"attn_w.weight", &g->attw_w},     {"attn_w.bias", &g->attw_b},
               {"slide_cls.weight", &g->slide_w}, {"slide_cls.bias", &g->slide_b}};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
        long o = tensor_offset(t, nt, base, top[i].name);
        if (o < 0) {
            delete g;
            return error_set(WV_EINVAL, "head gradient (CUDA): tensor %s missing", top[i].name);
        }
        *top[i].slot = (size_t)o;
    }
    static const char *const bn[] = {"norm.weight",     "norm.bias",     "in_proj.weight",
                                     "conv2d.weight",   "x_proj_weight", "dt_projs_weight",
                                     "dt_projs_bias",   "A_logs",        "Ds",
                                     "out_norm.weight", "out_norm.bias", "out_proj.weight"};
    for (int j = 0; j < c->n_blocks; j++) {
        struct blk_off *b = &g->blk[j];
        size_t *slot[] = {&b->norm_w, &b->norm_b, &b->in_proj, &b->conv, &b->x_proj, &b->dt_w,
                          &b->dt_b, &b->A_logs, &b->Ds, &b->out_norm_w, &b->out_norm_b,
                          &b->out_proj};
        for (int q = 0; q < 12; q++) {
            char name[96];
            snprintf(name, sizeof name, "blocks.%d.%s", j, bn[q]);
            long o = tensor_offset(t, nt, base, name);
            if (o < 0) {
                delete g;
                return error_set(WV_EINVAL, "head gradient (CUDA): tensor %s missing", name);
            }
            *slot[q] = (size_t)o;
        }
    }
    g->ngrp = (c->d_inner + 31) / 32;
    int prev = 0;
    cudaGetDevice(&prev);
    cudaError_t e = cudaSetDevice(device);
    if (e == cudaSuccess) e = cudaMalloc((void **)&g->p, g->np * sizeof(float));
    if (e == cudaSuccess) e = cudaMalloc((void **)&g->gr, g->np * sizeof(double));
    if (e == cudaSuccess) e = cudaMalloc((void **)&g->scal, 8 * sizeof(double));
    if (e == cudaSuccess) e = cudaMalloc((void **)&g->pooled, (size_t)c->d_h * sizeof(double));
    if (e != cudaSuccess) {
        cudaGetLastError();
        enum wv_status st = cuda_fail(e, "cudaMalloc", "head_grad_cuda_create", __FILE__, __LINE__);
        head_grad_cuda_free(g);
        cudaSetDevice(prev);
        return st;
    }
    cudaSetDevice(prev);
    try {
        g->hp.resize(g->np);
        g->hgr.resize(g->np);
    } catch (...) {
        head_grad_cuda_free(g);
        return error_set(WV_ENOMEM, "head gradient (CUDA) host buffers");
    }
    *out = g;
    return WV_OK;
}

extern "C" size_t head_grad_cuda_n_cells(const struct head_grad_cuda *g) { return g->n; }

/* per-cell device buffers for n cells */
static enum wv_status grow(head_grad_cuda *g, size_t n)
{
    if (n <= g->cap && !g->cells.empty()) return WV_OK;
    free_cells(g);
    const struct head_config *c = &g->cfg;
    const size_t D = c->in_dim, Dh = c->d_h, Dn = c->d_inner, N = c->d_state, Da = c->d_attn,
                 P = c->dt_rank + 2 * N, n1 = n ? n : 1, S = HEAD_CUDA_CKPT;
    const size_t nseg = (n1 + S - 1) / S, T = (size_t)HK * g->ngrp * 32;
    enum wv_status st;
#define A_(ptr, count)                                                                       \
    do {                                                                                     \
        if ((st = dev_alloc(g, (void **)&(ptr), (size_t)(count) * sizeof *(ptr), #ptr)))    \
            return st;                                                                       \
    } while (0)
    A_(g->rc, 2 * n1);
    A_(g->seq, HK * n1);
    A_(g->feat, n1 * D);
    A_(g->zh0, n1 * D);
    A_(g->rs0, n1);
    A_(g->z0, n1 * D);
    for (int j = 0; j < c->n_blocks; j++) {
        blk_tape *b = &g->bt[j];
        A_(b->x, n1 * Dh);
        A_(b->zh, n1 * Dh);
        A_(b->rs, n1);
        A_(b->z, n1 * Dh);
        A_(b->v, n1 * Dn);
        A_(b->c, n1 * Dn);
        A_(b->u, n1 * Dn);
        A_(b->xdbl, n1 * HK * P);
        A_(b->yh, n1 * Dn);
        A_(b->rsy, n1);
        A_(b->o, n1 * Dn);
        A_(b->ck, nseg * N * HK * Dn);
    }
    A_(g->xL, n1 * Dh);
    A_(g->gh, n1 * Dh);
    A_(g->rsg, n1);
    A_(g->g, n1 * Dh);
    A_(g->logit, n1);
    A_(g->hv, n1 * Da);
    A_(g->hu, n1 * Da);
    A_(g->gate, n1 * Da);
    A_(g->att, n1);
    A_(g->alpha, n1);
    A_(g->sv, n1);
    A_(g->ysk, HK * n1 * Dn);
    A_(g->y, n1 * Dn);
    A_(g->dL, n1);
    A_(g->da, n1);
    A_(g->dG, n1 * Dh);
    A_(g->dgate, n1 * Da);
    A_(g->dhv, n1 * Da);
    A_(g->dhu, n1 * Da);
    A_(g->dx, n1 * Dh);
    A_(g->dx2, n1 * Dh);
    A_(g->dO, n1 * Dn);
    A_(g->dY, n1 * Dn);
    A_(g->dUk, HK * n1 * Dn);
    A_(g->ddel, HK * n1 * Dn);
    A_(g->dU, n1 * Dn);
    A_(g->dXd, n1 * HK * P);
    A_(g->partB, HK * (size_t)g->ngrp * n1 * N);
    A_(g->partC, HK * (size_t)g->ngrp * n1 * N);
    A_(g->hs, S * N * T);
    A_(g->dC, n1 * Dn);
    A_(g->dV, n1 * Dn);
    A_(g->dZ, n1 * Dh);
    A_(g->dz0, n1 * D);
#undef A_
    g->cap = n;
    return WV_OK;
}

#define LAUNCH(kernel, count, ...)                                                           \
    do {                                                                                     \
        kernel<<<cuda_blocks((size_t)(count), TPB), TPB>>>(__VA_ARGS__);                     \
        CUDA_LAUNCH_TRY(#kernel);                                                            \
    } while (0)
#define LAUNCH1(kernel, ...)                                                                 \
    do {                                                                                     \
        kernel<<<1, 1>>>(__VA_ARGS__);                                                       \
        CUDA_LAUNCH_TRY(#kernel);                                                            \
    } while (0)

static enum wv_status block_fwd(head_grad_cuda *g, int j, const float *x_in, float *x_out)
{
    const struct head_config *c = &g->cfg;
    const int Dh = c->d_h, Dn = c->d_inner, N = c->d_state, R = c->dt_rank, P = R + 2 * N;
    const blk_off *o = &g->blk[j];
    blk_tape *b = &g->bt[j];
    const size_t n = g->n;
    const float *p = g->p;
    CUDA_TRY("head block forward", cudaMemcpyAsync(b->x, x_in, n * Dh * sizeof(float),
                                                   cudaMemcpyDeviceToDevice, 0));
    LAUNCH(k_ln_fwd, n, b->x, n, Dh, p + o->norm_w, p + o->norm_b, b->zh, b->rs, b->z);
    LAUNCH(k_lin_fwd, n * Dn, b->z, n, Dh, p + o->in_proj, (const float *)NULL, b->v, Dn);
    LAUNCH(k_conv_fwd, n * Dn, b->v, n, Dn, p + o->conv, g->rc, g->idx, g->rows, g->cols, b->c,
           b->u);
    LAUNCH(k_lin_fwd, n * HK * P, b->u, n, Dn, p + o->x_proj, (const float *)NULL, b->xdbl,
           HK * P);
    LAUNCH(k_scan_fwd, (size_t)HK * Dn, b->u, b->xdbl, p + o->dt_w, p + o->dt_b, p + o->A_logs,
           p + o->Ds, g->seq, n, Dn, N, R, HEAD_CUDA_CKPT, b->ck, g->ysk);
    LAUNCH(k_sum_k, n * Dn, g->ysk, n * Dn, g->y);
    LAUNCH(k_ln_fwd, n, g->y, n, Dn, p + o->out_norm_w, p + o->out_norm_b, b->yh, b->rsy, b->o);
    LAUNCH(k_lin_fwd, n * Dh, b->o, n, Dn, p + o->out_proj, (const float *)NULL, x_out, Dh);
    LAUNCH(k_add, n * Dh, x_out, b->x, n * Dh);
    return WV_OK;
}

static enum wv_status setup_grid(head_grad_cuda *g, int rows, int cols, const uint8_t *tissue)
{
    if (rows < 1 || cols < 1 || (int64_t)rows * cols > INT32_MAX)
        return error_set(WV_EINVAL, "head gradient (CUDA): grid %d x %d cells out of range", rows,
                         cols);
    const size_t G = (size_t)rows * cols;
    try {
        g->hidx.resize(G);
        size_t n = 0;
        for (size_t q = 0; q < G; q++) g->hidx[q] = tissue[q] ? (int32_t)n++ : -1;
        g->n = n;
        g->hrc.resize(2 * (n ? n : 1));
        g->hseq.resize((size_t)HK * (n ? n : 1));
    } catch (...) {
        return error_set(WV_ENOMEM, "head gradient (CUDA): grid");
    }
    const size_t n = g->n;
    g->rows = rows, g->cols = cols;
    for (size_t q = 0; q < G; q++)
        if (g->hidx[q] >= 0) {
            g->hrc[2 * (size_t)g->hidx[q]] = (int32_t)(q / (size_t)cols);
            g->hrc[2 * (size_t)g->hidx[q] + 1] = (int32_t)(q % (size_t)cols);
        }
    /* k = 0 row-major, 1 column-major, 2 reversed row-major, 3 reversed column-major (the CPU's
     * chunked orders concatenated: reversed directions take the last band first, each band
     * reversed, i.e. the whole sequence reversed) */
    int32_t *s0 = &g->hseq[0], *s1 = s0 + n, *s2 = s1 + n, *s3 = s2 + n;
    size_t L = 0;
    for (size_t q = 0; q < G; q++)
        if (g->hidx[q] >= 0) s0[L++] = g->hidx[q];
    L = 0;
    for (int x = 0; x < cols; x++)
        for (int y = 0; y < rows; y++) {
            const int32_t i = g->hidx[(size_t)y * cols + x];
            if (i >= 0) s1[L++] = i;
        }
    for (size_t t = 0; t < n; t++) {
        s2[t] = s0[n - 1 - t];
        s3[t] = s1[n - 1 - t];
    }
    enum wv_status st = grow(g, n);
    if (st) return st;
    if (G > g->grid_cap) {
        cudaFree(g->idx);
        g->idx = NULL;
        g->grid_cap = 0;
        CUDA_TRY("head grid", cudaMalloc((void **)&g->idx, G * sizeof(int32_t)));
        g->grid_cap = G;
    }
    CUDA_TRY("head grid", cudaMemcpy(g->idx, g->hidx.data(), G * sizeof(int32_t),
                                     cudaMemcpyHostToDevice));
    if (n) {
        CUDA_TRY("head grid", cudaMemcpy(g->rc, g->hrc.data(), 2 * n * sizeof(int32_t),
                                         cudaMemcpyHostToDevice));
        CUDA_TRY("head grid", cudaMemcpy(g->seq, g->hseq.data(), (size_t)HK * n * sizeof(int32_t),
                                         cudaMemcpyHostToDevice));
    }
    return WV_OK;
}

static enum wv_status forward_impl(head_grad_cuda *g, const double *params, int rows, int cols,
                                   const uint8_t *tissue, const float *features,
                                   double *cell_logit, double *slide_logit)
{
    const struct head_config *c = &g->cfg;
    const int D = c->in_dim, Dh = c->d_h, Da = c->d_attn;
    enum wv_status st = setup_grid(g, rows, cols, tissue);
    if (st) return st;
    const size_t n = g->n;
    for (size_t i = 0; i < g->np; i++) g->hp[i] = (float)params[i];
    CUDA_TRY("head parameters", cudaMemcpy(g->p, g->hp.data(), g->np * sizeof(float),
                                           cudaMemcpyHostToDevice));
    if (n == 0) {
        g->slide_logit = NAN;
        if (slide_logit) *slide_logit = NAN;
        g->have = 1;
        return WV_OK;
    }
    const float *p = g->p;
    CUDA_TRY("head features", cudaMemcpy(g->feat, features, n * D * sizeof(float),
                                         cudaMemcpyHostToDevice));
    LAUNCH(k_ln_fwd, n, g->feat, n, D, p + g->in_norm_w, p + g->in_norm_b, g->zh0, g->rs0, g->z0);
    float *x = g->dx, *x2 = g->dx2; /* free until the backward */
    LAUNCH(k_lin_fwd, n * Dh, g->z0, n, D, p + g->in_proj_w, p + g->in_proj_b, x, Dh);
    for (int j = 0; j < c->n_blocks; j++) {
        if ((st = block_fwd(g, j, x, x2))) return st;
        float *t = x;
        x = x2;
        x2 = t;
    }
    CUDA_TRY("head forward", cudaMemcpyAsync(g->xL, x, n * Dh * sizeof(float),
                                             cudaMemcpyDeviceToDevice, 0));
    LAUNCH(k_ln_fwd, n, g->xL, n, Dh, p + g->norm_w, p + g->norm_b, g->gh, g->rsg, g->g);
    LAUNCH(k_lin_fwd, n, g->g, n, Dh, p + g->cls_w, p + g->cls_b, g->logit, 1);
    LAUNCH(k_lin_fwd, n * Da, g->g, n, Dh, p + g->attV_w, p + g->attV_b, g->hv, Da);
    LAUNCH(k_lin_fwd, n * Da, g->g, n, Dh, p + g->attU_w, p + g->attU_b, g->hu, Da);
    LAUNCH(k_gate, n * Da, g->hv, g->hu, n * Da, g->gate);
    LAUNCH(k_lin_fwd, n, g->gate, n, Da, p + g->attw_w, p + g->attw_b, g->att, 1);
    LAUNCH1(k_pool_scalars, g->att, g->logit, n, g->scal);
    LAUNCH(k_alpha, n, g->att, n, g->scal, g->alpha);
    LAUNCH(k_pooled, Dh, g->alpha, g->g, n, Dh, g->pooled);
    LAUNCH1(k_slide_logit, g->pooled, p + g->slide_w, p + g->slide_b, Dh, g->scal);
    double scal[8];
    CUDA_TRY("head forward", cudaMemcpy(scal, g->scal, 5 * sizeof(double),
                                        cudaMemcpyDeviceToHost));
    g->mx = scal[1];
    g->amax = (size_t)scal[3];
    g->slide_logit = scal[4];
    if (slide_logit) *slide_logit = scal[4];
    if (cell_logit) {
        try {
            g->hbuf.resize(n);
        } catch (...) {
            return error_set(WV_ENOMEM, "head gradient (CUDA): logits");
        }
        CUDA_TRY("head forward", cudaMemcpy(g->hbuf.data(), g->logit, n * sizeof(float),
                                            cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < n; i++) cell_logit[i] = g->hbuf[i];
    }
    g->have = 1;
    return WV_OK;
}

extern "C" enum wv_status head_grad_cuda_forward(struct head_grad_cuda *g, const double *params,
                                                 int rows, int cols, const uint8_t *tissue,
                                                 const float *features, int chunk,
                                                 double *cell_logit, double *slide_logit)
{
    g->have = 0;
    if (chunk < 0) return error_set(WV_EINVAL, "head gradient (CUDA): chunk %d < 0", chunk);
    int prev = 0;
    cudaGetDevice(&prev);
    CUDA_TRY("head forward", cudaSetDevice(g->device));
    enum wv_status st = forward_impl(g, params, rows, cols, tissue, features, cell_logit,
                                     slide_logit);
    cudaSetDevice(prev);
    return st;
}

static enum wv_status block_bwd(head_grad_cuda *g, int j, const float *dxo, float *dxi)
{
    const struct head_config *c = &g->cfg;
    const int Dh = c->d_h, Dn = c->d_inner, N = c->d_state, R = c->dt_rank, P = R + 2 * N;
    const blk_off *o = &g->blk[j];
    blk_tape *b = &g->bt[j];
    const size_t n = g->n;
    const float *p = g->p;
    double *gr = g->gr;
    /* residual + out_proj + out_norm */
    CUDA_TRY("head block backward", cudaMemcpyAsync(dxi, dxo, n * Dh * sizeof(float),
                                                    cudaMemcpyDeviceToDevice, 0));
    LAUNCH(k_lin_bwd_dx, n * Dn, dxo, n, Dh, p + o->out_proj, Dn, g->dO, 0);
    LAUNCH(k_lin_bwd_dw, (size_t)Dh * (Dn + 1), b->o, dxo, n, Dn, Dh, gr + o->out_proj,
           (double *)NULL);
    LAUNCH(k_ln_bwd_dx, n, b->yh, b->rsy, n, Dn, p + o->out_norm_w, g->dO, g->dY, 0);
    LAUNCH(k_ln_bwd_dw, Dn, b->yh, g->dO, n, Dn, gr + o->out_norm_w, gr + o->out_norm_b);
    /* scans */
    k_scan_bwd<<<HK * g->ngrp, 32>>>(b->u, b->xdbl, p + o->dt_w, p + o->dt_b, p + o->A_logs,
                                     p + o->Ds, g->seq, n, Dn, N, R, HEAD_CUDA_CKPT, g->ngrp,
                                     b->ck, g->hs, g->dY, g->dUk, g->ddel, g->partB, g->partC,
                                     gr + o->A_logs, gr + o->Ds, gr + o->dt_b);
    CUDA_LAUNCH_TRY("k_scan_bwd");
    LAUNCH(k_dxdbl, n * HK * P, g->partB, g->partC, g->ddel, p + o->dt_w, n, Dn, N, R, g->ngrp,
           g->dXd);
    LAUNCH(k_dtw_grad, (size_t)HK * Dn * R, g->ddel, b->xdbl, n, Dn, R, P, gr + o->dt_w);
    LAUNCH(k_sum_k, n * Dn, g->dUk, n * Dn, g->dU);
    /* x_proj */
    LAUNCH(k_lin_bwd_dx, n * Dn, g->dXd, n, HK * P, p + o->x_proj, Dn, g->dU, 1);
    LAUNCH(k_lin_bwd_dw, (size_t)HK * P * (Dn + 1), b->u, g->dXd, n, Dn, HK * P, gr + o->x_proj,
           (double *)NULL);
    /* SiLU, conv */
    LAUNCH(k_silu_bwd, n * Dn, g->dU, b->c, n * Dn, g->dC);
    LAUNCH(k_conv_bwd_dv, n * Dn, g->dC, n, Dn, p + o->conv, g->rc, g->idx, g->rows, g->cols,
           g->dV);
    LAUNCH(k_conv_bwd_dw, (size_t)Dn * 9, g->dC, b->v, n, Dn, g->rc, g->idx, g->rows, g->cols,
           gr + o->conv);
    /* in_proj, norm */
    LAUNCH(k_lin_bwd_dx, n * Dh, g->dV, n, Dn, p + o->in_proj, Dh, g->dZ, 0);
    LAUNCH(k_lin_bwd_dw, (size_t)Dn * (Dh + 1), b->z, g->dV, n, Dh, Dn, gr + o->in_proj,
           (double *)NULL);
    LAUNCH(k_ln_bwd_dx, n, b->zh, b->rs, n, Dh, p + o->norm_w, g->dZ, dxi, 1);
    LAUNCH(k_ln_bwd_dw, Dh, b->zh, g->dZ, n, Dh, gr + o->norm_w, gr + o->norm_b);
    return WV_OK;
}

static enum wv_status backward_impl(head_grad_cuda *g, const double *dlogit, double dS,
                                    double *grad)
{
    const struct head_config *c = &g->cfg;
    const int D = c->in_dim, Dh = c->d_h, Da = c->d_attn;
    const size_t n = g->n;
    if (n == 0) return WV_OK;
    const float *p = g->p;
    double *gr = g->gr;
    CUDA_TRY("head backward", cudaMemset(gr, 0, g->np * sizeof(double)));
    /* per-cell logit gradient incl. the max term (first arg-max, as the CPU) */
    try {
        g->hbuf.resize(n);
    } catch (...) {
        return error_set(WV_ENOMEM, "head gradient (CUDA): logit gradients");
    }
    for (size_t i = 0; i < n; i++) g->hbuf[i] = dlogit ? (float)dlogit[i] : 0.0f;
    g->hbuf[g->amax] = (float)((double)g->hbuf[g->amax] + dS * g->hp[g->slide_w + Dh]);
    CUDA_TRY("head backward", cudaMemcpy(g->dL, g->hbuf.data(), n * sizeof(float),
                                         cudaMemcpyHostToDevice));
    LAUNCH(k_slide_bwd, (size_t)Dh + 1, g->pooled, g->scal, Dh, dS, gr + g->slide_w,
           gr + g->slide_b);
    /* attention */
    LAUNCH(k_att_s, n, g->g, n, Dh, p + g->slide_w, dS, g->sv);
    LAUNCH1(k_att_sad, g->alpha, g->sv, n, g->scal);
    LAUNCH(k_att_da, n * Dh, g->alpha, g->sv, g->scal, n, Dh, p + g->slide_w, dS, g->da, g->dG);
    LAUNCH(k_lin_bwd_dx, n * Da, g->da, n, 1, p + g->attw_w, Da, g->dgate, 0);
    LAUNCH(k_lin_bwd_dw, (size_t)1 * (Da + 1), g->gate, g->da, n, Da, 1, gr + g->attw_w,
           gr + g->attw_b);
    LAUNCH(k_gate_bwd, n * Da, g->dgate, g->hv, g->hu, n * Da, g->dhv, g->dhu);
    LAUNCH(k_lin_bwd_dx, n * Dh, g->dhv, n, Da, p + g->attV_w, Dh, g->dG, 1);
    LAUNCH(k_lin_bwd_dw, (size_t)Da * (Dh + 1), g->g, g->dhv, n, Dh, Da, gr + g->attV_w,
           gr + g->attV_b);
    LAUNCH(k_lin_bwd_dx, n * Dh, g->dhu, n, Da, p + g->attU_w, Dh, g->dG, 1);
    LAUNCH(k_lin_bwd_dw, (size_t)Da * (Dh + 1), g->g, g->dhu, n, Dh, Da, gr + g->attU_w,
           gr + g->attU_b);
    LAUNCH(k_lin_bwd_dx, n * Dh, g->dL, n, 1, p + g->cls_w, Dh, g->dG, 1);
    LAUNCH(k_lin_bwd_dw, (size_t)1 * (Dh + 1), g->g, g->dL, n, Dh, 1, gr + g->cls_w,
           gr + g->cls_b);
    /* final LayerNorm */
    float *dx = g->dx, *dx2 = g->dx2;
    LAUNCH(k_ln_bwd_dx, n, g->gh, g->rsg, n, Dh, p + g->norm_w, g->dG, dx, 0);
    LAUNCH(k_ln_bwd_dw, Dh, g->gh, g->dG, n, Dh, gr + g->norm_w, gr + g->norm_b);
    for (int j = c->n_blocks - 1; j >= 0; j--) {
        enum wv_status st = block_bwd(g, j, dx, dx2);
        if (st) return st;
        float *t = dx;
        dx = dx2;
        dx2 = t;
    }
    /* in_proj (+bias), in_norm */
    LAUNCH(k_lin_bwd_dw, (size_t)Dh * (D + 1), g->z0, dx, n, D, Dh, gr + g->in_proj_w,
           gr + g->in_proj_b);
    LAUNCH(k_lin_bwd_dx, n * D, dx, n, Dh, p + g->in_proj_w, D, g->dz0, 0);
    LAUNCH(k_ln_bwd_dw, D, g->zh0, g->dz0, n, D, gr + g->in_norm_w, gr + g->in_norm_b);
    CUDA_TRY("head backward", cudaMemcpy(g->hgr.data(), gr, g->np * sizeof(double),
                                         cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < g->np; i++) grad[i] += g->hgr[i];
    return WV_OK;
}

extern "C" enum wv_status head_grad_cuda_backward(struct head_grad_cuda *g,
                                                  const double *d_cell_logit,
                                                  double d_slide_logit, double *grad)
{
    if (!g->have) return error_set(WV_EINVAL, "head gradient (CUDA): backward without a forward");
    int prev = 0;
    cudaGetDevice(&prev);
    CUDA_TRY("head backward", cudaSetDevice(g->device));
    enum wv_status st = backward_impl(g, d_cell_logit, d_slide_logit, grad);
    cudaSetDevice(prev);
    return st;
}
