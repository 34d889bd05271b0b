/*
 * ss2d.cu — CUDA twin of ss2d_scan_merge_cpu (src/ss2d.h, VMAMBA_SPEC.md §3 steps 4–9): the
 * 4-direction cross-scan, dt_proj + softplus, selective scan and cross-merge of one image, fused.
 *
 * Design decision (version 1):
 * - No direction copies. Position l of direction k maps to pixel p by index arithmetic
 *   (k=0 p = l; k=2 p = L-1-l; k=1/3 q = l or L-1-l, p = (q mod H)·W + q div H), and each
 *   thread reads u[p, d] and xdbl[p, k, ·] straight from the (H, W, ·) maps. δ is formed on the
 *   fly from dt_low (R values per pixel) and dt_w[k, d, ·] (kept in shared memory).
 * - Parallelism. The natural unit, one thread per (direction, channel) running sequentially
 *   over L, gives only 4·Dn threads (384 for VMamba-T stage 0) — a 10k² stage-0 map has L =
 *   6.25 M, which would leave most of the GPU idle for seconds. So L is cut into chunks of
 *   `chunk` tokens, and the recurrence h_t = a_t·h_{t-1} + b_t (a linear map per step, so chunks
 *   compose: h_end = (Π a)·h_in + h_local) is solved in three launches:
 *     pass 1  ss2d_chunk_kernel1<1>: per (k, d, chunk) scan the chunk from h = 0; store
 *             (Σ δA, h_local) per state: the chunk's decay in log space (a running product of
 *             256 fp32 exps drifted by 1e-5 relative, which a slowly decaying channel carries
 *             over many chunks);
 *     carry   scan_carry_kernel1 (scan.cu): per (k, d, n), a sequential fp64 prefix over chunks,
 *             h_start[c+1] = exp(Σ δA)·h_start[c] + h_local, gives the state entering each chunk;
 *     pass 2  ss2d_chunk_kernel1<2>: re-scan each chunk from its entering state and add
 *             ⟨C, h⟩ + D·u into y at the chunk's pixels.
 *   Work per launch is 4·Dn·n_chunks threads (2.3 M at 10k², T stage 0); the workspace is
 *   2·K·n_chunks·N·Dn floats (75 MB there), never a K×L×Dn copy.
 * - Coalescing. A warp is 32 consecutive channels d of one (b, k, chunk): at every step it reads
 *   32 consecutive values of u and writes 32 of y, and xdbl[p, k, ·] is a broadcast. A block is
 *   4 such warps on 4 chunks (version 2: whole batches in one launch; version 1 looped over
 *   images on the host, 256 launches of a few dozen blocks each for 224² × 256).
 * - Merge without atomics, deterministic: pass 2 runs once per direction in the order 0, 2, 1, 3
 *   (the CPU's order); the first overwrites y, the others add. Chunks of one direction cover
 *   disjoint pixels, so there are no races.
 * - 64-bit positions and offsets (L·Dn exceeds 2^32 for s2 models at 8192²).
 * - Per-step decay from scan_exp (scan.cuh), not expf: CUDA's expf is biased near 1.
 * - Differences to the CPU come only from the carry at chunk boundaries (and FMA contraction):
 *   ~1e-6 relative. One chunk (L <= chunk) reproduces the CPU loop's order.
 */
#include <stdlib.h>

#include "arena.h"
#include "ops_cuda.cuh"
#include "scan.cuh"
#include "carry_hd.cuh"
#include "ss2d_tile.cuh"

#include "src/ss2d.h"

/* Block shape: 32 channels (one warp: coalesced u/y accesses, xdbl broadcast) × SS2D_CPB
 * chunks of the same (image, direction); 128 threads, so Dn = 96 wastes no lanes and an SM
 * holds 16 blocks. */
#define SS2D_LANES 32
#define SS2D_CPB 4
/* Largest dt_rank held in shared memory (VMamba-B stage 3 uses 64; 128·32·4 B = 16 KB). */
#define SS2D_MAX_R 128

#define T_WS(expr)                                                                           \
    do {                                                                                     \
        enum wv_status t_ws_ = (expr);                                                       \
        if (t_ws_ != WV_OK) return t_ws_;                                                    \
    } while (0)

/* Softplus and the per-step decay. Exact variant (FAST = false): the CPU's formulas (softplus_dev,
 * scan_exp), what the f32 forward is checked against at 1e-4. Fast variant (bf16/f16 forwards,
 * whose GEMM operands already carry 8-bit mantissas): hardware exp2/log2 approximations, ~20
 * instructions a step fewer; relative error ~1e-6, far below the bf16 rounding of u. */
template <bool FAST> __device__ __forceinline__ float ss2d_softplus(float x)
{
    return FAST ? tl_softplus(x) : softplus_dev(x); /* tl_*: cuda/hd_common.cuh */
}
template <bool FAST> __device__ __forceinline__ float ss2d_decay(float x)
{
    return FAST ? tl_exp(x) : scan_exp(x);
}

