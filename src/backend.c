/*
 * backend.c — the op names table and the CPU backend's op table (backend.h). The CPU ops
 * themselves live in ops_cpu.c, scan.c and ss2d.c; the CUDA table lives in cuda/.
 */
#include "backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <omp.h>

#include "ops.h"
#include "util.h"

static const char *const op_names[] = {
    "gemm",      "dwconv3", "conv3_s2", "patch_embed4", "patch_merge", "layernorm",
    "gelu",      "silu",    "mul",      "mean_pool",    "scan",        "ss2d_scan_merge",
};
_Static_assert(sizeof op_names / sizeof op_names[0] == OP_COUNT,
               "op_names must have one entry per enum wv_op");

const char *wv_op_name(enum wv_op op)
{
    return (unsigned)op < OP_COUNT ? op_names[op] : "?";
}

/* ---- CPU table: thin wrappers, the handle is unused. Entries call the fast twins
 * (ops_cpu_fast.c, AVX-512 or the plain op), tested against the plain oracles in test_ops.c. -- */

static int cpu_supports(const struct backend *be, enum wv_op op, const struct op_shape *s)
{
    return (unsigned)op < OP_COUNT;
}
static void *cpu_alloc(const struct backend *be, size_t bytes) { return wv_malloc(bytes ? bytes : 1, "backend buffer"); }
static void cpu_free(const struct backend *be, void *p) { free(p); }
static enum wv_status cpu_copy(const struct backend *be, void *dst, const void *src, size_t n)
{
    if (n) memcpy(dst, src, n);
    return WV_OK;
}
static enum wv_status cpu_sync(const struct backend *be) { return WV_OK; }

static void cpu_gemm(const struct backend *be, const float *x, const float *w, const float *bias,
                     float *y, size_t M, int K, int Nout, int acc)
{
    gemm_cpu(x, w, bias, y, M, K, Nout, acc);
}
static void cpu_dwconv3(const struct backend *be, const float *x, int xr0, int xr, const float *w,
                        const float *b, float *y, int yr0, int yr, int H, int W, int C, int silu)
{
    dwconv3_cpu_fast(x, xr0, xr, w, b, y, yr0, yr, H, W, C, silu);
}
static void cpu_conv3s2(const struct backend *be, const float *x, int xr0, int xr, const float *w,
                        const float *b, float *y, int yr0, int yr, int H, int W, int Ci, int Co)
{
    conv3s2_cpu_fast(x, xr0, xr, w, b, y, yr0, yr, H, W, Ci, Co);
}
static void cpu_patch_embed4(const struct backend *be, const float *x, int xr0, int xr,
                             const float *w, const float *b, float *y, int yr0, int yr, int H,
                             int W, int Ci, int Co)
{
    patch_embed4_cpu(x, xr0, xr, w, b, y, yr0, yr, H, W, Ci, Co);
}
static void cpu_patch_merge(const struct backend *be, const float *x, int xr0, int xr, float *y,
                            int yr0, int yr, int H, int W, int C)
{
    patch_merge_cpu(x, xr0, xr, y, yr0, yr, H, W, C);
}
static void cpu_layernorm(const struct backend *be, const float *x, const float *g,
                          const float *b, float *y, size_t M, int C)
{
    layernorm_cpu_fast(x, g, b, y, M, C);
}
static void cpu_gelu(const struct backend *be, const float *x, float *y, size_t n) { gelu_cpu_fast(x, y, n); }
static void cpu_silu(const struct backend *be, const float *x, float *y, size_t n) { silu_cpu_fast(x, y, n); }
static void cpu_mul(const struct backend *be, const float *a, const float *b, float *y, size_t n)
{
    mul_cpu(a, b, y, n);
}
static void cpu_mean_pool(const struct backend *be, const float *x, float *y, size_t L, int C)
{
    mean_pool_cpu(x, y, L, C);
}
static void cpu_scan(const struct backend *be, const float *u, const float *delta, const float *A,
                     const float *Bm, const float *Cm, const float *D, const float *db,
                     const float *h_in, float *y, float *h_out, int B, int KD, int G, int N,
                     int L, int sp)
{
    scan_cpu(u, delta, A, Bm, Cm, D, db, h_in, y, h_out, B, KD, G, N, L, sp);
}
static void cpu_ss2d(const struct backend *be, const float *u, const float *xdbl,
                     const float *dt_w, const float *dt_b, const float *A, const float *Ds,
                     float *y, int H, int W, int Dn, int R, int N)
{
    ss2d_scan_merge_cpu_fast(u, xdbl, dt_w, dt_b, A, Ds, y, H, W, Dn, R, N);
}

