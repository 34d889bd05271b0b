/*
 * head_grad.h — training twin of the slide context head (head.h): a float64 forward that keeps
 * every intermediate of one slide (the tape) and its backward, giving d loss / d parameter for
 * every head tensor (issue 5, docs/training.md). Code: src/head_backward.c (scans through
 * scan_grad.h). The forward is head.h's equations exactly, in float64: LayerNorms (eps 1e-5,
 * biased variance), Linear, masked depthwise 3×3 conv, SiLU, the four selective scans over the
 * tissue cells only in head.c's directions, chunked by bands of rows / columns with the state
 * carried (the backward carries d loss / d state the other way), out_norm, out_proj, residual,
 * final LayerNorm, cell classifier, gated attention pooling, max cell logit, slide classifier.
 * The max's gradient goes to the first arg-max cell (row-major), as docs/head.md says.
 *
 * Parameters are a float64 vector in head_params()' order (head_tensors() gives names and
 * offsets); gradients use the same layout. Shape letters as head.h.
 * Threads: OpenMP loops over cells / channels; the GEMMs are cblas_dgemm. With OpenBLAS single-
 * threaded (what the trainer sets) results do not depend on the OpenMP thread count. One
 * struct head_grad must not be used by two threads at once; different ones may.
 */
#ifndef WV_HEAD_GRAD_H
#define WV_HEAD_GRAD_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "head.h"

struct head_grad; /* workspace + tape of one slide; opaque */

/* A workspace for heads shaped like `h` (its config and tensor layout are copied; h may be freed
 * afterwards). *out NULL on error. */
enum wv_status head_grad_create(const struct head *h, struct head_grad **out);
void head_grad_free(struct head_grad *g);

/* Number of parameters (= head_params' n_params). */
size_t head_grad_n_params(const struct head_grad *g);

/* Offset and element count of the tensor `name` (e.g. "blocks.0.A_logs") in the parameter
 * vector; -1 when there is no such tensor. */
long head_grad_tensor_offset(const struct head_grad *g, const char *name, size_t *numel);

/* Forward over one slide in float64, keeping the tape for head_grad_backward.
 *   params    (n_params) float64, head_params' layout
 *   rows, cols, tissue (rows, cols) nonzero = tissue cell
 *   features  (n, D) float32, the tissue cells' features in row-major cell order
 *   chunk     rows / columns per scan band, 0 = whole grid (the gradients do not depend on it
 *             beyond rounding)
 * Outputs: cell_logit (n) float64 (may be NULL), *slide_logit (NaN when n = 0).
 * WV_EINVAL for a bad grid, WV_ENOMEM. */
enum wv_status head_grad_forward(struct head_grad *g, const double *params, int rows, int cols,
                                 const uint8_t *tissue, const float *features, int chunk,
                                 double *cell_logit, double *slide_logit);

/* Tissue cells of the last forward. */
size_t head_grad_n_cells(const struct head_grad *g);

/* Backward of the last forward: d_cell_logit (n) = d loss / d cell_logit (NULL = 0),
 * d_slide_logit = d loss / d slide_logit. ACCUMULATES d loss / d params into grad (n_params).
 * WV_EINVAL when no forward ran, WV_ENOMEM. */
enum wv_status head_grad_backward(struct head_grad *g, const double *d_cell_logit,
                                  double d_slide_logit, double *grad);

/* Binary cross-entropy with logits for a (soft) target y in [0, 1]:
 * returns softplus(z) − y·z (stable form), *dz = sigmoid(z) − y. */
double head_grad_bce(double z, double y, double *dz);

#endif
