/*
 * vmamba.cu — the whole VMamba forward on one GPU (vmamba_cuda.h): the CUDA twin of src/vmamba.c,
 * same structure (stem → stages of VSSBlocks → downsample → classifier), same banding of the
 * per-pixel work, same outputs. Contract: VMAMBA_SPEC.md §3 (v2), §5 (v0).
 *
 * Precision: f32 is the exact forward (fp32 everywhere, the CPU's formulas). bf16/f16 is the fast
 * forward: GEMM weights and operands in that dtype on cuBLASLt with fused epilogues (gemm_lt.cu),
 * the in_proj / x_proj outputs, the scan input u and the MLP hidden map in that dtype, the fast
 * SS2D (ss2d.cu); the residual stream x, the merged scan output y, norms and all accumulation
 * stay fp32 (docs/gpu.md "Using it").
 *
 * Work runs over all B images at once (pixel bands over B·L, whole-image groups for the convs);
 * memory (cuda/arena.h): two fp32 maps that swap roles as x / y at each downsample, plus phase
 * buffers (scan, bands, convs) carved over the same bytes — one arena (pool.h) per input size.
 */
#include "vmamba_cuda.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "arena.h"
#include "gemm_lt.h"
#include "knobs.h"
#include "ops_cuda.cuh"
#include "pool.h"
#include "stem_fused.cuh"

/* Band sizes: VC_BAND_DEFAULT / VC_BAND_MIN in cuda/arena.h. */

#define T(expr)                                                                              \
    do {                                                                                     \
        enum wv_status t_st_ = (expr);                                                       \
        if (t_st_ != WV_OK) return t_st_;                                                    \
    } while (0)

struct gblock {
    float *norm_w, *norm_b;
    void *in_proj;          /* dtype (Dn or 2·Dn, C) */
    float *conv_w, *conv_b; /* (9, Dn) (taps outer: lanes read consecutive channels), (Dn) or NULL */
    void *x_proj;           /* dtype (4·pitch, Dn): checkpoint order, or packed (vc_xdbl_pitch) */
    float *A, *Ds, *dt_w, *dt_b;
    float *on_w, *on_b;
    void *out_proj;         /* dtype (C, Dn) */
    float *n2_w, *n2_b, *fc1_b, *fc2_b;
    void *fc1_w, *fc2_w;    /* dtype */
    void *fc1_bd;           /* fc1 bias in the dtype (cuBLASLt's GELU epilogue wants the output's type) */
};

struct gstage {
    int C, Dn, R, depth, hidden;
    int pitch, fast; /* x_proj output row per (pixel, direction); fast SS2D (cuda/arena.h) */
    std::vector<gblock> blocks;
    float *ds_b, *ds_nw, *ds_nb;        /* v2 conv bias, norm (v0: norm of the 4C gather) */
    void *ds_wc;                        /* v2 conv as a GEMM operand (2C, vc_conv_k(C)) dtype */
    void *ds_red;                       /* v0 reduction (2C, 4C) dtype */
};

struct vmamba_cuda {
    struct vmamba_config cfg;
    struct vmamba_cuda_options opt;
    int in_chans, stem_mid;
    float *pe0_w; /* v0 4×4 patch embed (C0, Cin, 4, 4) fp32 */
    void *pe0_wc, *pe5_wc; /* v2 stem convs as GEMM operands (Co, vc_conv_k(Ci)) dtype */
    float *pe0_wt;         /* v2 stem conv 1 as (9·Cin, Cm) fp32 for the fused kernel, or NULL */
    float *pe0_b, *pe2_w, *pe2_b, *pe5_b, *pe7_w, *pe7_b;
    gstage st[VMAMBA_STAGES];
    float *cls_nw, *cls_nb, *head_w, *head_b;
    char *d_weights;              /* one device block holding every tensor */
    cudaStream_t stream;
    cudaEvent_t copy_done;        /* input staging may be rewritten once this fired */
    struct cuda_pool pool;
    float *h_pinned;              /* input rows staging */
    size_t h_pinned_bytes;
    float *h_map;                 /* stage-map download buffer (pageable) */
    size_t h_map_bytes;
    size_t weight_bytes;
    /* section timing (opt.profile): events recorded at section starts, the section of each */
    std::vector<cudaEvent_t> prof_ev;
    std::vector<int> prof_sec;
    int prof_n;
    double prof_ms[VCP_N];
};

static struct vc_model arena_model(const struct vmamba_cuda *m);

/* ---- loading ------------------------------------------------------------------------------ */

namespace {
enum conv_kind { K_F32, K_DT, K_NEGEXP, K_CONV, K_T9, K_XPACK, K_STEMT };
struct up_entry {
    const float *src;
    size_t n;
    conv_kind kind;
    size_t off;
    void **dst;
    int co, ci; /* K_CONV: (co, ci, 3, 3) → (co, vc_conv_k(ci)), k = (ky·3 + kx)·ci + c;
                   K_T9: (co, 9) → (9, co); K_XPACK: co = Dn, ci = R (N = 1), pitch below;
                   K_STEMT: (co, ci, 3, 3) → (9·ci, co) fp32, row k as K_CONV's column k */
    int pitch;
};
struct uploader {
    std::vector<up_entry> e;
    enum wv_dtype dt;
    size_t bytes = 0;
    void add(void **dst, const float *src, size_t n, conv_kind kind)
    {
        size_t es = kind == K_DT ? dtype_size(dt) : 4;
        e.push_back({src, n, kind, bytes, dst, 0, 0, 0});
        bytes += cuda_pool_round(n * es);
    }
    void add_conv(void **dst, const float *src, int co, int ci)
    {
        size_t n = (size_t)co * vc_conv_k(ci);
        e.push_back({src, n, K_CONV, bytes, dst, co, ci, 0});
        bytes += cuda_pool_round(n * dtype_size(dt));
    }
    void add_t9(void **dst, const float *src, int c)
    {
        e.push_back({src, (size_t)9 * c, K_T9, bytes, dst, c, 0, 0});
        bytes += cuda_pool_round((size_t)9 * c * sizeof(float));
    }
    void add_stemt(void **dst, const float *src, int co, int ci)
    {
        e.push_back({src, (size_t)9 * ci * co, K_STEMT, bytes, dst, co, ci, 0});
        bytes += cuda_pool_round((size_t)9 * ci * co * sizeof(float));
    }
    /* x_proj (4, R + 2, Dn) in the checkpoint's (dt_low, B, C) order → (4, pitch, Dn) as
     * (B, C, dt_low, 0…) for the fast SS2D */
    void add_xpack(void **dst, const float *src, int Dn, int R, int pitch)
    {
        size_t n = (size_t)4 * pitch * Dn;
        e.push_back({src, n, K_XPACK, bytes, dst, Dn, R, pitch});
        bytes += cuda_pool_round(n * dtype_size(dt));
    }
};

/* value of element q of a converted entry, as float (before the dtype store) */
static float up_value(const up_entry &e, size_t q)
{
    if (e.kind == K_NEGEXP) return -expf(e.src[q]);
    if (e.kind == K_T9) { /* q = tap·C + c */
        const size_t c = q % e.co, tap = q / e.co;
        return e.src[c * 9 + tap];
    }
    if (e.kind == K_STEMT) { /* q = k·co + c, k = tap·ci + cin */
        const size_t c = q % e.co, k = q / e.co, tap = k / e.ci, cin = k % e.ci;
        return e.src[(c * e.ci + cin) * 9 + tap];
    }
    if (e.kind == K_XPACK) { /* q = (k·pitch + j)·Dn + d */
        const size_t d = q % e.co, row = q / e.co, k = row / e.pitch, j = row % e.pitch;
        const int R = e.ci, P = R + 2;
        int src_row = j == 0 ? R : j == 1 ? R + 1 : (int)j - 2 < R ? (int)j - 2 : -1;
        return src_row < 0 ? 0.0f : e.src[(k * P + src_row) * e.co + d];
    }
    if (e.kind != K_CONV) return e.src[q];
    const int kp = vc_conv_k(e.ci);
    const int co = (int)(q / kp), k = (int)(q % kp);
    if (k >= 9 * e.ci) return 0.0f;
    const int tap = k / e.ci, c = k % e.ci;
    return e.src[((size_t)co * e.ci + c) * 9 + tap];
}
} // namespace


