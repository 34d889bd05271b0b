/*
 * test_model_file.c — the model file (src/model_file.h): save a random tiny backbone + random
 * head, load it back (backbone usable by vmamba_load with "backbone.", head bit-identical,
 * metadata round trip), and the refusals: a plain checkpoint, missing metadata keys, a newer
 * format version, a missing / mis-shaped head tensor, a stray tensor, configs that disagree.
 */
#include "src/model_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "src/vmamba.h"
#include "testutil.h"

static char tmp_path[512];

static const char *path_of(const char *name)
{
    snprintf(tmp_path, sizeof tmp_path, "%s/model_file_%s.safetensors", tu_tmp(), name);
    return tmp_path;
}

/* Rewrite `src` into `dst` after editing its tensors / metadata with `edit`. */
typedef void (*edit_fn)(struct weight_tensor *t, int *n, cJSON *md);

static enum wv_status rewrite(const char *src, const char *dst, edit_fn edit)
{
    struct weights *w;
    if (weights_load(src, &w)) return error_code();
    cJSON *md = cJSON_Parse(w->metadata_json);
    int n = w->n;
    edit(w->t, &n, md);
    char *txt = cJSON_PrintUnformatted(md);
    enum wv_status st = weights_save_safetensors(dst, w->t, n, txt);
    free(txt);
    cJSON_Delete(md);
    weights_free(w);
    return st;
}

static void e_drop_version(struct weight_tensor *t, int *n, cJSON *md)
{
    cJSON_DeleteItemFromObject(md, "wsi_vmamba_model");
}
static void e_version2(struct weight_tensor *t, int *n, cJSON *md)
{
    cJSON_ReplaceItemInObject(md, "wsi_vmamba_model", cJSON_CreateString("2"));
}
static void e_drop_mpp(struct weight_tensor *t, int *n, cJSON *md)
{
    cJSON_DeleteItemFromObject(md, "target_mpp");
}
static void e_bad_norm(struct weight_tensor *t, int *n, cJSON *md)
{
    cJSON_ReplaceItemInObject(md, "normalization", cJSON_CreateString("{\"mean\":[1,2]}"));
}
static void e_bad_bbcfg(struct weight_tensor *t, int *n, cJSON *md)
{
    cJSON_ReplaceItemInObject(md, "backbone_config",
                              cJSON_CreateString("{\"family\":\"v2\",\"dims\":[1,2,3,4]}"));
}
static int find(struct weight_tensor *t, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(t[i].name, name)) return i;
    return -1;
}
static void e_drop_head_tensor(struct weight_tensor *t, int *n, cJSON *md)
{
    int i = find(t, *n, "head.blocks.1.A_logs");
    struct weight_tensor x = t[i];
    t[i] = t[*n - 1];
    t[*n - 1] = x; /* still freed by weights_free */
    (*n)--;
}
static void e_shape_head_tensor(struct weight_tensor *t, int *n, cJSON *md)
{
    int i = find(t, *n, "head.attn_V.weight");
    t[i].shape[0] /= 2;
    t[i].numel /= 2;
}
static void e_stray(struct weight_tensor *t, int *n, cJSON *md)
{
    int i = find(t, *n, "head.norm.bias");
    t[i].name[0] = 'x'; /* "xead.norm.bias" */
}
static void e_drop_backbone_tensor(struct weight_tensor *t, int *n, cJSON *md)
{
    int i = find(t, *n, "backbone.layers.2.blocks.1.op.Ds");
    struct weight_tensor x = t[i];
    t[i] = t[*n - 1];
    t[*n - 1] = x;
    (*n)--;
}

static void expect_fail(const char *name, edit_fn edit, const char *good, enum wv_status code,
                        const char *needle)
{
    const char *p = path_of(name);
    char path[512];
    snprintf(path, sizeof path, "%s", p);
    CHECK(rewrite(good, path, edit) == WV_OK);
    error_clear();
    struct model *m = (struct model *)1;
    enum wv_status st = model_file_load(path, &m);
    CHECK_MSG(st == code && m == NULL, "%s: status %s, expected %s (%s)", name,
              wv_status_name(st), wv_status_name(code), error_msg());
    CHECK_MSG(strstr(error_msg(), needle), "%s: message '%s' lacks '%s'", name, error_msg(),
              needle);
    printf("refused %-22s %s\n", name, error_msg());
    error_clear();
    remove(path);
}

