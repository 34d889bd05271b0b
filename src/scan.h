/*
 * scan.h — the selective scan with carried state (VMAMBA_SPEC.md §4, DESIGN.md "Selective scan
 * contract"). CPU reference: scan.c (scan_cpu, plain fp32 loop). CUDA twin: cuda/scan.cu
 * (scan_cuda(<same arguments>, stream)).
 *
 * Per batch b, channel ch (ch in [0, KD)), state n, with group g = ch / (KD / G):
 *     δ_t    = softplus(delta[t] + delta_bias[ch])     (threshold 20; only if delta_softplus,
 *                                                      else δ_t = delta[t] + delta_bias[ch])
 *     h_t[n] = exp(δ_t·A[ch,n])·h_{t-1}[n] + δ_t·B[g,n,t]·u_t
 *     y_t    = Σ_n C[g,n,t]·h_t[n] + D[ch]·u_t
 * h_{-1} = h_in (zeros when NULL); h_out = h_{L-1} (h_in unchanged when L == 0).
 * Scanning a sequence in pieces, passing each piece's h_out as the next piece's h_in, gives
 * bit-identical y and final state to one scan of the whole (the recurrence is sequential).
 */
#ifndef WV_SCAN_H
#define WV_SCAN_H

/* Selective scan, all fp32.
 *   u          (B, KD, L)     input sequence
 *   delta      (B, KD, L)     raw δ before bias / softplus
 *   A          (KD, N)        already negative (A = −exp(A_logs))
 *   Bm, Cm     (B, G, N, L)   input / output projections, shared by the KD/G channels of a group
 *   D          (KD) or NULL   skip weight (NULL = 0)
 *   delta_bias (KD) or NULL   (NULL = 0)
 *   h_in       (B, KD, N) or NULL (zeros)
 *   y          (B, KD, L)     output
 *   h_out      (B, KD, N) or NULL; may equal h_in
 * KD must be a multiple of G. Parallel over (b, ch) with OpenMP; thread-count invariant. */
void scan_cpu(const float *u, const float *delta, const float *A, const float *Bm,
              const float *Cm, const float *D, const float *delta_bias, const float *h_in,
              float *y, float *h_out, int B, int KD, int G, int N, int L, int delta_softplus);

#include <math.h>
/* softplus as the official kernel computes it: x > 20 ? x : log1p(exp(x)). */
static inline float scan_softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

#endif
