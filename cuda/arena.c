/* arena.c — sizing and carving of the GPU forward's arena; see arena.h. Plain C, no CUDA. */
#include "arena.h"

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }
static size_t zmin(size_t a, size_t b) { return a < b ? a : b; }

const char *vc_buf_name(enum vc_buf b)
{
    static const char *names[VC_NBUF] = {"map0",   "map1",   "u",   "xdbl", "band_a", "band_b", "band_c",
                                         "band_d", "col",    "in",  "mid",  "ws",     "feat"};
    return (unsigned)b < VC_NBUF ? names[b] : "?";
}

int vc_buf_group(enum vc_buf b)
{
    switch (b) {
    case VC_U: case VC_XDBL: case VC_WS: return 1;
    case VC_BAND_A: case VC_BAND_B: case VC_BAND_C: case VC_BAND_D: return 2;
    case VC_COL: case VC_IN: case VC_MID: return 3;
    default: return 0;
    }
}

void vc_stage_sizes(int v0, int H, int W, int hs[VC_STAGES], int ws[VC_STAGES])
{
    if (v0) hs[0] = H / 4, ws[0] = W / 4;
    else hs[0] = ((H + 1) / 2 + 1) / 2, ws[0] = ((W + 1) / 2 + 1) / 2;
    for (int i = 1; i < VC_STAGES; i++) hs[i] = (hs[i - 1] + 1) / 2, ws[i] = (ws[i - 1] + 1) / 2;
}

int vc_rows_per_band(size_t band, int W)
{
    if (W < 1) return 1;
    size_t r = band / (size_t)W;
    if (r < 1) return 1;
    return r > 0x7fffffff ? 0x7fffffff : (int)r;
}

size_t vc_carry_group(size_t n_chunks) { return n_chunks >= 1024 ? 64 : 1; }

size_t vc_tile_carry_group(size_t n_chunks)
{
    if (n_chunks < 1024) return 1;
    size_t g = 64;
    while (g * g < n_chunks) g++; /* ⌈√n⌉: at most a few thousand steps, once per launch plan */
    return g;
}

/* (s, h) fp32 pairs per chunk and lane, then (16-byte aligned) the fp64 pairs per group of the
 * two-level carry (cuda/ss2d.cu, ss2d_carry) */
static size_t carry_ws_bytes(size_t n_chunks, size_t n_seq, size_t G)
{
    if (n_chunks <= 1) return 0;
    size_t bytes = n_chunks * n_seq * 2 * sizeof(float);
    if (G > 1) bytes += 16 + (n_chunks + G - 1) / G * n_seq * 2 * sizeof(double);
    return bytes;
}

size_t vc_ss2d_ws_bytes(int B, int H, int W, int Dn, int N, int chunk)
{
    size_t L = (size_t)H * W, n_chunks = chunk > 0 ? (L + chunk - 1) / chunk : 1;
    return carry_ws_bytes(n_chunks, (size_t)B * 4 /* directions */ * (size_t)N * Dn,
                          vc_carry_group(n_chunks));
}

int vc_scan_tile(const struct vc_model *m, int i, int H, int W)
{
    if (!m->scan_tile || !vc_scan_fast(m, i) || m->dtype != WV_DTYPE_BF16 ||
        m->d_inner[i] % VC_TILE_CH || H < 1 || W < 1)
        return 0;
    const int side = H > W ? H : W;
    return side <= 8 ? 8 : side <= 16 ? 16 : VC_TILE_MAX;
}

size_t vc_ss2d_tile_ws_bytes(int B, int H, int W, int Dg, int T)
{
    if (T < 1 || H < 1 || W < 1) return 0;
    const size_t ntx = ((size_t)W + T - 1) / T, nty = ((size_t)H + T - 1) / T;
    if (ntx * nty <= 1) return 0; /* fused: the carry runs in the block */
    const size_t rows = (size_t)H * ntx, cols = (size_t)W * nty;
    const size_t n_chunks = rows > cols ? rows : cols;
    return carry_ws_bytes(n_chunks, (size_t)B * 4 * Dg, vc_tile_carry_group(n_chunks));
}

int vc_scan_tile_group(int B, int H, int W, int Dn, int T)
{
    int g = Dn;
    while (g > VC_TILE_CH && (Dn % g || vc_ss2d_tile_ws_bytes(B, H, W, g, T) > VC_TILE_WS_CAP))
        g -= VC_TILE_CH;
    return g;
}

