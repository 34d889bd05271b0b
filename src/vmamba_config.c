/*
 * vmamba_config.c — infer a VMamba backbone's configuration from tensor names and shapes and
 * check every tensor the model reads (vmamba_config.h; key list and shapes: VMAMBA_SPEC.md §7,
 * v0 differences and old names: §5). Errors name the tensor with the found and expected shapes.
 */
#include "vmamba_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define NAME_MAX_LEN 512

/* v0-era spelling of a canonical name (VMAMBA_SPEC.md §5), or 0 when it has none. */
static int legacy_name(const char *canon, char *out, size_t n)
{
    static const struct { const char *now, *old; } head[] = {
        {"patch_embed.0.", "patch_embed.proj."},
        {"patch_embed.2.", "patch_embed.norm."},
        {"classifier.norm.", "norm."},
        {"classifier.head.", "head."},
    };
    for (size_t i = 0; i < sizeof head / sizeof head[0]; i++) {
        size_t l = strlen(head[i].now);
        if (!strncmp(canon, head[i].now, l)) {
            snprintf(out, n, "%s%s", head[i].old, canon + l);
            return 1;
        }
    }
    /* layers.I.blocks.J.{norm.,op.} → {ln_1.,self_attention.} */
    int a, b, pos = 0;
    if (sscanf(canon, "layers.%d.blocks.%d.%n", &a, &b, &pos) == 2 && pos > 0) {
        const char *rest = canon + pos;
        if (!strncmp(rest, "norm.", 5)) {
            snprintf(out, n, "%.*sln_1.%s", pos, canon, rest + 5);
            return 1;
        }
        if (!strncmp(rest, "op.", 3)) {
            snprintf(out, n, "%.*sself_attention.%s", pos, canon, rest + 3);
            return 1;
        }
    }
    return 0;
}

/* Tensor by canonical name (prefix prepended), trying the v0-era name too; no error recorded. */
static const struct weight_tensor *lookup(const struct weights *w, const char *prefix,
                                          const char *canon)
{
    char full[NAME_MAX_LEN], old[NAME_MAX_LEN];
    snprintf(full, sizeof full, "%s%s", prefix, canon);
    const struct weight_tensor *t = weights_find(w, full);
    if (t || !legacy_name(canon, old, sizeof old)) return t;
    snprintf(full, sizeof full, "%s%s", prefix, old);
    return weights_find(w, full);
}

static void fmt_shape(char *buf, size_t n, int ndim, const int64_t *shape)
{
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < ndim && k < n; i++) {
        if (shape[i] < 0)
            k += (size_t)snprintf(buf + k, n - k, "%s*", i ? ", " : "");
        else
            k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    }
}

static int shape_matches(const struct weight_tensor *t, int ndim, const int64_t *shape)
{
    /* Linear2d weights may be stored (out, in, 1, 1) for an expected (out, in) */
    int linear4 = ndim == 2 && t->ndim == 4 && t->shape[2] == 1 && t->shape[3] == 1;
    if (t->ndim != ndim && !linear4) return 0;
    for (int i = 0; i < ndim; i++)
        if (shape[i] >= 0 && t->shape[i] != shape[i]) return 0;
    return 1;
}

const struct weight_tensor *vmamba_tensor(const struct weights *w, const char *prefix,
                                          const char *canonical_name, int ndim,
                                          const int64_t *shape)
{
    if (!prefix) prefix = "";
    const struct weight_tensor *t = lookup(w, prefix, canonical_name);
    if (!t) {
        error_set(WV_ENOTFOUND, "tensor %s%s: missing", prefix, canonical_name);
        return NULL;
    }
    if (!shape_matches(t, ndim, shape)) {
        char got[160], want[160];
        fmt_shape(got, sizeof got, t->ndim, t->shape);
        fmt_shape(want, sizeof want, ndim, shape);
        error_set(WV_EFORMAT, "tensor %s: shape (%s), expected (%s)", t->name, got, want);
        return NULL;
    }
    return t;
}

