/*
 * train.c — the head trainer (train.h; docs/training.md): cohort assembly (labels × feature
 * files × annotations), the split, the losses, AdamW + warm-up/cosine, clipping, validation,
 * early stopping, per-epoch checkpoints (train_ckpt.c's format) and the model file.
 */
#include "train.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <omp.h>

#include "device_select.h"
#include "features.h"
#include "head.h"
#include "head_grad.h"
#include "labels.h"
#include "metrics.h"
#include "model_file.h"
#include "sha256.h"
#include "util.h"
#include "version.h"
#ifdef WV_HAVE_CUDA
#include "cuda/head_cuda.h"
#endif

void openblas_set_num_threads(int n); /* OpenBLAS; the backend does the same */

void train_options_default(struct train_options *o)
{
    memset(o, 0, sizeof *o);
    o->epochs = 30;
    o->lr = 1e-3;
    o->weight_decay = 1e-4;
    o->seed = 1;
    o->val_fraction = 0.2;
    o->d_h = 128;
    o->n_blocks = 2;
    o->d_state = 4;
    o->d_attn = 64;
    o->warmup_fraction = 0.05;
    o->clip_norm = 1.0;
    o->cell_weight = 1.0;
    o->patience = 10;
    o->device = "auto";
    o->cache_mb = 1024;
}

struct tslide {
    char id[256];
    char path[4096]; /* the feature file: features are read per step (feature_cache) */
    int label;
    int val;
    struct features_file ff; /* grid, tissue, n, sha256; ff.feat stays NULL */
    float *cell_y;   /* (n) tumour fraction, NULL when the slide has no cell labels */
    int annotated;   /* cell labels from an annotation file */
};

/* splitmix64 */
static uint64_t rnd_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static void shuffle(int *a, int n, uint64_t *s)
{
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rnd_next(s) % (uint64_t)(i + 1)), t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

static void warnf(const struct train_options *o, const char *fmt, const char *a, const char *b)
{
    (void)o;
    fprintf(stderr, "wsi-vmamba train: warning: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
}

/* <dir>/<id>.<ext> for the first annotation extension that exists, else "" */
static void find_annotation(const char *dir, const char *id, char *out, size_t n)
{
    static const char *const ext[] = {"xml", "geojson", "json"};
    out[0] = 0;
    if (!dir) return;
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++) {
        struct stat sb;
        snprintf(out, n, "%s/%s.%s", dir, id, ext[i]);
        if (!stat(out, &sb) && S_ISREG(sb.st_mode)) return;
    }
    out[0] = 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The cohort: every labelled slide with a feature file. */
static enum wv_status load_cohort(const struct train_options *o, const struct labels *lab,
                                  struct tslide **out, int *n_out, int *D_out)
{
    *out = NULL;
    *n_out = 0;
    DIR *d = opendir(o->features_dir);
    if (!d) return error_set(WV_EIO, "%s: cannot open the features folder", o->features_dir);
    char **names = NULL;
    size_t nn = 0, cap = 0;
    struct dirent *e;
    enum wv_status st = WV_OK;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || l < 4 || strcmp(e->d_name + l - 3, ".h5")) continue;
        if (nn == cap) {
            cap = cap ? 2 * cap : 64;
            char **t = realloc(names, cap * sizeof *t);
            if (!t) {
                st = error_set(WV_ENOMEM, "features list");
                break;
            }
            names = t;
        }
        if (!(names[nn] = strdup(e->d_name))) {
            st = error_set(WV_ENOMEM, "features list");
            break;
        }
        nn++;
    }
    closedir(d);
    if (st) goto done;
    qsort(names, nn, sizeof *names, cmp_str); /* a fixed order whatever the file system's */
    struct tslide *s = wv_calloc(nn ? nn : 1, sizeof *s, "training slides");
    if (!s) {
        st = WV_ENOMEM;
        goto done;
    }
    int n = 0, D = 0;
    size_t n_unlabelled = 0;
    for (size_t i = 0; i < nn && !st; i++) {
        char id[256], path[4096];
        snprintf(id, sizeof id, "%.*s", (int)(strlen(names[i]) - 3), names[i]);
        long k = labels_find(lab, id);
        if (k < 0) {
            n_unlabelled++;
            continue;
        }
        snprintf(path, sizeof path, "%s/%s", o->features_dir, names[i]);
        struct tslide *t = &s[n];
        snprintf(t->id, sizeof t->id, "%s", id);
        snprintf(t->path, sizeof t->path, "%s", path);
        t->label = lab->v[k].label;
        if ((st = features_read_grid(path, &t->ff))) {
            error_prefix("%s", path);
            break;
        }
        if (D == 0) D = t->ff.info.feature_dim;
        if (t->ff.info.feature_dim != D) {
            st = error_set(WV_EFORMAT, "%s: features have %d channels, other slides %d", path,
                           t->ff.info.feature_dim, D);
            features_file_free(&t->ff);
            break;
        }
        n++;
        if (t->ff.n == 0) {
            warnf(o, "%s: no tissue cells; the slide is left out%s", path, "");
            features_file_free(&t->ff);
            n--;
        }
    }
    if (!st) {
        if (n_unlabelled) {
            char num[32];
            snprintf(num, sizeof num, "%zu", n_unlabelled);
            warnf(o, "%s feature file(s) in %s have no label and are left out", num,
                  o->features_dir);
        }
        size_t missing = 0;
        for (size_t i = 0; i < lab->n; i++) {
            int found = 0;
            for (int j = 0; j < n && !found; j++) found = !strcmp(s[j].id, lab->v[i].name);
            if (!found) {
                if (missing < 5)
                    warnf(o, "slide %s is in the labels but has no feature file in %s",
                          lab->v[i].name, o->features_dir);
                missing++;
            }
        }
        if (missing > 5) {
            char num[32];
            snprintf(num, sizeof num, "%zu", missing);
            warnf(o, "%s labelled slides in all have no feature file%s", num, "");
        }
        if (n == 0)
            st = error_set(WV_EINVAL,
                           "empty cohort: no slide has both a label in %s and a feature file in %s",
                           o->labels_path, o->features_dir);
    }
    if (st) {
        for (int j = 0; j < n; j++) features_file_free(&s[j].ff);
        free(s);
        goto done;
    }
    *out = s;
    *n_out = n;
    *D_out = D;
