/*
 * scan_grad.h — float64 twin of the selective scan (scan.h) and its backward, with the carried
 * state in both directions, for training the slide context head (issue 5, docs/training.md).
 * Code: src/scan_backward.c. Layouts and the recurrence are exactly scan.h's (VMAMBA_SPEC.md §4):
 *     δ_t = softplus(delta[t] + delta_bias[ch]) (threshold 20),  h_t = exp(δ_t·A)·h_{t-1} + δ_t·B_t·u_t,
 *     y_t = Σ_n C_t[n]·h_t[n] + D·u_t,   h_{-1} = h_in,  h_out = h_{L-1}.
 * Chunked backprop: scanning a sequence in pieces (forward h_out → next h_in) and running the
 * backward over the pieces in reverse order, each piece's dh_in becoming the previous piece's
 * dh_out, gives the gradients of one unchunked backward (tests/unit/test_gradcheck_scan.c).
 */
#ifndef WV_SCAN_GRAD_H
#define WV_SCAN_GRAD_H

#include "error.h"

/* Forward in float64, arguments as scan_cpu (u, delta (B, KD, L); A (KD, N); Bm, Cm (B, G, N, L);
 * D, delta_bias (KD) or NULL; h_in (B, KD, N) or NULL = zeros; y (B, KD, L); h_out (B, KD, N) or
 * NULL, may equal h_in). Parallel over (b, ch); thread-count invariant. */
void scan_forward_f64(const double *u, const double *delta, const double *A, const double *Bm,
                      const double *Cm, const double *D, const double *delta_bias,
                      const double *h_in, double *y, double *h_out, int B, int KD, int G, int N,
                      int L, int delta_softplus);

/* Backward of scan_forward_f64 over one piece. Inputs: the forward's arguments (h_in as given to
 * the forward, NULL = zeros), dy (B, KD, L) and dh_out (B, KD, N) or NULL (= 0): the gradient of
 * the loss w.r.t. y and the final state. Outputs — every pointer may be NULL (not wanted):
 *   du, ddelta (B, KD, L), dBm, dCm (B, G, N, L)         written (overwritten)
 *   dA (KD, N), dD (KD), ddelta_bias (KD)                ACCUMULATED (+=)
 *   dh_in (B, KD, N)                                     written: d loss / d h_in
 * ddelta is w.r.t. the raw delta (before bias and softplus). The states are recomputed from h_in
 * (memory O(KD·L·N) doubles of scratch). Parallel over channels; the group sums of dBm/dCm and
 * the parameter sums are reduced in a fixed channel order, so results do not depend on the thread
 * count. WV_ENOMEM on allocation failure. */
enum wv_status scan_backward_f64(const double *u, const double *delta, const double *A,
                                 const double *Bm, const double *Cm, const double *D,
                                 const double *delta_bias, const double *h_in, const double *dy,
                                 const double *dh_out, double *du, double *ddelta, double *dA,
                                 double *dBm, double *dCm, double *dD, double *ddelta_bias,
                                 double *dh_in, int B, int KD, int G, int N, int L,
                                 int delta_softplus);

/* softplus with scan_softplus's threshold, and its derivative (sigmoid; 1 above the threshold). */
double scan_softplus_f64(double x);
double scan_softplus_grad_f64(double x);

#endif
