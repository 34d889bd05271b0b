/*
 * backend_cuda.cu — the CUDA backend's op table (struct backend_ops of src/backend.h): thin
 * wrappers passing the handle's stream to the twins in ops.cu, scan.cu, ss2d.cu, plus device
 * memory, copies and init. The whole-model GPU path (vmamba.cu) calls the kernels directly.
 */
#include "ops_cuda.cuh"

#include <string.h>

#define STREAM(be) ((cudaStream_t)(be)->stream)

static int cu_supports(const struct backend *be, enum wv_op op, const struct op_shape *s)
{
    if ((unsigned)op >= OP_COUNT) return 0;
    if ((op == OP_SCAN || op == OP_SS2D_SCAN_MERGE) && s && s->d_state > CUDA_SCAN_MAX_N) return 0;
    if (op == OP_SS2D_SCAN_MERGE && s && s->dt_rank > 128) return 0;
    return 1;
}

static void *cu_alloc(const struct backend *be, size_t bytes)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        cuda_fail(e, "cudaMalloc", "alloc", __FILE__, __LINE__);
        return NULL;
    }
    return p;
}
static void cu_free(const struct backend *be, void *p)
{
    if (p) cudaFree(p);
}
static enum wv_status cu_upload(const struct backend *be, void *dst, const void *src, size_t n)
{
    if (!n) return WV_OK;
    CUDA_TRY("upload", cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, STREAM(be)));
    CUDA_TRY("upload", cudaStreamSynchronize(STREAM(be)));
    return WV_OK;
}
static enum wv_status cu_download(const struct backend *be, void *dst, const void *src, size_t n)
{
    if (!n) return WV_OK;
    CUDA_TRY("download", cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, STREAM(be)));
    CUDA_TRY("download", cudaStreamSynchronize(STREAM(be)));
    return WV_OK;
}
static enum wv_status cu_sync(const struct backend *be)
{
    CUDA_TRY("sync", cudaStreamSynchronize(STREAM(be)));
    return WV_OK;
}

static void cu_gemm(const struct backend *be, const float *x, const float *w, const float *bias,
                    float *y, size_t M, int K, int Nout, int acc)
{
    gemm_cuda(x, w, bias, y, M, K, Nout, acc, STREAM(be));
}
static void cu_dwconv3(const struct backend *be, const float *x, int xr0, int xr, const float *w,
                       const float *b, float *y, int yr0, int yr, int H, int W, int C, int silu)
{
    dwconv3_cuda(x, xr0, xr, w, b, y, yr0, yr, H, W, C, silu, STREAM(be));
}
static void cu_conv3s2(const struct backend *be, const float *x, int xr0, int xr, const float *w,
                       const float *b, float *y, int yr0, int yr, int H, int W, int Ci, int Co)
{
    conv3s2_cuda(x, xr0, xr, w, b, y, yr0, yr, H, W, Ci, Co, STREAM(be));
}
static void cu_patch_embed4(const struct backend *be, const float *x, int xr0, int xr,
                            const float *w, const float *b, float *y, int yr0, int yr, int H,
                            int W, int Ci, int Co)
{
    patch_embed4_cuda(x, xr0, xr, w, b, y, yr0, yr, H, W, Ci, Co, STREAM(be));
}
static void cu_patch_merge(const struct backend *be, const float *x, int xr0, int xr, float *y,
                           int yr0, int yr, int H, int W, int C)
{
    patch_merge_cuda(x, xr0, xr, y, yr0, yr, H, W, C, STREAM(be));
}
static void cu_layernorm(const struct backend *be, const float *x, const float *g,
                         const float *b, float *y, size_t M, int C)
{
    layernorm_cuda(x, g, b, y, M, C, STREAM(be));
}
static void cu_gelu(const struct backend *be, const float *x, float *y, size_t n) { gelu_cuda(x, y, n, STREAM(be)); }
static void cu_silu(const struct backend *be, const float *x, float *y, size_t n) { silu_cuda(x, y, n, STREAM(be)); }
static void cu_mul(const struct backend *be, const float *a, const float *b, float *y, size_t n)
{
    mul_cuda(a, b, y, n, STREAM(be));
}
static void cu_mean_pool(const struct backend *be, const float *x, float *y, size_t L, int C)
{
    mean_pool_cuda(x, y, L, C, STREAM(be));
}
static void cu_scan(const struct backend *be, const float *u, const float *delta, const float *A,
                    const float *Bm, const float *Cm, const float *D, const float *db,
                    const float *h_in, float *y, float *h_out, int B, int KD, int G, int N, int L,
                    int sp)
{
    scan_cuda(u, delta, A, Bm, Cm, D, db, h_in, y, h_out, B, KD, G, N, L, sp, STREAM(be));
}
static void cu_ss2d(const struct backend *be, const float *u, const float *xdbl, const float *dt_w,
                    const float *dt_b, const float *A, const float *Ds, float *y, int H, int W,
                    int Dn, int R, int N)
{
    ss2d_scan_merge_cuda(u, xdbl, dt_w, dt_b, A, Ds, y, H, W, Dn, R, N, STREAM(be));
}

extern "C" const struct backend_ops backend_cuda_ops = {
    "cuda",       cu_supports,  cu_alloc,     cu_free,         cu_upload,    cu_download,
    cu_sync,      cu_gemm,      cu_dwconv3,   cu_conv3s2,      cu_patch_embed4,
    cu_patch_merge, cu_layernorm, cu_gelu,    cu_silu,         cu_mul,       cu_mean_pool,
    cu_scan,      cu_ss2d,
};

extern "C" enum wv_status backend_cuda_init(struct backend *be, int threads, int device_index)
{
    memset(be, 0, sizeof *be);
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return error_set(WV_EUNSUPPORTED, "cuda backend: no usable CUDA device (%s)",
                         cudaGetErrorString(e));
    }
    if (device_index < 0 || device_index >= n)
        return error_set(WV_EUNSUPPORTED, "cuda backend: device %d requested, %d present",
                         device_index, n);
    CUDA_TRY("init", cudaSetDevice(device_index));
    cudaStream_t s;
    CUDA_TRY("init", cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    be->device = WV_DEVICE_CUDA;
    be->threads = threads > 0 ? threads : 1;
    be->device_index = device_index;
    be->stream = s;
    be->ops = &backend_cuda_ops;
    return WV_OK;
}

extern "C" void backend_cuda_destroy(struct backend *be)
{
    if (!be) return;
    if (be->device == WV_DEVICE_CUDA && be->stream) {
        cudaStreamSynchronize(STREAM(be));
        cudaStreamDestroy(STREAM(be));
    }
    memset(be, 0, sizeof *be);
}