#define NEED(dst, n, kind, expr)                                                             \
    do {                                                                                     \
        const float *need_src_ = (expr);                                                     \
        if (!need_src_) return error_code() ? error_code() : WV_ENOTFOUND;                   \
        up.add((void **)&(dst), need_src_, (size_t)(n), kind);                               \
    } while (0)
#define NEED_CONV(dst, co, ci, expr)                                                         \
    do {                                                                                     \
        const float *need_src_ = (expr);                                                     \
        if (!need_src_) return error_code() ? error_code() : WV_ENOTFOUND;                   \
        up.add_conv((void **)&(dst), need_src_, co, ci);                                     \
    } while (0)

static enum wv_status plan_weights(struct vmamba_cuda *m, const struct weights *w,
                                   const char *prefix, uploader &up)
{
    const struct vmamba_config *cfg = &m->cfg;
    const int N = cfg->d_state, v0 = cfg->family == VMAMBA_V0, C0 = cfg->dims[0];
    if (v0) {
        const int64_t shp[4] = {C0, -1, 4, 4};
        const struct weight_tensor *t = vmamba_tensor(w, prefix, "patch_embed.0.weight", 4, shp);
        if (!t) return error_code();
        m->in_chans = (int)t->shape[1];
        up.add((void **)&m->pe0_w, t->data, (size_t)t->numel, K_F32);
        NEED(m->pe0_b, C0, K_F32, vmamba_tensor_f32(w, prefix, 1, C0, 0, 0, 0, "patch_embed.0.bias"));
        NEED(m->pe2_w, C0, K_F32, vmamba_tensor_f32(w, prefix, 1, C0, 0, 0, 0, "patch_embed.2.weight"));
        NEED(m->pe2_b, C0, K_F32, vmamba_tensor_f32(w, prefix, 1, C0, 0, 0, 0, "patch_embed.2.bias"));
    } else {
        const int64_t shp[4] = {-1, -1, 3, 3};
        const struct weight_tensor *t = vmamba_tensor(w, prefix, "patch_embed.0.weight", 4, shp);
        if (!t) return error_code();
        int Cm = m->stem_mid = (int)t->shape[0];
        m->in_chans = (int)t->shape[1];
        up.add_conv(&m->pe0_wc, t->data, Cm, m->in_chans);
        /* the fused first conv's fp32 weights (cuda/stem_fused.cuh), 1 KB-5 KB */
        if (Cm <= STEM_FUSED_CMAX && Cm % 4 == 0) up.add_stemt((void **)&m->pe0_wt, t->data, Cm, m->in_chans);
        NEED(m->pe0_b, Cm, K_F32, vmamba_tensor_f32(w, prefix, 1, Cm, 0, 0, 0, "patch_embed.0.bias"));
        NEED(m->pe2_w, Cm, K_F32, vmamba_tensor_f32(w, prefix, 1, Cm, 0, 0, 0, "patch_embed.2.weight"));
        NEED(m->pe2_b, Cm, K_F32, vmamba_tensor_f32(w, prefix, 1, Cm, 0, 0, 0, "patch_embed.2.bias"));
        NEED_CONV(m->pe5_wc, C0, Cm, vmamba_tensor_f32(w, prefix, 4, C0, Cm, 3, 3, "patch_embed.5.weight"));
        NEED(m->pe5_b, C0, K_F32, vmamba_tensor_f32(w, prefix, 1, C0, 0, 0, 0, "patch_embed.5.bias"));
        NEED(m->pe7_w, C0, K_F32, vmamba_tensor_f32(w, prefix, 1, C0, 0, 0, 0, "patch_embed.7.weight"));
        NEED(m->pe7_b, C0, K_F32, vmamba_tensor_f32(w, prefix, 1, C0, 0, 0, 0, "patch_embed.7.bias"));
    }
    for (int i = 0; i < VMAMBA_STAGES; i++) {
        gstage &s = m->st[i];
        int C = cfg->dims[i], Dn = cfg->d_inner[i], R = cfg->dt_rank[i], P = R + 2 * N;
        s.C = C, s.Dn = Dn, s.R = R, s.depth = cfg->depths[i], s.hidden = cfg->mlp_hidden[i];
        {
            struct vc_model am = arena_model(m);
            s.fast = vc_scan_fast(&am, i);
            s.pitch = vc_xdbl_pitch(&am, i);
        }
        s.blocks.assign(s.depth, gblock{});
        for (int j = 0; j < s.depth; j++) {
            gblock &bk = s.blocks[j];
#define BT(nd, a, b, c, d, nm) vmamba_tensor_f32(w, prefix, nd, a, b, c, d, "layers.%d.blocks.%d." nm, i, j)
            NEED(bk.norm_w, C, K_F32, BT(1, C, 0, 0, 0, "norm.weight"));
            NEED(bk.norm_b, C, K_F32, BT(1, C, 0, 0, 0, "norm.bias"));
            int rows = v0 ? 2 * Dn : Dn;
            NEED(bk.in_proj, (size_t)rows * C, K_DT, BT(2, rows, C, 0, 0, "op.in_proj.weight"));
            {
                const float *cw = BT(4, Dn, 1, 3, 3, "op.conv2d.weight");
                if (!cw) return error_code() ? error_code() : WV_ENOTFOUND;
                up.add_t9((void **)&bk.conv_w, cw, Dn);
            }
            if (cfg->conv_bias) NEED(bk.conv_b, Dn, K_F32, BT(1, Dn, 0, 0, 0, "op.conv2d.bias"));
            if (s.fast) {
                const float *xw = BT(3, 4, P, Dn, 0, "op.x_proj_weight");
                if (!xw) return error_code() ? error_code() : WV_ENOTFOUND;
                up.add_xpack(&bk.x_proj, xw, Dn, R, s.pitch);
            } else {
                NEED(bk.x_proj, (size_t)4 * P * Dn, K_DT, BT(3, 4, P, Dn, 0, "op.x_proj_weight"));
            }
            NEED(bk.A, (size_t)4 * Dn * N, K_NEGEXP, BT(2, 4 * Dn, N, 0, 0, "op.A_logs"));
            NEED(bk.Ds, (size_t)4 * Dn, K_F32, BT(1, 4 * Dn, 0, 0, 0, "op.Ds"));
            NEED(bk.dt_w, (size_t)4 * Dn * R, K_F32, BT(3, 4, Dn, R, 0, "op.dt_projs_weight"));
            NEED(bk.dt_b, (size_t)4 * Dn, K_F32, BT(2, 4, Dn, 0, 0, "op.dt_projs_bias"));
            NEED(bk.on_w, Dn, K_F32, BT(1, Dn, 0, 0, 0, "op.out_norm.weight"));
            NEED(bk.on_b, Dn, K_F32, BT(1, Dn, 0, 0, 0, "op.out_norm.bias"));
            NEED(bk.out_proj, (size_t)C * Dn, K_DT, BT(2, C, Dn, 0, 0, "op.out_proj.weight"));
            if (s.hidden > 0) {
                int Hd = s.hidden;
                NEED(bk.n2_w, C, K_F32, BT(1, C, 0, 0, 0, "norm2.weight"));
                NEED(bk.n2_b, C, K_F32, BT(1, C, 0, 0, 0, "norm2.bias"));
                NEED(bk.fc1_w, (size_t)Hd * C, K_DT, BT(2, Hd, C, 0, 0, "mlp.fc1.weight"));
                NEED(bk.fc1_b, Hd, K_F32, BT(1, Hd, 0, 0, 0, "mlp.fc1.bias"));
                NEED(bk.fc1_bd, Hd, K_DT, BT(1, Hd, 0, 0, 0, "mlp.fc1.bias"));
                NEED(bk.fc2_w, (size_t)C * Hd, K_DT, BT(2, C, Hd, 0, 0, "mlp.fc2.weight"));
                NEED(bk.fc2_b, C, K_F32, BT(1, C, 0, 0, 0, "mlp.fc2.bias"));
            }
#undef BT
        }
        if (i < VMAMBA_STAGES - 1) {
            int C2 = cfg->dims[i + 1];
            if (v0) {
                NEED(s.ds_nw, 4 * C, K_F32, vmamba_tensor_f32(w, prefix, 1, 4 * C, 0, 0, 0, "layers.%d.downsample.norm.weight", i));
                NEED(s.ds_nb, 4 * C, K_F32, vmamba_tensor_f32(w, prefix, 1, 4 * C, 0, 0, 0, "layers.%d.downsample.norm.bias", i));
                NEED(s.ds_red, (size_t)C2 * 4 * C, K_DT,
                     vmamba_tensor_f32(w, prefix, 2, C2, 4 * C, 0, 0, "layers.%d.downsample.reduction.weight", i));
            } else {
                NEED_CONV(s.ds_wc, C2, C, vmamba_tensor_f32(w, prefix, 4, C2, C, 3, 3, "layers.%d.downsample.1.weight", i));
                NEED(s.ds_b, C2, K_F32, vmamba_tensor_f32(w, prefix, 1, C2, 0, 0, 0, "layers.%d.downsample.1.bias", i));
                NEED(s.ds_nw, C2, K_F32, vmamba_tensor_f32(w, prefix, 1, C2, 0, 0, 0, "layers.%d.downsample.3.weight", i));
                NEED(s.ds_nb, C2, K_F32, vmamba_tensor_f32(w, prefix, 1, C2, 0, 0, 0, "layers.%d.downsample.3.bias", i));
            }
        }
    }
    if (cfg->num_classes > 0) {
        int C3 = cfg->dims[3], K = cfg->num_classes;
        NEED(m->cls_nw, C3, K_F32, vmamba_tensor_f32(w, prefix, 1, C3, 0, 0, 0, "classifier.norm.weight"));
        NEED(m->cls_nb, C3, K_F32, vmamba_tensor_f32(w, prefix, 1, C3, 0, 0, 0, "classifier.norm.bias"));
        NEED(m->head_w, (size_t)K * C3, K_F32, vmamba_tensor_f32(w, prefix, 2, K, C3, 0, 0, "classifier.head.weight"));
        NEED(m->head_b, K, K_F32, vmamba_tensor_f32(w, prefix, 1, K, 0, 0, 0, "classifier.head.bias"));
    }
    return WV_OK;
}

