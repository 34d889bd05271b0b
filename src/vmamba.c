/*
 * vmamba.c — the VMamba model (vmamba.h): load from a checkpoint's tensors, forward any H×W
 * through the op table (backend.h), stage outputs, FLOP count, random init-like weights.
 * Contract: VMAMBA_SPEC.md §3 (v2), §5 (v0), §7 (names), §8 (large inputs).
 *
 * Buffers of one forward (all channels-last): three rotating full-size maps big enough for any
 * stage (x, u, merged y; the downsampled map reuses the one u lived in), one x_proj output
 * (L, 4·(R+2N)) per image, and band scratch. The stem, LN + in_proj + depthwise conv, out_norm +
 * gate + out_proj, the MLP and the downsample all run in bands of rows / pixels.
 */
#include "vmamba.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "util.h"

/* Pixels per band for per-pixel work (LN, GEMMs, MLP): 4096 pixels = 16 GEMM row blocks
 * (OPS_GEMM_ROWS 256), enough to keep both cores busy; an MLP hidden band of 4096 × 4C floats is
 * 6 MB for C = 96. */
#define BAND_PIXELS 4096
/* Pixels of whole small maps grouped into one LN + in_proj / conv / x_proj / scan call (see
 * group_images): 16384 px keeps the group's scratch (16384 × Dn floats) a few MB while the
 * late stages at 224² run all images of a batch of 8 in one call. */
#define GROUP_PIXELS 16384

struct vblock {
    const float *norm_w, *norm_b;
    const float *in_proj;          /* (Dn or 2·Dn, C) */
    const float *conv_w, *conv_b;  /* (Dn, 1, 3, 3), (Dn) or NULL */
    const float *x_proj;           /* (4·(R+2N), Dn) */
    float *A;                      /* (4·Dn, N) = −exp(A_logs), owned */
    const float *Ds, *dt_w, *dt_b; /* (4·Dn), (4, Dn, R), (4, Dn) */
    const float *on_w, *on_b;      /* out_norm (Dn) */
    const float *out_proj;         /* (C, Dn) */
    const float *n2_w, *n2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b; /* MLP (v2) or NULL */
};

struct vstage {
    int C, Dn, R, depth, hidden;
    struct vblock *blocks;
    /* downsample (i < 3): v2 conv (2C, C, 3, 3) + bias + LN(2C); v0 LN(4C) + reduction (2C, 4C) */
    const float *ds_w, *ds_b, *ds_nw, *ds_nb;
};

struct vmamba {
    struct vmamba_config cfg;
    int in_chans, stem_mid; /* Cin, C/2 of the v2 stem */
    const float *pe0_w, *pe0_b, *pe2_w, *pe2_b, *pe5_w, *pe5_b, *pe7_w, *pe7_b;
    struct vstage st[VMAMBA_STAGES];
    const float *cls_nw, *cls_nb, *head_w, *head_b;
};

/* ---- loading ----------------------------------------------------------------------------- */

#define NEED(dst, expr)                                                                        \
    do {                                                                                       \
        if (!((dst) = (expr))) goto fail;                                                      \
    } while (0)

