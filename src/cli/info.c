/*
 * info.c — `wsi-vmamba info SLIDE...`: what a slide is (levels, vendor, pixel size, associated
 * images), how much tissue it holds and how many regions the current settings plan, optionally
 * a thumbnail PNG with the tissue outline and region grid. Modules: wsi/slide.h, wsi/tissue.h,
 * wsi/planner.h, heatmaps/thumbnail.h. A bad slide is reported and the others still printed.
 */
#include <cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "heatmaps/thumbnail.h"
#include "src/error.h"
#include "src/util.h"
#include "wsi/planner.h"
#include "wsi/slide.h"
#include "wsi/tissue.h"

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: wsi-vmamba info [OPTIONS] SLIDE...\n"
            "Print a slide's levels, vendor, objective power, pixel size, associated images,\n"
            "tissue fraction and the number of regions planned at the given settings.\n\n"
            "Options:\n"
            "  --json              one JSON object per slide, one per line (default: text)\n"
            "  --thumbnail PATH    write a PNG: thumbnail + tissue outline + region grid; with\n"
            "                      several slides PATH must be a directory (<stem>.png inside);\n"
            "                      longest side %d px (default: none)\n"
            "  --mpp X             pixel size of level 0, µm/px; overrides the file's value\n"
            "                      (default: openslide.mpp-x/y, else TIFF resolution)\n"
            "  --target-mpp X      resolution the regions are planned at, µm/px (default %g)\n"
            "  --region N          region side at the target resolution, px (default %d)\n"
            "  --overlap N         halo around each region, px, multiple of %d (default %d)\n"
            "  --tissue-mpp X      tissue mask resolution, µm/px (default %g)\n"
            "  -h, --help          this text\n\n"
            "Without a known pixel size (no --mpp and none in the file) tissue and regions are\n"
            "not computed. Exit status: 0 all slides read, 1 some slide failed, 2 usage error.\n",
            THUMBNAIL_DEFAULT_SIDE, PLAN_DEFAULT_TARGET_MPP, PLAN_DEFAULT_REGION_PX,
            PLAN_HALO_MULTIPLE, PLAN_DEFAULT_OVERLAP_PX, TISSUE_DEFAULT_MPP);
}

struct info_opts {
    int json;
    const char *thumbnail;
    int thumb_is_dir;
    double mpp; /* 0 = from the file */
    struct plan_params plan;
    struct tissue_params tissue;
};

/* What we learned about one slide; everything is printed only when all of it succeeded. */
struct info_result {
    struct slide *s;
    int have_tissue;
    struct tissue_mask mask;
    struct plan plan;
    char thumb_path[4096];
};

static cJSON *num_or_null(double v) { return v > 0 ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

static char *to_json(const struct info_result *r, const struct info_opts *o)
{
    struct slide *s = r->s;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "path", slide_path(s));
    cJSON_AddStringToObject(j, "vendor", slide_vendor(s));
    cJSON_AddNumberToObject(j, "width", (double)slide_level_width(s, 0));
    cJSON_AddNumberToObject(j, "height", (double)slide_level_height(s, 0));
    cJSON_AddNumberToObject(j, "level_count", slide_level_count(s));
    cJSON *levels = cJSON_AddArrayToObject(j, "levels");
    for (int i = 0; i < slide_level_count(s); i++) {
        cJSON *l = cJSON_CreateObject();
        cJSON_AddNumberToObject(l, "width", (double)slide_level_width(s, i));
        cJSON_AddNumberToObject(l, "height", (double)slide_level_height(s, i));
        cJSON_AddNumberToObject(l, "downsample", slide_level_downsample(s, i));
        cJSON_AddNumberToObject(l, "tile_width", slide_level_tile_width(s, i));
        cJSON_AddNumberToObject(l, "tile_height", slide_level_tile_height(s, i));
        cJSON_AddItemToArray(levels, l);
    }
    cJSON_AddItemToObject(j, "objective_power", num_or_null(slide_objective_power(s)));
    cJSON_AddItemToObject(j, "mpp_x", num_or_null(slide_mpp_x(s)));
    cJSON_AddItemToObject(j, "mpp_y", num_or_null(slide_mpp_y(s)));
    cJSON_AddStringToObject(j, "mpp_source", slide_mpp_source_name(slide_mpp_source(s)));
    cJSON_AddItemToObject(j, "file_mpp_x", num_or_null(slide_file_mpp_x(s)));
    cJSON_AddItemToObject(j, "file_mpp_y", num_or_null(slide_file_mpp_y(s)));
    cJSON *assoc = cJSON_AddArrayToObject(j, "associated_images");
    for (int i = 0; i < slide_associated_count(s); i++) {
        int64_t w, h;
        slide_associated_size(s, i, &w, &h);
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "name", slide_associated_name(s, i));
        cJSON_AddNumberToObject(a, "width", (double)w);
        cJSON_AddNumberToObject(a, "height", (double)h);
        cJSON_AddItemToArray(assoc, a);
    }
    if (r->have_tissue) {
        cJSON *t = cJSON_AddObjectToObject(j, "tissue");
        cJSON_AddNumberToObject(t, "fraction", r->mask.fraction);
        cJSON_AddNumberToObject(t, "mask_width", r->mask.w);
        cJSON_AddNumberToObject(t, "mask_height", r->mask.h);
        cJSON_AddNumberToObject(t, "mask_mpp_x", r->mask.mpp_x);
        cJSON_AddNumberToObject(t, "mask_mpp_y", r->mask.mpp_y);
        cJSON_AddNumberToObject(t, "threshold", r->mask.threshold);
        cJSON *p = cJSON_AddObjectToObject(j, "plan");
        cJSON_AddNumberToObject(p, "target_mpp", o->plan.target_mpp);
        cJSON_AddNumberToObject(p, "region_px", (double)o->plan.region_px);
        cJSON_AddNumberToObject(p, "overlap_px", (double)o->plan.overlap_px);
        cJSON_AddNumberToObject(p, "width", (double)r->plan.width);
        cJSON_AddNumberToObject(p, "height", (double)r->plan.height);
        cJSON_AddNumberToObject(p, "grid_cols", r->plan.n_cols);
        cJSON_AddNumberToObject(p, "grid_rows", r->plan.n_rows);
        cJSON_AddNumberToObject(p, "n_regions", (double)r->plan.n_regions);
    } else {
        cJSON_AddNullToObject(j, "tissue");
        cJSON_AddNullToObject(j, "plan");
    }
    if (r->thumb_path[0])
        cJSON_AddStringToObject(j, "thumbnail", r->thumb_path);
    else
        cJSON_AddNullToObject(j, "thumbnail");
    cJSON *props = cJSON_AddObjectToObject(j, "properties");
    const char *const *names = slide_property_names(s);
    for (int i = 0; names && names[i]; i++)
        cJSON_AddStringToObject(props, names[i], slide_property(s, names[i]));
    char *txt = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return txt;
}

