/*
 * froc.h — the CAMELYON16 lesion-level evaluation (CAMELYON16_PROTOCOL.md §1.3–1.7, §1.10–1.11;
 * user notes and every rule we had to choose in docs/evaluation.md): the level-5 evaluation
 * mask (exact Euclidean distance transform, 75 µm dilation, hole filling, 8-connected labels,
 * isolated-tumour-cell exclusion by the skimage major axis), matching detections to lesions,
 * the FROC curve and the score (mean sensitivity at 1/4, 1/2, 1, 2, 4, 8 FPs per slide).
 *
 * Mask frame: a level-5 mask is (rows, cols) row-major; pixel (r, c) stands for level-0 pixel
 * (32c, 32r) (ASAP's nearest-neighbour pyramid keeps the top-left pixel, §1.9). Detections are
 * level-0 px and index the mask at (y // 32, x // 32).
 *
 * Official quirks (§1.10) are options, not hard-wired: struct froc_opts. No global state;
 * thread-safe for different objects.
 */
#ifndef WV_FROC_H
#define WV_FROC_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* The official constants (Evaluation_FROC.py). */
#define FROC_EVAL_LEVEL 5             /* mask pyramid level evaluated */
#define FROC_LEVEL_DS 32              /* 2^FROC_EVAL_LEVEL: the divisor of detection coordinates */
#define FROC_L0_RESOLUTION_UM 0.243   /* µm/px hard-coded for every slide by the official code */
#define FROC_DILATION_UM 75.0         /* "5 tumour cells"; the mask is dilated by half of it */
#define FROC_ITC_UM 275.0             /* 200 µm clinical ITC size + the 75 µm dilation */
#define FROC_N_RATES 6
/* FP-per-slide rates of the score: 1/4, 1/2, 1, 2, 4, 8 */
extern const double froc_rates[FROC_N_RATES];

enum froc_mode {
    FROC_INTERP = 0, /* np.interp on the curve (NCRF, MONAI; the default) */
    FROC_STEP,       /* the highest sensitivity among curve points with avgFP <= rate */
};

struct froc_opts {
    double mpp;     /* level-0 µm/px for the dilation and ITC thresholds (0.243 officially) */
    int float32_tp; /* 1: true-positive probabilities stored as float32 and compared with the
                       threshold in float32, exactly as the official numpy code does (§1.5) */
};

/* ---- the evaluation mask ------------------------------------------------------------------ */

/* Squared Euclidean distance from every pixel to the nearest pixel with feature != 0
 * (scipy.ndimage.distance_transform_edt of the complement, squared), exact in integers
 * (Felzenszwalb–Huttenlocher lower envelope with rational breakpoints). d2: (rows, cols);
 * INT64_MAX everywhere when there is no feature pixel. WV_ENOMEM. */
enum wv_status froc_edt_sq(const uint8_t *feature, int rows, int cols, int64_t *d2);

/* scipy.ndimage.binary_fill_holes with its default structure: background pixels not
 * 4-connected to the image border become 1. In place; bin holds 0/1. WV_ENOMEM. */
enum wv_status froc_fill_holes(uint8_t *bin, int rows, int cols);

/* skimage.measure.label(bin, connectivity=2): 8-connected components numbered 1..n in order of
 * their first pixel in row-major order; labels: (rows, cols). WV_ENOMEM. */
enum wv_status froc_label(const uint8_t *bin, int rows, int cols, int32_t *labels, int *n);

/* skimage regionprops major_axis_length of labels 1..n (0.19: 4·sqrt of the largest eigenvalue
 * of the covariance of the pixel (row, col) coordinates, normalised by the area). major: (n + 1),
 * index 0 unused. WV_ENOMEM. */
enum wv_status froc_major_axis(const int32_t *labels, int rows, int cols, int n, double *major);

/* A labelled evaluation mask. */
struct froc_mask {
    int rows, cols;
    int32_t *labels;  /* (rows, cols): 0 background, 1..n_labels */
    int n_labels;
    double *major_axis_px; /* (n_labels + 1) */
    uint8_t *is_itc;       /* (n_labels + 1): 1 when major axis < ITC threshold */
    int n_itc;
    int n_tumors;          /* n_labels − n_itc: the lesions that count */
    double dilation_px;    /* threshold on the distance: 75 / (mpp · 32 · 2) */
    double itc_px;         /* 275 / (mpp · 32) */
};

/* computeEvaluationMask + computeITCList on a level-5 tumour mask (tumour != 0): distance to
 * tumour < dilation_px, fill holes, label, ITC if major axis < itc_px (strict, both). mpp > 0.
 * *m is filled (froc_mask_free). WV_EINVAL, WV_ENOMEM. */
