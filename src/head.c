/*
 * head.c — the slide context head (head.h, docs/head.md): parameter layout and init, the
 * streaming run (per-cell input projection as regions arrive), the SS2D-style blocks whose four
 * scans run over the tissue cells chunk by chunk through scan_cpu with the carried state, and
 * the cell / slide classifiers. Plain fp32 loops; the only BLAS-free GEMMs are per-row loops whose
 * summation order does not depend on how many rows are processed together, which is what makes
 * chunked == unchunked bit-identical.
 */
#include "head.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <omp.h>

#include "scan.h"
#include "util.h"

/* ---- configuration ---------------------------------------------------------------------- */

void head_config_default(struct head_config *cfg, int in_dim)
{
    cfg->in_dim = in_dim;
    cfg->d_h = 128;
    cfg->n_blocks = 2;
    cfg->d_state = 4;
    cfg->d_attn = 64;
    head_config_derive(cfg);
}

void head_config_derive(struct head_config *cfg)
{
    cfg->d_inner = cfg->d_h;
    cfg->dt_rank = (cfg->d_h + 15) / 16;
}

enum wv_status head_config_check(const struct head_config *c)
{
    struct {
        const char *name;
        int v, lo, hi;
    } f[] = {{"in_dim", c->in_dim, 1, 65536},   {"d_h", c->d_h, 1, 4096},
             {"n_blocks", c->n_blocks, 0, HEAD_MAX_BLOCKS}, {"d_inner", c->d_inner, 1, 4096},
             {"d_state", c->d_state, 1, 64},    {"dt_rank", c->dt_rank, 1, 4096},
             {"d_attn", c->d_attn, 1, 4096}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].v < f[i].lo || f[i].v > f[i].hi)
            return error_set(WV_EINVAL, "head config: %s = %d, expected %d..%d", f[i].name,
                             f[i].v, f[i].lo, f[i].hi);
    return WV_OK;
}

static const char *const cfg_keys[] = {"in_dim",  "d_h",     "n_blocks", "d_inner",
                                       "d_state", "dt_rank", "d_attn"};

static int *cfg_field(struct head_config *c, int i)
{
    int *p[] = {&c->in_dim, &c->d_h, &c->n_blocks, &c->d_inner, &c->d_state, &c->dt_rank,
                &c->d_attn};
    return p[i];
}

char *head_config_json(const struct head_config *cfg)
{
    struct head_config c = *cfg;
    cJSON *o = cJSON_CreateObject();
    char *txt = NULL;
    if (o) {
        for (int i = 0; i < 7; i++) cJSON_AddNumberToObject(o, cfg_keys[i], *cfg_field(&c, i));
        txt = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
    }
    if (!txt) error_set(WV_ENOMEM, "head config json");
    return txt;
}

enum wv_status head_config_parse(const char *json, struct head_config *cfg)
{
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return error_set(WV_EFORMAT, "head_config: not a JSON object");
    }
    struct head_config c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < 7; i++) {
        cJSON *e = cJSON_GetObjectItemCaseSensitive(o, cfg_keys[i]);
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) ||
            fabs(e->valuedouble) > 1e9) {
            cJSON_Delete(o);
            return error_set(WV_EFORMAT, "head_config: \"%s\" %s", cfg_keys[i],
                             e ? "is not an integer" : "is missing");
        }
        *cfg_field(&c, i) = (int)e->valuedouble;
    }
    cJSON_Delete(o);
    enum wv_status st = head_config_check(&c);
    if (st) return error_set(WV_EFORMAT, "%s", error_msg());
    *cfg = c;
    return WV_OK;
}

/* ---- parameters --------------------------------------------------------------------------- */

struct head_block {
    float *norm_w, *norm_b;   /* (Dh) */
    float *in_proj;           /* (Dn, Dh) */
    float *conv;              /* (Dn, 1, 3, 3) */
    float *x_proj;            /* (K, R+2N, Dn) */
    float *dt_w;              /* (K, Dn, R) */
    float *dt_b;              /* (K, Dn) */
    float *A_logs;            /* (K·Dn, N) */
    float *Ds;                /* (K·Dn) */
    float *out_norm_w, *out_norm_b; /* (Dn) */
    float *out_proj;          /* (Dh, Dn) */
};

struct head {
    struct head_config cfg;
    int n_t;
    struct weight_tensor *t; /* names owned; data point into params */
    float *params;
    size_t n_params;
    float *in_norm_w, *in_norm_b; /* (D) */
    float *in_proj_w, *in_proj_b; /* (Dh, D), (Dh) */
    struct head_block blk[HEAD_MAX_BLOCKS];
    float *norm_w, *norm_b;       /* (Dh) final LayerNorm */
    float *cls_w, *cls_b;         /* (1, Dh), (1) */
    float *attV_w, *attV_b;       /* (Da, Dh), (Da) */
    float *attU_w, *attU_b;       /* (Da, Dh), (Da) */
    float *attw_w, *attw_b;       /* (1, Da), (1) */
    float *slide_w, *slide_b;     /* (1, Dh+1), (1) */
};

enum init_kind { I_ONE, I_ZERO, I_NORMAL, I_UNIF, I_ALOG, I_DTBIAS };

struct spec {
    char name[64];
    int ndim;
    int64_t shape[4];
    enum init_kind init;
    double scale;
    float **slot;
};

