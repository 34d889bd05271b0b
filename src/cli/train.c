/*
 * train.c — `wsi-vmamba train --features DIR --labels CSV --out MODEL`: fit the slide context
 * head on cached features (issue 5; docs/training.md). Options are checked here; the work is
 * src/train.h.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "src/device_select.h"
#include "src/error.h"
#include "src/train.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: wsi-vmamba train --features DIR --labels CSV --out MODEL.safetensors\n"
            "                        --backbone-model M [--annotations DIR] [OPTIONS]\n\n"
            "Train the slide context head on features cached by `wsi-vmamba features`:\n"
            "per-cell BCE where a slide has cell labels (tumour slides with an annotation file\n"
            "<slide_id>.xml/.geojson/.json in --annotations; normal slides: all cells negative)\n"
            "plus slide BCE from the labels CSV (name,class with class Tumor/Normal; header\n"
            "optional; extra columns ignored). AdamW, linear warm-up + cosine decay, class-\n"
            "balanced losses, gradient clipping, early stopping on validation slide AUC. One\n"
            "line per epoch; MODEL.ckpt after each epoch (--resume continues from it).\n"
            "The output is a complete model file for `wsi-vmamba analyze`.\n\n"
            "Options:\n"
            "  --features DIR        feature files <slide_id>.h5 (required)\n"
            "  --labels FILE         slide labels CSV (required)\n"
            "  -o, --out FILE        model file to write (required)\n"
            "  --backbone-model M    model file whose backbone and preprocessing the features\n"
            "                        were made with; its backbone is copied (required)\n"
            "  --annotations DIR     annotation files for cell labels (default: none)\n"
            "  --epochs N            (default 30)\n"
            "  --lr X                peak learning rate (default 1e-3)\n"
            "  --weight-decay X      AdamW decoupled weight decay, weight matrices only\n"
            "                        (default 1e-4)\n"
            "  --seed S              init, split and order (default 1)\n"
            "  --val-fraction F      validation share of each class, 0..0.9 (default 0.2)\n"
            "  --patience N          epochs without a better validation AUC before stopping,\n"
            "                        0 = never (default 10)\n"
            "  --warmup F            warm-up share of all steps (default 0.05)\n"
            "  --clip X              gradient-norm clip, 0 = off (default 1.0)\n"
            "  --cell-weight X       per-cell loss weight vs the slide loss (default 1.0)\n"
            "  --d-h N, --n-h N      head width (default 128) and blocks (default 2)\n"
            "  --d-state N           scan states per channel (default 4)\n"
            "  --threads N           compute threads (default: all cores); a run is\n"
            "                        deterministic for a seed and thread count\n"
            "  --device D            auto (default: the GPU when there is one), cpu, cuda,\n"
            "                        cuda:N: where the head's forward and backward run\n"
            "  --dtype f32           compute dtype; training is fp32 on CPU and GPU (bf16/f16\n"
            "                        are refused)\n"
            "  --cache-mb N          memory for cached slide features, MiB (default 1024);\n"
            "                        features are read from the .h5 files as needed\n"
            "  --resume              continue from MODEL.ckpt (same options and data)\n"
            "  --quiet               no progress output\n"
            "  -h, --help            this text\n\n"
            "Exit status: 0 model written, 1 failure, 2 usage.\n");
}

static int run(int argc, char **argv)
{
    enum { O_FEAT = 256, O_LABELS, O_BB, O_ANN, O_EPOCHS, O_LR, O_WD, O_SEED, O_VAL, O_PAT,
           O_WARM, O_CLIP, O_CW, O_DH, O_NH, O_DS, O_THREADS, O_RESUME, O_QUIET, O_DEVICE,
           O_CACHE, O_DTYPE };
    static const struct option opts[] = {
        {"features", required_argument, 0, O_FEAT}, {"labels", required_argument, 0, O_LABELS},
        {"out", required_argument, 0, 'o'},          {"backbone-model", required_argument, 0, O_BB},
        {"annotations", required_argument, 0, O_ANN}, {"epochs", required_argument, 0, O_EPOCHS},
        {"lr", required_argument, 0, O_LR},          {"weight-decay", required_argument, 0, O_WD},
        {"seed", required_argument, 0, O_SEED},      {"val-fraction", required_argument, 0, O_VAL},
        {"patience", required_argument, 0, O_PAT},   {"warmup", required_argument, 0, O_WARM},
        {"clip", required_argument, 0, O_CLIP},      {"cell-weight", required_argument, 0, O_CW},
        {"d-h", required_argument, 0, O_DH},         {"n-h", required_argument, 0, O_NH},
        {"d-state", required_argument, 0, O_DS},     {"threads", required_argument, 0, O_THREADS},
        {"resume", no_argument, 0, O_RESUME},        {"quiet", no_argument, 0, O_QUIET},
        {"device", required_argument, 0, O_DEVICE},  {"cache-mb", required_argument, 0, O_CACHE},
        {"dtype", required_argument, 0, O_DTYPE},
        {"help", no_argument, 0, 'h'},               {0, 0, 0, 0}};
    struct train_options o;
    train_options_default(&o);
    long v;
    double d;
    int c;
    optind = 1;
#define L(opt, lo, hi, dst)                                                                  \
    do {                                                                                     \
        if (cli_parse_long("train", opt, optarg, lo, hi, &v)) return CLI_EXIT_USAGE;         \
        dst = (int)v;                                                                        \
    } while (0)
#define F(opt, lo, hi, dst)                                                                  \
    do {                                                                                     \
        if (cli_parse_double("train", opt, optarg, lo, hi, &d)) return CLI_EXIT_USAGE;       \
        dst = d;                                                                             \
    } while (0)
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (c) {
        case O_FEAT: o.features_dir = optarg; break;
        case O_LABELS: o.labels_path = optarg; break;
        case 'o': o.out_path = optarg; break;
        case O_BB: o.backbone_model = optarg; break;
        case O_ANN: o.annotations_dir = optarg; break;
        case O_EPOCHS: L("--epochs", 1, 100000, o.epochs); break;
        case O_LR: F("--lr", 1e-8, 10, o.lr); break;
        case O_WD: F("--weight-decay", 0, 10, o.weight_decay); break;
        case O_SEED:
            if (cli_parse_long("train", "--seed", optarg, 0, 2147483647L, &v)) return CLI_EXIT_USAGE;
            o.seed = (uint64_t)v;
            break;
        case O_VAL: F("--val-fraction", 0, 0.9, o.val_fraction); break;
        case O_PAT: L("--patience", 0, 100000, o.patience); break;
        case O_WARM: F("--warmup", 0, 1, o.warmup_fraction); break;
        case O_CLIP: F("--clip", 0, 1e6, o.clip_norm); break;
        case O_CW: F("--cell-weight", 0, 1e3, o.cell_weight); break;
        case O_DH: L("--d-h", 1, 4096, o.d_h); break;
        case O_NH: L("--n-h", 0, 16, o.n_blocks); break;
        case O_DS: L("--d-state", 1, 64, o.d_state); break;
        case O_THREADS: L("--threads", 1, 1024, o.threads); break;
        case O_RESUME: o.resume = 1; break;
        case O_DEVICE: o.device = optarg; break;
        case O_DTYPE: {
            /* The head is small and its gradients are checked against float64 (docs/training.md):
             * training computes in fp32 on either device; bf16/f16 are refused, not ignored. */
            enum wv_dtype dt;
            if (wv_dtype_parse(optarg, &dt)) return cli_usage_error("train", "--dtype: %s", error_msg());
            if (dt != WV_DTYPE_F32)
                return cli_usage_error("train", "--dtype %s: training computes in f32 only", optarg);
            break;
        }
        case O_CACHE:
            if (cli_parse_long("train", "--cache-mb", optarg, 0, 1L << 30, &v)) return CLI_EXIT_USAGE;
            o.cache_mb = (size_t)v;
            break;
        case O_QUIET: o.quiet = 1; break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default: return cli_usage_error("train", "unknown option");
        }
    }
#undef L
#undef F
    if (optind < argc) return cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (!o.features_dir || !o.labels_path || !o.out_path || !o.backbone_model)
        return cli_usage_error("train",
                               "--features, --labels, --out and --backbone-model are required");
    struct train_result r;
    if (train_run(&o, &r)) return cli_fail(NULL);
    if (!o.quiet) {
        char a[32];
        if (isfinite(r.best_val_auc)) snprintf(a, sizeof a, "%.4f", r.best_val_auc);
        else snprintf(a, sizeof a, "n/a");
        fprintf(stderr, "%s: trained %d epochs (best %d, validation AUC %s) in %.1f s\n",
                o.out_path, r.epochs_run, r.best_epoch, a, r.seconds);
    }
    return CLI_EXIT_OK;
}

const struct cli_command cli_train = {"train", "train the slide context head on cached features",
                                      usage, run};