enum wv_status vmamba_create(const struct weights *w, const char *prefix,
                             const struct vmamba_config *cfg, struct vmamba **out)
{
    *out = NULL;
    if (!prefix) prefix = "";
    struct vmamba *m = wv_calloc(1, sizeof *m, "vmamba model");
    if (!m) return WV_ENOMEM;
    m->cfg = *cfg;
    const int N = cfg->d_state;
    const int v0 = cfg->family == VMAMBA_V0;
    const int C0 = cfg->dims[0];
    if (N < 1 || C0 < 1) {
        free(m);
        return error_set(WV_EINVAL, "vmamba config: d_state %d, dims[0] %d", N, C0);
    }
    /* stem */
    if (v0) {
        const struct weight_tensor *t = vmamba_tensor(w, prefix, "patch_embed.0.weight", 4,
                                                      (int64_t[]){C0, -1, 4, 4});
        if (!t) goto fail;
        m->in_chans = (int)t->shape[1];
        m->pe0_w = t->data;
        NEED(m->pe0_b, vmamba_tensor_f32(w, prefix, 1, C0, 0, 0, 0, "patch_embed.0.bias"));
        NEED(m->pe2_w, vmamba_tensor_f32(w, prefix, 1, C0, 0, 0, 0, "patch_embed.2.weight"));
        NEED(m->pe2_b, vmamba_tensor_f32(w, prefix, 1, C0, 0, 0, 0, "patch_embed.2.bias"));
    } else {
        const struct weight_tensor *t = vmamba_tensor(w, prefix, "patch_embed.0.weight", 4,
                                                      (int64_t[]){-1, -1, 3, 3});
        if (!t) goto fail;
        m->stem_mid = (int)t->shape[0];
        m->in_chans = (int)t->shape[1];
        m->pe0_w = t->data;
        int Cm = m->stem_mid;
        NEED(m->pe0_b, vmamba_tensor_f32(w, prefix, 1, Cm, 0, 0, 0, "patch_embed.0.bias"));
        NEED(m->pe2_w, vmamba_tensor_f32(w, prefix, 1, Cm, 0, 0, 0, "patch_embed.2.weight"));
        NEED(m->pe2_b, vmamba_tensor_f32(w, prefix, 1, Cm, 0, 0, 0, "patch_embed.2.bias"));
        NEED(m->pe5_w, vmamba_tensor_f32(w, prefix, 4, C0, Cm, 3, 3, "patch_embed.5.weight"));
        NEED(m->pe5_b, vmamba_tensor_f32(w, prefix, 1, C0, 0, 0, 0, "patch_embed.5.bias"));
        NEED(m->pe7_w, vmamba_tensor_f32(w, prefix, 1, C0, 0, 0, 0, "patch_embed.7.weight"));
        NEED(m->pe7_b, vmamba_tensor_f32(w, prefix, 1, C0, 0, 0, 0, "patch_embed.7.bias"));
    }
    for (int i = 0; i < VMAMBA_STAGES; i++) {
        struct vstage *s = &m->st[i];
        int C = cfg->dims[i], Dn = cfg->d_inner[i], R = cfg->dt_rank[i], P = R + 2 * N;
        s->C = C, s->Dn = Dn, s->R = R, s->depth = cfg->depths[i], s->hidden = cfg->mlp_hidden[i];
        s->blocks = wv_calloc(s->depth ? s->depth : 1, sizeof *s->blocks, "vmamba blocks");
        if (!s->blocks) goto fail;
        for (int j = 0; j < s->depth; j++) {
            struct vblock *bk = &s->blocks[j];
            const char *pf = "layers.%d.blocks.%d.";
            (void)pf;
#define BT(nd, a, b, c, d, nm) vmamba_tensor_f32(w, prefix, nd, a, b, c, d, "layers.%d.blocks.%d." nm, i, j)
            NEED(bk->norm_w, BT(1, C, 0, 0, 0, "norm.weight"));
            NEED(bk->norm_b, BT(1, C, 0, 0, 0, "norm.bias"));
            NEED(bk->in_proj, BT(2, v0 ? 2 * Dn : Dn, C, 0, 0, "op.in_proj.weight"));
            NEED(bk->conv_w, BT(4, Dn, 1, 3, 3, "op.conv2d.weight"));
            if (cfg->conv_bias) NEED(bk->conv_b, BT(1, Dn, 0, 0, 0, "op.conv2d.bias"));
            NEED(bk->x_proj, BT(3, 4, P, Dn, 0, "op.x_proj_weight"));
            const float *alog;
            NEED(alog, BT(2, 4 * Dn, N, 0, 0, "op.A_logs"));
            NEED(bk->Ds, BT(1, 4 * Dn, 0, 0, 0, "op.Ds"));
            NEED(bk->dt_w, BT(3, 4, Dn, R, 0, "op.dt_projs_weight"));
            NEED(bk->dt_b, BT(2, 4, Dn, 0, 0, "op.dt_projs_bias"));
            NEED(bk->on_w, BT(1, Dn, 0, 0, 0, "op.out_norm.weight"));
            NEED(bk->on_b, BT(1, Dn, 0, 0, 0, "op.out_norm.bias"));
            NEED(bk->out_proj, BT(2, C, Dn, 0, 0, "op.out_proj.weight"));
            if (s->hidden > 0) {
                int Hd = s->hidden;
                NEED(bk->n2_w, BT(1, C, 0, 0, 0, "norm2.weight"));
                NEED(bk->n2_b, BT(1, C, 0, 0, 0, "norm2.bias"));
                NEED(bk->fc1_w, BT(2, Hd, C, 0, 0, "mlp.fc1.weight"));
                NEED(bk->fc1_b, BT(1, Hd, 0, 0, 0, "mlp.fc1.bias"));
                NEED(bk->fc2_w, BT(2, C, Hd, 0, 0, "mlp.fc2.weight"));
                NEED(bk->fc2_b, BT(1, C, 0, 0, 0, "mlp.fc2.bias"));
            }
#undef BT
            bk->A = wv_malloc((size_t)4 * Dn * N * sizeof *bk->A, "A");
            if (!bk->A) goto fail;
            for (size_t q = 0; q < (size_t)4 * Dn * N; q++) bk->A[q] = -expf(alog[q]);
            (void)P;
        }
        if (i < VMAMBA_STAGES - 1) {
            int C2 = cfg->dims[i + 1];
            if (v0) {
                NEED(s->ds_nw, vmamba_tensor_f32(w, prefix, 1, 4 * C, 0, 0, 0, "layers.%d.downsample.norm.weight", i));
                NEED(s->ds_nb, vmamba_tensor_f32(w, prefix, 1, 4 * C, 0, 0, 0, "layers.%d.downsample.norm.bias", i));
                NEED(s->ds_w, vmamba_tensor_f32(w, prefix, 2, C2, 4 * C, 0, 0, "layers.%d.downsample.reduction.weight", i));
            } else {
                NEED(s->ds_w, vmamba_tensor_f32(w, prefix, 4, C2, C, 3, 3, "layers.%d.downsample.1.weight", i));
                NEED(s->ds_b, vmamba_tensor_f32(w, prefix, 1, C2, 0, 0, 0, "layers.%d.downsample.1.bias", i));
                NEED(s->ds_nw, vmamba_tensor_f32(w, prefix, 1, C2, 0, 0, 0, "layers.%d.downsample.3.weight", i));
                NEED(s->ds_nb, vmamba_tensor_f32(w, prefix, 1, C2, 0, 0, 0, "layers.%d.downsample.3.bias", i));
            }
        }
    }
    if (cfg->num_classes > 0) {
        int C3 = cfg->dims[3];
        NEED(m->cls_nw, vmamba_tensor_f32(w, prefix, 1, C3, 0, 0, 0, "classifier.norm.weight"));
        NEED(m->cls_nb, vmamba_tensor_f32(w, prefix, 1, C3, 0, 0, 0, "classifier.norm.bias"));
        NEED(m->head_w, vmamba_tensor_f32(w, prefix, 2, cfg->num_classes, C3, 0, 0, "classifier.head.weight"));
        NEED(m->head_b, vmamba_tensor_f32(w, prefix, 1, cfg->num_classes, 0, 0, 0, "classifier.head.bias"));
    }
    *out = m;
    return WV_OK;
fail:
    vmamba_free(m);
    return error_code() ? error_code() : error_set(WV_ENOTFOUND, "vmamba: a tensor is missing");
}

enum wv_status vmamba_load(const struct weights *w, const char *prefix, struct vmamba **out)
{
    struct vmamba_config cfg;
    *out = NULL;
    enum wv_status st = vmamba_config_infer(w, prefix ? prefix : "", &cfg);
    if (st) return st;
    return vmamba_create(w, prefix, &cfg, out);
}

void vmamba_free(struct vmamba *m)
{
    if (!m) return;
    for (int i = 0; i < VMAMBA_STAGES; i++) {
        if (!m->st[i].blocks) continue;
        for (int j = 0; j < m->st[i].depth; j++) free(m->st[i].blocks[j].A);
        free(m->st[i].blocks);
    }
    free(m);
}

const struct vmamba_config *vmamba_get_config(const struct vmamba *m) { return &m->cfg; }
int vmamba_in_chans(const struct vmamba *m) { return m->in_chans; }

static void stage_sizes(int v0, int H, int W, int *hs, int *ws)
{
    if (v0) {
        hs[0] = H / 4, ws[0] = W / 4;
    } else {
        hs[0] = ((H + 1) / 2 + 1) / 2, ws[0] = ((W + 1) / 2 + 1) / 2;
    }
    for (int i = 1; i < VMAMBA_STAGES; i++) hs[i] = (hs[i - 1] + 1) / 2, ws[i] = (ws[i - 1] + 1) / 2;
}

void vmamba_stage_sizes(const struct vmamba *m, int H, int W, int *hs, int *ws)
{
    stage_sizes(m->cfg.family == VMAMBA_V0, H, W, hs, ws);
}

/* ---- forward ----------------------------------------------------------------------------- */

#define OPS (be->ops)

struct fwd {
    const struct vmamba *m;
    const struct backend *be;
    int B;
    float *band_a, *band_b, *band_c; /* band scratch */
    float *xdbl;                     /* (g·L, 4·(R+2N)) of one group of g images */
};

