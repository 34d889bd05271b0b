/*
 * gpu_check.c — GPU-vs-CPU comparison of the whole model at any size with random weights and a
 * random input (used by tests/gpu/run.sh; not a ctest). The weights come from
 * vmamba_random_weights (official names, init-like values) for a released configuration and can
 * be written as safetensors (--save); the input is a deterministic function of (b, y, x, c), so
 * CPU and GPU see identical pixels without a multi-GB input file.
 *
 *   gpu_check --compare GOT.bin REF.bin TOL   (no device needed: float32 files, gt_compare)
 *   gpu_check [--config t-s1l8|t-s2l5|v0-t|tiny-v2|tiny-v0] [--size N | --hw H,W] [--batch B]
 *             [--threads T] [--no-cpu | --no-gpu] [--dtypes f32,bf16] [--seed S] [--save FILE]
 *             [--device-input]   (input uploaded whole, vmamba_cuda_forward_device: the
 *                                 benchmark's path, whole-image groups in the stem)
 *
 * Prints one line per comparison: "RESULT <name> PASS|FAIL <figure>", and timings.
 * Tolerances (relative to |ref| + rms(ref), gt_compare): stage-3 map and logits f32 1e-3 (errors
 * of ~1e-6 per op compound over 14 blocks and 6.25 M-token scans), bf16 5e-2 (8-bit mantissas in
 * every projection). Exit 0 when all pass, 1 otherwise, 77 without a device.
 */
#include <time.h>

#include <cuda_runtime_api.h>

#include "cuda/vmamba_cuda.h"
#include "gpu_test.h"
#include "src/vmamba.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* input pixel value in [-2, 2): a hash of its coordinates */
static float pix(uint64_t seed, int b, int y, int x, int c)
{
    uint64_t h = seed ^ ((uint64_t)b << 56) ^ ((uint64_t)y << 36) ^ ((uint64_t)x << 8) ^ (uint64_t)c;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    h ^= h >> 33;
    return (float)((h >> 40) * (1.0 / 16777216.0) * 4.0 - 2.0);
}

struct input {
    uint64_t seed;
    int W, Cin;
};

static enum wv_status read_rows(void *user, int b, int row0, int rows, float *dst)
{
    const struct input *in = user;
    for (int r = 0; r < rows; r++)
        for (int x = 0; x < in->W; x++)
            for (int c = 0; c < in->Cin; c++)
                dst[((size_t)r * in->W + x) * in->Cin + c] = pix(in->seed, b, row0 + r, x, c);
    return WV_OK;
}

static int make_cfg(const char *name, struct vmamba_config *c)
{
    memset(c, 0, sizeof *c);
    int v0 = !strcmp(name, "v0-t") || !strcmp(name, "tiny-v0");
    int tiny = !strncmp(name, "tiny", 4);
    double ratio = !strcmp(name, "t-s1l8") ? 1.0 : 2.0;
    int depths[4] = {2, 2, 8, 2};
    if (!strcmp(name, "t-s2l5")) depths[2] = 5;
    if (v0) depths[2] = 9;
    if (tiny) depths[0] = depths[1] = depths[3] = 1, depths[2] = 2;
    if (strcmp(name, "t-s1l8") && strcmp(name, "t-s2l5") && strcmp(name, "v0-t") && !tiny) return -1;
    int C0 = tiny ? 16 : 96;
    c->family = v0 ? VMAMBA_V0 : VMAMBA_V2;
    for (int i = 0; i < 4; i++) {
        c->dims[i] = C0 << i;
        c->depths[i] = depths[i];
        c->d_inner[i] = (int)(ratio * c->dims[i]);
        c->dt_rank[i] = (c->dims[i] + 15) / 16;
        c->mlp_hidden[i] = v0 ? 0 : 4 * c->dims[i];
    }
    c->d_state = v0 ? 16 : 1;
    c->conv_bias = v0;
    c->num_classes = tiny ? 7 : 1000;
    c->ssm_ratio = ratio;
    return 0;
}

