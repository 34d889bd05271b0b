"""eval_common.py — helpers shared by the eval_* checkers: running the CLI, writing small
pyramidal mask TIFFs the way ASAP does (generic-tiff, 2x nearest-neighbour levels with
floor sizes, >= 6 levels, resolution in cm), and an independent Python transcription of the
official CAMELYON16 FROC logic (CAMELYON16_PROTOCOL.md §1.3-1.6) with the documented extra rules
of docs/evaluation.md for detections outside the slide or in its last partial 32-px strip.
"""
import json
import os
import subprocess
import sys
from itertools import chain

import numpy as np
import openslide
import tifffile
from scipy import ndimage
from skimage import measure

BIN = os.environ.get("WV_BIN")
TMP = os.environ.get("WV_TEST_TMP", "/tmp")
FAILS = []


def check(cond, msg):
    print(("ok   " if cond else "FAIL ") + msg)
    if not cond:
        FAILS.append(msg)


def finish(name):
    print(f"{name}: {len(FAILS)} failed")
    sys.exit(1 if FAILS else 0)


def run_eval(args):
    p = subprocess.run([BIN, "evaluate"] + args, capture_output=True, text=True, timeout=600)
    return p.returncode, p.stdout, p.stderr


def write_mask(path, m5, extra_w=0, extra_h=0, mpp=0.243, value=255):
    """m5: (rows, cols) bool level-5 mask; writes level 0 = each pixel repeated 32x32 (plus an
    extra partial strip copying the last column/row), levels k = level0[::2^k, ::2^k] cropped to
    floor(size / 2^k), so that level 5 == m5 exactly."""
    m0 = np.repeat(np.repeat(m5.astype(np.uint8) * value, 32, 0), 32, 1)
    if extra_w:
        m0 = np.concatenate([m0, np.repeat(m0[:, -1:], extra_w, 1)], 1)
    if extra_h:
        m0 = np.concatenate([m0, np.repeat(m0[-1:, :], extra_h, 0)], 0)
    H, W = m0.shape
    with tifffile.TiffWriter(path, bigtiff=False) as tw:
        k = 0
        while True:
            ds = 2 ** k
            lv = np.ascontiguousarray(m0[::ds, ::ds][: H // ds, : W // ds])
            # tiles never larger than the level: OpenSlide 3.4.1 (libtiff's RGBA reader) returns
            # garbage for a level narrower than its tile ("raster width adapted")
            tile = (min(256, lv.shape[0] // 16 * 16), min(256, lv.shape[1] // 16 * 16))
            tw.write(lv, tile=tile, photometric="minisblack", compression="zlib",
                     subfiletype=0 if k == 0 else 1, resolution=(1e4 / (mpp * ds),) * 2,
                     resolutionunit="CENTIMETER", metadata=None)
            k += 1
            if k >= 6 and (max(H // 2 ** k, W // 2 ** k) < 64 or min(H // 2 ** k, W // 2 ** k) < 16):
                break
    return W, H


def reference_froc(slides, quirks, interp=True):
    """slides: list of dicts {name, tumor (bool), mask (path or None), dets [(p, x, y)]}.
    Returns (score, sens_at, avgFP, sens) the official way (NCRF's np.interp score)."""
    FP_probs, TP_probs, NumTumors = [], [], []
    for s in slides:
        dets = s["dets"]
        if not s["tumor"]:
            FP_probs.append([p for p, x, y in dets])
            TP_probs.append(np.zeros((0,), dtype=np.float32 if quirks else np.float64))
            NumTumors.append(0)
            continue
        sl = openslide.OpenSlide(s["mask"])
        W, H = sl.level_dimensions[0]
        px = np.array(sl.read_region((0, 0), 5, sl.level_dimensions[5]))[:, :, 0]
        if quirks:
            mpp = 0.243
            tum = px == 255
        else:
            mpp = 10000.0 / float(sl.properties["tiff.XResolution"])
            tum = px == 255 if (px == 255).any() else px == 1
        sl.close()
        distance = ndimage.distance_transform_edt(255 * (~tum).astype(np.uint8))
        threshold = 75 / (mpp * 2 ** 5 * 2)
        binary = distance < threshold
        filled = ndimage.binary_fill_holes(binary)
        evaluation_mask = measure.label(filled, connectivity=2)
        props = measure.regionprops(evaluation_mask)
        itc = [i + 1 for i in range(len(props)) if props[i].major_axis_length < 275 / (mpp * 2 ** 5)]
        n_labels = int(evaluation_mask.max())
        TP = np.zeros((n_labels,), dtype=np.float32 if quirks else np.float64)
        FP = []
        rows, cols = evaluation_mask.shape
        for p, x, y in dets:
            if x < 0 or y < 0 or x >= W or y >= H:
                FP.append(p)  # outside the slide: our documented rule
                continue
            r, c = min(y // 32, rows - 1), min(x // 32, cols - 1)  # last strip: nearest pixel
            hit = evaluation_mask[r, c]
            if hit == 0:
                FP.append(p)
            elif hit not in itc:
                if p > TP[hit - 1]:
                    TP[hit - 1] = p
        FP_probs.append(FP)
        TP_probs.append(TP)
        NumTumors.append(n_labels - len(itc))
    # computeFROC, as the official code does it (sorted set of mixed floats, [1:], >=)
    all_probs = sorted(set(list(chain(*FP_probs)) + list(chain(*TP_probs))))
    total_FPs, total_TPs = [], []
    fps = np.asarray(list(chain(*FP_probs)))
    tps = np.asarray(list(chain(*TP_probs)))
    if quirks:
        tps = tps.astype(np.float32)
    for t in all_probs[1:]:
        total_FPs.append((fps >= t).sum())
        total_TPs.append((tps >= t).sum())
    total_FPs.append(0)
    total_TPs.append(0)
    avgFP = np.asarray(total_FPs) / float(len(FP_probs))
    sens = np.asarray(total_TPs) / float(sum(NumTumors))
    rates = [0.25, 0.5, 1, 2, 4, 8]
    if interp:
        at = np.interp(rates, avgFP[::-1], sens[::-1])
    else:
        at = np.array([max([se for f, se in zip(avgFP, sens) if f <= r] + [0.0]) for r in rates])
    return float(np.mean(at)), at, avgFP, sens
