/*
 * test_gradcheck.c — the training backward (head_grad.h, scan_grad.h) against central finite
 * differences in float64 on small random inputs (issue 5, docs/training.md):
 *  - the selective scan with carried state: d/d u, delta, A, B, C, D, delta_bias, h_in for a loss
 *    on y and h_out (softplus δ, groups, batches); chunked backward (pieces in reverse, dh_in →
 *    dh_out) equals one backward;
 *  - the whole head, every tensor (LN, Linear, masked depthwise conv, SiLU, x_proj, dt_proj,
 *    A_logs, Ds, dt bias, out_norm, out_proj, residual, final norm, cell classifier, gated
 *    attention, max cell logit, slide classifier) under per-cell + slide BCE losses, on a grid
 *    with background cells, holes and an empty row, for scan chunks 0 (whole), 2 and 1;
 *  - chunk invariance and background-padding invariance of the gradients; the float64 forward
 *    against head_forward (fp32).
 * Pass: per-tensor relative error ‖g − g_fd‖ / max(‖g‖, ‖g_fd‖) ≤ 1e-6 (printed for every tensor).
 * Five-point central differences, step h = 1e-3: truncation O(h⁴) ≈ 1e-12, rounding ≈ 1e-16/h
 * ≈ 1e-13 (the two-point rule at h = 1e-5 left 6e-6 of rounding on the smallest scan-parameter
 * gradients, |g| ≈ 1e-4; its error grew as 1/h, so it was rounding, not the backward). A tensor
 * whose gradient is exactly zero (attn_w.bias: softmax is shift-invariant) is measured against
 * an absolute floor of 1e-6 (its finite difference is ≈ 3e-13).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/head.h"
#include "src/head_grad.h"
#include "src/scan_grad.h"
#include "testutil.h"

#define TOL 1e-6
#ifndef STEP
#define STEP 1e-3
#endif

static uint64_t rs = 0x1234567ULL;
static double urand(void) /* [-1, 1) */
{
    rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rs >> 11) * 0x1.0p-53 * 2.0 - 1.0;
}

static double worst = 0;

/* five-point stencil: f at x + {−2, −1, 1, 2}·h */
static const double fd_off[4] = {-2, -1, 1, 2};
static double fd5(const double *f) { return (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * STEP); }

static double rel_err(const double *a, const double *b, size_t n)
{
    double d = 0, na = 0, nb = 0;
    for (size_t i = 0; i < n; i++) {
        d += (a[i] - b[i]) * (a[i] - b[i]);
        na += a[i] * a[i];
        nb += b[i] * b[i];
    }
    double m = sqrt(na > nb ? na : nb);
    return sqrt(d) / (m > 1e-6 ? m : 1e-6);
}

static void report(const char *what, const double *an, const double *fd, size_t n)
{
    double e = rel_err(an, fd, n), mx = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(an[i]) > mx) mx = fabs(an[i]);
    if (e > worst) worst = e;
    printf("  %-34s n=%-5zu |g|max %.3e  rel.err %.2e  %s\n", what, n, mx, e,
           e <= TOL ? "OK" : "FAIL");
    CHECK_MSG(e <= TOL, "%s: relative error %.3e > %.0e", what, e, TOL);
}

/* ---- scan ----------------------------------------------------------------------------------- */

enum { SB = 2, SKD = 4, SG = 2, SN = 3, SL = 7 };

struct scan_in {
    double u[SB * SKD * SL], delta[SB * SKD * SL], A[SKD * SN], Bm[SB * SG * SN * SL],
        Cm[SB * SG * SN * SL], D[SKD], db[SKD], hin[SB * SKD * SN];
    double wy[SB * SKD * SL], wh[SB * SKD * SN];
};

static double scan_loss(const struct scan_in *s)
{
    double y[SB * SKD * SL], ho[SB * SKD * SN], l = 0;
    scan_forward_f64(s->u, s->delta, s->A, s->Bm, s->Cm, s->D, s->db, s->hin, y, ho, SB, SKD, SG,
                     SN, SL, 1);
    for (int i = 0; i < SB * SKD * SL; i++) l += s->wy[i] * y[i];
    for (int i = 0; i < SB * SKD * SN; i++) l += s->wh[i] * ho[i];
    return l;
}

