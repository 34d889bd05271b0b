/*
 * tissue.c — tissue detection (Otsu on HSV saturation + morphology); contract in tissue.h,
 * the reasons for each step and constant in docs/slides.md.
 */
#include "tissue.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "slide.h"
#include "src/util.h"

void tissue_params_default(struct tissue_params *p)
{
    p->mask_mpp = TISSUE_DEFAULT_MPP;
    p->blur_radius = 1;
    p->close_radius = 2;
    p->open_radius = 0;
    p->min_area_um2 = 10000.0;
    p->min_saturation = 20;
    p->min_contrast = 8;
    p->low_ratio = 0.5;
}

void tissue_mask_free(struct tissue_mask *m)
{
    if (!m) return;
    free(m->mask);
    memset(m, 0, sizeof *m);
}

/* Separable box filter of radius r over an 8-bit image, edges using only in-image pixels. */
static void box_blur(uint8_t *img, uint8_t *tmp, int w, int h, int r)
{
    if (r <= 0) return;
    for (int y = 0; y < h; y++) {
        const uint8_t *row = img + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            int a = x - r < 0 ? 0 : x - r, b = x + r >= w ? w - 1 : x + r, sum = 0;
            for (int k = a; k <= b; k++) sum += row[k];
            tmp[(size_t)y * w + x] = (uint8_t)((sum + (b - a + 1) / 2) / (b - a + 1));
        }
    }
    for (int y = 0; y < h; y++) {
        int a = y - r < 0 ? 0 : y - r, b = y + r >= h ? h - 1 : y + r;
        for (int x = 0; x < w; x++) {
            int sum = 0;
            for (int k = a; k <= b; k++) sum += tmp[(size_t)k * w + x];
            img[(size_t)y * w + x] = (uint8_t)((sum + (b - a + 1) / 2) / (b - a + 1));
        }
    }
}

/* Binary dilation (dilate = 1) or erosion (dilate = 0) with a (2r+1)² square, separable, on a
 * (w, h) image; pixels outside the image are ignored (neither tissue nor background). */
static void morph_raw(uint8_t *m, uint8_t *tmp, int w, int h, int r, int dilate)
{
    uint8_t hit = dilate ? 1 : 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int a = x - r < 0 ? 0 : x - r, b = x + r >= w ? w - 1 : x + r;
            uint8_t v = (uint8_t)!hit;
            for (int k = a; k <= b; k++)
                if (m[(size_t)y * w + k] == hit) {
                    v = hit;
                    break;
                }
            tmp[(size_t)y * w + x] = v;
        }
    for (int y = 0; y < h; y++) {
        int a = y - r < 0 ? 0 : y - r, b = y + r >= h ? h - 1 : y + r;
        for (int x = 0; x < w; x++) {
            uint8_t v = (uint8_t)!hit;
            for (int k = a; k <= b; k++)
                if (tmp[(size_t)k * w + x] == hit) {
                    v = hit;
                    break;
                }
            m[(size_t)y * w + x] = v;
        }
    }
}

/* Closing (close = 1: dilate, erode) or opening (erode, dilate) with radius r, done on a copy
 * padded with r background pixels per side: the slide continues as glass past its edge, so a
 * closing neither grows tissue along the border (what "ignore outside" erosion does) nor eats
 * tissue cut by the border. */
static enum wv_status morph(uint8_t *m, int w, int h, int r, int close)
{
    if (r <= 0) return WV_OK;
    int pw = w + 2 * r, ph = h + 2 * r;
    uint8_t *pad = wv_calloc((size_t)pw * ph, 1, "tissue morphology");
    uint8_t *tmp = wv_malloc((size_t)pw * ph, "tissue morphology");
    if (!pad || !tmp) {
        free(pad);
        free(tmp);
        return WV_ENOMEM;
    }
    for (int y = 0; y < h; y++) memcpy(pad + (size_t)(y + r) * pw + r, m + (size_t)y * w, (size_t)w);
    morph_raw(pad, tmp, pw, ph, r, close);
    morph_raw(pad, tmp, pw, ph, r, !close);
    for (int y = 0; y < h; y++) memcpy(m + (size_t)y * w, pad + (size_t)(y + r) * pw + r, (size_t)w);
    free(pad);
    free(tmp);
    return WV_OK;
}