/* The fixed tensor list, in storage order. Returns the count; fills sp when not NULL. */
static int layout(struct head *h, struct spec *sp)
{
    const struct head_config *c = &h->cfg;
    const int D = c->in_dim, Dh = c->d_h, Dn = c->d_inner, N = c->d_state, R = c->dt_rank,
              Da = c->d_attn, P = R + 2 * N;
    int n = 0;
#define T(slot_, init_, scale_, nd, s0, s1, s2, s3, ...)                                     \
    do {                                                                                     \
        if (sp) {                                                                            \
            struct spec *s = &sp[n];                                                         \
            snprintf(s->name, sizeof s->name, __VA_ARGS__);                                  \
            s->ndim = nd;                                                                    \
            s->shape[0] = s0, s->shape[1] = s1, s->shape[2] = s2, s->shape[3] = s3;          \
            s->init = init_, s->scale = scale_, s->slot = &(slot_);                          \
        }                                                                                    \
        n++;                                                                                 \
    } while (0)
    T(h->in_norm_w, I_ONE, 0, 1, D, 0, 0, 0, "in_norm.weight");
    T(h->in_norm_b, I_ZERO, 0, 1, D, 0, 0, 0, "in_norm.bias");
    T(h->in_proj_w, I_NORMAL, 0.02, 2, Dh, D, 0, 0, "in_proj.weight");
    T(h->in_proj_b, I_ZERO, 0, 1, Dh, 0, 0, 0, "in_proj.bias");
    for (int j = 0; j < c->n_blocks; j++) {
        struct head_block *b = &h->blk[j];
        T(b->norm_w, I_ONE, 0, 1, Dh, 0, 0, 0, "blocks.%d.norm.weight", j);
        T(b->norm_b, I_ZERO, 0, 1, Dh, 0, 0, 0, "blocks.%d.norm.bias", j);
        T(b->in_proj, I_NORMAL, 0.02, 2, Dn, Dh, 0, 0, "blocks.%d.in_proj.weight", j);
        T(b->conv, I_UNIF, 1.0 / 3.0, 4, Dn, 1, 3, 3, "blocks.%d.conv2d.weight", j);
        T(b->x_proj, I_UNIF, 1.0 / sqrt((double)Dn), 3, HEAD_K, P, Dn, 0,
          "blocks.%d.x_proj_weight", j);
        T(b->dt_w, I_UNIF, 1.0 / sqrt((double)R), 3, HEAD_K, Dn, R, 0,
          "blocks.%d.dt_projs_weight", j);
        T(b->dt_b, I_DTBIAS, 0, 2, HEAD_K, Dn, 0, 0, "blocks.%d.dt_projs_bias", j);
        T(b->A_logs, I_ALOG, 0, 2, HEAD_K * Dn, N, 0, 0, "blocks.%d.A_logs", j);
        T(b->Ds, I_ONE, 0, 1, HEAD_K * Dn, 0, 0, 0, "blocks.%d.Ds", j);
        T(b->out_norm_w, I_ONE, 0, 1, Dn, 0, 0, 0, "blocks.%d.out_norm.weight", j);
        T(b->out_norm_b, I_ZERO, 0, 1, Dn, 0, 0, 0, "blocks.%d.out_norm.bias", j);
        T(b->out_proj, I_NORMAL, 0.02, 2, Dh, Dn, 0, 0, "blocks.%d.out_proj.weight", j);
    }
    T(h->norm_w, I_ONE, 0, 1, Dh, 0, 0, 0, "norm.weight");
    T(h->norm_b, I_ZERO, 0, 1, Dh, 0, 0, 0, "norm.bias");
    T(h->cls_w, I_NORMAL, 0.02, 2, 1, Dh, 0, 0, "cell_cls.weight");
    T(h->cls_b, I_ZERO, 0, 1, 1, 0, 0, 0, "cell_cls.bias");
    T(h->attV_w, I_NORMAL, 0.02, 2, Da, Dh, 0, 0, "attn_V.weight");
    T(h->attV_b, I_ZERO, 0, 1, Da, 0, 0, 0, "attn_V.bias");
    T(h->attU_w, I_NORMAL, 0.02, 2, Da, Dh, 0, 0, "attn_U.weight");
    T(h->attU_b, I_ZERO, 0, 1, Da, 0, 0, 0, "attn_U.bias");
    T(h->attw_w, I_NORMAL, 0.02, 2, 1, Da, 0, 0, "attn_w.weight");
    T(h->attw_b, I_ZERO, 0, 1, 1, 0, 0, 0, "attn_w.bias");
    T(h->slide_w, I_NORMAL, 0.02, 2, 1, Dh + 1, 0, 0, "slide_cls.weight");
    T(h->slide_b, I_ZERO, 0, 1, 1, 0, 0, 0, "slide_cls.bias");
#undef T
    return n;
}

/* splitmix64: a tiny, well-mixed, portable generator (same numbers on every machine). */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static double rng_unif(uint64_t *s) { return (double)(rng_next(s) >> 11) * 0x1.0p-53; }

static double rng_trunc_normal(uint64_t *s)
{
    for (;;) { /* Box–Muller, rejected outside ±2 (trunc_normal(std, ±2σ)) */
        double u1 = rng_unif(s), u2 = rng_unif(s);
        if (u1 <= 0) continue;
        double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
        if (fabs(z) <= 2.0) return z;
    }
}