done:
    for (size_t i = 0; i < nn; i++) free(names[i]);
    free(names);
    return st;
}

static void free_cohort(struct tslide *s, int n)
{
    for (int i = 0; i < n; i++) {
        features_file_free(&s[i].ff);
        free(s[i].cell_y);
    }
    free(s);
}

/* Cell labels: annotation fractions for tumour slides with a file, 0 for normal slides. */
static enum wv_status cell_labels(const struct train_options *o, struct tslide *s, int n)
{
    for (int i = 0; i < n; i++) {
        struct tslide *t = &s[i];
        const struct h5store_info *in = &t->ff.info;
        char ap[4096];
        find_annotation(o->annotations_dir, t->id, ap, sizeof ap);
        if (!ap[0] && t->label == 1) continue; /* slide label only */
        t->cell_y = wv_calloc(t->ff.n ? t->ff.n : 1, sizeof *t->cell_y, "cell labels");
        if (!t->cell_y) return WV_ENOMEM;
        if (!ap[0]) continue; /* a normal slide: every cell negative */
        const size_t G = (size_t)in->rows * in->cols;
        float *fr = wv_malloc(G * sizeof *fr, "cell fractions");
        if (!fr) return WV_ENOMEM;
        struct labels_annot_info info;
        enum wv_status st = labels_cell_fractions(ap, in->rows, in->cols, in->cell_size_level0,
                                                  in->slide_width, in->slide_height, 4, fr, &info);
        if (st) {
            free(fr);
            error_prefix("%s", ap);
            return st;
        }
        if (info.n_outside || info.n_partly_outside) {
            char num[64];
            snprintf(num, sizeof num, "%d polygon(s) outside and %d crossing", info.n_outside,
                     info.n_partly_outside);
            warnf(o, "%s: %s the slide's edge (clipped)", ap, num);
        }
        if (t->label == 0 && info.tumour_cells > 0)
            warnf(o, "%s: tumour polygons on a slide labelled Normal in %s; the cells keep "
                     "the annotation",
                  ap, o->labels_path);
        if (t->label == 1 && info.n_positive == 0)
            warnf(o, "%s: no tumour polygon on a slide labelled Tumor in %s; using the slide "
                     "label only",
                  ap, o->labels_path);
        size_t k = 0;
        double tot = 0;
        for (size_t q = 0; q < G; q++)
            if (t->ff.tissue[q]) tot += (t->cell_y[k++] = fr[q]);
        free(fr);
        if (t->label == 1 && tot <= 0) {
            free(t->cell_y);
            t->cell_y = NULL;
            continue;
        }
        t->annotated = 1;
    }
    return WV_OK;
}

/* ---- the optimiser state and the checkpoint ------------------------------------------------- */

#define CKPT_MAGIC 0x54505643564D5657ULL /* "WVMVCVPT" */
#define CKPT_VERSION 1
#define MAX_EPOCHS 100000

struct epoch_metrics {
    double train_loss, train_cell, train_slide, val_loss, val_auc, seconds, lr;
};

struct state {
    uint64_t magic, version, key; /* key: hash of data + options that must match on resume */
    int64_t epoch_done, step, best_epoch, stale;
    double best_auc, best_loss;
    size_t np;
    double *p, *m, *v, *best;
    struct epoch_metrics *hist; /* (epochs) */
};

static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const uint8_t *b = data;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ULL;
    return h;
}

