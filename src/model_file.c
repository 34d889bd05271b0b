/*
 * model_file.c — the wsi-vmamba model file (model_file.h): one safetensors with "backbone." and
 * "head." tensors and string-valued __metadata__ whose values are JSON texts. Writing goes
 * through weights_save_safetensors (atomic); reading through weights_load, then every metadata
 * key and every tensor is checked before a struct model is handed out.
 */
#include "model_file.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "util.h"
#include "version.h"

static const char *const UNTRAINED_NOTE =
    "head randomly initialised; outputs are structurally right but not meaningful";

void model_meta_default(struct model_meta *m)
{
    memset(m, 0, sizeof *m);
    m->version = MODEL_FILE_VERSION;
    m->target_mpp = 0.5;
    m->region_size = 10000;
    m->overlap = 256;
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    memcpy(m->norm_mean, mean, sizeof mean);
    memcpy(m->norm_std, std, sizeof std);
    m->trained = 0;
    m->note = (char *)UNTRAINED_NOTE; /* not owned; model_meta_free only frees loaded metas */
}

void model_meta_free(struct model_meta *m)
{
    if (m->note != UNTRAINED_NOTE) free(m->note);
    free(m->provenance_json);
    free(m->training_json);
    memset(m, 0, sizeof *m);
}

char *model_provenance_json(const char *backbone_file, const char *backbone_sha256,
                            const char *random_backbone, uint64_t seed)
{
    cJSON *o = cJSON_CreateObject();
    char *txt = NULL;
    if (o) {
        if (backbone_file) cJSON_AddStringToObject(o, "backbone_file", backbone_file);
        if (backbone_sha256) cJSON_AddStringToObject(o, "backbone_sha256", backbone_sha256);
        if (random_backbone) cJSON_AddStringToObject(o, "random_backbone", random_backbone);
        cJSON_AddNumberToObject(o, "seed", (double)seed);
        cJSON_AddStringToObject(o, "tool_version", WV_VERSION_STRING);
        char ts[32];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
        cJSON_AddStringToObject(o, "created_at", ts);
        txt = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
    }
    if (!txt) error_set(WV_ENOMEM, "model provenance");
    return txt;
}

enum wv_status model_backbone_preset(const char *name, struct vmamba_config *cfg)
{
    static const struct {
        const char *name;
        int dims0, depths[VMAMBA_STAGES];
    } presets[] = {{"tiny", 16, {1, 1, 2, 1}}, {"t-s1l8", 96, {2, 2, 8, 2}}};
    memset(cfg, 0, sizeof *cfg);
    for (size_t p = 0; p < sizeof presets / sizeof presets[0]; p++) {
        if (strcmp(name, presets[p].name)) continue;
        cfg->family = VMAMBA_V2;
        cfg->d_state = 1;
        cfg->ssm_ratio = 1.0;
        for (int i = 0; i < VMAMBA_STAGES; i++) {
            int C = presets[p].dims0 << i;
            cfg->dims[i] = C;
            cfg->depths[i] = presets[p].depths[i];
            cfg->d_inner[i] = C;
            cfg->dt_rank[i] = (C + 15) / 16;
            cfg->mlp_hidden[i] = 4 * C;
        }
        return WV_OK;
    }
    return error_set(WV_EINVAL, "random backbone '%s': expected tiny or t-s1l8", name);
}

/* ---- save ----------------------------------------------------------------------------------- */

/* Add key → JSON text `val` (taken over, freed here) as a string value; 0 on failure. */
static int add_text(cJSON *md, const char *key, char *val)
{
    if (!val) return 0;
    cJSON *s = cJSON_CreateString(val);
    free(val);
    return s && cJSON_AddItemToObject(md, key, s);
}

static char *dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dupf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    return strdup(buf);
}

/* JSON-encode a plain string ("a" → "\"a\""), malloc'ed */
static char *json_string(const char *s)
{
    cJSON *j = cJSON_CreateString(s ? s : "");
    char *t = j ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    return t;
}

