/*
 * train.h — fitting the slide context head on cached features (issue 5, docs/training.md):
 * per-cell BCE where a slide has cell labels (tumour slides with an annotation file; normal
 * slides = every cell negative) plus slide BCE from the labels CSV; AdamW with decoupled weight
 * decay, linear warm-up then cosine decay, class-balanced weights, global gradient-norm
 * clipping, early stopping on validation slide AUC; a checkpoint per epoch (atomic) for
 * --resume; the result a model file (backbone. from --backbone-model, head., metadata with
 * `trained` true and a `training` record). Gradients: head_grad.h (float64).
 * Deterministic for a seed and a thread count (one slide per step in a seeded order; OpenMP
 * static loops; OpenBLAS with the same thread count).
 */
#ifndef WV_TRAIN_H
#define WV_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct train_options {
    const char *features_dir;   /* <id>.h5 from `wsi-vmamba features` (required) */
    const char *annotations_dir;/* <id>.xml / .geojson / .json, or NULL */
    const char *labels_path;    /* name,class CSV (required) */
    const char *out_path;       /* model file to write (required) */
    const char *backbone_model; /* model file whose backbone. tensors + preprocessing are copied
                                   (required: a model file needs its backbone) */
    int epochs;                 /* 30 */
    double lr;                  /* 1e-3, peak */
    double weight_decay;        /* 1e-4, on weight matrices only */
    uint64_t seed;              /* 1 */
    double val_fraction;        /* 0.2 of each class */
    int threads;                /* ≤ 0: all cores */
    int resume;                 /* continue from <out>.ckpt */
    int d_h, n_blocks, d_state, d_attn; /* head shape: 128, 2, 4, 64 */
    double warmup_fraction;     /* 0.05 of all steps */
    double clip_norm;           /* 1.0 */
    double cell_weight;         /* weight of the per-cell loss vs the slide loss: 1.0 */
    int patience;               /* epochs without a better validation AUC before stopping: 10 */
    int chunk;                  /* scan chunk (rows/cols) for training: 0 = whole grid */
    const char *device;         /* "auto" (default: the GPU when there is one), "cpu", "cuda[:N]":
                                   where the forward + backward run (cuda/head_cuda.h); the
                                   optimiser and losses stay on the CPU in float64 */
    size_t cache_mb;            /* feature cache bound in MiB (1024): features are read from the
                                   .h5 files per step, least recently used slides evicted */
    int quiet;
};
void train_options_default(struct train_options *o);

/* Summary of a run (for the CLI and tests). */
struct train_result {
    int epochs_run, best_epoch;
    double best_val_auc;   /* NaN when the validation split has one class */
    double seconds;
    int n_train, n_val;
};

/* The optimiser step train_run uses (shared with tests/gpu/test_gpu_head.c): global-norm clip
 * scale min(1, clip_norm / ‖grad‖₂) (1 when clip_norm ≤ 0; *norm gets ‖grad‖₂, NaN/Inf passed
 * through), then AdamW (β 0.9 / 0.999, ε 1e-8, bias correction at `step` = 1 for the first step),
 * decoupled weight decay lr·wd·p where decay[i] is nonzero. */
double train_clip_scale(const double *grad, size_t np, double clip_norm, double *norm);
void train_adamw_step(double *p, double *m, double *v, const double *grad, double grad_scale,
                      const uint8_t *decay, size_t np, double lr, double weight_decay,
                      int64_t step);

/* Run training end to end. Errors name the file they are about in the message. */
enum wv_status train_run(const struct train_options *o, struct train_result *res);

#endif