/* Output rows per row band of the stem and of LN + in_proj + conv: about BAND_PIXELS pixels, and
 * at least 16 rows, since each band recomputes in_proj on its two halo rows (1 + 2/16 = 1.125×
 * the in_proj work at most; with one-row bands of a 10,000² region it would be 3×). */
static int band_rows(int W)
{
    int rb = BAND_PIXELS / (W > 0 ? W : 1);
    return rb < 16 ? 16 : rb;
}

/* The fused CPU path (see "fused CPU path" below) runs with the CPU backend's own table. */
static int cpu_fused(const struct backend *be) { return be->ops == &backend_cpu_ops; }

/* Images of L pixels processed together by a block's LN + in_proj + conv and x_proj: whole maps
 * of up to GROUP_PIXELS pixels in all, so the late stages' small maps (L = 49 at 224²) give GEMMs
 * of hundreds of rows instead of one tile per image. A function of the shape only. */
static int group_images(int B, size_t L)
{
    size_t g = 2 * L > GROUP_PIXELS ? 1 : GROUP_PIXELS / L;
    return (int)(g < (size_t)B ? g : (size_t)B);
}

/* Stem: input rows → (B, H0, W0, C0) channels-last in x. */
static enum wv_status stem_forward(struct fwd *f, int H, int W, vmamba_read_rows_fn read,
                                   void *ru, float *x)
{
    const struct vmamba *m = f->m;
    const struct backend *be = f->be;
    const int Cin = m->in_chans, C0 = m->cfg.dims[0];
    int hs[4], ws[4];
    stage_sizes(m->cfg.family == VMAMBA_V0, H, W, hs, ws);
    const int H0 = hs[0], W0 = ws[0];
    const int rb = band_rows(W0);
    enum wv_status st = WV_OK;
    float *in = NULL, *mid = NULL;
    if (m->cfg.family == VMAMBA_V0) {
        in = OPS->alloc(be, (size_t)4 * rb * W * Cin * sizeof(float));
        if (!in) return WV_ENOMEM;
        for (int b = 0; b < f->B; b++)
            for (int r0 = 0; r0 < H0; r0 += rb) {
                int r1 = r0 + rb < H0 ? r0 + rb : H0;
                if ((st = read(ru, b, 4 * r0, 4 * (r1 - r0), in))) goto out;
                float *xo = x + ((size_t)b * H0 + r0) * W0 * C0;
                OPS->patch_embed4(be, in, 4 * r0, 4 * (r1 - r0), m->pe0_w, m->pe0_b, xo, r0,
                                  r1 - r0, H, W, Cin, C0);
                OPS->layernorm(be, xo, m->pe2_w, m->pe2_b, xo, (size_t)(r1 - r0) * W0, C0);
            }
        goto out;
    }
    const int H1 = (H + 1) / 2, W1 = (W + 1) / 2, Cm = m->stem_mid;
    /* out rows [r0,r1) need mid rows [2r0-1, 2r1) and input rows [2m0-1, 2m1) */
    in = OPS->alloc(be, (size_t)(4 * rb + 4) * W * Cin * sizeof(float));
    mid = OPS->alloc(be, (size_t)(2 * rb + 1) * W1 * Cm * sizeof(float));
    if (!in || !mid) {
        st = WV_ENOMEM;
        goto out;
    }
    for (int b = 0; b < f->B; b++)
        for (int r0 = 0; r0 < H0; r0 += rb) {
            int r1 = r0 + rb < H0 ? r0 + rb : H0;
            int m0 = 2 * r0 - 1 < 0 ? 0 : 2 * r0 - 1, m1 = 2 * r1 < H1 ? 2 * r1 : H1;
            int i0 = 2 * m0 - 1 < 0 ? 0 : 2 * m0 - 1, i1 = 2 * m1 < H ? 2 * m1 : H;
            if ((st = read(ru, b, i0, i1 - i0, in))) goto out;
            float *xo = x + ((size_t)b * H0 + r0) * W0 * C0;
            if (cpu_fused(be)) { /* conv + LN + GELU, conv + LN: two regions */
                ops_conv3s2_post(1, in, 0, i0, m->pe0_w, m->pe0_b, mid, 0, m0, m1 - m0, H, W, Cin,
                                 Cm, m->pe2_w, m->pe2_b, 1);
                ops_conv3s2_post(1, mid, 0, m0, m->pe5_w, m->pe5_b, xo, 0, r0, r1 - r0, H1, W1, Cm,
                                 C0, m->pe7_w, m->pe7_b, 0);
                continue;
            }
            OPS->conv3s2(be, in, i0, i1 - i0, m->pe0_w, m->pe0_b, mid, m0, m1 - m0, H, W, Cin,
                         Cm);
            size_t nmid = (size_t)(m1 - m0) * W1;
            OPS->layernorm(be, mid, m->pe2_w, m->pe2_b, mid, nmid, Cm);
            OPS->gelu(be, mid, mid, nmid * Cm);
            OPS->conv3s2(be, mid, m0, m1 - m0, m->pe5_w, m->pe5_b, xo, r0, r1 - r0, H1, W1, Cm,
                         C0);
            OPS->layernorm(be, xo, m->pe7_w, m->pe7_b, xo, (size_t)(r1 - r0) * W0, C0);
        }
out:
    if (in) OPS->free(be, in);
    if (mid) OPS->free(be, mid);
    return st;
}

/* ---- fused CPU path ---------------------------------------------------------------------
 * With the CPU backend's own table the block runs through fused per-tile kernels instead of one
 * op call per step: each OpenMP region is a synchronisation point, and on a loaded 2-core machine
 * every one costs up to a scheduler time slice, so the block's tail (out_norm, gate, out_proj +
 * residual, LN2, fc1 + GELU, fc2 + residual) becomes one region over pixel tiles, and LN is done
 * inside the in_proj GEMM's tiles. The op-by-op path below stays for other backends and is the
 * oracle these are tested against (test_vmamba: fused vs op-by-op forward). */

/* y (M, N) = LN(x) (M, K) · wᵀ, LN (gamma, beta) done per GEMM tile into thread scratch. */
static void ln_gemm_cpu(const float *x, const float *gamma, const float *beta, const float *w,
                        float *y, size_t M, int K, int N)
{
    struct ops_tiles tl;
    ops_gemm_tiles(M, K, N, &tl);
#pragma omp parallel if (tl.n > 1)
    {
        float *a = malloc((size_t)tl.rows * K * sizeof *a);
        if (!a) abort(); /* OPS_GEMM_ROWS × K floats */
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < tl.n; t++) {
            size_t r0 = (size_t)(t / tl.ncb) * tl.rows;
            int j0 = (int)(t % tl.ncb) * tl.cols;
            int m = (int)(M - r0 < (size_t)tl.rows ? M - r0 : (size_t)tl.rows);
            int nc = N - j0 < tl.cols ? N - j0 : tl.cols;
            ops_layernorm_rows(x + r0 * K, gamma, beta, a, m, K);
            ops_sgemm_nt_ld(a, K, w + (size_t)j0 * K, K, y + r0 * N + j0, N, m, K, nc, 0.0f);
        }
        free(a);
    }
}

