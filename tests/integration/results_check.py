#!/usr/bin/python3
"""results_check.py — the results layer's files read by independent readers (issue 4).

Runs `results_tool write DIR` (tests/integration/results_tool.c, heatmaps/ library) and checks:
  *.h5         with h5py: datasets, dtypes, shapes, chunking + gzip, attributes incl. CLAM's,
               NaN exactly off tissue, coords/scores consistent with the heatmap, float16 features;
               a copy without the `complete` attribute is refused by `results_tool check`;
  results.sqlite with sqlite3: schema names, user_version, WAL, rows, no duplicates on re-run;
  exports      with csv/json/xml.etree; the PNG by its header.
Pattern written by results_tool: 6 x 9 cells of 64 level-0 px; tissue where (r + c) % 3 != 0;
heatmap value (r*9 + c) / 54 on tissue; coords in raster order; features[i] = i + 0.5*d.
"""
import csv, json, os, shutil, sqlite3, struct, subprocess, sys
import xml.etree.ElementTree as ET

import h5py
import numpy as np

TOOL = sys.argv[1]
OUT = os.path.join(os.environ.get("WV_TEST_TMP", "/tmp"), "results_check")
failures = 0


def check(cond, what):
    global failures
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        failures += 1


shutil.rmtree(OUT, ignore_errors=True)
os.makedirs(OUT)
r = subprocess.run([TOOL, "write", OUT], capture_output=True, text=True)
check(r.returncode == 0, "results_tool write: " + r.stderr.strip())
if r.returncode:
    sys.exit(1)
check(not [f for f in os.listdir(OUT) if ".tmp." in f], "no temp files left")

R, C, CELL = 6, 9, 64
rr, cc = np.mgrid[0:R, 0:C]
tissue = ((rr + cc) % 3 != 0).astype(np.uint8)
want = np.where(tissue == 1, (rr * C + cc).astype(np.float32) / np.float32(R * C), np.nan).astype(np.float32)

for sid, feats in (("synth_A", True), ("synth_B", False)):
    with h5py.File(os.path.join(OUT, sid + ".h5"), "r") as f:
        hm = f["heatmap"]
        check(hm.dtype == np.float32 and hm.shape == (R, C), f"{sid} heatmap float32 {hm.shape}")
        check(hm.compression == "gzip" and hm.chunks is not None, f"{sid} heatmap chunked + gzip")
        a = hm[...]
        check(np.array_equal(np.isnan(a), f["tissue"][...] == 0), f"{sid} NaN exactly off tissue")
        check(np.array_equal(a, want, equal_nan=True), f"{sid} heatmap values")
        check(f["tissue"].dtype == np.uint8 and np.array_equal(f["tissue"][...], tissue), f"{sid} tissue uint8")
        at = hm.attrs
        check(at["cell_size_level0"] == 64.0 and list(at["mpp"]) == [0.25, 0.25], f"{sid} cell size, mpp")
        check(at["slide_width"] == C * 64 - 10 and at["slide_height"] == R * 64 - 20, f"{sid} slide size")
        check(at["model_sha256"] == "0123456789abcdef" and at["tool_version"] == "0.1.0"
              and at["target_mpp"] == 0.5, f"{sid} model hash, version, target mpp")
        co = f["coords"]
        check(co.dtype == np.int32 and co.shape == (int(tissue.sum()), 2), f"{sid} coords int32 (N, 2)")
        ys, xs = np.nonzero(tissue)
        check(np.array_equal(co[...], np.stack([xs * CELL, ys * CELL], 1)), f"{sid} coords = (x, y) level-0 top-left")
        ca = co.attrs
        check(int(ca["patch_size"]) == 64 and int(ca["patch_level"]) == 0, f"{sid} CLAM patch_size, patch_level")
        check(tuple(ca["downsample"]) == (1.0, 1.0) and tuple(ca["level_dim"]) == (C * 64 - 10, R * 64 - 20)
              and tuple(ca["downsampled_level_dim"]) == tuple(ca["level_dim"]), f"{sid} CLAM downsample, level_dim")
        check(ca["name"] == sid and isinstance(ca["name"], str), f"{sid} CLAM name (str)")
        check(ca["patch_size_level0"] == 64.0, f"{sid} patch_size_level0")
        sc = f["scores"]
        check(sc.dtype == np.float32 and np.array_equal(sc[...], a[ys, xs]), f"{sid} scores = heatmap at coords")
        check(f.attrs["complete"] == 1, f"{sid} complete attribute")
        if feats:
            fe = f["features"]
            n = co.shape[0]
            exp = (np.arange(n)[:, None] + 0.5 * np.arange(4)[None, :]).astype(np.float16)
            check(fe.dtype == np.float16 and fe.shape == (n, 4) and np.array_equal(fe[...], exp),
                  f"{sid} features float16 (N, 4)")
        else:
            check("features" not in f, f"{sid} no features")

