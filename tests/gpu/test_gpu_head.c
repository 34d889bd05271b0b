/*
 * test_gpu_head.c — the head's training forward + backward on the GPU (cuda/head_grad.cu,
 * cuda/head_cuda.h) against the float64 CPU backward (src/head_backward.c), on random small
 * heads and grids: awkward widths (d_inner 33 → a second, mostly idle warp of the scan backward),
 * holes, background rows and columns, a single row, a single cell, no blocks, sequences long
 * enough to cross many scan checkpoints (HEAD_CUDA_CKPT = 64 steps), and several CPU chunk sizes
 * (the GPU scans whole sequences with the state carried: the same math).
 *
 * Per case: loss (per-cell BCE on soft targets + slide BCE), slide logit, cell logits, and every
 * parameter tensor's gradient; then the GPU run repeated (bit-identical: no atomics), and three
 * AdamW steps (train_adamw_step, the trainer's own) driven by GPU vs CPU gradients.
 *
 * Tolerances.
 *  - gradients: rel = ‖g_gpu − g_cpu‖₂ / max(‖g_cpu‖₂, 1e-3·‖g_cpu, all tensors‖₂) ≤ 1e-4 per
 *    tensor. fp32 per-cell arithmetic (~6e-8 per op) through LayerNorms, 2-3 blocks and
 *    scans of ≤ 2000 steps gives ~1e-6..1e-5 in practice; 1e-4 is the bound the issue asks for.
 *    The floor: attn_w.bias has an exactly zero gradient (softmax is shift-invariant: Σ da_i =
 *    0) and so do all attention tensors when n = 1; the CPU's is float64 rounding (1e-17), the
 *    GPU's fp32 rounding — a pure relative error would be meaningless there. The floor makes
 *    those an absolute check at 1e-7 of the whole gradient.
 *  - loss: relative 1e-4; slide logit: 1e-4·(1 + |s|); cell logits: 1e-4·(rms + |z|).
 *  - AdamW: ‖p_gpu − p_cpu‖₂ ≤ 1e-2·‖p_cpu − p0‖₂ per tensor (1e-3 over all), i.e. measured
 *    against how far the parameters moved. Tensors whose CPU gradient is ≤ 1e-6 of the total
 *    (the exactly-zero ones above) are reported, not checked: Adam's normalised step
 *    m/√v turns their rounding noise into steps of ±lr, whichever device.
 * Without a CUDA device: exit 77.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/head_cuda.h"
#include "gpu_test.h"
#include "src/head.h"
#include "src/head_grad.h"
#include "src/train.h"

struct tcase {
    const char *name;
    int D, Dh, nb, N, Da;
    int rows, cols;
    double density;     /* < 0: one tissue cell in the middle */
    int bg_row, bg_col; /* a background row / column (−1: none) */
    int chunk;          /* CPU scan chunk */
};

static double nrm(const double *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i] * x[i];
    return sqrt(s);
}
static double nrm_diff(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (a[i] - b[i]) * (a[i] - b[i]);
    return sqrt(s);
}

/* loss and d loss / d logits: Σ_i bce(z_i, y_i)/n + bce(s, label) */
static double loss_of(const double *lg, size_t n, const double *y, double sl, int label,
                      double *dl, double *ds)
{
    double l = 0;
    for (size_t i = 0; i < n; i++) {
        double d;
        l += head_grad_bce(lg[i], y[i], &d) / (double)n;
        if (dl) dl[i] = d / (double)n;
    }
    return l + head_grad_bce(sl, label, ds);
}

static int gpu_grad(struct head_grad_cuda *gc, const double *p, const struct tcase *c,
                    const uint8_t *tissue, const float *feat, const double *y, size_t n,
                    double *grad, double *loss, double *lg, double *sl)
{
    double ds, *dl = malloc((n ? n : 1) * sizeof *dl);
    if (!dl) abort();
    enum wv_status st = head_grad_cuda_forward(gc, p, c->rows, c->cols, tissue, feat, c->chunk, lg,
                                              sl);
    CHECK_MSG(st == WV_OK, "%s: GPU forward: %s", c->name, error_msg());
    if (st) {
        free(dl);
        return -1;
    }
    *loss = loss_of(lg, n, y, *sl, 1, dl, &ds);
    st = head_grad_cuda_backward(gc, dl, ds, grad);
    CHECK_MSG(st == WV_OK, "%s: GPU backward: %s", c->name, error_msg());
    free(dl);
    return st ? -1 : 0;
}

