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
 * - Coalescing. Threads of a block are consecutive channels d of one (k, chunk): at every step a
 *   warp reads 32 consecutive floats of u and writes 32 of y, and xdbl[p, k, ·] is a broadcast.
 * - Merge without atomics, deterministic: pass 2 runs once per direction in the order 0, 2, 1, 3
 *   (the CPU's order); the first overwrites y, the others add. Chunks of one direction cover
 *   disjoint pixels, so there are no races.
 * - 64-bit positions and offsets (L·Dn exceeds 2^32 for s2 models at 8192²).
 * - Per-step decay from scan_exp (scan.cuh), not expf: CUDA's expf is biased near 1.
 * - Differences to the CPU come only from the carry at chunk boundaries (and FMA contraction):
 *   ~1e-6 relative. One chunk (L <= chunk) reproduces the CPU loop's order.
 */
#include "arena.h"
#include "ops_cuda.cuh"
#include "scan.cuh"

#include "src/ss2d.h"

/* Channels per block (threads); a block owns one (direction, chunk) and 64 channels. */
#define SS2D_THREADS 64
/* Largest dt_rank held in shared memory (VMamba-B stage 3 uses 64; 128·64·4 B = 32 KB < 48 KB). */
#define SS2D_MAX_R 128

template <int NMAX, int PASS>
__global__ void __launch_bounds__(SS2D_THREADS)
ss2d_chunk_kernel1(const float *u, const float *xdbl, const float *dt_w, const float *dt_b,
                   const float *A, const float *Ds, float *y, int H, int W, int Dn, int R, int N,
                   size_t chunk, size_t n_chunks, int k_only, int accumulate, float *ws)
{
    extern __shared__ float wt[]; /* (R, SS2D_THREADS): dt_w of this block's channels */
    const size_t L = (size_t)H * W;
    const int P = R + 2 * N;
    const size_t c = blockIdx.x;
    const int d = blockIdx.y * SS2D_THREADS + threadIdx.x;
    const int k = PASS == 1 ? (int)blockIdx.z : k_only;
    for (int r = 0; r < R; r++)
        wt[r * SS2D_THREADS + threadIdx.x] = d < Dn ? dt_w[((size_t)k * Dn + d) * R + r] : 0.0f;
    __syncthreads();
    if (d >= Dn) return;
    const size_t n_seq = (size_t)SS2D_K * N * Dn; /* lanes of the carry: (k, n, d) */
    float h[NMAX], ls[NMAX], lc[NMAX], Ac[NMAX]; /* ls, lc: Σ δA over the chunk (Kahan) */
#pragma unroll
    for (int n = 0; n < NMAX; n++) {
        Ac[n] = n < N ? A[((size_t)k * Dn + d) * N + n] : 0.0f;
        ls[n] = lc[n] = 0.0f;
        h[n] = 0.0f;
        if (PASS == 2 && ws && n < N) h[n] = ws[(c * n_seq + ((size_t)k * N + n) * Dn + d) * 2 + 1];
    }
    const float bias = dt_b[(size_t)k * Dn + d], Dk = Ds[(size_t)k * Dn + d];
    size_t l0 = c * chunk, l1 = l0 + chunk < L ? l0 + chunk : L;
    for (size_t l = l0; l < l1; l++) {
        size_t p;
        if (k == 0) p = l;
        else if (k == 2) p = L - 1 - l;
        else {
            size_t q = k == 1 ? l : L - 1 - l; /* q = w·H + h */
            p = (q % H) * W + q / H;
        }
        const float *xd = xdbl + (p * SS2D_K + k) * P;
        float dt = 0.0f;
        for (int r = 0; r < R; r++) dt += wt[r * SS2D_THREADS + threadIdx.x] * xd[r];
        dt = softplus_dev(dt + bias);
        float up = u[p * Dn + d], acc = 0.0f;
#pragma unroll
        for (int n = 0; n < NMAX; n++) {
            if (n < N) {
                float x = dt * Ac[n], a = scan_exp(x);
                h[n] = a * h[n] + dt * xd[R + n] * up;
                if (PASS == 1) kahan_add(ls[n], lc[n], x);
                else acc += xd[R + N + n] * h[n];
            }
        }
        if (PASS == 2) {
            float out = acc + Dk * up;
            if (accumulate) y[p * Dn + d] += out;
            else y[p * Dn + d] = out;
        }
    }
    if (PASS == 1) {
#pragma unroll
        for (int n = 0; n < NMAX; n++) {
            if (n >= N) continue;
            float *q = ws + (c * n_seq + ((size_t)k * N + n) * Dn + d) * 2;
            q[0] = ls[n] - lc[n];
            q[1] = h[n];
        }
    }
}

extern "C" size_t ss2d_cuda_ws_bytes(int H, int W, int Dn, int N, int chunk)
{
    static_assert(SS2D_K == 4, "vc_ss2d_ws_bytes assumes 4 directions");
    return vc_ss2d_ws_bytes(H, W, Dn, N, chunk);
}

extern "C" enum wv_status ss2d_scan_merge_cuda_ex(const float *u, const float *xdbl,
                                                  const float *dt_w, const float *dt_b,
                                                  const float *A, const float *Ds, float *y,
                                                  int H, int W, int Dn, int R, int N, int chunk,
                                                  void *ws, cudaStream_t stream)
{
    size_t L = (size_t)H * W;
    if (L == 0 || Dn <= 0) return WV_OK;
    if (N < 1 || N > CUDA_SCAN_MAX_N)
        return error_set(WV_EUNSUPPORTED, "cuda ss2d_scan_merge: d_state %d, this build takes 1..%d",
                         N, CUDA_SCAN_MAX_N);
    if (R < 0 || R > SS2D_MAX_R)
        return error_set(WV_EUNSUPPORTED, "cuda ss2d_scan_merge: dt_rank %d, this build takes 0..%d",
                         R, SS2D_MAX_R);
    if (chunk <= 0) return error_set(WV_EINVAL, "cuda ss2d_scan_merge: chunk %d", chunk);
    size_t n_chunks = (L + chunk - 1) / chunk;
    if (n_chunks > 0x7fffffffu)
        return error_set(WV_EUNSUPPORTED, "cuda ss2d_scan_merge: %zu chunks", n_chunks);
    unsigned dblocks = (unsigned)((Dn + SS2D_THREADS - 1) / SS2D_THREADS);
    size_t shmem = (size_t)(R > 0 ? R : 1) * SS2D_THREADS * sizeof(float);
    float *w = (float *)ws;
    int own = 0;
    if (n_chunks > 1 && !w) {
        CUDA_TRY("ss2d_scan_merge",
                 cudaMallocAsync((void **)&w, ss2d_cuda_ws_bytes(H, W, Dn, N, chunk), stream));
        own = 1;
    }
    static const int korder[SS2D_K] = {0, 2, 1, 3}; /* the CPU's merge order */
    SCAN_DISPATCH_N(N, NM, {
        if (n_chunks > 1) {
            dim3 g1((unsigned)n_chunks, dblocks, SS2D_K);
            ss2d_chunk_kernel1<NM, 1><<<g1, SS2D_THREADS, shmem, stream>>>(
                u, xdbl, dt_w, dt_b, A, Ds, y, H, W, Dn, R, N, (size_t)chunk, n_chunks, 0, 0, w);
            if (cudaPeekAtLastError() == cudaSuccess) {
                size_t lanes = (size_t)SS2D_K * N * Dn;
                scan_carry_kernel1<<<cuda_blocks(lanes, 128), 128, 0, stream>>>(w, NULL, lanes,
                                                                               n_chunks);
            }
        }
        dim3 g2((unsigned)n_chunks, dblocks, 1);
        for (int kk = 0; kk < SS2D_K && cudaPeekAtLastError() == cudaSuccess; kk++)
            ss2d_chunk_kernel1<NM, 2><<<g2, SS2D_THREADS, shmem, stream>>>(
                u, xdbl, dt_w, dt_b, A, Ds, y, H, W, Dn, R, N, (size_t)chunk, n_chunks,
                korder[kk], kk > 0, n_chunks > 1 ? w : NULL);
    });
    enum wv_status st = WV_OK;
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        st = cuda_fail(e, "ss2d_chunk_kernel1<<<>>>", "ss2d_scan_merge", __FILE__, __LINE__);
    if (own) {
        cudaError_t fe = cudaFreeAsync(w, stream);
        if (fe != cudaSuccess && st == WV_OK)
            st = cuda_fail(fe, "cudaFreeAsync", "ss2d_scan_merge", __FILE__, __LINE__);
    }
    return st;
}

extern "C" void ss2d_scan_merge_cuda(const float *u, const float *xdbl, const float *dt_w,
                                     const float *dt_b, const float *A, const float *Ds, float *y,
                                     int H, int W, int Dn, int R, int N, cudaStream_t stream)
{
    ss2d_scan_merge_cuda_ex(u, xdbl, dt_w, dt_b, A, Ds, y, H, W, Dn, R, N,
                            scan_cuda_default_chunk((size_t)H * W), NULL, stream);
}