static enum wv_status upload_weights(struct vmamba_cuda *m, uploader &up)
{
    char *h = (char *)malloc(up.bytes ? up.bytes : 1);
    if (!h) return error_set(WV_ENOMEM, "cuda model: %zu bytes of host staging for weights", up.bytes);
    for (const up_entry &e : up.e) {
        char *dst = h + e.off;
        if (e.kind == K_NEGEXP || e.kind == K_F32 || e.kind == K_T9 || e.kind == K_STEMT ||
            up.dt == WV_DTYPE_F32) {
            for (size_t q = 0; q < e.n; q++) ((float *)dst)[q] = up_value(e, q);
        } else if (up.dt == WV_DTYPE_BF16) {
            for (size_t q = 0; q < e.n; q++) ((__nv_bfloat16 *)dst)[q] = __float2bfloat16_rn(up_value(e, q));
        } else {
            for (size_t q = 0; q < e.n; q++) ((__half *)dst)[q] = __float2half_rn(up_value(e, q));
        }
    }
    cudaError_t ce = cudaMalloc((void **)&m->d_weights, up.bytes ? up.bytes : 1);
    if (ce != cudaSuccess) {
        free(h);
        m->d_weights = NULL;
        return cuda_fail(ce, "cudaMalloc(weights)", "model", __FILE__, __LINE__);
    }
    ce = cudaMemcpy(m->d_weights, h, up.bytes, cudaMemcpyHostToDevice);
    free(h);
    if (ce != cudaSuccess) return cuda_fail(ce, "cudaMemcpy(weights)", "model", __FILE__, __LINE__);
    for (const up_entry &e : up.e) *e.dst = m->d_weights + e.off;
    m->weight_bytes = up.bytes;
    return WV_OK;
}

static enum wv_status create(const struct weights *w, const char *prefix,
                             const struct vmamba_cuda_options *opt, struct vmamba_cuda *m)
{
    T(vmamba_config_infer(w, prefix, &m->cfg));
    if (m->cfg.d_state < 1 || m->cfg.d_state > CUDA_SCAN_MAX_N)
        return error_set(WV_EUNSUPPORTED, "cuda model: d_state %d (this build takes 1..%d)",
                         m->cfg.d_state, CUDA_SCAN_MAX_N);
    for (int i = 0; i < VMAMBA_STAGES; i++)
        if (m->cfg.dt_rank[i] > 128)
            return error_set(WV_EUNSUPPORTED, "cuda model: dt_rank %d (this build takes up to 128)",
                             m->cfg.dt_rank[i]);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || opt->device < 0 || opt->device >= n) {
        cudaGetLastError();
        return error_set(WV_EUNSUPPORTED, "cuda model: device %d not available (%s)", opt->device,
                         e != cudaSuccess ? cudaGetErrorString(e) : "no such device");
    }
    CUDA_TRY("model", cudaSetDevice(opt->device));
    CUDA_TRY("model", cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking));
    CUDA_TRY("model", cudaEventCreateWithFlags(&m->copy_done, cudaEventDisableTiming));
    uploader up;
    up.dt = opt->dtype;
    T(plan_weights(m, w, prefix, up));
    return upload_weights(m, up);
}

extern "C" enum wv_status vmamba_cuda_create(const struct weights *w, const char *prefix,
                                             const struct vmamba_cuda_options *opt,
                                             struct vmamba_cuda **out)
{
    *out = NULL;
    struct vmamba_cuda_options def = {};
    if (!opt) opt = &def;
    if (!prefix) prefix = "";
    struct vmamba_cuda *m = new (std::nothrow) vmamba_cuda();
    if (!m) return error_set(WV_ENOMEM, "cuda model: out of host memory");
    m->opt = *opt;
    enum wv_status st = create(w, prefix, opt, m);
    if (st) {
        vmamba_cuda_free(m);
        return st;
    }
    *out = m;
    return WV_OK;
}