/* --compare: two raw float32 files of the same size within tol (relative to |ref| + rms). */
static int compare_files(const char *got_path, const char *ref_path, double tol)
{
    float *v[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    const char *paths[2] = {got_path, ref_path};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(paths[k], "rb");
        if (!f) {
            printf("RESULT compare FAIL cannot open %s\n", paths[k]);
            return 1;
        }
        fseek(f, 0, SEEK_END);
        long sz = ftell(f);
        fseek(f, 0, SEEK_SET);
        n[k] = sz > 0 ? (size_t)sz / 4 : 0;
        v[k] = malloc(n[k] * 4 + 4);
        if (!v[k] || fread(v[k], 4, n[k], f) != n[k]) {
            fclose(f);
            printf("RESULT compare FAIL cannot read %s\n", paths[k]);
            return 1;
        }
        fclose(f);
    }
    if (n[0] != n[1]) {
        printf("RESULT compare FAIL %s has %zu floats, %s has %zu\n", got_path, n[0], ref_path, n[1]);
        return 1;
    }
    double d = gt_compare(got_path, v[0], v[1], n[0], tol);
    double r = gt_rms(v[1], n[0]);
    printf("RESULT compare %s max|diff|=%.3g rms(ref)=%.3g\n", tu_failures ? "FAIL" : "PASS", d, r);
    free(v[0]), free(v[1]);
    return tu_failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--compare")) return compare_files(argv[2], argv[3], atof(argv[4]));
    const char *cfg_name = "t-s1l8", *dtypes = "f32,bf16", *save = NULL;
    int H = 512, W = 512, B = 1, threads = 0, do_cpu = 1, do_gpu = 1, dev_input = 0;
    uint64_t seed = 42;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--config") && v) cfg_name = v, i++;
        else if (!strcmp(a, "--size") && v) H = W = atoi(v), i++;
        else if (!strcmp(a, "--hw") && v) {
            if (sscanf(v, "%d,%d", &H, &W) != 2) return 2;
            i++;
        } else if (!strcmp(a, "--batch") && v) B = atoi(v), i++;
        else if (!strcmp(a, "--threads") && v) threads = atoi(v), i++;
        else if (!strcmp(a, "--dtypes") && v) dtypes = v, i++;
        else if (!strcmp(a, "--seed") && v) seed = strtoull(v, NULL, 10), i++;
        else if (!strcmp(a, "--save") && v) save = v, i++;
        else if (!strcmp(a, "--no-cpu")) do_cpu = 0;
        else if (!strcmp(a, "--device-input")) dev_input = 1; /* input uploaded whole: vmamba_cuda_forward_device */
        else if (!strcmp(a, "--no-gpu")) do_gpu = 0; /* CPU side only (timing, no device) */
        else {
            fprintf(stderr, "usage: gpu_check [--config t-s1l8|t-s2l5|v0-t|tiny-v2|tiny-v0] "
                            "[--size N|--hw H,W] [--batch B] [--threads T] [--no-cpu] "
                            "[--dtypes f32,bf16] [--seed S] [--save FILE]\n");
            return 2;
        }
    }
    if (do_gpu) gt_require_device("gpu_check");
    struct vmamba_config cfg;
    if (make_cfg(cfg_name, &cfg) || H < 1 || W < 1 || B < 1) {
        fprintf(stderr, "gpu_check: bad --config/--size\n");
        return 2;
    }
    struct weights *w = NULL;
    if (vmamba_random_weights(&cfg, seed, &w)) {
        fprintf(stderr, "gpu_check: random weights: %s\n", error_msg());
        return 1;
    }
    if (save) {
        if (weights_save_safetensors(save, w->t, w->n, NULL)) {
            fprintf(stderr, "gpu_check: %s: %s\n", save, error_msg());
            return 1;
        }
        printf("weights written to %s\n", save);
    }
    char desc[256];
    vmamba_config_describe(&cfg, desc, sizeof desc);
    printf("config %s: %s; input %d×%d×%d, seed %llu\n", cfg_name, desc, B, H, W,
           (unsigned long long)seed);
    struct input in = {seed, W, 3};
    int hs[4], ws[4];
    struct vmamba *cpu = NULL;
    if (vmamba_load(w, "", &cpu)) {
        fprintf(stderr, "gpu_check: %s\n", error_msg());
        return 1;
    }
    vmamba_stage_sizes(cpu, H, W, hs, ws);
    size_t nf = (size_t)B * hs[3] * ws[3] * cfg.dims[3], nl = (size_t)B * cfg.num_classes;
    float *f_cpu = calloc(nf + 1, 4), *l_cpu = calloc(nl + 1, 4), *f_gpu = calloc(nf + 1, 4),
          *l_gpu = calloc(nl + 1, 4);
    if (!f_cpu || !l_cpu || !f_gpu || !l_gpu) return 1;
    if (do_cpu) {
        struct backend be;
        backend_init(&be, WV_DEVICE_CPU, threads, 0);
        double t0 = now_s();
        if (vmamba_forward(cpu, &be, B, H, W, read_rows, &in, NULL, NULL, l_cpu, f_cpu)) {
            fprintf(stderr, "gpu_check: cpu forward: %s\n", error_msg());
            return 1;
        }
        printf("cpu forward (%d threads): %.2f s\n", be.threads, now_s() - t0);
    }
    int fails = 0;
    char list[64];
    snprintf(list, sizeof list, "%s", do_gpu ? dtypes : "");
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        struct vmamba_cuda_options opt = {.verbose = 1};
        if (wv_dtype_parse(tok, &opt.dtype)) {
            fprintf(stderr, "gpu_check: %s\n", error_msg());
            return 2;
        }
        struct vmamba_cuda *m = NULL;
        if (vmamba_cuda_create(w, "", &opt, &m)) {
            fprintf(stderr, "gpu_check: %s\n", error_msg());
            printf("RESULT gpu-create-%s FAIL %s\n", tok, error_msg());
            error_clear(); /* first message wins until cleared: don't label later failures */
            fails++;
            continue;
        }
        float *d_in = NULL;
        if (dev_input) { /* the whole input on the device first (not timed) */
            size_t n = (size_t)B * H * W * 3;
            float *h_in = malloc(n * sizeof *h_in);
            if (!h_in) return 1;
            for (int b = 0; b < B; b++) read_rows(&in, b, 0, H, h_in + (size_t)b * H * W * 3);
            if (cudaMalloc((void **)&d_in, n * sizeof(float)) != cudaSuccess ||
                cudaMemcpy(d_in, h_in, n * sizeof(float), cudaMemcpyHostToDevice) != cudaSuccess) {
                printf("RESULT gpu-input-%s FAIL cannot upload %zu floats\n", tok, n);
                return 1;
            }
            free(h_in);
        }
        double best = -1;
        for (int rep = 0; rep < 2; rep++) { /* first run includes the arena allocation */
            double t0 = now_s();
            enum wv_status st = dev_input ? vmamba_cuda_forward_device(m, d_in, B, H, W, l_gpu, f_gpu)
                                          : vmamba_cuda_forward(m, B, H, W, read_rows, &in, NULL, NULL, l_gpu, f_gpu);
            double t = now_s() - t0;
            if (st) {
                fprintf(stderr, "gpu_check: gpu forward: %s\n", error_msg());
                printf("RESULT gpu-forward-%s FAIL %s\n", tok, error_msg());
                error_clear();
                fails++;
                break; /* no comparison of a failed forward's (zeroed) outputs */
            }
            printf("gpu forward %s run %d: %.3f s (%.1f Mpix/s)\n", tok, rep, t,
                   (double)B * H * W / t / 1e6);
            if (best < 0 || t < best) best = t;
            if (!do_cpu) continue;
            if (rep == 1) break;
            double tol = opt.dtype == WV_DTYPE_F32 ? 1e-3 : 5e-2;
            char label[96];
            int before = tu_failures;
            snprintf(label, sizeof label, "%s %dx%d stage3 %s", cfg_name, H, W, tok);
            double d = gt_compare(label, f_gpu, f_cpu, nf, tol);
            double r = gt_rms(f_cpu, nf);
            printf("RESULT stage3-%s %s max|diff|/rms=%.3g\n", tok, tu_failures > before ? "FAIL" : "PASS", d / r);
            before = tu_failures;
            snprintf(label, sizeof label, "%s %dx%d logits %s", cfg_name, H, W, tok);
            d = gt_compare(label, l_gpu, l_cpu, nl, tol);
            printf("RESULT logits-%s %s max|diff|/rms=%.3g\n", tok, tu_failures > before ? "FAIL" : "PASS",
                   d / gt_rms(l_cpu, nl));
        }
        if (best >= 0) printf("RESULT gpu-time-%s INFO %.3f s\n", tok, best);
        if (d_in) cudaFree(d_in);
        vmamba_cuda_free(m);
    }
    free(f_cpu), free(l_cpu), free(f_gpu), free(l_gpu);
    vmamba_free(cpu);
    weights_free(w);
    if (do_gpu) cuda_ops_release_thread();
    return fails || tu_failures ? 1 : 0;
}
