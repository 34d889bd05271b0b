/*
 * head_backward.c — float64 forward with tape and backward of the slide context head
 * (head_grad.h; equations in head.h, design in docs/head.md, gradient checks in
 * tests/unit/test_gradcheck.c, user notes in docs/training.md). Per-cell arrays are (n, ·) in
 * row-major tissue order like head.c's; Linear layers are cblas_dgemm over all cells; the scans
 * go through scan_forward_f64 / scan_backward_f64 piece by piece with the state (forward) and
 * the state's gradient (backward) carried between the pieces.
 */
#include "head_grad.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "scan_grad.h"
#include "util.h"

#define LN_EPS 1e-5

struct blk_off {
    size_t norm_w, norm_b, in_proj, conv, x_proj, dt_w, dt_b, A_logs, Ds, out_norm_w, out_norm_b,
        out_proj;
};

/* the tape of one block */
struct blk_tape {
    double *x;       /* (n, Dh) block input */
    double *zh, *rs; /* (n, Dh) normalised x, (n) 1/std */
    double *z;       /* (n, Dh) norm(x) */
    double *v;       /* (n, Dn) in_proj(z) */
    double *c;       /* (n, Dn) conv(v) before SiLU */
    double *u;       /* (n, Dn) SiLU(c) */
    double *xdbl;    /* (n, K·P) */
    double *y;       /* (n, Dn) Σ_k scans */
    double *yh, *rsy;/* (n, Dn) normalised y, (n) */
    double *o;       /* (n, Dn) out_norm(y) */
    double *hin;     /* (K, n_pieces_max, Dn, N) state entering each piece */
};

struct head_grad {
    struct head_config cfg;
    size_t n_params;
    int n_t;
    char **names;
    size_t *offs, *numels;
    /* offsets */
    size_t in_norm_w, in_norm_b, in_proj_w, in_proj_b, norm_w, norm_b, cls_w, cls_b, attV_w,
        attV_b, attU_w, attU_b, attw_w, attw_b, slide_w, slide_b;
    struct blk_off blk[HEAD_MAX_BLOCKS];

    /* the last forward */
    int have;
    const double *p; /* params of the last forward (caller's) */
    int rows, cols;
    size_t n, cap;   /* cells, capacity of the per-cell arrays */
    int32_t *idx;    /* (rows·cols) cell index or -1 */
    int32_t *rc;     /* (n, 2) */
    size_t *seq;     /* (K, n) cell of each position in direction k's order */
    int n_pieces[HEAD_K], max_pieces;
    size_t *piece;   /* (K, max_pieces + 1) start positions in seq */
    size_t max_piece_len;
    double *zh0, *rs0, *z0; /* (n, D), (n), (n, D) input LayerNorm */
    struct blk_tape bt[HEAD_MAX_BLOCKS];
    double *xL;      /* (n, Dh) last residual stream */
    double *gh, *rsg, *g; /* final LayerNorm */
    double *logit;   /* (n) */
    double *hv, *hu, *gate; /* (n, Da): tanh(V g + bV) pre-activation, U g + bU pre, gate */
    double *att;     /* (n) a_i */
    double *alpha;   /* (n) */
    double *pooled;  /* (Dh) */
    double mx;
    size_t amax;
    double slide_logit;
    /* scratch */
    double *su, *sdel, *sB, *sC, *sy, *sdy, *sdu, *sddel, *sdB, *sdC; /* piece buffers */
    double *A, *h, *dh;   /* (Dn, N) */
    double *d1, *d2, *d3, *d4; /* (n, max(D, Dh, Dn, K·P, Da)) gradient buffers */
};

/* ---- layout ------------------------------------------------------------------------------- */

