#!/usr/bin/env python3
"""train_resume_check.py — `wsi-vmamba train --resume` for real, and the feature cache (issue 5).

A small synthetic cohort (8 slides) and the random `tiny` backbone; features once. Reference: an
uninterrupted run (--epochs 6, --patience 0, seed 3, 2 threads, --device cpu). Then, each on a
fresh output path:
  kill-after-3   SIGKILL as soon as epoch 3's line is printed (the checkpoint on disk is epoch 2's
                 or 3's: the line comes just before the atomic checkpoint write), then --resume;
  kill-mid       SIGKILL ~40% into epoch 4 (timed from epoch 3's line), then --resume;
  kill-twice     SIGKILL after epoch 2's line, --resume, SIGKILL after epoch 4's line, --resume;
  kill-early     SIGKILL before the first checkpoint, then --resume (warns, starts at epoch 1);
  cache-0        uninterrupted with --cache-mb 0 (every step re-reads its slide's .h5);
  cache-1        uninterrupted with --cache-mb 1 (a few slides fit; LRU eviction);
and checks that every final model file holds tensors bit-identical to the reference (the whole
tensor data section of the safetensors file) and the same per-epoch metrics (lr, losses, AUC; not
the wall times), and that the checkpoint is gone after success. Also: --resume with a different
--lr refuses the checkpoint (clear error, exit 1); --resume without a checkpoint warns.
Bit-identity is by design: the checkpoint holds the float64 parameters, both Adam moments, the
best parameters, the step count, early-stopping state and the metric history; each epoch's order
is seeded by (seed, epoch); the split and class weights are recomputed from the same data.
"""
import json, os, shutil, signal, struct, subprocess, sys, time

BIN = os.environ["WV_BIN"]
TMP = os.path.join(os.environ.get("WV_TEST_TMP", "/tmp"), "train_resume_check")
fails = 0


def run(*args, ok=True, timeout=1200):
    p = subprocess.run([BIN, *args], capture_output=True, text=True, timeout=timeout)
    if ok and p.returncode != 0:
        print(p.stdout, p.stderr)
        raise SystemExit(f"FAIL: {' '.join(args[:2])} exit {p.returncode}")
    return p


