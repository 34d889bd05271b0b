#!/usr/bin/env python3
"""analyze_check.py — `wsi-vmamba analyze` end to end (issue 4), checked independently with h5py,
numpy, sqlite3 and openslide (Debian's /usr/bin/python3).

Modes (one ctest each, separate folders so they may run in parallel):
  synth    synthetic slides: heatmap grid vs slide size and cell size, NaN exactly off tissue,
           coords/scores/features vs heatmap, CLAM attributes, results.sqlite rows, lesion
           candidates inside tissue and = the CSV, the streaming check (--check-streaming: the
           chunked head equals one unchunked pass to 1e-5), identical outputs for --threads 1/2
           and for --readers/--queue, re-run replaces rows, --png, progress lines
  cmu      CMU-1-Small-Region.svs (real Aperio slide) and boxes.tiff (no pixel size: needs --mpp)
  faults   every bad slide of shared/fixtures/slides among good ones (others go on, exit 1), a
           model with a missing / mis-shaped tensor, an output folder that cannot be written,
           a full disk (tmpfs, else RLIMIT_FSIZE; skipped if neither)
  signals  SIGINT and SIGTERM mid-slide: exit 130/143, no .h5 (nor temp file), slide failed
           'interrupted by …', run 'interrupted'
Env: WV_BIN, WV_SHARED_DIR, WV_TEST_TMP. Exit 0 ok, 1 failure, 77 skip.
"""
import hashlib
import json
import math
import os
import re
import resource
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import time

import h5py
import numpy as np

BIN = os.environ["WV_BIN"]
SHARED = os.environ.get("WV_SHARED_DIR", "../shared")
TMP_ROOT = os.environ.get("WV_TEST_TMP", "/tmp")
SLIDES = os.path.join(SHARED, "fixtures/slides")
CELL = 32

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures.append(what)
    return cond


def run(args, timeout=300, **kw):
    if args[0] == "analyze" and "--device" not in args:
        args = [*args, "--device", "cpu"]  # the CPU path is what these tests check
    t0 = time.time()
    r = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout, **kw)
    print(f"  $ wsi-vmamba {' '.join(args)}  -> rc {r.returncode} ({time.time() - t0:.1f} s)")
    return r


def must(args, **kw):
    r = run(args, **kw)
    if r.returncode != 0:
        print(r.stdout)
        print(r.stderr)
        raise SystemExit(f"FAIL: wsi-vmamba {' '.join(args)} exited {r.returncode}")
    return r


def make_model(d, name="tiny.safetensors", target_mpp=0.5, region=192, overlap=32, seed=1):
    path = os.path.join(d, name)
    must(["model", "init", "--random-backbone", "tiny", "--out", path, "--seed", str(seed),
          "--d-h", "32", "--target-mpp", str(target_mpp), "--region", str(region),
          "--overlap", str(overlap)])
    return path


def make_slides(d, n, size, seed=5, fmt="generic"):
    must(["synth", d, "--slides", str(n), "--seed", str(seed), "--size", size, "--format", fmt,
          "--quiet", "--threads", "2"])
    return sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".tif"))


