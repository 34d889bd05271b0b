/*
 * test_froc.c — the CAMELYON16 lesion evaluation (src/froc.h): the worked example of
 * CAMELYON16_PROTOCOL.md §1.7 (FROC 0.777778, every intermediate value), the matching rules
 * (ITC hits ignored, duplicates, p <= 0, outside and last-strip detections), np.interp vs step
 * scores, float32 TP thresholds, and the undefined cases.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/froc.h"
#include "testutil.h"

static void disc(uint8_t *m, int rows, int cols, int r0, int c0, int rad)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            if ((r - r0) * (r - r0) + (c - c0) * (c - c0) <= rad * rad) m[r * cols + c] = 1;
}

/* §1.7: 200×200 level-5 mask with A, B1+B2, C (ITC), D. */
static uint8_t *example_mask(void)
{
    uint8_t *m = calloc(200 * 200, 1);
    disc(m, 200, 200, 60, 60, 30);
    disc(m, 200, 200, 150, 40, 6);
    disc(m, 200, 200, 150, 60, 6);
    disc(m, 200, 200, 40, 160, 3);
    for (int r = 100; r <= 103; r++)
        for (int c = 120; c <= 147; c++) m[r * 200 + c] = 1;
    return m;
}

static struct froc_detection det_at(double p, int row, int col)
{
    struct froc_detection d = {p, (int64_t)col * 32 + 16, (int64_t)row * 32 + 16};
    return d;
}

static void test_worked_example(void)
{
    uint8_t *t = example_mask();
    struct froc_mask m;
    CHECK(froc_mask_build(t, 200, 200, FROC_L0_RESOLUTION_UM, &m) == WV_OK);
    CHECK(fabs(m.dilation_px - 4.822530864) < 1e-8);
    CHECK(fabs(m.itc_px - 35.365226) < 1e-6);
    CHECK(m.n_labels == 4);
    const double want_axis[5] = {0, 68.686, 14.997, 40.511, 45.266};
    for (int l = 1; l <= 4 && m.n_labels == 4; l++)
        CHECK_MSG(fabs(m.major_axis_px[l] - want_axis[l]) < 1e-3, "label %d axis %.4f", l,
                  m.major_axis_px[l]);
    CHECK(m.n_labels == 4 && m.is_itc[2] && !m.is_itc[1] && !m.is_itc[3] && !m.is_itc[4]);
    CHECK(m.n_tumors == 3);
    /* label order: A (row 60), C (row 40 but starts lower), D, B */
    CHECK(m.labels[60 * 200 + 60] == 1 && m.labels[40 * 200 + 160] == 2 &&
          m.labels[101 * 200 + 133] == 3 && m.labels[150 * 200 + 50] == 4);

    struct froc_detection tum[] = {det_at(0.90, 60, 60),  det_at(0.95, 50, 70),
                                   det_at(0.60, 150, 50), det_at(0.99, 40, 160),
                                   det_at(0.70, 190, 190), det_at(0.30, 10, 100),
                                   det_at(0.40, 101, 130)};
    struct froc_detection nor[] = {{0.80, 1000, 1000}, {0.20, 2000, 2000}};
    struct froc_opts o = {FROC_L0_RESOLUTION_UM, 1};
    struct froc_slide s1, s2;
    CHECK(froc_match(&m, 200 * 32, 200 * 32, tum, 7, &o, &s1) == WV_OK);
    CHECK(froc_match(NULL, 0, 0, nor, 2, &o, &s2) == WV_OK);
    CHECK(s1.n_fp == 2 && s1.fp[0] == 0.7 && s1.fp[1] == 0.3);
    CHECK(s2.n_fp == 2 && s2.fp[0] == 0.8 && s2.fp[1] == 0.2);
    CHECK(s1.n_slots == 4 && s1.tp[0] == (double)0.95f && s1.tp[1] == 0 &&
          s1.tp[2] == (double)0.4f && s1.tp[3] == (double)0.6f);
    CHECK(s1.n_itc_hits == 1 && s1.n_dup == 1 && s1.n_tp_hits == 3);
    const struct froc_slide *sl[2] = {&s1, &s2};
    struct froc_curve c;
    CHECK(froc_compute(sl, 2, &o, FROC_INTERP, &c) == WV_OK);
    const double wthr[] = {0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.95};
    const double wfp[] = {2.0, 1.5, 1.0, 1.0, 1.0, 0.5, 0.0, 0};
    const double wse[] = {1.0, 1.0, 1.0, 2.0 / 3, 1.0 / 3, 1.0 / 3, 1.0 / 3, 0};
    CHECK(c.n == 8);
    for (size_t i = 0; i < 8 && c.n == 8; i++) {
        if (i < 7) CHECK_MSG(fabs(c.thr[i] - wthr[i]) < 1e-6, "thr %zu %.9g", i, c.thr[i]);
        CHECK_MSG(c.avg_fp[i] == wfp[i] && fabs(c.sens[i] - wse[i]) < 1e-12, "point %zu", i);
    }
    const double wat[] = {1.0 / 3, 1.0 / 3, 1, 1, 1, 1};
    for (int i = 0; i < FROC_N_RATES; i++) CHECK(fabs(c.sens_at[i] - wat[i]) < 1e-12);
    printf("worked example (§1.7): FROC %.6f (want 0.777778)\n", c.score);
    CHECK(fabs(c.score - 0.777778) < 5e-7);
    CHECK(fabs(c.score - 7.0 / 9) < 1e-12);
    froc_curve_free(&c);
    /* step mode: the same here (the curve has a point at each rate or is flat) */
    CHECK(froc_compute(sl, 2, &o, FROC_STEP, &c) == WV_OK);
    printf("worked example, step mode: FROC %.6f\n", c.score);
    CHECK(fabs(c.score - 7.0 / 9) < 1e-12);
    froc_curve_free(&c);
    froc_slide_free(&s1);
    froc_slide_free(&s2);
    froc_mask_free(&m);
    free(t);
}

