/*
 * metrics.c — slide-level ROC analysis (contract: metrics.h; CAMELYON16_PROTOCOL.md §1.8).
 * The AUC is the Mann–Whitney U over midranks, which equals sklearn's trapezoidal roc_auc_score
 * including its treatment of ties (a tied positive/negative pair counts ½).
 */
#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

struct ranked {
    double s;
    size_t i;
};

static int cmp_ranked(const void *a, const void *b)
{
    double p = ((const struct ranked *)a)->s, q = ((const struct ranked *)b)->s;
    return p < q ? -1 : p > q;
}

/* Midranks (1-based, ties averaged) of v[0..n) into r. */
static enum wv_status midranks(const double *v, size_t n, double *r)
{
    struct ranked *t = malloc((n ? n : 1) * sizeof *t);
    if (!t) return error_set(WV_ENOMEM, "out of memory for ranks of %zu scores", n);
    for (size_t i = 0; i < n; i++) {
        t[i].s = v[i];
        t[i].i = i;
    }
    qsort(t, n, sizeof *t, cmp_ranked);
    for (size_t a = 0; a < n;) {
        size_t b = a + 1;
        while (b < n && t[b].s == t[a].s) b++;
        double mid = 0.5 * (double)(a + 1 + b); /* mean of ranks a+1 .. b */
        for (size_t k = a; k < b; k++) r[t[k].i] = mid;
        a = b;
    }
    free(t);
    return WV_OK;
}

static enum wv_status check_input(const int *y, const double *s, size_t n, size_t *np,
                                  size_t *nn)
{
    size_t p = 0, q = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(s[i])) return error_set(WV_EINVAL, "score %zu is not a finite number", i);
        if (y[i] == 1)
            p++;
        else if (y[i] == 0)
            q++;
        else
            return error_set(WV_EINVAL, "label %zu is %d, not 0 or 1", i, y[i]);
    }
    *np = p;
    *nn = q;
    if (!p || !q)
        return error_set(WV_EINVAL, "only one class present (%zu tumour, %zu normal slides): the "
                         "AUC is undefined", p, q);
    return WV_OK;
}

enum wv_status metrics_auc(const int *y, const double *s, size_t n, double *auc)
{
    double var, lo, hi;
    return metrics_auc_delong(y, s, n, auc, &var, &lo, &hi);
}

enum wv_status metrics_auc_delong(const int *y, const double *s, size_t n, double *auc,
                                  double *var, double *lo, double *hi)
{
    size_t np, nn;
    enum wv_status st = check_input(y, s, n, &np, &nn);
    if (st) return st;
    double *all = malloc(n * sizeof *all);       /* midranks among all slides */
    double *xs = malloc(n * sizeof *xs);         /* positives' scores, then negatives' */
    double *within = malloc(n * sizeof *within); /* midranks within the own class */
    if (!all || !xs || !within) {
        st = error_set(WV_ENOMEM, "out of memory for %zu scores", n);
        goto out;
    }
    if ((st = midranks(s, n, all))) goto out;
    size_t a = 0, b = np;
    double *rall = within; /* reuse: ranks reordered as xs */
    double *tmp = malloc(n * sizeof *tmp);
    if (!tmp) {
        st = error_set(WV_ENOMEM, "out of memory for %zu scores", n);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (y[i] == 1) {
            xs[a] = s[i];
            tmp[a++] = all[i];
        } else {
            xs[b] = s[i];
            tmp[b++] = all[i];
        }
    }
    /* within-class midranks */
    if ((st = midranks(xs, np, rall)) || (st = midranks(xs + np, nn, rall + np))) {
        free(tmp);
        goto out;
    }
    double sum_pos = 0;
    for (size_t i = 0; i < np; i++) sum_pos += tmp[i];
    *auc = (sum_pos - 0.5 * (double)np * ((double)np + 1)) / ((double)np * (double)nn);
    /* structural components: V10_i = (R_i − R_i^X)/n_neg, V01_j = 1 − (R_j − R_j^Y)/n_pos */
    double m10 = 0, m01 = 0, s10 = 0, s01 = 0;
    for (size_t i = 0; i < np; i++) m10 += (tmp[i] - rall[i]) / (double)nn;
    m10 /= (double)np;
    for (size_t j = np; j < n; j++) m01 += 1.0 - (tmp[j] - rall[j]) / (double)np;
    m01 /= (double)nn;
    for (size_t i = 0; i < np; i++) {
        double d = (tmp[i] - rall[i]) / (double)nn - m10;
        s10 += d * d;
    }
    for (size_t j = np; j < n; j++) {
        double d = 1.0 - (tmp[j] - rall[j]) / (double)np - m01;
        s01 += d * d;
    }
    s10 = np > 1 ? s10 / (double)(np - 1) : 0;
    s01 = nn > 1 ? s01 / (double)(nn - 1) : 0;
    *var = s10 / (double)np + s01 / (double)nn;
    double half = METRICS_Z95 * sqrt(*var);
    *lo = fmax(0.0, *auc - half);
    *hi = fmin(1.0, *auc + half);
    free(tmp);
out:
    free(all);
    free(xs);
    free(within);
    return st;
}