static void test_scan(void)
{
    printf("selective scan (B %d, KD %d, G %d, N %d, L %d, softplus δ, carried h_in):\n", SB, SKD,
           SG, SN, SL);
    struct scan_in s;
    double *all[] = {s.u, s.delta, s.A, s.Bm, s.Cm, s.D, s.db, s.hin, s.wy, s.wh};
    size_t cnt[] = {SB * SKD * SL, SB * SKD * SL, SKD * SN, SB * SG * SN * SL, SB * SG * SN * SL,
                    SKD, SKD, SB * SKD * SN, SB * SKD * SL, SB * SKD * SN};
    for (int a = 0; a < 10; a++)
        for (size_t i = 0; i < cnt[a]; i++) all[a][i] = urand();
    for (int i = 0; i < SKD * SN; i++) s.A[i] = -0.2 - 0.8 * fabs(s.A[i]);
    double du[SB * SKD * SL], dd[SB * SKD * SL], dA[SKD * SN] = {0}, dB[SB * SG * SN * SL],
        dC[SB * SG * SN * SL], dD[SKD] = {0}, ddb[SKD] = {0}, dh[SB * SKD * SN];
    CHECK(scan_backward_f64(s.u, s.delta, s.A, s.Bm, s.Cm, s.D, s.db, s.hin, s.wy, s.wh, du, dd,
                            dA, dB, dC, dD, ddb, dh, SB, SKD, SG, SN, SL, 1) == WV_OK);
    const char *names[] = {"u", "delta", "A", "B", "C", "D", "delta_bias", "h_in"};
    double *an[] = {du, dd, dA, dB, dC, dD, ddb, dh};
    for (int a = 0; a < 8; a++) {
        double fd[SB * SG * SN * SL];
        for (size_t i = 0; i < cnt[a]; i++) {
            double keep = all[a][i];
            double f[4];
            for (int q = 0; q < 4; q++) {
                all[a][i] = keep + fd_off[q] * STEP;
                f[q] = scan_loss(&s);
            }
            all[a][i] = keep;
            fd[i] = fd5(f);
        }
        char what[64];
        snprintf(what, sizeof what, "scan d/d %s", names[a]);
        report(what, an[a], fd, cnt[a]);
    }
    /* chunked: pieces [0, 3) and [3, 7), backward in reverse with dh carried */
    enum { L1 = 3, L2 = SL - L1 };
    double p1[8][SB * SG * SN * L1 + 64], p2[8][SB * SG * SN * L2 + 64];
    const double *seqs[] = {s.u, s.delta, s.Bm, s.Cm, s.wy};
    int rowsz[] = {SB * SKD, SB * SKD, SB * SG * SN, SB * SG * SN, SB * SKD};
    for (int a = 0; a < 5; a++)
        for (int r = 0; r < rowsz[a]; r++) {
            memcpy(p1[a] + r * L1, seqs[a] + r * SL, L1 * sizeof(double));
            memcpy(p2[a] + r * L2, seqs[a] + r * SL + L1, L2 * sizeof(double));
        }
    double y1[SB * SKD * L1], hmid[SB * SKD * SN];
    scan_forward_f64(p1[0], p1[1], s.A, p1[2], p1[3], s.D, s.db, s.hin, y1, hmid, SB, SKD, SG, SN,
                     L1, 1);
    double du2[SB * SKD * L2], dd2[SB * SKD * L2], dB2[SB * SG * SN * L2], dC2[SB * SG * SN * L2],
        dhm[SB * SKD * SN], dA2[SKD * SN] = {0}, dD2[SKD] = {0}, ddb2[SKD] = {0};
    double du1[SB * SKD * L1], dd1[SB * SKD * L1], dB1[SB * SG * SN * L1], dC1[SB * SG * SN * L1],
        dh1[SB * SKD * SN];
    CHECK(scan_backward_f64(p2[0], p2[1], s.A, p2[2], p2[3], s.D, s.db, hmid, p2[4], s.wh, du2,
                            dd2, dA2, dB2, dC2, dD2, ddb2, dhm, SB, SKD, SG, SN, L2, 1) == WV_OK);
    CHECK(scan_backward_f64(p1[0], p1[1], s.A, p1[2], p1[3], s.D, s.db, s.hin, p1[4], dhm, du1,
                            dd1, dA2, dB1, dC1, dD2, ddb2, dh1, SB, SKD, SG, SN, L1, 1) == WV_OK);
    double m = 0;
    for (int r = 0; r < SB * SKD; r++)
        for (int t = 0; t < SL; t++) {
            double a = t < L1 ? du1[r * L1 + t] : du2[r * L2 + t - L1];
            double b = t < L1 ? dd1[r * L1 + t] : dd2[r * L2 + t - L1];
            m = fmax(m, fmax(fabs(a - du[r * SL + t]), fabs(b - dd[r * SL + t])));
        }
    for (int r = 0; r < SB * SG * SN; r++)
        for (int t = 0; t < SL; t++) {
            double a = t < L1 ? dB1[r * L1 + t] : dB2[r * L2 + t - L1];
            double b = t < L1 ? dC1[r * L1 + t] : dC2[r * L2 + t - L1];
            m = fmax(m, fmax(fabs(a - dB[r * SL + t]), fabs(b - dC[r * SL + t])));
        }
    for (int i = 0; i < SKD * SN; i++) m = fmax(m, fabs(dA2[i] - dA[i]));
    for (int i = 0; i < SKD; i++) m = fmax(m, fmax(fabs(dD2[i] - dD[i]), fabs(ddb2[i] - ddb[i])));
    for (int i = 0; i < SB * SKD * SN; i++) m = fmax(m, fabs(dh1[i] - dh[i]));
    printf("  chunked backward (3 + 4) vs whole: max |diff| %.2e %s\n", m, m <= 1e-12 ? "OK" : "FAIL");
    CHECK(m <= 1e-12);
}

