/*
 * synth_files.c — a synthetic slide's files (contract: synth.h): the slide TIFF and the mask TIFF
 * through wsi/slide_writer.h, the lesion polygons as ASAP XML through asap_xml.h, and the aperio
 * label and macro pictures.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "asap_xml.h"
#include "src/util.h"
#include "synth.h"
#include "synth_private.h"

/* Lossless mask tiles the size ASAP's AnnotationToMask writes (CAMELYON16_PROTOCOL.md §3.3). */
#define MASK_TILE_PX 512
/* The CAMELYON16 evaluation reads mask level 5, so a mask has at least 6 levels. */
#define MASK_MIN_LEVELS 6

void synth_write_opts_init(struct synth_write_opts *o)
{
    memset(o, 0, sizeof *o);
    o->vendor = SLIDE_WRITER_GENERIC;
    o->tile_px = 256;
    o->jpeg_quality = 80;
    o->name = "synthetic";
}

struct assoc_ctx {
    const struct synth_slide *s;
    const char *name;
};

static enum wv_status slide_tile(void *ctx, int level, double ds, int64_t x, int64_t y, int w,
                                 int h, uint8_t *px)
{
    const struct synth_slide *s = ((const struct assoc_ctx *)ctx)->s;
    /* level 0: one sample per pixel; reduced levels and the thumbnail: 2×2 samples averaged,
     * which keeps nuclei visible as darker dots instead of aliasing them away */
    int ss = level == 0 ? 1 : 2;
    return synth_render_rgb(s, (double)x * ds, (double)y * ds, ds, w, h, ss, px);
}

static enum wv_status mask_tile(void *ctx, int level, double ds, int64_t x, int64_t y, int w,
                                int h, uint8_t *px)
{
    (void)level;
    synth_render_mask(ctx, x, y, ds, w, h, px);
    return WV_OK;
}

/* A white label with a barcode-like pattern derived from the slide name (no text renderer). */
static void draw_label(const char *name, int w, int h, uint8_t *rgb, int x0, int stride_w)
{
    uint64_t hv = 0xCBF29CE484222325ULL; /* FNV-1a of the name */
    for (const char *p = name; *p; p++) hv = (hv ^ (uint8_t)*p) * 0x100000001B3ULL;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *o = rgb + 3 * ((size_t)y * stride_w + x0 + x);
            o[0] = o[1] = o[2] = 250;
            int bx = (x - w / 8) * 48 / (w * 3 / 4 + 1); /* 48 bars over the middle 3/4 */
            if (y > h / 4 && y < h * 3 / 4 && x >= w / 8 && bx >= 0 && bx < 48) {
                uint64_t bits = synth_mix64(hv + (uint64_t)(bx / 16));
                if ((bits >> (bx % 16)) & 1) o[0] = o[1] = o[2] = 20;
            }
            if (y < h / 8) o[0] = 60, o[1] = 110, o[2] = 200; /* a coloured stripe */
        }
}

static enum wv_status assoc_image(void *vctx, const char *what, int w, int h, uint8_t *rgb)
{
    const struct assoc_ctx *c = vctx;
    if (!strcmp(what, "label")) {
        draw_label(c->name, w, h, rgb, 0, w);
        return WV_OK;
    }
    /* macro: the glass slide — label on the left, the tissue area rendered small on the right */
    int lw = h; /* square label area */
    draw_label(c->name, lw, h, rgb, 0, w);
    int aw = w - lw;
    double step = fmax((double)c->s->w / aw, (double)c->s->h / h);
    int rw = (int)(c->s->w / step), rh = (int)(c->s->h / step);
    if (rw < 1) rw = 1;
    if (rh < 1) rh = 1;
    if (rw > aw) rw = aw;
    if (rh > h) rh = h;
    uint8_t *pic = wv_malloc((size_t)rw * rh * 3, "macro");
    if (!pic) return WV_ENOMEM;
    enum wv_status st = synth_render_rgb(c->s, 0, 0, step, rw, rh, 2, pic);
    int ox = lw + (aw - rw) / 2, oy = (h - rh) / 2;
    for (int y = 0; y < h; y++)
        for (int x = lw; x < w; x++) {
            uint8_t *o = rgb + 3 * ((size_t)y * w + x);
            int px = x - ox, py = y - oy;
            if (!st && px >= 0 && px < rw && py >= 0 && py < rh)
                memcpy(o, pic + 3 * ((size_t)py * rw + px), 3);
            else
                o[0] = 228, o[1] = 229, o[2] = 232; /* bare glass */
        }
    free(pic);
    return st;
}

