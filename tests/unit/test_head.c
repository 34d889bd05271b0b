/*
 * test_head.c — the slide context head (src/head.h): configuration and its JSON, seeded init,
 * the forward against an independent float64 reference written from the equations in head.h,
 * and the streaming claims of issue 4: chunked == unchunked (bit-identical) for every chunk size
 * on grids of awkward shapes (1×1, 1×N, N×1, holes, empty rows/columns, no tissue), 1 vs 2
 * threads identical, features added region by region == one shot, invariance to background
 * padding, and the error paths.
 */
#include "src/head.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static uint64_t rs = 12345;
static double urand(void)
{
    rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rs >> 11) * 0x1.0p-53;
}

static struct head_config small_cfg(void)
{
    struct head_config c;
    head_config_default(&c, 12);
    c.d_h = 8;
    head_config_derive(&c);
    c.d_state = 3;
    c.d_attn = 5;
    return c;
}

/* The test's random heads get larger-than-init weights so every path carries signal. */
static struct head *make_head(const struct head_config *c, uint64_t seed)
{
    struct head *h;
    if (head_create_random(c, seed, &h)) return NULL;
    int n;
    const struct weight_tensor *t = head_tensors(h, &n);
    for (int i = 0; i < n; i++) {
        int is_w = strstr(t[i].name, ".weight") && !strstr(t[i].name, "norm");
        int is_b = strstr(t[i].name, ".bias") && !strstr(t[i].name, "dt_projs");
        for (int64_t q = 0; q < t[i].numel; q++) {
            if (is_w) t[i].data[q] = (float)((urand() * 2 - 1) * 0.6);
            else if (is_b || strstr(t[i].name, "norm")) t[i].data[q] += (float)((urand() * 2 - 1) * 0.2);
        }
    }
    return h;
}

/* ---- float64 reference of head.h's equations ---------------------------------------------- */

static const float *P(const struct head *h, const char *name)
{
    int n;
    const struct weight_tensor *t = head_tensors(h, &n);
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) return t[i].data;
    fprintf(stderr, "no tensor %s\n", name);
    abort();
}

static void ln_d(const double *x, const float *g, const float *b, double *y, int C)
{
    double m = 0, v = 0;
    for (int c = 0; c < C; c++) m += x[c];
    m /= C;
    for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
    v /= C;
    for (int c = 0; c < C; c++) y[c] = (x[c] - m) / sqrt(v + 1e-5) * g[c] + b[c];
}
static void lin_d(const double *x, const float *w, const float *b, double *y, int K, int No)
{
    for (int o = 0; o < No; o++) {
        double a = b ? b[o] : 0;
        for (int k = 0; k < K; k++) a += (double)w[(size_t)o * K + k] * x[k];
        y[o] = a;
    }
}
static double sp_d(double x) { return x > 20 ? x : log1p(exp(x)); }