enum wv_status head_grad_create(const struct head *h, struct head_grad **out)
{
    *out = NULL;
    struct head_grad *g = wv_calloc(1, sizeof *g, "head gradient workspace");
    if (!g) return WV_ENOMEM;
    g->cfg = *head_get_config(h);
    int nt;
    const struct weight_tensor *t = head_tensors(h, &nt);
    size_t np;
    const float *base = head_params((struct head *)h, &np);
    g->n_params = np;
    g->n_t = nt;
    g->names = wv_calloc((size_t)nt, sizeof *g->names, "head gradient names");
    g->offs = wv_calloc((size_t)nt, sizeof *g->offs, "head gradient offsets");
    g->numels = wv_calloc((size_t)nt, sizeof *g->numels, "head gradient sizes");
    if (!g->names || !g->offs || !g->numels) {
        head_grad_free(g);
        return WV_ENOMEM;
    }
    for (int i = 0; i < nt; i++) {
        g->names[i] = strdup(t[i].name);
        if (!g->names[i]) {
            head_grad_free(g);
            return error_set(WV_ENOMEM, "head gradient names");
        }
        g->offs[i] = (size_t)(t[i].data - base);
        g->numels[i] = (size_t)t[i].numel;
    }
    struct {
        const char *name;
        size_t *slot;
    } top[] = {{"in_norm.weight", &g->in_norm_w}, {"in_norm.bias", &g->in_norm_b},
               {"in_proj.weight", &g->in_proj_w}, {"in_proj.bias", &g->in_proj_b},
               {"norm.weight", &g->norm_w},       {"norm.bias", &g->norm_b},
               {"cell_cls.weight", &g->cls_w},    {"cell_cls.bias", &g->cls_b},
               {"attn_V.weight", &g->attV_w},     {"attn_V.bias", &g->attV_b},
               {"attn_U.weight", &g->attU_w},     {"attn_U.bias", &g->attU_b},
               {"attn_w.weight", &g->attw_w},     {"attn_w.bias", &g->attw_b},
               {"slide_cls.weight", &g->slide_w}, {"slide_cls.bias", &g->slide_b}};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
        size_t ne;
        long o = head_grad_tensor_offset(g, top[i].name, &ne);
        if (o < 0) {
            head_grad_free(g);
            return error_set(WV_EINVAL, "head gradient: tensor %s missing", top[i].name);
        }
        *top[i].slot = (size_t)o;
    }
    static const char *const bn[] = {"norm.weight",     "norm.bias",        "in_proj.weight",
                                      "conv2d.weight",   "x_proj_weight",    "dt_projs_weight",
                                      "dt_projs_bias",   "A_logs",           "Ds",
                                      "out_norm.weight", "out_norm.bias",    "out_proj.weight"};
    for (int j = 0; j < g->cfg.n_blocks; j++) {
        struct blk_off *b = &g->blk[j];
        size_t *slot[] = {&b->norm_w, &b->norm_b, &b->in_proj, &b->conv, &b->x_proj, &b->dt_w,
                          &b->dt_b, &b->A_logs, &b->Ds, &b->out_norm_w, &b->out_norm_b,
                          &b->out_proj};
        for (int q = 0; q < 12; q++) {
            char name[96];
            size_t ne;
            snprintf(name, sizeof name, "blocks.%d.%s", j, bn[q]);
            long o = head_grad_tensor_offset(g, name, &ne);
            if (o < 0) {
                head_grad_free(g);
                return error_set(WV_EINVAL, "head gradient: tensor %s missing", name);
            }
            *slot[q] = (size_t)o;
        }
    }
    *out = g;
    return WV_OK;
}

long head_grad_tensor_offset(const struct head_grad *g, const char *name, size_t *numel)
{
    for (int i = 0; i < g->n_t; i++)
        if (!strcmp(g->names[i], name)) {
            if (numel) *numel = g->numels[i];
            return (long)g->offs[i];
        }
    return -1;
}

size_t head_grad_n_params(const struct head_grad *g) { return g->n_params; }
size_t head_grad_n_cells(const struct head_grad *g) { return g->n; }

static void free_cells(struct head_grad *g)
{
    double **pp[] = {&g->zh0, &g->rs0, &g->z0, &g->xL, &g->gh, &g->rsg, &g->g, &g->logit,
                     &g->hv, &g->hu, &g->gate, &g->att, &g->alpha, &g->d1, &g->d2, &g->d3,
                     &g->d4, &g->su, &g->sdel, &g->sB, &g->sC, &g->sy, &g->sdy, &g->sdu,
                     &g->sddel, &g->sdB, &g->sdC};
    for (size_t i = 0; i < sizeof pp / sizeof pp[0]; i++) {
        free(*pp[i]);
        *pp[i] = NULL;
    }
    for (int j = 0; j < HEAD_MAX_BLOCKS; j++) {
        struct blk_tape *b = &g->bt[j];
        double **q[] = {&b->x, &b->zh, &b->rs, &b->z, &b->v, &b->c, &b->u, &b->xdbl, &b->y,
                        &b->yh, &b->rsy, &b->o, &b->hin};
        for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
            free(*q[i]);
            *q[i] = NULL;
        }
    }
    g->cap = 0;
}

void head_grad_free(struct head_grad *g)
{
    if (!g) return;
    free_cells(g);
    if (g->names)
        for (int i = 0; i < g->n_t; i++) free(g->names[i]);
    free(g->names);
    free(g->offs);
    free(g->numels);
    free(g->idx);
    free(g->rc);
    free(g->seq);
    free(g->piece);
    free(g->pooled);
    free(g->A);
    free(g->h);
    free(g->dh);
    free(g);
}

/* ---- small kernels -------------------------------------------------------------------------- */

/* Y (n, No) = X (n, K) · Wᵀ (W (No, K) row-major, row stride ldw) [+ bias], beta 0 */
static void lin_fwd(const double *X, size_t n, int K, const double *W, const double *bias,
                    double *Y, int No)
{
    if (n == 0) return;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, No, K, 1.0, X, K, W, K, 0.0, Y,
                No);
    if (bias)
        for (size_t i = 0; i < n; i++)
            for (int o = 0; o < No; o++) Y[i * No + o] += bias[o];
}

/* dX (n, K) (+)= dY (n, No) · W;  dW (No, K) += dYᵀ X;  dbias (No) += Σ dY. dX may be NULL;
 * accumulate_dx 0 overwrites dX. */
static void lin_bwd(const double *X, size_t n, int K, const double *W, const double *dY, int No,
                    double *dX, int accumulate_dx, double *dW, double *dbias)
{
    if (n == 0) return;
    if (dX)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, K, No, 1.0, dY, No, W, K,
                    accumulate_dx ? 1.0 : 0.0, dX, K);
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, No, K, (int)n, 1.0, dY, No, X, K, 1.0, dW,
                K);
    if (dbias)
        for (size_t i = 0; i < n; i++)
            for (int o = 0; o < No; o++) dbias[o] += dY[i * No + o];
}