/* The block's tail on M pixels of x (M, C) and y (M, Dn): per tile of ≤ OPS_GEMM_ROWS pixels
 * (tiles of equal size, a function of M only): y = out_norm(y) [· SiLU(z)]; x += out_proj(y);
 * x += fc2(GELU(fc1(LN2(x)))). */
static void tail_cpu(const struct vmamba *m, const struct vstage *s, const struct vblock *bk,
                     float *x, float *y, size_t M)
{
    const int C = s->C, Dn = s->Dn, Hd = s->hidden, v0 = m->cfg.family == VMAMBA_V0;
    const long nt = (long)((M + OPS_GEMM_ROWS - 1) / OPS_GEMM_ROWS);
    const size_t T = nt ? (M + nt - 1) / nt : 1;
    const size_t hw = (size_t)(Hd > Dn ? Hd : Dn);
#pragma omp parallel if (nt > 1)
    {
        float *a = malloc(T * C * sizeof *a), *h = malloc(T * hw * sizeof *h);
        if (!a || !h) abort(); /* OPS_GEMM_ROWS × (C + max(hidden, Dn)) floats */
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < nt; t++) {
            size_t p0 = (size_t)t * T;
            int np = (int)(M - p0 < T ? M - p0 : T);
            float *xp = x + p0 * C, *yp = y + p0 * Dn;
            ops_layernorm_rows(yp, bk->on_w, bk->on_b, yp, np, Dn);
            if (v0) {
                ops_layernorm_rows(xp, bk->norm_w, bk->norm_b, a, np, C);
                ops_sgemm_nt(a, bk->in_proj + (size_t)Dn * C, h, np, C, Dn, 0.0f);
                ops_silu_rows(h, (size_t)np * Dn);
                for (size_t i = 0; i < (size_t)np * Dn; i++) yp[i] *= h[i];
            }
            ops_sgemm_nt(yp, bk->out_proj, xp, np, Dn, C, 1.0f);
            if (Hd > 0) {
                ops_layernorm_rows(xp, bk->n2_w, bk->n2_b, a, np, C);
                for (int i = 0; i < np; i++) memcpy(h + (size_t)i * Hd, bk->fc1_b, Hd * sizeof *h);
                ops_sgemm_nt(a, bk->fc1_w, h, np, C, Hd, 1.0f);
                ops_gelu_rows(h, (size_t)np * Hd);
                for (int i = 0; i < np; i++)
                    for (int c = 0; c < C; c++) xp[(size_t)i * C + c] += bk->fc2_b[c];
                ops_sgemm_nt(h, bk->fc2_w, xp, np, Hd, C, 1.0f);
            }
        }
        free(a);
        free(h);
    }
}

/* One VSSBlock, fused CPU path (same contract as block_forward). */
static void block_forward_cpu(struct fwd *f, const struct vstage *s, const struct vblock *bk,
                              float *x, float *u, float *y, int H, int W)
{
    const int C = s->C, Dn = s->Dn, R = s->R, N = f->m->cfg.d_state, P = R + 2 * N;
    const size_t L = (size_t)H * W;
    const int rb = band_rows(W);
    const int g = group_images(f->B, L);
    for (int b0 = 0; b0 < f->B; b0 += g) {
        const int gb = f->B - b0 < g ? f->B - b0 : g;
        float *xb = x + (size_t)b0 * L * C, *ub = u + (size_t)b0 * L * Dn;
        float *yb = y + (size_t)b0 * L * Dn;
        if (gb > 1) {
            ln_gemm_cpu(xb, bk->norm_w, bk->norm_b, bk->in_proj, f->band_b, (size_t)gb * L, C, Dn);
            ops_dwconv3_images(gb, f->band_b, bk->conv_w, bk->conv_b, ub, H, W, Dn, 1);
        } else {
            for (int r0 = 0; r0 < H; r0 += rb) {
                int r1 = r0 + rb < H ? r0 + rb : H;
                int t0 = r0 > 0 ? r0 - 1 : 0, t1 = r1 < H ? r1 + 1 : H;
                ln_gemm_cpu(xb + (size_t)t0 * W * C, bk->norm_w, bk->norm_b, bk->in_proj,
                            f->band_b, (size_t)(t1 - t0) * W, C, Dn);
                dwconv3_cpu_fast(f->band_b, t0, t1 - t0, bk->conv_w, bk->conv_b,
                                 ub + (size_t)r0 * W * Dn, r0, r1 - r0, H, W, Dn, 1);
            }
        }
        gemm_cpu(ub, bk->x_proj, NULL, f->xdbl, (size_t)gb * L, Dn, 4 * P, 0);
        ops_ss2d_images(gb, ub, f->xdbl, bk->dt_w, bk->dt_b, bk->A, bk->Ds, yb, H, W, Dn, R, N);
    }
    tail_cpu(f->m, s, bk, x, y, (size_t)f->B * L);
}