/* reference: cell logits (n), attention (n), slide logit */
static void reference(const struct head *h, int rows, int cols, const uint8_t *tis,
                      const float *feat, double *logit, double *att, double *slide)
{
    const struct head_config *c = head_get_config(h);
    const int D = c->in_dim, Dh = c->d_h, Dn = c->d_inner, N = c->d_state, R = c->dt_rank,
              Pn = R + 2 * N, Da = c->d_attn;
    int n = 0, *idx = malloc(sizeof(int) * rows * cols);
    for (int q = 0; q < rows * cols; q++) idx[q] = tis[q] ? n++ : -1;
    double *x = calloc((size_t)n * Dh + 1, sizeof *x), *tmp = malloc(sizeof(double) * (D + Dh + Dn));
    double *v = calloc((size_t)n * Dn + 1, 8), *u = calloc((size_t)n * Dn + 1, 8),
           *xd = calloc((size_t)n * 4 * Pn + 1, 8), *y = calloc((size_t)n * Dn + 1, 8);
    double *fd = malloc(sizeof(double) * D);
    for (int i = 0; i < n; i++) {
        for (int d = 0; d < D; d++) fd[d] = feat[(size_t)i * D + d];
        ln_d(fd, P(h, "in_norm.weight"), P(h, "in_norm.bias"), tmp, D);
        lin_d(tmp, P(h, "in_proj.weight"), P(h, "in_proj.bias"), x + (size_t)i * Dh, D, Dh);
    }
    char nm[128];
#define BP(s) (snprintf(nm, sizeof nm, "blocks.%d." s, j), P(h, nm))
    for (int j = 0; j < c->n_blocks; j++) {
        for (int i = 0; i < n; i++) {
            ln_d(x + (size_t)i * Dh, BP("norm.weight"), BP("norm.bias"), tmp, Dh);
            lin_d(tmp, BP("in_proj.weight"), NULL, v + (size_t)i * Dn, Dh, Dn);
        }
        const float *cw = BP("conv2d.weight"), *xw = BP("x_proj_weight");
        for (int q = 0; q < rows * cols; q++) {
            int i = idx[q];
            if (i < 0) continue;
            int r = q / cols, cc = q % cols;
            for (int d = 0; d < Dn; d++) {
                double a = 0;
                for (int ky = 0; ky < 3; ky++)
                    for (int kx = 0; kx < 3; kx++) {
                        int yy = r + ky - 1, xx = cc + kx - 1;
                        if (yy < 0 || yy >= rows || xx < 0 || xx >= cols || idx[yy * cols + xx] < 0) continue;
                        a += cw[d * 9 + ky * 3 + kx] * v[(size_t)idx[yy * cols + xx] * Dn + d];
                    }
                u[(size_t)i * Dn + d] = a / (1 + exp(-a));
            }
            for (int k = 0; k < 4; k++)
                lin_d(u + (size_t)i * Dn, xw + (size_t)k * Pn * Dn, NULL, xd + ((size_t)i * 4 + k) * Pn, Dn, Pn);
        }
        for (int q = 0; q < n * Dn; q++) y[q] = 0;
        const float *dtw = BP("dt_projs_weight"), *dtb = BP("dt_projs_bias"), *Al = BP("A_logs"),
                    *Ds = BP("Ds");
        int *order = malloc(sizeof(int) * (n + 1));
        for (int k = 0; k < 4; k++) {
            int L = 0;
            if (k % 2 == 0) {
                for (int q = 0; q < rows * cols; q++)
                    if (idx[q] >= 0) order[L++] = idx[q];
            } else {
                for (int cc = 0; cc < cols; cc++)
                    for (int r = 0; r < rows; r++)
                        if (idx[r * cols + cc] >= 0) order[L++] = idx[r * cols + cc];
            }
            for (int d = 0; d < Dn; d++) {
                double hs[64] = {0};
                for (int t0 = 0; t0 < L; t0++) {
                    int i = order[k >= 2 ? L - 1 - t0 : t0];
                    const double *xx = xd + ((size_t)i * 4 + k) * Pn;
                    double dl = dtb[k * Dn + d];
                    for (int q = 0; q < R; q++) dl += dtw[((size_t)k * Dn + d) * R + q] * xx[q];
                    dl = sp_d(dl);
                    double ud = u[(size_t)i * Dn + d], acc = 0;
                    for (int s = 0; s < N; s++) {
                        double A = -exp((double)Al[((size_t)k * Dn + d) * N + s]);
                        hs[s] = exp(dl * A) * hs[s] + dl * xx[R + s] * ud;
                        acc += xx[R + N + s] * hs[s];
                    }
                    y[(size_t)i * Dn + d] += acc + Ds[k * Dn + d] * ud;
                }
            }
        }
        free(order);
        for (int i = 0; i < n; i++) {
            double o[256];
            ln_d(y + (size_t)i * Dn, BP("out_norm.weight"), BP("out_norm.bias"), tmp, Dn);
            lin_d(tmp, BP("out_proj.weight"), NULL, o, Dn, Dh);
            for (int d = 0; d < Dh; d++) x[(size_t)i * Dh + d] += o[d];
        }
    }
#undef BP
    double amax = -INFINITY, lmax = -INFINITY, *pooled = calloc((size_t)Dh, 8), s = 0;
    double *g = malloc(sizeof(double) * ((size_t)n * Dh + 1));
    for (int i = 0; i < n; i++) {
        ln_d(x + (size_t)i * Dh, P(h, "norm.weight"), P(h, "norm.bias"), g + (size_t)i * Dh, Dh);
        lin_d(g + (size_t)i * Dh, P(h, "cell_cls.weight"), P(h, "cell_cls.bias"), &logit[i], Dh, 1);
        double hv[256], hu[256];
        lin_d(g + (size_t)i * Dh, P(h, "attn_V.weight"), P(h, "attn_V.bias"), hv, Dh, Da);
        lin_d(g + (size_t)i * Dh, P(h, "attn_U.weight"), P(h, "attn_U.bias"), hu, Dh, Da);
        double a = P(h, "attn_w.bias")[0];
        for (int q = 0; q < Da; q++) a += P(h, "attn_w.weight")[q] * tanh(hv[q]) / (1 + exp(-hu[q]));
        att[i] = a;
        if (a > amax) amax = a;
        if (logit[i] > lmax) lmax = logit[i];
    }
    for (int i = 0; i < n; i++) s += (att[i] = exp(att[i] - amax));
    for (int i = 0; i < n; i++) {
        att[i] /= s;
        for (int d = 0; d < Dh; d++) pooled[d] += att[i] * g[(size_t)i * Dh + d];
    }
    double sl = P(h, "slide_cls.bias")[0];
    for (int d = 0; d < Dh; d++) sl += P(h, "slide_cls.weight")[d] * pooled[d];
    *slide = sl + P(h, "slide_cls.weight")[Dh] * lmax;
    free(idx); free(x); free(tmp); free(v); free(u); free(xd); free(y); free(fd); free(pooled); free(g);
}

