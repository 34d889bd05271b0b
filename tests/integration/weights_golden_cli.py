#!/usr/bin/python3
"""weights_golden_cli.py — `wsi-vmamba weights` on the golden v2_ds1 checkpoint (../shared/golden).

inspect (text and --json) must report the official configuration and the manifest's parameter
count and sha256; import of the .pth must give a safetensors file whose tensors are bit-equal to
the golden safetensors, with names kept and provenance metadata added; usage errors exit 2.
"""
import json
import os
import re
import struct
import subprocess
import sys

import numpy as np

BIN = os.environ["WV_BIN"]
GOLD = os.path.join(os.environ.get("WV_SHARED_DIR", "../shared"), "golden")
TMP = os.path.join(os.environ.get("WV_TEST_TMP", "/tmp"), "weights_golden_cli")
fails = 0


def check(cond, what):
    global fails
    print(f"{what:60s} {'OK' if cond else 'FAIL'}")
    fails += not cond


def run(*args):
    return subprocess.run([BIN, "weights", *args], capture_output=True, text=True, timeout=120)


def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    h = json.loads(raw[8:8 + n])
    meta = h.pop("__metadata__", None)
    dt = {"F32": "<f4"}
    t = {k: np.frombuffer(raw[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]],
                          dt[v["dtype"]]).reshape(v["shape"]) for k, v in h.items()}
    return t, meta, n, list(h)


def main():
    os.makedirs(TMP, exist_ok=True)
    man = json.load(open(os.path.join(GOLD, "manifest.json")))
    n_params = man["models"]["v2_ds1"]["n_params"]
    st_sha = man["files"]["v2_ds1_weights.safetensors"]["sha256"]
    shapes = man["files"]["v2_ds1_weights.safetensors"]["tensors"]  # name -> shape, file order

    for f in ("v2_ds1_weights.safetensors", "v2_ds1_weights.pth"):
        p = run("inspect", os.path.join(GOLD, f))
        check(p.returncode == 0, f"inspect {f}: exit 0")
        check(re.search(r"config:\s+v2 dims 16/32/64/128 depths 1/1/2/1 d_state 1 ssm_ratio 1\.0 "
                        r"dt_rank 1/2/4/8 mlp_ratio 4\.0 conv_bias no classes 2", p.stdout)
              is not None, f"inspect {f}: configuration line")
        check(f"parameters:  {n_params}\n" in p.stdout, f"inspect {f}: parameters {n_params}")
        check(re.search(r"layers\.2\.blocks\.1\.op\.x_proj_weight\s+\(4, 6, 64\)\s+F32", p.stdout)
              is not None, f"inspect {f}: tensor table row")
        pj = run("inspect", "--json", os.path.join(GOLD, f))
        j = json.loads(pj.stdout)
        check(j["config"]["dims"] == [16, 32, 64, 128] and j["config"]["depths"] == [1, 1, 2, 1]
              and j["config"]["d_state"] == 1 and j["config"]["dt_rank"] == [1, 2, 4, 8]
              and j["config"]["num_classes"] == 2 and j["n_params"] == n_params
              and j["n_tensors"] == 114, f"inspect --json {f}: config")
        if f.endswith(".safetensors"):
            check(j["sha256"] == st_sha, f"inspect --json {f}: sha256 as in manifest")
        check([t["name"] for t in j["tensors"]] == list(shapes) and
              all(t["shape"] == shapes[t["name"]] for t in j["tensors"]),
              f"{f}: names, order and shapes as in the manifest")

    out = os.path.join(TMP, "imported.safetensors")
    src = os.path.join(GOLD, "v2_ds1_weights.pth")
    p = run("import", src, "-o", out)
    check(p.returncode == 0 and os.path.exists(out), "import .pth: exit 0, file written")
    got, meta, hlen, order = read_st(out)
    want, _, _, _ = read_st(os.path.join(GOLD, "v2_ds1_weights.safetensors"))
    check(set(got) == set(want) and all(got[k].shape == want[k].shape and
                                        got[k].tobytes() == want[k].tobytes() for k in want),
          "import .pth: every tensor bit-equal to the golden safetensors")
    check(order == sorted(order) and hlen % 8 == 0, "import: sorted names, header padded to 8")
    import hashlib
    sha = hashlib.sha256(open(src, "rb").read()).hexdigest()
    cfg = json.loads(meta["vmamba_config"])
    check(meta["source_file"] == "v2_ds1_weights.pth" and meta["source_sha256"] == sha and
          cfg["dims"] == [16, 32, 64, 128] and cfg["n_params"] == n_params,
          "import: metadata (source file, sha256, configuration)")
    p = run("inspect", out)
    check(p.returncode == 0 and f"parameters:  {n_params}" in p.stdout, "inspect imported file")
    # the import of the import is the same bytes apart from provenance
    p = run("import", out, "-o", out + ".2")
    got2, _, _, _ = read_st(out + ".2")
    check(p.returncode == 0 and all(got2[k].tobytes() == got[k].tobytes() for k in got),
          "re-import of the safetensors: same tensors")

    # usage and failure exits
    check(run("inspect").returncode == 2, "inspect without FILE: exit 2")
    check(run("import", src).returncode == 2, "import without -o: exit 2")
    check(run("frobnicate", src).returncode == 2, "unknown action: exit 2")
    check(run("inspect", src, "--bogus").returncode == 2, "unknown option: exit 2")
    h = run("--help")
    check(h.returncode == 0 and "inspect" in h.stdout and "import" in h.stdout, "--help: exit 0")
    p = run("inspect", os.path.join(TMP, "does-not-exist.pth"))
    check(p.returncode == 1 and "does-not-exist.pth" in p.stderr, "missing file: exit 1, named")
    p = run("import", src, "-o", "/nonexistent-dir/x.safetensors")
    check(p.returncode == 1 and "/nonexistent-dir/x.safetensors" in p.stderr,
          "unwritable output: exit 1, named")
    print(f"weights_golden_cli: {fails} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