# a file without `complete` is not a result
bad = os.path.join(OUT, "incomplete.h5")
shutil.copy(os.path.join(OUT, "synth_B.h5"), bad)
with h5py.File(bad, "a") as f:
    del f.attrs["complete"]
r = subprocess.run([TOOL, "check", bad], capture_output=True, text=True)
check(r.returncode == 1 and "not complete" in r.stderr, "incomplete file refused: " + r.stderr.strip())
r = subprocess.run([TOOL, "check", os.path.join(OUT, "synth_A.h5")], capture_output=True, text=True)
check(r.returncode == 0, "complete file accepted")

# the database
db = sqlite3.connect(os.path.join(OUT, "results.sqlite"))
cols = lambda t: [r[1] for r in db.execute(f"PRAGMA table_info({t})")]
check(cols("runs") == ["run_id", "tool_version", "model_sha256", "params_json", "host", "started_at", "ended_at", "status"], "runs columns")
check(cols("slides") == ["slide_id", "path", "size_bytes", "content_hash", "vendor", "width", "height", "mpp_x", "mpp_y",
                         "status", "error", "run_id", "h5_path", "updated_at", "label"], "slides columns")
check(cols("scores") == ["slide_id", "run_id", "slide_prob", "tumor_area_mm2", "n_tissue_cells", "seconds_read",
                         "seconds_encode", "seconds_head", "seconds_write", "seconds_total"], "scores columns")
check(cols("lesions") == ["slide_id", "idx", "run_id", "prob", "x", "y", "area_cells"], "lesions columns")
check(db.execute("PRAGMA user_version").fetchone()[0] == 1, "user_version 1")
check(db.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "WAL")
check(any(r[1] == "slides_content_hash" for r in db.execute("PRAGMA index_list(slides)")), "index on content_hash")
rows = {r[0]: r for r in db.execute("SELECT slide_id, status, error, h5_path, label FROM slides")}
check(set(rows) == {"synth_A", "synth_B", "broken"}, "three slides")
check(rows["synth_A"][1] == "done" and rows["synth_A"][3].endswith("synth_A.h5") and rows["synth_A"][4] == "tumor", "synth_A done")
check(rows["broken"][1] == "failed" and rows["broken"][2] == "not a supported slide format", "broken failed with reason")
check(db.execute("SELECT COUNT(*) FROM lesions WHERE slide_id='synth_A'").fetchone()[0] == 2, "re-run: 2 lesions, not 4")
check(db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 2, "two scores rows")
check(db.execute("SELECT slide_prob, n_tissue_cells, seconds_total FROM scores WHERE slide_id='synth_A'").fetchone() == (0.8, 36, 5.0), "scores values")
run = db.execute("SELECT status, ended_at IS NOT NULL, params_json FROM runs").fetchall()
check(run == [("done", 1, '{"target_mpp":0.5}')], "one run, ended")
db.close()

# exports
with open(os.path.join(OUT, "synth_A.csv")) as f:
    lines = [l.rstrip("\n").split(",") for l in f]
check([(float(a), int(b), int(c)) for a, b, c in lines] == [(0.9, 320, 128), (0.6, 64, 256)], "CAMELYON16 lesion CSV")
g = json.load(open(os.path.join(OUT, "synth_A.lesions.geojson")))
check(g["type"] == "FeatureCollection" and [f["geometry"]["coordinates"] for f in g["features"]] == [[320, 128], [64, 256]], "lesion GeoJSON points")
g = json.load(open(os.path.join(OUT, "synth_A.cells.geojson")))
check(len(g["features"]) == int(tissue.sum()) and all(f["geometry"]["type"] == "Polygon" for f in g["features"]), "cell GeoJSON: one polygon per tissue cell")
root = ET.parse(os.path.join(OUT, "synth_A.xml")).getroot()
pts = [(c.get("X"), c.get("Y")) for c in root.iter("Coordinate")]
check(root.tag == "ASAP_Annotations" and pts == [("320", "128"), ("64", "256")], "ASAP XML dots")
with open(os.path.join(OUT, "slides.csv")) as f:
    check(list(csv.reader(f)) == [["synth_A", "0.8"], ["synth_B", "0.1"]], "slide-level CSV")
with open(os.path.join(OUT, "synth_A.png"), "rb") as f:
    head = f.read(24)
w, h = struct.unpack(">II", head[16:24])
check(head[:8] == b"\x89PNG\r\n\x1a\n" and (w, h) == (9 * 16 + 64, 6 * 16), f"overlay PNG {w}x{h}")

print(f"results_check: {failures} failed")
sys.exit(1 if failures else 0)