/* LayerNorm rows: xh = (x − mean)·rstd, y = xh·w + b; stores xh (n, C) and rstd (n). */
static void ln_fwd(const double *x, size_t n, int C, const double *w, const double *b, double *xh,
                   double *rs, double *y)
{
#pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)n; i++) {
        const double *xi = x + (size_t)i * C;
        double mean = 0, var = 0;
        for (int c = 0; c < C; c++) mean += xi[c];
        mean /= C;
        for (int c = 0; c < C; c++) var += (xi[c] - mean) * (xi[c] - mean);
        var /= C;
        double r = 1.0 / sqrt(var + LN_EPS);
        rs[i] = r;
        for (int c = 0; c < C; c++) {
            double h = (xi[c] - mean) * r;
            xh[(size_t)i * C + c] = h;
            y[(size_t)i * C + c] = h * w[c] + b[c];
        }
    }
}

/* LayerNorm backward: dx (n, C) (+)= rstd·(dxh − mean(dxh) − xh·mean(dxh·xh)), dxh = dy·w;
 * dw += Σ dy·xh, db += Σ dy (sequential over rows: fixed order). */
static void ln_bwd(const double *xh, const double *rs, size_t n, int C, const double *w,
                   const double *dy, double *dx, int accumulate, double *dw, double *db)
{
#pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)n; i++) {
        const double *h = xh + (size_t)i * C, *gy = dy + (size_t)i * C;
        double m1 = 0, m2 = 0;
        for (int c = 0; c < C; c++) {
            double d = gy[c] * w[c];
            m1 += d;
            m2 += d * h[c];
        }
        m1 /= C;
        m2 /= C;
        if (!dx) continue;
        double *o = dx + (size_t)i * C;
        for (int c = 0; c < C; c++) {
            double v = rs[i] * (gy[c] * w[c] - m1 - h[c] * m2);
            o[c] = accumulate ? o[c] + v : v;
        }
    }
#pragma omp parallel for schedule(static)
    for (int c = 0; c < C; c++) {
        double sw = 0, sb = 0;
        for (size_t i = 0; i < n; i++) {
            sw += dy[i * C + c] * xh[i * C + c];
            sb += dy[i * C + c];
        }
        dw[c] += sw;
        db[c] += sb;
    }
}

static double sigm(double x) { return 1.0 / (1.0 + exp(-x)); }

double head_grad_bce(double z, double y, double *dz)
{
    if (dz) *dz = sigm(z) - y;
    /* softplus(z) − y·z = max(z, 0) + log1p(exp(−|z|)) − y·z */
    return (z > 0 ? z : 0) + log1p(exp(-fabs(z))) - y * z;
}

/* ---- grid, sequences, buffers -------------------------------------------------------------- */

#define ALLOC(ptr, count, what)                                                              \
    do {                                                                                     \
        free(ptr);                                                                           \
        (ptr) = wv_malloc((size_t)(count) * sizeof *(ptr), what);                            \
        if (!(ptr)) return WV_ENOMEM;                                                        \
    } while (0)

