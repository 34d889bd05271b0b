/*
 * backend.h — the op table the VMamba model is written against (DESIGN.md "The backend
 * interface", STYLE.md 2.2), and the CPU ops that are its contract and its oracle.
 *
 * Ops are enumerated once (enum wv_op, ending in OP_COUNT; names table checked by a
 * _Static_assert in backend.c). Each op has a CPU reference `<op>_cpu(...)` declared here (dense
 * ops, src/ops_cpu.c), in src/scan.h (OP_SCAN, src/scan.c) or src/ss2d.h (OP_SS2D_SCAN_MERGE,
 * src/ss2d.c). The CUDA twins in cuda/ are `<op>_cuda(<same arguments>, cudaStream_t stream)`:
 * exactly these argument lists plus a trailing stream. Keep these prototypes stable.
 *
 * Layout: every activation is channels-last, (B, H, W, C) with C fastest ("NHWC"); parameters are
 * used as stored in official checkpoints (VMAMBA_SPEC.md §2, §7): a Linear weight is (out, in),
 * a conv weight (Co, Ci, kh, kw). Shape letters follow VMAMBA_SPEC.md: B batch, H, W map size,
 * C channels, Dn = d_inner, N = d_state, R = dt_rank, K = 4 directions, L = H·W, G groups.
 *
 * Row bands: the spatial ops take a band of input rows and produce a band of output rows, so a
 * 10,000² region never needs a full-size intermediate (VMAMBA_SPEC.md §8). A band is given as
 * (pointer to its first row, index of that row in the full map, number of rows). Passing the
 * whole map (row0 = 0, rows = H) is the plain case. One image at a time: loop over B outside.
 *
 * Determinism: every CPU op gives bit-identical results for any thread count (work is split
 * into fixed-size blocks, never by thread count; GEMMs call single-threaded sgemm per block).
 */
#ifndef WV_BACKEND_H
#define WV_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "scan.h"
#include "ss2d.h"

/* ---- the ops, enumerated once ----------------------------------------------------------- */
enum wv_op {
    OP_GEMM,            /* y (M, Nout) [+]= x (M, K) · wᵀ + bias, w (Nout, K)            */
    OP_DWCONV3,         /* depthwise 3×3, stride 1, pad 1 (+bias) (+SiLU), NHWC          */
    OP_CONV3_S2,        /* dense 3×3, stride 2, pad 1, +bias, NHWC; out ⌈H/2⌉×⌈W/2⌉       */
    OP_PATCH_EMBED4,    /* dense 4×4, stride 4, no pad, +bias (v0 stem); out ⌊H/4⌋×⌊W/4⌋  */
    OP_PATCH_MERGE,     /* v0 PatchMerging2D gather: 2×2 → 4C, zero pad bottom/right      */
    OP_LAYERNORM,       /* LayerNorm over the last (channel) dim, eps 1e-5, affine        */
    OP_GELU,            /* exact erf GELU, elementwise                                     */
    OP_SILU,            /* x·sigmoid(x), elementwise                                       */
    OP_MUL,             /* y = a ⊙ b, elementwise (v0 z gate)                              */
    OP_MEAN_POOL,       /* mean over pixels: (L, C) → (C)                                  */
    OP_SCAN,            /* selective scan with carried state (src/scan.h)                  */
    OP_SS2D_SCAN_MERGE, /* 4-direction cross-scan + dt_proj + scan + cross-merge (ss2d.h)  */
    OP_COUNT
};

/* Stable lower-case name of an op ("gemm", "ss2d_scan_merge"); "?" when out of range. */
const char *wv_op_name(enum wv_op op);

/* ---- CPU reference ops (src/ops_cpu.c); the contract of the CUDA twins -------------------- */

/* OP_GEMM. y (M, Nout) = x (M, K) · wᵀ + bias, or y += ... when accumulate != 0 (residuals).
 *   x    (M, K) row-major            — M pixels (or tokens), K input channels
 *   w    (Nout, K) row-major         — an official Linear / 1×1 conv weight (out, in)
 *   bias (Nout) or NULL
 *   y    (M, Nout) row-major; must not alias x
 * Fixed row blocks of single-threaded sgemm, parallel over blocks with OpenMP. */
void gemm_cpu(const float *x, const float *w, const float *bias, float *y, size_t M, int K,
              int Nout, int accumulate);