/* One VSSBlock on x (B, H, W, C), in place; u, y: (B, H, W, Dn) scratch maps. */
static void block_forward(struct fwd *f, const struct vstage *s, const struct vblock *bk,
                          float *x, float *u, float *y, int H, int W)
{
    const struct backend *be = f->be;
    const int C = s->C, Dn = s->Dn, R = s->R, N = f->m->cfg.d_state, P = R + 2 * N;
    const int v0 = f->m->cfg.family == VMAMBA_V0;
    const size_t L = (size_t)H * W;
    const int rb = band_rows(W);
    const int g = group_images(f->B, L);
    for (int b0 = 0; b0 < f->B; b0 += g) {
        const int gb = f->B - b0 < g ? f->B - b0 : g; /* images in this group */
        float *xb = x + (size_t)b0 * L * C, *ub = u + (size_t)b0 * L * Dn;
        float *yb = y + (size_t)b0 * L * Dn;
        if (gb > 1) {
            /* whole small maps: LN + in_proj over the group's pixels at once, conv per image */
            size_t np = (size_t)gb * L;
            OPS->layernorm(be, xb, bk->norm_w, bk->norm_b, f->band_a, np, C);
            OPS->gemm(be, f->band_a, bk->in_proj, NULL, f->band_b, np, C, Dn, 0);
            for (int i = 0; i < gb; i++)
                OPS->dwconv3(be, f->band_b + (size_t)i * L * Dn, 0, H, bk->conv_w, bk->conv_b,
                             ub + (size_t)i * L * Dn, 0, H, H, W, Dn, 1);
        } else {
            /* u = SiLU(dwconv(in_proj(LN(x)))) in row bands (with a one-row halo) */
            for (int r0 = 0; r0 < H; r0 += rb) {
                int r1 = r0 + rb < H ? r0 + rb : H;
                int t0 = r0 > 0 ? r0 - 1 : 0, t1 = r1 < H ? r1 + 1 : H;
                size_t nt = (size_t)(t1 - t0) * W;
                OPS->layernorm(be, xb + (size_t)t0 * W * C, bk->norm_w, bk->norm_b, f->band_a,
                               nt, C);
                OPS->gemm(be, f->band_a, bk->in_proj, NULL, f->band_b, nt, C, Dn, 0);
                OPS->dwconv3(be, f->band_b, t0, t1 - t0, bk->conv_w, bk->conv_b,
                             ub + (size_t)r0 * W * Dn, r0, r1 - r0, H, W, Dn, 1);
            }
        }
        /* x_proj for all 4 directions (and the group's images) at once, in pixel order:
         * (gb·L, Dn) · (4P, Dn)ᵀ */
        OPS->gemm(be, ub, bk->x_proj, NULL, f->xdbl, (size_t)gb * L, Dn, 4 * P, 0);
        for (int i = 0; i < gb; i++)
            OPS->ss2d_scan_merge(be, ub + (size_t)i * L * Dn, f->xdbl + (size_t)i * L * 4 * P,
                                 bk->dt_w, bk->dt_b, bk->A, bk->Ds, yb + (size_t)i * L * Dn, H, W,
                                 Dn, R, N);
    }
    /* tail, in pixel bands: y = out_norm(y) [· SiLU(z)]; x += out_proj(y); x += MLP(LN2(x)) */
    const size_t M = (size_t)f->B * L;
    for (size_t p0 = 0; p0 < M; p0 += BAND_PIXELS) {
        size_t np = M - p0 < BAND_PIXELS ? M - p0 : BAND_PIXELS;
        float *xp = x + p0 * C, *yp = y + p0 * Dn;
        OPS->layernorm(be, yp, bk->on_w, bk->on_b, yp, np, Dn);
        if (v0) {
            OPS->layernorm(be, xp, bk->norm_w, bk->norm_b, f->band_a, np, C);
            OPS->gemm(be, f->band_a, bk->in_proj + (size_t)Dn * C, NULL, f->band_b, np, C, Dn, 0);
            OPS->silu(be, f->band_b, f->band_b, np * Dn);
            OPS->mul(be, yp, f->band_b, yp, np * Dn);
        }
        OPS->gemm(be, yp, bk->out_proj, NULL, xp, np, Dn, C, 1);
        if (s->hidden > 0) {
            OPS->layernorm(be, xp, bk->n2_w, bk->n2_b, f->band_a, np, C);
            OPS->gemm(be, f->band_a, bk->fc1_w, bk->fc1_b, f->band_c, np, C, s->hidden, 0);
            OPS->gelu(be, f->band_c, f->band_c, np * s->hidden);
            OPS->gemm(be, f->band_c, bk->fc2_w, bk->fc2_b, xp, np, s->hidden, C, 1);
        }
    }
}

/* Downsample stage i: x (B, H, W, C) → xn (B, Ho, Wo, 2C). */
static void downsample_forward(struct fwd *f, const struct vstage *s, int C2, const float *x,
                               float *xn, int H, int W)
{
    const struct backend *be = f->be;
    const int C = s->C, Ho = (H + 1) / 2, Wo = (W + 1) / 2;
    if (f->m->cfg.family == VMAMBA_V0) {
        const int rb = Wo >= BAND_PIXELS ? 1 : BAND_PIXELS / Wo;
        for (int b = 0; b < f->B; b++)
            for (int r0 = 0; r0 < Ho; r0 += rb) {
                int r1 = r0 + rb < Ho ? r0 + rb : Ho;
                int i0 = 2 * r0, i1 = 2 * r1 < H ? 2 * r1 : H;
                size_t np = (size_t)(r1 - r0) * Wo;
                OPS->patch_merge(be, x + ((size_t)b * H + i0) * W * C, i0, i1 - i0, f->band_c,
                                 r0, r1 - r0, H, W, C);
                OPS->layernorm(be, f->band_c, s->ds_nw, s->ds_nb, f->band_c, np, 4 * C);
                OPS->gemm(be, f->band_c, s->ds_w, NULL,
                          xn + ((size_t)b * Ho + r0) * Wo * C2, np, 4 * C, C2, 0);
            }
        return;
    }
    if (cpu_fused(be)) { /* all images' conv + LN in one region */
        ops_conv3s2_post(f->B, x, (size_t)H * W * C, 0, s->ds_w, s->ds_b, xn, (size_t)Ho * Wo * C2,
                         0, Ho, H, W, C, C2, s->ds_nw, s->ds_nb, 0);
        return;
    }
    for (int b = 0; b < f->B; b++) {
        float *xo = xn + (size_t)b * Ho * Wo * C2;
        OPS->conv3s2(be, x + (size_t)b * H * W * C, 0, H, s->ds_w, s->ds_b, xo, 0, Ho, H, W, C,
                     C2);
    }
    OPS->layernorm(be, xn, s->ds_nw, s->ds_nb, xn, (size_t)f->B * Ho * Wo, C2);
}

static void classifier_forward(struct fwd *f, const float *x, int L, float *logits)
{
    const struct vmamba *m = f->m;
    const struct backend *be = f->be;
    const int C = m->cfg.dims[3], K = m->cfg.num_classes;
    double *sum = calloc(C, sizeof *sum);
    float *feat = malloc(C * sizeof *feat);
    if (!sum || !feat) abort(); /* dims[3] floats */
    for (int b = 0; b < f->B; b++) {
        memset(sum, 0, C * sizeof *sum);
        for (size_t p0 = 0; p0 < (size_t)L; p0 += BAND_PIXELS) {
            size_t np = L - p0 < BAND_PIXELS ? L - p0 : BAND_PIXELS;
            OPS->layernorm(be, x + ((size_t)b * L + p0) * C, m->cls_nw, m->cls_nb, f->band_a, np, C);
            /* sequential sum: deterministic for any thread count */
            for (size_t p = 0; p < np; p++)
                for (int c = 0; c < C; c++) sum[c] += f->band_a[p * C + c];
        }
        for (int c = 0; c < C; c++) feat[c] = (float)(sum[c] / L);
        OPS->gemm(be, feat, m->head_w, m->head_b, logits + (size_t)b * K, 1, C, K, 0);
    }
    free(sum);
    free(feat);
}

