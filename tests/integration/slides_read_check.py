#!/usr/bin/env python3
"""slides_read_check.py — region reads of wsi/slide.h (through the slides_dump driver) against
python3-openslide reading the same level, and against an independent numpy area-averaging
reference where the scale differs from the level's.

Usage: slides_read_check.py SLIDES_DUMP   (env: WV_SHARED_DIR, WV_TEST_TMP; run with /usr/bin/python3)

Reference geometry (wsi/slide.h): output pixel (i, j) covers level-0
[x0 + i*ds_x, x0 + (i+1)*ds_x) x [y0 + j*ds_y, ...); ds = target_mpp / mpp; the level is the
coarsest with downsample <= ds*1.01; the numpy reference averages the level's pixels (read once,
from a level-0 origin that is a whole level pixel, so OpenSlide does not interpolate) weighted
by the area each covers, white outside the slide.
"""
import os
import subprocess
import sys

import numpy as np
import openslide

SHARED = os.environ.get("WV_SHARED_DIR", "../shared")
TMP = os.environ.get("WV_TEST_TMP", "/tmp")
DUMP = sys.argv[1]
failures = 0


def to_rgb(img):
    """PIL RGBA from python-openslide (already un-premultiplied) -> RGB, transparent = white."""
    a = np.asarray(img).astype(np.int32)
    rgb = a[..., :3].copy()
    rgb[a[..., 3] == 0] = 255
    return rgb


def dump(slide, x0, y0, w, h, target, mpp=None):
    out = os.path.join(TMP, "slides_dump.rgb")
    cmd = [DUMP, slide, str(x0), str(y0), str(w), str(h), repr(target), out]
    if mpp is not None:
        cmd.append(repr(mpp))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd}: rc {r.returncode}: {r.stderr}")
    f = r.stdout.split()
    info = {"level": int(f[1]), "downsample": float(f[3]), "ds_x": float(f[5]), "ds_y": float(f[7])}
    data = np.fromfile(out, dtype=np.uint8).reshape(h, w, 3).astype(np.int32)
    return data, info


def weights(n_out, origin, step, n_src):
    """(n_out, n_src) matrix: overlap of output pixel i's footprint [origin + i*step, ...)
    with source pixel u's [u, u+1), plus a column for 'outside' (white)."""
    m = np.zeros((n_out, n_src + 1))
    for i in range(n_out):
        a, b = origin + i * step, origin + (i + 1) * step
        for u in range(int(np.floor(a)), int(np.ceil(b))):
            wgt = min(b, u + 1) - max(a, u)
            if wgt <= 0:
                continue
            m[i, u if 0 <= u < n_src else n_src] += wgt
    return m / step


def area_reference_at(osr, level, x0, y0, w, h, dsx, dsy, X, Y):
    """Like area_reference, but the level is read from level-0 (X, Y) >= 0, whose level position
    X/dl may be fractional (OpenSlide then interpolates): the weights use that true position.
    With X, Y the reader's own piece origin this checks the resampling arithmetic exactly."""
    dl = osr.level_downsamples[level]
    bx, by = X / dl, Y / dl
    bw = int(np.ceil((x0 + w * dsx) / dl - bx)) + 3
    bh = int(np.ceil((y0 + h * dsy) / dl - by)) + 3
    src = to_rgb(osr.read_region((X, Y), level, (bw, bh))).astype(np.float64)
    wx = weights(w, x0 / dl - bx, dsx / dl, bw)
    wy = weights(h, y0 / dl - by, dsy / dl, bh)
    out = np.empty((h, w, 3))
    for c in range(3):
        s = np.pad(src[..., c], ((0, 1), (0, 1)), constant_values=255.0)
        out[..., c] = wy @ s @ wx.T
    return np.floor(out + 0.5).astype(np.int32)