/* ---- head ----------------------------------------------------------------------------------- */

enum { GR = 5, GC = 6, FD_D = 6 };

struct hcase {
    struct head_grad *g;
    double *p;
    int rows, cols;
    const uint8_t *tissue;
    const float *feat;
    int chunk;
    double *ycell, *wcell; /* per-cell soft targets and weights */
};

static double head_loss(struct hcase *c)
{
    size_t n = 0;
    for (int q = 0; q < c->rows * c->cols; q++) n += c->tissue[q] != 0;
    double *lg = malloc((n ? n : 1) * sizeof *lg), sl;
    CHECK(head_grad_forward(c->g, c->p, c->rows, c->cols, c->tissue, c->feat, c->chunk, lg, &sl) ==
          WV_OK);
    double l = 0;
    for (size_t i = 0; i < n; i++) l += c->wcell[i] * head_grad_bce(lg[i], c->ycell[i], NULL);
    l += 0.7 * head_grad_bce(sl, 1.0, NULL);
    free(lg);
    return l;
}

static void head_grad_of(struct hcase *c, double *grad, size_t np)
{
    size_t n = 0;
    for (int q = 0; q < c->rows * c->cols; q++) n += c->tissue[q] != 0;
    double *lg = malloc((n ? n : 1) * sizeof *lg), *dl = malloc((n ? n : 1) * sizeof *dl), sl, ds;
    CHECK(head_grad_forward(c->g, c->p, c->rows, c->cols, c->tissue, c->feat, c->chunk, lg, &sl) ==
          WV_OK);
    for (size_t i = 0; i < n; i++) {
        head_grad_bce(lg[i], c->ycell[i], &dl[i]);
        dl[i] *= c->wcell[i];
    }
    head_grad_bce(sl, 1.0, &ds);
    memset(grad, 0, np * sizeof *grad);
    CHECK(head_grad_backward(c->g, dl, 0.7 * ds, grad) == WV_OK);
    free(lg);
    free(dl);
}