static int cpu_grad(struct head_grad *hg, const double *p, const struct tcase *c,
                    const uint8_t *tissue, const float *feat, const double *y, size_t n,
                    double *grad, double *loss, double *lg, double *sl)
{
    double ds, *dl = malloc((n ? n : 1) * sizeof *dl);
    if (!dl) abort();
    enum wv_status st = head_grad_forward(hg, p, c->rows, c->cols, tissue, feat, c->chunk, lg, sl);
    CHECK_MSG(st == WV_OK, "%s: CPU forward: %s", c->name, error_msg());
    if (st) {
        free(dl);
        return -1;
    }
    *loss = loss_of(lg, n, y, *sl, 1, dl, &ds);
    st = head_grad_backward(hg, dl, ds, grad);
    CHECK_MSG(st == WV_OK, "%s: CPU backward: %s", c->name, error_msg());
    free(dl);
    return st ? -1 : 0;
}

static void run_case(const struct tcase *c, uint64_t seed)
{
    struct head_config cfg;
    head_config_default(&cfg, c->D);
    cfg.d_h = c->Dh;
    cfg.n_blocks = c->nb;
    head_config_derive(&cfg);
    cfg.d_state = c->N;
    cfg.d_attn = c->Da;
    struct head *h = NULL;
    struct head_grad *hg = NULL;
    struct head_grad_cuda *gc = NULL;
    CHECK_MSG(head_create_random(&cfg, seed, &h) == WV_OK, "%s: head: %s", c->name, error_msg());
    if (!h) return;
    CHECK_MSG(head_grad_create(h, &hg) == WV_OK, "%s: CPU workspace: %s", c->name, error_msg());
    CHECK_MSG(head_grad_cuda_create(h, 0, &gc) == WV_OK, "%s: GPU workspace: %s", c->name,
              error_msg());
    if (!hg || !gc) {
        head_grad_free(hg);
        head_grad_cuda_free(gc);
        head_free(h);
        return;
    }
    int nt;
    const struct weight_tensor *t = head_tensors(h, &nt);
    size_t np;
    const float *base = head_params(h, &np);
    double *p0 = malloc(np * sizeof *p0);
    if (!p0) abort();
    /* the random init plus noise, so LayerNorm affines, biases and 0.02-scale weights are all
     * non-trivial */
    for (int q = 0; q < nt; q++) {
        const size_t off = (size_t)(t[q].data - base);
        const double amp = strstr(t[q].name, "A_logs") ? 0.3 : 0.1;
        for (int64_t e = 0; e < t[q].numel; e++)
            p0[off + e] = t[q].data[e] + amp * (2 * gt_uniform() - 1);
    }
    /* grid, features and targets; a new draw until the top two cell logits are ≥ 1e-3 apart
     * (the max's gradient goes to the arg-max: a near-tie could pick different cells) */
    const size_t G = (size_t)c->rows * c->cols;
    uint8_t *tissue = malloc(G);
    float *feat = NULL;
    double *y = NULL, *lc = NULL, *lgg = NULL;
    size_t n = 0;
    double sl_c = 0, loss_c = 0;
    double *gcpu = calloc(np, sizeof *gcpu), *ggpu = calloc(np, sizeof *ggpu),
           *ggpu2 = calloc(np, sizeof *ggpu2);
    if (!tissue || !gcpu || !ggpu || !ggpu2) abort();
    int ok = 0;
    for (int attempt = 0; attempt < 10 && !ok; attempt++) {
        n = 0;
        for (size_t q = 0; q < G; q++) {
            const int r = (int)(q / c->cols), col = (int)(q % c->cols);
            if (c->density < 0) /* one tissue cell, in the middle */
                tissue[q] = r == c->rows / 2 && col == c->cols / 2;
            else
                tissue[q] = gt_uniform() < c->density && r != c->bg_row && col != c->bg_col;
            n += tissue[q];
        }
        if (n == 0) continue;
        free(feat), free(y), free(lc), free(lgg);
        feat = gt_rand(n * c->D, -2, 2);
        y = malloc(n * sizeof *y);
        lc = malloc(n * sizeof *lc);
        lgg = malloc(n * sizeof *lgg);
        if (!y || !lc || !lgg) abort();
        for (size_t i = 0; i < n; i++)
            y[i] = i % 2 ? gt_uniform() : (gt_uniform() < 0.3 ? 1.0 : 0.0);
        memset(gcpu, 0, np * sizeof *gcpu);
        if (cpu_grad(hg, p0, c, tissue, feat, y, n, gcpu, &loss_c, lc, &sl_c)) goto out;
        double m1 = -INFINITY, m2 = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            if (lc[i] > m1) m2 = m1, m1 = lc[i];
            else if (lc[i] > m2) m2 = lc[i];
        }
        ok = n == 1 || m1 - m2 >= 1e-3;
        if (!ok) printf("  %s: top cell logits %.3g apart, new draw\n", c->name, m1 - m2);
    }
    CHECK_MSG(ok, "%s: no usable random draw", c->name);
    if (!ok) goto out;
    printf("%s: D %d d_h %d blocks %d d_state %d d_attn %d dt_rank %d, grid %dx%d, %zu tissue "
           "cells, CPU chunk %d, %zu parameters\n",
           c->name, c->D, c->Dh, c->nb, c->N, c->Da, cfg.dt_rank, c->rows, c->cols, n, c->chunk,
           np);
    /* GPU loss, logits, gradients */
    double loss_g, sl_g;
    if (gpu_grad(gc, p0, c, tissue, feat, y, n, ggpu, &loss_g, lgg, &sl_g)) goto out;
    CHECK(head_grad_cuda_n_cells(gc) == n);
    const double lrel = fabs(loss_g - loss_c) / fabs(loss_c);
    printf("  loss cpu %.10g gpu %.10g rel %.2e\n", loss_c, loss_g, lrel);
    CHECK_MSG(lrel <= 1e-4, "%s: loss rel %.3g > 1e-4", c->name, lrel);
    CHECK_MSG(fabs(sl_g - sl_c) <= 1e-4 * (1 + fabs(sl_c)), "%s: slide logit %.9g vs %.9g",
              c->name, sl_g, sl_c);
    {
        double rms = 0, worst = 0;
        for (size_t i = 0; i < n; i++) rms += lc[i] * lc[i];
        rms = sqrt(rms / n);
        for (size_t i = 0; i < n; i++) {
            const double r = fabs(lgg[i] - lc[i]) / (rms + fabs(lc[i]));
            if (r > worst) worst = r;
        }
        printf("  slide logit cpu %.9g gpu %.9g; cell logits worst rel %.2e\n", sl_c, sl_g, worst);
        CHECK_MSG(worst <= 1e-4, "%s: cell logits rel %.3g > 1e-4", c->name, worst);
    }
    const double gall = nrm(gcpu, np);
    double worst = 0;
    const char *worst_name = "";
    for (int q = 0; q < nt; q++) {
        const size_t off = (size_t)(t[q].data - base), ne = (size_t)t[q].numel;
        const double rn = nrm(gcpu + off, ne), dn = nrm_diff(ggpu + off, gcpu + off, ne);
        const double den = fmax(rn, 1e-3 * gall);
        const double rel = den > 0 ? dn / den : dn;
        printf("  grad %-28s n %6zu |g| %.3e rel %.2e%s\n", t[q].name, ne, rn, rel,
               rn < 1e-3 * gall ? " (floored)" : "");
        CHECK_MSG(rel <= 1e-4, "%s: gradient of %s rel %.3g > 1e-4", c->name, t[q].name, rel);
        if (rel > worst) worst = rel, worst_name = t[q].name;
    }
    printf("  worst gradient rel %.2e (%s), |g| all %.3e\n", worst, worst_name, gall);
    /* repeat: bit-identical */
    {
        double l2, s2;
        if (gpu_grad(gc, p0, c, tissue, feat, y, n, ggpu2, &l2, lgg, &s2)) goto out;
        CHECK_MSG(!memcmp(ggpu, ggpu2, np * sizeof *ggpu) && l2 == loss_g,
                  "%s: a second GPU run differs", c->name);
    }
    /* AdamW: three steps from p0 with CPU and with GPU gradients */
    {
        double *pc = malloc(np * sizeof *pc), *pg = malloc(np * sizeof *pg);
        double *mc = calloc(np, sizeof *mc), *vc = calloc(np, sizeof *vc);
        double *mg = calloc(np, sizeof *mg), *vg = calloc(np, sizeof *vg);
        uint8_t *decay = calloc(np, 1), *skip = calloc(np, 1);
        if (!pc || !pg || !mc || !vc || !mg || !vg || !decay || !skip) abort();
        memcpy(pc, p0, np * sizeof *pc);
        memcpy(pg, p0, np * sizeof *pg);
        for (int q = 0; q < nt; q++)
            if (t[q].ndim >= 2 && !strstr(t[q].name, "A_logs"))
                memset(decay + (t[q].data - base), 1, (size_t)t[q].numel);
        const double lr = 1e-3, wd = 1e-2;
        for (int step = 1; step <= 3; step++) {
            double l, s;
            memset(gcpu, 0, np * sizeof *gcpu);
            memset(ggpu, 0, np * sizeof *ggpu);
            if (cpu_grad(hg, pc, c, tissue, feat, y, n, gcpu, &l, lc, &s)) break;
            if (gpu_grad(gc, pg, c, tissue, feat, y, n, ggpu, &l, lgg, &s)) break;
            if (step == 1) {
                const double ga = nrm(gcpu, np);
                for (int q = 0; q < nt; q++) {
                    const size_t off = (size_t)(t[q].data - base), ne = (size_t)t[q].numel;
                    if (nrm(gcpu + off, ne) <= 1e-6 * ga) memset(skip + off, 1, ne);
                }
            }
            train_adamw_step(pc, mc, vc, gcpu, train_clip_scale(gcpu, np, 1.0, NULL), decay, np,
                             lr, wd, step);
            train_adamw_step(pg, mg, vg, ggpu, train_clip_scale(ggpu, np, 1.0, NULL), decay, np,
                             lr, wd, step);
        }
        double dall = 0, mall = 0;
        for (int q = 0; q < nt; q++) {
            const size_t off = (size_t)(t[q].data - base), ne = (size_t)t[q].numel;
            const double moved = nrm_diff(pc + off, p0 + off, ne),
                         dif = nrm_diff(pg + off, pc + off, ne);
            const double rel = moved > 0 ? dif / moved : dif;
            if (skip[off]) {
                printf("  adamw %-27s rel %.2e (gradient exactly 0: not checked)\n", t[q].name,
                       rel);
                continue;
            }
            dall += dif * dif, mall += moved * moved;
            if (rel > 1e-3) printf("  adamw %-27s rel %.2e\n", t[q].name, rel);
            CHECK_MSG(rel <= 1e-2, "%s: AdamW %s: GPU-driven parameters %.3g of the update "
                                   "away from the CPU-driven ones",
                      c->name, t[q].name, rel);
        }
        const double grel = mall > 0 ? sqrt(dall / mall) : 0;
        printf("  adamw 3 steps: |p_gpu - p_cpu| / |p_cpu - p0| = %.2e over all checked tensors\n",
               grel);
        CHECK_MSG(grel <= 1e-3, "%s: AdamW overall rel %.3g > 1e-3", c->name, grel);
        free(pc), free(pg), free(mc), free(vc), free(mg), free(vg), free(decay), free(skip);
    }