enum wv_status vmamba_forward(const struct vmamba *m, const struct backend *be, int B, int H,
                              int W, vmamba_read_rows_fn read, void *read_user,
                              vmamba_stage_fn on_stage, void *stage_user, float *logits,
                              float *features)
{
    const struct vmamba_config *cfg = &m->cfg;
    const int v0 = cfg->family == VMAMBA_V0, N = cfg->d_state;
    if (B < 1 || H < 1 || W < 1 || (v0 && (H < 4 || W < 4)))
        return error_set(WV_EINVAL, "vmamba forward: input %d×%d×%d too small%s", B, H, W,
                         v0 ? " (v0 needs at least 4×4)" : "");
    if (be->device != WV_DEVICE_CPU)
        return error_set(WV_EUNSUPPORTED, "vmamba forward: only the cpu backend is available yet");
    int hs[4], ws[4];
    stage_sizes(v0, H, W, hs, ws);
    /* sizes of the rotating maps and band scratch */
    size_t map = 0, xdbl = 0, band_a = 0, band_b = 0, band_c = 0;
    for (int i = 0; i < VMAMBA_STAGES; i++) {
        const struct vstage *s = &m->st[i];
        size_t L = (size_t)hs[i] * ws[i];
        size_t c = s->C > s->Dn ? s->C : s->Dn;
        if ((size_t)B * L * c > map) map = (size_t)B * L * c;
        if (i < 3 && (size_t)B * hs[i + 1] * ws[i + 1] * cfg->dims[i + 1] > map)
            map = (size_t)B * hs[i + 1] * ws[i + 1] * cfg->dims[i + 1];
        size_t gxl = (size_t)group_images(B, L) * L;
        if (gxl * 4 * (s->R + 2 * N) > xdbl) xdbl = gxl * 4 * (s->R + 2 * N);
        int rb = band_rows(ws[i]);
        size_t band_px = (size_t)(rb + 2) * ws[i];
        if (band_px < BAND_PIXELS) band_px = BAND_PIXELS;
        /* band_a: a row band of LN(x) (op path), a pixel band of the tail (op path) or of the
         * classifier's LN */
        size_t a = band_px * s->C;
        if ((size_t)BAND_PIXELS * cfg->dims[3] > a) a = (size_t)BAND_PIXELS * cfg->dims[3];
        if ((size_t)BAND_PIXELS * s->C > a) a = (size_t)BAND_PIXELS * s->C;
        size_t bb = band_px * s->Dn;
        size_t cc = (size_t)BAND_PIXELS * (s->hidden > 4 * s->C ? s->hidden : 4 * s->C);
        /* v0 PatchMerging bands are whole output rows: at least one row of 4C-wide pixels */
        if (v0 && i < 3 && (size_t)ws[i + 1] * 4 * s->C > cc) cc = (size_t)ws[i + 1] * 4 * s->C;
        size_t gl = (size_t)group_images(B, L) * L;
        if (gl > L) { /* group mode: the group's pixels at once */
            if (gl * s->C > a) a = gl * s->C;
            if (gl * s->Dn > bb) bb = gl * s->Dn;
        }
        if (a > band_a) band_a = a;
        if (bb > band_b) band_b = bb;
        if (cc > band_c) band_c = cc;
    }
    struct fwd f = {.m = m, .be = be, .B = B};
    float *bufs[3] = {NULL, NULL, NULL};
    enum wv_status st = WV_OK;
    for (int k = 0; k < 3; k++)
        if (!(bufs[k] = OPS->alloc(be, map * sizeof(float)))) st = WV_ENOMEM;
    f.xdbl = OPS->alloc(be, xdbl * sizeof(float));
    f.band_a = OPS->alloc(be, band_a * sizeof(float));
    f.band_b = OPS->alloc(be, band_b * sizeof(float));
    f.band_c = OPS->alloc(be, band_c * sizeof(float));
    if (st || !f.xdbl || !f.band_a || !f.band_b || !f.band_c) {
        st = WV_ENOMEM;
        goto out;
    }
    int ix = 0; /* bufs[ix] holds x */
    if ((st = stem_forward(&f, H, W, read, read_user, bufs[0]))) goto out;
    if (on_stage && (st = on_stage(stage_user, "patch_embed", bufs[0], B, hs[0], ws[0], cfg->dims[0])))
        goto out;
    for (int i = 0; i < VMAMBA_STAGES; i++) {
        const struct vstage *s = &m->st[i];
        float *x = bufs[ix], *u = bufs[(ix + 1) % 3], *y = bufs[(ix + 2) % 3];
        for (int j = 0; j < s->depth; j++) {
            if (cpu_fused(be)) block_forward_cpu(&f, s, &s->blocks[j], x, u, y, hs[i], ws[i]);
            else block_forward(&f, s, &s->blocks[j], x, u, y, hs[i], ws[i]);
        }
        char name[32];
        snprintf(name, sizeof name, "stage%d_blocks", i);
        if (on_stage && (st = on_stage(stage_user, name, x, B, hs[i], ws[i], s->C))) goto out;
        if (i < VMAMBA_STAGES - 1) {
            downsample_forward(&f, s, cfg->dims[i + 1], x, u, hs[i], ws[i]);
            ix = (ix + 1) % 3;
            snprintf(name, sizeof name, "stage%d_downsampled", i);
            if (on_stage && (st = on_stage(stage_user, name, bufs[ix], B, hs[i + 1], ws[i + 1],
                                           cfg->dims[i + 1])))
                goto out;
        }
    }
    if (features)
        memcpy(features, bufs[ix], (size_t)B * hs[3] * ws[3] * cfg->dims[3] * sizeof(float));
    if (logits) {
        if (cfg->num_classes <= 0) {
            st = error_set(WV_EINVAL, "vmamba forward: this checkpoint has no classifier");
            goto out;
        }
        classifier_forward(&f, bufs[ix], hs[3] * ws[3], logits);
    }
out:
    for (int k = 0; k < 3; k++)
        if (bufs[k]) OPS->free(be, bufs[k]);
    if (f.xdbl) OPS->free(be, f.xdbl);
    if (f.band_a) OPS->free(be, f.band_a);
    if (f.band_b) OPS->free(be, f.band_b);
    if (f.band_c) OPS->free(be, f.band_c);
    return st;
}

struct nchw_src {
    const float *x;
    int Cin, H, W;
};

static enum wv_status read_nchw(void *user, int b, int row0, int rows, float *dst)
{
    const struct nchw_src *s = user;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < s->Cin; c++) {
            const float *src = s->x + (((size_t)b * s->Cin + c) * s->H + row0 + r) * s->W;
            float *d = dst + (size_t)r * s->W * s->Cin + c;
            for (int w = 0; w < s->W; w++) d[(size_t)w * s->Cin] = src[w];
        }
    return WV_OK;
}

