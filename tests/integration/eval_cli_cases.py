#!/usr/bin/python3
"""eval_cli_cases.py — `wsi-vmamba evaluate` on edge cases, each a documented result or a clear
error (docs/evaluation.md), never a crash or a silent number:
  no tumour slides / one class       exit 0, AUC and FROC null with a note
  empty detection file               zero detections (an FROC of 0 on a tumour slide)
  header and blank lines             skipped with a warning
  malformed row                      exit 1, file and line named
  slides missing from the results    exit 1 naming them; --exclude makes it pass
  tumour slide without ground truth  exit 1 naming it
  mask with tumour = 1               warning; treated as tumour (only 255 with --official-quirks)
  results DB (resultsdb schema)      same numbers as the CSV route
  annotations instead of masks       the same FROC as the mask on a synthetic cohort
  usage errors                       exit 2
and the report folder holds every output (HTML self-contained: no external references).
"""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_common import BIN, TMP, check, finish, run_eval, write_mask  # noqa: E402

D = os.path.join(TMP, "eval_cli")
OUTPUTS = ["metrics.json", "per_slide.csv", "roc.svg", "roc.png", "froc.svg", "froc.png", "report.html"]


def w(path, text):
    with open(path, "w") as f:
        f.write(text)


def metrics(out):
    return json.load(open(os.path.join(out, "metrics.json")))


def setup():
    shutil.rmtree(D, ignore_errors=True)
    for sub in ("masks", "det", "masks1"):
        os.makedirs(os.path.join(D, sub))
    m5 = np.zeros((40, 50), bool)
    m5[10:30, 8:45] = True  # one lesion, 37x20 px at level 5 (major axis > 35.4 px): not an ITC
    write_mask(os.path.join(D, "masks", "Tumor_001_mask.tif"), m5, 7, 9)
    write_mask(os.path.join(D, "masks1", "Tumor_001_mask.tif"), m5, 7, 9, value=1)
    w(os.path.join(D, "reference.csv"), "Tumor_001,Tumor,IDC,Macro\nNormal_001,Normal,,None\n"
      "Normal_002,Normal,,None\n")
    w(os.path.join(D, "scores.csv"), "Tumor_001,0.9\nNormal_001,0.2\nNormal_002,0.95\n")
    w(os.path.join(D, "det", "Tumor_001.csv"), "confidence,X,Y\n\n0.8,640,500\n0.3,10,10\n")
    w(os.path.join(D, "det", "Normal_001.csv"), "")  # empty: no detections
    w(os.path.join(D, "det", "Normal_002.csv"), "0.5,100,100\n\n")


def base(out, *extra):
    return ["--slide-scores", os.path.join(D, "scores.csv"), "--detections", os.path.join(D, "det"),
            "--reference", os.path.join(D, "reference.csv"), "--masks", os.path.join(D, "masks"),
            "--out", os.path.join(D, out)] + list(extra)


