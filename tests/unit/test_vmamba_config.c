/*
 * test_vmamba_config.c — configuration inference (src/vmamba_config.h): the golden v2_ds1 file
 * gives the official configuration and parameter count; edited copies (a missing tensor, a wrong
 * shape, a prefix, no classifier, (out,in,1,1) Linear2d weights, a gap in the blocks, a fifth
 * stage) give the right result or an error naming the tensor; a synthetic v0 model spelled with
 * the pre-2024 names infers as v0 with its z gate, conv bias and PatchMerging.
 */
#include <stdarg.h>
#include <string.h>

#include "src/error.h"
#include "src/vmamba_config.h"
#include "src/weights.h"
#include "src/weights_private.h"
#include "testutil.h"

static struct weights *golden;

/* A copy of the golden weights: names prefixed, one tensor dropped, one reshaped (NULLs skip). */
static struct weights *edited(const char *prefix, const char *drop, const char *reshape, int ndim,
                              const int64_t *shape)
{
    struct weights *w = weights_new("test");
    for (int i = 0; w && i < golden->n; i++) {
        const struct weight_tensor *t = &golden->t[i];
        if (drop && !strncmp(t->name, drop, strlen(drop))) continue;
        char name[512];
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        int nd = t->ndim;
        const int64_t *sh = t->shape;
        if (reshape && !strcmp(t->name, reshape)) {
            nd = ndim;
            sh = shape;
        }
        float *d;
        if (weights_add(w, name, nd, sh, t->source_dtype, &d)) {
            weights_free(w);
            return NULL;
        }
        int64_t n = 1;
        for (int k = 0; k < nd; k++) n *= sh[k];
        for (int64_t k = 0; k < n; k++) d[k] = k < t->numel ? t->data[k] : 0;
    }
    if (w && weights_finish(w)) {
        weights_free(w);
        return NULL;
    }
    return w;
}

static void expect_error(struct weights *w, const char *prefix, const char *want)
{
    struct vmamba_config c;
    error_clear();
    enum wv_status st = vmamba_config_infer(w, prefix, &c);
    CHECK_MSG(st != WV_OK, "inferred despite: %s", want);
    CHECK_MSG(!strcmp(error_msg(), want), "message '%s', want '%s'", error_msg(), want);
    error_clear();
    weights_free(w);
}

static void test_golden(void)
{
    struct vmamba_config c;
    CHECK(vmamba_config_infer(golden, "", &c) == WV_OK);
    CHECK(c.family == VMAMBA_V2);
    int dims[] = {16, 32, 64, 128}, depths[] = {1, 1, 2, 1}, R[] = {1, 2, 4, 8};
    for (int i = 0; i < 4; i++) {
        CHECK(c.dims[i] == dims[i] && c.depths[i] == depths[i] && c.dt_rank[i] == R[i]);
        CHECK(c.d_inner[i] == dims[i] && c.mlp_hidden[i] == 4 * dims[i]);
    }
    CHECK(c.d_state == 1 && c.num_classes == 2 && !c.conv_bias && c.ssm_ratio == 1.0);
    CHECK(c.n_params == 383042);
    char d[512];
    vmamba_config_describe(&c, d, sizeof d);
    printf("golden: %s\n", d);
    CHECK(!strcmp(d, "v2 dims 16/32/64/128 depths 1/1/2/1 d_state 1 ssm_ratio 1.0 dt_rank "
                     "1/2/4/8 mlp_ratio 4.0 conv_bias no classes 2 params 383042"));
    char *j = vmamba_config_json(&c);
    CHECK(j && strstr(j, "\"dims\":[16,32,64,128]") && strstr(j, "\"n_params\":383042"));
    free(j);

    const struct weight_tensor *t = vmamba_tensor(golden, "", "layers.1.blocks.0.op.A_logs", 2,
                                                  (const int64_t[]){128, -1});
    CHECK(t && t->shape[1] == 1);
    error_clear();
    CHECK(!vmamba_tensor(golden, "", "layers.1.blocks.0.op.A_logs", 2,
                         (const int64_t[]){64, 1}));
    CHECK(!strcmp(error_msg(), "tensor layers.1.blocks.0.op.A_logs: shape (128, 1), expected "
                               "(64, 1)"));
    error_clear();
    CHECK(!vmamba_tensor(golden, "", "layers.9.nope", 1, (const int64_t[]){1}));
    CHECK(error_code() == WV_ENOTFOUND && !strcmp(error_msg(), "tensor layers.9.nope: missing"));
    error_clear();
}

