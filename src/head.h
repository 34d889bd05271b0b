/*
 * head.h — the slide context head (issue 4, docs/head.md): a small SS2D-style stack over the
 * slide's grid of tissue cells that turns backbone stage-3 features (one cell = 32 px at the
 * target resolution = 16 µm at 0.5 µm/px) into a per-cell tumour probability (the heatmap) and a
 * slide probability. CPU reference, plain fp32 loops (STYLE.md 2.2); the scans are scan_cpu
 * (src/scan.h) with its h_in/h_out contract, run over chunks of the grid with the state carried.
 *
 * Shape letters: D = backbone feature dim (dims[3]), Dh = d_h, Dn = d_inner, N = d_state,
 * R = dt_rank, Da = attention dim, K = 4 directions, n = number of tissue cells.
 *
 * Forward (every intermediate is a per-cell fp32 array, so a backward pass can store or
 * recompute it; no data-dependent control flow except the max over cell logits):
 *   x0_i   = in_proj(in_norm(f_i))                           f_i (D) → x0_i (Dh)
 *   block j = 0..n_blocks-1 (residual, pre-norm), per tissue cell i:
 *     z    = norm(x);  v = in_proj(z) (Dh → Dn, no bias)
 *     u    = SiLU(conv3x3_dw_masked(v))   depthwise 3×3, no bias, background/outside = 0
 *     xdbl_k = x_proj[k] · u  → [dt_low (R) | B (N) | C (N)]          k = 0..3
 *     y    = Σ_k scan_k(u, δ = dt_projs[k]·dt_low + dt_bias, A = −exp(A_logs), B, C, Ds)
 *            scan_k runs over the TISSUE cells only, in direction k's order over the grid:
 *            k=0 row-major, k=1 column-major, k=2 reversed row-major, k=3 reversed
 *            column-major (VMAMBA_SPEC.md §3 step 4 with background cells removed), h_{-1} = 0
 *     x    = x + out_proj(out_norm(y))   (Dn → Dh, no bias)
 *   g_i      = norm(x_i)                                              final LayerNorm
 *   cell_logit_i = cell_cls · g_i + b                                 heatmap = sigmoid
 *   a_i      = attn_w · (tanh(attn_V g_i + bV) ⊙ sigmoid(attn_U g_i + bU)) + bw   (gated ABMIL)
 *   α        = softmax_i(a);  pooled = Σ_i α_i g_i
 *   slide_logit = slide_cls · [pooled ; max_i cell_logit_i] + b;   slide_prob = sigmoid
 *
 * Streaming: the head never needs the D-dim features of the whole slide. A run (head_run_*)
 * takes features region by region (head_run_add / head_run_add_cells), projecting each tissue
 * cell to Dh at once; memory is O(n · (Dh + Dn)) plus one chunk's scan buffers. The blocks run in
 * head_run_finish, whose scans go chunk by chunk (bands of `chunk` rows for the row-major
 * directions, bands of `chunk` columns for the column-major ones), each chunk's scan starting
 * from the state the previous chunk left (scan_cpu h_in/h_out). The result does not depend on
 * the chunk size nor on the thread count: bit-identical (tests/unit/test_head.c).
 */
#ifndef WV_HEAD_H
#define WV_HEAD_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "weights.h"

#define HEAD_K 4          /* scan directions */
#define HEAD_MAX_BLOCKS 16

struct head_config {
    int in_dim;   /* D: backbone feature dim (dims[3] of the backbone, e.g. 768) */
    int d_h;      /* Dh: hidden width (default 128) */
    int n_blocks; /* n_h: SS2D-style blocks (default 2) */
    int d_inner;  /* Dn: scan channels per direction (default = d_h, ssm_ratio 1) */
    int d_state;  /* N: states per channel (default 4) */
    int dt_rank;  /* R: (default ⌈d_h/16⌉) */
    int d_attn;   /* Da: attention hidden dim (default 64) */
};

/* Defaults for a backbone feature dim `in_dim`: d_h 128, 2 blocks, d_inner = d_h, d_state 4,
 * dt_rank ⌈d_h/16⌉, d_attn 64. Callers may then change d_h / n_blocks and call
 * head_config_derive to recompute d_inner and dt_rank from d_h. */
void head_config_default(struct head_config *cfg, int in_dim);
/* d_inner = d_h, dt_rank = ⌈d_h/16⌉ (after changing d_h). */
void head_config_derive(struct head_config *cfg);
/* WV_EINVAL with a message for out-of-range values (each dim 1..65536, blocks 0..16, ...). */
enum wv_status head_config_check(const struct head_config *cfg);
/* {"in_dim":768,"d_h":128,"n_blocks":2,"d_inner":128,"d_state":4,"dt_rank":8,"d_attn":64}
 * malloc'ed (caller frees); NULL + WV_ENOMEM on failure. */
char *head_config_json(const struct head_config *cfg);
/* Parse the JSON above (every key required, integers). WV_EFORMAT naming the key on failure. */
enum wv_status head_config_parse(const char *json, struct head_config *cfg);

struct head; /* opaque; parameters in one contiguous fp32 buffer */

