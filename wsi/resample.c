/* resample.c — area-averaging and bilinear RGB resamplers, ARGB → RGB; see resample.h. */
#include "resample.h"

#include <math.h>
#include <stdlib.h>

#include "src/util.h"

void resample_argb_to_rgb(const uint32_t *argb, size_t n, uint8_t *rgb)
{
    for (size_t k = 0; k < n; k++) {
        uint32_t p = argb[k];
        uint32_t a = p >> 24, r = (p >> 16) & 0xff, g = (p >> 8) & 0xff, b = p & 0xff;
        uint8_t *o = rgb + 3 * k;
        if (a == 255) {
            o[0] = (uint8_t)r, o[1] = (uint8_t)g, o[2] = (uint8_t)b;
        } else if (a == 0) {
            /* transparent: outside the slide or an empty tile — the glass is white */
            o[0] = o[1] = o[2] = 255;
        } else {
            uint32_t c[3] = {r, g, b};
            for (int q = 0; q < 3; q++) {
                uint32_t v = (c[q] * 255 + a / 2) / a;
                o[q] = (uint8_t)(v > 255 ? 255 : v);
            }
        }
    }
}

/* One output pixel's footprint along an axis: source indices [first, first + n) with weights
 * (covered length); indices outside the buffer are kept and read as white. */
struct span {
    int64_t first;
    int n;
    size_t w_off; /* offset into the weights array */
};

/* Footprints of `nout` output pixels, origin o, step s. *weights is malloc'ed. */
static enum wv_status make_spans(int nout, double o, double s, struct span **spans_out,
                                 double **weights_out)
{
    struct span *sp = wv_malloc((size_t)nout * sizeof *sp, "resample spans");
    int per = (int)ceil(s) + 2;
    double *w = wv_malloc((size_t)nout * (size_t)per * sizeof *w, "resample weights");
    if (!sp || !w) {
        free(sp);
        free(w);
        return WV_ENOMEM;
    }
    size_t off = 0;
    for (int i = 0; i < nout; i++) {
        double a = o + i * s, b = o + (i + 1) * s;
        int64_t u0 = (int64_t)floor(a), u1 = (int64_t)ceil(b);
        if (u1 <= u0) u1 = u0 + 1;
        sp[i].first = u0;
        sp[i].w_off = off;
        int n = 0;
        for (int64_t u = u0; u < u1 && n < per; u++) {
            double lo = a > (double)u ? a : (double)u;
            double hi = b < (double)(u + 1) ? b : (double)(u + 1);
            w[off + (size_t)n++] = hi > lo ? hi - lo : 0.0;
        }
        sp[i].n = n;
        off += (size_t)n;
    }
    *spans_out = sp;
    *weights_out = w;
    return WV_OK;
}

enum wv_status resample_area_rgb(const uint8_t *src, int sw, int sh, size_t src_stride, double ox,
                                 double oy, double sx, double sy, uint8_t *dst, int dw, int dh,
                                 size_t dst_stride)
{
    if (dw <= 0 || dh <= 0) return WV_OK;
    struct span *xs = NULL, *ys = NULL;
    double *xw = NULL, *yw = NULL;
    double *rowbuf = NULL;
    enum wv_status st = make_spans(dw, ox, sx, &xs, &xw);
    if (st == WV_OK) st = make_spans(dh, oy, sy, &ys, &yw);
    if (st != WV_OK) goto done;
    /* the source rows any output row touches: [v_lo, v_hi) */
    int64_t v_lo = ys[0].first, v_hi = ys[dh - 1].first + ys[dh - 1].n;
    size_t nrows = (size_t)(v_hi - v_lo), rowlen = (size_t)dw * 3;
    rowbuf = wv_malloc(nrows * rowlen * sizeof *rowbuf, "resample row buffer");
    if (!rowbuf) {
        st = WV_ENOMEM;
        goto done;
    }
    /* horizontal pass: every touched source row reduced to dw pixels (weighted sums) */
    for (int64_t v = v_lo; v < v_hi; v++) {
        double *h = rowbuf + (size_t)(v - v_lo) * rowlen;
        int inside_row = v >= 0 && v < sh;
        const uint8_t *srow = inside_row ? src + (size_t)v * src_stride : NULL;
        for (int i = 0; i < dw; i++) {
            double acc[3] = {0, 0, 0};
            const double *w = xw + xs[i].w_off;
            for (int k = 0; k < xs[i].n; k++) {
                int64_t u = xs[i].first + k;
                if (inside_row && u >= 0 && u < sw) {
                    const uint8_t *p = srow + 3 * (size_t)u;
                    acc[0] += w[k] * p[0], acc[1] += w[k] * p[1], acc[2] += w[k] * p[2];
                } else {
                    acc[0] += w[k] * 255.0, acc[1] += w[k] * 255.0, acc[2] += w[k] * 255.0;
                }
            }
            h[3 * i] = acc[0], h[3 * i + 1] = acc[1], h[3 * i + 2] = acc[2];
        }
    }
    /* vertical pass; divide by the footprint area sx·sy */
    double inv_area = 1.0 / (sx * sy);
    for (int j = 0; j < dh; j++) {
        uint8_t *o = dst + (size_t)j * dst_stride;
        const double *w = yw + ys[j].w_off;
        for (size_t c = 0; c < rowlen; c++) {
            double acc = 0;
            for (int k = 0; k < ys[j].n; k++)
                acc += w[k] * rowbuf[(size_t)(ys[j].first + k - v_lo) * rowlen + c];
            double v = floor(acc * inv_area + 0.5);
            o[c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
done:
    free(rowbuf);
    free(xs);
    free(xw);
    free(ys);
    free(yw);
    return st;
}

void resample_bilinear_rgb(const uint8_t *src, int sw, int sh, size_t src_stride, double ox,
                           double oy, double sx, double sy, uint8_t *dst, int dw, int dh,
                           size_t dst_stride)
{
    for (int j = 0; j < dh; j++) {
        double fy = oy + (j + 0.5) * sy - 0.5;
        if (fy < 0) fy = 0;
        if (fy > sh - 1) fy = sh - 1;
        int y0 = (int)floor(fy), y1 = y0 + 1 < sh ? y0 + 1 : y0;
        double ty = fy - y0;
        const uint8_t *r0 = src + (size_t)y0 * src_stride, *r1 = src + (size_t)y1 * src_stride;
        uint8_t *o = dst + (size_t)j * dst_stride;
        for (int i = 0; i < dw; i++) {
            double fx = ox + (i + 0.5) * sx - 0.5;
            if (fx < 0) fx = 0;
            if (fx > sw - 1) fx = sw - 1;
            int x0 = (int)floor(fx), x1 = x0 + 1 < sw ? x0 + 1 : x0;
            double tx = fx - x0;
            for (int c = 0; c < 3; c++) {
                double top = r0[3 * x0 + c] * (1 - tx) + r0[3 * x1 + c] * tx;
                double bot = r1[3 * x0 + c] * (1 - tx) + r1[3 * x1 + c] * tx;
                double v = floor(top * (1 - ty) + bot * ty + 0.5);
                o[3 * i + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
    }
}