static void test_edits(void)
{
    struct vmamba_config c;
    expect_error(edited("", "layers.2.blocks.1.op.Ds", NULL, 0, NULL), "",
                 "tensor layers.2.blocks.1.op.Ds: missing");
    expect_error(edited("", NULL, "layers.0.blocks.0.norm.weight", 1, (const int64_t[]){15}), "",
                 "tensor layers.0.blocks.0.norm.weight: shape (15), expected (16)");
    expect_error(edited("", NULL, "layers.3.blocks.0.op.x_proj_weight", 3,
                        (const int64_t[]){4, 9, 128}),
                 "", "tensor layers.3.blocks.0.op.x_proj_weight: shape (4, 9, 128), expected "
                     "(4, 10, 128)");
    expect_error(edited("", NULL, "layers.1.blocks.0.op.A_logs", 2, (const int64_t[]){128, 2}), "",
                 "tensor layers.1.blocks.0.op.A_logs: shape (128, 2), expected (*, 1)");
    expect_error(edited("", NULL, "layers.0.blocks.0.op.in_proj.weight", 2,
                        (const int64_t[]){32, 16}),
                 "", "tensor layers.0.blocks.0.op.in_proj.weight: shape (32, 16), expected "
                     "(16, 16)");
    expect_error(edited("", "patch_embed.5.", NULL, 0, NULL), "",
                 "tensor patch_embed.5.weight: missing");
    expect_error(edited("", "layers.2.blocks.0.", NULL, 0, NULL), "",
                 "tensor layers.2.blocks.0.norm.weight: missing");
    expect_error(edited("", "classifier.head.bias", NULL, 0, NULL), "",
                 "tensor classifier.head.bias: missing");
    /* the same file under "backbone." */
    struct weights *w = edited("backbone.", NULL, NULL, 0, NULL);
    CHECK(vmamba_config_infer(w, "backbone.", &c) == WV_OK && c.n_params == 383042);
    expect_error(w, "", "tensor patch_embed.0.weight: missing");
    /* a backbone-only file: no classifier */
    w = edited("", "classifier.", NULL, 0, NULL);
    CHECK(vmamba_config_infer(w, "", &c) == WV_OK && c.num_classes == 0 &&
          c.n_params == 383042 - (2 * 128 + 2) - 2 * 128);
    weights_free(w);
    /* Linear2d weights stored (out, in, 1, 1) */
    w = edited("", NULL, "layers.0.blocks.0.mlp.fc1.weight", 4, (const int64_t[]){64, 16, 1, 1});
    CHECK(vmamba_config_infer(w, "", &c) == WV_OK && c.n_params == 383042);
    weights_free(w);
    /* a fifth stage */
    w = edited("", NULL, NULL, 0, NULL);
    float *d;
    CHECK(weights_add(w, "layers.4.blocks.0.norm.weight", 1, (const int64_t[]){4}, WDT_F32, &d) ==
          WV_OK);
    memset(d, 0, 16);
    CHECK(weights_finish(w) == WV_OK);
    expect_error(w, "", "tensor layers.4.*: more than 4 stages");
}

/* ---- a synthetic v0 model with pre-2024 names -------------------------------------------- */

static void addt(struct weights *w, long long *count, const char *fmt_name, int i, int j, int nd,
                 ...)
{
    char name[256];
    snprintf(name, sizeof name, fmt_name, i, j);
    int64_t shape[8];
    va_list ap;
    va_start(ap, nd);
    for (int k = 0; k < nd; k++) shape[k] = va_arg(ap, int);
    va_end(ap);
    float *d;
    if (weights_add(w, name, nd, shape, WDT_F32, &d)) {
        fprintf(stderr, "addt %s: %s\n", name, error_msg());
        return;
    }
    int64_t n = w->t[w->n - 1].numel;
    memset(d, 0, (size_t)n * 4);
    *count += n;
}