/* Allocate the head and its parameter table (values zero). */
static enum wv_status head_alloc(const struct head_config *cfg, struct head **out)
{
    *out = NULL;
    enum wv_status st = head_config_check(cfg);
    if (st) return st;
    struct head *h = wv_calloc(1, sizeof *h, "slide head");
    if (!h) return WV_ENOMEM;
    h->cfg = *cfg;
    int n = layout(h, NULL);
    struct spec *sp = wv_calloc((size_t)n, sizeof *sp, "slide head layout");
    h->t = wv_calloc((size_t)n, sizeof *h->t, "slide head tensors");
    if (!sp || !h->t) {
        free(sp);
        head_free(h);
        return WV_ENOMEM;
    }
    layout(h, sp);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        int64_t numel = 1;
        for (int d = 0; d < sp[i].ndim; d++) numel *= sp[i].shape[d];
        total += (size_t)numel;
    }
    h->params = wv_calloc(total ? total : 1, sizeof(float), "slide head parameters");
    if (!h->params) {
        free(sp);
        head_free(h);
        return WV_ENOMEM;
    }
    h->n_params = total;
    h->n_t = n;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        struct weight_tensor *t = &h->t[i];
        t->name = strdup(sp[i].name);
        if (!t->name) {
            free(sp);
            head_free(h);
            return error_set(WV_ENOMEM, "slide head tensor names");
        }
        t->ndim = sp[i].ndim;
        t->numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            t->shape[d] = sp[i].shape[d];
            t->numel *= t->shape[d];
        }
        t->source_dtype = WDT_F32;
        t->data = h->params + off;
        *sp[i].slot = t->data;
        off += (size_t)t->numel;
    }
    free(sp);
    *out = h;
    return WV_OK;
}

enum wv_status head_create_random(const struct head_config *cfg, uint64_t seed,
                                  struct head **out)
{
    struct head *h;
    enum wv_status st = head_alloc(cfg, &h);
    if (st) return st;
    int n = h->n_t;
    struct spec *sp = wv_calloc((size_t)n, sizeof *sp, "slide head layout");
    if (!sp) {
        head_free(h);
        return WV_ENOMEM;
    }
    layout(h, sp);
    for (int i = 0; i < n; i++) {
        struct weight_tensor *t = &h->t[i];
        /* one stream per tensor: a tensor's values do not depend on the others' sizes */
        uint64_t s = seed ^ (0xD1B54A32D192ED03ULL * (uint64_t)(i + 1));
        int64_t last = t->shape[t->ndim - 1];
        for (int64_t q = 0; q < t->numel; q++) {
            double v = 0;
            switch (sp[i].init) {
            case I_ONE: v = 1; break;
            case I_ZERO: v = 0; break;
            case I_NORMAL: v = sp[i].scale * rng_trunc_normal(&s); break;
            case I_UNIF: v = (2 * rng_unif(&s) - 1) * sp[i].scale; break;
            case I_ALOG: v = log((double)(q % last) + 1); break;
            case I_DTBIAS: {
                double dt = exp(rng_unif(&s) * (log(0.1) - log(0.001)) + log(0.001));
                if (dt < 1e-4) dt = 1e-4;
                v = dt + log(-expm1(-dt)); /* softplus⁻¹(dt) */
                break;
            }
            }
            t->data[q] = (float)v;
        }
    }
    free(sp);
    *out = h;
    return WV_OK;
}

static void shape_str(int ndim, const int64_t *s, char *buf, size_t n)
{
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, "%s%lld", d ? ", " : "", (long long)s[d]);
    if (k < n) snprintf(buf + k, n - k, ")");
}

enum wv_status head_create_from_weights(const struct weights *w, const char *prefix,
                                        const struct head_config *cfg, struct head **out)
{
    struct head *h;
    enum wv_status st = head_alloc(cfg, &h);
    if (st) return st;
    for (int i = 0; i < h->n_t; i++) {
        struct weight_tensor *t = &h->t[i];
        char name[256];
        snprintf(name, sizeof name, "%s%s", prefix ? prefix : "", t->name);
        const struct weight_tensor *s = weights_find(w, name);
        if (!s) {
            head_free(h);
            return error_set(WV_ENOTFOUND, "tensor %s: missing (head config %s)", name,
                             "from the metadata");
        }
        int ok = s->ndim == t->ndim;
        for (int d = 0; ok && d < t->ndim; d++) ok = s->shape[d] == t->shape[d];
        if (!ok) {
            char a[96], b[96];
            shape_str(s->ndim, s->shape, a, sizeof a);
            shape_str(t->ndim, t->shape, b, sizeof b);
            head_free(h);
            return error_set(WV_EFORMAT, "tensor %s: shape %s, expected %s", name, a, b);
        }
        memcpy(t->data, s->data, (size_t)t->numel * sizeof(float));
    }
    *out = h;
    return WV_OK;
}

void head_free(struct head *h)
{
    if (!h) return;
    if (h->t)
        for (int i = 0; i < h->n_t; i++) free(h->t[i].name);
    free(h->t);
    free(h->params);
    free(h);
}

const struct head_config *head_get_config(const struct head *h) { return &h->cfg; }