enum wv_status vmamba_forward_nchw(const struct vmamba *m, const struct backend *be,
                                   const float *x, int B, int H, int W, vmamba_stage_fn on_stage,
                                   void *stage_user, float *logits)
{
    struct nchw_src s = {x, m->in_chans, H, W};
    return vmamba_forward(m, be, B, H, W, read_nchw, &s, on_stage, stage_user, logits, NULL);
}

/* ---- FLOPs ------------------------------------------------------------------------------- */

void vmamba_flops(const struct vmamba_config *cfg, int in_chans, int B, int H, int W,
                  double fl[5])
{
    const int v0 = cfg->family == VMAMBA_V0, N = cfg->d_state;
    int hs[4], ws[4];
    stage_sizes(v0, H, W, hs, ws);
    for (int k = 0; k < 5; k++) fl[k] = 0;
    double L0 = (double)hs[0] * ws[0];
    if (v0) {
        fl[1] += 2.0 * L0 * cfg->dims[0] * in_chans * 16;
        fl[4] += 8.0 * L0 * cfg->dims[0];
    } else {
        double L1 = (double)((H + 1) / 2) * ((W + 1) / 2);
        int Cm = cfg->dims[0] / 2;
        fl[1] += 2.0 * L1 * Cm * in_chans * 9 + 2.0 * L0 * cfg->dims[0] * Cm * 9;
        fl[4] += L1 * Cm * (8 + 10) + 8.0 * L0 * cfg->dims[0];
    }
    for (int i = 0; i < VMAMBA_STAGES; i++) {
        double L = (double)hs[i] * ws[i];
        int C = cfg->dims[i], Dn = cfg->d_inner[i], R = cfg->dt_rank[i], Hd = cfg->mlp_hidden[i];
        for (int j = 0; j < cfg->depths[i]; j++) {
            fl[0] += 2.0 * L * C * Dn * (v0 ? 2 : 1);      /* in_proj */
            fl[0] += 2.0 * L * Dn * 4 * (R + 2 * N);       /* x_proj */
            fl[0] += 2.0 * L * Dn * C;                     /* out_proj */
            fl[2] += 2.0 * L * Dn * 9;                     /* depthwise */
            fl[3] += 4.0 * L * Dn * (2.0 * R + 2 + 6.0 * N + 3); /* dt_proj, softplus, scan, merge */
            fl[4] += L * (8.0 * C + 8.0 * Dn + 5.0 * Dn);  /* norm, out_norm, SiLU */
            if (v0) fl[4] += L * Dn * 6.0;                 /* z SiLU + gate */
            if (Hd > 0) {
                fl[0] += 4.0 * L * C * Hd;
                fl[4] += L * (8.0 * C + 10.0 * Hd);
            }
        }
        if (i < 3) {
            double Ln = (double)hs[i + 1] * ws[i + 1];
            int C2 = cfg->dims[i + 1];
            if (v0) fl[0] += 2.0 * Ln * 4 * C * C2, fl[4] += 8.0 * Ln * 4 * C;
            else fl[1] += 2.0 * Ln * C2 * C * 9, fl[4] += 8.0 * Ln * C2;
        }
    }
    if (cfg->num_classes > 0) {
        double L3 = (double)hs[3] * ws[3];
        fl[4] += 9.0 * L3 * cfg->dims[3];
        fl[0] += 2.0 * cfg->dims[3] * cfg->num_classes;
    }
    for (int k = 0; k < 5; k++) fl[k] *= B;
}

/* ---- random weights ---------------------------------------------------------------------- */

struct rw {
    struct weights *w;
    int cap;
    uint64_t rng;
};

static double urand(struct rw *r) /* [0, 1) */
{
    r->rng = r->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(r->rng >> 11) * (1.0 / 9007199254740992.0);
}

enum rinit { R_UNIF, R_NORMAL, R_ONE, R_ZERO, R_ALOG, R_DTBIAS };

static float *radd(struct rw *r, enum rinit how, double scale, int ndim, int64_t s0, int64_t s1,
                   int64_t s2, int64_t s3, const char *fmt, ...) __attribute__((format(printf, 9, 10)));

static float *radd(struct rw *r, enum rinit how, double scale, int ndim, int64_t s0, int64_t s1,
                   int64_t s2, int64_t s3, const char *fmt, ...)
{
    struct weights *w = r->w;
    if (w->n == r->cap) {
        int nc = r->cap ? 2 * r->cap : 64;
        struct weight_tensor *t = realloc(w->t, nc * sizeof *t);
        if (!t) return NULL;
        w->t = t, r->cap = nc;
    }
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    struct weight_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    int64_t sh[4] = {s0, s1, s2, s3};
    t->ndim = ndim;
    t->numel = 1;
    for (int k = 0; k < ndim; k++) t->shape[k] = sh[k], t->numel *= sh[k];
    t->source_dtype = WDT_F32;
    t->name = strdup(name);
    t->data = malloc((size_t)t->numel * sizeof(float));
    if (!t->name || !t->data) {
        free(t->name), free(t->data);
        return NULL;
    }
    w->n++;
    int64_t last = ndim ? sh[ndim - 1] : 1;
    for (int64_t q = 0; q < t->numel; q++) {
        double v;
        switch (how) {
        case R_UNIF: v = (2 * urand(r) - 1) * scale; break;
        case R_NORMAL: { /* Box–Muller, truncated at 2σ */
            double a = urand(r) + 1e-12, b = urand(r);
            v = sqrt(-2 * log(a)) * cos(2 * M_PI * b);
            if (v > 2) v = 2;
            if (v < -2) v = -2;
            v *= scale;
            break;
        }
        case R_ONE: v = 1 + (2 * urand(r) - 1) * scale; break;
        case R_ZERO: v = (2 * urand(r) - 1) * scale; break;
        case R_ALOG: v = log((double)(q % last) + 1); break;
        case R_DTBIAS: {
            double dt = exp(urand(r) * (log(0.1) - log(0.001)) + log(0.001));
            if (dt < 1e-4) dt = 1e-4;
            v = dt + log(-expm1(-dt));
            break;
        }
        default: v = 0;
        }
        t->data[q] = (float)v;
    }
    return t->data;
}