/* ---- grids ------------------------------------------------------------------------------- */

struct grid {
    int rows, cols, n;
    uint8_t *tis;
    float *feat; /* (n, D) */
};

/* kinds: 0 random holes, 1 all tissue, 2 none, 3 empty rows and columns, 4 single cell */
static struct grid make_grid(int rows, int cols, int kind, int D)
{
    struct grid g = {rows, cols, 0, malloc((size_t)rows * cols), NULL};
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            int t;
            switch (kind) {
            case 0: t = urand() < 0.65; break;
            case 1: t = 1; break;
            case 2: t = 0; break;
            case 3: t = (r % 3 != 1) && (c % 4 != 2) && urand() < 0.8; break;
            default: t = r == rows / 2 && c == cols / 2;
            }
            g.tis[r * cols + c] = (uint8_t)t;
            g.n += t;
        }
    g.feat = malloc(sizeof(float) * ((size_t)g.n * D + 1));
    for (size_t q = 0; q < (size_t)g.n * D; q++) g.feat[q] = (float)(urand() * 4 - 2);
    return g;
}

struct outs {
    float *logit, *prob, *att, *hid;
    struct head_outputs o;
};
static void outs_init(struct outs *s, const struct grid *g, int Dh)
{
    size_t G = (size_t)g->rows * g->cols;
    s->logit = malloc(G * 4);
    s->prob = malloc(G * 4);
    s->att = malloc(G * 4);
    s->hid = malloc(((size_t)g->n * Dh + 1) * 4);
    memset(&s->o, 0, sizeof s->o);
    s->o.cell_logit = s->logit, s->o.cell_prob = s->prob, s->o.attention = s->att;
    s->o.cell_hidden = s->hid;
}
static void outs_free(struct outs *s)
{
    free(s->logit); free(s->prob); free(s->att); free(s->hid);
}
/* bitwise equal, NaN == NaN */
static int same(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}
static int same_outs(const struct outs *a, const struct outs *b, const struct grid *g, int Dh)
{
    size_t G = (size_t)g->rows * g->cols;
    return same(a->logit, b->logit, G) && same(a->prob, b->prob, G) && same(a->att, b->att, G) &&
           same(a->hid, b->hid, (size_t)g->n * Dh) &&
           same(&a->o.slide_logit, &b->o.slide_logit, 1) &&
           same(&a->o.slide_prob, &b->o.slide_prob, 1) &&
           same(&a->o.max_cell_logit, &b->o.max_cell_logit, 1) && a->o.n_cells == b->o.n_cells;
}

