/*
 * test_kernels_host.cu — CUDA kernels whose thread code is __host__ __device__, run on the CPU
 * against the CPU ops: no device needed, so this runs on every build with CUDA (label gpu, never
 * skips). (1) The vectorised depthwise conv + SiLU (cuda/dwconv_vec.cuh), every thread index, vs
 * dwconv3_cpu. (2) The fused first stem conv + LayerNorm + GELU (cuda/stem_fused.cuh) vs
 * conv3s2_cpu and a float64 LayerNorm + GELU, whole images and a row band. (3) The two-level
 * chunk carry (cuda/carry_hd.cuh) against the one-level carry, several group sizes. (4) The tiled
 * SS2D (cuda/ss2d_tile.cuh) run on the CPU, block by block and
 * phase by phase, against the CPU reference ss2d_scan_merge_cpu. No device needed: the kernel's
 * phases are __host__ __device__ functions and this file's executor runs each phase for every
 * thread of a block in turn (the GPU synchronises the block between phases; with no other
 * communication between threads than shared memory across phases, running them one after another
 * is one of the schedules the GPU may take). So this checks what is easy to get wrong and the
 * GPU cannot show more clearly: the tile geometry (ragged edges, H ≠ W), the chunk numbering of
 * the four directions, the in-block carry of the fused mode, channel groups, the merge order and
 * the packed x_proj rows. The launch itself (shared memory size, grid) is checked on a GPU by
 * tests/gpu/run.sh (devin-tile).
 *
 * Inputs are bf16 values (u, x_proj rows); the reference gets the same values as fp32 in the
 * checkpoint's row order (dt_low, B, C). Differences come from the carry at segment boundaries
 * (exp of a sum against a product of exps) and the order of the dt_proj sum: ~1e-6 relative.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vector>

#include "cuda/carry_hd.cuh"
#include "cuda/dwconv_vec.cuh"
#include "cuda/ss2d_tile.cuh"
#include "cuda/stem_fused.cuh"

extern "C" {
#include "cuda/arena.h"
#include "src/backend.h"
#include "src/ss2d.h"
#include "testutil.h"
}

typedef __nv_bfloat16 bf16;

/* The host executor: each phase for every thread in turn. (__host__ __device__ only so that the
 * kernel's __host__ __device__ phase lambdas may call it; it runs on the host.) */
struct tl_host_exec {
    int n;
    ss2d_tile_thread *ts; /* per-thread state, n entries */
    __host__ __device__ ss2d_tile_thread &st(int t) { return ts[t]; }
    template <class F> __host__ __device__ void phase(F &&f)
    {
        for (int t = 0; t < n; t++) f(t);
    }
};

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static float frand(void) /* uniform in [-1, 1) */
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 8388608.0)) - 1.0f;
}
static bf16 tobf(float v) { return __float2bfloat16(v); }
static float frombf(bf16 v) { return __bfloat162float(v); }

template <int T, int RMAX, int MODE>
static void run_blocks(const ss2d_tile_args<bf16> &a)
{
    std::vector<uint4> smem((tl_smem<T, bf16>::bytes(MODE) + 15) / 16);
    for (int b = 0; b < a.B; b++)
        for (int cb = 0; cb < a.Dg / SS2D_TILE_CH; cb++)
            for (int tile = 0; tile < a.ntx * a.nty; tile++) {
                /* poison shared memory: a phase reading what no earlier phase wrote shows up */
                memset(smem.data(), 0x7f, smem.size() * 16);
                std::vector<ss2d_tile_thread> ts(T * SS2D_TILE_CH);
                tl_host_exec ex = {T * SS2D_TILE_CH, ts.data()};
                ss2d_tile_block<T, RMAX, MODE>(ex, a, tile, cb, b,
                                               reinterpret_cast<unsigned char *>(smem.data()));
            }
}

/* The carry of ss2d.cu (scan_carry_kernel1 / ss2d_carry): per lane, in chunk order, in fp64. */
static void host_carry(float *ws, size_t n_seq, size_t n_chunks)
{
    for (size_t j = 0; j < n_seq; j++) {
        double h = 0.0;
        for (size_t c = 0; c < n_chunks; c++) {
            float *p = ws + (c * n_seq + j) * 2;
            double a = exp((double)p[0]), hl = (double)p[1];
            p[1] = (float)h;
            h = a * h + hl;
        }
    }
}

/* The two-level carry (ss2d_carry's three launches, every item in turn) against host_carry, for
 * the group sizes of both plans and some others. */
