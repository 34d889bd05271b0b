#!/usr/bin/python3
"""model_cli.py — `wsi-vmamba model init|inspect` (issue 4, docs/head.md).

init from the golden v2_ds1 checkpoint (.safetensors and the official-style .pth) and from a
random preset; the file is read here with plain Python (safetensors header + numpy): tensor names
under backbone./head., backbone tensors bit-equal to the source, every __metadata__ value a string
holding JSON with the documented keys, provenance sha256 = the source file's; inspect text and
--json agree; the same seed gives the same head; bad input exits 1 with a message, usage errors 2.
"""
import hashlib
import json
import os
import struct
import subprocess
import sys

import numpy as np

BIN = os.environ["WV_BIN"]
GOLD = os.path.join(os.environ.get("WV_SHARED_DIR", "../shared"), "golden")
TMP = os.path.join(os.environ.get("WV_TEST_TMP", "/tmp"), "model_cli")
fails = 0


def check(cond, what):
    global fails
    print(f"{what:64s} {'OK' if cond else 'FAIL'}")
    fails += not cond


def run(*args):
    return subprocess.run([BIN, "model", *args], capture_output=True, text=True, timeout=300)


def read_st(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    hdr = json.loads(data[8:8 + n])
    meta = hdr.pop("__metadata__", None)
    base = 8 + n
    tensors = {}
    for name, t in hdr.items():
        a, b = t["data_offsets"]
        assert t["dtype"] == "F32"
        tensors[name] = np.frombuffer(data[base + a:base + b], dtype="<f4").reshape(t["shape"])
    return tensors, meta


os.makedirs(TMP, exist_ok=True)
src_st = os.path.join(GOLD, "v2_ds1_weights.safetensors")
src_pth = os.path.join(GOLD, "v2_ds1_weights.pth")
if not os.path.exists(src_st):
    print("golden checkpoint missing; skip")
    sys.exit(77)
gold, _ = read_st(src_st)

KEYS = {"wsi_vmamba_model", "backbone_config", "head_config", "target_mpp", "normalization",
        "region_size", "overlap", "trained", "note", "provenance"}

for src in (src_st, src_pth):
    out = os.path.join(TMP, os.path.basename(src) + ".model.safetensors")
    r = run("init", "--backbone", src, "--out", out, "--seed", "5", "--d-h", "32", "--n-h", "1",
            "--target-mpp", "0.25", "--region", "4096", "--overlap", "128")
    check(r.returncode == 0, f"init from {os.path.basename(src)} (rc {r.returncode} {r.stderr.strip()[:80]})")
    if r.returncode:
        continue
    t, meta = read_st(out)
    bb = {k[len("backbone."):]: v for k, v in t.items() if k.startswith("backbone.")}
    hd = {k for k in t if k.startswith("head.")}
    check(len(bb) + len(hd) == len(t), "every tensor under backbone. or head.")
    check(set(bb) == set(gold) and all(np.array_equal(bb[k], gold[k]) for k in gold),
          "backbone tensors bit-equal to the checkpoint")
    check("head.blocks.0.A_logs" in hd and "head.blocks.1.A_logs" not in hd, "one head block")
    check(meta is not None and set(meta) == KEYS, f"metadata keys {sorted(meta or {})}")
    vals = {k: json.loads(v) for k, v in meta.items()} if meta else {}
    check(all(isinstance(v, str) for v in meta.values()), "metadata values are strings")
    check(vals.get("wsi_vmamba_model") == 1 and vals.get("trained") is False, "version 1, untrained")
    check(vals.get("target_mpp") == 0.25 and vals.get("region_size") == 4096
          and vals.get("overlap") == 128, "target mpp, region, overlap")
    check(vals["normalization"]["mean"] == [0.485, 0.456, 0.406], "ImageNet normalisation")
    check("not meaningful" in vals.get("note", ""), "untrained note")
    sha = hashlib.sha256(open(src, "rb").read()).hexdigest()
    check(vals["provenance"].get("backbone_sha256") == sha and vals["provenance"].get("seed") == 5,
          "provenance: source sha256 and seed")
    check(vals["head_config"] == {"in_dim": 128, "d_h": 32, "n_blocks": 1, "d_inner": 32,
                                  "d_state": 4, "dt_rank": 2, "d_attn": 64}, "head_config")
    check(vals["backbone_config"]["dims"] == [16, 32, 64, 128], "backbone_config")
    r = run("inspect", out)
    check(r.returncode == 0 and "trained         false" in r.stdout and sha in r.stdout,
          "inspect text")
    r = run("inspect", "--json", out)
    j = json.loads(r.stdout) if r.returncode == 0 else {}
    check(j.get("head_config", {}).get("d_h") == 32 and j.get("trained") is False
          and j.get("provenance", {}).get("backbone_sha256") == sha, "inspect --json")
    # a model file as --backbone: the backbone under backbone. is taken over
    out2 = out + ".again.safetensors"
    r = run("init", "--backbone", out, "--out", out2, "--seed", "5", "--d-h", "32", "--n-h", "1")
    t2, _ = read_st(out2) if r.returncode == 0 else ({}, None)
    check(r.returncode == 0 and all(np.array_equal(t2.get(k), v) for k, v in t.items()),
          "init from a model file: same tensors for the same seed")

# random preset, determinism
a, b = os.path.join(TMP, "ra.safetensors"), os.path.join(TMP, "rb.safetensors")
ra = run("init", "--random-backbone", "tiny", "--seed", "7", "--out", a)
rb = run("init", "--random-backbone", "tiny", "--seed", "7", "--out", b)
check(ra.returncode == 0 and rb.returncode == 0, "init --random-backbone tiny")
if ra.returncode == 0 and rb.returncode == 0:
    ta, ma = read_st(a)
    tb, _ = read_st(b)
    check(set(ta) == set(tb) and all(np.array_equal(ta[k], tb[k]) for k in ta), "same seed, same file tensors")
    check(json.loads(ma["provenance"]).get("random_backbone") == "tiny", "provenance names the preset")
    check(json.loads(ma["head_config"])["d_h"] == 128, "default d_h 128")

# failures
r = run("inspect", src_st)
check(r.returncode == 1 and "model init" in r.stderr, "inspect of a plain checkpoint: exit 1, hint")
r = run("init", "--backbone", os.path.join(TMP, "nope.pth"), "--out", os.path.join(TMP, "x.safetensors"))
check(r.returncode == 1 and "nope.pth" in r.stderr, "missing backbone file: exit 1")
r = run("init", "--random-backbone", "huge", "--out", os.path.join(TMP, "x.safetensors"))
check(r.returncode == 1 and "tiny" in r.stderr, "unknown preset: exit 1")
r = run("init", "--random-backbone", "tiny", "--out", os.path.join(TMP, "no", "dir", "x.safetensors"))
check(r.returncode == 1, "unwritable output: exit 1")
for args, what in [(("init",), "init without --out"),
                   (("init", "--random-backbone", "tiny", "--backbone", src_st, "--out", "x"), "both backbones"),
                   (("init", "--random-backbone", "tiny", "--out", "x", "--overlap", "100"), "overlap not a multiple of 32"),
                   (("init", "--random-backbone", "tiny", "--out", "x", "--d-h", "0"), "--d-h 0"),
                   (("inspect",), "inspect without a file"),
                   (("frob",), "unknown action")]:
    r = run(*args)
    check(r.returncode == 2, f"usage error: {what}")
r = run("--help")
check(r.returncode == 0 and "--random-backbone" in r.stdout, "--help")
sys.exit(1 if fails else 0)