static void print_text(FILE *f, const struct info_result *r, const struct info_opts *o)
{
    struct slide *s = r->s;
    fprintf(f, "%s\n", slide_path(s));
    fprintf(f, "  vendor:            %s\n", slide_vendor(s));
    fprintf(f, "  dimensions:        %lld x %lld px\n", (long long)slide_level_width(s, 0),
            (long long)slide_level_height(s, 0));
    fprintf(f, "  levels:            %d\n", slide_level_count(s));
    for (int i = 0; i < slide_level_count(s); i++)
        fprintf(f, "    level %-2d         %lld x %lld px, downsample %.6g, tile %dx%d\n", i,
                (long long)slide_level_width(s, i), (long long)slide_level_height(s, i),
                slide_level_downsample(s, i), slide_level_tile_width(s, i),
                slide_level_tile_height(s, i));
    if (slide_objective_power(s) > 0)
        fprintf(f, "  objective power:   %g\n", slide_objective_power(s));
    else
        fprintf(f, "  objective power:   unknown\n");
    if (slide_mpp_x(s) > 0)
        fprintf(f, "  pixel size:        %g x %g µm/px (%s)\n", slide_mpp_x(s), slide_mpp_y(s),
                slide_mpp_source_name(slide_mpp_source(s)));
    else
        fprintf(f, "  pixel size:        unknown (give --mpp)\n");
    fprintf(f, "  associated images:");
    if (!slide_associated_count(s)) fprintf(f, " none");
    for (int i = 0; i < slide_associated_count(s); i++) {
        int64_t w, h;
        slide_associated_size(s, i, &w, &h);
        fprintf(f, "%s %s (%lldx%lld)", i ? "," : "", slide_associated_name(s, i), (long long)w,
                (long long)h);
    }
    fprintf(f, "\n");
    if (r->have_tissue) {
        fprintf(f, "  tissue:            %.2f%% of the slide (mask %dx%d px at %.4g µm/px, "
                   "saturation threshold %d)\n",
                100.0 * r->mask.fraction, r->mask.w, r->mask.h, r->mask.mpp_x, r->mask.threshold);
        fprintf(f, "  regions:           %zu with tissue of %dx%d (region %lld px, overlap %lld px "
                   "at %g µm/px; slide %lldx%lld px there)\n",
                r->plan.n_regions, r->plan.n_cols, r->plan.n_rows, (long long)o->plan.region_px,
                (long long)o->plan.overlap_px, o->plan.target_mpp, (long long)r->plan.width,
                (long long)r->plan.height);
    } else {
        fprintf(f, "  tissue:            not computed (pixel size unknown; give --mpp)\n");
        fprintf(f, "  regions:           not computed (pixel size unknown; give --mpp)\n");
    }
    if (r->thumb_path[0]) fprintf(f, "  thumbnail:         %s\n", r->thumb_path);
}