static void check_carry(size_t n_seq, size_t n_chunks)
{
    std::vector<float> ws(n_chunks * n_seq * 2);
    for (size_t q = 0; q < n_chunks * n_seq; q++) {
        ws[2 * q] = -2.0f * (frand() + 1.0f) * (q % 7 == 0 ? 0.001f : 1.0f); /* slow and fast decay */
        ws[2 * q + 1] = frand() * 3.0f;
    }
    std::vector<float> ref(ws);
    host_carry(ref.data(), n_seq, n_chunks);
    const size_t Gs[] = {2, 7, 64, vc_carry_group(n_chunks), vc_tile_carry_group(n_chunks), n_chunks};
    for (size_t G : Gs) {
        if (G < 2) continue;
        std::vector<float> w(ws);
        const size_t n_groups = (n_chunks + G - 1) / G;
        std::vector<double> gs(n_groups * n_seq * 2);
        for (size_t i = 0; i < n_seq * n_groups; i++) carry_group_item(i, w.data(), gs.data(), n_seq, n_chunks, G);
        for (size_t j = 0; j < n_seq; j++) carry_across_item(j, gs.data(), n_seq, n_groups);
        for (size_t i = 0; i < n_seq * n_groups; i++) carry_within_item(i, w.data(), gs.data(), n_seq, n_chunks, G);
        double err = 0.0, scale = 0.0;
        for (size_t q = 0; q < w.size(); q++) {
            err = fmax(err, fabs((double)w[q] - ref[q]));
            scale = fmax(scale, fabs((double)ref[q]));
        }
        printf("carry %zu lanes × %zu chunks, groups of %zu: max |diff| %.3g of %.3g\n", n_seq, n_chunks,
               G, err, scale);
        CHECK_MSG(err <= 1e-5 * scale, "groups of %zu: %g", G, err);
    }
}

/* What ss2d_scan_merge_tile_cuda does, with the host executor. */
template <int RMAX>
static void tile_forward(ss2d_tile_args<bf16> a, int T, int group, std::vector<float> &ws)
{
    a.ntx = (a.W + T - 1) / T, a.nty = (a.H + T - 1) / T;
    ws.assign(vc_ss2d_tile_ws_bytes(a.B, a.H, a.W, group, T) / sizeof(float) + 4, NAN);
    a.ws = ws.data();
    for (int d = 0; d < a.Dn; d += group) {
        a.d_base = d, a.Dg = group;
        if (a.ntx * a.nty == 1) {
            if (T == 8) run_blocks<8, RMAX, 0>(a);
            else if (T == 16) run_blocks<16, RMAX, 0>(a);
            else run_blocks<32, RMAX, 0>(a);
            continue;
        }
        const size_t n_chunks = tl_n_chunks(a.H, a.W, a.ntx, a.nty);
        const size_t n_seq = (size_t)a.B * SS2D_K * group;
        if ((size_t)a.H * a.ntx != (size_t)a.W * a.nty)
            memset(a.ws, 0, n_chunks * n_seq * 2 * sizeof(float));
        run_blocks<VC_TILE_MAX, RMAX, 1>(a);
        host_carry(a.ws, n_seq, n_chunks);
        run_blocks<VC_TILE_MAX, RMAX, 2>(a);
    }
}

