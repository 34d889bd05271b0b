/*
 * arena.h — sizing and carving of the GPU forward's activation arena (cuda/vmamba.cu), in plain C
 * with no CUDA dependency so that tests/gpu/test_gpu_arena.c checks it on any machine.
 *
 * One function decides both the arena's size and where every buffer lies: vc_carve() walks the
 * buffer list once, aligning each start to VC_ALIGN, and returns the offsets and the total. The
 * forward reserves exactly `total` bytes and points each buffer at base + off, so the size and
 * the carving cannot disagree (they once did: the size ignored that a zero-byte request still
 * took 256 bytes, and forwards failed with "arena sizing error").
 *
 * vc_plan() gives each buffer's capacity from the configuration, B, H, W and the band: two fp32
 * maps that take turns as the residual stream x and the merged scan output y (the downsample
 * writes the next stage's x into y's buffer, then they swap), the scan input u in the storage
 * dtype (bf16 halves it and the scan's reads of it), the x_proj output of the whole batch, band
 * scratch, the im2col columns of the 3×3/s2 convs (stem, v2 downsample: GEMMs on cuBLAS), the
 * stem's input and middle rows, the scan workspace and the head's outputs. Bands are per stage
 * and never larger than the stage needs: band pixels of stage i = min(band · widest(0) /
 * widest(i), pixels that stage has), so a 2×45×61 input takes a few MB, not GB, and the deep
 * stages (4C..8C channels, hidden 4·8C) do not multiply the stage-0 band by their width.
 *
 * Small images are batched: where a band holds whole images (224² at batch 256), the stem and
 * the downsample convs run over groups of whole images (vc_conv_units), and every other op runs
 * over all B·L pixels at once; a 10,000² region runs in row bands of one image.
 */
#ifndef WV_CUDA_ARENA_H
#define WV_CUDA_ARENA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "src/device_select.h"

#define VC_STAGES 4
/* Alignment of every buffer (cuBLAS and vector loads want 256 B). */
#define VC_ALIGN 256
/* Scan chunk (tokens) when the options give none; scan_cuda_default_chunk returns it. */
#define VC_SCAN_CHUNK_DEFAULT 256

/* What the arena depends on (a copy of the model configuration's relevant fields). */
struct vc_model {
    int v0;             /* VMamba v0 family (4×4 stem, z gate, PatchMerging) */
    int d_state, in_chans, stem_mid, num_classes;
    int dims[VC_STAGES], d_inner[VC_STAGES], dt_rank[VC_STAGES], hidden[VC_STAGES];
    enum wv_dtype dtype;
    int scan_chunk;   /* 0 = VC_SCAN_CHUNK_DEFAULT */
    int device_input; /* input already on the device: no staging rows (VC_IN) */
    int scan_tile;    /* 1: tiled SS2D (cuda/ss2d_tile.cuh) where a stage allows it */
};

enum vc_buf {
    VC_MAP0, VC_MAP1, /* (B, L, max(C, Dn)) fp32: x and y, swapped at each downsample */
    VC_U,             /* scan input u (B, L, Dn) in the storage dtype (x_proj operand too) */
    VC_XDBL,          /* x_proj output of all B images (B, L, 4·(R+2N)) in the storage dtype */
    VC_BAND_A,        /* LN output / GEMM operand, storage dtype */
    VC_BAND_B,        /* v0 z gate, fp32 */
    VC_BAND_C,        /* fc1 output fp32; v0 PatchMerging gather */
    VC_BAND_D,        /* GELU output in the storage dtype (bf16/f16 only) */
    VC_COL,           /* im2col columns of a 3×3/s2 conv, storage dtype */
    VC_IN,            /* stem input rows (rows, W, Cin) fp32 (host input only) */
    VC_MID,           /* v2 stem middle rows (rows, W/2, stem_mid) fp32 */
    VC_WS,            /* scan chunk-carry workspace (bytes) */
    VC_FEAT,          /* pooled features (B, C3) + logits (B, K) fp32 */
    VC_NBUF
};

/* Capacities: elements of each buffer (VC_WS: bytes), per-stage band pixels, stem rows. */
struct vc_layout {
    size_t elems[VC_NBUF];
    size_t elem_size[VC_NBUF]; /* bytes per element (VC_WS: 1) */
    size_t band[VC_STAGES];    /* pixels per band of the per-pixel work at stage i */
    int stem_rows;             /* stage-0 output rows per stem band (one image) */
    int stem_group;            /* images per stem step when a band holds whole images, else 1 */
    int stage_chunk[VC_STAGES]; /* scan chunk (tokens) at stage i (vc_scan_chunk) */
    int stage_tile[VC_STAGES];  /* tiled SS2D: tile side at stage i, 0 = chunked (vc_scan_tile) */
    int stage_tile_group[VC_STAGES]; /* tiled SS2D: channels per launch (vc_scan_tile_group) */
};

/* Elements per (pixel, direction) row of the x_proj output at stage i. The exact path keeps the
 * checkpoint's order (dt_low (R), B (N), C (N)), pitch R + 2N. The fast path (bf16/f16, d_state 1,
 * dt_rank <= 64: every released v2 model) packs (B, C, dt_low) and pads to a multiple of 8, so
 * the scan loads a row with 16-byte vector loads and finds B and C at fixed places
 * (cuda/ss2d.cu, ss2d_fast_kernel). */
int vc_scan_fast(const struct vc_model *m, int i);
int vc_xdbl_pitch(const struct vc_model *m, int i);