const struct weight_tensor *head_tensors(const struct head *h, int *n)
{
    *n = h->n_t;
    return h->t;
}

float *head_params(struct head *h, size_t *n_params)
{
    *n_params = h->n_params;
    return h->params;
}

/* ---- per-cell math ------------------------------------------------------------------------ */

/* LayerNorm of one row of C values (eps 1e-5, biased variance), fixed summation order. */
static void ln_row(const float *x, const float *g, const float *b, float *y, int C)
{
    float mean = 0, var = 0;
    for (int c = 0; c < C; c++) mean += x[c];
    mean /= (float)C;
    for (int c = 0; c < C; c++) {
        float d = x[c] - mean;
        var += d * d;
    }
    var /= (float)C;
    float rstd = 1.0f / sqrtf(var + 1e-5f);
    for (int c = 0; c < C; c++) y[c] = (x[c] - mean) * rstd * g[c] + b[c];
}

/* y (Nout) = bias + Σ_k x[k]·wt[k, :], wt = wᵀ (K, Nout). Each y[o] sums in k order, so a row's
 * result never depends on the other rows processed with it. bias may be NULL. */
static void linear_row(const float *x, const float *wt, const float *bias, float *restrict y,
                       int K, int Nout)
{
    for (int o = 0; o < Nout; o++) y[o] = bias ? bias[o] : 0.0f;
    for (int k = 0; k < K; k++) {
        const float xk = x[k], *wk = wt + (size_t)k * Nout;
        /* lanes are different outputs: each y[o] still sums in k order, same values */
#pragma omp simd
        for (int o = 0; o < Nout; o++) y[o] += xk * wk[o];
    }
}

/* (Nout, K) → (K, Nout) */
static float *transpose_new(const float *w, int Nout, int K)
{
    float *t = wv_malloc((size_t)Nout * K * sizeof *t, "slide head transposed weight");
    if (!t) return NULL;
    for (int o = 0; o < Nout; o++)
        for (int k = 0; k < K; k++) t[(size_t)k * Nout + o] = w[(size_t)o * K + k];
    return t;
}

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

/* ---- the run ------------------------------------------------------------------------------ */

struct head_run {
    const struct head *h;
    int rows, cols;
    size_t n;         /* tissue cells */
    int32_t *idx;     /* (rows, cols): cell index in row-major tissue order, or -1 */
    int32_t *cell_rc; /* (n, 2) row, col */
    float *x0;        /* (n, Dh) projected input features */
    uint8_t *have;    /* (n) features received */
    float *in_wt;     /* (D, Dh) in_proj weight transposed */
    float *scratch;   /* (threads, D) per-thread LayerNorm output */
    int n_scratch;
};

enum wv_status head_run_create(const struct head *h, int rows, int cols, const uint8_t *tissue,
                               struct head_run **out)
{
    *out = NULL;
    if (rows < 1 || cols < 1 || (int64_t)rows * cols > INT32_MAX)
        return error_set(WV_EINVAL, "slide head: grid %d x %d cells out of range", rows, cols);
    struct head_run *r = wv_calloc(1, sizeof *r, "slide head run");
    if (!r) return WV_ENOMEM;
    r->h = h;
    r->rows = rows;
    r->cols = cols;
    size_t G = (size_t)rows * cols;
    r->idx = wv_malloc(G * sizeof *r->idx, "slide head cell index");
    if (!r->idx) goto fail;
    for (size_t g = 0; g < G; g++) r->idx[g] = tissue[g] ? (int32_t)r->n++ : -1;
    const int D = h->cfg.in_dim, Dh = h->cfg.d_h;
    r->cell_rc = wv_malloc((r->n ? r->n : 1) * 2 * sizeof *r->cell_rc, "slide head cells");
    r->x0 = wv_malloc((r->n ? r->n : 1) * (size_t)Dh * sizeof *r->x0, "slide head features");
    r->have = wv_calloc(r->n ? r->n : 1, 1, "slide head feature flags");
    r->in_wt = transpose_new(h->in_proj_w, Dh, D);
    r->n_scratch = omp_get_max_threads();
    if (r->n_scratch < 1) r->n_scratch = 1;
    r->scratch = wv_malloc((size_t)r->n_scratch * D * sizeof *r->scratch, "slide head scratch");
    if (!r->cell_rc || !r->x0 || !r->have || !r->in_wt || !r->scratch) goto fail;
    for (size_t g = 0; g < G; g++)
        if (r->idx[g] >= 0) {
            r->cell_rc[2 * (size_t)r->idx[g]] = (int32_t)(g / (size_t)cols);
            r->cell_rc[2 * (size_t)r->idx[g] + 1] = (int32_t)(g % (size_t)cols);
        }
    *out = r;
    return WV_OK;
fail:
    head_run_free(r);
    return WV_ENOMEM;
}

void head_run_free(struct head_run *r)
{
    if (!r) return;
    free(r->idx);
    free(r->cell_rc);
    free(r->x0);
    free(r->have);
    free(r->in_wt);
    free(r->scratch);
    free(r);
}

