/*
 * vmamba.h — the VMamba backbone + classifier, exact to the official model (VMAMBA_SPEC.md §3,
 * §5): v2 blocks (v05_noz, patch-embed v2, downsample v3, MLP) and v0 blocks (z gate, conv bias,
 * no MLP, patch-embed v1, PatchMerging), any dims / depths / d_state / ssm_ratio / dt_rank /
 * classes, any input H×W. Written against the op table of backend.h.
 *
 * Memory: activations are channels-last (B, H, W, C). A forward keeps about three full-size
 * maps (x, u, merged y) plus the x_proj output (4·(R+2N) per pixel); the stem, in_proj + conv,
 * out_norm/out_proj, MLP and downsample run in row/pixel bands, and input rows are pulled through
 * a callback, so a 10,000² region through VMamba-T[s1l8] stays under 8 GiB.
 */
#ifndef WV_VMAMBA_H
#define WV_VMAMBA_H

#include <stdint.h>

#include "backend.h"
#include "error.h"
#include "vmamba_config.h"
#include "weights.h"

struct vmamba;

/* Build a model from a checkpoint's tensors: vmamba_config_infer(w, prefix) then every tensor
 * looked up by its canonical name (v0-era names accepted). The model points into `w` (no copy of
 * the large tensors): `w` must outlive the model. Errors name the missing / mis-shaped tensor. */
enum wv_status vmamba_load(const struct weights *w, const char *prefix, struct vmamba **out);

/* As vmamba_load with a configuration the caller already has (checked against the tensors). */
enum wv_status vmamba_create(const struct weights *w, const char *prefix,
                             const struct vmamba_config *cfg, struct vmamba **out);

void vmamba_free(struct vmamba *m);

const struct vmamba_config *vmamba_get_config(const struct vmamba *m);
/* Input channels of the stem (3 for the released models). */
int vmamba_in_chans(const struct vmamba *m);

/* Spatial size of each stage's map for an H×W input (stage 0 = patch-embed output):
 * v2: ⌈⌈H/2⌉/2⌉ then ⌈·/2⌉ per stage; v0: ⌊H/4⌋ then ⌈·/2⌉. hs, ws: VMAMBA_STAGES entries. */
void vmamba_stage_sizes(const struct vmamba *m, int H, int W, int *hs, int *ws);

/* Input provider: write input rows [row0, row0+rows) of image b as (rows, W, Cin) channels-last
 * fp32 into dst. Returns WV_OK or a status (with error_set). */
typedef enum wv_status (*vmamba_read_rows_fn)(void *user, int b, int row0, int rows,
                                              float *dst);

/* Stage-output observer: called with each intermediate map, name one of "patch_embed",
 * "stageI_blocks", "stageI_downsampled" (I < 3) — the golden file names — map (B, H, W, C)
 * channels-last, valid only during the call. May be NULL. */
typedef enum wv_status (*vmamba_stage_fn)(void *user, const char *name, const float *map, int B,
                                          int H, int W, int C);

/* Forward B images of H×W (any size ≥ 1; v0 needs H, W ≥ 4).
 *   logits (B, num_classes) OUT, or NULL (then the classifier is skipped)
 *   features (B, Hs, Ws, dims[3]) OUT or NULL: the last stage's map (stride 32), channels-last
 * Threads: be->threads via OpenMP; results are bit-identical for any thread count.
 * Errors: WV_EINVAL for bad sizes, WV_ENOMEM, or the status of a callback. */
enum wv_status vmamba_forward(const struct vmamba *m, const struct backend *be, int B, int H,
                              int W, vmamba_read_rows_fn read, void *read_user,
                              vmamba_stage_fn on_stage, void *stage_user, float *logits,
                              float *features);

/* Convenience: the input is an in-memory (B, Cin, H, W) NCHW array (as the official model takes). */
enum wv_status vmamba_forward_nchw(const struct vmamba *m, const struct backend *be,
                                   const float *x, int B, int H, int W, vmamba_stage_fn on_stage,
                                   void *stage_user, float *logits);

/* FLOPs (multiply-adds counted as 2) of one forward of B×H×W, split by op kind: [0] GEMMs
 * (1×1 projections, MLP, x_proj, head, patch-merge reduction), [1] dense convs (stem, downsample),
 * [2] depthwise conv, [3] scan (dt_proj + recurrence + merge), [4] norms + activations. */
void vmamba_flops(const struct vmamba_config *cfg, int in_chans, int B, int H, int W,
                  double flops[5]);

/* Random weights with the official tensor names and init-like values (VMAMBA_SPEC.md §6:
 * A_logs = ln(n+1), Ds = 1, dt bias = softplus⁻¹(log-uniform [1e-3, 1e-1]), Linear ~ N(0,0.02),
 * LayerNorm ≈ 1/0, convs ~ U(±1/√fan_in)), for tests and benchmarks. Uses cfg->family, dims,
 * depths, d_inner, dt_rank, d_state, mlp_hidden, conv_bias, num_classes; in_chans 3.
 * Caller frees with weights_free. */
enum wv_status vmamba_random_weights(const struct vmamba_config *cfg, uint64_t seed,
                                     struct weights **out);

#endif
