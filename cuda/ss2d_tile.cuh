/*
 * ss2d_tile.cuh — the tiled SS2D of the fast path (bf16/f16 u and packed x_proj rows, d_state 1):
 * one block owns a T×T tile of one image and 16 channels, reads u once into shared memory, runs
 * all four directions over it and writes the merged y once.
 *
 * Why (docs/benchmarks.md "GPU encoder (issue 9)"): the chunked kernels (ss2d.cu) walk each
 * direction in its own launch over chunks of the flattened sequence, so every pixel·channel
 * reads u eight times from global memory and y takes a write and three fp32 read-modify-writes:
 * ~52 B per pixel·channel·block, and each step waits on a global load (~0.9 TB/s effective, 57 %
 * of the forward on the H200). Here the chunks are the tile's row and column segments:
 *   - direction 0 (row-major) is cut into chunks of one row segment [x0, x0 + tw) of one row;
 *     they are contiguous in its order, chunk index (row · ntx + tile column); direction 2 is
 *     direction 0 reversed, so the same segments in the reverse chunk order;
 *   - direction 1 (column-major) into column segments [y0, y0 + th) of one column, chunk index
 *     (column · nty + tile row); direction 3 reversed.
 * So a tile holds exactly TH row chunks and TW column chunks of every direction, and the chunk
 * carry (ws layout and ss2d_carry of ss2d.cu, unchanged) composes them: pass 1 (one launch) scans
 * every segment from h = 0 and stores (Σ δA, h_local); the carry gives each chunk its entering
 * state; pass 2 re-scans the segments from it, rows (directions 0 then 2) into a shared-memory
 * y tile, then columns (1 then 3) adding — the CPU's merge order 0, 2, 1, 3 per element — and
 * stores the tile. Global traffic per pixel·channel: u read twice, y written once, the
 * workspace 8 B per segment·channel·direction: ~12 B instead of ~52.
 * When the whole image fits one tile (224² × 256: stages 1-3) the carry runs inside the block
 * (MODE 0, "fused"): summaries to shared memory, one thread per (direction, channel) composes
 * them in order, then pass 2 — one launch, no workspace.
 *
 * Every phase is a __host__ __device__ function of (block, thread, shared memory) and the block's
 * phase sequence is written once (ss2d_tile_block) over an executor: on the GPU each thread runs
 * its part and the block synchronises between phases; on the host (tests/gpu/test_kernels_host.cu)
 * the executor runs the phase for every thread in turn. So the tiling, the chunk numbering, the
 * in-block carry and the merge order are checked against ss2d_scan_merge_cpu on any machine; what
 * only a GPU can check is the launch itself (run.sh's devin-tile check).
 */
#ifndef WV_CUDA_SS2D_TILE_CUH
#define WV_CUDA_SS2D_TILE_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "hd_common.cuh"
#include "src/ss2d.h"

/* Channels per block: 16 bf16 are one 32-byte sector of a pixel's u row. */
#define SS2D_TILE_CH 16

template <typename TU> struct ss2d_tile_args {
    const TU *u;    /* (B, H, W, Dn) */
    const TU *xdbl; /* (B, H, W, K, Pp): per pixel and direction (B, C, dt_low, 0…) */
    const float *dt_w, *dt_b, *A, *Ds; /* (K, Dn, R), (K·Dn), (K·Dn) (d_state 1), (K·Dn) */
    float *y;                          /* (B, H, W, Dn): the merged output, overwritten */
    float *ws;      /* carry workspace, lanes (b, k, d - d_base); NULL when fused */
    int B, H, W, Dn, R, Pp;
    int d_base, Dg; /* this launch's channels [d_base, d_base + Dg) */
    int ntx, nty;   /* tiles across and down */
};