const struct backend_ops backend_cpu_ops = {
    .name = "cpu",
    .supports = cpu_supports,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_copy,
    .download = cpu_copy,
    .sync = cpu_sync,
    .gemm = cpu_gemm,
    .dwconv3 = cpu_dwconv3,
    .conv3s2 = cpu_conv3s2,
    .patch_embed4 = cpu_patch_embed4,
    .patch_merge = cpu_patch_merge,
    .layernorm = cpu_layernorm,
    .gelu = cpu_gelu,
    .silu = cpu_silu,
    .mul = cpu_mul,
    .mean_pool = cpu_mean_pool,
    .scan = cpu_scan,
    .ss2d_scan_merge = cpu_ss2d,
};

/* OpenBLAS (pthread build on Debian) — declared here to avoid depending on its header layout. */
void openblas_set_num_threads(int n);
char *openblas_get_corename(void);

/* Debian's OpenBLAS 0.3.21 is a DYNAMIC_ARCH build that picks its kernels from CPUID when the
 * library loads. On virtualised Xeons that report "Intel(R) Xeon(R) Processor" it falls back to
 * Prescott (SSE3) kernels: measured on the dev machine, sgemm 2048³ one thread 22 GFLOP/s as
 * Prescott vs 104 GFLOP/s as SkylakeX. The choice can only be changed through
 * OPENBLAS_CORETYPE before the library initialises, i.e. by re-executing the program — which only
 * a program's main() may decide to do (backend_blas_reexec, called first thing by the CLI and the
 * benchmark); the library itself never exec()s. */
const char *backend_blas_core(void)
{
    const char *core = openblas_get_corename();
    return core ? core : "unknown";
}

void backend_blas_reexec(char **argv)
{
    const char *core = openblas_get_corename();
    if (!argv || !argv[0] || !core || strcasecmp(core, "prescott") ||
        getenv("OPENBLAS_CORETYPE") || getenv("WV_NO_BLAS_REEXEC"))
        return;
    const char *want = NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) want = "SkylakeX";
    else if (__builtin_cpu_supports("avx2")) want = "Haswell";
    if (!want) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    /* Re-executing anyway, so libgomp's settings (read when it loads) can be chosen too: passive
     * waiting at barriers, unless the user chose a policy. Measured on the shared 2-core dev
     * machine (load 8–10), 224² batch 8: ratio to sgemm 60–65 % spinning (libgomp default) vs
     * 77–89 % passive (docs/benchmarks.md). */
    if (!getenv("OMP_WAIT_POLICY") && !getenv("GOMP_SPINCOUNT")) setenv("OMP_WAIT_POLICY", "passive", 1);
    fflush(NULL);
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with the slow kernels (the variable stays set for children) */
}

#ifdef WV_HAVE_CUDA
/* cuda/backend_cuda.h (a C++/CUDA header; the two entry points are plain C) */
enum wv_status backend_cuda_init(struct backend *be, int threads, int device_index);
void backend_cuda_destroy(struct backend *be);
#endif

enum wv_status backend_init(struct backend *be, enum wv_device device, int threads,
                            int device_index)
{
    memset(be, 0, sizeof *be);
    if (device == WV_DEVICE_CUDA) {
#ifdef WV_HAVE_CUDA
        return backend_cuda_init(be, threads, device_index); /* cuda/backend_cuda.cu */
#else
        return error_set(WV_EUNSUPPORTED,
                         "cuda backend: not built (this build has no CUDA support; use --device cpu)");
#endif
    }
    if (device != WV_DEVICE_CPU) return error_set(WV_EINVAL, "unknown device %d", (int)device);
    if (threads <= 0) threads = omp_get_num_procs();
    be->device = WV_DEVICE_CPU;
    be->threads = threads;
    be->device_index = 0;
    be->stream = NULL;
    be->ops = &backend_cpu_ops;
    omp_set_num_threads(threads);
    /* GEMMs are parallelised over fixed row blocks by gemm_cpu itself: one-thread sgemm per block
     * makes results independent of the thread count. */
    openblas_set_num_threads(1);
    return WV_OK;
}

void backend_destroy(struct backend *be)
{
#ifdef WV_HAVE_CUDA
    if (be && be->device == WV_DEVICE_CUDA) {
        backend_cuda_destroy(be);
        return;
    }
#endif
    if (be) memset(be, 0, sizeof *be);
}