static enum wv_status setup_grid(struct head_grad *g, int rows, int cols, const uint8_t *tissue,
                                 int chunk)
{
    const struct head_config *c = &g->cfg;
    const int D = c->in_dim, Dh = c->d_h, Dn = c->d_inner, N = c->d_state, Da = c->d_attn,
              P = c->dt_rank + 2 * N;
    if (rows < 1 || cols < 1 || (int64_t)rows * cols > INT32_MAX)
        return error_set(WV_EINVAL, "head gradient: grid %d x %d cells out of range", rows, cols);
    if (chunk < 0) return error_set(WV_EINVAL, "head gradient: chunk %d < 0", chunk);
    const size_t G = (size_t)rows * cols;
    ALLOC(g->idx, G, "head gradient cell index");
    size_t n = 0;
    for (size_t q = 0; q < G; q++) g->idx[q] = tissue[q] ? (int32_t)n++ : -1;
    g->rows = rows, g->cols = cols, g->n = n;
    const size_t n1 = n ? n : 1;
    ALLOC(g->rc, 2 * n1, "head gradient cells");
    for (size_t q = 0; q < G; q++)
        if (g->idx[q] >= 0) {
            g->rc[2 * (size_t)g->idx[q]] = (int32_t)(q / (size_t)cols);
            g->rc[2 * (size_t)g->idx[q] + 1] = (int32_t)(q % (size_t)cols);
        }
    /* direction orders and pieces (head.c chunk_cells: bands of `chunk` rows or columns,
     * reversed directions from the last band, each reversed) */
    const int big = rows > cols ? rows : cols;
    if (chunk == 0 || chunk > big) chunk = big;
    ALLOC(g->seq, (size_t)HEAD_K * n1, "head gradient scan order");
    g->max_pieces = (big + chunk - 1) / chunk;
    ALLOC(g->piece, (size_t)HEAD_K * (g->max_pieces + 1), "head gradient pieces");
    g->max_piece_len = 1;
    for (int k = 0; k < HEAD_K; k++) {
        size_t *s = g->seq + (size_t)k * n1, L = 0;
        size_t *pc = g->piece + (size_t)k * (g->max_pieces + 1);
        const int row_dir = (k == 0 || k == 2);
        const int len = row_dir ? rows : cols, nb = (len + chunk - 1) / chunk;
        g->n_pieces[k] = nb;
        for (int bi = 0; bi < nb; bi++) {
            int b = k >= 2 ? nb - 1 - bi : bi;
            size_t start = L;
            pc[bi] = start;
            int a0 = b * chunk, a1 = a0 + chunk < len ? a0 + chunk : len;
            if (row_dir) {
                for (int y = a0; y < a1; y++)
                    for (int x = 0; x < cols; x++)
                        if (g->idx[(size_t)y * cols + x] >= 0)
                            s[L++] = (size_t)g->idx[(size_t)y * cols + x];
            } else {
                for (int x = a0; x < a1; x++)
                    for (int y = 0; y < rows; y++)
                        if (g->idx[(size_t)y * cols + x] >= 0)
                            s[L++] = (size_t)g->idx[(size_t)y * cols + x];
            }
            if (k >= 2)
                for (size_t a = start, z = L ? L - 1 : 0; L > start && a < z; a++, z--) {
                    size_t tmp = s[a];
                    s[a] = s[z];
                    s[z] = tmp;
                }
            if (L - start > g->max_piece_len) g->max_piece_len = L - start;
        }
        pc[nb] = L;
    }
    if (n > g->cap || !g->z0) {
        free_cells(g);
        const int wmax = D > Dh ? D : Dh;
        int wide = wmax > Dn ? wmax : Dn;
        if (HEAD_K * P > wide) wide = HEAD_K * P;
        if (Da > wide) wide = Da;
        ALLOC(g->zh0, n1 * D, "head gradient tape");
        ALLOC(g->rs0, n1, "head gradient tape");
        ALLOC(g->z0, n1 * D, "head gradient tape");
        for (int j = 0; j < c->n_blocks; j++) {
            struct blk_tape *b = &g->bt[j];
            ALLOC(b->x, n1 * Dh, "head gradient tape");
            ALLOC(b->zh, n1 * Dh, "head gradient tape");
            ALLOC(b->rs, n1, "head gradient tape");
            ALLOC(b->z, n1 * Dh, "head gradient tape");
            ALLOC(b->v, n1 * Dn, "head gradient tape");
            ALLOC(b->c, n1 * Dn, "head gradient tape");
            ALLOC(b->u, n1 * Dn, "head gradient tape");
            ALLOC(b->xdbl, n1 * HEAD_K * P, "head gradient tape");
            ALLOC(b->y, n1 * Dn, "head gradient tape");
            ALLOC(b->yh, n1 * Dn, "head gradient tape");
            ALLOC(b->rsy, n1, "head gradient tape");
            ALLOC(b->o, n1 * Dn, "head gradient tape");
        }
        ALLOC(g->xL, n1 * Dh, "head gradient tape");
        ALLOC(g->gh, n1 * Dh, "head gradient tape");
        ALLOC(g->rsg, n1, "head gradient tape");
        ALLOC(g->g, n1 * Dh, "head gradient tape");
        ALLOC(g->logit, n1, "head gradient tape");
        ALLOC(g->hv, n1 * Da, "head gradient tape");
        ALLOC(g->hu, n1 * Da, "head gradient tape");
        ALLOC(g->gate, n1 * Da, "head gradient tape");
        ALLOC(g->att, n1, "head gradient tape");
        ALLOC(g->alpha, n1, "head gradient tape");
        ALLOC(g->d1, n1 * wide, "head gradient buffers");
        ALLOC(g->d2, n1 * wide, "head gradient buffers");
        ALLOC(g->d3, n1 * wide, "head gradient buffers");
        ALLOC(g->d4, n1 * wide, "head gradient buffers");
        const size_t lc = n1;
        ALLOC(g->su, lc * Dn, "head gradient scan");
        ALLOC(g->sdel, lc * Dn, "head gradient scan");
        ALLOC(g->sy, lc * Dn, "head gradient scan");
        ALLOC(g->sdy, lc * Dn, "head gradient scan");
        ALLOC(g->sdu, lc * Dn, "head gradient scan");
        ALLOC(g->sddel, lc * Dn, "head gradient scan");
        ALLOC(g->sB, lc * N, "head gradient scan");
        ALLOC(g->sC, lc * N, "head gradient scan");
        ALLOC(g->sdB, lc * N, "head gradient scan");
        ALLOC(g->sdC, lc * N, "head gradient scan");
        g->cap = n;
    }
    for (int j = 0; j < c->n_blocks; j++)
        ALLOC(g->bt[j].hin, (size_t)HEAD_K * g->max_pieces * Dn * N, "head gradient states");
    if (!g->pooled) ALLOC(g->pooled, Dh, "head gradient pooling");
    if (!g->A) ALLOC(g->A, (size_t)Dn * N, "head gradient scan");
    if (!g->h) ALLOC(g->h, (size_t)Dn * N, "head gradient scan");
    if (!g->dh) ALLOC(g->dh, (size_t)Dn * N, "head gradient scan");
    return WV_OK;
}