/* float32 TPs: a TP and an FP both at 0.7 give the thresholds 0.699999988 and 0.7; at 0.7 the
 * float32 TP still counts (numpy casts the threshold to float32). */
static void test_float32(void)
{
    uint8_t t[10 * 10] = {0};
    t[5 * 10 + 5] = t[5 * 10 + 6] = 1; /* 1×2 px: major axis 2 px, not an ITC */
    struct froc_mask m;
    /* mpp 0.01: thresholds huge, so a single pixel is a lesion only with a tiny ITC size; use a
     * large mpp instead so that the one-pixel lesion is not an ITC */
    CHECK(froc_mask_build(t, 10, 10, 100.0, &m) == WV_OK);
    CHECK(m.n_labels == 1 && m.n_tumors == 1);
    struct froc_detection d[] = {{0.7, 5 * 32, 5 * 32}, {0.7, 0, 9 * 32}};
    struct froc_opts o32 = {100.0, 1}, o64 = {100.0, 0};
    struct froc_slide s;
    CHECK(froc_match(&m, 320, 320, d, 2, &o32, &s) == WV_OK);
    const struct froc_slide *sl[1] = {&s};
    struct froc_curve c;
    CHECK(froc_compute(sl, 1, &o32, FROC_INTERP, &c) == WV_OK);
    /* distinct {0.699999988, 0.7}: only 0.7 is a threshold; TP counted at it in float32 */
    CHECK(c.n == 2 && c.sens[0] == 1.0 && c.avg_fp[0] == 1.0);
    froc_curve_free(&c);
    froc_slide_free(&s);
    CHECK(froc_match(&m, 320, 320, d, 2, &o64, &s) == WV_OK);
    CHECK(froc_compute(sl, 1, &o64, FROC_INTERP, &c) == WV_OK);
    /* float64: 0.7 == 0.7, the set has one value, which is skipped: only the end point */
    CHECK(c.n == 1 && c.score == 0);
    froc_curve_free(&c);
    froc_slide_free(&s);
    froc_mask_free(&m);
}

