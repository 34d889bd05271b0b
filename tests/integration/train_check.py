#!/usr/bin/env python3
"""train_check.py — issue 5 end to end through the CLI.

synth: a training cohort and a held-out cohort from `wsi-vmamba synth` (different seeds, small
slides), the random `tiny` backbone, `features` for both (timed; a rerun skips complete files),
`train` (timed), then train_eval: held-out slide AUC >= 0.95 and per-cell AUC >= 0.9 against the
rasterised annotations; features + train under WV_TRAIN_MAX_S seconds (300 on this 2-core
machine). The model file's metadata is read back (trained, training record).
bad: labels naming missing slides (warning, still trains), one class only, an empty cohort,
malformed XML, a feature file that is not HDF5, a polygon outside the slide, usage errors.
"""
import json, os, shutil, struct, subprocess, sys, time

BIN = os.environ["WV_BIN"]
TMP = os.path.join(os.environ.get("WV_TEST_TMP", "/tmp"), "train_check_" + sys.argv[1])
EVAL = sys.argv[2]
fails = 0


def run(*args, ok=True, timeout=1200):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)
    if ok and p.returncode != 0:
        print(p.stdout, p.stderr)
        raise SystemExit(f"FAIL: {' '.join(args[:2])} exit {p.returncode}")
    return p


def check(cond, what):
    global fails
    print(("OK   " if cond else "FAIL ") + what)
    if not cond:
        fails += 1


def meta(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))["__metadata__"]


def cohort(name, n, seed, naming="train", size="4000,3000"):
    d = os.path.join(TMP, name)
    run("synth", d, "--slides", str(n), "--seed", str(seed), "--size", size, "--naming", naming,
        "--quiet")
    return d