/* Gather piece [s0, s1) of direction k into the sequence buffers: u, raw δ = dt_w[k]·dt_low,
 * B, C, (Dn or N, L) layout. */
static void gather_piece(struct head_grad *g, const struct blk_tape *b, const double *dtw, int k,
                         size_t s0, size_t s1)
{
    const int Dn = g->cfg.d_inner, N = g->cfg.d_state, R = g->cfg.dt_rank, P = R + 2 * N;
    const size_t L = s1 - s0, n1 = g->n ? g->n : 1;
    const size_t *seq = g->seq + (size_t)k * n1;
#pragma omp parallel for schedule(static)
    for (long t = 0; t < (long)L; t++) {
        const size_t i = seq[s0 + (size_t)t];
        const double *u = b->u + i * Dn, *xd = b->xdbl + (i * HEAD_K + k) * P;
        for (int d = 0; d < Dn; d++) {
            double dt = 0;
            for (int q = 0; q < R; q++) dt += dtw[(size_t)d * R + q] * xd[q];
            g->su[(size_t)d * L + t] = u[d];
            g->sdel[(size_t)d * L + t] = dt;
        }
        for (int s = 0; s < N; s++) {
            g->sB[(size_t)s * L + t] = xd[R + s];
            g->sC[(size_t)s * L + t] = xd[R + N + s];
        }
    }
}

/* ---- forward -------------------------------------------------------------------------------- */

static void block_fwd(struct head_grad *g, int j, const double *p, const double *x_in,
                      double *x_out)
{
    const struct head_config *c = &g->cfg;
    const int Dh = c->d_h, Dn = c->d_inner, N = c->d_state, R = c->dt_rank, P = R + 2 * N;
    const struct blk_off *o = &g->blk[j];
    struct blk_tape *b = &g->bt[j];
    const size_t n = g->n, n1 = n ? n : 1;
    memcpy(b->x, x_in, n * Dh * sizeof *b->x);
    ln_fwd(b->x, n, Dh, p + o->norm_w, p + o->norm_b, b->zh, b->rs, b->z);
    lin_fwd(b->z, n, Dh, p + o->in_proj, NULL, b->v, Dn);
    const double *cw = p + o->conv; /* (Dn, 9) */
#pragma omp parallel for schedule(static)
    for (long i = 0; i < (long)n; i++) {
        const int y = g->rc[2 * i], x = g->rc[2 * i + 1];
        double *ci = b->c + (size_t)i * Dn;
        for (int d = 0; d < Dn; d++) ci[d] = 0;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                const int yy = y + dy, xx = x + dx;
                if (yy < 0 || yy >= g->rows || xx < 0 || xx >= g->cols) continue;
                const int32_t q = g->idx[(size_t)yy * g->cols + xx];
                if (q < 0) continue;
                const int tap = (dy + 1) * 3 + dx + 1;
                const double *vq = b->v + (size_t)q * Dn;
                for (int d = 0; d < Dn; d++) ci[d] += cw[(size_t)d * 9 + tap] * vq[d];
            }
        double *ui = b->u + (size_t)i * Dn;
        for (int d = 0; d < Dn; d++) ui[d] = ci[d] * sigm(ci[d]);
    }
    lin_fwd(b->u, n, Dn, p + o->x_proj, NULL, b->xdbl, HEAD_K * P);
    memset(b->y, 0, n * Dn * sizeof *b->y);
    for (int k = 0; k < HEAD_K; k++) {
        for (int d = 0; d < Dn; d++)
            for (int s = 0; s < N; s++) {
                g->A[(size_t)d * N + s] = -exp(p[o->A_logs + ((size_t)k * Dn + d) * N + s]);
                g->h[(size_t)d * N + s] = 0;
            }
        const size_t *pc = g->piece + (size_t)k * (g->max_pieces + 1);
        const size_t *seq = g->seq + (size_t)k * n1;
        for (int bi = 0; bi < g->n_pieces[k]; bi++) {
            memcpy(b->hin + (((size_t)k * g->max_pieces + bi) * Dn) * N, g->h,
                   (size_t)Dn * N * sizeof *g->h);
            const size_t s0 = pc[bi], s1 = pc[bi + 1], L = s1 - s0;
            if (L == 0) continue;
            gather_piece(g, b, p + o->dt_w + (size_t)k * Dn * R, k, s0, s1);
            scan_forward_f64(g->su, g->sdel, g->A, g->sB, g->sC, p + o->Ds + (size_t)k * Dn,
                             p + o->dt_b + (size_t)k * Dn, g->h, g->sy, g->h, 1, Dn, 1, N, (int)L,
                             1);
#pragma omp parallel for schedule(static)
            for (long t = 0; t < (long)L; t++) {
                double *yi = b->y + seq[s0 + (size_t)t] * Dn;
                for (int d = 0; d < Dn; d++) yi[d] += g->sy[(size_t)d * L + t];
            }
        }
    }
    ln_fwd(b->y, n, Dn, p + o->out_norm_w, p + o->out_norm_b, b->yh, b->rsy, b->o);
    /* x_out = x + out_proj(o) */
    lin_fwd(b->o, n, Dn, p + o->out_proj, NULL, x_out, Dh);
    for (size_t q = 0; q < n * Dh; q++) x_out[q] += b->x[q];
}

