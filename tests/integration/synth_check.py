#!/usr/bin/python3
"""synth_check.py — the synthetic cohort checked by independent tools (python3-openslide, numpy,
xml.etree, skimage), one ctest case per mode:

  cohort       the default cohort (6 slides, 8000x6000, generic-tiff): OpenSlide opens slides and
               masks with the right vendor, resolution, levels and sizes; reference.csv lists every
               slide with its class; XML polygons rasterised with skimage agree with the mask; the
               slide is darker and more purple inside the polygons than stroma outside; at least
               one ITC-sized (< 200 µm) lesion; the run takes < 60 s (WV_SYNTH_MAX_S; printed).
  aperio       a small aperio cohort in test naming: vendor, mpp-x, objective power, 4x levels,
               associated images, classes only in reference.csv.
  determinism  same seed twice gives identical bytes, another seed differs; no temp files remain.
  cli          usage errors exit 2, an unwritable OUTDIR exits 1 with a message, and a killed run
               leaves no complete-looking slide.

Needs WV_BIN (the CLI) and WV_TEST_TMP; run with Debian's /usr/bin/python3.
"""
import csv
import hashlib
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import numpy as np
import openslide
from scipy import ndimage
from skimage.draw import polygon as sk_polygon

BIN = os.environ.get("WV_BIN")
TMP = os.environ.get("WV_TEST_TMP", "/tmp")
FAILS = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        FAILS.append(msg)


def synth(outdir, *args, expect=0):
    shutil.rmtree(outdir, ignore_errors=True)
    t0 = time.time()
    r = subprocess.run([BIN, "synth", outdir, "--quiet", *args], capture_output=True, text=True)
    dt = time.time() - t0
    if r.returncode != expect:
        print(r.stdout, r.stderr)
    check(r.returncode == expect, f"synth {' '.join(args)} exit {r.returncode} (want {expect})")
    return dt, r


def read_reference(d):
    with open(os.path.join(d, "reference.csv"), newline="") as f:
        return [row for row in csv.reader(f)]


def parse_xml(path):
    """Polygons per ASAP §3.1: vertices by Order, level-0 px; returns [(group, Nx2 array)]."""
    root = ET.parse(path).getroot()
    out = []
    for a in root.iter("Annotation"):
        pts = sorted(((int(c.get("Order")), float(c.get("X")), float(c.get("Y")))
                      for c in a.iter("Coordinate")))
        out.append((a.get("PartOfGroup"), np.array([(x, y) for _, x, y in pts])))
    groups = [g.get("Name") for g in root.iter("Group")]
    return out, groups


def max_diameter(xy):
    d = xy[:, None, :] - xy[None, :, :]
    return math.sqrt((d ** 2).sum(-1).max())


def level_array(slide, level):
    w, h = slide.level_dimensions[level]
    return np.asarray(slide.read_region((0, 0), level, (w, h)))  # RGBA, (h, w, 4)


def mask_from_polys(polys, ds, shape):
    """skimage rasterisation at a level: pixel (r, c) is the level-0 point (c·ds, r·ds)."""
    m = np.zeros(shape, bool)
    for _, xy in polys:
        rr, cc = sk_polygon(xy[:, 1] / ds, xy[:, 0] / ds, shape)
        m[rr, cc] = True
    return m


