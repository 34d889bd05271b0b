#!/usr/bin/env python3
"""slides_info_check.py — `wsi-vmamba info` on the good fixtures: --json parsed and checked
against python3-openslide's view of the same files, text output, thumbnails, several slides at
once, --help and usage errors (exit 2). Env: WV_BIN, WV_SHARED_DIR, WV_TEST_TMP."""
import json
import os
import subprocess
import sys

import openslide

BIN = os.environ["WV_BIN"]
SHARED = os.environ.get("WV_SHARED_DIR", "../shared")
TMP = os.path.join(os.environ.get("WV_TEST_TMP", "/tmp"), "slides_info")
os.makedirs(TMP, exist_ok=True)
SL = os.path.join(SHARED, "fixtures/slides")
failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures += 1


def run(*args):
    return subprocess.run([BIN, "info", *args], capture_output=True, text=True, timeout=120)


def info_json(*args):
    r = run("--json", *args)
    check(r.returncode == 0, f"info --json {' '.join(args)}: exit 0 ({r.stderr.strip()})")
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    return [json.loads(l) for l in lines]


def main():
    if not os.path.isdir(SL):
        return 77
    # CMU-1-Small-Region: aperio, 1 level, mpp 0.499, tissue + plan
    cmu = os.path.join(SL, "CMU-1-Small-Region.svs")
    thumb = os.path.join(TMP, "cmu.png")
    if os.path.exists(thumb):
        os.unlink(thumb)
    (j,) = info_json(cmu, "--thumbnail", thumb, "--region", "512", "--overlap", "64")
    o = openslide.OpenSlide(cmu)
    check(j["vendor"] == "aperio" and j["level_count"] == 1, "CMU vendor, levels")
    check([j["width"], j["height"]] == [2220, 2967], "CMU dimensions")
    check([[l["width"], l["height"]] for l in j["levels"]] == [list(d) for d in o.level_dimensions],
          "CMU level dimensions = openslide")
    check(j["mpp_x"] == 0.499 and j["mpp_y"] == 0.499 and j["mpp_source"] == "openslide", "CMU mpp")
    check(j["objective_power"] == 20, "CMU objective power")
    check(sorted(a["name"] for a in j["associated_images"]) == sorted(o.associated_images.keys()),
          "CMU associated images")
    check(j["properties"]["openslide.quickhash-1"] == o.properties["openslide.quickhash-1"],
          "CMU properties passed through")
    t = j["tissue"]
    check(0.30 < t["fraction"] < 0.55, f"CMU tissue fraction {t['fraction']:.3f} in (0.30, 0.55)")
    p = j["plan"]
    check(p["region_px"] == 512 and p["overlap_px"] == 64 and p["target_mpp"] == 0.5, "plan params")
    check(p["grid_cols"] == 5 and p["grid_rows"] == 6, "plan grid 5x6 (2216x2962 px at 0.5)")
    check(0 < p["n_regions"] < 30, f"plan regions {p['n_regions']} (tissue only)")
    check(j["thumbnail"] == thumb and os.path.getsize(thumb) > 1000, "thumbnail written")
    with open(thumb, "rb") as f:
        check(f.read(8) == b"\x89PNG\r\n\x1a\n", "thumbnail is a PNG")
    check(not [n for n in os.listdir(TMP) if ".tmp." in n], "no temp files left")

    # tcga: 2 levels, JPEG 2000, no mpp → tissue/plan null; with --mpp they appear
    tcga = os.path.join(SL, "tcga-cr-7395-01a-01-ts1.svs")
    (j,) = info_json(tcga)
    check(j["level_count"] == 2 and [j["levels"][1]["width"], j["levels"][1]["height"]] == [2221, 1783],
          "tcga levels")
    check(abs(j["levels"][1]["downsample"] - 2.0005055500659967) < 1e-9, "tcga downsample")
    check(j["mpp_x"] is None and j["mpp_source"] == "none", "tcga mpp unknown")
    check(j["tissue"] is None and j["plan"] is None, "tcga: no tissue/plan without mpp")
    (j,) = info_json(tcga, "--mpp", "0.25")
    check(j["mpp_x"] == 0.25 and j["mpp_source"] == "user" and j["file_mpp_x"] is None, "tcga --mpp")
    check(j["tissue"] is not None and 0.3 < j["tissue"]["fraction"] < 0.95, "tcga tissue with --mpp")
    check(j["plan"]["n_regions"] == 1, "tcga one default region (2222x1784 px at 0.5)")

    # boxes.tiff: generic-tiff, 4 levels, 72-dpi resolution → unknown mpp
    boxes = os.path.join(SL, "boxes.tiff")
    (j,) = info_json(boxes)
    check(j["vendor"] == "generic-tiff" and j["level_count"] == 4, "boxes vendor, levels")
    check([l["width"] for l in j["levels"]] == [300, 150, 75, 37], "boxes level widths")
    check(j["mpp_x"] is None and j["properties"]["tiff.ResolutionUnit"] == "centimeter",
          "boxes: 72 dpi resolution not taken as a pixel size")

    # several slides, one bad: the good ones printed, the bad one on stderr, exit 1
    bad = os.path.join(SL, "broken.svs")
    r = run("--json", cmu, bad, boxes)
    lines = [json.loads(l) for l in r.stdout.splitlines() if l.strip()]
    check(r.returncode == 1, "several slides with a bad one: exit 1")
    check([os.path.basename(x["path"]) for x in lines] == ["CMU-1-Small-Region.svs", "boxes.tiff"],
          "several slides: the good ones printed in order")
    # (libtiff itself may warn on stderr about boxes.tiff's last level: other lines are allowed)
    check(f"wsi-vmamba: {bad}: not a supported slide format" in r.stderr.splitlines(),
          "bad one on stderr")

    # several slides + thumbnail directory
    tdir = os.path.join(TMP, "thumbs")
    os.makedirs(tdir, exist_ok=True)
    r = run(cmu, tcga, "--mpp", "0.5", "--thumbnail", tdir)
    check(r.returncode == 0 and os.path.exists(os.path.join(tdir, "CMU-1-Small-Region.png"))
          and os.path.exists(os.path.join(tdir, "tcga-cr-7395-01a-01-ts1.png")), "thumbnails in a directory")
    check("tissue:" in r.stdout and "regions:" in r.stdout and "pixel size:        0.5 x 0.5" in r.stdout,
          "text output")

    # help and usage errors
    r = run("--help")
    opts = ["--json", "--thumbnail", "--mpp", "--target-mpp", "--region", "--overlap"]
    check(r.returncode == 0 and all(x in r.stdout for x in opts) and "default 10000" in r.stdout
          and "µm/px" in r.stdout, "--help lists every option with defaults and units")
    for args, what in ((["--overlap", "100", cmu], "multiple of 32"), ([], "no slide"),
                       (["--region", "0", cmu], "--region"), (["--mpp", "abc", cmu], "--mpp"),
                       (["--nope", cmu], "unknown option"),
                       ([cmu, boxes, "--thumbnail", os.path.join(TMP, "x.png")], "directory")):
        r = run(*args)
        check(r.returncode == 2 and what in r.stderr and not r.stdout,
              f"usage error {args}: exit 2, '{what}' ({r.stderr.strip().splitlines()[:1]})")

    print("slides_info_check:", "FAIL" if failures else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