def synth():
    tr = cohort("tr", 16, 11)
    te = cohort("te", 10, 22, naming="test")
    model = os.path.join(TMP, "tiny.safetensors")
    run("model", "init", "--random-backbone", "tiny", "--out", model, "--seed", "0")
    ftr, fte = os.path.join(TMP, "ftr"), os.path.join(TMP, "fte")
    slides = lambda d: sorted(os.path.join(d, f) for f in os.listdir(d) if f.endswith(".tif"))
    t0 = time.time()
    run("features", *slides(tr), "--backbone", model, "--out", ftr, "--threads", "2", "--quiet")
    run("features", *slides(te), "--backbone", model, "--out", fte, "--threads", "2", "--quiet")
    t_feat = time.time() - t0
    out = os.path.join(TMP, "trained.safetensors")
    t0 = time.time()
    p = run("train", "--features", ftr, "--annotations", os.path.join(tr, "annotations"),
            "--labels", os.path.join(tr, "reference.csv"), "--out", out, "--backbone-model", model,
            "--epochs", "12", "--d-h", "32", "--threads", "2")
    t_train = time.time() - t0
    print(p.stderr)
    ev = subprocess.run([EVAL, out, fte, os.path.join(te, "reference.csv"),
                         os.path.join(te, "annotations")], capture_output=True, text=True)
    print(ev.stderr)
    r = json.loads(ev.stdout)
    print(json.dumps(r))
    check(r["slide_auc"] >= 0.95, f"held-out slide AUC {r['slide_auc']:.4f} >= 0.95")
    check(r["cell_auc"] >= 0.9, f"held-out cell AUC {r['cell_auc']:.4f} >= 0.9 "
          f"({r['tumour_cells']} tumour of {r['cells']} cells)")
    limit = float(os.environ.get("WV_TRAIN_MAX_S", "300"))
    tot = t_feat + t_train
    check(tot < limit, f"features {t_feat:.1f} s + train {t_train:.1f} s = {tot:.1f} s < {limit:.0f} s")
    m = meta(out)
    check(m["trained"] == "true", "metadata trained = true")
    t = json.loads(m["training"])
    check(len(t["slides"]) == 16 and all(len(s["features_sha256"]) == 64 for s in t["slides"]),
          "training record lists the 16 slides with content hashes")
    check(len(t["labels_sha256"]) == 64 and t["seed"] == 1 and len(t["metrics"]) >= 1,
          "labels hash, seed, per-epoch metrics recorded")
    check(not os.path.exists(out + ".ckpt"), "checkpoint removed after success")
    # rerun: complete files are skipped
    p = run("features", *slides(te), "--backbone", model, "--out", fte, "--threads", "2")
    check(p.stderr.count("skipped") == 10, "features rerun skips the 10 complete files")
    # determinism: the same seed and threads give the same head
    out2 = os.path.join(TMP, "trained2.safetensors")
    run("train", "--features", ftr, "--annotations", os.path.join(tr, "annotations"),
        "--labels", os.path.join(tr, "reference.csv"), "--out", out2, "--backbone-model", model,
        "--epochs", "2", "--d-h", "16", "--threads", "2", "--quiet")
    out3 = os.path.join(TMP, "trained3.safetensors")
    run("train", "--features", ftr, "--annotations", os.path.join(tr, "annotations"),
        "--labels", os.path.join(tr, "reference.csv"), "--out", out3, "--backbone-model", model,
        "--epochs", "2", "--d-h", "16", "--threads", "2", "--quiet")
    def tensors(path):
        with open(path, "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            f.read(n)
            return f.read()
    check(tensors(out2) == tensors(out3), "two runs with seed 1 and 2 threads: identical tensors")


def bad():
    c = cohort("c", 4, 5, size="3000,2000")
    model = os.path.join(TMP, "tiny.safetensors")
    run("model", "init", "--random-backbone", "tiny", "--out", model, "--seed", "0")
    feats = os.path.join(TMP, "f")
    run("features", *sorted(os.path.join(c, f) for f in os.listdir(c) if f.endswith(".tif")),
        "--backbone", model, "--out", feats, "--threads", "2", "--quiet")
    ref = os.path.join(c, "reference.csv")
    base = ["train", "--features", feats, "--out", os.path.join(TMP, "m.safetensors"),
            "--backbone-model", model, "--epochs", "1", "--d-h", "8", "--threads", "2"]
    def labels(text):
        p = os.path.join(TMP, "labels.csv")
        open(p, "w").write(text)
        return p
    rows = open(ref).read()
    p = run(*base, "--labels", labels(rows + "ghost_001,Tumor\n"))
    check("ghost_001" in p.stderr and "no feature file" in p.stderr,
          "label naming a missing slide: warning, training goes on")
    p = run(*base, "--labels", labels("".join(l for l in rows.splitlines(True) if "Tumor" in l)), ok=False)
    check(p.returncode == 1 and "one class only" in p.stderr, "one class only: " + p.stderr.strip())
    p = run(*base, "--labels", labels("nobody,Tumor\nnoone,Normal\n"), ok=False)
    check(p.returncode == 1 and "empty cohort" in p.stderr, "empty cohort: " + p.stderr.strip())
    p = run(*base, "--labels", labels("a,Tumor\nb,Maybe\n"), ok=False)
    check(p.returncode == 1 and "line 2" in p.stderr, "bad class: " + p.stderr.strip())
    ann = os.path.join(TMP, "ann")
    shutil.copytree(os.path.join(c, "annotations"), ann, dirs_exist_ok=True)
    first = sorted(os.listdir(ann))[0]
    open(os.path.join(ann, first), "w").write("<ASAP_Annotations><Annotations><Annotation")
    p = run(*base, "--labels", ref, "--annotations", ann, ok=False)
    check(p.returncode == 1 and first in p.stderr, "malformed XML: " + p.stderr.strip())
    open(os.path.join(ann, first), "w").write(
        '<ASAP_Annotations><Annotations><Annotation Name="x" Type="Polygon" PartOfGroup="_0">'
        '<Coordinates><Coordinate Order="0" X="900000" Y="900000"/><Coordinate Order="1" '
        'X="900100" Y="900000"/><Coordinate Order="2" X="900100" Y="900100"/></Coordinates>'
        '</Annotation></Annotations></ASAP_Annotations>')
    p = run(*base, "--labels", ref, "--annotations", ann)
    check("outside" in p.stderr, "polygon outside the slide: warning")
    bad_h5 = os.path.join(TMP, "fbad")
    shutil.copytree(feats, bad_h5, dirs_exist_ok=True)
    victim = sorted(f for f in os.listdir(bad_h5) if f.endswith(".h5"))[0]
    open(os.path.join(bad_h5, victim), "w").write("not hdf5")
    b2 = list(base)
    b2[2] = bad_h5
    p = run(*b2, "--labels", ref, ok=False)
    check(p.returncode == 1 and victim in p.stderr, "feature file not HDF5: " + p.stderr.strip())
    p = run("train", "--features", feats, "--labels", ref, ok=False)
    check(p.returncode == 2, "missing required options: usage error")
    p = run("features", "/nonexistent.svs", "--backbone", model, "--out", feats, ok=False)
    check(p.returncode == 1 and "/nonexistent.svs" in p.stderr, "features on a missing slide")


shutil.rmtree(TMP, ignore_errors=True)
os.makedirs(TMP)
{"synth": synth, "bad": bad}[sys.argv[1]]()
print("train_check:", "FAILED" if fails else "passed")
sys.exit(1 if fails else 0)