extern "C" void vmamba_cuda_free(struct vmamba_cuda *m)
{
    if (!m) return;
    cudaSetDevice(m->opt.device);
    if (m->stream) cudaStreamSynchronize(m->stream);
    cuda_pool_release(&m->pool);
    if (m->d_weights) cudaFree(m->d_weights);
    if (m->h_pinned) cudaFreeHost(m->h_pinned);
    free(m->h_map);
    if (m->copy_done) cudaEventDestroy(m->copy_done);
    for (cudaEvent_t e : m->prof_ev) cudaEventDestroy(e);
    if (m->stream) cudaStreamDestroy(m->stream);
    delete m;
}

extern "C" const struct vmamba_config *vmamba_cuda_config(const struct vmamba_cuda *m)
{
    return &m->cfg;
}
extern "C" int vmamba_cuda_in_chans(const struct vmamba_cuda *m) { return m->in_chans; }

/* ---- sizes (cuda/arena.c: the one place that sizes and carves the arena) ------------------- */

static void stage_sizes(int v0, int H, int W, int *hs, int *ws) { vc_stage_sizes(v0, H, W, hs, ws); }

static struct vc_model arena_model(const struct vmamba_cuda *m)
{
    const struct vmamba_config *cfg = &m->cfg;
    struct vc_model a = {};
    a.v0 = cfg->family == VMAMBA_V0;
    a.d_state = cfg->d_state;
    a.in_chans = m->in_chans;
    a.stem_mid = m->stem_mid;
    a.num_classes = cfg->num_classes;
    for (int i = 0; i < VMAMBA_STAGES; i++) {
        a.dims[i] = cfg->dims[i];
        a.d_inner[i] = cfg->d_inner[i];
        a.dt_rank[i] = cfg->dt_rank[i];
        a.hidden[i] = cfg->mlp_hidden[i] > 0 ? cfg->mlp_hidden[i] : 0;
    }
    a.dtype = m->opt.dtype;
    a.scan_chunk = m->opt.scan_chunk;
    /* the tiled SS2D: the option, or the switch WV_SS2D_TILE (cuda/knobs.h) */
    a.scan_tile = m->opt.scan_tile > 0 ||
                  (m->opt.scan_tile == 0 && wv_knob(WV_KNOB_SS2D_TILE, WV_KNOB_SS2D_TILE_DEFAULT));
    return a;
}

extern "C" size_t vmamba_cuda_arena_bytes(const struct vmamba_cuda *m, int B, int H, int W,
                                          size_t band_pixels)
{
    struct vc_model am = arena_model(m);
    struct vc_layout l;
    struct vc_carving c;
    vc_plan(&am, B, H, W, band_pixels, &l);
    vc_carve(&l, &c);
    return c.total;
}

/* ---- forward ------------------------------------------------------------------------------ */

struct gfwd {
    struct vmamba_cuda *m;
    cudaStream_t s;
    enum wv_dtype dt;
    int tf32, B, chunk; /* chunk: the scan chunk of the stage being run */
    int tile, tile_group; /* tiled SS2D of the stage being run: tile side (0 = chunked), channels */
    size_t bp; /* band pixels of the stage being run (layout band[i]) */
    float *map[2], *band_b, *band_c, *in, *mid, *feat;
    void *u, *xdbl, *band_a, *band_d, *col, *ws;
    const float *dev_in; /* (B, H, W, Cin) on the device, or NULL: rows come through `read` */
    struct vc_layout l;  /* capacities (elements) of every buffer, bands, stem rows */
};

/* Host-side guard before a kernel writes `n` elements of buffer `b`: the layout (cuda/arena.c)
 * must cover every band the loops below form; if it ever does not, fail with the buffer's name
 * instead of writing past it. */
static enum wv_status sizing_error(int b, size_t need, size_t have)
{
    return error_set(WV_ECUDA, "cuda forward: arena sizing error: %s needs %zu elements, has %zu",
                     vc_buf_name((enum vc_buf)b), need, have);
}
#define FITS(f, b, n)                                                                        \
    do {                                                                                     \
        size_t fits_n_ = (size_t)(n);                                                        \
        if (fits_n_ > (f).l.elems[b]) return sizing_error(b, fits_n_, (f).l.elems[b]);      \
    } while (0)

/* Section timing: an event at the start of each section (and one at the end of the forward). */
static enum wv_status mark(gfwd &f, int sec)
{
    struct vmamba_cuda *m = f.m;
    if (!m->opt.profile) return WV_OK;
    if ((size_t)m->prof_n == m->prof_ev.size()) {
        cudaEvent_t e;
        CUDA_TRY("model profile", cudaEventCreate(&e));
        m->prof_ev.push_back(e);
        m->prof_sec.push_back(0);
    }
    m->prof_sec[m->prof_n] = sec;
    CUDA_TRY("model profile", cudaEventRecord(m->prof_ev[m->prof_n], f.s));
    m->prof_n++;
    return WV_OK;
}

/* After the stream is idle: add the intervals to prof_ms. */
static enum wv_status profile_collect(struct vmamba_cuda *m)
{
    for (int i = 0; i + 1 < m->prof_n; i++) {
        float ms = 0.0f;
        CUDA_TRY("model profile", cudaEventElapsedTime(&ms, m->prof_ev[i], m->prof_ev[i + 1]));
        if (m->prof_sec[i] >= 0 && m->prof_sec[i] < VCP_N) m->prof_ms[m->prof_sec[i]] += ms;
    }
    m->prof_n = 0;
    return WV_OK;
}

/* SS2D phases as profile sections (a mark failure is left for the next CUDA_TRY to find) */
static void scan_hook(void *user, enum ss2d_phase ph)
{
    gfwd &f = *(gfwd *)user;
    static const int sec[4] = {VCP_SCAN, VCP_SCAN_CARRY, VCP_SCAN_ROWS, VCP_SCAN_COLS};
    (void)mark(f, sec[ph]);
}

static enum wv_status gemm(gfwd &f, const void *x, const void *w, const float *bias, float *y,
                           size_t M, int K, int Nout, int acc)
{
    if (f.dt == WV_DTYPE_F32) return gemm_cuda_ex(x, w, f.dt, f.tf32, bias, y, M, K, Nout, acc, f.s);
    return gemm_lt_cuda(x, w, f.dt, bias, y, WV_DTYPE_F32, M, K, Nout, acc,
                        bias ? GEMM_EPI_BIAS : GEMM_EPI_NONE, f.s);
}

/* bf16/f16 forward only: output in the storage dtype (no fp32 round trip) */
static enum wv_status gemm_dt(gfwd &f, const void *x, const void *w, const void *bias_dt, void *y,
                              size_t M, int K, int Nout, enum gemm_epi epi)
{
    return gemm_lt_cuda(x, w, f.dt, bias_dt, y, f.dt, M, K, Nout, 0, epi, f.s);
}

/* Element offset of a dtype array. */
static const void *dt_off(const void *p, size_t elems, enum wv_dtype dt)
{
    return (const char *)p + elems * dtype_size(dt);
}

static enum wv_status ensure_pinned(struct vmamba_cuda *m, size_t bytes)
{
    if (m->h_pinned_bytes >= bytes) return WV_OK;
    if (m->h_pinned) {
        CUDA_TRY("model", cudaEventSynchronize(m->copy_done));
        cudaFreeHost(m->h_pinned);
        m->h_pinned = NULL;
        m->h_pinned_bytes = 0;
    }
    CUDA_TRY("model", cudaMallocHost((void **)&m->h_pinned, bytes));
    m->h_pinned_bytes = bytes;
    return WV_OK;
}