/* One case: B images of H×W, Dn channels, dt_rank R, tile T, `group` channels per launch. */
static void check_case(int B, int H, int W, int Dn, int R, int T, int group)
{
    const int P = R + 2, Pp = (R + 2 + 7) / 8 * 8;
    const size_t L = (size_t)H * W;
    std::vector<bf16> u(B * L * Dn), xp(B * L * SS2D_K * Pp, tobf(0.0f));
    std::vector<float> uf(u.size()), xf(B * L * SS2D_K * P);
    for (size_t i = 0; i < u.size(); i++) u[i] = tobf(frand() * 2.0f), uf[i] = frombf(u[i]);
    for (size_t pk = 0; pk < B * L * SS2D_K; pk++) {
        /* packed (B, C, dt_low) for the tile path; (dt_low, B, C) for the reference */
        float Bv = frand(), Cv = frand();
        xp[pk * Pp] = tobf(Bv), xp[pk * Pp + 1] = tobf(Cv);
        xf[pk * P + R] = frombf(xp[pk * Pp]), xf[pk * P + R + 1] = frombf(xp[pk * Pp + 1]);
        for (int r = 0; r < R; r++) {
            xp[pk * Pp + 2 + r] = tobf(frand());
            xf[pk * P + r] = frombf(xp[pk * Pp + 2 + r]);
        }
    }
    std::vector<float> dt_w((size_t)SS2D_K * Dn * R), dt_b((size_t)SS2D_K * Dn),
        A((size_t)SS2D_K * Dn), Ds((size_t)SS2D_K * Dn);
    for (auto &v : dt_w) v = frand() * 0.5f / sqrtf((float)R);
    for (size_t i = 0; i < dt_b.size(); i++) {
        dt_b[i] = -3.0f + 2.0f * frand(); /* softplus ≈ 0.007 .. 0.3: slow and fast channels */
        A[i] = -expf(1.0f + frand());     /* −e^0 .. −e^2 */
        Ds[i] = 1.0f + 0.1f * frand();
    }
    std::vector<float> ref(B * L * Dn), got(B * L * Dn, NAN);
    for (int b = 0; b < B; b++)
        ss2d_scan_merge_cpu(uf.data() + b * L * Dn, xf.data() + b * L * SS2D_K * P, dt_w.data(),
                            dt_b.data(), A.data(), Ds.data(), ref.data() + b * L * Dn, H, W, Dn,
                            R, 1);
    ss2d_tile_args<bf16> a = {};
    a.u = u.data(), a.xdbl = xp.data();
    a.dt_w = dt_w.data(), a.dt_b = dt_b.data(), a.A = A.data(), a.Ds = Ds.data();
    a.y = got.data();
    a.B = B, a.H = H, a.W = W, a.Dn = Dn, a.R = R, a.Pp = Pp;
    std::vector<float> ws;
    if (R <= 8) tile_forward<8>(a, T, group, ws);
    else if (R <= 16) tile_forward<16>(a, T, group, ws);
    else if (R <= 32) tile_forward<32>(a, T, group, ws);
    else tile_forward<64>(a, T, group, ws);
    double scale = 0.0, err = 0.0;
    size_t worst = 0, bad = 0;
    for (size_t i = 0; i < ref.size(); i++) scale = fmax(scale, fabs(ref[i]));
    for (size_t i = 0; i < ref.size(); i++) {
        double e = fabs((double)got[i] - ref[i]);
        if (!(e <= 1e-4 * scale)) bad++;
        if (!(e <= err)) err = e, worst = i;
    }
    printf("B %d %3d×%-3d Dn %3d R %2d tile %2d group %3d: max |diff| %.3g of scale %.3g%s\n", B, H,
           W, Dn, R, T, group, err, scale, bad ? "  FAIL" : "");
    CHECK_MSG(bad == 0, "%zu of %zu values off; worst at %zu: %g vs %g", bad, ref.size(), worst,
              (double)got[worst], (double)ref[worst]);
}

/* The depthwise conv: nimg images of H×W×C, 16-bit in and out, bias or none. */
template <typename T>
static void check_dwconv(int nimg, int H, int W, int C, int with_bias, const char *dtname)
{
    const size_t npix = (size_t)nimg * H * W, n = npix * C;
    std::vector<T> x(n), y(n);
    std::vector<float> xf(n), ref(n), w((size_t)C * 9), wt((size_t)9 * C), bias(C);
    for (size_t i = 0; i < n; i++) {
        uint32_t b = tl_bits<T>::of(frand() * 3.0f);
        uint16_t b16 = (uint16_t)b;
        memcpy((void *)&x[i], &b16, 2);
        xf[i] = tl_cvt<T>::f(b);
    }
    for (int c = 0; c < C; c++) {
        bias[c] = 0.5f * frand();
        for (int t = 0; t < 9; t++) w[(size_t)c * 9 + t] = wt[(size_t)t * C + c] = frand() * 0.6f;
    }
    for (int i = 0; i < nimg; i++)
        dwconv3_cpu(xf.data() + (size_t)i * H * W * C, 0, H, w.data(), with_bias ? bias.data() : NULL,
                    ref.data() + (size_t)i * H * W * C, 0, H, H, W, C, 1);
    const unsigned threads = (unsigned)(npix * (C / 8));
    for (unsigned t = 0; t < threads + 5; t++) /* + 5: indices past the end must do nothing */
        dwconv_vec_thread<T>(t, x.data(), wt.data(), with_bias ? bias.data() : NULL, y.data(),
                             (unsigned)npix, H, W, C);
    size_t bad = 0, worst = 0;
    double err = 0.0;
    for (size_t i = 0; i < n; i++) {
        uint16_t b16;
        memcpy(&b16, &y[i], 2);
        const double g = tl_cvt<T>::f(b16), e = fabs(g - ref[i]);
        /* one rounding to 16 bits: 2^-9 relative for bf16, 2^-12 for f16 (+ exp's last bits) */
        if (!(e <= 4e-3 * fabs(ref[i]) + 1e-6)) bad++;
        if (!(e <= err)) err = e, worst = i;
    }
    printf("dwconv %s %d×%d×%d×%d%s: max |diff| %.3g%s\n", dtname, nimg, H, W, C,
           with_bias ? " +bias" : "", err, bad ? "  FAIL" : "");
    CHECK_MSG(bad == 0, "%zu of %zu values off; worst at %zu: %g", bad, n, worst, ref[worst]);
}