/* x0_i = in_proj(in_norm(f)) for cell i, using the calling thread's scratch. */
static void project_cell(struct head_run *r, size_t i, const float *f)
{
    const struct head *h = r->h;
    int t = omp_get_thread_num();
    if (t >= r->n_scratch) t = 0; /* cannot happen: the team never exceeds max threads */
    float *ln = r->scratch + (size_t)t * h->cfg.in_dim;
    ln_row(f, h->in_norm_w, h->in_norm_b, ln, h->cfg.in_dim);
    linear_row(ln, r->in_wt, h->in_proj_b, r->x0 + i * h->cfg.d_h, h->cfg.in_dim, h->cfg.d_h);
    r->have[i] = 1;
}

enum wv_status head_run_add(struct head_run *r, int row0, int col0, int n_rows, int n_cols,
                            const float *feat, size_t ld)
{
    if (n_rows < 0 || n_cols < 0 || row0 < 0 || col0 < 0 || row0 > r->rows - n_rows ||
        col0 > r->cols - n_cols || ld < (size_t)n_cols)
        return error_set(WV_EINVAL,
                         "slide head: feature rectangle rows %d+%d, cols %d+%d (ld %zu) outside "
                         "the %d x %d grid",
                         row0, n_rows, col0, n_cols, ld, r->rows, r->cols);
    const size_t D = (size_t)r->h->cfg.in_dim;
    int nt = r->n_scratch;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int i = 0; i < n_rows; i++)
        for (int j = 0; j < n_cols; j++) {
            int32_t c = r->idx[(size_t)(row0 + i) * r->cols + col0 + j];
            if (c >= 0) project_cell(r, (size_t)c, feat + ((size_t)i * ld + j) * D);
        }
    return WV_OK;
}

enum wv_status head_run_add_cells(struct head_run *r, size_t m, const int32_t *rc,
                                  const float *feat)
{
    for (size_t q = 0; q < m; q++) {
        int32_t y = rc[2 * q], x = rc[2 * q + 1];
        if (y < 0 || x < 0 || y >= r->rows || x >= r->cols)
            return error_set(WV_EINVAL, "slide head: cell %zu at (%d, %d) outside the %d x %d grid",
                             q, y, x, r->rows, r->cols);
        if (r->idx[(size_t)y * r->cols + x] < 0)
            return error_set(WV_EINVAL, "slide head: cell %zu at (%d, %d) is not a tissue cell", q,
                             y, x);
    }
    const size_t D = (size_t)r->h->cfg.in_dim;
    int nt = r->n_scratch;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (size_t q = 0; q < m; q++) {
        int32_t c = r->idx[(size_t)rc[2 * q] * r->cols + rc[2 * q + 1]];
        project_cell(r, (size_t)c, feat + q * D);
    }
    return WV_OK;
}

/* ---- one block ---------------------------------------------------------------------------- */

/* Buffers of one head_run_finish, all (n, ·) per tissue cell in row-major order. */
struct fwd {
    size_t n;
    float *x;    /* (n, Dh) residual stream */
    float *v;    /* (n, Dn) in_proj(norm(x)); reused as the out_proj row buffer */
    float *u;    /* (n, Dn) SiLU(conv(v)) */
    float *xdbl; /* (n, K, R+2N) */
    float *y;    /* (n, Dn) Σ_k scan_k */
    /* chunk buffers, sized for the longest chunk */
    size_t max_lc;
    size_t *seq; /* (max_lc) cell index of each scan position */
    float *su, *sdelta, *sy; /* (Dn, max_lc) */
    float *sB, *sC;          /* (N, max_lc) */
    float *A;                /* (Dn, N) −exp(A_logs) of one direction */
    float *h;                /* (Dn, N) carried state */
    float *wt_in, *wt_out, *wt_x; /* transposed in_proj (Dh, Dn), out_proj (Dn, Dh),
                                     x_proj[k] as (Dn, K·P) */
    float *conv_t;           /* (9, Dn) */
    float *rowbuf;           /* (threads, max(Dh, Dn)·2) */
};

/* The cells of chunk `b` of direction k in scan order. Row directions (k = 0, 2): band of rows
 * [b·chunk, …), cells in raster order; column directions (k = 1, 3): band of columns, cells in
 * column-major order. Reversed directions take the chunks from the last and reverse each. */
static size_t chunk_cells(const struct head_run *r, int k, int b, int chunk, size_t *seq)
{
    size_t L = 0;
    if (k == 0 || k == 2) {
        int r0 = b * chunk, r1 = r0 + chunk < r->rows ? r0 + chunk : r->rows;
        for (int y = r0; y < r1; y++)
            for (int x = 0; x < r->cols; x++) {
                int32_t c = r->idx[(size_t)y * r->cols + x];
                if (c >= 0) {
                    if (seq) seq[L] = (size_t)c;
                    L++;
                }
            }
    } else {
        int c0 = b * chunk, c1 = c0 + chunk < r->cols ? c0 + chunk : r->cols;
        for (int x = c0; x < c1; x++)
            for (int y = 0; y < r->rows; y++) {
                int32_t c = r->idx[(size_t)y * r->cols + x];
                if (c >= 0) {
                    if (seq) seq[L] = (size_t)c;
                    L++;
                }
            }
    }
    if (seq && k >= 2)
        for (size_t a = 0, z = L ? L - 1 : 0; a < z; a++, z--) {
            size_t tmp = seq[a];
            seq[a] = seq[z];
            seq[z] = tmp;
        }
    return L;
}

