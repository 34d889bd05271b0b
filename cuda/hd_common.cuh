/*
 * hd_common.cuh — small __host__ __device__ helpers for kernels whose per-thread code also runs on
 * the CPU in tests (cuda/ss2d_tile.cuh, cuda/dwconv_vec.cuh): on the GPU the fast intrinsics
 * (__expf, __logf, __ldg, bit casts), on the host their libm / memcpy equivalents.
 */
#ifndef WV_CUDA_HD_COMMON_CUH
#define WV_CUDA_HD_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define TL_HD __host__ __device__ __forceinline__
/* "#pragma unroll" for the device pass only (the host compiler warns on it) */
#ifdef __CUDA_ARCH__
#define TL_UNROLL _Pragma("unroll")
#else
#define TL_UNROLL
#endif

TL_HD float tl_bits_float(uint32_t b)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(b);
#else
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
#endif
}
/* Hardware exp/log on the GPU (the fast path's softplus and decay, ss2d.cu and ss2d_tile.cuh). */
TL_HD float tl_exp(float x)
{
#ifdef __CUDA_ARCH__
    return __expf(x);
#else
    return expf(x);
#endif
}
TL_HD float tl_softplus(float x)
{
    if (x > 20.0f) return x;
#ifdef __CUDA_ARCH__
    float e = __expf(x);
    return x < -12.0f ? e : __logf(1.0f + e);
#else
    float e = expf(x);
    return x < -12.0f ? e : logf(1.0f + e);
#endif
}
TL_HD uint4 tl_ldg(const uint4 *p)
{
#ifdef __CUDA_ARCH__
    return __ldg(p);
#else
    return *p;
#endif
}

/* 16-bit storage values from their bits. */
template <typename TU> struct tl_cvt;
template <> struct tl_cvt<__nv_bfloat16> {
    static TL_HD float f(uint32_t bits16) { return tl_bits_float(bits16 << 16); }
};
template <> struct tl_cvt<__half> {
    static TL_HD float f(uint32_t bits16)
    {
        __half_raw r;
        r.x = (unsigned short)bits16;
        return __half2float(__half(r));
    }
};
template <typename TU> TL_HD float tl_load1(const TU *p)
{
    uint16_t b;
    memcpy(&b, p, sizeof b);
    return tl_cvt<TU>::f(b);
}
/* 8 16-bit values (one 16-byte load) to fp32 */
template <typename TU> TL_HD void tl_unpack(uint4 v, float *o)
{
    const uint32_t w[4] = {v.x, v.y, v.z, v.w};
    TL_UNROLL
    for (int i = 0; i < 4; i++) {
        o[2 * i] = tl_cvt<TU>::f(w[i] & 0xffffu);
        o[2 * i + 1] = tl_cvt<TU>::f(w[i] >> 16);
    }
}

TL_HD float4 tl_ldg4(const float *p)
{
#ifdef __CUDA_ARCH__
    return __ldg(reinterpret_cast<const float4 *>(p));
#else
    return *reinterpret_cast<const float4 *>(p);
#endif
}
/* 16-bit storage values to their bits (round to nearest even) */
template <typename TU> struct tl_bits;
template <> struct tl_bits<__nv_bfloat16> {
    static TL_HD uint32_t of(float v)
    {
        __nv_bfloat16_raw r = __float2bfloat16_rn(v);
        return r.x;
    }
};
template <> struct tl_bits<__half> {
    static TL_HD uint32_t of(float v)
    {
        __half_raw r = __float2half_rn(v);
        return r.x;
    }
};

#endif