/* Input rows [row0, row0+rows) of image b: straight from the device input, or pulled through
 * `read` into the pinned staging and copied to f.in (the host waits only for the previous copy,
 * not for the GPU's compute). */
static enum wv_status input_rows(gfwd &f, vmamba_read_rows_fn read, void *ru, int b, int row0,
                                 int rows, int H, int W, const float **out)
{
    struct vmamba_cuda *m = f.m;
    if (f.dev_in) {
        *out = f.dev_in + ((size_t)b * H + row0) * W * m->in_chans;
        return WV_OK;
    }
    size_t n = (size_t)rows * W * m->in_chans;
    FITS(f, VC_IN, n);
    CUDA_TRY("model input", cudaEventSynchronize(m->copy_done));
    T(read(ru, b, row0, rows, m->h_pinned));
    CUDA_TRY("model input", cudaMemcpyAsync(f.in, m->h_pinned, n * sizeof(float),
                                            cudaMemcpyHostToDevice, f.s));
    CUDA_TRY("model input", cudaEventRecord(m->copy_done, f.s));
    *out = f.in;
    return WV_OK;
}

/* y rows = conv3×3/s2(x) + bias as im2col + one GEMM: `nimg` images (x + i·x_img, rows from
 * x_row0 on), output rows [y_row0, y_row0 + y_rows) of each, written contiguously at y. */
static enum wv_status conv3s2_gemm(gfwd &f, const float *x, int x_row0, size_t x_img,
                                   const void *wc, const float *bias, float *y, int y_row0,
                                   int y_rows, int nimg, int H, int W, int Ci, int Co)
{
    const int Kp = vc_conv_k(Ci), Wo = (W + 1) / 2;
    const size_t M = (size_t)nimg * y_rows * Wo;
    FITS(f, VC_COL, M * Kp);
    T(im2col3s2_cuda(x, x_row0, x_img, f.col, f.dt, y_row0, y_rows, nimg, H, W, Ci, Kp, f.s));
    return gemm(f, f.col, wc, bias, y, M, Kp, Co, 0);
}

/* The fused first stem conv where it applies: switch WV_STEM_FUSED (cuda/knobs.h),
 * Cm ≤ 64 and a multiple of 4 (its weights were uploaded), 32-bit pixel indices. */
static int stem_fused(const struct vmamba_cuda *m, size_t nmid)
{
    return wv_knob(WV_KNOB_STEM_FUSED, WV_KNOB_STEM_FUSED_DEFAULT) && m->pe0_wt &&
           nmid < ((size_t)1 << 31);
}

static enum wv_status stem_forward(gfwd &f, int H, int W, vmamba_read_rows_fn read, void *ru,
                                   float *x)
{
    struct vmamba_cuda *m = f.m;
    const int Cin = m->in_chans, C0 = m->cfg.dims[0];
    int hs[4], ws[4];
    stage_sizes(m->cfg.family == VMAMBA_V0, H, W, hs, ws);
    const int H0 = hs[0], W0 = ws[0];
    const int rb = f.l.stem_rows;
    if (!f.dev_in) T(ensure_pinned(m, f.l.elems[VC_IN] * sizeof(float)));
    const float *src = NULL;
    if (m->cfg.family == VMAMBA_V0) {
        for (int b = 0; b < f.B; b++)
            for (int r0 = 0; r0 < H0; r0 += rb) {
                int r1 = r0 + rb < H0 ? r0 + rb : H0;
                T(input_rows(f, read, ru, b, 4 * r0, 4 * (r1 - r0), H, W, &src));
                float *xo = x + ((size_t)b * H0 + r0) * W0 * C0;
                T(patch_embed4_cuda_st(src, 4 * r0, 4 * (r1 - r0), m->pe0_w, m->pe0_b, xo, r0,
                                       r1 - r0, H, W, Cin, C0, f.s));
                T(layernorm_cuda_dt(xo, m->pe2_w, m->pe2_b, xo, WV_DTYPE_F32,
                                    (size_t)(r1 - r0) * W0, C0, f.s));
            }
        return WV_OK;
    }
    const int H1 = (H + 1) / 2, W1 = (W + 1) / 2, Cm = m->stem_mid;
    const int g = f.dev_in ? f.l.stem_group : 1;
    for (int b0 = 0; b0 < f.B; b0 += g) {
        const int ng = f.B - b0 < g ? f.B - b0 : g; /* > 1 only when whole images fit a band */
        for (int r0 = 0; r0 < H0; r0 += rb) {
            int r1 = r0 + rb < H0 ? r0 + rb : H0;
            int m0 = 2 * r0 - 1 < 0 ? 0 : 2 * r0 - 1, m1 = 2 * r1 < H1 ? 2 * r1 : H1;
            int i0 = 2 * m0 - 1 < 0 ? 0 : 2 * m0 - 1, i1 = 2 * m1 < H ? 2 * m1 : H;
            size_t nmid = (size_t)ng * (m1 - m0) * W1;
            FITS(f, VC_MID, nmid * Cm);
            T(input_rows(f, read, ru, b0, i0, i1 - i0, H, W, &src));
            T(mark(f, VCP_STEM_CONV));
            if (stem_fused(m, nmid)) {
                /* conv 1 + LayerNorm + GELU in one pass (cuda/stem_fused.cuh) */
                T(stem_conv1_ln_gelu_cuda(src, i0, (size_t)H * W * Cin, m->pe0_wt, m->pe0_b,
                                          m->pe2_w, m->pe2_b, f.mid, m0, m1 - m0, ng, H, W, Cin,
                                          Cm, f.s));
            } else {
                T(conv3s2_gemm(f, src, i0, (size_t)H * W * Cin, m->pe0_wc, m->pe0_b, f.mid, m0,
                               m1 - m0, ng, H, W, Cin, Cm));
                T(mark(f, VCP_STEM));
                T(layernorm_gelu_cuda(f.mid, m->pe2_w, m->pe2_b, nmid, Cm, f.s));
            }
            float *xo = x + ((size_t)b0 * H0 + r0) * W0 * C0;
            T(mark(f, VCP_STEM_CONV));
            T(conv3s2_gemm(f, f.mid, m0, (size_t)(m1 - m0) * W1 * Cm, m->pe5_wc, m->pe5_b, xo, r0,
                           r1 - r0, ng, H1, W1, Cm, C0));
            T(mark(f, VCP_STEM));
            T(layernorm_cuda_dt(xo, m->pe7_w, m->pe7_b, xo, WV_DTYPE_F32,
                                (size_t)ng * (r1 - r0) * W0, C0, f.s));
        }
    }
    return WV_OK;
}

/* One VSSBlock on x (B, H, W, C) in place; y (B, H, W, Dn) fp32 scratch, u in f.u. Every op runs
 * over all B·H·W pixels at once (in pixel bands where it needs scratch). */