static void test_config(void)
{
    struct head_config c, d;
    head_config_default(&c, 768);
    CHECK(c.d_h == 128 && c.n_blocks == 2 && c.d_inner == 128 && c.d_state == 4 &&
          c.dt_rank == 8 && c.d_attn == 64);
    char *j = head_config_json(&c);
    CHECK(j && head_config_parse(j, &d) == WV_OK && !memcmp(&c, &d, sizeof c));
    free(j);
    error_clear();
    CHECK(head_config_parse("{\"in_dim\":768}", &d) == WV_EFORMAT);
    CHECK_MSG(strstr(error_msg(), "d_h"), "%s", error_msg());
    error_clear();
    CHECK(head_config_parse("[1]", &d) == WV_EFORMAT);
    error_clear();
    c.d_state = 0;
    CHECK(head_config_check(&c) == WV_EINVAL);
    error_clear();
}

static void test_init(void)
{
    struct head_config c;
    head_config_default(&c, 96);
    struct head *a, *b, *x;
    CHECK(head_create_random(&c, 7, &a) == WV_OK);
    CHECK(head_create_random(&c, 7, &b) == WV_OK);
    CHECK(head_create_random(&c, 8, &x) == WV_OK);
    size_t na, nb, nx;
    float *pa = head_params(a, &na), *pb = head_params(b, &nb), *px = head_params(x, &nx);
    CHECK(na == nb && !memcmp(pa, pb, na * 4));
    CHECK(memcmp(pa, px, na * 4) != 0);
    const float *al = P(a, "blocks.1.A_logs"), *ds = P(a, "blocks.0.Ds"), *db = P(a, "blocks.0.dt_projs_bias");
    CHECK(al[0] == 0.0f && fabsf(al[3] - logf(4)) < 1e-6f && ds[5] == 1.0f);
    int ok = 1;
    for (int i = 0; i < 4 * 128; i++) {
        double dt = log1p(exp((double)db[i]));
        ok &= dt > 0.9e-3 && dt < 0.11;
    }
    CHECK_MSG(ok, "dt bias not softplus^-1 of [1e-3, 1e-1]");
    int n;
    const struct weight_tensor *t = head_tensors(a, &n);
    size_t sum = 0;
    for (int i = 0; i < n; i++) sum += (size_t)t[i].numel;
    CHECK(sum == na && t[0].data == pa);
    printf("default head for D=96: %d tensors, %zu parameters\n", n, na);
    head_free(a); head_free(b); head_free(x);
}