static enum wv_status ckpt_save(const char *path, const struct state *s, int epochs)
{
    size_t hdr = 8 * sizeof(uint64_t) + 2 * sizeof(double);
    size_t len = hdr + 4 * s->np * sizeof(double) + (size_t)epochs * sizeof(struct epoch_metrics);
    uint8_t *b = wv_malloc(len, "checkpoint");
    if (!b) return WV_ENOMEM;
    uint64_t h[8] = {s->magic,           s->version,        s->key,   (uint64_t)s->epoch_done,
                     (uint64_t)s->step,  (uint64_t)s->best_epoch, (uint64_t)s->stale,
                     (uint64_t)s->np};
    size_t off = 0;
    memcpy(b, h, sizeof h), off += sizeof h;
    memcpy(b + off, &s->best_auc, 8), off += 8;
    memcpy(b + off, &s->best_loss, 8), off += 8;
    const double *arr[] = {s->p, s->m, s->v, s->best};
    for (int i = 0; i < 4; i++) memcpy(b + off, arr[i], s->np * 8), off += s->np * 8;
    memcpy(b + off, s->hist, (size_t)epochs * sizeof *s->hist);
    enum wv_status st = util_write_file_atomic(path, b, len);
    free(b);
    return st;
}

static enum wv_status ckpt_load(const char *path, struct state *s, int epochs)
{
    uint8_t *b;
    size_t len;
    enum wv_status st = util_read_file(path, (size_t)1 << 34, &b, &len);
    if (st) return st;
    size_t hdr = 8 * sizeof(uint64_t) + 2 * sizeof(double);
    size_t want = hdr + 4 * s->np * sizeof(double) + (size_t)epochs * sizeof(struct epoch_metrics);
    uint64_t h[8];
    if (len != want) {
        free(b);
        return error_set(WV_EFORMAT, "%s: %zu bytes, expected %zu for this run's head and "
                                     "--epochs (resume with the same options)",
                         path, len, want);
    }
    memcpy(h, b, sizeof h);
    if (h[0] != CKPT_MAGIC || h[1] != CKPT_VERSION || h[2] != s->key || h[7] != s->np) {
        free(b);
        return error_set(WV_EFORMAT, "%s: not a checkpoint of this run (different data, labels "
                                     "or options)",
                         path);
    }
    s->epoch_done = (int64_t)h[3], s->step = (int64_t)h[4], s->best_epoch = (int64_t)h[5];
    s->stale = (int64_t)h[6];
    size_t off = sizeof h;
    memcpy(&s->best_auc, b + off, 8), off += 8;
    memcpy(&s->best_loss, b + off, 8), off += 8;
    double *arr[] = {s->p, s->m, s->v, s->best};
    for (int i = 0; i < 4; i++) memcpy(arr[i], b + off, s->np * 8), off += s->np * 8;
    memcpy(s->hist, b + off, (size_t)epochs * sizeof *s->hist);
    free(b);
    return WV_OK;
}

/* ---- the feature cache ---------------------------------------------------------------------- */

/* Features are read from each slide's .h5 when a step needs them and kept in a least-recently-
 * used cache of at most `budget` bytes (--cache-mb); the slide being used is never evicted, so
 * memory is ≤ budget + one slide's features. Values are the file's, whatever the budget: results
 * do not depend on it. */
struct fcache {
    size_t budget, used;
    float **feat;     /* (n_slides) or NULL */
    uint64_t *last;   /* last use tick */
    uint64_t tick;
    size_t loads;     /* file reads (statistics) */
};

static enum wv_status fcache_init(struct fcache *c, int n, size_t budget)
{
    memset(c, 0, sizeof *c);
    c->budget = budget;
    c->feat = wv_calloc((size_t)(n ? n : 1), sizeof *c->feat, "feature cache");
    c->last = wv_calloc((size_t)(n ? n : 1), sizeof *c->last, "feature cache");
    return c->feat && c->last ? WV_OK : WV_ENOMEM;
}

static void fcache_free(struct fcache *c, int n)
{
    if (c->feat)
        for (int i = 0; i < n; i++) free(c->feat[i]);
    free(c->feat);
    free(c->last);
    memset(c, 0, sizeof *c);
}

static size_t slide_bytes(const struct tslide *t)
{
    return t->ff.n * (size_t)t->ff.info.feature_dim * sizeof(float);
}

/* The features of slide i (valid until the next fcache_get). */
static enum wv_status fcache_get(struct fcache *c, struct tslide *s, int n, int i,
                                 const float **out)
{
    c->last[i] = ++c->tick;
    if (!c->feat[i]) {
        const size_t b = slide_bytes(&s[i]);
        /* evict least recently used slides (never i) until i fits, or none is left */
        while (c->used + b > c->budget) {
            int v = -1;
            for (int j = 0; j < n; j++)
                if (j != i && c->feat[j] && (v < 0 || c->last[j] < c->last[v])) v = j;
            if (v < 0) break;
            free(c->feat[v]);
            c->feat[v] = NULL;
            c->used -= slide_bytes(&s[v]);
        }
        float *f = wv_malloc(b ? b : 1, "slide features");
        if (!f) return WV_ENOMEM;
        enum wv_status st = features_read_feat(s[i].path, s[i].ff.n, s[i].ff.info.feature_dim, f);
        if (st) {
            free(f);
            error_prefix("%s", s[i].path);
            return st;
        }
        c->feat[i] = f;
        c->used += b;
        c->loads++;
    }
    *out = c->feat[i];
    return WV_OK;
}