static enum wv_status block_forward(gfwd &f, const gstage &s, const gblock &bk, float *x, float *y,
                                    int H, int W)
{
    const int C = s.C, Dn = s.Dn, R = s.R, N = f.m->cfg.d_state, P = s.pitch;
    const int v0 = f.m->cfg.family == VMAMBA_V0, fast = f.dt != WV_DTYPE_F32;
    const size_t L = (size_t)H * W, M = (size_t)f.B * L, es = dtype_size(f.dt);
    FITS(f, VC_XDBL, M * 4 * P);
    FITS(f, VC_U, M * Dn);
    FITS(f, VC_MAP0, M * Dn);
    if (f.tile) FITS(f, VC_WS, vc_ss2d_tile_ws_bytes(f.B, H, W, f.tile_group, f.tile));
    else if (L > (size_t)f.chunk) FITS(f, VC_WS, vc_ss2d_ws_bytes(f.B, H, W, Dn, N, f.chunk));
    /* in_proj(LN(x)) into y (free until the scan writes it), pixel bands */
    T(mark(f, VCP_IN_PROJ));
    for (size_t p0 = 0; p0 < M; p0 += f.bp) {
        size_t np = M - p0 < f.bp ? M - p0 : f.bp;
        FITS(f, VC_BAND_A, np * C);
        T(layernorm_cuda_dt(x + p0 * C, bk.norm_w, bk.norm_b, f.band_a, f.dt, np, C, f.s));
        if (fast) T(gemm_dt(f, f.band_a, bk.in_proj, NULL, (char *)y + p0 * Dn * es, np, C, Dn,
                            GEMM_EPI_NONE));
        else T(gemm(f, f.band_a, bk.in_proj, NULL, y + p0 * Dn, np, C, Dn, 0));
    }
    /* u = SiLU(dwconv(·)) over whole images, stored in the GEMM dtype */
    T(mark(f, VCP_DWCONV));
    T(dwconv3_silu_map_cuda(y, f.dt, bk.conv_w, bk.conv_b, f.u, f.dt, f.B, H, W, Dn, f.s));
    /* x_proj for the 4 directions in pixel order: (B·L, Dn) · (4P, Dn)ᵀ, one GEMM, output in the
     * storage dtype (the scan reads it as such) */
    T(mark(f, VCP_X_PROJ));
    if (fast) T(gemm_dt(f, f.u, bk.x_proj, NULL, f.xdbl, M, Dn, 4 * P, GEMM_EPI_NONE));
    else T(gemm(f, f.u, bk.x_proj, NULL, (float *)f.xdbl, M, Dn, 4 * P, 0));
    T(mark(f, VCP_SCAN));
    if (f.tile)
        T(ss2d_scan_merge_tile_cuda(f.u, f.dt, f.xdbl, P, bk.dt_w, bk.dt_b, bk.A, bk.Ds, y, f.B, H,
                                    W, Dn, R, f.tile, f.tile_group, f.ws,
                                    f.m->opt.profile ? scan_hook : NULL, &f, f.s));
    else if (s.fast)
        T(ss2d_scan_merge_fast_cuda(f.u, f.dt, f.xdbl, P, bk.dt_w, bk.dt_b, bk.A, bk.Ds, y, f.B, H,
                                    W, Dn, R, f.chunk, f.ws, f.m->opt.profile ? scan_hook : NULL,
                                    &f, f.s));
    else
        T(ss2d_scan_merge_batch_cuda(f.u, f.dt, f.xdbl, bk.dt_w, bk.dt_b, bk.A, bk.Ds, y, f.B, H,
                                     W, Dn, R, N, f.chunk, f.ws, f.s));
    /* tail in pixel bands: y = out_norm(y) [· SiLU(z)]; x += out_proj(y); x += MLP(LN2(x)) */
    for (size_t p0 = 0; p0 < M; p0 += f.bp) {
        size_t np = M - p0 < f.bp ? M - p0 : f.bp;
        float *xp = x + p0 * C, *yp = y + p0 * Dn;
        FITS(f, VC_BAND_A, np * (C > Dn ? C : Dn));
        if (v0) FITS(f, VC_BAND_B, np * Dn);
        if (s.hidden > 0) FITS(f, fast ? VC_BAND_D : VC_BAND_C, np * s.hidden);
        T(mark(f, VCP_OUT));
        if (v0) {
            T(layernorm_cuda_dt(yp, bk.on_w, bk.on_b, yp, WV_DTYPE_F32, np, Dn, f.s));
            T(layernorm_cuda_dt(xp, bk.norm_w, bk.norm_b, f.band_a, f.dt, np, C, f.s));
            T(gemm(f, f.band_a, dt_off(bk.in_proj, (size_t)Dn * C, f.dt), NULL, f.band_b, np, C,
                   Dn, 0));
            T(mul_silu_cuda_dt(yp, f.band_b, f.band_a, f.dt, np * Dn, f.s));
        } else {
            T(layernorm_cuda_dt(yp, bk.on_w, bk.on_b, f.band_a, f.dt, np, Dn, f.s));
        }
        T(gemm(f, f.band_a, bk.out_proj, NULL, xp, np, Dn, C, 1));
        if (s.hidden > 0) {
            T(mark(f, VCP_MLP));
            T(layernorm_cuda_dt(xp, bk.n2_w, bk.n2_b, f.band_a, f.dt, np, C, f.s));
            if (fast) { /* GELU(fc1) in the epilogue, written in the dtype; fc2 + bias added into x */
                T(gemm_dt(f, f.band_a, bk.fc1_w, bk.fc1_bd, f.band_d, np, C, s.hidden,
                          GEMM_EPI_GELU_BIAS));
                T(gemm(f, f.band_d, bk.fc2_w, bk.fc2_b, xp, np, s.hidden, C, 1));
            } else { /* exact: erf GELU, fp32 hidden */
                T(gemm(f, f.band_a, bk.fc1_w, bk.fc1_b, f.band_c, np, C, s.hidden, 0));
                T(gelu_cuda_dt(f.band_c, f.band_c, f.dt, np * s.hidden, f.s));
                T(gemm(f, f.band_c, bk.fc2_w, bk.fc2_b, xp, np, s.hidden, C, 1));
            }
        }
    }
    return WV_OK;
}

/* x (B, H, W, C) → xn (B, ⌈H/2⌉, ⌈W/2⌉, C2); stage i → i + 1, in the next stage's bands. */
static enum wv_status downsample_forward(gfwd &f, const gstage &s, int C2, size_t band,
                                         const float *x, float *xn, int H, int W)
{
    const int C = s.C, Ho = (H + 1) / 2, Wo = (W + 1) / 2;
    if (f.m->cfg.family == VMAMBA_V0) {
        const int rb = vc_rows_per_band(f.bp, Wo);
        for (int b = 0; b < f.B; b++)
            for (int r0 = 0; r0 < Ho; r0 += rb) {
                int r1 = r0 + rb < Ho ? r0 + rb : Ho;
                int i0 = 2 * r0, i1 = 2 * r1 < H ? 2 * r1 : H;
                size_t np = (size_t)(r1 - r0) * Wo;
                FITS(f, VC_BAND_C, np * 4 * C);
                FITS(f, VC_BAND_A, np * 4 * C);
                T(patch_merge_cuda_st(x + ((size_t)b * H + i0) * W * C, i0, i1 - i0, f.band_c, r0,
                                      r1 - r0, H, W, C, f.s));
                T(layernorm_cuda_dt(f.band_c, s.ds_nw, s.ds_nb, f.band_a, f.dt, np, 4 * C, f.s));
                T(gemm(f, f.band_a, s.ds_red, NULL, xn + ((size_t)b * Ho + r0) * Wo * C2, np,
                       4 * C, C2, 0));
            }
        return WV_OK;
    }
    struct vc_units u;
    vc_conv_units(band, f.B, Ho, Wo, &u);
    for (int b0 = 0; b0 < f.B; b0 += u.group) {
        const int ng = f.B - b0 < u.group ? f.B - b0 : u.group;
        for (int r0 = 0; r0 < Ho; r0 += u.rows) {
            int r1 = r0 + u.rows < Ho ? r0 + u.rows : Ho;
            T(conv3s2_gemm(f, x + (size_t)b0 * H * W * C, 0, (size_t)H * W * C, s.ds_wc, s.ds_b,
                           xn + ((size_t)b0 * Ho + r0) * Wo * C2, r0, r1 - r0, ng, H, W, C, C2));
        }
    }
    return layernorm_cuda_dt(xn, s.ds_nw, s.ds_nb, xn, WV_DTYPE_F32, (size_t)f.B * Ho * Wo, C2, f.s);
}