def area_reference(osr, level, x0, y0, w, h, dsx, dsy):
    dl = osr.level_downsamples[level]
    lw, lh = osr.level_dimensions[level]
    # footprint in level px; read the whole level rows/cols it touches from origin (0, 0) of a
    # sub-rectangle that starts on a whole level pixel (level-0 coordinate u0*dl rounded is only
    # exact when dl is an integer, so read from level origin 0 for non-integer dl)
    ax, ay = x0 / dl, y0 / dl
    u0 = max(0, int(np.floor(ax)) - 1) if float(dl).is_integer() else 0
    v0 = max(0, int(np.floor(ay)) - 1) if float(dl).is_integer() else 0
    u1 = min(lw, int(np.ceil((x0 + w * dsx) / dl)) + 1)
    v1 = min(lh, int(np.ceil((y0 + h * dsy) / dl)) + 1)
    src = np.full((max(v1 - v0, 0), max(u1 - u0, 0), 3), 255, np.float64)
    if u1 > u0 and v1 > v0:
        src = to_rgb(osr.read_region((int(u0 * dl), int(v0 * dl)), level, (u1 - u0, v1 - v0))).astype(np.float64)
    wx = weights(w, ax - u0, dsx / dl, src.shape[1])
    wy = weights(h, ay - v0, dsy / dl, src.shape[0])
    out = np.empty((h, w, 3))
    for c in range(3):
        s = np.pad(src[..., c], ((0, 1), (0, 1)), constant_values=255.0)
        out[..., c] = wy @ s @ wx.T
    return np.floor(out + 0.5).astype(np.int32)


def compare(label, got, want, tol, max_frac_over=0.0):
    d = np.abs(got - want)
    over = float((d > tol).mean())
    ok = over <= max_frac_over
    print(f"{label:58s} max|diff|={int(d.max()):3d} mean={d.mean():.4f} >{tol}: {over:.5f}  {'OK' if ok else 'FAIL'}")
    if not ok:
        idx = np.argwhere(d > tol)[:5]
        for j, i, c in idx:
            print(f"   ({i},{j},{c}): got {got[j, i, c]} want {want[j, i, c]}")
        failures += 1