/* ---- PRNG ----------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void metrics_rng_seed(struct metrics_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t metrics_rng_next(struct metrics_rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

uint64_t metrics_rng_below(struct metrics_rng *r, uint64_t n)
{
    uint64_t limit = UINT64_MAX - UINT64_MAX % n, v;
    do v = metrics_rng_next(r);
    while (v >= limit);
    return v % n;
}

/* ---- bootstrap, percentiles --------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
    double p = *(const double *)a, q = *(const double *)b;
    return p < q ? -1 : p > q;
}

double metrics_percentile(const double *v, size_t n, double q)
{
    double *t = malloc(n * sizeof *t);
    if (!t) return NAN;
    memcpy(t, v, n * sizeof *t);
    qsort(t, n, sizeof *t, cmp_double);
    double pos = q / 100.0 * (double)(n - 1);
    size_t k = (size_t)floor(pos);
    double frac = pos - (double)k, r = t[k];
    if (k + 1 < n) r = t[k] + (t[k + 1] - t[k]) * frac;
    free(t);
    return r;
}

enum wv_status metrics_auc_bootstrap(const int *y, const double *s, size_t n, int n_rep,
                                     uint64_t seed, double *lo, double *hi)
{
    size_t np, nn;
    enum wv_status st = check_input(y, s, n, &np, &nn);
    if (st) return st;
    if (n_rep < 1 || n_rep > 10000000)
        return error_set(WV_EINVAL, "bootstrap replicates %d not in [1, 10^7]", n_rep);
    size_t *ip = malloc(np * sizeof *ip), *in = malloc(nn * sizeof *in);
    int *yb = malloc(n * sizeof *yb);
    double *sb = malloc(n * sizeof *sb), *aucs = malloc((size_t)n_rep * sizeof *aucs);
    if (!ip || !in || !yb || !sb || !aucs) {
        st = error_set(WV_ENOMEM, "out of memory for the bootstrap");
        goto out;
    }
    size_t a = 0, b = 0;
    for (size_t i = 0; i < n; i++) {
        if (y[i])
            ip[a++] = i;
        else
            in[b++] = i;
    }
    struct metrics_rng rng;
    metrics_rng_seed(&rng, seed);
    for (int r = 0; r < n_rep && !st; r++) {
        for (size_t k = 0; k < np; k++) {
            yb[k] = 1;
            sb[k] = s[ip[metrics_rng_below(&rng, np)]];
        }
        for (size_t k = 0; k < nn; k++) {
            yb[np + k] = 0;
            sb[np + k] = s[in[metrics_rng_below(&rng, nn)]];
        }
        st = metrics_auc(yb, sb, n, &aucs[r]);
    }
    if (!st) {
        *lo = metrics_percentile(aucs, (size_t)n_rep, 2.5);
        *hi = metrics_percentile(aucs, (size_t)n_rep, 97.5);
    }
out:
    free(ip);
    free(in);
    free(yb);
    free(sb);
    free(aucs);
    return st;
}

/* ---- ROC curve, operating points ------------------------------------------------------------ */

void metrics_roc_free(struct metrics_roc *roc)
{
    free(roc->fpr);
    free(roc->tpr);
    free(roc->thr);
    memset(roc, 0, sizeof *roc);
}

enum wv_status metrics_roc_curve(const int *y, const double *s, size_t n, struct metrics_roc *roc)
{
    memset(roc, 0, sizeof *roc);
    size_t np, nn;
    enum wv_status st = check_input(y, s, n, &np, &nn);
    if (st) return st;
    struct ranked *t = malloc(n * sizeof *t);
    roc->fpr = malloc((n + 1) * sizeof *roc->fpr);
    roc->tpr = malloc((n + 1) * sizeof *roc->tpr);
    roc->thr = malloc((n + 1) * sizeof *roc->thr);
    if (!t || !roc->fpr || !roc->tpr || !roc->thr) {
        free(t);
        metrics_roc_free(roc);
        return error_set(WV_ENOMEM, "out of memory for the ROC curve");
    }
    for (size_t i = 0; i < n; i++) {
        t[i].s = -s[i]; /* descending */
        t[i].i = i;
    }
    qsort(t, n, sizeof *t, cmp_ranked);
    size_t k = 0, tp = 0, fp = 0;
    roc->fpr[k] = 0;
    roc->tpr[k] = 0;
    roc->thr[k++] = INFINITY;
    for (size_t a = 0; a < n;) {
        size_t b = a;
        while (b < n && t[b].s == t[a].s) {
            if (y[t[b].i])
                tp++;
            else
                fp++;
            b++;
        }
        roc->fpr[k] = (double)fp / (double)nn;
        roc->tpr[k] = (double)tp / (double)np;
        roc->thr[k++] = -t[a].s;
        a = b;
    }
    roc->n_pts = k;
    free(t);
    return WV_OK;
}

void metrics_at_threshold(const int *y, const double *s, size_t n, double threshold,
                          struct metrics_confusion *c)
{
    memset(c, 0, sizeof *c);
    c->threshold = threshold;
    for (size_t i = 0; i < n; i++) {
        int pred = s[i] >= threshold;
        if (y[i])
            pred ? c->tp++ : c->fn++;
        else
            pred ? c->fp++ : c->tn++;
    }
    c->sensitivity = c->tp + c->fn ? (double)c->tp / (double)(c->tp + c->fn) : NAN;
    c->specificity = c->tn + c->fp ? (double)c->tn / (double)(c->tn + c->fp) : NAN;
}

enum wv_status metrics_youden(const int *y, const double *s, size_t n, struct metrics_confusion *c)
{
    struct metrics_roc roc;
    enum wv_status st = metrics_roc_curve(y, s, n, &roc);
    if (st) return st;
    size_t best = 1;
    for (size_t k = 1; k < roc.n_pts; k++)
        if (roc.tpr[k] - roc.fpr[k] > roc.tpr[best] - roc.fpr[best]) best = k;
    metrics_at_threshold(y, s, n, roc.thr[best], c);
    metrics_roc_free(&roc);
    return WV_OK;
}
