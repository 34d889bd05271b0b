#!/usr/bin/python3
"""eval_froc_check.py — `wsi-vmamba evaluate`'s FROC against an independent Python transcription
of the official CAMELYON16 logic (scipy distance_transform_edt / binary_fill_holes, skimage
label / regionprops, numpy computeFROC and np.interp; eval_common.reference_froc) on seeded random
level-5 masks written as pyramidal mask TIFFs (some with tumour = 1) and random detections (ties,
TP/FP equal probabilities, zeros, detections in the last partial 32-px strip and outside the
slide), with and without --official-quirks, interp and step: score, the six sensitivities and the
whole curve must agree to 1e-9. Also checks the EDT itself against scipy through eval_edt_dump.
"""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
from scipy import ndimage

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_common import TMP, check, finish, reference_froc, run_eval, write_mask  # noqa: E402

SEED = int(os.environ.get("WV_EVAL_SEED", "20261126"))
N_TRIALS = int(os.environ.get("WV_EVAL_TRIALS", "10"))


def random_mask(rng, rows, cols):
    m = np.zeros((rows, cols), bool)
    rr, cc = np.mgrid[0:rows, 0:cols]
    for _ in range(rng.integers(1, 7)):
        kind = rng.integers(0, 3)
        r0, c0 = rng.integers(0, rows), rng.integers(0, cols)
        if kind == 0:  # disc (radius 0..25: small ones are ITCs)
            rad = rng.integers(0, 26)
            m |= (rr - r0) ** 2 + (cc - c0) ** 2 <= rad * rad
        elif kind == 1:  # ellipse
            a, b = rng.integers(1, 20), rng.integers(1, 8)
            m |= ((rr - r0) / a) ** 2 + ((cc - c0) / b) ** 2 <= 1
        else:  # ring (a hole to fill) or rectangle
            a = rng.integers(3, 15)
            d = np.sqrt((rr - r0) ** 2 + (cc - c0) ** 2)
            m |= (d <= a) & (d >= a - 2) if rng.random() < 0.5 else \
                (abs(rr - r0) < a) & (abs(cc - c0) < rng.integers(1, 6))
    return m


def random_dets(rng, m5, W, H):
    rows, cols = m5.shape
    dets = []
    probs = [round(float(x), 2) for x in rng.random(8)]  # a small pool: ties everywhere
    ys, xs = np.nonzero(m5)
    for _ in range(rng.integers(0, 30)):
        u = rng.random()
        p = probs[rng.integers(0, len(probs))] if rng.random() < 0.7 else round(float(rng.random()), 6)
        if rng.random() < 0.05:
            p = 0.0
        if u < 0.45 and len(ys):
            k = rng.integers(0, len(ys))
            x, y = int(xs[k]) * 32 + int(rng.integers(0, 32)), int(ys[k]) * 32 + int(rng.integers(0, 32))
        elif u < 0.85:
            x, y = int(rng.integers(0, W)), int(rng.integers(0, H))
        elif u < 0.93:  # last partial strip
            x, y = int(rng.integers(cols * 32, W)) if W > cols * 32 else W - 1, int(rng.integers(0, H))
        else:  # outside
            x, y = (-int(rng.integers(1, 100)), int(rng.integers(0, H))) if rng.random() < 0.5 else \
                (int(rng.integers(0, W)), H + int(rng.integers(0, 100)))
        dets.append((p, x, y))
    return dets


