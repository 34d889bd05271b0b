/*
 * vmamba_cuda.h — the whole VMamba forward on one NVIDIA GPU: the CUDA twin of src/vmamba.h
 * (same structure, same outputs: logits, the stage-3 feature map and every stage map through the
 * same callback with the golden names), written the llm.c way in cuda/vmamba.cu. Both families
 * (v2 v05_noz, v0 z-gate + PatchMerging), any H×W, any B.
 *
 * Weights are uploaded once at create time (GEMM weights converted to the storage dtype; norms,
 * convs, A, D, dt in fp32). Activations live in one device arena (cuda/pool.h) sized from the
 * configuration and the input size; per-pixel work runs in pixel bands so only the maps the
 * scan needs whole (x, u, merged y, x_proj output) are full size. One stream, async copies from
 * pinned staging, no host round trip inside a forward. If the arena does not fit, the band is
 * halved and the allocation retried; when even the smallest band does not fit the forward fails
 * with WV_ENOMEM and a message giving the sizes. Never exits.
 */
#ifndef WV_VMAMBA_CUDA_H
#define WV_VMAMBA_CUDA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "src/device_select.h"
#include "src/error.h"
#include "src/vmamba.h"
#include "src/vmamba_config.h"
#include "src/weights.h"

struct vmamba_cuda;

struct vmamba_cuda_options {
    int device;          /* CUDA ordinal */
    enum wv_dtype dtype; /* GEMM operand / weight storage; accumulation and scan always fp32 */
    int tf32;            /* allow TF32 tensor cores for f32 GEMMs (default 0: exact fp32) */
    size_t band_pixels;  /* stage-0 pixels per band (deeper stages: same bytes); 0 = 128 Ki */
    int scan_chunk;      /* tokens per scan chunk; 0 = default */
    int scan_tile;       /* 1: tiled SS2D (cuda/ss2d_tile.cuh) for the bf16 stages that allow it;
                            -1: the chunked kernels; 0: as the switch WV_SS2D_TILE says
                            (cuda/knobs.h) */
    int verbose;         /* print arena sizes on stderr */
    int profile;         /* time the forward's sections with CUDA events (vmamba_cuda_profile) */
};

/* Build the GPU model from a checkpoint's tensors (configuration inferred as vmamba_load does;
 * `prefix` "" or "backbone."). Uploads the weights; `w` may be freed afterwards.
 * opt may be NULL (device 0, f32). Errors: those of vmamba_config_infer / missing tensors,
 * WV_EUNSUPPORTED (no device, d_state > CUDA_SCAN_MAX_N), WV_ENOMEM, WV_ECUDA. */
enum wv_status vmamba_cuda_create(const struct weights *w, const char *prefix,
                                  const struct vmamba_cuda_options *opt, struct vmamba_cuda **out);
void vmamba_cuda_free(struct vmamba_cuda *m);

const struct vmamba_config *vmamba_cuda_config(const struct vmamba_cuda *m);
int vmamba_cuda_in_chans(const struct vmamba_cuda *m);

/* Forward B images of H×W, the contract of vmamba_forward (src/vmamba.h): input rows pulled
 * through `read` (host memory, (rows, W, Cin) channels-last), `on_stage` called with each map
 * (host memory, (B, H, W, C) channels-last, valid only during the call; downloading costs a
 * device→host copy per map, so pass NULL when not needed), logits (B, classes) and features
 * (B, Hs, Ws, dims[3]) in host memory, each optional. */
enum wv_status vmamba_cuda_forward(struct vmamba_cuda *m, int B, int H, int W,
                                   vmamba_read_rows_fn read, void *read_user,
                                   vmamba_stage_fn on_stage, void *stage_user, float *logits,
                                   float *features);

/* Convenience: input as an in-memory (B, Cin, H, W) NCHW host array. */
enum wv_status vmamba_cuda_forward_nchw(struct vmamba_cuda *m, const float *x, int B, int H,
                                        int W, vmamba_stage_fn on_stage, void *stage_user,
                                        float *logits);

/* Forward from an input already in device memory: d_input (B, H, W, Cin) fp32 channels-last.
 * No host staging and no callback: the benchmark's path (the official code times its forward
 * from a device tensor too) and the path for callers that decode on the GPU. logits/features as
 * vmamba_cuda_forward (host memory, optional). */
enum wv_status vmamba_cuda_forward_device(struct vmamba_cuda *m, const float *d_input, int B, int H,
                                          int W, float *logits, float *features);

/* Section timing (options.profile): milliseconds of GPU time per section, summed over forwards
 * since the last reset. Sections are consecutive intervals between CUDA events on the model's
 * stream, so they add up to the forward's GPU time. */
enum vmamba_cuda_section {
    VCP_STEM,      /* patch embedding: norms, activations, input staging */
    VCP_STEM_CONV, /* patch embedding: im2col + GEMM of its two convs */
    VCP_IN_PROJ,   /* LN + in_proj GEMM (+ v0 gate side in the tail) */
    VCP_DWCONV,    /* depthwise 3×3 + SiLU */
    VCP_X_PROJ,    /* x_proj GEMM */
    VCP_SCAN,      /* SS2D: pass 1 (chunk-local scans, all 4 directions) of the fast path; the
                      whole SS2D on the exact path */
    VCP_SCAN_CARRY, /* SS2D: the carry over chunks */
    VCP_SCAN_ROWS, /* SS2D pass 2, directions 0 and 2 (row-major walks) */
    VCP_SCAN_COLS, /* SS2D pass 2, directions 1 and 3 (column-major walks) */
    VCP_OUT,       /* out_norm + out_proj */
    VCP_MLP,       /* LN2 + fc1 + GELU + fc2 */
    VCP_DOWN,      /* downsample between stages */
    VCP_HEAD,      /* classifier + copies out */
    VCP_N
};
const char *vmamba_cuda_section_name(int s);
void vmamba_cuda_profile(const struct vmamba_cuda *m, double ms[VCP_N]);
void vmamba_cuda_profile_reset(struct vmamba_cuda *m);
/* Turn section timing on or off for the following forwards (options.profile at create). */
void vmamba_cuda_set_profile(struct vmamba_cuda *m, int on);
/* Device bytes of the uploaded weights, and of the arena currently reserved. */
size_t vmamba_cuda_weight_bytes(const struct vmamba_cuda *m);
size_t vmamba_cuda_arena_reserved(const struct vmamba_cuda *m);
/* Fill n floats of device memory with N(0,1) values (a counter-based hash; deterministic). */
enum wv_status vmamba_cuda_fill_normal(float *d, size_t n, unsigned long long seed);

/* Device bytes the arena needs for a B×H×W forward with the given band (0 = default). */
size_t vmamba_cuda_arena_bytes(const struct vmamba_cuda *m, int B, int H, int W,
                               size_t band_pixels);

#ifdef __cplusplus
}
#endif

#endif