def main():
    setup()
    rc, so, se = run_eval(base("r_ok"))
    check(rc == 0, f"normal run exits 0 ({se.strip()[:200]})")
    out = os.path.join(D, "r_ok")
    check(all(os.path.getsize(os.path.join(out, f)) > 0 for f in OUTPUTS), "all 7 outputs written")
    m = metrics(out)
    # Tumor_001: TP 0.8 (lesion), FP 0.3; Normal_002: FP 0.5; Normal_001: none. 3 slides.
    check(m["lesion_level"]["n_lesions"] == 1 and m["lesion_level"]["n_false_positives"] == 2,
          "1 lesion, 2 false positives")
    check(abs(m["slide_level"]["auc"] - 0.5) < 1e-12, f"AUC 0.5 (got {m['slide_level']['auc']})")
    check("header" in " ".join(m["warnings"]), "the header line was reported as skipped")
    html = open(os.path.join(out, "report.html")).read()
    check("data:image/png;base64," in html and not re.search(r'src="(?!data:)', html),
          "report.html embeds its images (no external src)")
    check("Tumor_001" in html and "Provenance" in html and "95% CI" in html, "report has table, CI, provenance")
    # sens at rates: FP/slide 1/3 after 0.5, 2/3 with 0.3; TP 0.8 first → sensitivity 1 at >= 0
    check(abs(m["lesion_level"]["froc"] - 1.0) < 1e-12, f"FROC 1.0 (got {m['lesion_level']['froc']})")

    # one class only / no tumour slides
    w(os.path.join(D, "ref_normal.csv"), "Normal_001,Normal\nNormal_002,Normal\n")
    rc, so, se = run_eval(["--slide-scores", os.path.join(D, "scores.csv"), "--detections",
                           os.path.join(D, "det"), "--reference", os.path.join(D, "ref_normal.csv"),
                           "--masks", os.path.join(D, "masks"), "--out", os.path.join(D, "r_norm")])
    mn = metrics(os.path.join(D, "r_norm")) if rc == 0 else {}
    check(rc == 0 and mn["slide_level"]["auc"] is None and mn["lesion_level"]["froc"] is None and
          "one class" in mn["slide_level"]["auc_note"],
          f"no tumour slides: exit 0, AUC and FROC null with notes ({se.strip()[:160]})")

    # malformed row
    w(os.path.join(D, "det_bad", "Tumor_001.csv") if os.makedirs(os.path.join(D, "det_bad")) is None else "",
      "0.8,640,500\n0.3,abc,10\n")
    for n in ("Normal_001", "Normal_002"):
        w(os.path.join(D, "det_bad", n + ".csv"), "")
    rc, so, se = run_eval(base("r_bad")[:2] + ["--detections", os.path.join(D, "det_bad")] + base("r_bad")[4:])
    check(rc == 1 and "Tumor_001.csv line 2" in se, f"malformed detection row: exit 1 naming line 2 ({se.strip()})")

    # missing results
    w(os.path.join(D, "scores_missing.csv"), "Tumor_001,0.9\nNormal_001,0.2\n")
    args = base("r_miss")
    args[1] = os.path.join(D, "scores_missing.csv")
    rc, so, se = run_eval(args)
    check(rc == 1 and "Normal_002" in se, f"slide missing from the results: exit 1 naming it ({se.strip()})")
    rc, so, se = run_eval(args + ["--exclude", "Normal_002"])
    check(rc == 0, f"... and --exclude Normal_002 makes it pass ({se.strip()[:200]})")
    os.remove(os.path.join(D, "det", "Normal_001.csv"))
    rc, so, se = run_eval(base("r_missdet"))
    check(rc == 1 and "Normal_001" in se and "detections" in se, f"missing detection file: exit 1 ({se.strip()})")
    rc, so, se = run_eval(base("r_missdet", "--froc-exclude", "Normal_001"))
    check(rc == 0, "... and --froc-exclude makes it pass")
    w(os.path.join(D, "det", "Normal_001.csv"), "")

    # tumour slide without ground truth
    args = base("r_nogt")
    args[args.index("--masks") + 1] = os.path.join(D, "det")
    rc, so, se = run_eval(args)
    check(rc == 1 and "Tumor_001" in se and "ground truth" in se, f"no mask: exit 1 ({se.strip()})")

    # tumour = 1 mask
    args = base("r_one")
    args[args.index("--masks") + 1] = os.path.join(D, "masks1")
    rc, so, se = run_eval(args)
    m1 = metrics(os.path.join(D, "r_one")) if rc == 0 else {}
    check(rc == 0 and "value 1 is taken as tumour" in se and m1["lesion_level"]["n_lesions"] == 1,
          "tumour = 1 mask: warning, 1 lesion")
    rc, so, se = run_eval(args + ["--official-quirks"])
    m1 = metrics(os.path.join(D, "r_one")) if rc == 0 else {}
    check(rc == 0 and m1["lesion_level"]["froc"] is None, "... with --official-quirks no lesion: FROC null")

    # the results database route (resultsdb schema) gives the same numbers
    db = os.path.join(D, "results.sqlite")
    rc_db = subprocess.run([BIN, "evaluate", "--help"], capture_output=True).returncode
    check(rc_db == 0, "evaluate --help exits 0")
    make_db(db)
    rc, so, se = run_eval(["--db", db, "--reference", os.path.join(D, "reference.csv"), "--masks",
                           os.path.join(D, "masks"), "--out", os.path.join(D, "r_db"), "--quiet"])
    if rc == 0:
        a, b = metrics(os.path.join(D, "r_db")), metrics(out)
        check(a["slide_level"]["auc"] == b["slide_level"]["auc"] and
              a["lesion_level"]["froc"] == b["lesion_level"]["froc"], "--db gives the CSV route's numbers")
    else:
        check(False, f"--db run: exit {rc}: {se.strip()}")
    # regression: evaluate's read-only provenance query left results.sqlite-wal/-shm behind
    check(not os.path.exists(db + "-wal") and not os.path.exists(db + "-shm"),
          "--db: no -wal/-shm files left after evaluate")

    # usage errors
    for bad in (["--reference", "x"], ["--db", "a", "--slide-scores", "b", "--reference", "r", "--out", "o"],
                ["--froc-mode", "cubic"], ["--bootstrap", "-1"]):
        rc, so, se = run_eval(bad)
        check(rc == 2, f"usage error {' '.join(bad)}: exit 2")
    rc, so, se = run_eval(["--slide-scores", os.path.join(D, "nope.csv"), "--reference",
                           os.path.join(D, "reference.csv"), "--out", os.path.join(D, "r_x")])
    check(rc == 1 and "nope.csv" in se, f"missing scores file: exit 1 naming it ({se.strip()})")
    synth_cohort()
    finish("eval_cli_cases")


