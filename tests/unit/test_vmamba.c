/*
 * test_vmamba.c — the model on random init-like weights (vmamba_random_weights), beyond the
 * golden v2 tiny model: a v0-style model (z gate, conv bias, no MLP, patch-embed v1 with ⌊H/4⌋,
 * PatchMerging with zero pad, d_state 16, ssm_ratio 2) and a v2 model with d_state 4 and
 * ssm_ratio 2, on odd non-square inputs. Checks: the configuration inferred back from the
 * tensors equals the one they were built from, every stage map has the expected shape and finite
 * values, logits are finite, 1 thread == 2 threads bit for bit. Seeds fixed.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "src/backend.h"
#include "src/vmamba.h"
#include "testutil.h"

struct seen {
    int n;
    char names[16][32];
    int shape[16][4];
    int finite;
    float *last;
    size_t last_n;
};

static enum wv_status obs(void *user, const char *name, const float *map, int B, int H, int W, int C)
{
    struct seen *s = user;
    if (s->n < 16) {
        snprintf(s->names[s->n], 32, "%s", name);
        s->shape[s->n][0] = B, s->shape[s->n][1] = H, s->shape[s->n][2] = W, s->shape[s->n][3] = C;
        s->n++;
    }
    size_t n = (size_t)B * H * W * C;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(map[i])) s->finite = 0;
    free(s->last);
    s->last = malloc(n * sizeof(float));
    memcpy(s->last, map, n * sizeof(float));
    s->last_n = n;
    return WV_OK;
}

static void run_model(const char *label, const struct vmamba_config *cfg, int B, int H, int W)
{
    struct weights *w = NULL;
    struct vmamba *m = NULL;
    CHECK(vmamba_random_weights(cfg, 42, &w) == WV_OK);
    struct vmamba_config got;
    CHECK_MSG(vmamba_config_infer(w, "", &got) == WV_OK, "%s: %s", label, error_msg());
    CHECK(got.family == cfg->family && got.d_state == cfg->d_state &&
          got.num_classes == cfg->num_classes && got.conv_bias == cfg->conv_bias);
    for (int i = 0; i < 4; i++)
        CHECK_MSG(got.dims[i] == cfg->dims[i] && got.depths[i] == cfg->depths[i] &&
                      got.d_inner[i] == cfg->d_inner[i] && got.dt_rank[i] == cfg->dt_rank[i] &&
                      got.mlp_hidden[i] == cfg->mlp_hidden[i],
                  "%s: inferred config differs at stage %d", label, i);
    CHECK_MSG(vmamba_load(w, "", &m) == WV_OK, "%s: %s", label, error_msg());
    if (!m) return;
    float *x = malloc((size_t)B * 3 * H * W * sizeof *x);
    uint64_t s = 7;
    for (size_t i = 0; i < (size_t)B * 3 * H * W; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        x[i] = (float)((s >> 40) * (1.0 / 16777216.0)) * 2 - 1;
    }
    int hs[4], ws[4];
    vmamba_stage_sizes(m, H, W, hs, ws);
    struct backend be1, be2;
    backend_init(&be1, WV_DEVICE_CPU, 1, 0);
    struct seen s1 = {.finite = 1}, s2 = {.finite = 1};
    float *l1 = malloc((size_t)B * cfg->num_classes * sizeof *l1);
    float *l2 = malloc((size_t)B * cfg->num_classes * sizeof *l2);
    CHECK(vmamba_forward_nchw(m, &be1, x, B, H, W, obs, &s1, l1) == WV_OK);
    backend_init(&be2, WV_DEVICE_CPU, 2, 0);
    CHECK(vmamba_forward_nchw(m, &be2, x, B, H, W, obs, &s2, l2) == WV_OK);
    CHECK_MSG(s1.n == 8, "%s: %d stage maps", label, s1.n);
    static const char *names[8] = {"patch_embed", "stage0_blocks", "stage0_downsampled", "stage1_blocks",
                                   "stage1_downsampled", "stage2_blocks", "stage2_downsampled", "stage3_blocks"};
    static const int stage_of[8] = {0, 0, 1, 1, 2, 2, 3, 3};
    for (int k = 0; k < s1.n && k < 8; k++) {
        int i = stage_of[k];
        CHECK_MSG(!strcmp(s1.names[k], names[k]) && s1.shape[k][0] == B && s1.shape[k][1] == hs[i] &&
                      s1.shape[k][2] == ws[i] && s1.shape[k][3] == cfg->dims[i],
                  "%s: map %d %s (%d,%d,%d,%d)", label, k, s1.names[k], s1.shape[k][0],
                  s1.shape[k][1], s1.shape[k][2], s1.shape[k][3]);
    }
    CHECK_MSG(s1.finite, "%s: non-finite values in a stage map", label);
    int fin = 1;
    for (int i = 0; i < B * cfg->num_classes; i++) fin &= isfinite(l1[i]) != 0;
    CHECK(fin);
    int same = !memcmp(l1, l2, (size_t)B * cfg->num_classes * sizeof *l1) && s1.last_n == s2.last_n &&
               !memcmp(s1.last, s2.last, s1.last_n * sizeof(float));
    CHECK_MSG(same, "%s: 1 vs 2 threads differ", label);
    printf("%-44s input %dx3x%dx%d -> stage maps %dx%d .. %dx%d, logits[0] %.5f, 1 vs 2 threads %s\n",
           label, B, H, W, hs[0], ws[0], hs[3], ws[3], l1[0], same ? "bit-identical" : "DIFFER");
    free(s1.last), free(s2.last), free(l1), free(l2), free(x);
    vmamba_free(m);
    weights_free(w);
}

int main(void)
{
    omp_set_num_threads(2);
    struct vmamba_config v0 = {.family = VMAMBA_V0, .dims = {8, 16, 32, 64}, .depths = {1, 1, 2, 1},
                               .d_inner = {16, 32, 64, 128}, .dt_rank = {1, 1, 2, 4}, .d_state = 16,
                               .mlp_hidden = {0, 0, 0, 0}, .conv_bias = 1, .num_classes = 3,
                               .ssm_ratio = 2.0};
    run_model("v0 (z gate, PatchMerging, N=16, ratio 2)", &v0, 2, 37, 45);
    run_model("v0 tiny input (4x5)", &v0, 1, 4, 5);
    /* regression: the v0 PatchMerging band once assumed at most 4096 output pixels per row; an
     * input 33,000 px wide makes the first downsample's output rows 4,125 px wide (ASan catches
     * the overflow this guards against) */
    run_model("v0 wide input (8x33000)", &v0, 1, 8, 33000);
    struct vmamba_config v2 = {.family = VMAMBA_V2, .dims = {16, 32, 64, 128}, .depths = {1, 2, 1, 1},
                               .d_inner = {32, 64, 128, 256}, .dt_rank = {1, 2, 4, 8}, .d_state = 4,
                               .mlp_hidden = {64, 128, 256, 512}, .conv_bias = 0, .num_classes = 5,
                               .ssm_ratio = 2.0};
    run_model("v2 (N=4, ratio 2)", &v2, 1, 33, 70);
    run_model("v2 1x1 input", &v2, 1, 1, 1);
    return tu_finish("test_vmamba");
}