/* Where a block works: image b, tile (tx, ty) of size tw × th at (x0, y0), channels d0.. */
struct ss2d_tile_pos {
    int b, tx, ty, x0, y0, tw, th, d0;
};
template <int T, typename TU>
TL_HD ss2d_tile_pos tl_pos(const ss2d_tile_args<TU> &a, int tile, int cblock, int b)
{
    ss2d_tile_pos p;
    p.b = b;
    p.tx = tile % a.ntx, p.ty = tile / a.ntx;
    p.x0 = p.tx * T, p.y0 = p.ty * T;
    p.tw = a.W - p.x0 < T ? a.W - p.x0 : T;
    p.th = a.H - p.y0 < T ? a.H - p.y0 : T;
    p.d0 = a.d_base + cblock * SS2D_TILE_CH;
    return p;
}

/* Shared memory: u tile (TU) and y tile (fp32), each (T, T + 1, CH): one pixel of padding per row
 * so that the two segments a warp holds (rows r, r + 1) fall on different banks. The fused mode's
 * segment summaries (K, T, CH) float2 live in the y tile's bytes before pass 2 needs it. */
template <int T, typename TU> struct tl_smem {
    static constexpr int ROW = (T + 1) * SS2D_TILE_CH; /* elements per tile row */
    static constexpr size_t u_bytes = ((size_t)T * ROW * sizeof(TU) + 15) / 16 * 16;
    static constexpr size_t y_bytes = (size_t)T * ROW * sizeof(float);
    static constexpr size_t bytes(int mode) { return mode == 1 ? u_bytes : u_bytes + y_bytes; }
    static TL_HD TU *u(unsigned char *s) { return reinterpret_cast<TU *>(s); }
    static TL_HD float *y(unsigned char *s) { return reinterpret_cast<float *>(s + u_bytes); }
    static TL_HD float2 *sums(unsigned char *s) { return reinterpret_cast<float2 *>(s + u_bytes); }
};

/* T = 32, bf16, pass 2 / fused: 33,792 + 67,584 = 101,376 bytes — exactly the 99 KB a block may
 * opt into on sm_86 / sm_89 (sm_80: 163 KB, sm_90: 227 KB), the smallest of the architectures
 * built (CMAKE_CUDA_ARCHITECTURES 80 86 89 90). A wider tile or more channels per block would
 * not launch there. */
static_assert(tl_smem<32, __nv_bfloat16>::bytes(2) <= 101376,
              "tiled SS2D: shared memory over sm_86/sm_89's 99 KB per block");

/* Per-thread state that lives across phases: the entering state of each direction's segment. */
struct ss2d_tile_thread {
    float hin[SS2D_K];
};

/* Phase: the tile's u (th × tw pixels × CH channels) into shared memory, 16-byte pieces. */
template <int T, typename TU>
TL_HD void tl_load_u(const ss2d_tile_args<TU> &a, const ss2d_tile_pos &p, int tid,
                     unsigned char *smem)
{
    constexpr int VPP = SS2D_TILE_CH * (int)sizeof(TU) / 16; /* pieces per pixel */
    TU *us = tl_smem<T, TU>::u(smem);
    for (int v = tid; v < T * T * VPP; v += T * SS2D_TILE_CH) {
        const int px = v / VPP, part = v % VPP, r = px / T, x = px % T;
        if (r >= p.th || x >= p.tw) continue;
        const TU *src = a.u + (((size_t)p.b * a.H + p.y0 + r) * a.W + p.x0 + x) * a.Dn + p.d0;
        uint4 val = tl_ldg(reinterpret_cast<const uint4 *>(src) + part);
        *(reinterpret_cast<uint4 *>(us + (r * (T + 1) + x) * SS2D_TILE_CH) + part) = val;
    }
}

/* Phase: the y tile to global memory (float4 pieces). */
template <int T, typename TU>
TL_HD void tl_store_y(const ss2d_tile_args<TU> &a, const ss2d_tile_pos &p, int tid,
                      unsigned char *smem)
{
    constexpr int VPP = SS2D_TILE_CH / 4;
    const float *ys = tl_smem<T, TU>::y(smem);
    for (int v = tid; v < T * T * VPP; v += T * SS2D_TILE_CH) {
        const int px = v / VPP, part = v % VPP, r = px / T, x = px % T;
        if (r >= p.th || x >= p.tw) continue;
        float *dst = a.y + (((size_t)p.b * a.H + p.y0 + r) * a.W + p.x0 + x) * a.Dn + p.d0;
        reinterpret_cast<float4 *>(dst)[part] =
            reinterpret_cast<const float4 *>(ys + (r * (T + 1) + x) * SS2D_TILE_CH)[part];
    }
}

