/*
 * test_metrics.c — slide-level metrics (src/metrics.h): the AUC example of
 * CAMELYON16_PROTOCOL.md §1.8 (0.6875, ties ½), its DeLong variance (0.0442708333, from an
 * O(n²) psi-function computation in numpy), the ROC curve as sklearn's roc_curve
 * (drop_intermediate=False), Youden, thresholds, the bootstrap's determinism, one-class errors.
 * Randomised comparison with sklearn: tests/integration/eval_auc_check.py.
 */
#include <math.h>
#include <stdlib.h>

#include "src/metrics.h"
#include "testutil.h"

int main(void)
{
    const int y[8] = {1, 1, 1, 0, 0, 0, 0, 1};
    const double s[8] = {.9, .8, .5, .5, .3, .8, .1, .2};
    double auc = 0, var = 0, lo = 0, hi = 0;
    CHECK(metrics_auc(y, s, 8, &auc) == WV_OK);
    printf("AUC example (§1.8): %.6f (want 0.6875)\n", auc);
    CHECK(auc == 0.6875);
    CHECK(metrics_auc_delong(y, s, 8, &auc, &var, &lo, &hi) == WV_OK);
    CHECK(fabs(var - 0.04427083333333333) < 1e-15);
    CHECK(fabs(lo - (0.6875 - METRICS_Z95 * sqrt(var))) < 1e-15 && hi == 1.0);

    /* ROC: sklearn gives fpr [0,0,.25,.5,.75,.75,1], tpr [0,.25,.5,.75,.75,1,1],
     * thresholds [inf(1.9 in sklearn 1.2), .9, .8, .5, .3, .2, .1] */
    struct metrics_roc roc;
    CHECK(metrics_roc_curve(y, s, 8, &roc) == WV_OK);
    const double wf[] = {0, 0, .25, .5, .75, .75, 1}, wt[] = {0, .25, .5, .75, .75, 1, 1};
    const double wthr[] = {INFINITY, .9, .8, .5, .3, .2, .1};
    CHECK(roc.n_pts == 7);
    for (size_t i = 0; i < 7 && roc.n_pts == 7; i++)
        CHECK(roc.fpr[i] == wf[i] && roc.tpr[i] == wt[i] && roc.thr[i] == wthr[i]);
    metrics_roc_free(&roc);

    struct metrics_confusion c;
    CHECK(metrics_youden(y, s, 8, &c) == WV_OK);
    /* J: .25, .25, .25, 0, .25, 0 → first maximum at threshold 0.9 */
    CHECK(c.threshold == 0.9 && c.tp == 1 && c.fp == 0 && c.sensitivity == 0.25 &&
          c.specificity == 1.0);
    metrics_at_threshold(y, s, 8, 0.5, &c);
    CHECK(c.tp == 3 && c.fp == 2 && c.tn == 2 && c.fn == 1);
    CHECK(c.sensitivity == 0.75 && c.specificity == 0.5);

    /* bootstrap: same seed, same interval; interval brackets the AUC here */
    double l1, h1, l2, h2;
    CHECK(metrics_auc_bootstrap(y, s, 8, 2000, 7, &l1, &h1) == WV_OK);
    CHECK(metrics_auc_bootstrap(y, s, 8, 2000, 7, &l2, &h2) == WV_OK);
    CHECK(l1 == l2 && h1 == h2 && l1 < 0.6875 && h1 > 0.6875 && l1 >= 0 && h1 <= 1);
    printf("bootstrap 95%% CI (2000, seed 7): [%.4f, %.4f]\n", l1, h1);

    /* percentile = numpy.percentile(linear) */
    const double v[5] = {5, 1, 4, 2, 3};
    CHECK(metrics_percentile(v, 5, 50) == 3 && metrics_percentile(v, 5, 2.5) == 1.1);

    /* perfect and inverted separation, all ties */
    const int y2[4] = {0, 0, 1, 1};
    const double p2[4] = {.1, .2, .3, .4}, q2[4] = {.4, .3, .2, .1}, t2[4] = {.5, .5, .5, .5};
    CHECK(metrics_auc(y2, p2, 4, &auc) == WV_OK && auc == 1.0);
    CHECK(metrics_auc(y2, q2, 4, &auc) == WV_OK && auc == 0.0);
    CHECK(metrics_auc(y2, t2, 4, &auc) == WV_OK && auc == 0.5);

    /* one class: an error, not a number */
    const int y1[3] = {1, 1, 1};
    CHECK(metrics_auc(y1, p2, 3, &auc) == WV_EINVAL);
    printf("one class: %s\n", error_msg());
    error_clear();
    const double nanv[4] = {.1, NAN, .3, .4};
    CHECK(metrics_auc(y2, nanv, 4, &auc) == WV_EINVAL);
    error_clear();
    return tu_finish("test_metrics");
}
