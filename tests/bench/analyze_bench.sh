#!/bin/bash
# analyze_bench.sh — `wsi-vmamba analyze` on the CPU over a large synthetic slide and over one of
# twice its area (issue 4): wall time per stage, regions per minute, Mpix/s and peak RSS, and the
# ratio of the two peak RSS figures (the streaming claim: memory must not grow with the slide;
# required < 1.10). It reports; it does not pass or fail (STYLE.md 2.6). Results: docs/benchmarks.md
# "analyze (CPU)".
#
# Usage: analyze_bench.sh [--quick] [WORKDIR]
#   default  40,000 × 40,000 px and 56,569 × 56,569 px (2.0× the area) at 0.25 µm/px
#   --quick  8,000 × 8,000 and 11,314 × 11,314 with 2,048-px regions (what `ctest -L bench`
#            runs, ~2 min)
# WORKDIR (default $WV_TEST_TMP/analyze_bench or /tmp/analyze_bench) keeps the slides between
# runs (synth takes ~6 min for 40,000² on 2 busy cores). Env: WV_BIN (the CLI), WV_PYTHON,
# BENCH_THREADS (compute threads, default all cores), BENCH_REGION (default: the model's 10,000).
set -euo pipefail

quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi
BIN=${WV_BIN:-$(dirname "$0")/../../build/src/wsi-vmamba}
PY=${WV_PYTHON:-/usr/bin/python3}
DIR=${1:-${WV_TEST_TMP:-/tmp}/analyze_bench}
THREADS=${BENCH_THREADS:-$(nproc)}
if [ $quick = 1 ]; then SIZES="8000 11314"; else SIZES="40000 56569"; fi
# --quick: regions of 2048 px so that both slides still span several regions
if [ $quick = 1 ]; then BENCH_REGION=${BENCH_REGION:-2048}; fi
mkdir -p "$DIR"
# libgomp spins in barriers by default; on a shared machine that costs far more than it saves
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}

echo "analyze_bench: $(date -u +%FT%TZ), commit $(git -C "$(dirname "$0")" rev-parse --short HEAD 2>/dev/null || echo ?)"
echo "host: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load $(cut -d' ' -f1-3 /proc/loadavg)"
"$BIN" --version | head -1

# the model: random "tiny" backbone (v2 dims 16/32/64/128, depths 1/1/2/1, D = 128) + default head
MODEL=$DIR/tiny.safetensors
[ -f "$MODEL" ] || "$BIN" model init --random-backbone tiny --out "$MODEL" --seed 1 >/dev/null
echo "model: random tiny backbone, head d_h 128 / 2 blocks, target 0.5 µm/px, region ${BENCH_REGION:-10000 (→ 9984)}, overlap 256, $THREADS threads"

declare -A RSS
for S in $SIZES; do
    SL=$DIR/s$S/tumor_001.tif
    if [ ! -f "$SL" ]; then
        t0=$(date +%s.%N)
        "$BIN" synth "$DIR/s$S" --slides 1 --seed 7 --size "$S,$S" --quiet
        echo "synth ${S}²: $(echo "$(date +%s.%N) - $t0" | bc) s"
    fi
    OUT=$DIR/out$S
    rm -rf "$OUT"
    extra=()
    [ -n "${BENCH_REGION:-}" ] && extra=(--region "$BENCH_REGION")
    /usr/bin/time -v -o "$DIR/time$S.txt" "$BIN" analyze "$SL" --model "$MODEL" --out "$OUT" \
        --device cpu --threads "$THREADS" --quiet "${extra[@]}"
    wall=$(grep "Elapsed (wall clock)" "$DIR/time$S.txt" | awk '{print $NF}')
    rss=$(grep "Maximum resident set size" "$DIR/time$S.txt" | awk '{print $NF}')
    RSS[$S]=$rss
    "$PY" - "$OUT" "$S" "$wall" "$rss" <<'EOF'
import json, sqlite3, sys
out, S, wall, rss = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
db = sqlite3.connect(out + "/results.sqlite")
r = db.execute("SELECT seconds_read, seconds_encode, seconds_head, seconds_write, seconds_total,"
               " n_tissue_cells, slide_prob FROM scores").fetchone()
pj = json.loads(db.execute("SELECT params_json FROM runs").fetchone()[0])
import h5py
with h5py.File(out + "/tumor_001.h5") as f:
    rows, cols = f["heatmap"].shape
rd, enc, head, wr, tot, cells, p = r
# regions and pixels through the backbone: the read rectangles of the tissue-touching regions
# (whole cells + 2×256-px halo); recomputed from the grid the .h5 holds
import math, numpy as np
with h5py.File(out + "/tumor_001.h5") as f:
    ts = f["tissue"][...]
R = pj["region_px"] // 32
ov = pj["overlap_px"]
n_reg, mpix = 0, 0.0
for r0 in range(0, rows, R):
    for c0 in range(0, cols, R):
        blk = ts[r0:r0 + R, c0:c0 + R]
        if blk.any():
            n_reg += 1
            mpix += (blk.shape[0] * 32 + 2 * ov) * (blk.shape[1] * 32 + 2 * ov) / 1e6
print(f"{S}x{S} px (0.25 µm/px) = {S*S/1e9:.2f} Gpx level 0; grid {cols}x{rows} cells, "
      f"{cells} tissue cells, {n_reg} regions, {mpix:.0f} Mpix through the backbone")
print(f"  wall {tot:.1f} s (process {wall}): read {rd:.1f} s (reader threads, summed; overlaps encode), "
      f"encode {enc:.1f} s, head {head:.1f} s, write {wr:.2f} s")
print(f"  {n_reg / tot * 60:.1f} regions/min, {mpix / enc:.2f} Mpix/s encode, "
      f"{S*S/1e6 / tot:.1f} level-0 Mpix/s overall; peak RSS {rss/1048576:.2f} GiB")
EOF
done
set -- $SIZES
a=${RSS[$1]}; b=${RSS[$2]}
echo "peak RSS: ${1}² $(echo "scale=3; $a/1048576" | bc) GiB, ${2}² $(echo "scale=3; $b/1048576" | bc) GiB (2.0× the area): ratio $(echo "scale=3; $b/$a" | bc) (reference: must be < 1.10)"
