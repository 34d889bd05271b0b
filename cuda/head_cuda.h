/*
 * head_cuda.h — the training twin of the slide context head on a CUDA device (issue 5,
 * docs/training.md): the same forward with tape and exact backward as src/head_grad.h (equations
 * in src/head.h), in fp32 with fp32 per-cell dot products and float64 accumulation of every
 * reduction over cells (parameter gradients, softmax sums, pooling). Code: cuda/head_grad.cu.
 * Checked against the float64 CPU backward by tests/gpu/test_gpu_head.c.
 *
 * The interface mirrors head_grad.h so the trainer can swap one for the other: parameters and
 * gradients are HOST float64 vectors in head_params()' layout (the parameters are converted to
 * fp32 and uploaded at each forward; the gradients come back as float64 and are accumulated into
 * the caller's vector), features are host fp32 (n, D) in row-major tissue-cell order.
 *
 * Scans: one thread per (direction, channel) walks the direction's whole tissue sequence with the
 * state carried (the same math as the CPU's chunked scan with carried state; `chunk` is accepted
 * for the interface and has no effect beyond rounding). The forward keeps the state every
 * HEAD_CUDA_CKPT steps; the backward recomputes each segment's states from its checkpoint and
 * walks it in reverse, one warp per 32 channels of a direction so the B/C gradient sums over
 * channels are warp reductions (fixed order: results are deterministic run to run).
 * Memory: O(n·(D + Dh·n_blocks·6 + Dn·K·4)) fp32 on the device for n tissue cells.
 */
#ifndef WV_HEAD_CUDA_H
#define WV_HEAD_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "src/error.h"
#include "src/head.h"

#define HEAD_CUDA_CKPT 64 /* scan steps between stored states */

struct head_grad_cuda;

/* A workspace on CUDA device `device` for heads shaped like h (config and layout copied; h may
 * be freed afterwards). d_state must be ≤ 64. WV_ECUDA / WV_ENOMEM / WV_EINVAL. */
enum wv_status head_grad_cuda_create(const struct head *h, int device,
                                     struct head_grad_cuda **out);
void head_grad_cuda_free(struct head_grad_cuda *g);

/* As head_grad_forward (head_grad.h): params (n_params) float64 host; cell_logit (n) float64
 * host or NULL; *slide_logit NaN when n = 0. */
enum wv_status head_grad_cuda_forward(struct head_grad_cuda *g, const double *params, int rows,
                                      int cols, const uint8_t *tissue, const float *features,
                                      int chunk, double *cell_logit, double *slide_logit);

size_t head_grad_cuda_n_cells(const struct head_grad_cuda *g);

/* As head_grad_backward: ACCUMULATES d loss / d params into grad (host float64, n_params). */
enum wv_status head_grad_cuda_backward(struct head_grad_cuda *g, const double *d_cell_logit,
                                       double d_slide_logit, double *grad);

#ifdef __cplusplus
}
#endif

#endif
