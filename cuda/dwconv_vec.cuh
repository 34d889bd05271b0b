/*
 * dwconv_vec.cuh — depthwise 3×3 (padding 1) + bias + SiLU over whole NHWC maps stored in a
 * 16-bit dtype, one thread per (pixel, 8 channels): the in_proj → u step of every v2 block on the
 * fast path (switch WV_DWCONV_VEC, cuda/knobs.h, until it has been timed on a GPU; ops.cu
 * dispatches).
 *
 * Why: the warp-per-pixel kernel (ops.cu, dwconv3_silu_map_kernel) issues per output value nine
 * 2-byte loads of the input, nine 4-byte loads of the weights, the FMAs, an expf and a 2-byte
 * store — ~25 instructions for 4 bytes of traffic; measured 3.6 ms at 224² × 256 on the H200,
 * ~10× its bandwidth floor (404 M pixel·channel·blocks × 4 B = 1.6 GB, 0.38 ms). Here a thread's
 * nine taps are one 16-byte load each (8 channels), the weights and the bias two 16-byte loads
 * per tap (shared by every pixel: L1), the output one 16-byte store: ~3.4 loads per output value
 * instead of ~18. Same taps, same order (bias, then taps 0..8 skipping those outside the image)
 * and same fp32 accumulation as the warp kernel; SiLU with the hardware exp (the output is
 * rounded to 16 bits).
 *
 * The thread body is __host__ __device__: tests/gpu/test_kernels_host.cu runs it for every thread on
 * the CPU against the CPU op.
 */
#ifndef WV_CUDA_DWCONV_VEC_CUH
#define WV_CUDA_DWCONV_VEC_CUH

#include "hd_common.cuh"

/* Thread `idx` of npix·(C/8): pixel idx / (C/8) of the maps (nimg images of H×W, pixels in
 * image-major row-major order), channels 8·(idx mod C/8) .. +8. x and y are (npix, C); w is the
 * transposed weight (9, C) fp32; bias (C) or NULL. The caller guarantees C % 8 == 0, 16-byte
 * aligned x, y, w, bias, and npix·(C/8) < 2^31 (32-bit index arithmetic). */
template <typename T>
TL_HD void dwconv_vec_thread(unsigned idx, const T *x, const float *w, const float *bias, T *y,
                             unsigned npix, int H, int W, int C)
{
    const unsigned G = (unsigned)C / 8, pix = idx / G;
    if (pix >= npix) return;
    const int c0 = (int)(idx - pix * G) * 8;
    const unsigned row = pix / (unsigned)W; /* image·H + oy */
    const int ox = (int)(pix - row * (unsigned)W), oy = (int)(row % (unsigned)H);
    const T *img = x + (size_t)(row - (unsigned)oy) * W * C;
    float acc[8];
    if (bias) {
        const float4 b0 = tl_ldg4(bias + c0), b1 = tl_ldg4(bias + c0 + 4);
        acc[0] = b0.x, acc[1] = b0.y, acc[2] = b0.z, acc[3] = b0.w;
        acc[4] = b1.x, acc[5] = b1.y, acc[6] = b1.z, acc[7] = b1.w;
    } else {
        TL_UNROLL
        for (int j = 0; j < 8; j++) acc[j] = 0.0f;
    }
    TL_UNROLL
    for (int tap = 0; tap < 9; tap++) {
        const int iy = oy + tap / 3 - 1, ix = ox + tap % 3 - 1;
        if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
        const uint4 v = tl_ldg(reinterpret_cast<const uint4 *>(img + ((size_t)iy * W + ix) * C + c0));
        float xv[8];
        tl_unpack<T>(v, xv);
        const float4 w0 = tl_ldg4(w + (size_t)tap * C + c0), w1 = tl_ldg4(w + (size_t)tap * C + c0 + 4);
        const float wv[8] = {w0.x, w0.y, w0.z, w0.w, w1.x, w1.y, w1.z, w1.w};
        TL_UNROLL
        for (int j = 0; j < 8; j++) acc[j] = fmaf(xv[j], wv[j], acc[j]);
    }
    uint32_t o[4];
    TL_UNROLL
    for (int j = 0; j < 4; j++) {
        const float a = acc[2 * j], b = acc[2 * j + 1];
        o[j] = tl_bits<T>::of(a / (1.0f + tl_exp(-a))) | tl_bits<T>::of(b / (1.0f + tl_exp(-b))) << 16;
    }
    *reinterpret_cast<uint4 *>(y + (size_t)pix * C + c0) = make_uint4(o[0], o[1], o[2], o[3]);
}

#endif