/* ---- one slide: loss and gradient --------------------------------------------------------- */

struct weights_cls {
    double cell_pos, cell_neg, slide_pos, slide_neg;
};

/* The gradient engine: the float64 CPU backward, or the CUDA one (--device). */
struct engine {
    struct head_grad *cpu;
    struct head_grad_cuda *gpu; /* non-NULL: use the GPU */
};

static enum wv_status eng_forward(struct engine *e, const double *p, const struct tslide *t,
                                  const float *feat, int chunk, double *lg, double *sl)
{
#ifdef WV_HAVE_CUDA
    if (e->gpu)
        return head_grad_cuda_forward(e->gpu, p, t->ff.info.rows, t->ff.info.cols, t->ff.tissue,
                                      feat, chunk, lg, sl);
#endif
    return head_grad_forward(e->cpu, p, t->ff.info.rows, t->ff.info.cols, t->ff.tissue, feat,
                             chunk, lg, sl);
}

static enum wv_status eng_backward(struct engine *e, const double *dl, double ds, double *grad)
{
#ifdef WV_HAVE_CUDA
    if (e->gpu) return head_grad_cuda_backward(e->gpu, dl, ds, grad);
#endif
    return head_grad_backward(e->cpu, dl, ds, grad);
}

static enum wv_status slide_step(struct engine *eng, const double *p, const struct tslide *t,
                                 const float *feat, const struct train_options *o,
                                 const struct weights_cls *w, double *grad, double *l_cell,
                                 double *l_slide, double *prob)
{
    const size_t n = t->ff.n;
    double *lg = wv_malloc((n ? n : 1) * sizeof *lg, "logits");
    double *dl = grad ? wv_calloc(n ? n : 1, sizeof *dl, "logit gradients") : NULL;
    if (!lg || (grad && !dl)) {
        free(lg);
        free(dl);
        return WV_ENOMEM;
    }
    double sl;
    enum wv_status st = eng_forward(eng, p, t, feat, o->chunk, lg, &sl);
    if (st) goto done;
    double lc = 0, ds;
    if (t->cell_y) {
        for (size_t i = 0; i < n; i++) {
            const double y = t->cell_y[i], wi = y * w->cell_pos + (1 - y) * w->cell_neg;
            double d;
            lc += wi * head_grad_bce(lg[i], y, &d);
            if (dl) dl[i] = o->cell_weight * wi * d / (double)n;
        }
        lc /= (double)n;
    }
    const double ws = t->label ? w->slide_pos : w->slide_neg;
    double ls = ws * head_grad_bce(sl, t->label, &ds);
    *l_cell = lc;
    *l_slide = ls;
    *prob = 1.0 / (1.0 + exp(-sl));
    if (grad) st = eng_backward(eng, dl, ws * ds, grad);
done:
    free(lg);
    free(dl);
    return st;
}

/* ---- the model file ------------------------------------------------------------------------- */

static char *training_json(const struct train_options *o, const struct tslide *s, int n,
                           const struct labels *lab, const struct state *st, int epochs_run,
                           int threads, const char *backbone_sha)
{
    cJSON *r = cJSON_CreateObject(), *a = cJSON_AddArrayToObject(r, "slides");
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "id", s[i].id);
        cJSON_AddStringToObject(e, "features_sha256", s[i].ff.sha256);
        cJSON_AddStringToObject(e, "label", s[i].label ? "Tumor" : "Normal");
        cJSON_AddStringToObject(e, "split", s[i].val ? "val" : "train");
        cJSON_AddNumberToObject(e, "cells", (double)s[i].ff.n);
        cJSON_AddStringToObject(e, "cell_labels",
                                s[i].annotated ? "annotation" : s[i].cell_y ? "all negative" : "none");
        cJSON_AddItemToArray(a, e);
    }
    cJSON_AddStringToObject(r, "labels_file", o->labels_path);
    cJSON_AddStringToObject(r, "labels_sha256", lab->sha256);
    cJSON_AddStringToObject(r, "features_dir", o->features_dir);
    cJSON_AddStringToObject(r, "annotations_dir", o->annotations_dir ? o->annotations_dir : "");
    cJSON_AddStringToObject(r, "backbone_sha256", backbone_sha);
    cJSON *h = cJSON_AddObjectToObject(r, "hyperparameters");
    cJSON_AddNumberToObject(h, "epochs", o->epochs);
    cJSON_AddNumberToObject(h, "lr", o->lr);
    cJSON_AddNumberToObject(h, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(h, "val_fraction", o->val_fraction);
    cJSON_AddNumberToObject(h, "warmup_fraction", o->warmup_fraction);
    cJSON_AddNumberToObject(h, "clip_norm", o->clip_norm);
    cJSON_AddNumberToObject(h, "cell_weight", o->cell_weight);
    cJSON_AddNumberToObject(h, "patience", o->patience);
    cJSON_AddNumberToObject(h, "chunk", o->chunk);
    cJSON_AddStringToObject(h, "optimizer", "AdamW(0.9, 0.999, 1e-8)");
    cJSON_AddStringToObject(h, "schedule", "linear warm-up, cosine to 0");
    cJSON_AddNumberToObject(r, "seed", (double)o->seed);
    cJSON_AddNumberToObject(r, "threads", threads);
    cJSON_AddNumberToObject(r, "epochs_run", epochs_run);
    cJSON_AddNumberToObject(r, "best_epoch", (double)st->best_epoch);
    cJSON *m = cJSON_AddArrayToObject(r, "metrics");
    for (int e = 0; e < epochs_run; e++) {
        const struct epoch_metrics *x = &st->hist[e];
        cJSON *q = cJSON_CreateObject();
        cJSON_AddNumberToObject(q, "epoch", e + 1);
        cJSON_AddNumberToObject(q, "lr", x->lr);
        cJSON_AddNumberToObject(q, "train_loss", x->train_loss);
        cJSON_AddNumberToObject(q, "train_cell_loss", x->train_cell);
        cJSON_AddNumberToObject(q, "train_slide_loss", x->train_slide);
        cJSON_AddNumberToObject(q, "val_loss", x->val_loss);
        if (isfinite(x->val_auc)) cJSON_AddNumberToObject(q, "val_auc", x->val_auc);
        else cJSON_AddNullToObject(q, "val_auc");
        cJSON_AddNumberToObject(q, "seconds", x->seconds);
        cJSON_AddItemToArray(m, q);
    }
    char *txt = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return txt;
}

