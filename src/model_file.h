/*
 * model_file.h — the wsi-vmamba model file (DESIGN.md "Numerics and models", docs/head.md):
 * one safetensors with the backbone tensors under "backbone.", the slide head's tensors under
 * "head.", and __metadata__ whose values are strings, each a JSON text:
 *   wsi_vmamba_model  format version, "1"
 *   backbone_config   vmamba_config_json()        head_config   head_config_json()
 *   target_mpp        e.g. "0.5" (µm/px)          region_size   "10000" (px at target mpp)
 *   overlap           "256" (px, multiple of 32)
 *   normalization     {"mean":[0.485,0.456,0.406],"std":[0.229,0.224,0.225]}
 *   trained           "false" until a head is trained (issue 5), then "true"
 *   note              "head randomly initialised; outputs are structurally right but not
 *                      meaningful" (JSON string) for an untrained head
 *   provenance        {"backbone_file":..,"backbone_sha256":..,"seed":..,"tool_version":..,
 *                      "created_at":"2024-01-01T00:00:00Z", ...}
 *   training          (optional, issue 5) any JSON
 */
#ifndef WV_MODEL_FILE_H
#define WV_MODEL_FILE_H

#include <stdint.h>

#include "error.h"
#include "head.h"
#include "vmamba_config.h"
#include "weights.h"

#define MODEL_FILE_VERSION 1
#define MODEL_BACKBONE_PREFIX "backbone."
#define MODEL_HEAD_PREFIX "head."

/* Preprocessing and provenance stored with a model. Strings are owned by the struct when it
 * comes from model_file_load (free with model_meta_free); the caller's own for model_file_save. */
struct model_meta {
    int version;                /* MODEL_FILE_VERSION */
    double target_mpp;          /* µm/px the backbone sees (default 0.5) */
    int region_size;            /* px at target mpp (default 10000) */
    int overlap;                /* px at target mpp, halo each side (default 256) */
    float norm_mean[3], norm_std[3]; /* ImageNet by default */
    int trained;                /* 0 until issue 5's trainer writes the file */
    char *note;                 /* may be NULL */
    char *provenance_json;      /* JSON object text, may be NULL ("{}") */
    char *training_json;        /* JSON text or NULL (not written) */
};

/* Defaults: version 1, 0.5 µm/px, 10000, 256, ImageNet mean/std, untrained, the untrained note,
 * NULL provenance/training. */
void model_meta_default(struct model_meta *m);
void model_meta_free(struct model_meta *m);

/* Provenance JSON for `model init` (malloc'ed): backbone_file (as given), backbone_sha256,
 * backbone_format, seed, tool_version (WV_VERSION_STRING), created_at (UTC ISO 8601 now).
 * backbone_file may be NULL for a random backbone; then random_backbone names the preset. */
char *model_provenance_json(const char *backbone_file, const char *backbone_sha256,
                            const char *random_backbone, uint64_t seed);

/* Write a model file atomically. `backbone`: the backbone's tensors, with names exactly as in
 * their checkpoint (no prefix; they are stored as "backbone." + name; a checkpoint's classifier
 * tensors are kept); its configuration is inferred (vmamba_config_infer(backbone, "")) and must
 * succeed. The head's config D must equal the backbone's dims[3]. */
enum wv_status model_file_save(const char *path, const struct weights *backbone,
                               const struct head *head, const struct model_meta *meta);

/* Backbone configurations for random backbones (tests, demo, benchmarks; weights from
 * vmamba_random_weights): "tiny" = v2 dims 16/32/64/128 depths 1/1/2/1 d_state 1 ssm_ratio 1
 * (the golden v2_ds1 shape, stage-3 D = 128); "t-s1l8" = VMamba-T[s1l8] (dims 96..768, depths
 * 2/2/8/2, d_state 1, D = 768). No classifier (num_classes 0). WV_EINVAL for another name. */
enum wv_status model_backbone_preset(const char *name, struct vmamba_config *cfg);

struct model {
    struct weights *w;           /* all tensors of the file; backbone under "backbone." —
                                    vmamba_load(model->w, MODEL_BACKBONE_PREFIX, &vm) */
    struct vmamba_config backbone_cfg;
    struct head *head;
    struct model_meta meta;
    char sha256[65];             /* of the whole file (= w->sha256) */
};

/* Load and check a model file: the format version (WV_EUNSUPPORTED for a newer/unknown one),
 * every metadata key (WV_EFORMAT naming a missing or malformed one), the backbone tensors
 * (vmamba_config_infer with "backbone."; must agree with backbone_config), the head tensors
 * (head_create_from_weights with "head."), no tensor outside those two prefixes. A plain
 * checkpoint (no wsi_vmamba_model key) gets a message saying to run `wsi-vmamba model init`.
 * Errors are prefixed with nothing: the CLI adds the path. *out NULL on error. */
enum wv_status model_file_load(const char *path, struct model **out);
void model_free(struct model *m);

#endif
