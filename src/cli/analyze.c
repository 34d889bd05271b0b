/*
 * analyze.c — `wsi-vmamba analyze SLIDE... --model M --out DIR`: heatmap, slide score and lesion
 * candidates per slide (issue 4; user guide docs/analyze.md). Parses and checks the options,
 * installs the SIGINT/SIGTERM handlers, then hands each slide to src/pipeline.h. A failing slide
 * is reported `wsi-vmamba: <slide>: <reason>` (and recorded failed by the pipeline); the others
 * go on; the exit status is 1 at the end. An interrupt stops at once: 130 (SIGINT), 143 (SIGTERM).
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "src/device_select.h"
#include "src/error.h"
#include "src/pipeline.h"
#include "src/util.h"
#include "wsi/planner.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: wsi-vmamba analyze SLIDE... --model MODEL.safetensors --out DIR [OPTIONS]\n\n"
            "Run the VMamba backbone and the slide context head over each slide: a tumour\n"
            "probability per 32-px cell at the model's resolution (the heatmap), a slide\n"
            "probability and lesion candidates. Writes into DIR:\n"
            "  <slide_id>.h5     heatmap, tissue, coords, scores (+ features), atomically\n"
            "  <slide_id>.csv    CAMELYON16 lesion CSV: confidence,X,Y (level-0 px)\n"
            "  results.sqlite    runs, slides, scores (with seconds per stage), lesions\n"
            "<slide_id> is the file name without its extension. Re-running replaces a slide's\n"
            "results. Memory depends on the region size and queue, not on the slide size.\n\n"
            "Options:\n"
            "  --model FILE          model file from `wsi-vmamba model init` (required)\n"
            "  -o, --out DIR         output folder, created if missing (required)\n"
            "  --device D            auto, cpu, cuda or cuda:N (default auto: the GPU when this\n"
            "                        build has CUDA and one is present, else the CPU; the\n"
            "                        device used is printed on stderr)\n"
            "  --dtype T             GPU storage of GEMM weights/operands: f32, bf16, f16\n"
            "                        (default f32; the CPU always computes fp32)\n"
            "  --threads N           compute threads (default: all cores); results do not\n"
            "                        depend on it\n"
            "  --readers N           slide reader threads (default: %d on the CPU; with a GPU\n"
            "                        half the compute threads, 2 to %d)\n"
            "  --queue N             region buffers in flight, each (region + 2·overlap)² × 3\n"
            "                        bytes (default %d)\n"
            "  --mpp X               level-0 pixel size, µm/px, for slides whose file lacks it\n"
            "                        (overrides the file's value) (default: the file's)\n"
            "  --region N            region side, px at the model's resolution, rounded down to\n"
            "                        a multiple of %d (default: the model's, e.g. 10000 → 9984)\n"
            "  --overlap N           halo on each side of a region, px at the model's\n"
            "                        resolution, multiple of %d (default: the model's, e.g. 256)\n"
            "  --png FILE            heatmap overlay picture (PNG) of the one slide given\n"
            "                        (default: none)\n"
            "  --png-dir             write <slide_id>.png into DIR for every slide (default: off)\n"
            "  --save-features       also store the backbone features (float32, D per cell) in\n"
            "                        the .h5 (default: off)\n"
            "  --lesion-threshold P  probability for lesion regions/peaks and the tumour area,\n"
            "                        0..1 (default 0.5)\n"
            "  --quiet               no progress bar, log lines, summary or timing line\n"
            "                        (default: a bar on a terminal, a log line every 10 s\n"
            "                        otherwise; a `<slide_id>: timing: ...` line per slide on\n"
            "                        stderr: seconds per stage, see docs/analyze.md)\n"
            "  --check-streaming     testing: also run the head unchunked on the same cell grid\n"
            "                        and fail if any output differs by more than 1e-5\n"
            "  -h, --help            this text\n\n"
            "Exit status: 0 every slide done, 1 a slide or the setup failed, 2 usage,\n"
            "130/143 interrupted by SIGINT/SIGTERM (the slide is recorded failed).\n",
            PIPELINE_DEFAULT_READERS, PIPELINE_MAX_AUTO_READERS, PIPELINE_DEFAULT_QUEUE, PIPELINE_CELL_PX,
            PLAN_HALO_MULTIPLE);
}

static void on_signal(int signo)
{
    pipeline_request_stop(signo);
}

/* SA_RESETHAND: a second Ctrl-C kills at once; SA_RESTART: SQLite/HDF5 I/O is not cut short. */
static void install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static int run(int argc, char **argv)
{
    enum { O_MODEL = 256, O_DEVICE, O_DTYPE, O_THREADS, O_READERS, O_QUEUE, O_MPP, O_REGION,
           O_OVERLAP, O_PNG, O_PNG_DIR, O_SAVE_FEATURES, O_LESION, O_QUIET, O_CHECK };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},     {"out", required_argument, 0, 'o'},
        {"device", required_argument, 0, O_DEVICE},   {"dtype", required_argument, 0, O_DTYPE},
        {"threads", required_argument, 0, O_THREADS}, {"readers", required_argument, 0, O_READERS},
        {"queue", required_argument, 0, O_QUEUE},     {"mpp", required_argument, 0, O_MPP},
        {"region", required_argument, 0, O_REGION},   {"overlap", required_argument, 0, O_OVERLAP},
        {"png", required_argument, 0, O_PNG},         {"png-dir", no_argument, 0, O_PNG_DIR},
        {"save-features", no_argument, 0, O_SAVE_FEATURES},
        {"lesion-threshold", required_argument, 0, O_LESION},
        {"quiet", no_argument, 0, O_QUIET},           {"check-streaming", no_argument, 0, O_CHECK},
        {"help", no_argument, 0, 'h'},                {0, 0, 0, 0}};
    struct pipeline_options o;
    pipeline_options_default(&o);
    const char *model = NULL, *dtype_s = "f32";
    long v;
    double d;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: model = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case O_DEVICE: o.device = optarg; break;
        case O_DTYPE: dtype_s = optarg; break;
        case O_THREADS:
            if (cli_parse_long("analyze", "--threads", optarg, 1, 1024, &v)) return CLI_EXIT_USAGE;
            o.threads = (int)v;
            break;
        case O_READERS:
            if (cli_parse_long("analyze", "--readers", optarg, 1, 64, &v)) return CLI_EXIT_USAGE;
            o.readers = (int)v;
            break;
        case O_QUEUE:
            if (cli_parse_long("analyze", "--queue", optarg, 1, 64, &v)) return CLI_EXIT_USAGE;
            o.queue = (int)v;
            break;
        case O_MPP:
            if (cli_parse_mpp("analyze", optarg, &o.mpp)) return CLI_EXIT_USAGE;
            break;
        case O_REGION:
            if (cli_parse_region("analyze", optarg, &o.region_px)) return CLI_EXIT_USAGE;
            break;
        case O_OVERLAP:
            if (cli_parse_overlap("analyze", optarg, &o.overlap_px)) return CLI_EXIT_USAGE;
            break;
        case O_PNG: o.png_path = optarg; break;
        case O_PNG_DIR: o.png_dir = 1; break;
        case O_SAVE_FEATURES: o.save_features = 1; break;
        case O_LESION:
            if (cli_parse_double("analyze", "--lesion-threshold", optarg, 0, 1, &d))
                return CLI_EXIT_USAGE;
            o.lesion_threshold = (float)d;
            break;
        case O_QUIET: o.quiet = 1; break;
        case O_CHECK: o.check_streaming = 1; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("analyze", "unknown option");
        }
    }
    int n_slides = argc - optind;
    if (!model || !o.out_dir) return cli_usage_error("analyze", "--model and --out are required");
    if (n_slides < 1) return cli_usage_error("analyze", "no slide given");
    if (o.png_path && o.png_dir) return cli_usage_error("analyze", "--png and --png-dir exclude each other");
    if (o.png_path && n_slides > 1)
        return cli_usage_error("analyze", "--png FILE takes one slide; use --png-dir for several");
    if (wv_dtype_parse(dtype_s, &o.dtype)) return cli_usage_error("analyze", "%s", error_msg());

    install_handlers();
    struct pipeline *p = NULL;
    const char *what = NULL;
    if (pipeline_open(model, &o, &p, &what)) {
        if (!what && error_code() == WV_EINVAL) return cli_usage_error("analyze", "%s", error_msg());
        return cli_fail(what);
    }
    if (!o.quiet) fprintf(stderr, "analyze: device %s\n", pipeline_device_desc(p));
    int failed = 0, stop = 0;
    for (int i = optind; i < argc && !stop; i++) {
        if (pipeline_stop_signal()) break;
        struct pipeline_slide_result res;
        if (pipeline_run_slide(p, argv[i], &res)) {
            stop = error_code() == WV_EINTR;
            cli_fail(argv[i]);
            failed++;
            continue;
        }
        if (!o.quiet)
            printf("%s: slide probability %.6g, %zu tissue cells (%d×%d grid), %zu regions, "
                   "%zu lesion candidates, %.1f s -> %s\n",
                   res.slide_id, res.slide_prob, res.n_tissue_cells, res.cols, res.rows,
                   res.n_regions, res.n_lesions, res.seconds_total, res.h5_path);
        /* one machine-readable line per slide; the stages are results.sqlite's seconds_*
         * (read = setup + readers, summed over the reader threads: it overlaps encode) */
        if (!o.quiet)
            fprintf(stderr,
                    "%s: timing: read=%.3fs encode=%.3fs head=%.3fs write=%.3fs total=%.3fs "
                    "setup=%.3fs readers=%.3fs wait=%.3fs (read = setup + readers' busy time "
                    "summed over %d threads, overlapping encode; wait = encode idle for a "
                    "region)\n",
                    res.slide_id, res.seconds_read, res.seconds_encode, res.seconds_head,
                    res.seconds_write, res.seconds_total, res.seconds_setup,
                    res.seconds_readers, res.seconds_wait, pipeline_readers(p));
        if (!o.quiet && o.check_streaming)
            printf("%s: streaming check: max |chunked - one pass| = %g (tolerance 1e-5)\n",
                   res.slide_id, res.streaming_max_diff);
        fflush(stdout);
    }
    int sig = pipeline_stop_signal();
    if (pipeline_close(p, sig ? "interrupted" : failed ? "failed" : "done")) {
        cli_fail(o.out_dir);
        failed++;
    }
    if (sig) return 128 + sig;
    return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

const struct cli_command cli_analyze = {
    "analyze", "heatmap, slide probability and lesion candidates for slides (needs a model file)",
    usage, run};
