#!/usr/bin/env python3
"""batch_check.py — `wsi-vmamba batch` and `wsi-vmamba merge` end to end (issue 7), checked
independently with h5py and sqlite3 under Debian's /usr/bin/python3.

Modes (one ctest each, separate folders so they may run in parallel):
  faults       8 synthetic slides + the bad fixtures of shared/fixtures/slides; kill -9 of the
               whole batch (process group: parent and workers) at random moments in 6 trials,
               resuming each time; then: one row and one valid .h5 per good slide, every bad
               fixture failed with a reason, no temp file, no incomplete .h5
  concurrency  2 shards (--shard 0/2, 1/2) with 4 workers each on one --out at the same time:
               no "database is locked", every slide exactly once, done
  bad_input    a manifest with missing files, duplicates, unreadable rows, paths with spaces,
               quotes, newlines and non-UTF-8 bytes; an archive with symlink loops, a self loop
               and a dangling link: per-entry errors, the good slides done
  identity     renamed / moved file not redone (path updated), changed file redone under its id,
               a copy is a duplicate, --dry-run writes nothing
  isolation    a worker crash (SIGSEGV), a hang past --slide-timeout, an allocation failure
               under --worker-memory: failed with reasons, the others done, exit 1;
               --retry-failed redoes them; SIGTERM mid-run: exit 143, the next run completes
  merge        shards into separate folders, `merge` → one folder: rows once, files linked,
               h5_path inside it; merging again changes nothing; a different result for a slide
               is a conflict (exit 1)
Env: WV_BIN, WV_SHARED_DIR, WV_TEST_TMP. Exit 0 ok, 1 failure.
"""
import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time

import h5py
import numpy as np

BIN = os.environ["WV_BIN"]
SHARED = os.environ.get("WV_SHARED_DIR", "../shared")
TMP_ROOT = os.environ.get("WV_TEST_TMP", "/tmp")
FIXTURES = os.path.join(SHARED, "fixtures/slides")
# every one fails in the pipeline (boxes.tiff has no pixel size; the others are corrupt or
# not whole-slide images); see tests/integration/bad_slides_check.py
BAD = ["broken.svs", "unopenable.tiff", "unreadable.svs", "OS-1-detail.ome.tif", "boxes.tiff"]
# small regions keep a 2000×1500 slide to a second on one core
FAST = ["--region", "512", "--overlap", "32", "--threads", "1", "--device", "cpu"]

failures = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)
    return cond


def run(args, timeout=300, env=None, **kw):
    t0 = time.time()
    e = dict(os.environ)
    if env:
        e.update(env)
    r = subprocess.run([BIN, *args], capture_output=True, timeout=timeout, env=e, **kw)
    r.stdout = r.stdout.decode("utf-8", "replace")
    r.stderr = r.stderr.decode("utf-8", "replace")
    print(f"  $ wsi-vmamba {' '.join(str(a) for a in args)}  -> rc {r.returncode} "
          f"({time.time() - t0:.1f} s)", flush=True)
    return r


