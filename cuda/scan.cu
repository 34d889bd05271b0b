/*
 * scan.cu — CUDA twin of scan_cpu (src/scan.h, VMAMBA_SPEC.md §4): selective scan with carried
 * state, any L, 64-bit indexing throughout (the official kernel's 32-bit strides overflow for s2
 * models at 8192²; spec §8).
 *
 * Design (version 1, chunked two-pass, the same scheme as ss2d.cu, where it is explained in full):
 *   pass 1  scan_chunk_kernel1<pass=1>: one thread per (b, ch, chunk) scans its chunk from h = 0
 *           and stores (Σ δA, h_local) per state — the chunk's decay in log space;
 *   carry   scan_carry_kernel1: per (b, ch, n), in fp64,
 *           h_start[c+1] = exp(Σ δA)[c]·h_start[c] + h_local[c];
 *   pass 2  scan_chunk_kernel1<pass=2>: re-scans each chunk from its exact carried h_start and
 *           writes y (and h_out from the last chunk).
 * One chunk (L <= chunk) skips pass 1 and the carry: a single sequential pass, bit-for-bit the
 * CPU loop's order. Math per step is the CPU's: h = exp(δA)·h + δ·B·u, y = Σ C·h + D·u, with
 * exp(δA) from scan_exp (scan.cuh: CUDA's expf is biased near 1, which a slowly decaying
 * channel accumulates).
 */
#include "scan.cuh"

#include "arena.h"
#include "ops_cuda.cuh"

__global__ void scan_carry_kernel1(float *ws, const float *h_in, size_t n_seq, size_t n_chunks)
{
    GRID_STRIDE_LOOP(j, n_seq)
    {
        double h = h_in ? (double)h_in[j] : 0.0;
#pragma unroll 4
        for (size_t c = 0; c < n_chunks; c++) {
            float *p = ws + (c * n_seq + j) * 2;
            double a = exp((double)p[0]), hl = (double)p[1];
            p[1] = (float)h;
            h = fma(a, h, hl);
        }
    }
}

/* PASS 1: chunk-local (a, h) into ws. PASS 2: from h_start (ws, or h_in when ws == NULL), y. */
template <int NMAX, int PASS>
__global__ void scan_chunk_kernel1(const float *u, const float *delta, const float *A,
                                   const float *Bm, const float *Cm, const float *D,
                                   const float *delta_bias, const float *h_in, float *y,
                                   float *h_out, int KD, int G, int N, size_t L, int softplus,
                                   size_t chunk, size_t n_chunks, size_t n_bc, float *ws)
{
    GRID_STRIDE_LOOP(i, n_bc * n_chunks)
    {
        size_t bc = i / n_chunks, c = i % n_chunks;
        int b = (int)(bc / KD), ch = (int)(bc % KD), g = ch / (KD / G);
        size_t t0 = c * chunk, t1 = t0 + chunk < L ? t0 + chunk : L;
        const float *Bg = Bm + ((size_t)b * G + g) * N * L;
        const float *Cg = Cm + ((size_t)b * G + g) * N * L;
        float h[NMAX], ls[NMAX], lc[NMAX], Ac[NMAX]; /* ls, lc: Σ δA over the chunk (Kahan) */
        size_t n_seq = n_bc * N;
#pragma unroll
        for (int n = 0; n < NMAX; n++) {
            Ac[n] = n < N ? A[(size_t)ch * N + n] : 0.0f;
            ls[n] = lc[n] = 0.0f;
            h[n] = 0.0f;
            if (PASS == 2 && n < N) {
                if (ws) h[n] = ws[(c * n_seq + bc * N + n) * 2 + 1];
                else if (h_in) h[n] = h_in[bc * N + n];
            }
        }
        float db = delta_bias ? delta_bias[ch] : 0.0f, Dc = D ? D[ch] : 0.0f;
        for (size_t t = t0; t < t1; t++) {
            float dt = delta[bc * L + t] + db;
            if (softplus) dt = softplus_dev(dt);
            float ut = u[bc * L + t], acc = 0.0f;
#pragma unroll
            for (int n = 0; n < NMAX; n++) {
                if (n < N) {
                    float x = dt * Ac[n], a = scan_exp(x);
                    h[n] = a * h[n] + dt * Bg[(size_t)n * L + t] * ut;
                    if (PASS == 1) kahan_add(ls[n], lc[n], x);
                    else acc += Cg[(size_t)n * L + t] * h[n];
                }
            }
            if (PASS == 2) y[bc * L + t] = acc + Dc * ut;
        }
#pragma unroll
        for (int n = 0; n < NMAX; n++) {
            if (n >= N) continue;
            if (PASS == 1) {
                ws[(c * n_seq + bc * N + n) * 2 + 0] = ls[n] - lc[n];
                ws[(c * n_seq + bc * N + n) * 2 + 1] = h[n];
            } else if (h_out && c == n_chunks - 1) {
                h_out[bc * N + n] = h[n];
            }
        }
    }
}