enum wv_status froc_mask_build(const uint8_t *tumour, int rows, int cols, double mpp,
                               struct froc_mask *m);
void froc_mask_free(struct froc_mask *m);

/* What a mask TIFF held (froc_mask_read_tiff). */
struct froc_mask_source {
    int64_t width_px, height_px; /* level-0 size of the mask = the slide's */
    double mpp;                  /* from the TIFF resolution, 0 when unknown */
    int tumour_value;            /* the pixel value taken as tumour (255, or 1; 0 = none found) */
    size_t n_255, n_other;       /* level-5 pixels equal to 255 / nonzero but not 255 */
};

/* Read level 5 of a mask TIFF through OpenSlide (channel R, as the official code), and decide
 * which value is tumour: 255 when any pixel is 255; otherwise, unless `only_255` (the official
 * rule), value 1 when present (masks made with the CAMELYON17 recipe, tumour = 1, §3.3).
 * *tumour: malloc'ed (rows, cols) 0/1 (caller frees). WV_EFORMAT when the mask has fewer than 6
 * levels; the slide's errors otherwise. */
enum wv_status froc_mask_read_tiff(const char *path, int only_255, uint8_t **tumour, int *rows,
                                   int *cols, struct froc_mask_source *src);

/* ---- matching -------------------------------------------------------------------------------- */

struct froc_detection {
    double p;     /* confidence */
    int64_t x, y; /* level-0 px */
};

/* One slide's contribution (compute_FP_TP_Probs). */
struct froc_slide {
    double *fp;      /* FP probabilities (n_fp), malloc'ed */
    size_t n_fp;
    double *tp;      /* (n_slots) best probability per label incl. ITC labels, 0 when missed;
                        float32-rounded values when opts.float32_tp; malloc'ed */
    int n_slots;
    int n_tumors;    /* lesions that count (labels − ITC) */
    int is_tumor;    /* evaluated as a tumour slide */
    /* what happened to the detections */
    size_t n_det, n_tp_hits, n_dup, n_itc_hits, n_nonpos, n_outside, n_edge;
};

/* Match a slide's detections. m == NULL: a normal slide (every detection is an FP).
 * width_px/height_px: the slide's level-0 size, 0 when unknown. Rules beyond the official code
 * (which crashes on them): a detection outside the slide (x or y < 0, or >= the size) is an FP
 * (n_outside); one inside the slide but in the last partial 32-px strip, beyond the level-5
 * mask, is looked up at the nearest mask pixel (n_edge); when the size is unknown, anything
 * beyond the mask counts as outside. *out is filled (froc_slide_free). WV_ENOMEM. */
enum wv_status froc_match(const struct froc_mask *m, int64_t width_px, int64_t height_px,
                          const struct froc_detection *det, size_t n_det,
                          const struct froc_opts *o, struct froc_slide *out);
void froc_slide_free(struct froc_slide *s);

/* ---- curve and score -------------------------------------------------------------------------- */

struct froc_curve {
    size_t n;       /* points, in the official order: ascending threshold, then (0, 0) */
    double *thr;    /* (n) threshold; the end point has NaN */
    double *avg_fp; /* (n) FPs per slide */
    double *sens;   /* (n) */
    double sens_at[FROC_N_RATES];
    double score;   /* mean of sens_at */
    int n_slides;   /* the FP denominator */
    int n_tumors;   /* the sensitivity denominator */
};

/* computeFROC + the score over n slides: thresholds = the distinct values of all FP and TP
 * probabilities without the smallest one; FP(t) = #{fp >= t}, TP(t) = #{tp >= t} (compared in
 * float32 when opts.float32_tp); avgFP = FP / n_slides; sens = TP / Σ n_tumors; then (0, 0).
 * WV_EINVAL when n_slides is 0 or Σ n_tumors is 0 (the FROC is undefined: no lesion to find).
 * *c filled (froc_curve_free). */
enum wv_status froc_compute(const struct froc_slide *const *slides, size_t n_slides,
                            const struct froc_opts *o, enum froc_mode mode, struct froc_curve *c);
void froc_curve_free(struct froc_curve *c);

/* Sensitivity at FP rate `rate` on a curve (official order), np.interp semantics (duplicates in
 * avgFP resolve to the last point of the reversed curve; rates beyond the curve are clamped) or
 * step. */
double froc_sens_at(const struct froc_curve *c, double rate, enum froc_mode mode);

#endif
