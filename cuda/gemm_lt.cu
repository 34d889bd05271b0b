/*
 * gemm_lt.cu — the model's bf16/f16 GEMMs on cuBLASLt, with the bias, the GELU and the output
 * conversion done in the GEMM's epilogue instead of separate passes over memory.
 *
 * Why: on the H200 the first batched forward spent 19.5 of 88.6 ms (224² × 256) in the MLP at
 * 85 TFLOP/s: cublasGemmEx writes fp32, then a bias pass, a GELU pass and a bias pre-pass of fc2
 * each read and wrote the 4C-wide hidden map again (~9 KB per stage-0 pixel and block against
 * ~1.5 KB for the GEMM operands themselves). Here fc1 is one call writing GELU(x·Wᵀ + b) in bf16
 * (its bias uploaded in bf16 too: cuBLASLt wants the bias in the output's type),
 * fc2 adds x·Wᵀ + b into the fp32 residual in its epilogue, in_proj / x_proj write bf16 directly.
 *
 * Numerics: fp32 accumulation (CUBLAS_COMPUTE_32F) as gemm_cuda_ex. cuBLASLt's GELU epilogue is
 * the tanh approximation (|Δ| < 1e-3 against erf GELU, below the bf16 rounding of its output);
 * the exact f32 forward never comes here (vmamba.cu uses gemm_cuda_ex + the erf GELU for f32).
 *
 * Plans: matmul descriptor, layouts and the heuristic's algorithm are cached per (M, K, N, types,
 * epilogue, accumulate) — the forward issues the same few dozen shapes every time. One handle
 * and a 32 MiB workspace per device and host thread. When the heuristic offers nothing for a
 * shape, the call falls back to gemm_cuda_ex + separate kernels (same result up to rounding).
 */
#include "gemm_lt.h"

#include <cublasLt.h>

#include <vector>

#include "ops_cuda.cuh"

#define LT_MAX_DEVICES 16
#define LT_WORKSPACE ((size_t)32 << 20)

namespace {
struct lt_plan {
    size_t M;
    int K, N, epi, acc;
    enum wv_dtype dt, y_dt;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t a, b, c;
    cublasLtMatmulAlgo_t algo;
    int ok; /* 0: heuristic found nothing, use the fallback */
};
struct lt_state {
    cublasLtHandle_t h = NULL;
    void *ws = NULL;
    std::vector<lt_plan> plans;
};
} // namespace

static thread_local lt_state tl_lt[LT_MAX_DEVICES];

static cudaDataType_t cuda_type(enum wv_dtype dt)
{
    return dt == WV_DTYPE_F32 ? CUDA_R_32F : dt == WV_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
}