/* Chunk length: a whole 10k² stage-0 sequence (6.25 M tokens) must spread over every SM, yet a
 * chunk should be long enough that the recomputation in pass 2 and the carry stay cheap. 256
 * tokens gives 24k chunks per sequence at 10k² and a single chunk (no carry at all) below 257. */
extern "C" int scan_cuda_default_chunk(size_t L)
{
    (void)L;
    return VC_SCAN_CHUNK_DEFAULT;
}

extern "C" size_t scan_cuda_ws_bytes(int B, int KD, int N, int L, int chunk)
{
    size_t n_chunks = chunk > 0 ? ((size_t)L + chunk - 1) / chunk : 1;
    if (n_chunks <= 1) return 0;
    return n_chunks * (size_t)B * KD * N * 2 * sizeof(float);
}

extern "C" enum wv_status scan_cuda_ex(const float *u, const float *delta, const float *A,
                                       const float *Bm, const float *Cm, const float *D,
                                       const float *delta_bias, const float *h_in, float *y,
                                       float *h_out, int B, int KD, int G, int N, int L,
                                       int delta_softplus, int chunk, void *ws,
                                       cudaStream_t stream)
{
    if (B <= 0 || KD <= 0) return WV_OK;
    if (N < 0 || N > CUDA_SCAN_MAX_N)
        return error_set(WV_EUNSUPPORTED, "cuda scan: d_state %d, this build takes 0..%d", N,
                         CUDA_SCAN_MAX_N);
    if (G <= 0 || KD % G)
        return error_set(WV_EINVAL, "cuda scan: KD %d is not a multiple of G %d", KD, G);
    if (chunk <= 0) return error_set(WV_EINVAL, "cuda scan: chunk %d", chunk);
    if (L <= 0) { /* h_out = h_in */
        if (h_out && h_out != h_in) {
            size_t bytes = (size_t)B * KD * N * sizeof(float);
            if (h_in) CUDA_TRY("scan", cudaMemcpyAsync(h_out, h_in, bytes, cudaMemcpyDeviceToDevice, stream));
            else CUDA_TRY("scan", cudaMemsetAsync(h_out, 0, bytes, stream));
        }
        return WV_OK;
    }
    size_t n_bc = (size_t)B * KD, n_chunks = ((size_t)L + chunk - 1) / chunk;
    size_t work = n_bc * n_chunks;
    int own = 0;
    float *w = (float *)ws;
    enum wv_status st = scan_ws_begin(&w, scan_cuda_ws_bytes(B, KD, N, L, chunk), n_chunks, &own,
                                      "scan", stream);
    if (st) return st;
    SCAN_DISPATCH_N(N, NM, {
        if (n_chunks > 1) {
            scan_chunk_kernel1<NM, 1><<<cuda_blocks(work, 128), 128, 0, stream>>>(
                u, delta, A, Bm, Cm, D, delta_bias, h_in, y, h_out, KD, G, N, (size_t)L,
                delta_softplus, (size_t)chunk, n_chunks, n_bc, w);
            if (cudaPeekAtLastError() == cudaSuccess) {
                scan_carry_kernel1<<<cuda_blocks(n_bc * N, 128), 128, 0, stream>>>(
                    w, h_in, n_bc * N, n_chunks);
            }
        }
        if (cudaPeekAtLastError() == cudaSuccess)
            scan_chunk_kernel1<NM, 2><<<cuda_blocks(work, 128), 128, 0, stream>>>(
                u, delta, A, Bm, Cm, D, delta_bias, h_in, y, h_out, KD, G, N, (size_t)L,
                delta_softplus, (size_t)chunk, n_chunks, n_bc, n_chunks > 1 ? w : NULL);
    });
    return scan_ws_end(w, own, "scan_chunk_kernel1<<<>>>", "scan", stream);
}

extern "C" void scan_cuda(const float *u, const float *delta, const float *A, const float *Bm,
                          const float *Cm, const float *D, const float *delta_bias,
                          const float *h_in, float *y, float *h_out, int B, int KD, int G, int N,
                          int L, int delta_softplus, cudaStream_t stream)
{
    scan_cuda_ex(u, delta, A, Bm, Cm, D, delta_bias, h_in, y, h_out, B, KD, G, N, L,
                 delta_softplus, scan_cuda_default_chunk((size_t)L), NULL, stream);
}