def check_tumour_slide(d, name, mpp):
    polys, groups = parse_xml(os.path.join(d, "annotations", name + ".xml"))
    check(len(polys) >= 1, f"{name}: {len(polys)} polygons")
    check(set(groups) <= {"_0", "_1", "_2", "Tumor", "Exclusion"} and
          all(g in ("_0", "_1", "Tumor") for g, _ in polys),
          f"{name}: CAMELYON16 groups {sorted(set(g for g, _ in polys))} of {groups}")
    mask = openslide.OpenSlide(os.path.join(d, "masks", name + "_mask.tif"))
    slide = openslide.OpenSlide(os.path.join(d, name + ".tif"))
    check(mask.level_count >= 6, f"{name}_mask: {mask.level_count} levels (>= 6)")
    check(mask.level_dimensions[0] == slide.level_dimensions[0], f"{name}_mask: level-0 size")
    # the official evaluation's read: level 5 in full, channel 0
    m5 = level_array(mask, 5)[:, :, 0]
    check(set(np.unique(m5)) <= {0, 255} and (m5 == 255).any(),
          f"{name}_mask level 5: values {sorted(np.unique(m5))[:4]}")
    # and it is the nearest-neighbour pyramid ASAP writes: level 5 (r, c) = level 0 (32r, 32c)
    w0, h0 = mask.level_dimensions[0]
    m0 = np.asarray(mask.read_region((0, 0), 0, (w0, h0)))[:, :, 0]
    h5, w5 = m5.shape
    check(np.array_equal(m5, m0[:32 * h5:32, :32 * w5:32]), f"{name}_mask: level 5 = level 0 "
          "sampled every 32 px")
    # XML ↔ mask at level 2 (ds 4): inside the eroded raster 255, outside the dilated one 0
    ds = 4
    m2 = level_array(mask, 2)[:, :, 0]
    ref = mask_from_polys(polys, ds, m2.shape)
    core = ndimage.binary_erosion(ref, iterations=1)
    ring = ndimage.binary_dilation(ref, iterations=1)
    bad_in = int((m2[core] != 255).sum())
    bad_out = int((m2[~ring] != 0).sum())
    check(bad_in == 0 and bad_out == 0,
          f"{name}: mask level 2 vs skimage polygons: {bad_in} of {int(core.sum())} inside not "
          f"255, {bad_out} outside not 0")
    # slide pixels at the level of downsample 4: tumour darker and more purple than tissue outside
    lvl = [round(x) for x in slide.level_downsamples].index(4)
    rgb = level_array(slide, lvl)[:, :, :3].astype(float)
    s_sum = rgb.sum(-1)
    tissue = s_sum < 3 * 225  # not glass
    outside = tissue & ~ndimage.binary_dilation(ref, iterations=8)
    if core.sum() > 20 and outside.sum() > 100:
        tin, tout = rgb[core], rgb[outside]
        bright_in, bright_out = tin.sum(-1).mean(), tout.sum(-1).mean()
        # purple: blue high relative to green (haematoxylin), measured as B - G
        purple_in = (tin[:, 2] - tin[:, 1]).mean()
        purple_out = (tout[:, 2] - tout[:, 1]).mean()
        check(bright_in < bright_out - 60 and purple_in > purple_out,
              f"{name}: inside polygons R+G+B {bright_in:.0f}, B-G {purple_in:.0f}; tissue outside "
              f"R+G+B {bright_out:.0f}, B-G {purple_out:.0f}")
    return [max_diameter(xy) * mpp for _, xy in polys]


