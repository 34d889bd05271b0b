/*
 * stem_fused.cuh — the v2 stem's first conv (3×3, stride 2, padding 1, Cin → Cm, + bias), its
 * LayerNorm and GELU in one pass: one thread per output pixel, all Cm channels in registers
 * (switch WV_STEM_FUSED, cuda/knobs.h, until it has been timed on a GPU; cuda/vmamba.cu
 * dispatches).
 *
 * Why: the stem took 3.9 ms of a 46 ms forward at 224² × 256 on the H200 (~3× its traffic floor).
 * Its first conv ran as im2col (a 32-wide bf16 column row per pixel: 205 MB written and read),
 * a GEMM with 48 outputs and K = 32 (617 MB of fp32 written) and a LayerNorm + GELU pass (617 MB
 * read and written again): ~2 GB for a conv of 27 MACs per output. Here the input (154 MB) is
 * read once and the normalised, activated map written once (617 MB): the work is 1,296 FMAs per
 * pixel (4.2 G at 224² × 256: ~0.13 ms of fp32 issue), the weights ((9·Cin, Cm) fp32, the same
 * for every thread: broadcast float4 loads).
 * Numerics: fp32 throughout (the GEMM path rounded the input and the weights to bf16 in the bf16
 * forward); LayerNorm two-pass with eps 1e-5 and the erf GELU, as layernorm_gelu_kernel.
 * The thread body is __host__ __device__: tests/gpu/test_kernels_host.cu runs it on the CPU.
 */
#ifndef WV_CUDA_STEM_FUSED_CUH
#define WV_CUDA_STEM_FUSED_CUH

#include "hd_common.cuh"

/* Largest stem_mid this kernel takes (VMamba-T/S 48, -B 64). */
#define STEM_FUSED_CMAX 64

/* Thread `idx` of npix = nimg · m_rows · W1 output pixels: output rows [m_row0, m_row0 + m_rows)
 * of nimg images (W1 = ⌈W/2⌉). x: rows from x_row0 of image 0, images x_img floats apart,
 * (·, W, Cin) fp32. wt: (9·Cin, Cm) fp32, row k = (ky·3 + kx)·Cin + ci. mid: (npix, Cm) fp32.
 * Cm ≤ STEM_FUSED_CMAX and a multiple of 4, wt 16-byte aligned. */
TL_HD void stem_conv1_ln_gelu_thread(unsigned idx, const float *x, int x_row0, size_t x_img,
                                     const float *wt, const float *bias, const float *gamma,
                                     const float *beta, float *mid, int m_row0, int m_rows,
                                     unsigned npix, int H, int W, int Cin, int Cm)
{
    if (idx >= npix) return;
    const int W1 = (W + 1) / 2;
    const unsigned t = idx / (unsigned)W1, img = t / (unsigned)m_rows;
    const int ox = (int)(idx - t * (unsigned)W1), oy = m_row0 + (int)(t - img * (unsigned)m_rows);
    const float *xi = x + (size_t)img * x_img;
    float acc[STEM_FUSED_CMAX];
    TL_UNROLL
    for (int c = 0; c < STEM_FUSED_CMAX; c++) acc[c] = c < Cm ? bias[c] : 0.0f;
    for (int tap = 0; tap < 9; tap++) {
        const int iy = 2 * oy + tap / 3 - 1, ix = 2 * ox + tap % 3 - 1;
        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
        const float *xp = xi + ((size_t)(iy - x_row0) * W + ix) * Cin;
        for (int ci = 0; ci < Cin; ci++) {
            const float xv = xp[ci];
            const float *wr = wt + (size_t)(tap * Cin + ci) * Cm;
            TL_UNROLL
            for (int c4 = 0; c4 < STEM_FUSED_CMAX; c4 += 4) {
                if (c4 >= Cm) break;
                const float4 w4 = tl_ldg4(wr + c4);
                acc[c4] = fmaf(xv, w4.x, acc[c4]);
                acc[c4 + 1] = fmaf(xv, w4.y, acc[c4 + 1]);
                acc[c4 + 2] = fmaf(xv, w4.z, acc[c4 + 2]);
                acc[c4 + 3] = fmaf(xv, w4.w, acc[c4 + 3]);
            }
        }
    }
    float s = 0.0f;
    TL_UNROLL
    for (int c = 0; c < STEM_FUSED_CMAX; c++) s += c < Cm ? acc[c] : 0.0f;
    const float mean = s / Cm;
    float v = 0.0f;
    TL_UNROLL
    for (int c = 0; c < STEM_FUSED_CMAX; c++) {
        const float d = acc[c] - mean;
        v += c < Cm ? d * d : 0.0f;
    }
    const float rstd = 1.0f / sqrtf(v / Cm + 1e-5f);
    float *out = mid + (size_t)idx * Cm;
    TL_UNROLL
    for (int c4 = 0; c4 < STEM_FUSED_CMAX; c4 += 4) {
        if (c4 >= Cm) break;
        float o[4];
        TL_UNROLL
        for (int j = 0; j < 4; j++) {
            const float tt = (acc[c4 + j] - mean) * rstd * gamma[c4 + j] + beta[c4 + j];
            o[j] = 0.5f * tt * (1.0f + erff(tt * 0.70710678118654752f));
        }
        *reinterpret_cast<float4 *>(out + c4) = make_float4(o[0], o[1], o[2], o[3]);
    }
}

#endif