/* logits_d (B, K) on the device; scratch: a map buffer of at least B·L·C floats. */
static enum wv_status classifier_forward(gfwd &f, const float *x, float *scratch, int L,
                                         float *logits_d)
{
    struct vmamba_cuda *m = f.m;
    const int C = m->cfg.dims[3], K = m->cfg.num_classes;
    T(layernorm_cuda_dt(x, m->cls_nw, m->cls_nb, scratch, WV_DTYPE_F32, (size_t)f.B * L, C, f.s));
    for (int b = 0; b < f.B; b++)
        T(mean_pool_cuda_st(scratch + (size_t)b * L * C, f.feat + (size_t)b * C, (size_t)L, C, f.s));
    return gemm_cuda_ex(f.feat, m->head_w, WV_DTYPE_F32, 0, m->head_b, logits_d, (size_t)f.B, C,
                        K, 0, f.s);
}

static enum wv_status emit(gfwd &f, vmamba_stage_fn on_stage, void *su, const char *name,
                           const float *d_map, int H, int W, int C)
{
    if (!on_stage) return WV_OK;
    struct vmamba_cuda *m = f.m;
    size_t bytes = (size_t)f.B * H * W * C * sizeof(float);
    if (m->h_map_bytes < bytes) {
        free(m->h_map);
        m->h_map = (float *)malloc(bytes ? bytes : 1);
        m->h_map_bytes = m->h_map ? bytes : 0;
        if (!m->h_map) return error_set(WV_ENOMEM, "cuda model: %zu bytes for stage map %s", bytes, name);
    }
    CUDA_TRY("model output", cudaMemcpyAsync(m->h_map, d_map, bytes, cudaMemcpyDeviceToHost, f.s));
    CUDA_TRY("model output", cudaStreamSynchronize(f.s));
    return on_stage(su, name, m->h_map, f.B, H, W, C);
}

static enum wv_status forward(gfwd &f, int H, int W, vmamba_read_rows_fn read, void *ru,
                              vmamba_stage_fn on_stage, void *su, float *logits, float *features)
{
    struct vmamba_cuda *m = f.m;
    const struct vmamba_config *cfg = &m->cfg;
    int hs[4], ws[4];
    stage_sizes(cfg->family == VMAMBA_V0, H, W, hs, ws);
    float *x = f.map[0], *y = f.map[1];
    T(mark(f, VCP_STEM));
    T(stem_forward(f, H, W, read, ru, x));
    T(emit(f, on_stage, su, "patch_embed", x, hs[0], ws[0], cfg->dims[0]));
    for (int i = 0; i < VMAMBA_STAGES; i++) {
        const gstage &s = m->st[i];
        f.bp = f.l.band[i];
        f.chunk = f.l.stage_chunk[i];
        f.tile = f.l.stage_tile[i], f.tile_group = f.l.stage_tile_group[i];
        FITS(f, VC_MAP0, (size_t)f.B * hs[i] * ws[i] * (s.C > s.Dn ? s.C : s.Dn));
        if (i < VMAMBA_STAGES - 1)
            FITS(f, VC_MAP0, (size_t)f.B * hs[i + 1] * ws[i + 1] * cfg->dims[i + 1]);
        for (int j = 0; j < s.depth; j++) T(block_forward(f, s, s.blocks[j], x, y, hs[i], ws[i]));
        char name[32];
        snprintf(name, sizeof name, "stage%d_blocks", i);
        T(emit(f, on_stage, su, name, x, hs[i], ws[i], s.C));
        if (i < VMAMBA_STAGES - 1) {
            T(mark(f, VCP_DOWN));
            T(downsample_forward(f, s, cfg->dims[i + 1], f.l.band[i + 1], x, y, hs[i], ws[i]));
            float *t = x;
            x = y, y = t;
            snprintf(name, sizeof name, "stage%d_downsampled", i);
            T(emit(f, on_stage, su, name, x, hs[i + 1], ws[i + 1], cfg->dims[i + 1]));
        }
    }
    T(mark(f, VCP_HEAD));
    if (features)
        CUDA_TRY("model output",
                 cudaMemcpyAsync(features, x,
                                 (size_t)f.B * hs[3] * ws[3] * cfg->dims[3] * sizeof(float),
                                 cudaMemcpyDeviceToHost, f.s));
    if (logits) {
        if (cfg->num_classes <= 0)
            return error_set(WV_EINVAL, "cuda forward: this checkpoint has no classifier");
        float *logits_d = f.feat + (size_t)f.B * cfg->dims[3];
        T(classifier_forward(f, x, y, hs[3] * ws[3], logits_d));
        CUDA_TRY("model output",
                 cudaMemcpyAsync(logits, logits_d, (size_t)f.B * cfg->num_classes * sizeof(float),
                                 cudaMemcpyDeviceToHost, f.s));
    }
    T(mark(f, -1));
    CUDA_TRY("model", cudaStreamSynchronize(f.s));
    return m->opt.profile ? profile_collect(m) : WV_OK;
}