static struct weights *strip_prefix(const struct weights *w, const char *prefix)
{
    struct weights *v = calloc(1, sizeof *v);
    size_t pl = strlen(prefix);
    if (!v || !(v->t = calloc((size_t)(w->n ? w->n : 1), sizeof *v->t))) {
        free(v);
        return NULL;
    }
    for (int i = 0; i < w->n; i++)
        if (!strncmp(w->t[i].name, prefix, pl)) {
            v->t[v->n] = w->t[i];
            v->t[v->n++].name = w->t[i].name + pl;
        }
    memcpy(v->sha256, w->sha256, sizeof v->sha256);
    return v;
}

/* ---- the optimiser ------------------------------------------------------------------------ */

double train_clip_scale(const double *grad, size_t np, double clip_norm, double *norm)
{
    double gn = 0;
    for (size_t i = 0; i < np; i++) gn += grad[i] * grad[i];
    gn = sqrt(gn);
    if (norm) *norm = gn;
    return (clip_norm > 0 && gn > clip_norm) ? clip_norm / gn : 1.0;
}

void train_adamw_step(double *p, double *m, double *v, const double *grad, double grad_scale,
                      const uint8_t *decay, size_t np, double lr, double weight_decay,
                      int64_t step)
{
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    const double c1 = 1 - pow(b1, (double)step), c2 = 1 - pow(b2, (double)step);
    for (size_t i = 0; i < np; i++) {
        const double g = grad[i] * grad_scale;
        m[i] = b1 * m[i] + (1 - b1) * g;
        v[i] = b2 * v[i] + (1 - b2) * g * g;
        if (decay && decay[i]) p[i] -= lr * weight_decay * p[i];
        p[i] -= lr * (m[i] / c1) / (sqrt(v[i] / c2) + eps);
    }
}

/* ---- the run -------------------------------------------------------------------------------- */

static double lr_at(const struct train_options *o, int64_t step, int64_t total)
{
    int64_t warm = (int64_t)ceil(o->warmup_fraction * (double)total);
    if (warm < 1) warm = 1;
    if (step < warm) return o->lr * (double)(step + 1) / (double)warm;
    double t = (double)(step - warm) / (double)(total - warm > 0 ? total - warm : 1);
    return o->lr * 0.5 * (1 + cos(M_PI * (t < 1 ? t : 1)));
}