#define LT_TRY(stmt)                                                                         \
    do {                                                                                     \
        cublasStatus_t lt_s_ = (stmt);                                                       \
        if (lt_s_ != CUBLAS_STATUS_SUCCESS) return cublas_fail(lt_s_, #stmt, "gemm_lt", __FILE__, __LINE__); \
    } while (0)

static enum wv_status get_state(lt_state **out)
{
    int dev = 0;
    CUDA_TRY("gemm_lt", cudaGetDevice(&dev));
    if (dev < 0 || dev >= LT_MAX_DEVICES)
        return error_set(WV_EUNSUPPORTED, "cuda gemm_lt: device %d beyond %d", dev, LT_MAX_DEVICES);
    lt_state &s = tl_lt[dev];
    if (!s.h) {
        LT_TRY(cublasLtCreate(&s.h));
        CUDA_TRY("gemm_lt", cudaMalloc(&s.ws, LT_WORKSPACE));
    }
    *out = &s;
    return WV_OK;
}

static enum wv_status make_plan(lt_state &s, lt_plan &p)
{
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    LT_TRY(cublasLtMatmulDescCreate(&p.op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    LT_TRY(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    LT_TRY(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    cublasLtEpilogue_t e = p.epi == GEMM_EPI_GELU_BIAS ? CUBLASLT_EPILOGUE_GELU_BIAS
                           : p.epi == GEMM_EPI_BIAS    ? CUBLASLT_EPILOGUE_BIAS
                                                       : CUBLASLT_EPILOGUE_DEFAULT;
    LT_TRY(cublasLtMatmulDescSetAttribute(p.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e));
    /* the bias has the output's type (cuBLASLt's rule outside int8/fp8 kernels) */
    /* row-major y (M, N) = x (M, K) · wᵀ  ⇔  column-major yᵀ (N, M) = op_T(w as (K, N)) · x as (K, M) */
    const cudaDataType_t t = cuda_type(p.dt), ty = cuda_type(p.y_dt);
    LT_TRY(cublasLtMatrixLayoutCreate(&p.a, t, p.K, p.N, p.K));
    LT_TRY(cublasLtMatrixLayoutCreate(&p.b, t, p.K, p.M, p.K));
    LT_TRY(cublasLtMatrixLayoutCreate(&p.c, ty, p.N, p.M, p.N));
    cublasLtMatmulPreference_t pref;
    LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
    size_t wsb = LT_WORKSPACE;
    cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &wsb, sizeof wsb);
    cublasLtMatmulHeuristicResult_t r[1];
    int n = 0;
    cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(s.h, p.op, p.a, p.b, p.c, p.c, pref, 1, r, &n);
    cublasLtMatmulPreferenceDestroy(pref);
    p.ok = hs == CUBLAS_STATUS_SUCCESS && n > 0;
    if (p.ok) p.algo = r[0].algo;
    return WV_OK;
}

template <typename T>
__global__ void bias_act_kernel(const float *x, const T *bias, T *y, size_t M, int N, int gelu)
{
    GRID_STRIDE_LOOP(i, M * (size_t)N)
    {
        float v = x[i] + (bias ? ld(bias + i % N) : 0.0f);
        if (gelu) v = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
        st(y + i, v);
    }
}

/* Without a cuBLASLt algorithm: fp32 GEMM result, then bias / GELU / conversion. The fp32
 * temporary is allocated stream-ordered (rare path: only shapes cuBLASLt refuses). */
static enum wv_status fallback(const void *x, const void *w, enum wv_dtype dt, const void *bias,
                               void *y, enum wv_dtype y_dt, size_t M, int K, int N, int acc,
                               int epi, cudaStream_t s)
{
    if (y_dt == WV_DTYPE_F32 && epi != GEMM_EPI_GELU_BIAS)
        return gemm_cuda_ex(x, w, dt, 0, epi == GEMM_EPI_BIAS ? (const float *)bias : NULL,
                            (float *)y, M, K, N, acc, s);
    if (acc) return error_set(WV_EUNSUPPORTED, "cuda gemm_lt: accumulate into a non-fp32 output");
    float *t = NULL;
    CUDA_TRY("gemm_lt", cudaMallocAsync((void **)&t, M * (size_t)N * sizeof(float), s));
    enum wv_status st = gemm_cuda_ex(x, w, dt, 0, NULL, t, M, K, N, 0, s);
    if (st == WV_OK) {
        const void *b = epi != GEMM_EPI_NONE ? bias : NULL;
        int g = epi == GEMM_EPI_GELU_BIAS;
        unsigned blocks = cuda_blocks(M * (size_t)N, 256);
        if (y_dt == WV_DTYPE_F32)
            bias_act_kernel<<<blocks, 256, 0, s>>>(t, (const float *)b, (float *)y, M, N, g);
        else if (y_dt == WV_DTYPE_BF16)
            bias_act_kernel<<<blocks, 256, 0, s>>>(t, (const __nv_bfloat16 *)b, (__nv_bfloat16 *)y, M, N, g);
        else bias_act_kernel<<<blocks, 256, 0, s>>>(t, (const __half *)b, (__half *)y, M, N, g);
        cudaError_t e = cudaGetLastError();
        if (e != cudaSuccess) st = cuda_fail(e, "bias_act_kernel<<<>>>", "gemm_lt", __FILE__, __LINE__);
    }
    cudaFreeAsync(t, s);
    return st;
}

/* Rows per cuBLASLt call (int dimensions; well below where M·N overflows its internals). */
#define LT_MAX_ROWS ((size_t)1 << 26)

extern "C" enum wv_status gemm_lt_cuda(const void *x, const void *w, enum wv_dtype dt,
                                       const void *bias, void *y, enum wv_dtype y_dt, size_t M,
                                       int K, int Nout, int accumulate, enum gemm_epi epi,
                                       cudaStream_t stream)
{
    if (M == 0 || Nout <= 0) return WV_OK;
    if (epi != GEMM_EPI_NONE && !bias) return error_set(WV_EINVAL, "cuda gemm_lt: epilogue without bias");
    if (epi == GEMM_EPI_GELU_BIAS && accumulate)
        return error_set(WV_EINVAL, "cuda gemm_lt: GELU epilogue with accumulate");
    if (accumulate && y_dt != WV_DTYPE_F32)
        return error_set(WV_EUNSUPPORTED, "cuda gemm_lt: accumulate into a non-fp32 output");
    if (K <= 0 || dt == WV_DTYPE_F32)
        return fallback(x, w, dt, bias, y, y_dt, M, K > 0 ? K : 0, Nout, accumulate, epi, stream);
    lt_state *s = NULL;
    enum wv_status st = get_state(&s);
    if (st) return st;
    const size_t es = dtype_size(dt), ys = dtype_size(y_dt);
    for (size_t r0 = 0; r0 < M; r0 += LT_MAX_ROWS) {
        const size_t m = M - r0 < LT_MAX_ROWS ? M - r0 : LT_MAX_ROWS;
        lt_plan *p = NULL;
        for (lt_plan &q : s->plans)
            if (q.M == m && q.K == K && q.N == Nout && q.epi == epi && q.acc == accumulate &&
                q.dt == dt && q.y_dt == y_dt) {
                p = &q;
                break;
            }
        if (!p) {
            lt_plan q = {};
            q.M = m, q.K = K, q.N = Nout, q.epi = epi, q.acc = accumulate, q.dt = dt, q.y_dt = y_dt;
            st = make_plan(*s, q);
            if (st) return st;
            s->plans.push_back(q);
            p = &s->plans.back();
        }
        const void *xa = (const char *)x + r0 * (size_t)K * es;
        void *ya = (char *)y + r0 * (size_t)Nout * ys;
        if (!p->ok) {
            st = fallback(xa, w, dt, bias, ya, y_dt, m, K, Nout, accumulate, epi, stream);
            if (st) return st;
            continue;
        }
        if (epi != GEMM_EPI_NONE)
            LT_TRY(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias,
                                                  sizeof bias));
        const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
        LT_TRY(cublasLtMatmul(s->h, p->op, &one, w, p->a, xa, p->b, &beta, ya, p->c, ya, p->c,
                              &p->algo, s->ws, LT_WORKSPACE, stream));
    }
    return WV_OK;
}

extern "C" void gemm_lt_release_thread(void)
{
    for (int d = 0; d < LT_MAX_DEVICES; d++) {
        lt_state &s = tl_lt[d];
        for (lt_plan &p : s.plans) {
            cublasLtMatrixLayoutDestroy(p.a);
            cublasLtMatrixLayoutDestroy(p.b);
            cublasLtMatrixLayoutDestroy(p.c);
            cublasLtMatmulDescDestroy(p.op);
        }
        s.plans.clear();
        if (s.ws) cudaFree(s.ws);
        if (s.h) cublasLtDestroy(s.h);
        s.ws = NULL;
        s.h = NULL;
    }
}