/* Otsu's threshold over a 256-bin histogram: the t maximising the between-class variance of
 * {≤ t} and {> t}. */
static int otsu(const size_t hist[256])
{
    double total = 0, sum_all = 0;
    for (int i = 0; i < 256; i++) total += (double)hist[i], sum_all += (double)i * hist[i];
    double w0 = 0, sum0 = 0, best = -1;
    int best_t = 0;
    for (int t = 0; t < 255; t++) {
        w0 += (double)hist[t];
        sum0 += (double)t * hist[t];
        double w1 = total - w0;
        if (w0 == 0 || w1 == 0) continue;
        double m0 = sum0 / w0, m1 = (sum_all - sum0) / w1;
        double between = w0 * w1 * (m0 - m1) * (m0 - m1);
        if (between > best) best = between, best_t = t;
    }
    return best_t;
}

/* mask = pixels > lo 8-connected to a pixel > hi. */
static enum wv_status hysteresis(const uint8_t *v, int w, int h, int lo, int hi, uint8_t *mask)
{
    size_t n = (size_t)w * h, head = 0, tail = 0;
    int32_t *queue = wv_malloc(n * sizeof *queue, "tissue hysteresis");
    if (!queue) return WV_ENOMEM;
    for (size_t k = 0; k < n; k++) {
        mask[k] = v[k] > hi;
        if (mask[k]) queue[tail++] = (int32_t)k;
    }
    while (head < tail) {
        int32_t k = queue[head++];
        int x = k % w, y = k / w;
        for (int dy = -1; dy <= 1; dy++)
            for (int dx = -1; dx <= 1; dx++) {
                int nx = x + dx, ny = y + dy;
                if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
                size_t q = (size_t)ny * w + nx;
                if (!mask[q] && v[q] > lo) {
                    mask[q] = 1;
                    queue[tail++] = (int32_t)q;
                }
            }
    }
    free(queue);
    return WV_OK;
}

/* Fill holes: background not 4-connected to the image border becomes tissue. */
static enum wv_status fill_holes(uint8_t *m, int w, int h)
{
    size_t n = (size_t)w * h;
    uint8_t *seen = wv_calloc(n, 1, "tissue hole filling");
    int32_t *queue = wv_malloc(n * sizeof *queue, "tissue hole filling");
    if (!seen || !queue) {
        free(seen);
        free(queue);
        return WV_ENOMEM;
    }
    size_t head = 0, tail = 0;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            size_t k = (size_t)y * w + x;
            if ((x == 0 || y == 0 || x == w - 1 || y == h - 1) && !m[k] && !seen[k]) {
                seen[k] = 1;
                queue[tail++] = (int32_t)k;
            }
        }
    while (head < tail) {
        int32_t k = queue[head++];
        int x = k % w, y = k / w;
        const int dx[4] = {1, -1, 0, 0}, dy[4] = {0, 0, 1, -1};
        for (int d = 0; d < 4; d++) {
            int nx = x + dx[d], ny = y + dy[d];
            if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
            size_t q = (size_t)ny * w + nx;
            if (!m[q] && !seen[q]) {
                seen[q] = 1;
                queue[tail++] = (int32_t)q;
            }
        }
    }
    for (size_t k = 0; k < n; k++)
        if (!m[k] && !seen[k]) m[k] = 1;
    free(seen);
    free(queue);
    return WV_OK;
}