def make_db(path):
    """A results.sqlite written with `wsi-vmamba` itself is not possible yet without a model, so the
    documented schema (heatmaps/resultsdb.h) is filled here with sqlite3."""
    c = sqlite3.connect(path)
    c.executescript("""
    CREATE TABLE runs(run_id INTEGER PRIMARY KEY AUTOINCREMENT, tool_version TEXT, model_sha256 TEXT,
      params_json TEXT, host TEXT, started_at TEXT, ended_at TEXT, status TEXT);
    CREATE TABLE slides(slide_id TEXT PRIMARY KEY, path TEXT, size_bytes INTEGER, content_hash TEXT,
      vendor TEXT, width INTEGER, height INTEGER, mpp_x REAL, mpp_y REAL,
      status TEXT CHECK(status IN ('pending','running','done','failed')), error TEXT, run_id INTEGER,
      h5_path TEXT, updated_at TEXT, label TEXT);
    CREATE INDEX slides_content_hash ON slides(content_hash);
    CREATE TABLE scores(slide_id TEXT PRIMARY KEY REFERENCES slides(slide_id) ON DELETE CASCADE,
      run_id INTEGER, slide_prob REAL, tumor_area_mm2 REAL, n_tissue_cells INTEGER, seconds_read REAL,
      seconds_encode REAL, seconds_head REAL, seconds_write REAL, seconds_total REAL);
    CREATE TABLE lesions(slide_id TEXT REFERENCES slides(slide_id) ON DELETE CASCADE, idx INTEGER,
      run_id INTEGER, prob REAL, x INTEGER, y INTEGER, area_cells INTEGER, PRIMARY KEY(slide_id, idx));
    PRAGMA user_version = 1;
    """)
    c.execute("INSERT INTO runs(tool_version, model_sha256, params_json, status) VALUES('0.1.0','ab12','{}','done')")
    for sid, p, les in (("Tumor_001", 0.9, [(0.8, 640, 500), (0.3, 10, 10)]), ("Normal_001", 0.2, []),
                        ("Normal_002", 0.95, [(0.5, 100, 100)])):
        c.execute("INSERT INTO slides(slide_id, path, status, run_id, width, height, mpp_x, mpp_y) "
                  "VALUES(?,?,?,?,?,?,?,?)", (sid, sid + ".tif", "done", 1, 1607, 1289, 0.243, 0.243))
        c.execute("INSERT INTO scores(slide_id, run_id, slide_prob) VALUES(?,?,?)", (sid, 1, p))
        for i, (q, x, y) in enumerate(les):
            c.execute("INSERT INTO lesions(slide_id, idx, run_id, prob, x, y, area_cells) VALUES(?,?,?,?,?,?,1)",
                      (sid, i, 1, q, x, y))
    c.commit()
    c.close()


def synth_cohort():
    """A synthetic cohort: detections at lesion centres; masks and ASAP XML give the same FROC."""
    d = os.path.join(D, "synth")
    p = subprocess.run([BIN, "synth", d, "--slides", "4", "--seed", "11", "--size", "4000,3000",
                        "--quiet"], capture_output=True, text=True)
    if p.returncode:
        check(False, f"synth failed: {p.stderr}")
        return
    rows = [l.strip().split(",") for l in open(os.path.join(d, "lesions.csv"))][1:]
    ref = [l.split(",")[0] for l in open(os.path.join(d, "reference.csv"))]
    os.makedirs(os.path.join(d, "det"), exist_ok=True)
    with open(os.path.join(d, "scores.csv"), "w") as f:
        for i, n in enumerate(ref):
            f.write(f"{n},{0.1 + 0.2 * i}\n")
            with open(os.path.join(d, "det", n + ".csv"), "w") as g:
                for r in rows:
                    if r[0] == n:
                        g.write(f"0.9,{int(float(r[3]))},{int(float(r[4]))}\n")
                g.write("0.4,5,5\n")
    res = {}
    for gt in ("masks", "annotations"):
        rc, so, se = run_eval(["--slide-scores", os.path.join(d, "scores.csv"), "--detections",
                               os.path.join(d, "det"), "--reference", os.path.join(d, "reference.csv"),
                               "--" + gt, os.path.join(d, gt), "--slides", d, "--out",
                               os.path.join(d, "rep_" + gt), "--quiet"])
        res[gt] = metrics(os.path.join(d, "rep_" + gt))["lesion_level"] if rc == 0 else None
        check(rc == 0, f"synthetic cohort with --{gt}: exit 0 ({se.strip()[:200]})")
    if res["masks"] and res["annotations"]:
        check(res["masks"]["froc"] == res["annotations"]["froc"] and
              res["masks"]["n_lesions"] == res["annotations"]["n_lesions"],
              f"masks and XML annotations give the same FROC ({res['masks']['froc']}, "
              f"{res['masks']['n_lesions']} lesions, {res['masks']['n_itc_excluded']} ITC)")


main()
