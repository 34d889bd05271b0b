/*
 * forward.c — `wsi-vmamba forward`: run a VMamba checkpoint on a raw fp32 NCHW input and write
 * the logits and every stage map (fp32 NCHW, the golden file names of VMAMBA_SPEC.md §10).
 * The model is src/vmamba.h; input rows are read from the file on demand, so memory does not
 * grow with the input beyond the model's own maps.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../backend.h"
#include "../device_select.h"
#include "../error.h"
#include "../util.h"
#include "../vmamba.h"
#include "../vmamba_config.h"
#include "../weights.h"
#include "cli.h"

#ifdef WV_HAVE_CUDA
#include "cuda/vmamba_cuda.h"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: wsi-vmamba forward --weights W --input X.bin --shape N,C,H,W --out DIR\n"
            "                          [--device auto|cpu|cuda[:N]] [--dtype f32|bf16|f16]\n"
            "                          [--threads N] [--prefix P]\n\n"
            "Run a VMamba checkpoint (.pth or .safetensors, official tensor names) on a raw\n"
            "little-endian float32 NCHW input and write into DIR:\n"
            "  logits.bin                       (N, classes)   (when the checkpoint has a head)\n"
            "  patch_embed.bin                  (N, C0, H0, W0)\n"
            "  stage{0..3}_blocks.bin           (N, Ci, Hi, Wi)   after the blocks of stage i\n"
            "  stage{0..2}_downsampled.bin      (N, Ci+1, Hi+1, Wi+1)\n"
            "all float32 NCHW, little-endian. Any H×W is accepted.\n\n"
            "Options:\n"
            "  --weights W      checkpoint file (required)\n"
            "  --input X        raw float32 NCHW input (required); its size must match --shape\n"
            "  --shape N,C,H,W  input shape (required); C must be the model's input channels\n"
            "  --out DIR        output folder, created if missing (required)\n"
            "  --device D       auto (default: a GPU when one is present, else the CPU), cpu, cuda, cuda:N;\n"
            "                   the device used is printed on stderr\n"
            "  --dtype T        GPU storage of GEMM weights/operands: f32 (default), bf16, f16;\n"
            "                   accumulation and the scan stay fp32 (the CPU always computes fp32)\n"
            "  --threads N      CPU threads (default: all cores); results do not depend on it\n"
            "  --prefix P       tensor name prefix (default: \"\" then \"backbone.\")\n"
            "  --no-maps        write only logits.bin\n"
            "  -h, --help       this text\n\n"
            "Exit status: 0 success, 1 failure (bad file, size mismatch, missing tensor), 2 usage.\n");
}

struct input_file {
    FILE *f;
    const char *path;
    int C, H, W;
};

/* rows [row0, row0+rows) of image b, (rows, W, C) channels-last, read plane by plane */
static enum wv_status read_rows(void *user, int b, int row0, int rows, float *dst)
{
    struct input_file *in = user;
    float *line = malloc((size_t)rows * in->W * sizeof *line);
    if (!line) return error_set(WV_ENOMEM, "input rows");
    for (int c = 0; c < in->C; c++) {
        long long off = ((((long long)b * in->C + c) * in->H) + row0) * in->W * 4;
        if (fseeko(in->f, (off_t)off, SEEK_SET) ||
            fread(line, sizeof(float), (size_t)rows * in->W, in->f) != (size_t)rows * in->W) {
            free(line);
            return error_set(WV_EIO, "%s: read failed at byte %lld", in->path, off);
        }
        for (int r = 0; r < rows; r++)
            for (int w = 0; w < in->W; w++)
                dst[((size_t)r * in->W + w) * in->C + c] = line[(size_t)r * in->W + w];
    }
    free(line);
    return WV_OK;
}

struct out_dir {
    const char *dir;
};

/* Write a (B, H, W, C) channels-last map as (B, C, H, W) to <dir>/<name>.bin (temp + rename),
 * a few channel planes at a time. */
