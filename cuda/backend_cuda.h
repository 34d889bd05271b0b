/*
 * backend_cuda.h — the CUDA backend's C API: the twins of every CPU op of src/backend.h
 * (`<op>_cuda(<same arguments>, cudaStream_t stream)`, STYLE.md 2.2), storage-dtype variants the
 * GPU model uses, and the backend table. Pointers are device memory. The twins return void like
 * the CPU ops; a failed launch or CUDA call records WV_ECUDA through error_set (src/error.h)
 * with the op name, statement, file, line and CUDA's message — check error_code() after the
 * stream is synchronised. Nothing here exits.
 *
 * Files: ops.cu (dense ops, cuBLAS GEMM), scan.cu (chunked selective scan), ss2d.cu (fused
 * cross-scan + scan + merge), backend_cuda.cu (the table), pool.cu, vmamba.cu (whole model).
 */
#ifndef WV_BACKEND_CUDA_H
#define WV_BACKEND_CUDA_H

#include <stddef.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "src/backend.h"
#include "src/device_select.h"
#include "src/error.h"

/* ---- twins of backend.h (same arguments, same shapes, + stream) ------------------------------ */
void gemm_cuda(const float *x, const float *w, const float *bias, float *y, size_t M, int K,
               int Nout, int accumulate, cudaStream_t stream);
void dwconv3_cuda(const float *x, int x_row0, int x_rows, const float *w, const float *bias,
                  float *y, int y_row0, int y_rows, int H, int W, int C, int silu,
                  cudaStream_t stream);
void conv3s2_cuda(const float *x, int x_row0, int x_rows, const float *w, const float *bias,
                  float *y, int y_row0, int y_rows, int H, int W, int Ci, int Co,
                  cudaStream_t stream);
void patch_embed4_cuda(const float *x, int x_row0, int x_rows, const float *w, const float *bias,
                       float *y, int y_row0, int y_rows, int H, int W, int Ci, int Co,
                       cudaStream_t stream);
void patch_merge_cuda(const float *x, int x_row0, int x_rows, float *y, int y_row0, int y_rows,
                      int H, int W, int C, cudaStream_t stream);
void layernorm_cuda(const float *x, const float *gamma, const float *beta, float *y, size_t M,
                    int C, cudaStream_t stream);
void gelu_cuda(const float *x, float *y, size_t n, cudaStream_t stream);
void silu_cuda(const float *x, float *y, size_t n, cudaStream_t stream);
void mul_cuda(const float *a, const float *b, float *y, size_t n, cudaStream_t stream);
void mean_pool_cuda(const float *x, float *y, size_t L, int C, cudaStream_t stream);
void scan_cuda(const float *u, const float *delta, const float *A, const float *Bm,
               const float *Cm, const float *D, const float *delta_bias, const float *h_in,
               float *y, float *h_out, int B, int KD, int G, int N, int L, int delta_softplus,
               cudaStream_t stream);
void ss2d_scan_merge_cuda(const float *u, const float *xdbl, const float *dt_w, const float *dt_b,
                          const float *A, const float *Ds, float *y, int H, int W, int Dn, int R,
                          int N, cudaStream_t stream);

/* Largest d_state the scan kernels take (register-resident state; VMamba uses 1 and 16). */
#define CUDA_SCAN_MAX_N 64

/* ---- variants with explicit knobs (tests, the model) ----------------------------------------- */

/* GEMM with operands in a storage dtype: x (M, K) and w (Nout, K) are float / bf16 / fp16 per
 * `dt`, accumulation fp32, y (M, Nout) fp32 [+]= x·wᵀ + bias (bias fp32 or NULL). tf32 != 0 lets
 * an fp32 GEMM use TF32 tensor cores (ignored for bf16/fp16). */
enum wv_status gemm_cuda_ex(const void *x, const void *w, enum wv_dtype dt, int tf32,
                            const float *bias, float *y, size_t M, int K, int Nout,
                            int accumulate, cudaStream_t stream);

/* Convert n fp32 values to `dt` (a copy for f32). */
enum wv_status convert_f32_cuda(const float *x, void *y, enum wv_dtype dt, size_t n,
                                cudaStream_t stream);

/* scan_cuda with a chosen chunk length (tokens per chunk, >= 1) and caller workspace of
 * scan_cuda_ws_bytes(...) bytes (NULL: allocated stream-ordered inside). */