/* OP_DWCONV3. Depthwise 3×3 conv, stride 1, zero padding 1, optional bias, optional SiLU.
 *   x    rows [x_row0, x_row0 + x_rows) of an (H, W, C) map, C fastest; must cover the rows
 *        [max(0, y_row0-1), min(H, y_row0+y_rows+1))
 *   w    (C, 1, 3, 3) as stored (per channel 9 taps, row-major ky, kx)
 *   bias (C) or NULL
 *   y    rows [y_row0, y_row0 + y_rows) of the (H, W, C) output; must not alias x
 *   silu 1: y = SiLU(conv(x)) (the SS2D conv is always followed by SiLU) */
void dwconv3_cpu(const float *x, int x_row0, int x_rows, const float *w, const float *bias,
                 float *y, int y_row0, int y_rows, int H, int W, int C, int silu);

/* OP_CONV3_S2. Dense 3×3 conv, stride 2, zero padding 1, with bias (stem, downsample v3).
 *   x    rows [x_row0, x_row0 + x_rows) of an (H, W, Ci) map; must cover input rows
 *        [max(0, 2·y_row0-1), min(H, 2·(y_row0+y_rows-1)+2))
 *   w    (Co, Ci, 3, 3) as stored;  bias (Co) or NULL
 *   y    rows [y_row0, y_row0 + y_rows) of the (Ho, Wo, Co) output, Ho = ⌈H/2⌉, Wo = ⌈W/2⌉ */
void conv3s2_cpu(const float *x, int x_row0, int x_rows, const float *w, const float *bias,
                 float *y, int y_row0, int y_rows, int H, int W, int Ci, int Co);

/* OP_PATCH_EMBED4. Dense 4×4 conv, stride 4, no padding, with bias (v0 stem). Ho = ⌊H/4⌋,
 * Wo = ⌊W/4⌋ (remainder dropped, as the official Conv2d does).
 *   x    rows [x_row0, x_row0 + x_rows) of an (H, W, Ci) map; must cover [4·y_row0, 4·(y_row0+y_rows))
 *   w    (Co, Ci, 4, 4);  bias (Co) or NULL
 *   y    rows [y_row0, y_row0 + y_rows) of the (Ho, Wo, Co) output */
void patch_embed4_cpu(const float *x, int x_row0, int x_rows, const float *w, const float *bias,
                      float *y, int y_row0, int y_rows, int H, int W, int Ci, int Co);

/* OP_PATCH_MERGE. v0 PatchMerging2D gather (VMAMBA_SPEC.md §5): output pixel (i, j) holds the
 * channels of x(2i,2j), x(2i+1,2j), x(2i,2j+1), x(2i+1,2j+1) in that order (4C), zeros where the
 * pixel lies beyond an odd H/W. Ho = ⌈H/2⌉, Wo = ⌈W/2⌉. LayerNorm(4C) and the reduction Linear
 * follow as OP_LAYERNORM / OP_GEMM.
 *   x    rows [x_row0, x_row0 + x_rows) of an (H, W, C) map; must cover [2·y_row0, min(H, 2·(y_row0+y_rows)))
 *   y    rows [y_row0, y_row0 + y_rows) of the (Ho, Wo, 4C) output */
void patch_merge_cpu(const float *x, int x_row0, int x_rows, float *y, int y_row0, int y_rows,
                     int H, int W, int C);

/* OP_LAYERNORM. Per row of C values: y = (x - mean) / sqrt(var + 1e-5) · gamma + beta,
 * biased variance. x, y (M, C); y may equal x (in place). */
void layernorm_cpu(const float *x, const float *gamma, const float *beta, float *y, size_t M,
                   int C);

/* OP_GELU: y = x·½(1 + erf(x/√2)). OP_SILU: y = x / (1 + e^−x). n elements; y may equal x. */
void gelu_cpu(const float *x, float *y, size_t n);
void silu_cpu(const float *x, float *y, size_t n);

/* OP_MUL: y = a ⊙ b, n elements; y may equal a or b. */
void mul_cpu(const float *a, const float *b, float *y, size_t n);

/* OP_MEAN_POOL: y (C) = mean over L rows of x (L, C). */
void mean_pool_cpu(const float *x, float *y, size_t L, int C);

/* ---- the table ------------------------------------------------------------------------------- */

enum wv_device { WV_DEVICE_CPU, WV_DEVICE_CUDA };

struct backend;

/* Sizes a `supports` query may look at (unused fields 0). */
struct op_shape {
    int64_t M;            /* rows of a GEMM / pixels */
    int K, Nout;          /* GEMM inner and output dims */
    int H, W, C, Co;      /* map size and channels */
    int d_state, dt_rank; /* N, R of the scan */
};

/* One entry per op, same arguments as the CPU op with the backend handle first (the CUDA
 * backend supplies its stream from the handle). Pointers are host memory for the CPU backend
 * and device memory (from `alloc`) for CUDA. */