def fresh(name):
    d = os.path.join(TMP_ROOT, "batch_" + name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def cohort(d, n, seed=7, size="2000,1500"):
    a = os.path.join(d, "archive")
    r = run(["synth", a, "--slides", str(n), "--seed", str(seed), "--size", size, "--quiet",
             "--threads", "2"], timeout=600)
    assert r.returncode == 0, r.stderr
    # the synth folder also holds masks/*_mask.tif: batch must skip them by default
    return a


def model(d, seed=0):
    m = os.path.join(d, f"model{seed}.safetensors")
    r = run(["model", "init", "--random-backbone", "tiny", "--seed", str(seed), "--out", m])
    assert r.returncode == 0, r.stderr
    return m


def rows(out):
    db = sqlite3.connect(os.path.join(out, "results.sqlite"))
    db.text_factory = lambda b: b.decode("utf-8", "replace")
    r = db.execute("SELECT slide_id, path, content_hash, status, error, h5_path, label FROM slides"
                   " ORDER BY slide_id").fetchall()
    db.close()
    return r


def h5_valid(path):
    try:
        with h5py.File(path, "r") as f:
            hm = f["heatmap"][...]
            t = f["tissue"][...]
            c = f["coords"][...]
            s = f["scores"][...]
            ok = (f.attrs.get("complete") == 1 and hm.shape == t.shape and c.shape[0] == s.shape[0]
                  and c.shape[0] == int(t.sum()) and bool(np.all(np.isnan(hm[t == 0]))))
            return bool(ok)
    except Exception as e:  # noqa: BLE001 - any failure to read is "not valid"
        print("  h5 error:", path, e)
        return False


def temp_files(out):
    bad = []
    for n in os.listdir(out):
        if ".tmp." in n or n.startswith(".wsi-vmamba-probe"):
            bad.append(n)
    return bad


def good_ids(archive):
    return sorted(os.path.splitext(n)[0] for n in os.listdir(archive) if n.endswith(".tif")
                  and not n.endswith("_mask.tif"))


def check_final(out, good, bad, tag):
    rs = rows(out)
    ids = [r[0] for r in rs]
    check(len(ids) == len(set(ids)), f"{tag}: no duplicate slide rows")
    by = {r[0]: r for r in rs}
    for g in good:
        r = by.get(g)
        check(r is not None and r[3] == "done", f"{tag}: {g} done ({r[3] if r else 'no row'})")
        check(h5_valid(os.path.join(out, g + ".h5")), f"{tag}: {g}.h5 valid (h5py)")
        if r:
            check(r[2] and r[2].startswith("fast1:"), f"{tag}: {g} content hash recorded")
    for b in bad:
        r = by.get(b)
        check(r is not None and r[3] == "failed" and r[4], f"{tag}: {b} failed with a reason "
              f"({r[4] if r else 'no row'})")
    check(len(rs) == len(good) + len(bad), f"{tag}: one row per slide ({len(rs)} rows)")
    h5s = sorted(n[:-3] for n in os.listdir(out) if n.endswith(".h5"))
    check(h5s == sorted(good), f"{tag}: exactly the good slides have .h5 files ({h5s})")
    tf = temp_files(out)
    check(not tf, f"{tag}: no temp files left ({tf})")


# ---- modes -------------------------------------------------------------------------------------

def mode_faults():
    d = fresh("faults")
    a = cohort(d, 8, size="3000,2000")
    good = good_ids(a)
    for b in BAD:
        shutil.copy(os.path.join(FIXTURES, b), a)
    m = model(d)
    out = os.path.join(d, "out")
    bad = [os.path.splitext(b)[0] for b in BAD]
    rnd = random.Random(int(os.environ.get("WV_BATCH_SEED", "12345")))
    print("seed", os.environ.get("WV_BATCH_SEED", "12345"))
    # trials go on until 6 kills hit a live run (at most 14 tries): a fast machine may finish
    # the cohort before a late kill
    kills, t, added = 0, -1, 0
    while kills < 6 and t < 13:
        t += 1
        p = subprocess.Popen([BIN, "batch", a, "--model", m, "--out", out, "--jobs", "2", *FAST],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             start_new_session=True)
        delay = rnd.uniform(0.3, 1.6)
        time.sleep(delay)
        alive = p.poll() is None
        if alive:
            os.killpg(p.pid, signal.SIGKILL)
            kills += 1
        p.wait()
        p.stderr.close()
        # workers die with the parent's group; give the kernel a moment to reap them
        time.sleep(0.2)
        n_done = sum(1 for r in rows(out) if r[3] == "done") if os.path.exists(
            os.path.join(out, "results.sqlite")) else 0
        print(f"  trial {t}: killed after {delay:.2f} s (alive {alive}); rows done so far {n_done}")
        if not alive and kills < 6:
            # a fast machine finished the cohort before the kill: give the next trials more work
            # (4, 8, 16, 32 more slides under new names), so 6 kills land on a live run anywhere
            more = min(4 << added, 32)
            added += 1
            e = os.path.join(d, f"extra{t}")
            r = run(["synth", e, "--slides", str(more), "--seed", str(100 + t), "--size",
                     "3000,2000", "--quiet", "--threads", "2"], timeout=600)
            assert r.returncode == 0, r.stderr
            for n in os.listdir(e):
                if n.endswith(".tif"):
                    shutil.copy(os.path.join(e, n), os.path.join(a, f"x{t}_{n}"))
            print(f"  trial {t}: the batch had finished; {more} slides added")
        ls = os.listdir(out) if os.path.isdir(out) else []
        for n in ls:
            if n.endswith(".h5"):
                check(h5_valid(os.path.join(out, n)), f"trial {t}: {n} under its final name is complete")
    check(kills >= 5, f"at least 5 kill -9 trials hit a running batch ({kills})")
    good = [g for g in good_ids(a) if g not in bad]  # with the slides added on the way
    r = run(["batch", a, "--model", m, "--out", out, "--jobs", "2", *FAST])
    check(r.returncode == 1, "final run: exit 1 (bad fixtures failed)")
    check("failed slides:" in r.stdout, "final run: summary lists the failed slides")
    for b in bad:
        check(b in r.stdout, f"final run: summary names {b}")
    check_final(out, good, bad, "after kill -9 trials")
    # one more run does nothing and changes nothing
    before = rows(out)
    r = run(["batch", a, "--model", m, "--out", out, "--jobs", "2", *FAST])
    check("analyzed 0" in r.stdout, "re-run analyzes nothing")
    check(rows(out) == before, "re-run leaves the rows as they were")


def mode_concurrency():
    d = fresh("concurrency")
    a = cohort(d, 12, seed=11, size="1500,1200")
    m = model(d)
    out = os.path.join(d, "out")
    procs = []
    for s in range(2):
        procs.append(subprocess.Popen([BIN, "batch", a, "--model", m, "--out", out, "--jobs", "4",
                                       "--shard", f"{s}/2", *FAST], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    res = [p.communicate(timeout=600) for p in procs]
    for s, (p, (so, se)) in enumerate(zip(procs, res)):
        check(p.returncode == 0, f"shard {s}/2: exit 0 ({se[-500:] if p.returncode else ''})")
        check("locked" not in se.lower() and "busy" not in se.lower(),
              f"shard {s}/2: no 'database is locked' / busy")
        mm = re.search(r"done (\d+), failed (\d+)\)", so)
        print("  shard", s, mm.group(0) if mm else so[-300:])
    rs = rows(out)
    ids = [r[0] for r in rs]
    good = good_ids(a)
    check(sorted(ids) == good, f"every slide exactly once ({len(ids)} rows, {len(good)} slides)")
    check(all(r[3] == "done" for r in rs), "all done")
    check(all(h5_valid(os.path.join(out, g + ".h5")) for g in good), "all .h5 valid")
    db = sqlite3.connect(os.path.join(out, "results.sqlite"))
    n_scores = db.execute("SELECT COUNT(*), COUNT(DISTINCT slide_id) FROM scores").fetchone()
    runs = db.execute("SELECT COUNT(*) FROM runs WHERE status != 'done'").fetchone()[0]
    db.close()
    check(n_scores == (len(good), len(good)), f"one scores row per slide {n_scores}")
    check(runs == 0, "every run row ended 'done'")
    r = run(["batch", a, "--model", m, "--out", out, "--jobs", "4", *FAST])
    check(r.returncode == 0 and "already done 12" in r.stdout, "unsharded re-run: all 12 already done")


def mode_bad_input():
    d = fresh("bad_input")
    a = cohort(d, 3, seed=5, size="1500,1200")
    m = model(d)
    src = sorted(os.path.join(a, n) for n in os.listdir(a) if n.endswith(".tif"))
    weird = os.path.join(d, "weird")
    os.makedirs(weird)
    names = ["with space.tif", 'a "quoted" name.tif', "new\nline.tif", "zz,copy.tif"]
    for n, s in zip(names, src + src[:1]):
        shutil.copy(s, os.path.join(weird, n))
    # the 4th is a copy of the 1st: same content → a duplicate, not an error
    nonutf = os.path.join(weird.encode(), b"caf\xe9.tif")
    shutil.copy(src[1], nonutf)
    man = os.path.join(d, "manifest.csv")
    with open(man, "wb") as f:
        f.write(b"\xef\xbb\xbfpath,slide_id,label\n")
        f.write(b'"weird/with space.tif",,tumor\n')
        f.write(b'"weird/a ""quoted"" name.tif",quoted_one,normal\n')
        f.write(b'"weird/new\nline.tif",,\n')
        f.write(b'"weird/zz,copy.tif",comma_copy,\n')
        f.write(b"weird/missing.tif,,\n")                        # missing file
        f.write(b'"weird/with space.tif",,\n')                    # duplicate entry
        f.write(b"weird/caf\xe9.tif,,\n")                          # non-UTF-8 path
        f.write(b"weird/x.tif,bad/id,\n")                          # invalid slide id
        f.write(b"weird/nul\x00.tif,,\n")                          # NUL byte
        f.write(b'"weird/x.tif"junk,,\n')                          # text after a quote
        f.write(b",,\n")                                           # empty path
        f.write(b"\n# a comment line\n")
        f.write(b'"weird/unterminated.tif,,\n')                    # unreadable to the end
    out = os.path.join(d, "out_manifest")
    r = run(["batch", man, "--model", m, "--out", out, "--jobs", "2", *FAST])
    print(r.stderr)
    check(r.returncode == 1, "manifest: exit 1 (entry errors)")
    errs = r.stderr
    for pat, what in [(r"missing\.tif \(manifest line 7\): file not found", "missing file"),
                      (r"duplicate of line 2", "duplicate entry"),
                      (r"not valid UTF-8", "non-UTF-8 path"),
                      (r"slide id bad/id: contains '/'", "invalid slide id"),
                      (r"NUL byte", "NUL byte"),
                      (r"text after a closing quote", "text after a quote"),
                      (r"empty path", "empty path"),
                      (r"unterminated quote", "unterminated quote")]:
        check(re.search(pat, errs) is not None, f"manifest: error for {what}")
    check(re.search(r"manifest line 16: unterminated quote", errs) is not None,
          "manifest: the unterminated quote names its line")
    rs = {x[0]: x for x in rows(out)}
    print("  rows:", sorted(rs))
    check(rs.get("with space", (0, 0, 0, ""))[3] == "done", "path with spaces done")
    check(rs.get("with space", (0,) * 7)[6] == "tumor", "label from the manifest stored")
    check(rs.get("quoted_one", (0, 0, 0, ""))[3] == "done", "path with quotes done (manifest id)")
    check(rs.get("new_line", (0, 0, 0, ""))[3] == "done", "path with a newline done (id new_line)")
    if "new_line" in rs:
        check(rs["new_line"][1].endswith("new\nline.tif"), "newline path stored as the real path")
    check("comma_copy" not in rs, "a copy of another listed slide is a duplicate, not redone")
    check(len(rs) == 3, f"only the good entries have rows ({len(rs)})")
    check(not temp_files(out) and not os.path.exists(os.path.join(out, ".batch", "links"))
          or not os.listdir(os.path.join(out, ".batch", "links")), "no temp files or links left")
    # an archive with symlink loops
    arch = os.path.join(d, "loops")
    os.makedirs(os.path.join(arch, "sub", "deeper"))
    shutil.copy(src[0], os.path.join(arch, "sub", "s1.tif"))
    shutil.copy(src[1], os.path.join(arch, "sub", "deeper", "s2.tif"))
    os.symlink("..", os.path.join(arch, "sub", "deeper", "up"))           # loop to a parent
    os.symlink("loopy", os.path.join(arch, "loopy"))                      # self loop
    os.symlink("/nonexistent/x.svs", os.path.join(arch, "gone.svs"))      # dangling
    os.symlink(os.path.join(arch, "sub"), os.path.join(arch, "alias"))    # second way in
    out2 = os.path.join(d, "out_loops")
    r = run(["batch", arch, "--model", m, "--out", out2, "--jobs", "2", *FAST], timeout=120)
    print(r.stderr)
    check(r.returncode == 1, "loops: exit 1 (entry errors)")
    check(re.search(r"deeper/up: symlink loop", r.stderr) is not None, "loops: parent loop reported")
    check(re.search(r"loopy: symlink loop", r.stderr) is not None, "loops: self loop reported")
    check(re.search(r"gone.svs: dangling symlink", r.stderr) is not None, "loops: dangling link reported")
    rs2 = rows(out2)
    check(sorted(x[0] for x in rs2) == ["s1", "s2"] and all(x[3] == "done" for x in rs2),
          "loops: both slides done once")


def mode_identity():
    d = fresh("identity")
    a = cohort(d, 4, seed=3, size="1500,1200")
    m = model(d)
    out = os.path.join(d, "out")
    r = run(["batch", a, "--model", m, "--out", out, "--dry-run"])
    check(r.returncode == 0 and not os.path.exists(out), "--dry-run: exit 0, writes nothing")
    check(r.stdout.count("analyze ") == 4, "--dry-run: lists 4 to analyze")
    r = run(["batch", a, "--model", m, "--out", out, "--jobs", "2", *FAST])
    check(r.returncode == 0, "first run: exit 0")
    before = {x[0]: x for x in rows(out)}
    ids = sorted(before)
    mtime = {i: os.stat(os.path.join(out, i + ".h5")).st_mtime_ns for i in ids}
    # rename one, move another into a subfolder, copy a third (duplicate), change the fourth
    os.rename(os.path.join(a, ids[0] + ".tif"), os.path.join(a, "renamed.tif"))
    os.makedirs(os.path.join(a, "moved"))
    os.rename(os.path.join(a, ids[1] + ".tif"), os.path.join(a, "moved", ids[1] + ".tif"))
    shutil.copy(os.path.join(a, ids[2] + ".tif"), os.path.join(a, "copy_of_third.tif"))
    with open(os.path.join(a, ids[3] + ".tif"), "ab") as f:
        f.write(b"\0" * 4096)  # trailing bytes: still a valid TIFF, a different file
    r = run(["batch", a, "--model", m, "--out", out, "--jobs", "2", *FAST])
    print(r.stdout)
    check(r.returncode == 0, "second run: exit 0")
    check("analyzed 1 (done 1" in r.stdout, "second run: only the changed file analyzed")
    check("duplicates 1" in r.stdout, "second run: the copy is a duplicate")
    after = {x[0]: x for x in rows(out)}
    check(sorted(after) == ids, f"same slide ids, no new rows ({sorted(after)})")
    check(after[ids[0]][1].endswith("/renamed.tif"), "renamed: row path updated")
    check(after[ids[1]][1].endswith("/moved/" + ids[1] + ".tif"), "moved: row path updated")
    for i in ids[:3]:
        check(os.stat(os.path.join(out, i + ".h5")).st_mtime_ns == mtime[i], f"{i}: .h5 not rewritten")
    check(after[ids[3]][2] != before[ids[3]][2], "changed: new content hash")
    check(os.stat(os.path.join(out, ids[3] + ".h5")).st_mtime_ns != mtime[ids[3]], "changed: .h5 rewritten")


def mode_isolation():
    d = fresh("isolation")
    a = cohort(d, 5, seed=9, size="1500,1200")
    m = model(d)
    out = os.path.join(d, "out")
    ids = good_ids(a)
    # ASan reserves terabytes of address space: an RLIMIT_AS (--worker-memory) build cannot start
    asan = "asan" in subprocess.run(["ldd", BIN], capture_output=True, text=True).stdout
    if asan:
        print("  sanitizer build: the --worker-memory case runs as a plain failure instead")
    fault = f"crash:{ids[0]},hang:{ids[1]},oom:{ids[2]}"
    mem = [] if asan else ["--worker-memory", "3"]
    r = run(["batch", a, "--model", m, "--out", out, "--jobs", "2", "--slide-timeout", "6",
             *mem, *FAST], env={"WV_BATCH_TEST_FAULT": fault})
    print(r.stdout, r.stderr[-2000:])
    check(r.returncode == 1, "faults: exit 1")
    rs = {x[0]: x for x in rows(out)}
    # ASan catches the SIGSEGV itself, prints its report and exits 1 — or aborts (SIGABRT) when
    # ASAN_OPTIONS has abort_on_error=1, as CI sets it
    crash_whys = (("worker exited with status 1", "worker crashed: Aborted") if asan
                  else ("worker crashed: Segmentation fault",))
    check(rs[ids[0]][3] == "failed" and any(w in (rs[ids[0]][4] or "") for w in crash_whys),
          f"crash recorded ({rs[ids[0]][4]})")
    check(rs[ids[1]][3] == "failed" and "timed out after 6 s" in (rs[ids[1]][4] or ""),
          f"timeout recorded ({rs[ids[1]][4]})")
    check(rs[ids[2]][3] == "failed" and "out of memory" in (rs[ids[2]][4] or ""),
          f"memory limit recorded ({rs[ids[2]][4]})")
    for i in ids[3:]:
        check(rs[i][3] == "done", f"{i}: done despite the others")
    check(all(ids[k] in r.stdout for k in range(3)), "summary lists the three failures")
    r = run(["batch", a, "--model", m, "--out", out, "--jobs", "2", *FAST])
    check(r.returncode == 1 and "failed earlier, not retried 3" in r.stdout,
          "without --retry-failed: failures kept, exit 1")
    r = run(["batch", a, "--model", m, "--out", out, "--jobs", "2", "--retry-failed", *FAST])
    check(r.returncode == 0 and "analyzed 3 (done 3" in r.stdout, "--retry-failed: redone, exit 0")
    check(not temp_files(out), "no temp files")
    # SIGTERM mid-run: 143, then the next run completes without --retry-failed
    out2 = os.path.join(d, "out_term")
    p = subprocess.Popen([BIN, "batch", a, "--model", m, "--out", out2, "--jobs", "2", *FAST],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={**os.environ, "WV_BATCH_TEST_FAULT": f"hang:{ids[4]}"})
    time.sleep(2.5)
    p.send_signal(signal.SIGTERM)
    so, se = p.communicate(timeout=120)
    check(p.returncode == 143, f"SIGTERM: exit 143 ({p.returncode})")
    r = run(["batch", a, "--model", m, "--out", out2, "--jobs", "2", *FAST])
    check(r.returncode == 0, "after SIGTERM: the next run completes (exit 0)")
    check(all(x[3] == "done" for x in rows(out2)) and len(rows(out2)) == 5, "after SIGTERM: all done once")


def mode_merge():
    d = fresh("merge")
    a = cohort(d, 6, seed=13, size="1500,1200")
    m = model(d)
    outs = []
    for s in range(3):
        o = os.path.join(d, f"shard_{s}")
        r = run(["batch", a, "--model", m, "--out", o, "--shard", f"{s}/3", *FAST])
        check(r.returncode == 0, f"shard {s}/3: exit 0")
        outs.append(o)
    merged = os.path.join(d, "merged")
    r = run(["merge", *outs, "--out", merged])
    print(r.stdout, r.stderr)
    check(r.returncode == 0, "merge: exit 0")
    rs = rows(merged)
    good = good_ids(a)
    check(sorted(x[0] for x in rs) == good, "merged: every slide once")
    check(all(x[3] == "done" for x in rs), "merged: all done")
    check(all(x[5] == os.path.join(merged, x[0] + ".h5") for x in rs), "merged: h5_path inside the merged folder")
    check(all(h5_valid(os.path.join(merged, g + ".h5")) for g in good), "merged: every .h5 valid")
    check(all(os.path.exists(os.path.join(merged, g + ".csv")) for g in good), "merged: lesion CSVs placed")
    r = run(["merge", *outs, "--out", merged])
    check(r.returncode == 0 and sorted(x[0] for x in rows(merged)) == good, "merge again: no duplicates")
    # the same slide analysed with another model: a conflict, reported, destination kept
    other = os.path.join(d, "other")
    m2 = model(d, seed=5)
    man = os.path.join(d, "one.csv")
    with open(man, "w") as f:
        f.write(os.path.join(a, good[0] + ".tif") + "\n")
    r = run(["batch", man, "--model", m2, "--out", other, *FAST])
    check(r.returncode == 0, "other model run: exit 0")
    keep = {x[0]: x for x in rows(merged)}
    r = run(["merge", other, "--out", merged])
    check(r.returncode == 1 and "conflict" in r.stderr and good[0] in r.stderr,
          f"conflict reported, exit 1 ({r.stderr.strip()[:200]})")
    check({x[0]: x for x in rows(merged)} == keep, "conflict: destination rows kept")


MODES = {"faults": mode_faults, "concurrency": mode_concurrency, "bad_input": mode_bad_input,
         "identity": mode_identity, "isolation": mode_isolation, "merge": mode_merge}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in MODES:
        print("usage: batch_check.py " + "|".join(MODES))
        sys.exit(2)
    t0 = time.time()
    MODES[sys.argv[1]]()
    print(f"{sys.argv[1]}: {len(failures)} failure(s), {time.time() - t0:.1f} s")
    sys.exit(1 if failures else 0)