enum wv_status head_grad_forward(struct head_grad *g, const double *p, int rows, int cols,
                                 const uint8_t *tissue, const float *features, int chunk,
                                 double *cell_logit, double *slide_logit)
{
    g->have = 0;
    enum wv_status st = setup_grid(g, rows, cols, tissue, chunk);
    if (st) return st;
    const struct head_config *c = &g->cfg;
    const int D = c->in_dim, Dh = c->d_h, Da = c->d_attn;
    const size_t n = g->n;
    g->p = p;
    /* x0 = in_proj(in_norm(f)) */
    double *f = g->d1; /* (n, D) fits: d1 is n·max(D, …) */
    for (size_t q = 0; q < n * D; q++) f[q] = features[q];
    ln_fwd(f, n, D, p + g->in_norm_w, p + g->in_norm_b, g->zh0, g->rs0, g->z0);
    double *x = g->d2, *x2 = g->d3;
    lin_fwd(g->z0, n, D, p + g->in_proj_w, p + g->in_proj_b, x, Dh);
    for (int j = 0; j < c->n_blocks; j++) {
        block_fwd(g, j, p, x, x2);
        double *t = x;
        x = x2;
        x2 = t;
    }
    memcpy(g->xL, x, n * Dh * sizeof *x);
    ln_fwd(g->xL, n, Dh, p + g->norm_w, p + g->norm_b, g->gh, g->rsg, g->g);
    lin_fwd(g->g, n, Dh, p + g->cls_w, p + g->cls_b, g->logit, 1);
    lin_fwd(g->g, n, Dh, p + g->attV_w, p + g->attV_b, g->hv, Da);
    lin_fwd(g->g, n, Dh, p + g->attU_w, p + g->attU_b, g->hu, Da);
    for (size_t q = 0; q < n * Da; q++) g->gate[q] = tanh(g->hv[q]) * sigm(g->hu[q]);
    lin_fwd(g->gate, n, Da, p + g->attw_w, p + g->attw_b, g->att, 1);
    double amax = -INFINITY;
    g->mx = -INFINITY;
    g->amax = 0;
    for (size_t i = 0; i < n; i++) {
        if (g->att[i] > amax) amax = g->att[i];
        if (g->logit[i] > g->mx) g->mx = g->logit[i], g->amax = i;
    }
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (g->alpha[i] = exp(g->att[i] - amax));
    for (int d = 0; d < Dh; d++) g->pooled[d] = 0;
    for (size_t i = 0; i < n; i++) {
        g->alpha[i] /= s;
        for (int d = 0; d < Dh; d++) g->pooled[d] += g->alpha[i] * g->g[i * Dh + d];
    }
    const double *sw = p + g->slide_w;
    double sl = p[g->slide_b];
    for (int d = 0; d < Dh; d++) sl += sw[d] * g->pooled[d];
    sl += sw[Dh] * g->mx;
    g->slide_logit = n ? sl : NAN;
    if (slide_logit) *slide_logit = g->slide_logit;
    if (cell_logit) memcpy(cell_logit, g->logit, n * sizeof *cell_logit);
    g->have = 1;
    return WV_OK;
}

/* ---- backward ------------------------------------------------------------------------------- */

