/*
 * knobs.h — the switches of the GPU kernels that were written without a GPU to time them on, and
 * their defaults in one place. Each is read from the environment at the point of use:
 * unset = the default below, "0" = off, a positive number = on. A session with a GPU runs
 * tests/gpu/run.sh (which checks them against the CPU and times them beside the kernels they
 * replace, WV_BENCH=1) and turns a default to 1 here once its kernel has passed and gained.
 * Plain C: cuda/arena.c's callers and tests/bench read it too.
 */
#ifndef WV_CUDA_KNOBS_H
#define WV_CUDA_KNOBS_H

#include <stdlib.h>

/* tiled SS2D (cuda/ss2d_tile.cuh); also vmamba_cuda_options.scan_tile = 1 */
#define WV_KNOB_SS2D_TILE "WV_SS2D_TILE"
#define WV_KNOB_SS2D_TILE_DEFAULT 0
/* vectorised depthwise conv + SiLU (cuda/dwconv_vec.cuh) */
#define WV_KNOB_DWCONV_VEC "WV_DWCONV_VEC"
#define WV_KNOB_DWCONV_VEC_DEFAULT 0
/* fused v2 stem conv 1 + LayerNorm + GELU (cuda/stem_fused.cuh) */
#define WV_KNOB_STEM_FUSED "WV_STEM_FUSED"
#define WV_KNOB_STEM_FUSED_DEFAULT 0

static inline int wv_knob(const char *name, int dflt)
{
    const char *e = getenv(name);
    return e && *e ? atoi(e) > 0 : dflt;
}

#endif