static void test_reference(void)
{
    struct head_config c = small_cfg();
    struct head *h = make_head(&c, 3);
    CHECK(h != NULL);
    const int shapes[][3] = {{5, 7, 0}, {1, 9, 1}, {8, 1, 1}, {6, 6, 3}, {1, 1, 1}, {4, 5, 4}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        struct grid g = make_grid(shapes[s][0], shapes[s][1], shapes[s][2], c.in_dim);
        struct outs o;
        outs_init(&o, &g, c.d_h);
        struct head_grid hg = {g.rows, g.cols, g.tis, g.feat, c.in_dim};
        CHECK(head_forward(h, &hg, 0, 1, &o.o) == WV_OK);
        double *lg = malloc(8 * (g.n + 1)), *at = malloc(8 * (g.n + 1)), sl;
        reference(h, g.rows, g.cols, g.tis, g.feat, lg, at, &sl);
        float *wl = malloc(4 * (g.n + 1)), *wa = malloc(4 * (g.n + 1)), *gl = malloc(4 * (g.n + 1)),
              *ga = malloc(4 * (g.n + 1));
        for (int q = 0, i = 0; q < g.rows * g.cols; q++) {
            if (!g.tis[q]) {
                CHECK(isnan(o.logit[q]) && isnan(o.prob[q]) && isnan(o.att[q]));
                continue;
            }
            wl[i] = (float)lg[i], wa[i] = (float)at[i], gl[i] = o.logit[q], ga[i] = o.att[q];
            CHECK(fabsf(o.prob[q] - 1 / (1 + expf(-o.logit[q]))) < 1e-6f);
            i++;
        }
        char label[64];
        /* float32 vs float64 through two blocks of scans with weights of ±0.6: 1e-4 relative
         * covers the fp32 rounding seen (~1e-6..1e-5) with margin */
        snprintf(label, sizeof label, "ref %dx%d cell logits", g.rows, g.cols);
        tu_check_tensor(label, gl, wl, (size_t)g.n, 1e-4, 1e-4);
        snprintf(label, sizeof label, "ref %dx%d attention", g.rows, g.cols);
        tu_check_tensor(label, ga, wa, (size_t)g.n, 1e-5, 1e-4);
        CHECK_MSG(fabs(o.o.slide_logit - sl) < 1e-4 * (1 + fabs(sl)), "slide %g vs %g",
                  o.o.slide_logit, sl);
        CHECK(o.o.n_cells == (size_t)g.n);
        free(lg); free(at); free(wl); free(wa); free(gl); free(ga);
        outs_free(&o);
        free(g.tis); free(g.feat);
    }
    head_free(h);
}

/* chunked == unchunked, bit-identical, for every chunk size; 1 vs 2 threads */
static void test_streaming(void)
{
    struct head_config c = small_cfg();
    struct head *h = make_head(&c, 11);
    const int shapes[][3] = {{1, 1, 1}, {1, 1, 2}, {1, 13, 0}, {13, 1, 0}, {1, 6, 1},
                             {9, 1, 1}, {7, 11, 0}, {11, 7, 3}, {6, 5, 2}, {10, 10, 3},
                             {5, 9, 4}, {16, 3, 0}, {3, 17, 1}};
    int n_cases = 0, bad = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        struct grid g = make_grid(shapes[s][0], shapes[s][1], shapes[s][2], c.in_dim);
        struct head_grid hg = {g.rows, g.cols, g.tis, g.feat, c.in_dim};
        struct outs ref;
        outs_init(&ref, &g, c.d_h);
        CHECK(head_forward(h, &hg, 0, 1, &ref.o) == WV_OK);
        if (g.n == 0)
            CHECK(isnan(ref.o.slide_prob) && isnan(ref.o.slide_logit) && ref.o.n_cells == 0);
        int big = g.rows > g.cols ? g.rows : g.cols;
        for (int chunk = 1; chunk <= big + 1; chunk++)
            for (int thr = 1; thr <= 2; thr++) {
                struct outs o;
                outs_init(&o, &g, c.d_h);
                enum wv_status st = head_forward(h, &hg, chunk, thr, &o.o);
                n_cases++;
                if (st || !same_outs(&o, &ref, &g, c.d_h)) {
                    bad++;
                    fprintf(stderr, "  grid %dx%d kind %d chunk %d threads %d: differs\n", g.rows,
                            g.cols, shapes[s][2], chunk, thr);
                }
                outs_free(&o);
            }
        outs_free(&ref);
        free(g.tis); free(g.feat);
    }
    CHECK(bad == 0);
    printf("streaming: %d (grid, chunk, threads) cases bit-identical to one unchunked pass: %s\n",
           n_cases, bad ? "FAIL" : "OK");
    head_free(h);
}