static void test_edges(void)
{
    /* 3×3 tumour block at level 5 in a 20×20 mask; slide 20·32+20 px wide (a partial strip) */
    uint8_t t[20 * 20] = {0};
    for (int r = 8; r < 11; r++)
        for (int c = 16; c < 20; c++) t[r * 20 + c] = 1;
    struct froc_mask m;
    CHECK(froc_mask_build(t, 20, 20, 10.0, &m) == WV_OK); /* mpp 10: ITC threshold < 1 px */
    CHECK(m.n_tumors == 1);
    struct froc_opts o = {10.0, 0};
    struct froc_detection d[] = {
        {0.9, 20 * 32 + 5, 9 * 32},  /* last partial strip: nearest mask column 19 → TP */
        {0.8, -5, 9 * 32},           /* outside (negative) → FP */
        {0.7, 20 * 32 + 30, 9 * 32}, /* beyond the slide width → FP */
        {0.6, 17 * 32, 9 * 32},      /* duplicate on the lesion */
        {0.0, 18 * 32, 9 * 32},      /* p = 0 on the lesion: neither */
    };
    struct froc_slide s;
    CHECK(froc_match(&m, 20 * 32 + 20, 20 * 32 + 20, d, 5, &o, &s) == WV_OK);
    CHECK(s.n_edge == 1 && s.n_outside == 2 && s.n_fp == 2 && s.tp[0] == 0.9);
    CHECK(s.n_dup == 1 && s.n_nonpos == 1);
    froc_slide_free(&s);
    /* size unknown: beyond the mask is outside */
    CHECK(froc_match(&m, 0, 0, d, 1, &o, &s) == WV_OK);
    CHECK(s.n_outside == 1 && s.n_fp == 1 && s.tp[0] == 0);
    froc_slide_free(&s);
    /* empty detections on a tumour slide: sensitivity 0 everywhere */
    CHECK(froc_match(&m, 0, 0, NULL, 0, &o, &s) == WV_OK);
    const struct froc_slide *sl[1] = {&s};
    struct froc_curve c;
    CHECK(froc_compute(sl, 1, &o, FROC_INTERP, &c) == WV_OK);
    CHECK(c.score == 0);
    froc_curve_free(&c);
    froc_slide_free(&s);
    /* no lesion at all: undefined */
    CHECK(froc_match(NULL, 0, 0, d, 2, &o, &s) == WV_OK);
    CHECK(froc_compute(sl, 1, &o, FROC_INTERP, &c) == WV_EINVAL);
    error_clear();
    CHECK(froc_compute(sl, 0, &o, FROC_INTERP, &c) == WV_EINVAL);
    error_clear();
    froc_slide_free(&s);
    froc_mask_free(&m);
}

/* np.interp's duplicate rule and clamping on a hand-made curve. */
static void test_interp(void)
{
    double thr[] = {0.1, 0.2, 0.3, 0.4, NAN}, fp[] = {3.0, 1.0, 1.0, 0.5, 0};
    double se[] = {0.9, 0.8, 0.6, 0.5, 0};
    struct froc_curve c = {5, thr, fp, se, {0}, 0, 1, 1};
    CHECK(froc_sens_at(&c, 1.0, FROC_INTERP) == 0.8); /* highest sensitivity at avgFP 1 */
    CHECK(fabs(froc_sens_at(&c, 2.0, FROC_INTERP) - 0.85) < 1e-15);
    CHECK(froc_sens_at(&c, 8.0, FROC_INTERP) == 0.9);                /* clamped */
    CHECK(fabs(froc_sens_at(&c, 0.25, FROC_INTERP) - 0.25) < 1e-15); /* (0,0)–(0.5,0.5) */
    CHECK(froc_sens_at(&c, 0.25, FROC_STEP) == 0);
    CHECK(froc_sens_at(&c, 2.0, FROC_STEP) == 0.8);
    CHECK(froc_sens_at(&c, 8.0, FROC_STEP) == 0.9);
}

int main(void)
{
    test_worked_example();
    test_float32();
    test_edges();
    test_interp();
    return tu_finish("test_froc");
}