def fast_content_hash(path):
    """The slides.content_hash recipe of src/slide_id.h, recomputed independently."""
    size = os.path.getsize(path)
    edge, n, sample = 1 << 20, 16, 1 << 16
    h = hashlib.sha256()
    h.update(b"wsi-vmamba-fh1\0\0")
    h.update(size.to_bytes(8, "little"))
    with open(path, "rb") as f:
        if size <= 2 * edge + n * sample:
            h.update(f.read())
        else:
            h.update(f.read(edge))
            for k in range(1, n + 1):
                f.seek(k * size // (n + 1))
                h.update(f.read(sample))
            f.seek(size - edge)
            h.update(f.read(edge))
    return "fast1:" + h.hexdigest()


def sha256(path):
    import hashlib
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def no_temp_files(d):
    return not [x for x in os.listdir(d) if ".tmp." in x or x.startswith(".wsi-vmamba-probe")]


def check_result(out, slide_path, model_path, target_mpp, mpp=None, features_dim=0,
                 threshold=0.5, label=""):
    """The .h5, the CSV and the database rows of one done slide, against each other and against
    the slide itself (openslide)."""
    import openslide
    sid = os.path.splitext(os.path.basename(slide_path))[0]
    h5 = os.path.join(out, sid + ".h5")
    tag = f"{label}{sid}"
    if not check(os.path.isfile(h5), f"{tag}: {h5} exists"):
        return None
    osr = openslide.OpenSlide(slide_path)
    W, H = osr.dimensions
    if mpp is None:
        pr = osr.properties
        if openslide.PROPERTY_NAME_MPP_X in pr:
            mpp = float(pr[openslide.PROPERTY_NAME_MPP_X])
        else:  # generic TIFF: resolution tags (wsi/slide.h SLIDE_MPP_TIFF_CM / _INCH)
            unit = {"centimeter": 1e4, "inch": 25400.0}[pr["tiff.ResolutionUnit"]]
            mpp = unit / float(pr["tiff.XResolution"])
    osr.close()
    cell = CELL * target_mpp / mpp
    with h5py.File(h5, "r") as f:
        check(int(f.attrs.get("complete", 0)) == 1, f"{tag}: complete = 1")
        hm = f["heatmap"][...]
        ts = f["tissue"][...]
        co = f["coords"][...]
        sc = f["scores"][...]
        ha = dict(f["heatmap"].attrs)
        ca = dict(f["coords"].attrs)
        feats = f["features"][...] if "features" in f else None
    rows, cols = math.ceil(H / cell), math.ceil(W / cell)
    check(hm.dtype == np.float32 and hm.shape == (rows, cols),
          f"{tag}: heatmap {hm.shape} {hm.dtype} = ceil(({H}, {W}) / {cell:g}) = ({rows}, {cols})")
    check(ts.shape == hm.shape and ts.dtype == np.uint8 and set(np.unique(ts)) <= {0, 1},
          f"{tag}: tissue uint8 0/1, same grid")
    check(np.array_equal(np.isnan(hm), ts == 0), f"{tag}: heatmap NaN exactly off tissue")
    on = hm[ts == 1]
    check(on.size > 0 and bool(np.all((on > 0) & (on < 1))), f"{tag}: {on.size} tissue cells, 0 < p < 1")
    check(abs(ha["cell_size_level0"] - cell) < 1e-9 * cell, f"{tag}: cell_size_level0 {ha['cell_size_level0']} = 32·{target_mpp}/{mpp}")
    check(int(ha["slide_width"]) == W and int(ha["slide_height"]) == H, f"{tag}: slide size attrs")
    check(abs(ha["mpp"][0] - mpp) < 1e-9 and abs(ha["target_mpp"] - target_mpp) < 1e-12, f"{tag}: mpp, target_mpp attrs")
    check(ha["model_sha256"] == sha256(model_path), f"{tag}: model_sha256 = sha256 of the model file")
    # coords / scores: one row per tissue cell, consistent with the heatmap
    n = int(ts.sum())
    check(co.dtype == np.int32 and co.shape == (n, 2) and sc.shape == (n,), f"{tag}: coords ({n}, 2) int32, scores ({n},)")
    c = np.floor(co[:, 0] / cell + 0.5).astype(int)
    r = np.floor(co[:, 1] / cell + 0.5).astype(int)
    ok = (np.all(np.abs(co[:, 0] - np.round(c * cell)) <= 0.5) and np.all(np.abs(co[:, 1] - np.round(r * cell)) <= 0.5)
          and np.all((r >= 0) & (r < rows) & (c >= 0) & (c < cols)))
    check(ok, f"{tag}: coords are cell top-lefts in level-0 px")
    if ok:
        check(bool(np.all(ts[r, c] == 1)) and len(set(zip(r.tolist(), c.tolist()))) == n,
              f"{tag}: coords = the tissue cells, each once")
        check(np.array_equal(sc, hm[r, c]), f"{tag}: scores[i] = heatmap at coords[i]")
    # CLAM's attributes
    clam = (int(ca["patch_level"]) == 0 and int(ca["patch_size"]) == round(cell)
            and list(ca["downsample"]) == [1.0, 1.0] and list(ca["level_dim"]) == [W, H]
            and list(ca["downsampled_level_dim"]) == [W, H] and ca["name"] == sid
            and abs(ca["patch_size_level0"] - cell) < 1e-9 * cell and "save_path" in ca)
    check(clam, f"{tag}: CLAM attrs {{patch_size {ca.get('patch_size')}, patch_level, downsample, level_dim, name, save_path, patch_size_level0}}")
    if features_dim:
        check(feats is not None and feats.shape == (n, features_dim) and feats.dtype == np.float32
              and bool(np.all(np.isfinite(feats))), f"{tag}: features ({n}, {features_dim}) float32")
    else:
        check(feats is None, f"{tag}: no features without --save-features")
    # database
    db = sqlite3.connect(os.path.join(out, "results.sqlite"))
    srow = db.execute("SELECT status, error, path, width, height, h5_path, content_hash, run_id"
                      " FROM slides WHERE slide_id = ?", (sid,)).fetchall()
    check(len(srow) == 1 and srow[0][0] == "done" and srow[0][1] is None, f"{tag}: one slides row, done")
    if srow:
        s = srow[0]
        check(s[3] == W and s[4] == H and os.path.samefile(s[5], h5) and s[6] == fast_content_hash(slide_path),
              f"{tag}: slides row size, h5_path, content hash")
    sco = db.execute("SELECT slide_prob, tumor_area_mm2, n_tissue_cells, seconds_read, seconds_encode,"
                     " seconds_head, seconds_write, seconds_total, run_id FROM scores WHERE slide_id = ?",
                     (sid,)).fetchall()
    if check(len(sco) == 1, f"{tag}: one scores row"):
        p, area, ncell, *secs, srun = sco[0]
        check(0 < p < 1 and ncell == n, f"{tag}: slide_prob {p:.4f}, n_tissue_cells {ncell}")
        want_area = float(np.sum(on >= threshold)) * (CELL * target_mpp / 1000) ** 2
        check(abs(area - want_area) < 1e-9, f"{tag}: tumor_area_mm2 {area:.5f} = cells ≥ {threshold} × cell area")
        check(all(x >= 0 for x in secs) and secs[4] >= max(secs[1], secs[2]) and secs[1] > 0,
              f"{tag}: seconds read/encode/head/write/total {[round(x, 2) for x in secs]}")
    les = db.execute("SELECT idx, prob, x, y, area_cells FROM lesions WHERE slide_id = ? ORDER BY idx",
                     (sid,)).fetchall()
    inside = True
    for idx, p, x, y, a in les:
        rr, cc = int(y // cell), int(x // cell)
        if not (0 <= rr < rows and 0 <= cc < cols and ts[rr, cc] == 1 and abs(hm[rr, cc] - p) < 1e-6
                and p >= threshold):
            inside = False
    check(inside, f"{tag}: {len(les)} lesion candidates inside tissue, prob = heatmap ≥ {threshold}")
    check([i for i, *_ in les] == list(range(len(les))), f"{tag}: lesion idx 0..n-1")
    csvp = os.path.join(out, sid + ".csv")
    if check(os.path.isfile(csvp), f"{tag}: lesion CSV"):
        lines = [ln.split(",") for ln in open(csvp).read().splitlines()]
        check(len(lines) == len(les) and all(abs(float(a) - p) < 1e-6 and int(b) == x and int(c_) == y
                                             for (a, b, c_), (_, p, x, y, _) in zip(lines, les)),
              f"{tag}: CSV = lesion rows (confidence,X,Y)")
    db.close()
    return {"hm": hm, "ts": ts, "co": co, "sc": sc, "feats": feats,
            "prob": sco[0][0] if sco else None, "lesions": [tuple(x[1:]) for x in les]}


def same(a, b):
    return (np.array_equal(a["hm"], b["hm"], equal_nan=True) and np.array_equal(a["co"], b["co"])
            and np.array_equal(a["sc"], b["sc"]) and a["prob"] == b["prob"] and a["lesions"] == b["lesions"]
            and (a["feats"] is None) == (b["feats"] is None)
            and (a["feats"] is None or np.array_equal(a["feats"], b["feats"])))


# ---------------------------------------------------------------------------------------------
def mode_synth(d):
    model = make_model(d)
    slides = make_slides(os.path.join(d, "slides"), 2, "1200,900")
    out = os.path.join(d, "out")
    r = must(["analyze", *slides, "--model", model, "--out", out, "--threads", "2",
              "--check-streaming", "--png-dir", "--save-features"])
    check(len(re.findall(r"streaming check: max \|chunked - one pass\| = (\S+)", r.stdout)) == 2 and
          all(float(x) <= 1e-5 for x in re.findall(r"= (\S+) \(tolerance", r.stdout)),
          "streaming: chunked head == one unchunked pass (≤ 1e-5) for both slides: "
          + ", ".join(re.findall(r"= (\S+) \(tolerance", r.stdout)))
    check(re.search(r"regions in", r.stderr) is not None, "progress: plain log lines when stderr is not a terminal")
    res = {}
    for s in slides:
        res[s] = check_result(out, s, model, 0.5, features_dim=128, label="synth ")
        sid = os.path.splitext(os.path.basename(s))[0]
        png = os.path.join(out, sid + ".png")
        check(os.path.isfile(png) and open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n", f"{sid}: --png-dir PNG")
    db = sqlite3.connect(os.path.join(out, "results.sqlite"))
    runs = db.execute("SELECT run_id, status, params_json, model_sha256 FROM runs").fetchall()
    pj = json.loads(runs[0][2]) if runs else {}
    check(len(runs) == 1 and runs[0][1] == "done" and pj.get("region_px") == 192 and pj.get("overlap_px") == 32
          and pj.get("cell_px") == 32 and runs[0][3] == sha256(model),
          f"runs row: done, params {pj.get('region_px')}/{pj.get('overlap_px')}, model sha256")
    # the timing line on stderr (what tests/bench/gpu_analyze_bench.sh reads): one per slide, the
    # database's seconds_* to the printed precision, read = setup + readers, and the encoding
    # thread's serial parts (setup, wait, encode, head, write) within the slide's total
    tim = {m.group(1): dict((k, float(v)) for k, v in re.findall(r"(?:^| )(\w+)=([0-9.]+)s", m.group(2)))
           for m in re.finditer(r"^(\S+): timing: (.*)$", r.stderr, re.M)}
    check(sorted(tim) == sorted(os.path.splitext(os.path.basename(s))[0] for s in slides)
          and all(re.search(r"summed over 2 threads", ln) for ln in r.stderr.splitlines() if ": timing: " in ln),
          f"timing line: one per slide ({sorted(tim)}), reader count")
    for sid, t in tim.items():
        row = db.execute("SELECT seconds_read, seconds_encode, seconds_head, seconds_write, seconds_total"
                         " FROM scores WHERE slide_id = ?", (sid,)).fetchone()
        keys = ("read", "encode", "head", "write", "total")
        ok = (row is not None and set(t) == {*keys, "setup", "readers", "wait"}
              and all(abs(t[k] - v) <= 0.0006 for k, v in zip(keys, row))
              and abs(t["setup"] + t["readers"] - t["read"]) <= 0.0016
              and t["setup"] + t["wait"] + t["encode"] + t["head"] + t["write"] <= t["total"] + 0.003
              and min(t.values()) >= 0 and t["encode"] > 0)
        check(ok, f"{sid}: timing line {t} vs scores {row}")
    db.close()
    check(no_temp_files(out), "no temp files left")

    # the same slide with 1 and 2 threads, and other reader/queue settings: identical outputs
    one = slides[0]
    outs = {}
    for tag, extra in (("t1", ["--threads", "1"]), ("t2", ["--threads", "2"]),
                       ("r1q1", ["--threads", "2", "--readers", "1", "--queue", "1"]),
                       ("r3q2", ["--threads", "1", "--readers", "3", "--queue", "2"])):
        o = os.path.join(d, "out-" + tag)
        rq = must(["analyze", one, "--model", model, "--out", o, "--quiet", "--save-features", *extra])
        outs[tag] = check_result(o, one, model, 0.5, features_dim=128, label=tag + " ")
        if tag == "t1":
            check(rq.stderr == "" and rq.stdout == "", "--quiet: nothing on stdout or stderr (no timing line)")
    check(all(outs[t] is not None for t in outs) and same(outs["t1"], outs["t2"]),
          "--threads 1 and 2: identical heatmap, coords, scores, features, slide prob, lesions")
    check(all(outs[t] is not None for t in outs) and same(outs["t1"], outs["r1q1"]) and same(outs["t1"], outs["r3q2"]),
          "--readers/--queue do not change the outputs")
    check(res[one] is not None and outs["t1"] is not None and same(res[one], outs["t1"]),
          "run of two slides gives the same result as a run of one")

    # regions taller than one read band (1,024 rows): several readers share a region's bands
    # (src/pipeline_read.c); the pixels, hence every output, must not depend on who read what
    big = make_model(d, name="tiny-big.safetensors", target_mpp=0.25, region=1600, overlap=64)
    outs_big = {}
    for tag, extra in (("r1q1", ["--readers", "1", "--queue", "1"]),
                       ("r4q1", ["--readers", "4", "--queue", "1"]),
                       ("r3q2", ["--readers", "3", "--queue", "2"])):
        o = os.path.join(d, "out-big-" + tag)
        must(["analyze", one, "--model", big, "--out", o, "--quiet", "--threads", "2", *extra])
        outs_big[tag] = check_result(o, one, big, 0.25, label="big " + tag + " ")
    check(all(outs_big[t] is not None for t in outs_big) and same(outs_big["r1q1"], outs_big["r4q1"])
          and same(outs_big["r1q1"], outs_big["r3q2"]),
          "regions of 2 bands read by 1, 4 (one buffer) and 3 readers: identical outputs")

    # re-run into the same folder: rows replaced, not duplicated
    must(["analyze", one, "--model", model, "--out", out, "--quiet", "--lesion-threshold", "0.3"])
    db = sqlite3.connect(os.path.join(out, "results.sqlite"))
    sid = os.path.splitext(os.path.basename(one))[0]
    n_sl = db.execute("SELECT COUNT(*) FROM slides").fetchone()[0]
    n_sc = db.execute("SELECT COUNT(*) FROM scores WHERE slide_id = ?", (sid,)).fetchone()[0]
    runs = db.execute("SELECT run_id FROM runs ORDER BY run_id").fetchall()
    srun = db.execute("SELECT run_id FROM slides WHERE slide_id = ?", (sid,)).fetchone()[0]
    lrun = {x[0] for x in db.execute("SELECT run_id FROM lesions WHERE slide_id = ?", (sid,))}
    db.close()
    check(n_sl == 2 and n_sc == 1 and len(runs) == 2 and srun == runs[-1][0] and lrun <= {runs[-1][0]},
          f"re-run: {n_sl} slides rows, {n_sc} scores row, rows of run {srun} only")
    rr = check_result(out, one, model, 0.5, threshold=0.3, label="rerun ")
    check(rr is not None and rr["feats"] is None and np.array_equal(rr["hm"], res[one]["hm"], equal_nan=True),
          "re-run: same heatmap, features gone without --save-features, lesions at the new threshold")

    # --png FILE for one slide
    png = os.path.join(d, "one.png")
    must(["analyze", one, "--model", model, "--out", os.path.join(d, "out-png"), "--quiet", "--png", png])
    check(os.path.isfile(png) and open(png, "rb").read(4) == b"\x89PNG", "--png FILE written")
    r = run(["analyze", *slides, "--model", model, "--out", out, "--png", png])
    check(r.returncode == 2, "--png FILE with two slides is a usage error (2)")
    r = run(["analyze", one, "--model", model, "--out", out, "--overlap", "33"])
    check(r.returncode == 2 and "multiple of 32" in r.stderr, "--overlap 33: usage error")


def mode_cmu(d):
    cmu = os.path.join(SLIDES, "CMU-1-Small-Region.svs")
    if not os.path.isfile(cmu):
        return 77
    # 1 µm/px keeps the test fast (1110 × 1484 px through the backbone); region 512 → 3 × 3 regions
    model = make_model(d, target_mpp=1.0, region=512, overlap=64)
    out = os.path.join(d, "out")
    r = must(["analyze", cmu, "--model", model, "--out", out, "--check-streaming", "--threads", "2"])
    check("streaming check" in r.stdout, "CMU: streaming check ran")
    check_result(out, cmu, model, 1.0, label="cmu ")
    # slides without a pixel size: a clear error asking for --mpp, then fine with --mpp
    out2 = os.path.join(d, "out-nompp")
    tcga = os.path.join(SLIDES, "tcga-cr-7395-01a-01-ts1.svs")
    boxes = os.path.join(SLIDES, "boxes.tiff")
    r = run(["analyze", tcga, boxes, "--model", model, "--out", out2])
    for sl in (tcga, boxes):
        line = [ln for ln in r.stderr.splitlines() if ln.startswith(f"wsi-vmamba: {sl}: ")]
        check(r.returncode == 1 and len(line) == 1 and line[0].endswith("give --mpp"),
              f"no pixel size: {line}")
    db = sqlite3.connect(os.path.join(out2, "results.sqlite"))
    rows = db.execute("SELECT status, error FROM slides ORDER BY slide_id").fetchall()
    db.close()
    check(len(rows) == 2 and all(s_ == "failed" and "--mpp" in e for s_, e in rows), f"no pixel size: recorded failed {rows}")
    # TCGA (JPEG 2000, 2 levels) at 4 µm/px with --mpp 1: 1111 × 892 px through the backbone
    model4 = make_model(d, name="tiny4.safetensors", target_mpp=4.0, region=512, overlap=64)
    must(["analyze", tcga, "--model", model4, "--out", out2, "--mpp", "1.0", "--quiet", "--check-streaming"])
    check_result(out2, tcga, model4, 4.0, mpp=1.0, label="tcga --mpp ")
    # boxes.tiff (coloured boxes, not tissue) at --mpp 2: no tissue → done, heatmap all NaN
    must(["analyze", boxes, "--model", model, "--out", out2, "--mpp", "2.0", "--quiet"])
    with h5py.File(os.path.join(out2, "boxes.h5"), "r") as f:
        hm, co = f["heatmap"][...], f["coords"][...]
        cell = f["heatmap"].attrs["cell_size_level0"]
    db = sqlite3.connect(os.path.join(out2, "results.sqlite"))
    row = db.execute("SELECT status, slide_prob, n_tissue_cells FROM slides JOIN scores USING(slide_id)"
                     " WHERE slide_id = 'boxes'").fetchall()
    db.close()
    check(hm.shape == (math.ceil(250 / cell), math.ceil(300 / cell)) and bool(np.all(np.isnan(hm)))
          and co.shape == (0, 2) and row == [("done", None, 0)],
          f"no tissue (boxes.tiff --mpp 2): heatmap {hm.shape} all NaN, no coords, slide row {row}")
    return 0


def write_safetensors(path, header, blobs):
    hj = json.dumps(header).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def broken_models(d, model):
    raw = open(model, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    meta = hdr.pop("__metadata__")
    names = sorted(hdr, key=lambda k: hdr[k]["data_offsets"][0])

    def rebuild(path, drop=None, reshape=None):
        out_h, blobs, off = {"__metadata__": meta}, [], 0
        for k in names:
            if k == drop:
                continue
            t = dict(hdr[k])
            a, b = t["data_offsets"]
            blob = data[a:b]
            if k == reshape:  # one row fewer
                rowb = (b - a) // t["shape"][0]
                blob = blob[:-rowb]
                t["shape"] = [t["shape"][0] - 1] + t["shape"][1:]
            t["data_offsets"] = [off, off + len(blob)]
            off += len(blob)
            out_h[k] = t
            blobs.append(blob)
        write_safetensors(path, out_h, blobs)
        return path

    head_t = next(k for k in names if k.startswith("head.") and len(hdr[k]["shape"]) == 2)
    bb_t = next(k for k in names if k.startswith("backbone.") and "patch_embed" in k)
    return [(rebuild(os.path.join(d, "missing-head.safetensors"), drop=head_t), re.escape(head_t[len("head."):])),
            (rebuild(os.path.join(d, "missing-backbone.safetensors"), drop=bb_t), r"\S"),
            (rebuild(os.path.join(d, "shape-head.safetensors"), reshape=head_t), r"shape|expected")]


def mode_faults(d):
    if not os.path.isdir(SLIDES):
        return 77
    model = make_model(d)
    good = make_slides(os.path.join(d, "slides"), 1, "800,600")[0]
    bad_dir = os.path.join(d, "bad")
    os.makedirs(bad_dir)
    empty = os.path.join(bad_dir, "empty.svs")
    open(empty, "wb").close()
    cmu = open(os.path.join(SLIDES, "CMU-1-Small-Region.svs"), "rb").read()
    cases = [
        (os.path.join(SLIDES, "unopenable.tiff"), r"cannot open slide: Unsupported TIFF compression"),
        (os.path.join(SLIDES, "unreadable.svs"), r"Bogus marker length"),
        (os.path.join(SLIDES, "broken.svs"), r"not a supported slide format$"),
        (os.path.join(SLIDES, "kidney-48-5.tif"), r"not a supported slide format"),
        (os.path.join(SLIDES, "OS-1-detail.ome.tif"), r"not a supported slide format"),
        (os.path.join(SLIDES, "tcga-cr-7395-01a-01-ts1.svs"), r"pixel size unknown.*give --mpp"),
        (os.path.join(bad_dir, "missing.svs"), r"no such file$"),
        (os.path.join(bad_dir, "subdir"), r"is a directory"),
        (empty, r"empty file \(0 bytes\)$"),
    ]
    os.makedirs(os.path.join(bad_dir, "subdir"))
    for n in (200000, 1300000, len(cmu) - 700):
        p = os.path.join(bad_dir, f"truncated-{n}.svs")
        open(p, "wb").write(cmu[:n])
        cases.append((p, r"truncated|not a supported slide format|cannot open slide|read of"))
    out = os.path.join(d, "out")
    paths = [c[0] for c in cases]
    paths.insert(3, good)  # a good slide among the bad ones: the others go on
    r = run(["analyze", *paths, "--model", model, "--out", out, "--quiet"], timeout=300)
    check(r.returncode == 1, f"bad slides: exit 1 (got {r.returncode})")
    lines = r.stderr.splitlines()
    db = sqlite3.connect(os.path.join(out, "results.sqlite"))
    for path, rx in cases:
        sid = os.path.splitext(os.path.basename(path))[0]
        prefix = f"wsi-vmamba: {path}: "
        mine = [ln for ln in lines if ln.startswith(prefix)]
        ok = len(mine) == 1 and re.search(rx, mine[0][len(prefix):]) is not None
        row = db.execute("SELECT status, error FROM slides WHERE slide_id = ?", (sid,)).fetchall()
        ok_db = (len(row) == 1 and row[0][0] == "failed" and mine and row[0][1] == mine[0][len(prefix):])
        check(ok and ok_db and not os.path.exists(os.path.join(out, sid + ".h5")),
              f"bad slide {os.path.basename(path)}: {mine[0] if mine else lines}; db {row}")
    check(len(lines) == len(cases), f"one stderr line per bad slide ({len(lines)} for {len(cases)})")
    n_sc = db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
    st = db.execute("SELECT status FROM runs").fetchall()
    db.close()
    check(n_sc == 1 and st == [("failed",)], f"only the good slide has scores ({n_sc}); run status {st}")
    check_result(out, good, model, 0.5, label="good among bad ")
    check(no_temp_files(out), "no temp files left")

    # model files with wrong tensors: clear message naming the model, exit 1, nothing written
    for bad_model, rx in broken_models(d, model):
        o = os.path.join(d, "out-" + os.path.basename(bad_model))
        r = run(["analyze", good, "--model", bad_model, "--out", o])
        pre = f"wsi-vmamba: {bad_model}: "
        check(r.returncode == 1 and r.stderr.startswith(pre) and len(r.stderr.splitlines()) == 1
              and re.search(rx, r.stderr) is not None and not os.path.exists(os.path.join(o, "results.sqlite")),
              f"model {os.path.basename(bad_model)}: {r.stderr.strip()}")
    r = run(["analyze", good, "--model", os.path.join(d, "nope.safetensors"), "--out", out])
    check(r.returncode == 1 and "nope.safetensors" in r.stderr, f"missing model: {r.stderr.strip()}")

    # an output folder that cannot be written
    afile = os.path.join(d, "a-file")
    open(afile, "w").write("x")
    o = os.path.join(afile, "out")
    r = run(["analyze", good, "--model", model, "--out", o])
    check(r.returncode == 1 and r.stderr.startswith(f"wsi-vmamba: {o}: "), f"out under a file: {r.stderr.strip()}")
    ro = os.path.join(d, "ro")
    os.makedirs(ro)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,ro", "tmpfs", ro], capture_output=True).returncode == 0:
        try:
            r = run(["analyze", good, "--model", model, "--out", ro])
            check(r.returncode == 1 and r.stderr.startswith(f"wsi-vmamba: {ro}: ") and "cannot write" in r.stderr,
                  f"read-only out folder: {r.stderr.strip()}")
        finally:
            subprocess.run(["umount", ro])
    else:
        print("skip read-only folder case (cannot mount)")

    # a full disk: the .h5 with features does not fit
    full = os.path.join(d, "full")
    os.makedirs(full)
    how = None
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320k", "tmpfs", full], capture_output=True).returncode == 0:
        how = "tmpfs 320 KiB"
        pre = None
    else:
        def pre():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (200 << 10, 200 << 10))
        try:
            subprocess.run(["true"], preexec_fn=pre, check=True)
            how = "RLIMIT_FSIZE 200 KiB"
        except Exception:
            how = None
    if how is None:
        print("skip disk-full case (neither tmpfs nor RLIMIT_FSIZE)")
    else:
        try:
            big = make_slides(os.path.join(d, "slides-big"), 1, "2400,1800", seed=9)[0]
            r = run(["analyze", big, "--model", model, "--out", full, "--save-features", "--quiet"],
                    preexec_fn=pre)
            sid = os.path.splitext(os.path.basename(big))[0]
            check(r.returncode == 1 and r.stderr.startswith(f"wsi-vmamba: {big}: ")
                  and re.search(r"space|too large|write", r.stderr) is not None,
                  f"disk full ({how}): {r.stderr.strip()}")
            check(not os.path.exists(os.path.join(full, sid + ".h5")) and no_temp_files(full),
                  "disk full: no .h5 and no temp file left")
            db = sqlite3.connect(os.path.join(full, "results.sqlite"))
            row = db.execute("SELECT status, error FROM slides WHERE slide_id = ?", (sid,)).fetchall()
            nsc = db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
            ic = db.execute("PRAGMA integrity_check").fetchone()[0]
            db.close()
            check(ic == "ok" and nsc == 0 and (row == [] or (row[0][0] == "failed" and row[0][1])),
                  f"disk full: database consistent ({ic}), slide {row}")
        finally:
            if how.startswith("tmpfs"):
                subprocess.run(["umount", full])
    return 0


def mode_signals(d):
    model = make_model(d, region=128, overlap=32)
    slide = make_slides(os.path.join(d, "slides"), 1, "6400,4800", seed=11)[0]
    sid = os.path.splitext(os.path.basename(slide))[0]
    for signame, code in (("SIGINT", 130), ("SIGTERM", 143)):
        out = os.path.join(d, "out-" + signame)
        os.makedirs(out)
        p = subprocess.Popen([BIN, "analyze", slide, "--model", model, "--out", out, "--threads", "1",
                              "--device", "cpu",
                              "--readers", "1"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        dbp = os.path.join(out, "results.sqlite")
        # stderr is not a terminal: the pipeline logs "<slide>: N regions, X Mpix to encode" when
        # the regions start; signal a moment later, in the middle of the regions
        err_lines = []
        t0 = time.time()
        running = False
        while time.time() - t0 < 60:
            ln = p.stderr.readline()
            if not ln:
                break
            err_lines.append(ln)
            if re.search(r": \d+ regions, .* Mpix to encode", ln):
                running = True
                break
        time.sleep(0.05)  # a whole slide takes ~1 s on a quiet machine: signal early
        p.send_signal(getattr(signal, signame))
        try:
            so, se = p.communicate(timeout=60)
            se = "".join(err_lines) + se
        except subprocess.TimeoutExpired:
            p.kill()
            so, se = p.communicate()
            check(False, f"{signame}: did not stop within 60 s")
            continue
        print(f"  {signame}: rc {p.returncode}, stderr: {se.strip()[-300:]}")
        check(running and p.returncode == code, f"{signame} mid-slide: exit {p.returncode} (want {code})")
        m = re.search(r"(\d+)/(\d+) regions in .*failed", se)
        check(m is not None and int(m.group(1)) < int(m.group(2)),
              f"{signame}: stopped between regions ({m.group(0) if m else 'no progress line'})")
        check(re.search(rf"^wsi-vmamba: {re.escape(slide)}: interrupted by {signame}$", se, re.M) is not None,
              f"{signame}: message 'wsi-vmamba: <slide>: interrupted by {signame}'")
        check(not os.path.exists(os.path.join(out, sid + ".h5")) and no_temp_files(out),
              f"{signame}: no .h5 and no temp file left")
        db = sqlite3.connect(dbp)
        row = db.execute("SELECT status, error FROM slides WHERE slide_id = ?", (sid,)).fetchall()
        nsc = db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]
        runs = db.execute("SELECT status, ended_at FROM runs").fetchall()
        db.close()
        check(row == [("failed", f"interrupted by {signame}")] and nsc == 0
              and len(runs) == 1 and runs[0][0] == "interrupted" and runs[0][1],
              f"{signame}: slide {row}, run {runs}")
    return 0


def main():
    mode = sys.argv[1]
    d = os.path.join(TMP_ROOT, "analyze_" + mode)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    t0 = time.time()
    rc = {"synth": mode_synth, "cmu": mode_cmu, "faults": mode_faults, "signals": mode_signals}[mode](d)
    if rc == 77:
        print("skip: fixtures missing")
        return 77
    print(f"analyze_{mode}: {'FAIL' if failures else 'OK'} ({time.time() - t0:.1f} s)")
    for f in failures:
        print("  failed:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