/* Drop 8-connected tissue components smaller than min_px pixels. */
static enum wv_status drop_small(uint8_t *m, int w, int h, size_t min_px)
{
    if (min_px <= 1) return WV_OK;
    size_t n = (size_t)w * h;
    uint8_t *seen = wv_calloc(n, 1, "tissue components");
    int32_t *queue = wv_malloc(n * sizeof *queue, "tissue components");
    if (!seen || !queue) {
        free(seen);
        free(queue);
        return WV_ENOMEM;
    }
    for (size_t start = 0; start < n; start++) {
        if (!m[start] || seen[start]) continue;
        size_t head = 0, tail = 0;
        seen[start] = 1;
        queue[tail++] = (int32_t)start;
        while (head < tail) {
            int32_t k = queue[head++];
            int x = k % w, y = k / w;
            for (int ddy = -1; ddy <= 1; ddy++)
                for (int ddx = -1; ddx <= 1; ddx++) {
                    int nx = x + ddx, ny = y + ddy;
                    if (nx < 0 || ny < 0 || nx >= w || ny >= h) continue;
                    size_t q = (size_t)ny * w + nx;
                    if (m[q] && !seen[q]) {
                        seen[q] = 1;
                        queue[tail++] = (int32_t)q;
                    }
                }
        }
        if (tail < min_px) /* the queue holds exactly this component */
            for (size_t i = 0; i < tail; i++) m[queue[i]] = 0;
    }
    free(seen);
    free(queue);
    return WV_OK;
}

enum wv_status tissue_detect_rgb(const uint8_t *rgb, int w, int h, double mpp,
                                 const struct tissue_params *p, uint8_t *mask, int *threshold)
{
    struct tissue_params def;
    if (!p) {
        tissue_params_default(&def);
        p = &def;
    }
    size_t n = (size_t)w * h;
    *threshold = 256;
    memset(mask, 0, n);
    if (!n) return WV_OK;
    uint8_t *sat = wv_malloc(n, "tissue saturation"), *tmp = wv_malloc(n, "tissue scratch");
    uint8_t *blur = wv_malloc(n, "tissue saturation");
    enum wv_status st = WV_OK;
    if (!sat || !tmp || !blur) {
        st = WV_ENOMEM;
        goto done;
    }
    /* HSV saturation (max − min) / max, scaled to 0–255; black is 0 */
    for (size_t k = 0; k < n; k++) {
        const uint8_t *c = rgb + 3 * k;
        int mx = c[0], mn = c[0];
        for (int q = 1; q < 3; q++) {
            if (c[q] > mx) mx = c[q];
            if (c[q] < mn) mn = c[q];
        }
        sat[k] = mx ? (uint8_t)(((mx - mn) * 255 + mx / 2) / mx) : 0;
    }
    /* The threshold comes from the blurred saturation (JPEG noise and single dark nuclei
     * smoothed out of the histogram); the mask from the unblurred one, so one-pixel-wide strands
     * of tissue (CMU-1's left strand at 32 µm/px) are not averaged away with the glass. */
    memcpy(blur, sat, n);
    box_blur(blur, tmp, w, h, p->blur_radius);
    size_t hist[256] = {0};
    int lo = 255, hi = 0;
    for (size_t k = 0; k < n; k++) {
        hist[blur[k]]++;
        if (blur[k] < lo) lo = blur[k];
        if (blur[k] > hi) hi = blur[k];
    }
    /* A flat histogram (glass only, or one colour) has no two classes: Otsu would split noise
     * and call half the slide tissue. */
    if (hi - lo < p->min_contrast) goto done;
    int t = otsu(hist);
    if (t < p->min_saturation) t = p->min_saturation;
    *threshold = t;
    /* Hysteresis: pixels above t are tissue, and so are pixels above the lower threshold
     * connected to them. Pale tissue (thin strands averaged with glass at 32 µm/px, CMU-1's left
     * strand reaches 20–50 where the Otsu split is 41) stays attached; faint specks alone do not. */
    int t_low = (int)(t * p->low_ratio);
    if (t_low < p->min_saturation) t_low = p->min_saturation;
    if (t_low > t) t_low = t;
    if ((st = hysteresis(sat, w, h, t_low, t, mask)) != WV_OK) goto done;
    if ((st = morph(mask, w, h, p->close_radius, 1)) != WV_OK) goto done;
    if ((st = morph(mask, w, h, p->open_radius, 0)) != WV_OK) goto done;
    if ((st = fill_holes(mask, w, h)) != WV_OK) goto done;
    double px_um2 = mpp * mpp;
    size_t min_px = px_um2 > 0 ? (size_t)ceil(p->min_area_um2 / px_um2) : 0;
    st = drop_small(mask, w, h, min_px);
done:
    free(sat);
    free(blur);
    free(tmp);
    return st;
}