static int n_chunks(const struct head_run *r, int k, int chunk)
{
    int len = (k == 0 || k == 2) ? r->rows : r->cols;
    return (len + chunk - 1) / chunk;
}

static void run_block(const struct head_run *r, const struct head_block *bk, struct fwd *f,
                      int chunk, int nt)
{
    const struct head_config *c = &r->h->cfg;
    const int Dh = c->d_h, Dn = c->d_inner, N = c->d_state, R = c->dt_rank, P = R + 2 * N;
    const long n = (long)f->n;
    const int rbw = 2 * (Dh > Dn ? Dh : Dn);

    /* transposed weights of this block */
    for (int o = 0; o < Dn; o++)
        for (int k = 0; k < Dh; k++) f->wt_in[(size_t)k * Dn + o] = bk->in_proj[(size_t)o * Dh + k];
    for (int o = 0; o < Dh; o++)
        for (int k = 0; k < Dn; k++)
            f->wt_out[(size_t)k * Dh + o] = bk->out_proj[(size_t)o * Dn + k];
    for (int k = 0; k < HEAD_K; k++)
        for (int p = 0; p < P; p++)
            for (int d = 0; d < Dn; d++)
                f->wt_x[(size_t)d * HEAD_K * P + k * P + p] =
                    bk->x_proj[((size_t)k * P + p) * Dn + d];
    for (int d = 0; d < Dn; d++)
        for (int t = 0; t < 9; t++) f->conv_t[(size_t)t * Dn + d] = bk->conv[(size_t)d * 9 + t];

    /* v = in_proj(norm(x)) */
#pragma omp parallel for schedule(static) num_threads(nt)
    for (long i = 0; i < n; i++) {
        float *z = f->rowbuf + (size_t)omp_get_thread_num() * rbw;
        ln_row(f->x + (size_t)i * Dh, bk->norm_w, bk->norm_b, z, Dh);
        linear_row(z, f->wt_in, NULL, f->v + (size_t)i * Dn, Dh, Dn);
    }
    /* u = SiLU(masked depthwise 3×3 conv of v): taps in row-major (ky, kx) order, background and
     * out-of-grid neighbours contribute 0; then xdbl = x_proj[k]·u for the 4 directions at once */
#pragma omp parallel for schedule(static) num_threads(nt)
    for (long i = 0; i < n; i++) {
        int y = r->cell_rc[2 * i], x = r->cell_rc[2 * i + 1];
        float *u = f->u + (size_t)i * Dn;
        for (int d = 0; d < Dn; d++) u[d] = 0.0f;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int yy = y + dy, xx = x + dx;
                if (yy < 0 || yy >= r->rows || xx < 0 || xx >= r->cols) continue;
                int32_t q = r->idx[(size_t)yy * r->cols + xx];
                if (q < 0) continue;
                const float *vq = f->v + (size_t)q * Dn, *w = f->conv_t + (size_t)((dy + 1) * 3 + dx + 1) * Dn;
                for (int d = 0; d < Dn; d++) u[d] += w[d] * vq[d];
            }
        for (int d = 0; d < Dn; d++) u[d] = u[d] / (1.0f + expf(-u[d]));
        linear_row(u, f->wt_x, NULL, f->xdbl + (size_t)i * HEAD_K * P, Dn, HEAD_K * P);
    }

    /* the four scans, chunk by chunk with the carried state; merge order 0, 2, 1, 3 as ss2d.c */
    static const int korder[HEAD_K] = {0, 2, 1, 3};
    for (int kk = 0; kk < HEAD_K; kk++) {
        const int k = korder[kk];
        for (int d = 0; d < Dn; d++)
            for (int s = 0; s < N; s++) {
                f->A[(size_t)d * N + s] = -expf(bk->A_logs[((size_t)k * Dn + d) * N + s]);
                f->h[(size_t)d * N + s] = 0.0f;
            }
        const float *dtw = bk->dt_w + (size_t)k * Dn * R;
        const int nb = n_chunks(r, k, chunk);
        for (int bi = 0; bi < nb; bi++) {
            int b = k >= 2 ? nb - 1 - bi : bi;
            const long L = (long)chunk_cells(r, k, b, chunk, f->seq);
            if (L == 0) continue;
            /* gather the chunk in sequence layout: u, raw δ = dt_w[k]·dt_low (bias in the scan),
             * B, C */
#pragma omp parallel for schedule(static) num_threads(nt)
            for (long t = 0; t < L; t++) {
                const size_t i = f->seq[t];
                const float *u = f->u + i * Dn, *xd = f->xdbl + (i * HEAD_K + k) * P;
                for (int d = 0; d < Dn; d++) {
                    float dt = 0.0f;
                    for (int q = 0; q < R; q++) dt += dtw[(size_t)d * R + q] * xd[q];
                    f->su[(size_t)d * L + t] = u[d];
                    f->sdelta[(size_t)d * L + t] = dt;
                }
                for (int s = 0; s < N; s++) {
                    f->sB[(size_t)s * L + t] = xd[R + s];
                    f->sC[(size_t)s * L + t] = xd[R + N + s];
                }
            }
            scan_cpu(f->su, f->sdelta, f->A, f->sB, f->sC, bk->Ds + (size_t)k * Dn,
                     bk->dt_b + (size_t)k * Dn, f->h, f->sy, f->h, 1, Dn, 1, N, (int)L, 1);
#pragma omp parallel for schedule(static) num_threads(nt)
            for (long t = 0; t < L; t++) {
                float *y = f->y + f->seq[t] * Dn;
                if (kk == 0)
                    for (int d = 0; d < Dn; d++) y[d] = f->sy[(size_t)d * L + t];
                else
                    for (int d = 0; d < Dn; d++) y[d] += f->sy[(size_t)d * L + t];
            }
        }
    }

    /* x = x + out_proj(out_norm(y)) */