enum wv_status model_file_save(const char *path, const struct weights *backbone,
                               const struct head *head, const struct model_meta *meta)
{
    struct vmamba_config bc;
    enum wv_status st = vmamba_config_infer(backbone, "", &bc);
    if (st) {
        error_prefix("backbone");
        return st;
    }
    const struct head_config *hc = head_get_config(head);
    if (hc->in_dim != bc.dims[3])
        return error_set(WV_EINVAL, "head input dim %d does not match the backbone's dims[3] = %d",
                         hc->in_dim, bc.dims[3]);
    if (!(meta->target_mpp > 0) || meta->region_size < 32 || meta->overlap < 0 ||
        meta->overlap % 32 || 2 * meta->overlap >= meta->region_size)
        return error_set(WV_EINVAL,
                         "model metadata: target mpp %g, region %d, overlap %d: need mpp > 0, "
                         "region >= 32, overlap a multiple of 32 below region/2",
                         meta->target_mpp, meta->region_size, meta->overlap);
    int nh;
    const struct weight_tensor *ht = head_tensors(head, &nh);
    const int n = backbone->n + nh;
    struct weight_tensor *t = wv_calloc((size_t)n, sizeof *t, "model file tensor table");
    cJSON *md = cJSON_CreateObject();
    char *md_txt = NULL;
    if (!t || !md) {
        st = error_set(WV_ENOMEM, "model file");
        goto done;
    }
    for (int i = 0; i < n; i++) {
        const struct weight_tensor *s = i < backbone->n ? &backbone->t[i] : &ht[i - backbone->n];
        t[i] = *s;
        t[i].name = dupf("%s%s", i < backbone->n ? MODEL_BACKBONE_PREFIX : MODEL_HEAD_PREFIX,
                         s->name);
        if (!t[i].name) {
            st = error_set(WV_ENOMEM, "model file tensor names");
            goto done;
        }
    }
    int ok = 1;
    ok &= add_text(md, "wsi_vmamba_model", dupf("%d", meta->version));
    ok &= add_text(md, "backbone_config", vmamba_config_json(&bc));
    ok &= add_text(md, "head_config", head_config_json(hc));
    ok &= add_text(md, "target_mpp", dupf("%.9g", meta->target_mpp));
    ok &= add_text(md, "region_size", dupf("%d", meta->region_size));
    ok &= add_text(md, "overlap", dupf("%d", meta->overlap));
    ok &= add_text(md, "normalization",
                   dupf("{\"mean\":[%.6g,%.6g,%.6g],\"std\":[%.6g,%.6g,%.6g]}",
                        (double)meta->norm_mean[0], (double)meta->norm_mean[1],
                        (double)meta->norm_mean[2], (double)meta->norm_std[0],
                        (double)meta->norm_std[1], (double)meta->norm_std[2]));
    ok &= add_text(md, "trained", strdup(meta->trained ? "true" : "false"));
    ok &= add_text(md, "note", json_string(meta->note ? meta->note : ""));
    ok &= add_text(md, "provenance", strdup(meta->provenance_json ? meta->provenance_json : "{}"));
    if (meta->training_json) ok &= add_text(md, "training", strdup(meta->training_json));
    md_txt = ok ? cJSON_PrintUnformatted(md) : NULL;
    if (!md_txt) {
        st = error_set(WV_ENOMEM, "model file metadata");
        goto done;
    }
    st = weights_save_safetensors(path, t, n, md_txt);
done:
    if (t)
        for (int i = 0; i < n; i++) free(t[i].name);
    free(t);
    cJSON_Delete(md);
    free(md_txt);
    return st;
}

/* ---- load ----------------------------------------------------------------------------------- */

/* The metadata value of `key` parsed as JSON (caller deletes); NULL + error when missing or not
 * JSON. */
static cJSON *meta_json(const cJSON *md, const char *key)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(md, key);
    if (!s) {
        error_set(WV_EFORMAT, "model metadata: key \"%s\" is missing", key);
        return NULL;
    }
    if (!cJSON_IsString(s)) {
        error_set(WV_EFORMAT, "model metadata: \"%s\" is not a string", key);
        return NULL;
    }
    cJSON *j = cJSON_Parse(s->valuestring);
    if (!j) error_set(WV_EFORMAT, "model metadata: \"%s\" is not JSON: %.60s", key, s->valuestring);
    return j;
}

static int ints_equal(const cJSON *o, const char *key, const int *v, int n)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsNumber(a)) return n == 1 && a->valuedouble == v[0];
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) return 0;
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(e) || e->valuedouble != v[i]) return 0;
    }
    return 1;
}