/* A randomly initialised head (seeded, deterministic, independent of the thread count):
 * Linear weights ~ N(0, 0.02) truncated at ±2σ, biases 0, LayerNorms 1/0; Mamba-style scan init
 * (VMAMBA_SPEC.md §6): dt_projs_weight ~ U(±R^−½), dt_projs_bias = softplus⁻¹(log-uniform
 * [1e-3, 1e-1]), A_logs[·, n] = ln(n+1), Ds = 1, x_proj ~ U(±Dn^−½), conv ~ U(±1/3). */
enum wv_status head_create_random(const struct head_config *cfg, uint64_t seed,
                                  struct head **out);

/* A head from tensors named `prefix` + the names of head_tensors() (e.g. prefix "head.").
 * Every tensor must be present with exactly the shape cfg implies; errors name the tensor and
 * the expected vs found shape (WV_ENOTFOUND / WV_EFORMAT). The data are copied. */
enum wv_status head_create_from_weights(const struct weights *w, const char *prefix,
                                        const struct head_config *cfg, struct head **out);

void head_free(struct head *h);

const struct head_config *head_get_config(const struct head *h);

/* The head's parameters as named tensors (names without prefix, e.g. "blocks.0.A_logs"),
 * pointing into the head (valid while it lives; data may be written by a trainer). In a fixed
 * order; the data of all tensors are one contiguous buffer (head_params). */
const struct weight_tensor *head_tensors(const struct head *h, int *n);
/* The contiguous parameter buffer and its length (for optimisers). */
float *head_params(struct head *h, size_t *n_params);

/* ---- input grid and outputs ------------------------------------------------------------- */

/* The slide's cell grid: rows × cols cells, row-major; cell (r, c) covers target-resolution
 * pixels [32c, 32c+32) × [32r, 32r+32) of the slide. */
struct head_grid {
    int rows, cols;
    const uint8_t *tissue; /* (rows, cols), nonzero = tissue cell */
    const float *features; /* (n, D): the features of the tissue cells in row-major cell order
                              (n = number of nonzero tissue entries) */
    int D;                 /* must equal cfg.in_dim */
};

/* Outputs; every pointer may be NULL (not wanted). Caller-allocated. */
struct head_outputs {
    float *cell_logit; /* (rows, cols): logit of tissue cells, NaN off tissue */
    float *cell_prob;  /* (rows, cols): sigmoid(cell_logit), NaN off tissue — the heatmap */
    float *attention;  /* (rows, cols): softmax weight α of tissue cells (sums to 1), NaN off */
    float *cell_hidden;/* (n, Dh): g_i (final LayerNorm output) of the tissue cells in
                          row-major order, or NULL */
    /* scalars, always written: */
    float slide_logit;
    float slide_prob;     /* NaN when the slide has no tissue cell */
    float max_cell_logit; /* NaN when no tissue cell */
    size_t n_cells;       /* tissue cells */
};

/* ---- streaming run ------------------------------------------------------------------------ */

struct head_run;

/* Begin a run over a rows × cols grid with the given tissue mask (copied). Memory: n·Dh floats
 * now, plus O(n·(Dh+Dn)) and one chunk of scan buffers during head_run_finish. */
enum wv_status head_run_create(const struct head *h, int rows, int cols, const uint8_t *tissue,
                               struct head_run **out);

/* Add the features of a rectangle of cells (typically a region's stage-3 map, halo cropped):
 * cells (row0 + i, col0 + j), 0 ≤ i < n_rows, 0 ≤ j < n_cols, feature of cell (i, j) at
 * feat + ((size_t)i·ld + j)·D (ld = cells per row of the source map, ≥ n_cols). Only tissue cells
 * are read and projected; background cells of the rectangle are ignored. A cell given twice keeps
 * the last value. The rectangle must lie inside the grid (WV_EINVAL). Thread-safe only for
 * distinct runs. */
enum wv_status head_run_add(struct head_run *run, int row0, int col0, int n_rows, int n_cols,
                            const float *feat, size_t ld);

/* Add features of a list of cells: rc (m, 2) int32 (row, col), feat (m, D). Non-tissue or
 * out-of-grid cells: WV_EINVAL. (For cached CLAM-style features, issue 5.) */
enum wv_status head_run_add_cells(struct head_run *run, size_t m, const int32_t *rc,
                                  const float *feat);

/* Run the blocks and classifiers. chunk = rows per band for the row-major scans and columns per
 * band for the column-major scans (0 = one chunk: the whole grid). threads > 0: OpenMP threads
 * to use (omp_set_num_threads, as backend_init does), ≤ 0: leave the current setting. Results are
 * bit-identical for any chunk and thread count. WV_EINVAL when a tissue cell never got
 * features (the message names the first such cell). The run may be finished more than once. */
enum wv_status head_run_finish(struct head_run *run, int chunk, int threads,
                               struct head_outputs *out);

void head_run_free(struct head_run *run);

/* One-shot: head_run_create + add all grid->features + head_run_finish. */
enum wv_status head_forward(const struct head *h, const struct head_grid *grid, int chunk,
                            int threads, struct head_outputs *out);

#endif