def main():
    global failures
    cmu = os.path.join(SHARED, "fixtures/slides/CMU-1-Small-Region.svs")
    tcga = os.path.join(SHARED, "fixtures/slides/tcga-cr-7395-01a-01-ts1.svs")
    if not os.path.exists(cmu):
        print("fixtures missing: skip")
        return 77
    o = openslide.OpenSlide(cmu)

    # 1. scale exactly 1 (user mpp 0.5 = target): the level's pixels, exactly
    got, info = dump(cmu, 300, 400, 700, 500, 0.5, mpp=0.5)
    want = to_rgb(o.read_region((300, 400), 0, (700, 500)))
    compare("CMU --mpp 0.5 @0.5 (scale 1): = openslide level 0", got, want, 0)

    # 2. file mpp 0.499 at 0.5 and 1.0 µm/px: area averaging from level 0
    for target, (x0, y0, w, h) in ((0.5, (250, 333, 640, 480)), (1.0, (0, 0, 1120, 1500)),
                                  (1.0, (1900, 2700, 300, 200))):  # last one crosses the edge
        got, info = dump(cmu, x0, y0, w, h, target)
        assert info["level"] == 0
        want = area_reference(o, 0, x0, y0, w, h, info["ds_x"], info["ds_y"])
        compare(f"CMU @{target} ({x0},{y0}) {w}x{h}: numpy area average", got, want, 1)

    # 3. a large read (> 2048 px per side → several pieces) at scale 1 equals one openslide read
    got, info = dump(cmu, 0, 0, 2220, 2967, 0.499)
    want = to_rgb(o.read_region((0, 0), 0, (2220, 2967)))
    compare("CMU @0.499 whole slide in pieces: = openslide level 0", got, want, 0)

    t = openslide.OpenSlide(tcga)
    dl = t.level_downsamples[1]
    # 4. tcga, 2 levels, no mpp: with --mpp 0.25 the target 0.25*dl is level 1 exactly
    got, info = dump(tcga, 1000, 800, 600, 400, 0.25 * dl, mpp=0.25)
    assert info["level"] == 1, info
    want = to_rgb(t.read_region((1000, 800), 1, (600, 400)))
    compare("tcga level 1 at scale 1: = openslide level 1", got, want, 0)
    # 5. tcga at 1.0 µm/px (--mpp 0.25): ds 4 → level 1 (2.0005), area averaging ×1.9995.
    got, info = dump(tcga, 0, 0, 500, 400, 1.0, mpp=0.25)
    assert info["level"] == 1, info
    want = area_reference(t, 1, 0, 0, 500, 400, info["ds_x"], info["ds_y"])
    compare("tcga @1.0 (--mpp 0.25) from level 1: numpy area average", got, want, 1)
    # Interior: the reader's piece starts at the level-0 px nearest level px floor(x0/dl) − 2
    # (slide.h); on a non-integer level that px is a fractional level position, where OpenSlide
    # itself interpolates (cairo). (a) With the level read from that same origin the resampling
    # must agree to ±1. (b) Against level pixels read from a whole-pixel origin the sub-pixel
    # interpolation shows (measured mean 1.36, max 16 here): bounded loosely, reported.
    x0, y0 = 2001, 1503
    got, info = dump(tcga, x0, y0, 400, 300, 1.0, mpp=0.25)
    X, Y = round((np.floor(x0 / dl) - 2) * dl), round((np.floor(y0 / dl) - 2) * dl)
    want = area_reference_at(t, 1, x0, y0, 400, 300, info["ds_x"], info["ds_y"], X, Y)
    compare("tcga @1.0 (2001,1503): numpy area, same level-0 origin", got, want, 1)
    want = area_reference(t, 1, x0, y0, 400, 300, info["ds_x"], info["ds_y"])
    d = np.abs(got - want)
    compare("tcga @1.0 (2001,1503): vs whole-pixel origin (mean<3)", got, want, 1, 1.0)
    if d.mean() >= 3:
        print("FAIL mean difference against whole-pixel-origin reference too large")
        failures += 1
    # regression: a read starting left of / above the slide on the non-integer level
    # (OpenSlide misplaces negative-coordinate reads there; slide.c reads from 0 instead)
    got, info = dump(tcga, -100, -60, 300, 200, 0.25 * dl, mpp=0.25)
    want = area_reference(t, 1, -100, -60, 300, 200, info["ds_x"], info["ds_y"])
    compare("tcga level 1 scale 1 from (-100,-60): numpy reference", got, want, 1, 0.01)
    got, info = dump(tcga, -700, -500, 500, 400, 1.0, mpp=0.25)
    want = area_reference(t, 1, -700, -500, 500, 400, info["ds_x"], info["ds_y"])
    compare("tcga @1.0 from (-700,-500): numpy area average", got, want, 1)

    # 6. boxes.tiff (generic-tiff, integer level 1): with --mpp 1, target 2 → level 1 exactly
    boxes = os.path.join(SHARED, "fixtures/slides/boxes.tiff")
    b = openslide.OpenSlide(boxes)
    got, info = dump(boxes, 20, 10, 120, 100, 2.0, mpp=1.0)
    assert info["level"] == 1
    want = to_rgb(b.read_region((20, 10), 1, (120, 100)))
    compare("boxes level 1 at scale 1: = openslide level 1", got, want, 0)
    # target 3 µm/px: ds 3 → level 1, area ×1.5 (integer dl = 2: exact reference)
    got, info = dump(boxes, 0, 0, 100, 84, 3.0, mpp=1.0)
    want = area_reference(b, 1, 0, 0, 100, 84, info["ds_x"], info["ds_y"])
    compare("boxes @3 (--mpp 1) from level 1: numpy area average", got, want, 1)

    print("slides_read_check:", "FAIL" if failures else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
