/* exports.c — CAMELYON16 CSVs, QuPath GeoJSON, ASAP XML; contract in exports.h, formats in
 * docs/formats.md. Each writer streams into "<path>.tmp.<pid>" and renames on success. */
#include "exports.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/util.h"

/* A file being written under a temporary name. */
struct afile {
    FILE *f;
    const char *path;
    char tmp[4096];
};

static enum wv_status aopen(struct afile *a, const char *path)
{
    a->f = NULL;
    a->path = path;
    if (!path || !path[0]) return error_set(WV_EINVAL, "export: no output path");
    if (snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof a->tmp)
        return error_set(WV_EINVAL, "%s: path too long", path);
    if (!(a->f = fopen(a->tmp, "wb")))
        return error_set(WV_EIO, "%s: cannot create: %s", path, strerror(errno));
    return WV_OK;
}

/* Finish: flush, fsync, close, rename when ok is true and every write succeeded; otherwise remove
 * the temp file. Returns the status. */
static enum wv_status aclose(struct afile *a, enum wv_status st)
{
    if (!a->f) return st;
    if (!st && (fflush(a->f) != 0 || ferror(a->f) || fsync(fileno(a->f)) != 0))
        st = error_set(WV_EIO, "%s: write: %s", a->path, strerror(errno ? errno : EIO));
    if (fclose(a->f) != 0 && !st) st = error_set(WV_EIO, "%s: close: %s", a->path, strerror(errno));
    a->f = NULL;
    if (!st && rename(a->tmp, a->path) != 0)
        st = error_set(WV_EIO, "%s: rename from temp file: %s", a->path, strerror(errno));
    if (st) unlink(a->tmp);
    return st;
}

static enum wv_status bad_lesions(const char *path, const struct resultsdb_lesion *l, size_t n)
{
    if (n && !l) return error_set(WV_EINVAL, "%s: %zu lesions but no array", path, n);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(l[i].prob))
            return error_set(WV_EINVAL, "%s: lesion %zu: probability %g is not finite", path, i,
                             l[i].prob);
    return WV_OK;
}

enum wv_status exports_lesions_csv(const char *path, const struct resultsdb_lesion *l, size_t n)
{
    struct afile a;
    enum wv_status st = bad_lesions(path, l, n);
    if (st || (st = aopen(&a, path))) return st;
    for (size_t i = 0; i < n; i++)
        fprintf(a.f, "%.9g,%lld,%lld\n", l[i].prob, (long long)l[i].x, (long long)l[i].y);
    return aclose(&a, WV_OK);
}