enum wv_status vmamba_random_weights(const struct vmamba_config *cfg, uint64_t seed,
                                     struct weights **out)
{
    *out = NULL;
    struct rw r = {.w = calloc(1, sizeof(struct weights)), .cap = 0, .rng = seed * 2654435761ULL + 1};
    if (!r.w) return error_set(WV_ENOMEM, "random weights");
    snprintf(r.w->format, sizeof r.w->format, "safetensors");
    const int v0 = cfg->family == VMAMBA_V0, N = cfg->d_state, Cin = 3, C0 = cfg->dims[0];
    int ok = 1;
#define ADD(...) ok &= radd(&r, __VA_ARGS__) != NULL
    if (v0) {
        ADD(R_UNIF, 1 / sqrt(Cin * 16.0), 4, C0, Cin, 4, 4, "patch_embed.0.weight");
        ADD(R_UNIF, 1 / sqrt(Cin * 16.0), 1, C0, 0, 0, 0, "patch_embed.0.bias");
        ADD(R_ONE, 0.1, 1, C0, 0, 0, 0, "patch_embed.2.weight");
        ADD(R_ZERO, 0.1, 1, C0, 0, 0, 0, "patch_embed.2.bias");
    } else {
        int Cm = C0 / 2;
        ADD(R_UNIF, 1 / sqrt(Cin * 9.0), 4, Cm, Cin, 3, 3, "patch_embed.0.weight");
        ADD(R_UNIF, 1 / sqrt(Cin * 9.0), 1, Cm, 0, 0, 0, "patch_embed.0.bias");
        ADD(R_ONE, 0.1, 1, Cm, 0, 0, 0, "patch_embed.2.weight");
        ADD(R_ZERO, 0.1, 1, Cm, 0, 0, 0, "patch_embed.2.bias");
        ADD(R_UNIF, 1 / sqrt(Cm * 9.0), 4, C0, Cm, 3, 3, "patch_embed.5.weight");
        ADD(R_UNIF, 1 / sqrt(Cm * 9.0), 1, C0, 0, 0, 0, "patch_embed.5.bias");
        ADD(R_ONE, 0.1, 1, C0, 0, 0, 0, "patch_embed.7.weight");
        ADD(R_ZERO, 0.1, 1, C0, 0, 0, 0, "patch_embed.7.bias");
    }
    for (int i = 0; i < VMAMBA_STAGES && ok; i++) {
        int C = cfg->dims[i], Dn = cfg->d_inner[i], R = cfg->dt_rank[i], P = R + 2 * N,
            Hd = cfg->mlp_hidden[i];
        for (int j = 0; j < cfg->depths[i] && ok; j++) {
#define BN "layers.%d.blocks.%d."
            ADD(R_ONE, 0.1, 1, C, 0, 0, 0, BN "norm.weight", i, j);
            ADD(R_ZERO, 0.1, 1, C, 0, 0, 0, BN "norm.bias", i, j);
            ADD(R_UNIF, 1 / sqrt((double)Dn), 3, 4, P, Dn, 0, BN "op.x_proj_weight", i, j);
            ADD(R_ALOG, 0, 2, 4 * Dn, N, 0, 0, BN "op.A_logs", i, j);
            ADD(R_ONE, 0.0, 1, 4 * Dn, 0, 0, 0, BN "op.Ds", i, j);
            ADD(R_UNIF, 1 / sqrt((double)R), 3, 4, Dn, R, 0, BN "op.dt_projs_weight", i, j);
            ADD(R_DTBIAS, 0, 2, 4, Dn, 0, 0, BN "op.dt_projs_bias", i, j);
            ADD(R_ONE, 0.1, 1, Dn, 0, 0, 0, BN "op.out_norm.weight", i, j);
            ADD(R_ZERO, 0.1, 1, Dn, 0, 0, 0, BN "op.out_norm.bias", i, j);
            ADD(R_NORMAL, 0.02, 2, v0 ? 2 * Dn : Dn, C, 0, 0, BN "op.in_proj.weight", i, j);
            ADD(R_UNIF, 1 / 3.0, 4, Dn, 1, 3, 3, BN "op.conv2d.weight", i, j);
            if (cfg->conv_bias) ADD(R_UNIF, 1 / 3.0, 1, Dn, 0, 0, 0, BN "op.conv2d.bias", i, j);
            ADD(R_NORMAL, 0.02, 2, C, Dn, 0, 0, BN "op.out_proj.weight", i, j);
            if (Hd > 0) {
                ADD(R_ONE, 0.1, 1, C, 0, 0, 0, BN "norm2.weight", i, j);
                ADD(R_ZERO, 0.1, 1, C, 0, 0, 0, BN "norm2.bias", i, j);
                ADD(R_NORMAL, 0.02, 2, Hd, C, 0, 0, BN "mlp.fc1.weight", i, j);
                ADD(R_ZERO, 0.02, 1, Hd, 0, 0, 0, BN "mlp.fc1.bias", i, j);
                ADD(R_NORMAL, 0.02, 2, C, Hd, 0, 0, BN "mlp.fc2.weight", i, j);
                ADD(R_ZERO, 0.02, 1, C, 0, 0, 0, BN "mlp.fc2.bias", i, j);
            }
#undef BN
        }
        if (i < 3) {
            int C2 = cfg->dims[i + 1];
            if (v0) {
                ADD(R_ONE, 0.1, 1, 4 * C, 0, 0, 0, "layers.%d.downsample.norm.weight", i);
                ADD(R_ZERO, 0.1, 1, 4 * C, 0, 0, 0, "layers.%d.downsample.norm.bias", i);
                ADD(R_NORMAL, 0.02, 2, C2, 4 * C, 0, 0, "layers.%d.downsample.reduction.weight", i);
            } else {
                ADD(R_UNIF, 1 / sqrt(C * 9.0), 4, C2, C, 3, 3, "layers.%d.downsample.1.weight", i);
                ADD(R_UNIF, 1 / sqrt(C * 9.0), 1, C2, 0, 0, 0, "layers.%d.downsample.1.bias", i);
                ADD(R_ONE, 0.1, 1, C2, 0, 0, 0, "layers.%d.downsample.3.weight", i);
                ADD(R_ZERO, 0.1, 1, C2, 0, 0, 0, "layers.%d.downsample.3.bias", i);
            }
        }
    }
    if (cfg->num_classes > 0 && ok) {
        int C3 = cfg->dims[3];
        ADD(R_ONE, 0.1, 1, C3, 0, 0, 0, "classifier.norm.weight");
        ADD(R_ZERO, 0.1, 1, C3, 0, 0, 0, "classifier.norm.bias");
        ADD(R_NORMAL, 0.02, 2, cfg->num_classes, C3, 0, 0, "classifier.head.weight");
        ADD(R_ZERO, 0.02, 1, cfg->num_classes, 0, 0, 0, "classifier.head.bias");
    }
#undef ADD
    if (!ok) {
        weights_free(r.w);
        return error_set(WV_ENOMEM, "random weights: out of memory");
    }
    *out = r.w;
    return WV_OK;
}
