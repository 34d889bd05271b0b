#!/usr/bin/python3
"""eval_auc_check.py — `wsi-vmamba evaluate`'s slide-level numbers against python3-sklearn on
seeded random scores with many ties (scores rounded to 1-2 decimals, class balance from 1:20 to
20:1): AUC vs roc_auc_score (1e-12), the ROC curve vs roc_curve(drop_intermediate=False), the
DeLong variance vs an O(n^2) psi-function computation, sensitivity/specificity at the threshold
and at the Youden point, and the bootstrap's determinism for a fixed seed.
"""
import json
import os
import sys

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from eval_common import TMP, check, finish, run_eval  # noqa: E402

SEED = int(os.environ.get("WV_EVAL_SEED", "611"))


def delong_var(y, s):
    X, Y = s[y == 1], s[y == 0]
    psi = (X[:, None] > Y[None, :]) + 0.5 * (X[:, None] == Y[None, :])
    v10, v01 = psi.mean(1), psi.mean(0)
    a = np.var(v10, ddof=1) / len(X) if len(X) > 1 else 0.0
    b = np.var(v01, ddof=1) / len(Y) if len(Y) > 1 else 0.0
    return a + b


def main():
    rng = np.random.default_rng(SEED)
    d = os.path.join(TMP, "eval_auc")
    os.makedirs(d, exist_ok=True)
    for t in range(12):
        n = int(rng.integers(2, 300))
        p = float(rng.choice([0.05, 0.3, 0.5, 0.8, 0.95]))
        y = (rng.random(n) < p).astype(int)
        y[0], y[1] = 1, 0
        s = np.round(rng.random(n) * 0.6 + 0.4 * y * rng.random(n), int(rng.integers(1, 3)))
        names = [f"slide_{i:04d}" for i in range(n)]
        ref, sc = os.path.join(d, "reference.csv"), os.path.join(d, "scores.csv")
        with open(ref, "w") as f:
            f.writelines(f"{nm},{'Tumor' if yy else 'Normal'},IDC,None\n" for nm, yy in zip(names, y))
        order = rng.permutation(n)
        with open(sc, "w") as f:
            f.write("name,probability\n")  # a header line, skipped with a warning
            for i in order:
                f.write(f"{names[i]},{s[i]!r}\n")
                if rng.random() < 0.05:
                    f.write("\n")  # blank lines are skipped
        out = os.path.join(d, f"rep{t}")
        thr = float(np.round(rng.random(), 2))
        rc, so, se = run_eval(["--slide-scores", sc, "--reference", ref, "--out", out, "--threshold",
                               repr(thr), "--bootstrap", "300", "--seed", "5", "--quiet"])
        if rc:
            check(False, f"trial {t}: exit {rc}: {se.strip()}")
            continue
        m = json.load(open(os.path.join(out, "metrics.json")))["slide_level"]
        want = roc_auc_score(y, s)
        check(abs(m["auc"] - want) <= 1e-12,
              f"trial {t} (n={n}, {y.sum()} tumour, {len(np.unique(s))} distinct scores): "
              f"AUC {m['auc']:.15f} vs sklearn {want:.15f}")
        fpr, tpr, thr_sk = roc_curve(y, s, drop_intermediate=False)
        r = m["roc"]
        check(len(r["fpr"]) == len(fpr) and np.allclose(r["fpr"], fpr, atol=1e-15) and
              np.allclose(r["tpr"], tpr, atol=1e-15) and np.allclose(r["thresholds"][1:], thr_sk[1:]),
              f"trial {t}: ROC curve == sklearn roc_curve ({len(fpr)} points)")
        v = delong_var(y, s)
        check(abs(m["auc_ci95_delong"]["variance"] - v) <= 1e-12 * max(1, v),
              f"trial {t}: DeLong variance {m['auc_ci95_delong']['variance']:.6g} vs {v:.6g}")
        pred = s >= thr
        sens, spec = pred[y == 1].mean(), (~pred[y == 0]).mean()
        at = m["at_threshold"]
        check(abs(at["sensitivity"] - sens) < 1e-15 and abs(at["specificity"] - spec) < 1e-15,
              f"trial {t}: sens/spec at {thr}: {at['sensitivity']:.4f}/{at['specificity']:.4f}")
        j = tpr - fpr
        k = int(np.argmax(j[1:])) + 1
        check(abs(m["youden"]["threshold"] - thr_sk[k]) < 1e-15,
              f"trial {t}: Youden threshold {m['youden']['threshold']} vs {thr_sk[k]}")
        b = m["auc_ci95_bootstrap"]
        check(b["low"] <= m["auc"] + 1e-12 or b["low"] <= b["high"], f"trial {t}: bootstrap CI "
              f"[{b['low']:.4f}, {b['high']:.4f}]")
        if t == 0:
            rc2, _, _ = run_eval(["--slide-scores", sc, "--reference", ref, "--out", out + "b",
                                  "--bootstrap", "300", "--seed", "5", "--quiet", "--threshold", repr(thr)])
            m2 = json.load(open(os.path.join(out + "b", "metrics.json")))["slide_level"]
            check(rc2 == 0 and m2["auc_ci95_bootstrap"] == b, "same seed, same bootstrap interval")
    finish("eval_auc_check")


main()