static void test_head(void)
{
    struct head_config cfg = {.in_dim = FD_D, .d_h = 8, .n_blocks = 2, .d_inner = 7, .d_state = 3,
                              .dt_rank = 2, .d_attn = 5};
    struct head *h;
    CHECK(head_create_random(&cfg, 42, &h) == WV_OK);
    size_t np;
    float *pf = head_params(h, &np);
    /* move every parameter off its init (LN weights ≠ 1, biases ≠ 0, larger Linear weights) so
     * no term of the gradient vanishes; keep A_logs, dt bias in their usual ranges */
    int nt;
    const struct weight_tensor *t = head_tensors(h, &nt);
    for (int i = 0; i < nt; i++)
        for (int64_t q = 0; q < t[i].numel; q++) {
            double v = t[i].data[q];
            if (strstr(t[i].name, "A_logs") || strstr(t[i].name, "dt_projs_bias"))
                v += 0.3 * urand();
            else
                v += 0.4 * urand();
            t[i].data[q] = (float)v;
        }
    double *p = malloc(np * sizeof *p);
    for (size_t i = 0; i < np; i++) p[i] = pf[i];
    /* grid 5 × 6 with background cells, a hole, an empty row (row 3) */
    static const uint8_t tissue[GR * GC] = {1, 1, 0, 1, 1, 1, /**/ 1, 1, 1, 1, 0, 1,
                                            0, 1, 0, 1, 1, 1, /**/ 0, 0, 0, 0, 0, 0,
                                            1, 1, 1, 0, 1, 1};
    size_t n = 0;
    for (int q = 0; q < GR * GC; q++) n += tissue[q];
    float *feat = malloc(n * FD_D * sizeof *feat);
    for (size_t i = 0; i < n * FD_D; i++) feat[i] = (float)(urand() * 2.0);
    double *yc = malloc(n * sizeof *yc), *wc = malloc(n * sizeof *wc);
    for (size_t i = 0; i < n; i++) {
        yc[i] = (urand() + 1) / 2;
        wc[i] = 0.5 + 0.5 * (urand() + 1) / 2;
    }
    struct head_grad *g;
    CHECK(head_grad_create(h, &g) == WV_OK);
    CHECK(head_grad_n_params(g) == np);

    /* the float64 forward vs head_forward (fp32) */
    {
        float *cl = malloc(GR * GC * sizeof *cl);
        struct head_outputs o = {.cell_logit = cl};
        struct head_grid grid = {GR, GC, tissue, feat, FD_D};
        CHECK(head_forward(h, &grid, 0, 1, &o) == WV_OK);
        double *lg = malloc(n * sizeof *lg), sl;
        CHECK(head_grad_forward(g, p, GR, GC, tissue, feat, 0, lg, &sl) == WV_OK);
        double m = fabs(sl - o.slide_logit);
        for (int q = 0, i = 0; q < GR * GC; q++)
            if (tissue[q]) m = fmax(m, fabs(lg[i++] - cl[q]));
        printf("float64 training forward vs head_forward (fp32): max |diff| of logits %.2e %s\n",
               m, m <= 1e-4 ? "OK" : "FAIL");
        CHECK(m <= 1e-4);
        free(cl);
        free(lg);
    }

    double *an = malloc(np * sizeof *an), *fd = malloc(np * sizeof *fd),
           *an0 = malloc(np * sizeof *an0);
    const int chunks[] = {0, 2, 1};
    for (int ci = 0; ci < 3; ci++) {
        struct hcase c = {g, p, GR, GC, tissue, feat, chunks[ci], yc, wc};
        printf("head (D %d, Dh %d, 2 blocks, Dn %d, N %d, R %d, Da %d; %zu of %d cells tissue), "
               "scan chunk %d:\n",
               FD_D, cfg.d_h, cfg.d_inner, cfg.d_state, cfg.dt_rank, cfg.d_attn, n, GR * GC,
               chunks[ci]);
        head_grad_of(&c, an, np);
        if (ci == 0) memcpy(an0, an, np * sizeof *an);
        for (size_t i = 0; i < np; i++) {
            double keep = p[i];
            double f[4];
            for (int q = 0; q < 4; q++) {
                p[i] = keep + fd_off[q] * STEP;
                f[q] = head_loss(&c);
            }
            p[i] = keep;
            fd[i] = fd5(f);
        }
        if (ci > 0) {
            double e = rel_err(an, an0, np);
            printf("  all parameters: rel.err vs chunk 0 %.2e\n", e);
            CHECK(e <= 1e-12);
        }
        for (int i = 0; i < nt; i++) {
            size_t ne;
            long off = head_grad_tensor_offset(g, t[i].name, &ne);
            CHECK(off >= 0);
            if (off < 0) continue;
            if (ci > 0 && !strstr(t[i].name, "blocks.")) continue; /* only scans see the chunk */
            report(t[i].name, an + off, fd + off, ne);
        }
    }
    /* padding with background: same gradients */
    {
        enum { PR = GR + 3, PC = GC + 2 };
        uint8_t pt[PR * PC] = {0};
        for (int r = 0; r < GR; r++)
            for (int cc = 0; cc < GC; cc++) pt[(r + 1) * PC + cc + 2] = tissue[r * GC + cc];
        struct hcase c = {g, p, PR, PC, pt, feat, 0, yc, wc};
        head_grad_of(&c, an, np);
        double e = rel_err(an, an0, np);
        printf("grid padded with background: gradients rel.err %.2e %s\n", e,
               e <= 1e-12 ? "OK" : "FAIL");
        CHECK(e <= 1e-12);
    }
    /* the BCE itself */
    {
        double m = 0;
        for (int i = 0; i < 20; i++) {
            double z = 8 * urand(), y = (urand() + 1) / 2, dz;
            head_grad_bce(z, y, &dz);
            double fv[4];
            for (int q = 0; q < 4; q++) fv[q] = head_grad_bce(z + fd_off[q] * STEP, y, NULL);
            double f = fd5(fv);
            m = fmax(m, fabs(f - dz) / fmax(fabs(dz), 1e-3));
        }
        printf("BCE with logits: max rel.err %.2e %s\n", m, m <= TOL ? "OK" : "FAIL");
        CHECK(m <= TOL);
    }
    head_grad_free(g);
    head_free(h);
    free(p);
    free(feat);
    free(yc);
    free(wc);
    free(an);
    free(fd);
    free(an0);
}

int main(void)
{
    printf("test_gradcheck: float64, central differences h = %.0e, tolerance %.0e\n", STEP, TOL);
    test_scan();
    test_head();
    printf("worst relative error: %.2e\n", worst);
    return tu_finish("test_gradcheck");
}