static void test_v0(void)
{
    struct weights *w = weights_new("test");
    long long n = 0;
    int C[4] = {8, 16, 32, 64}, depth[4] = {1, 2, 1, 1}, N = 4, classes = 3;
    addt(w, &n, "patch_embed.proj.weight", 0, 0, 4, C[0], 3, 4, 4);
    addt(w, &n, "patch_embed.proj.bias", 0, 0, 1, C[0]);
    addt(w, &n, "patch_embed.norm.weight", 0, 0, 1, C[0]);
    addt(w, &n, "patch_embed.norm.bias", 0, 0, 1, C[0]);
    for (int i = 0; i < 4; i++) {
        int Dn = 2 * C[i], R = (C[i] + 15) / 16;
        for (int j = 0; j < depth[i]; j++) {
            addt(w, &n, "layers.%d.blocks.%d.ln_1.weight", i, j, 1, C[i]);
            addt(w, &n, "layers.%d.blocks.%d.ln_1.bias", i, j, 1, C[i]);
            addt(w, &n, "layers.%d.blocks.%d.self_attention.x_proj_weight", i, j, 3, 4, R + 2 * N,
                 Dn);
            addt(w, &n, "layers.%d.blocks.%d.self_attention.A_logs", i, j, 2, 4 * Dn, N);
            addt(w, &n, "layers.%d.blocks.%d.self_attention.Ds", i, j, 1, 4 * Dn);
            addt(w, &n, "layers.%d.blocks.%d.self_attention.dt_projs_weight", i, j, 3, 4, Dn, R);
            addt(w, &n, "layers.%d.blocks.%d.self_attention.dt_projs_bias", i, j, 2, 4, Dn);
            addt(w, &n, "layers.%d.blocks.%d.self_attention.out_norm.weight", i, j, 1, Dn);
            addt(w, &n, "layers.%d.blocks.%d.self_attention.out_norm.bias", i, j, 1, Dn);
            addt(w, &n, "layers.%d.blocks.%d.self_attention.in_proj.weight", i, j, 2, 2 * Dn, C[i]);
            addt(w, &n, "layers.%d.blocks.%d.self_attention.conv2d.weight", i, j, 4, Dn, 1, 3, 3);
            addt(w, &n, "layers.%d.blocks.%d.self_attention.conv2d.bias", i, j, 1, Dn);
            addt(w, &n, "layers.%d.blocks.%d.self_attention.out_proj.weight", i, j, 2, C[i], Dn);
        }
        if (i < 3) {
            addt(w, &n, "layers.%d.downsample.norm.weight", i, 0, 1, 4 * C[i]);
            addt(w, &n, "layers.%d.downsample.norm.bias", i, 0, 1, 4 * C[i]);
            addt(w, &n, "layers.%d.downsample.reduction.weight", i, 0, 2, C[i + 1], 4 * C[i]);
        }
    }
    addt(w, &n, "norm.weight", 0, 0, 1, C[3]);
    addt(w, &n, "norm.bias", 0, 0, 1, C[3]);
    addt(w, &n, "head.weight", 0, 0, 2, classes, C[3]);
    addt(w, &n, "head.bias", 0, 0, 1, classes);
    CHECK(weights_finish(w) == WV_OK);
    struct vmamba_config c;
    error_clear();
    CHECK(vmamba_config_infer(w, "", &c) == WV_OK);
    if (error_msg()[0]) fprintf(stderr, "  v0: %s\n", error_msg());
    CHECK(c.family == VMAMBA_V0 && c.d_state == N && c.conv_bias && c.num_classes == classes);
    for (int i = 0; i < 4; i++)
        CHECK(c.dims[i] == C[i] && c.depths[i] == depth[i] && c.d_inner[i] == 2 * C[i] &&
              c.mlp_hidden[i] == 0 && c.dt_rank[i] == (C[i] + 15) / 16);
    CHECK(c.n_params == n && c.ssm_ratio == 2.0);
    char d[512];
    vmamba_config_describe(&c, d, sizeof d);
    printf("v0 synthetic: %s\n", d);
    /* canonical names find the old spellings */
    CHECK(vmamba_tensor(w, "", "layers.0.blocks.0.op.A_logs", 2, (const int64_t[]){64, 4}));
    CHECK(vmamba_tensor(w, "", "layers.1.blocks.1.norm.bias", 1, (const int64_t[]){16}));
    CHECK(vmamba_tensor(w, "", "classifier.head.weight", 2, (const int64_t[]){3, 64}));
    CHECK(vmamba_tensor(w, "", "patch_embed.2.weight", 1, (const int64_t[]){8}));
    error_clear();
    weights_free(w);
}

int main(void)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/golden/v2_ds1_weights.safetensors", tu_shared());
    if (weights_load(p, &golden)) {
        fprintf(stderr, "cannot load %s: %s\n", p, error_msg());
        return 1;
    }
    test_golden();
    test_edits();
    test_v0();
    weights_free(golden);
    return tu_finish("test_vmamba_config");
}
