#!/usr/bin/env python3
"""bad_slides_check.py — every input OpenSlide cannot open or read, through `wsi-vmamba info`
(OpenSlide test/cases style: file, expected stderr regex). Each must give exactly
`wsi-vmamba: <file>: <reason>` on stderr, a non-zero exit, nothing on stdout, no thumbnail (or
temp file) left behind, and finish within the timeout (no hang, no crash).
Env: WV_BIN, WV_SHARED_DIR, WV_TEST_TMP."""
import os
import re
import shutil
import subprocess
import sys

BIN = os.environ["WV_BIN"]
SHARED = os.environ.get("WV_SHARED_DIR", "../shared")
TMP = os.path.join(os.environ.get("WV_TEST_TMP", "/tmp"), "bad_slides")
SL = os.path.join(SHARED, "fixtures/slides")
TIMEOUT_S = 60


def main():
    if not os.path.isdir(SL):
        return 77
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    empty = os.path.join(TMP, "empty.svs")
    open(empty, "wb").close()
    good = open(os.path.join(SL, "CMU-1-Small-Region.svs"), "rb").read()
    cases = [
        # (file, stderr regex after "wsi-vmamba: <file>: ")
        (os.path.join(SL, "unopenable.tiff"), r"cannot open slide: Unsupported TIFF compression: 52479"),
        (os.path.join(SL, "unreadable.svs"), r"read of .* at level 0.*: Bogus marker length"),
        (os.path.join(SL, "broken.svs"), r"not a supported slide format$"),
        (os.path.join(SL, "kidney-48-5.tif"), r"not a supported slide format \(a TIFF.*tiled"),
        (os.path.join(SL, "OS-1-detail.ome.tif"), r"not a supported slide format \(a TIFF"),
        (os.path.join(TMP, "missing.svs"), r"no such file$"),
        (TMP, r"is a directory"),
        (empty, r"empty file \(0 bytes\)$"),
    ]
    # truncated copies of a good slide, cut inside the tiles and inside the directories
    for n in (100, 200000, 1300000, 1500000, len(good) - 700):
        p = os.path.join(TMP, f"truncated-{n}.svs")
        with open(p, "wb") as f:
            f.write(good[:n])
        cases.append((p, r"truncated TIFF|not a supported slide format|cannot open slide"))
    failures = 0
    for path, rx in cases:
        thumb = os.path.join(TMP, "thumb.png")
        for args in (["--json"], ["--mpp", "0.5", "--thumbnail", thumb]):
            try:
                r = subprocess.run([BIN, "info", *args, path], capture_output=True, text=True,
                                   timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                print(f"FAIL {path}: hung (> {TIMEOUT_S} s)")
                failures += 1
                continue
            prefix = f"wsi-vmamba: {path}: "
            err = r.stderr.strip()
            lines = err.splitlines()
            ok = (r.returncode == 1 and not r.stdout and len(lines) == 1 and
                  lines[0].startswith(prefix) and re.search(rx, lines[0][len(prefix):]) is not None
                  and not os.path.exists(thumb)
                  and not [x for x in os.listdir(TMP) if ".tmp." in x])
            print(("ok   " if ok else "FAIL ") + f"{' '.join(args)} {os.path.basename(path)}: rc {r.returncode}: {err}")
            if not ok:
                failures += 1
    print("bad_slides_check:", "FAIL" if failures else "OK")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