void vc_conv_units(size_t band, int B, int Ho, int Wo, struct vc_units *u)
{
    size_t img = (size_t)Ho * Wo;
    if (img > 0 && band >= img) {
        size_t g = band / img;
        u->group = (int)(g < (size_t)B ? g : (size_t)B);
        u->rows = Ho;
    } else {
        u->group = 1;
        u->rows = vc_rows_per_band(band, Wo);
        if (u->rows > Ho) u->rows = Ho > 0 ? Ho : 1;
    }
}

int vc_scan_chunk(const struct vc_model *m, int B, size_t L, int Dn)
{
    if (m->scan_chunk > 0) return m->scan_chunk;
    size_t chunk = VC_SCAN_CHUNK_DEFAULT;
    const size_t lanes = (size_t)B * ((size_t)Dn + 31) / 32; /* warps per chunk position */
    while (chunk > 16) {
        size_t n_chunks = (L + chunk - 1) / chunk;
        if (n_chunks * lanes >= 16384) break;
        chunk /= 2;
    }
    return (int)chunk;
}

int vc_scan_fast(const struct vc_model *m, int i)
{
    return m->dtype != WV_DTYPE_F32 && !m->v0 && m->d_state == 1 && m->dt_rank[i] >= 1 &&
           m->dt_rank[i] <= 64;
}

int vc_xdbl_pitch(const struct vc_model *m, int i)
{
    int p = m->dt_rank[i] + 2 * m->d_state;
    return vc_scan_fast(m, i) ? (p + 7) / 8 * 8 : p;
}

int vc_conv_k(int Ci) { return (9 * Ci + 7) / 8 * 8; }

/* Widest per-pixel row (channels) any band of stage i holds. */
static size_t stage_width(const struct vc_model *m, int i)
{
    size_t w = zmax((size_t)m->dims[i], (size_t)m->d_inner[i]);
    w = zmax(w, (size_t)m->hidden[i]);
    if (m->v0 && i < VC_STAGES - 1) w = zmax(w, (size_t)4 * m->dims[i]);
    return w ? w : 1;
}

