/*
 * metrics.h — slide-level ROC analysis for the CAMELYON16 slide task (CAMELYON16_PROTOCOL.md
 * §1.8; user notes in docs/evaluation.md): AUC exactly as sklearn.metrics.roc_auc_score computes
 * it (the Mann–Whitney statistic, ties between a positive and a negative count ½), its DeLong
 * 95 % interval, a seeded stratified bootstrap interval, the ROC curve, the Youden point and
 * sensitivity/specificity at a threshold. Plain double loops; O(n log n).
 *
 * Inputs everywhere: n slides, y[i] in {0, 1} (1 = tumour), s[i] the slide score (finite).
 * Functions that need both classes return WV_EINVAL with "only one class ..." when n_pos or
 * n_neg is 0 (AUC is undefined then, sklearn raises ValueError). No global state; thread-safe.
 */
#ifndef WV_METRICS_H
#define WV_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"

/* Two-sided 95 % normal quantile, Φ⁻¹(0.975). */
#define METRICS_Z95 1.959963984540054

/* AUC with ties ½. WV_EINVAL for one class or a non-finite score. */
enum wv_status metrics_auc(const int *y, const double *s, size_t n, double *auc);

/* DeLong et al. (1988) variance of the AUC via midranks (Sun & Xu 2014): V10 (per positive) and
 * V01 (per negative) structural components, var = S10/n_pos + S01/n_neg with sample variances
 * (denominator n − 1; a class of one slide contributes 0). Interval AUC ± z·sqrt(var), clipped
 * to [0, 1]. */
enum wv_status metrics_auc_delong(const int *y, const double *s, size_t n, double *auc,
                                  double *var, double *lo, double *hi);

/* Stratified bootstrap: n_rep replicates, each drawing n_pos positives and n_neg negatives with
 * replacement (so every replicate has both classes), from a splitmix64/xoshiro256** stream seeded
 * with `seed`; the interval is the 2.5th and 97.5th percentile of the replicate AUCs with
 * numpy.percentile's linear interpolation. n_rep in [1, 10^7]. */
enum wv_status metrics_auc_bootstrap(const int *y, const double *s, size_t n, int n_rep,
                                     uint64_t seed, double *lo, double *hi);

/* ROC curve as sklearn.metrics.roc_curve(drop_intermediate=False): one point per distinct score,
 * descending, preceded by (0, 0) with threshold +inf. fpr/tpr/thr are malloc'ed arrays of *n_pts
 * (caller frees). A point (fpr, tpr) at threshold t counts scores >= t as positive. */
struct metrics_roc {
    size_t n_pts;
    double *fpr, *tpr, *thr;
};
enum wv_status metrics_roc_curve(const int *y, const double *s, size_t n, struct metrics_roc *roc);
void metrics_roc_free(struct metrics_roc *roc);

/* Confusion counts when slides with score >= threshold are called tumour. */
struct metrics_confusion {
    double threshold;
    size_t tp, fp, tn, fn;
    double sensitivity, specificity; /* NaN when the class is empty */
};
void metrics_at_threshold(const int *y, const double *s, size_t n, double threshold,
                          struct metrics_confusion *c);

/* The Youden point: the ROC threshold maximising sensitivity + specificity − 1 (first, i.e.
 * highest, threshold among ties; +inf excluded). Needs both classes. */
enum wv_status metrics_youden(const int *y, const double *s, size_t n,
                              struct metrics_confusion *c);

/* numpy.percentile(v, q) with linear interpolation on a copy of v (n >= 1, q in [0, 100]). */
double metrics_percentile(const double *v, size_t n, double q);

/* Small deterministic PRNG (xoshiro256**, seeded by splitmix64) shared with the FROC bootstrap. */
struct metrics_rng {
    uint64_t s[4];
};
void metrics_rng_seed(struct metrics_rng *r, uint64_t seed);
uint64_t metrics_rng_next(struct metrics_rng *r);
/* Uniform integer in [0, n), n >= 1 (rejection sampling: no modulo bias). */
uint64_t metrics_rng_below(struct metrics_rng *r, uint64_t n);

#endif