static enum wv_status write_map(void *user, const char *name, const float *map, int B, int H,
                                int W, int C)
{
    const struct out_dir *o = user;
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s.bin", o->dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return error_set(WV_EIO, "%s: cannot create", tmp);
    const size_t L = (size_t)H * W;
    const int CP = 8; /* planes per pass over the map */
    float *planes = malloc((size_t)CP * L * sizeof *planes);
    enum wv_status st = WV_OK;
    if (!planes) {
        st = error_set(WV_ENOMEM, "%s: output buffer", path);
        goto out;
    }
    for (int b = 0; b < B && !st; b++)
        for (int c0 = 0; c0 < C && !st; c0 += CP) {
            int nc = C - c0 < CP ? C - c0 : CP;
            const float *mb = map + (size_t)b * L * C;
            for (size_t p = 0; p < L; p++)
                for (int k = 0; k < nc; k++) planes[(size_t)k * L + p] = mb[p * C + c0 + k];
            if (fwrite(planes, sizeof(float), nc * L, f) != nc * L)
                st = error_set(WV_EIO, "%s: write failed", tmp);
        }
out:
    free(planes);
    if (fclose(f) && !st) st = error_set(WV_EIO, "%s: write failed", tmp);
    if (!st && rename(tmp, path)) st = error_set(WV_EIO, "%s: cannot rename", path);
    if (st) remove(tmp);
    return st;
}

static int run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"weights", required_argument, 0, 'w'}, {"input", required_argument, 0, 'i'},
        {"shape", required_argument, 0, 's'},   {"out", required_argument, 0, 'o'},
        {"device", required_argument, 0, 'd'},  {"threads", required_argument, 0, 't'},
        {"prefix", required_argument, 0, 'p'},  {"no-maps", no_argument, 0, 'n'},
        {"dtype", required_argument, 0, 'y'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    const char *wpath = NULL, *ipath = NULL, *shape = NULL, *outdir = NULL, *device = "auto",
               *prefix = NULL, *dtype_s = "f32";
    long threads = 0;
    int no_maps = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "w:i:s:o:d:t:p:y:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'w': wpath = optarg; break;
        case 'i': ipath = optarg; break;
        case 's': shape = optarg; break;
        case 'o': outdir = optarg; break;
        case 'd': device = optarg; break;
        case 'p': prefix = optarg; break;
        case 'n': no_maps = 1; break;
        case 'y': dtype_s = optarg; break;
        case 't':
            if (cli_parse_long("forward", "--threads", optarg, 1, 1024, &threads)) return CLI_EXIT_USAGE;
            break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("forward", "unknown option");
        }
    }
    if (optind < argc) return cli_usage_error("forward", "unexpected argument '%s'", argv[optind]);
    if (!wpath || !ipath || !shape || !outdir)
        return cli_usage_error("forward", "--weights, --input, --shape and --out are required");
    long dims[4];
    {
        char *s = (char *)shape, *end;
        for (int k = 0; k < 4; k++) {
            dims[k] = strtol(s, &end, 10);
            if (end == s || dims[k] < 1 || dims[k] > 1000000 || (k < 3 && *end != ',') ||
                (k == 3 && *end))
                return cli_usage_error("forward", "--shape '%s': expected N,C,H,W (positive integers)",
                                       shape);
            s = end + 1;
        }
    }
    enum wv_dtype dtype;
    if (wv_dtype_parse(dtype_s, &dtype)) return cli_usage_error("forward", "%s", error_msg());
    struct device_choice dc;
    if (device_select(device, &dc)) {
        if (error_code() == WV_EINVAL) return cli_usage_error("forward", "%s", error_msg());
        return cli_fail("forward");
    }
    /* the CPU backend also serves the GPU path's host side (input rows) */
    struct backend be;
    if (backend_init(&be, WV_DEVICE_CPU, (int)threads, 0)) return cli_fail("forward");
    fprintf(stderr, "forward: device %s, dtype %s\n", dc.desc,
            dc.device == WV_DEVICE_CUDA ? wv_dtype_name(dtype) : "f32");

    int rc = CLI_EXIT_FAIL;
    struct weights *w = NULL;
    struct vmamba *m = NULL;
    const char *used_prefix = "";
#ifdef WV_HAVE_CUDA
    struct vmamba_cuda *gm = NULL;