/* The fused stem conv 1: output rows [m0, m1) of nimg images of H×W×Cin → Cm channels. The
 * kernel gets the input from row i0 = max(0, 2·m0 - 1), as the forward passes it. */
static void check_stem(int nimg, int H, int W, int Cin, int Cm, int m0, int m1)
{
    const int H1 = (H + 1) / 2, W1 = (W + 1) / 2;
    std::vector<float> x((size_t)nimg * H * W * Cin), w((size_t)Cm * Cin * 9), wt(w.size()),
        bias(Cm), gamma(Cm), beta(Cm), conv((size_t)H1 * W1 * Cm);
    for (auto &v : x) v = frand() * 2.0f;
    for (auto &v : w) v = frand() * 0.4f;
    for (int c = 0; c < Cm; c++) bias[c] = 0.3f * frand(), gamma[c] = 1.0f + 0.3f * frand(), beta[c] = 0.2f * frand();
    for (int c = 0; c < Cm; c++) /* (Cm, Cin, 3, 3) → (9·Cin, Cm) as the upload's K_STEMT */
        for (int ci = 0; ci < Cin; ci++)
            for (int tap = 0; tap < 9; tap++)
                wt[((size_t)tap * Cin + ci) * Cm + c] = w[((size_t)c * Cin + ci) * 9 + tap];
    const int i0 = 2 * m0 - 1 < 0 ? 0 : 2 * m0 - 1;
    const unsigned npix = (unsigned)(nimg * (m1 - m0) * W1);
    std::vector<float> mid((size_t)npix * Cm, NAN);
    for (unsigned t = 0; t < npix + 3; t++)
        stem_conv1_ln_gelu_thread(t, x.data() + (size_t)i0 * W * Cin, i0, (size_t)H * W * Cin, wt.data(),
                                  bias.data(), gamma.data(), beta.data(), mid.data(), m0, m1 - m0, npix,
                                  H, W, Cin, Cm);
    double err = 0.0;
    size_t bad = 0;
    for (int b = 0; b < nimg; b++) {
        conv3s2_cpu(x.data() + (size_t)b * H * W * Cin, 0, H, w.data(), bias.data(), conv.data(), 0, H1, H,
                    W, Cin, Cm);
        for (int r = m0; r < m1; r++)
            for (int ox = 0; ox < W1; ox++) {
                const float *cv = conv.data() + ((size_t)r * W1 + ox) * Cm;
                double mean = 0.0, var = 0.0;
                for (int c = 0; c < Cm; c++) mean += cv[c];
                mean /= Cm;
                for (int c = 0; c < Cm; c++) var += (cv[c] - mean) * (cv[c] - mean);
                const double rstd = 1.0 / sqrt(var / Cm + 1e-5);
                const float *got = mid.data() + (((size_t)b * (m1 - m0) + r - m0) * W1 + ox) * Cm;
                for (int c = 0; c < Cm; c++) {
                    const double t = (cv[c] - mean) * rstd * gamma[c] + beta[c];
                    const double ref = 0.5 * t * (1.0 + erf(t / sqrt(2.0)));
                    const double e = fabs(got[c] - ref);
                    if (!(e <= 1e-5 + 1e-5 * fabs(ref))) bad++;
                    if (!(e <= err)) err = e;
                }
            }
    }
    printf("stem conv 1 %d×%d×%d×%d → %d, rows %d..%d: max |diff| %.3g%s\n", nimg, H, W, Cin, Cm, m0, m1,
           err, bad ? "  FAIL" : "");
    CHECK_MSG(bad == 0, "%zu values off", bad);
}