def mode_cohort():
    d = os.path.join(TMP, "synth_cohort")
    dt, _ = synth(d, "--slides", "6", "--seed", "7")
    limit = float(os.environ.get("WV_SYNTH_MAX_S", "60"))  # 600 in sanitizer builds
    print(f"default cohort (6 slides, 8000x6000 at 0.25 µm/px, generic): {dt:.1f} s wall")
    check(dt < limit, f"default cohort in {dt:.1f} s (< {limit:.0f} s)")
    ref = read_reference(d)
    names = sorted(f[:-4] for f in os.listdir(d) if f.endswith(".tif"))
    check(sorted(r[0] for r in ref) == names and len(names) == 6,
          f"reference.csv lists every slide: {[r[0] for r in ref]}")
    check(all(len(r) == 4 and r[1] in ("Tumor", "Normal") for r in ref), "reference.csv rows: "
          "name,class,histotype,size")
    diam = []
    for name, cls, _histo, size in ref:
        check(name.startswith("tumor_" if cls == "Tumor" else "normal_"), f"{name}: class {cls}")
        check((size == "None") == (cls == "Normal"), f"{name}: size {size}")
        s = openslide.OpenSlide(os.path.join(d, name + ".tif"))
        p = s.properties
        check(p.get("openslide.vendor") == "generic-tiff", f"{name}: vendor {p.get('openslide.vendor')}")
        # 3.4.1 generic-tiff has no openslide.mpp-x: the resolution tags carry it (§4.1)
        xres = float(p.get("tiff.XResolution", "0"))
        check(p.get("tiff.ResolutionUnit") == "centimeter" and abs(1e4 / xres - 0.25) < 1e-4,
              f"{name}: XResolution {xres} cm -> {1e4 / xres if xres else 0:.5f} µm/px")
        check(s.level_dimensions == ((8000, 6000), (4000, 3000), (2000, 1500), (1000, 750)),
              f"{name}: levels {s.level_dimensions}")
        has_xml = os.path.exists(os.path.join(d, "annotations", name + ".xml"))
        has_mask = os.path.exists(os.path.join(d, "masks", name + "_mask.tif"))
        check(has_xml == has_mask == (cls == "Tumor"), f"{name}: XML/mask present iff tumour")
        if cls == "Tumor":
            diam += check_tumour_slide(d, name, 0.25)
        else:  # tissue present, no tumour-like dark regions at a low level
            rgb = level_array(s, 3)[:, :, :3].astype(float)
            check((rgb.sum(-1) < 3 * 225).mean() > 0.1, f"{name}: tissue covers > 10%")
    check(any(x < 200 for x in diam), f"ITC-sized lesions: {sum(x < 200 for x in diam)} of "
          f"{len(diam)} (diameters {[round(x) for x in sorted(diam)]} µm)")
    check(any(x >= 200 for x in diam), "larger lesions present")


def mode_aperio():
    d = os.path.join(TMP, "synth_aperio")
    synth(d, "--slides", "3", "--seed", "3", "--size", "5000,3500", "--format", "aperio",
          "--naming", "test", "--tumor-fraction", "0.67", "--mpp", "0.5", "--tile", "512")
    ref = read_reference(d)
    check([r[0] for r in ref] == ["test_001", "test_002", "test_003"], f"names {ref}")
    check(sum(r[1] == "Tumor" for r in ref) == 2, "2 tumour slides")
    for name, cls, _h, _s in ref:
        s = openslide.OpenSlide(os.path.join(d, name + ".tif"))
        p = s.properties
        check(p.get("openslide.vendor") == "aperio", f"{name}: vendor {p.get('openslide.vendor')}")
        check(abs(float(p.get("openslide.mpp-x", "0")) - 0.5) < 1e-6 and
              abs(float(p.get("openslide.mpp-y", "0")) - 0.5) < 1e-6, f"{name}: mpp {p.get('openslide.mpp-x')}")
        check(p.get("openslide.objective-power") == "20", f"{name}: objective {p.get('openslide.objective-power')}")
        check(p.get("tiff.ImageDescription", "").startswith("Aperio"), f"{name}: description")
        check(s.level_dimensions == ((5000, 3500), (1250, 875), (312, 218)) and
              s.level_downsamples[:2] == (1.0, 4.0), f"{name}: levels {s.level_dimensions}")
        check(p.get("openslide.level[0].tile-width") == "512", f"{name}: 512-px tiles")
        check(sorted(s.associated_images) == ["label", "macro", "thumbnail"],
              f"{name}: associated {sorted(s.associated_images)}")
        if cls == "Tumor":
            check_tumour_slide(d, name, 0.5)


def digest(d):
    out = {}
    for root, _, files in os.walk(d):
        for f in files:
            p = os.path.join(root, f)
            out[os.path.relpath(p, d)] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    return out