static enum wv_status check_backbone_config(const cJSON *j, const struct vmamba_config *c)
{
    const cJSON *fam = cJSON_GetObjectItemCaseSensitive(j, "family");
    int ok = cJSON_IsObject(j) && cJSON_IsString(fam) &&
             !strcmp(fam->valuestring, c->family == VMAMBA_V2 ? "v2" : "v0") &&
             ints_equal(j, "dims", c->dims, VMAMBA_STAGES) &&
             ints_equal(j, "depths", c->depths, VMAMBA_STAGES) &&
             ints_equal(j, "d_inner", c->d_inner, VMAMBA_STAGES) &&
             ints_equal(j, "dt_rank", c->dt_rank, VMAMBA_STAGES) &&
             ints_equal(j, "d_state", &c->d_state, 1);
    if (ok) return WV_OK;
    char d[256];
    vmamba_config_describe(c, d, sizeof d);
    return error_set(WV_EFORMAT,
                     "model metadata: backbone_config disagrees with the backbone tensors (%s)", d);
}

static enum wv_status parse_meta(const cJSON *md, struct model_meta *m)
{
    model_meta_default(m);
    m->note = NULL;
    enum wv_status st = WV_OK;
    cJSON *j;
    if (!(j = meta_json(md, "target_mpp"))) return error_code();
    m->target_mpp = cJSON_IsNumber(j) ? j->valuedouble : -1;
    cJSON_Delete(j);
    if (!(m->target_mpp > 0 && m->target_mpp < 1000))
        return error_set(WV_EFORMAT, "model metadata: target_mpp is not a positive number");
    if (!(j = meta_json(md, "region_size"))) return error_code();
    double rs = cJSON_IsNumber(j) ? j->valuedouble : -1;
    cJSON_Delete(j);
    if (!(j = meta_json(md, "overlap"))) return error_code();
    double ov = cJSON_IsNumber(j) ? j->valuedouble : -1;
    cJSON_Delete(j);
    if (!(rs >= 32 && rs <= 1e6 && rs == floor(rs) && ov >= 0 && ov == floor(ov) &&
          fmod(ov, 32) == 0 && 2 * ov < rs))
        return error_set(WV_EFORMAT,
                         "model metadata: region_size %g / overlap %g: need region >= 32 and "
                         "overlap a multiple of 32 below region/2",
                         rs, ov);
    m->region_size = (int)rs;
    m->overlap = (int)ov;
    if (!(j = meta_json(md, "normalization"))) return error_code();
    int ok = cJSON_IsObject(j);
    for (int w = 0; w < 2 && ok; w++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, w ? "std" : "mean");
        ok = cJSON_IsArray(a) && cJSON_GetArraySize(a) == 3;
        for (int i = 0; i < 3 && ok; i++) {
            const cJSON *e = cJSON_GetArrayItem(a, i);
            ok = cJSON_IsNumber(e) && isfinite(e->valuedouble) && (!w || e->valuedouble > 0);
            if (ok) (w ? m->norm_std : m->norm_mean)[i] = (float)e->valuedouble;
        }
    }
    cJSON_Delete(j);
    if (!ok)
        return error_set(WV_EFORMAT, "model metadata: normalization is not "
                                     "{\"mean\":[3 numbers],\"std\":[3 positive numbers]}");
    if (!(j = meta_json(md, "trained"))) return error_code();
    ok = cJSON_IsBool(j);
    m->trained = cJSON_IsTrue(j);
    cJSON_Delete(j);
    if (!ok) return error_set(WV_EFORMAT, "model metadata: trained is not true or false");
    if (!(j = meta_json(md, "note"))) return error_code();
    if (cJSON_IsString(j)) m->note = strdup(j->valuestring);
    ok = cJSON_IsString(j);
    cJSON_Delete(j);
    if (!ok) return error_set(WV_EFORMAT, "model metadata: note is not a JSON string");
    if (!m->note) return error_set(WV_ENOMEM, "model metadata");
    if (!(j = meta_json(md, "provenance"))) return error_code();
    ok = cJSON_IsObject(j);
    m->provenance_json = ok ? cJSON_PrintUnformatted(j) : NULL;
    cJSON_Delete(j);
    if (!ok) return error_set(WV_EFORMAT, "model metadata: provenance is not a JSON object");
    if (cJSON_GetObjectItemCaseSensitive(md, "training")) {
        if (!(j = meta_json(md, "training"))) return error_code();
        m->training_json = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
    }
    return st;
}