/* a larger default-width head: chunks vs whole and 1 vs 2 threads */
static void test_streaming_default(void)
{
    struct head_config c;
    head_config_default(&c, 48);
    c.d_h = 32;
    head_config_derive(&c);
    struct head *h = make_head(&c, 5);
    struct grid g = make_grid(23, 31, 0, c.in_dim);
    struct head_grid hg = {g.rows, g.cols, g.tis, g.feat, c.in_dim};
    struct outs a, b, d;
    outs_init(&a, &g, c.d_h);
    outs_init(&b, &g, c.d_h);
    outs_init(&d, &g, c.d_h);
    CHECK(head_forward(h, &hg, 0, 2, &a.o) == WV_OK);
    CHECK(head_forward(h, &hg, 4, 1, &b.o) == WV_OK);
    CHECK(head_forward(h, &hg, 7, 2, &d.o) == WV_OK);
    CHECK(same_outs(&a, &b, &g, c.d_h));
    CHECK(same_outs(&a, &d, &g, c.d_h));
    printf("default-shaped head 23x31: slide prob %.6f, chunked/threads identical: %s\n",
           a.o.slide_prob, same_outs(&a, &b, &g, c.d_h) && same_outs(&a, &d, &g, c.d_h) ? "OK" : "FAIL");
    outs_free(&a); outs_free(&b); outs_free(&d);
    free(g.tis); free(g.feat);
    head_free(h);
}

/* features added region by region (dense maps with a row stride, background garbage) == one shot;
 * and the same tissue embedded in a grid padded with background gives the same cell outputs */
static void test_regions_and_padding(void)
{
    struct head_config c = small_cfg();
    const int D = c.in_dim;
    struct head *h = make_head(&c, 21);
    struct grid g = make_grid(9, 14, 0, D);
    struct head_grid hg = {g.rows, g.cols, g.tis, g.feat, D};
    struct outs ref;
    outs_init(&ref, &g, c.d_h);
    CHECK(head_forward(h, &hg, 0, 1, &ref.o) == WV_OK);
    /* dense (rows, cols, D) map, background filled with garbage */
    float *dense = malloc(sizeof(float) * g.rows * g.cols * D);
    for (size_t q = 0; q < (size_t)g.rows * g.cols * D; q++) dense[q] = 1e30f;
    {
        int i = 0;
        for (int q = 0; q < g.rows * g.cols; q++)
            if (g.tis[q]) {
                for (int d = 0; d < D; d++) dense[(size_t)q * D + d] = g.feat[(size_t)i * D + d];
                i++;
            }
    }
    struct head_run *run;
    CHECK(head_run_create(h, g.rows, g.cols, g.tis, &run) == WV_OK);
    struct outs o;
    outs_init(&o, &g, c.d_h);
    error_clear();
    CHECK(head_run_finish(run, 0, 1, &o.o) == WV_EINVAL); /* nothing added yet */
    CHECK_MSG(strstr(error_msg(), "got no features"), "%s", error_msg());
    error_clear();
    /* regions of 4×5 cells (last ones partial), added bottom-up to show order does not matter */
    for (int r0 = ((g.rows - 1) / 4) * 4; r0 >= 0; r0 -= 4)
        for (int c0 = 0; c0 < g.cols; c0 += 5) {
            int nr = g.rows - r0 < 4 ? g.rows - r0 : 4, nc = g.cols - c0 < 5 ? g.cols - c0 : 5;
            CHECK(head_run_add(run, r0, c0, nr, nc, dense + ((size_t)r0 * g.cols + c0) * D,
                               (size_t)g.cols) == WV_OK);
        }
    CHECK(head_run_finish(run, 3, 2, &o.o) == WV_OK);
    CHECK(same_outs(&o, &ref, &g, c.d_h));
    /* finishing twice gives the same */
    struct outs o2;
    outs_init(&o2, &g, c.d_h);
    CHECK(head_run_finish(run, 0, 1, &o2.o) == WV_OK && same_outs(&o2, &ref, &g, c.d_h));
    outs_free(&o2);
    /* errors */
    CHECK(head_run_add(run, 8, 0, 2, 1, dense, 1) == WV_EINVAL);
    error_clear();
    CHECK(head_run_add(run, 0, 0, 1, 3, dense, 2) == WV_EINVAL);
    error_clear();
    int32_t bad_rc[2] = {0, 0};
    for (int q = 0; q < g.rows * g.cols; q++)
        if (!g.tis[q]) {
            bad_rc[0] = q / g.cols, bad_rc[1] = q % g.cols;
            break;
        }
    CHECK(head_run_add_cells(run, 1, bad_rc, g.feat) == WV_EINVAL);
    CHECK_MSG(strstr(error_msg(), "not a tissue cell"), "%s", error_msg());
    error_clear();
    head_run_free(run);
    outs_free(&o);

    /* padding: 2 background rows on top, 3 columns on the left, 1 row and 2 cols after */
    int PR = g.rows + 3, PC = g.cols + 5;
    uint8_t *pt = calloc((size_t)PR * PC, 1);
    for (int r = 0; r < g.rows; r++)
        for (int cc = 0; cc < g.cols; cc++) pt[(r + 2) * PC + cc + 3] = g.tis[r * g.cols + cc];
    struct grid pg = {PR, PC, g.n, pt, g.feat};
    struct head_grid phg = {PR, PC, pt, g.feat, D};
    struct outs po;
    outs_init(&po, &pg, c.d_h);
    CHECK(head_forward(h, &phg, 2, 1, &po.o) == WV_OK);
    int ok = same(&po.o.slide_logit, &ref.o.slide_logit, 1) && same(po.hid, ref.hid, (size_t)g.n * c.d_h);
    for (int r = 0; r < g.rows; r++)
        for (int cc = 0; cc < g.cols; cc++)
            ok &= same(&po.logit[(r + 2) * PC + cc + 3], &ref.logit[r * g.cols + cc], 1);
    CHECK_MSG(ok, "background padding changed the outputs");
    outs_free(&po);
    free(pt);

    /* D mismatch */
    hg.D = D + 1;
    CHECK(head_forward(h, &hg, 0, 1, &ref.o) == WV_EINVAL);
    error_clear();
    outs_free(&ref);
    free(dense);
    free(g.tis); free(g.feat);
    head_free(h);
}