def trial(t, rng):
    d = os.path.join(TMP, f"eval_froc_{t}")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(os.path.join(d, "masks"))
    os.makedirs(os.path.join(d, "det"))
    slides = []
    ref = []
    n_t, n_n = int(rng.integers(1, 5)), int(rng.integers(0, 4))
    mpp = float(rng.choice([0.243, 0.226, 0.25, 0.5]))
    for i in range(n_t + n_n):
        tumor = i < n_t
        name = f"Tumor_{i:03d}" if tumor else f"Normal_{i:03d}"
        rows, cols = int(rng.integers(16, 90)), int(rng.integers(16, 90))
        ew, eh = int(rng.integers(0, 32)), int(rng.integers(0, 32))
        W, H = cols * 32 + ew, rows * 32 + eh
        m5 = random_mask(rng, rows, cols) if tumor else np.zeros((rows, cols), bool)
        mpath = None
        if tumor:
            mpath = os.path.join(d, "masks", f"{name}_mask.tif")
            value = 1 if rng.random() < 0.2 else 255
            write_mask(mpath, m5, ew, eh, mpp, value)
        dets = random_dets(rng, m5, W, H)
        with open(os.path.join(d, "det", name + ".csv"), "w") as f:
            for p, x, y in dets:
                f.write(f"{p!r},{x},{y}\n")
        slides.append({"name": name, "tumor": tumor, "mask": mpath, "dets": dets})
        ref.append(f"{name},{'Tumor' if tumor else 'Normal'}\n")
    with open(os.path.join(d, "reference.csv"), "w") as f:
        f.writelines(ref)
    with open(os.path.join(d, "scores.csv"), "w") as f:
        for s in slides:
            f.write(f"{s['name']},{rng.random():.3f}\n")
    for quirks in (True, False):
        for mode in ("interp", "step"):
            want = None
            try:
                want = reference_froc(slides, quirks, mode == "interp")
            except ZeroDivisionError:
                pass
            out = os.path.join(d, f"rep_{int(quirks)}_{mode}")
            args = ["--slide-scores", os.path.join(d, "scores.csv"), "--detections",
                    os.path.join(d, "det"), "--reference", os.path.join(d, "reference.csv"),
                    "--masks", os.path.join(d, "masks"), "--out", out, "--froc-mode", mode, "--quiet"]
            if quirks:
                args.append("--official-quirks")
            rc, so, se = run_eval(args)
            label = f"trial {t} ({n_t} tumour + {n_n} normal, {mpp} µm/px, quirks={quirks}, {mode})"
            if rc != 0:
                check(False, f"{label}: exit {rc}: {se.strip()}")
                continue
            m = json.load(open(os.path.join(out, "metrics.json")))["lesion_level"]
            if want is None or not np.isfinite(want[0]):
                check(m["froc"] is None, f"{label}: undefined FROC reported as null ({m.get('froc_note')})")
                continue
            score, at, avg_fp, sens = want
            got_at = [m["sensitivity_at"][k] for k in ("0.25", "0.5", "1", "2", "4", "8")]
            cv = m["curve"]
            ok = abs(m["froc"] - score) <= 1e-9 and np.allclose(got_at, at, rtol=0, atol=1e-9) and \
                len(cv["avg_fp"]) == len(avg_fp) and \
                np.allclose(cv["avg_fp"], avg_fp, rtol=0, atol=1e-12) and \
                np.allclose(cv["sensitivity"], sens, rtol=0, atol=1e-12)
            check(ok, f"{label}: FROC {m['froc']:.9f} vs python {score:.9f} "
                      f"({len(avg_fp)} curve points, {m['n_lesions']} lesions, "
                      f"{m['n_itc_excluded']} ITC, {m['n_detections_outside']} outside, "
                      f"{m['n_detections_last_strip']} in the last strip)")


def edt_check(rng, dump):
    for t in range(8):
        rows, cols = int(rng.integers(1, 120)), int(rng.integers(1, 120))
        f = rng.random((rows, cols)) < rng.choice([0.0005, 0.01, 0.1, 0.5])
        path = os.path.join(TMP, "eval_edt.raw")
        f.astype(np.uint8).tofile(path)
        p = subprocess.run([dump, path, str(rows), str(cols)], capture_output=True)
        if p.returncode:
            check(False, f"eval_edt_dump failed: {p.stderr.decode()}")
            continue
        got = np.frombuffer(p.stdout, dtype=np.int64).reshape(rows, cols)
        if f.any():
            want = np.rint(ndimage.distance_transform_edt(~f) ** 2).astype(np.int64)
            check(np.array_equal(got, want), f"EDT {rows}x{cols} ({f.sum()} features) == scipy")
        else:
            check(bool((got == np.iinfo(np.int64).max).all()), f"EDT {rows}x{cols} without features: all inf")


def main():
    rng = np.random.default_rng(SEED)
    print(f"seed {SEED}, {N_TRIALS} trials")
    if len(sys.argv) > 1:
        edt_check(rng, sys.argv[1])
    for t in range(N_TRIALS):
        trial(t, rng)
    finish("eval_froc_check")


main()