out:
    free(p0), free(tissue), free(feat), free(y), free(lc), free(lgg), free(gcpu), free(ggpu),
        free(ggpu2);
    head_grad_cuda_free(gc);
    head_grad_free(hg);
    head_free(h);
}

int main(void)
{
    gt_require_device("test_gpu_head");
    static const struct tcase cases[] = {
        /* name          D   Dh nb  N  Da rows cols dens  bgr bgc chunk */
        {"basic", 24, 20, 2, 4, 12, 7, 9, 0.7, 2, -1, 0},
        {"odd-widths", 37, 33, 1, 3, 5, 13, 6, 0.6, -1, 3, 2},
        {"one-row", 16, 16, 2, 16, 8, 1, 40, 0.9, -1, -1, 7},
        {"holes-3blocks", 48, 40, 3, 5, 16, 25, 23, 0.55, 0, 22, 5},
        {"no-blocks", 10, 8, 0, 4, 4, 4, 4, 1.0, -1, -1, 0},
        {"one-col", 12, 17, 1, 2, 3, 30, 1, 0.8, -1, -1, 4},
        {"long", 32, 64, 1, 4, 16, 40, 50, 0.8, 7, 11, 16},
        {"dstate-64", 20, 24, 1, 64, 8, 9, 11, 0.75, -1, -1, 3},
        {"single-cell", 8, 8, 1, 4, 4, 3, 3, -1.0, -1, -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gt_seed(1000 + i);
        run_case(&cases[i], 77 + i);
    }
    return tu_finish("test_gpu_head");
}