enum wv_status train_run(const struct train_options *o, struct train_result *res)
{
    memset(res, 0, sizeof *res);
    res->best_val_auc = NAN;
    const double t_start = util_now();
    struct labels *lab = NULL;
    struct tslide *s = NULL;
    int n = 0, D = 0;
    struct model *bb = NULL;
    struct weights *view = NULL;
    struct head *head = NULL;
    struct engine eng = {NULL, NULL};
    struct fcache fc;
    memset(&fc, 0, sizeof fc);
    struct device_choice dc;
    struct state S;
    memset(&S, 0, sizeof S);
    double *grad = NULL;
    int *order = NULL;
    char *tj = NULL;
    enum wv_status st;
    if (!o->backbone_model)
        return error_set(WV_EINVAL, "--backbone-model is required: the model file needs the "
                                    "backbone the features were made with");
    if (o->epochs < 1 || o->epochs > MAX_EPOCHS)
        return error_set(WV_EINVAL, "--epochs %d out of range 1..%d", o->epochs, MAX_EPOCHS);
    int threads = o->threads > 0 ? o->threads : omp_get_num_procs();
    omp_set_num_threads(threads);
    openblas_set_num_threads(1); /* GEMMs single-threaded inside: same results for any count */
    if ((st = device_select(o->device ? o->device : "auto", &dc))) goto done;
    if ((st = labels_read_csv(o->labels_path, &lab))) {
        error_prefix("%s", o->labels_path);
        goto done;
    }
    if (lab->n_warnings)
        warnf(o, "%s: duplicate rows (same class) ignored%s", o->labels_path, "");
    if ((st = model_file_load(o->backbone_model, &bb))) {
        error_prefix("%s", o->backbone_model);
        goto done;
    }
    if ((st = load_cohort(o, lab, &s, &n, &D))) goto done;
    if (D != bb->backbone_cfg.dims[3]) {
        st = error_set(WV_EINVAL, "%s: backbone features have %d channels, the feature files %d",
                       o->backbone_model, bb->backbone_cfg.dims[3], D);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        if (fabs(s[i].ff.info.target_mpp - bb->meta.target_mpp) > 1e-6) {
            st = error_set(WV_EINVAL, "%s: features at %g µm/px, the model's resolution is %g",
                           s[i].id, s[i].ff.info.target_mpp, bb->meta.target_mpp);
            goto done;
        }
        if (strcmp(s[i].ff.info.model_sha256, bb->sha256) &&
            strcmp(s[i].ff.info.model_sha256, "") && i == 0)
            warnf(o, "%s: features were made with another backbone file than %s", s[i].id,
                  o->backbone_model);
    }
    if ((st = cell_labels(o, s, n))) goto done;
    int npos = 0, nneg = 0;
    for (int i = 0; i < n; i++) {
        if (s[i].label) npos++;
        else nneg++;
    }
    if (!npos || !nneg) {
        st = error_set(WV_EINVAL,
                       "one class only: %d Tumor and %d Normal slides with features; training "
                       "needs both",
                       npos, nneg);
        goto done;
    }
    /* stratified split */
    {
        uint64_t rs = o->seed ^ 0x5EED5EEDULL;
        for (int cls = 0; cls < 2; cls++) {
            int *idx = wv_malloc((size_t)n * sizeof *idx, "split"), m = 0;
            if (!idx) {
                st = WV_ENOMEM;
                goto done;
            }
            for (int i = 0; i < n; i++)
                if (s[i].label == cls) idx[m++] = i;
            shuffle(idx, m, &rs);
            int nv = (int)floor(o->val_fraction * m + 0.5);
            if (o->val_fraction > 0 && nv == 0 && m >= 2) nv = 1;
            if (nv >= m) nv = m - 1;
            for (int k = 0; k < nv; k++) s[idx[k]].val = 1;
            free(idx);
        }
    }
    int ntr = 0, nval = 0, vpos = 0;
    for (int i = 0; i < n; i++) {
        if (s[i].val) nval++, vpos += s[i].label;
        else ntr++;
    }
    if (nval && (vpos == 0 || vpos == nval))
        warnf(o, "the validation split has one class only; early stopping uses the validation "
                 "loss%s%s",
              "", "");
    if (!nval)
        warnf(o, "no validation split (--val-fraction 0 or too few slides): no early "
                 "stopping, the last epoch is kept%s%s",
              "", "");
    res->n_train = ntr;
    res->n_val = nval;
    /* class weights from the training split */
    struct weights_cls wc;
    {
        double cp = 0, cn = 0;
        int sp = 0;
        for (int i = 0; i < n; i++) {
            if (s[i].val) continue;
            sp += s[i].label;
            if (s[i].cell_y)
                for (size_t k = 0; k < s[i].ff.n; k++) cp += s[i].cell_y[k], cn += 1 - s[i].cell_y[k];
        }
        const double ct = cp + cn, cap = 50; /* weight ratio capped: a few tumour cells among
                                                millions must not dominate every step */
        wc.cell_pos = cp > 0 ? fmin(ct / (2 * cp), cap) : 1;
        wc.cell_neg = cn > 0 ? fmin(ct / (2 * cn), cap) : 1;
        wc.slide_pos = sp ? (double)ntr / (2.0 * sp) : 1;
        wc.slide_neg = ntr - sp ? (double)ntr / (2.0 * (ntr - sp)) : 1;
    }
    /* head and optimiser state */
    struct head_config hc;
    head_config_default(&hc, D);
    hc.d_h = o->d_h;
    hc.n_blocks = o->n_blocks;
    head_config_derive(&hc);
    hc.d_state = o->d_state;
    hc.d_attn = o->d_attn;
    if ((st = head_create_random(&hc, o->seed, &head)) || (st = head_grad_create(head, &eng.cpu)))
        goto done;
#ifdef WV_HAVE_CUDA
    if (dc.device == WV_DEVICE_CUDA && (st = head_grad_cuda_create(head, dc.index, &eng.gpu)))
        goto done;
#endif
    if ((st = fcache_init(&fc, n, (size_t)o->cache_mb << 20))) goto done;
    size_t np;
    float *pf = head_params(head, &np);
    S.np = np;
    S.p = wv_malloc(np * sizeof *S.p, "parameters");
    S.m = wv_calloc(np, sizeof *S.m, "adam m");
    S.v = wv_calloc(np, sizeof *S.v, "adam v");
    S.best = wv_malloc(np * sizeof *S.best, "best parameters");
    S.hist = wv_calloc((size_t)o->epochs, sizeof *S.hist, "metrics");
    grad = wv_malloc(np * sizeof *grad, "gradient");
    order = wv_malloc((size_t)n * sizeof *order, "order");
    uint8_t *decay = wv_calloc(np, 1, "decay mask");
    if (!S.p || !S.m || !S.v || !S.best || !S.hist || !grad || !order || !decay) {
        free(decay);
        st = WV_ENOMEM;
        goto done;
    }
    {
        int nt;
        const struct weight_tensor *t = head_tensors(head, &nt);
        for (int i = 0; i < nt; i++)
            if (t[i].ndim >= 2 && !strstr(t[i].name, "A_logs"))
                memset(decay + (t[i].data - pf), 1, (size_t)t[i].numel);
    }
    for (size_t i = 0; i < np; i++) S.best[i] = S.p[i] = pf[i];
    S.magic = CKPT_MAGIC;
    S.version = CKPT_VERSION;
    S.best_auc = -1;
    S.best_loss = INFINITY;
    {
        uint64_t k = 0xCBF29CE484222325ULL;
        for (int i = 0; i < n; i++) {
            k = fnv(k, s[i].id, strlen(s[i].id) + 1);
            k = fnv(k, s[i].ff.sha256, 64);
            k = fnv(k, &s[i].label, sizeof s[i].label);
        }
        k = fnv(k, lab->sha256, 64);
        double hp[] = {o->lr, o->weight_decay, o->val_fraction, o->warmup_fraction, o->clip_norm,
                       o->cell_weight, (double)o->seed, (double)o->patience, (double)threads,
                       (double)o->chunk, (double)dc.device};
        k = fnv(k, hp, sizeof hp);
        k = fnv(k, &hc, sizeof hc);
        S.key = k;
    }
    char ckpt[4200];
    snprintf(ckpt, sizeof ckpt, "%s.ckpt", o->out_path);
    if (o->resume) {
        struct stat sb;
        if (stat(ckpt, &sb)) {
            warnf(o, "--resume: no checkpoint %s; starting from epoch 1%s", ckpt, "");
        } else {
            if ((st = ckpt_load(ckpt, &S, o->epochs))) {
                free(decay);
                goto done;
            }
            if (!o->quiet)
                fprintf(stderr, "resuming after epoch %lld of %d from %s\n",
                        (long long)S.epoch_done, o->epochs, ckpt);
        }
    }
    if (!o->quiet)
        fprintf(stderr,
                "training the head (D %d, d_h %d, %d blocks, %zu parameters) on %d slides "
                "(%d train, %d validation), %d threads, device %s, feature cache %zu MiB\n",
                D, hc.d_h, hc.n_blocks, np, n, ntr, nval, threads, dc.desc, o->cache_mb);
    const int tty = isatty(2) && !o->quiet;
    const int64_t total = (int64_t)o->epochs * ntr;
    /* a checkpoint written by the epoch that triggered early stopping (killed before the model
     * file was written) resumes straight to the model file */
    int stopped = o->patience > 0 && nval && S.stale >= o->patience;
    int e;
    for (e = (int)S.epoch_done; e < o->epochs && !stopped; e++) {
        const double t0 = util_now();
        /* the epoch's order: seeded by (seed, epoch), so a resumed run takes the same one */
        uint64_t rs = o->seed * 0x9E3779B97F4A7C15ULL + (uint64_t)e + 1;
        int m = 0;
        for (int i = 0; i < n; i++)
            if (!s[i].val) order[m++] = i;
        shuffle(order, m, &rs);
        double sum_c = 0, sum_s = 0, lr = 0;
        for (int k = 0; k < m; k++) {
            const struct tslide *t = &s[order[k]];
            memset(grad, 0, np * sizeof *grad);
            double lc, ls, pr;
            const float *feat;
            if ((st = fcache_get(&fc, s, n, order[k], &feat)) ||
                (st = slide_step(&eng, S.p, t, feat, o, &wc, grad, &lc, &ls, &pr))) {
                free(decay);
                goto done;
            }
            sum_c += lc, sum_s += ls;
            double gn;
            const double sc = train_clip_scale(grad, np, o->clip_norm, &gn);
            if (!isfinite(gn)) {
                st = error_set(WV_EINVAL, "slide %s: non-finite gradient at epoch %d; lower --lr",
                               t->id, e + 1);
                free(decay);
                goto done;
            }
            lr = lr_at(o, S.step, total);
            S.step++;
            train_adamw_step(S.p, S.m, S.v, grad, sc, decay, np, lr, o->weight_decay, S.step);
            if (tty)
                fprintf(stderr, "\r  epoch %d/%d  slide %d/%d  loss %.4f   ", e + 1, o->epochs,
                        k + 1, m, (sum_c * o->cell_weight + sum_s) / (k + 1));
        }
        if (tty) fprintf(stderr, "\r%60s\r", "");
        /* validation */
        double vl = 0, auc = NAN;
        if (nval) {
            int *y = wv_malloc((size_t)nval * sizeof *y, "validation");
            double *sc = wv_malloc((size_t)nval * sizeof *sc, "validation");
            if (!y || !sc) {
                free(y), free(sc), free(decay);
                st = WV_ENOMEM;
                goto done;
            }
            int q = 0;
            for (int i = 0; i < n; i++) {
                if (!s[i].val) continue;
                double lc, ls, pr;
                const float *feat;
                if ((st = fcache_get(&fc, s, n, i, &feat)) ||
                    (st = slide_step(&eng, S.p, &s[i], feat, o, &wc, NULL, &lc, &ls, &pr))) {
                    free(y), free(sc), free(decay);
                    goto done;
                }
                vl += o->cell_weight * lc + ls;
                y[q] = s[i].label;
                sc[q++] = pr;
            }
            vl /= nval;
            if (vpos > 0 && vpos < nval && metrics_auc(y, sc, (size_t)nval, &auc)) {
                error_clear();
                auc = NAN;
            }
            free(y);
            free(sc);
        }
        struct epoch_metrics *em = &S.hist[e];
        em->train_cell = m ? sum_c / m : 0;
        em->train_slide = m ? sum_s / m : 0;
        em->train_loss = o->cell_weight * em->train_cell + em->train_slide;
        em->val_loss = vl;
        em->val_auc = auc;
        em->lr = lr;
        em->seconds = util_now() - t0;
        int better;
        if (!nval) better = 1;
        else if (isfinite(auc))
            better = auc > S.best_auc || (auc == S.best_auc && vl < S.best_loss);
        else
            better = vl < S.best_loss;
        if (better) {
            S.best_auc = isfinite(auc) ? auc : S.best_auc;
            S.best_loss = vl;
            S.best_epoch = e + 1;
            S.stale = 0;
            memcpy(S.best, S.p, np * sizeof *S.p);
        } else {
            S.stale++;
        }
        S.epoch_done = e + 1;
        if (!o->quiet) {
            char a[32];
            if (isfinite(auc)) snprintf(a, sizeof a, "%.4f", auc);
            else snprintf(a, sizeof a, "n/a");
            fprintf(stderr,
                    "epoch %3d/%d  loss %.4f (cell %.4f, slide %.4f)  val loss %.4f  val AUC %s  "
                    "lr %.2e  %.1f s%s\n",
                    e + 1, o->epochs, em->train_loss, em->train_cell, em->train_slide, vl, a, lr,
                    em->seconds, better ? "  *" : "");
        }
        if (o->patience > 0 && nval && S.stale >= o->patience) stopped = 1;
        if ((st = ckpt_save(ckpt, &S, o->epochs))) {
            error_prefix("%s", ckpt);
            free(decay);
            goto done;
        }
    }
    free(decay);
    const int epochs_run = (int)S.epoch_done;
    if (stopped && !o->quiet)
        fprintf(stderr, "early stop: no better validation AUC for %d epochs; keeping epoch %lld\n",
                o->patience, (long long)S.best_epoch);
    /* the model file */
    for (size_t i = 0; i < np; i++) pf[i] = (float)S.best[i];
    if (!(view = strip_prefix(bb->w, MODEL_BACKBONE_PREFIX))) {
        st = error_set(WV_ENOMEM, "backbone view");
        goto done;
    }
    tj = training_json(o, s, n, lab, &S, epochs_run, threads, bb->sha256);
    struct model_meta meta = bb->meta;
    meta.trained = 1;
    char note[] = "head trained with wsi-vmamba train (see the training metadata)";
    meta.note = note;
    meta.training_json = tj;
    char *prov = model_provenance_json(o->backbone_model, bb->sha256, NULL, o->seed);
    meta.provenance_json = prov;
    if (!tj || !prov) st = error_set(WV_ENOMEM, "training metadata");
    else if ((st = model_file_save(o->out_path, view, head, &meta)))
        error_prefix("%s", o->out_path);
    free(prov);
    if (!st) unlink(ckpt);
    res->epochs_run = epochs_run;
    res->best_epoch = (int)S.best_epoch;
    res->best_val_auc = S.best_auc >= 0 ? S.best_auc : NAN;
    res->seconds = util_now() - t_start;
done:
    if (view) {
        free(view->t);
        free(view);
    }
    free(tj);
    free(grad);
    free(order);
    free(S.p), free(S.m), free(S.v), free(S.best), free(S.hist);
    head_grad_free(eng.cpu);
#ifdef WV_HAVE_CUDA
    head_grad_cuda_free(eng.gpu);
#endif
    fcache_free(&fc, n);
    head_free(head);
    model_free(bb);
    if (s) free_cohort(s, n);
    labels_free(lab);
    return st;
}