enum wv_status model_file_load(const char *path, struct model **out)
{
    *out = NULL;
    struct model *m = wv_calloc(1, sizeof *m, "model");
    if (!m) return WV_ENOMEM;
    cJSON *md = NULL, *j = NULL;
    enum wv_status st = weights_load(path, &m->w);
    if (st) goto fail;
    memcpy(m->sha256, m->w->sha256, sizeof m->sha256);
    md = m->w->metadata_json ? cJSON_Parse(m->w->metadata_json) : NULL;
    if (!md || !cJSON_GetObjectItemCaseSensitive(md, "wsi_vmamba_model")) {
        st = error_set(WV_EFORMAT,
                       "not a wsi-vmamba model file (no wsi_vmamba_model metadata; a plain "
                       "checkpoint? make a model with `wsi-vmamba model init --backbone FILE`)");
        goto fail;
    }
    if (!(j = meta_json(md, "wsi_vmamba_model"))) {
        st = error_code();
        goto fail;
    }
    if (!cJSON_IsNumber(j) || j->valuedouble != MODEL_FILE_VERSION) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(md, "wsi_vmamba_model");
        st = error_set(WV_EUNSUPPORTED,
                       "model file format version %s; this build reads version %d",
                       s->valuestring, MODEL_FILE_VERSION);
        goto fail;
    }
    cJSON_Delete(j);
    j = NULL;
    m->meta.version = MODEL_FILE_VERSION;
    /* every tensor under one of the two prefixes */
    int n_head = 0;
    for (int i = 0; i < m->w->n; i++) {
        const char *nm = m->w->t[i].name;
        if (!strncmp(nm, MODEL_HEAD_PREFIX, strlen(MODEL_HEAD_PREFIX))) n_head++;
        else if (strncmp(nm, MODEL_BACKBONE_PREFIX, strlen(MODEL_BACKBONE_PREFIX))) {
            st = error_set(WV_EFORMAT, "tensor %s: neither under \"backbone.\" nor \"head.\"", nm);
            goto fail;
        }
    }
    if ((st = vmamba_config_infer(m->w, MODEL_BACKBONE_PREFIX, &m->backbone_cfg))) goto fail;
    if (!(j = meta_json(md, "backbone_config"))) {
        st = error_code();
        goto fail;
    }
    if ((st = check_backbone_config(j, &m->backbone_cfg))) goto fail;
    cJSON_Delete(j);
    j = NULL;
    const cJSON *hs = cJSON_GetObjectItemCaseSensitive(md, "head_config");
    if (!hs) {
        st = error_set(WV_EFORMAT, "model metadata: key \"head_config\" is missing");
        goto fail;
    }
    struct head_config hc;
    if (!cJSON_IsString(hs)) {
        st = error_set(WV_EFORMAT, "model metadata: \"head_config\" is not a string");
        goto fail;
    }
    if ((st = head_config_parse(hs->valuestring, &hc))) goto fail;
    if (hc.in_dim != m->backbone_cfg.dims[3]) {
        st = error_set(WV_EFORMAT, "model metadata: head in_dim %d, the backbone's dims[3] is %d",
                       hc.in_dim, m->backbone_cfg.dims[3]);
        goto fail;
    }
    if ((st = head_create_from_weights(m->w, MODEL_HEAD_PREFIX, &hc, &m->head))) goto fail;
    int n_expected;
    head_tensors(m->head, &n_expected);
    if (n_head != n_expected) {
        st = error_set(WV_EFORMAT, "%d tensors under \"head.\", the head config has %d",
                       n_head, n_expected);
        goto fail;
    }
    if ((st = parse_meta(md, &m->meta))) goto fail;
    m->meta.version = MODEL_FILE_VERSION;
    cJSON_Delete(md);
    *out = m;
    return WV_OK;
fail:
    cJSON_Delete(j);
    cJSON_Delete(md);
    model_free(m);
    return st;
}

void model_free(struct model *m)
{
    if (!m) return;
    head_free(m->head);
    weights_free(m->w);
    model_meta_free(&m->meta);
    free(m);
}