const float *vmamba_tensor_f32(const struct weights *w, const char *prefix, int ndim, int64_t s0,
                               int64_t s1, int64_t s2, int64_t s3, const char *fmt, ...)
{
    char name[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const int64_t shape[4] = {s0, s1, s2, s3};
    const struct weight_tensor *t = vmamba_tensor(w, prefix, name, ndim, shape);
    return t ? t->data : NULL;
}

/* ---- inference ----------------------------------------------------------------------------- */

struct ctx {
    const struct weights *w;
    const char *prefix;
    struct vmamba_config *cfg;
};

/* Check one tensor and count its parameters; name is printf-formatted. */
static const struct weight_tensor *need(struct ctx *c, int ndim, const int64_t *shape,
                                        const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static const struct weight_tensor *need(struct ctx *c, int ndim, const int64_t *shape,
                                        const char *fmt, ...)
{
    char name[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const struct weight_tensor *t = vmamba_tensor(c->w, c->prefix, name, ndim, shape);
    if (t) c->cfg->n_params += t->numel;
    return t;
}

static const struct weight_tensor *have(struct ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static const struct weight_tensor *have(struct ctx *c, const char *fmt, ...)
{
    char name[NAME_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return lookup(c->w, c->prefix, name);
}

#define S(...) ((const int64_t[]){__VA_ARGS__})
#define NEED(nd, shape, ...)                                                                 \
    do {                                                                                     \
        if (!need(&c, nd, shape, __VA_ARGS__)) return error_code();                          \
    } while (0)

/* Highest block index + 1 present for stage i (any tensor named layers.i.blocks.J.*). */
static int max_block(const struct weights *w, const char *prefix, int stage)
{
    size_t pl = strlen(prefix);
    int best = 0;
    for (int k = 0; k < w->n; k++) {
        const char *nm = w->t[k].name;
        if (strncmp(nm, prefix, pl)) continue;
        int i, j, pos = 0;
        if (sscanf(nm + pl, "layers.%d.blocks.%d.%n", &i, &j, &pos) == 2 && pos > 0 &&
            i == stage && j >= 0 && j < 100000 && j + 1 > best)
            best = j + 1;
    }
    return best;
}

enum wv_status vmamba_config_infer(const struct weights *w, const char *prefix,
                                   struct vmamba_config *cfg)
{
    if (!prefix) prefix = "";
    memset(cfg, 0, sizeof *cfg);
    struct ctx c = {w, prefix, cfg};
    const struct weight_tensor *t;

    /* ---- stem: v2 = two k3 s2 convs (patch_embed.0/.5), v0 = one k4 s4 conv ---- */
    const struct weight_tensor *pe0 = vmamba_tensor(w, prefix, "patch_embed.0.weight", 4,
                                                     S(-1, -1, -1, -1));
    if (!pe0) return error_code();
    int64_t C;
    if (pe0->shape[2] == 4 && pe0->shape[3] == 4) {
        cfg->family = VMAMBA_V0;
        C = pe0->shape[0];
        NEED(4, S(C, 3, 4, 4), "patch_embed.0.weight");
        NEED(1, S(C), "patch_embed.0.bias");
        NEED(1, S(C), "patch_embed.2.weight");
        NEED(1, S(C), "patch_embed.2.bias");
    } else {
        cfg->family = VMAMBA_V2;
        if (!(t = vmamba_tensor(w, prefix, "patch_embed.5.weight", 4, S(-1, -1, 3, 3))))
            return error_code();
        C = t->shape[0];
        int64_t Ch = t->shape[1];
        NEED(4, S(Ch, 3, 3, 3), "patch_embed.0.weight");
        NEED(1, S(Ch), "patch_embed.0.bias");
        NEED(1, S(Ch), "patch_embed.2.weight");
        NEED(1, S(Ch), "patch_embed.2.bias");
        NEED(4, S(C, Ch, 3, 3), "patch_embed.5.weight");
        NEED(1, S(C), "patch_embed.5.bias");
        NEED(1, S(C), "patch_embed.7.weight");
        NEED(1, S(C), "patch_embed.7.bias");
    }
    if (C <= 0 || C > (1 << 20))
        return error_set(WV_EFORMAT, "tensor %s: implausible width %lld", pe0->name, (long long)C);
    if (have(&c, "layers.%d.blocks.0.norm.weight", VMAMBA_STAGES) ||
        max_block(w, prefix, VMAMBA_STAGES) > 0)
        return error_set(WV_EUNSUPPORTED, "tensor %slayers.%d.*: more than %d stages", prefix,
                         VMAMBA_STAGES, VMAMBA_STAGES);

    /* ---- stage widths from the downsamples ---- */
    cfg->dims[0] = (int)C;
    for (int i = 0; i + 1 < VMAMBA_STAGES; i++) {
        int64_t Ci = cfg->dims[i];
        if (cfg->family == VMAMBA_V2) {
            if (!(t = need(&c, 4, S(-1, Ci, 3, 3), "layers.%d.downsample.1.weight", i)))
                return error_code();
            int64_t Co = t->shape[0];
            if (Co <= 0 || Co > (1 << 20))
                return error_set(WV_EFORMAT, "tensor %s: implausible width", t->name);
            cfg->dims[i + 1] = (int)Co;
            NEED(1, S(Co), "layers.%d.downsample.1.bias", i);
            NEED(1, S(Co), "layers.%d.downsample.3.weight", i);
            NEED(1, S(Co), "layers.%d.downsample.3.bias", i);
        } else {
            if (!(t = need(&c, 2, S(-1, 4 * Ci), "layers.%d.downsample.reduction.weight", i)))
                return error_code();
            int64_t Co = t->shape[0];
            if (Co <= 0 || Co > (1 << 20))
                return error_set(WV_EFORMAT, "tensor %s: implausible width", t->name);
            cfg->dims[i + 1] = (int)Co;
            NEED(1, S(4 * Ci), "layers.%d.downsample.norm.weight", i);
            NEED(1, S(4 * Ci), "layers.%d.downsample.norm.bias", i);
        }
    }

    /* ---- blocks ---- */
    int64_t N = -1;
    for (int i = 0; i < VMAMBA_STAGES; i++) {
        int64_t Ci = cfg->dims[i];
        int depth = 0;
        while (depth < 100000 && have(&c, "layers.%d.blocks.%d.norm.weight", i, depth)) depth++;
        int seen = max_block(w, prefix, i);
        if (seen > depth || depth == 0) {
            /* report the first missing block's norm (a gap, or a stage without blocks) */
            need(&c, 1, S(Ci), "layers.%d.blocks.%d.norm.weight", i, depth);
            return error_code();
        }
        cfg->depths[i] = depth;
        /* the stage's shapes from its first block */
        char nm[NAME_MAX_LEN];
        snprintf(nm, sizeof nm, "layers.%d.blocks.0.op.A_logs", i);
        if (!(t = vmamba_tensor(w, prefix, nm, 2, S(-1, N)))) return error_code();
        if (t->shape[0] % 4 || t->shape[0] == 0 || t->shape[1] <= 0 || t->shape[1] > 4096)
            return error_set(WV_EFORMAT, "tensor %s: shape (%lld, %lld), expected (4*d_inner, "
                                         "d_state)", t->name, (long long)t->shape[0],
                             (long long)t->shape[1]);
        int64_t Dn = t->shape[0] / 4;
        if (N < 0) N = t->shape[1];
        snprintf(nm, sizeof nm, "layers.%d.blocks.0.op.dt_projs_weight", i);
        if (!(t = vmamba_tensor(w, prefix, nm, 3, S(4, Dn, -1)))) return error_code();
        int64_t R = t->shape[2];
        if (R <= 0) return error_set(WV_EFORMAT, "tensor %s: dt_rank 0", t->name);
        const struct weight_tensor *fc1 = have(&c, "layers.%d.blocks.0.mlp.fc1.weight", i);
        int64_t H = fc1 && fc1->ndim >= 1 ? fc1->shape[0] : 0;
        int conv_bias = have(&c, "layers.%d.blocks.0.op.conv2d.bias", i) != NULL;
        if (i == 0) {
            cfg->conv_bias = conv_bias;
        } else if (conv_bias != cfg->conv_bias) {
            return error_set(WV_EFORMAT, "tensor %slayers.%d.blocks.0.op.conv2d.bias: %s, but "
                                         "stage 0 %s one",
                             prefix, i, conv_bias ? "present" : "missing",
                             cfg->conv_bias ? "has" : "has no");
        }
        cfg->d_inner[i] = (int)Dn;
        cfg->dt_rank[i] = (int)R;
        cfg->mlp_hidden[i] = (int)H;
        int64_t gate = cfg->family == VMAMBA_V0 ? 2 : 1;
        for (int j = 0; j < depth; j++) {
            NEED(1, S(Ci), "layers.%d.blocks.%d.norm.weight", i, j);
            NEED(1, S(Ci), "layers.%d.blocks.%d.norm.bias", i, j);
            NEED(3, S(4, R + 2 * N, Dn), "layers.%d.blocks.%d.op.x_proj_weight", i, j);
            NEED(2, S(4 * Dn, N), "layers.%d.blocks.%d.op.A_logs", i, j);
            NEED(1, S(4 * Dn), "layers.%d.blocks.%d.op.Ds", i, j);
            NEED(3, S(4, Dn, R), "layers.%d.blocks.%d.op.dt_projs_weight", i, j);
            NEED(2, S(4, Dn), "layers.%d.blocks.%d.op.dt_projs_bias", i, j);
            NEED(1, S(Dn), "layers.%d.blocks.%d.op.out_norm.weight", i, j);
            NEED(1, S(Dn), "layers.%d.blocks.%d.op.out_norm.bias", i, j);
            NEED(2, S(gate * Dn, Ci), "layers.%d.blocks.%d.op.in_proj.weight", i, j);
            NEED(4, S(Dn, 1, 3, 3), "layers.%d.blocks.%d.op.conv2d.weight", i, j);
            if (conv_bias)
                NEED(1, S(Dn), "layers.%d.blocks.%d.op.conv2d.bias", i, j);
            else if ((t = have(&c, "layers.%d.blocks.%d.op.conv2d.bias", i, j)))
                return error_set(WV_EFORMAT, "tensor %s: unexpected (block 0 has no conv bias)",
                                 t->name);
            NEED(2, S(Ci, Dn), "layers.%d.blocks.%d.op.out_proj.weight", i, j);
            if (H) {
                NEED(1, S(Ci), "layers.%d.blocks.%d.norm2.weight", i, j);
                NEED(1, S(Ci), "layers.%d.blocks.%d.norm2.bias", i, j);
                NEED(2, S(H, Ci), "layers.%d.blocks.%d.mlp.fc1.weight", i, j);
                NEED(1, S(H), "layers.%d.blocks.%d.mlp.fc1.bias", i, j);
                NEED(2, S(Ci, H), "layers.%d.blocks.%d.mlp.fc2.weight", i, j);
                NEED(1, S(Ci), "layers.%d.blocks.%d.mlp.fc2.bias", i, j);
            } else if ((t = have(&c, "layers.%d.blocks.%d.mlp.fc1.weight", i, j))) {
                return error_set(WV_EFORMAT, "tensor %s: unexpected (block 0 of stage %d has "
                                             "no MLP)", t->name, i);
            }
        }
    }
    cfg->d_state = (int)N;
    cfg->ssm_ratio = (double)cfg->d_inner[0] / cfg->dims[0];

    /* ---- classifier (absent in backbone-only files) ---- */
    const struct weight_tensor *head = lookup(w, prefix, "classifier.head.weight");
    if (head) {
        int64_t C3 = cfg->dims[VMAMBA_STAGES - 1];
        if (!(t = need(&c, 2, S(-1, C3), "classifier.head.weight"))) return error_code();
        int64_t K = t->shape[0];
        if (K <= 0 || K > (1 << 24))
            return error_set(WV_EFORMAT, "tensor %s: implausible class count", t->name);
        cfg->num_classes = (int)K;
        NEED(1, S(K), "classifier.head.bias");
        NEED(1, S(C3), "classifier.norm.weight");
        NEED(1, S(C3), "classifier.norm.bias");
    }
    return WV_OK;
}

void vmamba_config_describe(const struct vmamba_config *c, char *buf, size_t len)
{
    snprintf(buf, len,
             "%s dims %d/%d/%d/%d depths %d/%d/%d/%d d_state %d ssm_ratio %.1f dt_rank "
             "%d/%d/%d/%d mlp_ratio %.1f conv_bias %s classes %d params %lld",
             c->family == VMAMBA_V2 ? "v2" : "v0", c->dims[0], c->dims[1], c->dims[2], c->dims[3],
             c->depths[0], c->depths[1], c->depths[2], c->depths[3], c->d_state, c->ssm_ratio,
             c->dt_rank[0], c->dt_rank[1], c->dt_rank[2], c->dt_rank[3],
             c->dims[0] ? (double)c->mlp_hidden[0] / c->dims[0] : 0.0, c->conv_bias ? "yes" : "no",
             c->num_classes, c->n_params);
}

static void add_ints(cJSON *o, const char *key, const int *v)
{
    cJSON *a = cJSON_AddArrayToObject(o, key);
    for (int i = 0; a && i < VMAMBA_STAGES; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(v[i]));
}

char *vmamba_config_json(const struct vmamba_config *c)
{
    cJSON *o = cJSON_CreateObject();
    char *txt = NULL;
    if (o) {
        cJSON_AddStringToObject(o, "family", c->family == VMAMBA_V2 ? "v2" : "v0");
        add_ints(o, "dims", c->dims);
        add_ints(o, "depths", c->depths);
        add_ints(o, "d_inner", c->d_inner);
        add_ints(o, "dt_rank", c->dt_rank);
        cJSON_AddNumberToObject(o, "d_state", c->d_state);
        add_ints(o, "mlp_hidden", c->mlp_hidden);
        cJSON_AddBoolToObject(o, "conv_bias", c->conv_bias);
        cJSON_AddNumberToObject(o, "num_classes", c->num_classes);
        cJSON_AddNumberToObject(o, "ssm_ratio", c->ssm_ratio);
        cJSON_AddNumberToObject(o, "n_params", (double)c->n_params);
        txt = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
    }
    if (!txt) error_set(WV_ENOMEM, "out of memory for the configuration JSON");
    return txt;
}