__device__ __forceinline__ float ldu(const float *p) { return *p; }
__device__ __forceinline__ float ldu(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ float ldu(const __half *p) { return __half2float(*p); }

/* Position of token l of direction k as a pixel index, and the step to the next token, without a
 * division per step (64-bit division is a ~100-instruction software routine on the GPU; the
 * first version did two per step for the column directions and spent 49 of 89 ms there).
 * Directions: 0 row-major, 1 column-major, 2 and 3 their reverses. */
struct ss2d_walk {
    long long p; /* pixel index h·W + w */
    int h, w;    /* for the column directions */
};
__device__ __forceinline__ void ss2d_walk_start(ss2d_walk &t, int k, size_t l, int H, int W)
{
    const size_t L = (size_t)H * W;
    if (k == 0 || k == 2) {
        t.p = (long long)(k == 0 ? l : L - 1 - l);
        t.h = t.w = 0;
    } else {
        size_t q = k == 1 ? l : L - 1 - l; /* q = w·H + h */
        t.w = (int)(q / H);
        t.h = (int)(q - (size_t)t.w * H);
        t.p = (long long)t.h * W + t.w;
    }
}
__device__ __forceinline__ void ss2d_walk_next(ss2d_walk &t, int k, int H, int W)
{
    if (k == 0) t.p++;
    else if (k == 2) t.p--;
    else if (k == 1) {
        if (++t.h == H) t.h = 0, t.w++, t.p = t.w;
        else t.p += W;
    } else {
        if (--t.h < 0) t.h = H - 1, t.w--, t.p = (long long)(H - 1) * W + t.w;
        else t.p -= W;
    }
}

/* One thread = one (image b, direction k, chunk c, channel d). PASS 1: scan the chunk from h = 0,
 * store (Σ δA, h_local) per state in ws. PASS 2: re-scan from the carried entering state (ws;
 * zero when ws == NULL, i.e. one chunk) and write or add ⟨C, h⟩ + D·u into y at the chunk's
 * pixels. ws lane j = ((b·K + k)·N + n)·Dn + d, chunk-major: ws[(c·n_seq + j)·2 + {0, 1}].
 * u and the x_proj output xdbl are stored as TU (fp32 in the exact forward, bf16/f16 in the fast
 * one); y is fp32 (it accumulates the four directions). */
template <int NMAX, int PASS, typename TU, bool FAST>
__global__ void __launch_bounds__(SS2D_LANES * SS2D_CPB)
ss2d_chunk_kernel2(const TU *__restrict__ u, const TU *__restrict__ xdbl,
                   const float *__restrict__ dt_w, const float *__restrict__ dt_b,
                   const float *__restrict__ A, const float *__restrict__ Ds, float *__restrict__ y,
                   int B, int H, int W, int Dn, int R, int N, size_t chunk, size_t n_chunks,
                   int k_only, int accumulate, float *__restrict__ ws)
{
    __shared__ float wt[SS2D_MAX_R * SS2D_LANES]; /* dt_w of this block's 32 channels */
    const size_t L = (size_t)H * W;
    const int P = R + 2 * N;
    const int lane = threadIdx.x, d = blockIdx.y * SS2D_LANES + lane;
    const int b = PASS == 1 ? (int)(blockIdx.z / SS2D_K) : (int)blockIdx.z;
    const int k = PASS == 1 ? (int)(blockIdx.z % SS2D_K) : k_only;
    for (int i = threadIdx.y * SS2D_LANES + lane; i < R * SS2D_LANES; i += SS2D_LANES * SS2D_CPB) {
        int r = i / SS2D_LANES, dd = blockIdx.y * SS2D_LANES + i % SS2D_LANES;
        wt[i] = dd < Dn ? dt_w[((size_t)k * Dn + dd) * R + r] : 0.0f;
    }
    __syncthreads();
    const size_t c = (size_t)blockIdx.x * SS2D_CPB + threadIdx.y;
    if (d >= Dn || c >= n_chunks) return;
    const size_t n_seq = (size_t)B * SS2D_K * N * Dn;
    const size_t lane0 = ((size_t)b * SS2D_K + k) * N * Dn + d;
    const TU *ub = u + (size_t)b * L * Dn + d;
    const TU *xb = xdbl + (size_t)b * L * SS2D_K * P + (size_t)k * P;
    float *yb = y + (size_t)b * L * Dn + d;
    float h[NMAX], ls[NMAX], lc[NMAX], Ac[NMAX]; /* ls, lc: Σ δA over the chunk (Kahan) */
#pragma unroll
    for (int n = 0; n < NMAX; n++) {
        Ac[n] = n < N ? A[((size_t)k * Dn + d) * N + n] : 0.0f;
        ls[n] = lc[n] = 0.0f;
        h[n] = 0.0f;
        if (PASS == 2 && ws && n < N) h[n] = ws[(c * n_seq + lane0 + (size_t)n * Dn) * 2 + 1];
    }
    const float bias = dt_b[(size_t)k * Dn + d], Dk = Ds[(size_t)k * Dn + d];
    const size_t l0 = c * chunk, l1 = l0 + chunk < L ? l0 + chunk : L;
    const long long stride_x = (long long)SS2D_K * P;
    ss2d_walk t;
    ss2d_walk_start(t, k, l0, H, W);
    for (size_t l = l0; l < l1; l++) {
        const TU *xd = xb + t.p * stride_x;
        float dt = 0.0f;
        for (int r = 0; r < R; r++) dt += wt[r * SS2D_LANES + lane] * ldu(xd + r);
        dt = ss2d_softplus<FAST>(dt + bias);
        const long long off = t.p * Dn;
        float up = ldu(ub + off), acc = 0.0f;
#pragma unroll
        for (int n = 0; n < NMAX; n++) {
            if (n < N) {
                float x = dt * Ac[n], a = ss2d_decay<FAST>(x);
                h[n] = a * h[n] + dt * ldu(xd + R + n) * up;
                if (PASS == 1) kahan_add(ls[n], lc[n], x);
                else acc += ldu(xd + R + N + n) * h[n];
            }
        }
        if (PASS == 2) {
            float out = acc + Dk * up;
            if (accumulate) yb[off] += out;
            else yb[off] = out;
        }
        ss2d_walk_next(t, k, H, W);
    }
    if (PASS == 1) {
#pragma unroll
        for (int n = 0; n < NMAX; n++) {
            if (n >= N) continue;
            float *q = ws + (c * n_seq + lane0 + (size_t)n * Dn) * 2;
            q[0] = ls[n] - lc[n];
            q[1] = h[n];
        }
    }
}

extern "C" size_t ss2d_cuda_ws_bytes(int H, int W, int Dn, int N, int chunk)
{
    static_assert(SS2D_K == 4, "vc_ss2d_ws_bytes assumes 4 directions");
    return vc_ss2d_ws_bytes(1, H, W, Dn, N, chunk);
}

template <typename TU, bool FAST>
static void ss2d_launch(const TU *u, const TU *xdbl, const float *dt_w, const float *dt_b,
                        const float *A, const float *Ds, float *y, int B, int H, int W, int Dn,
                        int R, int N, size_t chunk, size_t n_chunks, float *w, cudaStream_t stream)
{
    static const int korder[SS2D_K] = {0, 2, 1, 3}; /* the CPU's merge order */
    const unsigned dblocks = (unsigned)((Dn + SS2D_LANES - 1) / SS2D_LANES);
    const unsigned cblocks = (unsigned)((n_chunks + SS2D_CPB - 1) / SS2D_CPB);
    const dim3 blk(SS2D_LANES, SS2D_CPB);
    SCAN_DISPATCH_N(N, NM, {
        if (n_chunks > 1) {
            dim3 g1(cblocks, dblocks, (unsigned)(SS2D_K * B));
            ss2d_chunk_kernel2<NM, 1, TU, FAST><<<g1, blk, 0, stream>>>(
                u, xdbl, dt_w, dt_b, A, Ds, y, B, H, W, Dn, R, N, chunk, n_chunks, 0, 0, w);
            if (cudaPeekAtLastError() == cudaSuccess) {
                size_t lanes = (size_t)B * SS2D_K * N * Dn;
                scan_carry_kernel1<<<cuda_blocks(lanes, 128), 128, 0, stream>>>(w, NULL, lanes,
                                                                               n_chunks);
            }
        }
        dim3 g2(cblocks, dblocks, (unsigned)B);
        for (int kk = 0; kk < SS2D_K && cudaPeekAtLastError() == cudaSuccess; kk++)
            ss2d_chunk_kernel2<NM, 2, TU, FAST><<<g2, blk, 0, stream>>>(
                u, xdbl, dt_w, dt_b, A, Ds, y, B, H, W, Dn, R, N, chunk, n_chunks, korder[kk],
                kk > 0, n_chunks > 1 ? w : NULL);
    });
}

extern "C" enum wv_status ss2d_scan_merge_batch_cuda(const void *u, enum wv_dtype u_dt,
                                                     const void *xdbl, const float *dt_w,
                                                     const float *dt_b, const float *A,
                                                     const float *Ds, float *y, int B, int H,
                                                     int W, int Dn, int R, int N, int chunk,
                                                     void *ws, cudaStream_t stream)
{
    size_t L = (size_t)H * W;
    if (L == 0 || Dn <= 0 || B <= 0) return WV_OK;
    if (N < 1 || N > CUDA_SCAN_MAX_N)
        return error_set(WV_EUNSUPPORTED, "cuda ss2d_scan_merge: d_state %d, this build takes 1..%d",
                         N, CUDA_SCAN_MAX_N);
    if (R < 0 || R > SS2D_MAX_R)
        return error_set(WV_EUNSUPPORTED, "cuda ss2d_scan_merge: dt_rank %d, this build takes 0..%d",
                         R, SS2D_MAX_R);
    if (chunk <= 0) return error_set(WV_EINVAL, "cuda ss2d_scan_merge: chunk %d", chunk);
    if (B > 65535 / SS2D_K)
        return error_set(WV_EUNSUPPORTED, "cuda ss2d_scan_merge: batch %d (at most %d)", B,
                         65535 / SS2D_K);
    size_t n_chunks = (L + chunk - 1) / chunk;
    if (n_chunks / SS2D_CPB > 0x7fffffffu)
        return error_set(WV_EUNSUPPORTED, "cuda ss2d_scan_merge: %zu chunks", n_chunks);
    float *w = (float *)ws;
    int own = 0;
    T_WS(scan_ws_begin(&w, vc_ss2d_ws_bytes(B, H, W, Dn, N, chunk), n_chunks, &own,
                       "ss2d_scan_merge", stream));
    if (u_dt == WV_DTYPE_F32)
        ss2d_launch<float, false>((const float *)u, (const float *)xdbl, dt_w, dt_b, A, Ds, y, B, H, W, Dn, R, N,
                                  (size_t)chunk, n_chunks, w, stream);
    else if (u_dt == WV_DTYPE_BF16)
        ss2d_launch<__nv_bfloat16, true>((const __nv_bfloat16 *)u, (const __nv_bfloat16 *)xdbl, dt_w, dt_b, A, Ds, y, B,
                                         H, W, Dn, R, N, (size_t)chunk, n_chunks, w, stream);
    else
        ss2d_launch<__half, true>((const __half *)u, (const __half *)xdbl, dt_w, dt_b, A, Ds, y, B, H, W, Dn, R,
                                  N, (size_t)chunk, n_chunks, w, stream);
    return scan_ws_end(w, own, "ss2d_chunk_kernel2<<<>>>", "ss2d_scan_merge", stream);
}

/* ---- fast path: d_state 1, packed x_proj rows, dt_proj weights in registers ----------------
 *
 * Why: after the division fix the first kernel still ran at ~90 G thread-steps/s (273 ms of a
 * 438 ms 10,000² forward on the H200), whatever the size: bound by load instructions, not by
 * bytes. Each step issued R scalar loads of dt_low (R = 6..48 for VMamba-T) plus R shared loads
 * of dt_w — ~2R + 5 load instructions for ~2R FMAs. Here a (pixel, direction) row of the x_proj
 * output is (B, C, dt_low, zero padding) with a pitch that is a multiple of 8 (vc_xdbl_pitch),
 * read with Pp/8 16-byte loads (the same for all 32 lanes: a broadcast), and dt_w[k, d, ·] sits
 * in registers for the whole chunk: per step Pp/8 + 1 loads and R FMAs. d_state is 1 (every v2
 * model), so B and C are at fixed places. A row's 16-byte pieces are unpacked by tl_unpack
 * (cuda/hd_common.cuh, shared with the tiled path). */

/* CPT consecutive channels per thread (template; the default is 1, see ss2d_fast_dispatch):
 * with CPT 4 one 8-byte u load and one 16-byte y access per step serve 4 channels, the x_proj
 * row is loaded once for them, and 4 independent recurrences overlap — the idea being that the
 * walk is latency-bound (~0.7-0.9 TB/s effective at 10,000²). Measured, the register cost
 * (CPT·RMAX dt_proj weights per thread) lowered occupancy by as much as it gained. Block: 32
 * lanes × SS2D_CPB chunks. */
template <typename TU, int CPT> struct ss2d_io;
template <typename TU> struct ss2d_io<TU, 1> {
    static __device__ __forceinline__ void ldu(const TU *p, float *o) { o[0] = ::ldu(p); }
    static __device__ __forceinline__ void ldy(const float *p, float *o) { o[0] = *p; }
    static __device__ __forceinline__ void sty(float *p, const float *v) { *p = v[0]; }
};
template <typename TU> struct ss2d_io<TU, 2> {
    static __device__ __forceinline__ void ldu(const TU *p, float *o)
    {
        uint32_t w = *reinterpret_cast<const uint32_t *>(p);
        o[0] = tl_cvt<TU>::f(w & 0xffffu), o[1] = tl_cvt<TU>::f(w >> 16);
    }
    static __device__ __forceinline__ void ldy(const float *p, float *o)
    {
        float2 v = *reinterpret_cast<const float2 *>(p);
        o[0] = v.x, o[1] = v.y;
    }
    static __device__ __forceinline__ void sty(float *p, const float *v)
    {
        *reinterpret_cast<float2 *>(p) = make_float2(v[0], v[1]);
    }
};
template <typename TU> struct ss2d_io<TU, 4> {
    static __device__ __forceinline__ void ldu(const TU *p, float *o)
    {
        uint2 w = *reinterpret_cast<const uint2 *>(p);
        o[0] = tl_cvt<TU>::f(w.x & 0xffffu), o[1] = tl_cvt<TU>::f(w.x >> 16);
        o[2] = tl_cvt<TU>::f(w.y & 0xffffu), o[3] = tl_cvt<TU>::f(w.y >> 16);
    }
    static __device__ __forceinline__ void ldy(const float *p, float *o)
    {
        float4 v = *reinterpret_cast<const float4 *>(p);
        o[0] = v.x, o[1] = v.y, o[2] = v.z, o[3] = v.w;
    }
    static __device__ __forceinline__ void sty(float *p, const float *v)
    {
        *reinterpret_cast<float4 *>(p) = make_float4(v[0], v[1], v[2], v[3]);
    }
};

template <int RMAX, int CPT, int PASS, typename TU>
__global__ void __launch_bounds__(SS2D_LANES * SS2D_CPB)
ss2d_fast_kernel(const TU *__restrict__ u, const TU *__restrict__ xdbl,
                 const float *__restrict__ dt_w, const float *__restrict__ dt_b,
                 const float *__restrict__ A, const float *__restrict__ Ds, float *__restrict__ y,
                 int B, int H, int W, int Dn, int R, int Pp, size_t chunk, size_t n_chunks,
                 int k_only, int accumulate, float *__restrict__ ws)
{
    constexpr int JMAX = (RMAX + 2 + 7) / 8; /* 16-byte loads that can hold (B, C, dt_low) */
    typedef ss2d_io<TU, CPT> io;
    const size_t L = (size_t)H * W;
    const int d0 = (blockIdx.y * SS2D_LANES + threadIdx.x) * CPT;
    const int b = PASS == 1 ? (int)(blockIdx.z / SS2D_K) : (int)blockIdx.z;
    const int k = PASS == 1 ? (int)(blockIdx.z % SS2D_K) : k_only;
    const size_t c = (size_t)blockIdx.x * SS2D_CPB + threadIdx.y;
    if (d0 >= Dn || c >= n_chunks) return;
    float wr[CPT][RMAX], h[CPT], ls[CPT], lc[CPT], Ak[CPT], bias[CPT], Dk[CPT];
    const size_t n_seq = (size_t)B * SS2D_K * Dn;
    const size_t lane0 = ((size_t)b * SS2D_K + k) * Dn + d0;
#pragma unroll
    for (int q = 0; q < CPT; q++) {
        const size_t kd = (size_t)k * Dn + d0 + q;
#pragma unroll
        for (int r = 0; r < RMAX; r++) wr[q][r] = r < R ? dt_w[kd * R + r] : 0.0f;
        h[q] = PASS == 2 && ws ? ws[(c * n_seq + lane0 + q) * 2 + 1] : 0.0f;
        ls[q] = lc[q] = 0.0f;
        Ak[q] = A[kd], bias[q] = dt_b[kd], Dk[q] = Ds[kd];
    }
    const TU *ub = u + (size_t)b * L * Dn + d0;
    const TU *xb = xdbl + ((size_t)b * L * SS2D_K + k) * Pp;
    float *yb = y + (size_t)b * L * Dn + d0;
    const int nv = Pp / 8;
    const long long stride_x = (long long)SS2D_K * Pp;
    const size_t l0 = c * chunk, l1 = l0 + chunk < L ? l0 + chunk : L;
    /* software pipelining: step l + 1's operands are loaded before step l is computed */
    ss2d_walk t;
    ss2d_walk_start(t, k, l0, H, W);
    uint4 cv[JMAX];
    float cu[CPT], cy[CPT];
#pragma unroll
    for (int j = 0; j < JMAX; j++)
        cv[j] = j < nv ? __ldg(reinterpret_cast<const uint4 *>(xb + t.p * stride_x) + j) : make_uint4(0, 0, 0, 0);
    io::ldu(ub + t.p * Dn, cu);
#pragma unroll
    for (int q = 0; q < CPT; q++) cy[q] = 0.0f;
    if (PASS == 2 && accumulate) io::ldy(yb + t.p * Dn, cy);
    for (size_t l = l0; l < l1; l++) {
        ss2d_walk tn = t;
        ss2d_walk_next(tn, k, H, W);
        uint4 nv4[JMAX];
        float nu[CPT], ny[CPT];
#pragma unroll
        for (int q = 0; q < CPT; q++) nu[q] = ny[q] = 0.0f;
        if (l + 1 < l1) {
            const uint4 *row = reinterpret_cast<const uint4 *>(xb + tn.p * stride_x);
#pragma unroll
            for (int j = 0; j < JMAX; j++) nv4[j] = j < nv ? __ldg(row + j) : make_uint4(0, 0, 0, 0);
            io::ldu(ub + tn.p * Dn, nu);
            if (PASS == 2 && accumulate) io::ldy(yb + tn.p * Dn, ny);
        } else {
#pragma unroll
            for (int j = 0; j < JMAX; j++) nv4[j] = make_uint4(0, 0, 0, 0);
        }
        float xv[JMAX * 8];
#pragma unroll
        for (int j = 0; j < JMAX; j++) tl_unpack<TU>(cv[j], xv + 8 * j);
        float out[CPT];
#pragma unroll
        for (int q = 0; q < CPT; q++) {
            float dt = bias[q];
#pragma unroll
            for (int r = 0; r < RMAX; r++) dt = fmaf(wr[q][r], xv[2 + r], dt);
            dt = ss2d_softplus<true>(dt);
            const float x = dt * Ak[q];
            h[q] = __expf(x) * h[q] + dt * xv[0] * cu[q];
            if (PASS == 1) kahan_add(ls[q], lc[q], x);
            else out[q] = xv[1] * h[q] + Dk[q] * cu[q] + (accumulate ? cy[q] : 0.0f);
        }
        if (PASS == 2) io::sty(yb + t.p * Dn, out);
        t = tn;
#pragma unroll
        for (int j = 0; j < JMAX; j++) cv[j] = nv4[j];
#pragma unroll
        for (int q = 0; q < CPT; q++) cu[q] = nu[q], cy[q] = ny[q];
    }
    if (PASS == 1) {
#pragma unroll
        for (int q = 0; q < CPT; q++) {
            float *o = ws + (c * n_seq + lane0 + q) * 2;
            o[0] = ls[q] - lc[q];
            o[1] = h[q];
        }
    }
}

/* Carry over chunks in two levels when there are many (10,000²: 24k chunks of 256 tokens, and
 * only 4·Dn = 384 lanes: the one-level carry walked 24k chunks in sequence per lane, 35 ms of a
 * 385 ms forward). The levels' items are in cuda/carry_hd.cuh (checked on the CPU for several
 * group sizes by test_kernels_host). */
__global__ void ss2d_carry_groups(const float *ws, double *gs, size_t n_seq, size_t n_chunks,
                                  size_t G, size_t n_groups)
{
    GRID_STRIDE_LOOP(i, n_seq * n_groups) carry_group_item(i, ws, gs, n_seq, n_chunks, G);
}
__global__ void ss2d_carry_across(double *gs, size_t n_seq, size_t n_groups)
{
    GRID_STRIDE_LOOP(j, n_seq) carry_across_item(j, gs, n_seq, n_groups);
}
__global__ void ss2d_carry_within(float *ws, const double *gs, size_t n_seq, size_t n_chunks,
                                  size_t G, size_t n_groups)
{
    GRID_STRIDE_LOOP(i, n_seq * n_groups) carry_within_item(i, ws, gs, n_seq, n_chunks, G);
}

/* Chunks in groups of G (1: one level). ws holds the (s, h) pairs and, right after them, the
 * group level: vc_ss2d_ws_bytes / vc_ss2d_tile_ws_bytes count both, with the same G
 * (vc_carry_group for the chunked kernels, vc_tile_carry_group for the tiled ones). */
static void ss2d_carry(float *ws, size_t n_seq, size_t n_chunks, size_t G, cudaStream_t stream)
{
    if (G <= 1) {
        scan_carry_kernel1<<<cuda_blocks(n_seq, 128), 128, 0, stream>>>(ws, NULL, n_seq, n_chunks);
        return;
    }
    const size_t n_groups = (n_chunks + G - 1) / G;
    double *gs = (double *)((char *)ws + n_chunks * n_seq * 2 * sizeof(float));
    gs = (double *)(((uintptr_t)gs + 15) & ~(uintptr_t)15);
    ss2d_carry_groups<<<cuda_blocks(n_seq * n_groups, 128), 128, 0, stream>>>(ws, gs, n_seq, n_chunks, G, n_groups);
    ss2d_carry_across<<<cuda_blocks(n_seq, 128), 128, 0, stream>>>(gs, n_seq, n_groups);
    ss2d_carry_within<<<cuda_blocks(n_seq * n_groups, 128), 128, 0, stream>>>(ws, gs, n_seq, n_chunks, G, n_groups);
}

template <int RMAX, int CPT, typename TU>
static void ss2d_fast_launch(const TU *u, const TU *xdbl, const float *dt_w, const float *dt_b,
                             const float *A, const float *Ds, float *y, int B, int H, int W,
                             int Dn, int R, int Pp, size_t chunk, size_t n_chunks, float *w,
                             ss2d_hook_fn hook, void *hu, cudaStream_t stream)
{
    static const int korder[SS2D_K] = {0, 2, 1, 3};
    const unsigned dblocks = (unsigned)((Dn / CPT + SS2D_LANES - 1) / SS2D_LANES);
    const unsigned cblocks = (unsigned)((n_chunks + SS2D_CPB - 1) / SS2D_CPB);
    const dim3 blk(SS2D_LANES, SS2D_CPB);
    if (n_chunks > 1) {
        if (hook) hook(hu, SS2D_PHASE_PASS1);
        dim3 g1(cblocks, dblocks, (unsigned)(SS2D_K * B));
        ss2d_fast_kernel<RMAX, CPT, 1, TU><<<g1, blk, 0, stream>>>(
            u, xdbl, dt_w, dt_b, A, Ds, y, B, H, W, Dn, R, Pp, chunk, n_chunks, 0, 0, w);
        if (cudaPeekAtLastError() == cudaSuccess) {
            if (hook) hook(hu, SS2D_PHASE_CARRY);
            ss2d_carry(w, (size_t)B * SS2D_K * Dn, n_chunks, vc_carry_group(n_chunks), stream);
        }
    }
    dim3 g2(cblocks, dblocks, (unsigned)B);
    for (int kk = 0; kk < SS2D_K && cudaPeekAtLastError() == cudaSuccess; kk++) {
        if (hook) hook(hu, korder[kk] & 1 ? SS2D_PHASE_COLS : SS2D_PHASE_ROWS);
        ss2d_fast_kernel<RMAX, CPT, 2, TU><<<g2, blk, 0, stream>>>(
            u, xdbl, dt_w, dt_b, A, Ds, y, B, H, W, Dn, R, Pp, chunk, n_chunks, korder[kk], kk > 0,
            n_chunks > 1 ? w : NULL);
    }
}

template <typename TU>
static void ss2d_fast_dispatch(const TU *u, const TU *xdbl, const float *dt_w, const float *dt_b,
                               const float *A, const float *Ds, float *y, int B, int H, int W,
                               int Dn, int R, int Pp, size_t chunk, size_t n_chunks, float *w,
                               ss2d_hook_fn hook, void *hu, cudaStream_t s)
{
#define SS2D_FAST(RM, CP) \
    ss2d_fast_launch<RM, CP>(u, xdbl, dt_w, dt_b, A, Ds, y, B, H, W, Dn, R, Pp, chunk, n_chunks, w, hook, hu, s)
    /* Channels per thread: 1 by default. WV_SS2D_CPT=2|4 allows more (a benchmark knob). On the
     * H200 (b179af9) CPT 4 was slower: 5,134 vs 5,537 img/s at 224² × 256, 333 vs 327 ms at
     * 10,000² — 96-106 registers a thread leave 16 warps per SM, which cancels the wider loads. */
    static const int cpt_max = [] {
        const char *e = getenv("WV_SS2D_CPT");
        int v = e ? atoi(e) : 1;
        return v >= 4 ? 4 : v >= 2 ? 2 : 1;
    }();
    if (R <= 8 && Dn % 4 == 0 && cpt_max >= 4) SS2D_FAST(8, 4);
    else if (R <= 8 && Dn % 2 == 0 && cpt_max >= 2) SS2D_FAST(8, 2);
    else if (R <= 8) SS2D_FAST(8, 1);
    else if (R <= 16 && Dn % 4 == 0 && cpt_max >= 4) SS2D_FAST(16, 4);
    else if (R <= 16) SS2D_FAST(16, 1);
    else if (R <= 32 && Dn % 2 == 0 && cpt_max >= 2) SS2D_FAST(32, 2);
    else if (R <= 32) SS2D_FAST(32, 1);
    else SS2D_FAST(64, 1);
#undef SS2D_FAST
}

extern "C" enum wv_status ss2d_scan_merge_fast_cuda(const void *u, enum wv_dtype dt,
                                                    const void *xdbl, int pitch,
                                                    const float *dt_w, const float *dt_b,
                                                    const float *A, const float *Ds, float *y,
                                                    int B, int H, int W, int Dn, int R, int chunk,
                                                    void *ws, ss2d_hook_fn hook, void *hook_user,
                                                    cudaStream_t stream)
{
    size_t L = (size_t)H * W;
    if (L == 0 || Dn <= 0 || B <= 0) return WV_OK;
    if (dt == WV_DTYPE_F32 || R < 1 || R > 64 || pitch % 8 || pitch < R + 2 || chunk <= 0)
        return error_set(WV_EINVAL, "cuda ss2d fast: dtype %s, dt_rank %d, pitch %d, chunk %d",
                         wv_dtype_name(dt), R, pitch, chunk);
    if (B > 65535 / SS2D_K)
        return error_set(WV_EUNSUPPORTED, "cuda ss2d fast: batch %d (at most %d)", B, 65535 / SS2D_K);
    size_t n_chunks = (L + chunk - 1) / chunk;
    if (n_chunks > 0x7fffffffu)
        return error_set(WV_EUNSUPPORTED, "cuda ss2d fast: %zu chunks", n_chunks);
    float *w = (float *)ws;
    int own = 0;
    T_WS(scan_ws_begin(&w, vc_ss2d_ws_bytes(B, H, W, Dn, 1, chunk), n_chunks, &own, "ss2d fast",
                       stream));
    if (dt == WV_DTYPE_BF16)
        ss2d_fast_dispatch((const __nv_bfloat16 *)u, (const __nv_bfloat16 *)xdbl, dt_w, dt_b, A, Ds,
                           y, B, H, W, Dn, R, pitch, (size_t)chunk, n_chunks, w, hook, hook_user,
                           stream);
    else
        ss2d_fast_dispatch((const __half *)u, (const __half *)xdbl, dt_w, dt_b, A, Ds, y, B, H, W,
                           Dn, R, pitch, (size_t)chunk, n_chunks, w, hook, hook_user, stream);
    return scan_ws_end(w, own, "ss2d_fast_kernel<<<>>>", "ss2d fast", stream);
}

extern "C" enum wv_status ss2d_scan_merge_cuda_ex(const float *u, const float *xdbl,
                                                  const float *dt_w, const float *dt_b,
                                                  const float *A, const float *Ds, float *y,
                                                  int H, int W, int Dn, int R, int N, int chunk,
                                                  void *ws, cudaStream_t stream)
{
    return ss2d_scan_merge_batch_cuda(u, WV_DTYPE_F32, xdbl, dt_w, dt_b, A, Ds, y, 1, H, W, Dn, R,
                                      N, chunk, ws, stream);
}

extern "C" void ss2d_scan_merge_cuda(const float *u, const float *xdbl, const float *dt_w,
                                     const float *dt_b, const float *A, const float *Ds, float *y,
                                     int H, int W, int Dn, int R, int N, cudaStream_t stream)
{
    ss2d_scan_merge_cuda_ex(u, xdbl, dt_w, dt_b, A, Ds, y, H, W, Dn, R, N,
                            scan_cuda_default_chunk((size_t)H * W), NULL, stream);
}

/* ---- tiled path (cuda/ss2d_tile.cuh): bf16, d_state 1, Dn a multiple of 16 ------------------ */

template <int T, int RMAX, int MODE>
__global__ void __launch_bounds__(T * SS2D_TILE_CH)
ss2d_tile_kernel(ss2d_tile_args<__nv_bfloat16> a)
{
    extern __shared__ __align__(16) unsigned char tl_shared[];
    tl_dev_exec ex;
    ss2d_tile_block<T, RMAX, MODE>(ex, a, (int)blockIdx.x, (int)blockIdx.y, (int)blockIdx.z,
                                   tl_shared);
}

template <int T, int RMAX, int MODE>
static cudaError_t ss2d_tile_launch(const ss2d_tile_args<__nv_bfloat16> &a, cudaStream_t s)
{
    const size_t smem = tl_smem<T, __nv_bfloat16>::bytes(MODE);
    /* above 48 KB a kernel must ask for its dynamic shared memory (per device; cheap to repeat) */
    cudaError_t e = cudaFuncSetAttribute(ss2d_tile_kernel<T, RMAX, MODE>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (e != cudaSuccess) return e;
    const dim3 grid((unsigned)(a.ntx * a.nty), (unsigned)(a.Dg / SS2D_TILE_CH), (unsigned)a.B);
    ss2d_tile_kernel<T, RMAX, MODE><<<grid, T * SS2D_TILE_CH, smem, s>>>(a);
    return cudaPeekAtLastError();
}

/* One channel group: fused (one tile) or pass 1 → carry → pass 2. Multi-tile runs take
 * VC_TILE_MAX-sided tiles only (vc_scan_tile), which keeps the instantiations at 20. */
template <int RMAX>
static cudaError_t ss2d_tile_group(const ss2d_tile_args<__nv_bfloat16> &a, int T, ss2d_hook_fn hook,
                                   void *hu, cudaStream_t s)
{
    if (a.ntx * a.nty == 1) {
        if (hook) hook(hu, SS2D_PHASE_ROWS);
        return T == 8    ? ss2d_tile_launch<8, RMAX, 0>(a, s)
               : T == 16 ? ss2d_tile_launch<16, RMAX, 0>(a, s)
                         : ss2d_tile_launch<VC_TILE_MAX, RMAX, 0>(a, s);
    }
    const size_t n_chunks = tl_n_chunks(a.H, a.W, a.ntx, a.nty);
    const size_t n_seq = (size_t)a.B * SS2D_K * a.Dg;
    if ((size_t)a.H * a.ntx != (size_t)a.W * a.nty) {
        /* the shorter pair of directions leaves trailing chunk slots unwritten; the carry reads
         * them (after every real chunk, so they change nothing): make them identities */
        cudaError_t e = cudaMemsetAsync(a.ws, 0, n_chunks * n_seq * 2 * sizeof(float), s);
        if (e != cudaSuccess) return e;
    }
    if (hook) hook(hu, SS2D_PHASE_PASS1);
    cudaError_t e = ss2d_tile_launch<VC_TILE_MAX, RMAX, 1>(a, s);
    if (e != cudaSuccess) return e;
    if (hook) hook(hu, SS2D_PHASE_CARRY);
    ss2d_carry(a.ws, n_seq, n_chunks, vc_tile_carry_group(n_chunks), s);
    if ((e = cudaPeekAtLastError()) != cudaSuccess) return e;
    if (hook) hook(hu, SS2D_PHASE_ROWS);
    return ss2d_tile_launch<VC_TILE_MAX, RMAX, 2>(a, s);
}

extern "C" enum wv_status ss2d_scan_merge_tile_cuda(const void *u, enum wv_dtype dt,
                                                    const void *xdbl, int pitch,
                                                    const float *dt_w, const float *dt_b,
                                                    const float *A, const float *Ds, float *y,
                                                    int B, int H, int W, int Dn, int R, int tile,
                                                    int group, void *ws, ss2d_hook_fn hook,
                                                    void *hook_user, cudaStream_t stream)
{
    if ((size_t)H * W == 0 || Dn <= 0 || B <= 0) return WV_OK;
    if (dt != WV_DTYPE_BF16 || R < 1 || R > 64 || pitch % 8 || pitch < R + 2 ||
        Dn % SS2D_TILE_CH || group < SS2D_TILE_CH || group % SS2D_TILE_CH || Dn % group ||
        (tile != 8 && tile != 16 && tile != VC_TILE_MAX))
        return error_set(WV_EINVAL,
                         "cuda ss2d tile: dtype %s, dt_rank %d, pitch %d, Dn %d, group %d, tile %d",
                         wv_dtype_name(dt), R, pitch, Dn, group, tile);
    ss2d_tile_args<__nv_bfloat16> a = {};
    a.u = (const __nv_bfloat16 *)u, a.xdbl = (const __nv_bfloat16 *)xdbl;
    a.dt_w = dt_w, a.dt_b = dt_b, a.A = A, a.Ds = Ds, a.y = y;
    a.B = B, a.H = H, a.W = W, a.Dn = Dn, a.R = R, a.Pp = pitch;
    a.ntx = (W + tile - 1) / tile, a.nty = (H + tile - 1) / tile;
    if (B > 65535 || (size_t)a.ntx * a.nty > 0x7fffffffu || (tile < VC_TILE_MAX && a.ntx * a.nty > 1))
        return error_set(WV_EUNSUPPORTED, "cuda ss2d tile: batch %d, %d×%d tiles of %d", B, a.ntx,
                         a.nty, tile);
    const size_t bytes = vc_ss2d_tile_ws_bytes(B, H, W, group, tile);
    float *w = (float *)ws;
    int own = 0;
    T_WS(scan_ws_begin(&w, bytes, bytes ? 2 : 1, &own, "ss2d tile", stream));
    a.ws = w;
    cudaError_t e = cudaSuccess;
    for (int d = 0; d < Dn && e == cudaSuccess; d += group) {
        a.d_base = d, a.Dg = group;
        e = R <= 8    ? ss2d_tile_group<8>(a, tile, hook, hook_user, stream)
            : R <= 16 ? ss2d_tile_group<16>(a, tile, hook, hook_user, stream)
            : R <= 32 ? ss2d_tile_group<32>(a, tile, hook, hook_user, stream)
                      : ss2d_tile_group<64>(a, tile, hook, hook_user, stream);
    }
    if (e != cudaSuccess) { /* a launch, the shared-memory attribute or the memset */
        (void)cudaGetLastError();
        if (own) (void)cudaFreeAsync(w, stream);
        return cuda_fail(e, "ss2d_tile_kernel<<<>>>", "ss2d tile", __FILE__, __LINE__);
    }
    return scan_ws_end(w, own, "ss2d_tile_kernel<<<>>>", "ss2d tile", stream);
}