/* How a conv over B images of Ho×Wo outputs is cut: `group` whole images per step when a band
 * of `band` output pixels holds at least one image (then rows = Ho), else one image at a time in
 * bands of `rows` output rows. */
struct vc_units {
    int group, rows;
};
void vc_conv_units(size_t band, int B, int Ho, int Wo, struct vc_units *u);
/* im2col row width of a 3×3 conv over Ci channels: 9·Ci rounded up to 8 (16-byte rows). */
int vc_conv_k(int Ci);

struct vc_carving {
    size_t off[VC_NBUF];   /* byte offset from the arena base (aligned to VC_ALIGN); buffers of
                              different groups 1-3 may share bytes (vc_buf_group) */
    size_t bytes[VC_NBUF]; /* elems × elem_size; 0 = not used (pointer NULL) */
    size_t total;          /* bytes the arena must have */
};

const char *vc_buf_name(enum vc_buf b);
/* Lifetime group of a buffer: 0 = the whole forward (x / y maps, head outputs); 1 = the scan
 * (u, x_proj output, workspace); 2 = the per-pixel bands (LN outputs, MLP hidden, v0 gate);
 * 3 = the convs (im2col columns, stem rows). Groups 1-3 are never live at the same time (one
 * stream; each phase consumes its scratch before the next starts), so vc_carve lays them over
 * the same bytes: at 10,000² that is 1.9 GiB instead of 2.5. */
int vc_buf_group(enum vc_buf b);
void vc_stage_sizes(int v0, int H, int W, int hs[VC_STAGES], int ws[VC_STAGES]);
/* Rows of width W in a band of `band` pixels (at least 1). */
int vc_rows_per_band(size_t band, int W);
/* Scan chunk for B images of L tokens and Dn channels: `chunk` (the options' or the default
 * 256), halved (down to 16) while a pass would give the GPU fewer than ~16k warps: each warp
 * walks its chunk step by step, so where images are small (224²: L = 196 at stage 2) short chunks
 * are what keeps the GPU busy, and long ones only serialise. An explicit chunk from the options
 * (tests) is used as it is. */
int vc_scan_chunk(const struct vc_model *m, int B, size_t L, int Dn);
/* Chunks per group of the two-level carry over n_chunks chunks (1: one level). */
size_t vc_carry_group(size_t n_chunks);
/* The same for the tiled SS2D: ⌈√n⌉ (at least 64) from 1,024 chunks. Its segments are short, so
 * the chunks are many (197k at 10,000², 16 channels: 64 lanes), and with groups of 64 the pass
 * across groups walked 3,086 of them in sequence per lane; √n balances the two sequential walks
 * (445 each). */
size_t vc_tile_carry_group(size_t n_chunks);
/* Bytes of the SS2D chunk-carry workspace for B images of H×W (0 when one chunk covers one),
 * including the group level of the two-level carry (cuda/ss2d.cu, ss2d_carry). */
size_t vc_ss2d_ws_bytes(int B, int H, int W, int Dn, int N, int chunk);
/* Tiled SS2D (cuda/ss2d_tile.cuh): the tile side for stage i of an H×W stage map, or 0 where the
 * chunked kernels run (option off, exact path, f16, Dn not a multiple of 16). A map that fits
 * 8, 16 or 32 pixels a side is one tile (the fused mode, no workspace); larger maps take tiles of
 * VC_TILE_MAX. */
#define VC_TILE_CH 16
#define VC_TILE_MAX 32
int vc_scan_tile(const struct vc_model *m, int i, int H, int W);
/* Workspace bytes of the tiled SS2D over channels [d, d + Dg) of B images of H×W in T×T tiles:
 * one (Σ δA, h) pair per (row or column segment, direction, channel), chunk-major as the chunked
 * kernels' workspace, plus the two-level carry's group level; 0 when one tile covers the map. */
size_t vc_ss2d_tile_ws_bytes(int B, int H, int W, int Dg, int T);
/* Channels per launch: the largest multiple of VC_TILE_CH dividing Dn whose workspace stays under
 * VC_TILE_WS_CAP (segments are at most 32 tokens, so a 2,500² map has 197k chunks: 6.3 MB per
 * channel; the channels of a stage are independent, so they run in groups instead of taking
 * 600 MB at 10,000²). */
#define VC_TILE_WS_CAP ((size_t)128 << 20)
int vc_scan_tile_group(int B, int H, int W, int Dn, int T);

/* Buffer capacities for B images of H×W with `band_pixels` (0 = VC_BAND_DEFAULT) at stage 0. */
void vc_plan(const struct vc_model *m, int B, int H, int W, size_t band_pixels,
             struct vc_layout *l);
/* Offsets and total size of the buffers of l: the single source of the arena's size. */
void vc_carve(const struct vc_layout *l, struct vc_carving *c);

/* Default pixels per band at stage 0: 128 Ki pixels × (4C = 384 hidden) × 4 B = 192 MiB of MLP
 * scratch for VMamba-T — every GEMM still has 2^17 rows (a 384-wide output is 6k tiles of
 * 128 × 64, ~45 per SM of an H100); deeper stages get proportionally fewer pixels (same bytes).
 * It was 1 Mi (1.5 GiB per band buffer), which put VMamba-T at 10,000² over 8 GB. */
#define VC_BAND_DEFAULT ((size_t)1 << 17)
/* Smallest stage-0 band the out-of-memory retry goes down to. */
#define VC_BAND_MIN ((size_t)1 << 14)

#ifdef __cplusplus
}
#endif

#endif