void vc_plan(const struct vc_model *m, int B, int H, int W, size_t band_pixels,
             struct vc_layout *l)
{
    const size_t bp0 = zmin(band_pixels ? band_pixels : VC_BAND_DEFAULT, (size_t)1 << 40);
    const size_t es = m->dtype == WV_DTYPE_F32 ? 4 : 2;
    const int N = m->d_state;
    int hs[VC_STAGES], ws[VC_STAGES];
    vc_stage_sizes(m->v0, H, W, hs, ws);
    for (int b = 0; b < VC_NBUF; b++) l->elems[b] = 0, l->elem_size[b] = 4;
    l->elem_size[VC_BAND_A] = l->elem_size[VC_BAND_D] = l->elem_size[VC_U] = es;
    l->elem_size[VC_COL] = l->elem_size[VC_XDBL] = es;
    l->elem_size[VC_WS] = 1;
    size_t *e = l->elems;
    const size_t w0 = stage_width(m, 0);
    for (int i = 0; i < VC_STAGES; i++) {
        const size_t C = m->dims[i], Dn = m->d_inner[i], Hd = m->hidden[i];
        const size_t P = (size_t)vc_xdbl_pitch(m, i);
        const size_t L = (size_t)hs[i] * ws[i], BL = (size_t)B * L;
        /* same bytes per band at every stage: fewer pixels where rows are wider */
        size_t bp = bp0 * w0 / stage_width(m, i);
        if (bp < 1) bp = 1;
        bp = zmin(bp, BL);
        l->band[i] = bp;
        /* maps: x and y of this stage, and the next stage's x (written into y's buffer) */
        e[VC_MAP0] = zmax(e[VC_MAP0], BL * zmax(C, Dn));
        if (i < VC_STAGES - 1)
            e[VC_MAP0] = zmax(e[VC_MAP0], (size_t)B * hs[i + 1] * ws[i + 1] * m->dims[i + 1]);
        e[VC_U] = zmax(e[VC_U], BL * Dn);
        e[VC_XDBL] = zmax(e[VC_XDBL], BL * 4 * P);
        /* per-pixel work over all images' pixels in bands: LN + in_proj, x_proj, the tail */
        e[VC_BAND_A] = zmax(e[VC_BAND_A], bp * zmax(C, Dn));
        if (m->v0) e[VC_BAND_B] = zmax(e[VC_BAND_B], bp * Dn);
        /* MLP hidden: fp32 fc1 output (f32 forward) or fc1's GELU epilogue output in the dtype */
        if (m->dtype == WV_DTYPE_F32) e[VC_BAND_C] = zmax(e[VC_BAND_C], bp * Hd);
        else e[VC_BAND_D] = zmax(e[VC_BAND_D], bp * Hd);
        if (i < VC_STAGES - 1) {
            int Ho = (hs[i] + 1) / 2, Wo = (ws[i] + 1) / 2;
            if (m->v0) { /* PatchMerging: 4C-wide rows of the next stage's size, per image */
                size_t px = zmin((size_t)vc_rows_per_band(bp, Wo), (size_t)Ho) * Wo;
                e[VC_BAND_A] = zmax(e[VC_BAND_A], px * 4 * C);
                e[VC_BAND_C] = zmax(e[VC_BAND_C], px * 4 * C);
            } else { /* conv 3×3/s2 as im2col + GEMM, in the next stage's bands */
                struct vc_units u;
                size_t bn = bp0 * w0 / stage_width(m, i + 1);
                vc_conv_units(bn ? bn : 1, B, Ho, Wo, &u);
                e[VC_COL] = zmax(e[VC_COL], (size_t)u.group * u.rows * Wo * vc_conv_k((int)C));
            }
        }
        l->stage_chunk[i] = vc_scan_chunk(m, B, L, (int)Dn);
        l->stage_tile[i] = vc_scan_tile(m, i, hs[i], ws[i]);
        l->stage_tile_group[i] = 0;
        if (l->stage_tile[i]) {
            const int T = l->stage_tile[i];
            const int g = vc_scan_tile_group(B, hs[i], ws[i], (int)Dn, T);
            l->stage_tile_group[i] = g;
            e[VC_WS] = zmax(e[VC_WS], vc_ss2d_tile_ws_bytes(B, hs[i], ws[i], g, T));
        } else {
            e[VC_WS] = zmax(e[VC_WS], vc_ss2d_ws_bytes(B, hs[i], ws[i], (int)Dn, N, l->stage_chunk[i]));
        }
    }
    /* stem: stage-0 rows per band from a quarter of the stage-0 band (its input is 16× larger);
     * whole images in groups when the input is on the device and a band holds one */
    int rb = vc_rows_per_band(bp0 / 4 ? bp0 / 4 : 1, ws[0]);
    if (rb > hs[0]) rb = hs[0] > 0 ? hs[0] : 1;
    l->stem_rows = rb;
    l->stem_group = 1;
    if (m->device_input && rb >= hs[0]) {
        struct vc_units u;
        vc_conv_units(bp0 / 4 ? bp0 / 4 : 1, B, hs[0], ws[0], &u);
        l->stem_group = u.group;
    }
    const size_t g = (size_t)l->stem_group;
    if (m->v0) {
        if (!m->device_input) e[VC_IN] = zmin((size_t)4 * rb, (size_t)H) * W * m->in_chans;
    } else {
        int H1 = (H + 1) / 2, W1 = (W + 1) / 2;
        size_t mid_rows = zmin((size_t)2 * rb + 1, (size_t)H1);
        if (!m->device_input) e[VC_IN] = zmin((size_t)4 * rb + 4, (size_t)H) * W * m->in_chans;
        e[VC_MID] = g * mid_rows * W1 * m->stem_mid;
        e[VC_COL] = zmax(e[VC_COL], g * mid_rows * W1 * vc_conv_k(m->in_chans));
        e[VC_COL] = zmax(e[VC_COL], g * (size_t)rb * ws[0] * vc_conv_k(m->stem_mid));
    }
    e[VC_FEAT] = (size_t)B * m->dims[3] + (size_t)B * (m->num_classes > 0 ? m->num_classes : 0);
    e[VC_MAP1] = e[VC_MAP0];
}

void vc_carve(const struct vc_layout *l, struct vc_carving *c)
{
    size_t end[4] = {0, 0, 0, 0};
    for (int g = 0; g < 4; g++) {
        size_t off = g == 0 ? 0 : end[0];
        for (int b = 0; b < VC_NBUF; b++) {
            if (vc_buf_group((enum vc_buf)b) != g) continue;
            size_t bytes = l->elems[b] * l->elem_size[b];
            off = (off + VC_ALIGN - 1) / VC_ALIGN * VC_ALIGN;
            c->off[b] = off;
            c->bytes[b] = bytes;
            off += bytes;
        }
        end[g] = off;
    }
    size_t top = zmax(zmax(end[0], end[1]), zmax(end[2], end[3]));
    c->total = (top + VC_ALIGN - 1) / VC_ALIGN * VC_ALIGN;
    if (c->total == 0) c->total = VC_ALIGN;
}