enum wv_status synth_slide_write(const struct synth_slide *s, const char *path,
                                 const struct synth_write_opts *o)
{
    struct assoc_ctx actx = {s, o->name ? o->name : "synthetic"};
    struct slide_writer_opts w;
    slide_writer_opts_init(&w);
    w.width_px = s->w;
    w.height_px = s->h;
    w.samples_per_pixel = 3;
    w.codec = SLIDE_WRITER_JPEG;
    w.jpeg_quality = o->jpeg_quality;
    w.tile_px = o->tile_px;
    w.mpp = s->mpp;
    w.vendor = o->vendor;
    w.n_threads = o->n_threads;
    w.tile_fn = slide_tile;
    w.ctx = &actx;
    char desc[512];
    if (o->vendor == SLIDE_WRITER_APERIO) {
        /* 4× levels as real SVS files have (§4.2); AppMag as an integer, since 3.4.1 sets
         * objective-power only from one (10 µm/px per 1× objective: 0.25 → 40, 0.5 → 20) */
        w.level_step = 4;
        long mag = lround(10.0 / s->mpp);
        w.app_mag = mag < 1 ? 1 : (int)mag;
        snprintf(desc, sizeof desc, "|Filename = %s|Title = wsi-vmamba synthetic slide",
                 actx.name);
        w.assoc_fn = assoc_image;
    } else {
        /* 2× levels down to ~1024 px, as ASAP writes the CAMELYON16 TIFFs */
        w.level_step = 2;
        snprintf(desc, sizeof desc, "wsi-vmamba synthetic slide %s", actx.name);
    }
    w.description = desc;
    return slide_writer_write(path, &w);
}

enum wv_status synth_mask_write(const struct synth_slide *s, const char *path, int n_threads)
{
    struct slide_writer_opts w;
    slide_writer_opts_init(&w);
    w.width_px = s->w;
    w.height_px = s->h;
    w.samples_per_pixel = 1;
    w.codec = SLIDE_WRITER_LZW;
    w.tile_px = MASK_TILE_PX;
    w.level_step = 2;
    w.min_levels = MASK_MIN_LEVELS;
    w.min_level_px = 1024;
    w.mpp = s->mpp;
    w.vendor = SLIDE_WRITER_GENERIC;
    w.n_threads = n_threads;
    w.tile_fn = mask_tile;
    w.ctx = (void *)s;
    w.description = "wsi-vmamba synthetic tumour mask (tumour 255, background 0)";
    return slide_writer_write(path, &w);
}

enum wv_status synth_xml_write(const struct synth_slide *s, const char *path)
{
    struct asap_polygon *polys = wv_calloc(s->n_lesions ? s->n_lesions : 1, sizeof *polys,
                                           "annotations");
    if (!polys) return WV_ENOMEM;
    char (*names)[32] = wv_calloc(s->n_lesions ? s->n_lesions : 1, sizeof *names, "names");
    if (!names) {
        free(polys);
        return WV_ENOMEM;
    }
    for (int i = 0; i < s->n_lesions; i++) {
        snprintf(names[i], sizeof names[i], "Annotation %d", i);
        polys[i].name = names[i];
        polys[i].type = "Polygon";
        polys[i].group = s->lesions[i].group;
        polys[i].color = "#F4FA58";
        polys[i].n_vertices = s->lesions[i].n_vertices;
        polys[i].xy = s->lesions[i].xy;
    }
    /* CAMELYON16 training groups (§3.2): "_0" and "_1" are tumour; "_2" (exclusions) unused */
    static const struct asap_group groups[] = {{"_0", "#FF0000"}, {"_1", "#FF0000"}};
    enum wv_status st = asap_xml_write(path, polys, s->n_lesions, groups, 2);
    free(names);
    free(polys);
    return st;
}