static enum wv_status forward_any(struct vmamba_cuda *m, int B, int H, int W, const float *dev_in,
                                  vmamba_read_rows_fn read, void *read_user,
                                  vmamba_stage_fn on_stage, void *stage_user, float *logits,
                                  float *features)
{
    const int v0 = m->cfg.family == VMAMBA_V0;
    if (B < 1 || H < 1 || W < 1 || (v0 && (H < 4 || W < 4)))
        return error_set(WV_EINVAL, "cuda forward: input %d×%d×%d too small%s", B, H, W,
                         v0 ? " (v0 needs at least 4×4)" : "");
    /* outputs are defined even when the forward fails (zeros, never stale memory) */
    if (logits && m->cfg.num_classes > 0)
        memset(logits, 0, (size_t)B * m->cfg.num_classes * sizeof(float));
    if (features) {
        int hs[4], ws[4];
        stage_sizes(v0, H, W, hs, ws);
        memset(features, 0, (size_t)B * hs[3] * ws[3] * m->cfg.dims[3] * sizeof(float));
    }
    CUDA_TRY("model", cudaSetDevice(m->opt.device));
    /* Arena (cuda/arena.c sizes and carves it in one function): try the configured band, halve
     * it on out-of-memory down to VC_BAND_MIN. */
    struct vc_model am = arena_model(m);
    am.device_input = dev_in != NULL;
    size_t bp = m->opt.band_pixels ? m->opt.band_pixels : VC_BAND_DEFAULT;
    struct vc_layout l;
    struct vc_carving c;
    for (;;) {
        vc_plan(&am, B, H, W, bp, &l);
        vc_carve(&l, &c);
        enum wv_status st = cuda_pool_reserve(&m->pool, c.total);
        if (st == WV_OK) {
            if (m->opt.verbose)
                fprintf(stderr, "cuda forward %d×%d×%d: arena %.2f GiB (band %zu pixels, maps 2 × %.2f GiB, "
                        "u %.2f GiB, x_proj %.2f GiB, bands %.2f GiB, im2col %.2f GiB)\n",
                        B, H, W, c.total / 1073741824.0, bp, c.bytes[VC_MAP0] / 1073741824.0,
                        c.bytes[VC_U] / 1073741824.0, c.bytes[VC_XDBL] / 1073741824.0,
                        (c.bytes[VC_BAND_A] + c.bytes[VC_BAND_B] + c.bytes[VC_BAND_C] + c.bytes[VC_BAND_D]) /
                            1073741824.0,
                        c.bytes[VC_COL] / 1073741824.0);
            if (m->opt.verbose) {
                fprintf(stderr, "cuda forward %d×%d×%d: ss2d per stage:", B, H, W);
                for (int i = 0; i < VC_STAGES; i++)
                    if (l.stage_tile[i])
                        fprintf(stderr, " tiled %d² × %d ch%s", l.stage_tile[i], l.stage_tile_group[i],
                                i < VC_STAGES - 1 ? "," : "\n");
                    else
                        fprintf(stderr, " chunked %d%s", l.stage_chunk[i], i < VC_STAGES - 1 ? "," : "\n");
            }
            break;
        }
        if (st != WV_ENOMEM || bp / 2 < VC_BAND_MIN) {
            error_prefix("cuda forward %d×%d×%d (%s, band %zu pixels; maps alone need %.2f GiB)",
                         B, H, W, wv_dtype_name(m->opt.dtype), bp,
                         (2.0 * c.bytes[VC_MAP0] + c.bytes[VC_U]) / 1073741824.0);
            return st;
        }
        error_clear();
        bp /= 2;
    }
    if (m->pool.cap < c.total) /* cannot happen: reserve gives at least c.total */
        return error_set(WV_ECUDA, "cuda forward: arena sizing error (%zu of %zu bytes)", c.total,
                         m->pool.cap);
    m->pool.used = c.total;
    gfwd f = {};
    f.m = m;
    f.s = m->stream;
    f.dt = m->opt.dtype;
    f.tf32 = m->opt.tf32;
    f.B = B;
    f.l = l;
    f.bp = l.band[0];
    f.dev_in = dev_in;
    void *ptr[VC_NBUF];
    for (int b = 0; b < VC_NBUF; b++) ptr[b] = c.bytes[b] ? (void *)(m->pool.base + c.off[b]) : NULL;
    f.map[0] = (float *)ptr[VC_MAP0];
    f.map[1] = (float *)ptr[VC_MAP1];
    f.u = ptr[VC_U];
    f.xdbl = ptr[VC_XDBL];
    f.band_a = ptr[VC_BAND_A];
    f.band_b = (float *)ptr[VC_BAND_B];
    f.band_c = (float *)ptr[VC_BAND_C];
    f.band_d = ptr[VC_BAND_D];
    f.col = ptr[VC_COL];
    f.in = (float *)ptr[VC_IN];
    f.mid = (float *)ptr[VC_MID];
    f.ws = ptr[VC_WS];
    f.feat = (float *)ptr[VC_FEAT];
    m->prof_n = 0;
    if (!dev_in && !read) return error_set(WV_EINVAL, "cuda forward: no input");
    enum wv_status st = forward(f, H, W, read, read_user, on_stage, stage_user, logits, features);
    if (st) {
        /* leave the stream idle before returning, so the caller may free inputs */
        cudaStreamSynchronize(m->stream);
        m->prof_n = 0;
        error_prefix("cuda forward %d×%d×%d", B, H, W);
    }
    return st;
}

extern "C" enum wv_status vmamba_cuda_forward(struct vmamba_cuda *m, int B, int H, int W,
                                              vmamba_read_rows_fn read, void *read_user,
                                              vmamba_stage_fn on_stage, void *stage_user,
                                              float *logits, float *features)
{
    return forward_any(m, B, H, W, NULL, read, read_user, on_stage, stage_user, logits, features);
}

extern "C" enum wv_status vmamba_cuda_forward_device(struct vmamba_cuda *m, const float *d_input,
                                                     int B, int H, int W, float *logits,
                                                     float *features)
{
    if (!d_input) return error_set(WV_EINVAL, "cuda forward: no input");
    return forward_any(m, B, H, W, d_input, NULL, NULL, NULL, NULL, logits, features);
}

extern "C" const char *vmamba_cuda_section_name(int s)
{
    static const char *names[VCP_N] = {"stem norms+input", "stem convs",  "ln+in_proj",
                                       "dwconv+silu",      "x_proj",      "ss2d pass 1",
                                       "ss2d carry",       "ss2d rows",   "ss2d columns",
                                       "out_norm+out_proj", "mlp",        "downsample",
                                       "head"};
    return s >= 0 && s < VCP_N ? names[s] : "?";
}

extern "C" void vmamba_cuda_profile(const struct vmamba_cuda *m, double ms[VCP_N])
{
    for (int i = 0; i < VCP_N; i++) ms[i] = m->prof_ms[i];
}

extern "C" void vmamba_cuda_profile_reset(struct vmamba_cuda *m)
{
    for (int i = 0; i < VCP_N; i++) m->prof_ms[i] = 0.0;
}

extern "C" void vmamba_cuda_set_profile(struct vmamba_cuda *m, int on) { m->opt.profile = on; }

extern "C" size_t vmamba_cuda_weight_bytes(const struct vmamba_cuda *m) { return m->weight_bytes; }
extern "C" size_t vmamba_cuda_arena_reserved(const struct vmamba_cuda *m) { return m->pool.cap; }

/* N(0,1) from a counter hash (splitmix64 → two uniforms → Box–Muller). */
__global__ void fill_normal_kernel(float *d, size_t n, unsigned long long seed)
{
    GRID_STRIDE_LOOP(i, n)
    {
        unsigned long long z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        float u1 = ((z >> 40) + 1) * (1.0f / 16777217.0f), u2 = ((z >> 16) & 0xffffff) * (1.0f / 16777216.0f);
        d[i] = sqrtf(-2.0f * logf(u1)) * cospif(2.0f * u2);
    }
}

extern "C" enum wv_status vmamba_cuda_fill_normal(float *d, size_t n, unsigned long long seed)
{
    if (!n) return WV_OK;
    fill_normal_kernel<<<cuda_blocks(n, 256), 256>>>(d, n, seed);
    CUDA_LAUNCH_TRY("fill_normal");
    CUDA_TRY("fill_normal", cudaDeviceSynchronize());
    return WV_OK;
}

struct nchw_src {
    const float *x;
    int Cin, H, W;
};

static enum wv_status read_nchw(void *user, int b, int row0, int rows, float *dst)
{
    const struct nchw_src *s = (const struct nchw_src *)user;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < s->Cin; c++) {
            const float *src = s->x + (((size_t)b * s->Cin + c) * s->H + row0 + r) * s->W;
            float *d = dst + (size_t)r * s->W * s->Cin + c;
            for (int w = 0; w < s->W; w++) d[(size_t)w * s->Cin] = src[w];
        }
    return WV_OK;
}

extern "C" enum wv_status vmamba_cuda_forward_nchw(struct vmamba_cuda *m, const float *x, int B,
                                                   int H, int W, vmamba_stage_fn on_stage,
                                                   void *stage_user, float *logits)
{
    struct nchw_src s = {x, m->in_chans, H, W};
    return vmamba_cuda_forward(m, B, H, W, read_nchw, &s, on_stage, stage_user, logits, NULL);
}