#pragma omp parallel for schedule(static) num_threads(nt)
    for (long i = 0; i < n; i++) {
        float *z = f->rowbuf + (size_t)omp_get_thread_num() * rbw, *o = z + rbw / 2;
        ln_row(f->y + (size_t)i * Dn, bk->out_norm_w, bk->out_norm_b, z, Dn);
        linear_row(z, f->wt_out, NULL, o, Dn, Dh);
        float *x = f->x + (size_t)i * Dh;
        for (int d = 0; d < Dh; d++) x[d] += o[d];
    }
}

static void fwd_free(struct fwd *f)
{
    free(f->x);
    free(f->v);
    free(f->u);
    free(f->xdbl);
    free(f->y);
    free(f->seq);
    free(f->su);
    free(f->sdelta);
    free(f->sy);
    free(f->sB);
    free(f->sC);
    free(f->A);
    free(f->h);
    free(f->wt_in);
    free(f->wt_out);
    free(f->wt_x);
    free(f->conv_t);
    free(f->rowbuf);
}

/* The classifiers over g (n, Dh) = final LayerNorm output. */
static enum wv_status classify(const struct head_run *r, const float *g, struct head_outputs *o,
                               int nt)
{
    const struct head *h = r->h;
    const int Dh = h->cfg.d_h, Da = h->cfg.d_attn;
    const long n = (long)r->n;
    enum wv_status st = WV_OK;
    float *logit = wv_malloc((size_t)n * sizeof *logit, "slide head cell logits");
    float *att = wv_malloc((size_t)n * sizeof *att, "slide head attention");
    float *vt = transpose_new(h->attV_w, Da, Dh), *ut = transpose_new(h->attU_w, Da, Dh);
    float *buf = wv_malloc((size_t)nt * 2 * Da * sizeof *buf, "slide head attention rows");
    if (!logit || !att || !vt || !ut || !buf) {
        st = WV_ENOMEM;
        goto done;
    }
#pragma omp parallel for schedule(static) num_threads(nt)
    for (long i = 0; i < n; i++) {
        const float *gi = g + (size_t)i * Dh;
        float acc = h->cls_b[0];
        for (int d = 0; d < Dh; d++) acc += h->cls_w[d] * gi[d];
        logit[i] = acc;
        float *hv = buf + (size_t)omp_get_thread_num() * 2 * Da, *hu = hv + Da;
        linear_row(gi, vt, h->attV_b, hv, Dh, Da);
        linear_row(gi, ut, h->attU_b, hu, Dh, Da);
        float a = h->attw_b[0];
        for (int j = 0; j < Da; j++) a += h->attw_w[j] * (tanhf(hv[j]) * sigmoidf(hu[j]));
        att[i] = a;
    }
    /* the slide: softmax over cells, pooled g, top cell logit; sequential row-major sums in
     * double so the result is independent of the thread count */
    float amax = -INFINITY, lmax = -INFINITY;
    for (long i = 0; i < n; i++) {
        if (att[i] > amax) amax = att[i];
        if (logit[i] > lmax) lmax = logit[i];
    }
    double s = 0;
    for (long i = 0; i < n; i++) {
        att[i] = expf(att[i] - amax);
        s += att[i];
    }
    double *pooled = wv_calloc((size_t)Dh, sizeof *pooled, "slide head pooling");
    if (!pooled) {
        st = WV_ENOMEM;
        goto done;
    }
    for (long i = 0; i < n; i++) {
        att[i] = (float)(att[i] / s);
        const float *gi = g + (size_t)i * Dh;
        for (int d = 0; d < Dh; d++) pooled[d] += (double)att[i] * gi[d];
    }
    if (n > 0) {
        float sl = h->slide_b[0];
        for (int d = 0; d < Dh; d++) sl += h->slide_w[d] * (float)pooled[d];
        sl += h->slide_w[Dh] * lmax;
        o->slide_logit = sl;
        o->slide_prob = sigmoidf(sl);
        o->max_cell_logit = lmax;
    } else {
        o->slide_logit = o->slide_prob = o->max_cell_logit = NAN;
    }
    free(pooled);
    const size_t G = (size_t)r->rows * r->cols;
    for (size_t q = 0; q < G; q++) {
        int32_t i = r->idx[q];
        if (o->cell_logit) o->cell_logit[q] = i >= 0 ? logit[i] : NAN;
        if (o->cell_prob) o->cell_prob[q] = i >= 0 ? sigmoidf(logit[i]) : NAN;
        if (o->attention) o->attention[q] = i >= 0 ? att[i] : NAN;
    }
    if (o->cell_hidden) memcpy(o->cell_hidden, g, (size_t)n * Dh * sizeof *g);
done:
    free(logit);
    free(att);
    free(vt);
    free(ut);
    free(buf);
    return st;
}

