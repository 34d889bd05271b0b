/*
 * batch.c — `wsi-vmamba batch ARCHIVE_DIR|MANIFEST.csv --model M --out DIR`: analyze a slide
 * archive with resume, isolation of bad slides, several workers/GPUs and shards (issue 7; user
 * guide docs/batch.md). Parses and checks the options, then hands everything to src/batch.h.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "src/batch.h"
#include "src/error.h"
#include "wsi/planner.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: wsi-vmamba batch ARCHIVE_DIR|MANIFEST.csv --model MODEL --out DIR [OPTIONS]\n\n"
            "Analyze every slide of an archive folder (found recursively by extension: .svs .tif\n"
            ".tiff .ndpi .mrxs .scn .vms .vmu .bif .svslide; *_mask.tif / *_Mask.tif skipped) or\n"
            "of a CSV manifest (path[,slide_id[,label]], header optional) into DIR, as `analyze`\n"
            "does for one slide. Slides are known by a content hash, so a renamed or moved file\n"
            "is not redone and a changed one is; complete results are skipped; after a crash or\n"
            "kill the next run goes on where it stopped. Each slide runs in a worker process: a\n"
            "slide that fails, crashes, exhausts memory or runs too long is recorded failed with\n"
            "its reason and the run goes on. See docs/batch.md.\n\n"
            "Options:\n"
            "  --model FILE          model file (required)\n"
            "  -o, --out DIR         results folder, created if missing (required)\n"
            "  --jobs N              worker processes (default 1)\n"
            "  --devices LIST        CUDA ordinals, e.g. 0,1,3: one worker per GPU (replaces --jobs)\n"
            "  --device D            device of workers without --devices: cpu, cuda, cuda:N, auto\n"
            "                        (default auto)\n"
            "  --dtype T             GPU storage: f32, bf16, f16 (default f32)\n"
            "  --threads N           compute threads per worker (default: cores / workers)\n"
            "  --shard I/N           do only shard I of N (0 <= I < N): a slide's shard is the first\n"
            "                        64 bits of its content hash mod N (default 0/1 = all)\n"
            "  --retry-failed        redo slides recorded failed (default: skip them)\n"
            "  --slide-timeout S     kill a slide's worker after S seconds and record it failed\n"
            "                        (default 0 = no limit)\n"
            "  --worker-memory GIB   address-space limit per worker, GiB (default 0 = none)\n"
            "  --include-masks       also take *_mask.tif / *_Mask.tif files for slides\n"
            "  --dry-run             print what would be done (analyze/skip/duplicate/error per\n"
            "                        slide) and write nothing\n"
            "  --readers N, --queue N, --mpp X, --region N, --overlap N, --save-features,\n"
            "  --png-dir, --lesion-threshold P\n"
            "                        per-slide options as in `wsi-vmamba analyze --help`\n"
            "                        (defaults: readers %d on the CPU, with a GPU half of each\n"
            "                        worker's threads (2 to %d); queue %d; region and overlap\n"
            "                        the model's, overlap a multiple of %d)\n"
            "  --quiet               no progress lines and no summary\n"
            "  -h, --help            this text\n\n"
            "Progress (stderr): one line per finished slide with done/failed/remaining, slides\n"
            "per hour and ETA. Summary (stdout): counts, failed slides with reasons, input errors.\n"
            "Exit status: 0 every slide of this shard done, 1 a slide failed (now or earlier and\n"
            "not retried) or an input entry had an error or the setup failed, 2 usage,\n"
            "130/143 interrupted by SIGINT/SIGTERM (the slides in progress are redone next run).\n",
            PIPELINE_DEFAULT_READERS, PIPELINE_MAX_AUTO_READERS, PIPELINE_DEFAULT_QUEUE,
            PLAN_HALO_MULTIPLE);
}

static int run(int argc, char **argv)
{
    enum { O_MODEL = 256, O_JOBS, O_DEVICES, O_DEVICE, O_DTYPE, O_THREADS, O_SHARD, O_RETRY,
           O_TIMEOUT, O_WMEM, O_MASKS, O_DRY, O_READERS, O_QUEUE, O_MPP, O_REGION, O_OVERLAP,
           O_SAVE_FEATURES, O_PNG_DIR, O_LESION, O_QUIET };
    static const struct option opts[] = {
        {"model", required_argument, 0, O_MODEL},       {"out", required_argument, 0, 'o'},
        {"jobs", required_argument, 0, O_JOBS},         {"devices", required_argument, 0, O_DEVICES},
        {"device", required_argument, 0, O_DEVICE},     {"dtype", required_argument, 0, O_DTYPE},
        {"threads", required_argument, 0, O_THREADS},   {"shard", required_argument, 0, O_SHARD},
        {"retry-failed", no_argument, 0, O_RETRY},      {"slide-timeout", required_argument, 0, O_TIMEOUT},
        {"worker-memory", required_argument, 0, O_WMEM}, {"include-masks", no_argument, 0, O_MASKS},
        {"dry-run", no_argument, 0, O_DRY},             {"readers", required_argument, 0, O_READERS},
        {"queue", required_argument, 0, O_QUEUE},       {"mpp", required_argument, 0, O_MPP},
        {"region", required_argument, 0, O_REGION},     {"overlap", required_argument, 0, O_OVERLAP},
        {"save-features", no_argument, 0, O_SAVE_FEATURES}, {"png-dir", no_argument, 0, O_PNG_DIR},
        {"lesion-threshold", required_argument, 0, O_LESION}, {"quiet", no_argument, 0, O_QUIET},
        {"help", no_argument, 0, 'h'},                  {0, 0, 0, 0}};
    struct batch_options o;
    batch_options_default(&o);
    const char *dtype_s = "f32";
    long v;
    double d;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o.model_path = optarg; break;
        case 'o': o.out_dir = optarg; break;
        case O_JOBS:
            if (cli_parse_long("batch", "--jobs", optarg, 1, BATCH_MAX_JOBS, &v)) return CLI_EXIT_USAGE;
            o.jobs = (int)v;
            break;
        case O_DEVICES:
            if (batch_parse_devices(optarg, o.devices, BATCH_MAX_DEVICES, &o.n_devices))
                return cli_usage_error("batch", "%s", error_msg());
            break;
        case O_DEVICE: o.pipe.device = optarg; break;
        case O_DTYPE: dtype_s = optarg; break;
        case O_THREADS:
            if (cli_parse_long("batch", "--threads", optarg, 1, 1024, &v)) return CLI_EXIT_USAGE;
            o.pipe.threads = (int)v;
            break;
        case O_SHARD:
            if (batch_parse_shard(optarg, &o.shard_index, &o.shard_count))
                return cli_usage_error("batch", "%s", error_msg());
            break;
        case O_RETRY: o.retry_failed = 1; break;
        case O_TIMEOUT:
            if (cli_parse_double("batch", "--slide-timeout", optarg, 0, 1e7, &d)) return CLI_EXIT_USAGE;
            o.slide_timeout_s = d;
            break;
        case O_WMEM:
            if (cli_parse_double("batch", "--worker-memory", optarg, 0, 1e6, &d)) return CLI_EXIT_USAGE;
            o.worker_memory_bytes = (int64_t)(d * 1073741824.0);
            break;
        case O_MASKS: o.include_masks = 1; break;
        case O_DRY: o.dry_run = 1; break;
        case O_READERS:
            if (cli_parse_long("batch", "--readers", optarg, 1, 64, &v)) return CLI_EXIT_USAGE;
            o.pipe.readers = (int)v;
            break;
        case O_QUEUE:
            if (cli_parse_long("batch", "--queue", optarg, 1, 64, &v)) return CLI_EXIT_USAGE;
            o.pipe.queue = (int)v;
            break;
        case O_MPP:
            if (cli_parse_mpp("batch", optarg, &o.pipe.mpp)) return CLI_EXIT_USAGE;
            break;
        case O_REGION:
            if (cli_parse_region("batch", optarg, &o.pipe.region_px)) return CLI_EXIT_USAGE;
            break;
        case O_OVERLAP:
            if (cli_parse_overlap("batch", optarg, &o.pipe.overlap_px)) return CLI_EXIT_USAGE;
            break;
        case O_SAVE_FEATURES: o.pipe.save_features = 1; break;
        case O_PNG_DIR: o.pipe.png_dir = 1; break;
        case O_LESION:
            if (cli_parse_double("batch", "--lesion-threshold", optarg, 0, 1, &d)) return CLI_EXIT_USAGE;
            o.pipe.lesion_threshold = (float)d;
            break;
        case O_QUIET: o.quiet = 1; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("batch", "unknown option");
        }
    }
    if (!o.model_path || !o.out_dir) return cli_usage_error("batch", "--model and --out are required");
    if (argc - optind != 1)
        return cli_usage_error("batch", "give one archive folder or one manifest (.csv)");
    o.input = argv[optind];
    if (o.n_devices && o.jobs && o.jobs != o.n_devices)
        return cli_usage_error("batch", "--jobs %d and %d --devices: one worker per device",
                               o.jobs, o.n_devices);
    if (wv_dtype_parse(dtype_s, &o.pipe.dtype)) return cli_usage_error("batch", "%s", error_msg());
    struct batch_summary s;
    const char *what = NULL;
    if (batch_run(&o, &s, &what)) {
        if (!what && error_code() == WV_EINVAL) return cli_usage_error("batch", "%s", error_msg());
        return cli_fail(what);
    }
    if (s.stop_signal) return 128 + s.stop_signal;
    /* a dry run "fails" only for what a real run could not fix: input errors, earlier failures */
    if (o.dry_run) return s.n_failed || s.n_input_errors ? CLI_EXIT_FAIL : CLI_EXIT_OK;
    return s.n_failed || s.n_input_errors || s.n_remaining ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

const struct cli_command cli_batch = {
    "batch", "analyze a slide archive or manifest: resume, isolation, workers, GPUs, shards",
    usage, run};