int main(void)
{
    struct vmamba_config cfg;
    CHECK(model_backbone_preset("tiny", &cfg) == WV_OK);
    CHECK(model_backbone_preset("huge", &cfg) == WV_EINVAL);
    error_clear();
    CHECK(model_backbone_preset("tiny", &cfg) == WV_OK);
    struct weights *bb;
    CHECK(vmamba_random_weights(&cfg, 1, &bb) == WV_OK);
    struct head_config hc;
    head_config_default(&hc, 128);
    hc.d_h = 32;
    head_config_derive(&hc);
    struct head *head;
    CHECK(head_create_random(&hc, 9, &head) == WV_OK);
    struct model_meta meta;
    model_meta_default(&meta);
    meta.target_mpp = 0.25;
    meta.region_size = 4096;
    meta.overlap = 64;
    meta.provenance_json = model_provenance_json("bb.pth", "abc", NULL, 9);
    char good[512];
    snprintf(good, sizeof good, "%s", path_of("good"));
    CHECK_MSG(model_file_save(good, bb, head, &meta) == WV_OK, "%s", error_msg());

    /* head dim mismatch refused at save */
    struct head_config hc2 = hc;
    hc2.in_dim = 64;
    struct head *h2;
    CHECK(head_create_random(&hc2, 9, &h2) == WV_OK);
    error_clear();
    CHECK(model_file_save(path_of("bad"), bb, h2, &meta) == WV_EINVAL);
    error_clear();
    head_free(h2);

    struct model *m;
    CHECK_MSG(model_file_load(good, &m) == WV_OK, "%s", error_msg());
    if (m) {
        CHECK(m->backbone_cfg.dims[3] == 128 && m->backbone_cfg.depths[2] == 2);
        CHECK(!memcmp(head_get_config(m->head), &hc, sizeof hc));
        size_t n1, n2;
        float *p1 = head_params(head, &n1), *p2 = head_params(m->head, &n2);
        CHECK(n1 == n2 && !memcmp(p1, p2, n1 * sizeof *p1));
        CHECK(m->meta.target_mpp == 0.25 && m->meta.region_size == 4096 && m->meta.overlap == 64);
        CHECK(m->meta.norm_mean[0] == 0.485f && m->meta.norm_std[2] == 0.225f);
        CHECK(m->meta.trained == 0 && m->meta.note && strstr(m->meta.note, "randomly"));
        CHECK(m->meta.provenance_json && strstr(m->meta.provenance_json, "\"backbone_sha256\":\"abc\""));
        CHECK(strlen(m->sha256) == 64);
        /* every metadata value is a string holding JSON */
        cJSON *md = cJSON_Parse(m->w->metadata_json);
        int ok = md != NULL, nkeys = 0;
        for (cJSON *e = md ? md->child : NULL; e; e = e->next, nkeys++) {
            cJSON *j = cJSON_IsString(e) ? cJSON_Parse(e->valuestring) : NULL;
            ok &= j != NULL;
            cJSON_Delete(j);
        }
        CHECK(ok && nkeys == 10);
        cJSON_Delete(md);
        /* the backbone builds from the file with the prefix */
        struct vmamba *vm;
        CHECK_MSG(vmamba_load(m->w, MODEL_BACKBONE_PREFIX, &vm) == WV_OK, "%s", error_msg());
        if (vm) vmamba_free(vm);
        model_free(m);
    }

    /* a plain checkpoint */
    char plain[512];
    snprintf(plain, sizeof plain, "%s", path_of("plain"));
    CHECK(weights_save_safetensors(plain, bb->t, bb->n, NULL) == WV_OK);
    error_clear();
    CHECK(model_file_load(plain, &m) == WV_EFORMAT && !m);
    CHECK_MSG(strstr(error_msg(), "model init"), "%s", error_msg());
    printf("refused %-22s %s\n", "plain checkpoint", error_msg());
    error_clear();
    remove(plain);

    expect_fail("no_version", e_drop_version, good, WV_EFORMAT, "not a wsi-vmamba model file");
    expect_fail("version_2", e_version2, good, WV_EUNSUPPORTED, "format version 2");
    expect_fail("no_target_mpp", e_drop_mpp, good, WV_EFORMAT, "target_mpp");
    expect_fail("bad_normalization", e_bad_norm, good, WV_EFORMAT, "normalization");
    expect_fail("backbone_config", e_bad_bbcfg, good, WV_EFORMAT, "backbone_config");
    expect_fail("missing_head_tensor", e_drop_head_tensor, good, WV_ENOTFOUND,
                "head.blocks.1.A_logs");
    expect_fail("mis_shaped_head", e_shape_head_tensor, good, WV_EFORMAT, "head.attn_V.weight");
    expect_fail("stray_tensor", e_stray, good, WV_EFORMAT, "xead.norm.bias");
    expect_fail("missing_backbone", e_drop_backbone_tensor, good, WV_ENOTFOUND, "layers.2");

    remove(good);
    free(meta.provenance_json);
    head_free(head);
    weights_free(bb);
    return tu_finish("test_model_file");
}
