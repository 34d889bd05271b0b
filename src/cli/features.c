/*
 * features.c — `wsi-vmamba features SLIDE... --backbone W --out DIR`: the training feature cache
 * (issue 5; docs/training.md). Options are checked here; the work is src/features.h. A slide
 * whose file is already complete is skipped; a failing slide is reported and the others go on
 * (exit 1 at the end); SIGINT/SIGTERM stop at the next region (130/143), leaving no file under
 * a final name.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "src/error.h"
#include "src/features.h"
#include "src/pipeline.h"
#include "src/util.h"
#include "wsi/planner.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: wsi-vmamba features SLIDE... --backbone W --out DIR [OPTIONS]\n\n"
            "Cache the frozen backbone's stage-3 features of every tissue cell (32 px at the\n"
            "target resolution) for training: one CLAM-compatible DIR/<slide_id>.h5 per slide\n"
            "with /coords (N,2) int32 level-0 top-left, /features (N,D), /tissue (the cell grid)\n"
            "and CLAM's attributes; model_sha256 is the sha256 of the backbone file. Complete\n"
            "files are skipped on a rerun; files are written atomically.\n\n"
            "Options:\n"
            "  --backbone FILE   a model file (model init) or a backbone checkpoint\n"
            "                    (.safetensors/.pth) (required)\n"
            "  -o, --out DIR     output folder, created if missing (required)\n"
            "  --device D        auto (default: the GPU when there is one), cpu, cuda, cuda:N\n"
            "  --dtype T         GPU storage of GEMM weights/operands: f32, bf16, f16\n"
            "                    (default f32; the CPU always computes fp32)\n"
            "  --threads N       compute threads (default: all cores)\n"
            "  --mpp X           level-0 µm/px for slides whose file lacks it (default: file's)\n"
            "  --region N        region side, px at the target resolution (default: model's,\n"
            "                    10000)\n"
            "  --overlap N       halo, px at the target resolution, multiple of %d\n"
            "                    (default: model's, 256)\n"
            "  --feature-dtype T /features storage: f16 or f32 (default f16; CLAM's readers\n"
            "                    expect f32)\n"
            "  --quiet           no progress output\n"
            "  -h, --help        this text\n\n"
            "Exit status: 0 all slides cached, 1 a slide or the setup failed, 2 usage,\n"
            "130/143 interrupted.\n",
            PLAN_HALO_MULTIPLE);
}

static void on_signal(int signo) { pipeline_request_stop(signo); }

static int run(int argc, char **argv)
{
    enum { O_BACKBONE = 256, O_DEVICE, O_THREADS, O_MPP, O_REGION, O_OVERLAP, O_DTYPE, O_CDTYPE, O_QUIET };
    static const struct option opts[] = {
        {"backbone", required_argument, 0, O_BACKBONE}, {"out", required_argument, 0, 'o'},
        {"device", required_argument, 0, O_DEVICE},     {"threads", required_argument, 0, O_THREADS},
        {"mpp", required_argument, 0, O_MPP},           {"region", required_argument, 0, O_REGION},
        {"overlap", required_argument, 0, O_OVERLAP},   {"dtype", required_argument, 0, O_CDTYPE},
        {"feature-dtype", required_argument, 0, O_DTYPE},
        {"quiet", no_argument, 0, O_QUIET},             {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    struct features_options o;
    features_options_default(&o);
    long v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case O_BACKBONE: o.backbone_path = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case O_DEVICE: o.device = optarg; break;
        case O_THREADS:
            if (cli_parse_long("features", "--threads", optarg, 1, 1024, &v)) return CLI_EXIT_USAGE;
            o.threads = (int)v;
            break;
        case O_MPP:
            if (cli_parse_mpp("features", optarg, &o.mpp)) return CLI_EXIT_USAGE;
            break;
        case O_REGION:
            if (cli_parse_region("features", optarg, &o.region_px)) return CLI_EXIT_USAGE;
            break;
        case O_OVERLAP:
            if (cli_parse_overlap("features", optarg, &o.overlap_px)) return CLI_EXIT_USAGE;
            break;
        case O_DTYPE:
            if (!strcmp(optarg, "f16")) o.dtype = H5STORE_F16;
            else if (!strcmp(optarg, "f32")) o.dtype = H5STORE_F32;
            else return cli_usage_error("features", "--feature-dtype %s: expected f16 or f32", optarg);
            break;
        case O_CDTYPE:
            if (wv_dtype_parse(optarg, &o.compute_dtype))
                return cli_usage_error("features", "--dtype: %s", error_msg());
            break;
        case O_QUIET: o.quiet = 1; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("features", "unknown option");
        }
    }
    if (!o.backbone_path || !o.out_dir)
        return cli_usage_error("features", "--backbone and --out are required");
    if (optind >= argc) return cli_usage_error("features", "no slide given");
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    struct features *f;
    const char *what;
    if (features_open(&o, &f, &what)) return cli_fail(what);
    int rc = CLI_EXIT_OK;
    for (int i = optind; i < argc; i++) {
        int skipped = 0;
        size_t n = 0;
        char path[4096];
        double t0 = util_now();
        enum wv_status st = features_slide(f, argv[i], &skipped, &n, path, sizeof path);
        if (st == WV_EINTR) {
            cli_fail(argv[i]);
            features_close(f);
            return pipeline_stop_signal() == SIGTERM ? 143 : 130;
        }
        if (st) {
            cli_fail(argv[i]);
            rc = CLI_EXIT_FAIL;
            continue;
        }
        if (!o.quiet) {
            if (skipped)
                fprintf(stderr, "%s: complete, skipped\n", path);
            else
                fprintf(stderr, "%s: %zu tissue cells, %.1f s\n", path, n, util_now() - t0);
        }
    }
    features_close(f);
    return rc;
}

const struct cli_command cli_features = {"features", "cache backbone features per slide for training",
                                         usage, run};