enum wv_status head_run_finish(struct head_run *r, int chunk, int threads,
                               struct head_outputs *out)
{
    const struct head *h = r->h;
    const struct head_config *c = &h->cfg;
    const int Dh = c->d_h, Dn = c->d_inner, N = c->d_state, P = c->dt_rank + 2 * N;
    if (chunk < 0) return error_set(WV_EINVAL, "slide head: chunk %d < 0", chunk);
    for (size_t i = 0; i < r->n; i++)
        if (!r->have[i])
            return error_set(WV_EINVAL, "slide head: tissue cell (%d, %d) got no features",
                             r->cell_rc[2 * i], r->cell_rc[2 * i + 1]);
    if (threads > 0) omp_set_num_threads(threads);
    int nt = omp_get_max_threads();
    if (nt < 1) nt = 1;
    const int big = r->rows > r->cols ? r->rows : r->cols;
    if (chunk == 0 || chunk > big) chunk = big;
    out->n_cells = r->n;

    struct fwd f;
    memset(&f, 0, sizeof f);
    f.n = r->n;
    const size_t n1 = r->n ? r->n : 1;
    for (int k = 0; k < HEAD_K; k += 1)
        for (int b = 0; b < n_chunks(r, k, chunk); b++) {
            size_t L = chunk_cells(r, k, b, chunk, NULL);
            if (L > f.max_lc) f.max_lc = L;
        }
    const size_t lc = f.max_lc ? f.max_lc : 1;
    const int rbw = 2 * (Dh > Dn ? Dh : Dn);
    f.x = wv_malloc(n1 * Dh * sizeof(float), "slide head x");
    f.v = wv_malloc(n1 * Dn * sizeof(float), "slide head v");
    f.u = wv_malloc(n1 * Dn * sizeof(float), "slide head u");
    f.xdbl = wv_malloc(n1 * HEAD_K * P * sizeof(float), "slide head xdbl");
    f.y = wv_malloc(n1 * Dn * sizeof(float), "slide head y");
    f.seq = wv_malloc(lc * sizeof(size_t), "slide head chunk");
    f.su = wv_malloc(lc * Dn * sizeof(float), "slide head chunk u");
    f.sdelta = wv_malloc(lc * Dn * sizeof(float), "slide head chunk delta");
    f.sy = wv_malloc(lc * Dn * sizeof(float), "slide head chunk y");
    f.sB = wv_malloc(lc * N * sizeof(float), "slide head chunk B");
    f.sC = wv_malloc(lc * N * sizeof(float), "slide head chunk C");
    f.A = wv_malloc((size_t)Dn * N * sizeof(float), "slide head A");
    f.h = wv_malloc((size_t)Dn * N * sizeof(float), "slide head state");
    f.wt_in = wv_malloc((size_t)Dh * Dn * sizeof(float), "slide head weights");
    f.wt_out = wv_malloc((size_t)Dh * Dn * sizeof(float), "slide head weights");
    f.wt_x = wv_malloc((size_t)Dn * HEAD_K * P * sizeof(float), "slide head weights");
    f.conv_t = wv_malloc((size_t)9 * Dn * sizeof(float), "slide head weights");
    f.rowbuf = wv_malloc((size_t)nt * rbw * sizeof(float), "slide head rows");
    enum wv_status st = WV_OK;
    if (!f.x || !f.v || !f.u || !f.xdbl || !f.y || !f.seq || !f.su || !f.sdelta || !f.sy ||
        !f.sB || !f.sC || !f.A || !f.h || !f.wt_in || !f.wt_out || !f.wt_x || !f.conv_t ||
        !f.rowbuf) {
        st = WV_ENOMEM;
        goto done;
    }
    memcpy(f.x, r->x0, r->n * Dh * sizeof(float));
    for (int j = 0; j < c->n_blocks; j++) run_block(r, &h->blk[j], &f, chunk, nt);
    /* g = norm(x), into v's storage when it is large enough, else x in place */
    float *g = f.x;
    {
        const long n = (long)r->n;
#pragma omp parallel for schedule(static) num_threads(nt)
        for (long i = 0; i < n; i++) {
            float *z = f.rowbuf + (size_t)omp_get_thread_num() * rbw;
            ln_row(f.x + (size_t)i * Dh, h->norm_w, h->norm_b, z, Dh);
            memcpy(f.x + (size_t)i * Dh, z, (size_t)Dh * sizeof *z);
        }
    }
    st = classify(r, g, out, nt);
done:
    fwd_free(&f);
    return st;
}

enum wv_status head_forward(const struct head *h, const struct head_grid *grid, int chunk,
                            int threads, struct head_outputs *out)
{
    if (grid->D != h->cfg.in_dim)
        return error_set(WV_EINVAL, "slide head: features have %d channels, the head expects %d",
                         grid->D, h->cfg.in_dim);
    struct head_run *r;
    if (threads > 0) omp_set_num_threads(threads);
    enum wv_status st = head_run_create(h, grid->rows, grid->cols, grid->tissue, &r);
    if (st) return st;
    if (r->n) {
        int32_t *rc = r->cell_rc; /* the features are in row-major tissue order = cell order */
        st = head_run_add_cells(r, r->n, rc, grid->features);
    }
    if (!st) st = head_run_finish(r, chunk, threads, out);
    head_run_free(r);
    return st;
}