/* JSON string body (without quotes): escapes ", \ and control characters. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
        else if (*p < 0x20) fprintf(f, "\\u%04x", *p);
        else fputc(*p, f);
    }
    fputc('"', f);
}

enum wv_status exports_lesions_geojson(const char *path, const char *slide_id,
                                       const struct resultsdb_lesion *l, size_t n)
{
    struct afile a;
    enum wv_status st = bad_lesions(path, l, n);
    if (st || (st = aopen(&a, path))) return st;
    fputs("{\"type\":\"FeatureCollection\",\"features\":[", a.f);
    for (size_t i = 0; i < n; i++) {
        fprintf(a.f,
                "%s\n{\"type\":\"Feature\",\"geometry\":{\"type\":\"Point\",\"coordinates\":[%lld,"
                "%lld]},\"properties\":{\"objectType\":\"annotation\",\"name\":\"lesion %zu\","
                "\"classification\":{\"name\":\"Tumor\",\"color\":[200,0,0]},",
                i ? "," : "", (long long)l[i].x, (long long)l[i].y, i);
        if (slide_id) {
            fputs("\"slide\":", a.f);
            json_str(a.f, slide_id);
            fputc(',', a.f);
        }
        fprintf(a.f, "\"measurements\":{\"probability\":%.9g,\"area_cells\":%lld}}}", l[i].prob,
                (long long)l[i].area_cells);
    }
    fputs("\n]}\n", a.f);
    return aclose(&a, WV_OK);
}

enum wv_status exports_cells_geojson(const char *path, const float *hm, int rows, int cols,
                                     double cell, double min_prob)
{
    struct afile a;
    enum wv_status st;
    if (!hm || rows <= 0 || cols <= 0 || !(cell > 0) || !isfinite(cell))
        return error_set(WV_EINVAL, "%s: heatmap grid %d x %d, cell %g px invalid",
                         path ? path : "(null)", rows, cols, cell);
    if ((st = aopen(&a, path))) return st;
    fputs("{\"type\":\"FeatureCollection\",\"features\":[", a.f);
    size_t k = 0;
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) {
            float v = hm[(size_t)r * cols + c];
            if (!isfinite(v) || v < min_prob) continue;
            long long x0 = llround(c * cell), x1 = llround((c + 1) * cell);
            long long y0 = llround(r * cell), y1 = llround((r + 1) * cell);
            fprintf(a.f,
                    "%s\n{\"type\":\"Feature\",\"geometry\":{\"type\":\"Polygon\",\"coordinates\":"
                    "[[[%lld,%lld],[%lld,%lld],[%lld,%lld],[%lld,%lld],[%lld,%lld]]]},"
                    "\"properties\":{\"objectType\":\"detection\",\"name\":\"cell %d,%d\","
                    "\"measurements\":{\"probability\":%.9g}}}",
                    k++ ? "," : "", x0, y0, x1, y0, x1, y1, x0, y1, x0, y0, r, c, (double)v);
        }
    fputs("\n]}\n", a.f);
    return aclose(&a, WV_OK);
}

enum wv_status exports_lesions_asap_xml(const char *path, const struct resultsdb_lesion *l,
                                        size_t n)
{
    struct afile a;
    enum wv_status st = bad_lesions(path, l, n);
    if (st || (st = aopen(&a, path))) return st;
    fputs("<?xml version=\"1.0\"?>\n<ASAP_Annotations>\n  <Annotations>\n", a.f);
    for (size_t i = 0; i < n; i++)
        fprintf(a.f,
                "    <Annotation Name=\"lesion %zu p=%.4f\" Type=\"Dot\" "
                "PartOfGroup=\"lesion_candidates\" Color=\"#F4FA58\">\n"
                "      <Coordinates>\n"
                "        <Coordinate Order=\"0\" X=\"%lld\" Y=\"%lld\"/>\n"
                "      </Coordinates>\n    </Annotation>\n",
                i, l[i].prob, (long long)l[i].x, (long long)l[i].y);
    fputs("  </Annotations>\n  <AnnotationGroups>\n"
          "    <Group Name=\"lesion_candidates\" PartOfGroup=\"None\" Color=\"#ff0000\">"
          "<Attributes/></Group>\n  </AnnotationGroups>\n</ASAP_Annotations>\n",
          a.f);
    return aclose(&a, WV_OK);
}

/* One CSV field, quoted when it holds a separator, a quote or a line break. */
static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

enum wv_status exports_slide_csv(const char *path, const struct exports_slide_prob *rows, size_t n,
                                 int header)
{
    struct afile a;
    enum wv_status st;
    if (n && !rows) return error_set(WV_EINVAL, "%s: %zu rows but no array", path, n);
    for (size_t i = 0; i < n; i++)
        if (!rows[i].name || !rows[i].name[0] || !isfinite(rows[i].prob))
            return error_set(WV_EINVAL, "%s: row %zu: empty name or non-finite probability",
                             path, i);
    if ((st = aopen(&a, path))) return st;
    if (header) fputs("name,probability\n", a.f);
    for (size_t i = 0; i < n; i++) {
        csv_field(a.f, rows[i].name);
        fprintf(a.f, ",%.9g\n", rows[i].prob);
    }
    return aclose(&a, WV_OK);
}