enum wv_status tissue_detect(struct slide *s, const struct tissue_params *p, struct tissue_mask *out)
{
    memset(out, 0, sizeof *out);
    struct tissue_params def;
    if (!p) {
        tissue_params_default(&def);
        p = &def;
    }
    enum wv_status st = slide_require_mpp(s);
    if (st != WV_OK) return st;
    if (!(p->mask_mpp > 0) || !isfinite(p->mask_mpp))
        return error_set(WV_EINVAL, "tissue mask resolution %g µm/px: must be positive", p->mask_mpp);
    double mx = slide_mpp_x(s), my = slide_mpp_y(s);
    /* never finer than the slide itself */
    double dsx = p->mask_mpp / mx, dsy = p->mask_mpp / my;
    if (dsx < 1) dsx = 1;
    if (dsy < 1) dsy = 1;
    int64_t W0 = slide_level_width(s, 0), H0 = slide_level_height(s, 0);
    int64_t w = (int64_t)ceil(W0 / dsx), h = (int64_t)ceil(H0 / dsy);
    if (w > 65536 || h > 65536)
        return error_set(WV_EINVAL, "tissue mask would be %lldx%lld px: slide too large for a "
                                    "%g µm/px mask", (long long)w, (long long)h, p->mask_mpp);
    uint8_t *rgb = wv_malloc((size_t)w * (size_t)h * 3, "tissue thumbnail");
    uint8_t *mask = wv_malloc((size_t)w * (size_t)h, "tissue mask");
    if (!rgb || !mask) {
        st = WV_ENOMEM;
        goto fail;
    }
    if ((st = slide_read_region_ds(s, 0, 0, w, h, dsx, dsy, rgb)) != WV_OK) goto fail;
    int thr;
    if ((st = tissue_detect_rgb(rgb, (int)w, (int)h, sqrt(dsx * mx * dsy * my), p, mask, &thr)) !=
        WV_OK)
        goto fail;
    free(rgb);
    size_t n_t = 0;
    for (size_t k = 0; k < (size_t)w * h; k++) n_t += mask[k];
    out->mask = mask;
    out->w = (int)w, out->h = (int)h;
    out->mpp_x = dsx * mx, out->mpp_y = dsy * my;
    out->downsample_x = dsx, out->downsample_y = dsy;
    out->slide_w = W0, out->slide_h = H0;
    out->threshold = thr;
    out->fraction = (double)n_t / ((double)w * h);
    return WV_OK;
fail:
    free(rgb);
    free(mask);
    return st;
}

int tissue_at(const struct tissue_mask *m, double x, double y)
{
    if (!m->mask) return 0;
    double fx = floor(x / m->downsample_x), fy = floor(y / m->downsample_y);
    if (fx < 0 || fy < 0 || fx >= m->w || fy >= m->h) return 0;
    return m->mask[(size_t)fy * m->w + (size_t)fx];
}

int tissue_any_in_rect(const struct tissue_mask *m, double x0, double y0, double x1, double y1)
{
    if (!m->mask || x1 <= x0 || y1 <= y0) return 0;
    /* mask pixels overlapping the rectangle (a pixel touching only at an edge does not count) */
    double a = floor(x0 / m->downsample_x), b = ceil(x1 / m->downsample_x);
    double c = floor(y0 / m->downsample_y), d = ceil(y1 / m->downsample_y);
    if (a < 0) a = 0;
    if (c < 0) c = 0;
    if (b > m->w) b = m->w;
    if (d > m->h) d = m->h;
    for (int y = (int)c; y < (int)d; y++)
        for (int x = (int)a; x < (int)b; x++)
            if (m->mask[(size_t)y * m->w + x]) return 1;
    return 0;
}