#endif
    struct input_file in = {.f = NULL, .path = ipath};
    float *logits = NULL;
    if (weights_load(wpath, &w)) {
        rc = cli_fail(wpath);
        goto out;
    }
    {
        static const char *const tries[] = {"", "backbone."};
        char why[512] = "";
        for (int i = 0; i < (prefix ? 1 : 2) && !m; i++) {
            error_clear();
            if (vmamba_load(w, prefix ? prefix : tries[i], &m) && i == 0)
                snprintf(why, sizeof why, "%s", error_msg());
            if (m) used_prefix = prefix ? prefix : tries[i];
        }
        if (!m) {
            error_clear();
            error_set(WV_EFORMAT, "%s", why);
            rc = cli_fail(wpath);
            goto out;
        }
    }
    const struct vmamba_config *cfg = vmamba_get_config(m);
    int N = (int)dims[0], C = (int)dims[1], H = (int)dims[2], W = (int)dims[3];
    if (C != vmamba_in_chans(m)) {
        error_set(WV_EINVAL, "--shape has %d channels, the model takes %d", C, vmamba_in_chans(m));
        rc = cli_fail(ipath);
        goto out;
    }
    struct stat sb;
    long long want = (long long)N * C * H * W * 4;
    if (stat(ipath, &sb)) {
        error_set(WV_EIO, "cannot open");
        rc = cli_fail(ipath);
        goto out;
    }
    if ((long long)sb.st_size != want) {
        error_set(WV_EINVAL, "size %lld bytes does not match --shape %d,%d,%d,%d (%lld bytes of float32)",
                  (long long)sb.st_size, N, C, H, W, want);
        rc = cli_fail(ipath);
        goto out;
    }
    if (!(in.f = fopen(ipath, "rb"))) {
        error_set(WV_EIO, "cannot open");
        rc = cli_fail(ipath);
        goto out;
    }
    in.C = C, in.H = H, in.W = W;
    if (util_mkdir_p(outdir)) {
        rc = cli_fail(outdir);
        goto out;
    }
    if (cfg->num_classes > 0 && !(logits = malloc((size_t)N * cfg->num_classes * sizeof *logits))) {
        error_set(WV_ENOMEM, "logits");
        rc = cli_fail("forward");
        goto out;
    }
    struct out_dir od = {outdir};
    double t0 = util_now();
    enum wv_status fst;
    (void)used_prefix; /* only the GPU path needs it */
#ifdef WV_HAVE_CUDA
    if (dc.device == WV_DEVICE_CUDA) {
        struct vmamba_cuda_options gopt = {.device = dc.index, .dtype = dtype};
        if (vmamba_cuda_create(w, used_prefix, &gopt, &gm)) {
            rc = cli_fail(wpath);
            goto out;
        }
        t0 = util_now();
        fst = vmamba_cuda_forward(gm, N, H, W, read_rows, &in, no_maps ? NULL : write_map, &od,
                                  logits, NULL);
    } else
#endif
        fst = vmamba_forward(m, &be, N, H, W, read_rows, &in, no_maps ? NULL : write_map, &od,
                             logits, NULL);
    if (fst) {
        rc = cli_fail(ipath);
        goto out;
    }
    double t1 = util_now();
    if (logits) {
        char path[4096];
        snprintf(path, sizeof path, "%s/logits.bin", outdir);
        if (util_write_file_atomic(path, logits, (size_t)N * cfg->num_classes * sizeof *logits)) {
            rc = cli_fail(path);
            goto out;
        }
    }
    fprintf(stderr, "forward: %d×%d×%d×%d in %.3f s (%d threads), peak RSS %.1f MiB\n", N, C, H,
            W, t1 - t0, be.threads, util_peak_rss() / 1048576.0);
    rc = CLI_EXIT_OK;
out:
    if (in.f) fclose(in.f);
    free(logits);
#ifdef WV_HAVE_CUDA
    vmamba_cuda_free(gm);
#endif
    vmamba_free(m);
    weights_free(w);
    backend_destroy(&be);
    return rc;
}

const struct cli_command cli_forward = {
    "forward", "run a VMamba checkpoint on a raw fp32 NCHW input; write logits and stage maps",
    usage, run};