static void test_from_weights(void)
{
    struct head_config c = small_cfg();
    struct head *h = make_head(&c, 2), *h2;
    int n;
    const struct weight_tensor *t = head_tensors(h, &n);
    /* a struct weights with "head." names pointing at h's data */
    struct weights w;
    memset(&w, 0, sizeof w);
    w.n = n;
    w.t = calloc((size_t)n, sizeof *w.t);
    for (int i = 0; i < n; i++) {
        w.t[i] = t[i];
        w.t[i].name = malloc(strlen(t[i].name) + 6);
        sprintf(w.t[i].name, "head.%s", t[i].name);
    }
    CHECK(head_create_from_weights(&w, "head.", &c, &h2) == WV_OK);
    size_t n1, n2;
    float *p1 = head_params(h, &n1), *p2 = head_params(h2, &n2);
    CHECK(n1 == n2 && !memcmp(p1, p2, n1 * 4));
    head_free(h2);
    /* wrong shape */
    w.t[3].shape[0] += 1;
    error_clear();
    CHECK(head_create_from_weights(&w, "head.", &c, &h2) == WV_EFORMAT);
    CHECK_MSG(strstr(error_msg(), "in_proj.bias") && strstr(error_msg(), "expected"), "%s",
              error_msg());
    w.t[3].shape[0] -= 1;
    /* missing */
    error_clear();
    CHECK(head_create_from_weights(&w, "x.", &c, &h2) == WV_ENOTFOUND);
    error_clear();
    for (int i = 0; i < n; i++) free(w.t[i].name);
    free(w.t);
    head_free(h);
}

int main(void)
{
    test_config();
    test_init();
    test_reference();
    test_streaming();
    test_streaming_default();
    test_regions_and_padding();
    test_from_weights();
    return tu_finish("test_head");
}