def mode_determinism():
    base = ["--slides", "3", "--size", "3000,2000", "--tumor-fraction", "0.67"]
    for fmt in ("generic", "aperio"):
        a, b, c = (os.path.join(TMP, f"synth_det_{fmt}_{k}") for k in "abc")
        synth(a, *base, "--seed", "11", "--format", fmt)
        synth(b, *base, "--seed", "11", "--format", fmt, "--threads", "1")
        synth(c, *base, "--seed", "12", "--format", fmt)
        da, db, dc = digest(a), digest(b), digest(c)
        check(len(da) == 3 + 2 + 2 + 2 and da == db,
              f"{fmt}: same seed (2 threads vs 1) gives identical files ({len(da)} files)")
        slides = [k for k in da if k.endswith(".tif") and "/" not in k]
        check(all(da[k] != dc.get(k) for k in slides), f"{fmt}: another seed changes every slide")
        check(not any(".tmp." in k for k in da), f"{fmt}: no temp files left")


def mode_cli():
    d = os.path.join(TMP, "synth_cli")
    for args in (["--seed", "1"],                      # --slides missing
                 ["--slides", "2"],                    # --seed missing
                 ["--slides", "0", "--seed", "1"],
                 ["--slides", "2", "--seed", "-1"],
                 ["--slides", "2", "--seed", "1", "--format", "svs"],
                 ["--slides", "2", "--seed", "1", "--size", "100,100"],
                 ["--slides", "2", "--seed", "1", "--size", "8000"],
                 ["--slides", "2", "--seed", "1", "--tumor-fraction", "1.5"],
                 ["--slides", "2", "--seed", "1", "--mpp", "0"],
                 ["--slides", "2", "--seed", "1", "--tile", "300"],
                 ["--slides", "2", "--seed", "1", "--naming", "val"],
                 ["--slides", "2", "--seed", "1", "--bogus"],
                 ["--slides", "2", "--seed", "1", "extra-positional"]):
        r = subprocess.run([BIN, "synth", d, *args], capture_output=True, text=True)
        check(r.returncode == 2 and "synth" in r.stderr, f"usage error {args}: exit {r.returncode}, "
              f"stderr {r.stderr.strip().splitlines()[:1]}")
    r = subprocess.run([BIN, "synth", "--help"], capture_output=True, text=True)
    check(r.returncode == 0 and "--tumor-fraction" in r.stdout and "default" in r.stdout,
          "--help to stdout, exit 0")
    # unwritable OUTDIR: below a regular file
    blocker = os.path.join(TMP, "synth_cli_blocker")
    open(blocker, "w").close()
    r = subprocess.run([BIN, "synth", os.path.join(blocker, "out"), "--slides", "1", "--seed", "1"],
                       capture_output=True, text=True)
    check(r.returncode == 1 and r.stderr.startswith("wsi-vmamba: ") and "synth_cli_blocker" in r.stderr,
          f"unwritable OUTDIR: exit {r.returncode}, {r.stderr.strip()}")
    # a run killed mid-slide leaves only a temp file, never a complete-looking slide
    k = os.path.join(TMP, "synth_killed")
    shutil.rmtree(k, ignore_errors=True)
    p = subprocess.Popen([BIN, "synth", k, "--slides", "1", "--seed", "1", "--size", "30000,30000",
                          "--tumor-fraction", "0", "--quiet"])
    time.sleep(2.0)
    p.send_signal(signal.SIGKILL)
    p.wait()
    left = sorted(os.listdir(k)) if os.path.isdir(k) else []
    check(not any(f.endswith(".tif") for f in left) and "reference.csv" not in left,
          f"killed run leaves no slide and no reference.csv: {left}")


MODES = {"cohort": mode_cohort, "aperio": mode_aperio, "determinism": mode_determinism,
         "cli": mode_cli}

if __name__ == "__main__":
    if not BIN or len(sys.argv) != 2 or sys.argv[1] not in MODES:
        print("usage: WV_BIN=... synth_check.py " + "|".join(MODES))
        sys.exit(2)
    MODES[sys.argv[1]]()
    print(f"synth_check {sys.argv[1]}: {len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)
