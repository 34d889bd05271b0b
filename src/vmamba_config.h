/*
 * vmamba_config.h — a VMamba backbone's configuration, inferred from tensor names and shapes
 * (VMAMBA_SPEC.md §3, §5, §7), and the canonical tensor names the model reads.
 *
 * Both block families: v2 (forward_type v05_noz, patch-embed v2, downsample v3, MLP) and
 * v0 (z gate, no MLP, patch-embed v1, PatchMerging). Any dims, depths, d_state, ssm_ratio,
 * dt_rank, number of classes (0 = no classifier, a backbone-only file).
 */
#ifndef WV_VMAMBA_CONFIG_H
#define WV_VMAMBA_CONFIG_H

#include "error.h"
#include "weights.h"

#define VMAMBA_STAGES 4

enum vmamba_family { VMAMBA_V2, VMAMBA_V0 };

struct vmamba_config {
    enum vmamba_family family;
    int dims[VMAMBA_STAGES];     /* C of each stage */
    int depths[VMAMBA_STAGES];   /* blocks per stage */
    int d_inner[VMAMBA_STAGES];  /* Dn = ssm_ratio * C per stage */
    int dt_rank[VMAMBA_STAGES];  /* R per stage */
    int d_state;                 /* N */
    int mlp_hidden[VMAMBA_STAGES]; /* 4C for v2 (mlp_ratio 4), 0 when blocks have no MLP */
    int conv_bias;               /* depthwise conv has a bias (v0) */
    int num_classes;             /* 0 when the file has no classifier */
    double ssm_ratio;            /* d_inner[0] / dims[0], for display */
    long long n_params;          /* parameters the model uses */
};

/* Infer the configuration from a checkpoint's tensors and check every tensor the model needs is
 * present with the right shape. `prefix` ("" or "backbone.") is prepended to every name looked up.
 * v0-era names (patch_embed.proj, ln_1, self_attention, norm./head.) are accepted too.
 * Errors name the tensor, the expected and the found shape. */
enum wv_status vmamba_config_infer(const struct weights *w, const char *prefix,
                                   struct vmamba_config *cfg);

/* Find a tensor by its canonical (current official) name, trying the v0-era spelling as well;
 * checks its shape against `ndim`/`shape` (a -1 entry matches anything). NULL + error when absent
 * or mis-shaped. */
const struct weight_tensor *vmamba_tensor(const struct weights *w, const char *prefix,
                                          const char *canonical_name, int ndim,
                                          const int64_t *shape);

/* vmamba_tensor for a printf-formatted name and up to four dims (unused ones ignored), returning
 * the fp32 data or NULL with the error recorded. The CPU model and its CUDA twin load through it. */
const float *vmamba_tensor_f32(const struct weights *w, const char *prefix, int ndim, int64_t s0,
                               int64_t s1, int64_t s2, int64_t s3, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

/* One-line human description: "v2 dims 96/192/384/768 depths 2/2/8/2 d_state 1 ssm_ratio 1.0 ..." */
void vmamba_config_describe(const struct vmamba_config *cfg, char *buf, size_t len);

/* The configuration as a JSON object text (malloc'ed, caller frees; NULL + WV_ENOMEM on failure):
 * {"family":"v2","dims":[..],"depths":[..],"d_inner":[..],"dt_rank":[..],"d_state":N,
 *  "mlp_hidden":[..],"conv_bias":false,"num_classes":K,"ssm_ratio":1.0,"n_params":P}. */
char *vmamba_config_json(const struct vmamba_config *cfg);

#endif