/* One segment of direction k seen by thread (seg, c): its start in the tile, its length and steps
 * in the u / y tiles and in the x_proj rows; ok = 0 when the segment lies outside the tile. */
struct tl_seg {
    int ok, n, r, x, tstep; /* tile start (r, x), step in tile elements (per channel row) */
    long long xstep;        /* step between x_proj rows, elements */
};
template <int T>
TL_HD tl_seg tl_segment(int k, int seg, const ss2d_tile_pos &p, int W, int Pp)
{
    tl_seg s;
    const long long row = (long long)SS2D_K * Pp; /* one pixel's x_proj rows */
    if (k == 0 || k == 2) {
        s.ok = seg < p.th, s.n = p.tw, s.r = seg;
        s.x = k == 0 ? 0 : p.tw - 1;
        s.tstep = k == 0 ? SS2D_TILE_CH : -SS2D_TILE_CH;
        s.xstep = k == 0 ? row : -row;
    } else {
        s.ok = seg < p.tw, s.n = p.th, s.x = seg;
        s.r = k == 1 ? 0 : p.th - 1;
        s.tstep = k == 1 ? (T + 1) * SS2D_TILE_CH : -(T + 1) * SS2D_TILE_CH;
        s.xstep = k == 1 ? row * W : -row * W;
    }
    return s;
}

/* Chunk index of thread segment `seg` of direction k in that direction's sequence (the order the
 * carry composes chunks in; see the top of this file). */
TL_HD size_t tl_chunk(int k, int seg, const ss2d_tile_pos &p, int H, int W, int ntx, int nty)
{
    if (k == 0 || k == 2) {
        size_t c = (size_t)(p.y0 + seg) * ntx + p.tx;
        return k == 0 ? c : (size_t)H * ntx - 1 - c;
    }
    size_t c = (size_t)(p.x0 + seg) * nty + p.ty;
    return k == 1 ? c : (size_t)W * nty - 1 - c;
}
/* Rows of chunks in the workspace: the larger of the two directions' chunk counts. */
TL_HD size_t tl_n_chunks(int H, int W, int ntx, int nty)
{
    size_t r = (size_t)H * ntx, c = (size_t)W * nty;
    return r > c ? r : c;
}

/* Walk one segment: n steps from tile element `ui` (u and y tiles share the layout) and x_proj row
 * `xr`. ymode 0: from the given h, accumulate Σ δA into s (pass 1); 1: write ⟨C, h⟩ + D·u into the
 * y tile; 2: add it. Step i + 1's operands are loaded before step i is computed. */
template <int RMAX, typename TU>
TL_HD void tl_walk(const TU *us, float *ys, int ui, int tstep, const TU *xr, long long xstep,
                   int n, int Pp, const float *wr, float bias, float Ak, float Dk, float &h,
                   float &s, int ymode)
{
    constexpr int JMAX = (RMAX + 2 + 7) / 8;
    const int nv = Pp / 8;
    uint4 cv[JMAX];
    TL_UNROLL
    for (int j = 0; j < JMAX; j++)
        cv[j] = j < nv ? tl_ldg(reinterpret_cast<const uint4 *>(xr) + j) : make_uint4(0, 0, 0, 0);
    float cu = tl_load1(us + ui);
    for (int i = 0; i < n; i++) {
        uint4 nx[JMAX];
        float nu = 0.0f;
        if (i + 1 < n) {
            const uint4 *row = reinterpret_cast<const uint4 *>(xr + xstep);
            TL_UNROLL
            for (int j = 0; j < JMAX; j++) nx[j] = j < nv ? tl_ldg(row + j) : make_uint4(0, 0, 0, 0);
            nu = tl_load1(us + ui + tstep);
        } else {
            TL_UNROLL
            for (int j = 0; j < JMAX; j++) nx[j] = make_uint4(0, 0, 0, 0);
        }
        float xv[JMAX * 8];
        TL_UNROLL
        for (int j = 0; j < JMAX; j++) tl_unpack<TU>(cv[j], xv + 8 * j);
        float dt = bias;
        TL_UNROLL
        for (int r = 0; r < RMAX; r++) dt = fmaf(wr[r], xv[2 + r], dt);
        dt = tl_softplus(dt);
        const float x = dt * Ak;
        h = tl_exp(x) * h + dt * xv[0] * cu;
        if (ymode == 0) s += x;
        else {
            const float o = xv[1] * h + Dk * cu;
            ys[ui] = ymode == 1 ? o : ys[ui] + o;
        }
        TL_UNROLL
        for (int j = 0; j < JMAX; j++) cv[j] = nx[j];
        cu = nu;
        ui += tstep;
        xr += xstep;
    }
}