def check(cond, what):
    global fails
    print(("OK   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        fails += 1


def split(path):
    with open(path, "rb") as f:
        b = f.read()
    n = struct.unpack("<Q", b[:8])[0]
    hdr = json.loads(b[8:8 + n])
    return hdr, b[8 + n:]


def metrics(hdr):
    t = json.loads(hdr["__metadata__"]["training"])
    return [{k: v for k, v in e.items() if k != "seconds"} for e in t["metrics"]], t


def train_args(out, *extra):
    return ["train", "--features", FEAT, "--annotations", os.path.join(CO, "annotations"),
            "--labels", os.path.join(CO, "reference.csv"), "--out", out, "--backbone-model",
            MODEL, "--epochs", "6", "--d-h", "16", "--threads", "2", "--seed", "3",
            "--patience", "0", "--device", "cpu", *extra]


def run_until(out, kill_after_epoch=None, frac=None, before_first=False, extra=()):
    """Start train, SIGKILL it after the line of epoch `kill_after_epoch` (+ frac of an epoch's
    time), or before the first epoch line. Returns the collected stderr."""
    p = subprocess.Popen([BIN, *train_args(out, *extra)], stderr=subprocess.PIPE, text=True)
    err, t_prev, killed = [], time.time(), False
    for line in p.stderr:
        err.append(line)
        if before_first and line.startswith("training the head"):
            p.send_signal(signal.SIGKILL)
            killed = True
            break
        if line.startswith("epoch"):
            ep = int(line.split()[1].split("/")[0])
            now = time.time()
            dt, t_prev = now - t_prev, now
            if ep == kill_after_epoch:
                if frac:
                    time.sleep(frac * dt)
                p.send_signal(signal.SIGKILL)
                killed = True
                break
    p.wait()
    rest = p.stderr.read()
    err.append(rest)
    check(killed and p.returncode == -signal.SIGKILL,
          f"{os.path.basename(out)}: killed with SIGKILL (rc {p.returncode})")
    return "".join(err)


def same_as_ref(out, label):
    hdr, data = split(out)
    check(data == REF_DATA, f"{label}: tensors bit-identical to the uninterrupted run")
    m, t = metrics(hdr)
    check(m == REF_METRICS, f"{label}: per-epoch metrics (lr, losses, AUC) identical")
    check(t["epochs_run"] == 6 and t["best_epoch"] == REF_T["best_epoch"],
          f"{label}: epochs_run {t['epochs_run']}, best epoch {t['best_epoch']}")
    check(not os.path.exists(out + ".ckpt"), f"{label}: checkpoint removed after success")


def main():
    global CO, FEAT, MODEL, REF_DATA, REF_METRICS, REF_T
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    CO = os.path.join(TMP, "co")
    run("synth", CO, "--slides", "8", "--seed", "5", "--size", "3000,2200", "--quiet")
    MODEL = os.path.join(TMP, "tiny.safetensors")
    run("model", "init", "--random-backbone", "tiny", "--out", MODEL, "--seed", "0")
    FEAT = os.path.join(TMP, "feat")
    slides = sorted(os.path.join(CO, f) for f in os.listdir(CO) if f.endswith(".tif"))
    run("features", *slides, "--backbone", MODEL, "--out", FEAT, "--threads", "2", "--quiet")

    ref = os.path.join(TMP, "ref.safetensors")
    p = run(*train_args(ref))
    print(p.stderr)
    hdr, REF_DATA = split(ref)
    REF_METRICS, REF_T = metrics(hdr)
    check(len(REF_METRICS) == 6, "reference: 6 epochs")

    # the same run again: the baseline for identity is itself deterministic
    again = os.path.join(TMP, "again.safetensors")
    run(*train_args(again))
    same_as_ref(again, "rerun")

    # killed after epoch 3's line, resumed
    out = os.path.join(TMP, "k3.safetensors")
    run_until(out, kill_after_epoch=3)
    check(os.path.exists(out + ".ckpt"), "kill-after-3: a checkpoint is on disk")
    check(not os.path.exists(out), "kill-after-3: no model file yet")
    p = run(*train_args(out, "--resume"))
    first = [l for l in p.stderr.splitlines() if l.startswith("epoch")][0]
    check("resuming after epoch" in p.stderr and first.split()[1] in ("3/6", "4/6"),
          f"kill-after-3: resumed ({first.split()[1] if first else '?'} is the first epoch run)")
    same_as_ref(out, "kill-after-3")

    # killed in the middle of epoch 4
    out = os.path.join(TMP, "kmid.safetensors")
    run_until(out, kill_after_epoch=3, frac=0.4)
    run(*train_args(out, "--resume"))
    same_as_ref(out, "kill-mid")

    # killed twice
    out = os.path.join(TMP, "k2x.safetensors")
    run_until(out, kill_after_epoch=2)
    p = subprocess.Popen([BIN, *train_args(out, "--resume")], stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        if line.startswith("epoch   4/"):
            p.send_signal(signal.SIGKILL)
            break
    p.wait()
    p.stderr.read()
    run(*train_args(out, "--resume"))
    same_as_ref(out, "kill-twice")

    # killed before any checkpoint: --resume warns and starts at epoch 1
    out = os.path.join(TMP, "k0.safetensors")
    run_until(out, before_first=True)
    p = run(*train_args(out, "--resume"))
    check("no checkpoint" in p.stderr, "kill-early: --resume without a checkpoint warns")
    same_as_ref(out, "kill-early")

    # a checkpoint of other options is refused
    out = os.path.join(TMP, "klr.safetensors")
    run_until(out, kill_after_epoch=2)
    p = run(*train_args(out, "--resume", "--lr", "2e-3"), ok=False)
    check(p.returncode == 1 and "not a checkpoint of this run" in p.stderr,
          f"--resume with another --lr: exit {p.returncode}: {p.stderr.strip().splitlines()[-1]}")

    # the feature cache does not change results
    for mb in ("0", "1"):
        out = os.path.join(TMP, f"cache{mb}.safetensors")
        run(*train_args(out, "--cache-mb", mb))
        same_as_ref(out, f"cache-{mb}")

    print(f"train_resume_check: {fails} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