/* Everything for one slide; prints nothing on failure (the caller reports error_msg()). */
static enum wv_status info_one(const char *path, const struct info_opts *o)
{
    struct info_result r;
    memset(&r, 0, sizeof r);
    enum wv_status st = slide_open(path, &r.s);
    if (st != WV_OK) return st;
    if (o->mpp > 0 && (st = slide_set_mpp(r.s, o->mpp)) != WV_OK) goto done;
    if (slide_mpp_x(r.s) > 0) {
        if ((st = tissue_detect(r.s, &o->tissue, &r.mask)) != WV_OK) goto done;
        r.have_tissue = 1;
        if ((st = plan_regions(&r.mask, slide_level_width(r.s, 0), slide_level_height(r.s, 0),
                               slide_mpp_x(r.s), slide_mpp_y(r.s), &o->plan, &r.plan)) != WV_OK)
            goto done;
    }
    if (o->thumbnail) {
        if (o->thumb_is_dir) {
            char stem[1024];
            util_stem(path, stem, sizeof stem);
            size_t nd = strlen(o->thumbnail);
            const char *sep = nd && o->thumbnail[nd - 1] == '/' ? "" : "/";
            if (snprintf(r.thumb_path, sizeof r.thumb_path, "%s%s%s.png", o->thumbnail, sep, stem) >=
                (int)sizeof r.thumb_path) {
                st = error_set(WV_EINVAL, "thumbnail path too long");
                goto done;
            }
        } else {
            snprintf(r.thumb_path, sizeof r.thumb_path, "%s", o->thumbnail);
        }
        st = thumbnail_write_png(r.s, r.have_tissue ? &r.mask : NULL,
                                 r.have_tissue ? &r.plan : NULL, 0, r.thumb_path);
        if (st != WV_OK) {
            r.thumb_path[0] = 0;
            goto done;
        }
    }
    if (o->json) {
        char *txt = to_json(&r, o);
        if (!txt) {
            st = error_set(WV_ENOMEM, "out of memory formatting JSON");
            goto done;
        }
        printf("%s\n", txt);
        free(txt);
    } else {
        print_text(stdout, &r, o);
    }
    fflush(stdout);
done:
    plan_free(&r.plan);
    tissue_mask_free(&r.mask);
    slide_close(r.s);
    return st;
}

static int run(int argc, char **argv)
{
    enum { OPT_JSON = 1000, OPT_THUMB, OPT_MPP, OPT_TARGET, OPT_REGION, OPT_OVERLAP, OPT_TMPP };
    static const struct option longopts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"thumbnail", required_argument, NULL, OPT_THUMB},
        {"mpp", required_argument, NULL, OPT_MPP},
        {"target-mpp", required_argument, NULL, OPT_TARGET},
        {"region", required_argument, NULL, OPT_REGION},
        {"overlap", required_argument, NULL, OPT_OVERLAP},
        {"tissue-mpp", required_argument, NULL, OPT_TMPP},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct info_opts o;
    memset(&o, 0, sizeof o);
    plan_params_default(&o.plan);
    tissue_params_default(&o.tissue);
    long lv;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: o.json = 1; break;
        case OPT_THUMB: o.thumbnail = optarg; break;
        case OPT_MPP:
            if (cli_parse_double("info", "--mpp", optarg, 1e-4, 1e4, &o.mpp)) return CLI_EXIT_USAGE;
            break;
        case OPT_TARGET:
            if (cli_parse_double("info", "--target-mpp", optarg, 1e-4, 1e4, &o.plan.target_mpp))
                return CLI_EXIT_USAGE;
            break;
        case OPT_TMPP:
            if (cli_parse_double("info", "--tissue-mpp", optarg, 1e-3, 1e4, &o.tissue.mask_mpp))
                return CLI_EXIT_USAGE;
            break;
        case OPT_REGION:
            if (cli_parse_long("info", "--region", optarg, 1, 1000000, &lv)) return CLI_EXIT_USAGE;
            o.plan.region_px = lv;
            break;
        case OPT_OVERLAP:
            if (cli_parse_long("info", "--overlap", optarg, 0, 1000000, &lv)) return CLI_EXIT_USAGE;
            o.plan.overlap_px = lv;
            break;
        case 'h': usage(stdout); return CLI_EXIT_OK;
        default:
            return cli_usage_error("info", "unknown option or missing value: '%s'",
                                   argv[optind - 1]);
        }
    }
    if (plan_check_params(&o.plan) != WV_OK) {
        int rc = cli_usage_error("info", "%s", error_msg());
        error_clear();
        return rc;
    }
    int n = argc - optind;
    if (n < 1) return cli_usage_error("info", "no slide given");
    if (o.thumbnail) {
        struct stat sb;
        o.thumb_is_dir = stat(o.thumbnail, &sb) == 0 && S_ISDIR(sb.st_mode);
        if (n > 1 && !o.thumb_is_dir)
            return cli_usage_error("info", "--thumbnail %s: with several slides it must be an "
                                   "existing directory", o.thumbnail);
    }
    int failed = 0;
    for (int i = optind; i < argc; i++) {
        error_clear();
        if (info_one(argv[i], &o) != WV_OK) {
            cli_fail(argv[i]);
            failed = 1;
        }
    }
    return failed ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}

const struct cli_command cli_info = {"info", "describe slides: levels, pixel size, tissue, region plan",
                                     usage, run};