/* Run direction k's segment of thread tid. ymode as tl_walk; returns (Σ δA, end state). */
template <int T, int RMAX, typename TU>
TL_HD float2 tl_run(const ss2d_tile_args<TU> &a, const ss2d_tile_pos &p, int k, int tid,
                    unsigned char *smem, float h, int ymode)
{
    const int seg = tid / SS2D_TILE_CH, c = tid % SS2D_TILE_CH, d = p.d0 + c;
    const tl_seg sg = tl_segment<T>(k, seg, p, a.W, a.Pp);
    if (!sg.ok) return make_float2(0.0f, 0.0f);
    const size_t kd = (size_t)k * a.Dn + d;
    float wr[RMAX];
    TL_UNROLL
    for (int r = 0; r < RMAX; r++) wr[r] = r < a.R ? a.dt_w[kd * a.R + r] : 0.0f;
    const TU *xr = a.xdbl +
                   ((((size_t)p.b * a.H + p.y0 + sg.r) * a.W + p.x0 + sg.x) * SS2D_K + k) * a.Pp;
    float s = 0.0f;
    tl_walk<RMAX, TU>(tl_smem<T, TU>::u(smem), tl_smem<T, TU>::y(smem),
                      (sg.r * (T + 1) + sg.x) * SS2D_TILE_CH + c, sg.tstep, xr, sg.xstep, sg.n,
                      a.Pp, wr, a.dt_b[kd], a.A[kd], a.Ds[kd], h, s, ymode);
    return make_float2(s, h);
}

template <typename TU> TL_HD size_t tl_ws_lane(const ss2d_tile_args<TU> &a, int b, int k, int d)
{
    return ((size_t)b * SS2D_K + k) * a.Dg + (d - a.d_base);
}

/* The block's phase sequence. MODE 1: pass 1 (segment summaries to the workspace). MODE 2: pass 2
 * from the workspace's entering states. MODE 0: fused (one tile = the whole image): summaries,
 * in-block carry and pass 2. Ex runs a phase for the block's threads and synchronises after it. */