/* dx_in (n, Dh) = gradient w.r.t. the block input, given dx_out (n, Dh) (its own buffer). */
static enum wv_status block_bwd(struct head_grad *g, int j, const double *p, const double *dxo,
                                double *dxi, double *gr)
{
    const struct head_config *c = &g->cfg;
    const int Dh = c->d_h, Dn = c->d_inner, N = c->d_state, R = c->dt_rank, P = R + 2 * N;
    const struct blk_off *o = &g->blk[j];
    struct blk_tape *b = &g->bt[j];
    const size_t n = g->n, n1 = n ? n : 1;
    double *dO = g->d4;    /* (n, Dn) */
    double *dY = g->d1;    /* (n, Dn) — d1 is free here (caller keeps dxo/dxi in d2/d3) */
    /* residual + out_proj */
    memcpy(dxi, dxo, n * Dh * sizeof *dxi);
    lin_bwd(b->o, n, Dn, p + o->out_proj, dxo, Dh, dO, 0, gr + o->out_proj, NULL);
    ln_bwd(b->yh, b->rsy, n, Dn, p + o->out_norm_w, dO, dY, 0, gr + o->out_norm_w,
           gr + o->out_norm_b);
    /* scans: dY goes to each direction; du (n, Dn) and dxdbl (n, K·P) collect */
    double *dU = g->d4; /* dO no longer needed */
    double *dX = malloc(n1 * HEAD_K * P * sizeof *dX);
    if (!dX) return error_set(WV_ENOMEM, "head gradient: dxdbl");
    memset(dU, 0, n * Dn * sizeof *dU);
    memset(dX, 0, n * HEAD_K * P * sizeof *dX);
    for (int k = 0; k < HEAD_K; k++) {
        for (int d = 0; d < Dn; d++)
            for (int s = 0; s < N; s++) {
                g->A[(size_t)d * N + s] = -exp(p[o->A_logs + ((size_t)k * Dn + d) * N + s]);
                g->dh[(size_t)d * N + s] = 0;
            }
        const size_t *pc = g->piece + (size_t)k * (g->max_pieces + 1);
        const size_t *seq = g->seq + (size_t)k * n1;
        const double *dtw = p + o->dt_w + (size_t)k * Dn * R;
        double *gdtw = gr + o->dt_w + (size_t)k * Dn * R;
        double *gA = malloc((size_t)Dn * N * sizeof *gA);
        if (!gA) {
            free(dX);
            return error_set(WV_ENOMEM, "head gradient: dA");
        }
        memset(gA, 0, (size_t)Dn * N * sizeof *gA);
        for (int bi = g->n_pieces[k] - 1; bi >= 0; bi--) {
            const size_t s0 = pc[bi], s1 = pc[bi + 1], L = s1 - s0;
            if (L == 0) continue;
            gather_piece(g, b, dtw, k, s0, s1);
            for (size_t t = 0; t < L; t++) {
                const double *dy = dY + seq[s0 + t] * Dn;
                for (int d = 0; d < Dn; d++) g->sdy[(size_t)d * L + t] = dy[d];
            }
            const double *hin = b->hin + (((size_t)k * g->max_pieces + bi) * Dn) * N;
            enum wv_status st = scan_backward_f64(
                g->su, g->sdel, g->A, g->sB, g->sC, p + o->Ds + (size_t)k * Dn,
                p + o->dt_b + (size_t)k * Dn, hin, g->sdy, g->dh, g->sdu, g->sddel, gA, g->sdB,
                g->sdC, gr + o->Ds + (size_t)k * Dn, gr + o->dt_b + (size_t)k * Dn, g->dh, 1, Dn,
                1, N, (int)L, 1);
            if (st) {
                free(gA);
                free(dX);
                return st;
            }
            /* scatter: du, dB, dC, d dt_low = dt_wᵀ·dδ; d dt_w += dδ·dt_lowᵀ */
#pragma omp parallel for schedule(static)
            for (long t = 0; t < (long)L; t++) {
                const size_t i = seq[s0 + (size_t)t];
                double *du = dU + i * Dn, *dx = dX + (i * HEAD_K + k) * P;
                for (int d = 0; d < Dn; d++) du[d] += g->sdu[(size_t)d * L + t];
                for (int s = 0; s < N; s++) {
                    dx[R + s] += g->sdB[(size_t)s * L + t];
                    dx[R + N + s] += g->sdC[(size_t)s * L + t];
                }
                for (int q = 0; q < R; q++) {
                    double a = 0;
                    for (int d = 0; d < Dn; d++) a += g->sddel[(size_t)d * L + t] * dtw[(size_t)d * R + q];
                    dx[q] += a;
                }
            }
#pragma omp parallel for schedule(static)
            for (int d = 0; d < Dn; d++)
                for (int q = 0; q < R; q++) {
                    double a = 0;
                    for (size_t t = 0; t < L; t++)
                        a += g->sddel[(size_t)d * L + t] *
                             b->xdbl[(seq[s0 + t] * HEAD_K + k) * P + q];
                    gdtw[(size_t)d * R + q] += a;
                }
        }
        /* dA_logs = dA · dA/dA_logs = dA · A */
        for (int d = 0; d < Dn; d++)
            for (int s = 0; s < N; s++)
                gr[o->A_logs + ((size_t)k * Dn + d) * N + s] +=
                    gA[(size_t)d * N + s] * g->A[(size_t)d * N + s];
        free(gA);
    }
    /* x_proj */
    lin_bwd(b->u, n, Dn, p + o->x_proj, dX, HEAD_K * P, dU, 1, gr + o->x_proj, NULL);
    free(dX);
    /* SiLU: dc = du · σ(c)(1 + c(1 − σ(c))) */
    double *dC = dU;
    for (size_t q = 0; q < n * Dn; q++) {
        const double cc = b->c[q], s = sigm(cc);
        dC[q] = dU[q] * s * (1 + cc * (1 - s));
    }
    /* masked conv: dv[q] += w·dc[i]; dw[d, tap] += dc[i]·v[q]. Gather form (per target cell q,
     * sum over the cells i that read it: i = q − offset, tap mirrored) keeps it race-free. */
    double *dV = g->d1; /* dY is consumed */
    const double *cw = p + o->conv;
#pragma omp parallel for schedule(static)
    for (long q = 0; q < (long)n; q++) {
        const int y = g->rc[2 * q], x = g->rc[2 * q + 1];
        double *dv = dV + (size_t)q * Dn;
        for (int d = 0; d < Dn; d++) dv[d] = 0;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                /* cell i at (y − dy, x − dx) reads q through tap (dy, dx) */
                const int yy = y - dy, xx = x - dx;
                if (yy < 0 || yy >= g->rows || xx < 0 || xx >= g->cols) continue;
                const int32_t i = g->idx[(size_t)yy * g->cols + xx];
                if (i < 0) continue;
                const int tap = (dy + 1) * 3 + dx + 1;
                const double *dci = dC + (size_t)i * Dn;
                for (int d = 0; d < Dn; d++) dv[d] += cw[(size_t)d * 9 + tap] * dci[d];
            }
    }
    double *gcw = gr + o->conv;