int main(void)
{
    check_stem(2, 9, 13, 3, 48, 0, 5);  /* whole images, odd sizes */
    check_stem(1, 40, 22, 3, 64, 7, 13); /* a row band (input from row 13) */
    check_stem(3, 2, 1, 3, 8, 0, 1);     /* 1 output row and column */
    check_stem(1, 17, 17, 5, 12, 2, 9);
    check_carry(3, 5000);
    check_carry(5, 1024);
    check_carry(2, 197);
    CHECK(vc_tile_carry_group(1023) == 1 && vc_tile_carry_group(1024) == 64 &&
          vc_tile_carry_group(197500) == 445 && vc_tile_carry_group(4097) == 65);
    check_dwconv<__nv_bfloat16>(3, 5, 7, 24, 1, "bf16");
    check_dwconv<__nv_bfloat16>(1, 1, 1, 8, 1, "bf16");
    check_dwconv<__nv_bfloat16>(2, 1, 9, 16, 0, "bf16");
    check_dwconv<__nv_bfloat16>(1, 11, 1, 96, 1, "bf16");
    check_dwconv<__half>(2, 6, 4, 32, 1, "f16");

    /* fused: the map is one tile (8, 16 or 32 a side), the carry runs in the block */
    check_case(2, 7, 7, 32, 6, 8, 32);
    check_case(1, 14, 11, 48, 12, 16, 16);
    check_case(2, 28, 28, 32, 24, 32, 32);
    check_case(1, 1, 1, 16, 3, 8, 16);
    check_case(1, 32, 5, 16, 40, 32, 16);
    /* several tiles: pass 1, the carry over segments, pass 2; ragged edges, H ≠ W (the shorter
     * directions' trailing chunk slots), one row, one column, channel groups */
    check_case(1, 70, 45, 32, 6, 32, 16);
    check_case(3, 56, 56, 48, 40, 32, 48);
    check_case(1, 1, 100, 16, 6, 32, 16);
    check_case(1, 100, 1, 16, 6, 32, 16);
    check_case(1, 130, 97, 16, 14, 32, 16);
    check_case(2, 33, 64, 64, 30, 32, 32);

    /* the plan's choices (cuda/arena.c) */
    struct vc_model m = {};
    m.d_state = 1, m.dtype = WV_DTYPE_BF16, m.scan_tile = 1;
    for (int i = 0; i < VC_STAGES; i++) m.d_inner[i] = 96 << i, m.dt_rank[i] = (96 << i) / 16;
    CHECK(vc_scan_tile(&m, 0, 56, 56) == 32 && vc_scan_tile(&m, 1, 28, 28) == 32);
    CHECK(vc_scan_tile(&m, 2, 14, 14) == 16 && vc_scan_tile(&m, 3, 7, 7) == 8);
    CHECK(vc_scan_tile(&m, 0, 2500, 2500) == 32);
    m.scan_tile = 0;
    CHECK(vc_scan_tile(&m, 0, 56, 56) == 0);
    m.scan_tile = 1, m.dtype = WV_DTYPE_F16;
    CHECK(vc_scan_tile(&m, 0, 56, 56) == 0);
    m.dtype = WV_DTYPE_BF16, m.d_inner[0] = 24;
    CHECK(vc_scan_tile(&m, 0, 56, 56) == 0);
    /* 10,000² VMamba-T stage 0 (2,500², Dn 96): 197,500 chunks, 6.3 MB a channel → groups of 16 */
    const int g0 = vc_scan_tile_group(1, 2500, 2500, 96, 32);
    const size_t w0 = vc_ss2d_tile_ws_bytes(1, 2500, 2500, g0, 32);
    printf("10,000² stage 0: %d channels per launch, workspace %.1f MB\n", g0, w0 / 1e6);
    CHECK(g0 == 16 && w0 <= VC_TILE_WS_CAP && w0 > 100e6);
    /* 224² × 256 stage 0 (56²): everything in one launch */
    CHECK(vc_scan_tile_group(256, 56, 56, 96, 32) == 96);
    CHECK(vc_ss2d_tile_ws_bytes(256, 28, 28, 192, 32) == 0); /* fused */
    for (int Dn = 16; Dn <= 1536; Dn += 16) {
        int g = vc_scan_tile_group(4, 1000, 700, Dn, 32);
        CHECK(g >= 16 && g % 16 == 0 && Dn % g == 0 &&
              (g == 16 || vc_ss2d_tile_ws_bytes(4, 1000, 700, g, 32) <= VC_TILE_WS_CAP));
    }
    return tu_finish("test_kernels_host");
}