/* (the executor is host-only in the test and device-only in the kernel: no cross-space checks) */
#pragma nv_exec_check_disable
template <int T, int RMAX, int MODE, typename TU, class Ex>
TL_HD void ss2d_tile_block(Ex &ex, const ss2d_tile_args<TU> &a, int tile, int cblock, int b,
                           unsigned char *smem)
{
    const ss2d_tile_pos p = tl_pos<T>(a, tile, cblock, b);
    const size_t n_seq = (size_t)a.B * SS2D_K * a.Dg;
    ex.phase([&](int tid) { tl_load_u<T>(a, p, tid, smem); });
    if (MODE == 1) {
        ex.phase([&](int tid) {
            const int seg = tid / SS2D_TILE_CH, d = p.d0 + tid % SS2D_TILE_CH;
            for (int k = 0; k < SS2D_K; k++) {
                if (!tl_segment<T>(k, seg, p, a.W, a.Pp).ok) continue;
                float2 r = tl_run<T, RMAX>(a, p, k, tid, smem, 0.0f, 0);
                float *o = a.ws + (tl_chunk(k, seg, p, a.H, a.W, a.ntx, a.nty) * n_seq +
                                   tl_ws_lane(a, b, k, d)) * 2;
                o[0] = r.x, o[1] = r.y;
            }
        });
        return;
    }
    if (MODE == 0) {
        /* summaries (K, T, CH) in the y tile's bytes; then per (k, c) the entering states in
         * chunk order (rows / columns ascending for k = 0 / 1, descending for 2 / 3) */
        ex.phase([&](int tid) {
            const int seg = tid / SS2D_TILE_CH, c = tid % SS2D_TILE_CH;
            for (int k = 0; k < SS2D_K; k++)
                if (tl_segment<T>(k, seg, p, a.W, a.Pp).ok)
                    tl_smem<T, TU>::sums(smem)[(k * T + seg) * SS2D_TILE_CH + c] =
                        tl_run<T, RMAX>(a, p, k, tid, smem, 0.0f, 0);
        });
        ex.phase([&](int tid) {
            if (tid >= SS2D_K * SS2D_TILE_CH) return;
            const int k = tid / SS2D_TILE_CH, c = tid % SS2D_TILE_CH;
            const int n = k == 0 || k == 2 ? p.th : p.tw;
            float2 *sm = tl_smem<T, TU>::sums(smem);
            float h = 0.0f;
            for (int i = 0; i < n; i++) {
                const int seg = k < 2 ? i : n - 1 - i;
                float2 &q = sm[(k * T + seg) * SS2D_TILE_CH + c];
                const float hl = q.y;
                q.y = h;
                h = tl_exp(q.x) * h + hl;
            }
        });
        ex.phase([&](int tid) {
            const int seg = tid / SS2D_TILE_CH, c = tid % SS2D_TILE_CH;
            ss2d_tile_thread &st = ex.st(tid);
            for (int k = 0; k < SS2D_K; k++)
                st.hin[k] = tl_segment<T>(k, seg, p, a.W, a.Pp).ok
                                ? tl_smem<T, TU>::sums(smem)[(k * T + seg) * SS2D_TILE_CH + c].y
                                : 0.0f;
        });
    } else {
        ex.phase([&](int tid) {
            const int seg = tid / SS2D_TILE_CH, d = p.d0 + tid % SS2D_TILE_CH;
            ss2d_tile_thread &st = ex.st(tid);
            for (int k = 0; k < SS2D_K; k++)
                st.hin[k] = tl_segment<T>(k, seg, p, a.W, a.Pp).ok
                                ? a.ws[(tl_chunk(k, seg, p, a.H, a.W, a.ntx, a.nty) * n_seq +
                                        tl_ws_lane(a, b, k, d)) * 2 + 1]
                                : 0.0f;
        });
    }
    /* pass 2: rows (0 writes, 2 adds), then columns (1, 3 add): the CPU's order 0, 2, 1, 3 */
    ex.phase([&](int tid) {
        ss2d_tile_thread &st = ex.st(tid);
        tl_run<T, RMAX>(a, p, 0, tid, smem, st.hin[0], 1);
        tl_run<T, RMAX>(a, p, 2, tid, smem, st.hin[2], 2);
    });
    ex.phase([&](int tid) {
        ss2d_tile_thread &st = ex.st(tid);
        tl_run<T, RMAX>(a, p, 1, tid, smem, st.hin[1], 2);
        tl_run<T, RMAX>(a, p, 3, tid, smem, st.hin[3], 2);
    });
    ex.phase([&](int tid) { tl_store_y<T>(a, p, tid, smem); });
}

/* The GPU executor: this thread's part, then __syncthreads. */
struct tl_dev_exec {
    ss2d_tile_thread t;
    TL_HD ss2d_tile_thread &st(int) { return t; }
    template <class F> TL_HD void phase(F &&f)
    {
#ifdef __CUDA_ARCH__
        f((int)threadIdx.x);
        __syncthreads();
#else
        (void)f;
#endif
    }
};

#endif