size_t scan_cuda_ws_bytes(int B, int KD, int N, int L, int chunk);
enum wv_status scan_cuda_ex(const float *u, const float *delta, const float *A, const float *Bm,
                            const float *Cm, const float *D, const float *delta_bias,
                            const float *h_in, float *y, float *h_out, int B, int KD, int G,
                            int N, int L, int delta_softplus, int chunk, void *ws,
                            cudaStream_t stream);
/* Default chunk length of scan_cuda / ss2d_scan_merge_cuda for a sequence of L tokens. */
int scan_cuda_default_chunk(size_t L);

/* ss2d_scan_merge_cuda with a chosen chunk length and caller workspace of
 * ss2d_cuda_ws_bytes(H, W, Dn, N, chunk) bytes (NULL: allocated stream-ordered inside). */
size_t ss2d_cuda_ws_bytes(int H, int W, int Dn, int N, int chunk);
enum wv_status ss2d_scan_merge_cuda_ex(const float *u, const float *xdbl, const float *dt_w,
                                       const float *dt_b, const float *A, const float *Ds,
                                       float *y, int H, int W, int Dn, int R, int N, int chunk,
                                       void *ws, cudaStream_t stream);

/* SS2D over B images at once (the model's path): u (B, H, W, Dn) and xdbl (B, H, W, 4, R+2N)
 * stored as u_dt (f32: the exact formulas of the CPU; bf16/f16: fast exp/log, see ss2d.cu), y
 * (B, H, W, Dn) fp32; ws of vc_ss2d_ws_bytes(B, ...) bytes (cuda/arena.h) or NULL. */
enum wv_status ss2d_scan_merge_batch_cuda(const void *u, enum wv_dtype u_dt, const void *xdbl,
                                          const float *dt_w, const float *dt_b, const float *A,
                                          const float *Ds, float *y, int B, int H, int W, int Dn,
                                          int R, int N, int chunk, void *ws, cudaStream_t stream);

/* The fast SS2D (bf16/f16, d_state 1, dt_rank <= 64): xdbl rows packed as (B, C, dt_low, 0…)
 * with `pitch` (a multiple of 8) elements per (pixel, direction); see cuda/ss2d.cu. `hook`
 * (optional) is called on the host before each phase's launches (the model's section timing). */
enum ss2d_phase { SS2D_PHASE_PASS1, SS2D_PHASE_CARRY, SS2D_PHASE_ROWS, SS2D_PHASE_COLS };
typedef void (*ss2d_hook_fn)(void *user, enum ss2d_phase phase);
enum wv_status ss2d_scan_merge_fast_cuda(const void *u, enum wv_dtype dt, const void *xdbl,
                                         int pitch, const float *dt_w, const float *dt_b,
                                         const float *A, const float *Ds, float *y, int B, int H,
                                         int W, int Dn, int R, int chunk, void *ws,
                                         ss2d_hook_fn hook, void *hook_user, cudaStream_t stream);
/* The tiled SS2D (cuda/ss2d_tile.cuh): same operands as the fast path (bf16 only), tile side
 * `tile` (8 or 16: the map must fit one tile; 32: any size) and `group` channels per launch
 * (vc_scan_tile / vc_scan_tile_group); ws holds vc_ss2d_tile_ws_bytes(B, H, W, group, tile) bytes
 * (or NULL: allocated here). The phases it reports: PASS1, CARRY and ROWS (pass 2 / fused). */
enum wv_status ss2d_scan_merge_tile_cuda(const void *u, enum wv_dtype dt, const void *xdbl,
                                         int pitch, const float *dt_w, const float *dt_b,
                                         const float *A, const float *Ds, float *y, int B, int H,
                                         int W, int Dn, int R, int tile, int group, void *ws,
                                         ss2d_hook_fn hook, void *hook_user, cudaStream_t stream);

/* Destroy the calling thread's cuBLAS handles (created on first GEMM). Optional; lets tools end
 * with no device allocation outstanding (compute-sanitizer --leak-check). */
void cuda_ops_release_thread(void);

/* ---- the backend table ---------------------------------------------------------------------- */
extern const struct backend_ops backend_cuda_ops;

/* Fill *be for CUDA device `device_index`: select it, create a non-blocking stream. threads is
 * kept for host-side work. WV_EUNSUPPORTED when no such device. */
enum wv_status backend_cuda_init(struct backend *be, int threads, int device_index);
void backend_cuda_destroy(struct backend *be);

#ifdef __cplusplus
}
#endif

#endif
