/*
 * carry_hd.cuh — the items of the two-level chunk carry (cuda/ss2d.cu, ss2d_carry) as
 * __host__ __device__ functions: the kernels run one item per thread, tests/gpu/test_kernels_host
 * runs them all on the CPU against the one-level carry for several group sizes.
 *
 * ws holds, per chunk c and lane j, (s = Σ δA over the chunk, h = its end state from 0) at
 * ws[(c·n_seq + j)·2 + {0, 1}]; the carry rewrites h with the state entering the chunk. Level 1
 * (carry_group_item, item i = g·n_seq + j): compose the G chunks of group g in fp64 —
 * (s, h) ∘ (s', h') = (s + s', exp(s')·h + h') — into gs; level 2 (carry_across_item, item j):
 * walk the groups in order, leaving each group's entering state; level 3 (carry_within_item,
 * item i): walk group g's chunks again from its entering state, writing each chunk's. Same fp64
 * arithmetic as the one-level carry up to association order, whatever G.
 */
#ifndef WV_CUDA_CARRY_HD_CUH
#define WV_CUDA_CARRY_HD_CUH

#include "hd_common.cuh"

TL_HD void carry_group_item(size_t i, const float *ws, double *gs, size_t n_seq, size_t n_chunks,
                            size_t G)
{
    const size_t j = i % n_seq, g = i / n_seq;
    const size_t c0 = g * G, c1 = c0 + G < n_chunks ? c0 + G : n_chunks;
    double s = 0.0, h = 0.0;
    for (size_t c = c0; c < c1; c++) {
        const float *p = ws + (c * n_seq + j) * 2;
        double sc = (double)p[0];
        h = fma(exp(sc), h, (double)p[1]);
        s += sc;
    }
    gs[(g * n_seq + j) * 2] = s;
    gs[(g * n_seq + j) * 2 + 1] = h;
}

TL_HD void carry_across_item(size_t j, double *gs, size_t n_seq, size_t n_groups)
{
    double h = 0.0;
    for (size_t g = 0; g < n_groups; g++) {
        double *p = gs + (g * n_seq + j) * 2;
        double a = exp(p[0]), hl = p[1];
        p[1] = h; /* entering state of group g */
        h = fma(a, h, hl);
    }
}

TL_HD void carry_within_item(size_t i, float *ws, const double *gs, size_t n_seq, size_t n_chunks,
                             size_t G)
{
    const size_t j = i % n_seq, g = i / n_seq;
    const size_t c0 = g * G, c1 = c0 + G < n_chunks ? c0 + G : n_chunks;
    double h = gs[(g * n_seq + j) * 2 + 1];
    for (size_t c = c0; c < c1; c++) {
        float *p = ws + (c * n_seq + j) * 2;
        double a = exp((double)p[0]), hl = (double)p[1];
        p[1] = (float)h;
        h = fma(a, h, hl);
    }
}

#endif
