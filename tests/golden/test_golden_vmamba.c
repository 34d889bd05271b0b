/*
 * test_golden_vmamba.c — the whole model against the official tiny v2 model (golden v2_ds1,
 * VMAMBA_SPEC.md §10): every stage map (patch_embed, stageI_blocks, stageI_downsampled) within
 * 1e-5 abs and the logits within 1e-4 abs, for the `in` (2,3,64,64) and the odd-sized `in_odd`
 * (1,3,50,78) inputs; the .pth and the .safetensors checkpoint give bit-identical outputs; a
 * forward with 1 thread equals one with 2 threads bit for bit.
 *
 * Tolerances (spec §10): stage maps 1e-5 abs + 1e-5 rel (values are O(1) after the LayerNorms;
 * differences come from fp32 summation order in GEMMs and LN), logits 1e-4 abs.
 */
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "golden_io.h"
#include "src/backend.h"
#include "src/vmamba.h"

struct cmp {
    const char *case_name;
    int n_maps;
    float *capture[16]; /* NCHW copies of each map, for the thread/format comparisons */
    size_t capture_n[16];
};

static enum wv_status on_stage(void *user, const char *name, const float *map, int B, int H,
                               int W, int C)
{
    struct cmp *c = user;
    size_t n = (size_t)B * C * H * W;
    float *nchw = malloc(n * sizeof *nchw);
    for (int b = 0; b < B; b++)
        for (int ch = 0; ch < C; ch++)
            for (int p = 0; p < H * W; p++)
                nchw[((size_t)b * C + ch) * H * W + p] = map[((size_t)b * H * W + p) * C + ch];
    char file[128], label[128];
    snprintf(file, sizeof file, "v2_ds1_%s_%s.bin", c->case_name, name);
    float *ref = golden_read(file, n);
    snprintf(label, sizeof label, "%s %s", c->case_name, name);
    if (ref) tu_check_tensor(label, nchw, ref, n, 1e-5, 1e-5);
    else CHECK_MSG(0, "golden %s missing or wrong size", file);
    free(ref);
    if (c->n_maps < 16) {
        c->capture[c->n_maps] = nchw;
        c->capture_n[c->n_maps++] = n;
    } else {
        free(nchw);
    }
    return WV_OK;
}

static void free_cmp(struct cmp *c)
{
    for (int i = 0; i < c->n_maps; i++) free(c->capture[i]);
    c->n_maps = 0;
}

static int same(const struct cmp *a, const struct cmp *b)
{
    if (a->n_maps != b->n_maps) return 0;
    for (int i = 0; i < a->n_maps; i++)
        if (a->capture_n[i] != b->capture_n[i] ||
            memcmp(a->capture[i], b->capture[i], a->capture_n[i] * sizeof(float)))
            return 0;
    return 1;
}

int main(void)
{
    char path[1024];
    struct weights *ws = NULL, *wp = NULL;
    snprintf(path, sizeof path, "%s/golden/v2_ds1_weights.safetensors", tu_shared());
    if (weights_load(path, &ws)) {
        fprintf(stderr, "cannot load %s: %s\n", path, error_msg());
        return 77;
    }
    snprintf(path, sizeof path, "%s/golden/v2_ds1_weights.pth", tu_shared());
    if (weights_load(path, &wp)) {
        fprintf(stderr, "cannot load %s: %s\n", path, error_msg());
        CHECK(!"pth load");
    }
    struct vmamba *ms = NULL, *mp = NULL;
    CHECK_MSG(vmamba_load(ws, "", &ms) == WV_OK, "%s", error_msg());
    if (!ms) return tu_finish("test_golden_vmamba");
    if (wp) CHECK_MSG(vmamba_load(wp, "", &mp) == WV_OK, "%s", error_msg());
    char desc[256];
    vmamba_config_describe(vmamba_get_config(ms), desc, sizeof desc);
    printf("model: %s\n", desc);

    static const struct { const char *name; int B, H, W; } cases[] = {
        {"in", 2, 64, 64}, {"in_odd", 1, 50, 78}};
    for (int ci = 0; ci < 2; ci++) {
        int B = cases[ci].B, H = cases[ci].H, W = cases[ci].W, K = 2;
        char file[128];
        snprintf(file, sizeof file, "v2_ds1_%s_input.bin", cases[ci].name);
        float *x = golden_read(file, (size_t)B * 3 * H * W);
        snprintf(file, sizeof file, "v2_ds1_%s_logits.bin", cases[ci].name);
        float *lref = golden_read(file, (size_t)B * K);
        if (!x || !lref) {
            CHECK(!"golden input/logits missing");
            continue;
        }
        float logits[8], logits1[8], logitsp[8];
        struct backend be2, be1;
        backend_init(&be2, WV_DEVICE_CPU, 2, 0);
        struct cmp c2 = {.case_name = cases[ci].name};
        CHECK_MSG(vmamba_forward_nchw(ms, &be2, x, B, H, W, on_stage, &c2, logits) == WV_OK, "%s",
                  error_msg());
        char label[64];
        snprintf(label, sizeof label, "%s logits", cases[ci].name);
        tu_check_tensor(label, logits, lref, (size_t)B * K, 1e-4, 0);
        printf("  logits:");
        for (int i = 0; i < B * K; i++) printf(" %.6f (ref %.6f)", logits[i], lref[i]);
        printf("\n");

        backend_init(&be1, WV_DEVICE_CPU, 1, 0);
        struct cmp c1 = {.case_name = cases[ci].name};
        vmamba_forward_nchw(ms, &be1, x, B, H, W, on_stage, &c1, logits1);
        int ok = same(&c1, &c2) && !memcmp(logits1, logits, B * K * sizeof(float));
        CHECK_MSG(ok, "1 thread vs 2 threads differ");
        printf("%s: 1 thread vs 2 threads: %s\n", cases[ci].name, ok ? "bit-identical" : "DIFFERENT");
        if (mp) {
            struct cmp cp = {.case_name = cases[ci].name};
            vmamba_forward_nchw(mp, &be2, x, B, H, W, on_stage, &cp, logitsp);
            ok = same(&cp, &c2) && !memcmp(logitsp, logits, B * K * sizeof(float));
            CHECK_MSG(ok, ".pth vs .safetensors differ");
            printf("%s: .pth vs .safetensors: %s\n", cases[ci].name, ok ? "bit-identical" : "DIFFERENT");
            free_cmp(&cp);
        }
        omp_set_num_threads(2);
        free_cmp(&c1), free_cmp(&c2);
        free(x), free(lref);
    }
    vmamba_free(ms), vmamba_free(mp);
    weights_free(ws), weights_free(wp);
    return tu_finish("test_golden_vmamba");
}