struct backend_ops {
    const char *name; /* "cpu", "cuda" */
    int (*supports)(const struct backend *be, enum wv_op op, const struct op_shape *s);
    void *(*alloc)(const struct backend *be, size_t bytes); /* NULL + error on failure */
    void (*free)(const struct backend *be, void *p);
    enum wv_status (*upload)(const struct backend *be, void *dst, const void *src, size_t bytes);
    enum wv_status (*download)(const struct backend *be, void *dst, const void *src, size_t bytes);
    enum wv_status (*sync)(const struct backend *be);

    void (*gemm)(const struct backend *be, const float *x, const float *w, const float *bias,
                 float *y, size_t M, int K, int Nout, int accumulate);
    void (*dwconv3)(const struct backend *be, const float *x, int x_row0, int x_rows,
                    const float *w, const float *bias, float *y, int y_row0, int y_rows, int H,
                    int W, int C, int silu);
    void (*conv3s2)(const struct backend *be, const float *x, int x_row0, int x_rows,
                    const float *w, const float *bias, float *y, int y_row0, int y_rows, int H,
                    int W, int Ci, int Co);
    void (*patch_embed4)(const struct backend *be, const float *x, int x_row0, int x_rows,
                         const float *w, const float *bias, float *y, int y_row0, int y_rows,
                         int H, int W, int Ci, int Co);
    void (*patch_merge)(const struct backend *be, const float *x, int x_row0, int x_rows,
                        float *y, int y_row0, int y_rows, int H, int W, int C);
    void (*layernorm)(const struct backend *be, const float *x, const float *gamma,
                      const float *beta, float *y, size_t M, int C);
    void (*gelu)(const struct backend *be, const float *x, float *y, size_t n);
    void (*silu)(const struct backend *be, const float *x, float *y, size_t n);
    void (*mul)(const struct backend *be, const float *a, const float *b, float *y, size_t n);
    void (*mean_pool)(const struct backend *be, const float *x, float *y, size_t L, int C);
    void (*scan)(const struct backend *be, const float *u, const float *delta, const float *A,
                 const float *Bm, const float *Cm, const float *D, const float *delta_bias,
                 const float *h_in, float *y, float *h_out, int B, int KD, int G, int N, int L,
                 int delta_softplus);
    void (*ss2d_scan_merge)(const struct backend *be, const float *u, const float *xdbl,
                            const float *dt_w, const float *dt_b, const float *A, const float *Ds,
                            float *y, int H, int W, int Dn, int R, int N);
};

/* A backend handle: which device, how many CPU threads, which GPU. Plain struct; the caller
 * owns it (backend_init fills it). */
struct backend {
    enum wv_device device;
    int threads;       /* CPU threads for OpenMP regions (>= 1) */
    int device_index;  /* CUDA device ordinal (0 for CPU) */
    void *stream;      /* cudaStream_t for CUDA, NULL for CPU */
    const struct backend_ops *ops;
};

/* The CPU backend's table (always available). */
extern const struct backend_ops backend_cpu_ops;

/* Fill *be for `device`. threads <= 0 means "all cores". CPU: sets the OpenMP thread count and
 * OpenBLAS to one thread (the GEMM op parallelises over fixed row blocks itself, so results are
 * identical for any thread count). CUDA: WV_EUNSUPPORTED with a clear message when this build
 * has no CUDA backend or no device is available. */
enum wv_status backend_init(struct backend *be, enum wv_device device, int threads,
                            int device_index);
void backend_destroy(struct backend *be);

/* The OpenBLAS kernel set in use ("SkylakeX", "Haswell", "Prescott", ...), for reports. */
const char *backend_blas_core(void);

/* For a program's main() only, first thing, before any thread exists: when OpenBLAS detected
 * Prescott (SSE3) kernels on a CPU with AVX-512 / AVX2 (Debian's OpenBLAS 0.3.21 on virtualised
 * Xeons; ~5× slower sgemm), re-execute the program (/proc/self/exe with argv) once with
 * OPENBLAS_CORETYPE=SkylakeX / Haswell, and OMP_WAIT_POLICY=passive unless OMP_WAIT_POLICY or
 * GOMP_SPINCOUNT is set (threads sleep at barriers instead of spinning: measured better on the
 * shared dev machine). Does nothing (and returns) when the core is not Prescott,
 * OPENBLAS_CORETYPE or WV_NO_BLAS_REEXEC is set, or the exec fails; prints nothing. Libraries and
 * embedders never need it: backend_init does not exec. */
void backend_blas_reexec(char **argv);

#endif
