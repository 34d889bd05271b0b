#!/usr/bin/env python3
"""check_forward.py — `wsi-vmamba forward` end to end against the golden v2_ds1 tensors
(VMAMBA_SPEC.md §10): both checkpoints (.pth, .safetensors), inputs `in` and `in_odd`, every
stage map within 1e-5 abs + 1e-5 rel and logits within 1e-4 abs; then bad input: a size that
does not match --shape, a checkpoint with a tensor missing, --device cuda in a CPU build —
each must fail with exit 1 and a clear message. Env: WV_BIN, WV_SHARED_DIR, WV_TEST_TMP."""
import json, os, struct, subprocess, sys
import numpy as np

BIN, SHARED, TMP = os.environ["WV_BIN"], os.environ["WV_SHARED_DIR"], os.environ["WV_TEST_TMP"]
G = os.path.join(SHARED, "golden")
man = json.load(open(os.path.join(G, "manifest.json")))
fails = 0

def check(cond, what):
    global fails
    print(("OK   " if cond else "FAIL ") + what)
    if not cond:
        fails += 1

def run(args):
    p = subprocess.run([BIN, "forward"] + args, capture_output=True, text=True)
    return p.returncode, p.stderr

cases = man["models"]["v2_ds1"]["cases"]
for wfile in ("v2_ds1_weights.safetensors", "v2_ds1_weights.pth"):
    for cname, case in cases.items():
        shape = man["files"][case["input"]]["shape"]
        out = os.path.join(TMP, "fwd_%s_%s" % (wfile.split(".")[-1], cname))
        rc, err = run(["--weights", os.path.join(G, wfile), "--input", os.path.join(G, case["input"]),
                       "--shape", ",".join(map(str, shape)), "--out", out, "--threads", "2",
                       "--device", "cpu"])  # the CPU reference; tests/gpu checks the GPU
        check(rc == 0, "%s %s: exit %d %s" % (wfile, cname, rc, err.strip()))
        if rc:
            continue
        ref = np.fromfile(os.path.join(G, case["logits"]), "<f4")
        got = np.fromfile(os.path.join(out, "logits.bin"), "<f4")
        d = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")
        check(d <= 1e-4, "%s %s logits max|diff| %.3g" % (wfile, cname, d))
        for fname, f in case["features"].items():
            ref = np.fromfile(os.path.join(G, f["file"]), "<f4")
            got = np.fromfile(os.path.join(out, fname + ".bin"), "<f4")
            ok = got.shape == ref.shape and np.all(np.abs(got - ref) <= 1e-5 + 1e-5 * np.abs(ref))
            d = float(np.abs(got - ref).max()) if got.shape == ref.shape else float("inf")
            check(bool(ok), "%s %s %s max|diff| %.3g" % (wfile, cname, fname, d))

inp = os.path.join(G, "v2_ds1_in_odd_input.bin")
rc, err = run(["--weights", os.path.join(G, "v2_ds1_weights.safetensors"), "--input", inp,
               "--shape", "1,3,50,77", "--out", os.path.join(TMP, "fwd_bad")])
check(rc == 1 and "does not match --shape" in err, "size mismatch: exit %d: %s" % (rc, err.strip()))
rc, err = run(["--weights", os.path.join(G, "v2_ds1_weights.safetensors"), "--input", inp,
               "--shape", "1,4,50,78", "--out", os.path.join(TMP, "fwd_bad")])
check(rc == 1, "channel mismatch: exit %d: %s" % (rc, err.strip()))

# a safetensors file without one tensor the model needs
raw = open(os.path.join(G, "v2_ds1_weights.safetensors"), "rb").read()
hlen = struct.unpack("<Q", raw[:8])[0]
hdr = json.loads(raw[8:8 + hlen])
data = raw[8 + hlen:]
drop = "layers.2.blocks.1.op.dt_projs_bias"
newhdr, blobs, off = {}, [], 0
for k, v in hdr.items():
    if k == "__metadata__" or k == drop:
        continue
    b = data[v["data_offsets"][0]:v["data_offsets"][1]]
    newhdr[k] = dict(v, data_offsets=[off, off + len(b)])
    blobs.append(b)
    off += len(b)
hj = json.dumps(newhdr).encode()
hj += b" " * ((8 - len(hj) % 8) % 8)
bad = os.path.join(TMP, "missing_tensor.safetensors")
open(bad, "wb").write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
rc, err = run(["--weights", bad, "--input", inp, "--shape", "1,3,50,78",
               "--out", os.path.join(TMP, "fwd_bad")])
check(rc == 1 and "dt_projs_bias" in err, "missing tensor: exit %d: %s" % (rc, err.strip()))
rc, err = run(["--weights", os.path.join(G, "v2_ds1_weights.safetensors"), "--input", inp,
               "--shape", "1,3,50,78", "--out", os.path.join(TMP, "fwd_bad"), "--device", "cuda"])
check(rc == 1 and "cuda" in err, "--device cuda: exit %d: %s" % (rc, err.strip()))
rc, err = run(["--weights", os.path.join(G, "v2_ds1_weights.safetensors"), "--input", inp])
check(rc == 2, "missing options: usage exit %d" % rc)
print("check_forward: %d failed" % fails)
sys.exit(1 if fails else 0)