#pragma omp parallel for schedule(static)
    for (int d = 0; d < Dn; d++) {
        double acc[9] = {0};
        for (size_t i = 0; i < n; i++) {
            const int y = g->rc[2 * i], x = g->rc[2 * i + 1];
            const double dci = dC[i * Dn + d];
            for (int tap = 0; tap < 9; tap++) {
                const int yy = y + tap / 3 - 1, xx = x + tap % 3 - 1;
                if (yy < 0 || yy >= g->rows || xx < 0 || xx >= g->cols) continue;
                const int32_t q = g->idx[(size_t)yy * g->cols + xx];
                if (q >= 0) acc[tap] += dci * b->v[(size_t)q * Dn + d];
            }
        }
        for (int tap = 0; tap < 9; tap++) gcw[(size_t)d * 9 + tap] += acc[tap];
    }
    /* in_proj, norm */
    double *dZ = g->d4; /* dC consumed */
    lin_bwd(b->z, n, Dh, p + o->in_proj, dV, Dn, dZ, 0, gr + o->in_proj, NULL);
    ln_bwd(b->zh, b->rs, n, Dh, p + o->norm_w, dZ, dxi, 1, gr + o->norm_w, gr + o->norm_b);
    return WV_OK;
}

enum wv_status head_grad_backward(struct head_grad *g, const double *dlogit, double dS,
                                  double *gr)
{
    if (!g->have) return error_set(WV_EINVAL, "head gradient: backward without a forward");
    const struct head_config *c = &g->cfg;
    const int D = c->in_dim, Dh = c->d_h, Da = c->d_attn;
    const size_t n = g->n;
    const double *p = g->p;
    if (n == 0) return WV_OK;
    /* slide classifier */
    const double *sw = p + g->slide_w;
    for (int d = 0; d < Dh; d++) gr[g->slide_w + d] += dS * g->pooled[d];
    gr[g->slide_w + Dh] += dS * g->mx;
    gr[g->slide_b] += dS;
    /* per-cell logit gradient incl. the max term */
    double *dL = g->d4;
    for (size_t i = 0; i < n; i++) dL[i] = dlogit ? dlogit[i] : 0.0;
    dL[g->amax] += dS * sw[Dh];
    /* attention: dα_i = dpooled·g_i, da = α(dα − Σ α dα) */
    double *dG = g->d2; /* (n, Dh) */
    double *da = g->d3; /* (n) */
    double sad = 0;
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        for (int d = 0; d < Dh; d++) s += dS * sw[d] * g->g[i * Dh + d];
        da[i] = s;
        sad += g->alpha[i] * s;
    }
    for (size_t i = 0; i < n; i++) {
        da[i] = g->alpha[i] * (da[i] - sad);
        for (int d = 0; d < Dh; d++) dG[i * Dh + d] = g->alpha[i] * dS * sw[d];
    }
    /* a = attn_w·gate + bw */
    double *dgate = g->d1; /* (n, Da) */
    lin_bwd(g->gate, n, Da, p + g->attw_w, da, 1, dgate, 0, gr + g->attw_w, gr + g->attw_b);
    double *dhv = g->d3, *dhu = malloc(n * Da * sizeof *dhu); /* da consumed */
    if (!dhu) return error_set(WV_ENOMEM, "head gradient: attention");
    for (size_t q = 0; q < n * Da; q++) {
        const double th = tanh(g->hv[q]), sg = sigm(g->hu[q]);
        dhv[q] = dgate[q] * sg * (1 - th * th);
        dhu[q] = dgate[q] * th * sg * (1 - sg);
    }
    lin_bwd(g->g, n, Dh, p + g->attV_w, dhv, Da, dG, 1, gr + g->attV_w, gr + g->attV_b);
    lin_bwd(g->g, n, Dh, p + g->attU_w, dhu, Da, dG, 1, gr + g->attU_w, gr + g->attU_b);
    free(dhu);
    lin_bwd(g->g, n, Dh, p + g->cls_w, dL, 1, dG, 1, gr + g->cls_w, gr + g->cls_b);
    /* final LayerNorm → dx (n, Dh) in d3 */
    double *dx = g->d3, *dx2 = g->d2;
    ln_bwd(g->gh, g->rsg, n, Dh, p + g->norm_w, dG, dx, 0, gr + g->norm_w, gr + g->norm_b);
    for (int j = c->n_blocks - 1; j >= 0; j--) {
        enum wv_status st = block_bwd(g, j, p, dx, dx2, gr);
        if (st) return st;
        double *t = dx;
        dx = dx2;
        dx2 = t;
    }
    /* in_proj (+bias) and in_norm: the features are constants, no input gradient needed */
    double *dz0 = malloc(n * D * sizeof *dz0);
    if (!dz0) return error_set(WV_ENOMEM, "head gradient: input projection");
    lin_bwd(g->z0, n, D, p + g->in_proj_w, dx, Dh, dz0, 0, gr + g->in_proj_w, gr + g->in_proj_b);
    ln_bwd(g->zh0, g->rs0, n, D, p + g->in_norm_w, dz0, NULL, 0, gr + g->in_norm_w,
           gr + g->in_norm_b);
    free(dz0);
    return WV_OK;
}
